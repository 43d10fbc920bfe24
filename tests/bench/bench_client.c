/*  secbench: a lean protocol client for load generation.

    It speaks the real protocol (docs/PROTOCOL.md sections 5-7) with the
    real primitives of crypto/ and the real codec, so the broker does all
    of its real work. To keep the load generator from being what limits
    a figure on a small machine, it does its own share more cheaply than
    the secchat client, without skipping any check:

    - the HELLO (nonce, ephemeral key) is made before the timed part;
    - the broker's certificate is verified once per process, and every
      AUTH_BROKER must carry exactly those bytes;
    - the broker's signature over TH1 is recorded and verified after the
      timed part (bn_client_check_sig); mac_B is checked at once.

    The transcript and key schedule below mirror crypto/sc_handshake.c
    step by step; a wrong byte shows at once, because the broker then
    refuses the login, or WELCOME does not open.

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at https://mozilla.org/MPL/2.0/.
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "bench.h"
#include "sc_handshake.h"
#include "sc_wire.h"

static const char s_label_th[] = "secchat/1 client-broker";
static const char s_label_box[] = "secchat/1 cb box c2b";
static const char s_label_fin_b[] = "secchat/1 cb finished broker";
static const char s_label_fin_c[] = "secchat/1 cb finished client";
static const char s_label_sig_b[] = "secchat/1 cb broker signature";
static const char s_label_sig_c[] = "secchat/1 cb client signature";
static const char s_label_c2b[] = "secchat/1 cb session c2b";
static const char s_label_b2c[] = "secchat/1 cb session b2c";

bn_client_t *
bn_client_new (void *zctx, const char *endpoint, const char *name,
               const void *routing_id, size_t routing_id_len)
{
    bn_client_t *self = calloc (1, sizeof *self);
    if (!self)
        return NULL;
    snprintf (self->name, sizeof self->name, "%s", name);
    self->sock = zmq_socket (zctx, ZMQ_DEALER);
    int linger = 1000;
    size_t fd_len = sizeof self->fd;
    if (!self->sock
        || zmq_setsockopt (self->sock, ZMQ_LINGER, &linger, sizeof linger)
        || (routing_id && zmq_setsockopt (self->sock, ZMQ_ROUTING_ID,
                                          routing_id, routing_id_len))
        || zmq_connect (self->sock, endpoint)
        || zmq_getsockopt (self->sock, ZMQ_FD, &self->fd, &fd_len)) {
        fprintf (stderr, "secbench: client %s: %s\n", name, zmq_strerror (zmq_errno ()));
        bn_client_destroy (&self);
    }
    return self;
}

void
bn_client_destroy (bn_client_t **self_p)
{
    if (self_p && *self_p) {
        bn_client_t *self = *self_p;
        if (self->sock)
            zmq_close (self->sock);
        free (self->hello);
        sc_channel_destroy (&self->ch);
        sc_e2e_destroy (&self->e2e);
        sc_wipe (self, sizeof *self);
        free (self);
        *self_p = NULL;
    }
}

int
bn_client_prepare (bn_client_t *self)
{
    sc_msg_t msg;
    sc_msg_init (&msg, SC_OP_HELLO);
    msg.suite = SC_SUITE_1;
    free (self->hello);
    self->hello = NULL;
    int rc = -1;
    if (!sc_random (self->nonce_c, SC_RANDOM_LEN)
        && !sc_x25519_keygen (self->e_priv, self->eph_c)) {
        memcpy (msg.nonce, self->nonce_c, SC_RANDOM_LEN);
        memcpy (msg.eph, self->eph_c, SC_PUB_LEN);
        rc = sc_wire_plain (&msg, &self->hello, &self->hello_len);
    }
    sc_msg_reset (&msg);
    self->state = BN_NEW;
    return rc;
}

int
bn_client_hello (bn_client_t *self)
{
    if (!self->hello || zmq_send (self->sock, self->hello, self->hello_len, ZMQ_DONTWAIT) < 0)
        return -1;
    self->state = BN_HELLO_SENT;
    return 0;
}

static int
s_send_frame (bn_client_t *self, uint8_t *frame, size_t len)
{
    int rc = zmq_send (self->sock, frame, len, ZMQ_DONTWAIT) < 0 ? -1 : 0;
    free (frame);
    return rc;
}

/* AUTH_BROKER in, AUTH_CLIENT out (PROTOCOL.md section 5, client side). */
static int
s_on_auth_broker (bn_client_t *self, const bn_ident_t *ident, const sc_msg_t *msg)
{
    if (msg->data_len != ident->cert_len
        || memcmp (msg->data, ident->cert, ident->cert_len) != 0) {
        fprintf (stderr, "secbench: %s: not the verified certificate\n", self->name);
        return -1;
    }
    uint8_t ss[SC_KEY_LEN], th1[SC_HASH_LEN], th2[SC_HASH_LEN], th3[SC_HASH_LEN];
    uint8_t prk[SC_HASH_LEN], k_box[SC_KEY_LEN], k_fb[SC_KEY_LEN], k_fc[SC_KEY_LEN];
    uint8_t sig_c[SC_SIG_LEN], mac_c[SC_HASH_LEN];
    uint8_t box[SC_HS_BOX_MAX], pt[1 + SC_NAME_MAX + SC_SIG_LEN + SC_HASH_LEN];
    uint8_t signed_part[SC_HASH_LEN + 1 + SC_NAME_MAX];
    const uint8_t hdr[] = { 0, SC_PROTO_VERSION, SC_SUITE_1 };
    const uint8_t clen[4] = { (uint8_t) (ident->cert_len >> 24), (uint8_t) (ident->cert_len >> 16),
                              (uint8_t) (ident->cert_len >> 8), (uint8_t) ident->cert_len };
    uint8_t len = (uint8_t) strlen (self->name);
    sc_session_keys_t keys;
    int rc = -1;
    sc_hash_t *h = sc_hash_new ();
    if (sc_x25519 (self->e_priv, msg->eph, ss) || !h
        || sc_hash_update (h, (const uint8_t *) s_label_th, strlen (s_label_th))
        || sc_hash_update (h, hdr, sizeof hdr)
        || sc_hash_update (h, self->nonce_c, SC_RANDOM_LEN)
        || sc_hash_update (h, self->eph_c, SC_PUB_LEN)
        || sc_hash_update (h, msg->nonce, SC_RANDOM_LEN)
        || sc_hash_update (h, msg->eph, SC_PUB_LEN)
        || sc_hash_update (h, clen, sizeof clen)
        || sc_hash_update (h, ident->cert, ident->cert_len)
        || sc_hash_peek (h, th1)
        || sc_hkdf_extract (th1, SC_HASH_LEN, ss, sizeof ss, prk)
        || sc_hkdf_expand_label (prk, s_label_box, NULL, 0, k_box)
        || sc_hkdf_expand_label (prk, s_label_fin_b, NULL, 0, k_fb)
        || sc_hkdf_expand_label (prk, s_label_fin_c, NULL, 0, k_fc)
        || sc_hash_chain (th1, msg->sig, SC_SIG_LEN, NULL, 0, NULL, 0, th2))
        goto done;
    if (sc_hmac_verify (k_fb, th2, SC_HASH_LEN, msg->mac)) {
        fprintf (stderr, "secbench: %s: mac_B does not verify\n", self->name);
        goto done;
    }
    memcpy (self->th1, th1, SC_HASH_LEN);
    memcpy (self->sig_b, msg->sig, SC_SIG_LEN);
    self->sig_pending = true;
    memcpy (signed_part, th2, SC_HASH_LEN);
    signed_part[SC_HASH_LEN] = len;
    memcpy (signed_part + SC_HASH_LEN + 1, self->name, len);
    size_t pt_len = sizeof pt;          /* the name padded to 32 bytes */
    uint8_t nonce[SC_NONCE_LEN] = { 0 };
    if (sc_key_sign_labelled (ident->user_key, s_label_sig_c, signed_part,
                              SC_HASH_LEN + 1 + len, sig_c)
        || sc_hash_chain (th2, &len, 1, (const uint8_t *) self->name, len,
                          sig_c, SC_SIG_LEN, th3)
        || sc_hmac (k_fc, th3, SC_HASH_LEN, mac_c))
        goto done;
    memset (pt, 0, sizeof pt);
    pt[0] = len;
    memcpy (pt + 1, self->name, len);
    memcpy (pt + 1 + SC_NAME_MAX, sig_c, SC_SIG_LEN);
    memcpy (pt + 1 + SC_NAME_MAX + SC_SIG_LEN, mac_c, SC_HASH_LEN);
    if (sc_aead_seal (k_box, nonce, th2, SC_HASH_LEN, pt, pt_len, box)
        || sc_hkdf_expand_label (prk, s_label_c2b, th3, SC_HASH_LEN, keys.k_send)
        || sc_hkdf_expand_label (prk, s_label_b2c, th3, SC_HASH_LEN, keys.k_recv))
        goto done;
    memcpy (keys.sid, th3, SC_HASH_LEN);
    sc_channel_destroy (&self->ch);
    self->ch = sc_channel_new (&keys);
    sc_msg_t reply;
    sc_msg_init (&reply, SC_OP_AUTH_CLIENT);
    uint8_t *frame = NULL;
    size_t frame_len = 0;
    if (self->ch && !sc_msg_set_data (&reply, box, pt_len + SC_TAG_LEN)
        && !sc_wire_plain (&reply, &frame, &frame_len)
        && !s_send_frame (self, frame, frame_len))
        rc = 0;
    sc_msg_reset (&reply);
done:
    sc_hash_destroy (&h);
    sc_wipe (ss, sizeof ss);
    sc_wipe (prk, sizeof prk);
    sc_wipe (k_box, sizeof k_box);
    sc_wipe (k_fb, sizeof k_fb);
    sc_wipe (k_fc, sizeof k_fc);
    sc_wipe (pt, sizeof pt);
    sc_wipe (&keys, sizeof keys);
    sc_wipe (self->e_priv, sizeof self->e_priv);
    return rc;
}

