/*
 * Unit tests for proxy/target.c: the request-target table under both policies (every input
 * placed against a PROT_NONE page, output buffer too), every prefix, idempotence, Host syntax
 * and Host agreement with absolute-form.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cmocka.h>

#include "proxy/target.h"

#define S TARGET_STRICT
#define N TARGET_NORMALIZE
#define OK 0
#define ERR (-1)
#define NOQ NULL /* no '?' in the target */

struct target_case {
    const char *name;
    const char *raw;
    enum target_policy pol;
    int rc;
    const char *path;  /* on OK */
    const char *query; /* on OK: NULL = no query */
    const char *why;   /* on ERR: a substring of *why_out */
    int changed;       /* on OK: expected t.changed */
};

/* The why texts, shared so a row says which rule refused it. */
#define W_DOTSEG "dot-segment"
#define W_EDOT "encoded dot"
#define W_ESLASH "encoded slash"
#define W_EBSL "encoded backslash"
#define W_BSL "backslash in path"
#define W_EMPTY "empty segment"
#define W_CTL "encoded NUL or control"
#define W_MAL "malformed percent-escape"
#define W_FRAG "fragment"
#define W_NOSLASH "does not start with '/'"
#define W_DOUBLE "double-encoded"
#define W_ROOT "climbs above the root"
#define W_UTF8 "UTF-8"
#define W_RAWCTL "control, space or non-ASCII"

