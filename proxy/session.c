/*
 * Session: one client connection, its pinned backend connection, and the HTTP exchange
 * between them.
 *
 * The two directions run independently (full duplex): the request side reads the client's
 * head, forwards it and then relays the request body; the response side reads the backend's
 * head, rewrites authentication offers, forwards it and relays the response body. A backend
 * may answer (401, 413) before the request body has ended, and an RPC_IN_DATA body flows for
 * hours with no response at all, so neither side waits for the other except at the start of
 * the next exchange.
 *
 * Bodies are moved between evbuffers with evbuffer_remove_buffer(): chains change owner, no
 * byte is copied by exshim. Each direction stops reading when the other side's output buffer
 * passes the high-water mark and resumes when it has drained to half of it.
 */
#include "proxy/session.h"

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>
#include <sys/uio.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/bufferevent_struct.h>
#include <event2/event.h>
#include <event2/util.h>
#include <openssl/ssl.h>

#include "proxy/authn.h"
#include "proxy/climit.h"
#include "proxy/frame.h"
#include "proxy/guard.h"
#include "proxy/http1.h"
#include "proxy/log.h"
#include "proxy/target.h"
#include "proxy/tls.h"
#include "proxy/worker.h"

enum req_state {
    REQ_HEAD, /* waiting for (the rest of) a request head */
    REQ_BODY, /* relaying the request body to the backend */
    REQ_DONE, /* request fully forwarded; next head waits for the response to finish */
};

enum resp_state {
    RESP_NONE,       /* no exchange in progress */
    RESP_CONNECTING, /* backend connection being opened; head held in s->pending */
    RESP_HEAD,       /* waiting for the backend's response head */
    RESP_BODY,       /* relaying the response body */
    RESP_CLOSING,    /* flushing the last bytes to the client, then close */
};

struct session {
    struct worker *w;
    uint64_t id;
    size_t listener;
    bool tls;
    struct bufferevent *client;
    struct bufferevent *backend;
    /* Plain sockets are read by exshim itself (see plain_fill); NULL on TLS sides, whose
     * bufferevent reads. */
    struct event *client_rd, *backend_rd;
    struct evbuffer *pending; /* forwarded head kept until the backend connects */
    struct event *timer;
    struct authn *auth;

    char peer[INET6_ADDRSTRLEN + 8]; /* "ip:port" for logs */
    char peer_ip[INET6_ADDRSTRLEN];

    /* pinned backend */
    const struct conf_backend *be;
    size_t be_index;
    size_t server; /* index in be->servers */
    size_t tries;  /* servers tried for the current connect */
    bool be_connected;

    const struct conf_route *route; /* route of the current (or last) exchange */
    enum req_state req;
    enum resp_state resp;
    struct frame req_body, resp_body;
    bool req_conn_auth;   /* the request being forwarded carries NTLM/Negotiate credentials */
    size_t resp_prefix;   /* bytes of rewritten response head in front of the backend's input */
    bool req_head_method; /* request was HEAD */
    bool client_keep_alive;
    bool close_after; /* close the client once this response is delivered */
    int client_minor;
    bool paused_client, paused_backend;
    bool reading_head_started;   /* some bytes of a new head have arrived */
    bool hard_timer;             /* the timer is a deadline: activity does not extend it */
    bool handshake_done;         /* TLS handshake finished (always true on plain listeners) */
    bool client_eof;             /* the client half-closed: answer what is in flight, then close */
    bool be_authed;              /* NTLM/Negotiate credentials went over this backend connection */
    bool climit_held;            /* counted in the worker's per-address table */
    struct timeval head_start;   /* first byte of the current head (accept for a new connection) */
    bool closed;                 /* session_close ran; memory is freed from the event loop */
    struct session *next, *prev; /* worker's list, for draining */

    /* access log of the current exchange */
    char method[32];
    char path[192];
    const char *scheme;
    int status;
    uint64_t bytes_in, bytes_out;
    struct timeval t_start;
    struct timeval last_activity;
    unsigned timeout_ms;
};

static void client_read_cb(struct bufferevent *bev, void *arg);
static void client_write_cb(struct bufferevent *bev, void *arg);
static void client_event_cb(struct bufferevent *bev, short what, void *arg);
static void backend_read_cb(struct bufferevent *bev, void *arg);
static void backend_write_cb(struct bufferevent *bev, void *arg);
static void backend_event_cb(struct bufferevent *bev, short what, void *arg);
static void session_close(struct session *s);
static void process_client(struct session *s);
static unsigned header_timeout(const struct session *s);
static void flush_plain(struct session *s);

/* ---- helpers ------------------------------------------------------------------------- */

static void
touch(struct session *s)
{
    event_base_gettimeofday_cached(s->w->base, &s->last_activity);
}

/*
 * Reading. libevent 2.1's evbuffer_read() reads at most 4 KiB per call, so a socket
 * bufferevent costs an epoll round, an ioctl and a callback per 4 KiB of a stream. On plain
 * sockets exshim reads itself: its own read event, and readv() straight into space reserved in
 * the bufferevent's input evbuffer (no extra copy), up to the session's buffer cap per call.
 * Writes stay with the bufferevent. TLS sides keep bufferevent_openssl, which reads whole
 * records.
 */
static void
read_on(struct bufferevent *bev, struct event *rd)
{
    if (rd != NULL)
        event_add(rd, NULL);
    else
        bufferevent_enable(bev, EV_READ);
}

static void
read_off(struct bufferevent *bev, struct event *rd)
{
    if (rd != NULL)
        event_del(rd);
    else
        bufferevent_disable(bev, EV_READ);
}

enum fill_result { FILL_DATA, FILL_AGAIN, FILL_FULL, FILL_EOF, FILL_ERROR };

/* Reads what the socket has, up to cap bytes buffered in total. */
static enum fill_result
plain_fill(struct bufferevent *bev, size_t cap)
{
    struct evbuffer *in = bufferevent_get_input(bev);
    size_t have = evbuffer_get_length(in);
    if (have >= cap)
        return FILL_FULL;
    size_t want = cap - have;
    struct evbuffer_iovec v[2];
    /* A bufferevent keeps the end of its input frozen except while it reads itself. */
    evbuffer_unfreeze(in, 0);
    int nv = evbuffer_reserve_space(in, (ev_ssize_t)want, v, 2);
    if (nv <= 0) {
        evbuffer_freeze(in, 0);
        return FILL_ERROR;
    }
    struct iovec iov[2];
    size_t total = 0;
    for (int i = 0; i < nv; i++) {
        size_t l = v[i].iov_len < want - total ? v[i].iov_len : want - total;
        iov[i].iov_base = v[i].iov_base;
        iov[i].iov_len = l;
        total += l;
    }
    ssize_t r;
    do
        r = readv(bufferevent_getfd(bev), iov, nv);
    while (r < 0 && errno == EINTR);
    if (r <= 0) {
        int err = errno;
        evbuffer_commit_space(in, v, 0);
        evbuffer_freeze(in, 0);
        if (r == 0)
            return FILL_EOF;
        errno = err;
        return err == EAGAIN || err == EWOULDBLOCK ? FILL_AGAIN : FILL_ERROR;
    }
    size_t left = (size_t)r;
    int used = 0;
    for (int i = 0; i < nv && left > 0; i++, used++) {
        v[i].iov_len = iov[i].iov_len < left ? iov[i].iov_len : left;
        left -= v[i].iov_len;
    }
    evbuffer_commit_space(in, v, used);
    evbuffer_freeze(in, 0);
    return FILL_DATA;
}

static size_t
buffer_cap(const struct session *s)
{
    const struct conf *c = s->w->conf;
    return c->max_header_bytes > c->high_water ? c->max_header_bytes : c->high_water;
}

