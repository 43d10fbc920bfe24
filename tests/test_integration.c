/*  test_integration: the broker and the client together, as users see them.

    Every test starts its own bin/secbroker on an ephemeral port and
    drives bin/secchat clients in batch mode through pipes, asserting the
    exact event lines of docs/CLIENT.md and the broker behaviour of
    docs/PROTOCOL.md section 4. The keys are made once for the whole
    program by keys/secchat-keys. A line that does not come, or a line
    that comes instead of the expected one, fails the test with the
    transcript of every process and the end of its log (sc_testproc).

    Run from the repository root with SC_BIN_DIR set, as `make check`
    does. SC_KEEP_TMP=1 keeps the temporary directory (keys, logs) for
    inspection; SC_VALGRIND=1 runs the programs under valgrind;
    SC_TEST_FILTER=GLOB runs only the tests whose names match.

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at https://mozilla.org/MPL/2.0/.
*/
#define _GNU_SOURCE                 //  memmem
#include "sc_testnet.h"
#include "sc_testproc.h"
#include "sc_wire.h"

#include <poll.h>
#include <sys/wait.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <errno.h>
#include <sys/ptrace.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <czmq.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

//  How long a line that must come may take, and how long we listen to
//  be sure that a line that must not come does not.
#define T_LINE      sc_testproc_timeout (10000)
#define T_QUIET     sc_testproc_timeout (500)
#define T_EXIT      sc_testproc_timeout (10000)

#define SC_TEXT_MAX     4096        //  chat text limit, docs/CLIENT.md
#define SAFETY_LEN      71          //  12 groups of 5 digits, 11 dashes
#define FINGERPRINT_LEN 79          //  16 groups of 4 hex digits, 15 colons
#define KEY_LEN         32

//  The program's temporary directory, the keys every test uses, and a
//  second key directory with its own CA (for the login failures).
static char *g_root;
static char *g_keys;
static char *g_other;
//  The current test's directory (logs, client configurations), broker
//  and endpoint.
static int g_test_no;
static char *g_work;
static sc_testproc_t *g_broker;
static char g_endpoint [256];

//  ---------------------------------------------------------------------
//  Strings

//  Concatenates strings into one of a few rotating buffers: the result
//  stays valid for the next seven calls. Enough for a 4096-byte message
//  and its prefix.
#define J(...) s_join (__VA_ARGS__, (const char *) NULL)

static const char *
s_join (const char *first, ...)
{
    static char ring [8][2 * SC_TEXT_MAX];
    static size_t next = 0;
    char *buf = ring [next];
    next = (next + 1) % 8;
    size_t used = 0;
    va_list ap;
    va_start (ap, first);
    for (const char *s = first; s; s = va_arg (ap, const char *)) {
        size_t len = strlen (s);
        if (used + len >= sizeof ring [0]) {
            fprintf (stderr, "s_join: result too long\n");
            abort ();
        }
        memcpy (buf + used, s, len);
        used += len;
    }
    va_end (ap);
    buf [used] = 0;
    return buf;
}

//  Case-insensitive strstr.
static int
s_contains_nocase (const char *haystack, const char *needle)
{
    size_t len = strlen (needle);
    for (; *haystack; haystack++)
        if (strncasecmp (haystack, needle, len) == 0)
            return 1;
    return 0;
}

//  ---------------------------------------------------------------------
//  Keys: what the safety number and fingerprints must be

static void
s_raw_key (const char *user, uint8_t key [KEY_LEN])
{
    FILE *file = fopen (J (g_keys, "/users/", user, ".pub"), "r");
    assert_non_null (file);
    EVP_PKEY *pkey = PEM_read_PUBKEY (file, NULL, NULL, NULL);
    assert_int_equal (fclose (file), 0);
    assert_non_null (pkey);
    size_t len = KEY_LEN;
    int rc = EVP_PKEY_get_raw_public_key (pkey, key, &len);
    EVP_PKEY_free (pkey);
    assert_int_equal (rc, 1);
    assert_int_equal (len, KEY_LEN);
}

//  docs/PROTOCOL.md section 7, "Safety number": with
//  ID(x) = u8(len(name_x)) || name_x || key_x, SHA-512 of the label, 0x00,
//  then the two IDs in bytewise order.
static void
s_expected_safety (const char *a, const char *b, char safety [SAFETY_LEN + 1])
{
    static const char label [] = "secchat/1 safety";
    uint8_t id_a [1 + 32 + KEY_LEN], id_b [1 + 32 + KEY_LEN];
    size_t len_a = strlen (a), len_b = strlen (b);
    assert_true (len_a >= 1 && len_a <= 32 && len_b >= 1 && len_b <= 32);
    id_a [0] = (uint8_t) len_a;
    memcpy (id_a + 1, a, len_a);
    s_raw_key (a, id_a + 1 + len_a);
    id_b [0] = (uint8_t) len_b;
    memcpy (id_b + 1, b, len_b);
    s_raw_key (b, id_b + 1 + len_b);
    len_a += 1 + KEY_LEN;
    len_b += 1 + KEY_LEN;
    int a_first = memcmp (id_a, id_b, len_a < len_b ? len_a : len_b) < 0;
    uint8_t input [sizeof label + 2 * sizeof id_a];     //  label, 0x00, min, max
    memcpy (input, label, sizeof label);            //  with its NUL as the 0x00
    memcpy (input + sizeof label, a_first ? id_a : id_b, a_first ? len_a : len_b);
    memcpy (input + sizeof label + (a_first ? len_a : len_b), a_first ? id_b : id_a,
            a_first ? len_b : len_a);
    size_t input_len = sizeof label + len_a + len_b;
    uint8_t digest [64];
    unsigned int digest_len = 0;
    assert_int_equal (EVP_Digest (input, input_len, digest, &digest_len,
                                  EVP_sha512 (), NULL), 1);
    assert_int_equal (digest_len, 64);
    for (size_t i = 0; i < 12; i++) {
        uint64_t group = 0;
        for (size_t j = 0; j < 5; j++)
            group = group << 8 | digest [5 * i + j];
        snprintf (safety + 6 * i, 6, "%05u", (unsigned) (group % 100000));
        safety [6 * i + 5] = i < 11 ? '-' : 0;
    }
}

//  SHA-256 of the raw key, lower-case hex, groups of 4 joined by ':'.
static void
s_expected_fingerprint (const char *user, char fingerprint [FINGERPRINT_LEN + 1])
{
    uint8_t key [KEY_LEN];
    s_raw_key (user, key);
    uint8_t digest [32];
    unsigned int digest_len = 0;
    assert_int_equal (EVP_Digest (key, KEY_LEN, digest, &digest_len,
                                  EVP_sha256 (), NULL), 1);
    static const char hex [] = "0123456789abcdef";
    char *out = fingerprint;
    for (int i = 0; i < 32; i++) {
        if (i && i % 2 == 0)
            *out++ = ':';
        *out++ = hex [digest [i] >> 4];
        *out++ = hex [digest [i] & 15];
    }
    *out = 0;
}

//  True when s is 12 groups of 5 digits joined by '-'.
static int
s_is_safety_number (const char *s)
{
    if (strlen (s) != SAFETY_LEN)
        return 0;
    for (int i = 0; i < SAFETY_LEN; i++)
        if (i % 6 == 5 ? s [i] != '-' : (s [i] < '0' || s [i] > '9'))
            return 0;
    return 1;
}

//  ---------------------------------------------------------------------
//  Steps of a scenario. Each fails the test at the caller's line.

#define SAY(p, line)        s_say ((p), (line), __FILE__, __LINE__)
#define SEE(p, line)        s_see ((p), (line), __FILE__, __LINE__)
#define SEE_PREFIX(p, pre)  s_see_prefix ((p), (pre), __FILE__, __LINE__)
#define SEE_ERROR(p, code)  s_see_error ((p), (code), __FILE__, __LINE__)
#define SEE_NOTHING(p)      s_see_nothing ((p), __FILE__, __LINE__)
#define SEE_MAYBE(p, optional, line) \
    s_see_maybe ((p), (optional), (line), __FILE__, __LINE__)
#define EXITS(p, status)    s_exits ((p), (status), __FILE__, __LINE__)

