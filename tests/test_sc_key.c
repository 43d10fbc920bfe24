/*  test_sc_key: Ed25519 identities and the broker certificate, against
    real files made at test time by the `openssl` command line in a fresh
    temporary directory (removed at the end): keys encrypted with PBES2
    (aes-256-cbc) and with scrypt, unencrypted, empty password, RSA,
    garbage; a CA and broker certificates, good and bad.

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at https://mozilla.org/MPL/2.0/.
*/
#define _GNU_SOURCE                 //  RTLD_NEXT, for the fopen below
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <dlfcn.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/core_names.h>
#include <openssl/pem.h>

#include "sc_key.h"
#include "sc_testvec.h"

#define PASSWORD "correct horse battery"

typedef struct {
    char dir [64];
} s_fixture_t;

static s_fixture_t s_fixture;

//  A path inside the fixture directory (static buffer, rotating).
static const char *
s_path (const char *name)
{
    static char paths [4][384];     //  dir (64) + / + a d_name (256)
    static int next = 0;
    char *path = paths [next++ % 4];
    snprintf (path, sizeof paths [0], "%s/%s", s_fixture.dir, name);
    return path;
}

//  Runs a shell command in the fixture directory; 0 when it exited 0.
//  Output goes to openssl.log there, shown when something fails.
__attribute__ ((format (printf, 1, 2)))
static int
s_run (const char *format, ...)
{
    char command [2048], line [1024];
    va_list args;
    va_start (args, format);
    int n = vsnprintf (line, sizeof line, format, args);
    va_end (args);
    if (n < 0 || (size_t) n >= sizeof line)
        return -1;
    snprintf (command, sizeof command, "cd '%s' && ( %s ) >>openssl.log 2>&1",
              s_fixture.dir, line);
    int status = system (command);
    if (status == -1 || !WIFEXITED (status) || WEXITSTATUS (status) != 0) {
        fprintf (stderr, "fixture command failed: %s\n", line);
        snprintf (command, sizeof command, "tail -20 '%s/openssl.log' >&2", s_fixture.dir);
        if (system (command) == -1)
            perror ("system");
        return -1;
    }
    return 0;
}

static int
s_write (const char *name, const void *data, size_t len, mode_t mode)
{
    int fd = open (s_path (name), O_WRONLY | O_CREAT | O_TRUNC, mode);
    if (fd < 0)
        return -1;
    ssize_t n = write (fd, data, len);
    int rc = close (fd);
    if (n < 0 || (size_t) n != len || rc)
        return -1;
    return chmod (s_path (name), mode);
}

//  The configuration of our test PKI, independent of the system's
//  openssl.cnf.
static const char s_openssl_cnf [] =
    "[req]\n"
    "distinguished_name = dn\n"
    "prompt = no\n"
    "[dn]\n"
    "CN = secchat test CA\n"
    "[v3_ca]\n"
    "basicConstraints = critical, CA:TRUE\n"
    "keyUsage = critical, keyCertSign, cRLSign\n"
    "subjectKeyIdentifier = hash\n"
    "[v3_broker]\n"
    "basicConstraints = CA:FALSE\n"
    "keyUsage = critical, digitalSignature\n"
    "subjectAltName = DNS:secbroker\n"
    "subjectKeyIdentifier = hash\n"
    "authorityKeyIdentifier = keyid\n"
    "[v3_cn_only]\n"
    "basicConstraints = CA:FALSE\n"
    "subjectKeyIdentifier = hash\n"
    "authorityKeyIdentifier = keyid\n"
    "[v3_other_san]\n"
    "basicConstraints = CA:FALSE\n"
    "subjectAltName = DNS:other.example\n"
    "authorityKeyIdentifier = keyid\n"
    "[v3_two_sans]\n"
    "basicConstraints = CA:FALSE\n"
    "subjectAltName = DNS:chat.example, IP:127.0.0.1, DNS:secbroker\n"
    "authorityKeyIdentifier = keyid\n";

//  A CA: key ca_name.key, self-signed certificate ca_name.pem.
static int
s_make_ca (const char *ca_name, const char *cn)
{
    return s_run ("openssl genpkey -algorithm ed25519 -out %s.key", ca_name)
        || s_run ("openssl req -config openssl.cnf -x509 -new -key %s.key -subj '/CN=%s'"
                  " -extensions v3_ca -days 30 -out %s.pem", ca_name, cn, ca_name);
}

//  A certificate for key key_name.key, with subject CN=cn and the given
//  extension section, signed by CA ca_name, into cert_name.pem.
static int
s_make_cert (const char *cert_name, const char *key_name, const char *cn,
             const char *section, const char *ca_name)
{
    return s_run ("openssl req -config openssl.cnf -new -key %s.key -subj '/CN=%s'"
                  " -out %s.csr", key_name, cn, cert_name)
        || s_run ("openssl x509 -req -in %s.csr -CA %s.pem -CAkey %s.key -set_serial 7"
                  " -days 30 -extfile openssl.cnf -extensions %s -out %s.pem",
                  cert_name, ca_name, ca_name, section, cert_name);
}

//  An EncryptedPrivateKeyInfo whose scrypt asks N = 2^17, r = 8 (128 MiB:
//  OWASP's first choice), built field by field with `openssl asn1parse
//  -genconf`, since `openssl pkcs8` refuses to write one. The ciphertext
//  is never reached.
static const char s_costly_cnf [] =
    "asn1 = SEQUENCE:epki\n"
    "[epki]\n"
    "alg = SEQUENCE:alg\n"
    "data = FORMAT:HEX,OCTETSTRING:362357CCE16965E9EFB5B152489E9DC61D41C476E0D41ECB"
    "202BBE71EE7D0AB9B2E8C8113A3902B370218EC1E96ED89CDB5D3DCDB161F643196FCAB78A78C94B\n"
    "[alg]\n"
    "oid = OID:PBES2\n"
    "params = SEQUENCE:pbes2\n"
    "[pbes2]\n"
    "kdf = SEQUENCE:kdf\n"
    "enc = SEQUENCE:enc\n"
    "[kdf]\n"
    "oid = OID:1.3.6.1.4.1.11591.4.11\n"
    "params = SEQUENCE:scrypt\n"
    "[scrypt]\n"
    "salt = FORMAT:HEX,OCTETSTRING:2CC6F3AC071BD203\n"
    "n = INTEGER:131072\n"
    "r = INTEGER:8\n"
    "p = INTEGER:1\n"
    "[enc]\n"
    "oid = OID:aes-256-cbc\n"
    "iv = FORMAT:HEX,OCTETSTRING:75DBDEB4D156854CA0001DCF654DF178\n";

static int
s_make_keys (void)
{
    return s_run ("openssl genpkey -algorithm ed25519 -out plain.key")
        || s_run ("openssl genpkey -algorithm ed25519 -aes-256-cbc -pass 'pass:" PASSWORD "'"
                  " -out cbc.key")
        || s_run ("openssl pkcs8 -topk8 -scrypt -in plain.key -passout 'pass:" PASSWORD "'"
                  " -out scrypt.key")
        || s_run ("openssl genpkey -algorithm ed25519 -aes-256-cbc -pass pass: -out empty.key")
        || s_run ("openssl pkey -in plain.key -pubout -out plain.pub")
        || s_run ("openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out rsa.key")
        || s_run ("openssl pkey -in rsa.key -aes-256-cbc -passout 'pass:" PASSWORD "'"
                  " -out rsa-enc.key")
        || s_run ("openssl pkey -in rsa.key -pubout -out rsa.pub")
        || s_run ("openssl pkcs8 -topk8 -scrypt -scrypt_N 16384 -scrypt_r 8 -scrypt_p 5"
                  " -in plain.key -passout 'pass:" PASSWORD "' -out scrypt-p5.key")
        || s_write ("costly.cnf", s_costly_cnf, strlen (s_costly_cnf), 0600)
        || s_run ("openssl asn1parse -genconf costly.cnf -out costly.der -noout")
        || s_run ("{ echo '-----BEGIN ENCRYPTED PRIVATE KEY-----';"
                  " openssl base64 -in costly.der;"
                  " echo '-----END ENCRYPTED PRIVATE KEY-----'; } >costly.key")
        || s_run ("chmod 600 *.key plain.pub");
}

