/*
 * libFuzzer target for auth/ntlm.c. Properties: on success every security buffer satisfies
 * off + len <= size, the type matches the header, names are terminated within their arrays,
 * and the channel-binding helper is deterministic.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "auth/ntlm.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
check(int cond)
{
    if (!cond)
        abort();
}

static void
field_ok(const struct ntlmmsg_field *f, size_t size)
{
    check((size_t)f->off + f->len <= size || f->len == 0);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct ntlmmsg_info info;
    const char *why = NULL;

    if (ntlmmsg_inspect(data, size, &info, &why) == 0) {
        check(info.type == ntlmmsg_type_of(data, size));
        check(info.type >= NTLMMSG_NEGOTIATE && info.type <= NTLMMSG_AUTHENTICATE);
        field_ok(&info.neg_domain, size);
        field_ok(&info.neg_workstation, size);
        field_ok(&info.target_name, size);
        field_ok(&info.target_info, size);
        field_ok(&info.lm_response, size);
        field_ok(&info.nt_response, size);
        field_ok(&info.domain, size);
        field_ok(&info.user, size);
        field_ok(&info.workstation, size);
        field_ok(&info.session_key, size);
        check(memchr(info.user_text, 0, sizeof(info.user_text)) != NULL);
        check(memchr(info.domain_text, 0, sizeof(info.domain_text)) != NULL);
        check(memchr(info.workstation_text, 0, sizeof(info.workstation_text)) != NULL);
        check(info.ntlmv2 == (info.nt_response.len > 24));
        if (info.mic_flagged)
            check(size >= 88);
    } else {
        check(why != NULL);
    }
    if (size >= 1 && size <= 64) {
        uint8_t a[16], b[16];
        check(ntlmmsg_cbt_expected(data, size, a) == 0);
        check(ntlmmsg_cbt_expected(data, size, b) == 0);
        check(memcmp(a, b, 16) == 0);
    }
    return 0;
}
