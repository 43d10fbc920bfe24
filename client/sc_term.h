/*  sc_term: secchat's terminal front end, on libedit's readline
    interface. A line editor with history, read one character at a time
    when the caller's poll loop says standard input is readable, so the
    same loop also serves the broker's socket. Lines that arrive while
    the user types are printed above the input line, which is then
    redrawn intact; the prompt shows the chat state.

    Every line of the scrollback carries the time (HH:MM), with a date
    line when the day changes; own lines and the peer's are labelled
    with the speaker's name. Bytes are read before libedit sees them: as
    UTF-8 characters, and with the terminal's bracketed paste and focus
    reports taken out (a multi-line paste is never typed as lines: the
    user is asked to send it as messages). Tab completes commands and
    the names of users seen online.

    One terminal per process (libedit's readline interface is global).

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at https://mozilla.org/MPL/2.0/.
*/
#ifndef SC_TERM_H_INCLUDED
#define SC_TERM_H_INCLUDED

#include <stddef.h>
#include <time.h>

#include "sc_client.h"

typedef enum {
    SC_TERM_PLAIN,
    SC_TERM_INFO,       /* status lines: dim                               */
    SC_TERM_PEER,       /* a message: the sender's name in bold            */
    SC_TERM_ERROR,      /* red                                             */
    SC_TERM_ALARM,      /* red and bold: a key changed                     */
    SC_TERM_OWN         /* an own message: the own name in bold cyan       */
} sc_term_style_t;

/* When the bell rings (--bell). Requests (and alarms) always but with
   off; messages with messages, or with requests while the terminal
   reported that it lost the focus. */
typedef enum {
    SC_TERM_BELL_OFF,
    SC_TERM_BELL_REQUESTS,
    SC_TERM_BELL_MESSAGES
} sc_term_bell_t;

/* A typed line (without its newline), or NULL at end of input (^D on
   an empty line, or the terminal hung up). The line belongs to the
   terminal, which wipes it after the call. A confirmed paste comes as
   one call per line, a line starting with '/' escaped as "//". */
typedef void (sc_term_line_fn) (void *arg, const char *line, size_t len);

typedef struct _sc_term_t sc_term_t;

/* Take over the terminal on standard input/output. NULL when standard
   input is not a terminal or one already exists. */
sc_term_t *sc_term_new (const char *prompt, sc_term_line_fn *on_line, void *arg);
/* Give the terminal back as it was. */
void sc_term_destroy (sc_term_t **self_p);

/* Standard input is readable, or sc_term_timeout has passed: read what
   is there. Never waits for a key. */
void sc_term_read (sc_term_t *self);
/* Milliseconds until sc_term_read must be called even with nothing new
   to read (an Escape waits that long for the rest of a key sequence,
   and is then taken as alone, and dropped), or -1. */
int sc_term_timeout (const sc_term_t *self);
/* Show another prompt, keeping what the user is typing. */
void sc_term_set_prompt (sc_term_t *self, const char *prompt);
/* Print text (one or more lines, no trailing newline needed) above the
   input line, each line after the time (and the date line when due). */
void sc_term_print (sc_term_t *self, sc_term_style_t style, const char *text);
/* Ring the bell (unless the bell is off). */
void sc_term_bell (sc_term_t *self);
/* When the bell rings (default SC_TERM_BELL_REQUESTS). */
void sc_term_set_bell (sc_term_t *self, sc_term_bell_t bell);
/* "requests", "messages" or "off": 0 and *bell, or -1. */
int sc_term_bell_parse (const char *text, sc_term_bell_t *bell);
/* Ctrl-C (SIGINT). With text on the line: the line is cleared. On an
   empty line: question is shown, and the answer y (or a second Ctrl-C)
   gives line to the line callback as if typed; any other key cancels.
   While a paste waits for its answer: the paste is cancelled. */
void sc_term_interrupt (sc_term_t *self, const char *question, const char *line);
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

/* ---- Pure helpers (tested on their own) ---- */

/* Columns that len bytes of UTF-8 take on a terminal (wcwidth, in the
   current LC_CTYPE): 2 for a wide CJK character or emoji, 0 for a
   combining mark. */
size_t sc_term_width (const char *text, size_t len);
/* The length of the first piece of text (len bytes of valid UTF-8) when
   it is cut into pieces of at most max bytes: never inside a
   character, nor before a combining mark when that can be helped.
   len when it fits. */
size_t sc_term_split (const char *text, size_t len, size_t max);
/* The date line ("-- Thu 2026-12-03") due before a line stamped now,
   when last (the previous stamped line's time, or NULL) was another
   day: 1 and buf, else 0. */
int sc_term_day_line (const struct tm *last, const struct tm *now,
                      char *buf, size_t size);

#endif
