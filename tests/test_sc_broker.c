/*  Tests of the broker's protocol core (sc_broker), driven without sockets:
    fake clients made of the real handshake, channel and codec talk to it
    through a send callback that collects what the broker sends.

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at https://mozilla.org/MPL/2.0/.
*/
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <czmq.h>
#include <string.h>

#include "sc_broker.h"
#include "sc_handshake.h"
#include "sc_log.h"
#include "sc_testbroker.h"
#include "sc_wire.h"

/* ---- What the broker sent ------------------------------------------------- */

typedef struct {
    uint8_t rid[8];
    size_t rid_len;
    uint8_t *frame;
    size_t len;
} sent_t;

static zlistx_t *s_outbox;      /* sent_t, in order */
static const uint8_t *s_fail_rid;   /* sends to this client fail...  */
static int s_fail_code;             /* ...with this result            */

static int
s_capture (void *arg, const uint8_t *rid, size_t rid_len, uint8_t *frame, size_t len)
{
    (void) arg;
    if (s_fail_rid && rid_len == 5 && memcmp (rid, s_fail_rid, 5) == 0) {
        free (frame);
        return s_fail_code;
    }
    sent_t *sent = calloc (1, sizeof *sent);
    assert_non_null (sent);
    assert_true (rid_len <= sizeof sent->rid);
    memcpy (sent->rid, rid, rid_len);
    sent->rid_len = rid_len;
    sent->frame = frame;
    sent->len = len;
    assert_non_null (zlistx_add_end (s_outbox, sent));
    return 0;
}

static void
s_sent_free (sent_t **sent)
{
    free ((*sent)->frame);
    free (*sent);
    *sent = NULL;
}

/* The next frame sent to rid, or NULL. */
static sent_t *
s_pop (const uint8_t *rid, size_t rid_len)
{
    for (sent_t *sent = zlistx_first (s_outbox); sent; sent = zlistx_next (s_outbox))
        if (sent->rid_len == rid_len && memcmp (sent->rid, rid, rid_len) == 0) {
            zlistx_detach_cur (s_outbox);
            return sent;
        }
    return NULL;
}

/* sc_broker_forward_fn: the frame being handled (s_frame) goes to rid as
   it is; recorded like any other send, or failed like s_capture. */
static uint8_t *s_frame;
static size_t s_frame_len;
static size_t s_forwarded;

static int
s_forward (void *arg, const uint8_t *rid, size_t rid_len)
{
    assert_non_null (s_frame);
    uint8_t *copy = malloc (s_frame_len);
    assert_non_null (copy);
    memcpy (copy, s_frame, s_frame_len);
    int rc = s_capture (arg, rid, rid_len, copy, s_frame_len);
    if (rc == 0)
        s_forwarded++;
    return rc;
}

/* ---- Fake clients ------------------------------------------------------------ */

typedef struct {
    char name[33];
    uint8_t rid[5];
    sc_key_t *key;
    sc_channel_t *ch;
} client_t;

static struct {
    sc_testbroker_keys_t k;
    sc_broker_t *broker;
    int64_t now;
    uint8_t next_rid;
} T;

static client_t *
s_client_new (const char *name)
{
    client_t *c = calloc (1, sizeof *c);
    assert_non_null (c);
    strcpy (c->name, name);
    c->rid[0] = 0;
    c->rid[4] = ++T.next_rid;
    c->key = sc_testkeys_user_key (T.k.keys, name);
    assert_non_null (c->key);
    return c;
}

static void
s_client_destroy (client_t **c)
{
    sc_key_destroy (&(*c)->key);
    sc_channel_destroy (&(*c)->ch);
    free (*c);
    *c = NULL;
}

static void
s_deliver (client_t *c, const uint8_t *frame, size_t len)
{
    sc_broker_handle (T.broker, c->rid, sizeof c->rid, frame, len, T.now);
}

static void
s_send_plain (client_t *c, const sc_msg_t *msg)
{
    uint8_t *frame;
    size_t len;
    assert_int_equal (sc_wire_plain (msg, &frame, &len), 0);
    s_deliver (c, frame, len);
    free (frame);
}

static void
s_send (client_t *c, const sc_msg_t *msg)
{
    uint8_t *frame;
    size_t len;
    assert_int_equal (sc_wire_seal (c->ch, msg, &frame, &len), 0);
    s_deliver (c, frame, len);
    free (frame);
}

/* Receive the next plaintext frame for c into msg. */
static void
s_recv_plain (client_t *c, sc_msg_t *msg)
{
    sent_t *sent = s_pop (c->rid, sizeof c->rid);
    assert_non_null (sent);
    assert_int_equal (sc_wire_open_plain (sent->frame, sent->len, msg), 0);
    s_sent_free (&sent);
}

