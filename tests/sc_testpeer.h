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

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sc_channel.h"
#include "sc_handshake.h"
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
/* A sealed message of opcode, with name (none when NULL). 0 / -1. */
int sc_testpeer_send_named (sc_testpeer_t *self, uint8_t opcode, const char *name);
/* The next sealed message must be opcode: 0, or -1 after saying what
   came instead. */
int sc_testpeer_expect (sc_testpeer_t *self, uint8_t opcode, int timeout_ms);
/* The next sealed message must be ERROR: its code, or -1. */
int sc_testpeer_expect_error (sc_testpeer_t *self, int timeout_ms);
/* The next plaintext message must be ERROR: its code, or -1. */
int sc_testpeer_expect_plain_error (sc_testpeer_t *self, int timeout_ms);

/* ---- The client-broker handshake from docs/PROTOCOL.md section 5 ----
   Computed here with the primitives of sc_crypto.h alone, not with
   sc_handshake, so that a test can play either side with what the
   library would never send: a signature it cannot make (random bytes)
   with every MAC and box right. The caller fills the HELLO and
   AUTH_BROKER fields and ss; each step fills the rest. All 0 / -1. */
typedef struct {
    uint8_t nonce_c[SC_RANDOM_LEN], eph_c[SC_PUB_LEN];
    uint8_t nonce_b[SC_RANDOM_LEN], eph_b[SC_PUB_LEN];
    const uint8_t *cert;            /* DER, borrowed                       */
    size_t cert_len;
    uint8_t ss[SC_KEY_LEN];         /* X25519 of one side's ephemeral      */
    uint8_t th1[SC_HASH_LEN], th2[SC_HASH_LEN], th3[SC_HASH_LEN];
    uint8_t prk[SC_HASH_LEN];
    uint8_t k_box[SC_KEY_LEN], k_fb[SC_KEY_LEN], k_fc[SC_KEY_LEN];
    char name[SC_NAME_MAX + 1];     /* n, from spec_client or spec_open    */
} sc_testpeer_spec_t;

/* TH1, prk, k_box, k_fB, k_fC; then, for sig_B as given (any 64 bytes),
   TH2 = H(TH1 || sig_B) and mac_B = HMAC(k_fB, TH2). */
int sc_testpeer_spec_broker (sc_testpeer_spec_t *spec,
                             const uint8_t sig_b[static SC_SIG_LEN],
                             uint8_t mac_b[static SC_HASH_LEN]);
/* The client's answer for name and sig_C as given: TH3, mac_C and the
   AUTH_CLIENT box (SC_HS_BOX_MAX bytes). */
int sc_testpeer_spec_client (sc_testpeer_spec_t *spec, const char *name,
                             const uint8_t sig_c[static SC_SIG_LEN],
                             uint8_t *box, size_t *box_len);
/* The broker's side of the same: open the box, take n and TH3 from it
   (mac_C is not checked: an impostor does not care). */
int sc_testpeer_spec_open (sc_testpeer_spec_t *spec, const uint8_t *box,
                           size_t box_len);
/* sid = TH3 and the session keys, seen from the broker or the client. */
int sc_testpeer_spec_keys (const sc_testpeer_spec_t *spec, bool broker,
                           sc_session_keys_t *keys);

/* The whole login as `claimed` by a client that does not hold its key:
   sig_C is 64 random bytes, mac_C and the box are right (made from the
   specification). The broker's AUTH_BROKER is not checked. The same
   results as sc_testpeer_login. */
int sc_testpeer_login_unsigned (sc_testpeer_t *self, const char *claimed);

#endif
