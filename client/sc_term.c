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
    - rl_getc_function, set before the first use, replaces libedit's
      reading: what it returns is taken as one wide character. Ours reads
      standard input into a buffer, decodes UTF-8 itself, and takes the
      terminal's bracketed paste (CSI 200~ ... CSI 201~) and focus
      reports (CSI I, CSI O) out before libedit sees them; where libedit
      must be given a key for them it gets ^O, bound to
      ed-tty-flush-output, which does nothing.
    - Within one call libedit reads as many keys as a command takes
      (ESC and the rest of a key sequence, a sequence it does not know
      and one key more, ^V or ^X and the next key, Alt and a digit and
      the next key), and a getc that waited for them would stop the
      caller's loop: no message shown, no heartbeat sent. So ours never
      waits: an ESC goes to libedit only with its whole sequence (kept
      up to S_ESC_KEY_MS for the rest, sc_term_timeout telling the
      caller when to look again, then dropped as alone), ^V and ^X only
      with the key after them, and a key asked for that is not there is
      ^O, which ends the command.
    - rl_point and rl_end keep their values after a line is delivered,
      until the next key that edits: the terminal notes itself that the
      line is fresh, and keeps that through S_NOOP.
    - rl_line_buffer points into a conversion buffer that libedit
      reallocates, without telling, once the line's UTF-8 outgrows its
      first 1024 bytes; libedit then writes through the stale pointer
      after each key. So the line being edited is kept under
      S_EDIT_MAX bytes: longer text comes as a paste, which never goes
      through libedit's line.

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at https://mozilla.org/MPL/2.0/.
*/
#define _XOPEN_SOURCE 700          /* wcwidth */
#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>
#include <wchar.h>

#include <editline/readline.h>

#include "sc_crypto.h"
#include "sc_msg.h"
#include "sc_term.h"

#define S_HISTORY_MAX   200
#define S_NOOP          0x0f            /* ^O: ed-tty-flush-output, no-op  */
#define S_ESC_WAIT_MS   50              /* the rest of a UTF-8 character   */
#define S_ESC_KEY_MS    100             /* the rest of an escape sequence  */
#define S_ESC_SEQ_MAX   32              /* bytes of one escape sequence    */
#define S_PASTE_WAIT_MS 2000            /* the rest of a paste             */
#define S_PASTE_MAX     ((size_t) 1024 * 1024)
#define S_EDIT_MAX      1000            /* bytes in the line being edited  */
#define S_NAMES_MAX     (SC_USERS_MAX + 64)
#define S_SENT_RING     64              /* own lines remembered for acks   */
#define S_EXCERPT       24              /* bytes of each shown in a receipt */

/* What an ESC at in_pos starts. */
typedef enum {
    S_ESC_KEY,          /* a whole key sequence, or Alt and a key: libedit's */
    S_ESC_TAKEN,        /* a focus report or a paste, taken out              */
    S_ESC_WAIT,         /* the rest may still come: kept, nothing given      */
    S_ESC_DROPPED       /* alone, or cut short: dropped                      */
} s_esc_t;

typedef enum {
    S_ASK_NONE,
    S_ASK_PASTE,        /* send the paste as messages?                     */
    S_ASK_CONFIRM       /* Ctrl-C on an empty line: end the chat / quit?   */
} s_ask_t;

struct _sc_term_t {
    sc_term_line_fn *on_line;
    void *arg;
    char *prompt;
    bool in_line;       /* in the line callback: nothing drawn to protect */
    bool got_line;
    bool fresh;         /* no key since the last line: the line is empty  */
    bool noop;          /* libedit was given S_NOOP, not a key            */
    bool color;
    /* bytes read from standard input, not yet given to libedit */
    unsigned char in[4096];
    size_t in_pos, in_len;
    bool eof;           /* standard input ended (the terminal hung up)    */
    int64_t esc_since;  /* when the ESC kept at in_pos came (0: none)     */
    bool held;          /* a key waits for its rest: no more keys for now */
    bool first;         /* libedit asks for the first key of a command    */
    bool full, full_said;   /* the line is full (said once per line)      */
    /* a bracketed paste, read whole */
    char *paste;
    size_t paste_len, paste_size;
    bool paste_ready, paste_too_big;
    /* a question waiting for its one-key answer */
    s_ask_t ask;
    char *ask_line;
    /* the bell, and the focus the terminal reported (CSI I / CSI O) */
    sc_term_bell_t bell;
    bool unfocused;
    /* the line just typed, still on screen above the new prompt */
    bool echo_live;
    size_t echo_rows;
    /* timestamps */
    struct tm last_stamp;
    bool stamped;
    /* names for Tab: the user's own, and the others seen online */
    char own[SC_NAME_MAX + 1];
    char names[S_NAMES_MAX][SC_NAME_MAX + 1];
    size_t names_count;
    /* the latest own lines of the chat, for delivery receipts */
    char sent[S_SENT_RING][S_EXCERPT + 4];
    uint64_t sent_count, acked;
};

/* libedit's callbacks take no argument. */
static sc_term_t *s_term;

/* ---- Widths, pieces and dates --------------------------------------------- */

