/*  sc_log: level-filtered log lines, for the journal or with the time.

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at https://mozilla.org/MPL/2.0/.
*/
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "sc_log.h"

static sc_log_level_t s_level = SC_LOG_INFO;
static FILE *s_stream;              /* NULL: stderr                       */
static const char *s_ident = "secbroker";
static bool s_journal;

int
sc_log_set_level (const char *name)
{
    static const char *names[] = { "error", "warning", "info", "debug" };
    for (int i = 0; i < 4; i++)
        if (strcmp (name, names[i]) == 0) {
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

/* JOURNAL_STREAM is "DEVICE:INODE" of the journal's socket, set for
   the service's standard output and error when those are the journal:
   it holds only for a stream whose descriptor is that very socket (a
   child whose standard error was redirected inherits the variable). */
static bool
s_is_journal (FILE *stream)
{
    const char *env = getenv ("JOURNAL_STREAM");
    if (!env || !*env)
        return false;
    char *end = NULL;
    uintmax_t dev = strtoumax (env, &end, 10);
    if (end == env || *end != ':')
        return false;
    const char *ino_at = end + 1;
    uintmax_t ino = strtoumax (ino_at, &end, 10);
    if (end == ino_at || *end)
        return false;
    int fd = fileno (stream);
    struct stat st;
    return fd >= 0 && fstat (fd, &st) == 0
        && (uintmax_t) st.st_dev == dev && (uintmax_t) st.st_ino == ino;
}

bool
sc_log_open (const char *ident, FILE *stream)
{
    tzset ();                   /* localtime_r may not: the zone, once */
    s_ident = ident ? ident : "secbroker";
    s_stream = stream;
    s_journal = s_is_journal (stream ? stream : stderr);
    return s_journal;
}

/* "2026-12-03T10:00:00.123+01:00" into buf (at least 40 bytes). */
static void
s_timestamp (char *buf, size_t size)
{
    struct timespec now;
    struct tm tm;
    clock_gettime (CLOCK_REALTIME, &now);
    time_t t = now.tv_sec;
    if (!localtime_r (&t, &tm) || strftime (buf, size, "%Y-%m-%dT%H:%M:%S", &tm) == 0) {
        snprintf (buf, size, "@%lld", (long long) t);
        return;
    }
    long off = tm.tm_gmtoff / 60;
    char sign = off < 0 ? '-' : '+';
    if (off < 0)
        off = -off;
    size_t used = strlen (buf);
    snprintf (buf + used, size - used, ".%03ld%c%02ld:%02ld", now.tv_nsec / 1000000L,
              sign, off / 60, off % 60);
}

void
sc_log (sc_log_level_t level, const char *format, ...)
{
    if (level > s_level)
        return;
    static const char priority[] = { '3', '4', '6', '7' };   /* syslog(3)'s */
    static const char letter[] = { 'E', 'W', 'I', 'D' };
    char text[1024];
    va_list args;
    va_start (args, format);
    vsnprintf (text, sizeof text, format, args);
    va_end (args);
    /* a line is one line, whatever a name or an error text held */
    for (char *c = text; *c; c++)
        if (*c == '\n' || *c == '\r')
            *c = ' ';
    FILE *out = s_stream ? s_stream : stderr;
    if (s_journal)
        fprintf (out, "<%c>%s\n", priority[level], text);
    else {
        char when[64];
        s_timestamp (when, sizeof when);
        fprintf (out, "%s %s %c: %s\n", when, s_ident, letter[level], text);
    }
    fflush (out);
}
