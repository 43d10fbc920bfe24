/*  sc_testpeer: a raw wire-format client for adversarial tests.

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at https://mozilla.org/MPL/2.0/.
*/
#include <czmq.h>
#include <string.h>

#include "sc_handshake.h"
#include "sc_testpeer.h"
#include "sc_wire.h"

struct _sc_testpeer_t {
    zsock_t *sock;
    sc_channel_t *ch;
};

sc_testpeer_t *
sc_testpeer_new (const char *endpoint)
{
    sc_testpeer_t *self = calloc (1, sizeof *self);
    if (!self)
        return NULL;
    self->sock = zsock_new (ZMQ_DEALER);
    if (self->sock) {
        zsock_set_linger (self->sock, 0);
        zsock_set_rcvtimeo (self->sock, 5000);
        zsock_set_sndtimeo (self->sock, 5000);
    }
    if (!self->sock || zsock_connect (self->sock, "%s", endpoint))
        sc_testpeer_destroy (&self);
    return self;
}

void
sc_testpeer_destroy (sc_testpeer_t **self_p)
{
    if (self_p && *self_p) {
        zsock_destroy (&(*self_p)->sock);
        sc_channel_destroy (&(*self_p)->ch);
        free (*self_p);
        *self_p = NULL;
    }
}

int
sc_testpeer_send_raw (sc_testpeer_t *self, const void *data, size_t len)
{
    return zmq_send (zsock_resolve (self->sock), data, len, 0) < 0 ? -1 : 0;
}

int
sc_testpeer_send_frames (sc_testpeer_t *self, size_t n,
                         const void *const data[], const size_t len[])
{
    for (size_t i = 0; i < n; i++)
        if (zmq_send (zsock_resolve (self->sock), data[i], len[i],
                      i + 1 < n ? ZMQ_SNDMORE : 0) < 0)
            return -1;
    return 0;
}

int
sc_testpeer_recv_raw (sc_testpeer_t *self, int timeout_ms, uint8_t **data, size_t *len)
{
    zmq_pollitem_t item = { zsock_resolve (self->sock), 0, ZMQ_POLLIN, 0 };
    if (zmq_poll (&item, 1, timeout_ms) <= 0)
        return 0;
    zmq_msg_t msg;
    zmq_msg_init (&msg);
    if (zmq_msg_recv (&msg, zsock_resolve (self->sock), 0) < 0) {
        zmq_msg_close (&msg);
        return 0;
    }
    *len = zmq_msg_size (&msg);
    *data = malloc (*len ? *len : 1);
    if (*data)
        memcpy (*data, zmq_msg_data (&msg), *len);
    zmq_msg_close (&msg);
    return *data ? 1 : 0;
}

int
sc_testpeer_send_plain (sc_testpeer_t *self, const sc_msg_t *msg)
{
    uint8_t *frame = NULL;
    size_t len = 0;
    if (sc_wire_plain (msg, &frame, &len))
        return -1;
    int rc = sc_testpeer_send_raw (self, frame, len);
    free (frame);
    return rc;
}

int
sc_testpeer_recv_plain (sc_testpeer_t *self, int timeout_ms, sc_msg_t *msg)
{
    uint8_t *frame = NULL;
    size_t len = 0;
    sc_msg_init (msg, 0);
    if (!sc_testpeer_recv_raw (self, timeout_ms, &frame, &len))
        return 0;
    int rc = sc_wire_open_plain (frame, len, msg);
    free (frame);
    return rc ? -1 : 1;
}

static char *
s_read_line (const char *path)
{
    FILE *file = fopen (path, "r");
    if (!file)
        return NULL;
    char line[256];
    char *result = fgets (line, sizeof line, file) ? strdup (line) : NULL;
    fclose (file);
    if (result)
        result[strcspn (result, "\r\n")] = 0;
    sc_wipe (line, sizeof line);
    return result;
}

int
sc_testpeer_login (sc_testpeer_t *self, const char *keys_dir,
                   const char *user, const char *claimed)
{
    char ca[1024], key[1024], pass[1024];
    snprintf (ca, sizeof ca, "%s/ca.pem", keys_dir);
    snprintf (key, sizeof key, "%s/clients/%s.key", keys_dir, user);
    snprintf (pass, sizeof pass, "%s/clients/%s.pass", keys_dir, user);
    return sc_testpeer_login_with (self, ca, key, pass, claimed);
}

