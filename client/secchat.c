/*  secchat: the end-to-end encrypted chat client (docs/CLIENT.md).

    main() parses the command line, loads the CA and the user's key
    (asking for its password on the terminal, echo off), then runs one
    poll loop over the DEALER socket and standard input. The protocol is
    all in sc_client; this file moves bytes between it, the socket and
    the user, keeps time, and reconnects (new socket, new handshake)
    when the broker is lost.

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at https://mozilla.org/MPL/2.0/.
*/
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <langinfo.h>
#include <locale.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

#include <czmq.h>

#include "sc_client.h"
#include "sc_crypto.h"
#include "sc_history.h"
#include "sc_key.h"
#include "sc_msg.h"
#include "sc_term.h"

#define S_PASSWORD_MAX      1024
#define S_PASSWORD_TRIES    3
/* A typed line longer than this cannot be anything valid ("//" and a
   4096-byte message); it is refused whole, never cut. */
#define S_LINE_CAP          (SC_TEXT_MAX + 2)
#define S_OUTQ_MAX          1024        /* frames waiting for the socket  */
#define S_BACKOFF_MIN_MS    500
#define S_BACKOFF_MAX_MS    8000
#define S_POLL_MAX_MS       1000
/* At the end of input, how long answers already asked for may take. */
#define S_DRAIN_MS          2000

typedef struct {
    const char *endpoint, *user, *key_path, *ca_path, *broker_name;
    const char *password_file, *config_dir, *data_dir;
    long timeout_s;
    bool batch;
    bool no_history;
} s_opts_t;

typedef struct {
    uint8_t *data;
    size_t len;
} s_frame_t;

typedef struct {
    s_opts_t opts;
    sc_ca_t *ca;
    sc_key_t *key;
    sc_client_t *client;
    sc_term_t *term;
    sc_history_t *history;              /* NULL: --no-history             */
    zsock_t *sock;
    s_frame_t outq[S_OUTQ_MAX];         /* not yet taken by the socket    */
    size_t outq_head, outq_len;
    int64_t login_deadline;             /* 0: not logging in              */
    int64_t first_deadline;             /* the first login's, all tries   */
    bool login_retry;                   /* the last failure may pass      */
    int64_t reconnect_at;               /* 0: not waiting to reconnect    */
    int64_t backoff_ms;
    bool stdin_open;
    bool quitting;                      /* we want out (EOF, signal...)   */
    bool quit_given;                    /* ...and gave the core /quit     */
    int64_t drain_until;                /* end of input: answers awaited  */
    char login_error[600];              /* why the last login failed      */
    char inbuf[S_LINE_CAP + 1];         /* batch input: the current line  */
    size_t inlen;
    bool too_long;
} s_app_t;

static volatile sig_atomic_t s_signal;
static volatile sig_atomic_t s_winch;
static volatile sig_atomic_t s_cont;

/* ---- Small helpers ------------------------------------------------------ */

static void
s_die (int code, const char *fmt, ...) __attribute__ ((format (printf, 2, 3), noreturn));

static void
s_die (int code, const char *fmt, ...)
{
    va_list ap;
    va_start (ap, fmt);
    fputs ("secchat: ", stderr);
    vfprintf (stderr, fmt, ap);
    fputs ("\n", stderr);
    va_end (ap);
    exit (code);
}

static int64_t
s_now (void)
{
    return zclock_mono ();
}

static void
s_on_signal (int sig)
{
    if (sig == SIGWINCH)
        s_winch = 1;
    else if (sig == SIGCONT)
        s_cont = 1;
    else
        s_signal = sig;
}

/* No SA_RESTART: a signal interrupts the poll (or the password read). */
static void
s_catch (int sig, void (*handler) (int))
{
    struct sigaction sa;
    memset (&sa, 0, sizeof sa);
    sa.sa_handler = handler;
    sigemptyset (&sa.sa_mask);
    sigaction (sig, &sa, NULL);
}

/* ---- Command line ---------------------------------------------------------- */

