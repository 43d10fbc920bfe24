/*  sc_client: the protocol core of the secchat client. Pure: no socket,
    no terminal, no clock. The caller gives it each frame from the broker,
    each line the user typed and the time; it answers with frames for the
    broker and events for the user, through two callbacks.

    It owns the login handshake, the session channel, the chat state
    machine, the end-to-end layer with the peer, the messages typed while
    the end-to-end keys are agreed, the commands typed before the first
    login completes, heartbeats and the pins of peers' keys.

        offline --start--> connecting --AUTH_BROKER--> logging-in
          --WELCOME--> idle --/talk--> waiting --CHAT--> keyx --> chatting
                       idle --RTT--> incoming --/accept--> keyx --> chatting

    Lost broker (nothing received for 3 heartbeats, or an envelope from
    it missing), ERROR SHUTDOWN or TIMEOUT: the chat closes (reported as
    unconfirmed, with the own lines never acknowledged) and the core goes
    offline; the caller drops
    the socket and calls sc_client_start again on a new one. ERROR
    REPLACED, ERROR REVOKED and login failures that a retry cannot fix
    end in `dead`.
    /quit ends in `done`.

    docs/CLIENT.md says what the user sees; docs/PROTOCOL.md what goes on
    the wire.

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at https://mozilla.org/MPL/2.0/.
*/
#ifndef SC_CLIENT_H_INCLUDED
#define SC_CLIENT_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sc_key.h"
#include "sc_proto.h"

/* Longest batch line sc_event_format_batch writes, newline and NUL
   included (a full USERS answer is the longest). */
#define SC_EVENT_LINE_MAX  (16 + SC_USERS_MAX * (SC_NAME_MAX + 1))

typedef enum {
    SC_CLIENT_OFFLINE,          /* no session: before start, or lost      */
    SC_CLIENT_CONNECTING,       /* HELLO sent                             */
    SC_CLIENT_LOGGING_IN,       /* AUTH_CLIENT sent, waiting for WELCOME  */
    SC_CLIENT_IDLE,
    SC_CLIENT_WAITING,          /* asked peer, waiting for the answer     */
    SC_CLIENT_INCOMING,         /* peer asked us                          */
    SC_CLIENT_KEYX,             /* chat accepted, E2E keys being agreed   */
    SC_CLIENT_CHATTING,
    SC_CLIENT_DONE,             /* /quit: logged out, exit 0              */
    SC_CLIENT_DEAD              /* replaced, or a login that cannot work  */
} sc_client_state_t;

typedef enum {
    SC_EV_READY,        /* name: own name                                 */
    SC_EV_USERS,        /* text: names joined by spaces (maybe "");
                           number: 1 when the broker truncated the list   */
    SC_EV_REQUEST,      /* name asks to chat                              */
    SC_EV_ACCEPTED,     /* name accepted our request                      */
    SC_EV_REFUSED,
    SC_EV_BUSY,
    SC_EV_NOT_FOUND,
    SC_EV_CHAT,         /* name; safety: the safety number                */
    SC_EV_MSG,          /* name; text: the message, controls shown as '?' */
    SC_EV_SENT,         /* name: the peer; text: an own line just sealed
                           and sent, as typed; number: its place among the
                           own lines of this chat (1, 2...), which ACKED
                           counts. No batch line: the terminal shows it,
                           the history keeps it                           */
    SC_EV_CLOSED,       /* name                                           */
    SC_EV_LOST,         /* name; number: messages that never arrived      */
    SC_EV_ACKED,        /* name; number: how many of own lines the peer
                           confirmed in this chat (reported as it grows)  */
    SC_EV_UNACKED,      /* name; number: own lines never confirmed as the
                           chat ended; text: the first of them, sanitized,
                           one per line (for the user only), or NULL      */
    SC_EV_TRUSTED,      /* name: the user accepted name's new key (/trust);
                           fpr: the fingerprint of the key now pinned     */
    SC_EV_VERIFIED,     /* name: the user marked name's key verified      */
    SC_EV_FINGERPRINT,  /* fpr: own; in a chat also name, peer_fpr, safety */
    SC_EV_ERROR,        /* code: one word (docs/CLIENT.md); text          */
    SC_EV_BYE,
    SC_EV_HELP,         /* text: the commands, several lines              */
    SC_EV_NOTICE,       /* text: a diagnostic for standard error          */
    SC_EV_LOGIN_FAILED, /* text: why; number: 1 when a retry may work     */
    SC_EV_MISSED        /* name asked to talk while we were busy: the
                           broker refused it (busy) for us                */
} sc_event_type_t;

