/*
 * Edge authentication over MIT GSS-API: the acceptor for clients, and the initiator toward the
 * backend from a proxy, impersonated or password credential. See auth/gss.h for the model and
 * shared DELEGATION.md for why each call is made the way it is.
 */
#include "auth/gss.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <gssapi/gssapi.h>
#include <gssapi/gssapi_ext.h>
#include <gssapi/gssapi_krb5.h>

#include "auth/krb5v.h"

/* 1.3.6.1.4.1.311.2.2.10: NTLMSSP (gss-ntlmssp) */
static gss_OID_desc ntlm_oid = {10, (void *)"\x2b\x06\x01\x04\x01\x82\x37\x02\x02\x0a"};
/* 1.3.6.1.5.5.2: SPNEGO */
static gss_OID_desc spnego_oid = {6, (void *)"\x2b\x06\x01\x05\x05\x02"};

#define CB_PREFIX "tls-server-end-point:"
#define CB_PREFIX_LEN (sizeof(CB_PREFIX) - 1)
#define CB_HASH_MAX 64
#define NAME_MAX_LEN 512
#define TKT_FLAG_FORWARDABLE 0x40000000 /* RFC 4120 TicketFlags bit 1 */

struct authgss_acceptor {
    gss_cred_id_t cred; /* GSS_C_BOTH: krb5 + SPNEGO (negotiating krb5 only) */
    char *keytab;       /* "FILE:/path" */
    char *name;         /* the principal, as GSS displays it */
};

struct authgss_accept {
    struct authgss_acceptor *acc; /* borrowed */
    gss_ctx_id_t ctx;
    gss_cred_id_t deleg; /* owned until taken */
    bool started, done, failed, spnego, bound;
    bool forwardable; /* the client's ticket has the forwardable flag (S4U2Proxy evidence) */
    enum authgss_mech mech;
    char *client;
};

struct authgss_cred {
    gss_cred_id_t cred;
    enum authgss_cred_kind kind;
    char *name;
};

struct authgss_init {
    struct authgss_cred *cred; /* borrowed */
    gss_ctx_id_t ctx;
    gss_name_t target;
    bool done, failed;
    uint8_t cb_data[CB_PREFIX_LEN + CB_HASH_MAX];
    size_t cb_len; /* 0: no channel bindings */
};

/* ---- words and status text -------------------------------------------------------------- */

const char *
authgss_why_words(enum authgss_why why)
{
    switch (why) {
    case AUTHGSS_WHY_NONE:
        return "ok";
    case AUTHGSS_WHY_BAD_PASSWORD:
        return "wrong password (the KDC refused it)";
    case AUTHGSS_WHY_UNKNOWN_USER:
        return "user unknown to the KDC";
    case AUTHGSS_WHY_UNKNOWN_SERVICE:
        return "service principal unknown to the KDC (check the backend SPN)";
    case AUTHGSS_WHY_CLOCK_SKEW:
        return "clock skew too great between exshim, the KDC and the client (check NTP)";
    case AUTHGSS_WHY_KDC_UNREACHABLE:
        return "no KDC reachable for the realm (check krb5.conf and the network)";
    case AUTHGSS_WHY_DELEGATION_REFUSED:
        return "S4U2Proxy refused: the proxy principal is not allowed to delegate to the backend "
               "SPN (add the SPN to its msDS-AllowedToDelegateTo / krbAllowedToDelegateTo)";
    case AUTHGSS_WHY_NOT_FORWARDABLE:
        return "evidence ticket not forwardable: the user's ticket cannot be delegated (account "
               "sensitive, client without forwardable tickets, or the proxy lacks "
               "ok_to_auth_as_delegate / TrustedToAuthForDelegation)";
    case AUTHGSS_WHY_ACCOUNT_DISABLED:
        return "account disabled, locked out or expired";
    case AUTHGSS_WHY_PASSWORD_EXPIRED:
        return "password expired: the user must change it";
    case AUTHGSS_WHY_KDC_NOT_VERIFIED:
        return "the KDC's answer could not be verified with the proxy keytab (stale keytab, or "
               "not the real KDC)";
    case AUTHGSS_WHY_KEYTAB:
        return "keytab missing or without a current key for the principal";
    case AUTHGSS_WHY_BAD_BINDINGS:
        return "channel bindings do not match the TLS certificate (Extended Protection)";
    case AUTHGSS_WHY_WRONG_USER:
        return "credential names a different user";
    case AUTHGSS_WHY_BAD_TOKEN:
        return "malformed token or unsupported mechanism";
    case AUTHGSS_WHY_NO_DELEGATION:
        return "no delegable credential came with the client's ticket (is the proxy credential "
               "acquired for both accept and initiate?)";
    case AUTHGSS_WHY_REPLAY:
        return "authenticator replayed";
    case AUTHGSS_WHY_OTHER:
        break;
    }
    return "authentication failed";
}

