/*
 * origin-bulk: the plain-HTTP origin of bench/compare's bulk, small-request and idle scenarios.
 * Built by bench/compare itself: cc -O2 -o origin-bulk bench/origin-bulk.c
 *
 *   GET  /...?bytes=N     200, Content-Length N, N zero bytes written from a static 1 MiB buffer
 *   GET  anything else    200, "ok\n"
 *   POST/PUT with a Content-Length body: the body is read with read() into a scratch buffer and
 *                         dropped; 200 "ok\n" once it is complete
 *   Expect: 100-continue  answered with 100 Continue first
 *
 * One thread, epoll, non-blocking sockets, HTTP/1.1 keep-alive and pipelining, no chunked
 * request bodies (501). It is here so that the origin is never the bottleneck: the python origin
 * of the e2e tests moves ~100 MB/s, nginx as an origin spends its own CPU on the 2 cores
 * (buffering POST bodies to client_body_temp unless told otherwise); this one costs one
 * write()/read() per 1 MiB of body.
 *
 * usage: origin-bulk HOST:PORT [READY_FILE]
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#define HEAD_MAX 16384
#define CHUNK (1 << 20)

static char zeros[CHUNK];
static char scratch[CHUNK];

enum { S_HEAD, S_BODY, S_RESP };

struct conn {
    int fd;
    int state;
    unsigned events;       /* epoll mask registered */
    int close_after;       /* close once the response is out */
    int head_only;         /* HEAD request: no body in the response */
    uint64_t want;         /* GET ?bytes=N */
    uint64_t body_left;    /* request body bytes still to read */
    uint64_t resp_left;    /* response body bytes still to write */
    size_t inlen;          /* bytes in in[] */
    size_t outlen, outoff; /* response head bytes to write */
    char out[512];
    char in[HEAD_MAX];
};

static int ep;

static void
set_events(struct conn *c, unsigned ev)
{
    if (c->events == ev)
        return;
    struct epoll_event e = {.events = ev, .data.ptr = c};
    epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &e);
    c->events = ev;
}

static const char *
hdr_val(const char *p, const char *end, const char *name)
{
    size_t n = strlen(name);
    while (p < end) {
        const char *eol = memmem(p, (size_t)(end - p), "\r\n", 2);
        if (!eol)
            break;
        if ((size_t)(eol - p) > n && strncasecmp(p, name, n) == 0 && p[n] == ':') {
            const char *v = p + n + 1;
            while (*v == ' ' || *v == '\t')
                v++;
            return v;
        }
        p = eol + 2;
    }
    return NULL;
}

/* A complete head at in[0..headlen): note what to read and what to answer. */
static void
parse_head(struct conn *c, size_t headlen)
{
    const char *h = c->in, *end = c->in + headlen;
    const char *eol = memmem(h, headlen, "\r\n", 2);
    size_t linelen = eol ? (size_t)(eol - h) : headlen;
    int get = linelen > 4 && memcmp(h, "GET ", 4) == 0;
    c->head_only = linelen > 5 && memcmp(h, "HEAD ", 5) == 0;
    int http10 = linelen >= 8 && memcmp(h + linelen - 8, "HTTP/1.0", 8) == 0;
    const char *cl = hdr_val(eol ? eol + 2 : end, end, "Content-Length");
    const char *te = hdr_val(eol ? eol + 2 : end, end, "Transfer-Encoding");
    const char *cn = hdr_val(eol ? eol + 2 : end, end, "Connection");
    const char *ex = hdr_val(eol ? eol + 2 : end, end, "Expect");
    c->close_after = http10 ? !(cn && strncasecmp(cn, "keep-alive", 10) == 0)
                            : (cn && strncasecmp(cn, "close", 5) == 0);
    c->want = 0;
    if ((get || c->head_only)) {
        const char *q = memmem(h, linelen, "bytes=", 6);
        if (q)
            c->want = strtoull(q + 6, NULL, 10);
    }
    c->body_left = cl ? strtoull(cl, NULL, 10) : 0;
    if (te) { /* not needed by the bench: refuse, close */
        c->body_left = 0;
        c->want = (uint64_t)-1;
        c->close_after = 1;
    }
    if (ex && strncasecmp(ex, "100-continue", 12) == 0 && c->body_left) {
        static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
        ssize_t w = write(c->fd, cont, sizeof cont - 1); /* an empty socket buffer takes it */
        (void)w;
    }
}

static void
make_response(struct conn *c)
{
    const char *cl = c->close_after ? "Connection: close\r\n" : "";
    c->outoff = 0;
    if (c->want == (uint64_t)-1) {
        c->outlen =
            (size_t)snprintf(c->out, sizeof c->out,
                             "HTTP/1.1 501 Not Implemented\r\nContent-Length: 0\r\n%s\r\n", cl);
        c->resp_left = 0;
    } else if (c->want) {
        c->outlen = (size_t)snprintf(c->out, sizeof c->out,
                                     "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
                                     "Content-Length: %llu\r\n%s\r\n",
                                     (unsigned long long)c->want, cl);
        c->resp_left = c->head_only ? 0 : c->want;
    } else {
        c->outlen = (size_t)snprintf(
            c->out, sizeof c->out,
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 3\r\n%s\r\n%s", cl,
            c->head_only ? "" : "ok\n");
        c->resp_left = 0;
    }
}

