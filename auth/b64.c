/*
 * Strict base64 codec. Decoding is table driven: each input byte maps to its 6-bit value or to
 * B64_BAD; '=' is handled only at the end of the text.
 */
#include "auth/b64.h"

#define B64_BAD 0xff

static const char b64_alphabet[64] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* 6-bit value of a base64 character, B64_BAD for everything else (including '='). */
static uint8_t
b64_value(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return (uint8_t)(c - 'A');
    if (c >= 'a' && c <= 'z')
        return (uint8_t)(c - 'a' + 26);
    if (c >= '0' && c <= '9')
        return (uint8_t)(c - '0' + 52);
    if (c == '+')
        return 62;
    if (c == '/')
        return 63;
    return B64_BAD;
}

size_t
authb64_decoded_cap(size_t n)
{
    return n / 4 * 3 + (n % 4 ? 3 : 0);
}

size_t
authb64_encoded_len(size_t n)
{
    return (n + 2) / 3 * 4;
}

int
authb64_decode(const char *in, size_t inlen, uint8_t *out, size_t outcap, size_t *outlen_out)
{
    size_t pad = 0;
    size_t body;
    size_t outlen;
    size_t i, o = 0;

    if (inlen == 0 || inlen > AUTHB64_MAX_ENCODED || inlen % 4 != 0)
        return -1;
    if (in[inlen - 1] == '=')
        pad = in[inlen - 2] == '=' ? 2 : 1;
    body = inlen - pad;
    outlen = inlen / 4 * 3 - pad;
    if (outlen > outcap)
        return -1;

    for (i = 0; i + 4 <= body; i += 4) {
        uint8_t a = b64_value((unsigned char)in[i]);
        uint8_t b = b64_value((unsigned char)in[i + 1]);
        uint8_t c = b64_value((unsigned char)in[i + 2]);
        uint8_t d = b64_value((unsigned char)in[i + 3]);
        if (a == B64_BAD || b == B64_BAD || c == B64_BAD || d == B64_BAD)
            return -1;
        out[o++] = (uint8_t)(a << 2 | b >> 4);
        out[o++] = (uint8_t)(b << 4 | c >> 2);
        out[o++] = (uint8_t)(c << 6 | d);
    }
    if (pad > 0) {
        /* Last quantum: 2 (pad 2) or 3 (pad 1) significant characters. */
        uint8_t a = b64_value((unsigned char)in[i]);
        uint8_t b = b64_value((unsigned char)in[i + 1]);
        uint8_t c = pad == 1 ? b64_value((unsigned char)in[i + 2]) : 0;
        if (a == B64_BAD || b == B64_BAD || c == B64_BAD)
            return -1;
        if (pad == 2 && (b & 0x0f) != 0)
            return -1;
        if (pad == 1 && (c & 0x03) != 0)
            return -1;
        out[o++] = (uint8_t)(a << 2 | b >> 4);
        if (pad == 1)
            out[o++] = (uint8_t)(b << 4 | c >> 2);
    }
    *outlen_out = o;
    return 0;
}

int
authb64_encode(const uint8_t *in, size_t n, char *out, size_t outcap, size_t *outlen_out)
{
    size_t need;
    size_t i, o = 0;

    if (n > AUTHB64_MAX_DECODED)
        return -1;
    need = authb64_encoded_len(n);
    if (outcap < need + 1)
        return -1;
    for (i = 0; i + 3 <= n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
        out[o++] = b64_alphabet[v >> 18];
        out[o++] = b64_alphabet[(v >> 12) & 0x3f];
        out[o++] = b64_alphabet[(v >> 6) & 0x3f];
        out[o++] = b64_alphabet[v & 0x3f];
    }
    if (n - i == 1) {
        uint32_t v = (uint32_t)in[i] << 16;
        out[o++] = b64_alphabet[v >> 18];
        out[o++] = b64_alphabet[(v >> 12) & 0x3f];
        out[o++] = '=';
        out[o++] = '=';
    } else if (n - i == 2) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8;
        out[o++] = b64_alphabet[v >> 18];
        out[o++] = b64_alphabet[(v >> 12) & 0x3f];
        out[o++] = b64_alphabet[(v >> 6) & 0x3f];
        out[o++] = '=';
    }
    out[o] = '\0';
    *outlen_out = o;
    return 0;
}
