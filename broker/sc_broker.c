/*  sc_broker: the broker's protocol core (docs/PROTOCOL.md sections 4-6).

    One table of sessions keyed by routing id, one index of logged-in
    sessions by user name. A session is linked to at most one other
    session (the request it made or got, or its chat); ending a session
    or a chat unlinks both sides and tells the other one. Sends that fail
    mark the target dead; dead sessions are purged after each event, so
    no handler frees a session another handler still holds. The two
    costly steps of a login are jobs that may run on other threads
    (sc_broker_set_offload): a job carries copies of what it reads and
    finds its session again by key and number when it comes back, so the
    tables are only ever touched here.

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at https://mozilla.org/MPL/2.0/.
*/
#include <arpa/inet.h>
#include <czmq.h>
#include <string.h>

#include "sc_broker.h"
#include "sc_cluster.h"
#include "sc_handshake.h"
#include "sc_invite.h"
#include "sc_log.h"
#include "sc_wire.h"

typedef enum { S_HANDSHAKE, S_ONLINE } s_phase_t;
typedef enum { C_IDLE, C_ASKING, C_ASKED, C_CHAT } s_chat_t;

typedef struct _s_session_t s_session_t;
typedef struct _s_identity_t s_identity_t;

/* The other side of a chat or request, logged in on another node of the
   cluster (sc_cluster): its name, node and session there. */
typedef struct {
    char name[SC_NAME_MAX + 1];
    char node[SC_NAME_MAX + 1];
    uint64_t sid;               /* 0 until its node answered              */
    uint8_t pub[SC_PUB_LEN];    /* the key it logged in with (RTT's)      */
} s_remote_t;

struct _s_session_t {
    char *key;                  /* routing id in hex: the table key       */
    uint8_t *rid;
    size_t rid_len;
    s_phase_t phase;
    sc_handshake_t *hs;         /* during the handshake only              */
    sc_channel_t *ch;           /* once logged in                         */
    char name[SC_NAME_MAX + 1];
    uint8_t pub[SC_PUB_LEN];    /* the key it logged in with              */
    char missed[SC_NAME_MAX + 1];   /* the last NOTIFY MISSED it got in
                                   this chat or request named this user  */
    s_chat_t chat;
    s_session_t *peer;          /* the other side of chat/request         */
    s_remote_t *remote;         /* ...or that side on another node        */
    char *source;               /* its source, while in the handshake     */
    char *addr;                 /* its peer address, for the log          */
    s_identity_t *id;           /* the key and cert its handshake borrows */
    int64_t started;
    int64_t last_seen;
    double tokens;              /* rate limit for control requests        */
    int64_t tokens_at;
    bool busy;                  /* a job of its login is out              */
    uint64_t gen;               /* sessions are numbered: jobs find theirs */
    bool dead;                  /* to be purged: its client is gone       */
    const char *why;            /* ...and why, for the log                */
    uint32_t notify;            /* ...and the NOTIFY reason for its peer  */
};

/* The broker's key and certificate. A login answers HELLO with the
   identity current then, and its job keeps it until it comes back, so
   a new identity (sc_broker_set_identity) never changes a login under
   way; the last holder frees it. Only the core's thread counts. */
struct _s_identity_t {
    const sc_key_t *key;
    const uint8_t *cert;
    size_t cert_len;
    sc_key_t *own_key;          /* set_identity's: freed with the last... */
    uint8_t *own_cert;          /* ...holder (sc_broker_new's: borrowed)  */
    size_t holders;             /* the broker (while current), the jobs
                                   and the sessions whose handshake uses it */
};

static s_identity_t *
s_identity_new (const sc_key_t *key, const uint8_t *cert, size_t cert_len)
{
    s_identity_t *self = calloc (1, sizeof *self);
    if (self) {
        self->key = key;
        self->cert = cert;
        self->cert_len = cert_len;
        self->holders = 1;
    }
    return self;
}

static s_identity_t *
s_identity_hold (s_identity_t *self)
{
    if (self)
        self->holders++;
    return self;
}

static void
s_identity_drop (s_identity_t **self_p)
{
    s_identity_t *self = *self_p;
    if (self && --self->holders == 0) {
        sc_key_destroy (&self->own_key);
        free (self->own_cert);
        free (self);
    }
    *self_p = NULL;
}

struct _sc_broker_t {
    s_identity_t *id;           /* the current key and certificate        */
    sc_registry_t *registry;
    sc_broker_opts_t opts;
    sc_broker_send_fn *send;
    sc_broker_forward_fn *forward;  /* sends the frame being handled      */
    void *arg;
    zhashx_t *sessions;         /* hex rid -> s_session_t (owner)         */
    zhashx_t *by_name;          /* name -> s_session_t (logged in)        */
    zlist_t *dead;              /* s_session_t to purge                   */
    size_t handshakes;
    int64_t now;
    sc_broker_offload_fn *offload;  /* where jobs go (NULL: run inline)   */
    void *offload_arg;
    size_t jobs;                /* handed out, not back yet               */
    size_t orphans;             /* ...of them, whose session has gone     */
    uint64_t gen;               /* the last session's number              */
    sc_broker_source_fn *source;    /* the current message's address      */
    sc_cluster_t *cluster;      /* the other nodes, or NULL               */
    uint64_t sid0_refused;      /* messages with a session 0 their kind   */
    int64_t sid0_said;          /* ...may not carry, since logged then    */
    zhashx_t *by_source;        /* address -> logins in progress (size_t) */
    uint8_t cookie_key[2][SC_KEY_LEN];  /* current and previous secret    */
    int64_t cookie_since;       /* when the current one was drawn         */
    zhashx_t *failures;         /* address -> failed logins (size_t)...   */
    size_t failed;              /* ...and their total...                  */
    int64_t failed_since;       /* ...since the last summary              */
    sc_broker_stats_t stats;    /* the counters; gauges filled when read  */
    zhashx_t *enrol_sources;    /* address -> enrolments this minute      */
    zhashx_t *enrol_names;      /* name -> failed enrolments this minute  */
    /* A name with no key is checked against this key, made at start and
       its private half dropped at once, so that an unknown name and a
       wrong signature cost the same and get the same answer (and nobody
       holds a key that would pass the check). An unknown name fails
       whatever the check says. */
    uint8_t dummy_pub[SC_PUB_LEN];
};

#define S_COOKIE_ROTATE_MS   120000     /* a cookie lives two of these    */
#define S_SUMMARY_MS          60000     /* failed logins: one line a minute */
#define S_SOURCE_UNKNOWN     "unknown"
#define S_SOURCE_OTHER       "(other)"  /* past S_SOURCES_MAX: no name or address */
#define S_SOURCES_MAX         4096      /* sources with failures counted  */
#define S_SID0_SAY_MS         10000     /* refused session 0s: a line at most */


void
sc_broker_opts_default (sc_broker_opts_t *opts)
{
    opts->heartbeat_ms = 5000;
    opts->handshake_ms = 10000;
    opts->max_handshakes = 4096;
    opts->max_per_source = 1024;
    opts->cookie_at = 256;
    opts->max_failed_per_source = 128;
    opts->rate_burst = 20;
    opts->rate_per_s = 10;
    opts->seq_limit = 0;
    opts->registration_open = false;
    opts->enrol_per_source = 10;
    opts->enrol_failed_per_name = 5;
}

static void
s_session_free (s_session_t **self_p)
{
    if (self_p && *self_p) {
        s_session_t *self = *self_p;
        sc_handshake_destroy (&self->hs);
        s_identity_drop (&self->id);
        sc_channel_destroy (&self->ch);
        free (self->remote);
        free (self->source);
        free (self->addr);
        free (self->key);
        free (self->rid);
        free (self);
        *self_p = NULL;
    }
}

static void
s_session_destructor (void **item)
{
    s_session_free ((s_session_t **) item);
}

/* Counts per source address: a malloc'd size_t each. */
static void
s_count_destructor (void **item)
{
    free (*item);
    *item = NULL;
}

static size_t
s_count (zhashx_t *counts, const char *key)
{
    size_t *n = (size_t *) zhashx_lookup (counts, key);
    return n ? *n : 0;
}

/* Add delta (+1 or -1) to key's count; a count that reaches 0 goes. */
static void
s_count_add (zhashx_t *counts, const char *key, int delta)
{
    size_t *n = (size_t *) zhashx_lookup (counts, key);
    if (!n && delta > 0) {
        n = calloc (1, sizeof *n);
        if (!n || zhashx_insert (counts, key, n)) {
            free (n);
            return;
        }
    }
    if (!n)
        return;
    if (delta > 0)
        (*n)++;
    else
    if (*n > 0)
        (*n)--;
    if (*n == 0)
        zhashx_delete (counts, key);
}

sc_broker_t *
sc_broker_new (const sc_key_t *key, const uint8_t *cert, size_t cert_len,
               sc_registry_t *registry, const sc_broker_opts_t *opts,
               sc_broker_send_fn *send, void *arg)
{
    sc_broker_t *self = calloc (1, sizeof *self);
    if (!self)
        return NULL;
    self->id = s_identity_new (key, cert, cert_len);
    self->registry = registry;
    self->send = send;
    self->arg = arg;
    if (opts)
        self->opts = *opts;
    else
        sc_broker_opts_default (&self->opts);
    self->sessions = zhashx_new ();
    self->by_name = zhashx_new ();
    self->dead = zlist_new ();
    self->by_source = zhashx_new ();
    self->failures = zhashx_new ();
    self->enrol_sources = zhashx_new ();
    self->enrol_names = zhashx_new ();
    sc_key_t *dummy = sc_key_generate ();
    int dummy_rc = dummy ? sc_key_public_raw (dummy, self->dummy_pub) : -1;
    sc_key_destroy (&dummy);
    if (!self->id || !self->sessions || !self->by_name || !self->dead || !self->by_source
        || !self->failures || !self->enrol_sources || !self->enrol_names || dummy_rc || sc_random (self->cookie_key[0], SC_KEY_LEN)
        || sc_random (self->cookie_key[1], SC_KEY_LEN)) {
        sc_broker_destroy (&self);
        return NULL;
    }
    zhashx_set_destructor (self->sessions, s_session_destructor);
    zhashx_set_destructor (self->by_source, s_count_destructor);
    zhashx_set_destructor (self->failures, s_count_destructor);
    zhashx_set_destructor (self->enrol_sources, s_count_destructor);
    zhashx_set_destructor (self->enrol_names, s_count_destructor);
    return self;
}

void
sc_broker_destroy (sc_broker_t **self_p)
{
    if (self_p && *self_p) {
        sc_broker_t *self = *self_p;
        zhashx_destroy (&self->by_name);
        zhashx_destroy (&self->sessions);
        zlist_destroy (&self->dead);
        zhashx_destroy (&self->by_source);
        zhashx_destroy (&self->failures);
        zhashx_destroy (&self->enrol_sources);
        zhashx_destroy (&self->enrol_names);
        sc_wipe (self->cookie_key, sizeof self->cookie_key);
        s_identity_drop (&self->id);
        free (self);
        *self_p = NULL;
    }
}

const char *
sc_broker_fail_name (sc_broker_fail_t reason)
{
    static const char *names[SC_BROKER_FAIL_COUNT] = {
        [SC_BROKER_FAIL_AUTH] = "auth", [SC_BROKER_FAIL_TIMEOUT] = "timeout",
        [SC_BROKER_FAIL_PROTOCOL] = "protocol", [SC_BROKER_FAIL_SUITE] = "suite",
        [SC_BROKER_FAIL_RATE] = "rate", [SC_BROKER_FAIL_INTERNAL] = "internal"
    };
    return (size_t) reason < SC_BROKER_FAIL_COUNT ? names[reason] : "?";
}

void
sc_broker_stats (const sc_broker_t *self, sc_broker_stats_t *stats)
{
    *stats = self->stats;
    stats->sessions = zhashx_size (self->by_name);
    stats->handshakes = self->handshakes;
    if (self->cluster) {
        stats->clustered = true;
        stats->cluster_connected = sc_cluster_connected (self->cluster);
        stats->cluster_nodes = sc_cluster_nodes (self->cluster);
        stats->cluster_users = sc_cluster_remote_users (self->cluster);
        stats->cluster_reconnects = sc_cluster_reconnects (self->cluster);
        stats->cluster_registered = sc_registry_cluster_size (self->registry);
    }
}

size_t
sc_broker_sessions (const sc_broker_t *self)
{
    return zhashx_size (self->by_name);
}

size_t
sc_broker_handshakes (const sc_broker_t *self)
{
    return self->handshakes;
}

size_t
sc_broker_logins (const sc_broker_t *self)
{
    return self->handshakes + self->orphans;
}

