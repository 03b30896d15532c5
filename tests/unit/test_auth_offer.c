/* Unit tests for auth/offer.c: the offer rewrite table (F1, F2, F5). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "auth/offer.h"

#define N CONF_SCHEME_NTLM
#define G CONF_SCHEME_NEGOTIATE
#define B CONF_SCHEME_BASIC
#define D CONF_SCHEME_DIGEST
#define T CONF_SCHEME_BEARER

struct offer_case {
    const char *name;
    const char *backend[4]; /* WWW-Authenticate values, NULL-terminated */
    bool set;
    enum conf_scheme offer[CONF_MAX_OFFER];
    size_t noffer;
    enum conf_bridge bridge;
    bool rewritten;
    const char *want[6]; /* NULL-terminated */
};

static const struct offer_case cases[] = {
    {"no policy: pass through",
     {"Negotiate", "NTLM", NULL},
     false,
     {0},
     0,
     CONF_BRIDGE_NONE,
     false,
     {"Negotiate", "NTLM", NULL}},
    {"no policy keeps params",
     {"Basic realm=\"a, b\", NTLM", NULL},
     false,
     {0},
     0,
     CONF_BRIDGE_NONE,
     false,
     {"Basic realm=\"a, b\"", "NTLM", NULL}},
    {"F2: NTLM first",
     {"Negotiate", "NTLM", NULL},
     true,
     {N, G},
     2,
     CONF_BRIDGE_NONE,
     true,
     {"NTLM", "Negotiate", NULL}},
    {"F2: NTLM only, Basic dropped",
     {"Basic realm=\"a, b\", NTLM", "Negotiate", NULL},
     true,
     {N},
     1,
     CONF_BRIDGE_NONE,
     true,
     {"NTLM", NULL}},
    {"F5: Basic realm kept verbatim",
     {"Negotiate", "NTLM", "Basic realm=\"mail\"", NULL},
     true,
     {B, N},
     2,
     CONF_BRIDGE_NONE,
     true,
     {"Basic realm=\"mail\"", "NTLM", NULL}},
    {"F1: NTLM added over Negotiate",
     {"Negotiate", NULL},
     true,
     {N},
     1,
     CONF_BRIDGE_NTLM_TO_NEGOTIATE,
     true,
     {"NTLM", NULL}},
    {"F1 with Negotiate kept second",
     {"Negotiate", NULL},
     true,
     {N, G},
     2,
     CONF_BRIDGE_NTLM_TO_NEGOTIATE,
     true,
     {"NTLM", "Negotiate", NULL}},
    {"no bridge: cannot add NTLM",
     {"Negotiate", NULL},
     true,
     {N},
     1,
     CONF_BRIDGE_NONE,
     true,
     {NULL}},
    {"wrong bridge: cannot add NTLM",
     {"Negotiate", NULL},
     true,
     {N},
     1,
     CONF_BRIDGE_NEGOTIATE_TO_NTLM,
     true,
     {NULL}},
    {"F3: Negotiate added over NTLM",
     {"NTLM", NULL},
     true,
     {G, N},
     2,
     CONF_BRIDGE_NEGOTIATE_TO_NTLM,
     true,
     {"Negotiate", "NTLM", NULL}},
    {"bridge needs the other scheme",
     {"Basic realm=\"x\"", NULL},
     true,
     {N, B},
     2,
     CONF_BRIDGE_NTLM_TO_NEGOTIATE,
     true,
     {"Basic realm=\"x\"", NULL}},
    {"duplicate policy entries",
     {"NTLM", "Negotiate", NULL},
     true,
     {N, N, G},
     3,
     CONF_BRIDGE_NONE,
     true,
     {"NTLM", "Negotiate", NULL}},
    {"two Basic realms, backend order",
     {"Basic realm=\"a\"", "NTLM, Basic realm=\"b\"", NULL},
     true,
     {B},
     1,
     CONF_BRIDGE_NONE,
     true,
     {"Basic realm=\"a\"", "Basic realm=\"b\"", NULL}},
    {"offer set but empty", {"NTLM", NULL}, true, {0}, 0, CONF_BRIDGE_NONE, true, {NULL}},
    {"Nego2 and unknown dropped",
     {"Nego2", "Newauth realm=x", "NTLM", NULL},
     true,
     {N},
     1,
     CONF_BRIDGE_NONE,
     true,
     {"NTLM", NULL}},
    {"Bearer and Digest",
     {"Digest realm=\"r\", nonce=\"n\"", "Bearer realm=\"e\"", NULL},
     true,
     {T, D},
     2,
     CONF_BRIDGE_NONE,
     true,
     {"Bearer realm=\"e\"", "Digest realm=\"r\", nonce=\"n\"", NULL}},
};

