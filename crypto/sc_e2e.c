/*  sc_e2e: end-to-end handshake and per-message key chains.
    docs/PROTOCOL.md section 7 is the specification.

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at https://mozilla.org/MPL/2.0/.
*/
#include <stdlib.h>
#include <string.h>

#include "sc_e2e.h"
#include "sc_msg.h"         /* sc_name_valid */

#define S_SUITE   1
#define S_VERSION 1
#define S_NAME_MAX 32

static const char s_label_th[] = "secchat/1 e2e";
static const char s_label_fin_r[] = "secchat/1 e2e finished responder";
static const char s_label_fin_i[] = "secchat/1 e2e finished initiator";
static const char s_label_sig_r[] = "secchat/1 e2e responder signature";
static const char s_label_sig_i[] = "secchat/1 e2e initiator signature";
static const char s_label_i2r[] = "secchat/1 e2e chain i2r";
static const char s_label_r2i[] = "secchat/1 e2e chain r2i";
static const char s_label_msg[] = "secchat/1 e2e msg";

typedef enum {
    S_START, S_STARTED, S_REPLIED, S_READY, S_FAILED
} s_state_t;

struct _sc_e2e_t {
    const sc_key_t *me;
    sc_key_t *peer;
    bool initiator;
    s_state_t state;
    char my_name[S_NAME_MAX + 1], peer_name[S_NAME_MAX + 1];
    uint8_t my_pub[SC_PUB_LEN], peer_pub[SC_PUB_LEN];
    uint8_t e_priv[SC_KEY_LEN];
    uint8_t nonce_i[SC_RANDOM_LEN], eph_i[SC_PUB_LEN];
    uint8_t prk[SC_HASH_LEN], k_fin_r[SC_KEY_LEN], k_fin_i[SC_KEY_LEN];
    uint8_t te2[SC_HASH_LEN];
    uint8_t sid[SC_HASH_LEN];
    uint8_t ck_send[SC_KEY_LEN], ck_recv[SC_KEY_LEN];
    uint64_t sent;              /* counter of the last message sealed     */
    uint64_t expected;          /* counter the next message should have   */
};

const char *
sc_e2e_strerror (int err)
{
    switch (err) {
        case SC_E2E_OK:        return "ok";
        case SC_E2E_ESTATE:    return "end-to-end step out of order";
        case SC_E2E_ESUITE:    return "unsupported cipher suite";
        case SC_E2E_EKEY:      return "invalid ephemeral key (low order)";
        case SC_E2E_ESIG:      return "peer signature does not verify";
        case SC_E2E_EMAC:      return "key confirmation failed";
        case SC_E2E_EREPLAY:   return "replayed or old message";
        case SC_E2E_ESKIP:     return "message counter too far ahead";
        case SC_E2E_EAUTH:     return "message does not authenticate";
        case SC_E2E_ELIMIT:    return "message counter exhausted";
        case SC_E2E_EINTERNAL: return "internal crypto error";
        default:               return "unknown end-to-end error";
    }
}

sc_e2e_t *
sc_e2e_new (const sc_key_t *me, const char *my_name,
            const uint8_t peer_key[static SC_PUB_LEN],
            const char *peer_name, bool initiator)
{
    if (!me || !sc_key_has_private (me)
        || !my_name || !sc_name_valid (my_name, strlen (my_name))
        || !peer_name || !sc_name_valid (peer_name, strlen (peer_name)))
        return NULL;
    sc_e2e_t *self = calloc (1, sizeof *self);
    if (!self)
        return NULL;
    self->me = me;
    self->initiator = initiator;
    self->expected = 1;
    strcpy (self->my_name, my_name);
    strcpy (self->peer_name, peer_name);
    memcpy (self->peer_pub, peer_key, SC_PUB_LEN);
    self->peer = sc_key_from_raw (peer_key);
    if (!self->peer || sc_key_public_raw (me, self->my_pub))
        sc_e2e_destroy (&self);
    return self;
}

