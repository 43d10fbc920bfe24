/*  The broker turned against its users: end-to-end attacks.

    A test broker of its own runs in a thread (a CZMQ actor) on one
    ROUTER socket. It speaks the real protocol with the real broker key
    and certificate, and just enough of docs/PROTOCOL.md section 4 for a
    few users; real `secchat --batch` clients log in to it and chat
    through it. Commands over the actor's pipe switch what it does with
    the chats it relays, between the steps of a test:

        CHAT HONEST | MITM | SWAP NAME|both   how the next chat opens
        ONCE REPLAY|DROP|HOLD|REFLECT FROM    the next MESSAGE from FROM
        ONCE SKIP FROM N | COUNTER FROM N     its counter + N, or = N
        NOTIFY TO ABOUT REASON                a forged NOTIFY
        KCI TO AS SIGNER                      pose as AS to TO
        IMPOSTOR                              the next login: without the
                                              broker's key (random sig_B)
        SEQ N                                 the next AUTH_BROKER: with
                                              seq N in its envelope

    It holds every user's private key (the keys script leaves them with
    their passwords), so it can do anything a broker that stole them
    could. What it did comes back on the pipe as events ("dropped 2",
    "read alice hello"), and "bug ..." when the test broker itself went
    wrong.

    Each test reads every line the clients print, in order, up to their
    "bye" and the end of their output: nothing is printed that the test
    did not expect, so a forged, replayed or reflected text never shows
    up as `msg`.

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at https://mozilla.org/MPL/2.0/.
*/
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <czmq.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "sc_e2e.h"
#include "sc_handshake.h"
#include "sc_testkeys.h"
#include "sc_testpeer.h"
#include "sc_testproc.h"
#include "sc_wire.h"

#define S_HEARTBEAT_MS  5000
#define S_MAX_SESSIONS  8
#define S_PHANTOM       (-2)        /* chat peer: a user the broker poses as */
#define S_EVENT_MAX     512

/* ---- The users, and everything the broker knows about them -------------- */

typedef struct {
    const char *name;
    uint8_t pub[SC_PUB_LEN];        /* users/NAME.pub: the registry        */
    char fpr[SC_FPR_LEN + 1];
    sc_key_t *priv;                 /* clients/NAME.key: stolen            */
} s_user_t;

enum { S_ALICE, S_BOB, S_MALLORY, S_USERS };

typedef struct {
    sc_key_t *broker_key;
    uint8_t *cert;
    size_t cert_len;
    s_user_t users[S_USERS];
} s_world_t;

/* ---- The test broker (runs in its own thread) ------------------------------ */

typedef enum { S_CHAT_HONEST, S_CHAT_MITM, S_CHAT_SWAP } s_chat_mode_t;
typedef enum {
    S_ONCE_NONE, S_ONCE_REPLAY, S_ONCE_DROP, S_ONCE_HOLD, S_ONCE_REFLECT,
    S_ONCE_SKIP, S_ONCE_COUNTER
} s_once_t;

typedef struct {
    bool used;
    uint8_t rid[256];
    size_t rid_len;
    sc_handshake_t *hs;
    sc_channel_t *ch;
    char name[SC_NAME_MAX + 1];     /* "" until logged in                  */
    char waiting[SC_NAME_MAX + 1];  /* this one asked that user            */
    char asked_by[SC_NAME_MAX + 1]; /* that user asked this one            */
    int peer;                       /* chat peer's slot, -1, or S_PHANTOM  */
    sc_e2e_t *e2e;                  /* MITM: the broker's own E2E with it  */
    sc_testpeer_spec_t *spec;       /* IMPOSTOR: its handshake, by hand    */
} s_session_t;

typedef struct {
    zsock_t *pipe;
    zsock_t *router;
    const s_world_t *world;
    s_session_t sessions[S_MAX_SESSIONS];
    s_chat_mode_t chat_mode;
    char swap[SC_NAME_MAX + 1];     /* SWAP: whose view is lied to, "both" */
    s_once_t once;
    char once_from[SC_NAME_MAX + 1];
    uint64_t once_arg;
    bool impostor;                  /* IMPOSTOR: the next HELLO            */
    uint64_t hello_seq;             /* SEQ: the next AUTH_BROKER's seq     */
    uint8_t *held;                  /* HOLD: the body held back            */
    size_t held_len;
    uint64_t held_counter;
    struct {
        bool on;
        int victim;
        char as[SC_NAME_MAX + 1];
        const sc_key_t *signer;
        uint8_t e_priv[SC_KEY_LEN], nonce_i[SC_RANDOM_LEN], eph_i[SC_PUB_LEN];
    } kci;
} s_evil_t;

static void
s_event (s_evil_t *self, const char *fmt, ...) __attribute__ ((format (printf, 2, 3)));

/* Tell the test what was done (or that the test broker went wrong). */
static void
s_event (s_evil_t *self, const char *fmt, ...)
{
    char text[S_EVENT_MAX];
    va_list ap;
    va_start (ap, fmt);
    int n = vsnprintf (text, sizeof text, fmt, ap);
    va_end (ap);
    if (n < 0)
        text[0] = 0;
    if (zstr_sendm (self->pipe, "EVENT") || zstr_send (self->pipe, text))
        fprintf (stderr, "evil broker: cannot report '%s'\n", text);
}

static const s_user_t *
s_user (const s_evil_t *self, const char *name)
{
    for (size_t i = 0; i < S_USERS; i++)
        if (strcmp (self->world->users[i].name, name) == 0)
            return &self->world->users[i];
    return NULL;
}

static const uint8_t *
s_pub (const s_evil_t *self, const char *name)
{
    const s_user_t *user = s_user (self, name);
    return user ? user->pub : NULL;
}

static s_session_t *
s_by_name (s_evil_t *self, const char *name)
{
    for (size_t i = 0; i < S_MAX_SESSIONS; i++)
        if (self->sessions[i].used && self->sessions[i].ch
            && strcmp (self->sessions[i].name, name) == 0)
            return &self->sessions[i];
    return NULL;
}

static int
s_slot (const s_evil_t *self, const s_session_t *s)
{
    return (int) (s - self->sessions);
}

static void
s_session_free (s_session_t *s)
{
    sc_handshake_destroy (&s->hs);
    sc_channel_destroy (&s->ch);
    sc_e2e_destroy (&s->e2e);
    if (s->spec) {
        sc_wipe (s->spec, sizeof *s->spec);
        free (s->spec);
    }
    memset (s, 0, sizeof *s);
    s->peer = -1;
}

/* ---- Sending ---- */

static void
s_send_frame (s_evil_t *self, s_session_t *s, uint8_t *frame, size_t len)
{
    zmsg_t *msg = zmsg_new ();
    if (!msg || zmsg_addmem (msg, s->rid, s->rid_len) || zmsg_addmem (msg, frame, len)
        || zmsg_send (&msg, self->router))
        s_event (self, "bug: cannot send to %s", s->name);
    zmsg_destroy (&msg);
    free (frame);
}

static void
s_send_plain (s_evil_t *self, s_session_t *s, const sc_msg_t *msg)
{
    uint8_t *frame = NULL;
    size_t len = 0;
    if (sc_wire_plain (msg, &frame, &len))
        s_event (self, "bug: cannot encode %s", sc_opcode_name (msg->opcode));
    else
        s_send_frame (self, s, frame, len);
}

static void
s_send_raw (s_evil_t *self, s_session_t *s, uint8_t opcode,
            const uint8_t *body, size_t body_len)
{
    uint8_t *frame = NULL;
    size_t len = 0;
    if (sc_wire_seal_raw (s->ch, opcode, body, body_len, &frame, &len))
        s_event (self, "bug: cannot seal %s", sc_opcode_name (opcode));
    else
        s_send_frame (self, s, frame, len);
}

static void
s_send (s_evil_t *self, s_session_t *s, const sc_msg_t *msg)
{
    uint8_t *body = NULL;
    size_t len = 0;
    if (sc_msg_encode (msg, &body, &len))
        s_event (self, "bug: cannot encode %s", sc_opcode_name (msg->opcode));
    else
        s_send_raw (self, s, msg->opcode, body, len);
    free (body);
}

static void
s_send_named (s_evil_t *self, s_session_t *s, uint8_t opcode, const char *name,
              uint32_t code)
{
    sc_msg_t msg;
    sc_msg_init (&msg, opcode);
    msg.code = code;
    if (sc_msg_set_name (&msg, name))
        s_event (self, "bug: bad name %s", name);
    else
        s_send (self, s, &msg);
    sc_msg_reset (&msg);
}

static void
s_send_error (s_evil_t *self, s_session_t *s, uint32_t code, bool plain)
{
    sc_msg_t msg;
    sc_msg_init (&msg, SC_OP_ERROR);
    msg.code = code;
    if (sc_msg_set_text (&msg, "test broker says no"))
        s_event (self, "bug: cannot set an error text");
    else if (plain)
        s_send_plain (self, s, &msg);
    else
        s_send (self, s, &msg);
    sc_msg_reset (&msg);
}

static void
s_send_chat (s_evil_t *self, s_session_t *s, const char *name,
             const uint8_t key[static SC_PUB_LEN], bool initiator)
{
    sc_msg_t msg;
    sc_msg_init (&msg, SC_OP_CHAT);
    memcpy (msg.key, key, SC_PUB_LEN);
    msg.flag = initiator;
    if (sc_msg_set_name (&msg, name))
        s_event (self, "bug: bad name %s", name);
    else
        s_send (self, s, &msg);
    sc_msg_reset (&msg);
}

/* ---- Login (section 5, broker side) ---- */

/* IMPOSTOR: a broker that shows the real certificate (it is public)
   without the key it certifies. sig_B is 64 random bytes; everything
   else of AUTH_BROKER is right, since it made e_B: ss, the keys, TH2 and
   mac_B, computed by hand (sc_testpeer_spec_*). */
