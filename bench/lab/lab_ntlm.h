/*
 * exshim-lab NTLM acceptor: builds CHALLENGE messages and verifies AUTHENTICATE messages the
 * way a Windows server does (MS-NLMP 3.2.5), against a user file of DOMAIN:user:password lines.
 *
 * Why our own code and not gss-ntlmssp: as an acceptor gss-ntlmssp refuses message layouts
 * that IIS accepts (curl's 32-byte NEGOTIATE, an AUTHENTICATE whose payload starts at offset
 * 64), and it cannot emulate LmCompatibilityLevel or report what it saw of channel bindings
 * and MIC. This file is pure: memory in, verdict out; libcrypto only (MD4, DES and RC4 need
 * OpenSSL 3's "legacy" provider loaded by the caller). No libevent, no logging.
 */
#ifndef BENCH_LAB_LAB_NTLM_H
#define BENCH_LAB_LAB_NTLM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define LAB_NTLM_MAX_MSG 4096 /* largest NTLM message accepted */
#define LAB_NTLM_NAME_MAX 128 /* UTF-8 bytes kept per name, NUL included */

/* One line of the user file. */
struct lab_user {
    char *domain;
    char *user;
    char *password;
};

struct lab_users {
    struct lab_user *v;
    size_t n;
};

/* Loads DOMAIN:user:password lines ('#' comments and blank lines skipped; the password is
 * everything after the second ':'). Returns 0, or -1 with a reason in err. *out is owned by
 * the caller (lab_users_free). */
int lab_users_load(const char *path, struct lab_users *out, char *err, size_t errlen);
void lab_users_free(struct lab_users *u);

/* Basic: checks "user:password" where user is DOMAIN\user, user@domain or user. On success
 * writes "DOMAIN\user" (domain from the file) into who. Borrows everything. */
bool lab_users_check_basic(const struct lab_users *u, const char *userpass, size_t len, char *who,
                           size_t wholen);

/* Names the server announces in its CHALLENGE (TargetName and TargetInfo). Borrowed. */
struct lab_ntlm_names {
    const char *nb_domain;
    const char *nb_computer;
    const char *dns_domain;
    const char *dns_computer;
};

/* Per-connection handshake state: the NEGOTIATE and CHALLENGE as sent (the MIC covers them). */
struct lab_ntlm {
    uint8_t neg[LAB_NTLM_MAX_MSG];
    size_t neg_len;
    uint8_t chal[1024];
    size_t chal_len;
    uint8_t server_challenge[8];
    bool challenged;
};

enum lab_ntlm_cbt {
    LAB_NTLM_CBT_ABSENT = 0, /* no MsvAvChannelBindings, or all zero */
    LAB_NTLM_CBT_MATCH,
    LAB_NTLM_CBT_MISMATCH,
};
enum lab_ntlm_mic {
    LAB_NTLM_MIC_ABSENT = 0,
    LAB_NTLM_MIC_OK,
    LAB_NTLM_MIC_BAD,
};
enum lab_epa {
    LAB_EPA_NONE = 0, /* Extended Protection off: bindings are reported, never enforced */
    LAB_EPA_ALLOW,    /* a present, non-zero, wrong binding fails */
    LAB_EPA_REQUIRE,  /* a matching binding is required (NTLMv1 then always fails) */
};

/* Acceptance policy for one verification. cert_hash: the tls-server-end-point hash of the
 * certificate this connection was served with, NULL on plain HTTP. */
struct lab_ntlm_policy {
    bool allow_v1; /* false: LmCompatibilityLevel 5, NTLMv1 and LM refused */
    enum lab_epa epa;
    const uint8_t *cert_hash;
    size_t cert_hash_len;
};

/* What an AUTHENTICATE says about itself, without checking any password. */
struct lab_ntlm_peek {
    bool v2;          /* NT response longer than 24 bytes */
    bool mic_flagged; /* MsvAvFlags bit 0x2 */
    bool has_cbt;     /* MsvAvChannelBindings present and non-zero */
    uint8_t cbt[16];
    enum lab_ntlm_cbt cbt_state; /* compared with policy->cert_hash */
    char user[LAB_NTLM_NAME_MAX];
    char domain[LAB_NTLM_NAME_MAX];
};

struct lab_ntlm_result {
    bool ok;
    const char *reason; /* static text, "ok" on success */
    struct lab_ntlm_peek info;
    enum lab_ntlm_mic mic;
    uint8_t exported_key[16]; /* valid when ok */
};

/*
 * Answers a NEGOTIATE (neg[0..len)) with a CHALLENGE kept in st->chal. server_challenge is
 * the caller's 8 random bytes; filetime is the MsvAvTimestamp (100 ns since 1601). Accepts any
 * NEGOTIATE of at least 16 bytes (curl's 32-byte one without Version included). Returns 0, or
 * -1 with a static reason in *why_out. Borrows everything.
 */
int lab_ntlm_challenge(struct lab_ntlm *st, const uint8_t *neg, size_t len,
                       const struct lab_ntlm_names *names, const uint8_t server_challenge[8],
                       uint64_t filetime, const char **why_out);

/* Reads the flags, names, channel binding and MIC flag of an AUTHENTICATE. Returns 0 or -1
 * with a static reason. Borrows everything. */
int lab_ntlm_peek_auth(const uint8_t *msg, size_t len, const struct lab_ntlm_policy *pol,
                       struct lab_ntlm_peek *out, const char **why_out);

/*
 * Verifies an AUTHENTICATE against the state of the handshake and the user file: NTLMv2
 * (NTProofStr) or NTLMv1 (DESL, with or without extended session security), then the MIC when
 * the client flagged one, then the policy (v1 allowed, channel binding). Fills *res.
 * Borrows everything.
 */
void lab_ntlm_verify(const struct lab_ntlm *st, const uint8_t *msg, size_t len,
                     const struct lab_users *users, const struct lab_ntlm_policy *pol,
                     struct lab_ntlm_result *res);

/* Building blocks, exposed for the known-answer tests (MS-NLMP 4.2). All return 0 or -1. */
int lab_ntlm_nt_hash(const char *password, uint8_t out[16]);
int lab_ntlm_ntowfv2(const uint8_t nt_hash[16], const char *user, const char *domain,
                     uint8_t out[16]);
int lab_ntlm_hmac_md5(const uint8_t *key, size_t keylen, const uint8_t *a, size_t alen,
                      const uint8_t *b, size_t blen, uint8_t out[16]);
int lab_ntlm_desl(const uint8_t key16[16], const uint8_t data8[8], uint8_t out[24]);
int lab_ntlm_rc4(const uint8_t key[16], const uint8_t *in, size_t len, uint8_t *out);
/* MD5 of the gss_channel_bindings Windows hashes for "tls-server-end-point:" || hash. */
int lab_ntlm_cbt_hash(const uint8_t *cert_hash, size_t len, uint8_t out[16]);

#endif