void
sc_e2e_destroy (sc_e2e_t **self_p)
{
    if (self_p && *self_p) {
        sc_e2e_t *self = *self_p;
        sc_key_destroy (&self->peer);
        sc_wipe (self, sizeof *self);
        free (self);
        *self_p = NULL;
    }
}

bool
sc_e2e_initiator (const sc_e2e_t *self)
{
    return self->initiator;
}

bool
sc_e2e_ready (const sc_e2e_t *self)
{
    return self->state == S_READY;
}

static void
s_wipe_secrets (sc_e2e_t *self)
{
    sc_wipe (self->e_priv, sizeof self->e_priv);
    sc_wipe (self->prk, sizeof self->prk);
    sc_wipe (self->k_fin_r, sizeof self->k_fin_r);
    sc_wipe (self->k_fin_i, sizeof self->k_fin_i);
}

static int
s_fail (sc_e2e_t *self, int err)
{
    s_wipe_secrets (self);
    sc_wipe (self->ck_send, sizeof self->ck_send);
    sc_wipe (self->ck_recv, sizeof self->ck_recv);
    self->state = S_FAILED;
    return err;
}

/* ID(x) = u8 len || name || key */
static int
s_hash_id (sc_hash_t *h, const char *name, const uint8_t key[static SC_PUB_LEN])
{
    uint8_t len = (uint8_t) strlen (name);
    return sc_hash_update (h, &len, 1)
        || sc_hash_update (h, (const uint8_t *) name, len)
        || sc_hash_update (h, key, SC_PUB_LEN);
}

/* ss, TE1, prk and the finished keys, from both hellos. */
static int
s_schedule (sc_e2e_t *self, const uint8_t peer_eph[static SC_PUB_LEN],
            const uint8_t nonce_r[static SC_RANDOM_LEN],
            const uint8_t eph_r[static SC_PUB_LEN],
            uint8_t te1[static SC_HASH_LEN])
{
    uint8_t ss[SC_KEY_LEN];
    if (sc_x25519 (self->e_priv, peer_eph, ss))
        return SC_E2E_EKEY;
    const char *name_i = self->initiator ? self->my_name : self->peer_name;
    const char *name_r = self->initiator ? self->peer_name : self->my_name;
    const uint8_t *key_i = self->initiator ? self->my_pub : self->peer_pub;
    const uint8_t *key_r = self->initiator ? self->peer_pub : self->my_pub;
    const uint8_t hdr[] = { 0, S_VERSION, S_SUITE };
    sc_hash_t *h = sc_hash_new ();
    int rc = SC_E2E_EINTERNAL;
    if (h
        && !sc_hash_update (h, (const uint8_t *) s_label_th, strlen (s_label_th))
        && !sc_hash_update (h, hdr, sizeof hdr)
        && !s_hash_id (h, name_i, key_i)
        && !s_hash_id (h, name_r, key_r)
        && !sc_hash_update (h, self->nonce_i, SC_RANDOM_LEN)
        && !sc_hash_update (h, self->eph_i, SC_PUB_LEN)
        && !sc_hash_update (h, nonce_r, SC_RANDOM_LEN)
        && !sc_hash_update (h, eph_r, SC_PUB_LEN)
        && !sc_hash_peek (h, te1)
        && !sc_hkdf_extract (te1, SC_HASH_LEN, ss, sizeof ss, self->prk)
        && !sc_hkdf_expand_label (self->prk, s_label_fin_r, NULL, 0, self->k_fin_r)
        && !sc_hkdf_expand_label (self->prk, s_label_fin_i, NULL, 0, self->k_fin_i))
        rc = SC_E2E_OK;
    sc_hash_destroy (&h);
    sc_wipe (ss, sizeof ss);
    return rc;
}

