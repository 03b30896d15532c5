/*
 * exshim-probe's diagnosis table (probe/diag.c): observed facts -> F-number, severity, fix.
 * One row per case: a function that sets the facts a server run would have produced, and the
 * findings expected, in order. Then the wire parsers the facts come from (probe/wire.c): RTS
 * PDUs with every prefix, chunked bodies, MAPI meta-tags, offers, certificate names.
 * Like test_lab_ntlm.c, the module's sources are compiled into the test.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "bench/load/bench_rts.c"
#include "probe/diag.c"
#include "probe/wire.c"

/* A healthy Exchange 2016 as seen over TLS: Negotiate, NTLM everywhere, Basic on EAS. */
static void
healthy(struct pdiag_facts *f)
{
    pdiag_facts_init(f);
    f->tls = true;
    f->tls_checked = true;
    f->tls_version[2] = f->tls_version[3] = true;
    f->chain_verified = f->chain_trusted = true;
    f->name_ok = true;
    f->have_creds = f->kerberos_asked = true;
    for (int i = 0; i < PDIAG_NVDIR; i++) {
        struct pdiag_vdir_facts *v = &f->v[i];
        v->probed = true;
        v->anon_status = 401;
        if (i == PDIAG_EAS) {
            pwire_offers_add(&v->offers, "Basic realm=\"mail\"", 18);
            continue;
        }
        pwire_offers_add(&v->offers, "Negotiate", 9);
        pwire_offers_add(&v->offers, "NTLM", 4);
        v->ntlm = v->kerberos = v->ep_cb = v->ep_nocb = PDIAG_HS_OK;
    }
    for (int p = 0; p < PDIAG_NPORTS; p++)
        f->rpc[p] = PDIAG_RPC_OK;
    f->mapi_run = f->mapi_wait_run = f->mapi_wait_ok = true;
    f->mapi_status = 200;
    f->mapi_code = 0;
    f->headers_checked = f->big_token_checked = true;
}

static void
offers(struct pdiag_facts *f, enum pdiag_vdir v, const char *const *vals)
{
    memset(&f->v[v].offers, 0, sizeof(f->v[v].offers));
    for (; *vals; vals++)
        pwire_offers_add(&f->v[v].offers, *vals, strlen(*vals));
}

static void
c_healthy(struct pdiag_facts *f)
{
    healthy(f);
}

static void
c_negotiate_only_mapi(struct pdiag_facts *f)
{
    healthy(f);
    offers(f, PDIAG_MAPI_EMSMDB, (const char *const[]){"Negotiate", NULL});
    f->v[PDIAG_MAPI_EMSMDB].ntlm = PDIAG_HS_NOTRUN;
}

static void
c_ntlm_only_rpc(struct pdiag_facts *f)
{
    healthy(f);
    offers(f, PDIAG_RPC, (const char *const[]){"NTLM", NULL});
}

/* EWS clients speak NTLM: NTLM alone is no failure there */
static void
c_ntlm_only_ews(struct pdiag_facts *f)
{
    healthy(f);
    offers(f, PDIAG_EWS, (const char *const[]){"NTLM", NULL});
}

static void
c_basic_only_rpc(struct pdiag_facts *f)
{
    healthy(f);
    offers(f, PDIAG_RPC, (const char *const[]){"Basic realm=\"mail.lab.test\"", NULL});
}

/* the two offers in one header value, as some servers send them */
static void
c_kerberos_fails_negotiate_first(struct pdiag_facts *f)
{
    healthy(f);
    offers(f, PDIAG_RPC, (const char *const[]){"Negotiate, NTLM", NULL});
    f->v[PDIAG_RPC].kerberos = PDIAG_HS_REFUSED;
}

static void
c_kerberos_fails_not_asked(struct pdiag_facts *f)
{
    c_kerberos_fails_negotiate_first(f);
    f->kerberos_asked = false;
}

static void
c_kerberos_fails_ntlm_first(struct pdiag_facts *f)
{
    healthy(f);
    offers(f, PDIAG_RPC, (const char *const[]){"NTLM", "Negotiate", NULL});
    f->v[PDIAG_RPC].kerberos = PDIAG_HS_REFUSED;
}

static void
c_kerberos_bad_final_token(struct pdiag_facts *f)
{
    healthy(f);
    f->v[PDIAG_EWS].final_token_bad = true;
}

