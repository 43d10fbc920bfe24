/*  secbench raw: the raw ZeroMQ relay the broker is measured against.

    One ROUTER with the broker's socket options, the broker's poll loop
    shape (poll, then drain up to 1000 messages), and no codec and no
    crypto: a message from a client whose routing id is a bench pair id
    ("p" + 3 bytes + side) goes to the other side of the pair, the same
    frame as it came (zero copy); any other message is echoed back to its
    sender (the connection count test).

    Usage: secbench raw ENDPOINT HEARTBEAT_MS. Prints "raw listening on
    EP" once bound; SIGTERM stops it.

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at https://mozilla.org/MPL/2.0/.
*/
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "bench.h"

static volatile sig_atomic_t s_stop = 0;

static void
s_on_term (int sig)
{
    (void) sig;
    s_stop = 1;
}

static void
s_drain (void *router)
{
    for (int i = 0; i < 1000; i++) {
        zmq_msg_t rid, body;
        zmq_msg_init (&rid);
        if (zmq_msg_recv (&rid, router, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close (&rid);
            return;
        }
        zmq_msg_init (&body);
        bool ok = zmq_msg_more (&rid) && zmq_msg_recv (&body, router, 0) >= 0
                  && !zmq_msg_more (&body);
        uint8_t *id = zmq_msg_data (&rid);
        if (ok && zmq_msg_size (&rid) == 5 && id[0] == 'p')
            id[4] ^= 1;             /* the other side of the pair */
        if (ok && (zmq_msg_send (&rid, router, ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0
                   || zmq_msg_send (&body, router, ZMQ_DONTWAIT) < 0))
            fprintf (stderr, "secbench raw: send failed: %s\n", zmq_strerror (zmq_errno ()));
        zmq_msg_close (&body);
        zmq_msg_close (&rid);
    }
}

int
bn_raw_main (int argc, char **argv)
{
    if (argc != 4) {
        fprintf (stderr, "usage: secbench raw ENDPOINT HEARTBEAT_MS\n");
        return 2;
    }
    bn_raise_nofile ();
    struct sigaction sa;
    memset (&sa, 0, sizeof sa);
    sa.sa_handler = s_on_term;
    sigaction (SIGTERM, &sa, NULL);
    sigaction (SIGINT, &sa, NULL);
    signal (SIGPIPE, SIG_IGN);

    void *ctx = zmq_ctx_new ();
    void *router = ctx ? zmq_socket (ctx, ZMQ_ROUTER) : NULL;
    if (!router)
        return 1;
    /* The broker's options (broker/secbroker.c s_bind) */
    int64_t maxmsg = SC_ENVELOPE_MAX;
    int one = 1, linger = 1000, hwm = 10000, backlog = 4096, hb = atoi (argv[3]), hb_timeout = 3 * hb;
    zmq_setsockopt (router, ZMQ_MAXMSGSIZE, &maxmsg, sizeof maxmsg);
    zmq_setsockopt (router, ZMQ_ROUTER_MANDATORY, &one, sizeof one);
    zmq_setsockopt (router, ZMQ_LINGER, &linger, sizeof linger);
    zmq_setsockopt (router, ZMQ_SNDHWM, &hwm, sizeof hwm);
    zmq_setsockopt (router, ZMQ_RCVHWM, &hwm, sizeof hwm);
    zmq_setsockopt (router, ZMQ_BACKLOG, &backlog, sizeof backlog);
    zmq_setsockopt (router, ZMQ_HEARTBEAT_IVL, &hb, sizeof hb);
    zmq_setsockopt (router, ZMQ_HEARTBEAT_TIMEOUT, &hb_timeout, sizeof hb_timeout);
    if (zmq_bind (router, argv[2])) {
        fprintf (stderr, "secbench raw: cannot bind %s: %s\n", argv[2], zmq_strerror (zmq_errno ()));
        return 1;
    }
    char endpoint[256];
    size_t ep_len = sizeof endpoint;
    zmq_getsockopt (router, ZMQ_LAST_ENDPOINT, endpoint, &ep_len);
    printf ("raw listening on %s\n", endpoint);
    fflush (stdout);
    while (!s_stop) {
        zmq_pollitem_t item = { router, 0, ZMQ_POLLIN, 0 };
        int rc = zmq_poll (&item, 1, 100);
        if (rc < 0 && zmq_errno () != EINTR)
            break;
        if (rc > 0)
            s_drain (router);
    }
    linger = 0;
    zmq_setsockopt (router, ZMQ_LINGER, &linger, sizeof linger);
    zmq_close (router);
    zmq_ctx_term (ctx);
    return 0;
}
