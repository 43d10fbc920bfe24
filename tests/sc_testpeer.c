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
    sc_channel_destroy (&self->ch);
    self->ch = sc_channel_new (&keys);
    sc_wipe (&keys, sizeof keys);
    uint8_t *frame = NULL;
    size_t len = 0;
    sc_msg_reset (&msg);
    if (self->ch && sc_testpeer_recv_raw (self, 5000, &frame, &len)) {
        uint8_t opcode = 0;
        uint64_t seq = 0;
        if (sc_wire_peek (frame, len, &opcode, &seq) == 0 && opcode == SC_OP_ERROR && seq == 0) {
            if (sc_wire_open_plain (frame, len, &msg) == 0)
                result = (int) msg.code;
        }
        else
        if (sc_wire_open (self->ch, frame, len, &msg) == 0 && msg.opcode == SC_OP_WELCOME)
            result = SC_OP_WELCOME;
        free (frame);
    }
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
