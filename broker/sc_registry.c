/*  sc_registry: users' public keys, from a directory of NAME.pub files.

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at https://mozilla.org/MPL/2.0/.
*/
#include <czmq.h>
#include <dirent.h>
#include <string.h>

#include "sc_msg.h"
#include "sc_registry.h"

typedef struct {
    sc_key_t *key;
    uint8_t raw[SC_PUB_LEN];
} s_user_t;

struct _sc_registry_t {
    char *dir;
    zhashx_t *users;            /* name -> s_user_t                       */
};

static void
s_user_destroy (void **item)
{
    s_user_t *user = (s_user_t *) *item;
    if (user) {
        sc_key_destroy (&user->key);
        free (user);
        *item = NULL;
    }
}

/* One user from DIR/NAME.pub, or NULL (logged). */
static s_user_t *
s_user_load (const char *dir, const char *file, char name[static SC_NAME_MAX + 1])
{
    size_t len = strlen (file);
    if (len < 5 || strcmp (file + len - 4, ".pub") != 0)
        return NULL;                    /* not a key file: ignore quietly */
    len -= 4;
    if (!sc_name_valid (file, len)) {
        zsys_warning ("registry: skipping %s/%s: not a valid user name", dir, file);
        return NULL;
    }
    char path[4096];
    if (snprintf (path, sizeof path, "%s/%s", dir, file) >= (int) sizeof path)
        return NULL;
    int err = 0;
    s_user_t *user = calloc (1, sizeof *user);
    if (!user)
        return NULL;
    user->key = sc_key_load_public (path, &err);
    if (!user->key || sc_key_public_raw (user->key, user->raw)) {
        zsys_warning ("registry: skipping %s: %s", path, sc_key_strerror (err));
        void *item = user;
        s_user_destroy (&item);
        return NULL;
    }
    memcpy (name, file, len);
    name[len] = 0;
    return user;
}

static zhashx_t *
s_load (const char *dir)
{
    DIR *d = opendir (dir);
    if (!d) {
        zsys_error ("registry: cannot read %s: %s", dir, strerror (errno));
        return NULL;
    }
    zhashx_t *users = zhashx_new ();
    if (!users) {
        closedir (d);
        return NULL;
    }
    zhashx_set_destructor (users, s_user_destroy);
    struct dirent *entry;
    while ((entry = readdir (d))) {
        char name[SC_NAME_MAX + 1];
        s_user_t *user = s_user_load (dir, entry->d_name, name);
        if (user && zhashx_insert (users, name, user) != 0) {
            void *item = user;
            s_user_destroy (&item);
        }
    }
    closedir (d);
    return users;
}

sc_registry_t *
sc_registry_new (const char *dir)
{
    sc_registry_t *self = calloc (1, sizeof *self);
    if (!self)
        return NULL;
    self->dir = strdup (dir);
    self->users = self->dir ? s_load (dir) : NULL;
    if (!self->users)
        sc_registry_destroy (&self);
    return self;
}

void
sc_registry_destroy (sc_registry_t **self_p)
{
    if (self_p && *self_p) {
        sc_registry_t *self = *self_p;
        zhashx_destroy (&self->users);
        free (self->dir);
        free (self);
        *self_p = NULL;
    }
}

int
sc_registry_reload (sc_registry_t *self)
{
    zhashx_t *users = s_load (self->dir);
    if (!users)
        return -1;
    zhashx_destroy (&self->users);
    self->users = users;
    return 0;
}

size_t
sc_registry_size (const sc_registry_t *self)
{
    return zhashx_size (self->users);
}

const sc_key_t *
sc_registry_key (const sc_registry_t *self, const char *name)
{
    s_user_t *user = (s_user_t *) zhashx_lookup (self->users, name);
    return user ? user->key : NULL;
}

int
sc_registry_raw (const sc_registry_t *self, const char *name,
                 uint8_t pub[static SC_PUB_LEN])
{
    s_user_t *user = (s_user_t *) zhashx_lookup (self->users, name);
    if (!user)
        return -1;
    memcpy (pub, user->raw, SC_PUB_LEN);
    return 0;
}
