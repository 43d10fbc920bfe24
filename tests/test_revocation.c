/*  Revocation and the broker's own identity, with the real binaries.

    A user whose key file is removed while logged in is logged out at the
    reload: their client says `revoked` and exits 1, their chat peer is
    told, the others no longer list them, and they cannot log in again.
    A reload that finds a bad certificate or key keeps the whole old
    configuration and logs why; a good one is used by the next logins.
    The broker refuses to start with a key that is not its certificate's
    or an expired certificate, warns when the certificate ends soon, and
    `secbroker --check` validates a configuration without binding.

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at https://mozilla.org/MPL/2.0/.
*/
#define _GNU_SOURCE         /* asprintf */
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
#include <sys/wait.h>
#include <unistd.h>

#include "sc_testproc.h"

#define T_LINE  sc_testproc_timeout (10000)
#define T_EXIT  sc_testproc_timeout (10000)

static struct {
    char *dir;                  /* the test program's directory          */
    char *work;                 /* the current test's: keys, logs         */
    char *keys;
    int n;
} T;

static int
s_group_setup (void **state)
{
    (void) state;
    T.dir = sc_testdir_new ("revocation");
    return T.dir ? 0 : -1;
}

static int
s_group_teardown (void **state)
{
    (void) state;
    sc_testdir_remove (T.dir);
    free (T.dir);
    return 0;
}

/* Each test: its own directory and key set (tests change the keys). */
static int
s_setup (void **state)
{
    (void) state;
    char name[32];
    snprintf (name, sizeof name, "t%d", ++T.n);
    T.work = sc_testdir_path (T.dir, name);
    if (mkdir (T.work, 0700))
        return -1;
    T.keys = sc_testdir_path (T.work, "keys");
    const char *const users[] = { "alice", "bob", "carol", NULL };
    return sc_testproc_make_keys (T.keys, users);
}

static int
s_teardown (void **state)
{
    (void) state;
    sc_testproc_destroy_all ();
    free (T.keys);
    free (T.work);
    return 0;
}

/* T.keys/relative, malloc'd. */
static char *
s_key_path (const char *relative)
{
    return sc_testdir_path (T.keys, relative);
}

/* A shell command in the key directory; its output in openssl.log. */
__attribute__ ((format (printf, 1, 2)))
static void
s_sh (const char *format, ...)
{
    char line[1024], command[2048];
    va_list args;
    va_start (args, format);
    int n = vsnprintf (line, sizeof line, format, args);
    va_end (args);
    assert_true (n > 0 && (size_t) n < sizeof line);
    snprintf (command, sizeof command, "cd '%s' && ( %s ) >>openssl.log 2>&1", T.keys, line);
    int status = system (command);
    if (status == -1 || !WIFEXITED (status) || WEXITSTATUS (status) != 0)
        fail_msg ("command failed: %s", line);
}

/* A certificate for the broker's key, signed by the key set's CA, valid
   for days (-1: it ended yesterday), into file. */
static void
s_make_cert (const char *file, int days)
{
    s_sh ("openssl req -new -key broker.key -subj /CN=secbroker "
          "-addext subjectAltName=DNS:secbroker -out broker.csr && "
          "openssl x509 -req -in broker.csr -CA ca.pem -CAkey ca.key -set_serial %d "
          "-days %d -copy_extensions copy -out %s", 100 + days, days, file);
}

/* Waits until the file contains text. 0 or -1. */
static int
s_wait_file (const char *path, const char *text, int timeout_ms)
{
    int64_t deadline = sc_testproc_now_ms () + timeout_ms;
    for (;;) {
        char *log = sc_testdir_slurp (path, NULL);
        bool found = log && strstr (log, text);
        free (log);
        if (found)
            return 0;
        if (sc_testproc_now_ms () >= deadline) {
            char *all = sc_testdir_slurp (path, NULL);
            fprintf (stderr, "'%s' not found in %s:\n%s\n", text, path, all ? all : "(none)");
            free (all);
            return -1;
        }
        sc_testproc_sleep_ms (50);
    }
}

static int
s_wait_log (const char *text)
{
    char *path = sc_testdir_path (T.work, "broker.log");
    int rc = s_wait_file (path, text, T_LINE);
    free (path);
    return rc;
}

/* How many times text is in the broker's log. */
static int
s_log_count (const char *text)
{
    char *path = sc_testdir_path (T.work, "broker.log");
    char *log = sc_testdir_slurp (path, NULL);
    int n = 0;
    for (const char *p = log ? strstr (log, text) : NULL; p; p = strstr (p + 1, text))
        n++;
    free (log);
    free (path);
    return n;
}