/* Every pointer is borrowed for the duration of the event callback. */
typedef struct {
    sc_event_type_t type;
    const char *name;
    const char *code;
    const char *text;
    const char *fpr;
    const char *peer_fpr;
    const char *safety;
    uint64_t number;
} sc_event_t;

/* What the core needs from its caller. send: one frame for the broker,
   0 when it was sent or queued, -1 when it cannot be (the core then
   considers the connection lost). event: something for the user. The
   callbacks must not call back into the core. */
typedef struct {
    void *arg;
    int (*send) (void *arg, const uint8_t *frame, size_t len);
    void (*event) (void *arg, const sc_event_t *ev);
} sc_client_io_t;

typedef struct _sc_client_t sc_client_t;

/* key (private), ca and io->arg are borrowed and must outlive the
   client. pins_path NULL keeps pins in memory only. A problem with the
   pins file is reported as an SC_EV_NOTICE from here. NULL on bad
   arguments or no memory. */
sc_client_t *sc_client_new (const sc_key_t *key, const char *name,
                            const sc_ca_t *ca, const char *broker_name,
                            const char *pins_path, const sc_client_io_t *io);
void sc_client_destroy (sc_client_t **self_p);

/* Enrol instead of logging in (docs/PROTOCOL.md section 5a): the logins
   send ENROL with code (SC_HS_CODE_LEN bytes; all zero: none, for a
   broker with open registration) and the client's key as the new key,
   until one is welcomed; from then on they are ordinary logins. A
   refusal (ERROR 16..19) ends in `dead`. Only before the first start.
   0 or -1. */
int sc_client_set_enrol (sc_client_t *self, const uint8_t *code);

/* Start a login with fresh ephemeral keys (sends HELLO). Only from
   offline. 0 or -1. */
int sc_client_start (sc_client_t *self, int64_t now_ms);
/* One frame from the broker. Bad input is reported and dropped. */
void sc_client_recv (sc_client_t *self, const uint8_t *data, size_t len,
                     int64_t now_ms);
/* One line the user typed, without its newline (any bytes: a NUL or bad
   UTF-8 is refused, not cut). */
void sc_client_command (sc_client_t *self, const char *line, size_t len,
                        int64_t now_ms);
/* Heartbeats and timeouts. Call at least every sc_client_timeout ms. */
void sc_client_tick (sc_client_t *self, int64_t now_ms);
/* Milliseconds until the next tick is due, -1 when nothing is pending. */
int64_t sc_client_timeout (const sc_client_t *self, int64_t now_ms);
/* The connection is gone (the caller gave up on it): forget the session
   and any chat (reported as closed), keep the identity. Goes offline. */
void sc_client_reset (sc_client_t *self);

sc_client_state_t sc_client_state (const sc_client_t *self);
/* The peer of the current request or chat, or NULL. */
const char *sc_client_peer (const sc_client_t *self);
const char *sc_client_name (const sc_client_t *self);
/* True once a login has completed (later losses are reconnects). */
bool sc_client_ever_ready (const sc_client_t *self);
/* Requests whose answer has not come yet (a /list, a /talk) and own
   chat lines the peer has not confirmed yet: what the user would miss
   if the caller quit now. */
size_t sc_client_pending (const sc_client_t *self);
/* The heartbeat interval the broker announced (0 before WELCOME). */
uint32_t sc_client_heartbeat (const sc_client_t *self);
/* "idle", "waiting", ... for logs and tests. */
const char *sc_client_state_name (sc_client_state_t state);

/* The docs/CLIENT.md batch line of an event, newline included, into buf.
   Returns its length; 0 when the event has no standard output line
   (HELP, NOTICE, LOGIN_FAILED go to standard error); -1 when buf is too
   small (SC_EVENT_LINE_MAX always fits). */
int sc_event_format_batch (const sc_event_t *ev, char *buf, size_t size);

/* Copy text for display with every control character (C0, DEL, C1)
   shown as '?'. dst holds len + 1 bytes; returns the length written. */
size_t sc_client_sanitize (const char *text, size_t len, char *dst);

#endif
