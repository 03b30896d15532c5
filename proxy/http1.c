/*
 * HTTP/1.x heads and body framing. See http1.h.
 *
 * A head is parsed in one pass of our own: the start line, then each header line as
 * name ":" OWS value OWS CRLF with the byte rules a proxy at the edge needs (CRLF only, no bare
 * CR or LF, no NUL or other control byte but HTAB, no DEL, no obs-fold, no whitespace before
 * the colon). finish_headers then applies the framing rules. Debian's http-parser, which is
 * built non-strict, is not used here; the unit test and the fuzzer run it as an oracle that
 * must agree on every head this parser accepts (tests/unit/h1_oracle.c).
 */
#include "proxy/http1.h"

#include <limits.h>
#include <string.h>
#include <strings.h>

#include "proxy/target.h"

/* RFC 9110 tchar. */
static const unsigned char tchar[256] = {
    ['!'] = 1, ['#'] = 1, ['$'] = 1, ['%'] = 1, ['&'] = 1, ['\''] = 1, ['*'] = 1, ['+'] = 1,
    ['-'] = 1, ['.'] = 1, ['^'] = 1, ['_'] = 1, ['`'] = 1, ['|'] = 1,  ['~'] = 1, ['0'] = 1,
    ['1'] = 1, ['2'] = 1, ['3'] = 1, ['4'] = 1, ['5'] = 1, ['6'] = 1,  ['7'] = 1, ['8'] = 1,
    ['9'] = 1, ['A'] = 1, ['B'] = 1, ['C'] = 1, ['D'] = 1, ['E'] = 1,  ['F'] = 1, ['G'] = 1,
    ['H'] = 1, ['I'] = 1, ['J'] = 1, ['K'] = 1, ['L'] = 1, ['M'] = 1,  ['N'] = 1, ['O'] = 1,
    ['P'] = 1, ['Q'] = 1, ['R'] = 1, ['S'] = 1, ['T'] = 1, ['U'] = 1,  ['V'] = 1, ['W'] = 1,
    ['X'] = 1, ['Y'] = 1, ['Z'] = 1, ['a'] = 1, ['b'] = 1, ['c'] = 1,  ['d'] = 1, ['e'] = 1,
    ['f'] = 1, ['g'] = 1, ['h'] = 1, ['i'] = 1, ['j'] = 1, ['k'] = 1,  ['l'] = 1, ['m'] = 1,
    ['n'] = 1, ['o'] = 1, ['p'] = 1, ['q'] = 1, ['r'] = 1, ['s'] = 1,  ['t'] = 1, ['u'] = 1,
    ['v'] = 1, ['w'] = 1, ['x'] = 1, ['y'] = 1, ['z'] = 1,
};

size_t
h1_head_end(const char *buf, size_t len)
{
    const char *p = buf, *end = buf + len;
    while (p < end) {
        const char *lf = memchr(p, '\n', (size_t)(end - p));
        if (lf == NULL)
            return 0;
        /* An empty line is "\r\n" (or a bare "\n", which the scan later rejects). */
        if (lf == p || (lf == p + 1 && p[0] == '\r')) {
            if (lf == buf || lf == buf + 1)
                return 0; /* leading empty line: not a terminator, caller rejects */
            return (size_t)(lf + 1 - buf);
        }
        p = lf + 1;
    }
    return 0;
}

bool
h1_list_has(struct h1_slice s, const char *token)
{
    size_t tl = strlen(token);
    const char *p = s.p, *end = s.p + s.len;
    while (p < end) {
        while (p < end && (*p == ' ' || *p == '\t' || *p == ','))
            p++;
        const char *start = p;
        while (p < end && *p != ',')
            p++;
        const char *e = p;
        while (e > start && (e[-1] == ' ' || e[-1] == '\t'))
            e--;
        if ((size_t)(e - start) == tl && strncasecmp(start, token, tl) == 0)
            return true;
    }
    return false;
}

