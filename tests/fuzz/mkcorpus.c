/*  mkcorpus: write the fuzz targets' seed corpus from real sessions.

    Usage: mkcorpus DIR    (run from the repository root)

    Runs scripted sessions through the broker and client targets
    in-process (real logins, a real chat with real end-to-end keys, and
    the usual refusals, timeouts and replacements), and writes:

      DIR/broker/, DIR/client/   each script, and each of its records alone
      DIR/envelope/              every frame the sessions carried
      DIR/body/                  every message body (opcode || body) and
                                 E2E plaintext (0xff || plaintext) in them

    File names are a hash of the content. The keys are throwaway (made
    for this run, never written here) and no file holds a private key.

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at https://mozilla.org/MPL/2.0/.
*/
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "sc_e2e.h"
#include "sc_fuzz.h"
#include "sc_msg.h"

static const char *s_dir;
static size_t s_written;

/* ---- Files ------------------------------------------------------------------ */

static uint64_t
s_fnv (const uint8_t *data, size_t len)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < len; i++) {
        h ^= data[i];
        h *= 0x100000001b3ULL;
    }
    return h;
}

static void
s_write (const char *target, const uint8_t *data, size_t len)
{
    char path[512];
    snprintf (path, sizeof path, "%s/%s/%016llx", s_dir, target,
              (unsigned long long) s_fnv (data, len));
    FILE *file = fopen (path, "wb");
    if (!file || (len && fwrite (data, 1, len, file) != len) || fclose (file)) {
        fprintf (stderr, "mkcorpus: cannot write %s\n", path);
        exit (1);
    }
    s_written++;
}

static void
s_recorder (sc_fuzz_seen_t what, const uint8_t *data, size_t len)
{
    s_write (what == SC_FUZZ_SEEN_ENVELOPE ? "envelope" : "body", data, len);
}

/* ---- Scripts ------------------------------------------------------------------ */

typedef struct {
    uint8_t data[16384];
    size_t len;
    size_t starts[512];         /* where each record starts */
    size_t records;
} s_script_t;

static void
s_rec (s_script_t *s, uint8_t sel, const uint8_t *payload, size_t len)
{
    if (s->len + 3 + len > sizeof s->data || s->records == 512) {
        fprintf (stderr, "mkcorpus: script too long\n");
        exit (1);
    }
    s->starts[s->records++] = s->len;
    s->data[s->len++] = sel;
    s->data[s->len++] = (uint8_t) (len >> 8);
    s->data[s->len++] = (uint8_t) len;
    if (len)
        memcpy (s->data + s->len, payload, len);
    s->len += len;
}

static void
s_rec_u16 (s_script_t *s, uint8_t sel, uint32_t value)
{
    uint8_t payload[2] = { (uint8_t) (value >> 8), (uint8_t) value };
    s_rec (s, sel, payload, 2);
}

static void
s_rec_text (s_script_t *s, uint8_t sel, const char *text)
{
    s_rec (s, sel, (const uint8_t *) text, strlen (text));
}

/* opcode || encoded body of msg */
static void
s_rec_msg (s_script_t *s, uint8_t sel, const sc_msg_t *msg)
{
    uint8_t *body = NULL;
    size_t len = 0;
    if (sc_msg_encode (msg, &body, &len)) {
        fprintf (stderr, "mkcorpus: cannot encode %s\n", sc_opcode_name (msg->opcode));
        exit (1);
    }
    uint8_t *payload = malloc (len + 1);
    if (!payload)
        exit (1);
    payload[0] = msg->opcode;
    memcpy (payload + 1, body, len);
    s_rec (s, sel, payload, len + 1);
    free (payload);
    free (body);
}

static void
s_rec_op (s_script_t *s, uint8_t sel, uint8_t opcode)
{
    sc_msg_t msg;
    sc_msg_init (&msg, opcode);
    s_rec_msg (s, sel, &msg);
}

static void
s_rec_named (s_script_t *s, uint8_t sel, uint8_t opcode, const char *name, uint32_t code)
{
    sc_msg_t msg;
    sc_msg_init (&msg, opcode);
    msg.code = code;
    if (sc_msg_set_name (&msg, name))
        exit (1);
    s_rec_msg (s, sel, &msg);
}

