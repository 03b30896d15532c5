/*
 * exshim-lab: an IIS + Exchange simulator with real authentication, for exshim's tests.
 *
 *   lab_main.c   options, preset file (libconfig), listeners, ready file, logging
 *   lab_conn.c   one client connection: head parsing (proxy/http1.h), vdir routing,
 *                authentication (NTLM, Negotiate, Basic), IIS-shaped responses
 *   lab_ntlm.c   NTLM acceptor (pure; unit tested)
 *   lab_gss.c    MIT GSS-API acceptor (Kerberos, SPNEGO carrying NTLM through gss-ntlmssp)
 *   lab_rpch.c   /rpc/rpcproxy.dll: RPC over HTTP v2 channels, RTS handshake, echo, pings
 *   lab_mapi.c   /mapi/emsmdb and /mapi/nspi: Connect/Execute/NotificationWait/Disconnect
 *
 * One process, one event loop; every socket is non-blocking and every buffer bounded.
 */
#ifndef BENCH_LAB_LAB_H
#define BENCH_LAB_LAB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "bench/lab/lab_ntlm.h"
#include "proxy/frame.h"
#include "proxy/http1.h"

struct event_base;
struct bufferevent;
struct evbuffer;
struct event;
struct ssl_ctx_st;
struct lab_gss;
struct lab_vc;

#define LAB_MAX_VDIRS 24
#define LAB_MAX_OFFERS 4
#define LAB_MAX_HEAD (128 * 1024) /* request head bytes (Kerberos tokens with big PACs) */
#define LAB_MAX_HEADERS 128
#define LAB_MAX_BODY (1024 * 1024)    /* bodies the lab reads whole (MAPI, EWS, ...) */
#define LAB_DISCARD_MAX (1024 * 1024) /* larger bodies of refused requests: close instead */
#define LAB_OUT_HIGH (256 * 1024)     /* output queued before the producer is paused */

enum lab_scheme {
    LAB_SCHEME_NONE = 0,
    LAB_SCHEME_NEGOTIATE,
    LAB_SCHEME_NTLM,
    LAB_SCHEME_BASIC,
};

enum lab_handler {
    LAB_H_RPC,          /* /rpc/rpcproxy.dll */
    LAB_H_MAPI_EMSMDB,  /* /mapi/emsmdb */
    LAB_H_MAPI_NSPI,    /* /mapi/nspi */
    LAB_H_AUTODISCOVER, /* /autodiscover/autodiscover.xml */
    LAB_H_EWS,          /* /ews/exchange.asmx */
    LAB_H_OWA,          /* /owa */
    LAB_H_EAS,          /* /Microsoft-Server-ActiveSync */
    LAB_H_STATIC,       /* anything else: a small HTML page */
};

struct lab_vdir {
    char path[64]; /* case-insensitive prefix matched at a segment boundary */
    enum lab_handler handler;
    enum lab_scheme offer[LAB_MAX_OFFERS]; /* in the order IIS lists them; none = anonymous */
    size_t noffer;
    bool require_ssl; /* plain HTTP gets 403.4 */
    bool forms;       /* forms-based authentication: requests without a session get 440 */
    enum lab_epa epa; /* Extended Protection for NTLM (and Kerberos bindings) */
    char realm[128];  /* Basic realm */
};

