/*  bench_presence: what a cluster's presence design costs (docs/
    PERFORMANCE.md, "A cluster: presence and lists"). secbroker keeps,
    on every node, a table of who is online on the other nodes, fed by
    the nodes' UP and DOWN messages, and answers LIST from it; the
    alternative is to ask every node at each LIST (scatter-gather over
    NATS). This times both sides of that choice:

      presence_up_apply_ns   one UP decoded and applied to a table of
                             20,000 remote users (sc_node_msg_decode and
                             the hash update sc_cluster makes)
      list_20000_us          a LIST over 20,000 users: every name
                             gathered, sorted, the first 400 packed
      nats_request_rtt_us    one NATS request and its reply through a
                             local nats-server (median): the least a
                             scatter-gather LIST would wait, before any
                             node's own work
      nats_up_msgs_per_s     UP messages one node receives per second
                             from another through that server: how much
                             login and logout churn a node absorbs

    The last two start `nats-server` on 127.0.0.1 (a free port) and stop
    it. One `name value` line per figure. Not a test.

    Usage: bench_presence [repetitions [calls per repetition]]

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at https://mozilla.org/MPL/2.0/.
*/
#include <czmq.h>
#include <nats/nats.h>
#include <stdatomic.h>

#include "micro.h"

#include "sc_msg.h"
#include "sc_node.h"
#include "sc_testproc.h"

#define S_USERS 20000

typedef struct {
    uint64_t sid;
    int64_t since;
} s_entry_t;

static void
s_free (void **item)
{
    free (*item);
    *item = NULL;
}

static int
s_cmp (const void *a, const void *b)
{
    return strcmp (*(const char *const *) a, *(const char *const *) b);
}

static double
s_up_apply (zhashx_t *table, const uint8_t *buf, size_t len, long calls)
{
    double start = micro_now_ns ();
    for (long i = 0; i < calls; i++) {
        sc_node_msg_t msg;
        if (sc_node_msg_decode (buf, len, &msg))
            return -1;
        s_entry_t *e = zhashx_lookup (table, msg.from);
        if (!e) {
            e = calloc (1, sizeof *e);
            if (!e || zhashx_insert (table, msg.from, e))
                return -1;
        }
        if (e->since <= msg.since) {
            e->sid = msg.from_sid;
            e->since = msg.since;
        }
    }
    return (micro_now_ns () - start) / (double) calls;
}

static double
s_list (zhashx_t *table)
{
    double start = micro_now_ns ();
    size_t n = zhashx_size (table), count = 0;
    const char **names = malloc (n * sizeof *names);
    if (!names)
        return -1;
    for (void *e = zhashx_first (table); e; e = zhashx_next (table))
        names[count++] = zhashx_cursor (table);
    qsort (names, count, sizeof *names, s_cmp);
    sc_msg_t msg;
    sc_msg_init (&msg, SC_OP_USERS);
    for (size_t i = 0; i < count && msg.names_count < SC_USERS_MAX; i++)
        if (sc_msg_add_name (&msg, names[i]))
            break;
    sc_msg_reset (&msg);
    free (names);
    return (micro_now_ns () - start) / 1000.0;
}

/* ---- Through a nats-server ------------------------------------------------- */

static void
s_on_request (natsConnection *nc, natsSubscription *sub, natsMsg *msg, void *closure)
{
    (void) sub;
    (void) closure;
    natsConnection_Publish (nc, natsMsg_GetReply (msg), "ok", 2);
    natsMsg_Destroy (msg);
}

static atomic_long s_received;

static void
s_on_up (natsConnection *nc, natsSubscription *sub, natsMsg *msg, void *closure)
{
    (void) nc;
    (void) sub;
    (void) closure;
    sc_node_msg_t up;
    if (sc_node_msg_decode ((const uint8_t *) natsMsg_GetData (msg),
                            (size_t) natsMsg_GetDataLength (msg), &up) == 0)
        atomic_fetch_add (&s_received, 1);
    natsMsg_Destroy (msg);
}

static int
s_dcmp (const void *a, const void *b)
{
    double x = *(const double *) a, y = *(const double *) b;
    return x < y ? -1 : x > y;
}

