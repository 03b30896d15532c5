/*
 * A session's side of edge authentication (routes with auth = "edge"; the decisions are
 * proxy/edgeauth.h's): the request head waits while the edge checks the client and the backend
 * connects; the head goes out with the edge's Authorization; the backend's answer is passed,
 * answered locally or, for an NTLM NEGOTIATE leg, swallowed and the request sent again.
 */
#include <inttypes.h>
#include <stdint.h>

#include <event2/buffer.h>

#include "proxy/edgeauth.h"
#include "proxy/headers.h"
#include "proxy/log.h"
#include "proxy/relay.h"
#include "proxy/session_int.h"

/*
 * The backend connection is up for an edge request: edge decides the Authorization the head
 * carries (the client's never goes), then the head goes out. An NTLM NEGOTIATE leg goes with
 * Content-Length: 0 and the client's body stays unread until edge_resend.
 */
void
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
void
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
void
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
            local_401(s, www, a->h.body == H1_BODY_NONE, head_len);
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
    if (!headers_request(&a->h, &a->t, authz, noauth, &hc, head))
        goto oom;
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
        record_backend(s, true);
        edge_send(s);
    } else {
        backend_connect(s, a->route, NULL);
    }
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

/* A final response head to an edge request: PASS, RESEND (the NEGOTIATE leg's 401, swallowed)
 * or DONE (answered locally). */
enum edge_resp_step
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
