/*  sc_proto: the numbers of the secchat wire protocol, version 1.
    docs/PROTOCOL.md is the specification; this header is its table of
    constants and must agree with it byte for byte.

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at https://mozilla.org/MPL/2.0/.
*/
#ifndef SC_PROTO_H_INCLUDED
#define SC_PROTO_H_INCLUDED

#define SC_PROTO_VERSION   1     /* envelope version */
#define SC_SUITE_1         1     /* X25519, Ed25519, HKDF-SHA256, ChaCha20-Poly1305 */

/* Limits (bytes unless said otherwise) */
#define SC_NAME_MAX        32    /* user and broker names: [a-z0-9_-]{1,32} */
#define SC_TEXT_MAX        4096  /* one chat message, UTF-8 */
#define SC_DETAIL_MAX      256   /* ERROR detail text */
#define SC_CERT_MAX        4096  /* broker certificate, DER */
#define SC_BOX_MAX         8192  /* an E2E ciphertext (MESSAGE box) */
#define SC_LOGIN_BOX_MAX   256   /* AUTH_CLIENT and ENROL box */
#define SC_USERS_MAX       400   /* names in one USERS reply */
#define SC_ENVELOPE_MAX    16384 /* one envelope, the only ZeroMQ frame */
#define SC_COOKIE_LEN      32    /* COOKIE: an HMAC-SHA256 */
#define SC_SEQ_LIMIT       (((uint64_t) 1) << 48)   /* a session ends here */
#define SC_E2E_SKIP_MAX    1000  /* lost E2E messages tolerated at once */
#define SC_E2E_BUCKET      256   /* E2E plaintexts are padded to multiples */
#define SC_E2E_COUNT_LIMIT (((uint64_t) 1) << 32)   /* E2E counters stay below */

/* Opcodes. 0-8 keep the numbers of the seed documents. */
typedef enum {
    SC_OP_QUIT = 0,            /* C->B  []                                 */
    SC_OP_LIST = 1,            /* C->B  []                                 */
    SC_OP_RTT = 2,             /* both  [name]                             */
    SC_OP_ACCEPT = 3,          /* C->B  [name]                             */
    SC_OP_REFUSE = 4,          /* both  [name, reason]                     */
    SC_OP_MESSAGE = 5,         /* both  [counter, box]          (relayed)  */
    SC_OP_CC_SESSION = 6,      /* both  [suite, nonce, eph]     (relayed)  */
    SC_OP_USER_NOT_FOUND = 7,  /* B->C  [name]                             */
    SC_OP_NOTIFY = 8,          /* B->C  [name, reason]                     */
    SC_OP_LEAVE = 9,           /* C->B  []                                 */
    SC_OP_ERROR = 10,          /* B->C  [code, detail]                     */
    SC_OP_PING = 11,           /* C->B  []                                 */
    SC_OP_PONG = 12,           /* B->C  []                                 */
    SC_OP_CHAT = 13,           /* B->C  [name, key, initiator]             */
    SC_OP_USERS = 14,          /* B->C  [[name...], truncated]             */
    SC_OP_WELCOME = 15,        /* B->C  [name, heartbeat_ms]               */
    SC_OP_CC_REPLY = 16,       /* both  [nonce, eph, sig, mac]  (relayed)  */
    SC_OP_CC_FINISH = 17,      /* both  [sig, mac]              (relayed)  */
    SC_OP_HELLO = 32,          /* C->B  [suite, nonce, eph]     plaintext  */
    SC_OP_AUTH_BROKER = 33,    /* B->C  [nonce, eph, cert, sig, mac] plain */
    SC_OP_AUTH_CLIENT = 34,    /* C->B  [box]                   plaintext  */
    SC_OP_COOKIE = 35,         /* B->C  [cookie]                plaintext  */
    SC_OP_HELLO_COOKIE = 36,   /* C->B  [suite, nonce, eph, cookie] plain  */
    SC_OP_ENROL = 37           /* C->B  [box]    enrolment, plaintext      */
} sc_opcode_t;

/* ERROR codes */
typedef enum {
    SC_ERR_MALFORMED = 1,      /* envelope or body failed strict decoding  */
    SC_ERR_VERSION = 2,        /* unsupported envelope version             */
    SC_ERR_STATE = 3,          /* opcode not allowed in this state         */
    SC_ERR_AUTH = 4,           /* handshake failed (signature, MAC, AEAD)  */
    SC_ERR_UNKNOWN_USER = 5,   /* login name not registered                */
    SC_ERR_SELF = 6,           /* request to talk to oneself               */
    SC_ERR_RATE = 7,           /* too many requests, slow down             */
    SC_ERR_REPLACED = 8,       /* a newer login under this name took over  */
    SC_ERR_TIMEOUT = 9,        /* handshake or session timed out           */
    SC_ERR_INTERNAL = 10,      /* broker-side failure                      */
    SC_ERR_NO_CHAT = 11,       /* chat traffic with no chat open           */
    SC_ERR_UNDELIVERED = 12,   /* peer unreachable or too slow: not sent   */
    SC_ERR_SUITE = 13,         /* unsupported cipher suite                 */
    SC_ERR_SHUTDOWN = 14,      /* the broker is stopping                   */
    SC_ERR_REVOKED = 15,       /* the user's key left the registry: out    */
    SC_ERR_ENROL_CODE = 16,    /* enrolment: wrong, used or expired code   */
    SC_ERR_ENROL_TAKEN = 17,   /* enrolment: the name is already registered */
    SC_ERR_ENROL_RATE = 18,    /* enrolment: too many attempts, retry later */
    SC_ERR_ENROL_CLOSED = 19   /* enrolment: no code, registration closed  */
} sc_error_code_t;

/* REFUSE reasons */
typedef enum {
    SC_REFUSE_DECLINED = 0,    /* the user said no                         */
    SC_REFUSE_BUSY = 1         /* in a chat or a request: broker said no   */
} sc_refuse_reason_t;

/* NOTIFY reasons: why the peer is gone; or, 6, who asked while busy */
typedef enum {
    SC_NOTIFY_LEFT = 0,        /* LEAVE                                    */
    SC_NOTIFY_QUIT = 1,        /* QUIT                                     */
    SC_NOTIFY_LOST = 2,        /* heartbeat timeout                        */
    SC_NOTIFY_CANCELLED = 3,   /* request withdrawn before an answer       */
    SC_NOTIFY_REPLACED = 4,    /* peer logged in again elsewhere           */
    SC_NOTIFY_REVOKED = 5,     /* peer's key left the registry: logged out */
    SC_NOTIFY_MISSED = 6       /* name asked to talk and was told busy      */
} sc_notify_reason_t;

#define SC_REFUSE_REASON_MAX SC_REFUSE_BUSY
#define SC_NOTIFY_REASON_MAX SC_NOTIFY_MISSED

#endif
