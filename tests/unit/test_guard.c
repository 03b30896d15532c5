/*
 * Unit tests for proxy/guard: every rule against public exploit shapes (plain and encoded), real
 * Exchange client traffic that must pass, the rule table, the length limit, and input that ends
 * against a PROT_NONE page.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cmocka.h>

#include "proxy/guard.h"

#define MAXH 4

struct guard_case {
    const char *name;
    const char *path;
    const char *query;            /* NULL: the target has no '?' */
    const char *hdr[MAXH + 1][2]; /* {name, value} pairs, ended by {NULL} */
    bool published;               /* a route publishes /powershell */
    const char *want;             /* rule id, or NULL for "passes" */
};

#define AD "/autodiscover/autodiscover.json"
#define EMS_Q                                                                                      \
    "serializationLevel=Full;ExchClientVer=15.2.1118.7;clientApplication=ManagementShell;"         \
    "TargetServer=;PSVersion=5.1.17763.1852"
#define CAT "VgEAVAdXaW5kb3dzQwBBCEtlcmJlcm9zTBhBZG1pbmlzdHJhdG9yQGNvbnRvc28uY29tVSxTLTEtNS0y"

static const struct guard_case attack_cases[] = {
    /* EXG-000: four layers of encoding */
    {"4x encoded @", "/owa/", "x=%2525252540evil", {{NULL}}, false, "EXG-000"},
    {"4x encoded path", "/owa/%2525252570owershell", NULL, {{NULL}}, false, "EXG-000"},

    /* EXG-001: autodiscover ... powershell (GTSC, MSRC rule, ProxyShell RCE stage) */
    {"GTSC ProxyNotShell",
     AD,
     "@evil.com/powershell&Email=autodiscover/autodiscover.json%3f@evil.com",
     {{NULL}},
     false,
     "EXG-001"},
    {"ProxyShell X-Rps-CAT stage",
     AD,
     "@foo.com/powershell/?X-Rps-CAT=" CAT "&Email=autodiscover/autodiscover.json%3F@foo.com",
     {{NULL}},
     true,
     "EXG-001"},
    {"encoded @ and s, double-encoded Email",
     AD,
     "%40evil.com/Power%73hell&Email=Autodiscover/autodiscover.json%253f%2540evil.com",
     {{NULL}},
     false,
     "EXG-001"},
    {"double-encoded o past the first MS rule",
     "/AutoDiscover/autodiscover.json",
     "a=%2540x/p%256fwershell",
     {{NULL}},
     false,
     "EXG-001"},
    {"autodiscover.xml spelling",
     "/autodiscover/autodiscover.xml",
     "@x.com/PowerShell?serializationLevel=Full&Email=autodiscover/autodiscover.xml%3f@x.com",
     {{NULL}},
     false,
     "EXG-001"},
    {"WinRM payload URL",
     AD,
     "@fucky0u.edu/PowerShell?" EMS_Q "&Email=autodiscover/autodiscover.json%3f@fucky0u.edu",
     {{"User-Agent", "Microsoft WinRM Client"}, {NULL}},
     false,
     "EXG-001"},
    {"query folded into the path", AD "%3f@evil.com/powershell", NULL, {{NULL}}, false, "EXG-001"},

    /* EXG-002: autodiscover explicit-logon confusion without powershell (ProxyShell SSRF) */
    {"ProxyShell mapi/nspi probe",
     AD,
     "@foo.com/mapi/nspi/?&Email=autodiscover/autodiscover.json%3f@foo.com",
     {{NULL}},
     false,
     "EXG-002"},
    {"ProxyShell owa probe",
     AD,
     "@test.com/owa/?&Email=autodiscover/autodiscover.json%3F@test.com",
     {{NULL}},
     false,
     "EXG-002"},
    {"ProxyShell LegacyDN stage",
     AD,
     "@fucky0u.edu/autodiscover/autodiscover.xml?=&Email=autodiscover/autodiscover.json%3f@"
     "fucky0u.edu",
     {{"Content-Type", "text/xml"}, {NULL}},
     false,
     "EXG-002"},
    {"triple-encoded @ (%252540)", AD, "%252540evil.com/mapi/nspi", {{NULL}}, false, "EXG-002"},
    {"Email names autodiscover, encoded slash",
     AD,
     "x=1&Email=AutoDiscover%2Fautodiscover.json%3Fa%40evil.com",
     {{NULL}},
     false,
     "EXG-002"},
    {"Email names the vdir only",
     AD,
     "Protocol=Ews&Email=Autodiscover/x@evil.com",
     {{NULL}},
     false,
     "EXG-002"},
    {"Email straddles path and query",
     AD,
     "a@evil.com/../../mapi/nspi&Email=json%3fa@evil.com",
     {{NULL}},
     false,
     "EXG-002"},
    {"plus as space before @",
     AD,
     "+@evil.com/mapi/nspi&Email=autodiscover/autodiscover.json%3f+@evil.com",
     {{NULL}},
     false,
     "EXG-002"},
    {"ProxyNotShell ffuf probe",
     AD,
     "@mail.contoso.com/&Email=autodiscover/autodiscover.json%3f@mail.contoso.com",
     {{NULL}},
     false,
     "EXG-002"},

    /* EXG-003: OWASSRF, powershell below another vdir */
    {"CrowdStrike OWASSRF",
     "/owa/mastermailbox%40outlook.com/powershell",
     NULL,
     {{NULL}},
     false,
     "EXG-003"},
    {"OWASSRF double-encoded, mixed case",
     "/OWA/mastermailbox%2540outlook.com/PowerShell",
     NULL,
     {{"Content-Type", "application/soap+xml;charset=UTF-8"}, {NULL}},
     true,
     "EXG-003"},
    {"OWASSRF with EMS query", "/owa/x@y.com/powershell/", EMS_Q, {{NULL}}, false, "EXG-003"},
    {"ECP explicit logon, trailing dot",
     "/ecp/admin@contoso.com/PowerShell.",
     NULL,
     {{NULL}},
     false,
     "EXG-003"},
    {"encoded slash", "/owa/x%2fpowershell", NULL, {{NULL}}, false, "EXG-003"},
    {"encoded backslash",
     "/owa/mastermailbox@outlook.com%5cpowershell",
     NULL,
     {{NULL}},
     false,
     "EXG-003"},

    /* EXG-004: /powershell not published */
    {"EMS connect, unpublished", "/powershell", EMS_Q, {{NULL}}, false, "EXG-004"},
    {"mixed case, trailing slash", "/PowerShell/", NULL, {{NULL}}, false, "EXG-004"},
    {"encoded p", "/%70owershell", NULL, {{NULL}}, false, "EXG-004"},
    {"dot segment after decoding", "/owa/..%2fpowershell", NULL, {{NULL}}, false, "EXG-004"},
    {"single-dot segment first", "/%2e/PowerShell", NULL, {{NULL}}, false, "EXG-004"},
    {"trailing space", "/powershell%20", NULL, {{NULL}}, false, "EXG-004"},

    /* EXG-005: X-Rps-CAT */
    {"X-Rps-CAT on published powershell",
     "/powershell",
     "X-Rps-CAT=" CAT,
     {{NULL}},
     true,
     "EXG-005"},
    {"lower case, trailing slash", "/PowerShell/", "x-rps-cat=abc", {{NULL}}, true, "EXG-005"},
    {"encoded dashes elsewhere", "/mapi/nspi/", "X%2DRps%2DCAT=abc", {{NULL}}, false, "EXG-005"},
    {"encoded =, after another param",
     "/powershell",
     "a=1&X-Rps-Cat%3Dabc",
     {{NULL}},
     true,
     "EXG-005"},

    /* EXG-006: internal front-end headers */
    {"ProxyLogon proxyLogon.ecp",
     "/ecp/proxyLogon.ecp",
     NULL,
     {{"msExchLogonMailbox", "S-1-5-20"},
      {"Cookie", "X-BEResource=Admin@EXCH01:444/ecp/proxyLogon.ecp?a=~1942062522;"},
      {NULL}},
     false,
     "EXG-006"},
    {"forged CommonAccessToken",
     "/ews/exchange.asmx",
     NULL,
     {{"X-CommonAccessToken", CAT}, {NULL}},
     false,
     "EXG-006"},
    {"lower-case X-IsFromCafe", "/owa/", NULL, {{"x-isfromcafe", "1"}, {NULL}}, false, "EXG-006"},
    {"X-SourceCafeServer",
     "/mapi/emsmdb/",
     NULL,
     {{"X-SourceCafeServer", "cas01.contoso.com"}, {NULL}},
     false,
     "EXG-006"},
    {"msExchTargetMailbox",
     "/ecp/",
     NULL,
     {{"MSEXCHTARGETMAILBOX", "S-1-5-20"}, {NULL}},
     false,
     "EXG-006"},
    {"msExchProxyUri", "/ecp/", NULL, {{"msexchproxyuri", "https://x/"}, {NULL}}, false, "EXG-006"},
    {"msExchLogonAccount",
     "/ews/exchange.asmx",
     NULL,
     {{"Accept", "*/*"}, {"msExchLogonAccount", "S-1-5-20"}, {NULL}},
     false,
     "EXG-006"},

    /* EXG-007: malformed backend cookies (ProxyLogon) */
    {"Test-ProxyLogon cookie",
     "/ecp/x.js",
     NULL,
     {{"Cookie", "X-BEResource=a]@exch01.contoso.com:444/ecp/proxyLogon.ecp#~1941997017"}, {NULL}},
     false,
     "EXG-007"},
    {"ProxyLogon y.js",
     "/ecp/y.js",
     NULL,
     {{"Cookie", "X-BEResource=Admin@EXCH01:444/ecp/proxyLogon.ecp?a=~1942062522;"}, {NULL}},
     false,
     "EXG-007"},
    {"X-AnonResource-Backend PoC",
     "/owa/auth/x.js",
     NULL,
     {{"Cookie", "X-AnonResource=true;X-AnonResource-Backend=localhost/ecp/default.flt?~3;"
                 "X-BEResource=localhost/owa/auth/logon.aspx?~3;"},
      {NULL}},
     false,
     "EXG-007"},
    {"lower-case name, DDI path",
     "/ecp/a.js",
     NULL,
     {{"Cookie", "x-beresource=localhost:444/ecp/DDI/DDIService.svc/GetObject#~1942062522"},
      {NULL}},
     false,
     "EXG-007"},
    {"comma-separated pair",
     "/ecp/b.js",
     NULL,
     {{"Cookie", "ClientId=0C0D2F3A, X-BEResource=evil.example/x#~1"}, {NULL}},
     false,
     "EXG-007"},
    {"bad cookie in the second Cookie header",
     "/ecp/c.js",
     NULL,
     {{"Cookie", "X-BEResource=exch01.contoso.com~1942062522"},
      {"cookie", "X-ANONRESOURCE-BACKEND =exch01:444/ecp/default.flt?~3"},
      {NULL}},
     false,
     "EXG-007"},
    {"percent-encoded slash in value",
     "/ecp/d.js",
     NULL,
     {{"Cookie", "X-BEResource=localhost%2fecp%2fx~1942062522"}, {NULL}},
     false,
     "EXG-007"},
};

