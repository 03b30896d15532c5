/*
 * Short-lived evbuffers (a rewritten head, an Authorization line, a local 401) come from a small
 * per-process pool instead of evbuffer_new/evbuffer_free per request. A worker is one thread; a
 * nested exchange (a local reply that starts the next pipelined request) simply takes another
 * buffer from the pool.
 */
#ifndef PROXY_SCRATCH_H
#define PROXY_SCRATCH_H

struct evbuffer;

/* An empty evbuffer, owned by the caller until scratch_put; NULL when out of memory. */
struct evbuffer *scratch_get(void);

/* Gives b back (drained here; NULL is ignored). Beyond the pool's size it is freed. */
void scratch_put(struct evbuffer *b);

#endif
