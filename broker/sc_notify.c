/*  sc_notify: the sd_notify(3) datagram, by hand.

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at https://mozilla.org/MPL/2.0/.
*/
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "sc_notify.h"

int
sc_notify (const char *state)
{
    const char *name = getenv ("NOTIFY_SOCKET");
    if (!name || !*name)
        return 0;
    struct sockaddr_un addr;
    memset (&addr, 0, sizeof addr);
    addr.sun_family = AF_UNIX;
    size_t len = strlen (name);
    //  A path needs room for its NUL; an abstract name has none, and its
    //  '@' stands for the leading NUL byte.
    if ((name [0] != '/' && name [0] != '@') || len < 2
    ||  len + (name [0] == '/') > sizeof addr.sun_path) {
        errno = EINVAL;
        return -1;
    }
    memcpy (addr.sun_path, name, len);
    if (name [0] == '@')
        addr.sun_path [0] = '\0';
    socklen_t addr_len = (socklen_t) (offsetof (struct sockaddr_un, sun_path)
                                      + len + (name [0] == '/'));

    int fd = socket (AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    size_t state_len = strlen (state);
    ssize_t sent = sendto (fd, state, state_len, MSG_NOSIGNAL,
                           (const struct sockaddr *) &addr, addr_len);
    int saved = errno;
    close (fd);
    if (sent < 0 || (size_t) sent != state_len) {
        errno = sent < 0 ? saved : EMSGSIZE;
        return -1;
    }
    return 1;
}

int
sc_notify_reloading (void)
{
    struct timespec now;
    if (clock_gettime (CLOCK_MONOTONIC, &now))
        return -1;
    char state [64];
    snprintf (state, sizeof state, "RELOADING=1\nMONOTONIC_USEC=%llu",
              (unsigned long long) now.tv_sec * 1000000ULL
              + (unsigned long long) now.tv_nsec / 1000ULL);
    return sc_notify (state);
}