static void
s_impostor_hello (s_evil_t *self, s_session_t *s, const sc_msg_t *hello)
{
    sc_testpeer_spec_t *spec = calloc (1, sizeof *spec);
    uint8_t e_priv[SC_KEY_LEN];
    sc_msg_t reply;
    sc_msg_init (&reply, SC_OP_AUTH_BROKER);
    int rc = spec ? 0 : -1;
    if (rc == 0) {
        memcpy (spec->nonce_c, hello->nonce, SC_RANDOM_LEN);
        memcpy (spec->eph_c, hello->eph, SC_PUB_LEN);
        spec->cert = self->world->cert;
        spec->cert_len = self->world->cert_len;
        rc = sc_random (reply.nonce, SC_RANDOM_LEN)
          || sc_x25519_keygen (e_priv, reply.eph)
          || sc_x25519 (e_priv, hello->eph, spec->ss)
          || sc_random (reply.sig, SC_SIG_LEN) ? -1 : 0;
    }
    if (rc == 0) {
        memcpy (spec->nonce_b, reply.nonce, SC_RANDOM_LEN);
        memcpy (spec->eph_b, reply.eph, SC_PUB_LEN);
        rc = sc_testpeer_spec_broker (spec, reply.sig, reply.mac)
          || sc_msg_set_data (&reply, self->world->cert, self->world->cert_len) ? -1 : 0;
    }
    sc_wipe (e_priv, sizeof e_priv);
    if (rc) {
        s_event (self, "bug: the impostor cannot answer HELLO");
        if (spec) {
            sc_wipe (spec, sizeof *spec);
            free (spec);
        }
    }
    else {
        s->spec = spec;
        s_send_plain (self, s, &reply);
        s_event (self, "impostor hello");
    }
    sc_msg_reset (&reply);
}

/* IMPOSTOR: a client that took the forged AUTH_BROKER is logged in. */
static void
s_impostor_auth (s_evil_t *self, s_session_t *s, const sc_msg_t *auth)
{
    sc_session_keys_t keys;
    int rc = sc_testpeer_spec_open (s->spec, auth->data, auth->data_len)
          || sc_testpeer_spec_keys (s->spec, true, &keys)
          || !(s->ch = sc_channel_new (&keys)) ? -1 : 0;
    sc_wipe (&keys, sizeof keys);
    if (rc) {
        s_event (self, "bug: the impostor cannot open AUTH_CLIENT");
        return;
    }
    strcpy (s->name, s->spec->name);
    sc_wipe (s->spec, sizeof *s->spec);
    free (s->spec);
    s->spec = NULL;
    sc_msg_t welcome;
    sc_msg_init (&welcome, SC_OP_WELCOME);
    welcome.code = S_HEARTBEAT_MS;
    if (sc_msg_set_name (&welcome, s->name) == 0)
        s_send (self, s, &welcome);
    sc_msg_reset (&welcome);
    s_event (self, "impostor logged in %s", s->name);
}

static void
s_on_hello (s_evil_t *self, s_session_t *s, const sc_msg_t *hello)
{
    sc_handshake_destroy (&s->hs);
    if (s->spec) {
        sc_wipe (s->spec, sizeof *s->spec);
        free (s->spec);
        s->spec = NULL;
    }
    if (self->impostor) {
        self->impostor = false;
        s_impostor_hello (self, s, hello);
        return;
    }
    s->hs = sc_handshake_new_broker (self->world->broker_key, self->world->cert,
                                     self->world->cert_len);
    sc_msg_t reply;
    sc_msg_init (&reply, SC_OP_AUTH_BROKER);
    if (!s->hs
        || sc_handshake_broker_hello (s->hs, hello->suite, hello->nonce, hello->eph,
                                      reply.nonce, reply.eph, reply.sig, reply.mac)
        || sc_msg_set_data (&reply, self->world->cert, self->world->cert_len))
        s_send_error (self, s, SC_ERR_AUTH, true);
    else
    if (self->hello_seq) {
        /* SEQ: right in every way but the envelope's seq */
        uint8_t *body = NULL, *frame = NULL;
        size_t body_len = 0, len = 0;
        if (sc_msg_encode (&reply, &body, &body_len)
            || sc_envelope_encode (SC_OP_AUTH_BROKER, self->hello_seq, body, body_len,
                                   &frame, &len))
            s_event (self, "bug: cannot encode AUTH_BROKER");
        else {
            s_send_frame (self, s, frame, len);
            s_event (self, "hello with seq %llu", (unsigned long long) self->hello_seq);
        }
        free (body);
        self->hello_seq = 0;
    }
    else
        s_send_plain (self, s, &reply);
    sc_msg_reset (&reply);
}

static void
s_on_auth_client (s_evil_t *self, s_session_t *s, const sc_msg_t *auth)
{
    char name[SC_HS_NAME_MAX + 1] = "";
    const uint8_t *pub = NULL;
    sc_key_t *key = NULL;
    sc_session_keys_t keys;
    int rc = !s->hs || sc_handshake_broker_open (s->hs, auth->data, auth->data_len, name);
    if (rc == 0 && !(pub = s_pub (self, name))) {
        s_send_error (self, s, SC_ERR_UNKNOWN_USER, true);
        sc_handshake_destroy (&s->hs);
        return;
    }
    if (rc == 0)
        rc = !(key = sc_key_from_raw (pub))
          || sc_handshake_broker_verify (s->hs, key)
          || sc_handshake_keys (s->hs, &keys)
          || !(s->ch = sc_channel_new (&keys));
    sc_wipe (&keys, sizeof keys);
    sc_key_destroy (&key);
    sc_handshake_destroy (&s->hs);
    if (rc) {
        s_send_error (self, s, SC_ERR_AUTH, true);
        return;
    }
    /* A newer login replaces an older one (a client that died). */
    s_session_t *old = s_by_name (self, name);
    if (old && old != s)
        s_session_free (old);
    strcpy (s->name, name);
    sc_msg_t welcome;
    sc_msg_init (&welcome, SC_OP_WELCOME);
    welcome.code = S_HEARTBEAT_MS;
    if (sc_msg_set_name (&welcome, name) == 0)
        s_send (self, s, &welcome);
    sc_msg_reset (&welcome);
    s_event (self, "login %s", name);
}

/* ---- Requests and chats (section 4) ---- */

static void
s_on_list (s_evil_t *self, s_session_t *s)
{
    const char *names[S_MAX_SESSIONS];
    size_t n = 0;
    for (size_t i = 0; i < S_MAX_SESSIONS; i++)
        if (self->sessions[i].used && self->sessions[i].ch && &self->sessions[i] != s)
            names[n++] = self->sessions[i].name;
    for (size_t i = 1; i < n; i++)          /* sorted, bytewise */
        for (size_t j = i; j > 0 && strcmp (names[j - 1], names[j]) > 0; j--) {
            const char *swap = names[j];
            names[j] = names[j - 1];
            names[j - 1] = swap;
        }
    sc_msg_t msg;
    sc_msg_init (&msg, SC_OP_USERS);
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++)
        rc = sc_msg_add_name (&msg, names[i]);
    if (rc == 0)
        s_send (self, s, &msg);
    sc_msg_reset (&msg);
}

static bool
s_busy (const s_session_t *s)
{
    return s->peer != -1 || s->waiting[0] || s->asked_by[0];
}

static void
s_on_rtt (s_evil_t *self, s_session_t *a, const char *name)
{
    s_session_t *b = s_by_name (self, name);
    if (strcmp (name, a->name) == 0)
        s_send_error (self, a, SC_ERR_SELF, false);
    else if (s_busy (a))
        s_send_error (self, a, SC_ERR_STATE, false);
    else if (!b)
        s_send_named (self, a, SC_OP_USER_NOT_FOUND, name, 0);
    else if (s_busy (b))
        s_send_named (self, a, SC_OP_REFUSE, name, SC_REFUSE_BUSY);
    else {
        strcpy (a->waiting, b->name);
        strcpy (b->asked_by, a->name);
        s_send_named (self, b, SC_OP_RTT, a->name, 0);
    }
}

/* The key the broker hands to `to` for `about`: the registered one, or
   mallory's when this chat is lied about. */
static const uint8_t *
s_key_for (s_evil_t *self, const s_session_t *to, const s_session_t *about)
{
    bool lie = self->chat_mode == S_CHAT_MITM
            || (self->chat_mode == S_CHAT_SWAP
                && (strcmp (self->swap, "both") == 0 || strcmp (self->swap, to->name) == 0));
    return s_pub (self, lie ? "mallory" : about->name);
}

/* MITM: the broker runs the E2E exchange with each side itself, with
   mallory's key, as the responder towards the initiator a and as the
   initiator towards b. */
static void
s_mitm_open (s_evil_t *self, s_session_t *a, s_session_t *b)
{
    const s_user_t *mallory = s_user (self, "mallory");
    a->e2e = sc_e2e_new (mallory->priv, b->name, s_pub (self, a->name), a->name, false);
    b->e2e = sc_e2e_new (mallory->priv, a->name, s_pub (self, b->name), b->name, true);
    sc_msg_t start;
    sc_msg_init (&start, SC_OP_CC_SESSION);
    if (!a->e2e || !b->e2e
        || sc_e2e_start (b->e2e, &start.suite, start.nonce, start.eph))
        s_event (self, "bug: cannot start the MITM key agreements");
    else
        s_send (self, b, &start);
    sc_msg_reset (&start);
}

static void
s_kci_open (s_evil_t *self, s_session_t *b);

static void
s_on_accept (s_evil_t *self, s_session_t *b, const char *name)
{
    if (strcmp (b->asked_by, name) != 0) {
        s_send_error (self, b, SC_ERR_STATE, false);
        return;
    }
    if (self->kci.on && self->kci.victim == s_slot (self, b)
        && strcmp (name, self->kci.as) == 0) {
        s_kci_open (self, b);
        return;
    }
    s_session_t *a = s_by_name (self, name);
    b->asked_by[0] = 0;
    if (!a || strcmp (a->waiting, b->name) != 0) {
        s_send_error (self, b, SC_ERR_STATE, false);
        return;
    }
    a->waiting[0] = 0;
    a->peer = s_slot (self, b);
    b->peer = s_slot (self, a);
    s_send_chat (self, a, b->name, s_key_for (self, a, b), true);
    s_send_chat (self, b, a->name, s_key_for (self, b, a), false);
    if (self->chat_mode == S_CHAT_MITM)
        s_mitm_open (self, a, b);
    s_event (self, "chat %s %s", a->name, b->name);
}

