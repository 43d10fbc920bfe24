/*  test_enrol: enrolment with a one-time code, with the real programs.

    `secbroker invite` makes an invitation beside the registry of a
    running broker, `secchat enrol` makes a key, enrols with the code and
    stays logged in; then the new user logs in again with that key and
    chats with a registered one. The refusals (the code a second time, a
    wrong code, an expired one, a registered name, a revoked invitation,
    no code while registration is closed) each end secchat with a clear
    error and register nothing. The key enrolment made opens with
    `openssl pkey` and its password. docs/PROTOCOL.md section 5a, and
    docs/CLIENT.md "Enrolment".

    Run from the repository root with SC_BIN_DIR set, as `make check`
    does. SC_KEEP_TMP=1 keeps the temporary directory.

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at https://mozilla.org/MPL/2.0/.
*/
#define _GNU_SOURCE                 //  memmem
#include "sc_testproc.h"

#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#define T_LINE  sc_testproc_timeout (10000)
#define T_QUIET sc_testproc_timeout (500)
#define T_EXIT  sc_testproc_timeout (15000)

static char *g_root;            //  the program's temporary directory
static char *g_keys;            //  CA, broker, alice and bob
static char *g_users;           //  g_keys/users: the registry
static char *g_work;            //  the current test's
static int g_test_no;
static char g_endpoint[256];

//  A path in the current test's directory (malloc'd).
static char *
s_work (const char *name)
{
    return sc_testdir_path (g_work, name);
}

static void
s_write (const char *path, const char *text)
{
    assert_int_equal (sc_testdir_write (path, text), 0);
}

static char *
s_slurp (const char *path)
{
    size_t len = 0;
    return sc_testdir_slurp (path, &len);
}

static bool
s_exists (const char *path)
{
    return access (path, F_OK) == 0;
}

//  Runs a program to its end: its exit status; its first stdout line
//  into line (when not NULL).
static bool all_lines;          //  s_run: keep them all

static int
s_run (const char *name, const char *const argv[], char *line, size_t size)
{
    char *log = s_work ("run.log");
    sc_testproc_t *proc = sc_testproc_new (name, argv, log);
    free (log);
    assert_non_null (proc);
    if (line) {
        //  every line, each with its newline; the first without it
        const char *got = NULL;
        size_t used = 0;
        line[0] = 0;
        while (sc_testproc_read_line (proc, T_LINE, &got) == 1)
            used += (size_t) snprintf (line + used, used < size ? size - used : 0, "%s\n", got);
        char *end = strchr (line, '\n');
        if (end && used < size)
            *end = all_lines ? '\n' : 0;
    }
    int status = sc_testproc_wait (proc, T_EXIT);
    sc_testproc_destroy (&proc);
    return status;
}

static const char *
s_bin (const char *program)
{
    static char path[2][512];
    static int next;
    char *p = path[next++ % 2];
    snprintf (p, sizeof path[0], "%s%s", sc_testproc_bin_dir (), program);
    return p;
}

//  `secbroker invite NAME --valid VALID`: the code it printed.
static void
s_invite (const char *name, const char *valid, char code[64])
{
    const char *argv[] = { s_bin ("secbroker"), "invite", name, "--users", g_users,
                           "--valid", valid, NULL };
    assert_int_equal (s_run ("invite", argv, code, 64), 0);
    //  8 groups of 4 base32 letters: 160 bits
    assert_int_equal (strlen (code), 39);
    for (size_t i = 0; i < 39; i++) {
        if (i % 5 == 4)
            assert_int_equal (code[i], '-');
        else
            assert_non_null (strchr ("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", code[i]));
    }
}

static sc_testproc_t *
s_broker (const char *registration)
{
    const char *open[] = { "--registration", registration, NULL };
    sc_testproc_t *broker = sc_testproc_broker_new_with (g_keys, g_work,
                                                         registration ? open : NULL,
                                                         g_endpoint, sizeof g_endpoint);
    assert_non_null (broker);
    return broker;
}

//  `secchat enrol` as name with code (NULL: none) in batch mode, its key
//  into WORK/NAME.key under the password in WORK/NAME.pass.
static sc_testproc_t *
s_enrol (const char *name, const char *code)
{
    char file[64];
    snprintf (file, sizeof file, "%s.pass", name);
    char *pass = s_work (file);
    snprintf (file, sizeof file, "%s.key", name);
    char *key = s_work (file);
    snprintf (file, sizeof file, "cfg-%s", name);
    char *cfg = s_work (file);
    snprintf (file, sizeof file, "%s.log", name);
    char *log = s_work (file);
    char *ca = sc_testdir_path (g_keys, "ca.pem");
    s_write (pass, "correct horse battery\n");
    const char *argv[] = { s_bin ("secchat"), "enrol", "--endpoint", g_endpoint, "--user", name,
                           "--ca", ca, "--key", key, "--password-file", pass,
                           "--config-dir", cfg, "--batch",
                           code ? "--code" : NULL, code, NULL };
    sc_testproc_t *proc = sc_testproc_new (name, argv, log);
    assert_non_null (proc);
    free (pass);
    free (key);
    free (cfg);
    free (log);
    free (ca);
    return proc;
}

