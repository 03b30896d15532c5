/*
 * Unit tests for auth/spnego.c: the PROTOCOLS.md C.4 vectors (classification and byte-exact
 * writers), malformed DER, every-prefix truncation.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "auth/spnego.h"

#define NEG "4e544c4d5353500001000000b78208e2000000000000000000000000000000000a00614a0000000f"
#define CHAL                                                                                       \
    "4e544c4d53535000020000000c000c003800000033828ae20123456789abcdef0000000000000000"             \
    "2400240044000000060070170000000f53006500720076006500720002000c0044006f006d006100"             \
    "69006e0001000c0053006500720076006500720000000000"
/* A 232-byte AUTHENTICATE stand-in: only its first 12 bytes matter to SPNEGO. */
#define AUTH12 "4e544c4d5353500003000000"

static size_t
unhex(const char *h, uint8_t *out, size_t cap)
{
    size_t n = 0;
    while (h[0] && h[1] && n < cap) {
        char tmp[3] = {h[0], h[1], 0};
        out[n++] = (uint8_t)strtoul(tmp, NULL, 16);
        h += 2;
    }
    return n;
}

struct peek_case {
    const char *name;
    const char *hex;
    int rc;
    enum spnego_kind kind;
    enum spnego_mech first;
    unsigned mechs;
    size_t nmechs;
    int neg_state;
    enum spnego_mech supported;
    enum spnego_inner inner;
    int inner_type;
    size_t inner_len;
    bool mic;
    const char *describe;
};

#define B(m) SPNEGO_MECHBIT(SPNEGO_MECH_##m)
#define ABS SPNEGO_NEGSTATE_ABSENT

