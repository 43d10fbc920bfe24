/*  sc_testvec: reader for the text test-vector files (see sc_testvec.h).

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at https://mozilla.org/MPL/2.0/.
*/
#include "sc_testvec.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SC_TESTVEC_MAX_COLUMNS 16
#define SC_TESTVEC_DEFAULT_DIR "tests/vectors/wycheproof"
#define SC_TESTVEC_COLUMNS     "# columns: "

const char *const sc_testvec_low_order [SC_TESTVEC_LOW_ORDER] = {
    "0000000000000000000000000000000000000000000000000000000000000000",
    "0000000000000000000000000000000000000000000000000000000000000080",
    "0100000000000000000000000000000000000000000000000000000000000000",
    "0100000000000000000000000000000000000000000000000000000000000080",
    "e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800",
    "e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b880",
    "5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157",
    "5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f11d7",
    "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
    "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
    "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
    "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
    "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
    "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
};

struct _sc_testvec_t {
    char *path;
    char *text;                     //  whole file, split in place
    char *next;                     //  start of the next unread line
    size_t lineno;                  //  line number of the current vector
    size_t next_lineno;
    size_t data_lines;
    char *columns [SC_TESTVEC_MAX_COLUMNS];
    size_t ncolumns;
    char *fields [SC_TESTVEC_MAX_COLUMNS];
    size_t nfields;
};

//  Reads a whole file into a NUL-terminated buffer.
static char *
s_slurp (const char *path)
{
    FILE *file = fopen (path, "rb");
    if (!file)
        return NULL;
    char *text = NULL;
    size_t len = 0;
    size_t cap = 0;
    int c;
    while ((c = fgetc (file)) != EOF) {
        if (len + 1 >= cap) {
            cap = cap ? cap * 2 : 65536;
            char *bigger = realloc (text, cap);
            if (!bigger) {
                free (text);
                fclose (file);
                return NULL;
            }
            text = bigger;
        }
        text [len++] = (char) c;
    }
    int failed = ferror (file);
    fclose (file);
    if (failed || !text) {
        free (text);
        return NULL;
    }
    text [len] = 0;
    return text;
}

//  Splits s on single spaces into at most max pointers; the count, or
//  max + 1 when there are too many, or 0 when a field is empty.
static size_t
s_split (char *s, char **out, size_t max)
{
    size_t n = 0;
    while (1) {
        if (*s == 0 || *s == ' ')
            return 0;               //  empty field: two spaces or a trailing one
        if (n == max)
            return max + 1;
        out [n++] = s;
        char *space = strchr (s, ' ');
        if (!space)
            return n;
        *space = 0;
        s = space + 1;
    }
}

//  Takes the next line off self->next (NUL-terminates it, drops a CR).
static char *
s_take_line (sc_testvec_t *self)
{
    if (!self->next || *self->next == 0)
        return NULL;
    char *line = self->next;
    char *newline = strchr (line, '\n');
    if (newline) {
        *newline = 0;
        self->next = newline + 1;
    }
    else
        self->next = NULL;
    size_t len = strlen (line);
    if (len && line [len - 1] == '\r')
        line [len - 1] = 0;
    self->next_lineno++;
    return line;
}

static void
s_count_data_lines (sc_testvec_t *self)
{
    const char *line = self->text;
    while (line && *line) {
        if (*line != '#' && *line != '\n' && *line != '\r')
            self->data_lines++;
        line = strchr (line, '\n');
        if (line)
            line++;
    }
}

//  Reads the comment lines up to the first data line, keeping the column
//  names.
static int
s_read_header (sc_testvec_t *self)
{
    while (self->next && *self->next == '#') {
        char *line = s_take_line (self);
        if (strncmp (line, SC_TESTVEC_COLUMNS, strlen (SC_TESTVEC_COLUMNS)) == 0) {
            self->ncolumns = s_split (line + strlen (SC_TESTVEC_COLUMNS),
                                      self->columns, SC_TESTVEC_MAX_COLUMNS);
            if (self->ncolumns == 0 || self->ncolumns > SC_TESTVEC_MAX_COLUMNS)
                return -1;
        }
    }
    return self->ncolumns ? 0 : -1;
}

