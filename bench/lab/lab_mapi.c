/*
 * exshim-lab: /mapi/emsmdb and /mapi/nspi, the MAPI over HTTP endpoints (MS-OXCMAPIHTTP).
 *
 * Every answer is a chunked 200 whose body is meta-tags (PROCESSING, PENDING, DONE), the
 * additional headers after DONE, an empty line and the binary response body, one chunk per
 * meta-tag, each flushed as it is produced. Session contexts (MapiContext cookie) are bound to
 * the user that created them. NotificationWait holds for notify_hold_ms and sends PENDING every
 * pending_ms meanwhile; Execute (and every NSPI call) echoes its request body after DONE.
 */
#include "bench/lab/lab.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "auth/b64.h"

#define CTX_BUCKETS 4096
#define CTX_MAX 200000

struct mapi_ctx {
    char id[48];
    char user[2 * LAB_NTLM_NAME_MAX + 8];
    unsigned seq;
    struct mapi_ctx *next;
};

static struct mapi_ctx *ctx_table[CTX_BUCKETS];
static size_t nctx;

static unsigned
ctx_hash(const char *id)
{
    uint32_t h = 2166136261u;
    for (; *id; id++)
        h = (h ^ (uint8_t)*id) * 16777619u;
    return h % CTX_BUCKETS;
}

static struct mapi_ctx *
ctx_find(const char *id)
{
    for (struct mapi_ctx *x = ctx_table[ctx_hash(id)]; x != NULL; x = x->next)
        if (strcmp(x->id, id) == 0)
            return x;
    return NULL;
}

static struct mapi_ctx *
ctx_new(const char *user)
{
    uint8_t raw[18];
    size_t n = 0;
    if (nctx >= CTX_MAX)
        return NULL;
    struct mapi_ctx *x = calloc(1, sizeof(*x));
    if (x == NULL)
        return NULL;
    memcpy(x->id, "MAPI", 4);
    lab_random(raw, sizeof(raw));
    authb64_encode(raw, sizeof(raw), x->id + 4, sizeof(x->id) - 4, &n);
    snprintf(x->user, sizeof(x->user), "%s", user);
    unsigned b = ctx_hash(x->id);
    x->next = ctx_table[b];
    ctx_table[b] = x;
    nctx++;
    return x;
}

static void
ctx_delete(struct mapi_ctx *x)
{
    struct mapi_ctx **pp = &ctx_table[ctx_hash(x->id)];
    while (*pp != NULL && *pp != x)
        pp = &(*pp)->next;
    if (*pp == x)
        *pp = x->next;
    nctx--;
    free(x);
}

/* Value of cookie NAME in a Cookie header, copied into out. */
static bool
cookie_value(const char *cookies, const char *name, char *out, size_t cap)
{
    size_t n = strlen(name);
    const char *p = cookies;
    while (*p) {
        while (*p == ' ' || *p == ';')
            p++;
        if (strncmp(p, name, n) == 0 && p[n] == '=') {
            p += n + 1;
            size_t l = strcspn(p, ";");
            while (l > 0 && p[l - 1] == ' ')
                l--;
            if (l >= cap)
                return false;
            memcpy(out, p, l);
            out[l] = '\0';
            return true;
        }
        p += strcspn(p, ";");
    }
    return false;
}

static void
chunk(struct evbuffer *out, const void *data, size_t len)
{
    evbuffer_add_printf(out, "%zx\r\n", len);
    evbuffer_add(out, data, len);
    evbuffer_add(out, "\r\n", 2);
}

static const char *
cookie_path(const struct lab_conn *c)
{
    return c->req.vdir->handler == LAB_H_MAPI_NSPI ? "/mapi/nspi" : "/mapi/emsmdb";
}

