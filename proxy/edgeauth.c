/* Edge authentication in a session. See edgeauth.h. */
#include "proxy/edgeauth.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <event2/buffer.h>

#include "auth/edge.h"
#include "auth/gss.h"
#include "proxy/log.h"

#define MAX_WWW 16

struct edgeauth {
    uint64_t sid;
    struct edge *edge;              /* made at the first request of an edge route */
    const struct conf_route *route; /* of the request in progress, for the policy and trace */
};

/*
 * The worker's acceptor: the proxy principal's keytab credential (and its own TGT, for
 * S4U2Self). Made on the first edge request a worker sees, so after fork and in the worker
 * that uses it; a failure (KDC down, keytab unreadable) is retried at most every
 * EDGEAUTH_RETRY_S seconds and edge routes answer 503 meanwhile. It lives as long as the
 * worker: every struct edge borrows it.
 */
static struct authgss_acceptor *g_acceptor;
static struct edge_env g_env;
static time_t g_next_try;

static time_t
mono_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec;
}

static struct authgss_acceptor *
acceptor(const struct conf *c)
{
    struct authgss_error err;

    if (g_acceptor != NULL)
        return g_acceptor;
    time_t t = mono_now();
    if (g_next_try != 0 && t < g_next_try)
        return NULL;
    g_acceptor = authgss_acceptor_new(c->edge_keytab, c->edge_principal, &err);
    if (g_acceptor == NULL) {
        g_next_try = t + EDGEAUTH_RETRY_S;
        log_warnx("edge: cannot acquire the credential of %s from %s: %s; edge routes answer "
                  "503 until a retry (every %d s) succeeds",
                  c->edge_principal, c->edge_keytab, err.text, EDGEAUTH_RETRY_S);
        return NULL;
    }
    g_env.acceptor = g_acceptor;
    log_info("edge: acceptor %s ready", authgss_acceptor_name(g_acceptor));
    return g_acceptor;
}

static void
policy_of(const struct conf_route *r, struct edge_policy *p)
{
    const struct conf_route_edge *e = &r->edge;
    memset(p, 0, sizeof(*p));
    p->offer_negotiate = e->offer_negotiate;
    p->offer_basic = e->offer_basic;
    p->basic_realm = e->basic_realm;
    p->delegation =
        e->delegation == CONF_EDGE_PASSWORD ? EDGE_DELEG_PASSWORD : EDGE_DELEG_CONSTRAINED;
    p->password_mech =
        e->password_mech == CONF_EDGE_PW_NTLM ? EDGE_PASSWORD_NTLM : EDGE_PASSWORD_KERBEROS;
    p->backend_spn = e->backend_spn;
    p->kerberos_realm = e->realm;
    p->ntlm_domain = e->ntlm_domain;
}

static void
trace_log(const struct edgeauth *ea)
{
    char buf[2048];
    edge_trace_format(ea->edge, buf, sizeof(buf));
    log_info("auth sid=%" PRIu64 " route=\"%s\" edge %s", ea->sid,
             ea->route != NULL ? ea->route->path : "-", buf);
}

static void
add_line(struct evbuffer *out, const char *name, const char *value)
{
    evbuffer_add_printf(out, "%s: %s\r\n", name, value);
}

struct edgeauth *
edgeauth_new(uint64_t session_id)
{
    struct edgeauth *ea = calloc(1, sizeof(*ea));
    if (ea == NULL)
        return NULL;
    ea->sid = session_id;
    return ea;
}

void
edgeauth_free(struct edgeauth *ea)
{
    if (ea == NULL)
        return;
    edge_free(ea->edge);
    free(ea);
}

enum edgeauth_verdict
edgeauth_request(struct edgeauth *ea, const struct conf *c, const struct conf_route *r,
                 const struct h1_header *authz, bool client_tls, struct evbuffer *www_out,
                 bool *fresh_out, int *status_out, const char **why_out, const char **scheme_out)
{
    struct edge_policy pol;
    struct edge_req_out q;
    enum edgeauth_verdict v = EDGEAUTH_LOCAL;

    *fresh_out = false;
    ea->route = r;
    if (ea->edge == NULL) {
        if (acceptor(c) == NULL) {
            *status_out = 503;
            *why_out = "edge authentication is unavailable: the proxy's Kerberos credential "
                       "could not be acquired";
            return EDGEAUTH_LOCAL;
        }
        if ((ea->edge = edge_new(&g_env)) == NULL) {
            *status_out = 500;
            *why_out = "out of memory";
            return EDGEAUTH_LOCAL;
        }
    }
    policy_of(r, &pol);
    memset(&q, 0, sizeof(q));
    if (edge_request(ea->edge, &pol, authz ? authz->value.p : NULL, authz ? authz->value.len : 0,
                     client_tls, &q) != 0) {
        *status_out = 500;
        *why_out = "out of memory";
        return EDGEAUTH_LOCAL;
    }
    const struct edge_trace *t = edge_trace(ea->edge);
    if (authz != NULL && t->scheme != NULL && strcmp(t->scheme, "-") != 0)
        *scheme_out = t->scheme;
    if (q.trace_done)
        trace_log(ea);
    switch (q.action) {
    case EDGE_PROCEED:
        *fresh_out = q.fresh_backend;
        v = EDGEAUTH_PROCEED;
        break;
    case EDGE_LOCAL_401:
        for (size_t i = 0; i < q.nwww; i++)
            add_line(www_out, "WWW-Authenticate", q.www[i]);
        *status_out = 401;
        *why_out = q.reason != NULL ? q.reason : "authentication required";
        break;
    default:
        *status_out = q.status != 0 ? q.status : 403;
        *why_out = q.reason != NULL ? q.reason : "refused at the edge";
        break;
    }
    edge_req_clear(&q);
    return v;
}

