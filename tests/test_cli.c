/*  test_cli: secchat's command line as people use it, beside the chat.

    - `secchat keygen`, `passwd` and `fingerprint`, checked against the
      openssl command line: the key keygen makes opens with `openssl
      pkey` and its password (typed twice on a pseudo-terminal, or from a
      file), passwd keeps the key and changes the password, fingerprint
      says what /fingerprint says.
    - CONFIG/config: `secchat` with no arguments logs in with what the
      file says, an option overrides it, a bad line is reported with the
      file and the line (and sc_config's parsing on its own).
    - `--version` on secbroker, secchat and secchat-keys: the Makefile's
      VERSION.

    Run from the repository root with SC_BIN_DIR set, as `make check`
    does.

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at https://mozilla.org/MPL/2.0/.
*/
#define _GNU_SOURCE                 //  vasprintf, memmem
#include "sc_config.h"
#include "sc_crypto.h"
#include "sc_key.h"
#include "sc_testproc.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <dirent.h>
#include <unistd.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#define T_LINE      sc_testproc_timeout (10000)
#define T_EXIT      sc_testproc_timeout (15000)

static char *g_root;                //  the program's temporary directory
static char *g_keys;                //  secchat-keys' alice and bob
static int g_test_no;
static char *g_work;                //  the current test's directory
static pid_t g_tty_pid;             //  a program on a pseudo-terminal

//  ---------------------------------------------------------------------
//  Helpers

static char *
s_printf (const char *fmt, ...) __attribute__ ((format (printf, 1, 2)));

static char *
s_printf (const char *fmt, ...)
{
    va_list ap;
    va_start (ap, fmt);
    char *s = NULL;
    int n = vasprintf (&s, fmt, ap);
    va_end (ap);
    assert_true (n >= 0);
    return s;
}

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
    char *text = sc_testdir_slurp (path, NULL);
    if (!text)
        fail_msg ("cannot read %s", path);
    return text;
}

static bool
s_contains (const char *haystack, const char *needle)
{
    return haystack && strstr (haystack, needle) != NULL;
}

//  Runs a shell command with stdout and stderr into WORK/out and
//  WORK/err: its exit status (256 + signal when killed).
static int
s_sh (const char *cmd)
{
    char *full = s_printf ("%s >'%s/out' 2>'%s/err' </dev/null", cmd, g_work, g_work);
    int status = system (full);
    free (full);
    assert_true (status != -1);
    return WIFEXITED (status) ? WEXITSTATUS (status) : 256 + WTERMSIG (status);
}

static char *
s_out (const char *which)
{
    char *path = s_work (which);
    char *text = s_slurp (path);
    free (path);
    return text;
}

//  The command must exit with want; else its output is printed.
static void
s_sh_expect (const char *cmd, int want)
{
    int got = s_sh (cmd);
    if (got != want) {
        char *out = s_out ("out"), *err = s_out ("err");
        fail_msg ("%s: exit %d, want %d\nstdout: %s\nstderr: %s", cmd, got, want, out, err);
    }
}

static const char *
s_bin (void)
{
    return sc_testproc_bin_dir ();
}

//  The fingerprint of a public key file, computed here.
static void
s_expected_fpr (const char *pub_path, char fpr [static SC_FPR_LEN + 1])
{
    int err = 0;
    sc_key_t *key = sc_key_load_public (pub_path, &err);
    assert_non_null (key);
    uint8_t pub [SC_PUB_LEN];
    assert_int_equal (sc_key_public_raw (key, pub), 0);
    assert_int_equal (sc_fingerprint (pub, fpr), 0);
    sc_key_destroy (&key);
}

static unsigned
s_mode (const char *path)
{
    struct stat st;
    if (stat (path, &st))
        fail_msg ("%s is missing", path);
    return (unsigned) (st.st_mode & 07777);
}

//  No file but those named is left in dir (no temporary file).
static void
s_only_files (const char *dir, const char *const names [])
{
    DIR *d = opendir (dir);
    assert_non_null (d);
    for (struct dirent *e; (e = readdir (d));) {
        if (e->d_name [0] == '.')
            continue;
        bool known = false;
        for (size_t i = 0; names [i]; i++)
            known |= strcmp (e->d_name, names [i]) == 0;
        if (!known) {
            closedir (d);
            fail_msg ("unexpected file %s/%s", dir, e->d_name);
        }
    }
    closedir (d);
}