/* The source a login is counted against, from the address libzmq
   gives (getnameinfo's numeric form) into buf: an IPv4 address as it is
   (an IPv4-mapped IPv6 one as IPv4), an IPv6 address as its /64, since
   one host commonly holds a whole /64. */
const char *
sc_broker_source_name (const char *addr, char *buf, size_t size)
{
    struct in6_addr a6;
    if (!addr || inet_pton (AF_INET6, addr, &a6) != 1)
        return addr;
    if (IN6_IS_ADDR_V4MAPPED (&a6))
        return inet_ntop (AF_INET, &a6.s6_addr[12], buf, (socklen_t) size) ? buf : addr;
    memset (&a6.s6_addr[8], 0, 8);
    char net[INET6_ADDRSTRLEN];
    if (!inet_ntop (AF_INET6, &a6, net, sizeof net))
        return addr;
    snprintf (buf, size, "%s/64", net);
    return buf;
}

void
sc_broker_set_source (sc_broker_t *self, sc_broker_source_fn *source)
{
    self->source = source;
}

/* ---- Sending ---------------------------------------------------------- */

static void
s_mark_dead (sc_broker_t *self, s_session_t *s, const char *why, uint32_t notify)
{
    if (!s->dead) {
        s->dead = true;
        s->why = why;
        s->notify = notify;
        if (zlist_append (self->dead, s))
            sc_log (SC_LOG_ERROR, "out of memory marking a session dead");
    }
}

static int
s_send_frame (sc_broker_t *self, const uint8_t *rid, size_t rid_len,
              uint8_t *frame, size_t len)
{
    return self->send (self->arg, rid, rid_len, frame, len);
}

/* A plaintext envelope (handshake and its errors). */
static int
s_send_plain (sc_broker_t *self, const uint8_t *rid, size_t rid_len,
              const sc_msg_t *msg)
{
    uint8_t *frame = NULL;
    size_t len = 0;
    if (sc_wire_plain (msg, &frame, &len))
        return -1;
    return s_send_frame (self, rid, rid_len, frame, len);
}

static void
s_error_plain (sc_broker_t *self, const uint8_t *rid, size_t rid_len,
               uint32_t code, const char *detail)
{
    sc_msg_t msg;
    sc_msg_init (&msg, SC_OP_ERROR);
    msg.code = code;
    if (sc_msg_set_text (&msg, detail) == 0)
        (void) s_send_plain (self, rid, rid_len, &msg);
    sc_msg_reset (&msg);
}

/* A sealed envelope to a logged-in session; a failure marks it dead. */
static int
s_send (sc_broker_t *self, s_session_t *s, const sc_msg_t *msg)
{
    if (s->dead || !s->ch)
        return -1;
    uint8_t *frame = NULL;
    size_t len = 0;
    int rc = sc_wire_seal (s->ch, msg, &frame, &len);
    if (rc == SC_CHANNEL_ELIMIT)
        s_mark_dead (self, s, "session counter exhausted", SC_NOTIFY_LOST);
    if (rc)
        return -1;
    rc = s_send_frame (self, s->rid, s->rid_len, frame, len);
    if (rc == SC_BROKER_GONE)
        s_mark_dead (self, s, "connection lost", SC_NOTIFY_LOST);
    else
    if (rc) {
        /* its seq is spent: the client would see a gap, so the session
           is over now rather than at its next envelope */
        sc_log (SC_LOG_WARNING, "queue to %s full: %s dropped", s->name,
                sc_opcode_name (msg->opcode));
        s_mark_dead (self, s, "queue full: an envelope was dropped", SC_NOTIFY_LOST);
    }
    return rc;
}

static void
s_error (sc_broker_t *self, s_session_t *s, uint32_t code, const char *detail)
{
    sc_msg_t msg;
    sc_msg_init (&msg, SC_OP_ERROR);
    msg.code = code;
    if (sc_msg_set_text (&msg, detail) == 0)
        (void) s_send (self, s, &msg);
    sc_msg_reset (&msg);
}

/* A message whose body is just [name] or [name, code]. */
static int
s_send_named (sc_broker_t *self, s_session_t *s, uint8_t opcode,
              const char *name, uint32_t code)
{
    sc_msg_t msg;
    sc_msg_init (&msg, opcode);
    msg.code = code;
    int rc = sc_msg_set_name (&msg, name);
    if (rc == 0)
        rc = s_send (self, s, &msg);
    sc_msg_reset (&msg);
    return rc;
}

/* ---- Session links ------------------------------------------------------ */

static void
s_unlink (sc_broker_t *self, s_session_t *s)
{
    if (s->chat == C_CHAT && self->stats.chats > 0)
        self->stats.chats--;
    free (s->remote);
    s->remote = NULL;
    if (s->peer) {
        s->peer->peer = NULL;
        s->peer->chat = C_IDLE;
        s->peer->missed[0] = 0;
    }
    s->peer = NULL;
    s->chat = C_IDLE;
    s->missed[0] = 0;
}

/* End s's chat or request; the other side gets NOTIFY [s, reason]. */
static void s_remote_notify (sc_broker_t *self, s_session_t *s, uint32_t reason);

static void
s_end_link (sc_broker_t *self, s_session_t *s, uint32_t reason)
{
    if (s->remote) {
        s_remote_notify (self, s, reason);
        s_unlink (self, s);
        return;
    }
    s_session_t *other = s->peer;
    if (!other)
        return;
    s_unlink (self, s);
    (void) s_send_named (self, other, SC_OP_NOTIFY, s->name, reason);
}

/* A session leaves the handshake (online, or gone): one login fewer in
   progress, for the broker and for its source. */
static void
s_handshake_left (sc_broker_t *self, s_session_t *s)
{
    if (self->handshakes > 0)
        self->handshakes--;
    if (s->source)
        s_count_add (self->by_source, s->source, -1);
    free (s->source);
    s->source = NULL;
}

/* The metrics' reason for a login that ended with ERROR code. */
static sc_broker_fail_t
s_fail_reason (uint32_t code)
{
    switch (code) {
        case SC_ERR_AUTH:       return SC_BROKER_FAIL_AUTH;
        case SC_ERR_TIMEOUT:    return SC_BROKER_FAIL_TIMEOUT;
        case SC_ERR_SUITE:      return SC_BROKER_FAIL_SUITE;
        case SC_ERR_RATE:       return SC_BROKER_FAIL_RATE;
        case SC_ERR_INTERNAL:   return SC_BROKER_FAIL_INTERNAL;
        default:                return SC_BROKER_FAIL_PROTOCOL;
    }
}

/* A failed login (answered with ERROR code): told at debug level,
   counted for the summary and the metrics. */
static void
s_login_failed (sc_broker_t *self, const s_session_t *s, const char *name, uint32_t code,
                const char *why)
{
    /* the broker's own failures are for the operator to see */
    sc_log (code == SC_ERR_INTERNAL ? SC_LOG_WARNING : SC_LOG_DEBUG,
            "login failed%s%s from %s: %s", *name ? " for " : "", name,
            s->addr ? s->addr : S_SOURCE_UNKNOWN, why);
    self->stats.logins_failed[s_fail_reason (code)]++;
    self->failed++;
    if (code == SC_ERR_INTERNAL)
        return;             /* the broker's own failure: not the source's */
    const char *source = s->source ? s->source : S_SOURCE_UNKNOWN;
    if (zhashx_size (self->failures) >= S_SOURCES_MAX && !zhashx_lookup (self->failures, source))
        source = S_SOURCE_OTHER;        /* the table stays bounded */
    s_count_add (self->failures, source, 1);
}

static void
s_remove (sc_broker_t *self, s_session_t *s, uint32_t reason)
{
    s_end_link (self, s, reason);
    if (s->phase == S_HANDSHAKE)
        s_handshake_left (self, s);
    if (s->busy)
        self->orphans++;    /* its job still counts until it is back */
    if (s->phase == S_ONLINE && zhashx_lookup (self->by_name, s->name) == s) {
        zhashx_delete (self->by_name, s->name);
        if (self->cluster)
            sc_cluster_offline (self->cluster, s->name, s->gen);
    }
    zlist_remove (self->dead, s);
    zhashx_delete (self->sessions, s->key);     /* frees s */
}

static void
s_purge (sc_broker_t *self)
{
    s_session_t *s;
    while ((s = (s_session_t *) zlist_first (self->dead))) {
        if (s->phase == S_ONLINE)
            sc_log (SC_LOG_INFO, "logout %s from %s (%s)", s->name,
                    s->addr ? s->addr : S_SOURCE_UNKNOWN, s->why);
        s_remove (self, s, s->notify);
    }
}

/* ---- Handshake ------------------------------------------------------------ */

/* A routing id (1..255 bytes) in hex, the session table's key: into
   hex, which holds 2 * len + 1 bytes. Every envelope is looked up this
   way, so no snprintf and no malloc. */
static void
s_hex_into (const uint8_t *rid, size_t len, char *hex)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < len; i++) {
        hex[2 * i] = digits[rid[i] >> 4];
        hex[2 * i + 1] = digits[rid[i] & 15];
    }
    hex[2 * len] = 0;
}

static char *
s_hex (const uint8_t *rid, size_t len)
{
    char *hex = malloc (2 * len + 1);
    if (hex)
        s_hex_into (rid, len, hex);
    return hex;
}

/* The answer to a handshake envelope whose seq is not 0. */
#define S_HANDSHAKE_SEQ "seq must be 0 during the login"
/* The answer to a login the broker itself failed (memory, an OpenSSL
   call): ERROR INTERNAL, never AUTH, which would tell the user that its
   key or password is wrong. */
#define S_LOGIN_INTERNAL "internal error, retry later"

static uint32_t
s_codec_error_code (int rc)
{
    return rc == SC_CODEC_EVERSION ? SC_ERR_VERSION : SC_ERR_MALFORMED;
}

/* The ERROR code and detail for a handshake step that failed with rc
   (sc_hs_err_t): what the client sent is refused with AUTH (or SUITE),
   what the broker could not compute is INTERNAL. */
static uint32_t
s_hs_error (int rc, const char **detail)
{
    switch (rc) {
        case SC_HS_ESUITE:
            *detail = sc_hs_strerror (rc);
            return SC_ERR_SUITE;
        case SC_HS_EKEY:
        case SC_HS_EBOX:
            *detail = sc_hs_strerror (rc);
            return SC_ERR_AUTH;
        case SC_HS_ESIG:
        case SC_HS_EMAC:
        case SC_HS_ECERT:
            *detail = "authentication failed";
            return SC_ERR_AUTH;
        default:                /* EINTERNAL, ESTATE: ours, not the user's */
            *detail = S_LOGIN_INTERNAL;
            return SC_ERR_INTERNAL;
    }
}

/* ---- Jobs: the costly steps of a login ---------------------------------- */

typedef enum { J_HELLO, J_VERIFY } s_job_kind_t;

/* Everything a step reads is a copy or immutable (the broker's key and
   certificate), and the handshake travels with the job: a job can run on
   any thread while the session table stays this thread's alone. */
struct _sc_broker_job_t {
    s_job_kind_t kind;
    char key[2 * 255 + 1];          /* the session's table key...          */
    uint64_t gen;                   /* ...and generation, to find it again */
    sc_handshake_t *hs;             /* the job's own while it is out       */
    s_identity_t *id;               /* J_HELLO: the key and cert it uses   */
    int rc;                         /* sc_hs_err_t of the step             */
    /* J_HELLO: HELLO in, AUTH_BROKER out */
    uint8_t suite;
    uint8_t nonce_c[SC_RANDOM_LEN], eph_c[SC_PUB_LEN];
    uint8_t nonce_b[SC_RANDOM_LEN], eph_b[SC_PUB_LEN];
    uint8_t sig[SC_SIG_LEN], mac[SC_HASH_LEN];
    /* J_VERIFY: the claimed name and its registered key in, keys out */
    char name[SC_HS_NAME_MAX + 1];
    uint8_t user_pub[SC_PUB_LEN];
    bool unknown;                   /* not registered: user_pub is a dummy */
    bool enrol;                     /* an enrolment: user_pub is the new key */
    uint8_t code[SC_HS_CODE_LEN];   /* ...and its code (all zero: none)    */
    /* an enrolment on a node of a cluster: the job checks and writes the
       buckets (blocking calls, on a worker) */
    sc_cluster_t *cluster;
    const char *dir;                /* the users folder (the registry's)   */
    bool invite_kv;                 /* the code is the bucket's to check   */
    bool taken_here;                /* ...and the name is in the registry  */
    uint64_t user_rev;              /* secchat-users' revision of the name */
    uint32_t enrol_err;             /* refused by the job: the ERROR...    */
    const char *enrol_why;          /* ...and its text                     */
    bool keys_ok;
    sc_session_keys_t keys;
};

