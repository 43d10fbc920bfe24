/*  sc_crypto: the primitives secchat is built from, as thin wrappers over
    OpenSSL 3 EVP (see sc_crypto.h for the contract).

    Rules kept throughout: every OpenSSL return value is checked, every
    object is freed on every path, every secret buffer is wiped before it
    is released and on error paths, and a failure clears OpenSSL's error
    queue so that it cannot leak into an unrelated later call.

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at https://mozilla.org/MPL/2.0/.
*/
#include "sc_crypto.h"

#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/params.h>
#include <openssl/rand.h>

//  OpenSSL rejects NULL data pointers in a few places even when the length
//  is zero (OSSL_PARAM octet strings, for one): we pass this instead.
static const uint8_t s_empty [1] = { 0 };

//  Domain separation label of the safety number (16 bytes, no NUL).
#define SC_SAFETY_LABEL     "secchat/1 safety"

static const uint8_t *
s_nonnull (const uint8_t *data)
{
    return data ? data : s_empty;
}

//  Common failure exit: forget OpenSSL's errors, report -1.
static int
s_fail (void)
{
    ERR_clear_error ();
    return -1;
}


//  ---------------------------------------------------------------------
//  Algorithms, fetched once
//
//  Naming an algorithm on each use (EVP_sha256 (), EVP_MAC_fetch (NULL,
//  "HMAC", NULL)...) makes OpenSSL 3 look it up in its provider tables
//  every time: the broker paid that on every envelope and every login
//  step. Each one is fetched once instead, by the first thread that needs
//  one (pthread_once), and shared: a fetched algorithm is immutable, so
//  any number of threads may use it at once. They live as long as the
//  process. Contexts stay per call: they hold keys.

typedef struct {
    EVP_MD *sha256;
    EVP_MD *sha512;
    EVP_MAC *hmac;
    EVP_MAC_CTX *hmac_sha256;          //  HMAC-SHA256 without a key, to copy
    EVP_KDF *hkdf;
    EVP_CIPHER *aead;                  //  ChaCha20-Poly1305
} s_algs_t;

static s_algs_t s_algs;
static bool s_algs_ok = false;
static pthread_once_t s_algs_once = PTHREAD_ONCE_INIT;

static void
s_algs_fetch (void)
{
    OSSL_PARAM params [] = {
        OSSL_PARAM_construct_utf8_string (OSSL_MAC_PARAM_DIGEST, (char *) "SHA256", 0),
        OSSL_PARAM_construct_end ()
    };
    s_algs.sha256 = EVP_MD_fetch (NULL, "SHA256", NULL);
    s_algs.sha512 = EVP_MD_fetch (NULL, "SHA512", NULL);
    s_algs.hmac = EVP_MAC_fetch (NULL, "HMAC", NULL);
    s_algs.hmac_sha256 = s_algs.hmac ? EVP_MAC_CTX_new (s_algs.hmac) : NULL;
    s_algs.hkdf = EVP_KDF_fetch (NULL, "HKDF", NULL);
    s_algs.aead = EVP_CIPHER_fetch (NULL, "ChaCha20-Poly1305", NULL);
    s_algs_ok = s_algs.sha256 && s_algs.sha512 && s_algs.hmac_sha256
             && s_algs.hkdf && s_algs.aead
             && EVP_MAC_CTX_set_params (s_algs.hmac_sha256, params) == 1;
    if (!s_algs_ok)
        ERR_clear_error ();
}

//  The algorithms, or NULL when OpenSSL cannot provide one of them.
static const s_algs_t *
s_alg (void)
{
    if (pthread_once (&s_algs_once, s_algs_fetch) != 0 || !s_algs_ok)
        return NULL;
    return &s_algs;
}

void
sc_wipe (void *buf, size_t len)
{
    if (buf && len)
        OPENSSL_cleanse (buf, len);
}

void
sc_crypto_thread_stop (void)
{
    OPENSSL_thread_stop ();
}

int
sc_random (uint8_t *buf, size_t len)
{
    if (len == 0)
        return 0;
    if (!buf || len > INT_MAX)
        return -1;
    if (RAND_bytes (buf, (int) len) != 1) {
        sc_wipe (buf, len);
        return s_fail ();
    }
    return 0;
}

bool
sc_equal (const uint8_t *a, const uint8_t *b, size_t len)
{
    if (len == 0)
        return true;
    if (!a || !b)
        return false;
    return CRYPTO_memcmp (a, b, len) == 0;
}


//  ---------------------------------------------------------------------
//  SHA-256

int
sc_sha256 (const uint8_t *data, size_t len, uint8_t out [static SC_HASH_LEN])
{
    unsigned int out_len = 0;
    const s_algs_t *alg = s_alg ();
    if ((!data && len) || !alg)
        return -1;
    if (EVP_Digest (s_nonnull (data), len, out, &out_len, alg->sha256, NULL) != 1
    ||  out_len != SC_HASH_LEN) {
        sc_wipe (out, SC_HASH_LEN);
        return s_fail ();
    }
    return 0;
}

