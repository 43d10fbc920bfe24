/*  secbroker: the secchat broker. Parses the command line, loads the
    broker's key, certificate and user registry, binds one ROUTER socket
    and feeds every message to the protocol core (sc_broker) from a
    single-threaded poll loop, which alone owns the sessions. The costly
    steps of logins (sc_broker jobs) run on worker actors, one per CPU by
    default: each job goes to a worker by pointer over its pipe and comes
    back the same way to the loop. SIGTERM/SIGINT stop it cleanly, SIGHUP
    reloads the broker's key, certificate and user registry, all or
    nothing, and logs out the users whose key was removed or changed.
    --check validates what it would load and exits; --probe asks a
    running broker for a sign of life (the container's health check);
    --metrics serves the core's figures over HTTP (sc_metrics).

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at https://mozilla.org/MPL/2.0/.
*/
#include <czmq.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <time.h>

#include "sc_broker.h"
#include "sc_cluster.h"
#include "sc_crypto.h"
#include "sc_invite.h"
#include "sc_msg.h"
#include "sc_log.h"
#include "sc_metrics.h"
#include "sc_notify.h"
#include "sc_proto.h"
#include "sc_wire.h"

/* The release, from the Makefile's VERSION (--version). */
#ifndef SC_VERSION
#   error "SC_VERSION comes from the Makefile: -DSC_VERSION='\"VERSION\"'"
#endif

#define S_TICK_MS     100
#define S_WORKERS_MAX 64
#define S_CERT_WARN_S (30 * (int64_t) 86400)  /* warn when the certificate ends sooner */
#define S_PROBE_MS    3000      /* --probe: the answer must come within this */

typedef struct {
    const char *endpoint, *cert, *key, *users, *log_level;
    const char *metrics;        /* --metrics ADDR:PORT, or NULL: none      */
    const char *probe;          /* --probe ENDPOINT: ask a running broker  */
    uint32_t heartbeat_ms;
    uint32_t login_timeout_ms;
    long workers;               /* login worker threads; 0: in the loop  */
    size_t max_logins;          /* logins in progress at once            */
    size_t logins_per_source;   /* ...from one address                   */
    size_t cookie_logins;       /* from this many on, HELLO needs a cookie */
    size_t failed_per_source;   /* failed logins a minute from one address */
    bool check;                 /* --check: validate the files and exit  */
    bool registration_open;     /* --registration open                   */
    sc_cluster_opts_t cluster;  /* --cluster: urls set                   */
    char node[SC_NAME_MAX + 1]; /* --node, or from the host name         */
} s_args_t;

static volatile sig_atomic_t s_reload = 0;

/* --nats-password-file's password, wiped once NATS has its copy. */
static char s_nats_password[1024];

static void
s_on_sighup (int sig)
{
    (void) sig;
    s_reload = 1;
}

static void
s_usage (FILE *out)
{
    fprintf (out,
        "usage: secbroker [--endpoint EP] [--cert FILE] [--key FILE] [--users DIR]\n"
        "                 [--log-level LEVEL] [--heartbeat MS] [--login-timeout MS]\n"
        "                 [--workers N] [--max-logins N] [--logins-per-source N]\n"
        "                 [--cookie-logins N] [--failed-logins-per-source N]\n"
        "                 [--metrics ADDR:PORT] [--registration invite|open] [--check]\n"
        "                 [--cluster URLS [--node NAME] [--nats-user USER]\n"
        "                  [--nats-password PASSWORD | --nats-password-file FILE]\n"
        "                  [--nats-creds FILE | --nats-nkey SEEDFILE]\n"
        "                  [--nats-tlsca FILE] [--nats-tlscert FILE --nats-tlskey FILE]\n"
        "                  [--nats-replicas N]]\n"
        "       secbroker invite NAME [--users DIR] [--valid TIME]\n"
        "       secbroker invite --list [--users DIR]\n"
        "       secbroker invite --revoke NAME [--users DIR]\n"
        "       secbroker invite ... --cluster URLS [--nats-* options]\n"
        "       secbroker users --list | --add NAME FILE.pub | --remove NAME\n"
        "                       --cluster URLS [--nats-* options]\n"
        "       secbroker --probe ENDPOINT\n"
        "       secbroker --version\n"
        "\n"
        "The secchat broker: authenticates users and relays their end-to-end\n"
        "encrypted chats. It never sees what they say.\n"
        "\n"
        "  --endpoint EP      ZeroMQ endpoint to bind (default tcp://*:4242;\n"
        "                     tcp://127.0.0.1:* picks a free port)\n"
        "  --cert FILE        broker certificate, PEM (default /etc/secbroker/broker.crt)\n"
        "  --key FILE         broker private key, PEM (default /etc/secbroker/broker.key)\n"
        "  --users DIR        registry of users' public keys, NAME.pub\n"
        "                     (default /var/lib/secbroker/users)\n"
        "  --log-level LEVEL  error, warning, info or debug (default info)\n"
        "  --heartbeat MS     client ping interval; silent 3x this: dropped\n"
        "                     (default 5000)\n"
        "  --login-timeout MS a login must complete within this (default 10000)\n"
        "  --workers N        threads for the cryptography of logins, 0..64; 0 does\n"
        "                     it in the main loop (default: one per CPU)\n"
        "  --max-logins N     logins in progress at once; more are refused with\n"
        "                     ERROR RATE (default 4096)\n"
        "  --logins-per-source N  ...of them from one IP address (default 1024)\n"
        "  --cookie-logins N  from this many logins in progress on, a login must\n"
        "                     first echo a cookie; 0: always (default 256)\n"
        "  --failed-logins-per-source N  failed logins a minute from one IP\n"
        "                     address; past it, its logins are refused (default 128)\n"
        "  --metrics ADDR:PORT  serve Prometheus metrics at http://ADDR:PORT/metrics\n"
        "                     (e.g. 127.0.0.1:9464 or [::1]:9464; default: none)\n"
        "  --registration MODE  invite (default): enrolment needs a code from\n"
        "                     `secbroker invite`; open: ANYONE may enrol any free\n"
        "                     name (at most 10 enrolments a minute per address)\n"
        "  --cluster URLS     one of several brokers serving the same users as one:\n"
        "                     the NATS servers, nats://HOST:PORT or tls://HOST:PORT,\n"
        "                     comma-separated (default: a broker on its own)\n"
        "  --node NAME        this broker's name in the cluster, unique, of a-z, 0-9,\n"
        "                     _ and - (default: the host name)\n"
        "  --nats-user USER   NATS user name (or in the URL: nats://USER:PASS@HOST)\n"
        "  --nats-password PASSWORD  ...and its password (seen by ps: prefer\n"
        "  --nats-password-file FILE  the first line of FILE)\n"
        "  --nats-creds FILE  NATS credentials file (JWT and nkey seed)\n"
        "  --nats-nkey SEEDFILE  NATS nkey authentication: the file holds the\n"
        "                     user's nkey seed (SU...)\n"
        "  --nats-tlsca FILE  CA certificates to verify the NATS servers with\n"
        "  --nats-tlscert FILE, --nats-tlskey FILE  client certificate and key\n"
        "                     presented to the NATS servers\n"
        "  --nats-replicas N  replicas of the JetStream buckets of invitations and\n"
        "                     users when this broker makes them, 1..5 (default 1);\n"
        "                     buckets that exist are used as they are\n");
    fprintf (out,
        "  --check            check the key, the certificate and every file in\n"
        "                     the users folder, name each bad one, and exit\n"
        "                     (0: all good, 1: not) without binding\n"
        "  --probe ENDPOINT   ask the broker running at ENDPOINT (e.g.\n"
        "                     tcp://127.0.0.1:4242) for a sign of life, for health\n"
        "                     checks: exit 0 when it answers within 3 s, 1 if not\n"
        "  --help             this text\n"
        "  --version          print 'secbroker VERSION' and exit\n"
        "\n"
        "invite NAME prints a one-time enrolment code for NAME on stdout and\n"
        "stores its hash in DIR/NAME.invite (mode 0600), good for --valid\n"
        "(30s, 10m, 24h, 7d...; default 24h) or until used; the running broker\n"
        "sees it at once. --list shows the pending invitations, --revoke\n"
        "cancels one. With --cluster they work on the cluster's bucket\n"
        "secchat-invites instead, good on every node.\n"
        "users works on the cluster's bucket of users, secchat-users: --list\n"
        "prints each name and key fingerprint, --add registers NAME with the\n"
        "public key FILE.pub, --remove deletes NAME (every node logs it out).\n"
        "\n"
        "It refuses to start when the key is not the certificate's or the\n"
        "certificate is not valid now, and warns when it ends within 30 days.\n"
        "When ready it prints 'secbroker listening on ENDPOINT' on stdout.\n"
        "It logs on stderr: with syslog priorities (<3>..<7>) when that is the\n"
        "journal (JOURNAL_STREAM), else with ISO 8601 times.\n"
        "SIGHUP reloads the key, the certificate and the users (all or\n"
        "nothing) and logs out users whose key was removed or changed;\n"
        "SIGTERM stops it.\n");
}