static void
s_say (sc_testproc_t *p, const char *line, const char *file, int lineno)
{
    if (sc_testproc_send (p, line) != 0)
        _fail (file, lineno);
}

static void
s_see (sc_testproc_t *p, const char *line, const char *file, int lineno)
{
    if (sc_testproc_expect (p, line, T_LINE) != 0)
        _fail (file, lineno);
}

static const char *
s_see_prefix (sc_testproc_t *p, const char *prefix, const char *file, int lineno)
{
    const char *line = sc_testproc_expect_prefix (p, prefix, T_LINE);
    if (!line)
        _fail (file, lineno);
    return line;
}

//  "error CODE" followed by nothing or by a space and a text.
static void
s_see_error (sc_testproc_t *p, const char *code, const char *file, int lineno)
{
    const char *prefix = J ("error ", code);
    const char *line = s_see_prefix (p, prefix, file, lineno);
    char next = line [strlen (prefix)];
    if (next != 0 && next != ' ') {
        fprintf (stderr, "[%s] \"%s\" is not an error with code %s\n",
                 sc_testproc_name (p), line, code);
        _fail (file, lineno);
    }
}

static void
s_see_nothing (sc_testproc_t *p, const char *file, int lineno)
{
    if (sc_testproc_expect_none (p, T_QUIET) != 0)
        _fail (file, lineno);
}

//  The next line is `line`, possibly after the line `optional`: for the
//  events docs/CLIENT.md leaves open (does a user who refuses or quits
//  also see "closed NAME"?).
static void
s_see_maybe (sc_testproc_t *p, const char *optional, const char *line,
             const char *file, int lineno)
{
    const char *got = NULL;
    int rc = sc_testproc_read_line (p, T_LINE, &got);
    if (rc == 1 && strcmp (got, optional) == 0)
        rc = sc_testproc_read_line (p, T_LINE, &got);
    if (rc == 1 && strcmp (got, line) == 0)
        return;
    fprintf (stderr, "\n[%s] expected \"%s\" (possibly after \"%s\"), got %s%s%s\n",
             sc_testproc_name (p), line, optional,
             rc == 1 ? "\"" : "", rc == 1 ? got : rc == 0 ? "nothing" : "end of output",
             rc == 1 ? "\"" : "");
    sc_testproc_dump_all ();
    _fail (file, lineno);
}

static void
s_exits (sc_testproc_t *p, int status, const char *file, int lineno)
{
    int got = sc_testproc_wait (p, T_EXIT);
    if (got == status)
        return;
    fprintf (stderr, "\n[%s] expected exit status %d, got %d%s\n", sc_testproc_name (p),
             status, got, got == SC_TESTPROC_TIMEOUT ? " (still running)"
                        : got == 99 && sc_testproc_valgrind () ? " (valgrind errors)"
                        : got > SC_TESTPROC_SIGNALED ? " (256 + signal)" : "");
    sc_testproc_dump_all ();
    _fail (file, lineno);
}

//  ---------------------------------------------------------------------
//  Programs, and steps made of several lines. Each takes the scenario's
//  place (file, lineno: AT) so that a failure names the scenario's line.

#define AT file, lineno
#define STOP_BROKER(sig)        s_stop_broker ((sig), __FILE__, __LINE__)
#define LOGIN(user)             s_login_as ((user), NULL, __FILE__, __LINE__)
#define LOGIN_AS(user, name)    s_login_as ((user), (name), __FILE__, __LINE__)
#define QUIT(p)                 s_quit ((p), NULL, __FILE__, __LINE__)
#define QUIT_CHAT(p, peer)      s_quit ((p), (peer), __FILE__, __LINE__)
#define QUIT_BOTH(a, na, b, nb) s_quit_both ((a), (na), (b), (nb), __FILE__, __LINE__)
#define SEE_CHAT(a, na, b, nb)  s_see_chat ((a), (na), (b), (nb), __FILE__, __LINE__)
#define OPEN_CHAT(a, na, b, nb) s_open_chat ((a), (na), (b), (nb), __FILE__, __LINE__)
#define MESSAGE(a, na, b, text) s_message ((a), (na), (b), (text), __FILE__, __LINE__)
#define SETTLE(p, peer)         s_settle ((p), (peer), __FILE__, __LINE__)
#define ONE_STDERR_LINE(p, say) s_one_stderr_line ((p), (say), __FILE__, __LINE__)
#define LOGIN_FAILS(p, say)     s_login_fails ((p), (say), __FILE__, __LINE__)

static void
s_start_broker (int heartbeat_ms)
{
    g_broker = sc_testproc_broker_new (g_keys, g_work, heartbeat_ms,
                                       g_endpoint, sizeof g_endpoint);
    assert_non_null (g_broker);
}

//  SIGTERM (or SIGINT): the broker stops cleanly with status 0.
static void
s_stop_broker (int sig, const char *file, int lineno)
{
    if (sc_testproc_signal (g_broker, sig) != 0)
        _fail (AT);
    s_exits (g_broker, 0, AT);
}

//  A client started with these options; the key directory defaults to
//  the test's, the work directory and the endpoint are the test's.
static sc_testproc_t *
s_client_with (sc_testclient_t client)
{
    if (!client.keys)
        client.keys = g_keys;
    client.workdir = g_work;
    client.endpoint = g_endpoint;
    sc_testproc_t *p = sc_testproc_client_new (&client);
    assert_non_null (p);
    return p;
}

//  A client of user as process `name` (default: the user's name).
static sc_testproc_t *
s_client (const char *user, const char *name)
{
    return s_client_with ((sc_testclient_t) { .user = user, .name = name });
}

static sc_testproc_t *
s_login_as (const char *user, const char *name, const char *file, int lineno)
{
    sc_testproc_t *p = s_client (user, name);
    s_see (p, J ("ready ", user), AT);
    return p;
}

//  /quit: "bye", the end of the output, exit 0. In a chat (peer given)
//  "closed PEER" may come first: docs/CLIENT.md says /quit leaves the
//  chat and "closed" is shown whoever ended it, but not whether a
//  /quit shows it.
static void
s_quit (sc_testproc_t *p, const char *peer, const char *file, int lineno)
{
    s_say (p, "/quit", AT);
    if (peer)
        s_see_maybe (p, J ("closed ", peer), "bye", AT);
    else
        s_see (p, "bye", AT);
    if (sc_testproc_expect_eof (p, T_EXIT) != 0)
        _fail (AT);
    s_exits (p, 0, AT);
}

//  a quits in a chat with b: b sees "closed", then quits too.
static void
s_quit_both (sc_testproc_t *a, const char *name_a, sc_testproc_t *b, const char *name_b,
             const char *file, int lineno)
{
    s_quit (a, name_b, AT);
    s_see (b, J ("closed ", name_a), AT);
    s_quit (b, NULL, AT);
}

//  After b accepted a's request: both see "chat" with the same safety
//  number, the one their registered keys give.
static void
s_see_chat (sc_testproc_t *a, const char *name_a, sc_testproc_t *b, const char *name_b,
            const char *file, int lineno)
{
    char expected [SAFETY_LEN + 1];
    s_expected_safety (name_a, name_b, expected);
    const char *line_a = s_see_prefix (a, J ("chat ", name_b, " "), AT);
    const char *line_b = s_see_prefix (b, J ("chat ", name_a, " "), AT);
    const char *safety_a = line_a + strlen (name_b) + 6;
    const char *safety_b = line_b + strlen (name_a) + 6;
    if (!s_is_safety_number (safety_a) || strcmp (safety_a, safety_b) != 0
    ||  strcmp (safety_a, expected) != 0) {
        fprintf (stderr, "\nsafety numbers: %s sees \"%s\", %s sees \"%s\", "
                 "expected \"%s\" (12 groups of 5 digits)\n",
                 name_a, safety_a, name_b, safety_b, expected);
        sc_testproc_dump_all ();
        _fail (AT);
    }
}

//  Lines each client said (and its peer showed) in its current chat.
enum { SAID_MAX = 16 };
static struct {
    sc_testproc_t *p;
    unsigned long long said;
} g_said [SAID_MAX];

static unsigned long long *
s_said_of (sc_testproc_t *p)
{
    for (size_t i = 0; i < SAID_MAX; i++)
        if (g_said [i].p == p || !g_said [i].p) {
            g_said [i].p = p;
            return &g_said [i].said;
        }
    fail_msg ("more than %d clients", SAID_MAX);
    return &g_said [0].said;        //  not reached
}

