/*
 * exshim configuration: plain data, loaded once from a libconfig file, immutable after load.
 *
 * conf/ never logs and never exits: conf_load() reports the first problem as
 * "FILE:LINE: KEY: message" in the caller's buffer.
 */
#ifndef CONF_CONF_H
#define CONF_CONF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* TLS protocol versions as written in the file ("TLSv1.0" .. "TLSv1.3"): 10, 11, 12, 13. */
#define CONF_TLS10 10
#define CONF_TLS11 11
#define CONF_TLS12 12
#define CONF_TLS13 13

/* Authentication schemes a route may offer to clients, in the order given. */
enum conf_scheme {
    CONF_SCHEME_NTLM = 1,
    CONF_SCHEME_NEGOTIATE,
    CONF_SCHEME_BASIC,
    CONF_SCHEME_DIGEST,
    CONF_SCHEME_BEARER,
};
#define CONF_MAX_OFFER 8

/* Negotiate/NTLM bridging applied on a route (see auth/bridge.h). */
enum conf_bridge {
    CONF_BRIDGE_NONE = 0,          /* pass tokens through untouched */
    CONF_BRIDGE_NTLM_TO_NEGOTIATE, /* client speaks NTLM, backend offers Negotiate only (F1) */
    CONF_BRIDGE_NEGOTIATE_TO_NTLM, /* client speaks Negotiate, backend offers NTLM only (F3) */
};

/* Route authentication mode. */
enum conf_auth_mode {
    CONF_AUTH_PASS_THROUGH = 0, /* the backend authenticates; exshim rewrites offers (default) */
    CONF_AUTH_EDGE,             /* exshim authenticates the user and reaches the backend as them */
};

/* Edge routes: how the backend is reached as the user (see auth/edge.h). */
enum conf_edge_delegation {
    CONF_EDGE_CONSTRAINED = 0, /* S4U2Proxy; Basic users through S4U2Self first (default) */
    CONF_EDGE_PASSWORD,        /* Basic users' own password toward the backend */
};
enum conf_edge_password_mech {
    CONF_EDGE_PW_KERBEROS = 0, /* a TGT from the password (default) */
    CONF_EDGE_PW_NTLM,         /* NTLM computed from the password (NTLM-only backends) */
};

/* A route's edge = { ... } group (auth = "edge" only). */
struct conf_route_edge {
    bool offer_negotiate; /* default true */
    bool offer_basic;     /* default true; offered on TLS connections only */
    char *basic_realm;    /* NULL: "exshim" */
    enum conf_edge_delegation delegation;
    enum conf_edge_password_mech password_mech;
    char *backend_spn; /* "HTTP@backend.example" (required) */
    char *realm;       /* Kerberos realm for Basic names without one; NULL: default realm */
    char *ntlm_domain; /* password-NTLM: domain for bare user names */
};

enum conf_log_level { CONF_LOG_ERROR = 0, CONF_LOG_WARN, CONF_LOG_INFO, CONF_LOG_DEBUG };

/* One certificate: a PEM chain file (leaf first, then intermediates) and its key. */
struct conf_cert {
    char *chain;
    char *key;
};

/* An address range from "10.0.0.0/24", "2001:db8::/32" or a bare address (all its bits). */
struct conf_cidr {
    bool v6;
    uint8_t addr[16]; /* network order; bits past the prefix are zero */
    unsigned bits;    /* prefix length: 0..32 or 0..128 */
};

struct conf_listener {
    char *name;
    char *host; /* numeric address from "address": "127.0.0.1", "::1", "0.0.0.0" */
    char *port; /* decimal port as text; "0" lets the kernel choose (tests) */
    bool tls;
    /* Only meaningful when tls: certs[0] is the default, the others are chosen by SNI
     * (matched against their subject names by proxy/tls.c). */
    struct conf_cert *certs;
    size_t ncerts;
    int min_protocol;     /* CONF_TLS1x; default CONF_TLS12 */
    int max_protocol;     /* default CONF_TLS13 */
    char *ciphers;        /* TLS <= 1.2 cipher list; NULL = OpenSSL default */
    char *ciphersuites;   /* TLS 1.3 suites; NULL = OpenSSL default */
    bool session_tickets; /* default true */
    /* PROXY protocol (v1 or v2, told apart by the first byte): every connection must start
     * with a header, and only from a peer inside proxy_from (required when on). */
    bool proxy_protocol;
    struct conf_cidr *proxy_from;
    size_t nproxy_from;
    int line;
};

