/*
 * Known-answer tests for the exshim-lab NTLM acceptor (bench/lab/lab_ntlm.c), with the
 * MS-NLMP section 4.2 values for User / Domain / Password.
 *
 * The lab's objects are not in the unit-test link line, so the module is compiled into this
 * binary directly (it depends on libcrypto only).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <openssl/provider.h>

#include "bench/lab/lab_ntlm.c"

static const uint8_t server_challenge[8] = {0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef};

static size_t
unhex(const char *h, uint8_t *out, size_t cap)
{
    size_t n = 0;
    while (h[0] && h[1] && n < cap) {
        unsigned v;
        sscanf(h, "%2x", &v);
        out[n++] = (uint8_t)v;
        h += 2;
    }
    return n;
}

static void
assert_hex(const uint8_t *got, const char *want_hex)
{
    uint8_t want[64];
    size_t n = unhex(want_hex, want, sizeof(want));
    assert_memory_equal(got, want, n);
}

static OSSL_PROVIDER *prov_legacy, *prov_default;

/* MD4, DES and RC4 live in OpenSSL 3's legacy provider. */
static int
setup_providers(void **state)
{
    (void)state;
    prov_legacy = OSSL_PROVIDER_load(NULL, "legacy");
    prov_default = OSSL_PROVIDER_load(NULL, "default");
    return prov_legacy && prov_default ? 0 : -1;
}

static int
teardown_providers(void **state)
{
    (void)state;
    OSSL_PROVIDER_unload(prov_legacy);
    OSSL_PROVIDER_unload(prov_default);
    return 0;
}

static void
test_nt_hash(void **state)
{
    uint8_t h[16];
    (void)state;
    assert_int_equal(lab_ntlm_nt_hash("Password", h), 0);
    assert_hex(h, "a4f49c406510bdcab6824ee7c30fd852"); /* MS-NLMP 4.2.2.1.2 */
}

static void
test_ntowfv2_and_proof(void **state)
{
    uint8_t h[16], owf[16], proof[16], sbk[16];
    /* MS-NLMP 4.2.4.1.3 blob: 0101 0000 | 0000 0000 | time 0 | client challenge aa.. |
     * 0000 0000 | AV pairs of the 4.2.4 CHALLENGE | 0000 0000 */
    uint8_t blob[128];
    size_t bl = unhex("0101000000000000"
                      "0000000000000000"
                      "aaaaaaaaaaaaaaaa"
                      "00000000"
                      "02000c0044006f006d00610069006e00"
                      "01000c005300650072007600650072000000"
                      "0000"
                      "00000000",
                      blob, sizeof(blob));
    (void)state;
    assert_int_equal(lab_ntlm_nt_hash("Password", h), 0);
    assert_int_equal(lab_ntlm_ntowfv2(h, "User", "Domain", owf), 0);
    assert_hex(owf, "0c868a403bfd7a93a3001ef22ef02e3f"); /* 4.2.4.1.1 */
    assert_int_equal(lab_ntlm_hmac_md5(owf, 16, server_challenge, 8, blob, bl, proof), 0);
    assert_hex(proof, "68cd0ab851e51c96aabc927bebef6a1c"); /* 4.2.4.2.2 */
    assert_int_equal(lab_ntlm_hmac_md5(owf, 16, proof, 16, NULL, 0, sbk), 0);
    assert_hex(sbk, "8de40ccadbc14a82f15cb0ad0de95ca3"); /* 4.2.4.1.2 */
}

static void
test_v1_responses(void **state)
{
    uint8_t h[16], r[24], md[16], buf[16];
    (void)state;
    assert_int_equal(lab_ntlm_nt_hash("Password", h), 0);
    assert_int_equal(lab_ntlm_desl(h, server_challenge, r), 0);
    assert_hex(r, "67c43011f30298a2ad35ece64f16331c44bdbed927841f94"); /* 4.2.2.2.1 */
    /* 4.2.3.2.2: extended session security, client challenge aa.. */
    memcpy(buf, server_challenge, 8);
    memset(buf + 8, 0xaa, 8);
    assert_int_equal(digest("MD5", buf, 16, md), 0);
    assert_int_equal(lab_ntlm_desl(h, md, r), 0);
    assert_hex(r, "7537f803ae367128ca458204bde7caf81e97ed2683267232");
}

static void
test_rc4_session_key(void **state)
{
    uint8_t sbk[16], key[16], enc[16];
    (void)state;
    unhex("8de40ccadbc14a82f15cb0ad0de95ca3", sbk, 16);
    memset(key, 0x55, 16);
    assert_int_equal(lab_ntlm_rc4(sbk, key, 16, enc), 0);
    assert_hex(enc, "c5dad2544fc9799094ce1ce90bc9d03e"); /* 4.2.4.2.3 */
}

