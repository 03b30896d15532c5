/*
 * Session: one client connection, its pinned backend connection, and the HTTP exchange
 * between them. This file holds the state machine, the body relays, the timer's expiry and the one
 * teardown path; the jobs it drives live in the session_*.c files (see session_int.h) and in
 * conn (socket and TLS I/O), admit, headers, relay and frame, upstream, reply, accesslog, authn.
 *
 * The two directions run independently (full duplex): the request side reads the client's
 * head, forwards it and relays the request body; the response side reads the backend's head,
 * rewrites authentication offers, forwards it and relays the response body. A backend may
 * answer (401, 413) before the request body has ended, and an RPC_IN_DATA body flows for hours
 * with no response at all, so neither side waits for the other except at the start of the next
 * exchange. Each direction stops reading when the other side's output passes the high-water
 * mark and resumes when it has drained to half of it.
 */
#include "proxy/session.h"

#include <arpa/inet.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "proxy/authn.h"
#include "proxy/climit.h"
#include "proxy/edgeauth.h"
#include "proxy/log.h"
#include "proxy/metrics.h"
#include "proxy/relay.h"
#include "proxy/session_int.h"
#include "proxy/tls.h"

/* A flush-then-close that the client does not read is cut after this long. */
#define CLOSE_FLUSH_MS 10000

void
log_access(struct session *s)
{
    struct timeval tv;
    now(s, &tv);
    if (s->edge_req)
        xlog_user(&s->xlog, edgeauth_user(s->edge));
    if (s->xlog.open)
        metrics_exchange(s->xlog.route, s->xlog.status, s->xlog.bytes_in, s->xlog.bytes_out);
    metrics_channel_close(&s->mchan);
    xlog_write(&s->xlog, conf_of(s)->access_log, s->id, s->peer, &tv);
}

/* ---- timers (the arming is in session_timer.c) ---------------------------------------- */

/* The first byte of a request head has arrived: header_timeout runs from now to its end. */
static void
head_begins(struct session *s)
{
    s->reading_head_started = true;
    now(s, &s->head_start);
    arm_deadline(s, &s->head_start, header_timeout(s));
}

/* ---- teardown and local answers -------------------------------------------------------- */

static void
session_free_cb(evutil_socket_t fd, short what, void *arg)
{
    free(arg);
}

/*
 * The only teardown path. Connections, timer and auth state go at once so no callback can fire
 * again; the struct itself is freed from the event loop, so callers up the stack may still
 * test s->closed.
 */
void
session_close(struct session *s)
{
    if (s->closed)
        return;
    s->closed = true;
    log_access(s);
    conn_free(s->backend);
    conn_free(s->client);
    s->backend = s->client = NULL;
    if (s->pending != NULL)
        evbuffer_free(s->pending);
    if (s->timer != NULL)
        event_free(s->timer);
    authn_free(s->auth);
    edgeauth_free(s->edge);
    if (s->edge_head != NULL)
        evbuffer_free(s->edge_head);
    if (s->edge_resend != NULL)
        evbuffer_free(s->edge_resend);
    const struct session_env *env = s->env;
    if (s->climit_held)
        climit_release(env->climit, s->peer_ip);
    metrics_client_close(s->li);
    if (s->prev != NULL)
        s->prev->next = s->next;
    else
        env->reg->head = s->next;
    if (s->next != NULL)
        s->next->prev = s->prev;
    env->reg->n--;
    if (event_base_once(env->base, -1, EV_TIMEOUT, session_free_cb, s, NULL) != 0)
        free(s); /* nothing can reach it any more */
    env->gone(env->gone_arg);
}

void
drop_backend(struct session *s)
{
    conn_free(s->backend);
    s->backend = NULL;
    s->be_authed = false;
    s->be_edge = false;
    s->edge_hold = s->edge_discard = false;
    authn_backend_lost(s->auth);
    edgeauth_backend_lost(s->edge);
}

