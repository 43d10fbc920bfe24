/*  How secchat finds its broker, with the real binaries: a refused port
    and a name that does not resolve are reported at once, naming what
    was tried; an --endpoint list is tried in order at login and after a
    broker is lost (two single brokers, one killed); host:port without
    tcp:// and IPv6 [::1]:port; a broker that does not answer is left
    for the next one; a wrong --broker-name says which names the
    certificate has.

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at https://mozilla.org/MPL/2.0/.
*/
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sc_testnet.h"
#include "sc_testproc.h"

#define T_LINE      sc_testproc_timeout (10000)
/* A failure that needs no waiting: the key's scrypt and a probe, on a
   loaded machine; far below the --timeout 30 these clients are given. */
#define T_AT_ONCE   sc_testproc_timeout (8000)

static struct {
    char *dir;
    char *keys;
} T;

static int
s_group_setup (void **state)
{
    (void) state;
    T.dir = sc_testdir_new ("connect");
    if (!T.dir)
        return -1;
    T.keys = sc_testdir_path (T.dir, "keys");
    const char *const users[] = { "alice", "bob", NULL };
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
    return 0;
}

/* ---- Helpers ---------------------------------------------------------------- */

/* A socket on 127.0.0.1 or ::1, as sc_testnet_socket. */
static int
s_socket (bool v6, int *port, bool listen_too)
{
    int fd = sc_testnet_socket (v6, port, listen_too);
    assert_true (fd >= 0);
    return fd;
}

static int
s_listener (bool v6, int *port)
{
    *port = 0;
    return s_socket (v6, port, true);
}

/* A loopback port that refuses connections while *fd is open. */
static int
s_refusing_port (int *fd)
{
    int port = 0;
    *fd = s_socket (false, &port, false);
    return port;
}

/* "tcp://127.0.0.1:PORT" -> "127.0.0.1:PORT" (the form without tcp://). */
static const char *
s_bare (const char *endpoint)
{
    assert_int_equal (strncmp (endpoint, "tcp://", 6), 0);
    return endpoint + 6;
}

static sc_testproc_t *
s_client (const char *user, const char *name, const char *endpoint, const char *timeout)
{
    sc_testclient_t opts = { .keys = T.keys, .workdir = T.dir, .endpoint = endpoint,
                             .user = user, .name = name, .timeout = timeout };
    sc_testproc_t *client = sc_testproc_client_new (&opts);
    assert_non_null (client);
    return client;
}

static sc_testproc_t *
s_login (const char *user, const char *name, const char *endpoint)
{
    sc_testproc_t *client = s_client (user, name, endpoint, NULL);
    char ready[64];
    snprintf (ready, sizeof ready, "ready %s", user);
    assert_int_equal (sc_testproc_expect (client, ready, T_LINE), 0);
    return client;
}

/* The client ends with status 1 within ms, printing nothing on standard
   output, and a line of its log starts with text (ends a "\n" in text:
   is text). */
static void
s_fails_with (sc_testproc_t *client, int ms, const char *text)
{
    int64_t start = sc_testproc_now_ms ();
    assert_int_equal (sc_testproc_expect_eof (client, ms), 0);
    assert_int_equal (sc_testproc_wait (client, ms), 1);
    int64_t took = sc_testproc_now_ms () - start;
    char *log = sc_testdir_slurp (sc_testproc_log_path (client), NULL);
    assert_non_null (log);
    char want[2048];
    snprintf (want, sizeof want, "\n%s", text);
    if (strncmp (log, text, strlen (text)) != 0 && !strstr (log, want))
        fail_msg ("[%s] no line starts \"%s\" in its log:\n%s", sc_testproc_name (client),
                  text, log);
    free (log);
    fprintf (stderr, "[%s] failed after %lld ms\n", sc_testproc_name (client),
             (long long) took);
}

/* alice asks bob, bob accepts, both reach `chat`, then a line each way. */
static void
s_chat (sc_testproc_t *alice, sc_testproc_t *bob, const char *text)
{
    assert_int_equal (sc_testproc_open_chat (alice, "alice", bob, "bob", T_LINE), 0);
    char line[256];
    assert_int_equal (sc_testproc_send (alice, text), 0);
    snprintf (line, sizeof line, "msg alice %s", text);
    assert_int_equal (sc_testproc_expect (bob, line, T_LINE), 0);
    assert_int_equal (sc_testproc_send (bob, text), 0);
    snprintf (line, sizeof line, "msg bob %s", text);
    assert_int_equal (sc_testproc_expect (alice, line, T_LINE), 0);
}

static void
s_quit (sc_testproc_t *client)
{
    assert_int_equal (sc_testproc_send (client, "/quit"), 0);
    assert_int_equal (sc_testproc_wait (client, T_LINE), 0);
}

static int
s_port (const char *endpoint)
{
    const char *colon = strrchr (endpoint, ':');
    assert_non_null (colon);
    return atoi (colon + 1);
}

/* ---- Tests ---------------------------------------------------------------------- */