const struct h1_header *
h1_find(const struct h1_head *h, const char *name)
{
    size_t n = strlen(name);
    for (size_t i = 0; i < h->nheaders; i++)
        if (h->headers[i].name.len == n && strncasecmp(h->headers[i].name.p, name, n) == 0)
            return &h->headers[i];
    return NULL;
}

/* Does the word hold a byte below 0x20 or equal to 0x7f? Nonzero when it does: each such byte
 * sets the high bit of its lane. Borrows only run from a flagged lane upwards, so the lowest
 * flagged lane is always a real one, which lets a little-endian host jump straight to it. */
static inline uint64_t
word_special_mask(uint64_t x)
{
    const uint64_t ones = 0x0101010101010101ULL, highs = 0x8080808080808080ULL;
    uint64_t del = x ^ (0x7f * ones);
    return (((x - 0x20 * ones) & ~x) | ((del - ones) & ~del)) & highs;
}

/* Bytes to skip before the first special byte of a word with a nonzero mask. */
static inline size_t
word_special_skip(uint64_t mask)
{
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    return (size_t)__builtin_ctzll(mask) / 8;
#else
    /* Big-endian: the lowest lane is the last byte; the byte loop finds the first one. */
    (void)mask;
    return 0;
#endif
}

/* The byte rules of a header line for the byte at p (p < end): NULL when it may appear in a
 * line (a CR only as the start of CRLF), else the reason. */
static const char *
bad_header_byte(const char *p, const char *end)
{
    unsigned char c = (unsigned char)*p;
    if (c == '\r')
        return end - p >= 2 && p[1] == '\n' ? NULL : "bare CR in header";
    if (c == '\n')
        return "bare LF in header";
    if (c == 0)
        return "NUL in header";
    if (c == 0x7f)
        return "DEL in header";
    if (c < 0x20 && c != '\t')
        return "control character in header";
    return NULL;
}

/* Why the line at name cannot go on at p, the first byte that is not a tchar (p < end). */
static const char *
name_stop_reason(const char *name, const char *p, const char *end)
{
    bool ws = *p == ' ' || *p == '\t';
    if (p == name && ws)
        return "obsolete line folding";
    const char *why = bad_header_byte(p, end);
    if (why != NULL)
        return why;
    if (ws)
        /* "Host : x": some servers strip the space and some do not; two readings of one
         * header is how requests are smuggled (RFC 9112 section 5.1 says reject). */
        return "whitespace before colon in header";
    if (*p == '\r')
        return "header line without colon";
    if (p == name)
        return "empty header name";
    return "invalid header name";
}

/*
 * Walks the header block [p, end), which must end with the empty line, one line at a time:
 * name ":" OWS value OWS CRLF, the name 1*tchar, the value any bytes but control bytes other
 * than HTAB and DEL (obs-text included), OWS trimmed off both ends. Fills h->headers and
 * h->nheaders. Returns NULL or the reason; *status_out is set only for 431.
 */