static void
s_job_free (sc_broker_job_t **job_p)
{
    if (*job_p) {
        sc_handshake_destroy (&(*job_p)->hs);
        s_identity_drop (&(*job_p)->id);
        sc_wipe (*job_p, sizeof **job_p);
        free (*job_p);
        *job_p = NULL;
    }
}

static sc_broker_job_t *
s_job_new (s_session_t *s, s_job_kind_t kind)
{
    sc_broker_job_t *job = calloc (1, sizeof *job);
    if (job) {
        job->kind = kind;
        strcpy (job->key, s->key);
        job->gen = s->gen;
        job->rc = SC_HS_EINTERNAL;
    }
    return job;
}

void
sc_broker_set_offload (sc_broker_t *self, sc_broker_offload_fn *offload, void *arg)
{
    self->offload = offload;
    self->offload_arg = arg;
}

size_t
sc_broker_jobs (const sc_broker_t *self)
{
    return self->jobs;
}

/* ---- Enrolment on a node of a cluster: the buckets (section 12) ---------- */

#define S_KV_DOWN "the cluster's registry cannot be reached, retry later"

static bool s_is_zero (const uint8_t *data, size_t len);

static uint32_t
s_kv_refuse (sc_broker_job_t *job, uint32_t code, const char *why)
{
    job->enrol_err = code;
    job->enrol_why = why;
    return code;
}

/* On a worker: the bucket's invitation for the code (when the folder had
   none) and the name free in secchat-users. 0, or the ERROR (set in
   the job). */
static uint32_t
s_enrol_bucket_check (sc_broker_job_t *job)
{
    char why[512];
    size_t len = 0;
    if (job->invite_kv) {
        char line[SC_INVITE_LINE_MAX];
        int rc = sc_cluster_kv_get (job->cluster, SC_CLUSTER_INVITES, job->name,
                                    (uint8_t *) line, sizeof line, &len, NULL, why, sizeof why);
        if (rc == SC_CLUSTER_KV_EIO) {
            sc_log (SC_LOG_ERROR, "enrolment of %s failed: %s", job->name, why);
            return s_kv_refuse (job, SC_ERR_INTERNAL, S_KV_DOWN);
        }
        rc = sc_invite_check_line (rc == SC_CLUSTER_KV_OK ? line : NULL, len, job->code,
                                   (int64_t) time (NULL));
        if (rc == SC_INVITE_EXPIRED)
            return s_kv_refuse (job, SC_ERR_ENROL_CODE, "this code has expired");
        if (rc != SC_INVITE_OK)
            return s_kv_refuse (job, SC_ERR_ENROL_CODE, "invalid or already used code");
    }
    if (job->taken_here)
        return s_kv_refuse (job, SC_ERR_ENROL_TAKEN, "this name is already registered");
    uint8_t pub[256];
    int rc = sc_cluster_kv_get (job->cluster, SC_CLUSTER_USERS, job->name, pub, sizeof pub,
                                &len, NULL, why, sizeof why);
    if (rc == SC_CLUSTER_KV_EIO) {
        sc_log (SC_LOG_ERROR, "enrolment of %s failed: %s", job->name, why);
        return s_kv_refuse (job, SC_ERR_INTERNAL, S_KV_DOWN);
    }
    if (rc == SC_CLUSTER_KV_OK)
        return s_kv_refuse (job, SC_ERR_ENROL_TAKEN, "this name is already registered");
    return 0;
}

/* A claimed folder invitation back to path, unless a new one was made
   there meanwhile (that one stays, ours goes). 0 or -1. */
static int
s_unclaim (const char *claimed, const char *path)
{
    if (link (claimed, path) == 0 || errno == EEXIST)
        return unlink (claimed);
    return rename (claimed, path);      /* no hard links on this folder */
}

/* On a worker, the key proved itself: burn the code (the bucket's entry
   updated to "used" only if it is still the one checked: a code used
   at the same time on another node, or revoked meanwhile, fails here;
   the folder's invitation renamed away, which only one can, then
   checked), then register the name in secchat-users (only if absent).
   The code comes back only when this job burnt it and the name is
   surely not registered: the bucket's entry by an update of the
   revision our "used" got (so never over a change made since), the
   folder's file renamed back. */
static void
s_enrol_bucket_commit (sc_broker_job_t *job)
{
    char why[512], line[SC_INVITE_LINE_MAX], claimed[4096], path[4096];
    size_t len = 0;
    uint64_t revision = 0, rev_used = 0;
    bool invited = !s_is_zero (job->code, SC_HS_CODE_LEN);
    bool local = invited && !job->invite_kv, took = false, burnt = false;
    const char *bad_code = "invalid or already used code";
    int rc = SC_CLUSTER_KV_OK;
    if (invited && job->invite_kv) {
        rc = sc_cluster_kv_get (job->cluster, SC_CLUSTER_INVITES, job->name, (uint8_t *) line,
                                sizeof line, &len, &revision, why, sizeof why);
        int check = rc == SC_CLUSTER_KV_OK
                  ? sc_invite_check_line (line, len, job->code, (int64_t) time (NULL))
                  : SC_INVITE_OK;
        if (check == SC_INVITE_EXPIRED)
            bad_code = "this code has expired";
        if (check != SC_INVITE_OK)
            rc = SC_CLUSTER_KV_NONE;
        if (rc == SC_CLUSTER_KV_OK) {
            rc = sc_cluster_kv_update (job->cluster, SC_CLUSTER_INVITES, job->name,
                                       (const uint8_t *) SC_INVITE_USED,
                                       strlen (SC_INVITE_USED), revision, &rev_used,
                                       why, sizeof why);
            burnt = rc == SC_CLUSTER_KV_OK;
        }
    }
    if (local) {
        snprintf (path, sizeof path, "%s/%s.invite", job->dir, job->name);
        snprintf (claimed, sizeof claimed, "%s/.%s.invite.%llu", job->dir, job->name,
                  (unsigned long long) job->gen);
        int check = SC_INVITE_NONE;
        if (rename (path, claimed) == 0) {
            took = true;
            check = sc_invite_check_file (claimed, job->code, (int64_t) time (NULL));
        }
        else
        if (errno != ENOENT)
            check = SC_INVITE_EIO;
        if (check == SC_INVITE_EXPIRED)
            bad_code = "this code has expired";
        if (check != SC_INVITE_OK && took && s_unclaim (claimed, path))
            sc_log (SC_LOG_WARNING, "cannot put back the invitation of %s: %s", job->name,
                    strerror (errno));
        if (check == SC_INVITE_EIO) {
            sc_log (SC_LOG_ERROR, "enrolment of %s failed: cannot read its invitation in %s",
                    job->name, job->dir);
            s_kv_refuse (job, SC_ERR_INTERNAL, S_LOGIN_INTERNAL);
            return;
        }
        rc = check == SC_INVITE_OK ? SC_CLUSTER_KV_OK : SC_CLUSTER_KV_NONE;
    }
    if (rc == SC_CLUSTER_KV_NONE) {
        s_kv_refuse (job, SC_ERR_ENROL_CODE, bad_code);
        return;
    }
    if (rc != SC_CLUSTER_KV_OK) {
        /* the invitation unread, or its update's outcome unknown: the
           code stays as it is (burnt, if the update was applied) */
        sc_log (SC_LOG_ERROR, "enrolment of %s failed: %s", job->name, why);
        s_kv_refuse (job, SC_ERR_INTERNAL, S_KV_DOWN);
        return;
    }
    rc = sc_cluster_kv_create (job->cluster, SC_CLUSTER_USERS, job->name, job->user_pub,
                               SC_PUB_LEN, &job->user_rev, why, sizeof why);
    if (rc == SC_CLUSTER_KV_OK) {
        if (local && unlink (claimed))
            sc_log (SC_LOG_WARNING, "enrolled %s, but its invitation could not be removed: %s",
                    job->name, strerror (errno));
        return;
    }
    /* not registered. The code is good again only when the name is
       surely absent from secchat-users (NONE), or, for a folder's file,
       taken by another key; never when the create's outcome is unknown
       (EIO): it stays burnt. The bucket's entry is put back only by an
       update of the revision our "used" got: a change made since (the
       code used elsewhere, re-issued, revoked) stays. */
    if (took) {
        if (rc == SC_CLUSTER_KV_EIO ? unlink (claimed) : s_unclaim (claimed, path))
            sc_log (SC_LOG_WARNING, "cannot put back the invitation of %s: %s", job->name,
                    strerror (errno));
    }
    if (burnt && rc == SC_CLUSTER_KV_NONE) {
        char ignored[256];
        if (sc_cluster_kv_update (job->cluster, SC_CLUSTER_INVITES, job->name,
                                  (const uint8_t *) line, len, rev_used, NULL,
                                  ignored, sizeof ignored))
            sc_log (SC_LOG_WARNING, "cannot put back the invitation of %s in %s: %s",
                    job->name, SC_CLUSTER_INVITES, ignored);
    }
    if (rc == SC_CLUSTER_KV_EXISTS)
        s_kv_refuse (job, SC_ERR_ENROL_TAKEN, "this name is already registered");
    else {
        sc_log (SC_LOG_ERROR, "enrolment of %s failed: %s", job->name, why);
        s_kv_refuse (job, SC_ERR_INTERNAL, S_KV_DOWN);
    }
}

void
sc_broker_job_run (sc_broker_job_t *job)
{
    if (job->kind == J_HELLO) {
        job->rc = sc_handshake_broker_hello (job->hs, job->suite, job->nonce_c, job->eph_c,
                                             job->nonce_b, job->eph_b, job->sig, job->mac);
        return;
    }
    if (job->enrol && job->cluster && s_enrol_bucket_check (job))
        return;                         /* refused before the signature */
    sc_key_t *user = sc_key_from_raw (job->user_pub);
    job->rc = user ? sc_handshake_broker_verify (job->hs, user) : SC_HS_EINTERNAL;
    job->keys_ok = job->rc == SC_HS_OK && sc_handshake_keys (job->hs, &job->keys) == 0;
    sc_key_destroy (&user);
    sc_handshake_destroy (&job->hs);    /* the login's secrets go here */
    if (job->enrol && job->cluster && job->rc == SC_HS_OK && job->keys_ok)
        s_enrol_bucket_commit (job);
}

static void s_job_finish (sc_broker_t *self, sc_broker_job_t *job);

/* Hand the job out, or run it here and now. */
static void
s_job_start (sc_broker_t *self, s_session_t *s, sc_broker_job_t *job)
{
    s->busy = true;
    self->jobs++;
    if (self->offload && self->offload (self->offload_arg, job) == 0)
        return;
    sc_broker_job_run (job);
    s_job_finish (self, job);
}

/* A failed login: told in plaintext, and nothing kept. */
static void
s_login_refused (sc_broker_t *self, s_session_t *s, const char *name,
                 uint32_t code, const char *why)
{
    sc_handshake_destroy (&s->hs);
    s_login_failed (self, s, name, code, why);
    s_error_plain (self, s->rid, s->rid_len, code, why);
    s_remove (self, s, SC_NOTIFY_LOST);
}

/* The cookie for this connection and HELLO under one of the secrets:
   HMAC (secret, u8(len(rid)) || rid || u8(suite) || nonce || eph). */
static int
s_cookie (const uint8_t key[static SC_KEY_LEN], const uint8_t *rid, size_t rid_len,
          const sc_msg_t *hello, uint8_t out[static SC_COOKIE_LEN])
{
    uint8_t data[1 + 255 + 1 + SC_RANDOM_LEN + SC_PUB_LEN];
    size_t n = 0;
    data[n++] = (uint8_t) rid_len;
    memcpy (data + n, rid, rid_len);
    n += rid_len;
    data[n++] = hello->suite;
    memcpy (data + n, hello->nonce, SC_RANDOM_LEN);
    n += SC_RANDOM_LEN;
    memcpy (data + n, hello->eph, SC_PUB_LEN);
    n += SC_PUB_LEN;
    return sc_hmac (key, data, n, out);
}

/* A HELLO_COOKIE's cookie was made for this connection and this HELLO,
   under the current secret or the one before. */
static bool
s_cookie_valid (sc_broker_t *self, const uint8_t *rid, size_t rid_len, const sc_msg_t *hello)
{
    bool valid = false;
    for (int i = 0; i < 2 && !valid; i++) {
        uint8_t expected[SC_COOKIE_LEN];
        valid = s_cookie (self->cookie_key[i], rid, rid_len, hello, expected) == 0
             && sc_equal (expected, hello->cookie, SC_COOKIE_LEN);
        sc_wipe (expected, sizeof expected);
    }
    return valid;
}

