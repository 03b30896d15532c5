/*
 * Edge authentication (route auth = "edge", the Forefront TMG model): exshim authenticates the
 * user itself and reaches Exchange as that user. One struct edge per client connection; plain
 * code over auth/gss.h (no I/O, no logging), so it is unit-tested with a fake GSS layer.
 *
 * The session calls, per client connection:
 *
 *   edge_new()               when the client connection is accepted
 *   edge_set_client_cert()   after the client's TLS handshake (optional: channel bindings)
 *   edge_request()           for every request head, with its Authorization value (or none):
 *                              EDGE_LOCAL_*  answer the client locally, forward nothing;
 *                              EDGE_PROCEED  the user is authenticated: get the backend
 *                                            connection ready (a fresh one when
 *                                            fresh_backend is set), then call
 *   edge_backend_request()   once that connection is up (TLS handshake done, its certificate
 *                            hash known): says which Authorization the request carries toward
 *                            the backend (EDGE_FORWARD, EDGE_FORWARD_NTLM_NEGOTIATE) or
 *                            that delegation failed (EDGE_LOCAL_403 / EDGE_LOCAL_502)
 *   edge_response()          for every response head from the backend (not 1xx): deliver it
 *                            (EDGE_RESP_PASS), send the request again with the NTLM
 *                            AUTHENTICATE (EDGE_RESP_RESEND), or replace it (EDGE_RESP_LOCAL)
 *   edge_backend_lost()      when the backend connection closes
 *   edge_free()              when the client connection closes
 *
 * The client's Authorization header is never forwarded: it carries the edge's credentials (a
 * Basic password, a Kerberos ticket for the proxy). The backend's WWW-Authenticate headers are
 * never shown to the client: the client sees only the edge's own challenges.
 *
 * Client side: Negotiate (Kerberos, raw or in SPNEGO) and Basic (TLS connections only) are
 * offered; NTLM is never offered or accepted at the edge. Authentication is connection-bound
 * like IIS: once a user is authenticated, requests without Authorization on that connection
 * are that user's; new credentials start over.
 *
 * Backend side (delegation):
 *   Negotiate user                    S4U2Proxy with the accepted ticket as evidence
 *   Basic user, delegation=constrained  KDC-verified password, then S4U2Self + S4U2Proxy
 *   Basic user, delegation=password   KDC-verified password, then a Kerberos TGT from it
 *                                     (password-Kerberos) or NTLM with it (password-NTLM)
 *
 * Credentials (GSS credentials, contexts, the password kept for password-NTLM) belong to one
 * struct edge: nothing is shared between connections, and edge_free destroys them all, zeroing
 * the password bytes before they are freed.
 */
#ifndef AUTH_EDGE_H
#define AUTH_EDGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "auth/gss.h"

struct edge;

enum edge_delegation {
    EDGE_DELEG_CONSTRAINED = 0, /* S4U2Proxy; Basic users through S4U2Self first */
    EDGE_DELEG_PASSWORD,        /* Basic users' own password toward the backend */
};

enum edge_password_mech {
    EDGE_PASSWORD_KERBEROS = 0, /* a TGT from the password: `Negotiate <AP-REQ>` */
    EDGE_PASSWORD_NTLM,         /* NTLMSSP with the password: `NTLM` NEGOTIATE/AUTHENTICATE */
};

/* A route's edge policy: plain data the caller keeps alive for each call (borrowed). */
struct edge_policy {
    bool offer_negotiate;
    bool offer_basic;                      /* offered and accepted on TLS connections only */
    const char *basic_realm;               /* realm="..." of the Basic challenge; NULL: "exshim" */
    enum edge_delegation delegation;       /* for Basic users; Negotiate users: S4U2Proxy */
    enum edge_password_mech password_mech; /* EDGE_DELEG_PASSWORD only */
    const char *backend_spn;               /* "HTTP@backend.example" (host-based service) */
    const char *kerberos_realm;            /* for Basic names without one; NULL: default realm */
    const char *ntlm_domain;               /* password-NTLM: NetBIOS domain for bare user names */
};