//  An enrolment that must be refused: secchat says why (the ERROR's
//  word and detail on stderr) and exits 1; no key is left and nothing
//  is registered.
static void
s_enrol_refused (const char *name, const char *code, const char *why)
{
    char file[64];
    snprintf (file, sizeof file, "%s.pub", name);
    char *pub = sc_testdir_path (g_users, file);
    char *before = s_exists (pub) ? s_slurp (pub) : NULL;
    sc_testproc_t *proc = s_enrol (name, code);
    assert_int_equal (sc_testproc_expect_eof (proc, T_EXIT), 0);
    assert_int_equal (sc_testproc_wait (proc, T_EXIT), 1);
    char *log = s_slurp (sc_testproc_log_path (proc));
    assert_non_null (log);
    if (!strstr (log, why))
        fail_msg ("secchat enrol %s: expected '%s' in:\n%s", name, why, log);
    assert_non_null (strstr (log, "nothing was registered"));
    free (log);
    snprintf (file, sizeof file, "%s.key", name);
    char *key = s_work (file);
    assert_false (s_exists (key));
    free (key);
    char *after = s_exists (pub) ? s_slurp (pub) : NULL;
    if (before)
        assert_string_equal (before, after);
    else
        assert_null (after);
    free (before);
    free (after);
    free (pub);
    sc_testproc_destroy (&proc);
}

static sc_testproc_t *
s_login (const char *user, const char *key_file, const char *pass_file)
{
    sc_testclient_t c = { .keys = g_keys, .workdir = g_work, .endpoint = g_endpoint,
                          .user = user, .key_file = key_file, .password_file = pass_file };
    sc_testproc_t *proc = sc_testproc_client_new (&c);
    assert_non_null (proc);
    char ready_line[64];
    snprintf (ready_line, sizeof ready_line, "ready %s", user);
    assert_int_equal (sc_testproc_expect (proc, ready_line, T_LINE), 0);
    return proc;
}

//  ---------------------------------------------------------------------

