/*  sc_client: the protocol core of the secchat client.

    Entry points (start, recv, command, tick) run one step of the state
    machine and return; nothing here blocks or reads a clock. A failed
    send only sets a flag, acted upon when the entry point is about to
    return, so no handler has its session torn down under its feet.

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at https://mozilla.org/MPL/2.0/.
*/
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sc_client.h"
#include "sc_e2e.h"
#include "sc_handshake.h"
#include "sc_msg.h"
#include "sc_pins.h"
#include "sc_wire.h"

/* A peer that starts a key agreement and never finishes it would hold
   the chat forever; this is far beyond any real round trip. */
#define S_KEYX_TIMEOUT_MS   60000
/* Lines kept while waiting (for the first login, for the E2E keys). */
#define S_QUEUE_MAX         1000
/* Error texts: one line; a key-changed warning with two fingerprints and
   the pins path is the longest. */
#define S_TEXT_MAX          1024
#define S_NAMES_MAX         512         /* a certificate's names, shown   */
/* A received chat line is acknowledged this long after it came, unless
   a message of ours carries the acknowledgement first: one for a burst,
   well within the second docs/PROTOCOL.md allows. */
#define S_ACK_DELAY_MS      250
/* Own lines sent and not yet confirmed by the peer; past this, a line is
   refused until acknowledgements come (a peer that never acknowledges
   cannot make us hold every line typed): at most this many lines, and
   this much text. */
#define S_UNACKED_MAX       10000
#define S_UNACKED_BYTES     ((size_t) 1024 * 1024)
/* The unconfirmed lines listed by text when a chat ends (the rest are
   counted). */
#define S_UNACKED_SHOWN     100
/* COOKIEs answered in one login: a broker under load sends one; more is
   a broker (or someone on the path) that will never let us in. */
#define S_COOKIES_MAX       3
/* After a plaintext ERROR in a session: how long the broker has to
   prove, with any authenticated envelope, that it still knows us. */
#define S_PROBE_MS          2000

typedef struct s_line_t {
    struct s_line_t *next;
    uint64_t counter;           /* unacked: the E2E counter it went with  */
    size_t len;
    char text[];
} s_line_t;

typedef struct {
    s_line_t *head, *tail;
    size_t count;
    size_t bytes;               /* of text in all its lines               */
} s_queue_t;

struct _sc_client_t {
    const sc_key_t *key;                /* own identity, borrowed          */
    const sc_ca_t *ca;                  /* borrowed                        */
    char name[SC_NAME_MAX + 1];
    char *broker_name;
    sc_client_io_t io;
    sc_pins_t *pins;
    char own_fpr[SC_FPR_LEN + 1];

    int64_t now;                        /* time of the current entry call  */
    sc_client_state_t state;
    bool ever_ready;
    bool send_failed;                   /* acted upon before returning     */
    sc_handshake_t *hs;
    bool enrol;                         /* logins enrol until welcomed     */
    uint8_t code[SC_HS_CODE_LEN];       /* ...with this code               */
    sc_msg_t hello;                     /* this login's HELLO, for a COOKIE */
    sc_channel_t *channel;
    int64_t probe_since;                /* plaintext ERROR seen: PING sent
                                           then (when probing)             */
    int64_t last_recv, last_ping;
    uint32_t heartbeat_ms;
    int cookies;                        /* COOKIEs answered in this login  */
    char probe_why[S_TEXT_MAX];         /* ...and what it said             */

    char peer[SC_NAME_MAX + 1];         /* request or chat counterpart     */
    char closing[SC_NAME_MAX + 1];      /* closed by an E2E close: its
                                           NOTIFY is expected, not news    */
    bool talk_deferred;                 /* WAITING, but the RTT waits for
                                           that NOTIFY (see s_cmd_talk)    */
    sc_e2e_t *e2e;
    int64_t keyx_since;
    size_t lists_pending;               /* LIST sent, USERS not yet back   */
    s_queue_t outbox;                   /* typed during key agreement      */
    s_queue_t early;                    /* typed before the first login    */

    /* Acknowledgements in the current chat (docs/PROTOCOL.md section 7) */
    s_queue_t unacked;                  /* own lines sent, not confirmed   */
    uint64_t lines_sent;                /* own chat lines sent             */
    uint64_t lines_acked;               /* of those, confirmed by the peer */
    uint64_t acked_shown;               /* the last `acked` count reported */
    uint64_t peer_ack;                  /* highest own counter confirmed   */
    uint64_t lines_rcvd;                /* peer lines received or lost     */
    uint64_t recv_ack;                  /* the ack we send: every peer line
                                           up to this counter arrived      */
    bool ack_frozen;                    /* a peer line was lost: recv_ack
                                           stays below it for good         */
    int64_t ack_at;                     /* when the ACK goes               */
    bool ack_owed;                      /* a line came, not acknowledged   */
    bool probing;                       /* waiting for proof after a plain
                                           ERROR (probe_since)             */
    bool untrusted;                     /* the chat's peer key is not its
                                           pin: nothing typed is sent (see
                                           s_trust_check)                  */
};

static void s_run_command (sc_client_t *self, const char *line, size_t len);

/* ---- Queues of typed lines --------------------------------------------- */

static s_line_t *
s_line_new (const char *text, size_t len)
{
    s_line_t *line = malloc (sizeof *line + len + 1);
    if (line) {
        line->next = NULL;
        line->counter = 0;
        line->len = len;
        memcpy (line->text, text, len);
        line->text[len] = 0;
    }
    return line;
}

static void
s_queue_append (s_queue_t *queue, s_line_t *line)
{
    if (queue->tail)
        queue->tail->next = line;
    else
        queue->head = line;
    queue->tail = line;
    queue->count++;
    queue->bytes += line->len;
}

static int
s_queue_push (s_queue_t *queue, const char *text, size_t len)
{
    if (queue->count >= S_QUEUE_MAX)
        return -1;
    s_line_t *line = s_line_new (text, len);
    if (!line)
        return -1;
    s_queue_append (queue, line);
    return 0;
}

/* The oldest line, unlinked: the caller frees it with s_line_free. */
static s_line_t *
s_queue_pop (s_queue_t *queue)
{
    s_line_t *line = queue->head;
    if (line) {
        queue->head = line->next;
        if (!queue->head)
            queue->tail = NULL;
        queue->count--;
        queue->bytes -= line->len;
    }
    return line;
}

/* Typed lines are message text: wiped, not just freed. */
static void
s_line_free (s_line_t *line)
{
    if (line) {
        sc_wipe (line->text, line->len);
        free (line);
    }
}

static void
s_queue_clear (s_queue_t *queue)
{
    s_line_t *line;
    while ((line = s_queue_pop (queue)))
        s_line_free (line);
}

/* ---- Events ------------------------------------------------------------ */

static void
s_emit (sc_client_t *self, sc_event_t *ev)
{
    if (self->io.event)
        self->io.event (self->io.arg, ev);
}

static void
s_event (sc_client_t *self, sc_event_type_t type, const char *name,
         const char *text, uint64_t number)
{
    sc_event_t ev = { .type = type, .name = name, .text = text, .number = number };
    s_emit (self, &ev);
}

static void
s_error (sc_client_t *self, const char *code, const char *fmt, ...)
    __attribute__ ((format (printf, 3, 4)));

static void
s_error (sc_client_t *self, const char *code, const char *fmt, ...)
{
    char text[S_TEXT_MAX], clean[S_TEXT_MAX];
    va_list ap;
    va_start (ap, fmt);
    int n = vsnprintf (text, sizeof text, fmt, ap);
    va_end (ap);
    size_t len = n < 0 ? 0 : (size_t) n < sizeof text ? (size_t) n : sizeof text - 1;
    sc_client_sanitize (text, len, clean);
    sc_event_t ev = { .type = SC_EV_ERROR, .code = code, .text = clean };
    s_emit (self, &ev);
}

static void
s_notice (sc_client_t *self, const char *text)
{
    s_event (self, SC_EV_NOTICE, NULL, text, 0);
}

size_t
sc_client_sanitize (const char *text, size_t len, char *dst)
{
    const unsigned char *s = (const unsigned char *) text;
    size_t out = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < 0x20 || s[i] == 0x7f)
            dst[out++] = '?';
        else if (s[i] == 0xc2 && i + 1 < len && s[i + 1] >= 0x80 && s[i + 1] <= 0x9f) {
            dst[out++] = '?';           /* C1 control: U+0080..U+009F */
            i++;
        }
        else
            dst[out++] = (char) s[i];
    }
    dst[out] = 0;
    return out;
}

/* ---- Session ------------------------------------------------------------ */

/* One message as one frame: plain during the handshake, sealed in the
   session channel after. A failure to send means the connection is
   unusable; see send_failed. */