static void
c_ssl_required(struct pdiag_facts *f)
{
    healthy(f);
    f->tls = false;
    f->v[PDIAG_RPC].anon_status = 403;
    f->v[PDIAG_RPC].ssl_required = true;
    for (int i = 0; i < PDIAG_NVDIR; i++)
        f->v[i].ep_cb = f->v[i].ep_nocb = PDIAG_HS_NOTRUN;
}

static void
c_forms(struct pdiag_facts *f)
{
    healthy(f);
    f->v[PDIAG_OWA].anon_status = 440;
    f->v[PDIAG_OWA].forms = true;
}

static void
c_ep_required(struct pdiag_facts *f)
{
    healthy(f);
    f->v[PDIAG_RPC].ep_nocb = PDIAG_HS_REFUSED;
}

static void
c_ep_reencrypted(struct pdiag_facts *f)
{
    healthy(f);
    f->v[PDIAG_RPC].ntlm = f->v[PDIAG_RPC].ep_cb = PDIAG_HS_REFUSED;
    f->v[PDIAG_RPC].ep_nocb = PDIAG_HS_REFUSED;
}

/* everything refused: a wrong password, not Extended Protection */
static void
c_bad_password(struct pdiag_facts *f)
{
    healthy(f);
    for (int i = 0; i < PDIAG_NVDIR; i++)
        f->v[i].ntlm = f->v[i].ep_cb = f->v[i].ep_nocb = f->v[i].kerberos =
            i == PDIAG_EAS ? PDIAG_HS_NOTRUN : PDIAG_HS_REFUSED;
}

static void
c_ep_offloaded(struct pdiag_facts *f)
{
    healthy(f);
    f->tls = false;
    for (int i = 0; i < PDIAG_NVDIR; i++)
        f->v[i].ep_cb = f->v[i].ep_nocb = PDIAG_HS_NOTRUN;
    f->v[PDIAG_MAPI_EMSMDB].ntlm = PDIAG_HS_REFUSED;
}

static void
c_validports(struct pdiag_facts *f)
{
    healthy(f);
    f->rpc[2] = PDIAG_RPC_INVALID_PORT;
}

static void
c_no_c2(struct pdiag_facts *f)
{
    healthy(f);
    f->rpc[0] = PDIAG_RPC_NO_C2;
}

static void
c_mapi_buffered(struct pdiag_facts *f)
{
    healthy(f);
    f->mapi_buffered = true;
}

static void
c_mapi_cut(struct pdiag_facts *f)
{
    healthy(f);
    f->mapi_wait_cut = true;
    f->mapi_wait_ok = false;
}

static void
c_headers(struct pdiag_facts *f)
{
    healthy(f);
    f->headers_lowercased = true;
    f->big_token_refused = true;
    f->big_token_status = 431;
}

static void
c_hold_cut(struct pdiag_facts *f)
{
    healthy(f);
    f->hold_run = f->hold_cut = true;
    f->hold_s = 1500;
}

static void
c_hold_survived(struct pdiag_facts *f)
{
    healthy(f);
    f->hold_run = true;
    f->hold_s = 1500;
}

static void
c_chain_incomplete(struct pdiag_facts *f)
{
    healthy(f);
    f->chain_trusted = false;
    f->chain_incomplete = true;
}

static void
c_cert_bad(struct pdiag_facts *f)
{
    healthy(f);
    f->cert_expired = true;
    f->name_ok = false;
    f->msstd_checked = true;
    f->msstd_ok = false;
}

static void
c_unhealthy(struct pdiag_facts *f)
{
    healthy(f);
    f->v[PDIAG_MAPI_EMSMDB].health = 503;
    f->v[PDIAG_RPC].health = 403; /* 403.4 on a Require-SSL vdir is no health verdict */
    f->v[PDIAG_EWS].health = 200;
}

/* NTLM refused after AUTHENTICATE everywhere, Basic works: a pooling proxy */
static void
c_pooled(struct pdiag_facts *f)
{
    c_bad_password(f);
    for (int i = 0; i < PDIAG_NVDIR; i++)
        f->v[i].ntlm_last_leg = i != PDIAG_EAS;
    f->basic_checked = f->basic_ok = true;
}

/* the same with Basic refused too: a wrong password, no F6 */
static void
c_pooled_bad_password(struct pdiag_facts *f)
{
    c_pooled(f);
    f->basic_ok = false;
}

