/*  secbench load: a process of real protocol clients, driven by the
    bench driver one command line at a time (stdin), one answer line each
    (stdout: "ok key=value..." or "error ..."). Diagnostics go to stderr.

    relay BROKER_EP RAW_EP PAIRS FIRST [PEER_EP]
        PAIRS pairs of clients r<2*FIRST>... log in to the broker and open
        E2E chats; the same pairs also get a DEALER to the raw relay (with
        pair routing ids) and channels keyed between them, so both paths
        carry the same sealed frames and cost the clients the same.
        RAW_EP `-`: no raw relay (tput and lat raw are then refused).
        PEER_EP: the second client of each pair logs in there instead, to
        another node of a cluster, and the first waits until its node
        lists the second before it asks for the chat.
    prep SIZE K
        K MESSAGE bodies per direction with SIZE bytes of chat text in a
        real E2E box; all of them go once through the broker and each is
        opened and checked end to end (channel, E2E, text).
    tput MODE SIZE T0 WARM DUR WINDOW
        MODE broker or raw. From T0 (CLOCK_MONOTONIC ns) each direction
        keeps WINDOW messages in flight, re-sealing the prepared bodies
        under the channel; counts what arrives in [T0+WARM, T0+WARM+DUR].
        Receivers open every envelope (the channel layer, not the E2E box:
        the prepared boxes repeat).
    lat MODE SIZE T0 DUR RATE FILE
        The same at RATE messages per second per direction; the latency of
        each message sent after T0 + 10% is written to FILE (doubles, us).
    logins EP N FIRST / go T0 WINDOW
        N clients u<FIRST>... connect, make their HELLOs; at T0 they log
        in, at most WINDOW at a time. Then the recorded broker signatures
        are checked. The answer has the time of the last login (t1) and
        this process's CPU from T0 to it (cpu, s). quitall: QUIT and close
        them.
    paced EP FIRST T0 PERIOD END
        Honest logins during a flood: one every PERIOD ns from T0 to END,
        each a new client u<FIRST>... timed from HELLO to WELCOME, then
        QUIT. The answer has their p50, p99 and max (ms).
    hold EP N FIRST WINDOW T0
        The scale test: at T0 create N clients, connect, log them in
        (WINDOW at a time), and keep them idle. release: close them.
    conns EP N T0
        N DEALERs to the raw ROUTER, one echoed frame each; kept until
        release.
    exit

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at https://mozilla.org/MPL/2.0/.
*/
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#include "bench.h"
#include "sc_wire.h"

#define S_SETUP_MS   10000
#define S_MAX_SIZES  8
#define S_RING       8192        /* send times kept per direction        */
#define S_DRAIN_NS   (10LL * 1000000000)

/* One direction of a pair: client `from` to client `from ^ 1`. */
typedef struct {
    uint8_t **pool[S_MAX_SIZES];    /* prepared MESSAGE bodies per size  */
    size_t *pool_len[S_MAX_SIZES];
    size_t next;                    /* next body of the pool             */
    uint64_t sent, received;
    int64_t t_send[S_RING];
} s_flow_t;

typedef struct {
    bn_ident_t ident;
    void *zctx;
    /* relay */
    size_t clients;                 /* 2 * pairs                         */
    bn_client_t **bc;               /* logged in to the broker           */
    bn_client_t **rc;               /* connected to the raw relay        */
    sc_channel_t **rch;             /* their channels                    */
    s_flow_t *flows;                /* flow i: client i -> client i ^ 1  */
    size_t sizes[S_MAX_SIZES];
    size_t pool_n[S_MAX_SIZES];
    size_t nsizes;
    /* logins and holds */
    bn_client_t **lc;
    size_t nl;
} s_load_t;

static void
s_reply (const char *fmt, ...) __attribute__ ((format (printf, 1, 2)));

static void
s_reply (const char *fmt, ...)
{
    va_list args;
    va_start (args, fmt);
    vprintf (fmt, args);
    va_end (args);
    putchar ('\n');
    fflush (stdout);
}

static void
s_free_frame (void *data, void *hint)
{
    (void) hint;
    free (data);
}

