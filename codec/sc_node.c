/*  sc_node: the bodies between the brokers of a cluster (sc_node.h).

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at https://mozilla.org/MPL/2.0/.
*/
#include <msgpack.h>
#include <stdlib.h>
#include <string.h>

#include "sc_node.h"

#define S_FIELDS 12

void
sc_node_msg_init (sc_node_msg_t *self, uint8_t kind)
{
    memset (self, 0, sizeof *self);
    self->kind = kind;
}

static bool
s_kind_known (uint64_t kind)
{
    return (kind >= SC_NODE_UP && kind <= SC_NODE_GAVE_UP)
        || (kind >= SC_NODE_RTT && kind <= SC_NODE_UNDELIVERED);
}

static int
s_pack_str (msgpack_packer *pk, const char *s)
{
    size_t len = strlen (s);
    return msgpack_pack_str (pk, len) || msgpack_pack_str_body (pk, s, len);
}

int
sc_node_msg_encode (const sc_node_msg_t *self, uint8_t **out, size_t *out_len)
{
    *out = NULL;
    *out_len = 0;
    if (!s_kind_known (self->kind) || !sc_name_valid (self->node, strlen (self->node))
        || self->data_len > SC_NODE_DATA_MAX || (!self->data && self->data_len))
        return -1;
    msgpack_sbuffer sbuf;
    msgpack_sbuffer_init (&sbuf);
    msgpack_packer pk;
    msgpack_packer_init (&pk, &sbuf, msgpack_sbuffer_write);
    size_t key_len = self->has_key ? SC_NODE_KEY_LEN : 0;
    int rc = msgpack_pack_array (&pk, S_FIELDS)
          || msgpack_pack_uint8 (&pk, SC_NODE_VERSION)
          || msgpack_pack_uint8 (&pk, self->kind)
          || s_pack_str (&pk, self->node)
          || msgpack_pack_uint64 (&pk, self->boot)
          || s_pack_str (&pk, self->from)
          || msgpack_pack_uint64 (&pk, self->from_sid)
          || s_pack_str (&pk, self->to)
          || msgpack_pack_uint64 (&pk, self->to_sid)
          || msgpack_pack_uint32 (&pk, self->code)
          || msgpack_pack_int64 (&pk, self->since)
          || msgpack_pack_bin (&pk, key_len)
          || msgpack_pack_bin_body (&pk, self->key, key_len)
          || msgpack_pack_bin (&pk, self->data_len)
          || msgpack_pack_bin_body (&pk, self->data_len ? (const void *) self->data : "",
                                    self->data_len);
    if (rc || !sbuf.data) {
        msgpack_sbuffer_destroy (&sbuf);
        return -1;
    }
    *out_len = sbuf.size;
    *out = (uint8_t *) msgpack_sbuffer_release (&sbuf);
    msgpack_sbuffer_destroy (&sbuf);
    return 0;
}

static int
s_uint (const msgpack_object *o, uint64_t max, uint64_t *value)
{
    if (o->type != MSGPACK_OBJECT_POSITIVE_INTEGER)
        return SC_CODEC_ETYPE;
    if (o->via.u64 > max)
        return SC_CODEC_ERANGE;
    *value = o->via.u64;
    return 0;
}

/* A name, or "" when empty is allowed. */
static int
s_name (const msgpack_object *o, bool empty_ok, char out[static SC_NAME_MAX + 1])
{
    if (o->type != MSGPACK_OBJECT_STR)
        return SC_CODEC_ETYPE;
    size_t len = o->via.str.size;
    if (len == 0 && empty_ok) {
        out[0] = 0;
        return 0;
    }
    if (len > SC_NAME_MAX || !sc_name_valid (o->via.str.ptr, len))
        return SC_CODEC_ENAME;
    memcpy (out, o->via.str.ptr, len);
    out[len] = 0;
    return 0;
}

