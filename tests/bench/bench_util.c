/*  secbench helpers: time, /proc, files, key PEM, statistics.

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at https://mozilla.org/MPL/2.0/.
*/
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"

int64_t
bn_now_ns (void)
{
    struct timespec ts;
    clock_gettime (CLOCK_MONOTONIC, &ts);
    return (int64_t) ts.tv_sec * 1000000000 + ts.tv_nsec;
}

void
bn_sleep_ns (int64_t ns)
{
    if (ns <= 0)
        return;
    struct timespec ts = { (time_t) (ns / 1000000000), (long) (ns % 1000000000) };
    while (nanosleep (&ts, &ts) && errno == EINTR)
        ;
}

void
bn_sleep_until_ns (int64_t when)
{
    struct timespec ts = { (time_t) (when / 1000000000), (long) (when % 1000000000) };
    while (clock_nanosleep (CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
        ;
}

long
bn_rss_kib (pid_t pid)
{
    char path[64], line[256];
    snprintf (path, sizeof path, "/proc/%d/status", (int) pid);
    FILE *file = fopen (path, "r");
    if (!file)
        return -1;
    long kib = -1;
    while (fgets (line, sizeof line, file))
        if (strncmp (line, "VmRSS:", 6) == 0) {
            kib = strtol (line + 6, NULL, 10);
            break;
        }
    fclose (file);
    return kib;
}

double
bn_cpu_s (pid_t pid, bool main_thread)
{
    char path[96], buf[1024];
    if (main_thread)
        snprintf (path, sizeof path, "/proc/%d/task/%d/stat", (int) pid, (int) pid);
    else
        snprintf (path, sizeof path, "/proc/%d/stat", (int) pid);
    ssize_t n = bn_read_file (path, buf, sizeof buf - 1);
    if (n <= 0)
        return -1;
    buf[n] = 0;
    /* after "(comm)": state is field 3; utime and stime are 14 and 15 */
    const char *p = strrchr (buf, ')');
    unsigned long long utime = 0, stime = 0;
    if (!p || sscanf (p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu",
                      &utime, &stime) != 2)
        return -1;
    return (double) (utime + stime) / (double) sysconf (_SC_CLK_TCK);
}

int
bn_threads_cpu (pid_t pid, bn_threads_cpu_t *cpu)
{
    char path[96], buf[256];
    memset (cpu, 0, sizeof *cpu);
    snprintf (path, sizeof path, "/proc/%d/task", (int) pid);
    DIR *dir = opendir (path);
    if (!dir)
        return -1;
    struct dirent *e;
    int threads = 0;
    while ((e = readdir (dir))) {
        long tid = strtol (e->d_name, NULL, 10);
        if (tid <= 0)
            continue;
        snprintf (path, sizeof path, "/proc/%d/task/%ld/schedstat", (int) pid, tid);
        ssize_t n = bn_read_file (path, buf, sizeof buf - 1);
        unsigned long long ns = 0;
        if (n <= 0)
            continue;                   /* the thread has just ended */
        buf[n] = 0;
        if (sscanf (buf, "%llu", &ns) != 1)
            continue;
        threads++;
        snprintf (path, sizeof path, "/proc/%d/task/%ld/comm", (int) pid, tid);
        n = bn_read_file (path, buf, sizeof buf - 1);
        buf[n > 0 ? n : 0] = 0;
        double s = (double) ns / 1e9;
        if (tid == (long) pid)
            cpu->main += s;
        else
        if (strncmp (buf, "ZMQbg/", 6) == 0)
            cpu->zmq += s;
        else
            cpu->other += s;
    }
    closedir (dir);
    return threads > 0 ? 0 : -1;    /* no schedstat read: no figure */
}

double
bn_idle_s (void)
{
    char buf[512];
    ssize_t n = bn_read_file ("/proc/stat", buf, sizeof buf - 1);
    if (n <= 0)
        return -1;
    buf[n] = 0;
    unsigned long long user, nice, sys, idle;
    if (sscanf (buf, "cpu %llu %llu %llu %llu", &user, &nice, &sys, &idle) != 4)
        return -1;
    return (double) idle / (double) sysconf (_SC_CLK_TCK);
}

long
bn_raise_nofile (void)
{
    struct rlimit rl;
    if (getrlimit (RLIMIT_NOFILE, &rl))
        return -1;
    if (rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        if (setrlimit (RLIMIT_NOFILE, &rl))
            return -1;
    }
    return (long) rl.rlim_cur;
}

int
bn_write_file (const char *path, const void *data, size_t len, int mode)
{
    int fd = open (path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
    if (fd < 0)
        return -1;
    const uint8_t *p = data;
    size_t done = 0;
    while (done < len) {
        ssize_t n = write (fd, p + done, len - done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            close (fd);
            return -1;
        }
        done += (size_t) n;
    }
    return close (fd) ? -1 : 0;
}

ssize_t
bn_read_file (const char *path, void *buf, size_t cap)
{
    int fd = open (path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    size_t len = 0;
    while (len < cap) {
        ssize_t n = read (fd, (uint8_t *) buf + len, cap - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        len += (size_t) n;
    }
    close (fd);
    return (ssize_t) len;
}

/* SubjectPublicKeyInfo of an Ed25519 key: this fixed DER prefix (SEQUENCE,
   AlgorithmIdentifier id-Ed25519, BIT STRING of 33 bytes), then the key. */
void
bn_spki_pem (const uint8_t pub[static SC_PUB_LEN], char pem[static 128])
{
    static const uint8_t prefix[12] = {
        0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00
    };
    static const char b64[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    uint8_t der[44];
    memcpy (der, prefix, sizeof prefix);
    memcpy (der + sizeof prefix, pub, SC_PUB_LEN);
    char text[61];
    size_t t = 0;
    for (size_t i = 0; i + 2 < sizeof der; i += 3) {      /* 44 = 14 * 3 + 2 */
        uint32_t v = (uint32_t) der[i] << 16 | (uint32_t) der[i + 1] << 8 | der[i + 2];
        text[t++] = b64[v >> 18 & 63];
        text[t++] = b64[v >> 12 & 63];
        text[t++] = b64[v >> 6 & 63];
        text[t++] = b64[v & 63];
    }
    uint32_t v = (uint32_t) der[42] << 16 | (uint32_t) der[43] << 8;
    text[t++] = b64[v >> 18 & 63];
    text[t++] = b64[v >> 12 & 63];
    text[t++] = b64[v >> 6 & 63];
    text[t++] = '=';
    text[t] = 0;
    snprintf (pem, 128, "-----BEGIN PUBLIC KEY-----\n%s\n-----END PUBLIC KEY-----\n", text);
}

double
bn_kv (const char *line, const char *key, double dflt)
{
    size_t klen = strlen (key);
    for (const char *p = line; p && *p; p = strchr (p, ' ')) {
        while (*p == ' ')
            p++;
        if (strncmp (p, key, klen) == 0 && p[klen] == '=')
            return strtod (p + klen + 1, NULL);
    }
    return dflt;
}

static int
s_cmp_double (const void *a, const void *b)
{
    double x = *(const double *) a, y = *(const double *) b;
    return x < y ? -1 : x > y;
}

double
bn_percentile (double *v, size_t n, double p)
{
    if (n == 0)
        return 0;
    qsort (v, n, sizeof *v, s_cmp_double);
    size_t i = (size_t) (p / 100.0 * (double) (n - 1) + 0.5);
    return v[i < n ? i : n - 1];
}

double
bn_median (double *v, size_t n)
{
    if (n == 0)
        return 0;
    qsort (v, n, sizeof *v, s_cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

int
bn_ident_load (bn_ident_t *self, const char *dir)
{
    memset (self, 0, sizeof *self);
    char path[4096];
    uint8_t seed[SC_KEY_LEN];
    snprintf (path, sizeof path, "%s/user.seed", dir);
    if (bn_read_file (path, seed, sizeof seed) != (ssize_t) sizeof seed) {
        fprintf (stderr, "secbench: cannot read %s\n", path);
        return -1;
    }
    self->user_key = sc_key_from_seed (seed);
    sc_wipe (seed, sizeof seed);
    if (!self->user_key || sc_key_public_raw (self->user_key, self->user_pub))
        return -1;
    int err = 0;
    snprintf (path, sizeof path, "%s/ca.pem", dir);
    sc_ca_t *ca = sc_ca_load (path, &err);
    snprintf (path, sizeof path, "%s/broker.crt", dir);
    if (!ca || sc_cert_load_der (path, &self->cert, &self->cert_len)) {
        fprintf (stderr, "secbench: cannot load the CA or the broker certificate\n");
        sc_ca_destroy (&ca);
        return -1;
    }
    self->broker_key = sc_cert_verify (ca, self->cert, self->cert_len, BN_BROKER_NAME, &err);
    sc_ca_destroy (&ca);
    if (!self->broker_key) {
        fprintf (stderr, "secbench: broker certificate rejected: %s\n", sc_key_strerror (err));
        return -1;
    }
    return 0;
}

void
bn_ident_destroy (bn_ident_t *self)
{
    sc_key_destroy (&self->user_key);
    sc_key_destroy (&self->broker_key);
    free (self->cert);
    self->cert = NULL;
}