//  ---------------------------------------------------------------------
//  A program on a pseudo-terminal

typedef struct {
    pid_t pid;
    int master;
    char screen [65536];
    size_t len;
    size_t mark;                //  where the next s_tty_wait looks from
} s_tty_t;

//  Starts argv on a new pseudo-terminal, its controlling terminal, with
//  XDG_CONFIG_HOME set to xdg (when not NULL).
static void
s_tty_start (s_tty_t *t, const char *const argv [], const char *xdg)
{
    memset (t, 0, sizeof *t);
    char *set = xdg ? s_printf ("XDG_CONFIG_HOME=%s", xdg) : NULL;
    const char *const env [] = { set, NULL };
    sc_testtty_t tty = { .argv = argv, .env = env };
    t->pid = sc_testproc_tty_start (&tty, &t->master);
    free (set);
    assert_true (t->pid > 0);
    g_tty_pid = t->pid;
}

//  Reads until text is on the screen after what the last wait found: 0,
//  or -1 when time runs out.
static int
s_tty_wait (s_tty_t *t, const char *text, int timeout_ms)
{
    int64_t deadline = sc_testproc_now_ms () + timeout_ms;
    const char *found;
    while (!(found = memmem (t->screen + t->mark, t->len - t->mark, text, strlen (text)))) {
        int64_t left = deadline - sc_testproc_now_ms ();
        struct pollfd pfd = { t->master, POLLIN, 0 };
        if (left <= 0 || poll (&pfd, 1, (int) left) <= 0)
            return -1;
        ssize_t n = read (t->master, t->screen + t->len, sizeof t->screen - 1 - t->len);
        if (n <= 0)
            return -1;
        t->len += (size_t) n;
    }
    t->mark = (size_t) (found - t->screen) + strlen (text);
    return 0;
}

static void
s_tty_see (s_tty_t *t, const char *text)
{
    if (s_tty_wait (t, text, T_LINE))
        fail_msg ("'%s' did not come; the terminal shows:\n%.*s", text,
                  (int) t->len, t->screen);
}

static void
s_tty_type (s_tty_t *t, const char *keys)
{
    size_t len = strlen (keys);
    assert_int_equal (write (t->master, keys, len), (ssize_t) len);
}

//  Waits for the program to end, reading what it writes: its exit
//  status (-1: still running after the timeout, then killed).
static int
s_tty_end (s_tty_t *t)
{
    int status = 0;
    int64_t deadline = sc_testproc_now_ms () + T_EXIT;
    pid_t done = 0;
    while ((done = waitpid (t->pid, &status, WNOHANG)) == 0
           && sc_testproc_now_ms () < deadline) {
        struct pollfd pfd = { t->master, POLLIN, 0 };
        if (poll (&pfd, 1, 50) > 0 && t->len < sizeof t->screen - 1) {
            ssize_t n = read (t->master, t->screen + t->len, sizeof t->screen - 1 - t->len);
            if (n > 0)
                t->len += (size_t) n;
            else
                sc_testproc_sleep_ms (10);
        }
    }
    if (done == 0) {
        kill (t->pid, SIGKILL);
        waitpid (t->pid, &status, 0);
    }
    close (t->master);
    g_tty_pid = 0;
    return done && WIFEXITED (status) ? WEXITSTATUS (status) : -1;
}

//  ---------------------------------------------------------------------
//  Fixtures

static int
s_group_setup (void **state)
{
    (void) state;
    g_root = sc_testdir_new ("cli");
    if (!g_root)
        return -1;
    g_keys = sc_testdir_path (g_root, "keys");
    //  No configuration of the machine's user reaches the programs.
    char *xdg = sc_testdir_path (g_root, "no-config");
    setenv ("XDG_CONFIG_HOME", xdg, 1);
    free (xdg);
    const char *const users [] = { "alice", "bob", NULL };
    return sc_testproc_make_keys (g_keys, users);
}

