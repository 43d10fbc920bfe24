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
#include <dirent.h>
#include <string.h>
#include <unistd.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "sc_broker.h"
#include "sc_cluster.h"
#include "sc_handshake.h"
#include "sc_invite.h"
#include "sc_log.h"
#include "sc_testbroker.h"
#include "sc_testproc.h"
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

/* ---- OpenSSL out of memory, on demand ---------------------------------------- */

/* OpenSSL's allocations go through these (installed in main, before
   OpenSSL allocates anything): the s_ossl_fail_at-th from now on fails,
   and every one after it, as when memory has run out. */
static bool s_ossl_armed;
static size_t s_ossl_fail_at;       /* 0: the first one fails            */
static size_t s_ossl_failed;        /* how many failed since armed       */

static bool
s_ossl_fails (void)
{
    if (!s_ossl_armed)
        return false;
    if (s_ossl_fail_at > 0) {
        s_ossl_fail_at--;
        return false;
    }
    s_ossl_failed++;
    return true;
}

static void *
s_ossl_malloc (size_t n, const char *file, int line)
{
    (void) file;
    (void) line;
    return s_ossl_fails () ? NULL : malloc (n);
}

static void *
s_ossl_realloc (void *p, size_t n, const char *file, int line)
{
    (void) file;
    (void) line;
    return s_ossl_fails () ? NULL : realloc (p, n);
}

