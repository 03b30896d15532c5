/*
 * libFuzzer target for proxy/proxyproto.c. Properties checked on every input:
 *   - OK consumes at least one byte and no more than the input (v1 at most 107, v2 at most
 *     PROXYPROTO_V2_MAX); every TLV view lies inside the consumed bytes;
 *   - determinism: the same input gives the same status, length and header;
 *   - the header alone parses the same as the header followed by anything, and the bytes up
 *     to it (sampled prefixes) are INCOMPLETE: the accept path may take an INCOMPLETE input
 *     as all header;
 *   - once a prefix is ERROR, the whole input is ERROR (sampled prefixes);
 *   - an ERROR sets a reason;
 *   - v1 round trip: a TCP4/TCP6 header written back in canonical form parses to the same
 *     addresses and ports, and so does the same address written as a v2 header.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proxy/proxyproto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
check(int cond)
{
    if (!cond)
        abort();
}

static bool
view_inside(const struct proxyproto_view *v, const uint8_t *base, size_t len)
{
    if (v->ptr == NULL)
        return v->len == 0;
    return v->ptr >= base && (size_t)(v->ptr - base) <= len && v->len <= len - (size_t)(v->ptr - base);
}

static bool
same_addr(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
    if (a->ss_family != b->ss_family)
        return false;
    if (a->ss_family == AF_INET) {
        const struct sockaddr_in *x = (const void *)a, *y = (const void *)b;
        return x->sin_port == y->sin_port && x->sin_addr.s_addr == y->sin_addr.s_addr;
    }
    const struct sockaddr_in6 *x = (const void *)a, *y = (const void *)b;
    return x->sin6_port == y->sin6_port && memcmp(&x->sin6_addr, &y->sin6_addr, 16) == 0;
}

static void
addr_port(const struct sockaddr_storage *ss, char *ip, size_t iplen, unsigned *port)
{
    if (ss->ss_family == AF_INET) {
        const struct sockaddr_in *in = (const void *)ss;
        inet_ntop(AF_INET, &in->sin_addr, ip, (socklen_t)iplen);
        *port = ntohs(in->sin_port);
    } else {
        const struct sockaddr_in6 *in6 = (const void *)ss;
        inet_ntop(AF_INET6, &in6->sin6_addr, ip, (socklen_t)iplen);
        *port = ntohs(in6->sin6_port);
    }
}

static void
round_trip(const struct proxyproto_header *h)
{
    char s[INET6_ADDRSTRLEN], d[INET6_ADDRSTRLEN], line[160];
    unsigned sp = 0, dp = 0;
    struct proxyproto_header h2;
    size_t c2 = 0;
    const char *why = NULL;
    bool v6 = h->src.ss_family == AF_INET6;

    addr_port(&h->src, s, sizeof(s), &sp);
    addr_port(&h->dst, d, sizeof(d), &dp);
    int n = snprintf(line, sizeof(line), "PROXY %s %s %s %u %u\r\n", v6 ? "TCP6" : "TCP4", s, d,
                     sp, dp);
    check(n > 0 && (size_t)n < sizeof(line) && n <= PROXYPROTO_V1_MAX);
    check(proxyproto_parse((const uint8_t *)line, (size_t)n, &h2, &c2, &why) == PROXYPROTO_OK);
    check(c2 == (size_t)n && h2.version == 1 && !h2.local);
    check(same_addr(&h->src, &h2.src) && same_addr(&h->dst, &h2.dst));

    /* the same addresses as v2 */
    uint8_t b[16 + 36] = {0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a,
                          0x21};
    size_t alen = v6 ? 36 : 12, al = v6 ? 16 : 4;
    b[13] = v6 ? 0x21 : 0x11;
    b[15] = (uint8_t)alen;
    if (v6) {
        memcpy(b + 16, &((const struct sockaddr_in6 *)&h->src)->sin6_addr, 16);
        memcpy(b + 32, &((const struct sockaddr_in6 *)&h->dst)->sin6_addr, 16);
    } else {
        memcpy(b + 16, &((const struct sockaddr_in *)&h->src)->sin_addr, 4);
        memcpy(b + 20, &((const struct sockaddr_in *)&h->dst)->sin_addr, 4);
    }
    uint8_t *ports = b + 16 + 2 * al;
    ports[0] = (uint8_t)(sp >> 8);
    ports[1] = (uint8_t)sp;
    ports[2] = (uint8_t)(dp >> 8);
    ports[3] = (uint8_t)dp;
    check(proxyproto_parse(b, 16 + alen, &h2, &c2, &why) == PROXYPROTO_OK);
    check(c2 == 16 + alen && h2.version == 2 && !h2.local);
    check(same_addr(&h->src, &h2.src) && same_addr(&h->dst, &h2.dst));
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct proxyproto_header h, h2;
    size_t c = 0, c2 = 0;
    const char *why = NULL, *why2 = NULL;

    memset(&h, 0, sizeof(h));
    memset(&h2, 0, sizeof(h2));
    int st = proxyproto_parse(data, size, &h, &c, &why);
    int st2 = proxyproto_parse(data, size, &h2, &c2, &why2);
    check(st == st2);
    check(st == PROXYPROTO_OK || st == PROXYPROTO_INCOMPLETE || st == PROXYPROTO_ERROR);
    if (st == PROXYPROTO_ERROR)
        check(why != NULL && why == why2);

    /* sampled prefixes: ERROR is final; below an OK header's end, INCOMPLETE */
    size_t top = st == PROXYPROTO_OK ? c : size;
    size_t samples[] = {0, 1, 5, 6, 12, 13, 14, 15, 16, top / 2, top > 0 ? top - 1 : 0};
    for (size_t i = 0; i < sizeof(samples) / sizeof(samples[0]); i++) {
        size_t k = samples[i];
        struct proxyproto_header hp;
        size_t cp = 0;
        const char *wp = NULL;
        if (k >= top)
            continue;
        int sp = proxyproto_parse(data, k, &hp, &cp, &wp);
        if (st == PROXYPROTO_OK)
            check(sp == PROXYPROTO_INCOMPLETE);
        if (sp == PROXYPROTO_ERROR)
            check(st == PROXYPROTO_ERROR);
        check(sp != PROXYPROTO_OK);
    }
    if (st != PROXYPROTO_OK)
        return 0;

    check(c > 0 && c <= size);
    check(h.version == 1 || h.version == 2);
    check(h.version == 2 || c <= PROXYPROTO_V1_MAX);
    check(c <= PROXYPROTO_V2_MAX);
    check(c2 == c && h2.version == h.version && h2.local == h.local && h2.ntlvs == h.ntlvs);
    const struct proxyproto_view *views[] = {&h.alpn,        &h.authority,  &h.unique_id,
                                             &h.netns,       &h.ssl_version, &h.ssl_cn,
                                             &h.ssl_cipher,  &h.ssl_sig_alg, &h.ssl_key_alg};
    for (size_t i = 0; i < sizeof(views) / sizeof(views[0]); i++)
        check(view_inside(views[i], data, c));
    if (h.version == 1)
        check(h.ntlvs == 0 && !h.ssl && !h.crc_checked);

    /* exactly the header parses the same way */
    check(proxyproto_parse(data, c, &h2, &c2, &why2) == PROXYPROTO_OK && c2 == c);
    check(h2.local == h.local);

    if (!h.local) {
        check(h.src.ss_family == AF_INET || h.src.ss_family == AF_INET6);
        check(h.dst.ss_family == h.src.ss_family);
        check(same_addr(&h.src, &h2.src));
        round_trip(&h);
    }
    return 0;
}