static void
plain_read_cb(evutil_socket_t fd, short what, void *arg, bool backend)
{
    struct session *s = arg;
    struct bufferevent *bev = backend ? s->backend : s->client;
    enum fill_result r = plain_fill(bev, buffer_cap(s));
    switch (r) {
    case FILL_AGAIN:
        return;
    case FILL_DATA:
    case FILL_FULL:
        if (backend)
            backend_read_cb(bev, s); /* ends with flush_plain */
        else
            client_read_cb(bev, s);
        /* Still full: nothing consumed, so stop reading until the session resumes it. */
        if (r == FILL_FULL && !s->closed && bev == (backend ? s->backend : s->client) &&
            evbuffer_get_length(bufferevent_get_input(bev)) >= buffer_cap(s))
            read_off(bev, backend ? s->backend_rd : s->client_rd);
        return;
    case FILL_EOF:
    case FILL_ERROR:
        if (backend)
            backend_event_cb(
                bev, BEV_EVENT_READING | (r == FILL_EOF ? BEV_EVENT_EOF : BEV_EVENT_ERROR), s);
        else
            client_event_cb(
                bev, BEV_EVENT_READING | (r == FILL_EOF ? BEV_EVENT_EOF : BEV_EVENT_ERROR), s);
        return;
    }
}

static void
client_plain_read_cb(evutil_socket_t fd, short what, void *arg)
{
    plain_read_cb(fd, what, arg, false);
}

static void
backend_plain_read_cb(evutil_socket_t fd, short what, void *arg)
{
    plain_read_cb(fd, what, arg, true);
}

/* Frees the backend connection and its read event (the event first: it uses the fd). */
static void
free_backend_conn(struct session *s)
{
    s->be_authed = false;
    if (s->backend_rd != NULL) {
        event_free(s->backend_rd);
        s->backend_rd = NULL;
    }
    if (s->backend != NULL) {
        bufferevent_free(s->backend);
        s->backend = NULL;
    }
}

/* A silence timer: every read or write on the session pushes it back (idle, body). */
static void
arm_timer(struct session *s, unsigned ms)
{
    s->timeout_ms = ms;
    s->hard_timer = false;
    touch(s);
    struct timeval tv = {.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000};
    evtimer_add(s->timer, &tv);
}

/* A deadline ms after `from`: nothing that arrives meanwhile moves it (header, handshake). */
static void
arm_deadline(struct session *s, const struct timeval *from, unsigned ms)
{
    struct timeval now, spent;
    event_base_gettimeofday_cached(s->w->base, &now);
    timersub(&now, from, &spent);
    long used = spent.tv_sec < 0 ? 0 : (long)spent.tv_sec * 1000 + spent.tv_usec / 1000;
    unsigned left = used >= (long)ms ? 1 : ms - (unsigned)used;
    s->timeout_ms = ms;
    s->hard_timer = true;
    struct timeval tv = {.tv_sec = left / 1000, .tv_usec = (left % 1000) * 1000};
    evtimer_add(s->timer, &tv);
}

/* The first byte of a request head has arrived: header_timeout runs from now to its end. */
static void
head_begins(struct session *s)
{
    s->reading_head_started = true;
    event_base_gettimeofday_cached(s->w->base, &s->head_start);
    arm_deadline(s, &s->head_start, header_timeout(s));
}

static unsigned
header_timeout(const struct session *s)
{
    const struct conf_route *r = s->route;
    if (r != NULL)
        return r->header_timeout_ms;
    /* Before the first request no route is known: the shortest header timeout applies. */
    unsigned best = 30000;
    const struct conf *c = s->w->conf;
    for (size_t i = 0; i < c->nroutes; i++)
        if (i == 0 || c->routes[i].header_timeout_ms < best)
            best = c->routes[i].header_timeout_ms;
    return best;
}

static void
log_access(struct session *s)
{
    if (!s->w->conf->access_log || s->method[0] == '\0')
        return;
    struct timeval now, d;
    event_base_gettimeofday_cached(s->w->base, &now);
    timersub(&now, &s->t_start, &d);
    const struct conf_server *sv = s->be ? &s->be->servers[s->server] : NULL;
    log_info("access sid=%" PRIu64 " client=%s method=%s path=%s status=%d in=%" PRIu64
             " out=%" PRIu64 " ms=%ld backend=%s%s%s%s%s auth=%s",
             s->id, s->peer, s->method, s->path, s->status, s->bytes_in, s->bytes_out,
             (long)(d.tv_sec * 1000 + d.tv_usec / 1000), s->be ? s->be->name : "-", sv ? "/" : "",
             sv ? sv->host : "", sv ? ":" : "", sv ? sv->port : "", s->scheme ? s->scheme : "-");
    s->method[0] = '\0';
}

/* Flush what the client has been sent, then close. Reads stop on both sides. */
static void
close_after_flush(struct session *s)
{
    s->resp = RESP_CLOSING;
    s->req = REQ_DONE;
    read_off(s->client, s->client_rd);
    free_backend_conn(s);
    if (evbuffer_get_length(bufferevent_get_output(s->client)) == 0) {
        session_close(s);
        return;
    }
    bufferevent_setwatermark(s->client, EV_WRITE, 0, 0);
    bufferevent_setcb(s->client, NULL, client_write_cb, client_event_cb, s);
    bufferevent_enable(s->client, EV_WRITE);
}

/*
 * Answers the client from exshim itself (errors, local 401/404). The connection closes after
 * it unless keep is set and the request had no body left to discard.
 */
static void
local_response(struct session *s, int status, const char *reason, const char *body,
               struct evbuffer *extra_headers, bool keep)
{
    struct evbuffer *out = bufferevent_get_output(s->client);
    size_t blen = strlen(body);
    size_t before = evbuffer_get_length(out);
    evbuffer_add_printf(out, "HTTP/1.1 %d %s\r\n", status, reason);
    if (extra_headers != NULL)
        evbuffer_add_buffer(out, extra_headers);
    evbuffer_add_printf(out,
                        "Server: exshim\r\nContent-Type: text/plain; charset=utf-8\r\n"
                        "Content-Length: %zu\r\n%s\r\n%s",
                        blen, keep ? "" : "Connection: close\r\n", body);
    s->status = status;
    s->bytes_out += evbuffer_get_length(out) - before;
    log_access(s);
    if (keep) {
        s->resp = RESP_NONE;
        s->req = REQ_HEAD;
        s->reading_head_started = false;
        arm_timer(s, s->route ? s->route->idle_timeout_ms : header_timeout(s));
        return;
    }
    close_after_flush(s);
}

