/*  Tests of the broker's log lines (sc_log): the journal's form, with a
    syslog priority for journalctl -p, only when JOURNAL_STREAM names the
    very stream the lines go to; otherwise an ISO 8601 time, the name and
    the level; one line per call whatever the text holds; the level
    filter.

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at https://mozilla.org/MPL/2.0/.
*/
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "sc_log.h"

/* A fresh temporary file as a stream, and its contents so far. */
static FILE *
s_tmp (void)
{
    FILE *f = tmpfile ();
    assert_non_null (f);
    return f;
}

static char *
s_read (FILE *f)
{
    fflush (f);
    long len = ftell (f);
    assert_true (len >= 0);
    char *text = calloc (1, (size_t) len + 1);
    assert_non_null (text);
    rewind (f);
    assert_int_equal (fread (text, 1, (size_t) len, f), (size_t) len);
    return text;
}

/* JOURNAL_STREAM as systemd sets it for f's descriptor. */
static void
s_journal_env (FILE *f, long ino_delta)
{
    struct stat st;
    assert_int_equal (fstat (fileno (f), &st), 0);
    char value[64];
    snprintf (value, sizeof value, "%llu:%llu", (unsigned long long) st.st_dev,
              (unsigned long long) st.st_ino + (unsigned long long) ino_delta);
    assert_int_equal (setenv ("JOURNAL_STREAM", value, 1), 0);
}

static int
s_teardown (void **state)
{
    (void) state;
    unsetenv ("JOURNAL_STREAM");
    sc_log_open (NULL, NULL);
    sc_log_set_level ("error");
    return 0;
}

static void
test_journal_priorities (void **state)
{
    (void) state;
    FILE *f = s_tmp ();
    s_journal_env (f, 0);
    assert_true (sc_log_open ("secbroker", f));
    assert_int_equal (sc_log_set_level ("debug"), 0);
    sc_log (SC_LOG_ERROR, "e %d", 1);
    sc_log (SC_LOG_WARNING, "w");
    sc_log (SC_LOG_INFO, "login alice from %s", "192.0.2.7");
    sc_log (SC_LOG_DEBUG, "d");
    char *text = s_read (f);
    assert_string_equal (text, "<3>e 1\n<4>w\n<6>login alice from 192.0.2.7\n<7>d\n");
    free (text);
    fclose (f);
}

/* Another stream (a redirected child's), a wrong inode, or a value that
   is not DEVICE:INODE: the lines carry their own time. */
static void
test_journal_only_for_its_stream (void **state)
{
    (void) state;
    FILE *f = s_tmp ();
    FILE *other = s_tmp ();
    s_journal_env (other, 0);
    assert_false (sc_log_open (NULL, f));
    s_journal_env (f, 1);
    assert_false (sc_log_open (NULL, f));
    static const char *bad[] = { "", "12", "12:", ":34", "x:y", "1:2:3", "1:2 " };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal (setenv ("JOURNAL_STREAM", bad[i], 1), 0);
        assert_false (sc_log_open (NULL, f));
    }
    unsetenv ("JOURNAL_STREAM");
    assert_false (sc_log_open (NULL, f));
    s_journal_env (f, 0);
    assert_true (sc_log_open (NULL, f));
    fclose (f);
    fclose (other);
}

/* 2026-12-03T10:00:00.123+01:00 secbroker W: text */
static void
test_iso_time (void **state)
{
    (void) state;
    FILE *f = s_tmp ();
    assert_false (sc_log_open ("secbroker", f));
    assert_int_equal (sc_log_set_level ("info"), 0);
    sc_log (SC_LOG_WARNING, "queue to %s full", "bob");
    sc_log (SC_LOG_INFO, "two\nlines\r");
    sc_log (SC_LOG_DEBUG, "filtered out");
    char *text = s_read (f);
    regex_t re;
    assert_int_equal (regcomp (&re, "^[0-9]{4}-[01][0-9]-[0-3][0-9]T[0-2][0-9]:[0-5][0-9]:"
                               "[0-6][0-9]\\.[0-9]{3}[+-][0-9]{2}:[0-9]{2} secbroker W: "
                               "queue to bob full\n"
                               "[0-9]{4}-[^ ]+ secbroker I: two lines \n$",
                               REG_EXTENDED), 0);
    if (regexec (&re, text, 0, NULL, 0) != 0)
        fail_msg ("log lines not as expected:\n%s", text);
    regfree (&re);
    free (text);
    fclose (f);
}

/* The time is the local one with its offset: in UTC, +00:00. */
static void
test_iso_time_offset (void **state)
{
    (void) state;
    char *tz = getenv ("TZ") ? strdup (getenv ("TZ")) : NULL;
    assert_int_equal (setenv ("TZ", "UTC", 1), 0);
    tzset ();
    FILE *f = s_tmp ();
    sc_log_open ("x", f);
    sc_log (SC_LOG_ERROR, "boom");
    assert_int_equal (setenv ("TZ", "EST5", 1), 0);
    tzset ();
    sc_log (SC_LOG_ERROR, "boom");
    if (tz)
        setenv ("TZ", tz, 1);
    else
        unsetenv ("TZ");
    tzset ();
    free (tz);
    char *text = s_read (f);
    char *second = strchr (text, '\n');
    assert_non_null (second);
    assert_non_null (strstr (text, "+00:00 x E: boom\n"));
    assert_non_null (strstr (second, "-05:00 x E: boom\n"));
    free (text);
    fclose (f);
}

static void
test_levels (void **state)
{
    (void) state;
    assert_int_equal (sc_log_set_level ("warning"), 0);
    assert_int_equal (sc_log_level (), SC_LOG_WARNING);
    assert_int_equal (sc_log_set_level ("loud"), -1);
    assert_int_equal (sc_log_level (), SC_LOG_WARNING);
    FILE *f = s_tmp ();
    s_journal_env (f, 0);
    sc_log_open (NULL, f);
    sc_log (SC_LOG_INFO, "no");
    sc_log (SC_LOG_WARNING, "yes");
    char *text = s_read (f);
    assert_string_equal (text, "<4>yes\n");
    free (text);
    fclose (f);
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown (test_journal_priorities, s_teardown),
        cmocka_unit_test_teardown (test_journal_only_for_its_stream, s_teardown),
        cmocka_unit_test_teardown (test_iso_time, s_teardown),
        cmocka_unit_test_teardown (test_iso_time_offset, s_teardown),
        cmocka_unit_test_teardown (test_levels, s_teardown),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
