/*  Invitations and users shared by every node of a cluster, in JetStream
    key-value buckets (docs/PROTOCOL.md section 12, "Invitations and
    users").

    One cluster for the whole program: three real nats-server processes
    with JetStream, clustered by routes on loopback ports, and three
    secbrokers (nodes b1, b2, b3). Each test uses names of its own. The
    real programs are driven: `secbroker invite --cluster` and
    `secbroker users --cluster` with node b1's NATS options, `secchat
    enrol` and batch clients on any node. An invitation made once is
    good on every node, once; a user enrolled on one node logs in on
    another at once and chats across nodes; a code used twice (in turn,
    or at the same time on two nodes), revoked, or for a name taken is
    refused; a user removed from the bucket is logged out on every node;
    a broker reloaded or started later knows the bucket's users; a node
    cut off from NATS while a user of it is removed logs that user out
    once it is back; a node whose NATS server dies follows the bucket through another (the
    buckets have three replicas); with NATS gone an enrolment is refused
    with ERROR INTERNAL; a broker whose NATS has no JetStream refuses to
    start.

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at https://mozilla.org/MPL/2.0/.
*/
#define _GNU_SOURCE
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sc_testnet.h"
#include "sc_testproc.h"

#define S_NODES 3

static struct {
    char *dir;
    char *keys;
    sc_testproc_t *nats[S_NODES];
    int client_port[S_NODES];
    int route_port[S_NODES];
    sc_testproc_t *broker[S_NODES];
    char endpoint[S_NODES][256];
    char urls[S_NODES][256];
} T;

static int s_t;                 /* a line's timeout, scaled */

/* ---- The cluster ------------------------------------------------------------ */

static int
s_port_in_log (const char *path, const char *prefix)
{
    char *text = sc_testdir_slurp (path, NULL);
    const char *at = text ? strstr (text, prefix) : NULL;
    int port = at ? atoi (at + strlen (prefix)) : -1;
    free (text);
    return port;
}

static bool
s_file_has (const char *path, const char *what)
{
    char *text = sc_testdir_slurp (path, NULL);
    bool has = text && strstr (text, what);
    free (text);
    return has;
}

/* n(i+1), JetStream on, routed to n1 (n1 nowhere: JetStream's cluster
   wants a route). 0 or -1. */
static int
s_nats_start (int i)
{
    char name[16], file[32], routes[64];
    snprintf (name, sizeof name, "n%d", i + 1);
    snprintf (file, sizeof file, "nats%d.js", i + 1);
    char *store = sc_testdir_path (T.dir, file);
    snprintf (file, sizeof file, "nats%d.log", i + 1);
    char *log = sc_testdir_path (T.dir, file);
    snprintf (routes, sizeof routes, "nats://127.0.0.1:%d", i > 0 ? T.route_port[0] : 1);
    const char *const argv[] = { "nats-server", "-a", "127.0.0.1", "-p", "-1", "--cluster",
                                 "nats://127.0.0.1:-1", "--cluster_name", "secchat", "-n", name,
                                 "--no_advertise", "-js", "-sd", store, "--routes", routes,
                                 NULL };
    T.nats[i] = sc_testproc_new (name, argv, log);
    int64_t deadline = sc_testproc_now_ms () + sc_testproc_timeout (10000);
    while (T.nats[i] && sc_testproc_now_ms () < deadline
           && (T.route_port[i] = s_port_in_log (log, "route connections on 127.0.0.1:")) <= 0)
        sc_testproc_sleep_ms (50);
    T.client_port[i] = s_port_in_log (log, "client connections on 127.0.0.1:");
    free (log);
    free (store);
    return T.nats[i] && T.route_port[i] > 0 && T.client_port[i] > 0 ? 0 : -1;
}

/* Some server says JetStream's cluster has its leader. 0 or -1. */
static int
s_nats_ready (void)
{
    int64_t deadline = sc_testproc_now_ms () + sc_testproc_timeout (20000);
    while (sc_testproc_now_ms () < deadline) {
        for (int i = 0; i < S_NODES; i++) {
            char file[32];
            snprintf (file, sizeof file, "nats%d.log", i + 1);
            char *log = sc_testdir_path (T.dir, file);
            bool ready = s_file_has (log, "metadata leader");
            free (log);
            if (ready)
                return 0;
        }
        sc_testproc_sleep_ms (50);
    }
    return -1;
}