//  p's peer has confirmed every line p said in this chat ("acked"): so
//  that a chat ended now leaves nothing unacknowledged.
static void
s_settle (sc_testproc_t *p, const char *peer, const char *file, int lineno)
{
    unsigned long long said = *s_said_of (p);
    if (said && sc_testproc_expect_acked (p, peer, said, T_LINE) != 0)
        _fail (AT);
}

//  a asks b, b accepts, a hears "accepted", the chat opens.
static void
s_open_chat (sc_testproc_t *a, const char *name_a, sc_testproc_t *b, const char *name_b,
             const char *file, int lineno)
{
    *s_said_of (a) = 0;
    *s_said_of (b) = 0;
    s_say (a, J ("/talk ", name_b), AT);
    s_see (b, J ("request ", name_a), AT);
    s_say (b, "/accept", AT);
    s_see (a, J ("accepted ", name_b), AT);
    s_see_chat (a, name_a, b, name_b, AT);
}

//  A message from a (user name_a) is the next thing b sees.
static void
s_message (sc_testproc_t *a, const char *name_a, sc_testproc_t *b, const char *text,
           const char *file, int lineno)
{
    s_say (a, text, AT);
    s_see (b, J ("msg ", name_a, " ", text), AT);
    (*s_said_of (a))++;
}

//  A client that ended in failure said so in exactly one line on stderr
//  (containing must_say, if not NULL).
static void
s_one_stderr_line (sc_testproc_t *p, const char *must_say, const char *file, int lineno)
{
    char *err = sc_testdir_slurp (sc_testproc_log_path (p), NULL);
    size_t len = err ? strlen (err) : 0;
    int one_line = len > 1 && err [len - 1] == '\n' && memchr (err, '\n', len - 1) == NULL;
    int says = !must_say || (err && s_contains_nocase (err, must_say));
    if (!one_line || !says)
        fprintf (stderr, "\n[%s] stderr must be one clear line%s%s%s; it is:\n%s<end>\n",
                 sc_testproc_name (p), must_say ? " saying \"" : "",
                 must_say ? must_say : "", must_say ? "\"" : "", err ? err : "(unreadable)");
    free (err);
    if (!one_line || !says)
        _fail (AT);
}

//  Reads the rest of a failed login: no "ready", the end of the output,
//  exit status 1 and one line on stderr.
static void
s_login_fails (sc_testproc_t *p, const char *must_say, const char *file, int lineno)
{
    const char *line;
    int rc;
    while ((rc = sc_testproc_read_line (p, T_LINE, &line)) == 1)
        if (strncmp (line, "ready", 5) == 0) {
            fprintf (stderr, "\n[%s] a failed login printed \"%s\"\n",
                     sc_testproc_name (p), line);
            sc_testproc_dump_all ();
            _fail (AT);
        }
    if (rc != -1) {
        fprintf (stderr, "\n[%s] a failed login did not end its output\n",
                 sc_testproc_name (p));
        sc_testproc_dump_all ();
        _fail (AT);
    }
    s_exits (p, 1, AT);
    s_one_stderr_line (p, must_say, AT);
}

//  ---------------------------------------------------------------------
//  Fixtures

static int
s_group_setup (void **state)
{
    (void) state;
    //  Nothing here may hang the build: after this, the program dies and
    //  its children with it.
    alarm ((unsigned) sc_testproc_timeout (900000) / 1000);
    g_root = sc_testdir_new ("integration");
    if (!g_root)
        return -1;
    g_keys = sc_testdir_path (g_root, "keys");
    g_other = sc_testdir_path (g_root, "other-keys");
    //  dave is registered but never logs in, except among the three pairs.
    const char *const users [] = { "alice", "bob", "carol", "dave", "erin", "frank", NULL };
    //  Another CA, a user the broker does not know, and an alice whose
    //  key is not the registered one.
    const char *const others [] = { "mallory", "alice", NULL };
    if (sc_testproc_make_keys (g_keys, users) || sc_testproc_make_keys (g_other, others))
        return -1;
    return 0;
}

static int
s_group_teardown (void **state)
{
    (void) state;
    sc_testproc_destroy_all ();
    sc_testdir_remove_unless_kept (g_root, "test_integration");
    free (g_keys);
    free (g_other);
    free (g_root);
    return 0;
}

static int
s_setup (void **state)
{
    (void) state;
    g_work = sc_testdir_next (g_root, &g_test_no);
    g_broker = NULL;
    g_endpoint [0] = 0;
    memset (g_said, 0, sizeof g_said);
    return g_work ? 0 : -1;
}

//  Whatever a test left running, failed or not, is killed here.
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

//  ---------------------------------------------------------------------
//  Scenarios

//  Login, /list sorted without oneself, /help on stderr only, and the
//  broker stopping on SIGINT.
static void
test_login_and_list (void **state)
{
    (void) state;
    s_start_broker (0);
    sc_testproc_t *alice = LOGIN ("alice");
    SAY (alice, "/list");
    SEE (alice, "users");
    SAY (alice, "/help");
    SAY (alice, "/list");
    SEE (alice, "users");

    sc_testproc_t *carol = LOGIN ("carol");
    sc_testproc_t *bob = LOGIN ("bob");
    SAY (alice, "/list");
    SEE (alice, "users bob carol");
    SAY (bob, "/list");
    SEE (bob, "users alice carol");
    SAY (carol, "/list");
    SEE (carol, "users alice bob");

    QUIT (carol);
    SAY (alice, "/list");
    SEE (alice, "users bob");
    QUIT (alice);
    QUIT (bob);
    STOP_BROKER (SIGINT);
}

//  /talk, /accept, the same safety number on both sides, messages both
//  ways: long, non-ASCII, many in a row, and "//".
static void
test_request_accept_and_messages (void **state)
{
    (void) state;
    s_start_broker (0);
    sc_testproc_t *alice = LOGIN ("alice");
    sc_testproc_t *bob = LOGIN ("bob");

    //  Until bob answers, alice hears nothing.
    SAY (alice, "/talk bob");
    SEE (bob, "request alice");
    SEE_NOTHING (alice);
    SAY (bob, "/accept");
    SEE (alice, "accepted bob");
    SEE_CHAT (alice, "alice", bob, "bob");

    MESSAGE (alice, "alice", bob, "hello bob");
    MESSAGE (bob, "bob", alice, "hello alice");
    MESSAGE (alice, "alice", bob, "two  spaces  inside stay two");

    //  Exactly 4096 ASCII bytes arrive identical.
    static char big [SC_TEXT_MAX + 1];
    static const char alphabet [] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789 .,;:!?'\"()[]{}<>/\\|@#$%^&*-_=+~`";
    for (size_t i = 0; i < SC_TEXT_MAX; i++)
        big [i] = alphabet [i % (sizeof alphabet - 1)];
    big [SC_TEXT_MAX] = 0;
    MESSAGE (alice, "alice", bob, big);
    big [0] = 'Z';
    MESSAGE (bob, "bob", alice, big);

    MESSAGE (alice, "alice", bob, "héllo wörld ✓ 😀 ½");
    MESSAGE (bob, "bob", alice, "héllo wörld ✓ 😀 ½");

    //  A line starting with "//" sends the rest, starting with '/'.
    SAY (alice, "//list is not a command");
    SEE (bob, "msg alice /list is not a command");

    //  Many in a row, both ways at once, arrive complete and in order.
    char text [32];
    for (int i = 1; i <= 25; i++) {
        snprintf (text, sizeof text, "alice line %d", i);
        SAY (alice, text);
        snprintf (text, sizeof text, "bob line %d", i);
        SAY (bob, text);
    }
    for (int i = 1; i <= 25; i++) {
        snprintf (text, sizeof text, "alice line %d", i);
        SEE (bob, J ("msg alice ", text));
        snprintf (text, sizeof text, "bob line %d", i);
        SEE (alice, J ("msg bob ", text));
    }
    SEE_NOTHING (alice);
    SEE_NOTHING (bob);
    QUIT_BOTH (alice, "alice", bob, "bob");
    STOP_BROKER (SIGTERM);
}

