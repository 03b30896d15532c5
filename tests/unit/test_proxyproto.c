/*
 * Unit tests for proxy/proxyproto.c: a table of v1 and v2 headers (valid and malformed), each
 * parsed against a PROT_NONE guard page; every proper prefix of a valid header is INCOMPLETE
 * and every prefix of a malformed one is INCOMPLETE or ERROR (never OK); bytes after a header
 * are not consumed; CRC32C known answer; proxy_from matching.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <cmocka.h>

#include "proxy/proxyproto.h"

#define OK PROXYPROTO_OK
#define INC PROXYPROTO_INCOMPLETE
#define ERR PROXYPROTO_ERROR

/* ---- guard page: the input ends exactly where reading would fault ------------------- */

static uint8_t *guard_base;
static size_t guard_page;

static int
guard_setup(void **state)
{
    guard_page = (size_t)sysconf(_SC_PAGESIZE);
    guard_base = mmap(NULL, 2 * guard_page + PROXYPROTO_MAX, PROT_READ | PROT_WRITE,
                      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    assert_true(guard_base != MAP_FAILED);
    return 0;
}

/* Copies len bytes so that they end against a PROT_NONE page; returns the copy. */
static const uint8_t *
guarded(const uint8_t *p, size_t len)
{
    size_t span = ((len + guard_page - 1) / guard_page + 1) * guard_page;
    static size_t mapped;
    if (mapped != 0)
        munmap(guard_base, mapped);
    mapped = span + guard_page;
    guard_base = mmap(NULL, mapped, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    assert_true(guard_base != MAP_FAILED);
    assert_int_equal(mprotect(guard_base + span, guard_page, PROT_NONE), 0);
    uint8_t *dst = guard_base + span - len;
    if (len > 0)
        memcpy(dst, p, len);
    return dst;
}

/* ---- v2 builder ------------------------------------------------------------------------ */

static const uint8_t SIG[12] = {0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d,
                                0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a};

struct v2 {
    uint8_t b[PROXYPROTO_MAX + 64];
    size_t n;
    size_t crc_at; /* offset of a CRC32C value to fill in, 0 for none */
};

static void
v2_start(struct v2 *v, uint8_t ver_cmd, uint8_t fam)
{
    memset(v, 0, sizeof(*v));
    memcpy(v->b, SIG, 12);
    v->b[12] = ver_cmd;
    v->b[13] = fam;
    v->n = 16;
}

static void
v2_put(struct v2 *v, const void *p, size_t len)
{
    memcpy(v->b + v->n, p, len);
    v->n += len;
}

static void
v2_tlv(struct v2 *v, uint8_t type, const void *p, size_t len)
{
    uint8_t h[3] = {type, (uint8_t)(len >> 8), (uint8_t)len};
    v2_put(v, h, 3);
    if (type == PROXYPROTO_TLV_CRC32C)
        v->crc_at = v->n;
    v2_put(v, p, len);
}

static void
v2_inet(struct v2 *v, const char *src, const char *dst, uint16_t sp, uint16_t dp)
{
    uint8_t a[4];
    inet_pton(AF_INET, src, a);
    v2_put(v, a, 4);
    inet_pton(AF_INET, dst, a);
    v2_put(v, a, 4);
    uint8_t p[4] = {(uint8_t)(sp >> 8), (uint8_t)sp, (uint8_t)(dp >> 8), (uint8_t)dp};
    v2_put(v, p, 4);
}

static void
v2_inet6(struct v2 *v, const char *src, const char *dst, uint16_t sp, uint16_t dp)
{
    uint8_t a[16];
    inet_pton(AF_INET6, src, a);
    v2_put(v, a, 16);
    inet_pton(AF_INET6, dst, a);
    v2_put(v, a, 16);
    uint8_t p[4] = {(uint8_t)(sp >> 8), (uint8_t)sp, (uint8_t)(dp >> 8), (uint8_t)dp};
    v2_put(v, p, 4);
}

/* Writes the length field (and the CRC when there is one); returns v->n. */
static size_t
v2_end(struct v2 *v)
{
    size_t len = v->n - 16;
    v->b[14] = (uint8_t)(len >> 8);
    v->b[15] = (uint8_t)len;
    if (v->crc_at != 0) {
        memset(v->b + v->crc_at, 0, 4);
        uint32_t crc = proxyproto_crc32c(0, v->b, v->n);
        v->b[v->crc_at] = (uint8_t)(crc >> 24);
        v->b[v->crc_at + 1] = (uint8_t)(crc >> 16);
        v->b[v->crc_at + 2] = (uint8_t)(crc >> 8);
        v->b[v->crc_at + 3] = (uint8_t)crc;
    }
    return v->n;
}

/* ---- checks ------------------------------------------------------------------------- */

static void
src_is(const struct proxyproto_header *h, const char *ip, int port)
{
    char text[INET6_ADDRSTRLEN] = "";
    int got_port = -1;
    if (h->src.ss_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)&h->src;
        inet_ntop(AF_INET, &in->sin_addr, text, sizeof(text));
        got_port = ntohs(in->sin_port);
        assert_int_equal(h->srclen, sizeof(*in));
    } else if (h->src.ss_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)&h->src;
        inet_ntop(AF_INET6, &in6->sin6_addr, text, sizeof(text));
        got_port = ntohs(in6->sin6_port);
        assert_int_equal(h->srclen, sizeof(*in6));
    }
    assert_string_equal(text, ip);
    assert_int_equal(got_port, port);
}

