/*  sc_testproc: child processes for the integration tests, driven through
    pipes the way a user drives secchat's batch mode.

    A test process has its standard input and output on pipes and its
    standard error appended to a log file. The test writes command lines
    to it and reads its output one line at a time, never waiting longer
    than a timeout. Every line read is kept, so when an expectation fails
    the harness prints what each live process said and the end of its log:
    a failing CI run explains itself.

    Every process started is registered until it is destroyed, so a
    test's teardown can kill whatever a failed test left running
    (sc_testproc_destroy_all). On Linux a child also dies with the test
    program. A program can also be started on a pseudo-terminal of its
    own, for the tests of what a person at a terminal sees; that one is
    not registered: the test reads its terminal, reaps it or kills it.

    The second half starts secchat's own programs: the key script, a
    broker on an ephemeral port and batch clients. Binaries are found in
    $SC_BIN_DIR (default bin/), the key script in keys/, relative to the
    repository root the tests run from. With SC_VALGRIND=1 the broker and
    the clients run under valgrind (exit status 99 on any error) and every
    timeout is ten times longer; SC_TIMEOUT_SCALE=N multiplies them too.

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at https://mozilla.org/MPL/2.0/.
*/
#ifndef SC_TESTPROC_H_INCLUDED
#define SC_TESTPROC_H_INCLUDED

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

typedef struct _sc_testproc_t sc_testproc_t;

//  Status values of sc_testproc_wait and sc_testproc_kill besides exit
//  codes 0..255: killed by signal S is SC_TESTPROC_SIGNALED + S.
#define SC_TESTPROC_SIGNALED 256
#define SC_TESTPROC_TIMEOUT  -1

//  ---------------------------------------------------------------------
//  Any process

//  Starts argv[0] (looked up in PATH) with stdin and stdout on pipes and
//  stderr appended to log_path (inherited when NULL). name labels its
//  output in diagnostics. NULL, with a message on stderr, on failure.
sc_testproc_t *sc_testproc_new (const char *name, const char *const argv [],
                                const char *log_path);
//  Kills the process (SIGKILL to its process group) if it still runs,
//  reaps it, and frees everything. Idempotent.
void sc_testproc_destroy (sc_testproc_t **self_p);
//  Destroys every process still registered: for teardowns.
void sc_testproc_destroy_all (void);

const char *sc_testproc_name (const sc_testproc_t *self);
pid_t sc_testproc_pid (const sc_testproc_t *self);
//  The stderr log file, or NULL.
const char *sc_testproc_log_path (const sc_testproc_t *self);

//  Writes line and a newline to the process's stdin. 0, or -1 when the
//  process does not take it within the default timeout or is gone.
int sc_testproc_send (sc_testproc_t *self, const char *line);
//  Closes the process's stdin (end of input). 0 or -1.
int sc_testproc_close_input (sc_testproc_t *self);

//  Next stdout line, without its newline: 1 and *line set (borrowed, valid
//  until the process is destroyed), 0 when none came within timeout_ms,
//  -1 at the end of the output. A secchat "acked NAME N" line (a delivery
//  report, which comes whenever the peer's acknowledgement does) is never
//  returned, here or by the expect functions: it is noted, for
//  sc_testproc_expect_acked.
int sc_testproc_read_line (sc_testproc_t *self, int timeout_ms, const char **line);

//  The next line must be exactly `line` and come within timeout_ms. 0, or
//  -1 after printing the expectation, what came and the state of every
//  live process.
int sc_testproc_expect (sc_testproc_t *self, const char *line, int timeout_ms);
//  The next line must start with prefix: the line (borrowed), or NULL
//  after printing the diagnostics.
const char *sc_testproc_expect_prefix (sc_testproc_t *self, const char *prefix,
                                       int timeout_ms);
