/*
 * libFuzzer target for proxy/guard.c. The input is split at '\n': byte 0's low bit is the
 * powershell_published flag, then the path, the query (a line starting with "-" means "no
 * query"), and up to GUARD_FUZZ_HEADERS "name: value" lines. Properties checked on every input:
 *   - a returned rule lies inside the table from guard_rules();
 *   - the same input gives the same answer twice (no hidden state);
 *   - the answer does not depend on where the bytes live (a private copy gives the same rule);
 *   - a path or query longer than GUARD_MAX_PART is refused as EXG-000;
 *   - a request that passes unpublished also passes published (publishing only opens).
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proxy/guard.h"

#define GUARD_FUZZ_HEADERS 4

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
check(int cond)
{
    if (!cond)
        abort();
}

/* Next line of [*p, end), without its '\n'; false at the end of the input. */
static bool
next_line(const char **p, const char *end, const char **line_out, size_t *len_out)
{
    if (*p > end)
        return false;
    const char *nl = memchr(*p, '\n', (size_t)(end - *p));
    const char *stop = nl != NULL ? nl : end;
    *line_out = *p;
    *len_out = (size_t)(stop - *p);
    *p = stop + 1;
    return true;
}

static void
split(const char *v, size_t size, struct guard_input *in, struct h1_header *h)
{
    const char *p = v + 1, *end = v + size, *line;
    size_t len;

    memset(in, 0, sizeof(*in));
    in->powershell_published = (v[0] & 1) != 0;
    if (next_line(&p, end, &line, &len)) {
        in->path = line;
        in->path_len = len;
    }
    if (next_line(&p, end, &line, &len) && !(len > 0 && line[0] == '-')) {
        in->query = line;
        in->query_len = len;
    }
    in->headers = h;
    while (in->nheaders < GUARD_FUZZ_HEADERS && next_line(&p, end, &line, &len)) {
        const char *colon = memchr(line, ':', len);
        struct h1_header *hd = &h[in->nheaders++];
        size_t nl = colon != NULL ? (size_t)(colon - line) : len;
        hd->name.p = line;
        hd->name.len = nl;
        hd->value.p = colon != NULL ? colon + 1 : line + len;
        hd->value.len = colon != NULL ? len - nl - 1 : 0;
        while (hd->value.len > 0 && hd->value.p[0] == ' ') {
            hd->value.p++;
            hd->value.len--;
        }
        hd->line.p = line;
        hd->line.len = len;
    }
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct guard_input in, in2;
    struct h1_header h[GUARD_FUZZ_HEADERS], h2[GUARD_FUZZ_HEADERS];
    size_t n;
    const struct guard_rule *table = guard_rules(&n);

    if (size == 0)
        return 0;
    split((const char *)data, size, &in, h);

    const struct guard_rule *r = guard_check(&in);
    check(r == NULL || (r >= table && r < table + n));
    check(guard_check(&in) == r);
    if (in.path_len > GUARD_MAX_PART || in.query_len > GUARD_MAX_PART)
        check(r == &table[0]);

    /* the same bytes somewhere else */
    char *copy = malloc(size);
    check(copy != NULL);
    memcpy(copy, data, size);
    split(copy, size, &in2, h2);
    check(guard_check(&in2) == r);
    free(copy);

    if (r == NULL && !in.powershell_published) {
        in.powershell_published = true;
        check(guard_check(&in) == NULL);
    }
    return 0;
}
