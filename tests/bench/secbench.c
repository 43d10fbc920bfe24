/*  secbench: relay throughput and latency against raw ZeroMQ (and the
    throughput against the crypto floor: the raw relay doing the least a
    re-encrypting relay must do), the relay across two nodes of a cluster
    against one broker, logins against the crypto bound, and
    10,000 idle sessions against a raw ROUTER's connections. Every comparison is made side by side in the
    same run (the machines are shared and noisy) and printed as one
    `name value` line per figure on stdout; diagnostics go to stderr.
    docs/PERFORMANCE.md explains each figure and what limits it.

    Usage (from the repository root; `make bench` does it):
        secbench [--broker PATH] [--sessions N] [--pairs N] [--seconds S]
                 [--rounds N] [--lat-rate MSGS_PER_S] [--quick]
                 [--only relay|logins|flood|scale] [--window N] [--workers N]
                 [--login-window N] [--no-cluster]

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at https://mozilla.org/MPL/2.0/.
*/
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "bench.h"
#include "sc_testproc.h"

#define S_MAX_LOADS   16
#define S_REPLY_MS    120000     /* the longest any command may take     */
#define S_START_MS    60000      /* a broker loading 10,000 users        */
#define S_POOL        128        /* prepared bodies per direction        */
#define S_HEARTBEAT   "60000"    /* idle sessions must outlive the bench */
#define S_MAX_ROUNDS  10

typedef struct {
    const char *broker_bin;
    char self_exe[4096];
    char dir[4096];
    size_t sessions;            /* scale test                            */
    size_t scale_loads;
    size_t pairs;               /* relay pairs per relay load process    */
    size_t relay_loads;
    double seconds;             /* each throughput window                */
    size_t rounds;              /* windows per path and size             */
    double lat_rate;            /* latency test, messages/s in all       */
    size_t window;              /* throughput: in flight per direction   */
    const char *workers;        /* the broker's --workers, if given      */
    size_t login_window;        /* logins in flight per load process     */
    size_t logins;              /* per load process and round            */
    size_t login_rounds;
    const char *only;           /* one phase: relay, logins, flood, scale */
    double flood_seconds;       /* the flood, the first second not counted */
    bool cluster;               /* relay: also across two nodes of a cluster */
} s_opts_t;

static void
s_figure (const char *name, double value)
{
    if (value == (double) (long long) value && value < 1e15)
        printf ("%s %lld\n", name, (long long) value);
    else
        printf ("%s %.3f\n", name, value);
    fflush (stdout);
}

static void
s_figure_sized (const char *name, size_t size, double value)
{
    char full[128];
    if (size == 256)
        snprintf (full, sizeof full, "%s", name);
    else
        snprintf (full, sizeof full, "%s_%zu", name, size);
    s_figure (full, value);
}

/* ---- Child processes ------------------------------------------------------ */

/* The first line of p that starts with prefix, within timeout_ms; what
   follows the prefix is copied into rest. 0 / -1. */
static int
s_wait_line (sc_testproc_t *p, const char *prefix, int timeout_ms, char *rest, size_t cap)
{
    int64_t deadline = bn_now_ns () + (int64_t) timeout_ms * 1000000;
    while (bn_now_ns () < deadline) {
        const char *line = NULL;
        int left = (int) ((deadline - bn_now_ns ()) / 1000000);
        int rc = sc_testproc_read_line (p, left > 0 ? left : 1, &line);
        if (rc < 0)
            break;
        if (rc == 1 && strncmp (line, prefix, strlen (prefix)) == 0) {
            snprintf (rest, cap, "%s", line + strlen (prefix));
            return 0;
        }
    }
    fprintf (stderr, "secbench: %s did not say '%s'\n", sc_testproc_name (p), prefix);
    return -1;
}

/* A broker; with cluster (NATS URLs), node `node` of a cluster. */
static sc_testproc_t *
s_node_start (const s_opts_t *o, const char *name, const char *cluster, const char *node,
              char *endpoint, size_t cap)
{
    char cert[4200], key[4200], users[4200], log[4200];
    snprintf (cert, sizeof cert, "%s/broker.crt", o->dir);
    snprintf (key, sizeof key, "%s/broker.key", o->dir);
    snprintf (users, sizeof users, "%s/users", o->dir);
    snprintf (log, sizeof log, "%s/%s.log", o->dir, name);
    const char *argv[20] = { o->broker_bin, "--endpoint", "tcp://127.0.0.1:*", "--cert", cert,
                             "--key", key, "--users", users, "--log-level", "warning",
                             "--heartbeat", S_HEARTBEAT };
    int argc = 13;
    if (o->workers) {
        argv[argc++] = "--workers";
        argv[argc++] = o->workers;
    }
    if (cluster) {
        argv[argc++] = "--cluster";
        argv[argc++] = cluster;
        argv[argc++] = "--node";
        argv[argc++] = node;
    }
    argv[argc] = NULL;
    sc_testproc_t *p = sc_testproc_new (name, argv, log);
    if (p && s_wait_line (p, "secbroker listening on ", S_START_MS, endpoint, cap))
        sc_testproc_destroy (&p);
    return p;
}

static sc_testproc_t *
s_broker_start (const s_opts_t *o, const char *name, char *endpoint, size_t cap)
{
    return s_node_start (o, name, NULL, NULL, endpoint, cap);
}

/* A nats-server on 127.0.0.1 (a free port, no clustering of servers,
   JetStream on): its URL in url. */
