/*  test_terminal: secchat on a terminal, as a person uses it.

    Each test starts bin/secbroker, one secchat on a pseudo-terminal (the
    test is the terminal: it types into the master side and reads all
    that secchat draws) and peers in batch mode, whose event lines tell
    exactly what went over the wire. Keys go in as a terminal sends
    them: UTF-8, escape sequences for the cursor keys, bracketed paste
    and focus reports; Ctrl-C through the terminal's line discipline
    (SIGINT). The screen is checked both raw (escape sequences, the
    bell) and with the escape sequences taken out (what a person reads).

    The pure helpers of sc_term (widths, pieces, date lines) are tested
    on their own at the end.

    Run from the repository root with SC_BIN_DIR set, as `make check`
    does; SC_TEST_FILTER=GLOB runs only the matching tests.

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at https://mozilla.org/MPL/2.0/.
*/
#define _GNU_SOURCE                 //  posix_openpt, ptsname, memmem
#include "sc_testproc.h"
#include "sc_term.h"

#include <fcntl.h>
#include <locale.h>
#include <poll.h>
#include <regex.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#define T_LINE      sc_testproc_timeout (10000)
#define T_QUIET     sc_testproc_timeout (700)

static char *g_root;
static char *g_keys;
static int g_test_no;
static char *g_work;
static sc_testproc_t *g_broker;
static char g_endpoint [256];

//  ---------------------------------------------------------------------
//  The terminal

typedef struct {
    pid_t pid;
    int master;
    char raw [1 << 20];         //  all it wrote, escape sequences and all
    size_t len;
    char plain [1 << 20];       //  the same without escape sequences, CR, BEL
    size_t plain_len;
    int esc;                    //  state of the escape sequence filter
    size_t mark;                //  raw offset where the current wait began
    int status;
    int exited;
} tty_t;

//  The escape sequences (CSI ... final, ESC x) and CR out of the plain view.
static void
s_plain_add (tty_t *t, const char *data, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char) data [i];
        if (t->esc == 1) {
            t->esc = c == '[' ? 2 : 0;
            continue;
        }
        if (t->esc == 2) {
            if (c >= 0x40 && c <= 0x7e)
                t->esc = 0;
            continue;
        }
        if (c == 0x1b) {
            t->esc = 1;
            continue;
        }
        if (c == '\r' || c == '\a' || c == '\b')
            continue;
        if (t->plain_len < sizeof t->plain - 1)
            t->plain [t->plain_len++] = (char) c;
    }
    t->plain [t->plain_len] = 0;
}

//  Reads what secchat wrote for up to wait_ms; false when nothing came.
static int
s_tty_pump (tty_t *t, int wait_ms)
{
    struct pollfd pfd = { t->master, POLLIN, 0 };
    if (poll (&pfd, 1, wait_ms) <= 0)
        return 0;
    if (t->len >= sizeof t->raw - 1)
        return 0;
    ssize_t n = read (t->master, t->raw + t->len, sizeof t->raw - 1 - t->len);
    if (n <= 0)
        return 0;
    s_plain_add (t, t->raw + t->len, (size_t) n);
    t->len += (size_t) n;
    t->raw [t->len] = 0;
    return 1;
}

static void
s_tty_start_with (tty_t *t, const char *user, unsigned short cols,
                  const char *const extra [])
{
    memset (t, 0, sizeof *t);
    char bin [4096], cfg [512], key [512], pass [512], ca [512], cwd [512];
    char rel [512];
    snprintf (rel, sizeof rel, "%ssecchat", sc_testproc_bin_dir ());
    assert_non_null (realpath (rel, bin));
    snprintf (cfg, sizeof cfg, "%s/cfg-%s-tty", g_work, user);
    snprintf (key, sizeof key, "%s/clients/%s.key", g_keys, user);
    snprintf (pass, sizeof pass, "%s/clients/%s.pass", g_keys, user);
    snprintf (ca, sizeof ca, "%s/ca.pem", g_keys);
    //  its working directory has files Tab must never offer
    snprintf (cwd, sizeof cwd, "%s/cwd", g_work);
    mkdir (cwd, 0700);
    const char *argv [32] = { bin, "--endpoint", g_endpoint, "--user", user,
                              "--key", key, "--password-file", pass, "--ca", ca,
                              "--config-dir", cfg };
    size_t argc = 13;
    for (size_t i = 0; extra && extra [i] && argc < 31; i++)
        argv [argc++] = extra [i];
    argv [argc] = NULL;
    const char *const env [] = { "LANG", "LC_ALL", "LC_CTYPE", "TZ=UTC", NULL };
    sc_testtty_t tty = { .argv = argv, .env = env, .cwd = cwd, .rows = 40, .cols = cols };
    t->pid = sc_testproc_tty_start (&tty, &t->master);
    assert_true (t->pid > 0);
}

static void
s_tty_start (tty_t *t, const char *user)
{
    s_tty_start_with (t, user, 100, NULL);
}

static void s_tty_dump (tty_t *t)
{
    fprintf (stderr, "---- the terminal shows (escapes taken out):\n%s\n---- end\n", t->plain);
}

