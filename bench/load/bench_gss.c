/*
 * NTLM and Negotiate initiator for the bench: MIT GSS-API with the gss-ntlmssp mechanism.
 * One credential per process (acquired with the password), one security context per
 * connection: every channel runs its own real handshake.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gssapi/gssapi.h>
#include <gssapi/gssapi_ext.h>

#include "auth/b64.h"
#include "bench/load/bench.h"

struct bench_gss {
    gss_ctx_id_t ctx;
    unsigned cred; /* index into bench_creds */
};

static gss_OID_desc bench_ntlm_oid = {10, (void *)"\x2b\x06\x01\x04\x01\x82\x37\x02\x02\x0a"};
static gss_OID_desc bench_spnego_oid = {6, (void *)"\x2b\x06\x01\x05\x05\x02"};

/* bench_creds[0] is bench_gss_init's; bench_gss_add_cred appends more (one per user). */
#define BENCH_GSS_MAX_CREDS 10000
static gss_cred_id_t bench_cred = GSS_C_NO_CREDENTIAL;
static gss_cred_id_t *bench_creds;
static unsigned bench_ncreds, bench_creds_cap;
static gss_name_t bench_target = GSS_C_NO_NAME;
static gss_OID bench_mech;
static enum bench_auth_kind bench_auth;
static OM_uint32 bench_flags = GSS_C_INTEG_FLAG;
static uint8_t bench_cb_data[128];
static size_t bench_cb_len;
static bool bench_cb_set;
static gss_OID_desc bench_krb5_oid = {9, (void *)"\x2a\x86\x48\x86\xf7\x12\x01\x02\x02"};

static void
bench_gss_why(const char *what, OM_uint32 maj, OM_uint32 min, char *why, size_t whylen)
{
    OM_uint32 m2, ctx = 0;
    gss_buffer_desc b1 = GSS_C_EMPTY_BUFFER, b2 = GSS_C_EMPTY_BUFFER;
    gss_display_status(&m2, maj, GSS_C_GSS_CODE, GSS_C_NO_OID, &ctx, &b1);
    ctx = 0;
    gss_display_status(&m2, min, GSS_C_MECH_CODE, GSS_C_NO_OID, &ctx, &b2);
    snprintf(why, whylen, "%s: %.*s; %.*s", what, (int)b1.length, (char *)b1.value, (int)b2.length,
             (char *)b2.value);
    gss_release_buffer(&m2, &b1);
    gss_release_buffer(&m2, &b2);
}

/* A credential for DOMAIN\\user with its password (NTLM, or SPNEGO offering NTLM alone). */
static int
bench_password_cred(enum bench_auth_kind kind, const char *domain, const char *user,
                    const char *password, gss_cred_id_t *out, char *why, size_t whylen)
{
    OM_uint32 maj, min;
    char namebuf[256];
    gss_name_t uname = GSS_C_NO_NAME;
    gss_buffer_desc nb, pw;
    gss_OID_set_desc mechs = {1, &bench_ntlm_oid};

    if (domain[0])
        snprintf(namebuf, sizeof namebuf, "%s\\%s", domain, user);
    else
        snprintf(namebuf, sizeof namebuf, "%s", user);
    nb.value = namebuf;
    nb.length = strlen(namebuf);
    maj = gss_import_name(&min, &nb, GSS_C_NT_USER_NAME, &uname);
    if (GSS_ERROR(maj)) {
        bench_gss_why("import user name", maj, min, why, whylen);
        return -1;
    }
    pw.value = (void *)password;
    pw.length = strlen(password);
    /* SPNEGO wants a credential of its own (it wraps the mechanisms' ones) */
    gss_OID_set_desc spnego_set = {1, &bench_spnego_oid};
    maj = gss_acquire_cred_with_password(&min, uname, &pw, GSS_C_INDEFINITE,
                                         kind == BENCH_AUTH_NEGOTIATE ? &spnego_set : &mechs,
                                         GSS_C_INITIATE, out, NULL, NULL);
    gss_release_name(&min, &uname);
    if (GSS_ERROR(maj)) {
        bench_gss_why("acquire NTLM credential", maj, min, why, whylen);
        return -1;
    }
    if (kind == BENCH_AUTH_NEGOTIATE) {
        /* SPNEGO over a credential that only holds NTLM offers NTLM alone. */
        gss_OID_set_desc neg = {1, &bench_ntlm_oid};
        gss_set_neg_mechs(&min, *out, &neg);
    }
    return 0;
}

