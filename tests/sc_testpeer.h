/*  sc_testpeer: a raw ZeroMQ client for adversarial tests. It speaks the
    wire format by hand (one DEALER socket, the real codec and crypto), so
    a test can send exactly the bytes it wants: garbage, replays, frames
    from another session, envelopes out of order, and can also log in
    properly to act as an honest (or half-honest) client.

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at https://mozilla.org/MPL/2.0/.
*/
#ifndef SC_TESTPEER_H_INCLUDED
#define SC_TESTPEER_H_INCLUDED

#include <stddef.h>
#include <stdint.h>

#include "sc_channel.h"
#include "sc_msg.h"

typedef struct _sc_testpeer_t sc_testpeer_t;

/* A DEALER connected to endpoint (NULL on failure). */
sc_testpeer_t *sc_testpeer_new (const char *endpoint);
void sc_testpeer_destroy (sc_testpeer_t **self_p);

/* One frame of exactly these bytes. 0 / -1. */
int sc_testpeer_send_raw (sc_testpeer_t *self, const void *data, size_t len);
/* A message of n frames. 0 / -1. */
int sc_testpeer_send_frames (sc_testpeer_t *self, size_t n,
                             const void *const data[], const size_t len[]);
/* Next frame: 1 and *data (malloc'd, caller frees), 0 on timeout. */
int sc_testpeer_recv_raw (sc_testpeer_t *self, int timeout_ms,
                          uint8_t **data, size_t *len);

/* Plaintext (handshake) messages. */
int sc_testpeer_send_plain (sc_testpeer_t *self, const sc_msg_t *msg);
/* 1 and msg decoded, 0 on timeout, -1 when the frame does not decode. */
int sc_testpeer_recv_plain (sc_testpeer_t *self, int timeout_ms, sc_msg_t *msg);

/* The whole login as `claimed` with the key of `user` from keys_dir
   (ca.pem, clients/USER.key, clients/USER.pass). Returns SC_OP_WELCOME
   on success (the channel is then set), or the ERROR code the broker
   answered (> 0 and < 100 as sc_error_code_t), or -1 (no answer / local
   failure). */
int sc_testpeer_login (sc_testpeer_t *self, const char *keys_dir,
                       const char *user, const char *claimed);
/* The same with each file named: the CA to check the broker with, the
   private key and its password file. */
int sc_testpeer_login_with (sc_testpeer_t *self, const char *ca_path,
                            const char *key_path, const char *pass_path,
                            const char *claimed);
sc_channel_t *sc_testpeer_channel (sc_testpeer_t *self);

/* Sealed messages after login. send_body seals already encoded bytes. */
int sc_testpeer_send (sc_testpeer_t *self, const sc_msg_t *msg);
int sc_testpeer_send_body (sc_testpeer_t *self, uint8_t opcode,
                           const uint8_t *body, size_t len);
/* Seal msg into an envelope without sending it (for replays). */
int sc_testpeer_seal (sc_testpeer_t *self, const sc_msg_t *msg,
                      uint8_t **frame, size_t *len);
/* 1 and msg, 0 on timeout, negative sc_wire error when it does not open. */
int sc_testpeer_recv (sc_testpeer_t *self, int timeout_ms, sc_msg_t *msg);
/* The next sealed message must be ERROR: its code, or -1. */
int sc_testpeer_expect_error (sc_testpeer_t *self, int timeout_ms);
/* The next plaintext message must be ERROR: its code, or -1. */
int sc_testpeer_expect_plain_error (sc_testpeer_t *self, int timeout_ms);

#endif