//  text appears on the plain screen after the current mark (0), or the
//  time runs out (-1).
static int
s_tty_wait (tty_t *t, const char *text, int timeout_ms)
{
    int64_t deadline = sc_testproc_now_ms () + timeout_ms;
    while (!strstr (t->plain + t->mark, text)) {
        int64_t left = deadline - sc_testproc_now_ms ();
        if (left <= 0)
            return -1;
        s_tty_pump (t, (int) left);
    }
    return 0;
}

#define SEE_TTY(t, text)    s_see_tty ((t), (text), __FILE__, __LINE__)

static void
s_see_tty (tty_t *t, const char *text, const char *file, int line)
{
    if (s_tty_wait (t, text, T_LINE) == 0) {
        const char *at = strstr (t->plain + t->mark, text);
        t->mark = (size_t) (at - t->plain) + strlen (text);
        return;
    }
    fprintf (stderr, "expected on the terminal: \"%s\"\n", text);
    s_tty_dump (t);
    sc_testproc_dump_all ();
    _fail (file, line);
}

//  A POSIX extended regular expression matches the plain screen (after
//  the mark) within the time: the match, in a static buffer.
#define SEE_TTY_RE(t, re)   s_see_tty_re ((t), (re), __FILE__, __LINE__)

static const char *
s_see_tty_re (tty_t *t, const char *pattern, const char *file, int line)
{
    static char found [4096];
    regex_t re;
    assert_int_equal (regcomp (&re, pattern, REG_EXTENDED | REG_NEWLINE), 0);
    int64_t deadline = sc_testproc_now_ms () + T_LINE;
    regmatch_t m;
    while (regexec (&re, t->plain + t->mark, 1, &m, 0) != 0) {
        int64_t left = deadline - sc_testproc_now_ms ();
        if (left <= 0) {
            regfree (&re);
            fprintf (stderr, "expected on the terminal: /%s/\n", pattern);
            s_tty_dump (t);
            sc_testproc_dump_all ();
            _fail (file, line);
        }
        s_tty_pump (t, (int) left);
    }
    regfree (&re);
    size_t len = (size_t) (m.rm_eo - m.rm_so);
    if (len >= sizeof found)
        len = sizeof found - 1;
    memcpy (found, t->plain + t->mark + m.rm_so, len);
    found [len] = 0;
    t->mark += (size_t) m.rm_eo;
    return found;
}

static void
s_tty_type (tty_t *t, const char *keys)
{
    size_t len = strlen (keys);
    assert_int_equal (write (t->master, keys, len), (ssize_t) len);
    //  one burst per call: let it be read before the next
    sc_testproc_sleep_ms (50);
}

//  Reads the screen until it has been quiet for quiet_ms.
static void
s_tty_settle (tty_t *t, int quiet_ms)
{
    while (s_tty_pump (t, quiet_ms))
        ;
}

//  The process ends within the time: its exit status, or -1.
static int
s_tty_exit (tty_t *t)
{
    if (t->exited)
        return t->status;
    int64_t deadline = sc_testproc_now_ms () + T_LINE;
    int status = 0;
    while (waitpid (t->pid, &status, WNOHANG) == 0) {
        if (sc_testproc_now_ms () > deadline)
            return -1;
        s_tty_pump (t, 50);
    }
    s_tty_pump (t, 0);
    t->exited = 1;
    t->status = WIFEXITED (status) ? WEXITSTATUS (status) : 256 + WTERMSIG (status);
    return t->status;
}

static void
s_tty_stop (tty_t *t)
{
    if (!t->exited) {
        kill (t->pid, SIGKILL);
        waitpid (t->pid, NULL, 0);
        t->exited = 1;
    }
    close (t->master);
}

//  ---------------------------------------------------------------------
//  Peers in batch mode

#define SEE(p, line)    assert_int_equal (sc_testproc_expect ((p), (line), T_LINE), 0)
#define SAY(p, line)    assert_int_equal (sc_testproc_send ((p), (line)), 0)
#define SEE_NOTHING(p)  assert_int_equal (sc_testproc_expect_none ((p), T_QUIET), 0)

static sc_testproc_t *
s_login (const char *user)
{
    sc_testclient_t c = { .keys = g_keys, .workdir = g_work, .endpoint = g_endpoint,
                          .user = user };
    sc_testproc_t *p = sc_testproc_client_new (&c);
    assert_non_null (p);
    char ready [64];
    snprintf (ready, sizeof ready, "ready %s", user);
    SEE (p, ready);
    return p;
}

//  alice on the terminal, bob in batch mode, in a chat.
static sc_testproc_t *
s_chat_with_bob (tty_t *alice)
{
    SEE_TTY (alice, "[idle]");
    sc_testproc_t *bob = s_login ("bob");
    s_tty_type (alice, "/talk bob\r");
    SEE (bob, "request alice");
    SAY (bob, "/accept");
    assert_non_null (sc_testproc_expect_prefix (bob, "chat alice ", T_LINE));
    SEE_TTY (alice, "[bob]>");
    return bob;
}

static void
s_quit_bob (sc_testproc_t *bob)
{
    SAY (bob, "/quit");
    assert_int_equal (sc_testproc_skip_to (bob, "bye", T_LINE), 0);
    assert_int_equal (sc_testproc_wait (bob, T_LINE), 0);
}

//  ---------------------------------------------------------------------
//  UTF-8