int
bench_gss_init(enum bench_auth_kind kind, const char *domain, const char *user,
               const char *password, const char *target_host, char *why, size_t whylen)
{
    OM_uint32 maj, min;
    char namebuf[256];
    gss_buffer_desc nb;

    bench_mech = kind == BENCH_AUTH_NEGOTIATE ? &bench_spnego_oid : &bench_ntlm_oid;
    bench_flags = GSS_C_INTEG_FLAG;
    if (kind == BENCH_AUTH_KERBEROS) {
        /* SPNEGO over the default ccache, restricted to Kerberos so that a gss-ntlmssp user
         * file in the environment cannot make it NTLM */
        gss_OID_set_desc spnego_only = {1, &bench_spnego_oid}, krb = {1, &bench_krb5_oid};
        bench_mech = &bench_spnego_oid;
        bench_flags = GSS_C_MUTUAL_FLAG | GSS_C_INTEG_FLAG;
        maj = gss_acquire_cred(&min, GSS_C_NO_NAME, GSS_C_INDEFINITE, &spnego_only, GSS_C_INITIATE,
                               &bench_cred, NULL, NULL);
        if (GSS_ERROR(maj)) {
            bench_gss_why("acquire Kerberos credential", maj, min, why, whylen);
            return -1;
        }
        gss_set_neg_mechs(&min, bench_cred, &krb);
        goto target;
    }
    if (bench_password_cred(kind, domain, user, password, &bench_cred, why, whylen) != 0)
        return -1;
target:
    snprintf(namebuf, sizeof namebuf, "HTTP@%s", target_host);
    nb.value = namebuf;
    nb.length = strlen(namebuf);
    maj = gss_import_name(&min, &nb, GSS_C_NT_HOSTBASED_SERVICE, &bench_target);
    if (GSS_ERROR(maj)) {
        bench_gss_why("import target name", maj, min, why, whylen);
        return -1;
    }
    bench_auth = kind;
    return 0;
}

int
bench_gss_add_cred(const char *domain, const char *user, const char *password, char *why,
                   size_t whylen)
{
    if (bench_cred == GSS_C_NO_CREDENTIAL || bench_auth == BENCH_AUTH_KERBEROS) {
        snprintf(why, whylen, "bench_gss_add_cred: no password credential yet");
        return -1;
    }
    if (bench_ncreds + 1 >= BENCH_GSS_MAX_CREDS) {
        snprintf(why, whylen, "more than %d users", BENCH_GSS_MAX_CREDS);
        return -1;
    }
    if (bench_ncreds + 1 >= bench_creds_cap) {
        unsigned cap = bench_creds_cap ? bench_creds_cap * 2 : 64;
        gss_cred_id_t *n = realloc(bench_creds, sizeof *n * cap);
        if (!n) {
            snprintf(why, whylen, "out of memory");
            return -1;
        }
        bench_creds = n;
        bench_creds_cap = cap;
    }
    gss_cred_id_t c = GSS_C_NO_CREDENTIAL;
    if (bench_password_cred(bench_auth, domain, user, password, &c, why, whylen) != 0)
        return -1;
    bench_creds[bench_ncreds++] = c;
    return (int)bench_ncreds; /* index 0 is bench_cred */
}

