/*
 * SPNEGO reader and writers (RFC 4178 section 4.2, MS-SPNG 2.2):
 *
 *   InitialContextToken ::= [APPLICATION 0] IMPLICIT SEQUENCE {      60 len
 *       thisMech   OID 1.3.6.1.5.5.2,                                06 06 2b0601050502
 *       innerToken NegotiationToken }
 *   NegotiationToken ::= CHOICE { negTokenInit [0], negTokenResp [1] }  a0 / a1
 *   NegTokenInit  ::= SEQUENCE { mechTypes [0] SEQUENCE OF OID, reqFlags [1] OPTIONAL,
 *                                mechToken [2] OCTET STRING OPTIONAL,
 *                                mechListMIC [3] OCTET STRING OPTIONAL }
 *                    (NegTokenInit2 puts negHints at [3] and mechListMIC at [4])
 *   NegTokenResp  ::= SEQUENCE { negState [0] ENUMERATED OPTIONAL,
 *                                supportedMech [1] OID OPTIONAL,
 *                                responseToken [2] OCTET STRING OPTIONAL,
 *                                mechListMIC [3] OCTET STRING OPTIONAL }
 */
#include "auth/spnego.h"

#include <stdio.h>
#include <string.h>

#include "auth/ntlm.h"

#define TAG_OCTET_STRING 0x04
#define TAG_OID 0x06
#define TAG_ENUMERATED 0x0a
#define TAG_SEQUENCE 0x30
#define TAG_GSS_APP0 0x60
#define TAG_KRB_AP_REQ 0x6e
#define TAG_CTX(n) (0xa0 + (n))

/* OID contents (without the 06 len header). */
static const uint8_t oid_spnego[] = {0x2b, 0x06, 0x01, 0x05, 0x05, 0x02};
static const uint8_t oid_ntlm[] = {0x2b, 0x06, 0x01, 0x04, 0x01, 0x82, 0x37, 0x02, 0x02, 0x0a};
static const uint8_t oid_krb5[] = {0x2a, 0x86, 0x48, 0x86, 0xf7, 0x12, 0x01, 0x02, 0x02};
static const uint8_t oid_mskrb5[] = {0x2a, 0x86, 0x48, 0x82, 0xf7, 0x12, 0x01, 0x02, 0x02};
static const uint8_t oid_negoex[] = {0x2b, 0x06, 0x01, 0x04, 0x01, 0x82, 0x37, 0x02, 0x02, 0x1e};
static const uint8_t oid_krb5_u2u[] = {0x2a, 0x86, 0x48, 0x86, 0xf7, 0x12, 0x01, 0x02, 0x02, 0x03};

static const struct {
    const uint8_t *oid;
    size_t len;
    enum spnego_mech mech;
    const char *name;
} mech_table[] = {
    {oid_ntlm, sizeof(oid_ntlm), SPNEGO_MECH_NTLM, "ntlm"},
    {oid_krb5, sizeof(oid_krb5), SPNEGO_MECH_KRB5, "krb5"},
    {oid_mskrb5, sizeof(oid_mskrb5), SPNEGO_MECH_MSKRB5, "mskrb5"},
    {oid_negoex, sizeof(oid_negoex), SPNEGO_MECH_NEGOEX, "negoex"},
    {oid_krb5_u2u, sizeof(oid_krb5_u2u), SPNEGO_MECH_KRB5_U2U, "krb5-u2u"},
};
#define NMECHS (sizeof(mech_table) / sizeof(mech_table[0]))

/* A cursor over DER bytes: reads never go past len. */
struct der {
    const uint8_t *p;
    size_t len;
    size_t pos;
};

/* One TLV: its tag, its contents, and the whole encoding. */
struct tlv {
    uint8_t tag;
    struct spnego_view val;
    struct spnego_view all;
};