static void
c_h2(struct pdiag_facts *f)
{
    healthy(f);
    f->h2_checked = f->h2_selected = true;
}

/* --insecure: the chain is not judged */
static void
c_insecure(struct pdiag_facts *f)
{
    healthy(f);
    f->chain_verified = false;
    f->chain_trusted = false;
}

struct want {
    const char *id;
    enum pdiag_sev sev;
    const char *vdir;
    const char *fix_has; /* substring of the fix; NULL: not checked */
};

static const struct row {
    const char *name;
    void (*setup)(struct pdiag_facts *f);
    size_t n;
    struct want w[4];
} rows[] = {
    {"healthy", c_healthy, 0, {{0}}},
    {"negotiate-only mapi (F1)",
     c_negotiate_only_mapi,
     1,
     {{"F1", PDIAG_FAIL, "mapi", "bridge = \"ntlm-to-negotiate\""}}},
    {"NTLM-only rpc (F3)",
     c_ntlm_only_rpc,
     1,
     {{"F3", PDIAG_FAIL, "rpc", "bridge = \"negotiate-to-ntlm\""}}},
    {"NTLM-only ews is fine", c_ntlm_only_ews, 0, {{0}}},
    {"Basic-only rpc (F5)",
     c_basic_only_rpc,
     1,
     {{"F5", PDIAG_FAIL, "rpc", "IISAuthenticationMethods"}}},
    {"Negotiate first, Kerberos fails (F2)",
     c_kerberos_fails_negotiate_first,
     1,
     {{"F2", PDIAG_FAIL, "rpc", "offer = [ \"NTLM\", \"Negotiate\" ]"}}},
    {"no --kerberos: no F2 claim", c_kerberos_fails_not_asked, 0, {{0}}},
    {"NTLM first: Kerberos failing is no F2", c_kerberos_fails_ntlm_first, 0, {{0}}},
    {"bad final Negotiate token", c_kerberos_bad_final_token, 1, {{"F2", PDIAG_WARN, "ews", NULL}}},
    {"403.4 (F4)", c_ssl_required, 1, {{"F4", PDIAG_FAIL, "rpc", "tls = { sni"}}},
    {"forms 440", c_forms, 1, {{"FBA", PDIAG_FAIL, "owa", "FormsAuthentication"}}},
    {"EP required end to end (F11 warn)",
     c_ep_required,
     1,
     {{"F11", PDIAG_WARN, "rpc", "same chain and key"}}},
    {"EP and re-encryption (F11)", c_ep_reencrypted, 1, {{"F11", PDIAG_FAIL, "rpc", NULL}}},
    {"bad password is not EP", c_bad_password, 0, {{0}}},
    {"EP behind TLS offload (F11)", c_ep_offloaded, 1, {{"F11", PDIAG_FAIL, "mapi", NULL}}},
    {"6004 not in ValidPorts", c_validports, 1, {{"ValidPorts", PDIAG_FAIL, "rpc", "6004"}}},
    {"OUT without C2 (F7)", c_no_c2, 1, {{"F7", PDIAG_FAIL, "rpc", NULL}}},
    {"PENDING buffered (F7)", c_mapi_buffered, 1, {{"F7", PDIAG_FAIL, "mapi", NULL}}},
    {"long poll cut (F8)", c_mapi_cut, 1, {{"F8", PDIAG_FAIL, "mapi", "idle_timeout"}}},
    {"lower-case headers, big token refused (F12, F13)",
     c_headers,
     2,
     {{"F12", PDIAG_FAIL, "-", NULL}, {"F13", PDIAG_FAIL, "-", "max_header_bytes"}}},
    {"hold cut (F8)", c_hold_cut, 1, {{"F8", PDIAG_FAIL, "rpc", "idle_timeout = \"60m\""}}},
    {"hold survived", c_hold_survived, 0, {{0}}},
    {"chain incomplete (F9)", c_chain_incomplete, 1, {{"F9", PDIAG_FAIL, "-", "fullchain"}}},
    {"expired, wrong name, msstd mismatch (F9 x3)",
     c_cert_bad,
     3,
     {{"F9", PDIAG_FAIL, "-", NULL},
      {"F9", PDIAG_FAIL, "-", "subjectAltName"},
      {"F9", PDIAG_FAIL, "-", "CertPrincipalName"}}},
    {"--insecure: chain not judged", c_insecure, 0, {{0}}},
    {"NTLM broken by pooling (F6)", c_pooled, 1, {{"F6", PDIAG_FAIL, "-", "pins"}}},
    {"pooling ruled out by a wrong password", c_pooled_bad_password, 0, {{0}}},
    {"HTTP/2 chosen (F14)", c_h2, 1, {{"F14", PDIAG_FAIL, "-", "http/1.1 only"}}},
    {"healthcheck.htm 503", c_unhealthy, 1, {{"Health", PDIAG_FAIL, "mapi", "managed"}}},
};

