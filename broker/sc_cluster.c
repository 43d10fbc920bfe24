/*  sc_cluster: several secbrokers as one service, over NATS (sc_cluster.h,
    docs/PROTOCOL.md section 12).

    Subjects: secchat.presence (every node: UP, DOWN, BEAT, SYNC) and
    secchat.node.NODE (one node: requests, answers, relayed bodies and
    snapshots for its users). Both subscriptions share one delivery
    thread (global delivery), so what one node publishes reaches another
    in the order it was published, whichever subject it went on.

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at https://mozilla.org/MPL/2.0/.
*/
#include <czmq.h>
#include <fcntl.h>
#include <nats/nats.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <time.h>

#include "sc_cluster.h"
#include "sc_crypto.h"
#include "sc_log.h"

#define S_PRESENCE      "secchat.presence"
#define S_NODE_PREFIX   "secchat.node."
#define S_URLS_MAX      16
#define S_NKEY_PREFIX_SEED  (18 << 3)   /* S... */
#define S_NKEY_PREFIX_USER  (20 << 3)   /* U... */
#define S_NKEY_SEED_RAW     36          /* 2 prefix, 32 seed, 2 CRC16 */
#define S_NKEY_PUB_RAW      35          /* 1 prefix, 32 key, 2 CRC16  */
#define S_NKEY_PUB_LEN      56          /* base32 of S_NKEY_PUB_RAW   */
#define S_QUEUE_MAX     ((size_t) 256 * 1024 * 1024)     /* bytes waiting for the core */
/* The tables filled from what others publish are bounded (docs/PROTOCOL.md
   section 12, "Limits"): past a cap, what would add to it is dropped, and
   said in the log at most every S_SAY_MS. The nodes given up need no cap
   of their own: a node is given up after dead_ms in the table at least,
   so each of its S_NODES_MAX places gives up one node a dead_ms at most,
   each remembered S_GIVEN_UP_DEADS dead_ms: S_NODES_MAX times
   (S_GIVEN_UP_DEADS + 1) of them at most. */
#define S_NODES_MAX         64          /* other nodes known              */
#define S_REMOTE_MAX        65536       /* users online on other nodes    */
#define S_GIVEN_UP_DEADS    6           /* a node given up is remembered
                                           this many dead_ms             */
#define S_SAY_MS            10000

typedef struct _s_item_t s_item_t;
struct _s_item_t {
    s_item_t *next;
    size_t len;
    uint8_t data[];
};

typedef struct {
    char name[SC_NAME_MAX + 1];
    uint64_t boot;
    int64_t last_seen;
    uint64_t beat_count;        /* users it says it has                  */
    size_t users;               /* ...and we have for it                 */
    int mismatch;               /* beats in a row that disagree          */
    uint64_t snap_gen;
} s_node_t;

/* A node given up for its silence: told so if heard again (GAVE_UP). */
typedef struct {
    uint64_t boot;
    int64_t at;                 /* when, monotonic ms                    */
} s_given_up_t;

typedef struct {
    s_node_t *node;             /* NULL: a user here                     */
    uint64_t sid;
    int64_t since;              /* login time, ms since the epoch        */
    uint64_t snap;
} s_entry_t;

/* A change of secchat-users, from the watcher's thread to the core's. */
typedef struct _s_user_item_t s_user_item_t;
struct _s_user_item_t {
    s_user_item_t *next;
    char name[SC_NAME_MAX + 1];
    bool has_key;
    uint8_t key[SC_NODE_KEY_LEN];
    uint64_t rev;               /* the entry's revision in the bucket     */
};

struct _sc_cluster_t {
    sc_cluster_opts_t opts;
    char node[SC_NAME_MAX + 1];
    uint64_t boot;
    char subject[sizeof S_NODE_PREFIX + SC_NAME_MAX];
    char nkey_pub[S_NKEY_PUB_LEN + 1];  /* U..., from opts.nkey's seed */
    natsOptions *nopts;
    natsConnection *nc;
    natsSubscription *sub_node, *sub_all;
    /* the NATS thread's queue to the core */
    pthread_mutex_t lock;
    s_item_t *head, *tail;
    size_t queued;              /* bytes                                 */
    uint64_t dropped;
    bool reconnected;           /* since the core's thread last looked   */
    uint64_t reconnects;        /* since the start                       */
    bool closing;               /* sc_cluster_destroy under way...       */
    bool closed;                /* ...and NATS's last callback is done   */
    pthread_cond_t closed_cond;
    int pipe[2];
    /* the core's thread only */
    zhashx_t *local;            /* name -> s_entry_t                     */
    zhashx_t *remote;           /* name -> s_entry_t                     */
    zhashx_t *nodes;            /* name -> s_node_t                      */
    zhashx_t *given_up;         /* name -> s_given_up_t                  */
    zlistx_t *events;           /* sc_node_msg_t for the core            */
    uint8_t *current;           /* the message last handed out           */
    sc_node_msg_t *current_event;
    s_item_t *held;             /* a message waiting behind its events   */
    int64_t now, last_beat;
    int64_t twin_said;          /* when a broker with our name was logged */
    /* what each cap refused since it was last logged, and when */
    uint64_t nodes_refused;     /* messages from nodes past S_NODES_MAX  */
    uint64_t users_refused;     /* UPs past S_REMOTE_MAX                 */
    int64_t nodes_said, users_said;
    /* the buckets (sc_cluster_kv_open) */
    jsCtx *js;
    kvStore *kv_invites, *kv_users;
    kvWatcher *watcher;
    pthread_t watch_thread;
    pthread_cond_t watch_cond;
    s_user_item_t *users_head, *users_tail;     /* under lock            */
    bool down;                  /* NATS lost: nothing expires meanwhile  */
    bool watching;              /* the thread runs                       */
    bool watch_loaded;          /* under lock: the first entries are queued */
    struct {                    /* under lock: sc_cluster_kv_fault's      */
        char call[8];
        char bucket[32];
        unsigned skip;
        bool made;
    } faults[4];
};

void
sc_cluster_opts_default (sc_cluster_opts_t *opts)
{
    memset (opts, 0, sizeof *opts);
    opts->beat_ms = 1000;
    opts->dead_ms = 5000;
    opts->connect_ms = 5000;
    opts->replicas = 1;
}

