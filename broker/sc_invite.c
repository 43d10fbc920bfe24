/*  sc_invite: enrolment invitations, one NAME.invite file each.

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at https://mozilla.org/MPL/2.0/.
*/
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sc_invite.h"
#include "sc_msg.h"

#define S_SUFFIX ".invite"
#define S_MAGIC  "secchat-invite 1 "
#define S_HEX_LEN  ((size_t) 2 * SC_HASH_LEN)
/* magic, 64 hex digits, a space, up to 20 digits, a newline */
#define S_LINE_MAX (sizeof S_MAGIC + S_HEX_LEN + 1 + 20 + 1)

int
sc_invite_parse_valid (const char *text, int64_t *seconds)
{
    char *end = NULL;
    errno = 0;
    if (!text || *text < '0' || *text > '9')
        return -1;
    unsigned long long n = strtoull (text, &end, 10);
    if (errno || !end || end == text || n == 0 || strlen (end) != 1)
        return -1;
    int64_t unit = *end == 's' ? 1 : *end == 'm' ? 60 : *end == 'h' ? 3600
                 : *end == 'd' ? 86400 : 0;
    if (!unit || n > (unsigned long long) (SC_INVITE_VALID_MAX / unit))
        return -1;
    *seconds = (int64_t) n * unit;
    return 0;
}

