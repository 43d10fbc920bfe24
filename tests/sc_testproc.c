/*  sc_testproc: child processes for the integration tests (see
    sc_testproc.h).

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at https://mozilla.org/MPL/2.0/.
*/
//  nftw() is an X/Open interface; the build only asks for POSIX.
#ifndef _XOPEN_SOURCE
#define _XOPEN_SOURCE 700
#endif

#include "sc_testproc.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#ifdef __linux__
#include <sys/prctl.h>
#endif

#define SC_TESTPROC_CHUNK       4096    //  bytes read from a pipe at once
#define SC_TESTPROC_SHOW_MAX    200     //  bytes of a line shown in dumps
#define SC_TESTPROC_LOG_TAIL    40      //  log lines shown in dumps
#define SC_TESTPROC_SEND_MS     10000   //  limit on writing one line
#define SC_TESTPROC_BROKER_MS   10000   //  limit on the broker's start
#define SC_TESTPROC_KEYS_MS     120000  //  limit on the key script
#define SC_TESTPROC_MAX_ARGS    64
#define SC_TESTPROC_LISTENING   "secbroker listening on "

struct _sc_testproc_t {
    char *name;
    char *log_path;                 //  stderr goes here; NULL: inherited
    pid_t pid;
    int in_fd;                      //  its stdin; -1 once closed
    int out_fd;                     //  its stdout; -1 at the end
    char *buf;                      //  output read but not yet split
    size_t len;
    size_t cap;
    char **lines;                   //  every line returned, in order
    size_t nlines;
    size_t lines_cap;
    bool ended;                     //  reaped; status is valid
    int status;
    char acked [64];                //  NAME of the last "acked NAME N"
    unsigned long long acked_n;     //  and its N (0: none since "closed")
    sc_testproc_t *next;            //  registry of live processes
};

static sc_testproc_t *s_procs = NULL;

//  ---------------------------------------------------------------------
//  Small helpers

static void *
s_alloc (size_t size)
{
    void *p = calloc (1, size ? size : 1);
    if (!p) {
        fprintf (stderr, "sc_testproc: out of memory\n");
        abort ();
    }
    return p;
}

static char *
s_strdup (const char *s)
{
    size_t len = strlen (s);
    char *copy = s_alloc (len + 1);
    memcpy (copy, s, len + 1);
    return copy;
}

