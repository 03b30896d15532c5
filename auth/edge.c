/*
 * Edge authentication state machine for one client connection. See auth/edge.h for the calls
 * and their order; every GSS operation goes through auth/gss.h.
 *
 * Client side                          Backend side (one backend connection at a time)
 *   CL_NONE        no user yet           BK_NONE       not authenticated
 *   CL_NEGOTIATING SPNEGO legs going     BK_KRB_SENT   AP-REQ sent, waiting for the answer
 *   CL_AUTHED      user known, with a    BK_NTLM_NEG   NTLM NEGOTIATE sent, waiting for 401
 *                  credential for the    BK_NTLM_AUTH  AUTHENTICATE sent, waiting for the answer
 *                  backend               BK_AUTHED     the backend knows the user (IIS keeps
 *                                                      Windows authentication per connection)
 */
#include "auth/edge.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "auth/b64.h"
#include "auth/ntlm.h"
#include "auth/token.h"

#define ID_LEN 32
#define USER_MAX 128

enum cl_state {
    CL_NONE = 0,    /* no user: requests get the edge's offers */
    CL_NEGOTIATING, /* a SPNEGO handshake needs another client leg */
    CL_AUTHED,      /* the user is known and holds a credential toward the backend */
};

enum bk_state {
    BK_NONE = 0,  /* the backend connection (if any) knows nobody */
    BK_KRB_SENT,  /* a request carried our AP-REQ; its answer decides */
    BK_NTLM_NEG,  /* a request carried the NTLM NEGOTIATE; a 401 with the CHALLENGE is due */
    BK_NTLM_AUTH, /* the request was resent with the AUTHENTICATE; its answer decides */
    BK_AUTHED,    /* the backend connection is authenticated as bk_user */
};

struct edge {
    const struct edge_env *env; /* borrowed */
    enum cl_state cl;
    enum bk_state bk;
    struct authgss_accept *acc;     /* client handshake in progress */
    struct authgss_cred *cred;      /* the user's credential toward the backend */
    struct authgss_cred *ntlm_cred; /* password-NTLM: one per backend handshake */
    struct authgss_init *ini;       /* the backend handshake in progress */
    char *password;                 /* password-NTLM only: zeroed before it is freed */
    size_t pwlen;
    char ntlm_user[USER_MAX], ntlm_domain[USER_MAX];
    uint8_t salt[16];
    uint8_t client_cb[64];    /* tls-server-end-point hash of the certificate the client saw */
    size_t client_cb_len;     /* 0: none (plain connection, or not set) */
    uint8_t basic_id[ID_LEN]; /* SHA-256(salt || "user:password") of the Basic value in use */
    bool have_basic_id;
    char user[EDGE_NAME_MAX];    /* the authenticated principal, exactly (tr.client is for logs) */
    char bk_user[EDGE_NAME_MAX]; /* who the backend connection is (being) authenticated as */
    bool backend_dirty;          /* the backend connection saw a handshake that was abandoned */
    char *client_token;          /* "Negotiate <mutual-auth token>" for the next response */
    struct edge_trace tr;
};

/* ---- helpers ---------------------------------------------------------------------------- */

static void
trace_begin(struct edge *e, const char *scheme)
{
    memset(&e->tr, 0, sizeof(e->tr));
    e->tr.scheme = scheme;
    e->tr.mech = "-";
    e->tr.backend_mutual = "-";
    e->tr.verdict = "-";
}

/* Copies s for the trace line: quotes and control characters become '?', so a name or a
 * library's message cannot break the key="value" format. */
static void
trace_copy(char *dst, size_t cap, const char *s)
{
    size_t i = 0;
    for (; s != NULL && s[i] != '\0' && i + 1 < cap; i++)
        dst[i] = s[i] == '"' || (unsigned char)s[i] < 0x20 || s[i] == 0x7f ? '?' : s[i];
    dst[i] = '\0';
}

static void
trace_error(struct edge *e, const struct authgss_error *err)
{
    e->tr.why = err->why;
    trace_copy(e->tr.error, sizeof(e->tr.error), err->text);
}