struct _sc_hash_t {
    EVP_MD_CTX *ctx;
};

sc_hash_t *
sc_hash_new (void)
{
    const s_algs_t *alg = s_alg ();
    sc_hash_t *self = alg ? calloc (1, sizeof (sc_hash_t)) : NULL;
    if (!self)
        return NULL;
    self->ctx = EVP_MD_CTX_new ();
    if (!self->ctx
    ||  EVP_DigestInit_ex (self->ctx, alg->sha256, NULL) != 1) {
        sc_hash_destroy (&self);
        ERR_clear_error ();
    }
    return self;
}

void
sc_hash_destroy (sc_hash_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    sc_hash_t *self = *self_p;
    EVP_MD_CTX_free (self->ctx);       //  also wipes the hash state
    free (self);
    *self_p = NULL;
}

int
sc_hash_update (sc_hash_t *self, const uint8_t *data, size_t len)
{
    if (!self || (!data && len))
        return -1;
    if (len == 0)
        return 0;
    if (EVP_DigestUpdate (self->ctx, data, len) != 1)
        return s_fail ();
    return 0;
}

//  Finalising destroys a digest state, so we finalise a copy: the
//  transcript can go on after each peek.
int
sc_hash_peek (sc_hash_t *self, uint8_t out [static SC_HASH_LEN])
{
    if (!self)
        return -1;
    EVP_MD_CTX *copy = EVP_MD_CTX_new ();
    unsigned int out_len = 0;
    int rc = -1;
    if (copy
    &&  EVP_MD_CTX_copy_ex (copy, self->ctx) == 1
    &&  EVP_DigestFinal_ex (copy, out, &out_len) == 1
    &&  out_len == SC_HASH_LEN)
        rc = 0;
    EVP_MD_CTX_free (copy);
    if (rc) {
        sc_wipe (out, SC_HASH_LEN);
        ERR_clear_error ();
    }
    return rc;
}


//  ---------------------------------------------------------------------
//  HMAC-SHA256

int
sc_hmac (const uint8_t key [static SC_KEY_LEN],
         const uint8_t *data, size_t len,
         uint8_t out [static SC_HASH_LEN])
{
    const s_algs_t *alg = s_alg ();
    if ((!data && len) || !alg)
        return -1;
    //  A copy of the keyless HMAC-SHA256 context: no digest lookup.
    EVP_MAC_CTX *ctx = EVP_MAC_CTX_dup (alg->hmac_sha256);
    size_t out_len = 0;
    int rc = -1;
    if (ctx
    &&  EVP_MAC_init (ctx, key, SC_KEY_LEN, NULL) == 1
    &&  EVP_MAC_update (ctx, s_nonnull (data), len) == 1
    &&  EVP_MAC_final (ctx, out, &out_len, SC_HASH_LEN) == 1
    &&  out_len == SC_HASH_LEN)
        rc = 0;
    EVP_MAC_CTX_free (ctx);            //  wipes the keyed state
    if (rc) {
        sc_wipe (out, SC_HASH_LEN);
        ERR_clear_error ();
    }
    return rc;
}

int
sc_hmac_verify (const uint8_t key [static SC_KEY_LEN],
                const uint8_t *data, size_t len,
                const uint8_t mac [static SC_HASH_LEN])
{
    uint8_t expected [SC_HASH_LEN];
    int rc = sc_hmac (key, data, len, expected) ? SC_CRYPTO_FAILED : 0;
    if (rc == 0 && CRYPTO_memcmp (expected, mac, SC_HASH_LEN) != 0)
        rc = -1;
    //  The expected MAC is as good as a forgery for this message: wipe it.
    sc_wipe (expected, sizeof expected);
    return rc;
}


//  ---------------------------------------------------------------------
//  HKDF-SHA256 through EVP_KDF "HKDF"

