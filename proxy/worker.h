/*
 * One worker process: its event base, the listening sockets it inherited from the master, its
 * sessions, and the drain on SIGTERM (stop) or SIGUSR2 (superseded by a reload). Nothing here
 * is shared with other workers.
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
struct health;
struct ppaccept;

struct worker {
    int index;
    const struct conf *conf;
    struct event_base *base;
    struct ssl_ctx_st **listener_tls; /* per listener, NULL for plain */
    struct backend_rt *backends;      /* per backend */
    /* Listening sockets inherited from the master: listen_fds[k] accepts for listener
     * listen_li[k]; one listener may have several (SO_REUSEPORT slots), see proxy/main.c. */
    struct evconnlistener **listeners; /* per listen_fds entry */
    int *listen_fds;
    size_t *listen_li;
    size_t nlisten;
    struct event *sig_term, *sig_int, *grace_timer, *accept_retry;
    struct event *sig_reload, *sig_reopen, *drain_timer, *close_timer, *log_timer;
    bool stopping; /* SIGTERM: drain within grace (draining is set too) */
    bool draining;
    bool accept_full;            /* accepting paused at max_connections */
    struct climit *climit;       /* per-address counts; NULL without max_connections_per_client */
    struct health *health;       /* this worker's backend checks (proxy/health.h) */
    struct session_registry reg; /* this worker's sessions */
    struct session_env env;      /* what its sessions see of it */
    struct ppaccept *pp;         /* connections still reading their PROXY header */
};

/*
 * Runs a worker until drained; returns the process exit status. Takes nothing; borrows all
 * (the listen_fds are closed here when the worker stops accepting).
 * Signals: SIGTERM/SIGINT stop (idle sessions close, busy ones within conf->grace_ms);
 * SIGUSR2 hands over to a newer generation (stop accepting; every session ends on its own, a
 * keep-alive one after its next response, within conf->drain_timeout_ms); SIGUSR1 reopens
 * the log file.
 */
int worker_run(struct worker *w, int ready_fd);

#endif
