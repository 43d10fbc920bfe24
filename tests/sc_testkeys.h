/*  sc_testkeys: throwaway key sets made by keys/secchat-keys.

    sc_testkeys_new (broker_name, user..., NULL) makes a temporary
    directory and runs the key script in it (broker_name NULL: the
    default); sc_testkeys_destroy removes it recursively.

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

/* The key directory. */
const char *sc_testkeys_dir (const sc_testkeys_t *self);
/* dir/relative, in a buffer of self valid until the next call. */
const char *sc_testkeys_path (sc_testkeys_t *self, const char *relative);
/* A user's private key, opened with its .pass file; NULL on failure. */
sc_key_t *sc_testkeys_user_key (sc_testkeys_t *self, const char *user);

/* Remove a directory tree (nftw, depth first, no symlinks followed). */
int sc_test_rmtree (const char *path);

#endif
