/*
 * Prometheus metrics: counter regions shared with the workers, the master's totals, the
 * exposition writer and the small HTTP responder of the `metrics` listener.
 *
 * Why a thread in the master and not its main loop: the master waits in sigtimedwait and
 * spends seconds inside a reload (configuration, TLS contexts, the backend certificate probe,
 * up to 15 s waiting for the new workers to listen). A scrape during a reload is the one that
 * matters, so the responder runs beside that loop. It takes no lock a forked child could need:
 * it never logs, and it only shares `lock` (below) with the main thread, which no child uses;
 * a pthread_atfork child handler closes its descriptors in every worker.
 */
#include "proxy/metrics.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "proxy/http1.h"

/* ---- the families ----------------------------------------------------------------------- */

enum mtype { MT_COUNTER, MT_GAUGE };

static const struct {
    const char *name;
    enum mtype type;
    const char *help;
} families[MF_COUNT] = {
    [MF_AUTH] = {"exshim_auth_handshakes_total", MT_COUNTER,
                 "NTLM/Negotiate handshakes ended, by route, client scheme and outcome."},
    [MF_CHALLENGES] = {"exshim_auth_challenges_sent_total", MT_COUNTER,
                       "401 responses sent to clients, by route."},
    [MF_CHECK_SECONDS] = {"exshim_backend_check_seconds", MT_GAUGE,
                          "Duration of the last health check of a backend server."},
    [MF_CONNECT_FAILURES] = {"exshim_backend_connect_failures_total", MT_COUNTER,
                             "Failed connects to a backend server."},
    [MF_BACKEND_CONNS] = {"exshim_backend_connections", MT_GAUGE,
                          "Open connections to a backend server."},
    [MF_SERVER_UP] = {"exshim_backend_server_up", MT_GAUGE,
                      "1 when the backend server is considered healthy, else 0."},
    [MF_CHANNELS] = {"exshim_channels", MT_GAUGE,
                     "Open long-lived channels (RPC over HTTP, MAPI notification waits)."},
    [MF_CLIENT_CONNS] = {"exshim_client_connections", MT_GAUGE,
                         "Open client connections, by listener."},
    [MF_CONFIG_LOAD] = {"exshim_config_load_seconds", MT_GAUGE,
                        "Duration of the last successful configuration load."},
    [MF_DRAINING] = {"exshim_draining", MT_GAUGE,
                     "1 once the node drains or stops (/healthz answers 503 draining), else 0."},
    [MF_GENERATIONS] = {"exshim_generations", MT_GAUGE,
                        "Generations of workers alive (the current one and those draining)."},
    [MF_RELOADS] = {"exshim_reloads_total", MT_COUNTER, "Reloads, by result."},
    [MF_REQUEST_BYTES] = {"exshim_request_bytes_total", MT_COUNTER,
                          "Bytes received from (in) and sent to (out) clients, by route."},
    [MF_REQUESTS] = {"exshim_requests_total", MT_COUNTER,
                     "Requests answered, by route and status class."},
    [MF_TLS_FAILURES] = {"exshim_tls_handshake_failures_total", MT_COUNTER,
                         "Failed TLS handshakes with clients, by listener and reason."},
    [MF_TLS_HANDSHAKES] = {"exshim_tls_handshakes_total", MT_COUNTER,
                           "Completed TLS handshakes with clients, by listener and version."},
    [MF_WORKERS] = {"exshim_workers", MT_GAUGE, "Worker processes alive, all generations."},
};

/* Label values of the fixed dimensions. */
static const char *const code_classes[] = {"1xx", "2xx", "3xx", "4xx", "5xx", "none"};
#define NCLASS 6
static const char *const schemes[] = {"NTLM", "Negotiate", "other"};
#define NSCHEME 3
static const char *const outcomes[] = {"success",
                                       "backend_refused",
                                       "steered",
                                       "bridged_ntlm_to_negotiate",
                                       "bridged_negotiate_to_ntlm",
                                       "rejected",
                                       "incomplete"};
#define NOUTCOME 7
static const char *const tls_versions[] = {"TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3", "other"};
#define NVERSION 5
static const char *const tls_reasons[] = {
    "protocol_version", "no_shared_cipher", "not_tls", "eof", "timeout", "other"};
#define NREASON 6
static const char *const channel_kinds[] = {"rpc_in", "rpc_out", "mapi_notify"};
#define NCHANNEL 3

/* ---- the shared region ------------------------------------------------------------------ */

/* Per route, plus one more for requests no route matched. */
struct mroute {
    uint64_t requests[NCLASS];
    uint64_t bytes_in, bytes_out;
    uint64_t auth[NSCHEME][NOUTCOME];
    uint64_t challenges;
};

struct mlistener {
    uint64_t tls_ok[NVERSION];
    uint64_t tls_fail[NREASON];
};

struct mserver {
    uint64_t connect_failures;
    int64_t up;           /* 1 until a health check says otherwise */
    uint64_t checks;      /* health checks reported */
    uint64_t check_nanos; /* duration of the last one */
};

/*
 * Gauges go up and down in pairs, so a worker that dies with connections open (a crash, the
 * SIGKILL past drain_timeout) would leave them counted for good. Each worker slot therefore
 * has its own gauges, which the master clears when it reaps that worker (metrics_worker_gone):
 * per slot, nlisteners client connections, nservers backend connections, NCHANNEL channels.
 */