static const struct target_case cases[] = {
    /* the routing bypasses from the bug report */
    {"plain ecp", "/ecp/default.aspx", S, OK, "/ecp/default.aspx", NOQ, NULL, 0},
    {"plain ecp", "/ecp/default.aspx", N, OK, "/ecp/default.aspx", NOQ, NULL, 0},
    {"owa/../ecp", "/owa/../ecp/default.aspx", S, ERR, NULL, NOQ, W_DOTSEG, 0},
    {"owa/../ecp", "/owa/../ecp/default.aspx", N, OK, "/ecp/default.aspx", NOQ, NULL, 1},
    {"owa/%2e%2e/ecp", "/owa/%2e%2e/ecp/", S, ERR, NULL, NOQ, W_EDOT, 0},
    {"owa/%2e%2e/ecp", "/owa/%2e%2e/ecp/", N, OK, "/ecp/", NOQ, NULL, 1},
    {"owa/%2E%2E/ecp", "/owa/%2E%2E/ecp", S, ERR, NULL, NOQ, W_EDOT, 0},
    {"owa/%2E%2E/ecp", "/owa/%2E%2E/ecp", N, OK, "/ecp", NOQ, NULL, 1},
    {"owa/..%5cecp", "/owa/..%5cecp/", S, ERR, NULL, NOQ, W_EBSL, 0},
    {"owa/..%5cecp", "/owa/..%5cecp/", N, OK, "/ecp/", NOQ, NULL, 1},
    {"owa/..%5Cecp", "/owa/..%5Cecp/", S, ERR, NULL, NOQ, W_EBSL, 0},
    {"owa/..%5Cecp", "/owa/..%5Cecp/", N, OK, "/ecp/", NOQ, NULL, 1},
    {"mapi/../rpc", "/mapi/../rpc/", S, ERR, NULL, NOQ, W_DOTSEG, 0},
    {"mapi/../rpc", "/mapi/../rpc/", N, OK, "/rpc/", NOQ, NULL, 1},
    {"abs empty path", "http://h?/mapi/x", S, OK, "/", "/mapi/x", NULL, 1},
    {"abs empty path", "http://h?/mapi/x", N, OK, "/", "/mapi/x", NULL, 1},

    /* backslashes */
    {"literal backslash", "/owa\\..\\ecp", S, ERR, NULL, NOQ, W_BSL, 0},
    {"literal backslash", "/owa\\..\\ecp", N, OK, "/ecp", NOQ, NULL, 1},
    {"backslash inside", "/a\\b", N, OK, "/a/b", NOQ, NULL, 1},

    /* encoded slash: refused by both */
    {"%2F", "/owa/%2F../ecp", S, ERR, NULL, NOQ, W_ESLASH, 0},
    {"%2F", "/owa/%2F../ecp", N, ERR, NULL, NOQ, W_ESLASH, 0},
    {"%2f", "/a%2fb", S, ERR, NULL, NOQ, W_ESLASH, 0},
    {"%2f", "/a%2fb", N, ERR, NULL, NOQ, W_ESLASH, 0},
    {"..%2f", "/a/..%2f", N, ERR, NULL, NOQ, W_ESLASH, 0},

    /* encoded dot anywhere */
    {"%2e in name", "/a%2eb", S, ERR, NULL, NOQ, W_EDOT, 0},
    {"%2e in name", "/a%2eb", N, OK, "/a.b", NOQ, NULL, 1},
    {"trailing %2e", "/owa/%2e", S, ERR, NULL, NOQ, W_EDOT, 0},
    {"trailing %2e", "/owa/%2e", N, OK, "/owa/", NOQ, NULL, 1},
    {".%2e", "/a/.%2e/", N, OK, "/", NOQ, NULL, 1},

    /* dot segments */
    {"/./", "/a/./b", S, ERR, NULL, NOQ, W_DOTSEG, 0},
    {"/./", "/a/./b", N, OK, "/a/b", NOQ, NULL, 1},
    {"trailing /.", "/a/.", S, ERR, NULL, NOQ, W_DOTSEG, 0},
    {"trailing /.", "/a/.", N, OK, "/a/", NOQ, NULL, 1},
    {"trailing /..", "/a/..", S, ERR, NULL, NOQ, W_DOTSEG, 0},
    {"trailing /..", "/a/..", N, OK, "/", NOQ, NULL, 1},
    {"/b/c/../../d", "/a/b/c/../../d", N, OK, "/a/d", NOQ, NULL, 1},
    {"/. at root", "/.", S, ERR, NULL, NOQ, W_DOTSEG, 0},
    {"/. at root", "/.", N, OK, "/", NOQ, NULL, 1},
    {"/.. at root", "/..", S, ERR, NULL, NOQ, W_DOTSEG, 0},
    {"/.. at root", "/..", N, ERR, NULL, NOQ, W_ROOT, 0},
    {"/../x", "/../x", S, ERR, NULL, NOQ, W_DOTSEG, 0},
    {"/../x", "/../x", N, ERR, NULL, NOQ, W_ROOT, 0},
    {"climb after one", "/a/../../x", N, ERR, NULL, NOQ, W_ROOT, 0},
    {"climb encoded", "/%2e%2e/x", N, ERR, NULL, NOQ, W_ROOT, 0},
    {"climb via %5c", "/%5c..%5c/ecp", N, ERR, NULL, NOQ, W_ROOT, 0},
    /* Windows trims "..." to nothing: not a name exshim can route safely */
    {"three dots", "/owa/.../x", S, ERR, NULL, NOQ, "ending in a dot", 0},
    {"three dots", "/owa/.../x", N, ERR, NULL, NOQ, "ending in a dot", 0},
    {"dotted names", "/a.b/.b/..c", S, OK, "/a.b/.b/..c", NOQ, NULL, 0},
    {"trailing dot", "/ecp./default.aspx", S, ERR, NULL, NOQ, "ending in a dot", 0},
    {"trailing dot normalize", "/ecp./x", N, ERR, NULL, NOQ, "ending in a dot", 0},
    {"trailing dot last", "/owa/x.", S, ERR, NULL, NOQ, "ending in a dot", 0},
    {"trailing space", "/ecp%20/x", S, ERR, NULL, NOQ, "ending in a dot", 0},
    {"trailing dots", "/ecp../x", N, ERR, NULL, NOQ, "ending in a dot", 0},

    /* empty segments */
    {"//", "/a//b", S, ERR, NULL, NOQ, W_EMPTY, 0},
    {"//", "/a//b", N, OK, "/a/b", NOQ, NULL, 1},
    {"leading //", "//owa", S, ERR, NULL, NOQ, W_EMPTY, 0},
    {"leading //", "//owa", N, OK, "/owa", NOQ, NULL, 1},
    {"only //", "//", N, OK, "/", NOQ, NULL, 1},
    {"// then ..", "/a//../b", N, OK, "/b", NOQ, NULL, 1},
    {"trailing slash kept", "/owa/", S, OK, "/owa/", NOQ, NULL, 0},
    {"root", "/", S, OK, "/", NOQ, NULL, 0},
    {"root", "/", N, OK, "/", NOQ, NULL, 0},

    /* encoded controls */
    {"%00", "/a%00", S, ERR, NULL, NOQ, W_CTL, 0},
    {"%00", "/a%00", N, ERR, NULL, NOQ, W_CTL, 0},
    {"%1f", "/a%1f", N, ERR, NULL, NOQ, W_CTL, 0},
    {"%7F", "/a%7F", S, ERR, NULL, NOQ, W_CTL, 0},
    {"%0d%0a", "/a%0d%0aX: y", N, ERR, NULL, NOQ, W_RAWCTL, 0},
    {"%0a", "/a%0a", N, ERR, NULL, NOQ, W_CTL, 0},

    /* malformed escapes */
    {"bare %", "/a%", S, ERR, NULL, NOQ, W_MAL, 0},
    {"bare %", "/a%", N, ERR, NULL, NOQ, W_MAL, 0},
    {"%4 at end", "/a%4", S, ERR, NULL, NOQ, W_MAL, 0},
    {"%4 at end", "/a%4", N, ERR, NULL, NOQ, W_MAL, 0},
    {"%zz", "/a%zzb", S, ERR, NULL, NOQ, W_MAL, 0},
    {"%zz", "/a%zzb", N, ERR, NULL, NOQ, W_MAL, 0},
    {"%4g", "/a%4g", N, ERR, NULL, NOQ, W_MAL, 0},
    {"%u002e", "/a/%u002e%u002e/b", N, ERR, NULL, NOQ, W_MAL, 0},
    {"% before ?", "/a%?x", S, ERR, NULL, NOQ, W_MAL, 0},

    /* fragments */
    {"# in path", "/a#b", S, ERR, NULL, NOQ, W_FRAG, 0},
    {"# in path", "/a#b", N, ERR, NULL, NOQ, W_FRAG, 0},
    {"# in query", "/a?b#c", S, ERR, NULL, NOQ, W_FRAG, 0},
    {"# in query", "/a?b#c", N, ERR, NULL, NOQ, W_FRAG, 0},

    /* not origin-form */
    {"relative", "owa/x", S, ERR, NULL, NOQ, W_NOSLASH, 0},
    {"relative", "owa/x", N, ERR, NULL, NOQ, W_NOSLASH, 0},
    {"star with more", "*x", S, ERR, NULL, NOQ, W_NOSLASH, 0},
    {"empty", "", S, ERR, NULL, NOQ, "empty", 0},
    {"empty", "", N, ERR, NULL, NOQ, "empty", 0},
    {"query only", "?x", N, ERR, NULL, NOQ, W_NOSLASH, 0},

    /* double encoding */
    {"%252e", "/owa/%252e%252e/ecp", S, ERR, NULL, NOQ, W_DOUBLE, 0},
    {"%252e", "/owa/%252e%252e/ecp", N, ERR, NULL, NOQ, W_DOUBLE, 0},
    {"%252E", "/%252E", S, ERR, NULL, NOQ, W_DOUBLE, 0},
    {"%252f", "/a%252fb", S, ERR, NULL, NOQ, W_DOUBLE, 0},
    {"%252F", "/a%252Fb", N, ERR, NULL, NOQ, W_DOUBLE, 0},
    {"%255c", "/a%255cb", S, ERR, NULL, NOQ, W_DOUBLE, 0},
    {"%255C", "/a%255Cb", N, ERR, NULL, NOQ, W_DOUBLE, 0},
    {"%2500", "/a%2500", S, ERR, NULL, NOQ, W_DOUBLE, 0},
    {"%2525 (triple)", "/a%25252e", S, ERR, NULL, NOQ, W_DOUBLE, 0},
    {"hex digits escaped", "/a%25%32%65", S, ERR, NULL, NOQ, W_DOUBLE, 0},
    {"hex digits escaped", "/a%25%32%65", N, ERR, NULL, NOQ, W_DOUBLE, 0},
    {"%25 alone", "/100%25", S, OK, "/100%25", NOQ, NULL, 0},
    {"%2541 harmless", "/a%2541", S, OK, "/a%2541", NOQ, NULL, 0},
    {"%25 before /", "/a%25/2e", S, OK, "/a%25/2e", NOQ, NULL, 0},

    /* unreserved decoding and hex case */
    {"unreserved decoded", "/%41%62c", S, OK, "/Abc", NOQ, NULL, 1},
    {"unreserved decoded", "/%41%62c", N, OK, "/Abc", NOQ, NULL, 1},
    {"marks decoded", "/%7e%2D%5f", S, OK, "/~-_", NOQ, NULL, 1},
    {"reserved kept, upper hex", "/a%3ab", S, OK, "/a%3Ab", NOQ, NULL, 1},
    {"reserved kept, upper hex", "/a%3ab", N, OK, "/a%3Ab", NOQ, NULL, 1},
    {"kept as is", "/a%3Ab%20c", S, OK, "/a%3Ab%20c", NOQ, NULL, 0},
    {"escaped ?", "/a%3fb?c", S, OK, "/a%3Fb", "c", NULL, 1},
    {"sub-delims literal", "/a;b=c,d!$&'()*+:@", S, OK, "/a;b=c,d!$&'()*+:@", NOQ, NULL, 0},

    /* escaped non-ASCII: well-formed UTF-8 only */
    {"utf-8 e-acute", "/a%c3%a9", S, OK, "/a%C3%A9", NOQ, NULL, 1},
    {"utf-8 4 bytes", "/%F0%9F%98%80", N, OK, "/%F0%9F%98%80", NOQ, NULL, 0},
    {"overlong dot", "/owa/%c0%ae%c0%ae/ecp", S, ERR, NULL, NOQ, W_UTF8, 0},
    {"overlong dot", "/owa/%c0%ae%c0%ae/ecp", N, ERR, NULL, NOQ, W_UTF8, 0},
    {"overlong slash", "/a%c0%afb", N, ERR, NULL, NOQ, W_UTF8, 0},
    {"3-byte overlong", "/%e0%80%ae", S, ERR, NULL, NOQ, W_UTF8, 0},
    {"surrogate", "/%ed%a0%80", S, ERR, NULL, NOQ, W_UTF8, 0},
    {"above U+10FFFF", "/%f4%90%80%80", S, ERR, NULL, NOQ, W_UTF8, 0},
    {"truncated at end", "/a%c3", S, ERR, NULL, NOQ, W_UTF8, 0},
    {"split by slash", "/%c3/%a9", N, ERR, NULL, NOQ, W_UTF8, 0},
    {"interrupted by literal", "/%e2%82x%ac", S, ERR, NULL, NOQ, W_UTF8, 0},
    {"stray continuation", "/%a9", S, ERR, NULL, NOQ, W_UTF8, 0},
    {"latin-1 byte", "/caf%e9", S, ERR, NULL, NOQ, W_UTF8, 0},

    /* the query is never decoded or changed */
    {"query untouched", "/a?b/../c%2f%zz", S, OK, "/a", "b/../c%2f%zz", NULL, 0},
    {"query untouched", "/a/../b?x//y", N, OK, "/b", "x//y", NULL, 1},
    {"empty query", "/a?", S, OK, "/a", "", NULL, 0},
    {"second ? in query", "/a?b?c", S, OK, "/a", "b?c", NULL, 0},

    /* raw bytes the request-line parser should already have refused */
    {"space", "/a b", S, ERR, NULL, NOQ, W_RAWCTL, 0},
    {"DEL", "/a\x7f", N, ERR, NULL, NOQ, W_RAWCTL, 0},
    {"high byte", "/caf\xc3\xa9", N, ERR, NULL, NOQ, W_RAWCTL, 0},
    {"ctl in query", "/a?b\x01", S, ERR, NULL, NOQ, W_RAWCTL, 0},

    /* asterisk-form */
    {"asterisk", "*", S, OK, "*", NOQ, NULL, 0},
    {"asterisk", "*", N, OK, "*", NOQ, NULL, 0},

    /* absolute-form */
    {"abs http", "http://mail.example.com/owa/", S, OK, "/owa/", NOQ, NULL, 0},
    {"abs upper scheme", "HTTPS://Mail.Example.com:443/owa/?a=b", S, OK, "/owa/", "a=b", NULL, 0},
    {"abs no path", "http://h", S, OK, "/", NOQ, NULL, 1},
    {"abs slash", "http://h/", N, OK, "/", NOQ, NULL, 0},
    {"abs v6", "http://[::1]:8080/ews/x", S, OK, "/ews/x", NOQ, NULL, 0},
    {"abs dotdot", "http://h/owa/../ecp", S, ERR, NULL, NOQ, W_DOTSEG, 0},
    {"abs dotdot", "http://h/owa/../ecp", N, OK, "/ecp", NOQ, NULL, 1},
    {"abs climbs", "http://h/../ecp", N, ERR, NULL, NOQ, W_ROOT, 0},
    {"abs //", "http://h//mapi", S, ERR, NULL, NOQ, W_EMPTY, 0},
    {"abs //", "http://h//mapi", N, OK, "/mapi", NOQ, NULL, 1},
    {"abs userinfo", "http://user@h/x", S, ERR, NULL, NOQ, "userinfo", 0},
    {"abs userinfo", "http://user:pw@h/x", N, ERR, NULL, NOQ, "userinfo", 0},
    {"abs ftp", "ftp://h/x", S, ERR, NULL, NOQ, "scheme", 0},
    {"abs one slash", "http:/h/x", S, ERR, NULL, NOQ, "scheme", 0},
    {"abs empty host", "http:///x", S, ERR, NULL, NOQ, "authority", 0},
    {"abs empty port", "http://h:/x", S, ERR, NULL, NOQ, "authority", 0},
    {"abs bad port", "http://h:99999/x", N, ERR, NULL, NOQ, "authority", 0},
    {"abs query host", "http://?x", S, ERR, NULL, NOQ, "authority", 0},
    {"abs %2e", "http://h/%2e%2e/", N, ERR, NULL, NOQ, W_ROOT, 0},
};

