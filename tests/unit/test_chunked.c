/*
 * Unit tests for proxy/chunked: the strict chunked-body framer.
 *
 * Every valid case is fed in one piece, cut in two at every point, byte by byte, and ending
 * against a PROT_NONE page; every malformed case must fail with its own reason however it is
 * cut. Feeding follows the framer's protocol: bytes not accepted are presented again at the
 * front of the next call, followed by the next piece.
 */
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

#include "proxy/chunked.h"

/* A string literal with its exact length, NULs included. */
#define BYTES(s) s, sizeof(s) - 1

struct outcome {
    bool error;
    const char *why;
    uint64_t accepted; /* bytes accepted over all calls */
    bool done;
    uint64_t payload;
};

/*
 * Feeds text[0..len) in pieces of the given lengths (summing to len). Each call sees the bytes
 * left unaccepted by the previous one followed by the next piece, in a heap block of exactly
 * that size so a sanitizer build catches a read past the end.
 */
static struct outcome
feed_pieces(const struct chunked_limits *lim, const char *text, size_t len, const size_t *pieces,
            size_t npieces)
{
    struct chunked c;
    struct outcome o = {0};
    char *pending = NULL;
    size_t npend = 0, off = 0;

    chunked_init(&c, lim);
    for (size_t i = 0; i < npieces; i++) {
        size_t total = npend + pieces[i];
        char *buf = malloc(total ? total : 1);
        assert_non_null(buf);
        if (npend > 0)
            memcpy(buf, pending, npend);
        memcpy(buf + npend, text + off, pieces[i]);
        off += pieces[i];
        free(pending);
        pending = NULL;

        ssize_t n = chunked_feed(&c, buf, total);
        if (n == CHUNKED_ERROR) {
            free(buf);
            o.error = true;
            o.why = c.why;
            assert_non_null(o.why);
            return o;
        }
        assert_true(n >= 0 && (size_t)n <= total);
        o.accepted += (uint64_t)n;
        npend = total - (size_t)n;
        pending = malloc(npend ? npend : 1);
        assert_non_null(pending);
        memcpy(pending, buf + n, npend);
        free(buf);
    }
    assert_int_equal(off, len);
    free(pending);
    o.done = c.done;
    o.payload = c.payload;
    assert_null(c.why);
    return o;
}

static struct outcome
feed_whole(const struct chunked_limits *lim, const char *text, size_t len)
{
    size_t one = len;
    return feed_pieces(lim, text, len, &one, 1);
}

static struct outcome
feed_split(const struct chunked_limits *lim, const char *text, size_t len, size_t cut)
{
    size_t two[2] = {cut, len - cut};
    return feed_pieces(lim, text, len, two, 2);
}

static struct outcome
feed_bytewise(const struct chunked_limits *lim, const char *text, size_t len)
{
    size_t *ones = malloc((len ? len : 1) * sizeof(*ones));
    assert_non_null(ones);
    for (size_t i = 0; i < len; i++)
        ones[i] = 1;
    struct outcome o = feed_pieces(lim, text, len, ones, len);
    free(ones);
    return o;
}

static void
expect_same(const char *name, const char *how, struct outcome want, struct outcome got)
{
    /* after an error only the reason counts: how much went before depends on the cuts */
    bool same = want.error == got.error &&
                (want.error ? strcmp(want.why, got.why) == 0
                            : want.accepted == got.accepted && want.done == got.done &&
                                  want.payload == got.payload);
    if (!same)
        fail_msg("case '%s' %s: error %d/%d why '%s'/'%s' accepted %llu/%llu done %d/%d "
                 "payload %llu/%llu",
                 name, how, want.error, got.error, want.why ? want.why : "-",
                 got.why ? got.why : "-", (unsigned long long)want.accepted,
                 (unsigned long long)got.accepted, want.done, got.done,
                 (unsigned long long)want.payload, (unsigned long long)got.payload);
}

/* The outcome must not depend on how the input is cut. */
static void
expect_any_cut(const char *name, const struct chunked_limits *lim, const char *text, size_t len,
               struct outcome want)
{
    char how[64];
    for (size_t cut = 0; cut <= len; cut++) {
        snprintf(how, sizeof(how), "cut at %zu", cut);
        expect_same(name, how, want, feed_split(lim, text, len, cut));
    }
    expect_same(name, "byte by byte", want, feed_bytewise(lim, text, len));
}