static sc_testproc_t *
s_broker (char *endpoint, size_t size)
{
    sc_testproc_t *broker = sc_testproc_broker_new (T.keys, T.work, 0, endpoint, size);
    assert_non_null (broker);
    return broker;
}

static sc_testproc_t *
s_client (const char *user, const char *endpoint, const char *name)
{
    sc_testclient_t opts = { .keys = T.keys, .workdir = T.work, .endpoint = endpoint,
                             .user = user, .name = name };
    sc_testproc_t *client = sc_testproc_client_new (&opts);
    assert_non_null (client);
    return client;
}

static sc_testproc_t *
s_login (const char *user, const char *endpoint)
{
    sc_testproc_t *client = s_client (user, endpoint, NULL);
    char ready[64];
    snprintf (ready, sizeof ready, "ready %s", user);
    assert_int_equal (sc_testproc_expect (client, ready, T_LINE), 0);
    return client;
}

/* A login that must fail: the client ends with status 1. */
static void
s_login_fails (const char *user, const char *endpoint, const char *name)
{
    sc_testproc_t *client = s_client (user, endpoint, name);
    assert_int_equal (sc_testproc_expect_eof (client, T_LINE), 0);
    assert_int_equal (sc_testproc_wait (client, T_EXIT), 1);
    sc_testproc_destroy (&client);
}

static void
s_stop (sc_testproc_t **broker)
{
    assert_int_equal (sc_testproc_signal (*broker, SIGTERM), 0);
    assert_int_equal (sc_testproc_wait (*broker, T_EXIT), 0);
    sc_testproc_destroy (broker);
}

/* ---- Revocation ------------------------------------------------------------ */

static void
test_revoked_user_is_logged_out (void **state)
{
    (void) state;
    char endpoint[256];
    sc_testproc_t *broker = s_broker (endpoint, sizeof endpoint);
    sc_testproc_t *alice = s_login ("alice", endpoint);
    sc_testproc_t *bob = s_login ("bob", endpoint);
    sc_testproc_t *carol = s_login ("carol", endpoint);
    assert_int_equal (sc_testproc_open_chat (alice, "alice", bob, "bob", T_LINE), 0);
    assert_int_equal (sc_testproc_send (bob, "before"), 0);
    assert_int_equal (sc_testproc_expect (alice, "msg bob before", T_LINE), 0);
    assert_int_equal (sc_testproc_expect_acked (bob, "alice", 1, T_LINE), 0);

    char *pub = s_key_path ("users/bob.pub");
    assert_int_equal (unlink (pub), 0);
    free (pub);
    assert_int_equal (sc_testproc_signal (broker, SIGHUP), 0);

    /* bob is told, his chat closes, he exits 1 without trying again */
    assert_int_equal (sc_testproc_expect (bob, "error revoked your key was removed from "
                                          "the broker's registry", T_LINE), 0);
    assert_non_null (sc_testproc_expect_prefix (bob, "error unconfirmed-close alice (your key was revoked)", T_LINE));
    assert_int_equal (sc_testproc_expect (bob, "closed alice", T_LINE), 0);
    assert_int_equal (sc_testproc_expect_eof (bob, T_LINE), 0);
    assert_int_equal (sc_testproc_wait (bob, T_EXIT), 1);
    char *bob_log = sc_testdir_path (T.work, "bob.log");
    assert_int_equal (s_wait_file (bob_log, "secchat: broker revoked the user bob: "
                                   "your key was removed from the broker's registry\n",
                                   T_LINE), 0);
    free (bob_log);
    /* alice's chat with him ends, and she is told why */
    assert_int_equal (sc_testproc_expect (alice, "error revoked the broker logged bob out: "
                                          "bob's key was revoked", T_LINE), 0);
    assert_non_null (sc_testproc_expect_prefix (alice, "error unconfirmed-close bob (the broker says bob was logged out (key revoked))", T_LINE));
    assert_int_equal (sc_testproc_expect (alice, "closed bob", T_LINE), 0);
    assert_int_equal (s_wait_log ("registry reloaded: 2 users"), 0);
    assert_int_equal (s_wait_log ("revoked bob: key removed"), 0);
    assert_int_equal (s_wait_log ("1 user logged out: key removed or changed"), 0);
    /* nobody lists him; the others go on */
    assert_int_equal (sc_testproc_send (carol, "/list"), 0);
    assert_int_equal (sc_testproc_expect (carol, "users alice", T_LINE), 0);
    assert_int_equal (sc_testproc_send (carol, "/talk bob"), 0);
    assert_int_equal (sc_testproc_expect (carol, "not-found bob", T_LINE), 0);
    /* and he cannot log in again */
    s_login_fails ("bob", endpoint, "bob-again");
    /* a second reload changes nothing more */
    assert_int_equal (sc_testproc_signal (broker, SIGHUP), 0);
    assert_int_equal (sc_testproc_send (alice, "/list"), 0);
    assert_int_equal (sc_testproc_expect (alice, "users carol", T_LINE), 0);
    assert_int_equal (s_log_count ("logged out: key removed"), 1);

    assert_int_equal (sc_testproc_send (alice, "/quit"), 0);
    assert_int_equal (sc_testproc_expect (alice, "bye", T_LINE), 0);
    assert_int_equal (sc_testproc_wait (alice, T_EXIT), 0);
    assert_int_equal (sc_testproc_send (carol, "/quit"), 0);
    assert_int_equal (sc_testproc_expect (carol, "bye", T_LINE), 0);
    s_stop (&broker);
}

