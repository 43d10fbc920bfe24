/*  sc_endpoint: one address of a broker, and the check that it answers
    (see sc_endpoint.h).

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at https://mozilla.org/MPL/2.0/.
*/
#include "sc_endpoint.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define S_PORT_LEN      6           /* "65535" and its NUL                */
#define S_ERROR_MAX     1024

struct _sc_endpoint_t {
    char *host;                     /* without brackets                   */
    char port[S_PORT_LEN];
    bool bracketed;                 /* an IPv6 address                    */
    char *name;                     /* tcp://HOST:PORT                    */
    struct addrinfo *addrs;         /* what HOST resolved to              */
    struct addrinfo *next;          /* the next address to try            */
    struct addrinfo *trying;        /* the connection in progress         */
    int fd;                         /* its socket, or -1                  */
    int result;                     /* of the probe: 1, 0 or -1           */
    int last_errno;                 /* of the last address that failed    */
    bool ipv6;
    char address[SC_ENDPOINT_TEXT_MAX + 16];
    char error[S_ERROR_MAX];
};

/* ---- Parsing -------------------------------------------------------------- */

static void
s_why (char *why, size_t size, const char *fmt, ...) __attribute__ ((format (printf, 3, 4)));

static void
s_why (char *why, size_t size, const char *fmt, ...)
{
    if (!why || !size)
        return;
    va_list ap;
    va_start (ap, fmt);
    vsnprintf (why, size, fmt, ap);
    va_end (ap);
}

static bool
s_port_valid (const char *port)
{
    size_t len = strlen (port);
    if (len == 0 || len >= S_PORT_LEN)
        return false;
    for (size_t i = 0; i < len; i++)
        if (!isdigit ((unsigned char) port[i]))
            return false;
    long value = strtol (port, NULL, 10);
    return value >= 1 && value <= 65535;
}

/* A host name or an IPv4 address: letters, digits, '.', '-', '_'. */
static bool
s_name_valid (const char *host)
{
    if (!*host)
        return false;
    for (const char *p = host; *p; p++)
        if (!isalnum ((unsigned char) *p) && *p != '.' && *p != '-' && *p != '_')
            return false;
    return true;
}

/* An IPv6 address, with an optional %zone. */
static bool
s_ipv6_valid (const char *host)
{
    char addr[INET6_ADDRSTRLEN];
    size_t len = strcspn (host, "%");
    if (len == 0 || len >= sizeof addr || (host[len] == '%' && !host[len + 1]))
        return false;
    memcpy (addr, host, len);
    addr[len] = 0;
    struct in6_addr bin;
    return inet_pton (AF_INET6, addr, &bin) == 1;
}

/* Split text (NUL-terminated, scheme removed) into host and port. */
static int
s_parse (sc_endpoint_t *self, char *text, char *why, size_t why_size)
{
    char *port = NULL;
    if (text[0] == '[') {
        char *close = strchr (text, ']');
        if (!close || close[1] != ':') {
            s_why (why, why_size, "an IPv6 address is written [ADDRESS]:PORT");
            return -1;
        }
        *close = 0;
        port = close + 2;
        self->bracketed = true;
        if (!s_ipv6_valid (text + 1)) {
            s_why (why, why_size, "'%s' is not an IPv6 address", text + 1);
            return -1;
        }
        self->host = strdup (text + 1);
    }
    else {
        char *colon = strrchr (text, ':');
        if (!colon) {
            s_why (why, why_size, "no port: write HOST:PORT");
            return -1;
        }
        *colon = 0;
        port = colon + 1;
        if (strchr (text, ':')) {
            s_why (why, why_size, "write an IPv6 address in brackets: [%s]:%s", text, port);
            return -1;
        }
        if (!s_name_valid (text)) {
            s_why (why, why_size, "'%s' is not a host name or address", text);
            return -1;
        }
        self->host = strdup (text);
    }
    if (!s_port_valid (port)) {
        s_why (why, why_size, "'%s' is not a port (1 to 65535)", port);
        return -1;
    }
    memcpy (self->port, port, strlen (port) + 1);
    if (!self->host) {
        s_why (why, why_size, "out of memory");
        return -1;
    }
    size_t size = strlen (self->host) + 32;
    self->name = malloc (size);
    if (!self->name) {
        s_why (why, why_size, "out of memory");
        return -1;
    }
    snprintf (self->name, size, self->bracketed ? "tcp://[%s]:%s" : "tcp://%s:%s",
              self->host, self->port);
    return 0;
}