struct bench_gss *
bench_gss_new(unsigned cred)
{
    struct bench_gss *g = calloc(1, sizeof *g);
    if (!g)
        return NULL;
    g->ctx = GSS_C_NO_CONTEXT;
    g->cred = cred <= bench_ncreds ? cred : 0;
    return g;
}

int
bench_gss_step(struct bench_gss **gp, const char *in_b64, size_t in_len, char **out_b64, char *why,
               size_t whylen)
{
    OM_uint32 maj, min;
    gss_buffer_desc in = GSS_C_EMPTY_BUFFER, out = GSS_C_EMPTY_BUFFER;
    uint8_t *raw = NULL;
    struct bench_gss *g = *gp;
    int rc = -1;

    *out_b64 = NULL;
    if (!g) {
        g = calloc(1, sizeof *g);
        if (!g) {
            snprintf(why, whylen, "out of memory");
            return -1;
        }
        g->ctx = GSS_C_NO_CONTEXT;
        *gp = g;
    }
    if (in_b64) {
        size_t cap = authb64_decoded_cap(in_len), n = 0;
        raw = malloc(cap ? cap : 1);
        if (!raw || authb64_decode(in_b64, in_len, raw, cap, &n) != 0) {
            snprintf(why, whylen, "challenge is not base64 (%zu chars)", in_len);
            goto out;
        }
        in.value = raw;
        in.length = n;
    }
    struct gss_channel_bindings_struct cb;
    memset(&cb, 0, sizeof(cb));
    cb.application_data.value = bench_cb_data;
    cb.application_data.length = bench_cb_len;
    gss_cred_id_t cred = g->cred ? bench_creds[g->cred - 1] : bench_cred;
    maj = gss_init_sec_context(&min, cred, &g->ctx, bench_target, bench_mech, bench_flags, 0,
                               bench_cb_set ? &cb : GSS_C_NO_CHANNEL_BINDINGS,
                               in_b64 ? &in : GSS_C_NO_BUFFER, NULL, &out, NULL, NULL);
    if (GSS_ERROR(maj)) {
        bench_gss_why("gss_init_sec_context", maj, min, why, whylen);
        goto out;
    }
    if (out.length) {
        size_t elen = authb64_encoded_len(out.length), got;
        *out_b64 = malloc(elen + 1);
        if (!*out_b64 || authb64_encode(out.value, out.length, *out_b64, elen + 1, &got) != 0) {
            free(*out_b64);
            *out_b64 = NULL;
            snprintf(why, whylen, "token too large");
            goto out;
        }
    }
    rc = (maj & GSS_S_CONTINUE_NEEDED) ? 1 : 0;
out:
    if (out.length)
        gss_release_buffer(&min, &out);
    free(raw);
    return rc;
}

void
bench_gss_free(struct bench_gss *g)
{
    OM_uint32 min;
    if (!g)
        return;
    if (g->ctx != GSS_C_NO_CONTEXT)
        gss_delete_sec_context(&min, &g->ctx, GSS_C_NO_BUFFER);
    free(g);
}

int
bench_gss_set_bindings(const void *data, size_t len)
{
    if (data == NULL) {
        bench_cb_set = false;
        bench_cb_len = 0;
        return 0;
    }
    if (len > sizeof(bench_cb_data))
        return -1;
    memcpy(bench_cb_data, data, len);
    bench_cb_len = len;
    bench_cb_set = true;
    return 0;
}

void
bench_gss_done(void)
{
    OM_uint32 min;
    if (bench_cred != GSS_C_NO_CREDENTIAL)
        gss_release_cred(&min, &bench_cred);
    for (unsigned i = 0; i < bench_ncreds; i++)
        gss_release_cred(&min, &bench_creds[i]);
    free(bench_creds);
    bench_creds = NULL;
    bench_ncreds = bench_creds_cap = 0;
    if (bench_target != GSS_C_NO_NAME)
        gss_release_name(&min, &bench_target);
    bench_cred = GSS_C_NO_CREDENTIAL;
    bench_target = GSS_C_NO_NAME;
}
