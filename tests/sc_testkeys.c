/*  sc_testkeys: throwaway key sets made by keys/secchat-keys.

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at https://mozilla.org/MPL/2.0/.
*/
#define _XOPEN_SOURCE 700
#include <ftw.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "sc_testkeys.h"

struct _sc_testkeys_t {
    char dir[64];
    char path[512];
};

sc_testkeys_t *
sc_testkeys_new (const char *broker_name, ...)
{
    sc_testkeys_t *self = calloc (1, sizeof *self);
    if (!self)
        return NULL;
    strcpy (self->dir, "/tmp/sc-testkeys-XXXXXX");
    if (!mkdtemp (self->dir)) {
        free (self);
        return NULL;
    }
    char cmd[2048];
    int n = snprintf (cmd, sizeof cmd, "sh keys/secchat-keys %s%s %s",
                      broker_name ? "-b " : "", broker_name ? broker_name : "",
                      self->dir);
    va_list users;
    va_start (users, broker_name);
    const char *user;
    while ((user = va_arg (users, const char *)) && n > 0 && (size_t) n < sizeof cmd)
        n += snprintf (cmd + n, sizeof cmd - (size_t) n, " %s", user);
    va_end (users);
    if (n <= 0 || (size_t) n + 16 >= sizeof cmd) {
        sc_testkeys_destroy (&self);
        return NULL;
    }
    strcat (cmd, " >/dev/null");
    int status = system (cmd);
    if (status == -1 || !WIFEXITED (status) || WEXITSTATUS (status) != 0) {
        fprintf (stderr, "sc_testkeys: '%s' failed\n", cmd);
        sc_testkeys_destroy (&self);
    }
    return self;
}

void
sc_testkeys_destroy (sc_testkeys_t **self_p)
{
    if (self_p && *self_p) {
        sc_test_rmtree ((*self_p)->dir);
        free (*self_p);
        *self_p = NULL;
    }
}

const char *
sc_testkeys_dir (const sc_testkeys_t *self)
{
    return self->dir;
}

const char *
sc_testkeys_path (sc_testkeys_t *self, const char *relative)
{
    snprintf (self->path, sizeof self->path, "%s/%s", self->dir, relative);
    return self->path;
}

sc_key_t *
sc_testkeys_user_key (sc_testkeys_t *self, const char *user)
{
    char pass[256] = "", path[512];
    snprintf (path, sizeof path, "%s/clients/%s.pass", self->dir, user);
    FILE *file = fopen (path, "r");
    if (!file)
        return NULL;
    if (!fgets (pass, sizeof pass, file))
        pass[0] = 0;
    fclose (file);
    pass[strcspn (pass, "\r\n")] = 0;
    snprintf (path, sizeof path, "%s/clients/%s.key", self->dir, user);
    int err = 0;
    sc_key_t *key = sc_key_load_private (path, pass, &err);
    sc_wipe (pass, sizeof pass);
    return key;
}

static int
s_unlink (const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void) st;
    (void) flag;
    (void) ftw;
    return remove (path);
}

int
sc_test_rmtree (const char *path)
{
    return nftw (path, s_unlink, 16, FTW_DEPTH | FTW_PHYS);
}
