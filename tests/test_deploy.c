/*  test_deploy: what deploy/ and `make install` ship, checked with the
    tools that judge them.

    - `make install DESTDIR=... PREFIX=/usr` lays out every file with its
      mode, README.md and each Markdown file of docs/ as they are under
      share/doc/secchat, and `make uninstall` removes them all.
    - The manual pages lint clean (mandoc -T lint) and render.
    - The systemd unit passes `systemd-analyze verify` (a copy of the
      installed unit whose ExecStart points at the built broker, with the
      installed manual pages on MANPATH so that Documentation= resolves)
      and `systemd-analyze security --offline=true` rates it OK or better;
      the unit keeps the settings the deployment promises.
    - The unit's seccomp sandbox, built from the unit file and loaded by
      hand (no systemd runs here): the broker serves a chat and a reload
      under it.
    - Enrolment under the unit: its folders, credential and user
      emulated from the unit file (uid 65534 for the dynamic user, root
      running `secbroker invite`), a real `secchat enrol` registers and
      logs in a new user, and a key copied in by hand works after a
      reload. Needs root, as CI runs: fails without it.
    - The compose file validates with `docker-compose config`, and names
      the same driver, scripts and arguments that the test runs; the
      Dockerfile's build stage, replayed without Docker on exactly the
      files it copies, builds and installs; its run-time stage installs
      the packages that own the libraries the binaries need.
    - The compose demo's conversation: bin/secbroker on loopback, keys by
      keys/secchat-keys, and alice, bob and carol played by
      deploy/scripts/run-client.sh from their command files.
    - SIGHUP: a user added while alice is logged in can log in after the
      reload, and alice's session goes on.
    - sc_notify, and the broker's READY/RELOADING/STOPPING datagrams.

    A tool that is missing fails its test with the package to install
    (`make deps` installs them all). Every command runs under a time
    limit. Run from the repository root with SC_BIN_DIR set, as `make
    check` does; SC_KEEP_TMP=1 keeps the temporary directory.

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at https://mozilla.org/MPL/2.0/.
*/
#include "sc_testproc.h"
#include "sc_notify.h"

#include <dlfcn.h>
#include <errno.h>
#include <fnmatch.h>
#include <glob.h>
#include <grp.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <unistd.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#define T_TOOL      sc_testproc_timeout (60000)    //  one tool run
#define T_BUILD     sc_testproc_timeout (600000)   //  make, which may compile
#define T_LINE      sc_testproc_timeout (10000)    //  one client line
#define T_EXIT      sc_testproc_timeout (10000)
#define T_DEMO      sc_testproc_timeout (90000)    //  the whole conversation

#define UNIT        "deploy/secbroker.service"
#define COMPOSE     "deploy/docker-compose.yml"
#define COMPOSE_CLUSTER "deploy/docker-compose.cluster.yml"
#define DOCKERFILE  "deploy/Dockerfile"
#define DRIVER      "deploy/scripts/run-client.sh"

static char *g_root;            //  this program's temporary directory
static char *g_work;            //  the current test's directory
static int g_test_no;

//  ---------------------------------------------------------------------
//  Helpers

static char *
s_printf (const char *format, ...) __attribute__ ((format (printf, 1, 2)));

static char *
s_printf (const char *format, ...)
{
    va_list args;
    va_start (args, format);
    int len = vsnprintf (NULL, 0, format, args);
    va_end (args);
    assert_true (len >= 0);
    char *text = malloc ((size_t) len + 1);
    assert_non_null (text);
    va_start (args, format);
    vsnprintf (text, (size_t) len + 1, format, args);
    va_end (args);
    return text;
}

static bool
s_contains (const char *text, const char *part)
{
    return text && strstr (text, part) != NULL;
}

//  Fails the test unless program is on PATH, naming the package.
static void
s_require_tool (const char *program, const char *package)
{
    const char *path = getenv ("PATH");
    char *copy = s_printf ("%s", path ? path : "/usr/bin:/bin");
    bool found = false;
    for (char *save = NULL, *dir = strtok_r (copy, ":", &save); dir && !found;
         dir = strtok_r (NULL, ":", &save)) {
        char *full = s_printf ("%s/%s", dir, program);
        found = access (full, X_OK) == 0;
        free (full);
    }
    free (copy);
    if (!found) {
        print_error ("%s is not installed: this test needs it. Run `make deps` "
                     "(as root) or apt-get install %s\n", program, package);
        fail ();
    }
}

//  Runs argv with stdout and stderr into *output (malloc'd, lines joined
//  with '\n'; NULL not to keep it), stdin closed, for at most timeout_ms:
//  its exit status, SC_TESTPROC_SIGNALED + signal, or SC_TESTPROC_TIMEOUT
//  (after killing it).
static int
s_run (const char *const argv [], int timeout_ms, char **output)
{
    const char *args [64] = { "sh", "-c", "exec \"$@\" 2>&1", "sh" };
    size_t n = 4;
    for (size_t i = 0; argv [i]; i++) {
        assert_true (n < 63);
        args [n++] = argv [i];
    }
    args [n] = NULL;
    sc_testproc_t *proc = sc_testproc_new (argv [0], args, NULL);
    assert_non_null (proc);
    sc_testproc_close_input (proc);

    size_t len = 0, cap = 256;
    char *text = malloc (cap);
    assert_non_null (text);
    text [0] = '\0';
    int64_t deadline = sc_testproc_now_ms () + timeout_ms;
    const char *line;
    int rc;
    do {
        int64_t left = deadline - sc_testproc_now_ms ();
        rc = sc_testproc_read_line (proc, left > 0 ? (int) left : 0, &line);
        if (rc == 1) {
            size_t add = strlen (line) + 1;
            while (len + add + 1 > cap)
                cap *= 2;
            text = realloc (text, cap);
            assert_non_null (text);
            memcpy (text + len, line, add - 1);
            len += add;
            text [len - 1] = '\n';
            text [len] = '\0';
        }
    } while (rc == 1);
    int64_t left = deadline - sc_testproc_now_ms ();
    int status = rc == 0 ? SC_TESTPROC_TIMEOUT
                         : sc_testproc_wait (proc, left > 0 ? (int) left : 0);
    if (status == SC_TESTPROC_TIMEOUT) {
        print_error ("%s: no end within %d ms: killed\n", argv [0], timeout_ms);
        sc_testproc_kill (proc);
    }
    sc_testproc_destroy (&proc);
    if (output)
        *output = text;
    else
        free (text);
    return status;
}

//  s_run that must exit 0: its output (malloc'd), or a failed test that
//  shows the command and what it said.
static char *
s_run_ok (const char *const argv [], int timeout_ms)
{
    char *output = NULL;
    int status = s_run (argv, timeout_ms, &output);
    if (status != 0) {
        print_error ("command failed (status %d):", status);
        for (size_t i = 0; argv [i]; i++)
            print_error (" %s", argv [i]);
        print_error ("\n%s", output);
        free (output);
        fail ();
    }
    return output;
}

//  `make TARGET DESTDIR=destdir PREFIX=prefix`, in a clean environment
//  (not the jobserver of the `make check` that runs us).
static void
s_make (const char *target, const char *destdir, const char *prefix)
{
    char *d = s_printf ("DESTDIR=%s", destdir);
    char *p = s_printf ("PREFIX=%s", prefix);
    const char *argv [] = { "env", "-u", "MAKEFLAGS", "-u", "MFLAGS", "-u", "MAKELEVEL",
                            "make", "--no-print-directory", target, d, p, NULL };
    free (s_run_ok (argv, T_BUILD));
    free (d);
    free (p);
}

static void
s_write_file (const char *path, const char *text)
{
    assert_int_equal (sc_testdir_write (path, text), 0);
}

static char *
s_read_file (const char *path)
{
    char *text = sc_testdir_slurp (path, NULL);
    if (!text) {
        print_error ("cannot read %s\n", path);
        fail ();
    }
    return text;
}

//  text with every `from` replaced by `to`, malloc'd; fails unless
//  `from` occurs at least once.
static char *
s_replace (const char *text, const char *from, const char *to)
{
    size_t from_len = strlen (from), to_len = strlen (to), count = 0;
    for (const char *p = strstr (text, from); p; p = strstr (p + from_len, from))
        count++;
    if (count == 0) {
        print_error ("'%s' not found where it was expected\n", from);
        fail ();
    }
    char *out = malloc (strlen (text) + count * to_len + 1);
    assert_non_null (out);
    char *o = out;
    const char *p = text;
    for (const char *hit = strstr (p, from); hit; hit = strstr (p, from)) {
        memcpy (o, p, (size_t) (hit - p));
        o += hit - p;
        memcpy (o, to, to_len);
        o += to_len;
        p = hit + from_len;
    }
    strcpy (o, p);
    return out;
}

//  True when some line of text equals line.
static bool
s_has_line (const char *text, const char *line)
{
    size_t len = strlen (line);
    for (const char *p = text; p && *p; ) {
        const char *end = strchr (p, '\n');
        size_t n = end ? (size_t) (end - p) : strlen (p);
        if (n == len && memcmp (p, line, len) == 0)
            return true;
        p = end ? end + 1 : NULL;
    }
    return false;
}

//  The absolute path of the built broker.
static char *
s_broker_path (void)
{
    char *rel = sc_testdir_path (sc_testproc_bin_dir (), "secbroker");
    char abs [PATH_MAX];
    if (!realpath (rel, abs)) {
        print_error ("%s is missing: build first\n", rel);
        free (rel);
        fail ();
    }
    free (rel);
    return s_printf ("%s", abs);
}

//  ---------------------------------------------------------------------
//  Fixtures

static int
s_group_setup (void **state)
{
    (void) state;
    g_root = sc_testdir_new ("deploy");
    return g_root ? 0 : -1;
}

static int
s_group_teardown (void **state)
{
    (void) state;
    sc_testproc_destroy_all ();
    sc_testdir_remove_unless_kept (g_root, "test_deploy");
    free (g_root);
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
    unsetenv ("NOTIFY_SOCKET");
    free (g_work);
    g_work = NULL;
    return 0;
}

//  ---------------------------------------------------------------------
//  make install / uninstall

typedef struct {
    const char *path;           //  under DESTDIR, with PREFIX=/usr
    mode_t mode;
} s_installed_t;

static const s_installed_t s_layout [] = {
    { "usr/bin/secbroker", 0755 },
    { "usr/bin/secchat", 0755 },
    { "usr/bin/secchat-keys", 0755 },
    { "usr/share/man/man1/secchat.1", 0644 },
    { "usr/share/man/man1/secchat-keys.1", 0644 },
    { "usr/share/man/man8/secbroker.8", 0644 },
    { "usr/lib/systemd/system/secbroker.service", 0644 },
};
#define S_LAYOUT_SIZE (sizeof s_layout / sizeof s_layout [0])

//  The documents `make install` puts in usr/share/doc/secchat: README.md
//  and every docs/*.md of the tree, whatever they are (globfree later).
static void
s_docs (glob_t *docs)
{
    assert_int_equal (glob ("docs/*.md", 0, NULL, docs), 0);
    assert_int_equal (glob ("README.md", GLOB_APPEND, NULL, docs), 0);
    assert_true (docs->gl_pathc >= 4);
}

