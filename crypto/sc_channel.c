/*  sc_channel: the encrypted client-broker session (docs/PROTOCOL.md 6).

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at https://mozilla.org/MPL/2.0/.
*/
#include <stdlib.h>
#include <string.h>

#include "sc_channel.h"

/* A session ends when a counter reaches this (SC_SEQ_LIMIT in sc_proto.h). */
#define S_SEQ_LIMIT (((uint64_t) 1) << 48)
#define S_AD_LEN    (SC_HASH_LEN + 1 + 1 + 8)

struct _sc_channel_t {
    sc_session_keys_t keys;
    sc_aead_t *seal;            /* k_send, set up once                     */
    sc_aead_t *open;            /* k_recv, set up once                     */
    uint64_t sent;              /* seq of the last envelope sealed         */
    uint64_t received;          /* seq of the last envelope accepted       */
    uint64_t limit;             /* no seq reaches this                     */
};

sc_channel_t *
sc_channel_new (const sc_session_keys_t *keys)
{
    sc_channel_t *self = calloc (1, sizeof *self);
    if (self) {
        self->keys = *keys;
        self->limit = S_SEQ_LIMIT;
        self->seal = sc_aead_new (keys->k_send);
        self->open = sc_aead_new (keys->k_recv);
        if (!self->seal || !self->open)
            sc_channel_destroy (&self);
    }
    return self;
}

void
sc_channel_destroy (sc_channel_t **self_p)
{
    if (self_p && *self_p) {
        sc_aead_destroy (&(*self_p)->seal);
        sc_aead_destroy (&(*self_p)->open);
        sc_wipe (*self_p, sizeof **self_p);
        free (*self_p);
        *self_p = NULL;
    }
}

/* ad = sid || u8 version || u8 opcode || u64 seq */
static void
s_ad (const sc_channel_t *self, uint8_t version, uint8_t opcode,
      uint64_t seq, uint8_t ad[static S_AD_LEN])
{
    memcpy (ad, self->keys.sid, SC_HASH_LEN);
    ad[SC_HASH_LEN] = version;
    ad[SC_HASH_LEN + 1] = opcode;
    for (int i = 0; i < 8; i++)
        ad[SC_HASH_LEN + 2 + i] = (uint8_t) (seq >> (56 - 8 * i));
}

int
sc_channel_seal (sc_channel_t *self, uint8_t version, uint8_t opcode,
                 const uint8_t *pt, size_t len, uint64_t *seq, uint8_t *out)
{
    if (self->sent + 1 >= self->limit)
        return SC_CHANNEL_ELIMIT;
    uint64_t next = self->sent + 1;
    uint8_t nonce[SC_NONCE_LEN], ad[S_AD_LEN];
    sc_aead_nonce (next, nonce);
    s_ad (self, version, opcode, next, ad);
    if (sc_aead_seal_with (self->seal, nonce, ad, sizeof ad, pt, len, out))
        return SC_CHANNEL_EINTERNAL;
    self->sent = next;
    *seq = next;
    return SC_CHANNEL_OK;
}

int
sc_channel_open (sc_channel_t *self, uint8_t version, uint8_t opcode,
                 uint64_t seq, const uint8_t *ct, size_t len, uint8_t *out)
{
    if (seq <= self->received)
        return SC_CHANNEL_EREPLAY;
    if (len < SC_TAG_LEN)
        return SC_CHANNEL_EAUTH;
    /* Authenticate first: what the counter says is acted on only for an
       envelope made with the key. */
    uint8_t nonce[SC_NONCE_LEN], ad[S_AD_LEN];
    sc_aead_nonce (seq, nonce);
    s_ad (self, version, opcode, seq, ad);
    if (sc_aead_open_with (self->open, nonce, ad, sizeof ad, ct, len, out))
        return SC_CHANNEL_EAUTH;
    int rc = seq >= self->limit ? SC_CHANNEL_ELIMIT
           : seq != self->received + 1 ? SC_CHANNEL_EGAP : SC_CHANNEL_OK;
    if (rc)
        sc_wipe (out, len - SC_TAG_LEN);
    else
        self->received = seq;
    return rc;
}

void
sc_channel_set_limit (sc_channel_t *self, uint64_t limit)
{
    self->limit = limit < S_SEQ_LIMIT ? limit : S_SEQ_LIMIT;
}

const uint8_t *
sc_channel_sid (const sc_channel_t *self)
{
    return self->keys.sid;
}

uint64_t
sc_channel_sent (const sc_channel_t *self)
{
    return self->sent;
}

uint64_t
sc_channel_received (const sc_channel_t *self)
{
    return self->received;
}
