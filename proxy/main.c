/*
 * exshim: command line, configuration, and the master process.
 *
 * The master loads and checks the configuration, prepares TLS contexts, resolves backends,
 * opens the listening sockets (it owns them; see struct lsock), forks a generation of workers
 * that inherit them, writes the ready file and the pid file, tells systemd, and then only
 * supervises:
 *   SIGHUP       a new generation with the file as it is now takes over the same sockets;
 *                the old one stops accepting and drains (drain_timeout, max_generations);
 *                a file that does not load leaves the old generation running
 *   SIGTERM/INT  every generation stops within `grace`
 *   SIGUSR2      node drain (exshim -s drain): /healthz says "draining" so the balancer moves
 *                away, the current generation keeps accepting but closes every connection
 *                after its next response; exit once idle for 2 s or at drain_timeout
 *   SIGUSR1      the log file is reopened, by the master and every worker
 *   SIGCHLD      a worker of the current generation that died is replaced
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <libconfig.h>

#include "conf/conf.h"
#include "conf/policy.h"
#include "proxy/balance.h"
#include "proxy/log.h"
#include "proxy/metrics.h"
#include "proxy/notify.h"
#include "proxy/pidfile.h"
#include "proxy/tls.h"
#include "proxy/worker.h"

#define EXSHIM_VERSION "0.1.0"
#define MAX_WORKERS 256

static void
usage(FILE *f)
{
    fprintf(f, "usage: exshim -c FILE [-t] [-r READY_FILE] [-p PIDFILE] [-w WORKERS] [-d]\n"
               "       exshim -s reload|stop|drain|reopen -p PIDFILE\n"
               "       exshim -h | -V\n"
               "\n"
               "  -c FILE        configuration file (libconfig syntax; see conf/exshim.conf)\n"
               "  -t             check the configuration (syntax, keys, certificates) and exit:\n"
               "                 0 and the effective policy of every route when valid,\n"
               "                 1 with FILE:LINE: KEY: message otherwise\n"
               "  -r READY_FILE  once every worker listens, write one line per listener,\n"
               "                 \"NAME HOST:PORT\" (port 0 in the file shows the real port);\n"
               "                 written again after each reload\n"
               "  -p PIDFILE     write the master's pid there once the workers listen; removed\n"
               "                 at exit\n"
               "  -s SIGNAL      send reload (SIGHUP), stop (SIGTERM), drain (SIGUSR2) or\n"
               "                 reopen (SIGUSR1) to the exshim whose pid is in -p PIDFILE\n"
               "  -w WORKERS     number of worker processes, overrides `workers` in the file\n"
               "  -d             detach and run in the background (logs: log_file, if set)\n"
               "  -h             this help\n"
               "  -V             version of exshim and of the libraries it runs with\n"
               "\n"
               "Signals: TERM/INT stop accepting, let exchanges in flight finish within `grace`,\n"
               "then exit 0. HUP reloads the configuration without dropping a connection: a\n"
               "new generation of workers takes over the listening sockets, the old one\n"
               "drains within `drain_timeout`. USR1 reopens `log_file` (logrotate).\n"
               "USR2 (-s drain) takes the node out of an L4 balancer: /healthz answers 503\n"
               "\"draining\" at once, the listeners keep accepting but every response closes\n"
               "its connection, long-lived channels run on; exshim exits 0 once no session is\n"
               "left and nothing was accepted for 2 s, or at `drain_timeout`. TERM during a\n"
               "drain stops. /healthz also answers 503 \"cannot accept: descriptor limit\"\n"
               "for 5 s after an accept failed for want of a descriptor, and 503 \"no healthy\n"
               "backend\" while no route has a server up.\n");
}

static void
version(void)
{
    printf("exshim %s\n", EXSHIM_VERSION);
    printf("  libevent %s\n", event_get_version());
    printf("  %s\n", tlsctx_library_version());
    printf("  libconfig %d.%d.%d\n", LIBCONFIG_VER_MAJOR, LIBCONFIG_VER_MINOR,
           LIBCONFIG_VER_REVISION);
    printf("  MIT krb5 GSS-API (linked through libgssapi_krb5)\n");
}

/* Opens a TCP socket listening on host:port with SO_REUSEPORT. Returns the fd and stores the
 * bound port, or -1 with errno. */
static int
open_bound(const char *host, const char *port, int *port_out)
{
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICHOST | AI_NUMERICSERV};
    struct addrinfo *res = NULL;
    int fd = -1, one = 1;

    if (getaddrinfo(host, port, &hints, &res) != 0) {
        errno = EINVAL;
        return -1;
    }
    fd = socket(res->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        goto fail;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) != 0)
        goto fail;
    if (res->ai_family == AF_INET6)
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
    if (bind(fd, res->ai_addr, res->ai_addrlen) != 0)
        goto fail;
    if (listen(fd, 4096) != 0)
        goto fail;
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    if (getsockname(fd, (struct sockaddr *)&ss, &sl) != 0)
        goto fail;
    *port_out = ntohs(ss.ss_family == AF_INET ? ((struct sockaddr_in *)&ss)->sin_port
                                              : ((struct sockaddr_in6 *)&ss)->sin6_port);
    freeaddrinfo(res);
    return fd;
fail:;
    int saved = errno;
    if (fd >= 0)
        close(fd);
    freeaddrinfo(res);
    errno = saved;
    return -1;
}

