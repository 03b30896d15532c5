/*
 * exshim-probe: options, the steps, output. See probe.h and the README's "exshim-probe".
 *
 * The steps run one after the other, each exchange on its own connection(s) with a deadline
 * on every wait (--timeout), so a server that stalls or sends garbage costs at most that long
 * per wait and can never hang the probe. Facts go into struct pdiag_facts; at the end the
 * diagnosis table (diag.c) turns them into findings.
 *
 * Secrets: the password is read from a file or an environment variable, handed to GSS-API or
 * Basic encoding and never printed; tokens are printed by length only.
 */
#include "probe/probe.h"

#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <openssl/provider.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>

#include "auth/b64.h"
#include "auth/token.h"
#include "bench/load/bench.h"
#include "bench/load/bench_rts.h"
#include "probe/diag.h"
#include "probe/net.h"
#include "probe/wire.h"

#define MAX_STEPS 160
#define STEP_TEXT 400
#define BIG_TOKEN_BYTES (48 * 1024)

enum area {
    A_TLS = 1 << 0,
    A_AUTH = 1 << 1,
    A_HANDSHAKE = 1 << 2,
    A_EP = 1 << 3,
    A_RPC = 1 << 4,
    A_MAPI = 1 << 5,
    A_HEADERS = 1 << 6,
    A_HOLD = 1 << 7,
};

struct step {
    const char *vdir;
    char name[40];
    enum probe_verdict v;
    unsigned ms;
    char text[STEP_TEXT];
};

struct probe {
    char url[512];
    struct pnet_target t;
    char domain[64], user[128], password[256];
    bool have_creds, kerberos, json, insecure, progress;
    const char *msstd;
    unsigned areas;
    bool vdir_on[PDIAG_NVDIR];
    unsigned hold_s;
    unsigned mapi_wait_ms;
    uint8_t cb_hash[64];
    size_t cb_hash_len;
    bool gss_ready;
    enum bench_auth_kind gss_kind;
    struct pdiag_facts f;
    struct step steps[MAX_STEPS];
    size_t nsteps;
    unsigned nstep_started;
    uint64_t t_step;
};

static uint64_t
now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static const char *
verdict_word(enum probe_verdict v)
{
    static const char *const w[] = {"pass", "warn", "fail", "skip"};
    return w[v];
}

/* ---- output ---------------------------------------------------------------------------- */

static void
progress(struct probe *P, const char *vdir, const char *what)
{
    P->t_step = now_ms();
    P->nstep_started++;
    if (P->progress)
        fprintf(stderr, "\r\033[K[%u] %s %s ...", P->nstep_started, vdir, what);
}

static void __attribute__((format(printf, 5, 6)))
step_done(struct probe *P, const char *vdir, const char *name, enum probe_verdict v,
          const char *fmt, ...)
{
    struct step *s;
    va_list ap;
    if (P->nsteps == MAX_STEPS)
        return;
    s = &P->steps[P->nsteps++];
    s->vdir = vdir;
    snprintf(s->name, sizeof(s->name), "%s", name);
    s->v = v;
    s->ms = (unsigned)(now_ms() - P->t_step);
    va_start(ap, fmt);
    vsnprintf(s->text, sizeof(s->text), fmt, ap);
    va_end(ap);
    /* server-supplied text (reason phrases, names) must not reach a terminal raw */
    for (char *q = s->text; *q; q++)
        if ((unsigned char)*q < 0x20 || (unsigned char)*q == 0x7f)
            *q = '?';
    if (P->progress)
        fprintf(stderr, "\r\033[K");
    if (!P->json) {
        printf("%-4s  %-12s %-16s %6u ms  %s\n", verdict_word(v), vdir, name, s->ms, s->text);
        fflush(stdout);
    }
}

static void
json_str(const char *s)
{
    putchar('"');
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\')
            printf("\\%c", ch);
        else if (ch < 0x20)
            printf("\\u%04x", ch);
        else
            putchar(ch);
    }
    putchar('"');
}

/* ---- authentication on one connection ---------------------------------------------------- */

enum pauth_kind {
    PA_NTLM,
    PA_KERBEROS,
    PA_BASIC,
};

struct preq {
    const char *method;
    const char *path;
    const char *extra; /* header lines, each ending in CRLF; may be NULL */
    const void *body;  /* sent on the final leg only */
    size_t blen;
    uint64_t cl;      /* Content-Length of the final leg (>= blen) */
    bool no_response; /* RPC_IN_DATA: the final request is never answered */
};

struct pauth_out {
    enum pdiag_hs hs;
    int status; /* of the last response read; 0 = none */
    int legs;
    bool final_token_present, final_token_ok;
    char why[320];
};

static int
gss_prepare(struct probe *P, enum bench_auth_kind kind, bool cb, char *why, size_t whylen)
{
    if (!P->gss_ready || P->gss_kind != kind) {
        bench_gss_done();
        P->gss_ready = false;
        if (bench_gss_init(kind, P->domain, P->user, P->password, P->t.host, why, whylen) != 0)
            return -1;
        P->gss_ready = true;
        P->gss_kind = kind;
    }
    if (cb && P->cb_hash_len > 0) {
        uint8_t app[128];
        static const char pfx[] = "tls-server-end-point:";
        memcpy(app, pfx, sizeof(pfx) - 1);
        memcpy(app + sizeof(pfx) - 1, P->cb_hash, P->cb_hash_len);
        bench_gss_set_bindings(app, sizeof(pfx) - 1 + P->cb_hash_len);
    } else {
        bench_gss_set_bindings(NULL, 0);
    }
    return 0;
}

/* The token of the first "WORD <token68>" challenge in r, or NULL. */
static const char *
challenge_token(const struct presp *r, const char *word, size_t *len_out)
{
    size_t i = 0;
    const struct h1_header *h;
    while ((h = phttp_next(r, "WWW-Authenticate", &i)) != NULL) {
        struct authtok_challenge ch[AUTHTOK_MAX_CHALLENGES];
        size_t n = 0;
        const char *why;
        if (authtok_parse_challenges(h->value.p, h->value.len, ch, AUTHTOK_MAX_CHALLENGES, &n,
                                     &why) != AUTHTOK_OK)
            continue;
        for (size_t k = 0; k < n; k++)
            if (ch[k].name.len == strlen(word) &&
                strncasecmp(ch[k].name.p, word, ch[k].name.len) == 0 && ch[k].token68.len > 0) {
                *len_out = ch[k].token68.len;
                return ch[k].token68.p;
            }
    }
    return NULL;
}

static int
send_leg(struct probe *P, struct pnet_conn *c, const struct preq *rq, const char *authz, bool final)
{
    size_t need = strlen(authz) + (rq->extra ? strlen(rq->extra) : 0) + 32;
    char *extra = malloc(need);
    int rc;
    if (extra == NULL)
        return -1;
    snprintf(extra, need, "%s%s", rq->extra ? rq->extra : "", authz);
    rc = phttp_send(c, P->t.host, rq->method, rq->path, extra, true, final ? rq->cl : 0,
                    final ? rq->body : NULL, final ? rq->blen : 0);
    free(extra);
    return rc;
}

/* Drops the body of r (bounded); -1 when the connection is no longer usable. */
static int
drop_body(struct pnet_conn *c, const struct presp *r)
{
    return phttp_read_body(c, r, NULL, 0, NULL, 4 * 1024 * 1024) == PNET_OK ? 0 : -1;
}

/*
 * Runs the request rq on c with authentication kind. On return *o tells the outcome; when a
 * final response head was read it is in *r and its body is not read yet. Returns 0, or -1
 * when the connection failed (o->why says how).
 */