/* Send a malloc'd frame without a copy; the frame is always consumed. */
static int
s_send_owned (void *sock, uint8_t *frame, size_t len)
{
    zmq_msg_t msg;
    if (zmq_msg_init_data (&msg, frame, len, s_free_frame, NULL)) {
        free (frame);
        return -1;
    }
    if (zmq_msg_send (&msg, sock, ZMQ_DONTWAIT) < 0) {
        zmq_msg_close (&msg);
        return -1;
    }
    return 0;
}

static int
s_epoll_add (int epfd, int fd, uint64_t data)
{
    struct epoll_event ev = { .events = EPOLLIN, .data.u64 = data };
    return epoll_ctl (epfd, EPOLL_CTL_ADD, fd, &ev);
}

/* ---- Relay pairs -------------------------------------------------------- */

static int
s_relay_setup (s_load_t *self, const char *broker_ep, const char *raw_ep,
               size_t pairs, size_t first, const char *peer_ep)
{
    bool raw = strcmp (raw_ep, "-") != 0;
    self->clients = 2 * pairs;
    self->bc = calloc (self->clients, sizeof *self->bc);
    self->rc = calloc (self->clients, sizeof *self->rc);
    self->rch = calloc (self->clients, sizeof *self->rch);
    self->flows = calloc (self->clients, sizeof *self->flows);
    if (!self->bc || !self->rc || !self->rch || !self->flows)
        return -1;
    for (size_t i = 0; i < self->clients; i++) {
        char name[SC_NAME_MAX + 1];
        snprintf (name, sizeof name, "r%03zu", 2 * first + i);
        self->bc[i] = bn_client_new (self->zctx, peer_ep && (i & 1) ? peer_ep : broker_ep,
                                     name, NULL, 0);
        if (!self->bc[i] || bn_client_login (self->bc[i], &self->ident, S_SETUP_MS))
            return -1;
        if (!raw)
            continue;
        uint32_t pair = (uint32_t) (first + i / 2);
        uint8_t rid[5] = { 'p', (uint8_t) (pair >> 16), (uint8_t) (pair >> 8),
                           (uint8_t) pair, (uint8_t) (i & 1) };
        self->rc[i] = bn_client_new (self->zctx, raw_ep, name, rid, sizeof rid);
        if (!self->rc[i])
            return -1;
    }
    for (size_t i = 0; i < self->clients; i += 2) {
        if ((peer_ep && bn_client_await (self->bc[i], self->bc[i + 1]->name, S_SETUP_MS))
            || bn_chat_open (self->bc[i], self->bc[i + 1], &self->ident, S_SETUP_MS))
            return -1;
        if (!raw)
            continue;
        /* raw path: the same kind of channel, keyed between the two */
        sc_session_keys_t ka, kb;
        if (sc_random (ka.sid, SC_HASH_LEN) || sc_random (ka.k_send, SC_KEY_LEN)
            || sc_random (ka.k_recv, SC_KEY_LEN))
            return -1;
        memcpy (kb.sid, ka.sid, SC_HASH_LEN);
        memcpy (kb.k_send, ka.k_recv, SC_KEY_LEN);
        memcpy (kb.k_recv, ka.k_send, SC_KEY_LEN);
        self->rch[i] = sc_channel_new (&ka);
        self->rch[i + 1] = sc_channel_new (&kb);
        sc_wipe (&ka, sizeof ka);
        sc_wipe (&kb, sizeof kb);
        if (!self->rch[i] || !self->rch[i + 1])
            return -1;
    }
    return 0;
}

static void
s_text (char *text, size_t size, size_t k)
{
    for (size_t i = 0; i < size; i++)
        text[i] = (char) ('a' + (i + k) % 26);
}

static int
s_size_slot (s_load_t *self, size_t size)
{
    for (size_t s = 0; s < self->nsizes; s++)
        if (self->sizes[s] == size)
            return (int) s;
    return -1;
}

/* Seal the next prepared body of flow f under the channel of the path
   and send it from the flow's client. 0, or -1 (not sent). */
