/*  sc_metrics: /metrics with libmicrohttpd.

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at https://mozilla.org/MPL/2.0/.
*/
#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "sc_metrics.h"

#define S_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

struct _sc_metrics_t {
    struct MHD_Daemon *daemon;
    pthread_mutex_t lock;       /* guards stats                           */
    sc_broker_stats_t stats;
    char address[INET6_ADDRSTRLEN + 16];
};

/* ---- The exposition text --------------------------------------------- */

typedef struct {
    char *buf;
    size_t len, size;
    bool failed;
} s_text_t;

static void
s_add (s_text_t *t, const char *format, ...) __attribute__ ((format (printf, 2, 3)));

static void
s_add (s_text_t *t, const char *format, ...)
{
    if (t->failed)
        return;
    for (;;) {
        va_list args;
        va_start (args, format);
        int n = vsnprintf (t->buf + t->len, t->size - t->len, format, args);
        va_end (args);
        if (n < 0) {
            t->failed = true;
            return;
        }
        if ((size_t) n < t->size - t->len) {
            t->len += (size_t) n;
            return;
        }
        size_t size = t->size * 2 + (size_t) n;
        char *buf = realloc (t->buf, size);
        if (!buf) {
            t->failed = true;
            return;
        }
        t->buf = buf;
        t->size = size;
    }
}

static void
s_metric (s_text_t *t, const char *name, const char *type, const char *help, uint64_t value)
{
    s_add (t, "# HELP %s %s\n# TYPE %s %s\n%s %llu\n", name, help, name, type, name,
           (unsigned long long) value);
}

char *
sc_metrics_format (const sc_broker_stats_t *stats)
{
    s_text_t t = { malloc (2048), 0, 2048, false };
    if (!t.buf)
        return NULL;
    s_metric (&t, "secbroker_sessions", "gauge", "Users logged in now.", stats->sessions);
    s_metric (&t, "secbroker_handshakes", "gauge", "Logins in progress now.",
              stats->handshakes);
    s_metric (&t, "secbroker_chats", "gauge", "Chats open now.", stats->chats);
    s_metric (&t, "secbroker_logins_total", "counter", "Logins that succeeded.",
              stats->logins);
    s_add (&t, "# HELP secbroker_login_failures_total Logins that failed or were refused, "
               "by reason.\n# TYPE secbroker_login_failures_total counter\n");
    for (int i = 0; i < SC_BROKER_FAIL_COUNT; i++)
        s_add (&t, "secbroker_login_failures_total{reason=\"%s\"} %llu\n",
               sc_broker_fail_name ((sc_broker_fail_t) i),
               (unsigned long long) stats->logins_failed[i]);
    s_metric (&t, "secbroker_cookie_replies_total", "counter",
              "HELLOs answered with a COOKIE (logins under load).", stats->cookies);
    s_metric (&t, "secbroker_relayed_messages_total", "counter",
              "Envelopes relayed between chat peers (MESSAGE and the end-to-end handshake).",
              stats->relayed);
    s_metric (&t, "secbroker_relayed_bytes_total", "counter",
              "Bytes of the envelopes relayed, as received.", stats->relayed_bytes);
    s_metric (&t, "secbroker_undelivered_total", "counter",
              "Envelopes to relay that could not be delivered.", stats->undelivered);
    if (stats->clustered) {
        s_metric (&t, "secbroker_cluster_connected", "gauge",
                  "1 while connected to a NATS server of the cluster, else 0.",
                  stats->cluster_connected);
        s_metric (&t, "secbroker_cluster_nodes", "gauge",
                  "Other nodes of the cluster heard from.", stats->cluster_nodes);
        s_metric (&t, "secbroker_cluster_remote_users", "gauge",
                  "Users online on the other nodes.", stats->cluster_users);
        s_metric (&t, "secbroker_cluster_reconnects_total", "counter",
                  "Reconnections to NATS since the start.", stats->cluster_reconnects);
        s_metric (&t, "secbroker_cluster_registered_users", "gauge",
                  "Users registered in the cluster's bucket secchat-users.",
                  stats->cluster_registered);
    }
    if (t.failed) {
        free (t.buf);
        return NULL;
    }
    return t.buf;
}

/* ---- The server ------------------------------------------------------ */

static enum MHD_Result
s_reply (struct MHD_Connection *connection, unsigned int status, char *body, bool take)
{
    struct MHD_Response *response = MHD_create_response_from_buffer (
        strlen (body), body, take ? MHD_RESPMEM_MUST_FREE : MHD_RESPMEM_PERSISTENT);
    if (!response) {
        if (take)
            free (body);
        return MHD_NO;
    }
    enum MHD_Result rc = MHD_YES;
    if (status == MHD_HTTP_OK)
        rc = MHD_add_response_header (response, MHD_HTTP_HEADER_CONTENT_TYPE, S_CONTENT_TYPE);
    else
    if (status == MHD_HTTP_METHOD_NOT_ALLOWED)
        rc = MHD_add_response_header (response, MHD_HTTP_HEADER_ALLOW, "GET, HEAD");
    if (rc == MHD_YES)
        rc = MHD_queue_response (connection, status, response);
    MHD_destroy_response (response);
    return rc;
}