/* Under load: no login without proof that the client reads what is sent
   to its connection. Nothing is kept. */
static void
s_send_cookie (sc_broker_t *self, const uint8_t *rid, size_t rid_len, const sc_msg_t *hello)
{
    sc_msg_t reply;
    sc_msg_init (&reply, SC_OP_COOKIE);
    if (s_cookie (self->cookie_key[0], rid, rid_len, hello, reply.cookie) == 0
        && s_send_plain (self, rid, rid_len, &reply) == 0)
        self->stats.cookies++;
    sc_msg_reset (&reply);
}

/* A HELLO the broker could not take on (memory): told so, nothing kept. */
static void
s_hello_internal (sc_broker_t *self, const uint8_t *rid, size_t rid_len, const char *addr)
{
    self->stats.logins_failed[SC_BROKER_FAIL_INTERNAL]++;
    sc_log (SC_LOG_WARNING, "login failed from %s: out of memory", addr);
    s_error_plain (self, rid, rid_len, SC_ERR_INTERNAL, S_LOGIN_INTERNAL);
}

/* A new login: checked against the load and the caps, then its first
   job. */
static void
s_on_hello (sc_broker_t *self, const uint8_t *rid, size_t rid_len,
            const sc_msg_t *hello)
{
    size_t logins = sc_broker_logins (self);
    if (logins >= self->opts.cookie_at
        && (hello->opcode != SC_OP_HELLO_COOKIE || !s_cookie_valid (self, rid, rid_len, hello))) {
        s_send_cookie (self, rid, rid_len, hello);
        return;
    }
    const char *addr = self->source ? self->source (self->arg) : NULL;
    if (!addr || !*addr)
        addr = S_SOURCE_UNKNOWN;
    char name_buf[INET6_ADDRSTRLEN + 8];
    const char *source = sc_broker_source_name (addr, name_buf, sizeof name_buf);
    if (logins >= self->opts.max_handshakes) {
        self->stats.logins_failed[SC_BROKER_FAIL_RATE]++;
        sc_log (SC_LOG_DEBUG, "login refused from %s: %zu logins in progress", addr, logins);
        s_error_plain (self, rid, rid_len, SC_ERR_RATE, "too many logins in progress, retry later");
        return;
    }
    if (s_count (self->failures, source) >= self->opts.max_failed_per_source) {
        self->stats.logins_failed[SC_BROKER_FAIL_RATE]++;
        sc_log (SC_LOG_DEBUG, "login refused from %s: too many failed logins from there",
                addr);
        s_error_plain (self, rid, rid_len, SC_ERR_RATE,
                       "too many failed logins from your address, retry later");
        return;
    }
    if (s_count (self->by_source, source) >= self->opts.max_per_source) {
        self->stats.logins_failed[SC_BROKER_FAIL_RATE]++;
        sc_log (SC_LOG_DEBUG, "login refused from %s: too many logins in progress from there",
                addr);
        s_error_plain (self, rid, rid_len, SC_ERR_RATE,
                       "too many logins in progress from your address, retry later");
        return;
    }
    s_session_t *s = calloc (1, sizeof *s);
    if (!s) {
        s_hello_internal (self, rid, rid_len, addr);
        return;
    }
    s->key = s_hex (rid, rid_len);
    s->rid = malloc (rid_len);
    s->source = strdup (source);
    s->addr = strdup (addr);
    s->gen = ++self->gen;
    sc_broker_job_t *job = s->key ? s_job_new (s, J_HELLO) : NULL;
    if (job) {
        job->id = s_identity_hold (self->id);
        job->hs = sc_handshake_new_broker (job->id->key, job->id->cert, job->id->cert_len);
    }
    if (!s->rid || !s->source || !s->addr || !job || !job->hs
        || zhashx_insert (self->sessions, s->key, s) != 0) {
        s_job_free (&job);
        s_session_free (&s);
        s_hello_internal (self, rid, rid_len, addr);
        return;
    }
    memcpy (s->rid, rid, rid_len);
    s->rid_len = rid_len;
    s->phase = S_HANDSHAKE;
    s->started = s->last_seen = self->now;
    self->handshakes++;
    s_count_add (self->by_source, s->source, 1);
    job->suite = hello->suite;
    memcpy (job->nonce_c, hello->nonce, SC_RANDOM_LEN);
    memcpy (job->eph_c, hello->eph, SC_PUB_LEN);
    s_job_start (self, s, job);
}

/* AUTH_BROKER, with what the HELLO job made. */
static void
s_hello_done (sc_broker_t *self, s_session_t *s, sc_broker_job_t *job)
{
    s->hs = job->hs;
    job->hs = NULL;
    s->id = s_identity_hold (job->id);      /* what s->hs borrows */
    int rc = job->rc;
    if (rc) {
        const char *why = NULL;
        uint32_t code = s_hs_error (rc, &why);
        s_login_failed (self, s, "", code, rc == SC_HS_EINTERNAL || rc == SC_HS_ESTATE
                                           ? sc_hs_strerror (rc) : why);
        s_error_plain (self, s->rid, s->rid_len, code, why);
        s_remove (self, s, SC_NOTIFY_LOST);
        return;
    }
    sc_msg_t reply;
    sc_msg_init (&reply, SC_OP_AUTH_BROKER);
    memcpy (reply.nonce, job->nonce_b, SC_RANDOM_LEN);
    memcpy (reply.eph, job->eph_b, SC_PUB_LEN);
    memcpy (reply.sig, job->sig, SC_SIG_LEN);
    memcpy (reply.mac, job->mac, SC_HASH_LEN);
    /* the certificate the job signed with, whatever is current now */
    if (sc_msg_set_data (&reply, job->id->cert, job->id->cert_len))
        s_login_refused (self, s, "", SC_ERR_INTERNAL, S_LOGIN_INTERNAL);
    else
    if (s_send_plain (self, s->rid, s->rid_len, &reply) == SC_BROKER_GONE)
        s_mark_dead (self, s, "connection lost", SC_NOTIFY_LOST);
    sc_msg_reset (&reply);
}

/* The same user logged in again: the old session goes. */
static void
s_replace (sc_broker_t *self, s_session_t *old)
{
    s_error (self, old, SC_ERR_REPLACED, "logged in again elsewhere");
    s_mark_dead (self, old, "replaced by a new login", SC_NOTIFY_REPLACED);
}

/* Open the box (cheap) and look the name up here; the signature check
   is a job. */
static void
s_on_auth_client (sc_broker_t *self, s_session_t *s, const sc_msg_t *msg)
{
    char name[SC_HS_NAME_MAX + 1] = "";
    uint8_t user_pub[SC_PUB_LEN];
    int rc = sc_handshake_broker_open (s->hs, msg->data, msg->data_len, name);
    if (rc) {
        const char *why = NULL;
        uint32_t code = s_hs_error (rc, &why);
        s_login_refused (self, s, name, code, why);
        return;
    }
    /* an unknown name is checked as a registered one would be, against
       a key that is not its, and fails the same way */
    bool unknown = sc_registry_raw (self->registry, name, user_pub) != 0;
    if (unknown)
        memcpy (user_pub, self->dummy_pub, SC_PUB_LEN);
    sc_broker_job_t *job = s_job_new (s, J_VERIFY);
    if (!job) {
        s_login_refused (self, s, name, SC_ERR_INTERNAL, S_LOGIN_INTERNAL);
        return;
    }
    job->hs = s->hs;
    s->hs = NULL;
    job->id = s_identity_hold (s->id);      /* what job->hs borrows */
    strcpy (job->name, name);
    memcpy (job->user_pub, user_pub, SC_PUB_LEN);
    job->unknown = unknown;
    s_job_start (self, s, job);
}

/* ---- Enrolment (docs/PROTOCOL.md section 5a) ------------------------------ */

/* A count table kept bounded: past S_SOURCES_MAX keys, one more key
   counts under "(other)", which no name or address can be. */
static const char *
s_bounded_key (zhashx_t *table, const char *key)
{
    if (zhashx_size (table) >= S_SOURCES_MAX && !zhashx_lookup (table, key))
        return S_SOURCE_OTHER;
    return key;
}

/* An enrolment refused: counted against its name, told, nothing kept. */
static void
s_enrol_refused (sc_broker_t *self, s_session_t *s, const char *name,
                 uint32_t code, const char *why)
{
    s_count_add (self->enrol_names, s_bounded_key (self->enrol_names, name), 1);
    sc_log (SC_LOG_INFO, "enrolment of %s refused from %s: %s", name,
            s->source ? s->source : S_SOURCE_UNKNOWN, why);
    s_login_refused (self, s, name, code, why);
}

static bool
s_is_zero (const uint8_t *data, size_t len)
{
    uint8_t any = 0;
    for (size_t i = 0; i < len; i++)
        any |= data[i];
    return any == 0;
}

/* May name be enrolled with code now? 0, or the ERROR code and *why. In
   a cluster a code the folder has no invitation for may be the bucket's:
   *in_bucket (may be NULL: then it is refused) says so, for the job. */
static uint32_t
s_enrol_check (sc_broker_t *self, const char *name,
               const uint8_t code[static SC_HS_CODE_LEN], bool *in_bucket, const char **why)
{
    if (in_bucket)
        *in_bucket = false;
    if (s_is_zero (code, SC_HS_CODE_LEN)) {
        if (!self->opts.registration_open) {
            *why = "registration is closed: enrolment needs an invitation code";
            return SC_ERR_ENROL_CLOSED;
        }
    }
    else {
        int rc = sc_invite_check (sc_registry_dir (self->registry), name, code,
                                  (int64_t) time (NULL));
        if (rc == SC_INVITE_EIO) {
            sc_log (SC_LOG_ERROR, "enrolment of %s failed: cannot read its invitation in %s",
                    name, sc_registry_dir (self->registry));
            *why = S_LOGIN_INTERNAL;
            return SC_ERR_INTERNAL;
        }
        if (rc == SC_INVITE_EXPIRED) {
            *why = "this code has expired";
            return SC_ERR_ENROL_CODE;
        }
        if (rc != SC_INVITE_OK && self->cluster && in_bucket) {
            /* the job checks the code first, then the name (the answer
               tells whether a name is taken only to who holds its code) */
            *in_bucket = true;
            return 0;
        }
        else
        if (rc != SC_INVITE_OK) {
            *why = "invalid or already used code";
            return SC_ERR_ENROL_CODE;
        }
    }
    if (sc_registry_taken (self->registry, name)) {
        *why = "this name is already registered";
        return SC_ERR_ENROL_TAKEN;
    }
    return 0;
}

/* ENROL: open the box, apply the limits and check the code here (cheap:
   a hash); the new key's signature is checked by a job, as a login's. */
static void
s_on_enrol (sc_broker_t *self, s_session_t *s, const sc_msg_t *msg)
{
    char name[SC_HS_NAME_MAX + 1] = "";
    uint8_t pub[SC_PUB_LEN], code[SC_HS_CODE_LEN];
    int rc = sc_handshake_broker_open_enrol (s->hs, msg->data, msg->data_len, name, pub, code);
    if (rc) {
        const char *why = NULL;
        uint32_t err = s_hs_error (rc, &why);
        s_login_refused (self, s, name, err, why);
        return;
    }
    const char *source = s->source ? s->source : S_SOURCE_UNKNOWN;
    const char *why = NULL;
    if (s_count (self->enrol_sources, source) >= self->opts.enrol_per_source) {
        sc_wipe (code, sizeof code);
        s_login_refused (self, s, name, SC_ERR_ENROL_RATE,
                         "too many enrolments from your address, retry later");
        return;
    }
    s_count_add (self->enrol_sources, s_bounded_key (self->enrol_sources, source), 1);
    if (s_count (self->enrol_names, name) >= self->opts.enrol_failed_per_name) {
        sc_wipe (code, sizeof code);
        s_login_refused (self, s, name, SC_ERR_ENROL_RATE,
                         "too many failed enrolments for this name, retry later");
        return;
    }
    bool in_bucket = false;
    uint32_t err = s_enrol_check (self, name, code, &in_bucket, &why);
    sc_broker_job_t *job = err ? NULL : s_job_new (s, J_VERIFY);
    if (err || !job) {
        sc_wipe (code, sizeof code);
        if (err)
            s_enrol_refused (self, s, name, err, why);
        else
            s_login_refused (self, s, name, SC_ERR_INTERNAL, S_LOGIN_INTERNAL);
        return;
    }
    job->hs = s->hs;
    s->hs = NULL;
    job->id = s_identity_hold (s->id);      /* what job->hs borrows */
    strcpy (job->name, name);
    memcpy (job->user_pub, pub, SC_PUB_LEN);
    job->enrol = true;
    memcpy (job->code, code, SC_HS_CODE_LEN);
    sc_wipe (code, sizeof code);
    if (self->cluster) {
        job->cluster = self->cluster;
        job->dir = sc_registry_dir (self->registry);
        job->invite_kv = in_bucket;
        job->taken_here = in_bucket && sc_registry_taken (self->registry, name);
    }
    s_job_start (self, s, job);
}

