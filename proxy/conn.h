/*
 * One side of a session: a non-blocking socket, plain or TLS, with an input and an output
 * buffer. exshim drives the socket itself (readv/writev on plain sockets, SSL_read/SSL_write
 * with read-ahead on TLS ones); the event library stays behind this interface.
 *
 * Reading fills the input buffer up to a cap and then stops until the owner has taken bytes
 * out and calls conn_sync(). Writing is speculative: conn_sync() writes what the output holds
 * at once and only waits for the socket when it does not take everything. TLS output is cut
 * into full 16 KiB records.
 *
 * Callbacks run from the event loop, never from inside a conn_* call made by the owner. The
 * owner may call conn_free() from inside a callback: the struct goes once the callback returns.
 */
#ifndef PROXY_CONN_H
#define PROXY_CONN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

struct event_base;
struct evbuffer;
struct ssl_st;
struct conn;

enum conn_event {
    CONN_CONNECTED = 1, /* connect, or the TLS handshake (both directions), finished */
    CONN_EOF,           /* the peer closed its sending side; the input holds all it sent */
    CONN_ERROR,         /* socket or TLS failure: conn_error() says which */
    CONN_TIMEOUT,       /* an outgoing connect (with its handshake) did not finish in time */
};

struct conn_cbs {
    void (*on_read)(void *arg);    /* the input grew */
    void (*on_drained)(void *arg); /* the output fell to the mark given to conn_notify_drained */
    void (*on_event)(void *arg, enum conn_event ev);
};

/*
 * An accepted socket. ssl (NULL for plain HTTP) is the server-side TLS object for it: the
 * handshake runs first and CONN_CONNECTED reports its end. Takes fd and ssl (closed and freed
 * on failure too); borrows cbs (must outlive the conn). Returns owned, or NULL.
 */
struct conn *conn_accept(struct event_base *base, int fd, struct ssl_st *ssl,
                         const struct conn_cbs *cbs, void *arg);

/*
 * Starts a non-blocking connect to sa, then the client TLS handshake when ssl is not NULL; ends
 * with CONN_CONNECTED, CONN_ERROR or CONN_TIMEOUT (after timeout_ms). Takes ssl; borrows sa and
 * cbs. Returns owned, or NULL with errno set when the connect cannot even start.
 */
struct conn *conn_connect(struct event_base *base, const struct sockaddr *sa, socklen_t salen,
                          struct ssl_st *ssl, unsigned timeout_ms, const struct conn_cbs *cbs,
                          void *arg);

/* The buffers; views valid until conn_free. */
struct evbuffer *conn_input(struct conn *c);
struct evbuffer *conn_output(struct conn *c);

/* Wants reading or not. Reading also pauses on its own while the input holds cap bytes. */
void conn_read(struct conn *c, bool on);
void conn_set_read_cap(struct conn *c, size_t cap);

/* Asks for one on_drained call once the output is at or below mark (0: empty). */
void conn_notify_drained(struct conn *c, size_t mark);

/*
 * End of the owner's turn: writes what the output holds (what the socket does not take waits
 * for the write event) and resumes reading if the input fell below its cap. Never calls back.
 */
void conn_sync(struct conn *c);

/* The reason of the last CONN_ERROR ("Connection reset by peer", an OpenSSL reason). */
const char *conn_error(const struct conn *c);

bool conn_is_tls(const struct conn *c);
bool conn_connected(const struct conn *c);
int conn_fd(const struct conn *c);

/* SHA-256 of the certificate the TLS peer presented (tls-server-end-point). 0 or -1. */
int conn_peer_cert_hash(const struct conn *c, unsigned char out[32]);

/* fn(arg) runs once when c is freed, before its socket closes (e.g. to count open
 * connections). Borrows arg. */
void conn_on_close(struct conn *c, void (*fn)(void *arg), void *arg);
/* The TLS protocol version of an established TLS connection ("TLSv1.3"), else NULL. Static. */
const char *conn_tls_version(const struct conn *c);

/* Counts c in *gauge (atomically, +1 now and -1 when c is freed); gauge NULL: nothing. Borrows
 * gauge, which must outlive c. */
void conn_count_in(struct conn *c, int64_t *gauge);

/*
 * splice(2) for plain bodies (proxy/relay.c). While src is armed, reading it moves at most
 * limit bytes (a body's or a chunk's remaining data, counted by the caller's framer) from its
 * socket into a pipe that dst owns, and from there to dst's socket; src's input stays empty,
 * on_read still reports the progress. Bytes in dst's output go out before the pipe is filled,
 * the pipe's before anything queued in the output after it. The drain notice waits for an
 * empty pipe. A read that finds src's input not empty, or dst's output not writable, falls
 * back to the copy path and sets the limit to 0 until the caller arms again.
 */
/* Arms src (opens dst's pipe when it has none). false: both must be plain, src open with an
 * empty input, dst writable, and a pipe available (splice.h); the copy path then. */
bool conn_splice_arm(struct conn *src, struct conn *dst, uint64_t limit);
/* Armed (linked to a destination), whatever the limit. */
bool conn_splice_armed(const struct conn *src);
/* Limit 0: reading takes the copy path until the next arm. */
void conn_splice_hold(struct conn *src);
/* Unlinks src; dst's pipe closes once it has been written out. */
void conn_splice_stop(struct conn *src);
/* Bytes spliced out of src's socket since the last call. */
uint64_t conn_splice_collect(struct conn *src);
/* Bytes in c's pipe, not yet written to its socket. */
size_t conn_pipe_queued(const struct conn *c);
/* Moves what c's pipe holds into the front of its output (a copy, for an exchange that ends
 * abnormally and is flushed through the output) and closes the pipe. 0 or -1 (bytes lost). */
int conn_pipe_unload(struct conn *c);
/* Open: neither end-of-file nor failure seen on reading. */
bool conn_open(const struct conn *c);

/*
 * Server-side TLS handshakes take at most per_turn ClientHellos per turn of base's loop, after
 * the turn's other socket events (0: as soon as the socket is ready). Call once per process,
 * before accepting. 0 or -1 (out of memory).
 */
int conn_set_handshake_budget(struct event_base *base, size_t per_turn);

/* Closes the socket and frees everything. Accepts NULL; safe inside a callback. */
void conn_free(struct conn *c);

#endif
