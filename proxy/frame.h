/*
 * Body framing over an evbuffer: how many of the bytes waiting in a buffer belong to the
 * current message and have been validated, so the relay may move them and nothing else.
 *
 * Content-Length bodies are only counted. Chunked bodies go through proxy/chunked.h: chunk
 * data is skipped over without being read, and only the framing lines are looked at, in place
 * when a line lies in one evbuffer chain and joined in a small stack copy when it straddles two.
 * A message delimited by the connection's close (responses only) takes everything.
 */
#ifndef PROXY_FRAME_H
#define PROXY_FRAME_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "proxy/chunked.h"
#include "proxy/http1.h"

struct evbuffer;

struct frame {
    enum h1_body_kind kind;
    uint64_t remaining; /* H1_BODY_LENGTH: body bytes still to come */
    bool done;          /* the message is complete */
    struct chunked ch;  /* H1_BODY_CHUNKED */
    uint64_t spliced;   /* body bytes moved by splice(2) (frame_skip) */
    bool no_splice;     /* relay.c: no pipe could be had for this body: copy it */
};

/* Prepares f for the body that head h announces. Borrows h (nothing is kept). */
void frame_init(struct frame *f, const struct h1_head *h);

/*
 * Frames the avail bytes of in that follow its first skip bytes. Returns how many of them, from
 * the start, belong to the message and are valid (0..avail; never past the message's end), or
 * -1 when the framing is broken, with *why_out (static text). A framing line that has not fully
 * arrived is not counted: the caller offers it again once more bytes are in. Borrows in; moves
 * nothing out of it.
 */
ssize_t frame_take(struct frame *f, struct evbuffer *in, size_t skip, size_t avail,
                   const char **why_out);

/*
 * How many of the body's next bytes may move without being looked at (splice): what is left
 * of a Content-Length body, or of the current chunk's data; 0 at a chunk line, for a
 * close-delimited body and once done. Never past the message or into framing. Borrows f.
 */
uint64_t frame_spliceable(const struct frame *f);

/* Accounts n body bytes moved without passing through a buffer; n <= frame_spliceable(f)
 * (more is a caller bug: nothing is counted then). */
void frame_skip(struct frame *f, uint64_t n);

/*
 * Checks the body bytes already waiting in in (after its first skip bytes) against a copy of
 * f, without consuming anything: 0 when they are valid so far, -1 with *why_out when they
 * already break the framing. Used before a head is forwarded, so that a request which arrived
 * whole and malformed reaches the backend not at all.
 */
int frame_check_ahead(const struct frame *f, struct evbuffer *in, size_t skip,
                      const char **why_out);

#endif
