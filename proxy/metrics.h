/*
 * Prometheus metrics, summed over every worker and every generation alive.
 *
 * Each generation has one counter region: an anonymous MAP_SHARED mapping that the master
 * creates from the generation's configuration before it forks that generation's workers.
 * Workers add to it with relaxed atomics (a scrape may see a request counted before its bytes,
 * never a torn number). The master reads every live region when scraped; when a generation
 * ends, the master folds its counters into a private total first, so counters never go back.
 *
 * The master serves the `metrics` listener from one small thread (see metrics_listen), so a
 * scrape is answered while the master's main loop is busy with a reload.
 *
 * Worker side: one process-wide region (metrics_attach), like the logger, so that every hook in
 * session.c, authn.c and conn.c is one call with no pointer threaded through. Every hook does
 * nothing when no region is attached (no `metrics` block, or unit tests).
 */
#ifndef PROXY_METRICS_H
#define PROXY_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "conf/conf.h"

struct h1_head;
struct metrics_gen;

/* ---- master side ------------------------------------------------------------------------ */

/*
 * A counter region for a generation with configuration c (borrowed: the master's copy may be
 * freed when the generation is superseded, so every label is copied here; the workers keep
 * their copy of c and metrics_attach relies on it). Returns owned (metrics_gen_free) or NULL.
 */
struct metrics_gen *metrics_gen_new(const struct conf *c);

/* Makes mg visible to scrapes (the generation runs). Borrows mg until metrics_gen_free.
 * Accepts NULL. */
void metrics_gen_publish(struct metrics_gen *mg);

/* The generation ended (or never ran): a published mg's counters are kept in the master's
 * totals; then the region is unmapped and mg freed. Accepts NULL. */
void metrics_gen_free(struct metrics_gen *mg);

/*
 * Starts the metrics listener on host:port (numeric) and its thread: GET /metrics (the
 * exposition text), GET /healthz (see metrics_healthz_answer). Call before the first
 * fork with every signal blocked. Returns 0, or -1 with err. Children forked later close the
 * listener by themselves.
 */
int metrics_listen(const char *host, const char *port, char *err, size_t errlen);

/* The port metrics_listen bound (for port 0), or 0 when not listening. */
int metrics_port(void);

/* From now on GET /healthz answers 503 "draining" and exshim_draining is 1 (the master calls
 * it on -s drain and on SIGTERM), so an L4 balancer stops sending new connections while the
 * node's channels finish. */
void metrics_set_draining(void);

/* Stops the thread and closes the listener. Accepts being called without metrics_listen. */
void metrics_stop(void);

/* Process state as the master sees it now: workers alive, generations alive. */
void metrics_process(size_t workers, size_t generations);

/* A reload ended: ok, or failed (the old generation keeps running). */
void metrics_reload_done(bool ok);

/* How long the last successful configuration load took (conf_load, TLS contexts, backends). */
void metrics_config_loaded(double seconds);

/* Open client connections of mg's generation, all workers; -1 for NULL (no metrics). */
long metrics_client_connections(const struct metrics_gen *mg);

/* Worker slots per generation (worker index 0..METRICS_MAX_WORKERS-1), as main.c's MAX_WORKERS. */
#define METRICS_MAX_WORKERS 256

/* The worker in slot (its index) of mg's generation has ended: its gauges (connections,
 * channels) are cleared, whatever it left open. Master side; accepts NULL. */
void metrics_worker_gone(struct metrics_gen *mg, int slot);

/* ---- worker side ------------------------------------------------------------------------ */

/* This process, the worker in slot (its index), counts into mg from now on (borrowed: the
 * mapping outlives the worker). mg NULL: nothing is counted. */
void metrics_attach(struct metrics_gen *mg, int slot);

/* A client connection on listener li opened / closed. */
void metrics_client_open(size_t li);
void metrics_client_close(size_t li);

/* An exchange ended: route (NULL: no route matched), the status sent (0: none), its bytes. */
void metrics_exchange(const struct conf_route *route, int status, uint64_t bytes_in,
                      uint64_t bytes_out);

/* A request was forwarded: returns the kind of long-lived channel it opens (counted open now),
 * or 0. Borrows h. */
int metrics_channel_open(const struct h1_head *h);

/* The exchange that opened *kind (0: none) ended; sets *kind to 0. */
void metrics_channel_close(int *kind);

/* An auth handshake ended; trace is its auth/bridge.h trace record (borrowed). */
void metrics_auth_trace(const char *trace);

