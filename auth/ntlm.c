/*
 * NTLMSSP inspection. Wire layouts (MS-NLMP 2.2.1; all integers little-endian; a "field" is
 * u16 Len, u16 MaxLen, u32 Offset into the message):
 *
 *   NEGOTIATE     0 sig[8]  8 type=1  12 flags  16 DomainName  24 Workstation  32 Version
 *   CHALLENGE     0 sig[8]  8 type=2  12 TargetName  20 flags  24 ServerChallenge[8]
 *                 32 Reserved[8]  40 TargetInfo  48 Version  56 payload
 *   AUTHENTICATE  0 sig[8]  8 type=3  12 LmResponse  20 NtResponse  28 DomainName
 *                 36 UserName  44 Workstation  52 EncryptedRandomSessionKey  60 flags
 *                 64 Version  72 MIC[16] (only when MsvAvFlags has 0x2)  payload
 *
 * NTLMv2 response (NtResponse longer than 24 bytes): NTProofStr[16], then
 * RespType, HiRespType, Reserved1[2], Reserved2[4], TimeStamp[8], ChallengeFromClient[8],
 * Reserved3[4] (28 bytes), then AV pairs (u16 id, u16 len, value) up to MsvAvEOL.
 */
#include "auth/ntlm.h"

#include <string.h>

#include <openssl/evp.h>

#define NEGOTIATE_MIN 32
#define CHALLENGE_MIN 48
#define AUTHENTICATE_MIN 64
#define VERSION_LEN 8
#define MIC_OFFSET 72
#define MIC_LEN 16
#define NTLMV1_RESPONSE_LEN 24
#define NTLMV2_AV_START 44 /* NTProofStr[16] + the 28-byte client challenge header */

#define AV_EOL 0x0000
#define AV_FLAGS 0x0006
#define AV_CHANNEL_BINDINGS 0x000a
#define AV_FLAG_MIC 0x00000002u

static uint16_t
get_u16(const uint8_t *p)
{
    return (uint16_t)(p[0] | p[1] << 8);
}

static uint32_t
get_u32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* Reads the field descriptor at buf[at..at+8) (the caller checked at + 8 <= len) and checks
 * that the data it names lies inside the message. Empty fields are accepted whatever their
 * offset, since nothing is read from them. */
static int
read_field(const uint8_t *buf, size_t len, size_t at, struct ntlmmsg_field *out)
{
    uint16_t flen = get_u16(buf + at);
    uint32_t off = get_u32(buf + at + 4);

    if (flen == 0) {
        out->off = 0;
        out->len = 0;
        return 0;
    }
    if (flen > len || off > len - flen)
        return -1;
    out->off = off;
    out->len = flen;
    return 0;
}

/* Appends the UTF-8 form of code point cp to out[*o], keeping room for the NUL; returns false
 * when it does not fit (the name is then cut at a character boundary). */
static bool
put_utf8(char *out, size_t cap, size_t *o, uint32_t cp)
{
    uint8_t tmp[4];
    size_t n, i;

    if (cp < 0x20 || (cp >= 0x7f && cp < 0xa0))
        cp = '?';
    if (cp < 0x80) {
        tmp[0] = (uint8_t)cp;
        n = 1;
    } else if (cp < 0x800) {
        tmp[0] = (uint8_t)(0xc0 | cp >> 6);
        tmp[1] = (uint8_t)(0x80 | (cp & 0x3f));
        n = 2;
    } else if (cp < 0x10000) {
        tmp[0] = (uint8_t)(0xe0 | cp >> 12);
        tmp[1] = (uint8_t)(0x80 | ((cp >> 6) & 0x3f));
        tmp[2] = (uint8_t)(0x80 | (cp & 0x3f));
        n = 3;
    } else {
        tmp[0] = (uint8_t)(0xf0 | cp >> 18);
        tmp[1] = (uint8_t)(0x80 | ((cp >> 12) & 0x3f));
        tmp[2] = (uint8_t)(0x80 | ((cp >> 6) & 0x3f));
        tmp[3] = (uint8_t)(0x80 | (cp & 0x3f));
        n = 4;
    }
    if (*o + n >= cap)
        return false;
    for (i = 0; i < n; i++)
        out[(*o)++] = (char)tmp[i];
    return true;
}

/* Converts a name field to printable UTF-8 in out (always NUL-terminated). UTF-16LE when
 * unicode, else OEM bytes of which only printable ASCII is kept. */
