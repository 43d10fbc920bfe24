/*  sc_history: the client's conversations, kept encrypted on disk.

    The bytes, all big-endian (docs/SECURITY.md "Conversation history"):

      keys    root    = sc_key_derive (key, "secchat/1 history")
              seal    = HKDF-Expand-Label (root, "history seal", USER)
              id      = HKDF-Expand-Label (root, "history id", USER)
      cid     HMAC (id, "conversation" 0x00 NAME)
      row ids index:  HMAC (id, "index")
              record: HMAC (id, "record" 0x00 epoch[16] u64 n)
      box     nonce[12] (random) || ChaCha20-Poly1305 (seal, nonce, AD, pt)
      AD      index:  "secchat/1 history index"
              record: "secchat/1 history record" 0x00 cid[32] epoch[16] u64 n
      index   u8 1, u32 count, then per conversation: u8 len, NAME,
              epoch[16], u64 records; zeros to a multiple of 1024 bytes
      record  u8 1, u8 direction (0 in, 1 out), i64 time, u16 len, TEXT;
              zeros to a multiple of 256 bytes

    Random nonces, because the index is rewritten in place under the
    same key: 2^32 boxes written keep the chance of a repeat below 2^-32.
    The epoch, new whenever a conversation starts (again, after /forget),
    keeps records of a forgotten conversation from passing as the new
    one's.

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at https://mozilla.org/MPL/2.0/.
*/
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "sc_crypto.h"
#include "sc_history.h"
#include "sc_msg.h"

#define S_FILE_ID       8           /* bytes of the file's id, in hex    */
#define S_VERSION       1
#define S_EPOCH_LEN     16
#define S_RECORD_PAD    256
#define S_INDEX_PAD     1024
#define S_RECORD_HEAD   12          /* version, direction, time, length  */
#define S_BOX_EXTRA     (SC_NONCE_LEN + SC_TAG_LEN)
#define S_WHY_MAX       600
#define S_BUSY_MS       5000

static const char s_ad_index[] = "secchat/1 history index";
static const char s_ad_record[] = "secchat/1 history record";

typedef struct {
    char name[SC_NAME_MAX + 1];
    uint8_t epoch[S_EPOCH_LEN];
    uint64_t count;
} s_conv_t;

typedef struct {
    s_conv_t *conv;
    size_t size;
} s_index_t;

struct _sc_history_t {
    sqlite3 *db;
    char *path;
    char user[SC_NAME_MAX + 1];
    uint8_t seal_key[SC_KEY_LEN];
    uint8_t id_key[SC_KEY_LEN];
    uint8_t index_id[SC_HASH_LEN];
    char broken[S_WHY_MAX + 32];        /* "" while the store is usable  */
};

/* ---- Small helpers ------------------------------------------------------- */

static void
s_put64 (uint8_t *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--, v >>= 8)
        p[i] = (uint8_t) v;
}

static uint64_t
s_get64 (const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | p[i];
    return v;
}

static void
s_say (char *why, size_t size, const char *fmt, ...) __attribute__ ((format (printf, 3, 4)));

/* One line: a control character (a newline in SQLite's own report, in
   a path) would break the batch format. */
static void
s_one_line (char *text)
{
    for (; *text; text++)
        if ((unsigned char) *text < 0x20 || *text == 0x7f)
            *text = ' ';
}

static void
s_say (char *why, size_t size, const char *fmt, ...)
{
    if (!why || !size)
        return;
    va_list ap;
    va_start (ap, fmt);
    vsnprintf (why, size, fmt, ap);
    va_end (ap);
    s_one_line (why);
}

/* A formatted string, malloc'd, or NULL. */
static char *
s_strf (const char *fmt, ...) __attribute__ ((format (printf, 1, 2)));

static char *
s_strf (const char *fmt, ...)
{
    va_list ap;
    va_start (ap, fmt);
    int n = vsnprintf (NULL, 0, fmt, ap);
    va_end (ap);
    char *str = n >= 0 ? malloc ((size_t) n + 1) : NULL;
    if (str) {
        va_start (ap, fmt);
        vsnprintf (str, (size_t) n + 1, fmt, ap);
        va_end (ap);
    }
    return str;
}

static void s_close_db (sc_history_t *self);

/* The store cannot be used in this run: closed, and why kept (every
   command answers with it). */
static void
s_fail (sc_history_t *self, const char *fmt, ...) __attribute__ ((format (printf, 2, 3)));

static void
s_fail (sc_history_t *self, const char *fmt, ...)
{
    char what[S_WHY_MAX];
    va_list ap;
    va_start (ap, fmt);
    vsnprintf (what, sizeof what, fmt, ap);
    va_end (ap);
    snprintf (self->broken, sizeof self->broken, "%s: nothing is recorded", what);
    s_one_line (self->broken);
    s_close_db (self);
}

static void
s_sqlite_why (sc_history_t *self, char *why, size_t size, const char *doing)
{
    s_say (why, size, "the history store %s: cannot %s: %s", self->path, doing,
           self->db ? sqlite3_errmsg (self->db) : "not open");
}

static int
s_exec (sc_history_t *self, const char *sql)
{
    return sqlite3_exec (self->db, sql, NULL, NULL, NULL) == SQLITE_OK ? 0 : -1;
}

static void
s_rollback (sc_history_t *self)
{
    if (!sqlite3_get_autocommit (self->db))
        (void) s_exec (self, "ROLLBACK");
}

static int
s_commit (sc_history_t *self, char *why, size_t size)
{
    if (s_exec (self, "COMMIT") == 0)
        return 0;
    s_sqlite_why (self, why, size, "write");
    s_rollback (self);
    return -1;
}

