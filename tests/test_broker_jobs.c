/*  Tests of the broker core's login jobs (sc_broker_set_offload): the
    costly login steps handed over, run on another thread, given back
    later, and what happens when the session changed meanwhile. The
    broker is driven without sockets, as in test_sc_broker.c.

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at https://mozilla.org/MPL/2.0/.
*/
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <czmq.h>
#include <pthread.h>
#include <string.h>

#include "sc_broker.h"
#include "sc_handshake.h"
#include "sc_log.h"
#include "sc_testbroker.h"
#include "sc_wire.h"

#define S_JOBS_MAX 16
#define S_CLIENTS  8    /* rid[4] = 1..7 */

static struct {
    sc_testbroker_keys_t k;
    sc_broker_t *broker;
    int64_t now;
    /* the last frame the broker sent, per client (rid[4] = 1..7) */
    uint8_t *frame[S_CLIENTS];
    size_t len[S_CLIENTS];
    size_t sent[S_CLIENTS];
    const char *source;         /* the source address the shell gives */
    /* jobs handed over */
    sc_broker_job_t *jobs[S_JOBS_MAX];
    size_t njobs;
    bool refuse;                /* the offload function says no */
} T;

static int
s_capture (void *arg, const uint8_t *rid, size_t rid_len, uint8_t *frame, size_t len)
{
    (void) arg;
    assert_int_equal (rid_len, 5);
    assert_true (rid[4] >= 1 && rid[4] < S_CLIENTS);
    free (T.frame[rid[4]]);
    T.frame[rid[4]] = frame;
    T.len[rid[4]] = len;
    T.sent[rid[4]]++;
    return 0;
}

static const char *
s_source (void *arg)
{
    (void) arg;
    return T.source;
}

static int
s_offload (void *arg, sc_broker_job_t *job)
{
    assert_ptr_equal (arg, &T);
    if (T.refuse)
        return -1;
    assert_true (T.njobs < S_JOBS_MAX);
    T.jobs[T.njobs++] = job;
    return 0;
}

static void *
s_run_jobs (void *arg)
{
    (void) arg;
    for (size_t i = 0; i < T.njobs; i++)
        sc_broker_job_run (T.jobs[i]);
    return NULL;
}

/* Run every job handed over on another thread, then give them back. */
static void
s_work (void)
{
    pthread_t thread;
    assert_int_equal (pthread_create (&thread, NULL, s_run_jobs, NULL), 0);
    assert_int_equal (pthread_join (thread, NULL), 0);
    for (size_t i = 0; i < T.njobs; i++)
        sc_broker_job_done (T.broker, T.jobs[i], T.now);
    T.njobs = 0;
}

/* ---- A client ------------------------------------------------------------ */

typedef struct {
    uint8_t rid[5];
    sc_key_t *key;
    sc_handshake_t *hs;
    sc_channel_t *ch;
} client_t;

static void
s_client_init (client_t *c, uint8_t n, const char *user, const char *claimed)
{
    memset (c, 0, sizeof *c);
    c->rid[4] = n;
    c->key = sc_testkeys_user_key (T.k.keys, user);
    assert_non_null (c->key);
    c->hs = sc_handshake_new_client (c->key, claimed, T.k.ca, "secbroker");
    assert_non_null (c->hs);
}

static void
s_client_fini (client_t *c)
{
    sc_handshake_destroy (&c->hs);
    sc_channel_destroy (&c->ch);
    sc_key_destroy (&c->key);
}

/* Hands frame to the broker as from c, and frees it. */
static void
s_deliver (client_t *c, uint8_t *frame, size_t len)
{
    sc_broker_handle (T.broker, c->rid, sizeof c->rid, frame, len, T.now);
    free (frame);
}

static void
s_deliver_plain (client_t *c, const sc_msg_t *msg)
{
    uint8_t *frame;
    size_t len;
    assert_int_equal (sc_wire_plain (msg, &frame, &len), 0);
    s_deliver (c, frame, len);
}

static void
s_hello (client_t *c)
{
    uint8_t *frame;
    size_t len;
    sc_testbroker_hello (c->hs, &frame, &len);
    s_deliver (c, frame, len);
}

/* The broker's last frame to c, a plaintext message. */
static void
s_last_plain (client_t *c, sc_msg_t *msg)
{
    assert_non_null (T.frame[c->rid[4]]);
    assert_int_equal (sc_wire_open_plain (T.frame[c->rid[4]], T.len[c->rid[4]], msg), 0);
}

