/*  fuzz_client: the client's protocol core (sc_client_recv, _command,
    _tick) on a script, no sockets.

    Each input gets a fresh client core for alice, logged in for real to
    a fake broker built from crypto/ and codec/. The fake broker answers
    the handshake and PING, and plays alice's chat peer (bob, or carol)
    with a real sc_e2e: it answers her key agreement and seals what the
    script gives as bob's E2E plaintexts. Everything else the broker
    says comes from the script: SEALED records are sealed in alice's
    session, so the core opens them and dispatches their bodies, whatever
    the bytes. sc_fuzz.h lists the selectors.

    Checked as it goes: every frame the client sends is a valid envelope
    and, in the session, opens and decodes; every event formats to one
    batch line (docs/CLIENT.md) with no newline or NUL inside.

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at https://mozilla.org/MPL/2.0/.
*/
#include <stdlib.h>
#include <string.h>

#include "sc_client.h"
#include "sc_e2e.h"
#include "sc_fuzz.h"
#include "sc_handshake.h"
#include "sc_wire.h"

#define S_HEARTBEAT     1000    /* what the fake broker announces         */
#define S_ACTIONS_MAX   256     /* records per input: keeps a run short */
#define S_LOGINS_MAX    4       /* reconnects per input                   */
#define S_QUEUE_MAX     64      /* frames the client may send at once     */

typedef struct {
    uint8_t *data;
    size_t len;
} s_frame_t;

static const sc_fuzz_keys_t *s_keys;
static struct {
    sc_client_t *client;
    int64_t now;
    int logins;
    /* the fake broker's side of alice's connection */
    sc_handshake_t *hs;
    sc_channel_t *ch;
    s_frame_t queue[S_QUEUE_MAX];       /* alice -> broker, not yet handled */
    size_t queued;
    /* the chat peer */
    sc_e2e_t *peer;
    sc_fuzz_user_t peer_user;
    uint8_t *last_message;              /* bob's last MESSAGE body (encoded) */
    size_t last_message_len;
} C;

/* ---- The client's callbacks --------------------------------------------------- */

static int
s_io_send (void *arg, const uint8_t *frame, size_t len)
{
    (void) arg;
    uint8_t opcode = 0;
    uint64_t seq = 0;
    if (len == 0 || len > SC_ENVELOPE_MAX || sc_wire_peek (frame, len, &opcode, &seq))
        sc_fuzz_fail ("the client sent a frame that is not an envelope");
    sc_fuzz_record (SC_FUZZ_SEEN_ENVELOPE, frame, len);
    if (C.queued == S_QUEUE_MAX)
        return -1;              /* the connection is stuck: as a full socket */
    s_frame_t *f = &C.queue[C.queued];
    f->data = malloc (len);
    if (!f->data)
        return -1;
    memcpy (f->data, frame, len);
    f->len = len;
    C.queued++;
    return 0;
}

static void
s_io_event (void *arg, const sc_event_t *ev)
{
    (void) arg;
    char line[SC_EVENT_LINE_MAX];
    int n = sc_event_format_batch (ev, line, sizeof line);
    if (n < 0 || (size_t) n >= sizeof line)
        sc_fuzz_fail ("an event does not fit SC_EVENT_LINE_MAX");
    if (n > 0 && (line[n - 1] != '\n' || memchr (line, '\n', (size_t) n - 1)
                  || strlen (line) != (size_t) n))
        sc_fuzz_fail ("an event's batch line is not one line");
}

/* ---- The fake broker ------------------------------------------------------------ */

static void
s_to_client (const uint8_t *frame, size_t len)
{
    sc_fuzz_record (SC_FUZZ_SEEN_ENVELOPE, frame, len);
    sc_client_recv (C.client, frame, len, C.now);
}

static void
s_send_plain (const sc_msg_t *msg)
{
    uint8_t *frame = NULL;
    size_t len = 0;
    if (sc_wire_plain (msg, &frame, &len))
        sc_fuzz_fail ("cannot encode a plaintext message");
    s_to_client (frame, len);
    free (frame);
}

/* Opcode and body sealed in alice's session. */
static void
s_send_raw (uint8_t opcode, const uint8_t *body, size_t len)
{
    if (!C.ch)
        return;
    uint8_t *frame = NULL;
    size_t flen = 0;
    if (sc_wire_seal_raw (C.ch, opcode, body, len, &frame, &flen))
        return;                 /* an opcode the envelope cannot carry */
    sc_fuzz_record_body (opcode, body, len);
    s_to_client (frame, flen);
    free (frame);
}