static int
s_make_certs (void)
{
    return s_make_ca ("ca", "secchat test CA")
        || s_make_ca ("ca2", "another CA")
        || s_run ("openssl genpkey -algorithm ed25519 -out broker.key")
        || s_make_cert ("broker", "broker", "secbroker", "v3_broker", "ca")
        || s_make_cert ("broker2", "broker", "secbroker", "v3_broker", "ca2")
        || s_make_cert ("cn-only", "broker", "secbroker", "v3_cn_only", "ca")
        || s_make_cert ("other-san", "broker", "secbroker", "v3_other_san", "ca")
        || s_make_cert ("two-sans", "broker", "secbroker", "v3_two_sans", "ca")
        || s_make_cert ("rsa-broker", "rsa", "secbroker", "v3_broker", "ca")
        || s_make_cert ("big", "broker", "secbroker", "v3_big", "ca")
        || s_run ("cat ca.pem ca2.pem > both-cas.pem")
        || s_run ("cat ca.pem broken-cert.pem > ca-then-broken.pem")
        || s_run ("openssl pkey -in broker.key -pubout -out broker.pub");
}

static int s_teardown (void **state);

//  openssl.cnf plus a section whose SANs make a certificate over 4096
//  bytes of DER, the most sc_cert_verify takes.
static int
s_write_openssl_cnf (void)
{
    static char cnf [sizeof s_openssl_cnf + 8192];
    int used = snprintf (cnf, sizeof cnf, "%s[v3_big]\nsubjectAltName = DNS:secbroker",
                         s_openssl_cnf);
    for (int i = 0; i < 100 && used > 0 && (size_t) used < sizeof cnf; i++)
        used += snprintf (cnf + used, sizeof cnf - (size_t) used,
                          ", DNS:padding-%03d-xxxxxxxxxxxxxxxxxxxxxxxxxxxx.example", i);
    if (used < 0 || (size_t) used + 2 >= sizeof cnf)
        return -1;
    strcat (cnf, "\n");
    return s_write ("openssl.cnf", cnf, strlen (cnf), 0644);
}

static int
s_setup (void **state)
{
    (void) state;
    snprintf (s_fixture.dir, sizeof s_fixture.dir, "/tmp/test_sc_key.XXXXXX");
    if (!mkdtemp (s_fixture.dir))
        return -1;
    static const char garbage [] = "this is not a key\nnor a certificate\n";
    static const char broken_cert [] =
        "-----BEGIN CERTIFICATE-----\nMIIBAAAA\n-----END CERTIFICATE-----\n";
    if (s_write_openssl_cnf ()
    ||  s_write ("broken-cert.pem", broken_cert, strlen (broken_cert), 0644)
    ||  s_write ("garbage.key", garbage, strlen (garbage), 0600)
    ||  s_write ("garbage.pem", garbage, strlen (garbage), 0644)
    ||  s_write ("empty-file.key", "", 0, 0600))
        return -1;
    if (s_make_keys () || s_make_certs ()) {
        s_teardown (state);         //  cmocka does not call it when setup fails
        return -1;
    }
    return 0;
}

//  Removes the fixture directory (flat: files only).
static int
s_teardown (void **state)
{
    (void) state;
    DIR *dir = opendir (s_fixture.dir);
    if (!dir)
        return -1;
    struct dirent *entry;
    int rc = 0;
    while ((entry = readdir (dir)) != NULL)
        if (strcmp (entry->d_name, ".") && strcmp (entry->d_name, ".."))
            if (unlink (s_path (entry->d_name)))
                rc = -1;
    closedir (dir);
    if (rmdir (s_fixture.dir))
        rc = -1;
    return rc;
}

//  Loading must fail with code, leave no key and no OpenSSL error behind.
static void
s_load_fails (const char *name, const char *password, int code)
{
    int err = 12345;
    sc_key_t *key = sc_key_load_private (s_path (name), password, &err);
    assert_null (key);
    assert_int_equal (err, code);
    assert_int_equal (ERR_peek_error (), 0);
}

//  Loads a private key that must load, and proves it signs.
static void
s_load_works (const char *name, const char *password)
{
    int err = 12345;
    sc_key_t *key = sc_key_load_private (s_path (name), password, &err);
    assert_non_null (key);
    assert_int_equal (err, SC_KEY_OK);
    assert_true (sc_key_has_private (key));
    uint8_t sig [SC_SIG_LEN];
    assert_int_equal (sc_key_sign (key, (const uint8_t *) "hi", 2, sig), 0);
    assert_int_equal (sc_key_verify (key, (const uint8_t *) "hi", 2, sig, SC_SIG_LEN), 0);
    sc_key_destroy (&key);
    assert_null (key);
    sc_key_destroy (&key);
}


//  ---------------------------------------------------------------------
//  Private keys

static void
test_strerror (void **state)
{
    (void) state;
    const char *seen [16];
    for (int code = 0; code >= SC_KEY_ECOST; code--) {
        const char *text = sc_key_strerror (code);
        assert_non_null (text);
        assert_true (strlen (text) > 5);
        for (int other = 0; other > code; other--)
            assert_string_not_equal (text, seen [-other]);
        seen [-code] = text;
    }
    assert_non_null (strstr (sc_key_strerror (SC_KEY_EBADPASS), "wrong password"));
    assert_non_null (strstr (sc_key_strerror (SC_KEY_EPERM), "UNPROTECTED PRIVATE KEY FILE"));
    assert_non_null (strstr (sc_key_strerror (SC_KEY_EPERM), "chmod 600"));
    assert_string_equal (sc_key_strerror (-99), "unknown error");
    assert_string_equal (sc_key_strerror (1), "unknown error");
}

static void
test_encrypted_pbes2 (void **state)
{
    (void) state;
    s_load_works ("cbc.key", PASSWORD);
    s_load_fails ("cbc.key", "wrong password", SC_KEY_EBADPASS);
    s_load_fails ("cbc.key", NULL, SC_KEY_EBADPASS);
    s_load_fails ("cbc.key", "", SC_KEY_EBADPASS);
    s_load_fails ("cbc.key", PASSWORD " ", SC_KEY_EBADPASS);
}

//  A wrong password leaves the PKCS#7 padding of the decrypted key right
//  about once in 256 tries: the garbage then fails to parse, and that is
//  still a wrong password, never "not a key". 1,500 wrong passwords (about
//  1 s): without that rule, this fails unless all of them missed the 1 in
//  256 (a chance of 0.3 %).
static void
test_wrong_password_with_good_padding (void **state)
{
    (void) state;
    const char *path = s_path ("cbc.key");
    for (int i = 0; i < 1500; i++) {
        char wrong[32];
        snprintf (wrong, sizeof wrong, "wrong %d", i);
        int err = 12345;
        sc_key_t *key = sc_key_load_private (path, wrong, &err);
        if (key || err != SC_KEY_EBADPASS)
            fail_msg ("password \"%s\": key %p, error %d", wrong, (void *) key, err);
        assert_int_equal (ERR_peek_error (), 0);
    }
}

static void
test_encrypted_scrypt (void **state)
{
    (void) state;
    s_load_works ("scrypt.key", PASSWORD);
    s_load_fails ("scrypt.key", "wrong password", SC_KEY_EBADPASS);
    s_load_fails ("scrypt.key", NULL, SC_KEY_EBADPASS);
    s_load_fails ("scrypt.key", "", SC_KEY_EBADPASS);
    //  keys/secchat-keys' parameters, N = 2^14, r = 8, p = 5
    s_load_works ("scrypt-p5.key", PASSWORD);
    s_load_fails ("scrypt-p5.key", "wrong password", SC_KEY_EBADPASS);
}