static const char s_usage[] =
    "usage: secchat --endpoint EP --user NAME --key FILE --ca FILE\n"
    "               [--broker-name NAME] [--password-file FILE] [--config-dir DIR]\n"
    "               [--timeout SECONDS] [--batch] [--data-dir DIR] [--no-history]\n"
    "\n"
    "  --endpoint EP         the broker (default tcp://localhost:4242)\n"
    "  --user NAME           your registered name, [a-z0-9_-]{1,32} (required)\n"
    "  --key FILE            your private key (default CONFIG/NAME.key)\n"
    "  --ca FILE             the CA of the broker's certificate (default CONFIG/ca.pem)\n"
    "  --broker-name NAME    the name in the broker's certificate (default secbroker)\n"
    "  --password-file FILE  read the key's password from FILE (default: ask)\n"
    "  --config-dir DIR      CONFIG: keys and pins (default $XDG_CONFIG_HOME/secchat\n"
    "                        or ~/.config/secchat)\n"
    "  --timeout SECONDS     how long to wait for the broker when logging in (10)\n"
    "  --batch               one command per input line, one event per output line\n"
    "                        (on when standard input is not a terminal)\n"
    "  --data-dir DIR        the encrypted history goes in DIR/NAME/ (default\n"
    "                        $XDG_DATA_HOME/secchat or ~/.local/share/secchat)\n"
    "  --no-history          keep no history of the conversations\n"
    "  --help                this text\n";

static void
s_usage_error (const char *fmt, ...) __attribute__ ((format (printf, 1, 2), noreturn));

static void
s_usage_error (const char *fmt, ...)
{
    if (fmt) {
        va_list ap;
        va_start (ap, fmt);
        fputs ("secchat: ", stderr);
        vfprintf (stderr, fmt, ap);
        fputs ("\n", stderr);
        va_end (ap);
    }
    fputs (s_usage, stderr);
    exit (2);
}

/* CONFIG: --config-dir, $XDG_CONFIG_HOME/secchat or ~/.config/secchat.
   Returned malloc'd, never freed (it lives as long as the process). */
static const char *
s_config_dir (const char *given)
{
    if (given)
        return given;
    const char *xdg = getenv ("XDG_CONFIG_HOME");
    const char *home = getenv ("HOME");
    char *dir = NULL;
    if (xdg && xdg[0] == '/')
        dir = zsys_sprintf ("%s/secchat", xdg);
    else if (home && home[0])
        dir = zsys_sprintf ("%s/.config/secchat", home);
    if (!dir)
        s_usage_error ("no config directory: set HOME or give --config-dir");
    return dir;
}

static long
s_parse_timeout (const char *arg)
{
    char *end = NULL;
    errno = 0;
    long value = strtol (arg, &end, 10);
    if (errno || !end || *end || end == arg || value < 1 || value > 3600)
        s_usage_error ("--timeout wants a number of seconds from 1 to 3600");
    return value;
}

static void
s_parse_args (int argc, char *argv[], s_opts_t *opts)
{
    static const struct option longs[] = {
        { "endpoint", required_argument, NULL, 'e' },
        { "user", required_argument, NULL, 'u' },
        { "key", required_argument, NULL, 'k' },
        { "ca", required_argument, NULL, 'c' },
        { "broker-name", required_argument, NULL, 'b' },
        { "password-file", required_argument, NULL, 'p' },
        { "config-dir", required_argument, NULL, 'd' },
        { "timeout", required_argument, NULL, 't' },
        { "batch", no_argument, NULL, 'B' },
        { "data-dir", required_argument, NULL, 'D' },
        { "no-history", no_argument, NULL, 'H' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 }
    };
    memset (opts, 0, sizeof *opts);
    opts->endpoint = "tcp://localhost:4242";
    opts->broker_name = "secbroker";
    opts->timeout_s = 10;
    int c;
    while ((c = getopt_long (argc, argv, "h", longs, NULL)) != -1) {
        switch (c) {
            case 'e': opts->endpoint = optarg; break;
            case 'u': opts->user = optarg; break;
            case 'k': opts->key_path = optarg; break;
            case 'c': opts->ca_path = optarg; break;
            case 'b': opts->broker_name = optarg; break;
            case 'p': opts->password_file = optarg; break;
            case 'd': opts->config_dir = optarg; break;
            case 't': opts->timeout_s = s_parse_timeout (optarg); break;
            case 'B': opts->batch = true; break;
            case 'D': opts->data_dir = optarg; break;
            case 'H': opts->no_history = true; break;
            case 'h': fputs (s_usage, stdout); exit (0);
            default:  s_usage_error (NULL);
        }
    }
    if (optind < argc)
        s_usage_error ("unexpected argument '%s'", argv[optind]);
    if (!opts->user)
        s_usage_error ("--user is required");
    if (!sc_name_valid (opts->user, strlen (opts->user)))
        s_usage_error ("--user must be 1 to 32 of a-z 0-9 _ -");
    if (!opts->endpoint[0] || !opts->broker_name[0])
        s_usage_error ("--endpoint and --broker-name cannot be empty");
    const char *config = s_config_dir (opts->config_dir);
    opts->config_dir = config;
    if (!opts->key_path)
        opts->key_path = zsys_sprintf ("%s/%s.key", config, opts->user);
    if (!opts->ca_path)
        opts->ca_path = zsys_sprintf ("%s/ca.pem", config);
    if (!opts->key_path || !opts->ca_path)
        s_die (1, "out of memory");
    if (!opts->batch && !isatty (STDIN_FILENO))
        opts->batch = true;
}

