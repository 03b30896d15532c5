/*
 * idle-hold: bench/compare's idle keep-alive client. Opens N connections (TLS or plain) to a
 * proxy, sends one small GET on each, reads the 200, then holds every connection open and
 * silent; bench/compare samples the proxy's RSS meanwhile.
 * Built by bench/compare itself: cc -O2 -o idle-hold bench/idle-hold.c -lssl -lcrypto
 *
 * usage: idle-hold --connect HOST:PORT [--tls] [--sni NAME] --conns N [--procs P]
 *                  [--path /idle] [--window W] [--setup-timeout S] [--hold S]
 *                  [--ready FILE] [--json FILE]
 *
 * The connections are spread over P forked processes (default: enough for 8000 per process,
 * at least 2), so none nears the 20000 open-file limit; each keeps at most W (default 128)
 * connections in setup at once. Once every process has set up its share, the parent writes
 * READY ("held K"), holds S seconds (default 10), then each process counts how many of its
 * connections are still open (a peer close seen during the hold counts as "closed"), and the
 * parent writes the JSON report: conns, held, errors by kind, setup seconds, closed during hold.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

enum { C_CONNECT, C_TLS, C_SEND, C_READ, C_IDLE, C_DEAD };
enum { E_CONNECT, E_TLS, E_HTTP, E_CLOSED, E_TIMEOUT, E_MAX };
static const char *ename[E_MAX] = {"connect", "tls", "http", "closed", "timeout"};

struct conn {
    int fd, state;
    SSL *ssl;
    size_t sent, got;
    char buf[1024];
};

static struct sockaddr_in g_sa;
static int g_tls;
static const char *g_sni = "mail.lab.local", *g_path = "/idle";
static SSL_CTX *g_ctx;
static char g_req[256];
static size_t g_reqlen;
static volatile sig_atomic_t g_stop;

static double
now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void
on_term(int s)
{
    (void)s;
    g_stop = 1;
}

struct result {
    long held, err[E_MAX], closed_in_hold;
    double setup_s;
};

static void
mod(int ep, struct conn *c, unsigned ev)
{
    struct epoll_event e = {.events = ev, .data.ptr = c};
    epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &e);
}

static void
fail(int ep, struct conn *c, struct result *r, int kind, long *inflight)
{
    (void)ep;
    r->err[kind]++;
    if (c->ssl)
        SSL_free(c->ssl);
    c->ssl = NULL;
    close(c->fd);
    c->state = C_DEAD;
    (*inflight)--;
}

/* TLS or plain I/O: >0 bytes, 0 would block (events set), -1 error */
static int
io(int ep, struct conn *c, int wr, void *p, size_t n)
{
    if (!c->ssl) {
        ssize_t k = wr ? write(c->fd, p, n) : read(c->fd, p, n);
        if (k > 0)
            return (int)k;
        if (k < 0 && errno == EAGAIN) {
            mod(ep, c, wr ? EPOLLOUT : EPOLLIN);
            return 0;
        }
        return -1;
    }
    int k = wr ? SSL_write(c->ssl, p, (int)n) : SSL_read(c->ssl, p, (int)n);
    if (k > 0)
        return k;
    int e = SSL_get_error(c->ssl, k);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
        mod(ep, c, e == SSL_ERROR_WANT_READ ? EPOLLIN : EPOLLOUT);
        return 0;
    }
    return -1;
}

