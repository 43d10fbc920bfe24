/*  sc_cluster: several secbrokers as one service, over NATS. The only
    module that knows NATS; the protocol core calls it through this small
    interface and sees no NATS type.

    Each broker (a node) keeps, from what the other nodes publish, a table
    of who is online on which node: presence (UP / DOWN), a heartbeat a
    second with the node's count of users, and snapshots asked for when a
    node joins, when counts disagree, or after a reconnection. A node
    silent for dead_ms is gone: its users leave the table and the core
    is told (SC_CLUSTER_NODE_GONE), so their peers here hear `lost`.
    The tables filled from what others publish (nodes, their users, the
    nodes given up) are bounded, so that nothing published on NATS makes
    a node grow without end.
    Requests, answers and relayed bodies for a user go to its node's own
    subject, in order. The invitations and users of the cluster live in
    two JetStream key-value buckets that every node opens
    (sc_cluster_kv_open) and reads and writes with the sc_cluster_kv_
    calls; a thread watches the users' bucket and hands each change to
    the core (SC_CLUSTER_USER). docs/PROTOCOL.md section 12 is the
    specification.

    Threads: NATS delivers on its own thread; messages wait in a queue
    until the core's thread reads them with sc_cluster_next, woken by
    sc_cluster_fd. Everything else is called from the core's thread,
    but the sc_cluster_kv_ calls on the buckets, which block and may be
    called from any thread (the enrolment's worker).

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at https://mozilla.org/MPL/2.0/.
*/
#ifndef SC_CLUSTER_H_INCLUDED
#define SC_CLUSTER_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sc_node.h"

/* Not on the wire: what sc_cluster_next hands the core besides the
   messages other nodes sent to its users. */
#define SC_CLUSTER_NODE_GONE  100   /* node: every link to it is lost     */
#define SC_CLUSTER_REPLACED   101   /* from logged in again on node:
                                       the session from_sid here goes     */
#define SC_CLUSTER_USER       102   /* from's entry in the bucket
                                       secchat-users changed: has_key and
                                       key, or no key: gone from it;
                                       from_sid: the entry's revision     */

typedef struct {
    const char *urls;           /* nats://h:p or tls://h:p, comma-separated */
    const char *node;           /* this node's name ([a-z0-9_-]{1,32})    */
    const char *user;           /* NATS user and password, or NULL        */
    const char *password;
    const char *creds;          /* a .creds file (JWT and nkey seed)      */
    const char *nkey;           /* a file with a user nkey seed (SU...)   */
    const char *tls_ca;         /* CA file to verify the NATS servers     */
    const char *tls_cert;       /* client certificate and key for them    */
    const char *tls_key;
    uint32_t beat_ms;           /* heartbeat interval (1000)              */
    uint32_t dead_ms;           /* silent this long: a node is gone (5000) */
    uint32_t connect_ms;        /* give up connecting at start after (5000) */
    int replicas;               /* the buckets' replicas, when made (1)   */
    bool tool;                  /* secbroker invite / users: a connection
                                   for the buckets only, no presence      */
} sc_cluster_opts_t;

void sc_cluster_opts_default (sc_cluster_opts_t *opts);

typedef struct _sc_cluster_t sc_cluster_t;

/* Connects (retrying until connect_ms) and subscribes; NULL with why
   (one line naming the URLs tried) when it cannot. */
sc_cluster_t *sc_cluster_new (const sc_cluster_opts_t *opts, char *why, size_t size);
void sc_cluster_destroy (sc_cluster_t **self_p);

const char *sc_cluster_node (const sc_cluster_t *self);
/* Readable when sc_cluster_next has something. */
int sc_cluster_fd (const sc_cluster_t *self);

/* A user logged in here (session number sid) / its session ended. */
void sc_cluster_online (sc_cluster_t *self, const char *name, uint64_t sid);
void sc_cluster_offline (sc_cluster_t *self, const char *name, uint64_t sid);
/* Online on another node: 0 with its node (borrowed) and session. */
int sc_cluster_locate (sc_cluster_t *self, const char *name, const char **node,
                       uint64_t *sid);
/* Each name online on another node (a name may come twice while it
   moves between nodes). */
typedef void (sc_cluster_name_fn) (void *arg, const char *name);
void sc_cluster_names (sc_cluster_t *self, sc_cluster_name_fn *fn, void *arg);
/* Users online on other nodes, as the table has them. */
size_t sc_cluster_remote_users (const sc_cluster_t *self);
/* The link, for the metrics: connected to a NATS server now; the other
   nodes the table holds; reconnections to NATS since the start. */
