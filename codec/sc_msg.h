/*  sc_msg: the envelope and every message body of the wire protocol,
    encoded and strictly decoded with msgpack-c.

    An envelope is the msgpack array [version, opcode, seq, body] where body
    is a bin: the encoded message body, or (after login) its AEAD ciphertext.
    A message body is a msgpack array whose schema depends on the opcode
    (docs/PROTOCOL.md, "Bodies"). sc_msg_t is one flat struct for every
    opcode; each opcode uses the fields its schema names, the rest stay zero.

    Decoding is strict: exactly one msgpack object, no trailing bytes,
    exact array lengths and types, every length bounded before anything is
    allocated, names checked. Each kind of rejection has its own code.
    Decoded strings and bins are copied out: nothing points into the input.

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at https://mozilla.org/MPL/2.0/.
*/
#ifndef SC_MSG_H_INCLUDED
#define SC_MSG_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sc_proto.h"

#define SC_MUST_CHECK_CODEC __attribute__ ((warn_unused_result))

/* Decoder results: 0 on success, one distinct negative code per kind of
   rejection. */
typedef enum {
    SC_CODEC_OK = 0,
    SC_CODEC_EPARSE = -2,      /* not msgpack, or truncated                */
    SC_CODEC_ETRAILING = -3,   /* bytes after the one object               */
    SC_CODEC_ETYPE = -4,       /* wrong msgpack type (incl. ext, float...) */
    SC_CODEC_EARITY = -5,      /* wrong array length                       */
    SC_CODEC_ESIZE = -6,       /* str/bin/array longer (or shorter) than allowed */
    SC_CODEC_ENAME = -7,       /* a name breaks [a-z0-9_-]{1,32}           */
    SC_CODEC_EOPCODE = -8,     /* unknown opcode                           */
    SC_CODEC_EVERSION = -9,    /* unknown envelope version                 */
    SC_CODEC_ERANGE = -10,     /* integer out of its range                 */
    SC_CODEC_EUTF8 = -11,      /* text is not valid UTF-8                  */
    SC_CODEC_EDEPTH = -12,     /* nesting deeper than any message has      */
    SC_CODEC_ENOMEM = -13
} sc_codec_err_t;

const char *sc_codec_strerror (int err);
/* "HELLO", "MESSAGE", ... or NULL for an unknown opcode. */
const char *sc_opcode_name (int opcode);
bool sc_opcode_known (int opcode);

/* [a-z0-9_-]{1,32}, exactly len bytes (no NUL inside). */
bool sc_name_valid (const char *name, size_t len);
/* Well-formed UTF-8 (no overlongs, no surrogates, <= U+10FFFF). */
bool sc_utf8_valid (const char *text, size_t len);

/* ---- Envelope -------------------------------------------------------- */
typedef struct {
    uint8_t  version;
    uint8_t  opcode;
    uint64_t seq;
    const uint8_t *body;       /* view into the decoded buffer            */
    size_t   body_len;
} sc_envelope_t;

/* Encode [SC_PROTO_VERSION, opcode, seq, bin body] into a new malloc'd
   buffer. 0 or -1. */
int sc_envelope_encode (uint8_t opcode, uint64_t seq,
                        const uint8_t *body, size_t body_len,
                        uint8_t **out, size_t *out_len) SC_MUST_CHECK_CODEC;
/* Strict decode; env->body points into buf (valid while buf is). Rejects
   len > SC_ENVELOPE_MAX with SC_CODEC_ESIZE. */
int sc_envelope_decode (const uint8_t *buf, size_t len,
                        sc_envelope_t *env) SC_MUST_CHECK_CODEC;