//  Each document installed in destdir, mode 0644, byte for byte; or
//  (installed false) none left.
static void
s_check_docs (const char *destdir, bool installed)
{
    glob_t docs;
    s_docs (&docs);
    for (size_t i = 0; i < docs.gl_pathc; i++) {
        const char *base = strrchr (docs.gl_pathv [i], '/');
        base = base ? base + 1 : docs.gl_pathv [i];
        char *rel = s_printf ("usr/share/doc/secchat/%s", base);
        char *path = sc_testdir_path (destdir, rel);
        struct stat st;
        if (!installed) {
            if (lstat (path, &st) == 0) {
                print_error ("make uninstall left %s\n", path);
                fail ();
            }
        }
        else {
            if (lstat (path, &st) || !S_ISREG (st.st_mode) || (st.st_mode & 07777) != 0644) {
                print_error ("make install did not install %s as a file of mode 0644\n",
                             path);
                fail ();
            }
            char *want = s_read_file (docs.gl_pathv [i]);
            char *got = s_read_file (path);
            if (strcmp (want, got) != 0) {
                print_error ("%s differs from %s\n", path, docs.gl_pathv [i]);
                fail ();
            }
            free (want);
            free (got);
        }
        free (path);
        free (rel);
    }
    globfree (&docs);
}

//  Installs into WORK/NAME with PREFIX=/usr: the DESTDIR, malloc'd.
static char *
s_install (const char *name)
{
    char *destdir = sc_testdir_path (g_work, name);
    s_make ("install", destdir, "/usr");
    return destdir;
}

static void
test_install_layout (void **state)
{
    (void) state;
    char *destdir = s_install ("root");
    for (size_t i = 0; i < S_LAYOUT_SIZE; i++) {
        char *path = sc_testdir_path (destdir, s_layout [i].path);
        struct stat st;
        if (lstat (path, &st)) {
            print_error ("make install did not install %s\n", path);
            fail ();
        }
        assert_true (S_ISREG (st.st_mode));
        if ((st.st_mode & 07777) != s_layout [i].mode) {
            print_error ("%s: mode %04o, expected %04o\n", path,
                         (unsigned) (st.st_mode & 07777), (unsigned) s_layout [i].mode);
            fail ();
        }
        free (path);
    }
    s_check_docs (destdir, true);
    //  Nothing else: no stray temporary file.
    const char *find [] = { "find", destdir, "-type", "f", NULL };
    char *files = s_run_ok (find, T_TOOL);
    size_t lines = 0;
    for (const char *p = files; (p = strchr (p, '\n')); p++)
        lines++;
    glob_t docs;
    s_docs (&docs);
    size_t ndocs = docs.gl_pathc;
    globfree (&docs);
    if (lines != S_LAYOUT_SIZE + ndocs) {
        print_error ("installed files:\n%s", files);
        fail ();
    }
    free (files);

    //  The unit starts the installed broker, and the binaries run.
    char *unit_path = sc_testdir_path (destdir, "usr/lib/systemd/system/secbroker.service");
    char *unit = s_read_file (unit_path);
    assert_true (s_has_line (unit, "ExecStart=/usr/bin/secbroker --endpoint tcp://*:4242 "
                                   "--cert /etc/secbroker/broker.crt --key %d/broker.key "
                                   "--users /var/lib/secbroker/users"));
    assert_true (s_has_line (unit, "ExecStartPre=/usr/bin/secbroker --check "
                                   "--cert /etc/secbroker/broker.crt --key %d/broker.key "
                                   "--users /var/lib/secbroker/users"));
    assert_false (s_contains (unit, "/usr/local/"));
    free (unit);
    free (unit_path);
    char *broker = sc_testdir_path (destdir, "usr/bin/secbroker");
    const char *help [] = { broker, "--help", NULL };
    char *usage = s_run_ok (help, T_TOOL);
    assert_true (s_contains (usage, "usage: secbroker"));
    free (usage);
    free (broker);
    char *keys = sc_testdir_path (destdir, "usr/bin/secchat-keys");
    const char *keys_help [] = { keys, "--help", NULL };
    usage = s_run_ok (keys_help, T_TOOL);
    assert_true (s_contains (usage, "--replace-ca"));
    free (usage);
    //  The installed script says the version the binaries say.
    const char *keys_version [] = { keys, "--version", NULL };
    char *version = s_run_ok (keys_version, T_TOOL);
    char *server = sc_testdir_path (destdir, "usr/bin/secbroker");
    const char *server_version [] = { server, "--version", NULL };
    char *expected = s_run_ok (server_version, T_TOOL);
    assert_true (strncmp (version, "secchat-keys ", 13) == 0);
    assert_true (strncmp (expected, "secbroker ", 10) == 0);
    assert_string_equal (version + 13, expected + 10);
    free (expected);
    free (server);
    free (version);
    free (keys);

    s_make ("uninstall", destdir, "/usr");
    s_check_docs (destdir, false);
    char *docdir = sc_testdir_path (destdir, "usr/share/doc/secchat");
    assert_int_equal (access (docdir, F_OK), -1);
    free (docdir);
    for (size_t i = 0; i < S_LAYOUT_SIZE; i++) {
        char *path = sc_testdir_path (destdir, s_layout [i].path);
        struct stat st;
        if (lstat (path, &st) == 0) {
            print_error ("make uninstall left %s\n", path);
            fail ();
        }
        free (path);
    }
    free (destdir);
}

//  ---------------------------------------------------------------------
//  Manual pages

static void
s_lint_page (const char *page, const char *name_line)
{
    //  Errors and warnings: none at all.
    const char *strict [] = { "mandoc", "-T", "lint", "-W", "warning", page, NULL };
    char *out = s_run_ok (strict, T_TOOL);
    if (*out) {
        print_error ("mandoc -T lint %s:\n%s", page, out);
        fail ();
    }
    free (out);
    //  Style too, except what depends on which other manuals this
    //  machine has installed (secchat(1) and secbroker(8) point at each
    //  other, and neither is installed here).
    const char *style [] = { "mandoc", "-T", "lint", page, NULL };
    int status = s_run (style, T_TOOL, &out);
    for (char *save = NULL, *line = strtok_r (out, "\n", &save); line;
         line = strtok_r (NULL, "\n", &save))
        if (!s_contains (line, "referenced manual not found")
        &&  !s_contains (line, "outdated mandoc.db")) {
            print_error ("mandoc -T lint %s (status %d): %s\n", page, status, line);
            fail ();
        }
    free (out);
    //  man(1) renders it (through groff), with its name line.
    const char *render [] = { "env", "MANWIDTH=80", "man", "-l", page, NULL };
    out = s_run_ok (render, T_TOOL);
    if (!s_contains (out, name_line) || !s_contains (out, "SYNOPSIS")) {
        print_error ("%s renders without '%s':\n%s", page, name_line, out);
        fail ();
    }
    free (out);
}

static void
test_manpages (void **state)
{
    (void) state;
    s_require_tool ("mandoc", "mandoc");
    s_require_tool ("man", "man-db");
    s_lint_page ("deploy/secchat.1", "end-to-end encrypted one-to-one chat in the terminal");
    s_lint_page ("deploy/secbroker.8", "relay for secchat, the end-to-end encrypted chat");
    s_lint_page ("deploy/secchat-keys.1", "make the CA, the broker certificate and user keys");
    //  The lint can fail: a broken copy does.
    char *bad = sc_testdir_path (g_work, "bad.1");
    s_write_file (bad, ".Dd November 23, 2025\n.Dt BAD 1\n.Os\n.Sh NAME\n.Nm bad\n"
                       ".Sh DESCRIPTION\n.Bl -tag\n.It x\n");
    const char *lint [] = { "mandoc", "-T", "lint", "-W", "warning", bad, NULL };
    assert_int_not_equal (s_run (lint, T_TOOL, NULL), 0);
    free (bad);
}

//  ---------------------------------------------------------------------
//  The systemd unit

//  The installed unit, with ExecStart on the built broker: a path that
//  exists here. Its path, malloc'd; *destdir_p gets the DESTDIR.
static char *
s_unit_for_verify (char **destdir_p)
{
    char *destdir = s_install ("root");
    char *installed = sc_testdir_path (destdir, "usr/lib/systemd/system/secbroker.service");
    char *unit = s_read_file (installed);
    char *broker = s_broker_path ();
    char *exec = s_printf ("ExecStart=%s ", broker);
    char *start = s_replace (unit, "ExecStart=/usr/bin/secbroker ", exec);
    char *exec_pre = s_printf ("ExecStartPre=%s ", broker);
    char *local = s_replace (start, "ExecStartPre=/usr/bin/secbroker ", exec_pre);
    free (exec_pre);
    free (start);
    char *dir = sc_testdir_path (g_work, "unit");
    assert_int_equal (mkdir (dir, 0700), 0);
    char *path = sc_testdir_path (dir, "secbroker.service");
    s_write_file (path, local);
    free (dir);
    free (local);
    free (exec);
    free (broker);
    free (unit);
    free (installed);
    *destdir_p = destdir;
    return path;
}

//  systemd-analyze verify with the installed pages on MANPATH: its status
//  and output.
static int
s_verify (const char *unit, const char *destdir, char **output)
{
    char *manpath = s_printf ("MANPATH=%s/usr/share/man", destdir);
    const char *argv [] = { "env", manpath, "systemd-analyze", "verify", "--man=yes",
                            unit, NULL };
    int status = s_run (argv, T_TOOL, output);
    free (manpath);
    return status;
}

static void
test_unit_verify (void **state)
{
    (void) state;
    s_require_tool ("systemd-analyze", "systemd");
    s_require_tool ("man", "man-db");
    char *destdir;
    char *unit = s_unit_for_verify (&destdir);
    char *out;
    int status = s_verify (unit, destdir, &out);
    //  verify reports what it ignores (an unknown key, a bad value) on
    //  stderr but still exits 0: silence is the pass.
    if (status != 0 || *out) {
        print_error ("systemd-analyze verify %s: status %d\n%s", unit, status, out);
        fail ();
    }
    free (out);

    //  And it does complain about a broken copy.
    char *text = s_read_file (unit);
    char *broken = s_replace (text, "\nType=notify\n", "\nType=notify\nNoSuchSetting=1\n");
    char *bad = sc_testdir_path (g_work, "unit/secbroker-bad.service");
    s_write_file (bad, broken);
    s_verify (bad, destdir, &out);
    if (!s_contains (out, "NoSuchSetting")) {
        print_error ("systemd-analyze verify did not notice an unknown key:\n%s", out);
        fail ();
    }
    free (out);
    free (bad);
    free (broken);
    free (text);
    free (unit);
    free (destdir);
}

static void
test_unit_security (void **state)
{
    (void) state;
    s_require_tool ("systemd-analyze", "systemd");
    char *destdir;
    char *unit = s_unit_for_verify (&destdir);
    const char *argv [] = { "systemd-analyze", "security", "--offline=true", "--no-pager",
                            unit, NULL };
    char *out = s_run_ok (argv, T_TOOL);
    const char *tag = "Overall exposure level for secbroker.service: ";
    const char *at = strstr (out, tag);
    if (!at) {
        print_error ("no overall exposure level in:\n%s", out);
        fail ();
    }
    at += strlen (tag);
    char *end = NULL;
    double exposure = strtod (at, &end);
    assert_true (end != at);
    char word [16] = "";
    sscanf (end, " %15[A-Z]", word);
    fprintf (stderr, "test_deploy: systemd-analyze security: exposure %.1f %s\n",
             exposure, word);
    if (exposure > 4.9 || (strcmp (word, "OK") && strcmp (word, "SAFE")
                           && strcmp (word, "PERFECT"))) {
        print_error ("exposure %.1f %s: not OK or better:\n%s", exposure, word, out);
        fail ();
    }
    free (out);
    free (unit);
    free (destdir);
}