//  What is typed goes out byte for byte, wide characters edited in the
//  middle included; what comes in is shown byte for byte.
static void
test_utf8_both_ways (void **state)
{
    (void) state;
    tty_t *alice = calloc (1, sizeof *alice);
    s_tty_start (alice, "alice");
    sc_testproc_t *bob = s_chat_with_bob (alice);
    //  accents, a check mark, CJK, an emoji, a combining acute accent
    static const char text [] = "h\xc3\xa9llo w\xc3\xb6rld \xe2\x9c\x93 "
        "\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e \xf0\x9f\x8e\x89 cafe\xcc\x81";
    char line [256];
    snprintf (line, sizeof line, "%s\r", text);
    s_tty_type (alice, line);
    snprintf (line, sizeof line, "msg alice %s", text);
    SEE (bob, line);
    //  "a日本b", two to the left (before 本), then 語: the insertion lands
    //  between the two wide characters
    s_tty_type (alice, "a\xe6\x97\xa5\xe6\x9c\xac" "b");
    s_tty_type (alice, "\033[D\033[D");
    s_tty_type (alice, "\xe8\xaa\x9e\r");
    SEE (bob, "msg alice a\xe6\x97\xa5\xe8\xaa\x9e\xe6\x9c\xac" "b");
    //  Home, an emoji at the start, End, one more character
    s_tty_type (alice, "xy\033[H\xf0\x9f\x98\x80\033[Fz\r");
    SEE (bob, "msg alice \xf0\x9f\x98\x80xyz");
    //  a byte that is no UTF-8 is read as U+FFFD, the rest intact
    s_tty_type (alice, "ok\xff\xc3\xa9\r");
    SEE (bob, "msg alice ok\xef\xbf\xbd\xc3\xa9");
    //  received: shown intact after bob's name
    SAY (bob, "\xc3\xa0 bient\xc3\xb4t \xe4\xbd\xa0\xe5\xa5\xbd \xf0\x9f\x91\x8b a\xcc\x8a");
    SEE_TTY (alice, "<bob> \xc3\xa0 bient\xc3\xb4t \xe4\xbd\xa0\xe5\xa5\xbd "
                    "\xf0\x9f\x91\x8b a\xcc\x8a");
    s_tty_type (alice, "/quit\r");
    assert_int_equal (s_tty_exit (alice), 0);
    s_tty_stop (alice);
    free (alice);
    s_quit_bob (bob);
}

//  A line of wide characters that wraps: when a message comes in, the
//  input area is cleared from the prompt's row (one row up), not from
//  the cursor's, so nothing of it is left on the screen.
static void
test_wide_chars_redraw (void **state)
{
    (void) state;
    tty_t *alice = calloc (1, sizeof *alice);
    s_tty_start_with (alice, "alice", 20, NULL);
    sc_testproc_t *bob = s_chat_with_bob (alice);
    //  "[bob]> " is 7 columns, seven CJK characters 14: 21 > 20
    s_tty_type (alice, "\xe6\xbc\xa2\xe5\xad\x97\xe6\xbc\xa2\xe5\xad\x97"
                       "\xe6\xbc\xa2\xe5\xad\x97\xe6\xbc\xa2");
    s_tty_settle (alice, 200);
    size_t before = alice->len;
    SAY (bob, "ping");
    SEE_TTY (alice, "<bob> ping");
    s_tty_settle (alice, 200);
    const char *drawn = alice->raw + before;
    if (!strstr (drawn, "\r\033[1A\033[J")) {
        fprintf (stderr, "the input area was not cleared from the prompt's row:\n");
        for (const char *c = drawn; *c; c++)
            fprintf (stderr, (unsigned char) *c < 0x20 ? "\\x%02x" : "%c", *c);
        fprintf (stderr, "\n");
        fail ();
    }
    //  and the line is still there, whole
    s_tty_type (alice, "\r");
    SEE (bob, "msg alice \xe6\xbc\xa2\xe5\xad\x97\xe6\xbc\xa2\xe5\xad\x97"
              "\xe6\xbc\xa2\xe5\xad\x97\xe6\xbc\xa2");
    s_tty_type (alice, "/quit\r");
    assert_int_equal (s_tty_exit (alice), 0);
    s_tty_stop (alice);
    free (alice);
    s_quit_bob (bob);
}

//  ---------------------------------------------------------------------
//  Who said what, and when