int
bn_client_login_step (bn_client_t *self, const bn_ident_t *ident,
                      const uint8_t *frame, size_t len)
{
    uint8_t opcode = 0;
    uint64_t seq = 0;
    sc_msg_t msg;
    sc_msg_init (&msg, 0);
    int rc = -1;
    if (sc_wire_peek (frame, len, &opcode, &seq) == 0 && opcode == SC_OP_ERROR && seq == 0) {
        if (sc_wire_open_plain (frame, len, &msg) == 0)
            fprintf (stderr, "secbench: %s: login refused: error %u %s\n", self->name,
                     msg.code, msg.text ? msg.text : "");
    }
    else
    if (self->state == BN_HELLO_SENT && opcode == SC_OP_COOKIE) {
        /* the broker is under load: the same HELLO again, with the cookie */
        uint8_t *again = NULL;
        size_t again_len = 0;
        sc_msg_t hello;
        sc_msg_init (&hello, 0);
        if (sc_wire_open_plain (frame, len, &msg) == 0
            && sc_wire_open_plain (self->hello, self->hello_len, &hello) == 0) {
            hello.opcode = SC_OP_HELLO_COOKIE;
            memcpy (hello.cookie, msg.cookie, SC_COOKIE_LEN);
            if (sc_wire_plain (&hello, &again, &again_len) == 0
                && s_send_frame (self, again, again_len) == 0)
                rc = 0;
        }
        sc_msg_reset (&hello);
    }
    else
    if (self->state == BN_HELLO_SENT) {
        if (sc_wire_open_plain (frame, len, &msg) == 0 && msg.opcode == SC_OP_AUTH_BROKER
            && s_on_auth_broker (self, ident, &msg) == 0) {
            self->state = BN_AUTH_SENT;
            rc = 0;
        }
    }
    else
    if (self->state == BN_AUTH_SENT) {
        if (sc_wire_open (self->ch, frame, len, &msg) == 0 && msg.opcode == SC_OP_WELCOME
            && strcmp (msg.name, self->name) == 0) {
            self->state = BN_ONLINE;
            rc = 1;
        }
    }
    if (rc < 0) {
        fprintf (stderr, "secbench: %s: login failed (state %d, opcode %u)\n",
                 self->name, (int) self->state, opcode);
        self->state = BN_FAILED;
    }
    sc_msg_reset (&msg);
    return rc;
}

