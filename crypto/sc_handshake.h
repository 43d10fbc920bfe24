/*  sc_handshake: the client-broker login handshake (docs/PROTOCOL.md 5).

    Fields in, fields out, no sockets and no encoding: the caller moves the
    values between this object and the HELLO / AUTH_BROKER / AUTH_CLIENT
    bodies. Each side calls its steps in order; a step called out of order,
    or any failed check, puts the object in a failed state for good. When
    the last check passes, sc_handshake_keys hands the session keys over
    once, and every handshake secret is wiped.

    Client: new_client -> client_hello -> client_auth -> keys
    Broker: new_broker -> broker_hello -> broker_open (learn the name;
            look the user up) -> broker_verify -> keys

    Enrolment (docs/PROTOCOL.md 5a) is the same handshake with another
    last box: the client's identity is its new key, client_enrol before
    client_auth makes the ENROL box (name, new public key, one-time
    code, signature by the new key, MAC), and the broker opens it with
    broker_open_enrol, checks the code itself, then calls broker_verify
    with the new key.

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at https://mozilla.org/MPL/2.0/.
*/
#ifndef SC_HANDSHAKE_H_INCLUDED
#define SC_HANDSHAKE_H_INCLUDED

#include "sc_channel.h"
#include "sc_crypto.h"
#include "sc_key.h"

#define SC_HS_NAME_MAX 32
/* The AUTH_CLIENT box, always this long: u8 len || name padded with
   zeros to SC_HS_NAME_MAX bytes || sig || mac, plus the tag. */
#define SC_HS_BOX_MAX  (1 + SC_HS_NAME_MAX + SC_SIG_LEN + SC_HASH_LEN + SC_TAG_LEN)

/* An enrolment code: 160 random bits, typed as 8 groups of 4 base32
   letters (RFC 4648 alphabet) joined by '-'. All zero: no code. */
#define SC_HS_CODE_LEN      20
#define SC_HS_CODE_TEXT_LEN (8 * 4 + 7)
/* The ENROL box, always this long: u8 len || name padded with zeros to
   SC_HS_NAME_MAX bytes || new public key || code || sig || mac, plus
   the tag. */
#define SC_HS_ENROL_BOX_LEN (1 + SC_HS_NAME_MAX + SC_PUB_LEN + SC_HS_CODE_LEN \
                             + SC_SIG_LEN + SC_HASH_LEN + SC_TAG_LEN)

typedef enum {
    SC_HS_OK = 0,
    SC_HS_ESTATE = -30,     /* step called out of order, or already failed */
    SC_HS_ESUITE = -31,     /* unsupported suite                           */
    SC_HS_EKEY = -32,       /* all-zero X25519 result (low-order key)      */
    SC_HS_ECERT = -33,      /* broker certificate rejected (chain or name) */
    SC_HS_ESIG = -34,       /* a signature did not verify                  */
    SC_HS_EMAC = -35,       /* a key confirmation MAC did not verify       */
    SC_HS_EBOX = -36,       /* the AUTH_CLIENT box did not open / parse    */
    SC_HS_EINTERNAL = -37
} sc_hs_err_t;

const char *sc_hs_strerror (int err);

typedef struct _sc_handshake_t sc_handshake_t;

/* The client's side: its identity (private key, borrowed: must outlive
   the handshake), its name, the CA it trusts and the broker name the
   certificate must carry. */
sc_handshake_t *sc_handshake_new_client (const sc_key_t *identity,
                                         const char *name,
                                         const sc_ca_t *ca,
                                         const char *broker_name);
/* The broker's side: its key (borrowed) and its certificate (DER,
   borrowed, must outlive the handshake). */
sc_handshake_t *sc_handshake_new_broker (const sc_key_t *identity,
                                         const uint8_t *cert, size_t cert_len);
void sc_handshake_destroy (sc_handshake_t **self_p);

/* Client: the HELLO fields. */
int sc_handshake_client_hello (sc_handshake_t *self, uint8_t *suite,
                               uint8_t nonce[static SC_RANDOM_LEN],
                               uint8_t eph[static SC_PUB_LEN]) SC_MUST_CHECK;
