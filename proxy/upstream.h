/*
 * Backend pools: which server a client goes to, and the connection to it.
 *
 * Rendezvous hashing of the client address over the pool's servers: deterministic, so several
 * exshim instances behind an L4 balancer choose alike with no shared state, and a client keeps
 * its server while that server is up. When a connect fails the next server in the pool order
 * is tried (see upstream_next).
 */
#ifndef PROXY_UPSTREAM_H
#define PROXY_UPSTREAM_H

#include <stddef.h>
#include <sys/socket.h>

#include "conf/conf.h"

struct event_base;
struct ssl_ctx_st;
struct conn;
struct conn_cbs;

/* Per-backend runtime data prepared before the workers fork. */
struct backend_rt {
    struct ssl_ctx_st *tls;        /* client context, NULL for plain HTTP backends */
    struct sockaddr_storage *addr; /* per server, resolved at start-up */
    socklen_t *addrlen;
};

/* The server of be that client address key goes to. Borrows both. */
size_t upstream_choose(const struct conf_backend *be, const char *key);

/* The server to try after server failed. */
size_t upstream_next(const struct conf_backend *be, size_t server);

/*
 * Opens a connection to server of be (TLS with SNI and verification when the backend has a
 * tls group), bounded by the backend's connect_timeout. Borrows everything. Returns owned, or
 * NULL with a reason in err when it cannot even start.
 */
struct conn *upstream_open(struct event_base *base, const struct conf_backend *be,
                           const struct backend_rt *rt, size_t server, const struct conn_cbs *cbs,
                           void *arg, char *err, size_t errlen);

/* Socket options for an established backend connection (TCP_NODELAY, keepalive). */
void upstream_tune(const struct conf_backend *be, int fd);

#endif