static void local_error(struct session *s, int status, const char *reason, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void
local_error(struct session *s, int status, const char *reason, const char *fmt, ...)
{
    char body[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(body, sizeof(body) - 1, fmt, ap);
    va_end(ap);
    if (n < 0)
        n = 0;
    if ((size_t)n > sizeof(body) - 2)
        n = sizeof(body) - 2;
    body[n] = '\n';
    body[n + 1] = '\0';
    local_response(s, status, reason, body, NULL, false);
}

static const char *
reason_for(int status)
{
    switch (status) {
    case 400:
        return "Bad Request";
    case 404:
        return "Not Found";
    case 408:
        return "Request Timeout";
    case 431:
        return "Request Header Fields Too Large";
    case 501:
        return "Not Implemented";
    case 502:
        return "Bad Gateway";
    case 504:
        return "Gateway Timeout";
    case 505:
        return "HTTP Version Not Supported";
    }
    return "Error";
}

/* ---- teardown ------------------------------------------------------------------------ */

static void
session_free_cb(evutil_socket_t fd, short what, void *arg)
{
    free(arg);
}

/*
 * The only teardown path. Connections, timer and auth state go at once so no callback can
 * fire again; the struct itself is freed from the event loop, so callers up the stack may
 * still test s->closed.
 */
static void
session_close(struct session *s)
{
    if (s->closed)
        return;
    s->closed = true;
    log_access(s);
    free_backend_conn(s);
    if (s->client_rd != NULL)
        event_free(s->client_rd);
    s->client_rd = NULL;
    if (s->client != NULL)
        bufferevent_free(s->client);
    s->client = NULL;
    if (s->pending != NULL)
        evbuffer_free(s->pending);
    if (s->timer != NULL)
        event_free(s->timer);
    authn_free(s->auth);
    struct worker *w = s->w;
    if (s->climit_held)
        climit_release(w->climit, s->peer_ip);
    if (s->prev != NULL)
        s->prev->next = s->next;
    else
        w->sessions = s->next;
    if (s->next != NULL)
        s->next->prev = s->prev;
    if (event_base_once(w->base, -1, EV_TIMEOUT, session_free_cb, s, NULL) != 0)
        free(s); /* nothing can reach it any more */
    worker_session_gone(w);
}

static void
drop_backend(struct session *s)
{
    free_backend_conn(s);
    s->be_connected = false;
    authn_backend_lost(s->auth);
}

/* ---- timers -------------------------------------------------------------------------- */

static void
timer_cb(evutil_socket_t fd, short what, void *arg)
{
    struct session *s = arg;
    struct timeval now, idle;
    event_base_gettimeofday_cached(s->w->base, &now);
    timersub(&now, &s->last_activity, &idle);
    unsigned long idle_ms = (unsigned long)idle.tv_sec * 1000 + (unsigned long)idle.tv_usec / 1000;
    if (!s->hard_timer && idle_ms + 5 < s->timeout_ms) {
        /* There was activity since the timer was set: wait for the rest of the period. */
        unsigned left = s->timeout_ms - (unsigned)idle_ms;
        struct timeval tv = {.tv_sec = left / 1000, .tv_usec = (left % 1000) * 1000};
        evtimer_add(s->timer, &tv);
        return;
    }
    if (!s->handshake_done) {
        log_info("sid=%" PRIu64 " client %s: TLS handshake not complete after %u ms, closing",
                 s->id, s->peer, s->timeout_ms);
        session_close(s);
        return;
    }
    if (s->resp == RESP_NONE && s->req == REQ_HEAD) {
        if (s->reading_head_started) {
            log_info("sid=%" PRIu64 " client %s: request head not complete after %u ms, closing",
                     s->id, s->peer, s->timeout_ms);
            local_error(s, 408, "Request Timeout", "request head not received in time");
        } else {
            log_debug("sid=%" PRIu64 " idle keep-alive connection closed", s->id);
            session_close(s);
        }
        return;
    }
    if (s->resp == RESP_CONNECTING || (s->resp == RESP_HEAD && s->status == 0)) {
        const struct conf_server *sv = &s->be->servers[s->server];
        log_warnx("sid=%" PRIu64 " backend %s (%s:%s) sent no response in %u ms", s->id,
                  s->be->name, sv->host, sv->port, s->timeout_ms);
        local_error(s, 504, "Gateway Timeout",
                    "exshim: backend %s (%s:%s) did not answer within %u seconds", s->be->name,
                    sv->host, sv->port, s->timeout_ms / 1000);
        return;
    }
    log_info("sid=%" PRIu64 " no traffic for %u ms inside an exchange, closing", s->id,
             s->timeout_ms);
    session_close(s);
}

/*
 * Speculative writes on plain sockets. A socket bufferevent writes only when its write event
 * fires: one epoll_ctl to arm it, a loop turn, the write, one epoll_ctl to disarm it. exshim
 * writes what the session just queued at once, at the end of the callback that queued it; when
 * everything went out, the write event armed meanwhile is removed again, which the epoll
 * changelist folds into no system call. What the socket does not take is left to the
 * bufferevent as before. (bufferevent_openssl already writes at once.)
 */
static bool
flush_one(struct bufferevent *bev)
{
    struct evbuffer *out = bufferevent_get_output(bev);
    if (evbuffer_get_length(out) == 0)
        return false;
    /* A bufferevent keeps the start of its output frozen except while it writes itself. */
    evbuffer_unfreeze(out, 1);
    evbuffer_write(out, bufferevent_getfd(bev));
    evbuffer_freeze(out, 1);
    if (evbuffer_get_length(out) == 0)
        event_del(&bev->ev_write);
    return true;
}

static void
flush_plain(struct session *s)
{
    size_t hw = s->w->conf->high_water;
    if (s->closed)
        return;
    if (s->backend != NULL && s->backend_rd != NULL && s->be_connected && flush_one(s->backend) &&
        s->paused_client && evbuffer_get_length(bufferevent_get_output(s->backend)) <= hw / 2)
        backend_write_cb(s->backend, s); /* the write callback would have resumed the client */
    if (s->closed)
        return;
    if (s->client != NULL && s->client_rd != NULL && flush_one(s->client)) {
        size_t left = evbuffer_get_length(bufferevent_get_output(s->client));
        if ((s->resp == RESP_CLOSING && left == 0) || (s->paused_backend && left <= hw / 2))
            client_write_cb(s->client, s);
    }
}

/* ---- backend connection -------------------------------------------------------------- */

/* libevent reads and writes at most 16 KiB per callback by default; a stream then costs one
 * callback (and one relay pass) per 16 KiB. Let one pass move up to the high-water mark. */
static void
tune_bev(struct bufferevent *bev, size_t hw)
{
    bufferevent_set_max_single_read(bev, hw);
    bufferevent_set_max_single_write(bev, hw);
}

/* Rendezvous hashing over the pool's servers keyed by the client address: deterministic, so
 * two exshim instances choose alike, and a client keeps its server while it stays up. */
static size_t
choose_server(const struct conf_backend *be, const char *key)
{
    size_t best = 0;
    uint64_t best_w = 0;
    for (size_t i = 0; i < be->nservers; i++) {
        uint64_t h = 1469598103934665603ULL;
        for (const char *p = key; *p; p++)
            h = (h ^ (unsigned char)*p) * 1099511628211ULL;
        for (const char *p = be->servers[i].host; *p; p++)
            h = (h ^ (unsigned char)*p) * 1099511628211ULL;
        for (const char *p = be->servers[i].port; *p; p++)
            h = (h ^ (unsigned char)*p) * 1099511628211ULL;
        h ^= h >> 33;
        h *= 0xff51afd7ed558ccdULL;
        h ^= h >> 33;
        if (i == 0 || h > best_w) {
            best_w = h;
            best = i;
        }
    }
    return best;
}

static int
backend_connect(struct session *s)
{
    const struct conf_server *sv = &s->be->servers[s->server];
    struct backend_rt *rt = &s->w->backends[s->be_index];
    struct bufferevent *bev = NULL;
    (void)sv;

    if (rt->tls != NULL) {
        const char *sni = s->be->sni ? s->be->sni : sv->host;
        SSL *ssl = tlsctx_ssl_client(rt->tls, sni, s->be->verify);
        if (ssl == NULL)
            return -1;
        bev = bufferevent_openssl_socket_new(s->w->base, -1, ssl, BUFFEREVENT_SSL_CONNECTING,
                                             BEV_OPT_CLOSE_ON_FREE);
        if (bev != NULL)
            bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
    } else {
        bev = bufferevent_socket_new(s->w->base, -1, BEV_OPT_CLOSE_ON_FREE);
    }
    if (bev == NULL)
        return -1;
    s->backend = bev;
    s->be_connected = false;
    bufferevent_setcb(bev, backend_read_cb, backend_write_cb, backend_event_cb, s);
    struct timeval ct = {.tv_sec = s->be->connect_timeout_ms / 1000,
                         .tv_usec = (s->be->connect_timeout_ms % 1000) * 1000};
    bufferevent_set_timeouts(bev, NULL, &ct);
    bufferevent_setwatermark(bev, EV_READ, 0, buffer_cap(s));
    tune_bev(bev, s->w->conf->high_water);
    /* Addresses were resolved at start-up: no blocking name lookup on the event loop. */
    if (bufferevent_socket_connect(bev, (struct sockaddr *)&rt->addr[s->server],
                                   (int)rt->addrlen[s->server]) != 0) {
        return -1;
    }
    return 0;
}

static void
backend_connected(struct session *s)
{
    struct bufferevent *bev = s->backend;
    evutil_socket_t fd = bufferevent_getfd(bev);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (s->be->tcp_keepalive)
        setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one));
    bufferevent_set_timeouts(bev, NULL, NULL);
    s->be_connected = true;
    s->tries = 0;
    SSL *ssl = bufferevent_openssl_get_ssl(bev);
    if (ssl != NULL) {
        unsigned char h[32];
        if (tlsctx_peer_hash(ssl, h) == 0)
            authn_set_backend_cert(s->auth, h);
    }
    if (ssl == NULL) {
        s->backend_rd = event_new(s->w->base, fd, EV_READ | EV_PERSIST, backend_plain_read_cb, s);
        if (s->backend_rd == NULL) {
            session_close(s);
            return;
        }
    }
    bufferevent_enable(bev, EV_WRITE);
    read_on(bev, s->backend_rd);
    if (s->resp == RESP_CONNECTING) {
        bufferevent_write_buffer(bev, s->pending);
        s->be_authed |= s->req_conn_auth;
        s->resp = RESP_HEAD;
        if (s->req == REQ_BODY)
            read_on(s->client, s->client_rd);
        process_client(s);
    }
}

