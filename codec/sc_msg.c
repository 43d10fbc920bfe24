/*  sc_msg: the envelope and every message body of the wire protocol,
    encoded and strictly decoded with msgpack-c.

    Every body schema lives in one table (s_schemas, indexed by opcode);
    one generic encoder and one generic decoder walk it. Before msgpack-c
    sees any input, a bounded pre-scan (s_prescan) walks the raw bytes:
    msgpack-c allocates an array's element storage as soon as it reads the
    array header, so a 5-byte "array of 4G elements" would otherwise make
    it ask for ~100 GB. The pre-scan also rejects what no message uses
    (maps, floats, ext, deep nesting) and trailing bytes.

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at https://mozilla.org/MPL/2.0/.
*/
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <msgpack.h>

#include "sc_msg.h"

/* Deepest array nesting any message has is 2 (USERS); 3 leaves room. */
#define S_DEPTH_MAX     3
/* Most fields in one body (AUTH_BROKER). */
#define S_FIELDS_MAX    5
/* Worst-case msgpack overhead of one header (type byte + 32-bit length). */
#define S_HEAD_MAX      5
#define S_UINT_MAX_LEN  9

/* ---- Small helpers ---------------------------------------------------- */

/* The buffers may hold plaintext: wiped with explicit_bzero (which the
   compiler cannot drop) before they are freed. The codec knows no keys
   and links nothing of crypto/. */
static void
s_free_wiped (void *ptr, size_t len)
{
    if (ptr) {
        explicit_bzero (ptr, len);
        free (ptr);
    }
}

/* ---- Names, text, opcodes, errors ------------------------------------ */

bool
sc_name_valid (const char *name, size_t len)
{
    if (!name || len < 1 || len > SC_NAME_MAX)
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = name [i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')
        ||    c == '_' || c == '-'))
            return false;
    }
    return true;
}

bool
sc_utf8_valid (const char *text, size_t len)
{
    const unsigned char *s = (const unsigned char *) text;
    if (!s)
        return len == 0;
    size_t i = 0;
    while (i < len) {
        unsigned char c = s [i];
        size_t more;            /* continuation bytes expected */
        uint32_t cp, min;       /* code point, smallest legal for the form */
        if (c == 0)
            return false;       /* NUL would truncate the text on display */
        if (c < 0x80) {
            i++;
            continue;
        }
        if ((c & 0xe0) == 0xc0) {
            more = 1; cp = c & 0x1f; min = 0x80;
        }
        else
        if ((c & 0xf0) == 0xe0) {
            more = 2; cp = c & 0x0f; min = 0x800;
        }
        else
        if ((c & 0xf8) == 0xf0) {
            more = 3; cp = c & 0x07; min = 0x10000;
        }
        else
            return false;       /* stray continuation byte or 0xf8..0xff */
        if (len - i - 1 < more)
            return false;       /* truncated sequence */
        for (size_t k = 1; k <= more; k++) {
            if ((s [i + k] & 0xc0) != 0x80)
                return false;
            cp = (cp << 6) | (s [i + k] & 0x3f);
        }
        if (cp < min                              /* overlong */
        ||  cp > 0x10ffff
        || (cp >= 0xd800 && cp <= 0xdfff))        /* surrogate */
            return false;
        i += more + 1;
    }
    return true;
}

const char *
sc_codec_strerror (int err)
{
    switch (err) {
        case SC_CODEC_OK:        return "success";
        case SC_CODEC_EPARSE:    return "not msgpack, or truncated";
        case SC_CODEC_ETRAILING: return "bytes after the message";
        case SC_CODEC_ETYPE:     return "wrong msgpack type";
        case SC_CODEC_EARITY:    return "wrong array length";
        case SC_CODEC_ESIZE:     return "length out of bounds";
        case SC_CODEC_ENAME:     return "invalid name";
        case SC_CODEC_EOPCODE:   return "unknown opcode";
        case SC_CODEC_EVERSION:  return "unsupported protocol version";
        case SC_CODEC_ERANGE:    return "integer out of range";
        case SC_CODEC_EUTF8:     return "invalid UTF-8 text";
        case SC_CODEC_EDEPTH:    return "nesting too deep";
        case SC_CODEC_ENOMEM:    return "out of memory";
        default:                 return "unknown codec error";
    }
}

/* ---- The schema table ------------------------------------------------- */

typedef enum {
    S_K_UINT,       /* positive int in [min, max], field of `width` bytes */
    S_K_BOOL,       /* true/false into `flag`                              */
    S_K_NAME,       /* str, a valid name, into `name`                      */
    S_K_BYTES,      /* bin of exactly `width` bytes into a fixed array     */
    S_K_DATA,       /* bin of min..max bytes into the owned `data`         */
    S_K_TEXT,       /* str of min..max bytes of UTF-8 into the owned `text`*/
    S_K_NAMES,      /* array of min..max names into the owned `names`      */
    S_K_PAD         /* bin of zeros after `name`, sized so that the two
                       always take the same bytes (sc_msg_pad_len); kept
                       nowhere                                            */
} s_kind_t;

typedef struct {
    s_kind_t kind;
    size_t   offset;        /* offsetof the field in sc_msg_t */
    size_t   width;         /* sizeof that field */
    uint64_t min, max;      /* value range (UINT) or length range */
} s_field_t;

typedef struct {
    const char *name;       /* NULL: no such opcode */
    size_t   count;
    s_field_t field [S_FIELDS_MAX];
} s_schema_t;