/* From TE3: the session id and both chain keys; the rest is wiped. */
static int
s_chains (sc_e2e_t *self, const uint8_t te3[static SC_HASH_LEN])
{
    uint8_t i2r[SC_KEY_LEN], r2i[SC_KEY_LEN];
    int rc = SC_E2E_EINTERNAL;
    if (!sc_hkdf_expand_label (self->prk, s_label_i2r, te3, SC_HASH_LEN, i2r)
        && !sc_hkdf_expand_label (self->prk, s_label_r2i, te3, SC_HASH_LEN, r2i)) {
        memcpy (self->sid, te3, SC_HASH_LEN);
        memcpy (self->ck_send, self->initiator ? i2r : r2i, SC_KEY_LEN);
        memcpy (self->ck_recv, self->initiator ? r2i : i2r, SC_KEY_LEN);
        rc = SC_E2E_OK;
    }
    sc_wipe (i2r, sizeof i2r);
    sc_wipe (r2i, sizeof r2i);
    s_wipe_secrets (self);
    return rc;
}

int
sc_e2e_start (sc_e2e_t *self, uint8_t *suite,
              uint8_t nonce[static SC_RANDOM_LEN], uint8_t eph[static SC_PUB_LEN])
{
    if (!self->initiator || self->state != S_START)
        return s_fail (self, SC_E2E_ESTATE);
    if (sc_random (self->nonce_i, SC_RANDOM_LEN)
        || sc_x25519_keygen (self->e_priv, self->eph_i))
        return s_fail (self, SC_E2E_EINTERNAL);
    *suite = S_SUITE;
    memcpy (nonce, self->nonce_i, SC_RANDOM_LEN);
    memcpy (eph, self->eph_i, SC_PUB_LEN);
    self->state = S_STARTED;
    return SC_E2E_OK;
}

int
sc_e2e_reply (sc_e2e_t *self, uint8_t suite,
              const uint8_t nonce_i[static SC_RANDOM_LEN],
              const uint8_t eph_i[static SC_PUB_LEN],
              uint8_t nonce_r[static SC_RANDOM_LEN],
              uint8_t eph_r[static SC_PUB_LEN],
              uint8_t sig_r[static SC_SIG_LEN],
              uint8_t mac_r[static SC_HASH_LEN])
{
    if (self->initiator || self->state != S_START)
        return s_fail (self, SC_E2E_ESTATE);
    if (suite != S_SUITE)
        return s_fail (self, SC_E2E_ESUITE);
    memcpy (self->nonce_i, nonce_i, SC_RANDOM_LEN);
    memcpy (self->eph_i, eph_i, SC_PUB_LEN);
    if (sc_random (nonce_r, SC_RANDOM_LEN) || sc_x25519_keygen (self->e_priv, eph_r))
        return s_fail (self, SC_E2E_EINTERNAL);
    uint8_t te1[SC_HASH_LEN];
    int rc = s_schedule (self, eph_i, nonce_r, eph_r, te1);
    if (rc)
        return s_fail (self, rc);
    sc_wipe (self->e_priv, sizeof self->e_priv);
    if (sc_key_sign_labelled (self->me, s_label_sig_r, te1, SC_HASH_LEN, sig_r)
        || sc_hash_chain (te1, sig_r, SC_SIG_LEN, NULL, 0, NULL, 0, self->te2)
        || sc_hmac (self->k_fin_r, self->te2, SC_HASH_LEN, mac_r))
        return s_fail (self, SC_E2E_EINTERNAL);
    self->state = S_REPLIED;
    return SC_E2E_OK;
}