/* After AUTH_CLIENT with these keys (wiped here): WELCOME under the new
   channel, or the broker's plaintext ERROR (the channel stays, unused by
   the broker, so that a test can show there is no session). */
static int
s_login_result (sc_testpeer_t *self, sc_session_keys_t *keys)
{
    sc_channel_destroy (&self->ch);
    self->ch = sc_channel_new (keys);
    sc_wipe (keys, sizeof *keys);
    uint8_t *frame = NULL;
    size_t len = 0;
    int result = -1;
    if (!self->ch || !sc_testpeer_recv_raw (self, 5000, &frame, &len))
        return -1;
    sc_msg_t msg;
    sc_msg_init (&msg, 0);
    uint8_t opcode = 0;
    uint64_t seq = 0;
    if (sc_wire_peek (frame, len, &opcode, &seq) == 0 && opcode == SC_OP_ERROR && seq == 0) {
        if (sc_wire_open_plain (frame, len, &msg) == 0)
            result = (int) msg.code;
    }
    else
    if (sc_wire_open (self->ch, frame, len, &msg) == 0 && msg.opcode == SC_OP_WELCOME)
        result = SC_OP_WELCOME;
    sc_msg_reset (&msg);
    free (frame);
    return result;
}

int
sc_testpeer_login_with (sc_testpeer_t *self, const char *ca_path,
                        const char *key_path, const char *pass_path,
                        const char *claimed)
{
    int err = 0, result = -1;
    sc_ca_t *ca = sc_ca_load (ca_path, &err);
    char *pass = s_read_line (pass_path);
    sc_key_t *key = pass ? sc_key_load_private (key_path, pass, &err) : NULL;
    if (pass) {
        sc_wipe (pass, strlen (pass));
        free (pass);
    }
    sc_handshake_t *hs = key && ca ? sc_handshake_new_client (key, claimed, ca, "secbroker") : NULL;
    sc_msg_t msg;
    sc_msg_init (&msg, SC_OP_HELLO);
    uint8_t box[SC_HS_BOX_MAX];
    size_t box_len = 0;
    sc_session_keys_t keys;
    if (!hs || sc_handshake_client_hello (hs, &msg.suite, msg.nonce, msg.eph)
        || sc_testpeer_send_plain (self, &msg)
        || sc_testpeer_recv_plain (self, 5000, &msg) != 1)
        goto done;
    if (msg.opcode == SC_OP_ERROR) {
        result = (int) msg.code;
        goto done;
    }
    if (msg.opcode != SC_OP_AUTH_BROKER
        || sc_handshake_client_auth (hs, msg.nonce, msg.eph, msg.data, msg.data_len,
                                     msg.sig, msg.mac, box, &box_len, NULL))
        goto done;
    sc_msg_reset (&msg);
    sc_msg_init (&msg, SC_OP_AUTH_CLIENT);
    if (sc_msg_set_data (&msg, box, box_len) || sc_testpeer_send_plain (self, &msg)
        || sc_handshake_keys (hs, &keys))
        goto done;
    result = s_login_result (self, &keys);
done:
    sc_msg_reset (&msg);
    sc_handshake_destroy (&hs);
    sc_key_destroy (&key);
    sc_ca_destroy (&ca);
    return result;
}

sc_channel_t *
sc_testpeer_channel (sc_testpeer_t *self)
{
    return self->ch;
}

int
sc_testpeer_seal (sc_testpeer_t *self, const sc_msg_t *msg, uint8_t **frame, size_t *len)
{
    return self->ch ? sc_wire_seal (self->ch, msg, frame, len) : -1;
}

int
sc_testpeer_send (sc_testpeer_t *self, const sc_msg_t *msg)
{
    uint8_t *frame = NULL;
    size_t len = 0;
    if (sc_testpeer_seal (self, msg, &frame, &len))
        return -1;
    int rc = sc_testpeer_send_raw (self, frame, len);
    free (frame);
    return rc;
}

int
sc_testpeer_send_body (sc_testpeer_t *self, uint8_t opcode, const uint8_t *body, size_t len)
{
    uint8_t *frame = NULL;
    size_t flen = 0;
    if (!self->ch || sc_wire_seal_raw (self->ch, opcode, body, len, &frame, &flen))
        return -1;
    int rc = sc_testpeer_send_raw (self, frame, flen);
    free (frame);
    return rc;
}

