/* The pool of short-lived evbuffers. See scratch.h. */
#include "proxy/scratch.h"

#include <stddef.h>

#include <event2/buffer.h>

/* Enough for the deepest nesting an exchange reaches; a drained evbuffer holds no chain. */
#define POOL 8

static struct evbuffer *pool[POOL];
static size_t npool;

struct evbuffer *
scratch_get(void)
{
    if (npool > 0)
        return pool[--npool];
    return evbuffer_new();
}

void
scratch_put(struct evbuffer *b)
{
    if (b == NULL)
        return;
    evbuffer_drain(b, evbuffer_get_length(b));
    if (npool < POOL)
        pool[npool++] = b;
    else
        evbuffer_free(b);
}