static int
s_transmit (sc_client_t *self, const sc_msg_t *msg, bool sealed)
{
    uint8_t *frame = NULL;
    size_t len = 0;
    int rc = -1;
    if (sealed && self->channel)
        rc = sc_wire_seal (self->channel, msg, &frame, &len);
    else if (!sealed)
        rc = sc_wire_plain (msg, &frame, &len);
    if (rc == 0)
        rc = self->io.send (self->io.arg, frame, len) ? -1 : 0;
    free (frame);               /* ciphertext or handshake: nothing secret */
    if (rc)
        self->send_failed = true;
    return rc ? -1 : 0;
}

static int
s_send (sc_client_t *self, const sc_msg_t *msg)
{
    return s_transmit (self, msg, true);
}

/* A body-less request (LIST, LEAVE, QUIT, PING). */
static int
s_send_op (sc_client_t *self, uint8_t opcode)
{
    sc_msg_t msg;
    sc_msg_init (&msg, opcode);
    return s_send (self, &msg);
}

/* A request naming a user, with an optional reason (RTT, ACCEPT, REFUSE). */
static int
s_send_named (sc_client_t *self, uint8_t opcode, const char *name, uint32_t code)
{
    sc_msg_t msg;
    sc_msg_init (&msg, opcode);
    msg.code = code;
    int rc = sc_msg_set_name (&msg, name) ? -1 : s_send (self, &msg);
    sc_msg_reset (&msg);
    return rc;
}

static bool
s_logged_in (const sc_client_t *self)
{
    return self->state >= SC_CLIENT_IDLE && self->state <= SC_CLIENT_CHATTING;
}

static bool
s_in_chat (const sc_client_t *self)
{
    return self->state >= SC_CLIENT_WAITING && self->state <= SC_CLIENT_CHATTING;
}

/* Forget the session keys and the handshake; the identity stays. */
static void
s_forget_session (sc_client_t *self)
{
    sc_handshake_destroy (&self->hs);
    sc_msg_reset (&self->hello);
    self->cookies = 0;
    self->probing = false;
    sc_channel_destroy (&self->channel);
    self->heartbeat_ms = 0;
    self->lists_pending = 0;
}

/* `acked NAME N` once N has grown; called as the core is idle again (a
   tick), so a burst of acknowledgements makes one line. */
static void
s_report_acked (sc_client_t *self)
{
    if (self->peer[0] && self->lines_acked > self->acked_shown) {
        self->acked_shown = self->lines_acked;
        s_event (self, SC_EV_ACKED, self->peer, NULL, self->lines_acked);
    }
}

/* The own lines never confirmed, sanitized, one per line, for the user
   only (the terminal shows them; batch prints the count). NULL when
   there is no memory: the count is still reported. */
static char *
s_unacked_text (const sc_client_t *self)
{
    size_t size = 64;
    size_t shown = 0;
    for (s_line_t *l = self->unacked.head; l && shown < S_UNACKED_SHOWN; l = l->next, shown++)
        size += l->len + 1;
    char *text = malloc (size);
    if (!text)
        return NULL;
    size_t pos = 0;
    shown = 0;
    for (s_line_t *l = self->unacked.head; l && shown < S_UNACKED_SHOWN; l = l->next, shown++) {
        if (pos)
            text[pos++] = '\n';
        pos += sc_client_sanitize (l->text, l->len, text + pos);
    }
    if (self->unacked.count > shown)
        snprintf (text + pos, size - pos, "\n(and %zu more)", self->unacked.count - shown);
    else
        text[pos] = 0;
    return text;
}

/* Forget the acknowledgement state of a chat. */
static void
s_acks_clear (sc_client_t *self)
{
    s_queue_clear (&self->unacked);
    self->lines_sent = self->lines_acked = self->acked_shown = 0;
    self->peer_ack = self->lines_rcvd = self->recv_ack = 0;
    self->ack_owed = self->ack_frozen = false;
}

/* The chat or request is over, whoever ended it: say so, drop the E2E
   keys, and tell about messages that never left and about own lines
   the peer never confirmed. */
static void
s_end_chat (sc_client_t *self)
{
    char peer[SC_NAME_MAX + 1];
    strcpy (peer, self->peer);
    s_report_acked (self);
    uint64_t unacked = self->lines_sent - self->lines_acked;
    char *unacked_text = unacked ? s_unacked_text (self) : NULL;
    size_t unacked_len = unacked_text ? strlen (unacked_text) : 0;
    s_acks_clear (self);
    size_t unsent = self->outbox.count;
    s_queue_clear (&self->outbox);
    sc_e2e_destroy (&self->e2e);
    self->peer[0] = 0;
    self->talk_deferred = false;
    self->untrusted = false;
    if (s_logged_in (self))
        self->state = SC_CLIENT_IDLE;
    if (unacked)
        s_event (self, SC_EV_UNACKED, peer, unacked_text, unacked);
    if (unacked_text) {
        sc_wipe (unacked_text, unacked_len);
        free (unacked_text);
    }
    if (peer[0])
        s_event (self, SC_EV_CLOSED, peer, NULL, 0);
    if (unsent)
        s_error (self, "not-in-chat", "%zu message%s typed for %s %s not sent: "
                 "the chat closed before its keys were agreed", unsent,
                 unsent == 1 ? "" : "s", peer, unsent == 1 ? "was" : "were");
}

/* A chat that ends without the peer's authenticated close covering all
   its messages: said so (once the chat was open), then ended. */
static void
s_end_unconfirmed (sc_client_t *self, const char *why)
{
    if (self->state == SC_CLIENT_CHATTING)
        s_error (self, "unconfirmed-close", "%s (%s): the chat ended without "
                 "an authenticated close from %s covering all its messages: "
                 "some may be missing", self->peer, why, self->peer);
    s_end_chat (self);
}

/* The connection is gone: close the chat, drop the session, go offline
   so the caller reconnects with a new socket and new keys. */
static void
s_go_offline (sc_client_t *self, const char *why)
{
    if (s_in_chat (self))
        s_end_unconfirmed (self, why);
    self->closing[0] = 0;
    s_forget_session (self);
    self->state = SC_CLIENT_OFFLINE;
}

static void
s_lost (sc_client_t *self, const char *why)
{
    if (s_logged_in (self))
        s_error (self, "broker-lost", "%s: reconnecting", why);
    s_go_offline (self, why);
}

/* Login failures: retry says whether a new attempt may work. */
static void
s_login_failed (sc_client_t *self, bool retry, const char *fmt, ...)
    __attribute__ ((format (printf, 3, 4)));

static void
s_login_failed (sc_client_t *self, bool retry, const char *fmt, ...)
{
    char text[S_TEXT_MAX], clean[S_TEXT_MAX];
    va_list ap;
    va_start (ap, fmt);
    int n = vsnprintf (text, sizeof text, fmt, ap);
    va_end (ap);
    size_t len = n < 0 ? 0 : (size_t) n < sizeof text ? (size_t) n : sizeof text - 1;
    sc_client_sanitize (text, len, clean);
    s_forget_session (self);
    self->state = retry ? SC_CLIENT_OFFLINE : SC_CLIENT_DEAD;
    s_event (self, SC_EV_LOGIN_FAILED, NULL, clean, retry);
}

/* Called as every entry point returns. */
static void
s_after (sc_client_t *self)
{
    if (self->send_failed) {
        self->send_failed = false;
        if (self->state != SC_CLIENT_DONE && self->state != SC_CLIENT_DEAD
            && self->state != SC_CLIENT_OFFLINE)
            s_lost (self, "cannot send to the broker");
    }
}

/* ---- Error codes -------------------------------------------------------- */

static const char *
s_code_word (uint32_t code)
{
    static const char *words[] = {
        [SC_ERR_MALFORMED] = "malformed", [SC_ERR_VERSION] = "version",
        [SC_ERR_STATE] = "state", [SC_ERR_AUTH] = "auth",
        [SC_ERR_UNKNOWN_USER] = "unknown-user", [SC_ERR_SELF] = "self",
        [SC_ERR_RATE] = "rate", [SC_ERR_REPLACED] = "replaced",
        [SC_ERR_TIMEOUT] = "timeout", [SC_ERR_INTERNAL] = "internal",
        [SC_ERR_NO_CHAT] = "no-chat", [SC_ERR_UNDELIVERED] = "undelivered",
        [SC_ERR_SUITE] = "suite", [SC_ERR_SHUTDOWN] = "shutdown",
        [SC_ERR_REVOKED] = "revoked", [SC_ERR_ENROL_CODE] = "enrol-code",
        [SC_ERR_ENROL_TAKEN] = "enrol-taken", [SC_ERR_ENROL_RATE] = "enrol-rate",
        [SC_ERR_ENROL_CLOSED] = "enrol-closed"
    };
    if (code < sizeof words / sizeof words[0] && words[code])
        return words[code];
    return "internal";
}

