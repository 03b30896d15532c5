/*
 * Exchange exploit guard. See guard.h for the rule table.
 *
 * The request target is copied once into a stack buffer laid out as "path?query", decoded in
 * place (decoding only shrinks), folded to lower case, and the path part is normalised the way
 * IIS does before it picks a virtual directory: '\' is '/', empty and "." segments vanish and
 * ".." removes the segment before it. Every rule then reads that one view; header and cookie
 * rules read the header lines directly (nothing there is percent-decoded by Exchange).
 *
 * Sources (cited again next to the rule that uses them):
 *   [MSRC-2022]  Microsoft Security Response Center, "Customer Guidance for Reported Zero-day
 *                Vulnerabilities in Microsoft Exchange Server", 2022-09-29 and its revisions:
 *                IIS URL Rewrite block rule ".*autodiscover\.json.*Powershell.*", later applied
 *                to {UrlDecode:{REQUEST_URI}} because encoded variants got past the first rule;
 *                the first rule was ".*autodiscover\.json.*\@.*Powershell.*". Summarised with
 *                the 2022-10-03/05 updates at eightwone.com (Michel de Rooij, "Exchange 0-days:
 *                CVE-2022-41040 & CVE-2022-41082").
 *                https://msrc-blog.microsoft.com/2022/09/29/customer-guidance-for-reported-zero-
 *                day-vulnerabilities-in-microsoft-exchange-server/
 *   [GTSC-2022]  GTSC, "Warning: new attack campaign utilized a new 0-day RCE vulnerability on
 *                Microsoft Exchange Server", 2022-09-28: autodiscover.json?@evil.com/... with
 *                Email=autodiscover/autodiscover.json%3f@evil.com, reaching /powershell.
 *                https://www.gteltsc.vn/blog/warning-new-attack-campaign-utilized-a-new-0day-
 *                rce-vulnerability-on-microsoft-exchange-server-12715.html
 *   [ORANGE-PS]  Orange Tsai (DEVCORE), "A New Attack Surface on MS Exchange Part 3 -
 *                ProxyShell!", 2021-08 (blog.orange.tw): the autodiscover front end removes the
 *                Email= (explicit logon) value from the URL, so
 *                /autodiscover/autodiscover.json?@foo.com/mapi/nspi/?&Email=autodiscover/
 *                autodiscover.json%3f@foo.com reaches the backend as /mapi/nspi; the PowerShell
 *                backend takes a CommonAccessToken from the X-Rps-CAT query parameter.
 *                https://blog.orange.tw/2021/08/proxyshell-a-new-attack-surface-on-ms-exchange-
 *                part-3.html
 *   [ORANGE-PL]  Orange Tsai, "A New Attack Surface on MS Exchange Part 1 - ProxyLogon!",
 *                2021-08: ProxyRequestHandler.ShouldCopyHeaderToServerRequest, the front end's
 *                list of internal headers it never forwards from a client (X-CommonAccessToken,
 *                X-IsFromCafe, X-SourceCafeServer, msExchProxyUri, ...); the X-BEResource
 *                cookie selects the backend for static resources under /ecp/ and /owa/.
 *                https://blog.orange.tw/2021/08/proxylogon-a-new-attack-surface-on-ms-exchange-
 *                part-1.html
 *   [EOMT-2021]  Microsoft CSS-Exchange, Security/BackendCookieMitigation.ps1 (also in
 *                ExchangeMitigations.ps1 and EOMT), March 2021, for CVE-2021-26855: abort when
 *                HTTP_COOKIE matches "(.*)X-AnonResource-Backend(.*)" or
 *                "(.*)X-BEResource=(.+)/(.+)~(.+)" (ignoreCase).
 *                https://github.com/microsoft/CSS-Exchange (Security/BackendCookieMitigation.ps1);
 *                https://msrc-blog.microsoft.com/2021/03/05/microsoft-exchange-server-
 *                vulnerabilities-mitigations-march-2021/; the same two patterns as load-balancer
 *                rules: support.kemptechnologies.com/hc/en-us/articles/360058316391
 *   [FE-CODE]    Exchange 2016/2019 Microsoft.Exchange.FrontEndHttpProxy, as published in
 *                decompiled form with the ProxyLogon analyses: EcpProxyRequestHandler sets an
 *                X-BEResource cookie (HttpOnly, value BackEndServer.ToString(), "fqdn~version")
 *                on ECP responses, OwaResourceProxyRequestHandler sets X-AnonResource-Backend the
 *                same way, and EcpProxyRequestHandler never forwards msExchLogonAccount,
 *                msExchLogonMailbox or msExchTargetMailbox from a client (it sets them itself
 *                when proxying down-level).
 *   [CS-OWASSRF] CrowdStrike, "OWASSRF: CrowdStrike Identifies New Method for Bypassing
 *                ProxyNotShell Mitigations", 2022-12-20: POST /owa/mastermailbox%40outlook.com/
 *                powershell reaches the PowerShell backend through OWA (CVE-2022-41080 with
 *                CVE-2022-41082), which the autodiscover rewrite rule does not see.
 *                https://www.crowdstrike.com/blog/owassrf-exploit-analysis-and-recommendations/
 *   [PLOGON-POC] Public CVE-2021-26855 probes and exploits: Cookie "X-BEResource=a]@host:444/
 *                ecp/proxyLogon.ecp#~1941997017" on POST /ecp/x.js (Microsoft's own
 *                Test-ProxyLogon check), "X-BEResource=Admin@host:444/ecp/proxyLogon.ecp?a=~
 *                1942062522" with an msExchLogonMailbox header, and "X-AnonResource=true;
 *                X-AnonResource-Backend=host/ecp/default.flt?~3" on /owa/auth/x.js.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>

#include "proxy/guard.h"

enum guard_rule_index {
    GUARD_R_UNINSPECTABLE,   /* EXG-000 */
    GUARD_R_AD_POWERSHELL,   /* EXG-001 */
    GUARD_R_AD_CONFUSION,    /* EXG-002 */
    GUARD_R_OWASSRF,         /* EXG-003 */
    GUARD_R_POWERSHELL,      /* EXG-004 */
    GUARD_R_RPS_CAT,         /* EXG-005 */
    GUARD_R_INTERNAL_HEADER, /* EXG-006 */
    GUARD_R_BACKEND_COOKIE,  /* EXG-007 */
    GUARD_R_COUNT,
};

