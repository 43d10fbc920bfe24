/*  test_fuzz_regress: the fuzz targets' inputs kept as files, run again.

    Every file in tests/fuzz/regress/TARGET/ (crashes the fuzzers found,
    once fixed, and hand-made nasty inputs) and in tests/fuzz/corpus/TARGET/
    (the seeds from real sessions) goes through the same entry function
    the fuzz target uses (tests/fuzz/fuzz_TARGET.c, built here without
    libFuzzer). A broken invariant aborts; under `make test SANITIZE=1` a
    memory error or undefined behaviour does too. A few of the hand-made
    inputs also have their exact decoder result checked here.

    Run from the repository root (as `make test` does).

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at https://mozilla.org/MPL/2.0/.
*/
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "fuzz/sc_fuzz.h"
#include "sc_msg.h"

/* Read a whole (small) file. */
static uint8_t *
s_slurp (const char *path, size_t *len)
{
    FILE *file = fopen (path, "rb");
    assert_non_null (file);
    uint8_t *data = malloc (SC_ENVELOPE_MAX * 2 + 1);
    assert_non_null (data);
    *len = fread (data, 1, SC_ENVELOPE_MAX * 2 + 1, file);
    assert_false (ferror (file));
    fclose (file);
    return data;
}

static int
s_name_cmp (const void *a, const void *b)
{
    return strcmp (*(char *const *) a, *(char *const *) b);
}

/* Feed every regular file of dir to fn, in name order; the count. */
static size_t
s_run_dir (const char *dir, int (*fn) (const uint8_t *, size_t))
{
    DIR *d = opendir (dir);
    if (!d)
        return 0;
    char *names[4096];
    size_t count = 0;
    struct dirent *entry;
    while ((entry = readdir (d)) && count < 4096)
        if (entry->d_name[0] != '.') {
            names[count] = strdup (entry->d_name);
            assert_non_null (names[count]);
            count++;
        }
    closedir (d);
    qsort (names, count, sizeof names[0], s_name_cmp);
    size_t ran = 0;
    for (size_t i = 0; i < count; i++) {
        char path[1024];
        snprintf (path, sizeof path, "%s/%s", dir, names[i]);
        struct stat st;
        if (stat (path, &st) == 0 && S_ISREG (st.st_mode)) {
            size_t len = 0;
            uint8_t *data = s_slurp (path, &len);
            assert_int_equal (fn (data, len), 0);
            free (data);
            ran++;
        }
        free (names[i]);
    }
    return ran;
}

static void
s_run_target (const char *target, int (*fn) (const uint8_t *, size_t))
{
    char dir[256];
    snprintf (dir, sizeof dir, "tests/fuzz/regress/%s", target);
    size_t regress = s_run_dir (dir, fn);
    snprintf (dir, sizeof dir, "tests/fuzz/corpus/%s", target);
    size_t corpus = s_run_dir (dir, fn);
    print_message ("%s: %zu regression inputs, %zu seeds\n", target, regress, corpus);
    /* The directories are checked in: an empty run means a wrong cwd. */
    assert_true (regress > 0);
    assert_true (corpus > 0);
}

/* ---- Hand-made inputs with a known answer ---------------------------------- */

typedef struct {
    const char *what;
    const char *bytes;
    size_t len;
    int rc;
} s_case_t;

#define S_CASE(what, bytes, rc) { what, bytes, sizeof bytes - 1, rc }