static enum MHD_Result
s_handle (void *cls, struct MHD_Connection *connection, const char *url,
          const char *method, const char *version, const char *upload_data,
          size_t *upload_data_size, void **con_cls)
{
    (void) version;
    (void) upload_data;
    sc_metrics_t *self = cls;
    /* a body sent with the request is read and ignored */
    if (*upload_data_size) {
        *upload_data_size = 0;
        return MHD_YES;
    }
    if (!*con_cls) {                /* headers only so far: wait for the end */
        *con_cls = self;
        return MHD_YES;
    }
    if (strcmp (url, "/metrics") != 0)
        return s_reply (connection, MHD_HTTP_NOT_FOUND, (char *) "not found: try /metrics\n",
                        false);
    if (strcmp (method, MHD_HTTP_METHOD_GET) != 0 && strcmp (method, MHD_HTTP_METHOD_HEAD) != 0)
        return s_reply (connection, MHD_HTTP_METHOD_NOT_ALLOWED,
                        (char *) "method not allowed\n", false);
    sc_broker_stats_t stats;
    pthread_mutex_lock (&self->lock);
    stats = self->stats;
    pthread_mutex_unlock (&self->lock);
    char *text = sc_metrics_format (&stats);
    if (!text)
        return s_reply (connection, MHD_HTTP_INTERNAL_SERVER_ERROR, (char *) "out of memory\n",
                        false);
    return s_reply (connection, MHD_HTTP_OK, text, true);
}

/* "HOST:PORT" into addr; 0 or -1. */
static int
s_parse (const char *text, struct sockaddr_storage *addr, socklen_t *len)
{
    char host[INET6_ADDRSTRLEN + 1];
    const char *colon;
    size_t host_len;
    if (text[0] == '[') {
        const char *close = strchr (text, ']');
        if (!close || close[1] != ':')
            return -1;
        host_len = (size_t) (close - text - 1);
        if (host_len >= sizeof host)
            return -1;
        memcpy (host, text + 1, host_len);
        colon = close + 1;
    }
    else {
        colon = strrchr (text, ':');
        if (!colon)
            return -1;
        host_len = (size_t) (colon - text);
        if (host_len >= sizeof host)
            return -1;
        memcpy (host, text, host_len);
    }
    host[host_len] = 0;
    const char *port_text = colon + 1;
    char *end = NULL;
    unsigned long port = strtoul (port_text, &end, 10);
    if (!*port_text || *end || *port_text == '-' || *port_text == '+' || port > 65535)
        return -1;
    memset (addr, 0, sizeof *addr);
    struct sockaddr_in *a4 = (struct sockaddr_in *) addr;
    struct sockaddr_in6 *a6 = (struct sockaddr_in6 *) addr;
    if (text[0] != '[' && inet_pton (AF_INET, host, &a4->sin_addr) == 1) {
        a4->sin_family = AF_INET;
        a4->sin_port = htons ((uint16_t) port);
        *len = sizeof *a4;
        return 0;
    }
    if (text[0] == '[' && inet_pton (AF_INET6, host, &a6->sin6_addr) == 1) {
        a6->sin6_family = AF_INET6;
        a6->sin6_port = htons ((uint16_t) port);
        *len = sizeof *a6;
        return 0;
    }
    return -1;
}

sc_metrics_t *
sc_metrics_new (const char *addr, char *why, size_t size)
{
    struct sockaddr_storage sa;
    socklen_t sa_len = 0;
    if (!addr || s_parse (addr, &sa, &sa_len)) {
        snprintf (why, size, "--metrics takes ADDRESS:PORT, e.g. 127.0.0.1:9464 or "
                  "[::1]:9464, not '%s'", addr ? addr : "");
        return NULL;
    }
    sc_metrics_t *self = calloc (1, sizeof *self);
    if (!self || pthread_mutex_init (&self->lock, NULL)) {
        free (self);
        snprintf (why, size, "out of memory");
        return NULL;
    }
    unsigned int flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_AUTO;
    if (sa.ss_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    /* the server's thread takes no signal: they are the loop's */
    sigset_t all, old;
    sigfillset (&all);
    pthread_sigmask (SIG_BLOCK, &all, &old);
    self->daemon = MHD_start_daemon (flags, 0, NULL, NULL, s_handle, self,
                                     MHD_OPTION_SOCK_ADDR, (struct sockaddr *) &sa,
                                     MHD_OPTION_CONNECTION_LIMIT, (unsigned int) 64,
                                     MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned int) 8,
                                     MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int) 10,
                                     MHD_OPTION_END);
    pthread_sigmask (SIG_SETMASK, &old, NULL);
    if (!self->daemon) {
        snprintf (why, size, "cannot serve metrics on %s (in use, or not an address "
                  "of this host?)", addr);
        pthread_mutex_destroy (&self->lock);
        free (self);
        return NULL;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info (self->daemon,
                                                            MHD_DAEMON_INFO_BIND_PORT);
    uint16_t port = info ? info->port : 0;
    char host[INET6_ADDRSTRLEN];
    if (sa.ss_family == AF_INET6) {
        inet_ntop (AF_INET6, &((struct sockaddr_in6 *) &sa)->sin6_addr, host, sizeof host);
        snprintf (self->address, sizeof self->address, "[%s]:%u", host, port);
    }
    else {
        inet_ntop (AF_INET, &((struct sockaddr_in *) &sa)->sin_addr, host, sizeof host);
        snprintf (self->address, sizeof self->address, "%s:%u", host, port);
    }
    return self;
}

void
sc_metrics_destroy (sc_metrics_t **self_p)
{
    if (self_p && *self_p) {
        sc_metrics_t *self = *self_p;
        MHD_stop_daemon (self->daemon);
        pthread_mutex_destroy (&self->lock);
        free (self);
        *self_p = NULL;
    }
}

const char *
sc_metrics_address (const sc_metrics_t *self)
{
    return self->address;
}

void
sc_metrics_update (sc_metrics_t *self, const sc_broker_stats_t *stats)
{
    pthread_mutex_lock (&self->lock);
    self->stats = *stats;
    pthread_mutex_unlock (&self->lock);
}
