/*  test_sc_client: the client's protocol core, driven without sockets.

    A fake broker built from crypto/ and codec/ (the broker side of the
    login handshake, session channels, a few lines of routing) sits
    between one or more client cores: their frames go to it, its answers
    come back, and the tests read the batch lines of docs/CLIENT.md that
    the cores' events format to. Hooks in the fake broker drop, replay or
    forge what it relays, to see the client refuse it.

    The CA and the broker certificate come from keys/secchat-keys, run
    into a temporary directory (tests run from the repository root).

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at https://mozilla.org/MPL/2.0/.
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "sc_client.h"
#include "sc_handshake.h"
#include "sc_key.h"
#include "sc_msg.h"
#include "sc_pins.h"
#include "sc_wire.h"

#define HB          1000        /* heartbeat the fake broker announces */
#define MAX_CONNS   6
#define MAX_USERS   4
#define MAX_LINES   256

/* ---- Fixture: keys made once for the whole program -------------------- */

static char g_dir[64];          /* CA and broker certificate              */
static char g_other[64];        /* another CA, for the wrong-CA test      */
static sc_ca_t *g_ca, *g_other_ca;
static sc_key_t *g_broker_key;
static uint8_t *g_cert;
static size_t g_cert_len;
static int64_t g_now = 1000000;

/* ---- The fake broker ----------------------------------------------------- */

typedef struct {
    uint8_t *data;
    size_t len;
} frame_t;

typedef struct fake_broker_t fake_broker_t;

typedef struct {
    fake_broker_t *broker;
    sc_client_t *client;
    sc_key_t *key;
    /* broker side of this connection */
    sc_handshake_t *hs;
    sc_channel_t *ch;
    char name[SC_NAME_MAX + 1];     /* logged in as, "" before           */
    int peer;                       /* chat peer's connection, or -1     */
    bool quit;
    int pings;
    /* client -> broker frames not yet handled */
    frame_t out[512];
    size_t out_head, out_tail;
    /* the client's events as batch lines (others as "NOTICE ...") */
    char *lines[MAX_LINES];
    size_t nlines, read;
    /* SC_EV_SENT (no batch line): how many, the last one's number and
       text, and "PEER TEXT" of the last 8 */
    uint64_t sent, sent_last;
    char sent_text[64];
    char sent_lines[8][64];
    size_t nsent;
} conn_t;

struct fake_broker_t {
    struct { char name[SC_NAME_MAX + 1]; uint8_t pub[SC_PUB_LEN]; } users[MAX_USERS];
    size_t nusers;
    conn_t conns[MAX_CONNS];
    size_t nconns;
    /* hooks */
    int drop_messages;              /* relayed MESSAGEs to drop          */
    int replay_messages;            /* relayed MESSAGEs to send twice    */
    int flip_messages;              /* relayed MESSAGEs to corrupt       */
    uint64_t skip_ahead;            /* added to the next MESSAGE's counter */
    int messages;                   /* MESSAGEs relayed (or dropped)     */
    bool busy;                      /* answer RTT with REFUSE busy       */
    const char *welcome_name;       /* WELCOME another name              */
    bool deaf;                      /* handle nothing                    */
    /* enrolment: the one code it takes, and what came */
    uint8_t enrol_code[SC_HS_CODE_LEN];
    int enrols, logins;
};

static void
record (conn_t *conn, const char *line)
{
    assert_true (conn->nlines < MAX_LINES);
    conn->lines[conn->nlines] = strdup (line);
    assert_non_null (conn->lines[conn->nlines]);
    conn->nlines++;
}

static void
io_event (void *arg, const sc_event_t *ev)
{
    conn_t *conn = arg;
    if (ev->type == SC_EV_SENT) {
        assert_non_null (ev->text);
        conn->sent++;
        conn->sent_last = ev->number;
        snprintf (conn->sent_text, sizeof conn->sent_text, "%s", ev->text);
        snprintf (conn->sent_lines[conn->nsent++ % 8], sizeof conn->sent_lines[0], "%s %s",
                  ev->name, ev->text);
        return;
    }
    char line[SC_EVENT_LINE_MAX];
    int n = sc_event_format_batch (ev, line, sizeof line);
    assert_true (n >= 0);
    if (n > 0) {
        assert_int_equal (line[n - 1], '\n');
        assert_null (memchr (line, '\n', (size_t) n - 1));
        line[n - 1] = 0;
        record (conn, line);
        return;
    }
    const char *kind = ev->type == SC_EV_LOGIN_FAILED ? "LOGIN_FAILED"
                     : ev->type == SC_EV_HELP ? "HELP" : "NOTICE";
    snprintf (line, sizeof line, "%s %s", kind, ev->text ? ev->text : "");
    record (conn, line);
}

static int
io_send (void *arg, const uint8_t *frame, size_t len)
{
    conn_t *conn = arg;
    assert_true (len > 0 && len <= SC_ENVELOPE_MAX);
    assert_true (conn->out_tail < sizeof conn->out / sizeof conn->out[0]);
    frame_t *f = &conn->out[conn->out_tail++];
    f->data = malloc (len);
    assert_non_null (f->data);
    memcpy (f->data, frame, len);
    f->len = len;
    return 0;
}

/* The next line the client printed (NULL when none). */
static const char *
next_line (conn_t *conn)
{
    return conn->read < conn->nlines ? conn->lines[conn->read++] : NULL;
}

/* Check the next line: exact, or a prefix when want ends with '*'. */
static void
expect_line (conn_t *conn, const char *want)
{
    const char *got = next_line (conn);
    if (!got) {
        print_error ("%s: expected \"%s\", got nothing\n", conn->name, want);
        fail ();
    }
    size_t len = strlen (want);
    bool ok = want[len - 1] == '*' ? strncmp (got, want, len - 1) == 0
                                   : strcmp (got, want) == 0;
    if (!ok) {
        print_error ("%s: expected \"%s\", got \"%.200s\"\n", conn->name, want, got);
        fail ();
    }
}

static void
expect_nothing (conn_t *conn)
{
    const char *got = next_line (conn);
    if (got) {
        print_error ("%s: expected nothing, got \"%.200s\"\n", conn->name, got);
        fail ();
    }
}

static void
skip_lines (conn_t *conn)
{
    conn->read = conn->nlines;
}

static void
free_frame (frame_t *f)
{
    free (f->data);
    f->data = NULL;
}

static void
drop_frames (conn_t *conn)
{
    while (conn->out_head < conn->out_tail)
        free_frame (&conn->out[conn->out_head++]);
    conn->out_head = conn->out_tail = 0;
}

/* Broker -> client, plaintext (handshake) */
static void
deliver_plain (conn_t *conn, sc_msg_t *msg)
{
    uint8_t *frame = NULL;
    size_t len = 0;
    assert_int_equal (sc_wire_plain (msg, &frame, &len), 0);
    sc_client_recv (conn->client, frame, len, g_now);
    free (frame);
}

/* Broker -> client, sealed in the session */
static void
deliver_raw (conn_t *conn, uint8_t opcode, const uint8_t *body, size_t body_len)
{
    uint8_t *frame = NULL;
    size_t len = 0;
    assert_int_equal (sc_wire_seal_raw (conn->ch, opcode, body, body_len, &frame, &len), 0);
    sc_client_recv (conn->client, frame, len, g_now);
    free (frame);
}

static void
deliver (conn_t *conn, const sc_msg_t *msg)
{
    uint8_t *body = NULL;
    size_t len = 0;
    assert_int_equal (sc_msg_encode (msg, &body, &len), 0);
    deliver_raw (conn, msg->opcode, body, len);
    free (body);
}

static void
deliver_named (conn_t *conn, uint8_t opcode, const char *name, uint32_t code)
{
    sc_msg_t msg;
    sc_msg_init (&msg, opcode);
    assert_int_equal (sc_msg_set_name (&msg, name), 0);
    msg.code = code;
    deliver (conn, &msg);
    sc_msg_reset (&msg);
}

static void
deliver_error (conn_t *conn, uint32_t code, const char *detail, bool plain)
{
    sc_msg_t msg;
    sc_msg_init (&msg, SC_OP_ERROR);
    msg.code = code;
    assert_int_equal (sc_msg_set_text (&msg, detail), 0);
    if (plain)
        deliver_plain (conn, &msg);
    else
        deliver (conn, &msg);
    sc_msg_reset (&msg);
}

static conn_t *
find_conn (fake_broker_t *fb, const char *name)
{
    for (size_t i = 0; i < fb->nconns; i++)
        if (fb->conns[i].ch && !fb->conns[i].quit && strcmp (fb->conns[i].name, name) == 0)
            return &fb->conns[i];
    return NULL;
}

static const uint8_t *
find_user (fake_broker_t *fb, const char *name)
{
    for (size_t i = 0; i < fb->nusers; i++)
        if (strcmp (fb->users[i].name, name) == 0)
            return fb->users[i].pub;
    return NULL;
}

static void
broker_hello (conn_t *conn, const sc_msg_t *in)
{
    conn->hs = sc_handshake_new_broker (g_broker_key, g_cert, g_cert_len);
    assert_non_null (conn->hs);
    sc_msg_t out;
    sc_msg_init (&out, SC_OP_AUTH_BROKER);
    assert_int_equal (sc_handshake_broker_hello (conn->hs, in->suite, in->nonce, in->eph,
                                                 out.nonce, out.eph, out.sig, out.mac), 0);
    assert_int_equal (sc_msg_set_data (&out, g_cert, g_cert_len), 0);
    deliver_plain (conn, &out);
    sc_msg_reset (&out);
}

static void register_user (fake_broker_t *fb, const char *name, const sc_key_t *key);

static void
broker_auth (conn_t *conn, const sc_msg_t *in)
{
    char name[SC_HS_NAME_MAX + 1];
    if (in->opcode == SC_OP_ENROL) {
        /* the code it was given registers the key the box carries */
        uint8_t new_pub[SC_PUB_LEN], code[SC_HS_CODE_LEN];
        assert_int_equal (sc_handshake_broker_open_enrol (conn->hs, in->data, in->data_len,
                                                          name, new_pub, code), 0);
        conn->broker->enrols++;
        if (memcmp (code, conn->broker->enrol_code, SC_HS_CODE_LEN) != 0) {
            sc_handshake_destroy (&conn->hs);
            deliver_error (conn, SC_ERR_ENROL_CODE, "invalid or already used code", true);
            return;
        }
        sc_key_t *new_key = sc_key_from_raw (new_pub);
        assert_non_null (new_key);
        register_user (conn->broker, name, new_key);
        sc_key_destroy (&new_key);
    }
    else {
        assert_int_equal (sc_handshake_broker_open (conn->hs, in->data, in->data_len, name), 0);
        conn->broker->logins++;
    }
    const uint8_t *pub = find_user (conn->broker, name);
    if (!pub) {
        sc_handshake_destroy (&conn->hs);
        deliver_error (conn, SC_ERR_UNKNOWN_USER, "no such user", true);
        return;
    }
    sc_key_t *key = sc_key_from_raw (pub);
    assert_non_null (key);
    assert_int_equal (sc_handshake_broker_verify (conn->hs, key), 0);
    sc_key_destroy (&key);
    sc_session_keys_t keys;
    assert_int_equal (sc_handshake_keys (conn->hs, &keys), 0);
    sc_handshake_destroy (&conn->hs);
    conn->ch = sc_channel_new (&keys);
    assert_non_null (conn->ch);
    strcpy (conn->name, name);
    conn->peer = -1;
    sc_msg_t welcome;
    sc_msg_init (&welcome, SC_OP_WELCOME);
    const char *wname = conn->broker->welcome_name ? conn->broker->welcome_name : name;
    assert_int_equal (sc_msg_set_name (&welcome, wname), 0);
    welcome.code = HB;
    deliver (conn, &welcome);
    sc_msg_reset (&welcome);
}