static int
auth_exchange(struct probe *P, struct pnet_conn *c, enum pauth_kind kind, bool cb,
              const struct preq *rq, struct presp *r, struct pauth_out *o)
{
    struct bench_gss *g = NULL;
    char *tok = NULL, *authz = NULL;
    int rc = -1, st;
    const char *word = kind == PA_NTLM ? "NTLM" : kind == PA_KERBEROS ? "Negotiate" : "Basic";
    memset(o, 0, sizeof(*o));
    o->hs = PDIAG_HS_ERROR;
    if (kind == PA_BASIC) {
        char raw[512];
        int n = snprintf(raw, sizeof(raw), "%s%s%s:%s", P->domain, P->domain[0] ? "\\" : "",
                         P->user, P->password);
        size_t el = authb64_encoded_len((size_t)n), got;
        authz = malloc(el + 40);
        if (authz == NULL)
            goto cleanup;
        memcpy(authz, "Authorization: Basic ", 21);
        authb64_encode((const uint8_t *)raw, (size_t)n, authz + 21, el + 1, &got);
        memcpy(authz + 21 + got, "\r\n", 3);
        OPENSSL_cleanse(raw, sizeof(raw));
        o->legs = 1;
        if (send_leg(P, c, rq, authz, true) != 0) {
            snprintf(o->why, sizeof(o->why), "write failed");
            goto cleanup;
        }
        if (rq->no_response) {
            o->hs = PDIAG_HS_OK;
            rc = 0;
            goto cleanup;
        }
        st = phttp_read_head(c, r, false);
        if (st != PNET_OK) {
            snprintf(o->why, sizeof(o->why), "no answer (%s)",
                     st == PNET_TIMEOUT ? "timeout" : "closed");
            goto cleanup;
        }
        o->status = r->status;
        o->hs = r->status == 401       ? PDIAG_HS_REFUSED
                : r->status / 100 == 2 ? PDIAG_HS_OK
                                       : PDIAG_HS_ERROR;
        rc = 0;
        goto cleanup;
    }
    if (gss_prepare(P, kind == PA_KERBEROS ? BENCH_AUTH_KERBEROS : BENCH_AUTH_NTLM, cb, o->why,
                    sizeof(o->why)) != 0) {
        o->hs = PDIAG_HS_NOTRUN;
        goto cleanup;
    }
    int gs = bench_gss_step(&g, NULL, 0, &tok, o->why, sizeof(o->why));
    for (int leg = 1; leg <= 4; leg++) {
        if (gs < 0 || tok == NULL) {
            if (gs >= 0)
                snprintf(o->why, sizeof(o->why), "no token to send");
            o->hs = leg == 1 ? PDIAG_HS_NOTRUN : PDIAG_HS_ERROR;
            goto cleanup;
        }
        bool final = kind == PA_KERBEROS || gs == 0;
        size_t need = strlen(tok) + 48;
        free(authz);
        authz = malloc(need);
        if (authz == NULL)
            goto cleanup;
        snprintf(authz, need, "Authorization: %s %s\r\n", word, tok);
        free(tok);
        tok = NULL;
        o->legs = leg;
        if (send_leg(P, c, rq, authz, final) != 0) {
            snprintf(o->why, sizeof(o->why), "write failed on leg %d", leg);
            goto cleanup;
        }
        if (final && rq->no_response) {
            o->hs = PDIAG_HS_OK;
            rc = 0;
            goto cleanup;
        }
        st = phttp_read_head(c, r, false);
        if (st != PNET_OK) {
            snprintf(o->why, sizeof(o->why), "no answer to leg %d (%s)", leg,
                     st == PNET_TIMEOUT ? "timeout"
                     : st == PNET_BAD   ? "malformed"
                                        : "closed");
            goto cleanup;
        }
        o->status = r->status;
        size_t tl = 0;
        const char *in = challenge_token(r, word, &tl);
        if (final) {
            if (r->status == 401) {
                o->hs = kind == PA_KERBEROS && in != NULL ? PDIAG_HS_STEERED : PDIAG_HS_REFUSED;
                snprintf(o->why, sizeof(o->why), "401 after the %s on leg %d",
                         kind == PA_KERBEROS ? "AP-REQ" : "AUTHENTICATE", leg);
            } else if (r->status / 100 == 2) {
                o->hs = PDIAG_HS_OK;
                if (kind == PA_KERBEROS) {
                    o->final_token_present = in != NULL;
                    if (in != NULL) {
                        char *t2 = NULL, w2[200];
                        o->final_token_ok = bench_gss_step(&g, in, tl, &t2, w2, sizeof(w2)) == 0;
                        free(t2);
                    }
                }
            } else {
                o->hs = PDIAG_HS_ERROR;
                snprintf(o->why, sizeof(o->why), "status %d on leg %d", r->status, leg);
            }
            rc = 0;
            goto cleanup;
        }
        if (r->status != 401 || in == NULL) {
            o->hs = r->status == 401 ? PDIAG_HS_REFUSED : PDIAG_HS_ERROR;
            snprintf(o->why, sizeof(o->why), "%s on leg %d (no %s challenge)",
                     r->status == 401 ? "401" : "unexpected status", leg, word);
            rc = 0;
            goto cleanup;
        }
        if (drop_body(c, r) != 0) {
            snprintf(o->why, sizeof(o->why), "401 body unreadable on leg %d", leg);
            goto cleanup;
        }
        gs = bench_gss_step(&g, in, tl, &tok, o->why, sizeof(o->why));
    }
    snprintf(o->why, sizeof(o->why), "too many legs");
cleanup:
    free(tok);
    if (authz != NULL) {
        OPENSSL_cleanse(authz, strlen(authz));
        free(authz);
    }
    bench_gss_free(g);
    return rc;
}

static const char *
hs_text(const struct pauth_out *o)
{
    static char buf[340];
    switch (o->hs) {
    case PDIAG_HS_OK:
        snprintf(buf, sizeof(buf), "%d on one connection after %d leg%s", o->status, o->legs,
                 o->legs == 1 ? "" : "s");
        break;
    case PDIAG_HS_STEERED:
        snprintf(buf, sizeof(buf),
                 "Kerberos answered with a SPNEGO token steering to another "
                 "mechanism (NTLM)");
        break;
    default:
        snprintf(buf, sizeof(buf), "%s", o->why[0] ? o->why : "failed");
    }
    return buf;
}

/* ---- step 1: TCP and TLS ----------------------------------------------------------------- */

static void
step_tls(struct probe *P)
{
    char err[256];
    struct pnet_tls_info ti;
    struct pwire_cert cert;
    struct pdiag_facts *f = &P->f;
    progress(P, "-", "connect");
    struct pnet_conn *c = pnet_connect(&P->t, 0, err, sizeof(err));
    if (c == NULL) {
        step_done(P, "-", "connect", PROBE_FAIL, "%s:%s: %s", P->t.host, P->t.port, err);
        return;
    }
    if (!P->t.tls) {
        step_done(P, "-", "connect", PROBE_PASS, "TCP to %s:%s (plain HTTP: no TLS checks)",
                  P->t.host, P->t.port);
        pnet_close(c);
        return;
    }
    pnet_tls_info(c, &ti);
    pnet_close(c);
    step_done(P, "-", "connect", PROBE_PASS, "TCP and TLS to %s:%s: %s, %s", P->t.host, P->t.port,
              ti.version, ti.cipher);
    memcpy(P->cb_hash, ti.cb_hash, ti.cb_hash_len);
    P->cb_hash_len = ti.cb_hash_len;
    f->tls_checked = true;

    progress(P, "-", "tls versions");
    char ok[64] = "", no[64] = "";
    static const char *const names[] = {"1.0", "1.1", "1.2", "1.3"};
    for (int v = 0; v < 4; v++) {
        struct pnet_conn *x = pnet_connect(&P->t, 10 + v, err, sizeof(err));
        f->tls_version[v] = x != NULL;
        pnet_close(x);
        char *d = f->tls_version[v] ? ok : no;
        size_t l = strlen(d);
        snprintf(d + l, 64 - l, "%s%s", l ? ", " : "", names[v]);
    }
    bool legacy = f->tls_version[0] || f->tls_version[1];
    step_done(P, "-", "tls versions",
              f->tls_version[2] || f->tls_version[3] ? PROBE_PASS : PROBE_WARN,
              "accepted: TLS %s; refused: %s%s", ok[0] ? ok : "none", no[0] ? no : "none",
              legacy ? ""
                     : " (Windows 7 Outlook without the TLS 1.2 update needs 1.0/1.1: a legacy "
                       "listener with min_protocol = \"TLSv1.0\", F9)");

    progress(P, "-", "http/2");
    struct pnet_target h2 = P->t;
    h2.offer_h2 = true;
    struct pnet_conn *hc = pnet_connect(&h2, 0, err, sizeof(err));
    if (hc != NULL) {
        struct pnet_tls_info hi;
        pnet_tls_info(hc, &hi);
        pnet_close(hc);
        f->h2_checked = true;
        f->h2_selected = strcmp(hi.alpn, "h2") == 0;
        step_done(P, "-", "http/2", f->h2_selected ? PROBE_FAIL : PROBE_PASS,
                  "ALPN h2, http/1.1 offered: the server chose %s",
                  hi.alpn[0] ? hi.alpn : "none (HTTP/1.1)");
    }

    progress(P, "-", "certificate");
    if (pwire_cert_parse(ti.leaf_der, ti.leaf_der_len, &cert) != 0) {
        step_done(P, "-", "certificate", PROBE_FAIL, "the server sent no readable certificate");
        f->chain_verified = true;
        return;
    }
    f->cert_expired = cert.expired;
    if (P->insecure) {
        step_done(P, "-", "chain", PROBE_WARN,
                  "not judged (--insecure); %d certificate%s served, CN=%s, issuer CN=%s, "
                  "expires %s",
                  ti.chain_len, ti.chain_len == 1 ? "" : "s", cert.subject_cn, cert.issuer_cn,
                  cert.not_after);
    } else {
        f->chain_verified = true;
        f->chain_trusted = ti.verify_result == X509_V_OK;
        /* "issuer not found" is a missing intermediate when only a leaf issued by someone
         * else was served; with more certificates served it is an untrusted root */
        f->chain_incomplete = (ti.verify_result == X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY ||
                               ti.verify_result == X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT) &&
                              ti.chain_len == 1 && !cert.self_issued;
        step_done(P, "-", "chain", f->chain_trusted && !cert.expired ? PROBE_PASS : PROBE_FAIL,
                  "%d certificate%s served, CN=%s, issuer CN=%s, expires %s: %s%s", ti.chain_len,
                  ti.chain_len == 1 ? "" : "s", cert.subject_cn, cert.issuer_cn, cert.not_after,
                  f->chain_trusted ? "trusted" : X509_verify_cert_error_string(ti.verify_result),
                  cert.expired ? "; EXPIRED" : "");
    }
    f->name_ok = pwire_cert_matches(&cert, P->t.host);
    char sans[256] = "";
    for (size_t i = 0; i < cert.nsan; i++) {
        size_t l = strlen(sans);
        snprintf(sans + l, sizeof(sans) - l, "%s%s", i ? " " : "", cert.san[i]);
    }
    step_done(P, "-", "certificate name", f->name_ok ? PROBE_PASS : PROBE_FAIL,
              "%s %s the certificate (SAN: %s; CN: %s)", P->t.host,
              f->name_ok ? "matches" : "does NOT match", sans[0] ? sans : "none", cert.subject_cn);
    if (P->msstd != NULL) {
        f->msstd_checked = true;
        f->msstd_ok = pwire_cert_msstd(&cert, P->msstd);
        step_done(P, "-", "msstd", f->msstd_ok ? PROBE_PASS : PROBE_FAIL,
                  "Outlook Anywhere principal %s%s %s the certificate (CN %s)",
                  strncasecmp(P->msstd, "msstd:", 6) == 0 ? "" : "msstd:", P->msstd,
                  f->msstd_ok ? "matches" : "does NOT match", cert.subject_cn);
    }
}

