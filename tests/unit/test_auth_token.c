/* Unit tests for auth/token.c: challenge lists, credentials, every prefix, guard page. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cmocka.h>

#include "auth/token.h"

#define MAXC 8

struct want_challenge {
    enum authtok_scheme scheme;
    const char *text;
    const char *token68; /* "" = none */
    size_t nparams;
};

struct challenge_case {
    const char *name;
    const char *in;
    int rc;
    size_t n;
    struct want_challenge c[4];
};

static const struct challenge_case challenge_cases[] = {
    {"bare Negotiate",
     "Negotiate",
     AUTHTOK_OK,
     1,
     {{AUTHTOK_SCHEME_NEGOTIATE, "Negotiate", "", 0}}},
    {"two bare",
     "Negotiate, NTLM",
     AUTHTOK_OK,
     2,
     {{AUTHTOK_SCHEME_NEGOTIATE, "Negotiate", "", 0}, {AUTHTOK_SCHEME_NTLM, "NTLM", "", 0}}},
    {"comma inside quoted realm",
     "Basic realm=\"a, b\", NTLM",
     AUTHTOK_OK,
     2,
     {{AUTHTOK_SCHEME_BASIC, "Basic realm=\"a, b\"", "", 1}, {AUTHTOK_SCHEME_NTLM, "NTLM", "", 0}}},
    {"token68",
     "NTLM TlRMTVNTUAACAAAA",
     AUTHTOK_OK,
     1,
     {{AUTHTOK_SCHEME_NTLM, "NTLM TlRMTVNTUAACAAAA", "TlRMTVNTUAACAAAA", 0}}},
    {"token68 with padding then next",
     "Negotiate oQcwBaADCgEA==, Basic realm=x",
     AUTHTOK_OK,
     2,
     {{AUTHTOK_SCHEME_NEGOTIATE, "Negotiate oQcwBaADCgEA==", "oQcwBaADCgEA==", 0},
      {AUTHTOK_SCHEME_BASIC, "Basic realm=x", "", 1}}},
    {"digest params",
     "Digest realm=\"r\", qop=\"auth\", nonce=abc, Bearer",
     AUTHTOK_OK,
     2,
     {{AUTHTOK_SCHEME_DIGEST, "Digest realm=\"r\", qop=\"auth\", nonce=abc", "", 3},
      {AUTHTOK_SCHEME_BEARER, "Bearer", "", 0}}},
    {"case-insensitive schemes",
     "ntlm, NEGOTIATE, nego2",
     AUTHTOK_OK,
     3,
     {{AUTHTOK_SCHEME_NTLM, "ntlm", "", 0},
      {AUTHTOK_SCHEME_NEGOTIATE, "NEGOTIATE", "", 0},
      {AUTHTOK_SCHEME_NEGO2, "nego2", "", 0}}},
    {"empty elements and OWS",
     " , Basic realm = \"x\" ,, \tNTLM , ",
     AUTHTOK_OK,
     2,
     {{AUTHTOK_SCHEME_BASIC, "Basic realm = \"x\"", "", 1}, {AUTHTOK_SCHEME_NTLM, "NTLM", "", 0}}},
    {"quoted pair",
     "Basic realm=\"a\\\"b\"",
     AUTHTOK_OK,
     1,
     {{AUTHTOK_SCHEME_BASIC, "Basic realm=\"a\\\"b\"", "", 1}}},
    {"unknown scheme",
     "Newauth realm=\"apps\", type=1",
     AUTHTOK_OK,
     1,
     {{AUTHTOK_SCHEME_OTHER, "Newauth realm=\"apps\", type=1", "", 2}}},
    {"empty", "", AUTHTOK_ERROR, 0, {{0}}},
    {"only commas", " , ,", AUTHTOK_ERROR, 0, {{0}}},
    {"unterminated quote", "Basic realm=\"abc", AUTHTOK_ERROR, 0, {{0}}},
    {"param without value", "Basic realm=x, nonce=", AUTHTOK_ERROR, 0, {{0}}},
    {"bare name= is a token68",
     "Basic realm=",
     AUTHTOK_OK,
     1,
     {{AUTHTOK_SCHEME_BASIC, "Basic realm=", "realm=", 0}}},
    {"token68 then garbage", "Negotiate abc def", AUTHTOK_ERROR, 0, {{0}}},
    {"bad scheme char", "Neg@tiate", AUTHTOK_ERROR, 0, {{0}}},
    {"control in quoted", "Basic realm=\"a\x01\"", AUTHTOK_ERROR, 0, {{0}}},
    {"leading equals", "=abc", AUTHTOK_ERROR, 0, {{0}}},
    {"param then junk", "Basic realm=x y", AUTHTOK_ERROR, 0, {{0}}},
};