/* The whole 4.2.4.3 AUTHENTICATE (NTLMv2, KEY_EXCH, no MIC), verified as a server would. */
static const char auth_b64[] =
    "TlRMTVNTUAADAAAAGAAYAGwAAABUAFQAhAAAAAwADABIAAAACAAIAFQAAAAQABAAXAAAABAAEADYAAAANYKI4gUBKAoA"
    "AAAPRABvAG0AYQBpAG4AVQBzAGUAcgBDAE8ATQBQAFUAVABFAFIAhsNQl6yc7BAlVHZKV8zMGaqqqqqqqqqqaM0KuFHlH"
    "JaqvJJ76+9qHAEBAAAAAAAAAAAAAAAAAACqqqqqqqqqqgAAAAACAAwARABvAG0AYQBpAG4AAQAMAFMAZQByAHYAZQBy"
    "AAAAAAAAAAAAxdrSVE/JeZCUzhzpC8nQPg==";

static size_t
b64(const char *in, uint8_t *out)
{
    return (size_t)EVP_DecodeBlock(out, (const unsigned char *)in, (int)strlen(in)) - 2; /* "==" */
}

static void
verify_with(const char *domain, const char *password, bool allow_v1, enum lab_epa epa,
            struct lab_ntlm_result *res)
{
    static struct lab_ntlm st;
    struct lab_user u = {(char *)domain, (char *)"user", (char *)password};
    struct lab_users users = {&u, 1};
    struct lab_ntlm_policy pol = {allow_v1, epa, NULL, 0};
    uint8_t msg[512];
    size_t n = b64(auth_b64, msg);
    assert_int_equal(n, 232);
    memset(&st, 0, sizeof(st));
    memcpy(st.server_challenge, server_challenge, 8);
    st.challenged = true;
    lab_ntlm_verify(&st, msg, n, &users, &pol, res);
}

static void
test_verify_known_authenticate(void **state)
{
    struct lab_ntlm_result res;
    uint8_t k[16];
    (void)state;
    verify_with("DOMAIN", "Password", false, LAB_EPA_NONE, &res);
    assert_true(res.ok);
    assert_string_equal(res.info.user, "User");
    assert_true(res.info.v2);
    assert_int_equal(res.mic, LAB_NTLM_MIC_ABSENT);
    memset(k, 0x55, 16);
    assert_memory_equal(res.exported_key, k, 16);

    verify_with("Domain", "wrong", true, LAB_EPA_NONE, &res);
    assert_false(res.ok);
    assert_string_equal(res.reason, "bad-credentials");

    verify_with("OTHER", "Password", true, LAB_EPA_NONE, &res);
    assert_false(res.ok);

    /* Extended Protection required: a client that sent no channel binding is refused */
    verify_with("Domain", "Password", true, LAB_EPA_REQUIRE, &res);
    assert_false(res.ok);
    assert_string_equal(res.reason, "epa-cbt-absent");
}

/* curl 7.88's NEGOTIATE: 32 bytes, no Version. The CHALLENGE must still come out well formed. */
static void
test_challenge_for_curl_layout(void **state)
{
    static struct lab_ntlm st;
    uint8_t neg[32];
    const char *why = NULL;
    struct lab_ntlm_names names = {"LAB", "EXLAB01", "lab.test", "exlab01.lab.test"};
    (void)state;
    unhex("4e544c4d53535000010000000682080000000000000000000000000000000000", neg, 32);
    assert_int_equal(lab_ntlm_challenge(&st, neg, 32, &names, server_challenge, 0, &why), 0);
    assert_memory_equal(st.chal, "NTLMSSP\0\2\0\0\0", 12);
    assert_memory_equal(st.chal + 24, server_challenge, 8);
    uint32_t flags = rd32(st.chal + 20);
    assert_true(flags & FL_TARGET_INFO);
    assert_true(flags & FL_OEM);
    uint16_t til = rd16(st.chal + 40);
    uint32_t tio = rd32(st.chal + 44);
    assert_true(tio + til == st.chal_len);
    /* too short or wrong type */
    assert_int_equal(lab_ntlm_challenge(&st, neg, 12, &names, server_challenge, 0, &why), -1);
    neg[8] = 3;
    assert_int_equal(lab_ntlm_challenge(&st, neg, 32, &names, server_challenge, 0, &why), -1);
}

/* A full NTLMv2 exchange with a MIC and KEY_EXCH, recorded from python3-ntlm-auth (user
 * LAB\alice, password Passw0rd!) against this acceptor's own CHALLENGE. */
static const char mic_neg_hex[] =
    "4e544c4d535350000100000032b088e203000300280000000b000b002b0000000601b11d0000000f4c414257"
    "4f524b53544154494f4e";
static const char mic_chal_hex[] =
    "4e544c4d53535000020000000300030038000000368289e2049512d223abf66b000000000000000078007800"
    "3b0000000a0063450000000f4c4142020006004c004100420001000e00450058004c00410042003000310004"
    "0010006c00610062002e00740065007300740003002000650078006c0061006200300031002e006c00610062"
    "002e007400650073007400050010006c00610062002e0074006500730074000700080080ed9a18e3b19d0100"
    "000000";