static void
mapi_headers(struct lab_conn *c, struct evbuffer *out, int code, const char *ctype,
             const struct mapi_ctx *x, bool clear_ctx)
{
    const struct lab_preset *p = &g_lab.preset;
    char rid[37];
    const char *sec = c->tls ? "; secure" : "";
    lab_uuid(rid);
    evbuffer_add_printf(out, "HTTP/1.1 200 OK\r\n");
    if (ctype == NULL)
        evbuffer_add_printf(out, "Transfer-Encoding: chunked\r\n");
    evbuffer_add_printf(out,
                        "Content-Type: %s\r\n"
                        "Server: %s\r\n"
                        "request-id: %s\r\n"
                        "X-CalculatedBETarget: %s\r\n"
                        "X-ServerApplication: %s\r\n"
                        "X-RequestId: %s\r\n"
                        "X-ClientInfo: %s\r\n"
                        "X-RequestType: %s\r\n"
                        "X-PendingPeriod: %u\r\n"
                        "X-ExpirationInfo: %u\r\n"
                        "X-ResponseCode: %d\r\n"
                        "X-DiagInfo: %s\r\n"
                        "X-BEServer: %s\r\n"
                        "Cache-Control: private\r\n",
                        ctype ? ctype : "application/mapi-http", p->server, rid, p->be_target,
                        p->server_app, c->req.request_id, c->req.client_info, c->req.request_type,
                        p->pending_ms, p->mapi_expiration_ms, code, p->fe_server, p->fe_server);
    if (x != NULL) {
        uint8_t r[6];
        char rs[16];
        size_t n = 0;
        lab_random(r, sizeof(r));
        authb64_encode(r, sizeof(r), rs, sizeof(rs), &n);
        evbuffer_add_printf(out,
                            "Set-Cookie: MapiSequence=%u-%s; path=%s%s; HttpOnly\r\n"
                            "Set-Cookie: MapiContext=%s; path=%s%s; HttpOnly\r\n",
                            x->seq, rs, cookie_path(c), sec, x->id, cookie_path(c), sec);
    } else if (clear_ctx) {
        evbuffer_add_printf(out,
                            "Set-Cookie: MapiContext=; expires=Thu, 01-Jan-1970 00:00:00 GMT; "
                            "path=%s%s; HttpOnly\r\n"
                            "Set-Cookie: MapiSequence=; expires=Thu, 01-Jan-1970 00:00:00 GMT; "
                            "path=%s%s; HttpOnly\r\n",
                            cookie_path(c), sec, cookie_path(c), sec);
    }
    lab_headers_auth_tail(c, out);
    if (ctype == NULL)
        evbuffer_add_printf(out, "\r\n");
}

/* Non-zero X-ResponseCode: a text/html diagnostic with Content-Length. */
static void
mapi_fail(struct lab_conn *c, int code, const char *text)
{
    struct evbuffer *out = bufferevent_get_output(c->bev);
    char body[256];
    int n = snprintf(body, sizeof(body),
                     "<html><head><title>MAPI/HTTP</title></head><body>%s</body></html>\r\n", text);
    mapi_headers(c, out, code, "text/html", NULL, false);
    evbuffer_add_printf(out, "Content-Length: %d\r\n\r\n", n);
    evbuffer_add(out, body, (size_t)n);
    lab_log_access(c, 200);
}

/* DONE meta-tag, additional headers, empty line, body; then the last chunk. */
static void
send_done(struct lab_conn *c, uint64_t started_ms, const void *body, size_t blen)
{
    struct evbuffer *out = bufferevent_get_output(c->bev);
    char tag[160];
    int n = snprintf(tag, sizeof(tag), "DONE\r\nX-ElapsedTime: %llu\r\nX-StartTime: %s\r\n\r\n",
                     (unsigned long long)(lab_now_ms() - started_ms), lab_http_date());
    struct evbuffer *tmp = evbuffer_new();
    if (tmp == NULL)
        return;
    evbuffer_add(tmp, tag, (size_t)n);
    if (blen > 0)
        evbuffer_add(tmp, body, blen);
    size_t total = evbuffer_get_length(tmp);
    evbuffer_add_printf(out, "%zx\r\n", total);
    evbuffer_add_buffer(out, tmp);
    evbuffer_add(out, "\r\n0\r\n\r\n", 7);
    evbuffer_free(tmp);
}

static void
put32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static void
arm_tick(struct lab_conn *c, unsigned ms)
{
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    evtimer_add(c->tick_ev, &tv);
}

