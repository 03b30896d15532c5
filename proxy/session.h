/*
 * A session is one client connection and the one backend connection pinned to it.
 * session_close() (session.c) is the only path that frees it; the struct is private to the
 * session files (proxy/session_int.h).
 */
#ifndef PROXY_SESSION_H
#define PROXY_SESSION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "conf/conf.h"

struct event_base;
struct ssl_ctx_st;
struct backend_rt;
struct climit;
struct session;

/* The sessions of one worker; the worker owns it, only session.c changes it. */
struct session_registry {
    struct session *head;
    size_t n;
    uint64_t next_id;
    uint64_t refused_limit; /* connections refused by max_connections_per_client */
};

/*
 * What a session needs from the worker that runs it. Set up once per worker and not changed
 * while sessions run, except through the pointers the worker owns (draining, the registry), so
 * dependencies go one way: worker -> session.
 */
struct session_env {
    const struct conf *conf;
    struct event_base *base;
    struct ssl_ctx_st *const *listener_tls; /* per listener, NULL for plain */
    const struct backend_rt *backends;      /* per backend */
    struct climit *climit;                  /* NULL without max_connections_per_client */
    const bool *draining;                   /* the worker stops: finish and close */
    struct session_registry *reg;
    void (*gone)(void *arg); /* called after a session ended (registry count already lower) */
    void *gone_arg;
    int worker_index;
};

/* The address of sa as text into ip (INET6_ADDRSTRLEN bytes; "?" for another family) and its
 * port into *port_out (0 then): how sessions name a client in logs, limits and hashing. */
void session_addr(const struct sockaddr *sa, char *ip, size_t iplen, int *port_out);

/* Takes ownership of fd (closed on failure too). li: index of the accepting listener. Borrows
 * env, which must outlive every session. */
void session_accept(const struct session_env *env, size_t li, int fd, const struct sockaddr *sa,
                    int salen);

/* Asks idle sessions to end now and busy ones to end after their current exchange. */
void session_drain_all(struct session_registry *reg);

#endif