#define BACKEND_COOKIE "S-1-5-21-2412119505-3560892057-1500426294-2779018=u56Lnp2ejJqBnM+Zy8jI"

static const struct guard_case legit_cases[] = {
    {"Outlook autodiscover.xml POST",
     "/autodiscover/autodiscover.xml",
     NULL,
     {{"Content-Type", "text/xml"}, {"User-Agent", "Microsoft Office/16.0 (Outlook)"}, {NULL}},
     false,
     NULL},
    {"mixed-case autodiscover.xml", "/Autodiscover/Autodiscover.xml", NULL, {{NULL}}, false, NULL},
    {"AutoDiscover v2 with Email",
     AD,
     "Email=alice@contoso.com&Protocol=ActiveSync&RedirectCount=1",
     {{NULL}},
     false,
     NULL},
    {"AutoDiscover v2 address in path",
     AD "/v1.0/alice@contoso.com",
     "Protocol=AutodiscoverV1",
     {{NULL}},
     false,
     NULL},
    {"address in path and in Email",
     AD "/v1.0/alice%40contoso.com",
     "Protocol=Rest&Email=alice%40contoso.com",
     {{NULL}},
     false,
     NULL},
    {"plus-addressed Email",
     AD,
     "Email=alice%2Bnews%40contoso.com&Protocol=Ews",
     {{NULL}},
     false,
     NULL},
    {"mailbox named autodiscover-admin",
     AD,
     "Email=autodiscover-admin@contoso.com&Protocol=ActiveSync",
     {{NULL}},
     false,
     NULL},
    {"MAPI emsmdb with X-BackEndCookie",
     "/mapi/emsmdb/",
     "MailboxId=7b3e2c1a-aaaa-bbbb-cccc-0123456789ab@contoso.com",
     {{"Cookie", "X-BackEndCookie=" BACKEND_COOKIE "; MapiContext=AAAA; MapiSequence=1-2"},
      {"X-RequestType", "Execute"},
      {"X-AnchorMailbox", "alice@contoso.com"},
      {NULL}},
     false,
     NULL},
    {"MAPI nspi",
     "/mapi/nspi/",
     "MailboxId=7b3e2c1a-aaaa-bbbb-cccc-0123456789ab@contoso.com",
     {{NULL}},
     false,
     NULL},
    {"RPC over HTTP", "/rpc/rpcproxy.dll", "exch01.contoso.com:6001", {{NULL}}, false, NULL},
    {"OWA logon page",
     "/owa/auth/logon.aspx",
     "url=https%3a%2f%2fmail.contoso.com%2fowa%2f&reason=0",
     {{NULL}},
     false,
     NULL},
    {"OWA with its cookies",
     "/owa/",
     NULL,
     {{"Cookie", "X-BackEndCookie=" BACKEND_COOKIE "; ClientId=0C0D2F3A; X-OWA-CANARY=abc; "
                 "cadata=xyz; cadataTTL=NfFN"},
      {NULL}},
     false,
     NULL},
    {"EWS with request ids and X-Forwarded-For",
     "/EWS/Exchange.asmx",
     NULL,
     {{"client-request-id", "3f1e2d3c-0000-4000-8000-1234567890ab"},
      {"return-client-request-id", "true"},
      {"X-AnchorMailbox", "alice@contoso.com"},
      {"X-Forwarded-For", "203.0.113.7"},
      {NULL}},
     false,
     NULL},
    {"ActiveSync Sync",
     "/Microsoft-Server-ActiveSync",
     "User=alice&DeviceId=ApplDNQ12345&DeviceType=iPhone&Cmd=Sync",
     {{"MS-ASProtocolVersion", "16.1"}, {NULL}},
     false,
     NULL},
    {"plain ECP", "/ecp/", NULL, {{NULL}}, false, NULL},
    {"ECP cross-version", "/ecp/", "ExchClientVer=15", {{NULL}}, false, NULL},
    {"ECP resource with the FE's X-BEResource",
     "/ecp/15.2.1118.7/scripts/microsoft.exchange.controlpanel.js",
     NULL,
     {{"Cookie", "X-BEResource=EXCH01.contoso.com~1942062522; ASP.NET_SessionId=abc"}, {NULL}},
     false,
     NULL},
    {"OWA anonymous resource with the FE's backend cookie",
     "/owa/auth/15.2.1118/themes/resources/logon.css",
     NULL,
     {{"Cookie", "X-AnonResource=true; X-AnonResource-Backend=exch01.contoso.com~1942062522"},
      {NULL}},
     false,
     NULL},
    {"empty X-BEResource", "/ecp/x.js", NULL, {{"Cookie", "X-BEResource="}, {NULL}}, false, NULL},
    {"EMS on published powershell",
     "/powershell",
     EMS_Q,
     {{"User-Agent", "Microsoft WinRM Client"}, {NULL}},
     true,
     NULL},
    {"OWA shared mailbox", "/owa/shared@contoso.com/", NULL, {{NULL}}, false, NULL},
    {"OAB download",
     "/OAB/5c1e2d3f-1111-2222-3333-444455556666/oab.xml",
     NULL,
     {{NULL}},
     false,
     NULL},
    {"OWA service.svc",
     "/owa/service.svc",
     "action=GetAttachmentPreviews&app=Mail&n=107",
     {{NULL}},
     false,
     NULL},
    {"OWA folder named PowerShell", "/owa/", "path=/mail/PowerShell", {{NULL}}, false, NULL},
    {"3x encoded but harmless", "/owa/", "x=100%252541", {{NULL}}, false, NULL},
};