/* A region is, in order: nroutes + 1 struct mroute, nlisteners struct mlistener, nservers
 * struct mserver, METRICS_MAX_WORKERS x gsize int64_t gauges. After the gauges of a slot come
 * two words for /healthz (cleared with the slot, like the gauges): */
#define NNODE 2
enum {
    NODE_BACKENDS,    /* 0 not reported, 1 some route has a server up, 2 no route has one */
    NODE_ACCEPT_FAIL, /* CLOCK_MONOTONIC ms of the last accept() that failed for want of an fd */
};

/* A generation's region and the labels it needs, copied (the master's conf goes away). */
struct metrics_gen {
    void *region;
    size_t map_len;
    struct mroute *routes;
    struct mlistener *listeners;
    struct mserver *servers;
    int64_t *gauges; /* METRICS_MAX_WORKERS slots of gsize */
    size_t gsize;
    size_t nroutes, nlisteners, nservers, nbackends;
    char **route_names, **listener_names, **server_backend, **server_names;
    size_t *server_base;     /* per backend: index of its first server */
    const struct conf *conf; /* worker side only: the worker's copy */
    bool published;
    struct metrics_gen *next;
};

static void
gen_names_free(struct metrics_gen *mg)
{
    for (size_t i = 0; mg->route_names != NULL && i < mg->nroutes; i++)
        free(mg->route_names[i]);
    for (size_t i = 0; mg->listener_names != NULL && i < mg->nlisteners; i++)
        free(mg->listener_names[i]);
    for (size_t i = 0; mg->server_names != NULL && i < mg->nservers; i++) {
        free(mg->server_names[i]);
        free(mg->server_backend[i]);
    }
    free(mg->route_names);
    free(mg->listener_names);
    free(mg->server_names);
    free(mg->server_backend);
    free(mg->server_base);
}