/* ---- Password and key ------------------------------------------------------ */

/* First line of the file, without its newline (no stdio buffer keeps
   a copy: see sc_key_read_password). */
static void
s_password_from_file (const char *path, char *password, size_t size)
{
    int rc = sc_key_read_password (path, password, size);
    if (rc == SC_KEY_EFORMAT)
        s_die (1, "the first line of %s is too long for a password", path);
    if (rc)
        s_die (1, "cannot read password file %s: %s", path, strerror (errno));
}

/* Ask on the terminal with echo off. The terminal is restored on every
   path: a signal interrupts read() (no SA_RESTART) and is handled after
   the restore. -1 on end of input or a signal. */
static int
s_password_from_tty (int tty, const char *key_path, char *password, size_t size)
{
    struct termios saved, quiet;
    if (tcgetattr (tty, &saved))
        return -1;
    quiet = saved;
    quiet.c_lflag &= (tcflag_t) ~(ECHO | ECHONL);
    quiet.c_lflag |= ICANON;
    char prompt[600];
    int n = snprintf (prompt, sizeof prompt, "Password for %s: ", key_path);
    if (n > 0 && write (tty, prompt, (size_t) n) < 0)
        return -1;
    if (tcsetattr (tty, TCSAFLUSH, &quiet))
        return -1;
    size_t len = 0;
    int rc = -1;
    char c;
    while (!s_signal) {
        ssize_t got = read (tty, &c, 1);
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0)
            break;
        if (c == '\n' || c == '\r') {
            rc = 0;
            break;
        }
        if (len + 1 < size)
            password[len++] = c;
    }
    password[len] = 0;
    sc_wipe (&c, sizeof c);
    tcsetattr (tty, TCSAFLUSH, &saved);
    if (write (tty, "\n", 1) < 0)
        rc = -1;
    return s_signal ? -1 : rc;
}

static sc_key_t *
s_load_key_with (const char *path, const char *password)
{
    int err = 0;
    sc_key_t *key = sc_key_load_private (path, password, &err);
    if (!key && err == SC_KEY_EPERM)
        s_die (1, "UNPROTECTED PRIVATE KEY FILE %s: group or others can access "
               "it; run: chmod 600 %s", path, path);
    if (!key && err != SC_KEY_EBADPASS)
        s_die (1, "cannot load key %s: %s", path, sc_key_strerror (err));
    return key;
}

