/*  test_sc_endpoint: what --endpoint accepts, and the probe that tells a
    refused port or a name that does not resolve at once, against real
    sockets on loopback (IPv4 and IPv6). A slow resolver is played by
    getaddrinfo below, which takes the place of the C library's for the
    name "slow.test": the probe must not wait for it.

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at https://mozilla.org/MPL/2.0/.
*/
#define _GNU_SOURCE                 /* RTLD_NEXT */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dlfcn.h>
#include <netdb.h>
#include <pthread.h>
#include <time.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "sc_endpoint.h"
#include "sc_testnet.h"

/* ---- A slow resolver ------------------------------------------------------ */

static pthread_mutex_t s_slow_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t s_slow_cond = PTHREAD_COND_INITIALIZER;
static bool s_slow_released;        /* answer now                          */
static int s_slow_answered;         /* lookups of slow.test that returned  */

/* slow.test resolves to 127.0.0.1 once the test releases it (or after
   2 s); any other name, and a lookup of addresses only
   (AI_NUMERICHOST), as the C library says. */
int
getaddrinfo (const char *node, const char *service, const struct addrinfo *hints,
             struct addrinfo **res)
{
    typedef int (*real_t) (const char *, const char *, const struct addrinfo *,
                           struct addrinfo **);
    void *sym = dlsym (RTLD_NEXT, "getaddrinfo");
    real_t real = NULL;
    memcpy (&real, &sym, sizeof real);      /* POSIX: a function's address */
    if (!real)
        return EAI_SYSTEM;
    if (!node || strcmp (node, "slow.test") != 0
        || (hints && (hints->ai_flags & AI_NUMERICHOST)))
        return real (node, service, hints, res);
    struct timespec until;
    clock_gettime (CLOCK_REALTIME, &until);
    until.tv_sec += 2;
    pthread_mutex_lock (&s_slow_lock);
    while (!s_slow_released)
        if (pthread_cond_timedwait (&s_slow_cond, &s_slow_lock, &until))
            break;
    pthread_mutex_unlock (&s_slow_lock);
    struct addrinfo numeric = *hints;
    numeric.ai_flags |= AI_NUMERICHOST;
    int rc = real ("127.0.0.1", service, &numeric, res);
    pthread_mutex_lock (&s_slow_lock);
    s_slow_answered++;
    pthread_mutex_unlock (&s_slow_lock);
    return rc;
}

static void
s_slow_reset (void)
{
    pthread_mutex_lock (&s_slow_lock);
    s_slow_released = false;
    s_slow_answered = 0;
    pthread_mutex_unlock (&s_slow_lock);
}

static void
s_slow_release (void)
{
    pthread_mutex_lock (&s_slow_lock);
    s_slow_released = true;
    pthread_cond_broadcast (&s_slow_cond);
    pthread_mutex_unlock (&s_slow_lock);
}

static int
s_slow_answered_now (void)
{
    pthread_mutex_lock (&s_slow_lock);
    int n = s_slow_answered;
    pthread_mutex_unlock (&s_slow_lock);
    return n;
}