/* Process-wide state an edge borrows (must outlive every edge). */
struct edge_env {
    struct authgss_acceptor *acceptor; /* the proxy principal's keytab credential */
};

enum edge_action {
    EDGE_PROCEED = 0,            /* edge_request: authenticated; call edge_backend_request */
    EDGE_FORWARD,                /* send the request with .authorization (NULL: send none: the
                                    backend connection is authenticated already) */
    EDGE_FORWARD_NTLM_NEGOTIATE, /* send the request head with .authorization (NTLM NEGOTIATE)
                                    and an empty body (Content-Length: 0), keeping the client's
                                    body unread; the backend's 401 goes to edge_response, which
                                    answers EDGE_RESP_RESEND */
    EDGE_LOCAL_401,              /* answer 401 with .www, one WWW-Authenticate line each */
    EDGE_LOCAL_400,              /* answer 400: .reason */
    EDGE_LOCAL_403,              /* answer 403: .reason */
    EDGE_LOCAL_502,              /* answer 502: .reason (KDC or backend trouble) */
};

#define EDGE_MAX_WWW 2

struct edge_req_out {
    enum edge_action action;
    int status;              /* LOCAL_*: the status to send; else 0 */
    char *www[EDGE_MAX_WWW]; /* LOCAL_401: WWW-Authenticate values, owned, NUL-terminated */
    size_t nwww;
    char *authorization; /* FORWARD*: Authorization value toward the backend, owned */
    bool fresh_backend;  /* PROCEED: close the pinned backend connection first (it was
                            authenticated as another user, or mid-handshake) */
    const char *reason;  /* LOCAL_*: static text, safe to send and to log */
    bool trace_done;     /* a handshake ended: log edge_trace_format() now */
};

enum edge_resp_action {
    EDGE_RESP_PASS = 0, /* deliver the response, without the backend's WWW-Authenticate
                           headers, plus .client_www when set */
    EDGE_RESP_RESEND,   /* do not deliver this 401: send the same request again on the same
                           backend connection, now with its body, with .authorization */
    EDGE_RESP_LOCAL,    /* do not deliver: answer .status with .reason; close the backend
                           connection (then call edge_backend_lost) */
};

struct edge_resp_out {
    enum edge_resp_action action;
    int status;          /* LOCAL: the status to send */
    const char *reason;  /* LOCAL: static text */
    char *authorization; /* RESEND: owned */
    char *client_www;    /* PASS: a WWW-Authenticate value for the client (the edge's own
                            mutual-auth token, "Negotiate <token>"), owned, or NULL */
    bool trace_done;
};

/* A header value as the session holds it (a view into its head buffer). */
struct edge_slice {
    const char *p;
    size_t len;
};

enum edge_path {
    EDGE_PATH_NONE = 0,
    EDGE_PATH_S4U2PROXY,          /* Negotiate user, constrained delegation */
    EDGE_PATH_S4U2SELF_S4U2PROXY, /* Basic user, protocol transition */
    EDGE_PATH_PASSWORD_KERBEROS,  /* Basic user, TGT from the password */
    EDGE_PATH_PASSWORD_NTLM,      /* Basic user, NTLM with the password */
};

#define EDGE_NAME_MAX 256

/* The record of the current handshake (user names yes; tokens and passwords never). */
struct edge_trace {
    const char *scheme;         /* client's scheme: "Negotiate", "Basic", "NTLM", "-" */
    const char *mech;           /* "krb5", "spnego/krb5", "basic", "-" */
    char client[EDGE_NAME_MAX]; /* the authenticated principal; "" before */
    enum edge_path path;
    char backend_as[EDGE_NAME_MAX]; /* the name the backend credential carries */
    bool password_cached;           /* Basic: the KDC check came from the cache */
    int backend_status;             /* 0: no backend answer yet */
    const char *backend_mutual;     /* "ok", "none" (no token), "n/a" (NTLM), "-" */
    const char *verdict;            /* "ok", "challenge", "refused", "error", "-" */
    enum authgss_why why;           /* AUTHGSS_WHY_NONE unless a GSS/KDC step failed */
    char error[AUTHGSS_ERROR_TEXT]; /* that failure in words, "" */
};

