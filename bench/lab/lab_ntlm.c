/*
 * exshim-lab NTLM acceptor. See lab_ntlm.h.
 *
 * Wire formats (MS-NLMP 2.2.1; all integers little-endian; a "field" is u16 Len, u16 MaxLen,
 * u32 Offset into the message):
 *
 *   NEGOTIATE     0 "NTLMSSP\0"  8 u32 1  12 flags  16 domain field  24 workstation field
 *                 32 Version (only when flagged; curl sends 32 bytes and no Version)
 *   CHALLENGE     0 sig  8 u32 2  12 TargetName field  20 flags  24 ServerChallenge[8]
 *                 32 Reserved[8]  40 TargetInfo field  48 Version  56 payload
 *   AUTHENTICATE  0 sig  8 u32 3  12 LM  20 NT  28 domain  36 user  44 workstation
 *                 52 EncryptedRandomSessionKey  60 flags  64 Version  72 MIC[16]
 *                 (Version and MIC only when the payload leaves room for them: the lowest
 *                 payload offset tells; curl's payload starts at 64)
 *
 *   NTLMv2 response = NTProofStr[16] || blob, blob = 01 01 00 00 | 4 zero | Timestamp[8] |
 *                     ClientChallenge[8] | 4 zero | AV pairs ... | (padding)
 */
#include "bench/lab/lab_ntlm.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>

#define NTLM_SIG "NTLMSSP"

#define FL_UNICODE 0x00000001u
#define FL_OEM 0x00000002u
#define FL_REQUEST_TARGET 0x00000004u
#define FL_SIGN 0x00000010u
#define FL_SEAL 0x00000020u
#define FL_LM_KEY 0x00000080u
#define FL_NTLM 0x00000200u
#define FL_ALWAYS_SIGN 0x00008000u
#define FL_TARGET_DOMAIN 0x00010000u
#define FL_ESS 0x00080000u
#define FL_TARGET_INFO 0x00800000u
#define FL_VERSION 0x02000000u
#define FL_128 0x20000000u
#define FL_KEY_EXCH 0x40000000u
#define FL_56 0x80000000u

#define AV_EOL 0
#define AV_NB_COMPUTER 1
#define AV_NB_DOMAIN 2
#define AV_DNS_COMPUTER 3
#define AV_DNS_DOMAIN 4
#define AV_DNS_TREE 5
#define AV_FLAGS 6
#define AV_TIMESTAMP 7
#define AV_CHANNEL_BINDINGS 0x0a

#define NAME_UTF16_MAX 512 /* bytes of UTF-16 accepted per name */

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

static void
wr16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

static void
wr32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

/* ---- text conversions ---------------------------------------------------------------- */

/* UTF-8 -> UTF-16LE (BMP and surrogate pairs). Returns bytes written or -1. */
static int
utf8_to_utf16(const char *s, uint8_t *out, size_t cap)
{
    size_t o = 0;
    const unsigned char *p = (const unsigned char *)s;
    while (*p) {
        uint32_t cp;
        int n;
        if (*p < 0x80) {
            cp = *p;
            n = 1;
        } else if ((*p & 0xe0) == 0xc0) {
            cp = *p & 0x1f;
            n = 2;
        } else if ((*p & 0xf0) == 0xe0) {
            cp = *p & 0x0f;
            n = 3;
        } else if ((*p & 0xf8) == 0xf0) {
            cp = *p & 0x07;
            n = 4;
        } else {
            return -1;
        }
        for (int i = 1; i < n; i++) {
            if ((p[i] & 0xc0) != 0x80)
                return -1;
            cp = (cp << 6) | (p[i] & 0x3f);
        }
        p += n;
        if (cp >= 0x10000) {
            if (o + 4 > cap)
                return -1;
            cp -= 0x10000;
            wr16(out + o, (uint16_t)(0xd800 | (cp >> 10)));
            wr16(out + o + 2, (uint16_t)(0xdc00 | (cp & 0x3ff)));
            o += 4;
        } else {
            if (o + 2 > cap)
                return -1;
            wr16(out + o, (uint16_t)cp);
            o += 2;
        }
    }
    return (int)o;
}

