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

#include <arpa/inet.h>
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

/* A socket bound to 127.0.0.1 or ::1 (port *port, or any when 0), and
   listening if listen_too: its fd, its port in *port. Not listening, it
   refuses connections, and keeps other programs (the machine may run
   other tests) from listening there. */
static int
s_socket (bool v6, int *port, bool listen_too)
{
    int fd = socket (v6 ? AF_INET6 : AF_INET, SOCK_STREAM, 0);
    assert_true (fd >= 0);
    struct sockaddr_storage ss;
    memset (&ss, 0, sizeof ss);
    socklen_t len;
    if (v6) {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *) &ss;
        a->sin6_family = AF_INET6;
        a->sin6_addr = in6addr_loopback;
        a->sin6_port = htons ((uint16_t) *port);
        len = sizeof *a;
    }
    else {
        struct sockaddr_in *a = (struct sockaddr_in *) &ss;
        a->sin_family = AF_INET;
        a->sin_addr.s_addr = htonl (INADDR_LOOPBACK);
        a->sin_port = htons ((uint16_t) *port);
        len = sizeof *a;
    }
    assert_int_equal (bind (fd, (struct sockaddr *) &ss, len), 0);
    if (listen_too)
        assert_int_equal (listen (fd, 16), 0);
    assert_int_equal (getsockname (fd, (struct sockaddr *) &ss, &len), 0);
    *port = ntohs (v6 ? ((struct sockaddr_in6 *) &ss)->sin6_port
                      : ((struct sockaddr_in *) &ss)->sin_port);
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
    assert_int_equal (sc_testproc_send (alice, "/talk bob"), 0);
    assert_int_equal (sc_testproc_expect (bob, "request alice", T_LINE), 0);
    assert_int_equal (sc_testproc_send (bob, "/accept"), 0);
    assert_int_equal (sc_testproc_expect (alice, "accepted bob", T_LINE), 0);
    assert_non_null (sc_testproc_expect_prefix (alice, "chat bob ", T_LINE));
    assert_non_null (sc_testproc_expect_prefix (bob, "chat alice ", T_LINE));
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

/* ---- An IPv6 forwarder --------------------------------------------------- */

/* secbroker listens on IPv4 only; this carries [::1]:port to it. */
typedef struct {
    int listener;
    int upstream_port;
    int stop[2];
    pthread_t thread;
    int carried;                /* connections carried (read at the end) */
} forwarder_t;

static int
s_upstream (int port)
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
s_forward (void *arg)
{
    forwarder_t *self = arg;
    enum { MAX = 8 };
    int pairs[MAX][2];
    size_t n = 0;
    while (true) {
        struct pollfd fds[2 + 2 * MAX];
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
        if ((fds[1].revents & POLLIN) && n < MAX) {
            int client = accept (self->listener, NULL, NULL);
            int upstream = client >= 0 ? s_upstream (self->upstream_port) : -1;
            if (client >= 0 && upstream >= 0) {
                pairs[n][0] = client;
                pairs[n][1] = upstream;
                n++;
                self->carried++;
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
                char buf[65536];
                ssize_t got = read (pairs[i][side], buf, sizeof buf);
                ssize_t put = 0;
                while (got > 0 && put < got) {
                    ssize_t w = write (pairs[i][!side], buf + put, (size_t) (got - put));
                    if (w <= 0)
                        break;
                    put += w;
                }
                if (got <= 0 || put < got) {
                    close (pairs[i][0]);
                    close (pairs[i][1]);
                    pairs[i][0] = pairs[n - 1][0];
                    pairs[i][1] = pairs[n - 1][1];
                    n--;
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

/* Its port on ::1. */
static int
s_forwarder_start (forwarder_t *self, int upstream_port)
{
    memset (self, 0, sizeof *self);
    int port = 0;
    self->listener = s_listener (true, &port);
    self->upstream_port = upstream_port;
    assert_int_equal (pipe (self->stop), 0);
    assert_int_equal (pthread_create (&self->thread, NULL, s_forward, self), 0);
    return port;
}

static int
s_forwarder_stop (forwarder_t *self)
{
    assert_int_equal (write (self->stop[1], "x", 1), 1);
    pthread_join (self->thread, NULL);
    close (self->stop[0]);
    close (self->stop[1]);
    close (self->listener);
    return self->carried;
}

static int
s_port (const char *endpoint)
{
    const char *colon = strrchr (endpoint, ':');
    assert_non_null (colon);
    return atoi (colon + 1);
}

/* A socket bound to a port on 127.0.0.1 and not listening: connections
   to it are refused, and no other program (the machine may run other
   tests) can listen there meanwhile. Retried for a while: a port just
   freed may be busy for a moment. */
static int
s_hold_port (int port)
{
    int fd = socket (AF_INET, SOCK_STREAM, 0);
    assert_true (fd >= 0);
    int on = 1;
    assert_int_equal (setsockopt (fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on), 0);
    struct sockaddr_in addr = { .sin_family = AF_INET, .sin_port = htons ((uint16_t) port) };
    addr.sin_addr.s_addr = htonl (INADDR_LOOPBACK);
    for (int i = 0; i < 100; i++) {
        if (bind (fd, (struct sockaddr *) &addr, sizeof addr) == 0)
            return fd;
        assert_int_equal (errno, EADDRINUSE);
        sc_testproc_sleep_ms (20);
    }
    fail_msg ("cannot hold port %d", port);
    return -1;
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
    int held = s_hold_port (s_port (first));
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
    forwarder_t fwd;
    int port = s_forwarder_start (&fwd, s_port (up));
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
    assert_true (s_forwarder_stop (&fwd) >= 2);
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