/* Returns owned state for one client connection (edge_free), or NULL. Borrows env. */
struct edge *edge_new(const struct edge_env *env);

/* Destroys every credential and context of e, zeroing the password bytes first. Accepts NULL. */
void edge_free(struct edge *e);

/*
 * The client connection is TLS and the client saw a certificate whose tls-server-end-point hash
 * is hash[0..len) (len <= 64): Kerberos authenticators that carry channel bindings must match
 * it (a ticket relayed from another TLS server is refused). Call it once after the client's TLS
 * handshake, before the first edge_request. Authenticators without bindings are still accepted
 * (MIT's rule; most clients send none). Borrows hash (copied).
 */
void edge_set_client_cert(struct edge *e, const uint8_t *hash, size_t len);

/*
 * Client side of a request. authz: the Authorization value (NULL: none). client_tls: the
 * client connection is TLS (Basic is offered and accepted only then). Fills *out (clear with
 * edge_req_clear): EDGE_PROCEED or EDGE_LOCAL_*. Returns 0, or -1 when memory ran out (answer
 * 500; *out holds nothing). Borrows everything; the password of a Basic value is zeroed in
 * every copy edge makes once it is no longer needed.
 */
int edge_request(struct edge *e, const struct edge_policy *pol, const char *authz, size_t authz_len,
                 bool client_tls, struct edge_req_out *out);

/*
 * Backend side of a request edge_request answered EDGE_PROCEED for, once the backend
 * connection is ready. cert_hash: the tls-server-end-point hash of the certificate the backend
 * presented on that connection (NULL for plain backends): sent as channel bindings. Fills
 * *out: EDGE_FORWARD, EDGE_FORWARD_NTLM_NEGOTIATE, EDGE_LOCAL_403 (delegation refused: the
 * trace says why in the KDC's terms) or EDGE_LOCAL_502. Returns 0 or -1 (out of memory).
 * Borrows everything.
 */
int edge_backend_request(struct edge *e, const struct edge_policy *pol, const uint8_t *cert_hash,
                         size_t cert_hash_len, struct edge_req_out *out);

/* Frees what *r owns and zeroes it. Accepts a zeroed struct. */
void edge_req_clear(struct edge_req_out *r);

/*
 * A backend response head (status >= 200) to a request forwarded by edge_backend_request or
 * resent after EDGE_RESP_RESEND, with its WWW-Authenticate values www[0..nwww) in order.
 * Fills *out (clear with edge_resp_clear). Returns 0 or -1 (out of memory). Borrows all.
 */
int edge_response(struct edge *e, int status, const struct edge_slice *www, size_t nwww,
                  struct edge_resp_out *out);

/* Frees what *r owns and zeroes it. Accepts a zeroed struct. */
void edge_resp_clear(struct edge_resp_out *r);

/* The backend connection is gone: its handshake state goes; the user's credential stays, and
 * the next edge_backend_request authenticates a new connection. */
void edge_backend_lost(struct edge *e);

/* The current trace record. Returns a view valid until the next call on e. */
const struct edge_trace *edge_trace(const struct edge *e);

/* "S4U2Proxy", "S4U2Self+S4U2Proxy", "password-Kerberos", "password-NTLM", "-". Static. */
const char *edge_path_name(enum edge_path p);

/*
 * Writes the trace as one line of key=value pairs into buf (cap >= 1, always NUL-terminated):
 *   scheme=Negotiate mech=spnego/krb5 user="alice@LAB.TEST" path=S4U2Proxy
 *   backend_as="alice@LAB.TEST" cached=no backend_status=200 mutual=ok verdict=ok [error="..."]
 * Quotes and control characters in names and errors are written as '?'. Returns the length
 * written. Borrows both.
 */
size_t edge_trace_format(const struct edge *e, char *buf, size_t cap);

#endif