int
sc_testpeer_recv (sc_testpeer_t *self, int timeout_ms, sc_msg_t *msg)
{
    uint8_t *frame = NULL;
    size_t len = 0;
    sc_msg_init (msg, 0);
    if (!sc_testpeer_recv_raw (self, timeout_ms, &frame, &len))
        return 0;
    int rc = self->ch ? sc_wire_open (self->ch, frame, len, msg) : -1;
    free (frame);
    return rc ? rc : 1;
}

int
sc_testpeer_send_named (sc_testpeer_t *self, uint8_t opcode, const char *name)
{
    sc_msg_t msg;
    sc_msg_init (&msg, opcode);
    int rc = name ? sc_msg_set_name (&msg, name) : 0;
    if (rc == 0)
        rc = sc_testpeer_send (self, &msg);
    sc_msg_reset (&msg);
    return rc ? -1 : 0;
}

int
sc_testpeer_expect (sc_testpeer_t *self, uint8_t opcode, int timeout_ms)
{
    sc_msg_t msg;
    int rc = sc_testpeer_recv (self, timeout_ms, &msg);
    bool ok = rc == 1 && msg.opcode == opcode;
    if (!ok)
        fprintf (stderr, "sc_testpeer: expected %s, got %s (rc %d)\n", sc_opcode_name (opcode),
                 rc == 1 ? sc_opcode_name (msg.opcode) : "nothing", rc);
    sc_msg_reset (&msg);
    return ok ? 0 : -1;
}

int
sc_testpeer_expect_error (sc_testpeer_t *self, int timeout_ms)
{
    sc_msg_t msg;
    int rc = sc_testpeer_recv (self, timeout_ms, &msg);
    int code = rc == 1 && msg.opcode == SC_OP_ERROR ? (int) msg.code : -1;
    if (code < 0)
        fprintf (stderr, "sc_testpeer: expected ERROR, got %s (rc %d)\n",
                 rc == 1 ? sc_opcode_name (msg.opcode) : "nothing", rc);
    sc_msg_reset (&msg);
    return code;
}

int
sc_testpeer_expect_plain_error (sc_testpeer_t *self, int timeout_ms)
{
    sc_msg_t msg;
    int rc = sc_testpeer_recv_plain (self, timeout_ms, &msg);
    int code = rc == 1 && msg.opcode == SC_OP_ERROR ? (int) msg.code : -1;
    if (code < 0)
        fprintf (stderr, "sc_testpeer: expected a plaintext ERROR, got %s (rc %d)\n",
                 rc == 1 ? sc_opcode_name (msg.opcode) : "nothing", rc);
    sc_msg_reset (&msg);
    return code;
}

/* ---- The client-broker handshake from the specification ---------------- */

static void
s_put_u32 (uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t) (v >> 24);
    p[1] = (uint8_t) (v >> 16);
    p[2] = (uint8_t) (v >> 8);
    p[3] = (uint8_t) v;
}

/* Expand(prk, label || ctx, 32) */
static int
s_expand (const uint8_t prk[static SC_HASH_LEN], const char *label,
          const uint8_t *ctx, size_t ctx_len, uint8_t out[static SC_KEY_LEN])
{
    uint8_t info[128];
    size_t ll = strlen (label);
    if (ll + ctx_len > sizeof info)
        return -1;
    memcpy (info, label, ll);
    if (ctx_len)
        memcpy (info + ll, ctx, ctx_len);
    return sc_hkdf_expand (prk, info, ll + ctx_len, out, SC_KEY_LEN);
}

