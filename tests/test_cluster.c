/*  Several secbrokers as one service over NATS (secbroker --cluster).

    Each test starts three real nats-server processes clustered by routes
    on loopback ephemeral ports, three secbrokers (nodes b1, b2, b3, each
    on a different NATS server first) and real secchat batch clients, and
    checks that users on different nodes see one broker: the whole flow,
    the one-broker demo's scripts with their users spread over two nodes
    (as deploy/docker-compose.cluster.yml plays them), a node killed (its users' peers told, no ghosts in /list, the users
    back on another node), a node restarted, a NATS server killed (the
    chat goes on, every message delivered or reported), NATS
    unreachable at start, and the brokers' NATS authentication (a
    password over TLS, a plain nkey). The codec of the bodies between brokers is
    checked first.

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at https://mozilla.org/MPL/2.0/.
*/
#define _GNU_SOURCE         /* asprintf */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <poll.h>
#include <pthread.h>
#include <fnmatch.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <nats/nats.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "sc_node.h"
#include "sc_testnet.h"
#include "sc_testproc.h"

/* ---- The codec of the bodies between brokers ------------------------------ */

static void
test_node_codec (void **state)
{
    (void) state;
    uint8_t body[40];
    memset (body, 0xab, sizeof body);
    sc_node_msg_t msg;
    sc_node_msg_init (&msg, SC_NODE_RELAY);
    strcpy (msg.node, "b1");
    msg.boot = 0x1122334455667788ull;
    strcpy (msg.from, "alice");
    msg.from_sid = 7;
    strcpy (msg.to, "bob");
    msg.to_sid = 9;
    msg.code = 5;
    msg.since = 1700000000123;
    msg.has_key = true;
    memset (msg.key, 0x42, sizeof msg.key);
    msg.data = body;
    msg.data_len = sizeof body;
    uint8_t *buf = NULL;
    size_t len = 0;
    assert_int_equal (sc_node_msg_encode (&msg, &buf, &len), 0);
    sc_node_msg_t out;
    assert_int_equal (sc_node_msg_decode (buf, len, &out), 0);
    assert_int_equal (out.kind, SC_NODE_RELAY);
    assert_string_equal (out.node, "b1");
    assert_true (out.boot == msg.boot);
    assert_string_equal (out.from, "alice");
    assert_string_equal (out.to, "bob");
    assert_true (out.from_sid == 7 && out.to_sid == 9 && out.code == 5);
    assert_true (out.since == msg.since);
    assert_true (out.has_key && memcmp (out.key, msg.key, sizeof msg.key) == 0);
    assert_int_equal (out.data_len, sizeof body);
    assert_memory_equal (out.data, body, sizeof body);

    /* strict: trailing bytes, truncation, another version */
    uint8_t *longer = malloc (len + 1);
    assert_non_null (longer);
    memcpy (longer, buf, len);
    longer[len] = 0;
    assert_int_equal (sc_node_msg_decode (longer, len + 1, &out), SC_CODEC_ETRAILING);
    assert_int_equal (sc_node_msg_decode (buf, len - 1, &out), SC_CODEC_EPARSE);
    buf[1] = 2;                                 /* version 2 */
    assert_int_equal (sc_node_msg_decode (buf, len, &out), SC_CODEC_EVERSION);
    buf[1] = SC_NODE_VERSION;
    buf[2] = 99;                                /* no such kind */
    assert_int_equal (sc_node_msg_decode (buf, len, &out), SC_CODEC_EOPCODE);
    free (longer);
    free (buf);

    /* a bad node name is neither sent nor taken */
    strcpy (msg.node, "B 1");
    assert_int_equal (sc_node_msg_encode (&msg, &buf, &len), -1);
    const uint8_t bad_name[] = { 0x9c, 1, 1, 0xa3, 'B', ' ', '1', 0, 0xa0, 0, 0xa0, 0, 0,
                                 0, 0xc4, 0, 0xc4, 0 };
    assert_int_equal (sc_node_msg_decode (bad_name, sizeof bad_name, &out), SC_CODEC_ENAME);
    /* an array inside claiming 2^32 elements is refused before anything
       is allocated for it */
    const uint8_t nested[] = { 0x9c, 1, 1, 0xdd, 0xff, 0xff, 0xff, 0xff };
    assert_int_equal (sc_node_msg_decode (nested, sizeof nested, &out), SC_CODEC_EDEPTH);
    const uint8_t not_array[] = { 0xa1, 'x' };
    assert_int_equal (sc_node_msg_decode (not_array, sizeof not_array, &out), SC_CODEC_ETYPE);
}

/* Mutations of a valid body (bytes changed, cut, extended): every
   decode either fails with a codec error, leaving nothing, or gives
   valid names and data inside the input. Under the sanitizers a read
   out of bounds aborts. */
static void
test_node_codec_mutations (void **state)
{
    (void) state;
    uint8_t body[64];
    memset (body, 0x5a, sizeof body);
    sc_node_msg_t msg;
    sc_node_msg_init (&msg, SC_NODE_RELAY);
    strcpy (msg.node, "node-1");
    strcpy (msg.from, "alice");
    strcpy (msg.to, "bob");
    msg.from_sid = 300;
    msg.to_sid = 70000;
    msg.since = -5;
    msg.has_key = true;
    msg.data = body;
    msg.data_len = sizeof body;
    uint8_t *good = NULL;
    size_t len = 0;
    assert_int_equal (sc_node_msg_encode (&msg, &good, &len), 0);
    uint8_t buf[256];
    assert_true (len + 16 <= sizeof buf);
    srand (12345);
    size_t decoded = 0;
    for (int round = 0; round < 200000; round++) {
        memcpy (buf, good, len);
        size_t n = len;
        int edits = 1 + rand () % 4;
        for (int e = 0; e < edits; e++) {
            int what = rand () % 3;
            if (what == 0)
                buf[rand () % n] = (uint8_t) rand ();
            else
            if (what == 1 && n > 1)
                n = 1 + (size_t) rand () % (n - 1);
            else
            if (n < sizeof buf)
                buf[n++] = (uint8_t) rand ();
        }
        /* exactly n bytes, so that a read past them is a heap overflow */
        uint8_t *in = malloc (n);
        assert_non_null (in);
        memcpy (in, buf, n);
        sc_node_msg_t out;
        int rc = sc_node_msg_decode (in, n, &out);
        if (rc == 0) {
            decoded++;
            assert_true (sc_name_valid (out.node, strlen (out.node)));
            assert_true (!*out.from || sc_name_valid (out.from, strlen (out.from)));
            assert_true (!*out.to || sc_name_valid (out.to, strlen (out.to)));
            assert_true (out.data_len <= SC_NODE_DATA_MAX);
            assert_true (out.data_len == 0
                         || (out.data >= in && out.data + out.data_len <= in + n));
        }
        else {
            assert_true (rc < 0 && rc >= SC_CODEC_ENOMEM);
            assert_int_equal (out.kind, 0);
            assert_null (out.data);
        }
        free (in);
    }
    free (good);
    print_message ("%zu of 200000 mutations decoded\n", decoded);
}

/* ---- A cluster: three NATS servers, three secbrokers ------------------------ */

#define S_NODES 3

static struct {
    char *dir;
    char *keys;
} T;

typedef struct {
    char *dir;
    sc_testproc_t *nats[S_NODES];
    int client_port[S_NODES];
    int route_port[S_NODES];
    sc_testproc_t *broker[S_NODES];
    char endpoint[S_NODES][256];
    char urls[S_NODES][256];
} cluster_t;

static cluster_t C;

/* The port after `prefix` in the file, or -1. */
static int
s_port_in_log (const char *path, const char *prefix)
{
    char *text = sc_testdir_slurp (path, NULL);
    const char *at = text ? strstr (text, prefix) : NULL;
    int port = at ? atoi (at + strlen (prefix)) : -1;
    free (text);
    return port;
}

/* NATS server n(i+1), with JetStream (the brokers' buckets) in a store
   of its own; the first one routes nowhere (clustered JetStream wants a
   route), the others to it. */
static void
s_nats_start (int i)
{
    char name[16], log_name[32], store_name[32], routes[64];
    snprintf (name, sizeof name, "n%d", i + 1);
    snprintf (log_name, sizeof log_name, "nats%d.log", i + 1);
    snprintf (store_name, sizeof store_name, "nats%d.js", i + 1);
    char *log = sc_testdir_path (C.dir, log_name);
    char *store = sc_testdir_path (C.dir, store_name);
    const char *argv[20] = { "nats-server", "-a", "127.0.0.1", "-p", "-1", "--cluster",
                             "nats://127.0.0.1:-1", "--cluster_name", "secchat", "-n", name,
                             "--no_advertise", "-js", "-sd", store };
    int argc = 15;
    snprintf (routes, sizeof routes, "nats://127.0.0.1:%d", i > 0 ? C.route_port[0] : 1);
    argv[argc++] = "--routes";
    argv[argc++] = routes;
    argv[argc] = NULL;
    C.nats[i] = sc_testproc_new (name, argv, log);
    assert_non_null (C.nats[i]);
    int64_t deadline = sc_testproc_now_ms () + sc_testproc_timeout (10000);
    while (sc_testproc_now_ms () < deadline
           && (C.route_port[i] = s_port_in_log (log, "route connections on 127.0.0.1:")) <= 0)
        sc_testproc_sleep_ms (50);
    C.client_port[i] = s_port_in_log (log, "client connections on 127.0.0.1:");
    free (log);
    free (store);
    assert_true (C.route_port[i] > 0 && C.client_port[i] > 0);
}