static int
der_read(struct der *r, struct tlv *t, const char **why_out)
{
    size_t start = r->pos;
    size_t pos = start;
    size_t n = 0;
    uint8_t b;

    if (pos >= r->len || r->len - pos < 2) {
        *why_out = "truncated DER element";
        return -1;
    }
    t->tag = r->p[pos++];
    if ((t->tag & 0x1f) == 0x1f) {
        *why_out = "DER high tag number";
        return -1;
    }
    b = r->p[pos++];
    if (b < 0x80) {
        n = b;
    } else if (b == 0x80) {
        *why_out = "DER indefinite length";
        return -1;
    } else {
        size_t k = b & 0x7f;
        if (k > 4) {
            *why_out = "DER length of more than 4 bytes";
            return -1;
        }
        if (r->len - pos < k) {
            *why_out = "truncated DER length";
            return -1;
        }
        while (k-- > 0)
            n = n << 8 | r->p[pos++];
    }
    if (n > r->len - pos) {
        *why_out = "DER length past the end";
        return -1;
    }
    t->val.p = r->p + pos;
    t->val.len = n;
    t->all.p = r->p + start;
    t->all.len = pos + n - start;
    r->pos = pos + n;
    return 0;
}

/* Reads the only element of v, which must have tag `tag` and fill v exactly. */
static int
der_only(struct spnego_view v, uint8_t tag, struct tlv *t, const char **why_out)
{
    struct der r = {v.p, v.len, 0};

    if (der_read(&r, t, why_out) != 0)
        return -1;
    if (t->tag != tag) {
        *why_out = "unexpected DER tag";
        return -1;
    }
    if (r.pos != r.len) {
        *why_out = "trailing bytes in a DER element";
        return -1;
    }
    return 0;
}

static enum spnego_mech
mech_of(struct spnego_view oid)
{
    size_t i;
    for (i = 0; i < NMECHS; i++)
        if (oid.len == mech_table[i].len && memcmp(oid.p, mech_table[i].oid, oid.len) == 0)
            return mech_table[i].mech;
    return SPNEGO_MECH_OTHER;
}

const char *
spnego_mech_name(enum spnego_mech m)
{
    size_t i;
    if (m == SPNEGO_MECH_NONE)
        return "none";
    for (i = 0; i < NMECHS; i++)
        if (mech_table[i].mech == m)
            return mech_table[i].name;
    return "other";
}

/* Kerberos GSS framing: 60 len 06 len <krb5 | mskrb5 | u2u OID> ... */
static bool
is_kerberos_gss(struct spnego_view v)
{
    struct der r = {v.p, v.len, 0};
    struct tlv app, oid;
    const char *why;
    enum spnego_mech m;

    if (der_read(&r, &app, &why) != 0 || app.tag != TAG_GSS_APP0)
        return false;
    r.p = app.val.p;
    r.len = app.val.len;
    r.pos = 0;
    if (der_read(&r, &oid, &why) != 0 || oid.tag != TAG_OID)
        return false;
    m = mech_of(oid.val);
    return m == SPNEGO_MECH_KRB5 || m == SPNEGO_MECH_MSKRB5 || m == SPNEGO_MECH_KRB5_U2U;
}

static void
classify_inner(struct spnego_token *t, struct spnego_view v)
{
    t->inner = v;
    if (v.len == 0)
        t->inner_kind = SPNEGO_INNER_NONE;
    else if (ntlmmsg_is_ntlmssp(v.p, v.len)) {
        t->inner_kind = SPNEGO_INNER_NTLM;
        t->inner_ntlm_type = (int)ntlmmsg_type_of(v.p, v.len);
    } else if (v.p[0] == TAG_KRB_AP_REQ || is_kerberos_gss(v))
        t->inner_kind = SPNEGO_INNER_KERBEROS;
    else
        t->inner_kind = SPNEGO_INNER_OTHER;
}

/* Walks the context-tagged elements of a SEQUENCE; tags must strictly increase. Returns the
 * next element in *t, 1 at the end, -1 on error. */
static int
next_ctx(struct der *r, int *last, struct tlv *t, const char **why_out)
{
    if (r->pos == r->len)
        return 1;
    if (der_read(r, t, why_out) != 0)
        return -1;
    if (t->tag < TAG_CTX(0) || t->tag > TAG_CTX(4) || (int)(t->tag - TAG_CTX(0)) <= *last) {
        *why_out = "unexpected or out-of-order SPNEGO element";
        return -1;
    }
    *last = t->tag - TAG_CTX(0);
    return 0;
}