//  No line (and no end of output) for quiet_ms. 0, or -1 with diagnostics.
int sc_testproc_expect_none (sc_testproc_t *self, int quiet_ms);
//  The output must end within timeout_ms with no further line. 0 or -1.
int sc_testproc_expect_eof (sc_testproc_t *self, int timeout_ms);
//  "acked NAME N'" with N' >= n has come (since the last "closed NAME"),
//  or comes within timeout_ms before any other line. 0, or -1 with the
//  diagnostics.
int sc_testproc_expect_acked (sc_testproc_t *self, const char *name,
                              unsigned long long n, int timeout_ms);
//  Skips lines until one equals `line`. For clean-ups that do not check
//  the lines before; tests use sc_testproc_expect. 0 or -1.
int sc_testproc_skip_to (sc_testproc_t *self, const char *line, int timeout_ms);

//  Sends signal sig to the process. 0 or -1.
int sc_testproc_signal (sc_testproc_t *self, int sig);
//  Waits for the process to end: its exit code 0..255,
//  SC_TESTPROC_SIGNALED + signal, or SC_TESTPROC_TIMEOUT. Once it ended,
//  every call returns the same status.
int sc_testproc_wait (sc_testproc_t *self, int timeout_ms);
//  SIGKILL to the process group, then its status as sc_testproc_wait.
int sc_testproc_kill (sc_testproc_t *self);

//  Prints every line read so far (and any unread output already there)
//  and the end of the log file, to stderr.
void sc_testproc_dump (sc_testproc_t *self);
//  sc_testproc_dump for every registered process.
void sc_testproc_dump_all (void);

//  ---------------------------------------------------------------------
//  A program on a pseudo-terminal

//  How to start a program on a terminal. Only argv is needed.
typedef struct {
    const char *const *argv;    //  argv [0] is a path (not looked up in PATH)
    const char *const *env;     //  changes to its environment, in order,
                                //  NULL-terminated: "NAME=VALUE" sets,
                                //  "NAME" unsets; or NULL
    const char *cwd;            //  its working directory; NULL: ours
    unsigned short rows, cols;  //  the window's size; 0: the kernel's
} sc_testtty_t;

//  Starts tty->argv on a new pseudo-terminal, which is its controlling
//  terminal and its stdin, stdout and stderr, with TERM=xterm (before
//  tty->env). Its pid, and the master side (close-on-exec) in *master,
//  which the caller reads, writes and closes; the caller reaps the child
//  too. -1, with a message on stderr, when it cannot start; the child
//  exits 126 when it cannot take the terminal or the directory, 127 when
//  argv [0] does not run.
pid_t sc_testproc_tty_start (const sc_testtty_t *tty, int *master);
//  Waits up to timeout_ms for that program to end, reading and dropping
//  what it writes meanwhile: its status as sc_testproc_wait's (the
//  caller kills it after SC_TESTPROC_TIMEOUT).
int sc_testproc_tty_wait (pid_t pid, int master, int timeout_ms);

//  ---------------------------------------------------------------------
//  Time

//  ms scaled by SC_TIMEOUT_SCALE and by 10 under SC_VALGRIND.
int sc_testproc_timeout (int ms);
//  Milliseconds on the monotonic clock.
int64_t sc_testproc_now_ms (void);
//  Sleeps ms milliseconds (not scaled).
void sc_testproc_sleep_ms (int ms);

//  ---------------------------------------------------------------------
//  Files

//  Makes a fresh private directory $TMPDIR/secchat-TAG-XXXXXX (TMPDIR
//  defaults to /tmp): its path, malloc'd, or NULL. XDG_DATA_HOME is set
//  to its xdg-data/ so that no secchat a test starts writes a history
//  under the home folder.
char *sc_testdir_new (const char *tag);
//  Removes path and everything under it (symbolic links are not
//  followed). 0 or -1.
int sc_testdir_remove (const char *path);
//  sc_testdir_remove, unless SC_KEEP_TMP is set and not "0": then says
//  on stderr that program kept path. Nothing when path is NULL.
void sc_testdir_remove_unless_kept (const char *path, const char *program);
//  Makes root/tNN for the next test of a program, NN being ++*count
//  (two digits at least): its path, malloc'd, or NULL.
char *sc_testdir_next (const char *root, int *count);
//  path joined to name with one '/', malloc'd (never NULL: aborts when
//  out of memory).
char *sc_testdir_path (const char *dir, const char *name);
//  Writes text to the file at path, created or truncated. 0, or -1 with
//  a message on stderr.
int sc_testdir_write (const char *path, const char *text);
//  Whole file as a NUL-terminated string, malloc'd; NULL if unreadable.
char *sc_testdir_slurp (const char *path, size_t *len);

