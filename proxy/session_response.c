/*
 * A backend's response head on a session (see session_int.h): read_response_head decides what
 * the bytes at the front of the backend's input are, touching nothing of the session; the
 * caller acts on that verdict: a 502, or the head rewritten (authentication offers, framing,
 * Connection) and put in front of the body for the client.
 */
#include <inttypes.h>

#include <event2/buffer.h>

#include "proxy/authn.h"
#include "proxy/headers.h"
#include "proxy/log.h"
#include "proxy/scratch.h"
#include "proxy/session_int.h"

enum head_verdict {
    HEAD_WAIT,     /* not complete yet */
    HEAD_TOO_BIG,  /* no end within max_header_bytes */
    HEAD_NOMEM,    /* no header array */
    HEAD_INVALID,  /* not a valid response head: *why */
    HEAD_SWITCH,   /* 101: exshim relays HTTP only */
    HEAD_BAD_BODY, /* the body bytes that came with it already break the framing: *why */
    HEAD_INTERIM,  /* 1xx: forward it, the final response follows */
    HEAD_FINAL,    /* a final response: *body is its framing */
};

/*
 * Reads the response head at the front of in (to a request with method HEAD when head_method):
 * *h (views into in) and *head_len for HEAD_INTERIM, HEAD_FINAL and HEAD_BAD_BODY, *body (the
 * framing) for those too. Borrows everything; consumes nothing.
 */
static enum head_verdict
read_response_head(const struct conf *c, struct evbuffer *in, bool head_method, struct h1_head *h,
                   struct frame *body, size_t *head_len, const char **why)
{
    size_t len = evbuffer_get_length(in), maxh = 0;
    size_t look = len < c->max_header_bytes ? len : c->max_header_bytes;
    const char *p = (const char *)evbuffer_pullup(in, (ev_ssize_t)look);
    *head_len = len ? h1_head_end(p, look) : 0;
    if (*head_len == 0)
        return len >= c->max_header_bytes ? HEAD_TOO_BIG : HEAD_WAIT;
    struct h1_header *hdrs = admit_response_headers(c, &maxh);
    int status;
    if (hdrs == NULL)
        return HEAD_NOMEM;
    if (h1_parse_response(p, *head_len, head_method, h, hdrs, maxh, &status, why) != H1_OK)
        return HEAD_INVALID;
    if (h->status == 101)
        return HEAD_SWITCH;
    frame_init(body, h);
    if (h->status < 200)
        return HEAD_INTERIM;
    /* What arrived with the head is checked before the head goes out: a response broken from
     * its first chunk line gets the client a 502, not half a message. */
    if (frame_check_ahead(body, in, *head_len, why) != 0)
        return HEAD_BAD_BODY;
    return HEAD_FINAL;
}

bool
take_response_head(struct session *s)
{
    struct evbuffer *in = conn_input(s->backend);
    struct h1_head h;
    size_t head_len;
    const char *why = NULL;

    switch (read_response_head(conf_of(s), in, s->req_head_method, &h, &s->resp_body, &head_len,
                               &why)) {
    case HEAD_WAIT:
        return false;
    case HEAD_TOO_BIG:
        backend_error(s, "sent a response head larger than max_header_bytes");
        return false;
    case HEAD_NOMEM:
        session_close(s);
        return false;
    case HEAD_INVALID:
        log_warnx("sid=%" PRIu64 " backend %s: invalid response: %s", s->id, s->be->name, why);
        local_error(s, 502, "exshim: backend %s sent an invalid response (%s)", s->be->name, why);
        return false;
    case HEAD_SWITCH:
        backend_error(s, "switched protocols");
        return false;
    case HEAD_BAD_BODY:
        log_warnx("sid=%" PRIu64 " backend %s: bad chunked framing in response (%s)", s->id,
                  s->be->name, why);
        local_error(s, 502, "exshim: backend %s sent a response with broken chunked framing",
                    s->be->name);
        return false;
    case HEAD_INTERIM:
        s->xlog.status = h.status;
        break;
    case HEAD_FINAL: {
        s->xlog.status = h.status;
        /* The backend will close: its connection cannot carry the next request. */
        bool last = s->client_eof && evbuffer_get_length(conn_input(s->client)) == 0;
        /* Draining closes after this response, but not in the middle of an NTLM/Negotiate
         * handshake: the client must answer the challenge on this connection, so the close
         * waits for the handshake's verdict. */
        bool drain_close = *s->env->draining && !headers_mid_handshake(&h);
        s->close_after = last || !s->client_keep_alive || !h.keep_alive || drain_close;
        break;
    }
    }
    struct evbuffer *www = NULL, *hb = scratch_get();
    if (hb == NULL || (www = scratch_get()) == NULL) {
        scratch_put(hb);
        session_close(s);
        return false;
    }
    bool set = false;
    if (s->edge_req) {
        /* The client sees the edge's WWW-Authenticate lines only, never the backend's. */
        enum edge_resp_step st = h.status >= 200 ? edge_response_head(s, &h, www) : EDGE_STEP_PASS;
        if (st != EDGE_STEP_PASS) {
            scratch_put(www);
            scratch_put(hb);
            if (st == EDGE_STEP_RESEND)
                evbuffer_drain(in, head_len);
            return st == EDGE_STEP_RESEND;
        }
        set = true;
    } else {
        bool has_www = h1_find(&h, "WWW-Authenticate") != NULL;
        set = (has_www || h.status >= 200) && authn_response(s->auth, s->route, &h, www);
    }
    bool made = headers_response(&h, set ? www : NULL, s->close_after, s->client_minor, hb);
    scratch_put(www);
    if (!made) {
        scratch_put(hb);
        session_close(s);
        return false;
    }
    size_t nh = evbuffer_get_length(hb);
    evbuffer_drain(in, head_len);
    s->xlog.bytes_out += nh;
    if (h.status < 200) {
        /* 100 Continue and friends go out at once; the final response follows */
        evbuffer_add_buffer(conn_output(s->client), hb);
        scratch_put(hb);
        return true;
    }
    /* The rewritten head replaces the received one in front of the body: after the drain it
     * usually fits where the old head was, so head and first body bytes leave in one write
     * (one TLS record) instead of two. */
    evbuffer_prepend(in, evbuffer_pullup(hb, -1), nh);
    scratch_put(hb);
    s->resp_prefix = nh;
    s->resp = RESP_BODY;
    return true;
}
