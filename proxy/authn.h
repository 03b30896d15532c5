/*
 * Per-session authentication flow: connects the pure auth/ modules (offer rewrite, bridge) to a
 * session. The only proxy file that knows auth/.
 */
#ifndef PROXY_AUTHN_H
#define PROXY_AUTHN_H

#include <stdbool.h>
#include <stddef.h>

#include "conf/conf.h"
#include "proxy/http1.h"

struct evbuffer;
struct authn;

/* Returns owned state for one client connection (free with authn_free), or NULL. */
struct authn *authn_new(uint64_t session_id);
void authn_free(struct authn *a);

/* The pinned backend connection was lost: a handshake in progress must restart. */
void authn_backend_lost(struct authn *a);

/* The tls-server-end-point hash of the certificate the backend presented (TLS backends), so the
 * trace can say whether a client's channel binding can match. Borrows hash (copied). */
void authn_set_backend_cert(struct authn *a, const unsigned char hash[32]);

enum authn_verdict {
    AUTHN_FORWARD,   /* forward the request; Authorization handled (appended to head_out) */
    AUTHN_LOCAL_401, /* answer the client with the 401 in local_out; forward nothing */
    AUTHN_LOCAL_400, /* malformed credentials: answer 400 (why in *why_out) */
};

/*
 * Request side. authz: the client's Authorization header or NULL. Appends the Authorization
 * line to forward (if any) to head_out. On AUTHN_LOCAL_401 appends the WWW-Authenticate lines of
 * a fresh challenge to local_out. scheme_out receives a static scheme name for the access log.
 */
enum authn_verdict authn_request(struct authn *a, const struct conf_route *route,
                                 const struct h1_header *authz, struct evbuffer *head_out,
                                 struct evbuffer *local_out, const char **scheme_out,
                                 const char **why_out);

/* The request just forwarded streams with no response head until it ends (RPC_IN_DATA): the
 * auth trace of the handshake it completes is written now. */
void authn_request_streams(struct authn *a);

/*
 * Response side: emits into head_out the WWW-Authenticate lines the client should see for a
 * response with the given status and the backend's headers (all of them, so order is kept).
 * Returns true when it wrote the challenge lines itself (the caller then skips the backend's
 * WWW-Authenticate lines), false to forward them untouched.
 */
bool authn_response(struct authn *a, const struct conf_route *route, const struct h1_head *resp,
                    struct evbuffer *head_out);

#endif
