/*
 * Request-target normaliser and Host validation (see target.h for the policy).
 *
 * The path is walked once, one unit at a time (a literal byte, a separator, or a "%XY"
 * escape), and written to out segment by segment. A finished segment is checked as decoded
 * bytes, so "%2e" under NORMALIZE counts as a dot exactly like "." does. Removing ".." pops
 * the previous output segment by scanning back to its '/'; every output byte is written once
 * and popped at most once, which keeps the whole walk O(n).
 */
#include "proxy/target.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>

/* An IPv6 literal's text is at most this long (with an embedded IPv4 tail). */
#define TARGET_V6_TEXT_MAX 45

static const char target_hexdigits[] = "0123456789ABCDEF";

static int
hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

static bool
is_alpha(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static bool
is_digit(unsigned char c)
{
    return c >= '0' && c <= '9';
}

/* RFC 3986 2.3 unreserved */
static bool
is_unreserved(unsigned char c)
{
    return is_alpha(c) || is_digit(c) || c == '-' || c == '.' || c == '_' || c == '~';
}

static unsigned char
lower(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') ? (unsigned char)(c + ('a' - 'A')) : c;
}

static bool
ci_equal(const char *a, const char *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (lower((unsigned char)a[i]) != lower((unsigned char)b[i]))
            return false;
    return true;
}

/*
 * A byte that, reached through a second decode of "%25XY", would be refused or would change
 * the path's meaning: separators, dot, controls, and '%' itself (a third round of decoding).
 */
static bool
double_decode_danger(int v)
{
    return v < 0x20 || v == 0x7f || v == '.' || v == '/' || v == '\\' || v == '%';
}

/*
 * Well-formed UTF-8 over the escaped bytes (RFC 3629 table 3-7): *need continuation bytes
 * still expected, the next one in [*lo, *hi]. Refuses overlong forms, surrogates, stray
 * continuations and lead bytes that can never occur.
 */
static bool
utf8_step(unsigned v, unsigned *need, unsigned *lo, unsigned *hi)
{
    if (*need > 0) {
        if (v < *lo || v > *hi)
            return false;
        (*need)--;
        *lo = 0x80;
        *hi = 0xbf;
        return true;
    }
    *lo = 0x80;
    *hi = 0xbf;
    if (v >= 0xc2 && v <= 0xdf)
        *need = 1;
    else if (v >= 0xe0 && v <= 0xef) {
        *need = 2;
        if (v == 0xe0)
            *lo = 0xa0;
        else if (v == 0xed)
            *hi = 0x9f;
    } else if (v >= 0xf0 && v <= 0xf4) {
        *need = 3;
        if (v == 0xf0)
            *lo = 0x90;
        else if (v == 0xf4)
            *hi = 0x8f;
    } else
        return false;
    return true;
}

/*
 * Normalises the path p[0..n) (n == 0, or p[0] == '/') into out. Returns 0 with *olen_out, or
 * -1 with *why_out.
 */
static int
normalize_path(const char *p, size_t n, enum target_policy pol, char *out, size_t outcap,
               size_t *olen_out, const char **why_out)
{
    const bool strict = pol != TARGET_NORMALIZE;
    size_t i = 1, o = 1, seg = 1;
    unsigned need = 0, lo = 0x80, hi = 0xbf;

    if (n == 0) { /* absolute-form path-abempty */
        if (outcap < 1)
            goto small;
        out[0] = '/';
        *olen_out = 1;
        return 0;
    }
    /* Every unit writes at most as many bytes as it consumes, so o <= i <= n throughout. */
    if (outcap < n)
        goto small;
    out[0] = '/';
    for (;;) {
        bool sep = false;
        if (i < n) {
            unsigned char c = (unsigned char)p[i];
            int v = -1;
            if (c == '%') {
                int h1 = n - i >= 3 ? hexval(p[i + 1]) : -1;
                int h2 = n - i >= 3 ? hexval(p[i + 2]) : -1;
                if (h1 < 0 || h2 < 0) {
                    *why_out = "malformed percent-escape in path";
                    return -1;
                }
                v = h1 * 16 + h2;
                i += 3;
            } else
                i++;
            if (need > 0 && v < 0x80) {
                *why_out = "ill-formed UTF-8 in path escapes";
                return -1;
            }
            if (v < 0) {
                if (c == '/')
                    sep = true;
                else if (c == '\\') {
                    if (strict) {
                        *why_out = "backslash in path";
                        return -1;
                    }
                    sep = true;
                } else
                    out[o++] = (char)c;
            } else if (v < 0x20 || v == 0x7f) {
                *why_out = "encoded NUL or control byte in path";
                return -1;
            } else if (v == '/') {
                *why_out = "encoded slash (%2F) in path";
                return -1;
            } else if (v == '\\') {
                if (strict) {
                    *why_out = "encoded backslash (%5C) in path";
                    return -1;
                }
                sep = true;
            } else if (v == '.' && strict) {
                *why_out = "encoded dot (%2E) in path";
                return -1;
            } else if (is_unreserved((unsigned char)v))
                out[o++] = (char)v;
            else {
                if (v >= 0x80 && !utf8_step((unsigned)v, &need, &lo, &hi)) {
                    *why_out = "ill-formed UTF-8 in path escapes";
                    return -1;
                }
                out[o++] = '%';
                out[o++] = target_hexdigits[v >> 4];
                out[o++] = target_hexdigits[v & 15];
            }
            if (!sep)
                continue;
        }

        /* The segment out[seg..o) has ended, at a separator (sep) or at the end of the path. */
        size_t slen = o - seg;
        if (slen == 0) {
            if (!sep)
                break; /* "/" or a trailing slash */
            if (strict) {
                *why_out = "empty segment (//) in path";
                return -1;
            }
            continue; /* NORMALIZE collapses "//" before dot segments are removed */
        }
        if (slen == 1 && out[seg] == '.') {
            if (strict) {
                *why_out = "dot-segment in path";
                return -1;
            }
            o = seg;
        } else if (slen == 2 && out[seg] == '.' && out[seg + 1] == '.') {
            if (strict) {
                *why_out = "dot-segment in path";
                return -1;
            }
            if (seg == 1) {
                *why_out = "path climbs above the root";
                return -1;
            }
            /* out[seg - 1] is the '/' ending the previous segment; drop that segment. */
            o = seg - 1;
            while (out[o - 1] != '/')
                o--;
        } else if (sep)
            out[o++] = '/';
        seg = o;
        if (!sep)
            break;
    }
    if (need > 0) {
        *why_out = "ill-formed UTF-8 in path escapes";
        return -1;
    }
    /*
     * A kept "%25" followed by two hex digits is a second escape for a backend that decodes
     * twice. Checked on the output, so digits that were themselves escaped ("%25%32%65")
     * count too, and the verdict is the same when the output is normalised again.
     */
    for (size_t k = 0; k + 5 <= o; k++) {
        if (out[k] != '%' || out[k + 1] != '2' || out[k + 2] != '5')
            continue;
        int h1 = hexval(out[k + 3]), h2 = hexval(out[k + 4]);
        if (h1 >= 0 && h2 >= 0 && double_decode_danger(h1 * 16 + h2)) {
            *why_out = "double-encoded escape (%25XY) in path";
            return -1;
        }
    }
    *olen_out = o;
    return 0;

small:
    *why_out = "request-target output buffer too small";
    return -1;
}

/* Splits a syntactically valid Host value into host and optional port (NULL when absent). */
static void
host_split(const char *v, size_t len, size_t *hlen_out, const char **port_out, size_t *plen_out)
{
    const char *colon;
    size_t hlen;
    if (v[0] == '[')
        hlen = (size_t)((const char *)memchr(v, ']', len) - v) + 1;
    else {
        colon = memchr(v, ':', len);
        hlen = colon ? (size_t)(colon - v) : len;
    }
    *hlen_out = hlen;
    *port_out = hlen < len ? v + hlen + 1 : NULL;
    *plen_out = hlen < len ? len - hlen - 1 : 0;
}

/* 1 to 5 digits, 1..65535; returns the value or 0 when invalid. */
static unsigned
port_value(const char *p, size_t n)
{
    unsigned v = 0;
    if (n == 0 || n > 5)
        return 0;
    for (size_t i = 0; i < n; i++) {
        if (!is_digit((unsigned char)p[i]))
            return 0;
        v = v * 10 + (unsigned)(p[i] - '0');
    }
    return v <= 65535 ? v : 0;
}

/* RFC 3986 IPv4address: four dec-octets without leading zeros. */
static bool
ipv4_valid(const char *p, size_t n)
{
    size_t i = 0;
    for (int part = 0; part < 4; part++) {
        size_t start = i;
        unsigned v = 0;
        if (part > 0) {
            if (i >= n || p[i] != '.')
                return false;
            start = ++i;
        }
        while (i < n && is_digit((unsigned char)p[i]) && i - start < 3)
            v = v * 10 + (unsigned)(p[i++] - '0');
        if (i == start || v > 255 || (i - start > 1 && p[start] == '0'))
            return false;
    }
    return i == n;
}

static bool
uri_host_valid(const char *h, size_t n)
{
    bool numeric = true;
    if (n == 0)
        return false;
    if (h[0] == '[') {
        char buf[TARGET_V6_TEXT_MAX + 1];
        struct in6_addr a;
        if (n < 3 || h[n - 1] != ']' || n - 2 > TARGET_V6_TEXT_MAX)
            return false;
        for (size_t i = 1; i + 1 < n; i++)
            if (hexval(h[i]) < 0 && h[i] != ':' && h[i] != '.')
                return false; /* also refuses zone ids and IPvFuture */
        memcpy(buf, h + 1, n - 2);
        buf[n - 2] = '\0';
        return inet_pton(AF_INET6, buf, &a) == 1;
    }
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)h[i];
        if (!is_unreserved(c))
            return false;
        if (!is_digit(c) && c != '.')
            numeric = false;
    }
    return !numeric || ipv4_valid(h, n);
}

