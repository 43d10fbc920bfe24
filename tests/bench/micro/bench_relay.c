/*  bench_relay: nanoseconds of the broker's own work per relayed MESSAGE,
    in-process and without sockets: the protocol core (sc_broker_handle)
    fed envelopes sealed in advance by a logged-in client in a chat, its
    re-sealed frame for the peer freed by the send callback. What each
    message costs the broker's thread besides ZeroMQ: open the envelope,
    decode the body strictly, re-seal it to the peer.

    Twice: through sc_broker_handle (the envelope opened in a copy, the
    peer's frame sealed into a new buffer), and as secbroker does it,
    through sc_broker_handle_frame with a forward function (opened and
    re-sealed in the frame itself, which is then handed on as it is:
    `relay_core_inplace_ns_SIZE`).

    Boxes of 64, 256, 1024 and 4096 bytes. One `name value` line per size
    and way on stdout: the minimum over the repetitions of the mean per
    message.
    Not a test: it only checks that every message was relayed.

    Usage: bench_relay [repetitions [messages per repetition]]

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at https://mozilla.org/MPL/2.0/.
*/
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "micro.h"

#include <czmq.h>

#include "sc_broker.h"
#include "sc_handshake.h"
#include "sc_log.h"
#include "sc_testkeys.h"
#include "sc_wire.h"

static const size_t s_sizes [] = { 64, 256, 1024, 4096 };

typedef struct {
    uint8_t rid [5];
    sc_key_t *key;
    sc_channel_t *ch;
    uint8_t *inbox;             //  the last frame the broker sent it
    size_t inbox_len;
    size_t received;
} s_client_t;

static s_client_t s_alice = { .rid = { 0, 0, 0, 0, 1 } };
static s_client_t s_bob = { .rid = { 0, 0, 0, 0, 2 } };
static sc_broker_t *s_broker;

static int
s_send_cb (void *arg, const uint8_t *rid, size_t rid_len, uint8_t *frame, size_t len)
{
    (void) arg;
    s_client_t *c = rid_len == 5 && rid [4] == 2 ? &s_bob : &s_alice;
    free (c->inbox);
    c->inbox = frame;
    c->inbox_len = len;
    c->received++;
    return 0;
}

//  sc_broker_forward_fn: the frame goes on as it is (ZeroMQ would take
//  the message itself); counted as received by the peer.
static int
s_forward_cb (void *arg, const uint8_t *rid, size_t rid_len)
{
    (void) arg;
    s_client_t *c = rid_len == 5 && rid [4] == 2 ? &s_bob : &s_alice;
    c->received++;
    return 0;
}

static bool s_in_place;         //  handle frames as secbroker does

static void
s_deliver (s_client_t *c, uint8_t *frame, size_t len)
{
    if (s_in_place)
        (void) sc_broker_handle_frame (s_broker, c->rid, sizeof c->rid, frame, len, 1000000);
    else
        sc_broker_handle (s_broker, c->rid, sizeof c->rid, frame, len, 1000000);
}

static int
s_send_plain (s_client_t *c, const sc_msg_t *msg)
{
    uint8_t *frame;
    size_t len;
    if (sc_wire_plain (msg, &frame, &len))
        return -1;
    s_deliver (c, frame, len);
    free (frame);
    return 0;
}

static int
s_send (s_client_t *c, const sc_msg_t *msg)
{
    uint8_t *frame;
    size_t len;
    if (sc_wire_seal (c->ch, msg, &frame, &len))
        return -1;
    s_deliver (c, frame, len);
    free (frame);
    return 0;
}

//  The next sealed message for c, expected to be opcode.
static int
s_recv (s_client_t *c, uint8_t opcode)
{
    sc_msg_t msg;
    int rc = c->inbox && sc_wire_open (c->ch, c->inbox, c->inbox_len, &msg) == 0
          && msg.opcode == opcode ? 0 : -1;
    sc_msg_reset (&msg);
    return rc;
}

//  The real handshake, as a client, against the core.
static int
s_login (s_client_t *c, const char *name, sc_testkeys_t *keys, const sc_ca_t *ca)
{
    c->key = sc_testkeys_user_key (keys, name);
    sc_handshake_t *hs = c->key ? sc_handshake_new_client (c->key, name, ca, "secbroker") : NULL;
    sc_msg_t msg;
    sc_msg_init (&msg, SC_OP_HELLO);
    if (!hs || sc_handshake_client_hello (hs, &msg.suite, msg.nonce, msg.eph)
    ||  s_send_plain (c, &msg)
    ||  !c->inbox || sc_wire_open_plain (c->inbox, c->inbox_len, &msg)
    ||  msg.opcode != SC_OP_AUTH_BROKER)
        goto fail;
    uint8_t box [SC_HS_BOX_MAX];
    size_t box_len = 0;
    if (sc_handshake_client_auth (hs, msg.nonce, msg.eph, msg.data, msg.data_len,
                                  msg.sig, msg.mac, box, &box_len, NULL))
        goto fail;
    sc_msg_reset (&msg);
    sc_msg_init (&msg, SC_OP_AUTH_CLIENT);
    sc_session_keys_t session;
    if (sc_msg_set_data (&msg, box, box_len) || s_send_plain (c, &msg)
    ||  sc_handshake_keys (hs, &session)
    ||  !(c->ch = sc_channel_new (&session)))
        goto fail;
    sc_wipe (&session, sizeof session);
    sc_msg_reset (&msg);
    sc_handshake_destroy (&hs);
    return s_recv (c, SC_OP_WELCOME);
fail:
    sc_msg_reset (&msg);
    sc_handshake_destroy (&hs);
    return -1;
}

