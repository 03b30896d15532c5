/*
 * The relay proper, for either direction: body bytes move from one side's input to the other
 * side's output as whole evbuffer chains (no copy), never past the message's end, never a byte
 * the framer (proxy/frame.h) has not validated, and never past the high-water mark of the
 * output. No HTTP knowledge beyond the framer, no sockets.
 */
#ifndef PROXY_RELAY_H
#define PROXY_RELAY_H

#include <stddef.h>
#include <stdint.h>

#include "proxy/frame.h"

struct evbuffer;

enum relay_result {
    RELAY_MORE, /* input exhausted, message not complete */
    RELAY_FULL, /* output at or above the high-water mark: pause the reading side */
    RELAY_DONE, /* message complete (bytes after it stay in the input) */
    RELAY_BAD,  /* framing error, *why_out says which; nothing of the bad element moved */
};

/*
 * Moves what it may from in to out. The first *prefix bytes of in are a rewritten head placed
 * in front of the body: they go out with the body, in the same chain (and so in the same TLS
 * record); *prefix counts down as they leave. *count grows by the body bytes moved. Borrows all.
 */
enum relay_result relay_move(struct evbuffer *in, struct evbuffer *out, struct frame *f, size_t hw,
                             size_t *prefix, uint64_t *count, const char **why_out);

#endif