#define S_WIDTH(m)      sizeof (((sc_msg_t *) 0)->m)
#define S_F(k, m, lo, hi) { (k), offsetof (sc_msg_t, m), S_WIDTH (m), (lo), (hi) }
#define S_UINT(m, lo, hi) S_F (S_K_UINT, m, (lo), (hi))
#define S_BYTES(m)      S_F (S_K_BYTES, m, S_WIDTH (m), S_WIDTH (m))
#define S_NAME          S_F (S_K_NAME, name, 1, SC_NAME_MAX)
#define S_BOOL          S_F (S_K_BOOL, flag, 0, 1)
#define S_DATA(lo, hi)  S_F (S_K_DATA, data, (lo), (hi))
#define S_TEXT(lo, hi)  S_F (S_K_TEXT, text, (lo), (hi))
#define S_PAD           { S_K_PAD, 0, 0, 0, SC_NAME_MAX + 1 }
/* A list has no fixed width: its field is a pointer to the names. */
#define S_NAMES         { S_K_NAMES, offsetof (sc_msg_t, names), 0, 0, SC_USERS_MAX }

/* docs/PROTOCOL.md section 4, "Field types and bounds". A box is at least
   the 16-byte AEAD tag plus one byte. */
static const s_schema_t s_schemas [SC_OP_ENROL + 1] = {
    [SC_OP_QUIT]     = { .name = "QUIT" },
    [SC_OP_LIST]     = { .name = "LIST" },
    [SC_OP_RTT]      = { .name = "RTT", .count = 1, .field = { S_NAME } },
    [SC_OP_ACCEPT]   = { .name = "ACCEPT", .count = 1, .field = { S_NAME } },
    [SC_OP_REFUSE]   = { .name = "REFUSE", .count = 2, .field = {
                         S_NAME, S_UINT (code, 0, SC_REFUSE_REASON_MAX) } },
    [SC_OP_MESSAGE]  = { .name = "MESSAGE", .count = 2, .field = {
                         S_UINT (counter, 1, UINT64_MAX),
                         S_DATA (17, SC_BOX_MAX) } },
    [SC_OP_CC_SESSION] = { .name = "CC_SESSION", .count = 3, .field = {
                         S_UINT (suite, 1, 255), S_BYTES (nonce),
                         S_BYTES (eph) } },
    [SC_OP_USER_NOT_FOUND] = { .name = "USER_NOT_FOUND", .count = 1,
                         .field = { S_NAME } },
    [SC_OP_NOTIFY]   = { .name = "NOTIFY", .count = 2, .field = {
                         S_NAME, S_UINT (code, 0, SC_NOTIFY_REASON_MAX) } },
    [SC_OP_LEAVE]    = { .name = "LEAVE" },
    [SC_OP_ERROR]    = { .name = "ERROR", .count = 2, .field = {
                         S_UINT (code, 1, 65535), S_TEXT (0, SC_DETAIL_MAX) } },
    [SC_OP_PING]     = { .name = "PING" },
    [SC_OP_PONG]     = { .name = "PONG" },
    [SC_OP_CHAT]     = { .name = "CHAT", .count = 3, .field = {
                         S_NAME, S_BYTES (key), S_BOOL } },
    [SC_OP_USERS]    = { .name = "USERS", .count = 2, .field = {
                         S_NAMES, S_BOOL } },
    [SC_OP_WELCOME]  = { .name = "WELCOME", .count = 3, .field = {
                         S_NAME, S_UINT (code, 100, 600000), S_PAD } },
    [SC_OP_CC_REPLY] = { .name = "CC_REPLY", .count = 4, .field = {
                         S_BYTES (nonce), S_BYTES (eph), S_BYTES (sig),
                         S_BYTES (mac) } },
    [SC_OP_CC_FINISH] = { .name = "CC_FINISH", .count = 2, .field = {
                         S_BYTES (sig), S_BYTES (mac) } },
    [SC_OP_HELLO]    = { .name = "HELLO", .count = 3, .field = {
                         S_UINT (suite, 1, 255), S_BYTES (nonce),
                         S_BYTES (eph) } },
    [SC_OP_AUTH_BROKER] = { .name = "AUTH_BROKER", .count = 5, .field = {
                         S_BYTES (nonce), S_BYTES (eph),
                         S_DATA (1, SC_CERT_MAX), S_BYTES (sig),
                         S_BYTES (mac) } },
    [SC_OP_AUTH_CLIENT] = { .name = "AUTH_CLIENT", .count = 1, .field = {
                         S_DATA (17, SC_LOGIN_BOX_MAX) } },
    [SC_OP_COOKIE]   = { .name = "COOKIE", .count = 1, .field = {
                         S_BYTES (cookie) } },
    [SC_OP_HELLO_COOKIE] = { .name = "HELLO_COOKIE", .count = 4, .field = {
                         S_UINT (suite, 1, 255), S_BYTES (nonce),
                         S_BYTES (eph), S_BYTES (cookie) } },
    [SC_OP_ENROL]    = { .name = "ENROL", .count = 1, .field = {
                         S_DATA (17, SC_LOGIN_BOX_MAX) } },
};

static const s_schema_t *
s_schema (int opcode)
{
    if (opcode < 0 || (size_t) opcode >= sizeof s_schemas / sizeof s_schemas [0])
        return NULL;
    return s_schemas [opcode].name ? &s_schemas [opcode] : NULL;
}

const char *
sc_opcode_name (int opcode)
{
    const s_schema_t *schema = s_schema (opcode);
    return schema ? schema->name : NULL;
}

bool
sc_opcode_known (int opcode)
{
    return s_schema (opcode) != NULL;
}

/* ---- sc_msg_t --------------------------------------------------------- */

void
sc_msg_init (sc_msg_t *self, uint8_t opcode)
{
    memset (self, 0, sizeof *self);
    self->opcode = opcode;
}

void
sc_msg_reset (sc_msg_t *self)
{
    if (!self)
        return;
    s_free_wiped (self->data, self->data_len);
    if (self->text)
        s_free_wiped (self->text, strlen (self->text) + 1);
    s_free_wiped (self->names, self->names_count * sizeof *self->names);
    /* Wipe, not just zero: name, keys and nonces go with it. */
    explicit_bzero (self, sizeof *self);
}