/* ---- Ids and boxes ----------------------------------------------------------- */

static int
s_cid (const sc_history_t *self, const char *name, uint8_t cid[static SC_HASH_LEN])
{
    static const char label[] = "conversation";
    uint8_t data[sizeof label + SC_NAME_MAX];
    size_t len = strlen (name);
    memcpy (data, label, sizeof label - 1);
    data[sizeof label - 1] = 0;
    memcpy (data + sizeof label, name, len);
    return sc_hmac (self->id_key, data, sizeof label + len, cid);
}

static int
s_record_id (const sc_history_t *self, const s_conv_t *conv, uint64_t n,
             uint8_t id[static SC_HASH_LEN])
{
    static const char label[] = "record";
    uint8_t data[sizeof label + S_EPOCH_LEN + 8];
    memcpy (data, label, sizeof label - 1);
    data[sizeof label - 1] = 0;
    memcpy (data + sizeof label, conv->epoch, S_EPOCH_LEN);
    s_put64 (data + sizeof label + S_EPOCH_LEN, n);
    return sc_hmac (self->id_key, data, sizeof data, id);
}

/* AD of record n: label, 0x00, cid, epoch, n. */
static int
s_record_ad (const sc_history_t *self, const s_conv_t *conv, uint64_t n,
             uint8_t ad[static sizeof s_ad_record + SC_HASH_LEN + S_EPOCH_LEN + 8])
{
    memcpy (ad, s_ad_record, sizeof s_ad_record);
    uint8_t *p = ad + sizeof s_ad_record;
    if (s_cid (self, conv->name, p))
        return -1;
    memcpy (p + SC_HASH_LEN, conv->epoch, S_EPOCH_LEN);
    s_put64 (p + SC_HASH_LEN + S_EPOCH_LEN, n);
    return 0;
}
#define S_RECORD_AD_LEN (sizeof s_ad_record + SC_HASH_LEN + S_EPOCH_LEN + 8)

/* box = nonce || ciphertext || tag, malloc'd. */
static int
s_seal (const sc_history_t *self, const uint8_t *ad, size_t ad_len,
        const uint8_t *pt, size_t len, uint8_t **box, size_t *box_len)
{
    *box_len = len + S_BOX_EXTRA;
    *box = malloc (*box_len);
    if (!*box)
        return -1;
    if (sc_random (*box, SC_NONCE_LEN) == 0
        && sc_aead_seal (self->seal_key, *box, ad, ad_len, pt, len,
                         *box + SC_NONCE_LEN) == 0)
        return 0;
    free (*box);
    *box = NULL;
    return -1;
}

/* The plaintext of a box, malloc'd (len >= 1 allocated). -1 when it
   does not authenticate. */
static int
s_open (const sc_history_t *self, const uint8_t *ad, size_t ad_len,
        const uint8_t *box, size_t box_len, uint8_t **pt, size_t *len)
{
    *pt = NULL;
    if (box_len < S_BOX_EXTRA)
        return -1;
    *len = box_len - S_BOX_EXTRA;
    *pt = malloc (*len ? *len : 1);
    if (!*pt)
        return -1;
    if (sc_aead_open (self->seal_key, box, ad, ad_len, box + SC_NONCE_LEN,
                      box_len - SC_NONCE_LEN, *pt) == 0)
        return 0;
    free (*pt);
    *pt = NULL;
    return -1;
}

static void
s_free_secret (uint8_t **buf, size_t len)
{
    if (*buf) {
        sc_wipe (*buf, len);
        free (*buf);
        *buf = NULL;
    }
}

/* ---- Rows ------------------------------------------------------------------- */

/* The box under id, malloc'd: 1, 0 when there is none, -1 on error. */
static int
s_row_get (sc_history_t *self, const uint8_t id[static SC_HASH_LEN],
           uint8_t **box, size_t *len)
{
    sqlite3_stmt *st = NULL;
    int found = -1;
    *box = NULL;
    if (sqlite3_prepare_v2 (self->db, "SELECT box FROM rows WHERE id = ?1", -1,
                            &st, NULL) != SQLITE_OK
        || sqlite3_bind_blob (st, 1, id, SC_HASH_LEN, SQLITE_STATIC) != SQLITE_OK)
        goto done;
    int rc = sqlite3_step (st);
    if (rc == SQLITE_DONE)
        found = 0;
    else if (rc == SQLITE_ROW) {
        const void *data = sqlite3_column_blob (st, 0);
        int bytes = sqlite3_column_bytes (st, 0);
        *len = bytes > 0 ? (size_t) bytes : 0;
        *box = malloc (*len ? *len : 1);
        if (*box) {
            if (*len)
                memcpy (*box, data, *len);
            found = 1;
        }
    }
done:
    sqlite3_finalize (st);
    return found;
}

/* Insert a row (replace: or overwrite the one there). */
static int
s_row_put (sc_history_t *self, const uint8_t id[static SC_HASH_LEN],
           const uint8_t *box, size_t len, bool replace)
{
    sqlite3_stmt *st = NULL;
    const char *sql = replace ? "INSERT OR REPLACE INTO rows (id, box) VALUES (?1, ?2)"
                              : "INSERT INTO rows (id, box) VALUES (?1, ?2)";
    int rc = sqlite3_prepare_v2 (self->db, sql, -1, &st, NULL) == SQLITE_OK
          && sqlite3_bind_blob (st, 1, id, SC_HASH_LEN, SQLITE_STATIC) == SQLITE_OK
          && sqlite3_bind_blob (st, 2, box, (int) len, SQLITE_STATIC) == SQLITE_OK
          && sqlite3_step (st) == SQLITE_DONE ? 0 : -1;
    sqlite3_finalize (st);
    return rc;
}