//  Runs HKDF in the given mode. key is the IKM (or the PRK for
//  EXPAND_ONLY); salt and info may be empty and are then left out, which
//  for the salt means HashLen zero bytes, exactly as RFC 5869 says.
static int
s_hkdf (int mode,
        const uint8_t *salt, size_t salt_len,
        const uint8_t *key, size_t key_len,
        const uint8_t *info, size_t info_len,
        uint8_t *out, size_t out_len)
{
    if (!out || out_len == 0
    ||  (!salt && salt_len) || (!key && key_len) || (!info && info_len))
        return -1;
    OSSL_PARAM params [6];
    size_t n = 0;
    params [n++] = OSSL_PARAM_construct_int (OSSL_KDF_PARAM_MODE, &mode);
    params [n++] = OSSL_PARAM_construct_utf8_string (OSSL_KDF_PARAM_DIGEST,
                                                     (char *) "SHA256", 0);
    //  An empty IKM is legal in RFC 5869: give OpenSSL a non-NULL pointer.
    params [n++] = OSSL_PARAM_construct_octet_string (OSSL_KDF_PARAM_KEY,
                                                      (void *) s_nonnull (key), key_len);
    if (salt_len)
        params [n++] = OSSL_PARAM_construct_octet_string (OSSL_KDF_PARAM_SALT,
                                                          (void *) salt, salt_len);
    if (info_len)
        params [n++] = OSSL_PARAM_construct_octet_string (OSSL_KDF_PARAM_INFO,
                                                          (void *) info, info_len);
    params [n] = OSSL_PARAM_construct_end ();

    const s_algs_t *alg = s_alg ();
    EVP_KDF_CTX *ctx = alg ? EVP_KDF_CTX_new (alg->hkdf) : NULL;
    int rc = -1;
    if (ctx && EVP_KDF_derive (ctx, out, out_len, params) == 1)
        rc = 0;
    EVP_KDF_CTX_free (ctx);            //  wipes the copies of key and salt
    if (rc) {
        sc_wipe (out, out_len);
        ERR_clear_error ();
    }
    return rc;
}

int
sc_hkdf (const uint8_t *salt, size_t salt_len,
         const uint8_t *ikm, size_t ikm_len,
         const uint8_t *info, size_t info_len,
         uint8_t *okm, size_t okm_len)
{
    //  RFC 5869: L <= 255 * HashLen. OpenSSL checks it too; we check first
    //  so the limit does not depend on the provider.
    if (okm_len == 0 || okm_len > SC_HKDF_MAX)
        return -1;
    return s_hkdf (EVP_KDF_HKDF_MODE_EXTRACT_AND_EXPAND,
                   salt, salt_len, ikm, ikm_len, info, info_len, okm, okm_len);
}

int
sc_hkdf_extract (const uint8_t *salt, size_t salt_len,
                 const uint8_t *ikm, size_t ikm_len,
                 uint8_t prk [static SC_HASH_LEN])
{
    return s_hkdf (EVP_KDF_HKDF_MODE_EXTRACT_ONLY,
                   salt, salt_len, ikm, ikm_len, NULL, 0, prk, SC_HASH_LEN);
}

int
sc_hkdf_expand (const uint8_t prk [static SC_HASH_LEN],
                const uint8_t *info, size_t info_len,
                uint8_t *okm, size_t okm_len)
{
    if (okm_len == 0 || okm_len > SC_HKDF_MAX)
        return -1;
    return s_hkdf (EVP_KDF_HKDF_MODE_EXPAND_ONLY,
                   NULL, 0, prk, SC_HASH_LEN, info, info_len, okm, okm_len);
}


//  ---------------------------------------------------------------------
//  X25519

int
sc_x25519_keygen (uint8_t priv [static SC_KEY_LEN],
                  uint8_t pub [static SC_PUB_LEN])
{
    EVP_PKEY *pkey = EVP_PKEY_Q_keygen (NULL, NULL, "X25519");
    size_t priv_len = SC_KEY_LEN;
    size_t pub_len = SC_PUB_LEN;
    int rc = -1;
    if (pkey
    &&  EVP_PKEY_get_raw_private_key (pkey, priv, &priv_len) == 1
    &&  EVP_PKEY_get_raw_public_key (pkey, pub, &pub_len) == 1
    &&  priv_len == SC_KEY_LEN && pub_len == SC_PUB_LEN)
        rc = 0;
    EVP_PKEY_free (pkey);              //  wipes its copy of the scalar
    if (rc) {
        sc_wipe (priv, SC_KEY_LEN);
        ERR_clear_error ();
    }
    return rc;
}

int
sc_x25519_public (const uint8_t priv [static SC_KEY_LEN],
                  uint8_t pub [static SC_PUB_LEN])
{
    EVP_PKEY *pkey = EVP_PKEY_new_raw_private_key (EVP_PKEY_X25519, NULL,
                                                   priv, SC_KEY_LEN);
    size_t pub_len = SC_PUB_LEN;
    int rc = -1;
    if (pkey
    &&  EVP_PKEY_get_raw_public_key (pkey, pub, &pub_len) == 1
    &&  pub_len == SC_PUB_LEN)
        rc = 0;
    EVP_PKEY_free (pkey);
    if (rc)
        ERR_clear_error ();
    return rc;
}