static void
broker_handshake (conn_t *conn, const frame_t *f)
{
    sc_msg_t msg;
    assert_int_equal (sc_wire_open_plain (f->data, f->len, &msg), 0);
    if (msg.opcode == SC_OP_HELLO)
        broker_hello (conn, &msg);
    else if (msg.opcode == SC_OP_AUTH_CLIENT || msg.opcode == SC_OP_ENROL)
        broker_auth (conn, &msg);
    else
        fail_msg ("unexpected opcode %d in the handshake", msg.opcode);
    sc_msg_reset (&msg);
}

static void
broker_list (conn_t *conn)
{
    fake_broker_t *fb = conn->broker;
    sc_msg_t msg;
    sc_msg_init (&msg, SC_OP_USERS);
    for (size_t i = 0; i < fb->nconns; i++)
        if (&fb->conns[i] != conn && fb->conns[i].ch && !fb->conns[i].quit)
            assert_int_equal (sc_msg_add_name (&msg, fb->conns[i].name), 0);
    deliver (conn, &msg);
    sc_msg_reset (&msg);
}

static void
broker_rtt (conn_t *conn, const char *target)
{
    conn_t *to = find_conn (conn->broker, target);
    if (conn->broker->busy)
        deliver_named (conn, SC_OP_REFUSE, target, SC_REFUSE_BUSY);
    else if (!to)
        deliver_named (conn, SC_OP_USER_NOT_FOUND, target, 0);
    else
        deliver_named (to, SC_OP_RTT, conn->name, 0);
}

static void
broker_chat (conn_t *a, conn_t *b, bool initiator)
{
    sc_msg_t msg;
    sc_msg_init (&msg, SC_OP_CHAT);
    assert_int_equal (sc_msg_set_name (&msg, b->name), 0);
    const uint8_t *pub = find_user (a->broker, b->name);
    assert_non_null (pub);
    if (pub)
        memcpy (msg.key, pub, SC_PUB_LEN);
    msg.flag = initiator;
    deliver (a, &msg);
    sc_msg_reset (&msg);
}

static void
broker_accept (conn_t *b, const char *requester)
{
    conn_t *a = find_conn (b->broker, requester);
    assert_non_null (a);
    if (!a)
        return;                 /* not reached: tells the compiler */
    a->peer = (int) (b - b->broker->conns);
    b->peer = (int) (a - a->broker->conns);
    broker_chat (a, b, true);
    broker_chat (b, a, false);
}

static void
broker_end (conn_t *conn, uint32_t reason)
{
    if (conn->peer >= 0) {
        conn_t *peer = &conn->broker->conns[conn->peer];
        peer->peer = -1;
        conn->peer = -1;
        deliver_named (peer, SC_OP_NOTIFY, conn->name, reason);
    }
}

/* MESSAGE and the CC_ opcodes, through the hooks. */
static void
broker_relay (conn_t *conn, uint8_t opcode, uint8_t *body, size_t len)
{
    fake_broker_t *fb = conn->broker;
    if (conn->peer < 0) {
        deliver_error (conn, SC_ERR_NO_CHAT, "", false);
        return;
    }
    conn_t *peer = &fb->conns[conn->peer];
    if (opcode == SC_OP_MESSAGE)
        fb->messages++;
    if (opcode == SC_OP_MESSAGE && fb->drop_messages > 0) {
        fb->drop_messages--;
        return;
    }
    if (opcode == SC_OP_MESSAGE && fb->flip_messages > 0) {
        fb->flip_messages--;
        sc_msg_t msg;
        assert_int_equal (sc_msg_decode (opcode, body, len, &msg), 0);
        msg.data[msg.data_len / 2] ^= 0x04;
        deliver (peer, &msg);
        sc_msg_reset (&msg);
        return;
    }
    if (opcode == SC_OP_MESSAGE && fb->skip_ahead > 0) {
        sc_msg_t msg;
        assert_int_equal (sc_msg_decode (opcode, body, len, &msg), 0);
        msg.counter += fb->skip_ahead;
        fb->skip_ahead = 0;
        deliver (peer, &msg);
        sc_msg_reset (&msg);
        return;
    }
    deliver_raw (peer, opcode, body, len);
    if (opcode == SC_OP_MESSAGE && fb->replay_messages > 0) {
        fb->replay_messages--;
        deliver_raw (peer, opcode, body, len);
    }
}

static void
broker_session (conn_t *conn, const frame_t *f)
{
    uint8_t opcode = 0, *body = NULL;
    size_t len = 0;
    assert_int_equal (sc_wire_open_raw (conn->ch, f->data, f->len, &opcode, &body, &len), 0);
    sc_msg_t msg;
    assert_int_equal (sc_msg_decode (opcode, body, len, &msg), 0);
    switch (opcode) {
        case SC_OP_PING: {
            conn->pings++;
            sc_msg_t pong;
            sc_msg_init (&pong, SC_OP_PONG);
            deliver (conn, &pong);
            break;
        }
        case SC_OP_LIST:    broker_list (conn); break;
        case SC_OP_RTT:     broker_rtt (conn, msg.name); break;
        case SC_OP_ACCEPT:  broker_accept (conn, msg.name); break;
        case SC_OP_REFUSE: {
            conn_t *a = find_conn (conn->broker, msg.name);
            if (a)
                deliver_named (a, SC_OP_REFUSE, conn->name, SC_REFUSE_DECLINED);
            break;
        }
        case SC_OP_LEAVE:   broker_end (conn, SC_NOTIFY_LEFT); break;
        case SC_OP_QUIT:    broker_end (conn, SC_NOTIFY_QUIT); conn->quit = true; break;
        case SC_OP_MESSAGE:
        case SC_OP_CC_SESSION:
        case SC_OP_CC_REPLY:
        case SC_OP_CC_FINISH:
            broker_relay (conn, opcode, body, len);
            break;
        default:
            fail_msg ("unexpected opcode %d from a client", opcode);
    }
    sc_msg_reset (&msg);
    free (body);
}

/* Handle every frame the clients sent, and what they send in answer. */
static void
pump (fake_broker_t *fb)
{
    bool again = true;
    while (again && !fb->deaf) {
        again = false;
        for (size_t i = 0; i < fb->nconns; i++) {
            conn_t *conn = &fb->conns[i];
            while (conn->out_head < conn->out_tail) {
                frame_t f = conn->out[conn->out_head++];
                if (conn->ch)
                    broker_session (conn, &f);
                else
                    broker_handshake (conn, &f);
                free_frame (&f);
                again = true;
            }
            conn->out_head = conn->out_tail = 0;
        }
    }
}

static void
register_user (fake_broker_t *fb, const char *name, const sc_key_t *key)
{
    uint8_t pub[SC_PUB_LEN];
    assert_int_equal (sc_key_public_raw (key, pub), 0);
    for (size_t i = 0; i < fb->nusers; i++)
        if (strcmp (fb->users[i].name, name) == 0) {
            memcpy (fb->users[i].pub, pub, SC_PUB_LEN);
            return;
        }
    assert_true (fb->nusers < MAX_USERS);
    strcpy (fb->users[fb->nusers].name, name);
    memcpy (fb->users[fb->nusers].pub, pub, SC_PUB_LEN);
    fb->nusers++;
}

/* A client core for user `name` with a new key, registered at the
   broker when `registered`. */
static conn_t *
add_client (fake_broker_t *fb, const char *name, bool registered,
            const sc_ca_t *ca, const char *broker_name, const char *pins)
{
    assert_true (fb->nconns < MAX_CONNS);
    conn_t *conn = &fb->conns[fb->nconns++];
    conn->broker = fb;
    conn->peer = -1;
    conn->key = sc_key_generate ();
    assert_non_null (conn->key);
    if (registered)
        register_user (fb, name, conn->key);
    sc_client_io_t io = { .arg = conn, .send = io_send, .event = io_event };
    conn->client = sc_client_new (conn->key, name, ca, broker_name, pins, &io);
    assert_non_null (conn->client);
    strcpy (conn->name, name);      /* for messages; reset at login */
    return conn;
}

static conn_t *
login (fake_broker_t *fb, const char *name, const char *pins)
{
    conn_t *conn = add_client (fb, name, true, g_ca, "secbroker", pins);
    conn->name[0] = 0;
    assert_int_equal (sc_client_start (conn->client, g_now), 0);
    assert_int_equal (sc_client_state (conn->client), SC_CLIENT_CONNECTING);
    pump (fb);
    char want[64];
    snprintf (want, sizeof want, "ready %s", name);
    expect_line (conn, want);
    assert_int_equal (sc_client_state (conn->client), SC_CLIENT_IDLE);
    return conn;
}

static void
type (conn_t *conn, const char *line)
{
    sc_client_command (conn->client, line, strlen (line), g_now);
    pump (conn->broker);
}

/* Let time pass to t, then tick and let the broker answer. */
static void
tick (conn_t *conn, int64_t t)
{
    g_now = t;
    sc_client_tick (conn->client, g_now);
    pump (conn->broker);
}

static fake_broker_t *
broker_new (void)
{
    fake_broker_t *fb = calloc (1, sizeof *fb);
    assert_non_null (fb);
    return fb;
}

static void
broker_destroy (fake_broker_t **fb_p)
{
    fake_broker_t *fb = *fb_p;
    for (size_t i = 0; i < fb->nconns; i++) {
        conn_t *conn = &fb->conns[i];
        sc_client_destroy (&conn->client);
        sc_key_destroy (&conn->key);
        sc_handshake_destroy (&conn->hs);
        sc_channel_destroy (&conn->ch);
        drop_frames (conn);
        for (size_t j = 0; j < conn->nlines; j++)
            free (conn->lines[j]);
    }
    free (fb);
    *fb_p = NULL;
}

/* alice and bob logged in, chatting; both lines read. */
static void
open_chat (fake_broker_t *fb, conn_t **alice, conn_t **bob, char *safety)
{
    *alice = login (fb, "alice", NULL);
    *bob = login (fb, "bob", NULL);
    type (*alice, "/talk bob");
    expect_line (*bob, "request alice");
    assert_int_equal (sc_client_state ((*bob)->client), SC_CLIENT_INCOMING);
    type (*bob, "/accept");
    expect_line (*alice, "accepted bob");
    const char *a = next_line (*alice), *b = next_line (*bob);
    assert_non_null (a);
    assert_non_null (b);
    assert_true (strncmp (a, "chat bob ", 9) == 0);
    assert_true (strncmp (b, "chat alice ", 11) == 0);
    assert_string_equal (a + 9, b + 11);
    assert_int_equal (strlen (a + 9), SC_SAFETY_LEN);
    if (safety)
        strcpy (safety, a + 9);
    assert_int_equal (sc_client_state ((*alice)->client), SC_CLIENT_CHATTING);
    assert_int_equal (sc_client_state ((*bob)->client), SC_CLIENT_CHATTING);
    assert_string_equal (sc_client_peer ((*alice)->client), "bob");
}

/* ---- Login ---------------------------------------------------------------- */

static void
test_login_ok (void **state)
{
    (void) state;
    fake_broker_t *fb = broker_new ();
    conn_t *alice = login (fb, "alice", NULL);
    assert_int_equal (sc_client_heartbeat (alice->client), HB);
    assert_true (sc_client_ever_ready (alice->client));
    assert_string_equal (sc_client_name (alice->client), "alice");
    assert_null (sc_client_peer (alice->client));
    expect_nothing (alice);
    broker_destroy (&fb);
}

