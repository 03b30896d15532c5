/*
 * libFuzzer target for proxy/http1: request and response heads.
 * Properties: every slice lies inside the input and each line runs from its name to the end of
 * its value; a head found by h1_head_end parses or is rejected with a 4xx/5xx status; whatever
 * is accepted, http-parser accepts too with the same names and values (tests/unit/h1_oracle.h),
 * else abort. (Chunked bodies have their own target, fuzz_chunked.)
 */
#include <assert.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proxy/http1.h"
#include "tests/unit/h1_oracle.h"

#define NH 128

static void
check_slice(struct h1_slice s, const char *buf, size_t len)
{
    if (s.len == 0)
        return;
    assert(s.p >= buf && s.p + s.len <= buf + len);
}

static void
check_head(const struct h1_head *h, const char *buf, size_t len, bool is_request)
{
    check_slice(h->method, buf, len);
    check_slice(h->target, buf, len);
    check_slice(h->reason, buf, len);
    assert(h->nheaders <= NH);
    for (size_t i = 0; i < h->nheaders; i++) {
        check_slice(h->headers[i].name, buf, len);
        check_slice(h->headers[i].value, buf, len);
        check_slice(h->headers[i].line, buf, len);
        assert(h->headers[i].name.len > 0);
        assert(h->headers[i].line.p == h->headers[i].name.p);
        assert(h->headers[i].line.p + h->headers[i].line.len ==
               h->headers[i].value.p + h->headers[i].value.len);
    }
    const char *diff = h1oracle_compare(buf, len, is_request, h);
    if (diff != NULL) {
        fprintf(stderr, "fuzz_http1: exshim and http-parser disagree: %s\n", diff);
        abort();
    }
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* Copy into an exact-size heap block so ASan catches any read past the end. */
    char *buf = malloc(size ? size : 1);
    if (buf == NULL)
        return 0;
    memcpy(buf, data, size);

    size_t end = h1_head_end(buf, size);
    assert(end <= size);
    if (end > 0) {
        struct h1_head h;
        struct h1_header hd[NH];
        int st = 0;
        const char *why = NULL;
        int rc = h1_parse_request(buf, end, &h, hd, NH, &st, &why);
        if (rc == H1_OK) {
            check_head(&h, buf, end, true);
        } else {
            assert(rc == H1_ERROR && st >= 400 && st < 600 && why != NULL);
        }
        rc = h1_parse_response(buf, end, size & 1, &h, hd, NH, &st, &why);
        if (rc == H1_OK)
            check_head(&h, buf, end, false);
        else
            assert(rc == H1_ERROR && st >= 400 && st < 600 && why != NULL);
    }

    free(buf);
    return 0;
}