static sc_testproc_t *
s_nats_start (const s_opts_t *o, char *url, size_t cap)
{
    char log[4200], store[4200];
    snprintf (log, sizeof log, "%s/nats.log", o->dir);
    /* JetStream: the brokers keep the cluster's users in its buckets */
    snprintf (store, sizeof store, "%s/jetstream", o->dir);
    const char *argv[] = { "nats-server", "-a", "127.0.0.1", "-p", "-1", "-js", "-sd", store,
                           NULL };
    sc_testproc_t *p = sc_testproc_new ("nats", argv, log);
    static const char prefix[] = "client connections on 127.0.0.1:";
    int port = -1;
    for (int i = 0; p && i < 200 && port <= 0; i++) {
        char text[8192];
        ssize_t n = bn_read_file (log, text, sizeof text - 1);
        text[n > 0 ? n : 0] = 0;
        const char *at = strstr (text, prefix);
        port = at ? atoi (at + strlen (prefix)) : -1;
        if (port <= 0)
            bn_sleep_ns (50 * 1000000LL);
    }
    if (port <= 0) {
        fprintf (stderr, "secbench: nats-server did not start (a package of DEPS_PKGS;"
                 " its log: %s)\n", log);
        sc_testproc_destroy (&p);
        return NULL;
    }
    snprintf (url, cap, "nats://127.0.0.1:%d", port);
    return p;
}

static sc_testproc_t *
s_raw_start (const s_opts_t *o, const char *name, char *endpoint, size_t cap)
{
    const char *argv[] = { o->self_exe, "raw", "tcp://127.0.0.1:*", S_HEARTBEAT, NULL };
    sc_testproc_t *p = sc_testproc_new (name, argv, NULL);
    if (p && s_wait_line (p, "raw listening on ", 10000, endpoint, cap))
        sc_testproc_destroy (&p);
    return p;
}

/* SIGTERM, then the end within 10 s (else SIGKILL). */
static void
s_stop (sc_testproc_t **p_p)
{
    if (*p_p) {
        sc_testproc_signal (*p_p, SIGTERM);
        if (sc_testproc_wait (*p_p, 10000) == SC_TESTPROC_TIMEOUT)
            fprintf (stderr, "secbench: %s did not stop: killed\n", sc_testproc_name (*p_p));
        sc_testproc_destroy (p_p);
    }
}

static int
s_loads_start (const s_opts_t *o, sc_testproc_t **loads, size_t n, const char *tag)
{
    for (size_t i = 0; i < n; i++) {
        char name[64];
        snprintf (name, sizeof name, "%s%zu", tag, i);
        const char *argv[] = { o->self_exe, "load", o->dir, NULL };
        loads[i] = sc_testproc_new (name, argv, NULL);
        if (!loads[i])
            return -1;
    }
    return 0;
}

static void
s_loads_stop (sc_testproc_t **loads, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (loads[i]) {
            sc_testproc_send (loads[i], "exit");
            if (sc_testproc_wait (loads[i], 20000) == SC_TESTPROC_TIMEOUT)
                fprintf (stderr, "secbench: %s did not exit: killed\n",
                         sc_testproc_name (loads[i]));
            sc_testproc_destroy (&loads[i]);
        }
}

static int
s_send (sc_testproc_t *p, const char *fmt, ...) __attribute__ ((format (printf, 2, 3)));

static int
s_send (sc_testproc_t *p, const char *fmt, ...)
{
    char line[8192];
    va_list args;
    va_start (args, fmt);
    vsnprintf (line, sizeof line, fmt, args);
    va_end (args);
    return sc_testproc_send (p, line);
}

/* The answer of p to its last command: "ok ..." copied to reply, or -1. */
static int
s_answer (sc_testproc_t *p, char *reply, size_t cap)
{
    const char *line = NULL;
    if (sc_testproc_read_line (p, S_REPLY_MS, &line) != 1) {
        fprintf (stderr, "secbench: %s did not answer\n", sc_testproc_name (p));
        return -1;
    }
    snprintf (reply, cap, "%s", line);
    if (strncmp (line, "ok", 2) != 0) {
        fprintf (stderr, "secbench: %s: %s\n", sc_testproc_name (p), line);
        return -1;
    }
    return 0;
}

/* Every load answers: replies[i], or -1 if any did not say ok. */
static int
s_answers (sc_testproc_t **loads, size_t n, char replies[][512])
{
    int rc = 0;
    for (size_t i = 0; i < n; i++)
        if (s_answer (loads[i], replies[i], 512))
            rc = -1;
    return rc;
}

static int64_t
s_ms (double ms)
{
    return (int64_t) (ms * 1e6);
}

/* ---- Keys --------------------------------------------------------------------- */

/* The CA and the broker's key and certificate from the key script; one
   user key, made here, registered under every name the bench uses. */
static int
s_keys (const s_opts_t *o)
{
    const char *none[] = { NULL };
    if (sc_testproc_make_keys (o->dir, none))
        return -1;
    char path[4200];
    snprintf (path, sizeof path, "%s/users", o->dir);
    mkdir (path, 0755);
    uint8_t seed[SC_KEY_LEN], pub[SC_PUB_LEN];
    snprintf (path, sizeof path, "%s/user.seed", o->dir);
    if (sc_random (seed, sizeof seed) || bn_write_file (path, seed, sizeof seed, 0600))
        return -1;
    sc_key_t *key = sc_key_from_seed (seed);
    sc_wipe (seed, sizeof seed);
    int rc = !key || sc_key_public_raw (key, pub) ? -1 : 0;
    sc_key_destroy (&key);
    char pem[128];
    bn_spki_pem (pub, pem);
    for (size_t i = 0; rc == 0 && i < o->sessions; i++) {
        snprintf (path, sizeof path, "%s/users/u%05zu.pub", o->dir, i);
        rc = bn_write_file (path, pem, strlen (pem), 0644);
    }
    /* the relay's pairs, and as many for the cluster's */
    size_t relay_users = (o->cluster ? 4 : 2) * o->pairs * o->relay_loads;
    for (size_t i = 0; rc == 0 && i < relay_users; i++) {
        snprintf (path, sizeof path, "%s/users/r%03zu.pub", o->dir, i);
        rc = bn_write_file (path, pem, strlen (pem), 0644);
    }
    return rc;
}

/* ---- The crypto bound ----------------------------------------------------- */