static int64_t
s_wall_ms (void)
{
    struct timespec ts;
    clock_gettime (CLOCK_REALTIME, &ts);
    return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void
s_free_destructor (void **item)
{
    free (*item);
    *item = NULL;
}

/* ---- The NATS thread ------------------------------------------------------ */

static void
s_on_msg (natsConnection *nc, natsSubscription *sub, natsMsg *msg, void *closure)
{
    (void) nc;
    (void) sub;
    sc_cluster_t *self = closure;
    int len = natsMsg_GetDataLength (msg);
    s_item_t *item = len > 0 ? malloc (sizeof *item + (size_t) len) : NULL;
    if (item) {
        item->next = NULL;
        item->len = (size_t) len;
        memcpy (item->data, natsMsg_GetData (msg), (size_t) len);
    }
    natsMsg_Destroy (msg);
    if (!item)
        return;
    pthread_mutex_lock (&self->lock);
    if (self->closing)
        free (item);
    else
    if (self->queued + item->len > S_QUEUE_MAX) {
        self->dropped++;
        free (item);
    }
    else {
        bool was_empty = !self->head;
        if (self->tail)
            self->tail->next = item;
        else
            self->head = item;
        self->tail = item;
        self->queued += item->len;
        if (was_empty && write (self->pipe[1], "x", 1) < 0 && errno != EAGAIN)
            sc_log (SC_LOG_ERROR, "cluster: cannot wake the broker: %s", strerror (errno));
    }
    pthread_mutex_unlock (&self->lock);
}

/* The connection to a NATS server was lost, and found again on one of
   them (maybe another): said in the log, and the core's thread resyncs. */
static void
s_on_disconnected (natsConnection *nc, void *closure)
{
    (void) nc;
    sc_cluster_t *self = closure;
    pthread_mutex_lock (&self->lock);
    bool closing = self->closing;
    pthread_mutex_unlock (&self->lock);
    if (!closing)
        sc_log (SC_LOG_WARNING, "cluster: disconnected from NATS, reconnecting");
}

static void
s_on_reconnected (natsConnection *nc, void *closure)
{
    sc_cluster_t *self = closure;
    char url[256] = "";
    if (natsConnection_GetConnectedUrl (nc, url, sizeof url) != NATS_OK)
        snprintf (url, sizeof url, "a NATS server");
    sc_log (SC_LOG_INFO, "cluster: reconnected to NATS at %s", url);
    pthread_mutex_lock (&self->lock);
    self->reconnected = true;
    self->reconnects++;
    pthread_mutex_unlock (&self->lock);
}

/* NATS's last word on the connection: after it, no callback comes. */
static void
s_on_closed (natsConnection *nc, void *closure)
{
    (void) nc;
    sc_cluster_t *self = closure;
    pthread_mutex_lock (&self->lock);
    self->closed = true;
    pthread_cond_signal (&self->closed_cond);
    pthread_mutex_unlock (&self->lock);
}

static void
s_on_error (natsConnection *nc, natsSubscription *sub, natsStatus err, void *closure)
{
    (void) nc;
    (void) sub;
    (void) closure;
    sc_log (SC_LOG_WARNING, "cluster: NATS: %s", natsStatus_GetText (err));
}

/* The core's thread: the next raw message, or NULL. */
static s_item_t *
s_pop (sc_cluster_t *self)
{
    pthread_mutex_lock (&self->lock);
    s_item_t *item = self->head;
    if (item) {
        self->head = item->next;
        if (!self->head)
            self->tail = NULL;
        self->queued -= item->len;
    }
    if (!self->head && !self->users_head) {
        char buf[64];
        while (read (self->pipe[0], buf, sizeof buf) > 0)
            ;
    }
    pthread_mutex_unlock (&self->lock);
    return item;
}

/* ---- A NATS user nkey ------------------------------------------------------- */

/* NATS's encoding: base32 (RFC 4648, no padding) of a prefix, the key and
   a CRC16 (XMODEM) little-endian. A seed's two prefix bytes hold the seed
   prefix (18 << 3) and the key type (a user: 20 << 3) spread over them. */

static const char s_b32[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

static uint16_t
s_crc16 (const uint8_t *data, size_t len)
{
    uint16_t crc = 0;
    for (size_t i = 0; i < len; i++) {
        crc ^= (uint16_t) (data[i] << 8);
        for (int bit = 0; bit < 8; bit++)
            crc = (crc & 0x8000) ? (uint16_t) ((crc << 1) ^ 0x1021) : (uint16_t) (crc << 1);
    }
    return crc;
}

/* text into out (at most max bytes); the length, or -1 if not base32 */
static int
s_b32_decode (const char *text, size_t len, uint8_t *out, size_t max)
{
    uint32_t acc = 0;
    int bits = 0;
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        const char *at = text[i] ? strchr (s_b32, text[i]) : NULL;
        if (!at)
            return -1;
        acc = (acc << 5) | (uint32_t) (at - s_b32);
        bits += 5;
        if (bits >= 8) {
            bits -= 8;
            if (n == max)
                return -1;
            out[n++] = (uint8_t) (acc >> bits);
        }
        acc &= 0xFF;
    }
    return (int) n;
}

static void
s_b32_encode (const uint8_t *data, size_t len, char *out)
{
    uint32_t acc = 0;
    int bits = 0;
    for (size_t i = 0; i < len; i++) {
        acc = (acc << 8) | data[i];
        bits += 8;
        while (bits >= 5) {
            bits -= 5;
            *out++ = s_b32[(acc >> bits) & 31];
        }
        acc &= 0xFF;
    }
    if (bits > 0)
        *out++ = s_b32[(acc << (5 - bits)) & 31];
    *out = 0;
}

/* The public user key (U...) of the seed in path into pub; 0, or -1
   with why. The seed's bytes are wiped. */
static int
s_nkey_public (const char *path, char *pub, char *why, size_t size)
{
    char line[256];
    uint8_t raw[S_NKEY_SEED_RAW];
    bool found = false;
    FILE *file = fopen (path, "r");
    if (!file) {
        snprintf (why, size, "--nats-nkey: cannot read %s", path);
        return -1;
    }
    /* the first line that is neither empty nor a ----- marker */
    while (!found && fgets (line, sizeof line, file)) {
        char *start = line + strspn (line, " \t");
        start[strcspn (start, " \t\r\n")] = 0;
        found = *start && *start != '-';
        if (found && start != line)
            memmove (line, start, strlen (start) + 1);
    }
    bool failed = ferror (file) != 0;
    (void) fclose (file);
    int len = found ? s_b32_decode (line, strlen (line), raw, sizeof raw) : -1;
    int rc = -1;
    if (failed)
        snprintf (why, size, "--nats-nkey: cannot read %s", path);
    else
    if (len != (int) sizeof raw
        || s_crc16 (raw, sizeof raw - 2)
               != (uint16_t) (raw[sizeof raw - 2] | (raw[sizeof raw - 1] << 8))
        || (raw[0] & 0xF8) != S_NKEY_PREFIX_SEED)
        snprintf (why, size, "--nats-nkey: %s holds no nkey seed", path);
    else
    if ((uint8_t) (((raw[0] & 7) << 5) | ((raw[1] & 0xF8) >> 3)) != S_NKEY_PREFIX_USER)
        snprintf (why, size, "--nats-nkey: %s holds no user nkey seed (SU...)", path);
    else {
        EVP_PKEY *key = EVP_PKEY_new_raw_private_key (EVP_PKEY_ED25519, NULL, raw + 2, 32);
        uint8_t pkey[S_NKEY_PUB_RAW];
        size_t klen = 32;
        pkey[0] = S_NKEY_PREFIX_USER;
        if (key && EVP_PKEY_get_raw_public_key (key, pkey + 1, &klen) == 1 && klen == 32) {
            uint16_t crc = s_crc16 (pkey, 33);
            pkey[33] = (uint8_t) (crc & 0xFF);
            pkey[34] = (uint8_t) (crc >> 8);
            s_b32_encode (pkey, sizeof pkey, pub);
            rc = 0;
        }
        else
            snprintf (why, size, "--nats-nkey: cannot derive the public key of %s", path);
        EVP_PKEY_free (key);
    }
    sc_wipe (raw, sizeof raw);
    sc_wipe (line, sizeof line);
    return rc;
}

/* ---- Construction ----------------------------------------------------------- */

static int
s_nats_options (sc_cluster_t *self, char **urls, int count)
{
    const sc_cluster_opts_t *o = &self->opts;
    natsOptions *n = NULL;
    natsStatus st = natsOptions_Create (&n);
    self->nopts = n;
    if (st == NATS_OK) st = natsOptions_SetServers (n, (const char **) urls, count);
    if (st == NATS_OK) st = natsOptions_SetName (n, self->node);
    /* in the order given: the operator spreads the nodes over the servers */
    if (st == NATS_OK) st = natsOptions_SetNoRandomize (n, true);
    if (st == NATS_OK) st = natsOptions_SetTimeout (n, 2000);
    if (st == NATS_OK) st = natsOptions_SetMaxReconnect (n, -1);
    if (st == NATS_OK) st = natsOptions_SetReconnectWait (n, 250);
    if (st == NATS_OK) st = natsOptions_SetReconnectJitter (n, 100, 500);
    if (st == NATS_OK) st = natsOptions_SetPingInterval (n, 2000);
    if (st == NATS_OK) st = natsOptions_SetMaxPingsOut (n, 2);
    if (st == NATS_OK) st = natsOptions_SetNoEcho (n, true);
    if (st == NATS_OK) st = natsOptions_UseGlobalMessageDelivery (n, true);
    if (st == NATS_OK) st = natsOptions_SetReconnectBufSize (n, 64 * 1024 * 1024);
    if (st == NATS_OK) st = natsOptions_SetErrorHandler (n, s_on_error, self);
    if (st == NATS_OK) st = natsOptions_SetDisconnectedCB (n, s_on_disconnected, self);
    if (st == NATS_OK) st = natsOptions_SetReconnectedCB (n, s_on_reconnected, self);
    if (st == NATS_OK) st = natsOptions_SetClosedCB (n, s_on_closed, self);
    if (st == NATS_OK && o->user)
        st = natsOptions_SetUserInfo (n, o->user, o->password ? o->password : "");
    if (st == NATS_OK && o->creds)
        st = natsOptions_SetUserCredentialsFromFiles (n, o->creds, NULL);
    if (st == NATS_OK && o->nkey)
        st = natsOptions_SetNKeyFromSeed (n, self->nkey_pub, o->nkey);
    if (st == NATS_OK && (o->tls_ca || o->tls_cert))
        st = natsOptions_SetSecure (n, true);
    if (st == NATS_OK && o->tls_ca)
        st = natsOptions_LoadCATrustedCertificates (n, o->tls_ca);
    if (st == NATS_OK && o->tls_cert)
        st = natsOptions_LoadCertificatesChain (n, o->tls_cert, o->tls_key);
    return st == NATS_OK ? 0 : (int) st;
}

static int s_publish (sc_cluster_t *self, const char *subject, sc_node_msg_t *msg);
static void s_kv_close (sc_cluster_t *self);
static s_user_item_t *s_user_pop (sc_cluster_t *self);

sc_cluster_t *
sc_cluster_new (const sc_cluster_opts_t *opts, char *why, size_t size)
{
    snprintf (why, size, "out of memory");
    if (!opts->urls || !opts->node || !sc_name_valid (opts->node, strlen (opts->node))) {
        snprintf (why, size, "the node name must be 1 to %d of a-z, 0-9, _ and -",
                  SC_NAME_MAX);
        return NULL;
    }
    sc_cluster_t *self = calloc (1, sizeof *self);
    if (!self)
        return NULL;
    self->opts = *opts;
    self->pipe[0] = self->pipe[1] = -1;
    strcpy (self->node, opts->node);
    snprintf (self->subject, sizeof self->subject, "%s%s", S_NODE_PREFIX, self->node);
    pthread_mutex_init (&self->lock, NULL);
    pthread_cond_init (&self->closed_cond, NULL);
    pthread_cond_init (&self->watch_cond, NULL);
    self->local = zhashx_new ();
    self->remote = zhashx_new ();
    self->nodes = zhashx_new ();
    self->given_up = zhashx_new ();
    self->events = zlistx_new ();
    if (!self->local || !self->remote || !self->nodes || !self->given_up || !self->events
        || pipe (self->pipe) || sc_random ((uint8_t *) &self->boot, sizeof self->boot)) {
        sc_cluster_destroy (&self);
        return NULL;
    }
    fcntl (self->pipe[0], F_SETFL, O_NONBLOCK);
    fcntl (self->pipe[1], F_SETFL, O_NONBLOCK);
    zhashx_set_destructor (self->local, s_free_destructor);
    zhashx_set_destructor (self->remote, s_free_destructor);
    zhashx_set_destructor (self->nodes, s_free_destructor);
    zhashx_set_destructor (self->given_up, s_free_destructor);
    zlistx_set_destructor (self->events, s_free_destructor);

    char *list = strdup (opts->urls);
    char *urls[S_URLS_MAX];
    int count = 0;
    for (char *save = NULL, *tok = list ? strtok_r (list, ",", &save) : NULL;
         tok && count < S_URLS_MAX; tok = strtok_r (NULL, ",", &save))
        if (*tok)
            urls[count++] = tok;
    int st = -1;
    if (count == 0)
        snprintf (why, size, "--cluster takes a list of nats://host:port URLs");
    else
    /* a bad seed file: why says so */
    if (!opts->nkey || s_nkey_public (opts->nkey, self->nkey_pub, why, size) == 0) {
        st = s_nats_options (self, urls, count);
        if (st)
            snprintf (why, size, "cannot set up NATS for %s: %s", opts->urls,
                      natsStatus_GetText ((natsStatus) st));
    }
    free (list);
    if (st) {
        sc_cluster_destroy (&self);
        return NULL;
    }
    int64_t deadline = zclock_mono () + opts->connect_ms;
    natsStatus cst;
    /* servers down or not up yet: tried again until the deadline; a
       refusal (credentials, TLS) would only be refused again */
    while ((cst = natsConnection_Connect (&self->nc, self->nopts)) != NATS_OK
           && (cst == NATS_NO_SERVER || cst == NATS_TIMEOUT || cst == NATS_IO_ERROR)
           && zclock_mono () + 500 < deadline)
        zclock_sleep (500);
    if (cst == NATS_OK && !opts->tool)
        cst = natsConnection_Subscribe (&self->sub_all, self->nc, S_PRESENCE, s_on_msg, self);
    if (cst == NATS_OK && !opts->tool)
        cst = natsConnection_Subscribe (&self->sub_node, self->nc, self->subject, s_on_msg, self);
    if (cst == NATS_OK)
        cst = natsConnection_FlushTimeout (self->nc, 5000);
    if (cst != NATS_OK) {
        snprintf (why, size, "cannot reach NATS at %s: %s", opts->urls,
                  natsStatus_GetText (cst));
        sc_cluster_destroy (&self);
        return NULL;
    }
    self->now = zclock_mono ();
    if (opts->tool)
        return self;
    /* who is online elsewhere: every node answers with a snapshot */
    sc_node_msg_t sync;
    sc_node_msg_init (&sync, SC_NODE_SYNC);
    (void) s_publish (self, S_PRESENCE, &sync);
    return self;
}

void
sc_cluster_destroy (sc_cluster_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    sc_cluster_t *self = *self_p;
    s_kv_close (self);
    if (self->nc && self->sub_node) {
        /* the other nodes need not wait for the silence */
        sc_node_msg_t bye;
        sc_node_msg_init (&bye, SC_NODE_BYE);
        (void) s_publish (self, S_PRESENCE, &bye);
    }
    pthread_mutex_lock (&self->lock);
    self->closing = true;
    pthread_mutex_unlock (&self->lock);
    if (self->nc) {
        /* the subscriptions end first (what they still deliver is
           dropped), then what was published goes out, then NATS says
           the connection is closed: only then is no callback under way
           or to come, and self may go */
        if (natsConnection_DrainTimeout (self->nc, 2000) != NATS_OK)
            natsConnection_Close (self->nc);
        struct timespec until;
        clock_gettime (CLOCK_REALTIME, &until);
        until.tv_sec += 5;
        pthread_mutex_lock (&self->lock);
        while (!self->closed
               && pthread_cond_timedwait (&self->closed_cond, &self->lock, &until) == 0)
            ;
        bool closed = self->closed;
        pthread_mutex_unlock (&self->lock);
        if (!closed) {
            sc_log (SC_LOG_WARNING, "cluster: NATS did not close within 5 s");
            *self_p = NULL;     /* left to the exit rather than freed under it */
            return;
        }
    }
    natsSubscription_Destroy (self->sub_all);
    natsSubscription_Destroy (self->sub_node);
    natsConnection_Destroy (self->nc);
    natsOptions_Destroy (self->nopts);
    s_item_t *item;
    while ((item = self->head)) {
        self->head = item->next;
        free (item);
    }
    free (self->current);
    free (self->current_event);
    free (self->held);
    s_user_item_t *user;
    while ((user = self->users_head)) {
        self->users_head = user->next;
        free (user);
    }
    zhashx_destroy (&self->local);
    zhashx_destroy (&self->remote);
    zhashx_destroy (&self->nodes);
    zhashx_destroy (&self->given_up);
    zlistx_destroy (&self->events);
    if (self->pipe[0] >= 0)
        close (self->pipe[0]);
    if (self->pipe[1] >= 0)
        close (self->pipe[1]);
    pthread_mutex_destroy (&self->lock);
    pthread_cond_destroy (&self->closed_cond);
    pthread_cond_destroy (&self->watch_cond);
    free (self);
    *self_p = NULL;
    /* nats_Close is not called: with TLS set up it frees OpenSSL's
       state, which the broker's own OpenSSL use and its exit handlers
       still need (a crash at exit) */
}

const char *
sc_cluster_node (const sc_cluster_t *self)
{
    return self->node;
}

int
sc_cluster_fd (const sc_cluster_t *self)
{
    return self->pipe[0];
}

/* ---- Publishing ------------------------------------------------------------- */

static int
s_publish (sc_cluster_t *self, const char *subject, sc_node_msg_t *msg)
{
    strcpy (msg->node, self->node);
    msg->boot = self->boot;
    uint8_t *buf = NULL;
    size_t len = 0;
    if (sc_node_msg_encode (msg, &buf, &len))
        return -1;
    natsStatus st = natsConnection_Publish (self->nc, subject, buf, (int) len);
    free (buf);
    if (st != NATS_OK) {
        sc_log (SC_LOG_WARNING, "cluster: cannot publish on %s: %s", subject,
                natsStatus_GetText (st));
        return -1;
    }
    return 0;
}

int
sc_cluster_send (sc_cluster_t *self, const char *node, sc_node_msg_t *msg)
{
    char subject[sizeof S_NODE_PREFIX + SC_NAME_MAX];
    snprintf (subject, sizeof subject, "%s%s", S_NODE_PREFIX, node);
    return s_publish (self, subject, msg);
}

static void
s_publish_up (sc_cluster_t *self, const char *subject, const char *name, const s_entry_t *e)
{
    sc_node_msg_t msg;
    sc_node_msg_init (&msg, SC_NODE_UP);
    strcpy (msg.from, name);
    msg.from_sid = e->sid;
    msg.since = e->since;
    (void) s_publish (self, subject, &msg);
}

void
sc_cluster_online (sc_cluster_t *self, const char *name, uint64_t sid)
{
    s_entry_t *e = (s_entry_t *) zhashx_lookup (self->local, name);
    if (!e) {
        e = calloc (1, sizeof *e);
        if (!e || zhashx_insert (self->local, name, e)) {
            free (e);
            sc_log (SC_LOG_ERROR, "cluster: out of memory");
            return;
        }
    }
    e->sid = sid;
    /* strictly later than any login here before it, and than the login
       another node has (its clock may be ahead): that one is replaced */
    int64_t now = s_wall_ms ();
    s_entry_t *there = (s_entry_t *) zhashx_lookup (self->remote, name);
    int64_t after = there && there->since > e->since ? there->since : e->since;
    e->since = now > after ? now : after + 1;
    s_publish_up (self, S_PRESENCE, name, e);
}

void
sc_cluster_offline (sc_cluster_t *self, const char *name, uint64_t sid)
{
    s_entry_t *e = (s_entry_t *) zhashx_lookup (self->local, name);
    if (!e || e->sid != sid)
        return;
    zhashx_delete (self->local, name);
    sc_node_msg_t msg;
    sc_node_msg_init (&msg, SC_NODE_DOWN);
    strcpy (msg.from, name);
    msg.from_sid = sid;
    (void) s_publish (self, S_PRESENCE, &msg);
}

int
sc_cluster_locate (sc_cluster_t *self, const char *name, const char **node, uint64_t *sid)
{
    s_entry_t *e = (s_entry_t *) zhashx_lookup (self->remote, name);
    if (!e)
        return -1;
    *node = e->node->name;
    *sid = e->sid;
    return 0;
}

void
sc_cluster_names (sc_cluster_t *self, sc_cluster_name_fn *fn, void *arg)
{
    for (void *e = zhashx_first (self->remote); e; e = zhashx_next (self->remote))
        fn (arg, (const char *) zhashx_cursor (self->remote));
}

size_t
sc_cluster_remote_users (const sc_cluster_t *self)
{
    return zhashx_size (self->remote);
}

bool
sc_cluster_connected (const sc_cluster_t *self)
{
    return natsConnection_Status (self->nc) == NATS_CONN_STATUS_CONNECTED;
}

size_t
sc_cluster_nodes (const sc_cluster_t *self)
{
    return zhashx_size (self->nodes);
}

uint64_t
sc_cluster_reconnects (sc_cluster_t *self)
{
    pthread_mutex_lock (&self->lock);
    uint64_t n = self->reconnects;
    pthread_mutex_unlock (&self->lock);
    return n;
}

/* ---- Presence ----------------------------------------------------------------- */

static void
s_event (sc_cluster_t *self, uint8_t kind, const char *node, const char *from, uint64_t sid)
{
    sc_node_msg_t *ev = calloc (1, sizeof *ev);
    if (!ev || !zlistx_add_end (self->events, ev)) {
        free (ev);
        sc_log (SC_LOG_ERROR, "cluster: out of memory");
        return;
    }
    ev->kind = kind;
    snprintf (ev->node, sizeof ev->node, "%s", node);
    snprintf (ev->from, sizeof ev->from, "%s", from);
    ev->from_sid = sid;
}

static void
s_remote_delete (sc_cluster_t *self, const char *name)
{
    s_entry_t *e = (s_entry_t *) zhashx_lookup (self->remote, name);
    if (e) {
        if (e->node->users > 0)
            e->node->users--;
        zhashx_delete (self->remote, name);
    }
}

/* Every user of node leaves the table (those with snap below keep_snap,
   or all with UINT64_MAX). */
static void
s_node_sweep (sc_cluster_t *self, const s_node_t *node, uint64_t keep_snap, bool all)
{
    zlistx_t *gone = zlistx_new ();
    if (!gone)
        return;
    for (s_entry_t *e = (s_entry_t *) zhashx_first (self->remote); e;
         e = (s_entry_t *) zhashx_next (self->remote))
        if (e->node == node && (all || e->snap != keep_snap))
            zlistx_add_end (gone, (void *) zhashx_cursor (self->remote));
    for (const char *name = (const char *) zlistx_first (gone); name;
         name = (const char *) zlistx_next (gone)) {
        char copy[SC_NAME_MAX + 1];
        snprintf (copy, sizeof copy, "%s", name);   /* the key goes with it */
        s_remote_delete (self, copy);
    }
    zlistx_destroy (&gone);
}

/* A node is gone (silent, or back with another boot): its users with it,
   and the core unlinks every chat with them. */
static void
s_node_gone (sc_cluster_t *self, s_node_t *node, const char *why)
{
    sc_log (SC_LOG_WARNING, "cluster: node %s gone (%s): %zu users with it", node->name, why,
            node->users);
    s_node_sweep (self, node, 0, true);
    s_event (self, SC_CLUSTER_NODE_GONE, node->name, "", 0);
}

static void
s_ask_snapshot (sc_cluster_t *self, s_node_t *node)
{
    sc_node_msg_t sync;
    sc_node_msg_init (&sync, SC_NODE_SYNC);
    (void) sc_cluster_send (self, node->name, &sync);
}

static void
s_send_snapshot (sc_cluster_t *self, const char *to)
{
    char subject[sizeof S_NODE_PREFIX + SC_NAME_MAX];
    snprintf (subject, sizeof subject, "%s%s", S_NODE_PREFIX, to);
    sc_node_msg_t msg;
    sc_node_msg_init (&msg, SC_NODE_SNAP_BEGIN);
    if (s_publish (self, subject, &msg))
        return;
    for (s_entry_t *e = (s_entry_t *) zhashx_first (self->local); e;
         e = (s_entry_t *) zhashx_next (self->local))
        s_publish_up (self, subject, (const char *) zhashx_cursor (self->local), e);
    sc_node_msg_init (&msg, SC_NODE_SNAP_END);
    msg.code = (uint32_t) zhashx_size (self->local);
    (void) s_publish (self, subject, &msg);
}

static s_node_t *
s_node_seen (sc_cluster_t *self, const sc_node_msg_t *msg)
{
    s_node_t *node = (s_node_t *) zhashx_lookup (self->nodes, msg->node);
    if (!node && zhashx_size (self->nodes) >= S_NODES_MAX) {
        self->nodes_refused++;
        return NULL;
    }
    if (node && node->boot != msg->boot) {
        s_node_gone (self, node, "restarted");
        node->boot = msg->boot;
        node->snap_gen = 0;
        node->mismatch = 0;
        if (msg->kind != SC_NODE_SNAP_BEGIN && msg->kind != SC_NODE_UP)
            s_ask_snapshot (self, node);
    }
    if (!node) {
        node = calloc (1, sizeof *node);
        if (!node || zhashx_insert (self->nodes, msg->node, node)) {
            free (node);
            return NULL;
        }
        strcpy (node->name, msg->node);
        node->boot = msg->boot;
        sc_log (SC_LOG_INFO, "cluster: node %s joined", node->name);
        /* back from a silence we gave it up for (frozen, or cut off from
           NATS): its users' peers here were told `lost`, so it must end
           its side of those chats too */
        const s_given_up_t *given = (const s_given_up_t *) zhashx_lookup (self->given_up,
                                                                           node->name);
        if (given && given->boot == node->boot) {
            sc_log (SC_LOG_WARNING, "cluster: node %s is back after we gave it up: told it",
                    node->name);
            sc_node_msg_t gave_up;
            sc_node_msg_init (&gave_up, SC_NODE_GAVE_UP);
            (void) sc_cluster_send (self, node->name, &gave_up);
        }
        zhashx_delete (self->given_up, node->name);
        if (msg->kind != SC_NODE_SNAP_BEGIN)
            s_ask_snapshot (self, node);
    }
    node->last_seen = self->now;
    return node;
}

static void
s_on_up (sc_cluster_t *self, s_node_t *node, const sc_node_msg_t *msg)
{
    s_entry_t *mine = (s_entry_t *) zhashx_lookup (self->local, msg->from);
    if (mine && (mine->since < msg->since
                 || (mine->since == msg->since && strcmp (self->node, msg->node) < 0)))
        s_event (self, SC_CLUSTER_REPLACED, node->name, msg->from, mine->sid);
    s_entry_t *e = (s_entry_t *) zhashx_lookup (self->remote, msg->from);
    if (e && e->since > msg->since)
        return;                 /* an older login than the one we know */
    if (!e) {
        if (zhashx_size (self->remote) >= S_REMOTE_MAX) {
            self->users_refused++;
            return;
        }
        e = calloc (1, sizeof *e);
        if (!e || zhashx_insert (self->remote, msg->from, e)) {
            free (e);
            return;
        }
    }
    else
    if (e->node->users > 0)
        e->node->users--;
    e->node = node;
    node->users++;
    e->sid = msg->from_sid;
    e->since = msg->since;
    e->snap = node->snap_gen;
}

static void
s_on_down (sc_cluster_t *self, const s_node_t *node, const sc_node_msg_t *msg)
{
    s_entry_t *e = (s_entry_t *) zhashx_lookup (self->remote, msg->from);
    if (e && e->node == node && e->sid == msg->from_sid)
        s_remote_delete (self, msg->from);
}

static void
s_on_beat (sc_cluster_t *self, s_node_t *node, const sc_node_msg_t *msg)
{
    node->beat_count = msg->code;
    if (node->beat_count == node->users)
        node->mismatch = 0;
    else
    if (++node->mismatch >= 2) {
        /* something was missed: ask again */
        sc_log (SC_LOG_DEBUG, "cluster: node %s has %u users, we know %zu: snapshot",
                node->name, msg->code, node->users);
        node->mismatch = 0;
        s_ask_snapshot (self, node);
    }
}

/* A presence message is handled here (0); anything else is the core's (1). */
static int
s_on_message (sc_cluster_t *self, const sc_node_msg_t *msg)
{
    if (streq (msg->node, self->node)) {
        /* no echo: another broker has this node's name */
        if (msg->boot != self->boot && self->now - self->twin_said >= 10000) {
            sc_log (SC_LOG_ERROR, "cluster: another broker is also node %s: every node "
                    "needs a name of its own (--node)", self->node);
            self->twin_said = self->now;
        }
        return 0;
    }
    s_node_t *node = s_node_seen (self, msg);
    if (!node)
        return 0;
    switch (msg->kind) {
        case SC_NODE_UP:
            if (*msg->from)
                s_on_up (self, node, msg);
            return 0;
        case SC_NODE_DOWN:
            s_on_down (self, node, msg);
            return 0;
        case SC_NODE_BEAT:
            s_on_beat (self, node, msg);
            return 0;
        case SC_NODE_SYNC:
            s_send_snapshot (self, msg->node);
            return 0;
        case SC_NODE_GAVE_UP:
            /* it ended its side of our chats: we end ours, and learn its
               users again */
            s_node_gone (self, node, "it had given us up");
            s_ask_snapshot (self, node);
            return 0;
        case SC_NODE_BYE:
            s_node_gone (self, node, "stopped");
            zhashx_delete (self->nodes, node->name);
            return 0;
        case SC_NODE_SNAP_BEGIN:
            node->snap_gen++;
            return 0;
        case SC_NODE_SNAP_END:
            s_node_sweep (self, node, node->snap_gen, false);
            node->mismatch = 0;
            return 0;
        default:
            return *msg->to ? 1 : 0;
    }
}

int
sc_cluster_next (sc_cluster_t *self, sc_node_msg_t *msg, int64_t now_ms)
{
    self->now = now_ms;
    free (self->current);
    self->current = NULL;
    free (self->current_event);
    self->current_event = NULL;
    while (true) {
        sc_node_msg_t *ev = (sc_node_msg_t *) zlistx_first (self->events);
        if (ev) {
            zlistx_detach (self->events, NULL);
            self->current_event = ev;
            *msg = *ev;
            return 1;
        }
        s_user_item_t *user = self->held ? NULL : s_user_pop (self);
        if (user) {
            sc_node_msg_t *uev = calloc (1, sizeof *uev);
            if (uev) {
                uev->kind = SC_CLUSTER_USER;
                snprintf (uev->node, sizeof uev->node, "%s", self->node);
                snprintf (uev->from, sizeof uev->from, "%s", user->name);
                uev->has_key = user->has_key;
                uev->from_sid = user->rev;
                memcpy (uev->key, user->key, sizeof uev->key);
                self->current_event = uev;
                *msg = *uev;
            }
            else
                sc_log (SC_LOG_ERROR, "cluster: out of memory");
            free (user);
            if (uev)
                return 1;
            continue;
        }
        if (self->held) {
            s_item_t *held = self->held;
            self->held = NULL;
            if (sc_node_msg_decode (held->data, held->len, msg) == 0) {
                self->current = (uint8_t *) held;
                return 1;
            }
            free (held);
        }
        s_item_t *item = s_pop (self);
        if (!item)
            return 0;
        int rc = sc_node_msg_decode (item->data, item->len, msg);
        if (rc) {
            sc_log (SC_LOG_WARNING, "cluster: dropped a malformed message: %s",
                    sc_codec_strerror (rc));
            free (item);
            continue;
        }
        if (s_on_message (self, msg) == 0) {
            free (item);
            continue;
        }
        if (zlistx_size (self->events) > 0) {
            self->held = item;      /* the events it caused go first */
            continue;
        }
        self->current = (uint8_t *) item;   /* msg->data points into it */
        return 1;
    }
}

/* A node given up is remembered for S_GIVEN_UP_DEADS silences: long
   enough to tell it so when it comes back from a freeze or a cut from
   NATS (docs/PROTOCOL.md section 12), not for ever. */
static void
s_given_up_expire (sc_cluster_t *self, int64_t now_ms)
{
    int64_t keep = (int64_t) S_GIVEN_UP_DEADS * self->opts.dead_ms;
    zlistx_t *expired = NULL;
    for (s_given_up_t *given = (s_given_up_t *) zhashx_first (self->given_up); given;
         given = (s_given_up_t *) zhashx_next (self->given_up))
        if (now_ms - given->at > keep) {
            if (!expired)
                expired = zlistx_new ();
            if (expired)
                zlistx_add_end (expired, (void *) zhashx_cursor (self->given_up));
        }
    for (const char *name = expired ? (const char *) zlistx_first (expired) : NULL; name;
         name = (const char *) zlistx_next (expired)) {
        char copy[SC_NAME_MAX + 1];
        snprintf (copy, sizeof copy, "%s", name);   /* the key goes with it */
        zhashx_delete (self->given_up, copy);
    }
    zlistx_destroy (&expired);
}

/* Whether what a cap refused (count) is to be said now: at most every
   S_SAY_MS, so that a flood of forged presence does not flood the log. */
static bool
s_say_now (const uint64_t *count, int64_t *said, int64_t now_ms)
{
    if (!*count || (*said && now_ms - *said < S_SAY_MS))
        return false;
    *said = now_ms;
    return true;
}

static void
s_say_refused (sc_cluster_t *self, int64_t now_ms)
{
    if (s_say_now (&self->nodes_refused, &self->nodes_said, now_ms)) {
        sc_log (SC_LOG_ERROR, "cluster: %llu messages from new nodes dropped: %d other "
                "nodes known already, the most", (unsigned long long) self->nodes_refused,
                S_NODES_MAX);
        self->nodes_refused = 0;
    }
    if (s_say_now (&self->users_refused, &self->users_said, now_ms)) {
        sc_log (SC_LOG_ERROR, "cluster: %llu users online on other nodes not noted: %d "
                "known already, the most", (unsigned long long) self->users_refused,
                S_REMOTE_MAX);
        self->users_refused = 0;
    }
}

void
sc_cluster_tick (sc_cluster_t *self, int64_t now_ms)
{
    self->now = now_ms;
    pthread_mutex_lock (&self->lock);
    bool reconnected = self->reconnected;
    self->reconnected = false;
    pthread_mutex_unlock (&self->lock);
    if (natsConnection_Status (self->nc) != NATS_CONN_STATUS_CONNECTED) {
        self->down = true;
        return;
    }
    if (self->down || reconnected) {
        /* what was missed meanwhile: nobody is judged on the silence,
           and every node sends its users again */
        self->down = false;
        for (s_node_t *node = (s_node_t *) zhashx_first (self->nodes); node;
             node = (s_node_t *) zhashx_next (self->nodes))
            node->last_seen = now_ms;
        sc_node_msg_t sync;
        sc_node_msg_init (&sync, SC_NODE_SYNC);
        (void) s_publish (self, S_PRESENCE, &sync);
    }
    if (now_ms - self->last_beat >= self->opts.beat_ms) {
        sc_node_msg_t beat;
        sc_node_msg_init (&beat, SC_NODE_BEAT);
        beat.code = (uint32_t) zhashx_size (self->local);
        (void) s_publish (self, S_PRESENCE, &beat);
        self->last_beat = now_ms;
    }
    zlistx_t *gone = NULL;
    for (s_node_t *node = (s_node_t *) zhashx_first (self->nodes); node;
         node = (s_node_t *) zhashx_next (self->nodes))
        if (now_ms - node->last_seen > self->opts.dead_ms) {
            if (!gone)
                gone = zlistx_new ();
            if (gone)
                zlistx_add_end (gone, node);
        }
    for (s_node_t *node = gone ? (s_node_t *) zlistx_first (gone) : NULL; node;
         node = (s_node_t *) zlistx_next (gone)) {
        s_node_gone (self, node, "silent");
        s_given_up_t *given = malloc (sizeof *given);
        if (given) {
            given->boot = node->boot;
            given->at = now_ms;
            if (zhashx_insert (self->given_up, node->name, given))
                zhashx_update (self->given_up, node->name, given);
        }
        zhashx_delete (self->nodes, node->name);
    }
    zlistx_destroy (&gone);
    s_given_up_expire (self, now_ms);
    s_say_refused (self, now_ms);
    pthread_mutex_lock (&self->lock);
    uint64_t dropped = self->dropped;
    self->dropped = 0;
    pthread_mutex_unlock (&self->lock);
    if (dropped)
        sc_log (SC_LOG_ERROR, "cluster: %llu messages dropped: the broker is too slow",
                (unsigned long long) dropped);
}

/* ---- The buckets: invitations and users (section 12) ----------------------- */

#define S_KV_WAIT_MS    2000    /* each JetStream call, at most           */
#define S_KV_READY_MS   10000   /* JetStream not ready yet: retried for   */

/* The last NATS error of this thread, as one line. */
static void
s_kv_why (natsStatus st, char *why, size_t size)
{
    natsStatus last = NATS_OK;
    const char *text = nats_GetLastError (&last);
    if (!text || !*text)
        text = natsStatus_GetText (st);
    snprintf (why, size, "%s", text);
    for (char *c = why; *c; c++)
        if (*c == '\n' || *c == '\r')
            *c = ' ';
}

static kvStore *
s_kv_store (sc_cluster_t *self, const char *bucket)
{
    return streq (bucket, SC_CLUSTER_USERS) ? self->kv_users : self->kv_invites;
}

/* The bucket, or made (another node may make it at the same time). */
static natsStatus
s_kv_bucket (sc_cluster_t *self, const char *bucket, kvStore **kv)
{
    natsStatus st = js_KeyValue (kv, self->js, bucket);
    if (st != NATS_NOT_FOUND)
        return st;
    kvConfig cfg;
    kvConfig_Init (&cfg);
    cfg.Bucket = bucket;
    cfg.History = 1;
    cfg.Replicas = self->opts.replicas > 0 ? self->opts.replicas : 1;
    cfg.StorageType = js_FileStorage;
    st = js_CreateKeyValue (kv, self->js, &cfg);
    if (st != NATS_OK && js_KeyValue (kv, self->js, bucket) == NATS_OK)
        st = NATS_OK;
    return st;
}

/* The watcher's thread: each change of secchat-users into the queue. */
static void
s_user_push (sc_cluster_t *self, kvEntry *entry)
{
    const char *name = kvEntry_Key (entry);
    s_user_item_t *item = calloc (1, sizeof *item);
    if (!item) {
        sc_log (SC_LOG_ERROR, "cluster: out of memory");
        return;
    }
    snprintf (item->name, sizeof item->name, "%s", name ? name : "");
    item->rev = kvEntry_Revision (entry);
    if (!name || !sc_name_valid (name, strlen (name))) {
        sc_log (SC_LOG_WARNING, "cluster: %s: a key that is no user name: ignored",
                SC_CLUSTER_USERS);
        free (item);
        return;
    }
    if (kvEntry_Operation (entry) == kvOp_Put) {
        if (kvEntry_ValueLen (entry) == SC_NODE_KEY_LEN) {
            item->has_key = true;
            memcpy (item->key, kvEntry_Value (entry), SC_NODE_KEY_LEN);
        }
        else
            sc_log (SC_LOG_WARNING, "cluster: %s: %s is no 32-byte public key: "
                    "taken as removed", SC_CLUSTER_USERS, item->name);
    }
    pthread_mutex_lock (&self->lock);
    bool was_empty = !self->users_head;
    if (self->users_tail)
        self->users_tail->next = item;
    else
        self->users_head = item;
    self->users_tail = item;
    if (was_empty && write (self->pipe[1], "x", 1) < 0 && errno != EAGAIN)
        sc_log (SC_LOG_ERROR, "cluster: cannot wake the broker: %s", strerror (errno));
    pthread_mutex_unlock (&self->lock);
}

static void *
s_watch_run (void *arg)
{
    sc_cluster_t *self = arg;
    sigset_t all;
    sigfillset (&all);
    pthread_sigmask (SIG_BLOCK, &all, NULL);
    uint64_t failed = 0;                /* errors since the last line */
    int64_t said = 0;
    while (true) {
        kvEntry *entry = NULL;
        natsStatus st = kvWatcher_Next (&entry, self->watcher, 1000);
        if (st == NATS_ILLEGAL_STATE)
            break;                      /* stopped */
        if (st != NATS_OK && st != NATS_TIMEOUT) {
            /* said at most every 10 s, with the count since */
            failed++;
            int64_t now = zclock_mono ();
            if (!said || now - said >= S_SAY_MS) {
                char detail[512];
                s_kv_why (st, detail, sizeof detail);
                sc_log (SC_LOG_WARNING, "cluster: %llu errors watching the bucket %s, "
                        "retried every 100 ms: %s", (unsigned long long) failed,
                        SC_CLUSTER_USERS, detail);
                failed = 0;
                said = now;
            }
        }
        if (st == NATS_OK && !entry) {
            /* the entries there were at the start are all queued */
            pthread_mutex_lock (&self->lock);
            self->watch_loaded = true;
            pthread_cond_signal (&self->watch_cond);
            pthread_mutex_unlock (&self->lock);
        }
        else
        if (st == NATS_OK) {
            s_user_push (self, entry);
            kvEntry_Destroy (entry);
        }
        else
        if (st != NATS_TIMEOUT)
            zclock_sleep (100);         /* reconnecting: the watcher resumes */
    }
    nats_ReleaseThreadMemory ();
    return NULL;
}

static s_user_item_t *
s_user_pop (sc_cluster_t *self)
{
    pthread_mutex_lock (&self->lock);
    s_user_item_t *item = self->users_head;
    if (item) {
        self->users_head = item->next;
        if (!self->users_head)
            self->users_tail = NULL;
    }
    pthread_mutex_unlock (&self->lock);
    return item;
}

int
sc_cluster_kv_open (sc_cluster_t *self, bool watch, char *why, size_t size)
{
    jsOptions jo;
    jsOptions_Init (&jo);
    jo.Wait = S_KV_WAIT_MS;
    natsStatus st = self->js ? NATS_OK : natsConnection_JetStream (&self->js, self->nc, &jo);
    char detail[512] = "";
    const char *bucket = SC_CLUSTER_INVITES;
    int64_t deadline = zclock_mono () + self->opts.connect_ms + S_KV_READY_MS;
    while (st == NATS_OK) {
        bucket = SC_CLUSTER_INVITES;
        st = self->kv_invites ? NATS_OK : s_kv_bucket (self, bucket, &self->kv_invites);
        if (st == NATS_OK) {
            bucket = SC_CLUSTER_USERS;
            st = self->kv_users ? NATS_OK : s_kv_bucket (self, bucket, &self->kv_users);
        }
        if (st == NATS_OK)
            break;
        s_kv_why (st, detail, sizeof detail);
        /* no JetStream at all answers at once; a cluster still electing
           its leader answers "temporarily unavailable", or not at all */
        if (st == NATS_NO_RESPONDERS || zclock_mono () + 500 >= deadline)
            break;
        zclock_sleep (500);
        st = NATS_OK;
    }
    if (st != NATS_OK) {
        if (!*detail)
            s_kv_why (st, detail, sizeof detail);
        if (st == NATS_NO_RESPONDERS || strstr (detail, "not enabled"))
            snprintf (why, size, "JetStream must be enabled on the NATS servers "
                      "(nats-server -js, or a jetstream block in its configuration and "
                      "jetstream: enabled in the brokers' account): cannot open the bucket "
                      "%s at %s: %s", bucket, self->opts.urls, detail);
        else
            snprintf (why, size, "cannot open the bucket %s at %s (is JetStream ready on "
                      "the NATS servers?): %s", bucket, self->opts.urls, detail);
        return -1;
    }
    if (!watch || self->watching)
        return 0;
    kvWatchOptions wo;
    kvWatchOptions_Init (&wo);
    st = kvStore_WatchAll (&self->watcher, self->kv_users, &wo);
    if (st != NATS_OK) {
        s_kv_why (st, detail, sizeof detail);
        snprintf (why, size, "cannot watch the bucket %s at %s: %s", SC_CLUSTER_USERS,
                  self->opts.urls, detail);
        return -1;
    }
    int err = pthread_create (&self->watch_thread, NULL, s_watch_run, self);
    if (err) {
        snprintf (why, size, "cannot start a thread: %s", strerror (err));
        return -1;
    }
    self->watching = true;
    /* the users there are now before any login */
    struct timespec until;
    clock_gettime (CLOCK_REALTIME, &until);
    until.tv_sec += (self->opts.connect_ms + S_KV_READY_MS) / 1000;
    pthread_mutex_lock (&self->lock);
    while (!self->watch_loaded
           && pthread_cond_timedwait (&self->watch_cond, &self->lock, &until) == 0)
        ;
    bool loaded = self->watch_loaded;
    pthread_mutex_unlock (&self->lock);
    if (!loaded) {
        snprintf (why, size, "cannot read the bucket %s at %s: no answer",
                  SC_CLUSTER_USERS, self->opts.urls);
        return -1;
    }
    return 0;
}

static void
s_kv_close (sc_cluster_t *self)
{
    if (self->watching) {
        (void) kvWatcher_Stop (self->watcher);
        pthread_join (self->watch_thread, NULL);
        self->watching = false;
    }
    kvWatcher_Destroy (self->watcher);
    self->watcher = NULL;
    kvStore_Destroy (self->kv_invites);
    kvStore_Destroy (self->kv_users);
    self->kv_invites = self->kv_users = NULL;
    jsCtx_Destroy (self->js);
    self->js = NULL;
}

int
sc_cluster_kv_fault (sc_cluster_t *self, const char *call, const char *bucket,
                     unsigned skip, bool made)
{
    int rc = -1;
    pthread_mutex_lock (&self->lock);
    for (size_t i = 0; i < sizeof self->faults / sizeof self->faults[0]; i++)
        if (!*self->faults[i].call) {
            snprintf (self->faults[i].call, sizeof self->faults[i].call, "%s", call);
            snprintf (self->faults[i].bucket, sizeof self->faults[i].bucket, "%s", bucket);
            self->faults[i].skip = skip;
            self->faults[i].made = made;
            rc = 0;
            break;
        }
    pthread_mutex_unlock (&self->lock);
    return rc;
}

/* A fault of sc_cluster_kv_fault for this call: NATS_TIMEOUT, and
   *made whether the call is made all the same; else NATS_OK. */
static natsStatus
s_kv_fault (sc_cluster_t *self, const char *call, const char *bucket, bool *made)
{
    natsStatus st = NATS_OK;
    *made = true;
    pthread_mutex_lock (&self->lock);
    for (size_t i = 0; i < sizeof self->faults / sizeof self->faults[0]; i++) {
        if (!*self->faults[i].call || !streq (self->faults[i].call, call)
            || !streq (self->faults[i].bucket, bucket))
            continue;
        if (self->faults[i].skip) {
            self->faults[i].skip--;
            continue;
        }
        if (st == NATS_OK) {
            st = NATS_TIMEOUT;
            *made = self->faults[i].made;
            *self->faults[i].call = 0;
        }
    }
    pthread_mutex_unlock (&self->lock);
    return st;
}

/* A call that failed: EIO with why. */
static int
s_kv_failed (natsStatus st, const char *what, const char *key, char *why, size_t size)
{
    char detail[512];
    s_kv_why (st, detail, sizeof detail);
    snprintf (why, size, "cannot %s %s: %s", what, key, detail);
    return SC_CLUSTER_KV_EIO;
}

int
sc_cluster_kv_get (sc_cluster_t *self, const char *bucket, const char *key,
                   uint8_t *value, size_t size, size_t *len, uint64_t *revision,
                   char *why, size_t why_size)
{
    kvStore *kv = s_kv_store (self, bucket);
    kvEntry *entry = NULL;
    bool made;
    natsStatus fault = s_kv_fault (self, "get", bucket, &made);
    natsStatus st = !made ? fault : kv ? kvStore_Get (&entry, kv, key) : NATS_INVALID_ARG;
    if (fault != NATS_OK && made) {
        kvEntry_Destroy (entry);
        entry = NULL;
        st = fault;
    }
    if (st == NATS_NOT_FOUND)
        return SC_CLUSTER_KV_NONE;
    if (st != NATS_OK)
        return s_kv_failed (st, "read", key, why, why_size);
    int rc = SC_CLUSTER_KV_OK;
    int n = kvEntry_ValueLen (entry);
    if (n < 0 || (size_t) n > size) {
        snprintf (why, why_size, "%s in %s is too long", key, bucket);
        rc = SC_CLUSTER_KV_EIO;
    }
    else {
        if (n > 0)
            memcpy (value, kvEntry_Value (entry), (size_t) n);
        *len = (size_t) n;
        if (revision)
            *revision = kvEntry_Revision (entry);
    }
    kvEntry_Destroy (entry);
    return rc;
}

int
sc_cluster_kv_create (sc_cluster_t *self, const char *bucket, const char *key,
                      const uint8_t *value, size_t len, uint64_t *revision,
                      char *why, size_t why_size)
{
    kvStore *kv = s_kv_store (self, bucket);
    uint64_t rev = 0;
    bool made;
    natsStatus fault = s_kv_fault (self, "create", bucket, &made);
    natsStatus st = !made ? fault : kv ? kvStore_Create (&rev, kv, key, value, (int) len)
                                       : NATS_INVALID_ARG;
    if (fault != NATS_OK)
        st = fault;
    if (st == NATS_OK) {
        if (revision)
            *revision = rev;
        return SC_CLUSTER_KV_OK;
    }
    int rc = s_kv_failed (st, "create", key, why, why_size);
    /* refused because the key is there, or NATS is gone? A create that
       got no answer (no refusal from the server: NATS_ERR) may have been
       applied all the same: an entry holding our value is then ours */
    bool unanswered = st != NATS_ERR;
    uint8_t buf[256];
    size_t got = 0;
    char ignored[64];
    int there = sc_cluster_kv_get (self, bucket, key, buf, sizeof buf, &got, &rev,
                                   ignored, sizeof ignored);
    if (there == SC_CLUSTER_KV_OK && unanswered && got == len
        && (len == 0 || memcmp (buf, value, len) == 0)) {
        if (revision)
            *revision = rev;
        return SC_CLUSTER_KV_OK;
    }
    if (there == SC_CLUSTER_KV_OK)
        return SC_CLUSTER_KV_EXISTS;
    return there == SC_CLUSTER_KV_NONE ? SC_CLUSTER_KV_NONE : rc;
}

int
sc_cluster_kv_update (sc_cluster_t *self, const char *bucket, const char *key,
                      const uint8_t *value, size_t len, uint64_t revision,
                      uint64_t *new_revision, char *why, size_t why_size)
{
    kvStore *kv = s_kv_store (self, bucket);
    uint64_t rev = 0;
    bool made;
    natsStatus fault = s_kv_fault (self, "update", bucket, &made);
    natsStatus st = !made ? fault : kv ? kvStore_Update (&rev, kv, key, value, (int) len,
                                                         revision)
                                       : NATS_INVALID_ARG;
    if (fault != NATS_OK)
        st = fault;
    if (st == NATS_OK) {
        if (new_revision)
            *new_revision = rev;
        return SC_CLUSTER_KV_OK;
    }
    int rc = s_kv_failed (st, "update", key, why, why_size);
    /* refused because it changed meanwhile, or NATS is gone? */
    uint8_t buf[256];
    size_t got = 0;
    uint64_t now = 0;
    char ignored[64];
    int there = sc_cluster_kv_get (self, bucket, key, buf, sizeof buf, &got, &now,
                                   ignored, sizeof ignored);
    if (there == SC_CLUSTER_KV_NONE || (there == SC_CLUSTER_KV_OK && now != revision))
        return SC_CLUSTER_KV_NONE;
    return rc;
}

int
sc_cluster_kv_put (sc_cluster_t *self, const char *bucket, const char *key,
                   const uint8_t *value, size_t len, char *why, size_t why_size)
{
    kvStore *kv = s_kv_store (self, bucket);
    natsStatus st = kv ? kvStore_Put (NULL, kv, key, value, (int) len) : NATS_INVALID_ARG;
    return st == NATS_OK ? SC_CLUSTER_KV_OK : s_kv_failed (st, "write", key, why, why_size);
}

int
sc_cluster_kv_delete (sc_cluster_t *self, const char *bucket, const char *key,
                      char *why, size_t why_size)
{
    kvStore *kv = s_kv_store (self, bucket);
    natsStatus st = kv ? kvStore_Delete (kv, key) : NATS_INVALID_ARG;
    return st == NATS_OK ? SC_CLUSTER_KV_OK : s_kv_failed (st, "delete", key, why, why_size);
}

int
sc_cluster_kv_list (sc_cluster_t *self, const char *bucket, sc_cluster_kv_fn *fn,
                    void *arg, char *why, size_t why_size)
{
    kvStore *kv = s_kv_store (self, bucket);
    kvWatchOptions wo;
    kvWatchOptions_Init (&wo);
    wo.IgnoreDeletes = true;
    kvWatcher *watcher = NULL;
    natsStatus st = kv ? kvStore_WatchAll (&watcher, kv, &wo) : NATS_INVALID_ARG;
    while (st == NATS_OK) {
        kvEntry *entry = NULL;
        st = kvWatcher_Next (&entry, watcher, S_KV_WAIT_MS);
        if (st != NATS_OK || !entry)
            break;                      /* NULL: every entry came */
        fn (arg, kvEntry_Key (entry), (const uint8_t *) kvEntry_Value (entry),
            (size_t) kvEntry_ValueLen (entry));
        kvEntry_Destroy (entry);
    }
    kvWatcher_Destroy (watcher);
    return st == NATS_OK ? SC_CLUSTER_KV_OK : s_kv_failed (st, "list", bucket, why, why_size);
}
