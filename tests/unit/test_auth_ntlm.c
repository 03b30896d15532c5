/*
 * Unit tests for auth/ntlm.c: the MS-NLMP 4.2.4.3 vectors from PROTOCOLS.md C.4, every-prefix
 * truncation, hand-built AUTHENTICATE messages with MIC and channel bindings, corruptions, and
 * the channel-binding hash.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "auth/b64.h"
#include "auth/ntlm.h"

static const char neg_hex[] =
    "4e544c4d5353500001000000b78208e2000000000000000000000000000000000a00614a0000000f";
static const char chal_hex[] =
    "4e544c4d53535000020000000c000c003800000033828ae20123456789abcdef0000000000000000"
    "2400240044000000060070170000000f53006500720076006500720002000c0044006f006d006100"
    "69006e0001000c0053006500720076006500720000000000";
static const char auth_b64[] =
    "TlRMTVNTUAADAAAAGAAYAGwAAABUAFQAhAAAAAwADABIAAAACAAIAFQAAAAQABAAXAAAABAAEADYAAAANYKI4gUBKAoA"
    "AAAPRABvAG0AYQBpAG4AVQBzAGUAcgBDAE8ATQBQAFUAVABFAFIAhsNQl6yc7BAlVHZKV8zMGaqqqqqqqqqqaM0KuFHl"
    "HJaqvJJ76+9qHAEBAAAAAAAAAAAAAAAAAACqqqqqqqqqqgAAAAACAAwARABvAG0AYQBpAG4AAQAMAFMAZQByAHYAZQBy"
    "AAAAAAAAAAAAxdrSVE/JeZCUzhzpC8nQPg==";

static size_t
unhex(const char *h, uint8_t *out, size_t cap)
{
    size_t n = 0;
    while (h[0] && h[1] && n < cap) {
        unsigned v;
        char tmp[3] = {h[0], h[1], 0};
        v = (unsigned)strtoul(tmp, NULL, 16);
        out[n++] = (uint8_t)v;
        h += 2;
    }
    return n;
}

static void
put16(uint8_t *p, unsigned v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

static void
put32(uint8_t *p, uint32_t v)
{
    put16(p, v & 0xffff);
    put16(p + 2, v >> 16);
}

static void
put_field(uint8_t *msg, size_t at, size_t len, size_t off)
{
    put16(msg + at, (unsigned)len);
    put16(msg + at + 2, (unsigned)len);
    put32(msg + at + 4, (uint32_t)off);
}

/* Appends s (ASCII) as UTF-16LE or OEM; returns bytes written. */
static size_t
put_name(uint8_t *p, const char *s, int unicode)
{
    size_t i, n = 0;
    for (i = 0; s[i]; i++) {
        p[n++] = (uint8_t)s[i];
        if (unicode)
            p[n++] = 0;
    }
    return n;
}

enum cbt_mode { NO_CBT, ZERO_CBT, HASH_CBT };

/*
 * Builds an NTLMv2 AUTHENTICATE: header (88 bytes with MIC, 72 without), then domain, user,
 * workstation, LmChallengeResponse (24 zero bytes) and an NtChallengeResponse whose AV list
 * holds MsvAvFlags = 2 when mic, MsvAvChannelBindings per cbt, and MsvAvEOL.
 */
static size_t
build_auth(uint8_t *msg, int mic, enum cbt_mode cbt, const uint8_t hash[16], const char *user,
           int unicode)
{
    size_t o = mic ? 88 : 72;
    size_t d_off, u_off, w_off, lm_off, nt_off, nt_len;
    uint32_t flags = 0xe2888215u | (unicode ? 1u : 0u);

    if (!unicode)
        flags = (flags & ~1u) | 2u;
    memset(msg, 0, 1024);
    memcpy(msg, "NTLMSSP\0", 8);
    put32(msg + 8, 3);
    d_off = o;
    o += put_name(msg + o, "CONTOSO", unicode);
    u_off = o;
    o += put_name(msg + o, user, unicode);
    w_off = o;
    o += put_name(msg + o, "WS01", unicode);
    lm_off = o;
    o += 24;
    nt_off = o;
    o += 16;        /* NTProofStr */
    msg[o] = 1;     /* RespType */
    msg[o + 1] = 1; /* HiRespType */
    o += 28;
    if (mic) {
        put16(msg + o, 6);
        put16(msg + o + 2, 4);
        put32(msg + o + 4, 2);
        o += 8;
    }
    if (cbt != NO_CBT) {
        put16(msg + o, 0x0a);
        put16(msg + o + 2, 16);
        if (cbt == HASH_CBT)
            memcpy(msg + o + 4, hash, 16);
        o += 20;
    }
    o += 4; /* MsvAvEOL */
    nt_len = o - nt_off;
    put_field(msg, 12, 24, lm_off);
    put_field(msg, 20, nt_len, nt_off);
    put_field(msg, 28, (u_off - d_off), d_off);
    put_field(msg, 36, (w_off - u_off), u_off);
    put_field(msg, 44, (lm_off - w_off), w_off);
    put_field(msg, 52, 0, o);
    put32(msg + 60, flags);
    return o;
}