/* UTF-16LE -> UTF-8, controls become '?', shortened to fit. */
static void
utf16_to_utf8(const uint8_t *in, size_t len, char *out, size_t cap)
{
    size_t o = 0;
    for (size_t i = 0; i + 1 < len; i += 2) {
        uint32_t cp = rd16(in + i);
        if (cp >= 0xd800 && cp < 0xdc00 && i + 3 < len) {
            uint32_t lo = rd16(in + i + 2);
            if (lo >= 0xdc00 && lo < 0xe000) {
                cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
                i += 2;
            }
        }
        char tmp[4];
        size_t n;
        if (cp < 0x20 || cp == 0x7f) {
            tmp[0] = '?';
            n = 1;
        } else if (cp < 0x80) {
            tmp[0] = (char)cp;
            n = 1;
        } else if (cp < 0x800) {
            tmp[0] = (char)(0xc0 | (cp >> 6));
            tmp[1] = (char)(0x80 | (cp & 0x3f));
            n = 2;
        } else if (cp < 0x10000) {
            tmp[0] = (char)(0xe0 | (cp >> 12));
            tmp[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
            tmp[2] = (char)(0x80 | (cp & 0x3f));
            n = 3;
        } else {
            tmp[0] = (char)(0xf0 | (cp >> 18));
            tmp[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
            tmp[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
            tmp[3] = (char)(0x80 | (cp & 0x3f));
            n = 4;
        }
        if (o + n + 1 > cap)
            break;
        memcpy(out + o, tmp, n);
        o += n;
    }
    out[o] = '\0';
}

static void
oem_to_utf8(const uint8_t *in, size_t len, char *out, size_t cap)
{
    size_t o = 0;
    for (size_t i = 0; i < len && o + 1 < cap; i++)
        out[o++] = (in[i] >= 0x20 && in[i] < 0x7f) ? (char)in[i] : '?';
    out[o] = '\0';
}

/* Upper-cases a UTF-16LE string in place (ASCII and Latin-1 letters). */
static void
utf16_upper(uint8_t *s, size_t len)
{
    for (size_t i = 0; i + 1 < len; i += 2) {
        uint16_t c = rd16(s + i);
        if ((c >= 'a' && c <= 'z') || (c >= 0xe0 && c <= 0xfe && c != 0xf7))
            wr16(s + i, (uint16_t)(c - 0x20));
    }
}

/* ---- crypto helpers --------------------------------------------------------------------- */

static int
digest(const char *name, const uint8_t *in, size_t len, uint8_t *out)
{
    int rc = -1;
    EVP_MD *md = EVP_MD_fetch(NULL, name, NULL);
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    unsigned int olen = 0;
    if (md == NULL || ctx == NULL)
        goto cleanup;
    if (EVP_DigestInit_ex(ctx, md, NULL) != 1 || EVP_DigestUpdate(ctx, in, len) != 1 ||
        EVP_DigestFinal_ex(ctx, out, &olen) != 1)
        goto cleanup;
    rc = 0;
cleanup:
    EVP_MD_CTX_free(ctx);
    EVP_MD_free(md);
    return rc;
}

int
lab_ntlm_hmac_md5(const uint8_t *key, size_t keylen, const uint8_t *a, size_t alen,
                  const uint8_t *b, size_t blen, uint8_t out[16])
{
    int rc = -1;
    EVP_MAC *mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
    EVP_MAC_CTX *ctx = NULL;
    size_t olen = 0;
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)"MD5", 0),
        OSSL_PARAM_construct_end(),
    };
    if (mac == NULL || (ctx = EVP_MAC_CTX_new(mac)) == NULL)
        goto cleanup;
    if (EVP_MAC_init(ctx, key, keylen, params) != 1)
        goto cleanup;
    if (alen > 0 && EVP_MAC_update(ctx, a, alen) != 1)
        goto cleanup;
    if (blen > 0 && EVP_MAC_update(ctx, b, blen) != 1)
        goto cleanup;
    if (EVP_MAC_final(ctx, out, &olen, 16) != 1 || olen != 16)
        goto cleanup;
    rc = 0;
cleanup:
    EVP_MAC_CTX_free(ctx);
    EVP_MAC_free(mac);
    return rc;
}