/* The new key proved itself: check the code again (it may have been
   used or revoked while the job was out), register the name, burn the
   code. 0, or the ERROR code and *why. */
static uint32_t
s_enrol_commit (sc_broker_t *self, sc_broker_job_t *job, const char **why)
{
    if (job->cluster) {
        /* the job registered it in secchat-users: known here at once */
        if (job->enrol_err) {
            *why = job->enrol_why;
            return job->enrol_err;
        }
        if (sc_registry_cluster_set (self->registry, job->name, job->user_pub,
                                     job->user_rev) < 0) {
            *why = S_LOGIN_INTERNAL;
            return SC_ERR_INTERNAL;
        }
        sc_log (SC_LOG_INFO, "enrolled %s (%s, in %s)", job->name,
                job->invite_kv ? "invitation of the cluster" : "invitation",
                SC_CLUSTER_USERS);
        return 0;
    }
    uint32_t err = s_enrol_check (self, job->name, job->code, NULL, why);
    if (err)
        return err;
    char detail[512];
    int rc = sc_registry_enrol (self->registry, job->name, job->user_pub, detail, sizeof detail);
    if (rc > 0) {
        *why = "this name is already registered";
        return SC_ERR_ENROL_TAKEN;
    }
    if (rc < 0) {
        sc_log (SC_LOG_ERROR, "enrolment of %s failed: %s", job->name, detail);
        *why = S_LOGIN_INTERNAL;
        return SC_ERR_INTERNAL;
    }
    bool invited = !s_is_zero (job->code, SC_HS_CODE_LEN);
    if (invited && sc_invite_remove (sc_registry_dir (self->registry), job->name))
        sc_log (SC_LOG_WARNING, "enrolled %s, but its invitation could not be removed: %s",
                job->name, strerror (errno));
    sc_log (SC_LOG_INFO, "enrolled %s (%s)", job->name,
            invited ? "invitation" : "open registration");
    return 0;
}

/* 0 when pub is still name's key in the registry; else the answer to
   a login with it: SC_ERR_UNKNOWN_USER (the name was removed) or
   SC_ERR_AUTH (its key changed). A login whose job checked the
   signature against a key revoked meanwhile must not come online. */
static uint32_t
s_key_current (sc_broker_t *self, const char *name, const uint8_t pub[static SC_PUB_LEN])
{
    uint8_t now[SC_PUB_LEN];
    if (sc_registry_raw (self->registry, name, now))
        return SC_ERR_UNKNOWN_USER;
    return memcmp (now, pub, SC_PUB_LEN) == 0 ? 0 : SC_ERR_AUTH;
}

/* The signature checked out (or not): the session goes online. */
static void
s_verify_done (sc_broker_t *self, s_session_t *s, sc_broker_job_t *job)
{
    const char *why = NULL;
    uint32_t code = SC_ERR_AUTH;
    if (job->enrol && job->enrol_err && job->hs) {
        /* refused by the bucket before the signature was checked */
        s_enrol_refused (self, s, job->name, job->enrol_err, job->enrol_why);
        return;
    }
    if (job->enrol && job->rc == SC_HS_OK && job->keys_ok
        && (code = s_enrol_commit (self, job, &why)) != 0) {
        sc_wipe (&job->keys, sizeof job->keys);
        s_enrol_refused (self, s, job->name, code, why);
        return;
    }
    code = SC_ERR_AUTH;
    if (job->enrol && job->rc) {
        sc_wipe (&job->keys, sizeof job->keys);
        code = s_hs_error (job->rc, &why);
        s_enrol_refused (self, s, job->name, code, why);
        return;
    }
    if (job->rc && job->rc != SC_HS_ESIG && job->rc != SC_HS_EMAC)
        /* the broker could not check (the same for a name with no key:
           it is checked against a key all the same) */
        code = s_hs_error (job->rc, &why);
    else
    /* one answer for a wrong signature or MAC, a name with no key and a
       key revoked while it was checked: names stay secret */
    if (job->unknown || job->rc || s_key_current (self, job->name, job->user_pub) != 0)
        why = "authentication failed";
    else
    if (!job->keys_ok || !(s->ch = sc_channel_new (&job->keys))) {
        why = S_LOGIN_INTERNAL;
        code = SC_ERR_INTERNAL;
    }
    sc_wipe (&job->keys, sizeof job->keys);
    if (s->ch && self->opts.seq_limit)
        sc_channel_set_limit (s->ch, self->opts.seq_limit);
    if (why) {
        if (job->unknown)
            sc_log (SC_LOG_DEBUG, "login failed for %s from %s: not registered", job->name,
                    s->addr ? s->addr : S_SOURCE_UNKNOWN);
        s_login_refused (self, s, job->name, code, why);
        return;
    }
    s_session_t *old = (s_session_t *) zhashx_lookup (self->by_name, job->name);
    if (old)
        s_replace (self, old);
    strcpy (s->name, job->name);
    s_handshake_left (self, s);
    memcpy (s->pub, job->user_pub, SC_PUB_LEN);
    s->phase = S_ONLINE;
    s->tokens = self->opts.rate_burst;
    s->tokens_at = self->now;
    zhashx_update (self->by_name, s->name, s);
    self->stats.logins++;
    if (self->cluster)
        sc_cluster_online (self->cluster, s->name, s->gen);
    sc_log (SC_LOG_INFO, "login %s from %s", s->name, s->addr ? s->addr : S_SOURCE_UNKNOWN);
    sc_msg_t welcome;
    sc_msg_init (&welcome, SC_OP_WELCOME);
    welcome.code = self->opts.heartbeat_ms;
    if (sc_msg_set_name (&welcome, s->name) == 0)
        (void) s_send (self, s, &welcome);
    sc_msg_reset (&welcome);
}

/* A job back: its session goes on where it was, unless it has gone
   (timed out, lost) meanwhile: then the job is dropped. */
static void
s_job_finish (sc_broker_t *self, sc_broker_job_t *job)
{
    if (self->jobs > 0)
        self->jobs--;
    s_session_t *s = (s_session_t *) zhashx_lookup (self->sessions, job->key);
    if (!s || s->gen != job->gen || !s->busy) {
        if (self->orphans > 0)
            self->orphans--;        /* its session went while it was out */
    }
    else
    if (s->dead)
        s->busy = false;
    else {
        s->busy = false;
        if (job->kind == J_HELLO)
            s_hello_done (self, s, job);
        else
            s_verify_done (self, s, job);
    }
    s_job_free (&job);
}

void
sc_broker_job_done (sc_broker_t *self, sc_broker_job_t *job, int64_t now_ms)
{
    self->now = now_ms;
    s_job_finish (self, job);
    s_purge (self);
}

static void
s_on_handshake (sc_broker_t *self, s_session_t *s, const uint8_t *data, size_t len)
{
    /* One job at a time per connection: what comes while it is out is
       dropped, and so is a repeated HELLO (a retry, or a flood). */
    if (s->busy) {
        sc_log (SC_LOG_DEBUG, "dropped a message during a login's job");
        return;
    }
    sc_envelope_t env;
    sc_msg_t msg;
    sc_msg_init (&msg, 0);
    int rc = sc_envelope_decode (data, len, &env);
    if (rc == 0 && (env.opcode == SC_OP_HELLO || env.opcode == SC_OP_HELLO_COOKIE)) {
        sc_log (SC_LOG_DEBUG, "dropped a HELLO during a login");
        return;
    }
    /* the header before the body: a handshake envelope has seq 0 */
    if (rc == 0 && env.seq != 0) {
        s_login_failed (self, s, "", SC_ERR_MALFORMED, S_HANDSHAKE_SEQ);
        s_error_plain (self, s->rid, s->rid_len, SC_ERR_MALFORMED, S_HANDSHAKE_SEQ);
        s_remove (self, s, SC_NOTIFY_LOST);
    }
    else
    if (rc || (rc = sc_msg_decode (env.opcode, env.body, env.body_len, &msg))) {
        s_login_failed (self, s, "", s_codec_error_code (rc), sc_codec_strerror (rc));
        s_error_plain (self, s->rid, s->rid_len, s_codec_error_code (rc), sc_codec_strerror (rc));
        s_remove (self, s, SC_NOTIFY_LOST);
    }
    else
    if (msg.opcode == SC_OP_ENROL)
        s_on_enrol (self, s, &msg);
    else
    if (msg.opcode != SC_OP_AUTH_CLIENT) {
        s_login_failed (self, s, "", SC_ERR_STATE, "not AUTH_CLIENT during the handshake");
        s_error_plain (self, s->rid, s->rid_len, SC_ERR_STATE, "expected AUTH_CLIENT");
        s_remove (self, s, SC_NOTIFY_LOST);
    }
    else
        s_on_auth_client (self, s, &msg);
    sc_msg_reset (&msg);
}

/* A client with no session: only HELLO is welcome. The envelope is
   checked before the body, so a sealed envelope from a client whose
   session is gone is told to log in, not that it is malformed. */
static void
s_on_new (sc_broker_t *self, const uint8_t *rid, size_t rid_len,
          const uint8_t *data, size_t len)
{
    sc_envelope_t env;
    sc_msg_t msg;
    sc_msg_init (&msg, 0);
    int rc = sc_envelope_decode (data, len, &env);
    if (rc == 0 && env.opcode != SC_OP_HELLO && env.opcode != SC_OP_HELLO_COOKIE) {
        sc_log (SC_LOG_DEBUG, "dropped %s from a client not logged in",
                sc_opcode_name (env.opcode));
        s_error_plain (self, rid, rid_len, SC_ERR_STATE, "log in first");
    }
    else
    if (rc == 0 && env.seq != 0) {
        sc_log (SC_LOG_DEBUG, "dropped a %s whose seq is not 0", sc_opcode_name (env.opcode));
        s_error_plain (self, rid, rid_len, SC_ERR_MALFORMED, S_HANDSHAKE_SEQ);
    }
    else
    if (rc || (rc = sc_msg_decode (env.opcode, env.body, env.body_len, &msg))) {
        sc_log (SC_LOG_DEBUG, "dropped a malformed first message: %s", sc_codec_strerror (rc));
        s_error_plain (self, rid, rid_len, s_codec_error_code (rc), sc_codec_strerror (rc));
    }
    else
        s_on_hello (self, rid, rid_len, &msg);
    sc_msg_reset (&msg);
}

/* ---- Logged-in sessions ----------------------------------------------------- */

/* Token bucket for requests that make the broker work or disturb others. */
static bool
s_rate_ok (sc_broker_t *self, s_session_t *s)
{
    double elapsed = (double) (self->now - s->tokens_at) / 1000.0;
    s->tokens_at = self->now;
    s->tokens += elapsed * self->opts.rate_per_s;
    if (s->tokens > self->opts.rate_burst)
        s->tokens = self->opts.rate_burst;
    if (s->tokens < 1.0) {
        s_error (self, s, SC_ERR_RATE, "too many requests, slow down");
        return false;
    }
    s->tokens -= 1.0;
    return true;
}

/* qsort's comparator over an array of names. */
static int
s_name_cmp (const void *a, const void *b)
{
    return strcmp (*(const char *const *) a, *(const char *const *) b);
}

/* The names to list: a growable array of borrowed names. */
typedef struct {
    const char **names;
    size_t count, size;
    const char *self;           /* left out                               */
    bool failed;
} s_names_t;

static void
s_names_add (void *arg, const char *name)
{
    s_names_t *list = arg;
    if (list->failed || streq (name, list->self))
        return;
    if (list->count == list->size) {
        size_t size = list->size ? 2 * list->size : 64;
        const char **names = realloc (list->names, size * sizeof *names);
        if (!names) {
            list->failed = true;
            return;
        }
        list->names = names;
        list->size = size;
    }
    list->names[list->count++] = name;
}

/* The names are sorted with qsort, not zlistx_sort: CZMQ 4.2.1's comb
   sort makes one last pass too few and leaves some lists unsorted. In a
   cluster the other nodes' users come in too (a name moving between
   nodes may be in both: listed once). */
