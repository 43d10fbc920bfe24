/*  sc_key: long-term Ed25519 identities and the broker's X.509 certificate
    (see sc_key.h for the contract).

    Keys and certificates are read from files into memory and parsed from
    there, so that a file is opened once, its mode can be checked, and the
    bytes of a private key can be wiped afterwards. Failures are mapped to
    the distinct sc_key_err_t codes and OpenSSL's error queue is cleared,
    so that nothing is left behind for an unrelated later call.

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at https://mozilla.org/MPL/2.0/.
*/
#include "sc_key.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/pkcs12.h>
#include <openssl/proverr.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>
#include <openssl/x509v3.h>

//  Larger files are not keys or certificates we would ever write; the
//  limit keeps a wrong path from eating memory.
#define SC_KEY_FILE_MAX  (1024L * 1024)
//  The broker's certificate travels in one message; nothing bigger.
#define SC_CERT_DER_MAX  4096
//  scrypt for the keys we write (keys/README.md): N=2^14, r=8, p=5,
//  16 MiB, within OpenSSL's 32 MiB limit.
#define SC_KEY_SCRYPT_N  16384
#define SC_KEY_SCRYPT_R  8
#define SC_KEY_SCRYPT_P  5
//  A random salt of 128 bits (OpenSSL 3.0 would take 64).
#define SC_KEY_SALT_LEN  16

struct _sc_key_t {
    EVP_PKEY *pkey;                 //  always Ed25519
    bool has_private;
};

struct _sc_ca_t {
    X509_STORE *store;
};

static void
s_set_err (int *err, int code)
{
    if (err)
        *err = code;
}

//  Error exit of the loaders: forget OpenSSL's errors, report code.
static void *
s_fail (int *err, int code)
{
    ERR_clear_error ();
    s_set_err (err, code);
    return NULL;
}

const char *
sc_key_strerror (int err)
{
    switch (err) {
        case SC_KEY_OK:
            return "no error";
        case SC_KEY_EIO:
            return "cannot open or read the file";
        case SC_KEY_EBADPASS:
            return "wrong password for the private key (or none given for an encrypted key, or the key file is damaged)";
        case SC_KEY_EFORMAT:
            return "not a PEM key or certificate that secchat can read";
        case SC_KEY_ETYPE:
            return "the key is not an Ed25519 key";
        case SC_KEY_ECHAIN:
            return "the certificate is not signed by the trusted CA, or is expired or not yet valid";
        case SC_KEY_ENAME:
            return "the certificate is not for the expected broker name";
        case SC_KEY_EINTERNAL:
            return "internal error (out of memory or OpenSSL failure)";
        case SC_KEY_EMISMATCH:
            return "the private key does not match the certificate";
        case SC_KEY_EEXPIRED:
            return "the certificate has expired";
        case SC_KEY_ENOTYET:
            return "the certificate is not valid yet";
        case SC_KEY_EPERM:
            return "UNPROTECTED PRIVATE KEY FILE: group or others can access it (chmod 600 it)";
        case SC_KEY_ECOST:
            return "the key's scrypt parameters need more memory than OpenSSL allows "
                   "(32 MiB, so at most N=2^14 with r=8): re-encrypt it with "
                   "-scrypt_N 16384 -scrypt_r 8 -scrypt_p 5 (keys/README.md)";
        default:
            return "unknown error";
    }
}


//  ---------------------------------------------------------------------
//  Files