static void
raise_fd_limit(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

static int
ncpus(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 && n < MAX_WORKERS ? (int)n : 1;
}

/* Prepares per-backend TLS contexts and resolved addresses. Returns 0 or -1 with err. */
static int
prepare_backends(const struct conf *c, struct backend_rt *rts, char *err, size_t errlen)
{
    for (size_t i = 0; i < c->nbackends; i++) {
        const struct conf_backend *b = &c->backends[i];
        struct backend_rt *rt = &rts[i];
        rt->addr = calloc(b->nservers, sizeof(*rt->addr));
        rt->addrlen = calloc(b->nservers, sizeof(*rt->addrlen));
        if (rt->addr == NULL || rt->addrlen == NULL) {
            snprintf(err, errlen, "out of memory");
            return -1;
        }
        for (size_t k = 0; k < b->nservers; k++) {
            struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res = NULL;
            int g = getaddrinfo(b->servers[k].host, b->servers[k].port, &hints, &res);
            if (g != 0) {
                snprintf(err, errlen, "%s:%d: backend %s: server %s:%s: %s", c->file, b->line,
                         b->name, b->servers[k].host, b->servers[k].port, gai_strerror(g));
                return -1;
            }
            memcpy(&rt->addr[k], res->ai_addr, res->ai_addrlen);
            rt->addrlen[k] = res->ai_addrlen;
            freeaddrinfo(res);
        }
        if (b->tls) {
            rt->tls = tlsctx_client_new(b, err, errlen);
            if (rt->tls == NULL)
                return -1;
        }
    }
    return 0;
}

static void
hex32(const unsigned char h[32], char out[65])
{
    for (int i = 0; i < 32; i++)
        snprintf(out + 2 * i, 3, "%02x", h[i]);
}

/* A max_connections set above what the descriptor limit allows is kept (the admin may raise
 * the limit under a service manager), but said: past the limit accept pauses on EMFILE. */
static void
check_fd_budget(const struct conf *c)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY)
        return;
    unsigned long long lim = (unsigned long long)rl.rlim_cur;
    size_t fits = conf_auto_max_connections(lim);
    if (c->max_connections <= fits)
        return;
    log_warnx("max_connections %zu per worker needs about %llu descriptors (two per connection "
              "and %d more); the limit is %llu, which holds %zu connections: past that a "
              "worker pauses accepting until descriptors free up",
              c->max_connections, 2ULL * c->max_connections + CONF_FD_RESERVE, CONF_FD_RESERVE, lim,
              fits);
}

/*
 * Extended Protection (DESIGN.md F11): with channel binding, Windows clients hash the
 * certificate they saw; IIS compares it with its own. TLS bridging works only when the backend
 * presents the same certificate as exshim's listener. Check at start-up and warn per route.
 */
static void
check_extended_protection(const struct conf *c)
{
    for (size_t li = 0; li < c->nlisteners; li++) {
        const struct conf_listener *l = &c->listeners[li];
        if (!l->tls)
            continue;
        unsigned char lh[32];
        if (tlsctx_chain_hash(l->certs[0].chain, lh) != 0)
            continue;
        for (size_t r = 0; r < c->nroutes; r++) {
            const struct conf_route *rt = &c->routes[r];
            const struct conf_backend *b = &c->backends[rt->backend];
            if (!b->tls) {
                if (strncasecmp(rt->path, "/rpc", 4) == 0 || strncasecmp(rt->path, "/mapi", 5) == 0)
                    log_info("route %s: TLS ends at exshim and backend %s is plain HTTP (SSL "
                             "offload); Windows clients using Extended Protection cannot "
                             "authenticate through it unless the backend's EP is off",
                             rt->path, b->name);
                continue;
            }
            for (size_t s = 0; s < b->nservers; s++) {
                unsigned char bh[32];
                char e[256];
                if (tlsctx_probe_hash(b, &b->servers[s], 2000, bh, e, sizeof(e)) != 0) {
                    log_warnx("route %s: cannot compare certificates with backend %s: %s", rt->path,
                              b->name, e);
                    continue;
                }
                if (memcmp(lh, bh, 32) != 0) {
                    char a[65], bb[65];
                    hex32(lh, a);
                    hex32(bh, bb);
                    log_warnx("route %s: backend %s (%s:%s) presents a different certificate "
                              "than listener %s (sha256 %.16s... vs %.16s...): clients with "
                              "Extended Protection (channel binding) will be refused by the "
                              "backend; install the listener's certificate on the backend",
                              rt->path, b->name, b->servers[s].host, b->servers[s].port, l->name,
                              bb, a);
                }
            }
        }
    }
}

/*
 * Listening sockets belong to the master, not to the workers: a reload must not drop a
 * connection that waits in an accept queue, and closing a listening socket drops its queue.
 *
 * Per listener there are one or more SO_REUSEPORT sockets ("slots") bound to its address, all
 * opened here. The kernel spreads new connections over the slots, as it did when each worker
 * bound its own socket. Worker j of a generation of N workers inherits, across fork(), the
 * slots s with s % N == j and closes every other listening descriptor. When a generation is
 * superseded, its workers stop accepting and close their copies, but the sockets stay open in
 * the master and in the new workers: connections already queued, and those that arrive during
 * the handover, are accepted by the new generation. A slot is never closed while its listener
 * exists, even when a reload lowers the number of workers (the surplus slots are shared out
 * among the remaining workers); a listener that a reload removes, or whose address changes,
 * is closed after the new generation is ready.
 *
 * One shared socket per listener would serve too, but every worker would then wake for every
 * connection and the busiest would not be spared. Which slot a connection goes to is the
 * kernel's hash of its addresses and ports, or with accept_balance = "roundrobin" (the
 * default) each slot in turn (proxy/balance.h, lsock_balance).
 */
struct lsock {
    char *name, *host, *port; /* port as configured: "0" keeps a kernel-chosen port */
    int bound_port;
    int fds[MAX_WORKERS]; /* slots */
    int nfds;
    int balanced;        /* workers the round-robin program spreads over; 0: the kernel's hash */
    bool balance_warned; /* the program could not be attached, and the log said so */
};

/* One generation: a configuration, what was prepared from it, and the workers it runs. */
struct generation {
    unsigned id;
    struct conf *conf; /* NULL once superseded (the workers have their copy) */
    struct ssl_ctx_st **listener_tls;
    struct backend_rt *backends;
    size_t *lmap; /* per listener of conf: index into master.socks */
    int nworkers;
    pid_t pids[MAX_WORKERS];
    int alive;
    unsigned drain_ms;           /* from its own configuration */
    time_t superseded;           /* 0 while current */
    time_t kill_at;              /* SIGKILL what is left at this time (0: not scheduled) */
    struct metrics_gen *metrics; /* its counter region (NULL without `metrics`); lives as long
                                    as the generation, its workers write into it */
    double load_seconds;         /* how long gen_prepare took */
};