int
sc_e2e_finish (sc_e2e_t *self,
               const uint8_t nonce_r[static SC_RANDOM_LEN],
               const uint8_t eph_r[static SC_PUB_LEN],
               const uint8_t sig_r[static SC_SIG_LEN],
               const uint8_t mac_r[static SC_HASH_LEN],
               uint8_t sig_i[static SC_SIG_LEN],
               uint8_t mac_i[static SC_HASH_LEN])
{
    if (!self->initiator || self->state != S_STARTED)
        return s_fail (self, SC_E2E_ESTATE);
    uint8_t te1[SC_HASH_LEN], te3[SC_HASH_LEN];
    int rc = s_schedule (self, eph_r, nonce_r, eph_r, te1);
    if (rc)
        return s_fail (self, rc);
    if (sc_key_verify_labelled (self->peer, s_label_sig_r, te1, SC_HASH_LEN, sig_r))
        return s_fail (self, SC_E2E_ESIG);
    if (sc_hash_chain (te1, sig_r, SC_SIG_LEN, NULL, 0, NULL, 0, self->te2))
        return s_fail (self, SC_E2E_EINTERNAL);
    if (sc_hmac_verify (self->k_fin_r, self->te2, SC_HASH_LEN, mac_r))
        return s_fail (self, SC_E2E_EMAC);
    if (sc_key_sign_labelled (self->me, s_label_sig_i, self->te2, SC_HASH_LEN, sig_i)
        || sc_hash_chain (self->te2, sig_i, SC_SIG_LEN, NULL, 0, NULL, 0, te3)
        || sc_hmac (self->k_fin_i, te3, SC_HASH_LEN, mac_i))
        return s_fail (self, SC_E2E_EINTERNAL);
    if ((rc = s_chains (self, te3)))
        return s_fail (self, rc);
    self->state = S_READY;
    return SC_E2E_OK;
}

int
sc_e2e_confirm (sc_e2e_t *self, const uint8_t sig_i[static SC_SIG_LEN],
                const uint8_t mac_i[static SC_HASH_LEN])
{
    if (self->initiator || self->state != S_REPLIED)
        return s_fail (self, SC_E2E_ESTATE);
    uint8_t te3[SC_HASH_LEN];
    if (sc_key_verify_labelled (self->peer, s_label_sig_i, self->te2, SC_HASH_LEN, sig_i))
        return s_fail (self, SC_E2E_ESIG);
    if (sc_hash_chain (self->te2, sig_i, SC_SIG_LEN, NULL, 0, NULL, 0, te3))
        return s_fail (self, SC_E2E_EINTERNAL);
    if (sc_hmac_verify (self->k_fin_i, te3, SC_HASH_LEN, mac_i))
        return s_fail (self, SC_E2E_EMAC);
    int rc = s_chains (self, te3);
    if (rc)
        return s_fail (self, rc);
    self->state = S_READY;
    return SC_E2E_OK;
}

/* mk = HMAC(ck, 0x01); ck' = HMAC(ck, 0x02), in place. */
static int
s_step (uint8_t ck[static SC_KEY_LEN], uint8_t *mk)
{
    static const uint8_t one = 0x01, two = 0x02;
    uint8_t next[SC_KEY_LEN];
    int rc = (mk ? sc_hmac (ck, &one, 1, mk) : 0) || sc_hmac (ck, &two, 1, next);
    if (!rc)
        memcpy (ck, next, SC_KEY_LEN);
    sc_wipe (next, sizeof next);
    return rc ? -1 : 0;
}

/* ad = label || sid || u8 dir || u64 n; nonce = 0^4 || u64 n */
#define S_MSG_AD_LEN (sizeof s_label_msg - 1 + SC_HASH_LEN + 1 + 8)
static void
s_msg_ad (const sc_e2e_t *self, bool from_initiator, uint64_t n,
          uint8_t ad[static S_MSG_AD_LEN])
{
    size_t ll = sizeof s_label_msg - 1;
    memcpy (ad, s_label_msg, ll);
    memcpy (ad + ll, self->sid, SC_HASH_LEN);
    ad[ll + SC_HASH_LEN] = from_initiator ? 0 : 1;
    for (int i = 0; i < 8; i++)
        ad[ll + SC_HASH_LEN + 1 + i] = (uint8_t) (n >> (56 - 8 * i));
}

