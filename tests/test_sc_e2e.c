/*  test_sc_e2e: the end-to-end layer, against docs/PROTOCOL.md section 7
    and crypto/sc_e2e.h.

    Alice is the initiator, bob the responder, mallory the attacker; all
    three have keys from sc_key_generate. Most tests drive two sc_e2e_t
    through the broker's place. Some tests play one side themselves,
    computed from the specification with the primitives of sc_crypto.h
    (TE1, the labels, prk, the finished keys, the chains, the message AD):
    those pin the byte layout of section 7, and let an attacker do things
    the library would never do for it (sign a valid reply over a
    low-order key, finish a handshake with a stolen key).

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at https://mozilla.org/MPL/2.0/.
*/
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sc_crypto.h"
#include "sc_e2e.h"
#include "sc_key.h"
#include "sc_testvec.h"

#define SUITE 1
#define MSG_MAX 256

//  Decodes a hex literal that must be exactly len bytes long.
static void
s_unhex (const char *hex, uint8_t *out, size_t len)
{
    assert_int_equal (sc_testvec_unhex (hex, out, len), (long) len);
}

//  The three identities, made once for the group.
typedef struct {
    sc_key_t *alice, *bob, *mallory;
    uint8_t alice_pub [SC_PUB_LEN], bob_pub [SC_PUB_LEN], mallory_pub [SC_PUB_LEN];
} keys_t;

static keys_t *K;

static int
group_setup (void **state)
{
    (void) state;
    K = calloc (1, sizeof *K);
    if (!K)
        return -1;
    K->alice = sc_key_generate ();
    K->bob = sc_key_generate ();
    K->mallory = sc_key_generate ();
    if (!K->alice || !K->bob || !K->mallory
        || sc_key_public_raw (K->alice, K->alice_pub)
        || sc_key_public_raw (K->bob, K->bob_pub)
        || sc_key_public_raw (K->mallory, K->mallory_pub))
        return -1;
    return 0;
}

static int
group_teardown (void **state)
{
    (void) state;
    if (K) {
        sc_key_destroy (&K->alice);
        sc_key_destroy (&K->bob);
        sc_key_destroy (&K->mallory);
        free (K);
        K = NULL;
    }
    return 0;
}

//  Per test: an initiator alice and a responder bob, each told the
//  other's true key by an honest broker.
typedef struct {
    sc_e2e_t *a;        //  alice, initiator
    sc_e2e_t *b;        //  bob, responder
} pair_t;

static int
setup (void **state)
{
    pair_t *p = calloc (1, sizeof *p);
    if (!p)
        return -1;
    p->a = sc_e2e_new (K->alice, "alice", K->bob_pub, "bob", true);
    p->b = sc_e2e_new (K->bob, "bob", K->alice_pub, "alice", false);
    if (!p->a || !p->b) {
        sc_e2e_destroy (&p->a);
        sc_e2e_destroy (&p->b);
        free (p);
        return -1;
    }
    *state = p;
    return 0;
}

static int
teardown (void **state)
{
    pair_t *p = *state;
    if (p) {
        sc_e2e_destroy (&p->a);
        sc_e2e_destroy (&p->b);
        free (p);
    }
    return 0;
}

//  The handshake fields as the broker relays them.
typedef struct {
    uint8_t suite;
    uint8_t nonce_i [SC_RANDOM_LEN], eph_i [SC_PUB_LEN];
    uint8_t nonce_r [SC_RANDOM_LEN], eph_r [SC_PUB_LEN];
    uint8_t sig_r [SC_SIG_LEN], mac_r [SC_HASH_LEN];
    uint8_t sig_i [SC_SIG_LEN], mac_i [SC_HASH_LEN];
} flight_t;

//  start -> reply -> finish -> confirm, every step asserted.
static void
s_exchange (sc_e2e_t *i, sc_e2e_t *r, flight_t *fl)
{
    assert_int_equal (sc_e2e_start (i, &fl->suite, fl->nonce_i, fl->eph_i), SC_E2E_OK);
    assert_int_equal (fl->suite, SUITE);
    assert_int_equal (sc_e2e_reply (r, fl->suite, fl->nonce_i, fl->eph_i, fl->nonce_r,
                                    fl->eph_r, fl->sig_r, fl->mac_r), SC_E2E_OK);
    assert_int_equal (sc_e2e_finish (i, fl->nonce_r, fl->eph_r, fl->sig_r, fl->mac_r,
                                     fl->sig_i, fl->mac_i), SC_E2E_OK);
    assert_int_equal (sc_e2e_confirm (r, fl->sig_i, fl->mac_i), SC_E2E_OK);
    assert_true (sc_e2e_ready (i));
    assert_true (sc_e2e_ready (r));
}

//  A sealed message as it travels.
typedef struct {
    uint64_t n;
    uint8_t box [MSG_MAX + SC_TAG_LEN];
    size_t len;
} msg_t;

static void
s_seal (sc_e2e_t *e, const char *text, msg_t *m)
{
    size_t len = strlen (text);
    assert_true (len <= MSG_MAX);
    m->n = 0;
    assert_int_equal (sc_e2e_seal (e, (const uint8_t *) text, len, &m->n, m->box),
                      SC_E2E_OK);
    m->len = len + SC_TAG_LEN;
}

static int
s_open (sc_e2e_t *e, const msg_t *m, uint8_t *out, uint64_t *lost)
{
    return sc_e2e_open (e, m->n, m->box, m->len, out, lost);
}

static void
s_open_ok (sc_e2e_t *e, const msg_t *m, const char *text, uint64_t lost_expected)
{
    uint8_t out [MSG_MAX];
    uint64_t lost = 12345;
    assert_int_equal (s_open (e, m, out, &lost), SC_E2E_OK);
    assert_int_equal (lost, lost_expected);
    assert_int_equal (m->len - SC_TAG_LEN, strlen (text));
    assert_memory_equal (out, text, strlen (text));
}

static void
s_assert_no_plaintext (const uint8_t *out, const char *text)
{
    if (*text)
        assert_memory_not_equal (out, text, strlen (text));
}


//  ---------------------------------------------------------------------
//  The specification's computations, done here independently

static void
s_put_u64 (uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p [i] = (uint8_t) (v >> (56 - 8 * i));
}

//  ID(x) = u8(len(name_x)) || name_x || key_x
static void
s_hash_id (sc_hash_t *h, const char *name, const uint8_t key [SC_PUB_LEN])
{
    uint8_t len = (uint8_t) strlen (name);
    assert_int_equal (sc_hash_update (h, &len, 1), 0);
    assert_int_equal (sc_hash_update (h, (const uint8_t *) name, len), 0);
    assert_int_equal (sc_hash_update (h, key, SC_PUB_LEN), 0);
}

//  TE1 = H("secchat/1 e2e" || 0x00 || u8(1) || u8(suite) || ID(I) || ID(R)
//          || nonce_I || eph_I || nonce_R || eph_R)
static void
s_spec_te1 (const char *name_i, const uint8_t key_i [SC_PUB_LEN],
            const char *name_r, const uint8_t key_r [SC_PUB_LEN],
            const flight_t *fl, uint8_t te1 [SC_HASH_LEN])
{
    static const char label [] = "secchat/1 e2e";
    const uint8_t hdr [] = { 0x00, 1, SUITE };
    sc_hash_t *h = sc_hash_new ();
    assert_non_null (h);
    assert_int_equal (sc_hash_update (h, (const uint8_t *) label, strlen (label)), 0);
    assert_int_equal (sc_hash_update (h, hdr, sizeof hdr), 0);
    s_hash_id (h, name_i, key_i);
    s_hash_id (h, name_r, key_r);
    assert_int_equal (sc_hash_update (h, fl->nonce_i, SC_RANDOM_LEN), 0);
    assert_int_equal (sc_hash_update (h, fl->eph_i, SC_PUB_LEN), 0);
    assert_int_equal (sc_hash_update (h, fl->nonce_r, SC_RANDOM_LEN), 0);
    assert_int_equal (sc_hash_update (h, fl->eph_r, SC_PUB_LEN), 0);
    assert_int_equal (sc_hash_peek (h, te1), 0);
    sc_hash_destroy (&h);
}

//  H(prev || data)
static void
s_spec_next (const uint8_t prev [SC_HASH_LEN], const uint8_t *data, size_t len,
             uint8_t out [SC_HASH_LEN])
{
    uint8_t buf [SC_HASH_LEN + SC_SIG_LEN];
    assert_true (len <= SC_SIG_LEN);
    memcpy (buf, prev, SC_HASH_LEN);
    memcpy (buf + SC_HASH_LEN, data, len);
    assert_int_equal (sc_sha256 (buf, SC_HASH_LEN + len, out), 0);
}

