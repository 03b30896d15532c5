/* Backend health per worker. See health.h. */
#include "proxy/health.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "proxy/conn.h"
#include "proxy/log.h"
#include "proxy/metrics.h"
#include "proxy/upstream.h"

/* A health answer's status line must arrive within this many bytes. */
#define STATUS_LINE_MAX 1024

/* One (server, health path): its counter and the check in flight, if any. */
struct hcheck {
    struct health_pool *pool;
    size_t server, path;
    struct health_mark mark;
    struct event *tick;     /* the next check, every interval */
    struct event *deadline; /* the running check's timeout */
    struct conn *conn;      /* the running check; NULL between checks */
    struct timeval started; /* when the running check began */
};

struct health_pool {
    struct health *h; /* the worker's set of pools */
    struct event_base *base;
    size_t bi; /* index of be in the configuration */
    const struct conf_backend *be;
    const struct backend_rt *rt;
    const char **paths; /* [0] the backend's health.path, then the routes' own; none unchecked */
    size_t npaths;
    struct hcheck *checks;         /* [path * nservers + server] */
    struct timeval *suspect_until; /* per server; passive marks of unchecked backends */
    size_t *conns;                 /* per server: open backend connections */
};

struct health {
    const struct conf *conf;
    struct health_pool *pools;
    size_t npools;
    struct backend_rt *rts;
};

/* For /healthz: whether some route still has a server that may take new connections. Only
 * checked pools can hold a server down, so this reads marks and logs nothing. */
static void
publish_usable(const struct health *h)
{
    const struct conf *c = h->conf;
    bool any = c->nroutes == 0;
    for (size_t r = 0; r < c->nroutes && !any; r++) {
        const struct conf_route *rt = &c->routes[r];
        struct health_pool *p = &h->pools[rt->backend];
        for (size_t k = 0; k < p->be->nservers && !any; k++)
            any = health_state_of(p, rt, k) != HEALTH_DOWN;
    }
    metrics_backends_usable(any);
}

bool
health_mark_result(struct health_mark *m, bool ok, unsigned rise, unsigned fall)
{
    if (ok == m->up) {
        m->run = 0;
        return false;
    }
    m->run++;
    if (m->run < (m->up ? fall : rise))
        return false;
    m->up = !m->up;
    m->run = 0;
    return true;
}

/* ---- one check ---------------------------------------------------------------------- */

static void check_on_read(void *arg);
static void check_on_drained(void *arg);
static void check_on_event(void *arg, enum conn_event ev);
static const struct conn_cbs check_cbs = {check_on_read, check_on_drained, check_on_event};

static void
check_done(struct hcheck *hc, bool ok, const char *why)
{
    struct health_pool *p = hc->pool;
    const struct conf_health *cfg = &p->be->health;
    const struct conf_server *sv = &p->be->servers[hc->server];

    conn_free(hc->conn);
    hc->conn = NULL;
    event_del(hc->deadline);
    bool changed = health_mark_result(&hc->mark, ok, cfg->rise, cfg->fall);
    if (hc->path == 0) {
        /* The backend's own health page is what exshim_backend_server_up shows. */
        struct timeval now, took;
        event_base_gettimeofday_cached(p->base, &now);
        timersub(&now, &hc->started, &took);
        metrics_server_health(p->bi, hc->server, hc->mark.up,
                              (double)took.tv_sec + (double)took.tv_usec / 1e6);
    }
    if (changed)
        publish_usable(p->h);
    if (!changed) {
        if (!ok)
            log_debug("backend %s server %s:%s for %s: check failed: %s", p->be->name, sv->host,
                      sv->port, p->paths[hc->path], why);
        return;
    }
    if (hc->mark.up)
        log_info("backend %s server %s:%s for %s is up", p->be->name, sv->host, sv->port,
                 p->paths[hc->path]);
    else
        log_warnx("backend %s server %s:%s for %s is down (%u checks failed: %s)", p->be->name,
                  sv->host, sv->port, p->paths[hc->path], cfg->fall, why);
}

static void
check_on_drained(void *arg)
{
}

/* Only the status line matters: "HTTP/1.x NNN ...". */
static void
check_on_read(void *arg)
{
    struct hcheck *hc = arg;
    struct evbuffer *in = conn_input(hc->conn);
    size_t len = evbuffer_get_length(in);
    size_t look = len < STATUS_LINE_MAX ? len : STATUS_LINE_MAX;
    const char *p = (const char *)evbuffer_pullup(in, (ev_ssize_t)look);
    const char *eol = p != NULL ? memchr(p, '\n', look) : NULL;
    char why[32];

    if (eol == NULL) {
        if (len >= STATUS_LINE_MAX)
            check_done(hc, false, "no status line");
        return;
    }
    if (eol - p < 12 || memcmp(p, "HTTP/1.", 7) != 0 || p[8] != ' ' || p[9] < '1' || p[9] > '5' ||
        p[10] < '0' || p[10] > '9' || p[11] < '0' || p[11] > '9') {
        check_done(hc, false, "not an HTTP response");
        return;
    }
    int status = (p[9] - '0') * 100 + (p[10] - '0') * 10 + (p[11] - '0');
    snprintf(why, sizeof(why), "%d", status);
    check_done(hc, status == hc->pool->be->health.expect, why);
}