/* ---- request side -------------------------------------------------------------------- */

/* Header arrays for one parse, sized by max_headers: a worker handles one head at a time, and
 * requests and responses get their own so a response head may still be in use while the next
 * request is parsed. Allocated once per process. */
static struct h1_header *
header_scratch(const struct session *s, bool response, size_t *cap_out)
{
    static struct h1_header *arr[2];
    static size_t cap;
    size_t want = s->w->conf->max_headers;
    if (cap < want) {
        for (int i = 0; i < 2; i++) {
            struct h1_header *n = realloc(arr[i], want * sizeof(*n));
            if (n == NULL)
                return NULL;
            arr[i] = n;
        }
        cap = want;
    }
    *cap_out = want;
    return arr[response ? 1 : 0];
}

/* A buffer for the normalised request-target: never longer than the raw one, which lies
 * inside a head of at most max_header_bytes. */
static char *
target_scratch(const struct session *s, size_t *cap_out)
{
    static char *buf;
    static size_t cap;
    size_t want = s->w->conf->max_header_bytes;
    if (cap < want) {
        char *n = realloc(buf, want);
        if (n == NULL)
            return NULL;
        buf = n;
        cap = want;
    }
    *cap_out = cap;
    return buf;
}

/* Is name one of the headers listed in a Connection header of h? Framing headers and Host are
 * never dropped, whatever Connection says. Every token is looked at: there is no cap. */
static bool
listed_in_connection(const struct h1_head *h, struct h1_slice name)
{
    if (h1_slice_eq(name, "Content-Length") || h1_slice_eq(name, "Transfer-Encoding") ||
        h1_slice_eq(name, "Host"))
        return false;
    for (size_t i = 0; i < h->nheaders; i++) {
        if (!h1_slice_eq(h->headers[i].name, "Connection"))
            continue;
        const char *p = h->headers[i].value.p, *end = p + h->headers[i].value.len;
        while (p < end) {
            while (p < end && (*p == ' ' || *p == '\t' || *p == ','))
                p++;
            const char *st = p;
            while (p < end && *p != ',' && *p != ' ' && *p != '\t')
                p++;
            if ((size_t)(p - st) == name.len && name.len > 0 &&
                strncasecmp(st, name.p, name.len) == 0)
                return true;
        }
    }
    return false;
}

static bool
is_hop_by_hop(const struct h1_head *h, struct h1_slice name)
{
    static const char *const hop[] = {"Connection", "Keep-Alive", "Proxy-Connection", "TE",
                                      "Upgrade"};
    for (size_t i = 0; i < sizeof(hop) / sizeof(hop[0]); i++)
        if (h1_slice_eq(name, hop[i]))
            return true;
    return listed_in_connection(h, name);
}

static void
copy_slice(char *dst, size_t cap, struct h1_slice s)
{
    size_t n = s.len < cap - 1 ? s.len : cap - 1;
    memcpy(dst, s.p, n);
    dst[n] = '\0';
}

static bool
is_conn_auth_scheme(const char *scheme)
{
    return scheme != NULL && (strcmp(scheme, "NTLM") == 0 || strcmp(scheme, "Negotiate") == 0);
}

/*
 * Builds the head sent to the backend into out: the request line (with the normalised target
 * when it differs from the raw one, origin-form always), the client's header lines byte for
 * byte and in order, the Authorization line (the bridge's when it translates) in the place of
 * the client's, then exshim's X-Forwarded-* lines. Returns false when the request was answered
 * locally (auth challenge or refusal).
 */
static bool
build_request_head(struct session *s, const struct h1_head *h, const struct target *t,
                   struct evbuffer *out)
{
    const struct h1_header *authz = NULL, *host = NULL;
    for (size_t i = 0; i < h->nheaders; i++) {
        const struct h1_header *x = &h->headers[i];
        if (h1_slice_eq(x->name, "Host"))
            host = x;
        if (!h1_slice_eq(x->name, "Authorization"))
            continue;
        if (authz != NULL) {
            log_info("sid=%" PRIu64 " client %s: rejected request: several Authorization headers",
                     s->id, s->peer);
            local_error(s, 400, "Bad Request", "exshim: several Authorization headers");
            return false;
        }
        authz = x;
    }

    struct evbuffer *authline = evbuffer_new(), *local = evbuffer_new();
    if (authline == NULL || local == NULL) {
        if (authline != NULL)
            evbuffer_free(authline);
        if (local != NULL)
            evbuffer_free(local);
        session_close(s);
        return false;
    }
    const char *why = NULL;
    enum authn_verdict v =
        authn_request(s->auth, s->route, authz, authline, local, &s->scheme, &why);
    if (v == AUTHN_LOCAL_401) {
        local_response(s, 401, "Unauthorized", "exshim: authentication required\n", local,
                       h->body == H1_BODY_NONE);
        evbuffer_free(local);
        evbuffer_free(authline);
        return false;
    }
    evbuffer_free(local);
    if (v == AUTHN_LOCAL_400) {
        evbuffer_free(authline);
        local_error(s, 400, "Bad Request", "exshim: %s", why ? why : "bad credentials");
        return false;
    }
    s->req_conn_auth = authz != NULL && is_conn_auth_scheme(s->scheme);

    if (t->changed || t->absolute) {
        evbuffer_add(out, h->method.p, h->method.len);
        evbuffer_add(out, " ", 1);
        evbuffer_add(out, t->path, t->path_len);
        if (t->query != NULL) {
            evbuffer_add(out, "?", 1);
            evbuffer_add(out, t->query, t->query_len);
        }
    } else {
        /* request line byte for byte */
        evbuffer_add(out, h->method.p, (size_t)(h->target.p + h->target.len - h->method.p));
    }
    evbuffer_add_printf(out, " HTTP/1.%d\r\n", h->version_minor);
    for (size_t i = 0; i < h->nheaders; i++) {
        const struct h1_header *x = &h->headers[i];
        if (is_hop_by_hop(h, x->name))
            continue;
        if (h1_slice_eq(x->name, "X-Forwarded-For") || h1_slice_eq(x->name, "X-Forwarded-Proto") ||
            h1_slice_eq(x->name, "X-Forwarded-Host"))
            continue; /* client copies are not trusted; ours follow */
        if (x == authz) {
            evbuffer_add_buffer(out, authline);
            continue;
        }
        evbuffer_add(out, x->line.p, x->line.len);
        evbuffer_add(out, "\r\n", 2);
    }
    evbuffer_free(authline);