//  label || 0x00 || th
static size_t
s_labelled (const char *label, const uint8_t th [SC_HASH_LEN], uint8_t *msg)
{
    size_t ll = strlen (label);
    memcpy (msg, label, ll);
    msg [ll] = 0x00;
    memcpy (msg + ll + 1, th, SC_HASH_LEN);
    return ll + 1 + SC_HASH_LEN;
}

static bool
s_verifies (const uint8_t pub [SC_PUB_LEN], const char *label,
            const uint8_t th [SC_HASH_LEN], const uint8_t sig [SC_SIG_LEN])
{
    uint8_t msg [128];
    size_t len = s_labelled (label, th, msg);
    return sc_ed25519_verify (pub, msg, len, sig, SC_SIG_LEN) == 0;
}

static void
s_sign (const sc_key_t *key, const char *label, const uint8_t th [SC_HASH_LEN],
        uint8_t sig [SC_SIG_LEN])
{
    uint8_t msg [128];
    size_t len = s_labelled (label, th, msg);
    assert_int_equal (sc_key_sign (key, msg, len, sig), 0);
}

static void
s_expand (const uint8_t prk [SC_HASH_LEN], const char *label,
          const uint8_t *ctx, size_t ctx_len, uint8_t out [SC_KEY_LEN])
{
    uint8_t info [128];
    size_t ll = strlen (label);
    assert_true (ll + ctx_len <= sizeof info);
    memcpy (info, label, ll);
    if (ctx_len)
        memcpy (info + ll, ctx, ctx_len);
    assert_int_equal (sc_hkdf_expand (prk, info, ll + ctx_len, out, SC_KEY_LEN), 0);
}

//  What one side of the exchange computes, from the specification.
typedef struct {
    uint8_t e_priv [SC_KEY_LEN];
    uint8_t ss [SC_KEY_LEN];
    uint8_t te1 [SC_HASH_LEN], te2 [SC_HASH_LEN], te3 [SC_HASH_LEN];
    uint8_t prk [SC_HASH_LEN], k_fr [SC_KEY_LEN], k_fi [SC_KEY_LEN];
    uint8_t ck_i2r [SC_KEY_LEN], ck_r2i [SC_KEY_LEN];
} spec_t;

//  prk = Extract(salt = TE1, ikm = ss), k_fR, k_fI.
static void
s_spec_schedule (spec_t *s)
{
    assert_int_equal (sc_hkdf_extract (s->te1, SC_HASH_LEN, s->ss, SC_KEY_LEN, s->prk), 0);
    s_expand (s->prk, "secchat/1 e2e finished responder", NULL, 0, s->k_fr);
    s_expand (s->prk, "secchat/1 e2e finished initiator", NULL, 0, s->k_fi);
}

//  TE3 = H(TE2 || sig_I), the two chain keys.
static void
s_spec_chains (spec_t *s, const uint8_t sig_i [SC_SIG_LEN])
{
    s_spec_next (s->te2, sig_i, SC_SIG_LEN, s->te3);
    s_expand (s->prk, "secchat/1 e2e chain i2r", s->te3, SC_HASH_LEN, s->ck_i2r);
    s_expand (s->prk, "secchat/1 e2e chain r2i", s->te3, SC_HASH_LEN, s->ck_r2i);
}

//  mk_n from ck_1: ck_(k+1) = HMAC(ck_k, 0x02), mk_n = HMAC(ck_n, 0x01).
static void
s_spec_mk (const uint8_t ck1 [SC_KEY_LEN], uint64_t n, uint8_t mk [SC_KEY_LEN])
{
    static const uint8_t one = 0x01, two = 0x02;
    uint8_t ck [SC_KEY_LEN];
    memcpy (ck, ck1, SC_KEY_LEN);
    for (uint64_t k = 1; k < n; k++)
        assert_int_equal (sc_hmac (ck, &two, 1, ck), 0);
    assert_int_equal (sc_hmac (ck, &one, 1, mk), 0);
}

//  nonce = u32(0) || u64(n); ad = "secchat/1 e2e msg" || sid_E || u8(dir) || u64(n)
static size_t
s_spec_msg_params (const uint8_t sid [SC_HASH_LEN], uint8_t dir, uint64_t n,
                   uint8_t nonce [SC_NONCE_LEN], uint8_t *ad)
{
    static const char label [] = "secchat/1 e2e msg";
    size_t ll = strlen (label);
    memset (nonce, 0, SC_NONCE_LEN);
    s_put_u64 (nonce + 4, n);
    memcpy (ad, label, ll);
    memcpy (ad + ll, sid, SC_HASH_LEN);
    ad [ll + SC_HASH_LEN] = dir;
    s_put_u64 (ad + ll + SC_HASH_LEN + 1, n);
    return ll + SC_HASH_LEN + 1 + 8;
}

static void
s_spec_seal (const uint8_t ck1 [SC_KEY_LEN], const uint8_t sid [SC_HASH_LEN],
             uint8_t dir, uint64_t n, const char *text, msg_t *m)
{
    uint8_t mk [SC_KEY_LEN], nonce [SC_NONCE_LEN], ad [128];
    s_spec_mk (ck1, n, mk);
    size_t ad_len = s_spec_msg_params (sid, dir, n, nonce, ad);
    size_t len = strlen (text);
    assert_int_equal (sc_aead_seal (mk, nonce, ad, ad_len, (const uint8_t *) text,
                                    len, m->box), 0);
    m->n = n;
    m->len = len + SC_TAG_LEN;
}

static void
s_spec_open_ok (const uint8_t ck1 [SC_KEY_LEN], const uint8_t sid [SC_HASH_LEN],
                uint8_t dir, const msg_t *m, const char *text)
{
    uint8_t mk [SC_KEY_LEN], nonce [SC_NONCE_LEN], ad [128], out [MSG_MAX];
    s_spec_mk (ck1, m->n, mk);
    size_t ad_len = s_spec_msg_params (sid, dir, m->n, nonce, ad);
    assert_int_equal (sc_aead_open (mk, nonce, ad, ad_len, m->box, m->len, out), 0);
    assert_int_equal (m->len - SC_TAG_LEN, strlen (text));
    assert_memory_equal (out, text, strlen (text));
}

//  Plays the initiator from the specification against a genuine
//  responder r (bob): CC_SESSION, then checks CC_REPLY. The CC_FINISH is
//  left to the caller.
static void
s_spec_initiator_hello (spec_t *s, flight_t *fl, const char *name_i,
                        const uint8_t key_i [SC_PUB_LEN], sc_e2e_t *r,
                        const char *name_r, const uint8_t key_r [SC_PUB_LEN])
{
    fl->suite = SUITE;
    assert_int_equal (sc_random (fl->nonce_i, SC_RANDOM_LEN), 0);
    assert_int_equal (sc_x25519_keygen (s->e_priv, fl->eph_i), 0);
    assert_int_equal (sc_e2e_reply (r, fl->suite, fl->nonce_i, fl->eph_i, fl->nonce_r,
                                    fl->eph_r, fl->sig_r, fl->mac_r), SC_E2E_OK);
    assert_int_equal (sc_x25519 (s->e_priv, fl->eph_r, s->ss), 0);
    s_spec_te1 (name_i, key_i, name_r, key_r, fl, s->te1);
    s_spec_schedule (s);
    s_spec_next (s->te1, fl->sig_r, SC_SIG_LEN, s->te2);
}

//  CC_FINISH from the specification: sig_I by `signer` over `label`, or
//  64 random bytes when signer is NULL; mac_I right for that sig_I.
static void
s_spec_finish (spec_t *s, flight_t *fl, const sc_key_t *signer, const char *label)
{
    if (signer)
        s_sign (signer, label, s->te2, fl->sig_i);
    else
        assert_int_equal (sc_random (fl->sig_i, SC_SIG_LEN), 0);
    s_spec_chains (s, fl->sig_i);
    assert_int_equal (sc_hmac (s->k_fi, s->te3, SC_HASH_LEN, fl->mac_i), 0);
}

//  Plays the responder bob from the specification against the CC_SESSION
//  in fl (alice initiator, both told the true keys): a fresh nonce_R and
//  eph_R, TE1, the keys, sig_R by `signer` or 64 random bytes when it is
//  NULL, TE2 and a mac_R right for that sig_R.
static void
s_spec_reply (spec_t *s, flight_t *fl, const sc_key_t *signer)
{
    assert_int_equal (sc_random (fl->nonce_r, SC_RANDOM_LEN), 0);
    assert_int_equal (sc_x25519_keygen (s->e_priv, fl->eph_r), 0);
    assert_int_equal (sc_x25519 (s->e_priv, fl->eph_i, s->ss), 0);
    s_spec_te1 ("alice", K->alice_pub, "bob", K->bob_pub, fl, s->te1);
    s_spec_schedule (s);
    if (signer)
        s_sign (signer, "secchat/1 e2e responder signature", s->te1, fl->sig_r);
    else
        assert_int_equal (sc_random (fl->sig_r, SC_SIG_LEN), 0);
    s_spec_next (s->te1, fl->sig_r, SC_SIG_LEN, s->te2);
    assert_int_equal (sc_hmac (s->k_fr, s->te2, SC_HASH_LEN, fl->mac_r), 0);
}


