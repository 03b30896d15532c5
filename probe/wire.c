/*
 * exshim-probe: parsers of server input. See wire.h.
 */
#include "probe/wire.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <openssl/asn1.h>
#include <openssl/objects.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

/* ---- RTS ---------------------------------------------------------------------------------- */

static uint16_t
rd16(const uint8_t *p)
{
    return (uint16_t)(p[0] | (p[1] << 8));
}

static uint32_t
rd32(const uint8_t *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

/* RTS command types (MS-RPCH 2.2.3.5) */
enum {
    CMD_RECEIVE_WINDOW_SIZE = 0,
    CMD_FLOW_CONTROL_ACK = 1,
    CMD_CONNECTION_TIMEOUT = 2,
    CMD_COOKIE = 3,
    CMD_CHANNEL_LIFETIME = 4,
    CMD_CLIENT_KEEPALIVE = 5,
    CMD_VERSION = 6,
    CMD_EMPTY = 7,
    CMD_PADDING = 8,
    CMD_NEGATIVE_ANCE = 9,
    CMD_ANCE = 10,
    CMD_CLIENT_ADDRESS = 11,
    CMD_ASSOCIATION_GROUP_ID = 12,
    CMD_DESTINATION = 13,
    CMD_PING_TRAFFIC_SENT_NOTIFY = 14,
};

/* Size of the command body at p[0..left) (after its 4-byte type), or -1. */
static long
cmd_body_len(uint32_t type, const uint8_t *p, size_t left)
{
    switch (type) {
    case CMD_RECEIVE_WINDOW_SIZE:
    case CMD_CONNECTION_TIMEOUT:
    case CMD_CHANNEL_LIFETIME:
    case CMD_CLIENT_KEEPALIVE:
    case CMD_VERSION:
    case CMD_DESTINATION:
    case CMD_PING_TRAFFIC_SENT_NOTIFY:
        return 4;
    case CMD_FLOW_CONTROL_ACK:
        return 24;
    case CMD_COOKIE:
    case CMD_ASSOCIATION_GROUP_ID:
        return 16;
    case CMD_EMPTY:
    case CMD_NEGATIVE_ANCE:
    case CMD_ANCE:
        return 0;
    case CMD_PADDING:
        if (left < 4)
            return -1;
        return rd32(p) > PWIRE_PDU_MAX ? -1 : 4 + (long)rd32(p);
    case CMD_CLIENT_ADDRESS:
        if (left < 4)
            return -1;
        return rd32(p) == 0 ? 4 + 4 + 12 : rd32(p) == 1 ? 4 + 16 + 12 : -1;
    default:
        return -1;
    }
}

int
pwire_pdu_parse(const uint8_t *p, size_t len, struct pwire_pdu *out)
{
    struct pwire_pdu d;
    uint32_t types[PWIRE_RTS_MAX_CMDS], values[PWIRE_RTS_MAX_CMDS];
    if (len < 16)
        return PWIRE_INCOMPLETE;
    if (p[0] != 5 || p[1] != 0 || (p[4] & 0xf0) != 0x10)
        return PWIRE_ERROR;
    memset(&d, 0, sizeof(d));
    d.ptype = p[2];
    d.frag_len = rd16(p + 8);
    if (d.frag_len < 16 || (d.ptype == PWIRE_PTYPE_RTS && d.frag_len < 20))
        return PWIRE_ERROR;
    if (len < d.frag_len)
        return PWIRE_INCOMPLETE;
    if (d.ptype != PWIRE_PTYPE_RTS) {
        d.kind = PWIRE_PDU_NOT_RTS;
        *out = d;
        return d.frag_len;
    }
    d.rts_flags = rd16(p + 16);
    d.ncmds = rd16(p + 18);
    if (d.ncmds > PWIRE_RTS_MAX_CMDS)
        return PWIRE_ERROR;
    size_t off = 20;
    for (unsigned i = 0; i < d.ncmds; i++) {
        if (d.frag_len - off < 4)
            return PWIRE_ERROR;
        types[i] = rd32(p + off);
        off += 4;
        long bl = cmd_body_len(types[i], p + off, d.frag_len - off);
        if (bl < 0 || (size_t)bl > d.frag_len - off)
            return PWIRE_ERROR;
        values[i] = bl >= 4 ? rd32(p + off) : 0;
        off += (size_t)bl;
    }
    if (d.rts_flags & PWIRE_RTS_FLAG_PING)
        d.kind = PWIRE_RTS_PING;
    else if (d.rts_flags & PWIRE_RTS_FLAG_ECHO)
        d.kind = PWIRE_RTS_ECHO;
    else if (d.rts_flags == 0 && d.ncmds == 1 && types[0] == CMD_CONNECTION_TIMEOUT) {
        d.kind = PWIRE_RTS_CONN_A3;
        d.conn_timeout_ms = values[0];
    } else if (d.rts_flags == 0 && d.ncmds == 3 && types[0] == CMD_VERSION &&
               types[1] == CMD_RECEIVE_WINDOW_SIZE && types[2] == CMD_CONNECTION_TIMEOUT) {
        d.kind = PWIRE_RTS_CONN_C2;
        d.version = values[0];
        d.conn_timeout_ms = values[2];
    } else {
        d.kind = PWIRE_RTS_OTHER;
    }
    *out = d;
    return d.frag_len;
}

/* ---- chunked ------------------------------------------------------------------------------ */

static int
hexval(uint8_t ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F')
        return ch - 'A' + 10;
    return -1;
}

long
pwire_chunked_feed(struct pwire_chunked *c, const uint8_t *in, size_t len, uint8_t *out, size_t cap,
                   size_t *out_len)
{
    size_t i = 0, o = 0;
    while (i < len && c->st != PWIRE_CH_DONE && c->st != PWIRE_CH_BAD) {
        uint8_t ch = in[i];
        switch (c->st) {
        case PWIRE_CH_SIZE: {
            int h = hexval(ch);
            if (h >= 0) {
                if (c->size > 0x7fffffffULL / 16) {
                    c->st = PWIRE_CH_BAD;
                    break;
                }
                c->size = c->size * 16 + (uint64_t)h;
                c->digits++;
                i++;
            } else if (c->digits > 0 && (ch == ';' || ch == ' ' || ch == '\t')) {
                c->st = PWIRE_CH_EXT;
                i++;
            } else if (c->digits > 0 && ch == '\r') {
                c->st = PWIRE_CH_LF;
                i++;
            } else {
                c->st = PWIRE_CH_BAD;
            }
            break;
        }
        case PWIRE_CH_EXT:
            if (ch == '\r')
                c->st = PWIRE_CH_LF;
            else if (ch == '\n' || ch == 0)
                c->st = PWIRE_CH_BAD;
            i++;
            break;
        case PWIRE_CH_LF:
            if (ch != '\n') {
                c->st = PWIRE_CH_BAD;
                break;
            }
            i++;
            c->digits = 0;
            if (c->size == 0) {
                c->last = true;
                c->st = PWIRE_CH_TRAIL;
                c->trail_len = 0;
            } else {
                c->st = PWIRE_CH_DATA;
            }
            break;
        case PWIRE_CH_DATA: {
            size_t n = len - i;
            if (n > c->size)
                n = (size_t)c->size;
            if (n > cap - o)
                n = cap - o;
            if (n == 0)
                goto out; /* output full */
            memcpy(out + o, in + i, n);
            o += n;
            i += n;
            c->size -= n;
            if (c->size == 0)
                c->st = PWIRE_CH_DCR;
            break;
        }
        case PWIRE_CH_DCR:
            c->st = ch == '\r' ? PWIRE_CH_DLF : PWIRE_CH_BAD;
            i++;
            break;
        case PWIRE_CH_DLF:
            c->st = ch == '\n' ? PWIRE_CH_SIZE : PWIRE_CH_BAD;
            c->size = 0;
            i++;
            break;
        case PWIRE_CH_TRAIL:
            /* trailer lines until an empty one, each ended by CR LF */
            i++;
            if (c->trail_cr) {
                if (ch != '\n') {
                    c->st = PWIRE_CH_BAD;
                    break;
                }
                c->trail_cr = false;
                if (c->trail_len == 0) {
                    c->st = PWIRE_CH_DONE;
                    break;
                }
                c->trail_len = 0;
                if (++c->trail_lines > 64)
                    c->st = PWIRE_CH_BAD;
            } else if (ch == '\r') {
                c->trail_cr = true;
            } else if (ch == '\n' || ++c->trail_len > 8192) {
                c->st = PWIRE_CH_BAD;
            }
            break;
        default:
            break;
        }
    }
out:
    *out_len = o;
    if (c->st == PWIRE_CH_BAD)
        return PWIRE_ERROR;
    return (long)i;
}

/* ---- MAPI ---------------------------------------------------------------------------------- */

void
pwire_mapi_init(struct pwire_mapi *m)
{
    memset(m, 0, sizeof(*m));
    m->response_code = -1;
}

static void
mapi_line(struct pwire_mapi *m)
{
    size_t n = m->line_len;
    const char *l = m->line;
    if (n > 0 && l[n - 1] == '\r')
        n--;
    if (!m->done) {
        if (n == 10 && memcmp(l, "PROCESSING", 10) == 0)
            m->processing++;
        else if (n == 7 && memcmp(l, "PENDING", 7) == 0)
            m->pending++;
        else if (n == 4 && memcmp(l, "DONE", 4) == 0)
            m->done = true;
        else
            m->bad = true;
        return;
    }
    if (n == 0) {
        m->headers_end = true;
        return;
    }
    static const char rc[] = "X-ResponseCode:";
    if (n > sizeof(rc) - 1 && strncasecmp(l, rc, sizeof(rc) - 1) == 0) {
        long v = 0;
        size_t k = sizeof(rc) - 1;
        bool any = false;
        while (k < n && l[k] == ' ')
            k++;
        for (; k < n && l[k] >= '0' && l[k] <= '9' && v < 100000000; k++, any = true)
            v = v * 10 + (l[k] - '0');
        m->response_code = any ? (int)v : -1;
        if (!any)
            m->bad = true;
    }
}

void
pwire_mapi_feed(struct pwire_mapi *m, const uint8_t *p, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        if (m->headers_end) {
            m->body_bytes += len - i;
            return;
        }
        if (p[i] == '\n') {
            mapi_line(m);
            m->line_len = 0;
            continue;
        }
        if (m->line_len == sizeof(m->line)) {
            m->bad = true;
            continue; /* the rest of an overlong line is dropped */
        }
        m->line[m->line_len++] = (char)p[i];
    }
}