/* How many times per second this process does the broker's share of the
   primitives of one login, straight on OpenSSL with every object that
   can be made in advance made in advance: an X25519 key pair, the
   X25519 with the client's ephemeral key (imported from its 32 bytes,
   as it arrives), an Ed25519 signature over TH1 with its label, an
   Ed25519 verification of the client's signature with its label. */
static double
s_crypto_bound (double seconds)
{
    EVP_PKEY_CTX *kctx = EVP_PKEY_CTX_new_from_name (NULL, "X25519", NULL);
    EVP_PKEY *client_eph = EVP_PKEY_Q_keygen (NULL, NULL, "X25519");
    EVP_PKEY *broker = EVP_PKEY_Q_keygen (NULL, NULL, "ED25519");
    EVP_PKEY *user = EVP_PKEY_Q_keygen (NULL, NULL, "ED25519");
    EVP_MD_CTX *mctx = EVP_MD_CTX_new ();
    uint8_t eph_c[32], to_sign[62], to_verify[98], sig[64], user_sig[64], shared[32];
    size_t len = sizeof eph_c;
    memset (to_sign, 'b', sizeof to_sign);
    memset (to_verify, 'c', sizeof to_verify);
    size_t sig_len = sizeof user_sig;
    double rate = 0;
    if (!kctx || !client_eph || !broker || !user || !mctx
        || EVP_PKEY_keygen_init (kctx) != 1
        || EVP_PKEY_get_raw_public_key (client_eph, eph_c, &len) != 1
        || EVP_DigestSignInit_ex (mctx, NULL, NULL, NULL, NULL, user, NULL) != 1
        || EVP_DigestSign (mctx, user_sig, &sig_len, to_verify, sizeof to_verify) != 1)
        goto done;
    long count = 0;
    int64_t start = bn_now_ns (), end = start + (int64_t) (seconds * 1e9), now = start;
    bool ok = true;
    while (ok && now < end) {
        EVP_PKEY *eph = NULL, *peer = NULL;
        EVP_PKEY_CTX *dctx = NULL;
        uint8_t eph_b[32];
        size_t n = 32, slen = sizeof sig;
        ok = EVP_PKEY_keygen (kctx, &eph) == 1
             && EVP_PKEY_get_raw_public_key (eph, eph_b, &n) == 1
             && (peer = EVP_PKEY_new_raw_public_key (EVP_PKEY_X25519, NULL, eph_c, 32))
             && (dctx = EVP_PKEY_CTX_new_from_pkey (NULL, eph, NULL))
             && EVP_PKEY_derive_init (dctx) == 1
             && EVP_PKEY_derive_set_peer (dctx, peer) == 1
             && (n = sizeof shared, EVP_PKEY_derive (dctx, shared, &n) == 1)
             && EVP_DigestSignInit_ex (mctx, NULL, NULL, NULL, NULL, broker, NULL) == 1
             && EVP_DigestSign (mctx, sig, &slen, to_sign, sizeof to_sign) == 1
             && EVP_DigestVerifyInit_ex (mctx, NULL, NULL, NULL, NULL, user, NULL) == 1
             && EVP_DigestVerify (mctx, user_sig, sig_len, to_verify, sizeof to_verify) == 1;
        EVP_PKEY_CTX_free (dctx);
        EVP_PKEY_free (peer);
        EVP_PKEY_free (eph);
        count++;
        now = bn_now_ns ();
    }
    if (ok)
        rate = (double) count / ((double) (now - start) / 1e9);
    else
        fprintf (stderr, "secbench: the crypto bound failed\n");
done:
    EVP_MD_CTX_free (mctx);
    EVP_PKEY_free (user);
    EVP_PKEY_free (broker);
    EVP_PKEY_free (client_eph);
    EVP_PKEY_CTX_free (kctx);
    return rate;
}

/* ---- 1. and 4. Relay ------------------------------------------------------------ */

/* The relay paths: raw ZeroMQ, the broker, and the crypto floor (the raw
   relay doing a seal and an open of every message, bench_raw.c), which
   turn in each round; then the cluster (two brokers, the pairs' two
   users on different nodes, over a nats-server), after them. */
enum { S_RAW, S_BROKER, S_FLOOR, S_PATHS, S_CLUSTER = S_PATHS };
static const char *const s_path_name[S_PATHS + 1] = { "raw", "broker", "floor", "cluster" };

/* Turns the raw relay's floor on or off and waits until it says so. */
static int
s_floor_set (sc_testproc_t *raw, bool on)
{
    if (sc_testproc_signal (raw, on ? SIGUSR1 : SIGUSR2))
        return -1;
    return sc_testproc_expect (raw, on ? "raw floor on" : "raw floor off", 10000);
}

/* One throughput window through one path: messages per second received,
   or -1. What each side spent is on stderr: the relay's CPU (and its
   main thread's; the relays' together when there are several: the
   nodes of the cluster, and then the nats-server's CPU apart) and the
   clients' per message, over the whole run (warm-up and drain included,
   so a little high), and how idle the machine was. */