/* A port nobody listens on is reported at once (not after --timeout),
   with the address it tried. */
static void
test_refused_port_at_once (void **state)
{
    (void) state;
    int fd = -1;
    int port = s_refusing_port (&fd);
    char endpoint[64], line[256];
    snprintf (endpoint, sizeof endpoint, "tcp://127.0.0.1:%d", port);
    sc_testproc_t *client = s_client ("alice", "refused", endpoint, "30");
    snprintf (line, sizeof line, "secchat: broker unreachable: tcp://127.0.0.1:%d: "
              "connection refused (127.0.0.1 port %d)\n", port, port);
    s_fails_with (client, T_AT_ONCE, line);
    close (fd);
}

static void
test_unresolvable_host_at_once (void **state)
{
    (void) state;
    sc_testproc_t *client = s_client ("alice", "unresolvable",
                                      "tcp://no-such-host.invalid:4242", "30");
    /* the resolver's own words follow in parentheses */
    s_fails_with (client, T_AT_ONCE, "secchat: broker unreachable: "
                  "tcp://no-such-host.invalid:4242: no-such-host.invalid does not resolve (");
}

/* Every endpoint of a list fails at once: the one line names each. */
static void
test_list_all_refused (void **state)
{
    (void) state;
    int fd = -1;
    int port = s_refusing_port (&fd);
    int fd6 = s_socket (true, &port, false);
    char endpoint[128];
    snprintf (endpoint, sizeof endpoint, "127.0.0.1:%d, tcp://[::1]:%d", port, port);
    sc_testproc_t *client = s_client ("alice", "all-refused", endpoint, "30");
    char line[512];
    snprintf (line, sizeof line, "secchat: broker unreachable: tcp://127.0.0.1:%d: "
              "connection refused (127.0.0.1 port %d); tcp://[::1]:%d: "
              "connection refused (::1 port %d)\n", port, port, port, port);
    s_fails_with (client, T_AT_ONCE, line);
    close (fd);
    close (fd6);
}

/* The first endpoint of the list is down at start: the client logs in
   to the second, at once. */
static void
test_first_down_at_start (void **state)
{
    (void) state;
    char up[256], endpoint[512];
    sc_testproc_t *broker = sc_testproc_broker_new (T.keys, T.dir, 0, up, sizeof up);
    assert_non_null (broker);
    int held = -1;
    int down = s_refusing_port (&held);
    snprintf (endpoint, sizeof endpoint, "127.0.0.1:%d,%s", down, s_bare (up));
    int64_t start = sc_testproc_now_ms ();
    sc_testproc_t *alice = s_client ("alice", "first-down", endpoint, "30");
    assert_int_equal (sc_testproc_expect (alice, "ready alice", T_AT_ONCE), 0);
    fprintf (stderr, "[first-down] in after %lld ms\n",
             (long long) (sc_testproc_now_ms () - start));
    assert_int_equal (sc_testproc_send (alice, "/list"), 0);
    assert_int_equal (sc_testproc_expect (alice, "users", T_LINE), 0);
    s_quit (alice);
    char *log = sc_testdir_slurp (sc_testproc_log_path (alice), NULL);
    assert_non_null (log);
    char note[1024];
    snprintf (note, sizeof note, "secchat: note: tcp://127.0.0.1:%d: connection refused "
              "(127.0.0.1 port %d); trying %s\nsecchat: note: logged in at %s\n",
              down, down, up, up);
    if (!strstr (log, note))
        fail_msg ("log: %s", log);
    free (log);
    close (held);
}

/* An endpoint that accepts the connection and never answers is given its
   share of --timeout, then the next one is tried. */
static void
test_silent_endpoint_left (void **state)
{
    (void) state;
    char up[256], endpoint[512];
    sc_testproc_t *broker = sc_testproc_broker_new (T.keys, T.dir, 0, up, sizeof up);
    assert_non_null (broker);
    int silent_port = 0;
    int silent = s_listener (false, &silent_port);       /* never accepts */
    snprintf (endpoint, sizeof endpoint, "127.0.0.1:%d,%s", silent_port, up);
    int64_t start = sc_testproc_now_ms ();
    sc_testproc_t *alice = s_client ("alice", "silent", endpoint, "4");
    assert_int_equal (sc_testproc_expect (alice, "ready alice", T_LINE), 0);
    int64_t took = sc_testproc_now_ms () - start;
    fprintf (stderr, "[silent] in after %lld ms\n", (long long) took);
    /* half of --timeout 4 on the silent one */
    assert_true (took >= 2000);
    s_quit (alice);
    char *log = sc_testdir_slurp (sc_testproc_log_path (alice), NULL);
    assert_non_null (log);
    char note[512];
    snprintf (note, sizeof note, "secchat: note: tcp://127.0.0.1:%d: no answer in 2.",
              silent_port);
    if (!strstr (log, note))
        fail_msg ("log: %s", log);
    free (log);
    close (silent);
}

/* The broker the clients are on is killed mid-chat: they reconnect to
   the other broker of their list, and chat again. */