static void
s_on_refuse (s_evil_t *self, s_session_t *b, const char *name)
{
    s_session_t *a = s_by_name (self, name);
    b->asked_by[0] = 0;
    if (a && strcmp (a->waiting, b->name) == 0) {
        a->waiting[0] = 0;
        s_send_named (self, a, SC_OP_REFUSE, b->name, SC_REFUSE_DECLINED);
    }
}

/* LEAVE (reason left) or QUIT (reason quit): end the chat or the
   request, and tell the other side. */
static void
s_on_leave (s_evil_t *self, s_session_t *s, uint32_t reason)
{
    s_event (self, "%s %s", reason == SC_NOTIFY_LEFT ? "leave" : "quit", s->name);
    if (s->peer >= 0) {
        s_session_t *p = &self->sessions[s->peer];
        s->peer = p->peer = -1;
        sc_e2e_destroy (&s->e2e);
        sc_e2e_destroy (&p->e2e);
        s_send_named (self, p, SC_OP_NOTIFY, s->name, reason);
    }
    else if (s->peer == S_PHANTOM) {
        s->peer = -1;
        self->kci.on = false;
        sc_wipe (self->kci.e_priv, sizeof self->kci.e_priv);
        s_event (self, "kci-closed");
    }
    else if (s->waiting[0]) {
        s_session_t *t = s_by_name (self, s->waiting);
        s->waiting[0] = 0;
        if (t && strcmp (t->asked_by, s->name) == 0) {
            t->asked_by[0] = 0;
            s_send_named (self, t, SC_OP_NOTIFY, s->name,
                          reason == SC_NOTIFY_LEFT ? SC_NOTIFY_CANCELLED : reason);
        }
    }
    else if (s->asked_by[0]) {
        s_session_t *t = s_by_name (self, s->asked_by);
        s->asked_by[0] = 0;
        if (t && strcmp (t->waiting, s->name) == 0) {
            t->waiting[0] = 0;
            s_send_named (self, t, SC_OP_NOTIFY, s->name, reason);
        }
    }
    else if (reason == SC_NOTIFY_LEFT)
        s_send_error (self, s, SC_ERR_STATE, false);
}

/* ---- Relaying, and the attacks on it ---- */

/* MITM: open with the sender's chain, read it, seal it again for the
   other side. */
static void
s_mitm_message (s_evil_t *self, s_session_t *s, s_session_t *p, const sc_msg_t *msg)
{
    size_t len = msg->data_len;
    uint8_t *pt = malloc (len), *box = malloc (len);
    uint64_t lost = 0;
    sc_e2e_plain_t plain = { 0 };
    sc_msg_t out;
    sc_msg_init (&out, SC_OP_MESSAGE);
    if (!pt || !box || len < SC_TAG_LEN
        || sc_e2e_open (s->e2e, msg->counter, msg->data, len, pt, &lost)
        || sc_e2e_plain_decode (pt, len - SC_TAG_LEN, &plain))
        s_event (self, "bug: the MITM cannot open a message from %s", s->name);
    else {
        if (plain.kind != SC_E2E_ACK)
            s_event (self, "read %s %s", s->name,
                     plain.kind == SC_E2E_CLOSE ? "(close)" : plain.text);
        if (sc_e2e_seal (p->e2e, pt, len - SC_TAG_LEN, &out.counter, box)
            || sc_msg_set_data (&out, box, len))
            s_event (self, "bug: the MITM cannot seal for %s", p->name);
        else
            s_send (self, p, &out);
    }
    sc_msg_reset (&out);
    free (plain.text);
    free (pt);
    free (box);
}

static void
s_mitm_relay (s_evil_t *self, s_session_t *s, s_session_t *p, const sc_msg_t *msg)
{
    if (msg->opcode == SC_OP_MESSAGE) {
        s_mitm_message (self, s, p, msg);
        return;
    }
    sc_msg_t out;
    sc_msg_init (&out, 0);
    int rc = 0;
    if (msg->opcode == SC_OP_CC_SESSION) {
        out.opcode = SC_OP_CC_REPLY;
        rc = sc_e2e_reply (s->e2e, msg->suite, msg->nonce, msg->eph,
                           out.nonce, out.eph, out.sig, out.mac);
    }
    else if (msg->opcode == SC_OP_CC_REPLY) {
        out.opcode = SC_OP_CC_FINISH;
        rc = sc_e2e_finish (s->e2e, msg->nonce, msg->eph, msg->sig, msg->mac,
                            out.sig, out.mac);
    }
    else
        rc = sc_e2e_confirm (s->e2e, msg->sig, msg->mac);
    if (rc == 0 && out.opcode)
        s_send (self, s, &out);
    sc_msg_reset (&out);
    if (rc)
        s_event (self, "bug: MITM key agreement with %s: %s", s->name, sc_e2e_strerror (rc));
    else if (sc_e2e_ready (s->e2e))
        s_event (self, "mitm-ready %s", s->name);
}

/* The one-shot attack on a MESSAGE from self->once_from. */
static void
s_once (s_evil_t *self, s_session_t *s, s_session_t *p, const sc_msg_t *msg,
        const uint8_t *body, size_t len)
{
    unsigned long long n = (unsigned long long) msg->counter;
    s_once_t once = self->once;
    self->once = S_ONCE_NONE;
    if (once == S_ONCE_REPLAY) {
        s_send_raw (self, p, SC_OP_MESSAGE, body, len);
        s_send_raw (self, p, SC_OP_MESSAGE, body, len);
        s_event (self, "replayed %llu", n);
    }
    else if (once == S_ONCE_DROP)
        s_event (self, "dropped %llu", n);
    else if (once == S_ONCE_HOLD && !self->held) {
        self->held = malloc (len);
        if (!self->held) {
            s_event (self, "bug: out of memory");
            return;
        }
        memcpy (self->held, body, len);
        self->held_len = len;
        self->held_counter = msg->counter;
        self->once = S_ONCE_HOLD;           /* until the next one */
        s_event (self, "held %llu", n);
    }
    else if (once == S_ONCE_HOLD) {
        s_send_raw (self, p, SC_OP_MESSAGE, body, len);
        s_send_raw (self, p, SC_OP_MESSAGE, self->held, self->held_len);
        s_event (self, "reordered %llu %llu", n, (unsigned long long) self->held_counter);
        free (self->held);
        self->held = NULL;
    }
    else if (once == S_ONCE_REFLECT) {
        s_send_raw (self, s, SC_OP_MESSAGE, body, len);
        s_event (self, "reflected %llu", n);
    }
    else {
        /* SKIP / COUNTER: a new counter, the same box (the broker cannot
           make a valid one). */
        sc_msg_t forged;
        sc_msg_init (&forged, SC_OP_MESSAGE);
        forged.counter = once == S_ONCE_SKIP ? msg->counter + self->once_arg : self->once_arg;
        if (sc_msg_set_data (&forged, msg->data, msg->data_len))
            s_event (self, "bug: cannot copy a box");
        else {
            s_send (self, p, &forged);
            s_event (self, "counter %llu to %llu", n, (unsigned long long) forged.counter);
        }
        sc_msg_reset (&forged);
    }
}

static void s_kci_relay (s_evil_t *self, s_session_t *b, const sc_msg_t *msg);

static void
s_relay (s_evil_t *self, s_session_t *s, const sc_msg_t *msg,
         const uint8_t *body, size_t len)
{
    if (s->peer == S_PHANTOM) {
        s_kci_relay (self, s, msg);
        return;
    }
    if (s->peer < 0) {
        s_send_error (self, s, SC_ERR_NO_CHAT, false);
        return;
    }
    s_session_t *p = &self->sessions[s->peer];
    if (s->e2e)
        s_mitm_relay (self, s, p, msg);
    else if (msg->opcode == SC_OP_MESSAGE && self->once != S_ONCE_NONE
             && strcmp (self->once_from, s->name) == 0)
        s_once (self, s, p, msg, body, len);
    else
        s_send_raw (self, p, msg->opcode, body, len);
}

/* ---- Key-compromise impersonation ---- */

/* Pose as kci.as to b: CHAT with as's real registered key, then the
   initiator's first message. */
static void
s_kci_open (s_evil_t *self, s_session_t *b)
{
    b->asked_by[0] = 0;
    b->peer = S_PHANTOM;
    s_send_chat (self, b, self->kci.as, s_pub (self, self->kci.as), false);
    sc_msg_t start;
    sc_msg_init (&start, SC_OP_CC_SESSION);
    start.suite = SC_SUITE_1;
    if (sc_random (self->kci.nonce_i, SC_RANDOM_LEN)
        || sc_x25519_keygen (self->kci.e_priv, self->kci.eph_i))
        s_event (self, "bug: no randomness");
    else {
        memcpy (start.nonce, self->kci.nonce_i, SC_RANDOM_LEN);
        memcpy (start.eph, self->kci.eph_i, SC_PUB_LEN);
        s_send (self, b, &start);
    }
    sc_msg_reset (&start);
}

static int
s_hash_id (sc_hash_t *h, const s_user_t *user)
{
    uint8_t len = (uint8_t) strlen (user->name);
    return sc_hash_update (h, &len, 1)
        || sc_hash_update (h, (const uint8_t *) user->name, len)
        || sc_hash_update (h, user->pub, SC_PUB_LEN);
}

/* H(a || b) */
static int
s_hash2 (const uint8_t *a, size_t a_len, const uint8_t *b, size_t b_len,
         uint8_t out[static SC_HASH_LEN])
{
    sc_hash_t *h = sc_hash_new ();
    int rc = h && !sc_hash_update (h, a, a_len) && !sc_hash_update (h, b, b_len)
          && !sc_hash_peek (h, out) ? 0 : -1;
    sc_hash_destroy (&h);
    return rc;
}

/* label || 0x00 || th: what each E2E signature covers. */
static size_t
s_labelled (const char *label, const uint8_t th[static SC_HASH_LEN], uint8_t *out)
{
    size_t len = strlen (label);
    memcpy (out, label, len);
    out[len] = 0;
    memcpy (out + len + 1, th, SC_HASH_LEN);
    return len + 1 + SC_HASH_LEN;
}

static int
s_expand (const uint8_t prk[static SC_HASH_LEN], const char *label,
          uint8_t out[static SC_KEY_LEN])
{
    return sc_hkdf_expand (prk, (const uint8_t *) label, strlen (label), out, SC_KEY_LEN);
}