static void
s_rec_error (s_script_t *s, uint8_t sel, uint32_t code, const char *detail)
{
    sc_msg_t msg;
    sc_msg_init (&msg, SC_OP_ERROR);
    msg.code = code;
    if (sc_msg_set_text (&msg, detail))
        exit (1);
    s_rec_msg (s, sel, &msg);
    sc_msg_reset (&msg);
}

/* An E2E plaintext: kind, the two counts and text, encoded. */
static void
s_rec_plain (s_script_t *s, uint8_t sel, uint8_t kind, uint64_t ack, uint64_t lines,
             const char *text)
{
    uint8_t *pt = NULL;
    size_t len = 0;
    if (sc_e2e_plain_encode (kind, ack, lines, text, strlen (text), &pt, &len))
        exit (1);
    s_rec (s, sel, pt, len);
    free (pt);
}

/* PEER_LOSE: bob seals 1 + 8 * (flags >> 1) plaintexts that never arrive. */
static void
s_rec_lost (s_script_t *s, uint8_t flags, uint8_t kind, uint64_t ack, uint64_t lines,
            const char *text)
{
    uint8_t *pt = NULL;
    size_t len = 0;
    if (sc_e2e_plain_encode (kind, ack, lines, text, strlen (text), &pt, &len))
        exit (1);
    uint8_t *payload = malloc (len + 1);
    if (!payload)
        exit (1);
    payload[0] = flags;
    memcpy (payload + 1, pt, len);
    s_rec (s, SC_FUZZ_C_PEER_LOSE, payload, len + 1);
    free (payload);
    free (pt);
}

/* Write the script, and each record of it alone; run it to record what
   goes over the wire. */
static void
s_emit (const char *target, const s_script_t *s, int (*run) (const uint8_t *, size_t))
{
    s_write (target, s->data, s->len);
    for (size_t i = 0; i < s->records; i++) {
        size_t end = i + 1 < s->records ? s->starts[i + 1] : s->len;
        s_write (target, s->data + s->starts[i], end - s->starts[i]);
    }
    sc_fuzz_recorder = s_recorder;
    run (s->data, s->len);
    sc_fuzz_recorder = NULL;
}

/* ---- A real end-to-end exchange, for the broker's scripts -------------------- */

typedef struct {
    sc_e2e_t *alice, *bob;      /* alice initiates */
    sc_msg_t session, reply, finish;
} s_e2e_pair_t;

static void
s_e2e_pair (s_e2e_pair_t *p, const sc_fuzz_keys_t *keys)
{
    p->alice = sc_e2e_new (keys->user[SC_FUZZ_ALICE], "alice", keys->pub[SC_FUZZ_BOB], "bob", true);
    p->bob = sc_e2e_new (keys->user[SC_FUZZ_BOB], "bob", keys->pub[SC_FUZZ_ALICE], "alice", false);
    sc_msg_init (&p->session, SC_OP_CC_SESSION);
    sc_msg_init (&p->reply, SC_OP_CC_REPLY);
    sc_msg_init (&p->finish, SC_OP_CC_FINISH);
    if (!p->alice || !p->bob
        || sc_e2e_start (p->alice, &p->session.suite, p->session.nonce, p->session.eph)
        || sc_e2e_reply (p->bob, p->session.suite, p->session.nonce, p->session.eph,
                         p->reply.nonce, p->reply.eph, p->reply.sig, p->reply.mac)
        || sc_e2e_finish (p->alice, p->reply.nonce, p->reply.eph, p->reply.sig, p->reply.mac,
                          p->finish.sig, p->finish.mac)
        || sc_e2e_confirm (p->bob, p->finish.sig, p->finish.mac)) {
        fprintf (stderr, "mkcorpus: the E2E exchange failed\n");
        exit (1);
    }
}

