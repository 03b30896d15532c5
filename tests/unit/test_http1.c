/* Unit tests for proxy/http1: head parsing, smuggling rules, body framing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cmocka.h>

#include "proxy/http1.h"

#define NH 64

static int
parse_req(const char *text, struct h1_head *h, struct h1_header *hd, int *status, const char **why)
{
    size_t len = strlen(text);
    size_t end = h1_head_end(text, len);
    if (end == 0)
        return H1_INCOMPLETE;
    return h1_parse_request(text, end, h, hd, NH, status, why);
}

static void
test_rpc_methods(void **state)
{
    static const char *const reqs[] = {
        "RPC_IN_DATA /rpc/rpcproxy.dll?srv:6001 HTTP/1.1\r\nHost: mail\r\n"
        "Content-Length: 1073741824\r\n\r\n",
        "RPC_OUT_DATA /rpc/rpcproxy.dll?srv:6001 HTTP/1.1\r\nHost: mail\r\n"
        "Content-Length: 76\r\n\r\n",
    };
    static const uint64_t cl[] = {1073741824ULL, 76};
    for (size_t i = 0; i < 2; i++) {
        struct h1_head h;
        struct h1_header hd[NH];
        int st = 0;
        const char *why = NULL;
        assert_int_equal(parse_req(reqs[i], &h, hd, &st, &why), H1_OK);
        assert_int_equal(h.body, H1_BODY_LENGTH);
        assert_true(h.content_length == cl[i]);
        assert_true(h.keep_alive);
        assert_int_equal(h.method.len, i == 0 ? 11 : 12);
        assert_memory_equal(h.method.p, reqs[i], h.method.len);
    }
}

static void
test_headers_byte_for_byte(void **state)
{
    const char *r = "GET /mapi/emsmdb/?MailboxId=a@b HTTP/1.1\r\nHost: mail\r\n"
                    "x-lower:  v1 \r\nX-FEServer:v2\r\nEmpty:\r\n\r\n";
    struct h1_head h;
    struct h1_header hd[NH];
    int st;
    const char *why;
    assert_int_equal(parse_req(r, &h, hd, &st, &why), H1_OK);
    assert_int_equal(h.nheaders, 4);
    assert_int_equal(h.headers[1].name.len, 7);
    assert_memory_equal(h.headers[1].name.p, "x-lower", 7);
    assert_int_equal(h.headers[1].value.len, 2);
    assert_memory_equal(h.headers[1].value.p, "v1", 2);
    /* the line keeps the original spacing */
    assert_int_equal(h.headers[1].line.len, strlen("x-lower:  v1"));
    assert_memory_equal(h.headers[2].line.p, "X-FEServer:v2", 13);
    assert_int_equal(h.headers[3].value.len, 0);
    assert_int_equal(h.headers[3].line.len, 6);
    assert_non_null(h1_find(&h, "x-feserver"));
    assert_null(h1_find(&h, "Cookie"));
}

struct bad_case {
    const char *name;
    const char *text;
    int status;
};