//  scrypt with N = 2^17, r = 8: beyond OpenSSL's 32 MiB limit, whatever
//  the password. Said so, rather than "wrong password".
static void
test_scrypt_beyond_limit (void **state)
{
    (void) state;
    s_load_fails ("costly.key", PASSWORD, SC_KEY_ECOST);
    s_load_fails ("costly.key", "wrong password", SC_KEY_ECOST);
    assert_non_null (strstr (sc_key_strerror (SC_KEY_ECOST), "-scrypt_N 16384"));
}

//  Encrypted under the empty password: "" opens it, no password does not.
static void
test_empty_password (void **state)
{
    (void) state;
    s_load_works ("empty.key", "");
    s_load_fails ("empty.key", NULL, SC_KEY_EBADPASS);
    s_load_fails ("empty.key", "x", SC_KEY_EBADPASS);
}

//  Unencrypted: loads with or without a password (which is not used).
static void
test_unencrypted (void **state)
{
    (void) state;
    s_load_works ("plain.key", NULL);
    s_load_works ("plain.key", "ignored");
}

static void
test_wrong_files (void **state)
{
    (void) state;
    s_load_fails ("rsa.key", NULL, SC_KEY_ETYPE);
    s_load_fails ("rsa-enc.key", PASSWORD, SC_KEY_ETYPE);
    s_load_fails ("rsa-enc.key", "wrong", SC_KEY_EBADPASS);
    s_load_fails ("garbage.key", NULL, SC_KEY_EFORMAT);
    s_load_fails ("garbage.key", PASSWORD, SC_KEY_EFORMAT);
    s_load_fails ("empty-file.key", NULL, SC_KEY_EFORMAT);
    s_load_fails ("plain.pub", NULL, SC_KEY_EFORMAT);
    s_load_fails ("no-such-file.key", PASSWORD, SC_KEY_EIO);
    s_load_fails (".", NULL, SC_KEY_EIO);        //  a directory

    //  The error pointer is optional.
    assert_null (sc_key_load_private (s_path ("garbage.key"), NULL, NULL));
    assert_int_equal (ERR_peek_error (), 0);
}

//  Reads a fixture file into memory (for the _from_pem variant).
static char *
s_slurp (const char *name, size_t *len)
{
    FILE *file = fopen (s_path (name), "rb");
    assert_non_null (file);
    static char buf [8192];
    *len = fread (buf, 1, sizeof buf - 1, file);
    assert_int_equal (fclose (file), 0);
    buf [*len] = 0;
    return buf;
}

static void
test_private_from_pem (void **state)
{
    (void) state;
    size_t len;
    char *pem = s_slurp ("scrypt.key", &len);
    int err = 12345;
    sc_key_t *key = sc_key_private_from_pem (pem, len, PASSWORD, &err);
    assert_non_null (key);
    assert_int_equal (err, SC_KEY_OK);
    sc_key_destroy (&key);
    assert_null (sc_key_private_from_pem (pem, len, "nope", &err));
    assert_int_equal (err, SC_KEY_EBADPASS);
    assert_null (sc_key_private_from_pem (pem, 0, PASSWORD, &err));
    assert_int_equal (err, SC_KEY_EFORMAT);
    //  Cut in the middle of the base64: not a key any more.
    assert_null (sc_key_private_from_pem (pem, len / 2, PASSWORD, &err));
    assert_true (err == SC_KEY_EFORMAT);
    assert_int_equal (ERR_peek_error (), 0);
}

