/*  sc_wire: messages to and from envelope bytes, plain or sealed.

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at https://mozilla.org/MPL/2.0/.
*/
#include <stdlib.h>
#include <string.h>

#include <msgpack.h>

#include "sc_wire.h"

/* The longest envelope header: a fixarray, two small uints, a uint64
   (9 bytes) and a bin32 header (5 bytes). */
#define S_HEADER_MAX 20

typedef struct {
    uint8_t bytes[S_HEADER_MAX];
    size_t len;
} s_header_t;

static int
s_header_write (void *data, const char *buf, size_t len)
{
    s_header_t *self = data;
    if (len > S_HEADER_MAX - self->len)
        return -1;
    memcpy (self->bytes + self->len, buf, len);
    self->len += len;
    return 0;
}

/* The bytes sc_envelope_encode puts before a body of body_len bytes: the
   same msgpack calls, into a small buffer, so the relay path can seal
   straight into the frame it sends. */
static int
s_header (uint8_t opcode, uint64_t seq, size_t body_len, s_header_t *header)
{
    msgpack_packer pk;
    header->len = 0;
    msgpack_packer_init (&pk, header, s_header_write);
    return msgpack_pack_array (&pk, 4)
        || msgpack_pack_uint8 (&pk, SC_PROTO_VERSION)
        || msgpack_pack_uint8 (&pk, opcode)
        || msgpack_pack_uint64 (&pk, seq)
        || msgpack_pack_bin (&pk, body_len) ? -1 : 0;
}

const char *
sc_wire_strerror (int err)
{
    switch (err) {
        case SC_CHANNEL_EAUTH:     return "envelope does not authenticate";
        case SC_CHANNEL_EREPLAY:   return "replayed or reordered envelope";
        case SC_CHANNEL_ELIMIT:    return "session counter exhausted";
        case SC_CHANNEL_EINTERNAL: return "internal crypto error";
        case SC_CHANNEL_EGAP:      return "envelopes missing before this one";
        default:                   return sc_codec_strerror (err);
    }
}

int
sc_wire_plain (const sc_msg_t *msg, uint8_t **out, size_t *out_len)
{
    uint8_t *body = NULL;
    size_t body_len = 0;
    if (sc_msg_encode (msg, &body, &body_len))
        return -1;
    int rc = sc_envelope_encode (msg->opcode, 0, body, body_len, out, out_len);
    free (body);
    return rc ? -1 : 0;
}

int
sc_wire_open_plain (const uint8_t *buf, size_t len, sc_msg_t *msg)
{
    sc_envelope_t env;
    sc_msg_init (msg, 0);
    int rc = sc_envelope_decode (buf, len, &env);
    if (rc)
        return rc;
    return sc_msg_decode (env.opcode, env.body, env.body_len, msg);
}

/* Seal, then encode the envelope around the ciphertext: two buffers.
   What sc_wire_seal_raw falls back to when the envelope would be refused,
   so that every failure is the same as it always was. */
static int
s_seal_raw_copy (sc_channel_t *ch, uint8_t opcode, const uint8_t *body,
                 size_t body_len, uint8_t **out, size_t *out_len)
{
    uint8_t *ct = malloc (body_len + SC_TAG_LEN);
    if (!ct)
        return SC_CODEC_ENOMEM;
    uint64_t seq = 0;
    int rc = sc_channel_seal (ch, SC_PROTO_VERSION, opcode, body, body_len, &seq, ct);
    if (rc == 0 && sc_envelope_encode (opcode, seq, ct, body_len + SC_TAG_LEN, out, out_len))
        rc = SC_CODEC_ENOMEM;
    free (ct);          /* ciphertext: nothing secret */
    return rc;
}

/* One buffer: the header for the next seq, then the ciphertext sealed in
   place behind it. Byte for byte what s_seal_raw_copy makes. */
int
sc_wire_seal_raw (sc_channel_t *ch, uint8_t opcode, const uint8_t *body,
                  size_t body_len, uint8_t **out, size_t *out_len)
{
    if (body_len > SC_ENVELOPE_MAX)
        return SC_CODEC_ESIZE;
    s_header_t header;
    uint64_t next = sc_channel_sent (ch) + 1;
    size_t ct_len = body_len + SC_TAG_LEN;
    if (!sc_opcode_known (opcode) || s_header (opcode, next, ct_len, &header)
        || header.len + ct_len > SC_ENVELOPE_MAX)
        return s_seal_raw_copy (ch, opcode, body, body_len, out, out_len);
    uint8_t *frame = malloc (header.len + ct_len);
    if (!frame)
        return SC_CODEC_ENOMEM;
    uint64_t seq = 0;
    int rc = sc_channel_seal (ch, SC_PROTO_VERSION, opcode, body, body_len, &seq,
                              frame + header.len);
    if (rc == 0 && seq != next)
        rc = SC_CHANNEL_EINTERNAL;      /* the channel counts one by one */
    if (rc) {
        free (frame);
        return rc;
    }
    memcpy (frame, header.bytes, header.len);
    *out = frame;
    *out_len = header.len + ct_len;
    return 0;
}