#define MAX_GENS 65 /* max_generations (at most 64) superseded ones, plus the current */
/* A generation stopped for exceeding max_generations gets this long after its SIGTERM. */
#define MAXGEN_KILL_GRACE_S 2
/* Past drain_timeout, a superseded worker exits on its own; the master waits this much more
 * before it sends SIGKILL. */
#define DRAIN_KILL_SLACK_S 5

struct master {
    const char *conf_path, *ready_path, *pid_path;
    int workers_override;
    struct lsock **socks;
    size_t nsocks;
    struct generation *gens[MAX_GENS]; /* oldest first; the last one is current */
    size_t ngens;
    unsigned next_gen_id;
    time_t last_respawn;
    bool stopping;
    bool node_draining;          /* SIGUSR2 (-s drain); a SIGTERM after it still stops */
    struct timespec drain_start; /* CLOCK_MONOTONIC */
    bool drain_killed;           /* the SIGKILL past drain_timeout was sent */
    char drain_status[160];      /* the last STATUS= sent while draining */
    char metrics_addr[300];      /* HOST:PORT of the metrics listener, "" when there is none */
};

static struct generation *
current_gen(struct master *m)
{
    return m->ngens > 0 ? m->gens[m->ngens - 1] : NULL;
}

/* What the master prepared for a generation; its workers keep their own copies. */
static void
gen_release(struct generation *g)
{
    const struct conf *c = g->conf;
    if (c != NULL && g->listener_tls != NULL)
        for (size_t i = 0; i < c->nlisteners; i++)
            tlsctx_free(g->listener_tls[i]);
    if (c != NULL && g->backends != NULL) {
        for (size_t i = 0; i < c->nbackends; i++) {
            tlsctx_free(g->backends[i].tls);
            free(g->backends[i].addr);
            free(g->backends[i].addrlen);
        }
    }
    free(g->listener_tls);
    free(g->backends);
    free(g->lmap);
    conf_free(g->conf);
    g->listener_tls = NULL;
    g->backends = NULL;
    g->lmap = NULL;
    g->conf = NULL;
}

static void
gen_free(struct generation *g)
{
    if (g == NULL)
        return;
    gen_release(g);
    metrics_gen_free(g->metrics);
    free(g);
}

/*
 * Loads and checks path and prepares what the workers need: listener TLS contexts
 * (certificates and keys read now, so renewed files take effect), backend TLS contexts and
 * addresses. Returns an owned generation (gen_free), or NULL with "FILE:LINE: KEY: message"
 * in err.
 */