static void
s_on_list (sc_broker_t *self, s_session_t *s)
{
    s_names_t list = { NULL, 0, 0, s->name, false };
    for (void *item = zhashx_first (self->by_name); item; item = zhashx_next (self->by_name))
        s_names_add (&list, (const char *) zhashx_cursor (self->by_name));
    if (self->cluster)
        sc_cluster_names (self->cluster, s_names_add, &list);
    if (list.failed) {
        free (list.names);
        s_error (self, s, SC_ERR_INTERNAL, "out of memory");
        return;
    }
    if (list.count)
        qsort (list.names, list.count, sizeof *list.names, s_name_cmp);
    sc_msg_t msg;
    sc_msg_init (&msg, SC_OP_USERS);
    for (size_t i = 0; i < list.count; i++) {
        if (i > 0 && streq (list.names[i], list.names[i - 1]))
            continue;
        if (msg.names_count == SC_USERS_MAX) {
            msg.flag = true;
            break;
        }
        if (sc_msg_add_name (&msg, list.names[i]))
            break;
    }
    free (list.names);
    (void) s_send (self, s, &msg);
    sc_msg_reset (&msg);
}

/* The busy user t is told that name asked, once in a row per name for
   as long as its chat or request lasts: asking again tells it nothing
   new. Its chat and request go on untouched. */
static void
s_tell_missed (sc_broker_t *self, s_session_t *t, const char *name)
{
    if (streq (t->missed, name))
        return;
    if (s_send_named (self, t, SC_OP_NOTIFY, name, SC_NOTIFY_MISSED) == 0)
        strcpy (t->missed, name);
}

static bool s_rtt_remote (sc_broker_t *self, s_session_t *s, const char *target);

static void
s_on_rtt (sc_broker_t *self, s_session_t *s, const char *target)
{
    if (streq (target, s->name)) {
        s_error (self, s, SC_ERR_SELF, "you cannot ask yourself");
        return;
    }
    if (s->chat != C_IDLE) {
        s_error (self, s, SC_ERR_STATE, "already in a chat or a request");
        return;
    }
    s_session_t *t = (s_session_t *) zhashx_lookup (self->by_name, target);
    if ((!t || t->dead) && self->cluster && s_rtt_remote (self, s, target))
        return;
    if (!t || t->dead) {
        sc_log (SC_LOG_INFO, "request %s -> %s: not found", s->name, target);
        (void) s_send_named (self, s, SC_OP_USER_NOT_FOUND, target, 0);
        return;
    }
    if (t->chat != C_IDLE) {
        sc_log (SC_LOG_INFO, "request %s -> %s: busy", s->name, target);
        (void) s_send_named (self, s, SC_OP_REFUSE, target, SC_REFUSE_BUSY);
        s_tell_missed (self, t, s->name);
        return;
    }
    if (s_send_named (self, t, SC_OP_RTT, s->name, 0)) {
        sc_log (SC_LOG_INFO, "request %s -> %s: target gone", s->name, target);
        (void) s_send_named (self, s, SC_OP_USER_NOT_FOUND, target, 0);
        return;
    }
    sc_log (SC_LOG_INFO, "request %s -> %s", s->name, target);
    s->chat = C_ASKING;
    t->chat = C_ASKED;
    s->peer = t;
    t->peer = s;
}

/* ACCEPT / REFUSE must name the pending requester. */
static s_session_t *
s_requester (sc_broker_t *self, s_session_t *s, const char *name)
{
    if (s->chat != C_ASKED || !s->peer || !streq (s->peer->name, name)) {
        s_error (self, s, SC_ERR_STATE, "no pending request from that user");
        return NULL;
    }
    return s->peer;
}

static int
s_send_chat (sc_broker_t *self, s_session_t *to, const char *name,
             const uint8_t pub[static SC_PUB_LEN], bool initiator)
{
    sc_msg_t msg;
    sc_msg_init (&msg, SC_OP_CHAT);
    msg.flag = initiator;
    int rc = sc_msg_set_name (&msg, name);
    memcpy (msg.key, pub, SC_PUB_LEN);   /* the key it proved */
    if (rc == 0)
        rc = s_send (self, to, &msg);
    sc_msg_reset (&msg);
    return rc;
}

static bool s_answer_remote (sc_broker_t *self, s_session_t *s, const char *name,
                             bool accept);

static void
s_on_accept (sc_broker_t *self, s_session_t *s, const char *name)
{
    if (s->remote && s_answer_remote (self, s, name, true))
        return;
    s_session_t *r = s_requester (self, s, name);
    if (!r)
        return;
    s->chat = r->chat = C_CHAT;
    self->stats.chats++;
    if (s_send_chat (self, r, s->name, s->pub, true)
        || s_send_chat (self, s, r->name, r->pub, false)) {
        sc_log (SC_LOG_WARNING, "chat %s <-> %s could not start", r->name, s->name);
        s_error (self, s, SC_ERR_UNDELIVERED, "the chat could not start");
        s_end_link (self, r->dead ? r : s, SC_NOTIFY_LOST);
        return;
    }
    sc_log (SC_LOG_INFO, "chat %s <-> %s", r->name, s->name);
}

static void
s_on_refuse (sc_broker_t *self, s_session_t *s, const char *name)
{
    if (s->remote && s_answer_remote (self, s, name, false))
        return;
    s_session_t *r = s_requester (self, s, name);
    if (!r)
        return;
    s_unlink (self, s);
    sc_log (SC_LOG_INFO, "request %s -> %s: refused", r->name, s->name);
    (void) s_send_named (self, r, SC_OP_REFUSE, s->name, SC_REFUSE_DECLINED);
}

static const char *
s_peer_name (const s_session_t *s)
{
    return s->remote ? s->remote->name : s->peer ? s->peer->name : "";
}

static void
s_on_leave (sc_broker_t *self, s_session_t *s)
{
    if (s->chat == C_ASKING) {
        sc_log (SC_LOG_INFO, "request %s -> %s: withdrawn", s->name, s_peer_name (s));
        s_end_link (self, s, SC_NOTIFY_CANCELLED);
    }
    else
    if (s->chat == C_CHAT) {
        sc_log (SC_LOG_INFO, "chat %s <-> %s: %s left", s->name, s_peer_name (s), s->name);
        s_end_link (self, s, SC_NOTIFY_LEFT);
    }
    else
        s_error (self, s, SC_ERR_STATE, "no chat or request to leave");
}

/* The envelope being handled, opened where it lies. With in_place, its
   buffer is the core's to rewrite and, through the forward function, to
   send as it is; sent says it went (and is no longer the core's). */
typedef struct {
    uint8_t *data;
    size_t len;
    bool in_place;
    bool sent;
} s_frame_t;

/* Re-seal the body for the peer: in the frame itself when it can, then
   the frame goes as it is; else into a new one. */
static int
s_reseal (sc_broker_t *self, s_session_t *peer, uint8_t opcode, s_frame_t *frame,
          const uint8_t *body, size_t len)
{
    if (frame->in_place && self->forward) {
        int rc = sc_wire_reseal_inplace (peer->ch, opcode, frame->data, frame->len, body, len);
        if (rc == 0) {
            rc = self->forward (self->arg, peer->rid, peer->rid_len);
            frame->sent = rc == 0;
            return rc;
        }
        if (rc != SC_WIRE_NOFIT)
            return rc;
    }
    uint8_t *out = NULL;
    size_t out_len = 0;
    int rc = sc_wire_seal_raw (peer->ch, opcode, body, len, &out, &out_len);
    return rc ? rc : s_send_frame (self, peer->rid, peer->rid_len, out, out_len);
}

static void s_relay_remote (sc_broker_t *self, s_session_t *s, uint8_t opcode,
                            const uint8_t *body, size_t len);

/* MESSAGE and the E2E handshake: checked, then relayed as they are. */
static void
s_on_relay (sc_broker_t *self, s_session_t *s, uint8_t opcode, s_frame_t *frame,
            const uint8_t *body, size_t len)
{
    if (s->chat != C_CHAT || !s->peer) {
        if (s->chat == C_CHAT && s->remote)
            s_relay_remote (self, s, opcode, body, len);
        else
            s_error (self, s, SC_ERR_NO_CHAT, "not in a chat");
        return;
    }
    s_session_t *peer = s->peer;
    int rc = peer->dead ? -1 : s_reseal (self, peer, opcode, frame, body, len);
    if (rc == SC_CHANNEL_ELIMIT) {
        s_mark_dead (self, peer, "session counter exhausted", SC_NOTIFY_LOST);
        rc = SC_BROKER_GONE;
    }
    if (rc == 0) {
        self->stats.relayed++;
        self->stats.relayed_bytes += frame->len;
    }
    else {
        self->stats.undelivered++;
        sc_log (SC_LOG_INFO, "relay %s -> %s: undelivered", s->name, peer->name);
        s_error (self, s, SC_ERR_UNDELIVERED, rc == SC_BROKER_FULL
                 ? "the peer is not reading fast enough: not delivered"
                 : "the peer could not be reached: not delivered");
        /* a full queue too: the peer's stream now has a hole (a spent
           seq), which it would find as a gap and end the session */
        if (rc == SC_BROKER_GONE)
            s_mark_dead (self, peer, "connection lost", SC_NOTIFY_LOST);
        else
        if (rc == SC_BROKER_FULL)
            s_mark_dead (self, peer, "queue full: an envelope was dropped", SC_NOTIFY_LOST);
    }
}

static void
s_dispatch (sc_broker_t *self, s_session_t *s, uint8_t opcode, s_frame_t *frame,
            const uint8_t *body, size_t len)
{
    /* a relayed body is checked as strictly, but nothing of it is kept */
    bool relayed = opcode == SC_OP_MESSAGE || opcode == SC_OP_CC_SESSION
                || opcode == SC_OP_CC_REPLY || opcode == SC_OP_CC_FINISH;
    sc_msg_t msg;
    sc_msg_init (&msg, opcode);
    int rc = relayed ? sc_msg_check (opcode, body, len) : sc_msg_decode (opcode, body, len, &msg);
    if (rc) {
        s_error (self, s, SC_ERR_MALFORMED, sc_codec_strerror (rc));
        sc_msg_reset (&msg);
        return;
    }
    switch (opcode) {
        case SC_OP_PING: {
            sc_msg_t pong;
            sc_msg_init (&pong, SC_OP_PONG);
            (void) s_send (self, s, &pong);
            break;
        }
        case SC_OP_QUIT:
            s_mark_dead (self, s, "quit", SC_NOTIFY_QUIT);
            break;
        case SC_OP_LIST:
            if (s_rate_ok (self, s))
                s_on_list (self, s);
            break;
        case SC_OP_RTT:
            if (s_rate_ok (self, s))
                s_on_rtt (self, s, msg.name);
            break;
        case SC_OP_ACCEPT:
            if (s_rate_ok (self, s))
                s_on_accept (self, s, msg.name);
            break;
        case SC_OP_REFUSE:
            if (s_rate_ok (self, s))
                s_on_refuse (self, s, msg.name);
            break;
        case SC_OP_LEAVE:
            if (s_rate_ok (self, s))
                s_on_leave (self, s);
            break;
        case SC_OP_MESSAGE:
        case SC_OP_CC_SESSION:
        case SC_OP_CC_REPLY:
        case SC_OP_CC_FINISH:
            s_on_relay (self, s, opcode, frame, body, len);
            break;
        default:
            s_error (self, s, SC_ERR_STATE, "not a client request");
            break;
    }
    sc_msg_reset (&msg);
}

static void
s_on_online (sc_broker_t *self, s_session_t *s, s_frame_t *frame)
{
    uint8_t opcode = 0, *body = NULL;
    size_t body_len = 0;
    int rc = sc_wire_open_inplace (s->ch, frame->data, frame->len, &opcode, &body, &body_len);
    if (rc == SC_CHANNEL_ELIMIT) {
        /* the client's counter ran out: it must log in again */
        s_error (self, s, SC_ERR_TIMEOUT, "session counter exhausted: log in again");
        s_mark_dead (self, s, "session counter exhausted", SC_NOTIFY_LOST);
        return;
    }
    if (rc == SC_CHANNEL_EGAP) {
        /* an authentic envelope, but one before it never came: something
           on the path dropped it, and the session cannot be trusted to
           be whole any more */
        s_error (self, s, SC_ERR_TIMEOUT, "an envelope from this session is "
                 "missing: log in again");
        s_mark_dead (self, s, "envelope missing (seq gap)", SC_NOTIFY_LOST);
        return;
    }
    if (rc) {
        sc_log (SC_LOG_INFO, "rejected an envelope from %s: %s", s->name, sc_wire_strerror (rc));
        s_error (self, s, rc <= SC_CHANNEL_EAUTH && rc >= SC_CHANNEL_EINTERNAL
                 ? SC_ERR_AUTH : s_codec_error_code (rc), sc_wire_strerror (rc));
        return;
    }
    s->last_seen = self->now;
    s_dispatch (self, s, opcode, frame, body, body_len);
    if (!frame->sent)
        sc_wipe (body, body_len);       /* else: the peer's ciphertext, gone */
}