/* ---- step 2: authentication methods ------------------------------------------------------ */

static bool
is_lower_name(struct h1_slice n)
{
    bool letters = false;
    for (size_t i = 0; i < n.len; i++) {
        if (n.p[i] >= 'A' && n.p[i] <= 'Z')
            return false;
        letters |= n.p[i] >= 'a' && n.p[i] <= 'z';
    }
    return letters;
}

static void
step_auth(struct probe *P, enum pdiag_vdir vd, struct presp *r)
{
    const struct pdiag_vdir_info *vi = pdiag_vdir_info(vd);
    struct pdiag_vdir_facts *v = &P->f.v[vd];
    char err[256], found[128];
    uint8_t body[4096];
    size_t blen = 0;
    progress(P, vi->name, "auth methods");
    struct pnet_conn *c = pnet_connect(&P->t, 0, err, sizeof(err));
    if (c == NULL) {
        step_done(P, vi->name, "auth methods", PROBE_FAIL, "%s", err);
        return;
    }
    if (phttp_send(c, P->t.host, "GET", vi->path, "Accept: */*\r\n", false, 0, NULL, 0) != 0 ||
        phttp_read_head(c, r, false) != PNET_OK) {
        step_done(P, vi->name, "auth methods", PROBE_FAIL, "no HTTP answer to GET %s", vi->path);
        pnet_close(c);
        return;
    }
    phttp_read_body(c, r, body, sizeof(body) - 1, &blen, 1024 * 1024);
    body[blen] = '\0';
    pnet_close(c);
    v->probed = true;
    v->anon_status = r->status;
    size_t i = 0;
    const struct h1_header *h;
    while ((h = phttp_next(r, "WWW-Authenticate", &i)) != NULL)
        pwire_offers_add(&v->offers, h->value.p, h->value.len);
    if (!P->f.headers_checked && r->h.nheaders > 2) {
        size_t lower = 0;
        for (size_t k = 0; k < r->h.nheaders; k++)
            lower += is_lower_name(r->h.headers[k].name);
        P->f.headers_checked = true;
        P->f.headers_lowercased = lower == r->h.nheaders;
    }
    pwire_offers_text(&v->offers, found, sizeof(found));
    bool ntlm = pwire_offers_find(&v->offers, AUTHTOK_SCHEME_NTLM) >= 0;
    bool neg = pwire_offers_find(&v->offers, AUTHTOK_SCHEME_NEGOTIATE) >= 0;
    bool basic = pwire_offers_find(&v->offers, AUTHTOK_SCHEME_BASIC) >= 0;
    switch (r->status) {
    case 401: {
        const char *req = !vi->windows            ? "Basic"
                          : vi->negotiate_clients ? "NTLM, Negotiate"
                                                  : "NTLM";
        bool okay = !vi->windows ? basic : ntlm && (neg || !vi->negotiate_clients);
        bool order = neg && ntlm &&
                     pwire_offers_find(&v->offers, AUTHTOK_SCHEME_NEGOTIATE) <
                         pwire_offers_find(&v->offers, AUTHTOK_SCHEME_NTLM);
        step_done(P, vi->name, "auth methods", okay ? PROBE_PASS : PROBE_FAIL,
                  "Methods Found: %s; Methods Required: %s%s%s", found, req,
                  order ? " (Negotiate first: Windows clients try Kerberos first)" : "",
                  v->offers.malformed ? "; a WWW-Authenticate value did not parse" : "");
        break;
    }
    case 403:
        v->ssl_required =
            strstr((char *)body, "403.4") != NULL || strstr((char *)body, "secure channel") != NULL;
        step_done(P, vi->name, "auth methods", PROBE_FAIL, "403 %s",
                  v->ssl_required ? "(403.4: SSL is required to view this resource)" : "Forbidden");
        break;
    case 440:
        v->forms = true;
        step_done(P, vi->name, "auth methods", PROBE_FAIL,
                  "440 Login Timeout: forms-based authentication");
        break;
    case 404:
        step_done(P, vi->name, "auth methods", PROBE_WARN, "404: %s is not published here",
                  vi->path);
        break;
    case 301:
    case 302:
        /* Exchange 2010+ OWA with forms-based authentication (the default) redirects
         * browsers to its logon page: normal there, a misconfiguration elsewhere */
        step_done(P, vi->name, "auth methods", vd == PDIAG_OWA ? PROBE_PASS : PROBE_WARN,
                  "%d redirect%s", r->status,
                  vd == PDIAG_OWA ? " to the forms logon page (browsers only)"
                                  : " without credentials (expected 401 with the offers)");
        break;
    default:
        step_done(P, vi->name, "auth methods", r->status / 100 == 2 ? PROBE_WARN : PROBE_FAIL,
                  "%d without credentials (expected 401 with the offers)", r->status);
    }
}

/* Exchange's per-vdir health page, anonymous: "200 OK<br/>SERVER". Asked once per first
 * path segment (/mapi serves both MAPI vdirs). */
static void
step_health(struct probe *P, enum pdiag_vdir vd, struct presp *r)
{
    const struct pdiag_vdir_info *vi = pdiag_vdir_info(vd);
    char path[128], err[256];
    uint8_t body[512];
    size_t blen = 0, seg = strcspn(vi->path + 1, "/") + 1;
    if (vd == PDIAG_MAPI_NSPI && P->vdir_on[PDIAG_MAPI_EMSMDB])
        return;
    snprintf(path, sizeof(path), "%.*s/healthcheck.htm", (int)seg, vi->path);
    progress(P, vi->name, "health");
    struct pnet_conn *c = pnet_connect(&P->t, 0, err, sizeof(err));
    if (c == NULL) {
        step_done(P, vi->name, "health", PROBE_FAIL, "%s", err);
        return;
    }
    if (phttp_send(c, P->t.host, "GET", path, NULL, false, 0, NULL, 0) != 0 ||
        phttp_read_head(c, r, false) != PNET_OK) {
        step_done(P, vi->name, "health", PROBE_FAIL, "no answer to GET %s", path);
        pnet_close(c);
        return;
    }
    phttp_read_body(c, r, body, sizeof(body) - 1, &blen, 65536);
    pnet_close(c);
    body[blen] = '\0';
    P->f.v[vd].health = r->status;
    /* the server name after "<br/>", printable characters only */
    char who[80] = "";
    const char *br = strstr((const char *)body, "<br/>");
    if (br != NULL) {
        size_t k = 0;
        for (br += 5; *br && k + 1 < sizeof(who); br++)
            if (*br > 0x20 && *br < 0x7f && *br != '<')
                who[k++] = *br;
        who[k] = '\0';
    }
    if (r->status == 200)
        step_done(P, vi->name, "health", PROBE_PASS, "%s: 200, served by %s", path,
                  who[0] ? who : "(no server name)");
    else if (r->status < 500)
        step_done(P, vi->name, "health", PROBE_SKIP, "%s: %d (no health verdict)", path, r->status);
    else
        step_done(P, vi->name, "health", PROBE_FAIL, "%s: %d: the vdir reports itself unhealthy",
                  path, r->status);
}

/* ---- steps 3 and 4: handshakes and Extended Protection ------------------------------------ */

static enum pdiag_hs
try_auth(struct probe *P, enum pdiag_vdir vd, enum pauth_kind kind, bool cb, struct pauth_out *o,
         struct presp *r)
{
    const struct pdiag_vdir_info *vi = pdiag_vdir_info(vd);
    char err[256];
    struct preq rq = {.method = "GET", .path = vi->path};
    struct pnet_conn *c = pnet_connect(&P->t, 0, err, sizeof(err));
    if (c == NULL) {
        memset(o, 0, sizeof(*o));
        o->hs = PDIAG_HS_ERROR;
        snprintf(o->why, sizeof(o->why), "%s", err);
        return o->hs;
    }
    if (auth_exchange(P, c, kind, cb, &rq, r, o) == 0 && o->status != 0)
        drop_body(c, r);
    pnet_close(c);
    return o->hs;
}