/* Receive the next sealed frame for c, expecting opcode. */
static void
s_recv (client_t *c, sc_msg_t *msg, uint8_t opcode)
{
    sent_t *sent = s_pop (c->rid, sizeof c->rid);
    assert_non_null (sent);
    assert_int_equal (sc_wire_open (c->ch, sent->frame, sent->len, msg), 0);
    s_sent_free (&sent);
    if (msg->opcode != opcode)
        fail_msg ("%s expected %s, got %s", c->name, sc_opcode_name (opcode),
                  sc_opcode_name (msg->opcode));
}

static void
s_expect_nothing (client_t *c)
{
    sent_t *sent = s_pop (c->rid, sizeof c->rid);
    if (sent) {
        uint8_t opcode = 0;
        uint64_t seq = 0;
        if (sc_wire_peek (sent->frame, sent->len, &opcode, &seq))
            opcode = 255;
        s_sent_free (&sent);
        fail_msg ("%s got unexpected %s", c->name, sc_opcode_name (opcode));
    }
}

/* Run the handshake up to the broker's answer to AUTH_CLIENT; returns the
   opcode of that answer (WELCOME sealed, or a plaintext ERROR). */
static int
s_login_as (client_t *c, const char *claimed_name, uint32_t *error_code)
{
    sc_handshake_t *hs = sc_handshake_new_client (c->key, claimed_name, T.k.ca, "secbroker");
    assert_non_null (hs);
    uint8_t *frame;
    size_t len;
    sc_testbroker_hello (hs, &frame, &len);
    s_deliver (c, frame, len);
    free (frame);

    sent_t *sent = s_pop (c->rid, sizeof c->rid);
    assert_non_null (sent);
    sc_testbroker_auth (hs, sent->frame, sent->len, &frame, &len, &c->ch);
    s_sent_free (&sent);
    sc_handshake_destroy (&hs);
    s_deliver (c, frame, len);
    free (frame);

    sent = s_pop (c->rid, sizeof c->rid);
    assert_non_null (sent);
    uint8_t opcode = 0;
    uint64_t seq = 0;
    sc_msg_t msg;
    assert_int_equal (sc_wire_peek (sent->frame, sent->len, &opcode, &seq), 0);
    if (opcode == SC_OP_ERROR) {
        assert_int_equal (seq, 0);      /* handshake errors are plaintext */
        assert_int_equal (sc_wire_open_plain (sent->frame, sent->len, &msg), 0);
        *error_code = msg.code;
    }
    else {
        assert_int_equal (sc_wire_open (c->ch, sent->frame, sent->len, &msg), 0);
        assert_int_equal (msg.opcode, SC_OP_WELCOME);
        assert_string_equal (msg.name, claimed_name);
        assert_int_equal (msg.code, 5000);
    }
    sc_msg_reset (&msg);
    s_sent_free (&sent);
    return opcode;
}

static client_t *
s_login (const char *name)
{
    client_t *c = s_client_new (name);
    uint32_t code = 0;
    assert_int_equal (s_login_as (c, name, &code), SC_OP_WELCOME);
    return c;
}

static void
s_send_named (client_t *c, uint8_t opcode, const char *name, uint32_t code)
{
    sc_msg_t msg;
    sc_msg_init (&msg, opcode);
    msg.code = code;
    if (name)
        assert_int_equal (sc_msg_set_name (&msg, name), 0);
    s_send (c, &msg);
    sc_msg_reset (&msg);
}

/* A MESSAGE from c: this counter and E2E box. */
static void
s_send_message (client_t *c, uint64_t counter, const uint8_t *box, size_t len)
{
    sc_msg_t msg;
    sc_msg_init (&msg, SC_OP_MESSAGE);
    msg.counter = counter;
    assert_int_equal (sc_msg_set_data (&msg, box, len), 0);
    s_send (c, &msg);
    sc_msg_reset (&msg);
}

static void
s_expect_named (client_t *c, uint8_t opcode, const char *name)
{
    sc_msg_t msg;
    s_recv (c, &msg, opcode);
    assert_string_equal (msg.name, name);
    sc_msg_reset (&msg);
}

static void
s_expect_error (client_t *c, uint32_t code)
{
    sc_msg_t msg;
    s_recv (c, &msg, SC_OP_ERROR);
    assert_int_equal (msg.code, code);
    sc_msg_reset (&msg);
}

/* The next message to c is NOTIFY with this code (and name, unless NULL). */
static void
s_expect_notify (client_t *c, const char *name, uint32_t code)
{
    sc_msg_t msg;
    s_recv (c, &msg, SC_OP_NOTIFY);
    if (name)
        assert_string_equal (msg.name, name);
    assert_int_equal (msg.code, code);
    sc_msg_reset (&msg);
}

