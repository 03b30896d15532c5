/* PROXY protocol v1/v2 header parser. See proxyproto.h. */
#include "proxy/proxyproto.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>

/*
 * v2 wire format (all integers big-endian):
 *
 *   0  12  signature \r\n\r\n\0\r\nQUIT\n
 *  12   1  version (high nibble, 2) | command (low nibble: 0 LOCAL, 1 PROXY)
 *  13   1  family (high: 0 UNSPEC, 1 INET, 2 INET6, 3 UNIX) | transport (low: 1 STREAM, 2 DGRAM)
 *  14   2  length of what follows
 *  16      addresses: INET src4 dst4 sport dport (12), INET6 src16 dst16 sport dport (36)
 *          then TLVs to the end: type (1), length (2), value
 */
static const uint8_t v2_sig[12] = {0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d,
                                   0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a};
#define V2_FIXED 16
#define V2_INET_LEN 12
#define V2_INET6_LEN 36
#define V2_UNIQUE_ID_MAX 128
#define SSL_TLV_FIXED 5 /* client (1) + verify (4) */

static const char v1_sig[] = "PROXY ";
#define V1_SIG_LEN 6

uint32_t
proxyproto_crc32c(uint32_t crc, const uint8_t *buf, size_t len)
{
    crc = ~crc;
    for (size_t i = 0; i < len; i++) {
        crc ^= buf[i];
        for (int k = 0; k < 8; k++)
            crc = (crc >> 1) ^ (0x82f63b78u & (0u - (crc & 1u)));
    }
    return ~crc;
}

static uint16_t
be16(const uint8_t *p)
{
    return (uint16_t)((p[0] << 8) | p[1]);
}