/* ---- Reloading the broker's own identity ---------------------------------- */

static void
test_reload_keeps_old_config_on_a_bad_file (void **state)
{
    (void) state;
    char endpoint[256];
    sc_testproc_t *broker = s_broker (endpoint, sizeof endpoint);
    sc_testproc_t *bob = s_login ("bob", endpoint);
    s_sh ("cp broker.crt good.crt && openssl genpkey -algorithm ed25519 -out other.key "
          "&& chmod 600 other.key");

    /* a certificate that does not parse: kept the old one; bob's key,
       removed meanwhile, still counts, since nothing was reloaded */
    s_sh ("echo 'not a certificate' > broker.crt && rm users/bob.pub");
    assert_int_equal (sc_testproc_signal (broker, SIGHUP), 0);
    char *crt = s_key_path ("broker.crt");
    char *line = NULL;
    assert_true (asprintf (&line, "reload failed: cannot load certificate %s: not a PEM key "
                           "or certificate that secchat can read: keeping the old "
                           "configuration", crt) > 0);
    assert_int_equal (s_wait_log (line), 0);
    free (line);
    sc_testproc_t *alice = s_login ("alice", endpoint);     /* the old certificate */
    assert_int_equal (sc_testproc_send (bob, "/list"), 0);
    assert_int_equal (sc_testproc_expect (bob, "users alice", T_LINE), 0);

    /* a certificate for another key, then an expired one: the same */
    s_sh ("openssl req -new -key other.key -subj /CN=secbroker -out other.csr && "
          "openssl x509 -req -in other.csr -CA ca.pem -CAkey ca.key -set_serial 5 "
          "-days 30 -out broker.crt");
    assert_int_equal (sc_testproc_signal (broker, SIGHUP), 0);
    char *key = s_key_path ("broker.key");
    assert_true (asprintf (&line, "reload failed: key %s does not match certificate %s: "
                           "keeping the old configuration", key, crt) > 0);
    assert_int_equal (s_wait_log (line), 0);
    free (line);
    s_make_cert ("broker.crt", -1);
    assert_int_equal (sc_testproc_signal (broker, SIGHUP), 0);
    assert_true (asprintf (&line, "reload failed: certificate %s expired on ", crt) > 0);
    assert_int_equal (s_wait_log (line), 0);
    free (line);
    /* a bad key file among the users: the same, and it is named */
    s_sh ("cp good.crt broker.crt && echo junk > users/dave.pub");
    assert_int_equal (sc_testproc_signal (broker, SIGHUP), 0);
    assert_int_equal (s_wait_log ("reload failed: dave.pub: not a PEM key or certificate "
                                  "that secchat can read: keeping the old configuration"), 0);
    assert_int_equal (s_log_count ("reload failed"), 4);
    assert_int_equal (s_log_count ("registry reloaded"), 0);
    sc_testproc_t *carol = s_login ("carol", endpoint);
    assert_int_equal (sc_testproc_send (bob, "/list"), 0);
    assert_int_equal (sc_testproc_expect (bob, "users alice carol", T_LINE), 0);

    /* all good again, with a new certificate for another name: the next
       logins get it, bob (removed since) is logged out */
    s_sh ("rm users/dave.pub && openssl req -new -key broker.key -subj /CN=chat.example "
          "-addext subjectAltName=DNS:chat.example -out new.csr && "
          "openssl x509 -req -in new.csr -CA ca.pem -CAkey ca.key -set_serial 6 -days 20 "
          "-copy_extensions copy -out broker.crt");
    assert_int_equal (sc_testproc_signal (broker, SIGHUP), 0);
    assert_int_equal (sc_testproc_expect (bob, "error revoked your key was removed from "
                                          "the broker's registry", T_LINE), 0);
    assert_int_equal (sc_testproc_wait (bob, T_EXIT), 1);
    assert_int_equal (s_wait_log ("registry reloaded: 2 users; certificate valid until"), 0);
    /* it ends in 20 days: warned */
    assert_int_equal (s_wait_log ("expires in 20 days ("), 0);
    sc_testclient_t renamed = { .keys = T.keys, .workdir = T.work, .endpoint = endpoint,
                                .user = "carol", .name = "carol-new",
                                .broker_name = "chat.example" };
    sc_testproc_t *carol2 = sc_testproc_client_new (&renamed);
    assert_non_null (carol2);
    assert_int_equal (sc_testproc_expect (carol2, "ready carol", T_LINE), 0);
    /* the old name no longer matches: the new certificate is the one sent */
    s_login_fails ("alice", endpoint, "alice-old-name");
    /* alice's session, from before, goes on */
    assert_int_equal (sc_testproc_send (alice, "/list"), 0);
    assert_int_equal (sc_testproc_expect (alice, "users carol", T_LINE), 0);
    free (key);
    free (crt);
    s_stop (&broker);
    (void) carol;
}