bool
target_host_valid(const char *v, size_t len)
{
    size_t hlen, plen;
    const char *port;
    if (v == NULL || len == 0)
        return false;
    if (v[0] == '[') {
        if (memchr(v, ']', len) == NULL)
            return false;
    }
    host_split(v, len, &hlen, &port, &plen);
    if (!uri_host_valid(v, hlen))
        return false;
    if (port == NULL)
        return hlen == len;
    return v[hlen] == ':' && port_value(port, plen) != 0;
}

/*
 * Absolute-form: scheme "://" authority, then path-abempty ending at end (the first '?').
 * Fills the scheme and authority fields of *r and the offset where the path starts.
 */
static int
parse_absolute(const char *raw, size_t end, struct target *r, size_t *path_out,
               const char **why_out)
{
    size_t a, aend;
    const char *slash, *colon;
    if (end >= 7 && ci_equal(raw, "http://", 7)) {
        a = 7;
    } else if (end >= 8 && ci_equal(raw, "https://", 8)) {
        a = 8;
        r->https = true;
    } else {
        slash = memchr(raw, '/', end);
        colon = memchr(raw, ':', end);
        *why_out = colon && (!slash || colon < slash) ? "request-target scheme is not http(s)"
                                                      : "path does not start with '/'";
        return -1;
    }
    slash = memchr(raw + a, '/', end - a);
    aend = slash ? (size_t)(slash - raw) : end;
    if (memchr(raw + a, '@', aend - a) != NULL) {
        *why_out = "userinfo in request-target authority";
        return -1;
    }
    if (!target_host_valid(raw + a, aend - a)) {
        *why_out = "invalid request-target authority";
        return -1;
    }
    r->absolute = true;
    r->host = raw + a;
    host_split(raw + a, aend - a, &r->host_len, &r->port, &r->port_len);
    *path_out = aend;
    return 0;
}

