/*  sc_testbroker: the broker's key set and a fake client's login for the
    tests of the broker core (see sc_testbroker.h).

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at https://mozilla.org/MPL/2.0/.
*/
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "sc_testbroker.h"
#include "sc_wire.h"

int
sc_testbroker_keys_load (sc_testbroker_keys_t *self, sc_testkeys_t *keys)
{
    memset (self, 0, sizeof *self);
    self->keys = keys;
    if (!keys)
        return -1;
    int err = 0;
    self->broker_key = sc_key_load_private (sc_testkeys_path (keys, "broker.key"), NULL, &err);
    self->ca = sc_ca_load (sc_testkeys_path (keys, "ca.pem"), &err);
    self->registry = sc_registry_new (sc_testkeys_path (keys, "users"));
    if (!self->broker_key || !self->ca || !self->registry
        || sc_cert_load_der (sc_testkeys_path (keys, "broker.crt"), &self->cert,
                             &self->cert_len))
        return -1;
    return 0;
}

void
sc_testbroker_keys_free (sc_testbroker_keys_t *self)
{
    sc_registry_destroy (&self->registry);
    sc_ca_destroy (&self->ca);
    sc_key_destroy (&self->broker_key);
    free (self->cert);
    self->cert = NULL;
    self->cert_len = 0;
    sc_testkeys_destroy (&self->keys);
}

void
sc_testbroker_hello (sc_handshake_t *hs, uint8_t **frame, size_t *len)
{
    sc_msg_t msg;
    sc_msg_init (&msg, SC_OP_HELLO);
    assert_int_equal (sc_handshake_client_hello (hs, &msg.suite, msg.nonce, msg.eph), 0);
    assert_int_equal (sc_wire_plain (&msg, frame, len), 0);
    sc_msg_reset (&msg);
}

void
sc_testbroker_auth (sc_handshake_t *hs, const uint8_t *auth_broker, size_t auth_len,
                    uint8_t **frame, size_t *len, sc_channel_t **ch)
{
    sc_msg_t msg;
    assert_int_equal (sc_wire_open_plain (auth_broker, auth_len, &msg), 0);
    assert_int_equal (msg.opcode, SC_OP_AUTH_BROKER);
    uint8_t box[SC_HS_BOX_MAX];
    size_t box_len = 0;
    assert_int_equal (sc_handshake_client_auth (hs, msg.nonce, msg.eph, msg.data, msg.data_len,
                                                msg.sig, msg.mac, box, &box_len, NULL), 0);
    sc_msg_reset (&msg);
    sc_msg_init (&msg, SC_OP_AUTH_CLIENT);
    assert_int_equal (sc_msg_set_data (&msg, box, box_len), 0);
    assert_int_equal (sc_wire_plain (&msg, frame, len), 0);
    sc_msg_reset (&msg);

    sc_session_keys_t keys;
    assert_int_equal (sc_handshake_keys (hs, &keys), 0);
    sc_channel_destroy (ch);
    *ch = sc_channel_new (&keys);
    sc_wipe (&keys, sizeof keys);
    assert_non_null (*ch);
}