static size_t
build_headers(const struct guard_case *c, struct h1_header *h)
{
    size_t n = 0;
    while (n < MAXH && c->hdr[n][0] != NULL) {
        h[n].name.p = c->hdr[n][0];
        h[n].name.len = strlen(c->hdr[n][0]);
        h[n].value.p = c->hdr[n][1];
        h[n].value.len = strlen(c->hdr[n][1]);
        h[n].line = h[n].name;
        n++;
    }
    return n;
}

/* path and query hold the bytes of c->path and c->query, maybe without a NUL after them. */
static const struct guard_rule *
run_case(const struct guard_case *c, const char *path, const char *query)
{
    struct h1_header h[MAXH];
    struct guard_input in = {
        .path = path,
        .path_len = strlen(c->path),
        .query = query,
        .query_len = c->query != NULL ? strlen(c->query) : 0,
        .headers = h,
        .nheaders = build_headers(c, h),
        .powershell_published = c->published,
    };
    return guard_check(&in);
}

static bool
in_table(const struct guard_rule *r)
{
    size_t n;
    const struct guard_rule *t = guard_rules(&n);
    return r >= t && r < t + n;
}

static int
check_cases(const struct guard_case *cases, size_t n)
{
    int bad = 0;
    for (size_t i = 0; i < n; i++) {
        const struct guard_rule *r = run_case(&cases[i], cases[i].path, cases[i].query);
        const char *got = r != NULL ? r->id : NULL;
        bool ok = (got == NULL && cases[i].want == NULL) ||
                  (got != NULL && cases[i].want != NULL && strcmp(got, cases[i].want) == 0);
        if (r != NULL && !in_table(r))
            ok = false;
        if (!ok) {
            print_error("case \"%s\": want %s, got %s\n", cases[i].name,
                        cases[i].want != NULL ? cases[i].want : "pass", got != NULL ? got : "pass");
            bad++;
        }
    }
    return bad;
}

