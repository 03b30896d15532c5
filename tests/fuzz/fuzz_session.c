/*
 * Session-level libFuzzer target: the real proxy/session.c (with http1, authn, auth/ and conf/)
 * driven through its public API with random client and backend bytes.
 *
 * Set-up, once: a config with one plain listener, one plain backend on a loopback port this
 * harness listens on, and a few routes (pass-through, both bridges, an offer rewrite); an
 * event base; a struct worker filled as main.c and worker_run fill it (conf, base, listener_tls,
 * backends with resolved addresses).
 *
 * Input: a script of segments. Each segment starts with one header byte:
 *   bit 7      0 = bytes from the client, 1 = bytes from the backend
 *   bits 0..6  length; 127 means 127 + 16 * (next byte)
 *   length 0   an action on that side, given by the next byte A:
 *              A == 0: half-close its writing end (shutdown SHUT_WR);
 *              A > 0:  it stops reading what exshim sends it for the next A loop turns (a slow
 *                      reader; the sockets have small buffers, so exshim's backpressure runs)
 * A segment longer than what is left takes the rest.
 *
 * Per input: a socketpair for the client, one end handed to session_accept(); the backend
 * connection exshim opens is accepted from the loopback listener. Client segments are written
 * as they come; a backend segment waits (a bounded number of loop turns) for the proxy to
 * have sent something new on the backend connection, and is dropped when no backend
 * connection ever came. The loop runs with EVLOOP_NONBLOCK only, a bounded number of turns;
 * no sleeps, no wall clock. What comes out of either side is read and discarded. At the end
 * both peers close and the loop runs until the session is gone.
 *
 * Properties asserted: the session ends once both peers have closed (no session left in
 * w.nsessions), no event is left added on the base, and no socket is left open.
 * LeakSanitizer (on by default) checks the memory.
 */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/event.h>

#include "conf/conf.h"
#include "proxy/log.h"
#include "proxy/session.h"
#include "proxy/worker.h"

#define TURNS_PER_STEP 4     /* loop turns after each segment */
#define TURNS_WRITE_MAX 64   /* turns spent pushing one segment into a full socket */
#define TURNS_WAIT_BACKEND 8 /* turns a backend segment waits for the proxy to send */
#define TURNS_CLOSE_MAX 512  /* turns allowed for the session to end after both closed */
#define TURNS_SETTLE 8       /* turns for deferred frees (bufferevent finalizers, the session) */

static struct worker g_w;
static int g_listen_fd = -1;
static int g_baseline_sockets;
/* socket buffer size set on both connections, so a slow reader soon pushes back on exshim */
static const int small_buf = 4096;
static bool g_trace; /* FUZZ_SESSION_TRACE=1: print what each side receives (seed checks) */

/* One input's peers, as seen from the harness. */
struct peers {
    int cfd;        /* our end of the client socketpair; -1 once closed */
    int bfd;        /* the backend connection exshim opened, accepted by us; -1 if none */
    size_t from_be; /* bytes exshim sent on the current backend connection */
    size_t mark;    /* from_be when the last backend segment was written */
    int c_stall;    /* loop turns the client still does not read */
    int b_stall;    /* same for the backend */
};

static void
die(const char *what)
{
    fprintf(stderr, "fuzz_session: %s\n", what);
    abort();
}

/*
 * Counts open sockets (exshim's client and backend connections are sockets; pipes and files
 * belong to libFuzzer and the sanitizers' symbolizer, which come and go). With show set,
 * prints every descriptor with what it refers to.
 */
static int
count_sockets(bool show)
{
    DIR *d = opendir("/proc/self/fd");
    if (d == NULL)
        return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        char link[300], target[256];
        if (e->d_name[0] == '.')
            continue;
        snprintf(link, sizeof(link), "/proc/self/fd/%s", e->d_name);
        ssize_t t = readlink(link, target, sizeof(target) - 1);
        target[t > 0 ? t : 0] = '\0';
        if (strncmp(target, "socket:", 7) == 0)
            n++;
        if (show)
            fprintf(stderr, "fuzz_session: fd %s -> %s\n", e->d_name, target);
    }
    closedir(d);
    return n;
}

static void
drain_fd(int *fd, size_t *count, const char *who)
{
    char buf[16384];
    if (*fd < 0)
        return;
    for (int i = 0; i < 64; i++) {
        ssize_t r = read(*fd, buf, sizeof(buf));
        if (r > 0) {
            if (g_trace)
                fprintf(stderr, "--- %s got %zd bytes:\n%.*s\n", who, r, (int)r, buf);
            if (count != NULL)
                *count += (size_t)r;
            continue;
        }
        if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
            return;
        /* EOF or an error: exshim closed its end; keep ours until teardown closes it */
        return;
    }
}