/* Node b(i+1) (or another name, with dir), on n(i+1)'s server first. */
static sc_testproc_t *
s_broker_start (int i, const char *node, char *endpoint, size_t size)
{
    snprintf (T.urls[i], sizeof T.urls[i], "nats://127.0.0.1:%d,nats://127.0.0.1:%d",
              T.client_port[i], T.client_port[(i + 1) % S_NODES]);
    char *dir = sc_testdir_path (T.dir, node);
    if (access (dir, F_OK) != 0 && mkdir (dir, 0700) != 0) {
        free (dir);
        return NULL;
    }
    /* the buckets on all three servers: they outlive one */
    const char *const extra[] = { "--cluster", T.urls[i], "--node", node, "--metrics",
                                  "127.0.0.1:0", "--nats-replicas", "3", NULL };
    sc_testproc_t *broker = sc_testproc_broker_new_with (T.keys, dir, extra, endpoint, size);
    free (dir);
    return broker;
}

/* ---- The tools ------------------------------------------------------------------- */

/* `secbroker ARGS... --cluster URLS(b1)`: its exit status; its first
   line of output into out (may be NULL), its stderr into T.dir/tool.log
   (read back into err, malloc'd, when err is not NULL). */
static int
s_tool (char *out, size_t size, char **err, ...)
{
    char bin[512];
    snprintf (bin, sizeof bin, "%ssecbroker", sc_testproc_bin_dir ());
    const char *argv[32] = { bin };
    int argc = 1;
    va_list ap;
    va_start (ap, err);
    const char *arg;
    while ((arg = va_arg (ap, const char *)) && argc < 28)
        argv[argc++] = arg;
    va_end (ap);
    argv[argc++] = "--cluster";
    argv[argc++] = T.urls[0];
    argv[argc] = NULL;
    char *log = sc_testdir_path (T.dir, "tool.log");
    unlink (log);
    sc_testproc_t *proc = sc_testproc_new ("secbroker-tool", argv, log);
    assert_non_null (proc);
    const char *line = NULL;
    if (out) {
        *out = 0;
        if (sc_testproc_read_line (proc, s_t, &line) == 1)
            snprintf (out, size, "%s", line);
    }
    /* JetStream electing new leaders (a server lost) holds it a while */
    int status = sc_testproc_wait (proc, 3 * s_t);
    sc_testproc_destroy (&proc);
    if (err)
        *err = sc_testdir_slurp (log, NULL);
    free (log);
    return status;
}

/* A new invitation of name in the bucket: its code into code. */
static void
s_invite (const char *name, char *code, size_t size)
{
    assert_int_equal (s_tool (code, size, NULL, "invite", name, "--valid", "1h", NULL), 0);
    assert_int_equal (strlen (code), 39);
}

/* `secchat enrol` as name with code on node, its key into
   T.dir/KEY.key (password in NAME.pass). */
static sc_testproc_t *
s_enrol_key (const char *name, const char *key_name, const char *code, int node)
{
    char file[64];
    snprintf (file, sizeof file, "%s.pass", name);
    char *pass = sc_testdir_path (T.dir, file);
    FILE *f = fopen (pass, "w");
    assert_non_null (f);
    assert_true (fputs ("a long enough password\n", f) >= 0);
    assert_int_equal (fclose (f), 0);
    snprintf (file, sizeof file, "%s.key", key_name);
    char *key = sc_testdir_path (T.dir, file);
    snprintf (file, sizeof file, "cfg-%s", name);
    char *cfg = sc_testdir_path (T.dir, file);
    snprintf (file, sizeof file, "enrol-%s.log", name);
    char *log = sc_testdir_path (T.dir, file);
    char *ca = sc_testdir_path (T.keys, "ca.pem");
    char bin[512];
    snprintf (bin, sizeof bin, "%ssecchat", sc_testproc_bin_dir ());
    unlink (log);
    const char *argv[] = { bin, "enrol", "--endpoint", T.endpoint[node], "--user", name,
                           "--ca", ca, "--key", key, "--password-file", pass,
                           "--config-dir", cfg, "--batch", "--code", code, NULL };
    sc_testproc_t *proc = sc_testproc_new (name, argv, log);
    assert_non_null (proc);
    free (pass);
    free (key);
    free (cfg);
    free (log);
    free (ca);
    return proc;
}

static sc_testproc_t *
s_enrol (const char *name, const char *code, int node)
{
    return s_enrol_key (name, name, code, node);
}