struct lab_preset {
    char name[64];
    char description[256];
    char server[64];     /* Server: header */
    char fe_server[64];  /* X-FEServer / X-BEServer */
    char be_target[128]; /* X-CalculatedBETarget */
    char server_app[64]; /* X-ServerApplication */
    char nb_domain[32], nb_computer[32], dns_domain[128], dns_computer[128];
    bool ntlm_v1;                 /* accept NTLMv1 (false: LmCompatibilityLevel 5) */
    bool kerberos;                /* accept Kerberos when a keytab is available */
    unsigned idle_ms;             /* drop any connection silent this long, channels too; 0 = off */
    unsigned keepalive_ms;        /* IIS connectionTimeout between requests */
    unsigned rpc_conn_timeout_ms; /* ConnectionTimeout in CONN/A3 and CONN/C2 */
    unsigned rpc_ping_ms;         /* RTS Ping on OUT channels; 0 = half of rpc_conn_timeout_ms */
    unsigned rpc_recycle_bytes;   /* ask for OUT recycling after this many bytes; 0 = never */
    unsigned rpc_valid_ports[16]; /* RPC proxy ValidPorts; none listed = every port valid */
    size_t rpc_nvalid_ports;
    unsigned pending_ms;         /* MAPI X-PendingPeriod */
    unsigned notify_hold_ms;     /* NotificationWait completes after this long */
    unsigned mapi_expiration_ms; /* X-ExpirationInfo */
    struct lab_vdir vdirs[LAB_MAX_VDIRS];
    size_t nvdirs;
};

/* Process-wide state (one event loop). */
struct lab {
    struct event_base *base;
    struct lab_preset preset;
    struct lab_users users;
    bool have_users;
    struct ssl_ctx_st *ssl_ctx;
    uint8_t cert_hash[64]; /* tls-server-end-point hash of our certificate */
    size_t cert_hash_len;
    FILE *log;
    uint64_t next_conn_id;
    size_t nconns;
    bool gss_ready;         /* GSS acceptor usable (Negotiate tokens other than raw NTLMSSP) */
    const char *health_dir; /* --health-dir: a file named after a vdir makes it unhealthy */
    char gss_why[160];
};

extern struct lab g_lab;

enum lab_state {
    LAB_ST_HEAD,      /* waiting for a request head */
    LAB_ST_BODY,      /* collecting a request body before the handler runs */
    LAB_ST_DISCARD,   /* dropping the body of a request already answered */
    LAB_ST_RPC_IN,    /* authenticated RPC_IN_DATA: the body is a PDU stream */
    LAB_ST_RPC_OUT,   /* RPC_OUT_DATA answered: the response body streams until close */
    LAB_ST_MAPI_WAIT, /* a NotificationWait response is open (chunked) */
    LAB_ST_CLOSING,   /* flush the output, then close */
};

/* What the lab keeps of a request once its head buffer is drained. */
struct lab_req {
    char method[32];
    char path[1024];      /* target without the query */
    char query[256];      /* after '?', truncated (RPC: "server:port") */
    bool expect_continue; /* Expect: 100-continue not answered yet */
    int version_minor;
    bool keep_alive;
    enum h1_body_kind body_kind;
    uint64_t content_length;
    char *authorization; /* owned copy or NULL */
    char request_type[64];
    char request_id[160];
    char client_info[160];
    char cookie[2048];
    const struct lab_vdir *vdir;
    struct evbuffer *body; /* LAB_ST_BODY collects here */
};

struct lab_conn {
    uint64_t id;
    struct bufferevent *bev;
    bool tls;
    char peer[64]; /* ip:port */
    enum lab_state st;

    /* connection-bound authentication (IIS keeps the user token on the connection) */
    bool authed;
    char user[2 * LAB_NTLM_NAME_MAX + 8];
    enum lab_scheme auth_scheme;
    const char *auth_mech;
    struct lab_ntlm *ntlm;     /* NTLM handshake in progress (own verifier) */
    enum lab_scheme ntlm_word; /* scheme word the NTLM handshake arrived under */
    struct lab_gss *gss;       /* GSS handshake in progress */
    char *gss_final_token;     /* base64 mutual-auth token for the next 200, owned */

    struct lab_req req;
    struct frame body;
    uint64_t discard_left;

    struct event *idle_ev;
    struct event *tick_ev; /* RTS pings on OUT channels, PENDING on NotificationWait */

    /* RPC over HTTP */
    struct lab_vc *vc;
    uint64_t rpc_left;     /* OUT: response body bytes left in the declared Content-Length */
    uint64_t rpc_req_left; /* request body bytes still to come (PDU stream) */
    bool rpc_started;      /* the first PDU of the request body has been seen */
    bool recycle_sent;     /* OUT_R1/A2 already sent on this OUT channel */
    bool in_paused;        /* IN channel reading paused for OUT backpressure */