//  Loads name with stderr captured: the key (or NULL), *err, and what
//  was written to stderr in out.
static sc_key_t *
s_load_capturing_stderr (const char *name, int *err, char *out, size_t size)
{
    const char *capture = s_path ("stderr.txt");
    fflush (stderr);
    int saved = dup (2);
    int fd = open (capture, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true (saved >= 0 && fd >= 0);
    assert_true (dup2 (fd, 2) == 2);
    close (fd);
    sc_key_t *key = sc_key_load_private (s_path (name), NULL, err);
    fflush (stderr);
    assert_true (dup2 (saved, 2) == 2);
    close (saved);
    FILE *file = fopen (capture, "r");
    assert_non_null (file);
    size_t n = fread (out, 1, size - 1, file);
    fclose (file);
    out [n] = 0;
    return key;
}

//  As ssh: one's own private key file that group or others can access is
//  refused (SC_KEY_EPERM, whose text says what to run), whatever the
//  bits; the library itself prints nothing.
static void
test_permission_refused (void **state)
{
    (void) state;
    char text [1024];
    int err = 0;
    sc_key_t *key = s_load_capturing_stderr ("plain.key", &err, text, sizeof text);
    assert_non_null (key);                          //  mode 600: loads, quietly
    assert_string_equal (text, "");
    sc_key_destroy (&key);
    static const mode_t open_modes [] = { 0640, 0604, 0620, 0602, 0610, 0601, 0644, 0660 };
    for (size_t i = 0; i < sizeof open_modes / sizeof open_modes [0]; i++) {
        assert_int_equal (chmod (s_path ("plain.key"), open_modes [i]), 0);
        err = 0;
        key = s_load_capturing_stderr ("plain.key", &err, text, sizeof text);
        assert_null (key);
        assert_int_equal (err, SC_KEY_EPERM);
        assert_string_equal (text, "");
    }
    //  0400 is fine too: only group and others matter.
    assert_int_equal (chmod (s_path ("plain.key"), 0400), 0);
    key = s_load_capturing_stderr ("plain.key", &err, text, sizeof text);
    assert_non_null (key);
    sc_key_destroy (&key);
    //  A key owned by another user is that user's to protect (a service
    //  reading root:service 0640): only root can make one to try.
    if (geteuid () == 0) {
        assert_int_equal (chmod (s_path ("plain.key"), 0640), 0);
        assert_int_equal (chown (s_path ("plain.key"), 65534, 65534), 0);
        key = s_load_capturing_stderr ("plain.key", &err, text, sizeof text);
        assert_non_null (key);
        sc_key_destroy (&key);
        assert_int_equal (chown (s_path ("plain.key"), 0, 0), 0);
    }
    assert_int_equal (chmod (s_path ("plain.key"), 0600), 0);
}

//  Which files were opened through stdio (fopen), to show that the
//  password file never is: stdio's buffer would keep a copy of the
//  password in freed memory. The test program's fopen stands in for
//  libc's, as the linker resolves the library's calls to it.
static char s_fopened [384];        //  the last one
static size_t s_fopen_count;

FILE *fopen (const char *path, const char *mode);
FILE *
fopen (const char *path, const char *mode)
{
    snprintf (s_fopened, sizeof s_fopened, "%s", path);
    s_fopen_count++;
    void *sym = dlsym (RTLD_NEXT, "fopen");
    FILE *(*real) (const char *, const char *) = NULL;
    memcpy (&real, &sym, sizeof real);      //  POSIX: a function's address
    return real ? real (path, mode) : NULL;
}

//  Reads name into a 16-byte buffer full of 'X': the result, and checks
//  that every byte after the password's NUL is zero.
static int
s_read_password (const char *name, char password [16])
{
    memset (password, 'X', 16);
    size_t before = s_fopen_count;
    int rc = sc_key_read_password (s_path (name), password, 16);
    assert_int_equal (s_fopen_count, before);
    size_t len = strnlen (password, 16);
    assert_true (len < 16);
    for (size_t i = len; i < 16; i++)
        assert_int_equal (password [i], 0);
    return rc;
}

static void
test_password_file (void **state)
{
    (void) state;
    char password [16];
    //  The stand-in fopen does see stdio opens (of other files).
    size_t before = s_fopen_count;
    FILE *file = fopen (s_path ("openssl.cnf"), "r");
    assert_non_null (file);
    fclose (file);
    assert_int_equal (s_fopen_count, before + 1);
    assert_string_equal (s_fopened, s_path ("openssl.cnf"));

    assert_int_equal (s_write ("pw1", "hunter2\nsecond line\n", 20, 0600), 0);
    assert_int_equal (s_read_password ("pw1", password), 0);
    assert_string_equal (password, "hunter2");
    assert_int_equal (s_write ("pw2", "crlf\r\n", 6, 0600), 0);
    assert_int_equal (s_read_password ("pw2", password), 0);
    assert_string_equal (password, "crlf");
    assert_int_equal (s_write ("pw3", "no newline", 10, 0600), 0);
    assert_int_equal (s_read_password ("pw3", password), 0);
    assert_string_equal (password, "no newline");
    assert_int_equal (s_write ("pw4", "", 0, 0600), 0);
    assert_int_equal (s_read_password ("pw4", password), 0);
    assert_string_equal (password, "");
    //  15 bytes fit in 16, with a newline after them or not; 16 do not,
    //  and nothing of them is left.
    assert_int_equal (s_write ("pw5", "123456789012345\nmore", 20, 0600), 0);
    assert_int_equal (s_read_password ("pw5", password), 0);
    assert_string_equal (password, "123456789012345");
    assert_int_equal (s_write ("pw6", "123456789012345", 15, 0600), 0);
    assert_int_equal (s_read_password ("pw6", password), 0);
    assert_string_equal (password, "123456789012345");
    assert_int_equal (s_write ("pw7", "1234567890123456\n", 17, 0600), 0);
    assert_int_equal (s_read_password ("pw7", password), SC_KEY_EFORMAT);
    assert_string_equal (password, "");
    assert_int_equal (s_read_password ("no-such-file", password), SC_KEY_EIO);
    assert_int_equal (mkdir (s_path ("pw-dir"), 0700), 0);
    assert_int_equal (s_read_password ("pw-dir", password), SC_KEY_EIO);
    assert_int_equal (rmdir (s_path ("pw-dir")), 0);
    assert_int_equal (sc_key_read_password (s_path ("pw1"), password, 1), SC_KEY_EINTERNAL);
}


//  ---------------------------------------------------------------------
//  Public keys, raw keys, signatures

static void
test_public_keys (void **state)
{
    (void) state;
    int err = 12345;
    sc_key_t *priv = sc_key_load_private (s_path ("plain.key"), NULL, &err);
    sc_key_t *pub = sc_key_load_public (s_path ("plain.pub"), &err);
    assert_non_null (priv);
    assert_non_null (pub);
    assert_int_equal (err, SC_KEY_OK);
    assert_false (sc_key_has_private (pub));

    uint8_t raw [SC_PUB_LEN], raw2 [SC_PUB_LEN], sig [SC_SIG_LEN];
    assert_int_equal (sc_key_public_raw (priv, raw), 0);
    assert_int_equal (sc_key_public_raw (pub, raw2), 0);
    assert_memory_equal (raw, raw2, SC_PUB_LEN);
    sc_key_t *from_raw = sc_key_from_raw (raw);
    assert_non_null (from_raw);
    assert_false (sc_key_has_private (from_raw));

    const uint8_t *msg = (const uint8_t *) "a message to sign";
    assert_int_equal (sc_key_sign (priv, msg, 17, sig), 0);
    assert_int_equal (sc_key_verify (pub, msg, 17, sig, SC_SIG_LEN), 0);
    assert_int_equal (sc_key_verify (from_raw, msg, 17, sig, SC_SIG_LEN), 0);
    assert_int_equal (sc_ed25519_verify (raw, msg, 17, sig, SC_SIG_LEN), 0);
    assert_int_equal (sc_key_verify (pub, msg, 16, sig, SC_SIG_LEN), -1);
    assert_int_equal (sc_key_verify (pub, msg, 17, sig, SC_SIG_LEN - 1), -1);
    sig [5] ^= 0x10;
    assert_int_equal (sc_key_verify (pub, msg, 17, sig, SC_SIG_LEN), -1);
    assert_int_equal (sc_key_verify (from_raw, msg, 17, sig, SC_SIG_LEN), -1);
    //  A public key cannot sign.
    assert_int_equal (sc_key_sign (pub, msg, 17, sig), -1);
    assert_int_equal (sc_key_sign (from_raw, msg, 17, sig), -1);

    assert_null (sc_key_load_public (s_path ("rsa.pub"), &err));
    assert_int_equal (err, SC_KEY_ETYPE);
    assert_null (sc_key_load_public (s_path ("plain.key"), &err));
    assert_int_equal (err, SC_KEY_EFORMAT);
    assert_null (sc_key_load_public (s_path ("garbage.pem"), &err));
    assert_int_equal (err, SC_KEY_EFORMAT);
    assert_null (sc_key_load_public (s_path ("nothing.pub"), &err));
    assert_int_equal (err, SC_KEY_EIO);
    assert_int_equal (ERR_peek_error (), 0);

    sc_key_destroy (&priv);
    sc_key_destroy (&pub);
    sc_key_destroy (&from_raw);
}

//  What OpenSSL's decoders alone make of a public key file: the result
//  sc_key_load_public must give, which reads the common case without them.
//  SC_KEY_OK and the raw key, SC_KEY_ETYPE or SC_KEY_EFORMAT.
static int
s_decoded (const char *pem, uint8_t raw [static SC_PUB_LEN])
{
    BIO *bio = BIO_new_mem_buf (pem, -1);
    assert_non_null (bio);
    EVP_PKEY *pkey = PEM_read_bio_PUBKEY (bio, NULL, NULL, NULL);
    BIO_free (bio);
    ERR_clear_error ();
    if (!pkey)
        return SC_KEY_EFORMAT;
    int rc = SC_KEY_ETYPE;
    size_t len = SC_PUB_LEN;
    if (EVP_PKEY_get_id (pkey) == EVP_PKEY_ED25519) {
        assert_int_equal (EVP_PKEY_get_raw_public_key (pkey, raw, &len), 1);
        rc = SC_KEY_OK;
    }
    EVP_PKEY_free (pkey);
    return rc;
}

//  One file through sc_key_load_public and through the decoders alone:
//  the same outcome, and the same key. Returns the outcome.
static int
s_load_as_decoders (const char *pem)
{
    uint8_t want [SC_PUB_LEN], got [SC_PUB_LEN];
    int expected = s_decoded (pem, want);
    assert_int_equal (s_write ("form.pub", pem, strlen (pem), 0644), 0);
    int err = 12345;
    sc_key_t *key = sc_key_load_public (s_path ("form.pub"), &err);
    assert_int_equal (err, expected);
    if (expected == SC_KEY_OK) {
        assert_non_null (key);
        assert_false (sc_key_has_private (key));
        assert_int_equal (sc_key_public_raw (key, got), 0);
        assert_memory_equal (got, want, SC_PUB_LEN);
    }
    else
        assert_null (key);
    assert_int_equal (ERR_peek_error (), 0);
    sc_key_destroy (&key);
    return expected;
}

//  A key's PEM (SubjectPublicKeyInfo), from OpenSSL; freed by the caller.
static char *
s_pub_pem (const char *alg)
{
    EVP_PKEY *pkey = EVP_PKEY_Q_keygen (NULL, NULL, alg);
    assert_non_null (pkey);
    BIO *bio = BIO_new (BIO_s_mem ());
    assert_non_null (bio);
    assert_int_equal (PEM_write_bio_PUBKEY (bio, pkey), 1);
    char *data = NULL;
    long len = BIO_get_mem_data (bio, &data);
    assert_true (len > 0);
    char *pem = strndup (data, (size_t) len);
    assert_non_null (pem);
    BIO_free (bio);
    EVP_PKEY_free (pkey);
    return pem;
}

//  sc_key_load_public reads a plain Ed25519 PUBLIC KEY block itself (the
//  decoders cost 270 us a key); every other file must mean exactly what
//  it means to the decoders.
static void
test_public_key_forms (void **state)
{
    (void) state;
    char buf [2048];
    char *ed25519 = s_pub_pem ("ED25519");
    assert_int_equal (s_load_as_decoders (ed25519), SC_KEY_OK);

    //  Keys of other types, two of them the same length as Ed25519's and
    //  differing only in the OID: not Ed25519.
    const char *others [] = { "X25519", "ED448", "X448" };
    for (size_t i = 0; i < sizeof others / sizeof others [0]; i++) {
        char *pem = s_pub_pem (others [i]);
        assert_int_equal (s_load_as_decoders (pem), SC_KEY_ETYPE);
        free (pem);
    }
    //  X25519's SubjectPublicKeyInfo by hand: 1.3.101.110 where Ed25519
    //  has 1.3.101.112.
    assert_int_equal (s_load_as_decoders (
        "-----BEGIN PUBLIC KEY-----\n"
        "MCowBQYDK2VuAyEA1JULfnftIcMwgMMZqxr7mok8wqYsf0OjdVWttyrdV4o=\n"
        "-----END PUBLIC KEY-----\n"), SC_KEY_ETYPE);
    //  The Ed25519 one with a byte short, a byte more: not a key. With
    //  "1 unused bit" in its BIT STRING: OpenSSL 3.0 takes it (the count
    //  is ignored), and so must sc_key.
    const char *bad [] = {
        "MCkwBQYDK2VwAyAA1JULfnftIcMwgMMZqxr7mok8wqYsf0OjdVWttyrdVw==",
        "MCswBQYDK2VwAyIA1JULfnftIcMwgMMZqxr7mok8wqYsf0OjdVWttyrdV4oA",
        "MCowBQYDK2VwAyEB1JULfnftIcMwgMMZqxr7mok8wqYsf0OjdVWttyrdV4o=",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad [0]; i++) {
        snprintf (buf, sizeof buf, "-----BEGIN PUBLIC KEY-----\n%s\n"
                  "-----END PUBLIC KEY-----\n", bad [i]);
        int outcome = s_load_as_decoders (buf);
        if (i < 2)
            assert_int_equal (outcome, SC_KEY_EFORMAT);
    }
    //  Another block first (the decoders skip it), text around the block,
    //  a header line, another label.
    snprintf (buf, sizeof buf, "-----BEGIN NOTE-----\nAAAA\n-----END NOTE-----\n%s", ed25519);
    assert_int_equal (s_load_as_decoders (buf), SC_KEY_OK);
    snprintf (buf, sizeof buf, "the key of alice:\n%sthat was it\n", ed25519);
    assert_int_equal (s_load_as_decoders (buf), SC_KEY_OK);
    const char *body = ed25519 + strlen ("-----BEGIN PUBLIC KEY-----\n");
    int body_len = (int) (strstr (body, "-----END") - body);
    snprintf (buf, sizeof buf, "-----BEGIN PUBLIC KEY-----\nComment: alice\n\n%.*s"
              "-----END PUBLIC KEY-----\n", body_len, body);
    assert_int_equal (s_load_as_decoders (buf), SC_KEY_EFORMAT);
    snprintf (buf, sizeof buf, "-----BEGIN ED25519 PUBLIC KEY-----\n%.*s"
              "-----END ED25519 PUBLIC KEY-----\n", body_len, body);
    assert_int_equal (s_load_as_decoders (buf), SC_KEY_EFORMAT);
    free (ed25519);
}

//  RFC 8032 TEST 1 through sc_key: the seed gives the RFC's public key
//  and signature.
static void
test_seed_and_generate (void **state)
{
    (void) state;
    uint8_t seed [32], expected_pub [32], expected_sig [64], pub [32], sig [64];
    assert_int_equal (sc_testvec_unhex (
        "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60", seed, 32), 32);
    assert_int_equal (sc_testvec_unhex (
        "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a", expected_pub, 32), 32);
    assert_int_equal (sc_testvec_unhex (
        "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b",
        expected_sig, 64), 64);
    sc_key_t *key = sc_key_from_seed (seed);
    assert_non_null (key);
    assert_true (sc_key_has_private (key));
    assert_int_equal (sc_key_public_raw (key, pub), 0);
    assert_memory_equal (pub, expected_pub, 32);
    assert_int_equal (sc_key_sign (key, NULL, 0, sig), 0);
    assert_memory_equal (sig, expected_sig, 64);
    sc_key_destroy (&key);

    sc_key_t *a = sc_key_generate ();
    sc_key_t *b = sc_key_generate ();
    assert_non_null (a);
    assert_non_null (b);
    uint8_t pub_b [32];
    assert_int_equal (sc_key_public_raw (a, pub), 0);
    assert_int_equal (sc_key_public_raw (b, pub_b), 0);
    assert_memory_not_equal (pub, pub_b, 32);
    assert_int_equal (sc_key_sign (a, (const uint8_t *) "x", 1, sig), 0);
    assert_int_equal (sc_key_verify (a, (const uint8_t *) "x", 1, sig, 64), 0);
    assert_int_equal (sc_key_verify (b, (const uint8_t *) "x", 1, sig, 64), -1);
    sc_key_destroy (&a);
    sc_key_destroy (&b);
    assert_false (sc_key_has_private (NULL));
}

//  What sc_key_private_pem writes opens with its password, as the same
//  key, and with no other; the public PEM loads as the same public key.
static void
test_key_to_pem (void **state)
{
    (void) state;
    sc_key_t *key = sc_key_generate ();
    assert_non_null (key);
    uint8_t pub [32], again [32];
    assert_int_equal (sc_key_public_raw (key, pub), 0);

    char *pem = NULL;
    size_t len = 0;
    assert_int_equal (sc_key_private_pem (key, "tr0ub4dor&3", &pem, &len), 0);
    assert_int_equal (strlen (pem), len);
    assert_non_null (strstr (pem, "-----BEGIN ENCRYPTED PRIVATE KEY-----"));
    int err = 0;
    sc_key_t *back = sc_key_private_from_pem (pem, len, "tr0ub4dor&3", &err);
    assert_non_null (back);
    assert_int_equal (sc_key_public_raw (back, again), 0);
    assert_memory_equal (pub, again, 32);
    sc_key_destroy (&back);
    assert_null (sc_key_private_from_pem (pem, len, "tr0ub4dor&4", &err));
    assert_int_equal (err, SC_KEY_EBADPASS);
    assert_null (sc_key_private_from_pem (pem, len, NULL, &err));
    assert_int_equal (err, SC_KEY_EBADPASS);
    //  A fresh salt and IV each time: never the same bytes twice.
    char *pem2 = NULL;
    size_t len2 = 0;
    assert_int_equal (sc_key_private_pem (key, "tr0ub4dor&3", &pem2, &len2), 0);
    assert_string_not_equal (pem, pem2);
    free (pem2);
    free (pem);

    //  No password, an empty one, or a public key only: refused.
    assert_int_equal (sc_key_private_pem (key, "", &pem, &len), -1);
    assert_null (pem);
    assert_int_equal (sc_key_private_pem (key, NULL, &pem, &len), -1);
    sc_key_t *public_only = sc_key_from_raw (pub);
    assert_non_null (public_only);
    assert_int_equal (sc_key_private_pem (public_only, "x", &pem, &len), -1);

    assert_int_equal (sc_key_public_pem (public_only, &pem, &len), 0);
    assert_non_null (strstr (pem, "-----BEGIN PUBLIC KEY-----"));
    char path [] = "/tmp/secchat-pub-XXXXXX";
    int fd = mkstemp (path);
    assert_true (fd >= 0);
    assert_int_equal (write (fd, pem, len), (ssize_t) len);
    assert_int_equal (close (fd), 0);
    sc_key_t *loaded = sc_key_load_public (path, &err);
    unlink (path);
    assert_non_null (loaded);
    assert_int_equal (sc_key_public_raw (loaded, again), 0);
    assert_memory_equal (pub, again, 32);
    sc_key_destroy (&loaded);
    free (pem);
    sc_key_destroy (&public_only);
    sc_key_destroy (&key);
}

//  sc_key_derive is HKDF-SHA256 (salt "secchat/1 key derive", the raw
//  seed, info = the label), computed here with OpenSSL's EVP_KDF on its
//  own: another label, another key or a public key never give it.
static void
s_hkdf_expected (const uint8_t seed [32], const char *label, uint8_t out [32])
{
    static const char salt [] = "secchat/1 key derive";
    EVP_KDF *kdf = EVP_KDF_fetch (NULL, "HKDF", NULL);
    assert_non_null (kdf);
    EVP_KDF_CTX *ctx = EVP_KDF_CTX_new (kdf);
    EVP_KDF_free (kdf);
    assert_non_null (ctx);
    OSSL_PARAM params [] = {
        OSSL_PARAM_construct_utf8_string ("digest", (char *) "SHA256", 0),
        OSSL_PARAM_construct_octet_string ("salt", (void *) salt, sizeof salt - 1),
        OSSL_PARAM_construct_octet_string ("key", (void *) seed, 32),
        OSSL_PARAM_construct_octet_string ("info", (void *) label, strlen (label)),
        OSSL_PARAM_construct_end ()
    };
    assert_int_equal (EVP_KDF_derive (ctx, out, 32, params), 1);
    EVP_KDF_CTX_free (ctx);
}

static void
test_derive (void **state)
{
    (void) state;
    uint8_t seed [32], expected [32], out [32], other [32];
    for (int i = 0; i < 32; i++)
        seed [i] = (uint8_t) (i * 7 + 1);
    sc_key_t *key = sc_key_from_seed (seed);
    assert_non_null (key);
    s_hkdf_expected (seed, "secchat/1 history", expected);
    assert_int_equal (sc_key_derive (key, "secchat/1 history", out), 0);
    assert_memory_equal (out, expected, 32);
    assert_int_equal (sc_key_derive (key, "secchat/1 other", other), 0);
    assert_memory_not_equal (out, other, 32);

    seed [0] ^= 1;
    sc_key_t *key2 = sc_key_from_seed (seed);
    assert_non_null (key2);
    assert_int_equal (sc_key_derive (key2, "secchat/1 history", other), 0);
    assert_memory_not_equal (out, other, 32);

    //  no private key, no label, a label too long: refused, output wiped
    uint8_t pub [32];
    assert_int_equal (sc_key_public_raw (key, pub), 0);
    sc_key_t *public = sc_key_from_raw (pub);
    assert_non_null (public);
    memset (other, 0xaa, 32);
    assert_int_equal (sc_key_derive (public, "secchat/1 history", other), -1);
    uint8_t zero [32] = { 0 };
    assert_memory_equal (other, zero, 32);
    assert_int_equal (sc_key_derive (key, "", other), -1);
    char long_label [66];
    memset (long_label, 'x', 65);
    long_label [65] = 0;
    assert_int_equal (sc_key_derive (key, long_label, other), -1);
    long_label [64] = 0;
    assert_int_equal (sc_key_derive (key, long_label, other), 0);
    sc_key_destroy (&key);
    sc_key_destroy (&key2);
    sc_key_destroy (&public);
}


//  ---------------------------------------------------------------------
//  Certificates

static sc_ca_t *
s_ca (const char *name)
{
    int err = 12345;
    sc_ca_t *ca = sc_ca_load (s_path (name), &err);
    assert_non_null (ca);
    assert_int_equal (err, SC_KEY_OK);
    return ca;
}

//  Verifies cert_name.pem against ca for name; returns the error code
//  and checks the key comes back exactly on success.
static int
s_verify (const sc_ca_t *ca, const char *cert_name, const char *name)
{
    uint8_t *der = NULL;
    size_t der_len = 0;
    char file [64];
    snprintf (file, sizeof file, "%s.pem", cert_name);
    assert_int_equal (sc_cert_load_der (s_path (file), &der, &der_len), 0);
    assert_non_null (der);
    int err = 12345;
    sc_key_t *key = sc_cert_verify (ca, der, der_len, name, &err);
    free (der);
    assert_int_equal (ERR_peek_error (), 0);
    if (!key) {
        assert_int_not_equal (err, SC_KEY_OK);
        return err;
    }
    assert_int_equal (err, SC_KEY_OK);
    assert_false (sc_key_has_private (key));
    sc_key_destroy (&key);
    return SC_KEY_OK;
}

static void
test_cert_good (void **state)
{
    (void) state;
    sc_ca_t *ca = s_ca ("ca.pem");
    uint8_t *der = NULL;
    size_t der_len = 0;
    assert_int_equal (sc_cert_load_der (s_path ("broker.pem"), &der, &der_len), 0);
    int err = 12345;
    sc_key_t *key = sc_cert_verify (ca, der, der_len, "secbroker", &err);
    assert_non_null (key);
    assert_int_equal (err, SC_KEY_OK);
    //  It is the broker's key.
    sc_key_t *expected = sc_key_load_public (s_path ("broker.pub"), &err);
    assert_non_null (expected);
    uint8_t raw [32], raw_expected [32];
    assert_int_equal (sc_key_public_raw (key, raw), 0);
    assert_int_equal (sc_key_public_raw (expected, raw_expected), 0);
    assert_memory_equal (raw, raw_expected, 32);
    sc_key_destroy (&key);
    sc_key_destroy (&expected);
    free (der);

    //  Without SAN, the CN is the name.
    assert_int_equal (s_verify (ca, "cn-only", "secbroker"), SC_KEY_OK);
    sc_ca_destroy (&ca);
    assert_null (ca);
    sc_ca_destroy (&ca);

    //  A store with several CAs trusts each.
    ca = s_ca ("both-cas.pem");
    assert_int_equal (s_verify (ca, "broker", "secbroker"), SC_KEY_OK);
    assert_int_equal (s_verify (ca, "broker2", "secbroker"), SC_KEY_OK);
    sc_ca_destroy (&ca);
}

static void
test_cert_wrong_name (void **state)
{
    (void) state;
    sc_ca_t *ca = s_ca ("ca.pem");
    assert_int_equal (s_verify (ca, "broker", "other"), SC_KEY_ENAME);
    assert_int_equal (s_verify (ca, "broker", "secbroker.example"), SC_KEY_ENAME);
    assert_int_equal (s_verify (ca, "broker", "secbroke"), SC_KEY_ENAME);
    assert_int_equal (s_verify (ca, "broker", ""), SC_KEY_ENAME);
    assert_int_equal (s_verify (ca, "cn-only", "other"), SC_KEY_ENAME);
    //  With a SAN, the CN no longer counts.
    assert_int_equal (s_verify (ca, "other-san", "secbroker"), SC_KEY_ENAME);
    assert_int_equal (s_verify (ca, "other-san", "other.example"), SC_KEY_OK);
    sc_ca_destroy (&ca);
}

//  The names of cert_name.pem as sc_cert_names gives them, into buf.
static int
s_names (const char *cert_name, char *buf, size_t size)
{
    uint8_t *der = NULL;
    size_t der_len = 0;
    char file [64];
    snprintf (file, sizeof file, "%s.pem", cert_name);
    assert_int_equal (sc_cert_load_der (s_path (file), &der, &der_len), 0);
    int n = sc_cert_names (der, der_len, buf, size);
    free (der);
    assert_int_equal (ERR_peek_error (), 0);
    return n;
}

//  What a wrong --broker-name is told: the names the check matched
//  against (DNS SANs, or the CN without any), never the CN beside SANs.
static void
test_cert_names (void **state)
{
    (void) state;
    char names [128];
    assert_int_equal (s_names ("broker", names, sizeof names), 1);
    assert_string_equal (names, "secbroker");
    assert_int_equal (s_names ("cn-only", names, sizeof names), 1);
    assert_string_equal (names, "secbroker");
    assert_int_equal (s_names ("other-san", names, sizeof names), 1);
    assert_string_equal (names, "other.example");
    //  IP SANs are not broker names
    assert_int_equal (s_names ("two-sans", names, sizeof names), 2);
    assert_string_equal (names, "chat.example, secbroker");
    //  cut, never overrun
    char small [16];
    memset (small, 'x', sizeof small);
    assert_int_equal (s_names ("two-sans", small, 12), 2);
    assert_string_equal (small, "chat.exa...");
    assert_int_equal (small [12], 'x');
    //  not a certificate
    static const uint8_t garbage [] = { 0x30, 0x03, 0x02, 0x01, 0x01 };
    assert_int_equal (sc_cert_names (garbage, sizeof garbage, names, sizeof names), -1);
    assert_int_equal (ERR_peek_error (), 0);
    assert_int_equal (sc_cert_names (NULL, 0, names, sizeof names), -1);
}

static void
test_cert_wrong_ca (void **state)
{
    (void) state;
    sc_ca_t *ca = s_ca ("ca.pem");
    assert_int_equal (s_verify (ca, "broker2", "secbroker"), SC_KEY_ECHAIN);
    //  A wrong name does not hide a wrong chain.
    assert_int_equal (s_verify (ca, "broker2", "other"), SC_KEY_ECHAIN);
    //  The CA's own certificate is not the broker's.
    assert_int_equal (s_verify (ca, "ca2", "secbroker"), SC_KEY_ECHAIN);
    sc_ca_destroy (&ca);
}

static void
test_cert_not_ed25519 (void **state)
{
    (void) state;
    sc_ca_t *ca = s_ca ("ca.pem");
    assert_int_equal (s_verify (ca, "rsa-broker", "secbroker"), SC_KEY_ETYPE);
    sc_ca_destroy (&ca);
}

static void
test_cert_bad_der (void **state)
{
    (void) state;
    sc_ca_t *ca = s_ca ("ca.pem");
    uint8_t *der = NULL;
    size_t der_len = 0;
    int err = 12345;
    assert_int_equal (sc_cert_load_der (s_path ("broker.pem"), &der, &der_len), 0);
    assert_true (der_len < 4096);
    uint8_t *longer = malloc (4097);
    assert_non_null (longer);
    memcpy (longer, der, der_len);

    //  One trailing byte after a good certificate.
    longer [der_len] = 0;
    assert_null (sc_cert_verify (ca, longer, der_len + 1, "secbroker", &err));
    assert_int_equal (err, SC_KEY_EFORMAT);
    //  Truncated.
    assert_null (sc_cert_verify (ca, der, der_len - 1, "secbroker", &err));
    assert_int_equal (err, SC_KEY_EFORMAT);
    assert_null (sc_cert_verify (ca, der, 0, "secbroker", &err));
    assert_int_equal (err, SC_KEY_EFORMAT);
    //  Over the size limit, even with a good certificate in front.
    memset (longer + der_len, 0, 4097 - der_len);
    assert_null (sc_cert_verify (ca, longer, 4097, "secbroker", &err));
    assert_int_equal (err, SC_KEY_EFORMAT);
    //  Garbage.
    static const uint8_t garbage [] = "\x30\x82\x01\x00 this is not DER";
    assert_null (sc_cert_verify (ca, garbage, sizeof garbage, "secbroker", &err));
    assert_true (err == SC_KEY_EFORMAT || err == SC_KEY_ECHAIN);
    //  One flipped bit in the signature: parses, but does not chain,
    //  whatever the name (OpenSSL checks the name before signatures).
    der [der_len - 1] ^= 0x01;
    assert_null (sc_cert_verify (ca, der, der_len, "secbroker", &err));
    assert_int_equal (err, SC_KEY_ECHAIN);
    assert_null (sc_cert_verify (ca, der, der_len, "other", &err));
    assert_int_equal (err, SC_KEY_ECHAIN);
    der [der_len - 1] ^= 0x01;
    //  And back as it was, it verifies: the failures were the changes.
    sc_key_t *key = sc_cert_verify (ca, der, der_len, "secbroker", &err);
    assert_non_null (key);
    sc_key_destroy (&key);
    assert_int_equal (ERR_peek_error (), 0);
    free (longer);
    free (der);

    //  A good certificate for the right name, but over 4096 bytes.
    assert_int_equal (sc_cert_load_der (s_path ("big.pem"), &der, &der_len), 0);
    assert_true (der_len > 4096);
    assert_null (sc_cert_verify (ca, der, der_len, "secbroker", &err));
    assert_int_equal (err, SC_KEY_EFORMAT);
    free (der);
    sc_ca_destroy (&ca);
}

static void
test_cert_files (void **state)
{
    (void) state;
    int err = 12345;
    assert_null (sc_ca_load (s_path ("missing.pem"), &err));
    assert_int_equal (err, SC_KEY_EIO);
    assert_null (sc_ca_load (s_path ("garbage.pem"), &err));
    assert_int_equal (err, SC_KEY_EFORMAT);
    assert_null (sc_ca_load (s_path ("plain.pub"), &err));
    assert_int_equal (err, SC_KEY_EFORMAT);
    //  A good CA then a broken certificate: the file is refused.
    assert_null (sc_ca_load (s_path ("ca-then-broken.pem"), &err));
    assert_int_equal (err, SC_KEY_EFORMAT);
    assert_int_equal (ERR_peek_error (), 0);

    static uint8_t dummy [1];
    uint8_t *der = dummy;
    size_t der_len = 99;
    assert_int_equal (sc_cert_load_der (s_path ("missing.pem"), &der, &der_len), SC_KEY_EIO);
    assert_null (der);
    assert_int_equal (der_len, 0);
    assert_int_equal (sc_cert_load_der (s_path ("garbage.pem"), &der, &der_len), SC_KEY_EFORMAT);
    assert_null (der);
    //  The first certificate of a file with two.
    assert_int_equal (sc_cert_load_der (s_path ("both-cas.pem"), &der, &der_len), 0);
    uint8_t *first = NULL;
    size_t first_len = 0;
    assert_int_equal (sc_cert_load_der (s_path ("ca.pem"), &first, &first_len), 0);
    assert_int_equal (der_len, first_len);
    assert_memory_equal (der, first, der_len);
    free (der);
    free (first);
    assert_int_equal (ERR_peek_error (), 0);
}


//  The broker's own check: key and certificate belong together and the
//  certificate is valid at the given time. The fixture's broker.pem was
//  made just now for 30 days.
static int
s_check (const char *cert_name, const char *key_name, int64_t now, int64_t *not_after)
{
    uint8_t *der = NULL;
    size_t der_len = 0;
    assert_int_equal (sc_cert_load_der (s_path (cert_name), &der, &der_len), 0);
    int err = 12345;
    sc_key_t *key = sc_key_load_private (s_path (key_name), NULL, &err);
    assert_non_null (key);
    int rc = sc_cert_check (der, der_len, key, now, not_after);
    assert_int_equal (ERR_peek_error (), 0);
    sc_key_destroy (&key);
    free (der);
    return rc;
}

static void
test_cert_check (void **state)
{
    (void) state;
    assert_int_equal (s_run ("chmod 600 broker.key"), 0);
    int64_t now = (int64_t) time (NULL);
    int64_t not_after = 0;
    assert_int_equal (s_check ("broker.pem", "broker.key", now, &not_after), SC_KEY_OK);
    //  Made with -days 30 a moment ago: ends 30 days from now, which the
    //  broker warns about (it warns under 30 days left).
    assert_true (not_after > now + 30 * 86400 - 600);
    assert_true (not_after <= now + 30 * 86400);
    //  Every certificate of that key, whatever its CA or name.
    assert_int_equal (s_check ("broker2.pem", "broker.key", now, NULL), SC_KEY_OK);
    assert_int_equal (s_check ("cn-only.pem", "broker.key", now, NULL), SC_KEY_OK);

    //  Validity, at its edges: the last second is still valid.
    int64_t end = 0;
    assert_int_equal (s_check ("broker.pem", "broker.key", not_after, &end), SC_KEY_OK);
    assert_int_equal (end, not_after);
    assert_int_equal (s_check ("broker.pem", "broker.key", not_after + 1, &end),
                      SC_KEY_EEXPIRED);
    assert_int_equal (end, not_after);
    assert_int_equal (s_check ("broker.pem", "broker.key", now + 365 * 86400, NULL),
                      SC_KEY_EEXPIRED);
    assert_int_equal (s_check ("broker.pem", "broker.key", now - 86400, NULL),
                      SC_KEY_ENOTYET);

    //  A key that is not the certificate's: another Ed25519 key, or a
    //  certificate of an RSA key.
    assert_int_equal (s_check ("broker.pem", "plain.key", now, NULL), SC_KEY_EMISMATCH);
    assert_int_equal (s_check ("rsa-broker.pem", "broker.key", now, NULL), SC_KEY_EMISMATCH);
    //  The mismatch is found whatever the dates.
    assert_int_equal (s_check ("broker.pem", "plain.key", now + 365 * 86400, NULL),
                      SC_KEY_EMISMATCH);

    //  Not a certificate, trailing bytes, a public key only.
    int err = 0;
    sc_key_t *key = sc_key_load_private (s_path ("broker.key"), NULL, &err);
    assert_non_null (key);
    uint8_t *der = NULL;
    size_t der_len = 0;
    assert_int_equal (sc_cert_load_der (s_path ("broker.pem"), &der, &der_len), 0);
    uint8_t *longer = malloc (der_len + 1);
    assert_non_null (longer);
    memcpy (longer, der, der_len);
    longer [der_len] = 0;
    assert_int_equal (sc_cert_check (longer, der_len + 1, key, now, NULL), SC_KEY_EFORMAT);
    assert_int_equal (sc_cert_check (der, der_len - 1, key, now, NULL), SC_KEY_EFORMAT);
    assert_int_equal (sc_cert_check (der, 0, key, now, NULL), SC_KEY_EFORMAT);
    assert_int_equal (sc_cert_check (NULL, der_len, key, now, NULL), SC_KEY_EFORMAT);
    sc_key_t *pub = sc_key_load_public (s_path ("broker.pub"), &err);
    assert_non_null (pub);
    assert_int_equal (sc_cert_check (der, der_len, pub, now, NULL), SC_KEY_EINTERNAL);
    assert_int_equal (ERR_peek_error (), 0);
    sc_key_destroy (&pub);
    sc_key_destroy (&key);
    free (longer);
    free (der);
}

//  A key made here, saved under a password: it loads back with that
//  password only, openssl reads it (scrypt N = 2^14, r = 8, p = 5,
//  AES-256-CBC, as the README's command), mode 0600, and an existing
//  file is never replaced. Its public PEM loads as a registry key.
static void
test_save_private (void **state)
{
    (void) state;
    sc_key_t *key = sc_key_generate ();
    assert_non_null (key);
    uint8_t raw [SC_PUB_LEN], back [SC_PUB_LEN];
    assert_int_equal (sc_key_public_raw (key, raw), 0);
    const char *path = s_path ("saved.key");
    unlink (path);
    assert_int_equal (sc_key_save_private (key, path, PASSWORD), SC_KEY_OK);
    struct stat st;
    assert_int_equal (stat (path, &st), 0);
    assert_int_equal (st.st_mode & 0777, 0600);
    s_load_works ("saved.key", PASSWORD);
    s_load_fails ("saved.key", "wrong password", SC_KEY_EBADPASS);
    int err = 0;
    sc_key_t *loaded = sc_key_load_private (path, PASSWORD, &err);
    assert_non_null (loaded);
    assert_int_equal (sc_key_public_raw (loaded, back), 0);
    assert_memory_equal (raw, back, SC_PUB_LEN);
    sc_key_destroy (&loaded);
    assert_int_equal (s_run ("openssl asn1parse -in saved.key > saved.asn1"
                             " && grep -q ':scrypt' saved.asn1"
                             " && grep -q ':4000$' saved.asn1"     //  N = 2^14
                             " && grep -q ':aes-256-cbc' saved.asn1"
                             " && openssl pkey -in saved.key -passin pass:'%s' -noout",
                             PASSWORD), 0);
    //  never over an existing file
    size_t len_before = 0, len_after = 0;
    static char before [8192];
    memcpy (before, s_slurp ("saved.key", &len_before), sizeof before);
    sc_key_t *other = sc_key_generate ();
    assert_non_null (other);
    assert_int_equal (sc_key_save_private (other, path, PASSWORD), SC_KEY_EIO);
    const char *after = s_slurp ("saved.key", &len_after);
    assert_int_equal (len_before, len_after);
    assert_memory_equal (before, after, len_before);
    //  a public key cannot be saved as a private one
    sc_key_t *pub = sc_key_from_raw (raw);
    assert_non_null (pub);
    assert_int_not_equal (sc_key_save_private (pub, s_path ("pub-only.key"), PASSWORD), 0);
    //  the public PEM is what the registry reads
    char *pem = NULL;
    size_t pem_len = 0;
    assert_int_equal (sc_key_public_pem (pub, &pem, &pem_len), 0);
    s_write ("saved.pub", pem, pem_len, 0644);
    free (pem);
    sc_key_t *reread = sc_key_load_public (s_path ("saved.pub"), &err);
    assert_non_null (reread);
    assert_int_equal (sc_key_public_raw (reread, back), 0);
    assert_memory_equal (raw, back, SC_PUB_LEN);
    sc_key_destroy (&reread);
    sc_key_destroy (&pub);
    sc_key_destroy (&other);
    sc_key_destroy (&key);
}


int
main (void)
{
    const struct CMUnitTest tests [] = {
        cmocka_unit_test (test_strerror),
        cmocka_unit_test (test_encrypted_pbes2),
        cmocka_unit_test (test_wrong_password_with_good_padding),
        cmocka_unit_test (test_encrypted_scrypt),
        cmocka_unit_test (test_scrypt_beyond_limit),
        cmocka_unit_test (test_empty_password),
        cmocka_unit_test (test_unencrypted),
        cmocka_unit_test (test_wrong_files),
        cmocka_unit_test (test_private_from_pem),
        cmocka_unit_test (test_permission_refused),
        cmocka_unit_test (test_password_file),
        cmocka_unit_test (test_public_keys),
        cmocka_unit_test (test_public_key_forms),
        cmocka_unit_test (test_seed_and_generate),
        cmocka_unit_test (test_save_private),
        cmocka_unit_test (test_derive),
        cmocka_unit_test (test_cert_good),
        cmocka_unit_test (test_cert_wrong_name),
        cmocka_unit_test (test_cert_names),
        cmocka_unit_test (test_cert_wrong_ca),
        cmocka_unit_test (test_cert_not_ed25519),
        cmocka_unit_test (test_cert_bad_der),
        cmocka_unit_test (test_cert_files),
        cmocka_unit_test (test_cert_check),
        cmocka_unit_test (test_key_to_pem),
    };
    return cmocka_run_group_tests (tests, s_setup, s_teardown);
}
