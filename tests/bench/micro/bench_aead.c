/*  bench_aead: nanoseconds per ChaCha20-Poly1305 call through sc_crypto,
    the keyed AEAD of a channel direction (sc_aead_seal_with,
    sc_aead_open_with) and the one-shot functions, at 64, 256, 1024 and
    4096 bytes of text with a channel's 42 bytes of associated data.

    One `name value` line per figure on stdout: the minimum over the
    repetitions of the mean time per call in a repetition (on a shared
    machine the minimum is the figure the neighbours disturbed least).
    Not a test: it checks that every open succeeds and nothing else.

    Usage: bench_aead [repetitions [calls per repetition]]

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at https://mozilla.org/MPL/2.0/.
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "micro.h"

#include "sc_crypto.h"

#define S_AD_LEN    42                 /* sid || version || opcode || seq */
#define S_MAX_LEN   4096

static const size_t s_sizes [] = { 64, 256, 1024, 4096 };

typedef enum { S_SEAL_WITH, S_OPEN_WITH, S_SEAL, S_OPEN } s_op_t;
static const char *s_op_name [] = { "seal_with", "open_with", "seal", "open" };

typedef struct {
    uint8_t key [SC_KEY_LEN];
    uint8_t ad [S_AD_LEN];
    uint8_t pt [S_MAX_LEN];
    uint8_t box [S_MAX_LEN + SC_TAG_LEN];  //  sealed under nonce 1
    uint8_t out [S_MAX_LEN + SC_TAG_LEN];
    sc_aead_t *aead;
} s_bench_t;

//  Mean ns per call over `calls` calls; -1 when a call fails.
static double
s_run (s_bench_t *b, s_op_t op, size_t len, long calls)
{
    uint8_t nonce [SC_NONCE_LEN];
    sc_aead_nonce (1, nonce);
    int bad = 0;
    double start = micro_now_ns ();
    for (long i = 0; i < calls; i++) {
        switch (op) {
            case S_SEAL_WITH:
                sc_aead_nonce ((uint64_t) i + 2, nonce);
                bad |= sc_aead_seal_with (b->aead, nonce, b->ad, S_AD_LEN,
                                          b->pt, len, b->out);
                break;
            case S_OPEN_WITH:
                bad |= sc_aead_open_with (b->aead, nonce, b->ad, S_AD_LEN,
                                          b->box, len + SC_TAG_LEN, b->out);
                break;
            case S_SEAL:
                sc_aead_nonce ((uint64_t) i + 2, nonce);
                bad |= sc_aead_seal (b->key, nonce, b->ad, S_AD_LEN,
                                     b->pt, len, b->out);
                break;
            case S_OPEN:
                bad |= sc_aead_open (b->key, nonce, b->ad, S_AD_LEN,
                                     b->box, len + SC_TAG_LEN, b->out);
                break;
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
    if (micro_args (argc, argv, "bench_aead", "calls", &reps, &calls))
        return 2;
    static s_bench_t b;
    uint8_t nonce [SC_NONCE_LEN];
    sc_aead_nonce (1, nonce);
    if (sc_random (b.key, sizeof b.key) || sc_random (b.ad, sizeof b.ad)
    ||  sc_random (b.pt, sizeof b.pt)
    ||  !(b.aead = sc_aead_new (b.key))) {
        fprintf (stderr, "bench_aead: set-up failed\n");
        return 1;
    }
    size_t nsizes = sizeof s_sizes / sizeof s_sizes [0];
    size_t nops = sizeof s_op_name / sizeof s_op_name [0];
    double best [4][4];
    for (size_t s = 0; s < nsizes; s++)
        for (size_t o = 0; o < nops; o++)
            best [s][o] = -1;
    //  Repetitions outermost, so that each figure's samples are spread
    //  over the whole run, not taken in one burst.
    for (int r = 0; r < reps; r++)
        for (size_t s = 0; s < nsizes; s++) {
            size_t len = s_sizes [s];
            if (sc_aead_seal (b.key, nonce, b.ad, S_AD_LEN, b.pt, len, b.box)) {
                fprintf (stderr, "bench_aead: seal failed\n");
                return 1;
            }
            for (size_t o = 0; o < nops; o++) {
                double ns = s_run (&b, (s_op_t) o, len, calls);
                if (ns < 0) {
                    fprintf (stderr, "bench_aead: %s failed\n", s_op_name [o]);
                    return 1;
                }
                if (best [s][o] < 0 || ns < best [s][o])
                    best [s][o] = ns;
            }
        }
    for (size_t o = 0; o < nops; o++)
        for (size_t s = 0; s < nsizes; s++)
            printf ("aead_%s_ns_%zu %.1f\n", s_op_name [o], s_sizes [s], best [s][o]);
    sc_aead_destroy (&b.aead);
    sc_wipe (&b, sizeof b);
    return 0;
}