/* The enrolment is refused with why (the client's words), nothing kept. */
static void
s_enrol_refused (const char *name, const char *code, int node, const char *why)
{
    char key_name[64];
    snprintf (key_name, sizeof key_name, "%s-refused", name);
    sc_testproc_t *proc = s_enrol_key (name, key_name, code, node);
    assert_int_equal (sc_testproc_expect_eof (proc, s_t), 0);
    assert_int_equal (sc_testproc_wait (proc, s_t), 1);
    char *log = sc_testdir_slurp (sc_testproc_log_path (proc), NULL);
    assert_non_null (log);
    if (!strstr (log, why))
        fail_msg ("secchat enrol %s: expected '%s' in:\n%s", name, why, log);
    assert_non_null (strstr (log, "nothing was registered"));
    free (log);
    sc_testproc_destroy (&proc);
}

/* name logs in on node with the key enrolment made (or a demo key's). */
static sc_testproc_t *
s_login (const char *name, int node, bool enrolled)
{
    char key[64], pass[64];
    snprintf (key, sizeof key, "%s.key", name);
    snprintf (pass, sizeof pass, "%s.pass", name);
    char *key_file = enrolled ? sc_testdir_path (T.dir, key) : NULL;
    char *pass_file = enrolled ? sc_testdir_path (T.dir, pass) : NULL;
    char label[64];
    snprintf (label, sizeof label, "%s-b%d", name, node + 1);
    sc_testclient_t opts = { .keys = T.keys, .workdir = T.dir, .endpoint = T.endpoint[node],
                             .user = name, .name = label, .key_file = key_file,
                             .password_file = pass_file };
    sc_testproc_t *client = sc_testproc_client_new (&opts);
    assert_non_null (client);
    free (key_file);
    free (pass_file);
    return client;
}

static void
s_ready (sc_testproc_t *client, const char *name)
{
    char line[64];
    snprintf (line, sizeof line, "ready %s", name);
    assert_int_equal (sc_testproc_expect (client, line, s_t), 0);
}

/* /list until name is in it (presence crosses NATS). */
static void
s_listed (sc_testproc_t *client, const char *name)
{
    int64_t deadline = sc_testproc_now_ms () + s_t;
    do {
        assert_int_equal (sc_testproc_send (client, "/list"), 0);
        const char *line = sc_testproc_expect_prefix (client, "users", s_t);
        assert_non_null (line);
        char copy[512];
        snprintf (copy, sizeof copy, "%s ", line);
        char want[64];
        snprintf (want, sizeof want, " %s ", name);
        if (strstr (copy, want))
            return;
        sc_testproc_sleep_ms (100);
    } while (sc_testproc_now_ms () < deadline);
    sc_testproc_dump_all ();
    fail_msg ("%s never listed", name);
}

static void
s_chat (sc_testproc_t *from, const char *from_name, sc_testproc_t *to, const char *to_name)
{
    char line[128];
    s_listed (from, to_name);
    snprintf (line, sizeof line, "/talk %s", to_name);
    assert_int_equal (sc_testproc_send (from, line), 0);
    snprintf (line, sizeof line, "request %s", from_name);
    assert_int_equal (sc_testproc_expect (to, line, s_t), 0);
    assert_int_equal (sc_testproc_send (to, "/accept"), 0);
    snprintf (line, sizeof line, "accepted %s", to_name);
    assert_int_equal (sc_testproc_expect (from, line, s_t), 0);
    snprintf (line, sizeof line, "chat %s ", to_name);
    assert_non_null (sc_testproc_expect_prefix (from, line, s_t));
    snprintf (line, sizeof line, "chat %s ", from_name);
    assert_non_null (sc_testproc_expect_prefix (to, line, s_t));
    assert_int_equal (sc_testproc_send (from, "across the cluster"), 0);
    snprintf (line, sizeof line, "msg %s across the cluster", from_name);
    assert_int_equal (sc_testproc_expect (to, line, s_t), 0);
}

static void
s_quit (sc_testproc_t **client_p)
{
    assert_int_equal (sc_testproc_send (*client_p, "/quit"), 0);
    assert_int_equal (sc_testproc_skip_to (*client_p, "bye", s_t), 0);
    assert_int_equal (sc_testproc_wait (*client_p, s_t), 0);
    sc_testproc_destroy (client_p);
}

/* Node b(i+1)'s gauge of the bucket's users reads want (polled: the
   metrics are handed over a few times a second). */