static void
test_unit_settings (void **state)
{
    (void) state;
    char *unit = s_read_file (UNIT);
    static const char *const lines [] = {
        "Type=notify",
        "NotifyAccess=main",
        "ExecReload=/bin/kill -HUP $MAINPID",
        "Restart=on-failure",
        "LoadCredential=broker.key:/etc/secbroker/broker.key",
        "DynamicUser=yes",
        "CapabilityBoundingSet=",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "StateDirectory=secbroker/users",
        "ProtectHome=yes",
        "PrivateTmp=yes",
        "PrivateDevices=yes",
        "RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX AF_NETLINK",
        "SystemCallFilter=@system-service",
        "SystemCallArchitectures=native",
        "WantedBy=multi-user.target",
    };
    for (size_t i = 0; i < sizeof lines / sizeof lines [0]; i++)
        if (!s_has_line (unit, lines [i])) {
            print_error ("%s lacks the line '%s'\n", UNIT, lines [i]);
            fail ();
        }
    //  The key comes as a credential, never as a path into /etc that the
    //  service user would need to read, nor as anything secret.
    assert_true (s_contains (unit, "--key %d/broker.key "));
    assert_false (s_contains (unit, "--key /etc"));
    assert_false (s_contains (unit, "pass"));
    free (unit);
}

//  ---------------------------------------------------------------------
//  Compose file and Dockerfile

static void
test_compose_config (void **state)
{
    (void) state;
    s_require_tool ("docker-compose", "docker-compose");
    const char *quiet [] = { "docker-compose", "-f", COMPOSE, "config", "-q", NULL };
    char *out = s_run_ok (quiet, T_TOOL);
    free (out);
    const char *services [] = { "docker-compose", "-f", COMPOSE, "config", "--services",
                                NULL };
    out = s_run_ok (services, T_TOOL);
    static const char *const names [] = { "keys", "broker", "alice", "bob", "carol" };
    for (size_t i = 0; i < 5; i++)
        if (!s_has_line (out, names [i])) {
            print_error ("no service %s in:\n%s", names [i], out);
            fail ();
        }
    free (out);

    //  The services run what test_compose_conversation runs.
    const char *config [] = { "docker-compose", "-f", COMPOSE, "config", NULL };
    out = s_run_ok (config, T_TOOL);
    static const char *const users [] = { "alice", "bob", "carol" };
    for (size_t i = 0; i < 3; i++) {
        char *command = s_printf ("    - sh\n    - /usr/local/share/secchat/scripts/run-client.sh\n"
                                  "    - %s\n    - tcp://broker:4242\n    - /keys\n", users [i]);
        if (!s_contains (out, command)) {
            print_error ("the %s service does not run:\n%s\nin:\n%s", users [i], command, out);
            fail ();
        }
        free (command);
    }
    assert_true (s_contains (out, "    - secchat-keys\n    - /keys\n    - alice\n"
                                  "    - bob\n    - carol\n    - dave\n    - erin\n"));
    assert_true (s_contains (out, "condition: service_completed_successfully"));
    //  The clients wait for a healthy broker, whose health is its answer
    //  to the probe; the other services do not run the image's probe.
    //  The broker's port is published on the host's loopback.
    const char *broker = strstr (out, "\n  broker:\n");
    assert_non_null (broker);
    const char *broker_end = strstr (broker + 1, "\n  carol:\n");
    assert_non_null (broker_end);
    char *broker_text = s_printf ("%.*s", (int) (broker_end - broker), broker);
    assert_true (s_contains (broker_text, "    healthcheck:\n"));
    assert_true (s_contains (broker_text, "      test:\n      - CMD\n      - secbroker\n"
                                          "      - --probe\n      - tcp://127.0.0.1:4242\n"));
    assert_true (s_contains (broker_text, "    ports:\n    - 127.0.0.1:4242:4242/tcp\n"));
    assert_true (s_contains (broker_text, "    - tcp://*:4242\n"));
    assert_false (s_contains (broker_text, "- NONE\n"));
    free (broker_text);
    size_t healthy = 0, disabled = 0;
    for (const char *p = out; (p = strstr (p, "condition: service_healthy\n")); p++)
        healthy++;
    //  (`disable: true`, as docker-compose 1.29 renders it)
    for (const char *p = out; (p = strstr (p, "    healthcheck:\n      test:\n      - NONE\n"));
         p++)
        disabled++;
    assert_int_equal (healthy, 3);          //  alice, bob, carol
    assert_int_equal (disabled, 4);         //  and keys
    free (out);

    //  The validation can fail: an unknown option does.
    char *yml = s_read_file (COMPOSE);
    char *broken = s_replace (yml, "\n  broker:\n", "\n  broker:\n    no_such_option: 1\n");
    char *dir = sc_testdir_path (g_work, "deploy");
    assert_int_equal (mkdir (dir, 0700), 0);
    char *bad = sc_testdir_path (dir, "docker-compose.yml");
    s_write_file (bad, broken);
    const char *check [] = { "docker-compose", "-f", bad, "config", "-q", NULL };
    int status = s_run (check, T_TOOL, &out);
    if (status == 0) {
        print_error ("docker-compose config accepted an unknown option:\n%s", out);
        fail ();
    }
    free (out);
    free (bad);
    free (dir);
    free (broken);
    free (yml);
}

//  The cluster demo: three NATS servers routed to each other, two
//  secbrokers as nodes of one cluster, the demo's scripted users spread
//  over both.
static void
test_compose_cluster_config (void **state)
{
    (void) state;
    s_require_tool ("docker-compose", "docker-compose");
    const char *quiet [] = { "docker-compose", "-f", COMPOSE_CLUSTER, "config", "-q", NULL };
    char *out = s_run_ok (quiet, T_TOOL);
    free (out);
    const char *services [] = { "docker-compose", "-f", COMPOSE_CLUSTER, "config",
                                "--services", NULL };
    out = s_run_ok (services, T_TOOL);
    static const char *const names [] = { "keys", "nats1", "nats2", "nats3", "broker1",
                                          "broker2", "alice", "bob", "carol" };
    for (size_t i = 0; i < sizeof names / sizeof names [0]; i++)
        if (!s_has_line (out, names [i])) {
            print_error ("no service %s in:\n%s", names [i], out);
            fail ();
        }
    free (out);
    const char *config [] = { "docker-compose", "-f", COMPOSE_CLUSTER, "config", NULL };
    out = s_run_ok (config, T_TOOL);
    assert_non_null (out);
    //  each broker a node of the cluster, on all three servers
    static const char *const nodes [] = {
        "    - --cluster\n    - nats://nats1:4222,nats://nats2:4222,nats://nats3:4222\n"
        "    - --node\n    - b1\n",
        "    - --cluster\n    - nats://nats2:4222,nats://nats3:4222,nats://nats1:4222\n"
        "    - --node\n    - b2\n",
    };
    for (size_t i = 0; i < 2; i++)
        if (!s_contains (out, nodes [i])) {
            print_error ("no broker runs:\n%s\nin:\n%s", nodes [i], out ? out : "");
            fail ();
        }
    //  the NATS servers routed to each other, in one cluster, with
    //  JetStream (the brokers' buckets of invitations and users)
    for (int i = 1; i <= 3; i++) {
        char *name = s_printf ("    - --name\n    - nats%d\n    - --cluster_name\n"
                               "    - secchat\n", i);
        assert_true (s_contains (out, name));
        free (name);
    }
    const char *js = "    - --jetstream\n    - --store_dir\n    - /data\n";
    const char *at = out;
    int servers = 0;
    while ((at = strstr (at, js)) != NULL) {
        servers++;
        at += strlen (js);
    }
    if (servers != 3) {
        print_error ("%d NATS servers run with JetStream, not 3, in:\n%s", servers, out);
        fail ();
    }
    //  the users spread over both nodes, with the demo's driver
    static const char *const users [][2] = { { "alice", "broker1" }, { "bob", "broker2" },
                                             { "carol", "broker1" } };
    for (size_t i = 0; i < 3; i++) {
        char *command = s_printf ("    - sh\n    - /usr/local/share/secchat/scripts/run-client.sh\n"
                                  "    - %s\n    - tcp://%s:4242\n    - /keys\n",
                                  users [i][0], users [i][1]);
        if (!s_contains (out, command)) {
            print_error ("the %s service does not run:\n%s\nin:\n%s", users [i][0], command,
                         out);
            fail ();
        }
        free (command);
    }
    free (out);
}

//  The Dockerfile's COPY instructions of one stage (0 or 1), as
//  malloc'd lines "SRC... DEST" (without the --from ones).
static size_t
s_docker_copies (const char *dockerfile, int stage, char *copies [], size_t max)
{
    size_t n = 0;
    int current = -1;
    char *text = s_printf ("%s", dockerfile);
    for (char *save = NULL, *line = strtok_r (text, "\n", &save); line;
         line = strtok_r (NULL, "\n", &save)) {
        if (strncmp (line, "FROM ", 5) == 0)
            current++;
        else
        if (current == stage && strncmp (line, "COPY ", 5) == 0
        &&  strncmp (line, "COPY --from", 11) != 0) {
            assert_true (n < max);
            copies [n++] = s_printf ("%s", line + 5);
        }
    }
    free (text);
    return n;
}

static void
test_dockerfile (void **state)
{
    (void) state;
    char *docker = s_read_file (DOCKERFILE);
    //  Debian bookworm, two stages, and the last USER is not root.
    size_t froms = 0;
    const char *user = NULL;
    for (const char *p = docker; (p = strstr (p, "\n")); p++) {
        if (strncmp (p + 1, "FROM ", 5) == 0) {
            froms++;
            assert_true (strncmp (p + 6, "debian:bookworm", 15) == 0);
        }
        if (strncmp (p + 1, "USER ", 5) == 0)
            user = p + 6;
    }
    assert_int_equal (froms, 2);
    assert_non_null (user);
    assert_true (strncmp (user, "root", 4) != 0 && strncmp (user, "0\n", 2) != 0);
    assert_true (s_contains (docker, "RUN make build \\\n && make install DESTDIR=/out "
                                     "PREFIX=/usr/local\n"));
    assert_true (s_contains (docker, "COPY deploy/scripts/ "
                                     "/out/usr/local/share/secchat/scripts/\n"));
    //  Healthy while the broker of its default command answers the probe
    //  on its port.
    assert_true (s_contains (docker, "\nEXPOSE 4242\n"));
    assert_true (s_contains (docker, "CMD [\"secbroker\", \"--endpoint\", \"tcp://*:4242\""));
    assert_true (s_contains (docker, "\nHEALTHCHECK --interval=10s --timeout=5s "
                                     "--start-period=10s --retries=3 \\\n"
                                     "    CMD [\"secbroker\", \"--probe\", "
                                     "\"tcp://127.0.0.1:4242\"]\n"));

    //  Replay the build stage without Docker: a context holding only what
    //  it copies, then its two make commands.
    char *copies [32];
    size_t count = s_docker_copies (docker, 0, copies, 32);
    assert_true (count >= 5);
    char *ctx = sc_testdir_path (g_work, "src");
    assert_int_equal (mkdir (ctx, 0700), 0);
    for (size_t i = 0; i < count; i++) {
        char *words [8];
        size_t nwords = 0;
        for (char *save = NULL, *w = strtok_r (copies [i], " ", &save); w;
             w = strtok_r (NULL, " ", &save)) {
            assert_true (nwords < 8);
            words [nwords++] = w;
        }
        assert_true (nwords >= 2);
        const char *dest = words [nwords - 1];
        if (dest [0] == '/') {
            //  Into the image, not the build: the sources must exist.
            for (size_t w = 0; w + 1 < nwords; w++)
                assert_int_equal (access (words [w], R_OK), 0);
            free (copies [i]);
            continue;
        }
        char *target = sc_testdir_path (ctx, dest);
        const char *mk [] = { "mkdir", "-p", target, NULL };
        free (s_run_ok (mk, T_TOOL));
        for (size_t w = 0; w + 1 < nwords; w++) {
            struct stat st;
            if (stat (words [w], &st)) {
                print_error ("%s copies %s, which does not exist\n", DOCKERFILE, words [w]);
                fail ();
            }
            char *from = S_ISDIR (st.st_mode) ? s_printf ("%s/.", words [w])
                                              : s_printf ("%s", words [w]);
            const char *cp [] = { "cp", "-R", from, target, NULL };
            free (s_run_ok (cp, T_TOOL));
            free (from);
        }
        free (target);
        free (copies [i]);
    }
    char *out_dir = sc_testdir_path (g_work, "out");
    char *make_build = s_printf ("cd '%s' && env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL -u SANITIZE "
                                 "make -j2 build && env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL -u SANITIZE "
                                 "make install DESTDIR='%s' PREFIX=/usr/local",
                                 ctx, out_dir);
    const char *sh [] = { "sh", "-c", make_build, NULL };
    free (s_run_ok (sh, T_BUILD));
    free (make_build);
    char *built = sc_testdir_path (out_dir, "usr/local/bin/");
    char *built_client = sc_testdir_path (built, "secchat");
    assert_int_equal (access (built_client, X_OK), 0);
    free (built_client);
    free (ctx);

    //  The run-time stage installs the packages that own the libraries
    //  these binaries load (libc6 is in the base image).
    const char *needed =
        "for b in \"$0\"secbroker \"$0\"secchat; do objdump -p \"$b\" | "
        "awk '$1 == \"NEEDED\" { print $2 }'; done | sort -u | "
        "while read -r lib; do dpkg -S \"*/$lib\" | sed -n '1s/[:,].*//p'; done";
    const char *pk [] = { "sh", "-c", needed, built, NULL };
    char *packages = s_run_ok (pk, T_TOOL);
    free (built);
    free (out_dir);
    const char *runtime = strstr (docker, "\nFROM ");
    runtime = runtime ? strstr (runtime + 1, "\nFROM ") : NULL;
    assert_non_null (runtime);
    size_t seen = 0;
    for (char *save = NULL, *pkg = strtok_r (packages, "\n", &save); pkg;
         pkg = strtok_r (NULL, "\n", &save)) {
        seen++;
        if (strcmp (pkg, "libc6") == 0)
            continue;
        char *word = s_printf (" %s ", pkg);
        char *last = s_printf (" %s \\", pkg);
        if (!s_contains (runtime, word) && !s_contains (runtime, last)) {
            print_error ("the run-time stage of %s does not install %s\n", DOCKERFILE, pkg);
            fail ();
        }
        free (word);
        free (last);
    }
    assert_true (seen >= 5);
    free (packages);
    free (docker);
}

