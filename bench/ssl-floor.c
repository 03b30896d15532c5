/*
 * ssl-floor: what OpenSSL itself costs per idle keep-alive TLS connection, with no proxy around
 * it. One process, one epoll loop, on 127.0.0.1: accept, TLS handshake, read one small HTTP
 * request, answer a tiny 200, then hold the connection idle (as bench/compare's idle-keepalive
 * scenario leaves it). The process prints its RSS (and glibc's in-use heap) before the first
 * accept and once all N connections are idle, and the difference per connection in KiB.
 *
 * build: cc -O2 -o /tmp/ssl-floor bench/ssl-floor.c -lssl -lcrypto
 * run:   /tmp/ssl-floor --port 25100 --cert cert.pem --key key.pem --conns 2000 [options] &
 *        /tmp/idle-hold --connect 127.0.0.1:25100 --tls --conns 2000 --hold 3
 *
 * options (each is one knob, so that a run can be repeated):
 *   --tls12              cap the protocol at TLS 1.2 (default: TLS 1.3 is negotiated)
 *   --no-release-buffers leave SSL_MODE_RELEASE_BUFFERS off (on by default, as exshim/HAProxy)
 *   --num-tickets K      SSL_CTX_set_num_tickets (OpenSSL's default is 2)
 *   --no-ticket          SSL_OP_NO_TICKET
 *   --no-cache           SSL_SESS_CACHE_OFF on the server context
 *   --membio             a pair of memory BIOs per connection instead of a socket BIO
 *   --read-ahead LEN     read-ahead on, default read buffer LEN (exshim: 131072)
 *   --trim               malloc_trim(0) once all are idle, then a second report
 *   --settle MS          wait this long after the last connection is idle before measuring (300)
 *   --phases             glibc in-use heap change per connection across SSL_new, the handshake,
 *                        the request's read and the response's write (bytes, net)
 *   --massif-snapshot P  under valgrind massif: a detailed snapshot to P.before and P.idle
 * MALLOC_ARENA_MAX=1 in the environment is the allocator knob (one process, one thread, so it
 * matters little here; it is listed to show that).
 *
 * Output: "RESULT key=value ..." lines (phase=idle and, with --trim, phase=trim). The process
 * keeps serving until every client has closed (or SIGTERM/SIGINT), then exits normally.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <malloc.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#define HAVE_VG 1
#endif

enum { S_HANDSHAKE, S_REQUEST, S_RESPOND, S_IDLE };

/* the whole per-connection state besides OpenSSL's own */
struct conn {
    int fd;
    unsigned char state, crlf; /* crlf: how much of "\r\n\r\n" the request has matched */
    unsigned short sent;       /* bytes of the response accepted by SSL_write */
    SSL *ssl;
};

static const char resp[] = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: text/plain\r\n\r\nok";
static int o_membio, o_trim;
static long o_settle_ms = 300;
static const char *o_snap;
static volatile sig_atomic_t g_stop;
static long n_open, n_idle, n_accepted;
/* --phases: glibc's in-use heap change across each OpenSSL call, summed per phase. Calls run one
 * at a time on one connection, so a call's change belongs to that connection alone. */
enum { P_NEW, P_HANDSHAKE, P_REQUEST, P_RESPOND, P_IDLE, P_MAX };
static const char *pname[P_MAX] = {"ssl_new", "handshake", "request", "respond", "idle_reads"};
static int o_phases;
static long long ph_bytes[P_MAX];
static long long
heap_now(void)
{
    return o_phases ? (long long)mallinfo2().uordblks : 0;
}
static const char *g_proto = "-", *g_cipher = "-"; /* of the last handshake */

static void
on_sig(int s)
{
    (void)s;
    g_stop = 1;
}

static double
now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* resident set in KiB, from /proc/self/statm (second field, pages) */
static long
rss_kib(void)
{
    long size = 0, res = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (f) {
        if (fscanf(f, "%ld %ld", &size, &res) != 2)
            res = 0;
        fclose(f);
    }
    return res * (sysconf(_SC_PAGESIZE) / 1024);
}