/* Client: check AUTH_BROKER; on success write the AUTH_CLIENT box into
   box (SC_HS_BOX_MAX bytes) and its length into *box_len. On a
   certificate failure *cert_err (if not NULL) gets the sc_key_err_t. */
int sc_handshake_client_auth (sc_handshake_t *self,
                              const uint8_t nonce_b[static SC_RANDOM_LEN],
                              const uint8_t eph_b[static SC_PUB_LEN],
                              const uint8_t *cert, size_t cert_len,
                              const uint8_t sig[static SC_SIG_LEN],
                              const uint8_t mac[static SC_HASH_LEN],
                              uint8_t *box, size_t *box_len,
                              int *cert_err) SC_MUST_CHECK;

/* Broker: answer HELLO with the AUTH_BROKER fields (the certificate is
   the one given to new_broker). */
int sc_handshake_broker_hello (sc_handshake_t *self, uint8_t suite,
                               const uint8_t nonce_c[static SC_RANDOM_LEN],
                               const uint8_t eph_c[static SC_PUB_LEN],
                               uint8_t nonce_b[static SC_RANDOM_LEN],
                               uint8_t eph_b[static SC_PUB_LEN],
                               uint8_t sig[static SC_SIG_LEN],
                               uint8_t mac[static SC_HASH_LEN]) SC_MUST_CHECK;
/* Broker: open the AUTH_CLIENT box and return the claimed name (NUL
   terminated, SC_HS_NAME_MAX + 1 bytes). The name is not yet proven:
   look its key up and call broker_verify. */
int sc_handshake_broker_open (sc_handshake_t *self,
                              const uint8_t *box, size_t box_len,
                              char name[static SC_HS_NAME_MAX + 1]) SC_MUST_CHECK;
/* Broker: check the client's signature with its registered key, and its
   MAC. */
int sc_handshake_broker_verify (sc_handshake_t *self,
                                const sc_key_t *client_key) SC_MUST_CHECK;

/* Client, after client_hello and before client_auth: enrol instead of
   logging in. client_auth then makes the ENROL box (SC_HS_ENROL_BOX_LEN
   bytes, box must hold that many), signed by the identity given to
   new_client (the new key), carrying code (all zero: none, for open
   registration). */
int sc_handshake_client_enrol (sc_handshake_t *self,
                               const uint8_t code[static SC_HS_CODE_LEN]) SC_MUST_CHECK;
/* Broker, instead of broker_open: open an ENROL box; the claimed name,
   the new public key and the code out. Nothing is proven yet: check the
   code, then broker_verify with the new key. */
int sc_handshake_broker_open_enrol (sc_handshake_t *self,
                                    const uint8_t *box, size_t box_len,
                                    char name[static SC_HS_NAME_MAX + 1],
                                    uint8_t pub[static SC_PUB_LEN],
                                    uint8_t code[static SC_HS_CODE_LEN]) SC_MUST_CHECK;

/* Enrolment codes. A new random one (never all zero); its text; a
   typed text back to the code (case, '-' and spaces do not matter: 32
   base32 letters), -1 when it is not one; the hash the broker keeps:
   SHA-256 ("secchat/1 enrol code" || 0x00 || code). */
int sc_enrol_code_new (uint8_t code[static SC_HS_CODE_LEN]) SC_MUST_CHECK;
void sc_enrol_code_format (const uint8_t code[static SC_HS_CODE_LEN],
                           char text[static SC_HS_CODE_TEXT_LEN + 1]);
int sc_enrol_code_parse (const char *text, uint8_t code[static SC_HS_CODE_LEN]) SC_MUST_CHECK;
int sc_enrol_code_hash (const uint8_t code[static SC_HS_CODE_LEN],
                        uint8_t hash[static SC_HASH_LEN]) SC_MUST_CHECK;

/* Both: after the last step succeeded, the session keys (send/recv from
   this side's point of view) and the session id. Works once; the
   handshake's secrets are wiped after. */
int sc_handshake_keys (sc_handshake_t *self, sc_session_keys_t *keys) SC_MUST_CHECK;

/* The broker's public key from the verified certificate (client side,
   after client_auth succeeded; NULL before and after any failure),
   borrowed. */
const sc_key_t *sc_handshake_broker_key (const sc_handshake_t *self);

#endif