//  Control characters in received text are shown as '?'.
static void
test_control_characters (void **state)
{
    (void) state;
    s_start_broker (0);
    sc_testproc_t *alice = LOGIN ("alice");
    sc_testproc_t *bob = LOGIN ("bob");
    OPEN_CHAT (alice, "alice", bob, "bob");
    SAY (alice, "tab\there");
    SEE (bob, "msg alice tab?here");
    SAY (alice, "escape \x1b[2J\x1b[H done");
    SEE (bob, "msg alice escape ?[2J?[H done");
    QUIT_BOTH (alice, "alice", bob, "bob");
    STOP_BROKER (SIGTERM);
}

//  4097 bytes and malformed UTF-8 are refused with an error, and nothing
//  of them reaches the peer: the next message is the next thing it sees.
static void
test_too_long_and_bad_utf8 (void **state)
{
    (void) state;
    s_start_broker (0);
    sc_testproc_t *alice = LOGIN ("alice");
    sc_testproc_t *bob = LOGIN ("bob");
    OPEN_CHAT (alice, "alice", bob, "bob");

    static char too_long [SC_TEXT_MAX + 2];
    memset (too_long, 'x', SC_TEXT_MAX + 1);
    too_long [SC_TEXT_MAX + 1] = 0;
    SAY (alice, too_long);
    SEE_ERROR (alice, "too-long");
    MESSAGE (alice, "alice", bob, "after the long line");

    static const char *const bad [] = {
        "bad \xff byte",
        "overlong \xc0\xaf slash",
        "surrogate \xed\xa0\x80 half",
        "beyond \xf4\x90\x80\x80 U+10FFFF",
        "cut \xe2\x9c",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad [0]; i++) {
        SAY (alice, bad [i]);
        SEE_ERROR (alice, "bad-utf8");
    }
    MESSAGE (alice, "alice", bob, "after the bad lines");
    SEE_NOTHING (bob);
    MESSAGE (bob, "bob", alice, "all fine here");
    QUIT_BOTH (alice, "alice", bob, "bob");
    STOP_BROKER (SIGTERM);
}

//  /refuse: the requester hears "refused", and both are free again.
static void
test_refuse (void **state)
{
    (void) state;
    s_start_broker (0);
    sc_testproc_t *alice = LOGIN ("alice");
    sc_testproc_t *bob = LOGIN ("bob");
    SAY (alice, "/talk bob");
    SEE (bob, "request alice");
    SAY (bob, "/refuse");
    SEE (alice, "refused bob");

    //  docs/CLIENT.md does not say whether either side also sees "closed".
    SAY (alice, "/talk bob");
    SEE_MAYBE (bob, "closed alice", "request alice");
    SAY (bob, "/accept");
    SEE_MAYBE (alice, "closed bob", "accepted bob");
    SEE_CHAT (alice, "alice", bob, "bob");
    MESSAGE (alice, "alice", bob, "second time lucky");
    MESSAGE (bob, "bob", alice, "indeed");
    QUIT_BOTH (bob, "bob", alice, "alice");
    STOP_BROKER (SIGTERM);
}

//  Someone in a chat, or with a request pending either way, is busy: the
//  asker hears "busy", and the busy user hears who tried ("missed NAME"),
//  once in a row per asker, with the chat or request going on untouched.
static void
test_busy (void **state)
{
    (void) state;
    s_start_broker (0);
    sc_testproc_t *alice = LOGIN ("alice");
    sc_testproc_t *bob = LOGIN ("bob");
    sc_testproc_t *carol = LOGIN ("carol");

    OPEN_CHAT (alice, "alice", bob, "bob");
    SAY (carol, "/talk alice");
    SEE (carol, "busy alice");
    SEE (alice, "missed carol");
    SAY (carol, "/talk bob");
    SEE (carol, "busy bob");
    SEE (bob, "missed carol");
    SAY (carol, "/talk bob");
    SEE (carol, "busy bob");
    //  Then alice and bob see each other, not carol again.
    MESSAGE (bob, "bob", alice, "still there?");
    MESSAGE (alice, "alice", bob, "yes");
    SETTLE (alice, "bob");
    SAY (alice, "/leave");
    SEE (alice, "closed bob");
    SEE (bob, "closed alice");

    //  A request that is not answered yet: both ends are busy.
    SAY (alice, "/talk bob");
    SEE (bob, "request alice");
    SAY (carol, "/talk bob");
    SEE (carol, "busy bob");
    SEE (bob, "missed carol");
    SAY (carol, "/talk alice");
    SEE (carol, "busy alice");
    SEE (alice, "missed carol");
    SAY (bob, "/accept");
    SEE (alice, "accepted bob");
    SEE_CHAT (alice, "alice", bob, "bob");
    MESSAGE (alice, "alice", bob, "carol did not get through");
    SEE_NOTHING (carol);

    QUIT (carol);
    QUIT_BOTH (alice, "alice", bob, "bob");
    STOP_BROKER (SIGTERM);
}

//  Unknown users, registered users who are offline and users who left
//  are all "not-found"; the asker stays free.
static void
test_not_found (void **state)
{
    (void) state;
    s_start_broker (0);
    sc_testproc_t *alice = LOGIN ("alice");
    SAY (alice, "/talk nobody");
    SEE (alice, "not-found nobody");
    SAY (alice, "/talk dave");
    SEE (alice, "not-found dave");
    sc_testproc_t *bob = LOGIN ("bob");
    QUIT (bob);
    SAY (alice, "/talk bob");
    SEE (alice, "not-found bob");

    sc_testproc_t *carol = LOGIN ("carol");
    OPEN_CHAT (alice, "alice", carol, "carol");
    MESSAGE (carol, "carol", alice, "found you");
    QUIT_BOTH (carol, "carol", alice, "alice");
    STOP_BROKER (SIGTERM);
}

static void
test_self_request (void **state)
{
    (void) state;
    s_start_broker (0);
    sc_testproc_t *alice = LOGIN ("alice");
    sc_testproc_t *bob = LOGIN ("bob");
    SAY (alice, "/talk alice");
    SEE_ERROR (alice, "self");
    SAY (alice, "/list");
    SEE (alice, "users bob");
    SEE_NOTHING (bob);
    OPEN_CHAT (alice, "alice", bob, "bob");
    QUIT_BOTH (alice, "alice", bob, "bob");
    STOP_BROKER (SIGTERM);
}

//  /leave ends a chat for both (both see "closed"), and withdraws a
//  request; everyone can start again.
static void
test_leave (void **state)
{
    (void) state;
    s_start_broker (0);
    sc_testproc_t *alice = LOGIN ("alice");
    sc_testproc_t *bob = LOGIN ("bob");
    sc_testproc_t *carol = LOGIN ("carol");

    OPEN_CHAT (alice, "alice", bob, "bob");
    MESSAGE (alice, "alice", bob, "bye for now");
    SETTLE (alice, "bob");
    SAY (alice, "/leave");
    SEE (alice, "closed bob");
    SEE (bob, "closed alice");
    SAY (alice, "anyone?");
    SEE_ERROR (alice, "not-in-chat");
    SAY (bob, "hello?");
    SEE_ERROR (bob, "not-in-chat");

    //  A new chat, the other way round.
    OPEN_CHAT (bob, "bob", alice, "alice");
    MESSAGE (bob, "bob", alice, "back again");
    MESSAGE (alice, "alice", bob, "welcome back");
    SETTLE (bob, "alice");
    SAY (bob, "/leave");
    SEE (bob, "closed alice");
    SEE (alice, "closed bob");

    //  Withdrawing a request before it is answered.
    SAY (alice, "/talk carol");
    SEE (carol, "request alice");
    SAY (alice, "/leave");
    SEE (carol, "closed alice");
    SEE (alice, "closed carol");
    OPEN_CHAT (carol, "carol", alice, "alice");
    MESSAGE (alice, "alice", carol, "sorry about that");
    SEE_NOTHING (bob);

    QUIT (bob);
    QUIT_BOTH (alice, "alice", carol, "carol");
    STOP_BROKER (SIGTERM);
}