/* ---- Start-up ---------------------------------------------------------------- */

/* secbroker with these --cert and --key (files of the key set) and
   extra arguments; its stdout lines are read by the caller, its stderr
   goes to NAME.log. */
static sc_testproc_t *
s_secbroker (const char *name, const char *cert, const char *key, const char *extra)
{
    char *program = sc_testdir_path (sc_testproc_bin_dir (), "secbroker");
    char *cert_path = s_key_path (cert), *key_path = s_key_path (key);
    char *users = s_key_path ("users");
    char log_name[64];
    snprintf (log_name, sizeof log_name, "%s.log", name);
    char *log = sc_testdir_path (T.work, log_name);
    const char *argv[] = { program, "--endpoint", "tcp://127.0.0.1:!", "--cert", cert_path,
                           "--key", key_path, "--users", users, extra, NULL };
    sc_testproc_t *proc = sc_testproc_new (name, argv, log);
    assert_non_null (proc);
    free (log);
    free (users);
    free (key_path);
    free (cert_path);
    free (program);
    return proc;
}

/* The stderr of a process started by s_secbroker, once it ended. */
static char *
s_stderr (const char *name)
{
    char log_name[64];
    snprintf (log_name, sizeof log_name, "%s.log", name);
    char *path = sc_testdir_path (T.work, log_name);
    char *text = sc_testdir_slurp (path, NULL);
    free (path);
    assert_non_null (text);
    return text;
}

/* It must exit 1 before listening, with exactly the line want on stderr
   (want ends in '*': a prefix, on one line). */
static void
s_refused (const char *name, const char *cert, const char *key, const char *want)
{
    sc_testproc_t *broker = s_secbroker (name, cert, key, NULL);
    assert_int_equal (sc_testproc_expect_eof (broker, T_LINE), 0);
    assert_int_equal (sc_testproc_wait (broker, T_EXIT), 1);
    sc_testproc_destroy (&broker);
    char *err = s_stderr (name);
    size_t len = strlen (want);
    bool ok = want[len - 1] == '*'
            ? strncmp (err, want, len - 1) == 0 && strchr (err, '\n') == strrchr (err, '\n')
            : strcmp (err, want) == 0;
    if (!ok)
        fail_msg ("%s: expected \"%s\" on stderr, got \"%s\"", name, want, err);
    free (err);
}

static void
test_start_refused_on_a_bad_identity (void **state)
{
    (void) state;
    s_sh ("openssl genpkey -algorithm ed25519 -out other.key && chmod 600 other.key");
    char *key = s_key_path ("other.key"), *crt = s_key_path ("broker.crt");
    char *want = NULL;
    assert_true (asprintf (&want, "secbroker: key %s does not match certificate %s\n",
                           key, crt) > 0);
    s_refused ("mismatch", "broker.crt", "other.key", want);
    free (want);
    free (key);
    free (crt);

    s_make_cert ("expired.crt", -1);
    crt = s_key_path ("expired.crt");
    assert_true (asprintf (&want, "secbroker: certificate %s expired on *", crt) > 0);
    s_refused ("expired", "expired.crt", "broker.key", want);
    free (want);
    free (crt);

    /* 10 days left: it starts, and says so */
    s_make_cert ("soon.crt", 10);
    sc_testproc_t *broker = s_secbroker ("soon", "soon.crt", "broker.key", NULL);
    assert_non_null (sc_testproc_expect_prefix (broker, "secbroker listening on ", T_LINE));
    crt = s_key_path ("soon.crt");
    assert_true (asprintf (&want, "certificate %s expires in 10 days (", crt) > 0);
    char *log = sc_testdir_path (T.work, "soon.log");
    assert_int_equal (s_wait_file (log, want, T_LINE), 0);
    free (log);
    free (want);
    free (crt);
    s_stop (&broker);
}

