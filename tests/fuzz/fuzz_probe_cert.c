/*
 * libFuzzer target for exshim-probe's certificate reader (probe/wire.c pwire_cert_parse and
 * the name checks) over DER input from a hostile server. Properties:
 *   - on success every name is a terminated printable string within its buffer and the SAN
 *     count is within PWIRE_CERT_MAX_SANS;
 *   - a host name that matches is one of the SANs (or the CN when there are none).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "probe/wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
check(int cond)
{
    if (!cond)
        abort();
}

static void
name_ok(const char *s, size_t cap)
{
    check(memchr(s, '\0', cap) != NULL);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct pwire_cert c;
    if (pwire_cert_parse(data, size, &c) != 0)
        return 0;
    name_ok(c.subject_cn, sizeof(c.subject_cn));
    for (const char *q = c.subject_cn; *q; q++)
        check(*q >= 0x20 && *q < 0x7f);
    name_ok(c.issuer_cn, sizeof(c.issuer_cn));
    name_ok(c.not_after, sizeof(c.not_after));
    check(c.nsan <= PWIRE_CERT_MAX_SANS);
    for (size_t i = 0; i < c.nsan; i++) {
        name_ok(c.san[i], sizeof(c.san[i]));
        for (const char *q = c.san[i]; *q; q++)
            check(*q > 0x20 && *q < 0x7f);
        if (strncmp(c.san[i], "*.", 2) != 0) {
            check(pwire_cert_matches(&c, c.san[i]));
            if (strncasecmp(c.san[i], "msstd:", 6) != 0)
                check(pwire_cert_msstd(&c, c.san[i]));
        }
    }
    if (c.nsan == 0 && c.subject_cn[0] != '\0' && strncmp(c.subject_cn, "*.", 2) != 0)
        check(pwire_cert_matches(&c, c.subject_cn));
    (void)pwire_cert_matches(&c, "mail.contoso.com");
    return 0;
}
