/*  sc_testkeys: throwaway key sets made by keys/secchat-keys.

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at https://mozilla.org/MPL/2.0/.
*/
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "sc_testkeys.h"
#include "sc_testproc.h"

struct _sc_testkeys_t {
    char *dir;                  //  sc_testdir_new's
    char path[512];
};

//  sh keys/secchat-keys [-b broker_name] dir users, its summary to
//  /dev/null; users is "" or " name name...". 0 when it exited 0.
static int
s_script (const char *dir, const char *broker_name, const char *users)
{
    char cmd[2048];
    int n = snprintf (cmd, sizeof cmd, "sh keys/secchat-keys %s%s %s%s >/dev/null",
                      broker_name ? "-b " : "", broker_name ? broker_name : "",
                      dir, users);
    if (n <= 0 || (size_t) n >= sizeof cmd)
        return -1;
    int status = system (cmd);
    if (status == -1 || !WIFEXITED (status) || WEXITSTATUS (status) != 0) {
        fprintf (stderr, "sc_testkeys: '%s' failed\n", cmd);
        return -1;
    }
    return 0;
}

sc_testkeys_t *
sc_testkeys_new (const char *broker_name, ...)
{
    sc_testkeys_t *self = calloc (1, sizeof *self);
    if (!self)
        return NULL;
    self->dir = sc_testdir_new ("keys");
    if (!self->dir) {
        free (self);
        return NULL;
    }
    char users[1024] = "";
    int n = 0;
    va_list args;
    va_start (args, broker_name);
    const char *user;
    while ((user = va_arg (args, const char *)) && n >= 0 && (size_t) n < sizeof users)
        n += snprintf (users + n, sizeof users - (size_t) n, " %s", user);
    va_end (args);
    if (n < 0 || (size_t) n >= sizeof users
        || s_script (self->dir, broker_name, users))
        sc_testkeys_destroy (&self);
    return self;
}

void
sc_testkeys_destroy (sc_testkeys_t **self_p)
{
    if (self_p && *self_p) {
        sc_testdir_remove ((*self_p)->dir);
        free ((*self_p)->dir);
        free (*self_p);
        *self_p = NULL;
    }
}

int
sc_testkeys_reissue (sc_testkeys_t *self, const char *broker_name)
{
    return s_script (self->dir, broker_name, "");
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

sc_key_t *
sc_testkeys_user_pub (sc_testkeys_t *self, const char *user)
{
    char path[512];
    snprintf (path, sizeof path, "%s/users/%s.pub", self->dir, user);
    int err = 0;
    return sc_key_load_public (path, &err);
}