static void
s_ossl_free (void *p, const char *file, int line)
{
    (void) file;
    (void) line;
    free (p);
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
/* The detail of the last login error s_login_as saw. */
static char s_login_detail[SC_DETAIL_MAX + 1];

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
        snprintf (s_login_detail, sizeof s_login_detail, "%s", msg.text);
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
    assert_int_equal (code, SC_ERR_AUTH);
    char unknown[sizeof s_login_detail];
    strcpy (unknown, s_login_detail);
    assert_int_equal (sc_broker_sessions (T.broker), 0);
    assert_int_equal (sc_broker_handshakes (T.broker), 0);
    s_client_destroy (&eve);
    /* the same answer as a registered name with a wrong signature: the
       broker does not tell who is registered */
    client_t *c = s_client_new ("alice");
    assert_int_equal (s_login_as (c, "bob", &code), SC_OP_ERROR);
    assert_int_equal (code, SC_ERR_AUTH);
    assert_string_equal (s_login_detail, unknown);
    s_client_destroy (&c);
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

/* A user made here, with a key from a seed: many users without running
   the key script for each. Its public key goes to dir/NAME.pub. */
static client_t *
s_client_seeded (const char *dir, const char *name, uint8_t seed_byte)
{
    client_t *c = calloc (1, sizeof *c);
    assert_non_null (c);
    strcpy (c->name, name);
    c->rid[4] = ++T.next_rid;
    uint8_t seed[SC_KEY_LEN], pub[SC_PUB_LEN];
    memset (seed, seed_byte, sizeof seed);
    c->key = sc_key_from_seed (seed);
    assert_non_null (c->key);
    assert_int_equal (sc_key_public_raw (c->key, pub), 0);
    EVP_PKEY *pkey = EVP_PKEY_new_raw_public_key (EVP_PKEY_ED25519, NULL, pub, sizeof pub);
    assert_non_null (pkey);
    char file[64];
    snprintf (file, sizeof file, "%s.pub", name);
    char *path = sc_testdir_path (dir, file);
    FILE *out = fopen (path, "w");
    assert_non_null (out);
    assert_int_equal (PEM_write_PUBKEY (out, pkey), 1);
    assert_int_equal (fclose (out), 0);
    EVP_PKEY_free (pkey);
    free (path);
    return c;
}

/* USERS is sorted whatever order the broker's table gives the names in.
   u000..u055, logged in in this order, are a table that CZMQ 4.2.1's
   zlistx_sort left unsorted (its comb sort stops early: u040 came
   before u039). */
static void
test_list_sorted_many (void **state)
{
    (void) state;
    enum { USERS = 56 };
    char *dir = sc_testdir_new ("users");
    assert_non_null (dir);
    client_t *c[USERS];
    for (int i = 0; i < USERS; i++) {
        char name[16];
        snprintf (name, sizeof name, "u%03d", i);
        c[i] = s_client_seeded (dir, name, (uint8_t) (i + 1));
    }
    sc_registry_t *registry = sc_registry_new (dir);
    assert_non_null (registry);
    assert_int_equal (sc_registry_size (registry), USERS);
    sc_broker_destroy (&T.broker);
    T.broker = sc_broker_new (T.k.broker_key, T.k.cert, T.k.cert_len, registry, NULL,
                              s_capture, NULL);
    assert_non_null (T.broker);
    for (int i = 0; i < USERS; i++) {
        uint32_t code = 0;
        assert_int_equal (s_login_as (c[i], c[i]->name, &code), SC_OP_WELCOME);
    }
    /* every user's list: the others, each once, in strcmp order */
    for (int i = 0; i < USERS; i++) {
        sc_msg_t msg;
        s_send_named (c[i], SC_OP_LIST, NULL, 0);
        s_recv (c[i], &msg, SC_OP_USERS);
        assert_int_equal (msg.names_count, USERS - 1);
        for (size_t j = 0; j < msg.names_count; j++) {
            char want[16];
            snprintf (want, sizeof want, "u%03zu", j < (size_t) i ? j : j + 1);
            assert_string_equal (msg.names[j], want);
        }
        assert_false (msg.flag);
        sc_msg_reset (&msg);
    }
    sc_broker_destroy (&T.broker);
    sc_registry_destroy (&registry);
    for (int i = 0; i < USERS; i++)
        s_client_destroy (&c[i]);
    assert_int_equal (sc_testdir_remove (dir), 0);
    free (dir);
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
    assert_int_equal (zlistx_size (s_outbox), before + 2);
    s_expect_error (bob, SC_ERR_UNDELIVERED);
    s_expect_notify (bob, "alice", SC_NOTIFY_LOST);
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
    /* bob has a request pending: carol is told he is busy, bob is told
       carol tried (NOTIFY MISSED), once: asking again tells him nothing */
    s_send_named (carol, SC_OP_RTT, "bob", 0);
    sc_msg_t msg;
    s_recv (carol, &msg, SC_OP_REFUSE);
    assert_string_equal (msg.name, "bob");
    assert_int_equal (msg.code, SC_REFUSE_BUSY);
    sc_msg_reset (&msg);
    s_expect_notify (bob, "carol", SC_NOTIFY_MISSED);
    s_expect_nothing (bob);
    s_send_named (carol, SC_OP_RTT, "bob", 0);
    s_recv (carol, &msg, SC_OP_REFUSE);
    assert_int_equal (msg.code, SC_REFUSE_BUSY);
    sc_msg_reset (&msg);
    s_expect_nothing (bob);
    /* so is alice, who asked; and she hears of carol too */
    s_send_named (carol, SC_OP_RTT, "alice", 0);
    s_recv (carol, &msg, SC_OP_REFUSE);
    assert_int_equal (msg.code, SC_REFUSE_BUSY);
    sc_msg_reset (&msg);
    s_expect_notify (alice, "carol", SC_NOTIFY_MISSED);
    s_expect_nothing (carol);
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
    /* a new chat: bob hears of each asker again, in a row once each */
    s_send_named (alice, SC_OP_RTT, "bob", 0);
    s_expect_named (alice, SC_OP_REFUSE, "bob");
    s_expect_notify (bob, "alice", SC_NOTIFY_MISSED);
    client_t *dave = s_login ("dave");
    s_send_named (dave, SC_OP_RTT, "bob", 0);
    s_expect_named (dave, SC_OP_REFUSE, "bob");
    s_expect_notify (bob, "dave", SC_NOTIFY_MISSED);
    s_send_named (alice, SC_OP_RTT, "bob", 0);
    s_expect_named (alice, SC_OP_REFUSE, "bob");
    s_expect_notify (bob, "alice", SC_NOTIFY_MISSED);
    s_send_named (alice, SC_OP_RTT, "bob", 0);
    s_expect_named (alice, SC_OP_REFUSE, "bob");
    s_expect_nothing (bob);
    s_expect_nothing (carol);
    /* the chat goes on, untouched */
    s_send_named (bob, SC_OP_LEAVE, NULL, 0);
    s_expect_notify (carol, "bob", SC_NOTIFY_LEFT);
    s_client_destroy (&dave);
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

/* The fixture's broker again, with these options. */
static void
s_broker_with (const sc_broker_opts_t *opts)
{
    sc_broker_destroy (&T.broker);
    T.broker = sc_broker_new (T.k.broker_key, T.k.cert, T.k.cert_len, T.k.registry, opts,
                              s_capture, NULL);
    assert_non_null (T.broker);
}

/* At most max_handshakes logins in progress: a HELLO past the cap gets a
   plaintext ERROR RATE (a client retries it) and is held nowhere;
   once the logins in progress are gone, a login goes through again. */
static void
test_handshake_cap (void **state)
{
    (void) state;
    sc_broker_opts_t opts;
    sc_broker_opts_default (&opts);
    opts.max_handshakes = 2;
    s_broker_with (&opts);
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
            assert_int_equal (msg.code, SC_ERR_RATE);
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
    /* it changed nothing: the genuine one is still the next */
    frame[len - 1] ^= 1;
    s_deliver (alice, frame, len);
    s_recv (alice, &msg, SC_OP_PONG);
    sc_msg_reset (&msg);
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
    /* bob reads too slowly: alice is told it was not delivered, and as
       bob's stream now has a hole (a seq spent on an envelope that never
       went), bob's session ends as a lost one */
    s_fail_rid = bob->rid;
    s_fail_code = SC_BROKER_FULL;
    s_send_message (alice, 1, box, sizeof box);
    s_fail_rid = NULL;
    s_expect_error (alice, SC_ERR_UNDELIVERED);
    s_expect_notify (alice, "bob", SC_NOTIFY_LOST);
    s_expect_nothing (alice);
    assert_int_equal (sc_broker_sessions (T.broker), 1);
    /* alice's session goes on */
    sc_msg_t msg;
    s_send_named (alice, SC_OP_PING, NULL, 0);
    s_recv (alice, &msg, SC_OP_PONG);
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

/* The counters the metrics serve follow what happened: logins and
   failed logins by reason, chats open, envelopes relayed and their
   bytes, the undelivered, sessions and logins in progress. */
static void
test_stats (void **state)
{
    (void) state;
    sc_broker_stats_t st;
    sc_broker_stats (T.broker, &st);
    assert_int_equal (st.logins + st.sessions + st.chats + st.relayed + st.undelivered, 0);
    client_t *alice = s_login ("alice");
    client_t *bob = s_login ("bob");
    client_t *carol = s_client_new ("alice");       /* alice's key, as bob */
    uint32_t code = 0;
    assert_int_equal (s_login_as (carol, "bob", &code), SC_OP_ERROR);
    s_client_destroy (&carol);
    carol = s_client_new ("carol");                 /* a login that times out */
    sc_handshake_t *hs = sc_handshake_new_client (carol->key, "carol", T.k.ca, "secbroker");
    assert_non_null (hs);
    uint8_t *frame;
    size_t len;
    sc_testbroker_hello (hs, &frame, &len);
    s_deliver (carol, frame, len);
    free (frame);
    sc_handshake_destroy (&hs);
    sent_t *sent = s_pop (carol->rid, sizeof carol->rid);  /* AUTH_BROKER */
    s_sent_free (&sent);
    sc_broker_stats (T.broker, &st);
    assert_int_equal (st.logins, 2);
    assert_int_equal (st.sessions, 2);
    assert_int_equal (st.handshakes, 1);
    assert_int_equal (st.logins_failed[SC_BROKER_FAIL_AUTH], 1);
    assert_int_equal (st.logins_failed[SC_BROKER_FAIL_TIMEOUT], 0);
    T.now += 10001;
    sc_broker_tick (T.broker, T.now);
    sc_msg_t timeout;
    s_recv_plain (carol, &timeout);
    assert_int_equal (timeout.code, SC_ERR_TIMEOUT);
    sc_msg_reset (&timeout);
    sc_broker_stats (T.broker, &st);
    assert_int_equal (st.handshakes, 0);
    assert_int_equal (st.logins_failed[SC_BROKER_FAIL_TIMEOUT], 1);
    s_client_destroy (&carol);

    s_open_chat (alice, bob);
    sc_broker_stats (T.broker, &st);
    assert_int_equal (st.chats, 1);
    /* three MESSAGEs; their envelopes' bytes as alice sent them */
    uint8_t box[40] = { 0 };
    size_t bytes = 0;
    for (uint64_t i = 1; i <= 3; i++) {
        sc_msg_t msg;
        sc_msg_init (&msg, SC_OP_MESSAGE);
        msg.counter = i;
        assert_int_equal (sc_msg_set_data (&msg, box, sizeof box - i), 0);
        assert_int_equal (sc_wire_seal (alice->ch, &msg, &frame, &len), 0);
        sc_msg_reset (&msg);
        s_deliver (alice, frame, len);
        free (frame);
        bytes += len;
        s_recv (bob, &msg, SC_OP_MESSAGE);
        sc_msg_reset (&msg);
    }
    sc_broker_stats (T.broker, &st);
    assert_int_equal (st.relayed, 3);
    assert_int_equal (st.relayed_bytes, bytes);
    assert_int_equal (st.undelivered, 0);
    /* one that finds bob gone */
    sc_msg_t msg;
    sc_msg_init (&msg, SC_OP_MESSAGE);
    msg.counter = 4;
    assert_int_equal (sc_msg_set_data (&msg, box, sizeof box), 0);
    assert_int_equal (sc_wire_seal (alice->ch, &msg, &frame, &len), 0);
    sc_msg_reset (&msg);
    s_fail_rid = bob->rid;
    s_fail_code = SC_BROKER_GONE;
    s_deliver (alice, frame, len);
    s_fail_rid = NULL;
    free (frame);
    s_expect_error (alice, SC_ERR_UNDELIVERED);
    s_expect_notify (alice, NULL, SC_NOTIFY_LOST);
    sc_broker_stats (T.broker, &st);
    assert_int_equal (st.relayed, 3);
    assert_int_equal (st.undelivered, 1);
    assert_int_equal (st.chats, 0);
    assert_int_equal (st.sessions, 1);
    assert_int_equal (st.logins, 2);
    s_client_destroy (&alice);
    s_client_destroy (&bob);
}

/* A chat that ends any way leaves the count: LEAVE, QUIT, a refused
   request never counted. */
static void
test_stats_chats (void **state)
{
    (void) state;
    client_t *alice = s_login ("alice");
    client_t *bob = s_login ("bob");
    client_t *carol = s_login ("carol");
    client_t *dave = s_login ("dave");
    sc_broker_stats_t st;
    s_open_chat (alice, bob);
    s_open_chat (carol, dave);
    sc_broker_stats (T.broker, &st);
    assert_int_equal (st.chats, 2);
    s_send_named (alice, SC_OP_LEAVE, NULL, 0);
    s_expect_notify (bob, "alice", SC_NOTIFY_LEFT);
    s_send_named (dave, SC_OP_QUIT, NULL, 0);
    s_expect_notify (carol, "dave", SC_NOTIFY_QUIT);
    sc_broker_stats (T.broker, &st);
    assert_int_equal (st.chats, 0);
    s_send_named (alice, SC_OP_RTT, "bob", 0);
    s_expect_named (bob, SC_OP_RTT, "alice");
    s_send_named (bob, SC_OP_REFUSE, "alice", 0);
    s_expect_named (alice, SC_OP_REFUSE, "bob");
    sc_broker_stats (T.broker, &st);
    assert_int_equal (st.chats, 0);
    assert_int_equal (st.sessions, 3);
    s_client_destroy (&alice);
    s_client_destroy (&bob);
    s_client_destroy (&carol);
    s_client_destroy (&dave);
}

static void
test_counter_exhausted_ends_session (void **state)
{
    (void) state;
    /* a broker whose sessions end at seq 5 (WELCOME is 1) */
    sc_broker_opts_t opts;
    sc_broker_opts_default (&opts);
    opts.seq_limit = 5;
    s_broker_with (&opts);
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

/* An envelope that authenticates but whose seq skips one (dropped on the
   path) ends the session as a lost one: ERROR TIMEOUT to the client, its
   chat peer told NOTIFY lost. */
static void
test_seq_gap_ends_session (void **state)
{
    (void) state;
    client_t *alice = s_login ("alice");
    client_t *bob = s_login ("bob");
    s_open_chat (alice, bob);
    sc_msg_t msg;
    sc_msg_init (&msg, SC_OP_PING);
    uint8_t *frame;
    size_t len;
    assert_int_equal (sc_wire_seal (alice->ch, &msg, &frame, &len), 0);
    free (frame);                       /* dropped on the way */
    s_send_named (alice, SC_OP_PING, NULL, 0);
    s_expect_error (alice, SC_ERR_TIMEOUT);
    s_expect_nothing (alice);
    s_expect_notify (bob, "alice", SC_NOTIFY_LOST);
    assert_int_equal (sc_broker_sessions (T.broker), 1);
    s_client_destroy (&alice);
    s_client_destroy (&bob);
}

/* Authenticate first: an envelope with seq 2^48 (or any seq) and a body
   that does not open is answered as any envelope that does not open
   (ERROR AUTH) and changes nothing: no session ends, nobody is told. */
static void
test_forged_seq_changes_nothing (void **state)
{
    (void) state;
    client_t *alice = s_login ("alice");
    client_t *bob = s_login ("bob");
    s_open_chat (alice, bob);
    static const uint64_t seqs[] = { ((uint64_t) 1) << 48, UINT64_MAX, 3, 1000 };
    for (size_t i = 0; i < sizeof seqs / sizeof seqs[0]; i++) {
        uint8_t body[64];
        assert_int_equal (sc_random (body, sizeof body), 0);
        uint8_t *frame;
        size_t len;
        assert_int_equal (sc_envelope_encode (SC_OP_PING, seqs[i], body, sizeof body,
                                              &frame, &len), 0);
        s_deliver (alice, frame, len);
        free (frame);
        s_expect_error (alice, SC_ERR_AUTH);
        s_expect_nothing (alice);
        s_expect_nothing (bob);
    }
    assert_int_equal (sc_broker_sessions (T.broker), 2);
    sc_msg_t msg;
    s_send_named (alice, SC_OP_PING, NULL, 0);
    s_recv (alice, &msg, SC_OP_PONG);
    sc_msg_reset (&msg);
    s_client_destroy (&alice);
    s_client_destroy (&bob);
}

/* ---- Revocation and the broker's identity ------------------------------------ */

/* A users folder of its own, with the key set's NAME.pub of each user,
   and a broker on a registry of it: a test can then remove or change a
   key and reload. */
static struct {
    char *dir;
    sc_registry_t *registry;
} R;

/* dir/NAME.pub gets the key set's users/FROM.pub. */
static void
s_users_put (const char *name, const char *from)
{
    char rel[64], file[64];
    snprintf (rel, sizeof rel, "users/%s.pub", from);
    size_t len = 0;
    char *pem = sc_testdir_slurp (sc_testkeys_path (T.k.keys, rel), &len);
    assert_non_null (pem);
    snprintf (file, sizeof file, "%s.pub", name);
    char *path = sc_testdir_path (R.dir, file);
    FILE *out = fopen (path, "w");
    assert_non_null (out);
    assert_int_equal (fwrite (pem, 1, len, out), len);
    assert_int_equal (fclose (out), 0);
    free (path);
    free (pem);
}

static void
s_users_remove (const char *name)
{
    char file[64];
    snprintf (file, sizeof file, "%s.pub", name);
    char *path = sc_testdir_path (R.dir, file);
    assert_int_equal (unlink (path), 0);
    free (path);
}

static void
s_revoke_setup (void)
{
    R.dir = sc_testdir_new ("users");
    assert_non_null (R.dir);
    s_users_put ("alice", "alice");
    s_users_put ("bob", "bob");
    s_users_put ("carol", "carol");
    R.registry = sc_registry_new (R.dir);
    assert_non_null (R.registry);
    sc_broker_destroy (&T.broker);
    T.broker = sc_broker_new (T.k.broker_key, T.k.cert, T.k.cert_len, R.registry, NULL,
                              s_capture, NULL);
    assert_non_null (T.broker);
}

static void
s_revoke_teardown (void)
{
    sc_broker_destroy (&T.broker);
    sc_registry_destroy (&R.registry);
    sc_testdir_remove (R.dir);
    free (R.dir);
    R.dir = NULL;
}

static void
s_reload (void)
{
    char why[256] = "";
    if (sc_registry_reload (R.registry, why, sizeof why))
        fail_msg ("reload: %s", why);
}

static void
s_expect_users (client_t *c, const char *first, const char *second)
{
    sc_msg_t msg;
    sc_msg_init (&msg, SC_OP_LIST);
    s_send (c, &msg);
    s_recv (c, &msg, SC_OP_USERS);
    assert_int_equal (msg.names_count, (first != NULL) + (second != NULL));
    if (first)
        assert_string_equal (msg.names[0], first);
    if (second)
        assert_string_equal (msg.names[1], second);
    sc_msg_reset (&msg);
}

static void
test_revoke_removed_user (void **state)
{
    (void) state;
    s_revoke_setup ();
    client_t *alice = s_login ("alice");
    client_t *bob = s_login ("bob");
    client_t *carol = s_login ("carol");
    s_open_chat (alice, bob);
    /* nothing changed: nobody goes */
    s_reload ();
    assert_int_equal (sc_broker_revalidate (T.broker), 0);
    s_expect_nothing (alice);
    s_expect_nothing (bob);

    s_users_remove ("bob");
    s_reload ();
    assert_int_equal (sc_broker_revalidate (T.broker), 1);
    s_expect_error (bob, SC_ERR_REVOKED);
    s_expect_nothing (bob);
    s_expect_notify (alice, "bob", SC_NOTIFY_REVOKED);
    s_expect_nothing (alice);
    s_expect_nothing (carol);
    assert_int_equal (sc_broker_sessions (T.broker), 2);
    /* no longer listed; the others go on */
    s_expect_users (carol, "alice", NULL);
    s_open_chat (carol, alice);
    /* bob's session is gone: what he sends is answered "log in first" */
    s_send_named (bob, SC_OP_PING, NULL, 0);
    sc_msg_t err;
    s_recv_plain (bob, &err);
    assert_int_equal (err.code, SC_ERR_STATE);
    sc_msg_reset (&err);
    /* and he cannot log in again */
    client_t *again = s_client_new ("bob");
    uint32_t code = 0;
    assert_int_equal (s_login_as (again, "bob", &code), SC_OP_ERROR);
    assert_int_equal (code, SC_ERR_AUTH);
    assert_int_equal (sc_broker_revalidate (T.broker), 0);
    s_client_destroy (&again);
    s_client_destroy (&alice);
    s_client_destroy (&bob);
    s_client_destroy (&carol);
    s_revoke_teardown ();
}

/* A cluster's users (the bucket secchat-users) beside the folder's: a
   reload of the folder keeps them, the folder's key wins where both
   have the name, and a user gone from the bucket is logged out as by a
   reload. */
static void
test_cluster_users (void **state)
{
    (void) state;
    s_revoke_setup ();
    uint8_t alice_pub[SC_PUB_LEN], bob_pub[SC_PUB_LEN], carol_pub[SC_PUB_LEN], pub[SC_PUB_LEN];
    assert_int_equal (sc_registry_raw (R.registry, "alice", alice_pub), 0);
    assert_int_equal (sc_registry_raw (R.registry, "bob", bob_pub), 0);
    assert_int_equal (sc_registry_raw (R.registry, "carol", carol_pub), 0);
    client_t *alice = s_login ("alice");
    client_t *carol = s_login ("carol");
    s_open_chat (alice, carol);

    /* carol is now the bucket's only: the folder's reload keeps her */
    assert_int_equal (sc_registry_cluster_set (R.registry, "carol", carol_pub, 0), 0);
    assert_int_equal (sc_registry_cluster_set (R.registry, "carol", carol_pub, 0), 1);
    s_users_remove ("carol");
    s_reload ();
    assert_int_equal (sc_broker_revalidate (T.broker), 0);
    s_expect_nothing (carol);
    assert_true (sc_registry_taken (R.registry, "carol"));
    assert_int_equal (sc_registry_cluster_size (R.registry), 1);
    /* the folder's key counts where both have a name */
    assert_int_equal (sc_registry_cluster_set (R.registry, "alice", bob_pub, 0), 0);
    assert_int_equal (sc_registry_raw (R.registry, "alice", pub), 0);
    assert_memory_equal (pub, alice_pub, SC_PUB_LEN);
    assert_int_equal (sc_broker_revalidate (T.broker), 0);
    /* a name in the bucket only is taken; gone from it, free */
    assert_int_equal (sc_registry_cluster_set (R.registry, "dave", bob_pub, 0), 0);
    assert_true (sc_registry_taken (R.registry, "dave"));
    assert_int_equal (sc_registry_cluster_remove (R.registry, "dave", 0), 0);
    assert_false (sc_registry_taken (R.registry, "dave"));
    assert_int_equal (sc_registry_cluster_remove (R.registry, "dave", 0), 1);
    /* the bucket's revisions order the changes, whichever comes first:
       an enrolment's own write (rev 7) after the watch brought its
       removal (rev 8) does not bring the name back, nor a removal
       older than the last write take it away */
    assert_int_equal (sc_registry_cluster_set (R.registry, "erin", bob_pub, 7), 0);
    assert_int_equal (sc_registry_cluster_remove (R.registry, "erin", 8), 0);
    assert_int_equal (sc_registry_cluster_set (R.registry, "erin", bob_pub, 7), 1);
    assert_false (sc_registry_taken (R.registry, "erin"));
    assert_int_equal (sc_registry_cluster_set (R.registry, "erin", carol_pub, 9), 0);
    assert_int_equal (sc_registry_cluster_remove (R.registry, "erin", 8), 1);
    assert_int_equal (sc_registry_cluster_set (R.registry, "erin", bob_pub, 6), 1);
    assert_int_equal (sc_registry_raw (R.registry, "erin", pub), 0);
    assert_memory_equal (pub, carol_pub, SC_PUB_LEN);
    assert_int_equal (sc_registry_cluster_remove (R.registry, "erin", 10), 0);
    assert_false (sc_registry_taken (R.registry, "erin"));

    /* carol deleted from the bucket: logged out, alice told */
    sc_node_msg_t msg;
    sc_node_msg_init (&msg, SC_CLUSTER_USER);
    strcpy (msg.from, "carol");
    sc_broker_cluster_msg (T.broker, &msg, 1000);
    s_expect_error (carol, SC_ERR_REVOKED);
    s_expect_notify (alice, "carol", SC_NOTIFY_REVOKED);
    assert_false (sc_registry_taken (R.registry, "carol"));
    assert_int_equal (sc_broker_sessions (T.broker), 1);
    /* and back with a key: she logs in again */
    msg.has_key = true;
    memcpy (msg.key, carol_pub, SC_PUB_LEN);
    sc_broker_cluster_msg (T.broker, &msg, 1000);
    client_t *again = s_client_new ("carol");
    uint32_t code = 0;
    assert_int_equal (s_login_as (again, "carol", &code), SC_OP_WELCOME);
    s_client_destroy (&again);
    s_client_destroy (&alice);
    s_client_destroy (&carol);
    s_revoke_teardown ();
}

static void
test_revoke_changed_key (void **state)
{
    (void) state;
    s_revoke_setup ();
    client_t *alice = s_login ("alice");
    client_t *carol = s_login ("carol");
    client_t *bob = s_login ("bob");
    /* carol's request to alice is pending when carol's key changes (to
       dave's); bob and alice each are asked about nothing */
    s_send_named (carol, SC_OP_RTT, "alice", 0);
    s_expect_named (alice, SC_OP_RTT, "carol");
    s_users_put ("carol", "dave");
    s_reload ();
    assert_int_equal (sc_broker_revalidate (T.broker), 1);
    s_expect_error (carol, SC_ERR_REVOKED);
    s_expect_notify (alice, "carol", SC_NOTIFY_REVOKED);
    s_expect_nothing (bob);
    s_expect_users (bob, "alice", NULL);
    /* alice is free again */
    s_open_chat (bob, alice);
    /* carol's old key no longer logs in; the holder of the new one does,
       and a chat hands out the new key */
    client_t *old = s_client_new ("carol");
    uint32_t code = 0;
    assert_int_equal (s_login_as (old, "carol", &code), SC_OP_ERROR);
    assert_int_equal (code, SC_ERR_AUTH);
    client_t *dave = s_client_new ("dave");
    assert_int_equal (s_login_as (dave, "carol", &code), SC_OP_WELCOME);
    s_send_named (bob, SC_OP_LEAVE, NULL, 0);
    s_expect_notify (alice, "bob", SC_NOTIFY_LEFT);
    s_send_named (alice, SC_OP_RTT, "carol", 0);
    s_expect_named (dave, SC_OP_RTT, "alice");
    s_send_named (dave, SC_OP_ACCEPT, "alice", 0);
    sc_msg_t msg;
    uint8_t pub[SC_PUB_LEN];
    assert_int_equal (sc_key_public_raw (dave->key, pub), 0);
    s_recv (alice, &msg, SC_OP_CHAT);
    assert_string_equal (msg.name, "carol");
    assert_memory_equal (msg.key, pub, SC_PUB_LEN);
    sc_msg_reset (&msg);
    s_client_destroy (&old);
    s_client_destroy (&dave);
    s_client_destroy (&alice);
    s_client_destroy (&bob);
    s_client_destroy (&carol);
    s_revoke_teardown ();
}

/* Jobs held back, to be run and given back when the test says. */
static sc_broker_job_t *s_held[4];
static size_t s_nheld;

static int
s_hold (void *arg, sc_broker_job_t *job)
{
    (void) arg;
    assert_true (s_nheld < 4);
    s_held[s_nheld++] = job;
    return 0;
}

static void
s_release (void)
{
    for (size_t i = 0; i < s_nheld; i++) {
        sc_broker_job_run (s_held[i]);
        sc_broker_job_done (T.broker, s_held[i], T.now);
    }
    s_nheld = 0;
}

/* A login up to AUTH_CLIENT: HELLO, the broker's answer (its job run
   at once unless held), then AUTH_CLIENT; the handshake, or NULL when
   HELLO's job was held (then call s_login_auth after s_release). */
static sc_handshake_t *
s_login_hello (client_t *c, const char *name, const sc_ca_t *ca)
{
    sc_handshake_t *hs = sc_handshake_new_client (c->key, name, ca, "secbroker");
    assert_non_null (hs);
    uint8_t *frame;
    size_t len;
    sc_testbroker_hello (hs, &frame, &len);
    s_deliver (c, frame, len);
    free (frame);
    return hs;
}

/* The broker's AUTH_BROKER must carry cert (when not NULL) and hs must
   accept it; AUTH_CLIENT goes back. */
static void
s_login_auth (client_t *c, sc_handshake_t **hs, const uint8_t *cert, size_t cert_len)
{
    sent_t *sent = s_pop (c->rid, sizeof c->rid);
    assert_non_null (sent);
    if (cert) {
        sc_msg_t msg;
        assert_int_equal (sc_wire_open_plain (sent->frame, sent->len, &msg), 0);
        assert_int_equal (msg.opcode, SC_OP_AUTH_BROKER);
        assert_int_equal (msg.data_len, cert_len);
        assert_memory_equal (msg.data, cert, cert_len);
        sc_msg_reset (&msg);
    }
    uint8_t *frame;
    size_t len;
    sc_testbroker_auth (*hs, sent->frame, sent->len, &frame, &len, &c->ch);
    s_sent_free (&sent);
    sc_handshake_destroy (hs);
    s_deliver (c, frame, len);
    free (frame);
}

/* The plaintext ERROR code c got, or 0 for WELCOME. */
static uint32_t
s_login_answer (client_t *c)
{
    sent_t *sent = s_pop (c->rid, sizeof c->rid);
    assert_non_null (sent);
    sc_msg_t msg;
    uint32_t code = 0;
    if (sc_wire_open_plain (sent->frame, sent->len, &msg) == 0) {
        assert_int_equal (msg.opcode, SC_OP_ERROR);
        code = msg.code;
    }
    else {
        assert_int_equal (sc_wire_open (c->ch, sent->frame, sent->len, &msg), 0);
        assert_int_equal (msg.opcode, SC_OP_WELCOME);
    }
    sc_msg_reset (&msg);
    s_sent_free (&sent);
    return code;
}

/* A login whose signature check is out when its key is revoked must not
   come online with it. */
static void
test_revoke_job_in_flight (void **state)
{
    (void) state;
    s_revoke_setup ();
    client_t *alice = s_login ("alice");
    client_t *bob = s_client_new ("bob");
    client_t *carol = s_client_new ("carol");
    sc_handshake_t *hs_bob = s_login_hello (bob, "bob", T.k.ca);
    sc_handshake_t *hs_carol = s_login_hello (carol, "carol", T.k.ca);
    sc_broker_set_offload (T.broker, s_hold, NULL);
    s_login_auth (bob, &hs_bob, NULL, 0);
    s_login_auth (carol, &hs_carol, NULL, 0);
    assert_int_equal (s_nheld, 2);          /* both signature checks out */
    s_users_remove ("bob");
    s_users_put ("carol", "dave");
    s_reload ();
    assert_int_equal (sc_broker_revalidate (T.broker), 0);     /* not online yet */
    s_release ();
    assert_int_equal (s_login_answer (bob), SC_ERR_AUTH);
    assert_int_equal (s_login_answer (carol), SC_ERR_AUTH);
    assert_int_equal (sc_broker_sessions (T.broker), 1);
    assert_int_equal (sc_broker_handshakes (T.broker), 0);
    assert_int_equal (sc_broker_jobs (T.broker), 0);
    s_expect_users (alice, NULL, NULL);
    s_client_destroy (&alice);
    s_client_destroy (&bob);
    s_client_destroy (&carol);
    s_revoke_teardown ();
}

/* A new key and certificate: logins from then on use them; a login
   whose answer to HELLO was being made with the old ones gets the old
   certificate with it, so that it still verifies. */
static void
test_new_identity (void **state)
{
    (void) state;
    sc_testbroker_keys_t other;
    assert_int_equal (sc_testbroker_keys_load (&other, sc_testkeys_new (NULL, "alice", NULL)),
                      0);
    sc_broker_set_offload (T.broker, s_hold, NULL);
    client_t *alice = s_client_new ("alice");
    sc_handshake_t *hs_alice = s_login_hello (alice, "alice", T.k.ca);
    assert_int_equal (s_nheld, 1);          /* HELLO's job out */

    sc_key_t *key = sc_key_load_private (sc_testkeys_path (other.keys, "broker.key"), NULL,
                                         &(int) { 0 });
    uint8_t *cert = malloc (other.cert_len);
    assert_non_null (key);
    assert_non_null (cert);
    memcpy (cert, other.cert, other.cert_len);
    uint8_t *bad = NULL;
    assert_int_equal (sc_broker_set_identity (T.broker, &key, &bad, other.cert_len), -1);
    assert_non_null (key);
    assert_int_equal (sc_broker_set_identity (T.broker, &key, &cert, other.cert_len), 0);
    assert_null (key);
    assert_null (cert);

    /* bob starts after the change: the new certificate, which his CA
       (the other key set's) accepts */
    client_t *bob = s_client_new ("bob");
    sc_handshake_t *hs_bob = s_login_hello (bob, "bob", other.ca);
    assert_int_equal (s_nheld, 2);
    s_release ();
    sc_broker_set_offload (T.broker, NULL, NULL);
    s_login_auth (alice, &hs_alice, T.k.cert, T.k.cert_len);
    assert_int_equal (s_login_answer (alice), 0);
    s_login_auth (bob, &hs_bob, other.cert, other.cert_len);
    assert_int_equal (s_login_answer (bob), 0);
    assert_int_equal (sc_broker_sessions (T.broker), 2);
    /* and again, while a job holds the second identity: a third one
       replaces it, the job still finishes with it */
    sc_broker_set_offload (T.broker, s_hold, NULL);
    client_t *carol = s_client_new ("carol");
    sc_handshake_t *hs_carol = s_login_hello (carol, "carol", other.ca);
    key = sc_key_load_private (sc_testkeys_path (T.k.keys, "broker.key"), NULL, &(int) { 0 });
    cert = malloc (T.k.cert_len);
    assert_non_null (key);
    assert_non_null (cert);
    memcpy (cert, T.k.cert, T.k.cert_len);
    assert_int_equal (sc_broker_set_identity (T.broker, &key, &cert, T.k.cert_len), 0);
    s_release ();
    sc_broker_set_offload (T.broker, NULL, NULL);
    s_login_auth (carol, &hs_carol, other.cert, other.cert_len);
    assert_int_equal (s_login_answer (carol), 0);
    client_t *dave = s_login ("dave");  /* the first key set's again */
    assert_int_equal (sc_broker_sessions (T.broker), 4);
    s_client_destroy (&alice);
    s_client_destroy (&bob);
    s_client_destroy (&carol);
    s_client_destroy (&dave);
    sc_broker_destroy (&T.broker);
    sc_testbroker_keys_free (&other);
}

/* ---- Every answer, as docs/PROTOCOL.md writes it down ------------------- */

/* The next frame to c is a plaintext ERROR (seq 0) with this code and
   detail. */
static void
s_expect_plain_error (client_t *c, uint32_t code, const char *detail)
{
    sent_t *sent = s_pop (c->rid, sizeof c->rid);
    assert_non_null (sent);
    uint8_t opcode = 0;
    uint64_t seq = 1;
    assert_int_equal (sc_wire_peek (sent->frame, sent->len, &opcode, &seq), 0);
    assert_int_equal (seq, 0);
    sc_msg_t msg;
    assert_int_equal (sc_wire_open_plain (sent->frame, sent->len, &msg), 0);
    assert_int_equal (msg.opcode, SC_OP_ERROR);
    assert_int_equal (msg.code, code);
    assert_string_equal (msg.text, detail);
    sc_msg_reset (&msg);
    s_sent_free (&sent);
}

/* The next frame to c is a sealed ERROR with this code and detail. */
static void
s_expect_error_detail (client_t *c, uint32_t code, const char *detail)
{
    sc_msg_t msg;
    s_recv (c, &msg, SC_OP_ERROR);
    assert_int_equal (msg.code, code);
    assert_string_equal (msg.text, detail);
    sc_msg_reset (&msg);
}

/* An envelope of this opcode, seq and body, whatever the body is. */
static void
s_deliver_envelope (client_t *c, uint8_t opcode, uint64_t seq,
                    const uint8_t *body, size_t body_len)
{
    uint8_t *frame = NULL;
    size_t len = 0;
    assert_int_equal (sc_envelope_encode (opcode, seq, body, body_len, &frame, &len), 0);
    s_deliver (c, frame, len);
    free (frame);
}

/* A HELLO from c; the broker's AUTH_BROKER is taken off the outbox. */
static sc_handshake_t *
s_hello_answered (client_t *c)
{
    sc_handshake_t *hs = sc_handshake_new_client (c->key, c->name, T.k.ca, "secbroker");
    assert_non_null (hs);
    uint8_t *frame;
    size_t len;
    sc_testbroker_hello (hs, &frame, &len);
    s_deliver (c, frame, len);
    free (frame);
    sent_t *sent = s_pop (c->rid, sizeof c->rid);
    assert_non_null (sent);
    uint8_t opcode = 0;
    uint64_t seq = 1;
    assert_int_equal (sc_wire_peek (sent->frame, sent->len, &opcode, &seq), 0);
    assert_int_equal (opcode, SC_OP_AUTH_BROKER);
    s_sent_free (&sent);
    return hs;
}

/* Run the held jobs with OpenSSL failing from its fail_at-th
   allocation on, and give them back; whether any allocation failed. */
static bool
s_release_failing (size_t fail_at)
{
    s_ossl_failed = 0;
    for (size_t i = 0; i < s_nheld; i++) {
        s_ossl_fail_at = fail_at;
        s_ossl_armed = true;
        sc_broker_job_run (s_held[i]);
        s_ossl_armed = false;
        sc_broker_job_done (T.broker, s_held[i], T.now);
    }
    s_nheld = 0;
    return s_ossl_failed > 0;
}

/* The broker failing on its own during a login (OpenSSL out of memory
   while it answers HELLO or checks AUTH_CLIENT) answers ERROR INTERNAL
   "internal error, retry later", never AUTH: the user's key and password
   are not in question. A name with no key gets the same answer (it is
   checked against a key all the same), so INTERNAL tells nothing about
   who is registered. These failures do not count against the source's
   failed logins. Without failures the same login goes through. */
static void
test_login_internal_failure (void **state)
{
    (void) state;
    sc_broker_opts_t opts;
    sc_broker_opts_default (&opts);
    opts.max_failed_per_source = 2;
    s_broker_with (&opts);
    sc_broker_set_offload (T.broker, s_hold, NULL);
    client_t *c = s_client_new ("alice");
    /* answering HELLO */
    sc_handshake_t *hs = s_login_hello (c, "alice", T.k.ca);
    assert_int_equal (s_nheld, 1);
    assert_true (s_release_failing (0));
    s_expect_plain_error (c, SC_ERR_INTERNAL, "internal error, retry later");
    s_expect_nothing (c);
    assert_int_equal (sc_broker_handshakes (T.broker), 0);
    sc_handshake_destroy (&hs);
    /* checking AUTH_CLIENT: a registered name with its right key, and a
       name with no key */
    const char *names[] = { "alice", "nobody" };
    for (size_t i = 0; i < 2; i++) {
        hs = s_login_hello (c, names[i], T.k.ca);
        s_release ();
        s_login_auth (c, &hs, NULL, 0);
        sc_channel_destroy (&c->ch);
        assert_int_equal (s_nheld, 1);
        assert_true (s_release_failing (0));
        s_expect_plain_error (c, SC_ERR_INTERNAL, "internal error, retry later");
        s_expect_nothing (c);
        assert_int_equal (sc_broker_handshakes (T.broker), 0);
    }
    sc_broker_stats_t stats;
    sc_broker_stats (T.broker, &stats);
    assert_int_equal (stats.logins_failed[SC_BROKER_FAIL_INTERNAL], 3);
    assert_int_equal (stats.logins_failed[SC_BROKER_FAIL_AUTH], 0);
    /* three failures from this source, past its 2 failed logins: none
       was its own, so it still logs in */
    hs = s_login_hello (c, "alice", T.k.ca);
    s_release ();
    s_login_auth (c, &hs, NULL, 0);
    s_release ();
    assert_int_equal (s_login_answer (c), 0);
    assert_int_equal (sc_broker_sessions (T.broker), 1);
    s_client_destroy (&c);
}

/* Every allocation of a login's steps in turn fails (and all after it):
   answering HELLO gives AUTH_BROKER or ERROR INTERNAL, never AUTH (no
   failure of ours is taken for a low-order key); checking a right
   AUTH_CLIENT gives WELCOME or ERROR INTERNAL, except where OpenSSL 3.0
   itself reports its failure as a signature that does not verify (an
   allocation inside its Ed25519 check, which it reports without an
   error: crypto/sc_crypto.h), at most two of them. */
static void
test_login_fails_at_every_allocation (void **state)
{
    (void) state;
    sc_broker_set_offload (T.broker, s_hold, NULL);
    client_t *c = s_client_new ("alice");
    size_t internal = 0;
    bool failed = true;
    for (size_t k = 0; failed; k++) {
        sc_handshake_t *hs = s_login_hello (c, "alice", T.k.ca);
        failed = s_release_failing (k);
        sent_t *sent = s_pop (c->rid, sizeof c->rid);
        assert_non_null (sent);
        sc_msg_t msg;
        assert_int_equal (sc_wire_open_plain (sent->frame, sent->len, &msg), 0);
        s_sent_free (&sent);
        if (msg.opcode == SC_OP_ERROR) {
            assert_true (failed);
            if (msg.code != SC_ERR_INTERNAL)
                fail_msg ("allocation %zu failed: ERROR %u %s", k, msg.code, msg.text);
            internal++;
        }
        else
            assert_int_equal (msg.opcode, SC_OP_AUTH_BROKER);
        sc_msg_reset (&msg);
        sc_handshake_destroy (&hs);
        if (sc_broker_handshakes (T.broker))
            s_deliver_envelope (c, SC_OP_LIST, 0, (const uint8_t *) "\x90", 1);
        while ((sent = s_pop (c->rid, sizeof c->rid)))
            s_sent_free (&sent);        /* "expected AUTH_CLIENT": gone */
        assert_int_equal (sc_broker_handshakes (T.broker), 0);
    }
    assert_true (internal > 0);

    size_t auth = 0;
    internal = 0;
    failed = true;
    for (size_t k = 0; failed; k++) {
        sc_handshake_t *hs = s_login_hello (c, "alice", T.k.ca);
        s_release ();
        s_login_auth (c, &hs, NULL, 0);
        failed = s_release_failing (k);
        sent_t *sent = s_pop (c->rid, sizeof c->rid);
        assert_non_null (sent);
        sc_msg_t msg;
        if (sc_wire_open_plain (sent->frame, sent->len, &msg) == 0) {
            assert_true (failed);
            assert_int_equal (msg.opcode, SC_OP_ERROR);
            if (msg.code == SC_ERR_AUTH && strcmp (msg.text, "authentication failed") == 0)
                auth++;
            else
            if (msg.code == SC_ERR_INTERNAL)
                internal++;
            else
                fail_msg ("allocation %zu failed: ERROR %u %s", k, msg.code, msg.text);
        }
        else {
            assert_int_equal (sc_wire_open (c->ch, sent->frame, sent->len, &msg), 0);
            assert_int_equal (msg.opcode, SC_OP_WELCOME);
            s_send_named (c, SC_OP_QUIT, NULL, 0);
        }
        sc_msg_reset (&msg);
        s_sent_free (&sent);
        sc_channel_destroy (&c->ch);
        s_expect_nothing (c);
        assert_int_equal (sc_broker_handshakes (T.broker), 0);
        assert_int_equal (sc_broker_sessions (T.broker), 0);
    }
    assert_true (internal > 0);
    assert_true (auth <= 2);
    s_client_destroy (&c);
}

/* A routing id with no session: the envelope is decoded first (VERSION,
   MALFORMED), then any opcode but HELLO and HELLO_COOKIE gets STATE
   whatever its body, then a HELLO's body is decoded (MALFORMED). Nothing
   is kept. */
static void
test_no_session_answers (void **state)
{
    (void) state;
    client_t *c = s_client_new ("alice");
    uint8_t random_body[40];
    assert_int_equal (sc_random (random_body, sizeof random_body), 0);
    /* a sealed envelope of a known opcode, as after a broker restart */
    s_deliver_envelope (c, SC_OP_MESSAGE, 7, random_body, sizeof random_body);
    s_expect_plain_error (c, SC_ERR_STATE, "log in first");
    /* a known opcode with a body that breaks its schema: still STATE */
    const uint8_t nil_name[] = { 0x91, 0xc0 };      /* [nil] as RTT */
    s_deliver_envelope (c, SC_OP_RTT, 0, nil_name, sizeof nil_name);
    s_expect_plain_error (c, SC_ERR_STATE, "log in first");
    /* an unknown opcode fails the envelope: MALFORMED */
    const uint8_t unknown[] = { 0x94, 0x01, 0x63, 0x00, 0xc4, 0x00 };
    s_deliver (c, unknown, sizeof unknown);
    s_expect_plain_error (c, SC_ERR_MALFORMED, "unknown opcode");
    /* another version, whatever follows */
    const uint8_t v2[] = { 0x94, 0x02, 0x00, 0x00, 0xc4, 0x00 };
    s_deliver (c, v2, sizeof v2);
    s_expect_plain_error (c, SC_ERR_VERSION, "unsupported protocol version");
    /* a HELLO or HELLO_COOKIE whose body breaks its schema */
    const uint8_t empty[] = { 0x90 };
    s_deliver_envelope (c, SC_OP_HELLO, 0, empty, sizeof empty);
    s_expect_plain_error (c, SC_ERR_MALFORMED, "wrong array length");
    s_deliver_envelope (c, SC_OP_HELLO_COOKIE, 0, empty, sizeof empty);
    s_expect_plain_error (c, SC_ERR_MALFORMED, "wrong array length");
    s_expect_nothing (c);
    assert_int_equal (sc_broker_logins (T.broker), 0);
    /* and the connection can still log in */
    uint32_t code = 0;
    assert_int_equal (s_login_as (c, "alice", &code), SC_OP_WELCOME);
    s_client_destroy (&c);
}

/* frame (an envelope) again with another seq, in place of the old. */
static void
s_reseq (uint8_t **frame, size_t *len, uint64_t seq)
{
    sc_envelope_t env;
    assert_int_equal (sc_envelope_decode (*frame, *len, &env), 0);
    uint8_t *out = NULL;
    size_t out_len = 0;
    assert_int_equal (sc_envelope_encode (env.opcode, seq, env.body, env.body_len,
                                          &out, &out_len), 0);
    free (*frame);
    *frame = out;
    *len = out_len;
}

/* A handshake envelope's seq must be 0 (section 2): a HELLO or
   HELLO_COOKIE with another, from a connection with no session, gets
   MALFORMED and nothing is kept; an AUTH_CLIENT with another, right in
   every other way, ends the login with MALFORMED, and counts as a
   failed login. The same envelopes with seq 0 still work. */
static void
test_handshake_seq (void **state)
{
    (void) state;
    client_t *c = s_client_new ("alice");
    sc_handshake_t *hs = sc_handshake_new_client (c->key, c->name, T.k.ca, "secbroker");
    assert_non_null (hs);
    uint8_t *hello;
    size_t hello_len;
    sc_testbroker_hello (hs, &hello, &hello_len);
    const uint64_t seqs[] = { 1, 2, UINT64_MAX };
    for (size_t i = 0; i < sizeof seqs / sizeof seqs[0]; i++) {
        s_reseq (&hello, &hello_len, seqs[i]);
        s_deliver (c, hello, hello_len);
        s_expect_plain_error (c, SC_ERR_MALFORMED, "seq must be 0 during the login");
        assert_int_equal (sc_broker_logins (T.broker), 0);
    }
    /* a HELLO_COOKIE too, whatever its cookie */
    sc_envelope_t env;
    assert_int_equal (sc_envelope_decode (hello, hello_len, &env), 0);
    sc_msg_t msg;
    assert_int_equal (sc_msg_decode (SC_OP_HELLO, env.body, env.body_len, &msg), 0);
    msg.opcode = SC_OP_HELLO_COOKIE;
    uint8_t *body = NULL;
    size_t body_len = 0;
    assert_int_equal (sc_msg_encode (&msg, &body, &body_len), 0);
    sc_msg_reset (&msg);
    s_deliver_envelope (c, SC_OP_HELLO_COOKIE, 7, body, body_len);
    free (body);
    s_expect_plain_error (c, SC_ERR_MALFORMED, "seq must be 0 during the login");
    s_expect_nothing (c);
    assert_int_equal (sc_broker_logins (T.broker), 0);

    /* seq 0: the login starts; its AUTH_CLIENT with seq 1 ends it */
    s_reseq (&hello, &hello_len, 0);
    s_deliver (c, hello, hello_len);
    free (hello);
    assert_int_equal (sc_broker_handshakes (T.broker), 1);
    sent_t *sent = s_pop (c->rid, sizeof c->rid);
    assert_non_null (sent);
    uint8_t *auth;
    size_t auth_len;
    sc_testbroker_auth (hs, sent->frame, sent->len, &auth, &auth_len, &c->ch);
    s_sent_free (&sent);
    sc_handshake_destroy (&hs);
    sc_channel_destroy (&c->ch);
    s_reseq (&auth, &auth_len, 1);
    sc_broker_stats_t before, after;
    sc_broker_stats (T.broker, &before);
    s_deliver (c, auth, auth_len);
    free (auth);
    s_expect_plain_error (c, SC_ERR_MALFORMED, "seq must be 0 during the login");
    s_expect_nothing (c);
    assert_int_equal (sc_broker_handshakes (T.broker), 0);
    assert_int_equal (sc_broker_sessions (T.broker), 0);
    sc_broker_stats (T.broker, &after);
    assert_int_equal (after.logins_failed[SC_BROKER_FAIL_PROTOCOL],
                      before.logins_failed[SC_BROKER_FAIL_PROTOCOL] + 1);
    assert_int_equal (after.logins, before.logins);

    /* an ENROL with a seq ends the login the same way */
    hs = s_hello_answered (c);
    sc_handshake_destroy (&hs);
    sc_msg_init (&msg, SC_OP_ENROL);
    uint8_t box[SC_HS_ENROL_BOX_LEN];
    assert_int_equal (sc_random (box, sizeof box), 0);
    assert_int_equal (sc_msg_set_data (&msg, box, sizeof box), 0);
    assert_int_equal (sc_msg_encode (&msg, &body, &body_len), 0);
    sc_msg_reset (&msg);
    s_deliver_envelope (c, SC_OP_ENROL, 3, body, body_len);
    free (body);
    s_expect_plain_error (c, SC_ERR_MALFORMED, "seq must be 0 during the login");
    assert_int_equal (sc_broker_handshakes (T.broker), 0);

    /* and the connection can still log in */
    uint32_t code = 0;
    assert_int_equal (s_login_as (c, "alice", &code), SC_OP_WELCOME);
    s_client_destroy (&c);
}

/* During a login: a HELLO is dropped without an answer; anything but
   AUTH_CLIENT ends the login, MALFORMED when its body breaks its schema
   (checked first), else STATE; an AUTH_CLIENT box that does not open
   (of the wrong size, or whose name is not valid) gets AUTH. */
static void
test_handshake_answers (void **state)
{
    (void) state;
    client_t *c = s_client_new ("alice");
    sc_handshake_t *hs = s_hello_answered (c);
    sc_handshake_t *retry = sc_handshake_new_client (c->key, c->name, T.k.ca, "secbroker");
    assert_non_null (retry);
    uint8_t *frame;
    size_t len;
    sc_testbroker_hello (retry, &frame, &len);  /* a HELLO again */
    sc_handshake_destroy (&retry);
    s_deliver (c, frame, len);
    free (frame);
    s_expect_nothing (c);
    assert_int_equal (sc_broker_handshakes (T.broker), 1);
    const uint8_t nil_name[] = { 0x91, 0xc0 };
    s_deliver_envelope (c, SC_OP_RTT, 0, nil_name, sizeof nil_name);
    s_expect_plain_error (c, SC_ERR_MALFORMED, "wrong msgpack type");
    assert_int_equal (sc_broker_handshakes (T.broker), 0);
    sc_handshake_destroy (&hs);

    hs = s_hello_answered (c);
    const uint8_t none[] = { 0x90 };
    s_deliver_envelope (c, SC_OP_LIST, 0, none, sizeof none);
    s_expect_plain_error (c, SC_ERR_STATE, "expected AUTH_CLIENT");
    assert_int_equal (sc_broker_handshakes (T.broker), 0);
    sc_handshake_destroy (&hs);

    /* a box of the right size that does not open, and one too short */
    size_t sizes[] = { SC_HS_BOX_MAX, SC_HS_BOX_MAX - 1 };
    for (size_t i = 0; i < 2; i++) {
        hs = s_hello_answered (c);
        sc_msg_t msg;
        sc_msg_init (&msg, SC_OP_AUTH_CLIENT);
        uint8_t box[SC_HS_BOX_MAX];
        assert_int_equal (sc_random (box, sizeof box), 0);
        assert_int_equal (sc_msg_set_data (&msg, box, sizes[i]), 0);
        s_send_plain (c, &msg);
        sc_msg_reset (&msg);
        s_expect_plain_error (c, SC_ERR_AUTH, "login box does not open");
        assert_int_equal (sc_broker_handshakes (T.broker), 0);
        sc_handshake_destroy (&hs);
    }
    s_client_destroy (&c);
}

/* A logged-in session: an envelope that does not decode gets MALFORMED
   or VERSION, one that does not open AUTH (a plaintext HELLO, seq 0, as
   a replay), all sealed, and the session goes on. */
static void
test_session_envelope_answers (void **state)
{
    (void) state;
    client_t *alice = s_login ("alice");
    uint8_t unknown[6 + SC_TAG_LEN] = { 0x94, 0x01, 0x63, 0x01, 0xc4, SC_TAG_LEN };
    s_deliver (alice, unknown, sizeof unknown);
    s_expect_error_detail (alice, SC_ERR_MALFORMED, "unknown opcode");
    const uint8_t v2[] = { 0x94, 0x02, 0x0b, 0x01, 0xc4, 0x00 };
    s_deliver (alice, v2, sizeof v2);
    s_expect_error_detail (alice, SC_ERR_VERSION, "unsupported protocol version");
    /* HELLO on a live session: seq 0 is never newer than the last */
    client_t *again = s_client_new ("alice");
    memcpy (again->rid, alice->rid, sizeof alice->rid);
    sc_handshake_t *hs = sc_handshake_new_client (again->key, "alice", T.k.ca, "secbroker");
    assert_non_null (hs);
    uint8_t *frame;
    size_t len;
    sc_testbroker_hello (hs, &frame, &len);
    s_deliver (alice, frame, len);
    free (frame);
    sc_handshake_destroy (&hs);
    s_client_destroy (&again);
    s_expect_error_detail (alice, SC_ERR_AUTH, "replayed or reordered envelope");
    /* a body too short for the tag, with a new seq, or with seq 0 (a
       plaintext PING): the length is checked before the seq */
    const uint8_t body[] = { 0x90 };
    s_deliver_envelope (alice, SC_OP_PING, 1, body, sizeof body);
    s_expect_error_detail (alice, SC_ERR_AUTH, "envelope does not authenticate");
    s_deliver_envelope (alice, SC_OP_PING, 0, body, sizeof body);
    s_expect_error_detail (alice, SC_ERR_AUTH, "envelope does not authenticate");
    /* a B->C opcode, sealed */
    sc_msg_t msg;
    sc_msg_init (&msg, SC_OP_PONG);
    s_send (alice, &msg);
    s_expect_error_detail (alice, SC_ERR_STATE, "not a client request");
    assert_int_equal (sc_broker_handshakes (T.broker), 0);
    s_send_named (alice, SC_OP_PING, NULL, 0);
    s_recv (alice, &msg, SC_OP_PONG);
    sc_msg_reset (&msg);
    assert_int_equal (sc_broker_sessions (T.broker), 1);
    s_client_destroy (&alice);
}

/* The limit's numbers: a burst of 20, then 10 a second, up to 20 again;
   a refused request costs nothing and is not carried out; PING and chat
   traffic are not limited. */
static void
test_rate_limit_numbers (void **state)
{
    (void) state;
    client_t *alice = s_login ("alice");
    client_t *bob = s_login ("bob");
    sc_msg_t msg;
    for (int i = 0; i < 20; i++) {
        s_send_named (alice, SC_OP_LIST, NULL, 0);
        s_recv (alice, &msg, SC_OP_USERS);
        sc_msg_reset (&msg);
    }
    for (int i = 0; i < 5; i++) {
        s_send_named (alice, SC_OP_LIST, NULL, 0);
        s_expect_error_detail (alice, SC_ERR_RATE, "too many requests, slow down");
    }
    /* not carried out: bob is not asked, alice is not waiting */
    s_send_named (alice, SC_OP_RTT, "bob", 0);
    s_expect_error_detail (alice, SC_ERR_RATE, "too many requests, slow down");
    s_expect_nothing (bob);
    s_send_named (alice, SC_OP_LEAVE, NULL, 0);
    s_expect_error_detail (alice, SC_ERR_RATE, "too many requests, slow down");
    /* not limited */
    s_send_named (alice, SC_OP_PING, NULL, 0);
    s_recv (alice, &msg, SC_OP_PONG);
    sc_msg_reset (&msg);
    uint8_t box[17] = { 0 };
    s_send_message (alice, 1, box, sizeof box);
    s_expect_error_detail (alice, SC_ERR_NO_CHAT, "not in a chat");
    /* 100 ms: one token */
    T.now += 100;
    s_send_named (alice, SC_OP_RTT, "bob", 0);
    s_expect_named (bob, SC_OP_RTT, "alice");
    s_send_named (alice, SC_OP_LEAVE, NULL, 0);
    s_expect_error_detail (alice, SC_ERR_RATE, "too many requests, slow down");
    /* a long pause fills the bucket to 20, no more */
    T.now += 60000;
    s_send_named (alice, SC_OP_LEAVE, NULL, 0);
    s_expect_notify (bob, "alice", SC_NOTIFY_CANCELLED);
    for (int i = 0; i < 19; i++) {
        s_send_named (alice, SC_OP_LIST, NULL, 0);
        s_recv (alice, &msg, SC_OP_USERS);
        sc_msg_reset (&msg);
    }
    s_send_named (alice, SC_OP_LIST, NULL, 0);
    s_expect_error_detail (alice, SC_ERR_RATE, "too many requests, slow down");
    s_expect_nothing (alice);
    s_expect_nothing (bob);
    s_client_destroy (&alice);
    s_client_destroy (&bob);
}

/* QUIT has no answer and forgets the session; a stopping broker sends
   a sealed SHUTDOWN to each logged-in session, nothing to a login in
   progress. */
static void
test_quit_and_shutdown (void **state)
{
    (void) state;
    client_t *alice = s_login ("alice");
    client_t *bob = s_login ("bob");
    client_t *carol = s_login ("carol");
    s_send_named (alice, SC_OP_QUIT, NULL, 0);
    s_expect_nothing (alice);
    assert_int_equal (sc_broker_sessions (T.broker), 2);
    /* the same connection, after QUIT: unknown to the broker */
    s_send_named (alice, SC_OP_PING, NULL, 0);
    s_expect_plain_error (alice, SC_ERR_STATE, "log in first");

    client_t *dave = s_client_new ("dave");
    sc_handshake_t *hs = s_hello_answered (dave);
    sc_broker_shutdown (T.broker);
    s_expect_error_detail (bob, SC_ERR_SHUTDOWN, "the broker is stopping");
    s_expect_error_detail (carol, SC_ERR_SHUTDOWN, "the broker is stopping");
    s_expect_nothing (dave);
    s_expect_nothing (bob);
    sc_handshake_destroy (&hs);
    s_client_destroy (&alice);
    s_client_destroy (&bob);
    s_client_destroy (&carol);
    s_client_destroy (&dave);
}

/* ---- Enrolment (docs/PROTOCOL.md section 5a) ---------------------------------- */

/* A client with a brand-new key, not in any registry. */
static client_t *
s_newcomer (const char *name)
{
    client_t *c = calloc (1, sizeof *c);
    assert_non_null (c);
    strcpy (c->name, name);
    c->rid[4] = ++T.next_rid;
    c->key = sc_key_generate ();
    assert_non_null (c->key);
    return c;
}

/* c enrols as name with code (NULL: none): SC_OP_WELCOME (c->ch set),
   or the plaintext ERROR's code, its detail in s_login_detail. */
static uint32_t
s_enrol (client_t *c, const char *name, const uint8_t *code)
{
    static const uint8_t none[SC_HS_CODE_LEN] = { 0 };
    sc_handshake_t *hs = sc_handshake_new_client (c->key, name, T.k.ca, "secbroker");
    assert_non_null (hs);
    uint8_t *frame;
    size_t len;
    sc_testbroker_hello (hs, &frame, &len);
    s_deliver (c, frame, len);
    free (frame);
    sc_msg_t msg;
    s_recv_plain (c, &msg);
    assert_int_equal (msg.opcode, SC_OP_AUTH_BROKER);
    uint8_t box[SC_HS_ENROL_BOX_LEN];
    size_t box_len = 0;
    assert_int_equal (sc_handshake_client_enrol (hs, code ? code : none), 0);
    assert_int_equal (sc_handshake_client_auth (hs, msg.nonce, msg.eph, msg.data, msg.data_len,
                                                msg.sig, msg.mac, box, &box_len, NULL), 0);
    sc_msg_reset (&msg);
    sc_session_keys_t keys;
    assert_int_equal (sc_handshake_keys (hs, &keys), 0);
    sc_handshake_destroy (&hs);
    sc_channel_destroy (&c->ch);
    c->ch = sc_channel_new (&keys);
    sc_wipe (&keys, sizeof keys);
    sc_msg_init (&msg, SC_OP_ENROL);
    assert_int_equal (sc_msg_set_data (&msg, box, box_len), 0);
    s_send_plain (c, &msg);
    sc_msg_reset (&msg);

    sent_t *sent = s_pop (c->rid, sizeof c->rid);
    assert_non_null (sent);
    uint8_t opcode = 0;
    uint64_t seq = 0;
    uint32_t result = SC_OP_WELCOME;
    assert_int_equal (sc_wire_peek (sent->frame, sent->len, &opcode, &seq), 0);
    if (opcode == SC_OP_ERROR) {
        assert_int_equal (seq, 0);
        assert_int_equal (sc_wire_open_plain (sent->frame, sent->len, &msg), 0);
        result = msg.code;
        snprintf (s_login_detail, sizeof s_login_detail, "%s", msg.text);
        sc_channel_destroy (&c->ch);
    }
    else {
        assert_int_equal (sc_wire_open (c->ch, sent->frame, sent->len, &msg), 0);
        assert_int_equal (msg.opcode, SC_OP_WELCOME);
        assert_string_equal (msg.name, name);
    }
    sc_msg_reset (&msg);
    s_sent_free (&sent);
    return result;
}

/* A file of the users folder, read whole (NULL when it is not there). */
static char *
s_users_file (const char *file)
{
    char *path = sc_testdir_path (R.dir, file);
    size_t len = 0;
    char *data = access (path, F_OK) == 0 ? sc_testdir_slurp (path, &len) : NULL;
    free (path);
    return data;
}

/* An invitation for name into R.dir, good for valid seconds from now. */
static void
s_invite (const char *name, int64_t valid, uint8_t code[SC_HS_CODE_LEN])
{
    char why[256] = "";
    if (sc_invite_create (R.dir, name, (int64_t) time (NULL) + valid, code, why, sizeof why))
        fail_msg ("invite: %s", why);
}

/* The key c holds is the one registered for its name. */
static void
s_expect_registered (client_t *c)
{
    uint8_t want[SC_PUB_LEN], got[SC_PUB_LEN];
    assert_int_equal (sc_key_public_raw (c->key, want), 0);
    assert_int_equal (sc_registry_raw (R.registry, c->name, got), 0);
    assert_memory_equal (got, want, SC_PUB_LEN);
    /* ...on disk too, so a reload or a restart keeps it */
    char file[64];
    snprintf (file, sizeof file, "%s.pub", c->name);
    char *path = sc_testdir_path (R.dir, file);
    int err = 0;
    sc_key_t *disk = sc_key_load_public (path, &err);
    free (path);
    assert_non_null (disk);
    assert_int_equal (sc_key_public_raw (disk, got), 0);
    assert_memory_equal (got, want, SC_PUB_LEN);
    sc_key_destroy (&disk);
}

/* An invitation, an enrolment with its code: the user is logged in, its
   key registered, the code burnt; it logs in again normally and chats;
   the same code does not work twice. */
static void
test_enrol_invited (void **state)
{
    (void) state;
    s_revoke_setup ();
    uint8_t code[SC_HS_CODE_LEN];
    s_invite ("dave", 600, code);
    char *invite = s_users_file ("dave.invite");
    assert_non_null (invite);
    /* only the hash is stored */
    char text[SC_HS_CODE_TEXT_LEN + 1], hex[2 * SC_HASH_LEN + 1];
    uint8_t hash[SC_HASH_LEN];
    sc_enrol_code_format (code, text);
    assert_int_equal (sc_enrol_code_hash (code, hash), 0);
    for (size_t i = 0; i < SC_HASH_LEN; i++)
        snprintf (hex + 2 * i, 3, "%02x", hash[i]);
    assert_non_null (strstr (invite, hex));
    assert_null (strstr (invite, text));
    free (invite);

    client_t *dave = s_newcomer ("dave");
    assert_int_equal (s_enrol (dave, "dave", code), SC_OP_WELCOME);
    s_expect_registered (dave);
    assert_null (s_users_file ("dave.invite"));
    client_t *alice = s_login ("alice");
    s_expect_users (alice, "dave", NULL);
    s_open_chat (alice, dave);

    /* the same code again, for another key: refused, nothing changes */
    client_t *thief = s_newcomer ("dave");
    assert_int_equal (s_enrol (thief, "dave", code), SC_ERR_ENROL_CODE);
    assert_string_equal (s_login_detail, "invalid or already used code");
    s_expect_registered (dave);
    /* dave logs in with the enrolled key as anyone does */
    client_t *again = s_newcomer ("dave");
    sc_key_destroy (&again->key);
    again->key = dave->key;
    uint32_t err = 0;
    assert_int_equal (s_login_as (again, "dave", &err), SC_OP_WELCOME);
    again->key = NULL;
    s_expect_error (dave, SC_ERR_REPLACED);
    s_client_destroy (&again);
    s_client_destroy (&thief);
    s_client_destroy (&alice);
    s_client_destroy (&dave);
    s_revoke_teardown ();
}

/* Each refusal: its error and detail, and nothing registered. */
static void
test_enrol_refused (void **state)
{
    (void) state;
    s_revoke_setup ();
    uint8_t code[SC_HS_CODE_LEN], wrong[SC_HS_CODE_LEN];
    s_invite ("dave", 600, code);
    memcpy (wrong, code, sizeof wrong);
    wrong[19] ^= 1;
    client_t *c = s_newcomer ("dave");
    assert_int_equal (s_enrol (c, "dave", wrong), SC_ERR_ENROL_CODE);
    assert_string_equal (s_login_detail, "invalid or already used code");
    /* dave's code is no good for another name */
    assert_int_equal (s_enrol (c, "erin", code), SC_ERR_ENROL_CODE);
    assert_null (s_users_file ("erin.pub"));
    /* expired */
    uint8_t old[SC_HS_CODE_LEN];
    s_invite ("frank", -1, old);
    assert_int_equal (s_enrol (c, "frank", old), SC_ERR_ENROL_CODE);
    assert_string_equal (s_login_detail, "this code has expired");
    assert_null (s_users_file ("frank.pub"));
    /* no code: registration is closed by default */
    assert_int_equal (s_enrol (c, "grace", NULL), SC_ERR_ENROL_CLOSED);
    assert_string_equal (s_login_detail,
                         "registration is closed: enrolment needs an invitation code");
    assert_null (s_users_file ("grace.pub"));
    /* a name registered after the invitation (the administrator copied
       a key in) is not taken over, even with a good code */
    s_users_put ("dave", "dave");
    char *before = s_users_file ("dave.pub");
    assert_int_equal (s_enrol (c, "dave", code), SC_ERR_ENROL_TAKEN);
    assert_string_equal (s_login_detail, "this name is already registered");
    char *after = s_users_file ("dave.pub");
    assert_string_equal (before, after);
    free (before);
    free (after);
    assert_null (sc_registry_key (R.registry, "dave"));    /* not until a reload */
    assert_int_equal (sc_broker_sessions (T.broker), 0);
    s_client_destroy (&c);
    s_revoke_teardown ();
}

/* Open registration: a free name for anyone, a taken one for nobody. */
static void
test_enrol_open (void **state)
{
    (void) state;
    s_revoke_setup ();
    sc_broker_opts_t opts;
    sc_broker_opts_default (&opts);
    opts.registration_open = true;
    sc_broker_destroy (&T.broker);
    T.broker = sc_broker_new (T.k.broker_key, T.k.cert, T.k.cert_len, R.registry, &opts,
                              s_capture, NULL);
    assert_non_null (T.broker);
    client_t *erin = s_newcomer ("erin");
    assert_int_equal (s_enrol (erin, "erin", NULL), SC_OP_WELCOME);
    s_expect_registered (erin);
    char *before = s_users_file ("alice.pub");
    client_t *mallory = s_newcomer ("alice");
    assert_int_equal (s_enrol (mallory, "alice", NULL), SC_ERR_ENROL_TAKEN);
    char *after = s_users_file ("alice.pub");
    assert_string_equal (before, after);
    free (before);
    free (after);
    client_t *alice = s_login ("alice");
    s_expect_users (alice, "erin", NULL);
    s_client_destroy (&alice);
    s_client_destroy (&mallory);
    s_client_destroy (&erin);
    s_revoke_teardown ();
}

/* ---- Enrolment on a node of a cluster, NATS failing -------------------------- */

static struct {
    char *dir;
    sc_testproc_t *nats;
    sc_cluster_t *cluster;
} K;

/* A nats-server with JetStream, and the broker of s_revoke_setup a node
   of a cluster on it (its buckets opened, not watched). */
static void
s_kv_setup (void)
{
    s_revoke_setup ();
    K.dir = sc_testdir_new ("nats");
    assert_non_null (K.dir);
    char *store = sc_testdir_path (K.dir, "js");
    char *log = sc_testdir_path (K.dir, "nats.log");
    const char *const argv[] = { "nats-server", "-a", "127.0.0.1", "-p", "-1", "-js", "-sd",
                                 store, NULL };
    K.nats = sc_testproc_new ("nats", argv, log);
    assert_non_null (K.nats);
    const char *prefix = "client connections on 127.0.0.1:";
    int port = -1;
    int64_t deadline = sc_testproc_now_ms () + sc_testproc_timeout (10000);
    while (port <= 0 && sc_testproc_now_ms () < deadline) {
        char *text = sc_testdir_slurp (log, NULL);
        const char *at = text && strstr (text, "Server is ready") ? strstr (text, prefix)
                                                                   : NULL;
        port = at ? atoi (at + strlen (prefix)) : -1;
        free (text);
        if (port <= 0)
            sc_testproc_sleep_ms (50);
    }
    assert_true (port > 0);
    char url[64], why[512] = "";
    snprintf (url, sizeof url, "nats://127.0.0.1:%d", port);
    sc_cluster_opts_t opts;
    sc_cluster_opts_default (&opts);
    opts.urls = url;
    opts.node = "b1";
    K.cluster = sc_cluster_new (&opts, why, sizeof why);
    if (!K.cluster || sc_cluster_kv_open (K.cluster, false, why, sizeof why))
        fail_msg ("cluster: %s", why);
    sc_broker_set_cluster (T.broker, K.cluster);
    free (store);
    free (log);
}

static void
s_kv_teardown (void)
{
    s_revoke_teardown ();
    sc_cluster_destroy (&K.cluster);
    sc_testproc_destroy (&K.nats);
    sc_testdir_remove (K.dir);
    free (K.dir);
    K.dir = NULL;
}

/* An invitation of the cluster for name, good for 10 minutes: its code,
   and the line in secchat-invites. */
static void
s_kv_invite (const char *name, uint8_t code[static SC_HS_CODE_LEN],
             char line[static SC_INVITE_LINE_MAX], size_t *len)
{
    int n = sc_invite_line (code, (int64_t) time (NULL) + 600, line);
    assert_true (n > 0);
    *len = (size_t) n;
    char why[512] = "";
    if (sc_cluster_kv_put (K.cluster, SC_CLUSTER_INVITES, name, (const uint8_t *) line, *len,
                           why, sizeof why))
        fail_msg ("put: %s", why);
}

/* name's entry in bucket holds exactly value (NULL: there is none). */
static void
s_kv_expect (const char *bucket, const char *name, const void *value, size_t len)
{
    uint8_t got[256];
    size_t got_len = 0;
    char why[512] = "";
    int rc = sc_cluster_kv_get (K.cluster, bucket, name, got, sizeof got, &got_len, NULL,
                                why, sizeof why);
    if (!value) {
        assert_int_equal (rc, SC_CLUSTER_KV_NONE);
        return;
    }
    if (rc)
        fail_msg ("%s in %s: %d %s", name, bucket, rc, why);
    assert_int_equal (got_len, len);
    assert_memory_equal (got, value, len);
}

/* What the worker does when NATS fails while it burns the code and
   registers the name (faults of sc_cluster_kv_fault, each as a timeout
   would be): the code is put back only when the name surely is not
   registered, and only over the "used" this enrolment wrote; a create
   applied although its answer was lost is an enrolment. */
static void
test_enrol_cluster_nats_failing (void **state)
{
    (void) state;
    s_kv_setup ();
    const char *down = "the cluster's registry cannot be reached, retry later";
    uint8_t code[SC_HS_CODE_LEN], pub[SC_PUB_LEN];
    char line[SC_INVITE_LINE_MAX];
    size_t len = 0;

    /* the invitation cannot be read again as it is burnt: it stays */
    s_kv_invite ("dave", code, line, &len);
    assert_int_equal (sc_cluster_kv_fault (K.cluster, "get", SC_CLUSTER_INVITES, 1, false), 0);
    client_t *dave = s_newcomer ("dave");
    assert_int_equal (s_enrol (dave, "dave", code), SC_ERR_INTERNAL);
    assert_string_equal (s_login_detail, down);
    s_kv_expect (SC_CLUSTER_INVITES, "dave", line, len);
    s_kv_expect (SC_CLUSTER_USERS, "dave", NULL, 0);

    /* "used" written, its answer lost, and the read after it fails:
       whether it was written is unknown, so nothing is put back */
    assert_int_equal (sc_cluster_kv_fault (K.cluster, "update", SC_CLUSTER_INVITES, 0, true), 0);
    assert_int_equal (sc_cluster_kv_fault (K.cluster, "get", SC_CLUSTER_INVITES, 2, false), 0);
    assert_int_equal (s_enrol (dave, "dave", code), SC_ERR_INTERNAL);
    assert_string_equal (s_login_detail, down);
    s_kv_expect (SC_CLUSTER_INVITES, "dave", SC_INVITE_USED, strlen (SC_INVITE_USED));
    s_kv_expect (SC_CLUSTER_USERS, "dave", NULL, 0);
    assert_false (sc_registry_taken (R.registry, "dave"));

    /* the user created, the answer lost: the read after finds this key,
       so the enrolment succeeds */
    client_t *erin = s_newcomer ("erin");
    s_kv_invite ("erin", code, line, &len);
    assert_int_equal (sc_cluster_kv_fault (K.cluster, "create", SC_CLUSTER_USERS, 0, true), 0);
    assert_int_equal (s_enrol (erin, "erin", code), SC_OP_WELCOME);
    assert_int_equal (sc_key_public_raw (erin->key, pub), 0);
    s_kv_expect (SC_CLUSTER_USERS, "erin", pub, SC_PUB_LEN);
    s_kv_expect (SC_CLUSTER_INVITES, "erin", SC_INVITE_USED, strlen (SC_INVITE_USED));
    assert_true (sc_registry_taken (R.registry, "erin"));

    /* the same, and the read after fails too: the outcome is unknown,
       the code stays burnt (never a registered name and a good code) */
    client_t *frank = s_newcomer ("frank");
    s_kv_invite ("frank", code, line, &len);
    assert_int_equal (sc_cluster_kv_fault (K.cluster, "create", SC_CLUSTER_USERS, 0, true), 0);
    assert_int_equal (sc_cluster_kv_fault (K.cluster, "get", SC_CLUSTER_USERS, 1, false), 0);
    assert_int_equal (s_enrol (frank, "frank", code), SC_ERR_INTERNAL);
    assert_string_equal (s_login_detail, down);
    s_kv_expect (SC_CLUSTER_INVITES, "frank", SC_INVITE_USED, strlen (SC_INVITE_USED));

    /* the create never made, the name absent: the code comes back, and
       serves */
    client_t *gina = s_newcomer ("gina");
    s_kv_invite ("gina", code, line, &len);
    assert_int_equal (sc_cluster_kv_fault (K.cluster, "create", SC_CLUSTER_USERS, 0, false), 0);
    assert_int_equal (s_enrol (gina, "gina", code), SC_ERR_INTERNAL);
    assert_string_equal (s_login_detail, down);
    s_kv_expect (SC_CLUSTER_INVITES, "gina", line, len);
    s_kv_expect (SC_CLUSTER_USERS, "gina", NULL, 0);
    assert_int_equal (s_enrol (gina, "gina", code), SC_OP_WELCOME);
    assert_int_equal (sc_key_public_raw (gina->key, pub), 0);
    s_kv_expect (SC_CLUSTER_USERS, "gina", pub, SC_PUB_LEN);

    /* an invitation of this node's folder: claimed by a rename, put
       back when the name surely is not registered, burnt otherwise */
    client_t *hana = s_newcomer ("hana");
    s_invite ("hana", 600, code);
    char *invite = s_users_file ("hana.invite");
    assert_non_null (invite);
    assert_int_equal (sc_cluster_kv_fault (K.cluster, "create", SC_CLUSTER_USERS, 0, false), 0);
    assert_int_equal (s_enrol (hana, "hana", code), SC_ERR_INTERNAL);
    assert_string_equal (s_login_detail, down);
    char *back = s_users_file ("hana.invite");
    assert_non_null (back);
    assert_string_equal (back, invite);
    free (back);
    assert_int_equal (sc_cluster_kv_fault (K.cluster, "create", SC_CLUSTER_USERS, 0, true), 0);
    assert_int_equal (sc_cluster_kv_fault (K.cluster, "get", SC_CLUSTER_USERS, 1, false), 0);
    assert_int_equal (s_enrol (hana, "hana", code), SC_ERR_INTERNAL);
    assert_null (s_users_file ("hana.invite"));
    /* and enrolled from the folder's invitation: in the bucket, the
       file gone, nothing left beside */
    client_t *ivan = s_newcomer ("ivan");
    s_invite ("ivan", 600, code);
    assert_int_equal (s_enrol (ivan, "ivan", code), SC_OP_WELCOME);
    assert_int_equal (sc_key_public_raw (ivan->key, pub), 0);
    s_kv_expect (SC_CLUSTER_USERS, "ivan", pub, SC_PUB_LEN);
    assert_null (s_users_file ("ivan.invite"));
    assert_null (s_users_file ("ivan.pub"));
    DIR *folder = opendir (R.dir);
    assert_non_null (folder);
    struct dirent *entry;
    while ((entry = readdir (folder)))
        if (entry->d_name[0] == '.' && strcmp (entry->d_name, ".")
            && strcmp (entry->d_name, ".."))
            fail_msg ("left in the users folder: %s", entry->d_name);
    closedir (folder);
    free (invite);

    s_client_destroy (&ivan);
    s_client_destroy (&hana);
    s_client_destroy (&gina);
    s_client_destroy (&frank);
    s_client_destroy (&erin);
    s_client_destroy (&dave);
    s_kv_teardown ();
}

/* Enrolments a minute per source, failed ones per name; a minute later
   they pass again. */
static void
test_enrol_rate (void **state)
{
    (void) state;
    s_revoke_setup ();
    sc_broker_opts_t opts;
    sc_broker_opts_default (&opts);
    opts.enrol_per_source = 4;
    opts.enrol_failed_per_name = 2;
    sc_broker_destroy (&T.broker);
    T.broker = sc_broker_new (T.k.broker_key, T.k.cert, T.k.cert_len, R.registry, &opts,
                              s_capture, NULL);
    assert_non_null (T.broker);
    sc_broker_tick (T.broker, T.now);
    uint8_t code[SC_HS_CODE_LEN], wrong[SC_HS_CODE_LEN] = { 1 };
    s_invite ("dave", 600, code);
    client_t *c = s_newcomer ("dave");
    assert_int_equal (s_enrol (c, "dave", wrong), SC_ERR_ENROL_CODE);
    assert_int_equal (s_enrol (c, "dave", wrong), SC_ERR_ENROL_CODE);
    /* two failures for dave: even the right code waits */
    assert_int_equal (s_enrol (c, "dave", code), SC_ERR_ENROL_RATE);
    assert_string_equal (s_login_detail, "too many failed enrolments for this name, retry later");
    assert_null (s_users_file ("dave.pub"));
    /* the 5th attempt from this source in the minute */
    assert_int_equal (s_enrol (c, "erin", wrong), SC_ERR_ENROL_CODE);
    assert_int_equal (s_enrol (c, "erin", wrong), SC_ERR_ENROL_RATE);
    assert_string_equal (s_login_detail, "too many enrolments from your address, retry later");
    T.now += 60001;
    sc_broker_tick (T.broker, T.now);
    assert_int_equal (s_enrol (c, "dave", code), SC_OP_WELCOME);
    s_expect_registered (c);
    s_client_destroy (&c);
    s_revoke_teardown ();
}

/* A refused enrolment is a failed login of its source: past
   --failed-logins-per-source a source's HELLO is refused. */
static void
test_enrol_failures_count (void **state)
{
    (void) state;
    s_revoke_setup ();
    sc_broker_opts_t opts;
    sc_broker_opts_default (&opts);
    opts.max_failed_per_source = 2;
    sc_broker_destroy (&T.broker);
    T.broker = sc_broker_new (T.k.broker_key, T.k.cert, T.k.cert_len, R.registry, &opts,
                              s_capture, NULL);
    assert_non_null (T.broker);
    uint8_t wrong[SC_HS_CODE_LEN] = { 7 };
    client_t *c = s_newcomer ("dave");
    assert_int_equal (s_enrol (c, "dave", wrong), SC_ERR_ENROL_CODE);
    assert_int_equal (s_enrol (c, "erin", NULL), SC_ERR_ENROL_CLOSED);
    sc_handshake_t *hs = sc_handshake_new_client (c->key, "dave", T.k.ca, "secbroker");
    assert_non_null (hs);
    uint8_t *frame;
    size_t len;
    sc_testbroker_hello (hs, &frame, &len);
    s_deliver (c, frame, len);
    free (frame);
    sc_handshake_destroy (&hs);
    s_expect_plain_error (c, SC_ERR_RATE, "too many failed logins from your address, retry later");
    s_client_destroy (&c);
    s_revoke_teardown ();
}

/* A FIFO (or anything but a file) named NAME.invite is no invitation,
   and reading it does not stop the broker. */
static void
test_invite_not_a_file (void **state)
{
    (void) state;
    char *dir = sc_testdir_new ("invite-fifo");
    assert_non_null (dir);
    char *path = sc_testdir_path (dir, "fifo.invite");
    assert_int_equal (mkfifo (path, 0600), 0);
    uint8_t code[SC_HS_CODE_LEN] = { 0 };
    assert_int_equal (sc_invite_check (dir, "fifo", code, (int64_t) time (NULL)),
                      SC_INVITE_NONE);
    free (path);
    sc_testdir_remove (dir);
    free (dir);
}

int
main (void)
{
    /* before anything of OpenSSL's is allocated */
    if (!CRYPTO_set_mem_functions (s_ossl_malloc, s_ossl_realloc, s_ossl_free)) {
        fprintf (stderr, "test_sc_broker: cannot hook OpenSSL's allocations\n");
        return 1;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown (test_login, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_login_unknown_user, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_login_wrong_key, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_first_message_must_be_hello, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_list, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_list_sorted_many, s_setup, s_teardown),
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
        cmocka_unit_test_setup_teardown (test_rate_limit_numbers, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_no_session_answers, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_handshake_answers, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_handshake_seq, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_session_envelope_answers, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_quit_and_shutdown, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_peer_queue_full, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_undelivered, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_stats, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_stats_chats, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_counter_exhausted_ends_session, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_seq_gap_ends_session, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_forged_seq_changes_nothing, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_revoke_removed_user, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_revoke_changed_key, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_revoke_job_in_flight, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_login_internal_failure, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_login_fails_at_every_allocation, s_setup,
                                         s_teardown),
        cmocka_unit_test_setup_teardown (test_new_identity, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_enrol_invited, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_enrol_refused, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_enrol_open, s_setup, s_teardown),
        cmocka_unit_test (test_invite_not_a_file),
        cmocka_unit_test_setup_teardown (test_cluster_users, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_enrol_cluster_nats_failing, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_enrol_rate, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_enrol_failures_count, s_setup, s_teardown),
    };
    return cmocka_run_group_tests (tests, s_group_setup, s_group_teardown);
}
