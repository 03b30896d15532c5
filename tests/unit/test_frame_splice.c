/*
 * Unit tests for the splice accounting of proxy/frame: frame_spliceable() says how many body
 * bytes may leave the source socket without being looked at, frame_skip() accounts them.
 *
 * A simulated socket delivers a body (and the next request after it) in two arrivals, cut at
 * every point, and a relay loop does what relay.c does: while the input buffer is empty and
 * frame_spliceable() > 0 it "splices" up to that many bytes straight from the socket, else it
 * reads what has arrived into the buffer and frames it with frame_take(). Checked for every
 * cut: no spliced byte is a chunk-line byte or beyond the body, the forwarded stream (copied
 * and spliced, in order) is the body exactly, the next request stays unread, and a bad chunk
 * line after a spliced chunk fails before any of its bytes is forwarded.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <event2/buffer.h>

#include "proxy/frame.h"

#define NEXT_REQ "GET /next HTTP/1.1\r\nHost: x\r\n\r\n"

struct wire {
    char *bytes;
    size_t len;      /* body plus what follows it */
    size_t body_len; /* bytes of the message body (framing included) */
    bool *is_data;   /* per byte: chunk data or Content-Length body (may be spliced) */
};

static void
wire_add(struct wire *w, const char *p, size_t n, bool data)
{
    w->bytes = realloc(w->bytes, w->len + n);
    w->is_data = realloc(w->is_data, (w->len + n) * sizeof(bool));
    assert_non_null(w->bytes);
    assert_non_null(w->is_data);
    memcpy(w->bytes + w->len, p, n);
    for (size_t i = 0; i < n; i++)
        w->is_data[w->len + i] = data;
    w->len += n;
}

static void
wire_data(struct wire *w, size_t n, unsigned seed)
{
    char *p = malloc(n ? n : 1);
    assert_non_null(p);
    for (size_t i = 0; i < n; i++)
        p[i] = (char)('a' + (seed + i * 7) % 26);
    wire_add(w, p, n, true);
    free(p);
}

static void
wire_free(struct wire *w)
{
    free(w->bytes);
    free(w->is_data);
    memset(w, 0, sizeof(*w));
}

/* A chunked body: chunks of the given sizes (with an extension on one), a trailer, then
 * NEXT_REQ. */
static struct wire
chunked_wire(const size_t *sizes, size_t n)
{
    struct wire w = {0};
    char line[64];
    for (size_t i = 0; i < n; i++) {
        int l = snprintf(line, sizeof(line), i == 1 ? "%zx;e=1\r\n" : "%zX\r\n", sizes[i]);
        wire_add(&w, line, (size_t)l, false);
        wire_data(&w, sizes[i], (unsigned)i);
        wire_add(&w, "\r\n", 2, false);
    }
    wire_add(&w, "0\r\nX-T: 1\r\n\r\n", 13, false);
    w.body_len = w.len;
    wire_add(&w, NEXT_REQ, sizeof(NEXT_REQ) - 1, false);
    return w;
}

static struct wire
length_wire(size_t n)
{
    struct wire w = {0};
    wire_data(&w, n, 3);
    w.body_len = w.len;
    wire_add(&w, NEXT_REQ, sizeof(NEXT_REQ) - 1, false);
    return w;
}

struct result {
    bool bad;
    bool done;
    size_t consumed; /* bytes taken off the socket */
    size_t spliced;
    char *out; /* forwarded stream */
    size_t out_len;
};

/*
 * Relays w as arriving in two parts, [0, cut) then the rest. max_splice bounds one splice
 * call (a pipe's room), read_cap one read of the copy path. Every spliced byte is checked to
 * be data.
 */
