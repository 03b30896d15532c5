/*
 * The relay proper, for either direction: body bytes move from one side's input to the other
 * side's output as whole evbuffer chains (no copy), never past the message's end, never a byte
 * the framer (proxy/frame.h) has not validated, and never past the high-water mark of the
 * output. No HTTP knowledge beyond the framer.
 *
 * Between two plain sockets relay_body also lets a large body bypass the buffers: once the
 * copy path has seen bulk (a turn that moved SPLICE_BULK bytes) and at least SPLICE_WORTH
 * bytes of the body, or of the current chunk's data, are still to come with nothing of the
 * body left in the input, it arms conn_splice_arm() for exactly that many bytes: socket ->
 * pipe -> socket, the framer told afterwards (frame_skip). Chunk lines always come through
 * the input and the strict parser.
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

struct conn;

/* A body bigger than this is worth a pipe; a copy-path turn moving SPLICE_BULK says bulk. */
#define SPLICE_WORTH 65536
#define SPLICE_BULK 16384

/*
 * relay_move from src's input to dst's output, plus splice(2) as above. Bytes that were
 * spliced count in *count like the others. A body is RELAY_DONE once its last byte has left
 * the pipe too (RELAY_FULL until then). On RELAY_BAD, and when src has reached end-of-file or
 * failed, what the pipe holds is put in front of dst's output, so that flushing (or dropping)
 * the output treats every forwarded byte as the copy path would. Borrows all.
 */
enum relay_result relay_body(struct conn *src, struct conn *dst, struct frame *f, size_t hw,
                             size_t *prefix, uint64_t *count, const char **why_out);

#endif