static int
s_send_one (s_load_t *self, bool raw, size_t f, int slot)
{
    s_flow_t *flow = &self->flows[f];
    size_t k = flow->next;
    flow->next = (k + 1) % self->pool_n[slot];
    sc_channel_t *ch = raw ? self->rch[f] : self->bc[f]->ch;
    void *sock = raw ? self->rc[f]->sock : self->bc[f]->sock;
    uint8_t *frame = NULL;
    size_t len = 0;
    if (sc_wire_seal_raw (ch, SC_OP_MESSAGE, flow->pool[slot][k], flow->pool_len[slot][k],
                          &frame, &len))
        return -1;
    return s_send_owned (sock, frame, len);
}

/* Check one frame end to end: channel, MESSAGE, E2E box, text. */
static int
s_verify (bn_client_t *to, const uint8_t *frame, size_t len, size_t size, size_t k)
{
    sc_msg_t msg;
    int rc = sc_wire_open (to->ch, frame, len, &msg);
    uint8_t *pt = NULL;
    char expect[SC_TEXT_MAX];
    sc_e2e_plain_t plain = { 0 };
    uint64_t lost = 1;
    if (rc == 0 && msg.opcode == SC_OP_MESSAGE && msg.data_len >= SC_TAG_LEN
        && (pt = malloc (msg.data_len)) != NULL
        && sc_e2e_open (to->e2e, msg.counter, msg.data, msg.data_len, pt, &lost) == 0
        && lost == 0
        && sc_e2e_plain_decode (pt, msg.data_len - SC_TAG_LEN, &plain) == 0) {
        s_text (expect, size, k);
        rc = plain.kind == SC_E2E_TEXT && plain.text_len == size
             && memcmp (plain.text, expect, size) == 0 ? 0 : -1;
    }
    else
        rc = -1;
    if (rc)
        fprintf (stderr, "secbench: %s: message %zu of size %zu did not check out\n",
                 to->name, k, size);
    free (plain.text);
    free (pt);
    sc_msg_reset (&msg);
    return rc;
}

static int
s_prep (s_load_t *self, size_t size, size_t k_count)
{
    if (size < 1 || size > SC_TEXT_MAX || k_count < 1 || k_count > S_RING
        || self->nsizes == S_MAX_SIZES || s_size_slot (self, size) >= 0)
        return -1;
    int slot = (int) self->nsizes++;
    self->sizes[slot] = size;
    self->pool_n[slot] = k_count;
    char text[SC_TEXT_MAX];
    for (size_t f = 0; f < self->clients; f++) {
        s_flow_t *flow = &self->flows[f];
        flow->pool[slot] = calloc (k_count, sizeof (uint8_t *));
        flow->pool_len[slot] = calloc (k_count, sizeof (size_t));
        if (!flow->pool[slot] || !flow->pool_len[slot])
            return -1;
        for (size_t k = 0; k < k_count; k++) {
            uint8_t *pt = NULL;
            size_t pt_len = 0;
            s_text (text, size, k);
            sc_msg_t msg;
            sc_msg_init (&msg, SC_OP_MESSAGE);
            /* the counts a client would send: nothing acknowledged, the
               line numbered by its counter */
            int rc = sc_e2e_plain_encode (SC_E2E_TEXT, 0, sc_e2e_sent (self->bc[f]->e2e) + 1,
                                          text, size, &pt, &pt_len);
            uint8_t *box = rc ? NULL : malloc (pt_len + SC_TAG_LEN);
            rc = box && !sc_e2e_seal (self->bc[f]->e2e, pt, pt_len, &msg.counter, box)
                 && !sc_msg_set_data (&msg, box, pt_len + SC_TAG_LEN)
                 && !sc_msg_encode (&msg, &flow->pool[slot][k], &flow->pool_len[slot][k])
                 ? 0 : -1;
            free (box);
            free (pt);
            sc_msg_reset (&msg);
            if (rc)
                return -1;
        }
    }
    /* Once through the broker, every message checked end to end. */
    size_t verified = 0;
    for (size_t f = 0; f < self->clients; f++)
        self->flows[f].next = 0;
    for (size_t k = 0; k < k_count; k++)
        for (size_t f = 0; f < self->clients; f++)
            if (s_send_one (self, false, f, slot))
                return -1;
    for (size_t f = 0; f < self->clients; f++)
        for (size_t k = 0; k < k_count; k++) {
            uint8_t *frame = NULL;
            size_t len = 0;
            bn_client_t *to = self->bc[f ^ 1];
            if (!bn_client_recv_frame (to, S_SETUP_MS, &frame, &len)) {
                fprintf (stderr, "secbench: %s: message %zu did not come\n", to->name, k);
                return -1;
            }
            int rc = s_verify (to, frame, len, size, k);
            free (frame);
            if (rc)
                return -1;
            verified++;
        }
    return (int) verified;
}

