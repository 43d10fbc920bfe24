/*  sc_channel: the encrypted session between a client and the broker.

    One key and one counter per direction, the session id bound into every
    envelope's associated data. The counters live here and nowhere else, so
    no caller can reuse a nonce: seal assigns the next seq itself, open
    accepts only the seq one more than the last accepted, and a rejected
    envelope changes nothing. Open authenticates before it acts on the
    counter: an envelope that does not open is EAUTH whatever its seq, so
    only the holder of the key can end the session with a gap or the
    limit. See docs/PROTOCOL.md section 6.

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at https://mozilla.org/MPL/2.0/.
*/
#ifndef SC_CHANNEL_H_INCLUDED
#define SC_CHANNEL_H_INCLUDED

#include "sc_crypto.h"

typedef enum {
    SC_CHANNEL_OK = 0,
    SC_CHANNEL_EAUTH = -20,     /* does not open: tampered, wrong session  */
    SC_CHANNEL_EREPLAY = -21,   /* seq not newer than the last accepted    */
    SC_CHANNEL_ELIMIT = -22,    /* counter exhausted: end the session      */
    SC_CHANNEL_EINTERNAL = -23,
    SC_CHANNEL_EGAP = -24       /* opens, but envelopes before it are
                                   missing: end the session                */
} sc_channel_err_t;

/* What a finished handshake hands over, once. Wipe it after use. */
typedef struct {
    uint8_t sid[SC_HASH_LEN];
    uint8_t k_send[SC_KEY_LEN];
    uint8_t k_recv[SC_KEY_LEN];
} sc_session_keys_t;

typedef struct _sc_channel_t sc_channel_t;

/* Takes a copy of the keys; the caller wipes its own. */
sc_channel_t *sc_channel_new (const sc_session_keys_t *keys);
void sc_channel_destroy (sc_channel_t **self_p);

/* Seal pt under the next send seq. out holds len + SC_TAG_LEN bytes.
   *seq receives the seq to put in the envelope header. */
int sc_channel_seal (sc_channel_t *self, uint8_t version, uint8_t opcode,
                     const uint8_t *pt, size_t len,
                     uint64_t *seq, uint8_t *out) SC_MUST_CHECK;
/* Open a received body (ct || tag). out holds len - SC_TAG_LEN bytes.
   EREPLAY (seq not above the last accepted: checked first, no crypto)
   and EAUTH change nothing and leave out wiped; ELIMIT and EGAP come
   only for an envelope that opens (out wiped too), and end the session. */
int sc_channel_open (sc_channel_t *self, uint8_t version, uint8_t opcode,
                     uint64_t seq, const uint8_t *ct, size_t len,
                     uint8_t *out) SC_MUST_CHECK;

/* Lower the counter limit (default 2^48): seal and open refuse with
   SC_CHANNEL_ELIMIT from this seq on, and the session must end. For a
   stricter policy, and for tests that reach the limit. */
void sc_channel_set_limit (sc_channel_t *self, uint64_t limit);

/* The session id (for logs: never secret, but not shown to users). */
const uint8_t *sc_channel_sid (const sc_channel_t *self);
uint64_t sc_channel_sent (const sc_channel_t *self);
uint64_t sc_channel_received (const sc_channel_t *self);

#endif