static void
test_stamps_and_labels (void **state)
{
    (void) state;
    tty_t *alice = calloc (1, sizeof *alice);
    s_tty_start (alice, "alice");
    //  the first line is dated (the client runs with TZ=UTC)
    char date [64];
    time_t now = time (NULL);
    struct tm tm;
    gmtime_r (&now, &tm);
    strftime (date, sizeof date, "-- %a %Y-%m-%d", &tm);
    SEE_TTY (alice, date);
    SEE_TTY_RE (alice, "^[0-2][0-9]:[0-5][0-9] -- logged in as alice");
    sc_testproc_t *bob = s_chat_with_bob (alice);
    s_tty_type (alice, "hi\r");
    SEE (bob, "msg alice hi");
    //  the own line, labelled with the own name, in place of the echo
    SEE_TTY_RE (alice, "\n[0-2][0-9]:[0-5][0-9] <alice> hi\r?\n");
    //  delivered: bob's client confirms within a second
    SEE_TTY_RE (alice, "[0-2][0-9]:[0-5][0-9] -- delivered to bob: \"hi\"");
    SAY (bob, "hey");
    SEE_TTY_RE (alice, "[0-2][0-9]:[0-5][0-9] <bob> hey");
    //  the old labels are gone
    assert_null (strstr (alice->plain, "bob: hey"));
    //  three more, confirmed at once: one receipt names the last
    s_tty_type (alice, "one\r");
    s_tty_type (alice, "two\r");
    s_tty_type (alice, "three is a longer line than an excerpt holds\r");
    SEE (bob, "msg alice one");
    SEE (bob, "msg alice two");
    SEE (bob, "msg alice three is a longer line than an excerpt holds");
    SEE_TTY_RE (alice, "-- delivered to bob: \"three is a longer line t\\.\\.\\.\" "
                       "and the 2 before it");
    s_tty_type (alice, "/quit\r");
    assert_int_equal (s_tty_exit (alice), 0);
    s_tty_stop (alice);
    free (alice);
    s_quit_bob (bob);
}

//  ---------------------------------------------------------------------
//  Tab

static void
test_tab_completion (void **state)
{
    (void) state;
    char path [512];
    tty_t *alice = calloc (1, sizeof *alice);
    s_tty_start (alice, "alice");
    SEE_TTY (alice, "[idle]");
    //  a file in the working directory that a file-name completion
    //  would offer
    const char *const files [] = { "carolina.txt", "zzfile.txt" };
    for (size_t i = 0; i < 2; i++) {
        snprintf (path, sizeof path, "%s/cwd/%s", g_work, files [i]);
        FILE *file = fopen (path, "w");
        assert_non_null (file);
        fclose (file);
    }
    sc_testproc_t *bob = s_login ("bob");
    sc_testproc_t *carol = s_login ("carol");
    //  a command
    s_tty_type (alice, "/li\t");
    s_tty_type (alice, "\r");
    SEE_TTY (alice, "-- online: bob carol");
    //  a name from that list: "/talk ca" + Tab is carol, not the file
    s_tty_type (alice, "/ta\t");
    s_tty_type (alice, "ca\t");
    s_tty_type (alice, "\r");
    SEE (carol, "request alice");
    assert_null (strstr (alice->plain, "carolina"));
    SAY (carol, "/refuse");
    SEE_TTY (alice, "-- carol refused");
    //  with nothing that matches, nothing at all (no file names)
    s_tty_type (alice, "/talk zz\t");
    s_tty_settle (alice, 300);
    s_tty_type (alice, "\001\013");         //  ^A ^K: clear the line
    assert_null (strstr (alice->plain, "zzfile"));
    //  a name in a message, in a chat
    s_tty_type (alice, "/talk b\t\r");
    SEE (bob, "request alice");
    SAY (bob, "/accept");
    assert_non_null (sc_testproc_expect_prefix (bob, "chat alice ", T_LINE));
    SEE_TTY (alice, "[bob]>");
    s_tty_type (alice, "hello ca\t");
    s_tty_type (alice, "\r");
    SEE (bob, "msg alice hello carol ");
    s_tty_type (alice, "/quit\r");
    assert_int_equal (s_tty_exit (alice), 0);
    s_tty_stop (alice);
    free (alice);
    s_quit_bob (bob);
    SAY (carol, "/quit");
    assert_int_equal (sc_testproc_skip_to (carol, "bye", T_LINE), 0);
}

//  ---------------------------------------------------------------------
//  Pasting

static void
test_paste_confirmed (void **state)
{
    (void) state;
    tty_t *alice = calloc (1, sizeof *alice);
    s_tty_start (alice, "alice");
    sc_testproc_t *bob = s_chat_with_bob (alice);
    //  three lines as a terminal pastes them (CR between lines), one of
    //  them a command: asked, nothing sent, nothing run
    s_tty_type (alice, "\033[200~first line\r/list\r\r\xc3\xa9t\xc3\xa9 \xe2\x9c\x93\033[201~");
    SEE_TTY (alice, "-- you pasted 3 lines: send them as 3 messages? [y/N]");
    SEE_NOTHING (bob);
    //  the terminal's focus reports (the user went to another window and
    //  came back) are no answer
    s_tty_type (alice, "\033[O");
    s_tty_type (alice, "\033[I");
    s_tty_type (alice, "y");
    SEE (bob, "msg alice first line");
    SEE (bob, "msg alice /list");
    SEE (bob, "msg alice \xc3\xa9t\xc3\xa9 \xe2\x9c\x93");
    SEE_TTY (alice, "<alice> /list");
    assert_null (strstr (alice->plain, "-- online"));
    //  and then the line is empty: Ctrl-C asks
    s_tty_type (alice, "\003");
    SEE_TTY (alice, "-- end the chat with bob? [y/N]");
    s_tty_type (alice, "n");
    SEE_TTY (alice, "-- cancelled");
    //  cancelled: nothing at all goes
    s_tty_type (alice, "\033[200~/leave\nsecret\n\033[201~");
    SEE_TTY (alice, "-- you pasted 2 lines: send them as 2 messages? [y/N]");
    s_tty_type (alice, "n");
    SEE_TTY (alice, "-- paste cancelled: nothing of it sent");
    SEE_NOTHING (bob);
    //  cancelled by Ctrl-C too
    s_tty_type (alice, "\033[200~a\nb\033[201~");
    SEE_TTY (alice, "-- you pasted 2 lines");
    s_tty_type (alice, "\003");
    SEE_TTY (alice, "-- paste cancelled");
    SEE_NOTHING (bob);
    //  more than 1 MiB: refused whole, nothing asked, nothing sent
    size_t big = 1024 * 1024 + 100;
    char *huge = malloc (big + 16);
    assert_non_null (huge);
    memcpy (huge, "\033[200~", 6);
    for (size_t i = 0; i < big; i++)
        huge [6 + i] = i % 100 == 99 ? '\n' : 'z';
    memcpy (huge + 6 + big, "\033[201~", 7);
    s_tty_type (alice, huge);
    free (huge);
    SEE_TTY (alice, "!! a paste of more than 1 MiB: nothing of it sent");
    SEE_NOTHING (bob);
    assert_null (strstr (alice->plain + alice->mark, "you pasted"));
    //  one line with no newline goes into the line, to edit: sent with
    //  Enter, never run
    s_tty_type (alice, "\033[200~/quit\033[201~");
    s_tty_type (alice, "\001/\r");          //  ^A, then / in front: "//quit"
    SEE (bob, "msg alice /quit");
    s_tty_type (alice, "/quit\r");
    assert_int_equal (s_tty_exit (alice), 0);
    s_tty_stop (alice);
    free (alice);
    s_quit_bob (bob);
}