const char *
authgss_mech_name(enum authgss_mech m)
{
    switch (m) {
    case AUTHGSS_MECH_KRB5:
        return "krb5";
    case AUTHGSS_MECH_NTLM:
        return "ntlm";
    case AUTHGSS_MECH_OTHER:
        return "other";
    case AUTHGSS_MECH_NONE:
        break;
    }
    return "none";
}

static gss_OID
mech_oid(enum authgss_mech m)
{
    if (m == AUTHGSS_MECH_KRB5)
        return (gss_OID)gss_mech_krb5;
    if (m == AUTHGSS_MECH_NTLM)
        return &ntlm_oid;
    return GSS_C_NO_OID;
}

static enum authgss_mech
mech_of(gss_const_OID oid)
{
    if (oid == GSS_C_NO_OID)
        return AUTHGSS_MECH_NONE;
    if (gss_oid_equal(oid, gss_mech_krb5))
        return AUTHGSS_MECH_KRB5;
    if (gss_oid_equal(oid, &ntlm_oid))
        return AUTHGSS_MECH_NTLM;
    return AUTHGSS_MECH_OTHER;
}

/* Appends every message of one status value (the display_status loop). */
static size_t
status_text(OM_uint32 code, int type, gss_OID mech, char *buf, size_t cap, size_t o)
{
    OM_uint32 min2, more = 0;
    gss_buffer_desc b = GSS_C_EMPTY_BUFFER;
    do {
        if (GSS_ERROR(gss_display_status(&min2, code, type, mech, &more, &b)))
            break;
        if (o < cap)
            o += (size_t)snprintf(buf + o, cap - o, "%s%.*s", o > 0 ? "; " : "", (int)b.length,
                                  (const char *)b.value);
        gss_release_buffer(&min2, &b);
    } while (more != 0);
    return o;
}

char *
authgss_strerror(uint32_t major, uint32_t minor, enum authgss_mech mech, char *buf, size_t cap)
{
    size_t o = 0;
    buf[0] = '\0';
    o = status_text(major, GSS_C_GSS_CODE, GSS_C_NO_OID, buf, cap, o);
    if (minor != 0)
        o = status_text(minor, GSS_C_MECH_CODE, mech_oid(mech), buf, cap, o);
    if (o >= cap && cap > 0)
        buf[cap - 1] = '\0';
    return buf;
}

/*
 * Fills err for a failed call: classification from the major code, else from the krb5 minor
 * code in phase; text "<words>: <what>: <major/minor text>".
 */
static void
gss_fail(struct authgss_error *err, OM_uint32 major, OM_uint32 minor, enum authgss_mech mech,
         enum authkrb5_phase phase, const char *what)
{
    char t[AUTHGSS_ERROR_TEXT / 2];
    enum authgss_why why;

    /* the krb5 mechanism's minor codes are krb5 error codes: they say the most */
    why = mech != AUTHGSS_MECH_NTLM && minor != 0 ? authkrb5_classify((long)(int32_t)minor, phase)
                                                  : AUTHGSS_WHY_OTHER;
    if (GSS_ROUTINE_ERROR(major) == GSS_S_BAD_BINDINGS)
        why = AUTHGSS_WHY_BAD_BINDINGS;
    else if (why != AUTHGSS_WHY_OTHER && why != AUTHGSS_WHY_NONE)
        ;
    else if (GSS_ROUTINE_ERROR(major) == GSS_S_DEFECTIVE_TOKEN ||
             GSS_ROUTINE_ERROR(major) == GSS_S_BAD_MECH ||
             GSS_ROUTINE_ERROR(major) == GSS_S_BAD_SIG)
        why = AUTHGSS_WHY_BAD_TOKEN;
    else if (GSS_ROUTINE_ERROR(major) == GSS_S_DUPLICATE_TOKEN)
        why = AUTHGSS_WHY_REPLAY;
    else if (GSS_ROUTINE_ERROR(major) == GSS_S_NO_CRED && phase == AUTHKRB5_PHASE_ACCEPT)
        why = AUTHGSS_WHY_KEYTAB;
    else
        why = AUTHGSS_WHY_OTHER;
    authgss_strerror(major, minor, mech, t, sizeof(t));
    err->why = why;
    snprintf(err->text, sizeof(err->text), "%s: %s: %s", authgss_why_words(why), what, t);
}

static void
plain_fail(struct authgss_error *err, enum authgss_why why, const char *what)
{
    err->why = why;
    snprintf(err->text, sizeof(err->text), "%s: %s", authgss_why_words(why), what);
}