struct valid_case {
    const char *name;
    const char *text;
    size_t len;
    uint64_t payload;
    size_t unaccepted; /* bytes at the end that must be left: after the message, or incomplete */
    bool done;
};

static const struct valid_case valid_cases[] = {
    {"last chunk only", BYTES("0\r\n\r\n"), 0, 0, true},
    {"one chunk", BYTES("5\r\nhello\r\n0\r\n\r\n"), 5, 0, true},
    {"next request left", BYTES("5\r\nhello\r\n0\r\n\r\nGET / HTTP/1.1\r\n"), 5, 16, true},
    {"extra CRLF left", BYTES("1\r\nx\r\n0\r\n\r\n\r\n"), 1, 2, true},
    {"hex both cases", BYTES("A\r\n0123456789\r\na\r\n0123456789\r\n0\r\n\r\n"), 20, 0, true},
    {"hex letters", BYTES("1F\r\n0123456789012345678901234567890\r\n0\r\n\r\n"), 31, 0, true},
    {"BWS before ;", BYTES("5 ;a=b\r\nhello\r\n0\r\n\r\n"), 5, 0, true},
    {"tab BWS", BYTES("5\t;\ta\t=\tb\r\nhello\r\n0\r\n\r\n"), 5, 0, true},
    {"quoted ext", BYTES("5;a=\"x y\"\r\nhello\r\n0\r\n\r\n"), 5, 0, true},
    {"quoted pair", BYTES("5;a=\"q\\\"z\\\\\"\r\nhello\r\n0\r\n\r\n"), 5, 0, true},
    {"empty quoted", BYTES("5;a=\"\"\r\nhello\r\n0\r\n\r\n"), 5, 0, true},
    {"several ext", BYTES("5;a;b=c ; d = e;f=\"g\"\r\nhello\r\n0\r\n\r\n"), 5, 0, true},
    {"name only ext", BYTES("5;ignored\r\nhello\r\n0\r\n\r\n"), 5, 0, true},
    {"last chunk zeros ext", BYTES("3\r\nabc\r\n000;x=y\r\n\r\n"), 3, 0, true},
    {"16 digits leading zeros", BYTES("0000000000000003\r\nabc\r\n0\r\n\r\n"), 3, 0, true},
    {"data with CRLF and NUL", BYTES("4\r\n\r\n\0\n\r\n0\r\n\r\n"), 4, 0, true},
    {"data all bytes", BYTES("3\r\n\xff\x7f\r\r\n0\r\n\r\n"), 3, 0, true},
    {"trailers", BYTES("5\r\nhello\r\n0\r\nX-Trace: abc\r\nChecksum:\tsha \t\r\n\r\n"), 5, 0, true},
    {"trailer empty value", BYTES("0\r\nX-A:\r\n\r\n"), 0, 0, true},
    {"trailer obs-text value", BYTES("0\r\nX-A: \xc3\xa9\r\n\r\n"), 0, 0, true},
    {"trailer name like forbidden", BYTES("0\r\nContent-Lengthy: 1\r\nXHost: a\r\n\r\n"), 0, 0,
     true},
    {"trailer then more", BYTES("0\r\nA: b\r\n\r\nHTTP/1.1 200 OK\r\n"), 0, 17, true},
    {"max size incomplete", BYTES("7fffffffffffffff\r\nabc"), 3, 0, false},
    {"empty", BYTES(""), 0, 0, false},
    {"size line incomplete", BYTES("5;a=b"), 0, 5, false},
    {"size CR incomplete", BYTES("5\r"), 0, 2, false},
    {"data incomplete", BYTES("5\r\nhel"), 3, 0, false},
    {"CR after data held", BYTES("5\r\nhello\r"), 5, 1, false},
    {"trailer incomplete", BYTES("5\r\nhello\r\n0\r\nX-A: b"), 5, 6, false},
    {"trailer CR held", BYTES("0\r\nX-A: b\r"), 0, 7, false},
    {"final CR held", BYTES("0\r\nX-A: b\r\n\r"), 0, 1, false},
};

static struct outcome
valid_want(const struct valid_case *v)
{
    struct outcome o = {
        .error = false, .accepted = v->len - v->unaccepted, .done = v->done, .payload = v->payload};
    return o;
}

