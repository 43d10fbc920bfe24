/*  sc_fuzz: what the fuzz targets share with each other, with the seed
    corpus writer (mkcorpus) and with the regression test.

    Each target tests/fuzz/fuzz_X.c defines sc_fuzz_X (data, size): one
    input, no sockets, never fails unless it finds a bug (then it aborts,
    or a sanitizer does). Built with -fsanitize=fuzzer, the same file also
    defines libFuzzer's entry points; built with -DSC_FUZZ_NO_MAIN it is a
    plain object that tests/test_fuzz_regress.c and mkcorpus link.

    The broker and client targets read their input as a script of
    records, each one selector byte, a 16-bit big-endian length and that
    many bytes of payload (a short last record takes what is left), at
    most 256 records an input. The selector says what the record does.

    The key set (a CA, the broker's certificate, users alice, bob, carol
    and dave) is made once per process by keys/secchat-keys in a temporary
    directory, loaded, and the directory removed at once: nothing secret
    is checked in or left behind. The key script is found relative to the
    working directory: run the targets from the repository root.

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at https://mozilla.org/MPL/2.0/.
*/
#ifndef SC_FUZZ_H_INCLUDED
#define SC_FUZZ_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sc_key.h"
#include "sc_registry.h"

/* ---- The targets --------------------------------------------------------- */

/* The envelope decoder (and sc_wire_peek), with an encode round trip. */
int sc_fuzz_envelope (const uint8_t *data, size_t size);

/* First byte: the opcode, the rest: the body for sc_msg_decode, with an
   encode round trip. First byte SC_FUZZ_E2E_PLAIN: the rest goes to
   sc_e2e_plain_decode instead. */
#define SC_FUZZ_E2E_PLAIN 0xff
int sc_fuzz_body (const uint8_t *data, size_t size);

/* The broker core: a fresh broker with alice and bob logged in for real,
   then the script. 0, or -1 when the key set cannot be made. */
int sc_fuzz_broker_init (void);
int sc_fuzz_broker (const uint8_t *data, size_t size);

/* The client core (alice) logged in to a fake broker that also plays
   her chat peer, then the script. 0, or -1 when the key set cannot be
   made. */
int sc_fuzz_client_init (void);
int sc_fuzz_client (const uint8_t *data, size_t size);

/* libFuzzer's entry points, defined by each target unless SC_FUZZ_NO_MAIN. */
int LLVMFuzzerInitialize (int *argc, char ***argv);
int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

/* ---- Scripts --------------------------------------------------------------- */

/* Broker script selector: bits 0-2 pick the connection, bits 3-5 the
   action. Connections (user claimed, key used): 0 alice, 1 bob, 2 carol,
   3 alice again (a second device: replaces 0), 4 dave, 5 bob with
   alice's key (refused), 6 eve with alice's key (unknown), 7 carol. */
#define SC_FUZZ_B_CONNS   8
typedef enum {
    SC_FUZZ_B_SEAL = 0,     /* payload: opcode, body; sealed in the session
                               (plain envelope, seq 0, before login)     */
    SC_FUZZ_B_RAW = 1,      /* payload: the frame as it is               */
    SC_FUZZ_B_REPLAY = 2,   /* send this connection's last frame again   */
    SC_FUZZ_B_TICK = 3,     /* payload: u16 ms to advance, then a tick   */
    SC_FUZZ_B_LOGIN = 4,    /* reconnect (new routing id) and log in     */
    SC_FUZZ_B_FAIL = 5,     /* payload[0] % 3: sends to this connection
                               succeed, fail GONE, fail FULL             */
    SC_FUZZ_B_HELLO = 6,    /* reconnect and send HELLO only             */
    SC_FUZZ_B_TAMPER = 7    /* as SEAL, with the tag's last byte flipped */
} sc_fuzz_b_action_t;
#define SC_FUZZ_B_SEL(conn, action) ((uint8_t) (((action) << 3) | (conn)))

/* Client script selector: the low nibble is the action (9..15 act as
   SEALED). The peer the fake broker plays is bob. */