static int
s_row_delete (sc_history_t *self, const uint8_t id[static SC_HASH_LEN])
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2 (self->db, "DELETE FROM rows WHERE id = ?1", -1,
                                 &st, NULL) == SQLITE_OK
          && sqlite3_bind_blob (st, 1, id, SC_HASH_LEN, SQLITE_STATIC) == SQLITE_OK
          && sqlite3_step (st) == SQLITE_DONE ? 0 : -1;
    sqlite3_finalize (st);
    return rc;
}

/* ---- The index ---------------------------------------------------------------- */

static void
s_index_clear (s_index_t *index)
{
    if (index->conv) {
        sc_wipe (index->conv, index->size * sizeof *index->conv);
        free (index->conv);
    }
    index->conv = NULL;
    index->size = 0;
}

static s_conv_t *
s_index_find (s_index_t *index, const char *name)
{
    for (size_t i = 0; i < index->size; i++)
        if (strcmp (index->conv[i].name, name) == 0)
            return &index->conv[i];
    return NULL;
}

/* A new conversation with a fresh epoch, or NULL. */
static s_conv_t *
s_index_add (s_index_t *index, const char *name)
{
    if (index->size >= SC_HISTORY_CONVS)
        return NULL;
    s_conv_t *conv = realloc (index->conv, (index->size + 1) * sizeof *conv);
    if (!conv)
        return NULL;
    index->conv = conv;
    conv = &index->conv[index->size];
    memset (conv, 0, sizeof *conv);
    strcpy (conv->name, name);
    if (sc_random (conv->epoch, S_EPOCH_LEN))
        return NULL;
    index->size++;
    return conv;
}

static void
s_index_remove (s_index_t *index, s_conv_t *conv)
{
    size_t i = (size_t) (conv - index->conv);
    memmove (conv, conv + 1, (index->size - i - 1) * sizeof *conv);
    index->size--;
    sc_wipe (&index->conv[index->size], sizeof *conv);
}

/* Strict: every byte accounted for, the padding zeros. */
static int
s_index_decode (const uint8_t *pt, size_t len, s_index_t *index)
{
    if (len < 5 || len % S_INDEX_PAD || pt[0] != S_VERSION)
        return -1;
    uint32_t count = (uint32_t) pt[1] << 24 | (uint32_t) pt[2] << 16
                   | (uint32_t) pt[3] << 8 | pt[4];
    if (count > SC_HISTORY_CONVS)
        return -1;
    s_index_t found = { calloc (count ? count : 1, sizeof (s_conv_t)), 0 };
    if (!found.conv)
        return -1;
    size_t pos = 5;
    for (uint32_t i = 0; i < count; i++) {
        if (pos >= len)
            goto malformed;
        size_t name_len = pt[pos++];
        if (name_len > SC_NAME_MAX || len - pos < name_len + S_EPOCH_LEN + 8
            || !sc_name_valid ((const char *) pt + pos, name_len))
            goto malformed;
        s_conv_t *conv = &found.conv[i];
        memcpy (conv->name, pt + pos, name_len);
        conv->name[name_len] = 0;
        pos += name_len;
        memcpy (conv->epoch, pt + pos, S_EPOCH_LEN);
        conv->count = s_get64 (pt + pos + S_EPOCH_LEN);
        pos += S_EPOCH_LEN + 8;
        if (conv->count > INT64_MAX)
            goto malformed;
        for (uint32_t j = 0; j < i; j++)
            if (strcmp (found.conv[j].name, conv->name) == 0)
                goto malformed;         /* one entry a conversation */
        found.size++;
    }
    if ((pos + S_INDEX_PAD - 1) / S_INDEX_PAD * S_INDEX_PAD != len)
        goto malformed;
    for (; pos < len; pos++)
        if (pt[pos])
            goto malformed;
    *index = found;
    return 0;
malformed:
    s_index_clear (&found);
    return -1;
}

static int
s_index_encode (const s_index_t *index, uint8_t **pt, size_t *len)
{
    size_t need = 5;
    for (size_t i = 0; i < index->size; i++)
        need += 1 + strlen (index->conv[i].name) + S_EPOCH_LEN + 8;
    *len = (need + S_INDEX_PAD - 1) / S_INDEX_PAD * S_INDEX_PAD;
    *pt = calloc (1, *len);
    if (!*pt)
        return -1;
    uint8_t *p = *pt;
    p[0] = S_VERSION;
    p[1] = (uint8_t) (index->size >> 24);
    p[2] = (uint8_t) (index->size >> 16);
    p[3] = (uint8_t) (index->size >> 8);
    p[4] = (uint8_t) index->size;
    p += 5;
    for (size_t i = 0; i < index->size; i++) {
        size_t name_len = strlen (index->conv[i].name);
        *p++ = (uint8_t) name_len;
        memcpy (p, index->conv[i].name, name_len);
        memcpy (p + name_len, index->conv[i].epoch, S_EPOCH_LEN);
        s_put64 (p + name_len + S_EPOCH_LEN, index->conv[i].count);
        p += name_len + S_EPOCH_LEN + 8;
    }
    return 0;
}

