/*  sc_config: secchat's configuration file (see sc_config.h).

    The file is read whole (it is small: at most S_FILE_MAX bytes) and
    parsed line by line; the first bad line stops the parse, so a
    mistake is never half applied.

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at https://mozilla.org/MPL/2.0/.
*/
#include "sc_config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sc_msg.h"

#define S_FILE_MAX  65536

/* The keys, in the order sc_config_get knows them. */
static const char *const s_keys[] = {
    "endpoint", "user", "key", "ca", "broker-name", "bell", "history"
};
#define S_KEYS (sizeof s_keys / sizeof s_keys[0])

struct _sc_config_t {
    char *value[S_KEYS];
    int line[S_KEYS];               /* where each was set */
};

static int
s_key_index (const char *key, size_t len)
{
    for (size_t i = 0; i < S_KEYS; i++)
        if (strlen (s_keys[i]) == len && memcmp (s_keys[i], key, len) == 0)
            return (int) i;
    return -1;
}

static void
s_error (char *err, size_t size, const char *fmt, ...) __attribute__ ((format (printf, 3, 4)));

static void
s_error (char *err, size_t size, const char *fmt, ...)
{
    if (!err || !size)
        return;
    va_list ap;
    va_start (ap, fmt);
    vsnprintf (err, size, fmt, ap);
    va_end (ap);
}

/* The whole file, NUL-terminated, into *text (malloc'd); 1 when there
   is no file, 0 read, -1 with err set. */
static int
s_read (const char *path, char **text, char *err, size_t size)
{
    int fd = open (path, O_RDONLY | O_CLOEXEC);
    if (fd < 0 && errno == ENOENT)
        return 1;
    struct stat st;
    if (fd < 0 || fstat (fd, &st)) {
        s_error (err, size, "%s: cannot read it: %s", path, strerror (errno));
        if (fd >= 0)
            close (fd);
        return -1;
    }
    if (!S_ISREG (st.st_mode) || st.st_size > S_FILE_MAX) {
        s_error (err, size, "%s: %s", path, S_ISREG (st.st_mode)
                 ? "too big for a configuration file (64 KiB at most)"
                 : "not a regular file");
        close (fd);
        return -1;
    }
    char *buf = malloc ((size_t) st.st_size + 1);
    size_t len = 0;
    ssize_t n = 0;
    while (buf && len < (size_t) st.st_size
           && ((n = read (fd, buf + len, (size_t) st.st_size - len)) > 0
               || (n < 0 && errno == EINTR)))
        len += n > 0 ? (size_t) n : 0;
    int saved = errno;
    close (fd);
    if (!buf || n < 0) {
        s_error (err, size, "%s: cannot read it: %s", path,
                 buf ? strerror (saved) : "out of memory");
        free (buf);
        return -1;
    }
    buf[len] = 0;
    if (strlen (buf) != len) {
        s_error (err, size, "%s: not a text file (it holds a NUL byte)", path);
        free (buf);
        return -1;
    }
    *text = buf;
    return 0;
}

static bool
s_blank (char c)
{
    return c == ' ' || c == '\t' || c == '\r';
}

/* What is wrong with value for key (index i), or NULL when it is fine. */
static const char *
s_check (size_t i, const char *value)
{
    const char *key = s_keys[i];
    if (strcmp (key, "user") == 0 && !sc_name_valid (value, strlen (value)))
        return "a user name is 1 to 32 of a-z 0-9 _ -";
    if (strcmp (key, "bell") == 0 && strcmp (value, "requests") != 0
        && strcmp (value, "messages") != 0 && strcmp (value, "off") != 0)
        return "bell is requests, messages or off";
    if (strcmp (key, "history") == 0 && strcmp (value, "on") != 0
        && strcmp (value, "off") != 0)
        return "history is on or off";
    return NULL;
}