#define CONF_MAX_SERVERS 64 /* per backend */

struct conf_server {
    char *host;
    char *port;
};

/* How a backend's servers are chosen (proxy/upstream.h). */
enum conf_balance {
    CONF_BALANCE_RENDEZVOUS = 0, /* rendezvous hash of the client address (default) */
    CONF_BALANCE_LEASTCONN,      /* fewest open backend connections in this worker */
};

/* Active health checks of a backend's servers (proxy/health.h); only with a health group. */
struct conf_health {
    char *path;           /* default "/owa/healthcheck.htm" */
    unsigned interval_ms; /* default 5000 */
    unsigned timeout_ms;  /* default 2000; at most interval */
    unsigned rise, fall;  /* consecutive passes to come up (2), failures to go down (3) */
    int expect;           /* the status a healthy server answers, default 200 */
};

struct conf_backend {
    char *name;
    struct conf_server *servers;
    size_t nservers;
    bool tls;                    /* SSL bridging: TLS to the backend */
    char *ca_file;               /* CA bundle to verify the backend; NULL = system default paths */
    char *sni;                   /* SNI and name to verify; NULL = server host */
    bool verify;                 /* default true */
    int min_protocol;            /* default CONF_TLS12 */
    int max_protocol;            /* default CONF_TLS13 */
    unsigned connect_timeout_ms; /* default 5000 */
    bool tcp_keepalive;          /* default true */
    bool checked;                /* a health group is present: health holds it */
    struct conf_health health;
    enum conf_balance balance;
    int line;
};

struct conf_route {
    char *path;      /* prefix, e.g. "/rpc"; for the default route the literal "default" */
    bool is_default; /* path = "default": used when no prefix matches */
    char *backend_name;
    size_t backend; /* index into conf.backends, resolved by conf_load */
    /* Schemes offered to clients in order. noffer == 0 and !offer_set: pass the backend's
     * offers through untouched. */
    enum conf_scheme offer[CONF_MAX_OFFER];
    size_t noffer;
    bool offer_set;
    enum conf_bridge bridge;
    /* Timeouts in milliseconds. Defaults: header 30 s; idle (between requests) and body
     * (silence inside a transaction, including the wait for a response head) 120 s / 300 s,
     * but 3600 s for both on routes whose path starts with /rpc or /mapi. */
    unsigned header_timeout_ms;
    unsigned idle_timeout_ms;
    unsigned body_timeout_ms;
    bool guard; /* the Exchange exploit guard (proxy/guard.h) applies; default true */
    /* The health page of this route's protocol on its backend (which must have a health
     * group); NULL: the backend's own health path decides. */
    char *health_path;
    enum conf_auth_mode auth;
    struct conf_route_edge edge; /* auth == CONF_AUTH_EDGE only */
    int line;
};

/* How request-targets are treated before routing (proxy/target.h). */
enum conf_target_policy {
    CONF_TARGET_STRICT = 0, /* refuse dot-segments, encoded separators, "//" (default) */
    CONF_TARGET_NORMALIZE,  /* repair them as IIS would, then route and forward the result */
};

/* How a listener's new connections are spread over its workers' sockets (proxy/balance.h). */
enum conf_accept_balance {
    CONF_BALANCE_ROUNDROBIN = 0, /* in turn, by an eBPF program on the reuseport group */
    CONF_BALANCE_HASH,           /* the kernel's hash of addresses and ports */
};

