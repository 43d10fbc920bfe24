/*  test_sc_channel: the encrypted client-broker session, against
    docs/PROTOCOL.md section 6 and crypto/sc_channel.h.

    Two channels are made from the same sc_session_keys_t with send and
    recv swapped, as the client and the broker get them from the
    handshake. Besides the round trip, replay and tampering tests, one
    test recomputes an envelope body with the primitives exactly as the
    specification writes it (nonce = u32(0) || u64(seq), ad = sid ||
    u8(version) || u8(opcode) || u64(seq)), which pins the byte layout.

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

#define VERSION 1
#define OP_MSG  5           //  MESSAGE
#define OP_LIST 1
#define SEQ_LIMIT (((uint64_t) 1) << 48)

//  The fixture: one session, its two ends, and a second session with the
//  same keys but another sid.
typedef struct {
    sc_session_keys_t keys;         //  the client's view: send = c2b
    sc_session_keys_t peer_keys;    //  the broker's view: swapped
    sc_channel_t *client;
    sc_channel_t *broker;
} fixture_t;

static int
setup (void **state)
{
    fixture_t *f = calloc (1, sizeof *f);
    if (!f)
        return -1;
    if (sc_random (f->keys.sid, sizeof f->keys.sid)
        || sc_random (f->keys.k_send, sizeof f->keys.k_send)
        || sc_random (f->keys.k_recv, sizeof f->keys.k_recv)) {
        free (f);
        return -1;
    }
    memcpy (f->peer_keys.sid, f->keys.sid, SC_HASH_LEN);
    memcpy (f->peer_keys.k_send, f->keys.k_recv, SC_KEY_LEN);
    memcpy (f->peer_keys.k_recv, f->keys.k_send, SC_KEY_LEN);
    f->client = sc_channel_new (&f->keys);
    f->broker = sc_channel_new (&f->peer_keys);
    if (!f->client || !f->broker) {
        sc_channel_destroy (&f->client);
        sc_channel_destroy (&f->broker);
        free (f);
        return -1;
    }
    *state = f;
    return 0;
}

static int
teardown (void **state)
{
    fixture_t *f = *state;
    if (f) {
        sc_channel_destroy (&f->client);
        sc_channel_destroy (&f->broker);
        sc_wipe (f, sizeof *f);
        free (f);
    }
    return 0;
}

//  One sealed envelope as it travels: header fields and body.
typedef struct {
    uint8_t version, opcode;
    uint64_t seq;
    uint8_t body [256 + SC_TAG_LEN];
    size_t len;
} env_t;

static void
s_seal (sc_channel_t *ch, uint8_t opcode, const char *text, env_t *env)
{
    size_t len = strlen (text);
    assert_true (len <= 256);
    env->version = VERSION;
    env->opcode = opcode;
    env->seq = 0;
    assert_int_equal (sc_channel_seal (ch, VERSION, opcode,
                                       (const uint8_t *) text, len,
                                       &env->seq, env->body), SC_CHANNEL_OK);
    env->len = len + SC_TAG_LEN;
}

static int
s_open (sc_channel_t *ch, const env_t *env, uint8_t *out)
{
    return sc_channel_open (ch, env->version, env->opcode, env->seq,
                            env->body, env->len, out);
}

//  Opens env and checks it carries text.
static void
s_open_ok (sc_channel_t *ch, const env_t *env, const char *text)
{
    uint8_t out [256];
    assert_int_equal (s_open (ch, env, out), SC_CHANNEL_OK);
    assert_int_equal (env->len - SC_TAG_LEN, strlen (text));
    assert_memory_equal (out, text, strlen (text));
}

//  A rejected envelope must not release the plaintext: out keeps no copy
//  of it.
static void
s_assert_no_plaintext (const uint8_t *out, const char *text)
{
    size_t len = strlen (text);
    if (len)
        assert_memory_not_equal (out, text, len);
}


//  ---------------------------------------------------------------------
//  Round trip and counters

static void
test_round_trip_both_ways (void **state)
{
    fixture_t *f = *state;
    static const char *lines [] = { "hello", "", "three", "the fourth one" };
    assert_int_equal (sc_channel_sent (f->client), 0);
    assert_int_equal (sc_channel_received (f->broker), 0);
    for (size_t i = 0; i < 4; i++) {
        env_t env;
        s_seal (f->client, OP_MSG, lines [i], &env);
        //  seq starts at 1 and goes up by one
        assert_int_equal (env.seq, i + 1);
        assert_int_equal (sc_channel_sent (f->client), i + 1);
        s_open_ok (f->broker, &env, lines [i]);
        assert_int_equal (sc_channel_received (f->broker), i + 1);
    }
    //  The other direction has its own counter, starting at 1 again.
    for (size_t i = 0; i < 3; i++) {
        env_t env;
        s_seal (f->broker, OP_LIST, lines [i], &env);
        assert_int_equal (env.seq, i + 1);
        s_open_ok (f->client, &env, lines [i]);
        assert_int_equal (sc_channel_received (f->client), i + 1);
    }
    assert_int_equal (sc_channel_sent (f->client), 4);
    assert_int_equal (sc_channel_sent (f->broker), 3);
    assert_memory_equal (sc_channel_sid (f->client), f->keys.sid, SC_HASH_LEN);
    assert_memory_equal (sc_channel_sid (f->broker), f->keys.sid, SC_HASH_LEN);
}

//  The channel keeps its own copy of the keys: wiping the caller's copy
//  (as the header tells the caller to) changes nothing.
static void
test_keys_are_copied (void **state)
{
    (void) state;
    sc_session_keys_t keys, peer;
    assert_int_equal (sc_random ((uint8_t *) &keys, sizeof keys), 0);
    memcpy (peer.sid, keys.sid, SC_HASH_LEN);
    memcpy (peer.k_send, keys.k_recv, SC_KEY_LEN);
    memcpy (peer.k_recv, keys.k_send, SC_KEY_LEN);
    sc_channel_t *a = sc_channel_new (&keys);
    sc_channel_t *b = sc_channel_new (&peer);
    assert_non_null (a);
    assert_non_null (b);
    sc_wipe (&keys, sizeof keys);
    sc_wipe (&peer, sizeof peer);
    env_t env;
    s_seal (a, OP_MSG, "still works", &env);
    s_open_ok (b, &env, "still works");
    sc_channel_destroy (&a);
    sc_channel_destroy (&b);
    assert_null (a);
    assert_null (b);
}

//  Section 6, byte for byte: body = AEAD(k_dir, u32(0) || u64(seq),
//  sid || u8(version) || u8(opcode) || u64(seq), pt).
static void
s_spec_seal (const sc_session_keys_t *keys, const uint8_t key [SC_KEY_LEN],
             uint8_t version, uint8_t opcode, uint64_t seq,
             const uint8_t *pt, size_t len, uint8_t *out)
{
    uint8_t nonce [SC_NONCE_LEN] = { 0 };
    uint8_t ad [SC_HASH_LEN + 1 + 1 + 8];
    for (int i = 0; i < 8; i++)
        nonce [4 + i] = (uint8_t) (seq >> (56 - 8 * i));
    memcpy (ad, keys->sid, SC_HASH_LEN);
    ad [SC_HASH_LEN] = version;
    ad [SC_HASH_LEN + 1] = opcode;
    for (int i = 0; i < 8; i++)
        ad [SC_HASH_LEN + 2 + i] = (uint8_t) (seq >> (56 - 8 * i));
    assert_int_equal (sc_aead_seal (key, nonce, ad, sizeof ad, pt, len, out), 0);
}

static void
test_spec_byte_layout (void **state)
{
    fixture_t *f = *state;
    static const char text [] = "[\"alice\",5000]";
    size_t len = sizeof text - 1;
    uint8_t expected [sizeof text - 1 + SC_TAG_LEN];
    for (uint64_t i = 1; i <= 3; i++) {
        env_t env;
        s_seal (f->client, (uint8_t) (OP_MSG + i), text, &env);
        assert_int_equal (env.seq, i);
        s_spec_seal (&f->keys, f->keys.k_send, VERSION, (uint8_t) (OP_MSG + i),
                     i, (const uint8_t *) text, len, expected);
        assert_int_equal (env.len, sizeof expected);
        assert_memory_equal (env.body, expected, sizeof expected);
    }
    //  And the receiving side opens what a spec-following peer sealed.
    uint8_t body [sizeof text - 1 + SC_TAG_LEN], out [sizeof text];
    for (uint64_t i = 1; i <= 2; i++) {
        s_spec_seal (&f->keys, f->keys.k_send, VERSION, OP_LIST, i,
                     (const uint8_t *) text, len, body);
        assert_int_equal (sc_channel_open (f->broker, VERSION, OP_LIST, i,
                                           body, sizeof body, out), SC_CHANNEL_OK);
        assert_memory_equal (out, text, len);
        assert_int_equal (sc_channel_received (f->broker), i);
    }
}


//  ---------------------------------------------------------------------
//  Replay and order

static void
test_replay_rejected (void **state)
{
    fixture_t *f = *state;
    env_t one, two;
    s_seal (f->client, OP_MSG, "one", &one);
    s_seal (f->client, OP_MSG, "two", &two);
    s_open_ok (f->broker, &one, "one");

    //  The same (seq, body) again.
    uint8_t out [256];
    memset (out, 0, sizeof out);
    assert_int_equal (s_open (f->broker, &one, out), SC_CHANNEL_EREPLAY);
    s_assert_no_plaintext (out, "one");
    assert_int_equal (sc_channel_received (f->broker), 1);

    s_open_ok (f->broker, &two, "two");
    //  An older seq after a newer one.
    assert_int_equal (s_open (f->broker, &one, out), SC_CHANNEL_EREPLAY);
    assert_int_equal (s_open (f->broker, &two, out), SC_CHANNEL_EREPLAY);
    assert_int_equal (sc_channel_received (f->broker), 2);

    //  seq 0 is never a session envelope: not newer than "nothing yet".
    sc_channel_t *fresh = sc_channel_new (&f->peer_keys);
    assert_non_null (fresh);
    env_t zero = one;
    zero.seq = 0;
    assert_int_equal (s_open (fresh, &zero, out), SC_CHANNEL_EREPLAY);
    assert_int_equal (sc_channel_received (fresh), 0);
    sc_channel_destroy (&fresh);
}

//  seq must be exactly one more than the last accepted: a gap is a
//  dropped envelope, reported (EGAP: the caller ends the session) once
//  the envelope has authenticated; nothing of it is released and the
//  channel's state does not move.
static void
test_gap_ends (void **state)
{
    fixture_t *f = *state;
    env_t e1, e2, e3;
    s_seal (f->client, OP_MSG, "1", &e1);
    s_seal (f->client, OP_MSG, "2", &e2);
    s_seal (f->client, OP_MSG, "3", &e3);
    s_open_ok (f->broker, &e1, "1");
    //  Skip 2, deliver 3: authentic, but 2 is missing.
    uint8_t out [16];
    memset (out, 0, sizeof out);
    assert_int_equal (s_open (f->broker, &e3, out), SC_CHANNEL_EGAP);
    s_assert_no_plaintext (out, "3");
    assert_int_equal (sc_channel_received (f->broker), 1);
    //  A forged envelope with a gap is not a gap: it does not open.
    env_t forged = e3;
    forged.body [0] ^= 1;
    assert_int_equal (s_open (f->broker, &forged, out), SC_CHANNEL_EAUTH);
    //  The state did not move: 2 then 3 are still the next ones.
    s_open_ok (f->broker, &e2, "2");
    s_open_ok (f->broker, &e3, "3");
}

//  Authenticate first: an envelope that does not open changes nothing,
//  whatever its seq says (2^48, far ahead, the next one), and is told
//  apart from a limit or a gap only by the key.
static void
test_forged_seq_changes_nothing (void **state)
{
    fixture_t *f = *state;
    env_t e1;
    s_seal (f->client, OP_MSG, "1", &e1);
    s_open_ok (f->broker, &e1, "1");
    static const uint64_t seqs [] = { SEQ_LIMIT, SEQ_LIMIT + 1, UINT64_MAX, 2, 1000 };
    uint8_t body [40 + SC_TAG_LEN], out [40];
    for (size_t i = 0; i < sizeof seqs / sizeof seqs [0]; i++) {
        assert_int_equal (sc_random (body, sizeof body), 0);
        assert_int_equal (sc_channel_open (f->broker, VERSION, OP_MSG, seqs [i],
                                           body, sizeof body, out), SC_CHANNEL_EAUTH);
        assert_int_equal (sc_channel_received (f->broker), 1);
    }
    env_t e2;
    s_seal (f->client, OP_MSG, "2", &e2);
    s_open_ok (f->broker, &e2, "2");
}

//  ---------------------------------------------------------------------
//  Tampering: body, tag and every header field are authenticated

static void
test_tampered_body_and_tag (void **state)
{
    fixture_t *f = *state;
    static const char text [] = "a message whose every bit counts";
    env_t env;
    s_seal (f->client, OP_MSG, text, &env);
    uint8_t out [256];
    //  Every byte of ciphertext and tag, one bit each time (a different
    //  bit per byte), and the top and bottom bit of the first and last.
    for (size_t i = 0; i < env.len; i++) {
        for (int round = 0; round < 2; round++) {
            uint8_t bit = (uint8_t) (round == 0 ? 1u << (i % 8) : 1u << ((i + 7) % 8));
            env_t bad = env;
            bad.body [i] ^= bit;
            memset (out, 0, sizeof out);
            assert_int_equal (s_open (f->broker, &bad, out), SC_CHANNEL_EAUTH);
            s_assert_no_plaintext (out, text);
            assert_int_equal (sc_channel_received (f->broker), 0);
        }
    }
    //  Nothing changed: the genuine envelope still opens.
    s_open_ok (f->broker, &env, text);
}

static void
test_tampered_header (void **state)
{
    fixture_t *f = *state;
    env_t env;
    s_seal (f->client, OP_MSG, "header bound", &env);
    uint8_t out [64];

    env_t bad = env;
    bad.version = 2;
    assert_int_equal (s_open (f->broker, &bad, out), SC_CHANNEL_EAUTH);
    bad.version = 0;
    assert_int_equal (s_open (f->broker, &bad, out), SC_CHANNEL_EAUTH);

    for (unsigned op = 0; op < 40; op++) {
        if (op == OP_MSG)
            continue;
        bad = env;
        bad.opcode = (uint8_t) op;
        assert_int_equal (s_open (f->broker, &bad, out), SC_CHANNEL_EAUTH);
    }
    bad = env;
    bad.opcode = OP_MSG | 0x80;
    assert_int_equal (s_open (f->broker, &bad, out), SC_CHANNEL_EAUTH);

    //  A different (newer) seq: it is in the AD and in the nonce.
    static const uint64_t seqs [] = { 2, 3, 256, 257, ((uint64_t) 1) << 32 | 1, SEQ_LIMIT - 1 };
    for (size_t i = 0; i < sizeof seqs / sizeof seqs [0]; i++) {
        bad = env;
        bad.seq = seqs [i];
        assert_int_equal (s_open (f->broker, &bad, out), SC_CHANNEL_EAUTH);
        //  A rejected envelope changes nothing: the high seq was not
        //  taken as "last accepted".
        assert_int_equal (sc_channel_received (f->broker), 0);
    }
    s_open_ok (f->broker, &env, "header bound");
}

static void
test_truncated_tag (void **state)
{
    fixture_t *f = *state;
    static const char text [] = "truncate me";
    size_t pt_len = sizeof text - 1;
    env_t env;
    s_seal (f->client, OP_MSG, text, &env);
    uint8_t out [256];
    //  Ciphertext followed by 0..15 bytes of the tag.
    for (size_t keep = 0; keep < SC_TAG_LEN; keep++) {
        env_t bad = env;
        bad.len = pt_len + keep;
        memset (out, 0, sizeof out);
        assert_int_equal (s_open (f->broker, &bad, out), SC_CHANNEL_EAUTH);
        s_assert_no_plaintext (out, text);
    }
    //  Bodies shorter than a tag at all, and an empty one.
    for (size_t len = 0; len < SC_TAG_LEN; len++) {
        env_t bad = env;
        bad.len = len;
        assert_int_equal (s_open (f->broker, &bad, out), SC_CHANNEL_EAUTH);
    }
    //  A byte appended.
    env_t longer = env;
    longer.body [longer.len] = 0;
    longer.len++;
    assert_int_equal (s_open (f->broker, &longer, out), SC_CHANNEL_EAUTH);
    assert_int_equal (sc_channel_received (f->broker), 0);
    s_open_ok (f->broker, &env, text);
}

//  An envelope from another session with the same keys: only the sid
//  differs, and it is in the AD.
static void
test_other_session_rejected (void **state)
{
    fixture_t *f = *state;
    sc_session_keys_t other = f->peer_keys;
    other.sid [SC_HASH_LEN - 1] ^= 0x01;
    sc_channel_t *other_broker = sc_channel_new (&other);
    assert_non_null (other_broker);
    sc_session_keys_t other_c = f->keys;
    memcpy (other_c.sid, other.sid, SC_HASH_LEN);
    sc_channel_t *other_client = sc_channel_new (&other_c);
    assert_non_null (other_client);

    env_t env, env_other;
    uint8_t out [64];
    s_seal (f->client, OP_MSG, "for session one", &env);
    s_seal (other_client, OP_MSG, "for session two", &env_other);
    assert_int_equal (env.seq, env_other.seq);
    assert_int_equal (s_open (other_broker, &env, out), SC_CHANNEL_EAUTH);
    assert_int_equal (s_open (f->broker, &env_other, out), SC_CHANNEL_EAUTH);
    //  Each still opens in its own session.
    s_open_ok (f->broker, &env, "for session one");
    s_open_ok (other_broker, &env_other, "for session two");

    //  A sid differing in its first byte too.
    sc_session_keys_t third = f->peer_keys;
    third.sid [0] ^= 0x80;
    sc_channel_t *third_broker = sc_channel_new (&third);
    assert_non_null (third_broker);
    s_seal (f->client, OP_MSG, "again", &env);
    assert_int_equal (s_open (third_broker, &env, out), SC_CHANNEL_EAUTH);

    sc_channel_destroy (&other_broker);
    sc_channel_destroy (&other_client);
    sc_channel_destroy (&third_broker);
}

//  An envelope fed back to the side that sealed it.
static void
test_reflection_rejected (void **state)
{
    fixture_t *f = *state;
    env_t env;
    uint8_t out [64];
    s_seal (f->client, OP_MSG, "to the broker", &env);
    assert_int_equal (s_open (f->client, &env, out), SC_CHANNEL_EAUTH);
    assert_int_equal (sc_channel_received (f->client), 0);
    s_seal (f->broker, OP_MSG, "to the client", &env);
    assert_int_equal (s_open (f->broker, &env, out), SC_CHANNEL_EAUTH);
    assert_int_equal (sc_channel_received (f->broker), 0);
    //  Both envelopes were fine for their real receivers.
    s_open_ok (f->client, &env, "to the client");
}


//  ---------------------------------------------------------------------
//  Nonces

//  1000 seals: the seq (hence the nonce u32(0) || u64(seq)) goes up by
//  exactly one each time, so no (key, nonce) pair repeats; the same
//  plaintext never gives the same body; every one opens in order.
static void
test_nonce_uniqueness (void **state)
{
    fixture_t *f = *state;
    enum { N = 1000 };
    env_t *envs = calloc (N, sizeof *envs);
    assert_non_null (envs);
    uint64_t last = 0;
    for (size_t i = 0; i < N; i++) {
        s_seal (f->client, OP_MSG, "same text every time", &envs [i]);
        assert_true (envs [i].seq > last);
        assert_int_equal (envs [i].seq, last + 1);
        last = envs [i].seq;
    }
    assert_int_equal (sc_channel_sent (f->client), N);
    for (size_t i = 1; i < N; i++)
        assert_memory_not_equal (envs [i].body, envs [i - 1].body, envs [i].len);
    //  The other direction uses another key: its seq 1 body differs from
    //  this direction's seq 1 body for the same input.
    env_t back;
    s_seal (f->broker, OP_MSG, "same text every time", &back);
    assert_int_equal (back.seq, 1);
    assert_memory_not_equal (back.body, envs [0].body, back.len);
    for (size_t i = 0; i < N; i++)
        s_open_ok (f->broker, &envs [i], "same text every time");
    free (envs);
}


//  ---------------------------------------------------------------------
//  The counter limit

//  "A side whose counter reaches 2^48 ends the session": an authentic
//  envelope with a seq of 2^48 or more is refused as exhausted, and one
//  below it but not next as a gap; neither changes anything or releases
//  its plaintext.
static void
test_seq_limit (void **state)
{
    fixture_t *f = *state;
    static const char text [] = "x";
    uint8_t body [1 + SC_TAG_LEN], out [1];
    static const uint64_t too_big [] = { SEQ_LIMIT, SEQ_LIMIT + 1, UINT64_MAX };
    for (size_t i = 0; i < 3; i++) {
        s_spec_seal (&f->keys, f->keys.k_send, VERSION, OP_MSG, too_big [i],
                     (const uint8_t *) text, 1, body);
        out [0] = 0;
        assert_int_equal (sc_channel_open (f->broker, VERSION, OP_MSG, too_big [i],
                                           body, sizeof body, out), SC_CHANNEL_ELIMIT);
        assert_int_not_equal (out [0], 'x');
        assert_int_equal (sc_channel_received (f->broker), 0);
    }
    s_spec_seal (&f->keys, f->keys.k_send, VERSION, OP_MSG, SEQ_LIMIT - 1,
                 (const uint8_t *) text, 1, body);
    assert_int_equal (sc_channel_open (f->broker, VERSION, OP_MSG, SEQ_LIMIT - 1,
                                       body, sizeof body, out), SC_CHANNEL_EGAP);
    assert_int_equal (sc_channel_received (f->broker), 0);
    s_spec_seal (&f->keys, f->keys.k_send, VERSION, OP_MSG, 1,
                 (const uint8_t *) text, 1, body);
    assert_int_equal (sc_channel_open (f->broker, VERSION, OP_MSG, 1,
                                       body, sizeof body, out), SC_CHANNEL_OK);
    assert_int_equal (out [0], 'x');
    assert_int_equal (sc_channel_received (f->broker), 1);
}

//  A lowered limit: the sender stops before it, the receiver refuses it.
static void
test_lowered_limit (void **state)
{
    fixture_t *f = *state;
    sc_channel_set_limit (f->client, 3);
    sc_channel_set_limit (f->broker, 3);
    env_t env;
    uint8_t out [256];
    s_seal (f->client, OP_MSG, "one", &env);
    s_open_ok (f->broker, &env, "one");
    s_seal (f->client, OP_MSG, "two", &env);
    s_open_ok (f->broker, &env, "two");
    uint64_t seq = 0;
    assert_int_equal (sc_channel_seal (f->client, VERSION, OP_MSG, (const uint8_t *) "x", 1,
                                       &seq, env.body), SC_CHANNEL_ELIMIT);
    assert_int_equal (sc_channel_sent (f->client), 2);
    //  seq 3 made by hand (the spec's own AEAD) is refused all the same
    uint8_t body [1 + SC_TAG_LEN];
    s_spec_seal (&f->keys, f->keys.k_send, VERSION, OP_MSG, 3, (const uint8_t *) "x", 1, body);
    assert_int_equal (sc_channel_open (f->broker, VERSION, OP_MSG, 3, body, sizeof body, out),
                      SC_CHANNEL_ELIMIT);
    //  a limit above the protocol's is capped to it
    sc_channel_set_limit (f->broker, UINT64_MAX);
    s_spec_seal (&f->keys, f->keys.k_send, VERSION, OP_MSG, SEQ_LIMIT, (const uint8_t *) "x", 1, body);
    assert_int_equal (sc_channel_open (f->broker, VERSION, OP_MSG, SEQ_LIMIT, body, sizeof body, out),
                      SC_CHANNEL_ELIMIT);
}

int
main (void)
{
    const struct CMUnitTest tests [] = {
        cmocka_unit_test_setup_teardown (test_round_trip_both_ways, setup, teardown),
        cmocka_unit_test_setup_teardown (test_keys_are_copied, setup, teardown),
        cmocka_unit_test_setup_teardown (test_spec_byte_layout, setup, teardown),
        cmocka_unit_test_setup_teardown (test_replay_rejected, setup, teardown),
        cmocka_unit_test_setup_teardown (test_gap_ends, setup, teardown),
        cmocka_unit_test_setup_teardown (test_forged_seq_changes_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown (test_tampered_body_and_tag, setup, teardown),
        cmocka_unit_test_setup_teardown (test_tampered_header, setup, teardown),
        cmocka_unit_test_setup_teardown (test_truncated_tag, setup, teardown),
        cmocka_unit_test_setup_teardown (test_other_session_rejected, setup, teardown),
        cmocka_unit_test_setup_teardown (test_reflection_rejected, setup, teardown),
        cmocka_unit_test_setup_teardown (test_nonce_uniqueness, setup, teardown),
        cmocka_unit_test_setup_teardown (test_seq_limit, setup, teardown),
        cmocka_unit_test_setup_teardown (test_lowered_limit, setup, teardown),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