size_t
sc_term_width (const char *text, size_t len)
{
    size_t width = 0;
    mbstate_t state;
    memset (&state, 0, sizeof state);
    while (len > 0 && *text) {
        wchar_t wc;
        size_t n = mbrtowc (&wc, text, len, &state);
        if (n == (size_t) -1 || n == (size_t) -2 || n == 0) {
            memset (&state, 0, sizeof state);
            width++;                    /* shown as one replacement cell  */
            n = 1;
        }
        else {
            int w = wcwidth (wc);
            width += w > 0 ? (size_t) w : 0;
        }
        text += n;
        len -= n;
    }
    return width;
}

/* The code point of the UTF-8 character at text (valid), and its length. */
static uint32_t
s_code_point (const unsigned char *text, size_t len, size_t *n)
{
    uint32_t c = text[0];
    size_t need = c < 0x80 ? 1 : c < 0xe0 ? 2 : c < 0xf0 ? 3 : 4;
    if (need > len)
        need = len;
    if (need > 1)
        c &= 0x3fu >> (need - 1);
    for (size_t i = 1; i < need; i++)
        c = c << 6 | (text[i] & 0x3fu);
    *n = need;
    return c;
}

size_t
sc_term_split (const char *text, size_t len, size_t max)
{
    if (len <= max)
        return len;
    const unsigned char *t = (const unsigned char *) text;
    size_t cut = max;
    while (cut > 0 && (t[cut] & 0xc0) == 0x80)
        cut--;                          /* not inside a character         */
    size_t at = cut;
    /* not before a combining mark (zero width): back up over the marks
       and the character they sit on, unless they fill the piece */
    while (at > 0) {
        size_t n;
        uint32_t c = s_code_point (t + at, len - at, &n);
        if (c < 0x300 || wcwidth ((wchar_t) c) != 0)
            break;
        do
            at--;
        while (at > 0 && (t[at] & 0xc0) == 0x80);
    }
    return at > 0 ? at : cut > 0 ? cut : max;
}

int
sc_term_day_line (const struct tm *last, const struct tm *now, char *buf, size_t size)
{
    if (last && last->tm_year == now->tm_year && last->tm_yday == now->tm_yday)
        return 0;
    char date[64];
    if (strftime (date, sizeof date, "%a %Y-%m-%d", now) == 0)
        snprintf (date, sizeof date, "%04d-%02d-%02d", now->tm_year + 1900,
                  now->tm_mon + 1, now->tm_mday);
    snprintf (buf, size, "-- %s", date);
    return 1;
}

/* ---- Drawing ----------------------------------------------------------------- */

static size_t
s_columns (void)
{
    int cols = 0;
    rl_get_screen_size (NULL, &cols);
    return cols > 0 ? (size_t) cols : 80;
}

/* Move to the start of the prompt and clear the input area. */
static void
s_clear_input (sc_term_t *self)
{
    size_t point = !self->fresh && rl_point > 0 && rl_line_buffer ? (size_t) rl_point : 0;
    size_t width = sc_term_width (self->prompt, strlen (self->prompt))
                 + (point ? sc_term_width (rl_line_buffer, point) : 0);
    size_t rows = width / s_columns ();
    fputs ("\r", stdout);
    if (rows > 0)
        printf ("\033[%zuA", rows);
    fputs ("\033[J", stdout);
}

static void
s_modes (sc_term_t *self, bool on)
{
    /* bracketed paste and focus reports */
    if (self->color)
        fputs (on ? "\033[?2004h\033[?1004h" : "\033[?1004l\033[?2004l", stdout);
}

/* ---- Input: bytes before libedit ------------------------------------------------ */

/* At least n bytes from in_pos, waiting up to wait_ms (-1: as long as
   it takes) for more. False on a timeout, a signal or the end. */
static bool
s_have (sc_term_t *self, size_t n, int wait_ms)
{
    while (self->in_len - self->in_pos < n) {
        if (self->in_pos > 0) {
            size_t keep = self->in_len - self->in_pos;
            memmove (self->in, self->in + self->in_pos, keep);
            sc_wipe (self->in + keep, self->in_len - keep);
            self->in_len = keep;
            self->in_pos = 0;
        }
        if (self->eof || self->in_len == sizeof self->in)
            return false;
        struct pollfd pfd = { .fd = STDIN_FILENO, .events = POLLIN };
        if (poll (&pfd, 1, wait_ms) <= 0)
            return false;
        ssize_t got = read (STDIN_FILENO, self->in + self->in_len,
                            sizeof self->in - self->in_len);
        if (got < 0 && (errno == EINTR || errno == EAGAIN))
            return false;
        if (got <= 0) {
            self->eof = true;
            return false;
        }
        self->in_len += (size_t) got;
    }
    return true;
}

static bool
s_starts (const sc_term_t *self, const char *seq)
{
    size_t len = strlen (seq);
    return self->in_len - self->in_pos >= len
        && memcmp (self->in + self->in_pos, seq, len) == 0;
}

