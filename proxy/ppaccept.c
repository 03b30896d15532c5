/* PROXY protocol on accept. See ppaccept.h. */
#include "proxy/ppaccept.h"

#include <errno.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/util.h>

#include "proxy/log.h"
#include "proxy/proxyproto.h"
#include "proxy/session.h"

#define DEFAULT_DEADLINE_MS 5000u

enum pp_reason {
    PP_NOT_ALLOWED, /* TCP peer outside proxy_from */
    PP_MALFORMED,   /* bytes that are not a PROXY header we accept */
    PP_TIMEOUT,     /* no complete header within the deadline */
    PP_EOF,         /* closed (or reset) before a complete header */
    PP_BUSY,        /* too many connections waiting for their header */
    PP_NREASONS,
};

static const char *const reason_text[PP_NREASONS] = {
    "peer not in proxy_from", "malformed PROXY header", "no PROXY header in time",
    "closed before a complete PROXY header", "too many connections waiting for a PROXY header"};

/* One connection between accept and the end of its PROXY header. */
struct ppconn {
    struct ppaccept *pa;
    struct ppconn *prev, *next;
    struct event *ev;
    int fd;
    size_t li;
    struct sockaddr_storage peer;
    int peerlen;
    char peer_text[INET6_ADDRSTRLEN + 8]; /* "ip:port" of the TCP peer, for logs */
    struct timespec deadline;             /* CLOCK_MONOTONIC */
    size_t have;                          /* header bytes consumed from the socket */
    uint8_t buf[PROXYPROTO_MAX];
};

struct ppaccept {
    const struct session_env *env;
    void (*accepted)(void *arg);
    void *arg;
    struct ppconn *head;
    size_t n;
    uint64_t refused[PP_NREASONS];
};

static void
addr_text(const struct sockaddr *sa, char *out, size_t size)
{
    char ip[INET6_ADDRSTRLEN];
    int port;
    session_addr(sa, ip, sizeof(ip), &port);
    snprintf(out, size, "%s:%d", ip, port);
}

/* Logged once for the first refusal of each reason and then once per thousand, so a flood
 * cannot flood the log too; every refusal at debug level. */
static void
refuse_log(struct ppaccept *pa, size_t li, const char *peer, enum pp_reason r, const char *detail)
{
    const char *name = pa->env->conf->listeners[li].name;
    uint64_t k = ++pa->refused[r];
    if (k % 1000 == 1)
        log_warnx("listener %s: connection from %s refused: %s%s%s (%" PRIu64
                  " refused so far for this reason)",
                  name, peer, reason_text[r], detail != NULL ? ": " : "",
                  detail != NULL ? detail : "", k);
    else
        log_debug("listener %s: connection from %s refused: %s%s%s", name, peer, reason_text[r],
                  detail != NULL ? ": " : "", detail != NULL ? detail : "");
}

static void
conn_free(struct ppconn *c)
{
    struct ppaccept *pa = c->pa;
    if (c->prev != NULL)
        c->prev->next = c->next;
    else
        pa->head = c->next;
    if (c->next != NULL)
        c->next->prev = c->prev;
    pa->n--;
    if (c->ev != NULL)
        event_free(c->ev);
    free(c);
}

static void
conn_refuse(struct ppconn *c, enum pp_reason r, const char *detail)
{
    refuse_log(c->pa, c->li, c->peer_text, r, detail);
    close(c->fd);
    conn_free(c);
}

/* Waits for more bytes until the deadline (counted from accept, not from the last byte). */
static int
conn_wait(struct ppconn *c)
{
    struct timespec now;
    struct timeval left = {0, 0};
    clock_gettime(CLOCK_MONOTONIC, &now);
    int64_t ns = (int64_t)(c->deadline.tv_sec - now.tv_sec) * 1000000000 +
                 (c->deadline.tv_nsec - now.tv_nsec);
    if (ns > 0) {
        left.tv_sec = (time_t)(ns / 1000000000);
        left.tv_usec = (suseconds_t)(ns % 1000000000 / 1000);
    }
    return event_add(c->ev, &left);
}

static void
conn_done(struct ppconn *c, const struct proxyproto_header *h)
{
    struct ppaccept *pa = c->pa;
    const struct sockaddr *sa = (const struct sockaddr *)&c->peer;
    int salen = c->peerlen;
    size_t li = c->li;
    int fd = c->fd;
    char client[INET6_ADDRSTRLEN + 8];

    if (!h->local) {
        sa = (const struct sockaddr *)&h->src;
        salen = (int)h->srclen;
    }
    addr_text(sa, client, sizeof(client));
    if (log_level_enabled(CONF_LOG_DEBUG)) {
        /* The authority comes from the wire: printable ASCII only, and not too much of it. */
        char auth[64] = "";
        size_t n = h->authority.len < sizeof(auth) - 1 ? h->authority.len : sizeof(auth) - 1;
        for (size_t i = 0; i < n; i++) {
            uint8_t ch = h->authority.ptr[i];
            auth[i] = ch > 0x20 && ch < 0x7f ? (char)ch : '?';
        }
        auth[n] = '\0';
        log_debug("listener %s: PROXY v%d from %s: client %s%s%s%s",
                  pa->env->conf->listeners[li].name, h->version, c->peer_text, client,
                  h->local ? " (local)" : "", h->authority.ptr != NULL ? " authority=" : "", auth);
    }
    /* session_accept copies the address; sa may point into c, so accept before freeing. The
     * event is deleted first: the session owns the fd from here on. */
    event_del(c->ev);
    /* Also while the worker drains: this connection was accepted (a node drain still accepts)
     * and its client is waiting; the session closes after one exchange. */
    session_accept(pa->env, li, fd, sa, salen);
    conn_free(c);
    if (pa->accepted != NULL)
        pa->accepted(pa->arg);
}