/* What each code means, for an ERROR with an empty detail. */
static const char *
s_code_text (uint32_t code)
{
    static const char *texts[] = {
        [SC_ERR_MALFORMED] = "the broker could not decode a message",
        [SC_ERR_VERSION] = "unsupported protocol version",
        [SC_ERR_STATE] = "not allowed now",
        [SC_ERR_AUTH] = "authentication failed",
        [SC_ERR_UNKNOWN_USER] = "unknown user",
        [SC_ERR_SELF] = "you cannot chat with yourself",
        [SC_ERR_RATE] = "too many requests: slow down",
        [SC_ERR_REPLACED] = "a newer login of this user took over the session",
        [SC_ERR_TIMEOUT] = "timed out",
        [SC_ERR_INTERNAL] = "broker-side failure",
        [SC_ERR_NO_CHAT] = "no chat is open",
        [SC_ERR_UNDELIVERED] = "the peer could not be reached: not sent",
        [SC_ERR_SUITE] = "unsupported cipher suite",
        [SC_ERR_SHUTDOWN] = "the broker is stopping",
        [SC_ERR_REVOKED] = "this user's key was revoked at the broker",
        [SC_ERR_ENROL_CODE] = "invalid, used or expired code",
        [SC_ERR_ENROL_TAKEN] = "this name is already registered",
        [SC_ERR_ENROL_RATE] = "too many enrolment attempts, retry later",
        [SC_ERR_ENROL_CLOSED] = "enrolment needs an invitation code"
    };
    if (code < sizeof texts / sizeof texts[0] && texts[code])
        return texts[code];
    return "unknown error";
}

static const char *
s_detail (const sc_msg_t *msg)
{
    return msg->text && msg->text[0] ? msg->text : s_code_text (msg->code);
}

/* ---- Login -------------------------------------------------------------- */

int
sc_client_set_enrol (sc_client_t *self, const uint8_t *code)
{
    if (!code || self->state != SC_CLIENT_OFFLINE || self->ever_ready)
        return -1;
    memcpy (self->code, code, SC_HS_CODE_LEN);
    self->enrol = true;
    return 0;
}

int
sc_client_start (sc_client_t *self, int64_t now_ms)
{
    if (self->state != SC_CLIENT_OFFLINE)
        return -1;
    self->now = now_ms;
    s_forget_session (self);
    self->hs = sc_handshake_new_client (self->key, self->name, self->ca,
                                        self->broker_name);
    if (!self->hs)
        return -1;
    sc_msg_t *msg = &self->hello;
    sc_msg_init (msg, SC_OP_HELLO);
    int rc = -1;
    if (sc_handshake_client_hello (self->hs, &msg->suite, msg->nonce, msg->eph) == 0) {
        self->state = SC_CLIENT_CONNECTING;
        rc = s_transmit (self, msg, false);
    }
    if (rc) {
        self->send_failed = false;
        s_forget_session (self);
        self->state = SC_CLIENT_OFFLINE;
    }
    return rc;
}

/* A plaintext ERROR during the handshake: the broker refused the login. */
static void
s_on_login_error (sc_client_t *self, const sc_msg_t *msg)
{
    bool retry = msg->code == SC_ERR_TIMEOUT || msg->code == SC_ERR_RATE
              || msg->code == SC_ERR_INTERNAL || msg->code == SC_ERR_SHUTDOWN
              || msg->code == SC_ERR_STATE;
    if (msg->code == SC_ERR_INTERNAL) {
        /* the broker's own failure: nothing the user should change */
        s_login_failed (self, true, "the broker failed on its side during the %s of %s: "
                        "internal (%s): not a problem with your key or password",
                        self->enrol ? "enrolment" : "login", self->name, s_detail (msg));
        return;
    }
    const char *what = self->enrol ? "broker refused the enrolment of"
                     : msg->code == SC_ERR_UNKNOWN_USER ? "broker refused the user"
                     : msg->code == SC_ERR_AUTH ? "authentication failed for"
                     : "broker refused the login of";
    s_login_failed (self, retry, "%s %s: %s (%s)", what, self->name,
                    s_code_word (msg->code), s_detail (msg));
}

/* COOKIE: the broker is under load and wants the same HELLO again with
   the cookie, to know we read what it sends to this connection. */
static void
s_on_cookie (sc_client_t *self, const sc_msg_t *msg)
{
    if (++self->cookies > S_COOKIES_MAX) {
        s_login_failed (self, true, "the broker keeps asking for a cookie: retrying later");
        return;
    }
    self->hello.opcode = SC_OP_HELLO_COOKIE;
    memcpy (self->hello.cookie, msg->cookie, SC_COOKIE_LEN);
    (void) s_transmit (self, &self->hello, false);
}

/* AUTH_BROKER: check the broker, prove who we are. */
static void
s_on_auth_broker (sc_client_t *self, const sc_msg_t *msg)
{
    uint8_t box[SC_HS_ENROL_BOX_LEN];
    size_t box_len = 0;
    int cert_err = 0;
    int rc = self->enrol ? sc_handshake_client_enrol (self->hs, self->code) : 0;
    if (rc == 0)
        rc = sc_handshake_client_auth (self->hs, msg->nonce, msg->eph,
                                       msg->data, msg->data_len, msg->sig,
                                       msg->mac, box, &box_len, &cert_err);
    if (rc == SC_HS_ECERT && cert_err == SC_KEY_ENAME) {
        /* The chain is good: say which names it has, so a wrong
           --broker-name is told from a wrong broker. */
        char names[S_NAMES_MAX];
        int n = sc_cert_names (msg->data, msg->data_len, names, sizeof names);
        s_login_failed (self, false, "broker certificate rejected: it is for %s, not for "
                        "the expected broker name %s (--broker-name)",
                        n > 0 ? names : "no name", self->broker_name);
        return;
    }
    if (rc == SC_HS_ECERT) {
        s_login_failed (self, false, "broker certificate rejected: %s",
                        sc_key_strerror (cert_err));
        return;
    }
    sc_session_keys_t keys;
    if (rc == 0 && sc_handshake_keys (self->hs, &keys) == 0) {
        self->channel = sc_channel_new (&keys);
        sc_wipe (&keys, sizeof keys);
    }
    if (rc || !self->channel) {
        s_login_failed (self, false, "broker authentication failed: %s",
                        sc_hs_strerror (rc ? rc : SC_HS_EINTERNAL));
        return;
    }
    sc_handshake_destroy (&self->hs);
    /* AUTH_CLIENT (ENROL) still travels plain: the channel starts with
       WELCOME. */
    sc_msg_t reply;
    sc_msg_init (&reply, self->enrol ? SC_OP_ENROL : SC_OP_AUTH_CLIENT);
    if (sc_msg_set_data (&reply, box, box_len) == 0
        && s_transmit (self, &reply, false) == 0)
        self->state = SC_CLIENT_LOGGING_IN;
    sc_msg_reset (&reply);
}

/* A plaintext frame during the login: AUTH_BROKER (only while
   connecting) or the broker's refusal. Its seq must be 0: a broker that
   sends another breaks the protocol, and the login ends. */
static void
s_recv_plain (sc_client_t *self, const uint8_t *data, size_t len)
{
    sc_msg_t msg;
    uint8_t opcode = 0;
    uint64_t seq = 0;
    int rc = sc_wire_open_plain (data, len, &msg);
    if (rc == 0 && (sc_wire_peek (data, len, &opcode, &seq) || seq != 0))
        s_login_failed (self, false, "the broker sent %s with seq %llu during the login "
                        "(it must be 0): refusing the login", sc_opcode_name (msg.opcode),
                        (unsigned long long) seq);
    else if (rc)
        s_notice (self, "dropped a malformed frame from the broker during login");
    else if (msg.opcode == SC_OP_ERROR)
        s_on_login_error (self, &msg);
    else if (msg.opcode == SC_OP_AUTH_BROKER && self->state == SC_CLIENT_CONNECTING)
        s_on_auth_broker (self, &msg);
    else if (msg.opcode == SC_OP_COOKIE && self->state == SC_CLIENT_CONNECTING)
        s_on_cookie (self, &msg);
    else
        s_notice (self, "dropped an unexpected message from the broker during login");
    sc_msg_reset (&msg);
}

/* The first commands the user typed ran as soon as we can. */
static void
s_run_early (sc_client_t *self)
{
    s_line_t *line;
    while (s_logged_in (self) && !self->send_failed
           && (line = s_queue_pop (&self->early))) {
        s_run_command (self, line->text, line->len);
        s_line_free (line);
    }
}

static void
s_on_welcome (sc_client_t *self, const sc_msg_t *msg)
{
    if (strcmp (msg->name, self->name) != 0) {
        s_login_failed (self, false, "the broker welcomed %s instead of %s: "
                        "refusing the session", msg->name, self->name);
        return;
    }
    self->state = SC_CLIENT_IDLE;
    self->ever_ready = true;
    /* enrolled: the name is ours, later logins are ordinary ones */
    self->enrol = false;
    sc_wipe (self->code, sizeof self->code);
    self->heartbeat_ms = msg->code;
    self->last_recv = self->last_ping = self->now;
    s_event (self, SC_EV_READY, self->name, NULL, 0);
    s_run_early (self);
}