static void
s_paste_add (sc_term_t *self, const unsigned char *data, size_t len)
{
    if (self->paste_too_big || len == 0)
        return;
    if (self->paste_len + len > S_PASTE_MAX) {
        self->paste_too_big = true;
        return;
    }
    if (self->paste_len + len + 1 > self->paste_size) {
        size_t size = self->paste_size ? self->paste_size : 4096;
        while (size < self->paste_len + len + 1)
            size *= 2;
        char *bigger = malloc (size);
        if (!bigger) {
            self->paste_too_big = true;
            return;
        }
        if (self->paste) {
            memcpy (bigger, self->paste, self->paste_len);
            sc_wipe (self->paste, self->paste_size);
            free (self->paste);
        }
        self->paste = bigger;
        self->paste_size = size;
    }
    memcpy (self->paste + self->paste_len, data, len);
    self->paste_len += len;
    self->paste[self->paste_len] = 0;
}

static void
s_paste_free (sc_term_t *self)
{
    if (self->paste) {
        sc_wipe (self->paste, self->paste_size);
        free (self->paste);
    }
    self->paste = NULL;
    self->paste_len = self->paste_size = 0;
    self->paste_ready = self->paste_too_big = false;
}

/* After CSI 200~: everything up to CSI 201~ is the paste. */
static void
s_read_paste (sc_term_t *self)
{
    static const char end[] = "\033[201~";
    const size_t end_len = sizeof end - 1;
    s_paste_free (self);
    while (true) {
        const unsigned char *at = self->in + self->in_pos;
        size_t avail = self->in_len - self->in_pos;
        size_t hit = avail;
        for (size_t i = 0; i + end_len <= avail; i++)
            if (memcmp (at + i, end, end_len) == 0) {
                hit = i;
                break;
            }
        if (hit < avail) {
            s_paste_add (self, at, hit);
            self->in_pos += hit + end_len;
            break;
        }
        /* keep what could be the start of the end marker */
        size_t take = avail >= end_len ? avail - (end_len - 1) : 0;
        s_paste_add (self, at, take);
        self->in_pos += take;
        if (!s_have (self, self->in_len - self->in_pos + 1, S_PASTE_WAIT_MS)) {
            /* the end marker never came: what came is the paste */
            s_paste_add (self, self->in + self->in_pos, self->in_len - self->in_pos);
            self->in_pos = self->in_len;
            break;
        }
    }
    self->paste_ready = true;
}