/* A path value as it is used: ~/ is $HOME, relative is to dir. */
static char *
s_path (const char *value, const char *dir)
{
    const char *home = getenv ("HOME");
    size_t need = 0;
    const char *base = NULL, *rest = value;
    if (value[0] == '~' && value[1] == '/' && home && home[0]) {
        base = home;
        rest = value + 2;
    }
    else if (value[0] != '/')
        base = dir;
    need = (base ? strlen (base) + 1 : 0) + strlen (rest) + 1;
    char *path = malloc (need);
    if (path)
        snprintf (path, need, "%s%s%s", base ? base : "", base ? "/" : "", rest);
    return path;
}

/* One line (NUL-terminated, no newline). 0, or -1 with err set. */
static int
s_parse_line (sc_config_t *self, char *line, int number, const char *path,
              const char *dir, char *err, size_t size)
{
    char *start = line;
    while (s_blank (*start))
        start++;
    if (*start == 0 || *start == '#')
        return 0;
    char *eq = strchr (start, '=');
    if (!eq) {
        s_error (err, size, "%s:%d: not `key = value`: %.60s", path, number, start);
        return -1;
    }
    char *key_end = eq;
    while (key_end > start && s_blank (key_end[-1]))
        key_end--;
    int i = s_key_index (start, (size_t) (key_end - start));
    if (i < 0) {
        s_error (err, size, "%s:%d: unknown key '%.*s' (the keys are endpoint, user, "
                 "key, ca, broker-name, bell, history)", path, number,
                 (int) (key_end - start > 40 ? 40 : key_end - start), start);
        return -1;
    }
    char *value = eq + 1;
    while (s_blank (*value))
        value++;
    char *end = value + strlen (value);
    while (end > value && s_blank (end[-1]))
        end--;
    *end = 0;
    if (!*value) {
        s_error (err, size, "%s:%d: %s has no value", path, number, s_keys[i]);
        return -1;
    }
    if (self->value[i]) {
        s_error (err, size, "%s:%d: %s is already set on line %d", path, number,
                 s_keys[i], self->line[i]);
        return -1;
    }
    const char *wrong = s_check ((size_t) i, value);
    if (wrong) {
        s_error (err, size, "%s:%d: %s = %.60s: %s", path, number, s_keys[i],
                 value, wrong);
        return -1;
    }
    bool is_path = strcmp (s_keys[i], "key") == 0 || strcmp (s_keys[i], "ca") == 0;
    self->value[i] = is_path ? s_path (value, dir) : strdup (value);
    self->line[i] = number;
    if (!self->value[i]) {
        s_error (err, size, "%s: out of memory", path);
        return -1;
    }
    return 0;
}

sc_config_t *
sc_config_load (const char *path, char *err, size_t err_size)
{
    if (err && err_size)
        err[0] = 0;
    sc_config_t *self = calloc (1, sizeof *self);
    char *text = NULL;
    int got = self ? s_read (path, &text, err, err_size) : -1;
    if (!self)
        s_error (err, err_size, "%s: out of memory", path);
    if (got) {
        free (text);
        if (got < 0)
            sc_config_destroy (&self);
        return self;
    }
    /* the directory of the file, for relative paths */
    char *dir = strdup (path);
    char *slash = dir ? strrchr (dir, '/') : NULL;
    if (slash)
        *(slash == dir ? slash + 1 : slash) = 0;
    else if (dir)
        strcpy (dir, ".");
    int number = 0;
    char *line = text;
    while (self && dir && line && *line) {
        char *next = strchr (line, '\n');
        if (next)
            *next++ = 0;
        if (s_parse_line (self, line, ++number, path, dir, err, err_size))
            sc_config_destroy (&self);
        line = next;
    }
    if (!dir) {
        s_error (err, err_size, "%s: out of memory", path);
        sc_config_destroy (&self);
    }
    free (dir);
    free (text);
    return self;
}

void
sc_config_destroy (sc_config_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    sc_config_t *self = *self_p;
    for (size_t i = 0; i < S_KEYS; i++)
        free (self->value[i]);
    free (self);
    *self_p = NULL;
}

const char *
sc_config_get (const sc_config_t *self, const char *key)
{
    int i = self && key ? s_key_index (key, strlen (key)) : -1;
    return i < 0 ? NULL : self->value[i];
}