/* JetStream has its leader: some server of the cluster says so. */
static void
s_nats_ready (void)
{
    int64_t deadline = sc_testproc_now_ms () + sc_testproc_timeout (20000);
    while (sc_testproc_now_ms () < deadline) {
        for (int i = 0; i < S_NODES; i++) {
            char log_name[32];
            snprintf (log_name, sizeof log_name, "nats%d.log", i + 1);
            char *log = sc_testdir_path (C.dir, log_name);
            char *text = sc_testdir_slurp (log, NULL);
            bool ready = text && strstr (text, "JetStream cluster new metadata leader") ? true
                       : text && strstr (text, "Self is new JetStream cluster metadata leader");
            free (text);
            free (log);
            if (ready)
                return;
        }
        sc_testproc_sleep_ms (50);
    }
    sc_testproc_dump_all ();
    fail_msg ("no JetStream metadata leader");
}

/* Node b(i+1): its own folder and log, NATS server i+2 first (b1 on n3,
   b2 on n1, b3 on n2), then the others. */
static void
s_broker_start (int i)
{
    int first = (i + 2) % S_NODES;
    if (!*C.urls[i])        /* else the test's own */
        snprintf (C.urls[i], sizeof C.urls[i], "nats://127.0.0.1:%d,nats://127.0.0.1:%d,"
                  "nats://127.0.0.1:%d", C.client_port[first],
                  C.client_port[(first + 1) % S_NODES], C.client_port[(first + 2) % S_NODES]);
    char node[16], sub[16];
    snprintf (node, sizeof node, "b%d", i + 1);
    snprintf (sub, sizeof sub, "b%d", i + 1);
    char *dir = sc_testdir_path (C.dir, sub);
    if (access (dir, F_OK) != 0)
        assert_int_equal (mkdir (dir, 0700), 0);
    const char *const extra[] = { "--cluster", C.urls[i], "--node", node,
                                  "--metrics", "127.0.0.1:0", NULL };
    C.broker[i] = sc_testproc_broker_new_with (T.keys, dir, extra, C.endpoint[i],
                                               sizeof C.endpoint[i]);
    free (dir);
    assert_non_null (C.broker[i]);
}

static void
s_cluster_start (const char *tag)
{
    memset (&C, 0, sizeof C);
    C.dir = sc_testdir_path (T.dir, tag);
    assert_int_equal (mkdir (C.dir, 0700), 0);
    for (int i = 0; i < S_NODES; i++)
        s_nats_start (i);
    s_nats_ready ();
    for (int i = 0; i < S_NODES; i++)
        s_broker_start (i);
}

static sc_testproc_t *
s_client_at (const char *user, const char *name, const char *endpoint)
{
    sc_testclient_t opts = { .keys = T.keys, .workdir = C.dir, .endpoint = endpoint,
                             .user = user, .name = name };
    sc_testproc_t *client = sc_testproc_client_new (&opts);
    assert_non_null (client);
    char ready[64];
    snprintf (ready, sizeof ready, "ready %s", user);
    assert_int_equal (sc_testproc_expect (client, ready, sc_testproc_timeout (10000)), 0);
    return client;
}

static sc_testproc_t *
s_client_as (const char *user, const char *name, int node)
{
    return s_client_at (user, name, C.endpoint[node]);
}

static sc_testproc_t *
s_client (const char *user, int node)
{
    return s_client_as (user, user, node);
}

/* Node b(i+1)'s metrics port, from its log. */
static int
s_metrics_port (int i)
{
    char sub[32];
    snprintf (sub, sizeof sub, "b%d/broker.log", i + 1);
    char *path = sc_testdir_path (C.dir, sub);
    const char *prefix = "metrics on http://127.0.0.1:";
    int port = 0;
    int64_t deadline = sc_testproc_now_ms () + sc_testproc_timeout (5000);
    while (port <= 0 && sc_testproc_now_ms () < deadline) {
        char *log = sc_testdir_slurp (path, NULL);
        const char *at = log ? strstr (log, prefix) : NULL;
        port = at ? atoi (at + strlen (prefix)) : 0;
        free (log);
        if (port <= 0)
            sc_testproc_sleep_ms (50);
    }
    free (path);
    assert_true (port > 0 && port < 65536);
    return port;
}

/* Scrapes node b(i+1) until its sample name reads want (figures are
   handed to the metrics server a few times a second). */
static void
s_metric_until (int i, const char *name, unsigned long long want, int timeout_ms)
{
    int port = s_metrics_port (i);
    int64_t deadline = sc_testproc_now_ms () + timeout_ms;
    unsigned long long value = 0;
    char *text = NULL;
    do {
        free (text);
        text = sc_testproc_metrics (port);
        assert_non_null (text);
        if (sc_testproc_metric (text, name, &value))
            fail_msg ("no sample %s in:\n%s", name, text);
        if (value == want) {
            free (text);
            return;
        }
        sc_testproc_sleep_ms (50);
    } while (sc_testproc_now_ms () < deadline);
    fail_msg ("%s is %llu, not %llu:\n%s", name, value, want, text);
}

/* /list until name is not in what it answers (a ghost gone). */
static void
s_list_without (sc_testproc_t *client, const char *name, int timeout_ms)
{
    int64_t deadline = sc_testproc_now_ms () + timeout_ms;
    const char *line = NULL;
    do {
        assert_int_equal (sc_testproc_send (client, "/list"), 0);
        line = sc_testproc_expect_prefix (client, "users", sc_testproc_timeout (5000));
        assert_non_null (line);
        bool found = false;
        char copy[512];
        snprintf (copy, sizeof copy, "%s", line);
        char *save = NULL;
        for (char *w = strtok_r (copy, " ", &save); w; w = strtok_r (NULL, " ", &save))
            found = found || strcmp (w, name) == 0;
        if (!found)
            return;
        sc_testproc_sleep_ms (250);
    } while (sc_testproc_now_ms () < deadline);
    sc_testproc_dump_all ();
    fail_msg ("/list still said \"%s\" after %d ms", line, timeout_ms);
}

/* /list until it answers exactly `expect`: presence crosses NATS. */
static void
s_list_until (sc_testproc_t *client, const char *expect, int timeout_ms)
{
    int64_t deadline = sc_testproc_now_ms () + timeout_ms;
    const char *line = NULL;
    do {
        assert_int_equal (sc_testproc_send (client, "/list"), 0);
        line = sc_testproc_expect_prefix (client, "users", sc_testproc_timeout (5000));
        assert_non_null (line);
        if (strcmp (line, expect) == 0)
            return;
        sc_testproc_sleep_ms (250);
    } while (sc_testproc_now_ms () < deadline);
    sc_testproc_dump_all ();
    fail_msg ("/list said \"%s\", not \"%s\", for %d ms", line, expect, timeout_ms);
}

/* from asks to, to accepts, both reach `chat`. */
static void
s_open_chat (sc_testproc_t *from, const char *from_name, sc_testproc_t *to,
             const char *to_name)
{
    int t = sc_testproc_timeout (10000);
    char line[128];
    snprintf (line, sizeof line, "/talk %s", to_name);
    assert_int_equal (sc_testproc_send (from, line), 0);
    snprintf (line, sizeof line, "request %s", from_name);
    assert_int_equal (sc_testproc_expect (to, line, t), 0);
    assert_int_equal (sc_testproc_send (to, "/accept"), 0);
    snprintf (line, sizeof line, "accepted %s", to_name);
    assert_int_equal (sc_testproc_expect (from, line, t), 0);
    snprintf (line, sizeof line, "chat %s ", to_name);
    assert_non_null (sc_testproc_expect_prefix (from, line, t));
    snprintf (line, sizeof line, "chat %s ", from_name);
    assert_non_null (sc_testproc_expect_prefix (to, line, t));
}

static void
s_say (sc_testproc_t *from, sc_testproc_t *to, const char *from_name, const char *text)
{
    char line[512];
    snprintf (line, sizeof line, "msg %s %s", from_name, text);
    assert_int_equal (sc_testproc_send (from, text), 0);
    assert_int_equal (sc_testproc_expect (to, line, sc_testproc_timeout (10000)), 0);
}

static void
s_quit (sc_testproc_t *client)
{
    assert_int_equal (sc_testproc_send (client, "/quit"), 0);
    assert_int_equal (sc_testproc_skip_to (client, "bye", sc_testproc_timeout (10000)), 0);
    assert_int_equal (sc_testproc_wait (client, sc_testproc_timeout (10000)), 0);
}

/* A broker told to stop exits 0 (under the sanitizers: with no error
   and no leak), else its log is shown. */
static void
s_stopped_cleanly (sc_testproc_t *broker)
{
    int status = sc_testproc_wait (broker, sc_testproc_timeout (10000));
    if (status != 0) {
        fprintf (stderr, "broker exit status %d\n", status);
        sc_testproc_dump (broker);
    }
    assert_int_equal (status, 0);
}

/* ---- The whole flow across nodes -------------------------------------------- */