static int
s_group_teardown (void **state)
{
    (void) state;
    sc_testproc_destroy_all ();
    sc_testdir_remove (g_root);
    free (g_root);
    free (g_keys);
    return 0;
}

static int
s_setup (void **state)
{
    (void) state;
    g_work = sc_testdir_next (g_root, &g_test_no);
    return g_work ? 0 : -1;
}

static int
s_teardown (void **state)
{
    (void) state;
    sc_testproc_destroy_all ();
    if (g_tty_pid > 0) {
        kill (g_tty_pid, SIGKILL);
        waitpid (g_tty_pid, NULL, 0);
        g_tty_pid = 0;
    }
    free (g_work);
    g_work = NULL;
    return 0;
}

//  ---------------------------------------------------------------------
//  --version

//  VERSION from the Makefile, the one place that holds it.
static char *
s_makefile_version (void)
{
    char *make = s_slurp ("Makefile");
    char *line = strstr (make, "\nVERSION ");
    assert_non_null (line);
    char *eq = strchr (line, '=');
    assert_non_null (eq);
    eq += 1 + strspn (eq + 1, " \t");
    char *version = strndup (eq, strcspn (eq, " \t\n"));
    free (make);
    assert_true (strlen (version) > 0);
    return version;
}

static void
test_version (void **state)
{
    (void) state;
    char *version = s_makefile_version ();
    const char *const names [] = { "secbroker", "secchat", "secchat-keys" };
    for (size_t i = 0; i < 3; i++) {
        char *cmd = s_printf ("'%s%s' --version", s_bin (), names [i]);
        s_sh_expect (cmd, 0);
        char *out = s_out ("out");
        char *want = s_printf ("%s %s\n", names [i], version);
        if (strcmp (out, want))
            fail_msg ("%s printed '%s', want '%s'", cmd, out, want);
        free (want);
        free (out);
        free (cmd);
    }
    //  The key script in the source tree says the same.
    s_sh_expect ("sh keys/secchat-keys --version", 0);
    char *out = s_out ("out");
    char *want = s_printf ("secchat-keys %s\n", version);
    assert_string_equal (out, want);
    free (want);
    free (out);
    free (version);
}

//  ---------------------------------------------------------------------
//  keygen, passwd, fingerprint

//  keygen with a password file: a key openssl opens with that password
//  (and no other), mode 0600, scrypt as keys/README.md says; NAME.pub is
//  its public key as openssl writes it; the fingerprint printed is the
//  key's.
static void
test_keygen_opens_with_openssl (void **state)
{
    (void) state;
    char *pass = s_work ("pass"), *dir = s_work ("k");
    s_write (pass, "correct horse battery\n");
    char *cmd = s_printf ("'%ssecchat' keygen --user dave --out '%s' --password-file '%s'",
                          s_bin (), dir, pass);
    s_sh_expect (cmd, 0);
    char *out = s_out ("out");
    char *key = sc_testdir_path (dir, "dave.key"), *pub = sc_testdir_path (dir, "dave.pub");
    assert_int_equal (s_mode (dir), 0700);
    assert_int_equal (s_mode (key), 0600);
    assert_int_equal (s_mode (pub), 0644);
    const char *const files [] = { "dave.key", "dave.pub", NULL };
    s_only_files (dir, files);

    char *check = s_printf ("openssl pkey -in '%s' -passin 'file:%s' -pubout -out '%s/check.pub'",
                            key, pass, g_work);
    s_sh_expect (check, 0);
    char *check_pub = s_work ("check.pub");
    char *a = s_slurp (check_pub), *b = s_slurp (pub);
    assert_string_equal (a, b);
    free (a);
    free (b);
    char *text = s_slurp (key);
    assert_true (s_contains (text, "-----BEGIN ENCRYPTED PRIVATE KEY-----"));
    free (text);

    char *wrong = s_work ("wrong");
    s_write (wrong, "correct horse battery staple\n");
    char *bad = s_printf ("openssl pkey -in '%s' -passin 'file:%s' -noout", key, wrong);
    assert_int_not_equal (s_sh (bad), 0);

    char *asn = s_printf ("openssl asn1parse -in '%s'", key);
    s_sh_expect (asn, 0);
    char *parsed = s_out ("out");
    assert_true (s_contains (parsed, ":scrypt"));
    assert_true (s_contains (parsed, ":aes-256-cbc"));
    assert_true (s_contains (parsed, "INTEGER           :4000\n"));

    char fpr [SC_FPR_LEN + 1];
    s_expected_fpr (pub, fpr);
    char *line = s_printf ("Fingerprint:     %s\n", fpr);
    if (!s_contains (out, line))
        fail_msg ("keygen printed:\n%s\nwithout %s", out, line);

    //  Never over an existing key: the key stays as it was.
    char *before = s_slurp (key);
    s_sh_expect (cmd, 1);
    char *err = s_out ("err");
    assert_true (s_contains (err, "exists"));
    char *after = s_slurp (key);
    assert_string_equal (before, after);
    free (before);
    free (after);
    free (err);

    free (line);
    free (parsed);
    free (asn);
    free (bad);
    free (wrong);
    free (check_pub);
    free (check);
    free (key);
    free (pub);
    free (out);
    free (cmd);
    free (dir);
    free (pass);
}

