/*
 * Connections per client address, counted in one worker (max_connections_per_client).
 *
 * A fixed open-addressing table sized at creation: no allocation per connection, and a
 * lookup costs a hash and a short probe. Keys are the client's address as text ("10.1.2.3",
 * "2001:db8::1"); the port is not part of it. Pure code: no libevent, no logging.
 */
#ifndef PROXY_CLIMIT_H
#define PROXY_CLIMIT_H

#include <stdbool.h>
#include <stddef.h>

struct climit;

/* A table for up to max_entries distinct addresses at once, each allowed at most limit
 * connections. Returns owned (free with climit_free) or NULL. */
struct climit *climit_new(size_t max_entries, size_t limit);
void climit_free(struct climit *t);

/* Counts one more connection from addr. Returns false (and counts nothing) when addr already
 * has limit connections or the table is full. Borrows addr (copied). */
bool climit_acquire(struct climit *t, const char *addr);

/* Counts one connection from addr less; addr must have been acquired. Borrows addr. */
void climit_release(struct climit *t, const char *addr);

/* Connections counted for addr now (for tests and logs). */
size_t climit_count(const struct climit *t, const char *addr);

#endif