int
lab_mapi_request(struct lab_conn *c)
{
    const char *t = c->req.request_type;
    bool nspi = c->req.vdir->handler == LAB_H_MAPI_NSPI;
    uint64_t t0 = lab_now_ms();
    struct evbuffer *out = bufferevent_get_output(c->bev);
    char cid[64];
    struct mapi_ctx *x = NULL;

    if (t[0] == '\0') {
        mapi_fail(c, 7, "Missing header: X-RequestType");
        return 0;
    }
    if (c->req.request_id[0] == '\0') {
        mapi_fail(c, 7, "Missing header: X-RequestId");
        return 0;
    }
    bool connect = strcasecmp(t, nspi ? "Bind" : "Connect") == 0;
    if (connect) {
        /* a Connect with an old context replaces it (a reconnect ignores the sequence) */
        if (cookie_value(c->req.cookie, "MapiContext", cid, sizeof(cid)) &&
            (x = ctx_find(cid)) != NULL && strcmp(x->user, c->user) == 0)
            ctx_delete(x);
        x = ctx_new(c->user);
        if (x == NULL) {
            mapi_fail(c, 1, "Too many session contexts");
            return 0;
        }
        uint8_t body[128];
        size_t o = 0;
        static const char dn[] = "/o=Lab/ou=Exchange Administrative Group (FYDIBOHF23SPDLT)";
        put32(body + o, 0); /* StatusCode */
        o += 4;
        put32(body + o, 0); /* ErrorCode */
        o += 4;
        if (!nspi) {
            put32(body + o, 60000);     /* PollsMax */
            put32(body + o + 4, 6);     /* RetryCount */
            put32(body + o + 8, 10000); /* RetryDelay */
            o += 12;
            memcpy(body + o, dn, sizeof(dn));
            o += sizeof(dn);
            memcpy(body + o, "\0", 1);
            o += 1;
        }
        put32(body + o, 0); /* AuxiliaryBufferSize */
        o += 4;
        mapi_headers(c, out, 0, NULL, x, false);
        chunk(out, "PROCESSING\r\n", 12);
        send_done(c, t0, body, o);
        lab_log_access(c, 200);
        return 0;
    }
    if (strcasecmp(t, "PING") == 0) {
        mapi_headers(c, out, 0, NULL, NULL, false);
        chunk(out, "PROCESSING\r\n", 12);
        send_done(c, t0, NULL, 0);
        lab_log_access(c, 200);
        return 0;
    }
    if (!cookie_value(c->req.cookie, "MapiContext", cid, sizeof(cid))) {
        mapi_fail(c, 13, "Missing cookie: MapiContext");
        return 0;
    }
    x = ctx_find(cid);
    if (x == NULL || strcmp(x->user, c->user) != 0) {
        mapi_fail(c, 10, "Context not found");
        return 0;
    }
    x->seq++;
    if (strcasecmp(t, nspi ? "Unbind" : "Disconnect") == 0) {
        uint8_t body[12] = {0};
        ctx_delete(x);
        mapi_headers(c, out, 0, NULL, NULL, true);
        chunk(out, "PROCESSING\r\n", 12);
        send_done(c, t0, body, sizeof(body));
        lab_log_access(c, 200);
        return 0;
    }
    if (!nspi && strcasecmp(t, "NotificationWait") == 0) {
        mapi_headers(c, out, 0, NULL, x, false);
        chunk(out, "PROCESSING\r\n", 12);
        lab_log_access(c, 200);
        c->st = LAB_ST_MAPI_WAIT;
        c->wait_started_ms = t0;
        c->pendings = 0;
        unsigned hold = g_lab.preset.notify_hold_ms, per = g_lab.preset.pending_ms;
        arm_tick(c, per > 0 && per < hold ? per : hold);
        lab_conn_touch(c);
        return 0;
    }
    if (!nspi && strcasecmp(t, "Execute") != 0) {
        mapi_fail(c, 5, "Invalid request type");
        return 0;
    }
    /* Execute and the NSPI calls: the request body comes back after DONE */
    size_t blen = c->req.body ? evbuffer_get_length(c->req.body) : 0;
    const void *b = blen ? evbuffer_pullup(c->req.body, (ev_ssize_t)blen) : NULL;
    mapi_headers(c, out, 0, NULL, x, false);
    chunk(out, "PROCESSING\r\n", 12);
    send_done(c, t0, b, blen);
    lab_log_access(c, 200);
    return 0;
}

void
lab_mapi_tick(struct lab_conn *c)
{
    uint64_t now = lab_now_ms(), el = now - c->wait_started_ms;
    unsigned hold = g_lab.preset.notify_hold_ms, per = g_lab.preset.pending_ms;
    struct evbuffer *out = bufferevent_get_output(c->bev);
    if (el + 5 < hold) {
        chunk(out, "PENDING\r\n", 9);
        c->pendings++;
        uint64_t left = hold - el;
        arm_tick(c, per > 0 && per < left ? per : (unsigned)left);
        return;
    }
    uint8_t body[16];
    put32(body, 0);      /* StatusCode */
    put32(body + 4, 0);  /* ErrorCode */
    put32(body + 8, 0);  /* EventPending: nothing happened */
    put32(body + 12, 0); /* AuxiliaryBufferSize */
    send_done(c, c->wait_started_ms, body, sizeof(body));
    lab_log("mapi conn=%llu peer=%s NotificationWait done after %llu ms, %u PENDING",
            (unsigned long long)c->id, c->peer, (unsigned long long)el, c->pendings);
    if (!c->req.keep_alive) {
        lab_conn_finish(c);
        return;
    }
    lab_conn_resume(c);
}
