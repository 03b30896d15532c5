/*
 * libFuzzer target for proxy/chunked, the strict chunked-body framer.
 *
 * Input: one control byte, then the body bytes. The control byte picks small or default limits
 * and seeds the cuts. Properties asserted:
 * - a call never accepts more than it was given;
 * - feeding the body in one piece, in pseudo-random pieces (unaccepted bytes presented again at
 *   the front), and with chunk data partly skipped instead of presented all give the same
 *   result: error or not, the same reason, and otherwise the same accepted total, done flag
 *   and payload;
 * - after done nothing more is accepted; after an error every call fails;
 * - the accepted bytes never include any byte after the message's end.
 */
#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proxy/chunked.h"

struct outcome {
    bool error;
    const char *why;
    uint64_t accepted;
    bool done;
    uint64_t payload;
};

static uint32_t
next_rand(uint32_t *s)
{
    /* xorshift32: cheap, deterministic cuts from the control byte */
    *s ^= *s << 13;
    *s ^= *s >> 17;
    *s ^= *s << 5;
    return *s;
}

static void
check_terminal(struct chunked *c, const uint8_t *data, size_t size)
{
    if (c->done) {
        assert(chunked_feed(c, (const char *)data, size) == 0);
        assert(chunked_need_contiguous(c) == 0);
    } else if (c->why != NULL) {
        assert(chunked_feed(c, (const char *)data, size) == CHUNKED_ERROR);
        assert(chunked_need_contiguous(c) == 0);
    }
}

/*
 * Feeds body in pieces. mode 0: one piece; 1: random pieces; 2: random pieces, and inside
 * chunk data some of the pending bytes are reported with chunked_skip_data instead of fed.
 */
static struct outcome
run(const struct chunked_limits *lim, const uint8_t *body, size_t size, int mode, uint32_t seed)
{
    struct chunked c;
    struct outcome o = {0};
    /* exactly sized copies, so ASan sees any read past the end of what was presented */
    char *pend = NULL;
    size_t npend = 0, off = 0;

    chunked_init(&c, lim);
    while (off < size || npend > 0) {
        size_t piece = size - off;
        if (mode != 0 && piece > 0)
            piece = 1 + next_rand(&seed) % (piece < 64 ? piece : 64);
        size_t total = npend + piece;
        char *buf = malloc(total ? total : 1);
        assert(buf != NULL);
        if (npend > 0)
            memcpy(buf, pend, npend);
        memcpy(buf + npend, body + off, piece);
        off += piece;
        free(pend);
        pend = NULL;

        size_t start = 0;
        if (mode == 2) {
            uint64_t left = chunked_data_left(&c);
            if (left > 0 && total > 0) {
                size_t skip = next_rand(&seed) % (total + 1);
                if (skip > left)
                    skip = (size_t)left;
                chunked_skip_data(&c, skip);
                assert(chunked_data_left(&c) == left - skip);
                o.accepted += skip;
                start = skip;
            }
        }
        ssize_t n = chunked_feed(&c, buf + start, total - start);
        if (n == CHUNKED_ERROR) {
            assert(c.why != NULL);
            o.error = true;
            o.why = c.why;
            free(buf);
            check_terminal(&c, body, size);
            return o;
        }
        assert(n >= 0 && (size_t)n <= total - start);
        assert(c.why == NULL);
        o.accepted += (uint64_t)n;
        npend = total - start - (size_t)n;
        pend = malloc(npend ? npend : 1);
        assert(pend != NULL);
        memcpy(pend, buf + start + n, npend);
        free(buf);
        /* once everything has been presented, what is left will never be accepted */
        if (off == size && (c.done || n == 0))
            break;
    }
    free(pend);
    o.done = c.done;
    o.payload = c.payload;
    assert(o.payload <= o.accepted);
    check_terminal(&c, body, size);
    return o;
}

static void
same(struct outcome a, struct outcome b)
{
    assert(a.error == b.error);
    if (a.error) {
        assert(a.why == b.why);
        return;
    }
    assert(a.accepted == b.accepted);
    assert(a.done == b.done);
    assert(a.payload == b.payload);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    uint8_t ctl = data[0];
    const uint8_t *body = data + 1;
    size -= 1;

    struct chunked_limits small = {
        .max_line = 3 + (ctl & 0x1f),
        .max_trailer_bytes = 4 + ((ctl >> 2) & 0x1f),
        .max_trailers = 1 + ((ctl >> 5) & 3),
    };
    const struct chunked_limits *lim = (ctl & 0x80) ? &small : NULL;
    uint32_t seed = 0x9e3779b9u ^ ((uint32_t)ctl * 2654435761u) ^ (uint32_t)size;

    struct outcome whole = run(lim, body, size, 0, seed);
    if (!whole.error)
        assert(whole.accepted <= size);
    same(whole, run(lim, body, size, 1, seed));
    same(whole, run(lim, body, size, 2, seed ^ 0x5bd1e995u));

    /* a done message ends exactly where it ends: the accepted prefix alone is also done */
    if (!whole.error && whole.done) {
        struct outcome prefix = run(lim, body, (size_t)whole.accepted, 0, seed);
        assert(!prefix.error && prefix.done && prefix.accepted == whole.accepted &&
               prefix.payload == whole.payload);
    }
    return 0;
}