static const struct bad_case bad_cases[] = {
    {"CL with TE",
     "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n", 400},
    {"TE with CL",
     "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n", 400},
    {"two CL differ",
     "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n", 400},
    {"two CL same", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n",
     400},
    {"CL list", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 5\r\n\r\n", 400},
    {"CL letters", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 12a\r\n\r\n", 400},
    {"CL negative", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n", 400},
    {"CL plus", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +5\r\n\r\n", 400},
    {"CL huge", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999\r\n\r\n", 400},
    {"TE gzip", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n", 400},
    {"TE chunked,gzip", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
     400},
    {"obs-fold", "GET / HTTP/1.1\r\nHost: a\r\nX-A: a\r\n b\r\n\r\n", 400},
    {"obs-fold tab", "GET / HTTP/1.1\r\nHost: a\r\nX-A: a\r\n\tb\r\n\r\n", 400},
    {"bare CR", "GET / HTTP/1.1\r\nHost: a\r\nX-A: a\rb\r\n\r\n", 400},
    {"bare LF", "GET / HTTP/1.1\r\nHost: a\r\nX-A: a\nX-B: b\r\n\r\n", 400},
    {"space before colon", "GET / HTTP/1.1\r\nHost: a\r\nX-A : a\r\n\r\n", 400},
    {"bad method", "G(T / HTTP/1.1\r\nHost: a\r\n\r\n", 400},
    {"no version", "GET /\r\nHost: a\r\n\r\n", 400},
    {"double space", "GET  / HTTP/1.1\r\nHost: a\r\n\r\n", 400},
    {"HTTP/2", "GET / HTTP/2.0\r\nHost: a\r\n\r\n", 505},
    {"CONNECT", "CONNECT a:443 HTTP/1.1\r\nHost: a\r\n\r\n", 501},
    {"ctl in value", "GET / HTTP/1.1\r\nHost: a\r\nX-A: a\x01z\r\n\r\n", 400},
    {"no colon", "GET / HTTP/1.1\r\nHost: a\r\nX-A\r\n\r\n", 400},
    {"1.1 without Host", "GET / HTTP/1.1\r\nX-A: a\r\n\r\n", 400},
    {"two Host", "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400},
    {"two Host same", "GET / HTTP/1.0\r\nHost: a\r\nHost: a\r\n\r\n", 400},
    {"Host with space", "GET / HTTP/1.1\r\nHost: a b\r\n\r\n", 400},
    {"Host empty", "GET / HTTP/1.1\r\nHost: \r\n\r\n", 400},
    {"Host userinfo", "GET / HTTP/1.1\r\nHost: u@a\r\n\r\n", 400},
    {"Host bad port", "GET / HTTP/1.1\r\nHost: a:99999\r\n\r\n", 400},
    {"1.0 with TE", "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 400},
    {"1.0 with TE and CL",
     "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n", 400},
};

static void
test_smuggling_table(void **state)
{
    for (size_t i = 0; i < sizeof(bad_cases) / sizeof(bad_cases[0]); i++) {
        struct h1_head h;
        struct h1_header hd[NH];
        int st = 0;
        const char *why = NULL;
        int rc = parse_req(bad_cases[i].text, &h, hd, &st, &why);
        if (rc != H1_ERROR || st != bad_cases[i].status)
            fail_msg("case '%s': rc=%d status=%d (want %d)", bad_cases[i].name, rc, st,
                     bad_cases[i].status);
        assert_non_null(why);
    }
}

static void
test_nul_in_header(void **state)
{
    static const char r[] = "GET / HTTP/1.1\r\nHost: a\r\nX-A: a\0b\r\n\r\n";
    size_t len = sizeof(r) - 1;
    struct h1_head h;
    struct h1_header hd[NH];
    int st = 0;
    const char *why = NULL;
    size_t end = h1_head_end(r, len);
    assert_int_equal(end, len);
    assert_int_equal(h1_parse_request(r, end, &h, hd, NH, &st, &why), H1_ERROR);
    assert_int_equal(st, 400);
}

static bool
ref_tchar(unsigned char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

/* The header block grammar the parser implements, one byte at a time and nothing clever:
 * lines of 1*tchar ":" then value bytes (HTAB, SP to '~', obs-text) up to CRLF, then one empty
 * line that ends the block. The reference for the parser's word-at-a-time value path. */
static bool
ref_block_ok(const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;
    while (i < n) {
        if (p[i] == '\r')
            return i + 2 == n && p[i + 1] == '\n';
        size_t name = i;
        while (i < n && ref_tchar(p[i]))
            i++;
        if (i == name || i >= n || p[i] != ':')
            return false;
        for (i++; i < n && p[i] != '\r'; i++)
            if (p[i] != '\t' && (p[i] < 0x20 || p[i] == 0x7f))
                return false;
        if (i + 1 >= n || p[i + 1] != '\n')
            return false;
        i += 2;
    }
    return false;
}

/* Values are read 8 bytes at a time: every byte value at every offset of a block of short and
 * long lines (every alignment of the word, line starts and ends included) gets the verdict of
 * the byte-at-a-time grammar, with 400 on a reject; a control byte or DEL is a 400 anywhere.
 * (HTTP/1.0 and no framing field names, so that only the line grammar decides.) */
static void
test_control_byte_every_offset(void **state)
{
    static const char start[] = "GET / HTTP/1.0\r\n";
    static const char base[] = "X-A: a\r\nX-Long: vvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvv\r\n"
                               "X-B: b\r\nX-C: \x80\xff\tq \r\nX-Dddddddddddd:\t\t  \r\n\r\n";
    const size_t sl = sizeof(start) - 1, bl = sizeof(base) - 1;
    char buf[sizeof(start) + sizeof(base)];
    (void)state;
    memcpy(buf, start, sl);
    memcpy(buf + sl, base, bl);
    assert_true(ref_block_ok(base, bl));
    for (int c = 0; c < 256; c++) {
        for (size_t off = 0; off < bl; off++) {
            memcpy(buf + sl, base, bl);
            buf[sl + off] = (char)c;
            bool want = ref_block_ok(buf + sl, bl);
            struct h1_head h;
            struct h1_header hd[NH];
            int st = 0;
            const char *why = NULL;
            int rc = h1_parse_request(buf, sl + bl, &h, hd, NH, &st, &why);
            if (want != (rc == H1_OK) || (rc != H1_OK && st != 400))
                fail_msg("byte 0x%02x at offset %zu: parser says %s (status %d)", (unsigned)c, off,
                         rc == H1_OK ? "ok" : why, st);
        }
    }
    static const char req[] = "GET / HTTP/1.1\r\nHost: a\r\nX-L: aaaaaaaaaaaaaaaaaaa\r\n\r\n";
    char r[sizeof(req)];
    for (size_t off = sizeof("GET / HTTP/1.1\r\n") - 1; off < sizeof(req) - 3; off++) {
        for (int c = 0; c < 0x80; c++) {
            if ((c >= 0x20 && c != 0x7f) || c == '\t' || c == '\r' || c == '\n')
                continue;
            memcpy(r, req, sizeof(req));
            r[off] = (char)c;
            struct h1_head h;
            struct h1_header hd[NH];
            int st = 0;
            const char *why = NULL;
            assert_int_equal(h1_parse_request(r, sizeof(req) - 1, &h, hd, NH, &st, &why), H1_ERROR);
            assert_int_equal(st, 400);
        }
    }
}

static void
test_too_many_headers(void **state)
{
    char buf[4096];
    size_t n = (size_t)snprintf(buf, sizeof(buf), "GET / HTTP/1.1\r\nHost: a\r\n");
    for (int i = 0; i < 20; i++)
        n += (size_t)snprintf(buf + n, sizeof(buf) - n, "X-%d: v\r\n", i);
    n += (size_t)snprintf(buf + n, sizeof(buf) - n, "\r\n");
    struct h1_head h;
    struct h1_header hd[10];
    int st = 0;
    const char *why = NULL;
    assert_int_equal(h1_parse_request(buf, n, &h, hd, 10, &st, &why), H1_ERROR);
    assert_int_equal(st, 431);
}

/* Every proper prefix of a head is incomplete; the whole head is found exactly. */
static void
test_every_prefix_incomplete(void **state)
{
    const char *r = "RPC_OUT_DATA /rpc/rpcproxy.dll HTTP/1.1\r\nHost: a\r\nContent-Length: 76\r\n"
                    "\r\nBODY";
    size_t head = strlen(r) - 4;
    long pg = sysconf(_SC_PAGESIZE);
    /* Each prefix ends against a PROT_NONE page, so a read past the end faults. */
    char *map =
        mmap(NULL, (size_t)pg * 2, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    assert_true(map != MAP_FAILED);
    assert_int_equal(mprotect(map + pg, (size_t)pg, PROT_NONE), 0);
    for (size_t len = 0; len < head; len++) {
        char *p = map + pg - len;
        memcpy(p, r, len);
        assert_int_equal(h1_head_end(p, len), 0);
    }
    char *p = map + pg - head;
    memcpy(p, r, head);
    assert_int_equal(h1_head_end(p, head), head);
    struct h1_head h;
    struct h1_header hd[NH];
    int st;
    const char *why;
    assert_int_equal(h1_parse_request(p, head, &h, hd, NH, &st, &why), H1_OK);
    munmap(map, (size_t)pg * 2);
}

static void
test_keep_alive_rules(void **state)
{
    static const struct {
        const char *text;
        bool ka;
    } cases[] = {
        {"GET / HTTP/1.1\r\nHost: a\r\n\r\n", true},
        {"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n", false},
        {"GET / HTTP/1.0\r\nHost: a\r\n\r\n", false},
        {"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", true},
        {"GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, close\r\n\r\n", false},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct h1_head h;
        struct h1_header hd[NH];
        int st;
        const char *why;
        assert_int_equal(parse_req(cases[i].text, &h, hd, &st, &why), H1_OK);
        if (h.keep_alive != cases[i].ka)
            fail_msg("case %zu: keep_alive %d", i, h.keep_alive);
    }
}

/* Content-Length up to 2^63-1 is accepted; 2^63 is not. */
static void
test_content_length_limits(void **state)
{
    struct h1_head h;
    struct h1_header hd[NH];
    int st;
    const char *why;
    assert_int_equal(
        parse_req("PUT / HTTP/1.1\r\nHost: a\r\nContent-Length: 9223372036854775807\r\n\r\n", &h,
                  hd, &st, &why),
        H1_OK);
    assert_true(h.content_length == 9223372036854775807ULL);
    assert_int_equal(
        parse_req("PUT / HTTP/1.1\r\nHost: a\r\nContent-Length: 9223372036854775808\r\n\r\n", &h,
                  hd, &st, &why),
        H1_ERROR);
    assert_int_equal(st, 400);
}

static void
test_upgrade_is_plain_request(void **state)
{
    struct h1_head h;
    struct h1_header hd[NH];
    int st;
    const char *why;
    assert_int_equal(
        parse_req("GET / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
                  "Content-Length: 2\r\n\r\n",
                  &h, hd, &st, &why),
        H1_OK);
    assert_true(h.upgrade);
    assert_int_equal(h.body, H1_BODY_LENGTH);
}

static void
test_expect_continue(void **state)
{
    struct h1_head h;
    struct h1_header hd[NH];
    int st;
    const char *why;
    assert_int_equal(
        parse_req("POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n",
                  &h, hd, &st, &why),
        H1_OK);
    assert_true(h.expect_continue);
}

static int
parse_resp(const char *text, bool head_req, struct h1_head *h, struct h1_header *hd)
{
    int st;
    const char *why;
    size_t end = h1_head_end(text, strlen(text));
    if (end == 0)
        return H1_INCOMPLETE;
    return h1_parse_response(text, end, head_req, h, hd, NH, &st, &why);
}

static void
test_response_framing(void **state)
{
    static const struct {
        const char *text;
        bool head_req;
        enum h1_body_kind body;
        uint64_t cl;
        int status;
    } cases[] = {
        {"HTTP/1.1 200 Success\r\nContent-Type: application/rpc\r\nContent-Length: "
         "1073741824\r\n\r\n",
         false, H1_BODY_LENGTH, 1073741824ULL, 200},
        {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", false, H1_BODY_CHUNKED, 0, 200},
        {"HTTP/1.1 200 OK\r\nServer: x\r\n\r\n", false, H1_BODY_EOF, 0, 200},
        {"HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\n", true, H1_BODY_NONE, 0, 200},
        {"HTTP/1.1 204 No Content\r\nContent-Length: 50\r\n\r\n", false, H1_BODY_NONE, 0, 204},
        {"HTTP/1.1 100 Continue\r\n\r\n", false, H1_BODY_NONE, 0, 100},
        {"HTTP/1.0 503 RPC Error: 6ba\r\nContent-Length: 3\r\n\r\n", false, H1_BODY_LENGTH, 3, 503},
        {"HTTP/1.1 440 Login Timeout\r\nContent-Length: 0\r\n\r\n", false, H1_BODY_NONE, 0, 440},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct h1_head h;
        struct h1_header hd[NH];
        assert_int_equal(parse_resp(cases[i].text, cases[i].head_req, &h, hd), H1_OK);
        if (h.body != cases[i].body || h.content_length != cases[i].cl ||
            h.status != cases[i].status)
            fail_msg("case %zu: body %d cl %llu status %d", i, h.body,
                     (unsigned long long)h.content_length, h.status);
    }
    struct h1_head h;
    struct h1_header hd[NH];
    assert_int_equal(parse_resp("HTTP/1.1 2x0 OK\r\n\r\n", false, &h, hd), H1_ERROR);
    assert_int_equal(parse_resp("HTTP/1.1 200 OK\r\nContent-Length: 1\r\nTransfer-Encoding: "
                                "chunked\r\n\r\n",
                                false, &h, hd),
                     H1_ERROR);
}

static void
test_list_has(void **state)
{
    struct h1_slice s = {"keep-alive , Foo,bar", 20};
    assert_true(h1_list_has(s, "foo"));
    assert_true(h1_list_has(s, "Keep-Alive"));
    assert_true(h1_list_has(s, "BAR"));
    assert_false(h1_list_has(s, "close"));
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rpc_methods),
        cmocka_unit_test(test_headers_byte_for_byte),
        cmocka_unit_test(test_smuggling_table),
        cmocka_unit_test(test_nul_in_header),
        cmocka_unit_test(test_control_byte_every_offset),
        cmocka_unit_test(test_too_many_headers),
        cmocka_unit_test(test_every_prefix_incomplete),
        cmocka_unit_test(test_keep_alive_rules),
        cmocka_unit_test(test_content_length_limits),
        cmocka_unit_test(test_upgrade_is_plain_request),
        cmocka_unit_test(test_expect_continue),
        cmocka_unit_test(test_response_framing),
        cmocka_unit_test(test_list_has),
    };
    return cmocka_run_group_tests_name("http1", tests, NULL, NULL);
}
