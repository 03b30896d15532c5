/*
 * exshim-lab: the MIT GSS-API acceptor behind "Authorization: Negotiate <token>" when the
 * token is not raw NTLMSSP: SPNEGO (carrying Kerberos, or NTLM through the gss-ntlmssp
 * mechanism with NTLM_USER_FILE) and raw Kerberos AP-REQs. MIT picks the mechanism from the
 * first token; one context per connection lives across the 401 legs.
 *
 * Kerberos needs a keytab (KRB5_KTNAME, or --keytab). When the preset turns Kerberos off, or no
 * keytab exists, the krb5 acceptor has no key and a Kerberos token fails, like IIS answering a
 * client from outside its realm.
 */
#include "bench/lab/lab.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <gssapi/gssapi.h>
#include <gssapi/gssapi_ext.h>
#include <gssapi/gssapi_krb5.h>

#include "auth/b64.h"

struct lab_gss {
    gss_ctx_id_t ctx;
    bool bound; /* GSS_C_CHANNEL_BOUND_FLAG on the established context */
};

/* 1.3.6.1.4.1.311.2.2.10 */
static const gss_OID_desc ntlmssp_oid = {10, (void *)"\x2b\x06\x01\x04\x01\x82\x37\x02\x02\x0a"};

static void
gss_text(OM_uint32 major, OM_uint32 minor, char *out, size_t cap)
{
    OM_uint32 min2, ctx = 0;
    gss_buffer_desc b = GSS_C_EMPTY_BUFFER;
    size_t o = 0;
    out[0] = '\0';
    do {
        if (GSS_ERROR(gss_display_status(&min2, major, GSS_C_GSS_CODE, GSS_C_NO_OID, &ctx, &b)))
            break;
        o += (size_t)snprintf(out + o, cap > o ? cap - o : 0, "%.*s", (int)b.length,
                              (char *)b.value);
        gss_release_buffer(&min2, &b);
    } while (ctx != 0 && o < cap);
    if (minor != 0 && o < cap) {
        ctx = 0;
        if (!GSS_ERROR(gss_display_status(&min2, minor, GSS_C_MECH_CODE, GSS_C_NO_OID, &ctx, &b))) {
            o += (size_t)snprintf(out + o, cap - o, "/%.*s", (int)b.length, (char *)b.value);
            gss_release_buffer(&min2, &b);
        }
    }
    /* the log format is space-separated: keep the reason one word */
    for (char *p = out; *p; p++)
        if (*p == ' ')
            *p = '_';
}

int
lab_gss_setup(const char *keytab, bool kerberos, const char *users_file, char *err, size_t errlen)
{
    if (users_file != NULL)
        setenv("NTLM_USER_FILE", users_file, 1);
    if (!kerberos) {
        /* no key for any principal: Kerberos tokens fail, SPNEGO can still pick NTLM */
        setenv("KRB5_KTNAME", "FILE:/nonexistent/exshim-lab-no-kerberos.keytab", 1);
    } else if (keytab != NULL) {
        char kt[1024];
        snprintf(kt, sizeof(kt), "%s%s", strchr(keytab, ':') ? "" : "FILE:", keytab);
        setenv("KRB5_KTNAME", kt, 1);
    }
    if (getenv("KRB5RCACHETYPE") == NULL)
        setenv("KRB5RCACHETYPE", "none", 0);
    const char *kt = getenv("KRB5_KTNAME");
    if (kerberos && (kt == NULL || access(kt + (strncmp(kt, "FILE:", 5) == 0 ? 5 : 0), R_OK))) {
        snprintf(err, errlen, "no readable keytab (KRB5_KTNAME=%s): Kerberos will fail",
                 kt ? kt : "unset");
        return -1;
    }
    return 0;
}

struct lab_gss *
lab_gss_new(void)
{
    struct lab_gss *g = calloc(1, sizeof(*g));
    if (g != NULL)
        g->ctx = GSS_C_NO_CONTEXT;
    return g;
}