static int
parse_mech_types(struct spnego_token *t, struct spnego_view v, const char **why_out)
{
    struct tlv seq, oid;
    struct der r;

    if (der_only(v, TAG_SEQUENCE, &seq, why_out) != 0)
        return -1;
    t->mech_types = seq.all;
    r.p = seq.val.p;
    r.len = seq.val.len;
    r.pos = 0;
    while (r.pos < r.len) {
        enum spnego_mech m;
        if (der_read(&r, &oid, why_out) != 0)
            return -1;
        if (oid.tag != TAG_OID) {
            *why_out = "mechTypes entry is not an OID";
            return -1;
        }
        m = mech_of(oid.val);
        if (t->nmechs == 0)
            t->first_mech = m;
        if (t->nmechs < SPNEGO_MAX_ORDER)
            t->order[t->nmechs] = m;
        t->mechs |= SPNEGO_MECHBIT(m);
        t->nmechs++;
    }
    return 0;
}

static int
parse_init(struct spnego_token *t, struct spnego_view v, const char **why_out)
{
    struct tlv seq, el, in;
    struct der r;
    int last = -1;
    int rc;
    bool have_types = false;

    if (der_only(v, TAG_SEQUENCE, &seq, why_out) != 0)
        return -1;
    r.p = seq.val.p;
    r.len = seq.val.len;
    r.pos = 0;
    while ((rc = next_ctx(&r, &last, &el, why_out)) == 0) {
        switch (el.tag) {
        case TAG_CTX(0):
            if (parse_mech_types(t, el.val, why_out) != 0)
                return -1;
            have_types = true;
            break;
        case TAG_CTX(1): /* reqFlags: ignored by acceptors (MS-SPNG 3.1.5.3) */
            break;
        case TAG_CTX(2):
            if (der_only(el.val, TAG_OCTET_STRING, &in, why_out) != 0)
                return -1;
            classify_inner(t, in.val);
            break;
        case TAG_CTX(3): /* mechListMIC, or negHints (a SEQUENCE) in NegTokenInit2 */
        case TAG_CTX(4): /* mechListMIC of NegTokenInit2 */
            if (el.val.len > 0 && el.val.p[0] == TAG_OCTET_STRING) {
                if (der_only(el.val, TAG_OCTET_STRING, &in, why_out) != 0)
                    return -1;
                t->has_mic = true;
                t->mic = in.val;
            } else if (el.tag == TAG_CTX(4)) {
                *why_out = "mechListMIC is not an OCTET STRING";
                return -1;
            }
            break;
        }
    }
    if (rc < 0)
        return -1;
    if (!have_types) {
        *why_out = "NegTokenInit without mechTypes";
        return -1;
    }
    t->kind = SPNEGO_INIT;
    return 0;
}

static int
parse_resp(struct spnego_token *t, struct spnego_view v, const char **why_out)
{
    struct tlv seq, el, in;
    struct der r;
    int last = -1;
    int rc;

    if (der_only(v, TAG_SEQUENCE, &seq, why_out) != 0)
        return -1;
    r.p = seq.val.p;
    r.len = seq.val.len;
    r.pos = 0;
    while ((rc = next_ctx(&r, &last, &el, why_out)) == 0) {
        switch (el.tag) {
        case TAG_CTX(0):
            if (der_only(el.val, TAG_ENUMERATED, &in, why_out) != 0)
                return -1;
            if (in.val.len != 1) {
                *why_out = "negState is not one byte";
                return -1;
            }
            t->neg_state = in.val.p[0];
            break;
        case TAG_CTX(1):
            if (der_only(el.val, TAG_OID, &in, why_out) != 0)
                return -1;
            t->supported_mech = mech_of(in.val);
            break;
        case TAG_CTX(2):
            if (der_only(el.val, TAG_OCTET_STRING, &in, why_out) != 0)
                return -1;
            classify_inner(t, in.val);
            break;
        case TAG_CTX(3):
            if (der_only(el.val, TAG_OCTET_STRING, &in, why_out) != 0)
                return -1;
            t->has_mic = true;
            t->mic = in.val;
            break;
        default:
            *why_out = "unexpected element in NegTokenResp";
            return -1;
        }
    }
    if (rc < 0)
        return -1;
    t->kind = SPNEGO_RESP;
    return 0;
}