static double
s_tput (const s_opts_t *o, sc_testproc_t **loads, size_t nl, sc_testproc_t *const *relays,
        size_t nr, sc_testproc_t *nats, int mode, size_t size)
{
    char replies[S_MAX_LOADS][512];
    int64_t warm = s_ms (200), dur = (int64_t) (o->seconds * 1e9);
    int64_t t0 = bn_now_ns () + s_ms (50);
    double cpu0 = 0, main0 = 0, nats0 = nats ? bn_cpu_s (sc_testproc_pid (nats), false) : 0;
    for (size_t i = 0; i < nr; i++) {
        cpu0 += bn_cpu_s (sc_testproc_pid (relays[i]), false);
        main0 += bn_cpu_s (sc_testproc_pid (relays[i]), true);
    }
    double idle0 = bn_idle_s (), load0 = 0, wall0 = (double) bn_now_ns () / 1e9;
    for (size_t i = 0; i < nl; i++)
        load0 += bn_cpu_s (sc_testproc_pid (loads[i]), false);
    for (size_t i = 0; i < nl; i++)
        s_send (loads[i], "tput %s %zu %lld %lld %lld %zu",
                mode == S_BROKER || mode == S_CLUSTER ? "broker" : "raw",
                size, (long long) t0, (long long) warm, (long long) dur, o->window);
    if (s_answers (loads, nl, replies))
        return -1;
    double cpu = -cpu0, main = -main0;
    for (size_t i = 0; i < nr; i++) {
        cpu += bn_cpu_s (sc_testproc_pid (relays[i]), false);
        main += bn_cpu_s (sc_testproc_pid (relays[i]), true);
    }
    double nats_cpu = nats ? bn_cpu_s (sc_testproc_pid (nats), false) - nats0 : 0;
    double idle = bn_idle_s () - idle0, wall = (double) bn_now_ns () / 1e9 - wall0;
    double load = -load0, count = 0;
    for (size_t i = 0; i < nl; i++) {
        load += bn_cpu_s (sc_testproc_pid (loads[i]), false);
        count += bn_kv (replies[i], "count", 0);
        if (bn_kv (replies[i], "bad", 0) > 0)
            return -1;
    }
    double sent = count * (double) (warm + dur) / (double) dur;
    char nats_part[64] = "";
    if (nats)
        snprintf (nats_part, sizeof nats_part, ", nats-server %.1f", nats_cpu / sent * 1e6);
    fprintf (stderr, "secbench: relay %4zu B %-6s %7.0f msgs/s; CPU us/msg: relay %.1f"
             " (main thread %.1f)%s, clients %.1f; machine idle %.0f%%\n", size,
             s_path_name[mode], count / o->seconds, cpu / sent * 1e6,
             main / sent * 1e6, nats_part, load / sent * 1e6,
             100 * idle / (wall * (double) sysconf (_SC_NPROCESSORS_ONLN)));
    return count / o->seconds;
}

