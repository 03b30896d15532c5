/*
 * Unit tests for auth/bridge.c: whole bridged handshakes through the state machine with the
 * PROTOCOLS.md C.4 vectors, steering, restarts after a lost backend, rejects, the trace.
 * Each scenario is a table of steps: a request (Authorization value) or a response (status +
 * WWW-Authenticate values) and what the bridge must answer.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "auth/b64.h"
#include "auth/bridge.h"
#include "auth/ntlm.h"
#include "auth/spnego.h"

#define NEG_B64 "TlRMTVNTUAABAAAAt4II4gAAAAAAAAAAAAAAAAAAAAAKAGFKAAAADw=="
#define CHAL_B64                                                                                   \
    "TlRMTVNTUAACAAAADAAMADgAAAAzgoriASNFZ4mrze8AAAAAAAAAACQAJABEAAAABgBwFwAAAA9TAGUAcgB2AGUAcgA"  \
    "CAAwARABvAG0AYQBpAG4AAQAMAFMAZQByAHYAZQByAAAAAAA="
#define AUTH_B64                                                                                   \
    "TlRMTVNTUAADAAAAGAAYAGwAAABUAFQAhAAAAAwADABIAAAACAAIAFQAAAAQABAAXAAAABAAEADYAAAANYKI4gUBKAo"  \
    "AAAAPRABvAG0AYQBpAG4AVQBzAGUAcgBDAE8ATQBQAFUAVABFAFIAhsNQl6yc7BAlVHZKV8zMGaqqqqqqqqqqaM0KuF"  \
    "HlHJaqvJJ76+9qHAEBAAAAAAAAAAAAAAAAAACqqqqqqqqqqgAAAAACAAwARABvAG0AYQBpAG4AAQAMAFMAZQByAHYAZQ" \
    "ByAAAAAAAAAAAAxdrSVE/JeZCUzhzpC8nQPg=="
/* SPNEGO init, mechTypes [NTLM], mechToken NEGOTIATE (74 bytes) */
#define INIT_B64                                                                                   \
    "YEgGBisGAQUFAqA+MDygDjAMBgorBgEEAYI3AgIKoioEKE5UTE1TU1AAAQAAALeCCOIAAAAAAAAAAAAAAAAAAAAACgBh" \
    "SgAAAA8="
/* NegTokenResp accept-incomplete, supportedMech NTLM, responseToken CHALLENGE (132 bytes) */
#define RESP_CHAL_B64                                                                              \
    "oYGBMH+gAwoBAaEMBgorBgEEAYI3AgIKomoEaE5UTE1TU1AAAgAAAAwADAA4AAAAM4KK4gEjRWeJq83vAAAAAAAAAAAk" \
    "ACQARAAAAAYAcBcAAAAPUwBlAHIAdgBlAHIAAgAMAEQAbwBtAGEAaQBuAAEADABTAGUAcgB2AGUAcgAAAAAA"
/* NegTokenResp responseToken AUTHENTICATE, no negState/MIC (244 bytes) */
#define RESP_AUTH_B64 "oYHxMIHuooHrBIHo" AUTH_B64
/* SPNEGO init in Windows order [MSKRB5,KRB5,NEGOEX,NTLM] with a Kerberos mechToken */
#define KRB_INIT_B64                                                                               \
    "YFMGBisGAQUFAqBJMEegMDAuBgkqhkiC9xIBAgIGCSqGSIb3EgECAgYKKwYBBAGCNwICHgYKKwYBBAGCNwICCqITBBFg" \
    "DwYJKoZIhvcSAQICAQBuAA=="
#define RAW_KRB_B64 "YA8GCSqGSIb3EgECAgEAbgA="

enum step_kind { REQ, RESP, RESET };

struct step {
    enum step_kind kind;
    const char *authz; /* REQ: NULL = no Authorization */
    int status;        /* RESP */
    const char *www[4];
    /* expectations */
    int action;          /* REQ: enum authbridge_action; RESP: enum authbridge_www */
    const char *want[4]; /* REPLACE: [0] = new Authorization; CHALLENGE/SET: values */
    bool trace_done;
    const char *trace_has[8]; /* substrings of the trace line when trace_done */
};

struct scenario {
    const char *name;
    bool offer_set;
    enum conf_scheme offer[3];
    size_t noffer;
    enum conf_bridge bridge;
    struct step steps[10];
};

#define END                                                                                        \
    {                                                                                              \
        RESET, "END", 0, {NULL}, 0, {NULL}, false,                                                 \
        {                                                                                          \
            NULL                                                                                   \
        }                                                                                          \
    }