//  ---------------------------------------------------------------------
//  Long lines

static void
test_long_line_split (void **state)
{
    (void) state;
    tty_t *alice = calloc (1, sizeof *alice);
    s_tty_start (alice, "alice");
    sc_testproc_t *bob = s_chat_with_bob (alice);
    //  4095 bytes of 'a', then e + U+0301 (a combining acute), then
    //  3000 two-byte characters: the first cut falls on the combining
    //  mark and goes before its 'e'; the second between characters
    static char text [4095 + 3 + 6000 + 1];
    memset (text, 'a', 4095);
    memcpy (text + 4095, "e\xcc\x81", 3);
    for (int i = 0; i < 3000; i++)
        memcpy (text + 4098 + 2 * i, "\xc3\xa9", 2);
    text [sizeof text - 1] = 0;
    static char paste [sizeof text + 16];
    snprintf (paste, sizeof paste, "\033[200~%s\033[201~", text);
    s_tty_type (alice, paste);
    SEE_TTY (alice, "-- you pasted 1 line, some long: send it as 3 messages? [y/N]");
    s_tty_type (alice, "y");
    static char want [3][4200];
    snprintf (want [0], sizeof want [0], "msg alice %.*s", 4095, text);
    //  4096 bytes: e, the mark, and 2046 of the é (4095 of 4096 would cut one)
    snprintf (want [1], sizeof want [1], "msg alice %.*s", 3 + 2 * 2046, text + 4095);
    snprintf (want [2], sizeof want [2], "msg alice %s", text + 4095 + 3 + 2 * 2046);
    SEE (bob, want [0]);
    SEE (bob, want [1]);
    SEE (bob, want [2]);
    SEE_TTY (alice, "-- a long line, cut into 3 messages");
    //  typed, a line stops at 1000 bytes (libedit's line editor holds
    //  no more safely): the bell, once a note, and the rest is refused
    static char typed [1201];
    memset (typed, 'x', 1200);
    s_tty_type (alice, typed);
    SEE_TTY (alice, "-- the line is full (1000 bytes): Enter sends it; paste longer text");
    s_tty_type (alice, "\r");
    const char *got = NULL;
    assert_int_equal (sc_testproc_read_line (bob, T_LINE, &got), 1);
    assert_int_equal (strncmp (got, "msg alice xxxx", 14), 0);
    assert_true (strlen (got) > 10 + 990 && strlen (got) <= 10 + 1000);
    assert_int_equal (strspn (got + 10, "x"), strlen (got) - 10);
    s_tty_type (alice, "/quit\r");
    assert_int_equal (s_tty_exit (alice), 0);
    s_tty_stop (alice);
    free (alice);
    s_quit_bob (bob);
}

//  ---------------------------------------------------------------------
//  Ctrl-C and Ctrl-D

static void
test_ctrl_c (void **state)
{
    (void) state;
    tty_t *alice = calloc (1, sizeof *alice);
    s_tty_start (alice, "alice");
    sc_testproc_t *bob = s_chat_with_bob (alice);
    //  text on the line: cleared, nothing sent, nothing asked
    s_tty_type (alice, "half a thought");
    s_tty_type (alice, "\003");
    s_tty_type (alice, "whole\r");
    SEE (bob, "msg alice whole");
    //  Ctrl-Y brings the cleared text back
    s_tty_type (alice, "second thought");
    s_tty_type (alice, "\003");
    s_tty_type (alice, "\031!\r");
    SEE (bob, "msg alice second thought!");
    assert_null (strstr (alice->plain, "end the chat"));
    //  an empty line: asked; n keeps the chat
    s_tty_type (alice, "\003");
    SEE_TTY (alice, "-- end the chat with bob? [y/N]");
    s_tty_type (alice, "n");
    SEE_TTY (alice, "-- cancelled");
    s_tty_type (alice, "still here\r");
    SEE (bob, "msg alice still here");
    //  y ends it
    s_tty_type (alice, "\003");
    SEE_TTY (alice, "-- end the chat with bob? [y/N]");
    s_tty_type (alice, "y");
    SEE (bob, "closed alice");
    SEE_TTY (alice, "[idle]");
    //  idle: asked before quitting; a second Ctrl-C is a yes
    s_tty_type (alice, "\003");
    SEE_TTY (alice, "-- quit secchat? [y/N]");
    s_tty_type (alice, "\003");
    assert_int_equal (s_tty_exit (alice), 0);
    s_tty_stop (alice);
    free (alice);
    s_quit_bob (bob);
}

