/* test_keys.c: tests for keys/secchat-keys, the demo key generator.
 *
 * The script is run for real (with the system openssl) in a fresh
 * temporary directory, and what it made is checked with openssl itself:
 * files and modes, the certificate chain and extensions, that each user
 * key opens with its password file and matches its registry entry, and
 * the rerun, -b, -f, -C, -K and name-validation behaviour. Run from the
 * repository root, as `make check` does.
 *
 * This Source Code Form is subject to the terms of the Mozilla Public
 * License, v. 2.0. If a copy of the MPL was not distributed with this
 * file, You can obtain one at https://mozilla.org/MPL/2.0/.
 */

/* nftw() is an X/Open interface; the build only asks for POSIX. */
#ifndef _XOPEN_SOURCE
#define _XOPEN_SOURCE 700
#endif

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <dirent.h>
#include <unistd.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#define SCRIPT "keys/secchat-keys"

enum { PATH_LEN = 1024, CMD_LEN = 4096 };

/* The temporary directory everything happens in, and the key directory
 * of the first run (alice and bob), which most tests inspect. */
static char g_root[PATH_LEN];
static char g_dir[PATH_LEN];
/* Exit status of that first run, checked by every test that uses it. */
static int g_main_status = -1;

/* snprintf into an array, failing the test on error or truncation: a
 * cut-off command line could run something other than intended. Takes
 * the format as a literal so the compiler still checks it. */
#define BUILD(buf, ...) \
    check_built(snprintf((buf), sizeof(buf), __VA_ARGS__), sizeof(buf))

static void check_built(int n, size_t size)
{
    assert_true(n >= 0);
    assert_true((size_t)n < size);
}

/* Run a shell command; its exit status, or 256 + signal if killed. */
static int run(const char *cmd)
{
    int st = system(cmd);

    if (st == -1) {
        print_error("system(%s) failed\n", cmd);
        fail();
    }
    if (WIFEXITED(st)) {
        return WEXITSTATUS(st);
    }
    if (WIFSIGNALED(st)) {
        return 256 + WTERMSIG(st);
    }
    return 512;
}

/* Whole file as a NUL-terminated string (NULL if it cannot be read);
 * *len gets the byte count. */
static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    size_t used = 0, cap = 0;

    if (f == NULL) {
        return NULL;
    }
    for (;;) {
        if (cap - used < 4096) {
            char *bigger = realloc(buf, cap + 8192);
            if (bigger == NULL) {
                free(buf);
                fclose(f);
                return NULL;
            }
            buf = bigger;
            cap += 8192;
        }
        size_t n = fread(buf + used, 1, cap - used - 1, f);
        used += n;
        if (n == 0) {
            break;
        }
    }
    fclose(f);
    buf[used] = '\0';
    if (len != NULL) {
        *len = used;
    }
    return buf;
}

/* Like slurp(), but the file must exist. */
static char *must_slurp(const char *path, size_t *len)
{
    char *s = slurp(path, len);

    if (s == NULL) {
        print_error("cannot read %s\n", path);
        fail();
    }
    return s;
}

/* Standard output of a shell command (stderr discarded by the caller's
 * command line if wanted). */
static char *capture(const char *cmd)
{
    FILE *p = popen(cmd, "r");
    char *buf;
    size_t used = 0, cap = 16384;

    assert_non_null(p);
    buf = malloc(cap);
    assert_non_null(buf);
    for (;;) {
        size_t n = fread(buf + used, 1, cap - used - 1, p);
        used += n;
        if (n == 0 || used == cap - 1) {
            break;
        }
    }
    buf[used] = '\0';
    assert_int_equal(pclose(p), 0);
    return buf;
}

static int exists(const char *path)
{
    struct stat st;

    return lstat(path, &st) == 0;
}