    /* MAPI NotificationWait */
    uint64_t wait_started_ms;
    unsigned pendings;
};

/* lab_main.c */
void lab_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
uint64_t lab_now_ms(void);
const char *lab_http_date(void);
void lab_random(void *buf, size_t len);
void lab_uuid(char out[37]);

/* lab_conn.c */
void lab_conn_accept(int fd, const char *peer, bool tls);
/* Flush what is queued, then close. Returns -1 when c was freed already (caller stops). */
int lab_conn_finish(struct lab_conn *c);
void lab_conn_touch(struct lab_conn *c);
/* Reads the request body (LAB_ST_BODY), then runs the vdir handler. Returns -1 if c was freed. */
int lab_conn_read_body(struct lab_conn *c);
/* Sends "100 Continue" if the client asked for it and it was not sent yet. */
void lab_conn_continue(struct lab_conn *c);
/* A long response (NotificationWait) has ended: back to reading heads. */
void lab_conn_resume(struct lab_conn *c);
/* One access-log line for the current request. */
void lab_log_access(struct lab_conn *c, int status);
/* Common Exchange/IIS header block for a 200: appends to out, in IIS order. */
/* The end of every successful IIS head: the mutual-auth token if any (then forgotten),
 * Persistent-Auth after Windows authentication, X-Powered-By, X-FEServer, Date. */
void lab_headers_auth_tail(struct lab_conn *c, struct evbuffer *out);
void lab_headers_200(struct lab_conn *c, struct evbuffer *out, const char *content_type);
/* Writes a complete IIS-style response with a body (Content-Length framing). */
void lab_send_simple(struct lab_conn *c, int status, const char *reason, const char *ctype,
                     const char *body, size_t blen);

/* lab_rpch.c */
/* Handles an authenticated RPC request whose head has been read (body not yet read).
 * Returns -1 when c was freed. */
int lab_rpc_begin(struct lab_conn *c);
/* Feeds input for LAB_ST_RPC_IN / LAB_ST_RPC_OUT. Returns -1 when c was freed. */
int lab_rpc_input(struct lab_conn *c);
/* The request body of an RPC_OUT_DATA or echo request is complete. */
int lab_rpc_body_done(struct lab_conn *c);
void lab_rpc_detach(struct lab_conn *c);
void lab_rpc_tick(struct lab_conn *c);
void lab_rpc_drained(struct lab_conn *c);

/* lab_mapi.c */
int lab_mapi_request(struct lab_conn *c);
void lab_mapi_tick(struct lab_conn *c);

/* lab_gss.c */
enum lab_gss_status {
    LAB_GSS_CONTINUE,
    LAB_GSS_DONE,
    LAB_GSS_FAIL,
};
/* Prepares the acceptor side: keytab (may be NULL: KRB5_KTNAME or none), NTLM user file for
 * gss-ntlmssp. Returns 0, or -1 with a reason (Negotiate then takes raw NTLMSSP only). */
int lab_gss_setup(const char *keytab, bool kerberos, const char *users_file, char *err,
                  size_t errlen);
struct lab_gss *lab_gss_new(void);
void lab_gss_free(struct lab_gss *g);
/* One accept step. out_b64 receives an owned base64 output token or NULL; user/mech are
 * filled on DONE; why on FAIL (static text or copied into why). */
enum lab_gss_status lab_gss_step(struct lab_gss *g, const uint8_t *tok, size_t len,
                                 const uint8_t *cert_hash, size_t cert_hash_len, char **out_b64,
                                 char *user, size_t userlen, const char **mech_out, char *why,
                                 size_t whylen);
/* After LAB_GSS_DONE: the client's authenticator carried bindings matching ours. */
bool lab_gss_channel_bound(const struct lab_gss *g);

#endif