    evbuffer_add_printf(out, "X-Forwarded-For: %s\r\nX-Forwarded-Proto: %s\r\n", s->peer_ip,
                        s->tls ? "https" : "http");
    if (host != NULL) {
        evbuffer_add(out, "X-Forwarded-Host: ", 18);
        evbuffer_add(out, host->value.p, host->value.len);
        evbuffer_add(out, "\r\n", 2);
    }
    /* HTTP/1.0 defaults to close; the pinned backend connection must stay open. */
    if (h->version_minor == 0)
        evbuffer_add(out, "Connection: keep-alive\r\n", 24);
    evbuffer_add(out, "\r\n", 2);
    return true;
}

/* Resets the access-log record for a new exchange whose head is head_len bytes. */
static void
begin_exchange(struct session *s, size_t head_len)
{
    event_base_gettimeofday_cached(s->w->base, &s->t_start);
    s->status = 0;
    s->scheme = NULL;
    s->bytes_in = head_len;
    s->bytes_out = 0;
    snprintf(s->method, sizeof(s->method), "-");
    snprintf(s->path, sizeof(s->path), "-");
}

/* Refuses the request at the front of the client's input: logged once, answered, closed. */
static void
refuse_request(struct session *s, int status, const char *why)
{
    /* Log where the request was cut, never its content. */
    log_info("sid=%" PRIu64 " client %s: rejected request: %s", s->id, s->peer, why);
    local_error(s, status, reason_for(status), "exshim: %s", why);
}

/* Does route r publish Exchange's remote PowerShell vdir by name? Only then may /powershell
 * pass the guard. */
static bool
publishes_powershell(const struct conf_route *r)
{
    return r != NULL && !r->is_default && strncasecmp(r->path, "/powershell", 11) == 0 &&
           (r->path[11] == '\0' || r->path[11] == '/');
}

/*
 * Starts an exchange from a complete request head at the front of the client's input: parse,
 * normalise the target, route, guard, check the body bytes already here, build and forward the
 * head (or queue it while the backend connects).
 */
static void
start_request(struct session *s, size_t head_len)
{
    struct evbuffer *in = bufferevent_get_input(s->client);
    const char *buf = (const char *)evbuffer_pullup(in, (ev_ssize_t)head_len);
    size_t maxh = 0, tcap = 0;
    struct h1_header *hdrs = header_scratch(s, false, &maxh);
    char *tbuf = target_scratch(s, &tcap);
    struct h1_head h;
    struct target t;
    int status = 400;
    const char *why = NULL;

    begin_exchange(s, head_len);
    if (hdrs == NULL || tbuf == NULL || buf == NULL) {
        session_close(s);
        return;
    }
    if (h1_parse_request(buf, head_len, &h, hdrs, maxh, &status, &why) != H1_OK) {
        refuse_request(s, status, why);
        return;
    }
    copy_slice(s->method, sizeof(s->method), h.method);
    enum target_policy pol =
        s->w->conf->target_policy == CONF_TARGET_NORMALIZE ? TARGET_NORMALIZE : TARGET_STRICT;
    if (target_normalize(h.target.p, h.target.len, pol, tbuf, tcap, &t, &why) != 0) {
        char reason[160];
        snprintf(reason, sizeof(reason), "request target refused: %s", why);
        refuse_request(s, 400, reason);
        return;
    }
    if (t.asterisk && !h1_slice_eq(h.method, "OPTIONS")) {
        refuse_request(s, 400, "'*' is a target for OPTIONS only");
        return;
    }
    const struct h1_header *host = h1_find(&h, "Host");
    if (t.absolute && host != NULL && !target_host_agrees(&t, host->value.p, host->value.len)) {
        refuse_request(s, 400, "absolute-form target names another host than Host");
        return;
    }
    struct h1_slice path = {t.path, t.path_len};
    copy_slice(s->path, sizeof(s->path), path);
    if (t.query != NULL && t.path_len + 1 < sizeof(s->path)) {
        size_t n = strlen(s->path);
        snprintf(s->path + n, sizeof(s->path) - n, "?%.*s", (int)t.query_len, t.query);
    }
    s->req_head_method = h1_slice_eq(h.method, "HEAD");
    s->client_keep_alive = h.keep_alive;
    s->client_minor = h.version_minor;

    const struct conf_route *r =
        t.asterisk ? NULL : conf_route_find(s->w->conf, t.path, t.path_len);
    if (r == NULL) {
        evbuffer_drain(in, head_len);
        s->route = NULL;
        local_response(s, 404, "Not Found", "exshim: no route for this path\n", NULL,
                       h.body == H1_BODY_NONE && h.keep_alive);
        return;
    }
    s->route = r;
    if (r->guard) {
        struct guard_input gi = {
            .path = t.path,
            .path_len = t.path_len,
            .query = t.query,
            .query_len = t.query_len,
            .headers = h.headers,
            .nheaders = h.nheaders,
            .powershell_published = publishes_powershell(r),
        };
        const struct guard_rule *rule = guard_check(&gi);
        if (rule != NULL) {
            log_warnx("sid=%" PRIu64 " client %s: guard %s (%s) refused %s %s: %s", s->id, s->peer,
                      rule->id, rule->cve, s->method, s->path, rule->summary);
            local_error(s, 403, "Forbidden", "exshim: refused by rule %s", rule->id);
            return;
        }
    }
    const struct conf_backend *be = &s->w->conf->backends[r->backend];

    /* Every body byte already received is checked before anything is forwarded: a malformed
     * request that arrived whole never reaches the backend. */
    frame_init(&s->req_body, &h);
    if (frame_check_ahead(&s->req_body, in, head_len, &why) != 0) {
        char reason[160];
        snprintf(reason, sizeof(reason), "bad chunked framing in request body: %s", why);
        refuse_request(s, 400, reason);
        return;
    }

    struct evbuffer *head = evbuffer_new();
    if (head == NULL) {
        session_close(s);
        return;
    }
    if (!build_request_head(s, &h, &t, head)) {
        evbuffer_free(head);
        if (!s->closed && s->resp != RESP_CLOSING)
            evbuffer_drain(in, head_len);
        return;
    }
    evbuffer_drain(in, head_len);

    s->req = s->req_body.done ? REQ_DONE : REQ_BODY;
    arm_timer(s, r->body_timeout_ms);

    /* A pinned connection to another pool cannot be reused: the new pool gets its own. */
    if (s->backend != NULL && s->be != be)
        drop_backend(s);
    if (s->backend != NULL && s->be_connected) {
        bufferevent_write_buffer(s->backend, head);
        s->be_authed |= s->req_conn_auth;
        evbuffer_free(head);
        s->resp = RESP_HEAD;
        return;
    }
    if (s->backend != NULL)
        drop_backend(s);
    s->be = be;
    s->be_index = r->backend;
    s->server = choose_server(be, s->peer_ip);
    s->tries = 1;
    if (s->pending != NULL)
        evbuffer_free(s->pending);
    s->pending = head;
    s->resp = RESP_CONNECTING;
    /* Body bytes stay in the client's input until the backend is connected. */
    read_off(s->client, s->client_rd);
    if (backend_connect(s) != 0) {
        const struct conf_server *sv = &be->servers[s->server];
        log_warnx("sid=%" PRIu64 " backend %s (%s:%s): cannot start connection", s->id, be->name,
                  sv->host, sv->port);
        local_error(s, 502, "Bad Gateway", "exshim: backend %s (%s:%s) is unreachable", be->name,
                    sv->host, sv->port);
    }
}

/* What one relay pass ended on. */
enum relay_result {
    RELAY_MORE, /* input exhausted, message not complete */
    RELAY_FULL, /* output above the high-water mark: pause the reading side */
    RELAY_DONE, /* message complete */
    RELAY_BAD,  /* framing error: *why says which */
};

/*
 * The relay proper, for either direction: moves whole evbuffer chains from in to out (no
 * copy), never past the message end, never a byte the framer has not validated, and never
 * past the high-water mark of out. The first *prefix bytes of in are a rewritten head placed
 * in front of the body (see process_backend); they go out with the body, in the same chain and
 * so in the same TLS record. On RELAY_BAD nothing of the bad element has been moved.
 */