#define NCASES (sizeof(cases) / sizeof(cases[0]))

/* len bytes of memory ending exactly at a PROT_NONE page; free with guard_free. */
struct guard {
    char *map;
    size_t page;
};

static char *
guard_end(struct guard *g, size_t len)
{
    g->page = (size_t)sysconf(_SC_PAGESIZE);
    g->map = mmap(NULL, g->page * 2, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    assert_true(g->map != MAP_FAILED);
    assert_int_equal(mprotect(g->map + g->page, g->page, PROT_NONE), 0);
    assert_true(len <= g->page);
    return g->map + g->page - len;
}

static void
guard_free(struct guard *g)
{
    munmap(g->map, g->page * 2);
}

static bool
view_is(const char *p, size_t n, const char *want)
{
    return p != NULL && n == strlen(want) && memcmp(p, want, n) == 0;
}

/*
 * Runs one case with the input ending against a PROT_NONE page and the output buffer (exactly
 * len bytes, or 1 for "") ending against another, so reading past the input or writing past
 * outcap faults.
 */
static void
run_case(const struct target_case *tc)
{
    size_t len = strlen(tc->raw), cap = len ? len : 1;
    struct guard gi, go;
    char *in = guard_end(&gi, len), *out = guard_end(&go, cap);
    struct target t, before;
    const char *why = NULL;
    int rc;

    memcpy(in, tc->raw, len);
    memset(&t, 0x5a, sizeof(t));
    before = t;
    rc = target_normalize(in, len, tc->pol, out, cap, &t, &why);
    if (rc != tc->rc)
        fail_msg("case '%s' (%s): rc %d, want %d (%s)", tc->name, tc->pol == S ? "strict" : "norm",
                 rc, tc->rc, why ? why : "");
    if (rc != 0) {
        if (why == NULL || strstr(why, tc->why) == NULL)
            fail_msg("case '%s' (%s): why '%s', want '%s'", tc->name,
                     tc->pol == S ? "strict" : "norm", why ? why : "(null)", tc->why);
        assert_memory_equal(&t, &before, sizeof(t));
    } else {
        if (!view_is(t.path, t.path_len, tc->path))
            fail_msg("case '%s' (%s): path '%.*s', want '%s'", tc->name,
                     tc->pol == S ? "strict" : "norm", (int)t.path_len, t.path, tc->path);
        assert_ptr_equal(t.path, out);
        if (tc->query == NULL)
            assert_null(t.query);
        else if (!view_is(t.query, t.query_len, tc->query))
            fail_msg("case '%s': query '%.*s', want '%s'", tc->name, (int)t.query_len, t.query,
                     tc->query);
        if (t.query)
            assert_true(t.query > in && t.query + t.query_len == in + len);
        if (t.changed != (tc->changed != 0))
            fail_msg("case '%s' (%s): changed %d, want %d", tc->name,
                     tc->pol == S ? "strict" : "norm", t.changed, tc->changed);
        assert_int_equal(t.asterisk, strcmp(tc->raw, "*") == 0);
        assert_int_equal(t.absolute, tc->raw[0] != '/' && tc->raw[0] != '*');
    }
    guard_free(&gi);
    guard_free(&go);
}

static void
test_target_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < NCASES; i++)
        run_case(&cases[i]);
}