static const char mic_auth_hex[] =
    "4e544c4d5353500003000000180018006b000000b000b000830000000300030058000000050005005b000000"
    "0b000b00600000001000100033010000368289e20601b11d0000000f6976ae7d89e68599d01b97456ab95a59"
    "4c4142616c696365574f524b53544154494f4e000000000000000000000000000000000000000000000000ac"
    "b467b2ee1b62a74f79dff06feb657d010100000000000080ed9a18e3b19d01150c4f3ec846c0e40000000002"
    "0006004c004100420001000e00450058004c004100420030003100040010006c00610062002e007400650073"
    "00740003002000650078006c0061006200300031002e006c00610062002e007400650073007400050010006c"
    "00610062002e0074006500730074000700080080ed9a18e3b19d010600040002000000000000000000000073"
    "fe4b7a784c80e6402e27a9cf744074";

static void
load_exchange(struct lab_ntlm *st, uint8_t *auth, size_t *alen)
{
    memset(st, 0, sizeof(*st));
    st->neg_len = unhex(mic_neg_hex, st->neg, sizeof(st->neg));
    st->chal_len = unhex(mic_chal_hex, st->chal, sizeof(st->chal));
    memcpy(st->server_challenge, st->chal + 24, 8);
    st->challenged = true;
    *alen = unhex(mic_auth_hex, auth, LAB_NTLM_MAX_MSG);
}

static void
test_verify_mic(void **state)
{
    static struct lab_ntlm st;
    static uint8_t auth[LAB_NTLM_MAX_MSG];
    size_t alen;
    struct lab_user u = {(char *)"LAB", (char *)"alice", (char *)"Passw0rd!"};
    struct lab_users users = {&u, 1};
    struct lab_ntlm_policy pol = {true, LAB_EPA_NONE, NULL, 0};
    struct lab_ntlm_result res;
    (void)state;

    load_exchange(&st, auth, &alen);
    lab_ntlm_verify(&st, auth, alen, &users, &pol, &res);
    assert_true(res.ok);
    assert_int_equal(res.mic, LAB_NTLM_MIC_OK);
    assert_true(res.info.mic_flagged);

    /* any byte of any of the three messages changed: the MIC no longer matches */
    st.neg[st.neg_len - 1] ^= 1;
    lab_ntlm_verify(&st, auth, alen, &users, &pol, &res);
    assert_false(res.ok);
    assert_int_equal(res.mic, LAB_NTLM_MIC_BAD);
    assert_string_equal(res.reason, "mic-mismatch");

    load_exchange(&st, auth, &alen);
    st.chal[st.chal_len - 5] ^= 1; /* inside the timestamp AV pair */
    lab_ntlm_verify(&st, auth, alen, &users, &pol, &res);
    assert_int_equal(res.mic, LAB_NTLM_MIC_BAD);

    load_exchange(&st, auth, &alen);
    auth[alen - 1] ^= 1; /* the workstation name, inside the AUTHENTICATE */
    lab_ntlm_verify(&st, auth, alen, &users, &pol, &res);
    assert_false(res.ok);

    /* wrong password for the right user */
    load_exchange(&st, auth, &alen);
    u.password = (char *)"Passw0rd?";
    lab_ntlm_verify(&st, auth, alen, &users, &pol, &res);
    assert_false(res.ok);
    assert_string_equal(res.reason, "bad-credentials");
}

/* Every truncation of a valid AUTHENTICATE is refused without reading past its end. */
static void
test_truncated_authenticate(void **state)
{
    static struct lab_ntlm st;
    static uint8_t auth[LAB_NTLM_MAX_MSG];
    size_t alen;
    struct lab_user u = {(char *)"LAB", (char *)"alice", (char *)"Passw0rd!"};
    struct lab_users users = {&u, 1};
    struct lab_ntlm_policy pol = {true, LAB_EPA_NONE, NULL, 0};
    struct lab_ntlm_result res;
    (void)state;
    load_exchange(&st, auth, &alen);
    for (size_t n = 0; n < alen; n++) {
        uint8_t *copy = malloc(n ? n : 1);
        memcpy(copy, auth, n);
        lab_ntlm_verify(&st, copy, n, &users, &pol, &res);
        assert_false(res.ok);
        free(copy);
    }
}

static void
test_cbt_hash(void **state)
{
    uint8_t h[32], out[16];
    (void)state;
    memset(h, 0, sizeof(h));
    assert_int_equal(lab_ntlm_cbt_hash(h, 32, out), 0);
    assert_int_equal(lab_ntlm_cbt_hash(h, 0, out), -1);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_nt_hash),
        cmocka_unit_test(test_ntowfv2_and_proof),
        cmocka_unit_test(test_v1_responses),
        cmocka_unit_test(test_rc4_session_key),
        cmocka_unit_test(test_verify_known_authenticate),
        cmocka_unit_test(test_challenge_for_curl_layout),
        cmocka_unit_test(test_cbt_hash),
        cmocka_unit_test(test_verify_mic),
        cmocka_unit_test(test_truncated_authenticate),
    };
    return cmocka_run_group_tests(tests, setup_providers, teardown_providers);
}