static void
s_registered_until (int i, unsigned long long want)
{
    char sub[32];
    snprintf (sub, sizeof sub, "b%d/broker.log", i + 1);
    char *path = sc_testdir_path (T.dir, sub);
    char *log = sc_testdir_slurp (path, NULL);
    const char *prefix = "metrics on http://127.0.0.1:";
    const char *at = log ? strstr (log, prefix) : NULL;
    int port = at ? atoi (at + strlen (prefix)) : 0;
    free (log);
    free (path);
    assert_true (port > 0);
    unsigned long long value = 0;
    int64_t deadline = sc_testproc_now_ms () + s_t;
    do {
        char *text = sc_testproc_metrics (port);
        assert_non_null (text);
        assert_int_equal (sc_testproc_metric (text, "secbroker_cluster_registered_users",
                                              &value), 0);
        free (text);
        if (value == want)
            return;
        sc_testproc_sleep_ms (50);
    } while (sc_testproc_now_ms () < deadline);
    fail_msg ("b%d: secbroker_cluster_registered_users is %llu, not %llu", i + 1, value, want);
}

/* ---- Tests ----------------------------------------------------------------------- */

/* Invited with node b1's NATS options, enrolled on b2, logged in on b3
   at once, chatting with alice on b1; the code is spent everywhere. */
static void
test_invite_enrol_login_anywhere (void **state)
{
    (void) state;
    char code[64], line[256];
    s_invite ("frank", code, sizeof code);
    assert_int_equal (s_tool (line, sizeof line, NULL, "invite", "--list", NULL), 0);
    assert_true (strncmp (line, "frank 20", 8) == 0);

    for (int node = 0; node < S_NODES; node++)
        s_registered_until (node, 0);
    sc_testproc_t *enrol = s_enrol ("frank", code, 1);
    s_ready (enrol, "frank");
    s_quit (&enrol);
    for (int node = 0; node < S_NODES; node++)
        s_registered_until (node, 1);
    /* on b3 at once: its registry had it from the bucket */
    sc_testproc_t *frank = s_login ("frank", 2, true);
    s_ready (frank, "frank");
    sc_testproc_t *alice = s_login ("alice", 0, false);
    s_ready (alice, "alice");
    s_chat (frank, "frank", alice, "alice");

    /* the same code again, on any node: spent */
    for (int node = 0; node < S_NODES; node++)
        s_enrol_refused ("frank", code, node, "enrol-code (invalid or already used code)");
    assert_int_equal (s_tool (line, sizeof line, NULL, "invite", "--list", NULL), 0);
    assert_string_equal (line, "frank used");
    /* and the name is registered, its key the one enrolment made */
    assert_int_equal (s_tool (line, sizeof line, NULL, "users", "--list", NULL), 0);
    assert_true (strncmp (line, "frank ", 6) == 0 && strlen (line) == 6 + 79);
    s_quit (&frank);
    s_quit (&alice);
}

/* A code used at the same time on two nodes: one enrolment only. */
static void
test_same_code_at_once_on_two_nodes (void **state)
{
    (void) state;
    char code[64];
    s_invite ("gina", code, sizeof code);
    sc_testproc_t *one = s_enrol ("gina", code, 1);
    /* the other's key file of its own: a second folder */
    char *dir = sc_testdir_path (T.dir, "twice");
    assert_int_equal (mkdir (dir, 0700), 0);
    char *key = sc_testdir_path (dir, "gina.key");
    char *pass = sc_testdir_path (T.dir, "gina.pass");
    char *ca = sc_testdir_path (T.keys, "ca.pem");
    char *cfg = sc_testdir_path (dir, "cfg");
    char *log = sc_testdir_path (dir, "enrol.log");
    char bin[512];
    snprintf (bin, sizeof bin, "%ssecchat", sc_testproc_bin_dir ());
    const char *argv[] = { bin, "enrol", "--endpoint", T.endpoint[2], "--user", "gina",
                           "--ca", ca, "--key", key, "--password-file", pass,
                           "--config-dir", cfg, "--batch", "--code", code, NULL };
    sc_testproc_t *two = sc_testproc_new ("gina-2", argv, log);
    assert_non_null (two);
    int won = 0;
    sc_testproc_t *procs[2] = { one, two };
    for (int i = 0; i < 2; i++) {
        const char *line = NULL;
        int rc = sc_testproc_read_line (procs[i], s_t, &line);
        if (rc == 1 && strcmp (line, "ready gina") == 0) {
            won++;
            s_quit (&procs[i]);
            continue;
        }
        assert_int_equal (rc, -1);
        assert_int_equal (sc_testproc_wait (procs[i], s_t), 1);
        char *text = sc_testdir_slurp (sc_testproc_log_path (procs[i]), NULL);
        assert_non_null (text);
        if (!strstr (text, "enrol-code (invalid or already used code)")
            && !strstr (text, "enrol-taken (this name is already registered)"))
            fail_msg ("the second enrolment of gina: %s", text);
        free (text);
        sc_testproc_destroy (&procs[i]);
    }
    assert_int_equal (won, 1);
    free (dir);
    free (key);
    free (pass);
    free (ca);
    free (cfg);
    free (log);
}

