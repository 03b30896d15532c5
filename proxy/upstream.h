/*
 * Backend pools: which server a client goes to, and the connection to it.
 *
 * Rendezvous hashing of the client address over the servers that are healthy for the route
 * (proxy/health.h): deterministic, so several exshim instances behind an L4 balancer choose
 * alike with no shared state, and a client keeps its server while that server is up (a server
 * going down moves only its own clients). Or balance = "leastconn": the server with the
 * fewest open connections from this worker, ties broken by the same hash. When a connect
 * fails the client's next server in the rendezvous ranking that is not down is tried (see
 * upstream_next), so nodes fail over alike too.
 */
#ifndef PROXY_UPSTREAM_H
#define PROXY_UPSTREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

#include "conf/conf.h"

struct event_base;
struct ssl_ctx_st;
struct conn;
struct conn_cbs;
struct health_pool;

/* Per-backend runtime data prepared before the workers fork. */
struct backend_rt {
    struct ssl_ctx_st *tls;        /* client context, NULL for plain HTTP backends */
    struct sockaddr_storage *addr; /* per server, resolved at start-up */
    socklen_t *addrlen;
    struct health_pool *health; /* this worker's view of the servers (health_start); NULL: up */
};

/*
 * Rendezvous choice among the servers i of be with usable[i] (pure): the one whose hash with
 * key weighs most, so removing a server moves only the keys it had. Borrows all. Returns the
 * index, or SIZE_MAX when no server is usable.
 */
size_t upstream_rendezvous(const struct conf_backend *be, const bool *usable, const char *key);

/*
 * The server for a new backend connection of route r (a route of be) from client address
 * key, by be's balance among the servers up for r; when none is up, among the suspect ones
 * (passive marks only, so they are tried rather than refused). Borrows all. Returns 0 with
 * *server_out, or -1 when every server is down (the caller answers 503).
 */
int upstream_choose(const struct conf_backend *be, const struct backend_rt *rt,
                    const struct conf_route *r, const char *key, size_t *server_out);

/* A connect to server failed for reason why: marks it (health_connect_failed). */
void upstream_failed(const struct backend_rt *rt, size_t server, const char *why);

/* The server to try after server failed for client address key: the one ranked next below it
 * by the rendezvous weights for key that is not down for r (server itself when there is
 * none). Trying in this order visits every server at most once. */
size_t upstream_next(const struct conf_backend *be, const struct backend_rt *rt,
                     const struct conf_route *r, const char *key, size_t server);

/* Counts c as an open connection to server (leastconn) until it is freed. Borrows c. */
void upstream_count(const struct backend_rt *rt, size_t server, struct conn *c);

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