/* A MESSAGE body: text (or a close when NULL) sealed by from. */
static void
s_rec_e2e (s_script_t *s, uint8_t sel, sc_e2e_t *from, const char *text)
{
    uint8_t *pt = NULL;
    size_t len = 0;
    /* its counts as from.sent lines so far, nothing acknowledged: the
       broker relays boxes without reading them */
    uint64_t lines = sc_e2e_sent (from) + (text ? 1 : 0);
    if (sc_e2e_plain_encode (text ? SC_E2E_TEXT : SC_E2E_CLOSE, 0, lines,
                             text ? text : "", text ? strlen (text) : 0, &pt, &len))
        exit (1);
    sc_fuzz_record_body (SC_FUZZ_E2E_PLAIN, pt, len);
    sc_msg_t msg;
    sc_msg_init (&msg, SC_OP_MESSAGE);
    msg.data = malloc (len + SC_TAG_LEN);
    msg.data_len = len + SC_TAG_LEN;
    if (!msg.data || sc_e2e_seal (from, pt, len, &msg.counter, msg.data))
        exit (1);
    s_rec_msg (s, sel, &msg);
    sc_msg_reset (&msg);
    free (pt);
}

/* ---- Broker scripts ------------------------------------------------------------ */

#define A(action) SC_FUZZ_B_SEL (0, SC_FUZZ_B_##action)
#define B(action) SC_FUZZ_B_SEL (1, SC_FUZZ_B_##action)
#define N(conn, action) SC_FUZZ_B_SEL (conn, SC_FUZZ_B_##action)

static void
s_broker_scripts (const sc_fuzz_keys_t *keys)
{
    s_script_t *s = calloc (1, sizeof *s);
    if (!s)
        exit (1);
    sc_fuzz_recorder = s_recorder;          /* the E2E plaintexts */

    /* A chat from the request to the end. */
    s_e2e_pair_t p;
    s_e2e_pair (&p, keys);
    s_rec_op (s, A (SEAL), SC_OP_LIST);
    s_rec_named (s, A (SEAL), SC_OP_RTT, "bob", 0);
    s_rec_named (s, B (SEAL), SC_OP_ACCEPT, "alice", 0);
    s_rec_msg (s, A (SEAL), &p.session);
    s_rec_msg (s, B (SEAL), &p.reply);
    s_rec_msg (s, A (SEAL), &p.finish);
    s_rec_e2e (s, A (SEAL), p.alice, "hello bob");
    s_rec_e2e (s, B (SEAL), p.bob, "hi alice \xe2\x98\x83");
    s_rec_e2e (s, A (SEAL), p.alice, "bye");
    s_rec_op (s, B (SEAL), SC_OP_PING);
    s_rec_u16 (s, A (TICK), 1000);
    s_rec_e2e (s, A (SEAL), p.alice, NULL);
    s_rec_op (s, A (SEAL), SC_OP_LEAVE);
    s_rec_op (s, B (SEAL), SC_OP_QUIT);
    s_emit ("broker", s, sc_fuzz_broker);

    /* Requests refused, and what a client may not do. */
    memset (s, 0, sizeof *s);
    s_rec (s, N (2, LOGIN), NULL, 0);
    s_rec_named (s, A (SEAL), SC_OP_RTT, "alice", 0);
    s_rec_named (s, A (SEAL), SC_OP_RTT, "nobody", 0);
    s_rec_named (s, A (SEAL), SC_OP_RTT, "dave", 0);
    s_rec_named (s, A (SEAL), SC_OP_RTT, "bob", 0);
    s_rec_named (s, N (2, SEAL), SC_OP_RTT, "bob", 0);
    s_rec_named (s, N (2, SEAL), SC_OP_ACCEPT, "alice", 0);
    s_rec_named (s, B (SEAL), SC_OP_REFUSE, "carol", 0);
    s_rec_named (s, B (SEAL), SC_OP_REFUSE, "alice", 0);
    s_rec_e2e (s, A (SEAL), p.alice, "nobody hears this");
    s_rec_op (s, A (SEAL), SC_OP_LEAVE);
    s_rec_named (s, A (SEAL), SC_OP_RTT, "bob", 0);
    s_rec_op (s, A (SEAL), SC_OP_LEAVE);
    s_rec_op (s, B (SEAL), SC_OP_PONG);
    s_rec_error (s, B (SEAL), SC_ERR_STATE, "a client may not send this");
    s_rec (s, A (REPLAY), NULL, 0);
    s_rec_op (s, A (TAMPER), SC_OP_PING);
    s_rec (s, A (RAW), (const uint8_t *) "\x94\x01\x01\x07\xc4\x00", 6);
    s_rec (s, B (RAW), (const uint8_t *) "\xc1", 1);
    s_emit ("broker", s, sc_fuzz_broker);

    /* Logins that fail, a second device, timeouts. */
    memset (s, 0, sizeof *s);
    s_rec (s, N (5, LOGIN), NULL, 0);
    s_rec (s, N (6, LOGIN), NULL, 0);
    s_rec (s, N (4, HELLO), NULL, 0);
    s_rec_op (s, N (4, SEAL), SC_OP_LIST);
    s_rec (s, N (7, HELLO), NULL, 0);
    s_rec (s, N (7, RAW), (const uint8_t *) "\x94\x01\x22\x00\xc4\x03\x91\xc4\x00", 9);
    s_rec_named (s, A (SEAL), SC_OP_RTT, "bob", 0);
    s_rec (s, N (3, LOGIN), NULL, 0);
    s_rec_u16 (s, A (TICK), 11000);
    s_rec_op (s, B (SEAL), SC_OP_PING);
    s_rec_u16 (s, A (TICK), 16000);
    s_emit ("broker", s, sc_fuzz_broker);

    /* Clients that are gone, or too slow; the rate limit. */
    memset (s, 0, sizeof *s);
    s_rec_named (s, A (SEAL), SC_OP_RTT, "bob", 0);
    s_rec_named (s, B (SEAL), SC_OP_ACCEPT, "alice", 0);
    s_rec (s, B (FAIL), (const uint8_t *) "\x02", 1);
    s_rec_msg (s, A (SEAL), &p.session);
    s_rec (s, B (FAIL), (const uint8_t *) "\x01", 1);
    s_rec_msg (s, A (SEAL), &p.session);
    s_rec (s, B (FAIL), (const uint8_t *) "\x00", 1);
    for (int i = 0; i < 6; i++)
        s_rec_op (s, A (SEAL), SC_OP_LIST);
    s_rec_u16 (s, A (TICK), 3000);
    s_rec_op (s, A (SEAL), SC_OP_LIST);
    s_emit ("broker", s, sc_fuzz_broker);

    sc_e2e_destroy (&p.alice);
    sc_e2e_destroy (&p.bob);
    free (s);
}

