/*  test_sc_history: the encrypted history store on its own.

    Each test opens a store in a fresh temporary directory with a fresh
    key, writes lines, and then reads them back, reopens the store, or
    changes the database behind the module's back with SQLite itself (a
    byte of a record, a record dropped or swapped, the file truncated)
    and checks that the module reports it instead of showing it.

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at https://mozilla.org/MPL/2.0/.
*/
#define _GNU_SOURCE                 //  memmem
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
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

#include <sqlite3.h>

#include "sc_history.h"
#include "sc_key.h"
#include "sc_testproc.h"

#define MAX_READ    64

static char *g_dir;             //  the test's data directory
static char *g_db;              //  g_dir/alice/history-ID.db, once opened
static sc_key_t *g_key;

//  ---------------------------------------------------------------------
//  Fixture and helpers

static int
s_setup (void **state)
{
    (void) state;
    g_dir = sc_testdir_new ("history");
    g_key = sc_key_generate ();
    g_db = NULL;
    return g_dir && g_key ? 0 : -1;
}

static int
s_teardown (void **state)
{
    (void) state;
    if (!getenv ("SC_KEEP_TMP"))
        sc_testdir_remove (g_dir);
    free (g_dir);
    free (g_db);
    sc_key_destroy (&g_key);
    return 0;
}

static sc_history_t *
s_open (char *why, size_t size)
{
    sc_history_t *h = sc_history_new (g_dir, "alice", g_key, why, size);
    assert_non_null (h);
    if (!g_db)
        g_db = strdup (sc_history_path (h));
    return h;
}

static sc_history_t *
s_open_clean (void)
{
    char why[800];
    sc_history_t *h = s_open (why, sizeof why);
    if (why[0])
        fprintf (stderr, "unexpected: %s\n", why);
    assert_string_equal (why, "");
    assert_true (sc_history_usable (h));
    return h;
}

static void
s_append (sc_history_t *h, const char *peer, bool out, int64_t time, const char *text)
{
    char why[800] = "";
    int rc = sc_history_append (h, peer, out, time, text, strlen (text), why, sizeof why);
    if (rc)
        fprintf (stderr, "append: %s\n", why);
    assert_int_equal (rc, 0);
}

typedef struct {
    size_t count;
    char text[MAX_READ][820];   //  the text, or "!" and the error
    bool out[MAX_READ];
    int64_t time[MAX_READ];
    uint64_t number[MAX_READ];
} read_t;

static void
s_on_record (void *arg, const sc_history_record_t *rec, const char *error)
{
    read_t *r = arg;
    assert_true (r->count < MAX_READ);
    if (rec) {
        snprintf (r->text[r->count], sizeof r->text[0], "%.*s", (int) rec->len, rec->text);
        r->out[r->count] = rec->out;
        r->time[r->count] = rec->time;
        r->number[r->count] = rec->number;
    }
    else
        snprintf (r->text[r->count], sizeof r->text[0], "!%s", error);
    r->count++;
}

//  Reads the last n lines with peer; returns what sc_history_read did.
static int64_t
s_read (sc_history_t *h, const char *peer, uint64_t n, read_t *r)
{
    memset (r, 0, sizeof *r);
    char why[800] = "";
    int64_t total = sc_history_read (h, peer, n, s_on_record, r, why, sizeof why);
    if (total < 0)
        snprintf (r->text[0], sizeof r->text[0], "!%s", why);
    return total;
}

//  The rows of the store as SQLite sees them.
typedef struct {
    size_t count;
    uint8_t id[256][32];
    size_t box_len[256];
} rows_t;