/* Flush what the client has been sent, then close, within CLOSE_FLUSH_MS. */
void
close_after_flush(struct session *s)
{
    s->resp = RESP_CLOSING;
    s->req = REQ_DONE;
    conn_read(s->client, false);
    conn_free(s->backend);
    s->backend = NULL;
    s->be_authed = false;
    if (evbuffer_get_length(conn_output(s->client)) == 0) {
        session_close(s);
        return;
    }
    now(s, &s->head_start);
    arm_deadline(s, &s->head_start, CLOSE_FLUSH_MS);
    conn_notify_drained(s->client, 0);
}
static void
timer_cb(evutil_socket_t fd, short what, void *arg)
{
    struct session *s = arg;
    if (timer_early(s))
        return;
    if (!s->handshake_done) {
        metrics_tls_failed(s->li, "timeout");
        log_info("sid=%" PRIu64 " client %s: TLS handshake not complete after %u ms, closing",
                 s->id, s->peer, s->timeout_ms);
    } else if (s->resp == RESP_CLOSING) {
        log_info("sid=%" PRIu64 " client %s did not take its last response in %u ms, closing",
                 s->id, s->peer, s->timeout_ms);
    } else if (s->resp == RESP_NONE && s->req == REQ_HEAD && s->reading_head_started) {
        log_info("sid=%" PRIu64 " client %s: request head not complete after %u ms, closing", s->id,
                 s->peer, s->timeout_ms);
        local_error(s, 408, "request head not received in time");
        end_turn(s);
        return;
    } else if (s->resp == RESP_NONE && s->req == REQ_HEAD) {
        log_debug("sid=%" PRIu64 " idle keep-alive connection closed", s->id);
    } else if (s->resp == RESP_CONNECTING || (s->resp == RESP_HEAD && s->xlog.status == 0)) {
        const struct conf_server *sv = &s->be->servers[s->server];
        log_warnx("sid=%" PRIu64 " backend %s (%s:%s) sent no response in %u ms", s->id,
                  s->be->name, sv->host, sv->port, s->timeout_ms);
        local_error(s, 504, "exshim: backend %s (%s:%s) did not answer within %u seconds",
                    s->be->name, sv->host, sv->port, s->timeout_ms / 1000);
        end_turn(s);
        return;
    } else {
        log_info("sid=%" PRIu64 " no traffic for %u ms inside an exchange, closing", s->id,
                 s->timeout_ms);
    }
    session_close(s);
}

/* Moves request body bytes from the client to the backend, as framing and backpressure allow. */
static void
relay_request_body(struct session *s)
{
    size_t hw = conf_of(s)->high_water, no_prefix = 0;
    const char *why = NULL;
    switch (
        relay_body(s->client, s->backend, &s->req_body, hw, &no_prefix, &s->xlog.bytes_in, &why)) {
    case RELAY_DONE:
        if (s->req_body.spliced > 0)
            log_debug("sid=%" PRIu64 " request body: %" PRIu64 " bytes spliced", s->id,
                      s->req_body.spliced);
        s->req = REQ_DONE;
        break;
    case RELAY_FULL:
        /* Backpressure: stop reading the client until the backend drains to half. */
        conn_read(s->client, false);
        s->paused_client = true;
        conn_notify_drained(s->backend, hw / 2);
        break;
    case RELAY_BAD:
        log_info("sid=%" PRIu64 " client %s: bad chunked framing in request body (%s); closing "
                 "both connections",
                 s->id, s->peer, why);
        /* The backend has part of the body: its connection cannot be reused. */
        drop_backend(s);
        if (s->resp == RESP_HEAD && s->xlog.status == 0)
            local_error(s, 400, "exshim: bad chunked framing in request body");
        else
            session_close(s);
        break;
    case RELAY_MORE:
        if (s->client_eof && evbuffer_get_length(conn_input(s->client)) == 0) {
            log_info("sid=%" PRIu64 " client %s closed before its request body ended", s->id,
                     s->peer);
            session_close(s);
        }
        break;
    }
}

/* Everything the client sent is handled here, whatever the state. */
void
process_client(struct session *s)
{
    struct evbuffer *in = conn_input(s->client);
    size_t maxhead = conf_of(s)->max_header_bytes;

    while (!s->closed) {
        if (s->req == REQ_HEAD && s->resp == RESP_NONE) {
            size_t len = evbuffer_get_length(in);
            if (s->client_eof &&
                (len == 0 ||
                 h1_head_end((const char *)evbuffer_pullup(in, (ev_ssize_t)len), len) == 0)) {
                /* Half-closed: every complete request is answered; no more can come. */
                close_after_flush(s);
                return;
            }
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
                struct timeval tv;
                now(s, &tv);
                xlog_begin(&s->xlog, &tv, len);
                refuse_request(s, 400, "bare LF before the request line");
                return;
            }
            size_t head_len = h1_head_end(p, look);
            if (head_len == 0) {
                if (len >= maxhead) {
                    struct timeval tv;
                    now(s, &tv);
                    xlog_begin(&s->xlog, &tv, len);
                    log_info("sid=%" PRIu64 " client %s: request head over %zu bytes", s->id,
                             s->peer, maxhead);
                    local_error(s, 431, "exshim: request head larger than %zu bytes", maxhead);
                }
                return;
            }
            start_request(s, head_len);
            s->reading_head_started = false;
            if (s->closed || s->resp == RESP_CLOSING)
                return;
            continue;
        }
        if (s->req != REQ_BODY || s->resp == RESP_CONNECTING || s->backend == NULL ||
            s->paused_client || s->edge_hold)
            return;
        relay_request_body(s);
        if (s->closed || s->req != REQ_DONE || s->resp != RESP_NONE)
            return;
        /* The response was complete before the request body: the exchange ends now. */
        s->req = REQ_HEAD;
        s->reading_head_started = false;
        arm_timer(s, s->route->idle_timeout_ms);
    }
}

