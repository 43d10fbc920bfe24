/*  secbench: the performance bench of secchat (docs/PERFORMANCE.md).

    One program, three roles, chosen by its first argument:

    - no role: the driver. It makes the keys, starts bin/secbroker, the
      raw ZeroMQ relay and the load processes (this program again), sends
      them commands, and prints one `name value` line per figure on
      stdout (diagnostics go to stderr).
    - `load DIR`: a load process. Real protocol clients (the login
      handshake, chats, E2E) in-process over DEALER sockets, driven by
      command lines on stdin, answering one line on stdout each.
    - `raw ENDPOINT MODE`: the raw ZeroMQ ROUTER relay the broker is
      compared with: no codec, no crypto.
    - `flood ENDPOINT SRC CONNS T0 MEASURE_AT END`: one process flooding
      the broker with HELLOs (bench_flood.c).

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at https://mozilla.org/MPL/2.0/.
*/
#ifndef BENCH_H_INCLUDED
#define BENCH_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "sc_channel.h"
#include "sc_e2e.h"
#include "sc_key.h"
#include "sc_msg.h"

/* The broker name in the bench's certificate (the key script's default). */
#define BN_BROKER_NAME "secbroker"

/* ---- Time (CLOCK_MONOTONIC, shared by every process of the machine) --- */
int64_t bn_now_ns (void);
void bn_sleep_ns (int64_t ns);
void bn_sleep_until_ns (int64_t when);

/* ---- Processes and files ------------------------------------------------ */
/* VmRSS of a process in KiB, or -1. */
long bn_rss_kib (pid_t pid);
/* CPU time (user + system) of a process, or of its main thread, in s. */
double bn_cpu_s (pid_t pid, bool main_thread);
/* CPU time of a process's threads so far, in s, from the scheduler's own
   nanosecond count (/proc/PID/task/TID/schedstat), summed by kind: the
   main thread, ZeroMQ's threads (named ZMQbg/...), and the others. 0, or
   -1 if the process or none of its threads can be read. */
typedef struct {
    double main, zmq, other;
} bn_threads_cpu_t;
int bn_threads_cpu (pid_t pid, bn_threads_cpu_t *cpu);
/* Idle time of all CPUs of the machine so far, in s. */
double bn_idle_s (void);
/* Raise RLIMIT_NOFILE to its hard limit; the new soft limit. */
long bn_raise_nofile (void);
/* Write a whole file (mode), 0 / -1. */
int bn_write_file (const char *path, const void *data, size_t len, int mode);
/* Read a whole small file into buf (at most cap bytes): its length or -1. */
ssize_t bn_read_file (const char *path, void *buf, size_t cap);
/* An Ed25519 public key as SubjectPublicKeyInfo PEM (NUL-terminated). */
void bn_spki_pem (const uint8_t pub[static SC_PUB_LEN], char pem[static 128]);
/* Value of key=VALUE in a reply line, or dflt. */
double bn_kv (const char *line, const char *key, double dflt);

/* ---- Statistics ------------------------------------------------------- */
/* Percentile p (0..100) of n samples (sorted in place). */
double bn_percentile (double *v, size_t n, double p);
/* Median of n values (sorted in place). */
double bn_median (double *v, size_t n);

/* ---- What every client of a load process shares ------------------------- */
typedef struct {
    sc_key_t *user_key;             /* the one user key (all names)      */
    uint8_t user_pub[SC_PUB_LEN];
    sc_key_t *broker_key;           /* from the certificate, verified    */
    uint8_t *cert;                  /* the certificate the broker sends  */
    size_t cert_len;
} bn_ident_t;

/* Load DIR/user.seed, DIR/ca.pem and DIR/broker.crt; the certificate is
   verified once here against the CA and the broker name. */
int bn_ident_load (bn_ident_t *self, const char *dir);
void bn_ident_destroy (bn_ident_t *self);

/* ---- A protocol client (bench_client.c) -------------------------------- */
typedef enum {
    BN_NEW, BN_HELLO_SENT, BN_AUTH_SENT, BN_ONLINE, BN_FAILED
} bn_state_t;

typedef struct {
    void *sock;                     /* libzmq DEALER                     */
    int fd;                         /* its ZMQ_FD                        */
    char name[SC_NAME_MAX + 1];
    bn_state_t state;
    /* login */
    uint8_t nonce_c[SC_RANDOM_LEN], eph_c[SC_PUB_LEN], e_priv[SC_KEY_LEN];
    uint8_t *hello;                 /* the HELLO frame, made in advance  */
    size_t hello_len;
    uint8_t th1[SC_HASH_LEN];       /* the broker's signature, checked   */
    uint8_t sig_b[SC_SIG_LEN];      /* after the timed part              */
    bool sig_pending;
    sc_channel_t *ch;
    /* chat */
    sc_e2e_t *e2e;
    uint8_t peer_key[SC_PUB_LEN];
    void *user;                     /* the load process's own data       */
} bn_client_t;

/* A DEALER to endpoint (routing_id NULL: the ROUTER assigns one). */
bn_client_t *bn_client_new (void *zctx, const char *endpoint, const char *name,
                            const void *routing_id, size_t routing_id_len);
void bn_client_destroy (bn_client_t **self_p);

/* Make the HELLO (fresh nonce and X25519 key). 0 / -1. */
int bn_client_prepare (bn_client_t *self);
/* Send it. 0 / -1. */
int bn_client_hello (bn_client_t *self);
/* One frame received during the login: answers AUTH_BROKER with
   AUTH_CLIENT, checks WELCOME. 1 logged in, 0 go on, -1 failed. The
   broker's signature is only recorded (sig_pending): check it with
   bn_client_check_sig once the timed part is over. */
int bn_client_login_step (bn_client_t *self, const bn_ident_t *ident,
                          const uint8_t *frame, size_t len);
/* The recorded signature of the broker over TH1. 0 / -1. */
int bn_client_check_sig (bn_client_t *self, const bn_ident_t *ident);
/* The whole login, blocking (setup, not timed). 0 / -1. */
int bn_client_login (bn_client_t *self, const bn_ident_t *ident, int timeout_ms);

/* Sealed messages after login, blocking with a timeout (setup). */
int bn_client_send (bn_client_t *self, const sc_msg_t *msg);
/* 1 and msg (sc_msg_reset it), 0 on timeout, -1 when it does not open. */
int bn_client_recv (bn_client_t *self, int timeout_ms, sc_msg_t *msg);
/* Frame-level: 1 and a frame (malloc'd) or 0 when none within timeout. */
int bn_client_recv_frame (bn_client_t *self, int timeout_ms, uint8_t **frame, size_t *len);

/* LIST until name is listed (a user on another node of a cluster is
   known once its node's UP has arrived), one LIST per 100 ms. 0 / -1. */
int bn_client_await (bn_client_t *self, const char *name, int timeout_ms);

/* RTT, ACCEPT, CHAT and the E2E handshake between two logged-in clients
   of the same process (a asks, b accepts), on one broker or on two nodes
   of a cluster. 0 / -1. */
int bn_chat_open (bn_client_t *a, bn_client_t *b, const bn_ident_t *ident,
                  int timeout_ms);

/* ---- Roles ------------------------------------------------------------------ */
int bn_load_main (int argc, char **argv);
int bn_raw_main (int argc, char **argv);
int bn_flood_main (int argc, char **argv);

#endif