static void
test_check (void **state)
{
    (void) state;
    /* a good configuration, while a broker holds the port: no bind */
    char endpoint[256];
    sc_testproc_t *running = s_broker (endpoint, sizeof endpoint);
    char *program = sc_testdir_path (sc_testproc_bin_dir (), "secbroker");
    char *crt = s_key_path ("broker.crt"), *key = s_key_path ("broker.key");
    char *users = s_key_path ("users");
    char *log = sc_testdir_path (T.work, "check.log");
    const char *argv[] = { program, "--check", "--endpoint", endpoint, "--cert", crt,
                           "--key", key, "--users", users, NULL };
    sc_testproc_t *check = sc_testproc_new ("check", argv, log);
    assert_non_null (check);
    const char *line = sc_testproc_expect_prefix (check, "secbroker: configuration OK: ",
                                                  T_LINE);
    assert_non_null (line);
    assert_non_null (strstr (line, "3 users"));
    assert_int_equal (sc_testproc_expect_eof (check, T_LINE), 0);
    assert_int_equal (sc_testproc_wait (check, T_EXIT), 0);
    sc_testproc_destroy (&check);
    char *err = s_stderr ("check");
    assert_string_equal (err, "");
    free (err);
    s_stop (&running);

    /* everything wrong: each bad file named, exit 1 */
    s_sh ("openssl genpkey -algorithm ed25519 -out other.key && chmod 600 other.key && "
          "echo junk > users/dave.pub && cp users/alice.pub users/Eve.pub && "
          "echo 'not a key' > users/notes.txt");
    check = s_secbroker ("check-bad", "broker.crt", "other.key", "--check");
    assert_int_equal (sc_testproc_expect_eof (check, T_LINE), 0);
    assert_int_equal (sc_testproc_wait (check, T_EXIT), 1);
    sc_testproc_destroy (&check);
    err = s_stderr ("check-bad");
    char *want = NULL;
    char *other = s_key_path ("other.key");
    assert_true (asprintf (&want, "secbroker: key %s does not match certificate %s\n",
                           other, crt) > 0);
    assert_non_null (strstr (err, want));
    free (want);
    assert_true (asprintf (&want, "secbroker: %s/dave.pub: not a PEM key or certificate "
                           "that secchat can read\n", users) > 0);
    assert_non_null (strstr (err, want));
    free (want);
    assert_true (asprintf (&want, "secbroker: %s/Eve.pub: not a valid user name", users) > 0);
    assert_non_null (strstr (err, want));
    free (want);
    assert_null (strstr (err, "notes.txt"));        /* not a key file: not looked at */
    assert_non_null (strstr (err, "secbroker: configuration NOT OK\n"));
    free (err);

    /* a bad user file alone is enough */
    check = s_secbroker ("check-users", "broker.crt", "broker.key", "--check");
    assert_int_equal (sc_testproc_expect_eof (check, T_LINE), 0);
    assert_int_equal (sc_testproc_wait (check, T_EXIT), 1);
    sc_testproc_destroy (&check);
    /* and an unreadable users folder */
    s_sh ("rm users/dave.pub users/Eve.pub && mv users users.away");
    check = s_secbroker ("check-nodir", "broker.crt", "broker.key", "--check");
    assert_int_equal (sc_testproc_expect_eof (check, T_LINE), 0);
    assert_int_equal (sc_testproc_wait (check, T_EXIT), 1);
    sc_testproc_destroy (&check);
    err = s_stderr ("check-nodir");
    assert_true (asprintf (&want, "secbroker: cannot read the user registry %s: ", users) > 0);
    assert_non_null (strstr (err, want));
    free (want);
    free (err);
    free (other);
    free (log);
    free (users);
    free (key);
    free (crt);
    free (program);
}

#define T_(test) cmocka_unit_test_setup_teardown (test, s_setup, s_teardown)

int
main (void)
{
    const struct CMUnitTest tests[] = {
        T_ (test_revoked_user_is_logged_out),
        T_ (test_reload_keeps_old_config_on_a_bad_file),
        T_ (test_start_refused_on_a_bad_identity),
        T_ (test_check),
    };
    return cmocka_run_group_tests_name ("revocation", tests, s_group_setup, s_group_teardown);
}
