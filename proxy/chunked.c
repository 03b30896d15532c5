/*
 * Strict chunked transfer coding (RFC 9112 section 7.1). See chunked.h for the contract.
 *
 *   chunked-body   = *chunk last-chunk trailer-section CRLF
 *   chunk          = chunk-size [ chunk-ext ] CRLF chunk-data CRLF
 *   chunk-size     = 1*HEXDIG                      (here: at most 16, value <= INT64_MAX)
 *   last-chunk     = 1*("0") [ chunk-ext ] CRLF
 *   chunk-ext      = *( BWS ";" BWS ext-name [ BWS "=" BWS ext-val ] )
 *   ext-val        = token / quoted-string
 *   trailer-section = *( field-line CRLF )
 *
 * Each line is scanned from its first byte by a small state machine that looks at one byte at
 * a time and never past the end it was given, so a prefix that is already wrong is refused
 * without waiting for the rest of the line, and the first wrong byte decides the reason
 * however the input was cut.
 */
#include "proxy/chunked.h"

#include <assert.h>
#include <string.h>
#include <strings.h>

/* Framer states (c->state). */
enum {
    CK_SIZE_LINE, /* expecting a chunk-size line (or last-chunk) */
    CK_DATA,      /* inside chunk data, c->left bytes to go */
    CK_DATA_CRLF, /* expecting the CRLF that ends chunk data */
    CK_TRAILER,   /* expecting a trailer field line or the final empty line */
    CK_DONE,      /* the message is complete */
    CK_FAILED,    /* a violation was seen; c->why says which */
};

/* Result of scanning one line from its start. */
enum {
    CK_LINE_ERROR = -1,
    CK_LINE_INCOMPLETE = 0,
    /* > 0: the line is complete and this many bytes long, CRLF included */
};

/* Positions inside a chunk-size line. */
enum {
    SL_SIZE,        /* hex digits of chunk-size (at least one seen once here past index 0) */
    SL_BWS,         /* whitespace after the size or after an extension; ";" must follow */
    SL_PRE_NAME,    /* after ";", optional BWS, then ext-name */
    SL_NAME,        /* inside ext-name */
    SL_NAME_BWS,    /* whitespace after ext-name; "=" or ";" must follow */
    SL_PRE_VAL,     /* after "=", optional BWS, then ext-val */
    SL_TOKEN_VAL,   /* inside a token ext-val */
    SL_QUOTED,      /* inside a quoted-string ext-val */
    SL_QUOTED_PAIR, /* after a backslash inside a quoted-string */
    SL_QUOTED_END,  /* just after the closing quote */
    SL_CR,          /* after the CR that must end the line */
};

/* Positions inside a trailer line. */
enum {
    TL_START, /* first byte: field-name, or CR of the final empty line */
    TL_NAME,  /* inside field-name */
    TL_VALUE, /* after the colon: OWS, value, OWS */
    TL_CR,    /* after the CR that ends a field line */
    TL_END,   /* after the CR of the final empty line */
};