/* A lower-case hex digit's value, or -1. */
static int
s_hex_digit (char c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

static int
s_path (const char *dir, const char *name, const char *suffix, char *path, size_t size)
{
    if (!sc_name_valid (name, strlen (name)))
        return -1;
    int n = snprintf (path, size, "%s/%s%s", dir, name, suffix);
    return n < 0 || (size_t) n >= size ? -1 : 0;
}

/* The hash and expiry of an invitation's line (len bytes, its newline
   included). SC_INVITE_OK, or SC_INVITE_NONE when it is none. */
static int
s_parse (const char *text, size_t len, uint8_t hash[static SC_HASH_LEN], int64_t *expires)
{
    char line[S_LINE_MAX + 1];
    if (len > S_LINE_MAX)
        return SC_INVITE_NONE;
    memcpy (line, text, len);
    line[len] = 0;
    size_t magic = strlen (S_MAGIC);
    if (len < magic + S_HEX_LEN + 3 || memcmp (line, S_MAGIC, magic) != 0)
        return SC_INVITE_NONE;
    const char *p = line + magic;
    for (size_t i = 0; i < SC_HASH_LEN; i++, p += 2) {
        int high = s_hex_digit (p[0]), low = s_hex_digit (p[1]);
        if (high < 0 || low < 0)
            return SC_INVITE_NONE;
        hash[i] = (uint8_t) (high << 4 | low);
    }
    char *end = NULL;
    errno = 0;
    if (*p++ != ' ' || *p < '0' || *p > '9')
        return SC_INVITE_NONE;
    long long when = strtoll (p, &end, 10);
    if (errno || !end || strcmp (end, "\n") != 0)
        return SC_INVITE_NONE;
    *expires = when;
    return SC_INVITE_OK;
}

/* The hash and expiry of DIR/NAME.invite. 0, SC_INVITE_NONE (no file,
   or not an invitation), SC_INVITE_EIO. */
static int
s_read (const char *path, uint8_t hash[static SC_HASH_LEN], int64_t *expires)
{
    /* O_NONBLOCK: a FIFO put in the folder must not stop the broker */
    int fd = open (path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
    if (fd < 0)
        return errno == ENOENT ? SC_INVITE_NONE : SC_INVITE_EIO;
    struct stat st;
    if (fstat (fd, &st) || !S_ISREG (st.st_mode)) {
        close (fd);
        return SC_INVITE_NONE;
    }
    char line[S_LINE_MAX + 1];
    ssize_t got = read (fd, line, sizeof line - 1);
    close (fd);
    if (got < 0)
        return SC_INVITE_EIO;
    return s_parse (line, (size_t) got, hash, expires);
}

int
sc_invite_create (const char *dir, const char *name, int64_t expires,
                  uint8_t code[static SC_HS_CODE_LEN], char *why, size_t size)
{
    char path[4096], pub[4096], tmp[4096 + 16];
    struct stat st;
    if (s_path (dir, name, S_SUFFIX, path, sizeof path)
        || s_path (dir, name, ".pub", pub, sizeof pub)) {
        snprintf (why, size, "invalid name or folder");
        return -1;
    }
    errno = 0;
    if (stat (dir, &st) || !S_ISDIR (st.st_mode)) {
        snprintf (why, size, "cannot use the users folder %s: %s", dir,
                  errno ? strerror (errno) : "not a folder");
        return -1;
    }
    if (access (pub, F_OK) == 0) {
        snprintf (why, size, "%s is already registered (%s exists)", name, pub);
        return -1;
    }
    char line[SC_INVITE_LINE_MAX];
    int n = sc_invite_line (code, expires, line);
    if (n < 0) {
        snprintf (why, size, "cannot make a code");
        return -1;
    }
    snprintf (tmp, sizeof tmp, "%s.XXXXXX", path);
    int fd = mkstemp (tmp);         /* mode 0600 */
    int rc = -1;
    if (fd >= 0) {
        /* the broker's user must read it: root gives it the folder's owner */
        bool ok = (geteuid () != 0 || st.st_uid == 0
                   || fchown (fd, st.st_uid, st.st_gid) == 0)
               && write (fd, line, (size_t) n) == n && fsync (fd) == 0;
        if (close (fd) == 0 && ok && rename (tmp, path) == 0)
            rc = 0;
        else {
            snprintf (why, size, "cannot write %s: %s", path, strerror (errno));
            unlink (tmp);
        }
    }
    else
        snprintf (why, size, "cannot write in %s: %s", dir, strerror (errno));
    if (rc)
        sc_wipe (code, SC_HS_CODE_LEN);
    return rc;
}

int
sc_invite_line (uint8_t code[static SC_HS_CODE_LEN], int64_t expires,
                char line[static SC_INVITE_LINE_MAX])
{
    uint8_t hash[SC_HASH_LEN];
    if (sc_enrol_code_new (code) || sc_enrol_code_hash (code, hash)) {
        sc_wipe (code, SC_HS_CODE_LEN);
        return -1;
    }
    int n = snprintf (line, SC_INVITE_LINE_MAX, "%s", S_MAGIC);
    for (size_t i = 0; i < SC_HASH_LEN; i++)
        n += snprintf (line + n, SC_INVITE_LINE_MAX - (size_t) n, "%02x", hash[i]);
    n += snprintf (line + n, SC_INVITE_LINE_MAX - (size_t) n, " %" PRId64 "\n", expires);
    return n;
}

int
sc_invite_check_line (const char *line, size_t len,
                      const uint8_t code[static SC_HS_CODE_LEN], int64_t now)
{
    uint8_t want[SC_HASH_LEN] = { 0 }, got[SC_HASH_LEN];
    int64_t expires = 0;
    int rc = line ? s_parse (line, len, want, &expires) : SC_INVITE_NONE;
    /* the hash is made and compared whether or not there is a line */
    if (sc_enrol_code_hash (code, got))
        return SC_INVITE_EIO;
    bool same = sc_equal (want, got, SC_HASH_LEN);
    sc_wipe (got, sizeof got);
    if (rc)
        return rc;
    if (!same)
        return SC_INVITE_NONE;
    return now < expires ? SC_INVITE_OK : SC_INVITE_EXPIRED;
}

int
sc_invite_parse_line (const char *line, size_t len, int64_t *expires)
{
    uint8_t hash[SC_HASH_LEN];
    return s_parse (line, len, hash, expires);
}

/* The check of the file at path (NULL: none). */
static int
s_check (const char *path, const uint8_t code[static SC_HS_CODE_LEN], int64_t now)
{
    uint8_t want[SC_HASH_LEN] = { 0 }, got[SC_HASH_LEN];
    int64_t expires = 0;
    int rc = path ? s_read (path, want, &expires) : SC_INVITE_NONE;
    /* the hash is made and compared whether or not there is a file */
    if (sc_enrol_code_hash (code, got))
        return SC_INVITE_EIO;
    bool same = sc_equal (want, got, SC_HASH_LEN);
    sc_wipe (got, sizeof got);
    if (rc)
        return rc;
    if (!same)
        return SC_INVITE_NONE;
    return now < expires ? SC_INVITE_OK : SC_INVITE_EXPIRED;
}

int
sc_invite_check (const char *dir, const char *name,
                 const uint8_t code[static SC_HS_CODE_LEN], int64_t now)
{
    char path[4096];
    return s_check (s_path (dir, name, S_SUFFIX, path, sizeof path) ? NULL : path, code, now);
}

int
sc_invite_check_file (const char *path, const uint8_t code[static SC_HS_CODE_LEN], int64_t now)
{
    return s_check (path, code, now);
}

int
sc_invite_remove (const char *dir, const char *name)
{
    char path[4096];
    if (s_path (dir, name, S_SUFFIX, path, sizeof path)) {
        errno = ENOENT;
        return -1;
    }
    return unlink (path);
}

int
sc_invite_list (const char *dir, sc_invite_list_fn *fn, void *arg)
{
    DIR *d = opendir (dir);
    if (!d)
        return -1;
    struct dirent *entry;
    size_t suffix = strlen (S_SUFFIX);
    while ((entry = readdir (d))) {
        size_t len = strlen (entry->d_name);
        if (len <= suffix || strcmp (entry->d_name + len - suffix, S_SUFFIX) != 0
            || !sc_name_valid (entry->d_name, len - suffix))
            continue;
        char name[SC_NAME_MAX + 1], path[4096];
        memcpy (name, entry->d_name, len - suffix);
        name[len - suffix] = 0;
        uint8_t hash[SC_HASH_LEN];
        int64_t expires = -1;
        if (s_path (dir, name, S_SUFFIX, path, sizeof path) == 0
            && s_read (path, hash, &expires) != SC_INVITE_OK)
            expires = -1;
        fn (arg, name, expires);
    }
    closedir (d);
    return 0;
}