//  /quit and the end of the input both log out ("bye", status 0) and
//  close the chat for the peer.
static void
test_quit_and_end_of_input (void **state)
{
    (void) state;
    s_start_broker (0);
    sc_testproc_t *alice = LOGIN ("alice");
    sc_testproc_t *bob = LOGIN ("bob");
    OPEN_CHAT (alice, "alice", bob, "bob");
    QUIT_CHAT (alice, "bob");
    SEE (bob, "closed alice");
    SAY (bob, "/list");
    SEE (bob, "users");

    sc_testproc_t *again = LOGIN_AS ("alice", "alice-again");
    OPEN_CHAT (bob, "bob", again, "alice");
    MESSAGE (again, "alice", bob, "about to close my input");
    assert_int_equal (sc_testproc_close_input (again), 0);
    SEE_MAYBE (again, "closed bob", "bye");
    assert_int_equal (sc_testproc_expect_eof (again, T_EXIT), 0);
    EXITS (again, 0);
    SEE (bob, "closed alice");

    //  The end of the input when idle.
    assert_int_equal (sc_testproc_close_input (bob), 0);
    SEE (bob, "bye");
    assert_int_equal (sc_testproc_expect_eof (bob, T_EXIT), 0);
    EXITS (bob, 0);
    STOP_BROKER (SIGTERM);
}

//  A script that asks and quits at once, before it is even logged in,
//  still gets its answer: /quit waits for it as the end of input does.
static void
test_script_asks_then_quits (void **state)
{
    (void) state;
    s_start_broker (0);
    sc_testproc_t *bob = LOGIN ("bob");
    sc_testproc_t *alice = s_client ("alice", NULL);
    SAY (alice, "/list");
    SAY (alice, "/quit");
    SEE (alice, "ready alice");
    SEE (alice, "users bob");
    SEE (alice, "bye");
    assert_int_equal (sc_testproc_expect_eof (alice, T_EXIT), 0);
    EXITS (alice, 0);
    QUIT (bob);
    STOP_BROKER (SIGTERM);
}

//  Text with no chat and malformed commands are refused by the client.
static void
test_text_without_chat (void **state)
{
    (void) state;
    s_start_broker (0);
    sc_testproc_t *alice = LOGIN ("alice");
    SAY (alice, "is anybody there?");
    SEE_ERROR (alice, "not-in-chat");
    SAY (alice, "/nonsense");
    SEE_ERROR (alice, "unknown-command");
    SAY (alice, "/talk");
    SEE_ERROR (alice, "usage");
    SAY (alice, "/list");
    SEE (alice, "users");
    QUIT (alice);
    STOP_BROKER (SIGTERM);
}

//  A client that dies is dropped after 3 silent heartbeats; its peer
//  hears "closed" within 2 s at --heartbeat 200. (Under valgrind both
//  are scaled: a client that slow cannot ping every 200 ms.)
static void
test_lost_client (void **state)
{
    (void) state;
    s_start_broker (sc_testproc_timeout (200));
    sc_testproc_t *alice = LOGIN ("alice");
    sc_testproc_t *bob = LOGIN ("bob");
    OPEN_CHAT (alice, "alice", bob, "bob");
    MESSAGE (alice, "alice", bob, "about to vanish");
    SETTLE (alice, "bob");

    int64_t start = sc_testproc_now_ms ();
    assert_int_equal (sc_testproc_kill (alice), SC_TESTPROC_SIGNALED + SIGKILL);
    int limit = sc_testproc_timeout (2000);
    //  the broker's word only: no authenticated close came
    assert_non_null (sc_testproc_expect_prefix (bob, "error unconfirmed-close alice (the "
                                                "broker says alice was lost)", limit));
    assert_int_equal (sc_testproc_expect (bob, "closed alice", limit), 0);
    int64_t took = sc_testproc_now_ms () - start;
    fprintf (stderr, "test_lost_client: bob heard after %lld ms\n", (long long) took);
    assert_true (took <= limit);

    SAY (bob, "/list");
    SEE (bob, "users");
    QUIT (bob);
    STOP_BROKER (SIGTERM);
}

//  A client whose broker stops answering says so within 3 heartbeats.
static void
test_broker_lost (void **state)
{
    (void) state;
    s_start_broker (sc_testproc_timeout (200));
    sc_testproc_t *alice = LOGIN ("alice");
    SAY (alice, "/list");
    SEE (alice, "users");
    assert_int_equal (sc_testproc_signal (g_broker, SIGSTOP), 0);
    const char *line = sc_testproc_expect_prefix (alice, "error broker-lost",
                                                  sc_testproc_timeout (2000));
    assert_non_null (line);
    assert_true (line [17] == 0 || line [17] == ' ');
    assert_int_equal (sc_testproc_signal (g_broker, SIGCONT), 0);
    //  What follows (reconnecting, logging in again) is left to the
    //  client; the broker still stops cleanly.
    sc_testproc_destroy (&alice);
    STOP_BROKER (SIGTERM);
}

//  Three chats at once: everyone gets exactly their peer's messages, in
//  order.
static void
test_three_pairs (void **state)
{
    (void) state;
    enum { PAIRS = 3, ROUNDS = 10 };
    static const char *const names [PAIRS][2] = {
        { "alice", "bob" }, { "carol", "dave" }, { "erin", "frank" }
    };
    s_start_broker (0);
    sc_testproc_t *users [PAIRS][2];
    for (int i = 0; i < PAIRS; i++)
        for (int j = 0; j < 2; j++)
            users [i][j] = LOGIN (names [i][j]);

    //  All three requests before any answer.
    for (int i = 0; i < PAIRS; i++)
        SAY (users [i][0], J ("/talk ", names [i][1]));
    for (int i = 0; i < PAIRS; i++)
        SEE (users [i][1], J ("request ", names [i][0]));
    for (int i = 0; i < PAIRS; i++)
        SAY (users [i][1], "/accept");
    for (int i = 0; i < PAIRS; i++) {
        SEE (users [i][0], J ("accepted ", names [i][1]));
        SEE_CHAT (users [i][0], names [i][0], users [i][1], names [i][1]);
    }
    char round [16];
    for (int k = 1; k <= ROUNDS; k++) {
        snprintf (round, sizeof round, "%d", k);
        for (int i = 0; i < PAIRS; i++)
            for (int j = 0; j < 2; j++)
                SAY (users [i][j], J (names [i][j], " to ", names [i][1 - j], " #", round));
    }
    for (int k = 1; k <= ROUNDS; k++) {
        snprintf (round, sizeof round, "%d", k);
        for (int i = 0; i < PAIRS; i++)
            for (int j = 0; j < 2; j++) {
                const char *from = names [i][1 - j];
                SEE (users [i][j], J ("msg ", from, " ", from, " to ", names [i][j], " #", round));
            }
    }
    sc_testproc_sleep_ms (T_QUIET);
    for (int i = 0; i < PAIRS; i++)
        for (int j = 0; j < 2; j++)
            assert_int_equal (sc_testproc_expect_none (users [i][j], 1), 0);
    SAY (users [0][0], "/list");
    SEE (users [0][0], "users bob carol dave erin frank");
    for (int i = 0; i < PAIRS; i++) {
        QUIT_BOTH (users [i][0], names [i][0], users [i][1], names [i][1]);
    }
    STOP_BROKER (SIGTERM);
}

//  A second login of alice replaces the first: the first hears
//  "error replaced" and exits 1, its chat closes, the second works.
static void
test_second_login_replaces (void **state)
{
    (void) state;
    s_start_broker (0);
    sc_testproc_t *bob = LOGIN ("bob");
    sc_testproc_t *first = LOGIN_AS ("alice", "alice-first");
    OPEN_CHAT (first, "alice", bob, "bob");
    MESSAGE (first, "alice", bob, "I am the first alice");
    SETTLE (first, "bob");

    sc_testproc_t *second = LOGIN_AS ("alice", "alice-second");
    //  "error replaced ...", then the end of the output. docs/CLIENT.md
    //  does not say whether "closed bob" comes too, nor in which order;
    //  the chat's end is not bob's close, which it may say.
    const char *line = NULL;
    int replaced = 0, closed = 0, other = 0, rc;
    while ((rc = sc_testproc_read_line (first, T_LINE, &line)) == 1)
        if (strcmp (line, "closed bob") == 0
            || strncmp (line, "error unconfirmed-close bob (", 29) == 0)
            closed++;
        else
        if (strncmp (line, "error replaced", 14) == 0 && (line [14] == 0 || line [14] == ' '))
            replaced++;
        else
            other++;
    if (rc != -1 || replaced != 1 || closed > 2 || other) {
        fprintf (stderr, "\n[alice-first] expected \"error replaced ...\" (and maybe "
                 "\"closed bob\"), then the end of the output\n");
        sc_testproc_dump_all ();
        fail ();
    }
    EXITS (first, 1);
    ONE_STDERR_LINE (first, NULL);
    SEE_PREFIX (bob, "error unconfirmed-close alice (the broker says alice logged in elsewhere)");
    SEE (bob, "closed alice");

    OPEN_CHAT (bob, "bob", second, "alice");
    MESSAGE (bob, "bob", second, "are you the second alice?");
    MESSAGE (second, "alice", bob, "I am");
    QUIT_BOTH (second, "alice", bob, "bob");
    STOP_BROKER (SIGTERM);
}

