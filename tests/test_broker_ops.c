/*  The broker as an operator runs it, with the real binary: its log
    lines (each login, failed login and logout names the peer's address;
    ISO 8601 times, or syslog priorities when its standard error is the
    journal) and its Prometheus endpoint (--metrics), scraped with a
    plain HTTP GET over a socket and checked against what the test did.
    The clients are raw peers (sc_testpeer), so that the test knows
    every envelope relayed, and its bytes.

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at https://mozilla.org/MPL/2.0/.
*/
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <czmq.h>
#include <regex.h>
#include <signal.h>
#include <string.h>
#include <sys/stat.h>

#include "sc_testnet.h"
#include "sc_testpeer.h"
#include "sc_testproc.h"
#include "sc_wire.h"

static struct {
    char *dir;                  /* work dir: keys/, one dir per broker    */
    char *keys;
    char *work;                 /* this test's: broker.log                */
    sc_testproc_t *broker;
    char endpoint[256];
} T;

static int
s_group_setup (void **state)
{
    (void) state;
    zsys_init ();
    zsys_set_logstream (stderr);
    T.dir = sc_testdir_new ("broker-ops");
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
s_setup (void **state)
{
    (void) state;
    static int n;
    char name[32];
    snprintf (name, sizeof name, "run%d", ++n);
    T.work = sc_testdir_path (T.dir, name);
    return mkdir (T.work, 0700);
}

static int
s_teardown (void **state)
{
    (void) state;
    sc_testproc_destroy_all ();
    T.broker = NULL;
    unsetenv ("JOURNAL_STREAM");
    free (T.work);
    return 0;
}

static int
s_timeout (int ms)
{
    return sc_testproc_timeout (ms);
}

static char *
s_log (void)
{
    char *path = sc_testdir_path (T.work, "broker.log");
    char *log = sc_testdir_slurp (path, NULL);
    free (path);
    assert_non_null (log);
    return log;
}

/* Waits until the broker's log holds text; the log then. */
static char *
s_log_wait (const char *text)
{
    int64_t deadline = sc_testproc_now_ms () + s_timeout (10000);
    for (;;) {
        char *log = s_log ();
        if (strstr (log, text))
            return log;
        if (sc_testproc_now_ms () > deadline) {
            fprintf (stderr, "broker log has no \"%s\":\n%s<end>\n", text, log);
            free (log);
            fail ();
        }
        free (log);
        sc_testproc_sleep_ms (20);
    }
}

static sc_testpeer_t *
s_login (const char *user, const char *claimed, int expect)
{
    sc_testpeer_t *peer = sc_testpeer_new (T.endpoint);
    assert_non_null (peer);
    assert_int_equal (sc_testpeer_login (peer, T.keys, user, claimed), expect);
    return peer;
}

static void
s_send_named (sc_testpeer_t *peer, uint8_t opcode, const char *name)
{
    assert_int_equal (sc_testpeer_send_named (peer, opcode, name), 0);
}

static void
s_expect (sc_testpeer_t *peer, uint8_t opcode)
{
    assert_int_equal (sc_testpeer_expect (peer, opcode, s_timeout (5000)), 0);
}

/* ---- Scraping ------------------------------------------------------------------ */

/* The whole answer to one request, or NULL when nothing answers. */
static char *
s_http (int port, const char *request)
{
    return sc_testproc_http (port, request);
}

/* GET /metrics: the body of a 200 answer with Prometheus' type. */
static char *
s_scrape (int port)
{
    char *text = sc_testproc_metrics (port);
    if (!text)
        fail_msg ("no metrics from port %d", port);
    return text;
}

/* The value of the sample named exactly name (with its labels). */
static unsigned long long
s_value (const char *text, const char *name)
{
    unsigned long long value = 0;
    if (sc_testproc_metric (text, name, &value))
        fail_msg ("no sample %s in:\n%s", name, text);
    return value;
}

/* Scrapes until name reads want (the broker hands its figures over a
   few times a second); the text then. */
static char *
s_scrape_until (int port, const char *name, unsigned long long want)
{
    int64_t deadline = sc_testproc_now_ms () + s_timeout (5000);
    for (;;) {
        char *text = s_scrape (port);
        unsigned long long value = s_value (text, name);
        if (value == want)
            return text;
        if (sc_testproc_now_ms () > deadline)
            fail_msg ("%s is %llu, not %llu:\n%s", name, value, want, text);
        free (text);
        sc_testproc_sleep_ms (20);
    }
}

/* The broker's metrics port, from its log line. */
static int
s_metrics_port (void)
{
    const char *prefix = "metrics on http://127.0.0.1:";
    char *log = s_log_wait (prefix);
    int port = atoi (strstr (log, prefix) + strlen (prefix));
    free (log);
    assert_true (port > 0 && port < 65536);
    return port;
}

/* Every line of log matches the ISO 8601 form, and none is the
   journal's. */
static void
s_all_iso (const char *log)
{
    regex_t re;
    assert_int_equal (regcomp (&re, "^[0-9]{4}-[01][0-9]-[0-3][0-9]T[0-2][0-9]:[0-5][0-9]:"
                               "[0-6][0-9]\\.[0-9]{3}[+-][0-9]{2}:[0-9]{2} secbroker [EWID]: ",
                               REG_EXTENDED | REG_NOSUB), 0);
    const char *line = log;
    while (*line) {
        const char *end = strchr (line, '\n');
        assert_non_null (end);
        char *one = strndup (line, (size_t) (end - line));
        if (regexec (&re, one, 0, NULL, 0) != 0)
            fail_msg ("not an ISO 8601 log line: \"%s\"", one);
        free (one);
        line = end + 1;
    }
    regfree (&re);
}

/* ---- Tests --------------------------------------------------------------------- */

/* Two logins, a failed one, a chat, five messages: the metrics say so,
   and the log names the peer address of each login and logout. */
static void
test_metrics_and_log (void **state)
{
    (void) state;
    const char *const extra[] = { "--metrics", "127.0.0.1:0", "--log-level", "debug", NULL };
    T.broker = sc_testproc_broker_new_with (T.keys, T.work, extra, T.endpoint,
                                            sizeof T.endpoint);
    assert_non_null (T.broker);
    int port = s_metrics_port ();
    char *text = s_scrape (port);
    assert_int_equal (s_value (text, "secbroker_logins_total"), 0);
    /* a broker on its own has no cluster figures */
    assert_null (strstr (text, "secbroker_cluster_"));
    assert_non_null (strstr (text, "# TYPE secbroker_logins_total counter\n"));
    assert_non_null (strstr (text, "# TYPE secbroker_sessions gauge\n"));
    free (text);

    sc_testpeer_t *alice = s_login ("alice", "alice", SC_OP_WELCOME);
    sc_testpeer_t *bob = s_login ("bob", "bob", SC_OP_WELCOME);
    sc_testpeer_t *mallory = s_login ("alice", "bob", SC_ERR_AUTH);
    sc_testpeer_destroy (&mallory);
    s_send_named (alice, SC_OP_RTT, "bob");
    s_expect (bob, SC_OP_RTT);
    s_send_named (bob, SC_OP_ACCEPT, "alice");
    s_expect (alice, SC_OP_CHAT);
    s_expect (bob, SC_OP_CHAT);
    unsigned long long bytes = 0;
    for (uint64_t i = 1; i <= 5; i++) {
        uint8_t box[64] = { 0 };
        sc_msg_t msg;
        sc_msg_init (&msg, SC_OP_MESSAGE);
        msg.counter = i;
        assert_int_equal (sc_msg_set_data (&msg, box, 17 + (size_t) i * 7), 0);
        uint8_t *frame;
        size_t len;
        assert_int_equal (sc_testpeer_seal (alice, &msg, &frame, &len), 0);
        sc_msg_reset (&msg);
        assert_int_equal (sc_testpeer_send_raw (alice, frame, len), 0);
        free (frame);
        bytes += len;
        s_expect (bob, SC_OP_MESSAGE);
    }

    text = s_scrape_until (port, "secbroker_relayed_messages_total", 5);
    assert_int_equal (s_value (text, "secbroker_relayed_bytes_total"), bytes);
    assert_int_equal (s_value (text, "secbroker_logins_total"), 2);
    assert_int_equal (s_value (text, "secbroker_login_failures_total{reason=\"auth\"}"), 1);
    assert_int_equal (s_value (text, "secbroker_login_failures_total{reason=\"timeout\"}"), 0);
    assert_int_equal (s_value (text, "secbroker_login_failures_total{reason=\"rate\"}"), 0);
    assert_int_equal (s_value (text, "secbroker_sessions"), 2);
    assert_int_equal (s_value (text, "secbroker_chats"), 1);
    assert_int_equal (s_value (text, "secbroker_handshakes"), 0);
    assert_int_equal (s_value (text, "secbroker_undelivered_total"), 0);
    assert_int_equal (s_value (text, "secbroker_cookie_replies_total"), 0);
    free (text);

    /* alice quits: the chat and her session are gone from the figures */
    s_send_named (alice, SC_OP_QUIT, NULL);
    s_expect (bob, SC_OP_NOTIFY);
    text = s_scrape_until (port, "secbroker_sessions", 1);
    assert_int_equal (s_value (text, "secbroker_chats"), 0);
    assert_int_equal (s_value (text, "secbroker_logins_total"), 2);
    free (text);

    /* anything but GET (or HEAD) /metrics is refused */
    char *answer = s_http (port, "GET / HTTP/1.0\r\n\r\n");
    assert_non_null (answer);
    assert_int_equal (strncmp (answer, "HTTP/1.1 404 ", 13), 0);
    free (answer);
    answer = s_http (port, "DELETE /metrics HTTP/1.0\r\n\r\n");
    assert_non_null (answer);
    assert_int_equal (strncmp (answer, "HTTP/1.1 405 ", 13), 0);
    free (answer);
    answer = s_http (port, "this is not http\r\n\r\n");
    assert_non_null (answer);
    assert_int_equal (strncmp (answer, "HTTP/1.1 400 ", 13), 0);
    free (answer);

    sc_testpeer_destroy (&alice);
    sc_testpeer_destroy (&bob);
    assert_int_equal (sc_testproc_signal (T.broker, SIGTERM), 0);
    assert_int_equal (sc_testproc_wait (T.broker, s_timeout (10000)), 0);

    char *log = s_log ();
    assert_non_null (strstr (log, " I: login alice from 127.0.0.1\n"));
    assert_non_null (strstr (log, " I: login bob from 127.0.0.1\n"));
    assert_non_null (strstr (log, " D: login failed for bob from 127.0.0.1: "
                                  "authentication failed\n"));
    assert_non_null (strstr (log, " I: logout alice from 127.0.0.1 (quit)\n"));
    s_all_iso (log);
    free (log);
}

/* Standard error is the journal (JOURNAL_STREAM names the log file, as
   systemd names its socket): the lines carry syslog priorities and no
   time of their own. */
static void
test_journal_log (void **state)
{
    (void) state;
    char *path = sc_testdir_path (T.work, "broker.log");
    FILE *f = fopen (path, "w");
    assert_non_null (f);
    struct stat st;
    assert_int_equal (fstat (fileno (f), &st), 0);
    fclose (f);
    free (path);
    char value[64];
    snprintf (value, sizeof value, "%llu:%llu", (unsigned long long) st.st_dev,
              (unsigned long long) st.st_ino);
    setenv ("JOURNAL_STREAM", value, 1);
    const char *const extra[] = { "--log-level", "debug", NULL };
    T.broker = sc_testproc_broker_new_with (T.keys, T.work, extra, T.endpoint,
                                            sizeof T.endpoint);
    unsetenv ("JOURNAL_STREAM");
    assert_non_null (T.broker);
    sc_testpeer_t *alice = s_login ("alice", "alice", SC_OP_WELCOME);
    sc_testpeer_t *mallory = s_login ("bob", "alice", SC_ERR_AUTH);
    sc_testpeer_destroy (&mallory);
    s_send_named (alice, SC_OP_QUIT, NULL);
    char *log = s_log_wait ("logout alice");
    free (log);
    sc_testpeer_destroy (&alice);
    assert_int_equal (sc_testproc_signal (T.broker, SIGTERM), 0);
    assert_int_equal (sc_testproc_wait (T.broker, s_timeout (10000)), 0);
    log = s_log ();
    assert_int_equal (strncmp (log, "<6>listening on tcp://127.0.0.1:", 32), 0);
    assert_non_null (strstr (log, "\n<6>login alice from 127.0.0.1\n"));
    assert_non_null (strstr (log, "\n<7>login failed for alice from 127.0.0.1: "
                                  "authentication failed\n"));
    assert_non_null (strstr (log, "\n<6>logout alice from 127.0.0.1 (quit)\n"));
    assert_non_null (strstr (log, "\n<6>stopping: 0 sessions\n"));
    /* every line has its priority, none a time */
    for (const char *line = log; *line; line = strchr (line, '\n') + 1) {
        if (!(line[0] == '<' && line[1] >= '3' && line[1] <= '7' && line[2] == '>'))
            fail_msg ("a line without a priority in:\n%s", log);
        assert_non_null (strchr (line, '\n'));
    }
    free (log);
}

/* A --metrics that is not ADDRESS:PORT, or a port already taken: the
   broker says so and does not start. */
static void
test_metrics_bad_address (void **state)
{
    (void) state;
    static const char *bad[] = { "9464", "localhost:9464", "127.0.0.1:", "127.0.0.1:65536",
                                 "127.0.0.1:-1", "[::1:9464", "::1:9464", "[127.0.0.1]:1" };
    char *log_path = sc_testdir_path (T.work, "bad.log");
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        const char *const extra[] = { "--metrics", bad[i], NULL };
        sc_testproc_t *p = sc_testproc_broker_start ("broker", T.keys, "tcp://127.0.0.1:!",
                                                     extra, log_path);
        assert_non_null (p);
        assert_int_equal (sc_testproc_wait (p, s_timeout (10000)), 1);
        sc_testproc_destroy (&p);
        char *log = sc_testdir_slurp (log_path, NULL);
        assert_non_null (log);
        char want[128];
        snprintf (want, sizeof want, "secbroker: --metrics takes ADDRESS:PORT, e.g. "
                  "127.0.0.1:9464 or [::1]:9464, not '%s'\n", bad[i]);
        if (!strstr (log, want))
            fail_msg ("no \"%s\" in:\n%s", want, log);
        free (log);
    }
    /* a port in use */
    int port = 0;
    int fd = sc_testnet_socket (false, &port, true);
    assert_true (fd >= 0);
    char taken[64];
    snprintf (taken, sizeof taken, "127.0.0.1:%d", port);
    const char *const extra[] = { "--metrics", taken, NULL };
    sc_testproc_t *p = sc_testproc_broker_start ("broker", T.keys, "tcp://127.0.0.1:!", extra,
                                                 log_path);
    assert_non_null (p);
    assert_int_equal (sc_testproc_wait (p, s_timeout (10000)), 1);
    sc_testproc_destroy (&p);
    close (fd);
    char *log = sc_testdir_slurp (log_path, NULL);
    char want[128];
    snprintf (want, sizeof want, "secbroker: cannot serve metrics on %s", taken);
    if (!strstr (log, want))
        fail_msg ("no \"%s\" in:\n%s", want, log);
    free (log);
    free (log_path);
}

