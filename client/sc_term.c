/*  sc_term: secchat's terminal front end, on libedit's readline
    interface (libedit 3.1, NetBSD readline.c 1.17x).

    What that interface does, and why the code below is shaped so:
    - rl_callback_read_char reads one key per call; after it delivers a
      line it leaves the editor in buffered mode, where the next call
      would block until a whole line is typed. So the handler is
      installed again after every line (which also prints the prompt).
    - rl_forced_update_display is EL_REFRESH: forget what is on screen
      and draw prompt and line again from the cursor. To print above the
      input we move the cursor to the start of the input area, clear to
      the end of the screen, print, and let libedit redraw.
    - rl_point and rl_line_buffer are brought up to date after each key,
      which tells how many rows the cursor is below the prompt's start.
    - rl_catch_signals = 0 before the first use keeps libedit's signal
      handlers out: the caller owns SIGINT, SIGTERM and SIGWINCH.

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at https://mozilla.org/MPL/2.0/.
*/
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <editline/readline.h>

#include "sc_crypto.h"
#include "sc_term.h"

#define S_HISTORY_MAX   200

struct _sc_term_t {
    sc_term_line_fn *on_line;
    void *arg;
    char *prompt;
    bool in_line;       /* in the line callback: nothing drawn to protect */
    bool got_line;
    bool color;
};

/* libedit's line callback takes no argument. */
static sc_term_t *s_term;

/* Columns a UTF-8 string takes, counting one per character (close enough
   for placing the cursor: wide characters are rare in a chat prompt). */
static size_t
s_width (const char *text, size_t len)
{
    size_t width = 0;
    for (size_t i = 0; i < len && text[i]; i++)
        if (((unsigned char) text[i] & 0xc0) != 0x80)
            width++;
    return width;
}

/* Move to the start of the prompt and clear the input area. */
static void
s_clear_input (sc_term_t *self)
{
    int cols = 0;
    rl_get_screen_size (NULL, &cols);
    if (cols <= 0)
        cols = 80;
    size_t point = rl_point > 0 ? (size_t) rl_point : 0;
    size_t width = s_width (self->prompt, strlen (self->prompt))
                 + (rl_line_buffer ? s_width (rl_line_buffer, point) : 0);
    size_t rows = width / (size_t) cols;
    fputs ("\r", stdout);
    if (rows > 0)
        printf ("\033[%zuA", rows);
    fputs ("\033[J", stdout);
}

static void
s_on_line (char *line)
{
    sc_term_t *self = s_term;
    size_t len = line ? strlen (line) : 0;
    if (self) {
        self->in_line = true;
        self->got_line = true;
        /* Commands only: message text is not kept in memory for later. */
        if (len > 1 && line[0] == '/' && line[1] != '/')
            add_history (line);
        self->on_line (self->arg, line, len);
        self->in_line = false;
    }
    if (line) {
        sc_wipe (line, len);
        free (line);
    }
}

sc_term_t *
sc_term_new (const char *prompt, sc_term_line_fn *on_line, void *arg)
{
    if (s_term || !on_line || !isatty (STDIN_FILENO))
        return NULL;
    sc_term_t *self = calloc (1, sizeof *self);
    if (!self)
        return NULL;
    self->on_line = on_line;
    self->arg = arg;
    self->prompt = strdup (prompt ? prompt : "> ");
    if (!self->prompt) {
        free (self);
        return NULL;
    }
    const char *term = getenv ("TERM");
    self->color = isatty (STDOUT_FILENO) && term && strcmp (term, "dumb") != 0;
    s_term = self;
    rl_catch_signals = 0;
    rl_catch_sigwinch = 0;
    rl_readline_name = "secchat";
    rl_callback_handler_install (self->prompt, s_on_line);
    stifle_history (S_HISTORY_MAX);
    return self;
}

void
sc_term_destroy (sc_term_t **self_p)
{
    if (self_p && *self_p) {
        sc_term_t *self = *self_p;
        s_clear_input (self);
        fflush (stdout);
        rl_callback_handler_remove ();
        clear_history ();
        free (self->prompt);
        free (self);
        s_term = NULL;
        *self_p = NULL;
    }
}

void
sc_term_read (sc_term_t *self)
{
    /* Readable with nothing to read: the terminal hung up. libedit
       would report nothing and we would be called again forever. */
    int avail = 0;
    if (ioctl (STDIN_FILENO, FIONREAD, &avail) == 0 && avail == 0) {
        self->on_line (self->arg, NULL, 0);
        return;
    }
    self->got_line = false;
    rl_callback_read_char ();
    if (self->got_line && s_term == self)
        rl_callback_handler_install (self->prompt, s_on_line);
}