static void
test_attacks(void **state)
{
    (void)state;
    assert_int_equal(check_cases(attack_cases, sizeof(attack_cases) / sizeof(attack_cases[0])), 0);
}

static void
test_legit(void **state)
{
    (void)state;
    assert_int_equal(check_cases(legit_cases, sizeof(legit_cases) / sizeof(legit_cases[0])), 0);
}

/* Every rule has at least two attack cases, and enough legitimate traffic is covered. */
static void
test_coverage(void **state)
{
    (void)state;
    size_t n;
    const struct guard_rule *t = guard_rules(&n);
    for (size_t r = 0; r < n; r++) {
        size_t hits = 0;
        for (size_t i = 0; i < sizeof(attack_cases) / sizeof(attack_cases[0]); i++)
            if (strcmp(attack_cases[i].want, t[r].id) == 0)
                hits++;
        if (hits < 2)
            print_error("rule %s has %zu attack cases\n", t[r].id, hits);
        assert_true(hits >= 2);
    }
    assert_true(sizeof(legit_cases) / sizeof(legit_cases[0]) >= 15);
}

static void
test_table(void **state)
{
    (void)state;
    size_t n = 0;
    const struct guard_rule *t = guard_rules(&n);
    assert_int_equal(n, 8);
    for (size_t i = 0; i < n; i++) {
        char want[32];
        snprintf(want, sizeof(want), "EXG-%03zu", i);
        assert_string_equal(t[i].id, want);
        assert_non_null(t[i].cve);
        assert_true(strlen(t[i].cve) > 0);
        assert_true(strcmp(t[i].cve, "-") == 0 || strncmp(t[i].cve, "CVE-", 4) == 0);
        assert_non_null(t[i].summary);
        assert_true(strlen(t[i].summary) > 10);
        assert_ptr_equal(guard_rule_find(t[i].id), &t[i]);
    }
    assert_ptr_equal(guard_rule_find("exg-003"), &t[3]);
    assert_null(guard_rule_find("EXG-999"));
    assert_null(guard_rule_find(""));
    assert_null(guard_rule_find(NULL));
}

