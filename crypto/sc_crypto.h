/*  sc_crypto: the primitives secchat is built from, as thin wrappers over
    OpenSSL 3 EVP. Fixed sizes, 0 / -1 results, nothing to misuse: callers
    never see an OpenSSL type. Every function that verifies or decrypts is
    warn_unused_result; on failure outputs are wiped.

    Suite 1 (the only one): X25519, Ed25519, HKDF-SHA256, HMAC-SHA256,
    ChaCha20-Poly1305 (96-bit nonce, 128-bit tag), SHA-256.

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at https://mozilla.org/MPL/2.0/.
*/
#ifndef SC_CRYPTO_H_INCLUDED
#define SC_CRYPTO_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SC_MUST_CHECK __attribute__ ((warn_unused_result))

#define SC_KEY_LEN       32      /* symmetric keys, X25519 keys and secrets */
#define SC_HASH_LEN      32      /* SHA-256, HMAC-SHA256 */
#define SC_NONCE_LEN     12      /* ChaCha20-Poly1305 nonce */
#define SC_TAG_LEN       16      /* ChaCha20-Poly1305 tag */
#define SC_RANDOM_LEN    32      /* handshake nonces */
#define SC_SIG_LEN       64      /* Ed25519 signature */
#define SC_PUB_LEN       32      /* Ed25519 / X25519 public key, raw */
#define SC_HKDF_MAX      ((size_t) 255 * SC_HASH_LEN)
#define SC_SAFETY_LEN    71      /* 12 groups of 5 digits joined by '-' */
#define SC_FPR_LEN       79      /* 32 bytes hex in 16 groups of 4 joined by ':' */

/* What a check (a MAC, a signature, a box, an exchange) returns when it
   could not be computed at all (memory, an OpenSSL call failing): no
   verdict on its input, unlike -1, which says the input is bad. */
#define SC_CRYPTO_FAILED (-2)

/* Wipe a buffer so the compiler cannot elide it (OPENSSL_cleanse). */
void sc_wipe (void *buf, size_t len);

/* A thread that is done with cryptography frees what OpenSSL keeps for
   it (its random generators, its error queue) now, not in a destructor
   run as the thread exits: a thread that signals "done" and then exits
   would otherwise race the process's own exit and OpenSSL's clean-up. */
void sc_crypto_thread_stop (void);

/* Fill buf with len bytes from the CSPRNG. */
int sc_random (uint8_t *buf, size_t len) SC_MUST_CHECK;

/* Constant-time equality of two buffers of the same length. */
bool sc_equal (const uint8_t *a, const uint8_t *b, size_t len) SC_MUST_CHECK;

/* ---- SHA-256, one shot and incremental (transcripts) ---------------- */
int sc_sha256 (const uint8_t *data, size_t len, uint8_t out[static SC_HASH_LEN]) SC_MUST_CHECK;

typedef struct _sc_hash_t sc_hash_t;
sc_hash_t *sc_hash_new (void);                 /* SHA-256 context, or NULL */
void sc_hash_destroy (sc_hash_t **self_p);
int sc_hash_update (sc_hash_t *self, const uint8_t *data, size_t len) SC_MUST_CHECK;
/* Digest of everything so far; the context stays usable (copy then final). */
int sc_hash_peek (sc_hash_t *self, uint8_t out[static SC_HASH_LEN]) SC_MUST_CHECK;

/* ---- HMAC-SHA256 and HKDF-SHA256 (RFC 2104, RFC 5869) --------------- */
int sc_hmac (const uint8_t key[static SC_KEY_LEN],
             const uint8_t *data, size_t len,
             uint8_t out[static SC_HASH_LEN]) SC_MUST_CHECK;
/* Verify an HMAC in constant time: 0 when it matches, -1 when it does
   not, SC_CRYPTO_FAILED when it could not be computed. */
int sc_hmac_verify (const uint8_t key[static SC_KEY_LEN],
                    const uint8_t *data, size_t len,
                    const uint8_t mac[static SC_HASH_LEN]) SC_MUST_CHECK;
/* HKDF with arbitrary salt/ikm/info lengths (salt may be NULL, 0); okm_len
   up to SC_HKDF_MAX, else -1. */
int sc_hkdf (const uint8_t *salt, size_t salt_len,
             const uint8_t *ikm, size_t ikm_len,
             const uint8_t *info, size_t info_len,
             uint8_t *okm, size_t okm_len) SC_MUST_CHECK;
int sc_hkdf_extract (const uint8_t *salt, size_t salt_len,
                     const uint8_t *ikm, size_t ikm_len,
                     uint8_t prk[static SC_HASH_LEN]) SC_MUST_CHECK;
int sc_hkdf_expand (const uint8_t prk[static SC_HASH_LEN],
                    const uint8_t *info, size_t info_len,
                    uint8_t *okm, size_t okm_len) SC_MUST_CHECK;

/* ---- The protocol's key schedule ------------------------------------- */
/* HKDF-Expand of SC_KEY_LEN bytes with info = label (ASCII, no NUL) ||
   ctx; ctx may be empty. */
int sc_hkdf_expand_label (const uint8_t prk[static SC_HASH_LEN],
                          const char *label, const uint8_t *ctx, size_t ctx_len,
                          uint8_t out[static SC_KEY_LEN]) SC_MUST_CHECK;
/* out = SHA-256 (prev || a || b || c): the next transcript hash. Empty
   parts are skipped. */