/* The node's name: --node as it is, or the host name made one (lower
   case, other characters as '-', at most SC_NAME_MAX). 0, or -1 when
   --node is no name. */
static int
s_node_name (const char *given, char *out, size_t size)
{
    if (given) {
        if (!sc_name_valid (given, strlen (given)))
            return -1;
        snprintf (out, size, "%s", given);
        return 0;
    }
    char host[256] = "";
    if (gethostname (host, sizeof host - 1) || !*host)
        snprintf (host, sizeof host, "secbroker");
    size_t n = 0;
    for (const char *c = host; *c && n < SC_NAME_MAX && n + 1 < size; c++) {
        char ch = (char) tolower ((unsigned char) *c);
        bool ok = (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '_';
        if (!ok)
            ch = '-';
        out[n++] = ch;
    }
    out[n] = 0;
    return 0;
}

/* --nats-replicas: 1..5 (JetStream's limit) into *n; 0, or -1 said. */
static int
s_replicas (const char *text, int *n)
{
    char *end = NULL;
    long value = strtol (text, &end, 10);
    if (!*text || *end || value < 1 || value > 5) {
        fprintf (stderr, "secbroker: --nats-replicas takes 1..5\n");
        return -1;
    }
    *n = (int) value;
    return 0;
}

/* 0 ok, 1 help or version printed, -1 bad arguments (usage printed). */
static int
s_parse (int argc, char **argv, s_args_t *args)
{
    static const struct option options[] = {
        { "endpoint", required_argument, NULL, 'e' },
        { "cert", required_argument, NULL, 'c' },
        { "key", required_argument, NULL, 'k' },
        { "users", required_argument, NULL, 'u' },
        { "log-level", required_argument, NULL, 'l' },
        { "heartbeat", required_argument, NULL, 'b' },
        { "login-timeout", required_argument, NULL, 't' },
        { "workers", required_argument, NULL, 'w' },
        { "max-logins", required_argument, NULL, 'M' },
        { "logins-per-source", required_argument, NULL, 'S' },
        { "cookie-logins", required_argument, NULL, 'C' },
        { "failed-logins-per-source", required_argument, NULL, 'F' },
        { "metrics", required_argument, NULL, 'm' },
        { "check", no_argument, NULL, 'K' },
        { "probe", required_argument, NULL, 'P' },
        { "registration", required_argument, NULL, 'R' },
        { "cluster", required_argument, NULL, 'N' },
        { "node", required_argument, NULL, 'n' },
        { "nats-user", required_argument, NULL, 1 },
        { "nats-password", required_argument, NULL, 2 },
        { "nats-creds", required_argument, NULL, 3 },
        { "nats-tlsca", required_argument, NULL, 4 },
        { "nats-tlscert", required_argument, NULL, 5 },
        { "nats-tlskey", required_argument, NULL, 6 },
        { "nats-password-file", required_argument, NULL, 7 },
        { "nats-nkey", required_argument, NULL, 8 },
        { "nats-replicas", required_argument, NULL, 9 },
        { "help", no_argument, NULL, 'h' },
        { "version", no_argument, NULL, 'V' },
        { NULL, 0, NULL, 0 }
    };
    long cpus = sysconf (_SC_NPROCESSORS_ONLN);
    *args = (s_args_t) { "tcp://*:4242", "/etc/secbroker/broker.crt",
                         "/etc/secbroker/broker.key", "/var/lib/secbroker/users",
                         "info", NULL, NULL, 5000, 10000,
                         cpus < 1 ? 1 : cpus > S_WORKERS_MAX ? S_WORKERS_MAX : cpus,
                         4096, 1024, 256, 128, false, false, { 0 }, "" };
    sc_cluster_opts_default (&args->cluster);
    const char *node = NULL;
    bool replicas = false;
    int opt;
    while ((opt = getopt_long (argc, argv, "h", options, NULL)) != -1) {
        switch (opt) {
            case 'e': args->endpoint = optarg; break;
            case 'c': args->cert = optarg; break;
            case 'k': args->key = optarg; break;
            case 'u': args->users = optarg; break;
            case 'l': args->log_level = optarg; break;
            case 'b':
            case 't': {
                char *end = NULL;
                unsigned long ms = strtoul (optarg, &end, 10);
                if (!*optarg || *end || ms < 100 || ms > 600000) {
                    fprintf (stderr, "secbroker: --%s takes 100..600000 ms\n",
                             opt == 'b' ? "heartbeat" : "login-timeout");
                    return -1;
                }
                if (opt == 'b')
                    args->heartbeat_ms = (uint32_t) ms;
                else
                    args->login_timeout_ms = (uint32_t) ms;
                break;
            }
            case 'w': {
                char *end = NULL;
                args->workers = strtol (optarg, &end, 10);
                if (!*optarg || *end || args->workers < 0 || args->workers > S_WORKERS_MAX) {
                    fprintf (stderr, "secbroker: --workers takes 0..%d\n", S_WORKERS_MAX);
                    return -1;
                }
                break;
            }
            case 'M':
            case 'S':
            case 'F':
            case 'C': {
                char *end = NULL;
                unsigned long n = strtoul (optarg, &end, 10);
                const char *name = opt == 'M' ? "max-logins"
                                 : opt == 'S' ? "logins-per-source"
                                 : opt == 'F' ? "failed-logins-per-source" : "cookie-logins";
                unsigned long min = opt == 'C' ? 0 : 1;
                if (!*optarg || *optarg == '-' || *end || n < min || n > 1000000) {
                    fprintf (stderr, "secbroker: --%s takes %lu..1000000\n", name, min);
                    return -1;
                }
                if (opt == 'M')
                    args->max_logins = n;
                else
                if (opt == 'S')
                    args->logins_per_source = n;
                else
                if (opt == 'F')
                    args->failed_per_source = n;
                else
                    args->cookie_logins = n;
                break;
            }
            case 'm': args->metrics = optarg; break;
            case 'K': args->check = true; break;
            case 'P': args->probe = optarg; break;
            case 'R':
                if (strcmp (optarg, "open") != 0 && strcmp (optarg, "invite") != 0) {
                    fprintf (stderr, "secbroker: --registration is invite or open\n");
                    return -1;
                }
                args->registration_open = strcmp (optarg, "open") == 0;
                break;
            case 'N': args->cluster.urls = optarg; break;
            case 'n': node = optarg; break;
            case 1: args->cluster.user = optarg; break;
            case 2: args->cluster.password = optarg; break;
            case 3: args->cluster.creds = optarg; break;
            case 4: args->cluster.tls_ca = optarg; break;
            case 5: args->cluster.tls_cert = optarg; break;
            case 6: args->cluster.tls_key = optarg; break;
            case 8: args->cluster.nkey = optarg; break;
            case 9:
                if (s_replicas (optarg, &args->cluster.replicas))
                    return -1;
                replicas = true;
                break;
            case 7: {
                FILE *file = fopen (optarg, "r");
                bool ok = file && fgets (s_nats_password, sizeof s_nats_password, file);
                if (file)
                    (void) fclose (file);
                s_nats_password[strcspn (s_nats_password, "\r\n")] = 0;
                if (!ok || !*s_nats_password) {
                    fprintf (stderr, "secbroker: cannot read a password from %s\n", optarg);
                    return -1;
                }
                args->cluster.password = s_nats_password;
                break;
            }
            case 'h': s_usage (stdout); return 1;
            case 'V': printf ("secbroker %s\n", SC_VERSION); return 1;
            default: s_usage (stderr); return -1;
        }
    }
    if (optind < argc) {
        fprintf (stderr, "secbroker: unexpected argument '%s'\n", argv[optind]);
        s_usage (stderr);
        return -1;
    }
    if (!args->cluster.urls && (node || replicas || args->cluster.user || args->cluster.password
                                || args->cluster.creds || args->cluster.nkey
                                || args->cluster.tls_ca
                                || args->cluster.tls_cert || args->cluster.tls_key)) {
        fprintf (stderr, "secbroker: --node and the --nats-* options need --cluster\n");
        return -1;
    }
    if (args->cluster.urls && args->registration_open) {
        fprintf (stderr, "secbroker: --registration open cannot be used with --cluster: "
                 "each node would register names on its own\n");
        return -1;
    }
    if (args->cluster.creds && args->cluster.nkey) {
        fprintf (stderr, "secbroker: --nats-creds or --nats-nkey, not both\n");
        return -1;
    }
    if (!args->cluster.tls_cert != !args->cluster.tls_key) {
        fprintf (stderr, "secbroker: --nats-tlscert and --nats-tlskey go together\n");
        return -1;
    }
    if (args->cluster.urls && s_node_name (node, args->node, sizeof args->node)) {
        fprintf (stderr, "secbroker: --node must be 1 to %d of a-z, 0-9, _ and -\n",
                 SC_NAME_MAX);
        return -1;
    }
    args->cluster.node = args->node;
    if (sc_log_set_level (args->log_level)) {
        fprintf (stderr, "secbroker: --log-level is error, warning, info or debug\n");
        return -1;
    }
    return 0;
}

/* Each client holds a descriptor: allow as many as the hard limit. */
static void
s_raise_nofile (void)
{
    struct rlimit rl;
    if (getrlimit (RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        if (setrlimit (RLIMIT_NOFILE, &rl))
            sc_log (SC_LOG_WARNING, "cannot raise the open files limit: %s", strerror (errno));
    }
}

/* ---- The broker's identity ------------------------------------------- */

/* A time in seconds since the epoch, for people: "2027-03-05 12:00 UTC". */
static void
s_date (int64_t t, char *buf, size_t size)
{
    time_t tt = (time_t) t;
    struct tm tm;
    if (!gmtime_r (&tt, &tm) || strftime (buf, size, "%Y-%m-%d %H:%M UTC", &tm) == 0)
        snprintf (buf, size, "%lld s after the epoch", (long long) t);
}

typedef struct {
    sc_key_t *key;
    uint8_t *cert;              /* DER                                    */
    size_t cert_len;
    int64_t not_after;          /* seconds since the epoch                */
} s_idfiles_t;

static void
s_idfiles_free (s_idfiles_t *self)
{
    sc_key_destroy (&self->key);
    free (self->cert);
    self->cert = NULL;
}

/* Load the key and the certificate and check that they belong together
   and that the certificate is valid at now. 0, or -1 with why (one
   line, naming the file) and nothing kept. */
static int
s_idfiles_load (const s_args_t *args, int64_t now, s_idfiles_t *id,
                 char *why, size_t size)
{
    memset (id, 0, sizeof *id);
    int err = 0;
    id->key = sc_key_load_private (args->key, NULL, &err);
    if (!id->key && err == SC_KEY_EPERM) {
        snprintf (why, size, "UNPROTECTED PRIVATE KEY FILE %s: group or others can "
                  "access it; run: chmod 600 %s", args->key, args->key);
        return -1;
    }
    if (!id->key) {
        snprintf (why, size, "cannot load key %s: %s", args->key, sc_key_strerror (err));
        return -1;
    }
    err = sc_cert_load_der (args->cert, &id->cert, &id->cert_len);
    if (err == SC_KEY_OK)
        err = sc_cert_check (id->cert, id->cert_len, id->key, now, &id->not_after);
    if (err == SC_KEY_OK)
        return 0;
    char date[64];
    s_date (id->not_after, date, sizeof date);
    if (err == SC_KEY_EMISMATCH)
        snprintf (why, size, "key %s does not match certificate %s", args->key, args->cert);
    else
    if (err == SC_KEY_EEXPIRED)
        snprintf (why, size, "certificate %s expired on %s", args->cert, date);
    else
    if (err == SC_KEY_ENOTYET)
        snprintf (why, size, "certificate %s is not valid yet", args->cert);
    else
        snprintf (why, size, "cannot load certificate %s: %s", args->cert, sc_key_strerror (err));
    s_idfiles_free (id);
    return -1;
}

/* The warning when the certificate ends within S_CERT_WARN_S: one line
   into buf; false when there is nothing to say. */
static bool
s_expiry_warning (const s_args_t *args, const s_idfiles_t *id, int64_t now,
                  char *buf, size_t size)
{
    if (id->not_after - now >= S_CERT_WARN_S)
        return false;
    char date[64];
    s_date (id->not_after, date, sizeof date);
    long long days = (long long) ((id->not_after - now + 86399) / 86400);  /* started */
    snprintf (buf, size, "certificate %s expires in %lld day%s (%s): renew it",
              args->cert, days, days == 1 ? "" : "s", date);
    return true;
}

/* --check: each bad file of the users folder, on stderr. */
static void
s_check_bad (void *arg, const char *file, const char *why)
{
    const char *dir = arg;
    if (file)
        fprintf (stderr, "secbroker: %s/%s: %s\n", dir, file, why);
    else
        fprintf (stderr, "secbroker: cannot read the user registry %s: %s\n", dir, why);
}

/* --check: validate all the broker would load, as nginx -t does; never
   binds. The exit status. */
static int
s_check (const s_args_t *args)
{
    int64_t now = (int64_t) time (NULL);
    s_idfiles_t id;
    char why[1024];
    int rc = 0;
    if (s_idfiles_load (args, now, &id, why, sizeof why)) {
        fprintf (stderr, "secbroker: %s\n", why);
        rc = 1;
    }
    else
    if (s_expiry_warning (args, &id, now, why, sizeof why))
        fprintf (stderr, "secbroker: warning: %s\n", why);
    size_t users = 0;
    if (sc_registry_check (args->users, s_check_bad, (void *) args->users, &users))
        rc = 1;
    if (rc == 0) {
        char date[64];
        s_date (id.not_after, date, sizeof date);
        printf ("secbroker: configuration OK: key %s matches certificate %s, valid until %s; "
                "%zu users in %s\n", args->key, args->cert, date, users, args->users);
    }
    else
        fprintf (stderr, "secbroker: configuration NOT OK\n");
    s_idfiles_free (&id);
    return rc;
}

/* --probe: is a broker serving at endpoint? It is sent one plaintext
   LIST, as from a client that never logged in, which a running broker
   answers at once with ERROR STATE ("log in first") and forgets: no
   login, no state, nothing counted as a failed login. The exit status. */
static int
s_probe (const char *endpoint)
{
    zsock_t *dealer = zsock_new (ZMQ_DEALER);
    if (!dealer) {
        fprintf (stderr, "secbroker: cannot make a ZeroMQ socket\n");
        return 1;
    }
    zsock_set_linger (dealer, 0);
    zsock_set_maxmsgsize (dealer, SC_ENVELOPE_MAX);
    int rc = 1;
    uint8_t *frame = NULL;
    size_t len = 0;
    sc_msg_t msg;
    sc_msg_init (&msg, SC_OP_LIST);
    if (zsock_connect (dealer, "%s", endpoint) < 0)
        fprintf (stderr, "secbroker: cannot connect to %s: %s\n", endpoint,
                 zmq_strerror (zmq_errno ()));
    else
    if (sc_wire_plain (&msg, &frame, &len)
        || zmq_send (zsock_resolve (dealer), frame, len, ZMQ_DONTWAIT) != (int) len)
        fprintf (stderr, "secbroker: cannot send to %s\n", endpoint);
    else {
        zmq_pollitem_t item = { zsock_resolve (dealer), 0, ZMQ_POLLIN, 0 };
        zframe_t *answer = zmq_poll (&item, 1, S_PROBE_MS) == 1 ? zframe_recv (dealer) : NULL;
        sc_msg_t reply;
        sc_msg_init (&reply, 0);
        if (!answer)
            fprintf (stderr, "secbroker: no answer from %s within %d s\n", endpoint,
                     S_PROBE_MS / 1000);
        else
        if (sc_wire_open_plain (zframe_data (answer), zframe_size (answer), &reply)
            || reply.opcode != SC_OP_ERROR || reply.code != SC_ERR_STATE)
            fprintf (stderr, "secbroker: %s answers, but not as a secchat broker\n",
                     endpoint);
        else {
            printf ("secbroker: the broker at %s answers\n", endpoint);
            rc = 0;
        }
        sc_msg_reset (&reply);
        zframe_destroy (&answer);
    }
    free (frame);
    sc_msg_reset (&msg);
    zsock_destroy (&dealer);
    return rc;
}

/* SIGHUP: the key, the certificate and the registry again, all or
   nothing; then the users whose key went are logged out. */
static void
s_reload_config (const s_args_t *args, sc_broker_t *broker, sc_registry_t *registry)
{
    int64_t now = (int64_t) time (NULL);
    s_idfiles_t id;
    char why[1024];
    if (s_idfiles_load (args, now, &id, why, sizeof why)
        || sc_registry_reload (registry, why, sizeof why)) {
        s_idfiles_free (&id);
        sc_log (SC_LOG_ERROR, "reload failed: %s: keeping the old configuration", why);
        return;
    }
    char date[64];
    s_date (id.not_after, date, sizeof date);
    bool warn = s_expiry_warning (args, &id, now, why, sizeof why);
    if (sc_broker_set_identity (broker, &id.key, &id.cert, id.cert_len) == 0)
        sc_log (SC_LOG_INFO, "registry reloaded: %zu users; certificate valid until %s",
                sc_registry_size (registry), date);
    else
        sc_log (SC_LOG_ERROR, "registry reloaded: %zu users; out of memory: keeping "
                "the old key and certificate", sc_registry_size (registry));
    if (warn)
        sc_log (SC_LOG_WARNING, "%s", why);
    s_idfiles_free (&id);
    size_t revoked = sc_broker_revalidate (broker);
    if (revoked)
        sc_log (SC_LOG_INFO, "%zu user%s logged out: key removed or changed",
                revoked, revoked == 1 ? "" : "s");
}

typedef struct {
    void *handle;               /* the ROUTER                             */
    zmq_msg_t *current;         /* the envelope being handled             */
} s_shell_t;

/* One message to the client with this routing id: the routing frame,
   then body (which ZeroMQ takes over). Never blocks. The ROUTER refuses
   a message at its first frame (a full queue: SC_BROKER_FULL; a gone
   client, ZMQ_ROUTER_MANDATORY: SC_BROKER_GONE); once that frame went,
   the body can only be interrupted, and is sent again, so that no half
   message is left for the next one to join. */
static int
s_send_routed (void *handle, const uint8_t *rid, size_t rid_len, zmq_msg_t *body)
{
    if (zmq_send (handle, rid, rid_len, ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0)
        return zmq_errno () == EAGAIN ? SC_BROKER_FULL : SC_BROKER_GONE;
    int rc;
    while ((rc = zmq_msg_send (body, handle, ZMQ_DONTWAIT)) < 0 && zmq_errno () == EINTR)
        ;
    return rc < 0 ? SC_BROKER_FULL : 0;
}

/* sc_broker_send_fn: a frame the core made (a reply, an error, a relayed
   envelope that did not fit in place) is copied into a ZeroMQ message and
   freed here, in the thread that allocated it. */
static int
s_send (void *arg, const uint8_t *rid, size_t rid_len, uint8_t *frame, size_t len)
{
    zmq_msg_t msg;
    int rc = zmq_msg_init_size (&msg, len) == 0 ? 0 : SC_BROKER_FULL;
    if (rc == 0) {
        memcpy (zmq_msg_data (&msg), frame, len);
        rc = s_send_routed (((s_shell_t *) arg)->handle, rid, rid_len, &msg);
        zmq_msg_close (&msg);
    }
    free (frame);
    return rc;
}

/* sc_broker_forward_fn: the envelope the core re-sealed in place goes on
   as the very message it came in, without a copy, as the bench's raw
   relay forwards its messages; ZeroMQ frees it once written. (Received
   messages can be slices of ZeroMQ's 8 KiB read buffer, which a message
   queued to a peer that does not read then keeps: see SECURITY.md.) */
static int
s_forward (void *arg, const uint8_t *rid, size_t rid_len)
{
    s_shell_t *shell = arg;
    return s_send_routed (shell->handle, rid, rid_len, shell->current);
}

/* sc_broker_source_fn: the peer address of the connection of the
   message being handled (asked only for a HELLO). */
static const char *
s_source (void *arg)
{
    s_shell_t *shell = arg;
    return shell->current ? zmq_msg_gets (shell->current, "Peer-Address") : NULL;
}

/* ---- Login workers ---------------------------------------------------- */

/* A job travels as one frame holding its pointer. */
static int
s_job_send (void *handle, sc_broker_job_t *job, int flags)
{
    void *ptr = job;
    return zmq_send (handle, &ptr, sizeof ptr, flags) == (int) sizeof ptr ? 0 : -1;
}

/* The next job on the pipe: 1 and *job, 0 when none is waiting (or,
   on a worker's pipe, for $TERM). */
static int
s_job_recv (void *handle, sc_broker_job_t **job, int flags)
{
    void *ptr = NULL;
    zmq_msg_t msg;
    zmq_msg_init (&msg);
    int rc = zmq_msg_recv (&msg, handle, flags);
    bool is_job = rc == (int) sizeof ptr;
    if (is_job)
        memcpy (&ptr, zmq_msg_data (&msg), sizeof ptr);
    zmq_msg_close (&msg);
    *job = ptr;
    return is_job ? 1 : 0;
}

/* Anything on the pipe that is not a job is $TERM. */
static void
s_worker (zsock_t *pipe, void *args)
{
    (void) args;
    /* signals are the main loop's business */
    sigset_t all;
    sigfillset (&all);
    pthread_sigmask (SIG_BLOCK, &all, NULL);
    void *handle = zsock_resolve (pipe);
    zsock_signal (pipe, 0);
    sc_broker_job_t *job = NULL;
    while (s_job_recv (handle, &job, 0) == 1) {
        sc_broker_job_run (job);
        if (s_job_send (handle, job, 0))
            break;
    }
    /* CZMQ's actor threads are detached: zactor_destroy returns once
       this function has, before the thread has exited. OpenSSL's state
       for this thread goes now, so that the broker's exit never races
       its destructors. */
    sc_crypto_thread_stop ();
}

typedef struct {
    zactor_t *actor[S_WORKERS_MAX];
    size_t load[S_WORKERS_MAX];         /* jobs out at each worker        */
    size_t count;
} s_workers_t;

/* sc_broker_offload_fn: to the worker with the fewest jobs. The pipes
   have no high-water mark (zsys_set_pipehwm (0)): the core bounds the
   jobs out, each counted as a login in progress until it is back, to
   --max-logins (a job is about 1 KiB). */
static int
s_offload (void *arg, sc_broker_job_t *job)
{
    s_workers_t *self = arg;
    size_t best = 0;
    for (size_t i = 1; i < self->count; i++)
        if (self->load[i] < self->load[best])
            best = i;
    if (self->count == 0 || s_job_send (zsock_resolve (self->actor[best]), job, ZMQ_DONTWAIT))
        return -1;                      /* the core runs it itself */
    self->load[best]++;
    return 0;
}

/* Every job worker i has finished. */
static void
s_collect (s_workers_t *self, size_t i, sc_broker_t *broker)
{
    void *handle = zsock_resolve (self->actor[i]);
    sc_broker_job_t *job = NULL;
    while (s_job_recv (handle, &job, ZMQ_DONTWAIT) == 1) {
        if (self->load[i] > 0)
            self->load[i]--;
        sc_broker_job_done (broker, job, zclock_mono ());
    }
}

static int
s_workers_start (s_workers_t *self, long count)
{
    memset (self, 0, sizeof *self);
    zsys_set_pipehwm (0);
    for (long i = 0; i < count; i++) {
        self->actor[i] = zactor_new (s_worker, NULL);
        if (!self->actor[i])
            return -1;
        self->count++;
    }
    return 0;
}

/* Take back every job still out (their sessions go on or are dropped),
   then stop the workers. */
static void
s_workers_stop (s_workers_t *self, sc_broker_t *broker)
{
    int64_t deadline = zclock_mono () + 5000;
    while (sc_broker_jobs (broker) > 0 && zclock_mono () < deadline) {
        zmq_pollitem_t items[S_WORKERS_MAX];
        for (size_t i = 0; i < self->count; i++)
            items[i] = (zmq_pollitem_t) { zsock_resolve (self->actor[i]), 0, ZMQ_POLLIN, 0 };
        if (zmq_poll (items, (int) self->count, 100) > 0)
            for (size_t i = 0; i < self->count; i++)
                if (items[i].revents & ZMQ_POLLIN)
                    s_collect (self, i, broker);
    }
    for (size_t i = 0; i < self->count; i++)
        zactor_destroy (&self->actor[i]);
    self->count = 0;
}

static zsock_t *
s_bind (const s_args_t *args)
{
    zsock_t *router = zsock_new (ZMQ_ROUTER);
    if (!router)
        return NULL;
    zsock_set_maxmsgsize (router, SC_ENVELOPE_MAX);
    zsock_set_router_mandatory (router, 1);
    zsock_set_linger (router, 1000);
    zsock_set_sndhwm (router, 10000);
    /* At most 100 messages queued from one connection: past that TCP's
       flow control holds its sender back, so a connection that floods
       (HELLOs, say) holds a bounded backlog here (SECURITY.md). */
    zsock_set_rcvhwm (router, 100);
    /* Many clients connecting at once overflow ZeroMQ's default listen
       queue (100): the kernel drops their SYNs and they retry only after
       a second or more. The kernel caps this at net.core.somaxconn. */
    zsock_set_backlog (router, 4096);
    /* ZMTP heartbeats let libzmq close dead TCP connections itself. */
    zsock_set_heartbeat_ivl (router, (int) args->heartbeat_ms);
    zsock_set_heartbeat_timeout (router, (int) (3 * args->heartbeat_ms));
    if (zsock_bind (router, "%s", args->endpoint) < 0) {
        fprintf (stderr, "secbroker: cannot bind %s: %s\n", args->endpoint,
                 zmq_strerror (zmq_errno ()));
        zsock_destroy (&router);
    }
    return router;
}

/* Read every message waiting on the socket (at most a batch), hand each
   to the core. Messages that are not exactly [rid][envelope] are
   dropped. */
static void
s_drain (sc_broker_t *broker, s_shell_t *shell)
{
    void *handle = shell->handle;
    for (int i = 0; i < 1000; i++) {
        zmq_msg_t rid, body;
        zmq_msg_init (&rid);
        if (zmq_msg_recv (&rid, handle, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close (&rid);
            return;
        }
        zmq_msg_init (&body);
        bool ok = zmq_msg_more (&rid) && zmq_msg_recv (&body, handle, 0) >= 0;
        if (ok && zmq_msg_more (&body)) {
            ok = false;
            while (zmq_msg_more (&body) && zmq_msg_recv (&body, handle, 0) >= 0)
                ;   /* drain the extra frames */
        }
        if (ok && zmq_msg_size (&body) > 0) {
            shell->current = &body;
            (void) sc_broker_handle_frame (broker, zmq_msg_data (&rid), zmq_msg_size (&rid),
                                           zmq_msg_data (&body), zmq_msg_size (&body),
                                           zclock_mono ());
            shell->current = NULL;
        }
        else
            sc_log (SC_LOG_DEBUG, "dropped a message with a wrong frame count");
        zmq_msg_close (&body);
        zmq_msg_close (&rid);
    }
}

/* What the other nodes sent, at most a batch. */
static void
s_cluster_drain (sc_cluster_t *cluster, sc_broker_t *broker)
{
    sc_node_msg_t msg;
    for (int i = 0; i < 1000 && sc_cluster_next (cluster, &msg, zclock_mono ()) == 1; i++)
        sc_broker_cluster_msg (broker, &msg, zclock_mono ());
}

static int
s_run (const s_args_t *args, sc_registry_t *registry, const sc_key_t *key,
       const uint8_t *cert, size_t cert_len)
{
    sc_cluster_t *cluster = NULL;
    if (args->cluster.urls) {
        char why[1024];
        cluster = sc_cluster_new (&args->cluster, why, sizeof why);
        sc_wipe (s_nats_password, sizeof s_nats_password);
        if (!cluster) {
            fprintf (stderr, "secbroker: %s\n", why);
            return 1;
        }
        /* invitations and users shared by every node: JetStream's */
        if (sc_cluster_kv_open (cluster, true, why, sizeof why)) {
            fprintf (stderr, "secbroker: %s\n", why);
            sc_cluster_destroy (&cluster);
            return 1;
        }
    }
    zsock_t *router = s_bind (args);
    if (!router) {
        sc_cluster_destroy (&cluster);
        return 1;
    }
    void *handle = zsock_resolve (router);
    sc_broker_opts_t opts;
    sc_broker_opts_default (&opts);
    opts.heartbeat_ms = args->heartbeat_ms;
    opts.handshake_ms = args->login_timeout_ms;
    opts.max_handshakes = args->max_logins;
    opts.max_per_source = args->logins_per_source;
    opts.cookie_at = args->cookie_logins;
    opts.max_failed_per_source = args->failed_per_source;
    opts.registration_open = args->registration_open;
    s_shell_t shell = { handle, NULL };
    sc_broker_t *broker = sc_broker_new (key, cert, cert_len, registry, &opts, s_send, &shell);
    s_workers_t workers;
    if (!broker || s_workers_start (&workers, args->workers)) {
        sc_log (SC_LOG_ERROR, "cannot start the broker's core or its workers");
        if (broker)
            s_workers_stop (&workers, broker);
        sc_broker_destroy (&broker);
        zsock_destroy (&router);
        sc_cluster_destroy (&cluster);
        return 1;
    }
    sc_metrics_t *metrics = NULL;
    if (args->metrics) {
        char why[256];
        metrics = sc_metrics_new (args->metrics, why, sizeof why);
        if (!metrics) {
            fprintf (stderr, "secbroker: %s\n", why);
            s_workers_stop (&workers, broker);
            sc_broker_destroy (&broker);
            zsock_destroy (&router);
            sc_cluster_destroy (&cluster);
            return 1;
        }
        sc_log (SC_LOG_INFO, "metrics on http://%s/metrics", sc_metrics_address (metrics));
    }
    if (cluster) {
        sc_broker_set_cluster (broker, cluster);
        /* the bucket's users are known before any login */
        sc_node_msg_t msg;
        while (sc_cluster_next (cluster, &msg, zclock_mono ()) == 1)
            sc_broker_cluster_msg (broker, &msg, zclock_mono ());
    }
    sc_broker_set_forward (broker, s_forward);
    sc_broker_set_source (broker, s_source);
    if (workers.count)
        sc_broker_set_offload (broker, s_offload, &workers);
    printf ("secbroker listening on %s\n", zsock_endpoint (router));
    fflush (stdout);
    if (sc_notify ("READY=1") < 0)
        sc_log (SC_LOG_WARNING, "cannot notify systemd: %s", strerror (errno));
    sc_log (SC_LOG_INFO, "listening on %s, %zu users registered, %zu login workers",
            zsock_endpoint (router), sc_registry_size (registry), workers.count);
    if (args->registration_open)
        sc_log (SC_LOG_WARNING, "registration is open: anyone who reaches %s may "
                "enrol any free name", zsock_endpoint (router));
    if (cluster)
        sc_log (SC_LOG_INFO, "node %s of the cluster at %s, %zu users in %s",
                sc_cluster_node (cluster), args->cluster.urls,
                sc_registry_cluster_size (registry), SC_CLUSTER_USERS);

    int64_t next_tick = zclock_mono () + S_TICK_MS;
    /* the ROUTER, the cluster's queue when there is one, the workers */
    zmq_pollitem_t items[2 + S_WORKERS_MAX];
    int base = 1;
    items[0] = (zmq_pollitem_t) { handle, 0, ZMQ_POLLIN, 0 };
    if (cluster)
        items[base++] = (zmq_pollitem_t) { NULL, sc_cluster_fd (cluster), ZMQ_POLLIN, 0 };
    for (size_t i = 0; i < workers.count; i++)
        items[base + i] = (zmq_pollitem_t) { zsock_resolve (workers.actor[i]), 0, ZMQ_POLLIN, 0 };
    while (!zsys_interrupted) {
        long timeout = (long) (next_tick - zclock_mono ());
        /* The workers' pipes only while jobs are out: each socket in a
           zmq_poll costs system calls (ZeroMQ checks its mailbox), and
           between logins the relay needs only the ROUTER. */
        int nitems = sc_broker_jobs (broker) > 0 ? base + (int) workers.count : base;
        for (int i = 1; i < base + (int) workers.count; i++)
            items[i].revents = 0;
        int rc = zmq_poll (items, nitems, timeout > 0 ? timeout : 0);
        if (rc < 0 && zmq_errno () != EINTR) {
            sc_log (SC_LOG_ERROR, "poll failed: %s", zmq_strerror (zmq_errno ()));
            break;
        }
        for (size_t i = 0; rc > 0 && i < workers.count; i++)
            if (items[base + i].revents & ZMQ_POLLIN)
                s_collect (&workers, i, broker);
        if (rc > 0 && (items[0].revents & ZMQ_POLLIN))
            s_drain (broker, &shell);
        if (cluster && rc > 0 && (items[1].revents & ZMQ_POLLIN))
            s_cluster_drain (cluster, broker);
        if (s_reload) {
            s_reload = 0;
            sc_notify_reloading ();
            s_reload_config (args, broker, registry);
            sc_notify ("READY=1");
        }
        if (zclock_mono () >= next_tick) {
            if (cluster) {
                sc_cluster_tick (cluster, zclock_mono ());
                s_cluster_drain (cluster, broker);
            }
            sc_broker_tick (broker, zclock_mono ());
            if (metrics) {
                sc_broker_stats_t stats;
                sc_broker_stats (broker, &stats);
                sc_metrics_update (metrics, &stats);
            }
            next_tick = zclock_mono () + S_TICK_MS;
        }
    }
    sc_notify ("STOPPING=1");
    sc_log (SC_LOG_INFO, "stopping: %zu sessions", sc_broker_sessions (broker));
    sc_broker_shutdown (broker);
    s_workers_stop (&workers, broker);
    sc_metrics_destroy (&metrics);
    sc_broker_destroy (&broker);
    zsock_destroy (&router);
    sc_cluster_destroy (&cluster);
    return 0;
}

/* ---- secbroker invite, secbroker users ---------------------------------- */

/* The NATS options the tools share with the broker (the same getopt
   values as s_parse's). */
#define S_NATS_TOOL_OPTIONS \
        { "cluster", required_argument, NULL, 'N' }, \
        { "nats-user", required_argument, NULL, 1 }, \
        { "nats-password", required_argument, NULL, 2 }, \
        { "nats-creds", required_argument, NULL, 3 }, \
        { "nats-tlsca", required_argument, NULL, 4 }, \
        { "nats-tlscert", required_argument, NULL, 5 }, \
        { "nats-tlskey", required_argument, NULL, 6 }, \
        { "nats-password-file", required_argument, NULL, 7 }, \
        { "nats-nkey", required_argument, NULL, 8 }, \
        { "nats-replicas", required_argument, NULL, 9 }

/* One of those options into opts: 1 taken, 0 not one of them, -1 bad
   (said). */
static int
s_nats_tool_option (int opt, const char *arg, sc_cluster_opts_t *opts)
{
    switch (opt) {
        case 'N': opts->urls = arg; return 1;
        case 1: opts->user = arg; return 1;
        case 2: opts->password = arg; return 1;
        case 3: opts->creds = arg; return 1;
        case 4: opts->tls_ca = arg; return 1;
        case 5: opts->tls_cert = arg; return 1;
        case 6: opts->tls_key = arg; return 1;
        case 8: opts->nkey = arg; return 1;
        case 9: return s_replicas (arg, &opts->replicas) ? -1 : 1;
        case 7: {
            FILE *file = fopen (arg, "r");
            bool ok = file && fgets (s_nats_password, sizeof s_nats_password, file);
            if (file)
                (void) fclose (file);
            s_nats_password[strcspn (s_nats_password, "\r\n")] = 0;
            if (!ok || !*s_nats_password) {
                fprintf (stderr, "secbroker: cannot read a password from %s\n", arg);
                return -1;
            }
            opts->password = s_nats_password;
            return 1;
        }
        default: return 0;
    }
}

/* A connection to the cluster's buckets for a tool, or NULL (said). */
static sc_cluster_t *
s_nats_tool_connect (sc_cluster_opts_t *opts)
{
    if (opts->creds && opts->nkey) {
        fprintf (stderr, "secbroker: --nats-creds or --nats-nkey, not both\n");
        return NULL;
    }
    if (!opts->tls_cert != !opts->tls_key) {
        fprintf (stderr, "secbroker: --nats-tlscert and --nats-tlskey go together\n");
        return NULL;
    }
    zsys_init ();
    zsys_set_logstream (stderr);
    zsys_set_logident ("secbroker");
    sc_log_set_level ("error");
    opts->node = "secbroker-tool";
    opts->tool = true;
    char why[1024];
    sc_cluster_t *cluster = sc_cluster_new (opts, why, sizeof why);
    sc_wipe (s_nats_password, sizeof s_nats_password);
    if (cluster && sc_cluster_kv_open (cluster, false, why, sizeof why))
        sc_cluster_destroy (&cluster);
    if (!cluster)
        fprintf (stderr, "secbroker: %s\n", why);
    return cluster;
}

/* Whether any NATS option but --cluster was given. */
static bool
s_nats_tool_options_set (const sc_cluster_opts_t *o, bool replicas)
{
    return o->user || o->password || o->creds || o->nkey || o->tls_ca || o->tls_cert
           || o->tls_key || replicas;
}

/* An invitation of --list: its expiry (-1: not a valid invitation),
   and whether it is past; arg points to now. */
static void
s_invite_print (void *arg, const char *name, int64_t expires)
{
    int64_t now = *(const int64_t *) arg;
    char date[64];
    if (expires < 0) {
        printf ("%s invalid\n", name);
        return;
    }
    s_date (expires, date, sizeof date);
    printf ("%s %s%s\n", name, date, expires <= now ? " expired" : "");
}

/* The same for an entry of the bucket secchat-invites. */
static void
s_invite_list_kv (void *arg, const char *name, const uint8_t *value, size_t len)
{
    int64_t expires = -1;
    if (len == strlen (SC_INVITE_USED) && memcmp (value, SC_INVITE_USED, len) == 0) {
        printf ("%s used\n", name);
        return;
    }
    if (sc_invite_parse_line ((const char *) value, len, &expires) != SC_INVITE_OK)
        expires = -1;
    s_invite_print (arg, name, expires);
}

/* secbroker invite --cluster: the same, on the bucket secchat-invites. */
static int
s_invite_kv (sc_cluster_opts_t *opts, bool list, const char *revoke, const char *name,
             int64_t valid)
{
    sc_cluster_t *cluster = s_nats_tool_connect (opts);
    if (!cluster)
        return 1;
    int64_t now = (int64_t) time (NULL);
    char why[1024];
    int rc = 1;
    if (list) {
        if (sc_cluster_kv_list (cluster, SC_CLUSTER_INVITES, s_invite_list_kv, &now, why,
                                sizeof why) == 0)
            rc = 0;
        else
            fprintf (stderr, "secbroker: cannot list %s: %s\n", SC_CLUSTER_INVITES, why);
    }
    else
    if (revoke) {
        char line[SC_INVITE_LINE_MAX];
        size_t len = 0;
        int64_t expires = 0;
        int got = sc_cluster_kv_get (cluster, SC_CLUSTER_INVITES, revoke, (uint8_t *) line,
                                     sizeof line, &len, NULL, why, sizeof why);
        /* a used one is none either */
        bool none = got == SC_CLUSTER_KV_NONE
                    || (got == SC_CLUSTER_KV_OK
                        && sc_invite_parse_line (line, len, &expires) != SC_INVITE_OK);
        if (none)
            fprintf (stderr, "secbroker: cannot revoke the invitation of %s: there is none\n",
                     revoke);
        else
        if (got != SC_CLUSTER_KV_OK
            || sc_cluster_kv_delete (cluster, SC_CLUSTER_INVITES, revoke, why, sizeof why))
            fprintf (stderr, "secbroker: %s\n", why);
        else {
            fprintf (stderr, "secbroker: invitation of %s revoked\n", revoke);
            rc = 0;
        }
    }
    else {
        uint8_t code[SC_HS_CODE_LEN], pub[256];
        char line[SC_INVITE_LINE_MAX], text[SC_HS_CODE_TEXT_LEN + 1], date[64];
        size_t len = 0;
        int got = sc_cluster_kv_get (cluster, SC_CLUSTER_USERS, name, pub, sizeof pub, &len,
                                     NULL, why, sizeof why);
        int n = -1;
        if (got == SC_CLUSTER_KV_OK)
            fprintf (stderr, "secbroker: cannot invite %s: %s is already registered (in %s)\n",
                     name, name, SC_CLUSTER_USERS);
        else
        if (got == SC_CLUSTER_KV_NONE && (n = sc_invite_line (code, now + valid, line)) < 0)
            fprintf (stderr, "secbroker: cannot invite %s: cannot make a code\n", name);
        else
        /* NATS failed, reading or writing */
        if (got != SC_CLUSTER_KV_NONE
            || sc_cluster_kv_put (cluster, SC_CLUSTER_INVITES, name, (const uint8_t *) line,
                                  (size_t) n, why, sizeof why))
            fprintf (stderr, "secbroker: cannot invite %s: %s\n", name, why);
        else {
            sc_enrol_code_format (code, text);
            s_date (now + valid, date, sizeof date);
            printf ("%s\n", text);
            fflush (stdout);
            sc_wipe (text, sizeof text);
            fprintf (stderr, "secbroker: %s may enrol once with this code on any node of the "
                     "cluster until %s:\n"
                     "  secchat enrol --user %s --code CODE --endpoint EP --ca ca.pem\n",
                     name, date, name);
            rc = 0;
        }
        if (n >= 0)
            sc_wipe (code, sizeof code);
    }
    sc_cluster_destroy (&cluster);
    return rc;
}

static void
s_invite_usage (FILE *out)
{
    fprintf (out,
        "usage: secbroker invite NAME [--users DIR] [--valid TIME]\n"
        "       secbroker invite --list [--users DIR]\n"
        "       secbroker invite --revoke NAME [--users DIR]\n"
        "       secbroker invite ... --cluster URLS [--nats-* options]\n"
        "\n"
        "  --users DIR   the broker's registry (default /var/lib/secbroker/users)\n"
        "  --valid TIME  how long the code is good: 30s, 10m, 24h, 7d...\n"
        "                (1 s to 365 d; default 24h)\n"
        "  --cluster URLS  the cluster's NATS servers, with the brokers' --nats-*\n"
        "                options: the invitation goes to the bucket\n"
        "                secchat-invites (good on every node), not to DIR\n");
}

static int
s_invite (int argc, char **argv)
{
    static const struct option options[] = {
        { "users", required_argument, NULL, 'u' },
        { "valid", required_argument, NULL, 'v' },
        { "list", no_argument, NULL, 'l' },
        { "revoke", required_argument, NULL, 'r' },
        { "help", no_argument, NULL, 'h' },
        S_NATS_TOOL_OPTIONS,
        { NULL, 0, NULL, 0 }
    };
    const char *users = "/var/lib/secbroker/users", *revoke = NULL;
    int64_t valid = 86400;
    bool list = false, users_set = false, replicas = false;
    sc_cluster_opts_t nats;
    sc_cluster_opts_default (&nats);
    int opt;
    while ((opt = getopt_long (argc, argv, "h", options, NULL)) != -1) {
        int taken = s_nats_tool_option (opt, optarg, &nats);
        if (taken < 0)
            return 2;
        replicas = replicas || opt == 9;
        if (taken)
            continue;
        users_set = users_set || opt == 'u';
        switch (opt) {
            case 'u': users = optarg; break;
            case 'v':
                if (sc_invite_parse_valid (optarg, &valid)) {
                    fprintf (stderr, "secbroker: --valid takes a count and s, m, h or d "
                             "(30s, 10m, 24h, 7d), at most 365d\n");
                    return 2;
                }
                break;
            case 'l': list = true; break;
            case 'r': revoke = optarg; break;
            case 'h': s_invite_usage (stdout); return 0;
            default: s_invite_usage (stderr); return 2;
        }
    }
    const char *name = optind < argc ? argv[optind++] : NULL;
    if (optind < argc || (list + (revoke != NULL) + (name != NULL)) != 1) {
        s_invite_usage (stderr);
        return 2;
    }
    if (!nats.urls && s_nats_tool_options_set (&nats, replicas)) {
        fprintf (stderr, "secbroker: the --nats-* options need --cluster\n");
        return 2;
    }
    if (nats.urls && users_set) {
        fprintf (stderr, "secbroker: --users or --cluster, not both\n");
        return 2;
    }
    const char *who = revoke ? revoke : name;
    if (who && !sc_name_valid (who, strlen (who))) {
        fprintf (stderr, "secbroker: a name is 1 to 32 of a-z 0-9 _ -\n");
        return 2;
    }
    if (nats.urls)
        return s_invite_kv (&nats, list, revoke, name, valid);
    int64_t now = (int64_t) time (NULL);
    if (list) {
        if (sc_invite_list (users, s_invite_print, &now) == 0)
            return 0;
        fprintf (stderr, "secbroker: cannot read %s: %s\n", users, strerror (errno));
        return 1;
    }
    if (revoke) {
        if (sc_invite_remove (users, revoke) == 0) {
            fprintf (stderr, "secbroker: invitation of %s revoked\n", revoke);
            return 0;
        }
        fprintf (stderr, "secbroker: cannot revoke the invitation of %s: %s\n", revoke,
                 errno == ENOENT ? "there is none" : strerror (errno));
        return 1;
    }
    uint8_t code[SC_HS_CODE_LEN];
    char why[4200], text[SC_HS_CODE_TEXT_LEN + 1], date[64];
    if (sc_invite_create (users, name, now + valid, code, why, sizeof why)) {
        fprintf (stderr, "secbroker: cannot invite %s: %s\n", name, why);
        return 1;
    }
    sc_enrol_code_format (code, text);
    sc_wipe (code, sizeof code);
    s_date (now + valid, date, sizeof date);
    printf ("%s\n", text);
    fflush (stdout);
    sc_wipe (text, sizeof text);
    fprintf (stderr, "secbroker: %s may enrol once with this code until %s:\n"
             "  secchat enrol --user %s --code CODE --endpoint EP --ca ca.pem\n",
             name, date, name);
    return 0;
}

static void
s_users_usage (FILE *out)
{
    fprintf (out,
        "usage: secbroker users --list --cluster URLS [--nats-* options]\n"
        "       secbroker users --add NAME FILE.pub --cluster URLS [--nats-* options]\n"
        "       secbroker users --remove NAME --cluster URLS [--nats-* options]\n"
        "\n"
        "The users of a cluster, in its bucket secchat-users: --list prints\n"
        "each name and its key's fingerprint, --add registers NAME with the\n"
        "Ed25519 public key in FILE.pub (a name registered is never\n"
        "replaced: --remove it first), --remove deletes NAME: every node logs\n"
        "it out (ERROR REVOKED). The NATS options are the brokers'.\n");
}

static void
s_users_list_kv (void *arg, const char *name, const uint8_t *value, size_t len)
{
    (void) arg;
    char fpr[SC_FPR_LEN + 1];
    if (len == SC_PUB_LEN && sc_fingerprint (value, fpr) == 0)
        printf ("%s %s\n", name, fpr);
    else
        printf ("%s invalid\n", name);
}

static int
s_users (int argc, char **argv)
{
    static const struct option options[] = {
        { "list", no_argument, NULL, 'l' },
        { "add", required_argument, NULL, 'a' },
        { "remove", required_argument, NULL, 'r' },
        { "help", no_argument, NULL, 'h' },
        S_NATS_TOOL_OPTIONS,
        { NULL, 0, NULL, 0 }
    };
    const char *add = NULL, *remove = NULL;
    bool list = false;
    sc_cluster_opts_t nats;
    sc_cluster_opts_default (&nats);
    int opt;
    while ((opt = getopt_long (argc, argv, "h", options, NULL)) != -1) {
        int taken = s_nats_tool_option (opt, optarg, &nats);
        if (taken < 0)
            return 2;
        if (taken)
            continue;
        switch (opt) {
            case 'l': list = true; break;
            case 'a': add = optarg; break;
            case 'r': remove = optarg; break;
            case 'h': s_users_usage (stdout); return 0;
            default: s_users_usage (stderr); return 2;
        }
    }
    const char *file = add && optind < argc ? argv[optind++] : NULL;
    if (optind < argc || (list + (add != NULL) + (remove != NULL)) != 1 || (add && !file)) {
        s_users_usage (stderr);
        return 2;
    }
    if (!nats.urls) {
        fprintf (stderr, "secbroker: users works on a cluster's bucket: --cluster URLS "
                 "(a broker on its own has its users folder)\n");
        return 2;
    }
    const char *who = add ? add : remove;
    if (who && !sc_name_valid (who, strlen (who))) {
        fprintf (stderr, "secbroker: a name is 1 to 32 of a-z 0-9 _ -\n");
        return 2;
    }
    uint8_t pub[SC_PUB_LEN];
    if (add) {
        int err = 0;
        sc_key_t *key = sc_key_load_public (file, &err);
        int rc = key ? sc_key_public_raw (key, pub) : -1;
        sc_key_destroy (&key);
        if (rc) {
            fprintf (stderr, "secbroker: %s: %s\n", file,
                     err ? sc_key_strerror (err) : "not an Ed25519 public key");
            return 1;
        }
    }
    sc_cluster_t *cluster = s_nats_tool_connect (&nats);
    if (!cluster)
        return 1;
    char why[1024];
    int rc = 1;
    if (list) {
        if (sc_cluster_kv_list (cluster, SC_CLUSTER_USERS, s_users_list_kv, NULL, why,
                                sizeof why) == 0)
            rc = 0;
        else
            fprintf (stderr, "secbroker: cannot list %s: %s\n", SC_CLUSTER_USERS, why);
    }
    else
    if (add) {
        int got = sc_cluster_kv_create (cluster, SC_CLUSTER_USERS, add, pub, sizeof pub, NULL, why,
                                        sizeof why);
        if (got == SC_CLUSTER_KV_EXISTS)
            fprintf (stderr, "secbroker: %s is already registered (--remove it first)\n", add);
        else
        if (got)
            fprintf (stderr, "secbroker: %s\n", why);
        else {
            fprintf (stderr, "secbroker: %s registered in %s\n", add, SC_CLUSTER_USERS);
            rc = 0;
        }
    }
    else {
        uint8_t value[256];
        size_t len = 0;
        int got = sc_cluster_kv_get (cluster, SC_CLUSTER_USERS, remove, value, sizeof value,
                                     &len, NULL, why, sizeof why);
        if (got == SC_CLUSTER_KV_NONE)
            fprintf (stderr, "secbroker: %s is not registered in %s\n", remove,
                     SC_CLUSTER_USERS);
        else
        if (got || sc_cluster_kv_delete (cluster, SC_CLUSTER_USERS, remove, why, sizeof why))
            fprintf (stderr, "secbroker: %s\n", why);
        else {
            fprintf (stderr, "secbroker: %s removed from %s\n", remove, SC_CLUSTER_USERS);
            rc = 0;
        }
    }
    sc_cluster_destroy (&cluster);
    return rc;
}

int
main (int argc, char **argv)
{
    /* This process holds the broker's key and every session's keys: no
       core dump of it, and no ptrace by other processes of the user. */
    const struct rlimit no_core = { 0, 0 };
    if (prctl (PR_SET_DUMPABLE, 0, 0, 0, 0) || setrlimit (RLIMIT_CORE, &no_core)) {
        fprintf (stderr, "secbroker: cannot disable core dumps: %s\n", strerror (errno));
        return 1;
    }
    if (argc > 1 && strcmp (argv[1], "invite") == 0)
        return s_invite (argc - 1, argv + 1);
    if (argc > 1 && strcmp (argv[1], "users") == 0)
        return s_users (argc - 1, argv + 1);
    s_args_t args;
    int rc = s_parse (argc, argv, &args);
    if (rc)
        return rc > 0 ? 0 : 2;
    if (args.check)
        return s_check (&args);
    if (args.probe)
        return s_probe (args.probe);
    zsys_init ();
    zsys_set_logstream (stderr);
    zsys_set_logident ("secbroker");
    sc_log_open ("secbroker", NULL);
    signal (SIGPIPE, SIG_IGN);
    struct sigaction sa;
    memset (&sa, 0, sizeof sa);
    sa.sa_handler = s_on_sighup;
    sigemptyset (&sa.sa_mask);
    sigaction (SIGHUP, &sa, NULL);
    s_raise_nofile ();

    int64_t now = (int64_t) time (NULL);
    s_idfiles_t id;
    char why[1024];
    if (s_idfiles_load (&args, now, &id, why, sizeof why)) {
        fprintf (stderr, "secbroker: %s\n", why);
        return 1;
    }
    if (s_expiry_warning (&args, &id, now, why, sizeof why))
        sc_log (SC_LOG_WARNING, "%s", why);
    sc_registry_t *registry = sc_registry_new (args.users);
    if (!registry) {
        fprintf (stderr, "secbroker: cannot read the user registry %s\n", args.users);
        s_idfiles_free (&id);
        return 1;
    }
    /* enrolment writes NAME.pub there (in a cluster: the bucket) */
    if (!args.cluster.urls && access (args.users, W_OK) != 0) {
        if (args.registration_open) {
            fprintf (stderr, "secbroker: --registration open needs a users folder the "
                     "broker can write: %s: %s\n", args.users, strerror (errno));
            sc_registry_destroy (&registry);
            s_idfiles_free (&id);
            return 2;
        }
        sc_log (SC_LOG_WARNING, "the users folder %s is read-only to the broker (%s): "
                "enrolments will be refused", args.users, strerror (errno));
    }
    rc = s_run (&args, registry, id.key, id.cert, id.cert_len);
    sc_registry_destroy (&registry);
    s_idfiles_free (&id);
    return rc;
}