static struct generation *
gen_prepare(const char *path, char *err, size_t errlen)
{
    struct generation *g = calloc(1, sizeof(*g));
    struct generation *ret = NULL;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    if (g == NULL) {
        snprintf(err, errlen, "out of memory");
        goto cleanup;
    }
    if (conf_load(path, &g->conf, err, errlen) != 0)
        goto cleanup;
    const struct conf *c = g->conf;
    g->listener_tls = calloc(c->nlisteners, sizeof(*g->listener_tls));
    g->backends = calloc(c->nbackends, sizeof(*g->backends));
    g->lmap = calloc(c->nlisteners, sizeof(*g->lmap));
    if (g->listener_tls == NULL || g->backends == NULL || g->lmap == NULL) {
        snprintf(err, errlen, "out of memory");
        goto cleanup;
    }
    for (size_t i = 0; i < c->nlisteners; i++) {
        if (!c->listeners[i].tls)
            continue;
        char why[768];
        g->listener_tls[i] = tlsctx_server_new(&c->listeners[i], why, sizeof(why));
        if (g->listener_tls[i] == NULL) {
            snprintf(err, errlen, "%s:%d: listeners.%s.tls: %s", c->file, c->listeners[i].line,
                     c->listeners[i].name, why);
            goto cleanup;
        }
    }
    if (prepare_backends(c, g->backends, err, errlen) != 0)
        goto cleanup;
    if (c->metrics_host != NULL && (g->metrics = metrics_gen_new(c)) == NULL) {
        snprintf(err, errlen, "metrics: out of memory");
        goto cleanup;
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    g->load_seconds = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    g->drain_ms = c->drain_timeout_ms;
    ret = g;
    g = NULL;
cleanup:
    gen_free(g);
    return ret;
}

static void
lsock_free(struct lsock *s)
{
    if (s == NULL)
        return;
    for (int i = 0; i < s->nfds; i++)
        if (s->fds[i] >= 0)
            close(s->fds[i]);
    free(s->name);
    free(s->host);
    free(s->port);
    free(s);
}

/* The socket set of listener l: same address as configured; with port 0, same name too. */
static ssize_t
lsock_find(const struct master *m, const struct conf_listener *l)
{
    for (size_t i = 0; i < m->nsocks; i++) {
        const struct lsock *s = m->socks[i];
        if (s == NULL || strcmp(s->host, l->host) != 0 || strcmp(s->port, l->port) != 0)
            continue;
        if (strcmp(l->port, "0") == 0 && strcmp(s->name, l->name) != 0)
            continue;
        return (ssize_t)i;
    }
    return -1;
}

/* Grows s to n slots; the first one picks the port when the configured port is 0. */
static int
lsock_grow(struct lsock *s, int n)
{
    while (s->nfds < n) {
        char port[16];
        int got;
        snprintf(port, sizeof(port), "%d", s->bound_port);
        int fd = open_bound(s->host, s->nfds == 0 ? s->port : port, &got);
        if (fd < 0)
            return -1;
        s->fds[s->nfds++] = fd;
        s->bound_port = got;
    }
    return 0;
}

/*
 * Sets how the kernel spreads the connections of s over the slots of a generation of n
 * workers. Round robin takes slots 0..n-1 in turn, by their index in the reuseport group:
 * that is the order they were opened, so slot j < n is worker j's (slot_mine), and slots past
 * n, left from a generation with more workers, get no new connections. A node drain closes
 * slots and so reorders the group (close_worker_slots): from then on, and when the program
 * cannot be attached (no eBPF, no permission), the kernel's hash.
 */
static void
lsock_balance(struct lsock *s, enum conf_accept_balance how, int n)
{
    bool whole = n > 0 && s->nfds >= n;
    for (int i = 0; i < s->nfds; i++)
        whole = whole && s->fds[i] >= 0;
    if (how == CONF_BALANCE_ROUNDROBIN && whole) {
        if (s->balanced == n)
            return;
        char err[512];
        if (balance_attach(s->fds[0], (unsigned)n, err, sizeof(err)) == 0) {
            s->balanced = n;
            log_info("listener %s: new connections go to its %d workers in turn", s->name, n);
            return;
        }
        if (!s->balance_warned)
            log_warnx("listener %s: accept_balance \"roundrobin\" is not available here (%s); "
                      "the kernel's hash spreads connections over the workers",
                      s->name, err);
        s->balance_warned = true;
    }
    if (s->balanced == 0)
        return;
    for (int i = 0; i < s->nfds; i++) {
        if (s->fds[i] >= 0) {
            balance_detach(s->fds[i]);
            break;
        }
    }
    s->balanced = 0;
    log_info("listener %s: new connections go to the workers by the kernel's hash", s->name);
}

/*
 * Finds or opens the listening sockets of every listener of g, with at least g->nworkers
 * slots each, and fills g->lmap. Sets fresh[i] for sets opened here (closed again by the
 * caller if the generation does not start). Returns 0, or -1 with err.
 */
static int
attach_sockets(struct master *m, struct generation *g, bool *fresh, char *err, size_t errlen)
{
    const struct conf *c = g->conf;
    for (size_t i = 0; i < c->nlisteners; i++) {
        const struct conf_listener *l = &c->listeners[i];
        ssize_t k = lsock_find(m, l);
        if (k < 0) {
            /* a hole left by a removed listener, else one more entry */
            for (k = 0; (size_t)k < m->nsocks && m->socks[k] != NULL; k++)
                ;
            struct lsock *s = calloc(1, sizeof(*s));
            if ((size_t)k == m->nsocks) {
                struct lsock **grown = realloc(m->socks, (m->nsocks + 1) * sizeof(*m->socks));
                if (grown != NULL) {
                    m->socks = grown;
                    m->socks[m->nsocks++] = NULL;
                }
            }
            if (s == NULL || (size_t)k == m->nsocks || (s->name = strdup(l->name)) == NULL ||
                (s->host = strdup(l->host)) == NULL || (s->port = strdup(l->port)) == NULL) {
                lsock_free(s);
                snprintf(err, errlen, "out of memory");
                return -1;
            }
            m->socks[k] = s;
            fresh[k] = true;
        }
        struct lsock *s = m->socks[k];
        if (lsock_grow(s, g->nworkers) != 0) {
            snprintf(err, errlen, "%s:%d: listeners.%s: cannot listen on %s:%s: %s", c->file,
                     l->line, l->name, l->host, l->port, strerror(errno));
            return -1;
        }
        g->lmap[i] = (size_t)k;
    }
    return 0;
}

/* Closes the socket sets no listener of g uses (after a reload that removed them). */
static void
detach_unused_sockets(struct master *m, const struct generation *g, bool only_fresh,
                      const bool *fresh)
{
    for (size_t k = 0; k < m->nsocks; k++) {
        if (m->socks[k] == NULL || (only_fresh && !fresh[k]))
            continue;
        bool used = false;
        for (size_t i = 0; g != NULL && g->conf != NULL && i < g->conf->nlisteners; i++)
            used = used || g->lmap[i] == k;
        if (used)
            continue;
        if (!only_fresh)
            log_info("listener %s on %s:%d closed (no longer configured)", m->socks[k]->name,
                     m->socks[k]->host, m->socks[k]->bound_port);
        lsock_free(m->socks[k]);
        m->socks[k] = NULL;
    }
}

static bool
slot_mine(const struct generation *g, int slot, int index)
{
    return slot % g->nworkers == index;
}

static pid_t
spawn_worker(struct master *m, struct generation *g, int index, int ready_wr)
{
    pid_t pid = fork();
    if (pid != 0)
        return pid;
    /* child: the signal mask stays as the master's until worker_run has its handlers */
    log_forked();
    char tag[32];
    snprintf(tag, sizeof(tag), "exshim worker %d gen %u", index, g->id);
    log_set_tag(tag);
    const struct conf *c = g->conf;
    struct worker w = {0};
    w.conf = c;
    w.listener_tls = g->listener_tls;
    w.backends = g->backends;
    w.index = index;
    metrics_attach(g->metrics, index);
    /* session ids stay unique across generations (the first one counts from 1 as before) */
    w.reg.next_id = (uint64_t)(g->id - 1) << 32;
    size_t n = 0;
    for (size_t i = 0; i < c->nlisteners; i++)
        n += (size_t)m->socks[g->lmap[i]]->nfds;
    w.listen_fds = calloc(n, sizeof(*w.listen_fds));
    w.listen_li = calloc(n, sizeof(*w.listen_li));
    if (w.listen_fds == NULL || w.listen_li == NULL)
        _exit(1);
    /* keep this worker's slots of this generation's listeners; close every other socket */
    for (size_t k = 0; k < m->nsocks; k++) {
        struct lsock *s = m->socks[k];
        if (s == NULL)
            continue;
        ssize_t li = -1;
        for (size_t i = 0; i < c->nlisteners; i++)
            if (g->lmap[i] == k)
                li = (ssize_t)i;
        for (int slot = 0; slot < s->nfds; slot++) {
            if (li >= 0 && slot_mine(g, slot, index)) {
                w.listen_fds[w.nlisten] = s->fds[slot];
                w.listen_li[w.nlisten++] = (size_t)li;
            } else {
                close(s->fds[slot]);
            }
        }
    }
    _exit(worker_run(&w, ready_wr));
}

static int
write_ready_file(const char *path, const struct master *m, const struct generation *g)
{
    char tmp[4096];
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (f == NULL)
        return -1;
    for (size_t i = 0; i < g->conf->nlisteners; i++) {
        const struct conf_listener *l = &g->conf->listeners[i];
        bool v6 = strchr(l->host, ':') != NULL;
        fprintf(f, "%s %s%s%s:%d\n", l->name, v6 ? "[" : "", l->host, v6 ? "]" : "",
                m->socks[g->lmap[i]]->bound_port);
    }
    if (fclose(f) != 0)
        return -1;
    return rename(tmp, path);
}

/* Waits for one readiness byte per worker, bounded in time; -1 when they did not all come
 * (a worker died: the pipe ends once every writer has closed it). */
static int
wait_ready(int fd, int n)
{
    int got = 0;
    struct timespec start, now;
    clock_gettime(CLOCK_MONOTONIC, &start);
    while (got < n) {
        clock_gettime(CLOCK_MONOTONIC, &now);
        long left =
            15000 - ((now.tv_sec - start.tv_sec) * 1000 + (now.tv_nsec - start.tv_nsec) / 1000000);
        if (left <= 0)
            return -1;
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, (int)left) <= 0)
            continue;
        char b[64];
        ssize_t r = read(fd, b, sizeof(b));
        if (r <= 0)
            return -1;
        got += (int)r;
    }
    return 0;
}

