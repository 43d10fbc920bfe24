/*  fuzz_broker: the broker's protocol core (sc_broker_handle_frame, as
    secbroker calls it, with a forward function, and _tick) on a script of
    frames from eight connections, no sockets.

    Each input gets a fresh broker; alice (connection 0) and bob (1) log
    in for real first, so the script reaches every logged-in path: its
    SEAL records are sealed in the connection's session, so the broker
    opens them and dispatches their bodies, whatever the bytes. RAW
    records reach the envelope and handshake paths, REPLAY and TAMPER the
    channel's refusals, LOGIN the replacement of a session, FAIL the
    handling of clients that are gone or too slow, TICK the timeouts.
    sc_fuzz.h lists the selectors.

    What the broker sends is checked as it goes: every frame is a valid
    envelope; to a connection in its handshake a valid plaintext message;
    to a logged-in connection one that opens in its session and decodes.

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at https://mozilla.org/MPL/2.0/.
*/
#include <stdlib.h>
#include <string.h>

#include "sc_broker.h"
#include "sc_fuzz.h"
#include "sc_handshake.h"
#include "sc_wire.h"

/* Bounds, so that one input cannot run for long. */
#define S_ACTIONS_MAX   256     /* records per input */
#define S_LOGINS_MAX    6       /* beyond the two made for every input */

typedef struct {
    uint8_t rid[5];             /* 'r', connection, generation, 0, 0       */
    sc_channel_t *ch;           /* our side of the session, once logged in */
    uint8_t *last;              /* the last frame we sent, for REPLAY      */
    size_t last_len;
    int fail;                   /* what sends to this connection return    */
    sc_msg_t reply;             /* the last plaintext message we received  */
    bool replied;
} s_conn_t;

static const struct {
    sc_fuzz_user_t key;
    const char *claim;
} s_who[SC_FUZZ_B_CONNS] = {
    { SC_FUZZ_ALICE, "alice" }, { SC_FUZZ_BOB, "bob" }, { SC_FUZZ_CAROL, "carol" },
    { SC_FUZZ_ALICE, "alice" }, { SC_FUZZ_DAVE, "dave" }, { SC_FUZZ_ALICE, "bob" },
    { SC_FUZZ_ALICE, "eve" }, { SC_FUZZ_CAROL, "carol" }
};

static const sc_fuzz_keys_t *s_keys;
static struct {
    sc_broker_t *broker;
    s_conn_t conn[SC_FUZZ_B_CONNS];
    int64_t now;
    int logins;
} S;

/* ---- What the broker sends ----------------------------------------------- */

static s_conn_t *
s_conn_of (const uint8_t *rid, size_t rid_len)
{
    for (int i = 0; i < SC_FUZZ_B_CONNS; i++)
        if (rid_len == sizeof S.conn[i].rid && memcmp (rid, S.conn[i].rid, rid_len) == 0)
            return &S.conn[i];
    return NULL;        /* a connection we have since replaced */
}

static void
s_check_sealed (s_conn_t *c, const uint8_t *frame, size_t len)
{
    uint8_t opcode = 0, *body = NULL;
    size_t body_len = 0;
    if (sc_wire_open_raw (c->ch, frame, len, &opcode, &body, &body_len))
        sc_fuzz_fail ("a sealed frame from the broker does not open");
    sc_fuzz_record_body (opcode, body, body_len);
    sc_msg_t msg;
    if (sc_msg_decode (opcode, body, body_len, &msg))
        sc_fuzz_fail ("a sealed message from the broker does not decode");
    sc_msg_reset (&msg);
    free (body);
}

static int
s_capture (void *arg, const uint8_t *rid, size_t rid_len, uint8_t *frame, size_t len)
{
    (void) arg;
    sc_fuzz_record (SC_FUZZ_SEEN_ENVELOPE, frame, len);
    uint8_t opcode = 0;
    uint64_t seq = 0;
    if (len > SC_ENVELOPE_MAX || sc_wire_peek (frame, len, &opcode, &seq))
        sc_fuzz_fail ("the broker sent a frame that is not an envelope");
    s_conn_t *c = s_conn_of (rid, rid_len);
    int rc = c ? c->fail : 0;
    if (c && rc == 0) {
        if (seq == 0) {
            sc_msg_reset (&c->reply);
            if (sc_wire_open_plain (frame, len, &c->reply))
                sc_fuzz_fail ("a plaintext message from the broker does not decode");
            c->replied = true;
            uint8_t *body = NULL;
            size_t body_len = 0;
            if (sc_fuzz_recorder && sc_msg_encode (&c->reply, &body, &body_len) == 0)
                sc_fuzz_record_body (c->reply.opcode, body, body_len);
            free (body);
        }
        else
        if (c->ch)
            s_check_sealed (c, frame, len);
    }
    free (frame);
    return rc;
}