struct metrics_gen *
metrics_gen_new(const struct conf *c)
{
    struct metrics_gen *mg = calloc(1, sizeof(*mg));
    struct metrics_gen *ret = NULL;
    if (mg == NULL)
        return NULL;
    mg->conf = c;
    mg->nroutes = c->nroutes;
    mg->nlisteners = c->nlisteners;
    mg->nbackends = c->nbackends;
    mg->server_base = calloc(c->nbackends + 1, sizeof(*mg->server_base));
    if (mg->server_base == NULL)
        goto cleanup;
    for (size_t b = 0; b < c->nbackends; b++) {
        mg->server_base[b] = mg->nservers;
        mg->nservers += c->backends[b].nservers;
    }
    mg->route_names = calloc(mg->nroutes + 1, sizeof(char *));
    mg->listener_names = calloc(mg->nlisteners + 1, sizeof(char *));
    mg->server_names = calloc(mg->nservers + 1, sizeof(char *));
    mg->server_backend = calloc(mg->nservers + 1, sizeof(char *));
    if (mg->route_names == NULL || mg->listener_names == NULL || mg->server_names == NULL ||
        mg->server_backend == NULL)
        goto cleanup;
    for (size_t i = 0; i < mg->nroutes; i++)
        if ((mg->route_names[i] = strdup(c->routes[i].path)) == NULL)
            goto cleanup;
    for (size_t i = 0; i < mg->nlisteners; i++)
        if ((mg->listener_names[i] = strdup(c->listeners[i].name)) == NULL)
            goto cleanup;
    for (size_t b = 0; b < c->nbackends; b++) {
        for (size_t k = 0; k < c->backends[b].nservers; k++) {
            const struct conf_server *sv = &c->backends[b].servers[k];
            size_t i = mg->server_base[b] + k;
            bool v6 = strchr(sv->host, ':') != NULL;
            size_t len = strlen(sv->host) + strlen(sv->port) + 4;
            if ((mg->server_names[i] = malloc(len)) == NULL ||
                (mg->server_backend[i] = strdup(c->backends[b].name)) == NULL)
                goto cleanup;
            snprintf(mg->server_names[i], len, "%s%s%s:%s", v6 ? "[" : "", sv->host, v6 ? "]" : "",
                     sv->port);
        }
    }
    mg->gsize = mg->nlisteners + mg->nservers + NCHANNEL + NNODE;
    mg->map_len =
        (mg->nroutes + 1) * sizeof(struct mroute) + mg->nlisteners * sizeof(struct mlistener) +
        mg->nservers * sizeof(struct mserver) + METRICS_MAX_WORKERS * mg->gsize * sizeof(int64_t);
    void *p = mmap(NULL, mg->map_len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        goto cleanup;
    mg->region = p;
    mg->routes = p;
    mg->listeners = (struct mlistener *)(mg->routes + mg->nroutes + 1);
    mg->servers = (struct mserver *)(mg->listeners + mg->nlisteners);
    mg->gauges = (int64_t *)(mg->servers + mg->nservers);
    for (size_t i = 0; i < mg->nservers; i++)
        mg->servers[i].up = 1;
    ret = mg;
    mg = NULL;
cleanup:
    if (mg != NULL) {
        gen_names_free(mg);
        free(mg);
    }
    return ret;
}

/* ---- worker side ------------------------------------------------------------------------ */

static struct metrics_gen *cur; /* this worker's region, NULL in the master */
static int64_t *mine;           /* this worker's gauge slot in it */

#define ADD(p, v) __atomic_fetch_add((p), (v), __ATOMIC_RELAXED)
#define SUB(p, v) __atomic_fetch_sub((p), (v), __ATOMIC_RELAXED)
#define LOAD(p) __atomic_load_n((p), __ATOMIC_RELAXED)

void
metrics_attach(struct metrics_gen *mg, int slot)
{
    cur = mg;
    mine = mg != NULL && slot >= 0 && slot < METRICS_MAX_WORKERS
               ? &mg->gauges[(size_t)slot * mg->gsize]
               : NULL;
    if (mine == NULL)
        cur = NULL;
}

void
metrics_client_open(size_t li)
{
    if (cur != NULL && li < cur->nlisteners)
        ADD(&mine[li], 1);
}

void
metrics_client_close(size_t li)
{
    if (cur != NULL && li < cur->nlisteners)
        SUB(&mine[li], 1);
}

static struct mroute *
route_slot(const struct conf_route *route)
{
    if (route == NULL || cur->conf == NULL)
        return &cur->routes[cur->nroutes];
    size_t i = (size_t)(route - cur->conf->routes);
    return i < cur->nroutes ? &cur->routes[i] : &cur->routes[cur->nroutes];
}

void
metrics_exchange(const struct conf_route *route, int status, uint64_t bytes_in, uint64_t bytes_out)
{
    if (cur == NULL)
        return;
    struct mroute *r = route_slot(route);
    int cls = status >= 100 && status < 600 ? status / 100 - 1 : NCLASS - 1;
    ADD(&r->requests[cls], 1);
    ADD(&r->bytes_in, bytes_in);
    ADD(&r->bytes_out, bytes_out);
    if (status == 401)
        ADD(&r->challenges, 1);
}

int
metrics_channel_open(const struct h1_head *h)
{
    int kind = 0;
    if (cur == NULL)
        return 0;
    if (h1_slice_eq(h->method, "RPC_IN_DATA"))
        kind = 1;
    else if (h1_slice_eq(h->method, "RPC_OUT_DATA"))
        kind = 2;
    for (size_t i = 0; kind == 0 && i < h->nheaders; i++)
        if (h1_slice_eq(h->headers[i].name, "X-RequestType") &&
            h1_slice_eq(h->headers[i].value, "NotificationWait"))
            kind = 3;
    if (kind != 0)
        ADD(&mine[cur->nlisteners + cur->nservers + (size_t)kind - 1], 1);
    return kind;
}

void
metrics_channel_close(int *kind)
{
    if (cur != NULL && *kind > 0 && *kind <= NCHANNEL)
        SUB(&mine[cur->nlisteners + cur->nservers + (size_t)*kind - 1], 1);
    *kind = 0;
}

/* The slot's /healthz words: after its gauges. */
static int64_t *
node_word(int64_t *slot_gauges, const struct metrics_gen *mg, int which)
{
    return &slot_gauges[mg->nlisteners + mg->nservers + NCHANNEL + (size_t)which];
}

static int64_t
monotonic_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void
metrics_backends_usable(bool any)
{
    if (cur != NULL)
        __atomic_store_n(node_word(mine, cur, NODE_BACKENDS), any ? 1 : 2, __ATOMIC_RELAXED);
}

void
metrics_accept_starved(void)
{
    /* CLOCK_MONOTONIC is one clock for every process, so the master can compare. */
    if (cur != NULL)
        __atomic_store_n(node_word(mine, cur, NODE_ACCEPT_FAIL), monotonic_ms(), __ATOMIC_RELAXED);
}

/*
 * The value of key in a trace record (auth/bridge.h: space-separated key=value pairs, values
 * in double quotes with \" and \\ escaped). Copies it unescaped into out. Returns 0, or -1
 * when key is absent.
 */
static int
trace_field(const char *t, const char *key, char *out, size_t cap)
{
    size_t klen = strlen(key);
    while (*t != '\0') {
        while (*t == ' ')
            t++;
        const char *k = t;
        while (*t != '\0' && *t != '=' && *t != ' ')
            t++;
        bool match = (size_t)(t - k) == klen && strncmp(k, key, klen) == 0;
        size_t o = 0;
        if (*t == '=')
            t++;
        bool quoted = *t == '"';
        if (quoted)
            t++;
        while (*t != '\0' && (quoted ? *t != '"' : *t != ' ')) {
            if (quoted && *t == '\\' && t[1] != '\0')
                t++;
            if (match && o + 1 < cap)
                out[o++] = *t;
            t++;
        }
        if (quoted && *t == '"')
            t++;
        if (match) {
            out[o] = '\0';
            return 0;
        }
    }
    return -1;
}

const char *
metrics_auth_outcome(const char *trace, const char **scheme_out)
{
    char scheme[32] = "", bridge[32] = "", verdict[16] = "", by[16] = "", reason[64] = "";
    trace_field(trace, "scheme", scheme, sizeof(scheme));
    trace_field(trace, "bridge", bridge, sizeof(bridge));
    trace_field(trace, "verdict", verdict, sizeof(verdict));
    trace_field(trace, "by", by, sizeof(by));
    trace_field(trace, "reason", reason, sizeof(reason));
    *scheme_out = schemes[NSCHEME - 1];
    for (size_t i = 0; i + 1 < NSCHEME; i++)
        if (strcmp(scheme, schemes[i]) == 0)
            *scheme_out = schemes[i];
    int status = (int)strtol(verdict, NULL, 10);
    if (strcmp(reason, "steered-to-ntlm") == 0)
        return "steered";
    if (strcmp(by, "backend") == 0 && (status == 401 || status == 403))
        return "backend_refused";
    if (strcmp(by, "backend") == 0 && status >= 200) {
        if (strcmp(bridge, "ntlm-to-negotiate") == 0)
            return "bridged_ntlm_to_negotiate";
        if (strcmp(bridge, "negotiate-to-ntlm") == 0)
            return "bridged_negotiate_to_ntlm";
        return "success";
    }
    if (strcmp(by, "exshim") == 0 && status == 400)
        return "rejected";
    return "incomplete";
}

void
metrics_auth_trace(const char *trace)
{
    if (cur == NULL)
        return;
    char route[256] = "";
    const char *scheme;
    const char *outcome = metrics_auth_outcome(trace, &scheme);
    trace_field(trace, "route", route, sizeof(route));
    struct mroute *r = &cur->routes[cur->nroutes];
    for (size_t i = 0; i < cur->nroutes; i++)
        if (strcmp(cur->route_names[i], route) == 0)
            r = &cur->routes[i];
    size_t si = 0, oi = 0;
    while (si + 1 < NSCHEME && strcmp(schemes[si], scheme) != 0)
        si++;
    while (oi + 1 < NOUTCOME && strcmp(outcomes[oi], outcome) != 0)
        oi++;
    ADD(&r->auth[si][oi], 1);
}

const char *
metrics_tls_reason(const char *e)
{
    if (e == NULL)
        return "other";
    if (strstr(e, "unsupported protocol") != NULL || strstr(e, "version too low") != NULL ||
        strstr(e, "protocol version") != NULL)
        return "protocol_version";
    if (strstr(e, "no shared cipher") != NULL || strstr(e, "no suitable") != NULL)
        return "no_shared_cipher";
    if (strstr(e, "wrong version number") != NULL || strstr(e, "http request") != NULL ||
        strstr(e, "record layer failure") != NULL)
        return "not_tls";
    if (strcmp(e, "timeout") == 0)
        return "timeout";
    if (strstr(e, "closed during") != NULL || strstr(e, "unexpected eof") != NULL ||
        strstr(e, "Connection reset") != NULL)
        return "eof";
    return "other";
}

void
metrics_tls_done(size_t li, const char *version)
{
    if (cur == NULL || li >= cur->nlisteners)
        return;
    size_t v = 0;
    while (v + 1 < NVERSION && (version == NULL || strcmp(tls_versions[v], version) != 0))
        v++;
    ADD(&cur->listeners[li].tls_ok[v], 1);
}

void
metrics_tls_failed(size_t li, const char *error)
{
    if (cur == NULL || li >= cur->nlisteners)
        return;
    const char *reason = metrics_tls_reason(error);
    size_t r = 0;
    while (r + 1 < NREASON && strcmp(tls_reasons[r], reason) != 0)
        r++;
    ADD(&cur->listeners[li].tls_fail[r], 1);
}

static struct mserver *
server_slot(size_t bi, size_t si)
{
    if (cur == NULL || bi >= cur->nbackends)
        return NULL;
    size_t i = cur->server_base[bi] + si;
    size_t end = bi + 1 < cur->nbackends ? cur->server_base[bi + 1] : cur->nservers;
    return i < end ? &cur->servers[i] : NULL;
}

void
metrics_connect_failed(size_t bi, size_t si)
{
    struct mserver *s = server_slot(bi, si);
    if (s != NULL)
        ADD(&s->connect_failures, 1);
}

int64_t *
metrics_backend_gauge(size_t bi, size_t si)
{
    struct mserver *s = server_slot(bi, si);
    return s != NULL ? &mine[cur->nlisteners + (size_t)(s - cur->servers)] : NULL;
}

void
metrics_server_health(size_t bi, size_t si, bool up, double check_seconds)
{
    struct mserver *s = server_slot(bi, si);
    if (s == NULL)
        return;
    __atomic_store_n(&s->up, up ? 1 : 0, __ATOMIC_RELAXED);
    __atomic_store_n(&s->check_nanos, (uint64_t)(check_seconds * 1e9), __ATOMIC_RELAXED);
    ADD(&s->checks, 1);
}

/* ---- exposition ------------------------------------------------------------------------- */

int
metrics_label_add(char *labels, const char *key, const char *value)
{
    size_t o = strlen(labels), start = o;
    char *p = labels;
    if (o > 0)
        p[o++] = ',';
    for (const char *k = key; *k != '\0' && o < METRICS_LABELS_MAX - 1; k++)
        p[o++] = *k;
    const char *open = "=\"";
    for (; *open != '\0' && o < METRICS_LABELS_MAX - 1; open++)
        p[o++] = *open;
    for (const char *v = value; *v != '\0'; v++) {
        char e = *v == '\n' ? 'n' : *v;
        bool esc = *v == '\\' || *v == '"' || *v == '\n';
        if (o + (esc ? 2 : 1) >= METRICS_LABELS_MAX - 1)
            goto full;
        if (esc)
            p[o++] = '\\';
        p[o++] = e;
    }
    if (o + 1 >= METRICS_LABELS_MAX)
        goto full;
    p[o++] = '"';
    p[o] = '\0';
    return 0;
full:
    labels[start] = '\0';
    return -1;
}

static int
sample_cmp(const void *a, const void *b)
{
    const struct metrics_sample *x = a, *y = b;
    int c = strcmp(families[x->family].name, families[y->family].name);
    return c != 0 ? c : strcmp(x->labels, y->labels);
}

size_t
metrics_merge(struct metrics_sample *s, size_t n)
{
    size_t o = 0;
    if (n == 0)
        return 0;
    qsort(s, n, sizeof(*s), sample_cmp);
    for (size_t i = 1; i < n; i++) {
        if (sample_cmp(&s[o], &s[i]) == 0)
            s[o].value += s[i].value;
        else
            s[++o] = s[i];
    }
    return o + 1;
}

/* A growable text buffer; oom sticks. */
struct mtext {
    char *p;
    size_t len, cap;
    bool oom;
};

static void text_printf(struct mtext *t, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
text_printf(struct mtext *t, const char *fmt, ...)
{
    for (int tries = 0; tries < 2 && !t->oom; tries++) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(t->p + t->len, t->cap - t->len, fmt, ap);
        va_end(ap);
        if (n < 0) {
            t->oom = true;
            return;
        }
        if ((size_t)n < t->cap - t->len) {
            t->len += (size_t)n;
            return;
        }
        size_t cap = t->cap * 2 + (size_t)n + 1;
        char *p = realloc(t->p, cap);
        if (p == NULL) {
            t->oom = true;
            return;
        }
        t->p = p;
        t->cap = cap;
    }
}

char *
metrics_render(const struct metrics_sample *s, size_t n, size_t *len_out)
{
    struct mtext t = {malloc(4096), 0, 4096, false};
    if (t.p == NULL)
        return NULL;
    t.p[0] = '\0';
    for (size_t i = 0; i < n; i++) {
        const char *name = families[s[i].family].name;
        if (i == 0 || s[i].family != s[i - 1].family)
            text_printf(&t, "# HELP %s %s\n# TYPE %s %s\n", name, families[s[i].family].help, name,
                        families[s[i].family].type == MT_COUNTER ? "counter" : "gauge");
        const char *lb = s[i].labels[0] ? "{" : "", *rb = s[i].labels[0] ? "}" : "";
        double v = s[i].value;
        if (v == (double)(int64_t)v)
            text_printf(&t, "%s%s%s%s %lld\n", name, lb, s[i].labels, rb, (long long)v);
        else
            text_printf(&t, "%s%s%s%s %.9g\n", name, lb, s[i].labels, rb, v);
    }
    if (t.oom) {
        free(t.p);
        return NULL;
    }
    *len_out = t.len;
    return t.p;
}

/* ---- the master's view ------------------------------------------------------------------ */

/* Set by the master from the moment the node stops taking new work (-s drain, SIGTERM): an L4
 * balancer that checks /healthz sends no new connections while the channels finish. */
static bool node_draining;

/* lock guards gens and retired; the process numbers are atomics. */
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct metrics_gen *gens; /* published, newest first */
static struct metrics_sample *retired;
static size_t nretired;
static int64_t p_workers, p_generations;
static uint64_t p_reloads_ok, p_reloads_failed, p_load_nanos;

/* A list of samples being collected; grows as needed. */
struct mlist {
    struct metrics_sample *s;
    size_t n, cap;
    bool oom;
};

static struct metrics_sample *
push(struct mlist *l, enum metrics_family f, double v)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 256;
        struct metrics_sample *p = realloc(l->s, cap * sizeof(*p));
        if (p == NULL) {
            l->oom = true;
            return NULL;
        }
        l->s = p;
        l->cap = cap;
    }
    struct metrics_sample *s = &l->s[l->n++];
    s->family = f;
    s->labels[0] = '\0';
    s->value = v;
    return s;
}