//  ---------------------------------------------------------------------
//  The exchange

static void
test_full_exchange (void **state)
{
    pair_t *p = *state;
    flight_t fl;
    assert_true (sc_e2e_initiator (p->a));
    assert_false (sc_e2e_initiator (p->b));
    assert_false (sc_e2e_ready (p->a));
    assert_false (sc_e2e_ready (p->b));
    s_exchange (p->a, p->b, &fl);

    char sa [SC_SAFETY_LEN + 1], sb [SC_SAFETY_LEN + 1];
    char s_ab [SC_SAFETY_LEN + 1], s_ba [SC_SAFETY_LEN + 1];
    assert_int_equal (sc_e2e_safety (p->a, sa), 0);
    assert_int_equal (sc_e2e_safety (p->b, sb), 0);
    assert_int_equal (sc_safety_number ("alice", K->alice_pub, "bob", K->bob_pub, s_ab), 0);
    assert_int_equal (sc_safety_number ("bob", K->bob_pub, "alice", K->alice_pub, s_ba), 0);
    assert_int_equal (strlen (sa), SC_SAFETY_LEN);
    assert_string_equal (sa, sb);
    assert_string_equal (sa, s_ab);
    assert_string_equal (sa, s_ba);
    assert_memory_equal (sc_e2e_peer_key (p->a), K->bob_pub, SC_PUB_LEN);
    assert_memory_equal (sc_e2e_peer_key (p->b), K->alice_pub, SC_PUB_LEN);
    assert_int_equal (sc_e2e_sent (p->a), 0);
    assert_int_equal (sc_e2e_expected (p->a), 1);
    assert_int_equal (sc_e2e_sent (p->b), 0);
    assert_int_equal (sc_e2e_expected (p->b), 1);

    //  Fresh values each time: a second exchange between the same users
    //  has other nonces and ephemerals.
    sc_e2e_t *a2 = sc_e2e_new (K->alice, "alice", K->bob_pub, "bob", true);
    sc_e2e_t *b2 = sc_e2e_new (K->bob, "bob", K->alice_pub, "alice", false);
    assert_non_null (a2);
    assert_non_null (b2);
    flight_t fl2;
    s_exchange (a2, b2, &fl2);
    assert_memory_not_equal (fl.nonce_i, fl2.nonce_i, SC_RANDOM_LEN);
    assert_memory_not_equal (fl.eph_i, fl2.eph_i, SC_PUB_LEN);
    assert_memory_not_equal (fl.nonce_r, fl2.nonce_r, SC_RANDOM_LEN);
    assert_memory_not_equal (fl.eph_r, fl2.eph_r, SC_PUB_LEN);
    sc_e2e_destroy (&a2);
    sc_e2e_destroy (&b2);
    assert_null (a2);
}

//  "I may send chat messages once it has sent CC_FINISH; R once it has
//  checked it."
static void
test_ready_order (void **state)
{
    pair_t *p = *state;
    flight_t fl;
    uint8_t box [8 + SC_TAG_LEN];
    uint64_t n = 0;
    assert_int_equal (sc_e2e_start (p->a, &fl.suite, fl.nonce_i, fl.eph_i), SC_E2E_OK);
    assert_int_equal (sc_e2e_reply (p->b, fl.suite, fl.nonce_i, fl.eph_i, fl.nonce_r,
                                    fl.eph_r, fl.sig_r, fl.mac_r), SC_E2E_OK);
    assert_false (sc_e2e_ready (p->b));
    assert_int_equal (sc_e2e_seal (p->b, (const uint8_t *) "early", 5, &n, box),
                      SC_E2E_ESTATE);
    assert_int_equal (sc_e2e_finish (p->a, fl.nonce_r, fl.eph_r, fl.sig_r, fl.mac_r,
                                     fl.sig_i, fl.mac_i), SC_E2E_OK);
    assert_true (sc_e2e_ready (p->a));
    assert_false (sc_e2e_ready (p->b));
    //  Alice may send now; bob opens it once he has checked CC_FINISH.
    msg_t m;
    s_seal (p->a, "sent before confirm", &m);
    assert_int_equal (m.n, 1);
    uint8_t out [MSG_MAX];
    uint64_t lost;
    assert_int_equal (s_open (p->b, &m, out, &lost), SC_E2E_ESTATE);
    assert_int_equal (sc_e2e_confirm (p->b, fl.sig_i, fl.mac_i), SC_E2E_OK);
    assert_true (sc_e2e_ready (p->b));
    s_open_ok (p->b, &m, "sent before confirm", 0);
}


//  ---------------------------------------------------------------------
//  Messages

static void
test_messages_both_ways (void **state)
{
    pair_t *p = *state;
    flight_t fl;
    s_exchange (p->a, p->b, &fl);
    static const char *lines [] = { "hi bob", "how are you?", "third" };
    for (uint64_t k = 0; k < 3; k++) {
        msg_t m;
        s_seal (p->a, lines [k], &m);
        assert_int_equal (m.n, k + 1);
        assert_int_equal (sc_e2e_sent (p->a), k + 1);
        s_open_ok (p->b, &m, lines [k], 0);
        assert_int_equal (sc_e2e_expected (p->b), k + 2);
    }
    for (uint64_t k = 0; k < 3; k++) {
        msg_t m;
        s_seal (p->b, lines [2 - k], &m);
        assert_int_equal (m.n, k + 1);
        s_open_ok (p->a, &m, lines [2 - k], 0);
        assert_int_equal (sc_e2e_expected (p->a), k + 2);
    }
    //  An empty plaintext is still a message with a tag.
    msg_t m;
    s_seal (p->a, "", &m);
    assert_int_equal (m.len, SC_TAG_LEN);
    s_open_ok (p->b, &m, "", 0);
}

static void
test_replay_rejected (void **state)
{
    pair_t *p = *state;
    flight_t fl;
    s_exchange (p->a, p->b, &fl);
    msg_t m1, m2;
    s_seal (p->a, "only once", &m1);
    s_seal (p->a, "second", &m2);
    s_open_ok (p->b, &m1, "only once", 0);

    uint8_t out [MSG_MAX];
    uint64_t lost = 77;
    memset (out, 0, sizeof out);
    assert_int_equal (s_open (p->b, &m1, out, &lost), SC_E2E_EREPLAY);
    s_assert_no_plaintext (out, "only once");
    assert_int_equal (sc_e2e_expected (p->b), 2);

    s_open_ok (p->b, &m2, "second", 0);
    //  Older after newer, and the newer again.
    memset (out, 0, sizeof out);
    assert_int_equal (s_open (p->b, &m1, out, &lost), SC_E2E_EREPLAY);
    s_assert_no_plaintext (out, "only once");
    assert_int_equal (s_open (p->b, &m2, out, &lost), SC_E2E_EREPLAY);
    s_assert_no_plaintext (out, "second");
    //  Counter 0 never exists (n = 1, 2, ...).
    msg_t zero = m2;
    zero.n = 0;
    assert_int_equal (s_open (p->b, &zero, out, &lost), SC_E2E_EREPLAY);
    assert_int_equal (sc_e2e_expected (p->b), 3);
}

static void
test_dropped_message (void **state)
{
    pair_t *p = *state;
    flight_t fl;
    s_exchange (p->a, p->b, &fl);
    msg_t m1, m2, m3, m4;
    s_seal (p->b, "one", &m1);
    s_seal (p->b, "two", &m2);
    s_seal (p->b, "three", &m3);
    s_seal (p->b, "four", &m4);
    s_open_ok (p->a, &m1, "one", 0);
    //  2 is lost on the way: 3 opens and reports one lost message.
    s_open_ok (p->a, &m3, "three", 1);
    assert_int_equal (sc_e2e_expected (p->a), 4);
    //  2 arriving late is refused: messages are accepted in order only.
    uint8_t out [MSG_MAX];
    uint64_t lost;
    memset (out, 0, sizeof out);
    assert_int_equal (s_open (p->a, &m2, out, &lost), SC_E2E_EREPLAY);
    s_assert_no_plaintext (out, "two");
    s_open_ok (p->a, &m4, "four", 0);
}

