/*  Tests of sc_wire's relay path: sc_wire_seal_raw writes the envelope
    header itself and seals in place behind it, so its bytes are checked
    against the two-step way (sc_channel_seal, then sc_envelope_encode)
    across every msgpack width the header can take; sc_wire_open_inplace
    and sc_wire_reseal_inplace open and re-seal in the frame itself.

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

#include "sc_wire.h"

static sc_session_keys_t s_keys;
static uint8_t s_body[SC_ENVELOPE_MAX];

/* Two channels with the same keys, so each seals the same bytes. */
static void
s_twins (sc_channel_t **a, sc_channel_t **b)
{
    *a = sc_channel_new (&s_keys);
    *b = sc_channel_new (&s_keys);
    assert_non_null (*a);
    assert_non_null (*b);
}

/* The envelope the two-step way, as sc_wire_seal_raw made it before. */
static int
s_two_step (sc_channel_t *ch, uint8_t opcode, size_t len, uint8_t **out, size_t *out_len)
{
    uint8_t *ct = malloc (len + SC_TAG_LEN);
    assert_non_null (ct);
    uint64_t seq = 0;
    int rc = sc_channel_seal (ch, SC_PROTO_VERSION, opcode, s_body, len, &seq, ct);
    if (rc == 0 && sc_envelope_encode (opcode, seq, ct, len + SC_TAG_LEN, out, out_len))
        rc = SC_CODEC_ENOMEM;
    free (ct);
    return rc;
}

static void
s_same (sc_channel_t *a, sc_channel_t *b, uint8_t opcode, size_t len)
{
    uint8_t *x = NULL, *y = NULL;
    size_t xl = 0, yl = 0;
    int rx = sc_wire_seal_raw (a, opcode, s_body, len, &x, &xl);
    int ry = s_two_step (b, opcode, len, &y, &yl);
    assert_int_equal (rx, ry);
    assert_int_equal (sc_channel_sent (a), sc_channel_sent (b));
    if (rx == 0) {
        assert_int_equal (xl, yl);
        assert_memory_equal (x, y, xl);
    }
    free (x);
    free (y);
}

static void
test_seal_raw_lengths (void **state)
{
    (void) state;
    sc_channel_t *a, *b;
    s_twins (&a, &b);
    /* bin8 up to 255 bytes of ciphertext, bin16 after; the largest body
       that fits, and one past it (refused the same way) */
    static const size_t lens[] = { 0, 1, 100, 239, 240, 241, 1000, 4137, 8192,
                                   SC_ENVELOPE_MAX - 16 - 8, SC_ENVELOPE_MAX - 16 - 7,
                                   SC_ENVELOPE_MAX - 16 - 6, SC_ENVELOPE_MAX - 16,
                                   SC_ENVELOPE_MAX };
    for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++) {
        s_same (a, b, SC_OP_MESSAGE, lens[i]);
        s_same (a, b, SC_OP_CC_SESSION, lens[i]);
    }
    /* an unknown opcode is refused as before */
    s_same (a, b, 200, 10);
    sc_channel_destroy (&a);
    sc_channel_destroy (&b);
}

static void
test_seal_raw_seq_widths (void **state)
{
    (void) state;
    sc_channel_t *a, *b;
    s_twins (&a, &b);
    /* seq crosses fixint, uint8 and uint16 (and into uint32) */
    for (uint64_t seq = 1; seq <= 65600; seq++)
        s_same (a, b, SC_OP_MESSAGE, seq % 7 == 0 ? 300 : 5);
    sc_channel_destroy (&a);
    sc_channel_destroy (&b);
}

static void
test_seal_raw_limit (void **state)
{
    (void) state;
    sc_channel_t *a, *b;
    s_twins (&a, &b);
    sc_channel_set_limit (a, 3);
    sc_channel_set_limit (b, 3);
    s_same (a, b, SC_OP_MESSAGE, 10);
    s_same (a, b, SC_OP_MESSAGE, 10);
    s_same (a, b, SC_OP_MESSAGE, 10);          /* ELIMIT, seq unchanged */
    assert_int_equal (sc_channel_sent (a), 2);
    uint8_t *frame = NULL;
    size_t len = 0;
    assert_int_equal (sc_wire_seal_raw (a, SC_OP_MESSAGE, s_body, 1, &frame, &len),
                      SC_CHANNEL_ELIMIT);
    assert_null (frame);
    sc_channel_destroy (&a);
    sc_channel_destroy (&b);
}