/* Pushes f{k1="v1"[,k2="v2"[,k3="v3"]]} v; a NULL key ends the list. */
static void
push3(struct mlist *l, enum metrics_family f, double v, const char *k1, const char *v1,
      const char *k2, const char *v2, const char *k3, const char *v3)
{
    struct metrics_sample *s = push(l, f, v);
    if (s == NULL)
        return;
    if ((k1 != NULL && metrics_label_add(s->labels, k1, v1) != 0) ||
        (k2 != NULL && metrics_label_add(s->labels, k2, v2) != 0) ||
        (k3 != NULL && metrics_label_add(s->labels, k3, v3) != 0))
        l->n--; /* a label that does not fit: the series is left out rather than mislabelled */
}

/* Gauge g of a region, over every worker slot. */
static int64_t
gauge_sum(const struct metrics_gen *mg, size_t g)
{
    int64_t sum = 0;
    for (size_t w = 0; w < METRICS_MAX_WORKERS; w++)
        sum += LOAD(&mg->gauges[w * mg->gsize + g]);
    return sum;
}

long
metrics_client_connections(const struct metrics_gen *mg)
{
    if (mg == NULL)
        return -1;
    int64_t n = 0;
    for (size_t i = 0; i < mg->nlisteners; i++)
        n += gauge_sum(mg, i);
    return n > 0 ? (long)n : 0;
}

