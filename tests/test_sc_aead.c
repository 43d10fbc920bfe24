/*  Tests of the keyed AEAD (sc_aead_new, sc_aead_seal_with,
    sc_aead_open_with): one object used for many messages must give the
    same bytes and the same verdicts as the one-shot sc_aead_seal and
    sc_aead_open, whatever came before on that object (a message of
    another length, a failed open). Wycheproof's ChaCha20-Poly1305
    vectors, then long runs against the one-shot functions.

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at https://mozilla.org/MPL/2.0/.
*/
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "sc_crypto.h"
#include "sc_testvec.h"

/* Each vector twice on one object, with a tampered open between: the
   object's state after a message never leaks into the next. */
static void
test_wycheproof_keyed (void **state)
{
    (void) state;
    sc_testvec_t *tv = sc_testvec_open ("chacha20_poly1305.txt");
    assert_non_null (tv);
    assert_true (sc_testvec_has_columns (tv, "tcId result key iv aad msg ct tag"));
    size_t valid = 0, invalid = 0;
    int rc;
    while ((rc = sc_testvec_next (tv)) == 1) {
        uint8_t *key, *iv, *aad, *msg, *ct, *tag;
        size_t key_len, iv_len, aad_len, msg_len, ct_len, tag_len;
        assert_int_equal (sc_testvec_hex (tv, "key", &key, &key_len), 0);
        assert_int_equal (sc_testvec_hex (tv, "iv", &iv, &iv_len), 0);
        assert_int_equal (sc_testvec_hex (tv, "aad", &aad, &aad_len), 0);
        assert_int_equal (sc_testvec_hex (tv, "msg", &msg, &msg_len), 0);
        assert_int_equal (sc_testvec_hex (tv, "ct", &ct, &ct_len), 0);
        assert_int_equal (sc_testvec_hex (tv, "tag", &tag, &tag_len), 0);
        bool is_valid = strcmp (sc_testvec_str (tv, "result"), "valid") == 0;
        if (key_len == SC_KEY_LEN && iv_len == SC_NONCE_LEN && tag_len == SC_TAG_LEN
            && ct_len == msg_len) {
            sc_aead_t *aead = sc_aead_new (key);
            assert_non_null (aead);
            uint8_t *box = malloc (ct_len + SC_TAG_LEN), *out = malloc (msg_len + 1);
            assert_non_null (box);
            assert_non_null (out);
            memcpy (box, ct, ct_len);
            memcpy (box + ct_len, tag, SC_TAG_LEN);
            for (int round = 0; round < 2; round++) {
                int opened = sc_aead_open_with (aead, iv, aad, aad_len, box,
                                                ct_len + SC_TAG_LEN, out);
                assert_int_equal (opened, is_valid ? 0 : -1);
                if (is_valid)
                    assert_memory_equal (out, msg, msg_len);
                if (is_valid) {
                    /* a tampered box between the two rounds (only from a
                       valid one: some invalid vectors are a valid tag with
                       just this bit flipped) */
                    box[ct_len] ^= 0x80;
                    assert_int_equal (sc_aead_open_with (aead, iv, aad, aad_len, box,
                                                         ct_len + SC_TAG_LEN, out), -1);
                    box[ct_len] ^= 0x80;
                    uint8_t *sealed = malloc (msg_len + SC_TAG_LEN);
                    assert_non_null (sealed);
                    assert_int_equal (sc_aead_seal_with (aead, iv, aad, aad_len, msg,
                                                         msg_len, sealed), 0);
                    assert_memory_equal (sealed, box, ct_len + SC_TAG_LEN);
                    free (sealed);
                }
            }
            if (is_valid)
                valid++;
            else
                invalid++;
            free (box);
            free (out);
            sc_aead_destroy (&aead);
            assert_null (aead);
        }
        free (key);
        free (iv);
        free (aad);
        free (msg);
        free (ct);
        free (tag);
    }
    assert_int_equal (rc, 0);
    assert_int_equal (valid, 256);
    assert_int_equal (invalid, 60);
    sc_testvec_destroy (&tv);
}

/* Many messages of many lengths on one key: the one-shot's bytes. */
static void
test_keyed_matches_one_shot (void **state)
{
    (void) state;
    uint8_t key[SC_KEY_LEN], nonce[SC_NONCE_LEN], ad[64];
    static uint8_t pt[5000], a[5016], b[5016], back[5000];
    assert_int_equal (sc_random (key, sizeof key), 0);
    assert_int_equal (sc_random (ad, sizeof ad), 0);
    assert_int_equal (sc_random (pt, sizeof pt), 0);
    sc_aead_t *aead = sc_aead_new (key);
    assert_non_null (aead);
    for (uint64_t n = 1; n <= 600; n++) {
        size_t len = (size_t) (n * 37 % sizeof pt), ad_len = (size_t) (n % sizeof ad);
        if (n % 50 == 0)
            len = 0;
        sc_aead_nonce (n, nonce);
        assert_int_equal (sc_aead_seal_with (aead, nonce, ad, ad_len, pt, len, a), 0);
        assert_int_equal (sc_aead_seal (key, nonce, ad, ad_len, pt, len, b), 0);
        assert_memory_equal (a, b, len + SC_TAG_LEN);
        if (n % 3 == 0) {                  /* a wrong nonce: refused, wiped */
            uint8_t other[SC_NONCE_LEN];
            sc_aead_nonce (n + 1, other);
            memset (back, 0xee, sizeof back);
            assert_int_equal (sc_aead_open_with (aead, other, ad, ad_len, a, len + SC_TAG_LEN,
                                                 back), -1);
            for (size_t i = 0; i < len; i++)
                assert_int_equal (back[i], 0);
        }
        assert_int_equal (sc_aead_open_with (aead, nonce, ad, ad_len, a, len + SC_TAG_LEN,
                                             back), 0);
        assert_memory_equal (back, pt, len);
    }
    /* bad arguments, as the one-shot functions */
    assert_int_equal (sc_aead_open_with (aead, nonce, ad, 0, a, SC_TAG_LEN - 1, back), -1);
    assert_int_equal (sc_aead_seal_with (NULL, nonce, ad, 0, pt, 1, a), -1);
    assert_int_equal (sc_aead_open_with (NULL, nonce, ad, 0, a, SC_TAG_LEN, back), -1);
    sc_aead_destroy (&aead);
    sc_aead_destroy (&aead);            /* idempotent */
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_wycheproof_keyed),
        cmocka_unit_test (test_keyed_matches_one_shot),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