static void
s_handle (sc_broker_t *self, const uint8_t *rid, size_t rid_len, s_frame_t *frame)
{
    const uint8_t *data = frame->data;
    size_t len = frame->len;
    char key[2 * 255 + 1];
    s_hex_into (rid, rid_len, key);
    s_session_t *s = (s_session_t *) zhashx_lookup (self->sessions, key);
    if (!s)
        s_on_new (self, rid, rid_len, data, len);
    else
    if (s->dead)
        ;   /* already going: ignore */
    else
    if (s->phase == S_HANDSHAKE)
        s_on_handshake (self, s, data, len);
    else
        s_on_online (self, s, frame);
    s_purge (self);
}

void
sc_broker_handle (sc_broker_t *self, const uint8_t *rid, size_t rid_len,
                  const uint8_t *data, size_t len, int64_t now_ms)
{
    self->now = now_ms;
    if (!rid || rid_len == 0 || rid_len > 255)
        return;
    /* opened in a copy: data stays as it was (an oversized one is
       refused, but with an answer, like any other) */
    uint8_t stack[SC_ENVELOPE_MAX];
    uint8_t *copy = len <= sizeof stack ? stack : malloc (len);
    if (!copy)
        return;
    if (len)
        memcpy (copy, data, len);
    s_frame_t frame = { copy, len, false, false };
    s_handle (self, rid, rid_len, &frame);
    sc_wipe (copy, len);
    if (copy != stack)
        free (copy);
}

int
sc_broker_handle_frame (sc_broker_t *self, const uint8_t *rid, size_t rid_len,
                        uint8_t *data, size_t len, int64_t now_ms)
{
    self->now = now_ms;
    if (!rid || rid_len == 0 || rid_len > 255)
        return 0;
    s_frame_t frame = { data, len, true, false };
    s_handle (self, rid, rid_len, &frame);
    return frame.sent ? 1 : 0;
}

void
sc_broker_set_forward (sc_broker_t *self, sc_broker_forward_fn *forward)
{
    self->forward = forward;
}

/* The three sources with the most failed logins, into buf. */
static void
s_top_sources (sc_broker_t *self, char *buf, size_t size)
{
    const char *top[3] = { NULL, NULL, NULL };
    size_t count[3] = { 0, 0, 0 };
    for (size_t *n = (size_t *) zhashx_first (self->failures); n;
         n = (size_t *) zhashx_next (self->failures)) {
        const char *source = (const char *) zhashx_cursor (self->failures);
        for (int i = 0; i < 3; i++)
            if (*n > count[i]) {
                for (int j = 2; j > i; j--) {
                    top[j] = top[j - 1];
                    count[j] = count[j - 1];
                }
                top[i] = source;
                count[i] = *n;
                break;
            }
    }
    size_t used = 0;
    buf[0] = 0;
    for (int i = 0; i < 3 && top[i] && used < size; i++) {
        int n = snprintf (buf + used, size - used, "%s%s (%zu)", i ? ", " : "", top[i], count[i]);
        if (n < 0)
            break;
        used += (size_t) n;
    }
}

/* One line a minute at most, instead of a line per failed login. */
static void
s_failures_summary (sc_broker_t *self)
{
    if (self->now - self->failed_since < S_SUMMARY_MS)
        return;
    if (self->failed > 0) {
        char top[3 * (64 + 24)];
        s_top_sources (self, top, sizeof top);
        sc_log (SC_LOG_INFO, "%zu failed logins in the last minute, top sources %s",
                self->failed, top);
        zhashx_purge (self->failures);
        self->failed = 0;
    }
    zhashx_purge (self->enrol_sources);
    zhashx_purge (self->enrol_names);
    self->failed_since = self->now;
}

/* A new cookie secret every S_COOKIE_ROTATE_MS; the one before stays
   good for as long again. */
static void
s_cookie_rotate (sc_broker_t *self)
{
    if (self->now - self->cookie_since < S_COOKIE_ROTATE_MS)
        return;
    uint8_t fresh[SC_KEY_LEN];
    if (sc_random (fresh, sizeof fresh) == 0) {
        memcpy (self->cookie_key[1], self->cookie_key[0], SC_KEY_LEN);
        memcpy (self->cookie_key[0], fresh, SC_KEY_LEN);
        self->cookie_since = self->now;
    }
    sc_wipe (fresh, sizeof fresh);
}

void
sc_broker_tick (sc_broker_t *self, int64_t now_ms)
{
    self->now = now_ms;
    s_cookie_rotate (self);
    s_failures_summary (self);
    int64_t silent = 3 * (int64_t) self->opts.heartbeat_ms;
    for (s_session_t *s = (s_session_t *) zhashx_first (self->sessions); s;
         s = (s_session_t *) zhashx_next (self->sessions)) {
        if (s->dead)
            continue;
        if (s->phase == S_HANDSHAKE && now_ms - s->started > self->opts.handshake_ms) {
            s_login_failed (self, s, "", SC_ERR_TIMEOUT, "login timed out");
            s_error_plain (self, s->rid, s->rid_len, SC_ERR_TIMEOUT, "login timed out");
            s_mark_dead (self, s, "login timed out", SC_NOTIFY_LOST);
        }
        else
        if (s->phase == S_ONLINE && now_ms - s->last_seen > silent) {
            s_mark_dead (self, s, "heartbeat timeout", SC_NOTIFY_LOST);
        }
    }
    s_purge (self);
}

void
sc_broker_shutdown (sc_broker_t *self)
{
    for (s_session_t *s = (s_session_t *) zhashx_first (self->sessions); s;
         s = (s_session_t *) zhashx_next (self->sessions))
        if (s->phase == S_ONLINE && !s->dead)
            s_error (self, s, SC_ERR_SHUTDOWN, "the broker is stopping");
}

/* ---- Revocation and the broker's identity -------------------------------- */

size_t
sc_broker_revalidate (sc_broker_t *self)
{
    size_t revoked = 0;
    for (s_session_t *s = (s_session_t *) zhashx_first (self->sessions); s;
         s = (s_session_t *) zhashx_next (self->sessions)) {
        if (s->phase != S_ONLINE || s->dead)
            continue;
        uint32_t code = s_key_current (self, s->name, s->pub);
        if (code == 0)
            continue;
        const char *why = code == SC_ERR_UNKNOWN_USER
                        ? "your key was removed from the broker's registry"
                        : "your key was replaced in the broker's registry";
        sc_log (SC_LOG_INFO, "revoked %s: key %s", s->name,
                code == SC_ERR_UNKNOWN_USER ? "removed" : "changed");
        s_error (self, s, SC_ERR_REVOKED, why);
        s_mark_dead (self, s, "key revoked", SC_NOTIFY_REVOKED);
        s->notify = SC_NOTIFY_REVOKED;  /* even if the ERROR found it gone */
        s->why = "key revoked";
        revoked++;
    }
    s_purge (self);
    return revoked;
}

int
sc_broker_set_identity (sc_broker_t *self, sc_key_t **key_p, uint8_t **cert_p,
                        size_t cert_len)
{
    if (!key_p || !*key_p || !cert_p || !*cert_p || cert_len == 0 || cert_len > SC_CERT_MAX)
        return -1;
    s_identity_t *id = s_identity_new (*key_p, *cert_p, cert_len);
    if (!id)
        return -1;
    id->own_key = *key_p;
    id->own_cert = *cert_p;
    *key_p = NULL;
    *cert_p = NULL;
    s_identity_drop (&self->id);
    self->id = id;
    return 0;
}

/* ---- The cluster: users on other nodes (docs/PROTOCOL.md section 12) ---- */

void
sc_broker_set_cluster (sc_broker_t *self, sc_cluster_t *cluster)
{
    self->cluster = cluster;
}

/* A message about user from (session from_sid here) to user to on node. */
static int
s_node_send (sc_broker_t *self, const char *node, uint8_t kind, const char *from,
             uint64_t from_sid, const char *to, uint64_t to_sid, uint32_t code)
{
    sc_node_msg_t msg;
    sc_node_msg_init (&msg, kind);
    snprintf (msg.from, sizeof msg.from, "%s", from);
    msg.from_sid = from_sid;
    snprintf (msg.to, sizeof msg.to, "%s", to);
    msg.to_sid = to_sid;
    msg.code = code;
    return sc_cluster_send (self->cluster, node, &msg);
}

/* s's chat or request ends: its remote side hears why. */
static void
s_remote_notify (sc_broker_t *self, s_session_t *s, uint32_t reason)
{
    s_remote_t *r = s->remote;
    if (s_node_send (self, r->node, SC_NODE_NOTIFY, s->name, s->gen, r->name, r->sid, reason))
        sc_log (SC_LOG_WARNING, "%s -> %s on %s: the end of the chat could not be told",
                s->name, r->name, r->node);
}

/* RTT to a user online on another node: true when it was one. */
static bool
s_rtt_remote (sc_broker_t *self, s_session_t *s, const char *target)
{
    const char *node = NULL;
    uint64_t sid = 0;
    if (sc_cluster_locate (self->cluster, target, &node, &sid))
        return false;
    s_remote_t *r = calloc (1, sizeof *r);
    if (!r) {
        s_error (self, s, SC_ERR_INTERNAL, "out of memory");
        return true;
    }
    sc_node_msg_t msg;
    sc_node_msg_init (&msg, SC_NODE_RTT);
    strcpy (msg.from, s->name);
    msg.from_sid = s->gen;
    snprintf (msg.to, sizeof msg.to, "%s", target);
    msg.has_key = true;
    memcpy (msg.key, s->pub, SC_PUB_LEN);
    if (sc_cluster_send (self->cluster, node, &msg)) {
        free (r);
        sc_log (SC_LOG_INFO, "request %s -> %s on %s: not sent", s->name, target, node);
        (void) s_send_named (self, s, SC_OP_USER_NOT_FOUND, target, 0);
        return true;
    }
    snprintf (r->name, sizeof r->name, "%s", target);
    snprintf (r->node, sizeof r->node, "%s", node);
    s->remote = r;
    s->chat = C_ASKING;
    sc_log (SC_LOG_INFO, "request %s -> %s on %s", s->name, target, node);
    return true;
}

/* ACCEPT or REFUSE of a request from another node: true when s's
   pending request is from name. */
static bool
s_answer_remote (sc_broker_t *self, s_session_t *s, const char *name, bool accept)
{
    s_remote_t *r = s->remote;
    if (s->chat != C_ASKED || !streq (r->name, name))
        return false;
    if (!accept) {
        sc_log (SC_LOG_INFO, "request %s -> %s: refused", r->name, s->name);
        (void) s_node_send (self, r->node, SC_NODE_REFUSE, s->name, s->gen, r->name, r->sid,
                            SC_REFUSE_DECLINED);
        s_unlink (self, s);
        return true;
    }
    sc_node_msg_t msg;
    sc_node_msg_init (&msg, SC_NODE_ACCEPT);
    strcpy (msg.from, s->name);
    msg.from_sid = s->gen;
    strcpy (msg.to, r->name);
    msg.to_sid = r->sid;
    msg.has_key = true;
    memcpy (msg.key, s->pub, SC_PUB_LEN);
    if (sc_cluster_send (self->cluster, r->node, &msg)) {
        sc_log (SC_LOG_WARNING, "chat %s <-> %s could not start", r->name, s->name);
        s_error (self, s, SC_ERR_UNDELIVERED, "the chat could not start");
        s_unlink (self, s);
        return true;
    }
    s->chat = C_CHAT;
    self->stats.chats++;        /* this node's half of it */
    sc_log (SC_LOG_INFO, "chat %s <-> %s on %s", r->name, s->name, r->node);
    (void) s_send_chat (self, s, r->name, r->pub, false);
    return true;
}

/* A relayed body to a peer on another node, as the ciphertext it is. */
static void
s_relay_remote (sc_broker_t *self, s_session_t *s, uint8_t opcode,
                const uint8_t *body, size_t len)
{
    s_remote_t *r = s->remote;
    sc_node_msg_t msg;
    sc_node_msg_init (&msg, SC_NODE_RELAY);
    strcpy (msg.from, s->name);
    msg.from_sid = s->gen;
    strcpy (msg.to, r->name);
    msg.to_sid = r->sid;
    msg.code = opcode;
    msg.data = body;
    msg.data_len = len;
    if (sc_cluster_send (self->cluster, r->node, &msg)) {
        sc_log (SC_LOG_INFO, "relay %s -> %s on %s: undelivered", s->name, r->name, r->node);
        s_error (self, s, SC_ERR_UNDELIVERED, "the peer could not be reached: not delivered");
    }
}