/* A successful path, normalised again under the same policy, is itself and unchanged. */
static void
test_idempotent(void **state)
{
    (void)state;
    for (size_t i = 0; i < NCASES; i++) {
        const struct target_case *tc = &cases[i];
        char out[256], again[256];
        struct target t, u;
        const char *why = NULL;
        if (tc->rc != OK || strcmp(tc->raw, "*") == 0)
            continue;
        assert_int_equal(
            target_normalize(tc->raw, strlen(tc->raw), tc->pol, out, sizeof(out), &t, &why), 0);
        if (target_normalize(t.path, t.path_len, tc->pol, again, sizeof(again), &u, &why) != 0)
            fail_msg("case '%s': normalised path '%.*s' refused: %s", tc->name, (int)t.path_len,
                     t.path, why);
        assert_true(view_is(u.path, u.path_len, tc->path));
        assert_false(u.changed);
    }
}

/* Every prefix of a busy target, ending at a guard page: no fault, and a verdict either way. */
static void
test_every_prefix(void **state)
{
    static const char *const inputs[] = {
        "http://[2001:db8::1]:443/owa/%2e%2E/..%5c%41%c3%a9/%252e?q=%zz",
        "HTTPS://mail.example.com:65535//a/./b/../%7e%3a\\x",
        "/%2",
        "/a%c3%a9%e2%82",
    };
    (void)state;
    for (size_t k = 0; k < sizeof(inputs) / sizeof(inputs[0]); k++) {
        size_t n = strlen(inputs[k]);
        for (size_t len = 0; len <= n; len++) {
            for (int pol = S; pol <= N; pol++) {
                struct guard gi, go;
                char *in = guard_end(&gi, len), *out = guard_end(&go, len ? len : 1);
                struct target t;
                const char *why = NULL;
                memcpy(in, inputs[k], len);
                if (target_normalize(in, len, (enum target_policy)pol, out, len ? len : 1, &t,
                                     &why) == 0) {
                    assert_true(t.path_len >= 1 && t.path_len <= (len ? len : 1));
                } else {
                    assert_non_null(why);
                }
                guard_free(&gi);
                guard_free(&go);
            }
        }
    }
}

