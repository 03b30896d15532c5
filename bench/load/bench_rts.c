/*
 * RTS PDU builders shared by exshim-bench and exshim-probe. See bench_rts.h.
 */
#include "bench/load/bench_rts.h"

#include <string.h>

/* RTS command types (MS-RPCH 2.2.3.5) */
enum {
    RTS_CMD_RECEIVE_WINDOW_SIZE = 0,
    RTS_CMD_COOKIE = 3,
    RTS_CMD_CHANNEL_LIFETIME = 4,
    RTS_CMD_CLIENT_KEEPALIVE = 5,
    RTS_CMD_VERSION = 6,
    RTS_CMD_ASSOCIATION_GROUP_ID = 12,
};

static void
rts_put16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

static void
rts_put32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

void
bench_rts_header(uint8_t *p, uint16_t len, uint16_t flags, uint16_t ncmds)
{
    memset(p, 0, 20);
    p[0] = 5;               /* rpc_vers */
    p[2] = BENCH_RTS_PTYPE; /* ptype */
    p[3] = 0x03;            /* first and last fragment */
    p[4] = 0x10;            /* little endian, ASCII, IEEE */
    rts_put16(p + 8, len);
    rts_put16(p + 16, flags);
    rts_put16(p + 18, ncmds);
}

void
bench_rts_conn_a1(uint8_t out[BENCH_RTS_CONN_A1_LEN], const uint8_t vc[16], const uint8_t chan[16])
{
    bench_rts_header(out, BENCH_RTS_CONN_A1_LEN, 0, 4);
    rts_put32(out + 20, RTS_CMD_VERSION);
    rts_put32(out + 24, 1);
    rts_put32(out + 28, RTS_CMD_COOKIE);
    memcpy(out + 32, vc, 16);
    rts_put32(out + 48, RTS_CMD_COOKIE);
    memcpy(out + 52, chan, 16);
    rts_put32(out + 68, RTS_CMD_RECEIVE_WINDOW_SIZE);
    rts_put32(out + 72, 0x10000);
}

void
bench_rts_conn_b1(uint8_t out[BENCH_RTS_CONN_B1_LEN], const uint8_t vc[16], const uint8_t chan[16],
                  const uint8_t assoc[16], uint32_t lifetime)
{
    bench_rts_header(out, BENCH_RTS_CONN_B1_LEN, 0, 6);
    rts_put32(out + 20, RTS_CMD_VERSION);
    rts_put32(out + 24, 1);
    rts_put32(out + 28, RTS_CMD_COOKIE);
    memcpy(out + 32, vc, 16);
    rts_put32(out + 48, RTS_CMD_COOKIE);
    memcpy(out + 52, chan, 16);
    rts_put32(out + 68, RTS_CMD_CHANNEL_LIFETIME);
    rts_put32(out + 72, lifetime);
    rts_put32(out + 76, RTS_CMD_CLIENT_KEEPALIVE);
    rts_put32(out + 80, 300000);
    rts_put32(out + 84, RTS_CMD_ASSOCIATION_GROUP_ID);
    memcpy(out + 88, assoc, 16);
}

void
bench_rts_ping(uint8_t out[BENCH_RTS_PING_LEN])
{
    bench_rts_header(out, BENCH_RTS_PING_LEN, 0x0001, 0);
}