/* Session 0 means "any session of the name" in to_sid and "none" in
   from_sid, and only the kinds honest nodes send it in may carry it
   (docs/PROTOCOL.md section 12): to_sid 0 in RTT (a request is for the
   user) and NOTIFY (a requester ending its request before the answer
   that would have told it the session asked); from_sid 0 in the answers
   of a node that has no session for their sender (NOT_FOUND; NOTIFY to
   an ACCEPT, UNDELIVERED to a RELAY, when the session they were for is
   gone). Anything else is dropped before s_addressed and s_linked see
   it, so that neither matches a session by 0 where none may. */
static bool
s_node_sids_ok (const sc_node_msg_t *msg)
{
    bool to_any = msg->kind == SC_NODE_RTT || msg->kind == SC_NODE_NOTIFY;
    bool from_none = msg->kind == SC_NODE_NOT_FOUND || msg->kind == SC_NODE_NOTIFY
                  || msg->kind == SC_NODE_UNDELIVERED;
    return (msg->to_sid != 0 || to_any) && (msg->from_sid != 0 || from_none);
}

/* Dropped and logged, at most a line every S_SID0_SAY_MS. */
static void
s_node_sids_refused (sc_broker_t *self, const sc_node_msg_t *msg)
{
    self->sid0_refused++;
    if (self->sid0_said && self->now - self->sid0_said < S_SID0_SAY_MS)
        return;
    sc_log (SC_LOG_WARNING, "cluster: dropped %llu messages with a session 0 their kind may "
            "not carry (the last: kind %u from node %s)",
            (unsigned long long) self->sid0_refused, (unsigned) msg->kind, msg->node);
    self->sid0_refused = 0;
    self->sid0_said = self->now;
}

/* The session here a message from another node is for, or NULL (to_sid
   0: the name's session, whichever it is). */
static s_session_t *
s_addressed (sc_broker_t *self, const sc_node_msg_t *msg)
{
    s_session_t *s = (s_session_t *) zhashx_lookup (self->by_name, msg->to);
    if (!s || s->dead || s->phase != S_ONLINE || (msg->to_sid && s->gen != msg->to_sid))
        return NULL;
    return s;
}

/* s's chat or request is with msg's sender (r->sid 0: a request whose
   answer has not told the session asked yet; from_sid 0: the sender has
   no session, s_node_sids_ok). */
static bool
s_linked (const s_session_t *s, const sc_node_msg_t *msg)
{
    const s_remote_t *r = s->remote;
    return r && streq (r->name, msg->from) && streq (r->node, msg->node)
        && (r->sid == 0 || msg->from_sid == 0 || r->sid == msg->from_sid);
}

/* Answer msg's sender about msg->to. */
static void
s_node_reply (sc_broker_t *self, const sc_node_msg_t *msg, uint8_t kind, uint64_t from_sid,
              uint32_t code)
{
    (void) s_node_send (self, msg->node, kind, msg->to, from_sid, msg->from, msg->from_sid, code);
}

/* The key another node gives for a user must be the one this node's
   registry holds: every node serves the same users (docs/PROTOCOL.md
   section 12). A key that differs, or a name unknown here, is refused,
   whoever published it, so that nothing on NATS can hand a client a key
   of its own for a registered name. */
static bool
s_node_key_ok (sc_broker_t *self, const sc_node_msg_t *msg)
{
    uint8_t pub[SC_PUB_LEN];
    if (!msg->has_key || !*msg->from || sc_registry_raw (self->registry, msg->from, pub))
        return false;
    if (memcmp (pub, msg->key, SC_PUB_LEN) != 0) {
        sc_log (SC_LOG_WARNING, "cluster: a key for %s from node %s that is not the "
                "registry's: refused", msg->from, msg->node);
        return false;
    }
    return true;
}

static void
s_from_node_rtt (sc_broker_t *self, const sc_node_msg_t *msg)
{
    s_session_t *t = s_addressed (self, msg);
    if (!t || !s_node_key_ok (self, msg)) {
        sc_log (SC_LOG_INFO, "request %s on %s -> %s: not found", msg->from, msg->node, msg->to);
        s_node_reply (self, msg, SC_NODE_NOT_FOUND, 0, 0);
        return;
    }
    if (t->chat != C_IDLE) {
        sc_log (SC_LOG_INFO, "request %s on %s -> %s: busy", msg->from, msg->node, msg->to);
        s_node_reply (self, msg, SC_NODE_REFUSE, t->gen, SC_REFUSE_BUSY);
        s_tell_missed (self, t, msg->from);
        return;
    }
    s_remote_t *r = calloc (1, sizeof *r);
    if (!r || s_send_named (self, t, SC_OP_RTT, msg->from, 0)) {
        free (r);
        s_node_reply (self, msg, SC_NODE_NOT_FOUND, 0, 0);
        return;
    }
    strcpy (r->name, msg->from);
    strcpy (r->node, msg->node);
    r->sid = msg->from_sid;
    memcpy (r->pub, msg->key, SC_PUB_LEN);
    t->remote = r;
    t->chat = C_ASKED;
    sc_log (SC_LOG_INFO, "request %s on %s -> %s", msg->from, msg->node, t->name);
}

static void
s_from_node_accept (sc_broker_t *self, const sc_node_msg_t *msg)
{
    s_session_t *s = s_addressed (self, msg);
    if (!s || s->chat != C_ASKING || !s_linked (s, msg) || !s_node_key_ok (self, msg)) {
        /* withdrawn or gone meanwhile: the acceptor's chat ends */
        s_node_reply (self, msg, SC_NODE_NOTIFY, s ? s->gen : 0, SC_NOTIFY_LOST);
        return;
    }
    s->chat = C_CHAT;
    self->stats.chats++;        /* this node's half of it */
    s->remote->sid = msg->from_sid;
    memcpy (s->remote->pub, msg->key, SC_PUB_LEN);
    sc_log (SC_LOG_INFO, "chat %s <-> %s on %s", s->name, msg->from, msg->node);
    (void) s_send_chat (self, s, msg->from, msg->key, true);
}

static void
s_from_node_relay (sc_broker_t *self, const sc_node_msg_t *msg)
{
    s_session_t *s = s_addressed (self, msg);
    int rc = -1;
    uint8_t opcode = (uint8_t) msg->code;
    bool relayed = msg->code == SC_OP_MESSAGE || msg->code == SC_OP_CC_SESSION
                || msg->code == SC_OP_CC_REPLY || msg->code == SC_OP_CC_FINISH;
    if (s && s->chat == C_CHAT && s_linked (s, msg) && relayed
        && sc_msg_check (opcode, msg->data, msg->data_len) == 0) {
        uint8_t *out = NULL;
        size_t out_len = 0;
        rc = sc_wire_seal_raw (s->ch, opcode, msg->data, msg->data_len, &out, &out_len);
        if (rc == SC_CHANNEL_ELIMIT)
            s_mark_dead (self, s, "session counter exhausted", SC_NOTIFY_LOST);
        else
        if (rc == 0) {
            rc = s_send_frame (self, s->rid, s->rid_len, out, out_len);
            if (rc == SC_BROKER_GONE)
                s_mark_dead (self, s, "connection lost", SC_NOTIFY_LOST);
            else
            if (rc)
                s_mark_dead (self, s, "queue full: an envelope was dropped", SC_NOTIFY_LOST);
        }
    }
    if (rc) {
        sc_log (SC_LOG_INFO, "relay %s on %s -> %s: undelivered", msg->from, msg->node, msg->to);
        s_node_reply (self, msg, SC_NODE_UNDELIVERED, s ? s->gen : 0, 0);
    }
}

/* Every chat and request with a user of node ends: `lost`. */
static void
s_node_gone (sc_broker_t *self, const char *node)
{
    for (s_session_t *s = (s_session_t *) zhashx_first (self->sessions); s;
         s = (s_session_t *) zhashx_next (self->sessions)) {
        if (s->dead || !s->remote || !streq (s->remote->node, node))
            continue;
        char name[SC_NAME_MAX + 1];
        strcpy (name, s->remote->name);
        s_unlink (self, s);
        sc_log (SC_LOG_INFO, "%s: peer %s lost with node %s", s->name, name, node);
        (void) s_send_named (self, s, SC_OP_NOTIFY, name, SC_NOTIFY_LOST);
    }
}

/* A user of the bucket secchat-users added, replaced or gone: the
   registry follows, and whoever's key went is logged out as after a
   reload (ERROR REVOKED). */
static void
s_cluster_user (sc_broker_t *self, const sc_node_msg_t *msg)
{
    int rc = msg->has_key
           ? sc_registry_cluster_set (self->registry, msg->from, msg->key, msg->from_sid)
           : sc_registry_cluster_remove (self->registry, msg->from, msg->from_sid);
    if (rc == 1)
        return;
    if (rc < 0)
        sc_log (SC_LOG_WARNING, "cluster: %s: the key of %s does not load: taken as removed",
                SC_CLUSTER_USERS, msg->from);
    else
    if (msg->has_key)
        sc_log (SC_LOG_DEBUG, "cluster: %s registered or changed in %s", msg->from,
                SC_CLUSTER_USERS);
    else
        sc_log (SC_LOG_INFO, "cluster: %s removed from %s", msg->from, SC_CLUSTER_USERS);
    size_t revoked = sc_broker_revalidate (self);
    if (revoked)
        sc_log (SC_LOG_INFO, "%zu user%s logged out: key removed or changed in %s", revoked,
                revoked == 1 ? "" : "s", SC_CLUSTER_USERS);
}

void
sc_broker_cluster_msg (sc_broker_t *self, const sc_node_msg_t *msg, int64_t now_ms)
{
    self->now = now_ms;
    s_session_t *s = NULL;
    if (msg->kind >= SC_NODE_RTT && msg->kind <= SC_NODE_UNDELIVERED && !s_node_sids_ok (msg)) {
        s_node_sids_refused (self, msg);
        return;
    }
    switch (msg->kind) {
        case SC_NODE_RTT:
            s_from_node_rtt (self, msg);
            break;
        case SC_NODE_NOT_FOUND:
        case SC_NODE_REFUSE:
            s = s_addressed (self, msg);
            if (!s || s->chat != C_ASKING || !s_linked (s, msg))
                break;
            s_unlink (self, s);
            if (msg->kind == SC_NODE_NOT_FOUND)
                (void) s_send_named (self, s, SC_OP_USER_NOT_FOUND, msg->from, 0);
            else
                (void) s_send_named (self, s, SC_OP_REFUSE, msg->from,
                                     msg->code <= SC_REFUSE_REASON_MAX ? msg->code
                                                                       : SC_REFUSE_DECLINED);
            break;
        case SC_NODE_ACCEPT:
            s_from_node_accept (self, msg);
            break;
        case SC_NODE_NOTIFY:
            s = s_addressed (self, msg);
            /* to_sid 0: the requester did not know the session it asked,
               so only a request still unanswered can be its */
            if (!s || !s_linked (s, msg) || (msg->to_sid == 0 && s->chat != C_ASKED))
                break;
            sc_log (SC_LOG_INFO, "%s: peer %s on %s ended the chat or request", s->name,
                    msg->from, msg->node);
            s_unlink (self, s);
            (void) s_send_named (self, s, SC_OP_NOTIFY, msg->from,
                                 msg->code <= SC_NOTIFY_REASON_MAX ? msg->code : SC_NOTIFY_LOST);
            break;
        case SC_NODE_RELAY:
            s_from_node_relay (self, msg);
            break;
        case SC_NODE_UNDELIVERED:
            s = s_addressed (self, msg);
            if (s && s_linked (s, msg))
                s_error (self, s, SC_ERR_UNDELIVERED,
                         "the peer could not be reached: not delivered");
            break;
        case SC_CLUSTER_REPLACED:
            s = (s_session_t *) zhashx_lookup (self->by_name, msg->from);
            if (s && !s->dead && s->gen == msg->from_sid) {
                sc_log (SC_LOG_INFO, "%s logged in again on node %s", s->name, msg->node);
                s_replace (self, s);
            }
            break;
        case SC_CLUSTER_NODE_GONE:
            s_node_gone (self, msg->node);
            break;
        case SC_CLUSTER_USER:
            s_cluster_user (self, msg);
            break;
        default:
            break;
    }
    s_purge (self);
}