//  ---------------------------------------------------------------------
//  The compose demo's conversation, on loopback

//  What each user's client must print (batch lines, docs/CLIENT.md), as
//  fnmatch patterns; the order between users varies, so only presence
//  is checked here, and the causal order below.
static const char *const s_alice_lines [] = {
    "ready alice", "users bob carol", "refused carol", "accepted bob", "chat bob *",
    "msg bob hi alice, only you can read this", "fingerprint * bob * *", "closed bob",
    "bye", NULL
};
static const char *const s_bob_lines [] = {
    "ready bob", "users alice carol", "request alice", "chat alice *",
    "msg alice hi bob! carol is busy today", "closed alice", "accepted carol",
    "chat carol *", "msg carol hello bob, not any more", "bye", NULL
};
static const char *const s_carol_lines [] = {
    "ready carol", "users alice bob", "request alice", "request bob", "chat bob *",
    "msg bob hello carol, alice told me you were busy", "closed bob", "bye", NULL
};

typedef struct {
    const char *user;
    const char *const *expected;
    sc_testproc_t *proc;
    char *lines [128];
    size_t nlines;
    bool done;
} s_player_t;

//  The first line of the player that matches pattern, or NULL.
static const char *
s_find (const s_player_t *player, const char *pattern)
{
    for (size_t i = 0; i < player->nlines; i++)
        if (fnmatch (pattern, player->lines [i], 0) == 0)
            return player->lines [i];
    return NULL;
}

static size_t
s_index (const s_player_t *player, const char *pattern)
{
    for (size_t i = 0; i < player->nlines; i++)
        if (fnmatch (pattern, player->lines [i], 0) == 0)
            return i;
    return SIZE_MAX;
}

static void
test_compose_conversation (void **state)
{
    (void) state;
    char *keys = sc_testdir_path (g_work, "keys");
    const char *const users [] = { "alice", "bob", "carol", NULL };
    assert_int_equal (sc_testproc_make_keys (keys, users), 0);
    char endpoint [256];
    sc_testproc_t *broker = sc_testproc_broker_new (keys, g_work, 0, endpoint,
                                                    sizeof endpoint);
    assert_non_null (broker);
    //  The compose file's health check passes for it.
    char *probe = s_broker_path ();
    const char *health [] = { probe, "--probe", endpoint, NULL };
    free (s_run_ok (health, T_TOOL));
    free (probe);

    char *client = sc_testdir_path (sc_testproc_bin_dir (), "secchat");
    assert_int_equal (access (client, X_OK), 0);
    setenv ("SECCHAT", client, 1);
    char wait_s [16];
    snprintf (wait_s, sizeof wait_s, "%d", sc_testproc_timeout (20000) / 1000);
    setenv ("SECCHAT_WAIT", wait_s, 1);
    setenv ("SECCHAT_LOGIN_TIMEOUT", "10", 1);
    s_player_t players [3] = {
        { "alice", s_alice_lines, NULL, { NULL }, 0, false },
        { "bob", s_bob_lines, NULL, { NULL }, 0, false },
        { "carol", s_carol_lines, NULL, { NULL }, 0, false },
    };
    for (size_t i = 0; i < 3; i++) {
        const char *argv [] = { "sh", DRIVER, players [i].user, endpoint, keys, NULL };
        char *log_name = s_printf ("run-%s.log", players [i].user);
        char *log = sc_testdir_path (g_work, log_name);
        players [i].proc = sc_testproc_new (players [i].user, argv, log);
        assert_non_null (players [i].proc);
        sc_testproc_close_input (players [i].proc);
        free (log);
        free (log_name);
    }
    unsetenv ("SECCHAT");
    unsetenv ("SECCHAT_WAIT");
    unsetenv ("SECCHAT_LOGIN_TIMEOUT");

    //  Read all three until each output ends.
    int64_t deadline = sc_testproc_now_ms () + T_DEMO;
    size_t done = 0;
    while (done < 3 && sc_testproc_now_ms () < deadline) {
        for (size_t i = 0; i < 3; i++) {
            s_player_t *p = &players [i];
            if (p->done)
                continue;
            const char *line;
            int rc = sc_testproc_read_line (p->proc, 50, &line);
            if (rc == 1 && p->nlines < 128)
                p->lines [p->nlines++] = s_printf ("%s", line);
            else
            if (rc == -1) {
                p->done = true;
                done++;
            }
        }
    }
    if (done < 3) {
        print_error ("the scripted clients did not finish within %d ms\n", T_DEMO);
        sc_testproc_dump_all ();
        fail ();
    }
    for (size_t i = 0; i < 3; i++) {
        int status = sc_testproc_wait (players [i].proc, T_EXIT);
        if (status != 0) {
            print_error ("run-client.sh %s exited with %d\n", players [i].user, status);
            sc_testproc_dump_all ();
            fail ();
        }
        for (const char *const *e = players [i].expected; *e; e++)
            if (!s_find (&players [i], *e)) {
                print_error ("%s never printed a line matching '%s'\n", players [i].user, *e);
                sc_testproc_dump_all ();
                fail ();
            }
        //  Logged in first, out last.
        assert_true (players [i].nlines >= 2);
        assert_int_equal (s_index (&players [i], "ready *"), 0);
        assert_string_equal (players [i].lines [players [i].nlines - 1], "bye");
    }
    //  Both ends of a chat see the same safety number, and the two chats
    //  have different ones.
    const char *ab = s_find (&players [0], "chat bob *") + strlen ("chat bob ");
    const char *ba = s_find (&players [1], "chat alice *") + strlen ("chat alice ");
    const char *bc = s_find (&players [1], "chat carol *") + strlen ("chat carol ");
    const char *cb = s_find (&players [2], "chat bob *") + strlen ("chat bob ");
    assert_string_equal (ab, ba);
    assert_string_equal (bc, cb);
    assert_string_not_equal (ab, bc);
    const char *fp = s_find (&players [0], "fingerprint * bob * *");
    assert_true (strlen (fp) > strlen (ab) && strcmp (fp + strlen (fp) - strlen (ab), ab) == 0);
    //  What one side says, the other reads after; sends are shown.
    assert_true (s_index (&players [0], "> /talk bob") < s_index (&players [0], "accepted bob"));
    assert_true (s_index (&players [2], "> /refuse") < s_index (&players [2], "request bob"));
    assert_true (s_index (&players [1], "closed alice") < s_index (&players [1], "> /talk carol"));

    //  The broker relayed the messages without seeing them.
    assert_int_equal (sc_testproc_signal (broker, SIGTERM), 0);
    assert_int_equal (sc_testproc_wait (broker, T_EXIT), 0);
    char *log_path = sc_testdir_path (g_work, "broker.log");
    char *log = s_read_file (log_path);
    assert_false (s_contains (log, "only you can read this"));
    assert_false (s_contains (log, "carol is busy"));
    assert_false (s_contains (log, "not any more"));
    free (log);
    free (log_path);

    for (size_t i = 0; i < 3; i++)
        for (size_t j = 0; j < players [i].nlines; j++)
            free (players [i].lines [j]);
    sc_testproc_destroy_all ();
    free (client);
    free (keys);
}

//  ---------------------------------------------------------------------
//  SIGHUP reloads the registry; sessions stay

//  Waits until the broker's log contains text. 0 or -1.
static int
s_wait_log (const char *text, int timeout_ms)
{
    char *path = sc_testdir_path (g_work, "broker.log");
    int64_t deadline = sc_testproc_now_ms () + timeout_ms;
    int rc = -1;
    while (rc && sc_testproc_now_ms () < deadline) {
        char *log = sc_testdir_slurp (path, NULL);
        if (s_contains (log, text))
            rc = 0;
        else
            sc_testproc_sleep_ms (50);
        free (log);
    }
    free (path);
    return rc;
}

static void
test_sighup_reload (void **state)
{
    (void) state;
    char *keys = sc_testdir_path (g_work, "keys");
    const char *const first [] = { "alice", NULL };
    assert_int_equal (sc_testproc_make_keys (keys, first), 0);
    char endpoint [256];
    sc_testproc_t *broker = sc_testproc_broker_new (keys, g_work, 0, endpoint,
                                                    sizeof endpoint);
    assert_non_null (broker);
    sc_testclient_t alice_opts = { .keys = keys, .workdir = g_work, .endpoint = endpoint,
                                   .user = "alice" };
    sc_testproc_t *alice = sc_testproc_client_new (&alice_opts);
    assert_non_null (alice);
    assert_int_equal (sc_testproc_expect (alice, "ready alice", T_LINE), 0);

    //  dave gets keys; until the reload the broker does not know him.
    const char *const second [] = { "dave", NULL };
    assert_int_equal (sc_testproc_make_keys (keys, second), 0);
    sc_testclient_t early_opts = { .keys = keys, .workdir = g_work, .endpoint = endpoint,
                                   .user = "dave", .name = "dave-early", .timeout = "10" };
    sc_testproc_t *early = sc_testproc_client_new (&early_opts);
    assert_non_null (early);
    assert_int_equal (sc_testproc_expect_eof (early, T_LINE), 0);
    assert_int_equal (sc_testproc_wait (early, T_EXIT), 1);
    sc_testproc_destroy (&early);

    assert_int_equal (sc_testproc_signal (broker, SIGHUP), 0);
    assert_int_equal (s_wait_log ("registry reloaded: 2 users", T_LINE), 0);

    sc_testclient_t dave_opts = { .keys = keys, .workdir = g_work, .endpoint = endpoint,
                                  .user = "dave" };
    sc_testproc_t *dave = sc_testproc_client_new (&dave_opts);
    assert_non_null (dave);
    assert_int_equal (sc_testproc_expect (dave, "ready dave", T_LINE), 0);

    //  alice's session went on: her next line is the answer to /list.
    assert_int_equal (sc_testproc_send (alice, "/list"), 0);
    assert_int_equal (sc_testproc_expect (alice, "users dave", T_LINE), 0);
    assert_int_equal (sc_testproc_open_chat (alice, "alice", dave, "dave", T_LINE), 0);
    assert_int_equal (sc_testproc_send (alice, "welcome, dave"), 0);
    assert_int_equal (sc_testproc_expect (dave, "msg alice welcome, dave", T_LINE), 0);

    assert_int_equal (sc_testproc_send (alice, "/quit"), 0);
    assert_int_equal (sc_testproc_expect (alice, "closed dave", T_LINE), 0);
    assert_int_equal (sc_testproc_expect (alice, "bye", T_LINE), 0);
    assert_int_equal (sc_testproc_wait (alice, T_EXIT), 0);
    assert_int_equal (sc_testproc_expect (dave, "closed alice", T_LINE), 0);
    assert_int_equal (sc_testproc_send (dave, "/quit"), 0);
    assert_int_equal (sc_testproc_expect (dave, "bye", T_LINE), 0);
    assert_int_equal (sc_testproc_wait (dave, T_EXIT), 0);
    assert_int_equal (sc_testproc_signal (broker, SIGTERM), 0);
    assert_int_equal (sc_testproc_wait (broker, T_EXIT), 0);
    free (keys);
}

