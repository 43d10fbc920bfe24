/*  secchat: the end-to-end encrypted chat client (docs/CLIENT.md).

    main() parses the command line, loads the CA and the user's key
    (asking for its password on the terminal, echo off), then runs one
    poll loop over the DEALER socket and standard input. The protocol is
    all in sc_client; this file moves bytes between it, the socket and
    the user, keeps time, and reconnects (new socket, new handshake)
    when the broker is lost. Each login tries the --endpoint list in
    order, each endpoint probed first (sc_endpoint) so that a refused
    port or a name that does not resolve fails at once.

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
#include "sc_config.h"
#include "sc_crypto.h"
#include "sc_endpoint.h"
#include "sc_handshake.h"
#include "sc_history.h"
#include "sc_key.h"
#include "sc_keytool.h"
#include "sc_msg.h"
#include "sc_term.h"

/* The release, from the Makefile's VERSION (--version). */
#ifndef SC_VERSION
#   error "SC_VERSION comes from the Makefile: -DSC_VERSION='\"VERSION\"'"
#endif

#define S_PASSWORD_MAX      1024
#define S_PASSWORD_TRIES    3
/* A batch line longer than this cannot be anything valid ("//" and a
   4096-byte message); it is refused whole, never cut. */
#define S_LINE_CAP          (SC_TEXT_MAX + 2)
#define S_OUTQ_MAX          1024        /* frames waiting for the socket  */
#define S_BACKOFF_MIN_MS    500
#define S_BACKOFF_MAX_MS    8000
#define S_POLL_MAX_MS       1000
#define S_ENDPOINTS_MAX     16          /* in one --endpoint list          */
#define S_ATTEMPT_MIN_MS    1000        /* for one endpoint of a list      */
#define S_WHY_MAX           600
/* At the end of input, how long answers already asked for may take. */
#define S_DRAIN_MS          2000