static int
name_text(const uint8_t *buf, const struct ntlmmsg_field *f, bool unicode, char *out, size_t cap)
{
    const uint8_t *p = buf + f->off;
    size_t o = 0;
    size_t i;

    out[0] = '\0';
    if (unicode) {
        if (f->len % 2 != 0)
            return -1;
        for (i = 0; i + 2 <= f->len; i += 2) {
            uint32_t cu = get_u16(p + i);
            if (cu >= 0xd800 && cu <= 0xdbff && i + 4 <= f->len) {
                uint32_t lo = get_u16(p + i + 2);
                if (lo >= 0xdc00 && lo <= 0xdfff) {
                    cu = 0x10000 + ((cu - 0xd800) << 10) + (lo - 0xdc00);
                    i += 2;
                }
            }
            if (cu >= 0xd800 && cu <= 0xdfff)
                cu = '?'; /* unpaired surrogate */
            if (!put_utf8(out, cap, &o, cu))
                break;
        }
    } else {
        for (i = 0; i < f->len; i++) {
            uint32_t c = p[i];
            if (!put_utf8(out, cap, &o, c < 0x80 ? c : '?'))
                break;
        }
    }
    out[o] = '\0';
    return 0;
}

/* Walks the AV pairs of an NTLMv2 response for MsvAvFlags and MsvAvChannelBindings. */
static int
scan_av_pairs(const uint8_t *p, size_t len, struct ntlmmsg_info *info, const char **why_out)
{
    size_t i = 0;

    while (len - i >= 4) {
        uint16_t id = get_u16(p + i);
        uint16_t alen = get_u16(p + i + 2);
        const uint8_t *val = p + i + 4;

        if (alen > len - i - 4) {
            *why_out = "NTLM AV pair past the end of the response";
            return -1;
        }
        if (id == AV_EOL)
            break;
        if (id == AV_FLAGS && alen == 4 && (get_u32(val) & AV_FLAG_MIC))
            info->mic_flagged = true;
        if (id == AV_CHANNEL_BINDINGS) {
            static const uint8_t zero[16];
            if (alen != 16) {
                *why_out = "NTLM channel bindings AV pair is not 16 bytes";
                return -1;
            }
            memcpy(info->cbt_hash, val, 16);
            info->cbt = memcmp(val, zero, 16) == 0 ? NTLMMSG_CBT_ZERO : NTLMMSG_CBT_PRESENT;
        }
        i += 4 + (size_t)alen;
    }
    return 0;
}

static int
inspect_negotiate(const uint8_t *buf, size_t len, struct ntlmmsg_info *info, const char **why_out)
{
    if (len < NEGOTIATE_MIN) {
        *why_out = "NTLM NEGOTIATE too short";
        return -1;
    }
    info->flags = get_u32(buf + 12);
    if ((info->flags & NTLMMSG_FLAG_VERSION) && len < NEGOTIATE_MIN + VERSION_LEN) {
        *why_out = "NTLM NEGOTIATE too short for its Version";
        return -1;
    }
    if (read_field(buf, len, 16, &info->neg_domain) != 0 ||
        read_field(buf, len, 24, &info->neg_workstation) != 0) {
        *why_out = "NTLM NEGOTIATE field outside the message";
        return -1;
    }
    return 0;
}

static int
inspect_challenge(const uint8_t *buf, size_t len, struct ntlmmsg_info *info, const char **why_out)
{
    if (len < CHALLENGE_MIN) {
        *why_out = "NTLM CHALLENGE too short";
        return -1;
    }
    info->flags = get_u32(buf + 20);
    if ((info->flags & NTLMMSG_FLAG_VERSION) && len < CHALLENGE_MIN + VERSION_LEN) {
        *why_out = "NTLM CHALLENGE too short for its Version";
        return -1;
    }
    if (read_field(buf, len, 12, &info->target_name) != 0 ||
        read_field(buf, len, 40, &info->target_info) != 0) {
        *why_out = "NTLM CHALLENGE field outside the message";
        return -1;
    }
    memcpy(info->server_challenge, buf + 24, 8);
    return 0;
}