/* AUTH_BROKER in, AUTH_CLIENT out; the channel ready for WELCOME. */
static void
s_auth (client_t *c)
{
    assert_non_null (T.frame[c->rid[4]]);
    uint8_t *frame;
    size_t len;
    sc_testbroker_auth (c->hs, T.frame[c->rid[4]], T.len[c->rid[4]], &frame, &len, &c->ch);
    s_deliver (c, frame, len);
}

static void
s_expect_welcome (client_t *c, const char *name)
{
    sc_msg_t msg;
    assert_int_equal (sc_wire_open (c->ch, T.frame[c->rid[4]], T.len[c->rid[4]], &msg), 0);
    assert_int_equal (msg.opcode, SC_OP_WELCOME);
    assert_string_equal (msg.name, name);
    sc_msg_reset (&msg);
}

static void
s_expect_plain_error (client_t *c, uint32_t code)
{
    sc_msg_t msg;
    s_last_plain (c, &msg);
    assert_int_equal (msg.opcode, SC_OP_ERROR);
    assert_int_equal (msg.code, code);
    sc_msg_reset (&msg);
}

/* ---- Fixture ------------------------------------------------------------------ */

static int
s_group_setup (void **state)
{
    (void) state;
    zsys_init ();
    zsys_set_logstream (stderr);
    sc_log_set_level ("error");
    return sc_testbroker_keys_load (&T.k, sc_testkeys_new (NULL, "alice", "bob", NULL));
}

static int
s_group_teardown (void **state)
{
    (void) state;
    sc_testbroker_keys_free (&T.k);
    return 0;
}

static int
s_setup (void **state)
{
    (void) state;
    T.now = 1000000;
    T.njobs = 0;
    T.refuse = false;
    T.source = NULL;
    T.broker = sc_broker_new (T.k.broker_key, T.k.cert, T.k.cert_len, T.k.registry, NULL,
                              s_capture, NULL);
    if (!T.broker)
        return -1;
    sc_broker_set_offload (T.broker, s_offload, &T);
    return 0;
}

/* A new broker with these options, jobs handed to the test. */
static void
s_restart_with (const sc_broker_opts_t *opts)
{
    s_work ();
    sc_broker_destroy (&T.broker);
    T.broker = sc_broker_new (T.k.broker_key, T.k.cert, T.k.cert_len, T.k.registry, opts,
                              s_capture, NULL);
    assert_non_null (T.broker);
    sc_broker_set_offload (T.broker, s_offload, &T);
    sc_broker_set_source (T.broker, s_source);
}

/* A broker with small limits: logins in progress, per source, cookies. */
static void
s_restart (size_t max_logins, size_t per_source, size_t cookie_at)
{
    sc_broker_opts_t opts;
    sc_broker_opts_default (&opts);
    opts.max_handshakes = max_logins;
    opts.max_per_source = per_source;
    opts.cookie_at = cookie_at;
    s_restart_with (&opts);
}

static int
s_teardown (void **state)
{
    (void) state;
    s_work ();              /* no job left out */
    sc_broker_destroy (&T.broker);
    for (int i = 0; i < S_CLIENTS; i++) {
        free (T.frame[i]);
        T.frame[i] = NULL;
        T.sent[i] = 0;
    }
    return 0;
}

/* ---- Tests -------------------------------------------------------------------------- */

/* Each costly step waits for its job; the login ends as it would inline. */
static void
test_login_through_jobs (void **state)
{
    (void) state;
    client_t alice;
    s_client_init (&alice, 1, "alice", "alice");
    s_hello (&alice);
    assert_int_equal (T.sent[1], 0);           /* no answer before the job */
    assert_int_equal (sc_broker_jobs (T.broker), 1);
    assert_int_equal (sc_broker_handshakes (T.broker), 1);
    s_work ();
    assert_int_equal (sc_broker_jobs (T.broker), 0);
    assert_int_equal (T.sent[1], 1);
    s_auth (&alice);
    assert_int_equal (T.sent[1], 1);           /* WELCOME waits for the check */
    assert_int_equal (sc_broker_sessions (T.broker), 0);
    s_work ();
    assert_int_equal (T.sent[1], 2);
    s_expect_welcome (&alice, "alice");
    assert_int_equal (sc_broker_sessions (T.broker), 1);
    assert_int_equal (sc_broker_handshakes (T.broker), 0);
    s_client_fini (&alice);
}