/* A revoked invitation is good nowhere; a name taken (by a node's users
   folder, or in the bucket) is refused to a good code. */
static void
test_revoked_and_taken (void **state)
{
    (void) state;
    char code[64], line[256];
    char *err = NULL;
    s_invite ("hank", code, sizeof code);
    assert_int_equal (s_tool (NULL, 0, &err, "invite", "--revoke", "hank", NULL), 0);
    assert_non_null (strstr (err, "invitation of hank revoked"));
    free (err);
    s_enrol_refused ("hank", code, 1, "enrol-code (invalid or already used code)");
    assert_int_equal (s_tool (NULL, 0, &err, "invite", "--revoke", "hank", NULL), 1);
    assert_non_null (strstr (err, "there is none"));
    free (err);

    /* alice is in the nodes' users folders: her name is taken */
    s_invite ("alice", code, sizeof code);
    s_enrol_refused ("alice", code, 2, "enrol-taken (this name is already registered)");

    /* ivan is registered in the bucket after his invitation was made */
    s_invite ("ivan", code, sizeof code);
    char *bob_pub = sc_testdir_path (T.keys, "users/bob.pub");
    assert_int_equal (s_tool (NULL, 0, NULL, "users", "--add", "ivan", bob_pub, NULL), 0);
    assert_int_equal (s_tool (NULL, 0, &err, "users", "--add", "ivan", bob_pub, NULL), 1);
    assert_non_null (strstr (err, "ivan is already registered"));
    free (err);
    s_enrol_refused ("ivan", code, 0, "enrol-taken (this name is already registered)");
    /* and nobody invites a registered name */
    assert_int_equal (s_tool (NULL, 0, &err, "invite", "ivan", NULL), 1);
    assert_non_null (strstr (err, "ivan is already registered"));
    free (err);
    assert_int_equal (s_tool (NULL, 0, NULL, "users", "--remove", "ivan", NULL), 0);
    free (bob_pub);
    (void) line;
}

/* Removed from the bucket: logged out on every node (ERROR REVOKED),
   its peer told; it cannot log in again. */
static void
test_removed_user_logged_out_everywhere (void **state)
{
    (void) state;
    char code[64];
    s_invite ("judy", code, sizeof code);
    sc_testproc_t *enrol = s_enrol ("judy", code, 0);
    s_ready (enrol, "judy");
    s_quit (&enrol);
    sc_testproc_t *judy = s_login ("judy", 1, true);
    s_ready (judy, "judy");
    sc_testproc_t *bob = s_login ("bob", 1, false);
    s_ready (bob, "bob");
    s_chat (judy, "judy", bob, "bob");
    assert_int_equal (s_tool (NULL, 0, NULL, "users", "--remove", "judy", NULL), 0);
    assert_int_equal (sc_testproc_expect (judy, "error revoked your key was removed from "
                                          "the broker's registry", s_t), 0);
    assert_int_equal (sc_testproc_skip_to (judy, "closed bob", s_t), 0);
    assert_int_equal (sc_testproc_expect_eof (judy, s_t), 0);
    assert_int_equal (sc_testproc_wait (judy, s_t), 1);
    sc_testproc_destroy (&judy);
    assert_int_equal (sc_testproc_expect (bob, "error revoked the broker logged judy out: "
                                          "judy's key was revoked", s_t), 0);
    assert_int_equal (sc_testproc_skip_to (bob, "closed judy", s_t), 0);
    /* every node forgot her */
    for (int node = 0; node < S_NODES; node++) {
        char sub[64];
        snprintf (sub, sizeof sub, "b%d/broker.log", node + 1);
        char *path = sc_testdir_path (T.dir, sub);
        int64_t deadline = sc_testproc_now_ms () + s_t;
        while (!s_file_has (path, "cluster: judy removed from secchat-users") && sc_testproc_now_ms () < deadline)
            sc_testproc_sleep_ms (50);
        assert_true (s_file_has (path, "cluster: judy removed from secchat-users"));
        free (path);
        sc_testproc_t *again = s_login ("judy", node, true);
        assert_int_equal (sc_testproc_expect_eof (again, s_t), 0);
        assert_int_not_equal (sc_testproc_wait (again, s_t), 0);
        assert_true (s_file_has (sc_testproc_log_path (again),
                                 "secchat: authentication failed for judy"));
        sc_testproc_destroy (&again);
    }
    s_quit (&bob);
}