static void
login_fails (const sc_ca_t *ca, const char *broker_name, bool registered,
             const char *welcome_name, const char *want)
{
    fake_broker_t *fb = broker_new ();
    fb->welcome_name = welcome_name;
    conn_t *alice = add_client (fb, "alice", registered, ca, broker_name, NULL);
    assert_int_equal (sc_client_start (alice->client, g_now), 0);
    pump (fb);
    expect_line (alice, want);
    expect_nothing (alice);
    assert_int_equal (sc_client_state (alice->client), SC_CLIENT_DEAD);
    assert_false (sc_client_ever_ready (alice->client));
    /* A dead client takes no more commands and sends nothing. */
    type (alice, "/list");
    expect_nothing (alice);
    broker_destroy (&fb);
}

static void
test_login_wrong_ca (void **state)
{
    (void) state;
    login_fails (g_other_ca, "secbroker", true, NULL,
                 "LOGIN_FAILED broker certificate rejected: the certificate is not signed by the trusted CA*");
}

static void
test_login_wrong_broker_name (void **state)
{
    (void) state;
    login_fails (g_ca, "otherbroker", true, NULL,
                 "LOGIN_FAILED broker certificate rejected: it is for secbroker, not "
                 "for the expected broker name otherbroker (--broker-name)");
}

static void
test_login_unknown_user (void **state)
{
    (void) state;
    login_fails (g_ca, "secbroker", false, NULL,
                 "LOGIN_FAILED broker refused the user alice: unknown-user*");
}

static void
test_login_welcome_other_name (void **state)
{
    (void) state;
    login_fails (g_ca, "secbroker", true, "mallory",
                 "LOGIN_FAILED the broker welcomed mallory instead of alice*");
}

/* Enrolment: ENROL with the code and the client's key, then the session
   is a login's; a reconnect logs in with AUTH_CLIENT, not ENROL again. */
static void
test_enrol (void **state)
{
    (void) state;
    fake_broker_t *fb = broker_new ();
    assert_int_equal (sc_enrol_code_new (fb->enrol_code), 0);
    conn_t *dave = add_client (fb, "dave", false, g_ca, "secbroker", NULL);
    assert_int_equal (sc_client_set_enrol (dave->client, fb->enrol_code), 0);
    assert_int_equal (sc_client_start (dave->client, g_now), 0);
    pump (fb);
    expect_line (dave, "ready dave");
    assert_int_equal (fb->enrols, 1);
    assert_int_equal (fb->logins, 0);
    uint8_t pub[SC_PUB_LEN];
    assert_int_equal (sc_key_public_raw (dave->key, pub), 0);
    assert_memory_equal (find_user (fb, "dave"), pub, SC_PUB_LEN);
    /* too late to enrol again */
    assert_int_equal (sc_client_set_enrol (dave->client, fb->enrol_code), -1);
    /* the connection lost: the next login is an ordinary one */
    sc_client_reset (dave->client);
    sc_channel_destroy (&dave->ch);
    assert_int_equal (sc_client_start (dave->client, g_now), 0);
    pump (fb);
    expect_line (dave, "ready dave");
    assert_int_equal (fb->enrols, 1);
    assert_int_equal (fb->logins, 1);
    expect_nothing (dave);
    broker_destroy (&fb);
}

/* A refused enrolment ends the client for good, with the broker's
   words; it does not try again. */
static void
test_enrol_refused (void **state)
{
    (void) state;
    fake_broker_t *fb = broker_new ();
    assert_int_equal (sc_enrol_code_new (fb->enrol_code), 0);
    conn_t *dave = add_client (fb, "dave", false, g_ca, "secbroker", NULL);
    uint8_t wrong[SC_HS_CODE_LEN];
    assert_int_equal (sc_enrol_code_new (wrong), 0);
    assert_int_equal (sc_client_set_enrol (dave->client, wrong), 0);
    assert_int_equal (sc_client_start (dave->client, g_now), 0);
    pump (fb);
    expect_line (dave, "LOGIN_FAILED broker refused the enrolment of dave: "
                       "enrol-code (invalid or already used code)");
    expect_nothing (dave);
    assert_int_equal (sc_client_state (dave->client), SC_CLIENT_DEAD);
    assert_null (find_user (fb, "dave"));
    assert_int_equal (fb->enrols, 1);
    broker_destroy (&fb);
}

/* A plaintext refusal that a retry may fix leaves the client offline,
   ready for another start. */
static void
test_login_timeout_retry (void **state)
{
    (void) state;
    fake_broker_t *fb = broker_new ();
    conn_t *alice = add_client (fb, "alice", true, g_ca, "secbroker", NULL);
    assert_int_equal (sc_client_start (alice->client, g_now), 0);
    drop_frames (alice);
    deliver_error (alice, SC_ERR_TIMEOUT, "too slow", true);
    expect_line (alice, "LOGIN_FAILED broker refused the login of alice: timeout (too slow)");
    assert_int_equal (sc_client_state (alice->client), SC_CLIENT_OFFLINE);
    /* Garbage during the handshake is dropped, the login goes on. */
    assert_int_equal (sc_client_start (alice->client, g_now), 0);
    sc_client_recv (alice->client, (const uint8_t *) "\x94\x01", 2, g_now);
    expect_line (alice, "NOTICE dropped a malformed frame*");
    assert_int_equal (sc_client_state (alice->client), SC_CLIENT_CONNECTING);
    pump (fb);
    expect_line (alice, "ready alice");
    broker_destroy (&fb);
}

/* ERROR INTERNAL during the login is the broker's own failure: secchat
   says that the key and password are not in question and stays ready to
   try again; AUTH still says that authentication failed, for good. */
static void
test_login_internal_retry (void **state)
{
    (void) state;
    fake_broker_t *fb = broker_new ();
    conn_t *alice = add_client (fb, "alice", true, g_ca, "secbroker", NULL);
    assert_int_equal (sc_client_start (alice->client, g_now), 0);
    drop_frames (alice);
    deliver_error (alice, SC_ERR_INTERNAL, "internal error, retry later", true);
    expect_line (alice, "LOGIN_FAILED the broker failed on its side during the login of "
                        "alice: internal (internal error, retry later): not a problem with "
                        "your key or password");
    assert_int_equal (sc_client_state (alice->client), SC_CLIENT_OFFLINE);
    assert_int_equal (sc_client_start (alice->client, g_now), 0);
    drop_frames (alice);
    deliver_error (alice, SC_ERR_AUTH, "authentication failed", true);
    expect_line (alice, "LOGIN_FAILED authentication failed for alice: auth "
                        "(authentication failed)");
    assert_int_equal (sc_client_state (alice->client), SC_CLIENT_DEAD);
    broker_destroy (&fb);
}

/* Lines typed before the login completes run after `ready`, in order. */
static void
test_commands_before_login (void **state)
{
    (void) state;
    fake_broker_t *fb = broker_new ();
    conn_t *bob = login (fb, "bob", NULL);
    conn_t *alice = add_client (fb, "alice", true, g_ca, "secbroker", NULL);
    alice->name[0] = 0;
    sc_client_command (alice->client, "/list", 5, g_now);
    sc_client_command (alice->client, "hello", 5, g_now);
    sc_client_command (alice->client, "/talk bob", 9, g_now);
    expect_nothing (alice);
    assert_int_equal (sc_client_start (alice->client, g_now), 0);
    pump (fb);
    expect_line (alice, "ready alice");
    /* All three ran at once; the broker's answer to /list came after. */
    expect_line (alice, "error not-in-chat *");
    expect_line (alice, "users bob");
    expect_nothing (alice);
    expect_line (bob, "request alice");
    assert_int_equal (sc_client_state (alice->client), SC_CLIENT_WAITING);
    broker_destroy (&fb);
}

/* ---- Requests ------------------------------------------------------------- */

static void
test_request_and_answers (void **state)
{
    (void) state;
    fake_broker_t *fb = broker_new ();
    conn_t *alice = login (fb, "alice", NULL);
    conn_t *bob = login (fb, "bob", NULL);

    type (alice, "/list");
    expect_line (alice, "users bob");
    type (alice, "/talk carol");
    expect_line (alice, "not-found carol");
    assert_int_equal (sc_client_state (alice->client), SC_CLIENT_IDLE);

    type (alice, "/talk bob");
    expect_line (bob, "request alice");
    assert_int_equal (sc_client_state (alice->client), SC_CLIENT_WAITING);
    assert_string_equal (sc_client_peer (alice->client), "bob");
    assert_int_equal (sc_client_state (bob->client), SC_CLIENT_INCOMING);
    assert_string_equal (sc_client_peer (bob->client), "alice");
    type (alice, "hi");
    expect_line (alice, "error not-in-chat *");
    type (alice, "/talk bob");
    expect_line (alice, "error state *");

    type (bob, "/refuse");
    expect_line (bob, "closed alice");
    expect_line (alice, "refused bob");
    assert_int_equal (sc_client_state (alice->client), SC_CLIENT_IDLE);
    assert_int_equal (sc_client_state (bob->client), SC_CLIENT_IDLE);

    fb->busy = true;
    type (alice, "/talk bob");
    expect_line (alice, "busy bob");
    assert_int_equal (sc_client_state (alice->client), SC_CLIENT_IDLE);
    expect_nothing (alice);
    expect_nothing (bob);
    broker_destroy (&fb);
}

static void
test_commands_checked (void **state)
{
    (void) state;
    fake_broker_t *fb = broker_new ();
    conn_t *alice = login (fb, "alice", NULL);
    type (alice, "/talk");
    expect_line (alice, "error usage *");
    type (alice, "/talk Bob");
    expect_line (alice, "error usage *");
    type (alice, "/talk bob carol");
    expect_line (alice, "error usage *");
    type (alice, "/list now");
    expect_line (alice, "error usage *");
    type (alice, "/list   ");
    expect_line (alice, "users");
    type (alice, "/talk alice");
    expect_line (alice, "error self *");
    type (alice, "/frobnicate\x1b[2J");
    expect_line (alice, "error unknown-command /frobnicate?[2J is not a command*");
    type (alice, "/accept");
    expect_line (alice, "error state *");
    type (alice, "/leave");
    expect_line (alice, "error not-in-chat *");
    type (alice, "/help");
    expect_line (alice, "HELP commands:*");
    type (alice, "hello");
    expect_line (alice, "error not-in-chat *");
    type (alice, "caf\xc3");
    expect_line (alice, "error bad-utf8 *");
    sc_client_command (alice->client, "a\0b", 3, g_now);
    expect_line (alice, "error bad-utf8 *");
    type (alice, "");
    expect_nothing (alice);
    type (alice, "/fingerprint");
    const char *line = next_line (alice);
    assert_non_null (line);
    assert_true (strncmp (line, "fingerprint ", 12) == 0);
    assert_int_equal (strlen (line), 12 + SC_FPR_LEN);
    broker_destroy (&fb);
}

/* ---- Chat ------------------------------------------------------------------ */

static void
test_chat_messages (void **state)
{
    (void) state;
    fake_broker_t *fb = broker_new ();
    conn_t *alice, *bob;
    char safety[SC_SAFETY_LEN + 1];
    open_chat (fb, &alice, &bob, safety);

    type (alice, "hello bob");
    expect_line (bob, "msg alice hello bob");
    type (bob, "grüße, ñ, 日本語 🙂");
    expect_line (alice, "msg bob grüße, ñ, 日本語 🙂");
    type (bob, "//slash");
    expect_line (alice, "msg bob /slash");

    char *big = malloc (SC_TEXT_MAX + 2);
    assert_non_null (big);
    memset (big, 'x', SC_TEXT_MAX + 1);
    big[SC_TEXT_MAX] = 0;
    type (alice, big);
    const char *line = next_line (bob);
    assert_non_null (line);
    assert_int_equal (strlen (line), strlen ("msg alice ") + SC_TEXT_MAX);
    big[SC_TEXT_MAX] = 'x';
    big[SC_TEXT_MAX + 1] = 0;
    type (alice, big);
    expect_line (alice, "error too-long *");
    expect_nothing (bob);
    free (big);

    type (alice, "/fingerprint");
    line = next_line (alice);
    assert_non_null (line);
    assert_true (strncmp (line, "fingerprint ", 12) == 0);
    assert_true (strncmp (line + 12 + SC_FPR_LEN, " bob ", 5) == 0);
    assert_string_equal (line + 12 + SC_FPR_LEN + 5 + SC_FPR_LEN + 1, safety);
    expect_nothing (alice);
    expect_nothing (bob);
    broker_destroy (&fb);
}