static int
cipher_once(const char *name, const uint8_t *key, const uint8_t *in, size_t len, uint8_t *out)
{
    int rc = -1, n1 = 0, n2 = 0;
    EVP_CIPHER *c = EVP_CIPHER_fetch(NULL, name, NULL);
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    if (c == NULL || ctx == NULL)
        goto cleanup;
    if (EVP_EncryptInit_ex(ctx, c, NULL, key, NULL) != 1)
        goto cleanup;
    EVP_CIPHER_CTX_set_padding(ctx, 0);
    if (EVP_EncryptUpdate(ctx, out, &n1, in, (int)len) != 1 ||
        EVP_EncryptFinal_ex(ctx, out + n1, &n2) != 1 || (size_t)(n1 + n2) != len)
        goto cleanup;
    rc = 0;
cleanup:
    EVP_CIPHER_CTX_free(ctx);
    EVP_CIPHER_free(c);
    return rc;
}

int
lab_ntlm_rc4(const uint8_t key[16], const uint8_t *in, size_t len, uint8_t *out)
{
    return cipher_once("RC4", key, in, len, out);
}

/* 7 key bytes -> 8-byte DES key (parity bits left as they fall: DES ignores them). */
static void
des_key7(const uint8_t *k7, uint8_t k8[8])
{
    k8[0] = k7[0];
    k8[1] = (uint8_t)((k7[0] << 7) | (k7[1] >> 1));
    k8[2] = (uint8_t)((k7[1] << 6) | (k7[2] >> 2));
    k8[3] = (uint8_t)((k7[2] << 5) | (k7[3] >> 3));
    k8[4] = (uint8_t)((k7[3] << 4) | (k7[4] >> 4));
    k8[5] = (uint8_t)((k7[4] << 3) | (k7[5] >> 5));
    k8[6] = (uint8_t)((k7[5] << 2) | (k7[6] >> 6));
    k8[7] = (uint8_t)(k7[6] << 1);
}

int
lab_ntlm_desl(const uint8_t key16[16], const uint8_t data8[8], uint8_t out[24])
{
    uint8_t k21[21] = {0}, k8[8];
    memcpy(k21, key16, 16);
    for (int i = 0; i < 3; i++) {
        des_key7(k21 + 7 * i, k8);
        if (cipher_once("DES-ECB", k8, data8, 8, out + 8 * i) != 0)
            return -1;
    }
    return 0;
}

int
lab_ntlm_nt_hash(const char *password, uint8_t out[16])
{
    uint8_t u[1024];
    int n = utf8_to_utf16(password, u, sizeof(u));
    if (n < 0)
        return -1;
    return digest("MD4", u, (size_t)n, out);
}

/* NTOWFv2 with the user and domain as UTF-16LE bytes (the user is upper-cased here). */
static int
ntowfv2_raw(const uint8_t nt_hash[16], const uint8_t *user16, size_t ulen, const uint8_t *dom16,
            size_t dlen, uint8_t out[16])
{
    uint8_t buf[2 * NAME_UTF16_MAX];
    if (ulen > NAME_UTF16_MAX || dlen > NAME_UTF16_MAX)
        return -1;
    memcpy(buf, user16, ulen);
    utf16_upper(buf, ulen);
    memcpy(buf + ulen, dom16, dlen);
    return lab_ntlm_hmac_md5(nt_hash, 16, buf, ulen + dlen, NULL, 0, out);
}

int
lab_ntlm_ntowfv2(const uint8_t nt_hash[16], const char *user, const char *domain, uint8_t out[16])
{
    uint8_t u[NAME_UTF16_MAX], d[NAME_UTF16_MAX];
    int un = utf8_to_utf16(user, u, sizeof(u));
    int dn = utf8_to_utf16(domain, d, sizeof(d));
    if (un < 0 || dn < 0)
        return -1;
    return ntowfv2_raw(nt_hash, u, (size_t)un, d, (size_t)dn, out);
}