int
spnego_peek(const uint8_t *buf, size_t len, struct spnego_token *out, const char **why_out)
{
    struct spnego_token t;
    struct der r = {buf, len, 0};
    struct tlv top, oid, nt;
    struct der in;
    int rc = -1;

    memset(&t, 0, sizeof(t));
    t.neg_state = SPNEGO_NEGSTATE_ABSENT;
    if (len == 0) {
        *why_out = "empty token";
        return -1;
    }
    if (len >= 7 && memcmp(buf, NTLMMSG_SIGNATURE, 7) == 0) {
        if (len < 12 || buf[7] != 0) {
            *why_out = "truncated NTLMSSP message";
            return -1;
        }
        t.kind = SPNEGO_RAW_NTLM;
        t.ntlm_type = (int)ntlmmsg_type_of(buf, len);
        *out = t;
        return 0;
    }
    switch (buf[0]) {
    case TAG_GSS_APP0:
    case TAG_CTX(0):
    case TAG_CTX(1):
    case TAG_KRB_AP_REQ:
        break;
    default:
        t.kind = SPNEGO_UNKNOWN;
        *out = t;
        return 0;
    }
    if (der_read(&r, &top, why_out) != 0)
        return -1;
    if (r.pos != len) {
        *why_out = "trailing bytes after the token";
        return -1;
    }
    switch (top.tag) {
    case TAG_GSS_APP0:
        in.p = top.val.p;
        in.len = top.val.len;
        in.pos = 0;
        if (der_read(&in, &oid, why_out) != 0)
            return -1;
        if (oid.tag != TAG_OID) {
            *why_out = "GSS token without a mechanism OID";
            return -1;
        }
        if (oid.val.len == sizeof(oid_spnego) &&
            memcmp(oid.val.p, oid_spnego, sizeof(oid_spnego)) == 0) {
            struct spnego_view rest = {top.val.p + in.pos, top.val.len - in.pos};
            if (der_only(rest, TAG_CTX(0), &nt, why_out) != 0)
                return -1;
            rc = parse_init(&t, nt.val, why_out);
        } else {
            enum spnego_mech m = mech_of(oid.val);
            if (m == SPNEGO_MECH_KRB5 || m == SPNEGO_MECH_MSKRB5 || m == SPNEGO_MECH_KRB5_U2U)
                t.kind = SPNEGO_RAW_KERBEROS;
            else
                t.kind = SPNEGO_UNKNOWN;
            rc = 0;
        }
        break;
    case TAG_CTX(0):
        t.bare_init = true;
        rc = parse_init(&t, top.val, why_out);
        break;
    case TAG_CTX(1):
        rc = parse_resp(&t, top.val, why_out);
        break;
    case TAG_KRB_AP_REQ:
        t.kind = SPNEGO_RAW_KERBEROS;
        rc = 0;
        break;
    }
    if (rc == 0)
        *out = t;
    return rc;
}

static size_t
der_len_size(size_t n)
{
    if (n < 0x80)
        return 1;
    if (n < 0x100)
        return 2;
    if (n < 0x10000)
        return 3;
    return 4;
}

/* Writes tag and DER length of n at out; returns the header size. n < 2^24. */
static size_t
der_put_header(uint8_t *out, uint8_t tag, size_t n)
{
    size_t k = der_len_size(n);
    size_t i;

    out[0] = tag;
    if (k == 1) {
        out[1] = (uint8_t)n;
        return 2;
    }
    out[1] = (uint8_t)(0x80 | (k - 1));
    for (i = 0; i < k - 1; i++)
        out[2 + i] = (uint8_t)(n >> (8 * (k - 2 - i)));
    return 1 + k;
}

/* a0 03 0a 01 01: negState accept-incomplete */
static const uint8_t neg_incomplete[] = {TAG_CTX(0), 0x03, TAG_ENUMERATED, 0x01,
                                         SPNEGO_ACCEPT_INCOMPLETE};

/* Contents length of the NegTokenResp SEQUENCE wrapping an n-byte responseToken. */
static size_t
wrap_seq_len(size_t n)
{
    size_t octet = 1 + der_len_size(n) + n;
    size_t rtok = 1 + der_len_size(octet) + octet;
    return sizeof(neg_incomplete) + 4 + sizeof(oid_ntlm) + rtok;
}

size_t
spnego_wrap_ntlm_size(size_t n)
{
    size_t seq = wrap_seq_len(n);
    size_t seq_tlv = 1 + der_len_size(seq) + seq;
    return 1 + der_len_size(seq_tlv) + seq_tlv;
}

