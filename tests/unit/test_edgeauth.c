/*
 * Unit tests for proxy/edgeauth.c's head handling: the head of an NTLM NEGOTIATE leg loses
 * its framing headers and gets Content-Length: 0; the resent head is the forwarded one; the
 * final empty line is left for the caller, which appends the Authorization line first. And
 * edgeauth with no edge yet: an empty user, no-op backend loss, a response passed as is.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "proxy/edgeauth.h"

struct head_case {
    const char *name;
    const char *in;
    bool no_body;
    const char *want; /* NULL: refused */
};

static const struct head_case head_cases[] = {
    {"GET as is", "GET / HTTP/1.1\r\nHost: h\r\n\r\n", false, "GET / HTTP/1.1\r\nHost: h\r\n"},
    {"GET, negotiate leg", "GET / HTTP/1.1\r\nHost: h\r\n\r\n", true,
     "GET / HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n"},
    {"POST with a body, resend", "POST /r HTTP/1.1\r\nHost: h\r\nContent-Length: 9\r\nX: y\r\n\r\n",
     false, "POST /r HTTP/1.1\r\nHost: h\r\nContent-Length: 9\r\nX: y\r\n"},
    {"POST, negotiate leg", "POST /r HTTP/1.1\r\nHost: h\r\ncontent-length: 9\r\nX: y\r\n\r\n",
     true, "POST /r HTTP/1.1\r\nHost: h\r\nX: y\r\nContent-Length: 0\r\n"},
    {"chunked, negotiate leg",
     "POST /r HTTP/1.1\r\nTransfer-Encoding: chunked\r\nHost: h\r\n\r\n", true,
     "POST /r HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n"},
    /* a header whose name only starts like a framing header stays */
    {"look-alike names", "POST /r HTTP/1.1\r\nContent-Length-X: 1\r\nContent-Lengthy: 2\r\n\r\n",
     true, "POST /r HTTP/1.1\r\nContent-Length-X: 1\r\nContent-Lengthy: 2\r\nContent-Length: 0\r\n"},
    /* the request line is never taken for a header, whatever its target */
    {"request line", "Content-Length: x HTTP/1.1\r\nHost: h\r\n\r\n", true,
     "Content-Length: x HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n"},
    {"too short", "\r", false, NULL},
};

static void
test_head_prefix(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(head_cases) / sizeof(head_cases[0]); i++) {
        const struct head_case *tc = &head_cases[i];
        struct evbuffer *src = evbuffer_new(), *dst = evbuffer_new();
        assert_non_null(src);
        assert_non_null(dst);
        evbuffer_add(src, tc->in, strlen(tc->in));
        int rc = edgeauth_head_prefix(src, tc->no_body, dst);
        if (tc->want == NULL) {
            if (rc != -1)
                fail_msg("case '%s': accepted", tc->name);
        } else {
            size_t n = evbuffer_get_length(dst);
            const char *p = (const char *)evbuffer_pullup(dst, -1);
            if (rc != 0 || n != strlen(tc->want) || memcmp(p, tc->want, n) != 0)
                fail_msg("case '%s': got rc=%d '%.*s'", tc->name, rc, (int)n, p ? p : "");
            /* the source is left whole: the resend needs it again */
            assert_int_equal(evbuffer_get_length(src), strlen(tc->in));
        }
        evbuffer_free(src);
        evbuffer_free(dst);
    }
}

static void
test_no_edge_yet(void **state)
{
    (void)state;
    struct edgeauth *ea = edgeauth_new(7);
    assert_non_null(ea);
    assert_string_equal(edgeauth_user(ea), "");
    assert_string_equal(edgeauth_user(NULL), "");
    edgeauth_backend_lost(ea);
    edgeauth_backend_lost(NULL);
    struct h1_head h = {.status = 200};
    struct evbuffer *www = evbuffer_new(), *authz = evbuffer_new();
    int status = 0;
    const char *why = NULL;
    assert_int_equal(edgeauth_response(ea, &h, www, authz, &status, &why), EDGEAUTH_PASS);
    assert_int_equal(evbuffer_get_length(www), 0);
    assert_int_equal(evbuffer_get_length(authz), 0);
    evbuffer_free(www);
    evbuffer_free(authz);
    edgeauth_free(ea);
    edgeauth_free(NULL);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_head_prefix),
        cmocka_unit_test(test_no_edge_yet),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