/* ---- response side ------------------------------------------------------------------- */

void
finish_exchange(struct session *s)
{
    log_access(s);
    /* A draining worker said Connection: close on every head it sent since it began to
     * drain (close_after); a response whose head promised keep-alive before that keeps its
     * connection, and the next response on it closes. */
    if (s->close_after) {
        close_after_flush(s);
        return;
    }
    s->resp = RESP_NONE;
    if (s->req == REQ_BODY)
        return; /* the backend answered before the request body ended: keep relaying it */
    s->req = REQ_HEAD;
    s->reading_head_started = false;
    arm_timer(s, s->route ? s->route->idle_timeout_ms : header_timeout(s));
    conn_read(s->client, true);
    process_client(s);
}

/* hw: the client output's high-water mark; the backend's close passes "no limit" so that what
 * it sent before closing is delivered. */
void
relay_response_body(struct session *s, size_t hw)
{
    struct evbuffer *in = conn_input(s->backend);
    const char *why = NULL;
    if (s->edge_discard) {
        edge_discard_body(s);
        return;
    }
    switch (relay_body(s->backend, s->client, &s->resp_body, hw, &s->resp_prefix,
                       &s->xlog.bytes_out, &why)) {
    case RELAY_DONE:
        if (s->resp_body.spliced > 0)
            log_debug("sid=%" PRIu64 " response body: %" PRIu64 " bytes spliced", s->id,
                      s->resp_body.spliced);
        if (evbuffer_get_length(in) > 0) {
            log_warnx("sid=%" PRIu64 " backend %s sent %zu bytes after its response; "
                      "closing that connection",
                      s->id, s->be->name, evbuffer_get_length(in));
            s->close_after = true;
        }
        finish_exchange(s);
        break;
    case RELAY_FULL:
        conn_read(s->backend, false);
        s->paused_backend = true;
        conn_notify_drained(s->client, hw / 2);
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

void
process_backend(struct session *s)
{
    while (s->resp == RESP_HEAD && !s->closed && s->backend != NULL)
        if (!take_response_head(s))
            return;
    if (s->resp == RESP_BODY && !s->paused_backend)
        relay_response_body(s, conf_of(s)->high_water);
}

/* ---- client connection --------------------------------------------------------------- */

static void
client_on_read(void *arg)
{
    struct session *s = arg;
    touch(s);
    process_client(s);
    end_turn(s);
}

static void
client_on_drained(void *arg)
{
    struct session *s = arg;
    if (s->resp == RESP_CLOSING) {
        session_close(s);
        return;
    }
    if (!s->paused_backend)
        return;
    /* The client drained below half the mark: resume reading the backend. */
    s->paused_backend = false;
    if (s->backend != NULL) {
        conn_read(s->backend, true);
        touch(s);
        process_backend(s);
    }
    end_turn(s);
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
    if (s->req == REQ_BODY && evbuffer_get_length(conn_input(s->client)) == 0)
        return false; /* the body can never be completed */
    /* Requests already received are still answered, in order; the response to the last one
     * carries Connection: close (take_response_head). */
    s->client_eof = true;
    conn_read(s->client, false);
    return true;
}

static void
client_on_event(void *arg, enum conn_event ev)
{
    struct session *s = arg;
    if (ev == CONN_CONNECTED) {
        /* TLS handshake complete: the head deadline from accept takes over. */
        s->handshake_done = true;
        metrics_tls_done(s->li, conn_tls_version(s->client));
        if (s->req == REQ_HEAD && s->resp == RESP_NONE)
            arm_deadline(s, &s->head_start, header_timeout(s));
        conn_read(s->client, true);
        return;
    }
    if (ev == CONN_EOF && client_half_closed(s)) {
        end_turn(s);
        return;
    }
    if (ev == CONN_EOF && evbuffer_get_length(conn_output(s->client)) > 0) {
        /* What was answered still goes out before the close. */
        close_after_flush(s);
        end_turn(s);
        return;
    }
    if (ev == CONN_ERROR && conn_is_tls(s->client))
        log_info("sid=%" PRIu64 " client %s: TLS error: %s", s->id, s->peer, conn_error(s->client));
    else if (ev == CONN_ERROR)
        log_debug("sid=%" PRIu64 " client %s: %s", s->id, s->peer, conn_error(s->client));
    if (s->tls && !s->handshake_done)
        metrics_tls_failed(s->li, ev == CONN_EOF ? "closed during" : conn_error(s->client));
    /* The exchange is over; the pinned backend goes with it. */
    session_close(s);
}

static const struct conn_cbs client_cbs = {client_on_read, client_on_drained, client_on_event};

/* ---- accept -------------------------------------------------------------------------- */

void
session_addr(const struct sockaddr *sa, char *ip, size_t iplen, int *port_out)
{
    snprintf(ip, iplen, "?");
    *port_out = 0;
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        inet_ntop(AF_INET, &in->sin_addr, ip, (socklen_t)iplen);
        *port_out = ntohs(in->sin_port);
    } else if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
        inet_ntop(AF_INET6, &in6->sin6_addr, ip, (socklen_t)iplen);
        *port_out = ntohs(in6->sin6_port);
    }
}