static void
s_send (const sc_msg_t *msg)
{
    uint8_t *body = NULL;
    size_t len = 0;
    if (sc_msg_encode (msg, &body, &len))
        return;
    s_send_raw (msg->opcode, body, len);
    free (body);
}

static void
s_send_named (uint8_t opcode, const char *name, uint32_t code)
{
    sc_msg_t msg;
    sc_msg_init (&msg, opcode);
    msg.code = code;
    if (sc_msg_set_name (&msg, name) == 0)
        s_send (&msg);
    sc_msg_reset (&msg);
}

static void
s_on_hello (const sc_msg_t *msg)
{
    sc_handshake_destroy (&C.hs);
    sc_channel_destroy (&C.ch);
    C.hs = sc_handshake_new_broker (s_keys->broker_key, s_keys->cert, s_keys->cert_len);
    if (!C.hs)
        sc_fuzz_fail ("sc_handshake_new_broker");
    sc_msg_t reply;
    sc_msg_init (&reply, SC_OP_AUTH_BROKER);
    if (sc_handshake_broker_hello (C.hs, msg->suite, msg->nonce, msg->eph, reply.nonce,
                                   reply.eph, reply.sig, reply.mac)
        || sc_msg_set_data (&reply, s_keys->cert, s_keys->cert_len))
        sc_fuzz_fail ("the client's HELLO is refused");
    s_send_plain (&reply);
    sc_msg_reset (&reply);
}

static void
s_on_auth_client (const sc_msg_t *msg)
{
    char name[SC_HS_NAME_MAX + 1];
    const sc_key_t *key = NULL;
    sc_session_keys_t keys;
    if (!C.hs || sc_handshake_broker_open (C.hs, msg->data, msg->data_len, name)
        || !(key = sc_registry_key (s_keys->registry, name))
        || sc_handshake_broker_verify (C.hs, key) || sc_handshake_keys (C.hs, &keys))
        sc_fuzz_fail ("the client's AUTH_CLIENT is refused");
    sc_handshake_destroy (&C.hs);
    C.ch = sc_channel_new (&keys);
    sc_wipe (&keys, sizeof keys);
    if (!C.ch)
        sc_fuzz_fail ("sc_channel_new");
    sc_msg_t welcome;
    sc_msg_init (&welcome, SC_OP_WELCOME);
    welcome.code = S_HEARTBEAT;
    if (sc_msg_set_name (&welcome, name))
        sc_fuzz_fail ("sc_msg_set_name");
    s_send (&welcome);
    sc_msg_reset (&welcome);
}

/* The peer's side of the key agreement, and the messages it receives. */
static void
s_peer_hears (const sc_msg_t *msg)
{
    if (!C.peer)
        return;
    sc_msg_t out;
    switch (msg->opcode) {
        case SC_OP_CC_SESSION:          /* alice initiates: reply */
            sc_msg_init (&out, SC_OP_CC_REPLY);
            if (sc_e2e_reply (C.peer, msg->suite, msg->nonce, msg->eph, out.nonce,
                              out.eph, out.sig, out.mac) == 0)
                s_send (&out);
            sc_msg_reset (&out);
            break;
        case SC_OP_CC_REPLY:            /* bob initiated: finish */
            sc_msg_init (&out, SC_OP_CC_FINISH);
            if (sc_e2e_finish (C.peer, msg->nonce, msg->eph, msg->sig, msg->mac,
                               out.sig, out.mac) == 0)
                s_send (&out);
            sc_msg_reset (&out);
            break;
        case SC_OP_CC_FINISH:
            if (sc_e2e_confirm (C.peer, msg->sig, msg->mac))
                sc_e2e_destroy (&C.peer);   /* bob does not trust her: gone */
            break;
        case SC_OP_MESSAGE: {
            uint8_t *pt = malloc (msg->data_len);
            uint64_t lost = 0;
            if (pt && msg->data_len > SC_TAG_LEN
                && sc_e2e_open (C.peer, msg->counter, msg->data, msg->data_len, pt, &lost) == 0)
                sc_fuzz_record_body (SC_FUZZ_E2E_PLAIN, pt, msg->data_len - SC_TAG_LEN);
            free (pt);
            break;
        }
        default:
            break;
    }
}

