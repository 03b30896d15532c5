/*
 * exshim-bench: simulated Outlook sessions against exshim (or any reverse proxy) in front of
 * exshim-lab, with real NTLM/Negotiate handshakes on every connection.
 *
 *   bench_main.c   options, worker processes, progress line, aggregation, report (text + JSON)
 *   bench_run.c    one worker process: its event loop, the sessions and their channels
 *   bench_gss.c    NTLM / Negotiate initiator through MIT GSS-API and gss-ntlmssp
 *   bench_stats.c  latency histogram, /proc sampling of the proxy (CPU seconds, RSS)
 *
 * Workers are forked processes (one process's file-descriptor limit is 20000 here); each owns
 * one struct bench_stats in a shared anonymous mapping, which the parent reads for the live
 * progress line and sums at the end.
 */
#ifndef BENCH_LOAD_BENCH_H
#define BENCH_LOAD_BENCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

enum bench_mode {
    BENCH_MODE_RPC,       /* RPC over HTTP sessions: IN + OUT channel, echoes, pings */
    BENCH_MODE_MAPI,      /* MAPI/HTTP sessions: Connect, Execute, NotificationWait */
    BENCH_MODE_STREAM,    /* RPC channels pumping bulk PDUs, echoed by the lab */
    BENCH_MODE_HANDSHAKE, /* new connection + NTLM handshake + one request, in a loop */
};

enum bench_auth_kind {
    BENCH_AUTH_NTLM,
    BENCH_AUTH_NEGOTIATE,
    BENCH_AUTH_NONE,
    BENCH_AUTH_KERBEROS, /* Negotiate carrying Kerberos from the default ccache (exshim-probe) */
};

enum bench_err {
    BENCH_E_CONNECT,    /* TCP connect refused / failed */
    BENCH_E_TLS,        /* TLS handshake or record error */
    BENCH_E_AUTH,       /* no challenge, or 401 after the final leg */
    BENCH_E_STATUS,     /* unexpected HTTP status */
    BENCH_E_GATEWAY,    /* 502, 503 or 504: a proxy's or balancer's answer, retried by Outlook */
    BENCH_E_AUTH_CLOSE, /* the NTLM/Negotiate challenge (401) closed its connection */
    BENCH_E_MAPI_CODE,  /* MAPI X-ResponseCode != 0 (e.g. a session the server does not know):
                           Outlook connects the session again */
    BENCH_E_PROTOCOL,   /* bad framing, bad PDU, bad MAPI response code */
    BENCH_E_CLOSED,     /* peer closed a connection that should have stayed open */
    BENCH_E_TIMEOUT,    /* no answer in time */
    BENCH_E_LOCAL,      /* local resource (fd limit, GSS failure, memory) */
    BENCH_E_MAX
};

#define BENCH_HIST_SUB 32 /* sub-buckets per power of two: ~3% resolution */
#define BENCH_HIST_POW 40 /* microseconds up to 2^40 */
#define BENCH_HIST_N (BENCH_HIST_SUB * BENCH_HIST_POW)

struct bench_hist {
    uint64_t n;
    uint64_t max_us;
    uint64_t b[BENCH_HIST_N];
};

/* One worker's counters; the parent reads them while the worker writes (progress only). */
struct bench_stats {
    volatile int phase; /* 0 starting, 1 ramp, 2 hold, 3 stopping, 4 done */
    uint64_t attempted, established, failed;
    uint64_t up; /* sessions currently established */
    uint64_t up_peak;
    uint64_t chans_up; /* channels (connections) currently established */
    uint64_t chans_peak;
    uint64_t handshakes;              /* completed authentications (one per connection) */
    uint64_t requests;                /* completed requests / echoes */
    uint64_t pings_in;                /* RTS pings / MAPI PENDING seen */
    uint64_t bytes_out, bytes_in;     /* application bytes written / read (incl. heads) */
    uint64_t payload_out, payload_in; /* stream mode: PDU bytes pumped / echoed back */
    uint64_t streams_done;
    /* --reconnect: a session whose channel fails starts over (new connections, new NTLM) */
    uint64_t reconnects;    /* restarts of a session that had been established */
    uint64_t reconnected;   /* of which came back (established again) */
    uint64_t setup_retries; /* restarts of a session never established yet */
    uint64_t reauths;       /* NTLM handshakes completed on the channels of a restart */
    uint64_t err[BENCH_E_MAX];
    char err_example[BENCH_E_MAX][120];
    /* hold window */
    double t_start, t_hold_start, t_hold_end, t_end; /* seconds, CLOCK_MONOTONIC */
    uint64_t req_at_hold_start, req_at_hold_end;
    uint64_t up_at_hold_end;
    uint64_t bytes_at_hold_start, bytes_at_hold_end;
    struct bench_hist lat;      /* request / echo round trip, during the hold */
    struct bench_hist lat_ramp; /* the same, before the hold (ramp: handshakes compete) */
    struct bench_hist setup;    /* session setup (connect to established) */
};

