/*
 * libFuzzer target for exshim-probe's 401 reader (probe/wire.c pwire_offers_add over
 * auth/token.c): the input is split at LF into WWW-Authenticate values, as a hostile server
 * would send them. Properties:
 *   - the offer list stays within PWIRE_MAX_OFFERS (truncated set when more came);
 *   - every index found is a real entry; the printed list is terminated and fits its buffer.
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

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct pwire_offers o;
    char text[48];
    memset(&o, 0, sizeof(o));
    size_t start = 0;
    for (size_t i = 0; i <= size; i++) {
        if (i < size && data[i] != '\n')
            continue;
        size_t n = i - start;
        char *v = malloc(n ? n : 1); /* exact size: ASan sees any overread */
        memcpy(v, data + start, n);
        size_t before = o.n;
        pwire_offers_add(&o, v, n);
        check(o.n >= before && o.n <= PWIRE_MAX_OFFERS);
        free(v);
        start = i + 1;
    }
    for (int s = 0; s <= AUTHTOK_SCHEME_NEGO2; s++) {
        int k = pwire_offers_find(&o, (enum authtok_scheme)s);
        check(k < 0 || ((size_t)k < o.n && o.scheme[k] == (enum authtok_scheme)s));
    }
    pwire_offers_text(&o, text, sizeof(text));
    check(memchr(text, '\0', sizeof(text)) != NULL);
    return 0;
}
