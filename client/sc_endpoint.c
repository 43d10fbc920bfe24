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
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define S_PORT_LEN      6           /* "65535" and its NUL                */
#define S_ERROR_MAX     1024

/* A name resolved in a thread of its own, so that a slow resolver does
   not stop the caller's loop. The thread writes a byte to the pipe when
   it is done; a lookup the endpoint gave up on is freed by the thread. */
typedef struct {
    pthread_mutex_t lock;
    bool abandoned;                 /* the endpoint gave up: thread frees */
    char *host;
    char port[S_PORT_LEN];
    struct addrinfo *addrs;         /* the result...                      */
    int rc;                         /* ...getaddrinfo's code...           */
    int err;                        /* ...and errno for EAI_SYSTEM        */
    int pipe_w;
} s_lookup_t;

struct _sc_endpoint_t {
    char *host;                     /* without brackets                   */
    char port[S_PORT_LEN];
    bool bracketed;                 /* an IPv6 address                    */
    char *name;                     /* tcp://HOST:PORT                    */
    struct addrinfo *addrs;         /* what HOST resolved to              */
    struct addrinfo *next;          /* the next address to try            */
    struct addrinfo *trying;        /* the connection in progress         */
    int fd;                         /* its socket, or -1                  */
    s_lookup_t *lookup;             /* a name being resolved, or NULL     */
    int lookup_fd;                  /* its pipe, readable once it is done */
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
    self->lookup_fd = -1;
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

static void
s_lookup_free (s_lookup_t *lookup)
{
    if (lookup->addrs)
        freeaddrinfo (lookup->addrs);
    pthread_mutex_destroy (&lookup->lock);
    free (lookup->host);
    free (lookup);
}

static void *
s_lookup_run (void *arg)
{
    s_lookup_t *lookup = arg;
    struct addrinfo hints;
    memset (&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV;
    struct addrinfo *addrs = NULL;
    int rc = getaddrinfo (lookup->host, lookup->port, &hints, &addrs);
    int err = errno;
    pthread_mutex_lock (&lookup->lock);
    bool abandoned = lookup->abandoned;
    if (!abandoned) {
        lookup->addrs = rc ? NULL : addrs;
        lookup->rc = rc;
        lookup->err = err;
        /* an empty pipe has room for the one byte */
        if (write (lookup->pipe_w, "", 1) != 1) {
            lookup->rc = EAI_SYSTEM;
            lookup->err = errno;
        }
    }
    pthread_mutex_unlock (&lookup->lock);
    if (abandoned) {
        if (!rc)
            freeaddrinfo (addrs);
        s_lookup_free (lookup);
    }
    return NULL;
}

/* Start resolving self->host in a thread (with every signal blocked: they
   are the caller's loop's). 0, or -1 with the error set. */
static int
s_lookup_start (sc_endpoint_t *self)
{
    int fds[2] = { -1, -1 };
    s_lookup_t *lookup = calloc (1, sizeof *lookup);
    if (lookup)
        lookup->host = strdup (self->host);
    if (!lookup || !lookup->host || pthread_mutex_init (&lookup->lock, NULL)
        || pipe (fds) || fcntl (fds[0], F_SETFD, FD_CLOEXEC)
        || fcntl (fds[1], F_SETFD, FD_CLOEXEC) || fcntl (fds[0], F_SETFL, O_NONBLOCK)) {
        if (fds[0] >= 0) {
            close (fds[0]);
            close (fds[1]);
        }
        s_error_add (self, "cannot resolve %s: %s", self->host, strerror (errno));
        if (lookup)
            free (lookup->host);
        free (lookup);
        return -1;
    }
    memcpy (lookup->port, self->port, sizeof lookup->port);
    lookup->pipe_w = fds[1];
    pthread_attr_t attr;
    sigset_t all, saved;
    sigfillset (&all);
    int rc = pthread_attr_init (&attr);
    if (rc == 0) {
        pthread_attr_setdetachstate (&attr, PTHREAD_CREATE_DETACHED);
        pthread_sigmask (SIG_SETMASK, &all, &saved);
        pthread_t thread;
        rc = pthread_create (&thread, &attr, s_lookup_run, lookup);
        pthread_sigmask (SIG_SETMASK, &saved, NULL);
        pthread_attr_destroy (&attr);
    }
    if (rc) {
        close (fds[0]);
        close (fds[1]);
        s_lookup_free (lookup);
        s_error_add (self, "cannot resolve %s: %s", self->host, strerror (rc));
        return -1;
    }
    self->lookup = lookup;
    self->lookup_fd = fds[0];
    return 0;
}

/* Give up on a lookup in progress (its thread frees it), or free one
   that is done. */
static void
s_lookup_drop (sc_endpoint_t *self)
{
    s_lookup_t *lookup = self->lookup;
    if (!lookup)
        return;
    pthread_mutex_lock (&lookup->lock);
    char byte;
    bool done = read (self->lookup_fd, &byte, 1) == 1;
    lookup->abandoned = !done;
    close (lookup->pipe_w);
    pthread_mutex_unlock (&lookup->lock);
    if (done)
        s_lookup_free (lookup);
    close (self->lookup_fd);
    self->lookup = NULL;
    self->lookup_fd = -1;
}

/* The lookup is done: its addresses, or the error. 1, 0 or -1 as
   sc_endpoint_probe. */
static int
s_lookup_result (sc_endpoint_t *self, int rc, int err, struct addrinfo *addrs)
{
    if (rc) {
        s_error_add (self, "%s does not resolve (%s)", self->host,
                     rc == EAI_SYSTEM ? strerror (err) : gai_strerror (rc));
        return self->result = -1;
    }
    self->addrs = self->next = addrs;
    return s_try (self);
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
    /* An address needs no resolver: at once. */
    struct addrinfo hints;
    memset (&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV | AI_NUMERICHOST;
    struct addrinfo *addrs = NULL;
    int rc = getaddrinfo (self->host, self->port, &hints, &addrs);
    if (rc != EAI_NONAME || self->bracketed)
        return s_lookup_result (self, rc, errno, rc ? NULL : addrs);
    if (s_lookup_start (self))
        return self->result = -1;
    return self->result = 0;
}

int
sc_endpoint_fd (const sc_endpoint_t *self)
{
    return self->lookup ? self->lookup_fd : self->fd;
}

/* The lookup's pipe polled: its result, or 0 while it goes on. */
static int
s_lookup_step (sc_endpoint_t *self)
{
    s_lookup_t *lookup = self->lookup;
    char byte;
    if (read (self->lookup_fd, &byte, 1) != 1)
        return 0;
    pthread_mutex_lock (&lookup->lock);
    int rc = lookup->rc, err = lookup->err;
    struct addrinfo *addrs = lookup->addrs;
    lookup->addrs = NULL;
    close (lookup->pipe_w);
    pthread_mutex_unlock (&lookup->lock);
    s_lookup_free (lookup);
    close (self->lookup_fd);
    self->lookup = NULL;
    self->lookup_fd = -1;
    return s_lookup_result (self, rc, err, addrs);
}

int
sc_endpoint_step (sc_endpoint_t *self)
{
    if (self->lookup)
        return s_lookup_step (self);
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
    s_lookup_drop (self);
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