static uint32_t
be32(const uint8_t *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

/* ---- v1 ----------------------------------------------------------------------------- */

/* Which bytes may appear in a field. */
enum v1_class { V1_WORD, V1_IPV4, V1_IPV6, V1_PORT };

static bool
v1_char_ok(enum v1_class cl, uint8_t c)
{
    switch (cl) {
    case V1_WORD:
        return (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
    case V1_IPV4:
        return (c >= '0' && c <= '9') || c == '.';
    case V1_IPV6:
        return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F') ||
               c == ':' || c == '.';
    case V1_PORT:
        return c >= '0' && c <= '9';
    }
    return false;
}

/*
 * Scans one field of class cl starting at *pos, at most max bytes, ended by a space or '\r'.
 * On OK the field is b[start, *pos) and b[*pos] is its terminator.
 */
static enum proxyproto_status
v1_field(const uint8_t *b, size_t n, size_t *pos, enum v1_class cl, size_t max, size_t *start_out,
         const char **why_out)
{
    size_t p = *pos;
    while (p < n && b[p] != ' ' && b[p] != '\r') {
        if (!v1_char_ok(cl, b[p])) {
            *why_out = "v1: unexpected character";
            return PROXYPROTO_ERROR;
        }
        if (p - *pos >= max) {
            *why_out = "v1: field too long";
            return PROXYPROTO_ERROR;
        }
        p++;
    }
    if (p == n)
        return PROXYPROTO_INCOMPLETE;
    if (p == *pos) {
        *why_out = "v1: empty field";
        return PROXYPROTO_ERROR;
    }
    *start_out = *pos;
    *pos = p;
    return PROXYPROTO_OK;
}

static bool
v1_word_is_prefix(const uint8_t *b, size_t len)
{
    static const char *const words[] = {"TCP4", "TCP6", "UNKNOWN"};
    for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++)
        if (len <= strlen(words[i]) && memcmp(b, words[i], len) == 0)
            return true;
    return false;
}

static bool
v1_port(const uint8_t *b, size_t len, uint16_t *out)
{
    unsigned v = 0;
    if (len > 5 || (len > 1 && b[0] == '0'))
        return false;
    for (size_t i = 0; i < len; i++)
        v = v * 10 + (unsigned)(b[i] - '0');
    if (v > 65535)
        return false;
    *out = (uint16_t)v;
    return true;
}

static bool
v1_addr(const uint8_t *b, size_t len, bool v6, struct sockaddr_storage *ss, socklen_t *sslen)
{
    char text[INET6_ADDRSTRLEN];
    if (len >= sizeof(text))
        return false;
    memcpy(text, b, len);
    text[len] = '\0';
    memset(ss, 0, sizeof(*ss));
    if (v6) {
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;
        in6->sin6_family = AF_INET6;
        *sslen = sizeof(*in6);
        return inet_pton(AF_INET6, text, &in6->sin6_addr) == 1;
    }
    struct sockaddr_in *in = (struct sockaddr_in *)ss;
    in->sin_family = AF_INET;
    *sslen = sizeof(*in);
    return inet_pton(AF_INET, text, &in->sin_addr) == 1;
}

static void
set_port(struct sockaddr_storage *ss, uint16_t port)
{
    if (ss->ss_family == AF_INET6)
        ((struct sockaddr_in6 *)ss)->sin6_port = htons(port);
    else
        ((struct sockaddr_in *)ss)->sin_port = htons(port);
}

/* Expects "\r\n" at *pos. */
static enum proxyproto_status
v1_crlf(const uint8_t *b, size_t n, size_t pos, const char **why_out)
{
    if (pos >= n)
        return PROXYPROTO_INCOMPLETE;
    if (b[pos] != '\r') {
        *why_out = "v1: expected CRLF";
        return PROXYPROTO_ERROR;
    }
    if (pos + 1 >= n)
        return PROXYPROTO_INCOMPLETE;
    if (b[pos + 1] != '\n') {
        *why_out = "v1: CR not followed by LF";
        return PROXYPROTO_ERROR;
    }
    return PROXYPROTO_OK;
}

/*
 * "PROXY" SP ("TCP4" | "TCP6") SP src SP dst SP sport SP dport CRLF, or "PROXY UNKNOWN" then
 * anything printable up to CRLF; 107 bytes at most, CRLF included. Every check runs as soon
 * as the bytes it needs are there, so an ERROR on a prefix stays an ERROR on any extension.
 */
static enum proxyproto_status
parse_v1(const uint8_t *buf, size_t len, struct proxyproto_header *h, size_t *end_out,
         const char **why_out)
{
    size_t n = len < PROXYPROTO_V1_MAX ? len : PROXYPROTO_V1_MAX;
    size_t pos = V1_SIG_LEN, start = 0;
    enum proxyproto_status st;

    /* The caller checked the signature against what there is. */
    if (n < V1_SIG_LEN)
        goto incomplete;
    memset(h, 0, sizeof(*h));
    h->version = 1;

    /* The protocol word, checked against the three names while it is still arriving. */
    {
        size_t p = pos;
        while (p < n && v1_char_ok(V1_WORD, buf[p]))
            p++;
        if (!v1_word_is_prefix(buf + pos, p - pos)) {
            *why_out = "v1: unknown protocol (TCP4, TCP6 or UNKNOWN)";
            return PROXYPROTO_ERROR;
        }
        if (p == n)
            goto incomplete;
        size_t wlen = p - pos;
        bool unknown = wlen == 7;
        if (wlen != 4 && !unknown) {
            *why_out = "v1: unknown protocol (TCP4, TCP6 or UNKNOWN)";
            return PROXYPROTO_ERROR;
        }
        bool v6 = !unknown && buf[pos + 3] == '6';
        pos = p;
        if (unknown) {
            /* The receiver ignores the rest of the line; it must still be one line. */
            while (pos < n && buf[pos] != '\r') {
                if (buf[pos] < 0x20 || buf[pos] > 0x7e) {
                    *why_out = "v1: control character after UNKNOWN";
                    return PROXYPROTO_ERROR;
                }
                if (pos == p && buf[pos] != ' ') {
                    *why_out = "v1: expected a space after UNKNOWN";
                    return PROXYPROTO_ERROR;
                }
                pos++;
            }
            if ((st = v1_crlf(buf, n, pos, why_out)) != PROXYPROTO_OK)
                goto status;
            h->local = true;
            *end_out = pos + 2;
            return PROXYPROTO_OK;
        }
        if (buf[pos] != ' ') {
            *why_out = "v1: expected a space after the protocol";
            return PROXYPROTO_ERROR;
        }
        pos++;

        enum v1_class acl = v6 ? V1_IPV6 : V1_IPV4;
        size_t amax = v6 ? INET6_ADDRSTRLEN - 1 : INET_ADDRSTRLEN - 1;
        uint16_t sport = 0, dport = 0;
        /* source address */
        if ((st = v1_field(buf, n, &pos, acl, amax, &start, why_out)) != PROXYPROTO_OK)
            goto status;
        if (!v1_addr(buf + start, pos - start, v6, &h->src, &h->srclen)) {
            *why_out = "v1: bad source address";
            return PROXYPROTO_ERROR;
        }
        if (buf[pos++] != ' ')
            goto need_space;
        /* destination address */
        if ((st = v1_field(buf, n, &pos, acl, amax, &start, why_out)) != PROXYPROTO_OK)
            goto status;
        if (!v1_addr(buf + start, pos - start, v6, &h->dst, &h->dstlen)) {
            *why_out = "v1: bad destination address";
            return PROXYPROTO_ERROR;
        }
        if (buf[pos++] != ' ')
            goto need_space;
        /* source port */
        if ((st = v1_field(buf, n, &pos, V1_PORT, 5, &start, why_out)) != PROXYPROTO_OK)
            goto status;
        if (!v1_port(buf + start, pos - start, &sport)) {
            *why_out = "v1: bad source port";
            return PROXYPROTO_ERROR;
        }
        if (buf[pos++] != ' ')
            goto need_space;
        /* destination port, then CRLF */
        if ((st = v1_field(buf, n, &pos, V1_PORT, 5, &start, why_out)) != PROXYPROTO_OK)
            goto status;
        if (!v1_port(buf + start, pos - start, &dport)) {
            *why_out = "v1: bad destination port";
            return PROXYPROTO_ERROR;
        }
        if ((st = v1_crlf(buf, n, pos, why_out)) != PROXYPROTO_OK)
            goto status;
        set_port(&h->src, sport);
        set_port(&h->dst, dport);
        *end_out = pos + 2;
        return PROXYPROTO_OK;
    }

need_space:
    *why_out = "v1: expected a space between fields";
    return PROXYPROTO_ERROR;
status:
    if (st == PROXYPROTO_ERROR)
        return st;
incomplete:
    if (len >= PROXYPROTO_V1_MAX) {
        *why_out = "v1: no CRLF within 107 bytes";
        return PROXYPROTO_ERROR;
    }
    return PROXYPROTO_INCOMPLETE;
}

/* ---- v2 ----------------------------------------------------------------------------- */

/* Stores a TLV value once; a second copy of a TLV we interpret is refused. */
static bool
take_view(struct proxyproto_view *v, const uint8_t *p, size_t len)
{
    if (v->ptr != NULL)
        return false;
    v->ptr = p;
    v->len = len;
    return true;
}

/* The SSL TLV's value: client, verify, then sub-TLVs, all within value[0..len). */
static const char *
parse_ssl(const uint8_t *v, size_t len, struct proxyproto_header *h)
{
    if (h->ssl)
        return "v2: duplicate SSL TLV";
    if (len < SSL_TLV_FIXED)
        return "v2: SSL TLV too short";
    h->ssl = true;
    h->ssl_client = v[0];
    h->ssl_verify = be32(v + 1);
    size_t off = SSL_TLV_FIXED;
    while (off < len) {
        if (len - off < 3)
            return "v2: truncated SSL sub-TLV";
        uint8_t type = v[off];
        size_t vlen = be16(v + off + 1);
        if (vlen > len - off - 3)
            return "v2: SSL sub-TLV runs past its TLV";
        const uint8_t *val = v + off + 3;
        struct proxyproto_view *dst = NULL;
        switch (type) {
        case PROXYPROTO_SUBTLV_SSL_VERSION:
            dst = &h->ssl_version;
            break;
        case PROXYPROTO_SUBTLV_SSL_CN:
            dst = &h->ssl_cn;
            break;
        case PROXYPROTO_SUBTLV_SSL_CIPHER:
            dst = &h->ssl_cipher;
            break;
        case PROXYPROTO_SUBTLV_SSL_SIG_ALG:
            dst = &h->ssl_sig_alg;
            break;
        case PROXYPROTO_SUBTLV_SSL_KEY_ALG:
            dst = &h->ssl_key_alg;
            break;
        default:
            break; /* unknown sub-TLVs are skipped */
        }
        if (dst != NULL && !take_view(dst, val, vlen))
            return "v2: duplicate SSL sub-TLV";
        off += 3 + vlen;
    }
    return NULL;
}

/* TLVs in buf[off, end); buf[0, end) is the whole header (for the CRC). */
static const char *
parse_tlvs(const uint8_t *buf, size_t off, size_t end, struct proxyproto_header *h)
{
    bool have_crc = false;
    while (off < end) {
        if (end - off < 3)
            return "v2: truncated TLV";
        uint8_t type = buf[off];
        size_t vlen = be16(buf + off + 1);
        if (vlen > end - off - 3)
            return "v2: TLV runs past the header";
        const uint8_t *val = buf + off + 3;
        const char *why = NULL;
        h->ntlvs++;
        switch (type) {
        case PROXYPROTO_TLV_ALPN:
            if (!take_view(&h->alpn, val, vlen))
                why = "v2: duplicate ALPN TLV";
            break;
        case PROXYPROTO_TLV_AUTHORITY:
            if (!take_view(&h->authority, val, vlen))
                why = "v2: duplicate authority TLV";
            break;
        case PROXYPROTO_TLV_CRC32C: {
            if (vlen != 4)
                return "v2: CRC32C TLV is not 4 bytes";
            if (have_crc)
                return "v2: duplicate CRC32C TLV";
            have_crc = true;
            /* The checksum covers the whole header with its own four bytes taken as zero. */
            static const uint8_t zero[4] = {0, 0, 0, 0};
            size_t at = (size_t)(val - buf);
            uint32_t crc = proxyproto_crc32c(0, buf, at);
            crc = proxyproto_crc32c(crc, zero, sizeof(zero));
            crc = proxyproto_crc32c(crc, val + 4, end - at - 4);
            if (crc != be32(val))
                return "v2: CRC32C mismatch";
            h->crc_checked = true;
            break;
        }
        case PROXYPROTO_TLV_UNIQUE_ID:
            if (vlen > V2_UNIQUE_ID_MAX)
                why = "v2: unique ID longer than 128 bytes";
            else if (!take_view(&h->unique_id, val, vlen))
                why = "v2: duplicate unique ID TLV";
            break;
        case PROXYPROTO_TLV_SSL:
            why = parse_ssl(val, vlen, h);
            break;
        case PROXYPROTO_TLV_NETNS:
            if (!take_view(&h->netns, val, vlen))
                why = "v2: duplicate netns TLV";
            break;
        default:
            break; /* NOOP, custom and unknown types are skipped */
        }
        if (why != NULL)
            return why;
        off += 3 + vlen;
    }
    return NULL;
}

static enum proxyproto_status
parse_v2(const uint8_t *buf, size_t len, struct proxyproto_header *h, size_t *end_out,
         const char **why_out)
{
    /* Each fixed byte is checked as soon as it is there. */
    if (len <= 12)
        return PROXYPROTO_INCOMPLETE;
    uint8_t ver = buf[12] >> 4, cmd = buf[12] & 0x0f;
    if (ver != 2) {
        *why_out = "v2: version is not 2";
        return PROXYPROTO_ERROR;
    }
    if (cmd > 1) {
        *why_out = "v2: command is neither LOCAL nor PROXY";
        return PROXYPROTO_ERROR;
    }
    bool local = cmd == 0;
    if (len <= 13)
        return PROXYPROTO_INCOMPLETE;
    uint8_t fam = buf[13] >> 4, tr = buf[13] & 0x0f;
    size_t need = 0; /* address bytes the family requires */
    if (!local) {
        /* LOCAL ignores the family; PROXY must carry a TCP address or none. */
        if (fam == 1 && tr == 1) {
            need = V2_INET_LEN;
        } else if (fam == 2 && tr == 1) {
            need = V2_INET6_LEN;
        } else if (fam == 0 && tr == 0) {
            need = 0;
        } else if (fam == 3) {
            *why_out = "v2: UNIX addresses are not accepted";
            return PROXYPROTO_ERROR;
        } else {
            *why_out = "v2: family/transport is not TCP over IPv4 or IPv6";
            return PROXYPROTO_ERROR;
        }
    }
    if (len < V2_FIXED)
        return PROXYPROTO_INCOMPLETE;
    size_t total = V2_FIXED + be16(buf + 14);
    if (total > PROXYPROTO_V2_MAX) {
        *why_out = "v2: header longer than 2048 bytes";
        return PROXYPROTO_ERROR;
    }
    if (total - V2_FIXED < need) {
        *why_out = "v2: length too short for the addresses";
        return PROXYPROTO_ERROR;
    }
    if (len < total)
        return PROXYPROTO_INCOMPLETE;

    memset(h, 0, sizeof(*h));
    h->version = 2;
    *end_out = total;
    if (local || need == 0) {
        /* LOCAL: the balancer talking for itself; its protocol block is discarded unread. */
        h->local = true;
        if (local)
            return PROXYPROTO_OK;
    } else if (need == V2_INET_LEN) {
        struct sockaddr_in *s = (struct sockaddr_in *)&h->src, *d = (struct sockaddr_in *)&h->dst;
        s->sin_family = d->sin_family = AF_INET;
        memcpy(&s->sin_addr, buf + 16, 4);
        memcpy(&d->sin_addr, buf + 20, 4);
        memcpy(&s->sin_port, buf + 24, 2);
        memcpy(&d->sin_port, buf + 26, 2);
        h->srclen = h->dstlen = sizeof(struct sockaddr_in);
    } else {
        struct sockaddr_in6 *s = (struct sockaddr_in6 *)&h->src;
        struct sockaddr_in6 *d = (struct sockaddr_in6 *)&h->dst;
        s->sin6_family = d->sin6_family = AF_INET6;
        memcpy(&s->sin6_addr, buf + 16, 16);
        memcpy(&d->sin6_addr, buf + 32, 16);
        memcpy(&s->sin6_port, buf + 48, 2);
        memcpy(&d->sin6_port, buf + 50, 2);
        h->srclen = h->dstlen = sizeof(struct sockaddr_in6);
    }
    const char *why = parse_tlvs(buf, V2_FIXED + need, total, h);
    if (why != NULL) {
        *why_out = why;
        return PROXYPROTO_ERROR;
    }
    return PROXYPROTO_OK;
}

/* ---- entry points ------------------------------------------------------------------- */

enum proxyproto_status
proxyproto_parse(const uint8_t *buf, size_t len, struct proxyproto_header *hdr_out,
                 size_t *consumed_out, const char **why_out)
{
    struct proxyproto_header h;
    size_t end = 0;
    enum proxyproto_status st;

    if (len == 0)
        return PROXYPROTO_INCOMPLETE;
    /* The first byte decides the version; the signature is compared on what has arrived. */
    if (buf[0] == v1_sig[0]) {
        size_t k = len < V1_SIG_LEN ? len : V1_SIG_LEN;
        if (memcmp(buf, v1_sig, k) != 0) {
            *why_out = "not a PROXY header";
            return PROXYPROTO_ERROR;
        }
        st = parse_v1(buf, len, &h, &end, why_out);
    } else if (buf[0] == v2_sig[0]) {
        size_t k = len < sizeof(v2_sig) ? len : sizeof(v2_sig);
        if (memcmp(buf, v2_sig, k) != 0) {
            *why_out = "not a PROXY header";
            return PROXYPROTO_ERROR;
        }
        st = parse_v2(buf, len, &h, &end, why_out);
    } else {
        *why_out = "not a PROXY header";
        return PROXYPROTO_ERROR;
    }
    if (st != PROXYPROTO_OK)
        return st;
    *hdr_out = h;
    *consumed_out = end;
    return PROXYPROTO_OK;
}

bool
proxyproto_addr_allowed(const struct sockaddr *sa, const struct conf_cidr *ranges, size_t n)
{
    uint8_t a[16];
    bool v6;
    if (sa->sa_family == AF_INET) {
        memcpy(a, &((const struct sockaddr_in *)sa)->sin_addr, 4);
        v6 = false;
    } else if (sa->sa_family == AF_INET6) {
        const struct in6_addr *in6 = &((const struct sockaddr_in6 *)sa)->sin6_addr;
        if (IN6_IS_ADDR_V4MAPPED(in6)) {
            memcpy(a, in6->s6_addr + 12, 4);
            v6 = false;
        } else {
            memcpy(a, in6->s6_addr, 16);
            v6 = true;
        }
    } else {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        const struct conf_cidr *r = &ranges[i];
        if (r->v6 != v6)
            continue;
        unsigned bits = r->bits, whole = bits / 8, rest = bits % 8;
        if (memcmp(a, r->addr, whole) != 0)
            continue;
        if (rest != 0) {
            uint8_t mask = (uint8_t)(0xff << (8 - rest));
            if ((a[whole] & mask) != (r->addr[whole] & mask))
                continue;
        }
        return true;
    }
    return false;
}