int
lab_ntlm_cbt_hash(const uint8_t *cert_hash, size_t len, uint8_t out[16])
{
    static const char prefix[] = "tls-server-end-point:";
    uint8_t buf[20 + sizeof(prefix) - 1 + 64];
    size_t plen = sizeof(prefix) - 1;
    if (len == 0 || len > 64)
        return -1;
    memset(buf, 0, 16); /* initiator and acceptor address types and lengths: all zero */
    wr32(buf + 16, (uint32_t)(plen + len));
    memcpy(buf + 20, prefix, plen);
    memcpy(buf + 20 + plen, cert_hash, len);
    return digest("MD5", buf, 20 + plen + len, out);
}

/* ---- users ------------------------------------------------------------------------------ */

void
lab_users_free(struct lab_users *u)
{
    if (u == NULL)
        return;
    for (size_t i = 0; i < u->n; i++) {
        free(u->v[i].domain);
        free(u->v[i].user);
        if (u->v[i].password != NULL) {
            memset(u->v[i].password, 0, strlen(u->v[i].password));
            free(u->v[i].password);
        }
    }
    free(u->v);
    u->v = NULL;
    u->n = 0;
}

int
lab_users_load(const char *path, struct lab_users *out, char *err, size_t errlen)
{
    int rc = -1;
    struct lab_users u = {0};
    size_t cap = 0;
    char line[1024];
    int lineno = 0;
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        snprintf(err, errlen, "%s: cannot open", path);
        goto cleanup;
    }
    while (fgets(line, sizeof(line), f) != NULL) {
        lineno++;
        size_t l = strcspn(line, "\r\n");
        line[l] = '\0';
        if (l == 0 || line[0] == '#')
            continue;
        char *c1 = strchr(line, ':');
        char *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
        if (c2 == NULL) {
            snprintf(err, errlen, "%s:%d: expected DOMAIN:user:password", path, lineno);
            goto cleanup;
        }
        *c1 = *c2 = '\0';
        if (u.n == cap) {
            cap = cap ? cap * 2 : 16;
            struct lab_user *nv = realloc(u.v, cap * sizeof(*nv));
            if (nv == NULL)
                goto nomem;
            u.v = nv;
        }
        struct lab_user *e = &u.v[u.n];
        e->domain = strdup(line);
        e->user = strdup(c1 + 1);
        e->password = strdup(c2 + 1);
        u.n++;
        if (e->domain == NULL || e->user == NULL || e->password == NULL)
            goto nomem;
    }
    *out = u;
    u.v = NULL;
    u.n = 0;
    rc = 0;
    goto cleanup;
nomem:
    snprintf(err, errlen, "%s: out of memory", path);
cleanup:
    if (f != NULL)
        fclose(f);
    lab_users_free(&u);
    return rc;
}

bool
lab_users_check_basic(const struct lab_users *u, const char *userpass, size_t len, char *who,
                      size_t wholen)
{
    char buf[512], *pw, *user, *dom = NULL;
    if (len >= sizeof(buf))
        return false;
    memcpy(buf, userpass, len);
    buf[len] = '\0';
    pw = strchr(buf, ':');
    if (pw == NULL)
        return false;
    *pw++ = '\0';
    user = buf;
    char *bs = strchr(buf, '\\');
    char *at = strchr(buf, '@');
    if (bs != NULL) {
        *bs = '\0';
        dom = buf;
        user = bs + 1;
    } else if (at != NULL) {
        *at = '\0';
        dom = at + 1;
    }
    bool ok = false;
    for (size_t i = 0; i < u->n && !ok; i++) {
        const struct lab_user *e = &u->v[i];
        if (strcasecmp(e->user, user) != 0 || strcmp(e->password, pw) != 0)
            continue;
        /* user@domain names a DNS domain: accept it when its first label is the NetBIOS name */
        if (dom != NULL && *dom != '\0' && strcasecmp(dom, e->domain) != 0) {
            size_t dl = strlen(e->domain);
            if (!(at != NULL && strncasecmp(dom, e->domain, dl) == 0 && dom[dl] == '.'))
                continue;
        }
        snprintf(who, wholen, "%s\\%s", e->domain, e->user);
        ok = true;
    }
    memset(buf, 0, sizeof(buf));
    return ok;
}