/* The receiving side of the keys: send and receive swapped. */
static sc_channel_t *
s_peer (void)
{
    sc_session_keys_t keys = s_keys;
    memcpy (keys.k_send, s_keys.k_recv, SC_KEY_LEN);
    memcpy (keys.k_recv, s_keys.k_send, SC_KEY_LEN);
    sc_channel_t *ch = sc_channel_new (&keys);
    assert_non_null (ch);
    return ch;
}

/* A copy of frame that the in-place functions may rewrite. */
static uint8_t *
s_dup (const uint8_t *frame, size_t len)
{
    uint8_t *copy = malloc (len);
    assert_non_null (copy);
    memcpy (copy, frame, len);
    return copy;
}

static void
test_open_inplace (void **state)
{
    (void) state;
    sc_channel_t *tx = sc_channel_new (&s_keys), *rx = s_peer ();
    assert_non_null (tx);
    uint8_t *frame = NULL, *copy = NULL, *body = NULL, opcode = 0;
    size_t len = 0, body_len = 0;
    for (size_t i = 0; i < 300; i++)
        s_body[i] = (uint8_t) i;

    assert_int_equal (sc_wire_seal_raw (tx, SC_OP_MESSAGE, s_body, 300, &frame, &len), 0);
    copy = s_dup (frame, len);
    assert_int_equal (sc_wire_open_inplace (rx, copy, len, &opcode, &body, &body_len), 0);
    assert_int_equal (opcode, SC_OP_MESSAGE);
    assert_int_equal (body_len, 300);
    /* the plaintext is where the ciphertext was: at the end of the frame */
    assert_ptr_equal (body, copy + len - 300 - SC_TAG_LEN);
    assert_memory_equal (body, s_body, 300);
    free (copy);
    /* the same envelope again is a replay */
    copy = s_dup (frame, len);
    assert_int_equal (sc_wire_open_inplace (rx, copy, len, &opcode, &body, &body_len),
                      SC_CHANNEL_EREPLAY);
    free (copy);
    /* a flipped byte does not open, and no unauthenticated plaintext is
       left in the frame */
    free (frame);
    assert_int_equal (sc_wire_seal_raw (tx, SC_OP_MESSAGE, s_body, 300, &frame, &len), 0);
    frame[len - 1] ^= 1;
    copy = s_dup (frame, len);
    assert_int_equal (sc_wire_open_inplace (rx, copy, len, &opcode, &body, &body_len),
                      SC_CHANNEL_EAUTH);
    for (size_t i = 0; i + 32 <= len; i++)
        assert_true (memcmp (copy + i, s_body, 32) != 0);
    free (copy);
    /* the next one (seq 3; seq 2 never opened) is authentic but a gap:
       refused, and its plaintext is not left in the frame either */
    free (frame);
    assert_int_equal (sc_wire_seal_raw (tx, SC_OP_MESSAGE, s_body, 300, &frame, &len), 0);
    copy = s_dup (frame, len);
    assert_int_equal (sc_wire_open_inplace (rx, copy, len, &opcode, &body, &body_len),
                      SC_CHANNEL_EGAP);
    for (size_t i = 0; i + 32 <= len; i++)
        assert_true (memcmp (copy + i, s_body, 32) != 0);
    free (copy);
    assert_int_equal (sc_channel_received (rx), 1);
    /* not an envelope at all; a body too short for a tag */
    uint8_t junk[] = { 0xc1 };
    assert_int_equal (sc_wire_open_inplace (rx, junk, 1, &opcode, &body, &body_len),
                      SC_CODEC_EPARSE);
    uint8_t *short_frame = NULL;
    size_t short_len = 0;
    assert_int_equal (sc_envelope_encode (SC_OP_MESSAGE, 9, s_body, SC_TAG_LEN - 1,
                                          &short_frame, &short_len), 0);
    assert_int_equal (sc_wire_open_inplace (rx, short_frame, short_len, &opcode, &body,
                                            &body_len), SC_CHANNEL_EAUTH);
    free (short_frame);
    free (frame);
    sc_channel_destroy (&tx);
    sc_channel_destroy (&rx);
}