static int64_t
s_now_ms (void)
{
    struct timespec ts;
    clock_gettime (CLOCK_MONOTONIC, &ts);
    return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The length of the escape sequence at in_pos: the key sequence a
   terminal sends (CSI: ESC [ parameters final; SS3: ESC O x; Alt and a
   key: ESC x). 0 while it is not whole; -1 (with *cut, the bytes that
   came of it) when it is an ESC alone or cut by another byte. */
static int
s_escape_len (const sc_term_t *self, size_t *cut)
{
    const unsigned char *t = self->in + self->in_pos;
    size_t avail = self->in_len - self->in_pos;
    *cut = 1;
    if (avail < 2)
        return 0;
    if (t[1] == 0x1b)
        return -1;                      /* ESC ESC: the first is alone    */
    if (t[1] == 'O')
        return avail < 3 ? 0 : 3;
    if (t[1] != '[')
        return 2;                       /* Alt and a key                  */
    for (size_t i = 2; i < avail; i++) {
        if (t[i] >= 0x40 && t[i] <= 0x7e)
            return (int) i + 1;         /* the final byte                 */
        if (t[i] < 0x20 || t[i] > 0x3f || i + 1 >= S_ESC_SEQ_MAX) {
            *cut = i;
            return -1;                  /* not a sequence a key sends     */
        }
    }
    return 0;
}

/* ESC at in_pos, with what came so far (never waiting: the caller's
   loop goes on serving the socket). A focus report or a paste is taken
   out; a whole key sequence is left for libedit. An ESC alone would make
   libedit wait for the next key inside its call, and so would a CSI or
   SS3 cut short: when the rest has not come S_ESC_KEY_MS after the ESC,
   what came is dropped, as a terminal does; until then it is kept. Not
   first: the key libedit waits for within a command (after ^V), given
   as it is. */
static s_esc_t
s_escape (sc_term_t *self, bool first)
{
    (void) s_have (self, S_ESC_SEQ_MAX, 0);
    size_t cut = 1;
    int len = s_escape_len (self, &cut);
    if (len <= 0 && !first)
        return S_ESC_KEY;
    if (len == 0) {
        int64_t now = s_now_ms ();
        if (!self->esc_since)
            self->esc_since = now;
        if (now - self->esc_since < S_ESC_KEY_MS && !self->eof
            && self->in_len < sizeof self->in)
            return S_ESC_WAIT;
        cut = self->in_len - self->in_pos;
    }
    self->esc_since = 0;
    if (len <= 0) {
        self->in_pos += cut;
        return S_ESC_DROPPED;
    }
    if (s_starts (self, "\033[I") || s_starts (self, "\033[O")) {
        self->unfocused = self->in[self->in_pos + 2] == 'O';
        self->in_pos += 3;
        return S_ESC_TAKEN;
    }
    if (s_starts (self, "\033[200~")) {
        self->in_pos += 6;
        s_read_paste (self);
        return S_ESC_TAKEN;
    }
    return S_ESC_KEY;
}

/* Milliseconds until an ESC kept for its rest is judged alone, or -1. */
int
sc_term_timeout (const sc_term_t *self)
{
    if (!self || !self->esc_since)
        return -1;
    int64_t left = self->esc_since + S_ESC_KEY_MS - s_now_ms ();
    return left > 0 ? (int) left : 0;
}

/* The next UTF-8 character at in_pos, consumed; U+FFFD for bytes that
   are not one. */
static int
s_utf8_char (sc_term_t *self)
{
    unsigned char c = self->in[self->in_pos];
    size_t need = c < 0x80 ? 1 : c >= 0xc2 && c <= 0xdf ? 2
                : c >= 0xe0 && c <= 0xef ? 3 : c >= 0xf0 && c <= 0xf4 ? 4 : 0;
    if (need == 0) {
        self->in_pos++;
        return 0xfffd;
    }
    s_have (self, need, S_ESC_WAIT_MS);
    const unsigned char *t = self->in + self->in_pos;
    size_t avail = self->in_len - self->in_pos;
    size_t ok = 1;
    while (ok < need && ok < avail && (t[ok] & 0xc0) == 0x80)
        ok++;
    if (ok < need) {
        self->in_pos += ok;
        return 0xfffd;
    }
    size_t n;
    uint32_t cp = s_code_point (t, need, &n);
    self->in_pos += n;
    bool overlong = (need == 3 && cp < 0x800) || (need == 4 && cp < 0x10000);
    if (overlong || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
        return 0xfffd;
    return (int) cp;
}

static int s_getc_key (sc_term_t *self);

/* libedit's getc: one character, as a code point; -1 at the end. */
static int
s_getc (FILE *stream)
{
    (void) stream;
    sc_term_t *self = s_term;
    if (!self)
        return -1;
    int key = s_getc_key (self);
    self->first = false;
    self->noop = key == S_NOOP;
    return key;
}

static int
s_getc_key (sc_term_t *self)
{
    while (true) {
        if (self->paste_ready)
            return S_NOOP;              /* handled once libedit returns   */
        /* Nothing there: libedit asks for one more key within one
           command (after a key sequence it does not know, or Alt and a
           digit). Waiting here would stop the loop: a no-op ends it. */
        if (!s_have (self, 1, 0))
            return self->eof ? -1 : S_NOOP;
        unsigned char c = self->in[self->in_pos];
        s_esc_t esc = c == 0x1b ? s_escape (self, self->first) : S_ESC_KEY;
        /* ^V (quoted insert) and ^X (a prefix) go with the key after them */
        if (esc == S_ESC_WAIT
            || (self->first && (c == 0x16 || c == 0x18) && !s_have (self, 2, 0))) {
            self->held = true;
            return S_NOOP;
        }
        if (esc != S_ESC_KEY) {
            if (self->paste_ready || self->in_pos == self->in_len)
                return S_NOOP;
            continue;
        }
        int ch = s_utf8_char (self);
        size_t used = self->fresh || rl_end < 0 ? 0 : (size_t) rl_end;
        if (ch >= 0x20 && ch != 0x7f && used + 4 > S_EDIT_MAX) {
            /* the line is full: refused with the bell (paste longer text) */
            sc_term_bell (self);
            self->full = true;
            return S_NOOP;
        }
        return ch;
    }
}

/* ---- Lines ------------------------------------------------------------------- */

static void
s_on_line (char *line)
{
    sc_term_t *self = s_term;
    size_t len = line ? strlen (line) : 0;
    if (self) {
        self->in_line = true;
        self->got_line = true;
        self->fresh = true;
        self->full_said = false;
        /* Commands only: message text is not kept in memory for later. */
        if (len > 1 && line[0] == '/' && line[1] != '/')
            add_history (line);
        /* rows of the typed line left on screen above the new prompt */
        size_t width = sc_term_width (self->prompt, strlen (self->prompt))
                     + (line ? sc_term_width (line, len) : 0);
        size_t cols = s_columns ();
        self->echo_rows = width ? (width + cols - 1) / cols : 1;
        self->echo_live = line != NULL;
        self->on_line (self->arg, line, len);
        self->echo_live = false;
        self->in_line = false;
    }
    if (line) {
        sc_wipe (line, len);
        free (line);
    }
}

/* A line given to the caller as if typed (a confirmed paste, an
   answered question): the input line is on screen, not an echo. */
static void
s_deliver (sc_term_t *self, const char *line, size_t len)
{
    self->on_line (self->arg, line, len);
}

/* ---- Names for Tab ---------------------------------------------------------------- */

static const char *const s_commands[] = {
    "/list", "/talk", "/accept", "/refuse", "/leave", "/quit",
    "/fingerprint", "/trust", "/verify", "/help", NULL
};

static void
s_name_add (sc_term_t *self, const char *name)
{
    if (!name || !sc_name_valid (name, strlen (name)) || strcmp (name, self->own) == 0)
        return;
    for (size_t i = 0; i < self->names_count; i++)
        if (strcmp (self->names[i], name) == 0)
            return;
    if (self->names_count == S_NAMES_MAX) {
        /* the oldest goes */
        memmove (self->names[0], self->names[1], (S_NAMES_MAX - 1) * sizeof self->names[0]);
        self->names_count--;
    }
    snprintf (self->names[self->names_count++], sizeof self->names[0], "%s", name);
}

static void
s_name_remove (sc_term_t *self, const char *name)
{
    for (size_t i = 0; name && i < self->names_count; i++)
        if (strcmp (self->names[i], name) == 0) {
            memmove (self->names[i], self->names[i + 1],
                     (self->names_count - i - 1) * sizeof self->names[0]);
            self->names_count--;
            return;
        }
}

/* A /list answer: exactly these are online now. */
static void
s_names_set (sc_term_t *self, const char *list)
{
    self->names_count = 0;
    while (list && *list) {
        const char *end = strchr (list, ' ');
        size_t len = end ? (size_t) (end - list) : strlen (list);
        if (len > 0 && len <= SC_NAME_MAX) {
            char name[SC_NAME_MAX + 1];
            memcpy (name, list, len);
            name[len] = 0;
            s_name_add (self, name);
        }
        list = end ? end + 1 : NULL;
    }
}

static size_t s_match_next;

static char *
s_match_command (const char *text, int state)
{
    if (state == 0)
        s_match_next = 0;
    size_t len = strlen (text);
    while (s_commands[s_match_next]) {
        const char *command = s_commands[s_match_next++];
        if (strncmp (command, text, len) == 0)
            return strdup (command);
    }
    return NULL;
}

static char *
s_match_name (const char *text, int state)
{
    sc_term_t *self = s_term;
    if (state == 0)
        s_match_next = 0;
    size_t len = strlen (text);
    while (self && s_match_next < self->names_count) {
        const char *name = self->names[s_match_next++];
        if (strncmp (name, text, len) == 0)
            return strdup (name);
    }
    return NULL;
}

/* Never a file name. */
static char *
s_match_nothing (const char *text, int state)
{
    (void) text;
    (void) state;
    return NULL;
}

/* A command at the start of the line, else a name (after /talk, or in
   a message). */
static char **
s_complete (const char *text, int start, int end)
{
    (void) end;
    rl_attempted_completion_over = 1;
    if (start == 0 && text[0] == '/')
        return rl_completion_matches (text, s_match_command);
    return rl_completion_matches (text, s_match_name);
}

/* ---- Life --------------------------------------------------------------------------- */

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
    self->fresh = true;
    self->bell = SC_TERM_BELL_REQUESTS;
    const char *term = getenv ("TERM");
    self->color = isatty (STDOUT_FILENO) && term && strcmp (term, "dumb") != 0;
    s_term = self;
    rl_catch_signals = 0;
    rl_catch_sigwinch = 0;
    rl_readline_name = "secchat";
    rl_getc_function = s_getc;
    rl_attempted_completion_function = s_complete;
    rl_completion_entry_function = s_match_nothing;
    s_modes (self, true);
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
        s_modes (self, false);
        fflush (stdout);
        rl_callback_handler_remove ();
        clear_history ();
        s_paste_free (self);
        free (self->ask_line);
        free (self->prompt);
        sc_wipe (self, sizeof *self);
        free (self);
        s_term = NULL;
        *self_p = NULL;
    }
}

/* ---- Questions ------------------------------------------------------------------------- */

static void s_info (sc_term_t *self, const char *fmt, ...) __attribute__ ((format (printf, 2, 3)));

/* The lines of the paste (CR, LF or CRLF end a line), each not empty
   given as a message: one starting with '/' escaped, never a command.
   How many, and in *pieces how many messages they make. */
static size_t
s_paste_lines (sc_term_t *self, bool deliver, size_t *pieces)
{
    size_t count = 0;
    *pieces = 0;
    const char *p = self->paste, *end = self->paste + self->paste_len;
    while (p && p < end) {
        size_t len = 0;
        while (p + len < end && p[len] != '\n' && p[len] != '\r')
            len++;
        if (len > 0) {
            count++;
            for (size_t at = 0; at < len; (*pieces)++)
                at += sc_term_split (p + at, len - at, SC_TEXT_MAX);
            if (deliver) {
                char *line = malloc (len + 2);
                if (!line) {
                    s_info (self, "!! out of memory: the rest of the paste is not sent");
                    return count;
                }
                size_t at = p[0] == '/' ? 1 : 0;
                line[0] = '/';
                memcpy (line + at, p, len);
                line[at + len] = 0;
                s_deliver (self, line, at + len);
                sc_wipe (line, len + 2);
                free (line);
            }
        }
        p += len;
        if (p < end && p[0] == '\r' && p + 1 < end && p[1] == '\n')
            p++;
        if (p < end)
            p++;
    }
    return count;
}

static void
s_paste_handle (sc_term_t *self)
{
    if (self->paste_too_big) {
        sc_term_print (self, SC_TERM_ERROR, "!! a paste of more than 1 MiB: nothing of it sent");
        s_paste_free (self);
        return;
    }
    self->paste_ready = false;
    if (!self->paste_len) {
        s_paste_free (self);
        return;
    }
    size_t used = self->fresh || rl_end < 0 ? 0 : (size_t) rl_end;
    if (!memchr (self->paste, '\n', self->paste_len)
        && !memchr (self->paste, '\r', self->paste_len)
        && used + self->paste_len <= S_EDIT_MAX) {
        /* one line: into the line, to edit and send with Enter */
        if (!self->in_line)
            s_clear_input (self);
        rl_insert_text (self->paste);
        self->fresh = false;
        fflush (stdout);
        rl_forced_update_display ();
        s_paste_free (self);
        return;
    }
    size_t pieces = 0;
    size_t lines = s_paste_lines (self, false, &pieces);
    if (lines == 0) {
        s_paste_free (self);
        return;
    }
    self->ask = S_ASK_PASTE;
    s_info (self, "-- you pasted %zu line%s%s: send %s as %zu message%s? [y/N]",
            lines, lines == 1 ? "" : "s", pieces > lines ? ", some long" : "",
            lines == 1 ? "it" : "them", pieces, pieces == 1 ? "" : "s");
}

static void
s_answer_paste (sc_term_t *self, bool yes)
{
    self->ask = S_ASK_NONE;
    size_t pieces;
    if (yes)
        s_paste_lines (self, true, &pieces);
    else
        s_info (self, "-- paste cancelled: nothing of it sent");
    s_paste_free (self);
}

static void
s_answer_confirm (sc_term_t *self, bool yes)
{
    self->ask = S_ASK_NONE;
    char *line = self->ask_line;
    self->ask_line = NULL;
    if (yes && line)
        s_deliver (self, line, strlen (line));
    else
        s_info (self, "-- cancelled");
    free (line);
}

/* One key answers the question: y or Y is yes. A focus report is no
   key; a paste is a no (and is dropped). */
static void
s_answer (sc_term_t *self)
{
    unsigned char c = self->in[self->in_pos];
    s_esc_t esc = c == 0x1b ? s_escape (self, true) : S_ESC_KEY;
    if (esc == S_ESC_WAIT) {
        self->held = true;
        return;
    }
    if (esc == S_ESC_TAKEN && !self->paste_ready)
        return;
    if (self->paste_ready) {
        s_paste_free (self);
        s_info (self, "-- a paste is no answer: nothing of it sent");
    }
    else
    if (c == 0x1b)
        self->in_pos = self->in_len;    /* a whole sequence is one no     */
    else
        s_utf8_char (self);
    bool yes = c == 'y' || c == 'Y';
    if (self->ask == S_ASK_PASTE)
        s_answer_paste (self, yes);
    else
        s_answer_confirm (self, yes);
}

void
sc_term_interrupt (sc_term_t *self, const char *question, const char *line)
{
    if (self->ask == S_ASK_CONFIRM)
        s_answer_confirm (self, true);
    else
    if (self->ask == S_ASK_PASTE)
        s_answer_paste (self, false);
    else
    if (!self->fresh && rl_end > 0) {
        /* ^A ^K, as if typed: the line is cleared (^Y yanks it back) */
        static const unsigned char keys[] = { 0x01, 0x0b };
        if (self->in_pos < sizeof keys) {
            if (self->in_len + sizeof keys > sizeof self->in)
                return;
            memmove (self->in + sizeof keys, self->in + self->in_pos,
                     self->in_len - self->in_pos);
            self->in_len = self->in_len - self->in_pos + sizeof keys;
            self->in_pos = sizeof keys;
        }
        self->in_pos -= sizeof keys;
        memcpy (self->in + self->in_pos, keys, sizeof keys);
        for (size_t i = 0; i < sizeof keys; i++)
            rl_callback_read_char ();
        self->fresh = true;
    }
    else {
        free (self->ask_line);
        self->ask_line = line ? strdup (line) : NULL;
        if (!self->ask_line)
            return;
        self->ask = S_ASK_CONFIRM;
        s_info (self, "-- %s [y/N]", question);
    }
}

void
sc_term_read (sc_term_t *self)
{
    /* what is there now, after any ESC kept for its rest */
    size_t kept = self->in_len - self->in_pos;
    if (!s_have (self, kept + 1, 0) && kept == 0) {
        /* Readable with nothing to read: the terminal hung up. */
        if (self->eof)
            self->on_line (self->arg, NULL, 0);
        return;
    }
    self->held = false;
    while (s_term == self && self->in_pos < self->in_len && !self->held) {
        if (self->ask != S_ASK_NONE) {
            s_answer (self);
            continue;
        }
        self->got_line = false;
        self->first = true;
        rl_callback_read_char ();
        if (s_term != self)
            return;
        if (self->got_line)
            rl_callback_handler_install (self->prompt, s_on_line);
        else
        if (!self->noop)
            /* (after S_NOOP, libedit's rl_end is the last line's) */
            self->fresh = rl_end <= 0;
        if (self->paste_ready)
            s_paste_handle (self);
        if (self->full && !self->full_said)
            s_info (self, "-- the line is full (%d bytes): Enter sends it; paste "
                    "longer text", S_EDIT_MAX);
        self->full_said |= self->full;
        self->full = false;
    }
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
        case SC_TERM_OWN:    return "\033[1;36m";
        case SC_TERM_ERROR:  return "\033[31m";
        case SC_TERM_ALARM:  return "\033[1;7;31m";
        default:             return "";
    }
}