int
sc_msg_set_data (sc_msg_t *self, const uint8_t *data, size_t len)
{
    if (len > SC_ENVELOPE_MAX || (!data && len > 0))
        return -1;
    uint8_t *copy = NULL;
    if (len > 0) {
        copy = (uint8_t *) malloc (len);
        if (!copy)
            return -1;
        memcpy (copy, data, len);
    }
    s_free_wiped (self->data, self->data_len);
    self->data = copy;
    self->data_len = len;
    return 0;
}

/* Copy exactly len bytes of text (the decoder's str is not terminated). */
static int
s_set_text (sc_msg_t *self, const char *text, size_t len)
{
    char *copy = (char *) malloc (len + 1);
    if (!copy)
        return -1;
    if (len > 0)
        memcpy (copy, text, len);
    copy [len] = 0;
    if (self->text)
        s_free_wiped (self->text, strlen (self->text) + 1);
    self->text = copy;
    return 0;
}

int
sc_msg_set_text (sc_msg_t *self, const char *text)
{
    if (!text)
        return -1;
    size_t len = strnlen (text, SC_TEXT_MAX + 1);
    if (len > SC_TEXT_MAX)
        return -1;
    return s_set_text (self, text, len);
}

/* The names array grows in powers of two (at least 8) up to SC_USERS_MAX;
   its capacity follows from the count, so the struct needs no field. */
static size_t
s_names_capacity (size_t count)
{
    size_t cap = 8;
    if (count == 0)
        return 0;
    while (cap < count)
        cap *= 2;
    return cap < SC_USERS_MAX ? cap : SC_USERS_MAX;
}

int
sc_msg_add_name (sc_msg_t *self, const char *name)
{
    if (!name || self->names_count >= SC_USERS_MAX)
        return -1;
    size_t len = strnlen (name, SC_NAME_MAX + 1);
    if (!sc_name_valid (name, len))
        return -1;
    size_t count = self->names_count;
    size_t cap = s_names_capacity (count + 1);
    if (cap != s_names_capacity (count)) {
        void *grown = realloc (self->names, cap * sizeof *self->names);
        if (!grown)
            return -1;
        self->names = (char (*)[SC_NAME_MAX + 1]) grown;
    }
    memset (self->names [count], 0, sizeof self->names [count]);
    memcpy (self->names [count], name, len);
    self->names_count = count + 1;
    return 0;
}

int
sc_msg_set_name (sc_msg_t *self, const char *name)
{
    if (!name)
        return -1;
    size_t len = strnlen (name, SC_NAME_MAX + 1);
    if (!sc_name_valid (name, len))
        return -1;
    memset (self->name, 0, sizeof self->name);
    memcpy (self->name, name, len);
    return 0;
}

/* ---- Pre-scan of the raw msgpack bytes -------------------------------- */

typedef enum {
    S_H_ATOM,       /* nil, bool, negative int, str, bin: no children   */
    S_H_UINT,       /* non-negative int; value holds it                  */
    S_H_ARRAY,      /* value holds the element count                     */
    S_H_MAP         /* value holds the pair count                        */
} s_head_kind_t;

typedef struct {
    s_head_kind_t kind;
    uint64_t value;
} s_head_t;

/* Read an n-byte big-endian number at buf [*pos]. */
static int
s_take_be (const uint8_t *buf, size_t len, size_t *pos, size_t n,
           uint64_t *value)
{
    if (len - *pos < n)
        return SC_CODEC_EPARSE;
    *value = 0;
    for (size_t i = 0; i < n; i++)
        *value = (*value << 8) | buf [(*pos)++];
    return SC_CODEC_OK;
}

/* Skip a str/bin payload whose length is an n-byte number at buf [*pos]. */
static int
s_take_blob (const uint8_t *buf, size_t len, size_t *pos, size_t n)
{
    uint64_t size;
    int rc = s_take_be (buf, len, pos, n, &size);
    if (rc)
        return rc;
    if (size > len - *pos)
        return SC_CODEC_EPARSE;
    *pos += (size_t) size;
    return SC_CODEC_OK;
}

/* Read one object's header at buf [*pos] and move *pos past it and past
   any str/bin payload (but not past array elements). Floats and ext types
   are ETYPE at once: no message has them. */
static int
s_head_read (const uint8_t *buf, size_t len, size_t *pos, s_head_t *head)
{
    if (*pos >= len)
        return SC_CODEC_EPARSE;
    uint8_t b = buf [(*pos)++];
    head->kind = S_H_ATOM;
    head->value = 0;
    if (b <= 0x7f) {
        head->kind = S_H_UINT;
        head->value = b;
        return SC_CODEC_OK;
    }
    if (b >= 0xe0)                          /* negative fixint */
        return SC_CODEC_OK;
    if (b <= 0x9f) {                        /* fixmap, fixarray */
        head->kind = b <= 0x8f ? S_H_MAP : S_H_ARRAY;
        head->value = b & 0x0f;
        return SC_CODEC_OK;
    }
    if (b <= 0xbf) {                        /* fixstr */
        size_t size = b & 0x1f;
        if (size > len - *pos)
            return SC_CODEC_EPARSE;
        *pos += size;
        return SC_CODEC_OK;
    }
    switch (b) {
        case 0xc0: case 0xc2: case 0xc3:    /* nil, false, true */
            return SC_CODEC_OK;
        case 0xc4: case 0xd9: return s_take_blob (buf, len, pos, 1);
        case 0xc5: case 0xda: return s_take_blob (buf, len, pos, 2);
        case 0xc6: case 0xdb: return s_take_blob (buf, len, pos, 4);
        case 0xcc: case 0xcd: case 0xce: case 0xcf:
            head->kind = S_H_UINT;
            return s_take_be (buf, len, pos, (size_t) 1 << (b - 0xcc),
                              &head->value);
        case 0xd0: case 0xd1: case 0xd2: case 0xd3: {
            /* msgpack-c reads a non-negative signed int as a positive
               integer: classify it the same way. */
            size_t n = (size_t) 1 << (b - 0xd0);
            if (*pos < len && !(buf [*pos] & 0x80))
                head->kind = S_H_UINT;
            return s_take_be (buf, len, pos, n, &head->value);
        }
        case 0xdc: case 0xdd:
            head->kind = S_H_ARRAY;
            return s_take_be (buf, len, pos, b == 0xdc ? 2 : 4, &head->value);
        case 0xde: case 0xdf:
            head->kind = S_H_MAP;
            return s_take_be (buf, len, pos, b == 0xde ? 2 : 4, &head->value);
        case 0xc1:                          /* never used */
            return SC_CODEC_EPARSE;
        default:                            /* float, ext, fixext */
            return SC_CODEC_ETYPE;
    }
}

