/*
 * libFuzzer target for exshim-probe's RTS PDU parser (probe/wire.c pwire_pdu_parse), fed the
 * way the probe reads an OUT channel: PDU after PDU from one buffer. Properties:
 *   - a parsed PDU's length is its frag_length, at least its header, never past the input;
 *   - every prefix shorter than a parsed PDU is INCOMPLETE (never a different answer);
 *   - A3/C2 are RTS with the command count their layout has.
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
    size_t off = 0;
    while (off < size) {
        struct pwire_pdu d, e;
        int n = pwire_pdu_parse(data + off, size - off, &d);
        if (n < 0) {
            check(n == PWIRE_INCOMPLETE || n == PWIRE_ERROR);
            break;
        }
        check(n >= 16 && (size_t)n <= size - off && n == d.frag_len);
        if (d.ptype == PWIRE_PTYPE_RTS)
            check(n >= 20 && d.ncmds <= PWIRE_RTS_MAX_CMDS);
        if (d.kind == PWIRE_RTS_CONN_A3)
            check(d.ptype == PWIRE_PTYPE_RTS && d.ncmds == 1);
        if (d.kind == PWIRE_RTS_CONN_C2)
            check(d.ptype == PWIRE_PTYPE_RTS && d.ncmds == 3);
        /* a prefix of a whole PDU is incomplete (copied so ASan sees any overread) */
        size_t cut = (size_t)n / 2;
        uint8_t *p = malloc(cut ? cut : 1);
        memcpy(p, data + off, cut);
        check(pwire_pdu_parse(p, cut, &e) == PWIRE_INCOMPLETE);
        free(p);
        off += (size_t)n;
    }
    return 0;
}
