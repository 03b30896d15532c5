/*
 * Per-session authentication flow: the proxy side of auth/bridge. Translates between the
 * session's header slices and evbuffers and the bridge's pure calls, and logs the auth trace
 * (one line per handshake; never tokens or passwords).
 */
#include "proxy/authn.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/buffer.h>

#include "auth/bridge.h"
#include "auth/ntlm.h"
#include "proxy/log.h"
#include "proxy/metrics.h"

#define MAX_WWW 16

/* The bridge state (about 1.5 KiB) exists only while a handshake needs it: created by the
 * first credential or 401, freed again once it is idle, so an idle keep-alive connection or a
 * held channel whose handshake is over holds only this small struct. */
struct authn {
    uint64_t sid;
    struct authbridge *bridge; /* NULL: the fresh state */
    bool have_cbt;
    uint8_t cbt[16];
};

/* The bridge, created if absent; NULL when memory ran out. */
static struct authbridge *
bridge_of(struct authn *a)
{
    if (a->bridge == NULL) {
        a->bridge = authbridge_new();
        if (a->bridge != NULL && a->have_cbt)
            authbridge_set_expected_cbt(a->bridge, a->cbt);
    }
    return a->bridge;
}

static void
bridge_release_if_idle(struct authn *a)
{
    if (a->bridge != NULL && authbridge_idle(a->bridge)) {
        authbridge_free(a->bridge);
        a->bridge = NULL;
    }
}

static void
trace_log(struct authn *a)
{
    char buf[1024];
    authbridge_trace_format(a->bridge, buf, sizeof(buf));
    metrics_auth_trace(buf);
    log_info("auth sid=%" PRIu64 " %s", a->sid, buf);
}

struct authn *
authn_new(uint64_t session_id)
{
    struct authn *a = calloc(1, sizeof(*a));
    if (a == NULL)
        return NULL;
    a->sid = session_id;
    return a;
}

void
authn_free(struct authn *a)
{
    if (a == NULL)
        return;
    if (a->bridge != NULL && authbridge_trace_pending(a->bridge))
        trace_log(a);
    authbridge_free(a->bridge);
    free(a);
}

void
authn_backend_lost(struct authn *a)
{
    if (a->bridge != NULL)
        authbridge_reset(a->bridge); /* a fresh state has no handshake to restart */
}

void
authn_set_backend_cert(struct authn *a, const unsigned char hash[32])
{
    uint8_t md5[16];
    if (ntlmmsg_cbt_expected(hash, 32, md5) != 0)
        return;
    memcpy(a->cbt, md5, sizeof(a->cbt));
    a->have_cbt = true;
    if (a->bridge != NULL)
        authbridge_set_expected_cbt(a->bridge, md5);
}

static const char *
scheme_of(const char *p, size_t len)
{
    static const char *const known[] = {"NTLM", "Negotiate", "Basic", "Digest", "Bearer"};
    size_t n = 0;
    while (n < len && p[n] != ' ')
        n++;
    for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++)
        if (strlen(known[i]) == n && strncasecmp(p, known[i], n) == 0)
            return known[i];
    return "other";
}

static void
add_header(struct evbuffer *out, const char *name, const char *v, size_t len)
{
    evbuffer_add(out, name, strlen(name));
    evbuffer_add(out, ": ", 2);
    evbuffer_add(out, v, len);
    evbuffer_add(out, "\r\n", 2);
}

enum authn_verdict
authn_request(struct authn *a, const struct conf_route *route, const struct h1_header *authz,
              struct evbuffer *head_out, struct evbuffer *local_out, const char **scheme_out,
              const char **why_out)
{
    struct authbridge_req r = {0};
    enum authn_verdict v = AUTHN_FORWARD;

    if (authz == NULL && a->bridge == NULL)
        return AUTHN_FORWARD; /* what the bridge does for a fresh state without credentials */
    if (authz != NULL)
        *scheme_out = scheme_of(authz->value.p, authz->value.len);
    if (bridge_of(a) == NULL) {
        *why_out = "out of memory";
        return AUTHN_LOCAL_400;
    }
    if (authbridge_on_request(a->bridge, route, authz ? authz->value.p : NULL,
                              authz ? authz->value.len : 0, &r) != 0) {
        *why_out = "out of memory";
        return AUTHN_LOCAL_400;
    }
    switch (r.action) {
    case AUTHBRIDGE_PASS:
        if (authz != NULL) {
            evbuffer_add(head_out, authz->line.p, authz->line.len);
            evbuffer_add(head_out, "\r\n", 2);
        }
        break;
    case AUTHBRIDGE_REPLACE:
        /* Keep the client's spelling of the header name; only the value is the bridge's. */
        evbuffer_add(head_out, authz ? authz->name.p : "Authorization",
                     authz ? authz->name.len : 13);
        evbuffer_add(head_out, ": ", 2);
        evbuffer_add(head_out, r.authorization, r.authorization_len);
        evbuffer_add(head_out, "\r\n", 2);
        break;
    case AUTHBRIDGE_CHALLENGE:
        for (size_t i = 0; i < r.www.n; i++)
            add_header(local_out, "WWW-Authenticate", r.www.v[i], r.www.len[i]);
        v = AUTHN_LOCAL_401;
        break;
    case AUTHBRIDGE_REJECT:
        *why_out = r.why;
        v = AUTHN_LOCAL_400;
        break;
    }
    if (r.trace_done)
        trace_log(a);
    authbridge_req_clear(&r);
    bridge_release_if_idle(a);
    return v;
}

void
authn_request_streams(struct authn *a)
{
    if (a->bridge != NULL && authbridge_streaming(a->bridge))
        trace_log(a);
}

bool
authn_response(struct authn *a, const struct conf_route *route, const struct h1_head *resp,
               struct evbuffer *head_out)
{
    struct authbridge_slice www[MAX_WWW];
    size_t n = 0;
    struct authbridge_resp r = {0};
    bool set = false;

    for (size_t i = 0; i < resp->nheaders && n < MAX_WWW; i++) {
        if (h1_slice_eq(resp->headers[i].name, "WWW-Authenticate")) {
            www[n].p = resp->headers[i].value.p;
            www[n].len = resp->headers[i].value.len;
            n++;
        }
    }
    /* A fresh state ignores interim and non-401 responses: only a 401 needs the bridge. */
    if (a->bridge == NULL && resp->status != 401)
        return false;
    if (bridge_of(a) == NULL ||
        authbridge_on_response(a->bridge, route, resp->status, www, n, &r) != 0)
        return false; /* out of memory: the backend's offers pass unchanged */
    if (r.www_action == AUTHBRIDGE_WWW_SET) {
        for (size_t i = 0; i < r.www.n; i++)
            add_header(head_out, "WWW-Authenticate", r.www.v[i], r.www.len[i]);
        set = true;
    }
    if (r.trace_done)
        trace_log(a);
    authbridge_resp_clear(&r);
    bridge_release_if_idle(a);
    return set;
}