static const struct peek_case peek_cases[] = {
    {"raw NEGOTIATE", NEG, 0, SPNEGO_RAW_NTLM, 0, 0, 0, ABS, 0, 0, 0, 0, false, "ntlm1"},
    {"init [NTLM] + NEGOTIATE",
     "604806062b0601050502a03e303ca00e300c060a2b06010401823702020aa22a0428" NEG, 0, SPNEGO_INIT,
     SPNEGO_MECH_NTLM, B(NTLM), 1, ABS, 0, SPNEGO_INNER_NTLM, 1, 40, false,
     "spnego-init[ntlm]+ntlm1"},
    {"init [NTLM,MSKRB5,KRB5,NEGOEX] + NEGOTIATE",
     "606a06062b0601050502a060305ea030302e060a2b06010401823702020a06092a864882f712010202"
     "06092a864886f712010202060a2b06010401823702021ea22a0428" NEG,
     0, SPNEGO_INIT, SPNEGO_MECH_NTLM, B(NTLM) | B(MSKRB5) | B(KRB5) | B(NEGOEX), 4, ABS, 0,
     SPNEGO_INNER_NTLM, 1, 40, false, "spnego-init[ntlm,mskrb5,krb5,negoex]+ntlm1"},
    {"resp accept-incomplete + CHALLENGE",
     "a18181307fa0030a0101a10c060a2b06010401823702020aa26a0468" CHAL, 0, SPNEGO_RESP, 0, 0, 0, 1,
     SPNEGO_MECH_NTLM, SPNEGO_INNER_NTLM, 2, 104, false, "spnego-resp(1)+ntlm2"},
    {"resp third leg (short AUTHENTICATE)", "a1143012a2100e0e" AUTH12 "0000", -1, 0, 0, 0, 0, ABS,
     0, 0, 0, 0, false, NULL},
    {"resp with responseToken + MIC (Windows 3rd leg shape)",
     "a12b3029a0030a0101a20e040c" AUTH12 "a3120410010000000102030405060708090a0b0c", 0, SPNEGO_RESP,
     0, 0, 0, 1, SPNEGO_MECH_NONE, SPNEGO_INNER_NTLM, 3, 12, true, "spnego-resp(1)+ntlm3"},
    {"accept-completed", "a1073005a0030a0100", 0, SPNEGO_RESP, 0, 0, 0, 0, 0, SPNEGO_INNER_NONE, 0,
     0, false, "spnego-resp(0)+none"},
    {"accept-completed + NTLM MIC (IIS 200)",
     "a11b3019a0030a0100a312041001000000"
     "4387e088c136e3a900000000",
     0, SPNEGO_RESP, 0, 0, 0, 0, 0, SPNEGO_INNER_NONE, 0, 0, true, "spnego-resp(0)+none"},
    {"reject", "a1073005a0030a0102", 0, SPNEGO_RESP, 0, 0, 0, 2, 0, SPNEGO_INNER_NONE, 0, 0, false,
     "spnego-resp(2)+none"},
    {"raw Kerberos framing", "600f06092a864886f71201020201006e00", 0, SPNEGO_RAW_KERBEROS, 0, 0, 0,
     ABS, 0, 0, 0, 0, false, "kerberos"},
    {"init Windows order + Kerberos mechToken",
     "605306062b0601050502a0493047a030302e06092a864882f71201020206092a864886f712010202"
     "060a2b06010401823702021e060a2b06010401823702020aa2130411600f06092a864886f71201020201006e00",
     0, SPNEGO_INIT, SPNEGO_MECH_MSKRB5, B(NTLM) | B(MSKRB5) | B(KRB5) | B(NEGOEX), 4, ABS, 0,
     SPNEGO_INNER_KERBEROS, 0, 17, false, "spnego-init[mskrb5,krb5,negoex,ntlm]+kerberos"},
    {"bare a0 NegTokenInit without mechToken", "a00c300aa0083006060401020304", 0, SPNEGO_INIT,
     SPNEGO_MECH_OTHER, B(OTHER), 1, ABS, 0, SPNEGO_INNER_NONE, 0, 0, false,
     "spnego-init[other]+none"},
    {"unknown first byte", "01020304", 0, SPNEGO_UNKNOWN, 0, 0, 0, ABS, 0, 0, 0, 0, false,
     "unknown"},
    {"GSS token, other OID", "6005060304050600", -1, 0, 0, 0, 0, ABS, 0, 0, 0, 0, false, NULL},
    {"GSS token, other OID, well formed", "6004060204050000", -1, 0, 0, 0, 0, ABS, 0, 0, 0, 0,
     false, NULL},
    {"GSS token, unknown mech", "600406020405", 0, SPNEGO_UNKNOWN, 0, 0, 0, ABS, 0, 0, 0, 0, false,
     "unknown"},
    /* malformed */
    {"empty", "", -1, 0, 0, 0, 0, ABS, 0, 0, 0, 0, false, NULL},
    {"truncated NTLMSSP", "4e544c4d5353500001", -1, 0, 0, 0, 0, ABS, 0, 0, 0, 0, false, NULL},
    {"indefinite length", "a1803005a0030a01000000", -1, 0, 0, 0, 0, ABS, 0, 0, 0, 0, false, NULL},
    {"5-byte length", "a1850000000009", -1, 0, 0, 0, 0, ABS, 0, 0, 0, 0, false, NULL},
    {"length past end", "a1093005a0030a0100", -1, 0, 0, 0, 0, ABS, 0, 0, 0, 0, false, NULL},
    {"trailing bytes", "a1073005a0030a010000", -1, 0, 0, 0, 0, ABS, 0, 0, 0, 0, false, NULL},
    {"inner trailing bytes", "a1083006a0030a010000", -1, 0, 0, 0, 0, ABS, 0, 0, 0, 0, false, NULL},
    {"high tag number", "a1053003bf0100", -1, 0, 0, 0, 0, ABS, 0, 0, 0, 0, false, NULL},
    {"out-of-order elements", "a10c300aa2020400a0030a0101", -1, 0, 0, 0, 0, ABS, 0, 0, 0, 0, false,
     NULL},
    {"negState two bytes", "a1083006a0040a020001", -1, 0, 0, 0, 0, ABS, 0, 0, 0, 0, false, NULL},
    {"mechTypes entry not an OID", "a0083006a00430020400", -1, 0, 0, 0, 0, ABS, 0, 0, 0, 0, false,
     NULL},
    {"init without mechTypes", "a0063004a2020400", -1, 0, 0, 0, 0, ABS, 0, 0, 0, 0, false, NULL},
    {"SPNEGO OID then a1", "600d06062b0601050502a1033001", -1, 0, 0, 0, 0, ABS, 0, 0, 0, 0, false,
     NULL},
};

