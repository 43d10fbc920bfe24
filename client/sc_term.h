/*  sc_term: secchat's terminal front end, on libedit's readline
    interface. A line editor with history, read one character at a time
    when the caller's poll loop says standard input is readable, so the
    same loop also serves the broker's socket. Lines that arrive while
    the user types are printed above the input line, which is then
    redrawn intact; the prompt shows the chat state.

    One terminal per process (libedit's readline interface is global).

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at https://mozilla.org/MPL/2.0/.
*/
#ifndef SC_TERM_H_INCLUDED
#define SC_TERM_H_INCLUDED

#include <stddef.h>

#include "sc_client.h"

typedef enum {
    SC_TERM_PLAIN,
    SC_TERM_INFO,       /* status lines: dim                               */
    SC_TERM_PEER,       /* a message: the sender's name in bold            */
    SC_TERM_ERROR,      /* red                                             */
    SC_TERM_ALARM       /* red and bold: a key changed                     */
} sc_term_style_t;

/* A typed line (without its newline), or NULL at end of input (^D).
   The line belongs to the terminal, which wipes it after the call. */
typedef void (sc_term_line_fn) (void *arg, const char *line, size_t len);

typedef struct _sc_term_t sc_term_t;

/* Take over the terminal on standard input/output. NULL when standard
   input is not a terminal or one already exists. */
sc_term_t *sc_term_new (const char *prompt, sc_term_line_fn *on_line, void *arg);
/* Give the terminal back as it was. */
void sc_term_destroy (sc_term_t **self_p);

/* Standard input is readable: read what is there (one key). */
void sc_term_read (sc_term_t *self);
/* Show another prompt, keeping what the user is typing. */
void sc_term_set_prompt (sc_term_t *self, const char *prompt);
/* Print text (one or more lines, no trailing newline needed) above the
   input line. */
void sc_term_print (sc_term_t *self, sc_term_style_t style, const char *text);
/* Ring the bell. */
void sc_term_bell (sc_term_t *self);
/* The window changed size (after SIGWINCH). */
void sc_term_resize (sc_term_t *self);
/* Back from a stop (after SIGCONT): the shell may have reset the
   terminal; take it again and redraw. */
void sc_term_resume (sc_term_t *self);

/* The prompt for a client state: "[idle]> ", "[bob]> "... */
void sc_term_prompt_for (sc_client_state_t state, const char *peer,
                         char *buf, size_t size);
/* Show a client event the way a person reads it. */
void sc_term_event (sc_term_t *self, const sc_event_t *ev);

#endif