static void
test_flow_across_nodes (void **state)
{
    (void) state;
    s_cluster_start ("flow");
    int t = sc_testproc_timeout (10000);
    sc_testproc_t *alice = s_client ("alice", 0);
    sc_testproc_t *bob = s_client ("bob", 1);
    sc_testproc_t *carol = s_client ("carol", 2);
    /* everyone online on every node, sorted, oneself left out */
    s_list_until (alice, "users bob carol", t);
    s_list_until (bob, "users alice carol", t);
    s_list_until (carol, "users alice bob", t);
    /* the cluster link in the metrics: b1 is connected, hears two other
       nodes, and knows of bob and carol there */
    s_metric_until (0, "secbroker_cluster_connected", 1, t);
    s_metric_until (0, "secbroker_cluster_nodes", 2, t);
    s_metric_until (0, "secbroker_cluster_remote_users", 2, t);
    s_metric_until (0, "secbroker_cluster_reconnects_total", 0, t);

    /* registered but online nowhere */
    assert_int_equal (sc_testproc_send (alice, "/talk dave"), 0);
    assert_int_equal (sc_testproc_expect (alice, "not-found dave", t), 0);

    /* carol (b3) asks bob (b2): alice (b1) finds him busy; bob refuses */
    assert_int_equal (sc_testproc_send (carol, "/talk bob"), 0);
    assert_int_equal (sc_testproc_expect (bob, "request carol", t), 0);
    assert_int_equal (sc_testproc_send (alice, "/talk bob"), 0);
    assert_int_equal (sc_testproc_expect (alice, "busy bob", t), 0);
    /* the busy user is told who tried, across nodes too */
    assert_int_equal (sc_testproc_expect (bob, "missed alice", t), 0);
    assert_int_equal (sc_testproc_send (bob, "/refuse"), 0);
    assert_int_equal (sc_testproc_expect (carol, "refused bob", t), 0);
    assert_int_equal (sc_testproc_expect (bob, "closed carol", t), 0);

    /* carol withdraws a request: alice hears it */
    assert_int_equal (sc_testproc_send (carol, "/talk alice"), 0);
    assert_int_equal (sc_testproc_expect (alice, "request carol", t), 0);
    assert_int_equal (sc_testproc_send (carol, "/leave"), 0);
    assert_int_equal (sc_testproc_expect (alice, "closed carol", t), 0);
    assert_int_equal (sc_testproc_expect (carol, "closed alice", t), 0);

    /* alice (b1) and bob (b2) chat, both ways, confirmed end to end */
    s_open_chat (alice, "alice", bob, "bob");
    s_say (alice, bob, "alice", "hello across the cluster");
    s_say (bob, alice, "bob", "hello from the other node");
    /* garbage on the brokers' subjects is dropped and logged; the chat
       goes on */
    char url[64];
    snprintf (url, sizeof url, "nats://127.0.0.1:%d", C.client_port[0]);
    natsConnection *nc = NULL;
    assert_int_equal (natsConnection_ConnectTo (&nc, url), NATS_OK);
    static const uint8_t garbage[][8] = { { 0xc1 }, { 0x9c, 0x01, 0x0f }, { 0x91, 0x02 },
                                          { 0xdd, 0xff, 0xff, 0xff, 0xff } };
    for (size_t i = 0; i < sizeof garbage / sizeof garbage[0]; i++) {
        assert_int_equal (natsConnection_Publish (nc, "secchat.node.b2", garbage[i], 8), NATS_OK);
        assert_int_equal (natsConnection_Publish (nc, "secchat.presence", garbage[i], 8), NATS_OK);
    }
    /* a well-formed request "from alice" with a key that is not hers
       (what a publisher on NATS could forge) is refused by carol's node:
       carol is never asked */
    sc_node_msg_t forged;
    sc_node_msg_init (&forged, SC_NODE_RTT);
    strcpy (forged.node, "b1");
    forged.boot = 1;
    strcpy (forged.from, "alice");
    forged.from_sid = 12345;
    strcpy (forged.to, "carol");
    forged.has_key = true;
    assert_int_equal (RAND_bytes (forged.key, sizeof forged.key), 1);
    uint8_t *bytes = NULL;
    size_t bytes_len = 0;
    assert_int_equal (sc_node_msg_encode (&forged, &bytes, &bytes_len), 0);
    assert_int_equal (natsConnection_Publish (nc, "secchat.node.b3", bytes, (int) bytes_len),
                      NATS_OK);
    free (bytes);
    assert_int_equal (natsConnection_FlushTimeout (nc, 5000), NATS_OK);
    natsConnection_Destroy (nc);
    assert_int_equal (sc_testproc_expect_none (carol, 1500), 0);
    char *forged_log = sc_testdir_path (C.dir, "b3/broker.log");
    char *forged_said = sc_testdir_slurp (forged_log, NULL);
    assert_non_null (forged_said);
    assert_non_null (strstr (forged_said, "cluster: a key for alice from node b1 that is not the "
                                      "registry's: refused"));
    free (forged_said);
    free (forged_log);
    s_say (alice, bob, "alice", "after the garbage");
    s_say (bob, alice, "bob", "none of it reached us");
    char *b2_log = sc_testdir_path (C.dir, "b2/broker.log");
    char *said = sc_testdir_slurp (b2_log, NULL);
    assert_non_null (said);
    assert_non_null (strstr (said, "cluster: dropped a malformed message: "));
    free (said);
    free (b2_log);
    for (int i = 0; i < 20; i++) {
        char text[32];
        snprintf (text, sizeof text, "in order %d", i);
        assert_int_equal (sc_testproc_send (alice, text), 0);
    }
    for (int i = 0; i < 20; i++) {
        char line[64];
        snprintf (line, sizeof line, "msg alice in order %d", i);
        assert_int_equal (sc_testproc_expect (bob, line, t), 0);
    }
    assert_int_equal (sc_testproc_expect_acked (alice, "bob", 21, t), 0);
    assert_int_equal (sc_testproc_expect_acked (bob, "alice", 1, t), 0);
    /* in a chat on another node: busy */
    assert_int_equal (sc_testproc_send (carol, "/talk alice"), 0);
    assert_int_equal (sc_testproc_expect (carol, "busy alice", t), 0);
    assert_int_equal (sc_testproc_expect (alice, "missed carol", t), 0);
    /* bob leaves: alice is told */
    assert_int_equal (sc_testproc_send (bob, "/leave"), 0);
    assert_int_equal (sc_testproc_expect (alice, "closed bob", t), 0);
    assert_int_equal (sc_testproc_expect (bob, "closed alice", t), 0);

    /* a second login of alice, on b3, replaces the first, on b1 */
    s_open_chat (carol, "carol", alice, "alice");
    sc_testproc_t *alice2 = s_client_as ("alice", "alice2", 2);
    const char *line = sc_testproc_expect_prefix (alice, "error replaced ", t);
    assert_non_null (line);
    assert_non_null (sc_testproc_expect_prefix (carol, "error unconfirmed-close alice (", t));
    assert_int_equal (sc_testproc_skip_to (carol, "closed alice", t), 0);
    s_list_until (bob, "users alice carol", t);
    s_list_until (alice2, "users bob carol", t);

    /* quit: the peer on the other node is told */
    s_open_chat (alice2, "alice", carol, "carol");
    s_say (carol, alice2, "carol", "same node now");
    assert_int_equal (sc_testproc_send (bob, "/talk carol"), 0);
    assert_int_equal (sc_testproc_expect (bob, "busy carol", t), 0);
    assert_int_equal (sc_testproc_expect (carol, "missed bob", t), 0);
    s_quit (carol);
    assert_int_equal (sc_testproc_expect (alice2, "closed carol", t), 0);
    s_list_until (bob, "users alice", t);

    /* b2 stops (SIGTERM) mid-chat: it says goodbye, so alice hears at
       once, without waiting for a silent node to be given up (5 s) */
    s_open_chat (alice2, "alice", bob, "bob");
    s_say (bob, alice2, "bob", "going down");
    assert_int_equal (sc_testproc_signal (C.broker[1], SIGTERM), 0);
    s_stopped_cleanly (C.broker[1]);
    assert_non_null (sc_testproc_expect_prefix (alice2, "error unconfirmed-close bob (", t));
    assert_int_equal (sc_testproc_skip_to (alice2, "closed bob", t), 0);
    /* b3 (alice's node) learnt it from the goodbye, not from silence */
    char *b3_log = sc_testdir_path (C.dir, "b3/broker.log");
    char *b3_said = sc_testdir_slurp (b3_log, NULL);
    assert_non_null (b3_said);
    assert_non_null (strstr (b3_said, "cluster: node b2 gone (stopped)"));
    assert_null (strstr (b3_said, "cluster: node b2 gone (silent)"));
    free (b3_said);
    free (b3_log);
    s_list_until (alice2, "users", t);
    s_quit (alice2);
    sc_testproc_destroy (&alice);
    sc_testproc_destroy (&bob);
    /* the others stop cleanly too (under the sanitizers: no leak) */
    for (int i = 0; i < S_NODES; i += 2) {
        assert_int_equal (sc_testproc_signal (C.broker[i], SIGTERM), 0);
        s_stopped_cleanly (C.broker[i]);
    }
}

/* ---- The cluster demo's conversation, on loopback ------------------------------ */

/* deploy/docker-compose.cluster.yml plays the one-broker demo's scripts
   with alice and carol on b1 and bob on b2: the same lines must come as
   on one broker (test_deploy checks the compose file runs exactly
   this). */
typedef struct {
    const char *user;
    int node;
    const char *const *expected;
    sc_testproc_t *proc;
    char *lines[128];
    size_t nlines;
    bool done;
} s_player_t;

static const char *const s_alice_lines[] = {
    "ready alice", "users bob carol", "refused carol", "accepted bob", "chat bob *",
    "msg bob hi alice, only you can read this", "fingerprint * bob * *", "closed bob",
    "bye", NULL
};
static const char *const s_bob_lines[] = {
    "ready bob", "users alice carol", "request alice", "chat alice *",
    "msg alice hi bob! carol is busy today", "closed alice", "accepted carol",
    "chat carol *", "msg carol hello bob, not any more", "bye", NULL
};
static const char *const s_carol_lines[] = {
    "ready carol", "users alice bob", "request alice", "request bob", "chat bob *",
    "msg bob hello carol, alice told me you were busy", "closed bob", "bye", NULL
};

