/*
 * Health of the backend servers as one worker sees it. Each worker checks on its own (no
 * shared state between processes, as HAProxy's per-process checks): every interval it sends
 * a plain GET of each health path (HTTP/1.1, Host, Connection: close) to each server of a
 * backend with a health group, over a fresh connection opened like a session's (TLS, SNI and
 * verification are the backend's), and counts the answers: the status `expect` within
 * `timeout` passes, anything else fails; `fall` failures in a row take a (server, path) down,
 * `rise` passes in a row bring it back up. Servers start up.
 *
 * Exchange reports health per protocol, so a backend has several health paths: its own
 * (health.path) and the health_path of each route that uses it; a route reads the state of
 * its own path when it names one, else the backend's.
 *
 * Passive marks: a connect that fails (refused, timed out, TLS handshake) takes the server
 * down at once for every path; with active checks it comes back after `rise` passes, without
 * them it is only suspect and is tried again after HEALTH_PASSIVE_RETRY_MS.
 *
 * Each pool also counts this worker's open backend connections per server (leastconn).
 *
 * For GET /healthz the worker publishes one summary after every change of a mark (through
 * metrics_backends_usable): whether some route still has a server that is not down.
 */
#ifndef PROXY_HEALTH_H
#define PROXY_HEALTH_H

#include <stdbool.h>
#include <stddef.h>

#include "conf/conf.h"

struct event_base;
struct backend_rt;
struct conn;
struct health;
struct health_pool;

/* Without active checks, a server whose connect failed is avoided this long. */
#define HEALTH_PASSIVE_RETRY_MS 10000u

/* The rise/fall counter of one (server, health path). */
struct health_mark {
    bool up;      /* the state; a new mark starts up */
    unsigned run; /* consecutive results contradicting the state so far */
};

/*
 * Counts one check result (pure): a pass while down counts towards rise, a failure while up
 * towards fall, a result that agrees with the state clears the count. Returns true when the
 * state flipped with this result.
 */
bool health_mark_result(struct health_mark *m, bool ok, unsigned rise, unsigned fall);

enum health_state {
    HEALTH_UP,      /* may take new connections */
    HEALTH_SUSPECT, /* a connect failed and there are no active checks: only if no server is up */
    HEALTH_DOWN,    /* failed its checks (or a connect, until its checks pass again) */
};

/*
 * Sets up one pool per backend in rts[i].health and starts the checks of the backends that
 * have a health group, on base. Borrows everything, which must outlive the returned object.
 * Returns owned (health_free), or NULL.
 */
struct health *health_start(struct event_base *base, const struct conf *c, struct backend_rt *rts);

/* Stops the active checks (a draining worker); the last states and counts stay. Accepts NULL. */
void health_stop(struct health *h);

/*
 * Stops the checks, frees everything and clears rts[i].health. Only once no connection counted
 * by health_conn_opened is open any more (their close hooks point into the pools); a worker
 * never calls it, its pools go with the process. Accepts NULL.
 */
void health_free(struct health *h);

/* The state of server for new connections of route r (a route of the pool's backend). */
enum health_state health_state_of(struct health_pool *p, const struct conf_route *r, size_t server);

/* A connect to server failed for reason why: the passive mark (one log line per change). */
void health_connect_failed(struct health_pool *p, size_t server, const char *why);

/* Counts c as an open connection to server until it is freed. Borrows c. */
void health_conn_opened(struct health_pool *p, size_t server, struct conn *c);

/* This worker's open connections to server. */
size_t health_conns(const struct health_pool *p, size_t server);

#endif