typedef enum {
    SC_FUZZ_C_SEALED = 0,   /* payload: opcode, body; sealed, to the client */
    SC_FUZZ_C_RAW = 1,      /* payload: the frame as it is                  */
    SC_FUZZ_C_COMMAND = 2,  /* payload: a line the user typed               */
    SC_FUZZ_C_TICK = 3,     /* payload: u16 ms to advance, then a tick      */
    SC_FUZZ_C_CHAT = 4,     /* payload[0] flags: a chat opens for real      */
    SC_FUZZ_C_PEER_MSG = 5, /* payload: an E2E plaintext bob seals and sends*/
    SC_FUZZ_C_PEER_LOSE = 6,/* payload[0] & 1: replay bob's last MESSAGE;
                               else bob seals the rest of the payload
                               1 + 8 * (payload[0] >> 1) times, all lost    */
    SC_FUZZ_C_PLAIN = 7,    /* payload: opcode, body; plain envelope, seq 0 */
    SC_FUZZ_C_RECONNECT = 8 /* connection lost: reset, start, log in again  */
} sc_fuzz_c_action_t;
/* SC_FUZZ_C_CHAT flags */
#define SC_FUZZ_CHAT_INITIATOR  0x01    /* alice asked (else bob did)        */
#define SC_FUZZ_CHAT_WRONG_KEY  0x02    /* the broker gives a wrong key      */
#define SC_FUZZ_CHAT_CAROL      0x04    /* the chat is with carol, not bob   */
#define SC_FUZZ_CHAT_NO_ASK     0x08    /* skip the request and its answer   */

/* Read the next record: false at the end of the input. */
typedef struct {
    const uint8_t *data;
    size_t size, pos;
} sc_fuzz_reader_t;

bool sc_fuzz_next (sc_fuzz_reader_t *reader, uint8_t *sel,
                   const uint8_t **payload, size_t *len);
/* A u16 big-endian from the start of a payload (missing bytes are 0). */
uint32_t sc_fuzz_u16 (const uint8_t *payload, size_t len);

/* ---- The key set ------------------------------------------------------------- */

typedef enum { SC_FUZZ_ALICE, SC_FUZZ_BOB, SC_FUZZ_CAROL, SC_FUZZ_DAVE,
               SC_FUZZ_USERS } sc_fuzz_user_t;

typedef struct {
    sc_key_t *broker_key;
    uint8_t *cert;                      /* DER */
    size_t cert_len;
    sc_ca_t *ca;
    sc_registry_t *registry;
    sc_key_t *user[SC_FUZZ_USERS];      /* private keys */
    uint8_t pub[SC_FUZZ_USERS][SC_PUB_LEN];
} sc_fuzz_keys_t;

extern const char *const sc_fuzz_user_name[SC_FUZZ_USERS];

/* The process's key set, made on first use; NULL when it cannot be. */
const sc_fuzz_keys_t *sc_fuzz_keys (void);

/* ---- Recording (mkcorpus) ------------------------------------------------------ */

/* What a target saw: an envelope (either direction), or a body as
   opcode || plaintext (SC_FUZZ_E2E_PLAIN || plaintext for E2E). */
typedef enum { SC_FUZZ_SEEN_ENVELOPE, SC_FUZZ_SEEN_BODY } sc_fuzz_seen_t;
typedef void (sc_fuzz_recorder_fn) (sc_fuzz_seen_t what, const uint8_t *data,
                                    size_t len);
/* NULL (the default) records nothing. */
extern sc_fuzz_recorder_fn *sc_fuzz_recorder;
void sc_fuzz_record (sc_fuzz_seen_t what, const uint8_t *data, size_t len);
/* Record opcode || body as one body seed. */
void sc_fuzz_record_body (uint8_t opcode, const uint8_t *body, size_t len);

/* A harness invariant broke: say which and abort (libFuzzer saves the
   input). */
void sc_fuzz_fail (const char *what) __attribute__ ((noreturn));

#endif
