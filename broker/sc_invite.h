/*  sc_invite: enrolment invitations (docs/PROTOCOL.md section 5a). One
    file per invited name beside its key files in the registry's folder,
    DIR/NAME.invite, mode 0600, holding one line:

        secchat-invite 1 HASH EXPIRES

    HASH is the lower-case hex of sc_enrol_code_hash (the code itself is
    never stored) and EXPIRES the end of its validity in seconds since
    the epoch. The broker reads the file at each enrolment, so an
    invitation made while it runs is good at once, without a reload; a
    used invitation is deleted.

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at https://mozilla.org/MPL/2.0/.
*/
#ifndef SC_INVITE_H_INCLUDED
#define SC_INVITE_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sc_handshake.h"

#define SC_INVITE_VALID_MAX (365 * (int64_t) 86400)
#define SC_INVITE_LINE_MAX  128         /* a line and its NUL, at most */
/* A used invitation in the cluster's bucket (docs/PROTOCOL.md 12). */
#define SC_INVITE_USED      "secchat-invite 1 used\n"

typedef enum {
    SC_INVITE_OK = 0,
    SC_INVITE_NONE = -1,        /* no invitation for the name, or another code */
    SC_INVITE_EXPIRED = -2,     /* the right code, past its validity          */
    SC_INVITE_EIO = -3          /* the file cannot be read or written         */
} sc_invite_result_t;

/* "30s", "10m", "24h", "7d": a count and a unit, 1 s to 365 days, into
   *seconds. 0 or -1. */
int sc_invite_parse_valid (const char *text, int64_t *seconds);

/* Invite name into dir until expires: a new code into code, its hash
   into DIR/NAME.invite (written to a temporary file and renamed, so a
   broker never reads half of it; an earlier invitation of name is
   replaced). Refused when DIR/NAME.pub exists. 0, or -1 with why. */
int sc_invite_create (const char *dir, const char *name, int64_t expires,
                      uint8_t code[static SC_HS_CODE_LEN], char *why, size_t size);
/* Whether code is name's invitation, valid at now: compared in
   constant time, and the same work done when there is no invitation. */
int sc_invite_check (const char *dir, const char *name,
                     const uint8_t code[static SC_HS_CODE_LEN], int64_t now);
/* The same of the invitation file at path (one renamed away to claim
   it): a symbolic link or anything but a regular file is none. */
int sc_invite_check_file (const char *path,
                          const uint8_t code[static SC_HS_CODE_LEN], int64_t now);
/* The same line in memory (the cluster's bucket holds it): a new code
   into code, the line for it and expires into line; its length, or -1. */
int sc_invite_line (uint8_t code[static SC_HS_CODE_LEN], int64_t expires,
                    char line[static SC_INVITE_LINE_MAX]);
/* sc_invite_check of a line of len bytes (NULL: there is none). */
int sc_invite_check_line (const char *line, size_t len,
                          const uint8_t code[static SC_HS_CODE_LEN], int64_t now);
/* The expiry of a line: SC_INVITE_OK, or SC_INVITE_NONE when it is no
   invitation (a used one included). */
int sc_invite_parse_line (const char *line, size_t len, int64_t *expires);
/* Delete name's invitation (used, or revoked). 0, or -1 when there was
   none (errno ENOENT) or it cannot be deleted. */
int sc_invite_remove (const char *dir, const char *name);
/* Each invitation of dir, in no order: fn gets the name and the expiry
   (-1 when the file is not a valid invitation). -1 when dir cannot be
   read. */
typedef void (sc_invite_list_fn) (void *arg, const char *name, int64_t expires);
int sc_invite_list (const char *dir, sc_invite_list_fn *fn, void *arg);

#endif