static const char *
parse_fields(const char *p, const char *end, struct h1_head *h, size_t maxhdrs, int *status_out)
{
    for (;;) {
        if (p >= end)
            return "head without an empty line";
        if (*p == '\r') {
            if (end - p < 2 || p[1] != '\n')
                return "bare CR in header";
            /* Callers pass the head h1_head_end found, so the first empty line is the last. */
            return p + 2 == end ? NULL : "bytes after the empty line";
        }

        const char *name = p;
        while (p < end && tchar[(unsigned char)*p])
            p++;
        if (p >= end)
            return "head without an empty line";
        if (*p != ':' || p == name)
            return name_stop_reason(name, p, end);
        if (h->nheaders >= maxhdrs) {
            *status_out = 431;
            return "too many header lines";
        }
        const char *name_end = p++;

        while (p < end && (*p == ' ' || *p == '\t'))
            p++;
        const char *value = p;
        /* Values are most of a head's bytes: ordinary runs go 8 at a time, and a word with a
         * special byte (HTAB, CR, anything to refuse) lands on that byte. */
        for (;;) {
            while (end - p >= 8) {
                uint64_t w, m;
                memcpy(&w, p, sizeof(w));
                m = word_special_mask(w);
                if (m != 0) {
                    p += word_special_skip(m);
                    break;
                }
                p += 8;
            }
            while (p < end && (unsigned char)*p >= 0x20 && *p != 0x7f)
                p++;
            if (p >= end)
                return "head without an empty line";
            if (*p == '\t') {
                p++;
                continue;
            }
            const char *why = bad_header_byte(p, end);
            if (why != NULL)
                return why;
            break; /* CRLF */
        }
        const char *value_end = p;
        while (value_end > value && (value_end[-1] == ' ' || value_end[-1] == '\t'))
            value_end--;

        struct h1_header *x = &h->headers[h->nheaders++];
        x->name.p = name;
        x->name.len = (size_t)(name_end - name);
        x->value.p = value;
        x->value.len = (size_t)(value_end - value);
        x->line.p = name;
        x->line.len = (size_t)(value_end - name);
        p += 2;
    }
}

/* Strict Content-Length: 1*DIGIT, no sign, no spaces inside, fits in int64. */
static int
parse_content_length(struct h1_slice v, uint64_t *out)
{
    if (v.len == 0 || v.len > 19)
        return -1;
    uint64_t n = 0;
    for (size_t i = 0; i < v.len; i++) {
        if (v.p[i] < '0' || v.p[i] > '9')
            return -1;
        n = n * 10 + (uint64_t)(v.p[i] - '0');
    }
    if (n > (uint64_t)INT64_MAX)
        return -1;
    *out = n;
    return 0;
}

/* Does the OWS around x's value hold an HTAB? parse_fields leaves the line's CRLF in the
 * buffer, so the trailing OWS runs up to the CR. */
static bool
ows_has_tab(const struct h1_header *x)
{
    for (const char *q = x->name.p + x->name.len + 1; q < x->value.p; q++)
        if (*q == '\t')
            return true;
    for (const char *q = x->value.p + x->value.len; *q != '\r'; q++)
        if (*q == '\t')
            return true;
    return false;
}

/*
 * Derives framing and connection flags from the headers parse_fields found, and applies the
 * smuggling rules that depend on header values. Returns NULL or a reason.
 */