/* ---- CHALLENGE -------------------------------------------------------------------------- */

static size_t
put_av(uint8_t *p, uint16_t id, const uint8_t *v, size_t len)
{
    wr16(p, id);
    wr16(p + 2, (uint16_t)len);
    if (len > 0)
        memcpy(p + 4, v, len);
    return 4 + len;
}

static size_t
put_av_name(uint8_t *p, uint16_t id, const char *name)
{
    uint8_t u[256];
    int n = utf8_to_utf16(name ? name : "", u, sizeof(u));
    return put_av(p, id, u, n < 0 ? 0 : (size_t)n);
}

int
lab_ntlm_challenge(struct lab_ntlm *st, const uint8_t *neg, size_t len,
                   const struct lab_ntlm_names *names, const uint8_t server_challenge[8],
                   uint64_t filetime, const char **why_out)
{
    if (len < 16 || len > sizeof(st->neg) || memcmp(neg, NTLM_SIG, 8) != 0 || rd32(neg + 8) != 1) {
        *why_out = "not an NTLM NEGOTIATE";
        return -1;
    }
    uint32_t cf = rd32(neg + 12);
    uint32_t f = FL_REQUEST_TARGET | FL_NTLM | FL_TARGET_DOMAIN | FL_TARGET_INFO | FL_VERSION;
    f |= (cf & FL_UNICODE) ? FL_UNICODE : FL_OEM;
    f |= cf & (FL_SIGN | FL_SEAL | FL_ALWAYS_SIGN | FL_128 | FL_KEY_EXCH | FL_56);
    if (cf & FL_ESS)
        f |= FL_ESS; /* ESS wins over LM_KEY, as Windows does */
    else
        f |= cf & FL_LM_KEY;

    uint8_t *m = st->chal;
    size_t off = 56;
    memset(m, 0, 56);
    memcpy(m, NTLM_SIG, 8);
    wr32(m + 8, 2);
    /* TargetName: the NetBIOS domain, in the encoding the client asked for */
    size_t tn;
    if (f & FL_UNICODE) {
        int n = utf8_to_utf16(names->nb_domain, m + off, 128);
        tn = n < 0 ? 0 : (size_t)n;
    } else {
        tn = strlen(names->nb_domain);
        if (tn > 64)
            tn = 64;
        memcpy(m + off, names->nb_domain, tn);
    }
    wr16(m + 12, (uint16_t)tn);
    wr16(m + 14, (uint16_t)tn);
    wr32(m + 16, (uint32_t)off);
    off += tn;
    wr32(m + 20, f);
    memcpy(m + 24, server_challenge, 8);
    /* TargetInfo */
    size_t ti = off;
    uint8_t ts[8];
    for (int i = 0; i < 8; i++)
        ts[i] = (uint8_t)(filetime >> (8 * i));
    off += put_av_name(m + off, AV_NB_DOMAIN, names->nb_domain);
    off += put_av_name(m + off, AV_NB_COMPUTER, names->nb_computer);
    off += put_av_name(m + off, AV_DNS_DOMAIN, names->dns_domain);
    off += put_av_name(m + off, AV_DNS_COMPUTER, names->dns_computer);
    off += put_av_name(m + off, AV_DNS_TREE, names->dns_domain);
    off += put_av(m + off, AV_TIMESTAMP, ts, 8);
    off += put_av(m + off, AV_EOL, NULL, 0);
    wr16(m + 40, (uint16_t)(off - ti));
    wr16(m + 42, (uint16_t)(off - ti));
    wr32(m + 44, (uint32_t)ti);
    /* Version: 10.0 build 17763 (Windows Server 2019), NTLMSSP revision 15 */
    m[48] = 10;
    m[49] = 0;
    wr16(m + 50, 17763);
    m[55] = 15;

    memcpy(st->neg, neg, len);
    st->neg_len = len;
    st->chal_len = off;
    memcpy(st->server_challenge, server_challenge, 8);
    st->challenged = true;
    return 0;
}

