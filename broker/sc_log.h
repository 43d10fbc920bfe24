/*  sc_log: the broker's log lines, filtered by a level set once at start.
    Callers log events, names and addresses, never message content or
    key material.

    Each line goes to one stream (standard error by default) in one of
    two forms. When JOURNAL_STREAM names that very stream (its
    "DEVICE:INODE" is the stream's, as systemd sets it for a service
    whose standard error is the journal), a line is the message after a
    sd-daemon(3) priority prefix, `<3>` error, `<4>` warning, `<6>` info,
    `<7>` debug, so that `journalctl -p warning` filters, and the journal
    adds the time and the name. Otherwise a line carries its own time, in
    ISO 8601 with milliseconds and the UTC offset, the name and the level:
    `2026-12-03T10:00:00.123+01:00 secbroker I: login alice from 192.0.2.7`
    (levels E, W, I, D).

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at https://mozilla.org/MPL/2.0/.
*/
#ifndef SC_LOG_H_INCLUDED
#define SC_LOG_H_INCLUDED

#include <stdbool.h>
#include <stdio.h>

typedef enum { SC_LOG_ERROR = 0, SC_LOG_WARNING, SC_LOG_INFO, SC_LOG_DEBUG } sc_log_level_t;

/* "error", "warning", "info" or "debug"; -1 for anything else. */
int sc_log_set_level (const char *name);
sc_log_level_t sc_log_level (void);
/* Lines from now on go to stream (NULL: standard error; borrowed),
   named ident (NULL: "secbroker"), in the journal's form when
   JOURNAL_STREAM names stream, else with the time. Returns whether it
   is the journal's form. Not thread-safe: call it before any thread
   logs. Without a call: standard error, with the time. */
bool sc_log_open (const char *ident, FILE *stream);
/* Any thread. A line is cut at 1 KiB. */
void sc_log (sc_log_level_t level, const char *format, ...)
    __attribute__ ((format (printf, 2, 3)));

#endif
