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

void
xlog_target(struct xlog *x, struct h1_slice method, struct h1_slice path, struct h1_slice query)
{
    snprintf(x->method, sizeof(x->method), "%.*s", (int)method.len, method.p);
    if (query.p != NULL)
        snprintf(x->path, sizeof(x->path), "%.*s?%.*s", (int)path.len, path.p, (int)query.len,
                 query.p);
    else
        snprintf(x->path, sizeof(x->path), "%.*s", (int)path.len, path.p);
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
