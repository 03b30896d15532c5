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
#include "tests/unit/h1_oracle.h"

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

static const char *const rpc_reqs[] = {
    "RPC_IN_DATA /rpc/rpcproxy.dll?srv:6001 HTTP/1.1\r\nHost: mail\r\n"
    "Content-Length: 1073741824\r\n\r\n",
    "RPC_OUT_DATA /rpc/rpcproxy.dll?srv:6001 HTTP/1.1\r\nHost: mail\r\n"
    "Content-Length: 76\r\n\r\n",
};

static void
test_rpc_methods(void **state)
{
    const char *const *reqs = rpc_reqs;
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

static const char head_byte_for_byte[] =
    "GET /mapi/emsmdb/?MailboxId=a@b HTTP/1.1\r\nHost: mail\r\n"
    "x-lower:  v1 \r\nX-FEServer:v2\r\nEmpty:\r\n\r\n";

static void
test_headers_byte_for_byte(void **state)
{
    const char *r = head_byte_for_byte;
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
    {"TE-prefixed name", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encodingx: chunked\r\n\r\n", 400},
    {"tab after CL", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\t\r\n\r\n", 400},
    {"tab before TE", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:\tchunked\r\n\r\n", 400},
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

static const char head_nul[] = "GET / HTTP/1.1\r\nHost: a\r\nX-A: a\0b\r\n\r\n";

static void
test_nul_in_header(void **state)
{
    const char *r = head_nul;
    size_t len = sizeof(head_nul) - 1;
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

static const char head_with_body[] =
    "RPC_OUT_DATA /rpc/rpcproxy.dll HTTP/1.1\r\nHost: a\r\nContent-Length: 76\r\n\r\nBODY";

/* Every proper prefix of a head is incomplete; the whole head is found exactly. */
static void
test_every_prefix_incomplete(void **state)
{
    const char *r = head_with_body;
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

static const struct {
    const char *text;
    bool ka;
} ka_cases[] = {
    {"GET / HTTP/1.1\r\nHost: a\r\n\r\n", true},
    {"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n", false},
    {"GET / HTTP/1.0\r\nHost: a\r\n\r\n", false},
    {"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", true},
    {"GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, close\r\n\r\n", false},
};

static void
test_keep_alive_rules(void **state)
{
    for (size_t i = 0; i < sizeof(ka_cases) / sizeof(ka_cases[0]); i++) {
        struct h1_head h;
        struct h1_header hd[NH];
        int st;
        const char *why;
        assert_int_equal(parse_req(ka_cases[i].text, &h, hd, &st, &why), H1_OK);
        if (h.keep_alive != ka_cases[i].ka)
            fail_msg("case %zu: keep_alive %d", i, h.keep_alive);
    }
}

static const char head_cl_max[] =
    "PUT / HTTP/1.1\r\nHost: a\r\nContent-Length: 9223372036854775807\r\n\r\n";
static const char head_cl_over[] =
    "PUT / HTTP/1.1\r\nHost: a\r\nContent-Length: 9223372036854775808\r\n\r\n";

/* Content-Length up to 2^63-1 is accepted; 2^63 is not. */
static void
test_content_length_limits(void **state)
{
    struct h1_head h;
    struct h1_header hd[NH];
    int st;
    const char *why;
    assert_int_equal(parse_req(head_cl_max, &h, hd, &st, &why), H1_OK);
    assert_true(h.content_length == 9223372036854775807ULL);
    assert_int_equal(parse_req(head_cl_over, &h, hd, &st, &why), H1_ERROR);
    assert_int_equal(st, 400);
}

static const char head_upgrade[] = "GET / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\n"
                                   "Upgrade: websocket\r\nContent-Length: 2\r\n\r\n";

static void
test_upgrade_is_plain_request(void **state)
{
    struct h1_head h;
    struct h1_header hd[NH];
    int st;
    const char *why;
    assert_int_equal(parse_req(head_upgrade, &h, hd, &st, &why), H1_OK);
    assert_true(h.upgrade);
    assert_int_equal(h.body, H1_BODY_LENGTH);
}

static const char head_expect[] =
    "POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n";

static void
test_expect_continue(void **state)
{
    struct h1_head h;
    struct h1_header hd[NH];
    int st;
    const char *why;
    assert_int_equal(parse_req(head_expect, &h, hd, &st, &why), H1_OK);
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

static const struct {
    const char *text;
    bool head_req;
    enum h1_body_kind body;
    uint64_t cl;
    int status;
} resp_cases[] = {
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

static const char resp_bad_code[] = "HTTP/1.1 2x0 OK\r\n\r\n";
static const char resp_cl_te[] =
    "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n";

static void
test_response_framing(void **state)
{
    for (size_t i = 0; i < sizeof(resp_cases) / sizeof(resp_cases[0]); i++) {
        struct h1_head h;
        struct h1_header hd[NH];
        assert_int_equal(parse_resp(resp_cases[i].text, resp_cases[i].head_req, &h, hd), H1_OK);
        if (h.body != resp_cases[i].body || h.content_length != resp_cases[i].cl ||
            h.status != resp_cases[i].status)
            fail_msg("case %zu: body %d cl %llu status %d", i, h.body,
                     (unsigned long long)h.content_length, h.status);
    }
    struct h1_head h;
    struct h1_header hd[NH];
    assert_int_equal(parse_resp(resp_bad_code, false, &h, hd), H1_ERROR);
    assert_int_equal(parse_resp(resp_cl_te, false, &h, hd), H1_ERROR);
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

/*
 * Differential tests against http-parser (tests/unit/h1_oracle.c): every head exshim accepts,
 * as a request or as a response, http-parser accepts with the same names and values.
 */
struct diff_stats {
    size_t heads;    /* heads parsed (each as a request and as a response) */
    size_t accepted; /* parses exshim accepted, each compared with the oracle */
};

/* The line slices as http1.h promises them: from the name to the end of the value. */
static void
check_slices(const struct h1_head *h, const char *buf, size_t len)
{
    for (size_t i = 0; i < h->nheaders; i++) {
        const struct h1_header *x = &h->headers[i];
        assert_true(x->name.len > 0);
        assert_ptr_equal(x->line.p, x->name.p);
        assert_true(x->value.p > x->name.p + x->name.len);
        assert_ptr_equal(x->line.p + x->line.len, x->value.p + x->value.len);
        assert_true(x->line.p >= buf && x->line.p + x->line.len <= buf + len);
    }
}

/* Parses buf[0..len) up to the head h1_head_end finds, as a request and as a response; fails
 * the test when exshim accepts and http-parser disagrees. */
static void
diff_one(const char *buf, size_t len, struct diff_stats *ds)
{
    size_t end = h1_head_end(buf, len);
    if (end == 0)
        return;
    ds->heads++;
    for (int as_request = 0; as_request < 2; as_request++) {
        struct h1_head h;
        struct h1_header hd[NH];
        int st = 0;
        const char *why = NULL;
        int rc = as_request ? h1_parse_request(buf, end, &h, hd, NH, &st, &why)
                            : h1_parse_response(buf, end, false, &h, hd, NH, &st, &why);
        if (rc != H1_OK)
            continue;
        ds->accepted++;
        check_slices(&h, buf, end);
        const char *diff = h1oracle_compare(buf, end, as_request, &h);
        if (diff != NULL) {
            char shown[512];
            size_t n = 0;
            for (size_t i = 0; i < end && n + 5 < sizeof(shown); i++) {
                unsigned char c = (unsigned char)buf[i];
                if (c >= 0x20 && c < 0x7f && c != '\\')
                    shown[n++] = (char)c;
                else
                    n += (size_t)snprintf(shown + n, sizeof(shown) - n, "\\x%02x", c);
            }
            shown[n] = 0;
            fail_msg("%s: %s (as a %s)", diff, shown, as_request ? "request" : "response");
        }
    }
}

static void
diff_str(const char *s, struct diff_stats *ds)
{
    diff_one(s, strlen(s), ds);
}

/* Every head of this file. */
static void
test_oracle_file_heads(void **state)
{
    struct diff_stats ds = {0};
    (void)state;
    for (size_t i = 0; i < sizeof(rpc_reqs) / sizeof(rpc_reqs[0]); i++)
        diff_str(rpc_reqs[i], &ds);
    for (size_t i = 0; i < sizeof(bad_cases) / sizeof(bad_cases[0]); i++)
        diff_str(bad_cases[i].text, &ds);
    for (size_t i = 0; i < sizeof(ka_cases) / sizeof(ka_cases[0]); i++)
        diff_str(ka_cases[i].text, &ds);
    for (size_t i = 0; i < sizeof(resp_cases) / sizeof(resp_cases[0]); i++)
        diff_str(resp_cases[i].text, &ds);
    static const char *const others[] = {
        head_byte_for_byte, head_with_body, head_cl_max,   head_cl_over,
        head_upgrade,       head_expect,    resp_bad_code, resp_cl_te,
    };
    for (size_t i = 0; i < sizeof(others) / sizeof(others[0]); i++)
        diff_str(others[i], &ds);
    diff_one(head_nul, sizeof(head_nul) - 1, &ds);
    /* the rpc, keep-alive, response and other good heads */
    assert_true(ds.accepted >= 20);
}

/* Heads that stand for the traffic: a MAPI request with OWS, an empty value and obs-text, an
 * RPC request, a response, and a smuggling-shaped request (Content-Length with
 * Transfer-Encoding) whose one-byte variants probe the framing rules. */
static const char *const diff_seeds[] = {
    "POST /mapi/emsmdb/?MailboxId=a@b HTTP/1.1\r\nHost: mail\r\nX-RequestType:  Execute \r\n"
    "Content-Length: 12\r\nX-E:\r\nX-O: \xe9t\xe9\r\n\r\n",
    "RPC_IN_DATA /rpc/rpcproxy.dll?srv:6001 HTTP/1.0\r\nUser-Agent:\tMSRPC\t\r\n\r\n",
    "HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: NTLM\r\nContent-Length: 0\r\n"
    "Connection: keep-alive\r\n\r\n",
    "POST /ews/exchange.asmx HTTP/1.1\r\nHost: mail\r\nContent-Length: 5\r\n"
    "Transfer-Encoding: chunked\r\n\r\n",
};

/* Each byte value inserted before, and put in place of, each byte of the seeds. */
static void
test_oracle_byte_mutations(void **state)
{
    struct diff_stats ds = {0};
    char buf[512];
    (void)state;
    for (size_t s = 0; s < sizeof(diff_seeds) / sizeof(diff_seeds[0]); s++) {
        const char *seed = diff_seeds[s];
        size_t n = strlen(seed);
        assert_true(n + 1 <= sizeof(buf));
        for (size_t off = 0; off <= n; off++) {
            for (int c = 0; c < 256; c++) {
                memcpy(buf, seed, off);
                buf[off] = (char)c;
                memcpy(buf + off + 1, seed + off, n - off);
                diff_one(buf, n + 1, &ds);
                if (off < n) {
                    memcpy(buf, seed, n);
                    buf[off] = (char)c;
                    diff_one(buf, n, &ds);
                }
            }
        }
    }
    /* mutations inside names and values leave most heads valid */
    assert_true(ds.accepted > ds.heads / 4);
}

/* A fixed-seed xorshift64: the same heads on every run. */
static uint64_t
prng_next(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    *s = x;
    return x;
}

static size_t
prng_below(uint64_t *s, size_t n)
{
    return (size_t)(prng_next(s) % n);
}

/* Appends one header line of mostly valid shape with occasional damage. */
static size_t
gen_line(uint64_t *s, char *p, size_t room)
{
    static const char *const names[] = {
        "Host",    "Content-Length", "Transfer-Encoding", "Connection",
        "Upgrade", "Expect",         "Authorization",     "X-a",
        "x",       "Cookie",         "WWW-Authenticate",  "!#$%&'*+-.^_`|~09azAZ",
    };
    static const char *const ows[] = {"", "", " ", "\t", "  ", " \t "};
    size_t n = 0;
    if (room < 200)
        return 0;
    if (prng_below(s, 4) == 0) {
        size_t k = 1 + prng_below(s, 12);
        for (size_t i = 0; i < k; i++)
            p[n++] = "abcXYZ019-_.~!"[prng_below(s, 14)];
    } else {
        const char *nm = names[prng_below(s, sizeof(names) / sizeof(names[0]))];
        memcpy(p + n, nm, strlen(nm));
        n += strlen(nm);
    }
    if (prng_below(s, 20) == 0)
        p[n++] = prng_below(s, 2) ? ' ' : '\t';
    p[n++] = ':';
    const char *o = ows[prng_below(s, sizeof(ows) / sizeof(ows[0]))];
    memcpy(p + n, o, strlen(o));
    n += strlen(o);
    size_t vlen = prng_below(s, 40);
    for (size_t i = 0; i < vlen; i++) {
        size_t kind = prng_below(s, 100);
        if (kind < 70)
            p[n++] = (char)(0x21 + prng_below(s, 0x5e));
        else if (kind < 85)
            p[n++] = prng_below(s, 3) ? ' ' : '\t';
        else if (kind < 97)
            p[n++] = (char)(0x80 + prng_below(s, 0x80));
        else
            p[n++] = (char)prng_below(s, 256);
    }
    o = ows[prng_below(s, sizeof(ows) / sizeof(ows[0]))];
    memcpy(p + n, o, strlen(o));
    n += strlen(o);
    size_t eol = prng_below(s, 100);
    if (eol == 0)
        p[n++] = '\n';
    else if (eol == 1)
        p[n++] = '\r';
    else {
        p[n++] = '\r';
        p[n++] = '\n';
    }
    return n;
}

/* Random header blocks behind request and response start lines. */
static void
test_oracle_random_blocks(void **state)
{
    static const char *const starts[] = {
        "GET / HTTP/1.0\r\n",         "POST /mapi/emsmdb HTTP/1.1\r\nHost: mail\r\n",
        "HTTP/1.1 200 OK\r\n",        "HTTP/1.0 204 No Content\r\n",
        "HTTP/1.1 101 Switching\r\n", "RPC_OUT_DATA /rpc HTTP/1.1\r\nHost: a:443\r\n",
    };
    struct diff_stats ds = {0};
    uint64_t seed = 0x9e3779b97f4a7c15ULL;
    char buf[4096];
    (void)state;
    for (int iter = 0; iter < 50000; iter++) {
        const char *st = starts[prng_below(&seed, sizeof(starts) / sizeof(starts[0]))];
        size_t n = strlen(st);
        memcpy(buf, st, n);
        size_t lines = prng_below(&seed, 16);
        for (size_t i = 0; i < lines; i++)
            n += gen_line(&seed, buf + n, sizeof(buf) - n - 2);
        buf[n++] = '\r';
        buf[n++] = '\n';
        diff_one(buf, n, &ds);
    }
    /* enough of them are accepted for the comparison to mean something */
    assert_true(ds.accepted > 5000);
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
        cmocka_unit_test(test_oracle_file_heads),
        cmocka_unit_test(test_oracle_byte_mutations),
        cmocka_unit_test(test_oracle_random_blocks),
    };
    return cmocka_run_group_tests_name("http1", tests, NULL, NULL);
}