/* Read and open the index (inside a transaction). */
static int
s_index_load (sc_history_t *self, s_index_t *index, char *why, size_t size)
{
    memset (index, 0, sizeof *index);
    uint8_t *box = NULL, *pt = NULL;
    size_t box_len = 0, len = 0;
    int found = s_row_get (self, self->index_id, &box, &box_len);
    int rc = -1;
    if (found < 0)
        s_sqlite_why (self, why, size, "read its index");
    else if (found == 0)
        s_say (why, size, "the history store %s has no index that this key opens: "
               "it was altered or truncated, or made with another key", self->path);
    else if (s_open (self, (const uint8_t *) s_ad_index, sizeof s_ad_index - 1,
                     box, box_len, &pt, &len))
        s_say (why, size, "the index of the history store %s does not authenticate: "
               "the store was altered, or made with another key", self->path);
    else if (s_index_decode (pt, len, index)) {
        s_say (why, size, "the index of the history store %s does not decode", self->path);
        s_index_clear (index);
    }
    else
        rc = 0;
    free (box);
    s_free_secret (&pt, len);
    return rc;
}

static int
s_index_save (sc_history_t *self, const s_index_t *index, char *why, size_t size)
{
    uint8_t *pt = NULL, *box = NULL;
    size_t len = 0, box_len = 0;
    int rc = -1;
    if (s_index_encode (index, &pt, &len)
        || s_seal (self, (const uint8_t *) s_ad_index, sizeof s_ad_index - 1,
                   pt, len, &box, &box_len))
        s_say (why, size, "cannot seal the history index");
    else if (s_row_put (self, self->index_id, box, box_len, true))
        s_sqlite_why (self, why, size, "write its index");
    else
        rc = 0;
    s_free_secret (&pt, len);
    free (box);
    return rc;
}

/* ---- Records ------------------------------------------------------------------ */

static int
s_record_encode (bool out, int64_t time, const char *text, size_t len,
                 uint8_t **pt, size_t *pt_len)
{
    *pt_len = (S_RECORD_HEAD + len + S_RECORD_PAD - 1) / S_RECORD_PAD * S_RECORD_PAD;
    *pt = calloc (1, *pt_len);
    if (!*pt)
        return -1;
    uint8_t *p = *pt;
    p[0] = S_VERSION;
    p[1] = out ? 1 : 0;
    s_put64 (p + 2, (uint64_t) time);
    p[10] = (uint8_t) (len >> 8);
    p[11] = (uint8_t) len;
    memcpy (p + S_RECORD_HEAD, text, len);
    return 0;
}

static int
s_record_decode (const uint8_t *pt, size_t len, sc_history_record_t *rec)
{
    if (len < S_RECORD_HEAD || len % S_RECORD_PAD || pt[0] != S_VERSION || pt[1] > 1)
        return -1;
    size_t text_len = (size_t) pt[10] << 8 | pt[11];
    size_t padded = (S_RECORD_HEAD + text_len + S_RECORD_PAD - 1) / S_RECORD_PAD
                  * S_RECORD_PAD;
    if (text_len < 1 || text_len > SC_TEXT_MAX || padded != len)
        return -1;
    for (size_t i = S_RECORD_HEAD + text_len; i < len; i++)
        if (pt[i])
            return -1;
    rec->out = pt[1] == 1;
    rec->time = (int64_t) s_get64 (pt + 2);
    rec->text = (const char *) pt + S_RECORD_HEAD;
    rec->len = text_len;
    return 0;
}

/* ---- Opening ------------------------------------------------------------------ */

/* mkdir -p, 0700 for what it makes. */
static int
s_make_dirs (const char *path)
{
    char *copy = strdup (path);
    if (!copy)
        return -1;
    int rc = 0;
    for (char *p = copy + 1; rc == 0; p++) {
        if (*p != '/' && *p)
            continue;
        char c = *p;
        *p = 0;
        if (mkdir (copy, 0700) && errno != EEXIST)
            rc = -1;
        *p = c;
        if (!c)
            break;
    }
    free (copy);
    return rc;
}

/* The user's directory exists, is a directory, and is ours alone. */
static int
s_user_dir (const char *dir, char *why, size_t size)
{
    struct stat st;
    if (s_make_dirs (dir) || lstat (dir, &st)) {
        s_say (why, size, "cannot create the history directory %s: %s", dir,
               strerror (errno));
        return -1;
    }
    if (!S_ISDIR (st.st_mode)) {
        s_say (why, size, "the history directory %s is not a directory", dir);
        return -1;
    }
    if (st.st_uid != geteuid ()) {
        s_say (why, size, "the history directory %s belongs to another user", dir);
        return -1;
    }
    if ((st.st_mode & 077) && chmod (dir, 0700)) {
        s_say (why, size, "cannot make the history directory %s private: %s", dir,
               strerror (errno));
        return -1;
    }
    return 0;
}

static int
s_pragmas (sc_history_t *self)
{
    sqlite3_busy_timeout (self->db, S_BUSY_MS);
    int on = 1;
    /* journal_mode=DELETE: docs/SECURITY.md says why not WAL. */
    return sqlite3_db_config (self->db, SQLITE_DBCONFIG_DEFENSIVE, 1, &on) == SQLITE_OK
        && s_exec (self, "PRAGMA journal_mode = DELETE") == 0
        && s_exec (self, "PRAGMA synchronous = FULL") == 0
        && s_exec (self, "PRAGMA secure_delete = ON") == 0
        && s_exec (self, "PRAGMA temp_store = MEMORY") == 0
        && s_exec (self, "PRAGMA cell_size_check = ON") == 0
        && s_exec (self, "PRAGMA trusted_schema = OFF") == 0 ? 0 : -1;
}

static int
s_open_db (sc_history_t *self, const char *path)
{
    int rc = sqlite3_open_v2 (path, &self->db, SQLITE_OPEN_READWRITE
                              | SQLITE_OPEN_NOFOLLOW | SQLITE_OPEN_FULLMUTEX, NULL);
    return rc == SQLITE_OK && s_pragmas (self) == 0 ? 0 : -1;
}