static enum relay_result
relay_body(struct evbuffer *in, struct evbuffer *out, struct frame *b, size_t hw, size_t *prefix,
           uint64_t *count, const char **why)
{
    while ((!b->done || *prefix > 0) && evbuffer_get_length(in) > 0) {
        size_t outlen = evbuffer_get_length(out);
        if (outlen >= hw)
            return RELAY_FULL;
        size_t avail = evbuffer_get_length(in);
        if (avail > hw - outlen)
            avail = hw - outlen;
        size_t pre = *prefix < avail ? *prefix : avail;
        ssize_t take = b->done ? 0 : frame_take(b, in, pre, avail - pre, why);
        if (take < 0) {
            /* The validated bytes before the bad element still go, with the head. */
            return RELAY_BAD;
        }
        if (pre + (size_t)take == 0)
            break;
        evbuffer_remove_buffer(in, out, pre + (size_t)take);
        *prefix -= pre;
        *count += (uint64_t)take;
    }
    if (b->done && *prefix == 0)
        return RELAY_DONE;
    return evbuffer_get_length(out) >= hw ? RELAY_FULL : RELAY_MORE;
}

/* Moves request body bytes from the client to the backend, as far as framing and
 * backpressure allow. */
static void
relay_request_body(struct session *s)
{
    size_t hw = s->w->conf->high_water;
    size_t no_prefix = 0;
    const char *why = NULL;
    switch (relay_body(bufferevent_get_input(s->client), bufferevent_get_output(s->backend),
                       &s->req_body, hw, &no_prefix, &s->bytes_in, &why)) {
    case RELAY_DONE:
        s->req = REQ_DONE;
        break;
    case RELAY_FULL:
        /* Backpressure: stop reading the client until the backend drains to half. */
        read_off(s->client, s->client_rd);
        s->paused_client = true;
        bufferevent_setwatermark(s->backend, EV_WRITE, hw / 2, 0);
        break;
    case RELAY_BAD:
        log_info("sid=%" PRIu64 " client %s: bad chunked framing in request body (%s); closing "
                 "both connections",
                 s->id, s->peer, why);
        /* The backend has part of the body: its connection cannot be reused. */
        drop_backend(s);
        if (s->resp == RESP_HEAD && s->status == 0)
            local_error(s, 400, "Bad Request", "exshim: bad chunked framing in request body");
        else
            session_close(s);
        break;
    case RELAY_MORE:
        if (s->client_eof && evbuffer_get_length(bufferevent_get_input(s->client)) == 0) {
            log_info("sid=%" PRIu64 " client %s closed before its request body ended", s->id,
                     s->peer);
            session_close(s);
        }
        break;
    }
}

/* Everything the client sent is handled here, whatever the state. */
static void
process_client(struct session *s)
{
    struct evbuffer *in = bufferevent_get_input(s->client);
    size_t maxhead = s->w->conf->max_header_bytes;

    for (;;) {
        if (s->req == REQ_HEAD && s->resp == RESP_NONE) {
            size_t len = evbuffer_get_length(in);
            if (len == 0)
                return;
            if (!s->reading_head_started)
                head_begins(s);
            size_t look = len < maxhead ? len : maxhead;
            const char *p = (const char *)evbuffer_pullup(in, (ev_ssize_t)look);
            /* Tolerate the CRLF some clients send after a POST body (RFC 9112 2.2). */
            if (look >= 2 && p[0] == '\r' && p[1] == '\n') {
                evbuffer_drain(in, 2);
                continue;
            }
            if (p[0] == '\n') {
                begin_exchange(s, len);
                refuse_request(s, 400, "bare LF before the request line");
                return;
            }
            size_t head_len = h1_head_end(p, look);
            if (head_len == 0) {
                if (len >= maxhead) {
                    log_info("sid=%" PRIu64 " client %s: request head over %zu bytes", s->id,
                             s->peer, maxhead);
                    begin_exchange(s, len);
                    local_error(s, 431, "Request Header Fields Too Large",
                                "exshim: request head larger than %zu bytes", maxhead);
                }
                return;
            }
            start_request(s, head_len);
            s->reading_head_started = false;
            if (s->closed || s->resp == RESP_CLOSING)
                return;
            continue;
        }
        if (s->req == REQ_BODY && s->resp != RESP_CONNECTING && s->backend != NULL) {
            if (s->paused_client)
                return;
            relay_request_body(s);
            if (s->closed)
                return;
            if (s->req == REQ_DONE && s->resp == RESP_NONE) {
                /* The response was complete before the request body: the exchange ends now. */
                s->req = REQ_HEAD;
                s->reading_head_started = false;
                arm_timer(s, s->route->idle_timeout_ms);
                continue;
            }
            return;
        }
        return;
    }
}

/* ---- response side ------------------------------------------------------------------- */

static void
finish_exchange(struct session *s)
{
    log_access(s);
    if (s->close_after || (s->w->draining && s->req != REQ_BODY)) {
        close_after_flush(s);
        return;
    }
    if (s->req == REQ_BODY) {
        /* The backend answered before the request body ended: keep relaying it. */
        s->resp = RESP_NONE;
        return;
    }
    s->resp = RESP_NONE;
    s->req = REQ_HEAD;
    s->reading_head_started = false;
    arm_timer(s, s->route ? s->route->idle_timeout_ms : header_timeout(s));
    read_on(s->client, s->client_rd);
    process_client(s);
}

static bool
build_response_head(struct session *s, const struct h1_head *h, struct evbuffer *out)
{
    bool auth_called = false, auth_rewritten = false;

    /* status line byte for byte, our version */
    evbuffer_add_printf(out, "HTTP/1.1 %03d", h->status);
    if (h->reason.len > 0 || h->reason.p != NULL) {
        evbuffer_add(out, " ", 1);
        evbuffer_add(out, h->reason.p, h->reason.len);
    }
    evbuffer_add(out, "\r\n", 2);
    for (size_t i = 0; i < h->nheaders; i++) {
        const struct h1_header *x = &h->headers[i];
        if (is_hop_by_hop(h, x->name))
            continue;
        if (h1_slice_eq(x->name, "WWW-Authenticate")) {
            /* The rewritten offers take the place of the backend's first offer line. */
            if (!auth_called) {
                auth_called = true;
                auth_rewritten = authn_response(s->auth, s->route, h, out);
            }
            if (auth_rewritten)
                continue;
        }
        evbuffer_add(out, x->line.p, x->line.len);
        evbuffer_add(out, "\r\n", 2);
    }
    /* No offer line at all: a policy may still add offers, and a final status ends a
     * handshake in the bridge state. */
    if (!auth_called && h->status >= 200)
        authn_response(s->auth, s->route, h, out);
    if (h->status >= 200) {
        if (s->close_after)
            evbuffer_add(out, "Connection: close\r\n", 19);
        else if (s->client_minor == 0)
            evbuffer_add(out, "Connection: keep-alive\r\n", 24);
    }
    evbuffer_add(out, "\r\n", 2);
    return true;
}

/* hw: the client output's high-water mark; the backend's close passes "no limit" so that what
 * it sent before closing is delivered. */
static void
relay_response_body(struct session *s, size_t hw)
{
    struct evbuffer *in = bufferevent_get_input(s->backend);
    const char *why = NULL;
    switch (relay_body(in, bufferevent_get_output(s->client), &s->resp_body, hw, &s->resp_prefix,
                       &s->bytes_out, &why)) {
    case RELAY_DONE:
        if (evbuffer_get_length(in) > 0) {
            log_warnx("sid=%" PRIu64 " backend %s sent %zu bytes after its response; "
                      "closing that connection",
                      s->id, s->be->name, evbuffer_get_length(in));
            s->close_after = true;
        }
        finish_exchange(s);
        break;
    case RELAY_FULL:
        read_off(s->backend, s->backend_rd);
        s->paused_backend = true;
        bufferevent_setwatermark(s->client, EV_WRITE, hw / 2, 0);
        break;
    case RELAY_BAD:
        log_warnx("sid=%" PRIu64 " backend %s: bad chunked framing in response (%s); closing "
                  "the client connection",
                  s->id, s->be->name, why);
        close_after_flush(s);
        break;
    case RELAY_MORE:
        break;
    }
}