typedef struct {
    const char *endpoint, *user, *key_path, *ca_path, *broker_name;
    const char *password_file, *config_dir, *data_dir;
    const char *code;                   /* enrol: the invitation code     */
    long timeout_s;
    bool batch;
    sc_term_bell_t bell;
    bool bell_given;                    /* --bell given: the file's is not read */
    bool no_history;                    /* --no-history, or history = off */
    bool enrol;                         /* `secchat enrol`                */
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
    sc_endpoint_t *endpoints[S_ENDPOINTS_MAX];  /* --endpoint, in order */
    size_t n_endpoints;
    size_t current;                     /* the one tried or in use        */
    bool probing;                       /* its probe is in progress       */
    bool round_refused;                 /* every failure of this round was
                                           a refusal or a name that does
                                           not resolve                    */
    char why[S_ENDPOINTS_MAX][S_WHY_MAX];   /* each one's last failure    */
    sc_history_t *history;              /* NULL: --no-history             */
    zsock_t *sock;
    s_frame_t outq[S_OUTQ_MAX];         /* not yet taken by the socket    */
    size_t outq_head, outq_len;
    int64_t login_deadline;             /* 0: not logging in; else the end
                                           of the attempt on this endpoint */
    int64_t first_deadline;             /* the first login's, all tries   */
    int64_t attempt_start;              /* of the attempt on this endpoint */
    int64_t reconnect_at;               /* 0: not waiting to reconnect    */
    int64_t backoff_ms;
    bool stdin_open;
    bool quitting;                      /* we want out (EOF, signal...)   */
    bool quit_given;                    /* ...and gave the core /quit     */
    int64_t drain_until;                /* end of input: answers awaited  */
    char login_error[600];              /* why the last login failed      */
    bool refused;                       /* ...for good (no retry)         */
    bool key_made;                      /* enrol: we wrote opts.key_path  */
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
    "usage: secchat [--endpoint EP] [--user NAME] [--key FILE] [--ca FILE]\n"
    "               [--broker-name NAME] [--password-file FILE] [--config-dir DIR]\n"
    "               [--timeout SECONDS] [--batch] [--bell requests|messages|off]\n"
    "               [--data-dir DIR] [--no-history]\n"
    "       secchat enrol --endpoint EP --user NAME --ca FILE --code CODE\n"
    "               [--key FILE] [--password-file FILE] [other options as above]\n"
    "       secchat keygen [--user NAME] [--out DIR] [--password-file FILE]\n"
    "       secchat passwd KEYFILE [--password-file OLD --new-password-file NEW]\n"
    "       secchat fingerprint FILE [--password-file FILE]\n"
    "       secchat --version\n"
    "\n"
    "  enrol                 register NAME at the broker with a one-time code\n"
    "                        from its administrator (`secbroker invite NAME`):\n"
    "                        makes a new key in --key (it must not exist), asks\n"
    "                        its password twice, enrols, and stays logged in\n"
    "  --code CODE           the invitation code (without it: only a broker with\n"
    "                        open registration accepts the enrolment)\n"
    "  --endpoint EP         the broker, HOST:PORT or [IPV6]:PORT (tcp:// optional);\n"
    "                        EP,EP,... are tried in order (tcp://localhost:4242)\n"
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
    "  --bell WHEN           on a terminal, ring for: requests (and for messages\n"
    "                        while the terminal is not focused), messages, off\n"
    "                        (default requests)\n"
    "  --data-dir DIR        the encrypted history goes in DIR/NAME/ (default\n"
    "                        $XDG_DATA_HOME/secchat or ~/.local/share/secchat)\n"
    "  --no-history          keep no history of the conversations\n"
    "  --help                this text\n"
    "  --version             print 'secchat VERSION'\n"
    "\n"
    "keygen makes your key (CONFIG/NAME.key under a password asked twice, and\n"
    "NAME.pub for the broker's administrator); passwd changes a key's password;\n"
    "fingerprint prints a key file's fingerprint as /fingerprint shows it.\n"
    "\n"
    "An option not given is read from CONFIG/config, one `key = value` a line:\n"
    "endpoint, user, key, ca, broker-name, bell, history.\n";

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

/* CONFIG/config, read: the options the command line did not give are
   taken from it. Exits 2 with the file and line of a bad line. */
static sc_config_t *
s_load_config (const char *config_dir)
{
    char *path = zsys_sprintf ("%s/config", config_dir);
    if (!path)
        s_die (1, "out of memory");
    char err[1024];
    sc_config_t *config = sc_config_load (path, err, sizeof err);
    zstr_free (&path);
    if (!config)
        s_die (2, "%s", err);
    return config;
}

/* The configuration the options borrow from: it lives until
   s_finish. */
static sc_config_t *s_config;

/* value, or else the file's setting for key. */
static const char *
s_or_config (const char *value, const sc_config_t *config, const char *key)
{
    return value ? value : sc_config_get (config, key);
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
        { "bell", required_argument, NULL, 'L' },
        { "code", required_argument, NULL, 'C' },
        { "data-dir", required_argument, NULL, 'D' },
        { "no-history", no_argument, NULL, 'H' },
        { "help", no_argument, NULL, 'h' },
        { "version", no_argument, NULL, 'V' },
        { NULL, 0, NULL, 0 }
    };
    memset (opts, 0, sizeof *opts);
    opts->timeout_s = 10;
    bool help = false;
    opts->bell = SC_TERM_BELL_REQUESTS;
    if (argc > 1 && strcmp (argv[1], "enrol") == 0) {
        opts->enrol = true;
        argv[1] = argv[0];      /* getopt starts after it */
        argc--;
        argv++;
    }
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
            case 'L':
                if (sc_term_bell_parse (optarg, &opts->bell))
                    s_usage_error ("--bell wants requests, messages or off");
                opts->bell_given = true;
                break;
            case 'C': opts->code = optarg; break;
            case 'D': opts->data_dir = optarg; break;
            case 'H': opts->no_history = true; break;
            case 'h': help = true; break;
            case 'V': printf ("secchat %s\n", SC_VERSION); exit (0);
            default:  s_usage_error (NULL);
        }
    }
    const char *config_dir = s_config_dir (opts->config_dir);
    if (help) {
        printf ("%s\nCONFIG is %s; the file read is %s/config.\n", s_usage,
                config_dir, config_dir);
        exit (0);
    }
    if (optind < argc)
        s_usage_error ("unexpected argument '%s'", argv[optind]);
    sc_config_t *config = s_config = s_load_config (config_dir);
    opts->endpoint = s_or_config (opts->endpoint, config, "endpoint");
    opts->user = s_or_config (opts->user, config, "user");
    opts->key_path = s_or_config (opts->key_path, config, "key");
    opts->ca_path = s_or_config (opts->ca_path, config, "ca");
    opts->broker_name = s_or_config (opts->broker_name, config, "broker-name");
    const char *bell = sc_config_get (config, "bell");
    if (!opts->bell_given && bell && sc_term_bell_parse (bell, &opts->bell))
        s_usage_error ("bell in %s/config wants requests, messages or off", config_dir);
    const char *history = sc_config_get (config, "history");
    if (history && strcmp (history, "off") == 0)
        opts->no_history = true;
    if (!opts->endpoint)
        opts->endpoint = "tcp://localhost:4242";
    if (!opts->broker_name)
        opts->broker_name = "secbroker";
    if (!opts->user)
        s_usage_error ("--user is required (or `user = NAME` in %s/config)", config_dir);
    if (!sc_name_valid (opts->user, strlen (opts->user)))
        s_usage_error ("--user must be 1 to 32 of a-z 0-9 _ -");
    if (!opts->endpoint[0] || !opts->broker_name[0])
        s_usage_error ("--endpoint and --broker-name cannot be empty");
    if (opts->code && !opts->enrol)
        s_usage_error ("--code is for `secchat enrol`");
    opts->config_dir = config_dir;
    if (!opts->key_path)
        opts->key_path = zsys_sprintf ("%s/%s.key", config_dir, opts->user);
    if (!opts->ca_path)
        opts->ca_path = zsys_sprintf ("%s/ca.pem", config_dir);
    if (!opts->key_path || !opts->ca_path)
        s_die (1, "out of memory");
    if (!opts->batch && !isatty (STDIN_FILENO))
        opts->batch = true;
}