//  More than SC_E2E_SKIP (1000) ahead of the next expected counter is
//  refused before any key derivation: the result is ESKIP whatever the
//  box holds (a derivation would have ended in EAUTH for a junk box),
//  and nothing changes. Exactly 1000 ahead is still accepted.
static void
test_skip_limit (void **state)
{
    pair_t *p = *state;
    flight_t fl;
    s_exchange (p->a, p->b, &fl);
    assert_int_equal (SC_E2E_SKIP, 1000);
    enum { N = SC_E2E_SKIP + 2 };
    msg_t *m = calloc (N + 1, sizeof *m);
    assert_non_null (m);
    for (uint64_t k = 1; k <= N; k++) {
        s_seal (p->a, "skip", &m [k]);
        assert_int_equal (m [k].n, k);
    }
    uint8_t out [MSG_MAX];
    uint64_t lost = 99;
    //  expected = 1: counter 1002 is 1001 ahead.
    memset (out, 0, sizeof out);
    assert_int_equal (s_open (p->b, &m [N], out, &lost), SC_E2E_ESKIP);
    s_assert_no_plaintext (out, "skip");
    assert_int_equal (sc_e2e_expected (p->b), 1);

    msg_t junk = { .n = 0, .len = 40 };
    memset (junk.box, 0x5a, sizeof junk.box);
    static const uint64_t far [] = { 1 + SC_E2E_SKIP + 1, 1 + SC_E2E_SKIP + 2, 5000,
                                     ((uint64_t) 1) << 31, SC_E2E_LIMIT - 1 };
    for (size_t k = 0; k < sizeof far / sizeof far [0]; k++) {
        junk.n = far [k];
        assert_int_equal (s_open (p->b, &junk, out, &lost), SC_E2E_ESKIP);
        assert_int_equal (sc_e2e_expected (p->b), 1);
    }
    //  At and beyond the end of the chain (n = 2^32): exhausted.
    static const uint64_t beyond [] = { SC_E2E_LIMIT, SC_E2E_LIMIT + 1, UINT64_MAX };
    for (size_t k = 0; k < sizeof beyond / sizeof beyond [0]; k++) {
        junk.n = beyond [k];
        assert_int_equal (s_open (p->b, &junk, out, &lost), SC_E2E_ELIMIT);
        assert_int_equal (sc_e2e_expected (p->b), 1);
    }
    //  Exactly 1000 ahead: opens, 1000 lost.
    s_open_ok (p->b, &m [1 + SC_E2E_SKIP], "skip", SC_E2E_SKIP);
    assert_int_equal (sc_e2e_expected (p->b), 2 + SC_E2E_SKIP);
    s_open_ok (p->b, &m [N], "skip", 0);
    free (m);
}

//  The chain's end, n = 2^32 (section 7): a sender whose last counter is
//  2^32 - 2 seals one more message, n = 2^32 - 1, which opens; then it
//  refuses to seal (ELIMIT) and stays refusing, its counter unchanged
//  (no counter wraps, no key is reused). A receiver past that message
//  expects 2^32, within the skip window, and still refuses n = 2^32 and
//  beyond as exhausted, changing nothing.
static void
test_chain_end (void **state)
{
    pair_t *p = *state;
    flight_t fl;
    s_exchange (p->a, p->b, &fl);
    assert_int_equal (SC_E2E_LIMIT, ((uint64_t) 1) << 32);
    //  backwards, or past the end: refused
    assert_int_equal (sc_e2e_skip_ahead (p->a, SC_E2E_LIMIT, 1), -1);
    assert_int_equal (sc_e2e_skip_ahead (p->b, 0, SC_E2E_LIMIT + 1), -1);
    assert_int_equal (sc_e2e_skip_ahead (p->a, SC_E2E_LIMIT - 2, 1), 0);
    assert_int_equal (sc_e2e_skip_ahead (p->a, 5, 1), -1);
    assert_int_equal (sc_e2e_skip_ahead (p->b, 0, SC_E2E_LIMIT - 1), 0);

    msg_t last;
    s_seal (p->a, "the last one", &last);
    assert_int_equal (last.n, SC_E2E_LIMIT - 1);
    s_open_ok (p->b, &last, "the last one", 0);
    assert_int_equal (sc_e2e_expected (p->b), SC_E2E_LIMIT);

    for (int k = 0; k < 2; k++) {
        uint64_t n = 777;
        uint8_t box [MSG_MAX + SC_TAG_LEN];
        assert_int_equal (sc_e2e_seal (p->a, (const uint8_t *) "x", 1, &n, box),
                          SC_E2E_ELIMIT);
        assert_int_equal (n, 777);
        assert_int_equal (sc_e2e_sent (p->a), SC_E2E_LIMIT - 1);
    }
    assert_string_equal (sc_e2e_strerror (SC_E2E_ELIMIT), "message counter exhausted");

    //  the receiver: n = 2^32 is 0 ahead of what it expects, yet refused
    msg_t junk = { .n = 0, .len = 40 };
    memset (junk.box, 0x5a, sizeof junk.box);
    static const uint64_t beyond [] = { SC_E2E_LIMIT, SC_E2E_LIMIT + 1,
                                        SC_E2E_LIMIT + SC_E2E_SKIP, UINT64_MAX };
    uint8_t out [MSG_MAX];
    uint64_t lost = 99;
    for (size_t k = 0; k < sizeof beyond / sizeof beyond [0]; k++) {
        junk.n = beyond [k];
        assert_int_equal (s_open (p->b, &junk, out, &lost), SC_E2E_ELIMIT);
        assert_int_equal (sc_e2e_expected (p->b), SC_E2E_LIMIT);
        assert_int_equal (lost, 99);
    }
    //  the last message again: a replay, as ever
    assert_int_equal (s_open (p->b, &last, out, &lost), SC_E2E_EREPLAY);
    //  the other direction is untouched
    msg_t back;
    s_seal (p->b, "still here", &back);
    assert_int_equal (back.n, 1);
    s_open_ok (p->a, &back, "still here", 0);
}

static void
test_tampered_box (void **state)
{
    pair_t *p = *state;
    flight_t fl;
    s_exchange (p->a, p->b, &fl);
    static const char text [] = "every bit of this is authenticated";
    msg_t m;
    s_seal (p->a, text, &m);
    uint8_t out [MSG_MAX];
    uint64_t lost = 5;
    for (size_t k = 0; k < m.len; k++) {
        msg_t bad = m;
        bad.box [k] ^= (uint8_t) (1u << (k % 8));
        memset (out, 0, sizeof out);
        assert_int_equal (s_open (p->b, &bad, out, &lost), SC_E2E_EAUTH);
        s_assert_no_plaintext (out, text);
        assert_int_equal (sc_e2e_expected (p->b), 1);
    }
    //  Truncated (tag cut, or shorter than a tag) and extended boxes.
    for (size_t len = 0; len < m.len; len++) {
        msg_t bad = m;
        bad.len = len;
        assert_int_equal (s_open (p->b, &bad, out, &lost), SC_E2E_EAUTH);
    }
    msg_t longer = m;
    longer.box [longer.len++] = 0;
    assert_int_equal (s_open (p->b, &longer, out, &lost), SC_E2E_EAUTH);
    assert_int_equal (sc_e2e_expected (p->b), 1);
    //  Nothing changed: the genuine box still opens.
    s_open_ok (p->b, &m, text, 0);
}

//  Alice's box fed back to alice: the directions have their own chains
//  and their own dir byte in the AD.
static void
test_reflection_rejected (void **state)
{
    pair_t *p = *state;
    flight_t fl;
    s_exchange (p->a, p->b, &fl);
    msg_t ma, mb;
    s_seal (p->a, "from alice", &ma);
    s_seal (p->b, "from bob", &mb);
    uint8_t out [MSG_MAX];
    uint64_t lost;
    assert_int_equal (s_open (p->a, &ma, out, &lost), SC_E2E_EAUTH);
    assert_int_equal (s_open (p->b, &mb, out, &lost), SC_E2E_EAUTH);
    assert_int_equal (sc_e2e_expected (p->a), 1);
    assert_int_equal (sc_e2e_expected (p->b), 1);
    s_open_ok (p->b, &ma, "from alice", 0);
    s_open_ok (p->a, &mb, "from bob", 0);
}

//  A box from an earlier chat between the same two users does not open
//  in a new one (new ephemerals, new sid_E, new chains).
static void
test_other_chat_rejected (void **state)
{
    pair_t *p = *state;
    flight_t fl, fl2;
    s_exchange (p->a, p->b, &fl);
    sc_e2e_t *a2 = sc_e2e_new (K->alice, "alice", K->bob_pub, "bob", true);
    sc_e2e_t *b2 = sc_e2e_new (K->bob, "bob", K->alice_pub, "alice", false);
    assert_non_null (a2);
    assert_non_null (b2);
    s_exchange (a2, b2, &fl2);
    msg_t old, fresh;
    s_seal (p->a, "old chat", &old);
    s_seal (a2, "new chat", &fresh);
    uint8_t out [MSG_MAX];
    uint64_t lost;
    assert_int_equal (s_open (b2, &old, out, &lost), SC_E2E_EAUTH);
    assert_int_equal (s_open (p->b, &fresh, out, &lost), SC_E2E_EAUTH);
    s_open_ok (b2, &fresh, "new chat", 0);
    s_open_ok (p->b, &old, "old chat", 0);
    sc_e2e_destroy (&a2);
    sc_e2e_destroy (&b2);
}