void
sc_term_set_prompt (sc_term_t *self, const char *prompt)
{
    if (strcmp (prompt, self->prompt) == 0)
        return;
    char *copy = strdup (prompt);
    if (!copy)
        return;
    if (!self->in_line)
        s_clear_input (self);
    free (self->prompt);
    self->prompt = copy;
    rl_set_prompt (self->prompt);
    if (!self->in_line) {
        fflush (stdout);
        rl_forced_update_display ();
    }
}

static const char *
s_style_on (sc_term_style_t style)
{
    switch (style) {
        case SC_TERM_INFO:   return "\033[2m";
        case SC_TERM_PEER:   return "\033[1m";
        case SC_TERM_ERROR:  return "\033[31m";
        case SC_TERM_ALARM:  return "\033[1;7;31m";
        default:             return "";
    }
}

/* One line: for a peer's message only the "name:" part is bold. */
static void
s_print_line (sc_term_t *self, sc_term_style_t style, const char *line, size_t len)
{
    size_t styled = len;
    if (style == SC_TERM_PEER) {
        const char *colon = memchr (line, ':', len);
        styled = colon ? (size_t) (colon - line) + 1 : 0;
    }
    if (self->color && style != SC_TERM_PLAIN && styled > 0)
        printf ("%s%.*s\033[0m", s_style_on (style), (int) styled, line);
    else
        styled = 0;
    printf ("%.*s\r\n", (int) (len - styled), line + styled);
}

void
sc_term_print (sc_term_t *self, sc_term_style_t style, const char *text)
{
    if (!self->in_line)
        s_clear_input (self);
    while (text && *text) {
        const char *nl = strchr (text, '\n');
        size_t len = nl ? (size_t) (nl - text) : strlen (text);
        s_print_line (self, style, text, len);
        text += len + (nl ? 1 : 0);
    }
    fflush (stdout);
    if (!self->in_line)
        rl_forced_update_display ();
}

void
sc_term_bell (sc_term_t *self)
{
    (void) self;
    fputs ("\a", stdout);
    fflush (stdout);
}

void
sc_term_resize (sc_term_t *self)
{
    (void) self;
    rl_resize_terminal ();
}

void
sc_term_resume (sc_term_t *self)
{
    (void) self;
    rl_prep_terminal (0);
    rl_forced_update_display ();
}

void
sc_term_prompt_for (sc_client_state_t state, const char *peer,
                    char *buf, size_t size)
{
    const char *name = peer ? peer : "?";
    switch (state) {
        case SC_CLIENT_OFFLINE:
            snprintf (buf, size, "[offline]> ");
            break;
        case SC_CLIENT_CONNECTING:
        case SC_CLIENT_LOGGING_IN:
            snprintf (buf, size, "[connecting]> ");
            break;
        case SC_CLIENT_IDLE:
            snprintf (buf, size, "[idle]> ");
            break;
        case SC_CLIENT_WAITING:
            snprintf (buf, size, "[waiting for %s]> ", name);
            break;
        case SC_CLIENT_INCOMING:
            snprintf (buf, size, "[%s wants to talk: /accept or /refuse]> ", name);
            break;
        case SC_CLIENT_KEYX:
            snprintf (buf, size, "[securing chat with %s]> ", name);
            break;
        case SC_CLIENT_CHATTING:
            snprintf (buf, size, "[%s]> ", name);
            break;
        default:
            snprintf (buf, size, "> ");
    }
}

/* ---- Events as people read them ------------------------------------------ */

static void
s_info (sc_term_t *self, const char *fmt, ...) __attribute__ ((format (printf, 2, 3)));

static void
s_info (sc_term_t *self, const char *fmt, ...)
{
    char text[1024];
    va_list ap;
    va_start (ap, fmt);
    vsnprintf (text, sizeof text, fmt, ap);
    va_end (ap);
    sc_term_print (self, SC_TERM_INFO, text);
}

static void
s_show_users (sc_term_t *self, const sc_event_t *ev)
{
    if (!ev->text || !ev->text[0]) {
        s_info (self, "-- nobody else is online");
        return;
    }
    size_t len = strlen (ev->text) + 32;
    char *text = malloc (len);
    if (text) {
        snprintf (text, len, "-- online: %s%s", ev->text,
                  ev->number ? " (and more)" : "");
        sc_term_print (self, SC_TERM_INFO, text);
        free (text);
    }
}

static void
s_show_message (sc_term_t *self, const sc_event_t *ev)
{
    size_t text_len = strlen (ev->text ? ev->text : "");
    size_t len = strlen (ev->name) + text_len + 3;
    char *line = malloc (len);
    if (line) {
        snprintf (line, len, "%s: %s", ev->name, ev->text ? ev->text : "");
        sc_term_print (self, SC_TERM_PEER, line);
        sc_wipe (line, len);
        free (line);
    }
}