//  On a terminal the password is asked twice, with echo off; two that
//  differ are asked again.
static void
test_keygen_asks_twice_on_a_terminal (void **state)
{
    (void) state;
    char *dir = s_work ("k");
    char *bin = s_printf ("%ssecchat", s_bin ());
    const char *const argv [] = { bin, "keygen", "--user", "erin", "--out", dir, NULL };
    s_tty_t t;
    s_tty_start (&t, argv, NULL);
    s_tty_see (&t, "New password for ");
    s_tty_type (&t, "first try\r");
    s_tty_see (&t, "The same password again: ");
    s_tty_type (&t, "first trx\r");
    s_tty_see (&t, "The passwords differ");
    s_tty_see (&t, "New password for ");
    s_tty_type (&t, "s3cret words\r");
    s_tty_see (&t, "The same password again: ");
    s_tty_type (&t, "s3cret words\r");
    s_tty_see (&t, "Fingerprint:");
    assert_int_equal (s_tty_end (&t), 0);
    //  Nothing typed was echoed.
    assert_null (memmem (t.screen, t.len, "s3cret", 6));

    char *pass = s_work ("pass");
    s_write (pass, "s3cret words\n");
    char *check = s_printf ("openssl pkey -in '%s/erin.key' -passin 'file:%s' -noout", dir, pass);
    s_sh_expect (check, 0);
    free (check);
    free (pass);
    free (bin);
    free (dir);
}

//  passwd: the same key under a new password; the old one no longer
//  opens it; a wrong old password changes nothing.
static void
test_passwd_keeps_key_changes_password (void **state)
{
    (void) state;
    char *p1 = s_work ("p1"), *p2 = s_work ("p2"), *p3 = s_work ("p3");
    char *dir = s_work ("k");
    s_write (p1, "old password\n");
    s_write (p2, "new password\n");
    s_write (p3, "third password\n");
    char *cmd = s_printf ("'%ssecchat' keygen --user frank --out '%s' --password-file '%s'",
                          s_bin (), dir, p1);
    s_sh_expect (cmd, 0);
    free (cmd);
    char *key = sc_testdir_path (dir, "frank.key");
    char *old_text = s_slurp (key);

    cmd = s_printf ("'%ssecchat' passwd '%s' --password-file '%s' --new-password-file '%s'",
                    s_bin (), key, p1, p2);
    s_sh_expect (cmd, 0);
    free (cmd);
    char *new_text = s_slurp (key);
    assert_string_not_equal (old_text, new_text);
    assert_int_equal (s_mode (key), 0600);
    const char *const files [] = { "frank.key", "frank.pub", NULL };
    s_only_files (dir, files);

    //  The same public key, with the new password only.
    char *open_new = s_printf ("openssl pkey -in '%s' -passin 'file:%s' -pubout -out '%s/now.pub'",
                               key, p2, g_work);
    s_sh_expect (open_new, 0);
    char *now_path = s_work ("now.pub"), *pub_path = sc_testdir_path (dir, "frank.pub");
    char *now = s_slurp (now_path), *pub = s_slurp (pub_path);
    assert_string_equal (now, pub);
    char *open_old = s_printf ("openssl pkey -in '%s' -passin 'file:%s' -noout", key, p1);
    assert_int_not_equal (s_sh (open_old), 0);

    //  A wrong old password: refused, the file byte for byte as it was.
    cmd = s_printf ("'%ssecchat' passwd '%s' --password-file '%s' --new-password-file '%s'",
                    s_bin (), key, p1, p3);
    s_sh_expect (cmd, 1);
    char *err = s_out ("err");
    assert_true (s_contains (err, "wrong password"));
    char *still = s_slurp (key);
    assert_string_equal (still, new_text);
    s_only_files (dir, files);

    free (still);
    free (err);
    free (cmd);
    free (open_old);
    free (now);
    free (pub);
    free (now_path);
    free (pub_path);
    free (open_new);
    free (new_text);
    free (old_text);
    free (key);
    free (dir);
    free (p1);
    free (p2);
    free (p3);
}

