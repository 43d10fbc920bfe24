/*  sc_key: long-term Ed25519 identities and the broker's X.509 certificate.

    An sc_key_t holds an Ed25519 key (private, or public only). Private keys
    are read from PKCS#8 PEM, encrypted under a password (as made by the
    keys/ script or `openssl genpkey -aes-256-cbc`); a wrong password is
    SC_KEY_EBADPASS, never a crash. Public keys travel raw (32 bytes).
    The certificate helpers check the broker's chain against the CA the
    client ships with and the expected broker name (CN or DNS SAN).

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at https://mozilla.org/MPL/2.0/.
*/
#ifndef SC_KEY_H_INCLUDED
#define SC_KEY_H_INCLUDED

#include "sc_crypto.h"

typedef struct _sc_key_t sc_key_t;

/* Results of loading (negative, distinct; sc_key_strerror names them). */
typedef enum {
    SC_KEY_OK = 0,
    SC_KEY_EIO = -1,        /* cannot open or read the file */
    SC_KEY_EBADPASS = -2,   /* encrypted key, wrong (or no) password */
    SC_KEY_EFORMAT = -3,    /* not a PEM key / certificate we can parse */
    SC_KEY_ETYPE = -4,      /* parsed, but not Ed25519 */
    SC_KEY_ECHAIN = -5,     /* certificate does not chain to the CA */
    SC_KEY_ENAME = -6,      /* certificate is not for the expected name */
    SC_KEY_EINTERNAL = -7,
    SC_KEY_EMISMATCH = -8,  /* the private key is not the certificate's key */
    SC_KEY_EEXPIRED = -9,   /* the certificate's validity has ended */
    SC_KEY_ENOTYET = -10,   /* the certificate's validity has not begun */
    SC_KEY_EPERM = -11,     /* own private key file open to group or others */
    SC_KEY_ECOST = -12      /* scrypt beyond OpenSSL's memory limit */
} sc_key_err_t;

const char *sc_key_strerror (int err);

/* The password in the first line of a file (without its newline) into
   password, NUL-terminated. Read with open/read into password itself and
   a buffer that is wiped, never through stdio, whose buffer would keep a
   copy; every byte of password after the NUL is zeroed. 0, SC_KEY_EIO
   (cannot open or read), or SC_KEY_EFORMAT (the first line is longer
   than size - 1 bytes); on failure password is all zero. */
int sc_key_read_password (const char *path, char *password, size_t size) SC_MUST_CHECK;

/* Load an Ed25519 private key from a PEM file. The password (may be NULL
   for an unencrypted key) is only read, never kept. On failure returns
   NULL and sets *err. A file owned by this process's user that group or
   others can access (mode & 077) is refused, as ssh does: SC_KEY_EPERM,
   and `chmod 600 FILE` is the fix. */
sc_key_t *sc_key_load_private (const char *path, const char *password, int *err);
/* Same from a PEM buffer in memory. */
sc_key_t *sc_key_private_from_pem (const char *pem, size_t len,
                                   const char *password, int *err);
/* Load an Ed25519 public key (SubjectPublicKeyInfo PEM). */
sc_key_t *sc_key_load_public (const char *path, int *err);
/* A public key from its raw 32 bytes (as received from the broker). */
sc_key_t *sc_key_from_raw (const uint8_t pub[static SC_PUB_LEN]);
/* A private key from a raw 32-byte seed (tests). */
sc_key_t *sc_key_from_seed (const uint8_t seed[static SC_KEY_LEN]);
/* A new random Ed25519 private key. */
sc_key_t *sc_key_generate (void);
void sc_key_destroy (sc_key_t **self_p);

/* The private key as PKCS#8 PEM ("BEGIN ENCRYPTED PRIVATE KEY")
   encrypted under password (not empty) with PBES2: scrypt N=2^14, r=8,
   p=5, a random salt, and AES-256-CBC, as keys/secchat-keys and
   `openssl pkcs8 -topk8 -scrypt` write it (keys/README.md says why
   these numbers). *pem is malloc'd and NUL-terminated, the caller frees
   it; *len is its length. 0 or -1. */
int sc_key_private_pem (const sc_key_t *self, const char *password,
                        char **pem, size_t *len) SC_MUST_CHECK;
/* The public key as SubjectPublicKeyInfo PEM ("BEGIN PUBLIC KEY"), as
   `openssl pkey -pubout` writes it and the broker's registry reads it.
   *pem as above. 0 or -1. */
