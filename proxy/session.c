/*
 * Session: one client connection, its pinned backend connection, and the HTTP exchange
 * between them. This file holds the state machine, the timers and the one teardown path; the
 * pieces it drives each live in their own file: conn (socket and TLS I/O), admit (what is
 * decided about a request head), headers (what is forwarded), relay and frame (body movement),
 * upstream (server choice and connect), reply (exshim's own answers), accesslog, authn.
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
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "proxy/accesslog.h"
#include "proxy/admit.h"
#include "proxy/authn.h"
#include "proxy/climit.h"
#include "proxy/conn.h"
#include "proxy/edgeauth.h"
#include "proxy/headers.h"
#include "proxy/log.h"
#include "proxy/metrics.h"
#include "proxy/relay.h"
#include "proxy/reply.h"
#include "proxy/tls.h"
#include "proxy/upstream.h"

/* A flush-then-close that the client does not read is cut after this long. */
#define CLOSE_FLUSH_MS 10000

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
    const struct session_env *env;
    uint64_t id;
    size_t li; /* the listener that accepted it */
    int mchan; /* metrics: kind of long-lived channel the current exchange is, 0 for none */
    bool tls;
    struct conn *client, *backend;
    struct evbuffer *pending; /* forwarded head kept until the backend connects */
    struct event *timer;
    struct authn *auth;
    char peer[INET6_ADDRSTRLEN + 8]; /* "ip:port" for logs */
    char peer_ip[INET6_ADDRSTRLEN];

    /* pinned backend */
    const struct conf_backend *be;
    size_t be_index, server;
    size_t tries;       /* servers tried for the current connect */
    bool be_authed;     /* NTLM/Negotiate credentials went over this backend connection */
    bool req_conn_auth; /* the request being forwarded carries such credentials */
    bool be_edge;       /* the edge authenticated this backend connection as s->edge's user */
    bool be_cert_ok;    /* be_cert holds the backend certificate's tls-server-end-point hash */
    unsigned char be_cert[32];

    /* auth = "edge" routes (proxy/edgeauth.h) */
    struct edgeauth *edge;        /* the user's credentials: made at the first edge request */
    struct evbuffer *edge_head;   /* the forwarded head, kept until the response: a resend */
    struct evbuffer *edge_resend; /* the Authorization line of the leg that follows a discard */
    bool edge_req;                /* the exchange in progress is on an edge route */
    bool edge_hold;               /* an NTLM NEGOTIATE leg is out: the body waits for the resend */
    bool edge_discard;            /* swallowing the body of that leg's 401 */

    const struct conf_route *route; /* route of the current (or last) exchange */
    enum req_state req;
    enum resp_state resp;
    struct frame req_body, resp_body;
    size_t resp_prefix; /* bytes of rewritten response head in front of the backend's input */
    bool req_head_method, client_keep_alive;
    bool close_after; /* close the client once this response is delivered */
    int client_minor;
    bool paused_client, paused_backend;
    bool reading_head_started; /* some bytes of a new head have arrived */
    bool hard_timer;           /* the timer is a deadline: activity does not extend it */
    bool handshake_done;       /* TLS handshake finished (always true on plain listeners) */
    bool client_eof;           /* the client half-closed: answer what is in flight, then close */
    bool climit_held;          /* counted in the per-address table */
    bool closed;               /* session_close ran; memory is freed from the event loop */
    struct timeval head_start; /* first byte of the current head (accept for a new connection) */
    struct timeval last_activity;
    unsigned timeout_ms;
    struct session *next, *prev; /* the registry's list */
    struct xlog xlog;
};

static void session_close(struct session *s);
static void process_client(struct session *s);
static void process_backend(struct session *s);
static void backend_connected(struct session *s);
static int backend_start(struct session *s);
static void backend_error(struct session *s, const char *what);
static void edge_start(struct session *s, const struct admit *a, const struct h1_header *authz,
                       size_t head_len);

/* ---- small helpers ------------------------------------------------------------------- */

static const struct conf *
conf_of(const struct session *s)
{
    return s->env->conf;
}

static void
now(const struct session *s, struct timeval *tv)
{
    event_base_gettimeofday_cached(s->env->base, tv);
}

static void
touch(struct session *s)
{
    now(s, &s->last_activity);
}