static void
s_recv_logging_in (sc_client_t *self, const uint8_t *data, size_t len)
{
    uint8_t opcode = 0;
    uint64_t seq = 0;
    if (sc_wire_peek (data, len, &opcode, &seq) == 0 && seq == 0) {
        s_recv_plain (self, data, len);         /* a plaintext refusal */
        return;
    }
    sc_msg_t msg;
    if (sc_wire_open (self->channel, data, len, &msg))
        s_notice (self, "dropped a frame from the broker that does not authenticate");
    else if (msg.opcode == SC_OP_WELCOME)
        s_on_welcome (self, &msg);
    else if (msg.opcode == SC_OP_ERROR)
        s_on_login_error (self, &msg);
    else
        s_notice (self, "dropped an unexpected message from the broker during login");
    sc_msg_reset (&msg);
}

/* ---- End to end ---------------------------------------------------------- */

/* Key agreement or a message failed: the chat cannot be trusted. */
static void
s_e2e_fail (sc_client_t *self, const char *what, int err)
{
    s_error (self, "e2e", "%s with %s: %s: the chat is closed", what,
             self->peer, sc_e2e_strerror (err));
    s_send_op (self, SC_OP_LEAVE);
    s_end_unconfirmed (self, "it failed end to end");
}

/* One E2E plaintext out as MESSAGE [n, box]: it carries the highest
   counter received from the peer, so it settles any acknowledgement
   owed. *counter gets n. */
static int
s_send_e2e (sc_client_t *self, uint8_t kind, const char *text, size_t len,
            uint64_t *counter)
{
    uint8_t *pt = NULL;
    size_t pt_len = 0;
    uint64_t lines = self->lines_sent + (kind == SC_E2E_TEXT ? 1 : 0);
    if (sc_e2e_plain_encode (kind, self->recv_ack, lines, text, len, &pt, &pt_len))
        return SC_E2E_EINTERNAL;
    sc_msg_t msg;
    sc_msg_init (&msg, SC_OP_MESSAGE);
    uint8_t *box = malloc (pt_len + SC_TAG_LEN);
    int rc = box ? sc_e2e_seal (self->e2e, pt, pt_len, &msg.counter, box)
                 : SC_E2E_EINTERNAL;
    if (rc == 0 && sc_msg_set_data (&msg, box, pt_len + SC_TAG_LEN))
        rc = SC_E2E_EINTERNAL;
    if (rc == 0) {
        s_send (self, &msg);
        self->ack_owed = false;
        if (counter)
            *counter = msg.counter;
    }
    sc_wipe (pt, pt_len);
    free (pt);
    free (box);
    sc_msg_reset (&msg);
    return rc;
}

/* A chat line: kept (with its counter) until the peer confirms it, so
   that one never confirmed is reported when the chat ends. */
static void
s_send_text (sc_client_t *self, const char *text, size_t len)
{
    if (self->unacked.count >= S_UNACKED_MAX
        || self->unacked.bytes + len > S_UNACKED_BYTES) {
        s_error (self, "state", "%zu messages to %s are not confirmed yet: "
                 "not sent", self->unacked.count, self->peer);
        return;
    }
    s_line_t *line = s_line_new (text, len);
    if (!line) {
        s_error (self, "internal", "out of memory: not sent");
        return;
    }
    int rc = s_send_e2e (self, SC_E2E_TEXT, text, len, &line->counter);
    if (rc) {
        s_line_free (line);
        s_e2e_fail (self, "cannot seal a message", rc);
        return;
    }
    self->lines_sent++;
    s_queue_append (&self->unacked, line);
    s_event (self, SC_EV_SENT, self->peer, line->text, self->lines_sent);
}

/* The peer has received our messages up to counter ack. */
static void
s_on_ack (sc_client_t *self, uint64_t ack)
{
    self->peer_ack = ack;
    s_line_t *line;
    while (self->unacked.head && self->unacked.head->counter <= ack
           && (line = s_queue_pop (&self->unacked))) {
        s_line_free (line);
        self->lines_acked++;
    }
}

/* The first key seen for a peer is pinned once the peer proved it holds
   it (its signature in the key agreement verified), not when the broker
   names it: a key the broker made up, that nobody can use, must not
   take the real key's place. */
static void
s_pin_new (sc_client_t *self)
{
    const uint8_t *key = sc_e2e_peer_key (self->e2e);
    char why[S_TEXT_MAX];
    if (sc_pins_check (self->pins, self->peer, key, NULL) == SC_PIN_NEW
        && sc_pins_add (self->pins, self->peer, key, why, sizeof why))
        s_notice (self, why);
}

static void
s_chat_ready (sc_client_t *self)
{
    char safety[SC_SAFETY_LEN + 1];
    if (sc_e2e_safety (self->e2e, safety)) {
        s_e2e_fail (self, "cannot compute the safety number", SC_E2E_EINTERNAL);
        return;
    }
    s_pin_new (self);
    self->state = SC_CLIENT_CHATTING;
    sc_event_t ev = { .type = SC_EV_CHAT, .name = self->peer, .safety = safety };
    s_emit (self, &ev);
    s_line_t *line;
    while (self->state == SC_CLIENT_CHATTING && (line = s_queue_pop (&self->outbox))) {
        s_send_text (self, line->text, line->len);
        s_line_free (line);
    }
}

/* TOFU: a key that differs from the peer's pin is reported loudly, and
   the old pin stays until the user accepts the new key with /trust NAME.
   For a peer the user verified, the chat closes at once (false). For
   another, it opens untrusted: the key agreement runs, so the users can
   compare safety numbers, and what the peer sends is shown, but nothing
   the user types is sent (nor kept to send later) until /trust. */
static bool
s_trust_check (sc_client_t *self, const char *peer, const uint8_t key[static SC_PUB_LEN])
{
    uint8_t pinned[SC_PUB_LEN];
    self->untrusted = false;
    sc_pins_offer (self->pins, peer, key);      /* what /trust would pin */
    if (sc_pins_check (self->pins, peer, key, pinned) != SC_PIN_CHANGED)
        return true;
    char old_fpr[SC_FPR_LEN + 1], new_fpr[SC_FPR_LEN + 1];
    if (sc_fingerprint (pinned, old_fpr) || sc_fingerprint (key, new_fpr)) {
        strcpy (old_fpr, "?");
        strcpy (new_fpr, "?");
    }
    if (sc_pins_verified (self->pins, peer)) {
        s_error (self, "key-changed", "WARNING: the broker gave for %s the key %s, "
                 "not the key %s pinned before: someone may be in the middle. "
                 "You verified %s's key, so the chat is closed. Compare "
                 "fingerprints with %s another way; if %s really has a new "
                 "key, run /trust %s, then /talk %s again", peer, new_fpr,
                 old_fpr, peer, peer, peer, peer, peer);
        s_send_op (self, SC_OP_LEAVE);
        s_end_chat (self);
        return false;
    }
    self->untrusted = true;
    s_error (self, "key-changed", "WARNING: the broker gave for %s the key %s, "
             "not the key %s pinned before: someone may be in the middle. "
             "Nothing you type is sent to %s until you compare safety numbers "
             "with %s another way and, if %s really has a new key, run /trust %s",
             peer, new_fpr, old_fpr, peer, peer, peer, peer);
    size_t held = self->outbox.count;
    s_queue_clear (&self->outbox);
    if (held)
        s_error (self, "untrusted", "%s has a new key that you have not "
                 "trusted: %zu message%s typed for %s %s not sent", peer,
                 held, held == 1 ? "" : "s", peer, held == 1 ? "was" : "were");
    return true;
}

/* CHAT: the broker opened the chat and gives the peer's key. */
static void
s_on_chat (sc_client_t *self, const sc_msg_t *msg)
{
    bool expected = strcmp (msg->name, self->peer) == 0 && !self->e2e
                 && ((self->state == SC_CLIENT_WAITING && msg->flag)
                     || (self->state == SC_CLIENT_KEYX && !msg->flag));
    if (!expected) {
        s_error (self, "state", "the broker opened an unexpected chat with %s: "
                 "leaving it", msg->name);
        s_send_op (self, SC_OP_LEAVE);
        return;
    }
    if (!s_trust_check (self, msg->name, msg->key))
        return;
    self->e2e = sc_e2e_new (self->key, self->name, msg->key, msg->name, msg->flag);
    self->state = SC_CLIENT_KEYX;
    self->keyx_since = self->now;
    if (!self->e2e) {
        s_e2e_fail (self, "cannot start the key agreement", SC_E2E_EINTERNAL);
        return;
    }
    if (!msg->flag)
        return;                 /* the initiator speaks first */
    s_event (self, SC_EV_ACCEPTED, self->peer, NULL, 0);
    sc_msg_t start;
    sc_msg_init (&start, SC_OP_CC_SESSION);
    int rc = sc_e2e_start (self->e2e, &start.suite, start.nonce, start.eph);
    if (rc)
        s_e2e_fail (self, "cannot start the key agreement", rc);
    else
        s_send (self, &start);
    sc_msg_reset (&start);
}

