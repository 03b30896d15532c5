/*
 * A complete request head on a session (see session_int.h): admission's verdict is answered
 * or taken, authentication decides the Authorization line (or answers itself), the head is
 * rewritten, and the exchange goes to the pinned backend connection or waits while one opens.
 */
#include <inttypes.h>
#include <string.h>

#include <event2/buffer.h>

#include "proxy/authn.h"
#include "proxy/headers.h"
#include "proxy/log.h"
#include "proxy/metrics.h"
#include "proxy/scratch.h"
#include "proxy/session_int.h"

/* Answers what admission refused. Returns true when the request goes on (a route matched). */
static bool
admission_result(struct session *s, const struct admit *a, size_t head_len)
{
    if (a->status != 0 && a->status != 404) {
        if (a->rule != NULL) {
            xlog_target(&s->xlog, a->h.method, (struct h1_slice){a->t.path, a->t.path_len},
                        (struct h1_slice){a->t.query, a->t.query_len});
            log_warnx("sid=%" PRIu64 " client %s: guard %s (%s) refused %s %s: %s", s->id, s->peer,
                      a->rule->id, a->rule->cve, s->xlog.method, s->xlog.path, a->rule->summary);
            local_error(s, 403, "exshim: %s", a->why);
            return false;
        }
        refuse_request(s, a->status, a->why);
        return false;
    }
    xlog_target(&s->xlog, a->h.method, (struct h1_slice){a->t.path, a->t.path_len},
                (struct h1_slice){a->t.query, a->t.query_len});
    s->req_head_method = h1_slice_eq(a->h.method, "HEAD");
    s->client_keep_alive = a->h.keep_alive;
    s->client_minor = a->h.version_minor;
    s->route = s->xlog.route = a->route;
    if (a->status == 404) {
        evbuffer_drain(conn_input(s->client), head_len);
        local_response(s, 404, "Not Found", "exshim: no route for this path\n", NULL,
                       a->h.body == H1_BODY_NONE && a->h.keep_alive);
        return false;
    }
    return true;
}

/* The rewritten head (owned) goes to the pinned backend connection when it may carry this
 * request, else to a new one. */
static void
forward_head(struct session *s, const struct conf_route *r, struct evbuffer *head)
{
    /* A pinned connection to another pool cannot be reused: the new pool gets its own. */
    const struct conf_backend *be = &conf_of(s)->backends[r->backend];
    /* ... nor one the edge authenticated as its user (an earlier edge route's request). */
    if (s->backend != NULL && (s->be != be || !conn_connected(s->backend) || s->be_edge))
        drop_backend(s);
    if (s->backend == NULL) {
        /* Body bytes stay in the client's input until the backend is connected. */
        backend_connect(s, r, head);
        return;
    }
    record_backend(s, true);
    evbuffer_add_buffer(conn_output(s->backend), head);
    scratch_put(head);
    s->be_authed |= s->req_conn_auth;
    s->resp = RESP_HEAD;
}

/*
 * Starts an exchange from a complete request head at the front of the client's input:
 * admission (parse, target, route, guard, body bytes already here), authentication, then the
 * head goes to the pinned backend or waits while one connects.
 */
void
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
    if (!admission_result(s, &a, head_len))
        return;

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
    struct evbuffer *authline = scratch_get(), *local = scratch_get(), *head = scratch_get();
    if (authline == NULL || local == NULL || head == NULL)
        goto oom;
    const char *why = NULL;
    switch (authn_request(s->auth, a.route, authz, authline, local, &s->xlog.scheme, &why)) {
    case AUTHN_LOCAL_401:
        local_401(s, local, a.h.body == H1_BODY_NONE, head_len);
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
    if (!headers_request(&a.h, &a.t, authz, authline, &hc, head))
        goto oom;
    s->mchan = metrics_channel_open(&a.h);
    s->req_body = a.body;
    /* An RPC_IN_DATA channel gets no status until it ends, hours later: its handshake's trace
     * line is written now, not when the channel closes. */
    if (s->req_conn_auth && !a.body.done && h1_slice_eq(a.h.method, "RPC_IN_DATA"))
        authn_request_streams(s->auth);
    evbuffer_drain(in, head_len);
    s->req = s->req_body.done ? REQ_DONE : REQ_BODY;
    arm_timer(s, a.route->body_timeout_ms);
    forward_head(s, a.route, head);
    head = NULL;
done:
    scratch_put(authline);
    scratch_put(local);
    scratch_put(head);
    return;
oom:
    session_close(s);
    goto done;
}
