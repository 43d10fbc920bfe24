/*  sc_endpoint: one address of a broker, as the user wrote it, and the
    check that something answers there before ZeroMQ is given it.

    An endpoint is `tcp://HOST:PORT`, `HOST:PORT`, `tcp://[IPV6]:PORT` or
    `[IPV6]:PORT`; sc_endpoint_new parses it (nothing else: no other
    transport, no `*`) and names it `tcp://HOST:PORT` in messages.

    ZeroMQ connects lazily and retries a refused or unresolvable address
    in silence, so the client would only learn of a typo at its login
    timeout. The probe finds out at once: it resolves HOST (getaddrinfo,
    in a thread of its own for a name, so that a slow resolver does not
    stop the caller's loop), then makes a non-blocking TCP connection to
    each address in turn until one is accepted, and closes it. The address that accepted is the one to give ZeroMQ, as a
    numeric endpoint (so ZeroMQ does not resolve again and connects to
    the same place, IPv6 included). When none does, the error says which
    addresses were tried and what each answered.

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at https://mozilla.org/MPL/2.0/.
*/
#ifndef SC_ENDPOINT_H_INCLUDED
#define SC_ENDPOINT_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>

/* Longest endpoint text accepted (a host name is at most 253). */
#define SC_ENDPOINT_TEXT_MAX    300

typedef struct _sc_endpoint_t sc_endpoint_t;

/* Parse len bytes of text. NULL when it is not an endpoint, with the
   reason in why (why_size bytes, NUL-terminated), or out of memory. */
sc_endpoint_t *sc_endpoint_new (const char *text, size_t len,
                                char *why, size_t why_size);
void sc_endpoint_destroy (sc_endpoint_t **self_p);

/* "tcp://HOST:PORT" (brackets around an IPv6 address). */
const char *sc_endpoint_name (const sc_endpoint_t *self);

/* Start a probe (an earlier one is dropped): 1 when an address accepted
   at once, 0 when a lookup or a connection is in progress (poll
   sc_endpoint_fd for reading and writing, then call sc_endpoint_step),
   -1 when nothing can answer (the host does not resolve, or every
   address refused): see sc_endpoint_error. */
int sc_endpoint_probe (sc_endpoint_t *self);
/* What the probe in progress waits on (the lookup's pipe, or the
   connection's socket), or -1. */
int sc_endpoint_fd (const sc_endpoint_t *self);
/* After the fd polled (or any time): as sc_endpoint_probe. */
int sc_endpoint_step (sc_endpoint_t *self);
/* Drop a probe in progress. */
void sc_endpoint_cancel (sc_endpoint_t *self);

/* After a probe returned 1: the ZeroMQ endpoint of the address that
   accepted ("tcp://127.0.0.1:4242", "tcp://[::1]:4242"), and whether it
   is IPv6 (the socket then needs ZMQ_IPV6). */
const char *sc_endpoint_address (const sc_endpoint_t *self);
bool sc_endpoint_ipv6 (const sc_endpoint_t *self);
/* After a probe returned -1: why, e.g. "connection refused (127.0.0.1
   port 4242)" or "nosuch.example does not resolve (Name or service not
   known)". */
const char *sc_endpoint_error (const sc_endpoint_t *self);

#endif
