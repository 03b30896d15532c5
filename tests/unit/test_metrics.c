/* Unit tests for proxy/metrics: the exposition writer (label escaping, sorting, merging), the
 * auth trace classification, the TLS failure reasons and the /healthz verdict. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "proxy/metrics.h"

static void
test_label_escaping(void **state)
{
    static const struct {
        const char *value, *want;
    } cases[] = {
        {"/ews", "route=\"/ews\""},
        {"a\"b", "route=\"a\\\"b\""},
        {"back\\slash", "route=\"back\\\\slash\""},
        {"two\nlines", "route=\"two\\nlines\""},
        {"", "route=\"\""},
        {"ünï", "route=\"ünï\""}, /* UTF-8 passes as it is */
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char labels[METRICS_LABELS_MAX] = "";
        assert_int_equal(metrics_label_add(labels, "route", cases[i].value), 0);
        assert_string_equal(labels, cases[i].want);
    }
    char labels[METRICS_LABELS_MAX] = "";
    assert_int_equal(metrics_label_add(labels, "backend", "lab"), 0);
    assert_int_equal(metrics_label_add(labels, "server", "[::1]:80"), 0);
    assert_string_equal(labels, "backend=\"lab\",server=\"[::1]:80\"");
}

static void
test_label_too_long(void **state)
{
    char labels[METRICS_LABELS_MAX] = "";
    char big[METRICS_LABELS_MAX];
    memset(big, '"', sizeof(big) - 1); /* each one doubles when escaped */
    big[sizeof(big) - 1] = '\0';
    assert_int_equal(metrics_label_add(labels, "route", "/a"), 0);
    assert_int_equal(metrics_label_add(labels, "x", big + METRICS_LABELS_MAX / 2), -1);
    assert_string_equal(labels, "route=\"/a\""); /* unchanged */
}

static void
test_merge_sorts_and_sums(void **state)
{
    struct metrics_sample s[6] = {
        {MF_WORKERS, "", 2},
        {MF_REQUESTS, "route=\"/rpc\",code_class=\"2xx\"", 3},
        {MF_AUTH, "route=\"/mapi\"", 1},
        {MF_REQUESTS, "route=\"/ews\",code_class=\"2xx\"", 4},
        {MF_REQUESTS, "route=\"/rpc\",code_class=\"2xx\"", 5}, /* a second generation's */
        {MF_CHANNELS, "kind=\"rpc_in\"", 1},
    };
    size_t n = metrics_merge(s, 6);
    assert_int_equal(n, 5);
    /* by family name: exshim_auth_..., exshim_channels, exshim_requests_total, exshim_workers */
    assert_int_equal(s[0].family, MF_AUTH);
    assert_int_equal(s[1].family, MF_CHANNELS);
    assert_int_equal(s[2].family, MF_REQUESTS);
    assert_string_equal(s[2].labels, "route=\"/ews\",code_class=\"2xx\"");
    assert_int_equal(s[3].family, MF_REQUESTS);
    assert_string_equal(s[3].labels, "route=\"/rpc\",code_class=\"2xx\"");
    assert_true(s[3].value == 8);
    assert_int_equal(s[4].family, MF_WORKERS);
}

static void
test_render(void **state)
{
    struct metrics_sample s[4] = {
        {MF_REQUESTS, "route=\"/ews\",code_class=\"2xx\"", 7},
        {MF_REQUESTS, "route=\"/ews\",code_class=\"4xx\"", 0},
        {MF_CONFIG_LOAD, "", 0.25},
        {MF_WORKERS, "", 2},
    };
    size_t n = metrics_merge(s, 4), len = 0;
    char *text = metrics_render(s, n, &len);
    assert_non_null(text);
    assert_int_equal(strlen(text), len);
    const char *want =
        "# HELP exshim_config_load_seconds Duration of the last successful configuration load.\n"
        "# TYPE exshim_config_load_seconds gauge\n"
        "exshim_config_load_seconds 0.25\n"
        "# HELP exshim_requests_total Requests answered, by route and status class.\n"
        "# TYPE exshim_requests_total counter\n"
        "exshim_requests_total{route=\"/ews\",code_class=\"2xx\"} 7\n"
        "exshim_requests_total{route=\"/ews\",code_class=\"4xx\"} 0\n"
        "# HELP exshim_workers Worker processes alive, all generations.\n"
        "# TYPE exshim_workers gauge\n"
        "exshim_workers 2\n";
    assert_string_equal(text, want);
    free(text);
}