int
bn_client_check_sig (bn_client_t *self, const bn_ident_t *ident)
{
    if (!self->sig_pending)
        return 0;
    self->sig_pending = false;
    return sc_key_verify_labelled (ident->broker_key, s_label_sig_b, self->th1,
                                   SC_HASH_LEN, self->sig_b);
}

int
bn_client_recv_frame (bn_client_t *self, int timeout_ms, uint8_t **frame, size_t *len)
{
    zmq_pollitem_t item = { self->sock, 0, ZMQ_POLLIN, 0 };
    if (zmq_poll (&item, 1, timeout_ms) <= 0)
        return 0;
    zmq_msg_t msg;
    zmq_msg_init (&msg);
    if (zmq_msg_recv (&msg, self->sock, ZMQ_DONTWAIT) < 0) {
        zmq_msg_close (&msg);
        return 0;
    }
    *len = zmq_msg_size (&msg);
    *frame = malloc (*len ? *len : 1);
    if (*frame)
        memcpy (*frame, zmq_msg_data (&msg), *len);
    zmq_msg_close (&msg);
    return *frame ? 1 : 0;
}

int
bn_client_login (bn_client_t *self, const bn_ident_t *ident, int timeout_ms)
{
    if ((!self->hello && bn_client_prepare (self)) || bn_client_hello (self))
        return -1;
    int64_t deadline = bn_now_ns () + (int64_t) timeout_ms * 1000000;
    while (bn_now_ns () < deadline) {
        uint8_t *frame = NULL;
        size_t len = 0;
        if (!bn_client_recv_frame (self, 100, &frame, &len))
            continue;
        int rc = bn_client_login_step (self, ident, frame, len);
        free (frame);
        if (rc)
            return rc > 0 ? bn_client_check_sig (self, ident) : -1;
    }
    fprintf (stderr, "secbench: %s: login timed out\n", self->name);
    return -1;
}