sc_endpoint_t *
sc_endpoint_new (const char *text, size_t len, char *why, size_t why_size)
{
    if (!text || len == 0) {
        s_why (why, why_size, "empty endpoint");
        return NULL;
    }
    if (len > SC_ENDPOINT_TEXT_MAX) {
        s_why (why, why_size, "an endpoint is at most %d characters", SC_ENDPOINT_TEXT_MAX);
        return NULL;
    }
    char copy[SC_ENDPOINT_TEXT_MAX + 1];
    for (size_t i = 0; i < len; i++)
        if (!isgraph ((unsigned char) text[i])) {
            s_why (why, why_size, "a space or control character in '%.*s'", (int) len, text);
            return NULL;
        }
    memcpy (copy, text, len);
    copy[len] = 0;
    char *rest = copy;
    if (strncmp (rest, "tcp://", 6) == 0)
        rest += 6;
    else
    if (strstr (rest, "://")) {
        s_why (why, why_size, "'%s': only tcp:// endpoints are supported", copy);
        return NULL;
    }
    sc_endpoint_t *self = calloc (1, sizeof *self);
    if (!self) {
        s_why (why, why_size, "out of memory");
        return NULL;
    }
    self->fd = -1;
    char detail[S_ERROR_MAX];
    if (s_parse (self, rest, detail, sizeof detail)) {
        s_why (why, why_size, "'%.*s': %s", (int) len, text, detail);
        sc_endpoint_destroy (&self);
    }
    return self;
}

void
sc_endpoint_destroy (sc_endpoint_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    sc_endpoint_t *self = *self_p;
    sc_endpoint_cancel (self);
    if (self->addrs)
        freeaddrinfo (self->addrs);
    free (self->host);
    free (self->name);
    free (self);
    *self_p = NULL;
}

const char *
sc_endpoint_name (const sc_endpoint_t *self)
{
    return self->name;
}

/* ---- Probe ------------------------------------------------------------------ */

static void
s_error_add (sc_endpoint_t *self, const char *fmt, ...) __attribute__ ((format (printf, 2, 3)));

static void
s_error_add (sc_endpoint_t *self, const char *fmt, ...)
{
    size_t len = strlen (self->error);
    if (len + 1 >= sizeof self->error)
        return;
    va_list ap;
    va_start (ap, fmt);
    vsnprintf (self->error + len, sizeof self->error - len, fmt, ap);
    va_end (ap);
}

static void
s_numeric (const struct addrinfo *ai, char *host, size_t host_size,
           char *serv, size_t serv_size)
{
    if (getnameinfo (ai->ai_addr, ai->ai_addrlen, host, (socklen_t) host_size,
                     serv, (socklen_t) serv_size, NI_NUMERICHOST | NI_NUMERICSERV)) {
        snprintf (host, host_size, "?");
        snprintf (serv, serv_size, "?");
    }
}

/* "connection refused (127.0.0.1 port 4242)"; addresses that failed
   the same way in a row share the words: "(::1 port 1, 127.0.0.1 port 1)". */
