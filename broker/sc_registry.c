/*  sc_registry: users' public keys, from a directory of NAME.pub files.

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at https://mozilla.org/MPL/2.0/.
*/
#include <czmq.h>
#include <dirent.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sc_msg.h"
#include "sc_registry.h"

typedef struct {
    sc_key_t *key;
    uint8_t raw[SC_PUB_LEN];
    uint64_t rev;               /* the cluster's: the bucket's revision   */
} s_user_t;

struct _sc_registry_t {
    char *dir;
    zhashx_t *users;            /* name -> s_user_t                       */
    zhashx_t *cluster;          /* name -> s_user_t: the bucket's users   */
    zhashx_t *cluster_gone;     /* name -> s_user_t (no key): removed at rev */
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

/* One user from DIR/FILE into *user_p. 0: loaded; 1: not a key file
   (no .pub), ignored; -1: a bad key file, *why says why. */
static int
s_user_load (const char *dir, const char *file, char name[static SC_NAME_MAX + 1],
             s_user_t **user_p, const char **why)
{
    *user_p = NULL;
    size_t len = strlen (file);
    if (len < 5 || strcmp (file + len - 4, ".pub") != 0)
        return 1;                       /* not a key file: ignore quietly */
    len -= 4;
    if (!sc_name_valid (file, len)) {
        *why = "not a valid user name ([a-z0-9_-]{1,32}.pub)";
        return -1;
    }
    char path[4096];
    if (snprintf (path, sizeof path, "%s/%s", dir, file) >= (int) sizeof path) {
        *why = "path too long";
        return -1;
    }
    int err = SC_KEY_EINTERNAL;
    s_user_t *user = calloc (1, sizeof *user);
    if (user)
        user->key = sc_key_load_public (path, &err);
    if (!user || !user->key || sc_key_public_raw (user->key, user->raw)) {
        *why = sc_key_strerror (err);
        void *item = user;
        s_user_destroy (&item);
        return -1;
    }
    memcpy (name, file, len);
    name[len] = 0;
    *user_p = user;
    return 0;
}

/* Every user of dir, or NULL when dir cannot be read (*why set). Each
   bad key file goes to bad (may be NULL) and is counted in *nbad. */
static zhashx_t *
s_load (const char *dir, sc_registry_bad_fn *bad, void *arg, size_t *nbad,
        const char **why)
{
    *nbad = 0;
    DIR *d = opendir (dir);
    if (!d) {
        *why = strerror (errno);
        return NULL;
    }
    zhashx_t *users = zhashx_new ();
    if (!users) {
        closedir (d);
        *why = "out of memory";
        return NULL;
    }
    zhashx_set_destructor (users, s_user_destroy);
    struct dirent *entry;
    while ((entry = readdir (d))) {
        char name[SC_NAME_MAX + 1];
        s_user_t *user = NULL;
        const char *bad_why = NULL;
        int rc = s_user_load (dir, entry->d_name, name, &user, &bad_why);
        if (rc < 0) {
            (*nbad)++;
            if (bad)
                bad (arg, entry->d_name, bad_why);
        }
        if (user && zhashx_insert (users, name, user) != 0) {
            /* a user left out must fail a strict reload, not be revoked */
            void *item = user;
            s_user_destroy (&item);
            (*nbad)++;
            if (bad)
                bad (arg, entry->d_name, "cannot be kept (out of memory)");
        }
    }
    closedir (d);
    return users;
}

static void
s_skip (void *arg, const char *file, const char *why)
{
    zsys_warning ("registry: skipping %s/%s: %s", (const char *) arg, file, why);
}

sc_registry_t *
sc_registry_new (const char *dir)
{
    sc_registry_t *self = calloc (1, sizeof *self);
    if (!self)
        return NULL;
    self->dir = strdup (dir);
    self->cluster = zhashx_new ();
    if (self->cluster)
        zhashx_set_destructor (self->cluster, s_user_destroy);
    self->cluster_gone = zhashx_new ();
    if (self->cluster_gone)
        zhashx_set_destructor (self->cluster_gone, s_user_destroy);
    size_t nbad = 0;
    const char *why = "out of memory";
    self->users = self->dir && self->cluster && self->cluster_gone ? s_load (dir, s_skip, self->dir, &nbad, &why)
                                             : NULL;
    if (!self->users) {
        zsys_error ("registry: cannot read %s: %s", dir, why);
        sc_registry_destroy (&self);
    }
    return self;
}

void
sc_registry_destroy (sc_registry_t **self_p)
{
    if (self_p && *self_p) {
        sc_registry_t *self = *self_p;
        zhashx_destroy (&self->users);
        zhashx_destroy (&self->cluster);
        zhashx_destroy (&self->cluster_gone);
        free (self->dir);
        free (self);
        *self_p = NULL;
    }
}

/* A name of the cluster's bucket that the folder has with another key:
   the folder's counts here, said in the log. */
static void
s_conflict (const sc_registry_t *self, const char *name, const uint8_t raw[static SC_PUB_LEN])
{
    const s_user_t *mine = (const s_user_t *) zhashx_lookup (self->users, name);
    if (mine && memcmp (mine->raw, raw, SC_PUB_LEN) != 0)
        zsys_warning ("registry: %s has one key in %s and another in the cluster's "
                      "bucket: the folder's is used on this node", name, self->dir);
}

/* The user's entry: the folder's, else the cluster's. */
static const s_user_t *
s_find (const sc_registry_t *self, const char *name)
{
    const s_user_t *user = (const s_user_t *) zhashx_lookup (self->users, name);
    return user ? user : (const s_user_t *) zhashx_lookup (self->cluster, name);
}

/* The first bad file of a reload, for its error. */
typedef struct {
    char *why;
    size_t size;
    size_t seen;
} s_first_bad_t;

static void
s_first_bad (void *arg, const char *file, const char *why)
{
    s_first_bad_t *first = arg;
    if (first->seen++ == 0 && first->why)
        snprintf (first->why, first->size, "%s: %s", file, why);
}

int
sc_registry_reload (sc_registry_t *self, char *why, size_t size)
{
    s_first_bad_t first = { why, size, 0 };
    size_t nbad = 0;
    const char *dir_why = NULL;
    zhashx_t *users = s_load (self->dir, s_first_bad, &first, &nbad, &dir_why);
    if (!users) {
        if (why)
            snprintf (why, size, "cannot read %s: %s", self->dir, dir_why);
        return -1;
    }
    if (nbad) {
        if (why && nbad > 1) {
            size_t len = strlen (why);
            snprintf (why + len, size - len, " (and %zu more bad files)", nbad - 1);
        }
        zhashx_destroy (&users);
        return -1;
    }
    zhashx_destroy (&self->users);
    self->users = users;
    for (s_user_t *user = (s_user_t *) zhashx_first (self->cluster); user;
         user = (s_user_t *) zhashx_next (self->cluster))
        s_conflict (self, (const char *) zhashx_cursor (self->cluster), user->raw);
    return 0;
}

int
sc_registry_check (const char *dir, sc_registry_bad_fn *bad, void *arg, size_t *users)
{
    size_t nbad = 0;
    const char *why = NULL;
    zhashx_t *table = s_load (dir, bad, arg, &nbad, &why);
    if (!table) {
        if (bad)
            bad (arg, NULL, why);
        return -1;
    }
    if (users)
        *users = zhashx_size (table);
    zhashx_destroy (&table);
    return nbad > 0 ? -1 : 0;
}

size_t
sc_registry_size (const sc_registry_t *self)
{
    return zhashx_size (self->users);
}

size_t
sc_registry_cluster_size (const sc_registry_t *self)
{
    return zhashx_size (self->cluster);
}

int
sc_registry_cluster_set (sc_registry_t *self, const char *name,
                         const uint8_t pub[static SC_PUB_LEN], uint64_t rev)
{
    s_user_t *old = (s_user_t *) zhashx_lookup (self->cluster, name);
    const s_user_t *gone = (const s_user_t *) zhashx_lookup (self->cluster_gone, name);
    if (rev && ((old && old->rev >= rev) || (gone && gone->rev >= rev)))
        return 1;                       /* older than what is known */
    if (old && memcmp (old->raw, pub, SC_PUB_LEN) == 0) {
        if (rev > old->rev)
            old->rev = rev;
        return 1;
    }
    s_user_t *user = calloc (1, sizeof *user);
    if (user) {
        user->key = sc_key_from_raw (pub);
        memcpy (user->raw, pub, SC_PUB_LEN);
        user->rev = rev;
    }
    if (!user || !user->key || !sc_name_valid (name, strlen (name))) {
        void *item = user;
        s_user_destroy (&item);
        zhashx_delete (self->cluster, name);
        return -1;
    }
    zhashx_update (self->cluster, name, user);
    zhashx_delete (self->cluster_gone, name);
    s_conflict (self, name, pub);
    return 0;
}

int
sc_registry_cluster_remove (sc_registry_t *self, const char *name, uint64_t rev)
{
    s_user_t *old = (s_user_t *) zhashx_lookup (self->cluster, name);
    if (rev && old && old->rev > rev)
        return 1;                       /* registered again since */
    if (rev) {
        s_user_t *gone = (s_user_t *) zhashx_lookup (self->cluster_gone, name);
        if (!gone && (gone = calloc (1, sizeof *gone))
            && zhashx_insert (self->cluster_gone, name, gone)) {
            free (gone);
            gone = NULL;
        }
        if (gone && rev > gone->rev)
            gone->rev = rev;
    }
    if (!old)
        return 1;
    zhashx_delete (self->cluster, name);
    return 0;
}

const sc_key_t *
sc_registry_key (const sc_registry_t *self, const char *name)
{
    const s_user_t *user = s_find (self, name);
    return user ? user->key : NULL;
}

int
sc_registry_raw (const sc_registry_t *self, const char *name,
                 uint8_t pub[static SC_PUB_LEN])
{
    const s_user_t *user = s_find (self, name);
    if (!user)
        return -1;
    memcpy (pub, user->raw, SC_PUB_LEN);
    return 0;
}

const char *
sc_registry_dir (const sc_registry_t *self)
{
    return self->dir;
}

bool
sc_registry_taken (const sc_registry_t *self, const char *name)
{
    if (s_find (self, name))
        return true;
    char path[4096];
    struct stat st;
    int n = snprintf (path, sizeof path, "%s/%s.pub", self->dir, name);
    /* a name that cannot be a file cannot be taken; lstat: a dangling
       link is a name taken too */
    return n > 0 && (size_t) n < sizeof path && lstat (path, &st) == 0;
}

int
sc_registry_enrol (sc_registry_t *self, const char *name,
                   const uint8_t pub[static SC_PUB_LEN], char *why, size_t size)
{
    char path[4096], tmp[4096 + 16];
    if (!sc_name_valid (name, strlen (name))
        || snprintf (path, sizeof path, "%s/%s.pub", self->dir, name) >= (int) sizeof path) {
        snprintf (why, size, "invalid name");
        return -1;
    }
    if (zhashx_lookup (self->users, name))
        return 1;
    /* .NAME.pub.XXXXXX: not a key file to the registry while it is there */
    snprintf (tmp, sizeof tmp, "%s/.%s.pub.XXXXXX", self->dir, name);
    s_user_t *user = calloc (1, sizeof *user);
    sc_key_t *key = sc_key_from_raw (pub);
    char *pem = NULL;
    size_t len = 0;
    if (key && sc_key_public_pem (key, &pem, &len))
        pem = NULL;
    sc_key_destroy (&key);
    int fd = pem && user ? mkstemp (tmp) : -1;
    if (fd < 0) {
        snprintf (why, size, "cannot write in %s: %s", self->dir,
                  pem && user ? strerror (errno) : "out of memory");
        free (pem);
        free (user);
        return -1;
    }
    bool ok = fchmod (fd, 0644) == 0 && write (fd, pem, len) == (ssize_t) len
           && fsync (fd) == 0;
    free (pem);
    if (close (fd) || !ok) {
        snprintf (why, size, "cannot write %s: %s", tmp, strerror (errno));
        unlink (tmp);
        free (user);
        return -1;
    }
    /* link, unlike rename, never replaces a file that appeared meanwhile */
    int rc = link (tmp, path);
    int err = errno;
    unlink (tmp);
    if (rc) {
        free (user);
        if (err == EEXIST)
            return 1;
        snprintf (why, size, "cannot create %s: %s", path, strerror (err));
        return -1;
    }
    user->key = sc_key_from_raw (pub);
    memcpy (user->raw, pub, SC_PUB_LEN);
    if (!user->key || zhashx_insert (self->users, name, user) != 0) {
        /* on disk but not in the table: the next reload brings it in */
        void *item = user;
        s_user_destroy (&item);
        snprintf (why, size, "registered %s on disk, but out of memory", name);
        return -1;
    }
    return 0;
}
