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
#include "proxy/session.h"
#include "proxy/upstream.h"

struct event_base;
struct evconnlistener;
struct event;
struct ssl_ctx_st;
struct session;
struct climit;

struct worker {
    int index;
    const struct conf *conf;
    struct event_base *base;
    struct ssl_ctx_st **listener_tls; /* per listener, NULL for plain */
    struct backend_rt *backends;      /* per backend */
    struct evconnlistener **listeners;
    int *listen_fds; /* per listener, bound and listening */
    struct event *sig_term, *sig_int, *grace_timer, *accept_retry;
    bool draining;
    bool accept_full;            /* accepting paused at max_connections */
    struct climit *climit;       /* per-address counts; NULL without max_connections_per_client */
    struct session_registry reg; /* this worker's sessions */
    struct session_env env;      /* what its sessions see of it */
};

/* Runs a worker until drained; returns the process exit status. Takes nothing; borrows all. */
int worker_run(struct worker *w, int ready_fd);

#endif