/* The limit is on each part: GUARD_MAX_PART bytes are inspected, one more is refused. */
static void
test_length_limit(void **state)
{
    (void)state;
    static char big[GUARD_MAX_PART + 2];
    struct guard_input in = {0};
    const struct guard_rule *r;

    memset(big, 'a', sizeof(big));
    big[0] = '/';
    in.path = big;
    in.path_len = GUARD_MAX_PART;
    assert_null(guard_check(&in));
    in.path_len = GUARD_MAX_PART + 1;
    r = guard_check(&in);
    assert_non_null(r);
    assert_string_equal(r->id, "EXG-000");

    in.path = "/owa/";
    in.path_len = 5;
    in.query = big;
    in.query_len = GUARD_MAX_PART;
    assert_null(guard_check(&in));
    in.query_len = GUARD_MAX_PART + 1;
    r = guard_check(&in);
    assert_non_null(r);
    assert_string_equal(r->id, "EXG-000");

    /* the longest inspectable path still has its tail looked at */
    memcpy(big + GUARD_MAX_PART - strlen("/powershell"), "/powershell", strlen("/powershell"));
    in.path = big;
    in.path_len = GUARD_MAX_PART;
    in.query = NULL;
    in.query_len = 0;
    r = guard_check(&in);
    assert_non_null(r);
    assert_string_equal(r->id, "EXG-003");
}

