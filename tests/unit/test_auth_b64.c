/* Unit tests for auth/b64.c: strict decoding table, encoder round trips, caps. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "auth/b64.h"

struct decode_case {
    const char *name;
    const char *in;
    int rc;
    const char *out; /* when rc == 0 */
};

static const struct decode_case decode_cases[] = {
    {"one byte", "Zg==", 0, "f"},
    {"two bytes", "Zm8=", 0, "fo"},
    {"three bytes", "Zm9v", 0, "foo"},
    {"six bytes", "Zm9vYmFy", 0, "foobar"},
    {"plus and slash", "+/+/", 0, "\xfb\xff\xbf"},
    {"empty", "", -1, NULL},
    {"length not multiple of 4", "Zm9", -1, NULL},
    {"missing padding", "Zg", -1, NULL},
    {"three pads", "Z===", -1, NULL},
    {"pad in the middle", "Zg==Zm9v", -1, NULL},
    {"pad then data", "Zm=v", -1, NULL},
    {"non-zero bits under pad (2)", "Zh==", -1, NULL},
    {"non-zero bits under pad (1)", "Zm9=", -1, NULL},
    {"url-safe alphabet", "Zm9-", -1, NULL},
    {"space", "Zm 9", -1, NULL},
    {"newline", "Zm9v\n", -1, NULL},
    {"NUL byte", "Zm\0v", -1, NULL},
    {"leading pad", "=Zm9", -1, NULL},
    {"high byte", "Zm9\xc3", -1, NULL},
};

static void
test_decode_table(void **state)
{
    size_t i;
    (void)state;
    for (i = 0; i < sizeof(decode_cases) / sizeof(decode_cases[0]); i++) {
        const struct decode_case *c = &decode_cases[i];
        uint8_t out[64];
        size_t len = 999;
        size_t inlen = strlen(c->in);
        int rc;
        if (strcmp(c->name, "NUL byte") == 0)
            inlen = 4;
        rc = authb64_decode(c->in, inlen, out, sizeof(out), &len);
        if (rc != c->rc)
            fail_msg("case '%s': rc %d, want %d", c->name, rc, c->rc);
        if (rc == 0) {
            assert_int_equal(len, strlen(c->out));
            assert_memory_equal(out, c->out, len);
        } else {
            assert_int_equal(len, 999); /* untouched on failure */
        }
    }
}

static void
test_roundtrip_all_lengths(void **state)
{
    uint8_t in[200], back[200];
    char enc[300];
    size_t n, i, elen, blen;
    (void)state;
    for (i = 0; i < sizeof(in); i++)
        in[i] = (uint8_t)(i * 37 + 11);
    for (n = 1; n <= sizeof(in); n++) {
        assert_int_equal(authb64_encode(in, n, enc, sizeof(enc), &elen), 0);
        assert_int_equal(elen, authb64_encoded_len(n));
        assert_int_equal(enc[elen], '\0');
        assert_int_equal(authb64_decode(enc, elen, back, sizeof(back), &blen), 0);
        assert_int_equal(blen, n);
        assert_memory_equal(back, in, n);
        assert_true(authb64_decoded_cap(elen) >= n);
    }
}

static void
test_caps(void **state)
{
    uint8_t out[2];
    char enc[8];
    size_t len;
    static char big[AUTHB64_MAX_ENCODED + 4];
    (void)state;
    /* output does not fit */
    assert_int_equal(authb64_decode("Zm9v", 4, out, sizeof(out), &len), -1);
    /* encoder needs room for the NUL */
    assert_int_equal(authb64_encode((const uint8_t *)"foo", 3, enc, 4, &len), -1);
    assert_int_equal(authb64_encode((const uint8_t *)"foo", 3, enc, 5, &len), 0);
    assert_string_equal(enc, "Zm9v");
    /* input over the cap */
    memset(big, 'A', sizeof(big));
    assert_int_equal(authb64_decode(big, sizeof(big), (uint8_t *)big, sizeof(big), &len), -1);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_decode_table),
        cmocka_unit_test(test_roundtrip_all_lengths),
        cmocka_unit_test(test_caps),
    };
    return cmocka_run_group_tests_name("auth_b64", tests, NULL, NULL);
}
