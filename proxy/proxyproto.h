/*
 * PROXY protocol header parser, versions 1 (text) and 2 (binary), as sent by L4 balancers in
 * front of the real client's bytes (haproxy's proxy-protocol.txt). Pure code over (ptr, len):
 * no libevent, no logging, no allocation; it reads nothing past len.
 *
 * The parser is stateless: call it again on the whole input each time more bytes arrive.
 * INCOMPLETE is returned only while the input is a prefix of some header it would accept, so
 * a client that sends anything else (an HTTP request, a TLS ClientHello) is an ERROR from its
 * first byte, and every byte of an INCOMPLETE input belongs to the header.
 */
#ifndef PROXY_PROXYPROTO_H
#define PROXY_PROXYPROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "conf/conf.h"

/* v1: "PROXY ... \r\n" is at most 107 bytes. v2: 16 fixed bytes plus a length we bound so a
 * per-connection buffer of this size always holds a header we accept. */
#define PROXYPROTO_V1_MAX 107
#define PROXYPROTO_V2_MAX 2048
#define PROXYPROTO_MAX PROXYPROTO_V2_MAX

enum proxyproto_status {
    PROXYPROTO_OK = 0,
    PROXYPROTO_INCOMPLETE = -1, /* a valid prefix: wait for more bytes */
    PROXYPROTO_ERROR = -2,      /* not a header we accept; *why_out says why */
};

/* v2 TLV types (proxy-protocol.txt section 2.2). */
#define PROXYPROTO_TLV_ALPN 0x01
#define PROXYPROTO_TLV_AUTHORITY 0x02
#define PROXYPROTO_TLV_CRC32C 0x03
#define PROXYPROTO_TLV_NOOP 0x04
#define PROXYPROTO_TLV_UNIQUE_ID 0x05
#define PROXYPROTO_TLV_SSL 0x20
#define PROXYPROTO_SUBTLV_SSL_VERSION 0x21
#define PROXYPROTO_SUBTLV_SSL_CN 0x22
#define PROXYPROTO_SUBTLV_SSL_CIPHER 0x23
#define PROXYPROTO_SUBTLV_SSL_SIG_ALG 0x24
#define PROXYPROTO_SUBTLV_SSL_KEY_ALG 0x25
#define PROXYPROTO_TLV_NETNS 0x30

/* Bits of the SSL TLV's client field. */
#define PROXYPROTO_CLIENT_SSL 0x01
#define PROXYPROTO_CLIENT_CERT_CONN 0x02
#define PROXYPROTO_CLIENT_CERT_SESS 0x04

/* A TLV value: a view into the parsed input (len 0 and ptr NULL when absent). */
struct proxyproto_view {
    const uint8_t *ptr;
    size_t len;
};

struct proxyproto_header {
    int version; /* 1 or 2 */
    /* No address to use: v1 UNKNOWN, v2 LOCAL (the balancer's own health check) or v2 PROXY
     * with family UNSPEC. The caller keeps the socket's peer address. */
    bool local;
    /* Unless local: the original client (src) and the address it connected to (dst), with
     * ports, as AF_INET or AF_INET6 socket addresses. */
    struct sockaddr_storage src, dst;
    socklen_t srclen, dstlen;
    /* v2 TLVs we know (views into the input; valid while the input is). */
    struct proxyproto_view alpn, authority, unique_id, netns;
    bool crc_checked; /* a CRC32C TLV was present and matched */
    bool ssl;         /* an SSL TLV was present */
    uint8_t ssl_client;
    uint32_t ssl_verify; /* 0: client certificate verified */
    struct proxyproto_view ssl_version, ssl_cn, ssl_cipher, ssl_sig_alg, ssl_key_alg;
    size_t ntlvs; /* top-level TLVs walked, known or not (NOOP included) */
};

/*
 * Parses a PROXY header at the start of buf[0..len). Borrows buf; hdr_out's views point into
 * it. Returns PROXYPROTO_OK and sets *consumed_out (the header's length, <= len; the bytes
 * after it are the client's stream) and *hdr_out; PROXYPROTO_INCOMPLETE when buf is a valid
 * proper prefix of a header; PROXYPROTO_ERROR with *why_out (a static string) otherwise.
 * Outputs other than *why_out are written only on OK.
 */
enum proxyproto_status proxyproto_parse(const uint8_t *buf, size_t len,
                                        struct proxyproto_header *hdr_out, size_t *consumed_out,
                                        const char **why_out);

/*
 * CRC32C (Castagnoli, reflected, as the v2 CRC32C TLV uses) of buf[0..len), continuing from
 * crc (start with 0). Borrows buf.
 */
uint32_t proxyproto_crc32c(uint32_t crc, const uint8_t *buf, size_t len);

/*
 * True when sa (AF_INET or AF_INET6; an IPv4-mapped IPv6 address counts as IPv4) lies in one
 * of the n ranges. Borrows both.
 */
bool proxyproto_addr_allowed(const struct sockaddr *sa, const struct conf_cidr *ranges, size_t n);

#endif