/* One line: for a message only the "<name>" part is styled. */
static void
s_print_line (sc_term_t *self, sc_term_style_t style, const char *stamp,
              const char *line, size_t len)
{
    if (stamp)
        printf (self->color ? "\033[2m%s\033[0m " : "%s ", stamp);
    size_t styled = len;
    if (style == SC_TERM_PEER || style == SC_TERM_OWN) {
        const char *close = len && line[0] == '<' ? memchr (line, '>', len) : NULL;
        styled = close ? (size_t) (close - line) + 1 : 0;
    }
    if (self->color && style != SC_TERM_PLAIN && styled > 0)
        printf ("%s%.*s\033[0m", s_style_on (style), (int) styled, line);
    else
        styled = 0;
    printf ("%.*s\r\n", (int) (len - styled), line + styled);
}

static void
s_print (sc_term_t *self, sc_term_style_t style, const char *text, bool stamped)
{
    char stamp[16] = "", day[80];
    bool dated = false;
    if (stamped) {
        time_t now = time (NULL);
        struct tm tm;
        if (localtime_r (&now, &tm)) {
            dated = sc_term_day_line (self->stamped ? &self->last_stamp : NULL, &tm,
                                      day, sizeof day) == 1;
            self->last_stamp = tm;
            self->stamped = true;
            snprintf (stamp, sizeof stamp, "%02d:%02d", tm.tm_hour, tm.tm_min);
        }
    }
    if (!self->in_line)
        s_clear_input (self);
    self->echo_live = false;
    if (dated)
        s_print_line (self, SC_TERM_INFO, NULL, day, strlen (day));
    while (text && *text) {
        const char *nl = strchr (text, '\n');
        size_t len = nl ? (size_t) (nl - text) : strlen (text);
        s_print_line (self, style, stamp[0] ? stamp : NULL, text, len);
        text += len + (nl ? 1 : 0);
    }
    fflush (stdout);
    if (!self->in_line)
        rl_forced_update_display ();
}