static int
s_send_named (s_client_t *c, uint8_t opcode, const char *name)
{
    sc_msg_t msg;
    sc_msg_init (&msg, opcode);
    int rc = sc_msg_set_name (&msg, name) || s_send (c, &msg) ? -1 : 0;
    sc_msg_reset (&msg);
    return rc;
}

//  Mean ns per message of handling `count` MESSAGE envelopes from alice
//  with a box of box_len bytes; -1 when one was not relayed.
static double
s_run (size_t box_len, size_t count, uint8_t **frames, size_t *lens)
{
    sc_msg_t msg;
    sc_msg_init (&msg, SC_OP_MESSAGE);
    uint8_t box [4096];
    memset (box, 0x5a, sizeof box);
    if (sc_msg_set_data (&msg, box, box_len))
        return -1;
    for (size_t i = 0; i < count; i++) {
        msg.counter = i + 1;
        if (sc_wire_seal (s_alice.ch, &msg, &frames [i], &lens [i]))
            return -1;
    }
    sc_msg_reset (&msg);
    size_t before = s_bob.received;
    double start = micro_now_ns ();
    for (size_t i = 0; i < count; i++)
        s_deliver (&s_alice, frames [i], lens [i]);
    double ns = (micro_now_ns () - start) / (double) count;
    for (size_t i = 0; i < count; i++)
        free (frames [i]);
    return s_bob.received - before == count ? ns : -1;
}

int
main (int argc, char *argv [])
{
    int reps = 7;
    long messages = 4000;
    if (micro_args (argc, argv, "bench_relay", "messages", &reps, &messages))
        return 2;
    size_t count = (size_t) messages;
    zsys_init ();
    sc_log_set_level ("error");
    int err = 0;
    sc_testkeys_t *keys = sc_testkeys_new (NULL, "alice", "bob", NULL);
    sc_key_t *broker_key = keys
        ? sc_key_load_private (sc_testkeys_path (keys, "broker.key"), NULL, &err) : NULL;
    sc_ca_t *ca = keys ? sc_ca_load (sc_testkeys_path (keys, "ca.pem"), &err) : NULL;
    sc_registry_t *registry = keys ? sc_registry_new (sc_testkeys_path (keys, "users")) : NULL;
    uint8_t *cert = NULL;
    size_t cert_len = 0;
    uint8_t **frames = calloc (count, sizeof *frames);
    size_t *lens = calloc (count, sizeof *lens);
    int rc = 1;
    if (!broker_key || !ca || !registry || !frames || !lens
    ||  sc_cert_load_der (sc_testkeys_path (keys, "broker.crt"), &cert, &cert_len)
    ||  !(s_broker = sc_broker_new (broker_key, cert, cert_len, registry, NULL,
                                    s_send_cb, NULL))
    ||  s_login (&s_alice, "alice", keys, ca) || s_login (&s_bob, "bob", keys, ca)
    ||  s_send_named (&s_alice, SC_OP_RTT, "bob") || s_recv (&s_bob, SC_OP_RTT)
    ||  s_send_named (&s_bob, SC_OP_ACCEPT, "alice")
    ||  s_recv (&s_alice, SC_OP_CHAT) || s_recv (&s_bob, SC_OP_CHAT)) {
        fprintf (stderr, "bench_relay: set-up failed\n");
        goto done;
    }
    sc_broker_set_forward (s_broker, s_forward_cb);
    size_t nsizes = sizeof s_sizes / sizeof s_sizes [0];
    double best [2][4] = { { -1, -1, -1, -1 }, { -1, -1, -1, -1 } };
    for (int r = 0; r < reps; r++)
        for (int way = 0; way < 2; way++)
            for (size_t s = 0; s < nsizes; s++) {
                s_in_place = way == 1;
                double ns = s_run (s_sizes [s], count, frames, lens);
                if (ns < 0) {
                    fprintf (stderr, "bench_relay: a message was not relayed\n");
                    goto done;
                }
                if (best [way][s] < 0 || ns < best [way][s])
                    best [way][s] = ns;
            }
    for (size_t s = 0; s < nsizes; s++)
        printf ("relay_core_ns_%zu %.1f\n", s_sizes [s], best [0][s]);
    for (size_t s = 0; s < nsizes; s++)
        printf ("relay_core_inplace_ns_%zu %.1f\n", s_sizes [s], best [1][s]);
    rc = 0;
done:
    sc_broker_destroy (&s_broker);
    sc_channel_destroy (&s_alice.ch);
    sc_channel_destroy (&s_bob.ch);
    sc_key_destroy (&s_alice.key);
    sc_key_destroy (&s_bob.key);
    free (s_alice.inbox);
    free (s_bob.inbox);
    free (frames);
    free (lens);
    free (cert);
    sc_registry_destroy (&registry);
    sc_ca_destroy (&ca);
    sc_key_destroy (&broker_key);
    sc_testkeys_destroy (&keys);
    return rc;
}
