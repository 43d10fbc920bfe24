/*  sc_fuzz: the script reader, the key set and the recorder the fuzz
    targets share.

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at https://mozilla.org/MPL/2.0/.
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sc_fuzz.h"
#include "sc_log.h"
#include "sc_testkeys.h"

const char *const sc_fuzz_user_name[SC_FUZZ_USERS] = { "alice", "bob", "carol", "dave" };

sc_fuzz_recorder_fn *sc_fuzz_recorder = NULL;

/* ---- Scripts ----------------------------------------------------------------- */

bool
sc_fuzz_next (sc_fuzz_reader_t *reader, uint8_t *sel, const uint8_t **payload,
              size_t *len)
{
    if (reader->pos >= reader->size)
        return false;
    const uint8_t *p = reader->data + reader->pos;
    size_t left = reader->size - reader->pos;
    *sel = p[0];
    size_t want = 0;
    if (left >= 3)
        want = (size_t) p[1] << 8 | p[2];
    size_t head = left >= 3 ? 3 : left;
    size_t have = left - head;
    *payload = p + head;
    *len = want < have ? want : have;
    reader->pos += head + *len;
    return true;
}

uint32_t
sc_fuzz_u16 (const uint8_t *payload, size_t len)
{
    uint32_t hi = len > 0 ? payload[0] : 0;
    uint32_t lo = len > 1 ? payload[1] : 0;
    return hi << 8 | lo;
}

/* ---- Key set ------------------------------------------------------------------- */

static sc_fuzz_keys_t s_keys;
static bool s_keys_made;

static void
s_keys_free (void)
{
    sc_key_destroy (&s_keys.broker_key);
    free (s_keys.cert);
    sc_ca_destroy (&s_keys.ca);
    sc_registry_destroy (&s_keys.registry);
    for (int i = 0; i < SC_FUZZ_USERS; i++)
        sc_key_destroy (&s_keys.user[i]);
    memset (&s_keys, 0, sizeof s_keys);
}

static int
s_keys_load (sc_testkeys_t *dir)
{
    int err = 0;
    s_keys.broker_key = sc_key_load_private (sc_testkeys_path (dir, "broker.key"),
                                             NULL, &err);
    s_keys.ca = sc_ca_load (sc_testkeys_path (dir, "ca.pem"), &err);
    s_keys.registry = sc_registry_new (sc_testkeys_path (dir, "users"));
    if (!s_keys.broker_key || !s_keys.ca || !s_keys.registry
        || sc_cert_load_der (sc_testkeys_path (dir, "broker.crt"), &s_keys.cert,
                             &s_keys.cert_len))
        return -1;
    for (int i = 0; i < SC_FUZZ_USERS; i++) {
        s_keys.user[i] = sc_testkeys_user_key (dir, sc_fuzz_user_name[i]);
        if (!s_keys.user[i] || sc_key_public_raw (s_keys.user[i], s_keys.pub[i]))
            return -1;
    }
    return 0;
}

const sc_fuzz_keys_t *
sc_fuzz_keys (void)
{
    if (s_keys_made)
        return &s_keys;
    /* Quiet: the cores log every refusal, and the fuzzer makes many. */
    sc_log_set_level ("error");
    if (access ("keys/secchat-keys", R_OK) != 0) {
        fprintf (stderr, "sc_fuzz: keys/secchat-keys not found: run from the "
                 "repository root\n");
        return NULL;
    }
    sc_testkeys_t *dir = sc_testkeys_new (NULL, "alice", "bob", "carol", "dave", NULL);
    if (!dir) {
        fprintf (stderr, "sc_fuzz: the key script failed\n");
        return NULL;
    }
    int rc = s_keys_load (dir);
    sc_testkeys_destroy (&dir);         /* everything is in memory now */
    if (rc) {
        fprintf (stderr, "sc_fuzz: the key set does not load\n");
        s_keys_free ();
        return NULL;
    }
    s_keys_made = true;
    atexit (s_keys_free);
    return &s_keys;
}

/* ---- Recording ------------------------------------------------------------------ */

void
sc_fuzz_record (sc_fuzz_seen_t what, const uint8_t *data, size_t len)
{
    if (sc_fuzz_recorder)
        sc_fuzz_recorder (what, data, len);
}

void
sc_fuzz_record_body (uint8_t opcode, const uint8_t *body, size_t len)
{
    if (!sc_fuzz_recorder)
        return;
    uint8_t *seed = malloc (len + 1);
    if (!seed)
        return;
    seed[0] = opcode;
    if (len)
        memcpy (seed + 1, body, len);
    sc_fuzz_recorder (SC_FUZZ_SEEN_BODY, seed, len + 1);
    free (seed);
}

void
sc_fuzz_fail (const char *what)
{
    fprintf (stderr, "sc_fuzz: invariant broken: %s\n", what);
    abort ();
}