static void
s_address_failed (sc_endpoint_t *self, const struct addrinfo *ai, int err)
{
    char host[NI_MAXHOST], serv[NI_MAXSERV];
    s_numeric (ai, host, sizeof host, serv, sizeof serv);
    size_t len = strlen (self->error);
    if (len && err == self->last_errno && self->error[len - 1] == ')') {
        self->error[len - 1] = 0;
        s_error_add (self, ", %s port %s)", host, serv);
    }
    else {
        char what[128];
        snprintf (what, sizeof what, "%s", strerror (err));
        what[0] = (char) tolower ((unsigned char) what[0]);
        s_error_add (self, "%s%s (%s port %s)", len ? ", " : "", what, host, serv);
    }
    self->last_errno = err;
}

static int
s_accepted (sc_endpoint_t *self, const struct addrinfo *ai)
{
    char host[NI_MAXHOST], serv[NI_MAXSERV];
    s_numeric (ai, host, sizeof host, serv, sizeof serv);
    self->ipv6 = ai->ai_family == AF_INET6;
    snprintf (self->address, sizeof self->address,
              self->ipv6 ? "tcp://[%s]:%s" : "tcp://%s:%s", host, serv);
    self->error[0] = 0;
    return self->result = 1;
}

/* Connect to the next address until one accepts or is in progress. */
static int
s_try (sc_endpoint_t *self)
{
    while (self->next) {
        struct addrinfo *ai = self->next;
        self->next = ai->ai_next;
        int fd = socket (ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
                         ai->ai_protocol);
        if (fd < 0) {
            s_address_failed (self, ai, errno);
            continue;
        }
        if (connect (fd, ai->ai_addr, ai->ai_addrlen) == 0) {
            close (fd);
            return s_accepted (self, ai);
        }
        if (errno == EINPROGRESS || errno == EINTR) {
            self->fd = fd;
            self->trying = ai;
            return self->result = 0;
        }
        s_address_failed (self, ai, errno);
        close (fd);
    }
    if (!self->error[0])
        s_error_add (self, "%s has no address", self->host);
    return self->result = -1;
}

int
sc_endpoint_probe (sc_endpoint_t *self)
{
    sc_endpoint_cancel (self);
    if (self->addrs)
        freeaddrinfo (self->addrs);
    self->addrs = self->next = self->trying = NULL;
    self->error[0] = self->address[0] = 0;
    self->last_errno = 0;
    self->ipv6 = false;
    struct addrinfo hints;
    memset (&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV | (self->bracketed ? AI_NUMERICHOST : 0);
    int rc = getaddrinfo (self->host, self->port, &hints, &self->addrs);
    if (rc) {
        self->addrs = NULL;
        s_error_add (self, "%s does not resolve (%s)", self->host,
                     rc == EAI_SYSTEM ? strerror (errno) : gai_strerror (rc));
        return self->result = -1;
    }
    self->next = self->addrs;
    return s_try (self);
}

int
sc_endpoint_fd (const sc_endpoint_t *self)
{
    return self->fd;
}

int
sc_endpoint_step (sc_endpoint_t *self)
{
    if (self->fd < 0)
        return self->result;
    struct pollfd pfd = { .fd = self->fd, .events = POLLOUT };
    int rc = poll (&pfd, 1, 0);
    if (rc == 0 || (rc < 0 && errno == EINTR))
        return 0;
    int err = 0;
    socklen_t len = sizeof err;
    if (rc < 0 || getsockopt (self->fd, SOL_SOCKET, SO_ERROR, &err, &len))
        err = errno;
    close (self->fd);
    self->fd = -1;
    if (err == 0)
        return s_accepted (self, self->trying);
    s_address_failed (self, self->trying, err);
    return s_try (self);
}

void
sc_endpoint_cancel (sc_endpoint_t *self)
{
    if (self->fd >= 0)
        close (self->fd);
    self->fd = -1;
}

const char *
sc_endpoint_address (const sc_endpoint_t *self)
{
    return self->address;
}

bool
sc_endpoint_ipv6 (const sc_endpoint_t *self)
{
    return self->ipv6;
}

const char *
sc_endpoint_error (const sc_endpoint_t *self)
{
    return self->error;
}