/* ---- AUTHENTICATE ----------------------------------------------------------------------- */

struct field {
    uint32_t off;
    uint16_t len;
};

static int
get_field(const uint8_t *m, size_t len, size_t at, struct field *f)
{
    uint16_t l = rd16(m + at);
    uint32_t o = rd32(m + at + 4);
    if (l > len || o > len - l)
        return -1;
    f->len = l;
    f->off = o;
    return 0;
}

struct auth_view {
    struct field lm, nt, dom, user, ws, key;
    uint32_t flags;
    size_t payload_start; /* lowest offset of a non-empty field */
    bool has_mic_room;
};

static int
parse_auth(const uint8_t *m, size_t len, struct auth_view *v, const char **why_out)
{
    if (len < 64 || len > LAB_NTLM_MAX_MSG || memcmp(m, NTLM_SIG, 8) != 0 || rd32(m + 8) != 3) {
        *why_out = "not an NTLM AUTHENTICATE";
        return -1;
    }
    if (get_field(m, len, 12, &v->lm) || get_field(m, len, 20, &v->nt) ||
        get_field(m, len, 28, &v->dom) || get_field(m, len, 36, &v->user) ||
        get_field(m, len, 44, &v->ws) || get_field(m, len, 52, &v->key)) {
        *why_out = "field outside the message";
        return -1;
    }
    v->flags = rd32(m + 60);
    size_t lo = len;
    const struct field *all[] = {&v->lm, &v->nt, &v->dom, &v->user, &v->ws, &v->key};
    for (size_t i = 0; i < 6; i++)
        if (all[i]->len > 0 && all[i]->off < lo)
            lo = all[i]->off;
    if (lo < 64) {
        *why_out = "payload overlaps the header";
        return -1;
    }
    v->payload_start = lo;
    v->has_mic_room = lo >= 88;
    return 0;
}

/* Walks the AV pairs of an NTLMv2 response; fills flags and the channel binding. */
static void
scan_av(const uint8_t *nt, size_t ntlen, uint32_t *avflags, bool *has_cbt, uint8_t cbt[16])
{
    *avflags = 0;
    *has_cbt = false;
    if (ntlen < 44)
        return;
    size_t p = 44;
    while (p + 4 <= ntlen) {
        uint16_t id = rd16(nt + p), l = rd16(nt + p + 2);
        if (id == AV_EOL || p + 4 + l > ntlen)
            break;
        if (id == AV_FLAGS && l == 4)
            *avflags = rd32(nt + p + 4);
        if (id == AV_CHANNEL_BINDINGS && l == 16) {
            static const uint8_t zero[16];
            if (memcmp(nt + p + 4, zero, 16) != 0) {
                *has_cbt = true;
                memcpy(cbt, nt + p + 4, 16);
            }
        }
        p += 4 + (size_t)l;
    }
}

static void
name_of(const uint8_t *m, const struct field *f, uint32_t flags, char *out, size_t cap)
{
    if (flags & FL_UNICODE)
        utf16_to_utf8(m + f->off, f->len, out, cap);
    else
        oem_to_utf8(m + f->off, f->len, out, cap);
}

