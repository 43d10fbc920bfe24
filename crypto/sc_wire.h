/*  sc_wire: one message to or from the bytes of one ZeroMQ frame.

    Joins the three layers the broker and the client both need: the body
    codec (sc_msg), the envelope, and the session channel (sc_channel).
    It lives in crypto/, above the codec: the codec knows no keys.
    Plain functions are for the handshake (and its ERRORs); sealed ones
    for everything after login. The raw variants let the broker relay a
    body it has checked without encoding it again.

    Results: 0, or a negative code from sc_codec_err_t (bad bytes) or
    sc_channel_err_t (does not open, replay, counter exhausted);
    sc_wire_strerror names either.

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at https://mozilla.org/MPL/2.0/.
*/
#ifndef SC_WIRE_H_INCLUDED
#define SC_WIRE_H_INCLUDED

#include "sc_channel.h"
#include "sc_msg.h"

const char *sc_wire_strerror (int err);

/* Handshake: an envelope with seq 0 and a plaintext body. */
int sc_wire_plain (const sc_msg_t *msg, uint8_t **out, size_t *out_len) SC_MUST_CHECK;
/* Decode a plaintext envelope (its seq is not checked: 0 by the spec). */
int sc_wire_open_plain (const uint8_t *buf, size_t len, sc_msg_t *msg) SC_MUST_CHECK;

/* After login: encode, seal under the next seq, wrap. */
int sc_wire_seal (sc_channel_t *ch, const sc_msg_t *msg,
                  uint8_t **out, size_t *out_len) SC_MUST_CHECK;
/* Unwrap, open, decode strictly. */
int sc_wire_open (sc_channel_t *ch, const uint8_t *buf, size_t len,
                  sc_msg_t *msg) SC_MUST_CHECK;

/* Relay path. seal_raw seals an already encoded body; open_raw opens an
   envelope into its opcode and plaintext body (malloc'd into *body, the
   caller wipes and frees it) without decoding the body. */
int sc_wire_seal_raw (sc_channel_t *ch, uint8_t opcode,
                      const uint8_t *body, size_t body_len,
                      uint8_t **out, size_t *out_len) SC_MUST_CHECK;
int sc_wire_open_raw (sc_channel_t *ch, const uint8_t *buf, size_t len,
                      uint8_t *opcode, uint8_t **body, size_t *body_len) SC_MUST_CHECK;
/* The relay path without copies, in the caller's buffer. open_inplace
   opens the envelope in buf where its ciphertext is: *body then points
   into buf, at the plaintext (the caller wipes it when done). When that
   plaintext is what the peer gets, reseal_inplace turns buf into the
   peer's envelope of the same length: the ciphertext sealed under ch
   over the plaintext (body, body_len: what open_inplace gave), the header
   for ch's next seq before it. It returns SC_WIRE_NOFIT, touching
   nothing, when the peer's header has another length than the sender's
   (a seq of another width), or body is not at the end of buf: the caller
   then seals a copy with seal_raw. On any failure seal_raw's codes. */
#define SC_WIRE_NOFIT 1
int sc_wire_open_inplace (sc_channel_t *ch, uint8_t *buf, size_t len,
                          uint8_t *opcode, uint8_t **body, size_t *body_len) SC_MUST_CHECK;
int sc_wire_reseal_inplace (sc_channel_t *ch, uint8_t opcode, uint8_t *buf, size_t len,
                            const uint8_t *body, size_t body_len) SC_MUST_CHECK;
/* Peek at an envelope's opcode and seq without opening it (-1 if it is
   not a well-formed envelope). */
int sc_wire_peek (const uint8_t *buf, size_t len, uint8_t *opcode, uint64_t *seq) SC_MUST_CHECK;

#endif