static sc_key_t *
s_load_key (const s_opts_t *opts)
{
    char password[S_PASSWORD_MAX];
    sc_key_t *key = NULL;
    if (opts->password_file) {
        s_password_from_file (opts->password_file, password, sizeof password);
        key = s_load_key_with (opts->key_path, password);
        sc_wipe (password, sizeof password);
        if (!key)
            s_die (1, "wrong password for %s (from %s)", opts->key_path,
                   opts->password_file);
        return key;
    }
    int tty = open ("/dev/tty", O_RDWR | O_CLOEXEC | O_NOCTTY);
    if (tty < 0)
        s_die (1, "no terminal to ask the password for %s on: use --password-file",
               opts->key_path);
    s_catch (SIGINT, s_on_signal);
    s_catch (SIGTERM, s_on_signal);
    s_catch (SIGHUP, s_on_signal);
    for (int try = 0; try < S_PASSWORD_TRIES && !key; try++) {
        if (try > 0 && write (tty, "Wrong password, try again.\n", 27) < 0)
            break;
        if (s_password_from_tty (tty, opts->key_path, password, sizeof password))
            break;
        key = s_load_key_with (opts->key_path, password);
        sc_wipe (password, sizeof password);
    }
    sc_wipe (password, sizeof password);
    close (tty);
    if (!key && s_signal)
        s_die (1, "interrupted");
    if (!key)
        s_die (1, "wrong password for %s", opts->key_path);
    return key;
}

/* ---- Output ------------------------------------------------------------------ */

static void
s_emit_batch (s_app_t *app, const sc_event_t *ev)
{
    char line[SC_EVENT_LINE_MAX];
    int n = sc_event_format_batch (ev, line, sizeof line);
    if (n > 0) {
        if (fwrite (line, 1, (size_t) n, stdout) != (size_t) n || fflush (stdout))
            app->quitting = true;       /* nobody reads us any more */
        sc_wipe (line, (size_t) n);
    }
    else if (ev->type == SC_EV_HELP)
        fputs (ev->text, stderr);
    else if (ev->type == SC_EV_NOTICE)
        fprintf (stderr, "secchat: note: %s\n", ev->text);
}

static void
s_on_event (void *arg, const sc_event_t *ev)
{
    s_app_t *app = arg;
    if (ev->type == SC_EV_LOGIN_FAILED) {
        snprintf (app->login_error, sizeof app->login_error, "%s", ev->text);
        app->login_retry = ev->number != 0;
    }
    if (app->term)
        sc_term_event (app->term, ev);
    else
        s_emit_batch (app, ev);
    char why[700];
    if (sc_history_event (app->history, ev, why, sizeof why)) {
        sc_event_t err = { .type = SC_EV_ERROR, .code = "history", .text = why };
        if (app->term)
            sc_term_event (app->term, &err);
        else
            s_emit_batch (app, &err);
    }
}

/* An error the client itself finds before the core sees the line. */
static void
s_local_error (s_app_t *app, const char *code, const char *text)
{
    sc_event_t ev = { .type = SC_EV_ERROR, .code = code, .text = text };
    s_on_event (app, &ev);
}

/* What /history and /forget print: a line for the user, or an error. */
static void
s_history_out (void *arg, const char *code, const char *text)
{
    s_app_t *app = arg;
    if (code)
        s_local_error (app, code, text);
    else if (app->term)
        sc_term_print (app->term, SC_TERM_INFO, text);
    else if (printf ("%s\n", text) < 0 || fflush (stdout))
        app->quitting = true;
}

/* ---- Socket ------------------------------------------------------------------- */

static void
s_outq_clear (s_app_t *app)
{
    while (app->outq_len) {
        free (app->outq[app->outq_head].data);
        app->outq_head = (app->outq_head + 1) % S_OUTQ_MAX;
        app->outq_len--;
    }
    app->outq_head = 0;
}

/* Send queued frames while the socket takes them. -1 on a hard error. */
static int
s_outq_flush (s_app_t *app)
{
    while (app->outq_len && app->sock) {
        s_frame_t *f = &app->outq[app->outq_head];
        int rc = zmq_send (zsock_resolve (app->sock), f->data, f->len, ZMQ_DONTWAIT);
        if (rc < 0 && errno == EINTR)
            continue;
        if (rc < 0)
            return errno == EAGAIN ? 0 : -1;
        free (f->data);
        app->outq_head = (app->outq_head + 1) % S_OUTQ_MAX;
        app->outq_len--;
    }
    return 0;
}

/* The core's send: straight to the socket, or queued (in order) until
   the connection is up. With ZMQ_IMMEDIATE the socket refuses frames
   while no connection is complete, so nothing is sent to a broker that
   is not there. */