int64_t
sc_testproc_now_ms (void)
{
    struct timespec ts;
    clock_gettime (CLOCK_MONOTONIC, &ts);
    return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void
sc_testproc_sleep_ms (int ms)
{
    struct timespec ts = { ms / 1000, (long) (ms % 1000) * 1000000L };
    while (nanosleep (&ts, &ts) == -1 && errno == EINTR)
        ;
}

int
sc_testproc_valgrind (void)
{
    const char *v = getenv ("SC_VALGRIND");
    return v && *v && strcmp (v, "0") != 0;
}

int
sc_testproc_timeout (int ms)
{
    long scale = 1;
    const char *s = getenv ("SC_TIMEOUT_SCALE");
    if (s && *s) {
        long n = strtol (s, NULL, 10);
        if (n > 1 && n < 1000)
            scale = n;
    }
    if (sc_testproc_valgrind ())
        scale *= 10;
    long scaled = (long) ms * scale;
    return scaled > 3600000 ? 3600000 : (int) scaled;
}

//  Writes to the dead end of a pipe must fail with EPIPE, not kill the
//  test program. Children get the default back before exec.
static void
s_ignore_sigpipe (void)
{
    static bool done = false;
    if (done)
        return;
    struct sigaction sa;
    memset (&sa, 0, sizeof sa);
    sa.sa_handler = SIG_IGN;
    sigemptyset (&sa.sa_mask);
    sigaction (SIGPIPE, &sa, NULL);
    done = true;
}

static int
s_set_flags (int fd, bool cloexec, bool nonblock)
{
    if (cloexec && fcntl (fd, F_SETFD, FD_CLOEXEC) == -1)
        return -1;
    if (nonblock) {
        int flags = fcntl (fd, F_GETFL);
        if (flags == -1 || fcntl (fd, F_SETFL, flags | O_NONBLOCK) == -1)
            return -1;
    }
    return 0;
}

static void
s_close (int *fd)
{
    if (*fd >= 0)
        close (*fd);
    *fd = -1;
}

//  ---------------------------------------------------------------------
//  Starting and ending

//  Writes to stderr from the child, where stdio is not safe to use.
static void
s_write_raw (const char *data, size_t len)
{
    while (len > 0) {
        ssize_t n = write (STDERR_FILENO, data, len);
        if (n <= 0)
            return;
        data += n;
        len -= (size_t) n;
    }
}

//  In the child, between fork and exec: only async-signal-safe calls.
static void
s_child (const char *const argv [], int in_fd, int out_fd, int log_fd, pid_t parent)
{
    //  Its own process group, so a kill reaches what it starts too.
    setpgid (0, 0);
#ifdef __linux__
    //  Dies with the test program, even one that crashed.
    prctl (PR_SET_PDEATHSIG, SIGKILL);
    if (getppid () != parent)
        _exit (127);
#else
    (void) parent;
#endif
    //  Move the pipe ends above 2 first, so that no dup2 below
    //  overwrites one that is still needed.
    in_fd = fcntl (in_fd, F_DUPFD_CLOEXEC, 3);
    out_fd = fcntl (out_fd, F_DUPFD_CLOEXEC, 3);
    if (log_fd >= 0)
        log_fd = fcntl (log_fd, F_DUPFD_CLOEXEC, 3);
    if (in_fd < 0 || out_fd < 0
    ||  dup2 (in_fd, STDIN_FILENO) < 0
    ||  dup2 (out_fd, STDOUT_FILENO) < 0
    ||  (log_fd >= 0 && dup2 (log_fd, STDERR_FILENO) < 0))
        _exit (127);

    struct sigaction sa;
    memset (&sa, 0, sizeof sa);
    sa.sa_handler = SIG_DFL;
    sigemptyset (&sa.sa_mask);
    sigaction (SIGPIPE, &sa, NULL);
    sigset_t none;
    sigemptyset (&none);
    sigprocmask (SIG_SETMASK, &none, NULL);

    execvp (argv [0], (char *const *) argv);
    //  strerror is not async-signal-safe: say the errno as a number.
    int error = errno;
    char digits [12];
    size_t at = sizeof digits;
    do
        digits [--at] = (char) ('0' + error % 10);
    while ((error /= 10) && at > 0);
    static const char failed [] = "sc_testproc: cannot execute ";
    static const char number [] = ": errno ";
    s_write_raw (failed, sizeof failed - 1);
    s_write_raw (argv [0], strlen (argv [0]));
    s_write_raw (number, sizeof number - 1);
    s_write_raw (digits + at, sizeof digits - at);
    s_write_raw ("\n", 1);
    _exit (127);
}

static void
s_register (sc_testproc_t *self)
{
    self->next = s_procs;
    s_procs = self;
}

static void
s_unregister (sc_testproc_t *self)
{
    for (sc_testproc_t **p = &s_procs; *p; p = &(*p)->next)
        if (*p == self) {
            *p = self->next;
            break;
        }
    self->next = NULL;
}

sc_testproc_t *
sc_testproc_new (const char *name, const char *const argv [], const char *log_path)
{
    s_ignore_sigpipe ();
    int in_pipe [2] = { -1, -1 };
    int out_pipe [2] = { -1, -1 };
    int log_fd = -1;
    if (pipe (in_pipe) == -1 || pipe (out_pipe) == -1)
        goto failed;
    //  Every end the parent holds is close-on-exec: otherwise a later
    //  child would inherit this one's stdin and keep it open after
    //  sc_testproc_close_input.
    for (int i = 0; i < 2; i++)
        if (s_set_flags (in_pipe [i], true, false)
        ||  s_set_flags (out_pipe [i], true, false))
            goto failed;
    if (log_path) {
        log_fd = open (log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
        if (log_fd == -1)
            goto failed;
    }
    fflush (NULL);              //  no buffered output is written twice
    pid_t parent = getpid ();
    pid_t pid = fork ();
    if (pid == -1)
        goto failed;
    if (pid == 0)
        s_child (argv, in_pipe [0], out_pipe [1], log_fd, parent);

    //  Also here, so that a kill right after fork reaches the group.
    setpgid (pid, pid);
    s_close (&in_pipe [0]);
    s_close (&out_pipe [1]);
    s_close (&log_fd);
    s_set_flags (in_pipe [1], false, true);
    s_set_flags (out_pipe [0], false, true);

    sc_testproc_t *self = s_alloc (sizeof (sc_testproc_t));
    self->name = s_strdup (name);
    self->log_path = log_path ? s_strdup (log_path) : NULL;
    self->pid = pid;
    self->in_fd = in_pipe [1];
    self->out_fd = out_pipe [0];
    s_register (self);
    return self;

failed:
    fprintf (stderr, "sc_testproc: cannot start %s (%s): %s\n",
             name, argv [0], strerror (errno));
    for (int i = 0; i < 2; i++) {
        s_close (&in_pipe [i]);
        s_close (&out_pipe [i]);
    }
    s_close (&log_fd);
    return NULL;
}

void
sc_testproc_destroy (sc_testproc_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    sc_testproc_t *self = *self_p;
    if (!self->ended)
        sc_testproc_kill (self);
    s_unregister (self);
    s_close (&self->in_fd);
    s_close (&self->out_fd);
    for (size_t i = 0; i < self->nlines; i++)
        free (self->lines [i]);
    free (self->lines);
    free (self->buf);
    free (self->log_path);
    free (self->name);
    free (self);
    *self_p = NULL;
}

void
sc_testproc_destroy_all (void)
{
    while (s_procs) {
        sc_testproc_t *proc = s_procs;
        sc_testproc_destroy (&proc);
    }
}

const char *
sc_testproc_name (const sc_testproc_t *self)
{
    return self->name;
}

pid_t
sc_testproc_pid (const sc_testproc_t *self)
{
    return self->pid;
}

const char *
sc_testproc_log_path (const sc_testproc_t *self)
{
    return self->log_path;
}

//  ---------------------------------------------------------------------
//  Input

int
sc_testproc_send (sc_testproc_t *self, const char *line)
{
    size_t len = strlen (line);
    char *data = s_alloc (len + 2);
    memcpy (data, line, len + 1);
    data [len++] = '\n';               //  the NUL stays after it, unsent

    int64_t deadline = sc_testproc_now_ms () + sc_testproc_timeout (SC_TESTPROC_SEND_MS);
    size_t done = 0;
    while (self->in_fd >= 0 && done < len) {
        ssize_t n = write (self->in_fd, data + done, len - done);
        if (n > 0) {
            done += (size_t) n;
            continue;
        }
        if (n == -1 && errno != EAGAIN && errno != EINTR)
            break;
        int64_t left = deadline - sc_testproc_now_ms ();
        if (left <= 0)
            break;
        struct pollfd pfd = { self->in_fd, POLLOUT, 0 };
        poll (&pfd, 1, (int) left);
    }
    free (data);
    if (done == len)
        return 0;
    fprintf (stderr, "sc_testproc: [%s] could not write a %zu-byte line to its input: %s\n",
             self->name, len, self->in_fd < 0 ? "input closed" : strerror (errno));
    return -1;
}

int
sc_testproc_close_input (sc_testproc_t *self)
{
    if (self->in_fd < 0)
        return -1;
    s_close (&self->in_fd);
    return 0;
}

//  ---------------------------------------------------------------------
//  Output

//  Reads what the pipe has, waiting at most timeout_ms for something.
//  1 when bytes came, 0 on timeout, -1 at the end of the output.
static int
s_fill (sc_testproc_t *self, int timeout_ms)
{
    if (self->out_fd < 0)
        return -1;
    int64_t deadline = sc_testproc_now_ms () + timeout_ms;
    while (true) {
        if (self->cap - self->len < SC_TESTPROC_CHUNK) {
            size_t cap = self->cap ? self->cap * 2 : 2 * (size_t) SC_TESTPROC_CHUNK;
            char *bigger = realloc (self->buf, cap);
            if (!bigger) {
                fprintf (stderr, "sc_testproc: out of memory\n");
                abort ();
            }
            self->buf = bigger;
            self->cap = cap;
        }
        ssize_t n = read (self->out_fd, self->buf + self->len, self->cap - self->len);
        if (n > 0) {
            self->len += (size_t) n;
            return 1;
        }
        if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
            s_close (&self->out_fd);
            return -1;
        }
        int64_t left = deadline - sc_testproc_now_ms ();
        if (left <= 0)
            return 0;
        struct pollfd pfd = { self->out_fd, POLLIN, 0 };
        poll (&pfd, 1, (int) left);
    }
}

//  Takes the first len bytes of the buffer (and one more, the newline,
//  when skip) as the next line.
static const char *
s_take_line (sc_testproc_t *self, size_t len, bool skip)
{
    char *line = s_alloc (len + 1);
    memcpy (line, self->buf, len);
    line [len] = 0;
    size_t used = len + (skip ? 1 : 0);
    memmove (self->buf, self->buf + used, self->len - used);
    self->len -= used;
    if (self->nlines == self->lines_cap) {
        self->lines_cap = self->lines_cap ? self->lines_cap * 2 : 64;
        char **bigger = realloc (self->lines, self->lines_cap * sizeof (char *));
        if (!bigger) {
            fprintf (stderr, "sc_testproc: out of memory\n");
            abort ();
        }
        self->lines = bigger;
    }
    self->lines [self->nlines++] = line;
    return line;
}

//  The next line, whatever it is (sc_testproc_read_line's results).
static int
s_read_any (sc_testproc_t *self, int timeout_ms, const char **line)
{
    int64_t deadline = sc_testproc_now_ms () + timeout_ms;
    while (true) {
        char *newline = self->len ? memchr (self->buf, '\n', self->len) : NULL;
        if (newline) {
            *line = s_take_line (self, (size_t) (newline - self->buf), true);
            return 1;
        }
        if (self->out_fd < 0) {
            //  The output ended in the middle of a line: still a line.
            if (self->len) {
                *line = s_take_line (self, self->len, false);
                return 1;
            }
            return -1;
        }
        int64_t left = deadline - sc_testproc_now_ms ();
        int rc = s_fill (self, left > 0 ? (int) left : 0);
        if (rc == 0)
            return 0;
    }
}

static void s_fail (sc_testproc_t *self, int rc, const char *line, int64_t waited_ms);

//  Notes an "acked NAME N" line (true), and forgets it when the chat
//  with NAME closes.
static bool
s_note_acked (sc_testproc_t *self, const char *line)
{
    char name [64];
    unsigned long long n = 0;
    if (strncmp (line, "acked ", 6) == 0
        && sscanf (line + 6, "%63s %llu", name, &n) == 2) {
        snprintf (self->acked, sizeof self->acked, "%s", name);
        self->acked_n = n;
        return true;
    }
    if (strncmp (line, "closed ", 7) == 0 && strcmp (line + 7, self->acked) == 0)
        self->acked_n = 0;
    return false;
}

int
sc_testproc_read_line (sc_testproc_t *self, int timeout_ms, const char **line)
{
    int64_t deadline = sc_testproc_now_ms () + timeout_ms;
    while (true) {
        int64_t left = deadline - sc_testproc_now_ms ();
        int rc = s_read_any (self, left > 0 ? (int) left : 0, line);
        if (rc != 1 || !s_note_acked (self, *line))
            return rc;
    }
}

int
sc_testproc_expect_acked (sc_testproc_t *self, const char *name, unsigned long long n,
                          int timeout_ms)
{
    int64_t start = sc_testproc_now_ms ();
    int64_t deadline = start + timeout_ms;
    const char *line = NULL;
    int rc = 1;
    while (!(self->acked_n >= n && strcmp (self->acked, name) == 0)) {
        int64_t left = deadline - sc_testproc_now_ms ();
        rc = s_read_any (self, left > 0 ? (int) left : 0, &line);
        if (rc != 1 || !s_note_acked (self, line)) {
            fprintf (stderr, "\nsc_testproc: [%s] expected \"acked %s %llu\" (or more) "
                     "within %d ms\n", self->name, name, n, timeout_ms);
            s_fail (self, rc, line, sc_testproc_now_ms () - start);
            return -1;
        }
    }
    return 0;
}

//  Prints a line shortened to what a log reader needs.
static void
s_show (const char *tag, const char *line)
{
    size_t len = strlen (line);
    if (len <= SC_TESTPROC_SHOW_MAX)
        fprintf (stderr, "%s\"%s\"", tag, line);
    else
        fprintf (stderr, "%s\"%.*s...\" (%zu bytes)", tag, SC_TESTPROC_SHOW_MAX, line, len);
}

//  Says what came instead of the expected line, then shows everything.
static void
s_fail (sc_testproc_t *self, int rc, const char *line, int64_t waited_ms)
{
    fprintf (stderr, "sc_testproc: [%s] ", self->name);
    if (rc == 1)
        s_show ("got ", line);
    else
    if (rc == 0)
        fprintf (stderr, "got nothing in %lld ms", (long long) waited_ms);
    else {
        int status = sc_testproc_wait (self, sc_testproc_timeout (1000));
        fprintf (stderr, "output ended (exit status %d%s)", status,
                 status >= SC_TESTPROC_SIGNALED ? ": 256 + signal" : "");
    }
    fprintf (stderr, "\n");
    sc_testproc_dump_all ();
}

int
sc_testproc_expect (sc_testproc_t *self, const char *expected, int timeout_ms)
{
    const char *line = NULL;
    int64_t start = sc_testproc_now_ms ();
    int rc = sc_testproc_read_line (self, timeout_ms, &line);
    if (rc == 1 && strcmp (line, expected) == 0)
        return 0;
    fprintf (stderr, "\nsc_testproc: [%s] ", self->name);
    s_show ("expected ", expected);
    fprintf (stderr, " within %d ms\n", timeout_ms);
    s_fail (self, rc, line, sc_testproc_now_ms () - start);
    return -1;
}

const char *
sc_testproc_expect_prefix (sc_testproc_t *self, const char *prefix, int timeout_ms)
{
    const char *line = NULL;
    int64_t start = sc_testproc_now_ms ();
    int rc = sc_testproc_read_line (self, timeout_ms, &line);
    if (rc == 1 && strncmp (line, prefix, strlen (prefix)) == 0)
        return line;
    fprintf (stderr, "\nsc_testproc: [%s] ", self->name);
    s_show ("expected a line starting with ", prefix);
    fprintf (stderr, " within %d ms\n", timeout_ms);
    s_fail (self, rc, line, sc_testproc_now_ms () - start);
    return NULL;
}

int
sc_testproc_expect_none (sc_testproc_t *self, int quiet_ms)
{
    const char *line = NULL;
    int rc = sc_testproc_read_line (self, quiet_ms, &line);
    if (rc == 0)
        return 0;
    fprintf (stderr, "\nsc_testproc: [%s] expected no output for %d ms\n",
             self->name, quiet_ms);
    s_fail (self, rc, line, quiet_ms);
    return -1;
}

int
sc_testproc_expect_eof (sc_testproc_t *self, int timeout_ms)
{
    const char *line = NULL;
    int64_t start = sc_testproc_now_ms ();
    int rc = sc_testproc_read_line (self, timeout_ms, &line);
    if (rc == -1)
        return 0;
    fprintf (stderr, "\nsc_testproc: [%s] expected the output to end within %d ms\n",
             self->name, timeout_ms);
    s_fail (self, rc, line, sc_testproc_now_ms () - start);
    return -1;
}

int
sc_testproc_skip_to (sc_testproc_t *self, const char *expected, int timeout_ms)
{
    int64_t start = sc_testproc_now_ms ();
    int64_t deadline = start + timeout_ms;
    const char *line = NULL;
    int rc;
    do {
        int64_t left = deadline - sc_testproc_now_ms ();
        rc = sc_testproc_read_line (self, left > 0 ? (int) left : 0, &line);
        if (rc == 1 && strcmp (line, expected) == 0)
            return 0;
    } while (rc == 1);
    fprintf (stderr, "\nsc_testproc: [%s] ", self->name);
    s_show ("expected, after any other lines, ", expected);
    fprintf (stderr, " within %d ms\n", timeout_ms);
    s_fail (self, rc, line, sc_testproc_now_ms () - start);
    return -1;
}

//  ---------------------------------------------------------------------
//  Signals and exit

int
sc_testproc_signal (sc_testproc_t *self, int sig)
{
    if (self->ended)
        return -1;
    return kill (self->pid, sig);
}

static int
s_decode_status (int status)
{
    if (WIFEXITED (status))
        return WEXITSTATUS (status);
    if (WIFSIGNALED (status))
        return SC_TESTPROC_SIGNALED + WTERMSIG (status);
    return SC_TESTPROC_SIGNALED;
}

int
sc_testproc_wait (sc_testproc_t *self, int timeout_ms)
{
    int64_t deadline = sc_testproc_now_ms () + timeout_ms;
    while (!self->ended) {
        int status;
        pid_t rc = waitpid (self->pid, &status, WNOHANG);
        if (rc == self->pid) {
            self->status = s_decode_status (status);
            self->ended = true;
        }
        else
        if (rc == -1 && errno != EINTR) {
            //  Not our child any more: nothing to wait for.
            self->status = SC_TESTPROC_SIGNALED;
            self->ended = true;
        }
        else
        if (sc_testproc_now_ms () >= deadline)
            return SC_TESTPROC_TIMEOUT;
        else
            sc_testproc_sleep_ms (5);
    }
    return self->status;
}

int
sc_testproc_kill (sc_testproc_t *self)
{
    if (!self->ended) {
        kill (-self->pid, SIGKILL);
        kill (self->pid, SIGKILL);
        int status;
        pid_t rc;
        while ((rc = waitpid (self->pid, &status, 0)) == -1 && errno == EINTR)
            ;
        self->status = rc == self->pid ? s_decode_status (status) : SC_TESTPROC_SIGNALED;
        self->ended = true;
    }
    return self->status;
}

//  ---------------------------------------------------------------------
//  Diagnostics

static void
s_dump_log (const sc_testproc_t *self)
{
    if (!self->log_path)
        return;
    char *text = sc_testdir_slurp (self->log_path, NULL);
    if (!text) {
        fprintf (stderr, "  [%s] (no log at %s)\n", self->name, self->log_path);
        return;
    }
    //  Find where the last SC_TESTPROC_LOG_TAIL lines start.
    size_t len = strlen (text);
    if (len && text [len - 1] == '\n')
        text [--len] = 0;
    size_t start = len;
    int lines = 0;
    while (start > 0 && lines < SC_TESTPROC_LOG_TAIL) {
        start--;
        if (text [start] == '\n')
            lines++;
    }
    if (text [start] == '\n')
        start++;
    fprintf (stderr, "  [%s] stderr (%s, %s):\n", self->name, self->log_path,
             start ? "last lines" : "all");
    if (len == 0)
        fprintf (stderr, "  [%s] !  (empty)\n", self->name);
    char *line = text + start;
    while (line && *line) {
        char *newline = strchr (line, '\n');
        if (newline)
            *newline = 0;
        fprintf (stderr, "  [%s] ! %s\n", self->name, line);
        line = newline ? newline + 1 : NULL;
    }
    free (text);
}

void
sc_testproc_dump (sc_testproc_t *self)
{
    //  Take in what is already there, without waiting.
    while (s_fill (self, 0) == 1)
        ;
    fprintf (stderr, "  [%s] pid %d, %s; %zu lines read:\n", self->name, (int) self->pid,
             self->ended ? "ended" : "running", self->nlines);
    for (size_t i = 0; i < self->nlines; i++) {
        fprintf (stderr, "  [%s] %3zu ", self->name, i + 1);
        s_show ("", self->lines [i]);
        fprintf (stderr, "\n");
    }
    if (self->len) {
        fprintf (stderr, "  [%s] not read yet:\n", self->name);
        char *rest = s_alloc (self->len + 1);
        memcpy (rest, self->buf, self->len);
        char *line = rest;
        while (line && *line) {
            char *newline = strchr (line, '\n');
            if (newline)
                *newline = 0;
            fprintf (stderr, "  [%s]     ", self->name);
            s_show ("", line);
            fprintf (stderr, "\n");
            line = newline ? newline + 1 : NULL;
        }
        free (rest);
    }
    s_dump_log (self);
}

void
sc_testproc_dump_all (void)
{
    fprintf (stderr, "sc_testproc: ---- the processes of this test ----\n");
    //  The registry is newest first; show them in the order they started.
    size_t count = 0;
    for (sc_testproc_t *p = s_procs; p; p = p->next)
        count++;
    for (size_t i = count; i > 0; i--) {
        sc_testproc_t *p = s_procs;
        for (size_t j = 1; j < i; j++)
            p = p->next;
        sc_testproc_dump (p);
    }
    fprintf (stderr, "sc_testproc: ----\n");
}

//  ---------------------------------------------------------------------
//  A program on a pseudo-terminal

//  In the child: the terminal, the directory and the environment, then
//  the program.
static void
s_tty_child (const sc_testtty_t *tty, const char *slave, int master)
{
    setsid ();
    int fd = open (slave, O_RDWR);
    if (fd < 0 || ioctl (fd, TIOCSCTTY, 0) < 0)
        _exit (126);
    if (tty->cols) {
        struct winsize ws = { .ws_row = tty->rows, .ws_col = tty->cols };
        if (ioctl (fd, TIOCSWINSZ, &ws) < 0)
            _exit (126);
    }
    if (dup2 (fd, STDIN_FILENO) < 0 || dup2 (fd, STDOUT_FILENO) < 0
    ||  dup2 (fd, STDERR_FILENO) < 0)
        _exit (126);
    if (fd > STDERR_FILENO)
        close (fd);
    close (master);
    if (tty->cwd && chdir (tty->cwd))
        _exit (126);
    setenv ("TERM", "xterm", 1);
    for (size_t i = 0; tty->env && tty->env [i]; i++) {
        const char *eq = strchr (tty->env [i], '=');
        if (!eq)
            unsetenv (tty->env [i]);
        else {
            char name [256];
            size_t len = (size_t) (eq - tty->env [i]);
            if (len >= sizeof name)
                _exit (126);
            memcpy (name, tty->env [i], len);
            name [len] = 0;
            setenv (name, eq + 1, 1);
        }
    }
    execv (tty->argv [0], (char *const *) tty->argv);
    _exit (127);
}

pid_t
sc_testproc_tty_start (const sc_testtty_t *tty, int *master)
{
    *master = posix_openpt (O_RDWR | O_NOCTTY | O_CLOEXEC);
    const char *slave = NULL;
    if (*master < 0 || grantpt (*master) || unlockpt (*master)
    ||  !(slave = ptsname (*master))) {
        fprintf (stderr, "sc_testproc: no pseudo-terminal: %s\n", strerror (errno));
        s_close (master);
        return -1;
    }
    pid_t pid = fork ();
    if (pid == 0)
        s_tty_child (tty, slave, *master);
    if (pid < 0) {
        fprintf (stderr, "sc_testproc: cannot start %s: %s\n", tty->argv [0],
                 strerror (errno));
        s_close (master);
    }
    return pid;
}

int
sc_testproc_tty_wait (pid_t pid, int master, int timeout_ms)
{
    int64_t deadline = sc_testproc_now_ms () + timeout_ms;
    int status = 0;
    pid_t done;
    while ((done = waitpid (pid, &status, WNOHANG)) == 0
           && sc_testproc_now_ms () < deadline) {
        char sink [4096];
        struct pollfd pfd = { master, POLLIN, 0 };
        if (poll (&pfd, 1, 100) > 0 && read (master, sink, sizeof sink) <= 0)
            sc_testproc_sleep_ms (10);
    }
    return done == pid ? s_decode_status (status) : SC_TESTPROC_TIMEOUT;
}

//  ---------------------------------------------------------------------
//  Files

char *
sc_testdir_path (const char *dir, const char *name)
{
    size_t dir_len = strlen (dir);
    while (dir_len > 1 && dir [dir_len - 1] == '/')
        dir_len--;
    size_t name_len = strlen (name);
    char *path = s_alloc (dir_len + 1 + name_len + 1);
    memcpy (path, dir, dir_len);
    path [dir_len] = '/';
    memcpy (path + dir_len + 1, name, name_len);
    path [dir_len + 1 + name_len] = 0;
    return path;
}

char *
sc_testdir_new (const char *tag)
{
    const char *tmp = getenv ("TMPDIR");
    if (!tmp || !*tmp)
        tmp = "/tmp";
    char *base = sc_testdir_path (tmp, "secchat-");
    size_t size = strlen (base) + strlen (tag) + sizeof "-XXXXXX";
    char *path = s_alloc (size);
    snprintf (path, size, "%s%s-XXXXXX", base, tag);
    free (base);
    if (!mkdtemp (path)) {
        fprintf (stderr, "sc_testproc: mkdtemp %s: %s\n", path, strerror (errno));
        free (path);
        return NULL;
    }
    //  Whatever secchat the test starts keeps its history in here, never
    //  in the home folder of whoever runs the tests.
    char *data = sc_testdir_path (path, "xdg-data");
    setenv ("XDG_DATA_HOME", data, 1);
    free (data);
    return path;
}

static int
s_remove_one (const char *path, const struct stat *st, int type, struct FTW *ftw)
{
    (void) st;
    (void) type;
    (void) ftw;
    if (remove (path) == -1 && errno != ENOENT)
        fprintf (stderr, "sc_testproc: cannot remove %s: %s\n", path, strerror (errno));
    return 0;
}

int
sc_testdir_remove (const char *path)
{
    if (!path || !*path || strcmp (path, "/") == 0)
        return -1;
    nftw (path, s_remove_one, 16, FTW_DEPTH | FTW_PHYS);
    struct stat st;
    return lstat (path, &st) == -1 && errno == ENOENT ? 0 : -1;
}

void
sc_testdir_remove_unless_kept (const char *path, const char *program)
{
    const char *keep = getenv ("SC_KEEP_TMP");
    if (!path)
        return;
    if (keep && *keep && strcmp (keep, "0") != 0)
        fprintf (stderr, "%s: kept %s\n", program, path);
    else
        sc_testdir_remove (path);
}

char *
sc_testdir_next (const char *root, int *count)
{
    char name [24];
    snprintf (name, sizeof name, "t%02d", ++*count);
    char *path = sc_testdir_path (root, name);
    if (mkdir (path, 0700)) {
        fprintf (stderr, "sc_testproc: cannot make %s: %s\n", path, strerror (errno));
        free (path);
        return NULL;
    }
    return path;
}

int
sc_testdir_write (const char *path, const char *text)
{
    FILE *file = fopen (path, "w");
    bool written = file && fputs (text, file) >= 0;
    if (file && fclose (file))
        written = false;
    if (!written)
        fprintf (stderr, "sc_testproc: cannot write %s: %s\n", path, strerror (errno));
    return written ? 0 : -1;
}

char *
sc_testdir_slurp (const char *path, size_t *len)
{
    FILE *file = fopen (path, "rb");
    if (!file)
        return NULL;
    size_t used = 0;
    size_t cap = 8192;
    char *text = s_alloc (cap);
    size_t n;
    while ((n = fread (text + used, 1, cap - used - 1, file)) > 0) {
        used += n;
        if (cap - used < 2) {
            char *bigger = realloc (text, cap * 2);
            if (!bigger) {
                fprintf (stderr, "sc_testproc: out of memory\n");
                abort ();
            }
            text = bigger;
            cap *= 2;
        }
    }
    if (fclose (file) != 0) {
        free (text);
        return NULL;
    }
    text [used] = 0;
    if (len)
        *len = used;
    return text;
}

//  ---------------------------------------------------------------------
//  secchat

const char *
sc_testproc_bin_dir (void)
{
    const char *dir = getenv ("SC_BIN_DIR");
    return dir && *dir ? dir : "bin/";
}

//  An argument vector that owns its strings.
typedef struct {
    char *argv [SC_TESTPROC_MAX_ARGS + 1];
    size_t argc;
} s_args_t;

static void
s_args_add (s_args_t *args, const char *arg)
{
    if (args->argc == SC_TESTPROC_MAX_ARGS) {
        fprintf (stderr, "sc_testproc: too many arguments\n");
        abort ();
    }
    args->argv [args->argc++] = s_strdup (arg);
    args->argv [args->argc] = NULL;
}

static void
s_args_free (s_args_t *args)
{
    for (size_t i = 0; i < args->argc; i++)
        free (args->argv [i]);
    args->argc = 0;
}

//  The program from SC_BIN_DIR, under valgrind when asked.
static void
s_args_program (s_args_t *args, const char *program)
{
    if (sc_testproc_valgrind ()) {
        s_args_add (args, "valgrind");
        s_args_add (args, "--error-exitcode=99");
        s_args_add (args, "--leak-check=full");
        s_args_add (args, "-q");
    }
    char *path = sc_testdir_path (sc_testproc_bin_dir (), program);
    s_args_add (args, path);
    free (path);
}

static void
s_args_file (s_args_t *args, const char *option, const char *dir, const char *name)
{
    s_args_add (args, option);
    char *path = sc_testdir_path (dir, name);
    s_args_add (args, path);
    free (path);
}

int
sc_testproc_make_keys (const char *dir, const char *const users [])
{
    s_args_t args = { { NULL }, 0 };
    s_args_add (&args, "sh");
    s_args_add (&args, "keys/secchat-keys");
    s_args_add (&args, dir);
    for (size_t i = 0; users [i]; i++)
        s_args_add (&args, users [i]);
    size_t log_size = strlen (dir) + sizeof ".log";
    char *log_path = s_alloc (log_size);
    snprintf (log_path, log_size, "%s.log", dir);
    sc_testproc_t *keys = sc_testproc_new ("secchat-keys", (const char *const *) args.argv,
                                           log_path);
    s_args_free (&args);
    free (log_path);
    if (!keys)
        return -1;

    int64_t deadline = sc_testproc_now_ms () + SC_TESTPROC_KEYS_MS;
    const char *line;
    int rc;
    do {
        int64_t left = deadline - sc_testproc_now_ms ();
        rc = sc_testproc_read_line (keys, left > 0 ? (int) left : 0, &line);
    } while (rc == 1);
    int64_t left = deadline - sc_testproc_now_ms ();
    int status = sc_testproc_wait (keys, left > 0 ? (int) left : 0);
    if (status != 0) {
        fprintf (stderr, "sc_testproc: keys/secchat-keys %s failed (status %d)\n", dir, status);
        sc_testproc_dump (keys);
    }
    sc_testproc_destroy (&keys);
    return status == 0 ? 0 : -1;
}

sc_testproc_t *
sc_testproc_broker_new (const char *keys_dir, const char *workdir, int heartbeat_ms,
                        char *endpoint, size_t endpoint_size)
{
    char number [24];
    snprintf (number, sizeof number, "%d", heartbeat_ms);
    const char *const extra [] = { "--heartbeat", number, NULL };
    return sc_testproc_broker_new_with (keys_dir, workdir, heartbeat_ms ? extra : NULL,
                                        endpoint, endpoint_size);
}

sc_testproc_t *
sc_testproc_broker_start (const char *name, const char *keys_dir, const char *endpoint,
                          const char *const extra [], const char *log_path)
{
    s_args_t args = { { NULL }, 0 };
    s_args_program (&args, "secbroker");
    s_args_add (&args, "--endpoint");
    s_args_add (&args, endpoint);
    s_args_file (&args, "--cert", keys_dir, "broker.crt");
    s_args_file (&args, "--key", keys_dir, "broker.key");
    s_args_file (&args, "--users", keys_dir, "users");
    for (size_t i = 0; extra && extra [i]; i++)
        s_args_add (&args, extra [i]);
    sc_testproc_t *broker = sc_testproc_new (name, (const char *const *) args.argv, log_path);
    s_args_free (&args);
    return broker;
}

sc_testproc_t *
sc_testproc_broker_new_with (const char *keys_dir, const char *workdir,
                             const char *const extra [],
                             char *endpoint, size_t endpoint_size)
{
    char *log_path = sc_testdir_path (workdir, "broker.log");
    sc_testproc_t *broker = sc_testproc_broker_start ("broker", keys_dir, "tcp://127.0.0.1:!",
                                                      extra, log_path);
    free (log_path);
    if (!broker)
        return NULL;

    const char *line = sc_testproc_expect_prefix (
        broker, SC_TESTPROC_LISTENING, sc_testproc_timeout (SC_TESTPROC_BROKER_MS));
    if (!line) {
        sc_testproc_destroy (&broker);
        return NULL;
    }
    const char *ep = line + strlen (SC_TESTPROC_LISTENING);
    size_t ep_len = strlen (ep);
    if (strncmp (ep, "tcp://127.0.0.1:", 16) != 0 || ep_len <= 16
    ||  strchr (ep, '*') || ep_len >= endpoint_size) {
        fprintf (stderr, "sc_testproc: [broker] not a bound endpoint: \"%s\"\n", line);
        sc_testproc_dump_all ();
        sc_testproc_destroy (&broker);
        return NULL;
    }
    memcpy (endpoint, ep, ep_len + 1);
    return broker;
}

sc_testproc_t *
sc_testproc_client_new (const sc_testclient_t *client)
{
    const char *name = client->name ? client->name : client->user;
    size_t file_size = strlen (client->user) + sizeof ".pass";
    char *file = s_alloc (file_size);
    s_args_t args = { { NULL }, 0 };
    s_args_program (&args, "secchat");
    s_args_add (&args, "--batch");
    s_args_add (&args, "--endpoint");
    s_args_add (&args, client->endpoint);
    s_args_add (&args, "--user");
    s_args_add (&args, client->user);

    char *clients = sc_testdir_path (client->keys, "clients");
    snprintf (file, file_size, "%s.key", client->user);
    if (client->key_file) {
        s_args_add (&args, "--key");
        s_args_add (&args, client->key_file);
    }
    else
        s_args_file (&args, "--key", clients, file);
    snprintf (file, file_size, "%s.pass", client->user);
    if (client->password_file) {
        s_args_add (&args, "--password-file");
        s_args_add (&args, client->password_file);
    }
    else
        s_args_file (&args, "--password-file", clients, file);
    free (clients);
    free (file);
    if (client->ca_file) {
        s_args_add (&args, "--ca");
        s_args_add (&args, client->ca_file);
    }
    else
        s_args_file (&args, "--ca", client->keys, "ca.pem");

    //  The configuration directory exists already, as ~/.config would.
    size_t cfg_size = strlen (name) + sizeof "cfg-";
    char *cfg = s_alloc (cfg_size);
    snprintf (cfg, cfg_size, "cfg-%s", name);
    char *cfg_path = sc_testdir_path (client->workdir, cfg);
    mkdir (cfg_path, 0700);
    s_args_add (&args, "--config-dir");
    s_args_add (&args, cfg_path);
    free (cfg_path);
    free (cfg);

    //  The history goes under the test's directory, never ~/.local.
    char *data = client->data_dir ? NULL : sc_testdir_path (client->workdir, "data");
    s_args_add (&args, "--data-dir");
    s_args_add (&args, client->data_dir ? client->data_dir : data);
    free (data);
    if (client->no_history)
        s_args_add (&args, "--no-history");

    if (client->broker_name) {
        s_args_add (&args, "--broker-name");
        s_args_add (&args, client->broker_name);
    }
    if (client->timeout) {
        s_args_add (&args, "--timeout");
        s_args_add (&args, client->timeout);
    }
    size_t log_size = strlen (name) + sizeof ".log";
    char *log_name = s_alloc (log_size);
    snprintf (log_name, log_size, "%s.log", name);
    char *log_path = sc_testdir_path (client->workdir, log_name);
    sc_testproc_t *proc = sc_testproc_new (name, (const char *const *) args.argv, log_path);
    s_args_free (&args);
    free (log_path);
    free (log_name);
    return proc;
}

int
sc_testproc_open_chat (sc_testproc_t *a, const char *name_a,
                       sc_testproc_t *b, const char *name_b, int timeout_ms)
{
    char talk [300], request [300], accepted [300], chat_a [300], chat_b [300];
    snprintf (talk, sizeof talk, "/talk %s", name_b);
    snprintf (request, sizeof request, "request %s", name_a);
    snprintf (accepted, sizeof accepted, "accepted %s", name_b);
    snprintf (chat_a, sizeof chat_a, "chat %s ", name_b);
    snprintf (chat_b, sizeof chat_b, "chat %s ", name_a);
    if (sc_testproc_send (a, talk)
    ||  sc_testproc_expect (b, request, timeout_ms)
    ||  sc_testproc_send (b, "/accept")
    ||  sc_testproc_expect (a, accepted, timeout_ms)
    ||  !sc_testproc_expect_prefix (a, chat_a, timeout_ms)
    ||  !sc_testproc_expect_prefix (b, chat_b, timeout_ms))
        return -1;
    return 0;
}

//  ---------------------------------------------------------------------
//  Scraping a broker's --metrics

char *
sc_testproc_http (int port, const char *request)
{
    int fd = socket (AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return NULL;
    struct timeval tv = { 5, 0 };
    setsockopt (fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons ((uint16_t) port) };
    sa.sin_addr.s_addr = htonl (INADDR_LOOPBACK);
    size_t len = strlen (request);
    if (connect (fd, (struct sockaddr *) &sa, sizeof sa)
        || send (fd, request, len, MSG_NOSIGNAL) != (ssize_t) len) {
        close (fd);
        return NULL;
    }
    size_t size = 4096, used = 0;
    char *buf = malloc (size);
    ssize_t n = 0;
    while (buf && (n = recv (fd, buf + used, size - used - 1, 0)) > 0) {
        used += (size_t) n;
        if (size - used < 1024) {
            size *= 2;
            char *more = realloc (buf, size);
            if (!more)
                free (buf);
            buf = more;
        }
    }
    close (fd);
    if (buf)
        buf[used] = 0;
    return buf;
}

char *
sc_testproc_metrics (int port)
{
    char *answer = sc_testproc_http (port, "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                                           "Connection: close\r\n\r\n");
    if (!answer) {
        fprintf (stderr, "sc_testproc: nothing answers on port %d\n", port);
        return NULL;
    }
    char *body = strstr (answer, "\r\n\r\n");
    if (strncmp (answer, "HTTP/1.1 200 ", 13) != 0 || !body
        || !strstr (answer, "\r\nContent-Type: text/plain; version=0.0.4")) {
        fprintf (stderr, "sc_testproc: not a metrics answer:\n%s\n", answer);
        free (answer);
        return NULL;
    }
    char *text = strdup (body + 4);
    free (answer);
    return text;
}

int
sc_testproc_metric (const char *text, const char *name, unsigned long long *value)
{
    size_t len = strlen (name);
    for (const char *line = text; line && *line; line = strchr (line, '\n'), line += !!line)
        if (strncmp (line, name, len) == 0 && line[len] == ' ') {
            *value = strtoull (line + len + 1, NULL, 10);
            return 0;
        }
    return -1;
}