static void
test_demo_scripts_across_nodes (void **state)
{
    (void) state;
    s_cluster_start ("demo");
    char *client = sc_testdir_path (sc_testproc_bin_dir (), "secchat");
    setenv ("SECCHAT", client, 1);
    char wait_s[16];
    snprintf (wait_s, sizeof wait_s, "%d", sc_testproc_timeout (20000) / 1000);
    setenv ("SECCHAT_WAIT", wait_s, 1);
    setenv ("SECCHAT_LOGIN_TIMEOUT", "10", 1);
    s_player_t players[3] = {
        { "alice", 0, s_alice_lines, NULL, { NULL }, 0, false },
        { "bob", 1, s_bob_lines, NULL, { NULL }, 0, false },
        { "carol", 0, s_carol_lines, NULL, { NULL }, 0, false },
    };
    for (size_t i = 0; i < 3; i++) {
        const char *argv[] = { "sh", "deploy/scripts/run-client.sh", players[i].user,
                               C.endpoint[players[i].node], T.keys, NULL };
        char log_name[64];
        snprintf (log_name, sizeof log_name, "run-%s.log", players[i].user);
        char *log = sc_testdir_path (C.dir, log_name);
        players[i].proc = sc_testproc_new (players[i].user, argv, log);
        assert_non_null (players[i].proc);
        assert_int_equal (sc_testproc_close_input (players[i].proc), 0);
        free (log);
    }
    unsetenv ("SECCHAT");
    unsetenv ("SECCHAT_WAIT");
    unsetenv ("SECCHAT_LOGIN_TIMEOUT");
    free (client);
    int64_t deadline = sc_testproc_now_ms () + sc_testproc_timeout (60000);
    size_t done = 0;
    while (done < 3 && sc_testproc_now_ms () < deadline)
        for (size_t i = 0; i < 3; i++) {
            s_player_t *p = &players[i];
            const char *line = NULL;
            int rc = p->done ? 0 : sc_testproc_read_line (p->proc, 50, &line);
            if (rc == 1 && p->nlines < 128)
                p->lines[p->nlines++] = strdup (line);
            else
            if (rc == -1) {
                p->done = true;
                done++;
            }
        }
    bool ok = done == 3;
    for (size_t i = 0; ok && i < 3; i++) {
        ok = sc_testproc_wait (players[i].proc, sc_testproc_timeout (10000)) == 0;
        for (const char *const *e = players[i].expected; ok && *e; e++) {
            bool found = false;
            for (size_t j = 0; j < players[i].nlines && !found; j++)
                found = fnmatch (*e, players[i].lines[j], 0) == 0;
            if (!found)
                fprintf (stderr, "%s never printed a line matching '%s'\n", players[i].user, *e);
            ok = found;
        }
    }
    if (!ok)
        sc_testproc_dump_all ();
    for (size_t i = 0; i < 3; i++)
        for (size_t j = 0; j < players[i].nlines; j++)
            free (players[i].lines[j]);
    assert_true (ok);
}

/* ---- A node killed, then restarted ------------------------------------------ */

static void
test_node_killed_and_restarted (void **state)
{
    (void) state;
    s_cluster_start ("node-kill");
    int t = sc_testproc_timeout (10000);
    sc_testproc_t *alice = s_client ("alice", 0);
    sc_testproc_t *bob = s_client ("bob", 1);
    sc_testproc_t *carol = s_client ("carol", 2);
    /* erin's client has two nodes to go to, b2 first */
    char endpoints[512];
    snprintf (endpoints, sizeof endpoints, "%s,%s", C.endpoint[1], C.endpoint[2]);
    sc_testproc_t *erin = s_client_at ("erin", "erin", endpoints);
    s_list_until (carol, "users alice bob erin", t);
    s_open_chat (alice, "alice", bob, "bob");
    s_say (alice, bob, "alice", "before the crash");
    assert_int_equal (sc_testproc_expect_acked (alice, "bob", 1, t), 0);

    /* b2 dies with bob's session: alice (b1) is told within 10 s, and
       bob is in nobody's list within 10 s */
    int64_t killed = sc_testproc_now_ms ();
    assert_int_equal (sc_testproc_kill (C.broker[1]), SC_TESTPROC_SIGNALED + SIGKILL);
    sc_testproc_destroy (&C.broker[1]);
    sc_testproc_destroy (&bob);     /* it would only retry b2 */
    int ten = sc_testproc_timeout (10000);
    assert_non_null (sc_testproc_expect_prefix (alice, "error unconfirmed-close bob (", ten));
    assert_int_equal (sc_testproc_skip_to (alice, "closed bob", ten), 0);
    assert_true (sc_testproc_now_ms () - killed <= ten);
    /* bob, whose client knows only b2, is gone from every list within
       10 s: no ghost (erin may already be back, on b3) */
    s_list_without (carol, "bob", (int) (ten - (sc_testproc_now_ms () - killed)));
    s_list_without (alice, "bob", t);
    /* erin's client finds b2 gone (its heartbeat) and goes on to b3 by
       itself */
    assert_int_equal (sc_testproc_skip_to (erin, "ready erin", sc_testproc_timeout (30000)), 0);
    s_list_until (carol, "users alice erin", t);
    s_list_until (alice, "users carol erin", t);
    /* erin chats again, from b3 with alice on b1 */
    s_open_chat (alice, "alice", erin, "erin");
    s_say (erin, alice, "erin", "failed over to b3");
    s_say (alice, erin, "alice", "welcome to b3");
    assert_int_equal (sc_testproc_send (erin, "/leave"), 0);
    assert_int_equal (sc_testproc_expect (alice, "closed erin", t), 0);
    assert_int_equal (sc_testproc_expect (erin, "closed alice", t), 0);

    /* bob logs in to another node and chats again */
    sc_testproc_t *bob2 = s_client_as ("bob", "bob2", 2);
    s_list_until (alice, "users bob carol erin", t);
    s_open_chat (alice, "alice", bob2, "bob");
    s_say (bob2, alice, "bob", "back on b3");

    /* b2 restarts, under the same name: it rejoins, and users log in to
       it and chat across it */
    s_broker_start (1);
    sc_testproc_t *dave = s_client ("dave", 1);
    s_list_until (carol, "users alice bob dave erin", t);
    s_list_until (dave, "users alice bob carol erin", t);
    s_open_chat (carol, "carol", dave, "dave");
    s_say (dave, carol, "dave", "from the restarted node");
    s_say (carol, dave, "carol", "welcome back");
    s_quit (dave);
    assert_int_equal (sc_testproc_expect (carol, "closed dave", t), 0);
    s_quit (carol);
    s_quit (bob2);
    assert_int_equal (sc_testproc_expect (alice, "closed bob", t), 0);
    s_quit (erin);
    s_quit (alice);
}

/* ---- A node cut off from NATS, then back ----------------------------------------- */

/* b2 reaches NATS only through a proxy, which is cut for longer than a
   node may be silent: b1 and b3 give b2 up (alice is told bob is lost,
   bob leaves the lists) while b2, reconnecting, judges nobody. When it
   is back, b1 tells it so, and bob is told too: no chat is left open on
   one side only. Then both chat again. */
static void
test_node_cut_off_from_nats (void **state)
{
    (void) state;
    memset (&C, 0, sizeof C);
    C.dir = sc_testdir_path (T.dir, "cut-off");
    assert_int_equal (mkdir (C.dir, 0700), 0);
    for (int i = 0; i < S_NODES; i++)
        s_nats_start (i);
    s_nats_ready ();
    sc_testnet_proxy_t *proxy = sc_testnet_proxy_new (false, C.client_port[0], false);
    assert_non_null (proxy);
    snprintf (C.urls[1], sizeof C.urls[1], "nats://127.0.0.1:%d",
              sc_testnet_proxy_port (proxy));
    for (int i = 0; i < S_NODES; i++)
        s_broker_start (i);
    int t = sc_testproc_timeout (10000);
    sc_testproc_t *alice = s_client ("alice", 0);
    sc_testproc_t *bob = s_client ("bob", 1);
    sc_testproc_t *carol = s_client ("carol", 2);
    s_list_until (carol, "users alice bob", t);
    s_open_chat (alice, "alice", bob, "bob");
    s_say (alice, bob, "alice", "before the cut");

    assert_int_equal (sc_testnet_proxy_cut (proxy, true), 0);
    assert_non_null (sc_testproc_expect_prefix (alice, "error unconfirmed-close bob (", t));
    assert_int_equal (sc_testproc_skip_to (alice, "closed bob", t), 0);
    s_list_until (carol, "users alice", t);
    assert_int_equal (sc_testnet_proxy_cut (proxy, false), 0);
    /* back: bob hears that the chat is over, and everyone is listed */
    assert_non_null (sc_testproc_expect_prefix (bob, "error unconfirmed-close alice (", 2 * t));
    assert_int_equal (sc_testproc_skip_to (bob, "closed alice", t), 0);
    s_list_until (carol, "users alice bob", t);
    s_list_until (bob, "users alice carol", t);
    char *b1_log = sc_testdir_path (C.dir, "b1/broker.log");
    char *said = sc_testdir_slurp (b1_log, NULL);
    assert_non_null (said);
    assert_non_null (strstr (said, "cluster: node b2 is back after we gave it up: told it"));
    free (said);
    free (b1_log);
    s_open_chat (bob, "bob", alice, "alice");
    s_say (alice, bob, "alice", "after the cut");
    s_say (bob, alice, "bob", "glad to be back");
    s_quit (alice);
    s_quit (bob);
    s_quit (carol);
    sc_testnet_proxy_destroy (&proxy);
}

/* ---- One NATS server of three killed ----------------------------------------- */

typedef struct {
    int received;               /* "msg PEER PREFIX..." lines             */
    int reported;               /* undelivered errors and unacked counts  */
} s_tally_t;

/* Read client's lines until `last`, counting. Only what a chat through
   a failover may say is allowed besides. */
static void
s_tally_until (sc_testproc_t *client, const char *prefix, const char *last, s_tally_t *tally)
{
    int64_t deadline = sc_testproc_now_ms () + sc_testproc_timeout (10000);
    const char *line = NULL;
    while (sc_testproc_now_ms () < deadline) {
        int rc = sc_testproc_read_line (client, 1000, &line);
        if (rc < 0)
            break;
        if (rc == 0)
            continue;
        if (strcmp (line, last) == 0)
            return;
        if (strncmp (line, prefix, strlen (prefix)) == 0)
            tally->received++;
        else
        if (strncmp (line, "error undelivered ", 18) == 0)
            tally->reported++;
        else
        if (strncmp (line, "unacked ", 8) == 0)
            tally->reported += atoi (strchr (line + 8, ' ') + 1);
        else
        if (strncmp (line, "lost ", 5) != 0) {
            sc_testproc_dump_all ();
            fail_msg ("unexpected line \"%s\" before \"%s\"", line, last);
        }
    }
    sc_testproc_dump_all ();
    fail_msg ("no \"%s\"", last);
}