/* alice asks bob, bob accepts: both get CHAT with the other's key. */
static void
s_open_chat (client_t *a, client_t *b)
{
    s_send_named (a, SC_OP_RTT, b->name, 0);
    s_expect_named (b, SC_OP_RTT, a->name);
    s_send_named (b, SC_OP_ACCEPT, a->name, 0);
    sc_msg_t msg;
    uint8_t pub[SC_PUB_LEN];
    s_recv (a, &msg, SC_OP_CHAT);
    assert_string_equal (msg.name, b->name);
    assert_true (msg.flag);
    assert_int_equal (sc_key_public_raw (b->key, pub), 0);
    assert_memory_equal (msg.key, pub, SC_PUB_LEN);
    sc_msg_reset (&msg);
    s_recv (b, &msg, SC_OP_CHAT);
    assert_string_equal (msg.name, a->name);
    assert_false (msg.flag);
    assert_int_equal (sc_key_public_raw (a->key, pub), 0);
    assert_memory_equal (msg.key, pub, SC_PUB_LEN);
    sc_msg_reset (&msg);
}

/* ---- Fixture ------------------------------------------------------------------ */

static int
s_group_setup (void **state)
{
    (void) state;
    zsys_init ();
    zsys_set_logstream (stderr);
    sc_log_set_level ("error");
    return sc_testbroker_keys_load (&T.k, sc_testkeys_new (NULL, "alice", "bob", "carol",
                                                           "dave", NULL));
}

static int
s_group_teardown (void **state)
{
    (void) state;
    sc_testbroker_keys_free (&T.k);
    return 0;
}

static int
s_setup (void **state)
{
    (void) state;
    s_outbox = zlistx_new ();
    s_fail_rid = NULL;
    T.now = 1000000;
    T.broker = sc_broker_new (T.k.broker_key, T.k.cert, T.k.cert_len, T.k.registry, NULL,
                              s_capture, NULL);
    return T.broker && s_outbox ? 0 : -1;
}

static int
s_teardown (void **state)
{
    (void) state;
    sc_broker_destroy (&T.broker);
    sent_t *sent;
    while ((sent = zlistx_detach (s_outbox, NULL)))
        s_sent_free (&sent);
    zlistx_destroy (&s_outbox);
    return 0;
}

/* ---- Tests ----------------------------------------------------------------------- */

static void
test_login (void **state)
{
    (void) state;
    client_t *alice = s_login ("alice");
    assert_int_equal (sc_broker_sessions (T.broker), 1);
    assert_int_equal (sc_broker_handshakes (T.broker), 0);
    s_expect_nothing (alice);
    s_client_destroy (&alice);
}

static void
test_login_unknown_user (void **state)
{
    (void) state;
    /* eve has a key, but the registry does not know her */
    client_t *eve = s_client_new ("alice");
    strcpy (eve->name, "eve");
    uint32_t code = 0;
    assert_int_equal (s_login_as (eve, "eve", &code), SC_OP_ERROR);
    assert_int_equal (code, SC_ERR_UNKNOWN_USER);
    assert_int_equal (sc_broker_sessions (T.broker), 0);
    assert_int_equal (sc_broker_handshakes (T.broker), 0);
    s_client_destroy (&eve);
}

static void
test_login_wrong_key (void **state)
{
    (void) state;
    /* alice's key, claiming to be bob: bob's registered key refuses it */
    client_t *c = s_client_new ("alice");
    uint32_t code = 0;
    assert_int_equal (s_login_as (c, "bob", &code), SC_OP_ERROR);
    assert_int_equal (code, SC_ERR_AUTH);
    assert_int_equal (sc_broker_sessions (T.broker), 0);
    s_client_destroy (&c);
}

static void
test_first_message_must_be_hello (void **state)
{
    (void) state;
    client_t *c = s_client_new ("alice");
    sc_msg_t msg;
    sc_msg_init (&msg, SC_OP_LIST);
    s_send_plain (c, &msg);
    s_recv_plain (c, &msg);
    assert_int_equal (msg.opcode, SC_OP_ERROR);
    assert_int_equal (msg.code, SC_ERR_STATE);
    sc_msg_reset (&msg);

    const uint8_t garbage[] = { 0xc1, 0x00, 0xff };
    s_deliver (c, garbage, sizeof garbage);
    s_recv_plain (c, &msg);
    assert_int_equal (msg.code, SC_ERR_MALFORMED);
    sc_msg_reset (&msg);

    /* version 2 envelope */
    const uint8_t v2[] = { 0x94, 0x02, 0x20, 0x00, 0xc4, 0x00 };
    s_deliver (c, v2, sizeof v2);
    s_recv_plain (c, &msg);
    assert_int_equal (msg.code, SC_ERR_VERSION);
    sc_msg_reset (&msg);
    assert_int_equal (sc_broker_handshakes (T.broker), 0);
    s_client_destroy (&c);
}