static const struct scenario scenarios[] = {
    {"F1 ntlm-to-negotiate, raw backend challenge",
     true,
     {CONF_SCHEME_NTLM},
     1,
     CONF_BRIDGE_NTLM_TO_NEGOTIATE,
     {{REQ, NULL, 0, {NULL}, AUTHBRIDGE_PASS, {NULL}, false, {NULL}},
      {RESP, NULL, 401, {"Negotiate", NULL}, AUTHBRIDGE_WWW_SET, {"NTLM", NULL}, false, {NULL}},
      {REQ, "NTLM " NEG_B64, 0, {NULL}, AUTHBRIDGE_REPLACE, {"Negotiate " NEG_B64}, false, {NULL}},
      {RESP,
       NULL,
       401,
       {"Negotiate " CHAL_B64, NULL},
       AUTHBRIDGE_WWW_SET,
       {"NTLM " CHAL_B64, NULL},
       false,
       {NULL}},
      {REQ,
       "NTLM " AUTH_B64,
       0,
       {NULL},
       AUTHBRIDGE_REPLACE,
       {"Negotiate " AUTH_B64},
       false,
       {NULL}},
      {RESP,
       NULL,
       200,
       {NULL},
       AUTHBRIDGE_WWW_KEEP,
       {NULL},
       true,
       {"route=\"/mapi\"", "backend_offers=Negotiate", "client_offers=NTLM", "scheme=NTLM",
        "tokens=ntlm1/ntlm3", "bridge=ntlm-to-negotiate",
        "user=\"User\" domain=\"Domain\" workstation=\"COMPUTER\" ntlm=v2 mic=no cbt=absent",
        "verdict=200 by=backend"}},
      {REQ, NULL, 0, {NULL}, AUTHBRIDGE_PASS, {NULL}, false, {NULL}},
      END}},
    {"F1 backend answers with a SPNEGO-wrapped challenge",
     true,
     {CONF_SCHEME_NTLM, CONF_SCHEME_NEGOTIATE},
     2,
     CONF_BRIDGE_NTLM_TO_NEGOTIATE,
     {{RESP,
       NULL,
       401,
       {"Negotiate", NULL},
       AUTHBRIDGE_WWW_SET,
       {"NTLM", "Negotiate", NULL},
       false,
       {NULL}},
      {REQ, "NTLM " NEG_B64, 0, {NULL}, AUTHBRIDGE_REPLACE, {"Negotiate " NEG_B64}, false, {NULL}},
      {RESP,
       NULL,
       401,
       {"Negotiate " RESP_CHAL_B64, NULL},
       AUTHBRIDGE_WWW_SET,
       {"NTLM " CHAL_B64, NULL},
       false,
       {NULL}},
      {REQ,
       "NTLM " AUTH_B64,
       0,
       {NULL},
       AUTHBRIDGE_REPLACE,
       {"Negotiate " AUTH_B64},
       false,
       {NULL}},
      /* the backend's final Negotiate token means nothing to an NTLM client */
      {RESP,
       NULL,
       200,
       {"Negotiate oRswGaADCgEAoxIEEAEAAABDh+CIwTbjqQAAAAA=", NULL},
       AUTHBRIDGE_WWW_SET,
       {NULL},
       true,
       {"verdict=200", NULL}},
      END}},
    {"F3 negotiate-to-ntlm, SPNEGO client",
     true,
     {CONF_SCHEME_NEGOTIATE, CONF_SCHEME_NTLM},
     2,
     CONF_BRIDGE_NEGOTIATE_TO_NTLM,
     {{RESP,
       NULL,
       401,
       {"NTLM", NULL},
       AUTHBRIDGE_WWW_SET,
       {"Negotiate", "NTLM", NULL},
       false,
       {NULL}},
      {REQ, "Negotiate " INIT_B64, 0, {NULL}, AUTHBRIDGE_REPLACE, {"NTLM " NEG_B64}, false, {NULL}},
      {RESP,
       NULL,
       401,
       {"NTLM " CHAL_B64, NULL},
       AUTHBRIDGE_WWW_SET,
       {"Negotiate " RESP_CHAL_B64, NULL},
       false,
       {NULL}},
      {REQ,
       "Negotiate " RESP_AUTH_B64,
       0,
       {NULL},
       AUTHBRIDGE_REPLACE,
       {"NTLM " AUTH_B64},
       false,
       {NULL}},
      {RESP,
       NULL,
       200,
       {"Negotiate oQcwBaADCgEA", NULL},
       AUTHBRIDGE_WWW_SET,
       {NULL},
       true,
       {"scheme=Negotiate", "tokens=spnego-init[ntlm]+ntlm1/spnego-resp+ntlm3",
        "bridge=negotiate-to-ntlm", "client_offers=Negotiate,NTLM", "user=\"User\"", NULL}},
      END}},
    {"F3 negotiate-to-ntlm, raw NTLM under Negotiate",
     false,
     {0},
     0,
     CONF_BRIDGE_NEGOTIATE_TO_NTLM,
     {{RESP, NULL, 401, {"NTLM", NULL}, AUTHBRIDGE_WWW_KEEP, {NULL}, false, {NULL}},
      {REQ, "Negotiate " NEG_B64, 0, {NULL}, AUTHBRIDGE_REPLACE, {"NTLM " NEG_B64}, false, {NULL}},
      {RESP,
       NULL,
       401,
       {"NTLM " CHAL_B64, NULL},
       AUTHBRIDGE_WWW_SET,
       {"Negotiate " CHAL_B64, NULL},
       false,
       {NULL}},
      {REQ,
       "Negotiate " AUTH_B64,
       0,
       {NULL},
       AUTHBRIDGE_REPLACE,
       {"NTLM " AUTH_B64},
       false,
       {NULL}},
      {RESP, NULL, 200, {NULL}, AUTHBRIDGE_WWW_KEEP, {NULL}, true, {"tokens=ntlm1/ntlm3", NULL}},
      END}},
    {"Kerberos on an NTLM-only route is steered to NTLM",
     true,
     {CONF_SCHEME_NEGOTIATE, CONF_SCHEME_NTLM},
     2,
     CONF_BRIDGE_NEGOTIATE_TO_NTLM,
     {{RESP,
       NULL,
       401,
       {"NTLM", NULL},
       AUTHBRIDGE_WWW_SET,
       {"Negotiate", "NTLM", NULL},
       false,
       {NULL}},
      {REQ,
       "Negotiate " KRB_INIT_B64,
       0,
       {NULL},
       AUTHBRIDGE_CHALLENGE,
       {"NTLM", NULL},
       true,
       {"tokens=spnego-init[mskrb5,krb5,negoex,ntlm]+kerberos", "verdict=401 by=exshim",
        "reason=\"steered-to-ntlm\"", NULL}},
      {REQ,
       "Negotiate " RAW_KRB_B64,
       0,
       {NULL},
       AUTHBRIDGE_CHALLENGE,
       {"NTLM", NULL},
       true,
       {"tokens=kerberos", NULL}},
      {REQ, "NTLM " NEG_B64, 0, {NULL}, AUTHBRIDGE_PASS, {NULL}, false, {NULL}},
      {RESP, NULL, 401, {"NTLM " CHAL_B64, NULL}, AUTHBRIDGE_WWW_KEEP, {NULL}, false, {NULL}},
      END}},
    {"backend lost mid-handshake: restart with fresh offers",
     true,
     {CONF_SCHEME_NTLM},
     1,
     CONF_BRIDGE_NTLM_TO_NEGOTIATE,
     {{RESP, NULL, 401, {"Negotiate", NULL}, AUTHBRIDGE_WWW_SET, {"NTLM", NULL}, false, {NULL}},
      {REQ, "NTLM " NEG_B64, 0, {NULL}, AUTHBRIDGE_REPLACE, {"Negotiate " NEG_B64}, false, {NULL}},
      {RESP,
       NULL,
       401,
       {"Negotiate " CHAL_B64, NULL},
       AUTHBRIDGE_WWW_SET,
       {"NTLM " CHAL_B64},
       false,
       {NULL}},
      {RESET, NULL, 0, {NULL}, 0, {NULL}, false, {NULL}},
      {REQ,
       "NTLM " AUTH_B64,
       0,
       {NULL},
       AUTHBRIDGE_CHALLENGE,
       {"NTLM", NULL},
       true,
       {"reason=\"backend-lost\"", "verdict=401 by=exshim", NULL}},
      {REQ, "NTLM " NEG_B64, 0, {NULL}, AUTHBRIDGE_REPLACE, {"Negotiate " NEG_B64}, false, {NULL}},
      END}},
    {"backend rejects the AUTHENTICATE",
     true,
     {CONF_SCHEME_NTLM},
     1,
     CONF_BRIDGE_NTLM_TO_NEGOTIATE,
     {{REQ, "NTLM " NEG_B64, 0, {NULL}, AUTHBRIDGE_REPLACE, {"Negotiate " NEG_B64}, false, {NULL}},
      {RESP,
       NULL,
       401,
       {"Negotiate " CHAL_B64, NULL},
       AUTHBRIDGE_WWW_SET,
       {"NTLM " CHAL_B64},
       false,
       {NULL}},
      {REQ,
       "NTLM " AUTH_B64,
       0,
       {NULL},
       AUTHBRIDGE_REPLACE,
       {"Negotiate " AUTH_B64},
       false,
       {NULL}},
      {RESP,
       NULL,
       401,
       {"Negotiate", "Basic realm=\"x\"", NULL},
       AUTHBRIDGE_WWW_SET,
       {"NTLM", NULL},
       true,
       {"verdict=401 by=backend", "backend_offers=-", NULL}},
      END}},
    {"pass-through route",
     false,
     {0},
     0,
     CONF_BRIDGE_NONE,
     {{RESP, NULL, 401, {"Negotiate", "NTLM", NULL}, AUTHBRIDGE_WWW_KEEP, {NULL}, false, {NULL}},
      {REQ, "NTLM " NEG_B64, 0, {NULL}, AUTHBRIDGE_PASS, {NULL}, false, {NULL}},
      {RESP, NULL, 401, {"NTLM " CHAL_B64, NULL}, AUTHBRIDGE_WWW_KEEP, {NULL}, false, {NULL}},
      {REQ, "NTLM " AUTH_B64, 0, {NULL}, AUTHBRIDGE_PASS, {NULL}, false, {NULL}},
      {RESP, NULL, 100, {NULL}, AUTHBRIDGE_WWW_KEEP, {NULL}, false, {NULL}},
      {RESP,
       NULL,
       200,
       {NULL},
       AUTHBRIDGE_WWW_KEEP,
       {NULL},
       true,
       {"bridge=none", "backend_offers=Negotiate,NTLM", "client_offers=Negotiate,NTLM", NULL}},
      {REQ, "Basic dXNlcjpwYXNz", 0, {NULL}, AUTHBRIDGE_PASS, {NULL}, false, {NULL}},
      END}},
    /* Pass-through (no bridge): exshim does not need to understand a token it does not
     * translate, so even a malformed one goes to the backend, which answers as IIS would. */
    {"pass-through route forwards tokens it cannot parse",
     false,
     {0},
     0,
     CONF_BRIDGE_NONE,
     {{REQ, "NTLM", 0, {NULL}, AUTHBRIDGE_PASS, {NULL}, false, {NULL}},
      {REQ, "NTLM !!!!", 0, {NULL}, AUTHBRIDGE_PASS, {NULL}, false, {NULL}},
      {REQ, "Negotiate TlRMTVNTUAAB", 0, {NULL}, AUTHBRIDGE_PASS, {NULL}, false, {NULL}},
      {REQ, "NTLM " CHAL_B64, 0, {NULL}, AUTHBRIDGE_PASS, {NULL}, false, {NULL}},
      {REQ, "NTLM " INIT_B64, 0, {NULL}, AUTHBRIDGE_PASS, {NULL}, false, {NULL}},
      END}},
    {"malformed credentials are rejected",
     true,
     {CONF_SCHEME_NTLM},
     1,
     CONF_BRIDGE_NTLM_TO_NEGOTIATE,
     {{REQ, "NTLM", 0, {NULL}, AUTHBRIDGE_REJECT, {NULL}, true, {"verdict=400 by=exshim", NULL}},
      {REQ, "NTLM !!!!", 0, {NULL}, AUTHBRIDGE_REJECT, {NULL}, true, {NULL}},
      {REQ, "Negotiate TlRMTVNTUAAB", 0, {NULL}, AUTHBRIDGE_REJECT, {NULL}, true, {NULL}},
      {REQ, "NTLM a b", 0, {NULL}, AUTHBRIDGE_REJECT, {NULL}, true, {NULL}},
      {REQ, "NTLM " CHAL_B64, 0, {NULL}, AUTHBRIDGE_REJECT, {NULL}, true, {NULL}},
      {REQ,
       "NTLM " INIT_B64,
       0,
       {NULL},
       AUTHBRIDGE_REJECT,
       {NULL},
       true,
       {"reason=\"NTLM token is not an NTLMSSP message\"", NULL}},
      {REQ, "Bearer a b c", 0, {NULL}, AUTHBRIDGE_PASS, {NULL}, false, {NULL}},
      /* an unrecognised Negotiate token is not bridged on this route: forwarded as is */
      {REQ, "Negotiate TlRM", 0, {NULL}, AUTHBRIDGE_PASS, {NULL}, false, {NULL}},
      END}},
    {"malformed backend challenge is forwarded as is",
     true,
     {CONF_SCHEME_NTLM},
     1,
     CONF_BRIDGE_NTLM_TO_NEGOTIATE,
     {{RESP,
       NULL,
       401,
       {"Basic realm=\"unterminated", NULL},
       AUTHBRIDGE_WWW_KEEP,
       {NULL},
       false,
       {NULL}},
      {REQ, "NTLM " NEG_B64, 0, {NULL}, AUTHBRIDGE_REPLACE, {"Negotiate " NEG_B64}, false, {NULL}},
      /* a challenge that is not NTLM cannot be bridged: the client is told to start over */
      {RESP,
       NULL,
       401,
       {"Negotiate oQcwBaADCgEC", NULL},
       AUTHBRIDGE_WWW_SET,
       {"NTLM", NULL},
       true,
       {"verdict=401 by=backend", NULL}},
      END}},
    {"pass-through multi-leg Negotiate under a policy",
     true,
     {CONF_SCHEME_NEGOTIATE},
     1,
     CONF_BRIDGE_NONE,
     {{REQ, "Negotiate " KRB_INIT_B64, 0, {NULL}, AUTHBRIDGE_PASS, {NULL}, false, {NULL}},
      {RESP,
       NULL,
       401,
       {"Negotiate oQcwBaADCgEB", "Basic realm=\"x\"", NULL},
       AUTHBRIDGE_WWW_KEEP,
       {NULL},
       false,
       {NULL}},
      {REQ, "Negotiate " RESP_AUTH_B64, 0, {NULL}, AUTHBRIDGE_PASS, {NULL}, false, {NULL}},
      {RESP,
       NULL,
       401,
       {"Negotiate oQcwBaADCgEB", NULL},
       AUTHBRIDGE_WWW_KEEP,
       {NULL},
       false,
       {NULL}},
      {REQ, "Negotiate " RESP_AUTH_B64, 0, {NULL}, AUTHBRIDGE_PASS, {NULL}, false, {NULL}},
      {RESP,
       NULL,
       200,
       {"Negotiate oQcwBaADCgEA", NULL},
       AUTHBRIDGE_WWW_KEEP,
       {NULL},
       true,
       {"bridge=none",
        "tokens=spnego-init[mskrb5,krb5,negoex,ntlm]+kerberos/spnego-resp+ntlm3/spnego-resp+ntlm3",
        NULL}},
      END}},
    {"a leg in the other scheme is not translated",
     false,
     {0},
     0,
     CONF_BRIDGE_NEGOTIATE_TO_NTLM,
     {{REQ, "Negotiate " NEG_B64, 0, {NULL}, AUTHBRIDGE_REPLACE, {"NTLM " NEG_B64}, false, {NULL}},
      {RESP,
       NULL,
       401,
       {"NTLM " CHAL_B64, NULL},
       AUTHBRIDGE_WWW_SET,
       {"Negotiate " CHAL_B64, NULL},
       false,
       {NULL}},
      {REQ, "NTLM " AUTH_B64, 0, {NULL}, AUTHBRIDGE_PASS, {NULL}, false, {NULL}},
      {RESP,
       NULL,
       200,
       {"Negotiate oQcwBaADCgEA", NULL},
       AUTHBRIDGE_WWW_KEEP,
       {NULL},
       true,
       {"verdict=200", NULL}},
      END}},
};

