/*  test_history: the encrypted conversation history, with the real
    programs.

    A bin/secbroker on an ephemeral port and bin/secchat batch clients
    (sc_testproc) chat; then the clients start again and show what was
    said (`/history`), and the test looks at the store the way a thief
    of the disk would: every file under the data folder searched for the
    text and the names, records changed, dropped, the file truncated,
    with SQLite itself. The user names are long and rare so that finding
    one by chance in random bytes is out of the question.

    Run from the repository root with SC_BIN_DIR set, as `make check`
    does; SC_KEEP_TMP=1 keeps the temporary directory.

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at https://mozilla.org/MPL/2.0/.
*/
#define _GNU_SOURCE                 //  memmem
#include <dirent.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <sqlite3.h>

#include "sc_testproc.h"

#define T_LINE      sc_testproc_timeout (10000)
#define T_QUIET     sc_testproc_timeout (500)
#define T_EXIT      sc_testproc_timeout (10000)

#define ANNA        "annabelle"
#define BART        "bartholomew"
#define RECORD_BOX  (12 + 256 + 16)     //  nonce, one 256-byte record, tag

static char *g_root;
static char *g_keys;
static int g_test_no;
static char *g_work;
static char g_endpoint[256];

//  ---------------------------------------------------------------------
//  Fixtures

static int
s_group_setup (void **state)
{
    (void) state;
    alarm ((unsigned) sc_testproc_timeout (600000) / 1000);
    g_root = sc_testdir_new ("history-int");
    if (!g_root)
        return -1;
    g_keys = sc_testdir_path (g_root, "keys");
    const char *const users[] = { ANNA, BART, NULL };
    return sc_testproc_make_keys (g_keys, users);
}

static int
s_group_teardown (void **state)
{
    (void) state;
    sc_testproc_destroy_all ();
    sc_testdir_remove_unless_kept (g_root, "test_history");
    free (g_keys);
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
    free (g_work);
    g_work = NULL;
    return 0;
}

//  ---------------------------------------------------------------------
//  Steps

static void
s_see (sc_testproc_t *p, const char *line)
{
    assert_int_equal (sc_testproc_expect (p, line, T_LINE), 0);
}

static const char *
s_see_prefix (sc_testproc_t *p, const char *prefix)
{
    const char *line = sc_testproc_expect_prefix (p, prefix, T_LINE);
    assert_non_null (line);
    return line;
}

static void
s_say (sc_testproc_t *p, const char *line)
{
    assert_int_equal (sc_testproc_send (p, line), 0);
}

static sc_testproc_t *
s_broker (void)
{
    sc_testproc_t *broker = sc_testproc_broker_new (g_keys, g_work, 0, g_endpoint,
                                                    sizeof g_endpoint);
    assert_non_null (broker);
    return broker;
}

static sc_testproc_t *
s_client (const char *user, int no_history)
{
    sc_testclient_t client = { .keys = g_keys, .workdir = g_work, .endpoint = g_endpoint,
                               .user = user, .no_history = no_history };
    sc_testproc_t *p = sc_testproc_client_new (&client);
    assert_non_null (p);
    return p;
}

static sc_testproc_t *
s_login (const char *user)
{
    sc_testproc_t *p = s_client (user, 0);
    char ready[64];
    snprintf (ready, sizeof ready, "ready %s", user);
    s_see (p, ready);
    return p;
}

static void
s_quit (sc_testproc_t *p)
{
    s_say (p, "/quit");
    const char *line = NULL;
    int rc;
    while ((rc = sc_testproc_read_line (p, T_LINE, &line)) == 1 && strcmp (line, "bye"))
        ;
    assert_int_equal (rc, 1);
    assert_int_equal (sc_testproc_wait (p, T_EXIT), 0);
}

//  anna asks bart, bart accepts, and they say lines[] in turn (anna
//  first); every line arrives and is confirmed; both quit.
static void
s_chat (sc_testproc_t *anna, sc_testproc_t *bart, const char *const lines[], size_t n)
{
    assert_int_equal (sc_testproc_open_chat (anna, ANNA, bart, BART, T_LINE), 0);
    unsigned long long said[2] = { 0, 0 };
    for (size_t i = 0; i < n; i++) {
        sc_testproc_t *from = i % 2 ? bart : anna;
        sc_testproc_t *to = i % 2 ? anna : bart;
        char line[512];
        snprintf (line, sizeof line, "msg %s %s", i % 2 ? BART : ANNA, lines[i]);
        s_say (from, lines[i]);
        s_see (to, line);
        said[i % 2]++;
    }
    if (said[0])
        assert_int_equal (sc_testproc_expect_acked (anna, BART, said[0], T_LINE), 0);
    if (said[1])
        assert_int_equal (sc_testproc_expect_acked (bart, ANNA, said[1], T_LINE), 0);
    s_say (anna, "/leave");
    s_see (anna, "closed " BART);
    s_see (bart, "closed " ANNA);
    s_quit (anna);
    s_quit (bart);
}

