/*  sc_pins: trust on first use for peers' public keys.

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at https://mozilla.org/MPL/2.0/.
*/
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
#include "sc_pins.h"

typedef struct {
    char name[SC_NAME_MAX + 1];
    uint8_t key[SC_PUB_LEN];
    bool verified;              /* the user compared safety numbers       */
    bool offered;               /* a different key was seen (memory only) */
    uint8_t offer[SC_PUB_LEN];  /* that key, until /trust or the pin again */
} s_pin_t;

/* The word after the key on a verified peer's line. */
#define S_VERIFIED      "verified"
#define S_VERIFIED_LEN  8

struct _sc_pins_t {
    char *path;                 /* NULL: memory only                      */
    bool readonly;              /* the file exists but could not be read  */
    s_pin_t *pins;
    size_t size, alloc;
};

static void
s_why (char *why, size_t size, const char *fmt, ...)
    __attribute__ ((format (printf, 3, 4)));

static void
s_why (char *why, size_t size, const char *fmt, ...)
{
    if (!why || size == 0)
        return;
    va_list ap;
    va_start (ap, fmt);
    vsnprintf (why, size, fmt, ap);
    va_end (ap);
}

static int
s_hexval (char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

static s_pin_t *
s_find (const sc_pins_t *self, const char *name)
{
    for (size_t i = 0; i < self->size; i++)
        if (strcmp (self->pins[i].name, name) == 0)
            return &self->pins[i];
    return NULL;
}

static int
s_append (sc_pins_t *self, const char *name, size_t name_len,
          const uint8_t key[static SC_PUB_LEN], bool verified)
{
    if (self->size == self->alloc) {
        size_t alloc = self->alloc ? self->alloc * 2 : 16;
        s_pin_t *pins = realloc (self->pins, alloc * sizeof *pins);
        if (!pins)
            return -1;
        self->pins = pins;
        self->alloc = alloc;
    }
    s_pin_t *pin = &self->pins[self->size++];
    memcpy (pin->name, name, name_len);
    pin->name[name_len] = 0;
    memcpy (pin->key, key, SC_PUB_LEN);
    pin->verified = verified;
    pin->offered = false;
    return 0;
}

/* One line `name hex-key` or `name hex-key verified`. 0, or -1 when it
   does not parse. */
static int
s_parse_line (sc_pins_t *self, const char *line, size_t len)
{
    const char *space = memchr (line, ' ', len);
    if (!space)
        return -1;
    size_t name_len = (size_t) (space - line);
    const char *hex = space + 1;
    size_t hex_len = len - name_len - 1;
    bool verified = false;
    const size_t key_len = (size_t) 2 * SC_PUB_LEN;
    if (hex_len == key_len + 1 + S_VERIFIED_LEN && hex[key_len] == ' '
        && memcmp (hex + key_len + 1, S_VERIFIED, S_VERIFIED_LEN) == 0) {
        verified = true;
        hex_len = key_len;
    }
    if (!sc_name_valid (line, name_len) || hex_len != (size_t) 2 * SC_PUB_LEN)
        return -1;
    uint8_t key[SC_PUB_LEN];
    for (size_t i = 0; i < SC_PUB_LEN; i++) {
        int hi = s_hexval (hex[2 * i]), lo = s_hexval (hex[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return -1;
        key[i] = (uint8_t) (hi << 4 | lo);
    }
    char name[SC_NAME_MAX + 1];
    memcpy (name, line, name_len);
    name[name_len] = 0;
    if (s_find (self, name))
        return -1;          /* two pins for one peer: which one is right? */
    return s_append (self, line, name_len, key, verified);
}

/* Parse a whole file; on failure *bad_line gets the line number. */
static int
s_parse (sc_pins_t *self, const char *buf, size_t len, size_t *bad_line)
{
    size_t lineno = 0, pos = 0;
    while (pos < len) {
        lineno++;
        const char *nl = memchr (buf + pos, '\n', len - pos);
        size_t line_len = nl ? (size_t) (nl - (buf + pos)) : len - pos;
        /* cppcheck-suppress knownConditionTrueFalse ; an empty line gives 0 */
        if (line_len > 0 && s_parse_line (self, buf + pos, line_len)) {
            *bad_line = lineno;
            return -1;
        }
        pos += line_len + (nl ? 1 : 0);
    }
    return 0;
}

/* Read the file into a new buffer. 1 when there is no file, 0 when
   read, -1 on error (errno set; EFBIG when too big). */
static int
s_read_file (const char *path, char **buf, size_t *len)
{
    int fd = open (path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return errno == ENOENT ? 1 : -1;
    struct stat st;
    int rc = -1;
    char *data = NULL;
    if (fstat (fd, &st) == 0) {
        if (!S_ISREG (st.st_mode))
            errno = EINVAL;
        else if (st.st_size > SC_PINS_FILE_MAX)
            errno = EFBIG;
        else if ((data = malloc ((size_t) st.st_size + 1))) {
            size_t got = 0;
            ssize_t n = 1;
            while (got < (size_t) st.st_size
                   && ((n = read (fd, data + got, (size_t) st.st_size - got)) > 0
                       || (n < 0 && errno == EINTR)))
                if (n > 0)
                    got += (size_t) n;
            if (n >= 0) {
                *buf = data;
                *len = got;
                data = NULL;
                rc = 0;
            }
        }
    }
    int saved = errno;
    free (data);
    close (fd);
    errno = saved;
    return rc;
}

/* A corrupt file is kept for the user as PATH.bad, never overwritten. */
static void
s_move_aside (sc_pins_t *self, size_t bad_line, char *why, size_t why_size)
{
    size_t len = strlen (self->path) + 5;
    char *bad = malloc (len);
    if (bad) {
        snprintf (bad, len, "%s.bad", self->path);
        if (rename (self->path, bad) == 0) {
            s_why (why, why_size, "pins file %s is corrupt (line %zu): moved "
                   "aside to %s; starting with no pinned keys",
                   self->path, bad_line, bad);
            free (bad);
            return;
        }
        free (bad);
    }
    self->readonly = true;
    s_why (why, why_size, "pins file %s is corrupt (line %zu) and could not "
           "be moved aside: %s; pinned keys will not be saved",
           self->path, bad_line, strerror (errno));
}

static void
s_load (sc_pins_t *self, char *why, size_t why_size)
{
    char *buf = NULL;
    size_t len = 0, bad_line = 0;
    int rc = s_read_file (self->path, &buf, &len);
    if (rc == 1)
        return;
    if (rc < 0 && errno == EFBIG)
        s_move_aside (self, 0, why, why_size);
    else if (rc < 0) {
        self->readonly = true;
        s_why (why, why_size, "cannot read pins file %s: %s; pinned keys "
               "will not be checked or saved", self->path, strerror (errno));
    }
    else if (s_parse (self, buf, len, &bad_line)) {
        self->size = 0;
        s_move_aside (self, bad_line, why, why_size);
    }
    free (buf);
}

sc_pins_t *
sc_pins_new (const char *path, char *why, size_t why_size)
{
    s_why (why, why_size, "%s", "");
    sc_pins_t *self = calloc (1, sizeof *self);
    if (!self)
        return NULL;
    if (path) {
        self->path = strdup (path);
        if (!self->path) {
            free (self);
            return NULL;
        }
        s_load (self, why, why_size);
    }
    return self;
}

void
sc_pins_destroy (sc_pins_t **self_p)
{
    if (self_p && *self_p) {
        sc_pins_t *self = *self_p;
        free (self->path);
        free (self->pins);
        free (self);
        *self_p = NULL;
    }
}

sc_pin_result_t
sc_pins_check (const sc_pins_t *self, const char *name,
               const uint8_t key[static SC_PUB_LEN], uint8_t *pinned)
{
    const s_pin_t *pin = s_find (self, name);
    if (!pin)
        return SC_PIN_NEW;
    if (memcmp (pin->key, key, SC_PUB_LEN) == 0)
        return SC_PIN_SAME;
    if (pinned)
        memcpy (pinned, pin->key, SC_PUB_LEN);
    return SC_PIN_CHANGED;
}

/* The whole store as file text. */
static char *
s_format (const sc_pins_t *self, size_t *len)
{
    const size_t line_max = SC_NAME_MAX + 1 + 2 * SC_PUB_LEN + 1 + S_VERIFIED_LEN + 1;
    char *text = malloc (self->size * line_max + 1);
    if (!text)
        return NULL;
    size_t pos = 0;
    for (size_t i = 0; i < self->size; i++) {
        pos += (size_t) sprintf (text + pos, "%s ", self->pins[i].name);
        for (size_t j = 0; j < SC_PUB_LEN; j++)
            pos += (size_t) sprintf (text + pos, "%02x", self->pins[i].key[j]);
        if (self->pins[i].verified)
            pos += (size_t) sprintf (text + pos, " %s", S_VERIFIED);
        text[pos++] = '\n';
    }
    text[pos] = 0;
    *len = pos;
    return text;
}

static int
s_write_all (int fd, const char *buf, size_t len)
{
    while (len > 0) {
        ssize_t n = write (fd, buf, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        buf += n;
        len -= (size_t) n;
    }
    return 0;
}

/* A temporary file beside the pins file (same file system, so rename
   is atomic). Creates the directory (0700) when it is missing. */
static int
s_open_temp (const char *path, char *tmp)
{
    int fd = mkstemp (tmp);
    if (fd < 0 && errno == ENOENT) {
        char *dir = strdup (path);
        char *slash = dir ? strrchr (dir, '/') : NULL;
        if (slash && slash != dir) {
            *slash = 0;
            if (mkdir (dir, 0700) == 0 || errno == EEXIST) {
                strcpy (tmp + strlen (path), ".tmpXXXXXX");
                fd = mkstemp (tmp);
            }
        }
        free (dir);
    }
    if (fd >= 0 && fchmod (fd, 0600)) {
        close (fd);
        unlink (tmp);
        fd = -1;
    }
    return fd;
}

static int
s_save (sc_pins_t *self, char *why, size_t why_size)
{
    if (!self->path)
        return 0;
    if (self->readonly) {
        s_why (why, why_size, "pins file %s was not readable: not overwriting it",
               self->path);
        return -1;
    }
    size_t len = 0, tmp_len = strlen (self->path) + sizeof ".tmpXXXXXX";
    char *text = s_format (self, &len);
    char *tmp = malloc (tmp_len);
    int rc = -1;
    if (text && tmp) {
        snprintf (tmp, tmp_len, "%s.tmpXXXXXX", self->path);
        int fd = s_open_temp (self->path, tmp);
        if (fd >= 0) {
            rc = s_write_all (fd, text, len) || fsync (fd) ? -1 : 0;
            if (close (fd))
                rc = -1;
            if (rc == 0 && rename (tmp, self->path))
                rc = -1;
            if (rc) {
                int saved = errno;
                unlink (tmp);
                errno = saved;
            }
        }
    }
    else
        errno = ENOMEM;
    if (rc)
        s_why (why, why_size, "cannot save pins file %s: %s", self->path,
               strerror (errno));
    free (text);
    free (tmp);
    return rc;
}

int
sc_pins_add (sc_pins_t *self, const char *name,
             const uint8_t key[static SC_PUB_LEN], char *why, size_t why_size)
{
    s_why (why, why_size, "%s", "");
    if (!name || !sc_name_valid (name, strlen (name))) {
        s_why (why, why_size, "%s", "not a valid peer name");
        return -1;
    }
    if (s_find (self, name)) {
        s_why (why, why_size, "%s already has a pinned key", name);
        return -1;
    }
    if (s_append (self, name, strlen (name), key, false)) {
        s_why (why, why_size, "%s", "out of memory");
        return -1;
    }
    return s_save (self, why, why_size);
}

bool
sc_pins_has (const sc_pins_t *self, const char *name)
{
    return name && s_find (self, name) != NULL;
}

bool
sc_pins_verified (const sc_pins_t *self, const char *name)
{
    const s_pin_t *pin = name ? s_find (self, name) : NULL;
    return pin && pin->verified;
}

void
sc_pins_offer (sc_pins_t *self, const char *name, const uint8_t key[static SC_PUB_LEN])
{
    s_pin_t *pin = name ? s_find (self, name) : NULL;
    if (!pin)
        return;
    pin->offered = memcmp (pin->key, key, SC_PUB_LEN) != 0;
    memcpy (pin->offer, key, SC_PUB_LEN);
}

bool
sc_pins_offered (const sc_pins_t *self, const char *name)
{
    const s_pin_t *pin = name ? s_find (self, name) : NULL;
    return pin && pin->offered;
}

int
sc_pins_trust (sc_pins_t *self, const char *name, char *why, size_t why_size)
{
    s_why (why, why_size, "%s", "");
    s_pin_t *pin = name ? s_find (self, name) : NULL;
    if (!pin || !pin->offered) {
        s_why (why, why_size, "no new key was seen for %s", name ? name : "?");
        return -1;
    }
    memcpy (pin->key, pin->offer, SC_PUB_LEN);
    pin->offered = false;
    pin->verified = false;      /* what the user verified was the old key */
    return s_save (self, why, why_size) ? 1 : 0;
}

int
sc_pins_verify (sc_pins_t *self, const char *name, char *why, size_t why_size)
{
    s_why (why, why_size, "%s", "");
    s_pin_t *pin = name ? s_find (self, name) : NULL;
    if (!pin) {
        s_why (why, why_size, "no key is pinned for %s", name ? name : "?");
        return -1;
    }
    pin->verified = true;
    return s_save (self, why, why_size);
}

int
sc_pins_key (const sc_pins_t *self, const char *name, uint8_t key[static SC_PUB_LEN])
{
    const s_pin_t *pin = name ? s_find (self, name) : NULL;
    if (!pin)
        return -1;
    memcpy (key, pin->key, SC_PUB_LEN);
    return 0;
}

size_t
sc_pins_size (const sc_pins_t *self)
{
    return self->size;
}

const char *
sc_pins_path (const sc_pins_t *self)
{
    return self->path;
}
