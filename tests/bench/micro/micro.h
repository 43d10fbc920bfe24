/*  micro.h: what the micro-benchmarks share: the clock, and their two
    optional arguments (repetitions, then calls per repetition).

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at https://mozilla.org/MPL/2.0/.
*/
#ifndef MICRO_H_INCLUDED
#define MICRO_H_INCLUDED

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static inline double
micro_now_ns (void)
{
    struct timespec ts;
    clock_gettime (CLOCK_MONOTONIC, &ts);
    return (double) ts.tv_sec * 1e9 + (double) ts.tv_nsec;
}

/* `NAME [repetitions [CALLS]]`: each a positive number, else the
   defaults; anything else prints the usage and returns -1. */
static inline int
micro_args (int argc, char *argv [], const char *name, const char *calls_name,
            int *reps, long *calls)
{
    for (int i = 1; i < argc && i < 3; i++) {
        char *end = NULL;
        long value = strtol (argv [i], &end, 10);
        if (!*argv [i] || *end || value < 1 || (i == 1 && value > 1000000)) {
            fprintf (stderr, "usage: %s [repetitions [%s]]\n", name, calls_name);
            return -1;
        }
        if (i == 1)
            *reps = (int) value;
        else
            *calls = value;
    }
    if (argc > 3) {
        fprintf (stderr, "usage: %s [repetitions [%s]]\n", name, calls_name);
        return -1;
    }
    return 0;
}

#endif