//  After a failed login the broker still serves.
#define NORMAL_LOGIN_WORKS() s_normal_login_works (__FILE__, __LINE__)

static void
s_normal_login_works (const char *file, int lineno)
{
    sc_testproc_t *alice = s_login_as ("alice", "alice-after", AT);
    s_say (alice, "/list", AT);
    s_see (alice, "users", AT);
    s_quit (alice, NULL, AT);
}

static void
test_login_wrong_password (void **state)
{
    (void) state;
    s_start_broker (0);
    const char *wrong = J (g_keys, "/clients/bob.pass");
    sc_testproc_t *p = s_client_with ((sc_testclient_t) {
        .user = "alice", .password_file = wrong
    });
    LOGIN_FAILS (p, NULL);
    NORMAL_LOGIN_WORKS ();
    STOP_BROKER (SIGTERM);
}

static void
test_login_other_ca (void **state)
{
    (void) state;
    s_start_broker (0);
    const char *ca = J (g_other, "/ca.pem");
    sc_testproc_t *p = s_client_with ((sc_testclient_t) {
        .user = "alice", .ca_file = ca
    });
    LOGIN_FAILS (p, "certificate");
    NORMAL_LOGIN_WORKS ();
    STOP_BROKER (SIGTERM);
}

static void
test_login_wrong_broker_name (void **state)
{
    (void) state;
    s_start_broker (0);
    sc_testproc_t *p = s_client_with ((sc_testclient_t) {
        .user = "alice", .broker_name = "other"
    });
    LOGIN_FAILS (p, "certificate");
    NORMAL_LOGIN_WORKS ();
    STOP_BROKER (SIGTERM);
}

//  A name the broker does not know, and a known name with a key that is
//  not the registered one.
static void
test_login_unregistered (void **state)
{
    (void) state;
    s_start_broker (0);
    const char *ca = J (g_keys, "/ca.pem");
    sc_testproc_t *p = s_client_with ((sc_testclient_t) {
        .keys = g_other, .user = "mallory", .ca_file = ca
    });
    LOGIN_FAILS (p, NULL);

    p = s_client_with ((sc_testclient_t) {
        .keys = g_other, .user = "alice", .name = "alice-impostor", .ca_file = ca
    });
    LOGIN_FAILS (p, NULL);
    NORMAL_LOGIN_WORKS ();
    STOP_BROKER (SIGTERM);
}

//  A broker that wants a cookie before every login: secchat answers it
//  without the user noticing, and the chat works as ever.
static void
test_login_with_cookie (void **state)
{
    (void) state;
    const char *const extra [] = { "--cookie-logins", "0", NULL };
    g_broker = sc_testproc_broker_new_with (g_keys, g_work, extra,
                                            g_endpoint, sizeof g_endpoint);
    assert_non_null (g_broker);
    sc_testproc_t *alice = LOGIN ("alice");
    sc_testproc_t *bob = LOGIN ("bob");
    SAY (alice, "/talk bob");
    SEE (bob, "request alice");
    SAY (bob, "/accept");
    SEE (alice, "accepted bob");
    SEE_CHAT (alice, "alice", bob, "bob");
    MESSAGE (alice, "alice", bob, "over the cookie");
    QUIT_BOTH (alice, "alice", bob, "bob");
    STOP_BROKER (SIGTERM);
}

//  A broker with room for one login in progress, taken by a connection
//  that sends a HELLO and nothing more: secchat's first login gets
//  ERROR RATE, and tries again (within --timeout) until the other login
//  times out and its place is free.
static void
test_login_retried_when_busy (void **state)
{
    (void) state;
    const char *const extra [] = { "--max-logins", "1", "--login-timeout", "1500", NULL };
    g_broker = sc_testproc_broker_new_with (g_keys, g_work, extra,
                                            g_endpoint, sizeof g_endpoint);
    assert_non_null (g_broker);
    zsock_t *holder = zsock_new_dealer (g_endpoint);
    assert_non_null (holder);
    sc_msg_t hello;
    sc_msg_init (&hello, SC_OP_HELLO);
    hello.suite = SC_SUITE_1;
    memset (hello.eph, 9, sizeof hello.eph);
    uint8_t *frame = NULL;
    size_t len = 0;
    assert_int_equal (sc_wire_plain (&hello, &frame, &len), 0);
    zframe_t *out = zframe_new (frame, len);
    free (frame);
    assert_non_null (out);
    assert_int_equal (zframe_send (&out, holder, 0), 0);
    zsock_set_rcvtimeo (holder, sc_testproc_timeout (5000));
    zframe_t *answer = zframe_recv (holder);      /* AUTH_BROKER: it is in */
    assert_non_null (answer);
    zframe_destroy (&answer);
    sc_testproc_t *alice = LOGIN ("alice");
    SAY (alice, "/list");
    SEE (alice, "users");
    QUIT (alice);
    zsock_destroy (&holder);
    STOP_BROKER (SIGTERM);
}

//  ---------------------------------------------------------------------
//  secchat on a terminal: a pseudo-terminal, with no locale in the
//  environment (as under a bare service manager or ssh without LANG).

typedef struct {
    pid_t pid;
    int master;
    char screen [65536];        //  all it wrote, escape sequences and all
    size_t len;
} tty_client_t;

static void
s_tty_start (tty_client_t *t, const char *user)
{
    memset (t, 0, sizeof *t);
    char bin [512], cfg [512], data [512];
    snprintf (bin, sizeof bin, "%ssecchat", sc_testproc_bin_dir ());
    snprintf (cfg, sizeof cfg, "%s/cfg-%s-tty", g_work, user);
    snprintf (data, sizeof data, "%s/data", g_work);
    const char *key = J (g_keys, "/clients/", user, ".key");
    const char *pass = J (g_keys, "/clients/", user, ".pass");
    const char *ca = J (g_keys, "/ca.pem");
    const char *argv [] = { bin, "--endpoint", g_endpoint, "--user", user,
                            "--key", key, "--password-file", pass, "--ca", ca,
                            "--config-dir", cfg, "--data-dir", data, NULL };
    const char *const env [] = { "LANG", "LC_ALL", "LC_CTYPE", NULL };
    sc_testtty_t tty = { .argv = argv, .env = env };
    t->pid = sc_testproc_tty_start (&tty, &t->master);
    assert_true (t->pid > 0);
}

//  Read what it writes until text appears on the screen (0) or the time
//  runs out (-1).
static int
s_tty_wait (tty_client_t *t, const char *text, int timeout_ms)
{
    int64_t deadline = zclock_mono () + timeout_ms;
    while (!memmem (t->screen, t->len, text, strlen (text))) {
        int64_t left = deadline - zclock_mono ();
        struct pollfd pfd = { t->master, POLLIN, 0 };
        if (left <= 0 || poll (&pfd, 1, (int) left) <= 0)
            return -1;
        ssize_t n = read (t->master, t->screen + t->len, sizeof t->screen - 1 - t->len);
        if (n <= 0)
            return -1;
        t->len += (size_t) n;
    }
    return 0;
}

static void
s_tty_type (tty_client_t *t, const char *keys)
{
    size_t len = strlen (keys);
    assert_int_equal (write (t->master, keys, len), (ssize_t) len);
}