/* Two logins interleaved, their jobs given back in the other order. */
static void
test_jobs_back_in_any_order (void **state)
{
    (void) state;
    client_t alice, bob;
    s_client_init (&alice, 1, "alice", "alice");
    s_client_init (&bob, 2, "bob", "bob");
    s_hello (&alice);
    s_hello (&bob);
    assert_int_equal (T.njobs, 2);
    sc_broker_job_t *first = T.jobs[0];
    T.jobs[0] = T.jobs[1];
    T.jobs[1] = first;
    s_work ();
    s_auth (&bob);
    s_auth (&alice);
    s_work ();
    s_expect_welcome (&alice, "alice");
    s_expect_welcome (&bob, "bob");
    assert_int_equal (sc_broker_sessions (T.broker), 2);
    s_client_fini (&alice);
    s_client_fini (&bob);
}

/* A login that times out while its job is out: the job is dropped. */
static void
test_job_of_timed_out_login (void **state)
{
    (void) state;
    client_t alice;
    s_client_init (&alice, 1, "alice", "alice");
    s_hello (&alice);
    T.now += 10001;
    sc_broker_tick (T.broker, T.now);
    s_expect_plain_error (&alice, SC_ERR_TIMEOUT);
    assert_int_equal (sc_broker_handshakes (T.broker), 0);
    size_t sent = T.sent[1];
    s_work ();
    assert_int_equal (T.sent[1], sent);        /* no AUTH_BROKER after all */
    assert_int_equal (sc_broker_jobs (T.broker), 0);
    assert_int_equal (sc_broker_handshakes (T.broker), 0);
    s_client_fini (&alice);
}

/* A client that does not wait for the broker's answer is dropped. */
static void
test_message_while_job_out (void **state)
{
    (void) state;
    client_t alice;
    s_client_init (&alice, 1, "alice", "alice");
    s_hello (&alice);
    sc_msg_t msg;
    sc_msg_init (&msg, SC_OP_AUTH_CLIENT);
    uint8_t box[40] = { 0 };
    assert_int_equal (sc_msg_set_data (&msg, box, sizeof box), 0);
    s_deliver_plain (&alice, &msg);
    sc_msg_reset (&msg);
    /* dropped: no answer, the login and its one job stay as they were */
    assert_int_equal (T.sent[1], 0);
    assert_int_equal (sc_broker_handshakes (T.broker), 1);
    assert_int_equal (sc_broker_jobs (T.broker), 1);
    s_work ();
    assert_int_equal (T.sent[1], 1);            /* AUTH_BROKER */
    s_auth (&alice);
    s_work ();
    s_expect_welcome (&alice, "alice");
    s_client_fini (&alice);
}

/* One connection flooding HELLOs (the same one, no crypto on its side)
   gets one job at a time and costs nothing more: the rest is dropped,
   before and after the broker's answer. */
static void
test_hello_flood_one_connection (void **state)
{
    (void) state;
    client_t mallory;
    s_client_init (&mallory, 1, "alice", "alice");
    uint8_t *hello;
    size_t hello_len;
    sc_testbroker_hello (mallory.hs, &hello, &hello_len);
    for (int i = 0; i < 10000; i++)
        sc_broker_handle (T.broker, mallory.rid, sizeof mallory.rid, hello, hello_len, T.now);
    assert_int_equal (sc_broker_jobs (T.broker), 1);
    assert_int_equal (sc_broker_logins (T.broker), 1);
    s_work ();
    assert_int_equal (T.sent[1], 1);            /* one AUTH_BROKER */
    for (int i = 0; i < 10000; i++)
        sc_broker_handle (T.broker, mallory.rid, sizeof mallory.rid, hello, hello_len, T.now);
    assert_int_equal (sc_broker_jobs (T.broker), 0);
    assert_int_equal (T.sent[1], 1);
    assert_int_equal (sc_broker_logins (T.broker), 1);
    free (hello);
    s_client_fini (&mallory);
}

/* A job counts against the cap until it is back, whatever became of
   its session: the jobs out never exceed the cap. */