enum edgeauth_verdict
edgeauth_backend_request(struct edgeauth *ea, const struct conf_route *r,
                         const unsigned char *cert_hash, struct evbuffer *authline_out,
                         int *status_out, const char **why_out)
{
    struct edge_policy pol;
    struct edge_req_out q;
    enum edgeauth_verdict v = EDGEAUTH_LOCAL;

    ea->route = r;
    policy_of(r, &pol);
    memset(&q, 0, sizeof(q));
    if (ea->edge == NULL ||
        edge_backend_request(ea->edge, &pol, cert_hash, cert_hash != NULL ? 32 : 0, &q) != 0) {
        *status_out = 500;
        *why_out = "out of memory";
        return EDGEAUTH_LOCAL;
    }
    if (q.trace_done)
        trace_log(ea);
    switch (q.action) {
    case EDGE_FORWARD:
    case EDGE_FORWARD_NTLM_NEGOTIATE:
        /* NULL: that backend connection is authenticated as this user already */
        if (q.authorization != NULL)
            add_line(authline_out, "Authorization", q.authorization);
        v = q.action == EDGE_FORWARD ? EDGEAUTH_FORWARD : EDGEAUTH_FORWARD_NEGOTIATE;
        break;
    default:
        *status_out = q.status != 0 ? q.status : 502;
        *why_out = q.reason != NULL ? q.reason : "delegation to the backend failed";
        break;
    }
    edge_req_clear(&q);
    return v;
}

enum edgeauth_verdict
edgeauth_response(struct edgeauth *ea, const struct h1_head *resp, struct evbuffer *www_out,
                  struct evbuffer *authline_out, int *status_out, const char **why_out)
{
    struct edge_slice www[MAX_WWW];
    struct edge_resp_out a;
    size_t n = 0;
    enum edgeauth_verdict v = EDGEAUTH_PASS;

    if (ea->edge == NULL)
        return EDGEAUTH_PASS;
    for (size_t i = 0; i < resp->nheaders && n < MAX_WWW; i++) {
        if (h1_slice_eq(resp->headers[i].name, "WWW-Authenticate")) {
            www[n].p = resp->headers[i].value.p;
            www[n].len = resp->headers[i].value.len;
            n++;
        }
    }
    memset(&a, 0, sizeof(a));
    if (edge_response(ea->edge, resp->status, www, n, &a) != 0) {
        *status_out = 500;
        *why_out = "out of memory";
        return EDGEAUTH_LOCAL;
    }
    if (a.trace_done)
        trace_log(ea);
    switch (a.action) {
    case EDGE_RESP_PASS:
        if (a.client_www != NULL)
            add_line(www_out, "WWW-Authenticate", a.client_www);
        break;
    case EDGE_RESP_RESEND:
        if (a.authorization != NULL)
            add_line(authline_out, "Authorization", a.authorization);
        v = EDGEAUTH_RESEND;
        break;
    case EDGE_RESP_LOCAL:
        *status_out = a.status != 0 ? a.status : 502;
        *why_out = a.reason != NULL ? a.reason : "the backend refused the delegated user";
        v = EDGEAUTH_LOCAL;
        break;
    }
    edge_resp_clear(&a);
    return v;
}

void
edgeauth_backend_lost(struct edgeauth *ea)
{
    if (ea != NULL && ea->edge != NULL)
        edge_backend_lost(ea->edge);
}

const char *
edgeauth_user(const struct edgeauth *ea)
{
    if (ea == NULL || ea->edge == NULL)
        return "";
    return edge_trace(ea->edge)->client;
}

/* Is the line [p, p+len) the header `name:`? */
static bool
is_header(const char *p, size_t len, const char *name)
{
    size_t n = strlen(name);
    return len > n && p[n] == ':' && strncasecmp(p, name, n) == 0;
}

int
edgeauth_head_prefix(struct evbuffer *src, bool no_body, struct evbuffer *dst)
{
    size_t len = evbuffer_get_length(src);
    const char *p = (const char *)evbuffer_pullup(src, (ev_ssize_t)len);
    int rc = 0;

    if (p == NULL || len < 2)
        return -1;
    len -= 2; /* the empty line that ends the head */
    for (size_t at = 0; at < len;) {
        const char *eol = memchr(p + at, '\n', len - at);
        size_t n = eol != NULL ? (size_t)(eol - (p + at)) + 1 : len - at;
        bool framing = at > 0 && (is_header(p + at, n, "Content-Length") ||
                                  is_header(p + at, n, "Transfer-Encoding"));
        if (!(no_body && framing))
            rc |= evbuffer_add(dst, p + at, n);
        at += n;
    }
    if (no_body)
        rc |= evbuffer_add(dst, "Content-Length: 0\r\n", 19);
    return rc == 0 ? 0 : -1;
}