static void
check_values(const char *scen, size_t step, const struct authbridge_values *got,
             const char *const *want)
{
    size_t j;
    for (j = 0; want[j]; j++) {
        if (j >= got->n)
            fail_msg("%s step %zu: %zu values, want more", scen, step, got->n);
        if (strcmp(got->v[j], want[j]) != 0 || got->len[j] != strlen(want[j]))
            fail_msg("%s step %zu value %zu: '%s' want '%s'", scen, step, j, got->v[j], want[j]);
    }
    if (got->n != j)
        fail_msg("%s step %zu: %zu values, want %zu", scen, step, got->n, j);
}

static void
check_trace(const char *scen, size_t step, struct authbridge *st, const char *const *has)
{
    char line[1024];
    size_t j, n = authbridge_trace_format(st, line, sizeof(line));
    assert_int_equal(n, strlen(line));
    for (j = 0; j < 8 && has[j]; j++)
        if (strstr(line, has[j]) == NULL)
            fail_msg("%s step %zu: trace '%s' lacks '%s'", scen, step, line, has[j]);
    /* never a token in the trace */
    assert_null(strstr(line, "TlRM"));
    assert_null(strstr(line, "oYG"));
    assert_null(strstr(line, "YEg"));
}

static void
run_scenario(const struct scenario *sc)
{
    struct authbridge *st = authbridge_new();
    struct conf_route route;
    size_t i, k;

    assert_non_null(st);
    memset(&route, 0, sizeof(route));
    route.path = (char *)"/mapi";
    route.offer_set = sc->offer_set;
    memcpy(route.offer, sc->offer, sizeof(sc->offer));
    route.noffer = sc->noffer;
    route.bridge = sc->bridge;

    for (i = 0; i < 10; i++) {
        const struct step *s = &sc->steps[i];
        if (s->kind == RESET && s->authz != NULL)
            break; /* END */
        if (s->kind == RESET) {
            authbridge_reset(st);
        } else if (s->kind == REQ) {
            struct authbridge_req r;
            assert_int_equal(
                authbridge_on_request(st, &route, s->authz, s->authz ? strlen(s->authz) : 0, &r),
                0);
            if ((int)r.action != s->action)
                fail_msg("%s step %zu: action %d want %d (%s)", sc->name, i, r.action, s->action,
                         r.why ? r.why : "");
            if (r.action == AUTHBRIDGE_REPLACE) {
                assert_string_equal(r.authorization, s->want[0]);
                assert_int_equal(r.authorization_len, strlen(s->want[0]));
            }
            if (r.action == AUTHBRIDGE_CHALLENGE) {
                assert_int_equal(r.status, 401);
                check_values(sc->name, i, &r.www, s->want);
            }
            if (r.action == AUTHBRIDGE_REJECT) {
                assert_int_equal(r.status, 400);
                assert_non_null(r.why);
            }
            if (r.trace_done != s->trace_done)
                fail_msg("%s step %zu: trace_done %d", sc->name, i, r.trace_done);
            if (r.trace_done)
                check_trace(sc->name, i, st, s->trace_has);
            authbridge_req_clear(&r);
        } else {
            struct authbridge_slice www[4];
            struct authbridge_resp r;
            size_t n = 0;
            for (k = 0; s->www[k]; k++, n++) {
                www[k].p = s->www[k];
                www[k].len = strlen(s->www[k]);
            }
            assert_int_equal(authbridge_on_response(st, &route, s->status, www, n, &r), 0);
            if ((int)r.www_action != s->action)
                fail_msg("%s step %zu: www action %d want %d", sc->name, i, r.www_action,
                         s->action);
            if (r.www_action == AUTHBRIDGE_WWW_SET)
                check_values(sc->name, i, &r.www, s->want);
            if (r.trace_done != s->trace_done)
                fail_msg("%s step %zu: trace_done %d", sc->name, i, r.trace_done);
            if (r.trace_done)
                check_trace(sc->name, i, st, s->trace_has);
            authbridge_resp_clear(&r);
        }
    }
    authbridge_free(st);
}