static int
workers_for(const struct master *m, const struct conf *c)
{
    int n = m->workers_override ? m->workers_override : (c->workers ? c->workers : ncpus());
    return n > MAX_WORKERS ? MAX_WORKERS : n;
}

static void
signal_gen(struct generation *g, int sig)
{
    for (int i = 0; i < g->nworkers; i++)
        if (g->pids[i] > 0)
            kill(g->pids[i], sig);
}

/* Reaps the workers of a generation that failed to start. */
static void
reap_gen_now(struct generation *g)
{
    for (int i = 0; i < g->nworkers; i++) {
        if (g->pids[i] > 0) {
            kill(g->pids[i], SIGKILL);
            waitpid(g->pids[i], NULL, 0);
            g->pids[i] = 0;
        }
    }
    g->alive = 0;
}

/*
 * Starts the workers of g on the master's sockets (opening those its listeners need) and
 * waits until they all listen. Returns 0, or -1 with err; on failure nothing of g runs and
 * the sockets opened for it are closed again.
 */
static int
gen_start(struct master *m, struct generation *g, char *err, size_t errlen)
{
    bool fresh[1024] = {false};
    int rp[2] = {-1, -1};
    int rc = -1;

    if (m->nsocks + g->conf->nlisteners > sizeof(fresh) / sizeof(fresh[0])) {
        snprintf(err, errlen, "too many listeners");
        return -1;
    }
    g->id = ++m->next_gen_id;
    g->nworkers = workers_for(m, g->conf);
    int had[1024]; /* slots per socket set before this start, to undo what it grows */
    size_t nsets = m->nsocks;
    for (size_t k = 0; k < nsets; k++)
        had[k] = m->socks[k] != NULL ? m->socks[k]->nfds : 0;
    if (attach_sockets(m, g, fresh, err, errlen) != 0)
        goto cleanup;
    if (pipe2(rp, O_CLOEXEC) != 0) {
        snprintf(err, errlen, "pipe: %s", strerror(errno));
        goto cleanup;
    }
    for (int i = 0; i < g->nworkers; i++) {
        g->pids[i] = spawn_worker(m, g, i, rp[1]);
        if (g->pids[i] < 0) {
            g->pids[i] = 0;
            snprintf(err, errlen, "fork: %s", strerror(errno));
            goto cleanup;
        }
        g->alive++;
    }
    close(rp[1]);
    rp[1] = -1;
    if (wait_ready(rp[0], g->nworkers) != 0) {
        snprintf(err, errlen,
                 "the workers of generation %u did not become ready; see the "
                 "messages above",
                 g->id);
        goto cleanup;
    }
    /* Only now: set while the workers were starting, a reload that then failed would leave
     * the old generation's listeners spreading over slots it does not watch. */
    for (size_t i = 0; i < g->conf->nlisteners; i++)
        lsock_balance(m->socks[g->lmap[i]], g->conf->accept_balance, g->nworkers);
    rc = 0;
cleanup:
    if (rp[0] >= 0)
        close(rp[0]);
    if (rp[1] >= 0)
        close(rp[1]);
    if (rc != 0) {
        reap_gen_now(g);
        detach_unused_sockets(m, current_gen(m), true, fresh);
        /* Slots grown for the workers that never started: no worker watches them, and the
         * kernel would still queue connections there. The last ones close first, so the
         * group keeps the order of the others. */
        for (size_t k = 0; k < nsets; k++) {
            struct lsock *s = m->socks[k];
            while (s != NULL && !fresh[k] && s->nfds > had[k]) {
                s->nfds--;
                if (s->fds[s->nfds] >= 0)
                    close(s->fds[s->nfds]);
            }
        }
    }
    return rc;
}

static void
status_line(const struct master *m, char *buf, size_t len)
{
    const struct generation *g = m->gens[m->ngens - 1];
    size_t old = 0;
    for (size_t i = 0; i + 1 < m->ngens; i++)
        old += (size_t)m->gens[i]->alive;
    snprintf(buf, len, "generation %u: %d workers on %zu listeners; %zu old workers draining",
             g->id, g->nworkers, g->conf->nlisteners, old);
}

static void
announce(const struct master *m, const struct generation *g)
{
    char pids[MAX_WORKERS * 12] = "";
    size_t n = 0;
    for (int i = 0; i < g->nworkers && n < sizeof(pids); i++)
        n += (size_t)snprintf(pids + n, sizeof(pids) - n, " %d", (int)g->pids[i]);
    log_info("generation %u: %d workers, pids%s", g->id, g->nworkers, pids);
    for (size_t i = 0; i < g->conf->nlisteners; i++) {
        const struct conf_listener *l = &g->conf->listeners[i];
        log_info("listener %s on %s:%d (%s), %d workers", l->name, l->host,
                 m->socks[g->lmap[i]]->bound_port, l->tls ? "TLS" : "plain HTTP", g->nworkers);
    }
    if (m->ready_path != NULL && write_ready_file(m->ready_path, m, g) != 0)
        log_warn("ready file %s", m->ready_path);
}