static enum probe_verdict
hs_verdict(enum pdiag_hs hs)
{
    return hs == PDIAG_HS_OK ? PROBE_PASS : hs == PDIAG_HS_NOTRUN ? PROBE_SKIP : PROBE_FAIL;
}

static void
step_handshake(struct probe *P, enum pdiag_vdir vd, struct presp *r)
{
    const struct pdiag_vdir_info *vi = pdiag_vdir_info(vd);
    struct pdiag_vdir_facts *v = &P->f.v[vd];
    struct pauth_out o;
    if (!v->probed || v->anon_status != 401 || !vi->windows)
        return;
    bool ntlm_offered = pwire_offers_find(&v->offers, AUTHTOK_SCHEME_NTLM) >= 0;
    /* NTLM is tried where only Negotiate is offered too: what an NTLM client meets there */
    if ((P->areas & A_HANDSHAKE) && P->have_creds &&
        (ntlm_offered || pwire_offers_find(&v->offers, AUTHTOK_SCHEME_NEGOTIATE) >= 0)) {
        progress(P, vi->name, "ntlm");
        /* over TLS with the channel binding, as Windows clients send it */
        v->ntlm = try_auth(P, vd, PA_NTLM, P->t.tls, &o, r);
        v->ntlm_last_leg = v->ntlm == PDIAG_HS_REFUSED && o.legs >= 2;
        if (P->t.tls && ntlm_offered)
            v->ep_cb = v->ntlm;
        step_done(P, vi->name, "ntlm", hs_verdict(v->ntlm), "NTLMv2%s as %s%s%s: %s",
                  P->t.tls ? " with channel binding" : "", P->domain, P->domain[0] ? "\\" : "",
                  P->user, hs_text(&o));
    }
    if ((P->areas & A_HANDSHAKE) && P->kerberos &&
        pwire_offers_find(&v->offers, AUTHTOK_SCHEME_NEGOTIATE) >= 0) {
        progress(P, vi->name, "kerberos");
        v->kerberos = try_auth(P, vd, PA_KERBEROS, false, &o, r);
        v->final_token_bad = v->kerberos == PDIAG_HS_OK && !o.final_token_ok;
        enum probe_verdict kv = hs_verdict(v->kerberos);
        int pn = pwire_offers_find(&v->offers, AUTHTOK_SCHEME_NTLM);
        /* a client offered NTLM first uses NTLM: Kerberos failing is then worth a warning */
        if (v->kerberos == PDIAG_HS_STEERED || (v->kerberos == PDIAG_HS_OK && v->final_token_bad) ||
            (kv == PROBE_FAIL && pn >= 0 &&
             pn < pwire_offers_find(&v->offers, AUTHTOK_SCHEME_NEGOTIATE)))
            kv = PROBE_WARN;
        step_done(P, vi->name, "kerberos", kv, "Negotiate/Kerberos from the ccache: %s%s",
                  hs_text(&o),
                  v->kerberos != PDIAG_HS_OK ? ""
                  : o.final_token_ok         ? "; final Negotiate token present and valid"
                  : o.final_token_present    ? "; final Negotiate token INVALID"
                                             : "; no final Negotiate token");
    }
    if ((P->areas & A_EP) && P->t.tls && P->have_creds &&
        pwire_offers_find(&v->offers, AUTHTOK_SCHEME_NTLM) >= 0) {
        progress(P, vi->name, "ep");
        v->ep_nocb = try_auth(P, vd, PA_NTLM, false, &o, r);
        enum probe_verdict ev = PROBE_PASS;
        const char *what;
        if (v->ep_cb == PDIAG_HS_OK && v->ep_nocb == PDIAG_HS_OK)
            what = "accepted with and without channel binding: Extended Protection off or "
                   "Allow";
        else if (v->ep_cb == PDIAG_HS_OK) {
            what = "accepted with the binding of the certificate seen, refused without: "
                   "Extended Protection Required and end to end";
            ev = PROBE_WARN;
        } else if (v->ep_nocb == PDIAG_HS_OK) {
            what = "refused with the binding of the certificate seen, accepted without: the "
                   "server binds to another certificate (re-encryption in between)";
            ev = PROBE_FAIL;
        } else {
            what = "refused with and without channel binding";
            ev = PROBE_FAIL;
        }
        step_done(P, vi->name, "ep", ev, "%s", what);
    }
}

/* When NTLM worked nowhere, the password is checked under Basic where a vdir offers it, so
 * that a broken path (F6) is told from a wrong password. */
static void
step_basic_check(struct probe *P, struct presp *r)
{
    struct pauth_out o;
    int where = -1;
    if (!P->have_creds)
        return;
    for (int i = 0; i < PDIAG_NVDIR; i++) {
        if (P->f.v[i].ntlm == PDIAG_HS_OK)
            return;
        if (where < 0 && P->f.v[i].anon_status == 401 &&
            pwire_offers_find(&P->f.v[i].offers, AUTHTOK_SCHEME_BASIC) >= 0)
            where = i;
    }
    if (where < 0)
        return;
    const struct pdiag_vdir_info *vi = pdiag_vdir_info((enum pdiag_vdir)where);
    progress(P, vi->name, "basic");
    P->f.basic_checked = true;
    P->f.basic_ok = try_auth(P, (enum pdiag_vdir)where, PA_BASIC, false, &o, r) == PDIAG_HS_OK;
    step_done(P, vi->name, "basic", P->f.basic_ok ? PROBE_PASS : PROBE_FAIL,
              "NTLM worked nowhere; the same credentials under Basic: %s",
              P->f.basic_ok ? "accepted (the password is right)" : hs_text(&o));
}

/* ---- step 5: RPC over HTTP ------------------------------------------------------------------ */

static bool
pick_kind(const struct probe *P, const struct pdiag_vdir_facts *v, enum pauth_kind *out)
{
    if (!P->have_creds && !P->kerberos)
        return false;
    /* what worked in the handshake step first: this step tests the protocol, not auth */
    if (v->ntlm == PDIAG_HS_OK)
        *out = PA_NTLM;
    else if (v->kerberos == PDIAG_HS_OK)
        *out = PA_KERBEROS;
    else if (P->have_creds && pwire_offers_find(&v->offers, AUTHTOK_SCHEME_NTLM) >= 0)
        *out = PA_NTLM;
    else if (P->kerberos && pwire_offers_find(&v->offers, AUTHTOK_SCHEME_NEGOTIATE) >= 0)
        *out = PA_KERBEROS;
    else if (P->have_creds && pwire_offers_find(&v->offers, AUTHTOK_SCHEME_BASIC) >= 0)
        *out = PA_BASIC;
    else if (P->have_creds)
        *out = PA_NTLM; /* what the field's NTLM clients send, to show what they get */
    else
        return false;
    return true;
}

/* Reads one PDU from c into *pdu within the timeout. 1 got one, 0 closed, -1 timeout/bad. */
static int
read_pdu(struct pnet_conn *c, struct pwire_pdu *pdu, unsigned timeout_ms)
{
    uint64_t end = now_ms() + timeout_ms;
    for (;;) {
        int n = pwire_pdu_parse(c->rbuf, c->rlen, pdu);
        if (n > 0) {
            pnet_consume(c, (size_t)n);
            return 1;
        }
        if (n == PWIRE_ERROR)
            return -1;
        uint64_t t = now_ms();
        if (t >= end)
            return -1;
        int f = pnet_fill(c, (unsigned)(end - t));
        if (f == 0)
            return 0;
        if (f < 0)
            return -1;
    }
}

static void
random_bytes(uint8_t *p, size_t n)
{
    if (RAND_bytes(p, (int)n) != 1)
        for (size_t i = 0; i < n; i++)
            p[i] = (uint8_t)random();
}

