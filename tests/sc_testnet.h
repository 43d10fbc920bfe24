/*  sc_testnet: loopback TCP for the tests that stand between a program
    and what it connects to (secchat and its broker, a broker and NATS).

    A port can be held: bound and not listening, it refuses connections,
    and no other program (the machine may run other tests) can listen
    there meanwhile. A proxy carries connections from a port of its own
    to another loopback port, on a thread of its own; it can record every
    byte that crosses it, count what it carried, and be cut (every
    connection closed, new ones refused) and restored on the same port.

    Nothing here asserts: failures return -1 or NULL with a message on
    stderr, for the test to assert on.

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at https://mozilla.org/MPL/2.0/.
*/
#ifndef SC_TESTNET_H_INCLUDED
#define SC_TESTNET_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>

//  ---------------------------------------------------------------------
//  Ports

//  A TCP socket bound to 127.0.0.1 (::1 when v6) on *port, or on a free
//  port when *port is 0, and listening when listen_too: its fd, and its
//  port in *port. Not listening, it refuses connections and holds the
//  port. -1 on failure.
int sc_testnet_socket (bool v6, int *port, bool listen_too);
//  Holds 127.0.0.1:port, which may have been freed a moment ago
//  (SO_REUSEADDR, and tried again for 2 s while it is in use): the fd, or
//  -1.
int sc_testnet_hold_port (int port);

//  ---------------------------------------------------------------------
//  A TCP proxy

typedef struct _sc_testnet_proxy_t sc_testnet_proxy_t;

//  A proxy listening on a free port of 127.0.0.1 (::1 when v6) that
//  carries each connection to 127.0.0.1:upstream_port. With record, it
//  keeps every byte that crosses it, both ways. NULL on failure.
sc_testnet_proxy_t *sc_testnet_proxy_new (bool v6, int upstream_port, bool record);
//  Stops it (sc_testnet_proxy_stop) and frees it. Idempotent.
void sc_testnet_proxy_destroy (sc_testnet_proxy_t **self_p);

//  The port it listens on.
int sc_testnet_proxy_port (const sc_testnet_proxy_t *self);
//  cut: closes every connection it carries and refuses new ones (accepts
//  and closes them) until it is called again with false. The proxy acts
//  on it a moment later, on its thread. 0 or -1.
int sc_testnet_proxy_cut (sc_testnet_proxy_t *self, bool cut);
//  Waits up to timeout_ms (not scaled) until no connection is open: 0,
//  or -1 when some still are.
int sc_testnet_proxy_wait_closed (sc_testnet_proxy_t *self, int timeout_ms);
//  Closes every connection and the port; what it recorded and counted
//  stays readable until it is destroyed. Idempotent.
void sc_testnet_proxy_stop (sc_testnet_proxy_t *self);

//  Connections it accepted and carried so far.
size_t sc_testnet_proxy_carried (sc_testnet_proxy_t *self);
//  Bytes, both ways, of the connections closed so far on which the
//  client spoke (a reachability probe that connects and closes without a
//  word is not counted). Connections closed by a cut or a stop are not
//  counted either.
size_t sc_testnet_proxy_session_bytes (sc_testnet_proxy_t *self);
//  True when text crossed a recording proxy, either way.
bool sc_testnet_proxy_saw (sc_testnet_proxy_t *self, const char *text);

#endif