static int
s_io_send (void *arg, const uint8_t *frame, size_t len)
{
    s_app_t *app = arg;
    if (!app->sock || app->outq_len == S_OUTQ_MAX)
        return -1;
    s_frame_t *f = &app->outq[(app->outq_head + app->outq_len) % S_OUTQ_MAX];
    f->data = malloc (len);
    if (!f->data)
        return -1;
    memcpy (f->data, frame, len);
    f->len = len;
    app->outq_len++;
    return s_outq_flush (app);
}

static int
s_sockopt (zsock_t *sock, int option, int value)
{
    return zmq_setsockopt (zsock_resolve (sock), option, &value, sizeof value);
}

static zsock_t *
s_connect (const char *endpoint)
{
    zsock_t *sock = zsock_new (ZMQ_DEALER);
    if (!sock)
        return NULL;
    int64_t maxmsg = SC_ENVELOPE_MAX;
    if (zmq_setsockopt (zsock_resolve (sock), ZMQ_MAXMSGSIZE, &maxmsg, sizeof maxmsg)
        || s_sockopt (sock, ZMQ_LINGER, 2000)
        || s_sockopt (sock, ZMQ_IMMEDIATE, 1)
        || zsock_connect (sock, "%s", endpoint)) {
        zsock_destroy (&sock);
        return NULL;
    }
    return sock;
}

static void
s_disconnect (s_app_t *app)
{
    s_outq_clear (app);
    zsock_destroy (&app->sock);
    app->login_deadline = 0;
}

static void
s_schedule_reconnect (s_app_t *app, int64_t now)
{
    s_disconnect (app);
    app->reconnect_at = now + app->backoff_ms;
    app->backoff_ms *= 2;
    if (app->backoff_ms > S_BACKOFF_MAX_MS)
        app->backoff_ms = S_BACKOFF_MAX_MS;
}

/* (Re)connect: a new socket and a fresh handshake, new ephemeral keys. */
static void
s_start_login (s_app_t *app, int64_t now)
{
    app->reconnect_at = 0;
    app->sock = s_connect (app->opts.endpoint);
    if (app->sock) {
        /* the first login has --timeout in all, retries included */
        if (!sc_client_ever_ready (app->client)) {
            if (!app->first_deadline)
                app->first_deadline = now + app->opts.timeout_s * 1000;
            app->login_deadline = app->first_deadline;
        }
        else
            app->login_deadline = now + app->opts.timeout_s * 1000;
        if (sc_client_start (app->client, now) == 0)
            return;
    }
    /* A first attempt that cannot even start is a bad endpoint. */
    if (!sc_client_ever_ready (app->client))
        s_die (2, "cannot connect to %s: %s", app->opts.endpoint,
               app->sock ? "cannot start the login" : zmq_strerror (zmq_errno ()));
    s_schedule_reconnect (app, now);
}

/* ---- After every step of the core ------------------------------------------------ */

static void
s_update_prompt (s_app_t *app)
{
    if (!app->term)
        return;
    char prompt[128];
    sc_term_prompt_for (sc_client_state (app->client), sc_client_peer (app->client),
                        prompt, sizeof prompt);
    sc_term_set_prompt (app->term, prompt);
}

static void
s_finish (s_app_t *app, int code, const char *why) __attribute__ ((noreturn));

static void
s_finish (s_app_t *app, int code, const char *why)
{
    sc_term_destroy (&app->term);
    s_outq_clear (app);
    /* Destroying the socket with its linger lets QUIT and an E2E close
       leave before the process ends (zsys_shutdown waits for them). */
    zsock_destroy (&app->sock);
    if (why)
        fprintf (stderr, "secchat: %s\n", why);
    sc_client_destroy (&app->client);
    sc_history_destroy (&app->history);
    sc_key_destroy (&app->key);
    sc_ca_destroy (&app->ca);
    exit (code);
}