/* The rest of docs/PROTOCOL.md E2/E3 as the initiator `as`, computed
   here from the spec: the transcript with as's and b's real keys, the
   shared secret, the finished keys, b's signature and MAC checked, all
   right, except that the initiator's signature is made with the key the
   broker has (kci.signer), not as's. */
static void
s_kci_finish (s_evil_t *self, s_session_t *b, const sc_msg_t *reply)
{
    const s_user_t *as = s_user (self, self->kci.as), *victim = s_user (self, b->name);
    static const uint8_t hdr[] = { 0, SC_PROTO_VERSION, SC_SUITE_1 };
    static const char th_label[] = "secchat/1 e2e";
    uint8_t ss[SC_KEY_LEN], te1[SC_HASH_LEN], te2[SC_HASH_LEN], te3[SC_HASH_LEN];
    uint8_t prk[SC_HASH_LEN], k_fr[SC_KEY_LEN], k_fi[SC_KEY_LEN], signed_msg[96];
    sc_hash_t *h = sc_hash_new ();
    int rc = as && victim && h
          && !sc_x25519 (self->kci.e_priv, reply->eph, ss)
          && !sc_hash_update (h, (const uint8_t *) th_label, strlen (th_label))
          && !sc_hash_update (h, hdr, sizeof hdr)
          && !s_hash_id (h, as) && !s_hash_id (h, victim)
          && !sc_hash_update (h, self->kci.nonce_i, SC_RANDOM_LEN)
          && !sc_hash_update (h, self->kci.eph_i, SC_PUB_LEN)
          && !sc_hash_update (h, reply->nonce, SC_RANDOM_LEN)
          && !sc_hash_update (h, reply->eph, SC_PUB_LEN)
          && !sc_hash_peek (h, te1)
          && !sc_hkdf_extract (te1, SC_HASH_LEN, ss, SC_KEY_LEN, prk)
          && !s_expand (prk, "secchat/1 e2e finished responder", k_fr)
          && !s_expand (prk, "secchat/1 e2e finished initiator", k_fi) ? 0 : -1;
    sc_hash_destroy (&h);
    size_t len = 0;
    if (rc == 0) {
        /* b's reply checks out under this transcript: the forgery below
           is right in everything but the key it is signed with. */
        len = s_labelled ("secchat/1 e2e responder signature", te1, signed_msg);
        bool sig_ok = sc_ed25519_verify (victim->pub, signed_msg, len, reply->sig,
                                         SC_SIG_LEN) == 0;
        rc = s_hash2 (te1, SC_HASH_LEN, reply->sig, SC_SIG_LEN, te2);
        bool mac_ok = rc == 0 && sc_hmac_verify (k_fr, te2, SC_HASH_LEN, reply->mac) == 0;
        s_event (self, "kci-reply %s", sig_ok && mac_ok ? "verified" : "bad");
    }
    sc_msg_t finish;
    sc_msg_init (&finish, SC_OP_CC_FINISH);
    if (rc == 0)
        len = s_labelled ("secchat/1 e2e initiator signature", te2, signed_msg);
    if (rc == 0
        && !sc_key_sign (self->kci.signer, signed_msg, len, finish.sig)
        && !s_hash2 (te2, SC_HASH_LEN, finish.sig, SC_SIG_LEN, te3)
        && !sc_hmac (k_fi, te3, SC_HASH_LEN, finish.mac))
        s_send (self, b, &finish);
    else
        s_event (self, "bug: cannot forge the finish");
    sc_msg_reset (&finish);
    sc_wipe (ss, sizeof ss);
    sc_wipe (prk, sizeof prk);
    sc_wipe (k_fr, sizeof k_fr);
    sc_wipe (k_fi, sizeof k_fi);
    sc_wipe (self->kci.e_priv, sizeof self->kci.e_priv);
}

static void
s_kci_relay (s_evil_t *self, s_session_t *b, const sc_msg_t *msg)
{
    if (msg->opcode == SC_OP_CC_REPLY)
        s_kci_finish (self, b, msg);
    else if (msg->opcode == SC_OP_MESSAGE)
        s_event (self, "kci-message %llu", (unsigned long long) msg->counter);
    else
        s_event (self, "bug: unexpected %s in the KCI chat", sc_opcode_name (msg->opcode));
}

/* ---- Dispatch ---- */

static void
s_on_session (s_evil_t *self, s_session_t *s, const uint8_t *data, size_t len)
{
    uint8_t opcode = 0, *body = NULL;
    size_t body_len = 0;
    sc_msg_t msg;
    sc_msg_init (&msg, 0);
    if (sc_wire_open_raw (s->ch, data, len, &opcode, &body, &body_len)
        || sc_msg_decode (opcode, body, body_len, &msg)) {
        s_event (self, "bug: a frame from %s does not open or decode", s->name);
        sc_msg_reset (&msg);
        free (body);
        return;
    }
    switch (opcode) {
        case SC_OP_PING: {
            sc_msg_t pong;
            sc_msg_init (&pong, SC_OP_PONG);
            s_send (self, s, &pong);
            break;
        }
        case SC_OP_LIST:    s_on_list (self, s); break;
        case SC_OP_RTT:     s_on_rtt (self, s, msg.name); break;
        case SC_OP_ACCEPT:  s_on_accept (self, s, msg.name); break;
        case SC_OP_REFUSE:  s_on_refuse (self, s, msg.name); break;
        case SC_OP_LEAVE:   s_on_leave (self, s, SC_NOTIFY_LEFT); break;
        case SC_OP_QUIT:
            s_on_leave (self, s, SC_NOTIFY_QUIT);
            s_session_free (s);
            break;
        case SC_OP_MESSAGE:
        case SC_OP_CC_SESSION:
        case SC_OP_CC_REPLY:
        case SC_OP_CC_FINISH:
            s_relay (self, s, &msg, body, body_len);
            break;
        default:
            s_send_error (self, s, SC_ERR_STATE, false);
    }
    sc_msg_reset (&msg);
    sc_wipe (body, body_len);
    free (body);
}

static void
s_on_handshake (s_evil_t *self, s_session_t *s, const uint8_t *data, size_t len)
{
    sc_msg_t msg;
    if (sc_wire_open_plain (data, len, &msg))
        s_send_error (self, s, SC_ERR_MALFORMED, true);
    else if (msg.opcode == SC_OP_HELLO)
        s_on_hello (self, s, &msg);
    else if (msg.opcode == SC_OP_AUTH_CLIENT && s->spec)
        s_impostor_auth (self, s, &msg);
    else if (msg.opcode == SC_OP_AUTH_CLIENT)
        s_on_auth_client (self, s, &msg);
    else
        s_send_error (self, s, SC_ERR_STATE, true);
    sc_msg_reset (&msg);
}

static void
s_on_router (s_evil_t *self)
{
    zmsg_t *msg = zmsg_recv (self->router);
    zframe_t *rid = msg ? zmsg_pop (msg) : NULL;
    zframe_t *env = msg ? zmsg_pop (msg) : NULL;
    if (!rid || !env || zmsg_size (msg) != 0 || zframe_size (rid) > sizeof self->sessions[0].rid) {
        zframe_destroy (&rid);
        zframe_destroy (&env);
        zmsg_destroy (&msg);
        return;
    }
    s_session_t *s = NULL, *free_slot = NULL;
    for (size_t i = 0; i < S_MAX_SESSIONS && !s; i++) {
        s_session_t *it = &self->sessions[i];
        if (it->used && it->rid_len == zframe_size (rid)
            && memcmp (it->rid, zframe_data (rid), it->rid_len) == 0)
            s = it;
        else if (!it->used && !free_slot)
            free_slot = it;
    }
    if (!s && free_slot) {
        s = free_slot;
        s_session_free (s);
        s->used = true;
        s->rid_len = zframe_size (rid);
        memcpy (s->rid, zframe_data (rid), s->rid_len);
    }
    if (!s)
        s_event (self, "bug: too many sessions");
    else if (s->ch)
        s_on_session (self, s, zframe_data (env), zframe_size (env));
    else
        s_on_handshake (self, s, zframe_data (env), zframe_size (env));
    zframe_destroy (&rid);
    zframe_destroy (&env);
    zmsg_destroy (&msg);
}

/* ---- Commands from the test ---- */

static int
s_cmd_once (s_evil_t *self, const char *what, const char *from, const char *arg)
{
    static const struct { const char *word; s_once_t once; } words[] = {
        { "REPLAY", S_ONCE_REPLAY }, { "DROP", S_ONCE_DROP }, { "HOLD", S_ONCE_HOLD },
        { "REFLECT", S_ONCE_REFLECT }, { "SKIP", S_ONCE_SKIP }, { "COUNTER", S_ONCE_COUNTER }
    };
    if (!from[0])
        return -1;
    for (size_t i = 0; i < sizeof words / sizeof words[0]; i++)
        if (strcmp (what, words[i].word) == 0) {
            self->once = words[i].once;
            snprintf (self->once_from, sizeof self->once_from, "%s", from);
            self->once_arg = strtoull (arg, NULL, 10);
            return 0;
        }
    return -1;
}

/* KCI TO AS SIGNER: a request from AS to TO, and after TO accepts, the
   E2E exchange as AS, signed by SIGNER's key. */
static int
s_cmd_kci (s_evil_t *self, const char *to, const char *as, const char *signer)
{
    s_session_t *victim = s_by_name (self, to);
    const s_user_t *user = s_user (self, signer);
    if (!victim || s_busy (victim) || !user || !s_pub (self, as) || self->kci.on)
        return -1;
    self->kci.on = true;
    self->kci.victim = s_slot (self, victim);
    self->kci.signer = user->priv;
    snprintf (self->kci.as, sizeof self->kci.as, "%s", as);
    strcpy (victim->asked_by, self->kci.as);
    s_send_named (self, victim, SC_OP_RTT, self->kci.as, 0);
    return 0;
}