static int64_t
s_ms (void)
{
    struct timespec ts;
    clock_gettime (CLOCK_MONOTONIC, &ts);
    return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static sc_endpoint_t *
s_new (const char *text)
{
    char why[256] = "";
    sc_endpoint_t *ep = sc_endpoint_new (text, strlen (text), why, sizeof why);
    if (!ep)
        fail_msg ("'%s' refused: %s", text, why);
    return ep;
}

/* The reason text is refused with. */
static const char *
s_refused (const char *text)
{
    static char why[256];
    why[0] = 0;
    sc_endpoint_t *ep = sc_endpoint_new (text, strlen (text), why, sizeof why);
    if (ep)
        fail_msg ("'%s' accepted as %s", text, sc_endpoint_name (ep));
    assert_true (why[0] != 0);
    return why;
}

static void
test_forms (void **state)
{
    (void) state;
    static const char *const forms[][2] = {
        { "tcp://chat.example.org:4242", "tcp://chat.example.org:4242" },
        { "chat.example.org:4242", "tcp://chat.example.org:4242" },
        { "127.0.0.1:1", "tcp://127.0.0.1:1" },
        { "localhost:65535", "tcp://localhost:65535" },
        { "[::1]:4242", "tcp://[::1]:4242" },
        { "tcp://[::1]:4242", "tcp://[::1]:4242" },
        { "[fe80::1%eth0]:4242", "tcp://[fe80::1%eth0]:4242" },
        { "my_host-2:80", "tcp://my_host-2:80" },
    };
    for (size_t i = 0; i < sizeof forms / sizeof forms[0]; i++) {
        sc_endpoint_t *ep = s_new (forms[i][0]);
        assert_string_equal (sc_endpoint_name (ep), forms[i][1]);
        assert_int_equal (sc_endpoint_fd (ep), -1);
        sc_endpoint_destroy (&ep);
        assert_null (ep);
        sc_endpoint_destroy (&ep);
    }
    /* only len bytes are read */
    char why[64];
    sc_endpoint_t *ep = sc_endpoint_new ("host:42,other:43", 7, why, sizeof why);
    assert_non_null (ep);
    assert_string_equal (sc_endpoint_name (ep), "tcp://host:42");
    sc_endpoint_destroy (&ep);
}

static void
test_refused_forms (void **state)
{
    (void) state;
    assert_string_equal (s_refused (""), "empty endpoint");
    assert_string_equal (s_refused ("host"), "'host': no port: write HOST:PORT");
    assert_string_equal (s_refused ("tcp://host"), "'tcp://host': no port: write HOST:PORT");
    assert_string_equal (s_refused ("host:"), "'host:': '' is not a port (1 to 65535)");
    assert_string_equal (s_refused ("host:0"), "'host:0': '0' is not a port (1 to 65535)");
    assert_string_equal (s_refused ("host:65536"),
                         "'host:65536': '65536' is not a port (1 to 65535)");
    assert_string_equal (s_refused ("host:42x"), "'host:42x': '42x' is not a port (1 to 65535)");
    assert_string_equal (s_refused ("host:-1"), "'host:-1': '-1' is not a port (1 to 65535)");
    assert_string_equal (s_refused ("::1:4242"),
                         "'::1:4242': write an IPv6 address in brackets: [::1]:4242");
    assert_string_equal (s_refused ("[::1]"),
                         "'[::1]': an IPv6 address is written [ADDRESS]:PORT");
    assert_string_equal (s_refused ("[::1]4242"),
                         "'[::1]4242': an IPv6 address is written [ADDRESS]:PORT");
    assert_string_equal (s_refused ("[chat.example]:1"),
                         "'[chat.example]:1': 'chat.example' is not an IPv6 address");
    assert_string_equal (s_refused ("[]:1"), "'[]:1': '' is not an IPv6 address");
    assert_string_equal (s_refused (":4242"), "':4242': '' is not a host name or address");
    assert_string_equal (s_refused ("tcp://*:4242"),
                         "'tcp://*:4242': '*' is not a host name or address");
    assert_string_equal (s_refused ("ipc:///tmp/broker"),
                         "'ipc:///tmp/broker': only tcp:// endpoints are supported");
    assert_string_equal (s_refused ("host :1"), "a space or control character in 'host :1'");
    assert_string_equal (s_refused ("host:1\n"), "a space or control character in 'host:1\n'");
    char longer[SC_ENDPOINT_TEXT_MAX + 8];
    memset (longer, 'a', sizeof longer);
    memcpy (longer + SC_ENDPOINT_TEXT_MAX - 3, ":42", 4);
    sc_endpoint_t *ep = s_new (longer);                 /* just fits */
    sc_endpoint_destroy (&ep);
    memset (longer, 'a', sizeof longer);
    memcpy (longer + SC_ENDPOINT_TEXT_MAX - 2, ":42", 4);
    assert_string_equal (s_refused (longer), "an endpoint is at most 300 characters");
}

/* ---- Probes ------------------------------------------------------------- */

/* A listening TCP socket on loopback (v6: ::1): its fd; *port set. */
static int
s_listener (bool v6, int *port)
{
    *port = 0;
    int fd = sc_testnet_socket (v6, port, true);
    assert_true (fd >= 0);
    return fd;
}

/* A port nobody listens on (free a moment ago). */
static int
s_free_port (void)
{
    int port = 0;
    int fd = s_listener (false, &port);
    close (fd);
    return port;
}

static int s_probe_on (sc_endpoint_t *ep);

/* Probe ep to the end, as secchat's loop does; within 5 s. */
static int
s_probe (sc_endpoint_t *ep)
{
    int rc = sc_endpoint_probe (ep);
    return rc ? rc : s_probe_on (ep);
}

/* A probe in progress, to its end. */
static int
s_probe_on (sc_endpoint_t *ep)
{
    int rc = 0;
    for (int i = 0; rc == 0 && i < 50; i++) {
        struct pollfd pfd = { .fd = sc_endpoint_fd (ep), .events = POLLIN | POLLOUT };
        assert_true (pfd.fd >= 0);
        assert_true (poll (&pfd, 1, 100) >= 0);
        rc = sc_endpoint_step (ep);
    }
    assert_int_equal (sc_endpoint_fd (ep), -1);
    return rc;
}

static void
test_probe_accepted (void **state)
{
    (void) state;
    int port = 0;
    int listener = s_listener (false, &port);
    char text[64], address[64];
    snprintf (address, sizeof address, "tcp://127.0.0.1:%d", port);
    snprintf (text, sizeof text, "127.0.0.1:%d", port);
    sc_endpoint_t *ep = s_new (text);
    assert_int_equal (s_probe (ep), 1);
    assert_string_equal (sc_endpoint_address (ep), address);
    assert_false (sc_endpoint_ipv6 (ep));
    assert_string_equal (sc_endpoint_error (ep), "");
    sc_endpoint_destroy (&ep);
    /* a name is given to ZeroMQ as the address that answered */
    snprintf (text, sizeof text, "localhost:%d", port);
    ep = s_new (text);
    assert_int_equal (s_probe (ep), 1);
    assert_string_equal (sc_endpoint_address (ep), address);
    sc_endpoint_destroy (&ep);
    close (listener);

    listener = s_listener (true, &port);
    snprintf (text, sizeof text, "[::1]:%d", port);
    snprintf (address, sizeof address, "tcp://[::1]:%d", port);
    ep = s_new (text);
    assert_int_equal (s_probe (ep), 1);
    assert_string_equal (sc_endpoint_address (ep), address);
    assert_true (sc_endpoint_ipv6 (ep));
    /* the same endpoint probed again, after its port closed */
    close (listener);
    assert_int_equal (s_probe (ep), -1);
    snprintf (text, sizeof text, "connection refused (::1 port %d)", port);
    assert_string_equal (sc_endpoint_error (ep), text);
    assert_string_equal (sc_endpoint_address (ep), "");
    sc_endpoint_destroy (&ep);
}

static void
test_probe_refused (void **state)
{
    (void) state;
    int port = s_free_port ();
    char text[64], error[128];
    snprintf (text, sizeof text, "tcp://127.0.0.1:%d", port);
    snprintf (error, sizeof error, "connection refused (127.0.0.1 port %d)", port);
    sc_endpoint_t *ep = s_new (text);
    assert_int_equal (s_probe (ep), -1);
    assert_string_equal (sc_endpoint_error (ep), error);
    sc_endpoint_destroy (&ep);
}

static void
test_probe_unresolvable (void **state)
{
    (void) state;
    /* .invalid never resolves (RFC 6761) */
    sc_endpoint_t *ep = s_new ("no-such-host.invalid:4242");
    assert_int_equal (s_probe (ep), -1);
    const char *error = sc_endpoint_error (ep);
    const char *want = "no-such-host.invalid does not resolve (";
    if (strncmp (error, want, strlen (want)) != 0)
        fail_msg ("error: %s", error);
    assert_int_equal (sc_endpoint_step (ep), -1);
    sc_endpoint_destroy (&ep);
}

/* A name is resolved in a thread: the probe returns at once and polls
   as in progress while the resolver takes its time. */
static void
test_probe_slow_resolver (void **state)
{
    (void) state;
    s_slow_reset ();
    int port = 0;
    int listener = s_listener (false, &port);
    char text[64], address[64];
    snprintf (text, sizeof text, "slow.test:%d", port);
    snprintf (address, sizeof address, "tcp://127.0.0.1:%d", port);
    sc_endpoint_t *ep = s_new (text);
    int64_t start = s_ms ();
    assert_int_equal (sc_endpoint_probe (ep), 0);
    assert_true (s_ms () - start < 500);
    int fd = sc_endpoint_fd (ep);
    assert_true (fd >= 0);
    struct pollfd pfd = { .fd = fd, .events = POLLIN | POLLOUT };
    assert_int_equal (poll (&pfd, 1, 100), 0);          /* nothing yet */
    assert_int_equal (sc_endpoint_step (ep), 0);
    s_slow_release ();
    assert_int_equal (s_probe_on (ep), 1);
    assert_string_equal (sc_endpoint_address (ep), address);
    sc_endpoint_destroy (&ep);
    close (listener);
}

/* A lookup given up on (the endpoint destroyed, or probed again) is
   freed by its thread when the resolver answers. */
static void
test_probe_slow_resolver_abandoned (void **state)
{
    (void) state;
    s_slow_reset ();
    sc_endpoint_t *ep = s_new ("slow.test:4242");
    assert_int_equal (sc_endpoint_probe (ep), 0);
    assert_int_equal (sc_endpoint_probe (ep), 0);        /* the first dropped */
    sc_endpoint_destroy (&ep);                          /* the second too */
    s_slow_release ();
    for (int i = 0; i < 200 && s_slow_answered_now () < 2; i++)
        usleep (10000);
    assert_int_equal (s_slow_answered_now (), 2);
    usleep (50000);             /* the threads free what they held */
}

/* A probe in progress that is dropped closes its socket. */
static void
test_probe_cancel (void **state)
{
    (void) state;
    int port = 0;
    int listener = s_listener (false, &port);
    char text[64];
    snprintf (text, sizeof text, "127.0.0.1:%d", port);
    sc_endpoint_t *ep = s_new (text);
    int rc = sc_endpoint_probe (ep);
    assert_true (rc == 0 || rc == 1);
    sc_endpoint_cancel (ep);
    assert_int_equal (sc_endpoint_fd (ep), -1);
    assert_int_equal (s_probe (ep), 1);
    sc_endpoint_destroy (&ep);
    close (listener);
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_forms),
        cmocka_unit_test (test_refused_forms),
        cmocka_unit_test (test_probe_accepted),
        cmocka_unit_test (test_probe_refused),
        cmocka_unit_test (test_probe_unresolvable),
        cmocka_unit_test (test_probe_slow_resolver),
        cmocka_unit_test (test_probe_slow_resolver_abandoned),
        cmocka_unit_test (test_probe_cancel),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