static const struct guard_rule guard_table[GUARD_R_COUNT] = {
    [GUARD_R_UNINSPECTABLE] = {"EXG-000", "-",
                               "target too long to inspect or encoded more than 3 times"},
    [GUARD_R_AD_POWERSHELL] = {"EXG-001",
                               "CVE-2022-41040,CVE-2022-41082,CVE-2021-34473,"
                               "CVE-2021-34523",
                               "autodiscover followed by powershell (ProxyNotShell/ProxyShell)"},
    [GUARD_R_AD_CONFUSION] = {"EXG-002", "CVE-2021-34473,CVE-2022-41040",
                              "autodiscover explicit-logon path confusion (ProxyShell SSRF)"},
    [GUARD_R_OWASSRF] = {"EXG-003", "CVE-2022-41080,CVE-2022-41082",
                         "powershell below another vdir (OWASSRF /owa/<mailbox>/powershell)"},
    [GUARD_R_POWERSHELL] = {"EXG-004", "CVE-2022-41082,CVE-2021-34523",
                            "remote PowerShell (/powershell) not published by any route"},
    [GUARD_R_RPS_CAT] = {"EXG-005", "CVE-2021-34523",
                         "X-Rps-CAT query parameter (PowerShell identity token)"},
    [GUARD_R_INTERNAL_HEADER] = {"EXG-006", "CVE-2021-26855,CVE-2021-34523",
                                 "client sent a front-end-to-backend internal header"},
    [GUARD_R_BACKEND_COOKIE] = {"EXG-007", "CVE-2021-26855",
                                "malformed X-BEResource/X-AnonResource-Backend cookie "
                                "(ProxyLogon SSRF)"},
};

#define GUARD_NPOS SIZE_MAX

/* Most '?' positions of one Email= value tried against the path/query boundary (EXG-002). */
#define GUARD_MAX_STRADDLE 16

/* The decoded, folded, normalised target: buf[0..path_len) is the path, then '?' and query. */
struct guard_view {
    char buf[2 * GUARD_MAX_PART + 2];
    size_t path_len;
    size_t len;
    bool has_query;
};