/* Copies an output buffer out (and releases it): *out owned, NULL when empty. */
static int
take_buffer(gss_buffer_desc *b, uint8_t **out, size_t *outlen)
{
    OM_uint32 min2;
    int rc = 0;
    *out = NULL;
    *outlen = 0;
    if (b->length > 0) {
        uint8_t *p = malloc(b->length);
        if (p == NULL) {
            rc = -1;
        } else {
            memcpy(p, b->value, b->length);
            *out = p;
            *outlen = b->length;
        }
    }
    gss_release_buffer(&min2, b);
    return rc;
}

/* A name as text, without the NUL that gss-ntlmssp 1.2.0 appends. Returns owned or NULL. */
static char *
name_text(gss_name_t name)
{
    OM_uint32 min2;
    gss_buffer_desc b = GSS_C_EMPTY_BUFFER;
    char *s = NULL;
    size_t n;
    if (name == GSS_C_NO_NAME || GSS_ERROR(gss_display_name(&min2, name, &b, NULL)))
        return NULL;
    n = b.length;
    while (n > 0 && ((const char *)b.value)[n - 1] == '\0')
        n--;
    if (n <= NAME_MAX_LEN && memchr(b.value, '\0', n) == NULL && (s = malloc(n + 1)) != NULL) {
        memcpy(s, b.value, n);
        s[n] = '\0';
    }
    gss_release_buffer(&min2, &b);
    return s;
}

static char *
cred_name_text(gss_cred_id_t cred)
{
    OM_uint32 min2;
    gss_name_t n = GSS_C_NO_NAME;
    char *s;
    if (GSS_ERROR(gss_inquire_cred(&min2, cred, &n, NULL, NULL, NULL)))
        return NULL;
    s = name_text(n);
    gss_release_name(&min2, &n);
    return s;
}

static int
import_name(const char *text, gss_OID type, gss_name_t *out, OM_uint32 *major, OM_uint32 *minor)
{
    gss_buffer_desc b = {strlen(text), (void *)text};
    *major = gss_import_name(minor, &b, type, out);
    return GSS_ERROR(*major) ? -1 : 0;
}

static void
set_cb(struct gss_channel_bindings_struct *cb, const uint8_t *data, size_t len)
{
    memset(cb, 0, sizeof(*cb));
    cb->application_data.length = len;
    cb->application_data.value = (void *)data;
}

/* ---- acceptor --------------------------------------------------------------------------- */

struct authgss_acceptor *
authgss_acceptor_new(const char *keytab, const char *principal, struct authgss_error *err)
{
    OM_uint32 major, minor, min2;
    struct authgss_acceptor *acc = NULL, *ret = NULL;
    gss_name_t name = GSS_C_NO_NAME;
    gss_OID_set mechs = GSS_C_NO_OID_SET, neg = GSS_C_NO_OID_SET;
    static unsigned counter;
    char ccache[96];
    gss_key_value_element_desc el[3];
    gss_key_value_set_desc store = {3, el};

    err->why = AUTHGSS_WHY_NONE;
    err->text[0] = '\0';
    if (keytab == NULL || principal == NULL) {
        plain_fail(err, AUTHGSS_WHY_KEYTAB, "no keytab or principal configured");
        goto cleanup;
    }
    acc = calloc(1, sizeof(*acc));
    if (acc == NULL)
        goto oom;
    acc->cred = GSS_C_NO_CREDENTIAL;
    acc->keytab = malloc(strlen(keytab) + 6);
    if (acc->keytab == NULL)
        goto oom;
    snprintf(acc->keytab, strlen(keytab) + 6, "%s%s", strchr(keytab, ':') ? "" : "FILE:", keytab);
    /* a missing file keytab is the commonest mistake: say so before GSS says something vaguer */
    if (strncmp(acc->keytab, "FILE:", 5) == 0 && access(acc->keytab + 5, R_OK) != 0) {
        plain_fail(err, AUTHGSS_WHY_KEYTAB, "keytab not readable");
        goto cleanup;
    }
    if (import_name(principal, (gss_OID)GSS_KRB5_NT_PRINCIPAL_NAME, &name, &major, &minor) != 0) {
        gss_fail(err, major, minor, AUTHGSS_MECH_KRB5, AUTHKRB5_PHASE_ACCEPT, "proxy principal");
        goto cleanup;
    }
    /* The proxy's own TGT (for S4U2Self and as the second half of a proxy credential) goes
     * into a ccache no other process or credential shares. */
    snprintf(ccache, sizeof(ccache), "MEMORY:exshim-proxy-%ld-%u", (long)getpid(), ++counter);
    el[0] = (gss_key_value_element_desc){"keytab", acc->keytab};
    el[1] = (gss_key_value_element_desc){"client_keytab", acc->keytab};
    el[2] = (gss_key_value_element_desc){"ccache", ccache};
    if (GSS_ERROR(gss_create_empty_oid_set(&minor, &mechs)) ||
        GSS_ERROR(gss_add_oid_set_member(&minor, (gss_OID)gss_mech_krb5, &mechs)) ||
        GSS_ERROR(gss_add_oid_set_member(&minor, &spnego_oid, &mechs)) ||
        GSS_ERROR(gss_create_empty_oid_set(&minor, &neg)) ||
        GSS_ERROR(gss_add_oid_set_member(&minor, (gss_OID)gss_mech_krb5, &neg)))
        goto oom;
    major = gss_acquire_cred_from(&minor, name, GSS_C_INDEFINITE, mechs, GSS_C_BOTH, &store,
                                  &acc->cred, NULL, NULL);
    if (GSS_ERROR(major)) {
        gss_fail(err, major, minor, AUTHGSS_MECH_KRB5, AUTHKRB5_PHASE_ACCEPT,
                 "acquiring the proxy credential");
        if (err->why == AUTHGSS_WHY_OTHER)
            err->why = AUTHGSS_WHY_KEYTAB;
        goto cleanup;
    }
    /* SPNEGO negotiates Kerberos only: an NTLMSSP mechToken is never accepted at the edge. */
    major = gss_set_neg_mechs(&minor, acc->cred, neg);
    if (GSS_ERROR(major)) {
        gss_fail(err, major, minor, AUTHGSS_MECH_NONE, AUTHKRB5_PHASE_ACCEPT, "gss_set_neg_mechs");
        goto cleanup;
    }
    acc->name = strdup(principal);
    if (acc->name == NULL)
        goto oom;
    ret = acc;
    acc = NULL;
    goto cleanup;
oom:
    plain_fail(err, AUTHGSS_WHY_OTHER, "out of memory");
cleanup:
    gss_release_oid_set(&min2, &mechs);
    gss_release_oid_set(&min2, &neg);
    gss_release_name(&min2, &name);
    authgss_acceptor_free(acc);
    return ret;
}