static void
test_valid_whole(void **state)
{
    for (size_t i = 0; i < sizeof(valid_cases) / sizeof(valid_cases[0]); i++) {
        const struct valid_case *v = &valid_cases[i];
        expect_same(v->name, "whole", valid_want(v), feed_whole(NULL, v->text, v->len));
    }
}

static void
test_valid_every_cut(void **state)
{
    for (size_t i = 0; i < sizeof(valid_cases) / sizeof(valid_cases[0]); i++) {
        const struct valid_case *v = &valid_cases[i];
        expect_any_cut(v->name, NULL, v->text, v->len, valid_want(v));
    }
}

struct bad_case {
    const char *name;
    const char *text;
    size_t len;
    const char *why;
};

static const struct bad_case bad_cases[] = {
    /* chunk-size */
    {"space inside size line", BYTES("5 garbage\r\nhello\r\n0\r\n\r\n"), "chunk extension syntax"},
    {"leading space", BYTES(" 5\r\nhello\r\n"), "bad chunk size"},
    {"leading tab", BYTES("\t5\r\nhello\r\n"), "bad chunk size"},
    {"plus sign", BYTES("+5\r\nhello\r\n"), "bad chunk size"},
    {"minus sign", BYTES("-1\r\nh\r\n"), "bad chunk size"},
    {"0x prefix", BYTES("0x5\r\nhello\r\n"), "bad chunk size"},
    {"non-hex letter", BYTES("5g\r\nhello\r\n"), "bad chunk size"},
    {"empty size", BYTES("\r\n"), "bad chunk size"},
    {"empty size line after data", BYTES("5\r\nhello\r\n\r\n"), "bad chunk size"},
    {"NUL after size", BYTES("5\0\r\nhello\r\n"), "bad chunk size"},
    {"17 digits", BYTES("10000000000000000\r\n"), "chunk size has more than 16 digits"},
    {"17 zeros", BYTES("00000000000000000\r\n\r\n"), "chunk size has more than 16 digits"},
    {"above INT64_MAX", BYTES("8000000000000000\r\n"), "chunk size overflow"},
    {"all f", BYTES("ffffffffffffffff\r\n"), "chunk size overflow"},
    /* line ends */
    {"CR then X", BYTES("5\rX"), "CR without LF in chunk line"},
    {"CR CR LF", BYTES("5\r\r\nhello\r\n"), "CR without LF in chunk line"},
    {"bare LF after size", BYTES("5\nhello\r\n0\r\n\r\n"), "bare LF in chunk line"},
    {"bare LF in extension", BYTES("40;\n"), "bare LF in chunk line"},
    {"bare LF after ext value", BYTES("5;a=b\nhello\r\n"), "bare LF in chunk line"},
    {"bare LF last chunk", BYTES("0\n\r\n"), "bare LF in chunk line"},
    /* chunk-ext */
    {"token value then junk", BYTES("5;a=b c\r\nhello\r\n"), "chunk extension syntax"},
    {"trailing BWS", BYTES("5 \r\nhello\r\n"), "chunk extension syntax"},
    {"BWS after value", BYTES("5;a=b \r\nhello\r\n"), "chunk extension syntax"},
    {"empty ext", BYTES("5;\r\nhello\r\n"), "chunk extension syntax"},
    {"ext without name", BYTES("5;=b\r\nhello\r\n"), "chunk extension syntax"},
    {"ext without value", BYTES("5;a=\r\nhello\r\n"), "chunk extension syntax"},
    {"bad ext name", BYTES("5;a@b\r\nhello\r\n"), "chunk extension syntax"},
    {"bad ext value", BYTES("5;a=b@c\r\nhello\r\n"), "chunk extension syntax"},
    {"two values", BYTES("5;a=b=c\r\nhello\r\n"), "chunk extension syntax"},
    {"junk after quote", BYTES("5;a=\"x\"y\r\nhello\r\n"), "chunk extension syntax"},
    {"comma separator", BYTES("5;a,b\r\nhello\r\n"), "chunk extension syntax"},
    {"unterminated quote", BYTES("5;a=\"x\r\nhello\r\n"),
     "control or non-ASCII byte in chunk extension"},
    {"obs-text in quote", BYTES("5;a=\"\xff\"\r\nhello\r\n"),
     "control or non-ASCII byte in chunk extension"},
    {"control in quote", BYTES("5;a=\"\x01\"\r\nhello\r\n"),
     "control or non-ASCII byte in chunk extension"},
    {"DEL in quote", BYTES("5;a=\"\x7f\"\r\nhello\r\n"),
     "control or non-ASCII byte in chunk extension"},
    {"NUL in quote", BYTES("5;a=\"\0\"\r\nhello\r\n"),
     "control or non-ASCII byte in chunk extension"},
    {"obs-text quoted pair", BYTES("5;a=\"\\\x80\"\r\nhello\r\n"),
     "control or non-ASCII byte in chunk extension"},
    {"obs-text in token", BYTES("5;a=\x80\r\nhello\r\n"), "chunk extension syntax"},
    /* after chunk data */
    {"no CRLF after data", BYTES("5\r\nhelloX\r\n0\r\n\r\n"), "CRLF missing after chunk data"},
    {"bare LF after data", BYTES("5\r\nhello\n0\r\n\r\n"), "bare LF after chunk data"},
    {"CR X after data", BYTES("5\r\nhello\rX"), "CRLF missing after chunk data"},
    {"CR CR after data", BYTES("5\r\nhello\r\r\n"), "CRLF missing after chunk data"},
    {"data longer than size", BYTES("3\r\nhello\r\n0\r\n\r\n"), "CRLF missing after chunk data"},
    /* trailer section */
    {"bare LF final line", BYTES("0\r\n\n"), "bare LF in trailer"},
    {"CR X final line", BYTES("0\r\n\rX"), "CR without LF in trailer"},
    {"bare LF trailer line", BYTES("0\r\nX-A: b\n\r\n"), "bare LF in trailer"},
    {"bare CR in trailer value", BYTES("0\r\nX-A: b\rc\r\n\r\n"), "CR without LF in trailer"},
    {"obs-fold space", BYTES("0\r\n X-A: b\r\n\r\n"), "obs-fold in trailer"},
    {"obs-fold tab", BYTES("0\r\nX-A: b\r\n\tc\r\n\r\n"), "obs-fold in trailer"},
    {"empty trailer name", BYTES("0\r\n: b\r\n\r\n"), "empty trailer field name"},
    {"space before colon", BYTES("0\r\nX-A : b\r\n\r\n"), "whitespace before colon in trailer"},
    {"no colon", BYTES("0\r\nX-A\r\n\r\n"), "trailer line without colon"},
    {"bad name byte", BYTES("0\r\nX(A: b\r\n\r\n"), "bad byte in trailer field name"},
    {"obs-text in name", BYTES("0\r\nX\xc3\xa9: b\r\n\r\n"), "bad byte in trailer field name"},
    {"NUL in value", BYTES("0\r\nX-A: a\0b\r\n\r\n"), "control byte in trailer value"},
    {"DEL in value", BYTES("0\r\nX-A: a\x7f\r\n\r\n"), "control byte in trailer value"},
    {"control in value", BYTES("0\r\nX-A: a\x01\r\n\r\n"), "control byte in trailer value"},
    {"ESC in value", BYTES("0\r\nX-A: \x1b[1m\r\n\r\n"), "control byte in trailer value"},
    {"Content-Length trailer", BYTES("0\r\nContent-Length: 5\r\n\r\n"), "forbidden trailer field"},
    {"TE trailer lower", BYTES("0\r\ntransfer-encoding: chunked\r\n\r\n"),
     "forbidden trailer field"},
    {"Host trailer upper", BYTES("0\r\nHOST: evil\r\n\r\n"), "forbidden trailer field"},
    {"forbidden after good", BYTES("0\r\nX-A: 1\r\nAuthorization: NTLM x\r\n\r\n"),
     "forbidden trailer field"},
};