static void
test_envelope_cases (void **state)
{
    (void) state;
    static const s_case_t cases[] = {
        S_CASE ("array32 claiming 4G elements", "\xdd\xff\xff\xff\xff\x01", SC_CODEC_EPARSE),
        S_CASE ("array16 claiming 65535 elements", "\xdc\xff\xff\x01\x01\x00\xc4\x00",
                SC_CODEC_EPARSE),
        S_CASE ("bin32 claiming 4 GB", "\x94\x01\x0b\x01\xc6\xff\xff\xff\xff", SC_CODEC_EPARSE),
        S_CASE ("str32 claiming 4 GB", "\x94\x01\x0b\x01\xdb\xff\xff\xff\xff", SC_CODEC_EPARSE),
        S_CASE ("nested arrays", "\x91\x91\x91\x91\x91\x91\x91\x91\x90", SC_CODEC_EDEPTH),
        S_CASE ("map", "\x81\x01\x01", SC_CODEC_ETYPE),
        S_CASE ("ext 8", "\x94\x01\x0b\x01\xc7\x01\x05\x00", SC_CODEC_ETYPE),
        S_CASE ("fixext 1 as body", "\x94\x01\x0b\x01\xd4\x05\x00", SC_CODEC_ETYPE),
        S_CASE ("float as seq", "\x94\x01\x0b\xcb\x00\x00\x00\x00\x00\x00\x00\x00\xc4\x00",
                SC_CODEC_ETYPE),
        S_CASE ("truncated bin", "\x94\x01\x0b\x01\xc4\x05\x00\x00", SC_CODEC_EPARSE),
        S_CASE ("truncated array", "\x94\x01\x0b\x01", SC_CODEC_EPARSE),
        S_CASE ("trailing byte", "\x94\x01\x0b\x01\xc4\x00\x00", SC_CODEC_ETRAILING),
        /* Not msgpack at all: malformed, whatever the version says. */
        S_CASE ("version 2, then not msgpack", "\x94\x02\xc1", SC_CODEC_EPARSE),
        S_CASE ("version 2 with a map", "\x92\x02\x80", SC_CODEC_EVERSION),
        S_CASE ("unknown opcode", "\x94\x01\x12\x01\xc4\x00", SC_CODEC_EOPCODE),
        S_CASE ("opcode 256", "\x94\x01\xcd\x01\x00\x01\xc4\x00", SC_CODEC_EOPCODE),
        S_CASE ("negative seq", "\x94\x01\x0b\xff\xc4\x00", SC_CODEC_ETYPE),
        S_CASE ("body as str", "\x94\x01\x0b\x01\xa0", SC_CODEC_ETYPE),
        S_CASE ("five elements", "\x95\x01\x0b\x01\xc4\x00\xc0", SC_CODEC_EARITY),
        S_CASE ("never-used byte", "\xc1", SC_CODEC_EPARSE),
        S_CASE ("ok: PING, seq 2^64-1",
                "\x94\x01\x0b\xcf\xff\xff\xff\xff\xff\xff\xff\xff\xc4\x00", SC_CODEC_OK),
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        sc_envelope_t env;
        int rc = sc_envelope_decode ((const uint8_t *) cases[i].bytes, cases[i].len, &env);
        if (rc != cases[i].rc)
            fail_msg ("%s: got %d, want %d", cases[i].what, rc, cases[i].rc);
        assert_int_equal (sc_fuzz_envelope ((const uint8_t *) cases[i].bytes, cases[i].len), 0);
    }
    /* An envelope of 16 KiB + 1 is refused before it is looked at. */
    uint8_t *big = calloc (1, SC_ENVELOPE_MAX + 1);
    assert_non_null (big);
    sc_envelope_t env;
    assert_int_equal (sc_envelope_decode (big, SC_ENVELOPE_MAX + 1, &env), SC_CODEC_ESIZE);
    free (big);
}

static void
test_body_cases (void **state)
{
    (void) state;
    static const struct {
        const char *what;
        uint8_t opcode;
        const char *bytes;
        size_t len;
        int rc;
    } cases[] = {
#define B(what, op, bytes, rc) { what, op, bytes, sizeof bytes - 1, rc }
        B ("USERS: array claiming 65535 names", SC_OP_USERS, "\x92\xdc\xff\xff\xc2",
           SC_CODEC_EPARSE),
        B ("USERS: names nested too deep", SC_OP_USERS, "\x92\x91\x91\x91\xa1\x61\xc2",
           SC_CODEC_EDEPTH),
        B ("USERS: a name that is not one", SC_OP_USERS, "\x92\x91\xa1\x41\xc2",
           SC_CODEC_ENAME),
        B ("RTT: name of 33 bytes", SC_OP_RTT,
           "\x91\xd9\x21" "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", SC_CODEC_ENAME),
        B ("RTT: name with a NUL", SC_OP_RTT, "\x91\xa3\x61\x00\x62", SC_CODEC_ENAME),
        B ("ERROR: detail with a NUL", SC_OP_ERROR, "\x92\x01\xa2\x61\x00", SC_CODEC_EUTF8),
        B ("ERROR: overlong UTF-8", SC_OP_ERROR, "\x92\x01\xa2\xc0\xaf", SC_CODEC_EUTF8),
        B ("ERROR: surrogate", SC_OP_ERROR, "\x92\x01\xa3\xed\xa0\x80", SC_CODEC_EUTF8),
        B ("ERROR: code 0", SC_OP_ERROR, "\x92\x00\xa0", SC_CODEC_ERANGE),
        B ("ERROR: code 65536", SC_OP_ERROR, "\x92\xce\x00\x01\x00\x00\xa0", SC_CODEC_ERANGE),
        B ("MESSAGE: counter 0", SC_OP_MESSAGE, "\x92\x00\xc4\x00", SC_CODEC_ERANGE),
        B ("MESSAGE: box of 16 bytes", SC_OP_MESSAGE,
           "\x92\x01\xc4\x10" "0123456789abcdef", SC_CODEC_ESIZE),
        B ("MESSAGE: ext as box", SC_OP_MESSAGE, "\x92\x01\xd8\x01" "0123456789abcdef",
           SC_CODEC_ETYPE),
        B ("MESSAGE: bin32 claiming 4 GB", SC_OP_MESSAGE, "\x92\x01\xc6\xff\xff\xff\xff",
           SC_CODEC_EPARSE),
        B ("HELLO: nil suite", SC_OP_HELLO, "\x93\xc0\xc4\x00\xc4\x00", SC_CODEC_ETYPE),
        B ("HELLO: suite 256", SC_OP_HELLO, "\x93\xcd\x01\x00\xc4\x00\xc4\x00", SC_CODEC_ERANGE),
        B ("CHAT: empty key", SC_OP_CHAT, "\x93\xa1\x61\xc4\x00\xc3", SC_CODEC_ESIZE),
        B ("CHAT: initiator as int", SC_OP_CHAT,
           "\x93\xa1\x61\xc4\x20" "0123456789abcdef0123456789abcdef" "\x01", SC_CODEC_ETYPE),
        B ("WELCOME: heartbeat 99", SC_OP_WELCOME, "\x93\xa1\x61\x63\xc4\x20"
           "\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0",
           SC_CODEC_ERANGE),
        B ("WELCOME: no pad", SC_OP_WELCOME, "\x92\xa1\x61\xcd\x13\x88", SC_CODEC_EARITY),
        B ("PING: not empty", SC_OP_PING, "\x91\xc0", SC_CODEC_EARITY),
        B ("PING: empty input", SC_OP_PING, "", SC_CODEC_EPARSE),
        B ("opcode 18", 18, "\x90", SC_CODEC_EOPCODE),
        B ("ok: PING", SC_OP_PING, "\x90", SC_CODEC_OK),
        B ("ok: ERROR, empty detail", SC_OP_ERROR, "\x92\x0e\xa0", SC_CODEC_OK),
#undef B
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        sc_msg_t msg;
        int rc = sc_msg_decode (cases[i].opcode, (const uint8_t *) cases[i].bytes,
                                cases[i].len, &msg);
        sc_msg_reset (&msg);
        if (rc != cases[i].rc)
            fail_msg ("%s: got %d, want %d", cases[i].what, rc, cases[i].rc);
        uint8_t input[64];
        assert_true (cases[i].len < sizeof input);
        input[0] = cases[i].opcode;
        memcpy (input + 1, cases[i].bytes, cases[i].len);
        assert_int_equal (sc_fuzz_body (input, cases[i].len + 1), 0);
    }
}