void
authgss_acceptor_free(struct authgss_acceptor *acc)
{
    OM_uint32 min2;
    if (acc == NULL)
        return;
    gss_release_cred(&min2, &acc->cred);
    free(acc->keytab);
    free(acc->name);
    free(acc);
}

const char *
authgss_acceptor_name(const struct authgss_acceptor *acc)
{
    return acc->name;
}

int
authgss_verify_password(struct authgss_acceptor *acc, const char *user, const char *pw,
                        size_t pwlen, bool *cached_out, struct authgss_error *err)
{
    return authkrb5_verify_password(acc->keytab, acc->name, user, pw, pwlen, cached_out, err);
}

struct authgss_accept *
authgss_accept_new(struct authgss_acceptor *acc)
{
    struct authgss_accept *a = calloc(1, sizeof(*a));
    if (a == NULL)
        return NULL;
    a->acc = acc;
    a->ctx = GSS_C_NO_CONTEXT;
    a->deleg = GSS_C_NO_CREDENTIAL;
    return a;
}

void
authgss_accept_free(struct authgss_accept *a)
{
    OM_uint32 min2;
    if (a == NULL)
        return;
    if (a->ctx != GSS_C_NO_CONTEXT)
        gss_delete_sec_context(&min2, &a->ctx, GSS_C_NO_BUFFER);
    gss_release_cred(&min2, &a->deleg);
    free(a->client);
    free(a);
}

/* An InitialContextToken (60 len 06 06 2b 06 01 05 05 02 ...) for SPNEGO. */
static bool
is_spnego(const uint8_t *p, size_t len)
{
    size_t i = 1;
    if (len < 2 || p[0] != 0x60)
        return false;
    if (p[1] & 0x80)
        i += 1 + (p[1] & 0x7f);
    else
        i += 1;
    return len >= i + 8 && memcmp(p + i, "\x06\x06\x2b\x06\x01\x05\x05\x02", 8) == 0;
}