//  ---------------------------------------------------------------------
//  The unit's sandbox, applied by hand

//  systemd turns SystemCallFilter=, SystemCallErrorNumber=,
//  RestrictAddressFamilies=, MemoryDenyWriteExecute= and
//  RestrictNamespaces= into one seccomp filter that it loads just before
//  it executes the service. No systemd runs here, so this test builds the
//  same filter from the unit file (the groups expanded by
//  `systemd-analyze syscall-filter`), loads it with libseccomp (dlopen'd:
//  it comes with systemd) in a copy of this program that then executes
//  the broker, and has the broker serve a login, a chat, a reload and a
//  stop. A call the filter refuses and that the broker or its libraries
//  cannot do without shows up here, not on a production host.

//  The libseccomp calls used, with their ABI constants.
typedef struct {
    unsigned int arg;
    int op;
    uint64_t datum_a, datum_b;
} s_scmp_arg_cmp_t;
#define S_SCMP_ACT_ALLOW        0x7fff0000U
#define S_SCMP_ACT_ERRNO(e)     (0x00050000U | ((uint32_t) (e) & 0xffffU))
#define S_SCMP_CMP_EQ           4
#define S_SCMP_CMP_MASKED_EQ    7

typedef struct {
    void *(*init) (uint32_t def_action);
    int (*rule_add_array) (void *ctx, uint32_t action, int syscall, unsigned int arg_cnt,
                           const s_scmp_arg_cmp_t *args);
    int (*resolve_name) (const char *name);
    int (*load) (void *ctx);
} s_seccomp_t;

//  0 when libseccomp is there, -1 with a message.
static int
s_seccomp_open (s_seccomp_t *api)
{
    void *lib = dlopen ("libseccomp.so.2", RTLD_NOW);
    if (!lib) {
        fprintf (stderr, "test_deploy: cannot load libseccomp.so.2 (Debian package "
                         "libseccomp2, which systemd depends on): %s\n", dlerror ());
        return -1;
    }
    void *sym [4] = { dlsym (lib, "seccomp_init"), dlsym (lib, "seccomp_rule_add_array"),
                      dlsym (lib, "seccomp_syscall_resolve_name"), dlsym (lib, "seccomp_load") };
    for (size_t i = 0; i < 4; i++)
        if (!sym [i]) {
            fprintf (stderr, "test_deploy: libseccomp.so.2 lacks a function\n");
            return -1;
        }
    memcpy (&api->init, &sym [0], sizeof sym [0]);
    memcpy (&api->rule_add_array, &sym [1], sizeof sym [1]);
    memcpy (&api->resolve_name, &sym [2], sizeof sym [2]);
    memcpy (&api->load, &sym [3], sizeof sym [3]);
    return 0;
}

static int
s_allow_when (const s_seccomp_t *api, void *ctx, int nr, unsigned int arg, int op,
              uint64_t a, uint64_t b)
{
    s_scmp_arg_cmp_t cmp = { arg, op, a, b };
    return api->rule_add_array (ctx, S_SCMP_ACT_ALLOW, nr, 1, &cmp);
}

//  The child's side: `test_deploy --sandbox-exec ALLOW FAMILIES NOFILE
//  PROGRAM ARGS...`. ALLOW is a file of system call names, FAMILIES the
//  allowed socket families as numbers joined by ',', NOFILE the
//  LimitNOFILE= value. Loads the filter and executes PROGRAM. With uid
//  not -1 (`--service-exec UID ALLOW ...`), first becomes uid and its
//  group of the same number, no supplementary groups, umask 0077, as
//  the unit's DynamicUser= and UMask= do. Returns only on failure: the
//  exit status.
static int
s_sandbox_exec (char **argv, long uid)
{
    s_seccomp_t api;
    if (s_seccomp_open (&api))
        return 125;
    struct rlimit rl;
    if (getrlimit (RLIMIT_NOFILE, &rl) == 0) {
        rlim_t limit = (rlim_t) strtoul (argv [2], NULL, 10);
        if (limit < rl.rlim_max || rl.rlim_max == RLIM_INFINITY)
            rl.rlim_max = limit;
        rl.rlim_cur = rl.rlim_max;
        setrlimit (RLIMIT_NOFILE, &rl);
    }
    void *ctx = api.init (S_SCMP_ACT_ERRNO (EPERM));
    FILE *file = fopen (argv [0], "r");
    if (!ctx || !file)
        return 125;
    int nr_socket = api.resolve_name ("socket");
    int nr_mmap = api.resolve_name ("mmap");
    int nr_mprotect = api.resolve_name ("mprotect");
    int nr_pkey_mprotect = api.resolve_name ("pkey_mprotect");
    int nr_clone3 = api.resolve_name ("clone3");
    char name [128];
    while (fscanf (file, "%127s", name) == 1) {
        int nr = api.resolve_name (name);
        if (nr < 0 || nr == nr_socket || nr == nr_mmap || nr == nr_mprotect
        ||  nr == nr_pkey_mprotect || nr == nr_clone3)
            continue;           //  unknown here, or conditional below
        if (api.rule_add_array (ctx, S_SCMP_ACT_ALLOW, nr, 0, NULL))
            return 125;
    }
    fclose (file);
    //  RestrictAddressFamilies=: socket() for these families only.
    char *families = argv [1];
    for (char *save = NULL, *f = strtok_r (families, ",", &save); f;
         f = strtok_r (NULL, ",", &save))
        if (s_allow_when (&api, ctx, nr_socket, 0, S_SCMP_CMP_EQ, strtoull (f, NULL, 10), 0))
            return 125;
    //  MemoryDenyWriteExecute=: no mapping both writable and executable,
    //  no mprotect to executable.
    const uint64_t wx = PROT_WRITE | PROT_EXEC;
    if (s_allow_when (&api, ctx, nr_mmap, 2, S_SCMP_CMP_MASKED_EQ, wx, 0)
    ||  s_allow_when (&api, ctx, nr_mmap, 2, S_SCMP_CMP_MASKED_EQ, wx, PROT_WRITE)
    ||  s_allow_when (&api, ctx, nr_mmap, 2, S_SCMP_CMP_MASKED_EQ, wx, PROT_EXEC)
    ||  s_allow_when (&api, ctx, nr_mprotect, 2, S_SCMP_CMP_MASKED_EQ, PROT_EXEC, 0)
    ||  s_allow_when (&api, ctx, nr_pkey_mprotect, 2, S_SCMP_CMP_MASKED_EQ, PROT_EXEC, 0))
        return 125;
    //  RestrictNamespaces=: systemd cannot inspect clone3's flags, so it
    //  makes clone3 fail with ENOSYS (the C library falls back to clone).
    if (api.rule_add_array (ctx, S_SCMP_ACT_ERRNO (ENOSYS), nr_clone3, 0, NULL))
        return 125;
    //  The filter forbids @privileged, setuid among them: the user goes
    //  first, as systemd changes it before it loads the filter.
    if (uid >= 0) {
        if (setgroups (0, NULL) || setgid ((gid_t) uid) || setuid ((uid_t) uid)
        ||  getuid () != (uid_t) uid || geteuid () != (uid_t) uid
        ||  getegid () != (gid_t) uid) {
            fprintf (stderr, "test_deploy: cannot run as uid and gid %ld: %s (the test "
                             "runs as root, as CI does)\n", uid, strerror (errno));
            return 125;
        }
        umask (0077);
    }
    if (api.load (ctx)) {
        fprintf (stderr, "test_deploy: cannot load the seccomp filter\n");
        return 125;
    }
    //  A sanitizer build's leak check stops the world with ptrace, which
    //  the filter rightly refuses: leaks are checked by the other tests.
    const char *asan = getenv ("ASAN_OPTIONS");
    char *options = s_printf ("%s%sdetect_leaks=0", asan ? asan : "", asan && *asan ? ":" : "");
    setenv ("ASAN_OPTIONS", options, 1);
    free (options);
    execvp (argv [3], argv + 3);
    fprintf (stderr, "test_deploy: cannot execute %s: %s\n", argv [3], strerror (errno));
    return 127;
}

//  A growable set of strings.
typedef struct {
    char **items;
    size_t size, cap;
} s_set_t;

static bool
s_set_has (const s_set_t *set, const char *item)
{
    for (size_t i = 0; i < set->size; i++)
        if (strcmp (set->items [i], item) == 0)
            return true;
    return false;
}

static void
s_set_add (s_set_t *set, const char *item)
{
    if (s_set_has (set, item))
        return;
    if (set->size == set->cap) {
        set->cap = set->cap ? set->cap * 2 : 64;
        set->items = realloc (set->items, set->cap * sizeof *set->items);
        assert_non_null (set->items);
    }
    set->items [set->size++] = s_printf ("%s", item);
}

static void
s_set_remove (s_set_t *set, const char *item)
{
    for (size_t i = 0; i < set->size; i++)
        if (strcmp (set->items [i], item) == 0) {
            free (set->items [i]);
            set->items [i] = set->items [--set->size];
            return;
        }
}

static void
s_set_free (s_set_t *set)
{
    for (size_t i = 0; i < set->size; i++)
        free (set->items [i]);
    free (set->items);
    *set = (s_set_t) { NULL, 0, 0 };
}

//  Adds the system calls of a name or @group (recursively) to set.
static void
s_expand (const char *name, s_set_t *set)
{
    if (name [0] != '@') {
        s_set_add (set, name);
        return;
    }
    const char *argv [] = { "systemd-analyze", "syscall-filter", "--no-pager", name, NULL };
    char *out = s_run_ok (argv, T_TOOL);
    bool first = true;
    for (char *save = NULL, *line = strtok_r (out, "\n", &save); line;
         line = strtok_r (NULL, "\n", &save)) {
        while (*line == ' ')
            line++;
        if (first || *line == '#' || *line == '\0') {
            first = false;      //  the first line names the group
            continue;
        }
        s_expand (line, set);
    }
    free (out);
}