/* A key agreement message only makes sense in our own key agreement. */
static bool
s_keyx_expects (sc_client_t *self, const sc_msg_t *msg, bool initiator)
{
    if (self->state == SC_CLIENT_KEYX && self->e2e
        && sc_e2e_initiator (self->e2e) == initiator)
        return true;
    if (self->state == SC_CLIENT_KEYX || self->state == SC_CLIENT_CHATTING)
        s_e2e_fail (self, sc_opcode_name (msg->opcode), SC_E2E_ESTATE);
    return false;
}

static void
s_on_cc_session (sc_client_t *self, const sc_msg_t *msg)
{
    if (!s_keyx_expects (self, msg, false))
        return;
    sc_msg_t reply;
    sc_msg_init (&reply, SC_OP_CC_REPLY);
    int rc = sc_e2e_reply (self->e2e, msg->suite, msg->nonce, msg->eph,
                           reply.nonce, reply.eph, reply.sig, reply.mac);
    if (rc)
        s_e2e_fail (self, "key agreement failed", rc);
    else
        s_send (self, &reply);
    sc_msg_reset (&reply);
}

static void
s_on_cc_reply (sc_client_t *self, const sc_msg_t *msg)
{
    if (!s_keyx_expects (self, msg, true))
        return;
    sc_msg_t finish;
    sc_msg_init (&finish, SC_OP_CC_FINISH);
    int rc = sc_e2e_finish (self->e2e, msg->nonce, msg->eph, msg->sig, msg->mac,
                            finish.sig, finish.mac);
    if (rc)
        s_e2e_fail (self, "key agreement failed", rc);
    else if (s_send (self, &finish) == 0)
        s_chat_ready (self);
    sc_msg_reset (&finish);
}

static void
s_on_cc_finish (sc_client_t *self, const sc_msg_t *msg)
{
    if (!s_keyx_expects (self, msg, false))
        return;
    int rc = sc_e2e_confirm (self->e2e, msg->sig, msg->mac);
    if (rc)
        s_e2e_fail (self, "key agreement failed", rc);
    else
        s_chat_ready (self);
}

static void
s_show_line (sc_client_t *self, const char *text, size_t len)
{
    char *clean = malloc (len + 1);
    if (clean) {
        size_t clean_len = sc_client_sanitize (text, len, clean);
        s_event (self, SC_EV_MSG, self->peer, clean, 0);
        sc_wipe (clean, clean_len);
        free (clean);
    }
    else
        s_error (self, "internal", "out of memory: a message from %s "
                 "could not be shown", self->peer);
}

/* A decrypted plaintext (skipped: how many counters before it never
   came): a line to show, an acknowledgement, or the peer closing. Its
   counts must agree with what came before: lines only grow, by at most
   one per counter, and ack confirms only what we sent, never less than
   before. */
static void
s_on_plaintext (sc_client_t *self, const uint8_t *pt, size_t len, uint64_t skipped)
{
    sc_e2e_plain_t plain;
    if (sc_e2e_plain_decode (pt, len, &plain)) {
        s_e2e_fail (self, "a message does not decode", SC_E2E_EAUTH);
        return;
    }
    uint64_t expect = self->lines_rcvd + (plain.kind == SC_E2E_TEXT ? 1 : 0);
    if (plain.lines < expect || plain.lines - expect > skipped
        || plain.ack < self->peer_ack || plain.ack > sc_e2e_sent (self->e2e)) {
        s_e2e_fail (self, "a message's counters contradict earlier ones", SC_E2E_EAUTH);
        goto done;
    }
    uint64_t lost = plain.lines - expect;
    self->lines_rcvd = plain.lines;
    /* A lost line is never confirmed, nor is anything after it: the
       peer then knows its lines from there on may be missing. Lost
       acknowledgements (a gap with no line in it) cost nothing. */
    if (lost)
        self->ack_frozen = true;
    if (!self->ack_frozen)
        self->recv_ack = sc_e2e_expected (self->e2e) - 1;
    s_on_ack (self, plain.ack);
    if (lost)
        s_event (self, SC_EV_LOST, self->peer, NULL, lost);
    if (plain.kind == SC_E2E_TEXT) {
        s_show_line (self, plain.text, plain.text_len);
        if (!self->ack_owed && !self->ack_frozen) {
            self->ack_owed = true;
            self->ack_at = self->now + S_ACK_DELAY_MS;
        }
    }
    else
    if (plain.kind == SC_E2E_CLOSE) {
        strcpy (self->closing, self->peer);
        if (lost) {
            char why[S_TEXT_MAX];
            snprintf (why, sizeof why, "its close says %llu of its messages "
                      "never arrived", (unsigned long long) lost);
            s_end_unconfirmed (self, why);
        }
        else
            s_end_chat (self);
    }
done:
    sc_wipe (plain.text, plain.text_len);
    free (plain.text);
}

/* No message of ours carried the acknowledgement in time: an ACK of its
   own (never itself acknowledged). */
static void
s_send_ack (sc_client_t *self)
{
    int rc = s_send_e2e (self, SC_E2E_ACK, "", 0, NULL);
    if (rc)
        s_e2e_fail (self, "cannot seal an acknowledgement", rc);
}

static void
s_on_message (sc_client_t *self, const sc_msg_t *msg)
{
    if (self->state != SC_CLIENT_CHATTING) {
        /* Before the keys: a peer breaking the protocol. After the chat
           closed: in flight when it closed, nobody to show it to. */
        if (self->state == SC_CLIENT_KEYX)
            s_e2e_fail (self, "message before the keys", SC_E2E_ESTATE);
        return;
    }
    size_t len = msg->data_len;
    uint8_t *pt = malloc (len > SC_TAG_LEN ? len - SC_TAG_LEN : 1);
    uint64_t lost = 0;
    int rc = pt ? sc_e2e_open (self->e2e, msg->counter, msg->data, len, pt, &lost)
                : SC_E2E_EINTERNAL;
    if (rc == SC_E2E_EREPLAY)
        s_error (self, "replay", "refused a replayed or reordered message "
                 "from %s (number %llu, expected %llu or later)", self->peer,
                 (unsigned long long) msg->counter,
                 (unsigned long long) sc_e2e_expected (self->e2e));
    else if (rc)
        s_e2e_fail (self, "a message failed to authenticate", rc);
    else
        s_on_plaintext (self, pt, len - SC_TAG_LEN, lost);
    if (pt) {
        sc_wipe (pt, len > SC_TAG_LEN ? len - SC_TAG_LEN : 1);
        free (pt);
    }
}

/* ---- Broker messages ------------------------------------------------------ */

static void
s_on_users (sc_client_t *self, const sc_msg_t *msg)
{
    char *text = malloc (msg->names_count * (SC_NAME_MAX + 1) + 1);
    if (!text)
        return;
    size_t pos = 0;
    for (size_t i = 0; i < msg->names_count; i++) {
        size_t len = strlen (msg->names[i]);
        if (i)
            text[pos++] = ' ';
        memcpy (text + pos, msg->names[i], len);
        pos += len;
    }
    text[pos] = 0;
    if (self->lists_pending)
        self->lists_pending--;
    s_event (self, SC_EV_USERS, NULL, text, msg->flag ? 1 : 0);
    free (text);
}

static void
s_on_rtt (sc_client_t *self, const sc_msg_t *msg)
{
    /* The broker only asks idle users. Waiting: our own request crossed
       this one and the broker will refuse ours; this one stands. */
    if (self->state == SC_CLIENT_IDLE || self->state == SC_CLIENT_WAITING) {
        self->state = SC_CLIENT_INCOMING;
        strcpy (self->peer, msg->name);
        s_event (self, SC_EV_REQUEST, self->peer, NULL, 0);
    }
    else if (strcmp (msg->name, self->peer) != 0)
        s_error (self, "state", "the broker passed on a request from %s "
                 "while %s: ignored", msg->name, sc_client_state_name (self->state));
}

/* The answer to our request: no chat. */
static void
s_answered (sc_client_t *self, const sc_msg_t *msg, sc_event_type_t type)
{
    if (self->state != SC_CLIENT_WAITING || strcmp (msg->name, self->peer) != 0)
        return;                 /* an answer to a request we withdrew */
    self->peer[0] = 0;
    self->state = SC_CLIENT_IDLE;
    s_event (self, type, msg->name, NULL, 0);
}

/* After a peer's E2E close, its LEAVE's NOTIFY is still to come, and
   may come after we asked the same peer again: it belongs to the chat
   already reported closed, so it is consumed first. The broker always
   sends it, and sends it before any NOTIFY of a later chat.

   A peer that leaves or quits a chat sends its authenticated E2E close
   first, so any NOTIFY that finds the chat still open (left, quit, lost,
   replaced, revoked, or another reason) ends it on the broker's word
   only: said so, as unconfirmed. */
