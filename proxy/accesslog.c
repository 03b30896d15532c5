/* The access log. See accesslog.h. */
#include "proxy/accesslog.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "proxy/log.h"

void
xlog_begin(struct xlog *x, const struct timeval *now, size_t head_len)
{
    x->open = true;
    x->start = *now;
    x->status = 0;
    x->scheme = NULL;
    x->user[0] = '\0';
    x->bytes_in = head_len;
    x->bytes_out = 0;
    x->route = NULL;
    x->be = NULL;
    x->server = NULL;
    snprintf(x->method, sizeof(x->method), "-");
    snprintf(x->path, sizeof(x->path), "-");
}

/* Appends [p, p+len) to dst at *at, truncated to fit cap with its NUL (the access log keeps
 * what fits). Per request, so memcpy rather than snprintf. */
static void
put(char *dst, size_t cap, size_t *at, const char *p, size_t len)
{
    size_t room = cap - 1 - *at;
    if (len > room)
        len = room;
    memcpy(dst + *at, p, len);
    *at += len;
    dst[*at] = '\0';
}

void
xlog_target(struct xlog *x, struct h1_slice method, struct h1_slice path, struct h1_slice query)
{
    size_t n = 0;
    x->method[0] = '\0';
    put(x->method, sizeof(x->method), &n, method.p, method.len);
    n = 0;
    x->path[0] = '\0';
    put(x->path, sizeof(x->path), &n, path.p, path.len);
    if (query.p != NULL) {
        put(x->path, sizeof(x->path), &n, "?", 1);
        put(x->path, sizeof(x->path), &n, query.p, query.len);
    }
}

void
xlog_user(struct xlog *x, const char *user)
{
    size_t i = 0;
    for (; user != NULL && user[i] != '\0' && i + 1 < sizeof(x->user); i++) {
        unsigned char c = (unsigned char)user[i];
        x->user[i] = c < ' ' || c == 0x7f || c == '"' ? '?' : (char)c;
    }
    x->user[i] = '\0';
}

void
xlog_write(struct xlog *x, bool enabled, uint64_t sid, const char *peer, const struct timeval *now)
{
    const struct conf_backend *be = x->be;
    const struct conf_server *sv = be != NULL ? x->server : NULL;
    if (!x->open)
        return;
    x->open = false;
    if (!enabled)
        return;
    struct timeval d;
    timersub(now, &x->start, &d);
    log_info("access sid=%" PRIu64 " client=%s method=%s path=%s status=%d in=%" PRIu64
             " out=%" PRIu64 " ms=%ld backend=%s%s%s%s%s auth=%s%s%s%s",
             sid, peer, x->method, x->path, x->status, x->bytes_in, x->bytes_out,
             (long)(d.tv_sec * 1000 + d.tv_usec / 1000), be ? be->name : "-", sv ? "/" : "",
             sv ? sv->host : "", sv ? ":" : "", sv ? sv->port : "", x->scheme ? x->scheme : "-",
             x->user[0] ? " user=\"" : "", x->user, x->user[0] ? "\"" : "");
}