static void
test_list (void **state)
{
    (void) state;
    client_t *alice = s_login ("alice");
    sc_msg_t msg;
    sc_msg_init (&msg, SC_OP_LIST);
    s_send (alice, &msg);
    s_recv (alice, &msg, SC_OP_USERS);
    assert_int_equal (msg.names_count, 0);
    sc_msg_reset (&msg);

    client_t *carol = s_login ("carol");
    client_t *bob = s_login ("bob");
    sc_msg_init (&msg, SC_OP_LIST);
    s_send (alice, &msg);
    s_recv (alice, &msg, SC_OP_USERS);
    assert_int_equal (msg.names_count, 2);
    assert_string_equal (msg.names[0], "bob");
    assert_string_equal (msg.names[1], "carol");
    assert_false (msg.flag);
    sc_msg_reset (&msg);
    s_client_destroy (&alice);
    s_client_destroy (&bob);
    s_client_destroy (&carol);
}

/* c's MESSAGE handed over as a ZeroMQ frame would be: in a buffer the
   core may rewrite and forward. Returns what sc_broker_handle_frame does;
   the buffer (what is left in it) in *frame, *len, the caller frees it. */
static int
s_send_message_frame (client_t *c, uint64_t counter, const uint8_t *box, size_t box_len,
                      uint8_t **frame, size_t *len)
{
    sc_msg_t msg;
    sc_msg_init (&msg, SC_OP_MESSAGE);
    msg.counter = counter;
    assert_int_equal (sc_msg_set_data (&msg, box, box_len), 0);
    assert_int_equal (sc_wire_seal (c->ch, &msg, frame, len), 0);
    sc_msg_reset (&msg);
    s_frame = *frame;
    s_frame_len = *len;
    int rc = sc_broker_handle_frame (T.broker, c->rid, sizeof c->rid, *frame, *len, T.now);
    s_frame = NULL;
    return rc;
}

static bool
s_contains (const uint8_t *hay, size_t hay_len, const uint8_t *needle, size_t len)
{
    for (size_t i = 0; i + len <= hay_len; i++)
        if (memcmp (hay + i, needle, len) == 0)
            return true;
    return false;
}

/* bob gets a MESSAGE with this counter and box. */
static void
s_expect_message (client_t *c, uint64_t counter, const uint8_t *box, size_t len)
{
    sc_msg_t msg;
    s_recv (c, &msg, SC_OP_MESSAGE);
    assert_int_equal (msg.counter, counter);
    assert_int_equal (msg.data_len, len);
    assert_memory_equal (msg.data, box, len);
    sc_msg_reset (&msg);
}

/* The relay without copies: the sender's frame re-sealed in place for
   the peer and forwarded as it is; when the peer's header has another
   length (seqs of different msgpack widths), a new frame, and no
   plaintext left in the old one; a forward that fails is told. */
static void
test_relay_in_place (void **state)
{
    (void) state;
    sc_broker_set_forward (T.broker, s_forward);
    s_forwarded = 0;
    client_t *alice = s_login ("alice");
    client_t *bob = s_login ("bob");
    s_open_chat (alice, bob);
    uint8_t box[300];
    for (size_t i = 0; i < sizeof box; i++)
        box[i] = (uint8_t) (i * 7 + 1);

    /* both seqs fit one byte: forwarded in place, and bob opens it */
    uint8_t *frame = NULL;
    size_t len = 0;
    assert_int_equal (s_send_message_frame (alice, 1, box, sizeof box, &frame, &len), 1);
    assert_int_equal (s_forwarded, 1);
    sent_t *sent = zlistx_last (s_outbox);
    assert_non_null (sent);
    assert_int_equal (sent->len, len);
    assert_memory_equal (sent->frame, frame, len);  /* the very bytes */
    free (frame);
    s_expect_message (bob, 1, box, sizeof box);
    s_expect_nothing (alice);

    /* and back the other way */
    assert_int_equal (s_send_message_frame (bob, 2, box, 100, &frame, &len), 1);
    free (frame);
    s_expect_message (alice, 2, box, 100);
    assert_int_equal (s_forwarded, 2);

    /* alice's seq past 127 (two bytes in msgpack), bob's still one byte:
       the header does not fit, a new frame goes, and the plaintext in
       alice's frame is wiped */
    sc_msg_t ping;
    sc_msg_init (&ping, SC_OP_PING);
    while (sc_channel_sent (alice->ch) < 130) {
        s_send (alice, &ping);
        sc_msg_t pong;
        s_recv (alice, &pong, SC_OP_PONG);
        sc_msg_reset (&pong);
    }
    sc_msg_reset (&ping);
    assert_int_equal (s_send_message_frame (alice, 3, box, sizeof box, &frame, &len), 0);
    assert_int_equal (s_forwarded, 2);
    assert_false (s_contains (frame, len, box, 32));
    free (frame);
    s_expect_message (bob, 3, box, sizeof box);

    /* bob's seq past 127 too: his frames fit alice's header again */
    while (sc_channel_sent (bob->ch) < 130) {
        sc_msg_t p, pong;
        sc_msg_init (&p, SC_OP_PING);
        s_send (bob, &p);
        sc_msg_reset (&p);
        s_recv (bob, &pong, SC_OP_PONG);
        sc_msg_reset (&pong);
    }
    assert_int_equal (s_send_message_frame (bob, 4, box, 50, &frame, &len), 1);
    free (frame);
    s_expect_message (alice, 4, box, 50);
    assert_int_equal (s_forwarded, 3);

    /* a forward that fails: bob is told, nothing reaches alice */
    s_fail_rid = alice->rid;
    s_fail_code = SC_BROKER_FULL;
    size_t before = zlistx_size (s_outbox);
    assert_int_equal (s_send_message_frame (bob, 5, box, 50, &frame, &len), 0);
    free (frame);
    s_fail_rid = NULL;
    assert_int_equal (zlistx_size (s_outbox), before + 1);
    s_expect_error (bob, SC_ERR_UNDELIVERED);
    s_expect_nothing (alice);
    s_client_destroy (&alice);
    s_client_destroy (&bob);
}