/* ---- Client scripts ---------------------------------------------------------------- */

#define C(action) ((uint8_t) SC_FUZZ_C_##action)

static void
s_client_scripts (void)
{
    s_script_t *s = calloc (1, sizeof *s);
    if (!s)
        exit (1);
    const uint8_t initiator = SC_FUZZ_CHAT_INITIATOR;

    /* alice asks bob; they chat (acknowledging, with a line lost); bob
       closes. The counts are what bob's client would send. */
    s_rec (s, C (CHAT), &initiator, 1);
    s_rec_plain (s, C (PEER_MSG), SC_E2E_TEXT, 0, 1, "hello alice");
    s_rec_text (s, C (COMMAND), "hi bob");
    s_rec_named (s, C (SEALED), SC_OP_NOTIFY, "carol", SC_NOTIFY_MISSED);
    s_rec_lost (s, 0x00, SC_E2E_TEXT, 1, 2, "this one is lost");
    s_rec_plain (s, C (PEER_MSG), SC_E2E_TEXT, 1, 3, "did you get it? \x1b[31m red \xc2\x9b");
    s_rec (s, C (PEER_LOSE), (const uint8_t *) "\x01", 1);
    s_rec_text (s, C (COMMAND), "/fingerprint");
    s_rec_u16 (s, C (TICK), 1000);
    s_rec_plain (s, C (PEER_MSG), SC_E2E_ACK, 2, 3, "");
    s_rec_plain (s, C (PEER_MSG), SC_E2E_CLOSE, 2, 3, "");
    s_rec_named (s, C (SEALED), SC_OP_NOTIFY, "bob", SC_NOTIFY_LEFT);
    s_emit ("client", s, sc_fuzz_client);

    /* bob asks alice; she leaves. */
    memset (s, 0, sizeof *s);
    s_rec (s, C (CHAT), (const uint8_t *) "\x00", 1);
    s_rec_text (s, C (COMMAND), "typed during the key agreement");
    s_rec_plain (s, C (PEER_MSG), SC_E2E_TEXT, 1, 1, "hello");
    s_rec_text (s, C (COMMAND), "//slash");
    s_rec_text (s, C (COMMAND), "/leave");
    s_rec_named (s, C (SEALED), SC_OP_NOTIFY, "bob", SC_NOTIFY_QUIT);
    s_emit ("client", s, sc_fuzz_client);

    /* What the broker answers. */
    memset (s, 0, sizeof *s);
    s_rec_text (s, C (COMMAND), "/list");
    sc_msg_t users;
    sc_msg_init (&users, SC_OP_USERS);
    if (sc_msg_add_name (&users, "bob") || sc_msg_add_name (&users, "carol"))
        exit (1);
    s_rec_msg (s, C (SEALED), &users);
    sc_msg_reset (&users);
    s_rec_text (s, C (COMMAND), "/talk bob");
    s_rec_named (s, C (SEALED), SC_OP_REFUSE, "bob", SC_REFUSE_BUSY);
    s_rec_text (s, C (COMMAND), "/talk carol");
    s_rec_named (s, C (SEALED), SC_OP_USER_NOT_FOUND, "carol", 0);
    s_rec_text (s, C (COMMAND), "/talk dave");
    s_rec_named (s, C (SEALED), SC_OP_REFUSE, "dave", SC_REFUSE_DECLINED);
    s_rec_named (s, C (SEALED), SC_OP_RTT, "dave", 0);
    s_rec_text (s, C (COMMAND), "/refuse");
    s_rec_named (s, C (SEALED), SC_OP_RTT, "carol", 0);
    s_rec_named (s, C (SEALED), SC_OP_NOTIFY, "carol", SC_NOTIFY_CANCELLED);
    s_rec_error (s, C (SEALED), SC_ERR_RATE, "too many requests, slow down");
    s_rec_op (s, C (SEALED), SC_OP_PONG);
    s_rec_text (s, C (COMMAND), "/help");
    s_rec_text (s, C (COMMAND), "/nonsense");
    s_rec_text (s, C (COMMAND), "/quit");
    s_emit ("client", s, sc_fuzz_client);

    /* Things going wrong. */
    memset (s, 0, sizeof *s);
    const uint8_t wrong = SC_FUZZ_CHAT_INITIATOR | SC_FUZZ_CHAT_WRONG_KEY;
    const uint8_t unasked = SC_FUZZ_CHAT_CAROL | SC_FUZZ_CHAT_NO_ASK;
    s_rec (s, C (CHAT), &wrong, 1);
    s_rec (s, C (CHAT), &unasked, 1);
    s_rec (s, C (RAW), (const uint8_t *) "\x94\x01\x0c\x05\xc4\x00", 6);
    s_rec_error (s, C (PLAIN), SC_ERR_AUTH, "plaintext in the session");
    s_rec_u16 (s, C (TICK), 1500);
    s_rec_u16 (s, C (TICK), 2000);
    s_rec_error (s, C (SEALED), SC_ERR_SHUTDOWN, "the broker is stopping");
    s_rec (s, C (RECONNECT), NULL, 0);
    s_rec_u16 (s, C (TICK), 5000);
    s_rec (s, C (RECONNECT), NULL, 0);
    s_rec_error (s, C (SEALED), SC_ERR_REPLACED, "logged in again elsewhere");
    s_rec_text (s, C (COMMAND), "/list");
    s_emit ("client", s, sc_fuzz_client);

    free (s);
}

int
main (int argc, char *argv[])
{
    if (argc != 2) {
        fprintf (stderr, "usage: mkcorpus DIR  (from the repository root)\n");
        return 2;
    }
    s_dir = argv[1];
    const char *targets[] = { "", "/envelope", "/body", "/broker", "/client" };
    for (size_t i = 0; i < sizeof targets / sizeof targets[0]; i++) {
        char path[512];
        snprintf (path, sizeof path, "%s%s", s_dir, targets[i]);
        if (mkdir (path, 0755) && errno != EEXIST) {
            fprintf (stderr, "mkcorpus: cannot make %s\n", path);
            return 1;
        }
    }
    const sc_fuzz_keys_t *keys = sc_fuzz_keys ();
    if (!keys)
        return 1;
    s_broker_scripts (keys);
    s_client_scripts ();
    printf ("mkcorpus: %zu seed files written to %s\n", s_written, s_dir);
    return 0;
}