//  Reads a regular file into a malloc'd, NUL-terminated buffer; the
//  caller wipes and frees it. Returns 0 or an sc_key_err_t code; *st_p
//  gets the file's status (of the file read, not of a path looked up
//  again).
static int
s_read_file (const char *path, char **buf_p, size_t *len_p, struct stat *st_p)
{
    if (!path)
        return SC_KEY_EIO;
    int fd = open (path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return SC_KEY_EIO;
    struct stat st;
    if (fstat (fd, &st) || !S_ISREG (st.st_mode)) {
        close (fd);
        return SC_KEY_EIO;
    }
    if (st.st_size > SC_KEY_FILE_MAX) {
        close (fd);
        return SC_KEY_EFORMAT;
    }
    size_t cap = (size_t) st.st_size;
    char *buf = malloc (cap + 1);
    if (!buf) {
        close (fd);
        return SC_KEY_EINTERNAL;
    }
    size_t len = 0;
    bool failed = false;
    while (len < cap) {
        ssize_t n = read (fd, buf + len, cap - len);
        if (n < 0 && errno == EINTR)
            continue;
        failed = n < 0;
        if (n <= 0)
            break;                  //  error, or the file shrank
        len += (size_t) n;
    }
    close (fd);
    if (failed) {
        OPENSSL_cleanse (buf, cap + 1);
        free (buf);
        return SC_KEY_EIO;
    }
    buf [len] = 0;
    *buf_p = buf;
    *len_p = len;
    if (st_p)
        *st_p = st;
    return SC_KEY_OK;
}

int
sc_key_read_password (const char *path, char *password, size_t size)
{
    if (!password || size < 2)
        return SC_KEY_EINTERNAL;
    OPENSSL_cleanse (password, size);
    int fd = path ? open (path, O_RDONLY | O_CLOEXEC) : -1;
    if (fd < 0)
        return SC_KEY_EIO;
    //  Read until the end of the first line or a full buffer; the rest of
    //  the file is never read (but for one byte, to see whether a line
    //  that fills the buffer ends there).
    size_t len = 0, line = 0;
    bool ended = false, failed = false;
    while (!ended && len < size - 1) {
        ssize_t n = read (fd, password + len, size - 1 - len);
        if (n < 0 && errno == EINTR)
            continue;
        failed = n < 0;
        if (n <= 0)
            break;
        len += (size_t) n;
        while (line < len && password [line] != '\n' && password [line] != '\r'
               && password [line] != 0)
            line++;
        ended = line < len;
    }
    bool fits = true;
    if (!failed && !ended && len == size - 1) {
        //  A full buffer: the line fits if the file ends or the line does.
        char next = 0;
        ssize_t n;
        while ((n = read (fd, &next, 1)) < 0 && errno == EINTR)
            ;
        failed = n < 0;
        fits = n == 0 || next == '\n' || next == '\r' || next == 0;
        OPENSSL_cleanse (&next, sizeof next);
    }
    close (fd);
    if (!failed && !ended)
        line = len;                     //  the line ends with the file, or fills it
    int rc = failed ? SC_KEY_EIO : fits ? SC_KEY_OK : SC_KEY_EFORMAT;
    if (rc)
        OPENSSL_cleanse (password, size);
    else
        OPENSSL_cleanse (password + line, size - line);
    return rc;
}

static void
s_free_file (char **buf_p, size_t len)
{
    if (*buf_p) {
        OPENSSL_cleanse (*buf_p, len + 1);
        free (*buf_p);
        *buf_p = NULL;
    }
}


//  ---------------------------------------------------------------------
//  Keys

//  Takes ownership of pkey: wraps it if it is Ed25519, else frees it.
static sc_key_t *
s_key_wrap (EVP_PKEY *pkey, bool has_private, int *err)
{
    if (!pkey)
        return s_fail (err, SC_KEY_EINTERNAL);
    if (EVP_PKEY_get_id (pkey) != EVP_PKEY_ED25519) {
        EVP_PKEY_free (pkey);
        return s_fail (err, SC_KEY_ETYPE);
    }
    sc_key_t *self = calloc (1, sizeof (sc_key_t));
    if (!self) {
        EVP_PKEY_free (pkey);
        return s_fail (err, SC_KEY_EINTERNAL);
    }
    self->pkey = pkey;
    self->has_private = has_private;
    s_set_err (err, SC_KEY_OK);
    return self;
}

//  What s_password_cb gets: the caller's password or NULL, and whether
//  OpenSSL asked for it (the key is encrypted).
typedef struct {
    const char *password;
    bool asked;
} s_password_t;

//  OpenSSL asks for the password through this; u is an s_password_t, or
//  NULL where no password is expected. We copy it into OpenSSL's buffer
//  (which OpenSSL wipes) and keep nothing. -1 means "no password": the
//  decryption then fails.
static int
s_password_cb (char *buf, int size, int rwflag, void *u)
{
    (void) rwflag;
    s_password_t *ask = u;
    if (ask)
        ask->asked = true;
    const char *password = ask ? ask->password : NULL;
    if (!password || size < 0)
        return -1;
    size_t len = strlen (password);
    if (len > (size_t) size)
        return -1;
    memcpy (buf, password, len);    // NOLINT(bugprone-not-null-terminated-result): OpenSSL takes the length
    return (int) len;
}

//  True when an OpenSSL error says the decryption of a key failed or no
//  password could be had: the reasons differ by path (provider decoder,
//  PKCS#8 PBES2 or scrypt, legacy PEM "Proc-Type: 4,ENCRYPTED").
static bool
s_is_password_error (unsigned long e)
{
    int lib = ERR_GET_LIB (e);
    int reason = ERR_GET_REASON (e);
    return (lib == ERR_LIB_PROV && (reason == PROV_R_BAD_DECRYPT
                                 || reason == PROV_R_UNABLE_TO_GET_PASSPHRASE))
        || (lib == ERR_LIB_PEM && (reason == PEM_R_BAD_DECRYPT
                                || reason == PEM_R_BAD_PASSWORD_READ
                                || reason == PEM_R_PROBLEMS_GETTING_PASSWORD))
        || (lib == ERR_LIB_EVP && reason == EVP_R_BAD_DECRYPT)
        || (lib == ERR_LIB_PKCS12 && reason == PKCS12_R_PKCS12_CIPHERFINAL_ERROR);
}

//  Why the last parse failed, from the whole error queue (which this
//  empties): scrypt parameters beyond OpenSSL's memory limit win (no
//  password can open that key here), then a password problem, then a
//  format problem.
static int
s_parse_error (void)
{
    int code = SC_KEY_EFORMAT;
    unsigned long e;
    while ((e = ERR_get_error ()) != 0)
        if (ERR_GET_LIB (e) == ERR_LIB_EVP
            && ERR_GET_REASON (e) == EVP_R_MEMORY_LIMIT_EXCEEDED)
            code = SC_KEY_ECOST;
        else if (s_is_password_error (e) && code != SC_KEY_ECOST)
            code = SC_KEY_EBADPASS;
    return code;
}

sc_key_t *
sc_key_private_from_pem (const char *pem, size_t len,
                         const char *password, int *err)
{
    if (!pem || len == 0 || len > INT_MAX)
        return s_fail (err, SC_KEY_EFORMAT);
    ERR_clear_error ();             //  so that s_parse_error sees only ours
    BIO *bio = BIO_new_mem_buf (pem, (int) len);
    if (!bio)
        return s_fail (err, SC_KEY_EINTERNAL);
    s_password_t ask = { password, false };
    EVP_PKEY *pkey = PEM_read_bio_PrivateKey (bio, NULL, s_password_cb, &ask);
    BIO_free (bio);
    //  A wrong password usually fails the padding check of the decryption
    //  (a password error), but about once in 256 the padding happens to be
    //  right and the garbage fails to parse instead: once a password was
    //  asked for, a key that does not come out is a wrong password (or a
    //  damaged file, which no password opens either).
    int code = pkey ? SC_KEY_OK : s_parse_error ();
    if (!pkey && ask.asked && code != SC_KEY_ECOST)
        code = SC_KEY_EBADPASS;
    if (!pkey)
        return s_fail (err, code);
    return s_key_wrap (pkey, true, err);
}

sc_key_t *
sc_key_load_private (const char *path, const char *password, int *err)
{
    char *pem = NULL;
    size_t len = 0;
    struct stat st;
    int rc = s_read_file (path, &pem, &len, &st);
    if (rc)
        return s_fail (err, rc);
    //  As ssh: one's own key file that group or others may access is
    //  refused. A key owned by another user (root:secbroker 0640, read by
    //  the service's user) is that owner's to protect.
    if (st.st_uid == geteuid () && (st.st_mode & 077)) {
        s_free_file (&pem, len);
        return s_fail (err, SC_KEY_EPERM);
    }
    sc_key_t *self = sc_key_private_from_pem (pem, len, password, err);
    s_free_file (&pem, len);
    return self;
}

//  An Ed25519 SubjectPublicKeyInfo in DER (RFC 8410) is these 12 bytes,
//  then the 32-byte key: SEQUENCE { SEQUENCE { OID 1.3.101.112 },
//  BIT STRING with no unused bits }.
static const uint8_t s_ed25519_spki[12] = {
    0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00
};

//  The common case of a public key file without OpenSSL's decoders, which
//  cost about 270 us a key in OpenSSL 3.0 (most of a 10,000-user
//  registry's load, and of a reload): a first PEM block "PUBLIC KEY",
//  without headers, that is exactly an Ed25519 SubjectPublicKeyInfo. NULL
//  for anything else, which the caller then gives to the decoders, so what
//  a file means and every error stay as they were.
static EVP_PKEY *
s_ed25519_pem (const char *pem, size_t len)
{
    BIO *bio = BIO_new_mem_buf (pem, (int) len);
    char *name = NULL, *header = NULL;
    unsigned char *der = NULL;
    long der_len = 0;
    EVP_PKEY *pkey = NULL;
    if (bio && PEM_read_bio (bio, &name, &header, &der, &der_len) == 1 && name && header
        && strcmp (name, PEM_STRING_PUBLIC) == 0 && header[0] == 0
        && der_len == (long) (sizeof s_ed25519_spki + SC_PUB_LEN)
        && memcmp (der, s_ed25519_spki, sizeof s_ed25519_spki) == 0)
        pkey = EVP_PKEY_new_raw_public_key (EVP_PKEY_ED25519, NULL,
                                            der + sizeof s_ed25519_spki, SC_PUB_LEN);
    OPENSSL_free (name);
    OPENSSL_free (header);
    OPENSSL_free (der);
    BIO_free (bio);
    ERR_clear_error ();
    return pkey;
}

sc_key_t *
sc_key_load_public (const char *path, int *err)
{
    char *pem = NULL;
    size_t len = 0;
    int rc = s_read_file (path, &pem, &len, NULL);
    if (rc)
        return s_fail (err, rc);
    if (len == 0 || len > INT_MAX) {
        s_free_file (&pem, len);
        return s_fail (err, SC_KEY_EFORMAT);
    }
    EVP_PKEY *pkey = s_ed25519_pem (pem, len);
    if (pkey) {
        s_free_file (&pem, len);
        return s_key_wrap (pkey, false, err);
    }
    BIO *bio = BIO_new_mem_buf (pem, (int) len);
    pkey = bio ? PEM_read_bio_PUBKEY (bio, NULL, s_password_cb, NULL) : NULL;
    BIO_free (bio);
    s_free_file (&pem, len);
    if (!pkey)
        return s_fail (err, bio ? SC_KEY_EFORMAT : SC_KEY_EINTERNAL);
    return s_key_wrap (pkey, false, err);
}

sc_key_t *
sc_key_from_raw (const uint8_t pub [static SC_PUB_LEN])
{
    EVP_PKEY *pkey = EVP_PKEY_new_raw_public_key (EVP_PKEY_ED25519, NULL,
                                                  pub, SC_PUB_LEN);
    return s_key_wrap (pkey, false, NULL);
}

sc_key_t *
sc_key_from_seed (const uint8_t seed [static SC_KEY_LEN])
{
    EVP_PKEY *pkey = EVP_PKEY_new_raw_private_key (EVP_PKEY_ED25519, NULL,
                                                   seed, SC_KEY_LEN);
    return s_key_wrap (pkey, true, NULL);
}

sc_key_t *
sc_key_generate (void)
{
    EVP_PKEY *pkey = EVP_PKEY_Q_keygen (NULL, NULL, "ED25519");
    return s_key_wrap (pkey, true, NULL);
}

void
sc_key_destroy (sc_key_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    sc_key_t *self = *self_p;
    EVP_PKEY_free (self->pkey);        //  wipes the private key
    free (self);
    *self_p = NULL;
}

//  A memory BIO's bytes as a malloc'd, NUL-terminated string. 0 or -1.
static int
s_bio_string (BIO *bio, char **out, size_t *out_len)
{
    char *data = NULL;
    long n = BIO_get_mem_data (bio, &data);
    if (n <= 0 || !data)
        return -1;
    char *copy = malloc ((size_t) n + 1);
    if (!copy)
        return -1;
    memcpy (copy, data, (size_t) n);
    copy [n] = 0;
    *out = copy;
    *out_len = (size_t) n;
    return 0;
}

int
sc_key_private_pem (const sc_key_t *self, const char *password,
                    char **pem, size_t *len)
{
    if (!pem || !len)
        return -1;
    *pem = NULL;
    *len = 0;
    size_t pass_len = password ? strlen (password) : 0;
    if (!sc_key_has_private (self) || pass_len == 0 || pass_len > INT_MAX)
        return -1;
    ERR_clear_error ();
    //  What `openssl pkcs8 -topk8 -scrypt -scrypt_N 16384 -scrypt_r 8
    //  -scrypt_p 5 -v2 aes-256-cbc` does: the key info (which OpenSSL
    //  wipes when it frees it) encrypted under PBES2 with scrypt.
    PKCS8_PRIV_KEY_INFO *info = EVP_PKEY2PKCS8 (self->pkey);
    X509_ALGOR *pbe = info ? PKCS5_pbe2_set_scrypt (EVP_aes_256_cbc (), NULL,
                                                    SC_KEY_SALT_LEN, NULL,
                                                    SC_KEY_SCRYPT_N, SC_KEY_SCRYPT_R,
                                                    SC_KEY_SCRYPT_P)
                           : NULL;
    X509_SIG *sealed = pbe ? PKCS8_set0_pbe (password, (int) pass_len, info, pbe) : NULL;
    if (pbe && !sealed)
        X509_ALGOR_free (pbe);          //  taken only on success
    BIO *bio = sealed ? BIO_new (BIO_s_mem ()) : NULL;
    int rc = bio && PEM_write_bio_PKCS8 (bio, sealed) == 1
             && s_bio_string (bio, pem, len) == 0 ? 0 : -1;
    BIO_free (bio);
    X509_SIG_free (sealed);
    PKCS8_PRIV_KEY_INFO_free (info);
    ERR_clear_error ();
    return rc;
}

int
sc_key_public_pem (const sc_key_t *self, char **pem, size_t *len)
{
    if (!pem || !len)
        return -1;
    *pem = NULL;
    *len = 0;
    if (!self)
        return -1;
    BIO *bio = BIO_new (BIO_s_mem ());
    int rc = bio && PEM_write_bio_PUBKEY (bio, self->pkey) == 1
             && s_bio_string (bio, pem, len) == 0 ? 0 : -1;
    BIO_free (bio);
    ERR_clear_error ();
    return rc;
}

bool
sc_key_has_private (const sc_key_t *self)
{
    return self && self->has_private;
}

int
sc_key_public_raw (const sc_key_t *self, uint8_t pub [static SC_PUB_LEN])
{
    size_t len = SC_PUB_LEN;
    if (!self
    ||  EVP_PKEY_get_raw_public_key (self->pkey, pub, &len) != 1
    ||  len != SC_PUB_LEN) {
        ERR_clear_error ();
        return -1;
    }
    return 0;
}

int
sc_key_sign (const sc_key_t *self, const uint8_t *msg, size_t len,
             uint8_t sig [static SC_SIG_LEN])
{
    static const uint8_t empty [1] = { 0 };
    if (!sc_key_has_private (self) || (!msg && len))
        return -1;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new ();
    size_t sig_len = SC_SIG_LEN;
    int rc = -1;
    if (ctx
    &&  EVP_DigestSignInit_ex (ctx, NULL, NULL, NULL, NULL, self->pkey, NULL) == 1
    &&  EVP_DigestSign (ctx, sig, &sig_len, msg ? msg : empty, len) == 1
    &&  sig_len == SC_SIG_LEN)
        rc = 0;
    EVP_MD_CTX_free (ctx);
    if (rc) {
        sc_wipe (sig, SC_SIG_LEN);
        ERR_clear_error ();
    }
    return rc;
}

//  One strict verifier for the whole program: sc_ed25519_verify.
int
sc_key_verify (const sc_key_t *self, const uint8_t *msg, size_t len,
               const uint8_t *sig, size_t sig_len)
{
    uint8_t pub [SC_PUB_LEN];
    if (sc_key_public_raw (self, pub))
        return SC_CRYPTO_FAILED;
    return sc_ed25519_verify (pub, msg, len, sig, sig_len);
}

//  label || 0x00 || data into msg; its length, or 0 when too long.
static size_t
s_labelled (const char *label, const uint8_t *data, size_t len, uint8_t msg [static 194])
{
    size_t ll = strlen (label);
    if (ll > 64 || len > 128)
        return 0;
    memcpy (msg, label, ll);
    msg [ll] = 0;
    if (len)
        memcpy (msg + ll + 1, data, len);
    return ll + 1 + len;
}

int
sc_key_sign_labelled (const sc_key_t *self, const char *label,
                      const uint8_t *data, size_t len, uint8_t sig [static SC_SIG_LEN])
{
    uint8_t msg [194];
    size_t msg_len = s_labelled (label, data, len, msg);
    return msg_len ? sc_key_sign (self, msg, msg_len, sig) : -1;
}

int
sc_key_verify_labelled (const sc_key_t *self, const char *label,
                        const uint8_t *data, size_t len, const uint8_t sig [static SC_SIG_LEN])
{
    uint8_t msg [194];
    size_t msg_len = s_labelled (label, data, len, msg);
    return msg_len ? sc_key_verify (self, msg, msg_len, sig, SC_SIG_LEN) : SC_CRYPTO_FAILED;
}

int
sc_key_derive (const sc_key_t *self, const char *label, uint8_t out [static SC_KEY_LEN])
{
    static const char salt [] = "secchat/1 key derive";
    size_t label_len = label ? strlen (label) : 0;
    uint8_t seed [SC_KEY_LEN];
    size_t seed_len = sizeof seed;
    int rc = -1;
    if (self && self->has_private && label_len >= 1 && label_len <= 64
        && EVP_PKEY_get_raw_private_key (self->pkey, seed, &seed_len) == 1
        && seed_len == SC_KEY_LEN)
        rc = sc_hkdf ((const uint8_t *) salt, sizeof salt - 1, seed, sizeof seed,
                      (const uint8_t *) label, label_len, out, SC_KEY_LEN);
    sc_wipe (seed, sizeof seed);
    if (rc)
        sc_wipe (out, SC_KEY_LEN);
    return rc;
}

//  ---------------------------------------------------------------------
//  Certificates

//  Reads every certificate of a PEM buffer into store; the count, or -1.
static int
s_store_add_pem (X509_STORE *store, const char *pem, size_t len)
{
    if (len == 0 || len > INT_MAX)
        return -1;
    BIO *bio = BIO_new_mem_buf (pem, (int) len);
    if (!bio)
        return -1;
    int count = 0;
    X509 *cert;
    while ((cert = PEM_read_bio_X509 (bio, NULL, s_password_cb, NULL)) != NULL) {
        int added = X509_STORE_add_cert (store, cert);
        X509_free (cert);
        if (added != 1) {
            count = -1;
            break;
        }
        count++;
    }
    //  The loop ends on "no more PEM" (fine once we have one) or on a
    //  broken certificate (not fine).
    unsigned long e = ERR_peek_last_error ();
    if (count > 0 && e != 0
    &&  !(ERR_GET_LIB (e) == ERR_LIB_PEM && ERR_GET_REASON (e) == PEM_R_NO_START_LINE))
        count = -1;
    BIO_free (bio);
    ERR_clear_error ();
    return count;
}

sc_ca_t *
sc_ca_load (const char *path, int *err)
{
    char *pem = NULL;
    size_t len = 0;
    int rc = s_read_file (path, &pem, &len, NULL);
    if (rc)
        return s_fail (err, rc);
    ERR_clear_error ();
    sc_ca_t *self = calloc (1, sizeof (sc_ca_t));
    if (self)
        self->store = X509_STORE_new ();
    if (!self || !self->store) {
        s_free_file (&pem, len);
        sc_ca_destroy (&self);
        return s_fail (err, SC_KEY_EINTERNAL);
    }
    int count = s_store_add_pem (self->store, pem, len);
    s_free_file (&pem, len);
    if (count <= 0) {
        sc_ca_destroy (&self);
        return s_fail (err, SC_KEY_EFORMAT);
    }
    s_set_err (err, SC_KEY_OK);
    return self;
}

void
sc_ca_destroy (sc_ca_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    sc_ca_t *self = *self_p;
    X509_STORE_free (self->store);
    free (self);
    *self_p = NULL;
}

int
sc_cert_load_der (const char *path, uint8_t **der, size_t *der_len)
{
    if (!der || !der_len)
        return SC_KEY_EINTERNAL;
    *der = NULL;
    *der_len = 0;
    char *pem = NULL;
    size_t len = 0;
    int rc = s_read_file (path, &pem, &len, NULL);
    if (rc)
        return rc;
    ERR_clear_error ();
    BIO *bio = len && len <= INT_MAX ? BIO_new_mem_buf (pem, (int) len) : NULL;
    X509 *cert = bio ? PEM_read_bio_X509 (bio, NULL, s_password_cb, NULL) : NULL;
    BIO_free (bio);
    s_free_file (&pem, len);
    int n = cert ? i2d_X509 (cert, NULL) : -1;
    rc = n > 0 ? SC_KEY_OK : SC_KEY_EFORMAT;
    uint8_t *buf = n > 0 ? malloc ((size_t) n) : NULL;
    if (n > 0 && !buf)
        rc = SC_KEY_EINTERNAL;
    unsigned char *p = buf;
    if (buf && i2d_X509 (cert, &p) != n)
        rc = SC_KEY_EINTERNAL;
    X509_free (cert);
    if (rc) {
        free (buf);
        ERR_clear_error ();
        return rc;
    }
    *der = buf;
    *der_len = (size_t) n;
    return SC_KEY_OK;
}

//  Runs OpenSSL's verification of cert against the store, checking the
//  name when given. Returns the X509_V_ result, or -1 when verification
//  could not even be set up.
static int
s_verify (const sc_ca_t *ca, X509 *cert, const char *name)
{
    X509_STORE_CTX *ctx = X509_STORE_CTX_new ();
    int result = -1;
    if (ctx && X509_STORE_CTX_init (ctx, ca->store, cert, NULL) == 1) {
        X509_VERIFY_PARAM *param = X509_STORE_CTX_get0_param (ctx);
        X509_VERIFY_PARAM_set_hostflags (param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
        //  set1_host checks the DNS SANs, or the CN when there is none.
        if (!name || X509_VERIFY_PARAM_set1_host (param, name, strlen (name)) == 1) {
            int ok = X509_verify_cert (ctx);
            result = ok == 1 ? X509_V_OK : X509_STORE_CTX_get_error (ctx);
            if (ok != 1 && result == X509_V_OK)
                result = X509_V_ERR_UNSPECIFIED;
        }
    }
    X509_STORE_CTX_free (ctx);
    return result;
}

//  Maps verification to our codes. OpenSSL checks the name before the
//  signatures, so a mismatch says nothing about the chain: we verify
//  again without the name to tell ENAME (good chain, other name) from
//  ECHAIN (a certificate that is not from our CA at all).
static int
s_verify_code (const sc_ca_t *ca, X509 *cert, const char *name)
{
    int result = s_verify (ca, cert, name);
    if (result == X509_V_OK)
        return SC_KEY_OK;
    if (result == X509_V_ERR_HOSTNAME_MISMATCH)
        return s_verify (ca, cert, NULL) == X509_V_OK ? SC_KEY_ENAME : SC_KEY_ECHAIN;
    return result < 0 ? SC_KEY_EINTERNAL : SC_KEY_ECHAIN;
}

sc_key_t *
sc_cert_verify (const sc_ca_t *ca, const uint8_t *der, size_t der_len,
                const char *name, int *err)
{
    if (!ca || !name)
        return s_fail (err, SC_KEY_EINTERNAL);
    //  An empty name would switch the name check off.
    if (!*name)
        return s_fail (err, SC_KEY_ENAME);
    if (!der || der_len == 0 || der_len > SC_CERT_DER_MAX)
        return s_fail (err, SC_KEY_EFORMAT);
    ERR_clear_error ();
    const unsigned char *p = der;
    X509 *cert = d2i_X509 (NULL, &p, (long) der_len);
    //  Exactly one certificate: trailing bytes are refused, not ignored.
    if (!cert || p != der + der_len) {
        X509_free (cert);
        return s_fail (err, SC_KEY_EFORMAT);
    }
    int code = s_verify_code (ca, cert, name);
    EVP_PKEY *pkey = code == SC_KEY_OK ? X509_get0_pubkey (cert) : NULL;
    if (code == SC_KEY_OK && !pkey)
        code = SC_KEY_EFORMAT;
    if (pkey && EVP_PKEY_up_ref (pkey) != 1) {
        pkey = NULL;
        code = SC_KEY_EINTERNAL;
    }
    X509_free (cert);
    if (code != SC_KEY_OK)
        return s_fail (err, code);
    return s_key_wrap (pkey, false, err);
}

//  One byte into buf, shown as '?' outside printable ASCII; at the end
//  of the room, "..." and false (buf is full: *len is size from then).
static bool
s_name_put (char *buf, size_t size, size_t *len, unsigned char c)
{
    if (*len + 4 >= size) {
        if (*len + 3 < size)
            memcpy (buf + *len, "...", 4);
        *len = size;
        return false;
    }
    char shown = '?';
    if (c >= 0x20 && c < 0x7f)
        shown = (char) c;
    buf[(*len)++] = shown;
    buf[*len] = 0;
    return true;
}

//  Appends ", NAME" (or NAME first) to buf.
static void
s_name_add (char *buf, size_t size, size_t *len, const unsigned char *name, int name_len)
{
    if (*len && (!s_name_put (buf, size, len, ',') || !s_name_put (buf, size, len, ' ')))
        return;
    for (int i = 0; i < name_len; i++)
        if (!s_name_put (buf, size, len, name[i]))
            return;
}

int
sc_cert_names (const uint8_t *der, size_t der_len, char *buf, size_t size)
{
    if (!der || der_len == 0 || der_len > SC_CERT_DER_MAX || !buf || size < 8)
        return -1;
    buf[0] = 0;
    ERR_clear_error ();
    const unsigned char *p = der;
    X509 *cert = d2i_X509 (NULL, &p, (long) der_len);
    if (!cert || p != der + der_len) {
        X509_free (cert);
        ERR_clear_error ();
        return -1;
    }
    size_t len = 0;
    int names = 0;
    GENERAL_NAMES *sans = X509_get_ext_d2i (cert, NID_subject_alt_name, NULL, NULL);
    for (int i = 0; sans && i < sk_GENERAL_NAME_num (sans); i++) {
        const GENERAL_NAME *gn = sk_GENERAL_NAME_value (sans, i);
        if (gn->type != GEN_DNS)
            continue;
        s_name_add (buf, size, &len, ASN1_STRING_get0_data (gn->d.dNSName),
                    ASN1_STRING_length (gn->d.dNSName));
        names++;
    }
    GENERAL_NAMES_free (sans);
    //  As the check (X509_check_host): the CNs only without a DNS SAN.
    const X509_NAME *subject = X509_get_subject_name (cert);
    bool had_san = names > 0;
    for (int i = -1; !had_san
         && (i = X509_NAME_get_index_by_NID (subject, NID_commonName, i)) >= 0; ) {
        unsigned char *utf8 = NULL;
        int utf8_len = ASN1_STRING_to_UTF8 (&utf8, X509_NAME_ENTRY_get_data (
                                            X509_NAME_get_entry (subject, i)));
        if (utf8_len >= 0) {
            s_name_add (buf, size, &len, utf8, utf8_len);
            names++;
        }
        OPENSSL_free (utf8);
    }
    X509_free (cert);
    ERR_clear_error ();
    return names;
}

//  Seconds from ref to t (t - ref); 0 or -1.
static int
s_time_diff (const ASN1_TIME *ref, const ASN1_TIME *t, int64_t *seconds)
{
    int days = 0, secs = 0;
    if (!ref || !t || ASN1_TIME_diff (&days, &secs, ref, t) != 1)
        return -1;
    *seconds = (int64_t) days * 86400 + secs;
    return 0;
}

int
sc_cert_check (const uint8_t *der, size_t der_len, const sc_key_t *key,
               int64_t now, int64_t *not_after)
{
    if (!key || !key->has_private)
        return SC_KEY_EINTERNAL;
    if (!der || der_len == 0 || der_len > SC_CERT_DER_MAX)
        return SC_KEY_EFORMAT;
    ERR_clear_error ();
    const unsigned char *p = der;
    X509 *cert = d2i_X509 (NULL, &p, (long) der_len);
    if (!cert || p != der + der_len) {
        X509_free (cert);
        ERR_clear_error ();
        return SC_KEY_EFORMAT;
    }
    ASN1_TIME *ref = ASN1_TIME_set (NULL, (time_t) now);
    int64_t to_start = 0, to_end = 0;
    int rc = SC_KEY_OK;
    if (s_time_diff (ref, X509_get0_notBefore (cert), &to_start)
    ||  s_time_diff (ref, X509_get0_notAfter (cert), &to_end))
        rc = ref ? SC_KEY_EFORMAT : SC_KEY_EINTERNAL;
    else {
        if (not_after)
            *not_after = now + to_end;
        EVP_PKEY *pub = X509_get0_pubkey (cert);
        if (!pub || EVP_PKEY_eq (pub, key->pkey) != 1)
            rc = SC_KEY_EMISMATCH;
        else
        if (to_start > 0)
            rc = SC_KEY_ENOTYET;
        else
        if (to_end < 0)
            rc = SC_KEY_EEXPIRED;
    }
    ASN1_TIME_free (ref);
    X509_free (cert);
    ERR_clear_error ();
    return rc;
}

int
sc_key_save_private (const sc_key_t *self, const char *path, const char *password)
{
    if (!self || !self->has_private || !path || !password)
        return SC_KEY_EINTERNAL;
    char *pem = NULL;
    size_t len = 0;
    if (sc_key_private_pem (self, password, &pem, &len))
        return SC_KEY_EINTERNAL;
    int rc = SC_KEY_EIO;
    int fd = open (path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd >= 0) {
        if (len > 0 && write (fd, pem, len) == (ssize_t) len && fsync (fd) == 0)
            rc = SC_KEY_OK;
        if (close (fd))
            rc = SC_KEY_EIO;
        if (rc)
            unlink (path);
    }
    free (pem);
    return rc;
}