/* Framing, routing and credential fields that must never arrive as trailers. */
static const char *const forbidden_trailers[] = {
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

/* RFC 9110 section 5.6.2: tchar = "!" / "#" / ... / ALPHA / DIGIT. */
static bool
is_tchar(unsigned char ch)
{
    if ((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z'))
        return true;
    return ch != '\0' && strchr("!#$%&'*+-.^_`|~", ch) != NULL;
}

static bool
is_ws(unsigned char ch)
{
    return ch == ' ' || ch == '\t';
}

static int
hex_value(unsigned char ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F')
        return ch - 'A' + 10;
    return -1;
}

static bool
trailer_forbidden(const char *name, size_t len)
{
    for (size_t i = 0; i < sizeof(forbidden_trailers) / sizeof(forbidden_trailers[0]); i++) {
        const char *f = forbidden_trailers[i];
        if (strlen(f) == len && strncasecmp(f, name, len) == 0)
            return true;
    }
    return false;
}

/*
 * Scans a chunk-size line at the start of [p, p+len). On a complete line stores the size in
 * *size_out and returns its length; CK_LINE_INCOMPLETE when more bytes are needed;
 * CK_LINE_ERROR with *why_out set.
 */
static ssize_t
scan_size_line(const char *p, size_t len, size_t max_line, uint64_t *size_out, const char **why_out)
{
    int st = SL_SIZE;
    uint64_t size = 0;
    size_t ndigits = 0;

    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)p[i];

        /* the byte at index max_line-1 is the last one a line may have: it must be the LF */
        if (i + 1 >= max_line && !(st == SL_CR && ch == '\n')) {
            *why_out = "chunk line too long";
            return CK_LINE_ERROR;
        }
        if (st == SL_CR) {
            if (ch != '\n') {
                *why_out = "CR without LF in chunk line";
                return CK_LINE_ERROR;
            }
            *size_out = size;
            return (ssize_t)(i + 1);
        }
        if (ch == '\n') {
            *why_out = "bare LF in chunk line";
            return CK_LINE_ERROR;
        }

        switch (st) {
        case SL_SIZE: {
            int d = hex_value(ch);
            if (d >= 0) {
                if (ndigits == 16) {
                    *why_out = "chunk size has more than 16 digits";
                    return CK_LINE_ERROR;
                }
                if (size > ((uint64_t)INT64_MAX - (uint64_t)d) / 16) {
                    *why_out = "chunk size overflow";
                    return CK_LINE_ERROR;
                }
                size = size * 16 + (uint64_t)d;
                ndigits++;
            } else if (ndigits == 0) {
                *why_out = "bad chunk size";
                return CK_LINE_ERROR;
            } else if (ch == '\r') {
                st = SL_CR;
            } else if (ch == ';') {
                st = SL_PRE_NAME;
            } else if (is_ws(ch)) {
                st = SL_BWS;
            } else {
                *why_out = "bad chunk size";
                return CK_LINE_ERROR;
            }
            break;
        }
        case SL_BWS:
            if (ch == ';')
                st = SL_PRE_NAME;
            else if (!is_ws(ch))
                goto syntax;
            break;
        case SL_PRE_NAME:
            if (is_tchar(ch))
                st = SL_NAME;
            else if (!is_ws(ch))
                goto syntax;
            break;
        case SL_NAME:
            if (ch == '\r')
                st = SL_CR;
            else if (ch == '=')
                st = SL_PRE_VAL;
            else if (ch == ';')
                st = SL_PRE_NAME;
            else if (is_ws(ch))
                st = SL_NAME_BWS;
            else if (!is_tchar(ch))
                goto syntax;
            break;
        case SL_NAME_BWS:
            if (ch == '=')
                st = SL_PRE_VAL;
            else if (ch == ';')
                st = SL_PRE_NAME;
            else if (!is_ws(ch))
                goto syntax;
            break;
        case SL_PRE_VAL:
            if (ch == '"')
                st = SL_QUOTED;
            else if (is_tchar(ch))
                st = SL_TOKEN_VAL;
            else if (!is_ws(ch))
                goto syntax;
            break;
        case SL_TOKEN_VAL:
            if (ch == '\r')
                st = SL_CR;
            else if (ch == ';')
                st = SL_PRE_NAME;
            else if (is_ws(ch))
                st = SL_BWS;
            else if (!is_tchar(ch))
                goto syntax;
            break;
        case SL_QUOTED:
            /* qdtext = HTAB / SP / %x21 / %x23-5B / %x5D-7E; obs-text is refused here */
            if (ch == '"')
                st = SL_QUOTED_END;
            else if (ch == '\\')
                st = SL_QUOTED_PAIR;
            else if (!(ch == '\t' || (ch >= 0x20 && ch <= 0x7e)))
                goto bad_byte;
            break;
        case SL_QUOTED_PAIR:
            if (!(ch == '\t' || (ch >= 0x20 && ch <= 0x7e)))
                goto bad_byte;
            st = SL_QUOTED;
            break;
        case SL_QUOTED_END:
            if (ch == '\r')
                st = SL_CR;
            else if (ch == ';')
                st = SL_PRE_NAME;
            else if (is_ws(ch))
                st = SL_BWS;
            else
                goto syntax;
            break;
        default:
            assert(!"chunk line state");
            goto syntax;
        }
    }
    return CK_LINE_INCOMPLETE;

syntax:
    *why_out = "chunk extension syntax";
    return CK_LINE_ERROR;
bad_byte:
    *why_out = "control or non-ASCII byte in chunk extension";
    return CK_LINE_ERROR;
}

/*
 * Scans a trailer line at the start of [p, p+len). budget: trailer bytes still allowed for a
 * field line. Returns the line's length when complete, with *final_out telling whether it was
 * the empty line that ends the message; CK_LINE_INCOMPLETE; or CK_LINE_ERROR with *why_out.
 */
static ssize_t
scan_trailer_line(const char *p, size_t len, size_t budget, bool count_full, bool *final_out,
                  const char **why_out)
{
    int st = TL_START;

    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)p[i];

        if (st == TL_END) {
            if (ch != '\n') {
                *why_out = "CR without LF in trailer";
                return CK_LINE_ERROR;
            }
            *final_out = true;
            return (ssize_t)(i + 1);
        }
        if (st == TL_START && ch == '\r') {
            st = TL_END;
            continue;
        }
        /* a field line: its last allowed byte must be the LF */
        if (i + 1 >= budget && !(st == TL_CR && ch == '\n')) {
            *why_out = "trailer section too large";
            return CK_LINE_ERROR;
        }
        if (st == TL_CR) {
            if (ch != '\n') {
                *why_out = "CR without LF in trailer";
                return CK_LINE_ERROR;
            }
            *final_out = false;
            return (ssize_t)(i + 1);
        }
        if (ch == '\n') {
            *why_out = "bare LF in trailer";
            return CK_LINE_ERROR;
        }

        switch (st) {
        case TL_START:
            if (is_ws(ch)) {
                *why_out = "obs-fold in trailer";
                return CK_LINE_ERROR;
            }
            if (ch == ':') {
                *why_out = "empty trailer field name";
                return CK_LINE_ERROR;
            }
            if (!is_tchar(ch)) {
                *why_out = "bad byte in trailer field name";
                return CK_LINE_ERROR;
            }
            if (count_full) {
                *why_out = "too many trailer fields";
                return CK_LINE_ERROR;
            }
            st = TL_NAME;
            break;
        case TL_NAME:
            if (ch == ':') {
                if (trailer_forbidden(p, i)) {
                    *why_out = "forbidden trailer field";
                    return CK_LINE_ERROR;
                }
                st = TL_VALUE;
            } else if (is_ws(ch)) {
                *why_out = "whitespace before colon in trailer";
                return CK_LINE_ERROR;
            } else if (ch == '\r') {
                *why_out = "trailer line without colon";
                return CK_LINE_ERROR;
            } else if (!is_tchar(ch)) {
                *why_out = "bad byte in trailer field name";
                return CK_LINE_ERROR;
            }
            break;
        case TL_VALUE:
            /* field-vchar, SP, HTAB and obs-text; no other controls, no DEL */
            if (ch == '\r')
                st = TL_CR;
            else if (!(ch == '\t' || (ch >= 0x20 && ch != 0x7f))) {
                *why_out = "control byte in trailer value";
                return CK_LINE_ERROR;
            }
            break;
        default:
            assert(!"trailer line state");
            *why_out = "trailer line state";
            return CK_LINE_ERROR;
        }
    }
    return CK_LINE_INCOMPLETE;
}