/* Permission bits of a regular file (or a directory if dir is set). */
static unsigned mode_of(const char *path, int dir)
{
    struct stat st;

    if (stat(path, &st) != 0) {
        print_error("%s is missing\n", path);
        fail();
    }
    if (dir ? !S_ISDIR(st.st_mode) : !S_ISREG(st.st_mode)) {
        print_error("%s is not a %s\n", path, dir ? "directory" : "file");
        fail();
    }
    return (unsigned)(st.st_mode & 07777);
}

static void assert_mode(const char *dir, const char *name, unsigned want)
{
    char path[PATH_LEN];

    BUILD(path, "%s/%s", dir, name);
    unsigned got = mode_of(path, 0);
    if (got != want) {
        print_error("%s has mode %04o, want %04o\n", path, got, want);
        fail();
    }
}

static void assert_same_file(const char *a, const char *b)
{
    size_t la, lb;
    char *sa = must_slurp(a, &la);
    char *sb = must_slurp(b, &lb);

    if (la != lb || memcmp(sa, sb, la) != 0) {
        print_error("%s and %s differ\n", a, b);
        free(sa);
        free(sb);
        fail();
    }
    free(sa);
    free(sb);
}

static void assert_contains(const char *haystack, const char *needle)
{
    if (strstr(haystack, needle) == NULL) {
        print_error("expected \"%s\" in:\n%s\n", needle, haystack);
        fail();
    }
}

/* Run the script with ARGS (already shell-quoted); stdout goes to
 * ROOT/out and stderr to ROOT/err for the tests to read. */
static int keys(const char *args)
{
    char cmd[CMD_LEN];

    BUILD(cmd, "sh " SCRIPT " %s >'%s/out' 2>'%s/err'", args, g_root, g_root);
    return run(cmd);
}

static void assert_keys_ok(const char *args)
{
    int st = keys(args);

    if (st != 0) {
        char path[PATH_LEN];
        BUILD(path, "%s/err", g_root);
        char *err = slurp(path, NULL);
        print_error("secchat-keys %s exited %d:\n%s\n", args, st,
                    err != NULL ? err : "");
        free(err);
        fail();
    }
}

static char *last_output(const char *which)
{
    char path[PATH_LEN];

    BUILD(path, "%s/%s", g_root, which);
    return must_slurp(path, NULL);
}

static void need_main_run(void)
{
    if (g_main_status != 0) {
        print_error("the first run of " SCRIPT " failed (status %d)\n",
                    g_main_status);
        fail();
    }
}

/* A fresh, not yet existing key directory ROOT/NAME. */
static void fresh_dir(char *out, size_t size, const char *name)
{
    check_built(snprintf(out, size, "%s/%s", g_root, name), size);
    assert_false(exists(out));
}

/* Check USER's key opens with its password file and gives exactly the
 * public key in the registry. */
static void assert_user_ok(const char *dir, const char *user)
{
    char cmd[CMD_LEN], check[PATH_LEN], pub[PATH_LEN];

    BUILD(check, "%s/%s.pub.check", g_root, user);
    BUILD(pub, "%s/users/%s.pub", dir, user);
    BUILD(cmd, "openssl pkey -in '%s/clients/%s.key' "
               "-passin 'file:%s/clients/%s.pass' -pubout -out '%s'",
          dir, user, dir, user, check);
    assert_int_equal(run(cmd), 0);
    assert_same_file(check, pub);
}

/* ---- setup ------------------------------------------------------------ */