void
sc_term_print (sc_term_t *self, sc_term_style_t style, const char *text)
{
    s_print (self, style, text, true);
}

void
sc_term_bell (sc_term_t *self)
{
    if (self->bell == SC_TERM_BELL_OFF)
        return;
    fputs ("\a", stdout);
    fflush (stdout);
}

void
sc_term_set_bell (sc_term_t *self, sc_term_bell_t bell)
{
    self->bell = bell;
}

int
sc_term_bell_parse (const char *text, sc_term_bell_t *bell)
{
    if (!text)
        return -1;
    if (strcmp (text, "requests") == 0)
        *bell = SC_TERM_BELL_REQUESTS;
    else if (strcmp (text, "messages") == 0)
        *bell = SC_TERM_BELL_MESSAGES;
    else if (strcmp (text, "off") == 0)
        *bell = SC_TERM_BELL_OFF;
    else
        return -1;
    return 0;
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
    rl_prep_terminal (0);
    s_modes (self, true);
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
s_info (sc_term_t *self, const char *fmt, ...)
{
    char text[1024];
    va_list ap;
    va_start (ap, fmt);
    vsnprintf (text, sizeof text, fmt, ap);
    va_end (ap);
    s_print (self, SC_TERM_INFO, text, true);
}

static void
s_stamped (sc_term_t *self, sc_term_style_t style, const char *text)
{
    s_print (self, style, text, true);
}

static void
s_show_users (sc_term_t *self, const sc_event_t *ev)
{
    s_names_set (self, ev->text);
    if (!ev->text || !ev->text[0]) {
        s_info (self, "-- nobody else is online");
        return;
    }
    size_t len = strlen (ev->text) + 32;
    char *text = malloc (len);
    if (text) {
        snprintf (text, len, "-- online: %s%s", ev->text,
                  ev->number ? " (and more)" : "");
        s_stamped (self, SC_TERM_INFO, text);
        free (text);
    }
}

/* "<name> text", the text with control characters shown as '?'. */
static void
s_show_said (sc_term_t *self, sc_term_style_t style, const char *name, const char *text)
{
    size_t text_len = strlen (text ? text : "");
    size_t len = strlen (name ? name : "?") + 2 * text_len + 4;
    char *line = malloc (len);
    if (line) {
        int head = snprintf (line, len, "<%s> ", name ? name : "?");
        if (head > 0 && (size_t) head < len)
            sc_client_sanitize (text ? text : "", text_len, line + head);
        s_stamped (self, style, line);
        sc_wipe (line, len);
        free (line);
    }
}

static void
s_show_message (sc_term_t *self, const sc_event_t *ev)
{
    s_name_add (self, ev->name);
    s_show_said (self, SC_TERM_PEER, ev->name, ev->text);
    if (self->bell == SC_TERM_BELL_MESSAGES
        || (self->bell == SC_TERM_BELL_REQUESTS && self->unfocused))
        sc_term_bell (self);
}

/* An own line went out: it takes the place of its echo when that is
   still just above the prompt. */
static void
s_show_sent (sc_term_t *self, const sc_event_t *ev)
{
    if (self->echo_live && self->in_line) {
        printf ("\r\033[%zuA\033[J", self->echo_rows);
        self->echo_live = false;
    }
    s_show_said (self, SC_TERM_OWN, self->own[0] ? self->own : NULL, ev->text);
    /* an excerpt, for the receipt */
    char *slot = self->sent[(ev->number - 1) % S_SENT_RING];
    size_t len = strlen (ev->text ? ev->text : "");
    size_t cut = sc_term_split (ev->text ? ev->text : "", len, S_EXCERPT);
    sc_client_sanitize (ev->text ? ev->text : "", cut, slot);
    if (cut < len)
        strcat (slot, "...");
    self->sent_count = ev->number;
}

/* The peer confirmed own lines up to number N: which ones, by the text
   of the last (when it is still remembered). */
static void
s_show_acked (sc_term_t *self, const sc_event_t *ev)
{
    uint64_t n = ev->number, newly = n > self->acked ? n - self->acked : 0;
    self->acked = n;
    if (n == 0 || n > self->sent_count || self->sent_count - n >= S_SENT_RING) {
        s_info (self, "-- delivered: %s has your first %llu message%s", ev->name,
                (unsigned long long) n, n == 1 ? "" : "s");
        return;
    }
    const char *last = self->sent[(n - 1) % S_SENT_RING];
    if (newly <= 1)
        s_info (self, "-- delivered to %s: \"%s\"", ev->name, last);
    else
        s_info (self, "-- delivered to %s: \"%s\" and the %llu before it", ev->name,
                last, (unsigned long long) (newly - 1));
}

static void
s_chat_over (sc_term_t *self)
{
    sc_wipe (self->sent, sizeof self->sent);
    self->sent_count = self->acked = 0;
}

/* Own lines never confirmed: which ones, so the user can send them again. */
static void
s_show_unacked (sc_term_t *self, const sc_event_t *ev)
{
    char head[128];
    snprintf (head, sizeof head, "!! %llu of your messages to %s %s never confirmed%s",
              (unsigned long long) ev->number, ev->name,
              ev->number == 1 ? "was" : "were", ev->text ? ":" : "");
    s_stamped (self, SC_TERM_ERROR, head);
    const char *line = ev->text;
    while (line) {
        const char *end = strchr (line, '\n');
        size_t len = end ? (size_t) (end - line) : strlen (line);
        size_t size = len + 8;
        char *shown = malloc (size);
        if (shown) {
            snprintf (shown, size, "!!   %.*s", (int) len, line);
            s_stamped (self, SC_TERM_ERROR, shown);
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
    s_stamped (self, alarm ? SC_TERM_ALARM : SC_TERM_ERROR, text);
    if (alarm)
        sc_term_bell (self);
}

void
sc_term_event (sc_term_t *self, const sc_event_t *ev)
{
    switch (ev->type) {
        case SC_EV_READY:
            snprintf (self->own, sizeof self->own, "%s", ev->name ? ev->name : "");
            s_info (self, "-- logged in as %s; /help lists the commands", ev->name);
            break;
        case SC_EV_USERS:       s_show_users (self, ev); break;
        case SC_EV_REQUEST:
            s_name_add (self, ev->name);
            s_info (self, "-- %s wants to talk: /accept or /refuse", ev->name);
            sc_term_bell (self);
            break;
        case SC_EV_ACCEPTED:
            s_name_add (self, ev->name);
            s_info (self, "-- %s accepted; securing the chat...", ev->name);
            break;
        case SC_EV_REFUSED:
            s_name_add (self, ev->name);
            s_info (self, "-- %s refused", ev->name);
            break;
        case SC_EV_BUSY:
            s_name_add (self, ev->name);
            s_info (self, "-- %s is busy (in a chat, or asked by someone): try later",
                    ev->name);
            break;
        case SC_EV_NOT_FOUND:
            s_name_remove (self, ev->name);
            s_info (self, "-- %s is not online (or not a user)", ev->name);
            break;
        case SC_EV_MISSED:
            s_info (self, "-- %s wanted to talk (you were busy)", ev->name);
            break;
        case SC_EV_CHAT:
            s_name_add (self, ev->name);
            s_chat_over (self);
            s_info (self, "-- end-to-end encrypted chat with %s\n-- safety number %s\n"
                    "-- compare it with %s by another channel (voice, in person)",
                    ev->name, ev->safety, ev->name);
            break;
        case SC_EV_MSG:         s_show_message (self, ev); break;
        case SC_EV_SENT:        s_show_sent (self, ev); break;
        case SC_EV_CLOSED:
            s_chat_over (self);
            s_info (self, "-- chat with %s closed", ev->name);
            break;
        case SC_EV_LOST:
            s_info (self, "-- %llu message%s from %s never arrived",
                    (unsigned long long) ev->number, ev->number == 1 ? "" : "s",
                    ev->name);
            break;
        case SC_EV_ACKED:       s_show_acked (self, ev); break;
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
        case SC_EV_HELP:        s_print (self, SC_TERM_PLAIN, ev->text, false); break;
        case SC_EV_NOTICE:      s_info (self, "-- note: %s", ev->text); break;
        case SC_EV_LOGIN_FAILED:
            break;              /* the caller says it on standard error */
    }
}
