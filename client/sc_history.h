/*  sc_history: the client's conversations, kept encrypted on disk.

    One SQLite database, DIR/USER/history-ID.db (DIR: --data-dir, by
    default $XDG_DATA_HOME/secchat or ~/.local/share/secchat; ID: 16 hex
    digits that only the key gives, so a new key starts a new file; USER/
    made 0700, the files 0600), holds one table of rows (id, box): every
    row is a random-looking 32-byte id and a ChaCha20-Poly1305 box, so
    the file shows neither text, names, times nor which row belongs to
    which conversation. The keys come from the user's private key
    (sc_key_derive), so only the key's password opens the store.

    One row is the index: every conversation's peer name, a random
    epoch and its record count. Each message is a record of its own,
    sealed with the conversation id (an HMAC of the name), the epoch and
    its number in the associated data, and found under an id that only
    the key can compute from those. A record and the index's new count
    are written in one transaction (rollback journal, synchronous FULL):
    a crash loses at most the record being written, and a record
    altered, moved, swapped, dropped (the last ones too: the index counts
    them) or a store truncated is reported, never shown as said.
    docs/SECURITY.md says what this protects and what it does not.

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at https://mozilla.org/MPL/2.0/.
*/
#ifndef SC_HISTORY_H_INCLUDED
#define SC_HISTORY_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sc_client.h"
#include "sc_key.h"

/* Lines /history shows when no number is given. */
#define SC_HISTORY_DEFAULT  20
/* Most lines one /history shows. */
#define SC_HISTORY_MAX      100000
/* Most conversations one store keeps. */
#define SC_HISTORY_CONVS    10000

typedef struct _sc_history_t sc_history_t;

/* One record as read back. text (borrowed, valid during the callback)
   is what was said, as stored: not sanitized for display. */
typedef struct {
    uint64_t number;            /* 0, 1, ... in its conversation          */
    uint64_t count;             /* records the conversation holds         */
    int64_t time;               /* seconds since the epoch, UTC           */
    bool out;                   /* the user said it (else the peer did)   */
    const char *text;
    size_t len;
} sc_history_record_t;

/* Called for each record read, oldest first, or (rec NULL) with why one
   could not be read: missing, altered, or not readable. */
typedef void (sc_history_read_fn) (void *arg, const sc_history_record_t *rec,
                                   const char *error);

/* What a command prints: code NULL: a line for the user (batch or
   human form); otherwise an error with its one-word code ("history",
   "usage") and its text. */
typedef void (sc_history_out_fn) (void *arg, const char *code, const char *text);

/* The default DIR: $XDG_DATA_HOME/secchat when that is an absolute path,
   else $HOME/.local/share/secchat; malloc'd, or NULL when neither is
   set. */
char *sc_history_default_dir (void);

/* Open user's store in dir/user/, creating the directories (0700) and
   the store (0600) when missing; key is the user's private key (only
   used here: the keys derived from it are kept, wiped when destroyed).
   NULL only for bad arguments or no memory. A store that cannot be used
   (another key's, altered, truncated, not writable) gives an object
   that records nothing and answers every command with why; whatever
   went wrong goes into why ("" when nothing did). A store that is
   intact is never written over. dir NULL (none could be found): such
   an object, saying so. */
sc_history_t *sc_history_new (const char *dir, const char *user, const sc_key_t *key,
                              char *why, size_t why_size);
void sc_history_destroy (sc_history_t **self_p);

/* True when the store is open and records. */
bool sc_history_usable (const sc_history_t *self);
/* The database file (NULL when there is no directory). */
const char *sc_history_path (const sc_history_t *self);

/* Append one line said with peer (out: by the user) at time (seconds
   since the epoch). 1..SC_TEXT_MAX bytes. 0, or -1 with why. */
int sc_history_append (sc_history_t *self, const char *peer, bool out, int64_t time,
                       const char *text, size_t len, char *why, size_t why_size);

/* The last n records with peer, oldest first, through fn. The number of
   records the conversation holds (0 when there is none), or -1 with why
   when nothing can be read (the index). */
int64_t sc_history_read (sc_history_t *self, const char *peer, uint64_t n,
                         sc_history_read_fn *fn, void *arg, char *why, size_t why_size);

/* Delete the conversation with peer for good: its records and its index
   entry, in one transaction, their pages overwritten. 0 (also when
   there was none), or -1 with why. */
int sc_history_forget (sc_history_t *self, const char *peer, char *why, size_t why_size);

/* Record what a client event says was said: SC_EV_MSG (in) and
   SC_EV_SENT (out), now. 0 (also for every other event), or -1 with
   why. */
int sc_history_event (sc_history_t *self, const sc_event_t *ev, char *why, size_t why_size);

/* True when line is a history command (/history, /forget). */
bool sc_history_is_command (const char *line, size_t len);
/* Run /history [NAME] [N] or /forget NAME. peer: the current chat's or
   request's peer, or NULL. batch: `hist NAME TIME in|out TEXT` lines,
   then `hist-end NAME`, and `forgotten NAME`; else lines for a person.
   self NULL: history is off (--no-history). Output through out. */
void sc_history_command (sc_history_t *self, const char *line, size_t len,
                         const char *peer, bool batch, sc_history_out_fn *out, void *arg);

#endif