static void
process_backend(struct session *s)
{
    struct evbuffer *in = bufferevent_get_input(s->backend);
    size_t maxhead = s->w->conf->max_header_bytes;

    while (s->resp == RESP_HEAD) {
        size_t len = evbuffer_get_length(in);
        if (len == 0)
            return;
        size_t look = len < maxhead ? len : maxhead;
        const char *p = (const char *)evbuffer_pullup(in, (ev_ssize_t)look);
        size_t head_len = h1_head_end(p, look);
        if (head_len == 0) {
            if (len >= maxhead) {
                log_warnx("sid=%" PRIu64 " backend %s: response head over %zu bytes", s->id,
                          s->be->name, maxhead);
                local_error(s, 502, "Bad Gateway",
                            "exshim: backend %s sent a response head larger than %zu bytes",
                            s->be->name, maxhead);
            }
            return;
        }
        size_t maxh = 0;
        struct h1_header *hdrs = header_scratch(s, true, &maxh);
        if (hdrs == NULL) {
            session_close(s);
            return;
        }
        struct h1_head h;
        int status;
        const char *why;
        if (h1_parse_response(p, head_len, s->req_head_method, &h, hdrs, maxh, &status, &why) !=
            H1_OK) {
            log_warnx("sid=%" PRIu64 " backend %s: invalid response: %s", s->id, s->be->name, why);
            local_error(s, 502, "Bad Gateway", "exshim: backend %s sent an invalid response (%s)",
                        s->be->name, why);
            return;
        }
        if (h.status == 101) {
            local_error(s, 502, "Bad Gateway", "exshim: backend %s switched protocols",
                        s->be->name);
            return;
        }
        s->status = h.status;
        frame_init(&s->resp_body, &h);
        if (h.status < 200) {
            /* 100 Continue and friends go out at once; the final response follows */
            struct evbuffer *out = bufferevent_get_output(s->client);
            size_t before = evbuffer_get_length(out);
            build_response_head(s, &h, out);
            s->bytes_out += evbuffer_get_length(out) - before;
            evbuffer_drain(in, head_len);
            continue;
        }
        /* What arrived with the head is checked before the head goes out: a response broken
         * from its first chunk line gets the client a 502, not half a message. */
        if (frame_check_ahead(&s->resp_body, in, head_len, &why) != 0) {
            log_warnx("sid=%" PRIu64 " backend %s: bad chunked framing in response (%s)", s->id,
                      s->be->name, why);
            local_error(s, 502, "Bad Gateway",
                        "exshim: backend %s sent a response with broken chunked framing",
                        s->be->name);
            return;
        }
        /* The backend will close: its connection cannot carry the next request. */
        s->close_after = s->client_eof || !s->client_keep_alive || !h.keep_alive || s->w->draining;
        /*
         * The rewritten head replaces the received one in front of the body: after the drain
         * it usually fits in the space the old head leaves in the same chain, so head and first
         * body bytes leave in one write (one TLS record) instead of two.
         */
        struct evbuffer *hb = evbuffer_new();
        if (hb == NULL) {
            session_close(s);
            return;
        }
        build_response_head(s, &h, hb);
        size_t nh = evbuffer_get_length(hb);
        evbuffer_drain(in, head_len);
        evbuffer_prepend(in, evbuffer_pullup(hb, -1), nh);
        evbuffer_free(hb);
        s->bytes_out += nh;
        s->resp_prefix = nh;
        s->resp = RESP_BODY;
    }
    if (s->resp == RESP_BODY && !s->paused_backend)
        relay_response_body(s, s->w->conf->high_water);
}

/* ---- callbacks ----------------------------------------------------------------------- */

static void
client_read_cb(struct bufferevent *bev, void *arg)
{
    struct session *s = arg;
    touch(s);
    process_client(s);
    flush_plain(s);
}

static void
client_write_cb(struct bufferevent *bev, void *arg)
{
    struct session *s = arg;
    if (s->resp == RESP_CLOSING) {
        if (evbuffer_get_length(bufferevent_get_output(bev)) == 0)
            session_close(s);
        return;
    }
    if (s->paused_backend) {
        /* The client drained below half the mark: resume reading the backend. */
        s->paused_backend = false;
        bufferevent_setwatermark(bev, EV_WRITE, 0, 0);
        if (s->backend != NULL) {
            read_on(s->backend, s->backend_rd);
            touch(s);
            process_backend(s);
            if (s->closed)
                return;
        }
    }
}

/*
 * The client shut down its sending side (EOF). A request it sent whole still gets its response,
 * as IIS would give it, and the connection closes after that; with nothing in flight, or a
 * request body cut short, the session ends. Returns true when the session goes on.
 */
static bool
client_half_closed(struct session *s)
{
    bool in_flight = s->resp == RESP_CONNECTING || s->resp == RESP_HEAD || s->resp == RESP_BODY ||
                     s->resp == RESP_CLOSING;
    if (!in_flight)
        return false;
    if (s->req == REQ_BODY && evbuffer_get_length(bufferevent_get_input(s->client)) == 0)
        return false; /* the body can never be completed */
    s->client_eof = true;
    s->close_after = true;
    read_off(s->client, s->client_rd);
    return true;
}

static void
client_event_cb(struct bufferevent *bev, short what, void *arg)
{
    struct session *s = arg;
    if (what & BEV_EVENT_CONNECTED) {
        /* TLS handshake complete: the head deadline from accept takes over. */
        s->handshake_done = true;
        if (s->req == REQ_HEAD && s->resp == RESP_NONE)
            arm_deadline(s, &s->head_start, header_timeout(s));
        return;
    }
    if ((what & BEV_EVENT_EOF) && !(what & BEV_EVENT_ERROR) && client_half_closed(s))
        return;
    if (what & BEV_EVENT_ERROR) {
        unsigned long e;
        char buf[256];
        bool any = false;
        while ((e = bufferevent_get_openssl_error(bev)) != 0) {
            tlsctx_err_string(e, buf, sizeof(buf));
            if (!any)
                log_info("sid=%" PRIu64 " client %s: TLS error: %s", s->id, s->peer, buf);
            any = true;
        }
        if (!any && errno != 0 && errno != ECONNRESET && errno != EPIPE)
            log_debug("sid=%" PRIu64 " client %s: %s", s->id, s->peer, strerror(errno));
    }
    /* EOF or error from the client: the exchange is over; the pinned backend goes with it. */
    session_close(s);
}

static void
backend_read_cb(struct bufferevent *bev, void *arg)
{
    struct session *s = arg;
    touch(s);
    if (s->resp == RESP_NONE || s->resp == RESP_CLOSING) {
        if (s->resp == RESP_NONE && evbuffer_get_length(bufferevent_get_input(bev)) > 0 &&
            s->req != REQ_BODY) {
            log_warnx("sid=%" PRIu64 " backend %s sent data with no request outstanding; "
                      "dropping that connection",
                      s->id, s->be->name);
            drop_backend(s);
        }
        return;
    }
    process_backend(s);
    flush_plain(s);
}

static void
backend_write_cb(struct bufferevent *bev, void *arg)
{
    struct session *s = arg;
    if (s->paused_client) {
        s->paused_client = false;
        bufferevent_setwatermark(bev, EV_WRITE, 0, 0);
        read_on(s->client, s->client_rd);
        touch(s);
        process_client(s);
    }
}