static void
check_on_event(void *arg, enum conn_event ev)
{
    struct hcheck *hc = arg;
    struct health_pool *p = hc->pool;
    char why[300];

    if (ev == CONN_CONNECTED) {
        const struct conf_server *sv = &p->be->servers[hc->server];
        evbuffer_add_printf(conn_output(hc->conn),
                            "GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: exshim-health\r\n"
                            "Connection: close\r\n\r\n",
                            p->paths[hc->path], p->be->sni ? p->be->sni : sv->host);
        conn_read(hc->conn, true);
        conn_sync(hc->conn);
        return;
    }
    if (ev == CONN_EOF && evbuffer_get_length(conn_input(hc->conn)) > 0) {
        check_on_read(hc); /* a status line that came with the close */
        if (hc->conn == NULL)
            return;
    }
    if (ev == CONN_TIMEOUT)
        snprintf(why, sizeof(why), "connect timed out");
    else if (ev == CONN_EOF)
        snprintf(why, sizeof(why), "closed without answering");
    else
        snprintf(why, sizeof(why), "%s", conn_error(hc->conn));
    check_done(hc, false, why);
}

static void
check_deadline_cb(evutil_socket_t fd, short what, void *arg)
{
    struct hcheck *hc = arg;
    char why[64];
    snprintf(why, sizeof(why), "no answer in %u ms", hc->pool->be->health.timeout_ms);
    check_done(hc, false, why);
}

static void
check_tick_cb(evutil_socket_t fd, short what, void *arg)
{
    struct hcheck *hc = arg;
    struct health_pool *p = hc->pool;
    char err[256];
    unsigned every = p->be->health.interval_ms;
    struct timeval next = {.tv_sec = every / 1000, .tv_usec = (every % 1000) * 1000};

    evtimer_add(hc->tick, &next);
    if (hc->conn != NULL)
        return; /* the previous one is still running (its deadline ends it) */
    event_base_gettimeofday_cached(p->base, &hc->started);
    hc->conn = upstream_open(p->base, p->be, p->rt, hc->server, &check_cbs, hc, err, sizeof(err));
    if (hc->conn == NULL) {
        check_done(hc, false, err);
        return;
    }
    unsigned ms = p->be->health.timeout_ms;
    struct timeval tv = {.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000};
    evtimer_add(hc->deadline, &tv);
}

/* ---- pools -------------------------------------------------------------------------- */

static size_t
path_index(const struct health_pool *p, const char *path)
{
    for (size_t i = 0; i < p->npaths; i++)
        if (strcmp(p->paths[i], path) == 0)
            return i;
    return p->npaths;
}

static int
pool_init(struct health_pool *p, struct event_base *base, const struct conf *c, size_t bi,
          const struct backend_rt *rt)
{
    const struct conf_backend *be = &c->backends[bi];
    size_t n = be->nservers;

    p->base = base;
    p->bi = bi;
    p->be = be;
    p->rt = rt;
    p->suspect_until = calloc(n, sizeof(*p->suspect_until));
    p->conns = calloc(n, sizeof(*p->conns));
    if (p->suspect_until == NULL || p->conns == NULL)
        return -1;
    if (!be->checked)
        return 0;
    if ((p->paths = calloc(c->nroutes + 1, sizeof(*p->paths))) == NULL)
        return -1;
    p->paths[p->npaths++] = be->health.path;
    for (size_t r = 0; r < c->nroutes; r++) {
        const char *hp = c->routes[r].health_path;
        if (c->routes[r].backend == bi && hp != NULL && path_index(p, hp) == p->npaths)
            p->paths[p->npaths++] = hp;
    }
    if ((p->checks = calloc(p->npaths * n, sizeof(*p->checks))) == NULL)
        return -1;
    struct timeval at_once = {0, 0};
    for (size_t k = 0; k < p->npaths * n; k++) {
        struct hcheck *hc = &p->checks[k];
        hc->pool = p;
        hc->path = k / n;
        hc->server = k % n;
        hc->mark.up = true;
        hc->tick = evtimer_new(base, check_tick_cb, hc);
        hc->deadline = evtimer_new(base, check_deadline_cb, hc);
        /* The first round runs at once, so a server down at start-up is found after fall
         * checks and not one interval later; each tick arms the next one. */
        if (hc->tick == NULL || hc->deadline == NULL || evtimer_add(hc->tick, &at_once) != 0)
            return -1;
    }
    return 0;
}