//  What this wrapper does with the inputs RFC 7748 leaves open (Wycheproof
//  calls them "acceptable"):
//  - the top bit of the peer's u-coordinate is ignored (RFC 7748 §5 says
//    to mask it), and a non-canonical u (>= 2^255 - 19) is reduced mod p,
//    as the RFC requires: the result is the normal shared secret;
//  - a point on the quadratic twist is used as is (X25519 is twist
//    secure): normal shared secret;
//  - a low-order point (and any other input) that makes the result all
//    zeros is rejected: the peer could then force a known "secret".
//    OpenSSL 3 already fails the derivation in that case; we check again
//    ourselves so the guarantee does not depend on the provider.
//
//  Given a private key alone, OpenSSL computes its public key: a whole
//  scalar multiplication, as costly as the exchange itself, for a value
//  the exchange never reads (it uses our scalar and the peer's point).
//  s_x25519_own hands it a placeholder public key instead, so a login
//  costs the broker two multiplications, not three. The key object never
//  leaves sc_x25519.
static EVP_PKEY *
s_x25519_own (const uint8_t priv [static SC_KEY_LEN])
{
    static const uint8_t placeholder [SC_PUB_LEN] = { 0 };
    OSSL_PARAM params [] = {
        OSSL_PARAM_construct_octet_string (OSSL_PKEY_PARAM_PRIV_KEY,
                                           (void *) priv, SC_KEY_LEN),
        OSSL_PARAM_construct_octet_string (OSSL_PKEY_PARAM_PUB_KEY,
                                           (void *) placeholder, SC_PUB_LEN),
        OSSL_PARAM_construct_end ()
    };
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name (NULL, "X25519", NULL);
    EVP_PKEY *pkey = NULL;
    if (!ctx
    ||  EVP_PKEY_fromdata_init (ctx) != 1
    ||  EVP_PKEY_fromdata (ctx, &pkey, EVP_PKEY_KEYPAIR, params) != 1) {
        EVP_PKEY_free (pkey);
        pkey = NULL;
    }
    EVP_PKEY_CTX_free (ctx);
    return pkey;
}

int
sc_x25519 (const uint8_t priv [static SC_KEY_LEN],
           const uint8_t peer_pub [static SC_PUB_LEN],
           uint8_t shared [static SC_KEY_LEN])
{
    static const uint8_t zero [SC_KEY_LEN] = { 0 };
    EVP_PKEY *own = s_x25519_own (priv);
    EVP_PKEY *peer = EVP_PKEY_new_raw_public_key (EVP_PKEY_X25519, NULL,
                                                  peer_pub, SC_PUB_LEN);
    EVP_PKEY_CTX *ctx = own ? EVP_PKEY_CTX_new_from_pkey (NULL, own, NULL) : NULL;
    size_t shared_len = SC_KEY_LEN;
    //  Up to the derivation nothing depends on the peer's key being good:
    //  a failure there is ours. OpenSSL's derivation itself refuses an
    //  all-zero result, as the check after it does.
    int rc = SC_CRYPTO_FAILED;
    if (ctx && peer
    &&  EVP_PKEY_derive_init (ctx) == 1
    &&  EVP_PKEY_derive_set_peer (ctx, peer) == 1)
        rc = -1;
    if (rc == -1
    &&  EVP_PKEY_derive (ctx, shared, &shared_len) == 1
    &&  shared_len == SC_KEY_LEN
    &&  CRYPTO_memcmp (shared, zero, SC_KEY_LEN) != 0)
        rc = 0;
    EVP_PKEY_CTX_free (ctx);
    EVP_PKEY_free (peer);
    EVP_PKEY_free (own);
    if (rc) {
        sc_wipe (shared, SC_KEY_LEN);
        ERR_clear_error ();
    }
    return rc;
}


//  ---------------------------------------------------------------------
//  ChaCha20-Poly1305

//  OpenSSL counts in int: refuse what it cannot take in one update.
static bool
s_aead_len_ok (size_t ad_len, size_t len)
{
    return ad_len <= INT_MAX && len <= (size_t) INT_MAX - SC_TAG_LEN;
}

//  Seal with ctx: the cipher and key (both NULL when ctx is keyed
//  already), the nonce, the associated data, the text, the tag. On
//  failure out is wiped.
static int
s_aead_seal_ctx (EVP_CIPHER_CTX *ctx, const EVP_CIPHER *cipher, const uint8_t *key,
                 const uint8_t nonce [static SC_NONCE_LEN],
                 const uint8_t *ad, size_t ad_len,
                 const uint8_t *pt, size_t len, uint8_t *out)
{
    int out_len = 0;
    int rc = -1;
    //  The tag is read as a parameter straight from the provider: what
    //  EVP_CTRL_AEAD_GET_TAG turns into, without the ctrl's translation.
    OSSL_PARAM get_tag [] = {
        OSSL_PARAM_construct_octet_string (OSSL_CIPHER_PARAM_AEAD_TAG,
                                           out + len, SC_TAG_LEN),
        OSSL_PARAM_construct_end ()
    };
    //  The default IV length of chacha20-poly1305 is 12: no need to set it.
    if (ctx
    &&  EVP_EncryptInit_ex2 (ctx, cipher, key, nonce, NULL) == 1
    &&  (ad_len == 0 || EVP_EncryptUpdate (ctx, NULL, &out_len, ad, (int) ad_len) == 1)
    &&  (len == 0 || (EVP_EncryptUpdate (ctx, out, &out_len, pt, (int) len) == 1
                      && (size_t) out_len == len))
    &&  EVP_EncryptFinal_ex (ctx, out + len, &out_len) == 1
    &&  out_len == 0
    &&  EVP_CIPHER_CTX_get_params (ctx, get_tag) == 1)
        rc = 0;
    if (rc) {
        sc_wipe (out, len + SC_TAG_LEN);
        ERR_clear_error ();
    }
    return rc;
}