static void
test_failover_when_broker_killed (void **state)
{
    (void) state;
    char first[256], second[256], endpoint[512];
    sc_testproc_t *b1 = sc_testproc_broker_new (T.keys, T.dir, 300, first, sizeof first);
    assert_non_null (b1);
    sc_testproc_t *b2 = sc_testproc_broker_new (T.keys, T.dir, 300, second, sizeof second);
    assert_non_null (b2);
    snprintf (endpoint, sizeof endpoint, "%s,%s", first, s_bare (second));
    sc_testproc_t *alice = s_login ("alice", "failover-alice", endpoint);
    sc_testproc_t *bob = s_login ("bob", "failover-bob", endpoint);
    s_chat (alice, bob, "on the first broker");

    assert_int_equal (sc_testproc_kill (b1), SC_TESTPROC_SIGNALED + SIGKILL);
    int held = sc_testnet_hold_port (s_port (first));
    assert_true (held >= 0);
    assert_non_null (sc_testproc_expect_prefix (alice, "error broker-lost ", T_LINE));
    assert_non_null (sc_testproc_expect_prefix (bob, "error broker-lost ", T_LINE));
    /* the first endpoint now refuses: on to the second, without waiting
       for a timeout */
    int back = sc_testproc_timeout (8000);
    assert_int_equal (sc_testproc_skip_to (alice, "ready alice", back), 0);
    assert_int_equal (sc_testproc_skip_to (bob, "ready bob", back), 0);
    assert_int_equal (sc_testproc_send (alice, "/list"), 0);
    assert_int_equal (sc_testproc_expect (alice, "users bob", T_LINE), 0);
    s_chat (alice, bob, "on the second broker");
    s_quit (alice);
    assert_int_equal (sc_testproc_expect (bob, "closed alice", T_LINE), 0);
    s_quit (bob);
    /* they were on the second broker: it saw their chat */
    assert_int_equal (sc_testproc_signal (b2, SIGTERM), 0);
    assert_int_equal (sc_testproc_wait (b2, T_LINE), 0);
    close (held);
}

/* [::1]:port and tcp://[::1]:port reach a broker over IPv6. */
static void
test_ipv6 (void **state)
{
    (void) state;
    char up[256], endpoint[128];
    sc_testproc_t *broker = sc_testproc_broker_new (T.keys, T.dir, 0, up, sizeof up);
    assert_non_null (broker);
    /* secbroker listens on IPv4 only: a proxy carries [::1]:port to it */
    sc_testnet_proxy_t *fwd = sc_testnet_proxy_new (true, s_port (up), false);
    assert_non_null (fwd);
    int port = sc_testnet_proxy_port (fwd);
    snprintf (endpoint, sizeof endpoint, "[::1]:%d", port);
    sc_testproc_t *alice = s_login ("alice", "ipv6-alice", endpoint);
    snprintf (endpoint, sizeof endpoint, "tcp://[::1]:%d", port);
    sc_testproc_t *bob = s_login ("bob", "ipv6-bob", endpoint);
    assert_int_equal (sc_testproc_send (alice, "/list"), 0);
    assert_int_equal (sc_testproc_expect (alice, "users bob", T_LINE), 0);
    s_chat (alice, bob, "over IPv6");
    s_quit (alice);
    s_quit (bob);
    /* each client: its probe and its session */
    assert_true (sc_testnet_proxy_carried (fwd) >= 2);
    sc_testnet_proxy_destroy (&fwd);
}

/* A wrong --broker-name says which names the certificate carries. */
static void
test_wrong_broker_name_says_both (void **state)
{
    (void) state;
    char up[256];
    sc_testproc_t *broker = sc_testproc_broker_new (T.keys, T.dir, 0, up, sizeof up);
    assert_non_null (broker);
    sc_testclient_t opts = { .keys = T.keys, .workdir = T.dir, .endpoint = up,
                             .user = "alice", .name = "wrong-name",
                             .broker_name = "chat.example.org" };
    sc_testproc_t *alice = sc_testproc_client_new (&opts);
    assert_non_null (alice);
    s_fails_with (alice, T_LINE, "secchat: broker certificate rejected: it is for "
                  "secbroker, not for the expected broker name chat.example.org "
                  "(--broker-name)\n");
}

int
main (void)
{
    signal (SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown (test_refused_port_at_once, s_teardown),
        cmocka_unit_test_teardown (test_unresolvable_host_at_once, s_teardown),
        cmocka_unit_test_teardown (test_list_all_refused, s_teardown),
        cmocka_unit_test_teardown (test_first_down_at_start, s_teardown),
        cmocka_unit_test_teardown (test_silent_endpoint_left, s_teardown),
        cmocka_unit_test_teardown (test_failover_when_broker_killed, s_teardown),
        cmocka_unit_test_teardown (test_ipv6, s_teardown),
        cmocka_unit_test_teardown (test_wrong_broker_name_says_both, s_teardown),
    };
    return cmocka_run_group_tests (tests, s_group_setup, s_group_teardown);
}