/* A large exposition grows the buffer past its first allocation. */
static void
test_render_large(void **state)
{
    enum { N = 2000 };
    struct metrics_sample *s = calloc(N, sizeof(*s));
    assert_non_null(s);
    for (int i = 0; i < N; i++) {
        char v[32];
        snprintf(v, sizeof(v), "/r%04d", i);
        s[i].family = MF_REQUESTS;
        assert_int_equal(metrics_label_add(s[i].labels, "route", v), 0);
        s[i].value = i;
    }
    size_t n = metrics_merge(s, N), len = 0;
    assert_int_equal(n, N);
    char *text = metrics_render(s, n, &len);
    assert_non_null(text);
    assert_non_null(strstr(text, "exshim_requests_total{route=\"/r1999\"} 1999\n"));
    assert_non_null(strstr(text, "exshim_requests_total{route=\"/r0000\"} 0\n"));
    free(text);
    free(s);
}

static void
test_auth_outcome(void **state)
{
    static const struct {
        const char *trace, *outcome, *scheme;
    } cases[] = {
        {"route=\"/mapi\" backend_offers=- client_offers=- scheme=NTLM tokens=ntlm1/ntlm3 "
         "bridge=ntlm-to-negotiate user=\"alice\" domain=\"LAB\" workstation=\"W\" ntlm=v2 "
         "mic=no cbt=absent verdict=200 by=backend",
         "bridged_ntlm_to_negotiate", "NTLM"},
        {"route=\"/rpc\" scheme=Negotiate tokens=ntlm1/ntlm3 bridge=negotiate-to-ntlm "
         "verdict=200 by=backend",
         "bridged_negotiate_to_ntlm", "Negotiate"},
        {"route=\"/ews\" scheme=Negotiate tokens=krb5 bridge=none verdict=200 by=backend",
         "success", "Negotiate"},
        {"route=\"/ews\" scheme=NTLM bridge=none verdict=401 by=backend", "backend_refused",
         "NTLM"},
        {"route=\"/rpc\" scheme=Negotiate tokens=krb5 bridge=negotiate-to-ntlm verdict=401 "
         "by=exshim reason=\"steered-to-ntlm\"",
         "steered", "Negotiate"},
        {"route=\"/ews\" scheme=NTLM bridge=none verdict=400 by=exshim reason=\"bad token\"",
         "rejected", "NTLM"},
        {"route=\"/ews\" scheme=NTLM bridge=none verdict=- reason=\"backend-lost\"", "incomplete",
         "NTLM"},
        /* quoted values are skipped whole: a user name cannot fake a field */
        {"route=\"/ews\" scheme=NTLM bridge=none user=\"x\\\" by=backend verdict=200\" "
         "verdict=401 by=backend",
         "backend_refused", "NTLM"},
        {"scheme=Basic verdict=200 by=backend", "success", "other"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const char *scheme = NULL;
        const char *got = metrics_auth_outcome(cases[i].trace, &scheme);
        assert_string_equal(got, cases[i].outcome);
        assert_string_equal(scheme, cases[i].scheme);
    }
}

static void
test_tls_reason(void **state)
{
    assert_string_equal(metrics_tls_reason("error:0A000102:SSL routines::unsupported protocol"),
                        "protocol_version");
    assert_string_equal(metrics_tls_reason("error:0A0000C1:SSL routines::no shared cipher"),
                        "no_shared_cipher");
    assert_string_equal(metrics_tls_reason("error:0A00009C:SSL routines::http request"), "not_tls");
    assert_string_equal(metrics_tls_reason("closed during the TLS handshake"), "eof");
    assert_string_equal(metrics_tls_reason("timeout"), "timeout");
    assert_string_equal(metrics_tls_reason("something else"), "other");
    assert_string_equal(metrics_tls_reason(NULL), "other");
}

/* Without an attached region every worker hook is a no-op (unit tests, no `metrics` block). */
static void
test_hooks_without_region(void **state)
{
    metrics_client_open(0);
    metrics_exchange(NULL, 200, 1, 2);
    metrics_auth_trace("scheme=NTLM verdict=200 by=backend");
    metrics_tls_failed(0, "timeout");
    metrics_connect_failed(0, 0);
    metrics_server_health(0, 0, false, 0.1);
    assert_null(metrics_backend_gauge(0, 0));
    int kind = 0;
    metrics_channel_close(&kind);
    assert_int_equal(kind, 0);
}

static void
test_healthz_answer(void **state)
{
    const char *body;
    struct metrics_node_view v = {.now_ms = 100000};
    assert_int_equal(metrics_healthz_answer(&v, &body), 200);
    assert_string_equal(body, "ok\n");
    /* an accept failure counts for the window, not after */
    v.accept_fail_ms = v.now_ms - METRICS_ACCEPT_FAIL_WINDOW_MS + 1;
    assert_int_equal(metrics_healthz_answer(&v, &body), 503);
    assert_string_equal(body, "cannot accept: descriptor limit\n");
    v.accept_fail_ms = v.now_ms - METRICS_ACCEPT_FAIL_WINDOW_MS;
    assert_int_equal(metrics_healthz_answer(&v, &body), 200);
    /* no healthy backend only when no worker reported one */
    v.backends_none = 2;
    assert_int_equal(metrics_healthz_answer(&v, &body), 503);
    assert_string_equal(body, "no healthy backend\n");
    v.backends_some = 1;
    assert_int_equal(metrics_healthz_answer(&v, &body), 200);
    /* the descriptor limit is said before the backends, draining before everything */
    v.backends_some = 0;
    v.accept_fail_ms = v.now_ms;
    assert_int_equal(metrics_healthz_answer(&v, &body), 503);
    assert_string_equal(body, "cannot accept: descriptor limit\n");
    v.draining = true;
    assert_int_equal(metrics_healthz_answer(&v, &body), 503);
    assert_string_equal(body, "draining\n");
}

/* Through a real region: workers' reports in their slots, read back as the master does. */
static void
test_healthz_region(void **state)
{
    struct conf c = {0};
    const char *body;
    struct metrics_gen *mg = metrics_gen_new(&c);
    assert_non_null(mg);
    metrics_gen_publish(mg);
    assert_int_equal(metrics_healthz(&body), 200); /* nobody reported: not a failure */
    metrics_attach(mg, 3);
    metrics_backends_usable(false);
    assert_int_equal(metrics_healthz(&body), 503);
    assert_string_equal(body, "no healthy backend\n");
    metrics_attach(mg, 200);
    metrics_backends_usable(true);
    assert_int_equal(metrics_healthz(&body), 200);
    metrics_worker_gone(mg, 200); /* its report goes with it */
    assert_int_equal(metrics_healthz(&body), 503);
    metrics_attach(mg, 3);
    metrics_backends_usable(true);
    metrics_accept_starved();
    assert_int_equal(metrics_healthz(&body), 503);
    assert_string_equal(body, "cannot accept: descriptor limit\n");
    metrics_worker_gone(mg, 3);
    assert_int_equal(metrics_healthz(&body), 200);
    metrics_attach(NULL, 0);
    metrics_gen_free(mg);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_label_escaping),       cmocka_unit_test(test_label_too_long),
        cmocka_unit_test(test_merge_sorts_and_sums), cmocka_unit_test(test_render),
        cmocka_unit_test(test_render_large),         cmocka_unit_test(test_auth_outcome),
        cmocka_unit_test(test_tls_reason),           cmocka_unit_test(test_hooks_without_region),
        cmocka_unit_test(test_healthz_answer),       cmocka_unit_test(test_healthz_region),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
