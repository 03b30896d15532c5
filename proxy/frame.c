/* Body framing over an evbuffer. See frame.h. */
#include "proxy/frame.h"

#include <string.h>

#include <event2/buffer.h>

/* Largest framing element joined across chains: a chunk-size line or a trailer line. */
#define JOIN_MAX (CHUNKED_DEFAULT_MAX_TRAILER_BYTES + 16)

void
frame_init(struct frame *f, const struct h1_head *h)
{
    memset(f, 0, sizeof(*f));
    f->kind = h->body;
    switch (h->body) {
    case H1_BODY_NONE:
        f->done = true;
        break;
    case H1_BODY_LENGTH:
        f->remaining = h->content_length;
        f->done = f->remaining == 0;
        break;
    case H1_BODY_CHUNKED:
        chunked_init(&f->ch, NULL);
        break;
    case H1_BODY_EOF:
        break;
    }
}

static ssize_t
take_chunked(struct chunked *c, struct evbuffer *in, size_t skip, size_t avail, const char **why)
{
    size_t take = 0;
    char join[JOIN_MAX];

    while (take < avail && !c->done) {
        uint64_t left = chunked_data_left(c);
        if (left > 0) {
            /* Inside chunk data: its bytes are never looked at. */
            size_t n = left < avail - take ? (size_t)left : avail - take;
            chunked_skip_data(c, n);
            take += n;
            continue;
        }
        struct evbuffer_ptr at;
        struct evbuffer_iovec v;
        if (evbuffer_ptr_set(in, &at, skip + take, EVBUFFER_PTR_SET) != 0 ||
            evbuffer_peek(in, (ev_ssize_t)(avail - take), &at, &v, 1) < 1)
            break;
        size_t inchain = v.iov_len < avail - take ? v.iov_len : avail - take;
        ssize_t n = chunked_feed(c, v.iov_base, inchain);
        if (n < 0)
            goto bad;
        if (n > 0) {
            take += (size_t)n;
            continue;
        }
        /* The element at hand continues in the next chain: look at it joined. */
        size_t want = chunked_need_contiguous(c);
        if (want > avail - take)
            want = avail - take;
        if (want > sizeof(join))
            want = sizeof(join);
        if (want <= inchain)
            break; /* no more bytes than in this chain: the element is incomplete */
        if (evbuffer_copyout_from(in, &at, join, want) != (ev_ssize_t)want)
            break;
        n = chunked_feed(c, join, want);
        if (n < 0)
            goto bad;
        if (n == 0) {
            if (want == sizeof(join)) {
                *why = "chunk framing line too long";
                return -1;
            }
            break;
        }
        take += (size_t)n;
    }
    return (ssize_t)take;
bad:
    *why = c->why != NULL ? c->why : "bad chunked framing";
    return -1;
}

ssize_t
frame_take(struct frame *f, struct evbuffer *in, size_t skip, size_t avail, const char **why_out)
{
    if (f->done)
        return 0;
    switch (f->kind) {
    case H1_BODY_NONE:
        return 0;
    case H1_BODY_EOF:
        return (ssize_t)avail;
    case H1_BODY_LENGTH: {
        size_t n = avail < f->remaining ? avail : (size_t)f->remaining;
        f->remaining -= n;
        f->done = f->remaining == 0;
        return (ssize_t)n;
    }
    case H1_BODY_CHUNKED: {
        ssize_t n = take_chunked(&f->ch, in, skip, avail, why_out);
        if (n >= 0)
            f->done = f->ch.done;
        return n;
    }
    }
    *why_out = "unknown body framing";
    return -1;
}

int
frame_check_ahead(const struct frame *f, struct evbuffer *in, size_t skip, const char **why_out)
{
    size_t len = evbuffer_get_length(in);
    if (f->kind != H1_BODY_CHUNKED || len <= skip)
        return 0;
    struct frame probe = *f;
    return frame_take(&probe, in, skip, len - skip, why_out) < 0 ? -1 : 0;
}

uint64_t
frame_spliceable(const struct frame *f)
{
    if (f->done)
        return 0;
    if (f->kind == H1_BODY_LENGTH)
        return f->remaining;
    if (f->kind == H1_BODY_CHUNKED)
        return chunked_data_left(&f->ch);
    return 0;
}

void
frame_skip(struct frame *f, uint64_t n)
{
    if (n == 0 || n > frame_spliceable(f))
        return;
    f->spliced += n;
    if (f->kind == H1_BODY_LENGTH) {
        f->remaining -= n;
        f->done = f->remaining == 0;
    } else {
        /* the chunk's CRLF is still to come: never done here */
        chunked_skip_data(&f->ch, n);
    }
}