static void
trace_note(struct edge *e, const char *verdict, const char *text)
{
    e->tr.verdict = verdict;
    if (text != NULL)
        trace_copy(e->tr.error, sizeof(e->tr.error), text);
}

static void
zero_free(char *p, size_t n)
{
    if (p == NULL)
        return;
    OPENSSL_cleanse(p, n);
    free(p);
}

/* "<scheme> <base64 of t>", owned, or NULL when memory ran out. */
static char *
scheme_token(const char *scheme, const uint8_t *t, size_t n)
{
    size_t sl = strlen(scheme), cap = sl + 1 + authb64_encoded_len(n) + 1, bl = 0;
    char *s = malloc(cap);
    if (s == NULL)
        return NULL;
    memcpy(s, scheme, sl);
    s[sl] = ' ';
    if (authb64_encode(t, n, s + sl + 1, cap - sl - 1, &bl) != 0) {
        free(s);
        return NULL;
    }
    return s;
}

static int
local(struct edge_req_out *out, enum edge_action a, int status, const char *reason)
{
    out->action = a;
    out->status = status;
    out->reason = reason;
    return 0;
}

/* Drops the backend handshake state (not the user). */
static void
backend_reset(struct edge *e)
{
    authgss_init_free(e->ini);
    e->ini = NULL;
    authgss_cred_free(e->ntlm_cred);
    e->ntlm_cred = NULL;
    e->bk = BK_NONE;
    e->bk_user[0] = '\0';
}

/* Forgets the user: every credential and context, and the password. The backend connection's
 * state stays: edge_request decides whether it may keep serving (same user) or not. */
static void
user_reset(struct edge *e)
{
    authgss_accept_free(e->acc);
    e->acc = NULL;
    authgss_cred_free(e->cred);
    e->cred = NULL;
    zero_free(e->password, e->pwlen);
    e->password = NULL;
    e->pwlen = 0;
    OPENSSL_cleanse(e->ntlm_user, sizeof(e->ntlm_user));
    OPENSSL_cleanse(e->ntlm_domain, sizeof(e->ntlm_domain));
    OPENSSL_cleanse(e->basic_id, sizeof(e->basic_id));
    e->have_basic_id = false;
    free(e->client_token);
    e->client_token = NULL;
    e->cl = CL_NONE;
    e->user[0] = '\0';
    if (e->bk != BK_AUTHED && e->bk != BK_NONE) {
        /* a half-done backend handshake belongs to the credential just freed, and the backend
         * connection is in the middle of it: the next user needs another connection */
        backend_reset(e);
        e->backend_dirty = true;
    }
}

/* The edge's offers: a fresh 401, or 403 when nothing can be offered on this connection. */
static int
challenge(struct edge *e, const struct edge_policy *pol, bool tls, struct edge_req_out *out)
{
    const char *realm = pol->basic_realm != NULL ? pol->basic_realm : "exshim";
    (void)e;
    if (pol->offer_negotiate) {
        out->www[out->nwww] = strdup("Negotiate");
        if (out->www[out->nwww++] == NULL)
            return -1;
    }
    if (pol->offer_basic && tls) {
        size_t n = strlen(realm) + 16;
        char *b = malloc(n);
        if (b == NULL)
            return -1;
        snprintf(b, n, "Basic realm=\"%s\"", realm);
        out->www[out->nwww++] = b;
    }
    if (out->nwww == 0)
        return local(out, EDGE_LOCAL_403, 403,
                     "no authentication scheme is available on this connection (Basic needs "
                     "TLS)");
    return local(out, EDGE_LOCAL_401, 401, NULL);
}

/* The user is authenticated: may the pinned backend connection keep serving? */
static int
proceed(struct edge *e, struct edge_req_out *out)
{
    out->action = EDGE_PROCEED;
    if (e->backend_dirty) {
        out->fresh_backend = true;
        e->backend_dirty = false;
    }
    if (e->bk != BK_NONE && (e->bk != BK_AUTHED || strcmp(e->bk_user, e->user) != 0)) {
        /* authenticated as someone else (or mid-handshake): that connection must never serve
         * this user */
        backend_reset(e);
        out->fresh_backend = true;
    }
    return 0;
}