static void
s_close_db (sc_history_t *self)
{
    if (self->db)
        sqlite3_close (self->db);
    self->db = NULL;
}

/* The directory's entries on disk. */
static int
s_sync_dir (const char *dir)
{
    int dfd = open (dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0)
        return -1;
    int rc = fsync (dfd);
    close (dfd);
    return rc;
}

/* A new store: made beside under a name of its own (mkstemp, 0600), an
   empty index in it, then linked into place, so a store that exists
   always has its index. Two clients of the user may start at once:
   link never replaces a store, so the one that comes second finds the
   first one's store there, drops its own and uses that one (0 too). */
static int
s_create (sc_history_t *self, const char *dir, char *why, size_t size)
{
    char *journal = NULL;
    int rc = -1;
    char *tmp = s_strf ("%s.XXXXXX", self->path);
    if (!tmp) {
        s_say (why, size, "out of memory");
        return -1;
    }
    int fd = mkstemp (tmp);
    if (fd < 0) {
        s_say (why, size, "cannot create the history store %s: %s", tmp, strerror (errno));
        free (tmp);
        return -1;
    }
    if (close (fd)) {
        s_say (why, size, "cannot create the history store %s: %s", tmp, strerror (errno));
        goto done;
    }
    if (!(journal = s_strf ("%s-journal", tmp))) {
        s_say (why, size, "out of memory");
        goto done;
    }
    s_index_t empty = { NULL, 0 };
    if (s_open_db (self, tmp)
        || s_exec (self, "CREATE TABLE rows (id BLOB PRIMARY KEY NOT NULL, "
                         "box BLOB NOT NULL) WITHOUT ROWID")
        || s_exec (self, "PRAGMA user_version = 1")
        || s_exec (self, "BEGIN IMMEDIATE")) {
        s_sqlite_why (self, why, size, "create it");
        goto done;
    }
    if (s_index_save (self, &empty, why, size) || s_commit (self, why, size))
        goto done;
    s_close_db (self);
    if (link (tmp, self->path) && errno != EEXIST) {
        s_say (why, size, "cannot create the history store %s: %s", self->path,
               strerror (errno));
        goto done;
    }
    rc = 0;
done:
    s_close_db (self);
    (void) unlink (tmp);
    if (journal)
        (void) unlink (journal);
    if (rc == 0 && s_sync_dir (dir)) {
        s_say (why, size, "cannot create the history store %s: %s", self->path,
               strerror (errno));
        rc = -1;
    }
    free (tmp);
    free (journal);
    return rc;
}

/* PRAGMA quick_check says "ok": 0; else what it found, in why. */
static int
s_quick_check (sc_history_t *self, char *why, size_t size)
{
    sqlite3_stmt *st = NULL;
    int rc = -1;
    if (sqlite3_prepare_v2 (self->db, "PRAGMA quick_check(1)", -1, &st, NULL) == SQLITE_OK
        && sqlite3_step (st) == SQLITE_ROW) {
        const char *result = (const char *) sqlite3_column_text (st, 0);
        if (result && strcmp (result, "ok") == 0)
            rc = 0;
        else
            s_say (why, size, "%s", result ? result : "?");
    }
    else
        s_say (why, size, "%s", sqlite3_errmsg (self->db));
    sqlite3_finalize (st);
    return rc;
}

static int64_t
s_int_query (sc_history_t *self, const char *sql)
{
    sqlite3_stmt *st = NULL;
    int64_t value = -1;
    if (sqlite3_prepare_v2 (self->db, sql, -1, &st, NULL) == SQLITE_OK
        && sqlite3_step (st) == SQLITE_ROW)
        value = sqlite3_column_int64 (st, 0);
    sqlite3_finalize (st);
    return value;
}

/* Open an existing store and check it: SQLite's own structure, ours,
   the index, and that the index counts every row (a count that differs
   goes into why; the store stays in use, and each conversation's
   missing records are reported as it is read). */
static void
s_check (sc_history_t *self, char *why, size_t size)
{
    char what[S_WHY_MAX];
    if (s_open_db (self, self->path)) {
        int code = self->db ? sqlite3_errcode (self->db) : SQLITE_NOMEM;
        s_fail (self, "the history store %s %s (%s)%s", self->path,
                code == SQLITE_CORRUPT || code == SQLITE_NOTADB
                ? "is damaged or truncated" : "cannot be opened",
                self->db ? sqlite3_errmsg (self->db) : "no memory",
                code == SQLITE_CORRUPT || code == SQLITE_NOTADB
                ? "; move it away to start a new one" : "");
        return;
    }
    if (s_quick_check (self, what, sizeof what)) {
        s_fail (self, "the history store %s is damaged or truncated (%s); move it "
                "away to start a new one", self->path, what);
        return;
    }
    if (s_int_query (self, "PRAGMA user_version") != S_VERSION
        || s_int_query (self, "SELECT count(*) FROM rows") < 0) {
        s_fail (self, "the history store %s is empty or not a secchat history: it "
                "was truncated or replaced; move it away to start a new one", self->path);
        return;
    }
    s_index_t index;
    if (s_exec (self, "BEGIN") || s_index_load (self, &index, what, sizeof what)) {
        s_rollback (self);
        s_fail (self, "%s", what);
        return;
    }
    int64_t rows = s_int_query (self, "SELECT count(*) FROM rows");
    uint64_t counted = 1;
    for (size_t i = 0; i < index.size; i++)
        counted += index.conv[i].count;
    s_rollback (self);
    s_index_clear (&index);
    if (rows >= 0 && (uint64_t) rows != counted)
        s_say (why, size, "the history store %s holds %lld records where its index "
               "counts %llu: records were dropped or added", self->path,
               (long long) rows - 1, (unsigned long long) counted - 1);
}

