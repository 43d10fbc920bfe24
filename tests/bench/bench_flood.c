/*  secbench flood: one process that floods the broker with HELLOs, the
    attack of docs/SECURITY.md "Logins under attack": CONNS connections
    from the source address SRC, each sending the same HELLO (one
    ephemeral key for all, no cryptography on this side) as fast as
    libzmq takes it, and answering every COOKIE with the HELLO_COOKIE it
    asks for (a MAC it can echo, at no cost), never finishing a login.
    It counts what it sent from MEASURE_AT on, and what came back.

        secbench flood ENDPOINT SRC CONNS T0 MEASURE_AT END   (ns, CLOCK_MONOTONIC)

    One line on stdout at the end: ok sent=N measured=N cookies=N errors=N.

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at https://mozilla.org/MPL/2.0/.
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "bench.h"
#include "sc_wire.h"

#define S_CONNS_MAX 8192

typedef struct {
    uint64_t sent, measured, cookies, errors;
} s_counts_t;

/* A COOKIE for one connection: the HELLO_COOKIE it asks for goes back. */
static void
s_answer (void *sock, const sc_msg_t *hello, const uint8_t *frame, size_t len,
          s_counts_t *counts)
{
    sc_msg_t msg;
    if (sc_wire_open_plain (frame, len, &msg) == 0 && msg.opcode == SC_OP_COOKIE) {
        sc_msg_t again = *hello;
        again.opcode = SC_OP_HELLO_COOKIE;
        memcpy (again.cookie, msg.cookie, SC_COOKIE_LEN);
        uint8_t *out = NULL;
        size_t out_len = 0;
        if (sc_wire_plain (&again, &out, &out_len) == 0
            && zmq_send (sock, out, out_len, ZMQ_DONTWAIT) >= 0)
            counts->cookies++;
        free (out);
    }
    else
    if (msg.opcode == SC_OP_ERROR)
        counts->errors++;
    sc_msg_reset (&msg);
}

int
bn_flood_main (int argc, char **argv)
{
    if (argc != 8) {
        fprintf (stderr, "usage: secbench flood ENDPOINT SRC CONNS T0 MEASURE_AT END\n");
        return 2;
    }
    const char *ep = argv[2];
    size_t conns = strtoul (argv[4], NULL, 10);
    int64_t t0 = strtoll (argv[5], NULL, 10), measure_at = strtoll (argv[6], NULL, 10),
            end = strtoll (argv[7], NULL, 10);
    if (strncmp (ep, "tcp://", 6) != 0 || conns < 1 || conns > S_CONNS_MAX) {
        fprintf (stderr, "secbench flood: bad arguments\n");
        return 2;
    }
    /* from SRC: libzmq's "tcp://SOURCE:0;DESTINATION" */
    char from[512];
    snprintf (from, sizeof from, "tcp://%s:0;%s", argv[3], ep + 6);
    bn_raise_nofile ();
    void *ctx = zmq_ctx_new ();
    void **socks = calloc (conns, sizeof *socks);
    int max_sockets = (int) conns + 64, hwm = 100, linger = 0;
    if (!ctx || !socks || zmq_ctx_set (ctx, ZMQ_MAX_SOCKETS, max_sockets)) {
        fprintf (stderr, "secbench flood: setup failed\n");
        return 1;
    }
    /* One HELLO for every connection: a random nonce and a random
       32-byte "key", made once. */
    sc_msg_t hello;
    sc_msg_init (&hello, SC_OP_HELLO);
    hello.suite = SC_SUITE_1;
    uint8_t *frame = NULL;
    size_t frame_len = 0;
    if (sc_random (hello.nonce, SC_RANDOM_LEN) || sc_random (hello.eph, SC_PUB_LEN)
        || sc_wire_plain (&hello, &frame, &frame_len)) {
        fprintf (stderr, "secbench flood: no HELLO\n");
        return 1;
    }
    for (size_t i = 0; i < conns; i++) {
        socks[i] = zmq_socket (ctx, ZMQ_DEALER);
        if (!socks[i]
            || zmq_setsockopt (socks[i], ZMQ_SNDHWM, &hwm, sizeof hwm)
            || zmq_setsockopt (socks[i], ZMQ_RCVHWM, &hwm, sizeof hwm)
            || zmq_setsockopt (socks[i], ZMQ_LINGER, &linger, sizeof linger)
            || zmq_connect (socks[i], from)) {
            fprintf (stderr, "secbench flood: connect %s: %s\n", from, zmq_strerror (zmq_errno ()));
            return 1;
        }
    }
    bn_sleep_until_ns (t0);
    s_counts_t counts = { 0, 0, 0, 0 };
    uint8_t back[SC_ENVELOPE_MAX];
    int64_t now = bn_now_ns ();
    while (now < end) {
        for (size_t i = 0; i < conns; i++) {
            if (zmq_send (socks[i], frame, frame_len, ZMQ_DONTWAIT) >= 0) {
                counts.sent++;
                if (now >= measure_at)
                    counts.measured++;
            }
            int n;
            while ((n = zmq_recv (socks[i], back, sizeof back, ZMQ_DONTWAIT)) >= 0)
                if ((size_t) n <= sizeof back)
                    s_answer (socks[i], &hello, back, (size_t) n, &counts);
        }
        now = bn_now_ns ();
    }
    for (size_t i = 0; i < conns; i++)
        zmq_close (socks[i]);
    free (socks);
    free (frame);
    sc_msg_reset (&hello);
    zmq_ctx_term (ctx);
    printf ("ok sent=%llu measured=%llu cookies=%llu errors=%llu\n",
            (unsigned long long) counts.sent, (unsigned long long) counts.measured,
            (unsigned long long) counts.cookies, (unsigned long long) counts.errors);
    fflush (stdout);
    return 0;
}
