/*  bench_msg: nanoseconds per strict decode in codec/sc_msg.c, what the
    broker does to every relayed MESSAGE besides the AEAD: the envelope
    (sc_envelope_decode) and the body (sc_msg_decode, then sc_msg_reset,
    which wipes and frees the copy of the box), and the check the broker
    makes of a body it relays (sc_msg_check: the same rules, nothing
    copied), with boxes of 64, 256, 1024 and 4096 bytes.

    One `name value` line per figure on stdout: the minimum over the
    repetitions of the mean per call. Not a test: it only checks that
    every decode succeeds.

    Usage: bench_msg [repetitions [calls per repetition]]

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at https://mozilla.org/MPL/2.0/.
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "micro.h"

#include "sc_msg.h"

static const size_t s_sizes [] = { 64, 256, 1024, 4096 };

//  Mean ns per decode of the envelope (body false) or of the body (true);
//  -1 when one fails.
/* What s_run times. */
enum { S_ENVELOPE, S_DECODE, S_CHECK, S_WAYS };
static const char *s_names [S_WAYS] = { "envelope_decode", "msg_decode_reset", "msg_check" };

static double
s_run (const uint8_t *env, size_t env_len, const uint8_t *body, size_t body_len,
       int way, long calls)
{
    int bad = 0;
    double start = micro_now_ns ();
    for (long i = 0; i < calls; i++) {
        if (way == S_DECODE) {
            sc_msg_t msg;
            bad |= sc_msg_decode (SC_OP_MESSAGE, body, body_len, &msg);
            sc_msg_reset (&msg);
        }
        else
        if (way == S_CHECK)
            bad |= sc_msg_check (SC_OP_MESSAGE, body, body_len);
        else {
            sc_envelope_t e;
            bad |= sc_envelope_decode (env, env_len, &e);
        }
    }
    double ns = (micro_now_ns () - start) / (double) calls;
    return bad ? -1 : ns;
}

int
main (int argc, char *argv [])
{
    int reps = 7;
    long calls = 20000;
    if (micro_args (argc, argv, "bench_msg", "calls", &reps, &calls))
        return 2;
    size_t nsizes = sizeof s_sizes / sizeof s_sizes [0];
    uint8_t *body [4] = { NULL }, *env [4] = { NULL };
    size_t body_len [4], env_len [4];
    uint8_t box [4096];
    memset (box, 0xa5, sizeof box);
    for (size_t s = 0; s < nsizes; s++) {
        sc_msg_t msg;
        sc_msg_init (&msg, SC_OP_MESSAGE);
        msg.counter = 1000 + s;
        int rc = sc_msg_set_data (&msg, box, s_sizes [s])
              || sc_msg_encode (&msg, &body [s], &body_len [s])
              || sc_envelope_encode (SC_OP_MESSAGE, 123456 + s, body [s], body_len [s],
                                     &env [s], &env_len [s]);
        sc_msg_reset (&msg);
        if (rc) {
            fprintf (stderr, "bench_msg: encoding failed\n");
            return 1;
        }
    }
    double best [4][S_WAYS];
    for (size_t s = 0; s < nsizes; s++)
        for (int b = 0; b < S_WAYS; b++)
            best [s][b] = -1;
    for (int r = 0; r < reps; r++)
        for (size_t s = 0; s < nsizes; s++)
            for (int b = 0; b < S_WAYS; b++) {
                double ns = s_run (env [s], env_len [s], body [s], body_len [s], b, calls);
                if (ns < 0) {
                    fprintf (stderr, "bench_msg: a decode failed\n");
                    return 1;
                }
                if (best [s][b] < 0 || ns < best [s][b])
                    best [s][b] = ns;
            }
    for (int b = 0; b < S_WAYS; b++)
        for (size_t s = 0; s < nsizes; s++)
            printf ("%s_ns_%zu %.1f\n", s_names [b], s_sizes [s], best [s][b]);
    for (size_t s = 0; s < nsizes; s++) {
        free (body [s]);
        free (env [s]);
    }
    return 0;
}
