/*
 * TLS contexts from configuration: listener (server) and backend (client) sides.
 * The only file that includes OpenSSL's ssl.h; everything else holds opaque pointers.
 */
#ifndef PROXY_TLS_H
#define PROXY_TLS_H

#include <stdbool.h>
#include <stddef.h>

#include "conf/conf.h"

struct ssl_st;
struct ssl_ctx_st;

/* Builds a server context for a TLS listener: chain + key per certificate (first = default,
 * others by SNI), protocol range, ciphers, tickets, ALPN http/1.1 only. Returns owned (free
 * with tlsctx_free) or NULL with a reason in err. Borrows l. */
struct ssl_ctx_st *tlsctx_server_new(const struct conf_listener *l, char *err, size_t errlen);

/* Builds a client context toward a TLS backend: verification on unless b->verify is false,
 * CA file or system paths, protocol range. Returns owned or NULL with err. */
struct ssl_ctx_st *tlsctx_client_new(const struct conf_backend *b, char *err, size_t errlen);

void tlsctx_free(struct ssl_ctx_st *ctx);

/* New SSL for one connection. For a client SSL, sni (may be NULL) sets the server name and,
 * when verifying, the host name checked. Returns owned or NULL. */
struct ssl_st *tlsctx_ssl_server(struct ssl_ctx_st *ctx);
struct ssl_st *tlsctx_ssl_client(struct ssl_ctx_st *ctx, const char *sni, bool verify);

/* Empties OpenSSL's error queue into buf as "reason; reason". Returns buf. */
const char *tlsctx_errors(char *buf, size_t len);

/* SHA-256 of the DER leaf certificate of a chain file (the RFC 5929 tls-server-end-point hash
 * for SHA-256 and weaker signature algorithms). Returns 0 or -1. */
int tlsctx_chain_hash(const char *chain_file, unsigned char out[32]);

/* The same hash of the certificate the peer presented on ssl. Returns 0 or -1. */
int tlsctx_peer_hash(struct ssl_st *ssl, unsigned char out[32]);

/* "OpenSSL 3.0.x ..." as linked at run time. */
const char *tlsctx_library_version(void);

/* Start-up probe: connects to host:port with TLS (blocking, timeout_ms), returns the
 * tls-server-end-point hash of the presented leaf in out. Returns 0 or -1 with err. */
int tlsctx_probe_hash(const struct conf_backend *b, const struct conf_server *s,
                      unsigned timeout_ms, unsigned char out[32], char *err, size_t errlen);

/*
 * Non-blocking TLS I/O for proxy/conn.c: exshim drives SSL_read and SSL_write on its own
 * sockets. Every call clears the error queue first and, on TLSIO_ERROR, empties it into err.
 */
enum tlsio_result {
    TLSIO_OK,         /* done (handshake) or some bytes moved (*n > 0) */
    TLSIO_WANT_READ,  /* call again when the socket is readable */
    TLSIO_WANT_WRITE, /* call again when the socket is writable */
    TLSIO_EOF,        /* the peer closed (close_notify, or a TCP close without it) */
    TLSIO_ERROR,
};

/* Binds ssl to fd, as the accepting (server) or connecting side. Borrows both. */
void tlsio_attach(struct ssl_st *ssl, int fd, bool server);
enum tlsio_result tlsio_handshake(struct ssl_st *ssl, char *err, size_t errlen);
/* Moves up to len bytes; *n receives the count. */
enum tlsio_result tlsio_read(struct ssl_st *ssl, void *buf, size_t len, size_t *n, char *err,
                             size_t errlen);
enum tlsio_result tlsio_write(struct ssl_st *ssl, const void *buf, size_t len, size_t *n, char *err,
                              size_t errlen);
/*
 * TLS output is gathered (several records per write()): tlsio_write may leave records in a
 * per-connection buffer of at most ~64 KiB. tlsio_unsent counts them; tlsio_flush writes what
 * the socket takes: TLSIO_OK (all out), TLSIO_WANT_WRITE (the rest waits for the socket) or
 * TLSIO_ERROR (err set; the rest is dropped).
 */
size_t tlsio_unsent(struct ssl_st *ssl);
/* More records follow the next tlsio_write at once (sent with MSG_MORE); false for the last
 * of a batch, so that the kernel pushes them. */
void tlsio_more(struct ssl_st *ssl, bool more);
enum tlsio_result tlsio_flush(struct ssl_st *ssl, char *err, size_t errlen);
/* No handshake message processed yet: the next step takes the (costly) ClientHello. */
bool tlsio_hello_due(struct ssl_st *ssl);
/* Decrypted or buffered record bytes wait inside OpenSSL (no socket event will announce them). */
bool tlsio_pending(struct ssl_st *ssl);
/* After a tlsio_read: OpenSSL holds no unread bytes and the socket had none beyond what it
 * read, so a further read would only find nothing (level-triggered events announce more). */
bool tlsio_drained(struct ssl_st *ssl);
/* The negotiated protocol ("TLSv1.3"); static text. */
const char *tlsio_version(const struct ssl_st *ssl);
/* Sends close_notify without waiting for the peer's, and frees ssl. Accepts NULL. */
void tlsio_close(struct ssl_st *ssl);

#endif