void
metrics_worker_gone(struct metrics_gen *mg, int slot)
{
    if (mg == NULL || slot < 0 || slot >= METRICS_MAX_WORKERS)
        return;
    for (size_t g = 0; g < mg->gsize; g++)
        __atomic_store_n(&mg->gauges[(size_t)slot * mg->gsize + g], 0, __ATOMIC_RELAXED);
}

/* The samples of one region. counters_only: what survives the generation (no gauges).
 * newest: this is the current generation (server health comes from it alone). */
static void
collect_gen(const struct metrics_gen *mg, struct mlist *l, bool counters_only, bool newest)
{
    for (size_t i = 0; i <= mg->nroutes; i++) {
        const struct mroute *r = &mg->routes[i];
        const char *name = i < mg->nroutes ? mg->route_names[i] : "none";
        for (size_t c = 0; c < NCLASS; c++) {
            uint64_t v = LOAD(&r->requests[c]);
            if (c < NCLASS - 1 || v > 0)
                push3(l, MF_REQUESTS, (double)v, "route", name, "code_class", code_classes[c], NULL,
                      NULL);
        }
        push3(l, MF_REQUEST_BYTES, (double)LOAD(&r->bytes_in), "route", name, "direction", "in",
              NULL, NULL);
        push3(l, MF_REQUEST_BYTES, (double)LOAD(&r->bytes_out), "route", name, "direction", "out",
              NULL, NULL);
        push3(l, MF_CHALLENGES, (double)LOAD(&r->challenges), "route", name, NULL, NULL, NULL,
              NULL);
        for (size_t sc = 0; sc < NSCHEME; sc++)
            for (size_t o = 0; o < NOUTCOME; o++) {
                uint64_t v = LOAD(&r->auth[sc][o]);
                if (v > 0)
                    push3(l, MF_AUTH, (double)v, "route", name, "scheme", schemes[sc], "outcome",
                          outcomes[o]);
            }
    }
    for (size_t i = 0; i < mg->nlisteners; i++) {
        const struct mlistener *x = &mg->listeners[i];
        const char *name = mg->listener_names[i];
        if (!counters_only)
            push3(l, MF_CLIENT_CONNS, (double)gauge_sum(mg, i), "listener", name, NULL, NULL, NULL,
                  NULL);
        for (size_t v = 0; v < NVERSION; v++)
            if (LOAD(&x->tls_ok[v]) > 0)
                push3(l, MF_TLS_HANDSHAKES, (double)LOAD(&x->tls_ok[v]), "listener", name,
                      "version", tls_versions[v], NULL, NULL);
        for (size_t r = 0; r < NREASON; r++)
            if (LOAD(&x->tls_fail[r]) > 0)
                push3(l, MF_TLS_FAILURES, (double)LOAD(&x->tls_fail[r]), "listener", name, "reason",
                      tls_reasons[r], NULL, NULL);
    }
    for (size_t i = 0; i < mg->nservers; i++) {
        const struct mserver *s = &mg->servers[i];
        const char *b = mg->server_backend[i], *sv = mg->server_names[i];
        push3(l, MF_CONNECT_FAILURES, (double)LOAD(&s->connect_failures), "backend", b, "server",
              sv, NULL, NULL);
        if (counters_only)
            continue;
        push3(l, MF_BACKEND_CONNS, (double)gauge_sum(mg, mg->nlisteners + i), "backend", b,
              "server", sv, NULL, NULL);
        if (!newest)
            continue;
        push3(l, MF_SERVER_UP, (double)LOAD(&s->up), "backend", b, "server", sv, NULL, NULL);
        if (LOAD(&s->checks) > 0)
            push3(l, MF_CHECK_SECONDS, (double)LOAD(&s->check_nanos) / 1e9, "backend", b, "server",
                  sv, NULL, NULL);
    }
    if (!counters_only)
        for (size_t k = 0; k < NCHANNEL; k++)
            push3(l, MF_CHANNELS, (double)gauge_sum(mg, mg->nlisteners + mg->nservers + k), "kind",
                  channel_kinds[k], NULL, NULL, NULL, NULL);
}