/* SIGHUP reloads the folder and keeps the bucket's users; a node started
   later knows them before its first login. */
static void
test_reload_and_late_node (void **state)
{
    (void) state;
    char code[64];
    s_invite ("kate", code, sizeof code);
    sc_testproc_t *enrol = s_enrol ("kate", code, 2);
    s_ready (enrol, "kate");
    s_quit (&enrol);
    assert_int_equal (sc_testproc_signal (T.broker[0], SIGHUP), 0);
    char *path = sc_testdir_path (T.dir, "b1/broker.log");
    int64_t deadline = sc_testproc_now_ms () + s_t;
    while (!s_file_has (path, "registry reloaded") && sc_testproc_now_ms () < deadline)
        sc_testproc_sleep_ms (50);
    assert_true (s_file_has (path, "registry reloaded"));
    free (path);
    sc_testproc_t *kate = s_login ("kate", 0, true);
    s_ready (kate, "kate");
    s_quit (&kate);

    char endpoint[256];
    sc_testproc_t *late = s_broker_start (1, "b4", endpoint, sizeof endpoint);
    assert_non_null (late);
    char label[] = "kate-b4";
    sc_testclient_t opts = { .keys = T.keys, .workdir = T.dir, .endpoint = endpoint,
                             .user = "kate", .name = label };
    char *key = sc_testdir_path (T.dir, "kate.key");
    char *pass = sc_testdir_path (T.dir, "kate.pass");
    opts.key_file = key;
    opts.password_file = pass;
    kate = sc_testproc_client_new (&opts);
    assert_non_null (kate);
    s_ready (kate, "kate");
    s_quit (&kate);
    assert_int_equal (sc_testproc_signal (late, SIGTERM), 0);
    assert_int_equal (sc_testproc_wait (late, s_t), 0);
    sc_testproc_destroy (&late);
    free (key);
    free (pass);
}

/* A node cut off from NATS (its only way there a proxy, which is cut)
   while one of its users is removed from the bucket: once it is back,
   its watch brings the removal, and the user is logged out. */
static void
test_removed_while_cut_off (void **state)
{
    (void) state;
    char code[64];
    s_invite ("olga", code, sizeof code);
    sc_testproc_t *enrol = s_enrol ("olga", code, 0);
    s_ready (enrol, "olga");
    s_quit (&enrol);

    sc_testnet_proxy_t *proxy = sc_testnet_proxy_new (false, T.client_port[1], false);
    assert_non_null (proxy);
    char url[64], endpoint[256];
    snprintf (url, sizeof url, "nats://127.0.0.1:%d", sc_testnet_proxy_port (proxy));
    char *dir = sc_testdir_path (T.dir, "b5");
    assert_int_equal (mkdir (dir, 0700), 0);
    const char *const extra[] = { "--cluster", url, "--node", "b5", NULL };
    sc_testproc_t *cut = sc_testproc_broker_new_with (T.keys, dir, extra, endpoint,
                                                      sizeof endpoint);
    assert_non_null (cut);
    /* b5 read the bucket before it took logins: olga is known there */
    char label[] = "olga-b5";
    sc_testclient_t opts = { .keys = T.keys, .workdir = T.dir, .endpoint = endpoint,
                             .user = "olga", .name = label };
    char *key = sc_testdir_path (T.dir, "olga.key");
    char *pass = sc_testdir_path (T.dir, "olga.pass");
    opts.key_file = key;
    opts.password_file = pass;
    sc_testproc_t *olga = sc_testproc_client_new (&opts);
    assert_non_null (olga);
    s_ready (olga, "olga");

    assert_int_equal (sc_testnet_proxy_cut (proxy, true), 0);
    char *log = sc_testdir_path (dir, "broker.log");
    int64_t deadline = sc_testproc_now_ms () + 3 * s_t;
    while (!s_file_has (log, "cluster: disconnected from NATS")
           && sc_testproc_now_ms () < deadline)
        sc_testproc_sleep_ms (50);
    assert_true (s_file_has (log, "cluster: disconnected from NATS"));
    assert_int_equal (s_tool (NULL, 0, NULL, "users", "--remove", "olga", NULL), 0);
    /* b5 cannot know yet: olga stays */
    sc_testproc_sleep_ms (500);
    assert_false (s_file_has (log, "cluster: olga removed from secchat-users"));
    assert_int_equal (sc_testnet_proxy_cut (proxy, false), 0);
    assert_int_equal (sc_testproc_expect (olga, "error revoked your key was removed from "
                                          "the broker's registry", 3 * s_t), 0);
    assert_int_equal (sc_testproc_wait (olga, s_t), 1);
    assert_true (s_file_has (log, "cluster: olga removed from secchat-users"));
    sc_testproc_destroy (&olga);
    assert_int_equal (sc_testproc_signal (cut, SIGTERM), 0);
    assert_int_equal (sc_testproc_wait (cut, s_t), 0);
    sc_testproc_destroy (&cut);
    sc_testnet_proxy_destroy (&proxy);
    free (log);
    free (key);
    free (pass);
    free (dir);
}