static const char *
finish_headers(struct h1_head *h, bool is_request, int *status_out)
{
    const struct h1_header *cl = NULL, *te = NULL, *host = NULL;
    size_t nhost = 0;
    bool conn_close = false, conn_keep = false;

    h->upgrade = false;
    h->expect_continue = false;
    for (size_t i = 0; i < h->nheaders; i++) {
        const struct h1_header *x = &h->headers[i];
        if (h1_slice_eq(x->name, "Content-Length")) {
            if (cl != NULL) {
                *status_out = 400;
                return "several Content-Length headers";
            }
            cl = x;
        } else if (h1_slice_eq(x->name, "Transfer-Encoding")) {
            if (te != NULL) {
                *status_out = 400;
                return "several Transfer-Encoding headers";
            }
            te = x;
        } else if (x->name.len > 17 && strncasecmp(x->name.p, "Transfer-Encoding", 17) == 0) {
            /* http-parser (node before 12, and others built on it) flags a message as
             * Transfer-Encoding as soon as a name starts with it: one more reading of the
             * framing than ours. */
            *status_out = is_request ? 400 : 502;
            return "header name that extends Transfer-Encoding";
        } else if (h1_slice_eq(x->name, "Connection")) {
            if (h1_list_has(x->value, "close"))
                conn_close = true;
            if (h1_list_has(x->value, "keep-alive"))
                conn_keep = true;
        } else if (is_request && h1_slice_eq(x->name, "Host")) {
            host = x;
            nhost++;
        } else if (h1_slice_eq(x->name, "Upgrade")) {
            h->upgrade = true;
        } else if (is_request && h1_slice_eq(x->name, "Expect")) {
            if (h1_slice_eq(x->value, "100-continue"))
                h->expect_continue = true;
        }
    }

    /* RFC 9112 3.2: exactly one valid Host in HTTP/1.1, at most one in 1.0. With two, servers
     * and proxies disagree on which one counts. */
    if (is_request) {
        if (nhost > 1) {
            *status_out = 400;
            return "several Host headers";
        }
        if (nhost == 0 && h->version_minor >= 1) {
            *status_out = 400;
            return "HTTP/1.1 request without Host";
        }
        if (host != NULL && !target_host_valid(host->value.p, host->value.len)) {
            *status_out = 400;
            return "invalid Host";
        }
    }
    /* RFC 9112 6.1: Transfer-Encoding in an HTTP/1.0 message means faulty framing. */
    if (te != NULL && h->version_minor == 0) {
        *status_out = is_request ? 400 : 502;
        return "Transfer-Encoding in an HTTP/1.0 message";
    }
    /* RFC 9110 allows HTAB in OWS, but next to a framing value it is a known desync trick
     * ("Transfer-Encoding:\tchunked"), and parsers behind us disagree on it: http-parser
     * refuses "Content-Length: 5\t" and reads "chunked\t" as another coding. */
    if ((cl != NULL && ows_has_tab(cl)) || (te != NULL && ows_has_tab(te))) {
        *status_out = is_request ? 400 : 502;
        return "tab around a framing header value";
    }
    if (cl != NULL && te != NULL) {
        *status_out = 400;
        return "Content-Length together with Transfer-Encoding";
    }
    h->content_length = 0;
    if (te != NULL) {
        /* Only "chunked" alone is accepted: anything else cannot be framed safely. */
        if (!h1_slice_eq(te->value, "chunked")) {
            *status_out = is_request ? 400 : 502;
            return "unsupported Transfer-Encoding";
        }
        h->body = H1_BODY_CHUNKED;
    } else if (cl != NULL) {
        if (parse_content_length(cl->value, &h->content_length) != 0) {
            *status_out = is_request ? 400 : 502;
            return "malformed Content-Length";
        }
        h->body = h->content_length > 0 ? H1_BODY_LENGTH : H1_BODY_NONE;
    } else {
        h->body = is_request ? H1_BODY_NONE : H1_BODY_EOF;
    }

    if (h->version_minor >= 1)
        h->keep_alive = !conn_close;
    else
        h->keep_alive = conn_keep && !conn_close;
    return NULL;
}

static int
parse_version(const char *p, size_t len, int *minor_out)
{
    if (len != 8 || memcmp(p, "HTTP/1.", 7) != 0)
        return -1;
    if (p[7] != '0' && p[7] != '1')
        return -1;
    *minor_out = p[7] - '0';
    return 0;
}

/* Splits off the first line; returns its length without CRLF, or 0 if it has no CRLF. */
static size_t
first_line(const char *buf, size_t len, size_t *next_out)
{
    const char *lf = memchr(buf, '\n', len);
    if (lf == NULL || lf == buf || lf[-1] != '\r')
        return 0;
    *next_out = (size_t)(lf + 1 - buf);
    return (size_t)(lf - 1 - buf);
}