/* The end of a callback: what was queued on either side is written now (speculatively), and
 * reading resumes where buffers have room again. */
static void
end_turn(struct session *s)
{
    if (s->closed)
        return;
    if (s->backend != NULL)
        conn_sync(s->backend);
    conn_sync(s->client);
}

static size_t
buffer_cap(const struct session *s)
{
    const struct conf *c = conf_of(s);
    return c->max_header_bytes > c->high_water ? c->max_header_bytes : c->high_water;
}

static void
log_access(struct session *s)
{
    struct timeval tv;
    now(s, &tv);
    if (s->edge_req)
        xlog_user(&s->xlog, edgeauth_user(s->edge));
    if (s->xlog.open)
        metrics_exchange(s->route, s->xlog.status, s->xlog.bytes_in, s->xlog.bytes_out);
    metrics_channel_close(&s->mchan);
    xlog_write(&s->xlog, conf_of(s)->access_log, s->id, s->peer, s->be,
               s->be ? &s->be->servers[s->server] : NULL, &tv);
}

/* ---- timers -------------------------------------------------------------------------- */

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

/* A deadline ms after `from`: nothing that arrives meanwhile moves it (head, handshake). */
static void
arm_deadline(struct session *s, const struct timeval *from, unsigned ms)
{
    struct timeval tv, spent;
    now(s, &tv);
    timersub(&tv, from, &spent);
    long used = spent.tv_sec < 0 ? 0 : (long)spent.tv_sec * 1000 + spent.tv_usec / 1000;
    unsigned left = used >= (long)ms ? 1 : ms - (unsigned)used;
    s->timeout_ms = ms;
    s->hard_timer = true;
    struct timeval d = {.tv_sec = left / 1000, .tv_usec = (left % 1000) * 1000};
    evtimer_add(s->timer, &d);
}

static unsigned
header_timeout(const struct session *s)
{
    if (s->route != NULL)
        return s->route->header_timeout_ms;
    /* Before the first request no route is known: the shortest header timeout applies. */
    const struct conf *c = conf_of(s);
    unsigned best = 30000;
    for (size_t i = 0; i < c->nroutes; i++)
        if (i == 0 || c->routes[i].header_timeout_ms < best)
            best = c->routes[i].header_timeout_ms;
    return best;
}

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
static void
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

static void
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
static void
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

/* Answers the client from exshim itself. The connection closes after it unless keep is set
 * (only when the request had no body left to discard). */
static void
local_response(struct session *s, int status, const char *reason, const char *body,
               struct evbuffer *extra, bool keep)
{
    struct evbuffer *out = conn_output(s->client);
    size_t before = evbuffer_get_length(out);
    reply_format(out, status, reason, body, extra, keep);
    s->xlog.status = status;
    s->xlog.bytes_out += evbuffer_get_length(out) - before;
    log_access(s);
    if (!keep) {
        close_after_flush(s);
        return;
    }
    s->resp = RESP_NONE;
    s->req = REQ_HEAD;
    s->reading_head_started = false;
    arm_timer(s, s->route ? s->route->idle_timeout_ms : header_timeout(s));
}