//  The value of the unit's Key= lines, in order, joined by '\n'
//  (malloc'd; "" when none).
static char *
s_unit_values (const char *unit, const char *key)
{
    char *values = s_printf ("%s", "");
    size_t key_len = strlen (key);
    for (const char *p = unit; p && *p; ) {
        const char *end = strchr (p, '\n');
        size_t n = end ? (size_t) (end - p) : strlen (p);
        if (n > key_len && strncmp (p, key, key_len) == 0 && p [key_len] == '=') {
            char *more = s_printf ("%s%.*s\n", values, (int) (n - key_len - 1),
                                   p + key_len + 1);
            free (values);
            values = more;
        }
        p = end ? end + 1 : NULL;
    }
    return values;
}

//  Writes the unit's system call allow list to path; *families gets the
//  allowed socket families ("2,10,1"), *nofile LimitNOFILE=.
static void
s_sandbox_from_unit (const char *unit, const char *path, char *families, size_t size,
                     char *nofile, size_t nofile_size)
{
    char *filters = s_unit_values (unit, "SystemCallFilter");
    s_set_t allow = { NULL, 0, 0 };
    bool first = true;
    for (char *save = NULL, *line = strtok_r (filters, "\n", &save); line;
         line = strtok_r (NULL, "\n", &save)) {
        bool deny = line [0] == '~';
        //  The first line must be an allow list: a deny list is another
        //  kind of filter, which this test does not build.
        assert_false (first && deny);
        first = false;
        s_set_t names = { NULL, 0, 0 };
        for (char *save2 = NULL, *word = strtok_r (line + deny, " ", &save2); word;
             word = strtok_r (NULL, " ", &save2))
            s_expand (word, &names);
        for (size_t i = 0; i < names.size; i++)
            if (deny)
                s_set_remove (&allow, names.items [i]);
            else
                s_set_add (&allow, names.items [i]);
        s_set_free (&names);
    }
    free (filters);
    assert_true (allow.size > 100);
    FILE *file = fopen (path, "w");
    assert_non_null (file);
    for (size_t i = 0; i < allow.size; i++)
        fprintf (file, "%s\n", allow.items [i]);
    assert_int_equal (fclose (file), 0);
    s_set_free (&allow);

    char *errno_number = s_unit_values (unit, "SystemCallErrorNumber");
    assert_string_equal (errno_number, "EPERM\n");
    free (errno_number);
    assert_true (s_has_line (unit, "MemoryDenyWriteExecute=yes"));
    assert_true (s_has_line (unit, "RestrictNamespaces=yes"));

    char *afs = s_unit_values (unit, "RestrictAddressFamilies");
    static const struct { const char *name; int family; } known [] = {
        { "AF_UNIX", AF_UNIX }, { "AF_INET", AF_INET }, { "AF_INET6", AF_INET6 },
        { "AF_NETLINK", AF_NETLINK },
    };
    families [0] = '\0';
    for (char *save = NULL, *word = strtok_r (afs, " \n", &save); word;
         word = strtok_r (NULL, " \n", &save)) {
        int family = -1;
        for (size_t i = 0; i < sizeof known / sizeof known [0]; i++)
            if (strcmp (word, known [i].name) == 0)
                family = known [i].family;
        if (family < 0) {
            print_error ("RestrictAddressFamilies=: %s is not known to this test\n", word);
            fail ();
        }
        size_t used = strlen (families);
        snprintf (families + used, size - used, "%s%d", used ? "," : "", family);
    }
    assert_true (families [0] != '\0');
    free (afs);
    char *limit = s_unit_values (unit, "LimitNOFILE");
    assert_true (*limit);
    snprintf (nofile, nofile_size, "%.*s", (int) strcspn (limit, "\n"), limit);
    free (limit);
}

//  Starts the built broker inside the sandbox; waits for its listening
//  line (NULL when it does not come).
static sc_testproc_t *
s_sandboxed_broker (const char *allow, const char *families, const char *nofile,
                    const char *keys, char *endpoint, size_t endpoint_size)
{
    char self [PATH_MAX];
    ssize_t n = readlink ("/proc/self/exe", self, sizeof self - 1);
    assert_true (n > 0);
    self [n] = '\0';
    char *broker = s_broker_path ();
    char *cert = sc_testdir_path (keys, "broker.crt");
    char *key = sc_testdir_path (keys, "broker.key");
    char *users = sc_testdir_path (keys, "users");
    char *log = sc_testdir_path (g_work, "broker.log");
    const char *argv [] = { self, "--sandbox-exec", allow, families, nofile, broker,
                            "--endpoint", "tcp://127.0.0.1:!", "--cert", cert, "--key", key,
                            "--users", users, "--metrics", "127.0.0.1:0", NULL };
    sc_testproc_t *proc = sc_testproc_new ("broker", argv, log);
    assert_non_null (proc);
    const char *line = NULL;
    int rc = sc_testproc_read_line (proc, T_LINE, &line);
    if (rc == 1 && strncmp (line, "secbroker listening on ", 23) == 0)
        snprintf (endpoint, endpoint_size, "%s", line + 23);
    else
        endpoint [0] = '\0';
    free (log);
    free (users);
    free (key);
    free (cert);
    free (broker);
    return proc;
}