/* --endpoint EP[,EP...]: each one checked now (a usage error), spaces
   around the commas allowed. */
static void
s_parse_endpoints (s_app_t *app)
{
    const char *p = app->opts.endpoint;
    while (true) {
        size_t len = strcspn (p, ",");
        const char *start = p, *end = p + len;
        while (start < end && (*start == ' ' || *start == '\t'))
            start++;
        while (end > start && (end[-1] == ' ' || end[-1] == '\t'))
            end--;
        if (start == end)
            s_usage_error ("--endpoint: an empty endpoint in '%s'", app->opts.endpoint);
        if (app->n_endpoints == S_ENDPOINTS_MAX)
            s_usage_error ("--endpoint: at most %d endpoints", S_ENDPOINTS_MAX);
        char why[S_WHY_MAX];
        sc_endpoint_t *ep = sc_endpoint_new (start, (size_t) (end - start), why, sizeof why);
        if (!ep)
            s_usage_error ("--endpoint %s", why);
        app->endpoints[app->n_endpoints++] = ep;
        if (!p[len])
            break;
        p += len + 1;
    }
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

/* Ask on the terminal with echo off (sc_keytool_ask). -1 on end of
   input or a signal. */
static int
s_password_from_tty (int tty, const char *prompt, char *password, size_t size)
{
    return sc_keytool_ask (tty, prompt, password, size, &s_signal);
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
        char prompt[600];
        snprintf (prompt, sizeof prompt, "Password for %s: ", opts->key_path);
        if (s_password_from_tty (tty, prompt, password, sizeof password))
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

/* Enrolment: the new key's password, from the file or typed twice on
   the terminal. Not empty: the key file must not open without it. */
static void
s_new_password (const s_opts_t *opts, char *password, size_t size)
{
    if (opts->password_file) {
        s_password_from_file (opts->password_file, password, size);
        if (!password[0])
            s_die (1, "the password in %s is empty", opts->password_file);
        return;
    }
    int tty = open ("/dev/tty", O_RDWR | O_CLOEXEC | O_NOCTTY);
    if (tty < 0)
        s_die (1, "no terminal to ask the new key's password on: use --password-file");
    s_catch (SIGINT, s_on_signal);
    s_catch (SIGTERM, s_on_signal);
    s_catch (SIGHUP, s_on_signal);
    char again[S_PASSWORD_MAX], prompt[600];
    bool done = false;
    snprintf (prompt, sizeof prompt, "New password for %s: ", opts->key_path);
    for (int try = 0; try < S_PASSWORD_TRIES && !done; try++) {
        if (s_password_from_tty (tty, prompt, password, size)
            || s_password_from_tty (tty, "Again: ", again, sizeof again))
            break;
        const char *no = !password[0] ? "An empty password protects nothing, try again.\n"
                       : strcmp (password, again) ? "The two differ, try again.\n" : NULL;
        if (no && write (tty, no, strlen (no)) < 0)
            break;
        done = !no;
    }
    sc_wipe (again, sizeof again);
    close (tty);
    if (!done) {
        sc_wipe (password, size);
        s_die (1, s_signal ? "interrupted" : "no password set: nothing done");
    }
}

/* Enrolment: a new key pair, its private half written (encrypted, mode
   0600) to --key, which must not exist. */
static sc_key_t *
s_make_key (const s_opts_t *opts)
{
    if (access (opts->key_path, F_OK) == 0)
        s_die (1, "%s already exists: enrolment makes a new key; give another "
               "--key, or log in with that one", opts->key_path);
    char password[S_PASSWORD_MAX];
    s_new_password (opts, password, sizeof password);
    sc_key_t *key = sc_key_generate ();
    int rc = key ? sc_key_save_private (key, opts->key_path, password) : SC_KEY_EINTERNAL;
    sc_wipe (password, sizeof password);
    if (rc) {
        sc_key_destroy (&key);
        s_die (1, "cannot write the new key to %s: %s", opts->key_path,
               rc == SC_KEY_EIO ? strerror (errno) : sc_key_strerror (rc));
    }
    fprintf (stderr, "secchat: new key written to %s\n", opts->key_path);
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
        app->refused = ev->number == 0;
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
s_connect (const char *address, bool ipv6)
{
    zsock_t *sock = zsock_new (ZMQ_DEALER);
    if (!sock)
        return NULL;
    int64_t maxmsg = SC_ENVELOPE_MAX;
    if (zmq_setsockopt (zsock_resolve (sock), ZMQ_MAXMSGSIZE, &maxmsg, sizeof maxmsg)
        || s_sockopt (sock, ZMQ_LINGER, 2000)
        || s_sockopt (sock, ZMQ_IMMEDIATE, 1)
        || s_sockopt (sock, ZMQ_IPV6, ipv6)
        || zsock_connect (sock, "%s", address)) {
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
    if (app->n_endpoints)
        sc_endpoint_cancel (app->endpoints[app->current]);
    app->probing = false;
    app->login_deadline = 0;
}

static void
s_note (s_app_t *app, const char *fmt, ...) __attribute__ ((format (printf, 2, 3)));

/* A diagnostic: "secchat: note: ..." on standard error in batch mode,
   a line on a terminal. */
static void
s_note (s_app_t *app, const char *fmt, ...)
{
    char text[2 * S_WHY_MAX];
    va_list ap;
    va_start (ap, fmt);
    vsnprintf (text, sizeof text, fmt, ap);
    va_end (ap);
    sc_event_t ev = { .type = SC_EV_NOTICE, .text = text };
    s_on_event (app, &ev);
}

/* A new round over the endpoints after backoff_ms, which doubles. */
static void
s_schedule_reconnect (s_app_t *app, int64_t now)
{
    s_disconnect (app);
    app->reconnect_at = now + app->backoff_ms;
    app->backoff_ms *= 2;
    if (app->backoff_ms > S_BACKOFF_MAX_MS)
        app->backoff_ms = S_BACKOFF_MAX_MS;
}

static int s_attempt (s_app_t *app, int64_t now, char *why, bool *refused);

/* The first login could not be made: every endpoint and why, one line. */
static void
s_unreachable (s_app_t *app) __attribute__ ((noreturn));

static void
s_finish (s_app_t *app, int code, const char *why) __attribute__ ((noreturn));

static void
s_unreachable (s_app_t *app)
{
    char line[S_ENDPOINTS_MAX * (S_WHY_MAX + SC_ENDPOINT_TEXT_MAX + 16)];
    size_t len = (size_t) snprintf (line, sizeof line, "broker unreachable: ");
    for (size_t i = 0; i < app->n_endpoints && len < sizeof line; i++)
        len += (size_t) snprintf (line + len, sizeof line - len, "%s%s: %s", i ? "; " : "",
                                  sc_endpoint_name (app->endpoints[i]),
                                  app->why[i][0] ? app->why[i] : "not tried");
    s_finish (app, 1, line);
}

/* The attempt on the current endpoint failed (refused: a refusal or a
   name that does not resolve, which trying again soon will not fix):
   on to the next endpoint, or at the end of the list a new round after
   the backoff. A first login gives up when the whole list refused, or
   when its --timeout would pass before the next round. */
static void
s_endpoint_failed (s_app_t *app, int64_t now, const char *failure, bool refused)
{
    char why[S_WHY_MAX];
    snprintf (why, sizeof why, "%s", failure);
    while (true) {
        s_disconnect (app);
        size_t i = app->current;
        bool news = strcmp (app->why[i], why) != 0;
        snprintf (app->why[i], sizeof app->why[i], "%s", why);
        if (!refused)
            app->round_refused = false;
        const char *name = sc_endpoint_name (app->endpoints[i]);
        if (i + 1 == app->n_endpoints) {
            if (!sc_client_ever_ready (app->client)
                && (app->round_refused || now + app->backoff_ms >= app->first_deadline))
                s_unreachable (app);
            if (news)
                s_note (app, "%s: %s; retrying", name, why);
            s_schedule_reconnect (app, now);
            return;
        }
        if (news)
            s_note (app, "%s: %s; trying %s", name, why,
                    sc_endpoint_name (app->endpoints[i + 1]));
        app->current = i + 1;
        if (s_attempt (app, now, why, &refused) == 0)
            return;
    }
}

/* The probe found the endpoint: a new socket to that address and a
   fresh handshake, new ephemeral keys. 0, or -1 with why. */
static int
s_open_socket (s_app_t *app, int64_t now, char *why)
{
    sc_endpoint_t *ep = app->endpoints[app->current];
    app->probing = false;
    app->sock = s_connect (sc_endpoint_address (ep), sc_endpoint_ipv6 (ep));
    if (!app->sock) {
        snprintf (why, S_WHY_MAX, "cannot connect to %s: %s", sc_endpoint_address (ep),
                  zmq_strerror (zmq_errno ()));
        return -1;
    }
    if (sc_client_start (app->client, now)) {
        snprintf (why, S_WHY_MAX, "cannot start the login");
        return -1;
    }
    return 0;
}

/* The probe's result so far: 0 when it goes on or the login started,
   -1 with why (S_WHY_MAX bytes) and *refused when it failed. */
static int
s_probe_result (s_app_t *app, int64_t now, int rc, char *why, bool *refused)
{
    *refused = false;
    if (rc > 0)
        return s_open_socket (app, now, why);
    if (rc == 0)
        return 0;
    snprintf (why, S_WHY_MAX, "%s", sc_endpoint_error (app->endpoints[app->current]));
    *refused = true;
    return -1;
}

/* Try the current endpoint: resolve it and see that its port answers
   (ZeroMQ would retry a refused port or a bad name in silence), within
   this endpoint's share of --timeout. 0 while it goes on; -1 with why
   and *refused when it failed already. */
static int
s_attempt (s_app_t *app, int64_t now, char *why, bool *refused)
{
    int64_t attempt = app->opts.timeout_s * 1000 / (int64_t) app->n_endpoints;
    if (attempt < S_ATTEMPT_MIN_MS)
        attempt = S_ATTEMPT_MIN_MS;
    app->attempt_start = now;
    app->login_deadline = now + attempt;
    /* the first login has --timeout in all, retries included */
    if (!sc_client_ever_ready (app->client) && app->login_deadline > app->first_deadline)
        app->login_deadline = app->first_deadline;
    app->login_error[0] = 0;
    app->probing = true;
    int rc = sc_endpoint_probe (app->endpoints[app->current]);
    return s_probe_result (app, now, rc, why, refused);
}

/* The probe's socket polled: go on with what it says. */
static void
s_probe_step (s_app_t *app, int64_t now)
{
    char why[S_WHY_MAX];
    bool refused = false;
    int rc = sc_endpoint_step (app->endpoints[app->current]);
    if (s_probe_result (app, now, rc, why, &refused))
        s_endpoint_failed (app, now, why, refused);
}

/* A round over the endpoints, from the first. */
static void
s_start_login (s_app_t *app, int64_t now)
{
    app->reconnect_at = 0;
    if (!app->first_deadline)
        app->first_deadline = now + app->opts.timeout_s * 1000;
    app->current = 0;
    app->round_refused = true;
    char why[S_WHY_MAX];
    bool refused = false;
    if (s_attempt (app, now, why, &refused))
        s_endpoint_failed (app, now, why, refused);
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
    /* An enrolment refused registered nothing: its new key goes, so
       the same command can be run again. One that may have gone through
       (the broker lost before its answer) keeps the key. */
    if (app->key_made && app->client && !sc_client_ever_ready (app->client)) {
        if (app->refused && unlink (app->opts.key_path) == 0)
            fprintf (stderr, "secchat: nothing was registered; %s removed\n",
                     app->opts.key_path);
        else
            fprintf (stderr, "secchat: the new key stays in %s: if the enrolment went "
                     "through, log in with it\n", app->opts.key_path);
    }
    sc_client_destroy (&app->client);
    for (size_t i = 0; i < app->n_endpoints; i++)
        sc_endpoint_destroy (&app->endpoints[i]);
    sc_history_destroy (&app->history);
    sc_key_destroy (&app->key);
    sc_ca_destroy (&app->ca);
    sc_config_destroy (&s_config);
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
    if (state == SC_CLIENT_DEAD)
        s_finish (app, 1, app->login_error[0] ? app->login_error
                                              : "broker unreachable");
    /* a login this endpoint refused for now (busy, rate, stopping) or
       lost: the next one, or again within --timeout */
    if (state == SC_CLIENT_OFFLINE && app->sock && app->login_deadline) {
        s_endpoint_failed (app, now, app->login_error[0] ? app->login_error
                           : "the connection was lost during the login", false);
    }
    else
    if (state == SC_CLIENT_OFFLINE && app->sock)
        s_schedule_reconnect (app, now);         /* a session lost: a new round */
    else
    if (state >= SC_CLIENT_IDLE && app->login_deadline) {
        app->login_deadline = 0;
        app->backoff_ms = S_BACKOFF_MIN_MS;
        app->login_error[0] = 0;
        memset (app->why, 0, sizeof app->why);
        if (app->n_endpoints > 1)
            s_note (app, "logged in at %s",
                    sc_endpoint_name (app->endpoints[app->current]));
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

/* On a terminal, a message longer than one is sent as several, cut at
   character boundaries; each piece starting with '/' escaped. (The
   terminal gives lines of at most 1000 bytes typed, 1 MiB pasted.) */
static void
s_split_message (s_app_t *app, const char *line, size_t len, int64_t now)
{
    const char *text = line + (line[0] == '/' ? 1 : 0);
    size_t left = len - (size_t) (text - line), pieces = 0;
    char piece[SC_TEXT_MAX + 2];
    while (left > 0 && sc_client_state (app->client) < SC_CLIENT_DONE) {
        size_t cut = sc_term_split (text, left, SC_TEXT_MAX);
        size_t at = text[0] == '/' ? 1 : 0;
        piece[0] = '/';
        memcpy (piece + at, text, cut);
        sc_client_command (app->client, piece, at + cut, now);
        text += cut;
        left -= cut;
        pieces++;
    }
    sc_wipe (piece, sizeof piece);
    char note[128];
    snprintf (note, sizeof note, "-- a long line, cut into %zu messages", pieces);
    sc_term_print (app->term, SC_TERM_INFO, note);
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
    if (app->term && len > SC_TEXT_MAX + (line[0] == '/' ? 1u : 0u)
        && (line[0] != '/' || line[1] == '/'))
        s_split_message (app, line, len, now);
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
        s_quit (app);       /* ^D on an empty line, or the terminal hung up */
    else
        s_line (app, line, len, false);    /* bounded by the terminal */
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
    int term = app->term ? sc_term_timeout (app->term) : -1;
    if (term >= 0 && term < timeout)
        timeout = term;
    return timeout > 0 ? (long) timeout : 0;
}

static void
s_timers (s_app_t *app, int64_t now)
{
    sc_client_tick (app->client, now);
    s_after (app, now);
    if (app->login_deadline && now >= app->login_deadline) {
        char why[S_WHY_MAX];
        snprintf (why, sizeof why, "no answer in %.1f s",
                  (double) (now - app->attempt_start) / 1000);
        if (sc_client_state (app->client) != SC_CLIENT_OFFLINE)
            sc_client_reset (app->client);
        s_endpoint_failed (app, now, why, false);
    }
    if (app->reconnect_at && now >= app->reconnect_at)
        s_start_login (app, now);
    s_after (app, now);
}

/* Ctrl-C on a terminal: the terminal clears the line, or asks before
   what an empty line's Ctrl-C does here. */
static void
s_interrupt (s_app_t *app, sc_client_state_t state)
{
    const char *peer = sc_client_peer (app->client);
    char question[128];
    const char *line = "/leave";
    if (state == SC_CLIENT_CHATTING || state == SC_CLIENT_KEYX)
        snprintf (question, sizeof question, "end the chat with %s?", peer ? peer : "?");
    else if (state == SC_CLIENT_WAITING)
        snprintf (question, sizeof question, "withdraw your request to %s?",
                  peer ? peer : "?");
    else if (state == SC_CLIENT_INCOMING) {
        snprintf (question, sizeof question, "refuse %s's request?", peer ? peer : "?");
        line = "/refuse";
    }
    else {
        snprintf (question, sizeof question, "quit secchat?");
        line = "/quit";
    }
    sc_term_interrupt (app->term, question, line);
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
        int sig = s_signal;
        s_signal = 0;
        sc_client_state_t state = sc_client_state (app->client);
        if (state < SC_CLIENT_IDLE && !sc_client_ever_ready (app->client))
            s_finish (app, 1, "interrupted");
        if (sig == SIGINT && app->term)
            s_interrupt (app, state);
        else
            s_quit (app);
    }
}

static void s_loop (s_app_t *app) __attribute__ ((noreturn));

static void
s_loop (s_app_t *app)
{
    while (true) {
        int64_t now = s_now ();
        zmq_pollitem_t items[3];
        int n = 0;
        if (app->sock)
            items[n++] = (zmq_pollitem_t) { .socket = zsock_resolve (app->sock),
                .events = (short) (ZMQ_POLLIN | (app->outq_len ? ZMQ_POLLOUT : 0)) };
        int in = app->stdin_open ? n : -1;
        if (app->stdin_open)
            items[n++] = (zmq_pollitem_t) { .fd = STDIN_FILENO, .events = ZMQ_POLLIN };
        int probe = app->probing ? n : -1;
        if (app->probing)
            items[n++] = (zmq_pollitem_t) {
                .fd = sc_endpoint_fd (app->endpoints[app->current]),
                .events = ZMQ_POLLIN | ZMQ_POLLOUT };
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
        /* an Escape kept for the rest of its sequence, now alone */
        else if (app->term && sc_term_timeout (app->term) == 0)
            sc_term_read (app->term);
        if (rc > 0 && probe >= 0 && app->probing && items[probe].revents) {
            s_probe_step (app, s_now ());
            s_after (app, s_now ());
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

/* secchat keygen, passwd, fingerprint: keygen's defaults are the
   configuration's user (else the login name) and CONFIG. */
static int
s_keytool (int argc, char *argv[])
{
    char *config_dir = NULL;
    const char *user = NULL;
    sc_config_t *config = NULL;
    if (strcmp (argv[0], "keygen") == 0) {
        config_dir = (char *) s_config_dir (NULL);      /* malloc'd */
        config = s_load_config (config_dir);
        user = sc_config_get (config, "user");
        const char *login = getenv ("USER");
        if (!user && login && sc_name_valid (login, strlen (login)))
            user = login;
    }
    int rc = sc_keytool_main (argc, argv, user, config_dir);
    sc_config_destroy (&config);
    zstr_free (&config_dir);
    return rc;
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
    if (argc > 1 && sc_keytool_is_command (argv[1]))
        return s_keytool (argc - 1, argv + 1);
    static s_app_t app;
    s_parse_args (argc, argv, &app.opts);
    s_parse_endpoints (&app);
    signal (SIGPIPE, SIG_IGN);
    uint8_t code[SC_HS_CODE_LEN] = { 0 };
    if (app.opts.code) {
        if (sc_enrol_code_parse (app.opts.code, code))
            s_die (2, "--code: not an invitation code (8 groups of 4 letters A-Z and "
                   "digits 2-7, as secbroker invite printed it)");
        /* out of the command line that other users can list */
        char *arg = (char *) app.opts.code;
        memset (arg, 'x', strlen (arg));
        app.opts.code = NULL;
    }
    app.ca = s_load_ca (app.opts.ca_path);
    if (app.opts.enrol) {
        s_make_config_dir (app.opts.config_dir);
        app.key = s_make_key (&app.opts);
        app.key_made = true;
    }
    else {
        app.key = s_load_key (&app.opts);
        s_make_config_dir (app.opts.config_dir);
    }
    char *pins = zsys_sprintf ("%s/%s.pins", app.opts.config_dir, app.opts.user);
    if (!pins)
        s_die (1, "out of memory");
    sc_client_io_t io = { .arg = &app, .send = s_io_send, .event = s_on_event };
    app.client = sc_client_new (app.key, app.opts.user, app.ca, app.opts.broker_name,
                                pins, &io);
    zstr_free (&pins);
    if (app.client && app.opts.enrol && sc_client_set_enrol (app.client, code))
        sc_client_destroy (&app.client);
    sc_wipe (code, sizeof code);
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
        sc_term_set_bell (app.term, app.opts.bell);
    }
    s_open_history (&app);
    app.stdin_open = true;
    app.backoff_ms = S_BACKOFF_MIN_MS;
    s_start_login (&app, s_now ());
    s_after (&app, s_now ());
    s_loop (&app);              /* ends through s_finish, which exits */
    return 0;
}
