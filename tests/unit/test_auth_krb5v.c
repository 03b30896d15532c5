/*
 * Unit tests for the words of auth/gss.h and auth/krb5v.c: krb5 error codes classified per
 * phase (the same code means different things in the AS exchange, the verification and
 * S4U2Proxy), the admin words, authgss_strerror's display_status loop, and the password checks
 * made before any KDC is asked. The KDC paths themselves run in tests/e2e/t80_edge_gss.sh.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>
#include <krb5.h>

#include "auth/gss.h"
#include "auth/krb5v.h"

#define GSS_FAILURE (13u << 16)     /* GSS_S_FAILURE */
#define GSS_BAD_BINDINGS (4u << 16) /* GSS_S_BAD_BINDINGS */

static void
test_classify(void **state)
{
    static const struct {
        long code;
        enum authkrb5_phase phase;
        enum authgss_why want;
    } cases[] = {
        {0, AUTHKRB5_PHASE_AS, AUTHGSS_WHY_NONE},
        {KRB5KDC_ERR_PREAUTH_FAILED, AUTHKRB5_PHASE_AS, AUTHGSS_WHY_BAD_PASSWORD},
        {KRB5KRB_AP_ERR_BAD_INTEGRITY, AUTHKRB5_PHASE_AS, AUTHGSS_WHY_BAD_PASSWORD},
        /* after the AS exchange, a decryption failure is the keytab's, not the user's */
        {KRB5KRB_AP_ERR_BAD_INTEGRITY, AUTHKRB5_PHASE_VERIFY, AUTHGSS_WHY_KDC_NOT_VERIFIED},
        {KRB5KRB_AP_ERR_BAD_INTEGRITY, AUTHKRB5_PHASE_ACCEPT, AUTHGSS_WHY_KEYTAB},
        {KRB5KDC_ERR_C_PRINCIPAL_UNKNOWN, AUTHKRB5_PHASE_AS, AUTHGSS_WHY_UNKNOWN_USER},
        {KRB5KDC_ERR_C_PRINCIPAL_UNKNOWN, AUTHKRB5_PHASE_S4U2SELF, AUTHGSS_WHY_UNKNOWN_USER},
        {KRB5KDC_ERR_S_PRINCIPAL_UNKNOWN, AUTHKRB5_PHASE_S4U2PROXY, AUTHGSS_WHY_UNKNOWN_SERVICE},
        {KRB5KRB_AP_ERR_SKEW, AUTHKRB5_PHASE_ACCEPT, AUTHGSS_WHY_CLOCK_SKEW},
        {KRB5KRB_AP_ERR_SKEW, AUTHKRB5_PHASE_AS, AUTHGSS_WHY_CLOCK_SKEW},
        {KRB5_KDC_UNREACH, AUTHKRB5_PHASE_AS, AUTHGSS_WHY_KDC_UNREACHABLE},
        /* BADOPTION is the KDC's answer to a refused S4U2Proxy, and only there */
        {KRB5KDC_ERR_BADOPTION, AUTHKRB5_PHASE_S4U2PROXY, AUTHGSS_WHY_DELEGATION_REFUSED},
        {KRB5KDC_ERR_POLICY, AUTHKRB5_PHASE_S4U2PROXY, AUTHGSS_WHY_DELEGATION_REFUSED},
        {KRB5KDC_ERR_BADOPTION, AUTHKRB5_PHASE_AS, AUTHGSS_WHY_OTHER},
        {KRB5_TKT_NOT_FORWARDABLE, AUTHKRB5_PHASE_S4U2PROXY, AUTHGSS_WHY_NOT_FORWARDABLE},
        {KRB5KDC_ERR_CLIENT_REVOKED, AUTHKRB5_PHASE_AS, AUTHGSS_WHY_ACCOUNT_DISABLED},
        {KRB5KDC_ERR_KEY_EXP, AUTHKRB5_PHASE_AS, AUTHGSS_WHY_PASSWORD_EXPIRED},
        {KRB5_KT_NOTFOUND, AUTHKRB5_PHASE_ACCEPT, AUTHGSS_WHY_KEYTAB},
        {KRB5_KT_NOTFOUND, AUTHKRB5_PHASE_VERIFY, AUTHGSS_WHY_KDC_NOT_VERIFIED},
        {KRB5KRB_AP_ERR_REPEAT, AUTHKRB5_PHASE_ACCEPT, AUTHGSS_WHY_REPLAY},
        {12345, AUTHKRB5_PHASE_AS, AUTHGSS_WHY_OTHER},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        enum authgss_why got = authkrb5_classify(cases[i].code, cases[i].phase);
        if (got != cases[i].want)
            fail_msg("case %zu: code %ld phase %d: got %d, want %d", i, cases[i].code,
                     (int)cases[i].phase, (int)got, (int)cases[i].want);
    }
}