static void
test_control_characters (void **state)
{
    (void) state;
    fake_broker_t *fb = broker_new ();
    conn_t *alice, *bob;
    open_chat (fb, &alice, &bob, NULL);
    type (alice, "a\x1b[31mred\tb\x7f\r\xc2\x9b" "2J\xc2\xa9");
    expect_line (bob, "msg alice a?[31mred?b??" "?2J\xc2\xa9");
    /* The same in an error detail from the broker. */
    deliver_error (alice, SC_ERR_RATE, "slow\ndown\x07", false);
    expect_line (alice, "error rate slow?down?");
    broker_destroy (&fb);
}

static void
test_replay_refused (void **state)
{
    (void) state;
    fake_broker_t *fb = broker_new ();
    conn_t *alice, *bob;
    open_chat (fb, &alice, &bob, NULL);
    fb->replay_messages = 1;
    type (alice, "once");
    expect_line (bob, "msg alice once");
    expect_line (bob, "error replay *");
    expect_nothing (bob);
    assert_int_equal (sc_client_state (bob->client), SC_CLIENT_CHATTING);
    type (alice, "twice");
    expect_line (bob, "msg alice twice");
    broker_destroy (&fb);
}

static void
test_lost_message (void **state)
{
    (void) state;
    fake_broker_t *fb = broker_new ();
    conn_t *alice, *bob;
    open_chat (fb, &alice, &bob, NULL);
    fb->drop_messages = 1;
    type (alice, "one");
    expect_nothing (bob);
    type (alice, "two");
    expect_line (bob, "lost alice 1");
    expect_line (bob, "msg alice two");
    expect_nothing (bob);
    broker_destroy (&fb);
}

static void
test_forged_box (void **state)
{
    (void) state;
    fake_broker_t *fb = broker_new ();
    conn_t *alice, *bob;
    open_chat (fb, &alice, &bob, NULL);
    fb->flip_messages = 1;
    type (alice, "secret");
    expect_line (bob, "error e2e *");
    expect_line (bob, "error unconfirmed-close alice (it failed end to end)*");
    expect_line (bob, "closed alice");
    expect_nothing (bob);
    /* bob left without an E2E close (its chain is not to be trusted):
       alice hears it from the broker alone, and is told so, and that
       her line was never confirmed. */
    expect_line (alice, "error unconfirmed-close bob (the broker says bob left)*");
    expect_line (alice, "unacked bob 1");
    expect_line (alice, "closed bob");
    assert_int_equal (sc_client_state (alice->client), SC_CLIENT_IDLE);
    assert_int_equal (sc_client_state (bob->client), SC_CLIENT_IDLE);
    broker_destroy (&fb);
}

/* A counter more than 1000 ahead of the next expected is refused
   before any key is derived, and closes the chat as a box that does
   not open does (a replay, above, does not). */
static void
test_too_far_ahead (void **state)
{
    (void) state;
    fake_broker_t *fb = broker_new ();
    conn_t *alice, *bob;
    open_chat (fb, &alice, &bob, NULL);
    fb->skip_ahead = 1001;          /* n = 1002, 1002 - 1 > 1000 */
    type (alice, "far");
    expect_line (bob, "error e2e a message failed to authenticate with alice: "
                 "message counter too far ahead: the chat is closed");
    expect_line (bob, "error unconfirmed-close alice (it failed end to end)*");
    expect_line (bob, "closed alice");
    expect_nothing (bob);
    assert_int_equal (sc_client_state (bob->client), SC_CLIENT_IDLE);
    broker_destroy (&fb);
}

static void
test_leave_and_notify (void **state)
{
    (void) state;
    fake_broker_t *fb = broker_new ();
    conn_t *alice, *bob;
    open_chat (fb, &alice, &bob, NULL);
    /* An E2E close then LEAVE: the peer reports the chat closed once. */
    type (alice, "/leave");
    expect_line (alice, "closed bob");
    expect_line (bob, "closed alice");
    expect_nothing (alice);
    expect_nothing (bob);
    assert_int_equal (sc_client_state (bob->client), SC_CLIENT_IDLE);

    /* bob's E2E close arrives, and bob's LEAVE is slow to reach the
       broker: alice asks bob again before its NOTIFY comes. That NOTIFY
       belongs to the closed chat and must not end the new request. */
    type (alice, "/talk bob");
    expect_line (bob, "request alice");
    type (bob, "/accept");
    skip_lines (alice);
    skip_lines (bob);
    sc_client_command (bob->client, "/leave", 6, g_now);
    frame_t close_frame = bob->out[bob->out_head++];        /* E2E close */
    broker_session (bob, &close_frame);
    free_frame (&close_frame);
    expect_line (alice, "closed bob");
    type (alice, "/talk bob");      /* bob's LEAVE still queued */
    assert_int_equal (sc_client_state (alice->client), SC_CLIENT_WAITING);
    /* the RTT is held until the broker says the old chat is over: sent
       now, it could reach the broker before bob's LEAVE and be refused */
    assert_int_equal (alice->out_tail - alice->out_head, 0);
    pump (fb);                      /* LEAVE -> NOTIFY, then the RTT */
    expect_nothing (alice);
    assert_int_equal (sc_client_state (alice->client), SC_CLIENT_WAITING);
    expect_line (bob, "closed alice");
    expect_line (bob, "request alice");
    type (bob, "/refuse");
    expect_line (bob, "closed alice");
    expect_line (alice, "refused bob");

    /* A plain NOTIFY (the peer was lost) closes the chat too. */
    type (alice, "/talk bob");
    expect_line (bob, "request alice");
    type (bob, "/accept");
    skip_lines (alice);
    skip_lines (bob);
    deliver_named (alice, SC_OP_NOTIFY, "bob", SC_NOTIFY_LOST);
    expect_line (alice, "error unconfirmed-close bob (the broker says bob was lost)*");
    expect_line (alice, "closed bob");
    assert_int_equal (sc_client_state (alice->client), SC_CLIENT_IDLE);
    /* A stale NOTIFY changes nothing. */
    deliver_named (alice, SC_OP_NOTIFY, "carol", SC_NOTIFY_QUIT);
    expect_nothing (alice);
    broker_destroy (&fb);
}

/* NOTIFY MISSED: someone asked while we were busy. It is said
   ("missed NAME"), and nothing else changes: not the chat, even when the
   name is the peer's, not a request pending, not the wait for a closed
   chat's NOTIFY. */
static void
test_notify_missed (void **state)
{
    (void) state;
    fake_broker_t *fb = broker_new ();
    conn_t *alice, *bob;
    open_chat (fb, &alice, &bob, NULL);
    deliver_named (alice, SC_OP_NOTIFY, "carol", SC_NOTIFY_MISSED);
    expect_line (alice, "missed carol");
    deliver_named (alice, SC_OP_NOTIFY, "bob", SC_NOTIFY_MISSED);
    expect_line (alice, "missed bob");
    expect_nothing (alice);
    assert_int_equal (sc_client_state (alice->client), SC_CLIENT_CHATTING);
    type (alice, "still here");
    expect_line (bob, "msg alice still here");
    type (bob, "me too");
    expect_line (alice, "msg bob me too");

    /* bob's E2E close came, its LEAVE's NOTIFY not yet: a MISSED naming
       bob is not that NOTIFY, and the one that follows is still taken as
       the old chat's end, not news */
    sc_client_command (bob->client, "/leave", 6, g_now);
    frame_t close_frame = bob->out[bob->out_head++];        /* E2E close */
    broker_session (bob, &close_frame);
    free_frame (&close_frame);
    skip_lines (alice);
    deliver_named (alice, SC_OP_NOTIFY, "bob", SC_NOTIFY_MISSED);
    expect_line (alice, "missed bob");
    pump (fb);                      /* bob's LEAVE -> NOTIFY [bob, 0] */
    expect_nothing (alice);
    skip_lines (bob);

    /* waiting for an answer: still waiting after a MISSED */
    type (alice, "/talk bob");
    expect_line (bob, "request alice");
    deliver_named (alice, SC_OP_NOTIFY, "dave", SC_NOTIFY_MISSED);
    expect_line (alice, "missed dave");
    assert_int_equal (sc_client_state (alice->client), SC_CLIENT_WAITING);
    type (bob, "/accept");
    expect_line (alice, "accepted bob");
    broker_destroy (&fb);
}

/* Any NOTIFY that finds the chat open (no E2E close came before it) is
   the broker's word only: reported as unconfirmed, before the close,
   whatever its reason. */