static void
test_scenarios(void **state)
{
    size_t i;
    (void)state;
    for (i = 0; i < sizeof(scenarios) / sizeof(scenarios[0]); i++)
        run_scenario(&scenarios[i]);
}

/* Every prefix of an Authorization value is either passed (not our scheme yet) or rejected. */
static void
test_every_prefix_rejected(void **state)
{
    static const char *const values[] = {"NTLM " AUTH_B64, "Negotiate " INIT_B64,
                                         "Negotiate " RESP_AUTH_B64};
    struct conf_route route;
    size_t k, len;
    (void)state;
    memset(&route, 0, sizeof(route));
    route.bridge = CONF_BRIDGE_NEGOTIATE_TO_NTLM;
    for (k = 0; k < 3; k++) {
        const char *v = values[k];
        size_t full = strlen(v);
        size_t word = (size_t)(strchr(v, ' ') - v);
        for (len = 0; len < full; len++) {
            struct authbridge *st = authbridge_new();
            struct authbridge_req r;
            char *copy = malloc(len + 1);
            memcpy(copy, v, len);
            assert_int_equal(authbridge_on_request(st, &route, copy, len, &r), 0);
            if (len >= word && r.action != AUTHBRIDGE_REJECT)
                fail_msg("value %zu prefix %zu: action %d", k, len, r.action);
            if (len < word)
                assert_int_equal(r.action, AUTHBRIDGE_PASS);
            authbridge_req_clear(&r);
            authbridge_free(st);
            free(copy);
        }
    }
}