static bool
slice_is(struct authtok_slice s, const char *want)
{
    if (s.len == 0)
        return want[0] == '\0';
    return s.len == strlen(want) && memcmp(s.p, want, s.len) == 0;
}

static void
assert_inside(const char *base, size_t len, struct authtok_slice s)
{
    if (s.len == 0)
        return;
    assert_true(s.p >= base);
    assert_true((size_t)(s.p - base) <= len);
    assert_true(s.len <= len - (size_t)(s.p - base));
}

static void
test_challenge_table(void **state)
{
    size_t i, j;
    (void)state;
    for (i = 0; i < sizeof(challenge_cases) / sizeof(challenge_cases[0]); i++) {
        const struct challenge_case *tc = &challenge_cases[i];
        struct authtok_challenge list[MAXC];
        size_t n = 0;
        const char *why = NULL;
        int rc = authtok_parse_challenges(tc->in, strlen(tc->in), list, MAXC, &n, &why);
        if (rc != tc->rc)
            fail_msg("case '%s': rc %d, want %d (%s)", tc->name, rc, tc->rc, why ? why : "");
        if (rc != AUTHTOK_OK) {
            assert_non_null(why);
            assert_int_equal(n, 0);
            continue;
        }
        if (n != tc->n)
            fail_msg("case '%s': %zu challenges, want %zu", tc->name, n, tc->n);
        for (j = 0; j < n; j++) {
            if (list[j].scheme != tc->c[j].scheme || !slice_is(list[j].text, tc->c[j].text) ||
                !slice_is(list[j].token68, tc->c[j].token68) || list[j].nparams != tc->c[j].nparams)
                fail_msg("case '%s' challenge %zu: got '%.*s' token '%.*s' params %zu", tc->name, j,
                         (int)list[j].text.len, list[j].text.p, (int)list[j].token68.len,
                         list[j].token68.p, list[j].nparams);
        }
    }
}

static void
test_several_headers_append(void **state)
{
    struct authtok_challenge list[3];
    size_t n = 0;
    const char *why;
    (void)state;
    assert_int_equal(authtok_parse_challenges("Negotiate", 9, list, 3, &n, &why), AUTHTOK_OK);
    assert_int_equal(authtok_parse_challenges("NTLM, Basic realm=\"x\"", 21, list, 3, &n, &why),
                     AUTHTOK_OK);
    assert_int_equal(n, 3);
    assert_int_equal(list[0].scheme, AUTHTOK_SCHEME_NEGOTIATE);
    assert_int_equal(list[2].scheme, AUTHTOK_SCHEME_BASIC);
    /* the list is full: error, n unchanged */
    assert_int_equal(authtok_parse_challenges("Bearer", 6, list, 3, &n, &why), AUTHTOK_ERROR);
    assert_int_equal(n, 3);
}

struct cred_case {
    const char *in;
    int rc;
    enum authtok_scheme scheme;
    const char *token68;
};

static const struct cred_case cred_cases[] = {
    {"NTLM TlRMTVNTUAABAAAAt4II4gAAAAAAAAAAAAAAAAAAAAAKAGFKAAAADw==", AUTHTOK_OK,
     AUTHTOK_SCHEME_NTLM, "TlRMTVNTUAABAAAAt4II4gAAAAAAAAAAAAAAAAAAAAAKAGFKAAAADw=="},
    {"  Negotiate YEgGBisGAQUFAqA+  ", AUTHTOK_OK, AUTHTOK_SCHEME_NEGOTIATE, "YEgGBisGAQUFAqA+"},
    {"Basic dXNlcjpwYXNz", AUTHTOK_OK, AUTHTOK_SCHEME_BASIC, "dXNlcjpwYXNz"},
    {"Digest username=\"u\", realm=\"r, s\", nonce=n", AUTHTOK_OK, AUTHTOK_SCHEME_DIGEST, ""},
    {"Negotiate", AUTHTOK_OK, AUTHTOK_SCHEME_NEGOTIATE, ""},
    {"", AUTHTOK_ERROR, 0, ""},
    {"NTLM abc, def", AUTHTOK_ERROR, 0, ""},
    {"NTLM abc def", AUTHTOK_ERROR, 0, ""},
    {"NTLM a\x7f", AUTHTOK_ERROR, 0, ""},
    {"Digest username=\"u\", Basic x", AUTHTOK_ERROR, 0, ""},
};