void
session_accept(const struct session_env *env, size_t li, int fd, const struct sockaddr *sa,
               int salen)
{
    char ip[INET6_ADDRSTRLEN];
    int port;
    session_addr(sa, ip, sizeof(ip), &port);
    if (env->climit != NULL && !climit_acquire(env->climit, ip)) {
        /* One line for the first refusal and then one per thousand, so a flood cannot flood
         * the log as well. */
        if (env->reg->refused_limit++ % 1000 == 0)
            log_warnx("client %s:%d refused: max_connections_per_client (%zu) reached "
                      "(%" PRIu64 " refused so far)",
                      ip, port, env->conf->max_connections_per_client, env->reg->refused_limit);
        close(fd);
        return;
    }
    struct session *s = calloc(1, sizeof(*s));
    if (s == NULL) {
        if (env->climit != NULL)
            climit_release(env->climit, ip);
        close(fd);
        return;
    }
    s->climit_held = env->climit != NULL;
    s->env = env;
    s->id = ++env->reg->next_id * 256 + (uint64_t)env->worker_index;
    s->tls = env->listener_tls[li] != NULL;
    s->resp = RESP_NONE;
    s->req = REQ_HEAD;
    env->reg->n++;
    s->li = li;
    metrics_client_open(li);
    s->next = env->reg->head;
    if (env->reg->head != NULL)
        env->reg->head->prev = s;
    env->reg->head = s;
    snprintf(s->peer_ip, sizeof(s->peer_ip), "%s", ip);
    snprintf(s->peer, sizeof(s->peer), "%s:%d", ip, port);

    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    evutil_make_socket_nonblocking(fd);
    s->timer = evtimer_new(env->base, timer_cb, s);
    s->auth = authn_new(s->id);
    struct ssl_st *ssl = NULL;
    if (s->timer == NULL || s->auth == NULL ||
        (s->tls && (ssl = tlsctx_ssl_server(env->listener_tls[li])) == NULL)) {
        close(fd);
        session_close(s);
        return;
    }
    s->client = conn_accept(env->base, fd, ssl, &client_cbs, s);
    if (s->client == NULL) {
        session_close(s);
        return;
    }
    /* Bound what one client can queue while its previous exchange is still running. */
    conn_set_read_cap(s->client, buffer_cap(s));
    /* A new connection must finish its TLS handshake within handshake_timeout and send its
     * first head within header_timeout, both counted from accept. */
    s->reading_head_started = true;
    s->handshake_done = !s->tls;
    now(s, &s->head_start);
    unsigned first = header_timeout(s);
    if (s->tls && env->conf->handshake_timeout_ms < first)
        first = env->conf->handshake_timeout_ms;
    arm_deadline(s, &s->head_start, first);
    if (!s->tls)
        conn_read(s->client, true);
}

void
session_drain_all(struct session_registry *reg)
{
    /* Idle connections go now; busy ones close when their exchange ends (finish_exchange reads
     * the draining flag); the worker's grace timer bounds the rest. */
    struct session *s = reg->head, *next;
    for (; s != NULL; s = next) {
        next = s->next;
        if (s->req == REQ_HEAD && s->resp == RESP_NONE && !s->reading_head_started)
            session_close(s);
    }
}