static void
test_job_counts_until_back (void **state)
{
    (void) state;
    s_restart (2, 2, 100);
    client_t c[3];
    for (int i = 0; i < 3; i++)
        s_client_init (&c[i], (uint8_t) (i + 1), "alice", "alice");
    s_hello (&c[0]);
    s_hello (&c[1]);
    T.now += 10001;
    sc_broker_tick (T.broker, T.now);           /* both time out, jobs out */
    assert_int_equal (sc_broker_handshakes (T.broker), 0);
    assert_int_equal (sc_broker_logins (T.broker), 2);
    s_hello (&c[2]);
    s_expect_plain_error (&c[2], SC_ERR_RATE);
    assert_int_equal (sc_broker_jobs (T.broker), 2);
    s_work ();
    assert_int_equal (sc_broker_logins (T.broker), 0);
    sc_handshake_destroy (&c[2].hs);
    c[2].hs = sc_handshake_new_client (c[2].key, "alice", T.k.ca, "secbroker");
    s_hello (&c[2]);
    assert_int_equal (sc_broker_jobs (T.broker), 1);
    for (int i = 0; i < 3; i++)
        s_client_fini (&c[i]);
}

/* One source address cannot take every login in progress. */
static void
test_logins_per_source (void **state)
{
    (void) state;
    s_restart (100, 2, 100);
    client_t c[4];
    for (int i = 0; i < 4; i++)
        s_client_init (&c[i], (uint8_t) (i + 1), "alice", "alice");
    T.source = "192.0.2.1";
    s_hello (&c[0]);
    s_hello (&c[1]);
    s_hello (&c[2]);
    s_expect_plain_error (&c[2], SC_ERR_RATE);
    assert_int_equal (sc_broker_logins (T.broker), 2);
    sc_broker_stats_t stats;
    sc_broker_stats (T.broker, &stats);
    assert_int_equal (stats.logins_failed[SC_BROKER_FAIL_RATE], 1);
    T.source = "192.0.2.2";
    s_hello (&c[3]);
    assert_int_equal (sc_broker_logins (T.broker), 3);
    /* a login that ends gives its source's place back */
    s_work ();
    s_auth (&c[0]);
    s_work ();
    s_expect_welcome (&c[0], "alice");
    T.source = "192.0.2.1";
    sc_handshake_destroy (&c[2].hs);
    c[2].hs = sc_handshake_new_client (c[2].key, "alice", T.k.ca, "secbroker");
    s_hello (&c[2]);
    assert_int_equal (sc_broker_jobs (T.broker), 1);
    for (int i = 0; i < 4; i++)
        s_client_fini (&c[i]);

    /* the addresses of one IPv6 /64 are one source (the core groups
       the peer addresses the shell gives) */
    s_restart (100, 2, 100);
    for (int i = 0; i < 4; i++)
        s_client_init (&c[i], (uint8_t) (i + 1), "alice", "alice");
    T.source = "2001:db8:1:2::a";
    s_hello (&c[0]);
    T.source = "2001:db8:1:2:ffff::b";
    s_hello (&c[1]);
    T.source = "2001:db8:1:2::c";
    s_hello (&c[2]);
    s_expect_plain_error (&c[2], SC_ERR_RATE);
    T.source = "2001:db8:1:3::a";
    s_hello (&c[3]);
    assert_int_equal (sc_broker_logins (T.broker), 3);
    for (int i = 0; i < 4; i++)
        s_client_fini (&c[i]);
}

/* A failed login as one of c's (alice's key, bob's name): refused. */
static void
s_fail_login (client_t *c)
{
    sc_handshake_destroy (&c->hs);
    sc_channel_destroy (&c->ch);
    c->hs = sc_handshake_new_client (c->key, "bob", T.k.ca, "secbroker");
    assert_non_null (c->hs);
    s_hello (c);
    s_work ();
    s_auth (c);
    s_work ();
    s_expect_plain_error (c, SC_ERR_AUTH);
}

/* Failed logins are logged at debug level only, and summed up at info
   level once a minute with the sources that failed most. */