int
lab_ntlm_peek_auth(const uint8_t *m, size_t len, const struct lab_ntlm_policy *pol,
                   struct lab_ntlm_peek *out, const char **why_out)
{
    struct auth_view v;
    uint32_t avflags = 0;
    memset(out, 0, sizeof(*out));
    if (parse_auth(m, len, &v, why_out) != 0)
        return -1;
    out->v2 = v.nt.len > 24;
    if (out->v2) {
        if (v.nt.len < 48) {
            *why_out = "NTLMv2 response too short";
            return -1;
        }
        scan_av(m + v.nt.off, v.nt.len, &avflags, &out->has_cbt, out->cbt);
    }
    out->mic_flagged = (avflags & 0x2) != 0;
    if (out->mic_flagged && !v.has_mic_room) {
        *why_out = "MIC flagged but no room for it";
        return -1;
    }
    name_of(m, &v.user, v.flags, out->user, sizeof(out->user));
    name_of(m, &v.dom, v.flags, out->domain, sizeof(out->domain));
    out->cbt_state = LAB_NTLM_CBT_ABSENT;
    if (out->has_cbt) {
        uint8_t want[16];
        out->cbt_state = LAB_NTLM_CBT_MISMATCH;
        if (pol != NULL && pol->cert_hash != NULL &&
            lab_ntlm_cbt_hash(pol->cert_hash, pol->cert_hash_len, want) == 0 &&
            memcmp(want, out->cbt, 16) == 0)
            out->cbt_state = LAB_NTLM_CBT_MATCH;
    }
    return 0;
}

/* Checks the responses against one user entry. Returns 1 on match and fills the key. */
static int
try_user(const struct lab_ntlm *st, const uint8_t *m, const struct auth_view *v,
         const struct lab_user *e, bool *v1_out, uint8_t session_base_key[16],
         uint8_t key_exchange_key[16])
{
    uint8_t nth[16], proof[16];
    if (lab_ntlm_nt_hash(e->password, nth) != 0)
        return 0;
    if (v->nt.len > 24) {
        uint8_t owf[16], u16[NAME_UTF16_MAX], d16[NAME_UTF16_MAX];
        size_t ul, dl;
        const uint8_t *nt = m + v->nt.off;
        if (v->flags & FL_UNICODE) {
            if (v->user.len > NAME_UTF16_MAX || v->dom.len > NAME_UTF16_MAX)
                return 0;
            memcpy(u16, m + v->user.off, v->user.len);
            ul = v->user.len;
            memcpy(d16, m + v->dom.off, v->dom.len);
            dl = v->dom.len;
        } else {
            char un[LAB_NTLM_NAME_MAX], dn[LAB_NTLM_NAME_MAX];
            oem_to_utf8(m + v->user.off, v->user.len, un, sizeof(un));
            oem_to_utf8(m + v->dom.off, v->dom.len, dn, sizeof(dn));
            int a = utf8_to_utf16(un, u16, sizeof(u16)), b = utf8_to_utf16(dn, d16, sizeof(d16));
            if (a < 0 || b < 0)
                return 0;
            ul = (size_t)a;
            dl = (size_t)b;
        }
        if (ntowfv2_raw(nth, u16, ul, d16, dl, owf) != 0)
            return 0;
        if (lab_ntlm_hmac_md5(owf, 16, st->server_challenge, 8, nt + 16, v->nt.len - 16u, proof) !=
            0)
            return 0;
        if (CRYPTO_memcmp(proof, nt, 16) != 0)
            return 0;
        if (lab_ntlm_hmac_md5(owf, 16, proof, 16, NULL, 0, session_base_key) != 0)
            return 0;
        memcpy(key_exchange_key, session_base_key, 16);
        *v1_out = false;
        return 1;
    }
    if (v->nt.len == 24) {
        uint8_t resp[24], chal[8];
        const uint8_t *lm = m + v->lm.off;
        if (v->flags & FL_ESS) {
            uint8_t md[16], buf[16];
            if (v->lm.len < 8)
                return 0;
            memcpy(buf, st->server_challenge, 8);
            memcpy(buf + 8, lm, 8);
            if (digest("MD5", buf, 16, md) != 0)
                return 0;
            memcpy(chal, md, 8);
        } else {
            memcpy(chal, st->server_challenge, 8);
        }
        if (lab_ntlm_desl(nth, chal, resp) != 0 || CRYPTO_memcmp(resp, m + v->nt.off, 24) != 0)
            return 0;
        if (digest("MD4", nth, 16, session_base_key) != 0)
            return 0;
        if (v->flags & FL_ESS) {
            if (lab_ntlm_hmac_md5(session_base_key, 16, st->server_challenge, 8, lm, 8,
                                  key_exchange_key) != 0)
                return 0;
        } else {
            memcpy(key_exchange_key, session_base_key, 16);
        }
        *v1_out = true;
        return 1;
    }
    return 0;
}