static void
s_after (s_app_t *app, int64_t now)
{
    sc_client_state_t state = sc_client_state (app->client);
    bool ready = sc_client_ever_ready (app->client);
    if (state == SC_CLIENT_DONE)
        s_finish (app, 0, NULL);
    if (state == SC_CLIENT_DEAD && ready && !app->login_error[0]) {
        char why[128];
        snprintf (why, sizeof why, "session replaced: a newer login of %s "
                  "took over", app->opts.user);
        s_finish (app, 1, why);
    }
    /* a first login the broker refused for now (busy, rate): again,
       within --timeout */
    if (state == SC_CLIENT_OFFLINE && !ready && app->sock && app->login_retry
        && now + app->backoff_ms < app->first_deadline) {
        fprintf (stderr, "secchat: note: %s: retrying\n", app->login_error);
        app->login_retry = false;
        s_schedule_reconnect (app, now);
    }
    if (state == SC_CLIENT_DEAD || (state == SC_CLIENT_OFFLINE && !ready && app->sock))
        s_finish (app, 1, app->login_error[0] ? app->login_error
                                              : "broker unreachable");
    if (state == SC_CLIENT_OFFLINE && app->sock)
        s_schedule_reconnect (app, now);
    if (state >= SC_CLIENT_IDLE && app->login_deadline) {
        app->login_deadline = 0;
        app->backoff_ms = S_BACKOFF_MIN_MS;
        app->login_error[0] = 0;
    }
    s_update_prompt (app);
}

/* ---- Input ----------------------------------------------------------------------- */

/* End of input is /quit, once the answers to what was asked (a /list)
   are in, or after S_DRAIN_MS. */
static void
s_end_of_input (s_app_t *app)
{
    app->stdin_open = false;
    app->drain_until = s_now () + S_DRAIN_MS;
}

static void
s_line (s_app_t *app, const char *line, size_t len, bool too_long)
{
    int64_t now = s_now ();
    if (too_long)
        s_local_error (app, "too-long", "a line is at most 4096 bytes of text: not sent");
    else
    if (sc_history_is_command (line, len))
        sc_history_command (app->history, line, len, sc_client_peer (app->client),
                            app->opts.batch, s_history_out, app);
    else
    if (app->opts.batch && len == 5 && memcmp (line, "/quit", 5) == 0)
        /* A script's /quit waits, as its end of input does, for the
           answers to what it asked just before (`/list` then `/quit`). */
        s_end_of_input (app);
    else
        sc_client_command (app->client, line, len, now);
    s_after (app, now);
}

/* Leave as /quit does, once: before the first login the core keeps the
   /quit until it is in. */
static void
s_quit (s_app_t *app)
{
    app->quitting = true;
    app->stdin_open = false;
    if (app->quit_given)
        return;
    app->quit_given = true;
    int64_t now = s_now ();
    sc_client_command (app->client, "/quit", 5, now);
    s_after (app, now);
}

static void
s_drain (s_app_t *app, int64_t now)
{
    if (!app->drain_until || app->quit_given)
        return;
    /* Lines typed before the login run after it: wait for it (the login
       timeout bounds this), then for their answers. */
    if (!sc_client_ever_ready (app->client))
        app->drain_until = now + S_DRAIN_MS;
    else if (sc_client_pending (app->client) == 0 || now >= app->drain_until)
        s_quit (app);
}

static void
s_term_line (void *arg, const char *line, size_t len)
{
    s_app_t *app = arg;
    if (!line)
        s_end_of_input (app);
    else
        s_line (app, line, len, len > S_LINE_CAP);
}

/* Batch: read what is there and run each complete line. */
static void
s_read_batch (s_app_t *app)
{
    char buf[4096];
    ssize_t got = read (STDIN_FILENO, buf, sizeof buf);
    if (got < 0 && (errno == EINTR || errno == EAGAIN))
        return;
    if (got <= 0) {
        if (app->inlen || app->too_long)
            s_line (app, app->inbuf, app->inlen, app->too_long);
        sc_wipe (app->inbuf, sizeof app->inbuf);
        app->inlen = 0;
        s_end_of_input (app);
        return;
    }
    for (ssize_t i = 0; i < got; i++) {
        if (buf[i] != '\n') {
            if (app->inlen < S_LINE_CAP)
                app->inbuf[app->inlen++] = buf[i];
            else
                app->too_long = true;
            continue;
        }
        s_line (app, app->inbuf, app->inlen, app->too_long);
        sc_wipe (app->inbuf, app->inlen);
        app->inlen = 0;
        app->too_long = false;
    }
    sc_wipe (buf, sizeof buf);
}