static int
s_relay (const s_opts_t *o)
{
    char broker_ep[256], raw_ep[256], replies[S_MAX_LOADS][512];
    char nats_url[256], node_ep[2][256];
    sc_testproc_t *loads[S_MAX_LOADS] = { NULL }, *cloads[S_MAX_LOADS] = { NULL };
    sc_testproc_t *nats = NULL, *nodes[2] = { NULL, NULL };
    double *lat[3] = { NULL, NULL, NULL };      /* raw, broker, cluster */
    size_t nlat[3] = { 0, 0, 0 };
    size_t nl = o->relay_loads;
    int64_t dur = (int64_t) (o->seconds * 1e9);
    sc_testproc_t *broker = s_broker_start (o, "broker-relay", broker_ep, sizeof broker_ep);
    sc_testproc_t *raw = s_raw_start (o, "raw-relay", raw_ep, sizeof raw_ep);
    int rc = -1;
    if (!broker || !raw || s_loads_start (o, loads, nl, "relay"))
        goto done;
    /* The cluster: two nodes on one nats-server, and as many load
       processes and pairs again (their names follow the others'), the
       two users of each pair on different nodes. */
    if (o->cluster
        && (!(nats = s_nats_start (o, nats_url, sizeof nats_url))
            || !(nodes[0] = s_node_start (o, "node-b1", nats_url, "b1", node_ep[0],
                                          sizeof node_ep[0]))
            || !(nodes[1] = s_node_start (o, "node-b2", nats_url, "b2", node_ep[1],
                                          sizeof node_ep[1]))
            || s_loads_start (o, cloads, nl, "cluster")))
        goto done;
    for (size_t i = 0; i < nl; i++)
        s_send (loads[i], "relay %s %s %zu %zu", broker_ep, raw_ep, o->pairs, i * o->pairs);
    for (size_t i = 0; o->cluster && i < nl; i++)
        s_send (cloads[i], "relay %s - %zu %zu %s", node_ep[0], o->pairs,
                (nl + i) * o->pairs, node_ep[1]);
    if (s_answers (loads, nl, replies) || (o->cluster && s_answers (cloads, nl, replies)))
        goto done;
    fprintf (stderr, "secbench: relay: %zu pairs in E2E chats%s\n", nl * o->pairs,
             o->cluster ? ", as many across the two nodes of a cluster" : "");

    static const size_t sizes[] = { 256, 64, 1024, 4096 };
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
        for (size_t i = 0; i < nl; i++)
            s_send (loads[i], "prep %zu %d", sizes[s], S_POOL);
        for (size_t i = 0; o->cluster && i < nl; i++)
            s_send (cloads[i], "prep %zu %d", sizes[s], S_POOL);
        if (s_answers (loads, nl, replies) || (o->cluster && s_answers (cloads, nl, replies)))
            goto done;
        /* rounds of one window through each path, back to back, the
           order turning; the figures are medians over the rounds, the
           ratios the medians of each round's own ratios. The cluster's
           window comes after the round's three, compared with the
           round's single broker. */
        double rate[S_PATHS + 1][S_MAX_ROUNDS], ratio[S_MAX_ROUNDS], floor_ratio[S_MAX_ROUNDS];
        double cluster_ratio[S_MAX_ROUNDS];
        for (size_t r = 0; r < o->rounds; r++) {
            for (int m = 0; m < S_PATHS; m++) {
                int mode = (int) ((r + (size_t) m) % S_PATHS);
                if (mode == S_FLOOR && s_floor_set (raw, true))
                    goto done;
                rate[mode][r] = s_tput (o, loads, nl, mode == S_BROKER ? &broker : &raw, 1,
                                        NULL, mode, sizes[s]);
                if (mode == S_FLOOR && s_floor_set (raw, false))
                    goto done;
                if (rate[mode][r] < 0)
                    goto done;
            }
            ratio[r] = rate[S_RAW][r] > 0 ? rate[S_BROKER][r] / rate[S_RAW][r] : 0;
            floor_ratio[r] = rate[S_RAW][r] > 0 ? rate[S_FLOOR][r] / rate[S_RAW][r] : 0;
            if (o->cluster) {
                rate[S_CLUSTER][r] = s_tput (o, cloads, nl, nodes, 2, nats, S_CLUSTER,
                                             sizes[s]);
                if (rate[S_CLUSTER][r] < 0)
                    goto done;
                cluster_ratio[r] = rate[S_BROKER][r] > 0
                                   ? rate[S_CLUSTER][r] / rate[S_BROKER][r] : 0;
            }
        }
        fprintf (stderr, "secbench: relay %zu B: ratio per round %.3f .. %.3f,"
                 " floor %.3f .. %.3f\n", sizes[s], bn_percentile (ratio, o->rounds, 0),
                 bn_percentile (ratio, o->rounds, 100), bn_percentile (floor_ratio, o->rounds, 0),
                 bn_percentile (floor_ratio, o->rounds, 100));
        s_figure_sized ("relay_msgs_per_s", sizes[s], bn_median (rate[S_BROKER], o->rounds));
        s_figure_sized ("raw_zmq_msgs_per_s", sizes[s], bn_median (rate[S_RAW], o->rounds));
        s_figure_sized ("relay_ratio", sizes[s], bn_median (ratio, o->rounds));
        s_figure_sized ("floor_msgs_per_s", sizes[s], bn_median (rate[S_FLOOR], o->rounds));
        s_figure_sized ("floor_ratio", sizes[s], bn_median (floor_ratio, o->rounds));
        if (o->cluster) {
            fprintf (stderr, "secbench: relay %zu B: cluster / broker per round %.3f .. %.3f\n",
                     sizes[s], bn_percentile (cluster_ratio, o->rounds, 0),
                     bn_percentile (cluster_ratio, o->rounds, 100));
            s_figure_sized ("cluster_msgs_per_s", sizes[s],
                            bn_median (rate[S_CLUSTER], o->rounds));
            s_figure_sized ("cluster_ratio", sizes[s], bn_median (cluster_ratio, o->rounds));
        }
    }

    /* Latency at a moderate rate, 256 B, both paths in turns; then the
       cluster's window after each round's two. */
    size_t flows = 2 * o->pairs * nl;
    double per_flow = o->lat_rate / (double) flows;
    for (size_t r = 0; r < o->rounds; r++)
        for (int m = 0; m < (o->cluster ? 3 : 2); m++) {
            int mode = m == 2 ? 2 : (int) (r % 2) ? 1 - m : m;
            sc_testproc_t **lp = mode == 2 ? cloads : loads;
            int64_t t0 = bn_now_ns () + s_ms (50);
            char file[S_MAX_LOADS][4200];
            for (size_t i = 0; i < nl; i++) {
                snprintf (file[i], sizeof file[i], "%s/lat-%zu", o->dir, i);
                s_send (lp[i], "lat %s 256 %lld %lld %.3f %s", mode ? "broker" : "raw",
                        (long long) t0, (long long) (2 * dur), per_flow, file[i]);
            }
            if (s_answers (lp, nl, replies))
                goto done;
            for (size_t i = 0; i < nl; i++) {
                size_t n = (size_t) bn_kv (replies[i], "samples", 0);
                double *grown = realloc (lat[mode], (nlat[mode] + n + 1) * sizeof (double));
                if (!grown)
                    goto done;
                lat[mode] = grown;
                ssize_t got = bn_read_file (file[i], lat[mode] + nlat[mode], n * sizeof (double));
                if (got != (ssize_t) (n * sizeof (double)))
                    goto done;
                nlat[mode] += n;
            }
        }
    if (nlat[0] < 100 || nlat[1] < 100 || (o->cluster && nlat[2] < 100)) {
        fprintf (stderr, "secbench: too few latency samples\n");
        goto done;
    }
    fprintf (stderr, "secbench: latency at %.0f msgs/s, %zu + %zu samples; p50 p90 p99 p99.9 us:"
             " broker %.0f %.0f %.0f %.0f, raw %.0f %.0f %.0f %.0f\n", o->lat_rate, nlat[1],
             nlat[0], bn_percentile (lat[1], nlat[1], 50), bn_percentile (lat[1], nlat[1], 90),
             bn_percentile (lat[1], nlat[1], 99), bn_percentile (lat[1], nlat[1], 99.9),
             bn_percentile (lat[0], nlat[0], 50), bn_percentile (lat[0], nlat[0], 90),
             bn_percentile (lat[0], nlat[0], 99), bn_percentile (lat[0], nlat[0], 99.9));
    s_figure ("latency_p50_us", bn_percentile (lat[1], nlat[1], 50));
    s_figure ("latency_p99_us", bn_percentile (lat[1], nlat[1], 99));
    s_figure ("raw_latency_p50_us", bn_percentile (lat[0], nlat[0], 50));
    s_figure ("raw_latency_p99_us", bn_percentile (lat[0], nlat[0], 99));
    if (o->cluster) {
        fprintf (stderr, "secbench: cluster latency at %.0f msgs/s, %zu samples; p50 p90 p99"
                 " p99.9 us: %.0f %.0f %.0f %.0f\n", o->lat_rate, nlat[2],
                 bn_percentile (lat[2], nlat[2], 50), bn_percentile (lat[2], nlat[2], 90),
                 bn_percentile (lat[2], nlat[2], 99), bn_percentile (lat[2], nlat[2], 99.9));
        s_figure ("cluster_latency_p50_us", bn_percentile (lat[2], nlat[2], 50));
        s_figure ("cluster_latency_p99_us", bn_percentile (lat[2], nlat[2], 99));
    }
    rc = 0;
done:
    free (lat[0]);
    free (lat[1]);
    free (lat[2]);
    s_loads_stop (cloads, nl);
    s_stop (&nodes[1]);
    s_stop (&nodes[0]);
    s_stop (&nats);
    s_loads_stop (loads, nl);
    s_stop (&raw);
    s_stop (&broker);
    return rc;
}

/* ---- 2. Logins ------------------------------------------------------------------------ */