static void
test_request_accept_relay_leave (void **state)
{
    (void) state;
    client_t *alice = s_login ("alice");
    client_t *bob = s_login ("bob");
    s_open_chat (alice, bob);

    /* an E2E box is relayed unchanged (the broker cannot read it) */
    uint8_t box[40];
    memset (box, 0xab, sizeof box);
    s_send_message (alice, 7, box, sizeof box);
    sc_msg_t msg;
    s_recv (bob, &msg, SC_OP_MESSAGE);
    assert_int_equal (msg.counter, 7);
    assert_int_equal (msg.data_len, sizeof box);
    assert_memory_equal (msg.data, box, sizeof box);
    sc_msg_reset (&msg);
    s_expect_nothing (alice);

    s_send_named (bob, SC_OP_LEAVE, NULL, 0);
    s_expect_notify (alice, "bob", SC_NOTIFY_LEFT);

    /* no chat any more: relay refused */
    s_send_message (alice, 8, box, sizeof box);
    s_expect_error (alice, SC_ERR_NO_CHAT);
    s_expect_nothing (bob);

    /* both free again */
    s_open_chat (bob, alice);
    s_client_destroy (&alice);
    s_client_destroy (&bob);
}

static void
test_refuse_busy_self_notfound (void **state)
{
    (void) state;
    client_t *alice = s_login ("alice");
    client_t *bob = s_login ("bob");
    client_t *carol = s_login ("carol");

    s_send_named (alice, SC_OP_RTT, "alice", 0);
    s_expect_error (alice, SC_ERR_SELF);
    s_send_named (alice, SC_OP_RTT, "nobody", 0);
    s_expect_named (alice, SC_OP_USER_NOT_FOUND, "nobody");
    s_send_named (alice, SC_OP_RTT, "dave", 0);      /* registered, offline */
    s_expect_named (alice, SC_OP_USER_NOT_FOUND, "dave");

    s_send_named (alice, SC_OP_RTT, "bob", 0);
    s_expect_named (bob, SC_OP_RTT, "alice");
    /* bob has a request pending: carol is told he is busy, bob sees nothing */
    s_send_named (carol, SC_OP_RTT, "bob", 0);
    sc_msg_t msg;
    s_recv (carol, &msg, SC_OP_REFUSE);
    assert_string_equal (msg.name, "bob");
    assert_int_equal (msg.code, SC_REFUSE_BUSY);
    sc_msg_reset (&msg);
    s_expect_nothing (bob);
    /* so is alice, who asked */
    s_send_named (carol, SC_OP_RTT, "alice", 0);
    s_recv (carol, &msg, SC_OP_REFUSE);
    assert_int_equal (msg.code, SC_REFUSE_BUSY);
    sc_msg_reset (&msg);
    /* a second request while one is pending */
    s_send_named (alice, SC_OP_RTT, "carol", 0);
    s_expect_error (alice, SC_ERR_STATE);
    /* accepting a request that was never made */
    s_send_named (carol, SC_OP_ACCEPT, "alice", 0);
    s_expect_error (carol, SC_ERR_STATE);
    /* bob refuses the wrong name, then alice */
    s_send_named (bob, SC_OP_REFUSE, "carol", 0);
    s_expect_error (bob, SC_ERR_STATE);
    s_send_named (bob, SC_OP_REFUSE, "alice", 0);
    s_recv (alice, &msg, SC_OP_REFUSE);
    assert_string_equal (msg.name, "bob");
    assert_int_equal (msg.code, SC_REFUSE_DECLINED);
    sc_msg_reset (&msg);
    /* everyone idle again */
    s_open_chat (carol, bob);
    s_client_destroy (&alice);
    s_client_destroy (&bob);
    s_client_destroy (&carol);
}