static struct result
relay_sim(struct frame *f, const struct wire *w, size_t cut, size_t max_splice, size_t read_cap)
{
    struct result r = {0};
    struct evbuffer *in = evbuffer_new();
    r.out = malloc(w->len + 1);
    assert_non_null(in);
    assert_non_null(r.out);
    size_t pos = 0; /* socket read position */
    for (int arrival = 0; arrival < 2 && !f->done && !r.bad; arrival++) {
        size_t avail = arrival == 0 ? cut : w->len;
        for (int guard = 0; guard < 100000 && !f->done; guard++) {
            uint64_t can = frame_spliceable(f);
            if (evbuffer_get_length(in) == 0 && can > 0 && pos < avail) {
                size_t n = avail - pos;
                if (n > can)
                    n = (size_t)can;
                if (n > max_splice)
                    n = max_splice;
                for (size_t i = 0; i < n; i++)
                    assert_true(w->is_data[pos + i]); /* never a framing byte or the next request */
                assert_true(pos + n <= w->body_len);
                memcpy(r.out + r.out_len, w->bytes + pos, n);
                r.out_len += n;
                r.spliced += n;
                pos += n;
                frame_skip(f, n);
                continue;
            }
            if (pos < avail) {
                /* the copy path: what has arrived, up to the read cap, into the buffer */
                size_t n = avail - pos < read_cap ? avail - pos : read_cap;
                evbuffer_add(in, w->bytes + pos, n);
                pos += n;
            }
            size_t have = evbuffer_get_length(in);
            if (have == 0)
                break;
            const char *why = NULL;
            ssize_t t = frame_take(f, in, 0, have, &why);
            if (t < 0) {
                assert_non_null(why);
                r.bad = true;
                break;
            }
            if (t == 0 && pos == avail)
                break; /* an element waits for bytes that have not arrived */
            evbuffer_remove(in, r.out + r.out_len, (size_t)t);
            r.out_len += (size_t)t;
        }
    }
    r.done = f->done;
    r.consumed = pos - evbuffer_get_length(in);
    evbuffer_free(in);
    return r;
}

static void
check_every_cut(struct frame init, const struct wire *w, size_t max_splice, size_t read_cap)
{
    size_t total_spliced = 0;
    for (size_t cut = 0; cut <= w->len; cut++) {
        struct frame f = init;
        struct result r = relay_sim(&f, w, cut, max_splice, read_cap);
        assert_false(r.bad);
        assert_true(r.done);
        /* the body exactly, in order; the next request untouched */
        assert_int_equal(r.out_len, w->body_len);
        assert_memory_equal(r.out, w->bytes, w->body_len);
        assert_int_equal(r.consumed, w->body_len);
        assert_int_equal(f.spliced, r.spliced);
        assert_int_equal(frame_spliceable(&f), 0);
        total_spliced += r.spliced;
        free(r.out);
    }
    assert_true(total_spliced > 0);
}

static struct frame
chunked_frame(void)
{
    struct frame f;
    memset(&f, 0, sizeof(f));
    f.kind = H1_BODY_CHUNKED;
    chunked_init(&f.ch, NULL);
    return f;
}

static struct frame
length_frame(uint64_t n)
{
    struct frame f;
    memset(&f, 0, sizeof(f));
    f.kind = H1_BODY_LENGTH;
    f.remaining = n;
    f.done = n == 0;
    return f;
}

static void
test_length_every_cut(void **state)
{
    struct wire w = length_wire(700);
    check_every_cut(length_frame(700), &w, SIZE_MAX, SIZE_MAX);
    check_every_cut(length_frame(700), &w, 13, 40); /* small pipe and reads: many of each */
    wire_free(&w);
}

static void
test_chunked_every_cut(void **state)
{
    const size_t sizes[] = {300, 1, 17, 256, 2};
    struct wire w = chunked_wire(sizes, 5);
    check_every_cut(chunked_frame(), &w, SIZE_MAX, SIZE_MAX);
    check_every_cut(chunked_frame(), &w, 7, 50);
    check_every_cut(chunked_frame(), &w, SIZE_MAX, 3);
    wire_free(&w);
}

