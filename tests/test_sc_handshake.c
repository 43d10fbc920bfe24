/*  test_sc_handshake: the client-broker login handshake, against
    docs/PROTOCOL.md section 5 and crypto/sc_handshake.h.

    Keys come from the real key script (keys/secchat-keys) run in
    temporary directories: one key set with alice and bob, the same CA's
    certificate reissued for another broker name, and a second key set
    with its own CA. Both sides are driven in memory. Some tests play one
    side themselves, computed from the specification with the primitives
    of sc_crypto.h (TH1, the labels, prk and the keys, the AUTH_CLIENT
    box, TH3): those pin the byte layout of section 5 and let an attacker
    send what the library would never make (a correctly signed
    AUTH_BROKER over a low-order key, a box with a malformed plaintext).

    Run from the repository root (the key script is found there).

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

#include "sc_channel.h"
#include "sc_crypto.h"
#include "sc_handshake.h"
#include "sc_key.h"
#include "sc_testkeys.h"
#include "sc_testvec.h"

#define SUITE 1
#define BROKER "secbroker"

//  Decodes a hex literal that must be exactly len bytes long.
static void
s_unhex (const char *hex, uint8_t *out, size_t len)
{
    assert_int_equal (sc_testvec_unhex (hex, out, len), (long) len);
}


//  Everything the tests use, made once for the group.
typedef struct {
    sc_testkeys_t *keys;        //  CA 1: broker "secbroker", alice, bob
    sc_testkeys_t *keys2;       //  CA 2: broker "secbroker"
    sc_ca_t *ca;                //  CA 1
    sc_key_t *broker;           //  CA 1's broker key (private)
    uint8_t broker_pub [SC_PUB_LEN];
    uint8_t *cert;              //  CA 1, "secbroker"
    size_t cert_len;
    uint8_t *cert_other;        //  CA 1, same key, "other"
    size_t cert_other_len;
    sc_key_t *broker2;          //  CA 2's broker key
    uint8_t *cert2;             //  CA 2, "secbroker"
    size_t cert2_len;
    sc_key_t *alice, *bob;      //  private keys
    sc_key_t *alice_pub, *bob_pub;  //  the registry's copies
} fixture_t;

static fixture_t *F;

static int
group_teardown (void **state)
{
    (void) state;
    if (F) {
        sc_ca_destroy (&F->ca);
        sc_key_destroy (&F->broker);
        sc_key_destroy (&F->broker2);
        sc_key_destroy (&F->alice);
        sc_key_destroy (&F->bob);
        sc_key_destroy (&F->alice_pub);
        sc_key_destroy (&F->bob_pub);
        free (F->cert);
        free (F->cert_other);
        free (F->cert2);
        sc_testkeys_destroy (&F->keys);
        sc_testkeys_destroy (&F->keys2);
        free (F);
        F = NULL;
    }
    return 0;
}

static int
group_setup (void **state)
{
    F = calloc (1, sizeof *F);
    if (!F)
        return -1;
    int err = 0;
    F->keys = sc_testkeys_new (NULL, "alice", "bob", NULL);
    F->keys2 = sc_testkeys_new (NULL, NULL);
    if (!F->keys || !F->keys2)
        goto failed;
    F->ca = sc_ca_load (sc_testkeys_path (F->keys, "ca.pem"), &err);
    F->broker = sc_key_load_private (sc_testkeys_path (F->keys, "broker.key"), NULL, &err);
    F->broker2 = sc_key_load_private (sc_testkeys_path (F->keys2, "broker.key"), NULL, &err);
    F->alice = sc_testkeys_user_key (F->keys, "alice");
    F->bob = sc_testkeys_user_key (F->keys, "bob");
    F->alice_pub = sc_testkeys_user_pub (F->keys, "alice");
    F->bob_pub = sc_testkeys_user_pub (F->keys, "bob");
    if (!F->ca || !F->broker || !F->broker2 || !F->alice || !F->bob
        || !F->alice_pub || !F->bob_pub
        || sc_key_public_raw (F->broker, F->broker_pub)
        || sc_cert_load_der (sc_testkeys_path (F->keys, "broker.crt"), &F->cert, &F->cert_len)
        || sc_cert_load_der (sc_testkeys_path (F->keys2, "broker.crt"), &F->cert2,
                             &F->cert2_len))
        goto failed;
    //  The same CA and broker key, the certificate reissued for "other".
    if (sc_testkeys_reissue (F->keys, "other")
        || sc_cert_load_der (sc_testkeys_path (F->keys, "broker.crt"), &F->cert_other,
                             &F->cert_other_len))
        goto failed;
    return 0;
failed:
    fprintf (stderr, "test_sc_handshake: fixture failed (run from the repository root)\n");
    group_teardown (state);
    return -1;
}


//  ---------------------------------------------------------------------
//  Driving both sides

//  The fields of the three handshake messages.
typedef struct {
    uint8_t suite, nonce_c [SC_RANDOM_LEN], eph_c [SC_PUB_LEN];
    uint8_t nonce_b [SC_RANDOM_LEN], eph_b [SC_PUB_LEN];
    uint8_t sig_b [SC_SIG_LEN], mac_b [SC_HASH_LEN];
    uint8_t box [SC_HS_ENROL_BOX_LEN + 8];
    size_t box_len;
} flight_t;

typedef struct {
    sc_handshake_t *client;
    sc_handshake_t *broker;
    flight_t fl;
} pair_t;

//  A client `name` with `key`, trusting F->ca and expecting `expect`; a
//  broker with `bkey` and `cert`.
static void
s_pair (pair_t *p, const sc_key_t *key, const char *name, const char *expect,
        const sc_key_t *bkey, const uint8_t *cert, size_t cert_len)
{
    memset (p, 0, sizeof *p);
    p->client = sc_handshake_new_client (key, name, F->ca, expect);
    p->broker = sc_handshake_new_broker (bkey, cert, cert_len);
    assert_non_null (p->client);
    assert_non_null (p->broker);
}

static void
s_pair_default (pair_t *p)
{
    s_pair (p, F->alice, "alice", BROKER, F->broker, F->cert, F->cert_len);
}

static void
s_pair_destroy (pair_t *p)
{
    sc_handshake_destroy (&p->client);
    sc_handshake_destroy (&p->broker);
    assert_null (p->client);
    assert_null (p->broker);
}

//  HELLO and AUTH_BROKER, both asserted to succeed.
static void
s_hello (pair_t *p)
{
    flight_t *fl = &p->fl;
    assert_int_equal (sc_handshake_client_hello (p->client, &fl->suite, fl->nonce_c,
                                                 fl->eph_c), SC_HS_OK);
    assert_int_equal (fl->suite, SUITE);
    assert_int_equal (sc_handshake_broker_hello (p->broker, fl->suite, fl->nonce_c,
                                                 fl->eph_c, fl->nonce_b, fl->eph_b,
                                                 fl->sig_b, fl->mac_b), SC_HS_OK);
}

static int
s_client_auth (pair_t *p, const uint8_t *cert, size_t cert_len, int *cert_err)
{
    flight_t *fl = &p->fl;
    fl->box_len = 0;
    return sc_handshake_client_auth (p->client, fl->nonce_b, fl->eph_b, cert, cert_len,
                                     fl->sig_b, fl->mac_b, fl->box, &fl->box_len,
                                     cert_err);
}

//  The whole login of p's client, every step asserted; keys out.
static void
s_login (pair_t *p, const sc_key_t *client_key, const char *name,
         sc_session_keys_t *ck, sc_session_keys_t *bk)
{
    s_hello (p);
    int cert_err = 12345;
    assert_int_equal (s_client_auth (p, F->cert, F->cert_len, &cert_err), SC_HS_OK);
    assert_int_equal (cert_err, SC_KEY_OK);
    char got [SC_HS_NAME_MAX + 1];
    assert_int_equal (sc_handshake_broker_open (p->broker, p->fl.box, p->fl.box_len, got),
                      SC_HS_OK);
    assert_string_equal (got, name);
    assert_int_equal (sc_handshake_broker_verify (p->broker, client_key), SC_HS_OK);
    assert_int_equal (sc_handshake_keys (p->client, ck), SC_HS_OK);
    assert_int_equal (sc_handshake_keys (p->broker, bk), SC_HS_OK);
}


//  ---------------------------------------------------------------------
//  The specification's computations, done here independently

static void
s_put_u32 (uint8_t *p, uint32_t v)
{
    p [0] = (uint8_t) (v >> 24);
    p [1] = (uint8_t) (v >> 16);
    p [2] = (uint8_t) (v >> 8);
    p [3] = (uint8_t) v;
}

//  What one side of the handshake computes, from the specification.
typedef struct {
    uint8_t e_priv [SC_KEY_LEN];
    uint8_t ss [SC_KEY_LEN];
    uint8_t th1 [SC_HASH_LEN], th2 [SC_HASH_LEN], th3 [SC_HASH_LEN];
    uint8_t prk [SC_HASH_LEN];
    uint8_t k_box [SC_KEY_LEN], k_fb [SC_KEY_LEN], k_fc [SC_KEY_LEN];
    uint8_t k_c2b [SC_KEY_LEN], k_b2c [SC_KEY_LEN];
} spec_t;

//  TH1 = H("secchat/1 client-broker" || 0x00 || u8(1) || u8(suite)
//          || nonce_C || eph_C || nonce_B || eph_B || u32(len(cert)) || cert)
static void
s_spec_th1 (const flight_t *fl, uint8_t suite, const uint8_t *cert, size_t cert_len,
            uint8_t th1 [SC_HASH_LEN])
{
    static const char label [] = "secchat/1 client-broker";
    size_t ll = strlen (label);
    size_t len = ll + 3 + 2 * SC_RANDOM_LEN + 2 * SC_PUB_LEN + 4 + cert_len;
    uint8_t *buf = malloc (len), *p = buf;
    assert_non_null (buf);
    memcpy (p, label, ll);
    p += ll;
    *p++ = 0x00;
    *p++ = 1;
    *p++ = suite;
    memcpy (p, fl->nonce_c, SC_RANDOM_LEN);
    p += SC_RANDOM_LEN;
    memcpy (p, fl->eph_c, SC_PUB_LEN);
    p += SC_PUB_LEN;
    memcpy (p, fl->nonce_b, SC_RANDOM_LEN);
    p += SC_RANDOM_LEN;
    memcpy (p, fl->eph_b, SC_PUB_LEN);
    p += SC_PUB_LEN;
    s_put_u32 (p, (uint32_t) cert_len);
    p += 4;
    memcpy (p, cert, cert_len);
    assert_int_equal (sc_sha256 (buf, len, th1), 0);
    free (buf);
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

//  prk and the handshake keys from ss and TH1.
static void
s_spec_schedule (spec_t *s)
{
    assert_int_equal (sc_hkdf_extract (s->th1, SC_HASH_LEN, s->ss, SC_KEY_LEN, s->prk), 0);
    s_expand (s->prk, "secchat/1 cb box c2b", NULL, 0, s->k_box);
    s_expand (s->prk, "secchat/1 cb finished broker", NULL, 0, s->k_fb);
    s_expand (s->prk, "secchat/1 cb finished client", NULL, 0, s->k_fc);
}

//  H(a || b)
static void
s_hash2 (const uint8_t *a, size_t alen, const uint8_t *b, size_t blen,
         uint8_t out [SC_HASH_LEN])
{
    sc_hash_t *h = sc_hash_new ();
    assert_non_null (h);
    assert_int_equal (sc_hash_update (h, a, alen), 0);
    assert_int_equal (sc_hash_update (h, b, blen), 0);
    assert_int_equal (sc_hash_peek (h, out), 0);
    sc_hash_destroy (&h);
}

//  label || 0x00 || data
static size_t
s_labelled (const char *label, const uint8_t *data, size_t len, uint8_t *msg)
{
    size_t ll = strlen (label);
    memcpy (msg, label, ll);
    msg [ll] = 0x00;
    memcpy (msg + ll + 1, data, len);
    return ll + 1 + len;
}

static bool
s_verifies (const sc_key_t *key, const char *label, const uint8_t *data, size_t len,
            const uint8_t sig [SC_SIG_LEN])
{
    uint8_t msg [256];
    assert_true (strlen (label) + 1 + len <= sizeof msg);
    size_t mlen = s_labelled (label, data, len, msg);
    return sc_key_verify (key, msg, mlen, sig, SC_SIG_LEN) == 0;
}

static void
s_sign (const sc_key_t *key, const char *label, const uint8_t *data, size_t len,
        uint8_t sig [SC_SIG_LEN])
{
    uint8_t msg [256];
    assert_true (strlen (label) + 1 + len <= sizeof msg);
    size_t mlen = s_labelled (label, data, len, msg);
    assert_int_equal (sc_key_sign (key, msg, mlen, sig), 0);
}

//  TH2 || L || n
static size_t
s_th2_name (const uint8_t th2 [SC_HASH_LEN], const char *name, size_t name_len,
            uint8_t *out)
{
    memcpy (out, th2, SC_HASH_LEN);
    out [SC_HASH_LEN] = (uint8_t) name_len;
    memcpy (out + SC_HASH_LEN + 1, name, name_len);
    return SC_HASH_LEN + 1 + name_len;
}

//  What the spec client puts in its box, with knobs for tests.
typedef struct {
    const char *name;           //  the name in the box (n)
    size_t name_len;            //  L as written (normally strlen (name))
    const char *signed_name;    //  the name signed (normally n)
    const sc_key_t *signer;     //  sk_C
    bool random_sig;            //  sig_C: 64 random bytes, no key used
    const char *label;          //  the signature label
    bool bad_mac;               //  flip a bit of mac_C
    size_t extra;               //  bytes appended to the plaintext
    uint8_t pad_byte;           //  what pads the name (normally 0)
    bool bad_nonce;             //  nonce 0..01 instead of 12 zero bytes
    bool bad_ad;                //  AD = TH1 instead of TH2
} box_opts_t;

//  sig_C, TH3, mac_C and the box, from the specification.
static void
s_spec_box (spec_t *s, const box_opts_t *o, flight_t *fl)
{
    const char *signed_name = o->signed_name ? o->signed_name : o->name;
    uint8_t part [SC_HASH_LEN + 1 + 64];
    size_t part_len = s_th2_name (s->th2, signed_name, strlen (signed_name), part);
    uint8_t sig_c [SC_SIG_LEN], mac_c [SC_HASH_LEN];
    if (o->random_sig)
        assert_int_equal (sc_random (sig_c, SC_SIG_LEN), 0);
    else
        s_sign (o->signer, o->label ? o->label : "secchat/1 cb client signature",
                part, part_len, sig_c);
    //  TH3 = H(TH2 || L || n || sig_C)
    uint8_t th3_in [SC_HASH_LEN + 1 + 64 + SC_SIG_LEN];
    size_t th3_len = s_th2_name (s->th2, o->name, o->name_len, th3_in);
    memcpy (th3_in + th3_len, sig_c, SC_SIG_LEN);
    assert_int_equal (sc_sha256 (th3_in, th3_len + SC_SIG_LEN, s->th3), 0);
    assert_int_equal (sc_hmac (s->k_fc, s->th3, SC_HASH_LEN, mac_c), 0);
    if (o->bad_mac)
        mac_c [7] ^= 0x10;
    //  pt = L || n || zeros to 32 bytes || sig_C || mac_C
    uint8_t pt [1 + 64 + SC_SIG_LEN + SC_HASH_LEN + 16];
    size_t n = 0;
    pt [n++] = (uint8_t) o->name_len;
    memcpy (pt + n, o->name, strlen (o->name));
    n += strlen (o->name);
    for (size_t i = strlen (o->name); i < SC_HS_NAME_MAX; i++)
        pt [n++] = o->pad_byte;
    memcpy (pt + n, sig_c, SC_SIG_LEN);
    n += SC_SIG_LEN;
    memcpy (pt + n, mac_c, SC_HASH_LEN);
    n += SC_HASH_LEN;
    assert_true (o->extra <= 16);
    memset (pt + n, 0, o->extra);
    n += o->extra;
    uint8_t nonce [SC_NONCE_LEN] = { 0 };
    if (o->bad_nonce)
        nonce [SC_NONCE_LEN - 1] = 1;
    assert_true (n + SC_TAG_LEN <= sizeof fl->box);
    assert_int_equal (sc_aead_seal (s->k_box, nonce, o->bad_ad ? s->th1 : s->th2,
                                    SC_HASH_LEN, pt, n, fl->box), 0);
    fl->box_len = n + SC_TAG_LEN;
    //  sid and the session keys
    s_expand (s->prk, "secchat/1 cb session c2b", s->th3, SC_HASH_LEN, s->k_c2b);
    s_expand (s->prk, "secchat/1 cb session b2c", s->th3, SC_HASH_LEN, s->k_b2c);
}

//  The client's first half from the specification against a genuine
//  broker: HELLO, AUTH_BROKER, then ss, TH1, the keys and TH2.
static void
s_spec_client_hello (spec_t *s, flight_t *fl, sc_handshake_t *broker)
{
    fl->suite = SUITE;
    assert_int_equal (sc_random (fl->nonce_c, SC_RANDOM_LEN), 0);
    assert_int_equal (sc_x25519_keygen (s->e_priv, fl->eph_c), 0);
    assert_int_equal (sc_handshake_broker_hello (broker, fl->suite, fl->nonce_c, fl->eph_c,
                                                 fl->nonce_b, fl->eph_b, fl->sig_b,
                                                 fl->mac_b), SC_HS_OK);
    assert_int_equal (sc_x25519 (s->e_priv, fl->eph_b, s->ss), 0);
    s_spec_th1 (fl, SUITE, F->cert, F->cert_len, s->th1);
    s_spec_schedule (s);
    s_hash2 (s->th1, SC_HASH_LEN, fl->sig_b, SC_SIG_LEN, s->th2);
}

//  AUTH_BROKER from the specification (cert F->cert) for the HELLO in fl;
//  ss given (the broker's X25519 result, or what a cheating broker
//  claims). sig_B by `signer`, or 64 random bytes when it is NULL (an
//  impostor without any broker key); mac_B right for that sig_B.
static void
s_spec_auth_broker_by (spec_t *s, flight_t *fl, const sc_key_t *signer)
{
    s_spec_th1 (fl, SUITE, F->cert, F->cert_len, s->th1);
    s_spec_schedule (s);
    if (signer)
        s_sign (signer, "secchat/1 cb broker signature", s->th1, SC_HASH_LEN, fl->sig_b);
    else
        assert_int_equal (sc_random (fl->sig_b, SC_SIG_LEN), 0);
    s_hash2 (s->th1, SC_HASH_LEN, fl->sig_b, SC_SIG_LEN, s->th2);
    assert_int_equal (sc_hmac (s->k_fb, s->th2, SC_HASH_LEN, fl->mac_b), 0);
}

//  The same signed with the broker's real key.
static void
s_spec_auth_broker (spec_t *s, flight_t *fl)
{
    s_spec_auth_broker_by (s, fl, F->broker);
}


//  ---------------------------------------------------------------------
//  Success

static void
test_login_success (void **state)
{
    (void) state;
    pair_t p;
    s_pair_default (&p);
    assert_null (sc_handshake_broker_key (p.client));
    sc_session_keys_t ck, bk;
    s_login (&p, F->alice_pub, "alice", &ck, &bk);

    //  Client send = broker recv and vice versa; one sid.
    assert_memory_equal (ck.k_send, bk.k_recv, SC_KEY_LEN);
    assert_memory_equal (ck.k_recv, bk.k_send, SC_KEY_LEN);
    assert_memory_equal (ck.sid, bk.sid, SC_HASH_LEN);
    assert_memory_not_equal (ck.k_send, ck.k_recv, SC_KEY_LEN);
    //  The box is L || n padded to 32 bytes || sig_C || mac_C plus the
    //  tag, whatever the name's length.
    assert_int_equal (p.fl.box_len, 1 + 32 + 96 + SC_TAG_LEN);

    //  The keys are handed over once.
    sc_session_keys_t again;
    assert_int_equal (sc_handshake_keys (p.client, &again), SC_HS_ESTATE);
    assert_int_equal (sc_handshake_keys (p.broker, &again), SC_HS_ESTATE);

    //  The client knows the broker's key from the certificate.
    const sc_key_t *bkey = sc_handshake_broker_key (p.client);
    assert_non_null (bkey);
    uint8_t raw [SC_PUB_LEN];
    assert_int_equal (sc_key_public_raw (bkey, raw), 0);
    assert_memory_equal (raw, F->broker_pub, SC_PUB_LEN);
    assert_false (sc_key_has_private (bkey));

    //  The keys work as a channel pair.
    sc_channel_t *c = sc_channel_new (&ck);
    sc_channel_t *b = sc_channel_new (&bk);
    assert_non_null (c);
    assert_non_null (b);
    uint8_t body [5 + SC_TAG_LEN], out [5];
    uint64_t seq;
    assert_int_equal (sc_channel_seal (b, 1, 15, (const uint8_t *) "hello", 5, &seq, body),
                      SC_CHANNEL_OK);
    assert_int_equal (sc_channel_open (c, 1, 15, seq, body, sizeof body, out), SC_CHANNEL_OK);
    assert_memory_equal (out, "hello", 5);
    sc_channel_destroy (&c);
    sc_channel_destroy (&b);

    //  A second login of the same user gets other keys and another sid.
    pair_t p2;
    s_pair_default (&p2);
    sc_session_keys_t ck2, bk2;
    s_login (&p2, F->alice_pub, "alice", &ck2, &bk2);
    assert_memory_not_equal (ck.sid, ck2.sid, SC_HASH_LEN);
    assert_memory_not_equal (ck.k_send, ck2.k_send, SC_KEY_LEN);
    assert_memory_not_equal (p.fl.eph_c, p2.fl.eph_c, SC_PUB_LEN);
    assert_memory_not_equal (p.fl.nonce_b, p2.fl.nonce_b, SC_RANDOM_LEN);

    s_pair_destroy (&p);
    s_pair_destroy (&p2);
    sc_wipe (&ck, sizeof ck);
    sc_wipe (&bk, sizeof bk);
}


//  ---------------------------------------------------------------------
//  The broker's certificate

static void
test_cert_other_ca (void **state)
{
    (void) state;
    pair_t p;
    s_pair (&p, F->alice, "alice", BROKER, F->broker2, F->cert2, F->cert2_len);
    s_hello (&p);
    int cert_err = SC_KEY_OK;
    assert_int_equal (s_client_auth (&p, F->cert2, F->cert2_len, &cert_err), SC_HS_ECERT);
    assert_int_equal (cert_err, SC_KEY_ECHAIN);
    //  No box came out, and the handshake is over.
    assert_int_equal (p.fl.box_len, 0);
    sc_session_keys_t k;
    assert_int_equal (sc_handshake_keys (p.client, &k), SC_HS_ESTATE);
    s_pair_destroy (&p);

    //  cert_err may be NULL.
    s_pair (&p, F->alice, "alice", BROKER, F->broker2, F->cert2, F->cert2_len);
    s_hello (&p);
    assert_int_equal (s_client_auth (&p, F->cert2, F->cert2_len, NULL), SC_HS_ECERT);
    s_pair_destroy (&p);
}

static void
test_cert_other_name (void **state)
{
    (void) state;
    pair_t p;
    //  A certificate of the right CA, for "other"; the client expects
    //  "secbroker".
    s_pair (&p, F->alice, "alice", BROKER, F->broker, F->cert_other, F->cert_other_len);
    s_hello (&p);
    int cert_err = SC_KEY_OK;
    assert_int_equal (s_client_auth (&p, F->cert_other, F->cert_other_len, &cert_err),
                      SC_HS_ECERT);
    assert_int_equal (cert_err, SC_KEY_ENAME);
    s_pair_destroy (&p);

    //  Control: the same certificate is fine for a client expecting
    //  "other", so the refusal above was the name.
    s_pair (&p, F->alice, "alice", "other", F->broker, F->cert_other, F->cert_other_len);
    s_hello (&p);
    cert_err = 12345;
    assert_int_equal (s_client_auth (&p, F->cert_other, F->cert_other_len, &cert_err),
                      SC_HS_OK);
    assert_int_equal (cert_err, SC_KEY_OK);
    char name [SC_HS_NAME_MAX + 1];
    assert_int_equal (sc_handshake_broker_open (p.broker, p.fl.box, p.fl.box_len, name),
                      SC_HS_OK);
    assert_int_equal (sc_handshake_broker_verify (p.broker, F->alice_pub), SC_HS_OK);
    s_pair_destroy (&p);
}


//  ---------------------------------------------------------------------
//  AUTH_BROKER and AUTH_CLIENT tampered with

static void
test_auth_broker_tampered (void **state)
{
    (void) state;
    enum { NONCE_B, EPH_B, CERT, SIG, MAC, FIELDS };
    static const int expected [FIELDS] = {
        SC_HS_ESIG, SC_HS_ESIG, SC_HS_ECERT, SC_HS_ESIG, SC_HS_EMAC
    };
    const size_t sizes [FIELDS] = {
        SC_RANDOM_LEN, SC_PUB_LEN, F->cert_len, SC_SIG_LEN, SC_HASH_LEN
    };
    uint8_t *cert = malloc (F->cert_len);
    assert_non_null (cert);
    for (int field = 0; field < FIELDS; field++) {
        size_t size = sizes [field];
        //  Every byte, a different bit each time (for the certificate
        //  every third byte).
        size_t step = field == CERT ? 3 : 1;
        for (size_t pos = 0; pos < size; pos += step) {
            pair_t p;
            s_pair_default (&p);
            s_hello (&p);
            memcpy (cert, F->cert, F->cert_len);
            uint8_t *target [FIELDS] = { p.fl.nonce_b, p.fl.eph_b, cert, p.fl.sig_b,
                                         p.fl.mac_b };
            target [field][pos] ^= (uint8_t) (1u << (pos % 8));
            int cert_err = 12345;
            int rc = s_client_auth (&p, cert, F->cert_len, &cert_err);
            if (rc != expected [field])
                print_error ("field %d byte %zu: %s\n", field, pos, sc_hs_strerror (rc));
            assert_int_equal (rc, expected [field]);
            if (field == CERT)
                assert_true (cert_err == SC_KEY_ECHAIN || cert_err == SC_KEY_EFORMAT);
            else
                assert_int_equal (cert_err, SC_KEY_OK);
            assert_int_equal (p.fl.box_len, 0);
            //  Failed for good: the genuine AUTH_BROKER does not help now.
            target [field][pos] ^= (uint8_t) (1u << (pos % 8));
            assert_int_equal (s_client_auth (&p, F->cert, F->cert_len, NULL), SC_HS_ESTATE);
            s_pair_destroy (&p);
        }
    }
    free (cert);
}

static void
test_auth_client_box_tampered (void **state)
{
    (void) state;
    size_t box_len = 1 + 32 + 96 + SC_TAG_LEN;
    char name [SC_HS_NAME_MAX + 1];
    for (size_t pos = 0; pos < box_len; pos++) {
        pair_t p;
        s_pair_default (&p);
        s_hello (&p);
        assert_int_equal (s_client_auth (&p, F->cert, F->cert_len, NULL), SC_HS_OK);
        assert_int_equal (p.fl.box_len, box_len);
        uint8_t bit = (uint8_t) (1u << (pos % 8));
        p.fl.box [pos] ^= bit;
        assert_int_equal (sc_handshake_broker_open (p.broker, p.fl.box, p.fl.box_len, name),
                          SC_HS_EBOX);
        //  Failed for good.
        p.fl.box [pos] ^= bit;
        assert_int_equal (sc_handshake_broker_open (p.broker, p.fl.box, p.fl.box_len, name),
                          SC_HS_ESTATE);
        assert_int_equal (sc_handshake_broker_verify (p.broker, F->alice_pub), SC_HS_ESTATE);
        sc_session_keys_t k;
        assert_int_equal (sc_handshake_keys (p.broker, &k), SC_HS_ESTATE);
        s_pair_destroy (&p);
    }
    //  Truncated and extended boxes.
    static const size_t cut [] = { 0, 1, SC_TAG_LEN, 17, 100 };
    for (size_t k = 0; k <= sizeof cut / sizeof cut [0]; k++) {
        pair_t p;
        s_pair_default (&p);
        s_hello (&p);
        assert_int_equal (s_client_auth (&p, F->cert, F->cert_len, NULL), SC_HS_OK);
        size_t len = k < sizeof cut / sizeof cut [0] ? p.fl.box_len - 1 - cut [k]
                                                     : p.fl.box_len + 1;
        if (len > p.fl.box_len)
            p.fl.box [p.fl.box_len] = 0;
        assert_int_equal (sc_handshake_broker_open (p.broker, p.fl.box, len, name),
                          SC_HS_EBOX);
        s_pair_destroy (&p);
    }
}

//  The AUTH_CLIENT plaintext must be exactly 1 + L + 96 bytes with a
//  valid name; boxes made here from the specification with everything
//  right but one thing.
static void
test_auth_client_box_contents (void **state)
{
    (void) state;
    struct {
        box_opts_t o;
        int open_rc;            //  broker_open
        int verify_rc;          //  broker_verify (when open succeeded)
    } cases [] = {
        //  Control: everything right.
        { { .name = "alice", .name_len = 5 }, SC_HS_OK, SC_HS_OK },
        //  L says 4, 5 name bytes follow: 1 byte too many.
        { { .name = "alice", .name_len = 4 }, SC_HS_EBOX, 0 },
        //  L says 6, 5 follow.
        { { .name = "alice", .name_len = 6 }, SC_HS_EBOX, 0 },
        //  L = 0 (and no name).
        { { .name = "", .name_len = 0, .signed_name = "alice" }, SC_HS_EBOX, 0 },
        //  A byte after mac_C.
        { { .name = "alice", .name_len = 5, .extra = 1 }, SC_HS_EBOX, 0 },
        //  The padding after the name is not zeros.
        { { .name = "alice", .name_len = 5, .pad_byte = 1 }, SC_HS_EBOX, 0 },
        //  Not a valid name.
        { { .name = "Alice", .name_len = 5 }, SC_HS_EBOX, 0 },
        { { .name = "al ce", .name_len = 5 }, SC_HS_EBOX, 0 },
        { { .name = "../alice", .name_len = 8 }, SC_HS_EBOX, 0 },
        //  33 bytes.
        { { .name = "abcdefghijklmnopqrstuvwxyz0123456", .name_len = 33 }, SC_HS_EBOX, 0 },
        //  The box sealed with another nonce, another AD.
        { { .name = "alice", .name_len = 5, .bad_nonce = true }, SC_HS_EBOX, 0 },
        { { .name = "alice", .name_len = 5, .bad_ad = true }, SC_HS_EBOX, 0 },
        //  sig_C over another name than the one in the box.
        { { .name = "alice", .name_len = 5, .signed_name = "bob" }, SC_HS_OK, SC_HS_ESIG },
        //  sig_C under the broker's label (a reflected broker-style
        //  signature), by alice.
        { { .name = "alice", .name_len = 5, .label = "secchat/1 cb broker signature" },
          SC_HS_OK, SC_HS_ESIG },
        //  mac_C wrong, signature right.
        { { .name = "alice", .name_len = 5, .bad_mac = true }, SC_HS_OK, SC_HS_EMAC },
        //  A 32-byte name is fine (the longest).
        { { .name = "abcdefghijklmnopqrstuvwxyz012345", .name_len = 32 },
          SC_HS_OK, SC_HS_OK },
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases [0]; k++) {
        sc_handshake_t *broker = sc_handshake_new_broker (F->broker, F->cert, F->cert_len);
        assert_non_null (broker);
        spec_t s;
        flight_t fl;
        s_spec_client_hello (&s, &fl, broker);
        box_opts_t o = cases [k].o;
        if (!o.signer)
            o.signer = F->alice;
        s_spec_box (&s, &o, &fl);
        char name [SC_HS_NAME_MAX + 1];
        int rc = sc_handshake_broker_open (broker, fl.box, fl.box_len, name);
        if (rc != cases [k].open_rc)
            print_error ("case %zu: open %s\n", k, sc_hs_strerror (rc));
        assert_int_equal (rc, cases [k].open_rc);
        if (rc == SC_HS_OK) {
            assert_int_equal (strlen (name), o.name_len);
            assert_memory_equal (name, o.name, o.name_len);
            rc = sc_handshake_broker_verify (broker, F->alice_pub);
            if (rc != cases [k].verify_rc)
                print_error ("case %zu: verify %s\n", k, sc_hs_strerror (rc));
            assert_int_equal (rc, cases [k].verify_rc);
        }
        sc_session_keys_t keys;
        assert_int_equal (sc_handshake_keys (broker, &keys),
                          rc == SC_HS_OK ? SC_HS_OK : SC_HS_ESTATE);
        sc_handshake_destroy (&broker);
    }
}


//  ---------------------------------------------------------------------
//  Invalid HELLO and AUTH_BROKER values

static void
test_unsupported_suite (void **state)
{
    (void) state;
    static const uint8_t suites [] = { 0, 2, 3, 0x81, 255 };
    for (size_t k = 0; k < sizeof suites; k++) {
        pair_t p;
        s_pair_default (&p);
        flight_t *fl = &p.fl;
        assert_int_equal (sc_handshake_client_hello (p.client, &fl->suite, fl->nonce_c,
                                                     fl->eph_c), SC_HS_OK);
        assert_int_equal (sc_handshake_broker_hello (p.broker, suites [k], fl->nonce_c,
                                                     fl->eph_c, fl->nonce_b, fl->eph_b,
                                                     fl->sig_b, fl->mac_b), SC_HS_ESUITE);
        //  Failed for good: the right suite afterwards is refused.
        assert_int_equal (sc_handshake_broker_hello (p.broker, SUITE, fl->nonce_c,
                                                     fl->eph_c, fl->nonce_b, fl->eph_b,
                                                     fl->sig_b, fl->mac_b), SC_HS_ESTATE);
        s_pair_destroy (&p);
    }
}

//  A low-order eph_C in HELLO: the broker's X25519 result is all zero.
static void
test_low_order_hello (void **state)
{
    (void) state;
    for (size_t k = 0; k < SC_TESTVEC_LOW_ORDER; k++) {
        sc_handshake_t *broker = sc_handshake_new_broker (F->broker, F->cert, F->cert_len);
        assert_non_null (broker);
        flight_t fl;
        memset (&fl, 0, sizeof fl);
        assert_int_equal (sc_random (fl.nonce_c, SC_RANDOM_LEN), 0);
        s_unhex (sc_testvec_low_order [k], fl.eph_c, SC_PUB_LEN);
        assert_int_equal (sc_handshake_broker_hello (broker, SUITE, fl.nonce_c, fl.eph_c,
                                                     fl.nonce_b, fl.eph_b, fl.sig_b,
                                                     fl.mac_b), SC_HS_EKEY);
        char name [SC_HS_NAME_MAX + 1];
        assert_int_equal (sc_handshake_broker_open (broker, fl.box, 120, name), SC_HS_ESTATE);
        sc_handshake_destroy (&broker);
    }
}

//  A low-order eph_B in an AUTH_BROKER that is otherwise perfect: signed
//  with the broker's real key over the TH1 that holds it, mac_B made
//  with the keys of the all-zero secret (what a broker key thief or a
//  buggy broker could send). The client must still abort on the
//  all-zero secret.
static void
test_low_order_auth_broker (void **state)
{
    (void) state;
    for (size_t k = 0; k < SC_TESTVEC_LOW_ORDER; k++) {
        pair_t p;
        s_pair_default (&p);
        flight_t *fl = &p.fl;
        assert_int_equal (sc_handshake_client_hello (p.client, &fl->suite, fl->nonce_c,
                                                     fl->eph_c), SC_HS_OK);
        spec_t s;
        assert_int_equal (sc_random (fl->nonce_b, SC_RANDOM_LEN), 0);
        s_unhex (sc_testvec_low_order [k], fl->eph_b, SC_PUB_LEN);
        memset (s.ss, 0, sizeof s.ss);
        s_spec_auth_broker (&s, fl);
        assert_int_equal (s_client_auth (&p, F->cert, F->cert_len, NULL), SC_HS_EKEY);
        assert_int_equal (fl->box_len, 0);
        s_pair_destroy (&p);
    }
}


//  ---------------------------------------------------------------------
//  Authentication of the client

//  Known user, wrong key: alice's box checked with bob's registered key.
static void
test_wrong_client_key (void **state)
{
    (void) state;
    pair_t p;
    s_pair_default (&p);
    s_hello (&p);
    assert_int_equal (s_client_auth (&p, F->cert, F->cert_len, NULL), SC_HS_OK);
    char name [SC_HS_NAME_MAX + 1];
    assert_int_equal (sc_handshake_broker_open (p.broker, p.fl.box, p.fl.box_len, name),
                      SC_HS_OK);
    assert_string_equal (name, "alice");
    assert_int_equal (sc_handshake_broker_verify (p.broker, F->bob_pub), SC_HS_ESIG);
    //  Failed for good: the right key afterwards does not help.
    assert_int_equal (sc_handshake_broker_verify (p.broker, F->alice_pub), SC_HS_ESTATE);
    sc_session_keys_t k;
    assert_int_equal (sc_handshake_keys (p.broker, &k), SC_HS_ESTATE);
    s_pair_destroy (&p);

    //  And a client claiming to be bob with alice's key.
    s_pair (&p, F->alice, "bob", BROKER, F->broker, F->cert, F->cert_len);
    s_hello (&p);
    assert_int_equal (s_client_auth (&p, F->cert, F->cert_len, NULL), SC_HS_OK);
    assert_int_equal (sc_handshake_broker_open (p.broker, p.fl.box, p.fl.box_len, name),
                      SC_HS_OK);
    assert_string_equal (name, "bob");
    assert_int_equal (sc_handshake_broker_verify (p.broker, F->bob_pub), SC_HS_ESIG);
    s_pair_destroy (&p);
}

//  A HELLO and AUTH_CLIENT recorded from a completed login, replayed to a
//  new broker handshake: its nonce_B and eph_B are fresh, so the box
//  does not open. And an AUTH_BROKER replayed to a new client.
static void
test_replay (void **state)
{
    (void) state;
    pair_t p;
    s_pair_default (&p);
    sc_session_keys_t ck, bk;
    s_login (&p, F->alice_pub, "alice", &ck, &bk);
    flight_t rec = p.fl;
    s_pair_destroy (&p);

    sc_handshake_t *broker = sc_handshake_new_broker (F->broker, F->cert, F->cert_len);
    assert_non_null (broker);
    flight_t fl = rec;
    assert_int_equal (sc_handshake_broker_hello (broker, rec.suite, rec.nonce_c, rec.eph_c,
                                                 fl.nonce_b, fl.eph_b, fl.sig_b, fl.mac_b),
                      SC_HS_OK);
    assert_memory_not_equal (fl.nonce_b, rec.nonce_b, SC_RANDOM_LEN);
    assert_memory_not_equal (fl.eph_b, rec.eph_b, SC_PUB_LEN);
    char name [SC_HS_NAME_MAX + 1];
    assert_int_equal (sc_handshake_broker_open (broker, rec.box, rec.box_len, name),
                      SC_HS_EBOX);
    sc_handshake_destroy (&broker);

    //  The recorded AUTH_BROKER, to a new client (fresh nonce_C, eph_C).
    sc_handshake_t *client = sc_handshake_new_client (F->alice, "alice", F->ca, BROKER);
    assert_non_null (client);
    assert_int_equal (sc_handshake_client_hello (client, &fl.suite, fl.nonce_c, fl.eph_c),
                      SC_HS_OK);
    size_t box_len = 0;
    assert_int_equal (sc_handshake_client_auth (client, rec.nonce_b, rec.eph_b, F->cert,
                                                F->cert_len, rec.sig_b, rec.mac_b, fl.box,
                                                &box_len, NULL), SC_HS_ESIG);
    sc_handshake_destroy (&client);
}


//  ---------------------------------------------------------------------
//  Each signature against the attack it is there for

//  An impostor broker: it shows the real broker's certificate (public),
//  but holds no key the CA certified, so its sig_B is 64 random bytes, or
//  a valid signature by a key of its own (the other CA's broker). It
//  made e_B itself, so ss, TH1, k_fB, TH2 and mac_B are all right. Only
//  the check of sig_B stands between it and a client that would log in
//  and talk to it: the client refuses it with the signature error, no box
//  comes out, and the handshake is over.
static void
test_impostor_broker (void **state)
{
    (void) state;
    const sc_key_t *signers [] = { NULL, F->broker2, F->alice };
    for (size_t k = 0; k < sizeof signers / sizeof signers [0]; k++) {
        pair_t p;
        s_pair_default (&p);
        flight_t *fl = &p.fl;
        assert_int_equal (sc_handshake_client_hello (p.client, &fl->suite, fl->nonce_c,
                                                     fl->eph_c), SC_HS_OK);
        spec_t s;
        assert_int_equal (sc_random (fl->nonce_b, SC_RANDOM_LEN), 0);
        assert_int_equal (sc_x25519_keygen (s.e_priv, fl->eph_b), 0);
        assert_int_equal (sc_x25519 (s.e_priv, fl->eph_c, s.ss), 0);
        s_spec_auth_broker_by (&s, fl, signers [k]);
        int cert_err = 12345;
        int rc = s_client_auth (&p, F->cert, F->cert_len, &cert_err);
        if (rc != SC_HS_ESIG)
            print_error ("forgery %zu: %s\n", k, sc_hs_strerror (rc));
        assert_int_equal (rc, SC_HS_ESIG);
        //  The certificate itself passed: it is the real one.
        assert_int_equal (cert_err, SC_KEY_OK);
        assert_int_equal (fl->box_len, 0);
        assert_null (sc_handshake_broker_key (p.client));
        sc_session_keys_t keys;
        assert_int_equal (sc_handshake_keys (p.client, &keys), SC_HS_ESTATE);
        s_pair_destroy (&p);
        sc_wipe (&s, sizeof s);
    }

    //  Control: the same AUTH_BROKER signed with the real key is taken,
    //  so the refusals above were the signature's.
    pair_t p;
    s_pair_default (&p);
    flight_t *fl = &p.fl;
    assert_int_equal (sc_handshake_client_hello (p.client, &fl->suite, fl->nonce_c,
                                                 fl->eph_c), SC_HS_OK);
    spec_t s;
    assert_int_equal (sc_random (fl->nonce_b, SC_RANDOM_LEN), 0);
    assert_int_equal (sc_x25519_keygen (s.e_priv, fl->eph_b), 0);
    assert_int_equal (sc_x25519 (s.e_priv, fl->eph_c, s.ss), 0);
    s_spec_auth_broker_by (&s, fl, F->broker);
    assert_int_equal (s_client_auth (&p, F->cert, F->cert_len, NULL), SC_HS_OK);
    s_pair_destroy (&p);
    sc_wipe (&s, sizeof s);
}

//  A client that claims a registered name without its key: it talks to
//  the genuine broker, so it knows every key of the handshake (ss, k_box,
//  k_fC) and makes the box and mac_C right; its sig_C is 64 random bytes,
//  or a valid signature by its own key (bob's, registered to bob). Only
//  the check of sig_C with the registered key refuses it: the signature
//  error, and no keys.
static void
test_impostor_client (void **state)
{
    (void) state;
    const box_opts_t forgeries [] = {
        { .name = "alice", .name_len = 5, .random_sig = true },
        { .name = "alice", .name_len = 5, .signer = F->bob },
    };
    for (size_t k = 0; k <= sizeof forgeries / sizeof forgeries [0]; k++) {
        sc_handshake_t *broker = sc_handshake_new_broker (F->broker, F->cert, F->cert_len);
        assert_non_null (broker);
        spec_t s;
        flight_t fl;
        s_spec_client_hello (&s, &fl, broker);
        //  The last round is the control: alice's own key is accepted.
        box_opts_t o = { .name = "alice", .name_len = 5, .signer = F->alice };
        if (k < sizeof forgeries / sizeof forgeries [0])
            o = forgeries [k];
        s_spec_box (&s, &o, &fl);
        char name [SC_HS_NAME_MAX + 1];
        assert_int_equal (sc_handshake_broker_open (broker, fl.box, fl.box_len, name),
                          SC_HS_OK);
        assert_string_equal (name, "alice");
        int rc = sc_handshake_broker_verify (broker, F->alice_pub);
        int expected = k < sizeof forgeries / sizeof forgeries [0] ? SC_HS_ESIG : SC_HS_OK;
        if (rc != expected)
            print_error ("forgery %zu: %s\n", k, sc_hs_strerror (rc));
        assert_int_equal (rc, expected);
        sc_session_keys_t keys;
        assert_int_equal (sc_handshake_keys (broker, &keys),
                          expected == SC_HS_OK ? SC_HS_OK : SC_HS_ESTATE);
        sc_handshake_destroy (&broker);
        sc_wipe (&keys, sizeof keys);
        sc_wipe (&s, sizeof s);
    }
}


//  ---------------------------------------------------------------------
//  Steps out of order

static void
test_out_of_order (void **state)
{
    (void) state;
    pair_t p;
    flight_t *fl = &p.fl;
    char name [SC_HS_NAME_MAX + 1];
    sc_session_keys_t k;

    //  Client: auth before hello, then hello is refused too.
    s_pair_default (&p);
    memset (fl, 0, sizeof *fl);
    assert_int_equal (s_client_auth (&p, F->cert, F->cert_len, NULL), SC_HS_ESTATE);
    assert_int_equal (sc_handshake_client_hello (p.client, &fl->suite, fl->nonce_c,
                                                 fl->eph_c), SC_HS_ESTATE);
    assert_int_equal (sc_handshake_keys (p.client, &k), SC_HS_ESTATE);
    assert_null (sc_handshake_broker_key (p.client));
    //  Broker: open before hello; verify before open.
    assert_int_equal (sc_handshake_broker_open (p.broker, fl->box, 120, name), SC_HS_ESTATE);
    assert_int_equal (sc_handshake_broker_hello (p.broker, SUITE, fl->nonce_c, fl->eph_c,
                                                 fl->nonce_b, fl->eph_b, fl->sig_b,
                                                 fl->mac_b), SC_HS_ESTATE);
    s_pair_destroy (&p);

    s_pair_default (&p);
    assert_int_equal (sc_handshake_broker_verify (p.broker, F->alice_pub), SC_HS_ESTATE);
    assert_int_equal (sc_handshake_keys (p.broker, &k), SC_HS_ESTATE);
    s_pair_destroy (&p);

    //  The wrong side's steps.
    s_pair_default (&p);
    assert_int_equal (sc_handshake_broker_hello (p.client, SUITE, fl->nonce_c, fl->eph_c,
                                                 fl->nonce_b, fl->eph_b, fl->sig_b,
                                                 fl->mac_b), SC_HS_ESTATE);
    assert_int_equal (sc_handshake_client_hello (p.broker, &fl->suite, fl->nonce_c,
                                                 fl->eph_c), SC_HS_ESTATE);
    //  ... and both are failed now.
    assert_int_equal (sc_handshake_client_hello (p.client, &fl->suite, fl->nonce_c,
                                                 fl->eph_c), SC_HS_ESTATE);
    s_pair_destroy (&p);

    //  Keys before the end; a step repeated; a broker step on the client
    //  mid-way.
    s_pair_default (&p);
    assert_int_equal (sc_handshake_client_hello (p.client, &fl->suite, fl->nonce_c,
                                                 fl->eph_c), SC_HS_OK);
    assert_int_equal (sc_handshake_keys (p.client, &k), SC_HS_ESTATE);
    assert_int_equal (sc_handshake_broker_hello (p.broker, fl->suite, fl->nonce_c,
                                                 fl->eph_c, fl->nonce_b, fl->eph_b,
                                                 fl->sig_b, fl->mac_b), SC_HS_OK);
    //  The client failed at keys: the genuine AUTH_BROKER is refused.
    assert_int_equal (s_client_auth (&p, F->cert, F->cert_len, NULL), SC_HS_ESTATE);
    flight_t again;
    assert_int_equal (sc_handshake_broker_hello (p.broker, fl->suite, fl->nonce_c,
                                                 fl->eph_c, again.nonce_b, again.eph_b,
                                                 again.sig_b, again.mac_b), SC_HS_ESTATE);
    s_pair_destroy (&p);

    s_pair_default (&p);
    assert_int_equal (sc_handshake_client_hello (p.client, &fl->suite, fl->nonce_c,
                                                 fl->eph_c), SC_HS_OK);
    assert_int_equal (sc_handshake_client_hello (p.client, &again.suite, again.nonce_c,
                                                 again.eph_c), SC_HS_ESTATE);
    assert_int_equal (sc_handshake_broker_hello (p.broker, fl->suite, fl->nonce_c,
                                                 fl->eph_c, fl->nonce_b, fl->eph_b,
                                                 fl->sig_b, fl->mac_b), SC_HS_OK);
    assert_int_equal (s_client_auth (&p, F->cert, F->cert_len, NULL), SC_HS_ESTATE);
    s_pair_destroy (&p);

    //  Broker: keys after open, before verify; open twice.
    s_pair_default (&p);
    s_hello (&p);
    assert_int_equal (s_client_auth (&p, F->cert, F->cert_len, NULL), SC_HS_OK);
    assert_int_equal (sc_handshake_broker_open (p.broker, fl->box, fl->box_len, name),
                      SC_HS_OK);
    assert_int_equal (sc_handshake_keys (p.broker, &k), SC_HS_ESTATE);
    assert_int_equal (sc_handshake_broker_verify (p.broker, F->alice_pub), SC_HS_ESTATE);
    s_pair_destroy (&p);

    s_pair_default (&p);
    s_hello (&p);
    assert_int_equal (s_client_auth (&p, F->cert, F->cert_len, NULL), SC_HS_OK);
    assert_int_equal (sc_handshake_broker_open (p.broker, fl->box, fl->box_len, name),
                      SC_HS_OK);
    assert_int_equal (sc_handshake_broker_open (p.broker, fl->box, fl->box_len, name),
                      SC_HS_ESTATE);
    assert_int_equal (sc_handshake_broker_verify (p.broker, F->alice_pub), SC_HS_ESTATE);
    //  The client is done and unaffected; a second auth is refused.
    assert_int_equal (s_client_auth (&p, F->cert, F->cert_len, NULL), SC_HS_ESTATE);
    s_pair_destroy (&p);
}

static void
test_new_rejects_bad_arguments (void **state)
{
    (void) state;
    assert_null (sc_handshake_new_client (F->alice, "Alice", F->ca, BROKER));
    assert_null (sc_handshake_new_client (F->alice, "", F->ca, BROKER));
    assert_null (sc_handshake_new_client (F->alice, "abcdefghijklmnopqrstuvwxyz0123456",
                                          F->ca, BROKER));
    assert_null (sc_handshake_new_client (F->alice, "alice", NULL, BROKER));
    assert_null (sc_handshake_new_client (F->alice, "alice", F->ca, NULL));
    //  A public key cannot sign.
    assert_null (sc_handshake_new_client (F->alice_pub, "alice", F->ca, BROKER));
    assert_null (sc_handshake_new_broker (F->alice_pub, F->cert, F->cert_len));
    assert_null (sc_handshake_new_broker (F->broker, F->cert, 0));
    assert_null (sc_handshake_new_broker (F->broker, NULL, 10));
    sc_handshake_t *none = NULL;
    sc_handshake_destroy (&none);
    sc_handshake_destroy (NULL);
}


//  ---------------------------------------------------------------------
//  The specification, byte for byte

//  A genuine broker against a client computed here from section 5.
//  Pins TH1 (the field order, u8(1) || u8(suite), u32(len(cert))), the
//  broker signature's label and layout, mac_B, the box (key, nonce, AD,
//  plaintext layout), TH3 = sid and the session keys. Also the
//  reflection check at the level of labels: sig_B is no client
//  signature.
static void
test_spec_broker_side (void **state)
{
    (void) state;
    sc_handshake_t *broker = sc_handshake_new_broker (F->broker, F->cert, F->cert_len);
    assert_non_null (broker);
    spec_t s;
    flight_t fl;
    s_spec_client_hello (&s, &fl, broker);

    //  sig_B = Sign(sk_B, "secchat/1 cb broker signature" || 0x00 || TH1)
    assert_true (s_verifies (F->broker, "secchat/1 cb broker signature",
                             s.th1, SC_HASH_LEN, fl.sig_b));
    //  Not under another label, not without the separator, not over a
    //  TH1 with another suite byte.
    assert_false (s_verifies (F->broker, "secchat/1 cb client signature",
                              s.th1, SC_HASH_LEN, fl.sig_b));
    assert_false (s_verifies (F->broker, "secchat/1 e2e responder signature",
                              s.th1, SC_HASH_LEN, fl.sig_b));
    {
        static const char label [] = "secchat/1 cb broker signature";
        uint8_t msg [128];
        memcpy (msg, label, strlen (label));
        memcpy (msg + strlen (label), s.th1, SC_HASH_LEN);
        assert_int_not_equal (sc_key_verify (F->broker, msg, strlen (label) + SC_HASH_LEN,
                                             fl.sig_b, SC_SIG_LEN), 0);
        uint8_t th1x [SC_HASH_LEN];
        s_spec_th1 (&fl, 2, F->cert, F->cert_len, th1x);
        assert_false (s_verifies (F->broker, "secchat/1 cb broker signature",
                                  th1x, SC_HASH_LEN, fl.sig_b));
    }
    //  Reflection: sig_B does not verify over the client-signature
    //  message "secchat/1 cb client signature" || 0x00 || TH2 || L || n,
    //  whatever name, with the broker's key.
    static const char *const names [] = { "alice", "secbroker", "bob" };
    for (size_t k = 0; k < 3; k++) {
        uint8_t part [SC_HASH_LEN + 1 + SC_HS_NAME_MAX];
        size_t len = s_th2_name (s.th2, names [k], strlen (names [k]), part);
        assert_false (s_verifies (F->broker, "secchat/1 cb client signature",
                                  part, len, fl.sig_b));
    }
    //  mac_B = HMAC(k_fB, TH2), TH2 = H(TH1 || sig_B)
    uint8_t mac [SC_HASH_LEN];
    assert_int_equal (sc_hmac (s.k_fb, s.th2, SC_HASH_LEN, mac), 0);
    assert_memory_equal (mac, fl.mac_b, SC_HASH_LEN);

    //  AUTH_CLIENT from the specification: accepted.
    box_opts_t o = { .name = "alice", .name_len = 5, .signer = F->alice };
    s_spec_box (&s, &o, &fl);
    char name [SC_HS_NAME_MAX + 1];
    assert_int_equal (sc_handshake_broker_open (broker, fl.box, fl.box_len, name), SC_HS_OK);
    assert_string_equal (name, "alice");
    assert_int_equal (sc_handshake_broker_verify (broker, F->alice_pub), SC_HS_OK);
    sc_session_keys_t keys;
    assert_int_equal (sc_handshake_keys (broker, &keys), SC_HS_OK);
    //  sid = TH3; the broker sends with k_b2c and receives with k_c2b.
    assert_memory_equal (keys.sid, s.th3, SC_HASH_LEN);
    assert_memory_equal (keys.k_send, s.k_b2c, SC_KEY_LEN);
    assert_memory_equal (keys.k_recv, s.k_c2b, SC_KEY_LEN);
    sc_handshake_destroy (&broker);
    sc_wipe (&keys, sizeof keys);
    sc_wipe (&s, sizeof s);
}

//  A genuine client against a broker computed here from section 5. Pins
//  the client's side: the box opens with k_box, nonce 0, AD TH2; its
//  plaintext is L || n || sig_C || mac_C; sig_C's label and layout;
//  mac_C = HMAC(k_fC, TH3); sid and the keys from the client's side.
static void
test_spec_client_side (void **state)
{
    (void) state;
    sc_handshake_t *client = sc_handshake_new_client (F->alice, "alice", F->ca, BROKER);
    assert_non_null (client);
    flight_t fl;
    spec_t s;
    assert_int_equal (sc_handshake_client_hello (client, &fl.suite, fl.nonce_c, fl.eph_c),
                      SC_HS_OK);
    assert_int_equal (fl.suite, SUITE);
    assert_int_equal (sc_random (fl.nonce_b, SC_RANDOM_LEN), 0);
    assert_int_equal (sc_x25519_keygen (s.e_priv, fl.eph_b), 0);
    assert_int_equal (sc_x25519 (s.e_priv, fl.eph_c, s.ss), 0);
    s_spec_auth_broker (&s, &fl);
    fl.box_len = 0;
    assert_int_equal (sc_handshake_client_auth (client, fl.nonce_b, fl.eph_b, F->cert,
                                                F->cert_len, fl.sig_b, fl.mac_b, fl.box,
                                                &fl.box_len, NULL), SC_HS_OK);
    //  box = AEAD(k_box, 12 zero bytes, ad = TH2,
    //             L || n || zeros to 32 bytes || sig_C || mac_C)
    assert_int_equal (fl.box_len, 1 + 32 + SC_SIG_LEN + SC_HASH_LEN + SC_TAG_LEN);
    uint8_t pt [SC_HS_BOX_MAX], nonce [SC_NONCE_LEN] = { 0 }, zeros [27] = { 0 };
    assert_int_equal (sc_aead_open (s.k_box, nonce, s.th2, SC_HASH_LEN, fl.box,
                                    fl.box_len, pt), 0);
    assert_int_equal (pt [0], 5);
    assert_memory_equal (pt + 1, "alice", 5);
    assert_memory_equal (pt + 6, zeros, sizeof zeros);
    const uint8_t *sig_c = pt + 33, *mac_c = pt + 33 + SC_SIG_LEN;
    //  sig_C = Sign(sk_C, "secchat/1 cb client signature" || 0x00 || TH2 || L || n)
    uint8_t part [SC_HASH_LEN + 1 + SC_HS_NAME_MAX];
    size_t part_len = s_th2_name (s.th2, "alice", 5, part);
    assert_true (s_verifies (F->alice_pub, "secchat/1 cb client signature",
                             part, part_len, sig_c));
    assert_false (s_verifies (F->alice_pub, "secchat/1 cb broker signature",
                              part, part_len, sig_c));
    assert_false (s_verifies (F->alice_pub, "secchat/1 cb client signature",
                              s.th2, SC_HASH_LEN, sig_c));
    //  TH3 = H(TH2 || L || n || sig_C); mac_C = HMAC(k_fC, TH3)
    uint8_t th3_in [SC_HASH_LEN + 1 + 5 + SC_SIG_LEN], mac [SC_HASH_LEN];
    memcpy (th3_in, part, part_len);
    memcpy (th3_in + part_len, sig_c, SC_SIG_LEN);
    assert_int_equal (sc_sha256 (th3_in, part_len + SC_SIG_LEN, s.th3), 0);
    assert_int_equal (sc_hmac (s.k_fc, s.th3, SC_HASH_LEN, mac), 0);
    assert_memory_equal (mac, mac_c, SC_HASH_LEN);
    //  sid = TH3; the client sends with k_c2b, receives with k_b2c.
    s_expand (s.prk, "secchat/1 cb session c2b", s.th3, SC_HASH_LEN, s.k_c2b);
    s_expand (s.prk, "secchat/1 cb session b2c", s.th3, SC_HASH_LEN, s.k_b2c);
    sc_session_keys_t keys;
    assert_int_equal (sc_handshake_keys (client, &keys), SC_HS_OK);
    assert_memory_equal (keys.sid, s.th3, SC_HASH_LEN);
    assert_memory_equal (keys.k_send, s.k_c2b, SC_KEY_LEN);
    assert_memory_equal (keys.k_recv, s.k_b2c, SC_KEY_LEN);
    sc_handshake_destroy (&client);
    sc_wipe (&keys, sizeof keys);
    sc_wipe (&s, sizeof s);
}


//  ---------------------------------------------------------------------
//  Enrolment (docs/PROTOCOL.md section 5a)

static const uint8_t s_code [SC_HS_CODE_LEN] = {
    1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20
};

//  The ENROL box from the specification: k_enrol from prk, pt = L || n
//  || zeros || key || code || sig || mac; sig by signer over
//  "secchat/1 cb enrol signature" || 0x00 || sig_th2 || L || n || signed_key
//  (sig_th2 NULL: this handshake's TH2; a recorded sig given: that one).
typedef struct {
    const char *name;
    const uint8_t *key;             //  the key in the box
    const uint8_t *signed_key;      //  the key signed (normally key)
    const sc_key_t *signer;
    const char *label;              //  normally the enrol label
    const uint8_t *sig;             //  a signature to use instead
    const uint8_t *code;
} enrol_opts_t;

static void
s_spec_enrol_box (spec_t *s, const enrol_opts_t *o, flight_t *fl,
                  uint8_t sig_out [SC_SIG_LEN])
{
    size_t nl = strlen (o->name);
    uint8_t part [SC_HASH_LEN + 1 + SC_HS_NAME_MAX + SC_PUB_LEN];
    size_t part_len = s_th2_name (s->th2, o->name, nl, part);
    memcpy (part + part_len, o->signed_key ? o->signed_key : o->key, SC_PUB_LEN);
    part_len += SC_PUB_LEN;
    uint8_t sig [SC_SIG_LEN], mac [SC_HASH_LEN];
    if (o->sig)
        memcpy (sig, o->sig, SC_SIG_LEN);
    else
        s_sign (o->signer, o->label ? o->label : "secchat/1 cb enrol signature",
                part, part_len, sig);
    if (sig_out)
        memcpy (sig_out, sig, SC_SIG_LEN);
    //  TH3 = H(TH2 || L || n || sig), mac = HMAC(k_fC, TH3): as a login's
    uint8_t th3_in [SC_HASH_LEN + 1 + SC_HS_NAME_MAX + SC_SIG_LEN];
    size_t th3_len = s_th2_name (s->th2, o->name, nl, th3_in);
    memcpy (th3_in + th3_len, sig, SC_SIG_LEN);
    assert_int_equal (sc_sha256 (th3_in, th3_len + SC_SIG_LEN, s->th3), 0);
    assert_int_equal (sc_hmac (s->k_fc, s->th3, SC_HASH_LEN, mac), 0);
    uint8_t pt [SC_HS_ENROL_BOX_LEN - SC_TAG_LEN] = { 0 };
    size_t n = 0;
    pt [n++] = (uint8_t) nl;
    memcpy (pt + n, o->name, nl);
    n += SC_HS_NAME_MAX;
    memcpy (pt + n, o->key, SC_PUB_LEN);
    n += SC_PUB_LEN;
    memcpy (pt + n, o->code, SC_HS_CODE_LEN);
    n += SC_HS_CODE_LEN;
    memcpy (pt + n, sig, SC_SIG_LEN);
    n += SC_SIG_LEN;
    memcpy (pt + n, mac, SC_HASH_LEN);
    n += SC_HASH_LEN;
    assert_int_equal (n, sizeof pt);
    uint8_t k_enrol [SC_KEY_LEN], nonce [SC_NONCE_LEN] = { 0 };
    s_expand (s->prk, "secchat/1 cb enrol box c2b", NULL, 0, k_enrol);
    assert_int_equal (sc_aead_seal (k_enrol, nonce, s->th2, SC_HASH_LEN, pt, n, fl->box), 0);
    fl->box_len = n + SC_TAG_LEN;
    s_expand (s->prk, "secchat/1 cb session c2b", s->th3, SC_HASH_LEN, s->k_c2b);
    s_expand (s->prk, "secchat/1 cb session b2c", s->th3, SC_HASH_LEN, s->k_b2c);
}

//  A new key and its raw public half.
static sc_key_t *
s_new_key (uint8_t pub [SC_PUB_LEN])
{
    sc_key_t *key = sc_key_generate ();
    assert_non_null (key);
    assert_int_equal (sc_key_public_raw (key, pub), 0);
    return key;
}

//  The library on both sides: the broker learns the name, the new key
//  and the code, checks the new key's signature, and both hold the same
//  session keys.
static void
test_enrol_success (void **state)
{
    (void) state;
    uint8_t pub [SC_PUB_LEN];
    sc_key_t *key = s_new_key (pub);
    pair_t p;
    s_pair (&p, key, "dave", BROKER, F->broker, F->cert, F->cert_len);
    s_hello (&p);
    assert_int_equal (sc_handshake_client_enrol (p.client, s_code), SC_HS_OK);
    assert_int_equal (s_client_auth (&p, F->cert, F->cert_len, NULL), SC_HS_OK);
    assert_int_equal (p.fl.box_len, SC_HS_ENROL_BOX_LEN);
    assert_int_equal (SC_HS_ENROL_BOX_LEN, 197);
    char name [SC_HS_NAME_MAX + 1];
    uint8_t got_pub [SC_PUB_LEN], got_code [SC_HS_CODE_LEN];
    assert_int_equal (sc_handshake_broker_open_enrol (p.broker, p.fl.box, p.fl.box_len,
                                                      name, got_pub, got_code), SC_HS_OK);
    assert_string_equal (name, "dave");
    assert_memory_equal (got_pub, pub, SC_PUB_LEN);
    assert_memory_equal (got_code, s_code, SC_HS_CODE_LEN);
    sc_key_t *registered = sc_key_from_raw (got_pub);
    assert_int_equal (sc_handshake_broker_verify (p.broker, registered), SC_HS_OK);
    sc_session_keys_t ck, bk;
    assert_int_equal (sc_handshake_keys (p.client, &ck), SC_HS_OK);
    assert_int_equal (sc_handshake_keys (p.broker, &bk), SC_HS_OK);
    assert_memory_equal (ck.sid, bk.sid, SC_HASH_LEN);
    assert_memory_equal (ck.k_send, bk.k_recv, SC_KEY_LEN);
    assert_memory_equal (ck.k_recv, bk.k_send, SC_KEY_LEN);
    sc_key_destroy (&registered);
    sc_key_destroy (&key);
    s_pair_destroy (&p);
}

//  The box from the specification is what the broker accepts, and the
//  box a genuine client makes opens as the specification says.
static void
test_enrol_spec (void **state)
{
    (void) state;
    uint8_t pub [SC_PUB_LEN];
    sc_key_t *key = s_new_key (pub);
    sc_handshake_t *broker = sc_handshake_new_broker (F->broker, F->cert, F->cert_len);
    assert_non_null (broker);
    spec_t s;
    flight_t fl;
    s_spec_client_hello (&s, &fl, broker);
    enrol_opts_t o = { .name = "dave", .key = pub, .signer = key, .code = s_code };
    s_spec_enrol_box (&s, &o, &fl, NULL);
    char name [SC_HS_NAME_MAX + 1];
    uint8_t got_pub [SC_PUB_LEN], got_code [SC_HS_CODE_LEN];
    assert_int_equal (sc_handshake_broker_open_enrol (broker, fl.box, fl.box_len, name,
                                                      got_pub, got_code), SC_HS_OK);
    assert_int_equal (sc_handshake_broker_verify (broker, key), SC_HS_OK);
    sc_session_keys_t keys;
    assert_int_equal (sc_handshake_keys (broker, &keys), SC_HS_OK);
    assert_memory_equal (keys.sid, s.th3, SC_HASH_LEN);
    assert_memory_equal (keys.k_recv, s.k_c2b, SC_KEY_LEN);
    sc_handshake_destroy (&broker);

    //  A genuine client against a broker computed here: its box opens
    //  with k_enrol, nonce 0, AD TH2, and holds the layout above.
    sc_handshake_t *client = sc_handshake_new_client (key, "dave", F->ca, BROKER);
    assert_non_null (client);
    memset (&s, 0, sizeof s);
    assert_int_equal (sc_handshake_client_hello (client, &fl.suite, fl.nonce_c, fl.eph_c),
                      SC_HS_OK);
    assert_int_equal (sc_x25519_keygen (s.e_priv, fl.eph_b), 0);
    assert_int_equal (sc_random (fl.nonce_b, SC_RANDOM_LEN), 0);
    assert_int_equal (sc_x25519 (s.e_priv, fl.eph_c, s.ss), 0);
    s_spec_auth_broker (&s, &fl);
    assert_int_equal (sc_handshake_client_enrol (client, s_code), SC_HS_OK);
    size_t box_len = 0;
    assert_int_equal (sc_handshake_client_auth (client, fl.nonce_b, fl.eph_b, F->cert,
                                                F->cert_len, fl.sig_b, fl.mac_b, fl.box,
                                                &box_len, NULL), SC_HS_OK);
    uint8_t k_enrol [SC_KEY_LEN], nonce [SC_NONCE_LEN] = { 0 };
    uint8_t pt [SC_HS_ENROL_BOX_LEN - SC_TAG_LEN];
    s_expand (s.prk, "secchat/1 cb enrol box c2b", NULL, 0, k_enrol);
    assert_int_equal (box_len, SC_HS_ENROL_BOX_LEN);
    assert_int_equal (sc_aead_open (k_enrol, nonce, s.th2, SC_HASH_LEN, fl.box, box_len, pt), 0);
    assert_int_equal (pt [0], 4);
    assert_memory_equal (pt + 1, "dave", 4);
    assert_memory_equal (pt + 33, pub, SC_PUB_LEN);
    assert_memory_equal (pt + 65, s_code, SC_HS_CODE_LEN);
    uint8_t part [SC_HASH_LEN + 1 + 4 + SC_PUB_LEN];
    size_t part_len = s_th2_name (s.th2, "dave", 4, part);
    memcpy (part + part_len, pub, SC_PUB_LEN);
    assert_true (s_verifies (key, "secchat/1 cb enrol signature", part,
                             part_len + SC_PUB_LEN, pt + 85));
    //  not a login signature
    assert_false (s_verifies (key, "secchat/1 cb client signature", part, part_len, pt + 85));
    //  and not under the login's box key: the two boxes never mix
    assert_int_not_equal (sc_aead_open (s.k_box, nonce, s.th2, SC_HASH_LEN, fl.box, box_len,
                                        pt), 0);
    sc_handshake_destroy (&client);
    sc_key_destroy (&key);
    sc_wipe (&s, sizeof s);
}

//  A recorded enrolment replayed to the broker fails: its box does not
//  open under a new handshake's key, and even someone who knows what it
//  held (the code, the key, the signature) and seals it again under the
//  new handshake gets nowhere, since the signature is over the old TH2.
static void
test_enrol_replay (void **state)
{
    (void) state;
    uint8_t pub [SC_PUB_LEN], sig [SC_SIG_LEN];
    sc_key_t *key = s_new_key (pub);
    sc_handshake_t *broker = sc_handshake_new_broker (F->broker, F->cert, F->cert_len);
    assert_non_null (broker);
    spec_t s;
    flight_t rec;
    s_spec_client_hello (&s, &rec, broker);
    enrol_opts_t o = { .name = "dave", .key = pub, .signer = key, .code = s_code };
    s_spec_enrol_box (&s, &o, &rec, sig);
    sc_handshake_destroy (&broker);

    //  The recorded HELLO and ENROL to a new broker handshake.
    broker = sc_handshake_new_broker (F->broker, F->cert, F->cert_len);
    assert_non_null (broker);
    flight_t fl = rec;
    assert_int_equal (sc_handshake_broker_hello (broker, rec.suite, rec.nonce_c, rec.eph_c,
                                                 fl.nonce_b, fl.eph_b, fl.sig_b, fl.mac_b),
                      SC_HS_OK);
    char name [SC_HS_NAME_MAX + 1];
    uint8_t got_pub [SC_PUB_LEN], got_code [SC_HS_CODE_LEN];
    assert_int_equal (sc_handshake_broker_open_enrol (broker, rec.box, rec.box_len, name,
                                                      got_pub, got_code), SC_HS_EBOX);
    sc_handshake_destroy (&broker);

    //  The recorded contents sealed again in a fresh handshake.
    broker = sc_handshake_new_broker (F->broker, F->cert, F->cert_len);
    assert_non_null (broker);
    memset (&s, 0, sizeof s);
    s_spec_client_hello (&s, &fl, broker);
    o.sig = sig;
    s_spec_enrol_box (&s, &o, &fl, NULL);
    assert_int_equal (sc_handshake_broker_open_enrol (broker, fl.box, fl.box_len, name,
                                                      got_pub, got_code), SC_HS_OK);
    assert_int_equal (sc_handshake_broker_verify (broker, key), SC_HS_ESIG);
    sc_session_keys_t keys;
    assert_int_equal (sc_handshake_keys (broker, &keys), SC_HS_ESTATE);
    sc_handshake_destroy (&broker);
    sc_key_destroy (&key);
    sc_wipe (&s, sizeof s);
}

//  A box moved to another key fails: the code cannot be carried over to
//  a key that did not sign this enrolment.
static void
test_enrol_moved_key (void **state)
{
    (void) state;
    uint8_t pub [SC_PUB_LEN], other_pub [SC_PUB_LEN];
    sc_key_t *key = s_new_key (pub);
    sc_key_t *other = s_new_key (other_pub);
    const struct {
        const uint8_t *key, *signed_key;
        const sc_key_t *signer, *verify_with;
        const char *label;
    } cases [] = {
        //  the genuine enrolment, its key swapped for another
        { other_pub, pub, key, other, NULL },
        //  signed by the new key over another key
        { pub, other_pub, key, key, NULL },
        //  another key's genuine signature, the box naming the new key
        { pub, other_pub, other, key, NULL },
        //  a login's signature, not an enrolment's
        { pub, pub, key, key, "secchat/1 cb client signature" },
        //  a genuine box, checked by a broker with another key
        { pub, pub, key, other, NULL },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases [0]; i++) {
        sc_handshake_t *broker = sc_handshake_new_broker (F->broker, F->cert, F->cert_len);
        assert_non_null (broker);
        spec_t s;
        flight_t fl;
        s_spec_client_hello (&s, &fl, broker);
        enrol_opts_t o = { .name = "dave", .key = cases [i].key,
                           .signed_key = cases [i].signed_key, .signer = cases [i].signer,
                           .label = cases [i].label, .code = s_code };
        s_spec_enrol_box (&s, &o, &fl, NULL);
        char name [SC_HS_NAME_MAX + 1];
        uint8_t got_pub [SC_PUB_LEN], got_code [SC_HS_CODE_LEN];
        assert_int_equal (sc_handshake_broker_open_enrol (broker, fl.box, fl.box_len, name,
                                                          got_pub, got_code), SC_HS_OK);
        assert_memory_equal (got_pub, cases [i].key, SC_PUB_LEN);
        assert_int_equal (sc_handshake_broker_verify (broker, cases [i].verify_with),
                          SC_HS_ESIG);
        sc_handshake_destroy (&broker);
        sc_wipe (&s, sizeof s);
    }
    sc_key_destroy (&key);
    sc_key_destroy (&other);
}

//  A login box is not an enrolment box, nor the other way round.
static void
test_enrol_box_kinds (void **state)
{
    (void) state;
    pair_t p;
    s_pair_default (&p);
    s_hello (&p);
    assert_int_equal (s_client_auth (&p, F->cert, F->cert_len, NULL), SC_HS_OK);
    char name [SC_HS_NAME_MAX + 1];
    uint8_t pub [SC_PUB_LEN], code [SC_HS_CODE_LEN];
    assert_int_equal (sc_handshake_broker_open_enrol (p.broker, p.fl.box, p.fl.box_len, name,
                                                      pub, code), SC_HS_EBOX);
    s_pair_destroy (&p);

    s_pair_default (&p);
    s_hello (&p);
    assert_int_equal (sc_handshake_client_enrol (p.client, s_code), SC_HS_OK);
    assert_int_equal (s_client_auth (&p, F->cert, F->cert_len, NULL), SC_HS_OK);
    assert_int_equal (sc_handshake_broker_open (p.broker, p.fl.box, p.fl.box_len, name),
                      SC_HS_EBOX);
    s_pair_destroy (&p);

    //  client_enrol only between HELLO and AUTH_BROKER, once
    s_pair_default (&p);
    assert_int_equal (sc_handshake_client_enrol (p.client, s_code), SC_HS_ESTATE);
    s_pair_destroy (&p);
    s_pair_default (&p);
    s_hello (&p);
    assert_int_equal (sc_handshake_client_enrol (p.client, s_code), SC_HS_OK);
    assert_int_equal (sc_handshake_client_enrol (p.client, s_code), SC_HS_ESTATE);
    s_pair_destroy (&p);
}

//  The code as people type it: 8 groups of 4 base32 letters.
static void
test_enrol_code_text (void **state)
{
    (void) state;
    uint8_t code [SC_HS_CODE_LEN], back [SC_HS_CODE_LEN];
    for (size_t i = 0; i < SC_HS_CODE_LEN; i++)
        code [i] = (uint8_t) i;
    char text [SC_HS_CODE_TEXT_LEN + 1];
    sc_enrol_code_format (code, text);
    //  RFC 4648 base32 of 00 01 .. 13, in groups
    assert_string_equal (text, "AAAQ-EAYE-AUDA-OCAJ-BIFQ-YDIO-B4IB-CEQT");
    assert_int_equal (sc_enrol_code_parse (text, back), 0);
    assert_memory_equal (back, code, SC_HS_CODE_LEN);
    assert_int_equal (sc_enrol_code_parse ("aaaq eaye-auda ocaj bifq ydio b4ib ceqt", back), 0);
    assert_memory_equal (back, code, SC_HS_CODE_LEN);
    memset (code, 0xff, sizeof code);
    code [19] = 0xfe;
    sc_enrol_code_format (code, text);
    assert_string_equal (text, "7777-7777-7777-7777-7777-7777-7777-7776");
    assert_int_equal (sc_enrol_code_parse (text, back), 0);
    assert_memory_equal (back, code, SC_HS_CODE_LEN);
    //  not codes: short, long, a letter outside the alphabet, all zero
    const char *bad [] = {
        "AAAQ-EAYE-AUDA-OCAJ-BIFQ-YDIO-B4IB-CEQ",
        "AAAQ-EAYE-AUDA-OCAJ-BIFQ-YDIO-B4IB-CEQTA",
        "AAAQ-EAYE-AUDA-OCAJ-BIFQ-YDIO-B4IB-CEQ1",
        "AAAQ-EAYE-AUDA-OCAJ-BIFQ-YDIO-B4IB-CEQ8",
        "AAAQ-EAYE-AUDA-OCAJ-BIFQ-YDIO-B4IB_CEQT",
        "AAAA-AAAA-AAAA-AAAA-AAAA-AAAA-AAAA-AAAA",
        "",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad [0]; i++) {
        assert_int_equal (sc_enrol_code_parse (bad [i], back), -1);
        uint8_t zero [SC_HS_CODE_LEN] = { 0 };
        assert_memory_equal (back, zero, SC_HS_CODE_LEN);
    }
    //  new codes: never zero, never twice; the hash is the specified one
    uint8_t a [SC_HS_CODE_LEN], b [SC_HS_CODE_LEN], h [SC_HASH_LEN], want [SC_HASH_LEN];
    assert_int_equal (sc_enrol_code_new (a), 0);
    assert_int_equal (sc_enrol_code_new (b), 0);
    assert_memory_not_equal (a, b, SC_HS_CODE_LEN);
    assert_int_equal (sc_enrol_code_hash (s_code, h), 0);
    uint8_t msg [64];
    size_t len = s_labelled ("secchat/1 enrol code", s_code, SC_HS_CODE_LEN, msg);
    assert_int_equal (sc_sha256 (msg, len, want), 0);
    assert_memory_equal (h, want, SC_HASH_LEN);
}

int
main (void)
{
    const struct CMUnitTest tests [] = {
        cmocka_unit_test (test_login_success),
        cmocka_unit_test (test_cert_other_ca),
        cmocka_unit_test (test_cert_other_name),
        cmocka_unit_test (test_auth_broker_tampered),
        cmocka_unit_test (test_auth_client_box_tampered),
        cmocka_unit_test (test_auth_client_box_contents),
        cmocka_unit_test (test_unsupported_suite),
        cmocka_unit_test (test_low_order_hello),
        cmocka_unit_test (test_low_order_auth_broker),
        cmocka_unit_test (test_wrong_client_key),
        cmocka_unit_test (test_impostor_broker),
        cmocka_unit_test (test_impostor_client),
        cmocka_unit_test (test_replay),
        cmocka_unit_test (test_out_of_order),
        cmocka_unit_test (test_new_rejects_bad_arguments),
        cmocka_unit_test (test_spec_broker_side),
        cmocka_unit_test (test_spec_client_side),
        cmocka_unit_test (test_enrol_success),
        cmocka_unit_test (test_enrol_spec),
        cmocka_unit_test (test_enrol_replay),
        cmocka_unit_test (test_enrol_moved_key),
        cmocka_unit_test (test_enrol_box_kinds),
        cmocka_unit_test (test_enrol_code_text),
    };
    return cmocka_run_group_tests (tests, group_setup, group_teardown);
}