static int
s_command (s_evil_t *self, const char *line)
{
    char word[16] = "", a[SC_NAME_MAX + 1] = "", b[SC_NAME_MAX + 1] = "",
         c[SC_NAME_MAX + 1] = "";
    if (sscanf (line, "%15s %32s %32s %32s", word, a, b, c) < 1)
        return -1;
    if (strcmp (word, "CHAT") == 0) {
        self->chat_mode = strcmp (a, "MITM") == 0 ? S_CHAT_MITM
                        : strcmp (a, "SWAP") == 0 ? S_CHAT_SWAP : S_CHAT_HONEST;
        snprintf (self->swap, sizeof self->swap, "%s", b);
        return self->chat_mode != S_CHAT_HONEST || strcmp (a, "HONEST") == 0 ? 0 : -1;
    }
    if (strcmp (word, "ONCE") == 0)
        return s_cmd_once (self, a, b, c);
    if (strcmp (word, "NOTIFY") == 0) {
        s_session_t *to = s_by_name (self, a);
        if (!to || !sc_name_valid (b, strlen (b)))
            return -1;
        s_send_named (self, to, SC_OP_NOTIFY, b, (uint32_t) strtoul (c, NULL, 10));
        return 0;
    }
    if (strcmp (word, "KCI") == 0)
        return s_cmd_kci (self, a, b, c);
    if (strcmp (word, "IMPOSTOR") == 0) {
        self->impostor = true;
        return 0;
    }
    if (strcmp (word, "SEQ") == 0) {
        self->hello_seq = strtoull (a, NULL, 10);
        return self->hello_seq ? 0 : -1;
    }
    return -1;
}

/* The actor (args: the s_world_t): signals once bound, then sends its
   endpoint, or "ERROR". */
static void
s_evil_broker (zsock_t *pipe, void *args)
{
    s_evil_t *self = calloc (1, sizeof *self);
    zsock_t *router = zsock_new_router ("tcp://127.0.0.1:!");
    zpoller_t *poller = router ? zpoller_new (pipe, router, NULL) : NULL;
    if (zsock_signal (pipe, 0) || !self || !poller) {
        if (zstr_send (pipe, "ERROR"))
            fprintf (stderr, "evil broker: cannot start nor say so\n");
        free (self);
        zpoller_destroy (&poller);
        zsock_destroy (&router);
        return;
    }
    self->pipe = pipe;
    self->router = router;
    self->world = (const s_world_t *) args;
    for (size_t i = 0; i < S_MAX_SESSIONS; i++)
        s_session_free (&self->sessions[i]);
    zsock_set_maxmsgsize (router, SC_ENVELOPE_MAX);
    bool running = zstr_send (pipe, zsock_endpoint (router)) == 0;
    while (running) {
        void *which = zpoller_wait (poller, -1);
        if (which == router)
            s_on_router (self);
        else if (which == pipe) {
            char *line = zstr_recv (pipe);
            if (!line || streq (line, "$TERM"))
                running = false;
            else if (zstr_send (pipe, s_command (self, line) ? "ERR" : "OK"))
                running = false;
            zstr_free (&line);
        }
        else
            running = false;
    }
    for (size_t i = 0; i < S_MAX_SESSIONS; i++)
        s_session_free (&self->sessions[i]);
    free (self->held);
    sc_wipe (self, sizeof *self);
    free (self);
    zpoller_destroy (&poller);
    zsock_destroy (&router);
}

/* ---- The test side ------------------------------------------------------------ */

static struct {
    sc_testkeys_t *keys;
    s_world_t world;
    char honest[SC_SAFETY_LEN + 1];     /* safety number of alice + bob   */
    char *dir;                          /* logs, config dirs: one per run */
    int runs;
    char *work;                         /* this run's workdir             */
    zactor_t *evil;
    zlist_t *events;                    /* reported, not yet expected      */
    char endpoint[256];
} T;

static int
s_timeout (void)
{
    return sc_testproc_timeout (10000);
}

/* The next pipe message, within timeout_ms: "OK" or "ERR" (malloc'd),
   or "EVENT" after storing the event in T.events. NULL on timeout. */
static char *
s_evil_recv (int timeout_ms)
{
    zsock_t *sock = zactor_sock (T.evil);
    zsock_set_rcvtimeo (sock, timeout_ms > 0 ? timeout_ms : 0);
    char *word = zstr_recv (sock);
    if (!word || !streq (word, "EVENT"))
        return word;
    char *event = zstr_recv (sock);
    if (event && zlist_append (T.events, event))
        zstr_free (&event);
    return word;
}

static void
s_evil (const char *command)
{
    if (zstr_send (T.evil, command))
        fail_msg ("cannot command the test broker: %s", command);
    int64_t until = sc_testproc_now_ms () + s_timeout ();
    char *answer = NULL;
    while (!answer || streq (answer, "EVENT")) {
        zstr_free (&answer);
        int64_t left = until - sc_testproc_now_ms ();
        if (left <= 0 || !(answer = s_evil_recv ((int) left)))
            break;
    }
    if (!answer || !streq (answer, "OK"))
        fail_msg ("test broker: '%s' answered %s", command, answer ? answer : "nothing");
    zstr_free (&answer);
}

/* The test broker reported `event` (now or before, in any order). */
static void
s_evil_saw (const char *event)
{
    int64_t until = sc_testproc_now_ms () + s_timeout ();
    while (true) {
        for (char *it = zlist_first (T.events); it; it = zlist_next (T.events))
            if (streq (it, event)) {
                zlist_remove (T.events, it);
                zstr_free (&it);
                return;
            }
        int64_t left = until - sc_testproc_now_ms ();
        char *other = left > 0 ? s_evil_recv ((int) left) : NULL;
        if (!other)
            break;
        zstr_free (&other);             /* a stray OK: ignore */
    }
    fprintf (stderr, "test broker events:\n");
    for (char *it = zlist_first (T.events); it; it = zlist_next (T.events))
        fprintf (stderr, "  %s\n", it);
    fail_msg ("the test broker did not report '%s'", event);
}

/* No "bug ..." from the test broker itself. */
static void
s_evil_ok (void)
{
    char *stray;
    while ((stray = s_evil_recv (0)))
        zstr_free (&stray);
    for (char *it = zlist_first (T.events); it; it = zlist_next (T.events))
        if (strncmp (it, "bug", 3) == 0)
            fail_msg ("test broker: %s", it);
}

/* ---- Clients ---- */

#define SEE(p, line) \
    assert_int_equal (sc_testproc_expect ((p), (line), s_timeout ()), 0)
#define SAY(p, line) \
    assert_int_equal (sc_testproc_send ((p), (line)), 0)
#define SEE_NOTHING(p) \
    assert_int_equal (sc_testproc_expect_none ((p), sc_testproc_timeout (300)), 0)

/* A line that starts with prefix: the rest of it (borrowed). */
static const char *
s_see_prefix (sc_testproc_t *p, const char *prefix)
{
    const char *line = sc_testproc_expect_prefix (p, prefix, s_timeout ());
    assert_non_null (line);
    return line + strlen (prefix);
}

/* Lines each client said (and its peer showed) in the current chat;
   forgotten with each new run (s_new_run). */
#define S_SAID_MAX 16
static struct {
    sc_testproc_t *p;
    unsigned long long said;
} s_said[S_SAID_MAX];

/* A new workdir: fresh config dirs (no pins) for the clients started
   after. */
static void
s_new_run (void)
{
    free (T.work);
    char name[32];
    snprintf (name, sizeof name, "run-%d", ++T.runs);
    T.work = sc_testdir_path (T.dir, name);
    assert_int_equal (mkdir (T.work, 0700), 0);
    memset (s_said, 0, sizeof s_said);
}

static sc_testproc_t *
s_client (const char *user)
{
    sc_testclient_t opts = { .keys = sc_testkeys_dir (T.keys), .workdir = T.work,
                             .endpoint = T.endpoint, .user = user };
    sc_testproc_t *p = sc_testproc_client_new (&opts);
    assert_non_null (p);
    char line[64];
    snprintf (line, sizeof line, "ready %s", user);
    SEE (p, line);
    snprintf (line, sizeof line, "login %s", user);
    s_evil_saw (line);
    return p;
}

/* /quit outside a chat: "bye", the end of the output, exit 0. */
static void
s_quit (sc_testproc_t **p_p)
{
    SAY (*p_p, "/quit");
    SEE (*p_p, "bye");
    assert_int_equal (sc_testproc_expect_eof (*p_p, s_timeout ()), 0);
    assert_int_equal (sc_testproc_wait (*p_p, s_timeout ()), 0);
    sc_testproc_destroy (p_p);
}

/* alice asks, bob accepts: the key agreement starts on both sides. */
static void
s_request (sc_testproc_t *alice, sc_testproc_t *bob)
{
    SAY (alice, "/talk bob");
    SEE (bob, "request alice");
    SAY (bob, "/accept");
}

static void
s_see_chat (sc_testproc_t *p, const char *peer, const char *safety)
{
    char line[128];
    snprintf (line, sizeof line, "chat %s %s", peer, safety);
    SEE (p, line);
}


static unsigned long long *
s_said_of (sc_testproc_t *p)
{
    for (size_t i = 0; i < S_SAID_MAX; i++)
        if (s_said[i].p == p || !s_said[i].p) {
            s_said[i].p = p;
            return &s_said[i].said;
        }
    fail_msg ("too many clients");
    return &s_said[0].said;     /* not reached */
}

/* p's peer has acknowledged every line p said in this chat: what p
   reports as unconfirmed when the chat ends is then only what the
   test made so (the acknowledgements come within a second). */
static void
s_settle (sc_testproc_t *p, const char *peer)
{
    unsigned long long said = *s_said_of (p);
    if (said)
        assert_int_equal (sc_testproc_expect_acked (p, peer, said, s_timeout ()), 0);
}

/* An honest chat between alice and bob, open on both sides. */
static void
s_open_chat (sc_testproc_t *alice, sc_testproc_t *bob)
{
    *s_said_of (alice) = 0;
    *s_said_of (bob) = 0;
    s_request (alice, bob);
    SEE (alice, "accepted bob");
    s_see_chat (alice, "bob", T.honest);
    s_see_chat (bob, "alice", T.honest);
}

/* from says text, to shows it. */
static void
s_message (sc_testproc_t *from, const char *from_name, sc_testproc_t *to,
           const char *text)
{
    SAY (from, text);
    char line[256];
    snprintf (line, sizeof line, "msg %s %s", from_name, text);
    SEE (to, line);
    (*s_said_of (from))++;
}