struct health *
health_start(struct event_base *base, const struct conf *c, struct backend_rt *rts)
{
    struct health *h = calloc(1, sizeof(*h));
    if (h == NULL || (h->pools = calloc(c->nbackends, sizeof(*h->pools))) == NULL) {
        free(h);
        return NULL;
    }
    h->conf = c;
    h->npools = c->nbackends;
    h->rts = rts;
    for (size_t i = 0; i < c->nbackends; i++) {
        h->pools[i].h = h;
        if (pool_init(&h->pools[i], base, c, i, &rts[i]) != 0) {
            health_free(h);
            return NULL;
        }
        rts[i].health = &h->pools[i];
    }
    publish_usable(h);
    return h;
}

void
health_stop(struct health *h)
{
    if (h == NULL)
        return;
    for (size_t i = 0; i < h->npools; i++) {
        struct health_pool *p = &h->pools[i];
        for (size_t k = 0; p->checks != NULL && k < p->npaths * p->be->nservers; k++) {
            struct hcheck *hc = &p->checks[k];
            if (hc->tick != NULL)
                event_del(hc->tick);
            if (hc->deadline != NULL)
                event_del(hc->deadline);
            conn_free(hc->conn);
            hc->conn = NULL;
        }
    }
}

void
health_free(struct health *h)
{
    if (h == NULL)
        return;
    health_stop(h);
    for (size_t i = 0; i < h->npools; i++) {
        struct health_pool *p = &h->pools[i];
        for (size_t k = 0; p->checks != NULL && k < p->npaths * p->be->nservers; k++) {
            if (p->checks[k].tick != NULL)
                event_free(p->checks[k].tick);
            if (p->checks[k].deadline != NULL)
                event_free(p->checks[k].deadline);
        }
        free(p->checks);
        free(p->paths);
        free(p->suspect_until);
        free(p->conns);
        h->rts[i].health = NULL;
    }
    free(h->pools);
    free(h);
}

enum health_state
health_state_of(struct health_pool *p, const struct conf_route *r, size_t server)
{
    if (p == NULL)
        return HEALTH_UP;
    if (p->npaths > 0) {
        size_t k = r != NULL && r->health_path != NULL ? path_index(p, r->health_path) : 0;
        if (k == p->npaths)
            k = 0;
        return p->checks[k * p->be->nservers + server].mark.up ? HEALTH_UP : HEALTH_DOWN;
    }
    struct timeval *until = &p->suspect_until[server];
    if (!timerisset(until))
        return HEALTH_UP;
    struct timeval now;
    event_base_gettimeofday_cached(p->base, &now);
    if (now.tv_sec < until->tv_sec || (now.tv_sec == until->tv_sec && now.tv_usec < until->tv_usec))
        return HEALTH_SUSPECT;
    timerclear(until);
    const struct conf_server *sv = &p->be->servers[server];
    log_info("backend %s server %s:%s is tried again (%u s after its connect failed)", p->be->name,
             sv->host, sv->port, HEALTH_PASSIVE_RETRY_MS / 1000);
    return HEALTH_UP;
}

void
health_connect_failed(struct health_pool *p, size_t server, const char *why)
{
    if (p == NULL)
        return;
    const struct conf_server *sv = &p->be->servers[server];
    size_t n = p->be->nservers;
    if (p->npaths > 0) {
        bool was_up = false;
        for (size_t k = 0; k < p->npaths; k++) {
            struct health_mark *m = &p->checks[k * n + server].mark;
            was_up |= m->up;
            m->up = false;
            m->run = 0;
        }
        if (was_up) {
            log_warnx("backend %s server %s:%s is down for every health path (connect failed: "
                      "%s); up again after %u passed checks",
                      p->be->name, sv->host, sv->port, why, p->be->health.rise);
            publish_usable(p->h);
        }
        return;
    }
    struct timeval now, d = {.tv_sec = HEALTH_PASSIVE_RETRY_MS / 1000, .tv_usec = 0};
    event_base_gettimeofday_cached(p->base, &now);
    bool was_up = !timerisset(&p->suspect_until[server]);
    timeradd(&now, &d, &p->suspect_until[server]);
    if (was_up)
        log_warnx("backend %s server %s:%s is suspect (connect failed: %s); new connections go "
                  "to the other servers for %u s",
                  p->be->name, sv->host, sv->port, why, HEALTH_PASSIVE_RETRY_MS / 1000);
}

static void
conn_closed(void *arg)
{
    size_t *count = arg;
    (*count)--;
}

void
health_conn_opened(struct health_pool *p, size_t server, struct conn *c)
{
    if (p == NULL)
        return;
    p->conns[server]++;
    conn_on_close(c, conn_closed, &p->conns[server]);
}

size_t
health_conns(const struct health_pool *p, size_t server)
{
    return p != NULL ? p->conns[server] : 0;
}