//  Escape pressed alone (no sequence follows) waits for no other key:
//  while nothing more is typed, a line from the peer is shown at once
//  and the client keeps its session alive (a broker with a short
//  heartbeat drops a client that stops sending PING); Escape alone does
//  nothing to the line, and typing goes on. So for the other keys after
//  which libedit would wait for one more: a sequence cut short (Alt-[),
//  one libedit does not know (Shift-Tab), Alt and a digit, ^V. Alt-b
//  (Escape and b at once) still moves back a word.
static void
test_escape_alone (void **state)
{
    (void) state;
    int heartbeat = sc_testproc_timeout (300);
    sc_testproc_destroy (&g_broker);
    g_broker = sc_testproc_broker_new (g_keys, g_work, heartbeat, g_endpoint,
                                       sizeof g_endpoint);
    assert_non_null (g_broker);
    tty_t *alice = calloc (1, sizeof *alice);
    s_tty_start (alice, "alice");
    sc_testproc_t *bob = s_chat_with_bob (alice);
    const struct {
        const char *before, *key;
    } cases [] = {
        { "half ", "\033" }, { "", "\033" }, { "", "\033\033" }, { "", "\033[" },
        { "", "\033[Z" }, { "", "\0331" }, { "", "\026" },
    };
    for (int i = 0; i < (int) (sizeof cases / sizeof cases [0]); i++) {
        s_tty_type (alice, cases [i].before);
        s_tty_type (alice, cases [i].key);
        s_tty_settle (alice, 150);
        //  the first time longer than the broker waits for a PING
        if (i == 0)
            sc_testproc_sleep_ms (4 * heartbeat);
        char line [64];
        snprintf (line, sizeof line, "are you there %d", i);
        SAY (bob, line);
        char shown [80];
        snprintf (shown, sizeof shown, "<bob> %s", line);
        if (s_tty_wait (alice, shown, sc_testproc_timeout (1000))) {
            fprintf (stderr, "after key %d, bob's line was not shown at once\n", i);
            s_tty_dump (alice);
            fail ();
        }
        SEE_TTY (alice, shown);
        snprintf (line, sizeof line, "still here %d\r", i);
        s_tty_type (alice, line);
        snprintf (line, sizeof line, "msg alice %sstill here %d", cases [i].before, i);
        //  the session was kept: the chat goes on (no "closed alice")
        SEE (bob, line);
    }
    //  Escape alone answers no
    s_tty_type (alice, "\003");
    SEE_TTY (alice, "-- end the chat with bob? [y/N]");
    s_tty_type (alice, "\033");
    SEE_TTY (alice, "-- cancelled");
    //  Escape and a key together are Alt and that key
    s_tty_type (alice, "one two\033bX\r");
    SEE (bob, "msg alice one Xtwo");
    s_tty_type (alice, "/quit\r");
    assert_int_equal (s_tty_exit (alice), 0);
    s_tty_stop (alice);
    free (alice);
    s_quit_bob (bob);
}

static void
test_ctrl_d (void **state)
{
    (void) state;
    tty_t *alice = calloc (1, sizeof *alice);
    s_tty_start (alice, "alice");
    sc_testproc_t *bob = s_chat_with_bob (alice);
    //  with text on the line, ^D deletes the character under the cursor
    s_tty_type (alice, "abc\033[D\033[D\004\r");
    SEE (bob, "msg alice ac");
    //  on an empty line it quits as /quit does, at once: not as the end
    //  of a script's input, which waits up to 2 s for answers (here
    //  bob's to a request he leaves open)
    s_tty_type (alice, "/leave\r");
    SEE (bob, "closed alice");
    s_tty_type (alice, "/talk bob\r");
    SEE (bob, "request alice");
    SEE_TTY (alice, "[waiting for bob]");
    int64_t start = sc_testproc_now_ms ();
    s_tty_type (alice, "\004");
    SEE (bob, "closed alice");
    assert_int_equal (s_tty_exit (alice), 0);
    assert_true (strstr (alice->plain, "-- bye") != NULL);
    assert_true (sc_testproc_now_ms () - start < sc_testproc_timeout (1500));
    s_tty_stop (alice);
    free (alice);
    s_quit_bob (bob);
}

//  ---------------------------------------------------------------------
//  The bell

//  BELs written since the offset.
static int
s_bells (const tty_t *t, size_t from)
{
    int n = 0;
    for (size_t i = from; i < t->len; i++)
        n += t->raw [i] == '\a';
    return n;
}