int
sc_testpeer_spec_broker (sc_testpeer_spec_t *spec, const uint8_t sig_b[static SC_SIG_LEN],
                         uint8_t mac_b[static SC_HASH_LEN])
{
    /* TH1 = H("secchat/1 client-broker" || 0x00 || u8(1) || u8(suite)
               || nonce_C || eph_C || nonce_B || eph_B || u32(len(cert)) || cert) */
    static const char label[] = "secchat/1 client-broker";
    size_t ll = strlen (label);
    size_t len = ll + 3 + 2 * SC_RANDOM_LEN + 2 * SC_PUB_LEN + 4 + spec->cert_len;
    uint8_t *buf = malloc (len), *p = buf;
    if (!buf || spec->cert_len > UINT32_MAX) {
        free (buf);
        return -1;
    }
    memcpy (p, label, ll);
    p += ll;
    *p++ = 0x00;
    *p++ = 1;
    *p++ = 1;
    memcpy (p, spec->nonce_c, SC_RANDOM_LEN);
    p += SC_RANDOM_LEN;
    memcpy (p, spec->eph_c, SC_PUB_LEN);
    p += SC_PUB_LEN;
    memcpy (p, spec->nonce_b, SC_RANDOM_LEN);
    p += SC_RANDOM_LEN;
    memcpy (p, spec->eph_b, SC_PUB_LEN);
    p += SC_PUB_LEN;
    s_put_u32 (p, (uint32_t) spec->cert_len);
    memcpy (p + 4, spec->cert, spec->cert_len);
    int rc = sc_sha256 (buf, len, spec->th1);
    free (buf);
    /* TH2 = H(TH1 || sig_B) */
    uint8_t th2_in[SC_HASH_LEN + SC_SIG_LEN];
    memcpy (th2_in, spec->th1, SC_HASH_LEN);
    memcpy (th2_in + SC_HASH_LEN, sig_b, SC_SIG_LEN);
    if (rc
        || sc_hkdf_extract (spec->th1, SC_HASH_LEN, spec->ss, SC_KEY_LEN, spec->prk)
        || s_expand (spec->prk, "secchat/1 cb box c2b", NULL, 0, spec->k_box)
        || s_expand (spec->prk, "secchat/1 cb finished broker", NULL, 0, spec->k_fb)
        || s_expand (spec->prk, "secchat/1 cb finished client", NULL, 0, spec->k_fc)
        || sc_sha256 (th2_in, sizeof th2_in, spec->th2)
        || sc_hmac (spec->k_fb, spec->th2, SC_HASH_LEN, mac_b))
        return -1;
    return 0;
}

/* TH3 = H(TH2 || L || n || sig_C) */
static int
s_spec_th3 (sc_testpeer_spec_t *spec, const uint8_t sig_c[static SC_SIG_LEN])
{
    size_t n = strlen (spec->name);
    uint8_t in[SC_HASH_LEN + 1 + SC_NAME_MAX + SC_SIG_LEN];
    memcpy (in, spec->th2, SC_HASH_LEN);
    in[SC_HASH_LEN] = (uint8_t) n;
    memcpy (in + SC_HASH_LEN + 1, spec->name, n);
    memcpy (in + SC_HASH_LEN + 1 + n, sig_c, SC_SIG_LEN);
    return sc_sha256 (in, SC_HASH_LEN + 1 + n + SC_SIG_LEN, spec->th3);
}

int
sc_testpeer_spec_client (sc_testpeer_spec_t *spec, const char *name,
                         const uint8_t sig_c[static SC_SIG_LEN],
                         uint8_t *box, size_t *box_len)
{
    size_t n = strlen (name);
    if (n < 1 || n > SC_NAME_MAX)
        return -1;
    memcpy (spec->name, name, n + 1);
    /* pt = L || n || sig_C || mac_C, sealed with k_box, nonce 0, AD TH2 */
    uint8_t pt[1 + SC_NAME_MAX + SC_SIG_LEN + SC_HASH_LEN];
    pt[0] = (uint8_t) n;
    memcpy (pt + 1, name, n);
    memcpy (pt + 1 + n, sig_c, SC_SIG_LEN);
    uint8_t nonce[SC_NONCE_LEN] = { 0 };
    size_t pt_len = 1 + n + SC_SIG_LEN + SC_HASH_LEN;
    int rc = s_spec_th3 (spec, sig_c)
          || sc_hmac (spec->k_fc, spec->th3, SC_HASH_LEN, pt + 1 + n + SC_SIG_LEN)
          || sc_aead_seal (spec->k_box, nonce, spec->th2, SC_HASH_LEN, pt, pt_len, box)
           ? -1 : 0;
    sc_wipe (pt, sizeof pt);
    if (rc == 0)
        *box_len = pt_len + SC_TAG_LEN;
    return rc;
}