static int
hex_digit(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/*
 * Length of the escape at s[0..n) and its byte in *byte_out, or 0 when s does not start with
 * one. Escapes are %XX and IIS/ASP.NET's %uXXXX when it names an ASCII character (a wider one
 * cannot spell anything the rules look for, so it is left as text).
 */
static size_t
escape_at(const char *s, size_t n, unsigned char *byte_out)
{
    if (n >= 3 && s[0] == '%') {
        int hi = hex_digit((unsigned char)s[1]), lo = hex_digit((unsigned char)s[2]);
        if (hi >= 0 && lo >= 0) {
            *byte_out = (unsigned char)(hi * 16 + lo);
            return 3;
        }
    }
    if (n >= 6 && s[0] == '%' && (s[1] == 'u' || s[1] == 'U')) {
        unsigned v = 0;
        for (size_t i = 2; i < 6; i++) {
            int d = hex_digit((unsigned char)s[i]);
            if (d < 0)
                return 0;
            v = v * 16 + (unsigned)d;
        }
        if (v < 0x80) {
            *byte_out = (unsigned char)v;
            return 6;
        }
    }
    return 0;
}

/* One decoding round over s[0..*len) in place; '+' is a space when plus. True if it changed. */
static bool
decode_round(char *s, size_t *len, bool plus)
{
    size_t r = 0, w = 0, n = *len;
    bool changed = false;
    while (r < n) {
        unsigned char b;
        size_t el = escape_at(s + r, n - r, &b);
        if (el > 0) {
            s[w++] = (char)b;
            r += el;
            changed = true;
        } else if (plus && s[r] == '+') {
            s[w++] = ' ';
            r++;
            changed = true;
        } else {
            s[w++] = s[r++];
        }
    }
    *len = w;
    return changed;
}

/*
 * Decodes until stable. Returns -1 when GUARD_DECODE_ROUNDS rounds did not reach a stable text:
 * four layers of encoding are not something a mail client produces.
 */
static int
decode_stable(char *s, size_t *len, bool plus)
{
    for (int round = 0; round < GUARD_DECODE_ROUNDS; round++)
        if (!decode_round(s, len, plus))
            return 0;
    for (size_t i = 0; i < *len; i++) {
        unsigned char b;
        if (escape_at(s + i, *len - i, &b) > 0 || (plus && s[i] == '+'))
            return -1;
    }
    return 0;
}

static void
fold(char *s, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (s[i] >= 'A' && s[i] <= 'Z')
            s[i] = (char)(s[i] - 'A' + 'a');
}

/*
 * Normalises the decoded path s[0..len) in place; s[0] is '/'. Returns the new length (at least
 * 1). Each segment is written after a '/' that the reader has already passed, so the writer
 * never overtakes it.
 */
static size_t
normalise_path(char *s, size_t len)
{
    size_t r = 0, w = 0;
    for (size_t i = 0; i < len; i++)
        if (s[i] == '\\')
            s[i] = '/';
    while (r < len) {
        while (r < len && s[r] == '/')
            r++;
        size_t start = r;
        while (r < len && s[r] != '/')
            r++;
        size_t sl = r - start;
        if (sl == 0 || (sl == 1 && s[start] == '.'))
            continue;
        if (sl == 2 && s[start] == '.' && s[start + 1] == '.') {
            while (w > 0 && s[w - 1] != '/')
                w--;
            if (w > 0)
                w--;
            continue;
        }
        s[w++] = '/';
        memmove(s + w, s + start, sl);
        w += sl;
    }
    if (w == 0)
        s[w++] = '/';
    return w;
}

/* Fills v from in. Returns -1 when the target cannot be inspected (EXG-000). */
static int
view_build(struct guard_view *v, const struct guard_input *in)
{
    size_t plen = in->path != NULL ? in->path_len : 0;
    size_t qlen = in->query != NULL ? in->query_len : 0;
    if (plen > GUARD_MAX_PART || qlen > GUARD_MAX_PART)
        return -1;

    /* a leading '/' gives normalise_path the slash it needs before the first segment */
    v->buf[0] = '/';
    if (plen > 0)
        memcpy(v->buf + 1, in->path, plen);
    plen++;
    if (decode_stable(v->buf, &plen, false) != 0)
        return -1;
    fold(v->buf, plen);
    v->path_len = normalise_path(v->buf, plen);
    v->len = v->path_len;
    v->has_query = in->query != NULL;
    if (!v->has_query)
        return 0;

    char *q = v->buf + v->path_len + 1;
    v->buf[v->path_len] = '?';
    if (qlen > 0)
        memcpy(q, in->query, qlen);
    if (decode_stable(q, &qlen, true) != 0)
        return -1;
    fold(q, qlen);
    v->len = v->path_len + 1 + qlen;
    return 0;
}

/* Index of the first needle (lower case) in h[0..hl), or GUARD_NPOS. */
static size_t
find(const char *h, size_t hl, const char *needle)
{
    size_t nl = strlen(needle);
    if (nl == 0 || nl > hl)
        return nl == 0 ? 0 : GUARD_NPOS;
    for (size_t i = 0; i + nl <= hl; i++)
        if (h[i] == needle[0] && memcmp(h + i, needle, nl) == 0)
            return i;
    return GUARD_NPOS;
}

/* Path segment seg[0..sl) equals word, ignoring trailing dots and spaces as Windows does. */
static bool
segment_is(const char *seg, size_t sl, const char *word)
{
    while (sl > 0 && (seg[sl - 1] == '.' || seg[sl - 1] == ' '))
        sl--;
    return sl == strlen(word) && memcmp(seg, word, sl) == 0;
}

/* The n-th path segment (0-based) of v, or false when there are fewer. */
static bool
segment(const struct guard_view *v, size_t n, const char **seg_out, size_t *sl_out)
{
    size_t i = 0;
    for (;;) {
        while (i < v->path_len && v->buf[i] == '/')
            i++;
        if (i >= v->path_len)
            return false;
        size_t start = i;
        while (i < v->path_len && v->buf[i] != '/')
            i++;
        if (n-- == 0) {
            *seg_out = v->buf + start;
            *sl_out = i - start;
            return true;
        }
    }
}

/*
 * EXG-001. [MSRC-2022] blocks ".*autodiscover\.json.*Powershell.*" on the URL-decoded
 * REQUEST_URI (path and query together), after [GTSC-2022] showed the first, '@'-bound rule
 * could be stepped around. Here "autodiscover" alone (not only ".json") starts the match, so the
 * autodiscover.xml spelling of the same SSRF is refused too; no Exchange client puts
 * "powershell" after "autodiscover" in a URL.
 */
static bool
rule_autodiscover_powershell(const struct guard_view *v)
{
    size_t p = find(v->buf, v->len, "autodiscover");
    if (p == GUARD_NPOS)
        return false;
    p += strlen("autodiscover");
    return find(v->buf + p, v->len - p, "powershell") != GUARD_NPOS;
}

/*
 * True when value (an Email= value, decoded) occurs in the target starting inside the path and
 * ending inside the query: the front end removes that text from the URL [ORANGE-PS], so the
 * backend path is no longer the autodiscover one. Such an occurrence covers the '?' at
 * buf[path_len], so only the value's '?' positions are tried.
 */
static bool
straddles_boundary(const struct guard_view *v, const char *value, size_t vl)
{
    size_t tried = 0;
    for (size_t k = 1; k < vl && tried < GUARD_MAX_STRADDLE; k++) {
        if (value[k] != '?')
            continue;
        tried++;
        if (k > v->path_len)
            break;
        size_t start = v->path_len - k;
        if (start + vl <= v->len && memcmp(v->buf + start, value, vl) == 0)
            return true;
    }
    return false;
}

/*
 * EXG-002. ProxyShell's SSRF [ORANGE-PS], reused by ProxyNotShell [GTSC-2022]: on an
 * autodiscover path, a query that opens with '@' (the "address" the front end cuts out), an
 * Email= value that names autodiscover ("autodiscover/autodiscover.json?@x"), or any Email=
 * value that straddles the path/query boundary. A real AutoDiscover v2 request carries
 * Email=alice@contoso.com: an address that names no vdir and lies wholly in the query.
 */
static bool
rule_autodiscover_confusion(const struct guard_view *v)
{
    if (!v->has_query || find(v->buf, v->path_len, "autodiscover") == GUARD_NPOS)
        return false;
    const char *q = v->buf + v->path_len + 1;
    size_t ql = v->len - v->path_len - 1;
    size_t i = 0;
    while (i < ql && (q[i] == ' ' || q[i] == '?' || q[i] == '&'))
        i++;
    if (i < ql && q[i] == '@')
        return true;

    size_t at = 0;
    for (;;) {
        size_t p = find(q + at, ql - at, "email=");
        if (p == GUARD_NPOS)
            return false;
        const char *value = q + at + p + strlen("email=");
        size_t vl = 0;
        while (value + vl < q + ql && value[vl] != '&')
            vl++;
        if (find(value, vl, "autodiscover/") != GUARD_NPOS ||
            find(value, vl, "autodiscover.json") != GUARD_NPOS || straddles_boundary(v, value, vl))
            return true;
        at = (size_t)(value - q) + vl;
    }
}

/*
 * EXG-003. OWASSRF [CS-OWASSRF]: /owa/<mailbox>/powershell is handed to the PowerShell backend
 * by OWA's explicit-logon handling. Any vdir with a later "powershell" segment is refused; no
 * OWA, ECP, EWS, MAPI, RPC or ActiveSync URL has one.
 */
static bool
rule_owassrf(const struct guard_view *v)
{
    const char *seg;
    size_t sl;
    if (!segment(v, 0, &seg, &sl) || segment_is(seg, sl, "powershell"))
        return false;
    for (size_t n = 1; segment(v, n, &seg, &sl); n++)
        if (segment_is(seg, sl, "powershell"))
            return true;
    return false;
}

/*
 * EXG-004. The RCE half of ProxyShell and ProxyNotShell runs in the remote PowerShell vdir
 * [ORANGE-PS] [MSRC-2022]; Microsoft's guidance was to keep remote PowerShell away from
 * non-administrators. Refused unless a route publishes /powershell by name.
 */
static bool
rule_powershell(const struct guard_view *v, bool published)
{
    const char *seg;
    size_t sl;
    return !published && segment(v, 0, &seg, &sl) && segment_is(seg, sl, "powershell");
}

/*
 * EXG-005. The PowerShell backend accepts a serialised CommonAccessToken in the X-Rps-CAT query
 * parameter, which ProxyShell forged to run as an administrator (CVE-2021-34523) [ORANGE-PS].
 * Only the front end adds it; refused on every path, published or not.
 */
static bool
rule_rps_cat(const struct guard_view *v)
{
    if (!v->has_query)
        return false;
    return find(v->buf + v->path_len + 1, v->len - v->path_len - 1, "x-rps-cat") != GUARD_NPOS;
}

/*
 * EXG-006. Headers the front end sets towards the backend and removes from client requests:
 * four from ProxyRequestHandler's list [ORANGE-PL] plus EcpProxyRequestHandler's
 * msExchLogonAccount, msExchLogonMailbox and msExchTargetMailbox [FE-CODE]; ProxyLogon sent
 * msExchLogonMailbox through its SSRF to /ecp/proxyLogon.ecp [PLOGON-POC]. Clients never send
 * them. Left out although that list has them: X-Forwarded-For (proxies), client-request-id and
 * return-client-request-id (EWS clients), X-MSExchangeActivityCtx and X-Backend-Diag-* (no
 * attack uses them).
 */
static const char *const guard_internal_headers[] = {
    "X-CommonAccessToken", "X-IsFromCafe",       "X-SourceCafeServer",  "msExchProxyUri",
    "msExchLogonAccount",  "msExchLogonMailbox", "msExchTargetMailbox",
};

/* Every request passes here: all of these names start with X or m and have 12 characters or
 * more, which rules out nearly every header before a compare. */
static bool
rule_internal_header(const struct guard_input *in)
{
    for (size_t i = 0; i < in->nheaders; i++) {
        struct h1_slice nm = in->headers[i].name;
        if (nm.len < 12 || ((nm.p[0] | 0x20) != 'x' && (nm.p[0] | 0x20) != 'm'))
            continue;
        for (size_t k = 0; k < sizeof(guard_internal_headers) / sizeof(guard_internal_headers[0]);
             k++)
            if (h1_slice_eq(nm, guard_internal_headers[k]))
                return true;
    }
    return false;
}

static bool
is_ows(char c)
{
    return c == ' ' || c == '\t';
}

/* "fqdn~version" as BackEndServer.ToString() writes it [FE-CODE]: DNS characters, '~', digits. */
static bool
backend_cookie_well_formed(const char *v, size_t vl)
{
    size_t tilde = GUARD_NPOS;
    for (size_t i = 0; i < vl; i++)
        if (v[i] == '~')
            tilde = i;
    if (tilde == GUARD_NPOS || tilde == 0 || tilde + 1 == vl || vl - tilde - 1 > 10)
        return false;
    for (size_t i = 0; i < tilde; i++) {
        unsigned char c = (unsigned char)v[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '-' || c == '.' || c == '_';
        if (!ok)
            return false;
    }
    for (size_t i = tilde + 1; i < vl; i++)
        if (v[i] < '0' || v[i] > '9')
            return false;
    return true;
}

/* One "name=value" piece of a Cookie header, p[0..n). */
static bool
cookie_pair_bad(const char *p, size_t n)
{
    while (n > 0 && is_ows(*p)) {
        p++;
        n--;
    }
    while (n > 0 && is_ows(p[n - 1]))
        n--;
    const char *eq = memchr(p, '=', n);
    if (eq == NULL)
        return false;
    size_t nl = (size_t)(eq - p);
    while (nl > 0 && is_ows(p[nl - 1]))
        nl--;
    const char *val = eq + 1;
    size_t vl = n - (size_t)(val - p);
    while (vl > 0 && is_ows(*val)) {
        val++;
        vl--;
    }
    bool named = (nl == strlen("x-beresource") && strncasecmp(p, "x-beresource", nl) == 0) ||
                 (nl == strlen("x-anonresource-backend") &&
                  strncasecmp(p, "x-anonresource-backend", nl) == 0);
    return named && vl > 0 && !backend_cookie_well_formed(val, vl);
}

/*
 * EXG-007. CVE-2021-26855: the front end proxies a static-resource request to whatever backend
 * the X-BEResource (or, with X-AnonResource=true, X-AnonResource-Backend) cookie names, and
 * "host:444/ecp/proxyLogon.ecp#~version" turns that into a request to any backend URL
 * [ORANGE-PL] [PLOGON-POC]. [EOMT-2021] aborts X-BEResource values with "/" before "~" and any
 * X-AnonResource-Backend; but the front end itself sets both cookies on browsers as
 * "fqdn~version" [FE-CODE], so a well-formed value passes and anything else (a '/', '@', ':',
 * '#', '?', '%', ']' ...) is refused. Cookie names are matched case-insensitively and pieces
 * are split at ';' and ',' as ASP.NET's cookie collection does.
 */
static bool
rule_backend_cookie(const struct guard_input *in)
{
    for (size_t i = 0; i < in->nheaders; i++) {
        if (!h1_slice_eq(in->headers[i].name, "Cookie"))
            continue;
        const char *p = in->headers[i].value.p, *end = p + in->headers[i].value.len;
        while (p < end) {
            const char *start = p;
            while (p < end && *p != ';' && *p != ',')
                p++;
            if (cookie_pair_bad(start, (size_t)(p - start)))
                return true;
            if (p < end)
                p++;
        }
    }
    return false;
}

const struct guard_rule *
guard_check(const struct guard_input *in)
{
    struct guard_view v;
    if (view_build(&v, in) != 0)
        return &guard_table[GUARD_R_UNINSPECTABLE];
    if (rule_autodiscover_powershell(&v))
        return &guard_table[GUARD_R_AD_POWERSHELL];
    if (rule_autodiscover_confusion(&v))
        return &guard_table[GUARD_R_AD_CONFUSION];
    if (rule_owassrf(&v))
        return &guard_table[GUARD_R_OWASSRF];
    if (rule_powershell(&v, in->powershell_published))
        return &guard_table[GUARD_R_POWERSHELL];
    if (rule_rps_cat(&v))
        return &guard_table[GUARD_R_RPS_CAT];
    if (rule_internal_header(in))
        return &guard_table[GUARD_R_INTERNAL_HEADER];
    if (rule_backend_cookie(in))
        return &guard_table[GUARD_R_BACKEND_COOKIE];
    return NULL;
}

const struct guard_rule *
guard_rules(size_t *n_out)
{
    *n_out = GUARD_R_COUNT;
    return guard_table;
}

const struct guard_rule *
guard_rule_find(const char *id)
{
    if (id == NULL)
        return NULL;
    for (size_t i = 0; i < GUARD_R_COUNT; i++)
        if (strcasecmp(guard_table[i].id, id) == 0)
            return &guard_table[i];
    return NULL;
}