/* Accepts a backend connection exshim opened; a newer one replaces the older. */
static void
accept_backend(struct peers *p)
{
    for (int i = 0; i < 4; i++) {
        int fd = accept4(g_listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0)
            return;
        if (p->bfd >= 0)
            close(p->bfd);
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small_buf, sizeof(small_buf));
        p->bfd = fd;
        p->from_be = 0;
        p->mark = 0;
    }
}

static void
turn(struct peers *p)
{
    event_base_loop(g_w.base, EVLOOP_NONBLOCK);
    accept_backend(p);
    if (p->c_stall > 0)
        p->c_stall--;
    else
        drain_fd(&p->cfd, NULL, "client");
    if (p->b_stall > 0)
        p->b_stall--;
    else
        drain_fd(&p->bfd, &p->from_be, "backend");
}

static void
turns(struct peers *p, int n)
{
    for (int i = 0; i < n; i++)
        turn(p);
}

/* Writes as much of [buf, buf+len) to *fd as the socket takes within a bounded number of turns. */
static void
write_some(struct peers *p, int *fd, const uint8_t *buf, size_t len)
{
    size_t off = 0;
    for (int i = 0; i < TURNS_WRITE_MAX && off < len && *fd >= 0; i++) {
        ssize_t w = write(*fd, buf + off, len - off);
        if (w > 0)
            off += (size_t)w;
        else if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
            return; /* EPIPE, ECONNRESET: the other side is gone */
        turn(p);
    }
    if (g_trace)
        fprintf(stderr, "--- wrote %zu of %zu bytes\n", off, len);
}

static void
setup_backend_listener(struct sockaddr_in *addr_out)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = 0};
    socklen_t alen = sizeof(a);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    g_listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (g_listen_fd < 0 || bind(g_listen_fd, (struct sockaddr *)&a, sizeof(a)) != 0 ||
        listen(g_listen_fd, 64) != 0 || getsockname(g_listen_fd, (struct sockaddr *)&a, &alen) != 0)
        die("backend listener");
    *addr_out = a;
}

static void
setup_conf(int port)
{
    char dir[] = "/tmp/fuzz_session.XXXXXX";
    char path[sizeof(dir) + 16], err[512];
    if (mkdtemp(dir) == NULL)
        die("mkdtemp");
    snprintf(path, sizeof(path), "%s/exshim.conf", dir);
    FILE *f = fopen(path, "w");
    if (f == NULL)
        die("config file");
    fprintf(f,
            "workers = 1;\n"
            "log_level = \"error\";\n"
            "access_log = false;\n"
            "max_header_bytes = 4096;\n"
            "max_headers = 32;\n"
            "high_water = 4096;\n"
            "listeners = ( { name = \"plain\"; address = \"127.0.0.1:0\"; } );\n"
            "backends = ( { name = \"be\"; servers = [ \"127.0.0.1:%d\" ]; } );\n"
            "routes = (\n"
            "  { path = \"/rpc\"; backend = \"be\"; },\n"
            "  { path = \"/mapi\"; backend = \"be\"; offer = [ \"NTLM\" ];\n"
            "    bridge = \"ntlm-to-negotiate\"; },\n"
            "  { path = \"/ews\"; backend = \"be\"; offer = [ \"Negotiate\" ];\n"
            "    bridge = \"negotiate-to-ntlm\"; },\n"
            "  { path = \"/owa\"; backend = \"be\"; offer = [ \"NTLM\", \"Negotiate\" ]; },\n"
            "  { path = \"default\"; backend = \"be\"; }\n"
            ");\n",
            port);
    if (fclose(f) != 0)
        die("config file");
    struct conf *c = NULL;
    if (conf_load(path, &c, err, sizeof(err)) != 0) {
        fprintf(stderr, "fuzz_session: %s\n", err);
        abort();
    }
    unlink(path);
    rmdir(dir);
    g_w.conf = c;
}

/* A session ended (the registry counts it already): nothing else to do here. */
static void
session_gone(void *arg)
{
    (void)arg;
}

int LLVMFuzzerInitialize(int *argc, char ***argv);

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    struct sockaddr_in be;
    signal(SIGPIPE, SIG_IGN);
    g_trace = getenv("FUZZ_SESSION_TRACE") != NULL;
    log_init(g_trace ? CONF_LOG_DEBUG : CONF_LOG_ERROR, NULL);
    setup_backend_listener(&be);
    setup_conf(ntohs(be.sin_port));

    const struct conf *c = g_w.conf;
    /* as main.c and worker_run prepare them */
    struct event_config *cfg = event_config_new();
    if (cfg == NULL)
        die("event_config_new");
    event_config_set_flag(cfg, EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST);
    g_w.base = event_base_new_with_config(cfg);
    event_config_free(cfg);
    g_w.listener_tls = calloc(c->nlisteners, sizeof(*g_w.listener_tls));
    g_w.backends = calloc(c->nbackends, sizeof(*g_w.backends));
    if (g_w.base == NULL || g_w.listener_tls == NULL || g_w.backends == NULL)
        die("out of memory");
    for (size_t i = 0; i < c->nbackends; i++) {
        struct backend_rt *rt = &g_w.backends[i];
        rt->addr = calloc(c->backends[i].nservers, sizeof(*rt->addr));
        rt->addrlen = calloc(c->backends[i].nservers, sizeof(*rt->addrlen));
        if (rt->addr == NULL || rt->addrlen == NULL)
            die("out of memory");
        for (size_t k = 0; k < c->backends[i].nservers; k++) {
            memcpy(&rt->addr[k], &be, sizeof(be));
            rt->addrlen[k] = sizeof(be);
        }
    }
    g_w.env = (struct session_env){
        .conf = c,
        .base = g_w.base,
        .listener_tls = g_w.listener_tls,
        .backends = g_w.backends,
        .draining = &g_w.draining,
        .reg = &g_w.reg,
        .gone = session_gone,
        .gone_arg = &g_w,
    };
    g_baseline_sockets = count_sockets(false);
    return 0;
}