static int remove_entry(const char *path, const struct stat *st, int flag,
                        struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static int group_setup(void **state)
{
    const char *tmp = getenv("TMPDIR");
    char cmd[CMD_LEN];
    int n;

    (void)state;
    if (access(SCRIPT, R_OK) != 0) {
        print_error(SCRIPT " not found: run from the repository root\n");
        return -1;
    }
    if (tmp == NULL || *tmp == '\0') {
        tmp = "/tmp";
    }
    n = snprintf(g_root, sizeof(g_root), "%s/secchat-keys-test.XXXXXX", tmp);
    if (n < 0 || (size_t)n >= sizeof(g_root) || mkdtemp(g_root) == NULL) {
        print_error("cannot make a temporary directory under %s\n", tmp);
        return -1;
    }
    /* Paths go into shell commands inside single quotes. */
    if (strchr(g_root, '\'') != NULL) {
        print_error("temporary path %s contains a quote\n", g_root);
        return -1;
    }
    n = snprintf(g_dir, sizeof(g_dir), "%s/main", g_root);
    if (n < 0 || (size_t)n >= sizeof(g_dir)) {
        return -1;
    }
    n = snprintf(cmd, sizeof(cmd),
                 "sh " SCRIPT " '%s' alice bob >'%s/main.out' 2>'%s/main.err'",
                 g_dir, g_root, g_root);
    if (n < 0 || (size_t)n >= sizeof(cmd)) {
        return -1;
    }
    int st = system(cmd);
    g_main_status = (st != -1 && WIFEXITED(st)) ? WEXITSTATUS(st) : 512;
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    if (g_root[0] != '\0' &&
        nftw(g_root, remove_entry, 16, FTW_DEPTH | FTW_PHYS) != 0) {
        print_error("cannot remove %s\n", g_root);
        return -1;
    }
    return 0;
}

/* ---- tests ------------------------------------------------------------ */

static void test_first_run_succeeds(void **state)
{
    char path[PATH_LEN];

    (void)state;
    if (g_main_status != 0) {
        BUILD(path, "%s/main.err", g_root);
        char *err = slurp(path, NULL);
        print_error("secchat-keys DIR alice bob exited %d:\n%s\n",
                    g_main_status, err != NULL ? err : "");
        free(err);
        fail();
    }
    /* The summary says where things are. */
    BUILD(path, "%s/main.out", g_root);
    char *out = must_slurp(path, NULL);
    assert_contains(out, "broker.crt");
    assert_contains(out, "secbroker");
    assert_contains(out, "clients/alice.key");
    assert_contains(out, "clients/bob.key");
    free(out);
}

static void test_files_and_modes(void **state)
{
    static const char *const private_files[] = {
        "ca.key", "broker.key", "clients/alice.key", "clients/alice.pass",
        "clients/bob.key", "clients/bob.pass",
    };
    static const char *const public_files[] = {
        "ca.pem", "broker.crt", "users/alice.pub", "users/bob.pub",
    };
    char path[PATH_LEN];

    (void)state;
    need_main_run();
    assert_int_equal(mode_of(g_dir, 1), 0700);
    BUILD(path, "%s/clients", g_dir);
    assert_int_equal(mode_of(path, 1), 0700);
    for (size_t i = 0; i < sizeof(private_files) / sizeof(*private_files); i++) {
        assert_mode(g_dir, private_files[i], 0600);
    }
    for (size_t i = 0; i < sizeof(public_files) / sizeof(*public_files); i++) {
        assert_mode(g_dir, public_files[i], 0644);
    }

    /* No scratch files left behind. */
    DIR *d = opendir(g_dir);
    assert_non_null(d);
    for (struct dirent *e; (e = readdir(d)) != NULL;) {
        if (strncmp(e->d_name, ".secchat-keys", 13) == 0) {
            print_error("scratch entry %s left in %s\n", e->d_name, g_dir);
            closedir(d);
            fail();
        }
    }
    closedir(d);

    /* The password file is one line of base64 from 24 random bytes. */
    BUILD(path, "%s/clients/alice.pass", g_dir);
    size_t len;
    char *pw = must_slurp(path, &len);
    assert_int_equal(len, 33);
    assert_int_equal(pw[32], '\n');
    assert_int_equal(strspn(pw, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"), 32);
    free(pw);
}

static void test_ca_certificate(void **state)
{
    char cmd[CMD_LEN], path[PATH_LEN];

    (void)state;
    need_main_run();
    BUILD(cmd, "openssl x509 -in '%s/ca.pem' -noout -subject -issuer "
               "-nameopt RFC2253 "
               "-ext basicConstraints,keyUsage,subjectKeyIdentifier",
          g_dir);
    char *out = capture(cmd);
    assert_contains(out, "subject=CN=secchat demo CA");
    assert_contains(out, "issuer=CN=secchat demo CA");
    assert_contains(out, "Basic Constraints: critical");
    assert_contains(out, "CA:TRUE");
    assert_contains(out, "Key Usage: critical");
    assert_contains(out, "Certificate Sign, CRL Sign");
    assert_contains(out, "Subject Key Identifier");
    free(out);

    /* The service keys are plain PKCS#8 Ed25519. */
    BUILD(path, "%s/ca.key", g_dir);
    out = must_slurp(path, NULL);
    assert_contains(out, "-----BEGIN PRIVATE KEY-----");
    free(out);
    BUILD(cmd, "openssl pkey -in '%s/broker.key' -noout -text", g_dir);
    out = capture(cmd);
    assert_contains(out, "ED25519 Private-Key");
    free(out);
}

static void test_broker_cert_verifies(void **state)
{
    char cmd[CMD_LEN];

    (void)state;
    need_main_run();
    BUILD(cmd, "openssl verify -CAfile '%s/ca.pem' '%s/broker.crt' >/dev/null",
          g_dir, g_dir);
    assert_int_equal(run(cmd), 0);
    /* Good for a TLS-style server role too. */
    BUILD(cmd, "openssl verify -purpose sslserver -CAfile '%s/ca.pem' "
               "'%s/broker.crt' >/dev/null",
          g_dir, g_dir);
    assert_int_equal(run(cmd), 0);
}

static void test_broker_subject_and_extensions(void **state)
{
    char cmd[CMD_LEN];

    (void)state;
    need_main_run();
    BUILD(cmd, "openssl x509 -in '%s/broker.crt' -noout -subject -issuer "
               "-nameopt RFC2253 -ext subjectAltName,basicConstraints,"
               "keyUsage,extendedKeyUsage",
          g_dir);
    char *out = capture(cmd);
    assert_contains(out, "subject=CN=secbroker\n");
    assert_contains(out, "issuer=CN=secchat demo CA");
    assert_contains(out, "DNS:secbroker\n");
    assert_contains(out, "CA:FALSE");
    assert_contains(out, "Key Usage: critical");
    assert_contains(out, "Digital Signature");
    assert_contains(out, "TLS Web Server Authentication");
    free(out);
}

static void test_user_keys_open_and_match_registry(void **state)
{
    (void)state;
    need_main_run();
    assert_user_ok(g_dir, "alice");
    assert_user_ok(g_dir, "bob");
}

static void test_wrong_password_fails(void **state)
{
    char cmd[CMD_LEN], path[PATH_LEN];

    (void)state;
    need_main_run();
    BUILD(path, "%s/wrong.pass", g_root);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    assert_true(fputs("not-the-password\n", f) >= 0);
    assert_int_equal(fclose(f), 0);

    BUILD(cmd, "openssl pkey -in '%s/clients/alice.key' -passin 'file:%s' "
               "-pubout >/dev/null 2>&1",
          g_dir, path);
    assert_int_not_equal(run(cmd), 0);
    /* Another user's password does not open it either. */
    BUILD(cmd, "openssl pkey -in '%s/clients/alice.key' "
               "-passin 'file:%s/clients/bob.pass' -pubout >/dev/null 2>&1",
          g_dir, g_dir);
    assert_int_not_equal(run(cmd), 0);
}

static void test_user_keys_encrypted(void **state)
{
    char cmd[CMD_LEN], path[PATH_LEN];

    (void)state;
    need_main_run();
    BUILD(path, "%s/clients/alice.key", g_dir);
    char *key = must_slurp(path, NULL);
    assert_contains(key, "-----BEGIN ENCRYPTED PRIVATE KEY-----");
    assert_null(strstr(key, "BEGIN PRIVATE KEY"));
    free(key);

    /* The PBE is PBES2 with scrypt and AES-256-CBC, as documented. */
    BUILD(cmd, "openssl asn1parse -in '%s'", path);
    char *asn = capture(cmd);
    assert_contains(asn, ":PBES2");
    assert_contains(asn, ":scrypt");
    assert_contains(asn, ":aes-256-cbc");
    /* scrypt N = 2^14 (0x4000), r = 8, p = 5, after the salt: the
       parameters keys/README.md gives. */
    char *salt = strstr(asn, ":scrypt");
    salt = salt ? strstr(salt, "OCTET STRING") : NULL;
    assert_non_null(salt);
    char *n = strstr(salt, "INTEGER           :4000\n");
    assert_non_null(n);
    char *r = strstr(n + 1, "INTEGER           :");
    assert_non_null(r);
    assert_true(strncmp(r, "INTEGER           :08\n", 22) == 0);
    char *p = strstr(r + 1, "INTEGER           :");
    assert_non_null(p);
    assert_true(strncmp(p, "INTEGER           :05\n", 22) == 0);
    free(asn);
}

static void test_rerun_adds_user_keeps_existing(void **state)
{
    static const char *const kept[] = {
        "ca.key", "ca.pem", "broker.key", "broker.crt", "clients/alice.key",
        "clients/alice.pass", "users/alice.pub", "clients/bob.key",
    };
    enum { N_KEPT = sizeof(kept) / sizeof(*kept) };
    char *before[N_KEPT];
    size_t before_len[N_KEPT];
    char path[PATH_LEN], args[CMD_LEN];

    (void)state;
    need_main_run();
    for (size_t i = 0; i < N_KEPT; i++) {
        BUILD(path, "%s/%s", g_dir, kept[i]);
        before[i] = must_slurp(path, &before_len[i]);
    }

    /* alice again is skipped, carol is new. */
    BUILD(args, "'%s' alice carol", g_dir);
    assert_keys_ok(args);
    char *out = last_output("out");
    assert_contains(out, "user alice: exists");
    assert_contains(out, "user carol: created");
    free(out);

    for (size_t i = 0; i < N_KEPT; i++) {
        size_t len;
        BUILD(path, "%s/%s", g_dir, kept[i]);
        char *now = must_slurp(path, &len);
        if (len != before_len[i] || memcmp(now, before[i], len) != 0) {
            print_error("%s changed on rerun\n", kept[i]);
            fail();
        }
        free(now);
        free(before[i]);
    }

    assert_mode(g_dir, "clients/carol.key", 0600);
    assert_mode(g_dir, "clients/carol.pass", 0600);
    assert_mode(g_dir, "users/carol.pub", 0644);
    assert_user_ok(g_dir, "carol");
}

/* The files of DIR that every user's and the broker's setup depend on. */
static const char *const g_service_files[] = {
    "ca.key", "ca.pem", "broker.key", "broker.crt",
};
enum { N_SERVICE = sizeof(g_service_files) / sizeof(*g_service_files) };

static void read_service_files(const char *dir, char *text[N_SERVICE],
                               size_t len[N_SERVICE])
{
    char path[PATH_LEN];

    for (size_t i = 0; i < N_SERVICE; i++) {
        BUILD(path, "%s/%s", dir, g_service_files[i]);
        text[i] = must_slurp(path, &len[i]);
    }
}

/* 1 when file i of DIR is byte for byte what was read before, 0 when
 * it changed. Frees the old text. */
static int service_file_same(const char *dir, size_t i, char *before[],
                             size_t before_len[])
{
    char path[PATH_LEN];
    size_t len;

    BUILD(path, "%s/%s", dir, g_service_files[i]);
    char *now = must_slurp(path, &len);
    int same = len == before_len[i] && memcmp(now, before[i], len) == 0;
    free(now);
    free(before[i]);
    before[i] = NULL;
    return same;
}

/* -f re-makes the named users, and never touches the CA or the
 * broker's key: every other user's ca.pem keeps working. */
static void test_force_remakes_user_only(void **state)
{
    char dir[PATH_LEN], path[PATH_LEN], args[CMD_LEN];
    char *before[N_SERVICE];
    size_t before_len[N_SERVICE];

    (void)state;
    fresh_dir(dir, sizeof(dir), "force");
    BUILD(args, "'%s' alice carol", dir);
    assert_keys_ok(args);
    BUILD(path, "%s/clients/carol.key", dir);
    char *old_key = must_slurp(path, NULL);
    BUILD(path, "%s/clients/alice.key", dir);
    char *alice_key = must_slurp(path, NULL);
    read_service_files(dir, before, before_len);

    BUILD(args, "-f '%s' carol", dir);
    assert_keys_ok(args);
    for (size_t i = 0; i < N_SERVICE; i++) {
        if (!service_file_same(dir, i, before, before_len)) {
            print_error("-f DIR carol changed %s\n", g_service_files[i]);
            fail();
        }
    }
    BUILD(path, "%s/clients/carol.key", dir);
    char *new_key = must_slurp(path, NULL);
    assert_string_not_equal(old_key, new_key);
    BUILD(path, "%s/clients/alice.key", dir);
    char *alice_again = must_slurp(path, NULL);
    assert_string_equal(alice_key, alice_again);
    free(old_key);
    free(new_key);
    free(alice_key);
    free(alice_again);

    /* The new key, password and registry entry belong together. */
    assert_user_ok(dir, "carol");
    char *out = last_output("out");
    assert_contains(out, "CA:      reused");
    assert_contains(out, "broker:  reused");
    free(out);

    /* -f with no user to re-make is a mistake, said as one. */
    BUILD(args, "-f '%s'", dir);
    assert_int_equal(keys(args), 2);
    char *err = last_output("err");
    assert_contains(err, "-C");
    free(err);
}

/* Replacing the CA or the broker's key takes its own option. */
static void test_replace_ca_and_broker_key(void **state)
{
    char dir[PATH_LEN], args[CMD_LEN], cmd[CMD_LEN];
    char *before[N_SERVICE];
    size_t before_len[N_SERVICE];

    (void)state;
    fresh_dir(dir, sizeof(dir), "replace");
    BUILD(args, "'%s' alice", dir);
    assert_keys_ok(args);

    /* -K: a new broker key and certificate, the same CA. */
    read_service_files(dir, before, before_len);
    BUILD(args, "-K '%s'", dir);
    assert_keys_ok(args);
    assert_true(service_file_same(dir, 0, before, before_len));  /* ca.key */
    assert_true(service_file_same(dir, 1, before, before_len));  /* ca.pem */
    assert_false(service_file_same(dir, 2, before, before_len)); /* broker.key */
    assert_false(service_file_same(dir, 3, before, before_len)); /* broker.crt */
    BUILD(cmd, "openssl verify -CAfile '%s/ca.pem' '%s/broker.crt' >/dev/null",
          dir, dir);
    assert_int_equal(run(cmd), 0);

    /* --replace-ca: a new CA, the broker's certificate reissued under
     * it for the same key. */
    read_service_files(dir, before, before_len);
    BUILD(args, "--replace-ca '%s'", dir);
    assert_keys_ok(args);
    assert_false(service_file_same(dir, 0, before, before_len));
    assert_false(service_file_same(dir, 1, before, before_len));
    assert_true(service_file_same(dir, 2, before, before_len));
    assert_false(service_file_same(dir, 3, before, before_len));
    assert_int_equal(run(cmd), 0);
    assert_user_ok(dir, "alice");
}

static void test_other_broker_name(void **state)
{
    char dir[PATH_LEN], args[CMD_LEN], cmd[CMD_LEN], path[PATH_LEN];

    (void)state;
    need_main_run();
    fresh_dir(dir, sizeof(dir), "other");
    BUILD(args, "-b otherbroker '%s'", dir);
    assert_keys_ok(args);
    BUILD(cmd, "openssl x509 -in '%s/broker.crt' -noout -subject "
               "-nameopt RFC2253 -ext subjectAltName",
          dir);
    char *out = capture(cmd);
    assert_contains(out, "subject=CN=otherbroker\n");
    assert_contains(out, "DNS:otherbroker\n");
    assert_null(strstr(out, "secbroker"));
    free(out);

    /* Serials are random, not a counter shared by every run. */
    BUILD(cmd, "openssl x509 -in '%s/broker.crt' -noout -serial", dir);
    char *serial_other = capture(cmd);
    BUILD(cmd, "openssl x509 -in '%s/broker.crt' -noout -serial", g_dir);
    char *serial_main = capture(cmd);
    assert_string_not_equal(serial_other, serial_main);
    free(serial_other);
    free(serial_main);

    /* A rerun without -b keeps the name... */
    BUILD(path, "%s/broker.crt", dir);
    char *crt = must_slurp(path, NULL);
    BUILD(args, "'%s'", dir);
    assert_keys_ok(args);
    char *crt_again = must_slurp(path, NULL);
    assert_string_equal(crt, crt_again);
    free(crt_again);

    /* ...and a new -b reissues the certificate for the same key. */
    BUILD(path, "%s/broker.key", dir);
    char *key = must_slurp(path, NULL);
    BUILD(args, "-b thirdbroker '%s'", dir);
    assert_keys_ok(args);
    char *key_again = must_slurp(path, NULL);
    assert_string_equal(key, key_again);
    free(key);
    free(key_again);
    BUILD(cmd, "openssl x509 -in '%s/broker.crt' -noout -subject "
               "-nameopt RFC2253 -ext subjectAltName",
          dir);
    out = capture(cmd);
    assert_contains(out, "subject=CN=thirdbroker\n");
    assert_contains(out, "DNS:thirdbroker\n");
    free(out);
    BUILD(path, "%s/broker.crt", dir);
    char *crt_new = must_slurp(path, NULL);
    assert_string_not_equal(crt, crt_new);
    free(crt);
    free(crt_new);
}

static void test_invalid_user_names(void **state)
{
    static const struct {
        const char *quoted; /* as it goes on the command line */
        const char *raw;    /* as the error message shows it */
        const char *key;    /* where a key for it would land, under DIR */
    } bad[] = {
        { "Alice", "Alice", "clients/Alice.key" },
        { "'a b'", "a b", "clients/a b.key" },
        { "abcdefghijklmnopqrstuvwxyz0123456",
          "abcdefghijklmnopqrstuvwxyz0123456",
          "clients/abcdefghijklmnopqrstuvwxyz0123456.key" },
        { "../x", "../x", "x.key" },
    };
    char args[CMD_LEN], path[PATH_LEN];

    (void)state;
    need_main_run();
    for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
        /* dave comes first: nothing is written until all names pass. */
        BUILD(args, "'%s' dave %s", g_dir, bad[i].quoted);
        int st = keys(args);
        if (st != 2) {
            print_error("user name %s: exit %d, want 2\n", bad[i].raw, st);
            fail();
        }
        char *err = last_output("err");
        assert_contains(err, bad[i].raw);
        free(err);
        BUILD(path, "%s/%s", g_dir, bad[i].key);
        assert_false(exists(path));
        BUILD(path, "%s/clients/dave.key", g_dir);
        assert_false(exists(path));
        BUILD(path, "%s/users/dave.pub", g_dir);
        assert_false(exists(path));
    }
    BUILD(path, "%s/x.pass", g_dir);
    assert_false(exists(path));
    BUILD(path, "%s/x.pub", g_dir);
    assert_false(exists(path));

    /* 32 characters is still fine. */
    char dir[PATH_LEN];
    fresh_dir(dir, sizeof(dir), "long");
    BUILD(args, "'%s' abcdefghijklmnopqrstuvwxyz012345", dir);
    assert_keys_ok(args);

    /* A bad name on a fresh directory creates nothing at all. */
    fresh_dir(dir, sizeof(dir), "bad");
    BUILD(args, "'%s' Alice", dir);
    assert_int_equal(keys(args), 2);
    assert_false(exists(dir));
}

static void test_usage_and_errors(void **state)
{
    char args[CMD_LEN], cmd[CMD_LEN], dir[PATH_LEN];

    (void)state;
    assert_keys_ok("-h");
    char *out = last_output("out");
    assert_contains(out, "Usage:");
    assert_contains(out, "demo only");
    free(out);
    assert_keys_ok("--help");
    out = last_output("out");
    assert_contains(out, "Usage:");
    assert_contains(out, "--replace-ca");
    free(out);
    assert_int_equal(keys("--bogus"), 2);
    out = last_output("err");
    assert_contains(out, "unknown option --bogus");
    free(out);

    assert_int_not_equal(keys(""), 0);
    fresh_dir(dir, sizeof(dir), "errors");
    BUILD(args, "-d abc '%s'", dir);
    assert_int_not_equal(keys(args), 0);
    BUILD(args, "-b 'bad/name' '%s'", dir);
    assert_int_not_equal(keys(args), 0);
    BUILD(args, "-x '%s'", dir);
    assert_int_not_equal(keys(args), 0);

    /* No openssl: a clear message, not a cascade of failures. */
    BUILD(cmd, "OPENSSL=/nonexistent/openssl sh " SCRIPT " '%s' "
               ">/dev/null 2>'%s/err'",
          dir, g_root);
    assert_int_not_equal(run(cmd), 0);
    char *err = last_output("err");
    assert_contains(err, "openssl not found");
    free(err);
}

/* Passwords must reach openssl through a file or descriptor, never as
 * "pass:SECRET" on a command line that ps shows to every user. */
static void test_no_password_in_argv(void **state)
{
    static const char *const opts[] = { "-passin", "-passout" };
    size_t len;

    (void)state;
    char *script = must_slurp(SCRIPT, &len);
    assert_null(strstr(script, "pass:"));
    assert_null(strstr(script, "env:"));

    /* Every -passin/-passout takes file:, fd: or stdin. */
    int seen = 0;
    for (size_t i = 0; i < sizeof(opts) / sizeof(*opts); i++) {
        for (const char *p = strstr(script, opts[i]); p != NULL;
             p = strstr(p + 1, opts[i])) {
            const char *v = p + strlen(opts[i]);
            v += strspn(v, " \t");
            if (*v == '"' || *v == '\'') {
                v++;
            }
            if (strncmp(v, "file:", 5) != 0 && strncmp(v, "fd:", 3) != 0 &&
                strncmp(v, "stdin", 5) != 0) {
                print_error("%s not followed by file:/fd:/stdin: %.40s\n",
                            opts[i], p);
                fail();
            }
            seen++;
        }
    }
    assert_true(seen >= 2);
    free(script);
}

static void test_script_is_posix_sh(void **state)
{
    (void)state;
    char *script = must_slurp(SCRIPT, NULL);
    assert_int_equal(strncmp(script, "#!/bin/sh\n", 10), 0);
    assert_contains(script, "https://mozilla.org/MPL/2.0/");
    assert_contains(script, "set -eu");
    free(script);
    assert_int_equal(run("sh -n " SCRIPT), 0);
    assert_true(access(SCRIPT, X_OK) == 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_first_run_succeeds),
        cmocka_unit_test(test_files_and_modes),
        cmocka_unit_test(test_ca_certificate),
        cmocka_unit_test(test_broker_cert_verifies),
        cmocka_unit_test(test_broker_subject_and_extensions),
        cmocka_unit_test(test_user_keys_open_and_match_registry),
        cmocka_unit_test(test_wrong_password_fails),
        cmocka_unit_test(test_user_keys_encrypted),
        cmocka_unit_test(test_rerun_adds_user_keeps_existing),
        cmocka_unit_test(test_force_remakes_user_only),
        cmocka_unit_test(test_replace_ca_and_broker_key),
        cmocka_unit_test(test_other_broker_name),
        cmocka_unit_test(test_invalid_user_names),
        cmocka_unit_test(test_usage_and_errors),
        cmocka_unit_test(test_no_password_in_argv),
        cmocka_unit_test(test_script_is_posix_sh),
    };

    return cmocka_run_group_tests_name("secchat-keys", tests, group_setup,
                                       group_teardown);
}