//  The next line is `hist NAME TIME DIR TEXT` with TIME in ISO 8601 UTC
//  within a day of now.
static void
s_see_hist (sc_testproc_t *p, const char *name, const char *dir, const char *text)
{
    char prefix[64];
    snprintf (prefix, sizeof prefix, "hist %s ", name);
    const char *line = s_see_prefix (p, prefix);
    const char *when = line + strlen (prefix);
    struct tm tm;
    memset (&tm, 0, sizeof tm);
    const char *end = strptime (when, "%Y-%m-%dT%H:%M:%SZ", &tm);
    assert_non_null (end);
    assert_int_equal (end - when, 20);
    time_t t = timegm (&tm);
    assert_true (llabs ((long long) (t - time (NULL))) < 86400);
    char rest[600];
    snprintf (rest, sizeof rest, " %s %s", dir, text);
    assert_string_equal (end, rest);
}

static char *
s_data (const char *user)
{
    char *data = sc_testdir_path (g_work, "data");
    char *dir = user ? sc_testdir_path (data, user) : NULL;
    if (dir) {
        free (data);
        return dir;
    }
    return data;
}

//  The user's store: the one history-ID.db in its directory.
static char *
s_db (const char *user)
{
    char *dir = s_data (user);
    DIR *d = opendir (dir);
    assert_non_null (d);
    char *db = NULL;
    struct dirent *e;
    while ((e = readdir (d))) {
        size_t len = strlen (e->d_name);
        if (strncmp (e->d_name, "history-", 8) == 0 && len == 8 + 16 + 3
            && strcmp (e->d_name + len - 3, ".db") == 0) {
            assert_null (db);
            db = sc_testdir_path (dir, e->d_name);
        }
    }
    closedir (d);
    free (dir);
    assert_non_null (db);
    return db;
}

//  True when needle occurs in any file under dir (recursively); counts
//  the files in *files.
static int
s_found_under (const char *dir, const char *needle, int *files)
{
    DIR *d = opendir (dir);
    if (!d)
        return 0;
    int found = 0;
    struct dirent *e;
    while (!found && (e = readdir (d))) {
        if (strcmp (e->d_name, ".") == 0 || strcmp (e->d_name, "..") == 0)
            continue;
        char *path = sc_testdir_path (dir, e->d_name);
        struct stat st;
        assert_int_equal (lstat (path, &st), 0);
        if (S_ISDIR (st.st_mode))
            found = s_found_under (path, needle, files);
        else {
            size_t len = 0;
            char *data = sc_testdir_slurp (path, &len);
            assert_non_null (data);
            found = memmem (data, len, needle, strlen (needle)) != NULL;
            free (data);
            (*files)++;
        }
        free (path);
    }
    closedir (d);
    return found;
}

