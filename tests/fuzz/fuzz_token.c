/*
 * libFuzzer target for auth/token.c. Properties checked on every input:
 *   - every slice of every challenge lies inside the input;
 *   - a challenge's text starts with its scheme word and holds its token68 and params;
 *   - parsing a challenge's text alone gives that one challenge back (same scheme, token68,
 *     params count and text);
 *   - a credentials token68 that decodes re-encodes to the same text (strict base64).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "auth/b64.h"
#include "auth/token.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
check(int cond)
{
    if (!cond)
        abort();
}

static void
inside(const char *base, size_t len, struct authtok_slice s)
{
    if (s.len == 0)
        return;
    check(s.p >= base && (size_t)(s.p - base) <= len && s.len <= len - (size_t)(s.p - base));
}

static void
within(struct authtok_slice outer, struct authtok_slice s)
{
    if (s.len == 0)
        return;
    check(s.p >= outer.p && s.p + s.len <= outer.p + outer.len);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *v = (const char *)data;
    struct authtok_challenge list[AUTHTOK_MAX_CHALLENGES];
    struct authtok_challenge c;
    size_t n = 0, i;
    const char *why = NULL;

    if (authtok_parse_challenges(v, size, list, AUTHTOK_MAX_CHALLENGES, &n, &why) == AUTHTOK_OK) {
        check(n >= 1 && n <= AUTHTOK_MAX_CHALLENGES);
        for (i = 0; i < n; i++) {
            struct authtok_challenge again[2];
            size_t m = 0;
            inside(v, size, list[i].text);
            within(list[i].text, list[i].name);
            within(list[i].text, list[i].token68);
            within(list[i].text, list[i].params);
            check(list[i].name.len > 0 && list[i].name.p == list[i].text.p);
            check(!(list[i].token68.len > 0 && list[i].params.len > 0));
            check(authtok_parse_challenges(list[i].text.p, list[i].text.len, again, 2, &m, &why) ==
                  AUTHTOK_OK);
            check(m == 1);
            check(again[0].scheme == list[i].scheme);
            check(again[0].token68.len == list[i].token68.len);
            check(again[0].nparams == list[i].nparams);
            check(again[0].text.len == list[i].text.len);
        }
    } else {
        check(why != NULL);
        check(n == 0);
    }

    why = NULL;
    if (authtok_parse_credentials(v, size, &c, &why) == AUTHTOK_OK) {
        inside(v, size, c.text);
        within(c.text, c.token68);
        within(c.text, c.params);
        if (c.token68.len > 0 && c.token68.len <= 4096) {
            uint8_t raw[4096];
            char enc[4100];
            size_t rlen, elen;
            if (authtok_decode(&c, raw, sizeof(raw), &rlen) == 0) {
                check(authb64_encode(raw, rlen, enc, sizeof(enc), &elen) == 0);
                check(elen == c.token68.len && memcmp(enc, c.token68.p, elen) == 0);
            }
        }
    } else {
        check(why != NULL);
    }
    return 0;
}