/* Every frame the socket holds; a multi-part message is not ours. */
static void
s_read_socket (s_app_t *app)
{
    zsock_t *sock = app->sock;
    bool skipping = false;
    while (app->sock == sock) {
        zmq_msg_t msg;
        zmq_msg_init (&msg);
        if (zmq_msg_recv (&msg, zsock_resolve (sock), ZMQ_DONTWAIT) < 0) {
            zmq_msg_close (&msg);
            break;
        }
        bool more = zmq_msg_more (&msg);
        int64_t now = s_now ();
        if (!skipping && !more)
            sc_client_recv (app->client, zmq_msg_data (&msg), zmq_msg_size (&msg), now);
        skipping = more;
        zmq_msg_close (&msg);
        s_after (app, now);
    }
}

/* ---- The loop ---------------------------------------------------------------------- */

static long
s_poll_timeout (s_app_t *app, int64_t now)
{
    int64_t timeout = S_POLL_MAX_MS;
    int64_t core = sc_client_timeout (app->client, now);
    if (core >= 0 && core < timeout)
        timeout = core;
    if (app->login_deadline && app->login_deadline - now < timeout)
        timeout = app->login_deadline - now;
    if (app->reconnect_at && app->reconnect_at - now < timeout)
        timeout = app->reconnect_at - now;
    if (app->drain_until && app->drain_until - now < timeout)
        timeout = app->drain_until - now;
    return timeout > 0 ? (long) timeout : 0;
}

static void
s_timers (s_app_t *app, int64_t now)
{
    sc_client_tick (app->client, now);
    s_after (app, now);
    if (app->login_deadline && now >= app->login_deadline) {
        if (!sc_client_ever_ready (app->client)) {
            char why[600];
            snprintf (why, sizeof why, "broker unreachable at %s", app->opts.endpoint);
            s_finish (app, 1, app->login_error[0] ? app->login_error : why);
        }
        sc_client_reset (app->client);
        s_schedule_reconnect (app, now);
    }
    if (app->reconnect_at && now >= app->reconnect_at)
        s_start_login (app, now);
    s_after (app, now);
}

static void
s_signals (s_app_t *app)
{
    if (s_winch) {
        s_winch = 0;
        if (app->term)
            sc_term_resize (app->term);
    }
    if (s_cont) {
        s_cont = 0;
        if (app->term)
            sc_term_resume (app->term);
    }
    if (s_signal && !app->quitting) {
        s_signal = 0;
        sc_client_state_t state = sc_client_state (app->client);
        if (state < SC_CLIENT_IDLE && !sc_client_ever_ready (app->client))
            s_finish (app, 1, "interrupted");
        s_quit (app);
    }
}

static void s_loop (s_app_t *app) __attribute__ ((noreturn));

static void
s_loop (s_app_t *app)
{
    while (true) {
        int64_t now = s_now ();
        zmq_pollitem_t items[2];
        int n = 0;
        if (app->sock)
            items[n++] = (zmq_pollitem_t) { .socket = zsock_resolve (app->sock),
                .events = (short) (ZMQ_POLLIN | (app->outq_len ? ZMQ_POLLOUT : 0)) };
        int in = app->stdin_open ? n : -1;
        if (app->stdin_open)
            items[n++] = (zmq_pollitem_t) { .fd = STDIN_FILENO, .events = ZMQ_POLLIN };
        int rc = zmq_poll (items, n, s_poll_timeout (app, now));
        if (rc < 0 && zmq_errno () != EINTR)
            s_finish (app, 1, "poll failed");
        s_signals (app);
        if (rc > 0 && app->sock && (items[0].revents & ZMQ_POLLOUT)
            && s_outq_flush (app)) {
            sc_client_reset (app->client);
            s_after (app, s_now ());
        }
        if (rc > 0 && app->sock && (items[0].revents & ZMQ_POLLIN))
            s_read_socket (app);
        /* A closed pipe or a hung-up terminal polls as POLLHUP, which
           zmq_poll reports as ZMQ_POLLERR: read it to see the end. */
        if (rc > 0 && in >= 0 && app->stdin_open
            && (items[in].revents & (ZMQ_POLLIN | ZMQ_POLLERR))) {
            if (app->term)
                sc_term_read (app->term);
            else
                s_read_batch (app);
        }
        if (app->quitting)
            s_quit (app);
        s_drain (app, s_now ());
        s_timers (app, s_now ());
    }
}