static void
conn_read_cb(evutil_socket_t fd, short what, void *arg)
{
    struct ppconn *c = arg;
    struct proxyproto_header h;
    size_t consumed = 0;
    const char *why = NULL;
    char detail[96];

    if (what & EV_TIMEOUT) {
        snprintf(detail, sizeof(detail), "%zu bytes of a header", c->have);
        conn_refuse(c, PP_TIMEOUT, c->have > 0 ? detail : NULL);
        return;
    }
    /* Peek: the bytes after the header must stay in the socket for the session. */
    ssize_t r = recv(fd, c->buf + c->have, sizeof(c->buf) - c->have, MSG_PEEK);
    if (r < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
            if (conn_wait(c) != 0)
                conn_refuse(c, PP_EOF, "cannot wait for the header");
            return;
        }
        conn_refuse(c, PP_EOF, strerror(errno));
        return;
    }
    if (r == 0) {
        conn_refuse(c, PP_EOF, NULL);
        return;
    }
    size_t avail = c->have + (size_t)r;
    enum proxyproto_status st = proxyproto_parse(c->buf, avail, &h, &consumed, &why);
    /* Every byte of a valid prefix belongs to the header (see proxyproto.h), so what was
     * peeked can be taken; on OK exactly the rest of the header is. */
    size_t take = st == PROXYPROTO_OK ? consumed - c->have : (size_t)r;
    if (st == PROXYPROTO_ERROR) {
        conn_refuse(c, PP_MALFORMED, why);
        return;
    }
    ssize_t got = recv(fd, c->buf + c->have, take, 0);
    if (got < 0 || (size_t)got != take) {
        conn_refuse(c, PP_EOF, got < 0 ? strerror(errno) : "short read of peeked bytes");
        return;
    }
    c->have += take;
    if (st == PROXYPROTO_INCOMPLETE) {
        if (conn_wait(c) != 0)
            conn_refuse(c, PP_EOF, "cannot wait for the header");
        return;
    }
    /* The header's views point into c->buf; conn_done uses them before freeing c. */
    conn_done(c, &h);
}

struct ppaccept *
ppaccept_new(const struct session_env *env, void (*accepted)(void *arg), void *arg)
{
    struct ppaccept *pa = calloc(1, sizeof(*pa));
    if (pa == NULL)
        return NULL;
    pa->env = env;
    pa->accepted = accepted;
    pa->arg = arg;
    return pa;
}

void
ppaccept_free(struct ppaccept *pa)
{
    if (pa == NULL)
        return;
    while (pa->head != NULL) {
        close(pa->head->fd);
        conn_free(pa->head);
    }
    free(pa);
}

void
ppaccept_start(struct ppaccept *pa, size_t li, int fd, const struct sockaddr *sa, int salen)
{
    const struct conf *conf = pa->env->conf;
    const struct conf_listener *l = &conf->listeners[li];
    char peer[INET6_ADDRSTRLEN + 8];

    addr_text(sa, peer, sizeof(peer));
    if (!proxyproto_addr_allowed(sa, l->proxy_from, l->nproxy_from)) {
        refuse_log(pa, li, peer, PP_NOT_ALLOWED, NULL);
        close(fd);
        return;
    }
    /* Headers normally arrive with the first segment; this bounds the slow ones. */
    if (pa->n >= conf->max_connections) {
        refuse_log(pa, li, peer, PP_BUSY, NULL);
        close(fd);
        return;
    }
    struct ppconn *c = calloc(1, sizeof(*c));
    if (c == NULL || (size_t)salen > sizeof(c->peer)) {
        free(c);
        close(fd);
        return;
    }
    c->pa = pa;
    c->fd = fd;
    c->li = li;
    memcpy(&c->peer, sa, (size_t)salen);
    c->peerlen = salen;
    memcpy(c->peer_text, peer, sizeof(peer));
    c->next = pa->head;
    if (pa->head != NULL)
        pa->head->prev = c;
    pa->head = c;
    pa->n++;

    unsigned ms =
        conf->handshake_timeout_ms != 0 ? conf->handshake_timeout_ms : DEFAULT_DEADLINE_MS;
    struct timeval span = {.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000};
    clock_gettime(CLOCK_MONOTONIC, &c->deadline);
    c->deadline.tv_sec += ms / 1000;
    c->deadline.tv_nsec += (long)(ms % 1000) * 1000000;
    if (c->deadline.tv_nsec >= 1000000000) {
        c->deadline.tv_sec++;
        c->deadline.tv_nsec -= 1000000000;
    }
    evutil_make_socket_nonblocking(fd);
    c->ev = event_new(pa->env->base, fd, EV_READ, conn_read_cb, c);
    if (c->ev == NULL || event_add(c->ev, &span) != 0) {
        close(fd);
        conn_free(c);
    }
}