static void
snapshot(const char *tag)
{
#ifdef HAVE_VG
    if (o_snap && RUNNING_ON_VALGRIND) {
        char cmd[600];
        snprintf(cmd, sizeof cmd, "detailed_snapshot %s.%s", o_snap, tag);
        VALGRIND_MONITOR_COMMAND(cmd);
    }
#else
    (void)tag;
#endif
}

static void
arm(int ep, struct conn *c, unsigned ev)
{
    struct epoll_event e = {.events = ev, .data.ptr = c};
    epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &e);
}

static void
drop(struct conn *c)
{
    if (c->state == S_IDLE)
        n_idle--;
    SSL_free(c->ssl); /* frees the BIOs too */
    close(c->fd);
    free(c);
    n_open--;
}

/* membio: move what OpenSSL wrote to the socket; 1 all gone, 0 some left (EAGAIN), -1 error */
static int
flush_out(struct conn *c)
{
    BIO *w = SSL_get_wbio(c->ssl);
    char *p;
    long n;
    while ((n = BIO_get_mem_data(w, &p)) > 0) {
        ssize_t k = send(c->fd, p, (size_t)n, MSG_NOSIGNAL);
        if (k < 0)
            return errno == EAGAIN ? 0 : -1;
        char sink[16384];
        for (ssize_t left = k; left > 0;) { /* consume what was sent from the BIO */
            int m = BIO_read(w, sink, left > (ssize_t)sizeof sink ? (int)sizeof sink : (int)left);
            if (m <= 0)
                return -1;
            left -= m;
        }
    }
    return 1;
}

/* membio: feed the socket's bytes to OpenSSL; 1 fed some, 0 nothing now, -1 EOF/error */
static int
fill_in(struct conn *c)
{
    char buf[16384];
    int any = 0;
    for (;;) {
        ssize_t k = recv(c->fd, buf, sizeof buf, 0);
        if (k > 0) {
            BIO_write(SSL_get_rbio(c->ssl), buf, (int)k);
            any = 1;
            if ((size_t)k < sizeof buf)
                return 1;
            continue;
        }
        if (k < 0 && errno == EAGAIN)
            return any;
        return -1;
    }
}

/* Drive one connection as far as it goes. Returns the epoll events to wait for, or 0 to drop. */
static unsigned
drive(struct conn *c)
{
    for (;;) {
        int k = 0, e;
        switch (c->state) {
        case S_HANDSHAKE: {
            long long h = heap_now();
            k = SSL_do_handshake(c->ssl);
            ph_bytes[P_HANDSHAKE] += heap_now() - h;
            if (k == 1) {
                g_proto = SSL_get_version(c->ssl);
                g_cipher = SSL_get_cipher_name(c->ssl);
                c->state = S_REQUEST;
                continue;
            }
            break;
        }
        case S_REQUEST: {
            char b[4096];
            long long h = heap_now();
            k = SSL_read(c->ssl, b, sizeof b);
            ph_bytes[P_REQUEST] += heap_now() - h;
            if (k > 0) {
                static const char end[] = "\r\n\r\n";
                for (int i = 0; i < k && c->state == S_REQUEST; i++) {
                    c->crlf = b[i] == end[c->crlf] ? c->crlf + 1 : (b[i] == '\r' ? 1 : 0);
                    if (c->crlf == 4)
                        c->state = S_RESPOND;
                }
                continue;
            }
            break;
        }
        case S_RESPOND:
            if (c->sent < sizeof resp - 1) {
                long long h = heap_now();
                k = SSL_write(c->ssl, resp + c->sent, (int)(sizeof resp - 1 - c->sent));
                ph_bytes[P_RESPOND] += heap_now() - h;
                if (k <= 0)
                    break;
                c->sent += (unsigned short)k;
                continue;
            }
            if (o_membio) { /* idle only once the response has left for the socket */
                int f = flush_out(c);
                if (f < 0)
                    return 0;
                if (f == 0)
                    return EPOLLOUT;
            }
            c->state = S_IDLE;
            n_idle++;
            continue;
        case S_IDLE: { /* a keep-alive client says nothing more; readable means close */
            char b[256];
            long long h = heap_now();
            k = SSL_read(c->ssl, b, sizeof b);
            ph_bytes[P_IDLE] += heap_now() - h;
            if (k > 0)
                continue; /* a second request is not part of this scenario; ignore it */
            break;
        }
        }
        e = SSL_get_error(c->ssl, k);
        ERR_clear_error();
        if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
            if (o_membio) {
                int f = flush_out(c);
                if (f < 0)
                    return 0;
                if (f == 0)
                    return EPOLLOUT | EPOLLIN;
                return EPOLLIN; /* a memory BIO only ever wants more input */
            }
            return e == SSL_ERROR_WANT_READ ? EPOLLIN : EPOLLOUT;
        }
        return 0; /* EOF, close_notify, or an error */
    }
}