/* Own lines never confirmed: which ones, so the user can send them again. */
static void
s_show_unacked (sc_term_t *self, const sc_event_t *ev)
{
    char head[128];
    snprintf (head, sizeof head, "!! %llu of your messages to %s %s never confirmed%s",
              (unsigned long long) ev->number, ev->name,
              ev->number == 1 ? "was" : "were", ev->text ? ":" : "");
    sc_term_print (self, SC_TERM_ERROR, head);
    const char *line = ev->text;
    while (line) {
        const char *end = strchr (line, '\n');
        size_t len = end ? (size_t) (end - line) : strlen (line);
        size_t size = len + 8;
        char *shown = malloc (size);
        if (shown) {
            snprintf (shown, size, "!!   %.*s", (int) len, line);
            sc_term_print (self, SC_TERM_ERROR, shown);
            sc_wipe (shown, size);
            free (shown);
        }
        line = end ? end + 1 : NULL;
    }
}

static void
s_show_fingerprint (sc_term_t *self, const sc_event_t *ev)
{
    if (ev->name)
        s_info (self, "-- your key:   %s\n-- %s's key: %s\n-- safety number: %s",
                ev->fpr, ev->name, ev->peer_fpr, ev->safety);
    else
        s_info (self, "-- your key: %s", ev->fpr);
}

static void
s_show_error (sc_term_t *self, const sc_event_t *ev)
{
    char text[1024];
    snprintf (text, sizeof text, "!! %s", ev->text ? ev->text : ev->code);
    /* the two warnings of a broker that lies: loud */
    bool alarm = ev->code && (strcmp (ev->code, "key-changed") == 0
                              || strcmp (ev->code, "unconfirmed-close") == 0);
    sc_term_print (self, alarm ? SC_TERM_ALARM : SC_TERM_ERROR, text);
    if (alarm)
        sc_term_bell (self);
}

void
sc_term_event (sc_term_t *self, const sc_event_t *ev)
{
    switch (ev->type) {
        case SC_EV_READY:
            s_info (self, "-- logged in as %s; /help lists the commands", ev->name);
            break;
        case SC_EV_USERS:       s_show_users (self, ev); break;
        case SC_EV_REQUEST:
            s_info (self, "-- %s wants to talk: /accept or /refuse", ev->name);
            sc_term_bell (self);
            break;
        case SC_EV_ACCEPTED:
            s_info (self, "-- %s accepted; securing the chat...", ev->name);
            break;
        case SC_EV_REFUSED:     s_info (self, "-- %s refused", ev->name); break;
        case SC_EV_BUSY:
            s_info (self, "-- %s is busy (in a chat, or asked by someone): try later",
                    ev->name);
            break;
        case SC_EV_NOT_FOUND:
            s_info (self, "-- %s is not online (or not a user)", ev->name);
            break;
        case SC_EV_CHAT:
            s_info (self, "-- end-to-end encrypted chat with %s\n-- safety number %s\n"
                    "-- compare it with %s by another channel (voice, in person)",
                    ev->name, ev->safety, ev->name);
            break;
        case SC_EV_MSG:         s_show_message (self, ev); break;
        case SC_EV_SENT:        break;      /* the user typed it */
        case SC_EV_CLOSED:      s_info (self, "-- chat with %s closed", ev->name); break;
        case SC_EV_LOST:
            s_info (self, "-- %llu message%s from %s never arrived",
                    (unsigned long long) ev->number, ev->number == 1 ? "" : "s",
                    ev->name);
            break;
        case SC_EV_ACKED:
            s_info (self, "-- delivered: %s has your first %llu message%s",
                    ev->name, (unsigned long long) ev->number,
                    ev->number == 1 ? "" : "s");
            break;
        case SC_EV_UNACKED:     s_show_unacked (self, ev); break;
        case SC_EV_TRUSTED:
            s_info (self, "-- %s's new key %s is trusted and pinned", ev->name,
                    ev->fpr ? ev->fpr : "?");
            break;
        case SC_EV_VERIFIED:
            s_info (self, "-- %s's key is marked verified: a change of it will "
                    "close the chat", ev->name);
            break;
        case SC_EV_FINGERPRINT: s_show_fingerprint (self, ev); break;
        case SC_EV_ERROR:       s_show_error (self, ev); break;
        case SC_EV_BYE:         s_info (self, "-- bye"); break;
        case SC_EV_HELP:        sc_term_print (self, SC_TERM_PLAIN, ev->text); break;
        case SC_EV_NOTICE:      s_info (self, "-- note: %s", ev->text); break;
        case SC_EV_LOGIN_FAILED:
            break;              /* the caller says it on standard error */
    }
}