//  Two seals of the same plaintext differ, and a box only opens at its
//  own counter: the message keys are per message.
static void
test_per_message_keys (void **state)
{
    pair_t *p = *state;
    flight_t fl;
    s_exchange (p->a, p->b, &fl);
    msg_t m1, m2;
    s_seal (p->a, "same words", &m1);
    s_seal (p->a, "same words", &m2);
    assert_int_equal (m1.n, 1);
    assert_int_equal (m2.n, 2);
    assert_int_equal (m1.len, m2.len);
    assert_memory_not_equal (m1.box, m2.box, m1.len);

    uint8_t out [MSG_MAX];
    uint64_t lost;
    msg_t moved = m1;
    moved.n = 2;        //  box 1 presented as message 2
    assert_int_equal (s_open (p->b, &moved, out, &lost), SC_E2E_EAUTH);
    moved = m1;
    moved.n = 3;
    assert_int_equal (s_open (p->b, &moved, out, &lost), SC_E2E_EAUTH);
    moved = m2;
    moved.n = 1;        //  box 2 presented as message 1
    assert_int_equal (s_open (p->b, &moved, out, &lost), SC_E2E_EAUTH);
    assert_int_equal (sc_e2e_expected (p->b), 1);
    s_open_ok (p->b, &m1, "same words", 0);
    s_open_ok (p->b, &m2, "same words", 0);
}


//  ---------------------------------------------------------------------
//  Attacks on the exchange

//  Each relayed field of CC_REPLY and CC_FINISH, one bit flipped.
static void
test_tampered_handshake_fields (void **state)
{
    (void) state;
    enum { NONCE_R, EPH_R, SIG_R, MAC_R, SIG_I, MAC_I, FIELDS };
    static const int expected [FIELDS] = {
        SC_E2E_ESIG, SC_E2E_ESIG, SC_E2E_ESIG, SC_E2E_EMAC, SC_E2E_ESIG, SC_E2E_EMAC
    };
    static const size_t sizes [FIELDS] = {
        SC_RANDOM_LEN, SC_PUB_LEN, SC_SIG_LEN, SC_HASH_LEN, SC_SIG_LEN, SC_HASH_LEN
    };
    for (int field = 0; field < FIELDS; field++) {
        for (size_t pos = 0; pos < sizes [field]; pos += 7) {
            sc_e2e_t *a = sc_e2e_new (K->alice, "alice", K->bob_pub, "bob", true);
            sc_e2e_t *b = sc_e2e_new (K->bob, "bob", K->alice_pub, "alice", false);
            assert_non_null (a);
            assert_non_null (b);
            flight_t fl;
            assert_int_equal (sc_e2e_start (a, &fl.suite, fl.nonce_i, fl.eph_i), SC_E2E_OK);
            assert_int_equal (sc_e2e_reply (b, fl.suite, fl.nonce_i, fl.eph_i, fl.nonce_r,
                                            fl.eph_r, fl.sig_r, fl.mac_r), SC_E2E_OK);
            uint8_t *target [FIELDS] = {
                fl.nonce_r, fl.eph_r, fl.sig_r, fl.mac_r, fl.sig_i, fl.mac_i
            };
            uint8_t bit = (uint8_t) (1u << (pos % 8));
            if (field <= MAC_R) {
                target [field][pos] ^= bit;
                assert_int_equal (sc_e2e_finish (a, fl.nonce_r, fl.eph_r, fl.sig_r,
                                                 fl.mac_r, fl.sig_i, fl.mac_i),
                                  expected [field]);
                assert_false (sc_e2e_ready (a));
            }
            else {
                assert_int_equal (sc_e2e_finish (a, fl.nonce_r, fl.eph_r, fl.sig_r,
                                                 fl.mac_r, fl.sig_i, fl.mac_i), SC_E2E_OK);
                target [field][pos] ^= bit;
                assert_int_equal (sc_e2e_confirm (b, fl.sig_i, fl.mac_i), expected [field]);
                assert_false (sc_e2e_ready (b));
                //  Failed for good: the genuine CC_FINISH no longer helps.
                target [field][pos] ^= bit;
                assert_int_equal (sc_e2e_confirm (b, fl.sig_i, fl.mac_i), SC_E2E_ESTATE);
                assert_false (sc_e2e_ready (b));
            }
            sc_e2e_destroy (&a);
            sc_e2e_destroy (&b);
        }
    }
}

//  A malicious broker gives bob mallory's key as alice's. Bob cannot tell
//  at reply time; TE1 then holds ID(alice) with another key on each
//  side, so alice, who checks first (E3), refuses bob's signature.
/* Alice (told peer_pub for bob) starts, bob (told alice_pub under
   alice_name) replies, and alice refuses bob's signature: both are
   returned, neither ready. */
static void
s_misbound (const uint8_t *peer_pub, const uint8_t *alice_pub, const char *alice_name)
{
    flight_t fl;
    sc_e2e_t *a = sc_e2e_new (K->alice, "alice", peer_pub, "bob", true);
    sc_e2e_t *b = sc_e2e_new (K->bob, "bob", alice_pub, alice_name, false);
    assert_non_null (a);
    assert_non_null (b);
    assert_int_equal (sc_e2e_start (a, &fl.suite, fl.nonce_i, fl.eph_i), SC_E2E_OK);
    assert_int_equal (sc_e2e_reply (b, fl.suite, fl.nonce_i, fl.eph_i, fl.nonce_r,
                                    fl.eph_r, fl.sig_r, fl.mac_r), SC_E2E_OK);
    assert_int_equal (sc_e2e_finish (a, fl.nonce_r, fl.eph_r, fl.sig_r, fl.mac_r,
                                     fl.sig_i, fl.mac_i), SC_E2E_ESIG);
    assert_false (sc_e2e_ready (a));
    assert_false (sc_e2e_ready (b));
    sc_e2e_destroy (&a);
    sc_e2e_destroy (&b);
}

static void
test_broker_swaps_key (void **state)
{
    (void) state;
    //  Bob is told mallory's key for alice.
    s_misbound (K->bob_pub, K->mallory_pub, "alice");
    //  Alice is told mallory's key for bob.
    s_misbound (K->mallory_pub, K->alice_pub, "alice");
    //  Names are bound too: bob is told alice's key but the name carol.
    s_misbound (K->bob_pub, K->alice_pub, "carol");
}

//  A lying broker that holds the private key it hands out (mallory in
//  the middle, with an exchange on each side) is not caught by the
//  signatures: the safety numbers differ.
static void
test_lying_broker_safety_number (void **state)
{
    (void) state;
    //  alice <-> mallory posing as bob; mallory posing as alice <-> bob.
    sc_e2e_t *a = sc_e2e_new (K->alice, "alice", K->mallory_pub, "bob", true);
    sc_e2e_t *m_as_bob = sc_e2e_new (K->mallory, "bob", K->alice_pub, "alice", false);
    sc_e2e_t *m_as_alice = sc_e2e_new (K->mallory, "alice", K->bob_pub, "bob", true);
    sc_e2e_t *b = sc_e2e_new (K->bob, "bob", K->mallory_pub, "alice", false);
    assert_non_null (a);
    assert_non_null (m_as_bob);
    assert_non_null (m_as_alice);
    assert_non_null (b);
    flight_t f1, f2;
    s_exchange (a, m_as_bob, &f1);
    s_exchange (m_as_alice, b, &f2);
    char sa [SC_SAFETY_LEN + 1], sb [SC_SAFETY_LEN + 1], honest [SC_SAFETY_LEN + 1];
    assert_int_equal (sc_e2e_safety (a, sa), 0);
    assert_int_equal (sc_e2e_safety (b, sb), 0);
    assert_int_equal (sc_safety_number ("alice", K->alice_pub, "bob", K->bob_pub, honest), 0);
    assert_string_not_equal (sa, sb);
    assert_string_not_equal (sa, honest);
    assert_string_not_equal (sb, honest);
    sc_e2e_destroy (&a);
    sc_e2e_destroy (&m_as_bob);
    sc_e2e_destroy (&m_as_alice);
    sc_e2e_destroy (&b);
}