void
metrics_gen_publish(struct metrics_gen *mg)
{
    if (mg == NULL)
        return;
    pthread_mutex_lock(&lock);
    mg->published = true;
    mg->next = gens;
    gens = mg;
    pthread_mutex_unlock(&lock);
}

void
metrics_gen_free(struct metrics_gen *mg)
{
    if (mg == NULL)
        return;
    if (mg->published) {
        struct mlist l = {0};
        pthread_mutex_lock(&lock);
        for (struct metrics_gen **pp = &gens; *pp != NULL; pp = &(*pp)->next)
            if (*pp == mg) {
                *pp = mg->next;
                break;
            }
        /* Fold its counters into the totals; when memory is short they are lost, not wrong. */
        for (size_t i = 0; i < nretired && !l.oom; i++) {
            struct metrics_sample *s = push(&l, retired[i].family, retired[i].value);
            if (s != NULL)
                memcpy(s->labels, retired[i].labels, sizeof(s->labels));
        }
        collect_gen(mg, &l, true, false);
        if (!l.oom) {
            free(retired);
            retired = l.s;
            nretired = metrics_merge(l.s, l.n);
        } else {
            free(l.s);
        }
        pthread_mutex_unlock(&lock);
    }
    if (mg->region != NULL)
        munmap(mg->region, mg->map_len);
    gen_names_free(mg);
    free(mg);
}

void
metrics_process(size_t workers, size_t generations)
{
    __atomic_store_n(&p_workers, (int64_t)workers, __ATOMIC_RELAXED);
    __atomic_store_n(&p_generations, (int64_t)generations, __ATOMIC_RELAXED);
}