//  fingerprint of a public key, of an encrypted private key (with its
//  password) and of secchat-keys' registry entry: the same line.
static void
test_fingerprint_files (void **state)
{
    (void) state;
    char *pub = sc_testdir_path (g_keys, "users/alice.pub");
    char *key = sc_testdir_path (g_keys, "clients/alice.key");
    char *pass = sc_testdir_path (g_keys, "clients/alice.pass");
    char fpr [SC_FPR_LEN + 1];
    s_expected_fpr (pub, fpr);
    char *want = s_printf ("%s\n", fpr);

    char *cmd = s_printf ("'%ssecchat' fingerprint '%s'", s_bin (), pub);
    s_sh_expect (cmd, 0);
    char *out = s_out ("out");
    assert_string_equal (out, want);
    free (out);
    free (cmd);
    cmd = s_printf ("'%ssecchat' fingerprint '%s' --password-file '%s'", s_bin (), key, pass);
    s_sh_expect (cmd, 0);
    out = s_out ("out");
    assert_string_equal (out, want);
    free (out);
    free (cmd);
    //  A private key with no password to be had: said, not guessed.
    cmd = s_printf ("'%ssecchat' fingerprint '%s'", s_bin (), key);
    s_sh_expect (cmd, 1);
    out = s_out ("err");
    assert_true (s_contains (out, "--password-file"));
    free (out);
    free (cmd);
    //  Not a key at all.
    cmd = s_printf ("'%ssecchat' fingerprint Makefile", s_bin ());
    s_sh_expect (cmd, 1);
    out = s_out ("err");
    assert_true (s_contains (out, "Makefile: not a public or private key"));
    free (out);
    free (cmd);
    free (want);
    free (pass);
    free (key);
    free (pub);
}

//  ---------------------------------------------------------------------
//  CONFIG/config