int
bn_client_send (bn_client_t *self, const sc_msg_t *msg)
{
    uint8_t *frame = NULL;
    size_t len = 0;
    if (!self->ch || sc_wire_seal (self->ch, msg, &frame, &len))
        return -1;
    return s_send_frame (self, frame, len);
}

int
bn_client_recv (bn_client_t *self, int timeout_ms, sc_msg_t *msg)
{
    uint8_t *frame = NULL;
    size_t len = 0;
    sc_msg_init (msg, 0);
    if (!bn_client_recv_frame (self, timeout_ms, &frame, &len))
        return 0;
    int rc = self->ch ? sc_wire_open (self->ch, frame, len, msg) : -1;
    free (frame);
    return rc ? -1 : 1;
}

/* The next message must be `opcode`: 0 and msg, or -1 (msg reset). */
static int
s_expect (bn_client_t *self, uint8_t opcode, int timeout_ms, sc_msg_t *msg)
{
    int rc = bn_client_recv (self, timeout_ms, msg);
    if (rc == 1 && msg->opcode == opcode)
        return 0;
    fprintf (stderr, "secbench: %s: expected %s, got %s (%d)%s%s\n", self->name,
             sc_opcode_name (opcode), rc == 1 ? sc_opcode_name (msg->opcode) : "nothing",
             rc, msg->text ? ": " : "", msg->text ? msg->text : "");
    sc_msg_reset (msg);
    return -1;
}

static int
s_send_named (bn_client_t *self, uint8_t opcode, const char *name)
{
    sc_msg_t msg;
    sc_msg_init (&msg, opcode);
    int rc = sc_msg_set_name (&msg, name) ? -1 : bn_client_send (self, &msg);
    sc_msg_reset (&msg);
    return rc;
}