/* Walk the whole input without recursion or allocation. Every element of
   an open array needs at least one byte, so the elements still pending
   can never outnumber the bytes left: a header claiming more is a lie
   (or a truncation) and is refused before msgpack-c would allocate for
   it. Returns the first problem found, in byte order. */
static int
s_prescan (const uint8_t *buf, size_t len)
{
    uint64_t left [S_DEPTH_MAX + 1];   /* elements to read, per open level */
    uint64_t pending = 1;              /* elements to read, all levels */
    size_t depth = 0;
    size_t pos = 0;
    left [0] = 1;
    while (pending > 0) {
        s_head_t head;
        int rc = s_head_read (buf, len, &pos, &head);
        if (rc)
            return rc;
        pending--;
        left [depth]--;
        if (head.kind == S_H_ARRAY || head.kind == S_H_MAP) {
            uint64_t room = len - pos;
            if (pending > room || head.value > room - pending)
                return SC_CODEC_EPARSE;
            if (head.kind == S_H_MAP)
                return SC_CODEC_ETYPE;
            if (depth == S_DEPTH_MAX)
                return SC_CODEC_EDEPTH;
            left [++depth] = head.value;
            pending += head.value;
        }
        while (depth > 0 && left [depth] == 0)
            depth--;
    }
    return pos == len ? SC_CODEC_OK : SC_CODEC_ETRAILING;
}

/* The object tree of one decode. msgpack-c's own entry point
   (msgpack_unpack_next) gives every decode a fresh 8 KiB zone
   (MSGPACK_ZONE_CHUNK_SIZE): two mallocs and two frees per decode, for a
   tree of a few hundred bytes (24 per object). Instead each thread keeps
   one zone, its first chunk S_ZONE_CHUNK bytes, cleared after each
   decode: msgpack_zone_clear frees the chunks a long USERS list added and
   keeps the first, so a thread holds 512 bytes between decodes. The zone
   only ever holds the tree's skeleton (types, integers, lengths, pointers
   into the input: msgpack-c's strs and bins are views), never a payload;
   everything kept is copied out before s_tree_free. A pthread key frees
   a thread's chunk when the thread exits. Should a decode start while
   its thread's zone is in use (no caller nests decodes today), or the
   key be unavailable, the tree gets a zone of its own on the stack. */
#define S_ZONE_CHUNK    512

static _Thread_local msgpack_zone s_zone;
static _Thread_local bool s_zone_ready;     /* s_zone initialised */
static _Thread_local bool s_zone_busy;      /* a tree is in s_zone */
static pthread_key_t s_zone_key;
static bool s_zone_key_ok = false;
static pthread_once_t s_zone_once = PTHREAD_ONCE_INIT;

typedef struct {
    msgpack_zone own;           /* when the thread's zone cannot serve */
    msgpack_zone *zone;         /* &s_zone, &own, or NULL: nothing to free */
    msgpack_object top;
} s_tree_t;

/* At thread exit (the key's destructor): the thread's first chunk. */
static void
s_zone_release (void *zone)
{
    msgpack_zone_destroy ((msgpack_zone *) zone);
    s_zone_ready = false;
}

static void
s_zone_key_make (void)
{
    s_zone_key_ok = pthread_key_create (&s_zone_key, s_zone_release) == 0;
}

/* A zone for a new tree: the thread's, made on first use, or its own. */
static msgpack_zone *
s_zone_take (s_tree_t *tree)
{
    if (!s_zone_ready && !s_zone_busy
    &&  pthread_once (&s_zone_once, s_zone_key_make) == 0 && s_zone_key_ok
    &&  msgpack_zone_init (&s_zone, S_ZONE_CHUNK)) {
        if (pthread_setspecific (s_zone_key, &s_zone) == 0)
            s_zone_ready = true;
        else
            msgpack_zone_destroy (&s_zone);
    }
    if (s_zone_ready && !s_zone_busy) {
        s_zone_busy = true;
        return &s_zone;
    }
    return msgpack_zone_init (&tree->own, S_ZONE_CHUNK) ? &tree->own : NULL;
}

static void
s_tree_free (s_tree_t *tree)
{
    if (tree->zone == &s_zone) {
        msgpack_zone_clear (&s_zone);
        s_zone_busy = false;
    }
    else
    if (tree->zone)
        msgpack_zone_destroy (tree->zone);
    tree->zone = NULL;
}

/* Pre-scan, then let msgpack-c build the object tree in tree's zone
   (s_tree_free it after, whatever the result). The tree's strs and bins
   point into buf. */
static int
s_unpack (const uint8_t *buf, size_t len, s_tree_t *tree)
{
    tree->zone = NULL;
    if (!buf && len > 0)
        return SC_CODEC_EPARSE;
    int rc = s_prescan (buf, len);
    if (rc)
        return rc;
    tree->zone = s_zone_take (tree);
    if (!tree->zone)
        return SC_CODEC_ENOMEM;
    size_t off = 0;
    /* msgpack_unpack builds in the caller's zone (msgpack_unpack_next
       would make its own); SUCCESS or EXTRA_BYTES, the offset tells. */
    switch (msgpack_unpack ((const char *) buf, len, &off, tree->zone, &tree->top)) {
        case MSGPACK_UNPACK_SUCCESS:
        case MSGPACK_UNPACK_EXTRA_BYTES:
            return off == len ? SC_CODEC_OK : SC_CODEC_ETRAILING;
        case MSGPACK_UNPACK_NOMEM_ERROR:
            return SC_CODEC_ENOMEM;
        default:
            return SC_CODEC_EPARSE;
    }
}