/* ---- client side ------------------------------------------------------------------------ */

static int
refuse_ntlm(struct edge *e, const struct edge_policy *pol, bool tls, struct edge_req_out *out)
{
    trace_begin(e, "NTLM");
    trace_note(e, "refused", "NTLM is not accepted at the edge: offered Negotiate/Basic instead");
    out->trace_done = true;
    return challenge(e, pol, tls, out);
}

static int
negotiate(struct edge *e, const struct edge_policy *pol, bool tls,
          const struct authtok_challenge *c, struct edge_req_out *out)
{
    struct authgss_error err;
    uint8_t *tok = NULL, *reply = NULL;
    size_t n = 0, rl = 0, cap = authb64_decoded_cap(c->token68.len);
    int rc = -1;

    if (cap == 0 || (tok = malloc(cap)) == NULL || authtok_decode(c, tok, cap, &n) != 0 || n == 0) {
        rc = cap == 0 || tok != NULL ? local(out, EDGE_LOCAL_400, 400, "malformed Negotiate token")
                                     : -1;
        goto cleanup;
    }
    if (ntlmmsg_is_ntlmssp(tok, n)) {
        rc = refuse_ntlm(e, pol, tls, out);
        goto cleanup;
    }
    if (e->cl == CL_AUTHED)
        user_reset(e); /* new credentials start over, as IIS does */
    if (e->cl == CL_NONE) {
        trace_begin(e, "Negotiate");
        e->acc = authgss_accept_new(e->env->acceptor);
        if (e->acc == NULL)
            goto cleanup;
        e->cl = CL_NEGOTIATING;
    }
    enum authgss_status st =
        authgss_accept_step(e->acc, tok, n, e->client_cb_len > 0 ? e->client_cb : NULL,
                            e->client_cb_len, &reply, &rl, &err);
    if (st == AUTHGSS_FAIL) {
        /* An output token here would be a SPNEGO reject: the client gets fresh offers
         * instead, which make it start over. */
        trace_error(e, &err);
        trace_note(e, "refused", NULL);
        user_reset(e);
        out->trace_done = true;
        rc = challenge(e, pol, tls, out);
        goto cleanup;
    }
    if (st == AUTHGSS_CONTINUE) {
        out->www[0] = reply != NULL ? scheme_token("Negotiate", reply, rl) : NULL;
        if (out->www[0] == NULL) {
            trace_note(e, "refused", "the acceptor produced no token to continue with");
            user_reset(e);
            out->trace_done = true;
            rc = challenge(e, pol, tls, out);
            goto cleanup;
        }
        out->nwww = 1;
        e->tr.verdict = "challenge";
        rc = local(out, EDGE_LOCAL_401, 401, NULL);
        goto cleanup;
    }
    const char *who = authgss_accept_client(e->acc);
    trace_copy(e->tr.client, sizeof(e->tr.client), who);
    if (who == NULL || strlen(who) >= sizeof(e->user)) {
        trace_note(e, "refused", "client principal name too long");
        user_reset(e);
        out->trace_done = true;
        rc = local(out, EDGE_LOCAL_403, 403, "your user name is too long for exshim");
        goto cleanup;
    }
    memcpy(e->user, who, strlen(who) + 1);
    e->tr.mech = authgss_accept_spnego(e->acc) ? "spnego/krb5" : "krb5";
    if (reply != NULL && (e->client_token = scheme_token("Negotiate", reply, rl)) == NULL)
        goto cleanup;
    e->cred = authgss_accept_take_cred(e->acc, &err);
    authgss_accept_free(e->acc);
    e->acc = NULL;
    if (e->cred == NULL) {
        trace_error(e, &err);
        trace_note(e, "refused", NULL);
        user_reset(e);
        out->trace_done = true;
        rc = local(out, EDGE_LOCAL_403, 403,
                   "your Kerberos ticket cannot be delegated to the server (see the auth log)");
        goto cleanup;
    }
    e->tr.path = EDGE_PATH_S4U2PROXY;
    e->cl = CL_AUTHED;
    rc = proceed(e, out);
cleanup:
    free(tok);
    free(reply);
    return rc;
}