static void
test_spliceable_states(void **state)
{
    /* at a chunk line: nothing; in chunk data: exactly what is left of it */
    struct frame f = chunked_frame();
    assert_int_equal(frame_spliceable(&f), 0);
    struct evbuffer *in = evbuffer_new();
    evbuffer_add(in, "10\r\nabc", 7);
    const char *why = NULL;
    assert_int_equal(frame_take(&f, in, 0, 7, &why), 7);
    assert_int_equal(frame_spliceable(&f), 13);
    frame_skip(&f, 14); /* more than allowed: ignored */
    assert_int_equal(frame_spliceable(&f), 13);
    frame_skip(&f, 13);
    assert_int_equal(frame_spliceable(&f), 0); /* the CRLF after the data comes next */
    assert_int_equal(f.spliced, 13);
    assert_false(f.done);
    evbuffer_free(in);

    /* Content-Length: the rest of the body; done when it is all skipped */
    f = length_frame(5);
    assert_int_equal(frame_spliceable(&f), 5);
    frame_skip(&f, 2);
    assert_int_equal(frame_spliceable(&f), 3);
    frame_skip(&f, 3);
    assert_true(f.done);
    assert_int_equal(frame_spliceable(&f), 0);

    /* close-delimited and no body: never */
    memset(&f, 0, sizeof(f));
    f.kind = H1_BODY_EOF;
    assert_int_equal(frame_spliceable(&f), 0);
    f.kind = H1_BODY_NONE;
    f.done = true;
    assert_int_equal(frame_spliceable(&f), 0);
}

/* A bad chunk line after a spliced chunk: the error comes before any byte of it is
 * forwarded, however the stream is cut. */
static void
test_bad_line_after_spliced_chunk(void **state)
{
    struct wire w = {0};
    wire_add(&w, "200\r\n", 5, false);
    wire_data(&w, 0x200, 1);
    wire_add(&w, "\r\nzz\r\nLEAKED\r\n0\r\n\r\n", 20, false);
    w.body_len = w.len;
    size_t bad_at = 5 + 0x200 + 2;
    for (size_t cap = 16; cap <= 4096; cap *= 16) {
        size_t spliced = 0;
        for (size_t cut = 0; cut <= w.len; cut++) {
            struct frame f = chunked_frame();
            struct result r = relay_sim(&f, &w, cut, SIZE_MAX, cap);
            assert_true(r.bad);
            assert_false(r.done);
            assert_true(r.out_len <= bad_at);
            assert_memory_equal(r.out, w.bytes, r.out_len);
            assert_null(memmem(r.out, r.out_len, "LEAKED", 6));
            spliced += r.spliced;
            free(r.out);
        }
        if (cap < 0x200)
            assert_true(spliced > 0);
    }
    wire_free(&w);
}

/* Large chunks and bodies, read in pieces of a few sizes: the counts add up to the byte. */
static void
test_large_pieces(void **state)
{
    const size_t sizes[] = {1 << 20, 65536, 3, 5 << 20};
    struct wire w = chunked_wire(sizes, 4);
    const size_t cuts[] = {0,          1,    3, 4, 100, 1 << 19, (1 << 20) + 6, (1 << 20) + 8,
                           w.len - 40, w.len};
    for (size_t i = 0; i < sizeof(cuts) / sizeof(cuts[0]); i++) {
        struct frame f = chunked_frame();
        struct result r = relay_sim(&f, &w, cuts[i], 512 * 1024, 65536);
        assert_false(r.bad);
        assert_true(r.done);
        assert_int_equal(r.out_len, w.body_len);
        assert_memory_equal(r.out, w.bytes, w.body_len);
        assert_true(r.spliced >= (6u << 20) - 4 * 65536);
        free(r.out);
    }
    wire_free(&w);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_spliceable_states),
        cmocka_unit_test(test_length_every_cut),
        cmocka_unit_test(test_chunked_every_cut),
        cmocka_unit_test(test_bad_line_after_spliced_chunk),
        cmocka_unit_test(test_large_pieces),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
