/*
 * One worker process: its event base, its SO_REUSEPORT listeners, its sessions, and the
 * drain on SIGTERM. Nothing here is shared with other workers.
 */
#ifndef PROXY_WORKER_H
#define PROXY_WORKER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <sys/socket.h>

#include "conf/conf.h"

struct event_base;
struct evconnlistener;
struct event;
struct ssl_ctx_st;
struct session;
struct climit;

/* Per-backend runtime data prepared before the workers fork. */
struct backend_rt {
    struct ssl_ctx_st *tls;        /* client context, NULL for plain HTTP backends */
    struct sockaddr_storage *addr; /* per server, resolved at start-up */
    socklen_t *addrlen;
};

struct worker {
    int index;
    const struct conf *conf;
    struct event_base *base;
    struct ssl_ctx_st **listener_tls; /* per listener, NULL for plain */
    struct backend_rt *backends;      /* per backend */
    struct evconnlistener **listeners;
    int *listen_fds; /* per listener, bound and listening */
    struct event *sig_term, *sig_int, *grace_timer, *accept_retry;
    size_t nsessions;
    struct session *sessions;
    uint64_t next_session_id;
    bool draining;
    bool accept_full;       /* accepting paused at max_connections */
    struct climit *climit;  /* per-address counts; NULL without max_connections_per_client */
    uint64_t refused_limit; /* connections refused by max_connections_per_client */
};

/* Runs a worker until drained; returns the process exit status. Takes nothing; borrows all. */
int worker_run(struct worker *w, int ready_fd);

/* Called by session.c when a session ends, so a draining worker can exit. */
void worker_session_gone(struct worker *w);

#endif