/* sc_broker_forward_fn: the frame being handled, as the core left it,
   goes through the same checks as any frame the broker sends. */
static uint8_t *s_current;
static size_t s_current_len;

static int
s_forward (void *arg, const uint8_t *rid, size_t rid_len)
{
    if (!s_current)
        sc_fuzz_fail ("a forward outside sc_broker_handle_frame");
    uint8_t *copy = malloc (s_current_len ? s_current_len : 1);
    if (!copy)
        return SC_BROKER_FULL;
    memcpy (copy, s_current, s_current_len);
    return s_capture (arg, rid, rid_len, copy, s_current_len);
}

/* ---- What the connections send ------------------------------------------- */

static void
s_deliver (s_conn_t *c, const uint8_t *frame, size_t len)
{
    uint8_t *copy = malloc (len ? len : 1);
    uint8_t *work = malloc (len ? len : 1);
    if (!copy || !work) {
        free (copy);
        free (work);
        return;
    }
    if (len) {
        memcpy (copy, frame, len);
        memcpy (work, frame, len);
    }
    free (c->last);
    c->last = copy;
    c->last_len = len;
    sc_fuzz_record (SC_FUZZ_SEEN_ENVELOPE, frame, len);
    /* as secbroker hands it over: bytes the core may rewrite and forward */
    s_current = work;
    s_current_len = len;
    (void) sc_broker_handle_frame (S.broker, c->rid, sizeof c->rid, work, len, S.now);
    s_current = NULL;
    free (work);
}

static void
s_deliver_msg (s_conn_t *c, const sc_msg_t *msg)
{
    uint8_t *frame = NULL;
    size_t len = 0;
    if (sc_wire_plain (msg, &frame, &len))
        sc_fuzz_fail ("cannot encode a handshake message");
    s_deliver (c, frame, len);
    free (frame);
}

/* A new connection: a new routing id, nothing of the old session. */
static void
s_reconnect (s_conn_t *c)
{
    sc_channel_destroy (&c->ch);
    c->rid[2]++;
    c->fail = 0;
    c->replied = false;
}

static sc_handshake_t *
s_hello (s_conn_t *c, int who)
{
    s_reconnect (c);
    sc_handshake_t *hs = sc_handshake_new_client (s_keys->user[s_who[who].key],
                                                  s_who[who].claim, s_keys->ca,
                                                  "secbroker");
    if (!hs)
        return NULL;
    sc_msg_t hello;
    sc_msg_init (&hello, SC_OP_HELLO);
    if (sc_handshake_client_hello (hs, &hello.suite, hello.nonce, hello.eph))
        sc_fuzz_fail ("client_hello failed");
    s_deliver_msg (c, &hello);
    sc_msg_reset (&hello);
    return hs;
}

/* Log connection `who` in for real: HELLO, AUTH_BROKER, AUTH_CLIENT. The
   broker may refuse (a claim it does not believe, too many handshakes). */
static void
s_login (int who)
{
    s_conn_t *c = &S.conn[who];
    sc_handshake_t *hs = s_hello (c, who);
    if (!hs)
        return;
    uint8_t box[SC_HS_BOX_MAX];
    size_t box_len = 0;
    sc_session_keys_t keys;
    if (c->replied && c->reply.opcode == SC_OP_AUTH_BROKER
        && sc_handshake_client_auth (hs, c->reply.nonce, c->reply.eph, c->reply.data,
                                     c->reply.data_len, c->reply.sig, c->reply.mac,
                                     box, &box_len, NULL) == 0
        && sc_handshake_keys (hs, &keys) == 0) {
        /* The channel is ready before WELCOME comes, so that it is checked. */
        c->ch = sc_channel_new (&keys);
        sc_wipe (&keys, sizeof keys);
        sc_msg_t auth;
        sc_msg_init (&auth, SC_OP_AUTH_CLIENT);
        if (sc_msg_set_data (&auth, box, box_len))
            sc_fuzz_fail ("cannot set the box");
        c->replied = false;
        s_deliver_msg (c, &auth);
        sc_msg_reset (&auth);
        if (c->replied)             /* a plaintext refusal: no session */
            sc_channel_destroy (&c->ch);
    }
    sc_handshake_destroy (&hs);
}

/* SEAL and TAMPER: opcode and body sealed in the session, or a plain
   envelope before there is one. */
