/*  sc_notify: tells systemd how the broker is doing (Type=notify), without
    linking libsystemd. The sd_notify(3) protocol is one datagram of
    newline-separated KEY=VALUE assignments to the AF_UNIX socket named in
    $NOTIFY_SOCKET: a file system path, or an abstract name written with a
    leading '@'. When the variable is unset (the broker was not started by
    a service manager that waits for it) every call does nothing.

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at https://mozilla.org/MPL/2.0/.
*/
#ifndef SC_NOTIFY_H_INCLUDED
#define SC_NOTIFY_H_INCLUDED

/* Sends state ("READY=1", "STOPPING=1", ...) to $NOTIFY_SOCKET.
   1 when sent, 0 when there is no $NOTIFY_SOCKET, -1 when it could not be
   sent (errno set: EINVAL for a socket name that is not a path or '@'). */
int sc_notify (const char *state);

/* "RELOADING=1" with the MONOTONIC_USEC=... that newer systemd versions
   want beside it. Results as sc_notify. Follow it with "READY=1". */
int sc_notify_reloading (void);

#endif