static void
test_withdraw_and_quit (void **state)
{
    (void) state;
    client_t *alice = s_login ("alice");
    client_t *bob = s_login ("bob");
    s_send_named (alice, SC_OP_RTT, "bob", 0);
    s_expect_named (bob, SC_OP_RTT, "alice");
    s_send_named (alice, SC_OP_LEAVE, NULL, 0);
    s_expect_notify (bob, NULL, SC_NOTIFY_CANCELLED);
    /* leaving with nothing to leave */
    s_send_named (alice, SC_OP_LEAVE, NULL, 0);
    s_expect_error (alice, SC_ERR_STATE);

    s_open_chat (alice, bob);
    s_send_named (alice, SC_OP_QUIT, NULL, 0);
    s_expect_notify (bob, "alice", SC_NOTIFY_QUIT);
    assert_int_equal (sc_broker_sessions (T.broker), 1);
    s_client_destroy (&alice);
    s_client_destroy (&bob);
}

static void
test_heartbeat_timeout (void **state)
{
    (void) state;
    client_t *alice = s_login ("alice");
    client_t *bob = s_login ("bob");
    s_open_chat (alice, bob);
    /* bob pings, alice is silent */
    for (int i = 0; i < 4; i++) {
        T.now += 4000;
        s_send_named (bob, SC_OP_PING, NULL, 0);
        sc_msg_t pong;
        s_recv (bob, &pong, SC_OP_PONG);
        sc_msg_reset (&pong);
        sc_broker_tick (T.broker, T.now);
    }
    s_expect_notify (bob, "alice", SC_NOTIFY_LOST);
    assert_int_equal (sc_broker_sessions (T.broker), 1);
    s_client_destroy (&alice);
    s_client_destroy (&bob);
}

static void
test_handshake_timeout (void **state)
{
    (void) state;
    client_t *c = s_client_new ("alice");
    sc_handshake_t *hs = sc_handshake_new_client (c->key, "alice", T.k.ca, "secbroker");
    sc_msg_t msg;
    sc_msg_init (&msg, SC_OP_HELLO);
    assert_int_equal (sc_handshake_client_hello (hs, &msg.suite, msg.nonce, msg.eph), 0);
    s_send_plain (c, &msg);
    sc_msg_reset (&msg);
    s_recv_plain (c, &msg);
    sc_msg_reset (&msg);
    assert_int_equal (sc_broker_handshakes (T.broker), 1);
    T.now += 10001;
    sc_broker_tick (T.broker, T.now);
    s_recv_plain (c, &msg);
    assert_int_equal (msg.opcode, SC_OP_ERROR);
    assert_int_equal (msg.code, SC_ERR_TIMEOUT);
    sc_msg_reset (&msg);
    assert_int_equal (sc_broker_handshakes (T.broker), 0);
    sc_handshake_destroy (&hs);
    s_client_destroy (&c);
}

/* At most max_handshakes logins in progress: a HELLO past the cap gets a
   plaintext ERROR INTERNAL (a client retries it) and is held nowhere;
   once the logins in progress are gone, a login goes through again. */