static void
test_vectors(void **state)
{
    uint8_t buf[512];
    size_t n;
    struct ntlmmsg_info info;
    const char *why = NULL;
    static const uint8_t challenge[8] = {0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef};
    (void)state;

    n = unhex(neg_hex, buf, sizeof(buf));
    assert_int_equal(n, 40);
    assert_int_equal(ntlmmsg_inspect(buf, n, &info, &why), 0);
    assert_int_equal(info.type, NTLMMSG_NEGOTIATE);
    assert_int_equal(info.flags, 0xe20882b7u);

    n = unhex(chal_hex, buf, sizeof(buf));
    assert_int_equal(n, 104);
    assert_int_equal(ntlmmsg_inspect(buf, n, &info, &why), 0);
    assert_int_equal(info.type, NTLMMSG_CHALLENGE);
    assert_int_equal(info.flags, 0xe28a8233u);
    assert_memory_equal(info.server_challenge, challenge, 8);
    assert_int_equal(info.target_name.off, 0x38);
    assert_int_equal(info.target_name.len, 12);
    assert_int_equal(info.target_info.off, 0x44);
    assert_int_equal(info.target_info.len, 0x24);

    assert_int_equal(authb64_decode(auth_b64, strlen(auth_b64), buf, sizeof(buf), &n), 0);
    assert_int_equal(n, 232);
    assert_int_equal(ntlmmsg_inspect(buf, n, &info, &why), 0);
    assert_int_equal(info.type, NTLMMSG_AUTHENTICATE);
    assert_string_equal(info.user_text, "User");
    assert_string_equal(info.domain_text, "Domain");
    assert_string_equal(info.workstation_text, "COMPUTER");
    assert_true(info.ntlmv2);
    assert_false(info.mic_flagged);
    assert_int_equal(info.cbt, NTLMMSG_CBT_ABSENT);
    assert_int_equal(info.nt_response.len, 84);
    assert_int_equal(info.lm_response.len, 24);
    assert_int_equal(info.session_key.len, 16);
}

/* Every proper prefix of every vector is rejected, never read past. */
static void
test_every_prefix(void **state)
{
    uint8_t full[3][512];
    size_t lens[3], k, len;
    (void)state;
    lens[0] = unhex(neg_hex, full[0], sizeof(full[0]));
    lens[1] = unhex(chal_hex, full[1], sizeof(full[1]));
    assert_int_equal(authb64_decode(auth_b64, strlen(auth_b64), full[2], 512, &lens[2]), 0);
    for (k = 0; k < 3; k++) {
        for (len = 0; len < lens[k]; len++) {
            uint8_t *copy = malloc(len ? len : 1);
            struct ntlmmsg_info info;
            const char *why = NULL;
            memcpy(copy, full[k], len);
            if (ntlmmsg_inspect(copy, len, &info, &why) != -1)
                fail_msg("vector %zu prefix %zu accepted", k, len);
            assert_non_null(why);
            free(copy);
        }
    }
}

static void
test_mic_and_cbt(void **state)
{
    uint8_t msg[1024];
    uint8_t hash[16];
    size_t n, i;
    struct ntlmmsg_info info;
    const char *why;
    (void)state;
    for (i = 0; i < 16; i++)
        hash[i] = (uint8_t)(0xa0 + i);

    n = build_auth(msg, 1, HASH_CBT, hash, "alice", 1);
    assert_int_equal(ntlmmsg_inspect(msg, n, &info, &why), 0);
    assert_true(info.mic_flagged);
    assert_true(info.ntlmv2);
    assert_int_equal(info.cbt, NTLMMSG_CBT_PRESENT);
    assert_memory_equal(info.cbt_hash, hash, 16);
    assert_string_equal(info.user_text, "alice");
    assert_string_equal(info.domain_text, "CONTOSO");
    assert_string_equal(info.workstation_text, "WS01");

    n = build_auth(msg, 0, ZERO_CBT, hash, "bob", 1);
    assert_int_equal(ntlmmsg_inspect(msg, n, &info, &why), 0);
    assert_false(info.mic_flagged);
    assert_int_equal(info.cbt, NTLMMSG_CBT_ZERO);

    /* OEM names */
    n = build_auth(msg, 0, NO_CBT, hash, "carol", 0);
    assert_int_equal(ntlmmsg_inspect(msg, n, &info, &why), 0);
    assert_string_equal(info.user_text, "carol");
    assert_int_equal(info.cbt, NTLMMSG_CBT_ABSENT);
}