static void
step_rpc(struct probe *P, struct presp *r)
{
    static const unsigned ports[PDIAG_NPORTS] = {6001, 6002, 6004};
    struct pdiag_vdir_facts *v = &P->f.v[PDIAG_RPC];
    enum pauth_kind kind = PA_NTLM;
    if (!v->probed || v->anon_status != 401 || !pick_kind(P, v, &kind)) {
        progress(P, "rpc", "rpc");
        step_done(P, "rpc", "rpc", PROBE_SKIP,
                  !v->probed              ? "the rpc vdir was not probed"
                  : v->anon_status != 401 ? "no authentication challenge on /rpc (see auth methods)"
                                          : "no credentials for the schemes /rpc offers");
        return;
    }
    for (int p = 0; p < PDIAG_NPORTS; p++) {
        char path[400], err[256], name[16];
        uint8_t vc[16], oc[16], ic[16], ag[16], a1[BENCH_RTS_CONN_A1_LEN],
            b1[BENCH_RTS_CONN_B1_LEN];
        struct pauth_out o;
        struct pwire_pdu pdu;
        struct pnet_conn *out = NULL, *in = NULL;
        snprintf(name, sizeof(name), "rpc %u", ports[p]);
        progress(P, "rpc", name);
        snprintf(path, sizeof(path), "/rpc/rpcproxy.dll?%s:%u", P->t.host, ports[p]);
        random_bytes(vc, 16);
        random_bytes(oc, 16);
        random_bytes(ic, 16);
        random_bytes(ag, 16);
        bench_rts_conn_a1(a1, vc, oc);
        bench_rts_conn_b1(b1, vc, ic, ag, 0x40000000);
        const char *hdrs = "Accept: application/rpc\r\nCache-Control: no-cache\r\n"
                           "Connection: Keep-Alive\r\n";
        struct preq ro = {"RPC_OUT_DATA", path, hdrs, a1, sizeof(a1), sizeof(a1), false};
        struct preq ri = {"RPC_IN_DATA", path, hdrs, b1, sizeof(b1), 0x40000000ULL, true};
        out = pnet_connect(&P->t, 0, err, sizeof(err));
        if (out == NULL) {
            P->f.rpc[p] = PDIAG_RPC_ERROR;
            step_done(P, "rpc", name, PROBE_FAIL, "OUT channel: %s", err);
            continue;
        }
        if (auth_exchange(P, out, kind, P->t.tls, &ro, r, &o) != 0 || o.status == 0) {
            /* the final leg carried the CONN/A1: no head after it means buffering */
            bool final_leg = kind != PA_NTLM || o.legs >= 2;
            P->f.rpc[p] = final_leg && strstr(o.why, "timeout") != NULL ? PDIAG_RPC_OUT_STALLED
                                                                        : PDIAG_RPC_ERROR;
            step_done(P, "rpc", name, PROBE_FAIL, "RPC_OUT_DATA: %s", hs_text(&o));
            goto next;
        }
        if (r->status == 503) {
            P->f.rpc[p] = PDIAG_RPC_INVALID_PORT;
            step_done(P, "rpc", name, PROBE_FAIL,
                      "RPC_OUT_DATA: %d %.*s: RPC_S_SERVER_UNAVAILABLE (port not in ValidPorts)",
                      r->status, (int)r->h.reason.len, r->h.reason.p);
            goto next;
        }
        if (r->status == 401) {
            P->f.rpc[p] = PDIAG_RPC_AUTH;
            step_done(P, "rpc", name, PROBE_FAIL, "RPC_OUT_DATA: %s", hs_text(&o));
            goto next;
        }
        if (r->status != 200) {
            P->f.rpc[p] = PDIAG_RPC_ERROR;
            step_done(P, "rpc", name, PROBE_FAIL, "RPC_OUT_DATA answered %d", r->status);
            goto next;
        }
        if (read_pdu(out, &pdu, P->t.timeout_ms) != 1 || pdu.kind != PWIRE_RTS_CONN_A3) {
            P->f.rpc[p] = PDIAG_RPC_ERROR;
            step_done(P, "rpc", name, PROBE_FAIL,
                      "RPC_OUT_DATA 200 but no CONN/A3 (first PDU missing or malformed)");
            goto next;
        }
        unsigned timeout = pdu.conn_timeout_ms;
        in = pnet_connect(&P->t, 0, err, sizeof(err));
        if (in == NULL || auth_exchange(P, in, kind, P->t.tls, &ri, r, &o) != 0) {
            P->f.rpc[p] = PDIAG_RPC_ERROR;
            step_done(P, "rpc", name, PROBE_FAIL, "RPC_IN_DATA: %s", in ? hs_text(&o) : err);
            goto next;
        }
        int got, skipped = 0;
        /* pings may come first; a bounded number of them (the deadline bounds the time) */
        while ((got = read_pdu(out, &pdu, P->t.timeout_ms)) == 1 && pdu.kind == PWIRE_RTS_PING &&
               ++skipped < 64)
            ;
        if (got != 1 || pdu.kind != PWIRE_RTS_CONN_C2) {
            /* the IN channel may have been refused meanwhile: look for its answer */
            struct presp *ir = r;
            int st = in->rlen > 0 || pnet_fill(in, 200) > 0 ? phttp_read_head(in, ir, false)
                                                            : PNET_TIMEOUT;
            if (st == PNET_OK && ir->status == 503) {
                P->f.rpc[p] = PDIAG_RPC_INVALID_PORT;
                step_done(P, "rpc", name, PROBE_FAIL,
                          "RPC_IN_DATA: 503: RPC_S_SERVER_UNAVAILABLE (port not in ValidPorts)");
            } else {
                P->f.rpc[p] = got == 0 ? PDIAG_RPC_ERROR : PDIAG_RPC_NO_C2;
                step_done(P, "rpc", name, PROBE_FAIL, "OUT channel up (CONN/A3), but %s",
                          got == 0 ? "it closed before CONN/C2" : "no CONN/C2 in time");
            }
            goto next;
        }
        P->f.rpc[p] = PDIAG_RPC_OK;
        step_done(P, "rpc", name, PROBE_PASS,
                  "IN and OUT channels established (CONN/A1 -> A3, CONN/B1 -> C2, connection "
                  "timeout %u s) with %s",
                  timeout / 1000,
                  kind == PA_NTLM    ? "NTLM"
                  : kind == PA_BASIC ? "Basic"
                                     : "Kerberos");
        if (p == 0 && (P->areas & A_HOLD) && P->hold_s > 0) {
            /* step 8: both channels silent, then one PDU through IN must come back on OUT */
            uint8_t req[28] = {5, 0, 0, 3, 0x10, 0, 0, 0, 28, 0, 0, 0, 1, 0, 0, 0};
            memcpy(req + 24, "PRBE", 4);
            progress(P, "rpc", "hold");
            P->f.hold_run = true;
            P->f.hold_s = P->hold_s;
            uint64_t until = now_ms() + (uint64_t)P->hold_s * 1000;
            pnet_extend(in, (uint64_t)P->hold_s * 1000 + 2ULL * P->t.timeout_ms);
            pnet_extend(out, (uint64_t)P->hold_s * 1000 + 2ULL * P->t.timeout_ms);
            bool cut = false;
            while (!cut && now_ms() < until) {
                /* pings the server sends on OUT are read (not answered) while waiting */
                uint64_t left = until - now_ms();
                int f = pnet_fill(out, left > 1000 ? 1000 : (unsigned)left);
                if (f == 0 || f == -1 || f == -3) /* closed, failed, or unparsable bytes */
                    cut = true;
                else if (f > 0)
                    while (pwire_pdu_parse(out->rbuf, out->rlen, &pdu) > 0)
                        pnet_consume(out, pdu.frag_len);
                if (P->progress)
                    fprintf(stderr, "\r\033[K[%u] rpc hold %llu s left ...", P->nstep_started,
                            (unsigned long long)((until > now_ms() ? until - now_ms() : 0) / 1000));
            }
            if (!cut) {
                cut = pnet_write(in, req, sizeof(req)) != 0;
                skipped = 0;
                while (!cut && (got = read_pdu(out, &pdu, P->t.timeout_ms)) == 1 &&
                       pdu.kind != PWIRE_PDU_NOT_RTS && ++skipped < 64)
                    ;
                cut = cut || got != 1 || pdu.kind != PWIRE_PDU_NOT_RTS;
            }
            P->f.hold_cut = cut;
            step_done(P, "rpc", "hold", cut ? PROBE_FAIL : PROBE_PASS,
                      "channels silent for %u s: %s", P->hold_s,
                      cut ? "cut (the PDU sent after the silence did not come back)"
                          : "still up (a PDU sent on IN came back on OUT)");
        }
    next:
        pnet_close(in);
        pnet_close(out);
    }
}

/* ---- step 6: MAPI over HTTP ---------------------------------------------------------------- */

/* Appends "name=value" of every Set-Cookie in r to jar ("a=1; b=2"). */
static void
take_cookies(const struct presp *r, char *jar, size_t cap)
{
    size_t i = 0;
    const struct h1_header *h;
    while ((h = phttp_next(r, "Set-Cookie", &i)) != NULL) {
        size_t n = 0, l = strlen(jar);
        while (n < h->value.len && h->value.p[n] != ';')
            n++;
        if (n > 0 && l + n + 3 < cap)
            snprintf(jar + l, cap - l, "%s%.*s", l ? "; " : "", (int)n, h->value.p);
    }
}

static int
header_int(const struct presp *r, const char *name, int dflt)
{
    const struct h1_header *h = h1_find(&r->h, name);
    long v = 0;
    if (h == NULL || h->value.len == 0 || h->value.len > 9)
        return dflt;
    for (size_t i = 0; i < h->value.len; i++) {
        if (h->value.p[i] < '0' || h->value.p[i] > '9')
            return dflt;
        v = v * 10 + (h->value.p[i] - '0');
    }
    return (int)v;
}

