/*  sc_testkeys: throwaway key sets made by keys/secchat-keys.

    sc_testkeys_new (broker_name, user..., NULL) makes a temporary
    directory (sc_testdir_new) and runs the key script in it (broker_name
    NULL: the default); sc_testkeys_destroy removes it recursively
    (sc_testdir_remove).

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at https://mozilla.org/MPL/2.0/.
*/
#ifndef SC_TESTKEYS_H_INCLUDED
#define SC_TESTKEYS_H_INCLUDED

#include "sc_key.h"

typedef struct _sc_testkeys_t sc_testkeys_t;

/* A key set for the broker name (NULL: default) and the users, the list
   ended by NULL. NULL on failure. */
sc_testkeys_t *sc_testkeys_new (const char *broker_name, ...);
void sc_testkeys_destroy (sc_testkeys_t **self_p);

/* Runs the key script again for another broker name: the same CA and
   broker key, broker.crt reissued. 0 or -1. */
int sc_testkeys_reissue (sc_testkeys_t *self, const char *broker_name);

/* The key directory. */
const char *sc_testkeys_dir (const sc_testkeys_t *self);
/* dir/relative, in a buffer of self valid until the next call. */
const char *sc_testkeys_path (sc_testkeys_t *self, const char *relative);
/* A user's private key, opened with its .pass file; NULL on failure. */
sc_key_t *sc_testkeys_user_key (sc_testkeys_t *self, const char *user);
/* A user's public key from the registry (users/USER.pub); NULL on
   failure. */
sc_key_t *sc_testkeys_user_pub (sc_testkeys_t *self, const char *user);

#endif
