/*
 * libFuzzer target for exshim-probe's chunked decoder and MAPI meta-tag reader
 * (probe/wire.c), which read NotificationWait and Connect bodies. The first input byte picks
 * how the rest is split into reads (1..256 bytes each); the payload goes through the
 * meta-tag reader as it comes. Properties:
 *   - each feed consumes no more than it was given and writes no more than its capacity;
 *   - the payload never exceeds the input; a framing error is found whatever the split, and
 *     without one the payload and the meta-tags are the same whatever the split;
 *   - the meta-tag line buffer never overflows; counters only grow.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "probe/wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
check(int cond)
{
    if (!cond)
        abort();
}

/* Decodes data[0..size) in reads of step bytes; returns the payload length (into out). */
static size_t
decode(const uint8_t *data, size_t size, size_t step, uint8_t *out, size_t cap, bool *err,
       struct pwire_mapi *m)
{
    struct pwire_chunked c;
    size_t total = 0, off = 0;
    memset(&c, 0, sizeof(c));
    *err = false;
    while (off < size && c.st != PWIRE_CH_DONE) {
        size_t n = size - off < step ? size - off : step, o = 0;
        long used = pwire_chunked_feed(&c, data + off, n, out + total, cap - total, &o);
        if (used < 0) {
            *err = true;
            break;
        }
        check((size_t)used <= n && o <= cap - total);
        unsigned before = m->pending;
        pwire_mapi_feed(m, out + total, o);
        check(m->pending >= before && m->line_len <= sizeof(m->line));
        total += o;
        if (used == 0 && o == 0)
            break; /* output full */
        off += (size_t)used;
    }
    return total;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    size_t step = (size_t)data[0] + 1;
    data++;
    size--;
    uint8_t *a = malloc(size + 1), *b = malloc(size + 1);
    struct pwire_mapi ma, mb;
    bool ea, eb;
    pwire_mapi_init(&ma);
    pwire_mapi_init(&mb);
    size_t na = decode(data, size, step, a, size + 1, &ea, &ma);
    size_t nb = decode(data, size, size ? size : 1, b, size + 1, &eb, &mb);
    check(na <= size && nb <= size);
    check(ea == eb);
    if (!ea) {
        check(na == nb && memcmp(a, b, na) == 0);
        check(ma.pending == mb.pending && ma.done == mb.done);
    }
    free(a);
    free(b);
    return 0;
}