int
sc_aead_seal (const uint8_t key [static SC_KEY_LEN],
              const uint8_t nonce [static SC_NONCE_LEN],
              const uint8_t *ad, size_t ad_len,
              const uint8_t *pt, size_t len,
              uint8_t *out)
{
    const s_algs_t *alg = s_alg ();
    if (!out || (!ad && ad_len) || (!pt && len) || !s_aead_len_ok (ad_len, len) || !alg)
        return -1;
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new ();
    int rc = s_aead_seal_ctx (ctx, alg->aead, key, nonce, ad, ad_len, pt, len, out);
    EVP_CIPHER_CTX_free (ctx);         //  wipes the key schedule
    return rc;
}

//  Open with ctx, as s_aead_seal_ctx seals. OpenSSL decrypts as it goes
//  and only checks the tag in Final: the plaintext is written into out
//  first, and wiped there if the tag fails, so the caller never sees
//  unauthenticated bytes.
static int
s_aead_open_ctx (EVP_CIPHER_CTX *ctx, const EVP_CIPHER *cipher, const uint8_t *key,
                 const uint8_t nonce [static SC_NONCE_LEN],
                 const uint8_t *ad, size_t ad_len,
                 const uint8_t *in, size_t in_len, uint8_t *out)
{
    size_t len = in_len - SC_TAG_LEN;
    //  Copy the tag first: out may overlap in (in-place decryption), and
    //  the parameter wants a non-const pointer.
    uint8_t tag [SC_TAG_LEN];
    memcpy (tag, in + len, SC_TAG_LEN);
    //  The expected tag goes in with the nonce: the init call applies its
    //  parameters after the nonce (EVP_DecryptInit_ex2), which saves the
    //  separate EVP_CTRL_AEAD_SET_TAG call and its translation.
    OSSL_PARAM set_tag [] = {
        OSSL_PARAM_construct_octet_string (OSSL_CIPHER_PARAM_AEAD_TAG, tag, SC_TAG_LEN),
        OSSL_PARAM_construct_end ()
    };
    int out_len = 0;
    uint8_t final_block [16];
    //  Only the last step checks the tag: a failure before it is ours.
    int rc = SC_CRYPTO_FAILED;
    if (ctx
    &&  EVP_DecryptInit_ex2 (ctx, cipher, key, nonce, set_tag) == 1
    &&  (ad_len == 0 || EVP_DecryptUpdate (ctx, NULL, &out_len, ad, (int) ad_len) == 1)
    &&  (len == 0 || (EVP_DecryptUpdate (ctx, out, &out_len, in, (int) len) == 1
                      && (size_t) out_len == len)))
        rc = -1;
    if (rc == -1
    &&  EVP_DecryptFinal_ex (ctx, final_block, &out_len) == 1
    &&  out_len == 0)
        rc = 0;
    if (rc) {
        sc_wipe (out, len);
        ERR_clear_error ();
    }
    return rc;
}

int
sc_aead_open (const uint8_t key [static SC_KEY_LEN],
              const uint8_t nonce [static SC_NONCE_LEN],
              const uint8_t *ad, size_t ad_len,
              const uint8_t *in, size_t in_len,
              uint8_t *out)
{
    if (!in || in_len < SC_TAG_LEN)
        return -1;
    size_t len = in_len - SC_TAG_LEN;
    const s_algs_t *alg = s_alg ();
    if ((!out && len) || (!ad && ad_len) || !s_aead_len_ok (ad_len, len))
        return -1;
    if (!alg)
        return SC_CRYPTO_FAILED;
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new ();
    int rc = s_aead_open_ctx (ctx, alg->aead, key, nonce, ad, ad_len, in, in_len, out);
    EVP_CIPHER_CTX_free (ctx);
    return rc;
}

//  A key used many times. Setting a cipher context up (provider context,
//  key) costs about a third of sealing 300 bytes: it is done once per
//  direction here, and a later call passes only the nonce, which restarts
//  the message (ChaCha20 counter, Poly1305 key and lengths). One context
//  per direction, made on first use: a channel's sending key only ever
//  seals, its receiving key only opens.
struct _sc_aead_t {
    uint8_t key [SC_KEY_LEN];
    EVP_CIPHER_CTX *seal;
    EVP_CIPHER_CTX *open;
};

sc_aead_t *
sc_aead_new (const uint8_t key [static SC_KEY_LEN])
{
    sc_aead_t *self = calloc (1, sizeof (sc_aead_t));
    if (self)
        memcpy (self->key, key, SC_KEY_LEN);
    return self;
}