char *
sc_history_default_dir (void)
{
    const char *xdg = getenv ("XDG_DATA_HOME");
    const char *home = getenv ("HOME");
    if (xdg && xdg[0] == '/')
        return s_strf ("%s/secchat", xdg);
    if (home && home[0])
        return s_strf ("%s/.local/share/secchat", home);
    return NULL;
}

static int
s_derive_keys (sc_history_t *self, const sc_key_t *key)
{
    uint8_t root[SC_KEY_LEN];
    size_t user_len = strlen (self->user);
    int rc = sc_key_derive (key, "secchat/1 history", root) == 0
          && sc_hkdf_expand_label (root, "history seal", (const uint8_t *) self->user,
                                   user_len, self->seal_key) == 0
          && sc_hkdf_expand_label (root, "history id", (const uint8_t *) self->user,
                                   user_len, self->id_key) == 0
          && sc_hmac (self->id_key, (const uint8_t *) "index", 5, self->index_id) == 0
          ? 0 : -1;
    sc_wipe (root, sizeof root);
    return rc;
}

/* The store's file is named after the key (history-ID.db): a new key
   starts a new file, and the old one stays for the old key. The id is
   an HMAC under the id key, so it names no public key. */
static int
s_file_id (const sc_history_t *self, char out[static 2 * S_FILE_ID + 1])
{
    uint8_t mac[SC_HASH_LEN];
    if (sc_hmac (self->id_key, (const uint8_t *) "file", 4, mac))
        return -1;
    for (size_t i = 0; i < S_FILE_ID; i++)
        snprintf (out + 2 * i, 3, "%02x", mac[i]);
    return 0;
}

sc_history_t *
sc_history_new (const char *dir, const char *user, const sc_key_t *key,
                char *why, size_t why_size)
{
    s_say (why, why_size, "%s", "");
    if (!user || !sc_name_valid (user, strlen (user)) || !key
        || !sc_key_has_private (key))
        return NULL;
    sc_history_t *self = calloc (1, sizeof *self);
    if (!self)
        return NULL;
    strcpy (self->user, user);
    if (!dir) {
        s_fail (self, "no data directory for the history: set HOME or give --data-dir");
        s_say (why, why_size, "%s", self->broken);
        return self;
    }
    char *user_dir = s_strf ("%s/%s", dir, user);
    char file[2 * S_FILE_ID + 1];
    if (!user_dir || s_derive_keys (self, key) || s_file_id (self, file)
        || !(self->path = s_strf ("%s/history-%s.db", user_dir, file))) {
        free (user_dir);
        sc_history_destroy (&self);
        return NULL;
    }
    struct stat st;
    char what[S_WHY_MAX] = "";
    if (s_user_dir (user_dir, what, sizeof what))
        s_fail (self, "%s", what);
    else if (lstat (self->path, &st) && errno == ENOENT) {
        if (s_create (self, user_dir, what, sizeof what))
            s_fail (self, "%s", what);
        else
            s_check (self, what, sizeof what);
    }
    else if (!S_ISREG (st.st_mode))
        s_fail (self, "the history store %s is not a file", self->path);
    else {
        if (st.st_uid == geteuid () && (st.st_mode & 077))
            (void) chmod (self->path, 0600);
        s_check (self, what, sizeof what);
    }
    s_say (why, why_size, "%s", self->broken[0] ? self->broken : what);
    free (user_dir);
    return self;
}

void
sc_history_destroy (sc_history_t **self_p)
{
    if (self_p && *self_p) {
        sc_history_t *self = *self_p;
        s_close_db (self);
        free (self->path);
        sc_wipe (self, sizeof *self);
        free (self);
        *self_p = NULL;
    }
}

bool
sc_history_usable (const sc_history_t *self)
{
    return self && self->db && !self->broken[0];
}

const char *
sc_history_path (const sc_history_t *self)
{
    return self->path;
}

/* ---- Appending, reading, forgetting ---------------------------------------------- */

static bool
s_ready (const sc_history_t *self, char *why, size_t size)
{
    if (sc_history_usable (self))
        return true;
    s_say (why, size, "%s", self->broken[0] ? self->broken : "no history store");
    return false;
}

static int
s_begin_write (sc_history_t *self, s_index_t *index, char *why, size_t size)
{
    if (s_exec (self, "BEGIN IMMEDIATE")) {
        s_sqlite_why (self, why, size, "write");
        return -1;
    }
    if (s_index_load (self, index, why, size)) {
        s_rollback (self);
        return -1;
    }
    return 0;
}

/* Seal record n of conv and insert it (never over a row that is there:
   that would be a store altered). */
static int
s_record_put (sc_history_t *self, const s_conv_t *conv, uint64_t n, bool out,
              int64_t time, const char *text, size_t len, char *why, size_t size)
{
    uint8_t ad[S_RECORD_AD_LEN], id[SC_HASH_LEN];
    uint8_t *pt = NULL, *box = NULL;
    size_t pt_len = 0, box_len = 0;
    int rc = -1;
    if (s_record_ad (self, conv, n, ad) || s_record_id (self, conv, n, id)
        || s_record_encode (out, time, text, len, &pt, &pt_len)
        || s_seal (self, ad, sizeof ad, pt, pt_len, &box, &box_len))
        s_say (why, size, "cannot seal a history record");
    else if (s_row_put (self, id, box, box_len, false))
        s_sqlite_why (self, why, size, "write a record");
    else
        rc = 0;
    s_free_secret (&pt, pt_len);
    free (box);
    return rc;
}