//  Key compromise impersonation: mallory holds BOB's private key and
//  tries to pose as alice to bob. Bob still requires a signature by
//  alice's key, so he refuses.
static void
test_kci_rejected (void **state)
{
    pair_t *p = *state;
    flight_t fl;

    //  Through the library: the initiator side run with bob's key and the
    //  name alice. Its own TE1 carries (alice, bob's key) where bob's
    //  carries (alice, alice's key): it cannot even check bob's reply, so
    //  no CC_FINISH comes out of it.
    sc_e2e_t *att = sc_e2e_new (K->bob, "alice", K->bob_pub, "bob", true);
    assert_non_null (att);
    assert_int_equal (sc_e2e_start (att, &fl.suite, fl.nonce_i, fl.eph_i), SC_E2E_OK);
    assert_int_equal (sc_e2e_reply (p->b, fl.suite, fl.nonce_i, fl.eph_i, fl.nonce_r,
                                    fl.eph_r, fl.sig_r, fl.mac_r), SC_E2E_OK);
    assert_int_equal (sc_e2e_finish (att, fl.nonce_r, fl.eph_r, fl.sig_r, fl.mac_r,
                                     fl.sig_i, fl.mac_i), SC_E2E_ESIG);
    sc_e2e_destroy (&att);
    sc_e2e_destroy (&p->b);

    //  From the specification, with everything but alice's key: the
    //  attacker computes TE1 as bob does, so it knows every key of the
    //  exchange (ss, prk, k_fI) and sends a correct mac_I. Its sig_I can
    //  only be made with bob's key: bob refuses it.
    static const char *const labels [] = {
        "secchat/1 e2e initiator signature",
        "secchat/1 e2e responder signature",
    };
    for (size_t k = 0; k < 2; k++) {
        sc_e2e_t *b = sc_e2e_new (K->bob, "bob", K->alice_pub, "alice", false);
        assert_non_null (b);
        spec_t s;
        s_spec_initiator_hello (&s, &fl, "alice", K->alice_pub, b, "bob", K->bob_pub);
        assert_true (s_verifies (K->bob_pub, "secchat/1 e2e responder signature",
                                 s.te1, fl.sig_r));
        assert_int_equal (sc_hmac_verify (s.k_fr, s.te2, SC_HASH_LEN, fl.mac_r), 0);
        s_spec_finish (&s, &fl, K->bob, labels [k]);
        assert_int_equal (sc_e2e_confirm (b, fl.sig_i, fl.mac_i), SC_E2E_ESIG);
        assert_false (sc_e2e_ready (b));
        uint8_t box [4 + SC_TAG_LEN];
        uint64_t n;
        assert_int_equal (sc_e2e_seal (b, (const uint8_t *) "nope", 4, &n, box),
                          SC_E2E_ESTATE);
        sc_e2e_destroy (&b);
    }

    //  Reflection: bob's own sig_R sent back as sig_I (with a mac_I that
    //  matches it).
    sc_e2e_t *b = sc_e2e_new (K->bob, "bob", K->alice_pub, "alice", false);
    assert_non_null (b);
    spec_t s;
    s_spec_initiator_hello (&s, &fl, "alice", K->alice_pub, b, "bob", K->bob_pub);
    memcpy (fl.sig_i, fl.sig_r, SC_SIG_LEN);
    s_spec_chains (&s, fl.sig_i);
    assert_int_equal (sc_hmac (s.k_fi, s.te3, SC_HASH_LEN, fl.mac_i), 0);
    assert_int_equal (sc_e2e_confirm (b, fl.sig_i, fl.mac_i), SC_E2E_ESIG);
    sc_e2e_destroy (&b);
}


//  Someone who is not bob answers alice's CC_SESSION as bob: the broker,
//  or anyone inside the relay, without bob's key. It picked e_R, so it
//  knows ss and every key of the exchange and sends a right mac_R; its
//  sig_R is 64 random bytes, or a valid signature by its own key
//  (mallory's). Only the check of sig_R with bob's key stands between it
//  and a chat alice would believe is with bob: she refuses it with the
//  signature error, sends no CC_FINISH and cannot send a message.
static void
test_impostor_responder (void **state)
{
    (void) state;
    const sc_key_t *signers [] = { NULL, K->mallory, K->alice, K->bob };
    for (size_t k = 0; k < sizeof signers / sizeof signers [0]; k++) {
        sc_e2e_t *a = sc_e2e_new (K->alice, "alice", K->bob_pub, "bob", true);
        assert_non_null (a);
        flight_t fl;
        spec_t s;
        assert_int_equal (sc_e2e_start (a, &fl.suite, fl.nonce_i, fl.eph_i), SC_E2E_OK);
        s_spec_reply (&s, &fl, signers [k]);
        //  The last round is the control: bob's own signature is taken.
        int expected = signers [k] == K->bob ? SC_E2E_OK : SC_E2E_ESIG;
        int rc = sc_e2e_finish (a, fl.nonce_r, fl.eph_r, fl.sig_r, fl.mac_r,
                                fl.sig_i, fl.mac_i);
        if (rc != expected)
            print_error ("signer %zu: %s\n", k, sc_e2e_strerror (rc));
        assert_int_equal (rc, expected);
        assert_int_equal (sc_e2e_ready (a), expected == SC_E2E_OK);
        uint8_t box [4 + SC_TAG_LEN];
        uint64_t n;
        assert_int_equal (sc_e2e_seal (a, (const uint8_t *) "hi b", 4, &n, box),
                          expected == SC_E2E_OK ? SC_E2E_OK : SC_E2E_ESTATE);
        sc_e2e_destroy (&a);
        sc_wipe (&s, sizeof s);
    }
}

//  The same against bob: someone who is not alice sends CC_SESSION and
//  CC_FINISH as alice, with a right mac_I (it knows every key of the
//  exchange) and a sig_I of 64 random bytes or by mallory's key (bob's
//  own key is test_kci_rejected). Bob refuses it with the signature
//  error and is not ready.
static void
test_impostor_initiator (void **state)
{
    (void) state;
    const sc_key_t *signers [] = { NULL, K->mallory, K->alice };
    for (size_t k = 0; k < sizeof signers / sizeof signers [0]; k++) {
        sc_e2e_t *b = sc_e2e_new (K->bob, "bob", K->alice_pub, "alice", false);
        assert_non_null (b);
        flight_t fl;
        spec_t s;
        s_spec_initiator_hello (&s, &fl, "alice", K->alice_pub, b, "bob", K->bob_pub);
        s_spec_finish (&s, &fl, signers [k], "secchat/1 e2e initiator signature");
        //  The last round is the control: alice's own signature is taken.
        int expected = signers [k] == K->alice ? SC_E2E_OK : SC_E2E_ESIG;
        int rc = sc_e2e_confirm (b, fl.sig_i, fl.mac_i);
        if (rc != expected)
            print_error ("signer %zu: %s\n", k, sc_e2e_strerror (rc));
        assert_int_equal (rc, expected);
        assert_int_equal (sc_e2e_ready (b), expected == SC_E2E_OK);
        uint8_t box [4 + SC_TAG_LEN];
        uint64_t n;
        assert_int_equal (sc_e2e_seal (b, (const uint8_t *) "hi a", 4, &n, box),
                          expected == SC_E2E_OK ? SC_E2E_OK : SC_E2E_ESTATE);
        sc_e2e_destroy (&b);
        sc_wipe (&s, sizeof s);
    }
}


//  ---------------------------------------------------------------------
//  The specification, byte for byte

