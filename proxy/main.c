/*
 * exshim: command line, configuration, and the master process.
 *
 * The master loads and checks the configuration, prepares TLS contexts, resolves backends,
 * reserves each listener's port, forks the workers (each binds its own SO_REUSEPORT socket to
 * that port), writes the ready file, and then only supervises: SIGTERM/SIGINT are passed to the
 * workers, which drain; a worker that dies unexpectedly is replaced.
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
#include <http_parser.h>
#include <libconfig.h>

#include "conf/conf.h"
#include "proxy/log.h"
#include "proxy/tls.h"
#include "proxy/worker.h"

#define EXSHIM_VERSION "0.1.0"
#define MAX_WORKERS 256

static void
usage(FILE *f)
{
    fprintf(f, "usage: exshim -c FILE [-t] [-r READY_FILE] [-w WORKERS] [-d]\n"
               "       exshim -h | -V\n"
               "\n"
               "  -c FILE        configuration file (libconfig syntax; see conf/exshim.conf)\n"
               "  -t             check the configuration (syntax, keys, certificates) and exit:\n"
               "                 0 when valid, 1 with FILE:LINE: KEY: message otherwise\n"
               "  -r READY_FILE  once every worker listens, write one line per listener,\n"
               "                 \"NAME HOST:PORT\" (port 0 in the file shows the real port)\n"
               "  -w WORKERS     number of worker processes, overrides `workers` in the file\n"
               "  -d             detach and run in the background (logs: log_file, if set)\n"
               "  -h             this help\n"
               "  -V             version of exshim and of the libraries it runs with\n"
               "\n"
               "Signals: TERM/INT stop accepting, let exchanges in flight finish within `grace`,\n"
               "then exit 0.\n");
}

static void
version(void)
{
    unsigned long hp = http_parser_version();
    printf("exshim %s\n", EXSHIM_VERSION);
    printf("  libevent %s\n", event_get_version());
    printf("  %s\n", tlsctx_library_version());
    printf("  http-parser %lu.%lu.%lu\n", (hp >> 16) & 255, (hp >> 8) & 255, hp & 255);
    printf("  libconfig %d.%d.%d\n", LIBCONFIG_VER_MAJOR, LIBCONFIG_VER_MINOR,
           LIBCONFIG_VER_REVISION);
    printf("  MIT krb5 GSS-API (linked through libgssapi_krb5)\n");
}

/* Opens a TCP socket bound to host:port with SO_REUSEPORT; listens when asked. Returns the fd
 * and stores the bound port, or -1 with errno. */
static int
open_bound(const char *host, const char *port, bool do_listen, int *port_out)
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
    if (do_listen && listen(fd, 4096) != 0)
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

struct master {
    struct conf *conf;
    struct worker tmpl;
    int *reserve_fds;
    int *ports;
    pid_t pids[MAX_WORKERS];
    int nworkers;
};

/* Releases what the master prepared; accepts a partly prepared master. */
static void
master_free(struct master *m)
{
    const struct conf *c = m->conf;
    if (c != NULL && m->tmpl.listener_tls != NULL)
        for (size_t i = 0; i < c->nlisteners; i++)
            tlsctx_free(m->tmpl.listener_tls[i]);
    if (c != NULL && m->tmpl.backends != NULL) {
        for (size_t i = 0; i < c->nbackends; i++) {
            tlsctx_free(m->tmpl.backends[i].tls);
            free(m->tmpl.backends[i].addr);
            free(m->tmpl.backends[i].addrlen);
        }
    }
    if (c != NULL && m->reserve_fds != NULL)
        for (size_t i = 0; i < c->nlisteners; i++)
            if (m->reserve_fds[i] > 0)
                close(m->reserve_fds[i]);
    free(m->tmpl.listener_tls);
    free(m->tmpl.backends);
    free(m->reserve_fds);
    free(m->ports);
    conf_free(m->conf);
    memset(m, 0, sizeof(*m));
}

