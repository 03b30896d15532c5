/*
 * The RTS PDUs a client sends to open RPC over HTTP v2 channels (MS-RPCH 2.2.4): shared by
 * exshim-bench and exshim-probe. Pure builders over caller buffers, little endian.
 *
 *   CONN/A1 (RPC_OUT_DATA, 76 bytes): Version 1, VirtualConnectionCookie,
 *     OutChannelCookie, ReceiveWindowSize 64 KiB
 *   CONN/B1 (RPC_IN_DATA, 104 bytes): Version 1, VirtualConnectionCookie, InChannelCookie,
 *     ChannelLifetime, ClientKeepalive 300 s, AssociationGroupId
 *   Ping (20 bytes): flags PING, no commands
 */
#ifndef BENCH_LOAD_BENCH_RTS_H
#define BENCH_LOAD_BENCH_RTS_H

#include <stdint.h>

#define BENCH_RTS_PTYPE 0x14
#define BENCH_RTS_CONN_A1_LEN 76
#define BENCH_RTS_CONN_B1_LEN 104
#define BENCH_RTS_PING_LEN 20

/* The 20-byte RTS header: common DCE/RPC header, then flags and command count. */
void bench_rts_header(uint8_t *p, uint16_t len, uint16_t flags, uint16_t ncmds);
void bench_rts_conn_a1(uint8_t out[BENCH_RTS_CONN_A1_LEN], const uint8_t vc[16],
                       const uint8_t chan[16]);
void bench_rts_conn_b1(uint8_t out[BENCH_RTS_CONN_B1_LEN], const uint8_t vc[16],
                       const uint8_t chan[16], const uint8_t assoc[16], uint32_t lifetime);
void bench_rts_ping(uint8_t out[BENCH_RTS_PING_LEN]);

#endif