static int
inspect_authenticate(const uint8_t *buf, size_t len, struct ntlmmsg_info *info,
                     const char **why_out)
{
    struct ntlmmsg_field *fields[6];
    bool unicode;
    size_t i;

    if (len < AUTHENTICATE_MIN) {
        *why_out = "NTLM AUTHENTICATE too short";
        return -1;
    }
    info->flags = get_u32(buf + 60);
    if ((info->flags & NTLMMSG_FLAG_VERSION) && len < AUTHENTICATE_MIN + VERSION_LEN) {
        *why_out = "NTLM AUTHENTICATE too short for its Version";
        return -1;
    }
    fields[0] = &info->lm_response;
    fields[1] = &info->nt_response;
    fields[2] = &info->domain;
    fields[3] = &info->user;
    fields[4] = &info->workstation;
    fields[5] = &info->session_key;
    for (i = 0; i < 6; i++) {
        if (read_field(buf, len, 12 + 8 * i, fields[i]) != 0) {
            *why_out = "NTLM AUTHENTICATE field outside the message";
            return -1;
        }
    }

    if (info->nt_response.len > NTLMV1_RESPONSE_LEN) {
        info->ntlmv2 = true;
        if (info->nt_response.len < NTLMV2_AV_START) {
            *why_out = "NTLMv2 response too short";
            return -1;
        }
        if (scan_av_pairs(buf + info->nt_response.off + NTLMV2_AV_START,
                          info->nt_response.len - NTLMV2_AV_START, info, why_out) != 0)
            return -1;
    }
    if (info->mic_flagged) {
        if (len < MIC_OFFSET + MIC_LEN) {
            *why_out = "NTLM AUTHENTICATE too short for its MIC";
            return -1;
        }
        for (i = 0; i < 6; i++) {
            if (fields[i]->len != 0 && fields[i]->off < MIC_OFFSET + MIC_LEN) {
                *why_out = "NTLM AUTHENTICATE payload overlaps the MIC";
                return -1;
            }
        }
    }

    unicode = (info->flags & NTLMMSG_FLAG_UNICODE) != 0;
    if (name_text(buf, &info->user, unicode, info->user_text, sizeof(info->user_text)) != 0 ||
        name_text(buf, &info->domain, unicode, info->domain_text, sizeof(info->domain_text)) != 0 ||
        name_text(buf, &info->workstation, unicode, info->workstation_text,
                  sizeof(info->workstation_text)) != 0) {
        *why_out = "NTLM AUTHENTICATE name has an odd UTF-16 length";
        return -1;
    }
    return 0;
}

bool
ntlmmsg_is_ntlmssp(const uint8_t *buf, size_t len)
{
    return len >= NTLMMSG_SIGNATURE_LEN &&
           memcmp(buf, NTLMMSG_SIGNATURE, NTLMMSG_SIGNATURE_LEN) == 0;
}

enum ntlmmsg_type
ntlmmsg_type_of(const uint8_t *buf, size_t len)
{
    uint32_t t;

    if (len < 12 || !ntlmmsg_is_ntlmssp(buf, len))
        return NTLMMSG_NONE;
    t = get_u32(buf + 8);
    if (t == NTLMMSG_NEGOTIATE || t == NTLMMSG_CHALLENGE || t == NTLMMSG_AUTHENTICATE)
        return (enum ntlmmsg_type)t;
    return NTLMMSG_NONE;
}

int
ntlmmsg_inspect(const uint8_t *buf, size_t len, struct ntlmmsg_info *out, const char **why_out)
{
    struct ntlmmsg_info info;
    int rc = -1;

    memset(&info, 0, sizeof(info));
    if (!ntlmmsg_is_ntlmssp(buf, len)) {
        *why_out = "not an NTLMSSP message";
        return -1;
    }
    info.type = ntlmmsg_type_of(buf, len);
    switch (info.type) {
    case NTLMMSG_NEGOTIATE:
        rc = inspect_negotiate(buf, len, &info, why_out);
        break;
    case NTLMMSG_CHALLENGE:
        rc = inspect_challenge(buf, len, &info, why_out);
        break;
    case NTLMMSG_AUTHENTICATE:
        rc = inspect_authenticate(buf, len, &info, why_out);
        break;
    case NTLMMSG_NONE:
        *why_out = len < 12 ? "NTLMSSP message too short" : "unknown NTLMSSP message type";
        break;
    }
    if (rc == 0)
        *out = info;
    return rc;
}

int
ntlmmsg_cbt_expected(const uint8_t *cert_hash, size_t hash_len, uint8_t md5_out[16])
{
    static const char prefix[] = "tls-server-end-point:";
    uint8_t data[20 + sizeof(prefix) - 1 + 64];
    size_t app_len = sizeof(prefix) - 1 + hash_len;
    unsigned int mdlen = 0;
    uint8_t md[EVP_MAX_MD_SIZE];

    if (hash_len == 0 || hash_len > 64)
        return -1;
    /* Four zero u32s: no initiator or acceptor address. */
    memset(data, 0, 16);
    data[16] = (uint8_t)(app_len & 0xff);
    data[17] = (uint8_t)(app_len >> 8);
    data[18] = 0;
    data[19] = 0;
    memcpy(data + 20, prefix, sizeof(prefix) - 1);
    memcpy(data + 20 + sizeof(prefix) - 1, cert_hash, hash_len);
    if (EVP_Digest(data, 20 + app_len, md, &mdlen, EVP_md5(), NULL) != 1 || mdlen != 16)
        return -1;
    memcpy(md5_out, md, 16);
    return 0;
}