static void
report(const char *phase, long rss0, size_t heap0, long n, double t_setup)
{
    struct mallinfo2 mi = mallinfo2();
    long rss = rss_kib();
    printf("RESULT phase=%s conns=%ld rss_before_kib=%ld rss_after_kib=%ld rss_per_conn_kib=%.2f "
           "heap_inuse_per_conn_kib=%.2f heap_arena_kib=%zu setup_s=%.2f proto=%s cipher=%s\n",
           phase, n, rss0, rss, n ? (double)(rss - rss0) / n : 0.0,
           n ? ((double)mi.uordblks - (double)heap0) / 1024.0 / n : 0.0,
           (mi.arena + mi.hblkhd) / 1024, t_setup / 1e3, g_proto, g_cipher);
    if (o_phases && n) {
        printf("PHASES phase=%s", phase);
        for (int p = 0; p < P_MAX; p++)
            printf(" %s_B=%.0f", pname[p], (double)ph_bytes[p] / n);
        printf("\n");
    }
    fflush(stdout);
}

int
main(int argc, char **argv)
{
    const char *cert = NULL, *key = NULL;
    int port = 25100, tls12 = 0, release = 1, no_ticket = 0, no_cache = 0;
    long conns = 1000, num_tickets = -1, read_ahead = 0;
    enum { O_NO_RELEASE = 256, O_NUM_TICKETS, O_NO_TICKET, O_NO_CACHE, O_READ_AHEAD, O_SNAP };
    static const struct option opts[] = {
        {"port", required_argument, NULL, 'p'},
        {"cert", required_argument, NULL, 'c'},
        {"key", required_argument, NULL, 'k'},
        {"conns", required_argument, NULL, 'n'},
        {"tls12", no_argument, NULL, '2'},
        {"no-release-buffers", no_argument, NULL, O_NO_RELEASE},
        {"num-tickets", required_argument, NULL, O_NUM_TICKETS},
        {"no-ticket", no_argument, NULL, O_NO_TICKET},
        {"no-cache", no_argument, NULL, O_NO_CACHE},
        {"membio", no_argument, NULL, 'm'},
        {"read-ahead", required_argument, NULL, O_READ_AHEAD},
        {"trim", no_argument, NULL, 't'},
        {"settle", required_argument, NULL, 's'},
        {"phases", no_argument, NULL, 'P'},
        {"massif-snapshot", required_argument, NULL, O_SNAP},
        {NULL, 0, NULL, 0},
    };
    int o;
    while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (o) {
        case 'p': port = atoi(optarg); break;
        case 'c': cert = optarg; break;
        case 'k': key = optarg; break;
        case 'n': conns = atol(optarg); break;
        case '2': tls12 = 1; break;
        case O_NO_RELEASE: release = 0; break;
        case O_NUM_TICKETS: num_tickets = atol(optarg); break;
        case O_NO_TICKET: no_ticket = 1; break;
        case O_NO_CACHE: no_cache = 1; break;
        case 'm': o_membio = 1; break;
        case O_READ_AHEAD: read_ahead = atol(optarg); break;
        case 't': o_trim = 1; break;
        case 's': o_settle_ms = atol(optarg); break;
        case 'P': o_phases = 1; break;
        case O_SNAP: o_snap = optarg; break;
        default: return 2; /* getopt_long has named the option */
        }
    }
    if (optind < argc) {
        fprintf(stderr, "ssl-floor: unexpected argument %s\n", argv[optind]);
        return 2;
    }
    if (!cert || !key || conns < 1) {
        fprintf(stderr, "usage: ssl-floor --cert PEM --key PEM --conns N [--port P] [options]\n");
        return 2;
    }
    if (port < 25100 || port > 25199) {
        fprintf(stderr, "ssl-floor: use a port in 25100-25199\n");
        return 2;
    }

    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (!ctx || SSL_CTX_use_certificate_chain_file(ctx, cert) != 1 ||
        SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1) {
        ERR_print_errors_fp(stderr);
        return 1;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    if (tls12)
        SSL_CTX_set_max_proto_version(ctx, TLS1_2_VERSION);
    if (release)
        SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
    if (read_ahead > 0) {
        SSL_CTX_set_read_ahead(ctx, 1);
        SSL_CTX_set_default_read_buffer_len(ctx, (size_t)read_ahead);
    }
    if (num_tickets >= 0)
        SSL_CTX_set_num_tickets(ctx, (size_t)num_tickets);
    if (no_ticket)
        SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
    if (no_cache)
        SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_session_id_context(ctx, (const unsigned char *)"floor", 5);

    int ls = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0), one = 1;
    setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((unsigned short)port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (bind(ls, (struct sockaddr *)&sa, sizeof sa) < 0 || listen(ls, 4096) < 0) {
        perror("ssl-floor: bind/listen");
        return 1;
    }
    signal(SIGPIPE, SIG_IGN);
    struct sigaction sg = {.sa_handler = on_sig};
    sigaction(SIGTERM, &sg, NULL);
    sigaction(SIGINT, &sg, NULL);
    int ep = epoll_create1(0);
    struct epoll_event le = {.events = EPOLLIN, .data.ptr = NULL};
    epoll_ctl(ep, EPOLL_CTL_ADD, ls, &le);
    struct epoll_event evs[256];

    /* the baseline: everything set up, nothing accepted yet */
    struct mallinfo2 mi0 = mallinfo2();
    long rss0 = rss_kib();
    size_t heap0 = mi0.uordblks;
    printf("ssl-floor: listening on 127.0.0.1:%d, rss_before_kib=%ld, waiting for %ld\n", port,
           rss0, conns);
    fflush(stdout);
    snapshot("before");

    double t0 = 0, t_idle = 0;
    int reported = 0;
    while (!g_stop) {
        int timeout = 200;
        if (!reported && n_idle == conns) {
            if (t_idle == 0)
                t_idle = now_ms();
            double left = t_idle + o_settle_ms - now_ms();
            if (left <= 0) {
                report("idle", rss0, heap0, conns, t_idle - t0);
                snapshot("idle");
                if (o_trim) {
                    malloc_trim(0);
                    report("trim", rss0, heap0, conns, t_idle - t0);
                }
                reported = 1;
            } else {
                timeout = (int)left + 1;
            }
        } else if (!reported) {
            t_idle = 0;
        }
        if (reported && n_open == 0)
            break;
        int k = epoll_wait(ep, evs, 256, timeout);
        for (int i = 0; i < k; i++) {
            struct conn *c = evs[i].data.ptr;
            if (!c) { /* the listener */
                int fd;
                while ((fd = accept4(ls, NULL, NULL, SOCK_NONBLOCK)) >= 0) {
                    if (n_accepted++ == 0)
                        t0 = now_ms();
                    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                    long long h = heap_now();
                    c = calloc(1, sizeof *c);
                    c->fd = fd;
                    c->ssl = SSL_new(ctx);
                    if (o_membio)
                        SSL_set_bio(c->ssl, BIO_new(BIO_s_mem()), BIO_new(BIO_s_mem()));
                    else
                        SSL_set_fd(c->ssl, fd);
                    SSL_set_accept_state(c->ssl);
                    ph_bytes[P_NEW] += heap_now() - h;
                    n_open++;
                    struct epoll_event e = {.events = EPOLLIN, .data.ptr = c};
                    epoll_ctl(ep, EPOLL_CTL_ADD, fd, &e);
                }
                continue;
            }
            if (o_membio) {
                if ((evs[i].events & EPOLLOUT) && flush_out(c) < 0) {
                    drop(c);
                    continue;
                }
                if ((evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) && fill_in(c) < 0) {
                    drop(c);
                    continue;
                }
            }
            unsigned want = drive(c);
            if (!want)
                drop(c);
            else
                arm(ep, c, want);
        }
    }
    if (!reported)
        report("incomplete", rss0, heap0, n_idle, 0);
    SSL_CTX_free(ctx);
    return 0;
}