//  The whole path: an invitation, enrolment with its code (logged in at
//  once), the key opening with openssl and its password, a chat with a
//  registered user, a later login with the new key.
static void
test_enrol_login_and_chat (void **state)
{
    (void) state;
    sc_testproc_t *broker = s_broker (NULL);
    char code[64];
    s_invite ("dave", "10m", code);
    char *invite = sc_testdir_path (g_users, "dave.invite");
    struct stat st;
    assert_int_equal (stat (invite, &st), 0);
    assert_int_equal (st.st_mode & 0777, 0600);
    char *stored = s_slurp (invite);
    assert_null (strstr (stored, code));      //  only its hash
    free (stored);

    sc_testproc_t *dave = s_enrol ("dave", code);
    assert_int_equal (sc_testproc_expect (dave, "ready dave", T_LINE), 0);
    assert_false (s_exists (invite));          //  burnt
    //  the code is no longer in its command line, which others can list
    //  (under valgrind, /proc shows valgrind's own copy of it)
    if (!sc_testproc_valgrind ()) {
        char proc[64];
        snprintf (proc, sizeof proc, "/proc/%d/cmdline", (int) sc_testproc_pid (dave));
        FILE *file = fopen (proc, "rb");
        assert_non_null (file);
        static char cmdline[8192];
        size_t len = fread (cmdline, 1, sizeof cmdline - 1, file);
        assert_int_equal (fclose (file), 0);
        assert_true (len > 0);
        assert_non_null (memmem (cmdline, len, "--code", 6));
        assert_null (memmem (cmdline, len, code, strlen (code)));
    }
    char *pub = sc_testdir_path (g_users, "dave.pub");
    assert_true (s_exists (pub));

    //  the registered key is the public half of the key file
    char *key = s_work ("dave.key");
    char *pass = s_work ("dave.pass");
    char passin[600], line[128];
    snprintf (passin, sizeof passin, "file:%s", pass);
    assert_int_equal (stat (key, &st), 0);
    assert_int_equal (st.st_mode & 0777, 0600);
    const char *pkey[] = { "openssl", "pkey", "-in", key, "-passin", passin, "-pubout",
                           NULL };
    char *registered = s_slurp (pub);
    assert_int_equal (s_run ("openssl", pkey, line, sizeof line), 0);
    assert_string_equal (line, "-----BEGIN PUBLIC KEY-----");
    {
        char *out = s_work ("dave.pubout");
        const char *argv[] = { "openssl", "pkey", "-in", key, "-passin", passin, "-pubout",
                               "-out", out, NULL };
        assert_int_equal (s_run ("openssl", argv, NULL, 0), 0);
        char *mine = s_slurp (out);
        assert_string_equal (mine, registered);
        free (mine);
        free (out);
    }
    //  encrypted: no password, or a wrong one, does not open it
    const char *nopass[] = { "openssl", "pkey", "-in", key, "-passin", "pass:wrong",
                             "-noout", NULL };
    assert_int_not_equal (s_run ("openssl", nopass, NULL, 0), 0);
    free (registered);

    //  the new user chats with alice
    sc_testproc_t *alice = s_login ("alice", NULL, NULL);
    assert_int_equal (sc_testproc_open_chat (alice, "alice", dave, "dave", T_LINE), 0);
    assert_int_equal (sc_testproc_send (alice, "hello dave"), 0);
    assert_int_equal (sc_testproc_expect (dave, "msg alice hello dave", T_LINE), 0);
    assert_int_equal (sc_testproc_send (dave, "hi alice, glad to be here"), 0);
    assert_int_equal (sc_testproc_expect (alice, "msg dave hi alice, glad to be here",
                                          T_LINE), 0);
    assert_int_equal (sc_testproc_send (dave, "/quit"), 0);
    assert_int_equal (sc_testproc_wait (dave, T_EXIT), 0);
    assert_int_equal (sc_testproc_expect (alice, "closed dave", T_LINE), 0);

    //  dave logs in again with the key enrolment made, as anyone does
    sc_testproc_t *again = s_login ("dave", key, pass);
    assert_int_equal (sc_testproc_send (again, "/quit"), 0);
    assert_int_equal (sc_testproc_wait (again, T_EXIT), 0);
    free (key);
    free (pass);
    free (pub);
    free (invite);
    sc_testproc_destroy (&alice);
    sc_testproc_destroy (&broker);
}

//  The same code a second time, a wrong code and an expired one: each
//  refused with its own error, nothing registered, the key file gone.
static void
test_enrol_code_refused (void **state)
{
    (void) state;
    sc_testproc_t *broker = s_broker (NULL);
    char code[64], other[64], old[64];
    s_invite ("erin", "1h", code);
    sc_testproc_t *erin = s_enrol ("erin", code);
    assert_int_equal (sc_testproc_expect (erin, "ready erin", T_LINE), 0);
    assert_int_equal (sc_testproc_send (erin, "/quit"), 0);
    assert_int_equal (sc_testproc_wait (erin, T_EXIT), 0);
    sc_testproc_destroy (&erin);
    char *key = s_work ("erin.key");
    char *kept = s_work ("erin.key.first");
    assert_int_equal (rename (key, kept), 0);

    //  again: used
    s_enrol_refused ("erin", code, "enrol-code (invalid or already used code)");
    //  a wrong code: a code of the right form for someone else
    s_invite ("frank", "1h", other);
    s_enrol_refused ("grace", other, "enrol-code (invalid or already used code)");
    //  frank's own is still good: one wrong try did not burn it
    sc_testproc_t *frank = s_enrol ("frank", other);
    assert_int_equal (sc_testproc_expect (frank, "ready frank", T_LINE), 0);
    sc_testproc_destroy (&frank);
    //  expired
    s_invite ("heidi", "1s", old);
    sc_testproc_sleep_ms (2100);
    s_enrol_refused ("heidi", old, "enrol-code (this code has expired)");
    //  not a code at all: refused before anything is made
    char *ivan = s_work ("ivan.key");
    char *ca = sc_testdir_path (g_keys, "ca.pem");
    const char *argv[] = { s_bin ("secchat"), "enrol", "--endpoint", g_endpoint,
                           "--user", "ivan", "--code", "ABCD-EFGH", "--ca", ca,
                           "--key", ivan, "--batch", NULL };
    assert_int_equal (s_run ("secchat", argv, NULL, 0), 2);
    assert_false (s_exists (ivan));
    free (ivan);
    free (ca);
    free (key);
    free (kept);
    sc_testproc_destroy (&broker);
}