void
metrics_reload_done(bool ok)
{
    ADD(ok ? &p_reloads_ok : &p_reloads_failed, 1);
}

void
metrics_config_loaded(double seconds)
{
    __atomic_store_n(&p_load_nanos, (uint64_t)(seconds * 1e9), __ATOMIC_RELAXED);
}

/* The whole exposition text now. Returns owned text or NULL. */
static char *
scrape(size_t *len_out)
{
    struct mlist l = {0};
    char *text = NULL;
    pthread_mutex_lock(&lock);
    for (size_t i = 0; i < nretired; i++) {
        struct metrics_sample *s = push(&l, retired[i].family, retired[i].value);
        if (s != NULL)
            memcpy(s->labels, retired[i].labels, sizeof(s->labels));
    }
    for (const struct metrics_gen *mg = gens; mg != NULL; mg = mg->next)
        collect_gen(mg, &l, false, mg == gens);
    pthread_mutex_unlock(&lock);
    push(&l, MF_WORKERS, (double)LOAD(&p_workers));
    push(&l, MF_GENERATIONS, (double)LOAD(&p_generations));
    push3(&l, MF_RELOADS, (double)LOAD(&p_reloads_ok), "result", "ok", NULL, NULL, NULL, NULL);
    push3(&l, MF_RELOADS, (double)LOAD(&p_reloads_failed), "result", "failed", NULL, NULL, NULL,
          NULL);
    push(&l, MF_CONFIG_LOAD, (double)LOAD(&p_load_nanos) / 1e9);
    push(&l, MF_DRAINING, LOAD(&node_draining) ? 1.0 : 0.0);
    if (!l.oom)
        text = metrics_render(l.s, metrics_merge(l.s, l.n), len_out);
    free(l.s);
    return text;
}

/* ---- the responder ---------------------------------------------------------------------- */

#define SCRAPE_DEADLINE_MS 1000
#define REQUEST_MAX 4096

static int listen_fd = -1, wake_rd = -1, wake_wr = -1, bound_port;
static pthread_t thread;
static bool running;

void
metrics_set_draining(void)
{
    __atomic_store_n(&node_draining, true, __ATOMIC_RELAXED);
}

int
metrics_healthz_answer(const struct metrics_node_view *v, const char **body_out)
{
    if (v->draining) {
        *body_out = "draining\n";
        return 503;
    }
    if (v->accept_fail_ms != 0 && v->now_ms - v->accept_fail_ms < METRICS_ACCEPT_FAIL_WINDOW_MS) {
        *body_out = "cannot accept: descriptor limit\n";
        return 503;
    }
    if (v->backends_none > 0 && v->backends_some == 0) {
        *body_out = "no healthy backend\n";
        return 503;
    }
    *body_out = "ok\n";
    return 200;
}

/* The newest generation's slots only (the older ones accept nothing): a few hundred relaxed
 * loads under the master's own lock; no scrape, no allocation. */
int
metrics_healthz(const char **body_out)
{
    struct metrics_node_view v = {.draining = __atomic_load_n(&node_draining, __ATOMIC_RELAXED),
                                  .now_ms = monotonic_ms()};
    pthread_mutex_lock(&lock);
    const struct metrics_gen *mg = gens;
    for (size_t w = 0; mg != NULL && !v.draining && w < METRICS_MAX_WORKERS; w++) {
        int64_t *slot = &mg->gauges[w * mg->gsize];
        int64_t b = LOAD(node_word(slot, mg, NODE_BACKENDS));
        int64_t t = LOAD(node_word(slot, mg, NODE_ACCEPT_FAIL));
        v.backends_some += b == 1;
        v.backends_none += b == 2;
        if (t > v.accept_fail_ms)
            v.accept_fail_ms = t;
    }
    pthread_mutex_unlock(&lock);
    return metrics_healthz_answer(&v, body_out);
}

static long
ms_left(const struct timespec *start)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return SCRAPE_DEADLINE_MS -
           ((now.tv_sec - start->tv_sec) * 1000 + (now.tv_nsec - start->tv_nsec) / 1000000);
}

/* Writes all of buf before the deadline; gives up silently otherwise. */
static void
send_all(int fd, const struct timespec *start, const char *buf, size_t len)
{
    while (len > 0) {
        long left = ms_left(start);
        struct pollfd p = {.fd = fd, .events = POLLOUT};
        if (left <= 0 || poll(&p, 1, (int)left) <= 0)
            return;
        ssize_t w = send(fd, buf, len, MSG_NOSIGNAL);
        if (w < 0 && (errno == EAGAIN || errno == EINTR))
            continue;
        if (w <= 0)
            return;
        buf += w;
        len -= (size_t)w;
    }
}

static void
respond(int fd, const struct timespec *start, int status, const char *ctype, const char *body,
        size_t len)
{
    const char *reason = status == 200   ? "OK"
                         : status == 404 ? "Not Found"
                         : status == 405 ? "Method Not Allowed"
                         : status == 400 ? "Bad Request"
                         : status == 503 ? "Service Unavailable"
                                         : "Internal Server Error";
    char head[256];
    int n = snprintf(head, sizeof(head),
                     "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                     "Connection: close\r\n\r\n",
                     status, reason, ctype, len);
    send_all(fd, start, head, (size_t)n);
    send_all(fd, start, body, len);
}