static void
test_failed_logins_summary (void **state)
{
    (void) state;
    s_restart (100, 100, 100);
    char *log = NULL;
    size_t log_len = 0;
    FILE *stream = open_memstream (&log, &log_len);
    assert_non_null (stream);
    sc_log_open (NULL, stream);
    sc_log_set_level ("info");
    sc_broker_tick (T.broker, T.now);
    client_t c;
    s_client_init (&c, 1, "alice", "bob");
    T.source = "192.0.2.1";
    s_fail_login (&c);
    s_fail_login (&c);
    T.source = "192.0.2.2";
    s_fail_login (&c);
    T.source = "192.0.2.3";
    s_fail_login (&c);
    s_fail_login (&c);
    s_fail_login (&c);
    T.now += 59999;
    sc_broker_tick (T.broker, T.now);
    fflush (stream);
    assert_int_equal (log_len, 0);              /* nothing yet, at info */
    T.now += 1;
    sc_broker_tick (T.broker, T.now);
    T.now += 60000;
    sc_broker_tick (T.broker, T.now);           /* no failures: no line */
    fflush (stream);
    sc_log_open (NULL, NULL);
    sc_log_set_level ("error");
    assert_non_null (strstr (log, "6 failed logins in the last minute, top sources "
                                  "192.0.2.3 (3), 192.0.2.1 (2), 192.0.2.2 (1)\n"));
    assert_null (strstr (log, "login failed"));
    assert_null (strstr (log, "bob"));          /* names at debug only */
    assert_int_equal (strchr (log, '\n') + 1 - log, (long) log_len);  /* one line */
    fclose (stream);
    free (log);
    s_client_fini (&c);
}

/* A source whose logins keep failing is refused for the rest of the
   minute; others are not. */
static void
test_failed_logins_per_source (void **state)
{
    (void) state;
    sc_broker_opts_t opts;
    sc_broker_opts_default (&opts);
    opts.max_failed_per_source = 2;
    s_restart_with (&opts);
    sc_broker_tick (T.broker, T.now);
    client_t c, d;
    s_client_init (&c, 1, "alice", "bob");
    s_client_init (&d, 2, "alice", "alice");
    T.source = "192.0.2.1";
    s_fail_login (&c);
    s_fail_login (&c);
    sc_handshake_destroy (&c.hs);
    c.hs = sc_handshake_new_client (c.key, "alice", T.k.ca, "secbroker");
    s_hello (&c);
    s_expect_plain_error (&c, SC_ERR_RATE);
    assert_int_equal (sc_broker_jobs (T.broker), 0);
    T.source = "192.0.2.2";                     /* another address: fine */
    s_hello (&d);
    s_work ();
    s_auth (&d);
    s_work ();
    s_expect_welcome (&d, "alice");
    T.now += 60000;                             /* a new minute */
    sc_broker_tick (T.broker, T.now);
    T.source = "192.0.2.1";
    sc_handshake_destroy (&c.hs);
    c.hs = sc_handshake_new_client (c.key, "alice", T.k.ca, "secbroker");
    s_hello (&c);
    assert_int_equal (sc_broker_jobs (T.broker), 1);
    s_client_fini (&c);
    s_client_fini (&d);
}

/* Logins are counted per IPv4 address and per IPv6 /64. */
static void
test_source_names (void **state)
{
    (void) state;
    char buf[64];
    assert_string_equal (sc_broker_source_name ("192.0.2.7", buf, sizeof buf), "192.0.2.7");
    assert_string_equal (sc_broker_source_name ("::ffff:192.0.2.7", buf, sizeof buf),
                         "192.0.2.7");
    assert_string_equal (sc_broker_source_name ("2001:db8:1:2:aaaa:bbbb:cccc:dddd", buf,
                                                sizeof buf), "2001:db8:1:2::/64");
    assert_string_equal (sc_broker_source_name ("2001:db8:1:2::9", buf, sizeof buf),
                         "2001:db8:1:2::/64");
    assert_string_equal (sc_broker_source_name ("::1", buf, sizeof buf), "::/64");
    assert_null (sc_broker_source_name (NULL, buf, sizeof buf));
}

/* The cookie the broker sent (c's last frame). */
static void
s_expect_cookie (client_t *c, uint8_t cookie[static SC_COOKIE_LEN])
{
    sc_msg_t msg;
    s_last_plain (c, &msg);
    assert_int_equal (msg.opcode, SC_OP_COOKIE);
    memcpy (cookie, msg.cookie, SC_COOKIE_LEN);
    sc_msg_reset (&msg);
}

/* c's HELLO again, with a cookie. */
static void
s_hello_cookie (client_t *c, const uint8_t *hello, size_t len, const uint8_t *cookie)
{
    sc_msg_t msg;
    assert_int_equal (sc_wire_open_plain (hello, len, &msg), 0);
    msg.opcode = SC_OP_HELLO_COOKIE;
    memcpy (msg.cookie, cookie, SC_COOKIE_LEN);
    s_deliver_plain (c, &msg);
    sc_msg_reset (&msg);
}