sc_testvec_t *
sc_testvec_open (const char *name)
{
    const char *dir = getenv ("SC_VECTORS_DIR");
    if (!dir || !*dir)
        dir = SC_TESTVEC_DEFAULT_DIR;
    sc_testvec_t *self = calloc (1, sizeof (sc_testvec_t));
    if (!self)
        return NULL;
    size_t path_len = strlen (dir) + 1 + strlen (name) + 1;
    self->path = malloc (path_len);
    if (!self->path) {
        sc_testvec_destroy (&self);
        return NULL;
    }
    snprintf (self->path, path_len, "%s/%s", dir, name);
    self->text = s_slurp (self->path);
    if (!self->text) {
        fprintf (stderr, "sc_testvec: cannot read %s: %s\n", self->path, strerror (errno));
        sc_testvec_destroy (&self);
        return NULL;
    }
    s_count_data_lines (self);
    self->next = self->text;
    if (s_read_header (self)) {
        fprintf (stderr, "sc_testvec: %s has no valid '# columns:' line\n", self->path);
        sc_testvec_destroy (&self);
    }
    return self;
}

void
sc_testvec_destroy (sc_testvec_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    sc_testvec_t *self = *self_p;
    free (self->text);
    free (self->path);
    free (self);
    *self_p = NULL;
}

size_t
sc_testvec_data_lines (const sc_testvec_t *self)
{
    return self->data_lines;
}

int
sc_testvec_has_columns (const sc_testvec_t *self, const char *columns)
{
    char buf [512];
    size_t used = 0;
    buf [0] = 0;
    for (size_t i = 0; i < self->ncolumns; i++) {
        int n = snprintf (buf + used, sizeof buf - used, "%s%s",
                          i ? " " : "", self->columns [i]);
        if (n < 0 || (size_t) n >= sizeof buf - used)
            return 0;
        used += (size_t) n;
    }
    return strcmp (buf, columns) == 0;
}

int
sc_testvec_next (sc_testvec_t *self)
{
    char *line;
    do {
        line = s_take_line (self);
        if (!line)
            return 0;
    } while (*line == 0 || *line == '#');
    self->lineno = self->next_lineno;
    self->nfields = s_split (line, self->fields, SC_TESTVEC_MAX_COLUMNS);
    if (self->nfields != self->ncolumns) {
        fprintf (stderr, "sc_testvec: %s:%zu: %zu fields, expected %zu\n",
                 self->path, self->lineno, self->nfields, self->ncolumns);
        return -1;
    }
    return 1;
}

size_t
sc_testvec_lineno (const sc_testvec_t *self)
{
    return self->lineno;
}

const char *
sc_testvec_str (const sc_testvec_t *self, const char *column)
{
    for (size_t i = 0; i < self->ncolumns && i < self->nfields; i++)
        if (strcmp (self->columns [i], column) == 0)
            return self->fields [i];
    return NULL;
}

long
sc_testvec_num (const sc_testvec_t *self, const char *column)
{
    const char *text = sc_testvec_str (self, column);
    if (!text || !*text || strspn (text, "0123456789") != strlen (text)
    ||  strlen (text) > 9)
        return -1;
    return strtol (text, NULL, 10);
}

static int
s_nibble (char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

long
sc_testvec_unhex (const char *hex, uint8_t *out, size_t max)
{
    if (strcmp (hex, "-") == 0)
        return 0;
    size_t len = strlen (hex);
    if (len % 2 || len / 2 > max)
        return -1;
    for (size_t i = 0; i < len / 2; i++) {
        int hi = s_nibble (hex [2 * i]);
        int lo = s_nibble (hex [2 * i + 1]);
        if (hi < 0 || lo < 0)
            return -1;
        out [i] = (uint8_t) (hi << 4 | lo);
    }
    return (long) (len / 2);
}

int
sc_testvec_hex (const sc_testvec_t *self, const char *column,
                uint8_t **bytes, size_t *len)
{
    const char *text = sc_testvec_str (self, column);
    if (!text)
        return -1;
    size_t max = strlen (text) / 2;
    uint8_t *buf = malloc (max + 1);    //  + 1: never malloc (0)
    if (!buf)
        return -1;
    long n = sc_testvec_unhex (text, buf, max);
    if (n < 0) {
        free (buf);
        return -1;
    }
    *bytes = buf;
    *len = (size_t) n;
    return 0;
}