int
spnego_wrap_ntlm(const uint8_t *ntlm, size_t n, uint8_t *out, size_t cap, size_t *len_out)
{
    size_t octet, seq, o = 0;

    if (n == 0 || n > SPNEGO_MAX_INNER)
        return -1;
    octet = 1 + der_len_size(n) + n;
    seq = wrap_seq_len(n);
    if (spnego_wrap_ntlm_size(n) > cap)
        return -1;
    o += der_put_header(out + o, TAG_CTX(1), 1 + der_len_size(seq) + seq);
    o += der_put_header(out + o, TAG_SEQUENCE, seq);
    memcpy(out + o, neg_incomplete, sizeof(neg_incomplete));
    o += sizeof(neg_incomplete);
    o += der_put_header(out + o, TAG_CTX(1), 2 + sizeof(oid_ntlm));
    o += der_put_header(out + o, TAG_OID, sizeof(oid_ntlm));
    memcpy(out + o, oid_ntlm, sizeof(oid_ntlm));
    o += sizeof(oid_ntlm);
    o += der_put_header(out + o, TAG_CTX(2), octet);
    o += der_put_header(out + o, TAG_OCTET_STRING, n);
    memcpy(out + o, ntlm, n);
    o += n;
    *len_out = o;
    return 0;
}

int
spnego_accept_completed(uint8_t *out, size_t cap, size_t *len_out)
{
    static const uint8_t done[] = {TAG_CTX(1),     0x07,       TAG_SEQUENCE,
                                   0x05,           TAG_CTX(0), 0x03,
                                   TAG_ENUMERATED, 0x01,       SPNEGO_ACCEPT_COMPLETED};
    if (cap < sizeof(done))
        return -1;
    memcpy(out, done, sizeof(done));
    *len_out = sizeof(done);
    return 0;
}

/* Appends text to buf[*o..cap), keeping the NUL; cuts when full. */
static void
append(char *buf, size_t cap, size_t *o, const char *text)
{
    while (*text && *o + 1 < cap)
        buf[(*o)++] = *text++;
    buf[*o] = '\0';
}

static const char *
inner_name(enum spnego_inner k, int ntlm_type)
{
    static const char *const ntlm_names[] = {"ntlm?", "ntlm1", "ntlm2", "ntlm3"};
    switch (k) {
    case SPNEGO_INNER_NTLM:
        return ntlm_names[ntlm_type >= 1 && ntlm_type <= 3 ? ntlm_type : 0];
    case SPNEGO_INNER_KERBEROS:
        return "kerberos";
    case SPNEGO_INNER_OTHER:
        return "other";
    case SPNEGO_INNER_NONE:
        break;
    }
    return "none";
}

char *
spnego_describe(const struct spnego_token *t, char *buf, size_t cap)
{
    size_t o = 0;
    char num[16];

    buf[0] = '\0';
    switch (t->kind) {
    case SPNEGO_RAW_NTLM:
        append(buf, cap, &o, inner_name(SPNEGO_INNER_NTLM, t->ntlm_type));
        break;
    case SPNEGO_RAW_KERBEROS:
        append(buf, cap, &o, "kerberos");
        break;
    case SPNEGO_UNKNOWN:
        append(buf, cap, &o, "unknown");
        break;
    case SPNEGO_INIT: {
        size_t i;
        append(buf, cap, &o, "spnego-init[");
        for (i = 0; i < t->nmechs && i < SPNEGO_MAX_ORDER; i++) {
            if (i > 0)
                append(buf, cap, &o, ",");
            append(buf, cap, &o, spnego_mech_name(t->order[i]));
        }
        if (t->nmechs > SPNEGO_MAX_ORDER)
            append(buf, cap, &o, ",...");
        append(buf, cap, &o, "]+");
        append(buf, cap, &o, inner_name(t->inner_kind, t->inner_ntlm_type));
        break;
    }
    case SPNEGO_RESP:
        append(buf, cap, &o, "spnego-resp");
        if (t->neg_state != SPNEGO_NEGSTATE_ABSENT) {
            snprintf(num, sizeof(num), "(%d)", t->neg_state);
            append(buf, cap, &o, num);
        }
        append(buf, cap, &o, "+");
        append(buf, cap, &o, inner_name(t->inner_kind, t->inner_ntlm_type));
        break;
    }
    return buf;
}