struct conf {
    char *file;
    int workers;                       /* 0 = "auto" (number of online CPUs) */
    bool cpu_affinity;                 /* worker i runs on the i-th allowed CPU; default false */
    char *log_file;                    /* NULL: stderr only */
    enum conf_log_level log_level;     /* default info */
    bool access_log;                   /* default true */
    size_t max_header_bytes;           /* default 65536; over it: 431 */
    size_t max_headers;                /* header line count, default 200 */
    size_t high_water;                 /* relay output high-water mark, default 65536 */
    unsigned grace_ms;                 /* drain period on SIGTERM, default 30000 */
    unsigned handshake_timeout_ms;     /* TLS handshake deadline from accept, default 10000 */
    size_t max_connections;            /* client connections per worker, default: fd limit */
    size_t max_connections_per_client; /* per client address and worker; 0 = no limit */
    /* Fairness while clients arrive in bursts: connections accepted per listener and TLS
     * ClientHellos answered per event-loop turn (defaults 64 and 2); the rest wait for the
     * next turn, after the established connections' I/O; and which worker a new connection
     * goes to (default roundrobin). */
    size_t max_accept;
    size_t max_handshakes;
    enum conf_accept_balance accept_balance;
    enum conf_target_policy target_policy;
    /* Reload: how long a superseded generation of workers may keep serving the exchanges and
     * channels it holds (default 3600000, 0 = close them at once), and how many superseded
     * generations may be alive at once (1..64, default 4; a reload past it stops the oldest). */
    unsigned drain_timeout_ms;
    size_t max_generations;
    /* edge = { keytab; principal; }: the proxy's own Kerberos identity, needed by every
     * auth = "edge" route. NULL when the group is absent. */
    char *edge_keytab;
    char *edge_principal;
    int edge_line;
    struct conf_listener *listeners;
    size_t nlisteners;
    struct conf_backend *backends;
    size_t nbackends;
    struct conf_route *routes;
    size_t nroutes;
    /* metrics = { address = "HOST:PORT"; }: the Prometheus listener (proxy/metrics.h), served
     * by the master; NULL when the block is absent. */
    char *metrics_host, *metrics_port;
};

/* Descriptors a worker keeps out of the max_connections default: listeners, logs, the event
 * loop, health checks, and the splice pipes (SPLICE_MAX_PIPES = 256, two descriptors each). */
#define CONF_FD_RESERVE (64 + 2 * 256)

/*
 * The default max_connections for a worker whose descriptor limit is nofile: two descriptors
 * per client connection (it and its backend connection) after CONF_FD_RESERVE; 9712 under a
 * limit of 20000. At least 1.
 */
size_t conf_auto_max_connections(unsigned long long nofile);

/*
 * Parses and validates FILE. On success stores a new struct conf in *conf_out (caller frees
 * with conf_free) and returns 0. On failure returns -1 and writes one line
 * "FILE:LINE: KEY: message" (LINE 0 when the problem has no line) into err.
 * Unknown keys are errors.
 */
int conf_load(const char *path, struct conf **conf_out, char *err, size_t errlen);

/* Frees everything conf_load allocated. Accepts NULL. */
void conf_free(struct conf *conf);

/* Parses a duration: integer seconds, or a string "500ms", "30s", "20m", "2h".
 * Returns 0 and stores milliseconds, or -1. Exposed for tests and for command-line flags. */
int conf_parse_duration(const char *text, unsigned *ms_out);

/* Scheme name <-> enum ("NTLM", "Negotiate", "Basic", "Digest", "Bearer"; case-insensitive
 * on input). conf_scheme_name returns a static string. */
int conf_scheme_parse(const char *name, enum conf_scheme *out);
const char *conf_scheme_name(enum conf_scheme s);

/* Route lookup: the longest case-insensitive prefix of PATH (up to '?' if any) among the
 * routes, else the default route, else NULL. A prefix matches only at a path-segment
 * boundary or when it ends in '/': "/rpc" matches "/Rpc/RpcProxy.dll" and "/rpc" but not
 * "/rpcfoo". Borrows both; returns a view into conf. */
const struct conf_route *conf_route_find(const struct conf *conf, const char *path, size_t len);

#endif