void
lab_ntlm_verify(const struct lab_ntlm *st, const uint8_t *m, size_t len,
                const struct lab_users *users, const struct lab_ntlm_policy *pol,
                struct lab_ntlm_result *res)
{
    struct auth_view v;
    const char *why = NULL;
    memset(res, 0, sizeof(*res));
    res->reason = "malformed";
    if (lab_ntlm_peek_auth(m, len, pol, &res->info, &why) != 0 ||
        parse_auth(m, len, &v, &why) != 0) {
        res->reason = why ? why : "malformed";
        return;
    }
    if (!st->challenged) {
        res->reason = "no-challenge";
        return;
    }
    if (v.nt.len == 0 && res->info.user[0] == '\0') {
        res->reason = "anonymous";
        return;
    }
    if (v.nt.len < 24) {
        res->reason = "lm-only";
        return;
    }
    bool v1 = false;
    uint8_t sbk[16], kek[16];
    const struct lab_user *found = NULL;
    for (size_t i = 0; i < users->n && found == NULL; i++) {
        const struct lab_user *e = &users->v[i];
        if (strcasecmp(e->user, res->info.user) != 0)
            continue;
        if (res->info.domain[0] != '\0' && strcasecmp(e->domain, res->info.domain) != 0)
            continue;
        if (try_user(st, m, &v, e, &v1, sbk, kek) == 1)
            found = e;
    }
    if (found == NULL) {
        res->reason = "bad-credentials";
        return;
    }
    /* ExportedSessionKey: the client's random key, RC4-sealed with KeyExchangeKey, when
     * KEY_EXCH was negotiated; otherwise KeyExchangeKey itself. */
    if ((v.flags & FL_KEY_EXCH) && v.key.len == 16) {
        if (lab_ntlm_rc4(kek, m + v.key.off, 16, res->exported_key) != 0) {
            res->reason = "crypto-error";
            return;
        }
    } else {
        memcpy(res->exported_key, kek, 16);
    }
    if (res->info.mic_flagged) {
        uint8_t copy[LAB_NTLM_MAX_MSG], mic[16];
        memcpy(copy, m, len);
        memset(copy + 72, 0, 16);
        uint8_t both[LAB_NTLM_MAX_MSG + 1024];
        memcpy(both, st->neg, st->neg_len);
        memcpy(both + st->neg_len, st->chal, st->chal_len);
        if (lab_ntlm_hmac_md5(res->exported_key, 16, both, st->neg_len + st->chal_len, copy, len,
                              mic) != 0 ||
            CRYPTO_memcmp(mic, m + 72, 16) != 0) {
            res->mic = LAB_NTLM_MIC_BAD;
            res->reason = "mic-mismatch";
            return;
        }
        res->mic = LAB_NTLM_MIC_OK;
    }
    if (v1 && !pol->allow_v1) {
        res->reason = "ntlmv1-refused";
        return;
    }
    if (pol->epa == LAB_EPA_REQUIRE) {
        if (v1) {
            res->reason = "epa-ntlmv1";
            return;
        }
        if (res->info.cbt_state == LAB_NTLM_CBT_ABSENT) {
            res->reason = "epa-cbt-absent";
            return;
        }
    }
    if (pol->epa != LAB_EPA_NONE && res->info.cbt_state == LAB_NTLM_CBT_MISMATCH) {
        res->reason = "epa-cbt-mismatch";
        return;
    }
    snprintf(res->info.domain, sizeof(res->info.domain), "%s", found->domain);
    res->ok = true;
    res->reason = "ok";
}