/* Basic user name -> Kerberos principal and NTLM user/domain. */
static int
map_user(const struct edge_policy *pol, const char *u, char *princ, size_t pcap, char *nuser,
         char *ndom)
{
    const char *bs = strchr(u, '\\'), *at = strchr(u, '@');
    const char *name = u, *dom = pol->ntlm_domain != NULL ? pol->ntlm_domain : "";
    size_t nl = strlen(u);
    int n;

    if (strchr(u, '/') != NULL || (bs != NULL && at != NULL))
        return -1; /* no service principals, no mixed forms */
    if (bs != NULL) {
        if ((size_t)(bs - u) >= USER_MAX)
            return -1;
        memcpy(ndom, u, (size_t)(bs - u));
        ndom[bs - u] = '\0';
        name = bs + 1;
        nl = strlen(name);
        dom = NULL;
    } else if (at != NULL) {
        nl = (size_t)(at - u);
    }
    if (nl == 0 || nl >= USER_MAX)
        return -1;
    memcpy(nuser, name, nl);
    nuser[nl] = '\0';
    if (dom != NULL)
        snprintf(ndom, USER_MAX, "%s", dom);
    if (at != NULL)
        n = snprintf(princ, pcap, "%s", u);
    else if (pol->kerberos_realm != NULL)
        n = snprintf(princ, pcap, "%s@%s", nuser, pol->kerberos_realm);
    else
        n = snprintf(princ, pcap, "%s", nuser);
    return n > 0 && (size_t)n < pcap ? 0 : -1;
}

static int
basic_id(const struct edge *e, const uint8_t *v, size_t n, uint8_t id[ID_LEN])
{
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    unsigned int l = 0;
    int rc = -1;
    if (md == NULL)
        return -1;
    if (EVP_DigestInit_ex(md, EVP_sha256(), NULL) == 1 &&
        EVP_DigestUpdate(md, e->salt, sizeof(e->salt)) == 1 && EVP_DigestUpdate(md, v, n) == 1 &&
        EVP_DigestFinal_ex(md, id, &l) == 1 && l == ID_LEN)
        rc = 0;
    EVP_MD_CTX_free(md);
    return rc;
}

static int
basic(struct edge *e, const struct edge_policy *pol, bool tls, const struct authtok_challenge *c,
      struct edge_req_out *out)
{
    struct authgss_error err;
    size_t cap = authb64_decoded_cap(c->token68.len), n = 0, pwlen;
    uint8_t *buf = NULL, id[ID_LEN];
    char princ[EDGE_NAME_MAX], nuser[USER_MAX], ndom[USER_MAX];
    char *colon, *pw;
    bool cached = false;
    int rc = -1;