static void
s_rows (rows_t *rows)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    memset (rows, 0, sizeof *rows);
    assert_int_equal (sqlite3_open_v2 (g_db, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    assert_int_equal (sqlite3_prepare_v2 (db, "SELECT id, length(box) FROM rows", -1,
                                          &st, NULL), SQLITE_OK);
    while (sqlite3_step (st) == SQLITE_ROW) {
        assert_true (rows->count < 256);
        assert_int_equal (sqlite3_column_bytes (st, 0), 32);
        memcpy (rows->id[rows->count], sqlite3_column_blob (st, 0), 32);
        rows->box_len[rows->count] = (size_t) sqlite3_column_int64 (st, 1);
        rows->count++;
    }
    sqlite3_finalize (st);
    sqlite3_close (db);
}

//  The id of a row that is in after and not in before (the record the
//  append between them wrote: the index row keeps its id).
static void
s_new_row (const rows_t *before, const rows_t *after, uint8_t id[32])
{
    assert_int_equal (after->count, before->count + 1);
    for (size_t i = 0; i < after->count; i++) {
        bool old = false;
        for (size_t j = 0; j < before->count && !old; j++)
            old = memcmp (after->id[i], before->id[j], 32) == 0;
        if (!old) {
            memcpy (id, after->id[i], 32);
            return;
        }
    }
    fail_msg ("no new row");
}

//  Runs one statement with the ids given as ?1 and ?2 (either may be NULL).
static void
s_sql (const char *sql, const uint8_t *id1, const uint8_t *id2)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    assert_int_equal (sqlite3_open_v2 (g_db, &db, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
    assert_int_equal (sqlite3_prepare_v2 (db, sql, -1, &st, NULL), SQLITE_OK);
    if (id1)
        assert_int_equal (sqlite3_bind_blob (st, 1, id1, 32, SQLITE_STATIC), SQLITE_OK);
    if (id2)
        assert_int_equal (sqlite3_bind_blob (st, 2, id2, 32, SQLITE_STATIC), SQLITE_OK);
    assert_int_equal (sqlite3_step (st), SQLITE_DONE);
    assert_int_equal (sqlite3_changes (db), 1);
    sqlite3_finalize (st);
    assert_int_equal (sqlite3_close (db), SQLITE_OK);
}

//  Flips the low bit of byte at of the box under id.
static void
s_flip (const uint8_t id[32], size_t at)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    assert_int_equal (sqlite3_open_v2 (g_db, &db, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
    assert_int_equal (sqlite3_prepare_v2 (db, "SELECT box FROM rows WHERE id = ?1", -1,
                                          &st, NULL), SQLITE_OK);
    assert_int_equal (sqlite3_bind_blob (st, 1, id, 32, SQLITE_STATIC), SQLITE_OK);
    assert_int_equal (sqlite3_step (st), SQLITE_ROW);
    size_t len = (size_t) sqlite3_column_bytes (st, 0);
    assert_true (at < len);
    uint8_t *box = malloc (len);
    assert_non_null (box);
    memcpy (box, sqlite3_column_blob (st, 0), len);
    sqlite3_finalize (st);
    box[at] ^= 1;
    assert_int_equal (sqlite3_prepare_v2 (db, "UPDATE rows SET box = ?2 WHERE id = ?1",
                                          -1, &st, NULL), SQLITE_OK);
    assert_int_equal (sqlite3_bind_blob (st, 1, id, 32, SQLITE_STATIC), SQLITE_OK);
    assert_int_equal (sqlite3_bind_blob (st, 2, box, (int) len, SQLITE_STATIC), SQLITE_OK);
    assert_int_equal (sqlite3_step (st), SQLITE_DONE);
    sqlite3_finalize (st);
    free (box);
    assert_int_equal (sqlite3_close (db), SQLITE_OK);
}

//  Appends a line and returns the id of the record it wrote.
static void
s_append_id (sc_history_t *h, const char *peer, bool out, int64_t time,
             const char *text, uint8_t id[32])
{
    rows_t before, after;
    s_rows (&before);
    s_append (h, peer, out, time, text);
    s_rows (&after);
    s_new_row (&before, &after, id);
}

//  True when needle occurs in any file under dir (recursively).
static bool
s_found_under (const char *dir, const char *needle)
{
    DIR *d = opendir (dir);
    assert_non_null (d);
    bool found = false;
    struct dirent *e;
    while (!found && (e = readdir (d))) {
        if (strcmp (e->d_name, ".") == 0 || strcmp (e->d_name, "..") == 0)
            continue;
        char *path = sc_testdir_path (dir, e->d_name);
        struct stat st;
        assert_int_equal (lstat (path, &st), 0);
        if (S_ISDIR (st.st_mode))
            found = s_found_under (path, needle);
        else {
            size_t len = 0;
            char *data = sc_testdir_slurp (path, &len);
            assert_non_null (data);
            found = memmem (data, len, needle, strlen (needle)) != NULL;
            free (data);
        }
        free (path);
    }
    closedir (d);
    return found;
}

//  ---------------------------------------------------------------------
//  Tests

//  Lines come back in order, with who said them and when, after the
//  store is closed and opened again; the folder is 0700, the file 0600.
static void
test_roundtrip (void **state)
{
    (void) state;
    sc_history_t *h = s_open_clean ();
    s_append (h, "bob", true, 1000, "hello bob");
    s_append (h, "bob", false, 1001, "hi alice");
    s_append (h, "carol", false, 1002, "carol here");
    s_append (h, "bob", true, 1003, "how are you?");
    sc_history_destroy (&h);
    assert_null (h);

    h = s_open_clean ();
    read_t r;
    assert_int_equal (s_read (h, "bob", 20, &r), 3);
    assert_int_equal (r.count, 3);
    assert_string_equal (r.text[0], "hello bob");
    assert_true (r.out[0]);
    assert_int_equal (r.time[0], 1000);
    assert_string_equal (r.text[1], "hi alice");
    assert_false (r.out[1]);
    assert_int_equal (r.time[1], 1001);
    assert_string_equal (r.text[2], "how are you?");
    assert_int_equal (r.number[2], 2);
    //  the last n only
    assert_int_equal (s_read (h, "bob", 2, &r), 3);
    assert_int_equal (r.count, 2);
    assert_string_equal (r.text[0], "hi alice");
    assert_int_equal (s_read (h, "carol", 20, &r), 1);
    assert_string_equal (r.text[0], "carol here");
    assert_int_equal (s_read (h, "dave", 20, &r), 0);
    assert_int_equal (r.count, 0);
    //  a full-size line, and bad ones refused
    char big[4097];
    memset (big, 'x', 4096);
    big[4096] = 0;
    s_append (h, "dave", false, 5, big);
    char why[800];
    assert_int_equal (sc_history_append (h, "dave", false, 5, big, 4097, why, sizeof why), -1);
    assert_int_equal (sc_history_append (h, "Dave!", false, 5, "x", 1, why, sizeof why), -1);
    assert_int_equal (sc_history_append (h, "dave", false, 5, "", 0, why, sizeof why), -1);
    sc_history_destroy (&h);

    struct stat st;
    char *user = sc_testdir_path (g_dir, "alice");
    assert_int_equal (stat (user, &st), 0);
    assert_int_equal (st.st_mode & 0777, 0700);
    free (user);
    assert_int_equal (stat (g_db, &st), 0);
    assert_int_equal (st.st_mode & 0777, 0600);
}

//  No text, peer name or time in any file; every row is a 32-byte id and
//  a box whose size shows only a 256-byte bucket; the rows of one
//  conversation share nothing visible.
static void
test_nothing_readable (void **state)
{
    (void) state;
    sc_history_t *h = s_open_clean ();
    s_append (h, "zanzibar", true, 1700000000, "the plaintext-marker line");
    s_append (h, "zanzibar", false, 1700000001, "another plaintext-marker");
    s_append (h, "quixote", false, 1700000002, "x");
    sc_history_destroy (&h);
    assert_false (s_found_under (g_dir, "plaintext-marker"));
    assert_false (s_found_under (g_dir, "zanzibar"));
    assert_false (s_found_under (g_dir, "quixote"));
    assert_false (s_found_under (g_dir, "1700000000"));
    rows_t rows;
    s_rows (&rows);
    assert_int_equal (rows.count, 4);
    size_t records = 0;
    for (size_t i = 0; i < rows.count; i++) {
        //  nonce + 256-byte record + tag, or nonce + 1024-byte index + tag
        assert_true (rows.box_len[i] == 12 + 256 + 16 || rows.box_len[i] == 12 + 1024 + 16);
        records += rows.box_len[i] == 12 + 256 + 16;
    }
    assert_int_equal (records, 3);
}

//  Another key has a store of its own (a new key starts a new
//  history), and leaves the first as it was; the first store's file
//  given the other key's content opens nothing, says so, and is left
//  as it is.
static void
test_other_key (void **state)
{
    (void) state;
    sc_history_t *h = s_open_clean ();
    s_append (h, "bob", true, 1, "secret");
    sc_history_destroy (&h);
    size_t len_before = 0, len_after = 0;
    char *before = sc_testdir_slurp (g_db, &len_before);

    sc_key_t *other = sc_key_generate ();
    char why[800];
    h = sc_history_new (g_dir, "alice", other, why, sizeof why);
    assert_non_null (h);
    assert_string_equal (why, "");
    assert_true (sc_history_usable (h));
    assert_string_not_equal (sc_history_path (h), g_db);
    read_t r;
    assert_int_equal (s_read (h, "bob", 20, &r), 0);
    char *other_db = strdup (sc_history_path (h));
    sc_history_destroy (&h);
    char *after = sc_testdir_slurp (g_db, &len_after);
    assert_int_equal (len_before, len_after);
    assert_memory_equal (before, after, len_before);
    free (after);

    //  the other key's store where this key's should be
    size_t other_len = 0;
    char *other_bytes = sc_testdir_slurp (other_db, &other_len);
    assert_non_null (other_bytes);
    FILE *file = fopen (g_db, "w");
    assert_non_null (file);
    assert_int_equal (fwrite (other_bytes, 1, other_len, file), other_len);
    assert_int_equal (fclose (file), 0);
    h = s_open (why, sizeof why);
    assert_false (sc_history_usable (h));
    assert_non_null (strstr (why, "another key"));
    assert_int_equal (s_read (h, "bob", 20, &r), -1);
    assert_non_null (strstr (r.text[0], "another key"));
    assert_int_equal (sc_history_append (h, "bob", false, 2, "x", 1, why, sizeof why), -1);
    assert_int_equal (sc_history_forget (h, "bob", why, sizeof why), -1);
    sc_history_destroy (&h);
    after = sc_testdir_slurp (g_db, &len_after);
    assert_int_equal (len_after, other_len);
    assert_memory_equal (after, other_bytes, other_len);
    free (after);

    //  put back, the right key opens it again
    file = fopen (g_db, "w");
    assert_non_null (file);
    assert_int_equal (fwrite (before, 1, len_before, file), len_before);
    assert_int_equal (fclose (file), 0);
    h = s_open_clean ();
    assert_int_equal (s_read (h, "bob", 20, &r), 1);
    assert_string_equal (r.text[0], "secret");
    sc_history_destroy (&h);
    sc_key_destroy (&other);
    free (before);
    free (other_bytes);
    free (other_db);
}

//  A record changed by one bit is reported where it stood; the others
//  still show.
static void
test_modified_record (void **state)
{
    (void) state;
    sc_history_t *h = s_open_clean ();
    uint8_t id[32];
    s_append (h, "bob", true, 1, "one");
    s_append_id (h, "bob", false, 2, "two", id);
    s_append (h, "bob", true, 3, "three");
    //  flip a bit in the ciphertext, past the nonce
    s_flip (id, 20);
    read_t r;
    assert_int_equal (s_read (h, "bob", 20, &r), 3);
    assert_int_equal (r.count, 3);
    assert_string_equal (r.text[0], "one");
    assert_string_equal (r.text[1], "!the conversation with bob: message 2 of 3 does not "
                         "authenticate: the store was altered");
    assert_string_equal (r.text[2], "three");
    sc_history_destroy (&h);
}

//  Two records swapped, or one moved into another conversation: neither
//  authenticates where it now stands.
static void
test_swapped_and_moved (void **state)
{
    (void) state;
    sc_history_t *h = s_open_clean ();
    uint8_t a[32], b[32], c[32];
    s_append_id (h, "bob", true, 1, "first", a);
    s_append_id (h, "bob", true, 2, "second", b);
    s_append_id (h, "carol", true, 3, "to carol", c);
    s_sql ("UPDATE rows SET box = (SELECT box FROM rows WHERE id = ?2) WHERE id = ?1",
           a, b);
    read_t r;
    assert_int_equal (s_read (h, "bob", 20, &r), 2);
    assert_true (r.text[0][0] == '!');      //  "second" in the first place
    assert_string_equal (r.text[1], "second");
    s_sql ("UPDATE rows SET box = (SELECT box FROM rows WHERE id = ?2) WHERE id = ?1",
           b, c);
    assert_int_equal (s_read (h, "bob", 20, &r), 2);
    assert_string_equal (r.text[1], "!the conversation with bob: message 2 of 2 does not "
                         "authenticate: the store was altered");
    sc_history_destroy (&h);
}

//  The last record dropped (so that what remains reads as a shorter
//  conversation) and a record in the middle dropped: reported, as
//  missing, and when the store opens.
static void
test_dropped_records (void **state)
{
    (void) state;
    sc_history_t *h = s_open_clean ();
    uint8_t middle[32], last[32];
    s_append (h, "bob", true, 1, "one");
    s_append_id (h, "bob", false, 2, "two", middle);
    s_append_id (h, "bob", true, 3, "three", last);
    s_sql ("DELETE FROM rows WHERE id = ?1", last, NULL);
    read_t r;
    assert_int_equal (s_read (h, "bob", 20, &r), 3);
    assert_int_equal (r.count, 3);
    assert_string_equal (r.text[0], "one");
    assert_string_equal (r.text[1], "two");
    assert_string_equal (r.text[2], "!the conversation with bob: message 3 of 3 is "
                         "missing: the store was altered");
    s_sql ("DELETE FROM rows WHERE id = ?1", middle, NULL);
    assert_int_equal (s_read (h, "bob", 20, &r), 3);
    assert_string_equal (r.text[1], "!the conversation with bob: message 2 of 3 is "
                         "missing: the store was altered");
    sc_history_destroy (&h);

    //  on opening: the rows do not add up; the store is still used
    char why[800];
    h = s_open (why, sizeof why);
    assert_non_null (strstr (why, "holds 1 records where its index counts 3"));
    assert_true (sc_history_usable (h));
    s_append (h, "bob", true, 4, "four");
    assert_int_equal (s_read (h, "bob", 1, &r), 4);
    assert_string_equal (r.text[0], "four");
    sc_history_destroy (&h);
}

//  The index dropped, or replaced by an older one of its own: the first
//  is a store that cannot be used; the second shows as records missing
//  at the end is all it can (docs/SECURITY.md: a rollback of the whole
//  store is not seen), but a conversation made to look empty is not.
static void
test_index_dropped (void **state)
{
    (void) state;
    sc_history_t *h = s_open_clean ();
    s_append (h, "bob", true, 1, "one");
    sc_history_destroy (&h);
    sqlite3 *db = NULL;
    assert_int_equal (sqlite3_open (g_db, &db), SQLITE_OK);
    assert_int_equal (sqlite3_exec (db, "DELETE FROM rows WHERE length(box) = 1052",
                                    NULL, NULL, NULL), SQLITE_OK);
    assert_int_equal (sqlite3_changes (db), 1);
    sqlite3_close (db);
    char why[800];
    h = s_open (why, sizeof why);
    assert_false (sc_history_usable (h));
    assert_non_null (strstr (why, "has no index"));
    read_t r;
    assert_int_equal (s_read (h, "bob", 20, &r), -1);
    sc_history_destroy (&h);
}

//  A truncated file, or one emptied, is never taken for a store with
//  nothing in it, and is not written over.
static void
test_truncated (void **state)
{
    (void) state;
    sc_history_t *h = s_open_clean ();
    for (int i = 0; i < 40; i++)
        s_append (h, "bob", i % 2, i, "a line long enough to fill the pages of the store, "
                  "a line long enough to fill the pages of the store");
    sc_history_destroy (&h);
    struct stat st;
    assert_int_equal (stat (g_db, &st), 0);
    assert_true (st.st_size > 8192);
    //  a page in the middle overwritten (SQLite's pages are 4 KiB): the
    //  size is right, the structure is not
    size_t len = 0;
    char *saved = sc_testdir_slurp (g_db, &len);
    assert_non_null (saved);
    FILE *file = fopen (g_db, "r+");
    assert_non_null (file);
    assert_int_equal (fseek (file, 4096 + 0, SEEK_SET), 0);
    char junk[64];
    memset (junk, 0x5a, sizeof junk);
    assert_int_equal (fwrite (junk, 1, sizeof junk, file), sizeof junk);
    assert_int_equal (fclose (file), 0);
    char damaged[800];
    h = s_open (damaged, sizeof damaged);
    assert_false (sc_history_usable (h));
    if (!strstr (damaged, "damaged or truncated"))
        fprintf (stderr, "why: %s\n", damaged);
    assert_non_null (strstr (damaged, "damaged or truncated"));
    assert_null (strchr (damaged, '\n'));          //  one line, for batch mode
    sc_history_destroy (&h);
    file = fopen (g_db, "w");
    assert_non_null (file);
    assert_int_equal (fwrite (saved, 1, len, file), len);
    assert_int_equal (fclose (file), 0);
    free (saved);
    h = s_open_clean ();
    sc_history_destroy (&h);

    assert_int_equal (truncate (g_db, st.st_size / 2), 0);
    char why[800];
    h = s_open (why, sizeof why);
    assert_false (sc_history_usable (h));
    if (!strstr (why, "damaged or truncated"))
        fprintf (stderr, "why: %s\n", why);
    assert_non_null (strstr (why, "damaged or truncated"));
    read_t r;
    assert_int_equal (s_read (h, "bob", 20, &r), -1);
    sc_history_destroy (&h);
    assert_int_equal (stat (g_db, &st), 0);
    assert_true (st.st_size > 4096);

    assert_int_equal (truncate (g_db, 0), 0);
    h = s_open (why, sizeof why);
    assert_false (sc_history_usable (h));
    assert_non_null (strstr (why, "empty or not a secchat history"));
    sc_history_destroy (&h);
    assert_int_equal (stat (g_db, &st), 0);
    assert_int_equal (st.st_size, 0);
}

//  /forget deletes the records and the entry; the conversation that
//  starts again is new, and the old records put back do not join it.
static void
test_forget (void **state)
{
    (void) state;
    sc_history_t *h = s_open_clean ();
    uint8_t old[32];
    s_append_id (h, "bob", true, 1, "old line", old);
    s_append (h, "bob", false, 2, "old answer");
    s_append (h, "carol", false, 3, "kept");
    sqlite3 *db = NULL;
    assert_int_equal (sqlite3_open (g_db, &db), SQLITE_OK);
    sqlite3_stmt *st = NULL;
    assert_int_equal (sqlite3_prepare_v2 (db, "SELECT box FROM rows WHERE id = ?1", -1,
                                          &st, NULL), SQLITE_OK);
    assert_int_equal (sqlite3_bind_blob (st, 1, old, 32, SQLITE_STATIC), SQLITE_OK);
    assert_int_equal (sqlite3_step (st), SQLITE_ROW);
    size_t old_len = (size_t) sqlite3_column_bytes (st, 0);
    uint8_t *old_box = malloc (old_len);
    assert_non_null (old_box);
    memcpy (old_box, sqlite3_column_blob (st, 0), old_len);
    sqlite3_finalize (st);
    sqlite3_close (db);

    char why[800];
    assert_int_equal (sc_history_forget (h, "bob", why, sizeof why), 0);
    read_t r;
    assert_int_equal (s_read (h, "bob", 20, &r), 0);
    assert_int_equal (s_read (h, "carol", 20, &r), 1);
    rows_t rows;
    s_rows (&rows);
    assert_int_equal (rows.count, 2);              //  the index and carol's line
    assert_int_equal (sc_history_forget (h, "nobody", why, sizeof why), 0);

    //  a new conversation with bob: the old record, put back under its
    //  id or under the new first record's, is not part of it
    uint8_t first[32];
    s_append_id (h, "bob", true, 10, "new line", first);
    assert_int_equal (sqlite3_open (g_db, &db), SQLITE_OK);
    assert_int_equal (sqlite3_prepare_v2 (db, "INSERT INTO rows (id, box) VALUES (?1, ?2)",
                                          -1, &st, NULL), SQLITE_OK);
    assert_int_equal (sqlite3_bind_blob (st, 1, old, 32, SQLITE_STATIC), SQLITE_OK);
    assert_int_equal (sqlite3_bind_blob (st, 2, old_box, (int) old_len, SQLITE_STATIC),
                      SQLITE_OK);
    assert_int_equal (sqlite3_step (st), SQLITE_DONE);
    sqlite3_finalize (st);
    assert_int_equal (sqlite3_prepare_v2 (db, "UPDATE rows SET box = ?2 WHERE id = ?1",
                                          -1, &st, NULL), SQLITE_OK);
    assert_int_equal (sqlite3_bind_blob (st, 1, first, 32, SQLITE_STATIC), SQLITE_OK);
    assert_int_equal (sqlite3_bind_blob (st, 2, old_box, (int) old_len, SQLITE_STATIC),
                      SQLITE_OK);
    assert_int_equal (sqlite3_step (st), SQLITE_DONE);
    sqlite3_finalize (st);
    sqlite3_close (db);
    free (old_box);
    assert_int_equal (s_read (h, "bob", 20, &r), 1);
    assert_int_equal (r.count, 1);
    assert_string_equal (r.text[0], "!the conversation with bob: message 1 of 1 does not "
                         "authenticate: the store was altered");
    sc_history_destroy (&h);
    assert_false (s_found_under (g_dir, "old line"));
}

//  A writer killed at any moment loses at most the line it was writing:
//  every line it reported written is there, the store opens clean (SQLite
//  rolls the hot journal back), and the journal it left holds no text.
static void
test_killed_writer (void **state)
{
    (void) state;
    sc_history_t *h = s_open_clean ();
    sc_history_destroy (&h);
    bool saw_journal = false;
    uint64_t written = 0;
    for (int round = 0; round < 8 && !(saw_journal && round >= 3); round++) {
        int fds[2];
        assert_int_equal (pipe (fds), 0);
        pid_t pid = fork ();
        assert_true (pid >= 0);
        if (pid == 0) {
            close (fds[0]);
            sc_history_t *w = sc_history_new (g_dir, "alice", g_key, NULL, 0);
            for (int i = 0; w; i++) {
                char text[64];
                snprintf (text, sizeof text, "journal-marker %d", i);
                if (sc_history_append (w, "peer-name-marker", true, i, text, strlen (text), NULL, 0))
                    _exit (3);
                if (write (fds[1], "x", 1) != 1)
                    _exit (4);
            }
            _exit (5);
        }
        close (fds[1]);
        char buf[64];
        uint64_t done = 0;
        int64_t until = sc_testproc_now_ms () + 150 + 40 * round;
        while (sc_testproc_now_ms () < until) {
            ssize_t got = read (fds[0], buf, sizeof buf);
            if (got <= 0)
                break;
            done += (uint64_t) got;
        }
        //  not just after a write to the pipe: anywhere in an append
        sc_testproc_sleep_ms (3 + 7 * round % 23);
        kill (pid, SIGKILL);
        int status = 0;
        assert_int_equal (waitpid (pid, &status, 0), pid);
        assert_true (WIFSIGNALED (status));
        ssize_t got;
        while ((got = read (fds[0], buf, sizeof buf)) > 0)
            done += (uint64_t) got;
        close (fds[0]);
        written += done;

        char journal[1024];
        snprintf (journal, sizeof journal, "%s-journal", g_db);
        struct stat st;
        if (stat (journal, &st) == 0 && st.st_size > 0)
            saw_journal = true;
        assert_false (s_found_under (g_dir, "journal-marker"));
        assert_false (s_found_under (g_dir, "peer-name-marker"));

        h = s_open_clean ();
        read_t r;
        int64_t total = s_read (h, "peer-name-marker", 1, &r);
        assert_true (total >= 0 && (uint64_t) total >= written && (uint64_t) total <= written + 1);
        written = (uint64_t) total;
        if (total > 0)
            assert_true (r.text[0][0] != '!');
        sc_history_destroy (&h);
    }
    if (!saw_journal)
        fprintf (stderr, "note: no kill fell inside a transaction\n");
    assert_true (written > 0);
}

//  Two clients of the same user started at once (two terminals) both
//  find no store and create one. Each must end with the same, usable
//  store: neither may replace the other's, nor fail, nor lose a line.
//  Several processes race to create it, many times over.
#define RACERS      6
#define RACE_ROUNDS 30

static void s_racer (const char *dir, int go, int n) __attribute__ ((noreturn));

static void
s_racer (const char *dir, int go, int n)
{
    char c, why[800] = "", text[32];
    if (read (go, &c, 1) != 0)          //  the end of the pipe: go
        _exit (10);
    sc_history_t *h = sc_history_new (dir, "alice", g_key, why, sizeof why);
    if (!h || !sc_history_usable (h) || why[0]) {
        fprintf (stderr, "racer %d: store not usable: %s\n", n, why);
        _exit (11);
    }
    snprintf (text, sizeof text, "from racer %d", n);
    if (sc_history_append (h, "bob", n % 2 == 1, n, text, strlen (text), why, sizeof why)) {
        fprintf (stderr, "racer %d: append: %s\n", n, why);
        _exit (12);
    }
    sc_history_destroy (&h);
    _exit (0);
}

static void
test_racing_creators (void **state)
{
    (void) state;
    for (int round = 0; round < RACE_ROUNDS; round++) {
        char name[32];
        snprintf (name, sizeof name, "round-%d", round);
        char *dir = sc_testdir_path (g_dir, name);
        assert_non_null (dir);
        int fds[2];
        assert_int_equal (pipe (fds), 0);
        pid_t pids[RACERS];
        for (int i = 0; i < RACERS; i++) {
            pids[i] = fork ();
            assert_true (pids[i] >= 0);
            if (pids[i] == 0) {
                close (fds[1]);
                s_racer (dir, fds[0], i);
            }
        }
        close (fds[0]);
        sc_testproc_sleep_ms (20);      //  every racer waiting at the pipe
        close (fds[1]);
        int failed = 0;
        for (int i = 0; i < RACERS; i++) {
            int status = 0;
            assert_int_equal (waitpid (pids[i], &status, 0), pids[i]);
            if (!WIFEXITED (status) || WEXITSTATUS (status) != 0)
                failed++;
        }
        if (failed)
            fail_msg ("round %d: %d of %d racers had no usable store", round, failed,
                      RACERS);
        //  one store, holding every racer's line, and nothing beside it
        char why[800] = "";
        sc_history_t *h = sc_history_new (dir, "alice", g_key, why, sizeof why);
        assert_non_null (h);
        if (why[0])
            fail_msg ("round %d: %s", round, why);
        assert_true (sc_history_usable (h));
        read_t r;
        int64_t total = s_read (h, "bob", RACERS + 1, &r);
        if (total != RACERS)
            fail_msg ("round %d: %lld lines kept of the %d written", round,
                      (long long) total, RACERS);
        for (int i = 0; i < RACERS; i++) {
            char text[32];
            snprintf (text, sizeof text, "from racer %d", i);
            int seen = 0;
            for (size_t j = 0; j < r.count; j++)
                seen += strcmp (r.text[j], text) == 0;
            assert_int_equal (seen, 1);
        }
        char *folder = sc_testdir_path (dir, "alice");
        assert_non_null (folder);
        DIR *d = opendir (folder);
        assert_non_null (d);
        int files = 0;
        struct dirent *e;
        while ((e = readdir (d)))
            if (strcmp (e->d_name, ".") && strcmp (e->d_name, "..")) {
                files++;
                assert_string_equal (e->d_name, strrchr (sc_history_path (h), '/') + 1);
            }
        closedir (d);
        assert_int_equal (files, 1);
        sc_history_destroy (&h);
        free (folder);
        free (dir);
    }
}

//  What the commands print, batch and human, and their usage errors.
typedef struct {
    size_t count;
    char line[16][700];
} out_t;

static void
s_out (void *arg, const char *code, const char *text)
{
    out_t *o = arg;
    assert_true (o->count < 16);
    if (code)
        snprintf (o->line[o->count++], sizeof o->line[0], "error %s %s", code, text);
    else
        snprintf (o->line[o->count++], sizeof o->line[0], "%s", text);
}

static void
s_cmd (sc_history_t *h, const char *line, const char *peer, bool batch, out_t *o)
{
    memset (o, 0, sizeof *o);
    assert_true (sc_history_is_command (line, strlen (line)));
    sc_history_command (h, line, strlen (line), peer, batch, s_out, o);
}

static void
test_commands (void **state)
{
    (void) state;
    assert_false (sc_history_is_command ("/historyx", 9));
    assert_false (sc_history_is_command ("//history", 9));
    assert_false (sc_history_is_command ("hello", 5));
    sc_history_t *h = s_open_clean ();
    s_append (h, "bob", true, 0, "at the epoch");
    s_append (h, "bob", false, 1733184000, "bell\a and \x1b[2J escape");
    s_append (h, "bob", true, 1733184001, "third");
    out_t o;
    s_cmd (h, "/history bob 2", NULL, true, &o);
    assert_int_equal (o.count, 3);
    assert_string_equal (o.line[0], "hist bob 2024-12-03T00:00:00Z in bell? and ?[2J escape");
    assert_string_equal (o.line[1], "hist bob 2024-12-03T00:00:01Z out third");
    assert_string_equal (o.line[2], "hist-end bob");
    s_cmd (h, "/history", "bob", true, &o);
    assert_int_equal (o.count, 4);
    assert_string_equal (o.line[0], "hist bob 1970-01-01T00:00:00Z out at the epoch");
    s_cmd (h, "/history 1", "bob", true, &o);
    assert_int_equal (o.count, 2);
    assert_string_equal (o.line[0], "hist bob 2024-12-03T00:00:01Z out third");
    s_cmd (h, "/history carol", "bob", true, &o);
    assert_int_equal (o.count, 1);
    assert_string_equal (o.line[0], "hist-end carol");
    s_cmd (h, "/history bob", NULL, false, &o);
    assert_int_equal (o.count, 4);
    assert_non_null (strstr (o.line[0], "] you: at the epoch"));
    assert_non_null (strstr (o.line[1], "] bob: bell? and"));
    assert_string_equal (o.line[3], "-- the last 3 of 3 messages with bob");

    const char *bad[] = { "/history", "/history bob 0", "/history Bob", "/history bob x",
                          "/history bob 100001", "/history a b c", "/forget",
                          "/forget a b", "/forget B@d" };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        s_cmd (h, bad[i], NULL, true, &o);
        assert_int_equal (o.count, 1);
        assert_true (strncmp (o.line[0], "error usage /", 13) == 0);
    }
    s_cmd (h, "/forget bob", NULL, true, &o);
    assert_int_equal (o.count, 1);
    assert_string_equal (o.line[0], "forgotten bob");
    s_cmd (h, "/history bob", NULL, true, &o);
    assert_string_equal (o.line[0], "hist-end bob");
    sc_history_destroy (&h);

    //  history off
    s_cmd (NULL, "/history bob", NULL, true, &o);
    assert_string_equal (o.line[0], "error history no history is kept (--no-history)");
    s_cmd (NULL, "/forget bob", NULL, true, &o);
    assert_string_equal (o.line[0], "error history no history is kept (--no-history)");
}

//  The client's events: a received line is "in", a sent one "out";
//  nothing else is kept.
static void
test_events (void **state)
{
    (void) state;
    sc_history_t *h = s_open_clean ();
    char why[800];
    sc_event_t in = { .type = SC_EV_MSG, .name = "bob", .text = "from bob" };
    sc_event_t out = { .type = SC_EV_SENT, .name = "bob", .text = "to bob" };
    sc_event_t other = { .type = SC_EV_ERROR, .code = "e2e", .text = "not a line" };
    sc_event_t users = { .type = SC_EV_USERS, .name = "bob", .text = "bob carol" };
    assert_int_equal (sc_history_event (h, &in, why, sizeof why), 0);
    assert_int_equal (sc_history_event (h, &out, why, sizeof why), 0);
    assert_int_equal (sc_history_event (h, &other, why, sizeof why), 0);
    assert_int_equal (sc_history_event (h, &users, why, sizeof why), 0);
    assert_int_equal (sc_history_event (NULL, &in, why, sizeof why), 0);
    read_t r;
    assert_int_equal (s_read (h, "bob", 20, &r), 2);
    assert_string_equal (r.text[0], "from bob");
    assert_false (r.out[0]);
    assert_string_equal (r.text[1], "to bob");
    assert_true (r.out[1]);
    assert_true (r.time[1] > 1700000000);
    sc_history_destroy (&h);
}

//  The default directory follows XDG_DATA_HOME, then HOME.
//  A history folder that belongs to another user is not used: whoever
//  owns it could read what is written or swap the store.
static void
test_foreign_dir (void **state)
{
    (void) state;
    char *base = sc_testdir_new ("history-foreign");
    assert_non_null (base);
    const char *dir = base, *user = "mallory";
    if (geteuid () == 0) {
        char *folder = sc_testdir_path (base, user);
        assert_int_equal (mkdir (folder, 0700), 0);
        assert_int_equal (chown (folder, 65534, 65534), 0);
        free (folder);
    }
    else {
        dir = "/";          //  /tmp belongs to root
        user = "tmp";
    }
    sc_key_t *key = sc_key_generate ();
    assert_non_null (key);
    char why[800];
    sc_history_t *h = sc_history_new (dir, user, key, why, sizeof why);
    assert_non_null (h);
    assert_false (sc_history_usable (h));
    assert_non_null (strstr (why, "belongs to another user"));
    sc_history_destroy (&h);
    sc_key_destroy (&key);
    sc_testdir_remove (base);
    free (base);
}

static void
test_default_dir (void **state)
{
    (void) state;
    char *saved_xdg = getenv ("XDG_DATA_HOME") ? strdup (getenv ("XDG_DATA_HOME")) : NULL;
    char *saved_home = getenv ("HOME") ? strdup (getenv ("HOME")) : NULL;
    setenv ("XDG_DATA_HOME", "/x/data", 1);
    setenv ("HOME", "/home/u", 1);
    char *dir = sc_history_default_dir ();
    assert_string_equal (dir, "/x/data/secchat");
    free (dir);
    setenv ("XDG_DATA_HOME", "relative", 1);
    dir = sc_history_default_dir ();
    assert_string_equal (dir, "/home/u/.local/share/secchat");
    free (dir);
    unsetenv ("XDG_DATA_HOME");
    unsetenv ("HOME");
    assert_null (sc_history_default_dir ());
    //  no directory: a store that says so to every command
    sc_key_t *key = sc_key_generate ();
    char why[800];
    sc_history_t *h = sc_history_new (NULL, "alice", key, why, sizeof why);
    assert_non_null (h);
    assert_false (sc_history_usable (h));
    assert_non_null (strstr (why, "set HOME or give --data-dir"));
    out_t o;
    s_cmd (h, "/history bob", NULL, true, &o);
    assert_int_equal (o.count, 1);
    assert_non_null (strstr (o.line[0], "error history no data directory"));
    sc_history_destroy (&h);
    sc_key_destroy (&key);
    if (saved_xdg)
        setenv ("XDG_DATA_HOME", saved_xdg, 1);
    if (saved_home)
        setenv ("HOME", saved_home, 1);
    free (saved_xdg);
    free (saved_home);
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown (test_roundtrip, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_nothing_readable, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_other_key, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_modified_record, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_swapped_and_moved, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_dropped_records, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_index_dropped, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_truncated, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_forget, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_killed_writer, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_racing_creators, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_commands, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_events, s_setup, s_teardown),
        cmocka_unit_test (test_default_dir),
        cmocka_unit_test (test_foreign_dir),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