static int
s_logins (const s_opts_t *o)
{
    char ep[256], replies[S_MAX_LOADS][512];
    sc_testproc_t *loads[S_MAX_LOADS] = { NULL };
    size_t nl = o->relay_loads;
    sc_testproc_t *broker = s_broker_start (o, "broker-logins", ep, sizeof ep);
    int rc = -1;
    if (!broker || s_loads_start (o, loads, nl, "login"))
        goto done;
    double rates[S_MAX_ROUNDS], bounds[S_MAX_ROUNDS + 1], ratios[S_MAX_ROUNDS];
    /* A round to warm the broker up first (its allocator, the workers'
       first keys), not counted: a fresh broker's first thousand logins
       run slower than its steady state. */
    size_t warm = o->logins / 3;
    for (size_t i = 0; i < nl; i++)
        s_send (loads[i], "logins %s %zu %zu", ep, warm, o->sessions - (i + 1) * warm);
    if (s_answers (loads, nl, replies))
        goto done;
    for (size_t i = 0; i < nl; i++)
        s_send (loads[i], "go %lld %zu", (long long) (bn_now_ns () + s_ms (300)), warm);
    if (s_answers (loads, nl, replies))
        goto done;
    for (size_t i = 0; i < nl; i++)
        s_send (loads[i], "quitall");
    if (s_answers (loads, nl, replies))
        goto done;
    bounds[0] = s_crypto_bound (0.75);
    for (size_t r = 0; r < o->login_rounds; r++) {
        for (size_t i = 0; i < nl; i++)
            s_send (loads[i], "logins %s %zu %zu", ep, o->logins,
                    (r * nl + i) * o->logins % (o->sessions - o->logins + 1));
        if (s_answers (loads, nl, replies))
            goto done;
        int64_t t0 = bn_now_ns () + s_ms (500);       /* let them connect */
        for (size_t i = 0; i < nl; i++)
            s_send (loads[i], "go %lld %zu", (long long) t0,
                    o->login_window ? o->login_window : o->logins);
        /* What the broker and the machine spend from T0 on: the logins
           (the broker is idle once the last is done), read just before
           T0 so that none of it is missed (the idle broker adds nothing) */
        bn_sleep_until_ns (t0 - s_ms (2));
        bn_threads_cpu_t b0, b1;
        if (bn_threads_cpu (sc_testproc_pid (broker), &b0))
            goto done;
        double idle0 = bn_idle_s ();
        int64_t w0 = bn_now_ns ();
        if (s_answers (loads, nl, replies))
            goto done;
        double done_n = 0, t1 = (double) t0, clients = 0;
        for (size_t i = 0; i < nl; i++) {
            done_n += bn_kv (replies[i], "done", 0);
            clients += bn_kv (replies[i], "cpu", 0);
            if (bn_kv (replies[i], "failed", 1) > 0 || bn_kv (replies[i], "sigfail", 1) > 0)
                goto done;
            if (bn_kv (replies[i], "t1", 0) > t1)
                t1 = bn_kv (replies[i], "t1", 0);
        }
        double s = (t1 - (double) t0) / 1e9;
        double idle = bn_idle_s () - idle0, wall = (double) (bn_now_ns () - w0) / 1e9;
        if (bn_threads_cpu (sc_testproc_pid (broker), &b1) || done_n < 1)
            goto done;
        double us = 1e6 / done_n;
        fprintf (stderr, "secbench: logins round %zu: %.0f in %.3f s: %.0f/s; CPU us/login"
                 " from the start to the last: broker %.0f (main thread %.0f, workers %.0f,"
                 " ZeroMQ %.0f), clients %.0f; machine idle %.0f%%\n", r + 1, done_n, s,
                 done_n / s, us * (b1.main + b1.other + b1.zmq - b0.main - b0.other - b0.zmq),
                 us * (b1.main - b0.main), us * (b1.other - b0.other), us * (b1.zmq - b0.zmq),
                 us * clients,
                 100 * idle / (wall * (double) sysconf (_SC_NPROCESSORS_ONLN)));
        for (size_t i = 0; i < nl; i++)
            s_send (loads[i], "quitall");
        if (s_answers (loads, nl, replies))
            goto done;
        /* The bound just before and just after this round; the higher
           of the two, so that a neighbour slowing one measurement down
           can only lower the ratio, never raise it. */
        bounds[r + 1] = s_crypto_bound (0.75);
        rates[r] = done_n / s;
        double bound = bounds[r] > bounds[r + 1] ? bounds[r] : bounds[r + 1];
        ratios[r] = bound > 0 ? rates[r] / bound : 0;
        fprintf (stderr, "secbench: logins round %zu: crypto bound %.0f/s, ratio %.3f\n",
                 r + 1, bound, ratios[r]);
    }
    s_figure ("logins_per_s", bn_median (rates, o->login_rounds));
    s_figure ("crypto_bound_per_s", bn_median (bounds, o->login_rounds + 1));
    s_figure ("login_ratio", bn_median (ratios, o->login_rounds));
    rc = 0;
done:
    s_loads_stop (loads, nl);
    s_stop (&broker);
    return rc;
}

/* ---- 3. Logins under a flood ----------------------------------------------------------- */

/* A flooding process (bench_flood.c: S_FLOOD_CONNS connections from
   127.0.0.2, HELLOs as fast as it can, every COOKIE echoed) against the
   broker with its defaults, while one load process from 127.0.0.1 logs
   honest users in one at a time. After a second the broker is under
   load: from then on its CPU per flood HELLO, the honest logins'
   latency, and its memory growth over the whole flood. */
#define S_FLOOD_CONNS   512
#define S_FLOOD_SRC     "127.0.0.2"