static void
put16(uint8_t *p, unsigned v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

/* A minimal NTLMv2 AUTHENTICATE (no names, MIC flagged) carrying channel bindings cbt. */
static size_t
auth_with_cbt(uint8_t *m, const uint8_t cbt[16])
{
    size_t nt_off = 88, o;
    memset(m, 0, 256);
    memcpy(m, "NTLMSSP\0\3\0\0\0", 12);
    o = nt_off + 16 + 28;
    put16(m + o, 6);
    put16(m + o + 2, 4);
    m[o + 4] = 2;
    o += 8;
    put16(m + o, 0x0a);
    put16(m + o + 2, 16);
    memcpy(m + o + 4, cbt, 16);
    o += 20 + 4;
    put16(m + 20, (unsigned)(o - nt_off));
    put16(m + 22, (unsigned)(o - nt_off));
    put16(m + 24, (unsigned)nt_off);
    m[60] = 0x01; /* UNICODE */
    return o;
}

/* A CHALLENGE large enough that its NegTokenResp needs 2-byte DER lengths (regression: the
 * wrap buffer was sized for a 1-byte length). */
static void
test_big_challenge_wrapped(void **state)
{
    uint8_t chal[300], got[400];
    char www[512];
    struct conf_route route;
    struct authbridge *st = authbridge_new();
    struct authbridge_req r;
    struct authbridge_resp rr;
    struct authbridge_slice s;
    size_t elen, glen;
    struct spnego_token t;
    const char *why;
    (void)state;
    memset(chal, 0, sizeof(chal));
    memcpy(chal, "NTLMSSP\0\2\0\0\0", 12);
    put16(chal + 40, 244); /* TargetInfo: 244 bytes at 56 */
    put16(chal + 42, 244);
    chal[44] = 56;
    memset(&route, 0, sizeof(route));
    route.bridge = CONF_BRIDGE_NEGOTIATE_TO_NTLM;
    assert_int_equal(
        authbridge_on_request(st, &route, "Negotiate " INIT_B64, strlen("Negotiate " INIT_B64), &r),
        0);
    assert_int_equal(r.action, AUTHBRIDGE_REPLACE);
    memcpy(www, "NTLM ", 5);
    assert_int_equal(authb64_encode(chal, sizeof(chal), www + 5, sizeof(www) - 5, &elen), 0);
    s.p = www;
    s.len = 5 + elen;
    assert_int_equal(authbridge_on_response(st, &route, 401, &s, 1, &rr), 0);
    assert_int_equal(rr.www_action, AUTHBRIDGE_WWW_SET);
    assert_int_equal(rr.www.n, 1);
    assert_memory_equal(rr.www.v[0], "Negotiate ", 10);
    assert_int_equal(authb64_decode(rr.www.v[0] + 10, rr.www.len[0] - 10, got, sizeof(got), &glen),
                     0);
    assert_int_equal(spnego_peek(got, glen, &t, &why), 0);
    assert_int_equal(t.kind, SPNEGO_RESP);
    assert_int_equal(t.inner.len, sizeof(chal));
    assert_memory_equal(t.inner.p, chal, sizeof(chal));
    authbridge_req_clear(&r);
    authbridge_resp_clear(&rr);
    authbridge_free(st);
}

static void
test_cbt_in_trace(void **state)
{
    static const char *const cases[][2] = {
        {"same", "cbt=match"}, {"other", "cbt=mismatch"}, {"unset", "cbt=present"}};
    uint8_t hash[32], expected[16], msg[256];
    char authz[512], line[512];
    size_t i, n, elen;
    struct conf_route route;
    (void)state;
    memset(hash, 0x42, sizeof(hash));
    assert_int_equal(ntlmmsg_cbt_expected(hash, sizeof(hash), expected), 0);
    memset(&route, 0, sizeof(route));
    for (i = 0; i < 3; i++) {
        struct authbridge *st = authbridge_new();
        struct authbridge_req r;
        struct authbridge_resp rr;
        uint8_t other[16];
        memset(other, 0x11, sizeof(other));
        n = auth_with_cbt(msg, i == 1 ? other : expected);
        memcpy(authz, "NTLM ", 5);
        assert_int_equal(authb64_encode(msg, n, authz + 5, sizeof(authz) - 5, &elen), 0);
        if (i != 2)
            authbridge_set_expected_cbt(st, expected);
        assert_int_equal(authbridge_on_request(st, &route, authz, 5 + elen, &r), 0);
        assert_int_equal(r.action, AUTHBRIDGE_PASS);
        assert_int_equal(authbridge_on_response(st, &route, 200, NULL, 0, &rr), 0);
        assert_true(rr.trace_done);
        assert_true(authbridge_trace_pending(st));
        authbridge_trace_format(st, line, sizeof(line));
        assert_false(authbridge_trace_pending(st));
        if (strstr(line, cases[i][1]) == NULL || strstr(line, "mic=yes") == NULL)
            fail_msg("case %s: %s", cases[i][0], line);
        authbridge_req_clear(&r);
        authbridge_resp_clear(&rr);
        authbridge_free(st);
    }
}

/* An AUTHENTICATE on a request that streams (RPC_IN_DATA): the trace ends when it is
 * forwarded, with verdict "streaming"; a later final response adds nothing; no AUTHENTICATE,
 * no early end. */
static void
test_streaming_trace(void **state)
{
    uint8_t hash[32], expected[16], msg[256];
    char authz[512], line[512];
    size_t n, elen;
    struct conf_route route;
    struct authbridge *st = authbridge_new();
    struct authbridge_req r;
    struct authbridge_resp rr;
    (void)state;
    memset(&route, 0, sizeof(route));
    memset(hash, 0x42, sizeof(hash));
    assert_int_equal(ntlmmsg_cbt_expected(hash, sizeof(hash), expected), 0);
    assert_false(authbridge_streaming(st)); /* nothing to report yet */
    n = auth_with_cbt(msg, expected);
    memcpy(authz, "NTLM ", 5);
    assert_int_equal(authb64_encode(msg, n, authz + 5, sizeof(authz) - 5, &elen), 0);
    assert_int_equal(authbridge_on_request(st, &route, authz, 5 + elen, &r), 0);
    assert_int_equal(r.action, AUTHBRIDGE_PASS);
    assert_true(authbridge_streaming(st));
    authbridge_trace_format(st, line, sizeof(line));
    if (strstr(line, "verdict=streaming") == NULL || strstr(line, "mic=yes") == NULL)
        fail_msg("streaming trace: %s", line);
    assert_false(authbridge_streaming(st)); /* once */
    assert_int_equal(authbridge_on_response(st, &route, 200, NULL, 0, &rr), 0);
    assert_false(rr.trace_done);
    authbridge_req_clear(&r);
    authbridge_resp_clear(&rr);
    authbridge_free(st);
}

/* authbridge_idle: what lets proxy/authn.c free the state of a connection between handshakes.
 * Fresh and after a Basic credential: idle. A first NTLM leg in flight, an initial 401's offers
 * remembered, a lost backend owing a restart, a trace not yet reported: not idle. */
static void
test_idle(void **state)
{
    char line[512];
    struct conf_route route;
    struct authbridge *st = authbridge_new();
    struct authbridge_req r;
    struct authbridge_resp rr;
    struct authbridge_slice www[1] = {{"NTLM", 4}};
    (void)state;
    memset(&route, 0, sizeof(route));
    assert_true(authbridge_idle(st));
    assert_int_equal(authbridge_on_request(st, &route, "Basic dTpw", 10, &r), 0);
    assert_int_equal(r.action, AUTHBRIDGE_PASS);
    authbridge_req_clear(&r);
    assert_true(authbridge_idle(st));
    assert_int_equal(authbridge_on_request(st, &route, NULL, 0, &r), 0);
    authbridge_req_clear(&r);
    assert_true(authbridge_idle(st));

    assert_int_equal(authbridge_on_request(st, &route, "NTLM " NEG_B64, 5 + strlen(NEG_B64), &r),
                     0);
    authbridge_req_clear(&r);
    assert_false(authbridge_idle(st)); /* leg in flight, trace open */
    authbridge_reset(st);              /* the backend went away mid-handshake */
    assert_false(authbridge_idle(st)); /* a restart is owed */
    authbridge_free(st);

    st = authbridge_new();
    assert_int_equal(authbridge_on_response(st, &route, 401, www, 1, &rr), 0);
    authbridge_resp_clear(&rr);
    assert_false(authbridge_idle(st)); /* the initial 401's offers are remembered */
    authbridge_free(st);

    st = authbridge_new();
    assert_int_equal(authbridge_on_request(st, &route, "NTLM " NEG_B64, 5 + strlen(NEG_B64), &r),
                     0);
    authbridge_req_clear(&r);
    assert_int_equal(authbridge_on_response(st, &route, 200, NULL, 0, &rr), 0);
    authbridge_resp_clear(&rr);
    assert_true(authbridge_trace_pending(st));
    assert_false(authbridge_idle(st)); /* the trace must be logged first */
    authbridge_trace_format(st, line, sizeof(line));
    assert_true(authbridge_idle(st));
    authbridge_free(st);
}

static void
test_trace_format_small_buffer(void **state)
{
    struct authbridge *st = authbridge_new();
    struct conf_route route;
    struct authbridge_req r;
    char small[16];
    (void)state;
    memset(&route, 0, sizeof(route));
    route.path = (char *)"/a \"quoted\"\x01path";
    assert_int_equal(
        authbridge_on_request(st, &route, "NTLM " NEG_B64, strlen("NTLM " NEG_B64), &r), 0);
    assert_int_equal(authbridge_trace_format(st, small, sizeof(small)), 15);
    assert_int_equal(strlen(small), 15);
    {
        char line[512];
        authbridge_trace_format(st, line, sizeof(line));
        assert_non_null(strstr(line, "route=\"/a \\\"quoted\\\"\\x01path\""));
        assert_non_null(strstr(line, "verdict=-"));
    }
    authbridge_req_clear(&r);
    authbridge_free(st);
    authbridge_free(NULL);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_scenarios),
        cmocka_unit_test(test_every_prefix_rejected),
        cmocka_unit_test(test_cbt_in_trace),
        cmocka_unit_test(test_streaming_trace),
        cmocka_unit_test(test_big_challenge_wrapped),
        cmocka_unit_test(test_trace_format_small_buffer),
        cmocka_unit_test(test_idle),
    };
    return cmocka_run_group_tests_name("auth_bridge", tests, NULL, NULL);
}