/* Past max_generations, the oldest superseded generations stop now. */
static void
enforce_max_generations(struct master *m, size_t max)
{
    size_t old = 0;
    for (size_t i = 0; i + 1 < m->ngens; i++)
        if (m->gens[i]->kill_at == 0)
            old++;
    for (size_t i = 0; i + 1 < m->ngens && old > max; i++) {
        struct generation *g = m->gens[i];
        if (g->kill_at != 0)
            continue;
        log_warnx("generation %u: more than max_generations (%zu) old generations; stopping "
                  "it now (%d workers, SIGKILL in %d s)",
                  g->id, max, g->alive, MAXGEN_KILL_GRACE_S);
        signal_gen(g, SIGTERM);
        g->kill_at = time(NULL) + MAXGEN_KILL_GRACE_S;
        old--;
    }
}

/* Workers and generations alive, for the metrics listener. */
static void
process_metrics(const struct master *m)
{
    size_t alive = 0;
    for (size_t i = 0; i < m->ngens; i++)
        alive += (size_t)m->gens[i]->alive;
    metrics_process(alive, m->ngens);
}

/* The metrics listener is opened once, at start-up, and is not moved by a reload. */
static void
metrics_check_address(const struct master *m, const struct conf *c)
{
    char now[300] = "";
    if (c->metrics_host != NULL)
        snprintf(now, sizeof(now), "%s:%s", c->metrics_host, c->metrics_port);
    if (strcmp(now, m->metrics_addr) != 0)
        log_warnx("metrics: the listener stays %s until exshim restarts (the file now says %s)",
                  m->metrics_addr[0] ? m->metrics_addr : "off", now[0] ? now : "none");
}

/* SIGHUP: a new generation with the file as it is now, or the old one keeps running. */
static void
reload(struct master *m)
{
    char err[1024], st[256];
    struct generation *old = current_gen(m);
    bool ok = false;

    notify_reloading("reloading the configuration");
    log_info("SIGHUP: reloading %s", m->conf_path);
    if (m->ngens >= MAX_GENS) {
        log_error("reload refused: %zu generations still running", m->ngens);
        goto done;
    }
    struct generation *g = gen_prepare(m->conf_path, err, sizeof(err));
    if (g == NULL) {
        log_error("reload failed, generation %u keeps running: %s", old->id, err);
        goto done;
    }
    if (log_init(g->conf->log_level, g->conf->log_file) != 0) {
        log_error("reload failed, generation %u keeps running: log_file %s: %s", old->id,
                  g->conf->log_file, strerror(errno));
        log_init(old->conf->log_level, old->conf->log_file);
        gen_free(g);
        goto done;
    }
    check_extended_protection(g->conf);
    check_fd_budget(g->conf);
    if (gen_start(m, g, err, sizeof(err)) != 0) {
        log_error("reload failed, generation %u keeps running: %s", old->id, err);
        log_init(old->conf->log_level, old->conf->log_file);
        gen_free(g);
        goto done;
    }
    /* The new generation accepts; the old one stops accepting and drains. */
    m->gens[m->ngens++] = g;
    metrics_gen_publish(g->metrics);
    metrics_config_loaded(g->load_seconds);
    metrics_check_address(m, g->conf);
    old->superseded = time(NULL);
    signal_gen(old, SIGUSR2);
    log_info("generation %u serving with %d workers; generation %u (%d workers) stops "
             "accepting and drains for up to %u ms",
             g->id, g->nworkers, old->id, old->alive, old->drain_ms);
    gen_release(old);
    detach_unused_sockets(m, g, false, NULL);
    announce(m, g);
    enforce_max_generations(m, g->conf->max_generations);
    ok = true;
done:
    metrics_reload_done(ok);
    process_metrics(m);
    status_line(m, st, sizeof(st));
    notify_ready(st);
}

static void
drop_gen(struct master *m, size_t i)
{
    log_info("generation %u: all workers ended", m->gens[i]->id);
    gen_free(m->gens[i]);
    memmove(&m->gens[i], &m->gens[i + 1], (m->ngens - i - 1) * sizeof(m->gens[0]));
    m->ngens--;
}

static size_t
workers_alive(const struct master *m)
{
    size_t n = 0;
    for (size_t i = 0; i < m->ngens; i++)
        n += (size_t)m->gens[i]->alive;
    return n;
}

/*
 * A worker of the current generation ended during a node drain: it is not replaced, and its
 * listening sockets, which only the master still holds, are closed so the kernel hands new
 * connections to the workers still running instead of queueing them where no one accepts.
 */
static void
close_worker_slots(struct master *m, const struct generation *g, int index, int status)
{
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        log_warnx("worker %d ended (%s %d) during the drain; not replaced", index,
                  WIFSIGNALED(status) ? "signal" : "status",
                  WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
    for (size_t li = 0; g->lmap != NULL && li < g->conf->nlisteners; li++) {
        struct lsock *s = m->socks[g->lmap[li]];
        if (s != NULL)
            lsock_balance(s, CONF_BALANCE_HASH, 0); /* closing a slot reorders the group */
        for (int slot = 0; s != NULL && slot < s->nfds; slot++) {
            if (slot_mine(g, slot, index) && s->fds[slot] >= 0) {
                close(s->fds[slot]);
                s->fds[slot] = -1;
            }
        }
    }
}

/* Client connections open in every generation, or -1 when unknown (no metrics block). */
static long
open_sessions(const struct master *m)
{
    long n = 0;
    for (size_t i = 0; i < m->ngens; i++) {
        long k = metrics_client_connections(m->gens[i]->metrics);
        if (k < 0)
            return -1;
        n += k;
    }
    return n;
}

static double
seconds_since(const struct timespec *t)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)(now.tv_sec - t->tv_sec) + (double)(now.tv_nsec - t->tv_nsec) / 1e9;
}