static void
test_empty_and_null(void **state)
{
    (void)state;
    struct guard_input in = {0};
    assert_null(guard_check(&in));
    in.path = "";
    assert_null(guard_check(&in));
    in.query = "";
    assert_null(guard_check(&in));
    in.path = "powershell"; /* no leading slash: still the powershell vdir */
    in.path_len = strlen(in.path);
    const struct guard_rule *r = guard_check(&in);
    assert_non_null(r);
    assert_string_equal(r->id, "EXG-004");
}

/* A copy of s that ends where a PROT_NONE page begins. */
struct page_copy {
    char *map;
    size_t maplen;
    char *p;
};

static void
page_copy(struct page_copy *pc, const char *s)
{
    size_t pg = (size_t)sysconf(_SC_PAGESIZE), n = strlen(s);
    size_t pages = (n + pg - 1) / pg + 1;
    pc->maplen = (pages + 1) * pg;
    pc->map = mmap(NULL, pc->maplen, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    assert_true(pc->map != MAP_FAILED);
    assert_int_equal(mprotect(pc->map + pages * pg, pg, PROT_NONE), 0);
    pc->p = pc->map + pages * pg - n;
    memcpy(pc->p, s, n);
}

static void
test_guard_page(void **state)
{
    (void)state;
    const struct guard_case *sets[] = {attack_cases, legit_cases};
    size_t counts[] = {sizeof(attack_cases) / sizeof(attack_cases[0]),
                       sizeof(legit_cases) / sizeof(legit_cases[0])};
    for (size_t s = 0; s < 2; s++)
        for (size_t i = 0; i < counts[s]; i++) {
            const struct guard_case *c = &sets[s][i];
            struct page_copy pp, qp;
            page_copy(&pp, c->path);
            if (c->query != NULL)
                page_copy(&qp, c->query);
            const struct guard_rule *r = run_case(c, pp.p, c->query != NULL ? qp.p : NULL);
            if (c->want == NULL)
                assert_null(r);
            else
                assert_string_equal(r != NULL ? r->id : "pass", c->want);
            munmap(pp.map, pp.maplen);
            if (c->query != NULL)
                munmap(qp.map, qp.maplen);
        }
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_attacks),      cmocka_unit_test(test_legit),
        cmocka_unit_test(test_coverage),     cmocka_unit_test(test_table),
        cmocka_unit_test(test_length_limit), cmocka_unit_test(test_empty_and_null),
        cmocka_unit_test(test_guard_page),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