static void
test_outcap(void **state)
{
    char out[8];
    struct target t;
    const char *why = NULL;
    (void)state;
    /* the path is 7 bytes: 6 is too small, 7 is enough even though the input is longer */
    assert_int_equal(target_normalize("/abcdef?q", 9, S, out, 6, &t, &why), -1);
    assert_non_null(strstr(why, "too small"));
    assert_int_equal(target_normalize("/abcdef?q", 9, S, out, 7, &t, &why), 0);
    assert_true(view_is(t.path, t.path_len, "/abcdef"));
    assert_int_equal(target_normalize("*", 1, S, out, 0, &t, &why), -1);
    /* why_out may be NULL */
    assert_int_equal(target_normalize("/a/../..", 8, N, out, sizeof(out), &t, NULL), -1);
}

struct abs_case {
    const char *raw;
    const char *host;
    const char *port; /* NULL = none */
    bool https;
};

static const struct abs_case abs_cases[] = {
    {"http://mail.example.com/owa/", "mail.example.com", NULL, false},
    {"HTTPS://Mail.Example.com:443/owa/?a=b", "Mail.Example.com", "443", true},
    {"hTTp://h", "h", NULL, false},
    {"https://[::1]:8443?x", "[::1]", "8443", true},
    {"http://10.1.2.3:80/x", "10.1.2.3", "80", false},
};