static void
test_credentials_table(void **state)
{
    size_t i;
    (void)state;
    for (i = 0; i < sizeof(cred_cases) / sizeof(cred_cases[0]); i++) {
        const struct cred_case *tc = &cred_cases[i];
        struct authtok_challenge c;
        const char *why = NULL;
        int rc = authtok_parse_credentials(tc->in, strlen(tc->in), &c, &why);
        if (rc != tc->rc)
            fail_msg("credentials '%s': rc %d, want %d", tc->in, rc, tc->rc);
        if (rc == AUTHTOK_OK) {
            assert_int_equal(c.scheme, tc->scheme);
            assert_true(slice_is(c.token68, tc->token68));
        } else {
            assert_non_null(why);
        }
    }
}

/* Every prefix: slices stay inside the prefix, and a cut inside a quoted string is an error. */
static void
test_every_prefix(void **state)
{
    static const char *const inputs[] = {
        "Basic realm=\"a, b\", NTLM TlRMTVNTUAACAAAA==, Digest realm=\"x\", nonce=\"y\"",
        "Negotiate oYGBMH+gAwoBAaEMBgorBgEEAYI3AgIK, Basic realm=\"Exchange\"",
    };
    size_t k, len, j;
    (void)state;
    for (k = 0; k < 2; k++) {
        const char *in = inputs[k];
        size_t full = strlen(in);
        for (len = 0; len <= full; len++) {
            struct authtok_challenge list[MAXC];
            struct authtok_challenge c;
            size_t n = 0, quotes = 0;
            const char *why;
            int rc = authtok_parse_challenges(in, len, list, MAXC, &n, &why);
            for (j = 0; j < len; j++)
                quotes += in[j] == '"';
            if (quotes % 2 == 1)
                assert_int_equal(rc, AUTHTOK_ERROR);
            for (j = 0; rc == AUTHTOK_OK && j < n; j++) {
                assert_inside(in, len, list[j].name);
                assert_inside(in, len, list[j].text);
                assert_inside(in, len, list[j].token68);
                assert_inside(in, len, list[j].params);
            }
            if (authtok_parse_credentials(in, len, &c, &why) == AUTHTOK_OK) {
                assert_inside(in, len, c.text);
                assert_inside(in, len, c.token68);
            }
        }
    }
}

/* The value ends exactly at a PROT_NONE page: any read past the end faults. */
static void
test_guard_page(void **state)
{
    static const char *const values[] = {"Basic realm=\"abc", "NTLM TlRM==", "Negotiate",
                                         "Digest a=b, c", "Basic realm=\"a\\"};
    long page = sysconf(_SC_PAGESIZE);
    char *mem =
        mmap(NULL, (size_t)page * 2, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    size_t i;
    (void)state;
    assert_true(mem != MAP_FAILED);
    assert_int_equal(mprotect(mem + page, (size_t)page, PROT_NONE), 0);
    for (i = 0; i < sizeof(values) / sizeof(values[0]); i++) {
        size_t len = strlen(values[i]);
        char *p = mem + page - len;
        struct authtok_challenge list[MAXC], c;
        size_t n = 0;
        const char *why;
        memcpy(p, values[i], len);
        (void)authtok_parse_challenges(p, len, list, MAXC, &n, &why);
        (void)authtok_parse_credentials(p, len, &c, &why);
    }
    munmap(mem, (size_t)page * 2);
}

static void
test_names_and_decode(void **state)
{
    struct authtok_challenge c;
    const char *why;
    uint8_t out[16];
    size_t len;
    (void)state;
    assert_string_equal(authtok_scheme_name(AUTHTOK_SCHEME_NEGOTIATE), "Negotiate");
    assert_string_equal(authtok_scheme_name(AUTHTOK_SCHEME_OTHER), "other");
    assert_int_equal(authtok_scheme_from_conf(CONF_SCHEME_NTLM), AUTHTOK_SCHEME_NTLM);
    assert_int_equal(authtok_scheme_from_conf(CONF_SCHEME_BEARER), AUTHTOK_SCHEME_BEARER);
    assert_int_equal(authtok_parse_credentials("Negotiate oQcwBaADCgEA", 22, &c, &why), 0);
    assert_int_equal(authtok_decode(&c, out, sizeof(out), &len), 0);
    assert_int_equal(len, 9);
    assert_memory_equal(out, "\xa1\x07\x30\x05\xa0\x03\x0a\x01\x00", 9);
    assert_int_equal(authtok_parse_credentials("Negotiate", 9, &c, &why), 0);
    assert_int_equal(authtok_decode(&c, out, sizeof(out), &len), -1);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_challenge_table),   cmocka_unit_test(test_several_headers_append),
        cmocka_unit_test(test_credentials_table), cmocka_unit_test(test_every_prefix),
        cmocka_unit_test(test_guard_page),        cmocka_unit_test(test_names_and_decode),
    };
    return cmocka_run_group_tests_name("auth_token", tests, NULL, NULL);
}