void
chunked_init(struct chunked *c, const struct chunked_limits *lim)
{
    memset(c, 0, sizeof(*c));
    c->state = CK_SIZE_LINE;
    if (lim != NULL)
        c->lim = *lim;
    if (c->lim.max_line == 0)
        c->lim.max_line = CHUNKED_DEFAULT_MAX_LINE;
    if (c->lim.max_trailer_bytes == 0)
        c->lim.max_trailer_bytes = CHUNKED_DEFAULT_MAX_TRAILER_BYTES;
    if (c->lim.max_trailers == 0)
        c->lim.max_trailers = CHUNKED_DEFAULT_MAX_TRAILERS;
}

static ssize_t
fail(struct chunked *c, const char *why)
{
    c->state = CK_FAILED;
    c->why = why;
    return CHUNKED_ERROR;
}

ssize_t
chunked_feed(struct chunked *c, const char *p, size_t len)
{
    size_t pos = 0;
    const char *why = NULL;

    if (c->state == CK_FAILED)
        return CHUNKED_ERROR;
    while (pos < len && c->state != CK_DONE) {
        const char *q = p + pos;
        size_t avail = len - pos;
        ssize_t n;

        switch (c->state) {
        case CK_SIZE_LINE: {
            uint64_t size = 0;
            n = scan_size_line(q, avail, c->lim.max_line, &size, &why);
            if (n == CK_LINE_ERROR)
                return fail(c, why);
            if (n == CK_LINE_INCOMPLETE)
                return (ssize_t)pos;
            pos += (size_t)n;
            if (size == 0) {
                c->state = CK_TRAILER;
            } else {
                c->left = size;
                c->state = CK_DATA;
            }
            break;
        }
        case CK_DATA: {
            size_t take = avail;
            if ((uint64_t)take > c->left)
                take = (size_t)c->left;
            pos += take;
            c->payload += take;
            c->left -= take;
            if (c->left == 0)
                c->state = CK_DATA_CRLF;
            break;
        }
        case CK_DATA_CRLF:
            if (q[0] == '\n')
                return fail(c, "bare LF after chunk data");
            if (q[0] != '\r')
                return fail(c, "CRLF missing after chunk data");
            if (avail < 2)
                return (ssize_t)pos;
            if (q[1] != '\n')
                return fail(c, "CRLF missing after chunk data");
            pos += 2;
            c->state = CK_SIZE_LINE;
            break;
        case CK_TRAILER: {
            bool final = false;
            n = scan_trailer_line(q, avail, c->lim.max_trailer_bytes - c->trailer_bytes,
                                  c->ntrailers >= c->lim.max_trailers, &final, &why);
            if (n == CK_LINE_ERROR)
                return fail(c, why);
            if (n == CK_LINE_INCOMPLETE)
                return (ssize_t)pos;
            pos += (size_t)n;
            if (final) {
                c->state = CK_DONE;
                c->done = true;
            } else {
                c->trailer_bytes += (size_t)n;
                c->ntrailers++;
            }
            break;
        }
        default:
            assert(!"chunked state");
            return fail(c, "chunked state");
        }
    }
    return (ssize_t)pos;
}

uint64_t
chunked_data_left(const struct chunked *c)
{
    return c->state == CK_DATA ? c->left : 0;
}

void
chunked_skip_data(struct chunked *c, uint64_t n)
{
    assert(n <= chunked_data_left(c));
    if (c->state != CK_DATA || n > c->left)
        return;
    c->left -= n;
    c->payload += n;
    if (c->left == 0)
        c->state = CK_DATA_CRLF;
}

size_t
chunked_need_contiguous(const struct chunked *c)
{
    switch (c->state) {
    case CK_SIZE_LINE:
        return c->lim.max_line;
    case CK_DATA:
        return 1;
    case CK_DATA_CRLF:
        return 2;
    case CK_TRAILER: {
        size_t left = c->lim.max_trailer_bytes - c->trailer_bytes;
        return left < 2 ? 2 : left;
    }
    default:
        return 0;
    }
}