static void
step_mapi(struct probe *P, struct presp *r)
{
    struct pdiag_vdir_facts *v = &P->f.v[PDIAG_MAPI_EMSMDB];
    struct pdiag_facts *f = &P->f;
    enum pauth_kind kind = PA_NTLM;
    char err[256], hdrs[1200], jar[1024] = "", path[300];
    uint8_t body[16384];
    size_t blen = 0;
    struct pauth_out o;
    progress(P, "mapi", "connect");
    if (!v->probed || v->anon_status != 401 || !pick_kind(P, v, &kind)) {
        step_done(P, "mapi", "connect", PROBE_SKIP, "%s",
                  !v->probed ? "the mapi vdir was not probed"
                  : v->anon_status != 401
                      ? "no authentication challenge on /mapi/emsmdb (see auth methods)"
                      : "no credentials");
        return;
    }
    struct pnet_conn *c = pnet_connect(&P->t, 0, err, sizeof(err));
    if (c == NULL) {
        step_done(P, "mapi", "connect", PROBE_FAIL, "%s", err);
        return;
    }
    static const char cinfo[] = "{2D5E7C7E-7A4C-4E8F-9F8B-1A2B3C4D5E6F}";
    snprintf(path, sizeof(path), "/mapi/emsmdb/?MailboxId=probe@%s", P->t.host);
    snprintf(hdrs, sizeof(hdrs),
             "Content-Type: application/mapi-http\r\nX-RequestType: Connect\r\n"
             "X-RequestId: %s:1\r\nX-ClientInfo: %s:1\r\n"
             "X-ClientApplication: Outlook/16.0.17928.20114\r\n",
             cinfo, cinfo);
    static const uint8_t connect_body[64];
    struct preq rq = {"POST", path, hdrs, connect_body, sizeof(connect_body), sizeof(connect_body),
                      false};
    f->mapi_run = true;
    if (auth_exchange(P, c, kind, P->t.tls, &rq, r, &o) != 0 || o.status == 0) {
        step_done(P, "mapi", "connect", PROBE_FAIL, "Connect: %s", hs_text(&o));
        goto cleanup;
    }
    f->mapi_status = r->status;
    f->mapi_code = header_int(r, "X-ResponseCode", -1);
    take_cookies(r, jar, sizeof(jar));
    if (r->status != 200 || phttp_read_body(c, r, body, sizeof(body), &blen, 1 << 20) != PNET_OK) {
        step_done(P, "mapi", "connect", PROBE_FAIL,
                  "Connect: HTTP %d%s: %s (what Outlook reports as MapiHttp ServiceCode 1722 "
                  "when the front end is refused, seeds/002)",
                  r->status, r->status == 401 ? " after the handshake" : "", hs_text(&o));
        goto cleanup;
    }
    struct pwire_mapi m;
    pwire_mapi_init(&m);
    pwire_mapi_feed(&m, body, blen);
    if (f->mapi_code < 0)
        f->mapi_code = m.response_code;
    if (f->mapi_code != 0 || !m.done) {
        step_done(P, "mapi", "connect", PROBE_FAIL, "Connect: 200 but X-ResponseCode %d%s",
                  f->mapi_code, m.done ? "" : " and no DONE meta-tag");
        goto cleanup;
    }
    step_done(P, "mapi", "connect", PROBE_PASS,
              "Connect with %s: 200, X-ResponseCode 0, session cookies %s",
              kind == PA_NTLM    ? "NTLM"
              : kind == PA_BASIC ? "Basic"
                                 : "Kerberos",
              jar[0] ? "set" : "MISSING");

    /* NotificationWait on the same (authenticated) connection */
    progress(P, "mapi", "notificationwait");
    snprintf(hdrs, sizeof(hdrs),
             "Content-Type: application/mapi-http\r\nX-RequestType: NotificationWait\r\n"
             "X-RequestId: %s:2\r\nX-ClientInfo: %s:1\r\nCookie: %s\r\n",
             cinfo, cinfo, jar);
    uint64_t t0 = now_ms();
    pnet_extend(c, (uint64_t)P->mapi_wait_ms + 2ULL * P->t.timeout_ms);
    /* NTLM (and Basic's check) hold for the connection; Kerberos may authenticate each
     * request, as Outlook does when the path does not keep the connection */
    struct preq wq = {"POST", path, hdrs, connect_body, 16, 16, false};
    struct pauth_out wo;
    bool sent =
        kind == PA_KERBEROS
            ? auth_exchange(P, c, kind, false, &wq, r, &wo) == 0 && wo.status != 0
            : phttp_send(c, P->t.host, "POST", path, hdrs, true, 16, connect_body, 16) == 0 &&
                  phttp_read_head(c, r, false) == PNET_OK;
    if (!sent || r->status != 200) {
        step_done(P, "mapi", "notificationwait", PROBE_FAIL, "NotificationWait: %s %d%s",
                  "answered", r->status,
                  r->status == 401 ? " on the authenticated connection: the path does not keep "
                                     "the connection (F6)"
                                   : "");
        goto cleanup;
    }
    f->mapi_wait_run = true;
    unsigned period = (unsigned)header_int(r, "X-PendingPeriod", 30000);
    struct pwire_chunked ch = {0};
    pwire_mapi_init(&m);
    uint64_t first_pending = 0, last_pending = 0, done_at = 0, max_gap = 0;
    unsigned seen = 0;
    bool closed = false;
    uint64_t until = t0 + P->mapi_wait_ms;
    while (!m.done && now_ms() < until) {
        uint8_t tmp[8192];
        size_t o2 = 0;
        if (r->h.body == H1_BODY_CHUNKED) {
            long used = pwire_chunked_feed(&ch, c->rbuf, c->rlen, tmp, sizeof(tmp), &o2);
            if (used < 0) {
                m.bad = true;
                break;
            }
            pnet_consume(c, (size_t)used);
        } else {
            o2 = c->rlen < sizeof(tmp) ? c->rlen : sizeof(tmp);
            memcpy(tmp, c->rbuf, o2);
            pnet_consume(c, o2);
        }
        pwire_mapi_feed(&m, tmp, o2);
        uint64_t t = now_ms();
        while (seen < m.pending) {
            seen++;
            if (first_pending == 0)
                first_pending = t;
            if (last_pending != 0 && t - last_pending > max_gap)
                max_gap = t - last_pending;
            last_pending = t;
        }
        if (m.done) {
            done_at = t;
            break;
        }
        if (o2 > 0 && c->rlen > 0)
            continue;
        int fl = pnet_fill(c, (unsigned)(until > t ? (until - t > 1000 ? 1000 : until - t) : 1));
        if (fl == 0) {
            closed = true;
            break;
        }
        if (fl == -1 || fl == -3)
            break;
    }
    uint64_t elapsed = (done_at ? done_at : now_ms()) - t0;
    /* PENDING is due every period; when none came in time but they all came at the end (or
     * the hold outlasted two periods without one) something in the path buffers */
    bool late = m.pending == 0 ? elapsed > 2ULL * period + 1000
                               : first_pending - t0 > 2ULL * period + 1000 ||
                                     (done_at && m.pending > 1 && done_at - first_pending < 100 &&
                                      elapsed > 2ULL * period);
    f->mapi_buffered = late;
    f->mapi_wait_cut = closed && !m.done;
    f->mapi_wait_ok = m.done;
    step_done(
        P, "mapi", "notificationwait", late || f->mapi_wait_cut || m.bad ? PROBE_FAIL : PROBE_PASS,
        "%s after %llu ms: %u PENDING (X-PendingPeriod %u ms, first after %llu ms, "
        "longest gap %llu ms)%s%s",
        m.done   ? "DONE"
        : closed ? "closed before DONE"
        : m.bad  ? "malformed body"
                 : "still open (stopped waiting)",
        (unsigned long long)elapsed, m.pending, period,
        (unsigned long long)(first_pending ? first_pending - t0 : 0), (unsigned long long)max_gap,
        late ? ": PENDING did not arrive as sent (buffered in the path)" : "",
        m.done && m.response_code > 0 ? "; DONE carried a non-zero X-ResponseCode" : "");
cleanup:
    pnet_close(c);
}

/* ---- step 7: header fidelity --------------------------------------------------------------- */

static void
step_headers(struct probe *P, struct presp *r)
{
    struct pdiag_facts *f = &P->f;
    char err[256];
    progress(P, "-", "header case");
    if (f->headers_checked)
        step_done(P, "-", "header case", f->headers_lowercased ? PROBE_FAIL : PROBE_PASS,
                  "response header names %s",
                  f->headers_lowercased ? "arrive all lower-case (rewritten in the path)"
                                        : "keep IIS's capitalisation");
    else
        step_done(P, "-", "header case", PROBE_SKIP, "no response to look at");

    progress(P, "-", "big token");
    size_t n = BIG_TOKEN_BYTES;
    char *hdr = malloc(n + 64);
    if (hdr == NULL)
        return;
    int o = snprintf(hdr, n + 64, "Authorization: Negotiate ");
    /* base64 of zero bytes: a token that is not Kerberos nor NTLMSSP, so it fails as a token
     * after the head was accepted */
    memset(hdr + o, 'A', n);
    memcpy(hdr + o + n, "\r\n", 3);
    struct pnet_conn *c = pnet_connect(&P->t, 0, err, sizeof(err));
    int st = PNET_IO;
    if (c != NULL &&
        phttp_send(c, P->t.host, "GET", "/ews/exchange.asmx", hdr, false, 0, NULL, 0) == 0)
        st = phttp_read_head(c, r, false);
    free(hdr);
    pnet_close(c);
    f->big_token_checked = true;
    f->big_token_status = st == PNET_OK ? r->status : 0;
    f->big_token_refused = st != PNET_OK || r->status == 400 || r->status == 431;
    step_done(P, "-", "big token", f->big_token_refused ? PROBE_FAIL : PROBE_PASS,
              "a 48 KiB Negotiate header: %s",
              st != PNET_OK          ? "connection closed without an answer"
              : f->big_token_refused ? "refused as too large"
                                     : "accepted (the token itself was refused, as it should be)");
}