/* One frame from alice. */
static void
s_broker_hears (const s_frame_t *f)
{
    uint8_t opcode = 0;
    uint64_t seq = 0;
    sc_msg_t msg;
    if (sc_wire_peek (f->data, f->len, &opcode, &seq))
        sc_fuzz_fail ("not an envelope");
    if (seq == 0) {
        if (sc_wire_open_plain (f->data, f->len, &msg))
            sc_fuzz_fail ("the client's plaintext message does not decode");
        uint8_t *body = NULL;
        size_t len = 0;
        if (sc_fuzz_recorder && sc_msg_encode (&msg, &body, &len) == 0)
            sc_fuzz_record_body (msg.opcode, body, len);
        free (body);
        if (msg.opcode == SC_OP_HELLO)
            s_on_hello (&msg);
        else
        if (msg.opcode == SC_OP_AUTH_CLIENT)
            s_on_auth_client (&msg);
        else
            sc_fuzz_fail ("the client sent a plaintext message after the handshake");
        sc_msg_reset (&msg);
        return;
    }
    if (!C.ch)
        sc_fuzz_fail ("the client sealed a message with no session");
    uint8_t *body = NULL;
    size_t len = 0;
    if (sc_wire_open_raw (C.ch, f->data, f->len, &opcode, &body, &len))
        sc_fuzz_fail ("the client's sealed frame does not open");
    sc_fuzz_record_body (opcode, body, len);
    if (sc_msg_decode (opcode, body, len, &msg))
        sc_fuzz_fail ("the client's sealed message does not decode");
    free (body);
    if (msg.opcode == SC_OP_PING) {
        sc_msg_t pong;
        sc_msg_init (&pong, SC_OP_PONG);
        s_send (&pong);
    }
    else
        s_peer_hears (&msg);
    sc_msg_reset (&msg);
}

/* Handle what alice sent, and what she sends in answer, until quiet. */
static void
s_pump (void)
{
    for (int rounds = 0; rounds < 64 && C.queued > 0; rounds++) {
        s_frame_t f = C.queue[0];
        C.queued--;
        memmove (C.queue, C.queue + 1, C.queued * sizeof C.queue[0]);
        s_broker_hears (&f);
        free (f.data);
    }
}

static void
s_drop_queue (void)
{
    for (size_t i = 0; i < C.queued; i++)
        free (C.queue[i].data);
    C.queued = 0;
}

/* ---- Script actions ------------------------------------------------------------------ */

static void
s_login (void)
{
    sc_handshake_destroy (&C.hs);
    sc_channel_destroy (&C.ch);
    s_drop_queue ();
    if (sc_client_start (C.client, C.now) == 0)
        s_pump ();
}

static void
s_command (const char *line)
{
    sc_client_command (C.client, line, strlen (line), C.now);
    s_pump ();
}

/* A chat opens with the peer, for real: the request, its answer, CHAT. */
static void
s_chat (uint8_t flags)
{
    bool initiator = flags & SC_FUZZ_CHAT_INITIATOR;
    C.peer_user = flags & SC_FUZZ_CHAT_CAROL ? SC_FUZZ_CAROL : SC_FUZZ_BOB;
    const char *peer = sc_fuzz_user_name[C.peer_user];
    sc_e2e_destroy (&C.peer);
    C.peer = sc_e2e_new (s_keys->user[C.peer_user], peer, s_keys->pub[SC_FUZZ_ALICE],
                         "alice", !initiator);
    if (!C.peer)
        sc_fuzz_fail ("sc_e2e_new");
    if (!(flags & SC_FUZZ_CHAT_NO_ASK)) {
        if (initiator) {
            char line[64];
            strcpy (line, "/talk ");
            strcat (line, peer);
            s_command (line);
        }
        else {
            s_send_named (SC_OP_RTT, peer, 0);
            s_command ("/accept");
        }
    }
    sc_msg_t chat;
    sc_msg_init (&chat, SC_OP_CHAT);
    chat.flag = initiator;
    if (sc_msg_set_name (&chat, peer))
        sc_fuzz_fail ("sc_msg_set_name");
    memcpy (chat.key, s_keys->pub[flags & SC_FUZZ_CHAT_WRONG_KEY ? SC_FUZZ_DAVE : C.peer_user],
            SC_PUB_LEN);
    s_send (&chat);
    sc_msg_reset (&chat);
    s_pump ();
    if (!initiator) {                   /* the peer starts the key agreement */
        sc_msg_t start;
        sc_msg_init (&start, SC_OP_CC_SESSION);
        if (sc_e2e_start (C.peer, &start.suite, start.nonce, start.eph) == 0)
            s_send (&start);
        sc_msg_reset (&start);
        s_pump ();
    }
}