static void
test_diag_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        const struct row *r = &rows[i];
        struct pdiag_facts f;
        struct pdiag_finding out[PDIAG_MAX_FINDINGS];
        r->setup(&f);
        size_t n = pdiag_run(&f, "mail.contoso.com", out, PDIAG_MAX_FINDINGS);
        if (n != r->n) {
            for (size_t k = 0; k < n && k < PDIAG_MAX_FINDINGS; k++)
                print_message("  %s: got %s [%s] %s\n", r->name, out[k].id, out[k].vdir,
                              out[k].what);
            fail_msg("%s: %zu findings, want %zu", r->name, n, r->n);
        }
        for (size_t k = 0; k < n; k++) {
            if (strcmp(out[k].id, r->w[k].id) != 0 || out[k].sev != r->w[k].sev ||
                strcmp(out[k].vdir, r->w[k].vdir) != 0)
                fail_msg("%s: finding %zu is %s/%d/%s, want %s/%d/%s", r->name, k, out[k].id,
                         out[k].sev, out[k].vdir, r->w[k].id, r->w[k].sev, r->w[k].vdir);
            if (r->w[k].fix_has != NULL && strstr(out[k].fix, r->w[k].fix_has) == NULL)
                fail_msg("%s: fix \"%s\" lacks \"%s\"", r->name, out[k].fix, r->w[k].fix_has);
            assert_true(out[k].what[0] != '\0');
        }
    }
}

/* The count is the total even when the output holds fewer. */
static void
test_diag_cap(void **state)
{
    struct pdiag_facts f;
    struct pdiag_finding one[1];
    (void)state;
    c_cert_bad(&f);
    assert_int_equal(pdiag_run(&f, "h", one, 1), 3);
    assert_string_equal(one[0].id, "F9");
    assert_int_equal(pdiag_run(&f, "h", NULL, 0), 3);
}

/* ---- wire ----------------------------------------------------------------------------------- */

/* CONN/A3 and CONN/C2 as the lab and Exchange send them */
/* CONN/A3: one command, ConnectionTimeout 120000 ms (0x0001d4c0) */
static const uint8_t conn_a3[28] = {5, 0, 0x14, 3, 0x10, 0, 0, 0, 28, 0, 0,    0,    0, 0,
                                    0, 0, 0,    0, 1,    0, 2, 0, 0,  0, 0xc0, 0xd4, 1, 0};
static uint8_t conn_c2[44];

static void
make_c2(void)
{
    static const uint8_t h[20] = {5, 0, 0x14, 3, 0x10, 0, 0, 0, 44, 0,
                                  0, 0, 0,    0, 0,    0, 0, 0, 3,  0};
    memcpy(conn_c2, h, 20);
    conn_c2[20] = 6; /* Version */
    conn_c2[24] = 1;
    conn_c2[28] = 0;    /* ReceiveWindowSize */
    conn_c2[34] = 1;    /* 0x10000 */
    conn_c2[36] = 2;    /* ConnectionTimeout */
    conn_c2[40] = 0xc0; /* 120000 = 0x1d4c0 */
    conn_c2[41] = 0xd4;
    conn_c2[42] = 0x01;
}