static void
s_seal (s_conn_t *c, const uint8_t *payload, size_t len, bool tamper)
{
    if (len < 1)
        return;
    uint8_t *frame = NULL;
    size_t flen = 0;
    int rc = c->ch ? sc_wire_seal_raw (c->ch, payload[0], payload + 1, len - 1, &frame, &flen)
                   : sc_envelope_encode (payload[0], 0, payload + 1, len - 1, &frame, &flen);
    if (rc)
        return;         /* an opcode the envelope cannot carry */
    sc_fuzz_record_body (payload[0], payload + 1, len - 1);
    if (tamper)
        frame[flen - 1] ^= 0x01;
    s_deliver (c, frame, flen);
    free (frame);
}

static void
s_action (uint8_t sel, const uint8_t *payload, size_t len)
{
    int who = sel & 0x07;
    s_conn_t *c = &S.conn[who];
    switch ((sc_fuzz_b_action_t) ((sel >> 3) & 0x07)) {
        case SC_FUZZ_B_SEAL:
            s_seal (c, payload, len, false);
            break;
        case SC_FUZZ_B_RAW:
            s_deliver (c, payload, len);
            break;
        case SC_FUZZ_B_REPLAY:
            if (c->last) {
                uint8_t *frame = c->last;
                size_t flen = c->last_len;
                c->last = NULL;
                s_deliver (c, frame, flen);
                free (frame);
            }
            break;
        case SC_FUZZ_B_TICK:
            S.now += sc_fuzz_u16 (payload, len);
            sc_broker_tick (S.broker, S.now);
            break;
        case SC_FUZZ_B_LOGIN:
            if (S.logins++ < S_LOGINS_MAX)
                s_login (who);
            break;
        case SC_FUZZ_B_FAIL: {
            static const int codes[] = { 0, SC_BROKER_GONE, SC_BROKER_FULL };
            c->fail = codes[(len ? payload[0] : 0) % 3];
            break;
        }
        case SC_FUZZ_B_HELLO:
            if (S.logins++ < S_LOGINS_MAX) {
                sc_handshake_t *hs = s_hello (c, who);
                sc_handshake_destroy (&hs);
            }
            break;
        case SC_FUZZ_B_TAMPER:
            s_seal (c, payload, len, true);
            break;
    }
}

/* ---- The target ---------------------------------------------------------------- */

int
sc_fuzz_broker_init (void)
{
    s_keys = sc_fuzz_keys ();
    return s_keys ? 0 : -1;
}

int
sc_fuzz_broker (const uint8_t *data, size_t size)
{
    if (!s_keys && sc_fuzz_broker_init ())
        sc_fuzz_fail ("no key set");
    memset (&S, 0, sizeof S);
    S.now = 1000000;
    for (int i = 0; i < SC_FUZZ_B_CONNS; i++) {
        S.conn[i].rid[0] = 'r';
        S.conn[i].rid[1] = (uint8_t) i;
    }
    /* Small limits, so that a short script reaches them. */
    sc_broker_opts_t opts;
    sc_broker_opts_default (&opts);
    opts.max_handshakes = 3;
    opts.rate_burst = 4;
    opts.rate_per_s = 2;
    S.broker = sc_broker_new (s_keys->broker_key, s_keys->cert, s_keys->cert_len,
                              s_keys->registry, &opts, s_capture, NULL);
    if (!S.broker)
        sc_fuzz_fail ("sc_broker_new");
    sc_broker_set_forward (S.broker, s_forward);
    s_login (SC_FUZZ_ALICE);
    s_login (SC_FUZZ_BOB);
    if (sc_broker_sessions (S.broker) != 2)
        sc_fuzz_fail ("alice and bob cannot log in");

    sc_fuzz_reader_t reader = { data, size, 0 };
    uint8_t sel;
    const uint8_t *payload;
    size_t len;
    for (int n = 0; n < S_ACTIONS_MAX && sc_fuzz_next (&reader, &sel, &payload, &len); n++)
        s_action (sel, payload, len);

    sc_broker_shutdown (S.broker);
    sc_broker_destroy (&S.broker);
    for (int i = 0; i < SC_FUZZ_B_CONNS; i++) {
        sc_channel_destroy (&S.conn[i].ch);
        sc_msg_reset (&S.conn[i].reply);
        free (S.conn[i].last);
    }
    return 0;
}

#ifndef SC_FUZZ_NO_MAIN
int
LLVMFuzzerInitialize (int *argc, char ***argv)
{
    (void) argc;
    (void) argv;
    if (sc_fuzz_broker_init ())
        abort ();
    return 0;
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
    return sc_fuzz_broker (data, size);
}
#endif