int
sc_testpeer_spec_open (sc_testpeer_spec_t *spec, const uint8_t *box, size_t box_len)
{
    uint8_t pt[SC_HS_BOX_MAX], nonce[SC_NONCE_LEN] = { 0 };
    if (box_len <= SC_TAG_LEN || box_len > SC_HS_BOX_MAX
        || sc_aead_open (spec->k_box, nonce, spec->th2, SC_HASH_LEN, box, box_len, pt))
        return -1;
    size_t pt_len = box_len - SC_TAG_LEN, n = pt[0];
    int rc = -1;
    if (n >= 1 && n <= SC_NAME_MAX && pt_len == 1 + n + SC_SIG_LEN + SC_HASH_LEN) {
        memcpy (spec->name, pt + 1, n);
        spec->name[n] = 0;
        rc = s_spec_th3 (spec, pt + 1 + n);
    }
    sc_wipe (pt, sizeof pt);
    return rc;
}

int
sc_testpeer_spec_keys (const sc_testpeer_spec_t *spec, bool broker, sc_session_keys_t *keys)
{
    uint8_t c2b[SC_KEY_LEN], b2c[SC_KEY_LEN];
    int rc = s_expand (spec->prk, "secchat/1 cb session c2b", spec->th3, SC_HASH_LEN, c2b)
          || s_expand (spec->prk, "secchat/1 cb session b2c", spec->th3, SC_HASH_LEN, b2c)
           ? -1 : 0;
    if (rc == 0) {
        memcpy (keys->sid, spec->th3, SC_HASH_LEN);
        memcpy (keys->k_send, broker ? b2c : c2b, SC_KEY_LEN);
        memcpy (keys->k_recv, broker ? c2b : b2c, SC_KEY_LEN);
    }
    sc_wipe (c2b, sizeof c2b);
    sc_wipe (b2c, sizeof b2c);
    return rc;
}

int
sc_testpeer_login_unsigned (sc_testpeer_t *self, const char *claimed)
{
    sc_testpeer_spec_t spec;
    memset (&spec, 0, sizeof spec);
    uint8_t e_priv[SC_KEY_LEN], sig_c[SC_SIG_LEN], mac_b[SC_HASH_LEN];
    uint8_t box[SC_HS_BOX_MAX];
    size_t box_len = 0;
    sc_session_keys_t keys;
    int result = -1;
    sc_msg_t msg;
    sc_msg_init (&msg, SC_OP_HELLO);
    msg.suite = 1;
    if (sc_random (msg.nonce, SC_RANDOM_LEN) || sc_x25519_keygen (e_priv, msg.eph))
        goto done;
    memcpy (spec.nonce_c, msg.nonce, SC_RANDOM_LEN);
    memcpy (spec.eph_c, msg.eph, SC_PUB_LEN);
    if (sc_testpeer_send_plain (self, &msg) || sc_testpeer_recv_plain (self, 5000, &msg) != 1)
        goto done;
    if (msg.opcode == SC_OP_ERROR) {
        result = (int) msg.code;
        goto done;
    }
    if (msg.opcode != SC_OP_AUTH_BROKER)
        goto done;
    memcpy (spec.nonce_b, msg.nonce, SC_RANDOM_LEN);
    memcpy (spec.eph_b, msg.eph, SC_PUB_LEN);
    spec.cert = msg.data;
    spec.cert_len = msg.data_len;
    if (sc_x25519 (e_priv, spec.eph_b, spec.ss)
        || sc_testpeer_spec_broker (&spec, msg.sig, mac_b)
        || sc_random (sig_c, sizeof sig_c)
        || sc_testpeer_spec_client (&spec, claimed, sig_c, box, &box_len)
        || sc_testpeer_spec_keys (&spec, false, &keys))
        goto done;
    sc_msg_reset (&msg);
    sc_msg_init (&msg, SC_OP_AUTH_CLIENT);
    if (sc_msg_set_data (&msg, box, box_len) || sc_testpeer_send_plain (self, &msg))
        goto done;
    result = s_login_result (self, &keys);
done:
    sc_msg_reset (&msg);
    sc_wipe (&keys, sizeof keys);
    sc_wipe (&spec, sizeof spec);
    sc_wipe (e_priv, sizeof e_priv);
    return result;
}
