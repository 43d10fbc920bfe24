/*  sc_e2e: the end-to-end layer between two chatting clients
    (docs/PROTOCOL.md section 7): a signed X25519 exchange relayed by the
    broker, then one KDF chain per direction where every message key is
    derived, used once and wiped.

    Initiator (sent the RTT): start -> finish -> ready
    Responder (accepted):     reply -> confirm -> ready

    Received messages are accepted in order only: a replayed or older
    counter is refused, a jump ahead is allowed up to SC_E2E_SKIP and the
    gap reported as lost, and nothing changes unless the box opens.

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at https://mozilla.org/MPL/2.0/.
*/
#ifndef SC_E2E_H_INCLUDED
#define SC_E2E_H_INCLUDED

#include "sc_crypto.h"
#include "sc_key.h"

#define SC_E2E_SKIP       1000
#define SC_E2E_LIMIT      (((uint64_t) 1) << 32)

typedef enum {
    SC_E2E_OK = 0,
    SC_E2E_ESTATE = -40,        /* step out of order, or not ready         */
    SC_E2E_ESUITE = -41,
    SC_E2E_EKEY = -42,          /* all-zero X25519 result                  */
    SC_E2E_ESIG = -43,          /* peer signature does not verify          */
    SC_E2E_EMAC = -44,          /* key confirmation failed                 */
    SC_E2E_EREPLAY = -45,       /* counter already seen (or older)         */
    SC_E2E_ESKIP = -46,         /* counter too far ahead                   */
    SC_E2E_EAUTH = -47,         /* box does not open                       */
    SC_E2E_ELIMIT = -48,        /* chain exhausted: end the chat           */
    SC_E2E_EINTERNAL = -49
} sc_e2e_err_t;

const char *sc_e2e_strerror (int err);

typedef struct _sc_e2e_t sc_e2e_t;

/* me: own private key (borrowed, must outlive this object). peer_key:
   the raw key the broker gave for the peer. */
sc_e2e_t *sc_e2e_new (const sc_key_t *me, const char *my_name,
                      const uint8_t peer_key[static SC_PUB_LEN],
                      const char *peer_name, bool initiator);
void sc_e2e_destroy (sc_e2e_t **self_p);

bool sc_e2e_initiator (const sc_e2e_t *self);
bool sc_e2e_ready (const sc_e2e_t *self);

/* Initiator: the CC_SESSION fields. */
int sc_e2e_start (sc_e2e_t *self, uint8_t *suite,
                  uint8_t nonce[static SC_RANDOM_LEN],
                  uint8_t eph[static SC_PUB_LEN]) SC_MUST_CHECK;
/* Responder: take CC_SESSION, give the CC_REPLY fields. */
int sc_e2e_reply (sc_e2e_t *self, uint8_t suite,
                  const uint8_t nonce_i[static SC_RANDOM_LEN],
                  const uint8_t eph_i[static SC_PUB_LEN],
                  uint8_t nonce_r[static SC_RANDOM_LEN],
                  uint8_t eph_r[static SC_PUB_LEN],
                  uint8_t sig_r[static SC_SIG_LEN],
                  uint8_t mac_r[static SC_HASH_LEN]) SC_MUST_CHECK;
/* Initiator: check CC_REPLY, give the CC_FINISH fields; ready after. */
int sc_e2e_finish (sc_e2e_t *self,
                   const uint8_t nonce_r[static SC_RANDOM_LEN],
                   const uint8_t eph_r[static SC_PUB_LEN],
                   const uint8_t sig_r[static SC_SIG_LEN],
                   const uint8_t mac_r[static SC_HASH_LEN],
                   uint8_t sig_i[static SC_SIG_LEN],
                   uint8_t mac_i[static SC_HASH_LEN]) SC_MUST_CHECK;
/* Responder: check CC_FINISH; ready after. */
int sc_e2e_confirm (sc_e2e_t *self,
                    const uint8_t sig_i[static SC_SIG_LEN],
                    const uint8_t mac_i[static SC_HASH_LEN]) SC_MUST_CHECK;

/* Seal the next message: box holds len + SC_TAG_LEN bytes. */
int sc_e2e_seal (sc_e2e_t *self, const uint8_t *pt, size_t len,
                 uint64_t *counter, uint8_t *box) SC_MUST_CHECK;
/* Open a received box; out holds len - SC_TAG_LEN bytes. *lost gets the
   number of messages skipped before this one (0 normally). */
int sc_e2e_open (sc_e2e_t *self, uint64_t counter,
                 const uint8_t *box, size_t len,
                 uint8_t *out, uint64_t *lost) SC_MUST_CHECK;

/* Counters: last sent, next expected. */
uint64_t sc_e2e_sent (const sc_e2e_t *self);
uint64_t sc_e2e_expected (const sc_e2e_t *self);
/* Move both counters ahead (sent: the last sealed, expected: the next
   to open) without walking the chains, as if that many messages had
   gone each way; two sides moved alike stay in step. Only forward, only
   when ready, and not past the chain's end (sent < SC_E2E_LIMIT,
   expected <= SC_E2E_LIMIT): -1 otherwise, nothing changed. For tests
   that reach the chain's end, 2^32 messages away. */
int sc_e2e_skip_ahead (sc_e2e_t *self, uint64_t sent, uint64_t expected) SC_MUST_CHECK;

/* The safety number of this chat (own name and key, peer's name and key). */
int sc_e2e_safety (const sc_e2e_t *self, char out[static SC_SAFETY_LEN + 1]) SC_MUST_CHECK;
const uint8_t *sc_e2e_peer_key (const sc_e2e_t *self);

#endif