static void
s_on_notify (sc_client_t *self, const sc_msg_t *msg)
{
    /* not about our chat or request: someone who asked while we were
       busy, whom the broker told so; nothing here changes */
    if (msg->code == SC_NOTIFY_MISSED) {
        s_event (self, SC_EV_MISSED, msg->name, NULL, 0);
        return;
    }
    if (strcmp (msg->name, self->closing) == 0) {
        self->closing[0] = 0;
        /* the broker has ended that chat: a request typed since can go */
        if (self->talk_deferred) {
            self->talk_deferred = false;
            if (s_send_named (self, SC_OP_RTT, self->peer, 0))
                s_end_chat (self);
        }
    }
    else if (s_in_chat (self) && strcmp (msg->name, self->peer) == 0) {
        static const char *said[] = {
            [SC_NOTIFY_LEFT] = "left", [SC_NOTIFY_QUIT] = "quit",
            [SC_NOTIFY_LOST] = "was lost", [SC_NOTIFY_CANCELLED] = "withdrew",
            [SC_NOTIFY_REPLACED] = "logged in elsewhere",
            [SC_NOTIFY_REVOKED] = "was logged out (key revoked)"
        };
        if (msg->code == SC_NOTIFY_REVOKED)
            s_error (self, "revoked", "the broker logged %s out: %s's key was "
                     "revoked", self->peer, self->peer);
        char why[S_TEXT_MAX];
        if (msg->code < sizeof said / sizeof said[0] && said[msg->code])
            snprintf (why, sizeof why, "the broker says %s %s", self->peer,
                      said[msg->code]);
        else
            snprintf (why, sizeof why, "the broker ended the chat, reason %u",
                      (unsigned) msg->code);
        s_end_unconfirmed (self, why);
    }
}

static void
s_on_error (sc_client_t *self, const sc_msg_t *msg)
{
    s_error (self, s_code_word (msg->code), "%s", s_detail (msg));
    switch (msg->code) {
        case SC_ERR_REPLACED:
            if (s_in_chat (self))
                s_end_unconfirmed (self, "this session was replaced by a newer login");
            s_forget_session (self);
            self->state = SC_CLIENT_DEAD;
            break;
        case SC_ERR_SHUTDOWN:
        case SC_ERR_TIMEOUT:
            /* the session is over: log in again */
            s_go_offline (self, "the broker ended the session");
            break;
        case SC_ERR_REVOKED:
            /* logged out for good: a new login would be refused too */
            if (s_in_chat (self))
                s_end_unconfirmed (self, "your key was revoked");
            self->closing[0] = 0;
            s_login_failed (self, false, "broker revoked the user %s: %s", self->name,
                            s_detail (msg));
            break;
        case SC_ERR_SELF:
        case SC_ERR_STATE:
        case SC_ERR_RATE:
            /* Our request was not taken: we are not waiting for anyone. */
            if (self->state == SC_CLIENT_WAITING) {
                self->peer[0] = 0;
                self->state = SC_CLIENT_IDLE;
            }
            break;
        default:
            break;
    }
}

static void
s_dispatch (sc_client_t *self, const sc_msg_t *msg)
{
    switch (msg->opcode) {
        case SC_OP_PONG:            break;
        case SC_OP_USERS:           s_on_users (self, msg); break;
        case SC_OP_RTT:             s_on_rtt (self, msg); break;
        case SC_OP_REFUSE:
            s_answered (self, msg, msg->code == SC_REFUSE_BUSY ? SC_EV_BUSY
                                                               : SC_EV_REFUSED);
            break;
        case SC_OP_USER_NOT_FOUND:  s_answered (self, msg, SC_EV_NOT_FOUND); break;
        case SC_OP_NOTIFY:          s_on_notify (self, msg); break;
        case SC_OP_CHAT:            s_on_chat (self, msg); break;
        case SC_OP_CC_SESSION:      s_on_cc_session (self, msg); break;
        case SC_OP_CC_REPLY:        s_on_cc_reply (self, msg); break;
        case SC_OP_CC_FINISH:       s_on_cc_finish (self, msg); break;
        case SC_OP_MESSAGE:         s_on_message (self, msg); break;
        case SC_OP_ERROR:           s_on_error (self, msg); break;
        default:
            s_error (self, "state", "unexpected %s from the broker: ignored",
                     sc_opcode_name (msg->opcode));
    }
}

/* A plaintext ERROR after login: a broker that no longer knows our
   session (it restarted, or dropped us) says "log in first". It is not
   authenticated, so it ends nothing by itself: the client pings, and
   only if nothing authenticated comes back within S_PROBE_MS does it
   take the session as gone (sc_client_tick), sooner than the heartbeat
   would. A forged ERROR costs one PING. */
static bool
s_session_gone (sc_client_t *self, const uint8_t *data, size_t len)
{
    uint8_t opcode = 0;
    uint64_t seq = 0;
    if (sc_wire_peek (data, len, &opcode, &seq) || seq != 0 || opcode != SC_OP_ERROR)
        return false;
    if (!self->probing) {
        sc_msg_t msg;
        if (sc_wire_open_plain (data, len, &msg) == 0) {
            snprintf (self->probe_why, sizeof self->probe_why, "the broker no longer "
                      "knows this session (%s: %s)", s_code_word (msg.code), s_detail (&msg));
            self->probe_since = self->now;
            self->probing = true;
            if (s_send_op (self, SC_OP_PING) == 0)
                self->last_ping = self->now;
        }
        sc_msg_reset (&msg);
    }
    return true;
}

static void
s_recv_session (sc_client_t *self, const uint8_t *data, size_t len)
{
    if (s_session_gone (self, data, len))
        return;
    sc_msg_t msg;
    int rc = sc_wire_open (self->channel, data, len, &msg);
    if (rc == SC_CHANNEL_ELIMIT)
        s_lost (self, "session counter exhausted");
    else if (rc == SC_CHANNEL_EGAP)
        s_lost (self, "an envelope from the broker is missing");
    else if (rc)
        s_error (self, "malformed", "dropped a message from the broker: %s",
                 sc_wire_strerror (rc));
    else {
        self->last_recv = self->now;
        self->probing = false;          /* the broker knows us */
        s_dispatch (self, &msg);
    }
    sc_msg_reset (&msg);
}

void
sc_client_recv (sc_client_t *self, const uint8_t *data, size_t len, int64_t now_ms)
{
    self->now = now_ms;
    if (self->state == SC_CLIENT_CONNECTING)
        s_recv_plain (self, data, len);
    else if (self->state == SC_CLIENT_LOGGING_IN)
        s_recv_logging_in (self, data, len);
    else if (s_logged_in (self))
        s_recv_session (self, data, len);
    s_after (self);
}

/* ---- Commands ------------------------------------------------------------ */

static const char s_help[] =
    "commands:\n"
    "  /list          the users online now\n"
    "  /talk USER     ask USER to chat\n"
    "  /accept        accept the pending request\n"
    "  /refuse        refuse the pending request\n"
    "  /leave         end the chat, or withdraw your request\n"
    "  /quit          leave the chat (if any), log out and exit\n"
    "  /fingerprint   your key's fingerprint; in a chat also the peer's and\n"
    "                 the safety number\n"
    "  /trust USER    accept USER's new key (after comparing safety numbers)\n"
    "  /verify USER   mark USER's pinned key verified (after comparing safety\n"
    "                 numbers): a later change of it closes the chat\n"
    "  /history [USER] [N]  the last N lines (20) said with USER (the current\n"
    "                 peer), from the encrypted history\n"
    "  /forget USER   delete the history with USER for good\n"
    "  /help          this list\n"
    "anything else is a message to your chat peer (1..4096 bytes);\n"
    "a line starting with // sends the rest, starting with /\n";

/* Refuse what needs the broker while there is no session. */
static bool
s_need_broker (sc_client_t *self)
{
    if (s_logged_in (self))
        return true;
    s_error (self, "offline", "not connected to the broker: not sent");
    return false;
}

static void
s_say (sc_client_t *self, const char *text, size_t len)
{
    if (len > SC_TEXT_MAX)
        s_error (self, "too-long", "a message is at most %d bytes, this one "
                 "has %zu: not sent", SC_TEXT_MAX, len);
    else if (!sc_utf8_valid (text, len))
        s_error (self, "bad-utf8", "a message must be UTF-8 text without NUL: not sent");
    else if (!s_need_broker (self))
        ;
    else if (self->untrusted)
        s_error (self, "untrusted", "%s has a new key that you have not trusted: "
                 "not sent (compare safety numbers with %s, then /trust %s)",
                 self->peer, self->peer, self->peer);
    else if (self->state == SC_CLIENT_CHATTING)
        s_send_text (self, text, len);
    else if (self->state == SC_CLIENT_KEYX) {
        if (s_queue_push (&self->outbox, text, len))
            s_error (self, "not-in-chat", "too many messages waiting for the "
                     "keys with %s: not sent", self->peer);
    }
    else if (self->state == SC_CLIENT_WAITING)
        s_error (self, "not-in-chat", "%s has not accepted yet: not sent", self->peer);
    else
        s_error (self, "not-in-chat", "no chat is open (/talk USER first): not sent");
}