//  GET /metrics from the broker s_sandboxed_broker started (its port
//  from its log): the whole answer, once it says 2 sessions, or the last
//  one after T_LINE.
static char *
s_scrape_sandboxed (void)
{
    const char *prefix = "metrics on http://127.0.0.1:";
    char *log_path = sc_testdir_path (g_work, "broker.log");
    char *log = s_read_file (log_path);
    free (log_path);
    const char *at = strstr (log, prefix);
    assert_non_null (at);
    int port = atoi (at + strlen (prefix));
    free (log);
    assert_true (port > 0 && port < 65536);
    int64_t deadline = sc_testproc_now_ms () + T_LINE;
    char *answer = NULL;
    do {
        free (answer);
        sc_testproc_sleep_ms (50);
        int fd = socket (AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        assert_true (fd >= 0);
        struct sockaddr_in sa = { .sin_family = AF_INET,
                                  .sin_port = htons ((uint16_t) port) };
        sa.sin_addr.s_addr = htonl (INADDR_LOOPBACK);
        assert_int_equal (connect (fd, (struct sockaddr *) &sa, sizeof sa), 0);
        const char *get = "GET /metrics HTTP/1.0\r\n\r\n";
        assert_int_equal (send (fd, get, strlen (get), MSG_NOSIGNAL), (ssize_t) strlen (get));
        size_t used = 0, size = 8192;
        answer = calloc (1, size);
        assert_non_null (answer);
        ssize_t n;
        while (used < size - 1 && (n = recv (fd, answer + used, size - 1 - used, 0)) > 0)
            used += (size_t) n;
        close (fd);
        assert_true (strncmp (answer, "HTTP/1.1 200 ", 13) == 0);
    } while (!s_contains (answer, "\nsecbroker_sessions 2\n")
             && sc_testproc_now_ms () < deadline);
    return answer;
}

static void
test_unit_sandbox (void **state)
{
    (void) state;
    s_require_tool ("systemd-analyze", "systemd");
    s_seccomp_t api;
    if (s_seccomp_open (&api))
        fail ();
    char *unit = s_read_file (UNIT);
    char *allow = sc_testdir_path (g_work, "allow.txt");
    char families [64], nofile [32];
    s_sandbox_from_unit (unit, allow, families, sizeof families, nofile, sizeof nofile);
    char *keys = sc_testdir_path (g_work, "keys");
    const char *const users [] = { "alice", "bob", NULL };
    assert_int_equal (sc_testproc_make_keys (keys, users), 0);

    char endpoint [256];
    sc_testproc_t *broker = s_sandboxed_broker (allow, families, nofile, keys, endpoint,
                                                sizeof endpoint);
    if (!*endpoint) {
        print_error ("the broker did not start under the unit's seccomp filter\n");
        sc_testproc_dump_all ();
        fail ();
    }
    sc_testclient_t a = { .keys = keys, .workdir = g_work, .endpoint = endpoint,
                          .user = "alice" };
    sc_testclient_t b = { .keys = keys, .workdir = g_work, .endpoint = endpoint,
                          .user = "bob" };
    sc_testproc_t *alice = sc_testproc_client_new (&a);
    sc_testproc_t *bob = sc_testproc_client_new (&b);
    assert_non_null (alice);
    assert_non_null (bob);
    assert_int_equal (sc_testproc_expect (alice, "ready alice", T_LINE), 0);
    assert_int_equal (sc_testproc_expect (bob, "ready bob", T_LINE), 0);
    assert_int_equal (sc_testproc_open_chat (alice, "alice", bob, "bob", T_LINE), 0);
    assert_int_equal (sc_testproc_send (alice, "sandboxed"), 0);
    assert_int_equal (sc_testproc_expect (bob, "msg alice sandboxed", T_LINE), 0);
    //  Its metrics server (--metrics, another thread) serves in the
    //  sandbox too.
    char *metrics = s_scrape_sandboxed ();
    if (!s_contains (metrics, "\nsecbroker_sessions 2\n")) {
        print_error ("the sandboxed broker's metrics:\n%s", metrics);
        fail ();
    }
    free (metrics);
    assert_int_equal (sc_testproc_signal (broker, SIGHUP), 0);
    assert_int_equal (s_wait_log ("registry reloaded: 2 users", T_LINE), 0);
    assert_int_equal (sc_testproc_send (bob, "/list"), 0);
    assert_int_equal (sc_testproc_expect (bob, "users alice", T_LINE), 0);
    assert_int_equal (sc_testproc_signal (broker, SIGTERM), 0);
    assert_int_equal (sc_testproc_wait (broker, T_EXIT), 0);
    char *log_path = sc_testdir_path (g_work, "broker.log");
    char *log = s_read_file (log_path);
    //  Nothing it tried was refused quietly either.
    if (s_contains (log, "W: ") || s_contains (log, "E: ")) {
        print_error ("the sandboxed broker warned:\n%s", log);
        fail ();
    }
    free (log);
    free (log_path);
    sc_testproc_destroy_all ();

    //  The filter has teeth: without sched_setscheduler, which libzmq's
    //  I/O thread calls as it starts, the broker aborts.
    char *text = s_read_file (allow);
    char *without = s_replace (text, "\nsched_setscheduler\n", "\n");
    char *allow2 = sc_testdir_path (g_work, "allow-less.txt");
    s_write_file (allow2, without);
    broker = s_sandboxed_broker (allow2, families, nofile, keys, endpoint, sizeof endpoint);
    int status = sc_testproc_wait (broker, T_EXIT);
    if (status == 0 || status == SC_TESTPROC_TIMEOUT) {
        print_error ("the broker ran without sched_setscheduler (status %d): "
                     "is the filter loaded at all?\n", status);
        sc_testproc_dump_all ();
        fail ();
    }
    free (allow2);
    free (without);
    free (text);
    free (keys);
    free (allow);
    free (unit);
}

//  ---------------------------------------------------------------------
//  Enrolment under the unit: its file system and its user, emulated

//  The uid that stands for the unit's dynamic user (nobody's).
#define S_SERVICE_UID 65534

//  mkdir -p of path, each new folder root's and mode 0755 (whatever
//  the umask).
static void
s_mkdirs (const char *path)
{
    char *copy = s_printf ("%s", path);
    for (char *p = copy + 1; ; p++)
        if (*p == '/' || *p == '\0') {
            char c = *p;
            *p = '\0';
            if (mkdir (copy, 0755) == 0)
                assert_int_equal (chmod (copy, 0755), 0);
            else if (errno != EEXIST) {
                print_error ("mkdir %s: %s\n", copy, strerror (errno));
                fail ();
            }
            *p = c;
            if (!c)
                break;
        }
    free (copy);
}

//  `install -m MODE [-o UID -g UID] from to` (uid -1: root's).
static void
s_install_file (const char *from, const char *to, const char *mode, long uid)
{
    char owner [32];
    snprintf (owner, sizeof owner, "%ld", uid);
    const char *argv [] = { "install", "-m", mode, from, to, NULL };
    const char *argv_owned [] = { "install", "-m", mode, "-o", owner, "-g", owner, from, to,
                                  NULL };
    free (s_run_ok (uid < 0 ? argv : argv_owned, T_TOOL));
}

//  root + path, malloc'd.
static char *
s_rooted (const char *root, const char *path)
{
    assert_true (path [0] == '/');
    return s_printf ("%s%s", root, path);
}

//  A command line of the unit (its value, one line) as argv for
//  --service-exec, its paths moved under root: the broker's path to
//  broker, %d to creds, other absolute paths under root, and every
//  address to a free loopback port. *argc_p gets the count; free each.
static char **
s_unit_command (const char *line, const char *root, const char *broker, const char *creds,
                size_t *argc_p)
{
    char **argv = calloc (64, sizeof *argv);
    assert_non_null (argv);
    size_t argc = 0;
    char *copy = s_printf ("%.*s", (int) strcspn (line, "\n"), line);
    for (char *save = NULL, *word = strtok_r (copy, " ", &save); word;
         word = strtok_r (NULL, " ", &save)) {
        assert_true (argc < 63);
        if (argc == 0) {
            assert_string_equal (word, "/usr/local/bin/secbroker");
            argv [argc++] = s_printf ("%s", broker);
        }
        else if (strncmp (word, "%d/", 3) == 0)
            argv [argc++] = s_printf ("%s/%s", creds, word + 3);
        else if (word [0] == '/')
            argv [argc++] = s_rooted (root, word);
        else if (strncmp (word, "tcp://", 6) == 0)
            argv [argc++] = s_printf ("tcp://127.0.0.1:!");
        else
            argv [argc++] = s_printf ("%s", word);
    }
    free (copy);
    *argc_p = argc;
    return argv;
}

//  The value after option in argv (NULL when absent).
static const char *
s_option (char *const argv [], size_t argc, const char *option)
{
    for (size_t i = 1; i + 1 < argc; i++)
        if (strcmp (argv [i], option) == 0)
            return argv [i + 1];
    return NULL;
}

//  Runs the unit's command line as the service would: as uid
//  S_SERVICE_UID, umask 0077, under the unit's seccomp filter, stderr
//  into WORK/broker.log.
static sc_testproc_t *
s_service_start (char *const argv [], size_t argc, const char *allow, const char *families,
                 const char *nofile)
{
    char self [PATH_MAX];
    ssize_t n = readlink ("/proc/self/exe", self, sizeof self - 1);
    assert_true (n > 0);
    self [n] = '\0';
    char uid [16];
    snprintf (uid, sizeof uid, "%d", S_SERVICE_UID);
    const char *args [80] = { self, "--service-exec", uid, allow, families, nofile };
    assert_true (argc + 7 < 80);
    for (size_t i = 0; i < argc; i++)
        args [6 + i] = argv [i];
    args [6 + argc] = NULL;
    char *log = sc_testdir_path (g_work, "broker.log");
    sc_testproc_t *proc = sc_testproc_new ("service", args, log);
    assert_non_null (proc);
    free (log);
    return proc;
}

//  The unit as it is shipped, on a host laid out as its comment and
//  secbroker(8) say, its paths under a directory that stands for "/":
//  /etc/secbroker root's, the key 0600, each StateDirectory= made as
//  systemd makes it for a DynamicUser= (under var/lib/private, given to
//  the service's user, linked from var/lib), any other folder the unit
//  names root's and 0755 as an administrator makes it, the credential
//  the service's. The administrator installs alice.pub by hand and runs
//  `secbroker invite erin` as root; the unit's --check and broker run as
//  the service's uid with its umask and its seccomp filter; erin enrols
//  with a real `secchat enrol`, her NAME.pub is written, her invitation
//  is gone, and she logs in again and chats with alice. A key the
//  administrator copies in afterwards logs in after a reload. Only root
//  can run a program as another user: run as another user the test
//  fails (CI runs as root), it never skips.
static void
test_unit_enrolment (void **state)
{
    (void) state;
    if (geteuid () != 0) {
        print_error ("this test runs the broker as uid %d as the unit's DynamicUser= does, "
                     "which only root can: run it as root (CI does)\n", S_SERVICE_UID);
        fail ();
    }
    s_require_tool ("systemd-analyze", "systemd");
    char *unit = s_read_file (UNIT);
    assert_true (s_has_line (unit, "DynamicUser=yes"));
    assert_true (s_has_line (unit, "ProtectSystem=strict"));
    assert_true (s_has_line (unit, "UMask=0077"));
    char *allow = sc_testdir_path (g_work, "allow.txt");
    char families [64], nofile [32];
    s_sandbox_from_unit (unit, allow, families, sizeof families, nofile, sizeof nofile);

    //  The service's user must reach into the test's folders.
    assert_int_equal (chmod (g_root, 0711), 0);
    assert_int_equal (chmod (g_work, 0711), 0);
    char *root = sc_testdir_path (g_work, "root");
    char *creds = sc_testdir_path (g_work, "credentials");
    char *keys = sc_testdir_path (g_work, "keys");
    const char *const people [] = { "alice", "bob", NULL };
    assert_int_equal (sc_testproc_make_keys (keys, people), 0);
    char *broker = s_rooted (root, "/usr/local/bin/secbroker");
    s_mkdirs (root);
    char *bindir = s_rooted (root, "/usr/local/bin");
    s_mkdirs (bindir);
    free (bindir);
    char *built = s_broker_path ();
    s_install_file (built, broker, "0755", -1);
    free (built);

    //  StateDirectory=: var/lib/private root's 0700 (0711 here: systemd
    //  lets the service through with a mount, not this test), the folder
    //  in it the service's, linked from var/lib.
    char *states = s_unit_values (unit, "StateDirectory");
    char *private = s_rooted (root, "/var/lib/private");
    for (char *save = NULL, *dir = strtok_r (states, " \n", &save); dir;
         dir = strtok_r (NULL, " \n", &save)) {
        assert_null (strchr (dir, ':'));
        char *real = s_printf ("%s/%s", private, dir);
        s_mkdirs (real);
        assert_int_equal (chmod (private, 0711), 0);
        assert_int_equal (chown (real, S_SERVICE_UID, S_SERVICE_UID), 0);
        char *rel = s_printf ("/var/lib/%s", dir);
        char *link = s_rooted (root, rel);
        char *slash = strrchr (link, '/');
        *slash = '\0';
        s_mkdirs (link);
        *slash = '/';
        assert_int_equal (symlink (real, link), 0);
        free (link);
        free (rel);
        free (real);
    }
    free (private);
    free (states);

    //  LoadCredential=ID:PATH: PATH copied to CREDS/ID, the service's, 0400.
    char *cred_lines = s_unit_values (unit, "LoadCredential");
    assert_true (*cred_lines);
    s_mkdirs (creds);
    assert_int_equal (chown (creds, S_SERVICE_UID, S_SERVICE_UID), 0);
    assert_int_equal (chmod (creds, 0500), 0);
    for (char *save = NULL, *cred = strtok_r (cred_lines, "\n", &save); cred;
         cred = strtok_r (NULL, "\n", &save)) {
        char *colon = strchr (cred, ':');
        assert_non_null (colon);
        *colon = '\0';
        assert_string_equal (colon + 1, "/etc/secbroker/broker.key");
        char *to = sc_testdir_path (creds, cred);
        char *from = sc_testdir_path (keys, "broker.key");
        s_install_file (from, to, "0400", S_SERVICE_UID);
        free (from);
        free (to);
    }
    free (cred_lines);

    size_t argc, pre_argc;
    char *start_line = s_unit_values (unit, "ExecStart");
    char *pre_line = s_unit_values (unit, "ExecStartPre");
    char **argv = s_unit_command (start_line, root, broker, creds, &argc);
    char **pre = s_unit_command (pre_line, root, broker, creds, &pre_argc);
    const char *users = s_option (argv, argc, "--users");
    const char *cert = s_option (argv, argc, "--cert");
    assert_non_null (users);
    assert_non_null (cert);
    //  --check looks at what the broker serves.
    static const char *const same [] = { "--users", "--cert", "--key" };
    for (size_t i = 0; i < sizeof same / sizeof same [0]; i++) {
        const char *checked = s_option (pre, pre_argc, same [i]);
        const char *served = s_option (argv, argc, same [i]);
        if (!checked || !served || strcmp (checked, served) != 0) {
            print_error ("ExecStartPre= and ExecStart= differ in %s\n", same [i]);
            fail ();
        }
    }

    //  /etc/secbroker as secbroker(8) installs it, and any folder of the
    //  unit that systemd does not make: root's, 0755.
    char *etc = s_rooted (root, "/etc/secbroker");
    s_mkdirs (etc);
    char *key_from = sc_testdir_path (keys, "broker.key");
    char *key_to = sc_testdir_path (etc, "broker.key");
    s_install_file (key_from, key_to, "0600", -1);
    char *cert_from = sc_testdir_path (keys, "broker.crt");
    s_install_file (cert_from, cert, "0644", -1);
    s_mkdirs (users);
    //  The administrator's hand-made key.
    char *alice_from = sc_testdir_path (keys, "users/alice.pub");
    char *alice_to = sc_testdir_path (users, "alice.pub");
    s_install_file (alice_from, alice_to, "0644", -1);

    //  `secbroker invite erin` as root, into the unit's registry, which is
    //  also where it writes when given no --users.
    const char *help [] = { broker, "invite", "--help", NULL };
    char *usage = s_run_ok (help, T_TOOL);
    const char *unit_users = users + strlen (root);
    char *default_users = s_printf ("(default %s)", unit_users);
    if (!s_contains (usage, default_users)) {
        print_error ("secbroker invite does not write where the unit's broker reads "
                     "(%s):\n%s", unit_users, usage);
        fail ();
    }
    free (usage);
    free (default_users);
    const char *invite [] = { broker, "invite", "erin", "--users", users, "--valid", "10m",
                              NULL };
    char *said = s_run_ok (invite, T_TOOL);
    char code [64];
    snprintf (code, sizeof code, "%.*s", (int) strcspn (said, "\n"), said);
    assert_int_equal (strlen (code), 39);
    free (said);
    char *invitation = sc_testdir_path (users, "erin.invite");
    struct stat st;
    assert_int_equal (stat (invitation, &st), 0);
    //  the service's user can read it; nobody else
    assert_int_equal (st.st_mode & 07777, 0600);
    if (st.st_uid != S_SERVICE_UID) {
        print_error ("%s is uid %ld's: the service (uid %d) cannot read it\n", invitation,
                     (long) st.st_uid, S_SERVICE_UID);
        fail ();
    }

    //  ExecStartPre=, then ExecStart=, as the service.
    sc_testproc_t *check = s_service_start (pre, pre_argc, allow, families, nofile);
    int status = sc_testproc_wait (check, T_EXIT);
    if (status != 0) {
        print_error ("the unit's ExecStartPre= failed (status %d)\n", status);
        sc_testproc_dump_all ();
        fail ();
    }
    sc_testproc_destroy (&check);
    sc_testproc_t *service = s_service_start (argv, argc, allow, families, nofile);
    const char *line = NULL;
    char endpoint [256] = "";
    while (sc_testproc_read_line (service, T_LINE, &line) == 1)
        if (strncmp (line, "secbroker listening on ", 23) == 0) {
            snprintf (endpoint, sizeof endpoint, "%s", line + 23);
            break;
        }
    if (!*endpoint) {
        print_error ("the unit's broker did not start as uid %d\n", S_SERVICE_UID);
        sc_testproc_dump_all ();
        fail ();
    }

    //  erin enrols with the code: logged in at once.
    char *pass = sc_testdir_path (g_work, "erin.pass");
    char *erin_key = sc_testdir_path (g_work, "erin.key");
    char *cfg = sc_testdir_path (g_work, "cfg-erin-enrol");
    char *erin_log = sc_testdir_path (g_work, "erin-enrol.log");
    char *ca = sc_testdir_path (keys, "ca.pem");
    char *secchat = sc_testdir_path (sc_testproc_bin_dir (), "secchat");
    s_write_file (pass, "correct horse battery\n");
    const char *enrol [] = { secchat, "enrol", "--endpoint", endpoint, "--user", "erin",
                             "--ca", ca, "--key", erin_key, "--password-file", pass,
                             "--config-dir", cfg, "--batch", "--code", code, NULL };
    sc_testproc_t *erin = sc_testproc_new ("erin-enrol", enrol, erin_log);
    assert_non_null (erin);
    if (sc_testproc_expect (erin, "ready erin", T_LINE) != 0) {
        print_error ("secchat enrol failed under the unit\n");
        sc_testproc_dump_all ();
        fail ();
    }
    char *erin_pub = sc_testdir_path (users, "erin.pub");
    assert_int_equal (lstat (erin_pub, &st), 0);
    assert_true (S_ISREG (st.st_mode));
    assert_int_equal (st.st_uid, S_SERVICE_UID);
    assert_int_equal (access (invitation, F_OK), -1);   //  burnt
    assert_int_equal (errno, ENOENT);
    assert_int_equal (sc_testproc_send (erin, "/quit"), 0);
    assert_int_equal (sc_testproc_wait (erin, T_EXIT), 0);
    sc_testproc_destroy (&erin);

    //  erin logs in again with her new key, and chats with alice, whose
    //  key the administrator installed.
    sc_testclient_t e = { .keys = keys, .workdir = g_work, .endpoint = endpoint,
                          .user = "erin", .key_file = erin_key, .password_file = pass };
    sc_testclient_t a = { .keys = keys, .workdir = g_work, .endpoint = endpoint,
                          .user = "alice" };
    erin = sc_testproc_client_new (&e);
    sc_testproc_t *alice = sc_testproc_client_new (&a);
    assert_non_null (erin);
    assert_non_null (alice);
    assert_int_equal (sc_testproc_expect (erin, "ready erin", T_LINE), 0);
    assert_int_equal (sc_testproc_expect (alice, "ready alice", T_LINE), 0);
    assert_int_equal (sc_testproc_send (alice, "/talk erin"), 0);
    assert_int_equal (sc_testproc_expect (erin, "request alice", T_LINE), 0);
    assert_int_equal (sc_testproc_send (erin, "/accept"), 0);
    assert_int_equal (sc_testproc_expect (alice, "accepted erin", T_LINE), 0);
    assert_non_null (sc_testproc_expect_prefix (alice, "chat erin ", T_LINE));
    assert_non_null (sc_testproc_expect_prefix (erin, "chat alice ", T_LINE));
    assert_int_equal (sc_testproc_send (erin, "enrolled under the unit"), 0);
    assert_int_equal (sc_testproc_expect (alice, "msg erin enrolled under the unit", T_LINE),
                      0);

    //  The administrator copies bob.pub in and reloads: bob logs in.
    char *bob_from = sc_testdir_path (keys, "users/bob.pub");
    char *bob_to = sc_testdir_path (users, "bob.pub");
    s_install_file (bob_from, bob_to, "0644", -1);
    assert_int_equal (sc_testproc_signal (service, SIGHUP), 0);
    assert_int_equal (s_wait_log ("registry reloaded: 3 users", T_LINE), 0);
    sc_testclient_t b = { .keys = keys, .workdir = g_work, .endpoint = endpoint,
                          .user = "bob" };
    sc_testproc_t *bob = sc_testproc_client_new (&b);
    assert_non_null (bob);
    assert_int_equal (sc_testproc_expect (bob, "ready bob", T_LINE), 0);

    assert_int_equal (sc_testproc_signal (service, SIGTERM), 0);
    assert_int_equal (sc_testproc_wait (service, T_EXIT), 0);
    char *log_path = sc_testdir_path (g_work, "broker.log");
    char *log = s_read_file (log_path);
    if (s_contains (log, "W: ") || s_contains (log, "E: ")) {
        print_error ("the unit's broker warned:\n%s", log);
        fail ();
    }
    free (log);

    //  A drop-in still naming the old read-only registry (root's 0755):
    //  the broker serves, and says at start that enrolments will be
    //  refused; with --registration open it does not start.
    char *old_users = sc_testdir_path (etc, "users");
    s_mkdirs (old_users);
    for (size_t i = 1; i + 1 < argc; i++)
        if (strcmp (argv [i], "--users") == 0) {
            free (argv [i + 1]);
            argv [i + 1] = s_printf ("%s", old_users);
        }
    service = s_service_start (argv, argc, allow, families, nofile);
    assert_int_equal (s_wait_log ("enrolments will be refused", T_LINE), 0);
    assert_int_equal (sc_testproc_signal (service, SIGTERM), 0);
    assert_int_equal (sc_testproc_wait (service, T_EXIT), 0);
    argv [argc++] = s_printf ("--registration");
    argv [argc++] = s_printf ("open");
    service = s_service_start (argv, argc, allow, families, nofile);
    assert_int_equal (sc_testproc_wait (service, T_EXIT), 2);
    log = s_read_file (log_path);
    if (!s_contains (log, "--registration open needs a users folder the broker can write")) {
        print_error ("no reason given for refusing --registration open:\n%s", log);
        fail ();
    }
    free (log);
    free (old_users);
    free (log_path);
    sc_testproc_destroy_all ();
    free (bob_to);
    free (bob_from);
    free (erin_pub);
    free (secchat);
    free (ca);
    free (erin_log);
    free (cfg);
    free (erin_key);
    free (pass);
    free (invitation);
    free (alice_to);
    free (alice_from);
    free (cert_from);
    free (key_to);
    free (key_from);
    free (etc);
    for (size_t i = 0; i < argc; i++)
        free (argv [i]);
    for (size_t i = 0; i < pre_argc; i++)
        free (pre [i]);
    free (argv);
    free (pre);
    free (pre_line);
    free (start_line);
    free (broker);
    free (keys);
    free (creds);
    free (root);
    free (allow);
    free (unit);
}

//  ---------------------------------------------------------------------
//  sc_notify and the broker's readiness

//  An AF_UNIX datagram socket bound at name (a path, or '@' abstract).
static int
s_notify_socket (const char *name)
{
    int fd = socket (AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    assert_true (fd >= 0);
    struct sockaddr_un addr;
    memset (&addr, 0, sizeof addr);
    addr.sun_family = AF_UNIX;
    size_t len = strlen (name);
    assert_true (len < sizeof addr.sun_path);
    memcpy (addr.sun_path, name, len);
    socklen_t addr_len = (socklen_t) (offsetof (struct sockaddr_un, sun_path) + len);
    if (name [0] == '@')
        addr.sun_path [0] = '\0';
    else
        addr_len++;
    assert_int_equal (bind (fd, (struct sockaddr *) &addr, addr_len), 0);
    return fd;
}

//  The next datagram within timeout_ms, malloc'd, or NULL.
static char *
s_notify_recv (int fd, int timeout_ms)
{
    struct pollfd item = { fd, POLLIN, 0 };
    if (poll (&item, 1, timeout_ms) != 1)
        return NULL;
    char buf [512];
    ssize_t n = recv (fd, buf, sizeof buf - 1, 0);
    if (n < 0)
        return NULL;
    buf [n] = '\0';
    return s_printf ("%s", buf);
}

static void
s_expect_datagram (int fd, const char *pattern)
{
    char *got = s_notify_recv (fd, T_LINE);
    if (!got || fnmatch (pattern, got, 0) != 0) {
        print_error ("expected a datagram matching '%s', got '%s'\n", pattern,
                     got ? got : "(nothing)");
        sc_testproc_dump_all ();
        fail ();
    }
    free (got);
}

static void
test_sc_notify (void **state)
{
    (void) state;
    unsetenv ("NOTIFY_SOCKET");
    assert_int_equal (sc_notify ("READY=1"), 0);

    char *path = sc_testdir_path (g_work, "notify");
    int fd = s_notify_socket (path);
    setenv ("NOTIFY_SOCKET", path, 1);
    assert_int_equal (sc_notify ("READY=1"), 1);
    s_expect_datagram (fd, "READY=1");
    assert_int_equal (sc_notify_reloading (), 1);
    s_expect_datagram (fd, "RELOADING=1\nMONOTONIC_USEC=[1-9]*");
    close (fd);
    //  Nobody listening any more: an error, not a hang.
    unlink (path);
    assert_int_equal (sc_notify ("STOPPING=1"), -1);

    char *abstract = s_printf ("@secchat-test-%ld", (long) getpid ());
    fd = s_notify_socket (abstract);
    setenv ("NOTIFY_SOCKET", abstract, 1);
    assert_int_equal (sc_notify ("STOPPING=1"), 1);
    s_expect_datagram (fd, "STOPPING=1");
    close (fd);

    setenv ("NOTIFY_SOCKET", "relative/path", 1);
    errno = 0;
    assert_int_equal (sc_notify ("READY=1"), -1);
    assert_int_equal (errno, EINVAL);
    unsetenv ("NOTIFY_SOCKET");
    free (abstract);
    free (path);
}

static void
test_broker_notify (void **state)
{
    (void) state;
    char *keys = sc_testdir_path (g_work, "keys");
    const char *const users [] = { "alice", NULL };
    assert_int_equal (sc_testproc_make_keys (keys, users), 0);
    char *path = sc_testdir_path (g_work, "notify");
    int fd = s_notify_socket (path);
    setenv ("NOTIFY_SOCKET", path, 1);
    char endpoint [256];
    sc_testproc_t *broker = sc_testproc_broker_new (keys, g_work, 0, endpoint,
                                                    sizeof endpoint);
    unsetenv ("NOTIFY_SOCKET");
    assert_non_null (broker);
    s_expect_datagram (fd, "READY=1");
    assert_int_equal (sc_testproc_signal (broker, SIGHUP), 0);
    s_expect_datagram (fd, "RELOADING=1\nMONOTONIC_USEC=[1-9]*");
    s_expect_datagram (fd, "READY=1");
    assert_int_equal (sc_testproc_signal (broker, SIGTERM), 0);
    s_expect_datagram (fd, "STOPPING=1");
    assert_int_equal (sc_testproc_wait (broker, T_EXIT), 0);
    close (fd);
    free (path);
    free (keys);
}

//  ---------------------------------------------------------------------

#define T(test) cmocka_unit_test_setup_teardown (test, s_setup, s_teardown)

int
main (int argc, char **argv)
{
    if (argc > 5 && strcmp (argv [1], "--sandbox-exec") == 0)
        return s_sandbox_exec (argv + 2, -1);
    if (argc > 6 && strcmp (argv [1], "--service-exec") == 0)
        return s_sandbox_exec (argv + 3, strtol (argv [2], NULL, 10));
    const struct CMUnitTest tests [] = {
        T (test_install_layout),
        T (test_manpages),
        T (test_unit_settings),
        T (test_unit_verify),
        T (test_unit_security),
        T (test_unit_sandbox),
        T (test_unit_enrolment),
        T (test_compose_config),
        T (test_compose_cluster_config),
        T (test_dockerfile),
        T (test_sc_notify),
        T (test_broker_notify),
        T (test_compose_conversation),
        T (test_sighup_reload),
    };
    //  SC_TEST_FILTER=test_name (a glob) runs only those tests
    if (getenv ("SC_TEST_FILTER"))
        cmocka_set_test_filter (getenv ("SC_TEST_FILTER"));
    return cmocka_run_group_tests_name ("deploy", tests, s_group_setup, s_group_teardown);
}