//  A genuine responder (bob) against an initiator computed here. Pins
//  TE1, the responder signature's label and layout, mac_R, then (with a
//  CC_FINISH made here with alice's real key) sig_I, mac_I, TE3, both
//  chains and the message box format in both directions. Also the
//  positive control for test_kci_rejected, which runs the same code
//  with bob's key.
static void
test_spec_responder (void **state)
{
    pair_t *p = *state;
    flight_t fl;
    spec_t s;
    s_spec_initiator_hello (&s, &fl, "alice", K->alice_pub, p->b, "bob", K->bob_pub);

    //  sig_R = Sign(sk_R, "secchat/1 e2e responder signature" || 0x00 || TE1)
    assert_true (s_verifies (K->bob_pub, "secchat/1 e2e responder signature",
                             s.te1, fl.sig_r));
    //  ... and under no other label of the protocol: not the initiator's,
    //  not the client-broker handshake's (cross-protocol), not without
    //  the 0x00 separator.
    assert_false (s_verifies (K->bob_pub, "secchat/1 e2e initiator signature",
                              s.te1, fl.sig_r));
    assert_false (s_verifies (K->bob_pub, "secchat/1 cb broker signature",
                              s.te1, fl.sig_r));
    assert_false (s_verifies (K->bob_pub, "secchat/1 cb client signature",
                              s.te1, fl.sig_r));
    {
        static const char label [] = "secchat/1 e2e responder signature";
        uint8_t msg [128];
        memcpy (msg, label, strlen (label));
        memcpy (msg + strlen (label), s.te1, SC_HASH_LEN);
        assert_int_not_equal (sc_ed25519_verify (K->bob_pub, msg, strlen (label) + SC_HASH_LEN,
                                                 fl.sig_r, SC_SIG_LEN), 0);
    }
    //  mac_R = HMAC(k_fR, TE2), TE2 = H(TE1 || sig_R)
    uint8_t mac [SC_HASH_LEN];
    assert_int_equal (sc_hmac (s.k_fr, s.te2, SC_HASH_LEN, mac), 0);
    assert_memory_equal (mac, fl.mac_r, SC_HASH_LEN);

    //  CC_FINISH as the specification says, with alice's key: accepted.
    s_spec_finish (&s, &fl, K->alice, "secchat/1 e2e initiator signature");
    assert_int_equal (sc_e2e_confirm (p->b, fl.sig_i, fl.mac_i), SC_E2E_OK);
    assert_true (sc_e2e_ready (p->b));

    //  Messages R->I (dir 1) open with ck_R2I; I->R (dir 0) made with
    //  ck_I2R open at bob. sid_E = TE3.
    msg_t m;
    s_seal (p->b, "from bob, n=1", &m);
    assert_int_equal (m.n, 1);
    s_spec_open_ok (s.ck_r2i, s.te3, 1, &m, "from bob, n=1");
    s_seal (p->b, "from bob, n=2", &m);
    s_spec_open_ok (s.ck_r2i, s.te3, 1, &m, "from bob, n=2");
    //  The exact bytes: the box is deterministic given the keys.
    msg_t mine;
    s_spec_seal (s.ck_r2i, s.te3, 1, 2, "from bob, n=2", &mine);
    assert_int_equal (mine.len, m.len);
    assert_memory_equal (mine.box, m.box, m.len);

    s_spec_seal (s.ck_i2r, s.te3, 0, 1, "from alice, n=1", &m);
    s_open_ok (p->b, &m, "from alice, n=1", 0);
    s_spec_seal (s.ck_i2r, s.te3, 0, 4, "from alice, n=4", &m);
    s_open_ok (p->b, &m, "from alice, n=4", 2);
    //  The wrong dir byte does not open.
    s_spec_seal (s.ck_i2r, s.te3, 1, 5, "dir 1 on the i2r chain", &m);
    uint8_t out [MSG_MAX];
    uint64_t lost;
    assert_int_equal (s_open (p->b, &m, out, &lost), SC_E2E_EAUTH);
}

//  A genuine initiator (alice) against a responder computed here: pins
//  the initiator's side (sig_I's label and layout over TE2, mac_I over
//  TE3) and the chains from alice's side.
static void
test_spec_initiator (void **state)
{
    pair_t *p = *state;
    flight_t fl;
    spec_t s;
    uint8_t e_r [SC_KEY_LEN];
    assert_int_equal (sc_e2e_start (p->a, &fl.suite, fl.nonce_i, fl.eph_i), SC_E2E_OK);
    assert_int_equal (fl.suite, SUITE);
    assert_int_equal (sc_random (fl.nonce_r, SC_RANDOM_LEN), 0);
    assert_int_equal (sc_x25519_keygen (e_r, fl.eph_r), 0);
    assert_int_equal (sc_x25519 (e_r, fl.eph_i, s.ss), 0);
    s_spec_te1 ("alice", K->alice_pub, "bob", K->bob_pub, &fl, s.te1);
    s_spec_schedule (&s);
    s_sign (K->bob, "secchat/1 e2e responder signature", s.te1, fl.sig_r);
    s_spec_next (s.te1, fl.sig_r, SC_SIG_LEN, s.te2);
    assert_int_equal (sc_hmac (s.k_fr, s.te2, SC_HASH_LEN, fl.mac_r), 0);

    assert_int_equal (sc_e2e_finish (p->a, fl.nonce_r, fl.eph_r, fl.sig_r, fl.mac_r,
                                     fl.sig_i, fl.mac_i), SC_E2E_OK);
    assert_true (sc_e2e_ready (p->a));
    //  sig_I = Sign(sk_I, "secchat/1 e2e initiator signature" || 0x00 || TE2)
    assert_true (s_verifies (K->alice_pub, "secchat/1 e2e initiator signature",
                             s.te2, fl.sig_i));
    assert_false (s_verifies (K->alice_pub, "secchat/1 e2e responder signature",
                              s.te2, fl.sig_i));
    assert_false (s_verifies (K->alice_pub, "secchat/1 cb client signature",
                              s.te2, fl.sig_i));
    //  mac_I = HMAC(k_fI, TE3), TE3 = H(TE2 || sig_I)
    s_spec_chains (&s, fl.sig_i);
    uint8_t mac [SC_HASH_LEN];
    assert_int_equal (sc_hmac (s.k_fi, s.te3, SC_HASH_LEN, mac), 0);
    assert_memory_equal (mac, fl.mac_i, SC_HASH_LEN);

    msg_t m;
    s_seal (p->a, "alice to bob", &m);
    assert_int_equal (m.n, 1);
    s_spec_open_ok (s.ck_i2r, s.te3, 0, &m, "alice to bob");
    s_spec_seal (s.ck_r2i, s.te3, 1, 1, "bob to alice", &m);
    s_open_ok (p->a, &m, "bob to alice", 0);
    sc_wipe (e_r, sizeof e_r);
}


//  ---------------------------------------------------------------------
//  Invalid inputs and misuse

//  A low-order eph_I: the responder's X25519 result is all zero.
static void
test_low_order_responder (void **state)
{
    (void) state;
    for (size_t k = 0; k < SC_TESTVEC_LOW_ORDER; k++) {
        sc_e2e_t *b = sc_e2e_new (K->bob, "bob", K->alice_pub, "alice", false);
        assert_non_null (b);
        flight_t fl;
        assert_int_equal (sc_random (fl.nonce_i, SC_RANDOM_LEN), 0);
        s_unhex (sc_testvec_low_order [k], fl.eph_i, SC_PUB_LEN);
        assert_int_equal (sc_e2e_reply (b, SUITE, fl.nonce_i, fl.eph_i, fl.nonce_r,
                                        fl.eph_r, fl.sig_r, fl.mac_r), SC_E2E_EKEY);
        assert_false (sc_e2e_ready (b));
        sc_e2e_destroy (&b);
    }
}

//  A low-order eph_R in a CC_REPLY that is otherwise perfect: signed by
//  bob's real key over the TE1 holding it, with mac_R computed from the
//  all-zero secret (what a malicious responder can do). The initiator
//  must still abort, on the all-zero secret.
static void
test_low_order_initiator (void **state)
{
    (void) state;
    for (size_t k = 0; k < SC_TESTVEC_LOW_ORDER; k++) {
        sc_e2e_t *a = sc_e2e_new (K->alice, "alice", K->bob_pub, "bob", true);
        assert_non_null (a);
        flight_t fl;
        spec_t s;
        assert_int_equal (sc_e2e_start (a, &fl.suite, fl.nonce_i, fl.eph_i), SC_E2E_OK);
        assert_int_equal (sc_random (fl.nonce_r, SC_RANDOM_LEN), 0);
        s_unhex (sc_testvec_low_order [k], fl.eph_r, SC_PUB_LEN);
        memset (s.ss, 0, sizeof s.ss);
        s_spec_te1 ("alice", K->alice_pub, "bob", K->bob_pub, &fl, s.te1);
        s_spec_schedule (&s);
        s_sign (K->bob, "secchat/1 e2e responder signature", s.te1, fl.sig_r);
        s_spec_next (s.te1, fl.sig_r, SC_SIG_LEN, s.te2);
        assert_int_equal (sc_hmac (s.k_fr, s.te2, SC_HASH_LEN, fl.mac_r), 0);
        assert_int_equal (sc_e2e_finish (a, fl.nonce_r, fl.eph_r, fl.sig_r, fl.mac_r,
                                         fl.sig_i, fl.mac_i), SC_E2E_EKEY);
        assert_false (sc_e2e_ready (a));
        sc_e2e_destroy (&a);
    }
}

static void
test_wrong_suite (void **state)
{
    (void) state;
    static const uint8_t suites [] = { 0, 2, 3, 0x81, 255 };
    for (size_t k = 0; k < sizeof suites; k++) {
        sc_e2e_t *a = sc_e2e_new (K->alice, "alice", K->bob_pub, "bob", true);
        sc_e2e_t *b = sc_e2e_new (K->bob, "bob", K->alice_pub, "alice", false);
        assert_non_null (a);
        assert_non_null (b);
        flight_t fl;
        assert_int_equal (sc_e2e_start (a, &fl.suite, fl.nonce_i, fl.eph_i), SC_E2E_OK);
        assert_int_equal (sc_e2e_reply (b, suites [k], fl.nonce_i, fl.eph_i, fl.nonce_r,
                                        fl.eph_r, fl.sig_r, fl.mac_r), SC_E2E_ESUITE);
        //  Failed for good: the right suite afterwards is refused.
        assert_int_equal (sc_e2e_reply (b, SUITE, fl.nonce_i, fl.eph_i, fl.nonce_r,
                                        fl.eph_r, fl.sig_r, fl.mac_r), SC_E2E_ESTATE);
        sc_e2e_destroy (&a);
        sc_e2e_destroy (&b);
    }
}

