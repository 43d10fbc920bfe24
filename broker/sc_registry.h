/*  sc_registry: the users the broker knows, by name, with their public
    keys. Loaded from a directory of `NAME.pub` files (SubjectPublicKey
    PEM, Ed25519), one per user. At start, a file whose name is not a
    valid user name or whose key does not load is skipped with a log
    line, so one bad file never locks everybody out. A reload is all or
    nothing: it builds a new table and swaps it in only when the
    directory could be read and every key file in it is good, so a file
    caught half-written never logs its user out.

    In a cluster (secbroker --cluster) a second table holds the users of
    the cluster's bucket secchat-users (docs/PROTOCOL.md section 12),
    kept up to date from it by the core's thread; a reload of the folder
    leaves it alone. A name in both with different keys: the folder's
    key counts on this node (logged).

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at https://mozilla.org/MPL/2.0/.
*/
#ifndef SC_REGISTRY_H_INCLUDED
#define SC_REGISTRY_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sc_key.h"

typedef struct _sc_registry_t sc_registry_t;

/* Load every user of dir. NULL when dir cannot be read. */
sc_registry_t *sc_registry_new (const char *dir);
void sc_registry_destroy (sc_registry_t **self_p);

/* Read the directory again. -1 when it cannot be read or holds a bad
   key file (a NAME.pub whose name is not valid or whose key does not
   load): the old table stays, and why (size bytes, may be NULL) says
   what, naming the first bad file. 0 when swapped in. */
int sc_registry_reload (sc_registry_t *self, char *why, size_t size);
/* Check dir as a reload would, keeping nothing: bad (may be NULL) is
   called with each bad file's name (NULL when dir cannot be read) and
   why. 0 when all is good, -1 otherwise; *users (may be NULL) gets the
   number of good keys. */
typedef void (sc_registry_bad_fn) (void *arg, const char *file, const char *why);
int sc_registry_check (const char *dir, sc_registry_bad_fn *bad, void *arg, size_t *users);

/* Users of the folder's table. */
size_t sc_registry_size (const sc_registry_t *self);
/* The folder it reads (borrowed). */
const char *sc_registry_dir (const sc_registry_t *self);
/* Whether name is taken: in a table, or its NAME.pub is in the folder
   (a file added since the last reload counts). */
bool sc_registry_taken (const sc_registry_t *self, const char *name);
/* Enrolment: register name with the raw public key pub. NAME.pub is
   written to a temporary file, then linked into place, which fails if
   the name exists meanwhile: a registered name is never replaced. The
   user is in the table at once. 0; 1 when name is taken; -1 on failure
   (why says what; nothing is left behind). */
int sc_registry_enrol (sc_registry_t *self, const char *name,
                       const uint8_t pub[static SC_PUB_LEN], char *why, size_t size);
/* The cluster's users: name registered in the bucket with the raw key
   pub (added or replaced), or gone from it, at the bucket's revision
   rev (0: unknown, applied whatever came before). A change older than
   the last one known for name (removals included) is ignored: the
   watch of the bucket and an enrolment's own write may come in either
   order. 0 when the key name now has here changed (so sessions must be
   checked again: sc_broker_revalidate), 1 when nothing changed, -1 when
   pub is no Ed25519 key or out of memory (name is then dropped from the
   table: its old key no longer stands). */
int sc_registry_cluster_set (sc_registry_t *self, const char *name,
                             const uint8_t pub[static SC_PUB_LEN], uint64_t rev);
int sc_registry_cluster_remove (sc_registry_t *self, const char *name, uint64_t rev);
/* Users of the cluster's table. */
size_t sc_registry_cluster_size (const sc_registry_t *self);
/* The key of a user (borrowed, valid until the next reload), or NULL. */
const sc_key_t *sc_registry_key (const sc_registry_t *self, const char *name);
/* The user's raw public key; -1 when unknown. */
int sc_registry_raw (const sc_registry_t *self, const char *name,
                     uint8_t pub[static SC_PUB_LEN]);

#endif
