/* Request admission. See admit.h. */
#include "proxy/admit.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/buffer.h>

/* Header arrays sized by max_headers (which may be 10000, too large for the stack) and the
 * normalised-target buffer: one set per process, since a worker handles one head at a time.
 * Requests and responses get their own arrays: a response head may still be in use while the
 * next request head is parsed. */
static struct h1_header *hdr_req, *hdr_resp;
static size_t hdr_cap;
static char *tbuf;
static size_t tcap;

static int
scratch(const struct conf *c)
{
    if (hdr_cap < c->max_headers) {
        struct h1_header *a = realloc(hdr_req, c->max_headers * sizeof(*a));
        if (a == NULL)
            return -1;
        hdr_req = a;
        struct h1_header *b = realloc(hdr_resp, c->max_headers * sizeof(*b));
        if (b == NULL)
            return -1;
        hdr_resp = b;
        hdr_cap = c->max_headers;
    }
    /* The normalised target is never longer than the raw one, inside a head. */
    if (tcap < c->max_header_bytes) {
        char *t = realloc(tbuf, c->max_header_bytes);
        if (t == NULL)
            return -1;
        tbuf = t;
        tcap = c->max_header_bytes;
    }
    return 0;
}

struct h1_header *
admit_response_headers(const struct conf *c, size_t *cap_out)
{
    if (scratch(c) != 0)
        return NULL;
    *cap_out = c->max_headers;
    return hdr_resp;
}

/* Refused: why is prefix followed by detail (both static text). */
static int
refuse(struct admit *a, int status, const char *prefix, const char *detail)
{
    a->status = status;
    snprintf(a->why, sizeof(a->why), "%s%s", prefix, detail);
    return 0;
}

/* Does route r publish Exchange's remote PowerShell vdir by name? Only then may /powershell
 * pass the guard. */
static bool
publishes_powershell(const struct conf_route *r)
{
    return !r->is_default && strncasecmp(r->path, "/powershell", 11) == 0 &&
           (r->path[11] == '\0' || r->path[11] == '/');
}

int
admit_request(const struct conf *c, struct evbuffer *in, size_t head_len, struct admit *a)
{
    const char *why = NULL;
    int status = 400;

    memset(a, 0, sizeof(*a));
    if (scratch(c) != 0)
        return -1;
    const char *buf = (const char *)evbuffer_pullup(in, (ev_ssize_t)head_len);
    if (buf == NULL)
        return -1;
    if (h1_parse_request(buf, head_len, &a->h, hdr_req, c->max_headers, &status, &why) != H1_OK)
        return refuse(a, status, "", why);
    enum target_policy pol =
        c->target_policy == CONF_TARGET_NORMALIZE ? TARGET_NORMALIZE : TARGET_STRICT;
    if (target_normalize(a->h.target.p, a->h.target.len, pol, tbuf, tcap, &a->t, &why) != 0)
        return refuse(a, 400, "request target refused: ", why);
    if (a->t.asterisk && !h1_slice_eq(a->h.method, "OPTIONS"))
        return refuse(a, 400, "'*' is a target for OPTIONS only", "");
    const struct h1_header *host = h1_find(&a->h, "Host");
    if (a->t.absolute && host != NULL && !target_host_agrees(&a->t, host->value.p, host->value.len))
        return refuse(a, 400, "absolute-form target names another host than Host", "");

    a->route = a->t.asterisk ? NULL : conf_route_find(c, a->t.path, a->t.path_len);
    if (a->route == NULL) {
        a->status = 404;
        snprintf(a->why, sizeof(a->why), "no route for this path");
        return 0;
    }
    if (a->route->guard) {
        struct guard_input gi = {
            .path = a->t.path,
            .path_len = a->t.path_len,
            .query = a->t.query,
            .query_len = a->t.query_len,
            .headers = a->h.headers,
            .nheaders = a->h.nheaders,
            .powershell_published = publishes_powershell(a->route),
        };
        a->rule = guard_check(&gi);
        if (a->rule != NULL)
            return refuse(a, 403, "refused by rule ", a->rule->id);
    }
    /* Every body byte already received is checked before anything is forwarded: a malformed
     * request that arrived whole never reaches the backend. */
    frame_init(&a->body, &a->h);
    if (frame_check_ahead(&a->body, in, head_len, &why) != 0)
        return refuse(a, 400, "bad chunked framing in request body: ", why);
    return 0;
}
