/*
 * Per-client-connection Negotiate/NTLM bridge (F1, F3, F5, F11).
 *
 * proxy/authn.c owns one struct authbridge per client connection and calls, in order:
 *   authbridge_on_request()  for every request head (with its Authorization value, if any),
 *   authbridge_on_response() for every response head from the pinned backend connection,
 *   authbridge_reset()       when that backend connection is lost,
 * and logs authbridge_trace_format() whenever a result says trace_done (and at close when
 * authbridge_trace_pending()).
 *
 * Translations (NTLM messages are never modified: their MIC covers all three):
 *   ntlm-to-negotiate  request  `NTLM <t>`                     -> `Negotiate <t>`
 *                      401      `Negotiate <raw CHALLENGE>`    -> `NTLM <same>`
 *                               `Negotiate <NegTokenResp(CHALLENGE)>` -> `NTLM <CHALLENGE>`
 *   negotiate-to-ntlm  request  `Negotiate <raw NTLMSSP>`      -> `NTLM <t>`
 *                               `Negotiate <SPNEGO init, NTLM NEGOTIATE mechToken>` -> `NTLM
 * <inner>` `Negotiate <NegTokenResp(AUTHENTICATE)>` -> `NTLM <inner>` Kerberos, or SPNEGO without
 * an NTLM mechToken -> exshim answers 401 `WWW-Authenticate: NTLM` itself (the client restarts in
 * NTLM) 401      `NTLM <CHALLENGE>` -> `Negotiate <same>` (client sent raw NTLM) or `Negotiate
 * <NegTokenResp accept-incomplete(CHALLENGE)>` (SPNEGO) final non-401 after a bridged handshake:
 * Negotiate tokens are dropped (exshim holds no session key, so it can neither forward nor forge a
 * mechListMIC: PROTOCOLS.md C.5). Initial 401 offers go through auth/offer.h.
 *
 * Pure code: no I/O, no logging. Tokens and passwords never reach the trace.
 */
#ifndef AUTH_BRIDGE_H
#define AUTH_BRIDGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "auth/offer.h"
#include "conf/conf.h"

struct authbridge;

/* What the proxy does with a request. */
enum authbridge_action {
    AUTHBRIDGE_PASS = 0,  /* forward the request unchanged */
    AUTHBRIDGE_REPLACE,   /* forward it with Authorization set to req.authorization */
    AUTHBRIDGE_CHALLENGE, /* do not forward; answer 401 (keep-alive) with req.www as the
                             WWW-Authenticate lines, one header per value */
    AUTHBRIDGE_REJECT,    /* do not forward; answer 400, req.why says why */
};

/* What the proxy does with the WWW-Authenticate headers of a response. */
enum authbridge_www {
    AUTHBRIDGE_WWW_KEEP = 0, /* forward them exactly as received */
    AUTHBRIDGE_WWW_SET,      /* remove them all and send resp.www instead (n may be 0), in order,
                                one header line per value, adding nothing else */
};

#define AUTHBRIDGE_MAX_VALUES OFFER_MAX

/* Header values owned by the result that holds them: NUL-terminated, v[i] has len[i] bytes. */
struct authbridge_values {
    size_t n;
    char *v[AUTHBRIDGE_MAX_VALUES];
    size_t len[AUTHBRIDGE_MAX_VALUES];
};

struct authbridge_req {
    enum authbridge_action action;
    char *authorization; /* REPLACE: new Authorization value, owned */
    size_t authorization_len;
    struct authbridge_values www; /* CHALLENGE: WWW-Authenticate values */
    int status;                   /* CHALLENGE: 401; REJECT: 400; else 0 */
    const char *why;              /* REJECT: static reason, safe to log and to send */
    bool trace_done;              /* a handshake ended: log authbridge_trace_format() now */
};

struct authbridge_resp {
    enum authbridge_www www_action;
    struct authbridge_values www; /* SET: values to send */
    bool trace_done;              /* a handshake ended: log authbridge_trace_format() now */
};