/* ---- offers -------------------------------------------------------------------------------- */

void
pwire_offers_add(struct pwire_offers *o, const char *v, size_t len)
{
    struct authtok_challenge ch[AUTHTOK_MAX_CHALLENGES];
    size_t n = 0;
    const char *why = NULL;
    if (authtok_parse_challenges(v, len, ch, AUTHTOK_MAX_CHALLENGES, &n, &why) != AUTHTOK_OK) {
        o->malformed = true;
        return;
    }
    for (size_t i = 0; i < n; i++) {
        if (o->n == PWIRE_MAX_OFFERS) {
            o->truncated = true;
            return;
        }
        o->scheme[o->n++] = ch[i].scheme;
    }
}

int
pwire_offers_find(const struct pwire_offers *o, enum authtok_scheme s)
{
    for (size_t i = 0; i < o->n; i++)
        if (o->scheme[i] == s)
            return (int)i;
    return -1;
}

void
pwire_offers_text(const struct pwire_offers *o, char *buf, size_t cap)
{
    size_t off = 0;
    if (cap == 0)
        return;
    buf[0] = '\0';
    if (o->n == 0) {
        snprintf(buf, cap, "none");
        return;
    }
    for (size_t i = 0; i < o->n && off < cap; i++) {
        int w = snprintf(buf + off, cap - off, "%s%s", i ? ", " : "",
                         authtok_scheme_name(o->scheme[i]));
        if (w < 0)
            break;
        off += (size_t)w;
    }
}