int
sc_history_append (sc_history_t *self, const char *peer, bool out, int64_t time,
                   const char *text, size_t len, char *why, size_t why_size)
{
    if (!self || !peer || !sc_name_valid (peer, strlen (peer)) || !text
        || len < 1 || len > SC_TEXT_MAX) {
        s_say (why, why_size, "not a line to record");
        return -1;
    }
    if (!s_ready (self, why, why_size))
        return -1;
    s_index_t index;
    if (s_begin_write (self, &index, why, why_size))
        return -1;
    int rc = -1;
    s_conv_t *conv = s_index_find (&index, peer);
    if (!conv && !(conv = s_index_add (&index, peer)))
        s_say (why, why_size, "cannot start a conversation in the history (at most "
               "%d)", SC_HISTORY_CONVS);
    else if (s_record_put (self, conv, conv->count, out, time, text, len, why, why_size))
        ;
    else {
        conv->count++;
        if (s_index_save (self, &index, why, why_size) == 0)
            rc = s_commit (self, why, why_size);
    }
    if (rc)
        s_rollback (self);
    s_index_clear (&index);
    return rc;
}

/* Record n of conv through fn, or why it cannot be. */
static void
s_record_read (sc_history_t *self, const s_conv_t *conv, uint64_t n,
               sc_history_read_fn *fn, void *arg)
{
    uint8_t ad[S_RECORD_AD_LEN], id[SC_HASH_LEN];
    uint8_t *box = NULL, *pt = NULL;
    size_t box_len = 0, len = 0;
    int found = s_record_ad (self, conv, n, ad) || s_record_id (self, conv, n, id)
              ? -1 : s_row_get (self, id, &box, &box_len);
    sc_history_record_t rec = { .number = n, .count = conv->count };
    const char *what = NULL;
    if (found < 0)
        what = "cannot be read";
    else if (found == 0)
        what = "is missing: the store was altered";
    else if (s_open (self, ad, sizeof ad, box, box_len, &pt, &len))
        what = "does not authenticate: the store was altered";
    else if (s_record_decode (pt, len, &rec))
        what = "does not decode";
    if (what) {
        char error[S_WHY_MAX];
        snprintf (error, sizeof error, "the conversation with %s: message %llu of %llu %s",
                  conv->name, (unsigned long long) n + 1,
                  (unsigned long long) conv->count, what);
        fn (arg, NULL, error);
    }
    else
        fn (arg, &rec, NULL);
    free (box);
    s_free_secret (&pt, len);
}

int64_t
sc_history_read (sc_history_t *self, const char *peer, uint64_t n,
                 sc_history_read_fn *fn, void *arg, char *why, size_t why_size)
{
    if (!self || !peer || !fn || !sc_name_valid (peer, strlen (peer))) {
        s_say (why, why_size, "no such conversation");
        return -1;
    }
    if (!s_ready (self, why, why_size))
        return -1;
    s_index_t index;
    if (s_exec (self, "BEGIN")) {
        s_sqlite_why (self, why, why_size, "read");
        return -1;
    }
    if (s_index_load (self, &index, why, why_size)) {
        s_rollback (self);
        return -1;
    }
    s_conv_t *conv = s_index_find (&index, peer);
    uint64_t count = conv ? conv->count : 0;
    for (uint64_t i = count > n ? count - n : 0; i < count; i++)
        s_record_read (self, conv, i, fn, arg);
    s_rollback (self);                  /* it only read */
    s_index_clear (&index);
    return (int64_t) count;
}

int
sc_history_forget (sc_history_t *self, const char *peer, char *why, size_t why_size)
{
    if (!self || !peer || !sc_name_valid (peer, strlen (peer))) {
        s_say (why, why_size, "no such conversation");
        return -1;
    }
    if (!s_ready (self, why, why_size))
        return -1;
    s_index_t index;
    if (s_begin_write (self, &index, why, why_size))
        return -1;
    int rc = 0;
    s_conv_t *conv = s_index_find (&index, peer);
    for (uint64_t i = 0; conv && rc == 0 && i < conv->count; i++) {
        uint8_t id[SC_HASH_LEN];
        if (s_record_id (self, conv, i, id) || s_row_delete (self, id)) {
            s_sqlite_why (self, why, why_size, "delete a record");
            rc = -1;
        }
    }
    if (conv && rc == 0) {
        s_index_remove (&index, conv);
        rc = s_index_save (self, &index, why, why_size);
    }
    if (rc == 0)
        rc = s_commit (self, why, why_size);
    else
        s_rollback (self);
    s_index_clear (&index);
    return rc;
}

int
sc_history_event (sc_history_t *self, const sc_event_t *ev, char *why, size_t why_size)
{
    if (!self || !self->db || (ev->type != SC_EV_MSG && ev->type != SC_EV_SENT)
        || !ev->name || !ev->text || !ev->text[0])
        return 0;
    return sc_history_append (self, ev->name, ev->type == SC_EV_SENT,
                              (int64_t) time (NULL), ev->text, strlen (ev->text),
                              why, why_size);
}

/* ---- Commands -------------------------------------------------------------------- */

typedef struct {
    const char *name;
    bool batch;
    sc_history_out_fn *out;
    void *arg;
    uint64_t shown;
} s_show_t;

