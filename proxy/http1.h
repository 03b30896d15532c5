/*
 * HTTP/1.x message heads and body framing, over plain memory (no libevent, no logging).
 *
 * Heads are parsed by exshim's own strict single-pass parser (smuggling defences) and described
 * by slices into the caller's buffer; chunked bodies by exshim's own strict parser
 * (proxy/chunked.h). Request methods are any RFC 9110 token, so RPC_IN_DATA and RPC_OUT_DATA
 * are parsed like any other.
 */
#ifndef PROXY_HTTP1_H
#define PROXY_HTTP1_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>
#include <sys/types.h>

/* Upper bound for any head; conf max_header_bytes is checked against it. */
#define H1_MAX_HEAD (1024 * 1024)

enum h1_result {
    H1_OK = 0,
    H1_INCOMPLETE = -1, /* need more bytes */
    H1_ERROR = -2,      /* reject: see status_out / why_out */
};

/* A view into the parsed buffer; valid as long as that buffer is. */
struct h1_slice {
    const char *p;
    size_t len;
};

struct h1_header {
    struct h1_slice name;  /* as received, case preserved */
    struct h1_slice value; /* without leading/trailing whitespace */
    struct h1_slice line;  /* the whole line from name to end of value, without CRLF */
};

enum h1_body_kind {
    H1_BODY_NONE,    /* no body (CL 0 or absent on a request, 1xx/204/304, HEAD response) */
    H1_BODY_LENGTH,  /* Content-Length */
    H1_BODY_CHUNKED, /* Transfer-Encoding: chunked */
    H1_BODY_EOF,     /* response delimited by connection close */
};

struct h1_head {
    /* request line */
    struct h1_slice method;
    struct h1_slice target;
    /* status line */
    int status;
    struct h1_slice reason;
    int version_minor; /* HTTP/1.<minor>: 0 or 1 */

    struct h1_header *headers; /* caller's array */
    size_t nheaders;

    enum h1_body_kind body;
    uint64_t content_length; /* when body == H1_BODY_LENGTH */
    bool keep_alive;         /* version default adjusted by Connection */
    bool expect_continue;    /* Expect: 100-continue */
    bool upgrade;            /* an Upgrade header was present */
    size_t head_len;         /* bytes of the head including the empty line */
};

/*
 * Returns the length of the head in buf (through the CRLFCRLF), 0 when the empty line has not
 * arrived yet. Borrows buf.
 */
size_t h1_head_end(const char *buf, size_t len);

/*
 * Parses a complete request head (buf[0..len) must end with the empty line, as found by
 * h1_head_end). Fills *h; headers go to the caller's array hdrs of capacity maxhdrs.
 * Returns H1_OK, or H1_ERROR with *status_out (400, 431, 501, 505) and *why_out (static text).
 * Each header line is name ":" OWS value OWS CRLF with name 1*tchar (no whitespace before the
 * colon); values may hold obs-text and come without their OWS.
 * Rejected: bad request line, non-token method, obs-fold, bare CR/LF, NUL, DEL and control
 * bytes but HTAB in header lines, a line that is not a header field, Content-Length with
 * Transfer-Encoding, several or malformed Content-Length, a Transfer-Encoding other than
 * "chunked" alone, Transfer-Encoding in HTTP/1.0, no Host in HTTP/1.1, several Host headers or
 * an invalid one, more than maxhdrs headers (431).
 * Borrows buf; *h holds views into it.
 */
int h1_parse_request(const char *buf, size_t len, struct h1_head *h, struct h1_header *hdrs,
                     size_t maxhdrs, int *status_out, const char **why_out);

/*
 * Same for a response head. head_request: the request was HEAD (no body whatever the headers
 * say). The framing follows RFC 9112 section 6.3.
 */
int h1_parse_response(const char *buf, size_t len, bool head_request, struct h1_head *h,
                      struct h1_header *hdrs, size_t maxhdrs, int *status_out,
                      const char **why_out);

/* Finds the first header named NAME (case-insensitive). Returns a view or NULL. */
const struct h1_header *h1_find(const struct h1_head *h, const char *name);

/* Case-insensitive comparison of a slice with a C string. Inline so that with a literal the
 * length is a constant and most names are told apart by their length alone. */
static inline bool
h1_slice_eq(struct h1_slice s, const char *str)
{
    size_t n = strlen(str);
    return s.len == n && strncasecmp(s.p, str, n) == 0;
}

/* True when the comma-separated list in s contains TOKEN (case-insensitive). */
bool h1_list_has(struct h1_slice s, const char *token);

#endif
