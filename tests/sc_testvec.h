/*  sc_testvec: reads the text test-vector files in tests/vectors/ (see
    tests/vectors/README.md): `#` comment lines, the third line names the
    columns ("# columns: tcId result ..."), then one vector per line with
    fields separated by one space, byte strings in hex, `-` when empty.

    The reader counts the data lines of the file on its own when opening
    it, so that a test can check it ran exactly that many vectors.

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at https://mozilla.org/MPL/2.0/.
*/
#ifndef SC_TESTVEC_H_INCLUDED
#define SC_TESTVEC_H_INCLUDED

#include <stddef.h>
#include <stdint.h>

typedef struct _sc_testvec_t sc_testvec_t;

/* Open a vector file by name (e.g. "x25519.txt") in $SC_VECTORS_DIR, or
   in tests/vectors/wycheproof/ when that is not set. NULL (and a message
   on stderr) when the file cannot be read or has no column line. */
sc_testvec_t *sc_testvec_open (const char *name);
void sc_testvec_destroy (sc_testvec_t **self_p);

/* Number of data lines (not empty, not '#') in the file. */
size_t sc_testvec_data_lines (const sc_testvec_t *self);
/* True when the file names exactly these columns, space separated. */
int sc_testvec_has_columns (const sc_testvec_t *self, const char *columns);

/* Next vector: 1 when read, 0 at the end, -1 on a malformed line (wrong
   number of fields; a message on stderr names the line). */
int sc_testvec_next (sc_testvec_t *self);
/* Line number of the current vector in its file. */
size_t sc_testvec_lineno (const sc_testvec_t *self);
/* A field of the current vector as text, NULL when no such column. */
const char *sc_testvec_str (const sc_testvec_t *self, const char *column);
/* A field as a non-negative number; -1 when it is not one. */
long sc_testvec_num (const sc_testvec_t *self, const char *column);
/* A hex field as bytes, malloc'd (never NULL on success, even when empty;
   the caller frees it). 0 on success, -1 when it is not hex. */
int sc_testvec_hex (const sc_testvec_t *self, const char *column,
                    uint8_t **bytes, size_t *len);

/* Decode a hex literal into out (at most max bytes): the number of bytes,
   or -1 when it is not hex or too long. Aborts nothing: tests assert. */
long sc_testvec_unhex (const char *hex, uint8_t *out, size_t max);

/* The X25519 public key encodings that give an all-zero shared secret
   with every private key: the Wycheproof x25519 vectors whose shared
   secret is zero (0, 1, the two points of order 8, p - 1, p, p + 1, each
   also with the top bit set, which X25519 ignores). Hex, 32 bytes each. */
#define SC_TESTVEC_LOW_ORDER 14
extern const char *const sc_testvec_low_order [SC_TESTVEC_LOW_ORDER];

#endif