static void
backend_event_cb(struct bufferevent *bev, short what, void *arg)
{
    struct session *s = arg;
    const struct conf_server *sv = &s->be->servers[s->server];

    if (what & BEV_EVENT_CONNECTED) {
        backend_connected(s);
        return;
    }
    if (!s->be_connected) {
        /* Connection failed: the head is still in s->pending, so another server may take it. */
        char why[256];
        int err = EVUTIL_SOCKET_ERROR();
        SSL *ssl = bufferevent_openssl_get_ssl(bev);
        unsigned long e = ssl ? bufferevent_get_openssl_error(bev) : 0;
        if (what & BEV_EVENT_TIMEOUT)
            snprintf(why, sizeof(why), "connect timed out after %u ms", s->be->connect_timeout_ms);
        else if (e != 0)
            tlsctx_err_string(e, why, sizeof(why));
        else
            snprintf(why, sizeof(why), "%s",
                     err ? evutil_socket_error_to_string(err) : "connection closed");
        log_warnx("sid=%" PRIu64 " backend %s (%s:%s): %s", s->id, s->be->name, sv->host, sv->port,
                  why);
        free_backend_conn(s);
        if (s->resp == RESP_CONNECTING && s->tries < s->be->nservers) {
            s->server = (s->server + 1) % s->be->nservers;
            s->tries++;
            if (backend_connect(s) == 0)
                return;
        }
        if (s->resp == RESP_CONNECTING) {
            local_error(s, 502, "Bad Gateway", "exshim: backend %s (%s:%s) is unreachable: %s",
                        s->be->name, sv->host, sv->port, why);
            return;
        }
        session_close(s);
        return;
    }

    if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) {
        /* Bytes that arrived before the close still belong to the response: deliver all of
         * them, past the high-water mark (the input holds at most the buffer cap). */
        if (s->resp == RESP_HEAD)
            process_backend(s);
        if (!s->closed && s->backend != NULL && s->resp == RESP_BODY)
            relay_response_body(s, SIZE_MAX / 2);
        if (s->closed || s->backend == NULL)
            return;
        if (s->resp == RESP_BODY && s->resp_body.kind == H1_BODY_EOF) {
            /* Close-delimited response: complete now. */
            s->close_after = true;
            drop_backend(s);
            finish_exchange(s);
            return;
        }
        if (s->resp == RESP_HEAD && s->status == 0) {
            log_warnx("sid=%" PRIu64 " backend %s (%s:%s) closed the connection without "
                      "answering",
                      s->id, s->be->name, sv->host, sv->port);
            drop_backend(s);
            local_error(s, 502, "Bad Gateway",
                        "exshim: backend %s (%s:%s) closed the connection without answering",
                        s->be->name, sv->host, sv->port);
            return;
        }
        if (s->resp == RESP_NONE && s->req != REQ_BODY) {
            if (s->be_authed) {
                /* NTLM authenticated that TCP connection, not the client: a fresh backend
                 * connection would be anonymous while the client believes it is logged on.
                 * Close the client too, as IIS's close would reach it directly; it logs on
                 * again on its next connection. */
                log_info("sid=%" PRIu64 " backend %s closed an authenticated connection; "
                         "closing the client connection so it authenticates again",
                         s->id, s->be->name);
                drop_backend(s);
                close_after_flush(s);
                return;
            }
            /* An idle anonymous connection closed: the next request opens a new one. */
            log_debug("sid=%" PRIu64 " backend %s closed idle connection", s->id, s->be->name);
            drop_backend(s);
            return;
        }
        /* Mid-exchange: the client cannot get a complete message any more. */
        log_info("sid=%" PRIu64 " backend %s closed the connection mid-exchange", s->id,
                 s->be->name);
        drop_backend(s);
        close_after_flush(s);
    }
}

/* ---- accept -------------------------------------------------------------------------- */

void
session_accept(struct worker *w, size_t li, int fd, const struct sockaddr *sa, int salen)
{
    char ip[INET6_ADDRSTRLEN] = "?";
    int port = 0;
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        inet_ntop(AF_INET, &in->sin_addr, ip, sizeof(ip));
        port = ntohs(in->sin_port);
    } else if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
        inet_ntop(AF_INET6, &in6->sin6_addr, ip, sizeof(ip));
        port = ntohs(in6->sin6_port);
    }
    if (w->climit != NULL && !climit_acquire(w->climit, ip)) {
        /* One line for the first refusal and then one per thousand, so a flood cannot
         * flood the log as well. */
        if (w->refused_limit++ % 1000 == 0)
            log_warnx("client %s:%d refused: max_connections_per_client (%zu) reached "
                      "(%" PRIu64 " refused so far)",
                      ip, port, w->conf->max_connections_per_client, w->refused_limit);
        close(fd);
        return;
    }
    struct session *s = calloc(1, sizeof(*s));
    if (s == NULL) {
        if (w->climit != NULL)
            climit_release(w->climit, ip);
        close(fd);
        return;
    }
    s->climit_held = w->climit != NULL;
    s->w = w;
    s->id = ++w->next_session_id * 256 + (uint64_t)w->index;
    s->listener = li;
    s->tls = w->listener_tls[li] != NULL;
    s->resp = RESP_NONE;
    s->req = REQ_HEAD;
    w->nsessions++;
    s->next = w->sessions;
    if (w->sessions != NULL)
        w->sessions->prev = s;
    w->sessions = s;

    snprintf(s->peer_ip, sizeof(s->peer_ip), "%s", ip);
    snprintf(s->peer, sizeof(s->peer), "%s:%d", ip, port);

    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    evutil_make_socket_nonblocking(fd);

    s->timer = evtimer_new(w->base, timer_cb, s);
    s->auth = authn_new(s->id);
    if (s->timer == NULL || s->auth == NULL) {
        close(fd);
        session_close(s);
        return;
    }
    if (s->tls) {
        SSL *ssl = tlsctx_ssl_server(w->listener_tls[li]);
        if (ssl == NULL) {
            close(fd);
            session_close(s);
            return;
        }
        s->client = bufferevent_openssl_socket_new(w->base, fd, ssl, BUFFEREVENT_SSL_ACCEPTING,
                                                   BEV_OPT_CLOSE_ON_FREE);
        if (s->client != NULL)
            bufferevent_openssl_set_allow_dirty_shutdown(s->client, 1);
    } else {
        s->client = bufferevent_socket_new(w->base, fd, BEV_OPT_CLOSE_ON_FREE);
    }
    if (s->client == NULL) {
        session_close(s);
        return;
    }
    bufferevent_setcb(s->client, client_read_cb, client_write_cb, client_event_cb, s);
    if (!s->tls) {
        s->client_rd = event_new(w->base, fd, EV_READ | EV_PERSIST, client_plain_read_cb, s);
        if (s->client_rd == NULL) {
            session_close(s);
            return;
        }
    }
    /* Bound what one client can queue while its previous exchange is still running. */
    bufferevent_setwatermark(s->client, EV_READ, 0, buffer_cap(s));
    tune_bev(s->client, w->conf->high_water);
    bufferevent_enable(s->client, EV_WRITE);
    read_on(s->client, s->client_rd);
    /* A new connection must finish its TLS handshake within handshake_timeout and send its
     * first head within header_timeout, both counted from accept. */
    s->reading_head_started = true;
    s->handshake_done = !s->tls;
    event_base_gettimeofday_cached(w->base, &s->head_start);
    unsigned first = header_timeout(s);
    if (s->tls && w->conf->handshake_timeout_ms < first)
        first = w->conf->handshake_timeout_ms;
    arm_deadline(s, &s->head_start, first);
}

void
session_drain_all(struct worker *w)
{
    /* Idle connections go now; busy ones close when their exchange ends (finish_exchange
     * checks w->draining); the worker's grace timer bounds the rest. */
    struct session *s = w->sessions, *next;
    for (; s != NULL; s = next) {
        next = s->next;
        if (s->req == REQ_HEAD && s->resp == RESP_NONE && !s->reading_head_started)
            session_close(s);
    }
}