static void
test_unconfirmed_close (void **state)
{
    (void) state;
    static const struct { uint32_t reason; const char *warning; } cases[] = {
        { SC_NOTIFY_LEFT, "error unconfirmed-close alice (the broker says alice left): "
          "the chat ended without an authenticated close from alice covering all "
          "its messages: some may be missing" },
        { SC_NOTIFY_QUIT, "error unconfirmed-close alice (the broker says alice quit)*" },
        { SC_NOTIFY_LOST, "error unconfirmed-close alice (the broker says alice was lost)*" },
        { SC_NOTIFY_REPLACED, "error unconfirmed-close alice (the broker says alice "
          "logged in elsewhere)*" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        fake_broker_t *fb = broker_new ();
        conn_t *alice, *bob;
        open_chat (fb, &alice, &bob, NULL);
        type (alice, "still typing");
        expect_line (bob, "msg alice still typing");
        deliver_named (bob, SC_OP_NOTIFY, "alice", cases[i].reason);
        expect_line (bob, cases[i].warning);
        expect_line (bob, "closed alice");
        expect_nothing (bob);
        assert_int_equal (sc_client_state (bob->client), SC_CLIENT_IDLE);
        /* What alice types after that is not shown: bob's chat is over. */
        type (alice, "anyone?");
        expect_nothing (bob);
        broker_destroy (&fb);
    }

    /* During the key agreement the peer has no keys to close with. */
    fake_broker_t *fb = broker_new ();
    conn_t *alice = login (fb, "alice", NULL);
    conn_t *bob = login (fb, "bob", NULL);
    type (alice, "/talk bob");
    expect_line (bob, "request alice");
    sc_client_command (bob->client, "/accept", 7, g_now);
    drop_frames (bob);
    assert_int_equal (sc_client_state (bob->client), SC_CLIENT_KEYX);
    deliver_named (bob, SC_OP_NOTIFY, "alice", SC_NOTIFY_LEFT);
    expect_line (bob, "closed alice");
    expect_nothing (bob);
    broker_destroy (&fb);
}

/* The E2E close carries both counts: the lines its sender sent (so
   lines missing before it are reported, and the close is unconfirmed)
   and the highest counter it received (so the closer's own lines that
   never arrived are reported to it). */
static void
test_close_after_loss (void **state)
{
    (void) state;
    fake_broker_t *fb = broker_new ();
    conn_t *alice, *bob;
    open_chat (fb, &alice, &bob, NULL);
    type (alice, "one");
    expect_line (bob, "msg alice one");
    tick (bob, g_now + 300);            /* bob acknowledges "one" */
    tick (alice, g_now);
    expect_line (alice, "acked bob 1");
    fb->drop_messages = 1;
    type (alice, "two");
    expect_nothing (bob);
    type (alice, "/leave");
    expect_line (alice, "unacked bob 1");
    expect_line (alice, "closed bob");
    expect_line (bob, "lost alice 1");
    expect_line (bob, "error unconfirmed-close alice (its close says 1 of its "
                 "messages never arrived)*");
    expect_line (bob, "closed alice");
    expect_nothing (bob);
    expect_nothing (alice);
    broker_destroy (&fb);
}

/* A close that covers every message is no news: just closed, on both
   sides, and nothing unacknowledged. */
static void
test_close_covering_all (void **state)
{
    (void) state;
    fake_broker_t *fb = broker_new ();
    conn_t *alice, *bob;
    open_chat (fb, &alice, &bob, NULL);
    type (alice, "one");
    type (bob, "two");
    expect_line (bob, "msg alice one");
    expect_line (alice, "msg bob two");
    /* bob's "two" carried the ack of "one"; alice's close acks "two" */
    tick (alice, g_now);
    expect_line (alice, "acked bob 1");
    type (alice, "/leave");
    expect_line (alice, "closed bob");
    expect_line (bob, "acked alice 1");
    expect_line (bob, "closed alice");
    expect_nothing (alice);
    expect_nothing (bob);
    broker_destroy (&fb);
}

/* A client that received lines and has nothing to send acknowledges
   them within a second, with one ACK for the lot; an ACK is never itself
   acknowledged. The sender prints `acked` once for it. */
/* A peer that never confirms cannot make us keep more than 1 MiB of
   our own text: the next line is refused, said so, and not sent. */
static void
test_unacked_bytes_bounded (void **state)
{
    (void) state;
    fake_broker_t *fb = broker_new ();
    conn_t *alice, *bob;
    open_chat (fb, &alice, &bob, NULL);
    static char big[SC_TEXT_MAX + 1];
    memset (big, 'x', SC_TEXT_MAX);
    fb->deaf = true;                            /* nothing comes back */
    for (int i = 0; i < 256; i++)               /* 256 x 4 KiB = 1 MiB */
        sc_client_command (alice->client, big, SC_TEXT_MAX, g_now);
    expect_nothing (alice);
    size_t sent = alice->out_tail;
    sc_client_command (alice->client, big, SC_TEXT_MAX, g_now);
    expect_line (alice, "error state 256 messages to bob are not confirmed yet: not sent");
    assert_int_equal (alice->out_tail, sent);
    sc_client_command (alice->client, "small", 5, g_now);   /* full: nor this */
    expect_line (alice, "error state 256 messages to bob are not confirmed yet: not sent");
    assert_int_equal (alice->out_tail, sent);
    drop_frames (alice);
    broker_destroy (&fb);
}

static void
test_acks_coalesced (void **state)
{
    (void) state;
    fake_broker_t *fb = broker_new ();
    conn_t *alice, *bob;
    open_chat (fb, &alice, &bob, NULL);
    int64_t t0 = g_now;
    type (alice, "one");
    type (alice, "two");
    type (alice, "three");
    expect_line (bob, "msg alice one");
    expect_line (bob, "msg alice two");
    expect_line (bob, "msg alice three");
    assert_int_equal (fb->messages, 3);
    /* the terminal labels each own line as it goes, numbered as the
       acks count them */
    assert_int_equal (alice->sent, 3);
    assert_int_equal (alice->sent_last, 3);
    assert_string_equal (alice->sent_text, "three");
    assert_int_equal (bob->sent, 0);
    int64_t due = sc_client_timeout (bob->client, t0);
    assert_true (due > 0 && due < 1000);
    tick (bob, t0 + due - 1);
    assert_int_equal (fb->messages, 3);         /* not yet */
    tick (bob, t0 + due);
    assert_int_equal (fb->messages, 4);         /* one ACK for three */
    expect_nothing (alice);                     /* reported at the tick */
    assert_int_equal (sc_client_timeout (alice->client, g_now), 0);
    tick (alice, g_now);
    expect_line (alice, "acked bob 3");
    expect_nothing (alice);
    /* no ping-pong: nothing acknowledges the ACK, and nothing repeats */
    tick (alice, g_now + 900);
    tick (bob, g_now + 900);
    assert_int_equal (fb->messages, 4);
    expect_nothing (alice);
    expect_nothing (bob);
    /* lines that both sides send carry the acks: none of their own */
    type (alice, "a");
    type (bob, "b");                            /* acks "a" */
    type (alice, "c");                          /* acks "b" */
    type (bob, "d");                            /* acks "c" */
    assert_int_equal (fb->messages, 8);
    tick (alice, g_now);
    expect_line (alice, "msg bob b");
    expect_line (alice, "msg bob d");
    expect_line (alice, "acked bob 5");         /* one line for two acks */
    expect_nothing (alice);
    assert_int_equal (alice->sent_last, 5);
    tick (alice, g_now + 900);                 /* alice owes "d" an ACK */
    assert_int_equal (fb->messages, 9);
    tick (bob, g_now);
    expect_line (bob, "msg alice a");
    expect_line (bob, "msg alice c");
    expect_line (bob, "acked alice 2");
    expect_nothing (bob);
    tick (bob, g_now + 900);
    assert_int_equal (fb->messages, 9);
    broker_destroy (&fb);
}

/* Every way the chat ends on the connection's side without the peer's
   close: reported as unconfirmed, with the own lines never confirmed,
   before the close. */
static void
test_unconfirmed_on_session_end (void **state)
{
    (void) state;
    static const uint32_t codes[] = { SC_ERR_SHUTDOWN, SC_ERR_TIMEOUT };
    for (size_t i = 0; i < 2; i++) {
        fake_broker_t *fb = broker_new ();
        conn_t *alice, *bob;
        open_chat (fb, &alice, &bob, NULL);
        fb->drop_messages = 1;
        type (alice, "into the void");
        deliver_error (alice, codes[i], "going", false);
        expect_line (alice, codes[i] == SC_ERR_SHUTDOWN ? "error shutdown going"
                                                        : "error timeout going");
        expect_line (alice, "error unconfirmed-close bob (the broker ended the session)*");
        expect_line (alice, "unacked bob 1");
        expect_line (alice, "closed bob");
        expect_nothing (alice);
        assert_int_equal (sc_client_state (alice->client), SC_CLIENT_OFFLINE);
        broker_destroy (&fb);
    }
    /* the connection reset by the caller */
    fake_broker_t *fb = broker_new ();
    conn_t *alice, *bob;
    open_chat (fb, &alice, &bob, NULL);
    sc_client_reset (alice->client);
    expect_line (alice, "error unconfirmed-close bob (the connection to the broker was lost)*");
    expect_line (alice, "closed bob");
    expect_nothing (alice);
    broker_destroy (&fb);
}

/* The session channel: an envelope from the broker that authenticates
   but skips a seq (one was dropped) is a lost broker; one that does not
   authenticate, whatever its seq (2^48), changes nothing. */
static void
test_channel_gap_and_forgery (void **state)
{
    (void) state;
    fake_broker_t *fb = broker_new ();
    conn_t *alice, *bob;
    open_chat (fb, &alice, &bob, NULL);
    uint8_t body[40];
    assert_int_equal (sc_random (body, sizeof body), 0);
    uint8_t *frame;
    size_t len;
    assert_int_equal (sc_envelope_encode (SC_OP_PONG, ((uint64_t) 1) << 48, body,
                                          sizeof body, &frame, &len), 0);
    sc_client_recv (alice->client, frame, len, g_now);
    free (frame);
    expect_line (alice, "error malformed dropped a message from the broker: "
                 "envelope does not authenticate");
    assert_int_equal (sc_client_state (alice->client), SC_CLIENT_CHATTING);
    /* still in step: a genuine envelope goes through */
    type (bob, "hi");
    expect_line (alice, "msg bob hi");
    /* the broker's next envelope is lost on the way */
    sc_msg_t pong;
    sc_msg_init (&pong, SC_OP_PONG);
    assert_int_equal (sc_wire_seal (alice->ch, &pong, &frame, &len), 0);
    free (frame);
    deliver (alice, &pong);
    expect_line (alice, "error broker-lost an envelope from the broker is missing: reconnecting");
    expect_line (alice, "error unconfirmed-close bob (an envelope from the broker is missing)*");
    expect_line (alice, "closed bob");
    expect_nothing (alice);
    assert_int_equal (sc_client_state (alice->client), SC_CLIENT_OFFLINE);
    broker_destroy (&fb);
}

/* After one of the peer's lines was lost, nothing more is confirmed:
   the sender learns its lines from the lost one on may not have come. */
static void
test_ack_stops_at_loss (void **state)
{
    (void) state;
    fake_broker_t *fb = broker_new ();
    conn_t *alice, *bob;
    open_chat (fb, &alice, &bob, NULL);
    type (alice, "one");
    expect_line (bob, "msg alice one");
    tick (bob, g_now + 300);
    tick (alice, g_now);
    expect_line (alice, "acked bob 1");
    int sent = fb->messages;
    fb->drop_messages = 1;
    type (alice, "two");
    type (alice, "three");
    expect_line (bob, "lost alice 1");
    expect_line (bob, "msg alice three");
    tick (bob, g_now + 900);            /* no ACK: it would confirm nothing */
    assert_int_equal (fb->messages, sent + 2);
    type (bob, "did you say something?");
    expect_line (alice, "msg bob did you say something?");
    tick (alice, g_now);
    expect_nothing (alice);             /* still 1 */
    type (alice, "/leave");
    expect_line (alice, "unacked bob 2");
    expect_line (alice, "closed bob");
    expect_line (bob, "acked alice 1"); /* alice's close confirms bob's line */
    expect_line (bob, "closed alice");
    broker_destroy (&fb);
}

/* Padding: a 1-byte and a 200-byte line, an ACK and a close are frames of
   the same size; a 300-byte line is one bucket (256 bytes) more. */
static void
test_wire_size_hides_length (void **state)
{
    (void) state;
    fake_broker_t *fb = broker_new ();
    conn_t *alice, *bob;
    open_chat (fb, &alice, &bob, NULL);
    char text[301];
    memset (text, 'x', 300);
    static const size_t lens[] = { 1, 200, 300 };
    size_t sizes[3];
    for (size_t i = 0; i < 3; i++) {
        text[lens[i]] = 0;
        sc_client_command (alice->client, text, lens[i], g_now);
        assert_int_equal (alice->out_tail - alice->out_head, 1);
        sizes[i] = alice->out[alice->out_tail - 1].len;
        pump (fb);
        text[lens[i]] = 'x';
    }
    assert_int_equal (sizes[0], sizes[1]);
    assert_int_equal (sizes[2], sizes[0] + 256);
    skip_lines (bob);
    sc_client_tick (bob->client, g_now + 900);
    assert_int_equal (bob->out_tail - bob->out_head, 1);    /* the ACK */
    assert_int_equal (bob->out[bob->out_tail - 1].len, sizes[0]);
    pump (fb);
    sc_client_command (bob->client, "/leave", 6, g_now + 900);
    assert_true (bob->out_tail - bob->out_head >= 1);       /* close, LEAVE */
    assert_int_equal (bob->out[bob->out_head].len, sizes[0]);
    pump (fb);
    broker_destroy (&fb);
}

static void
test_quit_in_chat (void **state)
{
    (void) state;
    fake_broker_t *fb = broker_new ();
    conn_t *alice, *bob;
    open_chat (fb, &alice, &bob, NULL);
    type (bob, "/quit");
    expect_line (bob, "closed alice");
    expect_line (bob, "bye");
    expect_nothing (bob);
    assert_int_equal (sc_client_state (bob->client), SC_CLIENT_DONE);
    assert_true (bob->quit);
    expect_line (alice, "closed bob");
    expect_nothing (alice);
    broker_destroy (&fb);
}

/* Messages typed during the key agreement go out once it is done. */
static void
test_queued_during_keyx (void **state)
{
    (void) state;
    fake_broker_t *fb = broker_new ();
    conn_t *alice = login (fb, "alice", NULL);
    conn_t *bob = login (fb, "bob", NULL);
    type (alice, "/talk bob");
    expect_line (bob, "request alice");
    /* bob accepts, but nothing reaches the broker yet. */
    sc_client_command (bob->client, "/accept", 7, g_now);
    assert_int_equal (sc_client_state (bob->client), SC_CLIENT_KEYX);
    sc_client_command (bob->client, "early one", 9, g_now);
    sc_client_command (bob->client, "early two", 9, g_now);
    expect_nothing (bob);
    /* kept, not sent yet: nothing for the history */
    assert_int_equal (bob->nsent, 0);
    pump (fb);
    expect_line (alice, "accepted bob");
    expect_line (alice, "chat bob *");
    expect_line (alice, "msg bob early one");
    expect_line (alice, "msg bob early two");
    expect_line (bob, "chat alice *");
    expect_nothing (bob);
    /* sent now: each reported once, to whom, as typed */
    assert_int_equal (bob->nsent, 2);
    assert_string_equal (bob->sent_lines[0], "alice early one");
    assert_string_equal (bob->sent_lines[1], "alice early two");
    assert_int_equal (alice->nsent, 0);
    broker_destroy (&fb);
}

/* ---- Pins ------------------------------------------------------------------ */

static char *
slurp (const char *path)
{
    FILE *f = fopen (path, "r");
    if (!f)
        return NULL;
    char *buf = calloc (1, 4096);
    assert_non_null (buf);
    size_t n = fread (buf, 1, 4095, f);
    buf[n] = 0;
    fclose (f);
    return buf;
}

static void
test_pins (void **state)
{
    (void) state;
    char pins[128];
    snprintf (pins, sizeof pins, "%s/alice.pins", g_dir);
    unlink (pins);
    fake_broker_t *fb = broker_new ();
    conn_t *alice = login (fb, "alice", pins);
    conn_t *bob = login (fb, "bob", NULL);
    type (alice, "/talk bob");
    type (bob, "/accept");
    expect_line (alice, "accepted bob");
    expect_line (alice, "chat bob *");
    char *first = slurp (pins);
    assert_non_null (first);
    assert_int_equal (strlen (first), 4 + 64 + 1);
    assert_true (strncmp (first, "bob ", 4) == 0);
    struct stat st;
    assert_int_equal (stat (pins, &st), 0);
    assert_int_equal (st.st_mode & 0777, 0600);
    type (bob, "/quit");
    skip_lines (alice);

    /* bob comes back with another key: the chat opens, so safety numbers
       can be compared, and bob's lines are shown, but nothing alice
       types goes out, now or later, until she trusts the new key. */
    conn_t *bob2 = login (fb, "bob", NULL);
    type (alice, "/talk bob");
    type (bob2, "/accept");
    expect_line (alice, "error key-changed WARNING: the broker gave for bob the key *");
    expect_line (alice, "accepted bob");
    expect_line (alice, "chat bob *");
    expect_line (bob2, "request alice");
    expect_line (bob2, "chat alice *");
    type (alice, "hello bob?");
    expect_line (alice, "error untrusted bob has a new key that you have not trusted: "
                 "not sent (compare safety numbers with bob, then /trust bob)");
    type (alice, "/verify bob");
    expect_line (alice, "error untrusted bob has a new key that you have not trusted: "
                 "/trust bob first, then /verify bob");
    type (bob2, "it is me");
    expect_line (alice, "msg bob it is me");
    expect_nothing (alice);
    expect_nothing (bob2);
    char *second = slurp (pins);
    assert_non_null (second);
    assert_string_equal (first, second);
    free (second);

    /* /trust re-pins bob's new key; what alice types goes again. */
    type (alice, "/trust carol");
    expect_line (alice, "error state no new key was seen for carol: nothing to trust");
    type (alice, "/trust bob");
    expect_line (alice, "trusted bob");
    type (alice, "hello bob");
    expect_line (bob2, "msg alice hello bob");
    expect_nothing (bob2);
    expect_nothing (alice);
    char *third = slurp (pins);
    assert_non_null (third);
    uint8_t pub[SC_PUB_LEN];
    assert_int_equal (sc_key_public_raw (bob2->key, pub), 0);
    char want[4 + 2 * SC_PUB_LEN + 2] = "bob ";
    for (size_t i = 0; i < SC_PUB_LEN; i++)
        snprintf (want + 4 + 2 * i, 3, "%02x", pub[i]);
    strcat (want, "\n");
    assert_string_equal (third, want);
    assert_int_equal (stat (pins, &st), 0);
    assert_int_equal (st.st_mode & 0777, 0600);
    free (first);
    free (third);
    type (alice, "/trust bob");
    expect_line (alice, "error state no new key was seen for bob: nothing to trust");
    broker_destroy (&fb);

    /* The pin survives a restart. */
    sc_pins_t *store = sc_pins_new (pins, NULL, 0);
    assert_non_null (store);
    assert_int_equal (sc_pins_size (store), 1);
    assert_int_equal (sc_pins_check (store, "bob", pub, NULL), SC_PIN_SAME);
    assert_false (sc_pins_verified (store, "bob"));
    sc_pins_destroy (&store);
    unlink (pins);
}

/* Lines typed while a changed key's chat is being set up are not kept
   to be sent once it is: they are refused when the key is seen. */
static void
test_untrusted_not_queued (void **state)
{
    (void) state;
    char pins[128];
    snprintf (pins, sizeof pins, "%s/queued.pins", g_dir);
    unlink (pins);
    fake_broker_t *fb = broker_new ();
    conn_t *alice = login (fb, "alice", NULL);
    conn_t *bob = login (fb, "bob", pins);
    type (alice, "/talk bob");
    type (bob, "/accept");
    skip_lines (alice);
    skip_lines (bob);
    type (alice, "/quit");
    conn_t *alice2 = login (fb, "alice", NULL);
    skip_lines (bob);
    type (alice2, "/talk bob");
    expect_line (bob, "request alice");
    /* bob accepts and types before the broker's CHAT comes */
    sc_client_command (bob->client, "/accept", 7, g_now);
    sc_client_command (bob->client, "typed early", 11, g_now);
    expect_nothing (bob);
    pump (fb);
    expect_line (bob, "error key-changed WARNING: the broker gave for alice the key *");
    expect_line (bob, "error untrusted alice has a new key that you have not trusted: "
                 "1 message typed for alice was not sent");
    expect_line (bob, "chat alice *");
    expect_nothing (bob);
    assert_int_equal (bob->nsent, 0);       /* refused: not said */
    expect_line (alice2, "accepted bob");
    expect_line (alice2, "chat bob *");
    expect_nothing (alice2);
    /* the chat ends: the new key is still not trusted, and still known */
    type (alice2, "/leave");
    expect_line (bob, "closed alice");
    type (bob, "/trust alice");
    expect_line (bob, "trusted alice");
    broker_destroy (&fb);
    unlink (pins);
}

/* A changed key is remembered per peer until /trust (or until the
   pinned key comes back): two peers' new keys can be trusted after both
   chats ended. */
static void
test_trust_per_peer (void **state)
{
    (void) state;
    char pins[128];
    snprintf (pins, sizeof pins, "%s/perpeer.pins", g_dir);
    unlink (pins);
    fake_broker_t *fb = broker_new ();
    conn_t *alice = login (fb, "alice", pins);
    const char *peers[] = { "bob", "carol" };
    conn_t *old[2], *now[2];
    for (int i = 0; i < 2; i++) {
        char line[64];
        old[i] = login (fb, peers[i], NULL);
        snprintf (line, sizeof line, "/talk %s", peers[i]);
        type (alice, line);
        type (old[i], "/accept");
        type (alice, "/leave");
        type (old[i], "/quit");
    }
    skip_lines (alice);
    for (int i = 0; i < 2; i++) {
        char line[64];
        now[i] = login (fb, peers[i], NULL);
        snprintf (line, sizeof line, "/talk %s", peers[i]);
        type (alice, line);
        type (now[i], "/accept");
        snprintf (line, sizeof line, "error key-changed WARNING: the broker gave for %s *",
                  peers[i]);
        expect_line (alice, line);
        type (alice, "/leave");
        skip_lines (alice);
    }
    type (alice, "/trust bob");
    expect_line (alice, "trusted bob");
    type (alice, "/trust carol");
    expect_line (alice, "trusted carol");
    expect_nothing (alice);
    sc_pins_t *store = sc_pins_new (pins, NULL, 0);
    assert_non_null (store);
    for (int i = 0; i < 2; i++) {
        uint8_t pub[SC_PUB_LEN];
        assert_int_equal (sc_key_public_raw (now[i]->key, pub), 0);
        assert_int_equal (sc_pins_check (store, peers[i], pub, NULL), SC_PIN_SAME);
    }
    sc_pins_destroy (&store);
    broker_destroy (&fb);
    unlink (pins);
}

/* /verify marks the pin; a verified peer whose key changes gets no chat
   at all until /trust, which drops the mark. */
static void
test_verified_key_change (void **state)
{
    (void) state;
    char pins[128];
    snprintf (pins, sizeof pins, "%s/verified.pins", g_dir);
    unlink (pins);
    fake_broker_t *fb = broker_new ();
    conn_t *alice = login (fb, "alice", pins);
    type (alice, "/verify bob");
    expect_line (alice, "error state no key is pinned for bob yet: chat with bob, "
                 "compare safety numbers, then /verify bob");
    type (alice, "/verify");
    expect_line (alice, "error usage /verify USER, where USER is 1 to 32 of a-z 0-9 _ -");
    type (alice, "/trust");
    expect_line (alice, "error usage /trust USER, where USER is 1 to 32 of a-z 0-9 _ -");
    conn_t *bob = login (fb, "bob", NULL);
    type (alice, "/talk bob");
    type (bob, "/accept");
    expect_line (alice, "accepted bob");
    expect_line (alice, "chat bob *");
    type (alice, "/verify bob");
    expect_line (alice, "verified bob");
    char *first = slurp (pins);
    assert_non_null (first);
    assert_int_equal (strlen (first), 4 + 64 + 9 + 1);
    assert_non_null (strstr (first, " verified\n"));
    type (bob, "/quit");
    skip_lines (alice);

    conn_t *bob2 = login (fb, "bob", NULL);
    type (alice, "/talk bob");
    type (bob2, "/accept");
    const char *warning = next_line (alice);
    assert_non_null (warning);
    assert_true (strncmp (warning, "error key-changed WARNING: the broker gave for bob "
                          "the key ", 59) == 0);
    assert_non_null (strstr (warning, "You verified bob's key, so the chat is closed"));
    expect_line (alice, "closed bob");
    expect_nothing (alice);
    expect_line (bob2, "request alice");
    expect_line (bob2, "closed alice");
    assert_int_equal (sc_client_state (alice->client), SC_CLIENT_IDLE);
    char *second = slurp (pins);
    assert_string_equal (first, second);
    free (second);
    /* no chat: nothing is sent either */
    type (alice, "hello");
    expect_line (alice, "error not-in-chat *");
    /* and again: closed again, the mark stays */
    type (alice, "/talk bob");
    type (bob2, "/accept");
    expect_line (alice, "error key-changed *");
    expect_line (alice, "closed bob");
    skip_lines (bob2);

    /* /trust: the new key, no mark; the next chat opens quietly */
    type (alice, "/trust bob");
    expect_line (alice, "trusted bob");
    second = slurp (pins);
    assert_null (strstr (second, "verified"));
    assert_int_equal (strlen (second), 4 + 64 + 1);
    free (second);
    type (alice, "/talk bob");
    type (bob2, "/accept");
    expect_line (alice, "accepted bob");
    expect_line (alice, "chat bob *");
    expect_nothing (alice);
    type (alice, "hi");
    expect_line (bob2, "request alice");
    expect_line (bob2, "chat alice *");
    expect_line (bob2, "msg alice hi");
    /* /verify for a pinned peer outside a chat works too */
    type (alice, "/leave");
    skip_lines (alice);
    type (alice, "/verify bob");
    expect_line (alice, "verified bob");
    second = slurp (pins);
    assert_non_null (strstr (second, " verified\n"));
    free (second);
    free (first);
    broker_destroy (&fb);
    unlink (pins);
}

/* A key the peer never proved (the key agreement failed) is not pinned:
   a broker that names a made-up key cannot take the real key's place. */
static void
test_pin_needs_proof (void **state)
{
    (void) state;
    char pins[128];
    snprintf (pins, sizeof pins, "%s/proof.pins", g_dir);
    unlink (pins);
    fake_broker_t *fb = broker_new ();
    conn_t *alice = login (fb, "alice", pins);
    conn_t *bob = login (fb, "bob", NULL);
    sc_key_t *fake = sc_key_generate ();
    assert_non_null (fake);
    register_user (fb, "bob", fake);
    type (alice, "/talk bob");
    expect_line (bob, "request alice");
    type (bob, "/accept");
    expect_line (alice, "accepted bob");
    expect_line (alice, "error e2e key agreement failed with bob: peer signature "
                 "does not verify: the chat is closed");
    expect_line (alice, "closed bob");
    expect_nothing (alice);
    expect_line (bob, "closed alice");
    assert_int_equal (access (pins, F_OK), -1);

    /* The real key next: first seen, pinned, no warning. */
    register_user (fb, "bob", bob->key);
    type (alice, "/talk bob");
    expect_line (bob, "request alice");
    type (bob, "/accept");
    expect_line (alice, "accepted bob");
    expect_line (alice, "chat bob *");
    expect_nothing (alice);
    char *pinned = slurp (pins);
    assert_non_null (pinned);
    uint8_t pub[SC_PUB_LEN];
    assert_int_equal (sc_key_public_raw (bob->key, pub), 0);
    char want[4 + 2 * SC_PUB_LEN + 2] = "bob ";
    for (size_t i = 0; i < SC_PUB_LEN; i++)
        snprintf (want + 4 + 2 * i, 3, "%02x", pub[i]);
    strcat (want, "\n");
    assert_string_equal (pinned, want);
    free (pinned);
    sc_key_destroy (&fake);
    broker_destroy (&fb);
    unlink (pins);
}

static void
test_pins_corrupt (void **state)
{
    (void) state;
    char pins[128], bad[140], why[512];
    snprintf (pins, sizeof pins, "%s/corrupt.pins", g_dir);
    snprintf (bad, sizeof bad, "%s.bad", pins);
    FILE *f = fopen (pins, "w");
    assert_non_null (f);
    fputs ("bob 00112233\n", f);
    fclose (f);
    sc_pins_t *store = sc_pins_new (pins, why, sizeof why);
    assert_non_null (store);
    assert_non_null (strstr (why, "corrupt (line 1)"));
    assert_int_equal (sc_pins_size (store), 0);
    assert_int_equal (access (pins, F_OK), -1);
    assert_int_equal (access (bad, F_OK), 0);
    uint8_t key[SC_PUB_LEN] = { 1, 2, 3 };
    assert_int_equal (sc_pins_check (store, "bob", key, NULL), SC_PIN_NEW);
    assert_int_equal (sc_pins_add (store, "bob", key, why, sizeof why), 0);
    assert_int_equal (sc_pins_check (store, "bob", key, NULL), SC_PIN_SAME);
    key[0] ^= 1;
    uint8_t old[SC_PUB_LEN];
    assert_int_equal (sc_pins_check (store, "bob", key, old), SC_PIN_CHANGED);
    assert_int_equal (old[0], 1);
    assert_int_equal (sc_pins_add (store, "bob", key, why, sizeof why), -1);
    sc_pins_destroy (&store);

    /* Reloaded as written; a second pin appends. Blank lines are fine,
       a pin twice is not. */
    store = sc_pins_new (pins, why, sizeof why);
    assert_string_equal (why, "");
    assert_int_equal (sc_pins_size (store), 1);
    sc_pins_destroy (&store);
    f = fopen (pins, "a");
    assert_non_null (f);
    fputs ("\ncarol 0000000000000000000000000000000000000000000000000000000000000000\n", f);
    fputs ("bob 0000000000000000000000000000000000000000000000000000000000000000\n", f);
    fclose (f);
    store = sc_pins_new (pins, why, sizeof why);
    assert_non_null (strstr (why, "corrupt (line 4)"));
    sc_pins_destroy (&store);

    /* Through the client: a notice, and the client works. */
    f = fopen (pins, "w");
    assert_non_null (f);
    fputs ("not a pin\n", f);
    fclose (f);
    fake_broker_t *fb = broker_new ();
    conn_t *alice = add_client (fb, "alice", true, g_ca, "secbroker", pins);
    const char *line = next_line (alice);
    assert_non_null (line);
    assert_non_null (strstr (line, "NOTICE pins file "));
    assert_non_null (strstr (line, "is corrupt (line 1): moved aside to"));
    broker_destroy (&fb);
    unlink (pins);
    unlink (bad);
}

/* The verified mark in the file: old files (no mark) still load, the
   mark is read back, written atomically with mode 0600, and dropped when
   the key is replaced; anything else after the key is corrupt. */
static void
test_pins_file_format (void **state)
{
    (void) state;
    char pins[128], bad[140], why[512];
    snprintf (pins, sizeof pins, "%s/format.pins", g_dir);
    snprintf (bad, sizeof bad, "%s.bad", pins);
    static const char zeros[] = "0000000000000000000000000000000000000000000000000000000000000000";
    static const char ones[] = "1111111111111111111111111111111111111111111111111111111111111111";
    FILE *f = fopen (pins, "w");
    assert_non_null (f);
    fprintf (f, "bob %s\ncarol %s verified\n", zeros, ones);
    fclose (f);
    sc_pins_t *store = sc_pins_new (pins, why, sizeof why);
    assert_non_null (store);
    assert_string_equal (why, "");
    assert_int_equal (sc_pins_size (store), 2);
    assert_true (sc_pins_has (store, "bob"));
    assert_false (sc_pins_has (store, "dave"));
    assert_false (sc_pins_verified (store, "bob"));
    assert_true (sc_pins_verified (store, "carol"));
    assert_false (sc_pins_verified (store, "dave"));
    assert_int_equal (sc_pins_verify (store, "dave", why, sizeof why), -1);
    assert_string_equal (why, "no key is pinned for dave");
    assert_int_equal (sc_pins_verify (store, "bob", why, sizeof why), 0);
    /* an offered key: in memory only, withdrawn by the pinned key,
       pinned (and the mark dropped) by sc_pins_trust */
    uint8_t key[SC_PUB_LEN], same[SC_PUB_LEN];
    memset (key, 0x22, sizeof key);
    memset (same, 0x11, sizeof same);
    assert_int_equal (sc_pins_trust (store, "carol", why, sizeof why), -1);
    assert_string_equal (why, "no new key was seen for carol");
    sc_pins_offer (store, "carol", key);
    assert_true (sc_pins_offered (store, "carol"));
    sc_pins_offer (store, "carol", same);
    assert_false (sc_pins_offered (store, "carol"));
    assert_int_equal (sc_pins_trust (store, "carol", why, sizeof why), -1);
    sc_pins_offer (store, "carol", key);
    sc_pins_offer (store, "dave", key);         /* no pin: nothing to offer */
    assert_false (sc_pins_offered (store, "dave"));
    assert_int_equal (sc_pins_trust (store, "carol", why, sizeof why), 0);
    assert_false (sc_pins_offered (store, "carol"));
    assert_false (sc_pins_verified (store, "carol"));
    assert_int_equal (sc_pins_check (store, "carol", key, NULL), SC_PIN_SAME);
    assert_int_equal (sc_pins_add (store, "dave", key, why, sizeof why), 0);
    sc_pins_destroy (&store);
    char *text = slurp (pins);
    char want[512];
    snprintf (want, sizeof want, "bob %s verified\ncarol %s\ndave %s\n", zeros,
              "2222222222222222222222222222222222222222222222222222222222222222",
              "2222222222222222222222222222222222222222222222222222222222222222");
    assert_string_equal (text, want);
    free (text);
    struct stat st;
    assert_int_equal (stat (pins, &st), 0);
    assert_int_equal (st.st_mode & 0777, 0600);

    const char *corrupt[] = { " verifie", " verified ", " trusted", "  verified" };
    for (size_t i = 0; i < sizeof corrupt / sizeof corrupt[0]; i++) {
        f = fopen (pins, "w");
        assert_non_null (f);
        fprintf (f, "bob %s%s\n", zeros, corrupt[i]);
        fclose (f);
        store = sc_pins_new (pins, why, sizeof why);
        assert_non_null (strstr (why, "corrupt (line 1)"));
        assert_int_equal (sc_pins_size (store), 0);
        sc_pins_destroy (&store);
        assert_int_equal (unlink (bad), 0);
    }
}

/* ---- Heartbeats and the broker's errors ------------------------------------- */

static void
test_heartbeat (void **state)
{
    (void) state;
    fake_broker_t *fb = broker_new ();
    conn_t *alice, *bob;
    open_chat (fb, &alice, &bob, NULL);
    int64_t t0 = g_now;
    assert_int_equal (sc_client_timeout (alice->client, t0), HB);
    tick (alice, t0 + HB - 1);
    assert_int_equal (alice->pings, 0);
    tick (alice, t0 + HB);              /* PING, answered at t0 + HB */
    assert_int_equal (alice->pings, 1);
    expect_nothing (alice);

    /* The broker goes silent: lost three heartbeats after its last word. */
    fb->deaf = true;
    tick (alice, t0 + 2 * HB);
    tick (alice, t0 + 3 * HB);
    assert_int_equal (sc_client_timeout (alice->client, g_now), HB);
    tick (alice, t0 + 4 * HB - 1);
    assert_int_equal (sc_client_state (alice->client), SC_CLIENT_CHATTING);
    expect_nothing (alice);
    tick (alice, t0 + 4 * HB);
    expect_line (alice, "error broker-lost *");
    expect_line (alice, "error unconfirmed-close bob (no answer from the broker)*");
    expect_line (alice, "closed bob");
    expect_nothing (alice);
    assert_int_equal (sc_client_state (alice->client), SC_CLIENT_OFFLINE);
    assert_int_equal (sc_client_timeout (alice->client, g_now), -1);

    /* Offline: refused, said so. */
    sc_client_command (alice->client, "hello?", 6, g_now);
    expect_line (alice, "error offline *");
    sc_client_command (alice->client, "/list", 5, g_now);
    expect_line (alice, "error offline *");

    /* Back with a fresh handshake on a new connection. */
    fb->deaf = false;
    drop_frames (alice);
    sc_channel_destroy (&alice->ch);
    alice->peer = -1;
    bob->peer = -1;
    alice->name[0] = 0;
    assert_int_equal (sc_client_start (alice->client, g_now), 0);
    pump (fb);
    expect_line (alice, "ready alice");
    type (alice, "/list");
    expect_line (alice, "users bob");
    broker_destroy (&fb);
}

static void
test_replaced (void **state)
{
    (void) state;
    fake_broker_t *fb = broker_new ();
    conn_t *alice, *bob;
    open_chat (fb, &alice, &bob, NULL);
    deliver_error (alice, SC_ERR_REPLACED, "", false);
    expect_line (alice, "error replaced a newer login of this user took over the session");
    expect_line (alice, "error unconfirmed-close bob (this session was replaced *");
    expect_line (alice, "closed bob");
    assert_int_equal (sc_client_state (alice->client), SC_CLIENT_DEAD);
    broker_destroy (&fb);
}

/* ERROR REVOKED: the user's key left the broker's registry. The chat
   closes, the session is over for good (no new login: it would be
   refused), and it is said like a failed login. The peer is told why its
   chat ended. */
static void
test_revoked (void **state)
{
    (void) state;
    fake_broker_t *fb = broker_new ();
    conn_t *alice, *bob;
    open_chat (fb, &alice, &bob, NULL);
    deliver_error (alice, SC_ERR_REVOKED, "your key was removed from the broker's registry",
                   false);
    expect_line (alice, "error revoked your key was removed from the broker's registry");
    expect_line (alice, "error unconfirmed-close bob (your key was revoked)*");
    expect_line (alice, "closed bob");
    expect_line (alice, "LOGIN_FAILED broker revoked the user alice: your key was removed "
                 "from the broker's registry");
    expect_nothing (alice);
    assert_int_equal (sc_client_state (alice->client), SC_CLIENT_DEAD);
    /* nothing more goes to the broker, not even a ping */
    drop_frames (alice);
    g_now += 60000;
    sc_client_tick (alice->client, g_now);
    assert_int_equal (alice->out_tail - alice->out_head, 0);
    assert_int_equal (sc_client_state (alice->client), SC_CLIENT_DEAD);

    deliver_named (bob, SC_OP_NOTIFY, "alice", SC_NOTIFY_REVOKED);
    expect_line (bob, "error revoked the broker logged alice out: alice's key was revoked");
    expect_line (bob, "error unconfirmed-close alice (the broker says alice was logged out (key revoked))*");
    expect_line (bob, "closed alice");
    expect_nothing (bob);
    assert_int_equal (sc_client_state (bob->client), SC_CLIENT_IDLE);
    broker_destroy (&fb);

    /* A request pending with a user who is revoked ends the same way;
       an empty detail gets the code's own text. */
    fb = broker_new ();
    alice = login (fb, "alice", NULL);
    bob = login (fb, "bob", NULL);
    type (alice, "/talk bob");
    expect_line (bob, "request alice");
    deliver_named (alice, SC_OP_NOTIFY, "bob", SC_NOTIFY_REVOKED);
    expect_line (alice, "error revoked the broker logged bob out: bob's key was revoked");
    expect_line (alice, "closed bob");
    assert_int_equal (sc_client_state (alice->client), SC_CLIENT_IDLE);
    deliver_error (bob, SC_ERR_REVOKED, "", false);
    expect_line (bob, "error revoked this user's key was revoked at the broker");
    expect_line (bob, "closed alice");
    expect_line (bob, "LOGIN_FAILED broker revoked the user bob: this user's key was "
                 "revoked at the broker");
    assert_int_equal (sc_client_state (bob->client), SC_CLIENT_DEAD);
    broker_destroy (&fb);
}

/* A plaintext ERROR cannot be authenticated: while the broker still
   answers (a PONG to the PING it prompts), it ends neither the session
   nor the chat. */
static void
test_forged_plain_error (void **state)
{
    (void) state;
    fake_broker_t *fb = broker_new ();
    conn_t *alice, *bob;
    open_chat (fb, &alice, &bob, NULL);
    int pings = alice->pings;
    deliver_error (alice, SC_ERR_STATE, "log in first", true);
    deliver_error (alice, SC_ERR_SHUTDOWN, "forged", true);
    pump (fb);
    assert_int_equal (alice->pings, pings + 1);     /* one probe, answered */
    for (int i = 0; i < 10; i++)       /* well past the probe's 2 s */
        tick (alice, g_now + HB);
    assert_int_equal (sc_client_state (alice->client), SC_CLIENT_CHATTING);
    expect_nothing (alice);
    sc_client_command (alice->client, "still here", 10, g_now);
    pump (fb);
    expect_line (bob, "msg alice still here");
    broker_destroy (&fb);
}

static void
test_shutdown_and_bad_frames (void **state)
{
    (void) state;
    fake_broker_t *fb = broker_new ();
    conn_t *alice = login (fb, "alice", NULL);
    /* Garbage and a plaintext frame after login: dropped, said so. */
    sc_client_recv (alice->client, (const uint8_t *) "junk", 4, g_now);
    expect_line (alice, "error malformed *");
    sc_msg_t msg;
    sc_msg_init (&msg, SC_OP_PONG);
    deliver_plain (alice, &msg);
    expect_line (alice, "error malformed *");
    assert_int_equal (sc_client_state (alice->client), SC_CLIENT_IDLE);
    /* A plaintext ERROR after login, and the broker really forgot the
       session: nothing authenticated comes back, lost after 2 s. */
    fb->deaf = true;
    deliver_error (alice, SC_ERR_STATE, "log in first", true);
    expect_nothing (alice);
    assert_true (sc_client_timeout (alice->client, g_now) <= 2000);
    tick (alice, g_now + 1999);
    assert_int_equal (sc_client_state (alice->client), SC_CLIENT_IDLE);
    tick (alice, g_now + 1);
    expect_line (alice, "error broker-lost the broker no longer knows this "
                 "session (state: log in first): reconnecting");
    assert_int_equal (sc_client_state (alice->client), SC_CLIENT_OFFLINE);
    fb->deaf = false;
    drop_frames (alice);
    sc_channel_destroy (&alice->ch);
    alice->name[0] = 0;
    assert_int_equal (sc_client_start (alice->client, g_now), 0);
    pump (fb);
    expect_line (alice, "ready alice");
    deliver_error (alice, SC_ERR_SHUTDOWN, "bye now", false);
    expect_line (alice, "error shutdown bye now");
    assert_int_equal (sc_client_state (alice->client), SC_CLIENT_OFFLINE);
    broker_destroy (&fb);
}

/* ---- Batch lines -------------------------------------------------------------- */

static void
test_format_batch (void **state)
{
    (void) state;
    char buf[SC_EVENT_LINE_MAX];
    sc_event_t ev = { .type = SC_EV_USERS, .text = "" };
    assert_int_equal (sc_event_format_batch (&ev, buf, sizeof buf), 6);
    assert_string_equal (buf, "users\n");
    ev = (sc_event_t) { .type = SC_EV_LOST, .name = "bob", .number = 3 };
    sc_event_format_batch (&ev, buf, sizeof buf);
    assert_string_equal (buf, "lost bob 3\n");
    ev = (sc_event_t) { .type = SC_EV_NOT_FOUND, .name = "zed" };
    sc_event_format_batch (&ev, buf, sizeof buf);
    assert_string_equal (buf, "not-found zed\n");
    ev = (sc_event_t) { .type = SC_EV_MISSED, .name = "carol" };
    sc_event_format_batch (&ev, buf, sizeof buf);
    assert_string_equal (buf, "missed carol\n");
    assert_int_equal (sc_event_format_batch (&ev, buf, 5), -1);
    ev = (sc_event_t) { .type = SC_EV_NOTICE, .text = "x" };
    assert_int_equal (sc_event_format_batch (&ev, buf, sizeof buf), 0);
    ev = (sc_event_t) { .type = SC_EV_BYE };
    sc_event_format_batch (&ev, buf, sizeof buf);
    assert_string_equal (buf, "bye\n");
    char clean[16];
    assert_int_equal (sc_client_sanitize ("a\0b\x1b", 4, clean), 4);
    assert_string_equal (clean, "a?b?");
}

/* ---- Fixture --------------------------------------------------------------- */

static int
make_keys (char *dir, sc_ca_t **ca)
{
    strcpy (dir, "/tmp/test_sc_client.XXXXXX");
    if (!mkdtemp (dir))
        return -1;
    char cmd[256];
    snprintf (cmd, sizeof cmd, "sh keys/secchat-keys %s/k >/dev/null", dir);
    if (system (cmd) != 0)
        return -1;
    char path[128];
    int err = 0;
    snprintf (path, sizeof path, "%s/k/ca.pem", dir);
    *ca = sc_ca_load (path, &err);
    return *ca ? 0 : -1;
}

static int
setup (void **state)
{
    (void) state;
    if (make_keys (g_dir, &g_ca) || make_keys (g_other, &g_other_ca))
        return -1;
    char path[128];
    int err = 0;
    snprintf (path, sizeof path, "%s/k/broker.key", g_dir);
    g_broker_key = sc_key_load_private (path, NULL, &err);
    snprintf (path, sizeof path, "%s/k/broker.crt", g_dir);
    if (!g_broker_key || sc_cert_load_der (path, &g_cert, &g_cert_len))
        return -1;
    return 0;
}

static int
teardown (void **state)
{
    (void) state;
    sc_ca_destroy (&g_ca);
    sc_ca_destroy (&g_other_ca);
    sc_key_destroy (&g_broker_key);
    free (g_cert);
    char cmd[200];
    snprintf (cmd, sizeof cmd, "rm -rf %s %s", g_dir, g_other);
    return system (cmd) == 0 ? 0 : -1;
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_login_ok),
        cmocka_unit_test (test_login_wrong_ca),
        cmocka_unit_test (test_login_wrong_broker_name),
        cmocka_unit_test (test_login_unknown_user),
        cmocka_unit_test (test_login_welcome_other_name),
        cmocka_unit_test (test_login_timeout_retry),
        cmocka_unit_test (test_login_internal_retry),
        cmocka_unit_test (test_enrol),
        cmocka_unit_test (test_enrol_refused),
        cmocka_unit_test (test_commands_before_login),
        cmocka_unit_test (test_request_and_answers),
        cmocka_unit_test (test_commands_checked),
        cmocka_unit_test (test_chat_messages),
        cmocka_unit_test (test_control_characters),
        cmocka_unit_test (test_replay_refused),
        cmocka_unit_test (test_too_far_ahead),
        cmocka_unit_test (test_lost_message),
        cmocka_unit_test (test_forged_box),
        cmocka_unit_test (test_leave_and_notify),
        cmocka_unit_test (test_notify_missed),
        cmocka_unit_test (test_unconfirmed_close),
        cmocka_unit_test (test_close_after_loss),
        cmocka_unit_test (test_close_covering_all),
        cmocka_unit_test (test_acks_coalesced),
        cmocka_unit_test (test_unacked_bytes_bounded),
        cmocka_unit_test (test_unconfirmed_on_session_end),
        cmocka_unit_test (test_channel_gap_and_forgery),
        cmocka_unit_test (test_ack_stops_at_loss),
        cmocka_unit_test (test_wire_size_hides_length),
        cmocka_unit_test (test_quit_in_chat),
        cmocka_unit_test (test_queued_during_keyx),
        cmocka_unit_test (test_pins),
        cmocka_unit_test (test_untrusted_not_queued),
        cmocka_unit_test (test_trust_per_peer),
        cmocka_unit_test (test_verified_key_change),
        cmocka_unit_test (test_pins_file_format),
        cmocka_unit_test (test_pin_needs_proof),
        cmocka_unit_test (test_pins_corrupt),
        cmocka_unit_test (test_heartbeat),
        cmocka_unit_test (test_forged_plain_error),
        cmocka_unit_test (test_revoked),
        cmocka_unit_test (test_replaced),
        cmocka_unit_test (test_shutdown_and_bad_frames),
        cmocka_unit_test (test_format_batch),
    };
    return cmocka_run_group_tests (tests, setup, teardown);
}