/* A TLS handshake on listener li finished with protocol version (e.g. "TLSv1.3") / failed with
 * the error text the connection reported ("timeout" for the handshake deadline). */
void metrics_tls_done(size_t li, const char *version);
void metrics_tls_failed(size_t li, const char *error);

/* A connect to server si of backend bi failed. */
void metrics_connect_failed(size_t bi, size_t si);

/* This worker's backend health for /healthz: any is true when at least one route has a
 * server that may take new connections. */
void metrics_backends_usable(bool any);

/* This worker's accept() just failed for want of a descriptor (EMFILE, ENFILE): /healthz
 * says so for METRICS_ACCEPT_FAIL_WINDOW_MS. */
void metrics_accept_starved(void);

/* The open-connections gauge of server si of backend bi, for conn_count_in(); NULL without
 * metrics. Returns a view into the region. */
int64_t *metrics_backend_gauge(size_t bi, size_t si);

/*
 * Health of server si of backend bi as a health check found it: up or not, and how long the
 * check took. Until a check reports, every server is exposed as up (1) and no latency is
 * exposed for it.
 */
void metrics_server_health(size_t bi, size_t si, bool up, double check_seconds);

/* ---- /healthz (pure; exported for tests) ------------------------------------------------ */

#define METRICS_ACCEPT_FAIL_WINDOW_MS 5000

/* What /healthz is decided from: the current generation's workers as they reported. */
struct metrics_node_view {
    bool draining;          /* -s drain or SIGTERM */
    int64_t now_ms;         /* CLOCK_MONOTONIC */
    int64_t accept_fail_ms; /* latest accept() failure for want of a descriptor, 0: none */
    size_t backends_some;   /* workers that have a route with a usable server */
    size_t backends_none; /* workers that have none; workers that did not report count in neither */
};

/*
 * The status and body (static) of GET /healthz: 503 "draining\n" first; then 503 "cannot
 * accept: descriptor limit\n" within the window after an accept failure; then 503 "no healthy
 * backend\n" when some worker reported no usable server for any route and none reported one;
 * else 200 "ok\n".
 */
int metrics_healthz_answer(const struct metrics_node_view *v, const char **body_out);

/* The /healthz answer now, from the published regions (master side). */
int metrics_healthz(const char **body_out);

/* ---- exposition (pure; exported for tests) ---------------------------------------------- */

enum metrics_family {
    MF_AUTH,
    MF_CHALLENGES,
    MF_CHECK_SECONDS,
    MF_CONNECT_FAILURES,
    MF_BACKEND_CONNS,
    MF_SERVER_UP,
    MF_CHANNELS,
    MF_CLIENT_CONNS,
    MF_CONFIG_LOAD,
    MF_DRAINING,
    MF_GENERATIONS,
    MF_RELOADS,
    MF_REQUEST_BYTES,
    MF_REQUESTS,
    MF_TLS_FAILURES,
    MF_TLS_HANDSHAKES,
    MF_WORKERS,
    MF_COUNT
};

#define METRICS_LABELS_MAX 320

/* One series: a family and its label pairs, already escaped ("route=\"/ews\",code=\"2xx\""). */
struct metrics_sample {
    enum metrics_family family;
    char labels[METRICS_LABELS_MAX];
    double value;
};

/* Appends key="value" (with a comma when labels is not empty) to labels, escaping '\', '"' and
 * newline as the exposition format wants. Returns 0, or -1 when it does not fit (labels kept
 * as they were). */
int metrics_label_add(char *labels, const char *key, const char *value);

/* Sorts s by family name and labels and adds up samples of the same series. Returns the number
 * of samples left at the front of s. */
size_t metrics_merge(struct metrics_sample *s, size_t n);

/* The exposition text of merged samples: # HELP and # TYPE once per family, then its series.
 * Returns owned (free) text of *len_out bytes, or NULL. */
char *metrics_render(const struct metrics_sample *s, size_t n, size_t *len_out);

/* The outcome an auth trace record reports ("success", "backend_refused", "steered",
 * "bridged_ntlm_to_negotiate", "bridged_negotiate_to_ntlm", "rejected", "incomplete"); its
 * scheme in *scheme_out (static). */
const char *metrics_auth_outcome(const char *trace, const char **scheme_out);

/* The reason label of a TLS handshake error text. Returns a static string. */
const char *metrics_tls_reason(const char *error);

#endif
