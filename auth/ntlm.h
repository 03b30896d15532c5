/*
 * Read-only NTLMSSP inspection (MS-NLMP section 2.2). exshim never changes an NTLM message
 * (the MIC covers all three of them, PROTOCOLS.md C.2); it only looks at them for the auth
 * trace and for Extended Protection diagnostics.
 *
 * Every security buffer (u16 Len, u16 MaxLen, u32 Offset) is checked with
 * Len <= size && Offset <= size - Len before it is read. Pure code, apart from
 * ntlmmsg_cbt_expected which uses libcrypto's MD5.
 */
#ifndef AUTH_NTLM_H
#define AUTH_NTLM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define NTLMMSG_SIGNATURE "NTLMSSP" /* followed by a NUL: 8 bytes on the wire */
#define NTLMMSG_SIGNATURE_LEN 8

/* NegotiateFlags bits used here (MS-NLMP 2.2.2.5). */
#define NTLMMSG_FLAG_UNICODE 0x00000001u
#define NTLMMSG_FLAG_OEM 0x00000002u
#define NTLMMSG_FLAG_VERSION 0x02000000u

/* Longest name kept for the trace, in bytes of UTF-8 including the NUL. */
#define NTLMMSG_NAME_MAX 128

enum ntlmmsg_type {
    NTLMMSG_NONE = 0,
    NTLMMSG_NEGOTIATE = 1,
    NTLMMSG_CHALLENGE = 2,
    NTLMMSG_AUTHENTICATE = 3,
};

/* A validated security buffer: off + len <= size of the message. */
struct ntlmmsg_field {
    uint32_t off;
    uint16_t len;
};

/* Channel-binding state of an AUTHENTICATE (MsvAvChannelBindings, AV id 0x0A). */
enum ntlmmsg_cbt {
    NTLMMSG_CBT_ABSENT = 0, /* no AV pair (NTLMv1, or a client without EPA) */
    NTLMMSG_CBT_ZERO,       /* present but all zero: the client had no binding to give */
    NTLMMSG_CBT_PRESENT,    /* present and non-zero: see cbt[] */
};

struct ntlmmsg_info {
    enum ntlmmsg_type type;
    uint32_t flags;
    /* NEGOTIATE */
    struct ntlmmsg_field neg_domain, neg_workstation;
    /* CHALLENGE */
    struct ntlmmsg_field target_name, target_info;
    uint8_t server_challenge[8];
    /* AUTHENTICATE */
    struct ntlmmsg_field lm_response, nt_response, domain, user, workstation, session_key;
    bool ntlmv2;      /* NT response longer than 24 bytes */
    bool mic_flagged; /* MsvAvFlags has 0x2: a MIC is at offset 72 */
    enum ntlmmsg_cbt cbt;
    uint8_t cbt_hash[16];
    /* Names as printable UTF-8 (controls become '?'), possibly shortened; "" when absent. */
    char user_text[NTLMMSG_NAME_MAX];
    char domain_text[NTLMMSG_NAME_MAX];
    char workstation_text[NTLMMSG_NAME_MAX];
};

/* True when buf starts with the 8-byte NTLMSSP signature. Borrows buf. */
bool ntlmmsg_is_ntlmssp(const uint8_t *buf, size_t len);

/*
 * Message type of an NTLMSSP message (signature + u32 type), NTLMMSG_NONE when buf is not
 * one or is shorter than 12 bytes. Does not validate the rest. Borrows buf.
 */
enum ntlmmsg_type ntlmmsg_type_of(const uint8_t *buf, size_t len);

/*
 * Validates and describes a NEGOTIATE, CHALLENGE or AUTHENTICATE message. Checks: signature,
 * type, fixed header length (including Version when flagged, and the MIC when the AV pairs
 * flag one), every security buffer inside the message, and for NTLMv2 the AV pair list of the
 * NT response. Returns 0 and fills *out, or -1 with a static reason in *why_out (*out is then
 * unspecified). Borrows buf.
 */
int ntlmmsg_inspect(const uint8_t *buf, size_t len, struct ntlmmsg_info *out, const char **why_out);

/*
 * Computes the MsvAvChannelBindings value a client puts in its AUTHENTICATE for a TLS server
 * whose RFC 5929 tls-server-end-point hash is cert_hash[0..hash_len) (the caller hashes the
 * certificate): MD5 over the serialized gss_channel_bindings as Windows builds it,
 *   u32 initiator_addrtype = 0, u32 initiator_address.length = 0,
 *   u32 acceptor_addrtype = 0,  u32 acceptor_address.length = 0,
 *   u32 application_data.length (LE), "tls-server-end-point:" || cert_hash.
 * Returns 0 and writes 16 bytes, or -1 (hash_len 0 or > 64, or a libcrypto failure).
 * Borrows both.
 */
int ntlmmsg_cbt_expected(const uint8_t *cert_hash, size_t hash_len, uint8_t md5_out[16]);

#endif