int sc_key_public_pem (const sc_key_t *self, char **pem, size_t *len) SC_MUST_CHECK;
/* Write the private key to a new file, mode 0600 (an existing file is
   never replaced: SC_KEY_EIO), as PKCS#8 PEM encrypted under password
   with scrypt (N = 2^14, r = 8, p = 5) and AES-256-CBC, as the README's
   `openssl pkcs8 -topk8 -scrypt` makes it. 0 or a sc_key_err_t. */
int sc_key_save_private (const sc_key_t *self, const char *path,
                         const char *password) SC_MUST_CHECK;

bool sc_key_has_private (const sc_key_t *self);
/* The raw public key. */
int sc_key_public_raw (const sc_key_t *self, uint8_t pub[static SC_PUB_LEN]) SC_MUST_CHECK;
int sc_key_sign (const sc_key_t *self, const uint8_t *msg, size_t len,
                 uint8_t sig[static SC_SIG_LEN]) SC_MUST_CHECK;
/* Strict verification (see sc_ed25519_verify). 0 valid, -1 not,
   SC_CRYPTO_FAILED when it could not be checked. */
int sc_key_verify (const sc_key_t *self, const uint8_t *msg, size_t len,
                   const uint8_t *sig, size_t sig_len) SC_MUST_CHECK;

/* Sign / verify label || 0x00 || data: every signature of the protocol
   carries its own label, so none can stand for another. data is at most
   128 bytes, the label at most 64. */
int sc_key_sign_labelled (const sc_key_t *self, const char *label,
                          const uint8_t *data, size_t len,
                          uint8_t sig[static SC_SIG_LEN]) SC_MUST_CHECK;
int sc_key_verify_labelled (const sc_key_t *self, const char *label,
                            const uint8_t *data, size_t len,
                            const uint8_t sig[static SC_SIG_LEN]) SC_MUST_CHECK;

/* A secret for local use derived from the private key: HKDF-SHA256
   with the raw 32-byte Ed25519 seed as input keying material, salt
   "secchat/1 key derive" and info = label (ASCII, 1..64 bytes). The
   same key and label always give the same secret, which nobody without
   the private key can compute. The seed is wiped after use. -1 (out
   wiped) for a public key or a bad label. */
int sc_key_derive (const sc_key_t *self, const char *label,
                   uint8_t out[static SC_KEY_LEN]) SC_MUST_CHECK;

/* ---- Certificates --------------------------------------------------- */
typedef struct _sc_ca_t sc_ca_t;

/* A trust store from a PEM file holding one or more CA certificates. */
sc_ca_t *sc_ca_load (const char *path, int *err);
void sc_ca_destroy (sc_ca_t **self_p);

/* Read the first certificate of a PEM file as DER (the broker sends it).
   *der is malloc'd, the caller frees it. */
int sc_cert_load_der (const char *path, uint8_t **der, size_t *der_len) SC_MUST_CHECK;
/* Verify a DER certificate: it must chain to the store, be valid now,
   have an Ed25519 key, and name `name` as DNS SAN (or CN when it has no
   SAN). On success returns the certificate's public key; NULL and *err
   otherwise. */
sc_key_t *sc_cert_verify (const sc_ca_t *ca, const uint8_t *der, size_t der_len,
                          const char *name, int *err);
/* The names a DER certificate is for, as sc_cert_verify matches them:
   its DNS SANs, or its CNs when it has no DNS SAN. Joined by ", " into
   buf (size bytes, at least 8), every byte outside printable ASCII
   shown as '?', cut with "..." when they do not fit. Returns how many
   names there are (0: none, buf ""), or -1 when the certificate does
   not parse. */
int sc_cert_names (const uint8_t *der, size_t der_len, char *buf, size_t size);
/* The broker's own check of its identity: the DER certificate must
   parse, hold the public half of key (a private key), and be valid at
   now (seconds since the epoch): SC_KEY_OK, SC_KEY_EFORMAT,
   SC_KEY_EMISMATCH, SC_KEY_ENOTYET or SC_KEY_EEXPIRED. *not_after (if
   not NULL) gets the end of the validity, in seconds since the epoch,
   whenever the certificate parsed. */
int sc_cert_check (const uint8_t *der, size_t der_len, const sc_key_t *key,
                   int64_t now, int64_t *not_after) SC_MUST_CHECK;

#endif