static void
test_malformed(void **state)
{
    for (size_t i = 0; i < sizeof(bad_cases) / sizeof(bad_cases[0]); i++) {
        const struct bad_case *b = &bad_cases[i];
        struct outcome want = {.error = true, .why = b->why};
        expect_same(b->name, "whole", want, feed_whole(NULL, b->text, b->len));
        expect_any_cut(b->name, NULL, b->text, b->len, want);
    }
}

/* Every refused trailer name, in three spellings, is refused; a longer name is not. */
static void
test_forbidden_trailer_names(void **state)
{
    static const char *const names[] = {
        "Content-Length",
        "Transfer-Encoding",
        "Trailer",
        "Content-Encoding",
        "Content-Type",
        "Content-Range",
        "Host",
        "Connection",
        "Keep-Alive",
        "Proxy-Connection",
        "TE",
        "Upgrade",
        "Expect",
        "Authorization",
        "Proxy-Authorization",
        "WWW-Authenticate",
        "Proxy-Authenticate",
        "Cookie",
        "Set-Cookie",
        "Forwarded",
        "X-Forwarded-For",
        "X-Forwarded-Host",
        "X-Forwarded-Proto",
        "X-BEResource",
        "X-AnonResource-Backend",
        "X-AnonResource",
    };
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        for (int spelling = 0; spelling < 4; spelling++) {
            char name[64], msg[128];
            size_t n = strlen(names[i]);
            assert_true(n + 2 < sizeof(name));
            for (size_t k = 0; k < n; k++) {
                char ch = names[i][k];
                if (spelling == 1 && ch >= 'A' && ch <= 'Z')
                    ch = (char)(ch - 'A' + 'a');
                if (spelling == 2 && ch >= 'a' && ch <= 'z')
                    ch = (char)(ch - 'a' + 'A');
                name[k] = ch;
            }
            if (spelling == 3)
                name[n++] = 'x'; /* not the same field any more */
            name[n] = '\0';
            int len = snprintf(msg, sizeof(msg), "0\r\n%s: v\r\n\r\n", name);
            struct outcome o = feed_whole(NULL, msg, (size_t)len);
            if (spelling == 3) {
                if (o.error || !o.done)
                    fail_msg("trailer '%s' refused: %s", name, o.why ? o.why : "not done");
            } else if (!o.error || strcmp(o.why, "forbidden trailer field") != 0) {
                fail_msg("trailer '%s' not refused", name);
            }
        }
    }
}