static void
test_words(void **state)
{
    for (int w = AUTHGSS_WHY_NONE; w <= AUTHGSS_WHY_OTHER; w++) {
        const char *s = authgss_why_words((enum authgss_why)w);
        assert_non_null(s);
        assert_true(strlen(s) > 1);
    }
    assert_non_null(strstr(authgss_why_words(AUTHGSS_WHY_DELEGATION_REFUSED), "S4U2Proxy refused"));
    assert_non_null(
        strstr(authgss_why_words(AUTHGSS_WHY_DELEGATION_REFUSED), "msDS-AllowedToDelegateTo"));
    assert_non_null(strstr(authgss_why_words(AUTHGSS_WHY_NOT_FORWARDABLE), "not forwardable"));
    assert_non_null(strstr(authgss_why_words(AUTHGSS_WHY_CLOCK_SKEW), "clock skew"));
    assert_non_null(strstr(authgss_why_words(AUTHGSS_WHY_BAD_PASSWORD), "wrong password"));
    assert_string_equal(authgss_mech_name(AUTHGSS_MECH_KRB5), "krb5");
    assert_string_equal(authgss_mech_name(AUTHGSS_MECH_NTLM), "ntlm");
}

static void
test_strerror(void **state)
{
    char buf[512], small[16];

    authgss_strerror(GSS_FAILURE, (uint32_t)KRB5KDC_ERR_BADOPTION, AUTHGSS_MECH_KRB5, buf,
                     sizeof(buf));
    /* the major text first; the minor's text needs a code the mechglue has seen (its
     * error map), which tests/e2e/t80_edge_gss.sh checks ("KDC can't fulfill ...") */
    assert_true(strncmp(buf, "Unspecified GSS failure", 23) == 0);

    authgss_strerror(GSS_BAD_BINDINGS, 0, AUTHGSS_MECH_KRB5, buf, sizeof(buf));
    assert_non_null(strstr(buf, "channel bindings"));
    assert_null(strchr(buf, ';')); /* minor 0: no mechanism text */

    /* cut short but terminated */
    authgss_strerror(GSS_FAILURE, (uint32_t)KRB5KDC_ERR_BADOPTION, AUTHGSS_MECH_KRB5, small,
                     sizeof(small));
    assert_true(strlen(small) < sizeof(small));
}

static void
test_password_checked_before_kdc(void **state)
{
    struct authgss_error err;
    bool cached = true;
    /* no KDC is configured for these: they must fail before one is asked */
    assert_int_equal(
        authkrb5_verify_password("FILE:/nonexistent", "HTTP/x@X", "alice", "", 0, &cached, &err),
        -1);
    assert_int_equal(err.why, AUTHGSS_WHY_BAD_PASSWORD);
    assert_false(cached);
    assert_int_equal(authkrb5_verify_password("FILE:/nonexistent", "HTTP/x@X", "alice", "pa\0ss", 5,
                                              &cached, &err),
                     -1);
    assert_int_equal(err.why, AUTHGSS_WHY_BAD_PASSWORD);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_classify),
        cmocka_unit_test(test_words),
        cmocka_unit_test(test_strerror),
        cmocka_unit_test(test_password_checked_before_kdc),
    };
    return cmocka_run_group_tests_name("auth_krb5v", tests, NULL, NULL);
}
