/*
 * Head rewriting between client and backend, as pure functions over parsed heads: what is
 * forwarded, in which order, and what exshim adds. No I/O, no auth calls: the caller hands in
 * the Authorization or WWW-Authenticate lines it wants in place of the received ones.
 */
#ifndef PROXY_HEADERS_H
#define PROXY_HEADERS_H

#include <stdbool.h>

#include "proxy/http1.h"
#include "proxy/target.h"

struct evbuffer;

/* Is h a 401 in the middle of a connection-bound handshake: a WWW-Authenticate of NTLM or
 * Negotiate carrying a token (the challenge the client answers on this same connection)? */
bool headers_mid_handshake(const struct h1_head *h);

/* The Authorization header of h in *authz_out (NULL when absent). Returns -1 when h has more
 * than one: which one counts would be ambiguous. Returns a view into h. */
int headers_find_authz(const struct h1_head *h, const struct h1_header **authz_out);

/* What exshim says about the client in X-Forwarded-*. */
struct headers_client {
    const char *ip; /* the client's address as text */
    bool tls;       /* the client connection is TLS */
};

/*
 * Writes the head sent to the backend into out: the request line (origin-form; the normalised
 * target when it differs from the raw one, byte for byte otherwise), the client's header lines
 * byte for byte and in order without hop-by-hop and X-Forwarded-* ones, authline (the whole
 * Authorization line with CRLF, or empty to drop it) in the place of authz, then X-Forwarded-For,
 * -Proto and -Host and, for HTTP/1.0 clients, Connection: keep-alive (the pinned backend
 * connection stays open). Borrows everything; drains authline. False when out of memory
 * (nothing was written).
 */
bool headers_request(const struct h1_head *h, const struct target *t, const struct h1_header *authz,
                     struct evbuffer *authline, const struct headers_client *client,
                     struct evbuffer *out);

/*
 * Writes the response head for the client into out: status line (HTTP/1.1, the backend's code
 * and reason), the backend's header lines byte for byte and in order without hop-by-hop ones.
 * www NULL keeps the backend's WWW-Authenticate lines; otherwise they are dropped and www (whole
 * lines) goes where the first one was, or at the end when there was none. For a final status,
 * close adds Connection: close, and an HTTP/1.0 client (client_minor 0) gets
 * Connection: keep-alive otherwise. Borrows everything; drains www. False when out of memory
 * (nothing was written).
 */
bool headers_response(const struct h1_head *h, struct evbuffer *www, bool close, int client_minor,
                      struct evbuffer *out);

#endif