enum authgss_status
authgss_accept_step(struct authgss_accept *a, const uint8_t *in, size_t len, const uint8_t *cb_hash,
                    size_t cb_hash_len, uint8_t **out, size_t *outlen, struct authgss_error *err)
{
    OM_uint32 major, minor, min2, flags = 0;
    gss_buffer_desc ib = {len, (void *)in}, ob = GSS_C_EMPTY_BUFFER;
    gss_name_t src = GSS_C_NO_NAME;
    gss_OID mech = GSS_C_NO_OID;
    gss_cred_id_t deleg = GSS_C_NO_CREDENTIAL;
    struct gss_channel_bindings_struct cb;
    uint8_t cbd[CB_PREFIX_LEN + CB_HASH_MAX];
    enum authgss_status st = AUTHGSS_FAIL;

    *out = NULL;
    *outlen = 0;
    err->why = AUTHGSS_WHY_NONE;
    err->text[0] = '\0';
    if (a->done || a->failed || len == 0) {
        plain_fail(err, AUTHGSS_WHY_BAD_TOKEN,
                   len == 0 ? "empty token" : "context already finished");
        goto cleanup;
    }
    if (cb_hash != NULL && (cb_hash_len == 0 || cb_hash_len > CB_HASH_MAX)) {
        plain_fail(err, AUTHGSS_WHY_OTHER, "bad certificate hash length");
        goto cleanup;
    }
    if (!a->started)
        a->spnego = is_spnego(in, len);
    a->started = true;
    if (cb_hash != NULL) {
        memcpy(cbd, CB_PREFIX, CB_PREFIX_LEN);
        memcpy(cbd + CB_PREFIX_LEN, cb_hash, cb_hash_len);
        set_cb(&cb, cbd, CB_PREFIX_LEN + cb_hash_len);
    }
    major = gss_accept_sec_context(&minor, &a->ctx, a->acc->cred, &ib,
                                   cb_hash != NULL ? &cb : GSS_C_NO_CHANNEL_BINDINGS, &src, &mech,
                                   &ob, &flags, NULL, &deleg);
    /* the output token is the caller's to send, even with an error (krb5 gss-server rule) */
    if (take_buffer(&ob, out, outlen) != 0) {
        plain_fail(err, AUTHGSS_WHY_OTHER, "out of memory");
        a->failed = true;
        goto cleanup;
    }
    if (GSS_ERROR(major)) {
        gss_fail(err, major, minor,
                 mech_of(mech) == AUTHGSS_MECH_NONE ? AUTHGSS_MECH_KRB5 : mech_of(mech),
                 AUTHKRB5_PHASE_ACCEPT, "accepting the client's token");
        a->failed = true;
        goto cleanup;
    }
    if (major & GSS_S_CONTINUE_NEEDED) {
        st = AUTHGSS_CONTINUE;
        goto cleanup;
    }
    a->mech = mech_of(mech);
    if (a->mech != AUTHGSS_MECH_KRB5) {
        /* cannot happen with the neg_mechs set above; refuse rather than trust it */
        plain_fail(err, AUTHGSS_WHY_BAD_TOKEN, "a mechanism other than Kerberos was negotiated");
        a->failed = true;
        goto cleanup;
    }
    a->client = name_text(src);
    if (a->client == NULL) {
        plain_fail(err, AUTHGSS_WHY_OTHER, "no client name");
        a->failed = true;
        goto cleanup;
    }
    a->bound = (flags & GSS_C_CHANNEL_BOUND_FLAG) != 0;
    /* The KDC answers a non-forwardable evidence ticket with the same code as a proxy that may
     * not delegate: look at the ticket here, so the two are told apart. */
    {
        krb5_flags tf = 0;
        OM_uint32 m3;
        a->forwardable = !GSS_ERROR(gss_krb5_get_tkt_flags(&m3, a->ctx, &tf)) &&
                         (tf & TKT_FLAG_FORWARDABLE) != 0;
    }
    a->deleg = deleg;
    deleg = GSS_C_NO_CREDENTIAL;
    a->done = true;
    st = AUTHGSS_DONE;
cleanup:
    gss_release_name(&min2, &src);
    gss_release_cred(&min2, &deleg);
    if (a->failed && a->ctx != GSS_C_NO_CONTEXT)
        gss_delete_sec_context(&min2, &a->ctx, GSS_C_NO_BUFFER);
    return st;
}

const char *
authgss_accept_client(const struct authgss_accept *a)
{
    return a->done ? a->client : NULL;
}

enum authgss_mech
authgss_accept_mech(const struct authgss_accept *a)
{
    return a->done ? a->mech : AUTHGSS_MECH_NONE;
}

bool
authgss_accept_spnego(const struct authgss_accept *a)
{
    return a->spnego;
}

bool
authgss_accept_channel_bound(const struct authgss_accept *a)
{
    return a->done && a->bound;
}

/* PROXY when the credential names an impersonator (S4U2Proxy evidence), else FORWARDED. */
static enum authgss_cred_kind
deleg_kind(gss_cred_id_t cred)
{
    OM_uint32 major, min2;
    gss_buffer_set_t data = GSS_C_NO_BUFFER_SET;
    enum authgss_cred_kind k = AUTHGSS_CRED_FORWARDED;
    major = gss_inquire_cred_by_oid(&min2, cred, GSS_KRB5_GET_CRED_IMPERSONATOR, &data);
    if (!GSS_ERROR(major) && data != GSS_C_NO_BUFFER_SET && data->count > 0)
        k = AUTHGSS_CRED_PROXY;
    gss_release_buffer_set(&min2, &data);
    return k;
}