/* A corruption applied to a freshly built message, and whether inspection must fail. */
struct corrupt_case {
    const char *name;
    size_t at;
    uint8_t value;
};

static const struct corrupt_case corrupt_cases[] = {
    {"signature", 0, 'X'},
    {"type 4", 8, 4},
    {"user offset past end", 36 + 7, 0x7f},
    {"nt response length huge", 20 + 1, 0x40},
    {"domain length odd (UTF-16)", 28, 13},
    {"lm offset into the MIC", 12 + 4, 60},
};

static void
test_corruptions(void **state)
{
    uint8_t msg[1024], hash[16] = {1};
    size_t i, n;
    (void)state;
    for (i = 0; i < sizeof(corrupt_cases) / sizeof(corrupt_cases[0]); i++) {
        struct ntlmmsg_info info;
        const char *why = NULL;
        n = build_auth(msg, 1, HASH_CBT, hash, "alice", 1);
        assert_int_equal(ntlmmsg_inspect(msg, n, &info, &why), 0);
        msg[corrupt_cases[i].at] = corrupt_cases[i].value;
        if (ntlmmsg_inspect(msg, n, &info, &why) != -1)
            fail_msg("corruption '%s' accepted", corrupt_cases[i].name);
        assert_non_null(why);
    }
}

/* An AV pair whose length runs past the NT response. */
static void
test_av_pair_past_end(void **state)
{
    uint8_t msg[1024], hash[16] = {0};
    size_t n, nt_off;
    struct ntlmmsg_info info;
    const char *why;
    (void)state;
    n = build_auth(msg, 0, NO_CBT, hash, "u", 1);
    nt_off = (size_t)msg[24] | (size_t)msg[25] << 8;
    /* the EOL pair becomes id 1 with length 200 */
    put16(msg + nt_off + 44, 1);
    put16(msg + nt_off + 46, 200);
    assert_int_equal(ntlmmsg_inspect(msg, n, &info, &why), -1);
}

static void
test_long_name_is_cut(void **state)
{
    uint8_t msg[1024], hash[16] = {0};
    char user[300];
    size_t n;
    struct ntlmmsg_info info;
    const char *why;
    (void)state;
    memset(user, 'x', 200);
    user[200] = '\0';
    n = build_auth(msg, 0, NO_CBT, hash, user, 1);
    assert_int_equal(ntlmmsg_inspect(msg, n, &info, &why), 0);
    assert_int_equal(strlen(info.user_text), NTLMMSG_NAME_MAX - 1);
}

static void
test_type_of(void **state)
{
    uint8_t buf[64];
    size_t n = unhex(chal_hex, buf, sizeof(buf));
    (void)state;
    (void)n;
    assert_int_equal(ntlmmsg_type_of(buf, 12), NTLMMSG_CHALLENGE);
    assert_int_equal(ntlmmsg_type_of(buf, 11), NTLMMSG_NONE);
    assert_true(ntlmmsg_is_ntlmssp(buf, 8));
    assert_false(ntlmmsg_is_ntlmssp(buf, 7));
}

/*
 * Channel-binding hash. Expected value computed with python3 (hashlib):
 *   h   = sha256(b"exshim test certificate").digest()
 *       = 2c3af23e3f85d102c8117586025d3e99db987357022def4525ae3468c939c0b8
 *   app = b"tls-server-end-point:" + h                      (53 bytes)
 *   md5(struct.pack("<IIIII", 0, 0, 0, 0, len(app)) + app)
 *       = 2ab547be94e9ae0e360ed5e790b154eb
 */
static void
test_cbt_expected(void **state)
{
    uint8_t h[32], want[16], got[16];
    (void)state;
    unhex("2c3af23e3f85d102c8117586025d3e99db987357022def4525ae3468c939c0b8", h, 32);
    unhex("2ab547be94e9ae0e360ed5e790b154eb", want, 16);
    assert_int_equal(ntlmmsg_cbt_expected(h, 32, got), 0);
    assert_memory_equal(got, want, 16);
    /* a different hash gives a different binding */
    h[0] ^= 1;
    assert_int_equal(ntlmmsg_cbt_expected(h, 32, got), 0);
    assert_memory_not_equal(got, want, 16);
    assert_int_equal(ntlmmsg_cbt_expected(h, 0, got), -1);
    assert_int_equal(ntlmmsg_cbt_expected(h, 65, got), -1);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_vectors),          cmocka_unit_test(test_every_prefix),
        cmocka_unit_test(test_mic_and_cbt),      cmocka_unit_test(test_corruptions),
        cmocka_unit_test(test_av_pair_past_end), cmocka_unit_test(test_long_name_is_cut),
        cmocka_unit_test(test_type_of),          cmocka_unit_test(test_cbt_expected),
    };
    return cmocka_run_group_tests_name("auth_ntlm", tests, NULL, NULL);
}