static void
test_bell (void **state)
{
    (void) state;
    //  default: requests ring; messages only while the terminal says it
    //  lost the focus (it was asked to say so: CSI ?1004h)
    tty_t *alice = calloc (1, sizeof *alice);
    s_tty_start (alice, "alice");
    SEE_TTY (alice, "[idle]");
    assert_non_null (memmem (alice->raw, alice->len, "\033[?1004h", 8));
    assert_non_null (memmem (alice->raw, alice->len, "\033[?2004h", 8));
    sc_testproc_t *bob = s_login ("bob");
    size_t from = alice->len;
    SAY (bob, "/talk alice");
    SEE_TTY (alice, "-- bob wants to talk");
    s_tty_settle (alice, 100);
    assert_int_equal (s_bells (alice, from), 1);
    s_tty_type (alice, "/accept\r");
    SEE (bob, "accepted alice");
    assert_non_null (sc_testproc_expect_prefix (bob, "chat alice ", T_LINE));
    SEE_TTY (alice, "[bob]>");
    from = alice->len;
    SAY (bob, "focused");
    SEE_TTY (alice, "<bob> focused");
    s_tty_settle (alice, 100);
    assert_int_equal (s_bells (alice, from), 0);
    s_tty_type (alice, "\033[O");           //  focus out
    from = alice->len;
    SAY (bob, "away");
    SEE_TTY (alice, "<bob> away");
    s_tty_settle (alice, 100);
    assert_int_equal (s_bells (alice, from), 1);
    s_tty_type (alice, "\033[I");           //  focus in
    from = alice->len;
    SAY (bob, "back");
    SEE_TTY (alice, "<bob> back");
    s_tty_settle (alice, 100);
    assert_int_equal (s_bells (alice, from), 0);
    //  the reports never reach the line
    s_tty_type (alice, "typed\r");
    SEE (bob, "msg alice typed");
    s_tty_type (alice, "/quit\r");
    assert_int_equal (s_tty_exit (alice), 0);
    s_tty_stop (alice);
    SEE (bob, "closed alice");

    //  --bell messages: every message rings
    const char *const messages [] = { "--bell", "messages", NULL };
    s_tty_start_with (alice, "alice", 100, messages);
    SEE_TTY (alice, "[idle]");
    SAY (bob, "/talk alice");
    SEE_TTY (alice, "-- bob wants to talk");
    s_tty_type (alice, "/accept\r");
    SEE (bob, "accepted alice");
    assert_non_null (sc_testproc_expect_prefix (bob, "chat alice ", T_LINE));
    SEE_TTY (alice, "[bob]>");
    from = alice->len;
    SAY (bob, "ring");
    SEE_TTY (alice, "<bob> ring");
    s_tty_settle (alice, 100);
    assert_int_equal (s_bells (alice, from), 1);
    s_tty_type (alice, "/quit\r");
    assert_int_equal (s_tty_exit (alice), 0);
    s_tty_stop (alice);
    SEE (bob, "closed alice");

    //  --bell off: not even a request
    const char *const off [] = { "--bell", "off", NULL };
    s_tty_start_with (alice, "alice", 100, off);
    SEE_TTY (alice, "[idle]");
    from = alice->len;
    SAY (bob, "/talk alice");
    SEE_TTY (alice, "-- bob wants to talk");
    s_tty_settle (alice, 100);
    assert_int_equal (s_bells (alice, from), 0);
    s_tty_type (alice, "/quit\r");
    assert_int_equal (s_tty_exit (alice), 0);
    s_tty_stop (alice);
    free (alice);
    SEE (bob, "closed alice");
    s_quit_bob (bob);
}

//  A bad --bell is a usage error.
static void
test_bell_bad (void **state)
{
    (void) state;
    tty_t *alice = calloc (1, sizeof *alice);
    const char *const bad [] = { "--bell", "always", NULL };
    s_tty_start_with (alice, "alice", 100, bad);
    assert_int_equal (s_tty_exit (alice), 2);
    assert_non_null (strstr (alice->plain, "--bell wants requests, messages or off"));
    s_tty_stop (alice);
    free (alice);
}

//  ---------------------------------------------------------------------
//  The helpers on their own

static void
test_width (void **state)
{
    (void) state;
    assert_non_null (setlocale (LC_CTYPE, "C.UTF-8"));
    assert_int_equal (sc_term_width ("abc", 3), 3);
    assert_int_equal (sc_term_width ("\xc3\xa9", 2), 1);                 //  é
    assert_int_equal (sc_term_width ("e\xcc\x81", 3), 1);                //  e + U+0301
    assert_int_equal (sc_term_width ("\xe6\x97\xa5\xe6\x9c\xac", 6), 4); //  日本
    assert_int_equal (sc_term_width ("\xf0\x9f\x8e\x89", 4), 2);         //  🎉
    assert_int_equal (sc_term_width ("\xff" "a", 2), 2);                 //  a bad byte: one
    setlocale (LC_CTYPE, "C");
}