static int
s_flood (const s_opts_t *o)
{
    char ep[256], reply[512], flood_reply[512];
    sc_testproc_t *load = NULL, *flood = NULL;
    sc_testproc_t *broker = s_broker_start (o, "broker-flood", ep, sizeof ep);
    int rc = -1;
    if (!broker || s_loads_start (o, &load, 1, "honest"))
        goto done;
    bn_sleep_ns (s_ms (500));
    long rss0 = bn_rss_kib (sc_testproc_pid (broker)), rss_max = rss0;
    int64_t t0 = bn_now_ns () + s_ms (1500);        /* its connections made */
    int64_t measure_at = t0 + s_ms (1000), end = t0 + s_ms (o->flood_seconds * 1000);
    char a0[32], a1[32], a2[32], conns[16];
    snprintf (a0, sizeof a0, "%lld", (long long) t0);
    snprintf (a1, sizeof a1, "%lld", (long long) measure_at);
    snprintf (a2, sizeof a2, "%lld", (long long) end);
    snprintf (conns, sizeof conns, "%d", S_FLOOD_CONNS);
    const char *argv[] = { o->self_exe, "flood", ep, S_FLOOD_SRC, conns, a0, a1, a2, NULL };
    flood = sc_testproc_new ("flood", argv, NULL);
    if (!flood)
        goto done;
    s_send (load, "paced %s 0 %lld %lld %lld", ep, (long long) measure_at,
            (long long) s_ms (50), (long long) end);
    bn_sleep_until_ns (measure_at);
    bn_threads_cpu_t b0, b1;
    if (bn_threads_cpu (sc_testproc_pid (broker), &b0))
        goto done;
    while (bn_now_ns () < end) {
        bn_sleep_ns (s_ms (100));
        long rss = bn_rss_kib (sc_testproc_pid (broker));
        if (rss > rss_max)
            rss_max = rss;
    }
    if (bn_threads_cpu (sc_testproc_pid (broker), &b1)
        || s_answer (flood, flood_reply, sizeof flood_reply)
        || s_answer (load, reply, sizeof reply))
        goto done;
    double measured = bn_kv (flood_reply, "measured", 0);
    double seconds = (double) (end - measure_at) / 1e9;
    double cpu = b1.main + b1.zmq + b1.other - b0.main - b0.zmq - b0.other;
    fprintf (stderr, "secbench: flood: %s; broker CPU %.2f s (main %.2f, ZeroMQ %.2f, workers"
             " %.2f) in %.1f s; RSS %ld -> %ld KiB; honest logins: %s\n", flood_reply, cpu,
             b1.main - b0.main, b1.zmq - b0.zmq, b1.other - b0.other, seconds, rss0, rss_max,
             reply);
    if (measured < 1 || bn_kv (reply, "failed", 1) > 0)
        goto done;
    s_figure ("flood_hellos_per_s", measured / seconds);
    s_figure ("flood_broker_us_per_hello", 1e6 * cpu / measured);
    s_figure ("flood_login_p99_ms", bn_kv (reply, "p99", 0));
    s_figure ("flood_rss_growth_kib", (double) (rss_max - rss0));
    rc = 0;
done:
    if (flood && rc)
        sc_testproc_dump_all ();
    s_stop (&flood);
    s_loads_stop (&load, 1);
    s_stop (&broker);
    return rc;
}

/* ---- 4. Scale ------------------------------------------------------------------------- */

static int
s_scale (const s_opts_t *o)
{
    char ep[256], replies[S_MAX_LOADS][512];
    sc_testproc_t *loads[S_MAX_LOADS] = { NULL };
    size_t nl = o->scale_loads, per = o->sessions / nl;
    sc_testproc_t *broker = s_broker_start (o, "broker-scale", ep, sizeof ep);
    sc_testproc_t *raw = NULL;
    int rc = -1;
    if (!broker || s_loads_start (o, loads, nl, "scale"))
        goto done;
    bn_sleep_ns (s_ms (500));
    long rss0 = bn_rss_kib (sc_testproc_pid (broker));
    int64_t t0 = bn_now_ns () + s_ms (100);
    for (size_t i = 0; i < nl; i++)
        s_send (loads[i], "hold %s %zu %zu %zu %lld", ep, per, i * per, (size_t) 256,
                (long long) t0);
    if (s_answers (loads, nl, replies))
        goto done;
    double sessions = 0, t1 = (double) t0;
    for (size_t i = 0; i < nl; i++) {
        sessions += bn_kv (replies[i], "done", 0);
        if (bn_kv (replies[i], "sigfail", 1) > 0)
            goto done;
        if (bn_kv (replies[i], "t1", 0) > t1)
            t1 = bn_kv (replies[i], "t1", 0);
    }
    double login_s = (t1 - (double) t0) / 1e9;
    bn_sleep_ns (s_ms (1000));
    long rss1 = bn_rss_kib (sc_testproc_pid (broker));
    fprintf (stderr, "secbench: broker RSS %ld KiB -> %ld KiB with %.0f sessions\n",
             rss0, rss1, sessions);
    for (size_t i = 0; i < nl; i++)
        s_send (loads[i], "release");
    if (s_answers (loads, nl, replies))
        goto done;
    s_stop (&broker);

    raw = s_raw_start (o, "raw-scale", ep, sizeof ep);
    if (!raw)
        goto done;
    bn_sleep_ns (s_ms (500));
    long raw0 = bn_rss_kib (sc_testproc_pid (raw));
    t0 = bn_now_ns () + s_ms (100);
    for (size_t i = 0; i < nl; i++)
        s_send (loads[i], "conns %s %zu %lld", ep, per, (long long) t0);
    if (s_answers (loads, nl, replies))
        goto done;
    double conns = 0;
    for (size_t i = 0; i < nl; i++)
        conns += bn_kv (replies[i], "done", 0);
    bn_sleep_ns (s_ms (1000));
    long raw1 = bn_rss_kib (sc_testproc_pid (raw));
    fprintf (stderr, "secbench: raw ROUTER RSS %ld KiB -> %ld KiB with %.0f connections\n",
             raw0, raw1, conns);
    for (size_t i = 0; i < nl; i++)
        s_send (loads[i], "release");
    if (s_answers (loads, nl, replies) || sessions < 1 || conns < 1)
        goto done;
    s_figure ("sessions", sessions);
    s_figure ("sessions_login_s", login_s);
    s_figure ("broker_rss_kib_per_session", (double) (rss1 - rss0) / sessions);
    s_figure ("raw_zmq_rss_kib_per_conn", (double) (raw1 - raw0) / conns);
    rc = 0;
done:
    s_loads_stop (loads, nl);
    s_stop (&raw);
    s_stop (&broker);
    return rc;
}