/* The honest end of a chat: once bob confirmed what alice said, alice
   leaves, both see "closed" and nothing else (no unconfirmed-close: the
   E2E close came first and covers every line; nothing unacknowledged). */
static void
s_leave (sc_testproc_t *alice, sc_testproc_t *bob)
{
    s_settle (alice, "bob");
    SAY (alice, "/leave");
    SEE (alice, "closed bob");
    SEE (bob, "closed alice");
}

static const char s_e2e_sig[] = "peer signature does not verify: the chat is closed";

/* ---- Fixture ---- */

static int
s_load_world (void)
{
    s_world_t *w = &T.world;
    static const char *names[S_USERS] = { "alice", "bob", "mallory" };
    int err = 0;
    w->broker_key = sc_key_load_private (sc_testkeys_path (T.keys, "broker.key"), NULL, &err);
    if (!w->broker_key
        || sc_cert_load_der (sc_testkeys_path (T.keys, "broker.crt"), &w->cert, &w->cert_len))
        return -1;
    for (size_t i = 0; i < S_USERS; i++) {
        s_user_t *u = &w->users[i];
        char rel[64];
        snprintf (rel, sizeof rel, "users/%s.pub", names[i]);
        u->name = names[i];
        sc_key_t *pub = sc_key_load_public (sc_testkeys_path (T.keys, rel), &err);
        int rc = !pub || sc_key_public_raw (pub, u->pub) || sc_fingerprint (u->pub, u->fpr);
        sc_key_destroy (&pub);
        /* The password sits next to the key (keys/secchat-keys, demo
           only): the broker that stole the key file has it too. */
        u->priv = sc_testkeys_user_key (T.keys, names[i]);
        if (rc || !u->priv)
            return -1;
    }
    return sc_safety_number ("alice", w->users[S_ALICE].pub, "bob", w->users[S_BOB].pub,
                             T.honest);
}

static int
s_group_setup (void **state)
{
    (void) state;
    zsys_init ();
    zsys_set_logstream (stderr);
    T.keys = sc_testkeys_new (NULL, "alice", "bob", "mallory", NULL);
    T.dir = sc_testdir_new ("malbroker");
    T.events = zlist_new ();
    if (!T.keys || !T.dir || !T.events || s_load_world ()) {
        fprintf (stderr, "test_malicious_broker: cannot make or load the keys\n");
        return -1;
    }
    return 0;
}

static int
s_group_teardown (void **state)
{
    (void) state;
    sc_key_destroy (&T.world.broker_key);
    free (T.world.cert);
    for (size_t i = 0; i < S_USERS; i++)
        sc_key_destroy (&T.world.users[i].priv);
    sc_testkeys_destroy (&T.keys);
    if (T.dir)
        sc_testdir_remove (T.dir);
    free (T.dir);
    free (T.work);
    zlist_destroy (&T.events);
    return 0;
}

static int
s_setup (void **state)
{
    (void) state;
    T.evil = zactor_new (s_evil_broker, &T.world);
    if (!T.evil)
        return -1;
    zsock_set_rcvtimeo (zactor_sock (T.evil), sc_testproc_timeout (5000));
    char *endpoint = zstr_recv (T.evil);
    int rc = endpoint && strncmp (endpoint, "tcp://", 6) == 0 ? 0 : -1;
    if (rc == 0)
        snprintf (T.endpoint, sizeof T.endpoint, "%s", endpoint);
    zstr_free (&endpoint);
    s_new_run ();
    return rc;
}

static int
s_teardown (void **state)
{
    (void) state;
    sc_testproc_destroy_all ();
    zactor_destroy (&T.evil);
    char *it;
    while ((it = zlist_pop (T.events)))
        zstr_free (&it);
    return 0;
}

/* ---- Helpers of the tests ---- */

static const s_user_t *
s_world_user (const char *name)
{
    for (size_t i = 0; i < S_USERS; i++)
        if (strcmp (T.world.users[i].name, name) == 0)
            return &T.world.users[i];
    fail_msg ("no user %s", name);
    return NULL;
}

/* The safety number a sees in a chat with peer when the broker gave a
   the key of holder for peer. */
static void
s_safety (const char *a, const char *peer, const char *holder,
          char out[static SC_SAFETY_LEN + 1])
{
    assert_int_equal (sc_safety_number (a, s_world_user (a)->pub, peer,
                                        s_world_user (holder)->pub, out), 0);
}

/* What NAME's pins file holds: one "peer hex-key" line per peer. */
static char *
s_pins (const char *name)
{
    char rel[64];
    snprintf (rel, sizeof rel, "cfg-%s/%s.pins", name, name);
    char *path = sc_testdir_path (T.work, rel);
    char *text = sc_testdir_slurp (path, NULL);
    free (path);
    return text;
}

static void
s_pin_line (const char *peer, char *out, size_t size)
{
    const uint8_t *pub = s_world_user (peer)->pub;
    int n = snprintf (out, size, "%s ", peer);
    for (size_t i = 0; i < SC_PUB_LEN && n > 0 && (size_t) n < size; i++)
        n += snprintf (out + n, size - (size_t) n, "%02x", pub[i]);
    assert_true (n > 0 && (size_t) n + 2 <= size);
    strcat (out, "\n");
}

/* The key-changed warning, up to the advice that follows it. */
static void
s_see_key_changed (sc_testproc_t *p, const char *peer, const char *given)
{
    char prefix[512];
    snprintf (prefix, sizeof prefix, "error key-changed WARNING: the broker gave for %s "
              "the key %s, not the key %s pinned before: someone may be in the middle. ",
              peer, s_world_user (given)->fpr, s_world_user (peer)->fpr);
    s_see_prefix (p, prefix);
}

/* The chat with peer ends without peer's authenticated close: why, in
   the words of docs/CLIENT.md ("the broker says bob left", "it failed
   end to end", ...). */
static void
s_see_unconfirmed (sc_testproc_t *p, const char *peer, const char *why)
{
    char line[512];
    snprintf (line, sizeof line, "error unconfirmed-close %s (%s): the chat ended "
              "without an authenticated close from %s covering all its messages: "
              "some may be missing", peer, why, peer);
    SEE (p, line);
}

/* The same, for what the broker says became of peer. */
static void
s_see_unconfirmed_notify (sc_testproc_t *p, const char *peer, const char *how)
{
    char why[128];
    snprintf (why, sizeof why, "the broker says %s %s", peer, how);
    s_see_unconfirmed (p, peer, why);
}

/* ---- 1. Honest relay ---------------------------------------------------------- */

/* The control: through the test broker relaying faithfully the chat
   works, both sides show the safety number of alice's and bob's
   registered keys, and an honest /leave and /quit (E2E close first)
   give "closed" with no unconfirmed-close. */
static void
test_honest_relay (void **state)
{
    (void) state;
    sc_testproc_t *alice = s_client ("alice");
    sc_testproc_t *bob = s_client ("bob");
    s_open_chat (alice, bob);
    s_evil_saw ("chat alice bob");
    s_message (alice, "alice", bob, "hello bob");
    s_message (bob, "bob", alice, "hello alice");
    s_message (alice, "alice", bob, "grüße 🙂");
    s_leave (alice, bob);
    s_evil_saw ("leave alice");

    s_open_chat (alice, bob);
    s_message (bob, "bob", alice, "leaving now");
    s_settle (bob, "alice");
    SAY (bob, "/quit");
    SEE (bob, "closed alice");
    SEE (bob, "bye");
    assert_int_equal (sc_testproc_expect_eof (bob, s_timeout ()), 0);
    assert_int_equal (sc_testproc_wait (bob, s_timeout ()), 0);
    SEE (alice, "closed bob");
    s_evil_saw ("quit bob");
    s_quit (&alice);
    s_evil_ok ();
}

/* ---- 2. Key swap with mallory's private key: a full MITM --------------------------- */

/* Both sides get mallory's key for the other, and the broker runs the
   E2E exchange with each itself: the chat works and the broker reads
   it, but each side's safety number is not the honest one (and not the
   other side's): users who compare them see it. */
static void
test_mitm_key_swap (void **state)
{
    (void) state;
    char via_alice[SC_SAFETY_LEN + 1], via_bob[SC_SAFETY_LEN + 1];
    s_safety ("alice", "bob", "mallory", via_alice);
    s_safety ("bob", "alice", "mallory", via_bob);
    assert_string_not_equal (via_alice, T.honest);
    assert_string_not_equal (via_bob, T.honest);
    assert_string_not_equal (via_alice, via_bob);

    sc_testproc_t *alice = s_client ("alice");
    sc_testproc_t *bob = s_client ("bob");
    s_evil ("CHAT MITM");
    s_request (alice, bob);
    SEE (alice, "accepted bob");
    s_see_chat (alice, "bob", via_alice);
    s_see_chat (bob, "alice", via_bob);
    s_evil_saw ("mitm-ready alice");
    s_evil_saw ("mitm-ready bob");
    s_message (alice, "alice", bob, "meet me at noon");
    s_evil_saw ("read alice meet me at noon");
    s_message (bob, "bob", alice, "noon it is");
    s_evil_saw ("read bob noon it is");

    /* /fingerprint names mallory's key as bob's. */
    char line[512];
    snprintf (line, sizeof line, "fingerprint %s bob %s %s", s_world_user ("alice")->fpr,
              s_world_user ("mallory")->fpr, via_alice);
    SAY (alice, "/fingerprint");
    SEE (alice, line);
    s_leave (alice, bob);
    s_evil_saw ("read alice (close)");
    s_quit (&alice);
    s_quit (&bob);
    s_evil_ok ();
}

/* The same MITM after alice and bob chatted honestly once (same config
   dirs, new processes): both pins hold the real keys, and each side
   prints key-changed before the chat opens; nothing typed is sent until
   /trust. The pins stay as they were. */