//  Runs SQL on user's store.
static void
s_sql (const char *user, const char *sql)
{
    char *db_path = s_db (user);
    sqlite3 *db = NULL;
    assert_int_equal (sqlite3_open_v2 (db_path, &db, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
    char *err = NULL;
    int rc = sqlite3_exec (db, sql, NULL, NULL, &err);
    if (rc != SQLITE_OK)
        fprintf (stderr, "%s: %s\n", sql, err ? err : "?");
    assert_int_equal (rc, SQLITE_OK);
    assert_int_equal (sqlite3_changes (db), 1);
    sqlite3_free (err);
    assert_int_equal (sqlite3_close (db), SQLITE_OK);
    free (db_path);
}

//  /history NAME N on p: the lines up to hist-end NAME; counts the hist
//  lines, and the error lines that contain `error`.
static void
s_history_lines (sc_testproc_t *p, const char *name, int n, int *hist, int *errors,
                 const char *error)
{
    char cmd[64], end[64];
    snprintf (cmd, sizeof cmd, "/history %s %d", name, n);
    snprintf (end, sizeof end, "hist-end %s", name);
    s_say (p, cmd);
    *hist = *errors = 0;
    const char *line = NULL;
    while (sc_testproc_read_line (p, T_LINE, &line) == 1 && strcmp (line, end)) {
        if (strncmp (line, "hist ", 5) == 0)
            (*hist)++;
        else if (strncmp (line, "error history ", 14) == 0 && strstr (line, error))
            (*errors)++;
        else
            fail_msg ("unexpected line \"%s\"", line);
    }
    assert_string_equal (line, end);
}

static const char *const s_lines[] = {
    "the first secret line", "a second secret answer", "third secret, with a tab-less UTF-8 é"
};

//  ---------------------------------------------------------------------
//  Tests

//  Both sides show the conversation again after a restart, with times
//  and who said what, the last N only when asked; nothing of it is
//  readable under the data folder, and a clean exit leaves one file a
//  user.
static void
test_history_after_restart (void **state)
{
    (void) state;
    sc_testproc_t *broker = s_broker ();
    s_chat (s_login (ANNA), s_login (BART), s_lines, 3);

    sc_testproc_t *anna = s_login (ANNA);
    s_say (anna, "/history " BART);
    s_see_hist (anna, BART, "out", s_lines[0]);
    s_see_hist (anna, BART, "in", s_lines[1]);
    s_see_hist (anna, BART, "out", s_lines[2]);
    s_see (anna, "hist-end " BART);
    s_say (anna, "/history " BART " 1");
    s_see_hist (anna, BART, "out", s_lines[2]);
    s_see (anna, "hist-end " BART);
    s_say (anna, "/history");
    s_see_prefix (anna, "error usage ");
    s_say (anna, "/history nobody");
    s_see (anna, "hist-end nobody");
    s_quit (anna);

    sc_testproc_t *bart = s_login (BART);
    s_say (bart, "/history " ANNA " 2");
    s_see_hist (bart, ANNA, "out", s_lines[1]);
    s_see_hist (bart, ANNA, "in", s_lines[2]);
    s_see (bart, "hist-end " ANNA);
    s_quit (bart);

    char *data = s_data (NULL);
    const char *needles[] = { "secret", "first", ANNA, BART, "\xc3\xa9" };
    for (size_t i = 0; i < sizeof needles / sizeof needles[0]; i++) {
        int files = 0;
        if (s_found_under (data, needles[i], &files))
            fail_msg ("\"%s\" is readable under %s", needles[i], data);
        assert_int_equal (files, 2);        //  one store each, no journal
    }
    free (data);
    char *db = s_db (ANNA);
    struct stat st;
    assert_int_equal (stat (db, &st), 0);
    assert_int_equal (st.st_mode & 0777, 0600);
    free (db);
    char *dir = s_data (ANNA);
    assert_int_equal (stat (dir, &st), 0);
    assert_int_equal (st.st_mode & 0777, 0700);
    free (dir);
    assert_int_equal (sc_testproc_signal (broker, SIGTERM), 0);
    assert_int_equal (sc_testproc_wait (broker, T_EXIT), 0);
}

//  One record changed by a bit: it is reported as altered where it
//  stood, the two others are shown.
static void
test_history_modified (void **state)
{
    (void) state;
    s_broker ();
    s_chat (s_login (ANNA), s_login (BART), s_lines, 3);
    //  the third byte of the ciphertext of the record with the lowest id
    s_sql (ANNA, "UPDATE rows SET box = substr(box, 1, 14) || "
                 "(CASE WHEN substr(box, 15, 1) = x'00' THEN x'01' ELSE x'00' END) || "
                 "substr(box, 16) WHERE id = (SELECT min(id) FROM rows WHERE length(box) = 284)");
    sc_testproc_t *anna = s_login (ANNA);
    int hist, errors;
    s_history_lines (anna, BART, 20, &hist, &errors, "does not authenticate: the store "
                     "was altered");
    assert_int_equal (hist, 2);
    assert_int_equal (errors, 1);
    s_quit (anna);
}

//  A record dropped: said when the store opens (the index counts more
//  records than there are), and where it is missing.
static void
test_history_dropped (void **state)
{
    (void) state;
    s_broker ();
    s_chat (s_login (ANNA), s_login (BART), s_lines, 3);
    s_sql (ANNA, "DELETE FROM rows WHERE id = (SELECT max(id) FROM rows "
                 "WHERE length(box) = 284)");
    sc_testproc_t *anna = s_client (ANNA, 0);
    const char *line = s_see_prefix (anna, "error history ");
    assert_non_null (strstr (line, "holds 2 records where its index counts 3: records "
                                   "were dropped or added"));
    s_see (anna, "ready " ANNA);
    int hist, errors;
    s_history_lines (anna, BART, 20, &hist, &errors, "is missing: the store was altered");
    assert_int_equal (hist, 2);
    assert_int_equal (errors, 1);
    s_quit (anna);
}

//  A truncated store: said at start and at /history; chatting still
//  works, and the file is left as it is (never written over).
static void
test_history_truncated (void **state)
{
    (void) state;
    s_broker ();
    const char *many[24];
    for (size_t i = 0; i < 24; i++)
        many[i] = "a line long enough to fill the pages of the history store, "
                  "a line long enough to fill the pages of the history store";
    s_chat (s_login (ANNA), s_login (BART), many, 24);
    char *db = s_db (ANNA);
    struct stat st;
    assert_int_equal (stat (db, &st), 0);
    off_t half = st.st_size / 2;
    assert_true (half >= 4096);
    assert_int_equal (truncate (db, half), 0);

    sc_testproc_t *anna = s_client (ANNA, 0);
    const char *line = s_see_prefix (anna, "error history ");
    assert_non_null (strstr (line, "damaged or truncated"));
    s_see (anna, "ready " ANNA);
    s_say (anna, "/history " BART);
    line = s_see_prefix (anna, "error history ");
    assert_non_null (strstr (line, "damaged or truncated"));
    sc_testproc_t *bart = s_login (BART);
    const char *const more[] = { "still chatting", "yes" };
    s_chat (anna, bart, more, 2);
    assert_int_equal (stat (db, &st), 0);
    assert_int_equal (st.st_size, half);
    free (db);
}

//  --no-history keeps nothing at all; /history says so.
static void
test_no_history (void **state)
{
    (void) state;
    s_broker ();
    sc_testproc_t *anna = s_client (ANNA, 1);
    s_see (anna, "ready " ANNA);
    sc_testproc_t *bart = s_client (BART, 1);
    s_see (bart, "ready " BART);
    s_say (anna, "/history " BART);
    s_see (anna, "error history no history is kept (--no-history)");
    s_say (anna, "/forget " BART);
    s_see (anna, "error history no history is kept (--no-history)");
    s_chat (anna, bart, s_lines, 3);
    char *data = s_data (NULL);
    struct stat st;
    assert_int_equal (stat (data, &st), -1);
    free (data);
}

//  `history = off` in the configuration file is --no-history.
static void
test_history_off_in_config (void **state)
{
    (void) state;
    s_broker ();
    char *cfg = sc_testdir_path (g_work, "cfg-" ANNA);
    assert_int_equal (mkdir (cfg, 0700), 0);
    char *path = sc_testdir_path (cfg, "config");
    FILE *file = fopen (path, "w");
    assert_non_null (file);
    assert_true (fputs ("# no history on this machine\nhistory = off\n", file) >= 0);
    assert_int_equal (fclose (file), 0);
    sc_testproc_t *anna = s_client (ANNA, 0);
    s_see (anna, "ready " ANNA);
    sc_testproc_t *bart = s_client (BART, 1);
    s_see (bart, "ready " BART);
    s_say (anna, "/history " BART);
    s_see (anna, "error history no history is kept (--no-history)");
    s_chat (anna, bart, s_lines, 3);
    char *data = s_data (NULL);
    struct stat st;
    assert_int_equal (stat (data, &st), -1);
    free (data);
    free (path);
    free (cfg);
}

//  /forget deletes the conversation for good: gone after a restart too,
//  and a new one starts from nothing.
static void
test_forget (void **state)
{
    (void) state;
    s_broker ();
    s_chat (s_login (ANNA), s_login (BART), s_lines, 3);
    sc_testproc_t *anna = s_login (ANNA);
    s_say (anna, "/forget " BART);
    s_see (anna, "forgotten " BART);
    s_say (anna, "/history " BART);
    s_see (anna, "hist-end " BART);
    s_quit (anna);
    anna = s_login (ANNA);
    s_say (anna, "/history " BART);
    s_see (anna, "hist-end " BART);
    sc_testproc_t *bart = s_login (BART);
    const char *const again[] = { "a new start" };
    s_chat (anna, bart, again, 1);
    anna = s_login (ANNA);
    s_say (anna, "/history " BART);
    s_see_hist (anna, BART, "out", "a new start");
    s_see (anna, "hist-end " BART);
    s_quit (anna);
    //  bart kept his side
    bart = s_login (BART);
    s_say (bart, "/history " ANNA " 1");
    s_see_hist (bart, ANNA, "in", "a new start");
    s_see (bart, "hist-end " ANNA);
    s_quit (bart);
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
#define T(test) cmocka_unit_test_setup_teardown (test, s_setup, s_teardown)
        T (test_history_after_restart),
        T (test_history_modified),
        T (test_history_dropped),
        T (test_history_truncated),
        T (test_no_history),
        T (test_history_off_in_config),
        T (test_forget),
#undef T
    };
    const char *filter = getenv ("SC_TEST_FILTER");
    if (filter && *filter)
        cmocka_set_test_filter (filter);
    return cmocka_run_group_tests_name ("history", tests, s_group_setup, s_group_teardown);
}