static void
test_config_parse (void **state)
{
    (void) state;
    char *path = s_work ("config");
    char err [512];
    //  No file: an empty configuration.
    sc_config_t *config = sc_config_load (path, err, sizeof err);
    assert_non_null (config);
    assert_null (sc_config_get (config, "endpoint"));
    sc_config_destroy (&config);

    s_write (path, "# secchat\n\n  endpoint = tcp://chat.example.org:4242  \n"
                   "user=alice\nkey = alice.key\nca = ~/ca.pem\n\tbroker-name =chat.example.org\n"
                   "bell = messages\nhistory = off\n");
    char *home = getenv ("HOME") ? strdup (getenv ("HOME")) : NULL;
    setenv ("HOME", "/home/alice", 1);
    config = sc_config_load (path, err, sizeof err);
    if (home)
        setenv ("HOME", home, 1);
    else
        unsetenv ("HOME");
    free (home);
    if (!config)
        fail_msg ("%s", err);
    assert_string_equal (sc_config_get (config, "endpoint"), "tcp://chat.example.org:4242");
    assert_string_equal (sc_config_get (config, "user"), "alice");
    char *key = s_work ("alice.key");
    assert_string_equal (sc_config_get (config, "key"), key);
    assert_string_equal (sc_config_get (config, "ca"), "/home/alice/ca.pem");
    assert_string_equal (sc_config_get (config, "broker-name"), "chat.example.org");
    assert_string_equal (sc_config_get (config, "bell"), "messages");
    assert_string_equal (sc_config_get (config, "history"), "off");
    assert_null (sc_config_get (config, "password-file"));
    sc_config_destroy (&config);
    free (key);

    static const struct { const char *text, *error; } bad [] = {
        { "user = alice\nendpont = x\n", ":2: unknown key 'endpont'" },
        { "\n\nuser alice\n", ":3: not `key = value`" },
        { "user =\n", ":1: user has no value" },
        { "user = Alice\n", ":1: user = Alice: a user name is 1 to 32" },
        { "bell = loud\n", ":1: bell = loud: bell is requests, messages or off" },
        { "history = no\n", ":1: history = no: history is on or off" },
        { "user = a\n# x\nuser = b\n", ":3: user is already set on line 1" },
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad [0]; i++) {
        s_write (path, bad [i].text);
        config = sc_config_load (path, err, sizeof err);
        assert_null (config);
        char *want = s_printf ("%s%s", path, bad [i].error);
        if (strncmp (err, want, strlen (want)))
            fail_msg ("'%s' gave '%s', want '%s...'", bad [i].text, err, want);
        free (want);
    }
    //  A directory where the file should be.
    assert_int_equal (unlink (path), 0);
    assert_int_equal (mkdir (path, 0700), 0);
    assert_null (sc_config_load (path, err, sizeof err));
    assert_true (s_contains (err, "not a regular file"));
    free (path);
}

//  XDG_CONFIG_HOME/secchat/config for the user, the broker at endpoint.
static char *
s_write_config (const char *user, const char *endpoint, const char *extra)
{
    char *xdg = s_work ("xdg");
    assert_int_equal (mkdir (xdg, 0700), 0);
    char *dir = sc_testdir_path (xdg, "secchat");
    assert_int_equal (mkdir (dir, 0700), 0);
    char *path = sc_testdir_path (dir, "config");
    char *text = s_printf ("# made by test_cli\nendpoint = %s\nuser = %s\n"
                           "key = %s/clients/%s.key\nca = %s/ca.pem\n%s",
                           endpoint, user, g_keys, user, g_keys, extra ? extra : "");
    s_write (path, text);
    free (text);
    free (path);
    free (dir);
    return xdg;
}

//  `secchat` and nothing else: the file says where and who; the key's
//  password is asked on the terminal, and /fingerprint shows what
//  `secchat fingerprint` says of the key.
static void
test_config_no_arguments (void **state)
{
    (void) state;
    char endpoint [256];
    sc_testproc_t *broker = sc_testproc_broker_new (g_keys, g_work, 0, endpoint,
                                                    sizeof endpoint);
    assert_non_null (broker);
    char *xdg = s_write_config ("alice", endpoint, "broker-name = secbroker\n");
    char *bin = s_printf ("%ssecchat", s_bin ());
    const char *const argv [] = { bin, NULL };
    s_tty_t t;
    s_tty_start (&t, argv, xdg);
    char *prompt = s_printf ("Password for %s/clients/alice.key", g_keys);
    s_tty_see (&t, prompt);
    char *pass = sc_testdir_path (g_keys, "clients/alice.pass");
    char *password = s_slurp (pass);
    password [strcspn (password, "\n")] = 0;
    s_tty_type (&t, password);
    s_tty_type (&t, "\r");
    s_tty_see (&t, "[idle]");

    char *pub = sc_testdir_path (g_keys, "users/alice.pub");
    char *cmd = s_printf ("'%s' fingerprint '%s'", bin, pub);
    s_sh_expect (cmd, 0);
    char *out = s_out ("out");
    out [strcspn (out, "\n")] = 0;
    char *shown = s_printf ("-- your key: %s", out);
    s_tty_type (&t, "/fingerprint\r");
    s_tty_see (&t, shown);
    s_tty_type (&t, "/quit\r");
    assert_int_equal (s_tty_end (&t), 0);

    free (shown);
    free (out);
    free (cmd);
    free (pub);
    sc_wipe (password, strlen (password));
    free (password);
    free (pass);
    free (prompt);
    free (bin);
    free (xdg);
    sc_testproc_destroy (&broker);
}