/* ---- options -------------------------------------------------------------------------------- */

static void
usage(FILE *out)
{
    fprintf(out,
            "usage: exshim-probe URL [options]\n"
            "\n"
            "Runs the Remote Connectivity Analyzer's checks against an Exchange server (or\n"
            "what stands in front of it) and names the failure and the exshim config that\n"
            "fixes it. URL: https://mail.contoso.com or http://host:port.\n"
            "\n"
            "  -u, --user 'DOMAIN\\user'  credentials for NTLM and Basic\n"
            "  --password-file FILE      the password is the first line of FILE\n"
            "  --password-env VAR        the password is in environment variable VAR\n"
            "  --kerberos                also try Negotiate/Kerberos from the default ccache\n"
            "  --only LIST               areas and vdirs, comma-separated: tls auth handshake\n"
            "                            ep rpc mapi headers hold; rpc mapi nspi ews\n"
            "                            autodiscover oab owa activesync (default: all but hold)\n"
            "  --msstd NAME              Outlook Anywhere certificate principal (msstd:NAME)\n"
            "  --hold DURATION           keep an RPC channel pair silent that long (e.g. 25m),\n"
            "                            then check it still works (idle timeouts, F8)\n"
            "  --mapi-wait DURATION      longest wait on a NotificationWait (default 70s)\n"
            "  --timeout DURATION        every single wait (default 10s)\n"
            "  --json                    one JSON document instead of lines\n"
            "  --insecure                do not judge the certificate chain\n"
            "  --ca FILE                 trust this CA bundle (PEM) for the chain check\n"
            "  --resolve HOST:PORT:ADDR  connect to ADDR for HOST:PORT\n"
            "  -h, --help                this text\n"
            "\n"
            "Exit status: 0 all passed, 1 something failed, 2 usage error.\n");
}

/* "90", "500ms", "30s", "25m", "2h" -> milliseconds. */
static int
parse_duration(const char *s, uint64_t *ms)
{
    char *end;
    unsigned long long v = strtoull(s, &end, 10);
    uint64_t mul = 1000;
    if (end == s)
        return -1;
    if (strcmp(end, "ms") == 0)
        mul = 1;
    else if (strcmp(end, "s") == 0 || *end == '\0')
        mul = 1000;
    else if (strcmp(end, "m") == 0)
        mul = 60000;
    else if (strcmp(end, "h") == 0)
        mul = 3600000;
    else
        return -1;
    if (v > 86400000ULL / mul)
        return -1;
    *ms = v * mul;
    return 0;
}

static int
parse_url(struct probe *P, const char *url)
{
    const char *p = url, *host, *end;
    if (strncasecmp(p, "https://", 8) == 0) {
        P->t.tls = true;
        p += 8;
    } else if (strncasecmp(p, "http://", 7) == 0) {
        p += 7;
    } else {
        return -1;
    }
    host = p;
    end = host + strcspn(host, ":/?#");
    if (end == host || (size_t)(end - host) >= sizeof(P->t.host))
        return -1;
    memcpy(P->t.host, host, (size_t)(end - host));
    P->t.host[end - host] = '\0';
    for (char *q = P->t.host; *q; q++)
        if (!((*q >= 'a' && *q <= 'z') || (*q >= 'A' && *q <= 'Z') || (*q >= '0' && *q <= '9') ||
              *q == '.' || *q == '-'))
            return -1;
    snprintf(P->t.port, sizeof(P->t.port), "%s", P->t.tls ? "443" : "80");
    if (*end == ':') {
        size_t n = strspn(end + 1, "0123456789");
        if (n == 0 || n > 5 || strtol(end + 1, NULL, 10) > 65535)
            return -1;
        snprintf(P->t.port, sizeof(P->t.port), "%.*s", (int)n, end + 1);
        end += 1 + n;
    }
    if (*end != '\0' && *end != '/')
        return -1;
    snprintf(P->url, sizeof(P->url), "%s://%s:%s", P->t.tls ? "https" : "http", P->t.host,
             P->t.port);
    return 0;
}

static int
parse_only(struct probe *P, const char *list)
{
    static const struct {
        const char *name;
        unsigned area;
        int vdir;
    } t[] = {
        {"tls", A_TLS, -1},
        {"auth", A_AUTH, -1},
        {"handshake", A_HANDSHAKE, -1},
        {"ep", A_EP, -1},
        {"rpc", A_RPC, PDIAG_RPC},
        {"mapi", A_MAPI, PDIAG_MAPI_EMSMDB},
        {"headers", A_HEADERS, -1},
        {"hold", A_HOLD, PDIAG_RPC},
        {"nspi", 0, PDIAG_MAPI_NSPI},
        {"ews", 0, PDIAG_EWS},
        {"autodiscover", 0, PDIAG_AUTODISCOVER},
        {"oab", 0, PDIAG_OAB},
        {"owa", 0, PDIAG_OWA},
        {"activesync", 0, PDIAG_EAS},
    };
    char buf[256];
    unsigned areas = 0;
    bool vd[PDIAG_NVDIR] = {false}, any_vdir = false;
    snprintf(buf, sizeof(buf), "%s", list);
    for (char *save = NULL, *w = strtok_r(buf, ",", &save); w; w = strtok_r(NULL, ",", &save)) {
        size_t i;
        for (i = 0; i < sizeof(t) / sizeof(t[0]); i++)
            if (strcmp(w, t[i].name) == 0)
                break;
        if (i == sizeof(t) / sizeof(t[0]))
            return -1;
        areas |= t[i].area;
        if (t[i].vdir >= 0) {
            vd[t[i].vdir] = true;
            any_vdir = true;
        }
    }
    /* naming only vdirs keeps every area; naming only areas keeps every vdir */
    P->areas = areas & ~(unsigned)(A_RPC | A_MAPI | A_HOLD)
                   ? areas
                   : areas | A_TLS | A_AUTH | A_HANDSHAKE | A_EP | A_HEADERS;
    if (areas == 0)
        P->areas = A_TLS | A_AUTH | A_HANDSHAKE | A_EP | A_RPC | A_MAPI | A_HEADERS;
    for (int i = 0; i < PDIAG_NVDIR; i++)
        P->vdir_on[i] = !any_vdir || vd[i];
    if (P->areas & (A_RPC | A_HOLD))
        P->vdir_on[PDIAG_RPC] = true;
    if (P->areas & A_MAPI)
        P->vdir_on[PDIAG_MAPI_EMSMDB] = true;
    return 0;
}

static int
read_password(struct probe *P, const char *file, const char *env, char *err, size_t errlen)
{
    if (file != NULL) {
        FILE *f = fopen(file, "r");
        if (f == NULL) {
            snprintf(err, errlen, "%s: %s", file, strerror(errno));
            return -1;
        }
        if (fgets(P->password, sizeof(P->password), f) == NULL)
            P->password[0] = '\0';
        fclose(f);
        P->password[strcspn(P->password, "\r\n")] = '\0';
    } else if (env != NULL) {
        const char *v = getenv(env);
        if (v == NULL) {
            snprintf(err, errlen, "environment variable %s is not set", env);
            return -1;
        }
        snprintf(P->password, sizeof(P->password), "%s", v);
    }
    return 0;
}

static struct probe g_probe;

