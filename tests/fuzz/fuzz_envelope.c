/*  fuzz_envelope: the envelope decoder on any bytes.

    Whatever decodes must encode again, and decode to the same envelope:
    the encoder never refuses what the decoder accepts. sc_wire_peek must
    agree with the decoder.

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at https://mozilla.org/MPL/2.0/.
*/
#include <stdlib.h>
#include <string.h>

#include "sc_fuzz.h"
#include "sc_msg.h"
#include "sc_wire.h"

int
sc_fuzz_envelope (const uint8_t *data, size_t size)
{
    sc_envelope_t env;
    int rc = sc_envelope_decode (data, size, &env);
    uint8_t opcode = 0;
    uint64_t seq = 0;
    int peek = sc_wire_peek (data, size, &opcode, &seq);
    if ((rc == 0) != (peek == 0))
        sc_fuzz_fail ("sc_wire_peek disagrees with sc_envelope_decode");
    if (rc) {
        if (rc > 0 || rc < SC_CODEC_ENOMEM)
            sc_fuzz_fail ("sc_envelope_decode: not a codec error code");
        return 0;
    }
    if (opcode != env.opcode || seq != env.seq)
        sc_fuzz_fail ("sc_wire_peek: another opcode or seq");
    if (env.version != SC_PROTO_VERSION || !sc_opcode_known (env.opcode)
        || env.body_len > size || (env.body_len && (env.body < data
                                                    || env.body + env.body_len > data + size)))
        sc_fuzz_fail ("decoded envelope out of bounds");

    uint8_t *again = NULL;
    size_t again_len = 0;
    if (sc_envelope_encode (env.opcode, env.seq, env.body, env.body_len, &again, &again_len))
        sc_fuzz_fail ("a decoded envelope does not encode");
    sc_envelope_t env2;
    if (sc_envelope_decode (again, again_len, &env2))
        sc_fuzz_fail ("an encoded envelope does not decode");
    if (env2.opcode != env.opcode || env2.seq != env.seq || env2.body_len != env.body_len
        || (env.body_len && memcmp (env2.body, env.body, env.body_len) != 0))
        sc_fuzz_fail ("envelope round trip changed it");
    /* The encoder is canonical: its output is never longer than the input. */
    if (again_len > size)
        sc_fuzz_fail ("re-encoded envelope longer than the input");
    free (again);
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
    return sc_fuzz_envelope (data, size);
}
#endif