static struct authgss_cred *
cred_wrap(gss_cred_id_t *gc, enum authgss_cred_kind kind, struct authgss_error *err)
{
    struct authgss_cred *c = calloc(1, sizeof(*c));
    if (c == NULL) {
        plain_fail(err, AUTHGSS_WHY_OTHER, "out of memory");
        return NULL;
    }
    c->name = cred_name_text(*gc);
    if (c->name == NULL) {
        plain_fail(err, AUTHGSS_WHY_OTHER, "credential without a name");
        free(c);
        return NULL;
    }
    c->cred = *gc;
    c->kind = kind;
    *gc = GSS_C_NO_CREDENTIAL;
    return c;
}

struct authgss_cred *
authgss_accept_take_cred(struct authgss_accept *a, struct authgss_error *err)
{
    struct authgss_cred *c;
    err->why = AUTHGSS_WHY_NONE;
    err->text[0] = '\0';
    if (!a->done || a->deleg == GSS_C_NO_CREDENTIAL || !a->forwardable) {
        /* With a GSS_C_BOTH acceptor credential, MIT returns a proxy credential for every
         * forwardable ticket; none means the client's ticket was not forwardable. */
        plain_fail(err, a->done ? AUTHGSS_WHY_NOT_FORWARDABLE : AUTHGSS_WHY_NO_DELEGATION,
                   a->done ? "the client's service ticket cannot serve as S4U2Proxy evidence"
                           : "context not established");
        return NULL;
    }
    c = cred_wrap(&a->deleg, deleg_kind(a->deleg), err);
    return c;
}

/* ---- user credentials ------------------------------------------------------------------- */

static int
one_mech(gss_OID mech, gss_OID_set *out)
{
    OM_uint32 minor;
    *out = GSS_C_NO_OID_SET;
    if (GSS_ERROR(gss_create_empty_oid_set(&minor, out)) ||
        GSS_ERROR(gss_add_oid_set_member(&minor, mech, out)))
        return -1;
    return 0;
}

struct authgss_cred *
authgss_cred_impersonate(struct authgss_acceptor *acc, const char *user, struct authgss_error *err)
{
    OM_uint32 major, minor, min2;
    gss_name_t name = GSS_C_NO_NAME;
    gss_OID_set mechs = GSS_C_NO_OID_SET;
    gss_cred_id_t gc = GSS_C_NO_CREDENTIAL;
    struct authgss_cred *ret = NULL;

    err->why = AUTHGSS_WHY_NONE;
    err->text[0] = '\0';
    if (one_mech((gss_OID)gss_mech_krb5, &mechs) != 0) {
        plain_fail(err, AUTHGSS_WHY_OTHER, "out of memory");
        goto cleanup;
    }
    if (import_name(user, (gss_OID)GSS_KRB5_NT_PRINCIPAL_NAME, &name, &major, &minor) != 0) {
        gss_fail(err, major, minor, AUTHGSS_MECH_KRB5, AUTHKRB5_PHASE_S4U2SELF, "user name");
        err->why = AUTHGSS_WHY_UNKNOWN_USER;
        goto cleanup;
    }
    major = gss_acquire_cred_impersonate_name(&minor, acc->cred, name, GSS_C_INDEFINITE, mechs,
                                              GSS_C_INITIATE, &gc, NULL, NULL);
    if (GSS_ERROR(major)) {
        gss_fail(err, major, minor, AUTHGSS_MECH_KRB5, AUTHKRB5_PHASE_S4U2SELF, "S4U2Self");
        goto cleanup;
    }
    ret = cred_wrap(&gc, AUTHGSS_CRED_IMPERSONATED, err);
cleanup:
    gss_release_cred(&min2, &gc);
    gss_release_name(&min2, &name);
    gss_release_oid_set(&min2, &mechs);
    return ret;
}

static struct authgss_cred *
cred_password(const char *user, gss_OID name_type, gss_OID mech, const char *pw, size_t pwlen,
              enum authgss_cred_kind kind, struct authgss_error *err)
{
    OM_uint32 major, minor, min2;
    gss_name_t name = GSS_C_NO_NAME;
    gss_OID_set mechs = GSS_C_NO_OID_SET;
    gss_cred_id_t gc = GSS_C_NO_CREDENTIAL;
    gss_buffer_desc pb = {pwlen, (void *)pw};
    enum authgss_mech m = mech_of(mech);
    struct authgss_cred *ret = NULL;

