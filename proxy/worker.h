/*
 * One worker process: its event base, the listening sockets it inherited from the master, its
 * sessions, and the drain on SIGTERM (stop) or SIGUSR2 (superseded by a reload). Nothing here
 * is shared with other workers.
 */
#ifndef PROXY_WORKER_H
#define PROXY_WORKER_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <sys/socket.h>
#include <time.h>

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

/* The master's node drain request to the workers of the current generation (exshim -s drain
 * arrives at the master as SIGUSR2, which workers already use for the hand-over). A real-time
 * signal: nothing else sends it, unlike SIGWINCH from a terminal. */
#define WORKER_SIG_NODE_DRAIN (SIGRTMIN + 1)

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
    struct event *sig_node_drain, *quiet_timer;
    bool stopping;               /* SIGTERM: drain within grace (draining is set too) */
    bool draining;               /* every response says Connection: close (session.c) */
    bool node_drain;             /* draining but still accepting, until stopping (see worker_run) */
    struct timespec last_accept; /* node drain: CLOCK_MONOTONIC of the last accept */
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
 * the log file; WORKER_SIG_NODE_DRAIN drains while still accepting (every response closes its
 * connection) and ends once no session is left and nothing was accepted for 2 s, or at
 * conf->drain_timeout_ms; a SIGTERM after it is a stop.
 */
int worker_run(struct worker *w, int ready_fd);

#endif