/*
 * Parses every proper prefix, then b[0..n), each copy ending against the guard page (the last
 * stays mapped, so the views in *h_out are valid until the next call). Expects want for the
 * whole and, on OK, a header of exactly hlen bytes (n may be larger: what follows is the
 * client's). Prefixes: INCOMPLETE below a valid header's end, never OK below a malformed
 * one, and once ERROR, ERROR for every longer prefix and the whole.
 */
static void
expect_parse(const char *name, const uint8_t *b, size_t n, int want, size_t hlen,
             const char *why_part, struct proxyproto_header *h_out)
{
    struct proxyproto_header h;
    size_t consumed = 12345;
    const char *why = NULL;
    const uint8_t *g;
    int st;
    bool seen_err = false;
    size_t top = want == OK ? hlen : n;
    for (size_t k = 0; k < top; k++) {
        const char *w = NULL;
        size_t c = 0;
        g = guarded(b, k);
        st = proxyproto_parse(g, k, &h, &c, &w);
        if (want == OK && st != INC)
            fail_msg("%s: prefix %zu: status %d, want INCOMPLETE (%s)", name, k, st, w ? w : "-");
        if (want != OK && st == OK)
            fail_msg("%s: prefix %zu is OK", name, k);
        if (seen_err && st != ERR)
            fail_msg("%s: prefix %zu: ERROR before, now %d", name, k, st);
        seen_err = seen_err || st == ERR;
    }
    g = guarded(b, n);
    st = proxyproto_parse(g, n, &h, &consumed, &why);
    if (st != want)
        fail_msg("%s: status %d, want %d (%s)", name, st, want, why ? why : "-");
    if (seen_err && st != ERR)
        fail_msg("%s: a prefix was ERROR, the whole is %d", name, st);
    if (want == OK) {
        assert_int_equal(consumed, hlen);
        if (h_out != NULL)
            *h_out = h;
    } else {
        assert_int_equal(consumed, 12345); /* outputs untouched */
    }
    if (want == ERR) {
        assert_non_null(why);
        if (why_part != NULL && strstr(why, why_part) == NULL)
            fail_msg("%s: why '%s' lacks '%s'", name, why, why_part);
    }
}

struct v1_case {
    const char *name;
    const char *text;
    int status;
    const char *src; /* on OK and not local */
    int sport;
    bool local;
    const char *why; /* on ERROR: part of why */
};