static void
test_absolute_fields(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(abs_cases) / sizeof(abs_cases[0]); i++) {
        const struct abs_case *ac = &abs_cases[i];
        size_t len = strlen(ac->raw);
        char out[128];
        struct target t;
        const char *why = NULL;
        if (target_normalize(ac->raw, len, S, out, sizeof(out), &t, &why) != 0)
            fail_msg("'%s': %s", ac->raw, why);
        assert_true(t.absolute);
        assert_int_equal(t.https, ac->https);
        if (!view_is(t.host, t.host_len, ac->host))
            fail_msg("'%s': host '%.*s'", ac->raw, (int)t.host_len, t.host);
        assert_true(t.host >= ac->raw && t.host + t.host_len <= ac->raw + len);
        if (ac->port == NULL)
            assert_null(t.port);
        else if (!view_is(t.port, t.port_len, ac->port))
            fail_msg("'%s': port '%.*s'", ac->raw, (int)t.port_len, t.port);
    }
}

struct host_case {
    const char *v;
    bool valid;
};

static const struct host_case host_cases[] = {
    {"mail.example.com", true},
    {"MAIL.example.com:443", true},
    {"exch01", true},
    {"h_x-y~z", true},
    {"3com.example", true},
    {"10.0.0.1", true},
    {"10.0.0.1:80", true},
    {"255.255.255.255", true},
    {"256.1.1.1", false},
    {"1.2.3", false},
    {"1.2.3.4.5", false},
    {"01.2.3.4", false},
    {"123", false},
    {"[::1]", true},
    {"[::1]:8443", true},
    {"[2001:DB8::1]", true},
    {"[::ffff:10.0.0.1]", true},
    {"[::1", false},
    {"[]", false},
    {"[::1]x", false},
    {"[::1]:", false},
    {"[fe80::1%25eth0]", false},
    {"[v1.x]", false},
    {"[1:2:3:4:5:6:7:8:9]", false},
    {"[::1]]", false},
    {"::1", false},
    {"h:0", false},
    {"h:1", true},
    {"h:65535", true},
    {"h:65536", false},
    {"h:080", true},
    {"h:123456", false},
    {"a b", false},
    {"", false},
    {"user@h", false},
    {"h:", false},
    {"h:8O", false},
    {"h:1:2", false},
    {"h;x", false},
    {"h%41", false},
    {"h,g", false},
    {"h/x", false},
    {":80", false},
};

