/*  sc_testnet: loopback TCP for the tests (see sc_testnet.h).

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at https://mozilla.org/MPL/2.0/.
*/
#define _GNU_SOURCE                 //  memmem
#include "sc_testnet.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#define SC_TESTNET_MAX_CONN     16      //  connections a proxy carries at once
#define SC_TESTNET_BACKLOG      16

static void
s_sleep_ms (int ms)
{
    struct timespec ts = { ms / 1000, (long) (ms % 1000) * 1000000L };
    while (nanosleep (&ts, &ts) == -1 && errno == EINTR)
        ;
}

//  ---------------------------------------------------------------------
//  Ports

static socklen_t
s_loopback (bool v6, int port, struct sockaddr_storage *ss)
{
    memset (ss, 0, sizeof *ss);
    if (v6) {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *) ss;
        a->sin6_family = AF_INET6;
        a->sin6_addr = in6addr_loopback;
        a->sin6_port = htons ((uint16_t) port);
        return sizeof *a;
    }
    struct sockaddr_in *a = (struct sockaddr_in *) ss;
    a->sin_family = AF_INET;
    a->sin_addr.s_addr = htonl (INADDR_LOOPBACK);
    a->sin_port = htons ((uint16_t) port);
    return sizeof *a;
}

int
sc_testnet_socket (bool v6, int *port, bool listen_too)
{
    int fd = socket (v6 ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_storage ss;
    socklen_t len = s_loopback (v6, *port, &ss);
    if (fd < 0
        || bind (fd, (struct sockaddr *) &ss, len)
        || (listen_too && listen (fd, SC_TESTNET_BACKLOG))
        || getsockname (fd, (struct sockaddr *) &ss, &len)) {
        fprintf (stderr, "sc_testnet: cannot bind %s port %d: %s\n",
                 v6 ? "::1" : "127.0.0.1", *port, strerror (errno));
        if (fd >= 0)
            close (fd);
        return -1;
    }
    *port = ntohs (v6 ? ((struct sockaddr_in6 *) &ss)->sin6_port
                      : ((struct sockaddr_in *) &ss)->sin_port);
    return fd;
}

int
sc_testnet_hold_port (int port)
{
    int fd = socket (AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int on = 1;
    if (fd < 0 || setsockopt (fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on)) {
        fprintf (stderr, "sc_testnet: no socket: %s\n", strerror (errno));
        if (fd >= 0)
            close (fd);
        return -1;
    }
    struct sockaddr_storage ss;
    socklen_t len = s_loopback (false, port, &ss);
    for (int i = 0; i < 100; i++) {
        if (bind (fd, (struct sockaddr *) &ss, len) == 0)
            return fd;
        if (errno != EADDRINUSE)
            break;
        s_sleep_ms (20);
    }
    fprintf (stderr, "sc_testnet: cannot hold port %d: %s\n", port, strerror (errno));
    close (fd);
    return -1;
}

//  A connection to 127.0.0.1:port, or -1.
static int
s_connect (int port)
{
    int fd = socket (AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_storage ss;
    socklen_t len = s_loopback (false, port, &ss);
    if (fd >= 0 && connect (fd, (struct sockaddr *) &ss, len) == 0)
        return fd;
    if (fd >= 0)
        close (fd);
    return -1;
}

//  ---------------------------------------------------------------------
//  A TCP proxy

struct _sc_testnet_proxy_t {
    int port;
    int upstream_port;
    int listener;
    int ctl [2];                    //  'c' cut, 'r' restore, 'q' quit
    bool record;
    bool running;                   //  the thread runs
    pthread_t thread;
    //  The thread's own
    int pairs [SC_TESTNET_MAX_CONN][2];     //  client, upstream
    size_t bytes [SC_TESTNET_MAX_CONN];     //  carried, both ways
    bool spoke [SC_TESTNET_MAX_CONN];       //  the client sent something
    size_t n;
    bool cut;
    //  Under lock
    pthread_mutex_t lock;
    uint8_t *data;                  //  every byte, both ways, when record
    size_t data_len, data_cap;
    size_t open;                    //  connections being carried
    size_t carried;
    size_t session_bytes;
};

static void
s_proxy_record (sc_testnet_proxy_t *self, const uint8_t *data, size_t len)
{
    pthread_mutex_lock (&self->lock);
    if (self->data_len + len > self->data_cap) {
        size_t cap = (self->data_len + len) * 2;
        uint8_t *grown = realloc (self->data, cap);
        if (grown) {
            self->data = grown;
            self->data_cap = cap;
        }
    }
    if (self->data_len + len <= self->data_cap) {
        memcpy (self->data + self->data_len, data, len);
        self->data_len += len;
    }
    pthread_mutex_unlock (&self->lock);
}

//  Closes pair i (the last one takes its place); counts its bytes when
//  it closed by itself and its client spoke.
static void
s_proxy_close (sc_testnet_proxy_t *self, size_t i, bool count)
{
    close (self->pairs [i][0]);
    close (self->pairs [i][1]);
    pthread_mutex_lock (&self->lock);
    if (count && self->spoke [i])
        self->session_bytes += self->bytes [i];
    self->n--;
    self->pairs [i][0] = self->pairs [self->n][0];
    self->pairs [i][1] = self->pairs [self->n][1];
    self->bytes [i] = self->bytes [self->n];
    self->spoke [i] = self->spoke [self->n];
    self->open = self->n;
    pthread_mutex_unlock (&self->lock);
}

static void
s_proxy_close_all (sc_testnet_proxy_t *self)
{
    while (self->n > 0)
        s_proxy_close (self, self->n - 1, false);
}

static void
s_proxy_accept (sc_testnet_proxy_t *self)
{
    int client = accept4 (self->listener, NULL, NULL, SOCK_CLOEXEC);
    if (client < 0)
        return;
    int upstream = -1;
    if (!self->cut && self->n < SC_TESTNET_MAX_CONN)
        upstream = s_connect (self->upstream_port);
    if (upstream < 0) {
        close (client);         //  cut, full or no upstream: refused
        return;
    }
    pthread_mutex_lock (&self->lock);
    self->pairs [self->n][0] = client;
    self->pairs [self->n][1] = upstream;
    self->bytes [self->n] = 0;
    self->spoke [self->n] = false;
    self->n++;
    self->open = self->n;
    self->carried++;
    pthread_mutex_unlock (&self->lock);
}

//  Carries what one side of pair i has to the other: false when the pair
//  closed.
static bool
s_proxy_carry (sc_testnet_proxy_t *self, size_t i, int side)
{
    uint8_t buf [65536];
    ssize_t got = read (self->pairs [i][side], buf, sizeof buf);
    if (got > 0) {
        if (self->record)
            s_proxy_record (self, buf, (size_t) got);
        self->bytes [i] += (size_t) got;
        self->spoke [i] = self->spoke [i] || side == 0;
    }
    ssize_t off = 0;
    while (got > 0 && off < got) {
        ssize_t put = send (self->pairs [i][!side], buf + off, (size_t) (got - off),
                            MSG_NOSIGNAL);
        if (put <= 0)
            break;
        off += put;
    }
    if (got > 0 && off == got)
        return true;
    //  One side closed (or took no more): close the pair.
    s_proxy_close (self, i, true);
    return false;
}

static void *
s_proxy_run (void *arg)
{
    sc_testnet_proxy_t *self = arg;
    for (;;) {
        struct pollfd fds [2 + 2 * SC_TESTNET_MAX_CONN];
        fds [0] = (struct pollfd) { self->ctl [0], POLLIN, 0 };
        fds [1] = (struct pollfd) { self->listener, POLLIN, 0 };
        size_t n = self->n;         //  polled; an accept adds one after them
        for (size_t i = 0; i < n; i++) {
            fds [2 + 2 * i] = (struct pollfd) { self->pairs [i][0], POLLIN, 0 };
            fds [3 + 2 * i] = (struct pollfd) { self->pairs [i][1], POLLIN, 0 };
        }
        if (poll (fds, 2 + 2 * n, 1000) < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        char cmd = 0;
        if (fds [0].revents) {
            if (read (self->ctl [0], &cmd, 1) != 1 || cmd == 'q')
                break;
            if (cmd == 'c')
                s_proxy_close_all (self);
            self->cut = cmd == 'c';
            continue;
        }
        if (fds [1].revents & POLLIN)
            s_proxy_accept (self);
        //  A pair that closes moves another into its place: the next
        //  round polls again.
        for (size_t i = 0; i < n; i++)
            for (int side = 0; side < 2; side++)
                if ((fds [2 + 2 * i + (size_t) side].revents & (POLLIN | POLLHUP | POLLERR))
                    && !s_proxy_carry (self, i, side))
                    goto next_round;
next_round:;
    }
    s_proxy_close_all (self);
    return NULL;
}

sc_testnet_proxy_t *
sc_testnet_proxy_new (bool v6, int upstream_port, bool record)
{
    sc_testnet_proxy_t *self = calloc (1, sizeof *self);
    if (!self)
        return NULL;
    self->upstream_port = upstream_port;
    self->record = record;
    self->ctl [0] = self->ctl [1] = -1;
    pthread_mutex_init (&self->lock, NULL);
    self->listener = sc_testnet_socket (v6, &self->port, true);
    if (self->listener < 0
        || pipe (self->ctl)
        || pthread_create (&self->thread, NULL, s_proxy_run, self)) {
        fprintf (stderr, "sc_testnet: cannot start a proxy to port %d\n", upstream_port);
        sc_testnet_proxy_destroy (&self);
        return NULL;
    }
    self->running = true;
    return self;
}

void
sc_testnet_proxy_destroy (sc_testnet_proxy_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    sc_testnet_proxy_t *self = *self_p;
    sc_testnet_proxy_stop (self);
    if (self->ctl [0] >= 0)
        close (self->ctl [0]);
    if (self->ctl [1] >= 0)
        close (self->ctl [1]);
    pthread_mutex_destroy (&self->lock);
    free (self->data);
    free (self);
    *self_p = NULL;
}

int
sc_testnet_proxy_port (const sc_testnet_proxy_t *self)
{
    return self->port;
}

int
sc_testnet_proxy_cut (sc_testnet_proxy_t *self, bool cut)
{
    char cmd = cut ? 'c' : 'r';
    return self->running && write (self->ctl [1], &cmd, 1) == 1 ? 0 : -1;
}

int
sc_testnet_proxy_wait_closed (sc_testnet_proxy_t *self, int timeout_ms)
{
    for (int waited = 0; ; waited += 10) {
        pthread_mutex_lock (&self->lock);
        bool closed = self->open == 0;
        pthread_mutex_unlock (&self->lock);
        if (closed)
            return 0;
        if (waited >= timeout_ms)
            return -1;
        s_sleep_ms (10);
    }
}

void
sc_testnet_proxy_stop (sc_testnet_proxy_t *self)
{
    if (self->running) {
        if (write (self->ctl [1], "q", 1) != 1)
            fprintf (stderr, "sc_testnet: cannot stop the proxy: %s\n", strerror (errno));
        pthread_join (self->thread, NULL);
        self->running = false;
    }
    if (self->listener >= 0) {
        close (self->listener);
        self->listener = -1;
    }
}

size_t
sc_testnet_proxy_carried (sc_testnet_proxy_t *self)
{
    pthread_mutex_lock (&self->lock);
    size_t carried = self->carried;
    pthread_mutex_unlock (&self->lock);
    return carried;
}

size_t
sc_testnet_proxy_session_bytes (sc_testnet_proxy_t *self)
{
    pthread_mutex_lock (&self->lock);
    size_t bytes = self->session_bytes;
    pthread_mutex_unlock (&self->lock);
    return bytes;
}

bool
sc_testnet_proxy_saw (sc_testnet_proxy_t *self, const char *text)
{
    pthread_mutex_lock (&self->lock);
    bool seen = self->data && memmem (self->data, self->data_len, text, strlen (text)) != NULL;
    pthread_mutex_unlock (&self->lock);
    return seen;
}