//  Nobody takes over a registered name: not with an invitation (the
//  operator cannot make one), not with open registration; the owner
//  still logs in with their key.
static void
test_enrol_name_taken (void **state)
{
    (void) state;
    char code[64];
    const char *argv[] = { s_bin ("secbroker"), "invite", "alice", "--users", g_users, NULL };
    assert_int_equal (s_run ("invite", argv, code, sizeof code), 1);
    assert_string_equal (code, "");
    char *invite = sc_testdir_path (g_users, "alice.invite");
    assert_false (s_exists (invite));
    free (invite);

    sc_testproc_t *broker = s_broker ("open");
    s_enrol_refused ("alice", NULL, "enrol-taken (this name is already registered)");
    sc_testproc_t *alice = s_login ("alice", NULL, NULL);
    //  a free name is anyone's under open registration
    sc_testproc_t *judy = s_enrol ("judy", NULL);
    assert_int_equal (sc_testproc_expect (judy, "ready judy", T_LINE), 0);
    assert_int_equal (sc_testproc_send (alice, "/list"), 0);
    assert_int_equal (sc_testproc_expect (alice, "users judy", T_LINE), 0);
    sc_testproc_destroy (&judy);
    sc_testproc_destroy (&alice);
    sc_testproc_destroy (&broker);

    //  closed (the default): no code, no enrolment
    broker = s_broker (NULL);
    s_enrol_refused ("ken", NULL,
                     "enrol-closed (registration is closed: enrolment needs an invitation code)");
    sc_testproc_destroy (&broker);
}

//  --list shows what is pending, --revoke cancels it.
static void
test_invite_list_revoke (void **state)
{
    (void) state;
    sc_testproc_t *broker = s_broker (NULL);
    char code[64], line[256];
    s_invite ("liam", "7d", code);
    const char *list[] = { s_bin ("secbroker"), "invite", "--list", "--users", g_users, NULL };
    all_lines = true;
    assert_int_equal (s_run ("invite", list, line, sizeof line), 0);
    const char *liam = strstr (line, "liam ");
    assert_non_null (liam);
    assert_true (liam == line || liam[-1] == '\n');
    //  "liam YYYY-MM-DD HH:MM UTC", not expired
    size_t len = (size_t) (strchr (liam, '\n') - liam);
    assert_int_equal (len, strlen ("liam 2026-12-10 09:00 UTC"));
    assert_memory_equal (liam + len - 4, " UTC", 4);
    const char *revoke[] = { s_bin ("secbroker"), "invite", "--revoke", "liam",
                             "--users", g_users, NULL };
    assert_int_equal (s_run ("invite", revoke, NULL, 0), 0);
    assert_int_equal (s_run ("invite", revoke, NULL, 0), 1);    //  none left
    assert_int_equal (s_run ("invite", list, line, sizeof line), 0);
    assert_null (strstr (line, "liam "));
    all_lines = false;
    s_enrol_refused ("liam", code, "enrol-code (invalid or already used code)");
    //  --valid takes a count and a unit
    const char *bad[] = { s_bin ("secbroker"), "invite", "mia", "--users", g_users,
                          "--valid", "10", NULL };
    assert_int_equal (s_run ("invite", bad, NULL, 0), 2);
    sc_testproc_destroy (&broker);
}


//  On a terminal: the new key's password is asked twice, with echo off;
//  two that differ are asked again; then the user is logged in, and the
//  key opens with that password.
typedef struct {
    pid_t pid;
    int master;
    char screen[65536];
    size_t len;
} tty_t;

//  How many times text is on the screen.
static int
s_tty_count (const tty_t *t, const char *text)
{
    int count = 0;
    size_t len = strlen (text);
    for (const char *p = t->screen; (p = memmem (p, t->len - (size_t) (p - t->screen), text, len));
         p += len)
        count++;
    return count;
}

//  Read what it writes until text is on the screen `times` times (0) or
//  the time runs out (-1).
static int
s_tty_wait_n (tty_t *t, const char *text, int times, int timeout_ms)
{
    int64_t deadline = sc_testproc_now_ms () + timeout_ms;
    while (s_tty_count (t, text) < times) {
        int64_t left = deadline - sc_testproc_now_ms ();
        struct pollfd pfd = { t->master, POLLIN, 0 };
        if (left <= 0 || poll (&pfd, 1, (int) left) <= 0)
            return -1;
        ssize_t n = read (t->master, t->screen + t->len, sizeof t->screen - 1 - t->len);
        if (n <= 0)
            return -1;
        t->len += (size_t) n;
    }
    return 0;
}

static int
s_tty_wait (tty_t *t, const char *text, int timeout_ms)
{
    return s_tty_wait_n (t, text, 1, timeout_ms);
}

