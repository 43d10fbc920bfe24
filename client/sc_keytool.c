/*  sc_keytool: secchat's key subcommands (see sc_keytool.h).

    The keys themselves are sc_key's: generated, encrypted and written as
    PEM there; this file asks for passwords, names files and writes them
    safely (a temporary file beside the target, written, synced, then
    linked or renamed into place, and the directory synced).

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at https://mozilla.org/MPL/2.0/.
*/
#include "sc_keytool.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

#include "sc_crypto.h"
#include "sc_key.h"
#include "sc_msg.h"

#define S_PASSWORD_MAX  1024
#define S_TRIES         3

static volatile sig_atomic_t s_signal;

static void
s_on_signal (int sig)
{
    s_signal = sig;
}

static void
s_say (const char *fmt, ...) __attribute__ ((format (printf, 1, 2)));

static void
s_say (const char *fmt, ...)
{
    va_list ap;
    va_start (ap, fmt);
    fputs ("secchat: ", stderr);
    vfprintf (stderr, fmt, ap);
    fputs ("\n", stderr);
    va_end (ap);
}

/* ---- Passwords ------------------------------------------------------------ */

int
sc_keytool_ask (int tty, const char *prompt, char *password, size_t size,
                volatile sig_atomic_t *stop)
{
    struct termios saved, quiet;
    if (tcgetattr (tty, &saved))
        return -1;
    quiet = saved;
    quiet.c_lflag &= (tcflag_t) ~(ECHO | ECHONL);
    quiet.c_lflag |= ICANON;
    /* Echo off first, then the prompt: what is typed once the prompt
       shows is neither echoed nor flushed. */
    if (tcsetattr (tty, TCSAFLUSH, &quiet))
        return -1;
    if (write (tty, prompt, strlen (prompt)) < 0) {
        tcsetattr (tty, TCSAFLUSH, &saved);
        return -1;
    }
    size_t len = 0;
    int rc = -1;
    char c = 0;
    while (!*stop) {
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
    if (rc || *stop)
        sc_wipe (password, size);
    return *stop ? -1 : rc;
}

static int
s_open_tty (const char *why)
{
    int tty = open ("/dev/tty", O_RDWR | O_CLOEXEC | O_NOCTTY);
    if (tty < 0)
        s_say ("no terminal to ask %s on: use --password-file", why);
    return tty;
}

/* The first line of a file. 0 or -1 (said why). */
static int
s_password_file (const char *path, char *password, size_t size)
{
    int rc = sc_key_read_password (path, password, size);
    if (rc == SC_KEY_EFORMAT)
        s_say ("the first line of %s is too long for a password", path);
    else if (rc)
        s_say ("cannot read password file %s: %s", path, strerror (errno));
    return rc ? -1 : 0;
}

/* A new password: the first line of file, or asked twice on the
   terminal until both agree (S_TRIES times). Never empty. 0 or -1. */
static int
s_new_password (const char *file, const char *what, char *password, size_t size)
{
    if (file) {
        if (s_password_file (file, password, size))
            return -1;
        if (!password[0]) {
            s_say ("the first line of %s is empty: a key needs a password", file);
            return -1;
        }
        return 0;
    }
    int tty = s_open_tty ("the new password");
    if (tty < 0)
        return -1;
    char again[S_PASSWORD_MAX], prompt[600];
    int rc = -1;
    for (int try = 0; try < S_TRIES && rc; try++) {
        snprintf (prompt, sizeof prompt, "New password for %s: ", what);
        if (sc_keytool_ask (tty, prompt, password, size, &s_signal))
            break;
        if (!password[0]) {
            if (write (tty, "An empty password protects nothing; type one.\n", 47) < 0)
                break;
            continue;
        }
        if (sc_keytool_ask (tty, "The same password again: ", again, sizeof again, &s_signal))
            break;
        if (strcmp (password, again) == 0)
            rc = 0;
        else if (write (tty, "The passwords differ; again.\n", 29) < 0)
            break;
    }
    sc_wipe (again, sizeof again);
    close (tty);
    if (rc) {
        sc_wipe (password, size);
        s_say ("%s", s_signal ? "interrupted" : "no new password: nothing changed");
    }
    return rc;
}

/* Opens the private key at path with the first line of password_file,
   or with a password asked on the terminal (S_TRIES times). NULL (said
   why) when it does not open. */
static sc_key_t *
s_open_private (const char *path, const char *password_file)
{
    char password[S_PASSWORD_MAX], prompt[600];
    int err = 0;
    sc_key_t *key = NULL;
    int tty = -1;
    for (int try = 0; try < S_TRIES && !key; try++) {
        if (password_file) {
            if (s_password_file (password_file, password, sizeof password))
                return NULL;
        }
        else {
            if (tty < 0 && (tty = s_open_tty ("the key's password")) < 0)
                return NULL;
            if (try > 0 && write (tty, "Wrong password, try again.\n", 27) < 0)
                break;
            snprintf (prompt, sizeof prompt, "Password for %s: ", path);
            if (sc_keytool_ask (tty, prompt, password, sizeof password, &s_signal))
                break;
        }
        key = sc_key_load_private (path, password, &err);
        sc_wipe (password, sizeof password);
        if (!key && (err != SC_KEY_EBADPASS || password_file))
            break;
    }
    if (tty >= 0)
        close (tty);
    if (!key && s_signal)
        s_say ("interrupted");
    else if (!key && err == SC_KEY_EBADPASS && password_file)
        s_say ("wrong password for %s (from %s)", path, password_file);
    else if (!key && err == SC_KEY_EBADPASS)
        s_say ("wrong password for %s", path);
    else if (!key && err == SC_KEY_EPERM)
        s_say ("UNPROTECTED PRIVATE KEY FILE %s: group or others can access it; "
               "run: chmod 600 %s", path, path);
    else if (!key && err)
        s_say ("cannot load key %s: %s", path, sc_key_strerror (err));
    return key;
}

/* ---- Files ------------------------------------------------------------------ */

static int
s_write_all (int fd, const char *data, size_t len)
{
    while (len) {
        ssize_t n = write (fd, data, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        data += n;
        len -= (size_t) n;
    }
    return 0;
}

/* fsync the directory that holds path, so that a rename or link in it
   outlives a crash. */
static int
s_sync_dir (const char *path)
{
    char *dir = strdup (path);
    if (!dir)
        return -1;
    char *slash = strrchr (dir, '/');
    if (slash)
        *(slash == dir ? slash + 1 : slash) = 0;
    int fd = open (slash ? dir : ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    free (dir);
    int rc = fd >= 0 && fsync (fd) == 0 ? 0 : -1;
    if (fd >= 0)
        close (fd);
    return rc;
}

/* Writes data to path with mode: into a temporary file beside it,
   synced, then renamed over path (replace) or linked to it, which fails
   when path exists (EEXIST). Either way path is the old file or the
   whole new one, never a part. 0, or -1 with errno set. */
static int
s_write_file (const char *path, const char *data, size_t len, mode_t mode, bool replace)
{
    size_t tmp_len = strlen (path) + sizeof ".tmpXXXXXX";
    char *tmp = malloc (tmp_len);
    if (!tmp)
        return -1;
    snprintf (tmp, tmp_len, "%s.tmpXXXXXX", path);
    int fd = mkstemp (tmp);             /* O_EXCL, mode 0600 */
    if (fd < 0) {
        free (tmp);
        return -1;
    }
    int rc = fchmod (fd, mode) || s_write_all (fd, data, len) || fsync (fd) ? -1 : 0;
    int saved = errno;
    if (close (fd) && rc == 0) {
        rc = -1;
        saved = errno;
    }
    if (rc == 0 && (replace ? rename (tmp, path) : link (tmp, path))) {
        rc = -1;
        saved = errno;
    }
    if (rc || !replace)
        unlink (tmp);
    if (rc == 0 && s_sync_dir (path)) {
        rc = -1;
        saved = errno;
    }
    free (tmp);
    errno = saved;
    return rc;
}

/* mkdir -p, each new directory mode 0700. 0 or -1. */
static int
s_make_dirs (const char *dir)
{
    char *path = strdup (dir);
    if (!path)
        return -1;
    int rc = 0;
    for (char *p = path + 1; rc == 0; p++) {
        if (*p != '/' && *p != 0)
            continue;
        char saved = *p;
        *p = 0;
        if (mkdir (path, 0700) && errno != EEXIST)
            rc = -1;
        *p = saved;
        if (!saved)
            break;
    }
    free (path);
    return rc;
}

static int
s_fingerprint_of (const sc_key_t *key, char fpr[static SC_FPR_LEN + 1])
{
    uint8_t pub[SC_PUB_LEN];
    return sc_key_public_raw (key, pub) || sc_fingerprint (pub, fpr) ? -1 : 0;
}

/* ---- The subcommands ------------------------------------------------------------ */

static const char s_usage[] =
    "usage: secchat keygen [--user NAME] [--out DIR] [--password-file FILE]\n"
    "       secchat passwd KEYFILE [--password-file OLD] [--new-password-file NEW]\n"
    "       secchat fingerprint FILE [--password-file FILE]\n";

static int
s_usage_error (const char *fmt, ...) __attribute__ ((format (printf, 1, 2)));

static int
s_usage_error (const char *fmt, ...)
{
    va_list ap;
    va_start (ap, fmt);
    fputs ("secchat: ", stderr);
    vfprintf (stderr, fmt, ap);
    fputs ("\n", stderr);
    va_end (ap);
    fputs (s_usage, stderr);
    return 2;
}

typedef struct {
    const char *user, *out, *password_file, *new_password_file, *file;
} s_args_t;

/* Options of every subcommand; which ones apply is checked after. 0, or
   an exit status. */
static int
s_parse (int argc, char *argv[], s_args_t *args)
{
    static const struct option longs[] = {
        { "user", required_argument, NULL, 'u' },
        { "out", required_argument, NULL, 'o' },
        { "password-file", required_argument, NULL, 'p' },
        { "new-password-file", required_argument, NULL, 'n' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 }
    };
    bool keygen = strcmp (argv[0], "keygen") == 0;
    bool passwd = strcmp (argv[0], "passwd") == 0;
    optind = 1;
    opterr = 1;
    int c;
    while ((c = getopt_long (argc, argv, "h", longs, NULL)) != -1) {
        switch (c) {
            case 'u': args->user = optarg; break;
            case 'o': args->out = optarg; break;
            case 'p': args->password_file = optarg; break;
            case 'n': args->new_password_file = optarg; break;
            case 'h': fputs (s_usage, stdout); return -1;
            default:  fputs (s_usage, stderr); return 2;
        }
    }
    if ((args->user || args->out) && !keygen)
        return s_usage_error ("--user and --out are keygen's options");
    if (args->new_password_file && !passwd)
        return s_usage_error ("--new-password-file is passwd's option");
    if (keygen && optind < argc)
        return s_usage_error ("unexpected argument '%s'", argv[optind]);
    if (!keygen && optind + 1 != argc)
        return s_usage_error ("secchat %s takes one FILE", argv[0]);
    if (!keygen)
        args->file = argv[optind];
    return 0;
}

static int
s_keygen (const s_args_t *args, const char *user, const char *dir)
{
    if (args->user)
        user = args->user;
    if (!user)
        return s_usage_error ("no user name: give --user NAME");
    if (!sc_name_valid (user, strlen (user)))
        return s_usage_error ("--user must be 1 to 32 of a-z 0-9 _ - (not '%s')", user);
    if (args->out)
        dir = args->out;
    if (!dir || !dir[0])
        return s_usage_error ("no directory for the key: give --out DIR");
    char key_path[PATH_MAX], pub_path[PATH_MAX];
    if (snprintf (key_path, sizeof key_path, "%s/%s.key", dir, user) >= (int) sizeof key_path
        || snprintf (pub_path, sizeof pub_path, "%s/%s.pub", dir, user) >= (int) sizeof pub_path)
        return s_usage_error ("the directory name is too long");
    struct stat st;
    if (lstat (key_path, &st) == 0) {
        s_say ("%s exists: keygen never replaces a key (its password changes "
               "with: secchat passwd %s)", key_path, key_path);
        return 1;
    }
    if (s_make_dirs (dir)) {
        s_say ("cannot create %s: %s", dir, strerror (errno));
        return 1;
    }
    char password[S_PASSWORD_MAX];
    if (s_new_password (args->password_file, key_path, password, sizeof password))
        return 1;
    sc_key_t *key = sc_key_generate ();
    char *pem = NULL, *pub = NULL;
    size_t pem_len = 0, pub_len = 0;
    char fpr[SC_FPR_LEN + 1];
    int rc = key && sc_key_private_pem (key, password, &pem, &pem_len) == 0
             && sc_key_public_pem (key, &pub, &pub_len) == 0
             && s_fingerprint_of (key, fpr) == 0 ? 0 : -1;
    sc_wipe (password, sizeof password);
    sc_key_destroy (&key);
    if (rc)
        s_say ("cannot make the key: out of memory or an OpenSSL failure");
    else if (s_write_file (key_path, pem, pem_len, 0600, false)) {
        if (errno == EEXIST)
            s_say ("%s appeared meanwhile: not replaced", key_path);
        else
            s_say ("cannot write %s: %s", key_path, strerror (errno));
        rc = -1;
    }
    else if (s_write_file (pub_path, pub, pub_len, 0644, true)) {
        s_say ("cannot write %s: %s", pub_path, strerror (errno));
        rc = -1;
    }
    free (pem);
    free (pub);
    if (rc)
        return 1;
    printf ("Your key:        %s (keep it to yourself)\n"
            "Your public key: %s (send it to the broker's administrator)\n"
            "Fingerprint:     %s\n", key_path, pub_path, fpr);
    return 0;
}

static int
s_passwd (const s_args_t *args)
{
    /* The file the path names: a key reached through a link is replaced
       where it is, and the link stays. */
    char path[PATH_MAX];
    if (!realpath (args->file, path)) {
        s_say ("cannot open %s: %s", args->file, strerror (errno));
        return 1;
    }
    sc_key_t *key = s_open_private (path, args->password_file);
    if (!key)
        return 1;
    char password[S_PASSWORD_MAX];
    char *pem = NULL;
    size_t pem_len = 0;
    int rc = s_new_password (args->new_password_file, path, password, sizeof password);
    if (rc == 0 && sc_key_private_pem (key, password, &pem, &pem_len)) {
        s_say ("cannot encrypt the key: out of memory or an OpenSSL failure");
        rc = -1;
    }
    /* What is written must open with the new password as the same key. */
    sc_key_t *check = rc ? NULL : sc_key_private_from_pem (pem, pem_len, password, NULL);
    sc_wipe (password, sizeof password);
    uint8_t was[SC_PUB_LEN], now[SC_PUB_LEN];
    char fpr[SC_FPR_LEN + 1];
    if (rc == 0 && (!check || sc_key_public_raw (key, was) || sc_key_public_raw (check, now)
                    || memcmp (was, now, sizeof was) != 0 || s_fingerprint_of (key, fpr))) {
        s_say ("the re-encrypted key does not open as the same key: nothing changed");
        rc = -1;
    }
    sc_key_destroy (&check);
    sc_key_destroy (&key);
    if (rc == 0 && s_write_file (path, pem, pem_len, 0600, true)) {
        s_say ("cannot write %s: %s (the old file is unchanged)", path, strerror (errno));
        rc = -1;
    }
    free (pem);
    if (rc)
        return 1;
    printf ("The password of %s is changed (the same key: %s).\n", path, fpr);
    return 0;
}

/* True when the start of the file has a PEM private key's armour. */
static bool
s_looks_private (const char *path)
{
    char head[4097];
    int fd = open (path, O_RDONLY | O_CLOEXEC);
    ssize_t n = fd >= 0 ? read (fd, head, sizeof head - 1) : -1;
    if (fd >= 0)
        close (fd);
    head[n > 0 ? n : 0] = 0;
    bool found = strstr (head, "PRIVATE KEY-----") != NULL;
    sc_wipe (head, sizeof head);
    return found;
}

static int
s_fingerprint (const s_args_t *args)
{
    int err = 0;
    sc_key_t *key = sc_key_load_public (args->file, &err);
    if (!key && err == SC_KEY_EFORMAT && !s_looks_private (args->file))
        s_say ("%s: not a public or private key secchat can read", args->file);
    else if (!key && err == SC_KEY_EFORMAT) {
        /* not a public key: an unencrypted private one, or one that
           needs its password */
        key = sc_key_load_private (args->file, NULL, &err);
        if (!key && err == SC_KEY_EBADPASS)
            key = s_open_private (args->file, args->password_file);
        else if (!key)
            s_say ("%s: %s", args->file, err == SC_KEY_EFORMAT
                   ? "not a public or private key secchat can read" : sc_key_strerror (err));
    }
    else if (!key)
        s_say ("%s: %s", args->file, sc_key_strerror (err));
    char fpr[SC_FPR_LEN + 1];
    int rc = key && s_fingerprint_of (key, fpr) == 0 ? 0 : 1;
    sc_key_destroy (&key);
    if (rc == 0)
        printf ("%s\n", fpr);
    return rc;
}

bool
sc_keytool_is_command (const char *word)
{
    return word && (strcmp (word, "keygen") == 0 || strcmp (word, "passwd") == 0
                    || strcmp (word, "fingerprint") == 0);
}

int
sc_keytool_main (int argc, char *argv[], const char *user, const char *dir)
{
    if (argc < 1 || !sc_keytool_is_command (argv[0]))
        return s_usage_error ("no such subcommand");
    s_args_t args = { 0 };
    int rc = s_parse (argc, argv, &args);
    if (rc)
        return rc < 0 ? 0 : rc;
    /* a signal ends a password prompt, which then restores the terminal */
    struct sigaction sa;
    memset (&sa, 0, sizeof sa);
    sa.sa_handler = s_on_signal;
    sigemptyset (&sa.sa_mask);
    sigaction (SIGINT, &sa, NULL);
    sigaction (SIGTERM, &sa, NULL);
    sigaction (SIGHUP, &sa, NULL);
    if (strcmp (argv[0], "keygen") == 0)
        rc = s_keygen (&args, user, dir);
    else if (strcmp (argv[0], "passwd") == 0)
        rc = s_passwd (&args);
    else
        rc = s_fingerprint (&args);
    if (fflush (stdout))
        rc = 1;
    return rc;
}
