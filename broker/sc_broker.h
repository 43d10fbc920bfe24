/*  sc_broker: the broker's protocol core. It owns the session table and
    runs every session's state machine; it has no socket. The caller
    hands it each message the ROUTER received (routing id + envelope)
    and the time, and it answers through a send callback. So the same
    code runs in bin/secbroker, in unit tests and under a fuzzer.

    Sessions: a routing id in the handshake, then a logged-in user with
    an encrypted channel and a chat state (idle, asking, asked, chatting)
    linked to at most one other session. docs/PROTOCOL.md section 4 says
    what each opcode does.

    Enrolment (section 5a) reads invitations from the registry's folder
    and writes the new key there; on a node of a cluster it also reads
    invitations from, and writes the new key to, the cluster's buckets
    (section 12), in the job that checks the new key's signature, since
    those calls block. An invitation's expiry is compared with the wall
    clock, time(2), not with the time handed in.

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at https://mozilla.org/MPL/2.0/.
*/
#ifndef SC_BROKER_H_INCLUDED
#define SC_BROKER_H_INCLUDED

#include <stddef.h>
#include <stdint.h>

#include "sc_key.h"
#include "sc_node.h"
#include "sc_registry.h"

/* Deliver frame to the client with this routing id. The callee owns
   frame (malloc'd) and frees it. 0 when queued; SC_BROKER_GONE when the
   client is gone (its session ends); SC_BROKER_FULL when its queue is
   full (the frame is dropped and the sender, if any, told so). */
#define SC_BROKER_GONE (-1)
#define SC_BROKER_FULL (-2)
typedef int (sc_broker_send_fn) (void *arg, const uint8_t *rid, size_t rid_len,
                                 uint8_t *frame, size_t len);

typedef struct {
    uint32_t heartbeat_ms;      /* announced; silent 3x this: dropped    */
    uint32_t handshake_ms;      /* a login must finish within this       */
    size_t   max_handshakes;    /* logins in progress at once, counting
                                   jobs whose session has gone           */
    size_t   max_per_source;    /* ...of them from one source address    */
    size_t   cookie_at;         /* from this many on, HELLO needs a cookie */
    size_t   max_failed_per_source; /* failed logins a minute from one
                                   source address; past it, refused      */
    uint32_t rate_burst;        /* control requests in a burst...        */
    uint32_t rate_per_s;        /* ...and per second after it            */
    uint64_t seq_limit;         /* session counter limit; 0: 2^48        */
    bool     registration_open; /* anyone may enrol a free name, no code */
    size_t   enrol_per_source;  /* enrolments a minute from one source   */
    size_t   enrol_failed_per_name; /* failed enrolments a minute per name */
} sc_broker_opts_t;

/* Defaults: 5000, 10000, 4096, 1024, 256, 128, 20, 10, 0, false, 10, 5. */
void sc_broker_opts_default (sc_broker_opts_t *opts);

typedef struct _sc_broker_t sc_broker_t;

/* key, cert and registry are borrowed and must outlive the broker. */
sc_broker_t *sc_broker_new (const sc_key_t *key, const uint8_t *cert,
                            size_t cert_len, sc_registry_t *registry,
                            const sc_broker_opts_t *opts,
                            sc_broker_send_fn *send, void *arg);
/* Ends every session quietly (use sc_broker_shutdown first to tell). */
void sc_broker_destroy (sc_broker_t **self_p);

/* One message from the ROUTER. Never fails: bad input is answered and
   logged, and changes nothing else. */
void sc_broker_handle (sc_broker_t *self, const uint8_t *rid, size_t rid_len,
                       const uint8_t *data, size_t len, int64_t now_ms);
/* The same, without copies: data is the caller's to overwrite, and the
   core opens the envelope where it lies (no plaintext is left in it on
   return). With a forward function set, a relayed envelope is sealed
   for the peer in place (when its header for the peer has the same
   length: nearly always) and handed to the forward function to be sent
   as it is. Returns 1 when it was (data is then the sender's to let go,
   no longer the caller's), 0 otherwise. */
int sc_broker_handle_frame (sc_broker_t *self, const uint8_t *rid, size_t rid_len,
                            uint8_t *data, size_t len, int64_t now_ms);
/* Send the frame being handled by sc_broker_handle_frame, rewritten
   for rid, as it is (same arg and results as the send function); the
   shell can give ZeroMQ the very message it received. */
typedef int (sc_broker_forward_fn) (void *arg, const uint8_t *rid, size_t rid_len);
void sc_broker_set_forward (sc_broker_t *self, sc_broker_forward_fn *forward);
/* The peer address of the message being handled, as libzmq's
   Peer-Address gives it (e.g. "192.0.2.7"), or NULL when it is not
   known; asked only when a HELLO would start a login. The session's log
   lines name it; logins in progress are capped per source, the source
   being sc_broker_source_name of it. */
typedef const char *(sc_broker_source_fn) (void *arg);
void sc_broker_set_source (sc_broker_t *self, sc_broker_source_fn *source);
/* The source name a login from addr (getnameinfo's numeric form, as
   libzmq's Peer-Address gives it) is counted under, into buf: an IPv4
   address as it is (an IPv4-mapped IPv6 one as IPv4), an IPv6 address
   as its /64, since one host commonly holds a whole /64. addr itself
   when it is neither. */
const char *sc_broker_source_name (const char *addr, char *buf, size_t size);
/* Expire handshakes and silent sessions, rotate the cookie secret, log
   the failed logins' summary. Call a few times a second. */
