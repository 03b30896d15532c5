/*
 * Private to the session files (session.c and session_*.c): struct session, its states and the
 * helpers they share. Nothing outside them includes this; the rest of the proxy sees
 * proxy/session.h only.
 *
 *   session.c          the state machine (process_client, process_backend), the body relays,
 *                      the timers and the one teardown path (session_close)
 *   session_request.c  a complete request head: admission verdict, auth, the forwarded head
 *   session_response.c a backend's response head: parse, auth offers, the head for the client
 *   session_edge.c     the same for routes with auth = "edge" (proxy/edgeauth.h)
 *   session_backend.c  the pinned backend connection: choice, connect, its callbacks, its end
 *   session_reply.c    exshim's own answers to the client (the bytes come from reply.c)
 */
#ifndef PROXY_SESSION_INT_H
#define PROXY_SESSION_INT_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/time.h>

#include <event2/event.h>

#include "conf/conf.h"
#include "proxy/accesslog.h"
#include "proxy/admit.h"
#include "proxy/conn.h"
#include "proxy/frame.h"
#include "proxy/session.h"

struct authn;
struct edgeauth;
struct evbuffer;

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
    struct timeval hard_due; /* the deadline, when hard_timer */
    struct timeval timer_at; /* when the event timer fires, while it is pending */
    unsigned timeout_ms;
    struct session *next, *prev; /* the registry's list */
    struct xlog xlog;
};

/* ---- small helpers ------------------------------------------------------------------- */

static inline const struct conf *
conf_of(const struct session *s)
{
    return s->env->conf;
}

static inline void
now(const struct session *s, struct timeval *tv)
{
    event_base_gettimeofday_cached(s->env->base, tv);
}

static inline void
touch(struct session *s)
{
    now(s, &s->last_activity);
}

/* The end of a callback: what was queued on either side is written now (speculatively), and
 * reading resumes where buffers have room again. */
static inline void
end_turn(struct session *s)
{
    if (s->closed)
        return;
    if (s->backend != NULL)
        conn_sync(s->backend);
    conn_sync(s->client);
}

static inline size_t
buffer_cap(const struct session *s)
{
    const struct conf *c = conf_of(s);
    return c->max_header_bytes > c->high_water ? c->max_header_bytes : c->high_water;
}

/* The exchange in progress goes to s->be; to s->server too when server_known. For the access
 * line, which must not name what an earlier exchange used. */
static inline void
record_backend(struct session *s, bool server_known)
{
    s->xlog.be = s->be;
    s->xlog.server = server_known ? &s->be->servers[s->server] : NULL;
}

/* ---- session.c: state machine, timer expiry, teardown ---------------------------------- */

/* Writes the access line of the exchange in progress (once) and counts it. */
void log_access(struct session *s);
/* The only teardown path; the struct is freed from the event loop, s->closed stays readable. */
void session_close(struct session *s);
/* Closes the pinned backend connection and forgets what it was authenticated as. */
void drop_backend(struct session *s);
/* Flushes what the client has been sent, then closes (bounded). */
void close_after_flush(struct session *s);
/* Everything the client sent is handled here, whatever the state. */
void process_client(struct session *s);
/* Everything the backend sent is handled here, whatever the state. */
void process_backend(struct session *s);
/* The response ended: log it, then the next request or the close. */
void finish_exchange(struct session *s);
/* Moves response body bytes to the client; hw: the client output's high-water mark. */
void relay_response_body(struct session *s, size_t hw);

/* ---- session_timer.c: the session's timer ------------------------------------------ */

/* A silence timer of ms: every read or write pushes it back. */
void arm_timer(struct session *s, unsigned ms);
/* A deadline ms after from: nothing that arrives meanwhile moves it. */
void arm_deadline(struct session *s, const struct timeval *from, unsigned ms);
/* The header timeout of the current route (the shortest of all before the first request). */
unsigned header_timeout(const struct session *s);
/* Called when the timer fires: true when the expiry has moved since it was set (the timer is
 * set again for the rest), false when it is due. */
bool timer_early(struct session *s);

/* ---- session_reply.c: exshim's own answers ------------------------------------------- */

/* Answers the client from exshim itself; the connection closes after it unless keep. */
void local_response(struct session *s, int status, const char *reason, const char *body,
                    struct evbuffer *extra, bool keep);
/* A local answer whose body is the formatted text and a newline; the connection closes. */
void local_error(struct session *s, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* The local 401 to the head_len-byte request head at the front of the client's input, with the
 * WWW-Authenticate lines offers; keep: the connection stays (the head had no body). */
void local_401(struct session *s, struct evbuffer *offers, bool keep, size_t head_len);
/* Refuses the request at the front of the client's input: logged once, answered, closed. */
void refuse_request(struct session *s, int status, const char *why);
/* 502 naming the backend: what it did wrong. */
void backend_error(struct session *s, const char *what);

/* ---- session_request.c ------------------------------------------------------------- */

/* Starts an exchange from the complete head_len-byte request head at the front of the client's
 * input. */
void start_request(struct session *s, size_t head_len);

/* ---- session_response.c ------------------------------------------------------------ */

/* Takes the response head at the front of the backend's input, if it is complete. Returns
 * false when it must wait or the session ended. */
bool take_response_head(struct session *s);

/* ---- session_edge.c ---------------------------------------------------------------- */

/* A request head on an edge route, admitted as a; authz: its Authorization header or NULL. */
void edge_start(struct session *s, const struct admit *a, const struct h1_header *authz,
                size_t head_len);
/* The backend connection is up for an edge request: the head goes out with edge's
 * Authorization. */
void edge_send(struct session *s);
/* Drops the body of a swallowed NTLM 401 as it arrives, then sends the request again. */
void edge_discard_body(struct session *s);

enum edge_resp_step {
    EDGE_STEP_PASS,   /* deliver the head, with www */
    EDGE_STEP_RESEND, /* swallow it: the caller drains the head; the body is discarded next */
    EDGE_STEP_DONE,   /* answered locally */
};

/* A final response head to an edge request (h: its parse, views into the backend's input). */
enum edge_resp_step edge_response_head(struct session *s, const struct h1_head *h,
                                       struct evbuffer *www);

/* ---- session_backend.c ------------------------------------------------------------- */

/*
 * Hands the exchange to a new backend connection to the pool of route r: pending (owned, NULL
 * for edge requests, whose head is in s->edge_head) waits for the connect, the client is not
 * read meanwhile. On failure the client has its answer.
 */
void backend_connect(struct session *s, const struct conf_route *r, struct evbuffer *pending);

#endif