    err->why = AUTHGSS_WHY_NONE;
    err->text[0] = '\0';
    if (one_mech(mech, &mechs) != 0) {
        plain_fail(err, AUTHGSS_WHY_OTHER, "out of memory");
        goto cleanup;
    }
    if (import_name(user, name_type, &name, &major, &minor) != 0) {
        gss_fail(err, major, minor, m, AUTHKRB5_PHASE_AS, "user name");
        err->why = AUTHGSS_WHY_UNKNOWN_USER;
        goto cleanup;
    }
    major = gss_acquire_cred_with_password(&minor, name, &pb, GSS_C_INDEFINITE, mechs,
                                           GSS_C_INITIATE, &gc, NULL, NULL);
    if (GSS_ERROR(major)) {
        gss_fail(err, major, minor, m, AUTHKRB5_PHASE_AS,
                 "acquiring a credential with the "
                 "password");
        goto cleanup;
    }
    ret = cred_wrap(&gc, kind, err);
cleanup:
    gss_release_cred(&min2, &gc);
    gss_release_name(&min2, &name);
    gss_release_oid_set(&min2, &mechs);
    return ret;
}

struct authgss_cred *
authgss_cred_password_krb5(const char *principal, const char *pw, size_t pwlen,
                           struct authgss_error *err)
{
    return cred_password(principal, (gss_OID)GSS_KRB5_NT_PRINCIPAL_NAME, (gss_OID)gss_mech_krb5, pw,
                         pwlen, AUTHGSS_CRED_PASSWORD_KRB5, err);
}

struct authgss_cred *
authgss_cred_password_ntlm(const char *domain, const char *user, const char *pw, size_t pwlen,
                           struct authgss_error *err)
{
    char full[NAME_MAX_LEN];
    struct authgss_cred *c;
    int n = snprintf(full, sizeof(full), "%s\\%s", domain, user);

    if (n < 0 || (size_t)n >= sizeof(full) || strchr(user, '\\') != NULL) {
        plain_fail(err, AUTHGSS_WHY_UNKNOWN_USER, "bad NTLM user name");
        return NULL;
    }
    c = cred_password(full, GSS_C_NT_USER_NAME, &ntlm_oid, pw, pwlen, AUTHGSS_CRED_PASSWORD_NTLM,
                      err);
    /* gss-ntlmssp falls back to NTLM_USER_FILE for credentials it cannot find otherwise: make
     * sure the one we hold is the user's own, never the first entry of some file. */
    if (c != NULL && strcasecmp(c->name, full) != 0) {
        plain_fail(err, AUTHGSS_WHY_WRONG_USER, "the NTLM credential is not the user's");
        authgss_cred_free(c);
        c = NULL;
    }
    return c;
}

void
authgss_cred_free(struct authgss_cred *c)
{
    OM_uint32 min2;
    if (c == NULL)
        return;
    gss_release_cred(&min2, &c->cred);
    free(c->name);
    free(c);
}

enum authgss_cred_kind
authgss_cred_kind(const struct authgss_cred *c)
{
    return c->kind;
}

const char *
authgss_cred_name(const struct authgss_cred *c)
{
    return c->name;
}

enum authgss_mech
authgss_cred_mech(const struct authgss_cred *c)
{
    return c->kind == AUTHGSS_CRED_PASSWORD_NTLM ? AUTHGSS_MECH_NTLM : AUTHGSS_MECH_KRB5;
}

/* ---- initiator -------------------------------------------------------------------------- */

struct authgss_init *
authgss_init_new(struct authgss_cred *cred, const char *target, const uint8_t *cb_hash,
                 size_t cb_hash_len, struct authgss_error *err)
{
    OM_uint32 major, minor;
    struct authgss_init *ini = NULL, *ret = NULL;
    char hb[NAME_MAX_LEN];
    size_t n = strcspn(target, "@");

    err->why = AUTHGSS_WHY_NONE;
    err->text[0] = '\0';
    if (cb_hash != NULL && (cb_hash_len == 0 || cb_hash_len > CB_HASH_MAX)) {
        plain_fail(err, AUTHGSS_WHY_OTHER, "bad certificate hash length");
        goto cleanup;
    }
    /* "HTTP/host[@REALM]" -> "HTTP@host": one host-based name both mechanisms import */
    if (strchr(target, '/') != NULL) {
        size_t s = strcspn(target, "/");
        n = strcspn(target + s + 1, "@");
        snprintf(hb, sizeof(hb), "%.*s@%.*s", (int)s, target, (int)n, target + s + 1);
    } else {
        snprintf(hb, sizeof(hb), "%s", target);
    }
    ini = calloc(1, sizeof(*ini));
    if (ini == NULL) {
        plain_fail(err, AUTHGSS_WHY_OTHER, "out of memory");
        goto cleanup;
    }
    ini->cred = cred;
    ini->ctx = GSS_C_NO_CONTEXT;
    ini->target = GSS_C_NO_NAME;
    if (import_name(hb, GSS_C_NT_HOSTBASED_SERVICE, &ini->target, &major, &minor) != 0) {
        gss_fail(err, major, minor, authgss_cred_mech(cred), AUTHKRB5_PHASE_INIT,
                 "backend service name");
        err->why = AUTHGSS_WHY_UNKNOWN_SERVICE;
        goto cleanup;
    }
    if (cb_hash != NULL) {
        memcpy(ini->cb_data, CB_PREFIX, CB_PREFIX_LEN);
        memcpy(ini->cb_data + CB_PREFIX_LEN, cb_hash, cb_hash_len);
        ini->cb_len = CB_PREFIX_LEN + cb_hash_len;
    }
    ret = ini;
    ini = NULL;
cleanup:
    authgss_init_free(ini);
    return ret;
}