void
lab_gss_free(struct lab_gss *g)
{
    OM_uint32 minor;
    if (g == NULL)
        return;
    if (g->ctx != GSS_C_NO_CONTEXT)
        gss_delete_sec_context(&minor, &g->ctx, GSS_C_NO_BUFFER);
    free(g);
}

bool
lab_gss_channel_bound(const struct lab_gss *g)
{
    return g != NULL && g->bound;
}

/* "alice@LAB.TEST" -> "LAB.TEST\alice"; "DOMAIN\user" stays. */
static void
windows_name(const char *in, size_t len, char *out, size_t cap)
{
    const char *at = memchr(in, '@', len);
    if (at != NULL && memchr(in, '\\', len) == NULL)
        snprintf(out, cap, "%.*s\\%.*s", (int)(len - (size_t)(at + 1 - in)), at + 1, (int)(at - in),
                 in);
    else
        snprintf(out, cap, "%.*s", (int)len, in);
}

enum lab_gss_status
lab_gss_step(struct lab_gss *g, const uint8_t *tok, size_t len, const uint8_t *cert_hash,
             size_t cert_hash_len, char **out_b64, char *user, size_t userlen,
             const char **mech_out, char *why, size_t whylen)
{
    OM_uint32 major, minor, flags = 0, min2;
    gss_buffer_desc in = {len, (void *)tok}, out = GSS_C_EMPTY_BUFFER, nb = GSS_C_EMPTY_BUFFER;
    gss_name_t src = GSS_C_NO_NAME;
    gss_OID mech = GSS_C_NO_OID;
    struct gss_channel_bindings_struct cb;
    gss_channel_bindings_t cbp = GSS_C_NO_CHANNEL_BINDINGS;
    uint8_t appdata[21 + 64];
    enum lab_gss_status rc = LAB_GSS_FAIL;

    *out_b64 = NULL;
    if (cert_hash != NULL && cert_hash_len <= 64) {
        memcpy(appdata, "tls-server-end-point:", 21);
        memcpy(appdata + 21, cert_hash, cert_hash_len);
        memset(&cb, 0, sizeof(cb));
        cb.application_data.length = 21 + cert_hash_len;
        cb.application_data.value = appdata;
        cbp = &cb;
    }
    major = gss_accept_sec_context(&minor, &g->ctx, GSS_C_NO_CREDENTIAL, &in, cbp, &src, &mech,
                                   &out, &flags, NULL, NULL);
    if (mech != GSS_C_NO_OID) {
        if (mech->length == ntlmssp_oid.length &&
            memcmp(mech->elements, ntlmssp_oid.elements, mech->length) == 0)
            *mech_out = "ntlm";
        else if (mech->length == gss_mech_krb5->length &&
                 memcmp(mech->elements, gss_mech_krb5->elements, mech->length) == 0)
            *mech_out = "kerberos";
    }
    /* any output token goes out, even with an error (krb5 gss-server rule) */
    if (out.length > 0) {
        size_t cap = authb64_encoded_len(out.length) + 1, n = 0;
        char *s = malloc(cap);
        if (s != NULL && authb64_encode(out.value, out.length, s, cap, &n) == 0)
            *out_b64 = s;
        else
            free(s);
    }
    if (GSS_ERROR(major)) {
        gss_text(major, minor, why, whylen);
        goto cleanup;
    }
    if (major & GSS_S_CONTINUE_NEEDED) {
        rc = LAB_GSS_CONTINUE;
        goto cleanup;
    }
    g->bound = (flags & GSS_C_CHANNEL_BOUND_FLAG) != 0;
    if (src != GSS_C_NO_NAME && !GSS_ERROR(gss_display_name(&min2, src, &nb, NULL))) {
        windows_name(nb.value, nb.length, user, userlen);
        gss_release_buffer(&min2, &nb);
    }
    rc = LAB_GSS_DONE;
cleanup:
    gss_release_buffer(&min2, &out);
    if (src != GSS_C_NO_NAME)
        gss_release_name(&min2, &src);
    return rc;
}