//  Typed after the prompt: the client turns echo off (TCSAFLUSH, which
//  drops what was typed ahead) just after it prints the prompt, so the
//  keys wait a moment.
static void
s_tty_type (tty_t *t, const char *keys)
{
    sc_testproc_sleep_ms (300);
    assert_int_equal (write (t->master, keys, strlen (keys)), (ssize_t) strlen (keys));
}

static void
test_enrol_on_a_terminal (void **state)
{
    (void) state;
    sc_testproc_t *broker = s_broker (NULL);
    char code[64];
    s_invite ("nina", "10m", code);
    tty_t t;
    memset (&t, 0, sizeof t);
    char *key = s_work ("nina.key");
    char *cfg = s_work ("cfg-nina");
    char *ca = sc_testdir_path (g_keys, "ca.pem");
    const char *argv[] = { s_bin ("secchat"), "enrol", "--endpoint", g_endpoint,
                           "--user", "nina", "--code", code, "--key", key, "--ca", ca,
                           "--config-dir", cfg, NULL };
    t.pid = sc_testproc_tty_start (&(sc_testtty_t) { .argv = argv }, &t.master);
    assert_true (t.pid > 0);
    int wait_ms = sc_testproc_timeout (10000);
    if (s_tty_wait (&t, "New password for", wait_ms))
        fail_msg ("no password prompt; the terminal shows: %.*s", (int) t.len, t.screen);
    s_tty_type (&t, "first try\r");
    assert_int_equal (s_tty_wait (&t, "Again: ", wait_ms), 0);
    s_tty_type (&t, "another\r");
    if (s_tty_wait (&t, "The two differ, try again.", wait_ms))
        fail_msg ("no second try; the terminal shows: %.*s", (int) t.len, t.screen);
    assert_int_equal (s_tty_wait_n (&t, "New password for", 2, wait_ms), 0);
    s_tty_type (&t, "tty secret\r");
    assert_int_equal (s_tty_wait_n (&t, "Again: ", 2, wait_ms), 0);
    s_tty_type (&t, "tty secret\r");
    if (s_tty_wait (&t, "[idle]", wait_ms))
        fail_msg ("not logged in; the terminal shows: %.*s", (int) t.len, t.screen);
    //  echo was off: no password on the screen
    assert_null (memmem (t.screen, t.len, "secret", 6));
    assert_null (memmem (t.screen, t.len, "first try", 9));
    s_tty_type (&t, "/quit\r");
    assert_int_equal (sc_testproc_tty_wait (t.pid, t.master, wait_ms), 0);
    close (t.master);
    const char *good[] = { "openssl", "pkey", "-in", key, "-passin", "pass:tty secret",
                           "-noout", NULL };
    assert_int_equal (s_run ("openssl", good, NULL, 0), 0);
    const char *bad[] = { "openssl", "pkey", "-in", key, "-passin", "pass:another",
                          "-noout", NULL };
    assert_int_not_equal (s_run ("openssl", bad, NULL, 0), 0);
    free (key);
    free (cfg);
    free (ca);
    sc_testproc_destroy (&broker);
}

//  ---------------------------------------------------------------------

static int
s_group_setup (void **state)
{
    (void) state;
    alarm ((unsigned) sc_testproc_timeout (600000) / 1000);
    g_root = sc_testdir_new ("enrol");
    if (!g_root)
        return -1;
    g_keys = sc_testdir_path (g_root, "keys");
    g_users = sc_testdir_path (g_keys, "users");
    const char *const users[] = { "alice", "bob", NULL };
    return sc_testproc_make_keys (g_keys, users);
}

static int
s_group_teardown (void **state)
{
    (void) state;
    sc_testproc_destroy_all ();
    sc_testdir_remove_unless_kept (g_root, "test_enrol");
    free (g_users);
    free (g_keys);
    free (g_root);
    return 0;
}

static int
s_setup (void **state)
{
    (void) state;
    g_work = sc_testdir_next (g_root, &g_test_no);
    g_endpoint[0] = 0;
    return g_work ? 0 : -1;
}

static int
s_teardown (void **state)
{
    (void) state;
    sc_testproc_destroy_all ();
    free (g_work);
    g_work = NULL;
    return 0;
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
#define T(test) cmocka_unit_test_setup_teardown (test, s_setup, s_teardown)
        T (test_enrol_login_and_chat),
        T (test_enrol_code_refused),
        T (test_enrol_name_taken),
        T (test_invite_list_revoke),
        T (test_enrol_on_a_terminal),
#undef T
    };
    return cmocka_run_group_tests_name ("enrol", tests, s_group_setup, s_group_teardown);
}
