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
    /* Literal names: h1_slice_eq compares lengths first, with no strlen. */
    if (h1_slice_eq(name, "Connection") || h1_slice_eq(name, "Keep-Alive") ||
        h1_slice_eq(name, "Proxy-Connection") || h1_slice_eq(name, "TE") ||
        h1_slice_eq(name, "Upgrade"))
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

/*
 * A head is written into one contiguous region reserved in the output buffer, sized for the
 * worst case up front: one reservation and plain memcpy instead of an evbuffer call (and its
 * callbacks) per piece, and no printf.
 */
struct hw {
    char *p, *end;
};

static void
hw_add(struct hw *w, const void *p, size_t len)
{
    /* The reservation is an upper bound of everything written; this cannot trigger. */
    if (len > (size_t)(w->end - w->p))
        len = (size_t)(w->end - w->p);
    memcpy(w->p, p, len);
    w->p += len;
}

#define HW_LIT(w, s) hw_add((w), (s), sizeof(s) - 1)

/* Moves all of src (whole lines supplied by the caller) to the head. */
static void
hw_take(struct hw *w, struct evbuffer *src)
{
    size_t n = evbuffer_get_length(src), room = (size_t)(w->end - w->p);
    if (n > room)
        n = room;
    evbuffer_remove(src, w->p, n);
    w->p += n;
    evbuffer_drain(src, evbuffer_get_length(src));
}

static void
hw_line(struct hw *w, struct h1_slice line)
{
    hw_add(w, line.p, line.len);
    HW_LIT(w, "\r\n");
}

static bool
hw_open(struct hw *w, struct evbuffer *out, size_t bound, struct evbuffer_iovec *v)
{
    /* One vector: the event library hands out at least bound contiguous bytes, or fails. */
    if (evbuffer_reserve_space(out, (ev_ssize_t)bound, v, 1) != 1 || v->iov_len < bound)
        return false;
    w->p = v->iov_base;
    w->end = w->p + bound;
    return true;
}

static void
hw_close(struct hw *w, struct evbuffer *out, struct evbuffer_iovec *v)
{
    v->iov_len = (size_t)(w->p - (char *)v->iov_base);
    evbuffer_commit_space(out, v, 1);
}

/* Kept header lines are copied in runs: consecutive lines of the received head are one
 * contiguous span (each line's CRLF included), so a run costs one copy. */
struct run {
    const char *p;
    size_t len;
};

static void
run_flush(struct hw *w, struct run *r)
{
    if (r->len > 0)
        hw_add(w, r->p, r->len);
    r->len = 0;
}

static void
run_keep(struct hw *w, struct run *r, struct h1_slice line)
{
    /* The line must be followed by its CRLF in the received buffer to join a run; the parser
     * guarantees it, the check keeps this safe for any head. */
    if (line.p[line.len] != '\r' || line.p[line.len + 1] != '\n') {
        run_flush(w, r);
        hw_line(w, line);
        return;
    }
    if (r->len > 0 && r->p + r->len == line.p) {
        r->len += line.len + 2;
        return;
    }
    run_flush(w, r);
    r->p = line.p;
    r->len = line.len + 2;
}

/* Bytes the kept lines of h can take at most: each line plus CRLF (lines never overlap). */
static size_t
lines_bound(const struct h1_head *h)
{
    return h->head_len + 2 * h->nheaders;
}

bool
headers_request(const struct h1_head *h, const struct target *t, const struct h1_header *authz,
                struct evbuffer *authline, const struct headers_client *client,
                struct evbuffer *out)
{
    const struct h1_header *host = NULL;
    size_t iplen = strlen(client->ip);
    size_t bound = lines_bound(h) + h->method.len + t->path_len + t->query_len + 2 + 16 +
                   (authline != NULL ? evbuffer_get_length(authline) : 0) + iplen + 64 +
                   h->head_len /* X-Forwarded-Host: at most the Host value */ + 32;
    struct evbuffer_iovec v;
    struct hw w;
    if (!hw_open(&w, out, bound, &v))
        return false;
    if (t->changed || t->absolute) {
        hw_add(&w, h->method.p, h->method.len);
        HW_LIT(&w, " ");
        hw_add(&w, t->path, t->path_len);
        if (t->query != NULL) {
            HW_LIT(&w, "?");
            hw_add(&w, t->query, t->query_len);
        }
    } else {
        hw_add(&w, h->method.p, (size_t)(h->target.p + h->target.len - h->method.p));
    }
    if (h->version_minor == 0)
        HW_LIT(&w, " HTTP/1.0\r\n");
    else
        HW_LIT(&w, " HTTP/1.1\r\n");
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
            run_flush(&w, &r);
            if (authline != NULL)
                hw_take(&w, authline);
            continue;
        }
        run_keep(&w, &r, x->line);
    }
    run_flush(&w, &r);
    HW_LIT(&w, "X-Forwarded-For: ");
    hw_add(&w, client->ip, iplen);
    if (client->tls)
        HW_LIT(&w, "\r\nX-Forwarded-Proto: https\r\n");
    else
        HW_LIT(&w, "\r\nX-Forwarded-Proto: http\r\n");
    if (host != NULL) {
        HW_LIT(&w, "X-Forwarded-Host: ");
        hw_line(&w, host->value);
    }
    if (h->version_minor == 0)
        HW_LIT(&w, "Connection: keep-alive\r\n");
    HW_LIT(&w, "\r\n");
    hw_close(&w, out, &v);
    return true;
}

bool
headers_response(const struct h1_head *h, struct evbuffer *www, bool close, int client_minor,
                 struct evbuffer *out)
{
    bool www_done = false;
    size_t bound = lines_bound(h) + 16 + (www != NULL ? evbuffer_get_length(www) : 0) + 32;
    struct evbuffer_iovec v;
    struct hw w;
    if (!hw_open(&w, out, bound, &v))
        return false;
    char code[3] = {(char)('0' + h->status / 100 % 10), (char)('0' + h->status / 10 % 10),
                    (char)('0' + h->status % 10)};
    HW_LIT(&w, "HTTP/1.1 ");
    hw_add(&w, code, 3);
    if (h->reason.len > 0 || h->reason.p != NULL) {
        HW_LIT(&w, " ");
        hw_add(&w, h->reason.p, h->reason.len);
    }
    HW_LIT(&w, "\r\n");
    struct conn_lines c;
    struct run r = {NULL, 0};
    conn_lines_find(h, &c);
    for (size_t i = 0; i < h->nheaders; i++) {
        const struct h1_header *x = &h->headers[i];
        if (hop_by_hop(h, &c, x->name))
            continue;
        if (www != NULL && h1_slice_eq(x->name, "WWW-Authenticate")) {
            /* the rewritten offers take the place of the backend's first offer line */
            run_flush(&w, &r);
            if (!www_done)
                hw_take(&w, www);
            www_done = true;
            continue;
        }
        run_keep(&w, &r, x->line);
    }
    run_flush(&w, &r);
    if (www != NULL && !www_done)
        hw_take(&w, www);
    if (h->status >= 200) {
        if (close)
            HW_LIT(&w, "Connection: close\r\n");
        else if (client_minor == 0)
            HW_LIT(&w, "Connection: keep-alive\r\n");
    }
    HW_LIT(&w, "\r\n");
    hw_close(&w, out, &v);
    return true;
}