static void
test_rts_parse(void **state)
{
    struct pwire_pdu d;
    uint8_t a1[BENCH_RTS_CONN_A1_LEN], b1[BENCH_RTS_CONN_B1_LEN], ping[BENCH_RTS_PING_LEN];
    uint8_t ck[16] = {1};
    (void)state;
    make_c2();
    assert_int_equal(pwire_pdu_parse(conn_a3, sizeof(conn_a3), &d), 28);
    assert_int_equal(d.conn_timeout_ms, 120000);
    assert_int_equal(d.kind, PWIRE_RTS_CONN_A3);
    assert_int_equal(pwire_pdu_parse(conn_c2, sizeof(conn_c2), &d), 44);
    assert_int_equal(d.kind, PWIRE_RTS_CONN_C2);
    assert_int_equal(d.conn_timeout_ms, 120000);
    /* every prefix is incomplete, nothing is read beyond the length given */
    for (size_t n = 0; n < sizeof(conn_c2); n++) {
        uint8_t *copy = malloc(n ? n : 1);
        memcpy(copy, conn_c2, n);
        assert_int_equal(pwire_pdu_parse(copy, n, &d), PWIRE_INCOMPLETE);
        free(copy);
    }
    /* what the probe and the bench send (bench/load/bench_rts.c) parses back as RTS */
    bench_rts_conn_a1(a1, ck, ck);
    bench_rts_conn_b1(b1, ck, ck, ck, 0x40000000);
    bench_rts_ping(ping);
    assert_int_equal(pwire_pdu_parse(a1, sizeof(a1), &d), BENCH_RTS_CONN_A1_LEN);
    assert_int_equal(d.kind, PWIRE_RTS_OTHER);
    assert_int_equal(pwire_pdu_parse(b1, sizeof(b1), &d), BENCH_RTS_CONN_B1_LEN);
    assert_int_equal(pwire_pdu_parse(ping, sizeof(ping), &d), BENCH_RTS_PING_LEN);
    assert_int_equal(d.kind, PWIRE_RTS_PING);
    /* a command overrunning the PDU, a bad version, a frag_length under the header */
    uint8_t bad[28];
    memcpy(bad, conn_a3, 28);
    bad[8] = 26; /* the timeout value would overrun */
    assert_int_equal(pwire_pdu_parse(bad, 28, &d), PWIRE_ERROR);
    memcpy(bad, conn_a3, 28);
    bad[0] = 4;
    assert_int_equal(pwire_pdu_parse(bad, 28, &d), PWIRE_ERROR);
    memcpy(bad, conn_a3, 28);
    bad[8] = 10;
    assert_int_equal(pwire_pdu_parse(bad, 28, &d), PWIRE_ERROR);
    memcpy(bad, conn_a3, 28);
    bad[20] = 99; /* unknown command type */
    assert_int_equal(pwire_pdu_parse(bad, 28, &d), PWIRE_ERROR);
}

static const struct {
    const char *in;
    const char *payload; /* NULL: framing error */
    bool done;
} chunk_rows[] = {
    {"5\r\nhello\r\n0\r\n\r\n", "hello", true},
    {"5;ext=1\r\nhello\r\n0\r\n\r\n", "hello", true},
    {"5\r\nhello\r\n0\r\nX-T: 1\r\n\r\n", "hello", true},
    {"5\r\nhel", "hel", false},
    {"5\nhello\r\n0\r\n\r\n", NULL, false}, /* bare LF after the size */
    {"5\r\nhelloX\r\n", NULL, false},       /* data longer than the size */
    {"g\r\n", NULL, false},                 /* not hex */
    {"\r\n", NULL, false},                  /* no digits */
    {"fffffffff\r\n", NULL, false},         /* over 2^31 */
    {"0\r\n\n", NULL, false},               /* bare LF ends the trailers */
};

static void
test_chunked(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(chunk_rows) / sizeof(chunk_rows[0]); i++) {
        const char *in = chunk_rows[i].in;
        /* byte by byte, so every split point is crossed */
        struct pwire_chunked c = {0};
        uint8_t out[64];
        size_t total = 0;
        long rc = 0;
        for (size_t k = 0; in[k] && rc >= 0; k++) {
            size_t o = 0;
            rc = pwire_chunked_feed(&c, (const uint8_t *)in + k, 1, out + total,
                                    sizeof(out) - total, &o);
            total += o;
        }
        if (chunk_rows[i].payload == NULL) {
            assert_int_equal(rc, PWIRE_ERROR);
            continue;
        }
        assert_true(rc >= 0);
        assert_int_equal(total, strlen(chunk_rows[i].payload));
        assert_memory_equal(out, chunk_rows[i].payload, total);
        assert_int_equal(c.st == PWIRE_CH_DONE, chunk_rows[i].done);
    }
}

