/*
 * Edge authentication in a session (routes with auth = "edge"): the glue between the session's
 * parsed heads and evbuffers and auth/edge.h's pure state machine. One struct edgeauth per
 * client connection; the worker's acceptor (the proxy's keytab credential) is process-wide and
 * made on first use in each worker, i.e. after fork.
 *
 * The session calls, per client connection (the order of auth/edge.h):
 *
 *   edgeauth_request()          every request head of an edge route, before a backend is
 *                               chosen: EDGEAUTH_LOCAL (answer, forward nothing) or
 *                               EDGEAUTH_PROCEED (fresh_backend: drop the pinned connection)
 *   edgeauth_backend_request()  once the backend connection is up: the Authorization line to
 *                               put on the head, or EDGEAUTH_LOCAL (delegation refused)
 *   edgeauth_response()         every final response head from the backend: PASS (with the
 *                               WWW-Authenticate lines the client sees, possibly none),
 *                               RESEND (the NTLM AUTHENTICATE leg) or LOCAL
 *   edgeauth_backend_lost()     the backend connection went
 *   edgeauth_free()             the client connection closed: every credential goes
 *
 * Logs the auth trace (one line per handshake, never tokens or passwords) and the acceptor's
 * failures; never logs a credential.
 */
#ifndef PROXY_EDGEAUTH_H
#define PROXY_EDGEAUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "conf/conf.h"
#include "proxy/http1.h"

struct evbuffer;
struct edgeauth;

/* Seconds between two attempts to acquire the acceptor after a failure. */
#define EDGEAUTH_RETRY_S 5

enum edgeauth_verdict {
    EDGEAUTH_PROCEED = 0,       /* request: authenticated, get the backend connection ready */
    EDGEAUTH_FORWARD,           /* backend_request: send the head with *authline */
    EDGEAUTH_FORWARD_NEGOTIATE, /* backend_request: send the head with Content-Length: 0 and
                                 *authline (NTLM NEGOTIATE), keep the client's body unread */
    EDGEAUTH_PASS,              /* response: deliver, with *www in place of the backend's
                                   WWW-Authenticate lines */
    EDGEAUTH_RESEND,            /* response: swallow this 401, send the request again with
                                   its body and *authline, on the same connection */
    EDGEAUTH_LOCAL,             /* answer status_out with why_out; on a 401 *www holds the
                                   WWW-Authenticate lines; forward nothing */
};

/* Returns owned state for one client connection (edgeauth_free), or NULL. */
struct edgeauth *edgeauth_new(uint64_t session_id);

/* Destroys the user's credentials and contexts, zeroing passwords; logs a pending trace.
 * Accepts NULL. */
void edgeauth_free(struct edgeauth *ea);

/*
 * Client side of a request head on edge route r. authz: its Authorization header or NULL.
 * client_tls: the client connection is TLS. Returns EDGEAUTH_PROCEED (*fresh_out: the pinned
 * backend connection belongs to an earlier identity or handshake and must be replaced) or
 * EDGEAUTH_LOCAL with *status_out (401 with WWW-Authenticate lines appended to www_out, 400,
 * 403, 502, 503 while the proxy's credential cannot be had, 500 out of memory) and *why_out
 * (static text, safe to send and log). *scheme_out: static scheme name for the access log.
 * Borrows everything.
 */
enum edgeauth_verdict edgeauth_request(struct edgeauth *ea, const struct conf *c,
                                       const struct conf_route *r, const struct h1_header *authz,
                                       bool client_tls, struct evbuffer *www_out, bool *fresh_out,
                                       int *status_out, const char **why_out,
                                       const char **scheme_out);

/*
 * Backend side, once the backend connection for the request edgeauth_request let through is
 * up. cert_hash: the tls-server-end-point hash (32 bytes) of the certificate that connection
 * presented, NULL for plain backends (sent as channel bindings). Appends the whole
 * "Authorization: ...\r\n" line to authline_out. Returns EDGEAUTH_FORWARD,
 * EDGEAUTH_FORWARD_NEGOTIATE or EDGEAUTH_LOCAL (*status_out 403 or 502, or 500; *why_out).
 * Borrows everything.
 */
enum edgeauth_verdict edgeauth_backend_request(struct edgeauth *ea, const struct conf_route *r,
                                               const unsigned char *cert_hash,
                                               struct evbuffer *authline_out, int *status_out,
                                               const char **why_out);

/*
 * A final (>= 200) response head from the backend. Returns EDGEAUTH_PASS (www_out: the
 * WWW-Authenticate lines to show, possibly none), EDGEAUTH_RESEND (authline_out: the
 * Authorization line of the next leg) or EDGEAUTH_LOCAL (*status_out, *why_out; the caller
 * closes the backend connection and calls edgeauth_backend_lost). Borrows everything.
 */
enum edgeauth_verdict edgeauth_response(struct edgeauth *ea, const struct h1_head *resp,
                                        struct evbuffer *www_out, struct evbuffer *authline_out,
                                        int *status_out, const char **why_out);

/* The backend connection is gone (or was replaced): its handshake state goes, the user's
 * credential stays. Accepts NULL. */
void edgeauth_backend_lost(struct edgeauth *ea);

/* The authenticated user ("alice@LAB.TEST"), "" before. A view valid until the next call on
 * ea. Accepts NULL (returns ""). */
const char *edgeauth_user(const struct edgeauth *ea);

/*
 * Copies src (a request head as headers_request wrote it: CRLF lines, ending in an empty line)
 * into dst without its final CRLF and, when no_body is set, without its Content-Length and
 * Transfer-Encoding lines and with "Content-Length: 0" instead: the head of an NTLM NEGOTIATE
 * leg, whose body stays with the client until the AUTHENTICATE leg. Borrows src (unchanged).
 * Returns 0 or -1 (out of memory).
 */
int edgeauth_head_prefix(struct evbuffer *src, bool no_body, struct evbuffer *dst);

#endif
