/*  fuzz_body: the message body decoder and the E2E plaintext decoder.

    First byte: the opcode (any value, known or not); the rest: the body.
    First byte SC_FUZZ_E2E_PLAIN: the rest is an E2E plaintext instead.
    Whatever decodes must encode again and decode to the same message.

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at https://mozilla.org/MPL/2.0/.
*/
#include <stdlib.h>
#include <string.h>

#include "sc_fuzz.h"
#include "sc_msg.h"

static bool
s_same (const sc_msg_t *a, const sc_msg_t *b)
{
    if (a->opcode != b->opcode || a->suite != b->suite || a->code != b->code
        || a->counter != b->counter || a->flag != b->flag
        || memcmp (a->name, b->name, sizeof a->name) != 0
        || memcmp (a->nonce, b->nonce, sizeof a->nonce) != 0
        || memcmp (a->eph, b->eph, sizeof a->eph) != 0
        || memcmp (a->key, b->key, sizeof a->key) != 0
        || memcmp (a->sig, b->sig, sizeof a->sig) != 0
        || memcmp (a->mac, b->mac, sizeof a->mac) != 0
        || a->data_len != b->data_len || a->names_count != b->names_count
        || !a->text != !b->text)
        return false;
    if (a->data_len && memcmp (a->data, b->data, a->data_len) != 0)
        return false;
    if (a->text && strcmp (a->text, b->text) != 0)
        return false;
    for (size_t i = 0; i < a->names_count; i++)
        if (strcmp (a->names[i], b->names[i]) != 0)
            return false;
    return true;
}

/* Every field a decoded message holds must pass the checks of its type. */
static void
s_check_decoded (const sc_msg_t *msg)
{
    if (memchr (msg->name, 0, sizeof msg->name) == NULL)
        sc_fuzz_fail ("decoded name not terminated");
    size_t len = strlen (msg->name);
    if (len && !sc_name_valid (msg->name, len))
        sc_fuzz_fail ("decoded an invalid name");
    for (size_t i = 0; i < msg->names_count; i++)
        if (!sc_name_valid (msg->names[i], strnlen (msg->names[i], SC_NAME_MAX + 1)))
            sc_fuzz_fail ("decoded an invalid name in a list");
    if (msg->names_count > SC_USERS_MAX)
        sc_fuzz_fail ("decoded too many names");
    if (msg->text && !sc_utf8_valid (msg->text, strlen (msg->text)))
        sc_fuzz_fail ("decoded text is not UTF-8");
    if (msg->data_len > SC_BOX_MAX || !msg->data != !msg->data_len)
        sc_fuzz_fail ("decoded data too long, or lost");
}

static void
s_body (uint8_t opcode, const uint8_t *body, size_t len)
{
    sc_msg_t msg;
    int rc = sc_msg_decode (opcode, body, len, &msg);
    if (sc_msg_check (opcode, body, len) != rc)
        sc_fuzz_fail ("sc_msg_check and sc_msg_decode disagree");
    if (rc) {
        if (rc > 0 || rc < SC_CODEC_ENOMEM)
            sc_fuzz_fail ("sc_msg_decode: not a codec error code");
        if (msg.data || msg.text || msg.names || msg.opcode != opcode)
            sc_fuzz_fail ("a failed decode left something behind");
        sc_msg_reset (&msg);
        return;
    }
    if (!sc_opcode_known (opcode))
        sc_fuzz_fail ("decoded a body for an unknown opcode");
    s_check_decoded (&msg);
    uint8_t *again = NULL;
    size_t again_len = 0;
    if (sc_msg_encode (&msg, &again, &again_len))
        sc_fuzz_fail ("a decoded body does not encode");
    sc_msg_t msg2;
    if (sc_msg_decode (opcode, again, again_len, &msg2))
        sc_fuzz_fail ("an encoded body does not decode");
    if (!s_same (&msg, &msg2))
        sc_fuzz_fail ("body round trip changed it");
    if (again_len > len)
        sc_fuzz_fail ("re-encoded body longer than the input");
    free (again);
    sc_msg_reset (&msg);
    sc_msg_reset (&msg2);
}

static void
s_e2e_plain (const uint8_t *buf, size_t len)
{
    sc_e2e_plain_t p;
    int rc = sc_e2e_plain_decode (buf, len, &p);
    if (rc) {
        if (p.text || p.text_len || rc > 0 || rc < SC_CODEC_ENOMEM)
            sc_fuzz_fail ("a failed E2E decode left something behind");
        return;
    }
    if (!p.text || p.text[p.text_len] != 0 || strlen (p.text) != p.text_len
        || !sc_utf8_valid (p.text, p.text_len)
        || p.ack >= SC_E2E_COUNT_LIMIT || p.lines >= SC_E2E_COUNT_LIMIT
        || len % SC_E2E_BUCKET != 0
        || (p.kind == SC_E2E_TEXT ? p.text_len < 1 || p.text_len > SC_TEXT_MAX
                                  : p.kind > SC_E2E_ACK || p.text_len != 0))
        sc_fuzz_fail ("decoded an invalid E2E plaintext");
    /* what decodes encodes again, padded, and decodes to the same */
    uint8_t *again = NULL;
    size_t again_len = 0;
    if (sc_e2e_plain_encode (p.kind, p.ack, p.lines, p.text, p.text_len, &again, &again_len))
        sc_fuzz_fail ("a decoded E2E plaintext does not encode");
    sc_e2e_plain_t q;
    if (sc_e2e_plain_decode (again, again_len, &q))
        sc_fuzz_fail ("an encoded E2E plaintext does not decode");
    if (q.kind != p.kind || q.ack != p.ack || q.lines != p.lines || q.text_len != p.text_len
        || memcmp (p.text, q.text, p.text_len) != 0 || again_len % SC_E2E_BUCKET != 0)
        sc_fuzz_fail ("E2E plaintext round trip changed it");
    free (again);
    free (p.text);
    free (q.text);
}

int
sc_fuzz_body (const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    if (data[0] == SC_FUZZ_E2E_PLAIN)
        s_e2e_plain (data + 1, size - 1);
    else
        s_body (data[0], data + 1, size - 1);
    return 0;
}

#ifndef SC_FUZZ_NO_MAIN
int
LLVMFuzzerInitialize (int *argc, char ***argv)
{
    (void) argc;
    (void) argv;
    return 0;
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
    return sc_fuzz_body (data, size);
}
#endif
