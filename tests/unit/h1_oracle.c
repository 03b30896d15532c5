/* http-parser as the oracle of proxy/http1. See h1_oracle.h. */
#include "tests/unit/h1_oracle.h"

#include <stdio.h>
#include <string.h>

#include <http_parser.h>

/* More than any caller's header array, so that a count mismatch is seen, not truncated. */
#define ORACLE_MAX 512

struct oracle_field {
    const char *name;
    size_t name_len;
    const char *value;
    size_t value_len;
    int nvalue; /* value callbacks seen: one, or none for an empty value */
};

struct oracle {
    struct oracle_field f[ORACLE_MAX];
    size_t n;
    bool overflow;
    bool split_name; /* a name reported in two pieces, or a value before any name */
    bool done;
};

static int
on_field(http_parser *hp, const char *at, size_t len)
{
    struct oracle *o = hp->data;
    if (o->n >= ORACLE_MAX) {
        o->overflow = true;
        return 1;
    }
    struct oracle_field *f = &o->f[o->n++];
    f->name = at;
    f->name_len = len;
    f->value = NULL;
    f->value_len = 0;
    f->nvalue = 0;
    return 0;
}

static int
on_value(http_parser *hp, const char *at, size_t len)
{
    struct oracle *o = hp->data;
    if (o->n == 0) {
        o->split_name = true;
        return 1;
    }
    struct oracle_field *f = &o->f[o->n - 1];
    f->value = at;
    f->value_len = len;
    f->nvalue++;
    return 0;
}

static int
on_headers_complete(http_parser *hp)
{
    struct oracle *o = hp->data;
    o->done = true;
    return 1; /* no body: the message ends with its head */
}

static const http_parser_settings oracle_settings = {
    .on_header_field = on_field,
    .on_header_value = on_value,
    .on_headers_complete = on_headers_complete,
};

static bool
is_ows(char c)
{
    return c == ' ' || c == '\t';
}

const char *
h1oracle_compare(const char *buf, size_t len, bool is_request, const struct h1_head *h)
{
    static struct oracle o; /* large; the tests are single-threaded */
    static bool limit_set;
    http_parser hp;
    char stand[40];
    int sl;

    const char *lf = memchr(buf, '\n', len);
    if (lf == NULL)
        return "no start line in an accepted head";
    const char *block = lf + 1;
    size_t block_len = len - (size_t)(block - buf);

    if (!limit_set) {
        http_parser_set_max_header_size(H1_MAX_HEAD);
        limit_set = true;
    }
    if (is_request)
        sl = snprintf(stand, sizeof(stand), "POST / HTTP/1.%d\r\n", h->version_minor);
    else
        sl = snprintf(stand, sizeof(stand), "HTTP/1.%d %03d X\r\n", h->version_minor, h->status);
    memset(&o, 0, sizeof(o));
    http_parser_init(&hp, is_request ? HTTP_REQUEST : HTTP_RESPONSE);
    hp.data = &o;
    size_t n = http_parser_execute(&hp, &oracle_settings, stand, (size_t)sl);
    if (n != (size_t)sl || HTTP_PARSER_ERRNO(&hp) != HPE_OK)
        return "http-parser rejects the stand-in start line";
    n = http_parser_execute(&hp, &oracle_settings, block, block_len);
    if (o.overflow)
        return "http-parser reports more headers than the oracle holds";
    if (o.split_name)
        return "http-parser reports a value without a name";
    /* An upgrade ends the parse early with no error; anything else must use every byte. */
    if (!o.done || (HTTP_PARSER_ERRNO(&hp) != HPE_OK && n < block_len))
        return "http-parser rejects a head exshim accepts";
    if (o.n != h->nheaders)
        return "header counts differ";
    for (size_t i = 0; i < o.n; i++) {
        const struct oracle_field *f = &o.f[i];
        const struct h1_header *x = &h->headers[i];
        if (f->nvalue > 1)
            return "http-parser reports a value in pieces";
        if (f->name_len != x->name.len || memcmp(f->name, x->name.p, f->name_len) != 0)
            return "header names differ";
        /* http-parser drops leading OWS and keeps trailing OWS; an empty value may come as
         * no callback or as a zero-length one pointing anywhere. */
        const char *v = f->value;
        size_t vl = f->value_len;
        while (vl > 0 && is_ows(*v)) {
            v++;
            vl--;
        }
        while (vl > 0 && is_ows(v[vl - 1]))
            vl--;
        if (vl != x->value.len || (vl > 0 && memcmp(v, x->value.p, vl) != 0))
            return "header values differ";
    }
    return NULL;
}
