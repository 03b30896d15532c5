/*
 * A session is one client connection and the one backend connection pinned to it.
 * session_close() is the only path that frees it.
 */
#ifndef PROXY_SESSION_H
#define PROXY_SESSION_H

#include <sys/socket.h>

struct worker;
struct session;

/* Takes ownership of fd (closed on failure too). li: index of the accepting listener. */
void session_accept(struct worker *w, size_t li, int fd, const struct sockaddr *sa, int salen);

/* Asks an idle session to end now and a busy one to end after its current exchange. */
void session_drain_all(struct worker *w);

#endif