static void
step(int ep, struct conn *c, struct result *r, long *inflight)
{
    for (;;) {
        switch (c->state) {
        case C_CONNECT: {
            int err = 0;
            socklen_t l = sizeof err;
            getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &l);
            if (err)
                return fail(ep, c, r, E_CONNECT, inflight);
            if (g_tls) {
                c->ssl = SSL_new(g_ctx);
                SSL_set_fd(c->ssl, c->fd);
                SSL_set_tlsext_host_name(c->ssl, g_sni);
                SSL_set_connect_state(c->ssl);
                c->state = C_TLS;
            } else {
                c->state = C_SEND;
            }
            break;
        }
        case C_TLS: {
            int k = SSL_do_handshake(c->ssl);
            if (k == 1) {
                c->state = C_SEND;
                break;
            }
            int e = SSL_get_error(c->ssl, k);
            if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
                mod(ep, c, e == SSL_ERROR_WANT_READ ? EPOLLIN : EPOLLOUT);
                return;
            }
            ERR_clear_error();
            return fail(ep, c, r, E_TLS, inflight);
        }
        case C_SEND: {
            int k = io(ep, c, 1, g_req + c->sent, g_reqlen - c->sent);
            if (k < 0)
                return fail(ep, c, r, E_HTTP, inflight);
            if (k == 0)
                return;
            c->sent += (size_t)k;
            if (c->sent == g_reqlen)
                c->state = C_READ;
            break;
        }
        case C_READ: {
            int k = io(ep, c, 0, c->buf + c->got, sizeof c->buf - 1 - c->got);
            if (k < 0)
                return fail(ep, c, r, E_HTTP, inflight);
            if (k == 0)
                return;
            c->got += (size_t)k;
            c->buf[c->got] = 0;
            char *e = strstr(c->buf, "\r\n\r\n");
            if (!e) {
                if (c->got >= sizeof c->buf - 1)
                    return fail(ep, c, r, E_HTTP, inflight);
                break;
            }
            if (strncmp(c->buf, "HTTP/1.1 200", 12) != 0)
                return fail(ep, c, r, E_HTTP, inflight);
            char *cl = strcasestr(c->buf, "\r\ncontent-length:");
            size_t want = cl ? strtoul(cl + 17, NULL, 10) : 0;
            if (c->got - (size_t)(e + 4 - c->buf) < want)
                break;
            c->state = C_IDLE;
            r->held++;
            (*inflight)--;
            mod(ep, c, EPOLLIN | EPOLLRDHUP);
            return;
        }
        case C_IDLE: { /* anything readable now is a close (or an unexpected byte) */
            char b[256];
            int k = io(ep, c, 0, b, sizeof b);
            if (k == 0) {
                mod(ep, c, EPOLLIN | EPOLLRDHUP);
                return;
            }
            r->held--;
            r->closed_in_hold++;
            if (c->ssl)
                SSL_free(c->ssl);
            c->ssl = NULL;
            close(c->fd);
            c->state = C_DEAD;
            return;
        }
        default:
            return;
        }
    }
}

/* one process's share; reports setup through `wfd`, then holds until SIGTERM */
static void
child(long n, long window, double setup_timeout, int wfd)
{
    struct result r;
    memset(&r, 0, sizeof r);
    struct conn *cs = calloc((size_t)n, sizeof *cs);
    int ep = epoll_create1(0);
    long next = 0, inflight = 0;
    double t0 = now_s();
    struct epoll_event evs[256];
    while (!g_stop) {
        while (next < n && inflight < window) {
            struct conn *c = &cs[next++];
            c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
            if (c->fd < 0) {
                r.err[E_CONNECT]++;
                c->state = C_DEAD;
                continue;
            }
            int one = 1;
            setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
            inflight++;
            c->state = C_CONNECT;
            if (connect(c->fd, (struct sockaddr *)&g_sa, sizeof g_sa) < 0 && errno != EINPROGRESS) {
                fail(ep, c, &r, E_CONNECT, &inflight);
                continue;
            }
            struct epoll_event e = {.events = EPOLLOUT, .data.ptr = c};
            epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &e);
        }
        if (next == n && inflight == 0)
            break;
        if (now_s() - t0 > setup_timeout) {
            for (long i = 0; i < next; i++)
                if (cs[i].state < C_IDLE)
                    fail(ep, &cs[i], &r, E_TIMEOUT, &inflight);
            r.err[E_TIMEOUT] += n - next;
            break;
        }
        int k = epoll_wait(ep, evs, 256, 100);
        for (int i = 0; i < k; i++)
            step(ep, evs[i].data.ptr, &r, &inflight);
    }
    r.setup_s = now_s() - t0;
    long held_at_setup = r.held;
    if (write(wfd, &r, sizeof r) != sizeof r)
        _exit(1);
    /* hold: watch for closes until told to stop */
    while (!g_stop) {
        int k = epoll_wait(ep, evs, 256, 200);
        for (int i = 0; i < k; i++)
            step(ep, evs[i].data.ptr, &r, &inflight);
    }
    (void)held_at_setup;
    if (write(wfd, &r, sizeof r) != sizeof r)
        _exit(1);
    _exit(0);
}