void
authgss_init_free(struct authgss_init *ini)
{
    OM_uint32 min2;
    if (ini == NULL)
        return;
    if (ini->ctx != GSS_C_NO_CONTEXT)
        gss_delete_sec_context(&min2, &ini->ctx, GSS_C_NO_BUFFER);
    gss_release_name(&min2, &ini->target);
    free(ini);
}

enum authgss_status
authgss_init_step(struct authgss_init *ini, const uint8_t *in, size_t len, uint8_t **out,
                  size_t *outlen, struct authgss_error *err)
{
    OM_uint32 major, minor, min2, flags;
    gss_buffer_desc ib = {len, (void *)in}, ob = GSS_C_EMPTY_BUFFER;
    struct gss_channel_bindings_struct cb;
    enum authgss_mech m = authgss_cred_mech(ini->cred);
    enum authgss_cred_kind k = authgss_cred_kind(ini->cred);
    enum authkrb5_phase phase = AUTHKRB5_PHASE_INIT;
    enum authgss_status st = AUTHGSS_FAIL;

    *out = NULL;
    *outlen = 0;
    err->why = AUTHGSS_WHY_NONE;
    err->text[0] = '\0';
    if (ini->done || ini->failed) {
        plain_fail(err, AUTHGSS_WHY_BAD_TOKEN, "context already finished");
        goto cleanup;
    }
    if ((ini->ctx == GSS_C_NO_CONTEXT) != (in == NULL || len == 0)) {
        plain_fail(err, AUTHGSS_WHY_BAD_TOKEN,
                   in == NULL ? "the backend sent no token to continue with"
                              : "a token before the first step");
        goto cleanup;
    }
    if (k == AUTHGSS_CRED_PROXY || k == AUTHGSS_CRED_IMPERSONATED)
        phase = AUTHKRB5_PHASE_S4U2PROXY;
    if (ini->cb_len > 0)
        set_cb(&cb, ini->cb_data, ini->cb_len);
    /* gss_mech_krb5 or NTLMSSP, never SPNEGO: see the header (the trap) */
    flags = m == AUTHGSS_MECH_KRB5 ? GSS_C_MUTUAL_FLAG : 0;
    major =
        gss_init_sec_context(&minor, ini->cred->cred, &ini->ctx, ini->target, mech_oid(m), flags,
                             GSS_C_INDEFINITE, ini->cb_len > 0 ? &cb : GSS_C_NO_CHANNEL_BINDINGS,
                             in != NULL ? &ib : GSS_C_NO_BUFFER, NULL, &ob, NULL, NULL);
    if (take_buffer(&ob, out, outlen) != 0) {
        plain_fail(err, AUTHGSS_WHY_OTHER, "out of memory");
        ini->failed = true;
        goto cleanup;
    }
    if (GSS_ERROR(major)) {
        gss_fail(err, major, minor, m, phase,
                 k == AUTHGSS_CRED_IMPERSONATED
                     ? "S4U2Proxy to the backend after S4U2Self (also refused when the proxy "
                       "lacks ok_to_auth_as_delegate: its S4U2Self ticket is then not "
                       "forwardable)"
                 : phase == AUTHKRB5_PHASE_S4U2PROXY ? "S4U2Proxy to the backend"
                                                     : "initiating toward the backend");
        ini->failed = true;
        goto cleanup;
    }
    if (major & GSS_S_CONTINUE_NEEDED) {
        st = AUTHGSS_CONTINUE;
        goto cleanup;
    }
    ini->done = true;
    st = AUTHGSS_DONE;
cleanup:
    if (ini->failed && ini->ctx != GSS_C_NO_CONTEXT)
        gss_delete_sec_context(&min2, &ini->ctx, GSS_C_NO_BUFFER);
    return st;
}