int
sc_wire_seal (sc_channel_t *ch, const sc_msg_t *msg, uint8_t **out, size_t *out_len)
{
    uint8_t *body = NULL;
    size_t body_len = 0;
    if (sc_msg_encode (msg, &body, &body_len))
        return -1;
    int rc = sc_wire_seal_raw (ch, msg->opcode, body, body_len, out, out_len);
    sc_wipe (body, body_len);
    free (body);
    return rc;
}

/* The start of every open: an envelope whose body can hold a tag. */
static int
s_sealed_envelope (const uint8_t *buf, size_t len, sc_envelope_t *env)
{
    int rc = sc_envelope_decode (buf, len, env);
    if (rc == 0 && env->body_len < SC_TAG_LEN)
        rc = SC_CHANNEL_EAUTH;
    return rc;
}

int
sc_wire_open_inplace (sc_channel_t *ch, uint8_t *buf, size_t len,
                      uint8_t *opcode, uint8_t **body, size_t *body_len)
{
    sc_envelope_t env;
    int rc = s_sealed_envelope (buf, len, &env);
    if (rc)
        return rc;
    /* env.body points into buf: decrypt where the ciphertext is */
    uint8_t *at = buf + (env.body - buf);
    rc = sc_channel_open (ch, env.version, env.opcode, env.seq, at, env.body_len, at);
    if (rc)
        return rc;
    *opcode = env.opcode;
    *body = at;
    *body_len = env.body_len - SC_TAG_LEN;
    return 0;
}

int
sc_wire_reseal_inplace (sc_channel_t *ch, uint8_t opcode, uint8_t *buf, size_t len,
                        const uint8_t *body, size_t body_len)
{
    s_header_t header;
    size_t ct_len = body_len + SC_TAG_LEN;
    uint64_t next = sc_channel_sent (ch) + 1;
    /* the body must be where sc_wire_open_inplace left it: the frame's end */
    if (ct_len > len || body != buf + (len - ct_len) || !sc_opcode_known (opcode)
        || s_header (opcode, next, ct_len, &header) || header.len != len - ct_len)
        return SC_WIRE_NOFIT;           /* the caller seals a copy */
    uint64_t seq = 0;
    uint8_t *at = buf + header.len;
    int rc = sc_channel_seal (ch, SC_PROTO_VERSION, opcode, at, body_len, &seq, at);
    if (rc == 0 && seq != next)
        rc = SC_CHANNEL_EINTERNAL;      /* the channel counts one by one */
    if (rc)
        return rc;
    memcpy (buf, header.bytes, header.len);
    return 0;
}

int
sc_wire_open_raw (sc_channel_t *ch, const uint8_t *buf, size_t len,
                  uint8_t *opcode, uint8_t **body, size_t *body_len)
{
    sc_envelope_t env;
    *body = NULL;
    int rc = s_sealed_envelope (buf, len, &env);
    if (rc)
        return rc;
    size_t pt_len = env.body_len - SC_TAG_LEN;
    uint8_t *pt = malloc (pt_len ? pt_len : 1);
    if (!pt)
        return SC_CODEC_ENOMEM;
    rc = sc_channel_open (ch, env.version, env.opcode, env.seq,
                          env.body, env.body_len, pt);
    if (rc) {
        free (pt);
        return rc;
    }
    *opcode = env.opcode;
    *body = pt;
    *body_len = pt_len;
    return 0;
}

int
sc_wire_open (sc_channel_t *ch, const uint8_t *buf, size_t len, sc_msg_t *msg)
{
    uint8_t opcode = 0, *body = NULL;
    size_t body_len = 0;
    sc_msg_init (msg, 0);
    int rc = sc_wire_open_raw (ch, buf, len, &opcode, &body, &body_len);
    if (rc)
        return rc;
    rc = sc_msg_decode (opcode, body, body_len, msg);
    sc_wipe (body, body_len);
    free (body);
    return rc;
}

int
sc_wire_peek (const uint8_t *buf, size_t len, uint8_t *opcode, uint64_t *seq)
{
    sc_envelope_t env;
    if (sc_envelope_decode (buf, len, &env))
        return -1;
    *opcode = env.opcode;
    *seq = env.seq;
    return 0;
}
