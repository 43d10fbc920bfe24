/*  What never leaves a client unencrypted, and faults.

    A recording TCP proxy sits between the clients and the broker during a
    scripted chat: neither the messages' text nor the users' names may
    appear in what crossed it, and the broker's log may hold no message
    text. Then the faults: the broker killed and restarted mid-chat (the
    clients say so, refuse what cannot be sent, log in again and chat
    again), a broker whose log is a full disk, and a broker stopped and
    continued (EINTR) mid-chat.

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at https://mozilla.org/MPL/2.0/.
*/
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sc_testnet.h"
#include "sc_testproc.h"

/* ---- Fixture ----------------------------------------------------------------- */

static struct {
    char *dir;
    char *keys;
} T;

static int
s_group_setup (void **state)
{
    (void) state;
    T.dir = sc_testdir_new ("faults");
    if (!T.dir)
        return -1;
    T.keys = sc_testdir_path (T.dir, "keys");
    const char *const users[] = { "alice", "bob", "a-twenty-one-chars-id", NULL };
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

static int
s_port (const char *endpoint)
{
    const char *colon = strrchr (endpoint, ':');
    return colon ? atoi (colon + 1) : -1;
}

static sc_testproc_t *
s_client (const char *user, const char *endpoint)
{
    sc_testclient_t opts = { .keys = T.keys, .workdir = T.dir, .endpoint = endpoint,
                             .user = user };
    sc_testproc_t *client = sc_testproc_client_new (&opts);
    assert_non_null (client);
    char ready[64];
    snprintf (ready, sizeof ready, "ready %s", user);
    assert_int_equal (sc_testproc_expect (client, ready, sc_testproc_timeout (10000)), 0);
    return client;
}

/* alice asks bob, bob accepts, both reach `chat`. */
static void
s_open_chat (sc_testproc_t *alice, sc_testproc_t *bob)
{
    assert_int_equal (sc_testproc_open_chat (alice, "alice", bob, "bob",
                                             sc_testproc_timeout (10000)), 0);
}

static void
s_say (sc_testproc_t *from, sc_testproc_t *to, const char *from_name, const char *text)
{
    char line[512];
    snprintf (line, sizeof line, "msg %s %s", from_name, text);
    assert_int_equal (sc_testproc_send (from, text), 0);
    assert_int_equal (sc_testproc_expect (to, line, sc_testproc_timeout (10000)), 0);
}

/* ---- Tests --------------------------------------------------------------------- */

static void
test_wire_shows_no_text_and_no_names (void **state)
{
    (void) state;
    char endpoint[256], via[256];
    sc_testproc_t *broker = sc_testproc_broker_new (T.keys, T.dir, 0, endpoint, sizeof endpoint);
    assert_non_null (broker);
    sc_testnet_proxy_t *proxy = sc_testnet_proxy_new (false, s_port (endpoint), true);
    assert_non_null (proxy);
    snprintf (via, sizeof via, "tcp://127.0.0.1:%d", sc_testnet_proxy_port (proxy));

    sc_testproc_t *alice = s_client ("alice", via);
    sc_testproc_t *bob = s_client ("bob", via);
    assert_int_equal (sc_testproc_send (alice, "/list"), 0);
    assert_int_equal (sc_testproc_expect (alice, "users bob", sc_testproc_timeout (10000)), 0);
    s_open_chat (alice, bob);
    static const char *secrets[] = {
        "the eagle lands at midnight",
        "Passwort: Kräutertee-1234",
        "meet me by the old oak tree",
    };
    s_say (alice, bob, "alice", secrets[0]);
    s_say (bob, alice, "bob", secrets[1]);
    s_say (alice, bob, "alice", secrets[2]);
    assert_int_equal (sc_testproc_send (alice, "/quit"), 0);
    assert_int_equal (sc_testproc_expect (bob, "closed alice", sc_testproc_timeout (10000)), 0);
    assert_int_equal (sc_testproc_send (bob, "/quit"), 0);
    assert_int_equal (sc_testproc_wait (alice, sc_testproc_timeout (10000)), 0);
    assert_int_equal (sc_testproc_wait (bob, sc_testproc_timeout (10000)), 0);

    /* the proxy did carry the traffic (the certificate names the broker) */
    assert_true (sc_testnet_proxy_saw (proxy, "secbroker"));
    for (size_t i = 0; i < sizeof secrets / sizeof secrets[0]; i++)
        if (sc_testnet_proxy_saw (proxy, secrets[i]))
            fail_msg ("message text on the wire: %s", secrets[i]);
    /* no part of the messages either, nor the users' names (bob as the
       msgpack string a name would travel as: three bytes alone would turn
       up in random ciphertext now and then) */
    const char *fragments[] = { "eagle", "midnight", "Kräutertee", "oak tree", "alice", "\xa3" "bob" };
    for (size_t i = 0; i < sizeof fragments / sizeof fragments[0]; i++)
        if (sc_testnet_proxy_saw (proxy, fragments[i]))
            fail_msg ("'%s' appears on the wire", fragments[i]);
    sc_testnet_proxy_destroy (&proxy);

    /* the broker logged who talked to whom, and no message text */
    assert_int_equal (sc_testproc_signal (broker, SIGTERM), 0);
    assert_int_equal (sc_testproc_wait (broker, sc_testproc_timeout (10000)), 0);
    char *log = sc_testdir_slurp (sc_testproc_log_path (broker), NULL);
    assert_non_null (log);
    assert_non_null (strstr (log, "chat alice <-> bob"));
    for (size_t i = 0; i < sizeof fragments / sizeof fragments[0] - 2; i++)
        if (strstr (log, fragments[i]))
            fail_msg ("'%s' appears in the broker's log", fragments[i]);
    free (log);
}

/* The bytes of a login through the proxy, both ways, on the connections
   the client spoke on: user logs in and
   quits at once. */
static size_t
s_login_bytes (const char *endpoint, const char *user)
{
    sc_testnet_proxy_t *proxy = sc_testnet_proxy_new (false, s_port (endpoint), false);
    assert_non_null (proxy);
    char via[256];
    snprintf (via, sizeof via, "tcp://127.0.0.1:%d", sc_testnet_proxy_port (proxy));
    sc_testproc_t *client = s_client (user, via);
    assert_int_equal (sc_testproc_send (client, "/quit"), 0);
    assert_int_equal (sc_testproc_wait (client, sc_testproc_timeout (10000)), 0);
    sc_testproc_destroy (&client);
    /* once every connection through it has closed (the client exited) */
    (void) sc_testnet_proxy_wait_closed (proxy, 5000);
    sc_testnet_proxy_stop (proxy);
    size_t bytes = sc_testnet_proxy_session_bytes (proxy);
    sc_testnet_proxy_destroy (&proxy);
    return bytes;
}

/* A login's bytes on the wire do not depend on the length of the name
   that logs in (it is padded in the AUTH_CLIENT box and in WELCOME). */
static void
test_login_size_hides_the_name (void **state)
{
    (void) state;
    char endpoint[256];
    sc_testproc_t *broker = sc_testproc_broker_new (T.keys, T.dir, 0, endpoint, sizeof endpoint);
    assert_non_null (broker);
    size_t short_name = s_login_bytes (endpoint, "bob");
    size_t long_name = s_login_bytes (endpoint, "a-twenty-one-chars-id");
    if (short_name != long_name)
        fail_msg ("a login as bob took %zu bytes, as a-twenty-one-chars-id %zu",
                  short_name, long_name);
    assert_true (short_name > 300);         /* the certificate went through */
}

static void
test_broker_restart_mid_chat (void **state)
{
    (void) state;
    char endpoint[256];
    sc_testproc_t *broker = sc_testproc_broker_new (T.keys, T.dir, 300, endpoint, sizeof endpoint);
    assert_non_null (broker);
    sc_testproc_t *alice = s_client ("alice", endpoint);
    sc_testproc_t *bob = s_client ("bob", endpoint);
    s_open_chat (alice, bob);
    s_say (alice, bob, "alice", "before the crash");
    int t = sc_testproc_timeout (10000);
    assert_int_equal (sc_testproc_expect_acked (alice, "bob", 1, t), 0);

    assert_int_equal (sc_testproc_kill (broker), SC_TESTPROC_SIGNALED + SIGKILL);
    sc_testproc_destroy (&broker);
    /* a line typed just after the broker died goes nowhere: it is never
       confirmed, and alice is told so when the broker is found lost */
    assert_int_equal (sc_testproc_send (alice, "into the void"), 0);
    /* both notice: the broker is lost and the chat with it, which ended
       without the peer's close */
    assert_non_null (sc_testproc_expect_prefix (alice, "error broker-lost ", t));
    assert_non_null (sc_testproc_expect_prefix (alice, "error unconfirmed-close bob (", t));
    assert_int_equal (sc_testproc_expect (alice, "unacked bob 1", t), 0);
    assert_int_equal (sc_testproc_expect (alice, "closed bob", t), 0);
    assert_non_null (sc_testproc_expect_prefix (bob, "error broker-lost ", t));
    assert_non_null (sc_testproc_expect_prefix (bob, "error unconfirmed-close alice (", t));
    assert_int_equal (sc_testproc_expect (bob, "closed alice", t), 0);
    /* a message typed while disconnected is refused, not dropped */
    assert_int_equal (sc_testproc_send (bob, "are you there?"), 0);
    const char *line = sc_testproc_expect_prefix (bob, "error ", t);
    assert_non_null (line);
    assert_true (strncmp (line, "error offline ", 14) == 0
                 || strncmp (line, "error not-in-chat ", 18) == 0);

    /* the broker comes back on the same endpoint */
    char log[512];
    snprintf (log, sizeof log, "%s/broker-restarted.log", T.dir);
    const char *const extra[] = { "--heartbeat", "300", NULL };
    broker = sc_testproc_broker_start ("broker2", T.keys, endpoint, extra, log);
    assert_non_null (broker);
    assert_non_null (sc_testproc_expect_prefix (broker, "secbroker listening on ", t));
    /* the clients log in again by themselves, with fresh keys */
    int back = sc_testproc_timeout (20000);
    assert_int_equal (sc_testproc_skip_to (alice, "ready alice", back), 0);
    assert_int_equal (sc_testproc_skip_to (bob, "ready bob", back), 0);
    s_open_chat (alice, bob);
    s_say (bob, alice, "bob", "after the restart");
    assert_int_equal (sc_testproc_send (alice, "/quit"), 0);
    assert_int_equal (sc_testproc_send (bob, "/quit"), 0);
    assert_int_equal (sc_testproc_wait (alice, t), 0);
    assert_int_equal (sc_testproc_wait (bob, t), 0);
}

/* Print every DIR/PREFIX.PID file a sanitizer wrote (its log_path). */
static void
s_show_sanitizer_logs (const char *dir, const char *prefix)
{
    DIR *d = opendir (dir);
    if (!d)
        return;
    struct dirent *entry;
    while ((entry = readdir (d)))
        if (strncmp (entry->d_name, prefix, strlen (prefix)) == 0) {
            char *path = sc_testdir_path (dir, entry->d_name);
            char *text = path ? sc_testdir_slurp (path, NULL) : NULL;
            fprintf (stderr, "== %s\n%s\n", entry->d_name, text ? text : "(unreadable)");
            free (text);
            free (path);
        }
    closedir (d);
}

static void
test_broker_log_on_a_full_disk (void **state)
{
    (void) state;
    char endpoint[256];
    const char *const extra[] = { "--log-level", "debug", NULL };
    /* every log line the broker writes fails with ENOSPC; so would a
       sanitizer's report (SANITIZE=1): those go to a file instead, shown
       if the broker does not end cleanly */
    char *san_log = sc_testdir_path (T.dir, "broker-sanitizer");
    assert_non_null (san_log);
    char san_opts[600];
    snprintf (san_opts, sizeof san_opts, "log_path=%s:print_stacktrace=1", san_log);
    setenv ("ASAN_OPTIONS", san_opts, 1);
    setenv ("UBSAN_OPTIONS", san_opts, 1);
    sc_testproc_t *broker = sc_testproc_broker_start ("broker", T.keys, "tcp://127.0.0.1:!",
                                                      extra, "/dev/full");
    unsetenv ("ASAN_OPTIONS");
    unsetenv ("UBSAN_OPTIONS");
    assert_non_null (broker);
    const char *line = sc_testproc_expect_prefix (broker, "secbroker listening on ",
                                                  sc_testproc_timeout (10000));
    assert_non_null (line);
    snprintf (endpoint, sizeof endpoint, "%s", line + strlen ("secbroker listening on "));
    sc_testproc_t *alice = s_client ("alice", endpoint);
    sc_testproc_t *bob = s_client ("bob", endpoint);
    s_open_chat (alice, bob);
    s_say (alice, bob, "alice", "logs or no logs");
    /* stopped and continued mid-chat: its poll returns EINTR */
    assert_int_equal (sc_testproc_signal (broker, SIGSTOP), 0);
    sc_testproc_sleep_ms (200);
    assert_int_equal (sc_testproc_signal (broker, SIGCONT), 0);
    s_say (bob, alice, "bob", "still here");
    /* SIGHUP mid-chat reloads the users and drops nobody */
    assert_int_equal (sc_testproc_signal (broker, SIGHUP), 0);
    s_say (alice, bob, "alice", "after the reload");
    assert_int_equal (sc_testproc_send (alice, "/quit"), 0);
    assert_int_equal (sc_testproc_send (bob, "/quit"), 0);
    assert_int_equal (sc_testproc_wait (alice, sc_testproc_timeout (10000)), 0);
    assert_int_equal (sc_testproc_wait (bob, sc_testproc_timeout (10000)), 0);
    assert_int_equal (sc_testproc_signal (broker, SIGTERM), 0);
    int status = sc_testproc_wait (broker, sc_testproc_timeout (10000));
    if (status != 0)
        s_show_sanitizer_logs (T.dir, "broker-sanitizer");
    free (san_log);
    assert_int_equal (status, 0);
}

int
main (void)
{
    signal (SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown (test_wire_shows_no_text_and_no_names, s_teardown),
        cmocka_unit_test_teardown (test_login_size_hides_the_name, s_teardown),
        cmocka_unit_test_teardown (test_broker_restart_mid_chat, s_teardown),
        cmocka_unit_test_teardown (test_broker_log_on_a_full_disk, s_teardown),
    };
    return cmocka_run_group_tests (tests, s_group_setup, s_group_teardown);
}