static void
test_host_valid(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(host_cases) / sizeof(host_cases[0]); i++) {
        const struct host_case *hc = &host_cases[i];
        size_t len = strlen(hc->v);
        struct guard g;
        char *p = guard_end(&g, len);
        memcpy(p, hc->v, len);
        if (target_host_valid(p, len) != hc->valid)
            fail_msg("host '%s': valid %d, want %d", hc->v, !hc->valid, hc->valid);
        guard_free(&g);
    }
    assert_false(target_host_valid(NULL, 0));
}

struct agree_case {
    const char *raw;
    const char *host_hdr;
    bool agrees;
};

static const struct agree_case agree_cases[] = {
    {"http://h/x", "h", true},
    {"http://h/x", "H", true},
    {"http://Mail.Example.COM/x", "mail.example.com", true},
    {"http://h/x", "h:80", true},
    {"http://h:80/x", "h", true},
    {"http://h:0080/x", "h", true},
    {"http://h/x", "h:443", false},
    {"http://h/x", "h:8080", false},
    {"https://h/x", "h:443", true},
    {"https://h/x", "h", true},
    {"https://h:443/x", "h", true},
    {"https://h/x", "h:80", false},
    {"https://h:8443/x", "h:8443", true},
    {"https://h:8443/x", "h", false},
    {"http://h/x", "g", false},
    {"http://h/x", "h.", false},
    {"http://h/x", "hh", false},
    {"http://[::1]/", "[::1]:80", true},
    {"http://[::1]/", "::1", false},
    {"http://h/x", "h:", false},
    {"http://h/x", "", false},
    {"http://h/x", "h x", false},
    {"/x", "h", false},
};

static void
test_host_agrees(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(agree_cases) / sizeof(agree_cases[0]); i++) {
        const struct agree_case *ac = &agree_cases[i];
        char out[64];
        struct target t;
        const char *why = NULL;
        assert_int_equal(target_normalize(ac->raw, strlen(ac->raw), S, out, sizeof(out), &t, &why),
                         0);
        if (target_host_agrees(&t, ac->host_hdr, strlen(ac->host_hdr)) != ac->agrees)
            fail_msg("'%s' vs Host '%s': want %d", ac->raw, ac->host_hdr, ac->agrees);
    }
    assert_false(target_host_agrees(NULL, "h", 1));
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_target_table),    cmocka_unit_test(test_idempotent),
        cmocka_unit_test(test_every_prefix),    cmocka_unit_test(test_outcap),
        cmocka_unit_test(test_absolute_fields), cmocka_unit_test(test_host_valid),
        cmocka_unit_test(test_host_agrees),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
