/*  sc_log: log lines through CZMQ's zsys (stderr, or syslog when asked),
    filtered by a level set once at start. Callers log events and names,
    never message content or key material.

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at https://mozilla.org/MPL/2.0/.
*/
#ifndef SC_LOG_H_INCLUDED
#define SC_LOG_H_INCLUDED

typedef enum { SC_LOG_ERROR = 0, SC_LOG_WARNING, SC_LOG_INFO, SC_LOG_DEBUG } sc_log_level_t;

/* "error", "warning", "info" or "debug"; -1 for anything else. */
int sc_log_set_level (const char *name);
sc_log_level_t sc_log_level (void);
void sc_log (sc_log_level_t level, const char *format, ...)
    __attribute__ ((format (printf, 2, 3)));

#endif