struct bench_user {
    char domain[64], user[64], password[128];
};

#define BENCH_MAX_USERS 10000
#define BENCH_MAX_SRCS 4096

struct bench_opts {
    enum bench_mode mode;
    enum bench_auth_kind auth;
    bool tls;
    char host[64];
    int port;
    char hostname[128]; /* Host header and SNI */
    char domain[64], user[64], password[128];
    unsigned sessions;      /* total sessions (handshake mode: concurrent loops) */
    double rate;            /* new sessions per second (all workers together) */
    double hold_s;          /* hold time after the ramp */
    double max_s;           /* hard bound for the whole run */
    double setup_timeout_s; /* a session not established in this time fails */
    unsigned echo_ms;       /* RPC: echo PDU period per session; 0 = none */
    unsigned ping_ms;       /* RPC: RTS Ping period on IN; 0 = none */
    double req_rate;        /* MAPI: Execute per second per session; 0 = back to back */
    bool notify;            /* MAPI: hold one NotificationWait per session */
    unsigned exec_bytes;    /* MAPI Execute request body size */
    uint64_t stream_bytes;  /* stream: payload per channel */
    unsigned pdu_bytes;     /* stream: PDU size */
    uint64_t in_cl;         /* Content-Length of RPC_IN_DATA */
    unsigned procs;         /* worker processes */
    pid_t proxy_pids[8];
    size_t nproxy_pids;
    pid_t lab_pid;
    char json_path[512];
    char label[128];
    bool quiet;
    bool progress;
    /* --users FILE: every line, one user per session round robin (users[0] is also in
     * domain/user/password); NULL with --user */
    const struct bench_user *users;
    unsigned nusers;
    /* --source-addrs: sessions bound round robin to these IPv4 addresses (network order) */
    const uint32_t *srcs;
    unsigned nsrcs;
    bool reconnect;
    unsigned procs_total; /* the session of global number k = launched * procs + index */
};

extern struct bench_opts g_opt;

/* bench_run.c: runs one worker's share (sessions, rate already divided). Returns 0. */
int bench_worker_run(const struct bench_opts *o, struct bench_stats *st, unsigned index);
double bench_now(void);

/* bench_gss.c (also linked into exshim-probe) */
struct bench_gss;
/* Acquires the process-wide credential; 0 or -1 with why filled. KERBEROS takes the caller's
 * default ccache (domain, user, password unused) and asks for mutual authentication. Borrows
 * every string (the password is not kept). */
int bench_gss_init(enum bench_auth_kind kind, const char *domain, const char *user,
                   const char *password, const char *target_host, char *why, size_t whylen);
/* One step: in_b64 NULL for the first token. *out_b64 malloc'ed (or NULL when nothing to
 * send). Returns 1 continue, 0 complete, -1 error (why filled). */
int bench_gss_step(struct bench_gss **g, const char *in_b64, size_t in_len, char **out_b64,
                   char *why, size_t whylen);
void bench_gss_free(struct bench_gss *g);
/* Another password credential (after bench_gss_init with a password): returns its index
 * (1, 2, ...; 0 is bench_gss_init's) or -1 with why filled. */
int bench_gss_add_cred(const char *domain, const char *user, const char *password, char *why,
                       size_t whylen);
/* A context not started yet that will use credential cred (bench_gss_step creates one with
 * credential 0 when handed NULL). NULL when out of memory. */
struct bench_gss *bench_gss_new(unsigned cred);
/* Channel bindings for contexts started from now on: application data (e.g.
 * "tls-server-end-point:" || certificate hash) copied from data[0..len), or none when data is
 * NULL. Returns 0 or -1 (too long). */
int bench_gss_set_bindings(const void *data, size_t len);
/* Releases the process-wide credential and target, so bench_gss_init may run again. */
void bench_gss_done(void);

/* bench_stats.c */
void bench_hist_add(struct bench_hist *h, uint64_t us);
void bench_hist_merge(struct bench_hist *dst, const struct bench_hist *src);
double bench_hist_pct(const struct bench_hist *h, double p); /* microseconds */
void bench_err(struct bench_stats *st, enum bench_err e, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
const char *bench_err_name(enum bench_err e);
/* Errors a client retries on a new connection (connect, TLS, closed, timeout) as opposed to
 * answers it would not retry (auth, status, protocol) or local trouble. */
bool bench_err_retryable(enum bench_err e);

struct bench_proc_sample {
    double cpu_s;    /* utime + stime of the process tree */
    uint64_t rss_kb; /* sum of VmRSS of the process tree */
    unsigned nprocs;
};
/* Samples the trees rooted at pids (children found through /proc/PID/task/TID/children or a
 * /proc scan). */
int bench_proc_sample(const pid_t *pids, size_t n, struct bench_proc_sample *out);

#endif