/* ---- Envelope --------------------------------------------------------- */

/* Pre-sized sbuffer: with the exact room reserved it never reallocs, so
   no unwiped copy of what we pack is left behind in freed memory. */
static int
s_sbuf_open (msgpack_sbuffer *sbuf, msgpack_packer *pk, size_t cap)
{
    msgpack_sbuffer_init (sbuf);
    sbuf->data = (char *) malloc (cap);
    if (!sbuf->data)
        return -1;
    sbuf->alloc = cap;
    msgpack_packer_init (pk, sbuf, msgpack_sbuffer_write);
    return 0;
}

static int
s_sbuf_close (msgpack_sbuffer *sbuf, int rc, uint8_t **out, size_t *out_len)
{
    if (rc == 0) {
        *out_len = sbuf->size;
        *out = (uint8_t *) msgpack_sbuffer_release (sbuf);
    }
    else {
        s_free_wiped (sbuf->data, sbuf->size);
        sbuf->data = NULL;
    }
    msgpack_sbuffer_destroy (sbuf);
    return rc;
}

int
sc_envelope_encode (uint8_t opcode, uint64_t seq,
                    const uint8_t *body, size_t body_len,
                    uint8_t **out, size_t *out_len)
{
    if (!out || !out_len)
        return -1;
    *out = NULL;
    *out_len = 0;
    if (!sc_opcode_known (opcode) || (!body && body_len > 0)
    ||  body_len > SC_ENVELOPE_MAX)
        return -1;
    msgpack_sbuffer sbuf;
    msgpack_packer pk;
    if (s_sbuf_open (&sbuf, &pk, 4 + 2 * S_UINT_MAX_LEN + S_HEAD_MAX + body_len))
        return -1;
    int rc = 0;
    if (msgpack_pack_array (&pk, 4)
    ||  msgpack_pack_uint8 (&pk, SC_PROTO_VERSION)
    ||  msgpack_pack_uint8 (&pk, opcode)
    ||  msgpack_pack_uint64 (&pk, seq)
    ||  msgpack_pack_bin (&pk, body_len)
    ||  msgpack_pack_bin_body (&pk, body_len ? (const void *) body : "", body_len)
    ||  sbuf.size > SC_ENVELOPE_MAX)      /* the decoder would refuse it */
        rc = -1;
    return s_sbuf_close (&sbuf, rc, out, out_len);
}

/* Raw look at [version, ...: true when the bytes start with an array whose
   first element is an unsigned int other than SC_PROTO_VERSION. */
static bool
s_other_version (const uint8_t *buf, size_t len)
{
    size_t pos = 0;
    s_head_t head;
    if (s_head_read (buf, len, &pos, &head) || head.kind != S_H_ARRAY
    ||  head.value == 0)
        return false;
    if (s_head_read (buf, len, &pos, &head) || head.kind != S_H_UINT)
        return false;
    return head.value != SC_PROTO_VERSION;
}

static int
s_envelope_check (const msgpack_object *top, sc_envelope_t *env)
{
    if (top->type != MSGPACK_OBJECT_ARRAY)
        return SC_CODEC_ETYPE;
    const msgpack_object_array *a = &top->via.array;
    if (a->size < 1)
        return SC_CODEC_EARITY;
    /* Version first: a later version may change everything after it. */
    if (a->ptr [0].type != MSGPACK_OBJECT_POSITIVE_INTEGER)
        return SC_CODEC_ETYPE;
    if (a->ptr [0].via.u64 != SC_PROTO_VERSION)
        return SC_CODEC_EVERSION;
    if (a->size != 4)
        return SC_CODEC_EARITY;
    if (a->ptr [1].type != MSGPACK_OBJECT_POSITIVE_INTEGER)
        return SC_CODEC_ETYPE;
    if (a->ptr [1].via.u64 > 255 || !sc_opcode_known ((int) a->ptr [1].via.u64))
        return SC_CODEC_EOPCODE;
    if (a->ptr [2].type != MSGPACK_OBJECT_POSITIVE_INTEGER
    ||  a->ptr [3].type != MSGPACK_OBJECT_BIN)
        return SC_CODEC_ETYPE;
    env->version = SC_PROTO_VERSION;
    env->opcode = (uint8_t) a->ptr [1].via.u64;
    env->seq = a->ptr [2].via.u64;
    env->body = (const uint8_t *) a->ptr [3].via.bin.ptr;   /* into buf */
    env->body_len = a->ptr [3].via.bin.size;
    return SC_CODEC_OK;
}

int
sc_envelope_decode (const uint8_t *buf, size_t len, sc_envelope_t *env)
{
    if (!env)
        return SC_CODEC_EPARSE;
    memset (env, 0, sizeof *env);
    if (len > SC_ENVELOPE_MAX)
        return SC_CODEC_ESIZE;
    s_tree_t tree;
    int rc = s_unpack (buf, len, &tree);
    /* A map or float after another version's number is that version's
       business: report the version, as PROTOCOL.md section 2 asks. */
    if ((rc == SC_CODEC_ETYPE || rc == SC_CODEC_EDEPTH)
    &&  s_other_version (buf, len))
        rc = SC_CODEC_EVERSION;
    if (rc == SC_CODEC_OK)
        rc = s_envelope_check (&tree.top, env);
    s_tree_free (&tree);
    if (rc)
        memset (env, 0, sizeof *env);
    return rc;
}

/* ---- Body encoder ----------------------------------------------------- */

size_t
sc_msg_pad_len (size_t name_len)
{
    /* a str of up to 31 bytes has a 1-byte header, of 32 a 2-byte one;
       a bin of up to 255 bytes a 2-byte one: name and pad take 36 bytes */
    return name_len >= SC_NAME_MAX ? 0 : SC_NAME_MAX + 1 - name_len;
}