static void
drain_status(struct master *m)
{
    char st[160], sessions[32] = "?";
    long n = open_sessions(m);
    if (n >= 0)
        snprintf(sessions, sizeof(sessions), "%ld", n);
    snprintf(st, sizeof(st), "draining: %s sessions open, %zu workers left", sessions,
             workers_alive(m));
    if (strcmp(st, m->drain_status) == 0)
        return;
    snprintf(m->drain_status, sizeof(m->drain_status), "%s", st);
    notify_status(st);
}

/*
 * SIGUSR2 (exshim -s drain): the node leaves its L4 balancer. /healthz answers 503 "draining"
 * at once; the current generation goes on accepting what the balancer still sends until its
 * next check, but every response closes its connection; each worker ends once it has no
 * session and accepted nothing for 2 s, or at drain_timeout (worker.c).
 */
static void
node_drain(struct master *m)
{
    struct generation *g = current_gen(m);
    if (m->stopping || m->node_draining) {
        log_info("SIGUSR2 (drain) while %s: ignored", m->stopping ? "stopping" : "draining");
        return;
    }
    m->node_draining = true;
    clock_gettime(CLOCK_MONOTONIC, &m->drain_start);
    metrics_set_draining();
    signal_gen(g, WORKER_SIG_NODE_DRAIN);
    char sessions[64] = "sessions open: unknown without a metrics block";
    long n = open_sessions(m);
    if (n >= 0)
        snprintf(sessions, sizeof(sessions), "%ld sessions open", n);
    log_info("drain: /healthz answers 503 \"draining\"; still accepting, every response closes "
             "its connection; %s; exit once none is left and nothing was accepted for 2 s, or "
             "at drain_timeout (%u ms)",
             sessions, g->drain_ms);
    char st[160];
    snprintf(st, sizeof(st), "draining: %s", sessions);
    notify_stopping(st);
    snprintf(m->drain_status, sizeof(m->drain_status), "%s", st);
}

/* SIGCHLD: reaps every worker that ended; replaces those of the current generation. */
static void
reap(struct master *m)
{
    pid_t pid;
    int st;
    while ((pid = waitpid(-1, &st, WNOHANG)) > 0) {
        for (size_t gi = 0; gi < m->ngens; gi++) {
            struct generation *g = m->gens[gi];
            int i;
            for (i = 0; i < g->nworkers && g->pids[i] != pid; i++)
                ;
            if (i == g->nworkers)
                continue;
            g->pids[i] = 0;
            g->alive--;
            metrics_worker_gone(g->metrics, i);
            if (m->node_draining && g == current_gen(m))
                close_worker_slots(m, g, i, st);
            if (g != current_gen(m) || m->stopping || m->node_draining) {
                if (g->alive == 0 && g != current_gen(m))
                    drop_gen(m, gi);
                break;
            }
            log_warnx("worker %d (pid %d) ended unexpectedly (%s %d); starting a new one", i,
                      (int)pid, WIFSIGNALED(st) ? "signal" : "status",
                      WIFSIGNALED(st) ? WTERMSIG(st) : WEXITSTATUS(st));
            time_t now = time(NULL);
            if (now == m->last_respawn)
                sleep(1); /* a worker that dies at once must not spin the master */
            m->last_respawn = now;
            int p2[2];
            if (pipe2(p2, O_CLOEXEC) != 0)
                break;
            g->pids[i] = spawn_worker(m, g, i, p2[1]);
            close(p2[1]);
            if (g->pids[i] > 0) {
                g->alive++;
                wait_ready(p2[0], 1);
            } else {
                g->pids[i] = 0;
            }
            close(p2[0]);
            break;
        }
    }
}

/* Once a second: SIGKILL for generations past their deadline; the log backlog. */
static void
tick(struct master *m)
{
    time_t now = time(NULL);
    for (size_t i = 0; i + 1 < m->ngens; i++) {
        struct generation *g = m->gens[i];
        if (g->alive == 0)
            continue;
        time_t drain_end = g->superseded + (time_t)(g->drain_ms / 1000) + DRAIN_KILL_SLACK_S;
        if (g->kill_at == 0 && g->superseded != 0 && now >= drain_end) {
            log_warnx("generation %u: still running past drain_timeout; killing %d workers", g->id,
                      g->alive);
            g->kill_at = now;
        }
        if (g->kill_at != 0 && now >= g->kill_at) {
            if (g->kill_at + MAXGEN_KILL_GRACE_S >= now)
                log_info("generation %u: SIGKILL to %d workers", g->id, g->alive);
            signal_gen(g, SIGKILL);
        }
    }
    struct generation *cur = current_gen(m);
    if (m->node_draining && !m->stopping && cur != NULL) {
        drain_status(m);
        /* Past drain_timeout the workers end by themselves; this is for one that does not. */
        if (!m->drain_killed && cur->alive > 0 &&
            seconds_since(&m->drain_start) * 1000 >=
                (double)cur->drain_ms + DRAIN_KILL_SLACK_S * 1000.0) {
            log_warnx("drain: still running past drain_timeout; killing %d workers", cur->alive);
            signal_gen(cur, SIGKILL);
            m->drain_killed = true;
        }
    }
    process_metrics(m);
    log_flush();
}

/* exshim -s reload|stop|drain|reopen -p PIDFILE */
static int
send_control(const char *what, const char *pid_path)
{
    int sig;
    char err[1024];
    pid_t pid;

    if (strcmp(what, "reload") == 0)
        sig = SIGHUP;
    else if (strcmp(what, "stop") == 0)
        sig = SIGTERM;
    else if (strcmp(what, "drain") == 0)
        sig = SIGUSR2;
    else if (strcmp(what, "reopen") == 0)
        sig = SIGUSR1;
    else {
        fprintf(stderr, "exshim: -s: expected reload, stop, drain or reopen, not '%s'\n", what);
        return 1;
    }
    if (pid_path == NULL) {
        fprintf(stderr, "exshim: -s %s needs -p PIDFILE\n", what);
        return 1;
    }
    if (pidfile_check(pid_path, &pid, err, sizeof(err)) != 0) {
        fprintf(stderr, "exshim: -s %s: %s\n", what, err);
        return 1;
    }
    if (kill(pid, sig) != 0) {
        fprintf(stderr, "exshim: -s %s: signal to pid %d: %s\n", what, (int)pid, strerror(errno));
        return 1;
    }
    return 0;
}