static void
s_show_record (void *arg, const sc_history_record_t *rec, const char *error)
{
    s_show_t *show = arg;
    if (!rec) {
        show->out (show->arg, "history", error);
        return;
    }
    char when[40] = "?";
    time_t t = (time_t) rec->time;
    struct tm tm;
    size_t written = 0;
    if (show->batch && gmtime_r (&t, &tm))
        written = strftime (when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
    else if (!show->batch && localtime_r (&t, &tm))
        written = strftime (when, sizeof when, "%Y-%m-%d %H:%M", &tm);
    if (!written)
        strcpy (when, "?");
    size_t size = rec->len + 128;
    char *clean = malloc (rec->len + 1);
    char *line = malloc (size);
    if (clean && line) {
        sc_client_sanitize (rec->text, rec->len, clean);
        if (show->batch)
            snprintf (line, size, "hist %s %s %s %s", show->name, when,
                      rec->out ? "out" : "in", clean);
        else
            snprintf (line, size, "[%s] %s: %s", when, rec->out ? "you" : show->name,
                      clean);
        show->out (show->arg, NULL, line);
        show->shown++;
    }
    else
        show->out (show->arg, "history", "out of memory: a line of the history "
                   "cannot be shown");
    if (clean)
        sc_wipe (clean, rec->len + 1);
    if (line)
        sc_wipe (line, size);
    free (clean);
    free (line);
}

bool
sc_history_is_command (const char *line, size_t len)
{
    static const char *words[] = { "/history", "/forget" };
    for (size_t i = 0; i < sizeof words / sizeof words[0]; i++) {
        size_t wlen = strlen (words[i]);
        if (len >= wlen && memcmp (line, words[i], wlen) == 0
            && (len == wlen || line[wlen] == ' ' || line[wlen] == '\t'))
            return true;
    }
    return false;
}

/* 1..SC_HISTORY_MAX in decimal, or 0. */
static uint64_t
s_count_arg (const char *arg)
{
    uint64_t n = 0;
    for (const char *p = arg; *p; p++) {
        if (*p < '0' || *p > '9' || n > SC_HISTORY_MAX)
            return 0;
        n = n * 10 + (uint64_t) (*p - '0');
    }
    return n <= SC_HISTORY_MAX ? n : 0;
}

/* All digits: a count (a user named so is given with the count too). */
static bool
s_is_number (const char *arg)
{
    return strspn (arg, "0123456789") == strlen (arg);
}

static void
s_cmd_history (sc_history_t *self, int argc, char *argv[], const char *peer,
               bool batch, sc_history_out_fn *out, void *arg)
{
    const char *name = peer;
    const char *count = NULL;
    if (argc == 2 && s_is_number (argv[1]))
        count = argv[1];
    else if (argc >= 2)
        name = argv[1];
    if (argc == 3)
        count = argv[2];
    uint64_t n = count ? s_count_arg (count) : SC_HISTORY_DEFAULT;
    char text[S_WHY_MAX];
    if (argc > 3 || !n || (name && !sc_name_valid (name, strlen (name)))) {
        snprintf (text, sizeof text, "/history [NAME] [N]: NAME is 1 to %d of a-z 0-9 _ -, "
                  "N lines from 1 to %d (default %d)", SC_NAME_MAX, SC_HISTORY_MAX,
                  SC_HISTORY_DEFAULT);
        out (arg, "usage", text);
        return;
    }
    if (!name) {
        out (arg, "usage", "/history NAME [N]: no chat is open, so say whose");
        return;
    }
    if (!self) {
        out (arg, "history", "no history is kept (--no-history)");
        return;
    }
    s_show_t show = { name, batch, out, arg, 0 };
    int64_t total = sc_history_read (self, name, n, s_show_record, &show, text, sizeof text);
    if (total < 0)
        out (arg, "history", text);
    else if (batch) {
        snprintf (text, sizeof text, "hist-end %s", name);
        out (arg, NULL, text);
    }
    else if (total == 0) {
        snprintf (text, sizeof text, "-- no history with %s", name);
        out (arg, NULL, text);
    }
    else {
        snprintf (text, sizeof text, "-- the last %llu of %lld messages with %s",
                  (unsigned long long) show.shown, (long long) total, name);
        out (arg, NULL, text);
    }
}

static void
s_cmd_forget (sc_history_t *self, int argc, char *argv[], bool batch,
              sc_history_out_fn *out, void *arg)
{
    char text[S_WHY_MAX];
    if (argc != 2 || !sc_name_valid (argv[1], strlen (argv[1]))) {
        snprintf (text, sizeof text, "/forget NAME, where NAME is 1 to %d of a-z 0-9 _ -",
                  SC_NAME_MAX);
        out (arg, "usage", text);
    }
    else if (!self)
        out (arg, "history", "no history is kept (--no-history)");
    else if (sc_history_forget (self, argv[1], text, sizeof text))
        out (arg, "history", text);
    else {
        snprintf (text, sizeof text, batch ? "forgotten %s"
                  : "-- the history with %s is deleted", argv[1]);
        out (arg, NULL, text);
    }
}

void
sc_history_command (sc_history_t *self, const char *line, size_t len,
                    const char *peer, bool batch, sc_history_out_fn *out, void *arg)
{
    char copy[96];
    char *argv[4];
    int argc = 0;
    if (len >= sizeof copy || memchr (line, 0, len)) {
        out (arg, "usage", "/history [NAME] [N], /forget NAME");
        return;
    }
    memcpy (copy, line, len);
    copy[len] = 0;
    char *save = NULL;
    for (char *word = strtok_r (copy, " \t", &save); word;
         word = strtok_r (NULL, " \t", &save)) {
        if (argc == 4) {
            argc++;
            break;
        }
        argv[argc++] = word;
    }
    if (argc >= 1 && strcmp (argv[0], "/history") == 0)
        s_cmd_history (self, argc, argv, peer, batch, out, arg);
    else
        s_cmd_forget (self, argc, argv, batch, out, arg);
}