/*
 * Windows (and so IIS) drops trailing dots and spaces from path names: "/ecp./" and
 * "/ecp%20/" are served as "/ecp/" although no prefix match would route them there. Refused in
 * both policies: repairing them would need Windows' exact name rules. p is a normalised path.
 */
static bool
windows_trims(const char *p, size_t len)
{
    for (size_t i = 1; i <= len; i++) {
        if (i < len && p[i] != '/')
            continue;
        /* p[i] ends a segment (or the path); look at the segment's last byte(s) */
        if (p[i - 1] == '.' && p[i - 1] != '/')
            return true;
        if (i >= 4 && p[i - 3] == '%' && p[i - 2] == '2' && p[i - 1] == '0')
            return true;
    }
    return false;
}

int
target_normalize(const char *raw, size_t len, enum target_policy pol, char *out, size_t outcap,
                 struct target *t, const char **why_out)
{
    struct target r = {0};
    const char *why = NULL, *q;
    size_t pstart = 0, pend, olen = 0;

    if (raw == NULL || len == 0) {
        why = "empty request-target";
        goto fail;
    }
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)raw[i];
        if (c < 0x21 || c > 0x7e) {
            why = "control, space or non-ASCII byte in request-target";
            goto fail;
        }
        if (c == '#') {
            why = "fragment (#) in request-target";
            goto fail;
        }
    }
    q = memchr(raw, '?', len);
    pend = q ? (size_t)(q - raw) : len;
    if (q) {
        r.query = q + 1;
        r.query_len = len - pend - 1;
    }

    if (len == 1 && raw[0] == '*') {
        if (outcap < 1) {
            why = "request-target output buffer too small";
            goto fail;
        }
        out[0] = '*';
        r.asterisk = true;
        r.path = out;
        r.path_len = 1;
        *t = r;
        return 0;
    }
    if (raw[0] != '/' && parse_absolute(raw, pend, &r, &pstart, &why) != 0)
        goto fail;
    if (normalize_path(raw + pstart, pend - pstart, pol, out, outcap, &olen, &why) != 0)
        goto fail;
    if (windows_trims(out, olen)) {
        why = "path segment ending in a dot or space (Windows drops them: /ecp./ is /ecp)";
        goto fail;
    }
    r.path = out;
    r.path_len = olen;
    r.changed = olen != pend - pstart || memcmp(out, raw + pstart, olen) != 0;
    *t = r;
    return 0;

fail:
    if (why_out)
        *why_out = why;
    return -1;
}

bool
target_host_agrees(const struct target *t, const char *host_hdr, size_t len)
{
    size_t hlen, plen;
    const char *port;
    unsigned dflt, pa, pb;
    if (t == NULL || !t->absolute || t->host == NULL || !target_host_valid(host_hdr, len))
        return false;
    host_split(host_hdr, len, &hlen, &port, &plen);
    if (hlen != t->host_len || !ci_equal(host_hdr, t->host, hlen))
        return false;
    dflt = t->https ? 443 : 80;
    pa = t->port ? port_value(t->port, t->port_len) : dflt;
    pb = port ? port_value(port, plen) : dflt;
    return pa != 0 && pa == pb;
}