static bool
settled(void)
{
    return event_base_get_num_events(g_w.base, EVENT_BASE_COUNT_ADDED) == 0 &&
           count_sockets(false) == g_baseline_sockets;
}

/* Waits (bounded) for exshim to send something new to the backend, then writes the segment. */
static void
backend_segment(struct peers *p, const uint8_t *seg, size_t len, int action)
{
    if (action > 0) {
        p->b_stall = action;
        return;
    }
    for (int i = 0; i < TURNS_WAIT_BACKEND && (p->bfd < 0 || p->from_be <= p->mark); i++)
        turn(p);
    if (p->bfd < 0)
        return; /* no backend connection was opened: nobody to answer */
    if (action == 0)
        shutdown(p->bfd, SHUT_WR);
    else
        write_some(p, &p->bfd, seg, len);
    p->mark = p->from_be;
}

static void
client_segment(struct peers *p, const uint8_t *seg, size_t len, int action)
{
    if (action > 0)
        p->c_stall = action;
    else if (action == 0)
        shutdown(p->cfd, SHUT_WR);
    else
        write_some(p, &p->cfd, seg, len);
}

/* Closes the backend connection we hold and any still waiting in the listener's backlog. */
static void
close_backend_side(struct peers *p)
{
    if (p->bfd >= 0)
        close(p->bfd);
    p->bfd = -1;
    for (int fd; (fd = accept4(g_listen_fd, NULL, NULL, SOCK_CLOEXEC)) >= 0;)
        close(fd);
}

/*
 * The client goes first, then the backend side; the session must then end within a bounded
 * number of turns and leave nothing behind.
 */
static void
teardown(struct peers *p)
{
    close(p->cfd);
    p->cfd = -1;
    turns(p, TURNS_PER_STEP);
    for (int i = 0; i < TURNS_CLOSE_MAX && g_w.reg.n > 0; i++) {
        close_backend_side(p);
        turn(p);
    }
    close_backend_side(p);
    if (g_w.reg.n != 0)
        die("session still open after both peers closed");
    if (g_w.reg.head != NULL)
        die("worker still lists a session");
    /* the session struct and bufferevents are freed (and their fds closed) from the loop */
    turns(p, TURNS_SETTLE);
    for (int i = 0; i < TURNS_SETTLE * 8 && !settled(); i++) {
        turn(p);
        close_backend_side(p);
    }
    close_backend_side(p);
    if (event_base_get_num_events(g_w.base, EVENT_BASE_COUNT_ADDED) != 0)
        die("events left added on the base after the session ended");
    if (count_sockets(false) != g_baseline_sockets) {
        fprintf(stderr, "fuzz_session: %d sockets open, %d at start\n", count_sockets(true),
                g_baseline_sockets);
        die("socket left open after the session ended");
    }
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int sv[2];
    struct peers p = {.cfd = -1, .bfd = -1};
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
        die("socketpair");
    fcntl(sv[0], F_SETFL, O_NONBLOCK);
    setsockopt(sv[1], SOL_SOCKET, SO_SNDBUF, &small_buf, sizeof(small_buf));
    p.cfd = sv[0];
    struct sockaddr_in peer = {.sin_family = AF_INET, .sin_port = htons(50000)};
    peer.sin_addr.s_addr = htonl(0x7f000001);
    session_accept(&g_w.env, 0, sv[1], (const struct sockaddr *)&peer, sizeof(peer));
    turns(&p, 1);

    size_t off = 0;
    while (off < size) {
        uint8_t h = data[off++];
        bool from_backend = (h & 0x80) != 0;
        size_t len = h & 0x7f;
        int action = -1; /* -1: a data segment */
        if (len == 0)
            action = off < size ? data[off++] : 0;
        if (len == 0x7f && off < size)
            len += 16 * (size_t)data[off++];
        if (len > size - off)
            len = size - off;
        if (from_backend)
            backend_segment(&p, data + off, len, action);
        else
            client_segment(&p, data + off, len, action);
        off += len;
        turns(&p, TURNS_PER_STEP);
    }

    teardown(&p);
    return 0;
}