int
bn_client_await (bn_client_t *self, const char *name, int timeout_ms)
{
    int64_t deadline = bn_now_ns () + (int64_t) timeout_ms * 1000000;
    while (bn_now_ns () < deadline) {
        sc_msg_t msg;
        sc_msg_init (&msg, SC_OP_LIST);
        int rc = bn_client_send (self, &msg);
        sc_msg_reset (&msg);
        if (rc || s_expect (self, SC_OP_USERS, timeout_ms, &msg))
            return -1;
        bool found = false;
        for (size_t i = 0; i < msg.names_count && !found; i++)
            found = strcmp (msg.names[i], name) == 0;
        sc_msg_reset (&msg);
        if (found)
            return 0;
        bn_sleep_ns (100 * 1000000LL);      /* the rate limit refills a LIST in 100 ms */
    }
    fprintf (stderr, "secbench: %s: %s not listed within %d ms\n", self->name, name,
             timeout_ms);
    return -1;
}

int
bn_chat_open (bn_client_t *a, bn_client_t *b, const bn_ident_t *ident, int timeout_ms)
{
    sc_msg_t msg, reply;
    sc_msg_init (&reply, 0);
    if (s_send_named (a, SC_OP_RTT, b->name)
        || s_expect (b, SC_OP_RTT, timeout_ms, &msg))
        return -1;
    bool ok = strcmp (msg.name, a->name) == 0;
    sc_msg_reset (&msg);
    if (!ok || s_send_named (b, SC_OP_ACCEPT, a->name))
        return -1;
    /* CHAT to both: the peer's name and key, and who starts */
    bn_client_t *side[2] = { a, b };
    for (int i = 0; i < 2; i++) {
        bn_client_t *me = side[i], *peer = side[1 - i];
        if (s_expect (me, SC_OP_CHAT, timeout_ms, &msg))
            return -1;
        ok = strcmp (msg.name, peer->name) == 0 && msg.flag == (i == 0);
        memcpy (me->peer_key, msg.key, SC_PUB_LEN);
        sc_msg_reset (&msg);
        sc_e2e_destroy (&me->e2e);
        me->e2e = ok ? sc_e2e_new (ident->user_key, me->name, me->peer_key, peer->name, i == 0)
                     : NULL;
        if (!me->e2e)
            return -1;
    }
    /* E1 CC_SESSION a -> b, E2 CC_REPLY b -> a, E3 CC_FINISH a -> b */
    sc_msg_init (&msg, SC_OP_CC_SESSION);
    int rc = -1;
    if (sc_e2e_start (a->e2e, &msg.suite, msg.nonce, msg.eph) || bn_client_send (a, &msg))
        goto done;
    sc_msg_reset (&msg);
    sc_msg_init (&reply, SC_OP_CC_REPLY);
    if (s_expect (b, SC_OP_CC_SESSION, timeout_ms, &msg)
        || sc_e2e_reply (b->e2e, msg.suite, msg.nonce, msg.eph, reply.nonce, reply.eph,
                         reply.sig, reply.mac)
        || bn_client_send (b, &reply))
        goto done;
    sc_msg_reset (&msg);
    sc_msg_reset (&reply);
    sc_msg_init (&reply, SC_OP_CC_FINISH);
    if (s_expect (a, SC_OP_CC_REPLY, timeout_ms, &msg)
        || sc_e2e_finish (a->e2e, msg.nonce, msg.eph, msg.sig, msg.mac, reply.sig, reply.mac)
        || bn_client_send (a, &reply))
        goto done;
    sc_msg_reset (&msg);
    if (s_expect (b, SC_OP_CC_FINISH, timeout_ms, &msg)
        || sc_e2e_confirm (b->e2e, msg.sig, msg.mac))
        goto done;
    rc = sc_e2e_ready (a->e2e) && sc_e2e_ready (b->e2e) ? 0 : -1;
done:
    if (rc)
        fprintf (stderr, "secbench: chat %s <-> %s could not open\n", a->name, b->name);
    sc_msg_reset (&msg);
    sc_msg_reset (&reply);
    return rc;
}