int
main(int argc, char **argv)
{
    struct probe *P = &g_probe;
    const char *user = NULL, *pwfile = NULL, *pwenv = NULL, *only = NULL, *resolve = NULL;
    uint64_t ms;
    char err[512];
    enum {
        O_PWFILE = 256,
        O_PWENV,
        O_KERBEROS,
        O_ONLY,
        O_JSON,
        O_INSECURE,
        O_CA,
        O_RESOLVE,
        O_MSSTD,
        O_HOLD,
        O_TIMEOUT,
        O_MAPIWAIT,
    };
    static const struct option opts[] = {
        {"user", required_argument, NULL, 'u'},
        {"password-file", required_argument, NULL, O_PWFILE},
        {"password-env", required_argument, NULL, O_PWENV},
        {"kerberos", no_argument, NULL, O_KERBEROS},
        {"only", required_argument, NULL, O_ONLY},
        {"json", no_argument, NULL, O_JSON},
        {"insecure", no_argument, NULL, O_INSECURE},
        {"ca", required_argument, NULL, O_CA},
        {"resolve", required_argument, NULL, O_RESOLVE},
        {"msstd", required_argument, NULL, O_MSSTD},
        {"hold", required_argument, NULL, O_HOLD},
        {"timeout", required_argument, NULL, O_TIMEOUT},
        {"mapi-wait", required_argument, NULL, O_MAPIWAIT},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int ch;
    P->t.timeout_ms = 10000;
    P->mapi_wait_ms = 70000;
    while ((ch = getopt_long(argc, argv, "u:h", opts, NULL)) != -1) {
        switch (ch) {
        case 'u':
            user = optarg;
            break;
        case O_PWFILE:
            pwfile = optarg;
            break;
        case O_PWENV:
            pwenv = optarg;
            break;
        case O_KERBEROS:
            P->kerberos = true;
            break;
        case O_ONLY:
            only = optarg;
            break;
        case O_JSON:
            P->json = true;
            break;
        case O_INSECURE:
            P->insecure = true;
            break;
        case O_CA:
            P->t.ca = optarg;
            break;
        case O_RESOLVE:
            resolve = optarg;
            break;
        case O_MSSTD:
            P->msstd = optarg;
            break;
        case O_HOLD:
            if (parse_duration(optarg, &ms) != 0 || ms < 1000) {
                fprintf(stderr, "exshim-probe: --hold: bad duration %s\n", optarg);
                return PROBE_EXIT_USAGE;
            }
            P->hold_s = (unsigned)(ms / 1000);
            break;
        case O_TIMEOUT:
        case O_MAPIWAIT:
            if (parse_duration(optarg, &ms) != 0 || ms < 100 || ms > 3600000) {
                fprintf(stderr, "exshim-probe: bad duration %s\n", optarg);
                return PROBE_EXIT_USAGE;
            }
            if (ch == O_TIMEOUT)
                P->t.timeout_ms = (unsigned)ms;
            else
                P->mapi_wait_ms = (unsigned)ms;
            break;
        case 'h':
            usage(stdout);
            return PROBE_EXIT_OK;
        default:
            usage(stderr);
            return PROBE_EXIT_USAGE;
        }
    }
    if (optind != argc - 1 || parse_url(P, argv[optind]) != 0) {
        if (optind == argc - 1)
            fprintf(stderr, "exshim-probe: %s: expected http(s)://HOST[:PORT]\n", argv[optind]);
        usage(stderr);
        return PROBE_EXIT_USAGE;
    }
    if (parse_only(P, only ? only : "") != 0) {
        fprintf(stderr, "exshim-probe: --only: unknown name in %s\n", only);
        return PROBE_EXIT_USAGE;
    }
    if (P->hold_s > 0) {
        P->areas |= A_HOLD | A_RPC;
        P->vdir_on[PDIAG_RPC] = true;
    }
    if (resolve != NULL) {
        /* HOST:PORT:ADDR; only the entry for the URL's host and port matters */
        const char *a = strchr(resolve, ':'), *b = a ? strchr(a + 1, ':') : NULL;
        if (b == NULL || (size_t)(b - a - 1) >= 8 || strlen(b + 1) >= sizeof(P->t.addr)) {
            fprintf(stderr, "exshim-probe: --resolve wants HOST:PORT:ADDR\n");
            return PROBE_EXIT_USAGE;
        }
        if ((size_t)(a - resolve) == strlen(P->t.host) &&
            strncasecmp(resolve, P->t.host, (size_t)(a - resolve)) == 0 &&
            strncmp(a + 1, P->t.port, (size_t)(b - a - 1)) == 0 &&
            strlen(P->t.port) == (size_t)(b - a - 1))
            snprintf(P->t.addr, sizeof(P->t.addr), "%s", b + 1);
    }
    if (user != NULL) {
        const char *bs = strchr(user, '\\');
        if (bs != NULL) {
            snprintf(P->domain, sizeof(P->domain), "%.*s", (int)(bs - user), user);
            snprintf(P->user, sizeof(P->user), "%s", bs + 1);
        } else {
            snprintf(P->user, sizeof(P->user), "%s", user);
        }
        if ((pwfile == NULL) == (pwenv == NULL)) {
            fprintf(stderr, "exshim-probe: -u needs one of --password-file or --password-env\n");
            return PROBE_EXIT_USAGE;
        }
        if (read_password(P, pwfile, pwenv, err, sizeof(err)) != 0) {
            fprintf(stderr, "exshim-probe: %s\n", err);
            return PROBE_EXIT_USAGE;
        }
        P->have_creds = true;
    } else if (pwfile != NULL || pwenv != NULL) {
        fprintf(stderr, "exshim-probe: a password without -u\n");
        return PROBE_EXIT_USAGE;
    }
    P->progress = !P->json && isatty(STDERR_FILENO);
    signal(SIGPIPE, SIG_IGN);
    /* gss-ntlmssp needs MD4 and RC4 from OpenSSL 3's legacy provider */
    OSSL_PROVIDER *legacy = OSSL_PROVIDER_load(NULL, "legacy");
    OSSL_PROVIDER *dflt = OSSL_PROVIDER_load(NULL, "default");
    pdiag_facts_init(&P->f);
    P->f.tls = P->t.tls;
    P->f.have_creds = P->have_creds;
    P->f.kerberos_asked = P->kerberos;

    struct presp *r = calloc(1, sizeof(*r));
    if (r == NULL)
        return PROBE_EXIT_FAIL;
    if (!P->json)
        printf("exshim-probe %s\n", P->url);
    if (P->areas & A_TLS)
        step_tls(P);
    if (P->areas & (A_AUTH | A_HANDSHAKE | A_EP | A_RPC | A_MAPI))
        for (int i = 0; i < PDIAG_NVDIR; i++)
            if (P->vdir_on[i]) {
                step_auth(P, (enum pdiag_vdir)i, r);
                if (P->areas & A_AUTH)
                    step_health(P, (enum pdiag_vdir)i, r);
                step_handshake(P, (enum pdiag_vdir)i, r);
            }
    if (P->areas & A_HANDSHAKE)
        step_basic_check(P, r);
    if (P->areas & (A_RPC | A_HOLD))
        step_rpc(P, r);
    if (P->areas & A_MAPI)
        step_mapi(P, r);
    if (P->areas & A_HEADERS)
        step_headers(P, r);
    free(r);
    bench_gss_done();
    OPENSSL_cleanse(P->password, sizeof(P->password));

    struct pdiag_finding fnd[PDIAG_MAX_FINDINGS];
    size_t nf = pdiag_run(&P->f, P->t.host, fnd, PDIAG_MAX_FINDINGS);
    if (nf > PDIAG_MAX_FINDINGS)
        nf = PDIAG_MAX_FINDINGS;
    bool failed = false;
    unsigned npass = 0, nwarn = 0, nfail = 0;
    for (size_t i = 0; i < P->nsteps; i++) {
        npass += P->steps[i].v == PROBE_PASS;
        nwarn += P->steps[i].v == PROBE_WARN;
        nfail += P->steps[i].v == PROBE_FAIL;
    }
    for (size_t i = 0; i < nf; i++)
        failed |= fnd[i].sev == PDIAG_FAIL;
    failed |= nfail > 0;
    if (P->json) {
        printf("{\"target\":");
        json_str(P->url);
        printf(",\"steps\":[");
        for (size_t i = 0; i < P->nsteps; i++) {
            const struct step *s = &P->steps[i];
            printf("%s{\"vdir\":", i ? "," : "");
            json_str(s->vdir);
            printf(",\"step\":");
            json_str(s->name);
            printf(",\"result\":\"%s\",\"ms\":%u,\"text\":", verdict_word(s->v), s->ms);
            json_str(s->text);
            putchar('}');
        }
        printf("],\"findings\":[");
        for (size_t i = 0; i < nf; i++) {
            printf("%s{\"id\":", i ? "," : "");
            json_str(fnd[i].id);
            printf(",\"severity\":\"%s\",\"vdir\":", fnd[i].sev == PDIAG_FAIL ? "fail" : "warn");
            json_str(fnd[i].vdir);
            printf(",\"what\":");
            json_str(fnd[i].what);
            printf(",\"fix\":");
            json_str(fnd[i].fix);
            putchar('}');
        }
        printf("],\"passed\":%u,\"warnings\":%u,\"failed\":%u,\"result\":\"%s\"}\n", npass, nwarn,
               nfail, failed ? "fail" : "pass");
    } else {
        printf("\n%u passed, %u warnings, %u failed\n", npass, nwarn, nfail);
        for (size_t i = 0; i < nf; i++)
            printf("\n%s %s [%s]: %s\n  fix: %s\n", fnd[i].sev == PDIAG_FAIL ? "FAIL" : "WARN",
                   fnd[i].id, fnd[i].vdir, fnd[i].what, fnd[i].fix);
        if (nf == 0)
            printf("no failures found\n");
    }
    if (legacy != NULL)
        OSSL_PROVIDER_unload(legacy);
    if (dflt != NULL)
        OSSL_PROVIDER_unload(dflt);
    return failed ? PROBE_EXIT_FAIL : PROBE_EXIT_OK;
}
