/*
 * The accept path of a listener with proxy_protocol = true: the TCP peer must be one of the
 * listener's proxy_from ranges, then the PROXY header is read (within handshake_timeout, 5 s
 * when that is 0) and exactly its bytes are consumed, so the TLS handshake or the HTTP head
 * that follows starts on an untouched stream. The session is then accepted with the client
 * address the header carries, which every later use of the peer address sees (X-Forwarded-For,
 * logs, max_connections_per_client, rendezvous hashing).
 *
 * Refusals (peer not allowed, malformed header, no header in time, EOF first) close the
 * connection with one log line per reason for the first and then every thousandth, and at
 * debug level every time; nothing reaches a backend.
 */
#ifndef PROXY_PPACCEPT_H
#define PROXY_PPACCEPT_H

#include <stddef.h>
#include <sys/socket.h>

struct session_env;
struct ppaccept;

/*
 * The PROXY readers of one worker. Borrows env (it must outlive the result); accepted(arg) is
 * called after each connection handed to session_accept. Returns owned (ppaccept_free) or
 * NULL.
 */
struct ppaccept *ppaccept_new(const struct session_env *env, void (*accepted)(void *arg),
                              void *arg);

/* Closes every connection still waiting for its header. Accepts NULL. */
void ppaccept_free(struct ppaccept *pa);

/* A connection accepted on listener li (which has proxy_protocol on); sa is its TCP peer.
 * Takes ownership of fd (closed on every refusal and failure); borrows sa. */
void ppaccept_start(struct ppaccept *pa, size_t li, int fd, const struct sockaddr *sa, int salen);

#endif