#define TAIL "GET / HTTP/1.1\r\n\r\n"
static const struct v1_case v1_cases[] = {
    {"tcp4", "PROXY TCP4 192.0.2.10 198.51.100.1 56324 443\r\n", OK, "192.0.2.10", 56324, false,
     NULL},
    {"tcp4 then data", "PROXY TCP4 192.0.2.10 198.51.100.1 1 443\r\n" TAIL, OK, "192.0.2.10", 1,
     false, NULL},
    {"tcp4 ports 0 65535", "PROXY TCP4 0.0.0.0 255.255.255.255 0 65535\r\n", OK, "0.0.0.0", 0,
     false, NULL},
    {"tcp6", "PROXY TCP6 2001:db8::1 2001:db8::2 4000 443\r\n", OK, "2001:db8::1", 4000, false,
     NULL},
    {"tcp6 mapped", "PROXY TCP6 ::ffff:192.0.2.1 ::1 4000 443\r\n", OK, "::ffff:192.0.2.1", 4000,
     false, NULL},
    {"tcp6 longest",
     "PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff "
     "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n",
     OK, "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 65535, false, NULL},
    {"unknown", "PROXY UNKNOWN\r\n", OK, NULL, 0, true, NULL},
    {"unknown with junk", "PROXY UNKNOWN ffff::1 whatever 1 2\r\n", OK, NULL, 0, true, NULL},
    /* refused at once */
    {"http request", "GET / HTTP/1.1\r\n", ERR, NULL, 0, false, "not a PROXY header"},
    {"lower case", "proxy TCP4 192.0.2.1 192.0.2.2 1 2\r\n", ERR, NULL, 0, false, "not a PROXY"},
    {"P only then G", "PG", ERR, NULL, 0, false, "not a PROXY header"},
    {"no space", "PROXYTCP4", ERR, NULL, 0, false, "not a PROXY header"},
    {"bad proto", "PROXY UDP4 192.0.2.1 192.0.2.2 1 2\r\n", ERR, NULL, 0, false, "protocol"},
    {"bad proto early", "PROXY TCPX", ERR, NULL, 0, false, "protocol"},
    {"tcp4 lower", "PROXY tcp4 192.0.2.1 192.0.2.2 1 2\r\n", ERR, NULL, 0, false, "protocol"},
    {"tcp4 v6 addr", "PROXY TCP4 2001:db8::1 192.0.2.2 1 2\r\n", ERR, NULL, 0, false, "character"},
    {"tcp6 v4 addr", "PROXY TCP6 192.0.2.1 2001:db8::2 1 2\r\n", ERR, NULL, 0, false, "source"},
    {"bad octet", "PROXY TCP4 192.0.2.256 192.0.2.2 1 2\r\n", ERR, NULL, 0, false, "source"},
    {"leading zero octet", "PROXY TCP4 192.0.2.01 192.0.2.2 1 2\r\n", ERR, NULL, 0, false,
     "source"},
    {"bad dst", "PROXY TCP4 192.0.2.1 192.0.2 1 2\r\n", ERR, NULL, 0, false, "destination"},
    {"port too big", "PROXY TCP4 192.0.2.1 192.0.2.2 65536 2\r\n", ERR, NULL, 0, false, "port"},
    {"port leading zero", "PROXY TCP4 192.0.2.1 192.0.2.2 01 2\r\n", ERR, NULL, 0, false, "port"},
    {"port too long", "PROXY TCP4 192.0.2.1 192.0.2.2 123456 2\r\n", ERR, NULL, 0, false, "long"},
    {"two spaces", "PROXY TCP4  192.0.2.1 192.0.2.2 1 2\r\n", ERR, NULL, 0, false, "empty"},
    {"missing port", "PROXY TCP4 192.0.2.1 192.0.2.2 1\r\n", ERR, NULL, 0, false, "space"},
    {"extra field", "PROXY TCP4 192.0.2.1 192.0.2.2 1 2 3\r\n", ERR, NULL, 0, false, "CRLF"},
    {"LF only", "PROXY TCP4 192.0.2.1 192.0.2.2 1 2\n", ERR, NULL, 0, false, "character"},
    {"CR not LF", "PROXY TCP4 192.0.2.1 192.0.2.2 1 2\rX", ERR, NULL, 0, false, "LF"},
    {"tab", "PROXY TCP4\t192.0.2.1 192.0.2.2 1 2\r\n", ERR, NULL, 0, false, "space"},
    {"unknown no space", "PROXY UNKNOWNX\r\n", ERR, NULL, 0, false, "protocol"},
    {"unknown control", "PROXY UNKNOWN \x01\r\n", ERR, NULL, 0, false, "control"},
    {"too long",
     "PROXY UNKNOWN "
     "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
     "\r\n",
     ERR, NULL, 0, false, "107"},
};

static void
test_v1_table(void **state)
{
    for (size_t i = 0; i < sizeof(v1_cases) / sizeof(v1_cases[0]); i++) {
        const struct v1_case *c = &v1_cases[i];
        size_t n = strlen(c->text);
        const char *crlf = strstr(c->text, "\r\n");
        size_t hlen = crlf != NULL ? (size_t)(crlf - c->text) + 2 : 0;
        struct proxyproto_header h;
        memset(&h, 0, sizeof(h));
        expect_parse(c->name, (const uint8_t *)c->text, n, c->status, hlen, c->why, &h);
        if (c->status != OK)
            continue;
        assert_int_equal(h.version, 1);
        assert_int_equal(h.local, c->local);
        if (!c->local)
            src_is(&h, c->src, c->sport);
    }
}

/* 107 bytes exactly, CRLF included, is the longest v1 header. */
static void
test_v1_max(void **state)
{
    char line[PROXYPROTO_V1_MAX + 2];
    memset(line, 'x', sizeof(line));
    memcpy(line, "PROXY UNKNOWN ", 14);
    line[PROXYPROTO_V1_MAX - 2] = '\r';
    line[PROXYPROTO_V1_MAX - 1] = '\n';
    expect_parse("107 bytes", (const uint8_t *)line, PROXYPROTO_V1_MAX, OK, PROXYPROTO_V1_MAX, NULL,
                 NULL);
    line[PROXYPROTO_V1_MAX - 2] = 'x';
    line[PROXYPROTO_V1_MAX - 1] = '\r';
    line[PROXYPROTO_V1_MAX] = '\n';
    expect_parse("108 bytes", (const uint8_t *)line, PROXYPROTO_V1_MAX + 1, ERR, 0, "107", NULL);
}

static void
test_v2_inet_tlvs(void **state)
{
    struct v2 v;
    struct proxyproto_header h;
    v2_start(&v, 0x21, 0x11);
    v2_inet(&v, "192.0.2.7", "198.51.100.9", 40001, 443);
    v2_tlv(&v, PROXYPROTO_TLV_ALPN, "http/1.1", 8);
    v2_tlv(&v, PROXYPROTO_TLV_AUTHORITY, "mail.example.org", 16);
    v2_tlv(&v, PROXYPROTO_TLV_NOOP, "\0\0\0", 3);
    v2_tlv(&v, 0xEA, "\x01vpce-0123", 10); /* custom: skipped */
    v2_tlv(&v, PROXYPROTO_TLV_UNIQUE_ID, "id-42", 5);
    uint8_t ssl[5 + 3 + 7 + 3 + 6] = {PROXYPROTO_CLIENT_SSL | PROXYPROTO_CLIENT_CERT_CONN, 0, 0, 0,
                                      0};
    memcpy(ssl + 5, "\x21\x00\x07TLSv1.3", 10);
    memcpy(ssl + 15,
           "\x22\x00\x06"
           "client",
           9);
    v2_tlv(&v, PROXYPROTO_TLV_SSL, ssl, sizeof(ssl));
    v2_tlv(&v, PROXYPROTO_TLV_CRC32C, "\0\0\0\0", 4);
    size_t n = v2_end(&v);
    memset(&h, 0, sizeof(h));
    expect_parse("v2 inet tlvs", v.b, n, OK, n, NULL, &h);
    assert_int_equal(h.version, 2);
    assert_false(h.local);
    src_is(&h, "192.0.2.7", 40001);
    assert_int_equal(h.ntlvs, 7);
    assert_int_equal(h.alpn.len, 8);
    assert_memory_equal(h.alpn.ptr, "http/1.1", 8);
    assert_int_equal(h.authority.len, 16);
    assert_int_equal(h.unique_id.len, 5);
    assert_true(h.crc_checked);
    assert_true(h.ssl);
    assert_int_equal(h.ssl_client, 3);
    assert_int_equal(h.ssl_verify, 0);
    assert_int_equal(h.ssl_version.len, 7);
    assert_memory_equal(h.ssl_version.ptr, "TLSv1.3", 7);
    assert_int_equal(h.ssl_cn.len, 6);

    /* a flipped bit anywhere but in the CRC field itself breaks the checksum */
    v.b[20] ^= 0x01;
    expect_parse("v2 crc mismatch", v.b, n, ERR, 0, "CRC32C mismatch", NULL);
    v.b[20] ^= 0x01;
    /* the bytes after the header stay the client's */
    memcpy(v.b + n, "\x16\x03\x01", 3);
    expect_parse("v2 then TLS", v.b, n + 3, OK, n, NULL, NULL);
}

static void
test_v2_inet6_local_unspec(void **state)
{
    struct v2 v;
    struct proxyproto_header h;
    v2_start(&v, 0x21, 0x21);
    v2_inet6(&v, "2001:db8::7", "2001:db8::1", 5000, 443);
    v2_tlv(&v, PROXYPROTO_TLV_AUTHORITY, "a", 1);
    size_t n = v2_end(&v);
    memset(&h, 0, sizeof(h));
    expect_parse("v2 inet6", v.b, n, OK, n, NULL, &h);
    src_is(&h, "2001:db8::7", 5000);
    assert_int_equal(h.ntlvs, 1);
    assert_false(h.crc_checked);

    /* LOCAL: the protocol block (even garbage TLVs) is discarded; the socket's address rules */
    v2_start(&v, 0x20, 0x11);
    v2_inet(&v, "192.0.2.1", "192.0.2.2", 1, 2);
    v2_put(&v, "\x01\xff\xff", 3);
    n = v2_end(&v);
    memset(&h, 0, sizeof(h));
    expect_parse("v2 local inet", v.b, n, OK, n, NULL, &h);
    assert_true(h.local);
    assert_int_equal(h.ntlvs, 0);

    v2_start(&v, 0x20, 0x00);
    n = v2_end(&v);
    expect_parse("v2 local empty", v.b, n, OK, 16, NULL, &h);
    assert_true(h.local);

    /* PROXY with UNSPEC: no address either, but TLVs are walked */
    v2_start(&v, 0x21, 0x00);
    v2_tlv(&v, PROXYPROTO_TLV_ALPN, "h2", 2);
    n = v2_end(&v);
    expect_parse("v2 proxy unspec", v.b, n, OK, n, NULL, &h);
    assert_true(h.local);
    assert_int_equal(h.alpn.len, 2);
}

static void
test_v2_malformed(void **state)
{
    struct v2 v;
    size_t n;

    v2_start(&v, 0x11, 0x11); /* version 1 */
    v2_inet(&v, "192.0.2.1", "192.0.2.2", 1, 2);
    expect_parse("v2 bad version", v.b, v2_end(&v), ERR, 0, "version", NULL);
    v2_start(&v, 0x22, 0x11); /* command 2 */
    v2_inet(&v, "192.0.2.1", "192.0.2.2", 1, 2);
    expect_parse("v2 bad command", v.b, v2_end(&v), ERR, 0, "command", NULL);
    v2_start(&v, 0x21, 0x12); /* UDP */
    v2_inet(&v, "192.0.2.1", "192.0.2.2", 1, 2);
    expect_parse("v2 dgram", v.b, v2_end(&v), ERR, 0, "family", NULL);
    v2_start(&v, 0x21, 0x31); /* UNIX */
    expect_parse("v2 unix", v.b, v2_end(&v), ERR, 0, "UNIX", NULL);
    v2_start(&v, 0x21, 0x41);
    expect_parse("v2 family 4", v.b, v2_end(&v), ERR, 0, "family", NULL);
    v2_start(&v, 0x21, 0x11); /* too short for INET */
    v2_put(&v, "\0\0\0\0\0\0\0\0", 8);
    expect_parse("v2 short inet", v.b, v2_end(&v), ERR, 0, "too short", NULL);
    v2_start(&v, 0x21, 0x21);
    v2_inet(&v, "192.0.2.1", "192.0.2.2", 1, 2); /* 12 bytes for INET6 */
    expect_parse("v2 short inet6", v.b, v2_end(&v), ERR, 0, "too short", NULL);

    /* length over the bound: refused on the 16th byte, before anything else arrives */
    v2_start(&v, 0x21, 0x11);
    v.b[14] = 0x08;
    v.b[15] = 0x00; /* 16 + 2048 */
    expect_parse("v2 too long", v.b, 16, ERR, 0, "2048", NULL);

    /* TLV bounds */
    v2_start(&v, 0x21, 0x11);
    v2_inet(&v, "192.0.2.1", "192.0.2.2", 1, 2);
    v2_put(&v, "\x01\x00", 2);
    expect_parse("v2 truncated tlv", v.b, v2_end(&v), ERR, 0, "truncated TLV", NULL);
    v2_start(&v, 0x21, 0x11);
    v2_inet(&v, "192.0.2.1", "192.0.2.2", 1, 2);
    v2_put(&v,
           "\x02\x00\x05"
           "ab",
           5);
    expect_parse("v2 tlv past end", v.b, v2_end(&v), ERR, 0, "runs past", NULL);
    v2_start(&v, 0x21, 0x11);
    v2_inet(&v, "192.0.2.1", "192.0.2.2", 1, 2);
    v2_tlv(&v, PROXYPROTO_TLV_ALPN, "a", 1);
    v2_tlv(&v, PROXYPROTO_TLV_ALPN, "b", 1);
    expect_parse("v2 dup alpn", v.b, v2_end(&v), ERR, 0, "duplicate", NULL);
    v2_start(&v, 0x21, 0x11);
    v2_inet(&v, "192.0.2.1", "192.0.2.2", 1, 2);
    v2_put(&v,
           "\x03\x00\x03"
           "abc",
           6);
    expect_parse("v2 crc size", v.b, v2_end(&v), ERR, 0, "4 bytes", NULL);
    v2_start(&v, 0x21, 0x11);
    v2_inet(&v, "192.0.2.1", "192.0.2.2", 1, 2);
    v2_tlv(&v, PROXYPROTO_TLV_SSL, "\x01\0\0", 3);
    expect_parse("v2 ssl short", v.b, v2_end(&v), ERR, 0, "SSL TLV too short", NULL);
    v2_start(&v, 0x21, 0x11);
    v2_inet(&v, "192.0.2.1", "192.0.2.2", 1, 2);
    v2_tlv(&v, PROXYPROTO_TLV_SSL,
           "\x01\0\0\0\0\x22\x00\x09"
           "cn",
           10);
    expect_parse("v2 ssl sub past", v.b, v2_end(&v), ERR, 0, "sub-TLV runs past", NULL);
    uint8_t big[130];
    memset(big, 'u', sizeof(big));
    v2_start(&v, 0x21, 0x11);
    v2_inet(&v, "192.0.2.1", "192.0.2.2", 1, 2);
    v2_tlv(&v, PROXYPROTO_TLV_UNIQUE_ID, big, 129);
    expect_parse("v2 unique id 129", v.b, v2_end(&v), ERR, 0, "128", NULL);

    /* signature damage is seen on the byte where it happens */
    v2_start(&v, 0x21, 0x11);
    v.b[5] = 'X';
    expect_parse("v2 bad signature", v.b, 6, ERR, 0, "not a PROXY header", NULL);
    n = 1;
    expect_parse("lone CR", (const uint8_t *)"\r", n, INC, 0, NULL, NULL);
    expect_parse("TLS ClientHello", (const uint8_t *)"\x16\x03\x01", 3, ERR, 0, "not a PROXY",
                 NULL);
    expect_parse("empty", (const uint8_t *)"", 0, INC, 0, NULL, NULL);
}

/* The biggest header we accept: exactly PROXYPROTO_V2_MAX bytes. */
static void
test_v2_max(void **state)
{
    struct v2 v;
    static uint8_t pad[PROXYPROTO_V2_MAX];
    v2_start(&v, 0x21, 0x11);
    v2_inet(&v, "192.0.2.1", "192.0.2.2", 1, 2);
    v2_tlv(&v, PROXYPROTO_TLV_NOOP, pad, PROXYPROTO_V2_MAX - 16 - 12 - 3);
    size_t n = v2_end(&v);
    assert_int_equal(n, PROXYPROTO_V2_MAX);
    expect_parse("v2 max", v.b, n, OK, n, NULL, NULL);
}

static void
test_crc32c_known_answer(void **state)
{
    /* The check value of CRC-32C (Castagnoli) for "123456789". */
    assert_int_equal(proxyproto_crc32c(0, (const uint8_t *)"123456789", 9), 0xe3069283u);
    uint32_t part = proxyproto_crc32c(0, (const uint8_t *)"1234", 4);
    assert_int_equal(proxyproto_crc32c(part, (const uint8_t *)"56789", 5), 0xe3069283u);
}

static struct sockaddr_storage
sa_of(const char *ip)
{
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof(ss));
    if (strchr(ip, ':') != NULL) {
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
        in6->sin6_family = AF_INET6;
        inet_pton(AF_INET6, ip, &in6->sin6_addr);
    } else {
        struct sockaddr_in *in = (struct sockaddr_in *)&ss;
        in->sin_family = AF_INET;
        inet_pton(AF_INET, ip, &in->sin_addr);
    }
    return ss;
}