void
sc_aead_destroy (sc_aead_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    sc_aead_t *self = *self_p;
    EVP_CIPHER_CTX_free (self->seal);  //  wipes the key schedules
    EVP_CIPHER_CTX_free (self->open);
    sc_wipe (self, sizeof *self);
    free (self);
    *self_p = NULL;
}

//  The context of one direction, keyed; NULL when OpenSSL fails.
static EVP_CIPHER_CTX *
s_aead_keyed (sc_aead_t *self, EVP_CIPHER_CTX **ctx_p, const EVP_CIPHER *cipher, int enc)
{
    if (!*ctx_p) {
        EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new ();
        if (!ctx || EVP_CipherInit_ex2 (ctx, cipher, self->key, NULL, enc, NULL) != 1) {
            EVP_CIPHER_CTX_free (ctx);
            ERR_clear_error ();
            return NULL;
        }
        *ctx_p = ctx;
    }
    return *ctx_p;
}

int
sc_aead_seal_with (sc_aead_t *self,
                   const uint8_t nonce [static SC_NONCE_LEN],
                   const uint8_t *ad, size_t ad_len,
                   const uint8_t *pt, size_t len,
                   uint8_t *out)
{
    const s_algs_t *alg = s_alg ();
    if (!self || !out || (!ad && ad_len) || (!pt && len) || !s_aead_len_ok (ad_len, len)
    ||  !alg)
        return -1;
    EVP_CIPHER_CTX *ctx = s_aead_keyed (self, &self->seal, alg->aead, 1);
    if (!ctx) {
        sc_wipe (out, len + SC_TAG_LEN);
        return -1;
    }
    return s_aead_seal_ctx (ctx, NULL, NULL, nonce, ad, ad_len, pt, len, out);
}

int
sc_aead_open_with (sc_aead_t *self,
                   const uint8_t nonce [static SC_NONCE_LEN],
                   const uint8_t *ad, size_t ad_len,
                   const uint8_t *in, size_t in_len,
                   uint8_t *out)
{
    if (!self || !in || in_len < SC_TAG_LEN)
        return -1;
    size_t len = in_len - SC_TAG_LEN;
    const s_algs_t *alg = s_alg ();
    if ((!out && len) || (!ad && ad_len) || !s_aead_len_ok (ad_len, len) || !alg)
        return -1;
    EVP_CIPHER_CTX *ctx = s_aead_keyed (self, &self->open, alg->aead, 0);
    if (!ctx) {
        sc_wipe (out, len);
        return -1;
    }
    return s_aead_open_ctx (ctx, NULL, NULL, nonce, ad, ad_len, in, in_len, out);
}

void
sc_aead_nonce (uint64_t counter, uint8_t nonce [static SC_NONCE_LEN])
{
    memset (nonce, 0, 4);
    for (int i = 0; i < 8; i++)
        nonce [4 + i] = (uint8_t) (counter >> (56 - 8 * i));
}


//  ---------------------------------------------------------------------
//  Ed25519

//  y-coordinates (little-endian, sign bit clear) of the 8 points of small
//  order: 0 (order 4, both signs of x), 1 (the identity), two of order 8
//  (both signs each), p - 1 (order 2). Computed from the curve equation.
static const uint8_t s_small_order_y [5][32] = {
    { 0 },
    { 1 },
    {   0x26, 0xe8, 0x95, 0x8f, 0xc2, 0xb2, 0x27, 0xb0, 0x45, 0xc3, 0xf4, 0x89,
        0xf2, 0xef, 0x98, 0xf0, 0xd5, 0xdf, 0xac, 0x05, 0xd3, 0xc6, 0x33, 0x39,
        0xb1, 0x38, 0x02, 0x88, 0x6d, 0x53, 0xfc, 0x05 },
    {   0xc7, 0x17, 0x6a, 0x70, 0x3d, 0x4d, 0xd8, 0x4f, 0xba, 0x3c, 0x0b, 0x76,
        0x0d, 0x10, 0x67, 0x0f, 0x2a, 0x20, 0x53, 0xfa, 0x2c, 0x39, 0xcc, 0xc6,
        0x4e, 0xc7, 0xfd, 0x77, 0x92, 0xac, 0x03, 0x7a },
    {   0xec, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f },
};

//  True when an encoded point has small order (whatever its sign bit).
//  Not secret data: memcmp is fine.
static bool
s_ed25519_small_order (const uint8_t point [32])
{
    uint8_t y [32];
    memcpy (y, point, 32);
    y [31] &= 0x7f;
    for (size_t i = 0; i < sizeof s_small_order_y / sizeof s_small_order_y [0]; i++)
        if (memcmp (y, s_small_order_y [i], 32) == 0)
            return true;
    return false;
}

