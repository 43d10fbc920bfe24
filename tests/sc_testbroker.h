/*  sc_testbroker: what the tests that drive the broker core without
    sockets (test_sc_broker, test_broker_jobs) share: the broker's half of
    a key set, loaded once, and a fake client's half of the login, one
    frame at a time, so that each test delivers the frames its own way.
    The login steps assert with cmocka: call them from a test.

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at https://mozilla.org/MPL/2.0/.
*/
#ifndef SC_TESTBROKER_H_INCLUDED
#define SC_TESTBROKER_H_INCLUDED

#include <stddef.h>
#include <stdint.h>

#include "sc_channel.h"
#include "sc_handshake.h"
#include "sc_key.h"
#include "sc_registry.h"
#include "sc_testkeys.h"

typedef struct {
    sc_testkeys_t *keys;        //  the users' private keys are here
    sc_key_t *broker_key;
    uint8_t *cert;              //  DER
    size_t cert_len;
    sc_ca_t *ca;
    sc_registry_t *registry;    //  the key set's users/
} sc_testbroker_keys_t;

//  Loads the broker's key, certificate, CA and registry of keys, which
//  it takes over (NULL: fails). 0, or -1 when anything is missing.
int sc_testbroker_keys_load (sc_testbroker_keys_t *self, sc_testkeys_t *keys);
//  Frees all of it, the key set too. Idempotent.
void sc_testbroker_keys_free (sc_testbroker_keys_t *self);

//  The client's HELLO from hs, as a plaintext frame (malloc'd).
void sc_testbroker_hello (sc_handshake_t *hs, uint8_t **frame, size_t *len);
//  The broker's answer must be AUTH_BROKER and hs must accept it: the
//  AUTH_CLIENT frame (malloc'd), and the session's channel in *ch.
void sc_testbroker_auth (sc_handshake_t *hs, const uint8_t *auth_broker, size_t auth_len,
                         uint8_t **frame, size_t *len, sc_channel_t **ch);

#endif