static void
test_mapi_tags(void **state)
{
    static const char body[] = "PROCESSING\r\nPENDING\r\nPENDING\r\nDONE\r\nX-ElapsedTime: 5\r\n"
                               "X-ResponseCode: 0\r\n\r\n\x01\x02\x03";
    struct pwire_mapi m;
    (void)state;
    pwire_mapi_init(&m);
    for (size_t i = 0; i < sizeof(body) - 1; i++)
        pwire_mapi_feed(&m, (const uint8_t *)body + i, 1);
    assert_int_equal(m.processing, 1);
    assert_int_equal(m.pending, 2);
    assert_true(m.done && m.headers_end && !m.bad);
    assert_int_equal(m.response_code, 0);
    assert_int_equal(m.body_bytes, 3);

    pwire_mapi_init(&m);
    pwire_mapi_feed(&m, (const uint8_t *)"PROCESSING\r\nDONE\r\nX-ResponseCode: 1722\r\n\r\n", 41);
    assert_int_equal(m.response_code, 1722);
    pwire_mapi_init(&m);
    pwire_mapi_feed(&m, (const uint8_t *)"BOGUS\r\n", 7);
    assert_true(m.bad);
    char big[600];
    memset(big, 'P', sizeof(big));
    pwire_mapi_init(&m);
    pwire_mapi_feed(&m, (const uint8_t *)big, sizeof(big));
    assert_true(m.bad);
}

static void
test_offers(void **state)
{
    struct pwire_offers o = {0};
    char text[64];
    (void)state;
    pwire_offers_add(&o, "Negotiate", 9);
    pwire_offers_add(&o, "NTLM, Basic realm=\"a, b\"", 24);
    assert_int_equal(o.n, 3);
    assert_int_equal(pwire_offers_find(&o, AUTHTOK_SCHEME_NTLM), 1);
    assert_int_equal(pwire_offers_find(&o, AUTHTOK_SCHEME_DIGEST), -1);
    pwire_offers_text(&o, text, sizeof(text));
    assert_string_equal(text, "Negotiate, NTLM, Basic");
    pwire_offers_add(&o, "", 0);
    assert_true(o.malformed);
    assert_int_equal(o.n, 3);
    for (int i = 0; i < 10; i++)
        pwire_offers_add(&o, "NTLM", 4);
    assert_int_equal(o.n, PWIRE_MAX_OFFERS);
    assert_true(o.truncated);
}

static void
test_cert_names(void **state)
{
    struct pwire_cert c;
    (void)state;
    memset(&c, 0, sizeof(c));
    snprintf(c.subject_cn, sizeof(c.subject_cn), "mail.contoso.com");
    assert_true(pwire_cert_matches(&c, "MAIL.contoso.com")); /* CN when no SAN */
    snprintf(c.san[c.nsan++], PWIRE_NAME_MAX, "*.contoso.com");
    snprintf(c.san[c.nsan++], PWIRE_NAME_MAX, "autodiscover.contoso.com");
    assert_true(pwire_cert_matches(&c, "owa.contoso.com"));
    assert_false(pwire_cert_matches(&c, "a.b.contoso.com")); /* one label only */
    assert_false(pwire_cert_matches(&c, "contoso.com"));
    assert_true(pwire_cert_matches(&c, "autodiscover.contoso.com"));
    assert_false(pwire_cert_matches(&c, "mail.contoso.com.evil")); /* SANs win over the CN */
    assert_true(pwire_cert_msstd(&c, "msstd:mail.contoso.com"));
    assert_true(pwire_cert_msstd(&c, "autodiscover.contoso.com"));
    assert_false(pwire_cert_msstd(&c, "msstd:owa.contoso.com")); /* no wildcards for msstd */
    assert_false(pwire_cert_msstd(&c, "msstd:"));
    assert_int_equal(pwire_cert_parse((const uint8_t *)"\x30\x03\x02\x01\x01", 5, &c), -1);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_diag_table), cmocka_unit_test(test_diag_cap),
        cmocka_unit_test(test_rts_parse),  cmocka_unit_test(test_chunked),
        cmocka_unit_test(test_mapi_tags),  cmocka_unit_test(test_offers),
        cmocka_unit_test(test_cert_names),
    };
    return cmocka_run_group_tests_name("probe_diag", tests, NULL, NULL);
}