/* Open in place, re-seal in place for a third party: the same bytes as
   sealing a copy would give; a header of another length is left to the
   caller (1) with the frame untouched. */
static void
test_reseal_inplace (void **state)
{
    (void) state;
    sc_channel_t *a_tx = sc_channel_new (&s_keys), *a_rx = s_peer ();
    sc_channel_t *b_tx = sc_channel_new (&s_keys), *b_ref = sc_channel_new (&s_keys);
    assert_true (a_tx && a_rx && b_tx && b_ref);
    uint8_t *frame = NULL, *body = NULL, *expect = NULL, opcode = 0;
    size_t len = 0, body_len = 0, expect_len = 0;
    for (int round = 0; round < 3; round++) {
        assert_int_equal (sc_wire_seal_raw (a_tx, SC_OP_MESSAGE, s_body, 200, &frame, &len), 0);
        assert_int_equal (sc_wire_open_inplace (a_rx, frame, len, &opcode, &body, &body_len), 0);
        assert_int_equal (sc_wire_reseal_inplace (b_tx, opcode, frame, len, body, body_len), 0);
        assert_int_equal (sc_wire_seal_raw (b_ref, SC_OP_MESSAGE, s_body, 200, &expect,
                                            &expect_len), 0);
        assert_int_equal (expect_len, len);
        assert_memory_equal (frame, expect, len);
        free (frame);
        free (expect);
    }
    /* b's seq past 127 takes two bytes where a's takes one */
    while (sc_channel_sent (b_tx) < 200) {
        uint64_t seq = 0;
        uint8_t ct[SC_TAG_LEN];
        assert_int_equal (sc_channel_seal (b_tx, SC_PROTO_VERSION, SC_OP_PING, NULL, 0, &seq,
                                           ct), 0);
    }
    assert_int_equal (sc_wire_seal_raw (a_tx, SC_OP_MESSAGE, s_body, 200, &frame, &len), 0);
    assert_int_equal (sc_wire_open_inplace (a_rx, frame, len, &opcode, &body, &body_len), 0);
    uint8_t *before = s_dup (frame, len);
    assert_int_equal (sc_wire_reseal_inplace (b_tx, opcode, frame, len, body, body_len),
                      SC_WIRE_NOFIT);
    assert_memory_equal (frame, before, len);
    assert_int_equal (sc_channel_sent (b_tx), 200);       /* no seq spent */
    /* a body that is not at the frame's end is refused the same way */
    assert_int_equal (sc_wire_reseal_inplace (b_tx, opcode, frame, len, body - 1, body_len),
                      SC_WIRE_NOFIT);
    assert_memory_equal (frame, before, len);
    free (before);
    free (frame);
    sc_channel_destroy (&a_tx);
    sc_channel_destroy (&a_rx);
    sc_channel_destroy (&b_tx);
    sc_channel_destroy (&b_ref);
}

int
main (void)
{
    for (size_t i = 0; i < SC_KEY_LEN; i++) {
        s_keys.k_send[i] = (uint8_t) i;
        s_keys.k_recv[i] = (uint8_t) (0x80 + i);
        s_keys.sid[i] = (uint8_t) (0x40 + i);
    }
    for (size_t i = 0; i < sizeof s_body; i++)
        s_body[i] = (uint8_t) (i * 7);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_seal_raw_lengths),
        cmocka_unit_test (test_seal_raw_seq_widths),
        cmocka_unit_test (test_seal_raw_limit),
        cmocka_unit_test (test_open_inplace),
        cmocka_unit_test (test_reseal_inplace),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
