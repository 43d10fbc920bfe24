/*  sc_log: level-filtered logging over zsys.

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at https://mozilla.org/MPL/2.0/.
*/
#include <czmq.h>
#include <stdarg.h>

#include "sc_log.h"

static sc_log_level_t s_level = SC_LOG_INFO;

int
sc_log_set_level (const char *name)
{
    static const char *names[] = { "error", "warning", "info", "debug" };
    for (int i = 0; i < 4; i++)
        if (streq (name, names[i])) {
            s_level = (sc_log_level_t) i;
            return 0;
        }
    return -1;
}

sc_log_level_t
sc_log_level (void)
{
    return s_level;
}

void
sc_log (sc_log_level_t level, const char *format, ...)
{
    if (level > s_level)
        return;
    char line[512];
    va_list args;
    va_start (args, format);
    vsnprintf (line, sizeof line, format, args);
    va_end (args);
    switch (level) {
        case SC_LOG_ERROR:   zsys_error ("%s", line); break;
        case SC_LOG_WARNING: zsys_warning ("%s", line); break;
        case SC_LOG_INFO:    zsys_info ("%s", line); break;
        case SC_LOG_DEBUG:   zsys_debug ("%s", line); break;
    }
}
