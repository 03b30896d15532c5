/* The access log: one line per exchange. Never credentials, tokens or cookies. */
#ifndef PROXY_ACCESSLOG_H
#define PROXY_ACCESSLOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/time.h>

#include "conf/conf.h"
#include "proxy/http1.h"

/* The record of the exchange in progress. */
struct xlog {
    bool open; /* an exchange is recorded and its line not written yet */
    char method[32];
    char path[192];     /* normalised path and raw query */
    const char *scheme; /* static: the client's auth scheme, or NULL */
    char user[128];     /* edge routes: the authenticated user, "" when none */
    int status;
    uint64_t bytes_in, bytes_out;
    struct timeval start;
    /* What the exchange went to, NULL until known: a request refused before routing, or before
     * a server was chosen, names none (not the previous exchange's). */
    const struct conf_route *route;
    const struct conf_backend *be;
    const struct conf_server *server;
};

/* Starts the record of an exchange whose head is head_len bytes, at now. */
void xlog_begin(struct xlog *x, const struct timeval *now, size_t head_len);

/* Copies method and path (path + '?' + query when query is not NULL). Borrows the slices. */
void xlog_target(struct xlog *x, struct h1_slice method, struct h1_slice path,
                 struct h1_slice query);

/* Records the authenticated user (quotes and control characters become '?'). Borrows user. */
void xlog_user(struct xlog *x, const char *user);

/* Writes the line (when open and enabled) and closes the record; the backend field is "-"
 * when x->be is NULL, the pool's name alone when x->server is. */
void xlog_write(struct xlog *x, bool enabled, uint64_t sid, const char *peer,
                const struct timeval *now);

#endif