int
sc_e2e_seal (sc_e2e_t *self, const uint8_t *pt, size_t len,
             uint64_t *counter, uint8_t *box)
{
    if (self->state != S_READY)
        return SC_E2E_ESTATE;
    if (self->sent + 1 >= SC_E2E_LIMIT)
        return SC_E2E_ELIMIT;
    uint64_t n = self->sent + 1;
    uint8_t mk[SC_KEY_LEN], nonce[SC_NONCE_LEN], ad[S_MSG_AD_LEN];
    if (s_step (self->ck_send, mk))
        return SC_E2E_EINTERNAL;
    sc_aead_nonce (n, nonce);
    s_msg_ad (self, self->initiator, n, ad);
    int rc = sc_aead_seal (mk, nonce, ad, sizeof ad, pt, len, box);
    sc_wipe (mk, sizeof mk);
    /* The chain has moved on either way: never reuse counter n. */
    self->sent = n;
    if (rc)
        return SC_E2E_EINTERNAL;
    *counter = n;
    return SC_E2E_OK;
}

int
sc_e2e_open (sc_e2e_t *self, uint64_t counter, const uint8_t *box,
             size_t len, uint8_t *out, uint64_t *lost)
{
    if (self->state != S_READY)
        return SC_E2E_ESTATE;
    if (counter < self->expected)
        return SC_E2E_EREPLAY;
    if (counter >= SC_E2E_LIMIT)
        return SC_E2E_ELIMIT;
    if (counter - self->expected > SC_E2E_SKIP)
        return SC_E2E_ESKIP;
    if (len < SC_TAG_LEN)
        return SC_E2E_EAUTH;
    /* Walk a copy of the chain to `counter`; commit only if the box opens. */
    uint8_t ck[SC_KEY_LEN], mk[SC_KEY_LEN];
    memcpy (ck, self->ck_recv, SC_KEY_LEN);
    int rc = SC_E2E_OK;
    for (uint64_t n = self->expected; n < counter && rc == SC_E2E_OK; n++)
        if (s_step (ck, NULL))
            rc = SC_E2E_EINTERNAL;
    if (rc == SC_E2E_OK && s_step (ck, mk))
        rc = SC_E2E_EINTERNAL;
    if (rc == SC_E2E_OK) {
        uint8_t nonce[SC_NONCE_LEN], ad[S_MSG_AD_LEN];
        sc_aead_nonce (counter, nonce);
        s_msg_ad (self, !self->initiator, counter, ad);
        if (sc_aead_open (mk, nonce, ad, sizeof ad, box, len, out))
            rc = SC_E2E_EAUTH;
    }
    if (rc == SC_E2E_OK) {
        *lost = counter - self->expected;
        memcpy (self->ck_recv, ck, SC_KEY_LEN);
        self->expected = counter + 1;
    }
    sc_wipe (ck, sizeof ck);
    sc_wipe (mk, sizeof mk);
    return rc;
}

uint64_t
sc_e2e_sent (const sc_e2e_t *self)
{
    return self->sent;
}

uint64_t
sc_e2e_expected (const sc_e2e_t *self)
{
    return self->expected;
}

int
sc_e2e_skip_ahead (sc_e2e_t *self, uint64_t sent, uint64_t expected)
{
    if (self->state != S_READY || sent < self->sent || expected < self->expected
        || sent >= SC_E2E_LIMIT || expected > SC_E2E_LIMIT)
        return -1;
    self->sent = sent;
    self->expected = expected;
    return 0;
}

int
sc_e2e_safety (const sc_e2e_t *self, char out[static SC_SAFETY_LEN + 1])
{
    return sc_safety_number (self->my_name, self->my_pub, self->peer_name,
                             self->peer_pub, out);
}

const uint8_t *
sc_e2e_peer_key (const sc_e2e_t *self)
{
    return self->peer_pub;
}