static void
s_cmd_talk (sc_client_t *self, const char *arg)
{
    if (!arg || !sc_name_valid (arg, strlen (arg)))
        s_error (self, "usage", "/talk USER, where USER is 1 to %d of a-z 0-9 _ -",
                 SC_NAME_MAX);
    else if (!s_need_broker (self))
        ;
    else if (strcmp (arg, self->name) == 0)
        s_error (self, "self", "you cannot chat with yourself");
    else if (self->state != SC_CLIENT_IDLE)
        s_error (self, "state", "already %s %s: /leave first",
                 self->state == SC_CLIENT_INCOMING ? "asked by" :
                 self->state == SC_CLIENT_WAITING ? "waiting for" : "in a chat with",
                 self->peer);
    else if (self->closing[0]) {
        /* The peer closed the last chat, but its LEAVE may not have reached
           the broker yet: a request sent now could find us still in that
           chat. It goes when the broker's NOTIFY says the chat is over. */
        strcpy (self->peer, arg);
        self->state = SC_CLIENT_WAITING;
        self->talk_deferred = true;
    }
    else if (s_send_named (self, SC_OP_RTT, arg, 0) == 0) {
        strcpy (self->peer, arg);
        self->state = SC_CLIENT_WAITING;
    }
}

static void
s_cmd_answer (sc_client_t *self, bool accept)
{
    if (!s_need_broker (self))
        return;
    if (self->state != SC_CLIENT_INCOMING) {
        s_error (self, "state", "no request to %s", accept ? "accept" : "refuse");
        return;
    }
    if (accept) {
        if (s_send_named (self, SC_OP_ACCEPT, self->peer, 0) == 0) {
            self->state = SC_CLIENT_KEYX;
            self->keyx_since = self->now;
        }
    }
    else if (s_send_named (self, SC_OP_REFUSE, self->peer, SC_REFUSE_DECLINED) == 0)
        s_end_chat (self);
}

/* Leave the chat or withdraw the request, telling the peer: in a chat
   with an authenticated E2E close, so it knows no message was cut. */
static void
s_leave (sc_client_t *self, uint8_t opcode)
{
    if (self->state == SC_CLIENT_CHATTING)
        s_send_e2e (self, SC_E2E_CLOSE, "", 0, NULL);
    if (opcode == SC_OP_LEAVE && self->state == SC_CLIENT_INCOMING)
        s_send_named (self, SC_OP_REFUSE, self->peer, SC_REFUSE_DECLINED);
    else if (!(opcode == SC_OP_LEAVE && self->talk_deferred))
        s_send_op (self, opcode);      /* a deferred request was never sent */
    s_end_chat (self);
}

static void
s_cmd_leave (sc_client_t *self)
{
    if (!s_need_broker (self))
        return;
    if (s_in_chat (self))
        s_leave (self, SC_OP_LEAVE);
    else
        s_error (self, "not-in-chat", "no chat or request to leave");
}

static void
s_cmd_quit (sc_client_t *self)
{
    if (s_in_chat (self))
        s_leave (self, SC_OP_QUIT);
    else if (s_logged_in (self))
        s_send_op (self, SC_OP_QUIT);
    self->send_failed = false;  /* leaving anyway */
    s_forget_session (self);
    self->state = SC_CLIENT_DONE;
    s_event (self, SC_EV_BYE, NULL, NULL, 0);
}

static void
s_cmd_fingerprint (sc_client_t *self)
{
    sc_event_t ev = { .type = SC_EV_FINGERPRINT, .fpr = self->own_fpr };
    char peer_fpr[SC_FPR_LEN + 1], safety[SC_SAFETY_LEN + 1];
    if (self->state == SC_CLIENT_CHATTING
        && sc_fingerprint (sc_e2e_peer_key (self->e2e), peer_fpr) == 0
        && sc_e2e_safety (self->e2e, safety) == 0) {
        ev.name = self->peer;
        ev.peer_fpr = peer_fpr;
        ev.safety = safety;
    }
    s_emit (self, &ev);
}

/* /trust NAME: accept the key the broker last gave for NAME, which
   differed from the pin; the peer is no longer verified. */
static void
s_cmd_trust (sc_client_t *self, const char *arg)
{
    if (!arg || !sc_name_valid (arg, strlen (arg))) {
        s_error (self, "usage", "/trust USER, where USER is 1 to %d of a-z 0-9 _ -",
                 SC_NAME_MAX);
        return;
    }
    char why[S_TEXT_MAX];
    int rc = sc_pins_trust (self->pins, arg, why, sizeof why);
    if (rc < 0) {
        s_error (self, "state", "no new key was seen for %s: nothing to trust", arg);
        return;
    }
    if (rc > 0)
        s_notice (self, why);
    if (self->untrusted && strcmp (self->peer, arg) == 0)
        self->untrusted = false;
    /* the fingerprint of the key now pinned: the one the key-changed
       warning showed last */
    uint8_t key[SC_PUB_LEN];
    char fpr[SC_FPR_LEN + 1] = "?";
    if (sc_pins_key (self->pins, arg, key) || sc_fingerprint (key, fpr))
        strcpy (fpr, "?");
    sc_event_t ev = { .type = SC_EV_TRUSTED, .name = arg, .fpr = fpr };
    s_emit (self, &ev);
}

/* /verify NAME: the users compared safety numbers; NAME's pinned key is
   marked verified, so that a change of it closes the chat. */
static void
s_cmd_verify (sc_client_t *self, const char *arg)
{
    if (!arg || !sc_name_valid (arg, strlen (arg))) {
        s_error (self, "usage", "/verify USER, where USER is 1 to %d of a-z 0-9 _ -",
                 SC_NAME_MAX);
        return;
    }
    if (sc_pins_offered (self->pins, arg)) {
        s_error (self, "untrusted", "%s has a new key that you have not trusted: "
                 "/trust %s first, then /verify %s", arg, arg, arg);
        return;
    }
    if (!sc_pins_has (self->pins, arg)) {
        s_error (self, "state", "no key is pinned for %s yet: chat with %s, "
                 "compare safety numbers, then /verify %s", arg, arg, arg);
        return;
    }
    char why[S_TEXT_MAX];
    if (sc_pins_verify (self->pins, arg, why, sizeof why))
        s_notice (self, why);
    s_event (self, SC_EV_VERIFIED, arg, NULL, 0);
}

static bool
s_is_command (const char *word)
{
    static const char *words[] = { "list", "talk", "accept", "refuse", "leave",
                                   "quit", "fingerprint", "trust", "verify", "help" };
    for (size_t i = 0; i < sizeof words / sizeof words[0]; i++)
        if (strcmp (word, words[i]) == 0)
            return true;
    return false;
}

/* "/word" or "/word arg", split in place. -1 when there is more than
   one argument. */
static int
s_split (char *line, char **arg)
{
    *arg = NULL;
    char *space = strchr (line, ' ');
    if (!space)
        return 0;
    *space = 0;
    *arg = space + 1;
    return strchr (*arg, ' ') ? -1 : 0;
}

static void
s_command (sc_client_t *self, char *line)
{
    char *arg = NULL;
    bool extra = s_split (line, &arg) != 0;
    const char *word = line + 1;
    if (!s_is_command (word)) {
        char clean[40];
        size_t len = strnlen (word, 24);
        sc_client_sanitize (word, len, clean);
        s_error (self, "unknown-command", "/%s%s is not a command (/help lists them)",
                 clean, word[len] ? "..." : "");
    }
    else if (strcmp (word, "talk") == 0)
        s_cmd_talk (self, extra ? NULL : arg);
    else if (strcmp (word, "trust") == 0)
        s_cmd_trust (self, extra ? NULL : arg);
    else if (strcmp (word, "verify") == 0)
        s_cmd_verify (self, extra ? NULL : arg);
    else if (arg)
        s_error (self, "usage", "/%s takes no argument", word);
    else if (strcmp (word, "list") == 0) {
        if (s_need_broker (self) && s_send_op (self, SC_OP_LIST) == 0)
            self->lists_pending++;
    }
    else if (strcmp (word, "accept") == 0)       s_cmd_answer (self, true);
    else if (strcmp (word, "refuse") == 0)       s_cmd_answer (self, false);
    else if (strcmp (word, "leave") == 0)        s_cmd_leave (self);
    else if (strcmp (word, "quit") == 0)         s_cmd_quit (self);
    else if (strcmp (word, "fingerprint") == 0)  s_cmd_fingerprint (self);
    else
        s_event (self, SC_EV_HELP, NULL, s_help, 0);
}

static void
s_run_command (sc_client_t *self, const char *line, size_t len)
{
    if (len == 0)
        return;
    if (line[0] != '/' || (len >= 2 && line[1] == '/')) {
        size_t skip = line[0] == '/' ? 1 : 0;
        s_say (self, line + skip, len - skip);
        return;
    }
    /* Commands are short: anything long or with odd bytes is not one. */
    char cmd[SC_NAME_MAX + 32];
    if (len >= sizeof cmd || memchr (line, 0, len)) {
        s_error (self, "unknown-command", "not a command (/help lists them)");
        return;
    }
    /* Spaces typed after a command are not an argument. */
    while (len > 1 && (line[len - 1] == ' ' || line[len - 1] == '\t'))
        len--;
    memcpy (cmd, line, len);
    cmd[len] = 0;
    s_command (self, cmd);
}