    if (cap == 0 || (buf = malloc(cap + 1)) == NULL || authtok_decode(c, buf, cap, &n) != 0) {
        rc = cap == 0 || buf != NULL
                 ? local(out, EDGE_LOCAL_400, 400, "malformed Basic credentials")
                 : -1;
        goto cleanup;
    }
    buf[n] = '\0';
    colon = memchr(buf, ':', n);
    if (colon == NULL || colon == (char *)buf || memchr(buf, '\0', n) != NULL) {
        rc = local(out, EDGE_LOCAL_400, 400, "malformed Basic credentials");
        goto cleanup;
    }
    if (basic_id(e, buf, n, id) != 0)
        goto cleanup;
    if (e->cl == CL_AUTHED && e->have_basic_id && CRYPTO_memcmp(id, e->basic_id, ID_LEN) == 0) {
        rc = proceed(e, out); /* the same credentials as before: already verified */
        goto cleanup;
    }
    if (e->cl != CL_NONE)
        user_reset(e);
    trace_begin(e, "Basic");
    e->tr.mech = "basic";
    *colon = '\0';
    pw = colon + 1;
    pwlen = n - (size_t)(colon + 1 - (char *)buf);
    if (map_user(pol, (const char *)buf, princ, sizeof(princ), nuser, ndom) != 0) {
        trace_note(e, "refused", "user name not usable at the edge");
        out->trace_done = true;
        rc = challenge(e, pol, tls, out);
        goto cleanup;
    }
    trace_copy(e->tr.client, sizeof(e->tr.client), princ);
    memcpy(e->user, princ, sizeof(e->user)); /* map_user made it fit */
    if (authgss_verify_password(e->env->acceptor, princ, pw, pwlen, &cached, &err) != 0) {
        trace_error(e, &err);
        trace_note(e, "refused", NULL);
        out->trace_done = true;
        switch (err.why) {
        case AUTHGSS_WHY_BAD_PASSWORD:
        case AUTHGSS_WHY_UNKNOWN_USER:
        case AUTHGSS_WHY_ACCOUNT_DISABLED:
        case AUTHGSS_WHY_PASSWORD_EXPIRED:
            rc = challenge(e, pol, tls, out); /* the user may try again */
            break;
        default:
            rc = local(out, EDGE_LOCAL_502, 502,
                       "the password could not be checked with the KDC (see the auth log)");
        }
        goto cleanup;
    }
    e->tr.password_cached = cached;
    if (pol->delegation == EDGE_DELEG_CONSTRAINED) {
        e->tr.path = EDGE_PATH_S4U2SELF_S4U2PROXY;
        e->cred = authgss_cred_impersonate(e->env->acceptor, princ, &err);
    } else if (pol->password_mech == EDGE_PASSWORD_KERBEROS) {
        e->tr.path = EDGE_PATH_PASSWORD_KERBEROS;
        e->cred = authgss_cred_password_krb5(princ, pw, pwlen, &err);
    } else {
        /* NTLM needs the password again for every backend connection's handshake */
        e->tr.path = EDGE_PATH_PASSWORD_NTLM;
        e->password = malloc(pwlen + 1);
        if (e->password == NULL)
            goto cleanup;
        memcpy(e->password, pw, pwlen + 1);
        e->pwlen = pwlen;
        memcpy(e->ntlm_user, nuser, sizeof(nuser));
        memcpy(e->ntlm_domain, ndom, sizeof(ndom));
    }
    if (e->tr.path != EDGE_PATH_PASSWORD_NTLM && e->cred == NULL) {
        trace_error(e, &err);
        trace_note(e, "refused", NULL);
        user_reset(e);
        out->trace_done = true;
        rc = local(out, EDGE_LOCAL_403, 403,
                   "your credentials cannot be delegated to the server (see the auth log)");
        goto cleanup;
    }
    memcpy(e->basic_id, id, ID_LEN);
    e->have_basic_id = true;
    e->cl = CL_AUTHED;
    rc = proceed(e, out);
cleanup:
    if (buf != NULL)
        OPENSSL_cleanse(buf, cap + 1);
    free(buf);
    OPENSSL_cleanse(id, sizeof(id));
    return rc;
}

int
edge_request(struct edge *e, const struct edge_policy *pol, const char *authz, size_t authz_len,
             bool client_tls, struct edge_req_out *out)
{
    struct authtok_challenge c;
    const char *why = NULL;
    int rc;

    memset(out, 0, sizeof(*out));
    if (authz == NULL) {
        if (e->cl == CL_AUTHED)
            return proceed(e, out); /* connection-bound: the user of this connection */
        if (e->cl == CL_NEGOTIATING)
            user_reset(e); /* a request without credentials abandons the handshake */
        rc = challenge(e, pol, client_tls, out);
    } else if (authtok_parse_credentials(authz, authz_len, &c, &why) != AUTHTOK_OK) {
        rc = local(out, EDGE_LOCAL_400, 400, "malformed Authorization header");
    } else if (c.scheme == AUTHTOK_SCHEME_NEGOTIATE && pol->offer_negotiate) {
        rc = negotiate(e, pol, client_tls, &c, out);
    } else if (c.scheme == AUTHTOK_SCHEME_BASIC && pol->offer_basic && !client_tls) {
        rc = local(out, EDGE_LOCAL_403, 403, "Basic authentication is refused on plain HTTP");
    } else if (c.scheme == AUTHTOK_SCHEME_BASIC && pol->offer_basic) {
        rc = basic(e, pol, client_tls, &c, out);
    } else if (c.scheme == AUTHTOK_SCHEME_NTLM) {
        rc = refuse_ntlm(e, pol, client_tls, out);
    } else {
        rc = challenge(e, pol, client_tls, out);
    }
    if (rc != 0)
        edge_req_clear(out);
    return rc;
}