static void
assert_view_inside(const uint8_t *buf, size_t len, struct spnego_view v)
{
    if (v.len == 0)
        return;
    assert_true(v.p >= buf);
    assert_true((size_t)(v.p - buf) <= len);
    assert_true(v.len <= len - (size_t)(v.p - buf));
}

static void
test_peek_table(void **state)
{
    size_t i;
    (void)state;
    for (i = 0; i < sizeof(peek_cases) / sizeof(peek_cases[0]); i++) {
        const struct peek_case *c = &peek_cases[i];
        uint8_t buf[512];
        size_t n = unhex(c->hex, buf, sizeof(buf));
        struct spnego_token t;
        const char *why = NULL;
        char desc[128];
        int rc = spnego_peek(buf, n, &t, &why);
        if (rc != c->rc)
            fail_msg("case '%s': rc %d want %d (%s)", c->name, rc, c->rc, why ? why : "");
        if (rc != 0) {
            assert_non_null(why);
            continue;
        }
        if (t.kind != c->kind || t.first_mech != c->first || t.mechs != c->mechs ||
            t.nmechs != c->nmechs || t.neg_state != c->neg_state ||
            t.supported_mech != c->supported || t.inner_kind != c->inner || t.has_mic != c->mic ||
            t.inner.len != c->inner_len)
            fail_msg("case '%s': kind %d first %d mechs %x n %zu state %d sup %d inner %d/%zu "
                     "mic %d",
                     c->name, t.kind, t.first_mech, t.mechs, t.nmechs, t.neg_state,
                     t.supported_mech, t.inner_kind, t.inner.len, t.has_mic);
        if (c->inner == SPNEGO_INNER_NTLM)
            assert_int_equal(t.inner_ntlm_type, c->inner_type);
        if (c->kind == SPNEGO_RAW_NTLM)
            assert_int_equal(t.ntlm_type, 1);
        assert_view_inside(buf, n, t.inner);
        assert_view_inside(buf, n, t.mic);
        assert_view_inside(buf, n, t.mech_types);
        spnego_describe(&t, desc, sizeof(desc));
        if (strcmp(desc, c->describe) != 0)
            fail_msg("case '%s': describe '%s' want '%s'", c->name, desc, c->describe);
    }
}

/* mechListMIC input: the MechTypeList SEQUENCE exactly as sent. */
static void
test_mech_types_view(void **state)
{
    uint8_t buf[256], want[16];
    size_t n = unhex("604806062b0601050502a03e303ca00e300c060a2b06010401823702020aa22a0428" NEG,
                     buf, sizeof(buf));
    size_t wn = unhex("300c060a2b06010401823702020a", want, sizeof(want));
    struct spnego_token t;
    const char *why;
    (void)state;
    assert_int_equal(spnego_peek(buf, n, &t, &why), 0);
    assert_int_equal(t.mech_types.len, wn);
    assert_memory_equal(t.mech_types.p, want, wn);
    assert_memory_equal(t.inner.p, buf + 34, 40);
}

/* Every proper prefix of each SPNEGO / Kerberos vector is an error. */
static void
test_every_prefix(void **state)
{
    size_t i, len;
    (void)state;
    for (i = 0; i < sizeof(peek_cases) / sizeof(peek_cases[0]); i++) {
        const struct peek_case *c = &peek_cases[i];
        uint8_t full[512];
        size_t n;
        if (c->rc != 0 ||
            (c->kind != SPNEGO_INIT && c->kind != SPNEGO_RESP && c->kind != SPNEGO_RAW_KERBEROS))
            continue;
        n = unhex(c->hex, full, sizeof(full));
        for (len = 0; len < n; len++) {
            uint8_t *copy = malloc(len ? len : 1);
            struct spnego_token t;
            const char *why = NULL;
            memcpy(copy, full, len);
            if (spnego_peek(copy, len, &t, &why) != -1)
                fail_msg("case '%s': prefix %zu accepted", c->name, len);
            free(copy);
        }
    }
}