static void
test_nats_server_killed (void **state)
{
    (void) state;
    s_cluster_start ("nats-kill");
    int t = sc_testproc_timeout (10000);
    sc_testproc_t *alice = s_client ("alice", 0);      /* b1, on n3 */
    sc_testproc_t *bob = s_client ("bob", 1);          /* b2, on n1 */
    s_list_until (alice, "users bob", t);
    s_open_chat (alice, "alice", bob, "bob");
    s_say (alice, bob, "alice", "before");

    /* n3 dies under b1: b1 reconnects to another server; what both send
       meanwhile is delivered or reported to its sender */
    assert_int_equal (sc_testproc_kill (C.nats[2]), SC_TESTPROC_SIGNALED + SIGKILL);
    enum { SENT = 10 };
    for (int i = 0; i < SENT; i++) {
        char text[32];
        snprintf (text, sizeof text, "during %d", i);
        assert_int_equal (sc_testproc_send (alice, text), 0);
        snprintf (text, sizeof text, "back %d", i);
        assert_int_equal (sc_testproc_send (bob, text), 0);
        sc_testproc_sleep_ms (100);
    }
    /* the chat goes on: messages after it arrive */
    sc_testproc_sleep_ms (1500);
    assert_int_equal (sc_testproc_send (alice, "after"), 0);
    assert_int_equal (sc_testproc_send (bob, "after too"), 0);
    s_tally_t to_bob = { 0, 0 }, to_alice = { 0, 0 };
    s_tally_until (bob, "msg alice during ", "msg alice after", &to_bob);
    s_tally_until (alice, "msg bob back ", "msg bob after too", &to_alice);
    /* the end of the chat counts what was never confirmed */
    assert_int_equal (sc_testproc_send (alice, "/leave"), 0);
    /* (no message may come any more: "-" counts none) */
    s_tally_until (alice, "-", "closed bob", &to_bob);
    s_tally_until (bob, "-", "closed alice", &to_alice);
    fprintf (stderr, "NATS server killed: alice -> bob %d of %d delivered, %d reported; "
             "bob -> alice %d delivered, %d reported\n", to_bob.received, SENT,
             to_bob.reported, to_alice.received, to_alice.reported);
    /* to_bob.reported holds alice's reports (her undelivered and unacked
       lines), to_alice.reported bob's */
    assert_true (to_bob.received + to_bob.reported >= SENT);
    assert_true (to_alice.received + to_alice.reported >= SENT);
    /* b1 did lose its server, and found another */
    char *b1_log = sc_testdir_path (C.dir, "b1/broker.log");
    char *text = sc_testdir_slurp (b1_log, NULL);
    assert_non_null (text);
    assert_non_null (strstr (text, "cluster: reconnected to NATS at nats://127.0.0.1:"));
    free (text);
    free (b1_log);
    /* ...and its metrics say so */
    s_metric_until (0, "secbroker_cluster_reconnects_total", 1, t);
    s_metric_until (0, "secbroker_cluster_connected", 1, t);
    /* and a new chat across the two nodes works */
    s_open_chat (bob, "bob", alice, "alice");
    s_say (alice, bob, "alice", "after the failover");
    s_quit (alice);
    s_quit (bob);
}

/* ---- NATS unreachable at start ---------------------------------------------- */