void sc_broker_tick (sc_broker_t *self, int64_t now_ms);
/* Tell every logged-in client the broker stops (ERROR SHUTDOWN). */
void sc_broker_shutdown (sc_broker_t *self);

/* After the registry was reloaded: log out every logged-in user whose
   key left it or changed. Each gets ERROR REVOKED, its chat peer or
   pending counterpart NOTIFY [name, 5], and it is no longer listed. A
   login whose signature check is under way is refused when it comes
   back (sc_broker_job_done compares the key again). Returns how many
   were logged out. */
size_t sc_broker_revalidate (sc_broker_t *self);
/* A new key and certificate (DER, at most SC_CERT_MAX bytes) for the
   logins from now on; the core takes both over (*key_p and *cert_p
   become NULL) and frees them once the last login that used them is
   done. Logins under way finish with the identity they started with.
   The caller checked that they belong together (sc_cert_check). 0, or
   -1 (bad arguments, no memory: nothing taken, nothing changed). */
int sc_broker_set_identity (sc_broker_t *self, sc_key_t **key_p, uint8_t **cert_p,
                            size_t cert_len);

/* Why a login failed, as the metrics count it: the ERROR it got (AUTH;
   TIMEOUT; SUITE; RATE, refused at HELLO by a cap; INTERNAL; PROTOCOL:
   MALFORMED, VERSION or STATE). */
typedef enum {
    SC_BROKER_FAIL_AUTH = 0, SC_BROKER_FAIL_TIMEOUT, SC_BROKER_FAIL_PROTOCOL,
    SC_BROKER_FAIL_SUITE, SC_BROKER_FAIL_RATE, SC_BROKER_FAIL_INTERNAL,
    SC_BROKER_FAIL_COUNT
} sc_broker_fail_t;
/* "auth", "timeout", "protocol", "suite", "rate", "internal". */
const char *sc_broker_fail_name (sc_broker_fail_t reason);

/* What the broker did since it started (counters), and what it holds
   now (gauges). The core counts with plain integers on its own thread;
   another thread reads a copy taken with sc_broker_stats. */
typedef struct {
    uint64_t logins;            /* succeeded                              */
    uint64_t logins_failed[SC_BROKER_FAIL_COUNT];
    uint64_t cookies;           /* COOKIE answers sent                    */
    uint64_t relayed;           /* envelopes relayed (MESSAGE, E2E)       */
    uint64_t relayed_bytes;     /* ...their bytes, envelopes as received  */
    uint64_t undelivered;       /* relayed envelopes not delivered        */
    uint64_t chats;             /* gauge: chats open                      */
    uint64_t sessions;          /* gauge: users logged in                 */
    uint64_t handshakes;        /* gauge: logins in progress              */
    /* a node of a cluster (--cluster) only: */
    uint64_t cluster_nodes;     /* gauge: other nodes heard from          */
    uint64_t cluster_users;     /* gauge: users online on other nodes     */
    uint64_t cluster_reconnects;    /* reconnections to NATS since start  */
    uint64_t cluster_registered;    /* gauge: users of the bucket secchat-users */
    bool clustered;             /* the cluster_ figures are set           */
    bool cluster_connected;     /* gauge: connected to a NATS server now  */
} sc_broker_stats_t;
void sc_broker_stats (const sc_broker_t *self, sc_broker_stats_t *stats);

/* A cluster of brokers (broker/sc_cluster.h): with one set, users not
   online here are looked for on the other nodes, logins and logouts are
   published, and sc_broker_cluster_msg takes what sc_cluster_next hands
   over. Without one (the default) nothing of this runs. The cluster is
   borrowed and must outlive the broker. */
typedef struct _sc_cluster_t sc_cluster_t;
void sc_broker_set_cluster (sc_broker_t *self, sc_cluster_t *cluster);
void sc_broker_cluster_msg (sc_broker_t *self, const sc_node_msg_t *msg, int64_t now_ms);

size_t sc_broker_sessions (const sc_broker_t *self);     /* logged in  */
size_t sc_broker_handshakes (const sc_broker_t *self);   /* in progress */
/* Logins in progress that count against max_handshakes: handshakes and
   the jobs out whose session has gone. */
size_t sc_broker_logins (const sc_broker_t *self);

/* Logins on other threads. The two costly steps of a login (answering
   HELLO: a key pair, an exchange and a signature; checking the client's
   signature) are jobs. A job carries copies of what it reads and the
   login's handshake, so it can run on any thread while the session table
   stays the core's alone, without a lock. By default the core runs each
   job at once. With an offload function it hands the job over instead
   (the function returns 0), and whoever took it calls sc_broker_job_run
   on any thread, then gives it back with sc_broker_job_done on the
   core's thread. A job whose session has gone meanwhile (timed out, its
   client lost) is dropped there; until then it still counts as a login
   in progress, so the jobs out never exceed max_handshakes. A
   connection has at most one job out: what it sends meanwhile is
   dropped. Give every job back before sc_broker_destroy. */
typedef struct _sc_broker_job_t sc_broker_job_t;
typedef int (sc_broker_offload_fn) (void *arg, sc_broker_job_t *job);
void sc_broker_set_offload (sc_broker_t *self, sc_broker_offload_fn *offload, void *arg);
/* Any thread: the job's cryptography. */
void sc_broker_job_run (sc_broker_job_t *job);
/* The core's thread: the login goes on (or the job is dropped); frees
   the job. */
void sc_broker_job_done (sc_broker_t *self, sc_broker_job_t *job, int64_t now_ms);
/* Jobs handed over and not given back yet. */
size_t sc_broker_jobs (const sc_broker_t *self);

#endif