static void
test_mitm_detected_by_pins (void **state)
{
    (void) state;
    sc_testproc_t *alice = s_client ("alice");
    sc_testproc_t *bob = s_client ("bob");
    s_open_chat (alice, bob);
    s_message (alice, "alice", bob, "first contact");
    s_leave (alice, bob);
    s_quit (&alice);
    s_quit (&bob);
    char want_alice[128], want_bob[128];
    s_pin_line ("bob", want_alice, sizeof want_alice);
    s_pin_line ("alice", want_bob, sizeof want_bob);
    char *pins = s_pins ("alice");
    assert_non_null (pins);
    assert_string_equal (pins, want_alice);
    free (pins);

    char via_alice[SC_SAFETY_LEN + 1], via_bob[SC_SAFETY_LEN + 1];
    s_safety ("alice", "bob", "mallory", via_alice);
    s_safety ("bob", "alice", "mallory", via_bob);
    s_evil ("CHAT MITM");
    alice = s_client ("alice");
    bob = s_client ("bob");
    s_request (alice, bob);
    s_see_key_changed (alice, "bob", "mallory");
    SEE (alice, "accepted bob");
    s_see_chat (alice, "bob", via_alice);
    s_see_key_changed (bob, "alice", "mallory");
    s_see_chat (bob, "alice", via_bob);
    /* Warned, the chat opens so that safety numbers can be compared, but
       nothing either side types leaves it: the broker reads none of it. */
    SAY (alice, "is that you?");
    SEE (alice, "error untrusted bob has a new key that you have not trusted: "
         "not sent (compare safety numbers with bob, then /trust bob)");
    SAY (bob, "it is me");
    SEE (bob, "error untrusted alice has a new key that you have not trusted: "
         "not sent (compare safety numbers with alice, then /trust alice)");
    s_leave (alice, bob);
    s_evil_saw ("read alice (close)");
    for (char *it = zlist_first (T.events); it; it = zlist_next (T.events))
        if (strncmp (it, "read ", 5) == 0)
            fail_msg ("the broker read '%s'", it);
    s_quit (&alice);
    s_quit (&bob);
    pins = s_pins ("alice");
    assert_non_null (pins);
    assert_string_equal (pins, want_alice);
    free (pins);
    pins = s_pins ("bob");
    assert_non_null (pins);
    assert_string_equal (pins, want_bob);
    free (pins);
    s_evil_ok ();
}

/* /quit after both sides closed a chat with LEAVE: the test broker
   answers the LEAVE that came second (whichever it was) with ERROR. */
static void
s_quit_after_leave (sc_testproc_t **p_p)
{
    SAY (*p_p, "/quit");
    const char *line = NULL;
    while (sc_testproc_read_line (*p_p, s_timeout (), &line) == 1
           && strcmp (line, "bye") != 0)
        assert_string_equal (line, "error state test broker says no");
    assert_non_null (line);
    assert_string_equal (line, "bye");
    assert_int_equal (sc_testproc_expect_eof (*p_p, s_timeout ()), 0);
    assert_int_equal (sc_testproc_wait (*p_p, s_timeout ()), 0);
    sc_testproc_destroy (p_p);
}

/* The same MITM against users who verified each other's keys: each side
   prints key-changed and closes the chat at once, before any key
   agreement, so there is no chat at all; the pins keep the verified
   mark until the user runs /trust. */
static void
test_mitm_verified_peers (void **state)
{
    (void) state;
    sc_testproc_t *alice = s_client ("alice");
    sc_testproc_t *bob = s_client ("bob");
    s_open_chat (alice, bob);
    SAY (alice, "/verify bob");
    SEE (alice, "verified bob");
    SAY (bob, "/verify alice");
    SEE (bob, "verified alice");
    s_leave (alice, bob);
    s_quit (&alice);
    s_quit (&bob);
    char want_alice[160], want_bob[160];
    s_pin_line ("bob", want_alice, sizeof want_alice);
    s_pin_line ("alice", want_bob, sizeof want_bob);
    strcpy (want_alice + strlen (want_alice) - 1, " verified\n");
    strcpy (want_bob + strlen (want_bob) - 1, " verified\n");
    char *pins = s_pins ("alice");
    assert_non_null (pins);
    assert_string_equal (pins, want_alice);
    free (pins);

    s_evil ("CHAT MITM");
    alice = s_client ("alice");
    bob = s_client ("bob");
    s_request (alice, bob);
    s_see_key_changed (alice, "bob", "mallory");
    SEE (alice, "closed bob");
    s_see_key_changed (bob, "alice", "mallory");
    SEE (bob, "closed alice");
    s_evil_saw ("leave alice");
    s_evil_saw ("leave bob");
    s_quit_after_leave (&alice);
    s_quit_after_leave (&bob);
    for (char *it = zlist_first (T.events); it; it = zlist_next (T.events))
        if (strncmp (it, "mitm-ready", 10) == 0 || strncmp (it, "read ", 5) == 0)
            fail_msg ("the broker got a chat through: '%s'", it);
    pins = s_pins ("alice");
    assert_non_null (pins);
    assert_string_equal (pins, want_alice);
    free (pins);
    pins = s_pins ("bob");
    assert_non_null (pins);
    assert_string_equal (pins, want_bob);
    free (pins);
    s_evil_ok ();
}

/* ---- 3. Key swap without the private key ---------------------------------------------- */

/* A broker that lies about a key it cannot use and relays honestly:
   both names and both keys are in TE1, so the two sides sign different
   transcripts, and the first check of a signature fails: the
   initiator's, in its finish (alice, who sent /talk), whichever side
   was lied to. Neither side shows a chat, and the made-up key is not
   pinned: the honest chat after opens without a warning. */
static void
test_swap_without_key (void **state)
{
    (void) state;
    static const char *lied_to[] = { "alice", "bob", "both" };
    char line[128];
    for (size_t i = 0; i < sizeof lied_to / sizeof lied_to[0]; i++) {
        s_new_run ();
        sc_testproc_t *alice = s_client ("alice");
        sc_testproc_t *bob = s_client ("bob");
        snprintf (line, sizeof line, "CHAT SWAP %s", lied_to[i]);
        s_evil (line);
        s_request (alice, bob);
        SEE (alice, "accepted bob");
        snprintf (line, sizeof line, "error e2e key agreement failed with bob: %s", s_e2e_sig);
        SEE (alice, line);
        SEE (alice, "closed bob");
        SEE (bob, "closed alice");
        s_evil_saw ("leave alice");

        s_evil ("CHAT HONEST");
        s_open_chat (alice, bob);
        s_message (bob, "bob", alice, "that was not me");
        s_leave (alice, bob);
        s_quit (&alice);
        s_quit (&bob);
    }
    s_evil_ok ();
}

/* ---- 4. Replay -------------------------------------------------------------------------- */

/* alice's MESSAGE twice, each sealed anew in bob's session (a fresh
   seq): only the E2E counter catches it. Shown once, refused once, and
   the chat goes on. */
static void
test_replay (void **state)
{
    (void) state;
    sc_testproc_t *alice = s_client ("alice");
    sc_testproc_t *bob = s_client ("bob");
    s_open_chat (alice, bob);
    s_evil ("ONCE REPLAY alice");
    s_message (alice, "alice", bob, "pay carol 10");
    s_evil_saw ("replayed 1");
    SEE (bob, "error replay refused a replayed or reordered message from alice "
         "(number 1, expected 2 or later)");
    s_message (alice, "alice", bob, "only once");
    s_message (bob, "bob", alice, "got it once");
    s_leave (alice, bob);
    s_quit (&alice);
    s_quit (&bob);
    s_evil_ok ();
}

/* ---- 5. Drop ------------------------------------------------------------------------------ */

/* alice's 2nd message is dropped: bob hears of it with the 3rd. Then her
   last message before /leave is dropped: the E2E close carries the
   count of her lines, so bob hears of that one too, and that the close
   does not cover what alice sent, before "closed". alice is told which
   of her lines were never confirmed: bob confirmed the first only (a
   lost line stops the confirmations, so the third, which came, is among
   them). */
static void
test_drop (void **state)
{
    (void) state;
    sc_testproc_t *alice = s_client ("alice");
    sc_testproc_t *bob = s_client ("bob");
    s_open_chat (alice, bob);
    s_message (alice, "alice", bob, "first");
    s_settle (alice, "bob");
    s_evil ("ONCE DROP alice");
    SAY (alice, "second");
    s_evil_saw ("dropped 2");
    SAY (alice, "third");
    SEE (bob, "lost alice 1");
    SEE (bob, "msg alice third");

    s_evil ("ONCE DROP alice");
    SAY (alice, "fourth, and goodbye");
    s_evil_saw ("dropped 4");
    SAY (alice, "/leave");
    SEE (alice, "unacked bob 3");
    SEE (alice, "closed bob");
    SEE (bob, "lost alice 1");
    s_see_unconfirmed (bob, "alice", "its close says 1 of its messages never arrived");
    SEE (bob, "closed alice");
    s_quit (&alice);
    s_quit (&bob);
    s_evil_ok ();
}

/* ---- 6. Reorder ------------------------------------------------------------------------------ */

/* The broker holds alice's 1st message and relays the 2nd, then the 1st:
   bob shows the 2nd with one lost before it, and refuses the late 1st. */
static void
test_reorder (void **state)
{
    (void) state;
    sc_testproc_t *alice = s_client ("alice");
    sc_testproc_t *bob = s_client ("bob");
    s_open_chat (alice, bob);
    s_evil ("ONCE HOLD alice");
    SAY (alice, "first");
    s_evil_saw ("held 1");
    SAY (alice, "second");
    s_evil_saw ("reordered 2 1");
    SEE (bob, "lost alice 1");
    SEE (bob, "msg alice second");
    SEE (bob, "error replay refused a replayed or reordered message from alice "
         "(number 1, expected 3 or later)");
    s_message (alice, "alice", bob, "third");
    /* bob confirms nothing past the lost line: alice is told none of
       hers were confirmed; bob got the close covering every line */
    SAY (alice, "/leave");
    SEE (alice, "unacked bob 3");
    SEE (alice, "closed bob");
    SEE (bob, "closed alice");
    s_quit (&alice);
    s_quit (&bob);
    s_evil_ok ();
}

/* ---- 7. Reflection ------------------------------------------------------------------------------ */

/* alice's own MESSAGE sent back to her: it does not authenticate under
   her receiving chain (another key, and the direction is in the AD).
   The client treats it as any box that does not open: error e2e, and
   the chat is closed (s_e2e_fail); bob, who sent no close, is told the
   close is the broker's word. */