//  An option on the command line wins over the file: the file's
//  endpoint has no broker, --endpoint has one.
static void
test_config_overridden_by_option (void **state)
{
    (void) state;
    char endpoint [256];
    sc_testproc_t *broker = sc_testproc_broker_new (g_keys, g_work, 0, endpoint,
                                                    sizeof endpoint);
    assert_non_null (broker);
    char *xdg = s_write_config ("bob", "tcp://127.0.0.1:1", NULL);
    char *config_dir = sc_testdir_path (xdg, "secchat");
    char *bin = s_printf ("%ssecchat", s_bin ());
    char *pass = sc_testdir_path (g_keys, "clients/bob.pass");
    char *log = s_work ("bob.log");

    //  The file alone: its endpoint is tried (and nobody is there).
    const char *const dead [] = { bin, "--config-dir", config_dir, "--password-file", pass,
                                  "--timeout", "1", NULL };
    sc_testproc_t *p = sc_testproc_new ("bob-dead", dead, log);
    assert_non_null (p);
    assert_int_equal (sc_testproc_close_input (p), 0);
    assert_int_equal (sc_testproc_wait (p, T_EXIT), 1);
    sc_testproc_destroy (&p);
    char *text = s_slurp (log);
    assert_true (s_contains (text, "tcp://127.0.0.1:1"));
    free (text);

    //  --endpoint overrides it; user, key and CA still come from the file.
    const char *const live [] = { bin, "--config-dir", config_dir, "--password-file", pass,
                                  "--endpoint", endpoint, NULL };
    p = sc_testproc_new ("bob", live, log);
    assert_non_null (p);
    assert_int_equal (sc_testproc_expect (p, "ready bob", T_LINE), 0);
    assert_int_equal (sc_testproc_send (p, "/quit"), 0);
    assert_int_equal (sc_testproc_expect (p, "bye", T_LINE), 0);
    assert_int_equal (sc_testproc_wait (p, T_EXIT), 0);
    sc_testproc_destroy (&p);

    free (log);
    free (pass);
    free (bin);
    free (config_dir);
    free (xdg);
    sc_testproc_destroy (&broker);
}

//  A bad line stops secchat before anything else, naming file and line.
static void
test_config_bad_line (void **state)
{
    (void) state;
    char *xdg = s_write_config ("alice", "tcp://127.0.0.1:1", "bell = sometimes\n");
    char *cmd = s_printf ("XDG_CONFIG_HOME='%s' '%ssecchat' --batch", xdg, s_bin ());
    s_sh_expect (cmd, 2);
    char *err = s_out ("err");
    char *want = s_printf ("secchat: %s/secchat/config:6: bell = sometimes: "
                           "bell is requests, messages or off\n", xdg);
    assert_string_equal (err, want);
    free (want);
    free (err);
    //  --help says where the file is.
    free (cmd);
    cmd = s_printf ("XDG_CONFIG_HOME='%s' '%ssecchat' --help", xdg, s_bin ());
    s_sh_expect (cmd, 0);
    char *out = s_out ("out");
    char *where = s_printf ("the file read is %s/secchat/config", xdg);
    assert_true (s_contains (out, where));
    free (where);
    free (out);
    free (cmd);
    free (xdg);
}

//  ---------------------------------------------------------------------

#define T(test) cmocka_unit_test_setup_teardown (test, s_setup, s_teardown)

int
main (void)
{
    const struct CMUnitTest tests [] = {
        T (test_version),
        T (test_keygen_opens_with_openssl),
        T (test_keygen_asks_twice_on_a_terminal),
        T (test_passwd_keeps_key_changes_password),
        T (test_fingerprint_files),
        T (test_config_parse),
        T (test_config_no_arguments),
        T (test_config_overridden_by_option),
        T (test_config_bad_line),
    };
    return cmocka_run_group_tests_name ("cli", tests, s_group_setup, s_group_teardown);
}