/* ---- Relay traffic -------------------------------------------------------- */

typedef struct {
    bool raw;
    int slot;
    int64_t t0, m0, m1;         /* start; what is measured: [m0, m1)      */
    size_t window;              /* tput: messages in flight per direction */
    int64_t period;             /* lat: ns between sends of a direction   */
    double *lat;                /* lat: samples, us                       */
    size_t nlat, caplat;
    uint64_t counted, bad;
} s_run_t;

static void
s_lat_add (s_run_t *run, double us)
{
    if (run->nlat == run->caplat) {
        size_t cap = run->caplat ? 2 * run->caplat : 4096;
        double *lat = realloc (run->lat, cap * sizeof *lat);
        if (!lat)
            return;
        run->lat = lat;
        run->caplat = cap;
    }
    run->lat[run->nlat++] = us;
}

/* Everything waiting on client i's socket: open each envelope (the
   channel layer), account it to the direction that ends at i. */
static void
s_drain (s_load_t *self, s_run_t *run, size_t i)
{
    void *sock = run->raw ? self->rc[i]->sock : self->bc[i]->sock;
    sc_channel_t *ch = run->raw ? self->rch[i] : self->bc[i]->ch;
    s_flow_t *flow = &self->flows[i ^ 1];
    while (true) {
        zmq_msg_t msg;
        zmq_msg_init (&msg);
        if (zmq_msg_recv (&msg, sock, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close (&msg);
            return;
        }
        int64_t now = bn_now_ns ();
        uint8_t opcode = 0, *body = NULL;
        size_t body_len = 0;
        int rc = sc_wire_open_raw (ch, zmq_msg_data (&msg), zmq_msg_size (&msg),
                                   &opcode, &body, &body_len);
        zmq_msg_close (&msg);
        if (rc || opcode != SC_OP_MESSAGE) {
            if (run->bad++ < 5)
                fprintf (stderr, "secbench: %s: unexpected %s (%s)\n", self->bc[i]->name,
                         rc ? "envelope" : sc_opcode_name (opcode), sc_wire_strerror (rc));
            if (!rc) {
                sc_wipe (body, body_len);
                free (body);
            }
            continue;
        }
        sc_wipe (body, body_len);
        free (body);
        uint64_t k = flow->received++;
        if (run->period) {
            int64_t sent_at = flow->t_send[k % S_RING];
            if (sent_at >= run->m0 && sent_at < run->m1)
                s_lat_add (run, (double) (now - sent_at) / 1000.0);
        }
        else
        if (now >= run->m0 && now < run->m1)
            run->counted++;
    }
}

static int
s_traffic (s_load_t *self, s_run_t *run)
{
    int epfd = epoll_create1 (EPOLL_CLOEXEC);
    int tfd = timerfd_create (CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
    if (epfd < 0 || tfd < 0)
        return -1;
    int64_t *due = calloc (self->clients, sizeof *due);
    if (!due)
        return -1;
    for (size_t i = 0; i < self->clients; i++) {
        bn_client_t *c = run->raw ? self->rc[i] : self->bc[i];
        s_epoll_add (epfd, c->fd, i);
        s_flow_t *flow = &self->flows[i];
        flow->sent = flow->received = 0;
        flow->next = 0;
        /* paced directions start spread over one period */
        due[i] = run->t0 + (int64_t) i * run->period / (int64_t) self->clients;
    }
    s_epoll_add (epfd, tfd, UINT64_MAX);
    bn_sleep_until_ns (run->t0);
    int rc = 0;
    while (true) {
        int64_t now = bn_now_ns ();
        bool sending = now < run->m1;
        int64_t next_due = INT64_MAX;
        if (sending)
            for (size_t f = 0; f < self->clients; f++) {
                s_flow_t *flow = &self->flows[f];
                bool sent_any = false;
                while (run->period ? due[f] <= now && flow->sent - flow->received < S_RING
                                   : flow->sent - flow->received < run->window) {
                    int64_t at = bn_now_ns ();
                    if (s_send_one (self, run->raw, f, run->slot))
                        break;
                    flow->t_send[flow->sent % S_RING] = at;
                    flow->sent++;
                    due[f] += run->period;
                    sent_any = true;
                }
                if (due[f] < next_due)
                    next_due = due[f];
                if (sent_any)
                    s_drain (self, run, f);     /* a send may take the fd's signal */
            }
        else {
            bool all = true;
            for (size_t f = 0; f < self->clients; f++)
                all = all && self->flows[f].received == self->flows[f].sent;
            if (all)
                break;
            if (now > run->m1 + S_DRAIN_NS) {
                fprintf (stderr, "secbench: messages lost in flight\n");
                rc = -1;
                break;
            }
        }
        int timeout = 100;
        if (sending && run->period && next_due != INT64_MAX) {
            struct itimerspec its = { { 0, 0 }, { (time_t) (next_due / 1000000000),
                                                  (long) (next_due % 1000000000) } };
            timerfd_settime (tfd, TFD_TIMER_ABSTIME, &its, NULL);
        }
        else
        if (sending)
            timeout = 1;
        struct epoll_event evs[64];
        int n = epoll_wait (epfd, evs, 64, timeout);
        for (int e = 0; e < n; e++) {
            if (evs[e].data.u64 == UINT64_MAX) {
                uint64_t ticks;
                if (read (tfd, &ticks, sizeof ticks) < 0)
                    ticks = 0;
            }
            else
                s_drain (self, run, (size_t) evs[e].data.u64);
        }
    }
    free (due);
    close (tfd);
    close (epfd);
    return rc;
}

/* ---- Logins ------------------------------------------------------------------ */

/* Honest logins one after the other, one every period from t0 to end,
   each on a new connection and timed from its HELLO to its WELCOME
   (a COOKIE's round trip included): their latencies in ms into lat.
   Each logs out at once. */
static int
s_paced (s_load_t *self, const char *ep, size_t first, int64_t t0, int64_t period,
         int64_t end, double *lat, size_t cap, size_t *n, size_t *failed)
{
    *n = *failed = 0;
    for (int64_t due = t0; due < end && *n + *failed < cap; due += period) {
        bn_sleep_until_ns (due);
        char name[SC_NAME_MAX + 1];
        snprintf (name, sizeof name, "u%05zu", first + *n + *failed);
        bn_client_t *c = bn_client_new (self->zctx, ep, name, NULL, 0);
        if (!c || bn_client_prepare (c))
            return -1;
        int64_t start = bn_now_ns ();
        if (bn_client_login (c, &self->ident, 10000) == 0 && bn_client_check_sig (c, &self->ident) == 0)
            lat[(*n)++] = (double) (bn_now_ns () - start) / 1e6;
        else
            (*failed)++;
        sc_msg_t msg;
        sc_msg_init (&msg, SC_OP_QUIT);
        if (c->state == BN_ONLINE)
            (void) bn_client_send (c, &msg);
        bn_client_destroy (&c);
    }
    return 0;
}

static void
s_logins_free (s_load_t *self, bool quit)
{
    for (size_t i = 0; i < self->nl; i++) {
        if (quit && self->lc[i] && self->lc[i]->state == BN_ONLINE) {
            sc_msg_t msg;
            sc_msg_init (&msg, SC_OP_QUIT);
            (void) bn_client_send (self->lc[i], &msg);
        }
        bn_client_destroy (&self->lc[i]);
    }
    free (self->lc);
    self->lc = NULL;
    self->nl = 0;
}

static int
s_logins_new (s_load_t *self, const char *ep, size_t n, size_t first, bool prepare)
{
    s_logins_free (self, true);
    self->lc = calloc (n, sizeof *self->lc);
    if (!self->lc)
        return -1;
    self->nl = n;
    for (size_t i = 0; i < n; i++) {
        char name[SC_NAME_MAX + 1];
        snprintf (name, sizeof name, "u%05zu", first + i);
        self->lc[i] = bn_client_new (self->zctx, ep, name, NULL, 0);
        if (!self->lc[i] || (prepare && bn_client_prepare (self->lc[i])))
            return -1;
    }
    return 0;
}

/* The login frames waiting on client i. A client done with its login
   leaves the epoll set: ZeroMQ may still signal its descriptor (commands
   nobody reads any more), and the level-triggered epoll would report it
   for ever. */
static void
s_login_drain (s_load_t *self, int epfd, size_t i, size_t *done, size_t *failed,
               int64_t *t_last)
{
    bn_client_t *c = self->lc[i];
    if (c->state == BN_ONLINE || c->state == BN_FAILED) {
        epoll_ctl (epfd, EPOLL_CTL_DEL, c->fd, NULL);
        return;
    }
    while (c->state == BN_HELLO_SENT || c->state == BN_AUTH_SENT) {
        zmq_msg_t msg;
        zmq_msg_init (&msg);
        if (zmq_msg_recv (&msg, c->sock, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close (&msg);
            return;
        }
        int rc = bn_client_login_step (c, &self->ident, zmq_msg_data (&msg), zmq_msg_size (&msg));
        zmq_msg_close (&msg);
        if (rc > 0) {
            (*done)++;
            *t_last = bn_now_ns ();
        }
        else
        if (rc < 0)
            (*failed)++;
    }
}

/* Log every client of lc in, at most window at a time (HELLOs made now
   unless made before). */
static int
s_login_all (s_load_t *self, size_t window, int64_t deadline, size_t *done,
             size_t *failed, int64_t *t_last)
{
    int epfd = epoll_create1 (EPOLL_CLOEXEC);
    if (epfd < 0)
        return -1;
    size_t next = 0;
    *done = *failed = 0;
    *t_last = bn_now_ns ();
    while (*done + *failed < self->nl && bn_now_ns () < deadline) {
        while (next < self->nl && next - *done - *failed < window) {
            bn_client_t *c = self->lc[next];
            /* in the epoll set from its HELLO to its WELCOME only: a
               client not logging in is never read, so its descriptor
               would stay readable */
            if ((!c->hello && bn_client_prepare (c)) || bn_client_hello (c)
                || s_epoll_add (epfd, c->fd, next)) {
                c->state = BN_FAILED;
                (*failed)++;
            }
            else
                s_login_drain (self, epfd, next, done, failed, t_last);
            next++;
        }
        struct epoll_event evs[256];
        int n = epoll_wait (epfd, evs, 256, 10);
        for (int e = 0; e < n; e++)
            s_login_drain (self, epfd, (size_t) evs[e].data.u64, done, failed, t_last);
    }
    close (epfd);
    return 0;
}

static size_t
s_check_sigs (s_load_t *self)
{
    size_t bad = 0;
    for (size_t i = 0; i < self->nl; i++)
        if (self->lc[i]->state == BN_ONLINE && bn_client_check_sig (self->lc[i], &self->ident))
            bad++;
    return bad;
}

/* The echo, if it came. ZeroMQ signals a socket's descriptor only for
   what arrives after a read found nothing: every send is followed by a
   read attempt, here as everywhere in this file. */
static void
s_echo_drain (int epfd, bn_client_t *c, size_t *done, int64_t *t_last)
{
    uint8_t back[128];
    if (c->state == BN_ONLINE) {
        epoll_ctl (epfd, EPOLL_CTL_DEL, c->fd, NULL);
        return;
    }
    while (c->state == BN_HELLO_SENT && zmq_recv (c->sock, back, sizeof back, ZMQ_DONTWAIT) >= 0) {
        c->state = BN_ONLINE;
        (*done)++;
        *t_last = bn_now_ns ();
    }
}

/* This process's CPU time so far, all its threads, in s. */
static double
s_process_cpu_s (void)
{
    struct timespec ts;
    if (clock_gettime (CLOCK_PROCESS_CPUTIME_ID, &ts))
        return 0;
    return (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
}

/* Raw ROUTER connections: one frame each, echoed. */
static int
s_conns (s_load_t *self, const char *ep, size_t n, int64_t deadline, size_t *done,
         int64_t *t_last)
{
    s_logins_free (self, false);
    self->lc = calloc (n, sizeof *self->lc);
    int epfd = epoll_create1 (EPOLL_CLOEXEC);
    if (!self->lc || epfd < 0)
        return -1;
    self->nl = n;
    uint8_t frame[100];
    memset (frame, 0x5a, sizeof frame);
    *done = 0;
    for (size_t i = 0; i < n; i++) {
        self->lc[i] = bn_client_new (self->zctx, ep, "raw", NULL, 0);
        if (!self->lc[i] || zmq_send (self->lc[i]->sock, frame, sizeof frame, ZMQ_DONTWAIT) < 0)
            return -1;
        self->lc[i]->state = BN_HELLO_SENT;
        s_epoll_add (epfd, self->lc[i]->fd, i);
        s_echo_drain (epfd, self->lc[i], done, t_last);
    }
    while (*done < n && bn_now_ns () < deadline) {
        struct epoll_event evs[256];
        int k = epoll_wait (epfd, evs, 256, 10);
        for (int e = 0; e < k; e++)
            s_echo_drain (epfd, self->lc[evs[e].data.u64], done, t_last);
    }
    close (epfd);
    return 0;
}

/* ---- Commands ------------------------------------------------------------- */

static void
s_command (s_load_t *self, char *line)
{
    char a[512], b[512], c[512], file[4096];
    size_t n = 0, m = 0, w = 0;
    long long t0 = 0, warm = 0, dur = 0;
    double rate = 0;
    int fields = 0;
    if ((fields = sscanf (line, "relay %511s %511s %zu %zu %511s", a, b, &n, &m, c)) >= 4) {
        if (self->clients || s_relay_setup (self, a, b, n, m, fields == 5 ? c : NULL))
            s_reply ("error relay setup failed");
        else
            s_reply ("ok clients=%zu", self->clients);
    }
    else
    if (sscanf (line, "prep %zu %zu", &n, &m) == 2) {
        int verified = s_prep (self, n, m);
        if (verified < 0)
            s_reply ("error prep %zu failed", n);
        else
            s_reply ("ok verified=%d", verified);
    }
    else
    if (sscanf (line, "tput %511s %zu %lld %lld %lld %zu", a, &n, &t0, &warm, &dur, &w) == 6) {
        s_run_t run = { .raw = strcmp (a, "raw") == 0, .slot = s_size_slot (self, n),
                        .t0 = t0, .m0 = t0 + warm, .m1 = t0 + warm + dur, .window = w };
        if (run.slot < 0 || w < 1 || (run.raw && (!self->rc || !self->rc[0]))
            || s_traffic (self, &run))
            s_reply ("error tput failed");
        else
            s_reply ("ok count=%llu bad=%llu", (unsigned long long) run.counted,
                     (unsigned long long) run.bad);
    }
    else
    if (sscanf (line, "lat %511s %zu %lld %lld %lf %4095s", a, &n, &t0, &dur, &rate, file) == 6) {
        s_run_t run = { .raw = strcmp (a, "raw") == 0, .slot = s_size_slot (self, n),
                        .t0 = t0, .m0 = t0 + dur / 10, .m1 = t0 + dur,
                        .period = rate > 0 ? (int64_t) (1e9 / rate) : 0 };
        if (run.slot < 0 || run.period <= 0 || (run.raw && (!self->rc || !self->rc[0]))
            || s_traffic (self, &run)
            || bn_write_file (file, run.lat, run.nlat * sizeof (double), 0600))
            s_reply ("error lat failed");
        else
            s_reply ("ok samples=%zu bad=%llu", run.nlat, (unsigned long long) run.bad);
        free (run.lat);
    }
    else
    if (sscanf (line, "logins %511s %zu %zu", a, &n, &m) == 3) {
        if (s_logins_new (self, a, n, m, true))
            s_reply ("error logins setup failed");
        else
            s_reply ("ok ready=%zu", n);
    }
    else
    if (sscanf (line, "paced %511s %zu %lld %lld %lld", a, &n, &t0, &warm, &dur) == 5) {
        double lat[4096];
        size_t done = 0, failed = 0;
        if (s_paced (self, a, n, t0, warm, dur, lat, 4096, &done, &failed) || done < 1)
            s_reply ("error paced failed");
        else {
            double max = bn_percentile (lat, done, 100);
            s_reply ("ok done=%zu failed=%zu p50=%.3f p99=%.3f max=%.3f", done, failed,
                     bn_percentile (lat, done, 50), bn_percentile (lat, done, 99), max);
        }
    }
    else
    if (sscanf (line, "go %lld %zu", &t0, &w) == 2) {
        size_t done = 0, failed = 0;
        int64_t t1 = 0;
        bn_sleep_until_ns (t0);
        double cpu0 = s_process_cpu_s ();
        int rc = s_login_all (self, w, t0 + 60LL * 1000000000, &done, &failed, &t1);
        double cpu = s_process_cpu_s () - cpu0;     /* the logins, not the checks */
        size_t sigfail = s_check_sigs (self);
        if (rc)
            s_reply ("error go failed");
        else
            s_reply ("ok done=%zu failed=%zu sigfail=%zu t1=%lld cpu=%.6f", done, failed,
                     sigfail, (long long) t1, cpu);
    }
    else
    if (sscanf (line, "hold %511s %zu %zu %zu %lld", a, &n, &m, &w, &t0) == 5) {
        size_t done = 0, failed = 0, sigfail = 0;
        int64_t t1 = 0;
        bn_sleep_until_ns (t0);
        int rc = s_logins_new (self, a, n, m, false);
        int64_t created = bn_now_ns ();
        if (rc == 0)
            rc = s_login_all (self, w, t0 + 120LL * 1000000000, &done, &failed, &t1);
        fprintf (stderr, "secbench load: %zu clients made in %.2f s, logged in %.2f s later\n",
                 n, (double) (created - t0) / 1e9, (double) (t1 - created) / 1e9);
        if (rc == 0)
            sigfail = s_check_sigs (self);
        if (rc)
            s_reply ("error hold failed");
        else
            s_reply ("ok done=%zu failed=%zu sigfail=%zu t1=%lld", done, failed, sigfail,
                     (long long) t1);
    }
    else
    if (sscanf (line, "conns %511s %zu %lld", a, &n, &t0) == 3) {
        size_t done = 0;
        int64_t t1 = 0;
        bn_sleep_until_ns (t0);
        if (s_conns (self, a, n, t0 + 60LL * 1000000000, &done, &t1))
            s_reply ("error conns failed");
        else
            s_reply ("ok done=%zu t1=%lld", done, (long long) t1);
    }
    else
    if (strncmp (line, "quitall", 7) == 0 || strncmp (line, "release", 7) == 0) {
        s_logins_free (self, line[0] == 'q' || line[0] == 'r');
        s_reply ("ok");
    }
    else
        s_reply ("error unknown command");
}

int
bn_load_main (int argc, char **argv)
{
    if (argc != 3) {
        fprintf (stderr, "usage: secbench load DIR\n");
        return 2;
    }
    s_load_t self;
    memset (&self, 0, sizeof self);
    long nofile = bn_raise_nofile ();
    self.zctx = zmq_ctx_new ();
    /* Each socket holds a TCP descriptor and a mailbox descriptor. */
    int max_sockets = nofile > 0 ? (int) (nofile / 2 - 64) : 1000;
    if (max_sockets > 30000)
        max_sockets = 30000;
    if (!self.zctx || zmq_ctx_set (self.zctx, ZMQ_MAX_SOCKETS, max_sockets)
        || bn_ident_load (&self.ident, argv[2])) {
        fprintf (stderr, "secbench load: setup failed\n");
        return 1;
    }
    char line[8192];
    while (fgets (line, sizeof line, stdin)) {
        line[strcspn (line, "\r\n")] = 0;
        if (strcmp (line, "exit") == 0)
            break;
        s_command (&self, line);
    }
    s_logins_free (&self, true);
    for (size_t i = 0; i < self.clients; i++) {
        for (size_t s = 0; s < self.nsizes; s++) {
            for (size_t k = 0; self.flows[i].pool[s] && k < self.pool_n[s]; k++)
                free (self.flows[i].pool[s][k]);
            free (self.flows[i].pool[s]);
            free (self.flows[i].pool_len[s]);
        }
        bn_client_destroy (&self.bc[i]);
        bn_client_destroy (&self.rc[i]);
        sc_channel_destroy (&self.rch[i]);
    }
    free (self.bc);
    free (self.rc);
    free (self.rch);
    free (self.flows);
    bn_ident_destroy (&self.ident);
    zmq_ctx_term (self.zctx);
    return 0;
}
