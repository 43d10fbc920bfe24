/*  sc_pins: trust on first use for peers' public keys.

    The broker hands out each peer's key when a chat opens. The first key
    seen for a peer is pinned in CONFIG/NAME.pins, one line per peer:
    `peer-name hex-key` (64 lower-case hex digits), followed by
    ` verified` once the user compared safety numbers with that peer
    (/verify). Later, a different key for the same peer is reported and
    the old pin is kept: only the user replaces a pin (/trust), which
    drops the verified mark. The file is rewritten atomically (temporary
    file, then rename) with mode 0600.

    A file that does not parse is never overwritten: it is renamed
    PATH.bad and the store starts empty, and the caller is told why.

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at https://mozilla.org/MPL/2.0/.
*/
#ifndef SC_PINS_H_INCLUDED
#define SC_PINS_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sc_crypto.h"

/* Biggest pins file we read; a bigger one is treated as corrupt. */
#define SC_PINS_FILE_MAX (1024L * 1024)

typedef enum {
    SC_PIN_NEW = 0,         /* no pin for this peer yet                    */
    SC_PIN_SAME = 1,        /* the pinned key                              */
    SC_PIN_CHANGED = 2      /* a pin exists and differs                    */
} sc_pin_result_t;

typedef struct _sc_pins_t sc_pins_t;

/* Load the pins at path; a missing file is an empty store. path NULL:
   pins live in memory only. When the file cannot be read or does not
   parse, the store starts empty and a message goes into why (if not
   NULL; "" otherwise); a corrupt file is first moved aside to PATH.bad,
   and an unreadable one is never written over. NULL only when out of
   memory. */
sc_pins_t *sc_pins_new (const char *path, char *why, size_t why_size);
void sc_pins_destroy (sc_pins_t **self_p);

/* Compare key with name's pin. On SC_PIN_CHANGED, pinned (if not NULL)
   gets the pinned key. */
sc_pin_result_t sc_pins_check (const sc_pins_t *self, const char *name,
                               const uint8_t key[static SC_PUB_LEN],
                               uint8_t *pinned);

/* Pin a key for a peer that has no pin, and save the file. The pin is
   kept in memory even when saving fails. 0, or -1 with a message in
   why (already pinned, bad name, cannot write). */
int sc_pins_add (sc_pins_t *self, const char *name,
                 const uint8_t key[static SC_PUB_LEN],
                 char *why, size_t why_size);

/* The broker gave key for name, which has a pin: remembered in memory
   (never saved) as the key that /trust would pin, when it differs from
   the pin; the pinned key itself withdraws the offer. */
void sc_pins_offer (sc_pins_t *self, const char *name,
                    const uint8_t key[static SC_PUB_LEN]);
/* True when a key that differs from name's pin was offered since. */
bool sc_pins_offered (const sc_pins_t *self, const char *name);
/* The user accepted the offered key: it becomes name's pin, not
   verified, and the file is saved. 0; 1 when the pin changed but could
   not be saved (it holds in memory; why says why); -1 when no key was
   offered for name (why says so). */
int sc_pins_trust (sc_pins_t *self, const char *name, char *why, size_t why_size);

/* Mark name's pinned key verified and save the file (kept in memory
   even when saving fails). 0, or -1 with a message in why (no pin,
   cannot write). */
int sc_pins_verify (sc_pins_t *self, const char *name, char *why, size_t why_size);

/* True when name has a pin. */
bool sc_pins_has (const sc_pins_t *self, const char *name);
/* name's pinned key into key: 0, or -1 when it has none. */
int sc_pins_key (const sc_pins_t *self, const char *name, uint8_t key[static SC_PUB_LEN]);
/* True when name has a pin that the user marked verified. */
bool sc_pins_verified (const sc_pins_t *self, const char *name);

size_t sc_pins_size (const sc_pins_t *self);
/* The file, or NULL for an in-memory store. */
const char *sc_pins_path (const sc_pins_t *self);

#endif