static int
s_check (const msgpack_object *top, sc_node_msg_t *self)
{
    if (top->type != MSGPACK_OBJECT_ARRAY)
        return SC_CODEC_ETYPE;
    const msgpack_object *f = top->via.array.ptr;
    if (top->via.array.size < 1)
        return SC_CODEC_EARITY;
    uint64_t v = 0;
    int rc = s_uint (&f[0], UINT64_MAX, &v);
    if (rc)
        return rc;
    if (v != SC_NODE_VERSION)
        return SC_CODEC_EVERSION;
    if (top->via.array.size != S_FIELDS)
        return SC_CODEC_EARITY;
    if ((rc = s_uint (&f[1], 255, &v)))
        return rc;
    if (!s_kind_known (v))
        return SC_CODEC_EOPCODE;
    self->kind = (uint8_t) v;
    if ((rc = s_name (&f[2], false, self->node))
        || (rc = s_uint (&f[3], UINT64_MAX, &self->boot))
        || (rc = s_name (&f[4], true, self->from))
        || (rc = s_uint (&f[5], UINT64_MAX, &self->from_sid))
        || (rc = s_name (&f[6], true, self->to))
        || (rc = s_uint (&f[7], UINT64_MAX, &self->to_sid))
        || (rc = s_uint (&f[8], UINT32_MAX, &v)))
        return rc;
    self->code = (uint32_t) v;
    if (f[9].type == MSGPACK_OBJECT_POSITIVE_INTEGER && f[9].via.u64 <= INT64_MAX)
        self->since = (int64_t) f[9].via.u64;
    else
    if (f[9].type == MSGPACK_OBJECT_NEGATIVE_INTEGER)
        self->since = f[9].via.i64;
    else
        return f[9].type == MSGPACK_OBJECT_POSITIVE_INTEGER ? SC_CODEC_ERANGE : SC_CODEC_ETYPE;
    if (f[10].type != MSGPACK_OBJECT_BIN || f[11].type != MSGPACK_OBJECT_BIN)
        return SC_CODEC_ETYPE;
    if (f[10].via.bin.size != 0 && f[10].via.bin.size != SC_NODE_KEY_LEN)
        return SC_CODEC_ESIZE;
    self->has_key = f[10].via.bin.size == SC_NODE_KEY_LEN;
    if (self->has_key)
        memcpy (self->key, f[10].via.bin.ptr, SC_NODE_KEY_LEN);
    if (f[11].via.bin.size > SC_NODE_DATA_MAX)
        return SC_CODEC_ESIZE;
    self->data = (const uint8_t *) f[11].via.bin.ptr;
    self->data_len = f[11].via.bin.size;
    return 0;
}

/* Before msgpack-c builds anything: the top is a 12-element array whose
   elements are all ints, strs or bins whose lengths fit in buf. msgpack-c
   would size an array or map from its header before reading it; here
   none can appear, so nothing is allocated from a claim. */
static uint64_t
s_be (const uint8_t *p, size_t n)
{
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++)
        v = (v << 8) | p[i];
    return v;
}

static int
s_prescan (const uint8_t *buf, size_t len)
{
    if ((buf[0] & 0xf0) != 0x90)
        return (buf[0] == 0xdc || buf[0] == 0xdd) ? SC_CODEC_EARITY : SC_CODEC_ETYPE;
    size_t pos = 1;
    for (size_t i = 0; i < (size_t) (buf[0] & 0x0f); i++) {
        if (pos >= len)
            return SC_CODEC_EPARSE;
        uint8_t b = buf[pos++];
        size_t head = 0, body = 0;
        if (b <= 0x7f || b >= 0xe0)
            ;                                   /* fixint */
        else
        if (b >= 0xa0 && b <= 0xbf)
            body = b & 0x1f;                    /* fixstr */
        else
        if (b >= 0xcc && b <= 0xd3)
            body = (size_t) 1 << (b & 3);       /* uint/int 8..64 */
        else
        if (b == 0xd9 || b == 0xc4)
            head = 1;
        else
        if (b == 0xda || b == 0xc5)
            head = 2;
        else
        if (b == 0xdb || b == 0xc6)
            head = 4;
        else
            return (b & 0xf0) == 0x90 || (b & 0xf0) == 0x80 || b == 0xdc || b == 0xdd
                   || b == 0xde || b == 0xdf ? SC_CODEC_EDEPTH : SC_CODEC_ETYPE;
        if (head) {
            if (len - pos < head)
                return SC_CODEC_EPARSE;
            body = (size_t) s_be (buf + pos, head);
            pos += head;
        }
        if (len - pos < body)
            return SC_CODEC_EPARSE;
        pos += body;
    }
    return 0;
}

int
sc_node_msg_decode (const uint8_t *buf, size_t len, sc_node_msg_t *self)
{
    sc_node_msg_init (self, 0);
    if (!buf || len == 0)
        return SC_CODEC_EPARSE;
    if (len > SC_NODE_DATA_MAX + 512)
        return SC_CODEC_ESIZE;
    int rc = s_prescan (buf, len);
    if (rc)
        return rc;
    msgpack_zone zone;
    if (!msgpack_zone_init (&zone, 2048))
        return SC_CODEC_ENOMEM;
    msgpack_object top;
    size_t off = 0;
    switch (msgpack_unpack ((const char *) buf, len, &off, &zone, &top)) {
        case MSGPACK_UNPACK_SUCCESS:
        case MSGPACK_UNPACK_EXTRA_BYTES:
            rc = off == len ? s_check (&top, self) : SC_CODEC_ETRAILING;
            break;
        case MSGPACK_UNPACK_NOMEM_ERROR:
            rc = SC_CODEC_ENOMEM;
            break;
        default:
            rc = SC_CODEC_EPARSE;
            break;
    }
    /* data points into buf, not into the zone */
    msgpack_zone_destroy (&zone);
    if (rc)
        sc_node_msg_init (self, 0);
    return rc;
}