static const uint8_t s_zeros [SC_NAME_MAX + 1];

static uint64_t
s_uint_get (const sc_msg_t *self, const s_field_t *f)
{
    const uint8_t *at = (const uint8_t *) self + f->offset;
    uint8_t  v8;
    uint32_t v32;
    uint64_t v64;
    switch (f->width) {
        case sizeof v8:  memcpy (&v8, at, sizeof v8);   return v8;
        case sizeof v32: memcpy (&v32, at, sizeof v32); return v32;
        default:         memcpy (&v64, at, sizeof v64); return v64;
    }
}

static void
s_uint_set (sc_msg_t *self, const s_field_t *f, uint64_t value)
{
    uint8_t *at = (uint8_t *) self + f->offset;
    uint8_t  v8 = (uint8_t) value;
    uint32_t v32 = (uint32_t) value;
    switch (f->width) {
        case sizeof v8:  memcpy (at, &v8, sizeof v8);     break;
        case sizeof v32: memcpy (at, &v32, sizeof v32);   break;
        default:         memcpy (at, &value, sizeof value); break;
    }
}

static size_t
s_text_len (const sc_msg_t *self)
{
    return self->text ? strnlen (self->text, SC_TEXT_MAX + 1) : 0;
}

static bool
s_names_valid (const sc_msg_t *self, const s_field_t *f)
{
    if (self->names_count > f->max || (!self->names && self->names_count))
        return false;
    for (size_t i = 0; i < self->names_count; i++)
        if (!sc_name_valid (self->names [i],
                            strnlen (self->names [i], SC_NAME_MAX + 1)))
            return false;
    return true;
}

/* Would the decoder accept this field? */
static bool
s_field_valid (const sc_msg_t *self, const s_field_t *f)
{
    switch (f->kind) {
        case S_K_UINT: {
            uint64_t value = s_uint_get (self, f);
            return value >= f->min && value <= f->max;
        }
        case S_K_NAME:
            return sc_name_valid (self->name,
                                  strnlen (self->name, sizeof self->name));
        case S_K_DATA:
            return self->data && self->data_len >= f->min
                && self->data_len <= f->max;
        case S_K_TEXT: {
            size_t len = s_text_len (self);
            return len >= f->min && len <= f->max
                && sc_utf8_valid (self->text, len);
        }
        case S_K_NAMES:
            return s_names_valid (self, f);
        default:                    /* BOOL, BYTES: any value is fine */
            return true;
    }
}

/* Upper bound of the packed size of a valid field. */
static size_t
s_field_bound (const sc_msg_t *self, const s_field_t *f)
{
    switch (f->kind) {
        case S_K_UINT:  return S_UINT_MAX_LEN;
        case S_K_BOOL:  return 1;
        case S_K_NAME:  return S_HEAD_MAX + SC_NAME_MAX;
        case S_K_BYTES: return S_HEAD_MAX + f->width;
        case S_K_DATA:  return S_HEAD_MAX + self->data_len;
        case S_K_TEXT:  return S_HEAD_MAX + s_text_len (self);
        case S_K_PAD:   return S_HEAD_MAX + f->max;
        default:        return S_HEAD_MAX
                             + self->names_count * (S_HEAD_MAX + SC_NAME_MAX);
    }
}

static int
s_pack_str (msgpack_packer *pk, const char *str, size_t len)
{
    if (msgpack_pack_str (pk, len))
        return -1;
    return msgpack_pack_str_body (pk, len ? str : "", len);
}

static int
s_pack_bin (msgpack_packer *pk, const void *bin, size_t len)
{
    if (msgpack_pack_bin (pk, len))
        return -1;
    return msgpack_pack_bin_body (pk, len ? bin : "", len);
}

static int
s_pack_field (msgpack_packer *pk, const sc_msg_t *self, const s_field_t *f)
{
    const uint8_t *at = (const uint8_t *) self + f->offset;
    switch (f->kind) {
        case S_K_UINT:
            return msgpack_pack_uint64 (pk, s_uint_get (self, f));
        case S_K_BOOL:
            return self->flag ? msgpack_pack_true (pk) : msgpack_pack_false (pk);
        case S_K_NAME:
            return s_pack_str (pk, self->name, strlen (self->name));
        case S_K_BYTES:
            return s_pack_bin (pk, at, f->width);
        case S_K_DATA:
            return s_pack_bin (pk, self->data, self->data_len);
        case S_K_TEXT:
            return s_pack_str (pk, self->text, s_text_len (self));
        case S_K_PAD:
            return s_pack_bin (pk, s_zeros, sc_msg_pad_len (strlen (self->name)));
        default:
            if (msgpack_pack_array (pk, self->names_count))
                return -1;
            for (size_t i = 0; i < self->names_count; i++)
                if (s_pack_str (pk, self->names [i], strlen (self->names [i])))
                    return -1;
            return 0;
    }
}

int
sc_msg_encode (const sc_msg_t *self, uint8_t **out, size_t *out_len)
{
    if (!out || !out_len)
        return -1;
    *out = NULL;
    *out_len = 0;
    const s_schema_t *schema = self ? s_schema (self->opcode) : NULL;
    if (!schema)
        return -1;
    size_t cap = S_HEAD_MAX;
    for (size_t i = 0; i < schema->count; i++) {
        if (!s_field_valid (self, &schema->field [i]))
            return -1;
        cap += s_field_bound (self, &schema->field [i]);
    }
    msgpack_sbuffer sbuf;
    msgpack_packer pk;
    if (s_sbuf_open (&sbuf, &pk, cap))
        return -1;
    int rc = msgpack_pack_array (&pk, schema->count) ? -1 : 0;
    for (size_t i = 0; rc == 0 && i < schema->count; i++)
        if (s_pack_field (&pk, self, &schema->field [i]))
            rc = -1;
    return s_sbuf_close (&sbuf, rc, out, out_len);
}

