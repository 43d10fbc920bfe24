/*  secbench raw: the raw ZeroMQ relay the broker is measured against.

    One ROUTER with the broker's socket options, the broker's poll loop
    shape (poll, then drain up to 1000 messages), and no codec and no
    crypto: a message from a client whose routing id is a bench pair id
    ("p" + 3 bytes + side) goes to the other side of the pair, the same
    frame as it came (zero copy); any other message is echoed back to its
    sender (the connection count test).

    The crypto floor: after SIGUSR1 (until SIGUSR2) the relay also does,
    for every message it forwards, the least a relay that re-encrypts
    must do: one ChaCha20-Poly1305 seal and one open of the size the
    broker's are (the frame less an envelope's header of about 10 bytes
    and the tag), in the frame itself, with a channel's 42 bytes of
    associated data, under keyed contexts that belong to the receiving
    session, as a channel's do (each session of a pair has its own key
    and its own two contexts, made on its first message, as the broker's
    sessions have theirs): the body is sealed where it lies and opened
    again, and the tag it overwrites is put back, so the frame goes on
    unchanged. No decoding, no lookup, no header, no wipe. It prints
    "raw floor on" / "raw floor off" once switched.

    Usage: secbench raw ENDPOINT HEARTBEAT_MS. Prints "raw listening on
    EP" once bound; SIGTERM stops it.

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at https://mozilla.org/MPL/2.0/.
*/
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "bench.h"
#include "sc_crypto.h"

#define S_FLOOR_AD  42              /* a channel's associated data        */
#define S_FLOOR_HDR 10              /* a MESSAGE envelope's header, about */

static volatile sig_atomic_t s_stop = 0;
static volatile sig_atomic_t s_floor_wanted = 0;

static void
s_on_term (int sig)
{
    (void) sig;
    s_stop = 1;
}

static void
s_on_usr (int sig)
{
    s_floor_wanted = sig == SIGUSR1;
}

#define S_FLOOR_SESSIONS 1024         /* the bench's pairs use 16 to 256  */

/* One receiving session's contexts (the same key in both). */
typedef struct {
    sc_aead_t *seal, *open;
    uint64_t seq;
} s_floor_session_t;

typedef struct {
    bool on;
    uint8_t ad[S_FLOOR_AD];
    s_floor_session_t session[S_FLOOR_SESSIONS];
} s_floor_t;

/* The receiving session with routing id rid ('p', pair, side), keyed on
   first use; NULL if it cannot be keyed. */
static s_floor_session_t *
s_floor_session (s_floor_t *f, const uint8_t rid[5])
{
    uint32_t pair = (uint32_t) rid[1] << 16 | (uint32_t) rid[2] << 8 | rid[3];
    s_floor_session_t *s = &f->session[(2 * pair + (rid[4] & 1)) % S_FLOOR_SESSIONS];
    if (!s->seal) {
        uint8_t key[SC_KEY_LEN];
        if (sc_random (key, sizeof key))
            return NULL;
        s->seal = sc_aead_new (key);
        s->open = sc_aead_new (key);
        sc_wipe (key, sizeof key);
        if (!s->seal || !s->open) {
            sc_aead_destroy (&s->seal);
            sc_aead_destroy (&s->open);
            return NULL;
        }
    }
    return s;
}

/* The floor's work for one frame of len bytes going to rid: seal the
   len - 26 bytes a broker re-seals where they lie, open them again, put
   back the 16 bytes the tag overwrote. 0, or -1 if anything fails
   (nothing should; all is checked). */
static int
s_floor (s_floor_t *f, const uint8_t rid[5], uint8_t *frame, size_t len)
{
    size_t over = S_FLOOR_HDR + SC_TAG_LEN;
    if (len < over || len > SC_ENVELOPE_MAX)
        return -1;
    size_t pt_len = len - over;
    uint8_t *body = frame + S_FLOOR_HDR, tail[SC_TAG_LEN], nonce[SC_NONCE_LEN];
    s_floor_session_t *s = s_floor_session (f, rid);
    if (!s)
        return -1;
    memcpy (tail, frame + len - SC_TAG_LEN, SC_TAG_LEN);
    s->seq++;
    sc_aead_nonce (s->seq, nonce);
    memcpy (f->ad + S_FLOOR_AD - 8, &s->seq, 8);
    if (sc_aead_seal_with (s->seal, nonce, f->ad, sizeof f->ad, body, pt_len, body)
        || sc_aead_open_with (s->open, nonce, f->ad, sizeof f->ad, body, pt_len + SC_TAG_LEN,
                              body))
        return -1;
    memcpy (frame + len - SC_TAG_LEN, tail, SC_TAG_LEN);
    return 0;
}