static pid_t
spawn_worker(struct master *m, int index, int ready_wr)
{
    pid_t pid = fork();
    if (pid != 0)
        return pid;
    /* child */
    sigset_t all;
    sigemptyset(&all);
    sigprocmask(SIG_SETMASK, &all, NULL);
    char tag[32];
    snprintf(tag, sizeof(tag), "exshim worker %d", index);
    log_set_tag(tag);
    struct worker w = m->tmpl;
    w.index = index;
    w.listen_fds = calloc(m->conf->nlisteners, sizeof(int));
    if (w.listen_fds == NULL)
        _exit(1);
    for (size_t i = 0; i < m->conf->nlisteners; i++) {
        char port[8];
        int got;
        snprintf(port, sizeof(port), "%d", m->ports[i]);
        w.listen_fds[i] = open_bound(m->conf->listeners[i].host, port, true, &got);
        if (w.listen_fds[i] < 0)
            fatal("listener %s: %s:%s", m->conf->listeners[i].name, m->conf->listeners[i].host,
                  port);
    }
    for (size_t i = 0; i < m->conf->nlisteners; i++)
        close(m->reserve_fds[i]);
    _exit(worker_run(&w, ready_wr));
}

static int
write_ready_file(const char *path, const struct master *m)
{
    char tmp[4096];
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (f == NULL)
        return -1;
    for (size_t i = 0; i < m->conf->nlisteners; i++) {
        const struct conf_listener *l = &m->conf->listeners[i];
        bool v6 = strchr(l->host, ':') != NULL;
        fprintf(f, "%s %s%s%s:%d\n", l->name, v6 ? "[" : "", l->host, v6 ? "]" : "", m->ports[i]);
    }
    if (fclose(f) != 0)
        return -1;
    return rename(tmp, path);
}

/* Waits for one readiness byte per worker, bounded in time. */
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