/* --probe, the container's health check: 0 while the broker answers,
   without a login (nothing counted, nothing kept); 1 once it is gone. */
static void
test_probe (void **state)
{
    (void) state;
    const char *const extra[] = { "--metrics", "127.0.0.1:0", NULL };
    T.broker = sc_testproc_broker_new_with (T.keys, T.work, extra, T.endpoint,
                                            sizeof T.endpoint);
    assert_non_null (T.broker);
    int port = s_metrics_port ();
    char bin[512];
    snprintf (bin, sizeof bin, "%ssecbroker", sc_testproc_bin_dir ());
    char *log_path = sc_testdir_path (T.work, "probe.log");
    const char *const argv[] = { bin, "--probe", T.endpoint, NULL };
    for (int i = 0; i < 3; i++) {
        sc_testproc_t *p = sc_testproc_new ("probe", argv, log_path);
        assert_non_null (p);
        char want[300];
        snprintf (want, sizeof want, "secbroker: the broker at %s answers", T.endpoint);
        assert_int_equal (sc_testproc_expect (p, want, s_timeout (5000)), 0);
        assert_int_equal (sc_testproc_wait (p, s_timeout (5000)), 0);
        sc_testproc_destroy (&p);
    }
    /* no login was started, none failed */
    sc_testproc_sleep_ms (300);
    char *text = s_scrape (port);
    assert_int_equal (s_value (text, "secbroker_handshakes"), 0);
    for (const char *r = "auth\0timeout\0protocol\0suite\0rate\0internal\0"; *r;
         r += strlen (r) + 1) {
        char name[80];
        snprintf (name, sizeof name, "secbroker_login_failures_total{reason=\"%s\"}", r);
        assert_int_equal (s_value (text, name), 0);
    }
    free (text);

    assert_int_equal (sc_testproc_signal (T.broker, SIGTERM), 0);
    assert_int_equal (sc_testproc_wait (T.broker, s_timeout (10000)), 0);
    /* no broker there: a port this test holds, bound but not listening
       (the one the broker had may be another test's broker by now) */
    int nobody_port = 0;
    int fd = sc_testnet_socket (false, &nobody_port, false);
    assert_true (fd >= 0);
    char nobody[64];
    snprintf (nobody, sizeof nobody, "tcp://127.0.0.1:%d", nobody_port);
    const char *const argv_nobody[] = { bin, "--probe", nobody, NULL };
    sc_testproc_t *p = sc_testproc_new ("probe", argv_nobody, log_path);
    assert_non_null (p);
    assert_int_equal (sc_testproc_wait (p, s_timeout (10000)), 1);
    sc_testproc_destroy (&p);
    close (fd);
    char *log = sc_testdir_slurp (log_path, NULL);
    char want[300];
    snprintf (want, sizeof want, "secbroker: no answer from %s within 3 s\n", nobody);
    if (!log || !strstr (log, want))
        fail_msg ("no \"%s\" in:\n%s", want, log ? log : "");
    free (log);
    free (log_path);
}

int
main (void)
{
    signal (SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown (test_metrics_and_log, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_journal_log, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_metrics_bad_address, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_probe, s_setup, s_teardown),
    };
    return cmocka_run_group_tests (tests, s_group_setup, s_group_teardown);
}