//  Non-ASCII typed on a terminal goes out intact, whatever the locale
//  the client was started in: accents, CJK, emoji.
static void
test_terminal_utf8 (void **state)
{
    (void) state;
    s_start_broker (0);
    int t = sc_testproc_timeout (10000);
    tty_client_t alice;
    s_tty_start (&alice, "alice");
    if (s_tty_wait (&alice, "[idle]", t))
        fail_msg ("no idle prompt; the terminal shows: %.*s", (int) alice.len, alice.screen);
    sc_testproc_t *bob = LOGIN ("bob");
    s_tty_type (&alice, "/talk bob\r");
    SEE (bob, "request alice");
    SAY (bob, "/accept");
    SEE_PREFIX (bob, "chat alice ");
    assert_int_equal (s_tty_wait (&alice, "[bob]", t), 0);
    s_tty_type (&alice, "h\xc3\xa9llo w\xc3\xb6rld \xe2\x9c\x93 "
                        "\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e \xf0\x9f\x8e\x89\r");
    SEE (bob, "msg alice h\xc3\xa9llo w\xc3\xb6rld \xe2\x9c\x93 "
              "\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e \xf0\x9f\x8e\x89");
    s_tty_type (&alice, "/quit\r");
    assert_int_equal (sc_testproc_tty_wait (alice.pid, alice.master, t), 0);
    close (alice.master);
    QUIT_CHAT (bob, "alice");
    STOP_BROKER (SIGTERM);
}

//  A local TCP port nobody listens on (free a moment ago).
static int
s_free_port (void)
{
    int port = 0;
    int fd = sc_testnet_socket (false, &port, false);
    assert_true (fd >= 0);
    close (fd);
    return port;
}

static void
test_login_unreachable (void **state)
{
    (void) state;
    snprintf (g_endpoint, sizeof g_endpoint, "tcp://127.0.0.1:%d", s_free_port ());
    int64_t start = sc_testproc_now_ms ();
    sc_testproc_t *p = s_client_with ((sc_testclient_t) { .user = "alice", .timeout = "2" });
    LOGIN_FAILS (p, NULL);
    int64_t took = sc_testproc_now_ms () - start;
    fprintf (stderr, "test_login_unreachable: gave up after %lld ms\n", (long long) took);
    assert_true (took <= sc_testproc_timeout (3500));
}

//  /fingerprint: SHA-256 of the raw key; in a chat also the peer's and
//  the safety number.
static void
test_fingerprint (void **state)
{
    (void) state;
    s_start_broker (0);
    char fp_alice [FINGERPRINT_LEN + 1], fp_bob [FINGERPRINT_LEN + 1];
    char safety [SAFETY_LEN + 1];
    s_expected_fingerprint ("alice", fp_alice);
    s_expected_fingerprint ("bob", fp_bob);
    s_expected_safety ("alice", "bob", safety);

    sc_testproc_t *alice = LOGIN ("alice");
    sc_testproc_t *bob = LOGIN ("bob");
    SAY (alice, "/fingerprint");
    SEE (alice, J ("fingerprint ", fp_alice));
    OPEN_CHAT (alice, "alice", bob, "bob");
    SAY (alice, "/fingerprint");
    SEE (alice, J ("fingerprint ", fp_alice, " bob ", fp_bob, " ", safety));
    SAY (bob, "/fingerprint");
    SEE (bob, J ("fingerprint ", fp_bob, " alice ", fp_alice, " ", safety));
    QUIT_BOTH (alice, "alice", bob, "bob");
    STOP_BROKER (SIGTERM);
}

//  The broker's log says who talked to whom, never what they said.
static void
test_broker_log_has_no_text (void **state)
{
    (void) state;
    static const char *const secrets [] = {
        "the eagle lands at midnight 7319",
        "the owl sleeps at noon 4420",
        "héllo wörld ✓ 😀 ½ secret",
    };
    s_start_broker (0);
    sc_testproc_t *alice = LOGIN ("alice");
    sc_testproc_t *bob = LOGIN ("bob");
    OPEN_CHAT (alice, "alice", bob, "bob");
    MESSAGE (alice, "alice", bob, secrets [0]);
    MESSAGE (bob, "bob", alice, secrets [1]);
    MESSAGE (alice, "alice", bob, secrets [2]);
    QUIT_BOTH (alice, "alice", bob, "bob");
    STOP_BROKER (SIGTERM);

    char *log = sc_testdir_slurp (sc_testproc_log_path (g_broker), NULL);
    assert_non_null (log);
    int ok = strstr (log, "alice") && strstr (log, "bob");
    static const char *const words [] = { "eagle", "midnight", "7319", "owl", "4420", "wörld" };
    for (size_t i = 0; i < sizeof words / sizeof words [0]; i++)
        if (strstr (log, words [i])) {
            fprintf (stderr, "broker log contains message text \"%s\"\n", words [i]);
            ok = 0;
        }
    if (!ok)
        fprintf (stderr, "broker log (must name alice and bob, and no message text):\n%s<end>\n", log);
    free (log);
    assert_true (ok);
}

//  Bad command lines exit 2, print no event, and say why on stderr.
static void
test_bad_arguments (void **state)
{
    (void) state;
    char *secchat = sc_testdir_path (sc_testproc_bin_dir (), "secchat");
    const char *key = J (g_keys, "/clients/alice.key");
    const char *ca = J (g_keys, "/ca.pem");
    const char *const no_user [] = { secchat, "--batch", "--key", key, "--ca", ca, NULL };
    const char *const bad_user [] = { secchat, "--batch", "--user", "Alice!", "--key", key,
                                      "--ca", ca, NULL };
    const char *const unknown [] = { secchat, "--batch", "--user", "alice", "--key", key,
                                     "--ca", ca, "--no-such-option", NULL };
    const char *const bad_timeout [] = { secchat, "--batch", "--user", "alice", "--key", key,
                                         "--ca", ca, "--timeout", "soon", NULL };
    const char *const *const cases [] = { no_user, bad_user, unknown, bad_timeout };
    static const char *const names [] = { "no-user", "bad-user", "unknown", "bad-timeout" };
    for (size_t i = 0; i < sizeof cases / sizeof cases [0]; i++) {
        char *log = sc_testdir_path (g_work, J (names [i], ".log"));
        sc_testproc_t *p = sc_testproc_new (names [i], cases [i], log);
        free (log);
        assert_non_null (p);
        assert_int_equal (sc_testproc_expect_eof (p, T_EXIT), 0);
        EXITS (p, 2);
        char *err = sc_testdir_slurp (sc_testproc_log_path (p), NULL);
        int said = err && *err;
        free (err);
        if (!said)
            fprintf (stderr, "[%s] exit 2 without a word on stderr\n", names [i]);
        assert_true (said);
        sc_testproc_destroy (&p);
    }
    free (secchat);
}

//  A message typed while the keys are being agreed is sent once they are.
static void
test_message_during_key_agreement (void **state)
{
    (void) state;
    s_start_broker (0);
    sc_testproc_t *alice = LOGIN ("alice");
    sc_testproc_t *bob = LOGIN ("bob");
    SAY (alice, "/talk bob");
    SEE (bob, "request alice");
    SAY (bob, "/accept");
    SEE (alice, "accepted bob");
    SAY (alice, "typed before the chat line");
    SEE_CHAT (alice, "alice", bob, "bob");
    SEE (bob, "msg alice typed before the chat line");
    MESSAGE (bob, "bob", alice, "got it");
    QUIT_BOTH (alice, "alice", bob, "bob");
    STOP_BROKER (SIGTERM);
}

//  Copies a file, keeping it private.
static void
s_copy_file (const char *from, const char *to)
{
    size_t len = 0;
    char *data = sc_testdir_slurp (from, &len);
    assert_non_null (data);
    FILE *file = fopen (to, "wb");
    assert_non_null (file);
    assert_int_equal (fwrite (data, 1, len, file), len);
    assert_int_equal (fclose (file), 0);
    assert_int_equal (chmod (to, 0600), 0);
    free (data);
}