static void local_error(struct session *s, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
local_error(struct session *s, int status, const char *fmt, ...)
{
    char body[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(body, sizeof(body) - 1, fmt, ap);
    va_end(ap);
    n = n < 0 ? 0 : n > (int)sizeof(body) - 2 ? (int)sizeof(body) - 2 : n;
    body[n] = '\n';
    body[n + 1] = '\0';
    local_response(s, status, reply_reason(status), body, NULL, false);
}

/* Refuses the request at the front of the client's input: logged once, answered, closed. */
static void
refuse_request(struct session *s, int status, const char *why)
{
    /* Log where the request was cut, never its content. */
    log_info("sid=%" PRIu64 " client %s: rejected request: %s", s->id, s->peer, why);
    local_error(s, status, "exshim: %s", why);
}

static void
timer_cb(evutil_socket_t fd, short what, void *arg)
{
    struct session *s = arg;
    struct timeval tv, idle;
    now(s, &tv);
    timersub(&tv, &s->last_activity, &idle);
    unsigned long idle_ms = (unsigned long)idle.tv_sec * 1000 + (unsigned long)idle.tv_usec / 1000;
    if (!s->hard_timer && idle_ms + 5 < s->timeout_ms) {
        /* There was activity since the timer was set: wait for the rest of the period. */
        unsigned left = s->timeout_ms - (unsigned)idle_ms;
        struct timeval d = {.tv_sec = left / 1000, .tv_usec = (left % 1000) * 1000};
        evtimer_add(s->timer, &d);
        return;
    }
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

/* ---- edge authentication (auth = "edge" routes) -------------------------------------- */

/*
 * The backend connection is up for an edge request: edge decides the Authorization the head
 * carries (the client's never goes), then the head goes out. An NTLM NEGOTIATE leg goes with
 * Content-Length: 0 and the client's body stays unread until edge_resend.
 */
static void
edge_send(struct session *s)
{
    struct evbuffer *authline = evbuffer_new(), *out = conn_output(s->backend);
    int status = 0;
    const char *why = NULL;

    if (authline == NULL) {
        session_close(s);
        return;
    }
    enum edgeauth_verdict v = edgeauth_backend_request(
        s->edge, s->route, s->be_cert_ok ? s->be_cert : NULL, authline, &status, &why);
    if (v != EDGEAUTH_FORWARD && v != EDGEAUTH_FORWARD_NEGOTIATE) {
        evbuffer_free(authline);
        log_warnx("sid=%" PRIu64 " client %s: edge: cannot reach backend %s as %s: %s", s->id,
                  s->peer, s->be->name, edgeauth_user(s->edge), why);
        drop_backend(s);
        local_error(s, status, "exshim: %s", why);
        return;
    }
    s->edge_hold = v == EDGEAUTH_FORWARD_NEGOTIATE;
    if (edgeauth_head_prefix(s->edge_head, s->edge_hold, out) != 0 ||
        evbuffer_add_buffer(out, authline) != 0 || evbuffer_add(out, "\r\n", 2) != 0) {
        evbuffer_free(authline);
        session_close(s);
        return;
    }
    evbuffer_free(authline);
    s->be_edge = true;
    s->resp = RESP_HEAD;
}

/* The backend's 401 to the NEGOTIATE leg is swallowed: the request goes again, now with the
 * AUTHENTICATE and its body, on the same connection. */
static void
edge_resend(struct session *s)
{
    struct evbuffer *out = conn_output(s->backend);

    s->edge_discard = false;
    s->edge_hold = false;
    if (edgeauth_head_prefix(s->edge_head, false, out) != 0 ||
        evbuffer_add_buffer(out, s->edge_resend) != 0 || evbuffer_add(out, "\r\n", 2) != 0) {
        session_close(s);
        return;
    }
    s->resp = RESP_HEAD;
    s->xlog.status = 0;
    if (s->req == REQ_BODY && !s->paused_client)
        conn_read(s->client, true);
    process_client(s);
}

/* Drops the body of the swallowed 401 as it arrives; then the resend. */
static void
edge_discard_body(struct session *s)
{
    struct evbuffer *sink = evbuffer_new();
    size_t no_prefix = 0;
    uint64_t dropped = 0;
    const char *why = NULL;

    if (sink == NULL) {
        session_close(s);
        return;
    }
    enum relay_result r = relay_move(conn_input(s->backend), sink, &s->resp_body, SIZE_MAX / 2,
                                     &no_prefix, &dropped, &why);
    evbuffer_free(sink);
    if (r == RELAY_DONE) {
        edge_resend(s);
    } else if (r == RELAY_BAD) {
        drop_backend(s);
        backend_error(s, "sent a broken 401 body in the NTLM handshake");
    }
}

/*
 * A request head on an edge route: the edge answers it (401 with its own offers, 400, 403,
 * 503) or lets it through; then the head, without the client's Authorization, waits for the
 * pinned backend connection (a fresh one when the edge says so) and edge_send.
 */
static void
edge_start(struct session *s, const struct admit *a, const struct h1_header *authz, size_t head_len)
{
    struct evbuffer *in = conn_input(s->client);
    struct evbuffer *www = evbuffer_new(), *head = evbuffer_new(), *noauth = evbuffer_new();
    bool fresh = false;
    int status = 0;
    const char *why = NULL;

    if (www == NULL || head == NULL || noauth == NULL)
        goto oom;
    if (s->edge == NULL && (s->edge = edgeauth_new(s->id)) == NULL)
        goto oom;
    if (edgeauth_request(s->edge, conf_of(s), a->route, authz, s->tls, www, &fresh, &status, &why,
                         &s->xlog.scheme) != EDGEAUTH_PROCEED) {
        if (status == 401) {
            local_response(s, 401, "Unauthorized", "exshim: authentication required\n", www,
                           a->h.body == H1_BODY_NONE);
            if (!s->closed && s->resp != RESP_CLOSING)
                evbuffer_drain(in, head_len);
        } else {
            log_info("sid=%" PRIu64 " client %s: edge answered %d: %s", s->id, s->peer, status,
                     why);
            local_error(s, status, "exshim: %s", why);
        }
        goto done;
    }
    /* A pinned connection is reused only when the edge authenticated it for this user. */
    const struct conf_backend *be = &conf_of(s)->backends[a->route->backend];
    if (s->backend != NULL && (fresh || !s->be_edge || s->be != be || !conn_connected(s->backend)))
        drop_backend(s);
    else if (fresh)
        edgeauth_backend_lost(s->edge);

    struct headers_client hc = {.ip = s->peer_ip, .tls = s->tls};
    headers_request(&a->h, &a->t, authz, noauth, &hc, head);
    if (s->edge_head == NULL && (s->edge_head = evbuffer_new()) == NULL)
        goto oom;
    evbuffer_drain(s->edge_head, evbuffer_get_length(s->edge_head));
    evbuffer_add_buffer(s->edge_head, head);
    s->req_conn_auth = false;
    s->req_body = a->body;
    evbuffer_drain(in, head_len);
    s->req = s->req_body.done ? REQ_DONE : REQ_BODY;
    arm_timer(s, a->route->body_timeout_ms);
    if (s->backend != NULL) {
        edge_send(s);
        goto done;
    }
    s->be = be;
    s->be_index = a->route->backend;
    s->tries = 1; /* backend_start chooses the server */
    if (s->pending != NULL)
        evbuffer_free(s->pending);
    s->pending = NULL;
    s->resp = RESP_CONNECTING;
    conn_read(s->client, false);
    backend_start(s);
done:
    if (www != NULL)
        evbuffer_free(www);
    if (head != NULL)
        evbuffer_free(head);
    if (noauth != NULL)
        evbuffer_free(noauth);
    return;
oom:
    session_close(s);
    goto done;
}

/* ---- request side -------------------------------------------------------------------- */

/*
 * Starts an exchange from a complete request head at the front of the client's input:
 * admission (parse, target, route, guard, body bytes already here), authentication, then the
 * head goes to the pinned backend or waits while one connects.
 */
static void
start_request(struct session *s, size_t head_len)
{
    struct evbuffer *in = conn_input(s->client);
    struct admit a;
    struct timeval tv;

    now(s, &tv);
    xlog_begin(&s->xlog, &tv, head_len);
    s->edge_req = false;
    if (admit_request(conf_of(s), in, head_len, &a) != 0) {
        session_close(s);
        return;
    }
    if (a.status != 0 && a.status != 404) {
        if (a.rule != NULL) {
            xlog_target(&s->xlog, a.h.method, (struct h1_slice){a.t.path, a.t.path_len},
                        (struct h1_slice){a.t.query, a.t.query_len});
            log_warnx("sid=%" PRIu64 " client %s: guard %s (%s) refused %s %s: %s", s->id, s->peer,
                      a.rule->id, a.rule->cve, s->xlog.method, s->xlog.path, a.rule->summary);
            local_error(s, 403, "exshim: %s", a.why);
            return;
        }
        refuse_request(s, a.status, a.why);
        return;
    }
    xlog_target(&s->xlog, a.h.method, (struct h1_slice){a.t.path, a.t.path_len},
                (struct h1_slice){a.t.query, a.t.query_len});
    s->req_head_method = h1_slice_eq(a.h.method, "HEAD");
    s->client_keep_alive = a.h.keep_alive;
    s->client_minor = a.h.version_minor;
    s->route = a.route;
    if (a.status == 404) {
        evbuffer_drain(in, head_len);
        local_response(s, 404, "Not Found", "exshim: no route for this path\n", NULL,
                       a.h.body == H1_BODY_NONE && a.h.keep_alive);
        return;
    }

    const struct h1_header *authz = NULL;
    if (headers_find_authz(&a.h, &authz) != 0) {
        refuse_request(s, 400, "several Authorization headers");
        return;
    }
    if (a.route->auth == CONF_AUTH_EDGE) {
        s->edge_req = true;
        edge_start(s, &a, authz, head_len);
        return;
    }
    struct evbuffer *authline = evbuffer_new(), *local = evbuffer_new(), *head = evbuffer_new();
    if (authline == NULL || local == NULL || head == NULL)
        goto oom;
    const char *why = NULL;
    switch (authn_request(s->auth, a.route, authz, authline, local, &s->xlog.scheme, &why)) {
    case AUTHN_LOCAL_401:
        local_response(s, 401, "Unauthorized", "exshim: authentication required\n", local,
                       a.h.body == H1_BODY_NONE);
        if (!s->closed && s->resp != RESP_CLOSING)
            evbuffer_drain(in, head_len);
        goto done;
    case AUTHN_LOCAL_400:
        local_error(s, 400, "exshim: %s", why ? why : "bad credentials");
        goto done;
    case AUTHN_FORWARD:
        break;
    }
    s->req_conn_auth =
        authz != NULL && s->xlog.scheme != NULL &&
        (strcmp(s->xlog.scheme, "NTLM") == 0 || strcmp(s->xlog.scheme, "Negotiate") == 0);
    struct headers_client hc = {.ip = s->peer_ip, .tls = s->tls};
    headers_request(&a.h, &a.t, authz, authline, &hc, head);
    s->mchan = metrics_channel_open(&a.h);
    s->req_body = a.body;
    /* An RPC_IN_DATA channel gets no status until it ends, hours later: its handshake's trace
     * line is written now, not when the channel closes. */
    if (s->req_conn_auth && !a.body.done && h1_slice_eq(a.h.method, "RPC_IN_DATA"))
        authn_request_streams(s->auth);
    evbuffer_drain(in, head_len);
    s->req = s->req_body.done ? REQ_DONE : REQ_BODY;
    arm_timer(s, a.route->body_timeout_ms);

    /* A pinned connection to another pool cannot be reused: the new pool gets its own. */
    const struct conf_backend *be = &conf_of(s)->backends[a.route->backend];
    /* ... nor one the edge authenticated as its user (an earlier edge route's request). */
    if (s->backend != NULL && (s->be != be || !conn_connected(s->backend) || s->be_edge))
        drop_backend(s);
    if (s->backend != NULL) {
        evbuffer_add_buffer(conn_output(s->backend), head);
        s->be_authed |= s->req_conn_auth;
        s->resp = RESP_HEAD;
        goto done;
    }
    s->be = be;
    s->be_index = a.route->backend;
    s->tries = 1; /* backend_start chooses the server */
    if (s->pending != NULL)
        evbuffer_free(s->pending);
    s->pending = head;
    head = NULL;
    s->resp = RESP_CONNECTING;
    /* Body bytes stay in the client's input until the backend is connected. */
    conn_read(s->client, false);
    backend_start(s);
done:
    if (authline != NULL)
        evbuffer_free(authline);
    if (local != NULL)
        evbuffer_free(local);
    if (head != NULL)
        evbuffer_free(head);
    return;
oom:
    session_close(s);
    goto done;
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
static void
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

static void
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
static void
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

static void
backend_error(struct session *s, const char *what)
{
    log_warnx("sid=%" PRIu64 " backend %s: %s", s->id, s->be->name, what);
    local_error(s, 502, "exshim: backend %s %s", s->be->name, what);
}

enum edge_resp_step {
    EDGE_STEP_PASS,   /* deliver the head, with www */
    EDGE_STEP_RESEND, /* swallow it: the caller drains the head; the body is discarded next */
    EDGE_STEP_DONE,   /* answered locally */
};

/* A final response head to an edge request (h: its parse, views into the backend's input). */
static enum edge_resp_step
edge_response_head(struct session *s, const struct h1_head *h, struct evbuffer *www)
{
    int status = 500;
    const char *why = "out of memory";
    enum edgeauth_verdict v = EDGEAUTH_LOCAL;

    if (s->edge_resend == NULL)
        s->edge_resend = evbuffer_new();
    if (s->edge_resend != NULL) {
        evbuffer_drain(s->edge_resend, evbuffer_get_length(s->edge_resend));
        v = edgeauth_response(s->edge, h, www, s->edge_resend, &status, &why);
    }
    if (v == EDGEAUTH_RESEND && (!h->keep_alive || s->resp_body.kind == H1_BODY_EOF)) {
        v = EDGEAUTH_LOCAL;
        status = 502;
        why = "the backend closed the connection inside the NTLM handshake";
    }
    if (v == EDGEAUTH_PASS)
        return EDGE_STEP_PASS;
    if (v == EDGEAUTH_RESEND) {
        s->xlog.status = 0;
        s->resp_prefix = 0;
        s->resp = RESP_BODY;
        s->edge_discard = true;
        return EDGE_STEP_RESEND;
    }
    log_warnx("sid=%" PRIu64 " client %s: edge: backend %s answered %d for %s: %s", s->id, s->peer,
              s->be->name, h->status, edgeauth_user(s->edge), why);
    drop_backend(s);
    local_error(s, status, "exshim: %s", why);
    return EDGE_STEP_DONE;
}

/* Takes the response head at the front of the backend's input, if it is complete. Returns
 * false when it must wait or the session ended. */
static bool
take_response_head(struct session *s)
{
    struct evbuffer *in = conn_input(s->backend);
    const struct conf *c = conf_of(s);
    size_t len = evbuffer_get_length(in), maxh = 0;
    size_t look = len < c->max_header_bytes ? len : c->max_header_bytes;
    const char *p = (const char *)evbuffer_pullup(in, (ev_ssize_t)look);
    size_t head_len = len ? h1_head_end(p, look) : 0;
    if (head_len == 0) {
        if (len >= c->max_header_bytes)
            backend_error(s, "sent a response head larger than max_header_bytes");
        return false;
    }
    struct h1_header *hdrs = admit_response_headers(c, &maxh);
    struct h1_head h;
    int status;
    const char *why;
    if (hdrs == NULL) {
        session_close(s);
        return false;
    }
    if (h1_parse_response(p, head_len, s->req_head_method, &h, hdrs, maxh, &status, &why) !=
        H1_OK) {
        log_warnx("sid=%" PRIu64 " backend %s: invalid response: %s", s->id, s->be->name, why);
        local_error(s, 502, "exshim: backend %s sent an invalid response (%s)", s->be->name, why);
        return false;
    }
    if (h.status == 101) {
        backend_error(s, "switched protocols");
        return false;
    }
    s->xlog.status = h.status;
    frame_init(&s->resp_body, &h);
    if (h.status >= 200) {
        /* What arrived with the head is checked before the head goes out: a response broken
         * from its first chunk line gets the client a 502, not half a message. */
        if (frame_check_ahead(&s->resp_body, in, head_len, &why) != 0) {
            log_warnx("sid=%" PRIu64 " backend %s: bad chunked framing in response (%s)", s->id,
                      s->be->name, why);
            local_error(s, 502, "exshim: backend %s sent a response with broken chunked framing",
                        s->be->name);
            return false;
        }
        /* The backend will close: its connection cannot carry the next request. */
        bool last = s->client_eof && evbuffer_get_length(conn_input(s->client)) == 0;
        s->close_after = last || !s->client_keep_alive || !h.keep_alive || *s->env->draining;
    }
    struct evbuffer *www = NULL, *hb = evbuffer_new();
    if (hb == NULL || (www = evbuffer_new()) == NULL) {
        if (hb != NULL)
            evbuffer_free(hb);
        session_close(s);
        return false;
    }
    bool set = false;
    if (s->edge_req) {
        /* The client sees the edge's WWW-Authenticate lines only, never the backend's. */
        enum edge_resp_step st = h.status >= 200 ? edge_response_head(s, &h, www) : EDGE_STEP_PASS;
        if (st != EDGE_STEP_PASS) {
            evbuffer_free(www);
            evbuffer_free(hb);
            if (st == EDGE_STEP_RESEND)
                evbuffer_drain(in, head_len);
            return st == EDGE_STEP_RESEND;
        }
        set = true;
    } else {
        bool has_www = h1_find(&h, "WWW-Authenticate") != NULL;
        set = (has_www || h.status >= 200) && authn_response(s->auth, s->route, &h, www);
    }
    headers_response(&h, set ? www : NULL, s->close_after, s->client_minor, hb);
    evbuffer_free(www);
    size_t nh = evbuffer_get_length(hb);
    evbuffer_drain(in, head_len);
    s->xlog.bytes_out += nh;
    if (h.status < 200) {
        /* 100 Continue and friends go out at once; the final response follows */
        evbuffer_add_buffer(conn_output(s->client), hb);
        evbuffer_free(hb);
        return true;
    }
    /* The rewritten head replaces the received one in front of the body: after the drain it
     * usually fits where the old head was, so head and first body bytes leave in one write
     * (one TLS record) instead of two. */
    evbuffer_prepend(in, evbuffer_pullup(hb, -1), nh);
    evbuffer_free(hb);
    s->resp_prefix = nh;
    s->resp = RESP_BODY;
    return true;
}

static void
process_backend(struct session *s)
{
    while (s->resp == RESP_HEAD && !s->closed && s->backend != NULL)
        if (!take_response_head(s))
            return;
    if (s->resp == RESP_BODY && !s->paused_backend)
        relay_response_body(s, conf_of(s)->high_water);
}

/* ---- backend connection -------------------------------------------------------------- */

static void backend_on_read(void *arg);
static void backend_on_drained(void *arg);
static void backend_on_event(void *arg, enum conn_event ev);
static const struct conn_cbs backend_cbs = {backend_on_read, backend_on_drained, backend_on_event};

/* Connects to s->server, first choosing it among the healthy servers (503 when there is
 * none); on failure, tries the next servers of the pool, then answers 502. */
static int
backend_start(struct session *s)
{
    const struct backend_rt *rt = &s->env->backends[s->be_index];
    if (s->tries == 1 && upstream_choose(s->be, rt, s->route, s->peer_ip, &s->server) != 0) {
        log_warnx("sid=%" PRIu64 " backend %s has no healthy server for route %s", s->id,
                  s->be->name, s->route->path);
        local_error(s, 503, "exshim: backend %s has no healthy server for route %s", s->be->name,
                    s->route->path);
        return -1;
    }
    const struct conf_server *sv = &s->be->servers[s->server];
    char err[256];
    s->backend =
        upstream_open(s->env->base, s->be, rt, s->server, &backend_cbs, s, err, sizeof(err));
    if (s->backend != NULL) {
        upstream_count(rt, s->server, s->backend);
        conn_set_read_cap(s->backend, buffer_cap(s));
        return 0;
    }
    metrics_connect_failed(s->be_index, s->server);
    log_warnx("sid=%" PRIu64 " backend %s (%s:%s): cannot start connection: %s", s->id, s->be->name,
              sv->host, sv->port, err);
    local_error(s, 502, "exshim: backend %s (%s:%s) is unreachable", s->be->name, sv->host,
                sv->port);
    return -1;
}

static void
backend_connected(struct session *s)
{
    upstream_tune(s->be, conn_fd(s->backend));
    conn_count_in(s->backend, metrics_backend_gauge(s->be_index, s->server));
    s->tries = 0;
    unsigned char h[32];
    s->be_cert_ok = false;
    if (conn_is_tls(s->backend) && conn_peer_cert_hash(s->backend, h) == 0) {
        authn_set_backend_cert(s->auth, h);
        memcpy(s->be_cert, h, sizeof(s->be_cert));
        s->be_cert_ok = true;
    }
    conn_read(s->backend, true);
    if (s->resp == RESP_CONNECTING && s->edge_req) {
        edge_send(s);
        if (s->closed || s->resp != RESP_HEAD)
            return;
        if (s->req == REQ_BODY && !s->edge_hold)
            conn_read(s->client, true);
        process_client(s);
    } else if (s->resp == RESP_CONNECTING) {
        evbuffer_add_buffer(conn_output(s->backend), s->pending);
        s->be_authed |= s->req_conn_auth;
        s->resp = RESP_HEAD;
        if (s->req == REQ_BODY)
            conn_read(s->client, true);
        process_client(s);
    }
}

/* The backend closed or failed after it was connected. */
static void
backend_gone(struct session *s)
{
    const struct conf_server *sv = &s->be->servers[s->server];
    /* Bytes that arrived before the close still belong to the response: deliver all of them,
     * past the high-water mark (the input holds at most the buffer cap). */
    if (s->resp == RESP_HEAD)
        process_backend(s);
    if (!s->closed && s->backend != NULL && s->resp == RESP_BODY)
        relay_response_body(s, SIZE_MAX / 2);
    if (s->closed || s->backend == NULL)
        return;
    if (s->resp == RESP_BODY && s->resp_body.kind == H1_BODY_EOF) {
        s->close_after = true; /* close-delimited response: complete now */
        drop_backend(s);
        finish_exchange(s);
    } else if (s->resp == RESP_HEAD && s->xlog.status == 0) {
        drop_backend(s);
        backend_error(s, "closed the connection without answering");
    } else if (s->resp == RESP_NONE && s->req != REQ_BODY) {
        if (s->be_authed) {
            /* NTLM authenticated that TCP connection, not the client: a fresh backend
             * connection would be anonymous while the client believes it is logged on. Close
             * the client too, as IIS's close would reach it directly; it logs on again. */
            log_info("sid=%" PRIu64 " backend %s closed an authenticated connection; closing "
                     "the client connection so it authenticates again",
                     s->id, s->be->name);
            close_after_flush(s);
            return;
        }
        log_debug("sid=%" PRIu64 " backend %s closed idle connection", s->id, s->be->name);
        drop_backend(s);
    } else {
        log_info("sid=%" PRIu64 " backend %s (%s:%s) closed the connection mid-exchange", s->id,
                 s->be->name, sv->host, sv->port);
        close_after_flush(s);
    }
}

static void
backend_on_event(void *arg, enum conn_event ev)
{
    struct session *s = arg;
    const struct conf_server *sv = &s->be->servers[s->server];
    if (ev == CONN_CONNECTED) {
        backend_connected(s);
    } else if (conn_connected(s->backend)) {
        backend_gone(s);
    } else {
        /* Connect failed: the head is still in s->pending, so another server may take it. */
        char why[300];
        if (ev == CONN_TIMEOUT)
            snprintf(why, sizeof(why), "connect timed out after %u ms", s->be->connect_timeout_ms);
        else
            snprintf(why, sizeof(why), "%s", conn_error(s->backend));
        metrics_connect_failed(s->be_index, s->server);
        log_warnx("sid=%" PRIu64 " backend %s (%s:%s): %s", s->id, s->be->name, sv->host, sv->port,
                  why);
        conn_free(s->backend);
        s->backend = NULL;
        const struct backend_rt *rt = &s->env->backends[s->be_index];
        upstream_failed(rt, s->server, why);
        size_t next = upstream_next(s->be, rt, s->route, s->server);
        if (s->resp == RESP_CONNECTING && s->tries < s->be->nservers && next != s->server) {
            s->server = next;
            s->tries++;
            backend_start(s);
        } else if (s->resp == RESP_CONNECTING) {
            local_error(s, 502, "exshim: backend %s (%s:%s) is unreachable: %s", s->be->name,
                        sv->host, sv->port, why);
        } else {
            session_close(s);
        }
    }
    end_turn(s);
}

static void
backend_on_read(void *arg)
{
    struct session *s = arg;
    touch(s);
    if (s->resp == RESP_NONE || s->resp == RESP_CLOSING) {
        if (s->resp == RESP_NONE && s->req != REQ_BODY &&
            evbuffer_get_length(conn_input(s->backend)) > 0) {
            log_warnx("sid=%" PRIu64 " backend %s sent data with no request outstanding; "
                      "dropping that connection",
                      s->id, s->be->name);
            drop_backend(s);
        }
        return;
    }
    process_backend(s);
    end_turn(s);
}

/* The backend drained below half the mark: resume reading the client. */
static void
backend_on_drained(void *arg)
{
    struct session *s = arg;
    if (!s->paused_client)
        return;
    s->paused_client = false;
    conn_read(s->client, true);
    touch(s);
    process_client(s);
    end_turn(s);
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
session_accept(const struct session_env *env, size_t li, int fd, const struct sockaddr *sa,
               int salen)
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
