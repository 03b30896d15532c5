/*
 * The pinned backend connection of a session (see session_int.h): the server is chosen and
 * connected (the next servers of the pool when a connect fails), the forwarded head goes out
 * once it is up, and its end is handled: a response it completes, an idle close, or a close
 * the client must learn of.
 */
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <event2/buffer.h>

#include "proxy/authn.h"
#include "proxy/log.h"
#include "proxy/metrics.h"
#include "proxy/session_int.h"
#include "proxy/upstream.h"

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
    record_backend(s, false);
    if (s->tries == 1 && upstream_choose(s->be, rt, s->route, s->peer_ip, &s->server) != 0) {
        log_warnx("sid=%" PRIu64 " backend %s has no healthy server for route %s", s->id,
                  s->be->name, s->route->path);
        local_error(s, 503, "exshim: backend %s has no healthy server for route %s", s->be->name,
                    s->route->path);
        return -1;
    }
    record_backend(s, true);
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

void
backend_connect(struct session *s, const struct conf_route *r, struct evbuffer *pending)
{
    s->be = &conf_of(s)->backends[r->backend];
    s->be_index = r->backend;
    s->tries = 1; /* backend_start chooses the server */
    if (s->pending != NULL)
        evbuffer_free(s->pending);
    s->pending = pending;
    s->resp = RESP_CONNECTING;
    conn_read(s->client, false);
    backend_start(s);
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
        size_t next = upstream_next(s->be, rt, s->route, s->peer_ip, s->server);
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