static void
test_reflection (void **state)
{
    (void) state;
    sc_testproc_t *alice = s_client ("alice");
    sc_testproc_t *bob = s_client ("bob");
    s_open_chat (alice, bob);
    s_evil ("ONCE REFLECT alice");
    SAY (alice, "mirror, mirror");
    s_evil_saw ("reflected 1");
    SEE (alice, "error e2e a message failed to authenticate with bob: message does "
         "not authenticate: the chat is closed");
    s_see_unconfirmed (alice, "bob", "it failed end to end");
    SEE (alice, "unacked bob 1");
    SEE (alice, "closed bob");
    s_see_unconfirmed_notify (bob, "alice", "left");
    SEE (bob, "closed alice");
    s_evil_saw ("leave alice");

    /* A new chat works. */
    s_open_chat (alice, bob);
    s_message (alice, "alice", bob, "once more");
    s_leave (alice, bob);
    s_quit (&alice);
    s_quit (&bob);
    s_evil_ok ();
}

/* ---- 8. Forged close ------------------------------------------------------------------------------ */

/* The broker tells bob alice is gone while alice is still typing. An
   honest peer that leaves or quits sends its E2E close first, and the
   broker's lost and replaced end a chat with no close either: whatever
   the reason, without the close bob says the end is unconfirmed. The
   chat is over for bob, and nothing alice types after it is shown; alice
   is told her line after the cut was never confirmed. (test_honest_relay
   shows an honest /leave and /quit with no warning; test_drop a close
   after a loss.) */
static void
test_forged_close (void **state)
{
    (void) state;
    static const struct { const char *reason, *how; } cases[] = {
        { "0", "left" }, { "1", "quit" }, { "2", "was lost" }, { "4", "logged in elsewhere" }
    };
    sc_testproc_t *alice = s_client ("alice");
    sc_testproc_t *bob = s_client ("bob");
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        s_open_chat (alice, bob);
        s_message (alice, "alice", bob, "before the cut");
        s_settle (alice, "bob");
        char command[64];
        snprintf (command, sizeof command, "NOTIFY bob alice %s", cases[i].reason);
        s_evil (command);
        s_see_unconfirmed_notify (bob, "alice", cases[i].how);
        SEE (bob, "closed alice");
        /* The broker still relays alice's messages: bob shows none. */
        SAY (alice, "are you still there?");
        SAY (alice, "/leave");
        SEE (alice, "unacked bob 1");
        SEE (alice, "closed bob");
        s_evil_saw ("leave alice");
        SEE_NOTHING (bob);
    }
    s_quit (&alice);
    s_quit (&bob);
    s_evil_ok ();
}

/* ---- 9. Counter beyond the skip limit ---------------------------------------------------------------- */

/* The broker moves a MESSAGE's counter ahead, keeping alice's box (it
   cannot make one). More than SC_E2E_SKIP ahead is refused as such
   (error e2e, "too far ahead"): the client treats it as any message
   that fails, and closes the chat. Exactly SC_E2E_SKIP ahead is
   allowed: the keys are derived and the box fails instead. And the
   highest counter there is, 2^32 - 1, is refused as fast: 4 billion
   chain steps would not end within the test's timeout, so the check
   comes before any derivation. A counter at or past the chain's end,
   2^32 (docs/PROTOCOL.md section 7), closes the chat as exhausted. */
static void
test_counter_beyond_skip (void **state)
{
    (void) state;
    static const struct { const char *command, *event, *error; } cases[] = {
        { "ONCE SKIP alice 1001", "counter 2 to 1003", "message counter too far ahead" },
        { "ONCE SKIP alice 1000", "counter 2 to 1002", "message does not authenticate" },
        { "ONCE COUNTER alice 4294967295", "counter 2 to 4294967295",
          "message counter too far ahead" },
        { "ONCE COUNTER alice 4294967296", "counter 2 to 4294967296",
          "message counter exhausted" },
        { "ONCE COUNTER alice 18446744073709551615", "counter 2 to 18446744073709551615",
          "message counter exhausted" },
    };
    sc_testproc_t *alice = s_client ("alice");
    sc_testproc_t *bob = s_client ("bob");
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        s_open_chat (alice, bob);
        s_message (alice, "alice", bob, "one");
        s_settle (alice, "bob");
        s_evil (cases[i].command);
        SAY (alice, "two");
        s_evil_saw (cases[i].event);
        char line[256];
        snprintf (line, sizeof line, "error e2e a message failed to authenticate with "
                  "alice: %s: the chat is closed", cases[i].error);
        SEE (bob, line);
        s_see_unconfirmed (bob, "alice", "it failed end to end");
        SEE (bob, "closed alice");
        s_see_unconfirmed_notify (alice, "bob", "left");
        SEE (alice, "unacked bob 1");   /* "two", which bob refused */
        SEE (alice, "closed bob");
        s_evil_saw ("leave bob");
    }
    s_quit (&alice);
    s_quit (&bob);
    s_evil_ok ();
}

/* ---- 10. Key-compromise impersonation -------------------------------------------------------------- */

/* The broker holds bob's private key and poses as alice to bob: a
   request "from alice", CHAT with alice's real registered key, and the
   initiator's side of the E2E exchange computed from the spec, right in
   everything (bob's signature and MAC check out under its transcript)
   but the initiator's signature, which it can only make with bob's key
   or mallory's. bob refuses both. The control: the same forgery signed
   with alice's key (which this broker also stole) opens the chat, so
   it is the key alone that fails. alice is not even online. */
static void
test_kci (void **state)
{
    (void) state;
    static const char *signers[] = { "bob", "mallory", "alice" };
    sc_testproc_t *bob = s_client ("bob");
    for (size_t i = 0; i < sizeof signers / sizeof signers[0]; i++) {
        char line[128];
        snprintf (line, sizeof line, "KCI bob alice %s", signers[i]);
        s_evil (line);
        SEE (bob, "request alice");
        SAY (bob, "/accept");
        s_evil_saw ("kci-reply verified");
        if (strcmp (signers[i], "alice") != 0) {
            snprintf (line, sizeof line, "error e2e key agreement failed with alice: %s",
                      s_e2e_sig);
            SEE (bob, line);
            SEE (bob, "closed alice");
        }
        else {
            s_see_chat (bob, "alice", T.honest);
            SAY (bob, "/leave");
            SEE (bob, "closed alice");
        }
        s_evil_saw ("kci-closed");
    }
    s_quit (&bob);
    s_evil_ok ();
}

/* ---- 11. An impostor broker ---------------------------------------------------------------------- */

/* The test broker answers alice's HELLO as someone who has the broker's
   certificate (it is public) but not its key: sig_B is random bytes,
   mac_B is right (it made e_B, so it knows every key of the login).
   secchat must refuse to log in on the signature: no line at all on its
   output, exit status 1, and the reason on stderr. Without that check
   it would send AUTH_CLIENT, get a WELCOME and be "ready" with a broker
   that reads all it sends ("impostor logged in alice"). The next login,
   answered with the real key, works. */
static void
test_impostor_broker (void **state)
{
    (void) state;
    s_evil ("IMPOSTOR");
    sc_testclient_t opts = { .keys = sc_testkeys_dir (T.keys), .workdir = T.work,
                             .endpoint = T.endpoint, .user = "alice" };
    sc_testproc_t *alice = sc_testproc_client_new (&opts);
    assert_non_null (alice);
    s_evil_saw ("impostor hello");
    assert_int_equal (sc_testproc_expect_eof (alice, s_timeout ()), 0);
    assert_int_equal (sc_testproc_wait (alice, s_timeout ()), 1);
    char *err = sc_testdir_slurp (sc_testproc_log_path (alice), NULL);
    assert_non_null (err);
    assert_string_equal (err, "secchat: broker authentication failed: "
                         "signature does not verify\n");
    free (err);
    sc_testproc_destroy (&alice);
    for (char *it = zlist_first (T.events); it; it = zlist_next (T.events))
        if (strncmp (it, "impostor logged in", 18) == 0)
            fail_msg ("test broker: %s", it);

    alice = s_client ("alice");
    s_quit (&alice);
    s_evil_ok ();
}

/* ---- 12. A handshake envelope with a seq ------------------------------------------------------- */

/* The test broker answers alice's HELLO with an AUTH_BROKER right in
   every way (the real key, signature and MAC) but the seq of its
   envelope, which must be 0 during the login (docs/PROTOCOL.md section
   2). secchat must refuse the login and say why: no line on its output,
   exit status 1, the reason on stderr, and no AUTH_CLIENT sent (the
   test broker would log it in: "login alice"). The next login, with
   seq 0, works. */
static void
test_handshake_seq (void **state)
{
    (void) state;
    s_evil ("SEQ 1");
    sc_testclient_t opts = { .keys = sc_testkeys_dir (T.keys), .workdir = T.work,
                             .endpoint = T.endpoint, .user = "alice" };
    sc_testproc_t *alice = sc_testproc_client_new (&opts);
    assert_non_null (alice);
    s_evil_saw ("hello with seq 1");
    assert_int_equal (sc_testproc_expect_eof (alice, s_timeout ()), 0);
    assert_int_equal (sc_testproc_wait (alice, s_timeout ()), 1);
    char *err = sc_testdir_slurp (sc_testproc_log_path (alice), NULL);
    assert_non_null (err);
    assert_string_equal (err, "secchat: the broker sent AUTH_BROKER with seq 1 during "
                         "the login (it must be 0): refusing the login\n");
    free (err);
    sc_testproc_destroy (&alice);
    for (char *it = zlist_first (T.events); it; it = zlist_next (T.events))
        if (strncmp (it, "login alice", 11) == 0)
            fail_msg ("test broker: %s", it);

    alice = s_client ("alice");
    s_quit (&alice);
    s_evil_ok ();
}

int
main (void)
{
    signal (SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown (test_honest_relay, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_mitm_key_swap, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_mitm_detected_by_pins, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_mitm_verified_peers, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_swap_without_key, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_replay, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_drop, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_reorder, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_reflection, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_forged_close, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_counter_beyond_skip, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_kci, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_impostor_broker, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_handshake_seq, s_setup, s_teardown),
    };
    return cmocka_run_group_tests (tests, s_group_setup, s_group_teardown);
}