/* b1's NATS server dies: b1 goes on through another one, and still
   follows the bucket of users (its watch resumes there). */
static void
test_nats_server_lost (void **state)
{
    (void) state;
    char code[64];
    s_invite ("nina", code, sizeof code);
    sc_testproc_t *enrol = s_enrol ("nina", code, 1);
    s_ready (enrol, "nina");
    s_quit (&enrol);
    sc_testproc_t *nina = s_login ("nina", 0, true);
    s_ready (nina, "nina");
    assert_int_equal (sc_testproc_kill (T.nats[0]), SC_TESTPROC_SIGNALED + SIGKILL);
    char *path = sc_testdir_path (T.dir, "b1/broker.log");
    int64_t deadline = sc_testproc_now_ms () + 3 * s_t;
    while (!s_file_has (path, "cluster: reconnected to NATS at")
           && sc_testproc_now_ms () < deadline)
        sc_testproc_sleep_ms (100);
    assert_true (s_file_has (path, "cluster: reconnected to NATS at"));
    free (path);
    /* the tool too goes to the next server of the list */
    assert_int_equal (s_tool (NULL, 0, NULL, "users", "--remove", "nina", NULL), 0);
    assert_int_equal (sc_testproc_expect (nina, "error revoked your key was removed from "
                                          "the broker's registry", 3 * s_t), 0);
    assert_int_equal (sc_testproc_wait (nina, s_t), 1);
    sc_testproc_destroy (&nina);
}

/* NATS gone: an enrolment is refused with ERROR INTERNAL and its own
   text, nothing kept; users already known still log in. (Last of the
   tests on the cluster: its NATS servers go.) */
static void
test_nats_down_during_enrolment (void **state)
{
    (void) state;
    char code[64];
    s_invite ("leo", code, sizeof code);
    for (int i = 0; i < S_NODES; i++)
        assert_int_equal (sc_testproc_kill (T.nats[i]), SC_TESTPROC_SIGNALED + SIGKILL);
    /* the client tries again for its --timeout (10 s), then gives up */
    sc_testproc_t *leo = s_enrol ("leo", code, 0);
    assert_int_equal (sc_testproc_expect_eof (leo, 3 * s_t), 0);
    assert_int_equal (sc_testproc_wait (leo, s_t), 1);
    char *text = sc_testdir_slurp (sc_testproc_log_path (leo), NULL);
    assert_non_null (text);
    if (!strstr (text, "the cluster's registry cannot be reached, retry later"))
        fail_msg ("secchat enrol leo said:\n%s", text);
    free (text);
    sc_testproc_destroy (&leo);
    char *path = sc_testdir_path (T.dir, "b1/broker.log");
    assert_true (s_file_has (path, "enrolment of leo failed: cannot read leo: "));
    free (path);
    sc_testproc_t *kate = s_login ("kate", 0, true);
    s_ready (kate, "kate");
    s_quit (&kate);
}

/* A NATS server without JetStream: the broker says so in one line and
   exits 1. */