bool sc_cluster_connected (const sc_cluster_t *self);
size_t sc_cluster_nodes (const sc_cluster_t *self);
uint64_t sc_cluster_reconnects (sc_cluster_t *self);
/* To node's subject; msg's node and boot are filled in. 0, or -1 when
   NATS would not take it (then it is not sent). */
int sc_cluster_send (sc_cluster_t *self, const char *node, sc_node_msg_t *msg);
/* The next message for the core: 1 and *msg (its data valid until the
   next call), 0 when none waits. Presence is handled inside. */
int sc_cluster_next (sc_cluster_t *self, sc_node_msg_t *msg, int64_t now_ms);
/* Heartbeats, nodes gone, snapshots asked for. A few times a second;
   now_ms is monotonic. */
void sc_cluster_tick (sc_cluster_t *self, int64_t now_ms);

/* ---- The buckets: invitations and users (section 12) ------------------- */

#define SC_CLUSTER_INVITES "secchat-invites"
#define SC_CLUSTER_USERS   "secchat-users"

/* Opens the buckets secchat-invites and secchat-users, making each one
   that does not exist (history 1, opts.replicas, file storage), retried
   while JetStream is not ready (at most connect_ms + 10 s). With watch,
   every entry of secchat-users is then in the queue for the core
   (SC_CLUSTER_USER) when it returns, and each change comes the same
   way as it happens (a thread watches the bucket). 0, or -1 with why
   (one line). */
int sc_cluster_kv_open (sc_cluster_t *self, bool watch, char *why, size_t size);

/* Results of the calls below. */
#define SC_CLUSTER_KV_OK      0
#define SC_CLUSTER_KV_NONE   (-1)   /* no such key (or deleted); update: the
                                       revision is no longer the last     */
#define SC_CLUSTER_KV_EXISTS (-2)   /* create: the key exists             */
#define SC_CLUSTER_KV_EIO    (-3)   /* NATS did not answer, or refused:
                                       why says what                      */

/* Any thread, blocking (each call 2 s at most). bucket is one of the two
   names above, key a user name. get: the value into value (size bytes
   at most, *len its length; longer is SC_CLUSTER_KV_EIO) and its
   revision. create: only if key is absent, *revision (may be NULL) the
   entry's; a call that failed is followed by a read: the entry holds
   value and the call got no answer (a create applied although its
   answer was lost): OK; else an entry: EXISTS; no entry: NONE (nothing was created); the read failed
   too: EIO (the outcome is unknown). update: only if revision is still
   the key's last, *new_revision (may be NULL) the entry's after; NONE
   when it changed meanwhile or is gone. */
int sc_cluster_kv_get (sc_cluster_t *self, const char *bucket, const char *key,
                       uint8_t *value, size_t size, size_t *len, uint64_t *revision,
                       char *why, size_t why_size);
int sc_cluster_kv_create (sc_cluster_t *self, const char *bucket, const char *key,
                          const uint8_t *value, size_t len, uint64_t *revision,
                          char *why, size_t why_size);
int sc_cluster_kv_update (sc_cluster_t *self, const char *bucket, const char *key,
                          const uint8_t *value, size_t len, uint64_t revision,
                          uint64_t *new_revision, char *why, size_t why_size);
int sc_cluster_kv_put (sc_cluster_t *self, const char *bucket, const char *key,
                       const uint8_t *value, size_t len, char *why, size_t why_size);
int sc_cluster_kv_delete (sc_cluster_t *self, const char *bucket, const char *key,
                          char *why, size_t why_size);
/* For the tests of what NATS's failures do: the call ("get", "create"
   or "update") on bucket after the next skip ones fails as if NATS had
   not answered in time (NATS_TIMEOUT), made all the same (its answer
   lost) with made, else not made. Up to 4 at once; -1 when 4 wait. */
int sc_cluster_kv_fault (sc_cluster_t *self, const char *call, const char *bucket,
                         unsigned skip, bool made);
/* Each key of bucket with its value, in no order. */
typedef void (sc_cluster_kv_fn) (void *arg, const char *key, const uint8_t *value,
                                 size_t len);
int sc_cluster_kv_list (sc_cluster_t *self, const char *bucket, sc_cluster_kv_fn *fn,
                        void *arg, char *why, size_t why_size);

#endif