static void
test_split (void **state)
{
    (void) state;
    assert_non_null (setlocale (LC_CTYPE, "C.UTF-8"));
    assert_int_equal (sc_term_split ("abcdef", 6, 10), 6);
    assert_int_equal (sc_term_split ("abcdef", 6, 4), 4);
    //  never inside a character: "aé" at 2 would cut é
    assert_int_equal (sc_term_split ("a\xc3\xa9" "b", 4, 2), 1);
    assert_int_equal (sc_term_split ("\xf0\x9f\x8e\x89\xf0\x9f\x8e\x89", 8, 7), 4);
    //  not before a combining mark: "abe" + U+0301, cut at 3 goes before e
    assert_int_equal (sc_term_split ("abe\xcc\x81" "c", 6, 3), 2);
    assert_int_equal (sc_term_split ("abe\xcc\x81\xcc\x81" "c", 8, 5), 2);
    //  unless the piece is all marks
    assert_int_equal (sc_term_split ("e\xcc\x81\xcc\x81\xcc\x81", 7, 3), 3);
    setlocale (LC_CTYPE, "C");
}

static void
test_day_line (void **state)
{
    (void) state;
    char buf [64];
    struct tm a = { .tm_year = 126, .tm_mon = 11, .tm_mday = 3, .tm_yday = 336,
                    .tm_wday = 4, .tm_hour = 23, .tm_min = 59 };
    struct tm b = a;
    b.tm_min = 30;
    b.tm_hour = 10;
    assert_int_equal (sc_term_day_line (NULL, &a, buf, sizeof buf), 1);
    assert_string_equal (buf, "-- Thu 2026-12-03");
    assert_int_equal (sc_term_day_line (&b, &a, buf, sizeof buf), 0);
    struct tm next = { .tm_year = 126, .tm_mon = 11, .tm_mday = 4, .tm_yday = 337,
                       .tm_wday = 5, .tm_hour = 0, .tm_min = 1 };
    assert_int_equal (sc_term_day_line (&a, &next, buf, sizeof buf), 1);
    assert_string_equal (buf, "-- Fri 2026-12-04");
    //  the same day of another year is another day
    struct tm year = a;
    year.tm_year = 127;
    year.tm_wday = 5;
    assert_int_equal (sc_term_day_line (&a, &year, buf, sizeof buf), 1);
}

static void
test_bell_parse (void **state)
{
    (void) state;
    sc_term_bell_t bell = SC_TERM_BELL_OFF;
    assert_int_equal (sc_term_bell_parse ("requests", &bell), 0);
    assert_int_equal (bell, SC_TERM_BELL_REQUESTS);
    assert_int_equal (sc_term_bell_parse ("messages", &bell), 0);
    assert_int_equal (bell, SC_TERM_BELL_MESSAGES);
    assert_int_equal (sc_term_bell_parse ("off", &bell), 0);
    assert_int_equal (bell, SC_TERM_BELL_OFF);
    assert_int_equal (sc_term_bell_parse ("on", &bell), -1);
    assert_int_equal (sc_term_bell_parse ("", &bell), -1);
    assert_int_equal (sc_term_bell_parse (NULL, &bell), -1);
    assert_int_equal (bell, SC_TERM_BELL_OFF);
}

//  ---------------------------------------------------------------------

static int
s_group_setup (void **state)
{
    (void) state;
    alarm ((unsigned) sc_testproc_timeout (600000) / 1000);
    signal (SIGPIPE, SIG_IGN);
    g_root = sc_testdir_new ("terminal");
    if (!g_root)
        return -1;
    g_keys = sc_testdir_path (g_root, "keys");
    const char *const users [] = { "alice", "bob", "carol", NULL };
    return sc_testproc_make_keys (g_keys, users) ? -1 : 0;
}

static int
s_group_teardown (void **state)
{
    (void) state;
    sc_testproc_destroy_all ();
    const char *keep = getenv ("SC_KEEP_TMP");
    if (keep && *keep && strcmp (keep, "0") != 0)
        fprintf (stderr, "test_terminal: kept %s\n", g_root);
    else if (g_root)
        sc_testdir_remove (g_root);
    free (g_keys);
    free (g_root);
    return 0;
}

static int
s_setup (void **state)
{
    (void) state;
    char name [32];
    snprintf (name, sizeof name, "test-%02d", ++g_test_no);
    g_work = sc_testdir_path (g_root, name);
    if (mkdir (g_work, 0700))
        return -1;
    g_broker = sc_testproc_broker_new (g_keys, g_work, 0, g_endpoint, sizeof g_endpoint);
    return g_broker ? 0 : -1;
}

static int
s_teardown (void **state)
{
    (void) state;
    sc_testproc_destroy_all ();
    g_broker = NULL;
    free (g_work);
    g_work = NULL;
    return 0;
}

int
main (void)
{
#define T(f) cmocka_unit_test_setup_teardown (f, s_setup, s_teardown)
    const struct CMUnitTest tests [] = {
        T (test_utf8_both_ways),
        T (test_wide_chars_redraw),
        T (test_stamps_and_labels),
        T (test_tab_completion),
        T (test_paste_confirmed),
        T (test_long_line_split),
        T (test_ctrl_c),
        T (test_ctrl_d),
        T (test_escape_alone),
        T (test_bell),
        T (test_bell_bad),
        cmocka_unit_test (test_width),
        cmocka_unit_test (test_split),
        cmocka_unit_test (test_day_line),
        cmocka_unit_test (test_bell_parse),
#undef T
    };
    const char *filter = getenv ("SC_TEST_FILTER");
    if (filter && *filter)
        cmocka_set_test_filter (filter);
    return cmocka_run_group_tests_name ("terminal", tests, s_group_setup, s_group_teardown);
}