int
main(int argc, char **argv)
{
    const char *conf_path = NULL, *ready_path = NULL;
    bool test_only = false, detach = false;
    int workers_override = 0;
    int opt;
    char err[1024];

    while ((opt = getopt(argc, argv, "c:tr:w:dhV")) != -1) {
        switch (opt) {
        case 'c':
            conf_path = optarg;
            break;
        case 't':
            test_only = true;
            break;
        case 'r':
            ready_path = optarg;
            break;
        case 'w': {
            char *end;
            long v = strtol(optarg, &end, 10);
            if (*end != '\0' || v < 1 || v > MAX_WORKERS) {
                fprintf(stderr, "exshim: -w: expected 1..%d\n", MAX_WORKERS);
                return 1;
            }
            workers_override = (int)v;
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
    if (conf_path == NULL || optind != argc) {
        usage(stderr);
        return 1;
    }

    struct master m = {0};
    if (conf_load(conf_path, &m.conf, err, sizeof(err)) != 0) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    const struct conf *c = m.conf;

    /* Certificates and keys are checked by building the contexts, in -t as well. */
    m.tmpl.conf = c;
    m.tmpl.listener_tls = calloc(c->nlisteners, sizeof(*m.tmpl.listener_tls));
    m.tmpl.backends = calloc(c->nbackends, sizeof(*m.tmpl.backends));
    if (m.tmpl.listener_tls == NULL || m.tmpl.backends == NULL) {
        fprintf(stderr, "exshim: out of memory\n");
        master_free(&m);
        return 1;
    }
    for (size_t i = 0; i < c->nlisteners; i++) {
        if (!c->listeners[i].tls)
            continue;
        m.tmpl.listener_tls[i] = tlsctx_server_new(&c->listeners[i], err, sizeof(err));
        if (m.tmpl.listener_tls[i] == NULL) {
            fprintf(stderr, "%s:%d: listeners.%s.tls: %s\n", c->file, c->listeners[i].line,
                    c->listeners[i].name, err);
            master_free(&m);
            return 1;
        }
    }
    if (prepare_backends(c, m.tmpl.backends, err, sizeof(err)) != 0) {
        fprintf(stderr, "%s\n", err);
        master_free(&m);
        return 1;
    }
    if (test_only) {
        printf("%s: configuration OK\n", conf_path);
        master_free(&m);
        return 0;
    }

    if (log_init(c->log_level, c->log_file) != 0) {
        fprintf(stderr, "exshim: log_file %s: %s\n", c->log_file, strerror(errno));
        return 1;
    }
    log_set_tag("exshim master");
    raise_fd_limit();
    signal(SIGPIPE, SIG_IGN);

    m.nworkers = workers_override ? workers_override : (c->workers ? c->workers : ncpus());
    if (m.nworkers > MAX_WORKERS)
        m.nworkers = MAX_WORKERS;
    m.reserve_fds = calloc(c->nlisteners, sizeof(int));
    m.ports = calloc(c->nlisteners, sizeof(int));
    if (m.reserve_fds == NULL || m.ports == NULL)
        fatalx("out of memory");
    for (size_t i = 0; i < c->nlisteners; i++) {
        m.reserve_fds[i] =
            open_bound(c->listeners[i].host, c->listeners[i].port, false, &m.ports[i]);
        if (m.reserve_fds[i] < 0)
            fatal("%s:%d: listeners.%s: cannot bind %s:%s", c->file, c->listeners[i].line,
                  c->listeners[i].name, c->listeners[i].host, c->listeners[i].port);
    }

    check_extended_protection(c);

    if (detach) {
        if (daemon(1, c->log_file == NULL) != 0)
            fatal("daemon");
    }

    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGCHLD);
    sigaddset(&set, SIGHUP);
    sigprocmask(SIG_BLOCK, &set, NULL);

    int rp[2];
    if (pipe2(rp, O_CLOEXEC) != 0)
        fatal("pipe");
    for (int i = 0; i < m.nworkers; i++) {
        m.pids[i] = spawn_worker(&m, i, rp[1]);
        if (m.pids[i] < 0)
            fatal("fork");
    }
    if (wait_ready(rp[0], m.nworkers) != 0)
        fatalx("workers did not become ready; see messages above");
    for (size_t i = 0; i < c->nlisteners; i++)
        log_info("listener %s on %s:%d (%s), %d workers", c->listeners[i].name,
                 c->listeners[i].host, m.ports[i], c->listeners[i].tls ? "TLS" : "plain HTTP",
                 m.nworkers);
    if (ready_path != NULL && write_ready_file(ready_path, &m) != 0)
        log_warn("ready file %s", ready_path);

    bool stopping = false;
    int alive = m.nworkers;
    time_t last_respawn = 0;
    while (alive > 0) {
        siginfo_t si;
        int sig = sigwaitinfo(&set, &si);
        if (sig < 0)
            continue;
        if (sig == SIGTERM || sig == SIGINT) {
            if (!stopping)
                log_info("signal %d: stopping workers", sig);
            stopping = true;
            for (int i = 0; i < m.nworkers; i++)
                if (m.pids[i] > 0)
                    kill(m.pids[i], SIGTERM);
            continue;
        }
        if (sig == SIGHUP) {
            log_info("SIGHUP: configuration reload is not implemented; restart exshim to apply "
                     "changes");
            continue;
        }
        /* SIGCHLD: reap every worker that ended */
        pid_t pid;
        int st;
        while ((pid = waitpid(-1, &st, WNOHANG)) > 0) {
            for (int i = 0; i < m.nworkers; i++) {
                if (m.pids[i] != pid)
                    continue;
                m.pids[i] = 0;
                alive--;
                if (stopping)
                    break;
                log_warnx("worker %d (pid %d) ended unexpectedly (%s %d); starting a new one", i,
                          (int)pid, WIFSIGNALED(st) ? "signal" : "status",
                          WIFSIGNALED(st) ? WTERMSIG(st) : WEXITSTATUS(st));
                time_t now = time(NULL);
                if (now == last_respawn)
                    sleep(1); /* a worker that dies at once must not spin the master */
                last_respawn = now;
                int p2[2];
                if (pipe2(p2, O_CLOEXEC) != 0)
                    break;
                m.pids[i] = spawn_worker(&m, i, p2[1]);
                close(p2[1]);
                if (m.pids[i] > 0) {
                    alive++;
                    wait_ready(p2[0], 1);
                }
                close(p2[0]);
            }
        }
    }
    log_info("all workers stopped");
    master_free(&m);
    log_close();
    return 0;
}