static void
test_addr_allowed(void **state)
{
    struct conf_cidr r[3];
    memset(r, 0, sizeof(r));
    inet_pton(AF_INET, "10.0.0.0", r[0].addr);
    r[0].bits = 24;
    inet_pton(AF_INET, "192.0.2.128", r[1].addr);
    r[1].bits = 25;
    r[2].v6 = true;
    inet_pton(AF_INET6, "2001:db8::", r[2].addr);
    r[2].bits = 32;
    static const struct {
        const char *ip;
        bool ok;
    } t[] = {
        {"10.0.0.1", true},         {"10.0.0.255", true},   {"10.0.1.1", false},
        {"192.0.2.128", true},      {"192.0.2.255", true},  {"192.0.2.127", false},
        {"2001:db8::1", true},      {"2001:db9::1", false}, {"::ffff:10.0.0.9", true},
        {"::ffff:10.0.9.9", false}, {"::1", false},         {"127.0.0.1", false},
    };
    for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
        struct sockaddr_storage ss = sa_of(t[i].ip);
        if (proxyproto_addr_allowed((struct sockaddr *)&ss, r, 3) != t[i].ok)
            fail_msg("%s: want %d", t[i].ip, t[i].ok);
    }
    struct sockaddr_storage ss = sa_of("10.0.0.1");
    assert_false(proxyproto_addr_allowed((struct sockaddr *)&ss, r, 0)); /* empty: refuse all */
    struct conf_cidr any = {.v6 = false, .bits = 0};
    assert_true(proxyproto_addr_allowed((struct sockaddr *)&ss, &any, 1));
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_v1_table),
        cmocka_unit_test(test_v1_max),
        cmocka_unit_test(test_v2_inet_tlvs),
        cmocka_unit_test(test_v2_inet6_local_unspec),
        cmocka_unit_test(test_v2_malformed),
        cmocka_unit_test(test_v2_max),
        cmocka_unit_test(test_crc32c_known_answer),
        cmocka_unit_test(test_addr_allowed),
    };
    return cmocka_run_group_tests(tests, guard_setup, NULL);
}