/* ---- Body decoder ----------------------------------------------------- */

/* Check a name str and copy it, NUL-terminated, into dest. */
static int
s_decode_name (const msgpack_object *o, char dest [SC_NAME_MAX + 1])
{
    if (o->type != MSGPACK_OBJECT_STR)
        return SC_CODEC_ETYPE;
    if (!sc_name_valid (o->via.str.ptr, o->via.str.size))
        return SC_CODEC_ENAME;
    memset (dest, 0, SC_NAME_MAX + 1);
    memcpy (dest, o->via.str.ptr, o->via.str.size);
    return SC_CODEC_OK;
}

static int
s_decode_names (const msgpack_object *o, const s_field_t *f, sc_msg_t *self, bool keep)
{
    if (o->type != MSGPACK_OBJECT_ARRAY)
        return SC_CODEC_ETYPE;
    if (o->via.array.size < f->min || o->via.array.size > f->max)
        return SC_CODEC_ESIZE;
    for (uint32_t i = 0; i < o->via.array.size; i++) {
        char name [SC_NAME_MAX + 1];
        int rc = s_decode_name (&o->via.array.ptr [i], name);
        if (rc)
            return rc;
        if (keep && sc_msg_add_name (self, name))
            return SC_CODEC_ENOMEM;
    }
    return SC_CODEC_OK;
}

/* A str or bin (per `type`) whose length must lie in [min, max]. */
static int
s_check_blob (const msgpack_object *o, msgpack_object_type type,
              uint64_t min, uint64_t max)
{
    if (o->type != type)
        return SC_CODEC_ETYPE;
    /* str and bin share one layout in msgpack-c's union */
    if (o->via.bin.size < min || o->via.bin.size > max)
        return SC_CODEC_ESIZE;
    return SC_CODEC_OK;
}

static int
s_decode_field (const msgpack_object *o, const s_field_t *f, sc_msg_t *self, bool keep)
{
    uint8_t *at = (uint8_t *) self + f->offset;
    int rc;
    switch (f->kind) {
        case S_K_UINT:
            if (o->type != MSGPACK_OBJECT_POSITIVE_INTEGER)
                return SC_CODEC_ETYPE;
            if (o->via.u64 < f->min || o->via.u64 > f->max)
                return SC_CODEC_ERANGE;
            s_uint_set (self, f, o->via.u64);
            return SC_CODEC_OK;
        case S_K_BOOL:
            if (o->type != MSGPACK_OBJECT_BOOLEAN)
                return SC_CODEC_ETYPE;
            self->flag = o->via.boolean;
            return SC_CODEC_OK;
        case S_K_NAME:
            return s_decode_name (o, self->name);
        case S_K_BYTES:
            rc = s_check_blob (o, MSGPACK_OBJECT_BIN, f->width, f->width);
            if (rc == SC_CODEC_OK)
                memcpy (at, o->via.bin.ptr, f->width);
            return rc;
        case S_K_DATA:
            rc = s_check_blob (o, MSGPACK_OBJECT_BIN, f->min, f->max);
            if (rc == SC_CODEC_OK && keep
            &&  sc_msg_set_data (self, (const uint8_t *) o->via.bin.ptr,
                                 o->via.bin.size))
                rc = SC_CODEC_ENOMEM;
            return rc;
        case S_K_TEXT:
            rc = s_check_blob (o, MSGPACK_OBJECT_STR, f->min, f->max);
            if (rc == SC_CODEC_OK
            &&  !sc_utf8_valid (o->via.str.ptr, o->via.str.size))
                rc = SC_CODEC_EUTF8;
            if (rc == SC_CODEC_OK && keep
            &&  s_set_text (self, o->via.str.ptr, o->via.str.size))
                rc = SC_CODEC_ENOMEM;
            return rc;
        case S_K_PAD: {
            size_t want = sc_msg_pad_len (strlen (self->name));
            rc = s_check_blob (o, MSGPACK_OBJECT_BIN, want, want);
            if (rc == SC_CODEC_OK && want
            &&  memcmp (o->via.bin.ptr, s_zeros, want) != 0)
                rc = SC_CODEC_ERANGE;
            return rc;
        }
        default:
            return s_decode_names (o, f, self, keep);
    }
}

static int
s_decode_body (const msgpack_object *top, const s_schema_t *schema,
               sc_msg_t *self, bool keep)
{
    if (top->type != MSGPACK_OBJECT_ARRAY)
        return SC_CODEC_ETYPE;
    if (top->via.array.size != schema->count)
        return SC_CODEC_EARITY;
    for (size_t i = 0; i < schema->count; i++) {
        int rc = s_decode_field (&top->via.array.ptr [i], &schema->field [i],
                                 self, keep);
        if (rc)
            return rc;
    }
    return SC_CODEC_OK;
}

/* Decode into self; with keep false the data and text fields are
   checked as strictly but not copied out (self then lacks them). */
static int
s_decode (uint8_t opcode, const uint8_t *buf, size_t len, sc_msg_t *self, bool keep)
{
    sc_msg_init (self, opcode);
    const s_schema_t *schema = s_schema (opcode);
    if (!schema)
        return SC_CODEC_EOPCODE;
    if (len > SC_ENVELOPE_MAX)
        return SC_CODEC_ESIZE;
    s_tree_t tree;
    int rc = s_unpack (buf, len, &tree);
    if (rc == SC_CODEC_OK)
        rc = s_decode_body (&tree.top, schema, self, keep);
    s_tree_free (&tree);
    if (rc) {
        sc_msg_reset (self);
        self->opcode = opcode;
    }
    return rc;
}

int
sc_msg_decode (uint8_t opcode, const uint8_t *buf, size_t len, sc_msg_t *self)
{
    if (!self)
        return SC_CODEC_EPARSE;
    return s_decode (opcode, buf, len, self, true);
}

