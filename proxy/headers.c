/* Head rewriting between client and backend. See headers.h. */
#include "proxy/headers.h"

#include <string.h>
#include <strings.h>

#include <event2/buffer.h>

/* The Connection headers of a head, found once so that each header's hop-by-hop test looks
 * only at them (a head of n headers costs O(n), not O(n^2)). More than MAX_CONN: all are
 * scanned again per header, which is correct, only slower. */
#define MAX_CONN 4
struct conn_lines {
    const struct h1_header *v[MAX_CONN];
    size_t n;
    bool many;
};

static void
conn_lines_find(const struct h1_head *h, struct conn_lines *c)
{
    c->n = 0;
    c->many = false;
    for (size_t i = 0; i < h->nheaders; i++) {
        if (!h1_slice_eq(h->headers[i].name, "Connection"))
            continue;
        if (c->n == MAX_CONN) {
            c->many = true;
            return;
        }
        c->v[c->n++] = &h->headers[i];
    }
}

static bool
token_in(struct h1_slice list, struct h1_slice name)
{
    const char *p = list.p, *end = p + list.len;
    while (p < end) {
        while (p < end && (*p == ' ' || *p == '\t' || *p == ','))
            p++;
        const char *st = p;
        while (p < end && *p != ',' && *p != ' ' && *p != '\t')
            p++;
        if ((size_t)(p - st) == name.len && name.len > 0 && strncasecmp(st, name.p, name.len) == 0)
            return true;
    }
    return false;
}

/* Is name one of the headers listed in a Connection header of h? Every token is looked at:
 * there is no cap. */
static bool
listed_in_connection(const struct h1_head *h, const struct conn_lines *c, struct h1_slice name)
{
    if (c->n == 0 && !c->many)
        return false;
    if (h1_slice_eq(name, "Content-Length") || h1_slice_eq(name, "Transfer-Encoding") ||
        h1_slice_eq(name, "Host"))
        return false;
    if (c->many) {
        for (size_t i = 0; i < h->nheaders; i++)
            if (h1_slice_eq(h->headers[i].name, "Connection") &&
                token_in(h->headers[i].value, name))
                return true;
        return false;
    }
    for (size_t i = 0; i < c->n; i++)
        if (token_in(c->v[i]->value, name))
            return true;
    return false;
}

static bool
hop_by_hop(const struct h1_head *h, const struct conn_lines *c, struct h1_slice name)
{
    static const char *const hop[] = {"Connection", "Keep-Alive", "Proxy-Connection", "TE",
                                      "Upgrade"};
    for (size_t i = 0; i < sizeof(hop) / sizeof(hop[0]); i++)
        if (h1_slice_eq(name, hop[i]))
            return true;
    return listed_in_connection(h, c, name);
}

static bool
scheme_with_token(struct h1_slice v, const char *scheme)
{
    size_t n = strlen(scheme);
    if (v.len <= n + 1 || strncasecmp(v.p, scheme, n) != 0 || v.p[n] != ' ')
        return false;
    for (size_t i = n + 1; i < v.len; i++)
        if (v.p[i] != ' ' && v.p[i] != '\t')
            return true;
    return false;
}

bool
headers_mid_handshake(const struct h1_head *h)
{
    if (h->status != 401)
        return false;
    for (size_t i = 0; i < h->nheaders; i++) {
        const struct h1_header *x = &h->headers[i];
        if (h1_slice_eq(x->name, "WWW-Authenticate") &&
            (scheme_with_token(x->value, "NTLM") || scheme_with_token(x->value, "Negotiate")))
            return true;
    }
    return false;
}

int
headers_find_authz(const struct h1_head *h, const struct h1_header **authz_out)
{
    const struct h1_header *authz = NULL;
    for (size_t i = 0; i < h->nheaders; i++) {
        if (!h1_slice_eq(h->headers[i].name, "Authorization"))
            continue;
        if (authz != NULL)
            return -1;
        authz = &h->headers[i];
    }
    *authz_out = authz;
    return 0;
}

static void
add_line(struct evbuffer *out, struct h1_slice line)
{
    evbuffer_add(out, line.p, line.len);
    evbuffer_add(out, "\r\n", 2);
}

/* Kept header lines are copied in runs: consecutive lines of the received head are one
 * contiguous span (each line's CRLF included), so a run costs one evbuffer_add. */
struct run {
    const char *p;
    size_t len;
};