int sc_hash_chain (const uint8_t prev[static SC_HASH_LEN],
                   const uint8_t *a, size_t alen, const uint8_t *b, size_t blen,
                   const uint8_t *c, size_t clen,
                   uint8_t out[static SC_HASH_LEN]) SC_MUST_CHECK;

/* ---- X25519 (RFC 7748) ---------------------------------------------- */
/* A fresh ephemeral key pair; priv is secret, wipe it after use. */
int sc_x25519_keygen (uint8_t priv[static SC_KEY_LEN],
                      uint8_t pub[static SC_PUB_LEN]) SC_MUST_CHECK;
/* Public key of a private scalar (for tests and vectors). */
int sc_x25519_public (const uint8_t priv[static SC_KEY_LEN],
                      uint8_t pub[static SC_PUB_LEN]) SC_MUST_CHECK;
/* Shared secret. Rejects (-1, output wiped) an all-zero result, which is
   what every low-order peer public key produces; SC_CRYPTO_FAILED (output
   wiped) when it could not be computed. */
int sc_x25519 (const uint8_t priv[static SC_KEY_LEN],
               const uint8_t peer_pub[static SC_PUB_LEN],
               uint8_t shared[static SC_KEY_LEN]) SC_MUST_CHECK;

/* ---- ChaCha20-Poly1305 (RFC 8439) ----------------------------------- */
/* out must hold len + SC_TAG_LEN bytes: ciphertext then tag. */
int sc_aead_seal (const uint8_t key[static SC_KEY_LEN],
                  const uint8_t nonce[static SC_NONCE_LEN],
                  const uint8_t *ad, size_t ad_len,
                  const uint8_t *pt, size_t len,
                  uint8_t *out) SC_MUST_CHECK;
/* in is ciphertext || tag, in_len >= SC_TAG_LEN (else -1); out holds
   in_len - SC_TAG_LEN bytes. No plaintext is released unless the tag
   verifies; on failure out is wiped and -1 returned (SC_CRYPTO_FAILED
   when the cipher could not be run at all). */
int sc_aead_open (const uint8_t key[static SC_KEY_LEN],
                  const uint8_t nonce[static SC_NONCE_LEN],
                  const uint8_t *ad, size_t ad_len,
                  const uint8_t *in, size_t in_len,
                  uint8_t *out) SC_MUST_CHECK;
/* The nonce for counter n: 4 zero bytes then n as 64-bit big-endian. */
void sc_aead_nonce (uint64_t counter, uint8_t nonce[static SC_NONCE_LEN]);

/* The same AEAD under a key that is used many times (a session's
   direction): the cipher is set up with the key once, on first use, and
   each call only sets the nonce. Same bytes, same results and the same
   failures as sc_aead_seal / sc_aead_open. The object keeps the key,
   wiped when destroyed; one thread at a time. */
typedef struct _sc_aead_t sc_aead_t;
sc_aead_t *sc_aead_new (const uint8_t key[static SC_KEY_LEN]);
void sc_aead_destroy (sc_aead_t **self_p);
int sc_aead_seal_with (sc_aead_t *self,
                       const uint8_t nonce[static SC_NONCE_LEN],
                       const uint8_t *ad, size_t ad_len,
                       const uint8_t *pt, size_t len,
                       uint8_t *out) SC_MUST_CHECK;
int sc_aead_open_with (sc_aead_t *self,
                       const uint8_t nonce[static SC_NONCE_LEN],
                       const uint8_t *ad, size_t ad_len,
                       const uint8_t *in, size_t in_len,
                       uint8_t *out) SC_MUST_CHECK;

/* ---- Ed25519 on raw keys (RFC 8032) --------------------------------- */
/* Strict verification: rejects non-canonical S (S >= L), wrong lengths,
   and malformed public keys. 0 when valid, -1 otherwise, SC_CRYPTO_FAILED
   when OpenSSL could not run the check (it reported an error). OpenSSL
   3.0 reports some failures inside its Ed25519 check (an allocation) as
   a signature that does not verify, without an error: those are -1. */
int sc_ed25519_verify (const uint8_t pub[static SC_PUB_LEN],
                       const uint8_t *msg, size_t len,
                       const uint8_t *sig, size_t sig_len) SC_MUST_CHECK;
/* Sign with a raw 32-byte seed (for tests and vectors; identities use
   sc_key_sign). */
int sc_ed25519_sign_seed (const uint8_t seed[static SC_KEY_LEN],
                          const uint8_t *msg, size_t len,
                          uint8_t sig[static SC_SIG_LEN]) SC_MUST_CHECK;

/* ---- What users compare ---------------------------------------------- */
/* Fingerprint of a raw Ed25519 public key: SHA-256 of it, lower-case hex,
   16 groups of 4 joined by ':' (79 chars + NUL). */
int sc_fingerprint (const uint8_t pub[static SC_PUB_LEN],
                    char out[static SC_FPR_LEN + 1]) SC_MUST_CHECK;
/* Safety number of a chat between user a (name_a, pub_a) and user b: the
   same for both sides whatever the order, and bound to both names and
   both keys. See docs/PROTOCOL.md "Safety number". 71 chars + NUL; -1
   for a name of 0 or more than 255 bytes. */
int sc_safety_number (const char *name_a, const uint8_t pub_a[static SC_PUB_LEN],
                      const char *name_b, const uint8_t pub_b[static SC_PUB_LEN],
                      char out[static SC_SAFETY_LEN + 1]) SC_MUST_CHECK;

#endif