/* ---- backend side ----------------------------------------------------------------------- */

static int
delegation_failed(struct edge *e, const struct authgss_error *err, struct edge_req_out *out)
{
    trace_error(e, err);
    trace_note(e, "refused", NULL);
    out->trace_done = true;
    backend_reset(e);
    switch (err->why) {
    case AUTHGSS_WHY_DELEGATION_REFUSED:
    case AUTHGSS_WHY_NOT_FORWARDABLE:
    case AUTHGSS_WHY_UNKNOWN_SERVICE:
    case AUTHGSS_WHY_ACCOUNT_DISABLED:
    case AUTHGSS_WHY_WRONG_USER:
        return local(out, EDGE_LOCAL_403, 403,
                     "the server refused to let exshim act for you (see the auth log)");
    default:
        return local(out, EDGE_LOCAL_502, 502,
                     "exshim could not authenticate you to the server (see the auth log)");
    }
}

int
edge_backend_request(struct edge *e, const struct edge_policy *pol, const uint8_t *cert_hash,
                     size_t cert_hash_len, struct edge_req_out *out)
{
    struct authgss_error err;
    struct authgss_cred *use;
    uint8_t *tok = NULL;
    size_t tl = 0;
    int rc = -1;

    memset(out, 0, sizeof(*out));
    if (e->cl != CL_AUTHED)
        return local(out, EDGE_LOCAL_403, 403, "not authenticated");
    if (e->bk == BK_AUTHED && strcmp(e->bk_user, e->user) == 0) {
        out->action = EDGE_FORWARD; /* no Authorization: the connection knows the user */
        return 0;
    }
    backend_reset(e); /* anything else starts a handshake of its own */
    use = e->cred;
    if (e->tr.path == EDGE_PATH_PASSWORD_NTLM) {
        e->ntlm_cred =
            authgss_cred_password_ntlm(e->ntlm_domain, e->ntlm_user, e->password, e->pwlen, &err);
        if (e->ntlm_cred == NULL)
            return delegation_failed(e, &err, out);
        use = e->ntlm_cred;
    }
    trace_copy(e->tr.backend_as, sizeof(e->tr.backend_as), authgss_cred_name(use));
    e->ini = authgss_init_new(use, pol->backend_spn, cert_hash, cert_hash_len, &err);
    if (e->ini == NULL)
        return delegation_failed(e, &err, out);
    enum authgss_status st = authgss_init_step(e->ini, NULL, 0, &tok, &tl, &err);
    if (st == AUTHGSS_FAIL || tok == NULL) {
        if (st != AUTHGSS_FAIL) {
            err.why = AUTHGSS_WHY_OTHER;
            snprintf(err.text, sizeof(err.text), "the initiator produced no token");
        }
        rc = delegation_failed(e, &err, out);
        goto cleanup;
    }
    bool ntlm = authgss_cred_mech(use) == AUTHGSS_MECH_NTLM;
    out->authorization = scheme_token(ntlm ? "NTLM" : "Negotiate", tok, tl);
    if (out->authorization == NULL)
        goto cleanup;
    out->action = ntlm ? EDGE_FORWARD_NTLM_NEGOTIATE : EDGE_FORWARD;
    e->bk = ntlm ? BK_NTLM_NEG : BK_KRB_SENT;
    memcpy(e->bk_user, e->user, sizeof(e->bk_user));
    rc = 0;
cleanup:
    free(tok);
    if (rc != 0)
        edge_req_clear(out);
    return rc;
}