static void
test_wrap_challenge_vector(void **state)
{
    uint8_t chal[128], want[256], out[256];
    size_t cn = unhex(CHAL, chal, sizeof(chal));
    size_t wn =
        unhex("a18181307fa0030a0101a10c060a2b06010401823702020aa26a0468" CHAL, want, sizeof(want));
    size_t len = 0;
    (void)state;
    assert_int_equal(spnego_wrap_ntlm(chal, cn, out, sizeof(out), &len), 0);
    assert_int_equal(len, 132);
    assert_int_equal(len, wn);
    assert_memory_equal(out, want, wn);
    /* one byte short */
    assert_int_equal(spnego_wrap_ntlm(chal, cn, out, wn - 1, &len), -1);
    assert_int_equal(spnego_wrap_ntlm(chal, 0, out, sizeof(out), &len), -1);
}

static void
test_accept_completed_vector(void **state)
{
    uint8_t out[16], want[16];
    size_t len = 0, wn = unhex("a1073005a0030a0100", want, sizeof(want));
    (void)state;
    assert_int_equal(spnego_accept_completed(out, sizeof(out), &len), 0);
    assert_int_equal(len, wn);
    assert_memory_equal(out, want, wn);
    assert_int_equal(spnego_accept_completed(out, 8, &len), -1);
}

/* Wrapped messages of every length class (1-, 2-, 3-byte DER lengths) read back. */
static void
test_wrap_roundtrip_sizes(void **state)
{
    static const size_t sizes[] = {12, 100, 127, 128, 200, 232, 255, 256, 1000, 65535, 65536};
    static uint8_t msg[65536 + 8], out[65536 + 64];
    size_t i, len;
    (void)state;
    for (i = 0; i < sizeof(msg); i++)
        msg[i] = (uint8_t)i;
    memcpy(msg, "NTLMSSP\0\2\0\0\0", 12);
    for (i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        struct spnego_token t;
        const char *why;
        size_t exact = spnego_wrap_ntlm_size(sizes[i]);
        assert_int_equal(spnego_wrap_ntlm(msg, sizes[i], out, exact - 1, &len), -1);
        assert_int_equal(spnego_wrap_ntlm(msg, sizes[i], out, exact, &len), 0);
        assert_int_equal(len, exact);
        assert_int_equal(spnego_peek(out, len, &t, &why), 0);
        assert_int_equal(t.kind, SPNEGO_RESP);
        assert_int_equal(t.neg_state, SPNEGO_ACCEPT_INCOMPLETE);
        assert_int_equal(t.supported_mech, SPNEGO_MECH_NTLM);
        assert_int_equal(t.inner_kind, SPNEGO_INNER_NTLM);
        assert_int_equal(t.inner_ntlm_type, 2);
        assert_int_equal(t.inner.len, sizes[i]);
        assert_memory_equal(t.inner.p, msg, sizes[i]);
    }
    assert_int_equal(spnego_wrap_ntlm(msg, SPNEGO_MAX_INNER + 1, out, sizeof(out), &len), -1);
}

static void
test_describe_small_buffer(void **state)
{
    uint8_t buf[256];
    size_t n = unhex("606a06062b0601050502a060305ea030302e060a2b06010401823702020a06092a864882f7"
                     "1201020206092a864886f712010202060a2b06010401823702021ea22a0428" NEG,
                     buf, sizeof(buf));
    struct spnego_token t;
    const char *why;
    char small[8];
    (void)state;
    assert_int_equal(spnego_peek(buf, n, &t, &why), 0);
    spnego_describe(&t, small, sizeof(small));
    assert_int_equal(strlen(small), 7);
    assert_string_equal(small, "spnego-");
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_peek_table),
        cmocka_unit_test(test_mech_types_view),
        cmocka_unit_test(test_every_prefix),
        cmocka_unit_test(test_wrap_challenge_vector),
        cmocka_unit_test(test_accept_completed_vector),
        cmocka_unit_test(test_wrap_roundtrip_sizes),
        cmocka_unit_test(test_describe_small_buffer),
    };
    return cmocka_run_group_tests_name("auth_spnego", tests, NULL, NULL);
}
