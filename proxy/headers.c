/* Head rewriting between client and backend. See headers.h. */
#include "proxy/headers.h"

#include <string.h>
#include <strings.h>

#include <event2/buffer.h>

/* Is name one of the headers listed in a Connection header of h? Every token is looked at:
 * there is no cap. */
static bool
listed_in_connection(const struct h1_head *h, struct h1_slice name)
{
    if (h1_slice_eq(name, "Content-Length") || h1_slice_eq(name, "Transfer-Encoding") ||
        h1_slice_eq(name, "Host"))
        return false;
    for (size_t i = 0; i < h->nheaders; i++) {
        if (!h1_slice_eq(h->headers[i].name, "Connection"))
            continue;
        const char *p = h->headers[i].value.p, *end = p + h->headers[i].value.len;
        while (p < end) {
            while (p < end && (*p == ' ' || *p == '\t' || *p == ','))
                p++;
            const char *st = p;
            while (p < end && *p != ',' && *p != ' ' && *p != '\t')
                p++;
            if ((size_t)(p - st) == name.len && name.len > 0 &&
                strncasecmp(st, name.p, name.len) == 0)
                return true;
        }
    }
    return false;
}

bool
headers_hop_by_hop(const struct h1_head *h, struct h1_slice name)
{
    static const char *const hop[] = {"Connection", "Keep-Alive", "Proxy-Connection", "TE",
                                      "Upgrade"};
    for (size_t i = 0; i < sizeof(hop) / sizeof(hop[0]); i++)
        if (h1_slice_eq(name, hop[i]))
            return true;
    return listed_in_connection(h, name);
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
    for (size_t i = 0; i < h->nheaders; i++) {
        const struct h1_header *x = &h->headers[i];
        if (headers_hop_by_hop(h, x->name))
            continue;
        if (h1_slice_eq(x->name, "X-Forwarded-For") || h1_slice_eq(x->name, "X-Forwarded-Proto") ||
            h1_slice_eq(x->name, "X-Forwarded-Host"))
            continue; /* client copies are not trusted; ours follow */
        if (h1_slice_eq(x->name, "Host"))
            host = x;
        if (x == authz) {
            if (authline != NULL)
                evbuffer_add_buffer(out, authline);
            continue;
        }
        add_line(out, x->line);
    }
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
    for (size_t i = 0; i < h->nheaders; i++) {
        const struct h1_header *x = &h->headers[i];
        if (headers_hop_by_hop(h, x->name))
            continue;
        if (www != NULL && h1_slice_eq(x->name, "WWW-Authenticate")) {
            /* the rewritten offers take the place of the backend's first offer line */
            if (!www_done)
                evbuffer_add_buffer(out, www);
            www_done = true;
            continue;
        }
        add_line(out, x->line);
    }
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