void
edge_req_clear(struct edge_req_out *r)
{
    for (size_t i = 0; i < r->nwww && i < EDGE_MAX_WWW; i++)
        free(r->www[i]);
    free(r->authorization);
    memset(r, 0, sizeof(*r));
}

/* The decoded token of the first www value with scheme s (or, for NTLM, a raw NTLMSSP token
 * under Negotiate). Returns 0 with an owned *tok, or -1. */
static int
backend_token(const struct edge_slice *www, size_t nwww, enum authtok_scheme s, uint8_t **tok,
              size_t *len)
{
    struct authtok_challenge ch[AUTHTOK_MAX_CHALLENGES];
    for (size_t i = 0; i < nwww; i++) {
        size_t n = 0;
        const char *why = NULL;
        if (authtok_parse_challenges(www[i].p, www[i].len, ch, AUTHTOK_MAX_CHALLENGES, &n, &why) !=
            AUTHTOK_OK)
            continue;
        for (size_t j = 0; j < n; j++) {
            bool want = ch[j].scheme == s ||
                        (s == AUTHTOK_SCHEME_NTLM && ch[j].scheme == AUTHTOK_SCHEME_NEGOTIATE);
            size_t cap = authb64_decoded_cap(ch[j].token68.len);
            if (!want || cap == 0)
                continue;
            uint8_t *t = malloc(cap);
            if (t == NULL)
                return -1;
            if (authtok_decode(&ch[j], t, cap, len) == 0 &&
                (s != AUTHTOK_SCHEME_NTLM || ntlmmsg_is_ntlmssp(t, *len))) {
                *tok = t;
                return 0;
            }
            free(t);
        }
    }
    return -1;
}

static int
resp_local(struct edge *e, struct edge_resp_out *out, const char *why)
{
    trace_note(e, "refused", why);
    out->trace_done = true;
    out->action = EDGE_RESP_LOCAL;
    out->status = 502;
    out->reason = why;
    backend_reset(e);
    return 0;
}

static void
resp_pass(struct edge *e, struct edge_resp_out *out)
{
    out->action = EDGE_RESP_PASS;
    out->client_www = e->client_token; /* delivered once */
    e->client_token = NULL;
}

int
edge_response(struct edge *e, int status, const struct edge_slice *www, size_t nwww,
              struct edge_resp_out *out)
{
    struct authgss_error err;
    uint8_t *in = NULL, *tok = NULL;
    size_t il = 0, tl = 0;
    enum authgss_status st;
    int rc = 0;

    memset(out, 0, sizeof(*out));
    switch (e->bk) {
    case BK_NONE:
        resp_pass(e, out);
        break;
    case BK_AUTHED:
        if (status == 401) {
            e->tr.backend_status = status;
            rc = resp_local(e, out, "the server asked for authentication again");
            break;
        }
        resp_pass(e, out);
        break;
    case BK_KRB_SENT:
        e->tr.backend_status = status;
        if (status == 401) {
            rc = resp_local(e, out, "the server refused the delegated Kerberos ticket");
            break;
        }
        if (backend_token(www, nwww, AUTHTOK_SCHEME_NEGOTIATE, &in, &il) == 0) {
            st = authgss_init_step(e->ini, in, il, &tok, &tl, &err);
            if (st != AUTHGSS_DONE) {
                trace_error(e, &err);
                rc = resp_local(e, out, "the server's mutual authentication failed");
                break;
            }
            e->tr.backend_mutual = "ok";
        } else {
            e->tr.backend_mutual = "none";
        }
        authgss_init_free(e->ini);
        e->ini = NULL;
        e->bk = BK_AUTHED;
        e->tr.verdict = "ok";
        out->trace_done = true;
        resp_pass(e, out);
        break;
    case BK_NTLM_NEG:
        if (status != 401 || backend_token(www, nwww, AUTHTOK_SCHEME_NTLM, &in, &il) != 0) {
            e->tr.backend_status = status;
            rc = resp_local(e, out,
                            "the server did not answer the NTLM NEGOTIATE with a "
                            "challenge");
            break;
        }
        st = authgss_init_step(e->ini, in, il, &tok, &tl, &err);
        if (st == AUTHGSS_FAIL || tok == NULL) {
            if (st == AUTHGSS_FAIL)
                trace_error(e, &err);
            rc = resp_local(e, out, "the server's NTLM challenge could not be answered");
            break;
        }
        out->authorization = scheme_token("NTLM", tok, tl);
        if (out->authorization == NULL) {
            rc = -1;
            break;
        }
        out->action = EDGE_RESP_RESEND;
        e->bk = BK_NTLM_AUTH;
        break;
    case BK_NTLM_AUTH:
        e->tr.backend_status = status;
        if (status == 401) {
            rc = resp_local(e, out, "the server refused the user's NTLM credentials");
            break;
        }
        /* the NTLM credential was for this one handshake */
        authgss_init_free(e->ini);
        e->ini = NULL;
        authgss_cred_free(e->ntlm_cred);
        e->ntlm_cred = NULL;
        e->bk = BK_AUTHED;
        e->tr.backend_mutual = "n/a";
        e->tr.verdict = "ok";
        out->trace_done = true;
        resp_pass(e, out);
        break;
    }
    free(in);
    free(tok);
    if (rc != 0)
        edge_resp_clear(out);
    return rc;
}