static void
test_out_of_order (void **state)
{
    pair_t *p = *state;
    flight_t fl;
    memset (&fl, 0, sizeof fl);

    //  The responder cannot start, the initiator cannot reply.
    assert_int_equal (sc_e2e_start (p->b, &fl.suite, fl.nonce_i, fl.eph_i), SC_E2E_ESTATE);
    assert_int_equal (sc_e2e_reply (p->a, SUITE, fl.nonce_i, fl.eph_i, fl.nonce_r,
                                    fl.eph_r, fl.sig_r, fl.mac_r), SC_E2E_ESTATE);
    //  And each stays failed: the right first step afterwards fails too.
    assert_int_equal (sc_e2e_start (p->a, &fl.suite, fl.nonce_i, fl.eph_i), SC_E2E_ESTATE);
    assert_int_equal (sc_e2e_reply (p->b, SUITE, fl.nonce_i, fl.eph_i, fl.nonce_r,
                                    fl.eph_r, fl.sig_r, fl.mac_r), SC_E2E_ESTATE);
    assert_false (sc_e2e_ready (p->a));
    assert_false (sc_e2e_ready (p->b));

    //  finish before start; confirm before reply; finish on the
    //  responder; confirm on the initiator.
    sc_e2e_t *a = sc_e2e_new (K->alice, "alice", K->bob_pub, "bob", true);
    assert_non_null (a);
    assert_int_equal (sc_e2e_finish (a, fl.nonce_r, fl.eph_r, fl.sig_r, fl.mac_r,
                                     fl.sig_i, fl.mac_i), SC_E2E_ESTATE);
    assert_int_equal (sc_e2e_start (a, &fl.suite, fl.nonce_i, fl.eph_i), SC_E2E_ESTATE);
    sc_e2e_destroy (&a);

    sc_e2e_t *b = sc_e2e_new (K->bob, "bob", K->alice_pub, "alice", false);
    assert_non_null (b);
    assert_int_equal (sc_e2e_confirm (b, fl.sig_i, fl.mac_i), SC_E2E_ESTATE);
    sc_e2e_destroy (&b);

    a = sc_e2e_new (K->alice, "alice", K->bob_pub, "bob", true);
    b = sc_e2e_new (K->bob, "bob", K->alice_pub, "alice", false);
    assert_non_null (a);
    assert_non_null (b);
    assert_int_equal (sc_e2e_start (a, &fl.suite, fl.nonce_i, fl.eph_i), SC_E2E_OK);
    //  start twice
    flight_t again;
    assert_int_equal (sc_e2e_start (a, &again.suite, again.nonce_i, again.eph_i),
                      SC_E2E_ESTATE);
    //  ... which ends this initiator: the genuine reply no longer helps.
    assert_int_equal (sc_e2e_reply (b, fl.suite, fl.nonce_i, fl.eph_i, fl.nonce_r,
                                    fl.eph_r, fl.sig_r, fl.mac_r), SC_E2E_OK);
    assert_int_equal (sc_e2e_confirm (a, fl.sig_r, fl.mac_r), SC_E2E_ESTATE);
    assert_int_equal (sc_e2e_finish (a, fl.nonce_r, fl.eph_r, fl.sig_r, fl.mac_r,
                                     fl.sig_i, fl.mac_i), SC_E2E_ESTATE);
    assert_false (sc_e2e_ready (a));
    //  reply twice
    assert_int_equal (sc_e2e_reply (b, fl.suite, fl.nonce_i, fl.eph_i, again.nonce_r,
                                    again.eph_r, again.sig_r, again.mac_r), SC_E2E_ESTATE);
    assert_int_equal (sc_e2e_confirm (b, fl.sig_i, fl.mac_i), SC_E2E_ESTATE);
    assert_false (sc_e2e_ready (b));
    sc_e2e_destroy (&a);
    sc_e2e_destroy (&b);

    //  A step after ready.
    a = sc_e2e_new (K->alice, "alice", K->bob_pub, "bob", true);
    b = sc_e2e_new (K->bob, "bob", K->alice_pub, "alice", false);
    assert_non_null (a);
    assert_non_null (b);
    s_exchange (a, b, &fl);
    assert_int_equal (sc_e2e_finish (a, fl.nonce_r, fl.eph_r, fl.sig_r, fl.mac_r,
                                     again.sig_i, again.mac_i), SC_E2E_ESTATE);
    assert_int_equal (sc_e2e_confirm (b, fl.sig_i, fl.mac_i), SC_E2E_ESTATE);
    sc_e2e_destroy (&a);
    sc_e2e_destroy (&b);
}

static void
test_seal_open_before_ready (void **state)
{
    pair_t *p = *state;
    uint8_t box [16 + SC_TAG_LEN], out [16];
    uint64_t n = 0, lost = 0;
    memset (box, 0, sizeof box);
    assert_int_equal (sc_e2e_seal (p->a, (const uint8_t *) "too early", 9, &n, box),
                      SC_E2E_ESTATE);
    assert_int_equal (sc_e2e_seal (p->b, (const uint8_t *) "too early", 9, &n, box),
                      SC_E2E_ESTATE);
    assert_int_equal (sc_e2e_open (p->a, 1, box, sizeof box, out, &lost), SC_E2E_ESTATE);
    assert_int_equal (sc_e2e_open (p->b, 1, box, sizeof box, out, &lost), SC_E2E_ESTATE);
    assert_int_equal (sc_e2e_sent (p->a), 0);
    //  Not failed by it: the exchange still works.
    flight_t fl;
    s_exchange (p->a, p->b, &fl);
    msg_t m;
    s_seal (p->a, "now", &m);
    assert_int_equal (m.n, 1);
    s_open_ok (p->b, &m, "now", 0);
}

static void
test_new_rejects_bad_arguments (void **state)
{
    (void) state;
    sc_key_t *pub_only = sc_key_from_raw (K->alice_pub);
    assert_non_null (pub_only);
    //  Own key without its private half; invalid names.
    assert_null (sc_e2e_new (pub_only, "alice", K->bob_pub, "bob", true));
    assert_null (sc_e2e_new (K->alice, "Alice", K->bob_pub, "bob", true));
    assert_null (sc_e2e_new (K->alice, "alice", K->bob_pub, "", true));
    assert_null (sc_e2e_new (K->alice, "alice", K->bob_pub,
                             "a-name-that-is-longer-than-32-bytes", true));
    sc_key_destroy (&pub_only);
}

int
main (void)
{
    const struct CMUnitTest tests [] = {
        cmocka_unit_test_setup_teardown (test_full_exchange, setup, teardown),
        cmocka_unit_test_setup_teardown (test_ready_order, setup, teardown),
        cmocka_unit_test_setup_teardown (test_messages_both_ways, setup, teardown),
        cmocka_unit_test_setup_teardown (test_replay_rejected, setup, teardown),
        cmocka_unit_test_setup_teardown (test_dropped_message, setup, teardown),
        cmocka_unit_test_setup_teardown (test_skip_limit, setup, teardown),
        cmocka_unit_test_setup_teardown (test_chain_end, setup, teardown),
        cmocka_unit_test_setup_teardown (test_tampered_box, setup, teardown),
        cmocka_unit_test_setup_teardown (test_reflection_rejected, setup, teardown),
        cmocka_unit_test_setup_teardown (test_other_chat_rejected, setup, teardown),
        cmocka_unit_test_setup_teardown (test_per_message_keys, setup, teardown),
        cmocka_unit_test_setup_teardown (test_tampered_handshake_fields, setup, teardown),
        cmocka_unit_test_setup_teardown (test_broker_swaps_key, setup, teardown),
        cmocka_unit_test_setup_teardown (test_lying_broker_safety_number, setup, teardown),
        cmocka_unit_test_setup_teardown (test_kci_rejected, setup, teardown),
        cmocka_unit_test_setup_teardown (test_impostor_responder, setup, teardown),
        cmocka_unit_test_setup_teardown (test_impostor_initiator, setup, teardown),
        cmocka_unit_test_setup_teardown (test_spec_responder, setup, teardown),
        cmocka_unit_test_setup_teardown (test_spec_initiator, setup, teardown),
        cmocka_unit_test_setup_teardown (test_low_order_responder, setup, teardown),
        cmocka_unit_test_setup_teardown (test_low_order_initiator, setup, teardown),
        cmocka_unit_test_setup_teardown (test_wrong_suite, setup, teardown),
        cmocka_unit_test_setup_teardown (test_out_of_order, setup, teardown),
        cmocka_unit_test_setup_teardown (test_seal_open_before_ready, setup, teardown),
        cmocka_unit_test_setup_teardown (test_new_rejects_bad_arguments, setup, teardown),
    };
    return cmocka_run_group_tests (tests, group_setup, group_teardown);
}
