/*
 * exshim's own answers on a session (see session_int.h): the reply goes out through the
 * client's output (its bytes from reply.c), the access line is written, and the session goes
 * back to waiting for a head or closes.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>

#include <event2/buffer.h>

#include "proxy/log.h"
#include "proxy/reply.h"
#include "proxy/session_int.h"

/* keep is set only when the request had no body left to discard. */
void
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

void
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

void
local_401(struct session *s, struct evbuffer *offers, bool keep, size_t head_len)
{
    local_response(s, 401, "Unauthorized", "exshim: authentication required\n", offers, keep);
    /* Kept open: the head is done with; the next one follows it in the input. */
    if (!s->closed && s->resp != RESP_CLOSING)
        evbuffer_drain(conn_input(s->client), head_len);
}

void
refuse_request(struct session *s, int status, const char *why)
{
    /* Log where the request was cut, never its content. */
    log_info("sid=%" PRIu64 " client %s: rejected request: %s", s->id, s->peer, why);
    local_error(s, status, "exshim: %s", why);
}

void
backend_error(struct session *s, const char *what)
{
    log_warnx("sid=%" PRIu64 " backend %s: %s", s->id, s->be->name, what);
    local_error(s, 502, "exshim: backend %s %s", s->be->name, what);
}