/* Runs the connection as far as the sockets allow. Returns -1 when it must be closed. */
static int
drive(struct conn *c)
{
    for (;;) {
        if (c->state == S_HEAD) {
            char *e = c->inlen >= 4 ? memmem(c->in, c->inlen, "\r\n\r\n", 4) : NULL;
            if (e) {
                size_t hl = (size_t)(e + 4 - c->in);
                parse_head(c, hl);
                memmove(c->in, c->in + hl, c->inlen - hl);
                c->inlen -= hl;
                c->state = S_BODY;
                continue;
            }
            if (c->inlen == HEAD_MAX)
                return -1;
            ssize_t n = read(c->fd, c->in + c->inlen, HEAD_MAX - c->inlen);
            if (n == 0)
                return -1;
            if (n < 0)
                return errno == EAGAIN || errno == EINTR ? (set_events(c, EPOLLIN), 0) : -1;
            c->inlen += (size_t)n;
        } else if (c->state == S_BODY) {
            if (c->body_left == 0) {
                make_response(c);
                c->state = S_RESP;
                continue;
            }
            if (c->inlen) {
                size_t k = c->inlen < c->body_left ? c->inlen : (size_t)c->body_left;
                memmove(c->in, c->in + k, c->inlen - k);
                c->inlen -= k;
                c->body_left -= k;
                continue;
            }
            size_t want = c->body_left < CHUNK ? (size_t)c->body_left : CHUNK;
            ssize_t n = read(c->fd, scratch, want);
            if (n == 0)
                return -1;
            if (n < 0)
                return errno == EAGAIN || errno == EINTR ? (set_events(c, EPOLLIN), 0) : -1;
            c->body_left -= (uint64_t)n;
        } else {
            ssize_t n;
            if (c->outoff < c->outlen) {
                n = write(c->fd, c->out + c->outoff, c->outlen - c->outoff);
                if (n > 0)
                    c->outoff += (size_t)n;
            } else if (c->resp_left) {
                n = write(c->fd, zeros, c->resp_left < CHUNK ? (size_t)c->resp_left : CHUNK);
                if (n > 0)
                    c->resp_left -= (uint64_t)n;
            } else {
                if (c->close_after)
                    return -1;
                c->state = S_HEAD;
                continue;
            }
            if (n < 0)
                return errno == EAGAIN || errno == EINTR ? (set_events(c, EPOLLOUT), 0) : -1;
        }
    }
}

int
main(int argc, char **argv)
{
    if (argc < 2 || !strchr(argv[1], ':')) {
        fprintf(stderr, "usage: origin-bulk HOST:PORT [READY_FILE]\n");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    char host[64];
    snprintf(host, sizeof host, "%.*s", (int)(strrchr(argv[1], ':') - argv[1]), argv[1]);
    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_port =
                                 htons((uint16_t)(int)strtol(strrchr(argv[1], ':') + 1, NULL, 10))};
    if (inet_pton(AF_INET, host, &sa.sin_addr) != 1) {
        fprintf(stderr, "origin-bulk: bad address %s\n", argv[1]);
        return 2;
    }
    int ls = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0), one = 1;
    setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(ls, (struct sockaddr *)&sa, sizeof sa) < 0 || listen(ls, 4096) < 0) {
        perror("origin-bulk: bind/listen");
        return 1;
    }
    ep = epoll_create1(0);
    struct epoll_event lev = {.events = EPOLLIN, .data.ptr = NULL};
    epoll_ctl(ep, EPOLL_CTL_ADD, ls, &lev);
    if (argc > 2) {
        FILE *f = fopen(argv[2], "w");
        if (f) {
            fprintf(f, "plain %s\n", argv[1]);
            fclose(f);
        }
    }
    struct epoll_event evs[256];
    for (;;) {
        int n = epoll_wait(ep, evs, 256, -1);
        if (n < 0 && errno != EINTR)
            return 1;
        for (int i = 0; i < n; i++) {
            struct conn *c = evs[i].data.ptr;
            if (!c) {
                for (;;) {
                    int fd = accept4(ls, NULL, NULL, SOCK_NONBLOCK);
                    if (fd < 0)
                        break;
                    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                    c = calloc(1, sizeof *c);
                    if (!c) {
                        close(fd);
                        continue;
                    }
                    c->fd = fd;
                    c->events = EPOLLIN;
                    struct epoll_event e = {.events = EPOLLIN, .data.ptr = c};
                    epoll_ctl(ep, EPOLL_CTL_ADD, fd, &e);
                }
                continue;
            }
            if (drive(c) < 0) {
                close(c->fd);
                free(c);
            }
        }
    }
}