static void
test_offer_table(void **state)
{
    size_t i, j;
    (void)state;
    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const struct offer_case *c = &cases[i];
        struct authtok_challenge ch[AUTHTOK_MAX_CHALLENGES];
        struct offer_value out[OFFER_MAX];
        struct conf_route route;
        size_t nch = 0, n = 99;
        bool rewritten = !c->rewritten;
        const char *why;

        memset(&route, 0, sizeof(route));
        route.offer_set = c->set;
        memcpy(route.offer, c->offer, sizeof(route.offer));
        route.noffer = c->noffer;
        route.bridge = c->bridge;
        for (j = 0; c->backend[j]; j++)
            assert_int_equal(authtok_parse_challenges(c->backend[j], strlen(c->backend[j]), ch,
                                                      AUTHTOK_MAX_CHALLENGES, &nch, &why),
                             AUTHTOK_OK);
        assert_int_equal(offer_rewrite(&route, ch, nch, out, OFFER_MAX, &n, &rewritten), 0);
        assert_int_equal(rewritten, c->rewritten);
        for (j = 0; c->want[j]; j++) {
            if (j >= n)
                fail_msg("case '%s': %zu values, want more", c->name, n);
            if (out[j].len != strlen(c->want[j]) || memcmp(out[j].p, c->want[j], out[j].len))
                fail_msg("case '%s' value %zu: '%.*s' want '%s'", c->name, j, (int)out[j].len,
                         out[j].p, c->want[j]);
        }
        if (n != j)
            fail_msg("case '%s': %zu values, want %zu", c->name, n, j);
    }
}

static void
test_added_flag_and_cap(void **state)
{
    struct authtok_challenge ch[4];
    struct offer_value out[4];
    struct conf_route route;
    size_t nch = 0, n;
    bool rw;
    const char *why;
    (void)state;
    memset(&route, 0, sizeof(route));
    route.offer_set = true;
    route.offer[0] = CONF_SCHEME_NTLM;
    route.offer[1] = CONF_SCHEME_NEGOTIATE;
    route.noffer = 2;
    route.bridge = CONF_BRIDGE_NTLM_TO_NEGOTIATE;
    assert_int_equal(authtok_parse_challenges("Negotiate", 9, ch, 4, &nch, &why), 0);
    assert_int_equal(offer_rewrite(&route, ch, nch, out, 4, &n, &rw), 0);
    assert_int_equal(n, 2);
    assert_true(out[0].added);
    assert_int_equal(out[0].scheme, AUTHTOK_SCHEME_NTLM);
    assert_false(out[1].added);
    /* too small an output array */
    assert_int_equal(offer_rewrite(&route, ch, nch, out, 1, &n, &rw), -1);
    assert_true(offer_has_scheme(ch, nch, AUTHTOK_SCHEME_NEGOTIATE));
    assert_false(offer_has_scheme(ch, nch, AUTHTOK_SCHEME_NTLM));
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_offer_table),
        cmocka_unit_test(test_added_flag_and_cap),
    };
    return cmocka_run_group_tests_name("auth_offer", tests, NULL, NULL);
}