/* ---- certificates ------------------------------------------------------------------------ */

static void
name_cn(X509_NAME *n, char *out, size_t cap)
{
    out[0] = '\0';
    int idx = n ? X509_NAME_get_index_by_NID(n, NID_commonName, -1) : -1;
    if (idx < 0)
        return;
    ASN1_STRING *s = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(n, idx));
    if (s == NULL)
        return;
    const unsigned char *d = ASN1_STRING_get0_data(s);
    int l = ASN1_STRING_length(s);
    size_t k = 0;
    for (int i = 0; i < l && k + 1 < cap; i++)
        out[k++] = d[i] >= 0x20 && d[i] < 0x7f ? (char)d[i] : '?';
    out[k] = '\0';
}

int
pwire_cert_parse(const uint8_t *der, size_t len, struct pwire_cert *out)
{
    const unsigned char *p = der;
    X509 *x = len <= 1024 * 1024 ? d2i_X509(NULL, &p, (long)len) : NULL;
    GENERAL_NAMES *gens = NULL;
    int rc = -1;
    if (x == NULL)
        return -1;
    memset(out, 0, sizeof(*out));
    name_cn(X509_get_subject_name(x), out->subject_cn, sizeof(out->subject_cn));
    name_cn(X509_get_issuer_name(x), out->issuer_cn, sizeof(out->issuer_cn));
    out->self_issued = X509_NAME_cmp(X509_get_subject_name(x), X509_get_issuer_name(x)) == 0;
    gens = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
    for (int i = 0; gens && i < sk_GENERAL_NAME_num(gens) && out->nsan < PWIRE_CERT_MAX_SANS; i++) {
        const GENERAL_NAME *g = sk_GENERAL_NAME_value(gens, i);
        if (g->type != GEN_DNS)
            continue;
        const unsigned char *d = ASN1_STRING_get0_data(g->d.dNSName);
        int l = ASN1_STRING_length(g->d.dNSName);
        if (l <= 0 || (size_t)l >= PWIRE_NAME_MAX || memchr(d, 0, (size_t)l) != NULL)
            continue;
        /* printed later: anything but printable ASCII becomes '?' (as for the CN) */
        for (int k = 0; k < l; k++)
            out->san[out->nsan][k] = d[k] > 0x20 && d[k] < 0x7f ? (char)d[k] : '?';
        out->san[out->nsan++][l] = '\0';
    }
    const ASN1_TIME *na = X509_get0_notAfter(x), *nb = X509_get0_notBefore(x);
    out->expired = na == NULL || X509_cmp_current_time(na) < 0;
    out->not_yet_valid = nb == NULL || X509_cmp_current_time(nb) > 0;
    struct tm tm;
    if (na != NULL && ASN1_TIME_to_tm(na, &tm) == 1)
        strftime(out->not_after, sizeof(out->not_after), "%Y-%m-%d", &tm);
    rc = 0;
    GENERAL_NAMES_free(gens);
    X509_free(x);
    return rc;
}

static bool
name_match(const char *pattern, const char *host)
{
    if (strncmp(pattern, "*.", 2) == 0) {
        const char *dot = strchr(host, '.');
        return dot != NULL && dot != host && strcasecmp(pattern + 1, dot) == 0;
    }
    return strcasecmp(pattern, host) == 0;
}

bool
pwire_cert_matches(const struct pwire_cert *c, const char *host)
{
    if (c->nsan == 0)
        return c->subject_cn[0] != '\0' && name_match(c->subject_cn, host);
    for (size_t i = 0; i < c->nsan; i++)
        if (name_match(c->san[i], host))
            return true;
    return false;
}

bool
pwire_cert_msstd(const struct pwire_cert *c, const char *name)
{
    if (strncasecmp(name, "msstd:", 6) == 0)
        name += 6;
    if (*name == '\0')
        return false;
    if (c->subject_cn[0] != '\0' && strcasecmp(c->subject_cn, name) == 0)
        return true;
    for (size_t i = 0; i < c->nsan; i++)
        if (strcasecmp(c->san[i], name) == 0)
            return true;
    return false;
}