static void
s_floor_destroy (s_floor_t *f)
{
    for (size_t i = 0; i < S_FLOOR_SESSIONS; i++) {
        sc_aead_destroy (&f->session[i].seal);
        sc_aead_destroy (&f->session[i].open);
    }
}

static void
s_drain (void *router, s_floor_t *floor)
{
    for (int i = 0; i < 1000; i++) {
        zmq_msg_t rid, body;
        zmq_msg_init (&rid);
        if (zmq_msg_recv (&rid, router, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close (&rid);
            return;
        }
        zmq_msg_init (&body);
        bool ok = zmq_msg_more (&rid) && zmq_msg_recv (&body, router, 0) >= 0
                  && !zmq_msg_more (&body);
        uint8_t *id = zmq_msg_data (&rid);
        if (ok && zmq_msg_size (&rid) == 5 && id[0] == 'p') {
            id[4] ^= 1;             /* the other side of the pair */
            if (floor->on && s_floor (floor, id, zmq_msg_data (&body), zmq_msg_size (&body))) {
                fprintf (stderr, "secbench raw: the floor's AEAD failed\n");
                s_stop = 1;
                ok = false;
            }
        }
        if (ok && (zmq_msg_send (&rid, router, ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0
                   || zmq_msg_send (&body, router, ZMQ_DONTWAIT) < 0))
            fprintf (stderr, "secbench raw: send failed: %s\n", zmq_strerror (zmq_errno ()));
        zmq_msg_close (&body);
        zmq_msg_close (&rid);
    }
}

int
bn_raw_main (int argc, char **argv)
{
    if (argc != 4) {
        fprintf (stderr, "usage: secbench raw ENDPOINT HEARTBEAT_MS\n");
        return 2;
    }
    bn_raise_nofile ();
    struct sigaction sa;
    memset (&sa, 0, sizeof sa);
    sa.sa_handler = s_on_term;
    sigaction (SIGTERM, &sa, NULL);
    sigaction (SIGINT, &sa, NULL);
    sa.sa_handler = s_on_usr;
    sigaction (SIGUSR1, &sa, NULL);
    sigaction (SIGUSR2, &sa, NULL);
    signal (SIGPIPE, SIG_IGN);

    static s_floor_t floor;         /* 24 KiB of pointers: not on the stack */

    void *ctx = zmq_ctx_new ();
    void *router = ctx ? zmq_socket (ctx, ZMQ_ROUTER) : NULL;
    if (!router)
        return 1;
    /* The broker's options (broker/secbroker.c s_bind) */
    int64_t maxmsg = SC_ENVELOPE_MAX;
    int one = 1, linger = 1000, hwm = 10000, backlog = 4096, hb = atoi (argv[3]), hb_timeout = 3 * hb;
    zmq_setsockopt (router, ZMQ_MAXMSGSIZE, &maxmsg, sizeof maxmsg);
    zmq_setsockopt (router, ZMQ_ROUTER_MANDATORY, &one, sizeof one);
    zmq_setsockopt (router, ZMQ_LINGER, &linger, sizeof linger);
    zmq_setsockopt (router, ZMQ_SNDHWM, &hwm, sizeof hwm);
    zmq_setsockopt (router, ZMQ_RCVHWM, &hwm, sizeof hwm);
    zmq_setsockopt (router, ZMQ_BACKLOG, &backlog, sizeof backlog);
    zmq_setsockopt (router, ZMQ_HEARTBEAT_IVL, &hb, sizeof hb);
    zmq_setsockopt (router, ZMQ_HEARTBEAT_TIMEOUT, &hb_timeout, sizeof hb_timeout);
    if (zmq_bind (router, argv[2])) {
        fprintf (stderr, "secbench raw: cannot bind %s: %s\n", argv[2], zmq_strerror (zmq_errno ()));
        return 1;
    }
    char endpoint[256];
    size_t ep_len = sizeof endpoint;
    zmq_getsockopt (router, ZMQ_LAST_ENDPOINT, endpoint, &ep_len);
    printf ("raw listening on %s\n", endpoint);
    fflush (stdout);
    while (!s_stop) {
        zmq_pollitem_t item = { router, 0, ZMQ_POLLIN, 0 };
        int rc = zmq_poll (&item, 1, 100);
        if (rc < 0 && zmq_errno () != EINTR)
            break;
        if (rc > 0)
            s_drain (router, &floor);
        bool wanted = s_floor_wanted;
        if (floor.on != wanted) {
            floor.on = wanted;
            printf ("raw floor %s\n", floor.on ? "on" : "off");
            fflush (stdout);
        }
    }
    s_floor_destroy (&floor);
    linger = 0;
    zmq_setsockopt (router, ZMQ_LINGER, &linger, sizeof linger);
    zmq_close (router);
    zmq_ctx_term (ctx);
    return 0;
}
