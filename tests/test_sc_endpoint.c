/*  test_sc_endpoint: what --endpoint accepts, and the probe that tells a
    refused port or a name that does not resolve at once, against real
    sockets on loopback (IPv4 and IPv6).

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at https://mozilla.org/MPL/2.0/.
*/
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "sc_endpoint.h"

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
    int fd = socket (v6 ? AF_INET6 : AF_INET, SOCK_STREAM, 0);
    assert_true (fd >= 0);
    struct sockaddr_storage ss;
    memset (&ss, 0, sizeof ss);
    socklen_t len;
    if (v6) {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *) &ss;
        a->sin6_family = AF_INET6;
        a->sin6_addr = in6addr_loopback;
        len = sizeof *a;
    }
    else {
        struct sockaddr_in *a = (struct sockaddr_in *) &ss;
        a->sin_family = AF_INET;
        a->sin_addr.s_addr = htonl (INADDR_LOOPBACK);
        len = sizeof *a;
    }
    assert_int_equal (bind (fd, (struct sockaddr *) &ss, len), 0);
    assert_int_equal (listen (fd, 4), 0);
    assert_int_equal (getsockname (fd, (struct sockaddr *) &ss, &len), 0);
    *port = ntohs (v6 ? ((struct sockaddr_in6 *) &ss)->sin6_port
                      : ((struct sockaddr_in *) &ss)->sin_port);
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

/* Probe ep to the end, as secchat's loop does; within 5 s. */
static int
s_probe (sc_endpoint_t *ep)
{
    int rc = sc_endpoint_probe (ep);
    for (int i = 0; rc == 0 && i < 50; i++) {
        struct pollfd pfd = { .fd = sc_endpoint_fd (ep), .events = POLLOUT };
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
    assert_int_equal (sc_endpoint_probe (ep), -1);
    assert_int_equal (sc_endpoint_fd (ep), -1);
    const char *error = sc_endpoint_error (ep);
    const char *want = "no-such-host.invalid does not resolve (";
    if (strncmp (error, want, strlen (want)) != 0)
        fail_msg ("error: %s", error);
    assert_int_equal (sc_endpoint_step (ep), -1);
    sc_endpoint_destroy (&ep);
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
        cmocka_unit_test (test_probe_cancel),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