/* ---- Main -------------------------------------------------------------------------------- */

static int
s_parse (int argc, char **argv, s_opts_t *o)
{
    static const struct option options[] = {
        { "broker", required_argument, NULL, 'b' },
        { "sessions", required_argument, NULL, 'n' },
        { "pairs", required_argument, NULL, 'p' },
        { "seconds", required_argument, NULL, 's' },
        { "rounds", required_argument, NULL, 'r' },
        { "lat-rate", required_argument, NULL, 'l' },
        { "quick", no_argument, NULL, 'q' },
        { "only", required_argument, NULL, 'o' },
        { "window", required_argument, NULL, 'w' },
        { "workers", required_argument, NULL, 'k' },
        { "login-window", required_argument, NULL, 'g' },
        { "no-cluster", no_argument, NULL, 'c' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 }
    };
    *o = (s_opts_t) { .broker_bin = "bin/secbroker", .sessions = 10000, .scale_loads = 4,
                      .pairs = 4, .relay_loads = 2, .seconds = 0.75, .rounds = 4,
                      .lat_rate = 4000, .window = 128, .logins = 1500, .login_rounds = 4,
                      .login_window = 500,
                      .flood_seconds = 6, .cluster = true };
    int opt;
    while ((opt = getopt_long (argc, argv, "h", options, NULL)) != -1)
        switch (opt) {
            case 'b': o->broker_bin = optarg; break;
            case 'n': o->sessions = strtoul (optarg, NULL, 10); break;
            case 'p': o->pairs = strtoul (optarg, NULL, 10); break;
            case 's': o->seconds = strtod (optarg, NULL); break;
            case 'r': o->rounds = strtoul (optarg, NULL, 10); break;
            case 'l': o->lat_rate = strtod (optarg, NULL); break;
            case 'o': o->only = optarg; break;
            case 'w': o->window = strtoul (optarg, NULL, 10); break;
            case 'k': o->workers = optarg; break;
            case 'g': o->login_window = strtoul (optarg, NULL, 10); break;
            case 'c': o->cluster = false; break;
            case 'q':
                o->sessions = 2000;
                o->seconds = 0.3;
                o->rounds = 2;
                o->logins = 500;
                o->login_rounds = 1;
                o->flood_seconds = 3;
                break;
            default:
                fprintf (stderr, "usage: secbench [--broker PATH] [--sessions N] [--pairs N]\n"
                                 "                [--seconds S] [--rounds N] [--lat-rate N] [--quick]\n"
                                 "                [--only relay|logins|flood|scale] [--window N] [--workers N]\n"
                                 "                [--login-window N] [--no-cluster]\n");
                return -1;
        }
    if (o->sessions < 4 || o->sessions > 99999 || o->pairs < 1 || o->pairs > 64
        || o->seconds <= 0 || o->seconds > 30 || o->rounds < 1 || o->rounds > S_MAX_ROUNDS
        || o->lat_rate <= 0 || o->window < 1 || o->window > 900
        || o->login_rounds > S_MAX_ROUNDS) {
        fprintf (stderr, "secbench: option out of range\n");
        return -1;
    }
    if (o->logins * o->relay_loads > o->sessions)
        o->logins = o->sessions / o->relay_loads;
    ssize_t n = readlink ("/proc/self/exe", o->self_exe, sizeof o->self_exe - 1);
    if (n <= 0)
        return -1;
    o->self_exe[n] = 0;
    return 0;
}

int
main (int argc, char **argv)
{
    if (argc > 1 && strcmp (argv[1], "load") == 0)
        return bn_load_main (argc, argv);
    if (argc > 1 && strcmp (argv[1], "raw") == 0)
        return bn_raw_main (argc, argv);
    if (argc > 1 && strcmp (argv[1], "flood") == 0)
        return bn_flood_main (argc, argv);
    if (argc > 1 && strcmp (argv[1], "bound") == 0) {
        s_figure ("crypto_bound_per_s", s_crypto_bound (2.0));
        return 0;
    }
    s_opts_t o;
    if (s_parse (argc, argv, &o))
        return 2;
    signal (SIGPIPE, SIG_IGN);
    bn_raise_nofile ();
    char *dir = sc_testdir_new ("bench");
    if (!dir)
        return 1;
    snprintf (o.dir, sizeof o.dir, "%s", dir);
    long cpus = sysconf (_SC_NPROCESSORS_ONLN);
    double load[3] = { 0, 0, 0 };
    FILE *file = fopen ("/proc/loadavg", "r");
    if (file) {
        if (fscanf (file, "%lf %lf %lf", &load[0], &load[1], &load[2]) != 3)
            load[0] = -1;
        fclose (file);
    }
    fprintf (stderr, "secbench: %ld CPUs, load average %.2f, work in %s\n", cpus, load[0], dir);
    int64_t start = bn_now_ns ();
    int rc = 1;
    const char *only = o.only ? o.only : "";
    if (s_keys (&o) == 0
        && (*only && strcmp (only, "relay") != 0 ? 0 : s_relay (&o)) == 0
        && (*only && strcmp (only, "logins") != 0 ? 0 : s_logins (&o)) == 0
        && (*only && strcmp (only, "flood") != 0 ? 0 : s_flood (&o)) == 0
        && (*only && strcmp (only, "scale") != 0 ? 0 : s_scale (&o)) == 0)
        rc = 0;
    fprintf (stderr, "secbench: %s in %.1f s\n", rc ? "FAILED" : "done",
             (double) (bn_now_ns () - start) / 1e9);
    sc_testproc_destroy_all ();
    sc_testdir_remove (dir);
    free (dir);
    return rc;
}