/* Every prefix of text ends against the PROT_NONE page at map+pg: a read past the end faults. */
static void
guard_check(char *map, size_t pg, const char *text, size_t len)
{
    assert_true(len <= pg);
    for (size_t plen = 0; plen <= len; plen++) {
        char *p = map + pg - plen;
        memcpy(p, text, plen);
        struct chunked c;
        chunked_init(&c, NULL);
        ssize_t n = chunked_feed(&c, p, plen);
        struct outcome ref = feed_bytewise(NULL, text, plen);
        if (ref.error) {
            assert_int_equal(n, CHUNKED_ERROR);
            assert_string_equal(c.why, ref.why);
        } else {
            assert_true(n >= 0 && (uint64_t)n == ref.accepted);
            assert_int_equal(c.done, ref.done);
            assert_true(c.payload == ref.payload);
        }
    }
}

static void
test_guard_page(void **state)
{
    size_t pg = (size_t)sysconf(_SC_PAGESIZE);
    char *map = mmap(NULL, pg * 2, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    assert_true(map != MAP_FAILED);
    assert_int_equal(mprotect(map + pg, pg, PROT_NONE), 0);
    for (size_t i = 0; i < sizeof(valid_cases) / sizeof(valid_cases[0]); i++)
        guard_check(map, pg, valid_cases[i].text, valid_cases[i].len);
    for (size_t i = 0; i < sizeof(bad_cases) / sizeof(bad_cases[0]); i++)
        guard_check(map, pg, bad_cases[i].text, bad_cases[i].len);
    munmap(map, pg * 2);
}

static void
test_line_limit(void **state)
{
    struct chunked_limits lim = {.max_line = 8};
    struct chunked c;

    /* exactly 8 bytes with the CRLF is allowed */
    struct outcome ok = feed_whole(&lim, BYTES("1;a=bc\r\nx\r\n0\r\n\r\n"));
    assert_false(ok.error);
    assert_true(ok.done);
    struct outcome want = {.error = true, .why = "chunk line too long"};
    expect_any_cut("9-byte line", &lim, BYTES("1;a=bcd\r\nx\r\n0\r\n\r\n"), want);

    /* refused before the LF arrives, once 8 bytes cannot end the line */
    chunked_init(&c, &lim);
    assert_int_equal(chunked_need_contiguous(&c), 8);
    assert_int_equal(chunked_feed(&c, "1;a=bcd", 7), 0);
    assert_int_equal(chunked_feed(&c, "1;a=bcd\r", 8), CHUNKED_ERROR);
    assert_string_equal(c.why, "chunk line too long");

    /* a long extension under the default limit of 4096 */
    char line[5000];
    memset(line, 'a', sizeof(line));
    memcpy(line, "1;", 2);
    chunked_init(&c, NULL);
    assert_int_equal(chunked_need_contiguous(&c), CHUNKED_DEFAULT_MAX_LINE);
    line[4094] = '\r';
    line[4095] = '\n';
    assert_int_equal(chunked_feed(&c, line, 4096), 4096);
    chunked_init(&c, NULL);
    line[4094] = 'a';
    assert_int_equal(chunked_feed(&c, line, 4095), 0);
    assert_int_equal(chunked_feed(&c, line, 4096), CHUNKED_ERROR);
    assert_string_equal(c.why, "chunk line too long");
}

static void
test_trailer_limits(void **state)
{
    struct chunked_limits lim = {.max_trailer_bytes = 10, .max_trailers = 3};
    struct chunked c;
    struct outcome too_big = {.error = true, .why = "trailer section too large"};
    struct outcome too_many = {.error = true, .why = "too many trailer fields"};

    struct outcome o = feed_whole(&lim, BYTES("0\r\nX-A: 123\r\n\r\n"));
    assert_false(o.error);
    assert_true(o.done);
    expect_any_cut("one line over", &lim, BYTES("0\r\nX-A: 1234\r\n\r\n"), too_big);
    o = feed_whole(&lim, BYTES("0\r\nA:1\r\nB:2\r\n\r\n"));
    assert_true(o.done);
    expect_any_cut("third line over", &lim, BYTES("0\r\nA:1\r\nB:2\r\nC:\r\n\r\n"), too_big);

    /* what is left of the budget is what must be presented at once */
    chunked_init(&c, &lim);
    assert_int_equal(chunked_feed(&c, "0\r\nA:1\r\n", 8), 8);
    assert_int_equal(chunked_need_contiguous(&c), 5);
    assert_int_equal(chunked_feed(&c, "B:2\r\n", 5), 5);
    assert_int_equal(chunked_need_contiguous(&c), 2);
    assert_int_equal(chunked_feed(&c, "\r\n", 2), 2);
    assert_true(c.done);
    assert_int_equal(chunked_need_contiguous(&c), 0);

    struct chunked_limits lim3 = {.max_trailers = 3};
    o = feed_whole(&lim3, BYTES("0\r\nA:\r\nB:\r\nC:\r\n\r\n"));
    assert_true(o.done);
    expect_any_cut("fourth field", &lim3, BYTES("0\r\nA:\r\nB:\r\nC:\r\nD:\r\n\r\n"), too_many);

    /* the default count limit: 64 fields pass, 65 do not */
    char buf[1024];
    for (int extra = 0; extra < 2; extra++) {
        size_t n = (size_t)snprintf(buf, sizeof(buf), "0\r\n");
        for (int i = 0; i < 64 + extra; i++)
            n += (size_t)snprintf(buf + n, sizeof(buf) - n, "T%d: v\r\n", i);
        n += (size_t)snprintf(buf + n, sizeof(buf) - n, "\r\n");
        o = feed_whole(NULL, buf, n);
        if (extra == 0) {
            assert_true(o.done);
        } else {
            assert_true(o.error);
            assert_string_equal(o.why, "too many trailer fields");
        }
    }
}

/* A 1 GiB chunk: some data presented, most of it skipped (as if spliced), the rest presented. */
static void
test_skip_large_chunk(void **state)
{
    const uint64_t gib = 1ULL << 30;
    char data[256];
    struct chunked c;

    memset(data, 'd', sizeof(data));
    chunked_init(&c, NULL);
    assert_int_equal(chunked_data_left(&c), 0);
    assert_int_equal(chunked_feed(&c, "40000000\r\n", 10), 10);
    assert_true(chunked_data_left(&c) == gib);
    assert_int_equal(chunked_need_contiguous(&c), 1);
    assert_int_equal(chunked_feed(&c, data, 100), 100);
    assert_true(chunked_data_left(&c) == gib - 100);
    chunked_skip_data(&c, gib - 200);
    assert_true(chunked_data_left(&c) == 100);
    assert_true(c.payload == gib - 100);
    /* data beyond the chunk's end is framing, and here wrong framing */
    struct chunked bad = c;
    assert_int_equal(chunked_feed(&bad, data, 101), CHUNKED_ERROR);
    assert_string_equal(bad.why, "CRLF missing after chunk data");

    char tail[100 + 7];
    memcpy(tail, data, 100);
    memcpy(tail + 100, "\r\n0\r\n\r\n", 7);
    assert_int_equal(chunked_feed(&c, tail, sizeof(tail)), sizeof(tail));
    assert_true(c.done);
    assert_true(c.payload == gib);
    assert_int_equal(chunked_data_left(&c), 0);

    /* skipping to the exact end leaves the CRLF to be presented */
    chunked_init(&c, NULL);
    assert_int_equal(chunked_feed(&c, "3\r\n", 3), 3);
    chunked_skip_data(&c, 3);
    assert_int_equal(chunked_data_left(&c), 0);
    assert_int_equal(chunked_need_contiguous(&c), 2);
    assert_int_equal(chunked_feed(&c, "\r", 1), 0);
    assert_int_equal(chunked_feed(&c, "\r\n0\r\n\r\n", 7), 7);
    assert_true(c.done);
    assert_true(c.payload == 3);
}

/* After the end nothing is accepted; after an error every call fails, with the first reason. */
static void
test_terminal_states(void **state)
{
    struct chunked c;

    chunked_init(&c, NULL);
    assert_int_equal(chunked_feed(&c, "0\r\n\r\n", 5), 5);
    assert_true(c.done);
    assert_int_equal(chunked_feed(&c, "5\r\nhello\r\n", 10), 0);
    assert_int_equal(chunked_feed(&c, NULL, 0), 0);
    assert_true(c.done);

    chunked_init(&c, NULL);
    assert_int_equal(chunked_feed(&c, "5\r\nhelloXX", 10), CHUNKED_ERROR);
    const char *why = c.why;
    assert_non_null(why);
    assert_int_equal(chunked_feed(&c, "0\r\n\r\n", 5), CHUNKED_ERROR);
    assert_ptr_equal(c.why, why);
    assert_false(c.done);
    assert_int_equal(chunked_need_contiguous(&c), 0);
    assert_int_equal(chunked_data_left(&c), 0);

    /* a nil limits field means its default */
    struct chunked_limits zero = {0};
    chunked_init(&c, &zero);
    assert_int_equal(chunked_need_contiguous(&c), CHUNKED_DEFAULT_MAX_LINE);
}

/* Payload and acceptance counts across many chunks fed in odd-sized pieces. */
static void
test_many_chunks_pieces(void **state)
{
    char buf[8192];
    size_t n = 0;
    uint64_t payload = 0;
    for (int i = 1; i <= 40; i++) {
        n += (size_t)snprintf(buf + n, sizeof(buf) - n, "%x;i=%d\r\n", i * 3, i);
        for (int k = 0; k < i * 3; k++)
            buf[n++] = (char)('a' + k % 26);
        buf[n++] = '\r';
        buf[n++] = '\n';
        payload += (uint64_t)i * 3;
    }
    n += (size_t)snprintf(buf + n, sizeof(buf) - n, "0\r\nX-Sum: 1\r\n\r\n");
    struct outcome want = {.accepted = n, .done = true, .payload = payload};
    expect_same("40 chunks", "whole", want, feed_whole(NULL, buf, n));
    size_t pieces[512], np = 0, left = n;
    for (size_t k = 0; left > 0; k++) {
        size_t step = 1 + (k * 7) % 13;
        if (step > left)
            step = left;
        pieces[np++] = step;
        left -= step;
    }
    expect_same("40 chunks", "pieces of 1..13", want, feed_pieces(NULL, buf, n, pieces, np));
    expect_any_cut("40 chunks", NULL, buf, n, want);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid_whole),     cmocka_unit_test(test_valid_every_cut),
        cmocka_unit_test(test_malformed),       cmocka_unit_test(test_forbidden_trailer_names),
        cmocka_unit_test(test_guard_page),      cmocka_unit_test(test_line_limit),
        cmocka_unit_test(test_trailer_limits),  cmocka_unit_test(test_skip_large_chunk),
        cmocka_unit_test(test_terminal_states), cmocka_unit_test(test_many_chunks_pieces),
    };
    return cmocka_run_group_tests_name("chunked", tests, NULL, NULL);
}