int
main(int argc, char **argv)
{
    const char *control = NULL;
    bool test_only = false, detach = false;
    int opt;
    char err[1024];
    struct master m = {0};

    while ((opt = getopt(argc, argv, "c:tr:w:p:s:dhV")) != -1) {
        switch (opt) {
        case 'c':
            m.conf_path = optarg;
            break;
        case 't':
            test_only = true;
            break;
        case 'r':
            m.ready_path = optarg;
            break;
        case 'p':
            m.pid_path = optarg;
            break;
        case 's':
            control = optarg;
            break;
        case 'w': {
            char *end;
            long v = strtol(optarg, &end, 10);
            if (*end != '\0' || v < 1 || v > MAX_WORKERS) {
                fprintf(stderr, "exshim: -w: expected 1..%d\n", MAX_WORKERS);
                return 1;
            }
            m.workers_override = (int)v;
            break;
        }
        case 'd':
            detach = true;
            break;
        case 'h':
            usage(stdout);
            return 0;
        case 'V':
            version();
            return 0;
        default:
            usage(stderr);
            return 1;
        }
    }
    if (optind != argc) {
        usage(stderr);
        return 1;
    }
    if (control != NULL)
        return send_control(control, m.pid_path);
    if (m.conf_path == NULL) {
        usage(stderr);
        return 1;
    }

    /* Certificates and keys are checked by building the contexts, in -t as well. */
    struct generation *g = gen_prepare(m.conf_path, err, sizeof(err));
    if (g == NULL) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    if (test_only) {
        printf("%s: configuration OK\n", m.conf_path);
        int rc = conf_policy_print(g->conf, stdout) == 0 ? 0 : 1;
        gen_free(g);
        return rc;
    }

    if (log_init(g->conf->log_level, g->conf->log_file) != 0) {
        fprintf(stderr, "exshim: log_file %s: %s\n", g->conf->log_file, strerror(errno));
        gen_free(g);
        return 1;
    }
    log_set_tag("exshim master");
    raise_fd_limit();
    signal(SIGPIPE, SIG_IGN);
    check_extended_protection(g->conf);
    check_fd_budget(g->conf);

    if (detach) {
        if (daemon(1, g->conf->log_file == NULL) != 0)
            fatal("daemon");
        if (log_init(g->conf->log_level, g->conf->log_file) != 0)
            fatal("log_file %s", g->conf->log_file);
    }

    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGCHLD);
    sigaddset(&set, SIGHUP);
    sigaddset(&set, SIGUSR1);
    sigaddset(&set, SIGUSR2);
    /* not for the master: blocked so that a worker forked with this mask keeps it pending until
     * its handler is in place */
    sigaddset(&set, WORKER_SIG_NODE_DRAIN);
    sigprocmask(SIG_BLOCK, &set, NULL);

    if (g->conf->metrics_host != NULL) {
        if (metrics_listen(g->conf->metrics_host, g->conf->metrics_port, err, sizeof(err)) != 0)
            fatalx("%s", err);
        snprintf(m.metrics_addr, sizeof(m.metrics_addr), "%s:%s", g->conf->metrics_host,
                 g->conf->metrics_port);
        log_info("metrics on %s:%d (GET /metrics, /healthz)", g->conf->metrics_host,
                 metrics_port());
    }
    if (gen_start(&m, g, err, sizeof(err)) != 0)
        fatalx("%s", err);
    m.gens[m.ngens++] = g;
    metrics_gen_publish(g->metrics);
    metrics_config_loaded(g->load_seconds);
    process_metrics(&m);
    announce(&m, g);
    if (m.pid_path != NULL && pidfile_write(m.pid_path, getpid()) != 0)
        fatal("pid file %s", m.pid_path);
    char st[256];
    status_line(&m, st, sizeof(st));
    notify_ready(st);

    while (workers_alive(&m) > 0) {
        siginfo_t si;
        struct timespec second = {1, 0};
        int sig = sigtimedwait(&set, &si, &second);
        if (sig < 0) {
            tick(&m);
            continue;
        }
        switch (sig) {
        case SIGTERM:
        case SIGINT:
            if (!m.stopping) {
                log_info("signal %d: stopping workers%s", sig,
                         m.node_draining ? " (the drain becomes a stop)" : "");
                notify_stopping("stopping: workers drain within grace");
                metrics_set_draining();
            }
            m.stopping = true;
            for (size_t i = 0; i < m.ngens; i++)
                signal_gen(m.gens[i], SIGTERM);
            break;
        case SIGHUP:
            if (m.stopping || m.node_draining)
                log_info("SIGHUP while %s: ignored", m.stopping ? "stopping" : "draining");
            else
                reload(&m);
            break;
        case SIGUSR2:
            node_drain(&m);
            break;
        case SIGUSR1:
            if (log_reopen() != 0)
                log_warn("SIGUSR1: cannot reopen the log file");
            else
                log_info("SIGUSR1: log file reopened; passing it on to %zu workers",
                         workers_alive(&m));
            for (size_t i = 0; i < m.ngens; i++)
                signal_gen(m.gens[i], SIGUSR1);
            break;
        case SIGCHLD:
            reap(&m);
            break;
        default:
            break;
        }
        tick(&m);
    }
    if (m.node_draining && !m.stopping) {
        double took = seconds_since(&m.drain_start);
        log_info("drain ended after %.1f s: %s", took,
                 m.drain_killed ? "workers killed past drain_timeout"
                 : took * 1000 >= (double)m.gens[m.ngens - 1]->drain_ms
                     ? "drain_timeout reached, the sessions left were closed"
                     : "no session left and nothing accepted for 2 s");
    }
    log_info("all workers stopped");
    if (m.pid_path != NULL)
        pidfile_remove(m.pid_path, getpid());
    while (m.ngens > 0)
        gen_free(m.gens[--m.ngens]);
    for (size_t k = 0; k < m.nsocks; k++)
        lsock_free(m.socks[k]);
    free(m.socks);
    metrics_stop();
    log_close();
    return 0;
}
