/*
 * Strict chunked transfer coding (RFC 9112 section 7.1), over plain memory: no libevent, no
 * logging, no allocation, no pointer kept into the caller's bytes.
 *
 * The framer validates and delimits a chunked body for requests and responses alike. It never
 * copies or decodes: it tells the caller how many of the bytes it was shown are whole, valid
 * framing elements or chunk data, so those may be forwarded unchanged. An element that is cut
 * short (a line without its LF, a lone CR after chunk data) is left unaccepted; the caller
 * presents those bytes again, at the front, once more have arrived. Lines are re-scanned from
 * their first byte, which is cheap because every line is bounded by a limit.
 *
 * Rejected (among others): chunk sizes with a sign, "0x", leading whitespace, more than 16 hex
 * digits or a value above INT64_MAX; anything after the size that is not a well-formed chunk
 * extension; a bare CR or bare LF anywhere; a missing CRLF after chunk data; obs-fold, control
 * bytes and framing, routing or credential fields (Content-Length, Host, Authorization, ...) in
 * trailers; lines or trailer sections over their limits.
 */
#ifndef PROXY_CHUNKED_H
#define PROXY_CHUNKED_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define CHUNKED_ERROR (-1)

/* Defaults used for a NULL limits pointer and for any field left 0. */
#define CHUNKED_DEFAULT_MAX_LINE 4096
#define CHUNKED_DEFAULT_MAX_TRAILER_BYTES 16384
#define CHUNKED_DEFAULT_MAX_TRAILERS 64

struct chunked_limits {
    size_t max_line;          /* longest chunk-size line incl. extensions and CRLF */
    size_t max_trailer_bytes; /* all trailer field lines together, each with its CRLF */
    size_t max_trailers;      /* trailer field count */
};

struct chunked {
    /* read-only for callers */
    bool done;        /* the final CRLF after last-chunk/trailers was accepted */
    uint64_t payload; /* chunk-data bytes accepted (or skipped) so far */
    const char *why;  /* static reason after CHUNKED_ERROR, else NULL */
    /* private */
    int state;            /* enum in chunked.c */
    uint64_t left;        /* chunk-data bytes still to come in the current chunk */
    size_t trailer_bytes; /* bytes of the trailer field lines accepted so far */
    size_t ntrailers;     /* trailer field lines accepted so far */
    struct chunked_limits lim;
};

/*
 * Prepares c for one chunked body. lim: borrowed and copied; NULL (or a 0 field) means the
 * defaults above.
 */
void chunked_init(struct chunked *c, const struct chunked_limits *lim);

/*
 * Validates and frames [p, p+len). Returns n in 0..len: the first n bytes are whole framing
 * elements (chunk-size line, the CRLF after chunk data, a trailer line, the final empty line)
 * or chunk data, all validated, and may be forwarded. Stops exactly at the end of the message
 * (c->done), so bytes after the message are not accepted; once done, it returns 0. Bytes in
 * [n,len) not accepted begin an element that is not complete yet: the caller calls again with
 * those bytes at the front followed by more. A line longer than max_line (or trailers over
 * their limits) is an error as soon as the byte that makes it too long is seen, even before
 * its end arrives. Chunk data is accepted as it arrives, up to the chunk's end. Returns
 * CHUNKED_ERROR on any violation, with c->why set; every later call returns CHUNKED_ERROR too.
 * The first violation in the byte stream decides c->why, however the stream is cut into calls.
 * Borrows p (may be NULL when len is 0); keeps no pointer.
 */
ssize_t chunked_feed(struct chunked *c, const char *p, size_t len);

/*
 * Bytes of chunk data still to come in the current chunk; 0 when not inside chunk data.
 * Borrows c.
 */
uint64_t chunked_data_left(const struct chunked *c);

/*
 * Reports n bytes of chunk data that the caller moved without presenting them (splice).
 * n must be <= chunked_data_left(c). Counts them in c->payload. Borrows c.
 */
void chunked_skip_data(struct chunked *c, uint64_t n);

/*
 * How many contiguous bytes the caller should present at once so that the next element can be
 * seen whole (or refused): the line limit for a chunk-size line, what is left of the trailer
 * budget (at least 2, for the final CRLF) for a trailer line, 2 for the CRLF after chunk data,
 * 1 inside chunk data (any amount makes progress), 0 once done or in error. Borrows c.
 */
size_t chunked_need_contiguous(const struct chunked *c);

#endif