static void
test_handshake_cap (void **state)
{
    (void) state;
    sc_broker_destroy (&T.broker);
    sc_broker_opts_t opts;
    sc_broker_opts_default (&opts);
    opts.max_handshakes = 2;
    T.broker = sc_broker_new (T.k.broker_key, T.k.cert, T.k.cert_len, T.k.registry, &opts,
                              s_capture, NULL);
    assert_non_null (T.broker);
    client_t *c[3];
    sc_handshake_t *hs[3];
    for (int i = 0; i < 3; i++) {
        c[i] = s_client_new ("alice");
        hs[i] = sc_handshake_new_client (c[i]->key, "alice", T.k.ca, "secbroker");
        assert_non_null (hs[i]);
        uint8_t *frame;
        size_t len;
        sc_testbroker_hello (hs[i], &frame, &len);
        s_deliver (c[i], frame, len);
        free (frame);
        sc_msg_t msg;
        s_recv_plain (c[i], &msg);
        if (i < 2)
            assert_int_equal (msg.opcode, SC_OP_AUTH_BROKER);
        else {
            assert_int_equal (msg.opcode, SC_OP_ERROR);
            assert_int_equal (msg.code, SC_ERR_INTERNAL);
        }
        sc_msg_reset (&msg);
        s_expect_nothing (c[i]);
        assert_int_equal (sc_broker_handshakes (T.broker), i < 2 ? i + 1 : 2);
    }
    /* The two time out (the third was not there to); then a whole login
       is taken. */
    T.now += 10001;
    sc_broker_tick (T.broker, T.now);
    assert_int_equal (sc_broker_handshakes (T.broker), 0);
    for (int i = 0; i < 3; i++) {
        if (i < 2) {
            sc_msg_t msg;
            s_recv_plain (c[i], &msg);
            assert_int_equal (msg.opcode, SC_OP_ERROR);
            assert_int_equal (msg.code, SC_ERR_TIMEOUT);
            sc_msg_reset (&msg);
        }
        s_expect_nothing (c[i]);
        sc_handshake_destroy (&hs[i]);
        s_client_destroy (&c[i]);
    }
    client_t *bob = s_login ("bob");
    s_client_destroy (&bob);
}

static void
test_second_login_replaces (void **state)
{
    (void) state;
    client_t *alice1 = s_login ("alice");
    client_t *bob = s_login ("bob");
    s_open_chat (alice1, bob);
    client_t *alice2 = s_login ("alice");
    s_expect_error (alice1, SC_ERR_REPLACED);
    s_expect_notify (bob, NULL, SC_NOTIFY_REPLACED);
    assert_int_equal (sc_broker_sessions (T.broker), 2);
    /* the new session works, the old one is gone */
    s_open_chat (bob, alice2);
    s_send_named (alice1, SC_OP_PING, NULL, 0);
    sc_msg_t err;
    s_recv_plain (alice1, &err);
    assert_int_equal (err.code, SC_ERR_STATE);
    sc_msg_reset (&err);
    s_client_destroy (&alice1);
    s_client_destroy (&alice2);
    s_client_destroy (&bob);
}

static void
test_replay_and_tamper (void **state)
{
    (void) state;
    client_t *alice = s_login ("alice");
    sc_msg_t msg;
    sc_msg_init (&msg, SC_OP_PING);
    uint8_t *frame;
    size_t len;
    assert_int_equal (sc_wire_seal (alice->ch, &msg, &frame, &len), 0);
    s_deliver (alice, frame, len);
    s_recv (alice, &msg, SC_OP_PONG);
    sc_msg_reset (&msg);
    /* the same envelope again: refused */
    s_deliver (alice, frame, len);
    s_expect_error (alice, SC_ERR_AUTH);
    free (frame);
    /* a flipped bit in the ciphertext */
    sc_msg_init (&msg, SC_OP_PING);
    assert_int_equal (sc_wire_seal (alice->ch, &msg, &frame, &len), 0);
    frame[len - 1] ^= 1;
    s_deliver (alice, frame, len);
    s_expect_error (alice, SC_ERR_AUTH);
    free (frame);
    /* a malformed body, properly sealed */
    const uint8_t bad_body[] = { 0x91, 0xc0 };      /* [nil] as RTT */
    assert_int_equal (sc_wire_seal_raw (alice->ch, SC_OP_RTT, bad_body, sizeof bad_body,
                                        &frame, &len), 0);
    s_deliver (alice, frame, len);
    s_expect_error (alice, SC_ERR_MALFORMED);
    free (frame);
    /* a broker-to-client opcode from a client */
    s_send_named (alice, SC_OP_USER_NOT_FOUND, "bob", 0);
    s_expect_error (alice, SC_ERR_STATE);
    /* still fine */
    s_send_named (alice, SC_OP_PING, NULL, 0);
    s_recv (alice, &msg, SC_OP_PONG);
    sc_msg_reset (&msg);
    s_client_destroy (&alice);
}

static void
test_rate_limit (void **state)
{
    (void) state;
    client_t *alice = s_login ("alice");
    int limited = 0;
    for (int i = 0; i < 40; i++) {
        s_send_named (alice, SC_OP_LIST, NULL, 0);
        sc_msg_t msg;
        sent_t *sent = s_pop (alice->rid, sizeof alice->rid);
        assert_non_null (sent);
        assert_int_equal (sc_wire_open (alice->ch, sent->frame, sent->len, &msg), 0);
        if (msg.opcode == SC_OP_ERROR) {
            assert_int_equal (msg.code, SC_ERR_RATE);
            limited++;
        }
        sc_msg_reset (&msg);
        s_sent_free (&sent);
    }
    assert_int_equal (limited, 20);     /* burst of 20, no time passed */
    T.now += 1000;                      /* 10 more tokens */
    s_send_named (alice, SC_OP_LIST, NULL, 0);
    sc_msg_t msg;
    s_recv (alice, &msg, SC_OP_USERS);
    sc_msg_reset (&msg);
    s_client_destroy (&alice);
}