void
sc_client_command (sc_client_t *self, const char *line, size_t len, int64_t now_ms)
{
    self->now = now_ms;
    if (self->state == SC_CLIENT_DONE || self->state == SC_CLIENT_DEAD || len == 0)
        return;
    if (!self->ever_ready && !s_logged_in (self)) {
        /* Typed before the first login: run once we are in. */
        if (s_queue_push (&self->early, line, len))
            s_error (self, "offline", "not logged in yet and too many lines "
                     "waiting: not sent");
        return;
    }
    s_run_command (self, line, len);
    s_after (self);
}

/* ---- Time ---------------------------------------------------------------- */

void
sc_client_tick (sc_client_t *self, int64_t now_ms)
{
    self->now = now_ms;
    if (!s_logged_in (self))
        return;
    int64_t hb = self->heartbeat_ms;
    if (now_ms - self->last_recv >= 3 * hb) {
        s_lost (self, "no answer from the broker");
        return;
    }
    if (self->probing && now_ms - self->probe_since >= S_PROBE_MS) {
        s_lost (self, self->probe_why);
        return;
    }
    if (now_ms - self->last_ping >= hb) {
        self->last_ping = now_ms;
        s_send_op (self, SC_OP_PING);
    }
    if (self->state == SC_CLIENT_KEYX && now_ms - self->keyx_since >= S_KEYX_TIMEOUT_MS)
        s_e2e_fail (self, "key agreement timed out", SC_E2E_ESTATE);
    if (self->state == SC_CLIENT_CHATTING && self->ack_owed && now_ms >= self->ack_at)
        s_send_ack (self);
    if (self->state == SC_CLIENT_CHATTING)
        s_report_acked (self);
    s_after (self);
}

int64_t
sc_client_timeout (const sc_client_t *self, int64_t now_ms)
{
    if (!s_logged_in (self))
        return -1;
    int64_t hb = self->heartbeat_ms;
    int64_t due = self->last_ping + hb;
    if (self->last_recv + 3 * hb < due)
        due = self->last_recv + 3 * hb;
    if (self->state == SC_CLIENT_KEYX && self->keyx_since + S_KEYX_TIMEOUT_MS < due)
        due = self->keyx_since + S_KEYX_TIMEOUT_MS;
    if (self->state == SC_CLIENT_CHATTING && self->ack_owed && self->ack_at < due)
        due = self->ack_at;
    if (self->state == SC_CLIENT_CHATTING && self->lines_acked > self->acked_shown)
        due = now_ms;
    if (self->probing && self->probe_since + S_PROBE_MS < due)
        due = self->probe_since + S_PROBE_MS;
    return due > now_ms ? due - now_ms : 0;
}

void
sc_client_reset (sc_client_t *self)
{
    if (self->state != SC_CLIENT_DONE && self->state != SC_CLIENT_DEAD)
        s_go_offline (self, "the connection to the broker was lost");
}

/* ---- Object ---------------------------------------------------------------- */

sc_client_t *
sc_client_new (const sc_key_t *key, const char *name, const sc_ca_t *ca,
               const char *broker_name, const char *pins_path,
               const sc_client_io_t *io)
{
    if (!key || !sc_key_has_private (key) || !name || !sc_name_valid (name, strlen (name))
        || !ca || !broker_name || !io || !io->send)
        return NULL;
    sc_client_t *self = calloc (1, sizeof *self);
    if (!self)
        return NULL;
    self->key = key;
    self->ca = ca;
    self->io = *io;
    strcpy (self->name, name);
    self->broker_name = strdup (broker_name);
    uint8_t pub[SC_PUB_LEN];
    char why[S_TEXT_MAX] = "";
    if (self->broker_name && sc_key_public_raw (key, pub) == 0
        && sc_fingerprint (pub, self->own_fpr) == 0)
        self->pins = sc_pins_new (pins_path, why, sizeof why);
    if (!self->pins) {
        sc_client_destroy (&self);
        return NULL;
    }
    if (why[0])
        s_notice (self, why);
    return self;
}

void
sc_client_destroy (sc_client_t **self_p)
{
    if (self_p && *self_p) {
        sc_client_t *self = *self_p;
        s_forget_session (self);
        sc_e2e_destroy (&self->e2e);
        s_queue_clear (&self->outbox);
        s_queue_clear (&self->early);
        s_queue_clear (&self->unacked);
        sc_pins_destroy (&self->pins);
        free (self->broker_name);
        sc_wipe (self, sizeof *self);
        free (self);
        *self_p = NULL;
    }
}

sc_client_state_t
sc_client_state (const sc_client_t *self)
{
    return self->state;
}

const char *
sc_client_peer (const sc_client_t *self)
{
    return self->peer[0] ? self->peer : NULL;
}

const char *
sc_client_name (const sc_client_t *self)
{
    return self->name;
}

bool
sc_client_ever_ready (const sc_client_t *self)
{
    return self->ever_ready;
}

size_t
sc_client_pending (const sc_client_t *self)
{
    size_t unacked = self->state == SC_CLIENT_CHATTING ? self->unacked.count : 0;
    return self->lists_pending + (self->state == SC_CLIENT_WAITING ? 1 : 0) + unacked;
}

uint32_t
sc_client_heartbeat (const sc_client_t *self)
{
    return self->heartbeat_ms;
}

const char *
sc_client_state_name (sc_client_state_t state)
{
    static const char *names[] = {
        [SC_CLIENT_OFFLINE] = "offline", [SC_CLIENT_CONNECTING] = "connecting",
        [SC_CLIENT_LOGGING_IN] = "logging-in", [SC_CLIENT_IDLE] = "idle",
        [SC_CLIENT_WAITING] = "waiting", [SC_CLIENT_INCOMING] = "incoming",
        [SC_CLIENT_KEYX] = "keyx", [SC_CLIENT_CHATTING] = "chatting",
        [SC_CLIENT_DONE] = "done", [SC_CLIENT_DEAD] = "dead"
    };
    if ((size_t) state < sizeof names / sizeof names[0] && names[state])
        return names[state];
    return "?";
}

/* ---- Batch output ------------------------------------------------------------ */

static const char *
s_word (sc_event_type_t type)
{
    switch (type) {
        case SC_EV_READY:       return "ready";
        case SC_EV_REQUEST:     return "request";
        case SC_EV_ACCEPTED:    return "accepted";
        case SC_EV_REFUSED:     return "refused";
        case SC_EV_BUSY:        return "busy";
        case SC_EV_NOT_FOUND:   return "not-found";
        case SC_EV_MISSED:      return "missed";
        case SC_EV_CLOSED:      return "closed";
        case SC_EV_TRUSTED:     return "trusted";
        case SC_EV_VERIFIED:    return "verified";
        default:                return NULL;
    }
}

static const char *
s_or (const char *text)
{
    return text ? text : "";
}

int
sc_event_format_batch (const sc_event_t *ev, char *buf, size_t size)
{
    int n;
    const char *word = s_word (ev->type);
    if (word)
        n = snprintf (buf, size, "%s %s\n", word, s_or (ev->name));
    else switch (ev->type) {
        case SC_EV_USERS:
            n = snprintf (buf, size, "users%s%s\n", ev->text && ev->text[0] ? " " : "",
                          s_or (ev->text));
            break;
        case SC_EV_CHAT:
            n = snprintf (buf, size, "chat %s %s\n", s_or (ev->name), s_or (ev->safety));
            break;
        case SC_EV_MSG:
            n = snprintf (buf, size, "msg %s %s\n", s_or (ev->name), s_or (ev->text));
            break;
        case SC_EV_LOST:
            n = snprintf (buf, size, "lost %s %llu\n", s_or (ev->name),
                          (unsigned long long) ev->number);
            break;
        case SC_EV_ACKED:
            n = snprintf (buf, size, "acked %s %llu\n", s_or (ev->name),
                          (unsigned long long) ev->number);
            break;
        case SC_EV_UNACKED:
            n = snprintf (buf, size, "unacked %s %llu\n", s_or (ev->name),
                          (unsigned long long) ev->number);
            break;
        case SC_EV_FINGERPRINT:
            if (ev->name)
                n = snprintf (buf, size, "fingerprint %s %s %s %s\n", s_or (ev->fpr),
                              ev->name, s_or (ev->peer_fpr), s_or (ev->safety));
            else
                n = snprintf (buf, size, "fingerprint %s\n", s_or (ev->fpr));
            break;
        case SC_EV_ERROR:
            n = snprintf (buf, size, "error %s %s\n", s_or (ev->code), s_or (ev->text));
            break;
        case SC_EV_BYE:
            n = snprintf (buf, size, "bye\n");
            break;
        default:
            if (size)
                buf[0] = 0;
            return 0;
    }
    return n < 0 || (size_t) n >= size ? -1 : n;
}
