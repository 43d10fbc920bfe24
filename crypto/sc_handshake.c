/*  sc_handshake: the client-broker login handshake, SIGMA-I with key
    confirmation both ways. docs/PROTOCOL.md section 5 is the
    specification; the labels below are part of it.

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at https://mozilla.org/MPL/2.0/.
*/
#include <stdlib.h>
#include <string.h>

#include "sc_handshake.h"
#include "sc_msg.h"         /* sc_name_valid: one rule for names */

#define S_SUITE   1
#define S_VERSION 1

/* Labels: distinct per purpose and per role, and distinct from the E2E
   handshake's, so nothing made for one use is accepted for another. */
static const char s_label_th[] = "secchat/1 client-broker";
static const char s_label_box[] = "secchat/1 cb box c2b";
static const char s_label_fin_b[] = "secchat/1 cb finished broker";
static const char s_label_fin_c[] = "secchat/1 cb finished client";
static const char s_label_sig_b[] = "secchat/1 cb broker signature";
static const char s_label_sig_c[] = "secchat/1 cb client signature";
static const char s_label_c2b[] = "secchat/1 cb session c2b";
static const char s_label_b2c[] = "secchat/1 cb session b2c";
static const char s_label_enrol_box[] = "secchat/1 cb enrol box c2b";
static const char s_label_enrol_sig[] = "secchat/1 cb enrol signature";
static const char s_label_code[] = "secchat/1 enrol code";
static const char s_base32[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

typedef enum {
    S_START,            /* nothing done yet                                */
    S_HELLO_SENT,       /* client: waiting for AUTH_BROKER                 */
    S_HELLO_ANSWERED,   /* broker: waiting for AUTH_CLIENT                 */
    S_OPENED,           /* broker: box opened, name known, not proven      */
    S_DONE,             /* keys ready to hand over                         */
    S_SPENT,            /* keys handed over, secrets wiped                 */
    S_FAILED
} s_state_t;

struct _sc_handshake_t {
    bool broker;
    s_state_t state;
    const sc_key_t *identity;          /* borrowed                         */
    /* client side */
    const sc_ca_t *ca;                 /* borrowed                         */
    char broker_name[256];
    sc_key_t *broker_key;              /* from the certificate             */
    /* broker side */
    const uint8_t *cert;               /* borrowed                         */
    size_t cert_len;
    /* both */
    char name[SC_HS_NAME_MAX + 1];     /* the client's name                */
    uint8_t e_priv[SC_KEY_LEN];        /* own ephemeral private key        */
    uint8_t nonce_c[SC_RANDOM_LEN], eph_c[SC_PUB_LEN];
    uint8_t prk[SC_HASH_LEN];
    uint8_t k_box[SC_KEY_LEN], k_fin_b[SC_KEY_LEN], k_fin_c[SC_KEY_LEN];
    uint8_t th2[SC_HASH_LEN];
    uint8_t sig_c[SC_SIG_LEN], mac_c[SC_HASH_LEN];
    /* enrolment: the new public key and the code in the ENROL box */
    bool enrol;
    uint8_t enrol_pub[SC_PUB_LEN];
    uint8_t code[SC_HS_CODE_LEN];
    sc_session_keys_t keys;
};

const char *
sc_hs_strerror (int err)
{
    switch (err) {
        case SC_HS_OK:        return "ok";
        case SC_HS_ESTATE:    return "handshake step out of order";
        case SC_HS_ESUITE:    return "unsupported cipher suite";
        case SC_HS_EKEY:      return "invalid ephemeral key (low order)";
        case SC_HS_ECERT:     return "broker certificate rejected";
        case SC_HS_ESIG:      return "signature does not verify";
        case SC_HS_EMAC:      return "key confirmation failed";
        case SC_HS_EBOX:      return "login box does not open";
        case SC_HS_EINTERNAL: return "internal crypto error";
        default:              return "unknown handshake error";
    }
}

static sc_handshake_t *
s_new (const sc_key_t *identity, bool broker)
{
    if (!identity || !sc_key_has_private (identity))
        return NULL;
    sc_handshake_t *self = calloc (1, sizeof *self);
    if (self) {
        self->identity = identity;
        self->broker = broker;
    }
    return self;
}

sc_handshake_t *
sc_handshake_new_client (const sc_key_t *identity, const char *name,
                         const sc_ca_t *ca, const char *broker_name)
{
    if (!name || !sc_name_valid (name, strlen (name)) || !ca || !broker_name
        || strlen (broker_name) >= sizeof ((sc_handshake_t *) 0)->broker_name)
        return NULL;
    sc_handshake_t *self = s_new (identity, false);
    if (self) {
        self->ca = ca;
        strcpy (self->broker_name, broker_name);
        strcpy (self->name, name);
    }
    return self;
}

sc_handshake_t *
sc_handshake_new_broker (const sc_key_t *identity, const uint8_t *cert,
                         size_t cert_len)
{
    if (!cert || cert_len == 0 || cert_len > UINT32_MAX)
        return NULL;
    sc_handshake_t *self = s_new (identity, true);
    if (self) {
        self->cert = cert;
        self->cert_len = cert_len;
    }
    return self;
}

void
sc_handshake_destroy (sc_handshake_t **self_p)
{
    if (self_p && *self_p) {
        sc_handshake_t *self = *self_p;
        sc_key_destroy (&self->broker_key);
        sc_wipe (self, sizeof *self);
        free (self);
        *self_p = NULL;
    }
}

/* Wipe every secret the handshake holds (not the handed-over keys). */
static void
s_wipe_secrets (sc_handshake_t *self)
{
    sc_wipe (self->e_priv, sizeof self->e_priv);
    sc_wipe (self->prk, sizeof self->prk);
    sc_wipe (self->k_box, sizeof self->k_box);
    sc_wipe (self->k_fin_b, sizeof self->k_fin_b);
    sc_wipe (self->k_fin_c, sizeof self->k_fin_c);
    sc_wipe (self->code, sizeof self->code);
}

/* A check's result as the handshake's: -1 (the input is bad) is err,
   SC_CRYPTO_FAILED (nothing could be checked) is ours, EINTERNAL. */
static int
s_check (int rc, int err)
{
    return rc == 0 ? SC_HS_OK : rc == -1 ? err : SC_HS_EINTERNAL;
}

static int
s_fail (sc_handshake_t *self, int err)
{
    s_wipe_secrets (self);
    sc_wipe (&self->keys, sizeof self->keys);
    /* a failed login proved nothing about the broker (a misuse after
       success does not undo what the login proved) */
    if (self->state != S_DONE && self->state != S_SPENT)
        sc_key_destroy (&self->broker_key);
    self->state = S_FAILED;
    return err;
}

/* From the shared secret and both hellos: TH1, prk, the handshake keys,
   and TH2 = H(TH1 || sig_b). sig_b is made (broker) or checked (client)
   by the caller; this computes everything both sides share. */
static int
s_schedule (sc_handshake_t *self, const uint8_t peer_eph[static SC_PUB_LEN],
            const uint8_t nonce_b[static SC_RANDOM_LEN],
            const uint8_t eph_b[static SC_PUB_LEN],
            const uint8_t *cert, size_t cert_len,
            uint8_t th1[static SC_HASH_LEN])
{
    uint8_t ss[SC_KEY_LEN];
    int rc = s_check (sc_x25519 (self->e_priv, peer_eph, ss), SC_HS_EKEY);
    if (rc)
        return rc;
    rc = SC_HS_EINTERNAL;
    sc_hash_t *h = sc_hash_new ();
    const uint8_t hdr[] = { 0, S_VERSION, S_SUITE };
    const uint8_t clen[4] = { (uint8_t) (cert_len >> 24), (uint8_t) (cert_len >> 16),
                              (uint8_t) (cert_len >> 8), (uint8_t) cert_len };
    if (h
        && !sc_hash_update (h, (const uint8_t *) s_label_th, strlen (s_label_th))
        && !sc_hash_update (h, hdr, sizeof hdr)
        && !sc_hash_update (h, self->nonce_c, SC_RANDOM_LEN)
        && !sc_hash_update (h, self->eph_c, SC_PUB_LEN)
        && !sc_hash_update (h, nonce_b, SC_RANDOM_LEN)
        && !sc_hash_update (h, eph_b, SC_PUB_LEN)
        && !sc_hash_update (h, clen, sizeof clen)
        && !sc_hash_update (h, cert, cert_len)
        && !sc_hash_peek (h, th1)
        && !sc_hkdf_extract (th1, SC_HASH_LEN, ss, sizeof ss, self->prk)
        && !sc_hkdf_expand_label (self->prk, s_label_box, NULL, 0, self->k_box)
        && !sc_hkdf_expand_label (self->prk, s_label_fin_b, NULL, 0, self->k_fin_b)
        && !sc_hkdf_expand_label (self->prk, s_label_fin_c, NULL, 0, self->k_fin_c))
        rc = SC_HS_OK;
    sc_hash_destroy (&h);
    sc_wipe (ss, sizeof ss);
    return rc;
}

/* TH3, and the session keys in this side's send/recv order. */
static int
s_finish (sc_handshake_t *self)
{
    uint8_t len = (uint8_t) strlen (self->name);
    uint8_t th3[SC_HASH_LEN], c2b[SC_KEY_LEN], b2c[SC_KEY_LEN];
    if (sc_hash_chain (self->th2, &len, 1, (const uint8_t *) self->name, len,
                 self->sig_c, SC_SIG_LEN, th3))
        return SC_HS_EINTERNAL;
    int rc = SC_HS_EINTERNAL;
    if (!sc_hkdf_expand_label (self->prk, s_label_c2b, th3, sizeof th3, c2b)
        && !sc_hkdf_expand_label (self->prk, s_label_b2c, th3, sizeof th3, b2c)) {
        memcpy (self->keys.sid, th3, SC_HASH_LEN);
        memcpy (self->keys.k_send, self->broker ? b2c : c2b, SC_KEY_LEN);
        memcpy (self->keys.k_recv, self->broker ? c2b : b2c, SC_KEY_LEN);
        rc = SC_HS_OK;
    }
    /* mac_c is over TH3: the client makes it, the broker checks it. */
    if (rc == SC_HS_OK && !self->broker
        && sc_hmac (self->k_fin_c, th3, sizeof th3, self->mac_c))
        rc = SC_HS_EINTERNAL;
    if (rc == SC_HS_OK && self->broker)
        rc = s_check (sc_hmac_verify (self->k_fin_c, th3, sizeof th3, self->mac_c),
                      SC_HS_EMAC);
    sc_wipe (c2b, sizeof c2b);
    sc_wipe (b2c, sizeof b2c);
    return rc;
}

/* What the client signs: TH2 || u8 len || name, and for an enrolment
   the new public key after it (so the box cannot carry another key). */
static size_t
s_signed_part (const sc_handshake_t *self, uint8_t out[static SC_HASH_LEN + 1 + SC_HS_NAME_MAX + SC_PUB_LEN])
{
    uint8_t len = (uint8_t) strlen (self->name);
    memcpy (out, self->th2, SC_HASH_LEN);
    out[SC_HASH_LEN] = len;
    memcpy (out + SC_HASH_LEN + 1, self->name, len);
    size_t n = SC_HASH_LEN + 1 + len;
    if (self->enrol) {
        memcpy (out + n, self->enrol_pub, SC_PUB_LEN);
        n += SC_PUB_LEN;
    }
    return n;
}

int
sc_handshake_client_hello (sc_handshake_t *self, uint8_t *suite,
                           uint8_t nonce[static SC_RANDOM_LEN],
                           uint8_t eph[static SC_PUB_LEN])
{
    if (self->broker || self->state != S_START)
        return s_fail (self, SC_HS_ESTATE);
    if (sc_random (self->nonce_c, SC_RANDOM_LEN)
        || sc_x25519_keygen (self->e_priv, self->eph_c))
        return s_fail (self, SC_HS_EINTERNAL);
    *suite = S_SUITE;
    memcpy (nonce, self->nonce_c, SC_RANDOM_LEN);
    memcpy (eph, self->eph_c, SC_PUB_LEN);
    self->state = S_HELLO_SENT;
    return SC_HS_OK;
}

int
sc_handshake_client_auth (sc_handshake_t *self,
                          const uint8_t nonce_b[static SC_RANDOM_LEN],
                          const uint8_t eph_b[static SC_PUB_LEN],
                          const uint8_t *cert, size_t cert_len,
                          const uint8_t sig[static SC_SIG_LEN],
                          const uint8_t mac[static SC_HASH_LEN],
                          uint8_t *box, size_t *box_len, int *cert_err)
{
    if (self->broker || self->state != S_HELLO_SENT)
        return s_fail (self, SC_HS_ESTATE);
    int err = 0;
    self->broker_key = sc_cert_verify (self->ca, cert, cert_len,
                                       self->broker_name, &err);
    if (cert_err)
        *cert_err = err;
    if (!self->broker_key)
        return s_fail (self, SC_HS_ECERT);
    uint8_t th1[SC_HASH_LEN];
    int rc = s_schedule (self, eph_b, nonce_b, eph_b, cert, cert_len, th1);
    if (rc)
        return s_fail (self, rc);
    rc = s_check (sc_key_verify_labelled (self->broker_key, s_label_sig_b, th1, sizeof th1,
                                          sig), SC_HS_ESIG);
    if (rc)
        return s_fail (self, rc);
    if (sc_hash_chain (th1, sig, SC_SIG_LEN, NULL, 0, NULL, 0, self->th2))
        return s_fail (self, SC_HS_EINTERNAL);
    rc = s_check (sc_hmac_verify (self->k_fin_b, self->th2, SC_HASH_LEN, mac), SC_HS_EMAC);
    if (rc)
        return s_fail (self, rc);

    /* sig_c over label || 0 || TH2 || u8 len || name (|| new key) */
    uint8_t signed_part[SC_HASH_LEN + 1 + SC_HS_NAME_MAX + SC_PUB_LEN];
    size_t signed_len = s_signed_part (self, signed_part);
    if (sc_key_sign_labelled (self->identity, self->enrol ? s_label_enrol_sig : s_label_sig_c,
                              signed_part, signed_len, self->sig_c))
        return s_fail (self, SC_HS_EINTERNAL);
    if ((rc = s_finish (self)))
        return s_fail (self, rc);

    /* the name padded with zeros to its maximum: the box's size does not
       tell the name's length */
    uint8_t len = (uint8_t) strlen (self->name);
    uint8_t pt[SC_HS_ENROL_BOX_LEN - SC_TAG_LEN] = { 0 };
    size_t pt_len = 1 + SC_HS_NAME_MAX;
    pt[0] = len;
    memcpy (pt + 1, self->name, len);
    uint8_t enrol_key[SC_KEY_LEN];
    const uint8_t *box_key = self->k_box;
    if (self->enrol) {
        memcpy (pt + pt_len, self->enrol_pub, SC_PUB_LEN);
        pt_len += SC_PUB_LEN;
        memcpy (pt + pt_len, self->code, SC_HS_CODE_LEN);
        pt_len += SC_HS_CODE_LEN;
        if (sc_hkdf_expand_label (self->prk, s_label_enrol_box, NULL, 0, enrol_key)) {
            sc_wipe (pt, sizeof pt);
            return s_fail (self, SC_HS_EINTERNAL);
        }
        box_key = enrol_key;
    }
    memcpy (pt + pt_len, self->sig_c, SC_SIG_LEN);
    pt_len += SC_SIG_LEN;
    memcpy (pt + pt_len, self->mac_c, SC_HASH_LEN);
    pt_len += SC_HASH_LEN;
    uint8_t nonce[SC_NONCE_LEN] = { 0 };
    rc = sc_aead_seal (box_key, nonce, self->th2, SC_HASH_LEN, pt, pt_len, box);
    sc_wipe (pt, sizeof pt);
    sc_wipe (enrol_key, sizeof enrol_key);
    if (rc)
        return s_fail (self, SC_HS_EINTERNAL);
    *box_len = pt_len + SC_TAG_LEN;
    s_wipe_secrets (self);
    self->state = S_DONE;
    return SC_HS_OK;
}

int
sc_handshake_broker_hello (sc_handshake_t *self, uint8_t suite,
                           const uint8_t nonce_c[static SC_RANDOM_LEN],
                           const uint8_t eph_c[static SC_PUB_LEN],
                           uint8_t nonce_b[static SC_RANDOM_LEN],
                           uint8_t eph_b[static SC_PUB_LEN],
                           uint8_t sig[static SC_SIG_LEN],
                           uint8_t mac[static SC_HASH_LEN])
{
    if (!self->broker || self->state != S_START)
        return s_fail (self, SC_HS_ESTATE);
    if (suite != S_SUITE)
        return s_fail (self, SC_HS_ESUITE);
    memcpy (self->nonce_c, nonce_c, SC_RANDOM_LEN);
    memcpy (self->eph_c, eph_c, SC_PUB_LEN);
    if (sc_random (nonce_b, SC_RANDOM_LEN)
        || sc_x25519_keygen (self->e_priv, eph_b))
        return s_fail (self, SC_HS_EINTERNAL);
    uint8_t th1[SC_HASH_LEN];
    int rc = s_schedule (self, eph_c, nonce_b, eph_b, self->cert, self->cert_len, th1);
    if (rc)
        return s_fail (self, rc);
    sc_wipe (self->e_priv, sizeof self->e_priv);
    if (sc_key_sign_labelled (self->identity, s_label_sig_b, th1, sizeof th1, sig)
        || sc_hash_chain (th1, sig, SC_SIG_LEN, NULL, 0, NULL, 0, self->th2)
        || sc_hmac (self->k_fin_b, self->th2, SC_HASH_LEN, mac))
        return s_fail (self, SC_HS_EINTERNAL);
    self->state = S_HELLO_ANSWERED;
    return SC_HS_OK;
}

int
sc_handshake_broker_open (sc_handshake_t *self, const uint8_t *box,
                          size_t box_len, char name[static SC_HS_NAME_MAX + 1])
{
    if (!self->broker || self->state != S_HELLO_ANSWERED)
        return s_fail (self, SC_HS_ESTATE);
    if (box_len != SC_HS_BOX_MAX)
        return s_fail (self, SC_HS_EBOX);
    uint8_t pt[SC_HS_BOX_MAX - SC_TAG_LEN];
    uint8_t nonce[SC_NONCE_LEN] = { 0 };
    int rc = s_check (sc_aead_open (self->k_box, nonce, self->th2, SC_HASH_LEN, box, box_len,
                                    pt), SC_HS_EBOX);
    if (rc)
        return s_fail (self, rc);
    size_t len = pt[0];
    static const uint8_t zeros[SC_HS_NAME_MAX] = { 0 };
    rc = SC_HS_EBOX;
    if (len >= 1 && len <= SC_HS_NAME_MAX
        && sc_name_valid ((const char *) pt + 1, len)
        && memcmp (pt + 1 + len, zeros, SC_HS_NAME_MAX - len) == 0) {
        memcpy (self->name, pt + 1, len);
        self->name[len] = 0;
        memcpy (self->sig_c, pt + 1 + SC_HS_NAME_MAX, SC_SIG_LEN);
        memcpy (self->mac_c, pt + 1 + SC_HS_NAME_MAX + SC_SIG_LEN, SC_HASH_LEN);
        memcpy (name, self->name, len + 1);
        rc = SC_HS_OK;
    }
    sc_wipe (pt, sizeof pt);
    if (rc)
        return s_fail (self, rc);
    self->state = S_OPENED;
    return SC_HS_OK;
}

int
sc_handshake_broker_verify (sc_handshake_t *self, const sc_key_t *client_key)
{
    if (!self->broker || self->state != S_OPENED || !client_key)
        return s_fail (self, SC_HS_ESTATE);
    /* an enrolment is checked with the key its box carries, no other */
    uint8_t pub[SC_PUB_LEN];
    if (self->enrol && sc_key_public_raw (client_key, pub))
        return s_fail (self, SC_HS_EINTERNAL);
    if (self->enrol && !sc_equal (pub, self->enrol_pub, SC_PUB_LEN))
        return s_fail (self, SC_HS_ESIG);
    uint8_t signed_part[SC_HASH_LEN + 1 + SC_HS_NAME_MAX + SC_PUB_LEN];
    size_t signed_len = s_signed_part (self, signed_part);
    int rc = s_check (sc_key_verify_labelled (client_key,
                                              self->enrol ? s_label_enrol_sig : s_label_sig_c,
                                              signed_part, signed_len, self->sig_c),
                      SC_HS_ESIG);
    if (rc == SC_HS_OK)
        rc = s_finish (self);
    if (rc)
        return s_fail (self, rc);
    s_wipe_secrets (self);
    self->state = S_DONE;
    return SC_HS_OK;
}

int
sc_handshake_client_enrol (sc_handshake_t *self, const uint8_t code[static SC_HS_CODE_LEN])
{
    if (self->broker || self->state != S_HELLO_SENT || self->enrol)
        return s_fail (self, SC_HS_ESTATE);
    if (sc_key_public_raw (self->identity, self->enrol_pub))
        return s_fail (self, SC_HS_EINTERNAL);
    memcpy (self->code, code, SC_HS_CODE_LEN);
    self->enrol = true;
    return SC_HS_OK;
}

int
sc_handshake_broker_open_enrol (sc_handshake_t *self, const uint8_t *box, size_t box_len,
                                char name[static SC_HS_NAME_MAX + 1],
                                uint8_t pub[static SC_PUB_LEN],
                                uint8_t code[static SC_HS_CODE_LEN])
{
    if (!self->broker || self->state != S_HELLO_ANSWERED)
        return s_fail (self, SC_HS_ESTATE);
    if (box_len != SC_HS_ENROL_BOX_LEN)
        return s_fail (self, SC_HS_EBOX);
    uint8_t pt[SC_HS_ENROL_BOX_LEN - SC_TAG_LEN];
    uint8_t key[SC_KEY_LEN];
    uint8_t nonce[SC_NONCE_LEN] = { 0 };
    if (sc_hkdf_expand_label (self->prk, s_label_enrol_box, NULL, 0, key))
        return s_fail (self, SC_HS_EINTERNAL);
    int rc = s_check (sc_aead_open (key, nonce, self->th2, SC_HASH_LEN, box, box_len, pt),
                      SC_HS_EBOX);
    sc_wipe (key, sizeof key);
    if (rc)
        return s_fail (self, rc);
    size_t len = pt[0];
    static const uint8_t zeros[SC_HS_NAME_MAX] = { 0 };
    rc = SC_HS_EBOX;
    if (len >= 1 && len <= SC_HS_NAME_MAX
        && sc_name_valid ((const char *) pt + 1, len)
        && memcmp (pt + 1 + len, zeros, SC_HS_NAME_MAX - len) == 0) {
        size_t at = 1 + SC_HS_NAME_MAX;
        memcpy (self->name, pt + 1, len);
        self->name[len] = 0;
        memcpy (self->enrol_pub, pt + at, SC_PUB_LEN);
        at += SC_PUB_LEN;
        memcpy (code, pt + at, SC_HS_CODE_LEN);
        at += SC_HS_CODE_LEN;
        memcpy (self->sig_c, pt + at, SC_SIG_LEN);
        at += SC_SIG_LEN;
        memcpy (self->mac_c, pt + at, SC_HASH_LEN);
        memcpy (name, self->name, len + 1);
        memcpy (pub, self->enrol_pub, SC_PUB_LEN);
        self->enrol = true;
        rc = SC_HS_OK;
    }
    sc_wipe (pt, sizeof pt);
    if (rc)
        return s_fail (self, rc);
    self->state = S_OPENED;
    return SC_HS_OK;
}

int
sc_enrol_code_new (uint8_t code[static SC_HS_CODE_LEN])
{
    static const uint8_t zeros[SC_HS_CODE_LEN] = { 0 };
    do {
        if (sc_random (code, SC_HS_CODE_LEN))
            return -1;
    } while (memcmp (code, zeros, SC_HS_CODE_LEN) == 0);
    return 0;
}

/* 160 bits are exactly 32 base32 letters of 5 bits, read big-endian. */
void
sc_enrol_code_format (const uint8_t code[static SC_HS_CODE_LEN],
                      char text[static SC_HS_CODE_TEXT_LEN + 1])
{
    size_t n = 0;
    for (size_t i = 0; i < 32; i++) {
        size_t bit = i * 5;
        unsigned v = (unsigned) code[bit / 8] << 8;
        if (bit / 8 + 1 < SC_HS_CODE_LEN)
            v |= code[bit / 8 + 1];
        v = (v >> (11 - bit % 8)) & 31;
        if (i > 0 && i % 4 == 0)
            text[n++] = '-';
        text[n++] = s_base32[v];
    }
    text[n] = 0;
}

int
sc_enrol_code_parse (const char *text, uint8_t code[static SC_HS_CODE_LEN])
{
    memset (code, 0, SC_HS_CODE_LEN);
    size_t count = 0;
    for (const char *p = text; *p; p++) {
        if (*p == '-' || *p == ' ')
            continue;
        int c = *p >= 'a' && *p <= 'z' ? *p - 'a' + 'A' : *p;
        const char *at = c ? strchr (s_base32, c) : NULL;
        if (!at || count == 32) {
            memset (code, 0, SC_HS_CODE_LEN);
            return -1;
        }
        unsigned v = (unsigned) (at - s_base32);
        size_t bit = count * 5;
        /* 5 bits at bit offset `bit`, spanning at most two bytes */
        unsigned shifted = v << (11 - bit % 8);
        code[bit / 8] |= (uint8_t) (shifted >> 8);
        if (bit / 8 + 1 < SC_HS_CODE_LEN)
            code[bit / 8 + 1] |= (uint8_t) shifted;
        count++;
    }
    static const uint8_t zeros[SC_HS_CODE_LEN] = { 0 };
    if (count != 32 || memcmp (code, zeros, SC_HS_CODE_LEN) == 0) {
        memset (code, 0, SC_HS_CODE_LEN);
        return -1;
    }
    return 0;
}

int
sc_enrol_code_hash (const uint8_t code[static SC_HS_CODE_LEN], uint8_t hash[static SC_HASH_LEN])
{
    uint8_t data[sizeof s_label_code + SC_HS_CODE_LEN];    /* label, 0x00, code */
    memcpy (data, s_label_code, sizeof s_label_code);
    memcpy (data + sizeof s_label_code, code, SC_HS_CODE_LEN);
    int rc = sc_sha256 (data, sizeof data, hash);
    sc_wipe (data, sizeof data);
    return rc;
}

int
sc_handshake_keys (sc_handshake_t *self, sc_session_keys_t *keys)
{
    if (self->state != S_DONE)
        return s_fail (self, SC_HS_ESTATE);
    *keys = self->keys;
    sc_wipe (&self->keys, sizeof self->keys);
    self->state = S_SPENT;
    return SC_HS_OK;
}

const sc_key_t *
sc_handshake_broker_key (const sc_handshake_t *self)
{
    return self->broker_key;
}