static void
run_flush(struct evbuffer *out, struct run *r)
{
    if (r->len > 0)
        evbuffer_add(out, r->p, r->len);
    r->len = 0;
}

static void
run_keep(struct evbuffer *out, struct run *r, struct h1_slice line)
{
    /* The line must be followed by its CRLF in the received buffer to join a run; the parser
     * guarantees it, the check keeps this safe for any head. */
    if (line.p[line.len] != '\r' || line.p[line.len + 1] != '\n') {
        run_flush(out, r);
        add_line(out, line);
        return;
    }
    if (r->len > 0 && r->p + r->len == line.p) {
        r->len += line.len + 2;
        return;
    }
    run_flush(out, r);
    r->p = line.p;
    r->len = line.len + 2;
}

void
headers_request(const struct h1_head *h, const struct target *t, const struct h1_header *authz,
                struct evbuffer *authline, const struct headers_client *client,
                struct evbuffer *out)
{
    const struct h1_header *host = NULL;
    if (t->changed || t->absolute) {
        evbuffer_add(out, h->method.p, h->method.len);
        evbuffer_add(out, " ", 1);
        evbuffer_add(out, t->path, t->path_len);
        if (t->query != NULL) {
            evbuffer_add(out, "?", 1);
            evbuffer_add(out, t->query, t->query_len);
        }
    } else {
        evbuffer_add(out, h->method.p, (size_t)(h->target.p + h->target.len - h->method.p));
    }
    evbuffer_add_printf(out, " HTTP/1.%d\r\n", h->version_minor);
    struct conn_lines c;
    struct run r = {NULL, 0};
    conn_lines_find(h, &c);
    for (size_t i = 0; i < h->nheaders; i++) {
        const struct h1_header *x = &h->headers[i];
        if (hop_by_hop(h, &c, x->name))
            continue;
        if (h1_slice_eq(x->name, "X-Forwarded-For") || h1_slice_eq(x->name, "X-Forwarded-Proto") ||
            h1_slice_eq(x->name, "X-Forwarded-Host"))
            continue; /* client copies are not trusted; ours follow */
        if (h1_slice_eq(x->name, "Host"))
            host = x;
        if (x == authz) {
            run_flush(out, &r);
            if (authline != NULL)
                evbuffer_add_buffer(out, authline);
            continue;
        }
        run_keep(out, &r, x->line);
    }
    run_flush(out, &r);
    evbuffer_add_printf(out, "X-Forwarded-For: %s\r\nX-Forwarded-Proto: %s\r\n", client->ip,
                        client->tls ? "https" : "http");
    if (host != NULL) {
        evbuffer_add(out, "X-Forwarded-Host: ", 18);
        add_line(out, host->value);
    }
    if (h->version_minor == 0)
        evbuffer_add(out, "Connection: keep-alive\r\n", 24);
    evbuffer_add(out, "\r\n", 2);
}

void
headers_response(const struct h1_head *h, struct evbuffer *www, bool close, int client_minor,
                 struct evbuffer *out)
{
    bool www_done = false;
    evbuffer_add_printf(out, "HTTP/1.1 %03d", h->status);
    if (h->reason.len > 0 || h->reason.p != NULL) {
        evbuffer_add(out, " ", 1);
        evbuffer_add(out, h->reason.p, h->reason.len);
    }
    evbuffer_add(out, "\r\n", 2);
    struct conn_lines c;
    struct run r = {NULL, 0};
    conn_lines_find(h, &c);
    for (size_t i = 0; i < h->nheaders; i++) {
        const struct h1_header *x = &h->headers[i];
        if (hop_by_hop(h, &c, x->name))
            continue;
        if (www != NULL && h1_slice_eq(x->name, "WWW-Authenticate")) {
            /* the rewritten offers take the place of the backend's first offer line */
            run_flush(out, &r);
            if (!www_done)
                evbuffer_add_buffer(out, www);
            www_done = true;
            continue;
        }
        run_keep(out, &r, x->line);
    }
    run_flush(out, &r);
    if (www != NULL && !www_done)
        evbuffer_add_buffer(out, www);
    if (h->status >= 200) {
        if (close)
            evbuffer_add(out, "Connection: close\r\n", 19);
        else if (client_minor == 0)
            evbuffer_add(out, "Connection: keep-alive\r\n", 24);
    }
    evbuffer_add(out, "\r\n", 2);
}