int
main(int argc, char **argv)
{
    const char *connect_to = NULL, *ready = NULL, *json = NULL;
    long conns = 1000, procs = 0, window = 128;
    double setup_timeout = 60, hold = 10;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--tls")) {
            g_tls = 1;
            continue;
        }
        if (!v) {
            fprintf(stderr, "idle-hold: %s needs a value\n", a);
            return 2;
        }
        i++;
        if (!strcmp(a, "--connect"))
            connect_to = v;
        else if (!strcmp(a, "--sni"))
            g_sni = v;
        else if (!strcmp(a, "--conns"))
            conns = strtol(v, NULL, 10);
        else if (!strcmp(a, "--procs"))
            procs = strtol(v, NULL, 10);
        else if (!strcmp(a, "--path"))
            g_path = v;
        else if (!strcmp(a, "--window"))
            window = strtol(v, NULL, 10);
        else if (!strcmp(a, "--setup-timeout"))
            setup_timeout = atof(v);
        else if (!strcmp(a, "--hold"))
            hold = atof(v);
        else if (!strcmp(a, "--ready"))
            ready = v;
        else if (!strcmp(a, "--json"))
            json = v;
        else {
            fprintf(stderr, "idle-hold: unknown option %s\n", a);
            return 2;
        }
    }
    if (!connect_to || !strchr(connect_to, ':') || conns < 1) {
        fprintf(stderr, "usage: idle-hold --connect HOST:PORT [--tls] --conns N [--procs P] "
                        "[--hold S] [--ready FILE] [--json FILE]\n");
        return 2;
    }
    char host[64];
    snprintf(host, sizeof host, "%.*s", (int)(strrchr(connect_to, ':') - connect_to), connect_to);
    g_sa.sin_family = AF_INET;
    g_sa.sin_port = htons((uint16_t)(int)strtol(strrchr(connect_to, ':') + 1, NULL, 10));
    if (inet_pton(AF_INET, host, &g_sa.sin_addr) != 1) {
        fprintf(stderr, "idle-hold: bad address %s\n", connect_to);
        return 2;
    }
    if (procs < 1)
        procs = conns / 8000 + 1 < 2 ? 2 : conns / 8000 + 1;
    if (procs > conns)
        procs = conns;
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
        if ((rlim_t)(conns / procs + 64) > rl.rlim_cur) {
            fprintf(stderr,
                    "idle-hold: %ld connections per process pass the open-file limit %llu; use "
                    "more --procs\n",
                    conns / procs + 1, (unsigned long long)rl.rlim_cur);
            return 2;
        }
    }
    g_reqlen = (size_t)snprintf(g_req, sizeof g_req,
                                "GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: idle-hold\r\n\r\n",
                                g_path, g_sni);
    signal(SIGPIPE, SIG_IGN);
    struct sigaction sa = {.sa_handler = on_term};
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    if (g_tls) {
        g_ctx = SSL_CTX_new(TLS_client_method());
        SSL_CTX_set_verify(g_ctx, SSL_VERIFY_NONE, NULL);
        SSL_CTX_set_session_cache_mode(g_ctx, SSL_SESS_CACHE_OFF);
    }
    pid_t *pids = calloc((size_t)procs, sizeof *pids);
    int *rfd = calloc((size_t)procs, sizeof *rfd);
    double t0 = now_s();
    for (long p = 0; p < procs; p++) {
        int fds[2];
        if (pipe(fds) < 0)
            return 1;
        long share = conns / procs + (p < conns % procs ? 1 : 0);
        pid_t pid = fork();
        if (pid == 0) {
            prctl(PR_SET_PDEATHSIG, SIGTERM); /* never outlive the parent with sockets held */
            if (getppid() == 1)
                _exit(1);
            close(fds[0]);
            child(share, window, setup_timeout, fds[1]);
        }
        close(fds[1]);
        pids[p] = pid;
        rfd[p] = fds[0];
    }
    struct result tot, r;
    memset(&tot, 0, sizeof tot);
    int ok = 1;
    for (long p = 0; p < procs; p++) {
        if (read(rfd[p], &r, sizeof r) != sizeof r) {
            ok = 0;
            continue;
        }
        tot.held += r.held;
        for (int e = 0; e < E_MAX; e++)
            tot.err[e] += r.err[e];
        if (r.setup_s > tot.setup_s)
            tot.setup_s = r.setup_s;
    }
    double t_setup = now_s() - t0;
    if (ready) {
        char tmp[600];
        snprintf(tmp, sizeof tmp, "%s.tmp", ready);
        FILE *f = fopen(tmp, "w");
        if (f) {
            fprintf(f, "held %ld\n", tot.held);
            fclose(f);
            rename(tmp, ready);
        }
    }
    double t_hold = now_s();
    while (!g_stop && now_s() - t_hold < hold)
        usleep(50000);
    long held_end = 0, closed = 0;
    long err_end[E_MAX] = {0};
    for (long p = 0; p < procs; p++)
        kill(pids[p], SIGTERM);
    for (long p = 0; p < procs; p++) {
        if (read(rfd[p], &r, sizeof r) == sizeof r) {
            held_end += r.held;
            closed += r.closed_in_hold;
            for (int e = 0; e < E_MAX; e++)
                err_end[e] += r.err[e];
        } else {
            ok = 0;
        }
        waitpid(pids[p], NULL, 0);
    }
    err_end[E_CLOSED] += closed;
    long errs = 0;
    for (int e = 0; e < E_MAX; e++)
        errs += err_end[e];
    printf("idle-hold: %ld connections (%s) over %ld processes: %ld set up in %.2f s, %ld still "
           "open after %.1f s hold, errors %ld",
           conns, g_tls ? "TLS" : "plain", procs, tot.held, t_setup, held_end, now_s() - t_hold,
           errs);
    for (int e = 0; e < E_MAX; e++)
        if (err_end[e])
            printf(" %s=%ld", ename[e], err_end[e]);
    printf("\n");
    if (json) {
        FILE *f = fopen(json, "w");
        if (f) {
            fprintf(f,
                    "{\"conns\": %ld, \"procs\": %ld, \"tls\": %s, \"held\": %ld, \"held_at_end\": "
                    "%ld, "
                    "\"setup_s\": %.3f, \"hold_s\": %.3f, \"errors\": %ld, \"errors_by_kind\": {",
                    conns, procs, g_tls ? "true" : "false", tot.held, held_end, t_setup,
                    now_s() - t_hold, errs);
            int first = 1;
            for (int e = 0; e < E_MAX; e++)
                if (err_end[e]) {
                    fprintf(f, "%s\"%s\": {\"count\": %ld, \"example\": \"%s\"}", first ? "" : ", ",
                            ename[e], err_end[e],
                            e == E_CLOSED ? "proxy closed an idle keep-alive connection"
                                          : ename[e]);
                    first = 0;
                }
            fprintf(f, "}, \"complete\": %s}\n", ok ? "true" : "false");
            fclose(f);
        }
    }
    return ok ? 0 : 1;
}