/* A header value as the proxy holds it: a view into its head buffer. */
struct authbridge_slice {
    const char *p;
    size_t len;
};

/* Returns owned bridge state for one client connection (free with authbridge_free), or NULL. */
struct authbridge *authbridge_new(void);

/* Frees st and everything it owns. Accepts NULL. */
void authbridge_free(struct authbridge *st);

/*
 * The pinned backend connection was lost. A handshake in progress cannot continue on a new
 * connection: its next leg is answered with CHALLENGE (fresh offers) so the client starts
 * over. The current trace gets reason backend-lost. Borrows st.
 */
void authbridge_reset(struct authbridge *st);

/*
 * Sets the MsvAvChannelBindings value that the backend will expect (the proxy computes it
 * with ntlmmsg_cbt_expected() from the certificate the backend presents, or the one clients
 * see). The trace then says whether each AUTHENTICATE's binding matches. Borrows both.
 */
void authbridge_set_expected_cbt(struct authbridge *st, const uint8_t md5[16]);

/*
 * Decides what happens to a client request under route. authz is the Authorization value
 * (authz == NULL: the request has none). Fills *out (clear it with authbridge_req_clear).
 * Returns 0, or -1 when memory ran out (answer 500; *out holds nothing to free).
 * Borrows st, route and authz; *out owns its strings.
 */
int authbridge_on_request(struct authbridge *st, const struct conf_route *route, const char *authz,
                          size_t authz_len, struct authbridge_req *out);

/* Frees the strings *r owns and zeroes it. Accepts a zeroed struct. */
void authbridge_req_clear(struct authbridge_req *r);

/*
 * Decides what the client sees of a backend response head: status and its WWW-Authenticate
 * values www[0..nwww) (each header line separately, in order). 1xx responses change nothing.
 * Fills *out (clear it with authbridge_resp_clear). Returns 0, or -1 when memory ran out.
 * Borrows st, route and www; *out owns its strings.
 */
int authbridge_on_response(struct authbridge *st, const struct conf_route *route, int status,
                           const struct authbridge_slice *www, size_t nwww,
                           struct authbridge_resp *out);

/* Frees the strings *r owns and zeroes it. Accepts a zeroed struct. */
void authbridge_resp_clear(struct authbridge_resp *r);

/* True while a handshake has a trace record that has not been reported (log it at close). */
bool authbridge_trace_pending(const struct authbridge *st);

/*
 * True when st holds nothing a later call needs: no handshake in progress, no restart owed, no
 * trace waiting to be reported, no offers of an initial 401 remembered. Such a state behaves like a
 * fresh one from authbridge_new() plus the expected channel-binding hash, so the caller may free it
 * and start afresh when a credential or a 401 comes (an idle keep-alive connection then holds no
 * bridge).
 */
bool authbridge_idle(const struct authbridge *st);

/*
 * The request that carried the handshake's last leg (an NTLM AUTHENTICATE) streams for a long
 * time with no status (RPC_IN_DATA holds its body open for hours): the handshake's trace ends
 * now with verdict "streaming" instead of when the channel closes. Returns true when the caller
 * should log authbridge_trace_format() now. Borrows st.
 */
bool authbridge_streaming(struct authbridge *st);

/*
 * Writes the current handshake's trace record into buf (capacity cap >= 1) as space-separated
 * key=value pairs, always NUL-terminated, cut short if it does not fit:
 *   route="/mapi" backend_offers=Negotiate client_offers=NTLM scheme=NTLM tokens=ntlm1/ntlm3
 *   bridge=ntlm-to-negotiate user="User" domain="Domain" workstation="COMPUTER" ntlm=v2
 *   mic=no cbt=absent|zero|present|match|mismatch verdict=200 by=backend [reason=...]
 * Never contains token bytes or credentials. Marks the record reported. Returns the length
 * written (without the NUL). Borrows buf.
 */
size_t authbridge_trace_format(struct authbridge *st, char *buf, size_t cap);

#endif