//  ---------------------------------------------------------------------
//  secchat

//  $SC_BIN_DIR, or "bin/".
const char *sc_testproc_bin_dir (void);
//  True when the broker and the clients run under valgrind.
int sc_testproc_valgrind (void);

//  Runs keys/secchat-keys DIR USER... (users: NULL-terminated), its
//  output in DIR.log. 0 when it exits 0, else -1 with its log printed.
int sc_testproc_make_keys (const char *dir, const char *const users []);

//  Starts bin/secbroker on tcp://127.0.0.1:! (a random free port) with the broker key,
//  certificate and users/ of keys_dir, its log in workdir/broker.log,
//  and heartbeat_ms as --heartbeat unless 0. Waits for its "secbroker
//  listening on EP" line and copies EP into endpoint. NULL, with
//  diagnostics, if it does not come within 10 s.
sc_testproc_t *sc_testproc_broker_new (const char *keys_dir, const char *workdir,
                                       int heartbeat_ms,
                                       char *endpoint, size_t endpoint_size);
//  The same with more options (extra: NULL-terminated, or NULL).
sc_testproc_t *sc_testproc_broker_new_with (const char *keys_dir, const char *workdir,
                                            const char *const extra [],
                                            char *endpoint, size_t endpoint_size);
//  Starts bin/secbroker, labelled name, on endpoint with the broker key,
//  certificate and users/ of keys_dir and then extra (NULL-terminated,
//  or NULL), its stderr appended to log_path. Does not wait for it: for
//  a broker that must fail, or listen on a given endpoint.
sc_testproc_t *sc_testproc_broker_start (const char *name, const char *keys_dir,
                                         const char *endpoint, const char *const extra [],
                                         const char *log_path);

//  How to start a batch client. Only keys, workdir, endpoint and user are
//  needed; the rest overrides the defaults.
typedef struct {
    const char *keys;           //  ca.pem, clients/USER.key, clients/USER.pass
    const char *workdir;        //  gets NAME.log and cfg-NAME/
    const char *endpoint;
    const char *user;
    const char *name;           //  label and file names; default user
    const char *key_file;       //  default keys/clients/USER.key
    const char *password_file;  //  default keys/clients/USER.pass
    const char *ca_file;        //  default keys/ca.pem
    const char *broker_name;    //  --broker-name, not given when NULL
    const char *timeout;        //  --timeout, not given when NULL
    const char *data_dir;       //  --data-dir, default WORKDIR/data
    int no_history;             //  --no-history when not 0
} sc_testclient_t;

//  Starts bin/secchat --batch with these options. Does not wait for it.
sc_testproc_t *sc_testproc_client_new (const sc_testclient_t *client);

//  Opens a chat between two batch clients: a (user name_a) sends "/talk
//  NAME_B", b sees "request NAME_A" and sends "/accept", a sees
//  "accepted NAME_B", then a sees "chat NAME_B ..." and b "chat NAME_A
//  ...", each line within timeout_ms. 0, or -1 with the diagnostics.
int sc_testproc_open_chat (sc_testproc_t *a, const char *name_a,
                           sc_testproc_t *b, const char *name_b, int timeout_ms);

//  The whole answer to one HTTP request sent to 127.0.0.1:port (5 s at
//  most), malloc'd; NULL when nothing answers.
char *sc_testproc_http (int port, const char *request);
//  GET /metrics: the body of a 200 answer in Prometheus's text format
//  (malloc'd), or NULL after printing what came instead.
char *sc_testproc_metrics (int port);
//  The value of the sample named exactly name (labels included) in a
//  metrics text: 0 and *value, or -1 when there is none.
int sc_testproc_metric (const char *text, const char *name, unsigned long long *value);

#endif