/* The hand-made E2E plaintexts (0xff, then the plaintext): each one's
   exact result, so a decoder that lets one through is caught here even
   when nothing crashes. */
static void
test_e2e_plain_files (void **state)
{
    (void) state;
    static const struct { const char *file; int rc; } cases[] = {
        { "e2e-ack-valid", SC_CODEC_OK },
        { "e2e-close-valid", SC_CODEC_OK },
        { "e2e-text-4096", SC_CODEC_OK },
        { "e2e-text-4097", SC_CODEC_ESIZE },
        { "e2e-text-empty", SC_CODEC_ESIZE },
        { "e2e-close-with-text", SC_CODEC_ESIZE },
        { "e2e-text-nul", SC_CODEC_EUTF8 },
        { "e2e-text-as-bin", SC_CODEC_ETYPE },
        { "e2e-kind-3", SC_CODEC_ERANGE },
        { "e2e-kind-uint64", SC_CODEC_ERANGE },
        { "e2e-ack-2pow32", SC_CODEC_ERANGE },
        { "e2e-lines-2pow32", SC_CODEC_ERANGE },
        { "e2e-pad-nonzero", SC_CODEC_ERANGE },
        { "e2e-pad-short", SC_CODEC_ESIZE },
        { "e2e-old-layout", SC_CODEC_EARITY },
        { "e2e-oversize-8193", SC_CODEC_ESIZE },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char path[256];
        snprintf (path, sizeof path, "tests/fuzz/regress/body/%s", cases[i].file);
        size_t len = 0;
        uint8_t *data = s_slurp (path, &len);
        assert_true (len >= 1 && data[0] == SC_FUZZ_E2E_PLAIN);
        sc_e2e_plain_t plain;
        int rc = sc_e2e_plain_decode (data + 1, len - 1, &plain);
        free (plain.text);
        free (data);
        if (rc != cases[i].rc)
            fail_msg ("%s: got %d, want %d", cases[i].file, rc, cases[i].rc);
    }
}

/* ---- Every file -------------------------------------------------------------- */

static void
test_envelope_files (void **state)
{
    (void) state;
    s_run_target ("envelope", sc_fuzz_envelope);
}

static void
test_body_files (void **state)
{
    (void) state;
    s_run_target ("body", sc_fuzz_body);
}

static void
test_broker_files (void **state)
{
    (void) state;
    assert_int_equal (sc_fuzz_broker_init (), 0);
    s_run_target ("broker", sc_fuzz_broker);
}

static void
test_client_files (void **state)
{
    (void) state;
    assert_int_equal (sc_fuzz_client_init (), 0);
    s_run_target ("client", sc_fuzz_client);
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_envelope_cases),
        cmocka_unit_test (test_body_cases),
        cmocka_unit_test (test_e2e_plain_files),
        cmocka_unit_test (test_envelope_files),
        cmocka_unit_test (test_body_files),
        cmocka_unit_test (test_broker_files),
        cmocka_unit_test (test_client_files),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