//  True when the encoded y is >= p = 2^255 - 19, i.e. not canonical.
static bool
s_ed25519_y_non_canonical (const uint8_t point [32])
{
    if (point [0] < 0xed || (point [31] & 0x7f) != 0x7f)
        return false;
    for (int i = 1; i < 31; i++)
        if (point [i] != 0xff)
            return false;
    return true;
}

//  Strictness. OpenSSL 3.0 (ossl_ed25519_verify) already enforces, and
//  tests/test_sc_crypto.c proves with every Wycheproof vector: S < L, a
//  public key that decodes to a point, a canonical R (it compares R's
//  bytes with its own encoding), exactly 64 bytes of signature. It is
//  lenient, and we add checks, on what Wycheproof does not cover:
//  - a public key of small order (e.g. the identity): one signature
//    (R = B, S = 1) then verifies for every message;
//  - a non-canonical public key (y >= p), e.g. p + 1 for the identity;
//  - an R of small order, which only a signer who plays with the
//    cofactor produces (libsodium rejects it too).
//  The length check is also ours, up front, so no other length reaches
//  OpenSSL.
static bool
s_ed25519_strict_ok (const uint8_t pub [SC_PUB_LEN], const uint8_t *sig)
{
    return !s_ed25519_small_order (pub)
        && !s_ed25519_y_non_canonical (pub)
        && !s_ed25519_small_order (sig);
}

int
sc_ed25519_verify (const uint8_t pub [static SC_PUB_LEN],
                   const uint8_t *msg, size_t len,
                   const uint8_t *sig, size_t sig_len)
{
    if (!sig || sig_len != SC_SIG_LEN || (!msg && len)
    ||  !s_ed25519_strict_ok (pub, sig))
        return -1;
    EVP_PKEY *pkey = EVP_PKEY_new_raw_public_key (EVP_PKEY_ED25519, NULL,
                                                  pub, SC_PUB_LEN);
    EVP_MD_CTX *ctx = EVP_MD_CTX_new ();
    int rc = SC_CRYPTO_FAILED;
    if (pkey && ctx
    &&  EVP_DigestVerifyInit_ex (ctx, NULL, NULL, NULL, NULL, pkey, NULL) == 1) {
        //  1 valid, 0 not; below 0, or 0 with an error queued, OpenSSL
        //  could not check (a bad signature queues no error)
        ERR_clear_error ();
        int verdict = EVP_DigestVerify (ctx, sig, sig_len, s_nonnull (msg), len);
        rc = verdict == 1 ? 0 : verdict == 0 && ERR_peek_error () == 0 ? -1
                                                                     : SC_CRYPTO_FAILED;
    }
    EVP_MD_CTX_free (ctx);
    EVP_PKEY_free (pkey);
    if (rc)
        ERR_clear_error ();
    return rc;
}

int
sc_ed25519_sign_seed (const uint8_t seed [static SC_KEY_LEN],
                      const uint8_t *msg, size_t len,
                      uint8_t sig [static SC_SIG_LEN])
{
    if (!msg && len)
        return -1;
    EVP_PKEY *pkey = EVP_PKEY_new_raw_private_key (EVP_PKEY_ED25519, NULL,
                                                   seed, SC_KEY_LEN);
    EVP_MD_CTX *ctx = EVP_MD_CTX_new ();
    size_t sig_len = SC_SIG_LEN;
    int rc = -1;
    if (pkey && ctx
    &&  EVP_DigestSignInit_ex (ctx, NULL, NULL, NULL, NULL, pkey, NULL) == 1
    &&  EVP_DigestSign (ctx, sig, &sig_len, s_nonnull (msg), len) == 1
    &&  sig_len == SC_SIG_LEN)
        rc = 0;
    EVP_MD_CTX_free (ctx);
    EVP_PKEY_free (pkey);              //  wipes its copy of the seed
    if (rc) {
        sc_wipe (sig, SC_SIG_LEN);
        ERR_clear_error ();
    }
    return rc;
}


//  ---------------------------------------------------------------------
//  Fingerprints and safety numbers

int
sc_fingerprint (const uint8_t pub [static SC_PUB_LEN],
                char out [static SC_FPR_LEN + 1])
{
    static const char hex [] = "0123456789abcdef";
    uint8_t hash [SC_HASH_LEN];
    if (sc_sha256 (pub, SC_PUB_LEN, hash)) {
        out [0] = 0;
        return -1;
    }
    char *p = out;
    for (size_t i = 0; i < SC_HASH_LEN; i++) {
        if (i > 0 && i % 2 == 0)
            *p++ = ':';                //  a group is 2 bytes, 4 hex chars
        *p++ = hex [hash [i] >> 4];
        *p++ = hex [hash [i] & 15];
    }
    *p = 0;
    return 0;
}

