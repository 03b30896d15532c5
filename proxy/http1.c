/*
 * HTTP/1.x heads and body framing. See http1.h.
 *
 * A head is checked in two passes: our own byte scan enforces the smuggling rules that
 * http-parser is lenient about (obs-fold, bare CR or LF, NUL and other control bytes), then
 * http-parser validates the header syntax and framing and reports each field and value as a
 * slice of our buffer. The request line is parsed here because http-parser rejects methods it
 * does not know (RPC_IN_DATA, RPC_OUT_DATA); the parser is given a fixed stand-in request line
 * followed by the real header block, and its callbacks point into the real buffer.
 */
#include "proxy/http1.h"

#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <http_parser.h>

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
    for (size_t i = 0; i < h->nheaders; i++)
        if (h1_slice_eq(h->headers[i].name, name))
            return &h->headers[i];
    return NULL;
}

/*
 * Scans the header lines (after the start line) for bytes that http-parser tolerates but a
 * proxy must not: every line ends in CRLF, no bare CR or LF, no NUL or other control bytes
 * except HTAB, and no line starts with whitespace (obs-fold). Returns NULL or the reason.
 */
/* Does the word hold a byte below 0x20 or equal to 0x7f? (Bit tricks on 8 bytes at once: the
 * result is exact as a yes/no, which is all the fast path needs.) */
static inline bool
word_has_special(uint64_t x)
{
    const uint64_t ones = 0x0101010101010101ULL, highs = 0x8080808080808080ULL;
    uint64_t del = x ^ (0x7f * ones);
    return (((x - 0x20 * ones) & ~x) | ((del - ones) & ~del)) & highs;
}

const char *
h1_scan_header_bytes(const char *p, const char *end)
{
    bool line_start = true;
    for (; p < end; p++) {
        /* Mid-line runs of ordinary bytes go 8 at a time; anything else takes the byte path. */
        while (!line_start && end - p >= 8) {
            uint64_t w;
            memcpy(&w, p, sizeof(w));
            if (word_has_special(w))
                break;
            p += 8;
        }
        if (p >= end)
            break;
        unsigned char c = (unsigned char)*p;
        if (c == '\r') {
            if (p + 1 >= end || p[1] != '\n')
                return "bare CR in header";
            p++;
            line_start = true;
            continue;
        }
        if (c == '\n')
            return "bare LF in header";
        if (line_start && (c == ' ' || c == '\t'))
            return "obsolete line folding";
        if (c == 0)
            return "NUL in header";
        if (c < 0x20 && c != '\t')
            return "control character in header";
        if (c == 0x7f)
            return "DEL in header";
        line_start = false;
    }
    return NULL;
}

/* http-parser callbacks collect header slices into the head being built. */
struct collect {
    struct h1_head *h;
    size_t cap;
    bool overflow;
    bool headers_done;
};

static int
on_field(http_parser *hp, const char *at, size_t len)
{
    /* The header block is one contiguous buffer fed in one call, so http-parser reports each
     * name in a single callback. */
    struct collect *c = hp->data;
    struct h1_head *h = c->h;
    if (h->nheaders >= c->cap) {
        c->overflow = true;
        return 1;
    }
    struct h1_header *x = &h->headers[h->nheaders++];
    x->name.p = at;
    x->name.len = len;
    x->value.p = NULL;
    x->value.len = 0;
    return 0;
}

static int
on_value(http_parser *hp, const char *at, size_t len)
{
    struct collect *c = hp->data;
    struct h1_head *h = c->h;
    if (h->nheaders == 0)
        return 1;
    struct h1_header *x = &h->headers[h->nheaders - 1];
    x->value.p = at;
    x->value.len = len;
    return 0;
}

static int
on_headers_complete(http_parser *hp)
{
    struct collect *c = hp->data;
    c->headers_done = true;
    /* Stop here: the body, if any, is framed separately by h1_body_*. Returning 1 tells
     * http-parser there is no body, which ends the message cleanly. */
    return 1;
}

static const http_parser_settings collect_settings = {
    .on_header_field = on_field,
    .on_header_value = on_value,
    .on_headers_complete = on_headers_complete,
};

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

/*
 * Trims whitespace around header values (http-parser leaves trailing OWS in), fills the line
 * slices, and derives framing and connection flags. Applies the smuggling rules that depend on
 * header values. Returns NULL or a reason.
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
        struct h1_header *x = &h->headers[i];
        if (x->value.p == NULL || x->value.len == 0) {
            /* empty value: http-parser may not report it, or report it at the next line */
            const char *q = x->name.p + x->name.len;
            while (*q == ':' || *q == ' ' || *q == '\t')
                q++;
            x->value.p = q;
            x->value.len = 0;
        }
        while (x->value.len > 0 &&
               (x->value.p[x->value.len - 1] == ' ' || x->value.p[x->value.len - 1] == '\t'))
            x->value.len--;
        x->line.p = x->name.p;
        x->line.len = (size_t)(x->value.p + x->value.len - x->name.p);
        for (size_t k = 0; k < x->name.len; k++)
            if (!tchar[(unsigned char)x->name.p[k]]) {
                *status_out = 400;
                return "invalid header name";
            }

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

/*
 * Runs http-parser over a stand-in start line plus the real header block, collecting slices.
 */
static const char *
run_parser(enum http_parser_type type, const char *start_line, size_t start_len, const char *hdrs,
           size_t hdrs_len, struct h1_head *h, size_t maxhdrs, int *status_out)
{
    static bool limit_set;
    http_parser hp;
    struct collect c = {.h = h, .cap = maxhdrs};
    if (!limit_set) {
        /* Our own head limit (conf max_header_bytes, answered with 431) applies first; lift
         * http-parser's built-in 80 KiB so it never disagrees with it. */
        http_parser_set_max_header_size(H1_MAX_HEAD);
        limit_set = true;
    }
    http_parser_init(&hp, type);
    hp.data = &c;

    size_t n = http_parser_execute(&hp, &collect_settings, start_line, start_len);
    if (n != start_len || HTTP_PARSER_ERRNO(&hp) != HPE_OK) {
        *status_out = 500;
        return "internal: stand-in start line rejected";
    }
    n = http_parser_execute(&hp, &collect_settings, hdrs, hdrs_len);
    if (c.overflow) {
        *status_out = 431;
        return "too many header lines";
    }
    /* on_headers_complete returned 1 ("no body"): the parser completes the message. */
    if (!c.headers_done || (HTTP_PARSER_ERRNO(&hp) != HPE_OK && n < hdrs_len)) {
        *status_out = 400;
        return http_errno_description(HTTP_PARSER_ERRNO(&hp));
    }
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

    why = h1_scan_header_bytes(buf + next, buf + len);
    if (why != NULL)
        goto fail;

    static const char line11[] = "POST / HTTP/1.1\r\n";
    static const char line10[] = "POST / HTTP/1.0\r\n";
    const char *stand = h->version_minor ? line11 : line10;
    why = run_parser(HTTP_REQUEST, stand, sizeof(line11) - 1, buf + next, len - next, h, maxhdrs,
                     &status);
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

    why = h1_scan_header_bytes(buf + next, buf + len);
    if (why != NULL)
        goto fail;
    char stand[32];
    int sl = snprintf(stand, sizeof(stand), "HTTP/1.%d %03d X\r\n", h->version_minor, h->status);
    why = run_parser(HTTP_RESPONSE, stand, (size_t)sl, buf + next, len - next, h, maxhdrs, &status);
    if (why != NULL) {
        if (status == 400)
            status = 502;
        goto fail;
    }
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