static void
test_peer_queue_full (void **state)
{
    (void) state;
    client_t *alice = s_login ("alice");
    client_t *bob = s_login ("bob");
    s_open_chat (alice, bob);
    uint8_t box[20] = { 0 };
    /* bob reads too slowly: alice is told, bob keeps his session */
    s_fail_rid = bob->rid;
    s_fail_code = SC_BROKER_FULL;
    s_send_message (alice, 1, box, sizeof box);
    s_fail_rid = NULL;
    s_expect_error (alice, SC_ERR_UNDELIVERED);
    s_expect_nothing (alice);
    assert_int_equal (sc_broker_sessions (T.broker), 2);
    /* and the next message goes through */
    s_send_message (alice, 2, box, sizeof box);
    sc_msg_t msg;
    s_recv (bob, &msg, SC_OP_MESSAGE);
    assert_int_equal (msg.counter, 2);
    sc_msg_reset (&msg);
    s_client_destroy (&alice);
    s_client_destroy (&bob);
}

static void
test_undelivered (void **state)
{
    (void) state;
    client_t *alice = s_login ("alice");
    client_t *bob = s_login ("bob");
    s_open_chat (alice, bob);
    sc_msg_t msg;
    sc_msg_init (&msg, SC_OP_MESSAGE);
    msg.counter = 1;
    uint8_t box[20] = { 0 };
    assert_int_equal (sc_msg_set_data (&msg, box, sizeof box), 0);
    uint8_t *frame;
    size_t len;
    assert_int_equal (sc_wire_seal (alice->ch, &msg, &frame, &len), 0);
    sc_msg_reset (&msg);
    /* bob is gone (his sends fail): alice is told it was not delivered,
       then that bob is lost, and nothing crashes */
    s_fail_rid = bob->rid;
    s_fail_code = SC_BROKER_GONE;
    s_deliver (alice, frame, len);
    s_fail_rid = NULL;
    free (frame);
    s_expect_error (alice, SC_ERR_UNDELIVERED);
    s_expect_notify (alice, NULL, SC_NOTIFY_LOST);
    assert_int_equal (sc_broker_sessions (T.broker), 1);
    s_client_destroy (&alice);
    s_client_destroy (&bob);
}

static void
test_counter_exhausted_ends_session (void **state)
{
    (void) state;
    /* a broker whose sessions end at seq 5 (WELCOME is 1) */
    sc_broker_destroy (&T.broker);
    sc_broker_opts_t opts;
    sc_broker_opts_default (&opts);
    opts.seq_limit = 5;
    T.broker = sc_broker_new (T.k.broker_key, T.k.cert, T.k.cert_len, T.k.registry, &opts,
                              s_capture, NULL);
    assert_non_null (T.broker);
    client_t *alice = s_login ("alice");
    client_t *bob = s_login ("bob");
    s_open_chat (alice, bob);           /* alice's CHAT is seq 2 */
    sc_msg_t msg;
    for (int i = 0; i < 2; i++) {       /* PONGs 3 and 4 */
        s_send_named (alice, SC_OP_PING, NULL, 0);
        s_recv (alice, &msg, SC_OP_PONG);
        sc_msg_reset (&msg);
    }
    /* the next would be seq 5: never sent under this key, the session ends */
    s_send_named (alice, SC_OP_PING, NULL, 0);
    s_expect_nothing (alice);
    s_expect_notify (bob, "alice", SC_NOTIFY_LOST);
    assert_int_equal (sc_broker_sessions (T.broker), 1);
    /* a new login gets fresh keys and counters */
    client_t *again = s_login ("alice");
    s_send_named (again, SC_OP_PING, NULL, 0);
    s_recv (again, &msg, SC_OP_PONG);
    sc_msg_reset (&msg);
    s_client_destroy (&alice);
    s_client_destroy (&again);
    s_client_destroy (&bob);
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown (test_login, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_login_unknown_user, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_login_wrong_key, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_first_message_must_be_hello, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_list, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_request_accept_relay_leave, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_relay_in_place, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_refuse_busy_self_notfound, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_withdraw_and_quit, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_heartbeat_timeout, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_handshake_timeout, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_handshake_cap, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_second_login_replaces, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_replay_and_tamper, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_rate_limit, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_peer_queue_full, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_undelivered, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_counter_exhausted_ends_session, s_setup, s_teardown),
    };
    return cmocka_run_group_tests (tests, s_group_setup, s_group_teardown);
}