/* ---- Message bodies -------------------------------------------------- */
typedef struct {
    uint8_t  opcode;
    uint8_t  suite;            /* HELLO, CC_SESSION                        */
    uint32_t code;             /* ERROR code, REFUSE/NOTIFY reason,
                                  WELCOME heartbeat interval (ms)          */
    uint64_t counter;          /* MESSAGE                                  */
    bool     flag;             /* CHAT initiator, USERS truncated          */
    char     name[SC_NAME_MAX + 1];
    uint8_t  nonce[32];        /* HELLO, AUTH_BROKER, CC_SESSION, CC_REPLY */
    uint8_t  eph[32];          /* same                                     */
    uint8_t  key[32];          /* CHAT: the peer's Ed25519 public key      */
    uint8_t  sig[64];          /* AUTH_BROKER, CC_REPLY, CC_FINISH         */
    uint8_t  mac[32];          /* same                                     */
    uint8_t  cookie[SC_COOKIE_LEN];     /* COOKIE, HELLO_COOKIE            */
    uint8_t *data;             /* owned: AUTH_BROKER cert, AUTH_CLIENT and
                                  MESSAGE box                              */
    size_t   data_len;
    char    *text;             /* owned, NUL-terminated: ERROR detail      */
    char   (*names)[SC_NAME_MAX + 1];   /* owned: USERS                    */
    size_t   names_count;
} sc_msg_t;

/* Zero the struct and set the opcode. */
void sc_msg_init (sc_msg_t *self, uint8_t opcode);
/* Free (and wipe) what the struct owns and zero it. Idempotent. */
void sc_msg_reset (sc_msg_t *self);
/* Copy helpers for the owned fields: 0 or -1 (too large / no memory). */
int sc_msg_set_data (sc_msg_t *self, const uint8_t *data, size_t len) SC_MUST_CHECK_CODEC;
int sc_msg_set_text (sc_msg_t *self, const char *text) SC_MUST_CHECK_CODEC;
int sc_msg_add_name (sc_msg_t *self, const char *name) SC_MUST_CHECK_CODEC;
/* Set name from a C string; -1 when it is not a valid name. */
int sc_msg_set_name (sc_msg_t *self, const char *name) SC_MUST_CHECK_CODEC;

/* WELCOME's pad after a name of name_len bytes: 33 - name_len zero
   bytes, none for a 32-byte name, so that the name and the pad always
   take 36 bytes of msgpack and WELCOME's size does not tell the name. */
size_t sc_msg_pad_len (size_t name_len);

/* Encode the body of self->opcode into a new malloc'd buffer. Refuses
   (-1) to encode what the decoder would reject. */
int sc_msg_encode (const sc_msg_t *self, uint8_t **out, size_t *out_len) SC_MUST_CHECK_CODEC;
/* Strict decode of a body for `opcode` into self (initialised here;
   sc_msg_reset it after, even on failure). */
int sc_msg_decode (uint8_t opcode, const uint8_t *buf, size_t len,
                   sc_msg_t *self) SC_MUST_CHECK_CODEC;
/* The same checks and result as sc_msg_decode, keeping nothing: for a
   body that is relayed as it is (no copy of its data or text is made). */
int sc_msg_check (uint8_t opcode, const uint8_t *buf, size_t len) SC_MUST_CHECK_CODEC;

/* ---- The plaintext inside an E2E box ---------------------------------- */
/* [kind, ack, lines, text, pad] (docs/PROTOCOL.md section 7):
   kind SC_E2E_TEXT carries 1..SC_TEXT_MAX bytes of UTF-8, SC_E2E_CLOSE
   (the sender ends the chat) and SC_E2E_ACK (it only acknowledges)
   carry "". ack: the highest message counter the sender has accepted
   from its peer (0: none yet); lines: how many chat lines the sender has
   sent in this chat, this one included; both below SC_E2E_COUNT_LIMIT.
   pad: a bin8 of zero bytes that makes the whole a multiple of
   SC_E2E_BUCKET bytes, as short as it can be (0..255 bytes). */
typedef enum { SC_E2E_TEXT = 0, SC_E2E_CLOSE = 1, SC_E2E_ACK = 2 } sc_e2e_kind_t;

typedef struct {
    uint8_t kind;
    uint64_t ack;
    uint64_t lines;
    char *text;         /* decode: malloc'd, NUL-terminated (wipe, free) */
    size_t text_len;
} sc_e2e_plain_t;

int sc_e2e_plain_encode (uint8_t kind, uint64_t ack, uint64_t lines,
                         const char *text, size_t len,
                         uint8_t **out, size_t *out_len) SC_MUST_CHECK_CODEC;
/* Strict: any other layout, padding or length is refused. On success
   the caller wipes and frees plain->text; on failure nothing is kept. */
int sc_e2e_plain_decode (const uint8_t *buf, size_t len,
                         sc_e2e_plain_t *plain) SC_MUST_CHECK_CODEC;

#endif