static int
s_nats (const uint8_t *up, size_t up_len, long calls)
{
    char *dir = sc_testdir_new ("bench-presence");
    char *log = dir ? sc_testdir_path (dir, "nats.log") : NULL;
    const char *const argv[] = { "nats-server", "-a", "127.0.0.1", "-p", "-1", NULL };
    sc_testproc_t *server = log ? sc_testproc_new ("nats", argv, log) : NULL;
    int port = -1;
    for (int i = 0; server && i < 200 && port <= 0; i++) {
        char *text = sc_testdir_slurp (log, NULL);
        const char *at = text ? strstr (text, "client connections on 127.0.0.1:") : NULL;
        port = at ? atoi (at + 32) : -1;
        free (text);
        if (port <= 0)
            sc_testproc_sleep_ms (50);
    }
    int rc = -1;
    char url[64];
    snprintf (url, sizeof url, "nats://127.0.0.1:%d", port);
    natsConnection *a = NULL, *b = NULL;
    natsSubscription *rsub = NULL, *usub = NULL;
    if (port > 0 && natsConnection_ConnectTo (&a, url) == NATS_OK
        && natsConnection_ConnectTo (&b, url) == NATS_OK
        && natsConnection_Subscribe (&rsub, b, "bench.request", s_on_request, NULL) == NATS_OK
        && natsConnection_Subscribe (&usub, b, "secchat.presence", s_on_up, NULL) == NATS_OK
        && natsSubscription_SetPendingLimits (usub, -1, -1) == NATS_OK
        && natsConnection_Flush (b) == NATS_OK) {
        enum { N = 2000 };
        static double rtt[N];
        bool ok = true;
        for (int i = 0; i < N && ok; i++) {
            natsMsg *reply = NULL;
            double t0 = micro_now_ns ();
            ok = natsConnection_RequestString (&reply, a, "bench.request", "x", 1000) == NATS_OK;
            rtt[i] = (micro_now_ns () - t0) / 1000.0;
            natsMsg_Destroy (reply);
        }
        if (ok) {
            qsort (rtt, N, sizeof rtt[0], s_dcmp);
            printf ("nats_request_rtt_us %.1f\n", rtt[N / 2]);
            long count = calls * 20;
            atomic_store (&s_received, 0);
            double t0 = micro_now_ns ();
            for (long i = 0; i < count && ok; i++)
                ok = natsConnection_Publish (a, "secchat.presence", up, (int) up_len) == NATS_OK;
            natsConnection_Flush (a);
            while (ok && atomic_load (&s_received) < count && micro_now_ns () - t0 < 30e9)
                usleep (1000);
            double s = (micro_now_ns () - t0) / 1e9;
            if (ok && atomic_load (&s_received) == count) {
                printf ("nats_up_msgs_per_s %.0f\n", (double) count / s);
                rc = 0;
            }
        }
    }
    natsSubscription_Destroy (rsub);
    natsSubscription_Destroy (usub);
    natsConnection_Destroy (a);
    natsConnection_Destroy (b);
    sc_testproc_destroy (&server);
    if (dir)
        sc_testdir_remove (dir);
    free (log);
    free (dir);
    return rc;
}

int
main (int argc, char *argv [])
{
    int reps = 5;
    long calls = 10000;
    if (micro_args (argc, argv, "bench_presence", "calls", &reps, &calls))
        return 2;
    zhashx_t *table = zhashx_new ();
    if (!table)
        return 1;
    zhashx_set_destructor (table, s_free);
    for (int i = 0; i < S_USERS; i++) {
        char name[SC_NAME_MAX + 1];
        snprintf (name, sizeof name, "user-%05d", (i * 7919) % S_USERS);
        s_entry_t *e = calloc (1, sizeof *e);
        if (!e || zhashx_insert (table, name, e))
            return 1;
    }
    sc_node_msg_t up;
    sc_node_msg_init (&up, SC_NODE_UP);
    strcpy (up.node, "b2");
    up.boot = 12345;
    strcpy (up.from, "user-04242");
    up.from_sid = 77;
    up.since = 1700000000000;
    uint8_t *buf = NULL;
    size_t len = 0;
    if (sc_node_msg_encode (&up, &buf, &len))
        return 1;
    double best_up = 1e18, best_list = 1e18;
    for (int r = 0; r < reps; r++) {
        double ns = s_up_apply (table, buf, len, calls);
        double us = s_list (table);
        if (ns < 0 || us < 0)
            return 1;
        best_up = ns < best_up ? ns : best_up;
        best_list = us < best_list ? us : best_list;
    }
    printf ("presence_up_apply_ns %.0f\n", best_up);
    printf ("list_20000_us %.0f\n", best_list);
    int rc = s_nats (buf, len, calls);
    free (buf);
    zhashx_destroy (&table);
    return rc ? 1 : 0;
}