/* Under load a HELLO costs the broker a MAC: no job, no state, until it
   comes back with the cookie for its own connection and HELLO. */
static void
test_cookie_under_load (void **state)
{
    (void) state;
    s_restart (100, 100, 1);
    client_t c[3];
    uint8_t *hello[3];
    size_t len[3];
    for (int i = 0; i < 3; i++) {
        s_client_init (&c[i], (uint8_t) (i + 1), "alice", "alice");
        sc_testbroker_hello (c[i].hs, &hello[i], &len[i]);
    }
    sc_broker_handle (T.broker, c[0].rid, sizeof c[0].rid, hello[0], len[0], T.now);
    assert_int_equal (T.sent[1], 0);            /* not under load yet: a job */
    assert_int_equal (sc_broker_jobs (T.broker), 1);
    sc_broker_handle (T.broker, c[1].rid, sizeof c[1].rid, hello[1], len[1], T.now);
    uint8_t cookie[SC_COOKIE_LEN], other[SC_COOKIE_LEN];
    s_expect_cookie (&c[1], cookie);
    assert_int_equal (sc_broker_jobs (T.broker), 1);
    assert_int_equal (sc_broker_logins (T.broker), 1);
    /* the cookie is for c[1]'s connection and HELLO only */
    s_hello_cookie (&c[2], hello[2], len[2], cookie);
    s_expect_cookie (&c[2], other);
    assert_memory_not_equal (cookie, other, SC_COOKIE_LEN);
    s_hello_cookie (&c[2], hello[1], len[1], cookie);
    assert_int_equal (T.sent[c[2].rid[4]], 2);  /* another COOKIE */
    assert_int_equal (sc_broker_jobs (T.broker), 1);
    /* the metrics count every COOKIE sent: one to c[1], two to c[2] */
    sc_broker_stats_t stats;
    sc_broker_stats (T.broker, &stats);
    assert_int_equal (stats.cookies, 3);
    /* still good after one rotation of the secret, not after two */
    T.now += 120000;
    sc_broker_tick (T.broker, T.now);
    s_hello_cookie (&c[1], hello[1], len[1], cookie);
    assert_int_equal (sc_broker_jobs (T.broker), 2);
    s_work ();
    s_auth (&c[1]);
    s_work ();
    s_expect_welcome (&c[1], "alice");
    T.now += 120000;
    sc_broker_tick (T.broker, T.now);
    s_hello_cookie (&c[2], hello[2], len[2], other);
    s_expect_cookie (&c[2], other);
    for (int i = 0; i < 3; i++) {
        free (hello[i]);
        s_client_fini (&c[i]);
    }
}

/* A wrong signature found by the job: ERROR AUTH, nothing kept. */
static void
test_wrong_key_through_jobs (void **state)
{
    (void) state;
    client_t mallory;
    s_client_init (&mallory, 1, "alice", "bob");    /* alice's key, bob's name */
    s_hello (&mallory);
    s_work ();
    s_auth (&mallory);
    s_work ();
    s_expect_plain_error (&mallory, SC_ERR_AUTH);
    assert_int_equal (sc_broker_sessions (T.broker), 0);
    assert_int_equal (sc_broker_handshakes (T.broker), 0);
    s_client_fini (&mallory);
}

/* An offload function that refuses a job: the core runs it at once. */
static void
test_refused_job_runs_inline (void **state)
{
    (void) state;
    T.refuse = true;
    client_t alice;
    s_client_init (&alice, 1, "alice", "alice");
    s_hello (&alice);
    assert_int_equal (T.sent[1], 1);
    s_auth (&alice);
    s_expect_welcome (&alice, "alice");
    assert_int_equal (sc_broker_jobs (T.broker), 0);
    s_client_fini (&alice);
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown (test_login_through_jobs, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_jobs_back_in_any_order, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_job_of_timed_out_login, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_message_while_job_out, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_hello_flood_one_connection, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_job_counts_until_back, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_logins_per_source, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_cookie_under_load, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_failed_logins_summary, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_failed_logins_per_source, s_setup, s_teardown),
        cmocka_unit_test (test_source_names),
        cmocka_unit_test_setup_teardown (test_wrong_key_through_jobs, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_refused_job_runs_inline, s_setup, s_teardown),
    };
    return cmocka_run_group_tests (tests, s_group_setup, s_group_teardown);
}