static void
test_no_jetstream (void **state)
{
    (void) state;
    char *log = sc_testdir_path (T.dir, "plain-nats.log");
    const char *const nats_argv[] = { "nats-server", "-a", "127.0.0.1", "-p", "-1", NULL };
    sc_testproc_t *nats = sc_testproc_new ("plain-nats", nats_argv, log);
    assert_non_null (nats);
    int64_t deadline = sc_testproc_now_ms () + s_t;
    int port = -1;
    while (sc_testproc_now_ms () < deadline
           && (port = s_port_in_log (log, "client connections on 127.0.0.1:")) <= 0)
        sc_testproc_sleep_ms (50);
    assert_true (port > 0);
    char url[64], bin[512], cert[512], key[512], users[512];
    snprintf (url, sizeof url, "nats://127.0.0.1:%d", port);
    snprintf (bin, sizeof bin, "%ssecbroker", sc_testproc_bin_dir ());
    snprintf (cert, sizeof cert, "%s/broker.crt", T.keys);
    snprintf (key, sizeof key, "%s/broker.key", T.keys);
    snprintf (users, sizeof users, "%s/users", T.keys);
    char *blog = sc_testdir_path (T.dir, "no-js.log");
    const char *const argv[] = { bin, "--endpoint", "tcp://127.0.0.1:!", "--cert", cert,
                                 "--key", key, "--users", users, "--cluster", url,
                                 "--node", "nojs", NULL };
    sc_testproc_t *broker = sc_testproc_new ("broker-nojs", argv, blog);
    assert_non_null (broker);
    assert_int_equal (sc_testproc_wait (broker, s_t), 1);
    assert_int_equal (sc_testproc_expect_eof (broker, 1000), 0);
    char *text = sc_testdir_slurp (blog, NULL);
    assert_non_null (text);
    const char *want = "secbroker: JetStream must be enabled on the NATS servers ";
    if (strncmp (text, want, strlen (want)) != 0)
        fail_msg ("not the line expected: %s", text);
    assert_true (strchr (text, '\n') && strchr (text, '\n')[1] == 0);
    free (text);
    /* and the tools say the same */
    char *err = NULL;
    char *saved = strdup (T.urls[0]);
    snprintf (T.urls[0], sizeof T.urls[0], "%s", url);
    assert_int_equal (s_tool (NULL, 0, &err, "invite", "nobody", NULL), 1);
    snprintf (T.urls[0], sizeof T.urls[0], "%s", saved);
    assert_non_null (err);
    assert_true (strncmp (err, want, strlen (want)) == 0);
    free (err);
    free (saved);
    sc_testproc_destroy (&broker);
    sc_testproc_destroy (&nats);
    free (blog);
    free (log);
}

/* ---- Fixture ------------------------------------------------------------------ */

static int
s_group_setup (void **state)
{
    (void) state;
    s_t = sc_testproc_timeout (10000);
    T.dir = sc_testdir_new ("cluster-kv");
    if (!T.dir)
        return -1;
    T.keys = sc_testdir_path (T.dir, "keys");
    const char *const users[] = { "alice", "bob", NULL };
    if (sc_testproc_make_keys (T.keys, users))
        return -1;
    for (int i = 0; i < S_NODES; i++)
        if (s_nats_start (i))
            return -1;
    if (s_nats_ready ()) {
        sc_testproc_dump_all ();
        return -1;
    }
    for (int i = 0; i < S_NODES; i++) {
        char node[16];
        snprintf (node, sizeof node, "b%d", i + 1);
        T.broker[i] = s_broker_start (i, node, T.endpoint[i], sizeof T.endpoint[i]);
        if (!T.broker[i])
            return -1;
    }
    return 0;
}

static int
s_group_teardown (void **state)
{
    (void) state;
    /* the brokers stop cleanly (under the sanitizers: no leak) */
    int rc = 0;
    for (int i = 0; i < S_NODES; i++)
        if (T.broker[i]) {
            (void) sc_testproc_signal (T.broker[i], SIGTERM);
            int status = sc_testproc_wait (T.broker[i], sc_testproc_timeout (10000));
            if (status != 0) {
                fprintf (stderr, "broker b%d exit status %d\n", i + 1, status);
                sc_testproc_dump (T.broker[i]);
                rc = -1;
            }
        }
    sc_testproc_destroy_all ();
    if (T.dir)
        sc_testdir_remove (T.dir);
    free (T.keys);
    free (T.dir);
    return rc;
}

int
main (void)
{
    signal (SIGPIPE, SIG_IGN);
    if (getenv ("SC_TEST_FILTER"))
        cmocka_set_test_filter (getenv ("SC_TEST_FILTER"));
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_invite_enrol_login_anywhere),
        cmocka_unit_test (test_same_code_at_once_on_two_nodes),
        cmocka_unit_test (test_revoked_and_taken),
        cmocka_unit_test (test_removed_user_logged_out_everywhere),
        cmocka_unit_test (test_reload_and_late_node),
        cmocka_unit_test (test_removed_while_cut_off),
        cmocka_unit_test (test_nats_server_lost),
        cmocka_unit_test (test_nats_down_during_enrolment),
        cmocka_unit_test (test_no_jetstream),
    };
    return cmocka_run_group_tests_name ("cluster-kv", tests, s_group_setup, s_group_teardown);
}