/* The peer seals an E2E plaintext: sent, or lost on the way. */
static void
s_peer_message (const uint8_t *pt, size_t len, bool deliver)
{
    if (!C.peer || !sc_e2e_ready (C.peer) || len + SC_TAG_LEN > SC_BOX_MAX
        || sc_e2e_sent (C.peer) + 1 >= SC_E2E_LIMIT)
        return;
    sc_msg_t msg;
    sc_msg_init (&msg, SC_OP_MESSAGE);
    msg.data = malloc (len + SC_TAG_LEN);
    if (!msg.data)
        return;
    msg.data_len = len + SC_TAG_LEN;
    sc_fuzz_record_body (SC_FUZZ_E2E_PLAIN, pt, len);
    uint8_t *body = NULL;
    size_t body_len = 0;
    if (sc_e2e_seal (C.peer, pt, len, &msg.counter, msg.data) == 0
        && sc_msg_encode (&msg, &body, &body_len) == 0) {
        free (C.last_message);
        C.last_message = body;
        C.last_message_len = body_len;
        if (deliver)
            s_send_raw (SC_OP_MESSAGE, body, body_len);
    }
    sc_msg_reset (&msg);
    s_pump ();
}

static void
s_action (uint8_t sel, const uint8_t *payload, size_t len)
{
    unsigned action = sel & 0x0f;
    switch (action > SC_FUZZ_C_RECONNECT ? SC_FUZZ_C_SEALED : (sc_fuzz_c_action_t) action) {
        case SC_FUZZ_C_SEALED:
            if (len >= 1)
                s_send_raw (payload[0], payload + 1, len - 1);
            break;
        case SC_FUZZ_C_RAW:
            s_to_client (payload, len);
            break;
        case SC_FUZZ_C_COMMAND:
            sc_client_command (C.client, (const char *) payload, len, C.now);
            break;
        case SC_FUZZ_C_TICK:
            C.now += sc_fuzz_u16 (payload, len);
            sc_client_tick (C.client, C.now);
            if (sc_client_timeout (C.client, C.now) < -1)
                sc_fuzz_fail ("sc_client_timeout below -1");
            break;
        case SC_FUZZ_C_CHAT:
            s_chat (len ? payload[0] : 0);
            break;
        case SC_FUZZ_C_PEER_MSG:
            s_peer_message (payload, len, true);
            break;
        case SC_FUZZ_C_PEER_LOSE:
            if (len && (payload[0] & 1)) {
                if (C.last_message)
                    s_send_raw (SC_OP_MESSAGE, C.last_message, C.last_message_len);
            }
            else
                for (unsigned n = 1 + 8u * (len ? payload[0] >> 1 : 0); n > 0; n--)
                    s_peer_message (len ? payload + 1 : payload, len ? len - 1 : 0, false);
            break;
        case SC_FUZZ_C_PLAIN:
            if (len >= 1) {
                uint8_t *frame = NULL;
                size_t flen = 0;
                if (sc_envelope_encode (payload[0], 0, payload + 1, len - 1, &frame, &flen) == 0)
                    s_to_client (frame, flen);
                free (frame);
            }
            break;
        case SC_FUZZ_C_RECONNECT:
            if (C.logins++ < S_LOGINS_MAX) {
                sc_client_reset (C.client);
                sc_e2e_destroy (&C.peer);
                s_login ();
            }
            break;
    }
    s_pump ();
}

/* ---- The target ------------------------------------------------------------------------ */

int
sc_fuzz_client_init (void)
{
    s_keys = sc_fuzz_keys ();
    return s_keys ? 0 : -1;
}

int
sc_fuzz_client (const uint8_t *data, size_t size)
{
    if (!s_keys && sc_fuzz_client_init ())
        sc_fuzz_fail ("no key set");
    memset (&C, 0, sizeof C);
    C.now = 1000000;
    sc_client_io_t io = { .arg = NULL, .send = s_io_send, .event = s_io_event };
    C.client = sc_client_new (s_keys->user[SC_FUZZ_ALICE], "alice", s_keys->ca,
                              "secbroker", NULL, &io);
    if (!C.client)
        sc_fuzz_fail ("sc_client_new");
    s_login ();
    if (sc_client_state (C.client) != SC_CLIENT_IDLE)
        sc_fuzz_fail ("alice cannot log in");

    sc_fuzz_reader_t reader = { data, size, 0 };
    uint8_t sel;
    const uint8_t *payload;
    size_t len;
    for (int n = 0; n < S_ACTIONS_MAX && sc_fuzz_next (&reader, &sel, &payload, &len); n++)
        s_action (sel, payload, len);

    sc_client_destroy (&C.client);
    sc_handshake_destroy (&C.hs);
    sc_channel_destroy (&C.ch);
    sc_e2e_destroy (&C.peer);
    s_drop_queue ();
    free (C.last_message);
    return 0;
}

#ifndef SC_FUZZ_NO_MAIN
int
LLVMFuzzerInitialize (int *argc, char ***argv)
{
    (void) argc;
    (void) argv;
    if (sc_fuzz_client_init ())
        abort ();
    return 0;
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
    return sc_fuzz_client (data, size);
}
#endif