int
h1_parse_request(const char *buf, size_t len, struct h1_head *h, struct h1_header *hdrs,
                 size_t maxhdrs, int *status_out, const char **why_out)
{
    const char *why = NULL;
    int status = 400;
    size_t next = 0, ll;

    memset(h, 0, sizeof(*h));
    h->headers = hdrs;
    h->head_len = len;

    ll = first_line(buf, len, &next);
    if (ll == 0) {
        why = "malformed request line";
        goto fail;
    }
    /* method SP request-target SP HTTP-version, single spaces */
    const char *sp1 = memchr(buf, ' ', ll);
    if (sp1 == NULL || sp1 == buf) {
        why = "malformed request line";
        goto fail;
    }
    for (const char *q = buf; q < sp1; q++)
        if (!tchar[(unsigned char)*q]) {
            why = "invalid method";
            goto fail;
        }
    const char *tstart = sp1 + 1;
    const char *sp2 = memchr(tstart, ' ', (size_t)(buf + ll - tstart));
    if (sp2 == NULL || sp2 == tstart) {
        why = "malformed request line";
        goto fail;
    }
    for (const char *q = tstart; q < sp2; q++) {
        unsigned char c = (unsigned char)*q;
        if (c <= 0x20 || c >= 0x7f) {
            why = "invalid request target";
            goto fail;
        }
    }
    if (parse_version(sp2 + 1, (size_t)(buf + ll - sp2 - 1), &h->version_minor) != 0) {
        /* HTTP/2.0 or 0.9 on an HTTP/1 connection */
        if ((size_t)(buf + ll - sp2 - 1) == 8 && memcmp(sp2 + 1, "HTTP/", 5) == 0)
            status = 505;
        why = "unsupported HTTP version";
        goto fail;
    }
    h->method.p = buf;
    h->method.len = (size_t)(sp1 - buf);
    h->target.p = tstart;
    h->target.len = (size_t)(sp2 - tstart);
    if (h1_slice_eq(h->method, "CONNECT")) {
        status = 501;
        why = "CONNECT is not supported by a reverse proxy";
        goto fail;
    }

    why = parse_fields(buf + next, buf + len, h, maxhdrs, &status);
    if (why != NULL)
        goto fail;
    why = finish_headers(h, true, &status);
    if (why != NULL)
        goto fail;
    /* An Upgrade request is served as a plain HTTP/1.1 request: Upgrade is hop-by-hop and is
     * not forwarded (RFC 9110 section 7.8 lets a server ignore it). */
    return H1_OK;

fail:
    *status_out = status;
    *why_out = why;
    return H1_ERROR;
}

int
h1_parse_response(const char *buf, size_t len, bool head_request, struct h1_head *h,
                  struct h1_header *hdrs, size_t maxhdrs, int *status_out, const char **why_out)
{
    const char *why = NULL;
    int status = 502;
    size_t next = 0, ll;

    memset(h, 0, sizeof(*h));
    h->headers = hdrs;
    h->head_len = len;

    ll = first_line(buf, len, &next);
    /* HTTP/1.x SP 3DIGIT SP reason (reason may be empty; some servers omit the SP) */
    if (ll < 12 || parse_version(buf, 8, &h->version_minor) != 0 || buf[8] != ' ') {
        why = "malformed status line";
        goto fail;
    }
    for (int i = 9; i < 12; i++)
        if (buf[i] < '0' || buf[i] > '9') {
            why = "malformed status code";
            goto fail;
        }
    h->status = (buf[9] - '0') * 100 + (buf[10] - '0') * 10 + (buf[11] - '0');
    if (h->status < 100) {
        why = "malformed status code";
        goto fail;
    }
    if (ll > 12 && buf[12] != ' ') {
        why = "malformed status line";
        goto fail;
    }
    h->reason.p = buf + (ll > 12 ? 13 : 12);
    h->reason.len = ll > 12 ? ll - 13 : 0;
    for (size_t i = 0; i < h->reason.len; i++) {
        unsigned char c = (unsigned char)h->reason.p[i];
        if ((c < 0x20 && c != '\t') || c == 0x7f) {
            why = "control character in reason phrase";
            goto fail;
        }
    }

    why = parse_fields(buf + next, buf + len, h, maxhdrs, &status);
    if (why != NULL)
        goto fail;
    why = finish_headers(h, false, &status);
    if (why != NULL)
        goto fail;
    if (head_request || h->status < 200 || h->status == 204 || h->status == 304) {
        h->body = H1_BODY_NONE;
        h->content_length = 0;
    }
    if (h->body == H1_BODY_EOF)
        h->keep_alive = false;
    return H1_OK;

fail:
    *status_out = status;
    *why_out = why;
    return H1_ERROR;
}
