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
#define _GNU_SOURCE         /* memmem */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "sc_testproc.h"

/* ---- A recording TCP proxy -------------------------------------------- */

#define S_MAX_CONN 16

typedef struct {
    int listener;
    int upstream_port;
    int stop[2];                /* a byte here stops the thread           */
    pthread_t thread;
    pthread_mutex_t lock;
    uint8_t *record;            /* every byte, both directions            */
    size_t record_len, record_cap;
    size_t session_bytes;       /* of the connections the client spoke on */
    size_t open;                /* connections being carried              */
} proxy_t;

static void
s_record (proxy_t *self, const uint8_t *data, size_t len)
{
    pthread_mutex_lock (&self->lock);
    if (self->record_len + len > self->record_cap) {
        size_t cap = (self->record_len + len) * 2;
        uint8_t *grown = realloc (self->record, cap);
        if (grown) {
            self->record = grown;
            self->record_cap = cap;
        }
    }
    if (self->record_len + len <= self->record_cap) {
        memcpy (self->record + self->record_len, data, len);
        self->record_len += len;
    }
    pthread_mutex_unlock (&self->lock);
}

static int
s_connect_upstream (int port)
{
    int fd = socket (AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in addr = { .sin_family = AF_INET, .sin_port = htons ((uint16_t) port) };
    addr.sin_addr.s_addr = htonl (INADDR_LOOPBACK);
    if (fd >= 0 && connect (fd, (struct sockaddr *) &addr, sizeof addr) == 0)
        return fd;
    if (fd >= 0)
        close (fd);
    return -1;
}

static void *
s_proxy_run (void *arg)
{
    proxy_t *self = arg;
    int pairs[S_MAX_CONN][2];
    size_t bytes[S_MAX_CONN];   /* carried, both ways                     */
    bool spoke[S_MAX_CONN];     /* the client sent something              */
    size_t n = 0;
    for (;;) {
        struct pollfd fds[2 + 2 * S_MAX_CONN];
        fds[0] = (struct pollfd) { self->stop[0], POLLIN, 0 };
        fds[1] = (struct pollfd) { self->listener, POLLIN, 0 };
        for (size_t i = 0; i < n; i++) {
            fds[2 + 2 * i] = (struct pollfd) { pairs[i][0], POLLIN, 0 };
            fds[3 + 2 * i] = (struct pollfd) { pairs[i][1], POLLIN, 0 };
        }
        if (poll (fds, 2 + 2 * n, 1000) < 0 && errno != EINTR)
            break;
        if (fds[0].revents)
            break;
        if ((fds[1].revents & POLLIN) && n < S_MAX_CONN) {
            int client = accept (self->listener, NULL, NULL);
            int upstream = client >= 0 ? s_connect_upstream (self->upstream_port) : -1;
            if (client >= 0 && upstream >= 0) {
                pairs[n][0] = client;
                pairs[n][1] = upstream;
                bytes[n] = 0;
                spoke[n] = false;
                n++;
                pthread_mutex_lock (&self->lock);
                self->open = n;
                pthread_mutex_unlock (&self->lock);
            }
            else {
                if (client >= 0)
                    close (client);
                if (upstream >= 0)
                    close (upstream);
            }
        }
        for (size_t i = 0; i < n; i++)
            for (int side = 0; side < 2; side++) {
                if (!(fds[2 + 2 * i + (size_t) side].revents & (POLLIN | POLLHUP | POLLERR)))
                    continue;
                uint8_t buf[65536];
                ssize_t got = read (pairs[i][side], buf, sizeof buf);
                if (got > 0) {
                    s_record (self, buf, (size_t) got);
                    bytes[i] += (size_t) got;
                    spoke[i] = spoke[i] || side == 0;
                    ssize_t off = 0;
                    while (off < got) {
                        ssize_t put = write (pairs[i][!side], buf + off, (size_t) (got - off));
                        if (put <= 0)
                            break;
                        off += put;
                    }
                }
                else {
                    /* one side closed: close the pair and forget it;
                       secchat's reachability probe, which connects and
                       closes without a word, is no session */
                    close (pairs[i][0]);
                    close (pairs[i][1]);
                    pthread_mutex_lock (&self->lock);
                    if (spoke[i])
                        self->session_bytes += bytes[i];
                    pthread_mutex_unlock (&self->lock);
                    pairs[i][0] = pairs[n - 1][0];
                    bytes[i] = bytes[n - 1];
                    spoke[i] = spoke[n - 1];
                    pairs[i][1] = pairs[n - 1][1];
                    n--;
                    pthread_mutex_lock (&self->lock);
                    self->open = n;
                    pthread_mutex_unlock (&self->lock);
                    goto next_round;
                }
            }
next_round:;
    }
    for (size_t i = 0; i < n; i++) {
        close (pairs[i][0]);
        close (pairs[i][1]);
    }
    return NULL;
}

/* A proxy on a free loopback port to upstream_port: its port, or -1. */
static int
s_proxy_start (proxy_t *self, int upstream_port)
{
    memset (self, 0, sizeof *self);
    self->upstream_port = upstream_port;
    pthread_mutex_init (&self->lock, NULL);
    self->listener = socket (AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in addr = { .sin_family = AF_INET, .sin_port = 0 };
    addr.sin_addr.s_addr = htonl (INADDR_LOOPBACK);
    socklen_t len = sizeof addr;
    if (self->listener < 0
        || bind (self->listener, (struct sockaddr *) &addr, sizeof addr)
        || listen (self->listener, 16)
        || getsockname (self->listener, (struct sockaddr *) &addr, &len)
        || pipe (self->stop)
        || pthread_create (&self->thread, NULL, s_proxy_run, self))
        return -1;
    return ntohs (addr.sin_port);
}

static void
s_proxy_free (proxy_t *self)
{
    close (self->stop[0]);
    close (self->stop[1]);
    close (self->listener);
    free (self->record);
    pthread_mutex_destroy (&self->lock);
}

static void
s_proxy_stop (proxy_t *self)
{
    if (write (self->stop[1], "x", 1) == 1)
        pthread_join (self->thread, NULL);
    s_proxy_free (self);
}

/* Once every connection through it has closed (its client exited), the
   thread stops; what it recorded stays readable until s_proxy_free. */
static void
s_proxy_stop_after_close (proxy_t *self)
{
    bool done = false;
    for (int i = 0; i < 500 && !done; i++) {
        pthread_mutex_lock (&self->lock);
        done = self->open == 0;
        pthread_mutex_unlock (&self->lock);
        if (!done)
            usleep (10000);
    }
    if (write (self->stop[1], "x", 1) == 1)
        pthread_join (self->thread, NULL);
}

static bool
s_proxy_saw (proxy_t *self, const char *text)
{
    pthread_mutex_lock (&self->lock);
    bool seen = memmem (self->record, self->record_len, text, strlen (text)) != NULL;
    pthread_mutex_unlock (&self->lock);
    return seen;
}

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
    int t = sc_testproc_timeout (10000);
    assert_int_equal (sc_testproc_send (alice, "/talk bob"), 0);
    assert_int_equal (sc_testproc_expect (bob, "request alice", t), 0);
    assert_int_equal (sc_testproc_send (bob, "/accept"), 0);
    assert_int_equal (sc_testproc_expect (alice, "accepted bob", t), 0);
    assert_non_null (sc_testproc_expect_prefix (alice, "chat bob ", t));
    assert_non_null (sc_testproc_expect_prefix (bob, "chat alice ", t));
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
    proxy_t proxy;
    int port = s_proxy_start (&proxy, s_port (endpoint));
    assert_true (port > 0);
    snprintf (via, sizeof via, "tcp://127.0.0.1:%d", port);

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
    assert_true (s_proxy_saw (&proxy, "secbroker"));
    for (size_t i = 0; i < sizeof secrets / sizeof secrets[0]; i++)
        if (s_proxy_saw (&proxy, secrets[i]))
            fail_msg ("message text on the wire: %s", secrets[i]);
    /* no part of the messages either, nor the users' names (bob as the
       msgpack string a name would travel as: three bytes alone would turn
       up in random ciphertext now and then) */
    const char *fragments[] = { "eagle", "midnight", "Kräutertee", "oak tree", "alice", "\xa3" "bob" };
    for (size_t i = 0; i < sizeof fragments / sizeof fragments[0]; i++)
        if (s_proxy_saw (&proxy, fragments[i]))
            fail_msg ("'%s' appears on the wire", fragments[i]);
    s_proxy_stop (&proxy);

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
    proxy_t proxy;
    int port = s_proxy_start (&proxy, s_port (endpoint));
    assert_true (port > 0);
    char via[256];
    snprintf (via, sizeof via, "tcp://127.0.0.1:%d", port);
    sc_testproc_t *client = s_client (user, via);
    assert_int_equal (sc_testproc_send (client, "/quit"), 0);
    assert_int_equal (sc_testproc_wait (client, sc_testproc_timeout (10000)), 0);
    sc_testproc_destroy (&client);
    s_proxy_stop_after_close (&proxy);
    size_t bytes = proxy.session_bytes;
    s_proxy_free (&proxy);
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
    const char *bin = sc_testproc_bin_dir ();
    char broker_bin[512], cert[512], key[512], users[512], log[512];
    snprintf (broker_bin, sizeof broker_bin, "%ssecbroker", bin);
    snprintf (cert, sizeof cert, "%s/broker.crt", T.keys);
    snprintf (key, sizeof key, "%s/broker.key", T.keys);
    snprintf (users, sizeof users, "%s/users", T.keys);
    snprintf (log, sizeof log, "%s/broker-restarted.log", T.dir);
    const char *const argv[] = { broker_bin, "--endpoint", endpoint, "--cert", cert,
                                 "--key", key, "--users", users, "--heartbeat", "300", NULL };
    broker = sc_testproc_new ("broker2", argv, log);
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
    const char *bin = sc_testproc_bin_dir ();
    char broker_bin[512], cert[512], key[512], users[512], endpoint[256];
    snprintf (broker_bin, sizeof broker_bin, "%ssecbroker", bin);
    snprintf (cert, sizeof cert, "%s/broker.crt", T.keys);
    snprintf (key, sizeof key, "%s/broker.key", T.keys);
    snprintf (users, sizeof users, "%s/users", T.keys);
    const char *const argv[] = { broker_bin, "--endpoint", "tcp://127.0.0.1:*", "--cert", cert,
                                 "--key", key, "--users", users, "--log-level", "debug", NULL };
    /* every log line the broker writes fails with ENOSPC; so would a
       sanitizer's report (SANITIZE=1): those go to a file instead, shown
       if the broker does not end cleanly */
    char *san_log = sc_testdir_path (T.dir, "broker-sanitizer");
    assert_non_null (san_log);
    char san_opts[600];
    snprintf (san_opts, sizeof san_opts, "log_path=%s:print_stacktrace=1", san_log);
    setenv ("ASAN_OPTIONS", san_opts, 1);
    setenv ("UBSAN_OPTIONS", san_opts, 1);
    sc_testproc_t *broker = sc_testproc_new ("broker", argv, "/dev/full");
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