int
sc_msg_check (uint8_t opcode, const uint8_t *buf, size_t len)
{
    sc_msg_t scratch;
    int rc = s_decode (opcode, buf, len, &scratch, false);
    sc_msg_reset (&scratch);
    return rc;
}

/* ---- E2E plaintext ---------------------------------------------------- */

/* The pad element's bin8 header: 0xc4, then its length. */
#define S_PAD_HEAD 2

static bool
s_e2e_len_valid (uint64_t kind, size_t len)
{
    return kind == SC_E2E_TEXT ? len >= 1 && len <= SC_TEXT_MAX : len == 0;
}

int
sc_e2e_plain_encode (uint8_t kind, uint64_t ack, uint64_t lines,
                     const char *text, size_t len, uint8_t **out, size_t *out_len)
{
    if (!out || !out_len)
        return -1;
    *out = NULL;
    *out_len = 0;
    if (kind > SC_E2E_ACK || (!text && len > 0)
    ||  ack >= SC_E2E_COUNT_LIMIT || lines >= SC_E2E_COUNT_LIMIT
    ||  !s_e2e_len_valid (kind, len) || !sc_utf8_valid (text, len))
        return -1;
    msgpack_sbuffer sbuf;
    msgpack_packer pk;
    if (s_sbuf_open (&sbuf, &pk, 1 + 3 * S_UINT_MAX_LEN + S_HEAD_MAX + len
                                 + S_PAD_HEAD + SC_E2E_BUCKET))
        return -1;
    int rc = 0;
    if (msgpack_pack_array (&pk, 5)
    ||  msgpack_pack_uint8 (&pk, kind)
    ||  msgpack_pack_uint64 (&pk, ack)
    ||  msgpack_pack_uint64 (&pk, lines)
    ||  s_pack_str (&pk, text, len))
        rc = -1;
    if (rc == 0) {
        /* the shortest pad that ends the whole on a bucket boundary */
        size_t used = sbuf.size + S_PAD_HEAD;
        size_t pad = (SC_E2E_BUCKET - used % SC_E2E_BUCKET) % SC_E2E_BUCKET;
        static const char zeros[SC_E2E_BUCKET];
        if (msgpack_pack_bin (&pk, pad) || msgpack_pack_bin_body (&pk, zeros, pad))
            rc = -1;
    }
    return s_sbuf_close (&sbuf, rc, out, out_len);
}

static int
s_e2e_count (const msgpack_object *o, uint64_t *value)
{
    if (o->type != MSGPACK_OBJECT_POSITIVE_INTEGER)
        return SC_CODEC_ETYPE;
    if (o->via.u64 >= SC_E2E_COUNT_LIMIT)
        return SC_CODEC_ERANGE;
    *value = o->via.u64;
    return SC_CODEC_OK;
}

/* The layout, then the padding: a bin8 of zeros that is the last thing
   in buf and makes its length the smallest multiple of the bucket. */
static int
s_e2e_check (const msgpack_object *top, const uint8_t *buf, size_t len,
             sc_e2e_plain_t *plain)
{
    if (top->type != MSGPACK_OBJECT_ARRAY)
        return SC_CODEC_ETYPE;
    if (top->via.array.size != 5)
        return SC_CODEC_EARITY;
    const msgpack_object *f = top->via.array.ptr;
    if (f [0].type != MSGPACK_OBJECT_POSITIVE_INTEGER)
        return SC_CODEC_ETYPE;
    if (f [0].via.u64 > SC_E2E_ACK)
        return SC_CODEC_ERANGE;
    plain->kind = (uint8_t) f [0].via.u64;
    int rc;
    if ((rc = s_e2e_count (&f [1], &plain->ack))
    ||  (rc = s_e2e_count (&f [2], &plain->lines)))
        return rc;
    if (f [3].type != MSGPACK_OBJECT_STR)
        return SC_CODEC_ETYPE;
    if (!s_e2e_len_valid (plain->kind, f [3].via.str.size))
        return SC_CODEC_ESIZE;
    if (!sc_utf8_valid (f [3].via.str.ptr, f [3].via.str.size))
        return SC_CODEC_EUTF8;
    if (f [4].type != MSGPACK_OBJECT_BIN)
        return SC_CODEC_ETYPE;
    size_t pad = f [4].via.bin.size;
    if (len % SC_E2E_BUCKET != 0 || pad >= SC_E2E_BUCKET
    ||  len < pad + S_PAD_HEAD || buf [len - pad - 2] != 0xc4
    ||  buf [len - pad - 1] != pad)
        return SC_CODEC_ESIZE;
    for (size_t i = 0; i < pad; i++)
        if (buf [len - pad + i] != 0)
            return SC_CODEC_ERANGE;
    return SC_CODEC_OK;
}

int
sc_e2e_plain_decode (const uint8_t *buf, size_t len, sc_e2e_plain_t *plain)
{
    if (!plain)
        return SC_CODEC_EPARSE;
    memset (plain, 0, sizeof *plain);
    /* The plaintext came out of a box of at most SC_BOX_MAX bytes. */
    if (len > SC_BOX_MAX)
        return SC_CODEC_ESIZE;
    s_tree_t tree;
    sc_e2e_plain_t got = { 0 };
    int rc = s_unpack (buf, len, &tree);
    if (rc == SC_CODEC_OK)
        rc = s_e2e_check (&tree.top, buf, len, &got);
    if (rc == SC_CODEC_OK) {
        const msgpack_object_str *str = &tree.top.via.array.ptr [3].via.str;
        char *copy = (char *) malloc (str->size + 1);
        if (copy) {
            if (str->size > 0)      /* msgpack-c gives "" a NULL ptr */
                memcpy (copy, str->ptr, str->size);
            copy [str->size] = 0;
            got.text = copy;
            got.text_len = str->size;
            *plain = got;
        }
        else
            rc = SC_CODEC_ENOMEM;
    }
    s_tree_free (&tree);
    return rc;
}