//  ID(x) = u8 (len (name_x)) || name_x || key_x, as in the E2E transcript.
//  0, or -1 for a name of 0 or more than 255 bytes.
static int
s_safety_id (const char *name, const uint8_t *pub, uint8_t id [static 1 + 255 + SC_PUB_LEN],
             size_t *len)
{
    size_t name_len = name ? strlen (name) : 0;
    if (name_len == 0 || name_len > 255)
        return -1;
    id [0] = (uint8_t) name_len;
    memcpy (id + 1, name, name_len);   // NOLINT(bugprone-not-null-terminated-result): length-prefixed, not a string
    memcpy (id + 1 + name_len, pub, SC_PUB_LEN);
    *len = 1 + name_len + SC_PUB_LEN;
    return 0;
}

//  H = SHA-512 (label || 0x00 || min (ID(a), ID(b)) || max (ID(a), ID(b))):
//  ordering the two (name, key) pairs bytewise makes both ends compute
//  the same number, and the names are bound as well as the keys.
static int
s_safety_hash (const char *name_a, const uint8_t *pub_a,
               const char *name_b, const uint8_t *pub_b, uint8_t hash [64])
{
    uint8_t id_a [1 + 255 + SC_PUB_LEN], id_b [1 + 255 + SC_PUB_LEN];
    size_t len_a = 0, len_b = 0;
    if (s_safety_id (name_a, pub_a, id_a, &len_a)
    ||  s_safety_id (name_b, pub_b, id_b, &len_b))
        return -1;
    //  The first byte is the name's length, so neither is a proper
    //  prefix of the other: the common part decides, or they are equal.
    size_t common = len_a < len_b ? len_a : len_b;
    bool a_first = memcmp (id_a, id_b, common) <= 0;
    const uint8_t *lo = a_first ? id_a : id_b, *hi = a_first ? id_b : id_a;
    size_t lo_len = a_first ? len_a : len_b, hi_len = a_first ? len_b : len_a;
    static const uint8_t label [] = SC_SAFETY_LABEL;   //  with its NUL: the 0x00
    const s_algs_t *alg = s_alg ();
    EVP_MD_CTX *ctx = EVP_MD_CTX_new ();
    unsigned int hash_len = 0;
    int ok = alg && ctx
          && EVP_DigestInit_ex (ctx, alg->sha512, NULL) == 1
          && EVP_DigestUpdate (ctx, label, sizeof label) == 1
          && EVP_DigestUpdate (ctx, lo, lo_len) == 1
          && EVP_DigestUpdate (ctx, hi, hi_len) == 1
          && EVP_DigestFinal_ex (ctx, hash, &hash_len) == 1
          && hash_len == 64;
    EVP_MD_CTX_free (ctx);
    if (!ok)
        return s_fail ();
    return 0;
}

int
sc_safety_number (const char *name_a, const uint8_t pub_a [static SC_PUB_LEN],
                  const char *name_b, const uint8_t pub_b [static SC_PUB_LEN],
                  char out [static SC_SAFETY_LEN + 1])
{
    uint8_t hash [64];
    out [0] = 0;
    if (s_safety_hash (name_a, pub_a, name_b, pub_b, hash))
        return -1;
    char *p = out;
    for (size_t i = 0; i < 12; i++) {
        uint64_t value = 0;            //  H[5i..5i+4], 40-bit big-endian
        for (size_t j = 0; j < 5; j++)
            value = (value << 8) | hash [5 * i + j];
        if (i > 0)
            *p++ = '-';
        //  5 digits + NUL fit: value % 100000 < 100000
        snprintf (p, 6, "%05u", (unsigned int) (value % 100000));
        p += 5;
    }
    *p = 0;
    return 0;
}


//  ---------------------------------------------------------------------
//  The protocol's key schedule

int
sc_hkdf_expand_label (const uint8_t prk [static SC_HASH_LEN], const char *label,
                      const uint8_t *ctx, size_t ctx_len, uint8_t out [static SC_KEY_LEN])
{
    uint8_t info [128];
    size_t ll = strlen (label);
    if (ll + ctx_len > sizeof info)
        return -1;
    memcpy (info, label, ll);   // NOLINT(bugprone-not-null-terminated-result): KDF info, not a string
    if (ctx_len)
        memcpy (info + ll, ctx, ctx_len);
    return sc_hkdf_expand (prk, info, ll + ctx_len, out, SC_KEY_LEN);
}

int
sc_hash_chain (const uint8_t prev [static SC_HASH_LEN],
               const uint8_t *a, size_t alen, const uint8_t *b, size_t blen,
               const uint8_t *c, size_t clen, uint8_t out [static SC_HASH_LEN])
{
    sc_hash_t *h = sc_hash_new ();
    int rc = (h && !sc_hash_update (h, prev, SC_HASH_LEN)
              && (!alen || !sc_hash_update (h, a, alen))
              && (!blen || !sc_hash_update (h, b, blen))
              && (!clen || !sc_hash_update (h, c, clen))
              && !sc_hash_peek (h, out)) ? 0 : -1;
    sc_hash_destroy (&h);
    return rc;
}
