/*  sc_metrics: the broker's figures over HTTP, for Prometheus. A thread
    of libmicrohttpd's serves GET /metrics in the Prometheus text format
    (version 0.0.4) from a copy of the core's counters that the broker's
    loop hands over (sc_metrics_update), under a mutex: the core itself
    only ever adds to plain integers on its own thread. Anything but
    GET or HEAD /metrics gets 404 or 405.

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at https://mozilla.org/MPL/2.0/.
*/
#ifndef SC_METRICS_H_INCLUDED
#define SC_METRICS_H_INCLUDED

#include <stddef.h>

#include "sc_broker.h"

typedef struct _sc_metrics_t sc_metrics_t;

/* Listens on addr, "HOST:PORT" with a numeric IPv4 address or a
   bracketed IPv6 one ("127.0.0.1:9464", "[::1]:9464"); port 0 picks a
   free one. NULL with why (one line) when addr is not that or cannot
   be bound. */
sc_metrics_t *sc_metrics_new (const char *addr, char *why, size_t size);
/* Stops the server (waits for its thread). Idempotent. */
void sc_metrics_destroy (sc_metrics_t **self_p);
/* "127.0.0.1:9464": where it listens, the port picked included. */
const char *sc_metrics_address (const sc_metrics_t *self);
/* Any thread: the figures served from now on. */
void sc_metrics_update (sc_metrics_t *self, const sc_broker_stats_t *stats);
/* The exposition text of stats, malloc'd (NULL: no memory). */
char *sc_metrics_format (const sc_broker_stats_t *stats);

#endif