static void
test_nats_unreachable (void **state)
{
    (void) state;
    memset (&C, 0, sizeof C);
    /* a port bound but not listening: connections are refused */
    int fd = socket (AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in addr = { .sin_family = AF_INET };
    addr.sin_addr.s_addr = htonl (INADDR_LOOPBACK);
    socklen_t alen = sizeof addr;
    assert_true (fd >= 0 && bind (fd, (struct sockaddr *) &addr, sizeof addr) == 0
                 && getsockname (fd, (struct sockaddr *) &addr, &alen) == 0);
    char urls[128], bin[512], cert[512], key[512], users[512];
    snprintf (urls, sizeof urls, "nats://127.0.0.1:%d,nats://127.0.0.1:%d",
              ntohs (addr.sin_port), ntohs (addr.sin_port));
    snprintf (bin, sizeof bin, "%ssecbroker", sc_testproc_bin_dir ());
    snprintf (cert, sizeof cert, "%s/broker.crt", T.keys);
    snprintf (key, sizeof key, "%s/broker.key", T.keys);
    snprintf (users, sizeof users, "%s/users", T.keys);
    char *log = sc_testdir_path (T.dir, "unreachable.log");
    const char *const argv[] = { bin, "--endpoint", "tcp://127.0.0.1:!", "--cert", cert,
                                 "--key", key, "--users", users, "--cluster", urls,
                                 "--node", "lonely", NULL };
    int64_t started = sc_testproc_now_ms ();
    sc_testproc_t *broker = sc_testproc_new ("broker", argv, log);
    assert_non_null (broker);
    assert_int_equal (sc_testproc_wait (broker, 30000), 1);
    assert_true (sc_testproc_now_ms () - started < 30000);
    assert_int_equal (sc_testproc_expect_eof (broker, 1000), 0);
    char *text = sc_testdir_slurp (log, NULL);
    assert_non_null (text);
    /* one line, naming the URLs it tried */
    char *nl = strchr (text, '\n');
    assert_non_null (nl);
    assert_true (nl[1] == 0);
    assert_non_null (strstr (text, urls));
    assert_true (strncmp (text, "secbroker: ", 11) == 0);
    free (text);
    free (log);

    /* open registration is refused in a cluster: a node would register a
       name another node's users folder already holds */
    char *log2 = sc_testdir_path (T.dir, "open-registration.log");
    const char *const open_argv[] = { bin, "--endpoint", "tcp://127.0.0.1:!", "--cert", cert,
                                      "--key", key, "--users", users, "--cluster", urls,
                                      "--node", "lonely", "--registration", "open", NULL };
    broker = sc_testproc_new ("broker-open", open_argv, log2);
    assert_non_null (broker);
    assert_int_equal (sc_testproc_wait (broker, 10000), 2);
    text = sc_testdir_slurp (log2, NULL);
    assert_non_null (text);
    assert_non_null (strstr (text, "secbroker: --registration open cannot be used with "
                                   "--cluster"));
    free (text);
    free (log2);
    close (fd);
}

/* Two brokers under one node name would take each other's messages:
   each says so in its log. */
static void
test_node_name_twice (void **state)
{
    (void) state;
    memset (&C, 0, sizeof C);
    C.dir = sc_testdir_path (T.dir, "twins");
    assert_int_equal (mkdir (C.dir, 0700), 0);
    for (int i = 0; i < S_NODES; i++)
        s_nats_start (i);       /* JetStream's cluster wants its peers */
    s_nats_ready ();
    char url[64];
    snprintf (url, sizeof url, "nats://127.0.0.1:%d", C.client_port[0]);
    const char *const extra[] = { "--cluster", url, "--node", "twin", NULL };
    for (int i = 0; i < 2; i++) {
        char sub[16];
        snprintf (sub, sizeof sub, "b%d", i + 1);
        char *dir = sc_testdir_path (C.dir, sub);
        assert_int_equal (mkdir (dir, 0700), 0);
        C.broker[i] = sc_testproc_broker_new_with (T.keys, dir, extra, C.endpoint[i],
                                                   sizeof C.endpoint[i]);
        free (dir);
        assert_non_null (C.broker[i]);
    }
    char *log = sc_testdir_path (C.dir, "b1/broker.log");
    int64_t deadline = sc_testproc_now_ms () + sc_testproc_timeout (10000);
    bool said = false;
    while (!said && sc_testproc_now_ms () < deadline) {
        char *text = sc_testdir_slurp (log, NULL);
        said = text && strstr (text, "cluster: another broker is also node twin: ");
        free (text);
        if (!said)
            sc_testproc_sleep_ms (100);
    }
    free (log);
    if (!said)
        sc_testproc_dump_all ();
    assert_true (said);
}

/* ---- Forged messages on NATS --------------------------------------------------- */

/* A client of the test's own on the NATS server of node b(i+1)'s list. */
static natsConnection *
s_nats_connect (int i)
{
    char url[64];
    snprintf (url, sizeof url, "nats://127.0.0.1:%d", C.client_port[i]);
    natsConnection *nc = NULL;
    assert_int_equal (natsConnection_ConnectTo (&nc, url), NATS_OK);
    return nc;
}

/* msg, as node `node` (boot), published on subject: 0 or -1. */
static int
s_forge (natsConnection *nc, const char *subject, sc_node_msg_t *msg, const char *node,
         uint64_t boot)
{
    snprintf (msg->node, sizeof msg->node, "%s", node);
    msg->boot = boot;
    uint8_t *bytes = NULL;
    size_t len = 0;
    if (sc_node_msg_encode (msg, &bytes, &len))
        return -1;
    natsStatus st = natsConnection_Publish (nc, subject, bytes, (int) len);
    free (bytes);
    return st == NATS_OK ? 0 : -1;
}

/* The next message on sub, which must come within timeout_ms. */
static void
s_next_node_msg (natsSubscription *sub, int timeout_ms, sc_node_msg_t *out)
{
    natsMsg *m = NULL;
    assert_int_equal (natsSubscription_NextMsg (&m, sub, timeout_ms), NATS_OK);
    assert_int_equal (sc_node_msg_decode ((const uint8_t *) natsMsg_GetData (m),
                                          (size_t) natsMsg_GetDataLength (m), out), 0);
    out->data = NULL;       /* it pointed into m */
    out->data_len = 0;
    natsMsg_Destroy (m);
}

/* How many times needle is in node b(i+1)'s log. */
static int
s_log_count (int i, const char *needle)
{
    char sub[32];
    snprintf (sub, sizeof sub, "b%d/broker.log", i + 1);
    char *path = sc_testdir_path (C.dir, sub);
    char *text = sc_testdir_slurp (path, NULL);
    free (path);
    assert_non_null (text);
    int n = 0;
    for (const char *at = strstr (text, needle); at; at = strstr (at + 1, needle))
        n++;
    free (text);
    return n;
}

/* Session 0 in a message between nodes means "any session" (to_sid) or
   "none" (from_sid) only in the kinds that honest nodes send it in. A
   relayed body and a NOTIFY to bob with to_sid 0 (and from_sid 0),
   which need no session number to forge, reach nobody: bob's chat with
   alice goes on, and his node says it dropped them. */
static void
test_forged_session_zero (void **state)
{
    (void) state;
    s_cluster_start ("sid0");
    int t = sc_testproc_timeout (10000);
    sc_testproc_t *alice = s_client ("alice", 0);
    sc_testproc_t *bob = s_client ("bob", 1);
    s_list_until (alice, "users bob", t);
    s_open_chat (alice, "alice", bob, "bob");
    s_say (alice, bob, "alice", "before the forgeries");

    /* b1's boot, from its beat: with another, b2 would take b1 as
       restarted and end the chat itself */
    natsConnection *nc = s_nats_connect (1);
    natsSubscription *presence = NULL;
    assert_int_equal (natsConnection_SubscribeSync (&presence, nc, "secchat.presence"),
                      NATS_OK);
    sc_node_msg_t heard;
    do
        s_next_node_msg (presence, t, &heard);
    while (strcmp (heard.node, "b1") != 0);
    uint64_t b1_boot = heard.boot;
    natsSubscription_Destroy (presence);

    /* a MESSAGE [1, box of 17 bytes], as alice's node would relay it */
    uint8_t body[21] = { 0x92, 0x01, 0xc4, 17 };
    memset (body + 4, 0x5a, 17);
    sc_node_msg_t relay;
    sc_node_msg_init (&relay, SC_NODE_RELAY);
    strcpy (relay.from, "alice");
    strcpy (relay.to, "bob");
    relay.code = 5;                     /* MESSAGE */
    relay.data = body;
    relay.data_len = sizeof body;
    assert_int_equal (s_forge (nc, "secchat.node.b2", &relay, "b1", b1_boot), 0);
    sc_node_msg_t notify;
    sc_node_msg_init (&notify, SC_NODE_NOTIFY);
    strcpy (notify.from, "alice");
    strcpy (notify.to, "bob");
    notify.code = 0;                    /* left */
    assert_int_equal (s_forge (nc, "secchat.node.b2", &notify, "b1", b1_boot), 0);
    assert_int_equal (natsConnection_FlushTimeout (nc, 5000), NATS_OK);
    natsConnection_Destroy (nc);
    assert_int_equal (sc_testproc_expect_none (bob, 2000), 0);
    assert_int_equal (sc_testproc_expect_none (alice, 10), 0);
    /* said once for both: a line at most every 10 s */
    assert_int_equal (s_log_count (1, "cluster: dropped 1 messages with a session 0 their kind "
                                      "may not carry (the last: kind 15 from node b1)"), 1);
    assert_int_equal (s_log_count (1, "with a session 0"), 1);
    s_say (bob, alice, "bob", "still with you");
    s_say (alice, bob, "alice", "nothing came between us");
    s_quit (alice);
    s_quit (bob);
}

/* Beats as forged nodes, every 500 ms, on b1's subject (a thread: no
   cmocka check in it). */
typedef struct {
    natsConnection *nc;
    const char *const *names;
    size_t count;
    int stop;
    pthread_mutex_t lock;
    pthread_t thread;
} s_keeper_t;

static void *
s_keeper_run (void *arg)
{
    s_keeper_t *self = arg;
    for (;;) {
        pthread_mutex_lock (&self->lock);
        int stop = self->stop;
        pthread_mutex_unlock (&self->lock);
        if (stop)
            return NULL;
        for (size_t i = 0; i < self->count; i++) {
            sc_node_msg_t beat;
            sc_node_msg_init (&beat, SC_NODE_BEAT);
            (void) s_forge (self->nc, "secchat.node.b1", &beat, self->names[i], 7);
        }
        (void) natsConnection_Flush (self->nc);
        sc_testproc_sleep_ms (500);
    }
}

/* Presence forged on NATS, for more nodes and more users than a node
   keeps, leaves b1 with its tables full and no fuller, said in its log
   a line at a time, and still serving its users; once the forger is
   silent, b1 is back to the real nodes and users. A node b1 gave up on
   is told so when heard again (GAVE_UP), but only for 6 silences
   (30 s): later it is a node like any other. */
static void
test_forged_presence_bounded (void **state)
{
    (void) state;
    s_cluster_start ("bounds");
    int t = sc_testproc_timeout (10000);
    sc_testproc_t *alice = s_client ("alice", 0);
    sc_testproc_t *bob = s_client ("bob", 1);
    s_list_until (alice, "users bob", t);
    s_metric_until (0, "secbroker_cluster_nodes", 2, t);
    s_metric_until (0, "secbroker_cluster_remote_users", 1, t);

    /* node f and 100 nodes n000..n099, all alive: b1 keeps 64 other
       nodes (b2, b3, f and 61 of them) */
    static char names[101][8];
    const char *list[101];
    strcpy (names[0], "f");
    for (int i = 1; i <= 100; i++)
        snprintf (names[i], sizeof names[i], "n%03d", i - 1);
    for (int i = 0; i <= 100; i++)
        list[i] = names[i];
    natsConnection *nc = s_nats_connect (2);
    s_keeper_t keeper = { .nc = nc, .names = list, .count = 101 };
    pthread_mutex_init (&keeper.lock, NULL);
    assert_int_equal (pthread_create (&keeper.thread, NULL, s_keeper_run, &keeper), 0);
    int64_t flood_since = sc_testproc_now_ms ();
    s_metric_until (0, "secbroker_cluster_nodes", 64, t);
    /* 70000 users online on f: b1 keeps 65536 in all, bob among them */
    for (int i = 0; i < 70000; i++) {
        sc_node_msg_t up;
        sc_node_msg_init (&up, SC_NODE_UP);
        snprintf (up.from, sizeof up.from, "u%05d", i);
        up.from_sid = (uint64_t) i + 1;
        up.since = 1;
        assert_int_equal (s_forge (nc, "secchat.node.b1", &up, "f", 7), 0);
    }
    assert_int_equal (natsConnection_FlushTimeout (nc, 10000), NATS_OK);
    s_metric_until (0, "secbroker_cluster_remote_users", 65536, 2 * t);
    /* the users of b1 and of the nodes it knew are served as before */
    s_open_chat (alice, "alice", bob, "bob");
    s_say (alice, bob, "alice", "under a flood");
    s_say (bob, alice, "bob", "it does not reach us");
    sc_testproc_t *carol = s_client ("carol", 0);
    s_quit (alice);
    assert_int_equal (sc_testproc_expect (bob, "closed alice", t), 0);
    s_open_chat (carol, "carol", bob, "bob");
    s_say (carol, bob, "carol", "logged in during the flood");
    /* and the table is no fuller for the beats that go on */
    s_metric_until (0, "secbroker_cluster_nodes", 64, t);
    s_metric_until (0, "secbroker_cluster_remote_users", 65536, t);
    /* said, not once a message (39 nodes refused twice a second): a
       line at most every 10 s */
    int most = 2 + (int) ((sc_testproc_now_ms () - flood_since) / 10000);
    assert_int_equal (s_log_count (0, "cluster: node n099 joined"), 0);
    int nodes_said = s_log_count (0, " messages from new nodes dropped: 64 other nodes known "
                                     "already, the most");
    int users_said = s_log_count (0, " users online on other nodes not noted: 65536 known "
                                     "already, the most");
    assert_true (nodes_said >= 1 && nodes_said <= most);
    assert_true (users_said >= 1 && users_said <= most);

    /* the forger goes silent: b1 gives its nodes up, their users with
       them */
    pthread_mutex_lock (&keeper.lock);
    keeper.stop = 1;
    pthread_mutex_unlock (&keeper.lock);
    pthread_join (keeper.thread, NULL);
    pthread_mutex_destroy (&keeper.lock);
    s_metric_until (0, "secbroker_cluster_nodes", 2, 2 * t);
    s_metric_until (0, "secbroker_cluster_remote_users", 1, t);
    int64_t given_up = sc_testproc_now_ms ();
    assert_int_equal (s_log_count (0, "cluster: node f gone (silent)"), 1);
    s_say (bob, carol, "bob", "the flood is over");

    /* n000, back at once with the same boot, is told it was given up */
    natsSubscription *sub = NULL;
    assert_int_equal (natsConnection_SubscribeSync (&sub, nc, "secchat.node.n000"), NATS_OK);
    assert_int_equal (natsConnection_FlushTimeout (nc, 5000), NATS_OK);
    sc_node_msg_t beat;
    sc_node_msg_init (&beat, SC_NODE_BEAT);
    assert_int_equal (s_forge (nc, "secchat.node.b1", &beat, "n000", 7), 0);
    sc_node_msg_t heard;
    s_next_node_msg (sub, t, &heard);
    assert_int_equal (heard.kind, SC_NODE_GAVE_UP);
    assert_string_equal (heard.node, "b1");
    s_next_node_msg (sub, t, &heard);
    assert_int_equal (heard.kind, SC_NODE_SYNC);
    natsSubscription_Destroy (sub);
    assert_int_equal (s_log_count (0, "cluster: node n000 is back after we gave it up"), 1);

    /* f, back with the same boot after 6 silences, is only asked for
       its users, as a node b1 never heard of */
    int64_t wait = given_up + 6 * 5000 + 2000 - sc_testproc_now_ms ();
    if (wait > 0)
        sc_testproc_sleep_ms ((int) wait);
    assert_int_equal (natsConnection_SubscribeSync (&sub, nc, "secchat.node.f"), NATS_OK);
    assert_int_equal (natsConnection_FlushTimeout (nc, 5000), NATS_OK);
    sc_node_msg_init (&beat, SC_NODE_BEAT);
    assert_int_equal (s_forge (nc, "secchat.node.b1", &beat, "f", 7), 0);
    s_next_node_msg (sub, t, &heard);
    assert_int_equal (heard.kind, SC_NODE_SYNC);
    natsSubscription_Destroy (sub);
    assert_int_equal (s_log_count (0, "cluster: node f is back after we gave it up"), 0);
    natsConnection_Destroy (nc);
    s_say (carol, bob, "carol", "still here");
    s_quit (carol);
    s_quit (bob);
}

/* ---- deploy/nats-secchat.conf: accounts, permissions, TLS ---------------------- */

/* A secbroker of the TLS cluster with these NATS options (extra:
   NULL-terminated); started is whether it said it listens. */
static sc_testproc_t *
s_tls_broker (const char *node, const char *const extra[], int *status)
{
    char bin[512], cert[512], key[512], users[512], log[512];
    snprintf (bin, sizeof bin, "%ssecbroker", sc_testproc_bin_dir ());
    snprintf (cert, sizeof cert, "%s/broker.crt", T.keys);
    snprintf (key, sizeof key, "%s/broker.key", T.keys);
    snprintf (users, sizeof users, "%s/users", T.keys);
    snprintf (log, sizeof log, "%s/%s.log", C.dir, node);
    const char *argv[32] = { bin, "--endpoint", "tcp://127.0.0.1:!", "--cert", cert, "--key",
                             key, "--users", users, "--node", node };
    int argc = 11;
    for (int i = 0; extra[i] && argc < 31; i++)
        argv[argc++] = extra[i];
    argv[argc] = NULL;
    sc_testproc_t *broker = sc_testproc_new (node, argv, log);
    assert_non_null (broker);
    *status = sc_testproc_wait (broker, 0);
    return broker;
}

static void
test_nats_accounts_and_tls (void **state)
{
    (void) state;
    memset (&C, 0, sizeof C);
    C.dir = sc_testdir_path (T.dir, "tls");
    assert_int_equal (mkdir (C.dir, 0700), 0);
    /* a CA, and one certificate for the server (127.0.0.1) and the
       brokers, as deploy/README.md makes them */
    char cmd[2048];
    snprintf (cmd, sizeof cmd,
              "cd '%s' && printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\\n"
              "extendedKeyUsage=serverAuth,clientAuth\\n' > ext && "
              "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes "
              "-keyout ca.key -out ca.pem -days 2 -subj /CN=nats-ca && "
              "openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes "
              "-keyout nats.key -out nats.csr -subj /CN=nats && "
              "openssl x509 -req -in nats.csr -CA ca.pem -CAkey ca.key -CAcreateserial "
              "-out nats.pem -days 2 -extfile ext", C.dir);
    char *olog = sc_testdir_path (C.dir, "openssl.log");
    char full[2600];
    snprintf (full, sizeof full, "( %s ) > '%s' 2>&1", cmd, olog);
    assert_int_equal (system (full), 0);
    free (olog);
    char *ca = sc_testdir_path (C.dir, "ca.pem");
    char *crt = sc_testdir_path (C.dir, "nats.pem");
    char *key = sc_testdir_path (C.dir, "nats.key");
    setenv ("NATS_TLS_CERT", crt, 1);
    setenv ("NATS_TLS_KEY", key, 1);
    setenv ("NATS_TLS_CA", ca, 1);
    setenv ("SECCHAT_NATS_PASSWORD", "brokers-only", 1);
    /* the file as shipped, on three servers (JetStream's cluster); only
       the names, stores and addresses are the test's (the first one's
       route goes nowhere, the others' to it) */
    for (int i = 0; i < S_NODES; i++) {
        char name[16], file[32], routes[64];
        snprintf (name, sizeof name, "n%d", i + 1);
        snprintf (file, sizeof file, "nats%d.js", i + 1);
        char *store = sc_testdir_path (C.dir, file);
        snprintf (file, sizeof file, "nats%d.log", i + 1);
        char *log = sc_testdir_path (C.dir, file);
        setenv ("NATS_NAME", name, 1);
        setenv ("NATS_STORE_DIR", store, 1);
        snprintf (routes, sizeof routes, "nats://127.0.0.1:%d", i > 0 ? C.route_port[0] : 1);
        const char *const nats_argv[] = { "nats-server", "-c", "deploy/nats-secchat.conf", "-a",
                                          "127.0.0.1", "-p", "-1", "--cluster",
                                          "nats://127.0.0.1:-1", "--routes", routes, NULL };
        C.nats[i] = sc_testproc_new (name, nats_argv, log);
        assert_non_null (C.nats[i]);
        int64_t deadline = sc_testproc_now_ms () + sc_testproc_timeout (10000);
        while (sc_testproc_now_ms () < deadline
               && (C.route_port[i] = s_port_in_log (log, "route connections on 127.0.0.1:"))
                  <= 0)
            sc_testproc_sleep_ms (50);
        C.client_port[i] = s_port_in_log (log, "client connections on 127.0.0.1:");
        assert_true (C.route_port[i] > 0 && C.client_port[i] > 0);
        free (log);
        free (store);
    }
    s_nats_ready ();
    int port = C.client_port[0];
    char tls_url[64], plain_url[64];
    snprintf (tls_url, sizeof tls_url, "tls://127.0.0.1:%d", port);
    snprintf (plain_url, sizeof plain_url, "nats://127.0.0.1:%d", port);

    /* the brokers, with the user, the password (from a file) and their
       certificate */
    char *pass = sc_testdir_path (C.dir, "nats.pass");
    FILE *file = fopen (pass, "w");
    assert_non_null (file);
    assert_true (fputs ("brokers-only\n", file) >= 0);
    assert_int_equal (fclose (file), 0);
    const char *const good[] = { "--cluster", tls_url, "--nats-user", "secbroker",
                                 "--nats-password-file", pass, "--nats-tlsca", ca,
                                 "--nats-tlscert", crt, "--nats-tlskey", key, NULL };
    int t = sc_testproc_timeout (10000);
    int status = 0;
    for (int i = 0; i < 2; i++) {
        char node[16];
        snprintf (node, sizeof node, "b%d", i + 1);
        C.broker[i] = s_tls_broker (node, good, &status);
        const char *line = sc_testproc_expect_prefix (C.broker[i], "secbroker listening on ", t);
        assert_non_null (line);
        snprintf (C.endpoint[i], sizeof C.endpoint[i], "%s", line + 23);
    }
    sc_testproc_t *alice = s_client ("alice", 0);
    sc_testproc_t *bob = s_client ("bob", 1);
    s_list_until (alice, "users bob", t);
    s_open_chat (alice, "alice", bob, "bob");
    s_say (bob, alice, "bob", "over TLS, in our own account");

    /* nobody else gets in: a wrong password, no client certificate, no
       TLS; each is refused at once, in one line */
    const char *const wrong_password[] = { "--cluster", tls_url, "--nats-user", "secbroker",
                                           "--nats-password", "guess", "--nats-tlsca", ca,
                                           "--nats-tlscert", crt, "--nats-tlskey", key, NULL };
    const char *const no_cert[] = { "--cluster", tls_url, "--nats-user", "secbroker",
                                     "--nats-password", "brokers-only", "--nats-tlsca", ca,
                                     NULL };
    const char *const no_tls[] = { "--cluster", plain_url, "--nats-user", "secbroker",
                                   "--nats-password", "brokers-only", NULL };
    const char *const *const refused[] = { wrong_password, no_cert, no_tls };
    for (int i = 0; i < 3; i++) {
        char node[32];
        snprintf (node, sizeof node, "intruder%d", i);
        sc_testproc_t *intruder = s_tls_broker (node, refused[i], &status);
        assert_int_equal (sc_testproc_wait (intruder, t), 1);
        assert_int_equal (sc_testproc_expect_eof (intruder, 1000), 0);
        char *path = sc_testdir_path (C.dir, node);
        char *path_log = NULL;
        if (asprintf (&path_log, "%s.log", path) < 0)
            fail ();
        char *text = sc_testdir_slurp (path_log, NULL);
        assert_non_null (text);
        assert_true (strncmp (text, "secbroker: cannot reach NATS at ", 32) == 0);
        assert_true (strchr (text, '\n') && strchr (text, '\n')[1] == 0);
        free (text);
        free (path_log);
        free (path);
        sc_testproc_destroy (&intruder);
    }
    /* and the chat went on */
    s_say (alice, bob, "alice", "still private");
    s_quit (alice);
    s_quit (bob);
    free (pass);
    free (ca);
    free (crt);
    free (key);
}

/* ---- --nats-nkey: a plain NATS nkey ---------------------------------------------- */

/* NATS's key text, written here on its own: base32 (RFC 4648, no
   padding), bit by bit, of the bytes and their CRC16 (XMODEM, table
   built here) little-endian. */
static void
s_nkey_text (const unsigned char *bytes, size_t len, char *out)
{
    static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    unsigned short table[256];
    for (int i = 0; i < 256; i++) {
        unsigned short crc = (unsigned short) (i << 8);
        for (int bit = 0; bit < 8; bit++)
            crc = (unsigned short) ((crc & 0x8000) ? (crc << 1) ^ 0x1021 : crc << 1);
        table[i] = crc;
    }
    unsigned short crc = 0;
    for (size_t i = 0; i < len; i++)
        crc = (unsigned short) ((crc << 8) ^ table[((crc >> 8) ^ bytes[i]) & 0xFF]);
    unsigned char all[64];
    assert_true (len + 2 <= sizeof all);
    memcpy (all, bytes, len);
    all[len] = (unsigned char) (crc & 0xFF);
    all[len + 1] = (unsigned char) (crc >> 8);
    size_t nbits = (len + 2) * 8, n = 0;
    for (size_t at = 0; at < nbits; at += 5) {
        int value = 0;
        for (size_t b = at; b < at + 5; b++) {
            int bit = b < nbits ? (all[b / 8] >> (7 - b % 8)) & 1 : 0;
            value = (value << 1) | bit;
        }
        out[n++] = alphabet[value];
    }
    out[n] = 0;
}

/* A random nkey of this type (20 << 3: a user, 0: an account): its
   seed (S...) and its public key (U... or A...). */
static void
s_nkey_new (int type, char *seed, char *pub)
{
    unsigned char raw[34], key[33];
    raw[0] = (unsigned char) ((18 << 3) | (type >> 5));
    raw[1] = (unsigned char) ((type & 31) << 3);
    assert_int_equal (RAND_bytes (raw + 2, 32), 1);
    EVP_PKEY *pkey = EVP_PKEY_new_raw_private_key (EVP_PKEY_ED25519, NULL, raw + 2, 32);
    assert_non_null (pkey);
    size_t klen = 32;
    key[0] = (unsigned char) type;
    assert_int_equal (EVP_PKEY_get_raw_public_key (pkey, key + 1, &klen), 1);
    assert_int_equal (klen, 32);
    EVP_PKEY_free (pkey);
    s_nkey_text (raw, sizeof raw, seed);
    s_nkey_text (key, sizeof key, pub);
}

static char *
s_write (const char *name, const char *text)
{
    char *path = sc_testdir_path (C.dir, name);
    FILE *file = fopen (path, "w");
    assert_non_null (file);
    assert_true (fputs (text, file) >= 0);
    assert_int_equal (fclose (file), 0);
    return path;
}

/* The one line a refused broker (node) wrote; it exited 1. */
static char *
s_refusal (sc_testproc_t *broker, const char *node)
{
    assert_int_equal (sc_testproc_wait (broker, sc_testproc_timeout (10000)), 1);
    assert_int_equal (sc_testproc_expect_eof (broker, 1000), 0);
    char *path = NULL;
    if (asprintf (&path, "%s/%s.log", C.dir, node) < 0)
        fail ();
    char *text = sc_testdir_slurp (path, NULL);
    free (path);
    assert_non_null (text);
    assert_true (strchr (text, '\n') && strchr (text, '\n')[1] == 0);
    return text;
}

static void
test_nats_nkey (void **state)
{
    (void) state;
    memset (&C, 0, sizeof C);
    C.dir = sc_testdir_path (T.dir, "nkey");
    assert_int_equal (mkdir (C.dir, 0700), 0);
    char seed[64], pub[64], other_seed[64], other_pub[64], account_seed[64], account_pub[64];
    s_nkey_new (20 << 3, seed, pub);
    s_nkey_new (20 << 3, other_seed, other_pub);
    s_nkey_new (0, account_seed, account_pub);
    assert_true (strlen (seed) == 58 && strncmp (seed, "SU", 2) == 0);
    assert_true (strlen (pub) == 56 && pub[0] == 'U');
    assert_true (strncmp (account_seed, "SA", 2) == 0);

    /* a server that admits only that user's key */
    char conf_text[256];
    snprintf (conf_text, sizeof conf_text,
              "authorization {\n  users = [\n    { nkey: \"%s\" }\n  ]\n}\n", pub);
    char *conf = s_write ("nats.conf", conf_text);
    char *log = sc_testdir_path (C.dir, "nats.log");
    char *store = sc_testdir_path (C.dir, "nats.js");
    const char *const nats_argv[] = { "nats-server", "-c", conf, "-a", "127.0.0.1", "-p", "-1",
                                      "-js", "-sd", store, NULL };
    C.nats[0] = sc_testproc_new ("nats", nats_argv, log);
    assert_non_null (C.nats[0]);
    int64_t deadline = sc_testproc_now_ms () + sc_testproc_timeout (10000);
    int port = -1;
    while (sc_testproc_now_ms () < deadline
           && (port = s_port_in_log (log, "client connections on 127.0.0.1:")) <= 0)
        sc_testproc_sleep_ms (50);
    free (log);
    assert_true (port > 0);
    char url[64];
    snprintf (url, sizeof url, "nats://127.0.0.1:%d", port);

    /* two brokers with the seed: one cluster, each sees the other's users */
    char seed_line[80];
    snprintf (seed_line, sizeof seed_line, "%s\n", seed);
    char *seed_file = s_write ("user.nk", seed_line);
    const char *const good[] = { "--cluster", url, "--nats-nkey", seed_file, NULL };
    int t = sc_testproc_timeout (10000);
    int status = 0;
    for (int i = 0; i < 2; i++) {
        char node[16];
        snprintf (node, sizeof node, "b%d", i + 1);
        C.broker[i] = s_tls_broker (node, good, &status);
        const char *line = sc_testproc_expect_prefix (C.broker[i], "secbroker listening on ", t);
        assert_non_null (line);
        snprintf (C.endpoint[i], sizeof C.endpoint[i], "%s", line + 23);
    }
    sc_testproc_t *alice = s_client ("alice", 0);
    sc_testproc_t *bob = s_client ("bob", 1);
    s_list_until (alice, "users bob", t);
    s_list_until (bob, "users alice", t);
    s_open_chat (alice, "alice", bob, "bob");
    s_say (bob, alice, "bob", "signed in with an nkey");

    /* another user's seed, valid but unknown to the server: refused */
    snprintf (seed_line, sizeof seed_line, "%s\n", other_seed);
    char *other_file = s_write ("other.nk", seed_line);
    const char *const unknown[] = { "--cluster", url, "--nats-nkey", other_file, NULL };
    sc_testproc_t *intruder = s_tls_broker ("intruder", unknown, &status);
    char *text = s_refusal (intruder, "intruder");
    assert_true (strncmp (text, "secbroker: cannot reach NATS at ", 32) == 0);
    free (text);
    sc_testproc_destroy (&intruder);

    /* a seed that is not a user's, no seed at all, no file: refused
       before NATS is asked */
    snprintf (seed_line, sizeof seed_line, "%s\n", account_seed);
    char *account_file = s_write ("account.nk", seed_line);
    char *junk_file = s_write ("junk.nk", "not a seed\n");
    char *missing = sc_testdir_path (C.dir, "missing.nk");
    const char *const files[] = { account_file, junk_file, missing };
    const char *const says[] = { "holds no user nkey seed", "holds no nkey seed",
                                 "cannot read" };
    for (int i = 0; i < 3; i++) {
        char node[32];
        snprintf (node, sizeof node, "bad%d", i);
        const char *const bad[] = { "--cluster", url, "--nats-nkey", files[i], NULL };
        sc_testproc_t *broker = s_tls_broker (node, bad, &status);
        text = s_refusal (broker, node);
        assert_true (strncmp (text, "secbroker: --nats-nkey: ", 24) == 0);
        assert_non_null (strstr (text, says[i]));
        /* no seed in the refusal */
        assert_null (strstr (text, account_seed));
        free (text);
        sc_testproc_destroy (&broker);
    }
    /* and the chat went on */
    s_say (alice, bob, "alice", "still here");
    s_quit (alice);
    s_quit (bob);
    free (conf);
    free (store);
    free (seed_file);
    free (other_file);
    free (account_file);
    free (junk_file);
    free (missing);
}

/* ---- Fixture ------------------------------------------------------------------ */

static int
s_group_setup (void **state)
{
    (void) state;
    T.dir = sc_testdir_new ("cluster");
    if (!T.dir)
        return -1;
    T.keys = sc_testdir_path (T.dir, "keys");
    const char *const users[] = { "alice", "bob", "carol", "dave", "erin", NULL };
    return sc_testproc_make_keys (T.keys, users);
}

static int
s_group_teardown (void **state)
{
    (void) state;
    sc_testdir_remove (T.dir);
    free (T.keys);
    free (T.dir);
    return 0;
}

static int
s_teardown (void **state)
{
    (void) state;
    sc_testproc_destroy_all ();
    free (C.dir);
    memset (&C, 0, sizeof C);
    return 0;
}

int
main (void)
{
    signal (SIGPIPE, SIG_IGN);
    /* SC_TEST_FILTER=test_name (a glob) runs only those tests */
    if (getenv ("SC_TEST_FILTER"))
        cmocka_set_test_filter (getenv ("SC_TEST_FILTER"));
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_node_codec),
        cmocka_unit_test (test_node_codec_mutations),
        cmocka_unit_test_teardown (test_flow_across_nodes, s_teardown),
        cmocka_unit_test_teardown (test_demo_scripts_across_nodes, s_teardown),
        cmocka_unit_test_teardown (test_node_killed_and_restarted, s_teardown),
        cmocka_unit_test_teardown (test_node_cut_off_from_nats, s_teardown),
        cmocka_unit_test_teardown (test_nats_server_killed, s_teardown),
        cmocka_unit_test_teardown (test_nats_unreachable, s_teardown),
        cmocka_unit_test_teardown (test_node_name_twice, s_teardown),
        cmocka_unit_test_teardown (test_forged_session_zero, s_teardown),
        cmocka_unit_test_teardown (test_forged_presence_bounded, s_teardown),
        cmocka_unit_test_teardown (test_nats_accounts_and_tls, s_teardown),
        cmocka_unit_test_teardown (test_nats_nkey, s_teardown),
    };
    return cmocka_run_group_tests (tests, s_group_setup, s_group_teardown);
}