//  When the broker gives another key for a peer than the one the client
//  saw before, the client says so ("error key-changed").
static void
test_key_changed (void **state)
{
    (void) state;
    //  bob chats with alice and so pins her key.
    s_start_broker (0);
    sc_testproc_t *alice = LOGIN ("alice");
    sc_testproc_t *bob = LOGIN ("bob");
    OPEN_CHAT (bob, "bob", alice, "alice");
    QUIT_BOTH (alice, "alice", bob, "bob");
    STOP_BROKER (SIGTERM);
    sc_testproc_destroy_all ();

    //  A broker whose registry has another key for alice.
    char *mixed = sc_testdir_path (g_work, "mixed-keys");
    assert_int_equal (mkdir (mixed, 0700), 0);
    assert_int_equal (mkdir (J (mixed, "/users"), 0700), 0);
    s_copy_file (J (g_keys, "/broker.crt"), J (mixed, "/broker.crt"));
    s_copy_file (J (g_keys, "/broker.key"), J (mixed, "/broker.key"));
    s_copy_file (J (g_keys, "/users/bob.pub"), J (mixed, "/users/bob.pub"));
    s_copy_file (J (g_other, "/users/alice.pub"), J (mixed, "/users/alice.pub"));
    g_broker = sc_testproc_broker_new (mixed, g_work, 0, g_endpoint, sizeof g_endpoint);
    free (mixed);
    assert_non_null (g_broker);

    alice = s_client_with ((sc_testclient_t) {
        .keys = g_other, .user = "alice", .name = "alice-new-key",
        .ca_file = J (g_keys, "/ca.pem")
    });
    SEE (alice, "ready alice");
    bob = LOGIN ("bob");
    SAY (bob, "/talk alice");
    SEE (alice, "request bob");
    SAY (alice, "/accept");
    //  What else bob sees around it (accepted, chat, closed) is the
    //  client's choice; the warning must come.
    const char *line;
    int warned = 0;
    while (!warned && sc_testproc_read_line (bob, T_LINE, &line) == 1)
        warned = strncmp (line, "error key-changed", 17) == 0
              && (line [17] == 0 || line [17] == ' ');
    if (!warned) {
        fprintf (stderr, "\n[bob] expected \"error key-changed ...\"\n");
        sc_testproc_dump_all ();
        fail ();
    }
}

//  ---------------------------------------------------------------------
//  Keys at rest: neither program can leave a core dump

//  Starts bin/NAME with argv, with a core size limit that allows dumps
//  and, as root, as user 65534 (so that /proc/PID's owner shows whether
//  it is dumpable). It blocks opening the FIFO given as its first file.
static pid_t
s_spawn_blocked (const char *name, const char *const argv [])
{
    pid_t pid = fork ();
    assert_true (pid >= 0);
    if (pid == 0) {
        struct rlimit core = { 1 << 20, 1 << 20 };
        if (geteuid () != 0 && getrlimit (RLIMIT_CORE, &core) == 0)
            core.rlim_cur = core.rlim_max;
        if (setrlimit (RLIMIT_CORE, &core)
        ||  (geteuid () == 0 && (setgid (65534) || setuid (65534))))
            _exit (126);
        execv (J (sc_testproc_bin_dir (), "/", name), (char *const *) argv);
        _exit (127);
    }
    return pid;
}

//  The core size limit of pid once it runs the program name (-1 before
//  or when unreadable, -2 when it exited).
static long
s_core_limit (pid_t pid, const char *name)
{
    int status;
    if (waitpid (pid, &status, WNOHANG) == pid)
        return -2;
    char path [64], text [4096];
    snprintf (path, sizeof path, "/proc/%d/comm", (int) pid);
    FILE *file = fopen (path, "r");
    if (!file)
        return -1;
    size_t n = fread (text, 1, sizeof text - 1, file);
    fclose (file);
    text [n] = 0;
    if (strncmp (text, name, strlen (name)) != 0 || text [strlen (name)] != '\n')
        return -1;                      //  not exec'd yet
    snprintf (path, sizeof path, "/proc/%d/limits", (int) pid);
    file = fopen (path, "r");
    if (!file)
        return -1;
    n = fread (text, 1, sizeof text - 1, file);
    fclose (file);
    text [n] = 0;
    const char *line = strstr (text, "Max core file size");
    return line ? strtol (line + 18, NULL, 10) : -1;
}

//  Not dumpable: its private /proc files (environ, 0400) belong to root,
//  and no process without CAP_SYS_PTRACE may attach to it, even its
//  parent.
static int
s_dumpable (pid_t pid)
{
    if (geteuid () == 0) {
        struct stat st;
        char path [48];
        snprintf (path, sizeof path, "/proc/%d/environ", (int) pid);
        return stat (path, &st) == 0 && st.st_uid != 0;
    }
    if (ptrace (PTRACE_ATTACH, pid, NULL, NULL) == 0) {
        waitpid (pid, NULL, 0);
        ptrace (PTRACE_DETACH, pid, NULL, NULL);
        return 1;
    }
    return errno != EPERM;
}

static void
s_check_no_dumps (const char *name, const char *const argv [])
{
    pid_t pid = s_spawn_blocked (name, argv);
    long limit = -1;
    int dumpable = 1;
    int64_t until = sc_testproc_now_ms () + sc_testproc_timeout (5000);
    //  (Under ASan the limit is 0 before main; the flag comes after.)
    while (((limit = s_core_limit (pid, name)) != 0 || (dumpable = s_dumpable (pid)))
           && limit != -2 && sc_testproc_now_ms () < until)
        sc_testproc_sleep_ms (10);
    kill (pid, SIGKILL);
    waitpid (pid, NULL, 0);
    if (limit != 0 || dumpable) {
        print_error ("%s: core size limit %ld (want 0), %s\n", name, limit,
                     dumpable ? "dumpable" : "not dumpable");
        fail ();
    }
}

//  Each program sets RLIMIT_CORE to 0 and PR_SET_DUMPABLE to 0 first
//  thing, before it reads any key or password (here it is still waiting
//  to open its first file).
static void
test_no_core_dumps (void **state)
{
    (void) state;
    //  A directory that user 65534 can reach.
    char *dir = sc_testdir_new ("nodump");
    assert_non_null (dir);
    assert_int_equal (chmod (dir, 0755), 0);
    char *fifo = sc_testdir_path (dir, "fifo");
    assert_int_equal (mkfifo (fifo, 0666), 0);
    assert_int_equal (chmod (fifo, 0666), 0);
    //  Its own configuration directory: user 65534 cannot read $HOME's.
    const char *client [] = { "secchat", "--batch", "--user", "alice", "--ca", fifo,
                              "--key", fifo, "--password-file", fifo,
                              "--config-dir", dir, NULL };
    s_check_no_dumps ("secchat", client);
    const char *broker [] = { "secbroker", "--endpoint", "tcp://127.0.0.1:0", "--key", fifo,
                              "--cert", fifo, "--users", dir, NULL };
    s_check_no_dumps ("secbroker", broker);
    free (fifo);
    assert_int_equal (sc_testdir_remove (dir), 0);
    free (dir);
}

int
main (void)
{
    const struct CMUnitTest tests [] = {
#define T(test) cmocka_unit_test_setup_teardown (test, s_setup, s_teardown)
        T (test_login_and_list),
        T (test_request_accept_and_messages),
        T (test_control_characters),
        T (test_too_long_and_bad_utf8),
        T (test_refuse),
        T (test_busy),
        T (test_not_found),
        T (test_self_request),
        T (test_leave),
        T (test_quit_and_end_of_input),
        T (test_script_asks_then_quits),
        T (test_text_without_chat),
        T (test_lost_client),
        T (test_broker_lost),
        T (test_three_pairs),
        T (test_second_login_replaces),
        T (test_login_wrong_password),
        T (test_login_other_ca),
        T (test_login_wrong_broker_name),
        T (test_login_with_cookie),
        T (test_terminal_utf8),
        T (test_login_retried_when_busy),
        T (test_login_unregistered),
        T (test_login_unreachable),
        T (test_fingerprint),
        T (test_broker_log_has_no_text),
        T (test_bad_arguments),
        T (test_message_during_key_agreement),
        T (test_key_changed),
        T (test_no_core_dumps),
#undef T
    };
    //  SC_TEST_FILTER=test_busy (a glob) runs only the matching tests.
    const char *filter = getenv ("SC_TEST_FILTER");
    if (filter && *filter)
        cmocka_set_test_filter (filter);
    return cmocka_run_group_tests_name ("integration", tests,
                                        s_group_setup, s_group_teardown);
}