/* One connection: a bounded request head read within the deadline, one answer, close. */
static void
serve(int fd)
{
    struct timespec start;
    char req[REQUEST_MAX + 1];
    size_t got = 0;
    clock_gettime(CLOCK_MONOTONIC, &start);
    while (got < REQUEST_MAX) {
        long left = ms_left(&start);
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (left <= 0 || poll(&p, 1, (int)left) <= 0)
            return;
        ssize_t r = recv(fd, req + got, REQUEST_MAX - got, 0);
        if (r < 0 && (errno == EAGAIN || errno == EINTR))
            continue;
        if (r <= 0)
            return;
        got += (size_t)r;
        req[got] = '\0';
        if (strstr(req, "\r\n\r\n") != NULL || strstr(req, "\n\n") != NULL)
            break;
    }
    req[got] = '\0';
    const char *text = "text/plain; charset=utf-8";
    if (strncmp(req, "GET ", 4) != 0 && strncmp(req, "HEAD ", 5) != 0) {
        respond(fd, &start, 405, text, "GET only\n", 9);
        return;
    }
    const char *path = strchr(req, ' ') + 1;
    size_t plen = strcspn(path, " ?\r\n");
    if (plen == 8 && strncmp(path, "/metrics", 8) == 0) {
        size_t len = 0;
        char *body = scrape(&len);
        if (body == NULL)
            respond(fd, &start, 500, text, "out of memory\n", 14);
        else
            respond(fd, &start, 200, "text/plain; version=0.0.4; charset=utf-8", body, len);
        free(body);
    } else if (plen == 8 && strncmp(path, "/healthz", 8) == 0) {
        const char *body;
        int status = metrics_healthz(&body);
        respond(fd, &start, status, text, body, strlen(body));
    } else {
        respond(fd, &start, 404, text, "GET /metrics or /healthz\n", 25);
    }
}

static void *
run(void *arg)
{
    for (;;) {
        struct pollfd p[2] = {{.fd = listen_fd, .events = POLLIN},
                              {.fd = wake_rd, .events = POLLIN}};
        if (poll(p, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        if (p[1].revents != 0)
            break;
        if ((p[0].revents & POLLIN) == 0)
            continue;
        int fd = accept4(listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0)
            continue; /* EAGAIN, a client gone, EMFILE: the next poll tries again */
        serve(fd);
        close(fd);
    }
    return NULL;
}

/* In every forked child (the workers): the responder's descriptors are the master's alone. */
static void
atfork_child(void)
{
    if (listen_fd >= 0)
        close(listen_fd);
    if (wake_rd >= 0)
        close(wake_rd);
    if (wake_wr >= 0)
        close(wake_wr);
    listen_fd = wake_rd = wake_wr = -1;
    running = false;
}

int
metrics_listen(const char *host, const char *port, char *err, size_t errlen)
{
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICHOST | AI_NUMERICSERV};
    struct addrinfo *res = NULL;
    int one = 1, pp[2] = {-1, -1}, fd = -1, rc = -1;
    static bool atfork_done;

    if (getaddrinfo(strcmp(host, "*") == 0 ? NULL : host, port, &hints, &res) != 0) {
        snprintf(err, errlen, "metrics: cannot resolve %s:%s", host, port);
        return -1;
    }
    fd = socket(res->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
        bind(fd, res->ai_addr, res->ai_addrlen) != 0 || listen(fd, 64) != 0) {
        snprintf(err, errlen, "metrics: cannot listen on %s:%s: %s", host, port, strerror(errno));
        goto cleanup;
    }
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    if (getsockname(fd, (struct sockaddr *)&ss, &sl) == 0)
        bound_port = ntohs(ss.ss_family == AF_INET ? ((struct sockaddr_in *)&ss)->sin_port
                                                   : ((struct sockaddr_in6 *)&ss)->sin6_port);
    if (pipe2(pp, O_CLOEXEC) != 0) {
        snprintf(err, errlen, "metrics: pipe: %s", strerror(errno));
        goto cleanup;
    }
    if (!atfork_done && pthread_atfork(NULL, NULL, atfork_child) != 0) {
        snprintf(err, errlen, "metrics: pthread_atfork failed");
        goto cleanup;
    }
    atfork_done = true;
    listen_fd = fd;
    wake_rd = pp[0];
    wake_wr = pp[1];
    /* The thread takes no signal: the master's main loop waits for them. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    int e = pthread_create(&thread, NULL, run, NULL);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (e != 0) {
        snprintf(err, errlen, "metrics: cannot start its thread: %s", strerror(e));
        listen_fd = wake_rd = wake_wr = -1;
        goto cleanup;
    }
    running = true;
    fd = pp[0] = pp[1] = -1;
    rc = 0;
cleanup:
    if (fd >= 0)
        close(fd);
    if (pp[0] >= 0)
        close(pp[0]);
    if (pp[1] >= 0)
        close(pp[1]);
    freeaddrinfo(res);
    return rc;
}

int
metrics_port(void)
{
    return running ? bound_port : 0;
}

void
metrics_stop(void)
{
    if (!running)
        return;
    ssize_t w = write(wake_wr, "x", 1);
    (void)w;
    pthread_join(thread, NULL);
    close(listen_fd);
    close(wake_rd);
    close(wake_wr);
    listen_fd = wake_rd = wake_wr = -1;
    running = false;
    pthread_mutex_lock(&lock);
    free(retired);
    retired = NULL;
    nretired = 0;
    pthread_mutex_unlock(&lock);
}