/* ---- main ---------------------------------------------------------------------------- */

static sc_ca_t *
s_load_ca (const char *path)
{
    int err = 0;
    sc_ca_t *ca = sc_ca_load (path, &err);
    if (!ca)
        s_die (1, "cannot load the CA certificate %s: %s", path, sc_key_strerror (err));
    return ca;
}

/* What people type is UTF-8 on the wire (PROTOCOL.md section 3), and
   libedit reads a multibyte character only in a locale whose codeset is
   UTF-8: in the C locale it drops every byte above 0x7f. So characters
   follow the user's locale when it is UTF-8, and C.UTF-8 otherwise. */
static void
s_utf8_input (void)
{
    const char *set = setlocale (LC_CTYPE, "");
    if (set && strcmp (nl_langinfo (CODESET), "UTF-8") == 0)
        return;
    if (!setlocale (LC_CTYPE, "C.UTF-8") || strcmp (nl_langinfo (CODESET), "UTF-8") != 0)
        fprintf (stderr, "secchat: note: no UTF-8 locale: what you type beyond "
                 "ASCII may be lost\n");
}

static void
s_make_config_dir (const char *dir)
{
    /* Only the last component: the pins file goes there. */
    if (mkdir (dir, 0700) && errno != EEXIST && errno != ENOENT)
        fprintf (stderr, "secchat: note: cannot create %s: %s\n", dir, strerror (errno));
}

/* The encrypted history (sc_history), unless --no-history. A store that
   cannot be used is said once, and the chat goes on without it. */
static void
s_open_history (s_app_t *app)
{
    if (app->opts.no_history)
        return;
    char *dir = app->opts.data_dir ? strdup (app->opts.data_dir)
                                   : sc_history_default_dir ();
    char why[700];
    app->history = sc_history_new (dir, app->opts.user, app->key, why, sizeof why);
    free (dir);
    if (!app->history)
        s_die (1, "out of memory");
    if (why[0])
        s_local_error (app, "history", why);
}

int
main (int argc, char *argv[])
{
    /* This process holds the user's key and password: no core dump of it,
       and no ptrace by other processes of the user. */
    const struct rlimit no_core = { 0, 0 };
    if (prctl (PR_SET_DUMPABLE, 0, 0, 0, 0) || setrlimit (RLIMIT_CORE, &no_core)) {
        fprintf (stderr, "secchat: cannot disable core dumps: %s\n", strerror (errno));
        return 1;
    }
    static s_app_t app;
    s_parse_args (argc, argv, &app.opts);
    signal (SIGPIPE, SIG_IGN);
    app.ca = s_load_ca (app.opts.ca_path);
    app.key = s_load_key (&app.opts);
    s_make_config_dir (app.opts.config_dir);
    char *pins = zsys_sprintf ("%s/%s.pins", app.opts.config_dir, app.opts.user);
    if (!pins)
        s_die (1, "out of memory");
    sc_client_io_t io = { .arg = &app, .send = s_io_send, .event = s_on_event };
    app.client = sc_client_new (app.key, app.opts.user, app.ca, app.opts.broker_name,
                                pins, &io);
    zstr_free (&pins);
    if (!app.client)
        s_die (1, "cannot start the client");

    /* The loop owns the signals from here; CZMQ must not install its own. */
    zsys_handler_set (NULL);
    s_catch (SIGINT, s_on_signal);
    s_catch (SIGTERM, s_on_signal);
    s_catch (SIGHUP, s_on_signal);
    s_catch (SIGWINCH, s_on_signal);
    s_catch (SIGCONT, s_on_signal);
    if (app.opts.batch)
        setvbuf (stdout, NULL, _IONBF, 0);     /* no copy of a message lingers */
    else {
        s_utf8_input ();
        if (!(app.term = sc_term_new ("[connecting]> ", s_term_line, &app)))
            s_die (1, "cannot set up the terminal");
    }
    s_open_history (&app);
    app.stdin_open = true;
    app.backoff_ms = S_BACKOFF_MIN_MS;
    s_start_login (&app, s_now ());
    s_after (&app, s_now ());
    s_loop (&app);              /* ends through s_finish, which exits */
    return 0;
}
