/*  sc_node: the bodies brokers of one cluster send each other over NATS
    (docs/PROTOCOL.md section 12), encoded and strictly decoded.

    Every body is the msgpack array
      [version, kind, node, boot, from, from_sid, to, to_sid, code, since,
       key, data]
    one flat shape for every kind; each kind uses the fields section 12
    names and leaves the others empty ("" / 0 / an empty bin). Decoding is
    as strict as sc_msg's: one object, no trailing bytes, exact types,
    bounded lengths, names checked.

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at https://mozilla.org/MPL/2.0/.
*/
#ifndef SC_NODE_H_INCLUDED
#define SC_NODE_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sc_msg.h"
#include "sc_proto.h"

#define SC_NODE_VERSION    1
#define SC_NODE_DATA_MAX   SC_ENVELOPE_MAX   /* a relayed body */
#define SC_NODE_KEY_LEN    32                /* an Ed25519 public key */

typedef enum {
    SC_NODE_UP = 1,             /* presence: from logged in here          */
    SC_NODE_DOWN = 2,           /* presence: from logged out here         */
    SC_NODE_BEAT = 3,           /* heartbeat; code: users online here     */
    SC_NODE_SYNC = 4,           /* send me your users (a snapshot)        */
    SC_NODE_SNAP_BEGIN = 5,     /* a snapshot follows (UPs)...            */
    SC_NODE_SNAP_END = 6,       /* ...and is complete                     */
    SC_NODE_BYE = 7,            /* the node stops: its users are gone     */
    SC_NODE_GAVE_UP = 8,        /* the sender had given the receiver up   */
    SC_NODE_RTT = 10,           /* from asks to; key: from's key          */
    SC_NODE_NOT_FOUND = 11,     /* from (asked) is not online here        */
    SC_NODE_REFUSE = 12,        /* code: SC_REFUSE_*                      */
    SC_NODE_ACCEPT = 13,        /* key: from's key                        */
    SC_NODE_NOTIFY = 14,        /* code: SC_NOTIFY_*                      */
    SC_NODE_RELAY = 15,         /* code: opcode; data: the relayed body   */
    SC_NODE_UNDELIVERED = 16    /* a RELAY from `to` was not delivered    */
} sc_node_kind_t;

typedef struct {
    uint8_t kind;
    char node[SC_NAME_MAX + 1];         /* the sending broker            */
    uint64_t boot;                      /* ...and its run (random)       */
    char from[SC_NAME_MAX + 1];         /* a user, or ""                 */
    uint64_t from_sid;                  /* its session's number there    */
    char to[SC_NAME_MAX + 1];
    uint64_t to_sid;                    /* 0: whichever session          */
    uint32_t code;
    int64_t since;                      /* UP: login time, ms since epoch */
    bool has_key;
    uint8_t key[SC_NODE_KEY_LEN];
    const uint8_t *data;                /* RELAY: points into the input  */
    size_t data_len;
} sc_node_msg_t;

void sc_node_msg_init (sc_node_msg_t *self, uint8_t kind);
/* Into a malloc'd buffer (*out, *out_len). 0 or -1 (bad fields). */
int sc_node_msg_encode (const sc_node_msg_t *self, uint8_t **out, size_t *out_len);
/* 0, or an SC_CODEC_E* code; data points into buf. */
int sc_node_msg_decode (const uint8_t *buf, size_t len, sc_node_msg_t *self)
    SC_MUST_CHECK_CODEC;

#endif