void
edge_resp_clear(struct edge_resp_out *r)
{
    free(r->authorization);
    free(r->client_www);
    memset(r, 0, sizeof(*r));
}

void
edge_backend_lost(struct edge *e)
{
    backend_reset(e);
    e->backend_dirty = false;
}

/* ---- lifetime and trace ----------------------------------------------------------------- */

struct edge *
edge_new(const struct edge_env *env)
{
    struct edge *e = calloc(1, sizeof(*e));
    if (e == NULL)
        return NULL;
    if (RAND_bytes(e->salt, sizeof(e->salt)) != 1) {
        free(e);
        return NULL;
    }
    e->env = env;
    trace_begin(e, "-");
    return e;
}

void
edge_set_client_cert(struct edge *e, const uint8_t *hash, size_t len)
{
    if (hash == NULL || len == 0 || len > sizeof(e->client_cb)) {
        e->client_cb_len = 0;
        return;
    }
    memcpy(e->client_cb, hash, len);
    e->client_cb_len = len;
}

void
edge_free(struct edge *e)
{
    if (e == NULL)
        return;
    user_reset(e);
    backend_reset(e);
    OPENSSL_cleanse(e, sizeof(*e));
    free(e);
}

const struct edge_trace *
edge_trace(const struct edge *e)
{
    return &e->tr;
}

const char *
edge_path_name(enum edge_path p)
{
    switch (p) {
    case EDGE_PATH_S4U2PROXY:
        return "S4U2Proxy";
    case EDGE_PATH_S4U2SELF_S4U2PROXY:
        return "S4U2Self+S4U2Proxy";
    case EDGE_PATH_PASSWORD_KERBEROS:
        return "password-Kerberos";
    case EDGE_PATH_PASSWORD_NTLM:
        return "password-NTLM";
    case EDGE_PATH_NONE:
        break;
    }
    return "-";
}

size_t
edge_trace_format(const struct edge *e, char *buf, size_t cap)
{
    const struct edge_trace *t = &e->tr;
    int n = snprintf(buf, cap,
                     "scheme=%s mech=%s user=\"%s\" path=%s backend_as=\"%s\" cached=%s "
                     "backend_status=%d mutual=%s verdict=%s",
                     t->scheme, t->mech, t->client, edge_path_name(t->path), t->backend_as,
                     t->password_cached ? "yes" : "no", t->backend_status, t->backend_mutual,
                     t->verdict);
    size_t o = n < 0 ? 0 : (size_t)n >= cap ? cap - 1 : (size_t)n;
    if (t->error[0] != '\0' && o + 1 < cap) {
        n = snprintf(buf + o, cap - o, " error=\"%s\"", t->error);
        o = n < 0 ? o : o + (size_t)n >= cap ? cap - 1 : o + (size_t)n;
    }
    return o;
}
