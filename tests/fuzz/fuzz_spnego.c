/*
 * libFuzzer target for auth/spnego.c. Properties:
 *   - every view (inner token, mechListMIC, MechTypeList) lies inside the input;
 *   - describe() always terminates within its buffer;
 *   - wrapping any 1..SPNEGO_MAX_INNER bytes and peeking gives a NegTokenResp
 *     (accept-incomplete, NTLM) whose responseToken is exactly those bytes;
 *   - an NTLM inner token re-wrapped reads back identical.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "auth/spnego.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
check(int cond)
{
    if (!cond)
        abort();
}

static void
inside(const uint8_t *base, size_t len, struct spnego_view v)
{
    if (v.len == 0)
        return;
    check(v.p >= base && (size_t)(v.p - base) <= len && v.len <= len - (size_t)(v.p - base));
}

static void
wrap_roundtrip(const uint8_t *p, size_t n)
{
    size_t cap, len = 0;
    uint8_t *out;
    struct spnego_token t;
    const char *why = NULL;

    if (n == 0 || n > SPNEGO_MAX_INNER)
        return;
    cap = spnego_wrap_ntlm_size(n);
    out = malloc(cap);
    check(out != NULL);
    check(spnego_wrap_ntlm(p, n, out, cap, &len) == 0);
    check(len == cap);
    check(spnego_wrap_ntlm(p, n, out, cap - 1, &len) == -1);
    check(spnego_peek(out, len, &t, &why) == 0);
    check(t.kind == SPNEGO_RESP && t.neg_state == SPNEGO_ACCEPT_INCOMPLETE);
    check(t.supported_mech == SPNEGO_MECH_NTLM && !t.has_mic);
    check(t.inner.len == n && memcmp(t.inner.p, p, n) == 0);
    free(out);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct spnego_token t;
    const char *why = NULL;
    char desc[128], tiny[4];

    if (spnego_peek(data, size, &t, &why) == 0) {
        inside(data, size, t.inner);
        inside(data, size, t.mic);
        inside(data, size, t.mech_types);
        check(t.nmechs == 0 || t.mechs != 0);
        spnego_describe(&t, desc, sizeof(desc));
        check(strlen(desc) < sizeof(desc));
        spnego_describe(&t, tiny, sizeof(tiny));
        check(strlen(tiny) < sizeof(tiny));
        if (t.inner_kind == SPNEGO_INNER_NTLM)
            wrap_roundtrip(t.inner.p, t.inner.len);
    } else {
        check(why != NULL);
    }
    wrap_roundtrip(data, size);
    return 0;
}
