/*
 * exshim-probe: one client connection (TCP, optionally TLS) with a deadline on every wait, and
 * the HTTP/1.1 exchanges the steps run over it. Blocking sockets driven by poll(): the probe
 * runs one exchange at a time, so a deadline per call is all the scheduling it needs.
 */
#ifndef PROBE_NET_H
#define PROBE_NET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "probe/wire.h"
#include "proxy/http1.h"

struct ssl_st;
struct x509_st;
struct stack_st_X509;

#define PNET_RBUF (256 * 1024) /* bytes read ahead of the parser (a head is at most this) */
#define PNET_MAX_HDRS 128

/* Where to connect and how. */
struct pnet_target {
    char host[256]; /* URL host: Host header, SNI, certificate name, SPN */
    char port[8];   /* URL port */
    char addr[64];  /* --resolve address; "" = resolve host */
    bool tls;
    const char *ca;      /* --ca FILE; NULL = the system store */
    unsigned timeout_ms; /* every single wait (connect, handshake, each read) */
    bool offer_h2;       /* ALPN "h2, http/1.1" instead of "http/1.1" (the F14 check) */
};

struct pnet_conn {
    int fd;
    struct ssl_st *ssl; /* NULL for plain HTTP */
    uint8_t rbuf[PNET_RBUF];
    size_t rlen;
    bool eof;
    unsigned timeout_ms; /* each single wait */
    uint64_t deadline;   /* CLOCK_MONOTONIC ms after which every wait fails at once */
};

/* Every connection gets PNET_LIFE_WAITS single waits' worth of time in all: a server that
 * trickles bytes (or 100 Continue heads) cannot keep one exchange going for ever. */
#define PNET_LIFE_WAITS 6
/* Gives c ms more from now (long polls, held channels). */
void pnet_extend(struct pnet_conn *c, uint64_t ms);

/* TLS details of an established connection. */
struct pnet_tls_info {
    char version[16];
    char cipher[64];
    long verify_result;  /* X509_V_OK or the error of the chain verification */
    int chain_len;       /* certificates the server sent */
    uint8_t cb_hash[64]; /* tls-server-end-point hash of the leaf (RFC 5929) */
    size_t cb_hash_len;
    char alpn[16]; /* protocol the server selected; "" = none */
    uint8_t leaf_der[16384];
    size_t leaf_der_len;
};

/*
 * Connects to t. tls_version: 0 = any version TLS 1.2 or later... the library default range;
 * 10..13 = exactly that version (security level 0 for 1.0 and 1.1). Returns an owned
 * connection (pnet_close) or NULL with err filled. Borrows t.
 */
struct pnet_conn *pnet_connect(const struct pnet_target *t, int tls_version, char *err,
                               size_t errlen);
void pnet_close(struct pnet_conn *c);
/* Fills *info for a TLS connection. Returns 0 or -1 (plain connection). */
int pnet_tls_info(struct pnet_conn *c, struct pnet_tls_info *info);
/* Writes everything or fails (-1) within the timeout. Borrows p. */
int pnet_write(struct pnet_conn *c, const void *p, size_t n);
/*
 * Reads more bytes into c->rbuf (after c->rlen). Returns the number read, 0 at end of stream
 * (c->eof set), -1 on error, -2 on timeout, -3 when rbuf is full.
 */
int pnet_fill(struct pnet_conn *c, unsigned timeout_ms);
/* Drops n bytes from the front of c->rbuf. */
void pnet_consume(struct pnet_conn *c, size_t n);

/* A response head, copied out of the connection's buffer (the slices point into head). */
struct presp {
    char head[PNET_RBUF];
    size_t head_len;
    struct h1_head h;
    struct h1_header hdrs[PNET_MAX_HDRS];
    int status;
};

enum pnet_err {
    PNET_OK = 0,
    PNET_CLOSED = -1,  /* the server closed the connection */
    PNET_TIMEOUT = -2, /* nothing in time */
    PNET_BAD = -3,     /* malformed response */
    PNET_IO = -4,      /* read/write/TLS error */
};

/* Sends a request: request line, Host, User-Agent, the extra header lines (each ending in
 * CRLF; may be NULL), Content-Length cl when has_body, then body[0..blen). */
int phttp_send(struct pnet_conn *c, const char *host, const char *method, const char *path,
               const char *extra, bool has_body, uint64_t cl, const void *body, size_t blen);
/* Reads one response head into *r (at most PHTTP_MAX_INTERIM 1xx heads are skipped).
 * head_request: the request was HEAD. Returns PNET_*. */
#define PHTTP_MAX_INTERIM 4
int phttp_read_head(struct pnet_conn *c, struct presp *r, bool head_request);
/*
 * Reads the body of r (framing from its head) into out[0..cap) (the rest is read and dropped)
 * and stores the payload length in *len_out (may be NULL). Bodies that never end (EOF
 * framing, or longer than max_bytes) end the connection's usefulness: returns PNET_BAD.
 */
int phttp_read_body(struct pnet_conn *c, const struct presp *r, uint8_t *out, size_t cap,
                    size_t *len_out, uint64_t max_bytes);
/* Every value of header name, one at a time: start with *i = 0; NULL when done. */
const struct h1_header *phttp_next(const struct presp *r, const char *name, size_t *i);

#endif
