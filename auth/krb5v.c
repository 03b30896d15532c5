/*
 * Basic password verification against the KDC and krb5 error words. See auth/krb5v.h.
 */
#include "auth/krb5v.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <krb5.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

/* Longest password accepted (Basic credentials are capped well below this by the header cap). */
#define PW_MAX 1024

enum authgss_why
authkrb5_classify(long code, enum authkrb5_phase phase)
{
    switch (code) {
    case 0:
        return AUTHGSS_WHY_NONE;
    case KRB5KDC_ERR_PREAUTH_FAILED:
    case KRB5_PREAUTH_FAILED:
    case KRB5KRB_AP_ERR_BAD_INTEGRITY:
    case KRB5KRB_AP_ERR_MODIFIED:
        /* In the AS exchange these mean the reply could not be decrypted with the key made
         * from the password; anywhere else, a key mismatch with a keytab. */
        if (phase == AUTHKRB5_PHASE_AS)
            return AUTHGSS_WHY_BAD_PASSWORD;
        return phase == AUTHKRB5_PHASE_VERIFY ? AUTHGSS_WHY_KDC_NOT_VERIFIED : AUTHGSS_WHY_KEYTAB;
    case KRB5KDC_ERR_C_PRINCIPAL_UNKNOWN:
        return AUTHGSS_WHY_UNKNOWN_USER;
    case KRB5KDC_ERR_S_PRINCIPAL_UNKNOWN:
        return AUTHGSS_WHY_UNKNOWN_SERVICE;
    case KRB5KRB_AP_ERR_SKEW:
        return AUTHGSS_WHY_CLOCK_SKEW;
    case KRB5_KDC_UNREACH:
    case KRB5_REALM_CANT_RESOLVE:
    case KRB5_REALM_UNKNOWN:
        return AUTHGSS_WHY_KDC_UNREACHABLE;
    case KRB5KDC_ERR_BADOPTION:
    case KRB5KDC_ERR_POLICY:
        if (phase == AUTHKRB5_PHASE_S4U2PROXY)
            return AUTHGSS_WHY_DELEGATION_REFUSED;
        return AUTHGSS_WHY_OTHER;
    case KRB5_TKT_NOT_FORWARDABLE:
        return AUTHGSS_WHY_NOT_FORWARDABLE;
    case KRB5KDC_ERR_CLIENT_REVOKED:
        return AUTHGSS_WHY_ACCOUNT_DISABLED;
    case KRB5KDC_ERR_KEY_EXP:
        return AUTHGSS_WHY_PASSWORD_EXPIRED;
    case KRB5_KT_NOTFOUND:
    case KRB5_KT_KVNONOTFOUND:
    case KRB5_KT_END:
    case KRB5KRB_AP_ERR_NOKEY:
    case KRB5KRB_AP_ERR_BADKEYVER:
        return phase == AUTHKRB5_PHASE_VERIFY ? AUTHGSS_WHY_KDC_NOT_VERIFIED : AUTHGSS_WHY_KEYTAB;
    case KRB5KRB_AP_ERR_REPEAT:
        return AUTHGSS_WHY_REPLAY;
    default:
        return AUTHGSS_WHY_OTHER;
    }
}

const char *
authkrb5_code_text(long code)
{
    return error_message(code);
}

/* ---- cache of recent successes ---------------------------------------------------------- */

struct pw_entry {
    uint8_t key[32];
    time_t expires; /* 0: free */
};

static struct {
    pid_t pid; /* the process the salt and entries belong to (workers are forked) */
    uint8_t salt[32];
    struct pw_entry e[AUTHKRB5_CACHE_ENTRIES];
} pw_cache;

static int
cache_ready(void)
{
    pid_t me = getpid();
    if (pw_cache.pid == me)
        return 0;
    /* a new process: nothing learnt by another one is trusted, and the salt is its own */
    OPENSSL_cleanse(&pw_cache, sizeof(pw_cache));
    if (RAND_bytes(pw_cache.salt, sizeof(pw_cache.salt)) != 1)
        return -1;
    pw_cache.pid = me;
    return 0;
}

static int
cache_key(const char *user, const char *pw, size_t pwlen, uint8_t key[32])
{
    EVP_MD_CTX *md = NULL;
    unsigned int n = 0;
    int rc = -1;
    static const uint8_t sep = 0;

    md = EVP_MD_CTX_new();
    if (md == NULL)
        goto cleanup;
    if (EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1 ||
        EVP_DigestUpdate(md, pw_cache.salt, sizeof(pw_cache.salt)) != 1 ||
        EVP_DigestUpdate(md, user, strlen(user)) != 1 || EVP_DigestUpdate(md, &sep, 1) != 1 ||
        EVP_DigestUpdate(md, pw, pwlen) != 1 || EVP_DigestFinal_ex(md, key, &n) != 1 || n != 32)
        goto cleanup;
    rc = 0;
cleanup:
    EVP_MD_CTX_free(md);
    return rc;
}

static bool
cache_lookup(const uint8_t key[32], time_t now)
{
    for (size_t i = 0; i < AUTHKRB5_CACHE_ENTRIES; i++) {
        struct pw_entry *e = &pw_cache.e[i];
        if (e->expires != 0 && e->expires <= now)
            OPENSSL_cleanse(e, sizeof(*e));
        if (e->expires != 0 && CRYPTO_memcmp(e->key, key, 32) == 0)
            return true;
    }
    return false;
}

static void
cache_insert(const uint8_t key[32], time_t now)
{
    size_t victim = 0;
    for (size_t i = 0; i < AUTHKRB5_CACHE_ENTRIES; i++) {
        if (pw_cache.e[i].expires <= now) {
            victim = i;
            break;
        }
        if (pw_cache.e[i].expires < pw_cache.e[victim].expires)
            victim = i; /* full: the entry that expires first makes room */
    }
    memcpy(pw_cache.e[victim].key, key, 32);
    pw_cache.e[victim].expires = now + AUTHKRB5_CACHE_SECONDS;
}

void
authkrb5_cache_clear(void)
{
    OPENSSL_cleanse(&pw_cache, sizeof(pw_cache));
}

/* ---- verification ----------------------------------------------------------------------- */

static void
set_error(struct authgss_error *err, krb5_context ctx, long code, enum authkrb5_phase phase,
          const char *what)
{
    const char *m = ctx != NULL ? krb5_get_error_message(ctx, (krb5_error_code)code) : NULL;
    err->why = authkrb5_classify(code, phase);
    snprintf(err->text, sizeof(err->text), "%s: %s: %s", authgss_why_words(err->why), what,
             m != NULL ? m : authkrb5_code_text(code));
    if (m != NULL)
        krb5_free_error_message(ctx, m);
}

int
authkrb5_verify_password(const char *keytab, const char *service, const char *user, const char *pw,
                         size_t pwlen, bool *cached_out, struct authgss_error *err)
{
    krb5_context ctx = NULL;
    krb5_principal client = NULL, server = NULL;
    krb5_keytab kt = NULL;
    krb5_get_init_creds_opt *opt = NULL;
    krb5_verify_init_creds_opt vopt;
    krb5_creds creds;
    bool have_creds = false, cache_ok = false;
    char pwz[PW_MAX + 1];
    uint8_t key[32];
    time_t now = time(NULL);
    krb5_error_code code;
    int rc = -1;

    memset(&creds, 0, sizeof(creds));
    if (cached_out != NULL)
        *cached_out = false;
    err->why = AUTHGSS_WHY_NONE;
    err->text[0] = '\0';
    if (pwlen == 0 || pwlen > PW_MAX || memchr(pw, '\0', pwlen) != NULL) {
        err->why = AUTHGSS_WHY_BAD_PASSWORD;
        snprintf(err->text, sizeof(err->text), "%s: empty, too long or NUL in the password",
                 authgss_why_words(err->why));
        goto cleanup;
    }
    cache_ok = cache_ready() == 0 && cache_key(user, pw, pwlen, key) == 0;
    if (cache_ok && cache_lookup(key, now)) {
        if (cached_out != NULL)
            *cached_out = true;
        rc = 0;
        goto cleanup;
    }
    memcpy(pwz, pw, pwlen);
    pwz[pwlen] = '\0';

    code = krb5_init_context(&ctx);
    if (code != 0) {
        ctx = NULL;
        set_error(err, NULL, code, AUTHKRB5_PHASE_AS, "krb5_init_context");
        goto cleanup;
    }
    code = krb5_parse_name(ctx, user, &client);
    if (code != 0) {
        set_error(err, ctx, code, AUTHKRB5_PHASE_AS, "user name");
        err->why = AUTHGSS_WHY_UNKNOWN_USER;
        goto cleanup;
    }
    code = krb5_parse_name(ctx, service, &server);
    if (code == 0)
        code = krb5_kt_resolve(ctx, keytab, &kt);
    if (code != 0) {
        set_error(err, ctx, code, AUTHKRB5_PHASE_VERIFY, "proxy principal or keytab");
        err->why = AUTHGSS_WHY_KEYTAB;
        goto cleanup;
    }
    code = krb5_get_init_creds_opt_alloc(ctx, &opt);
    if (code != 0) {
        set_error(err, ctx, code, AUTHKRB5_PHASE_AS, "options");
        goto cleanup;
    }
    krb5_get_init_creds_opt_set_forwardable(opt, 0);
    krb5_get_init_creds_opt_set_proxiable(opt, 0);
    code = krb5_get_init_creds_password(ctx, &creds, client, pwz, NULL, NULL, 0, NULL, opt);
    if (code != 0) {
        set_error(err, ctx, code, AUTHKRB5_PHASE_AS, user);
        goto cleanup;
    }
    have_creds = true;
    /* The AS reply alone proves nothing: whoever answered on the KDC's address chose the key.
     * A ticket for our own principal, decrypted with our keytab, does. */
    krb5_verify_init_creds_opt_init(&vopt);
    krb5_verify_init_creds_opt_set_ap_req_nofail(&vopt, 1);
    code = krb5_verify_init_creds(ctx, &creds, server, kt, NULL, &vopt);
    if (code != 0) {
        set_error(err, ctx, code, AUTHKRB5_PHASE_VERIFY, service);
        if (err->why == AUTHGSS_WHY_OTHER)
            err->why = AUTHGSS_WHY_KDC_NOT_VERIFIED;
        goto cleanup;
    }
    if (cache_ok)
        cache_insert(key, now);
    rc = 0;
cleanup:
    explicit_bzero(pwz, sizeof(pwz));
    explicit_bzero(key, sizeof(key));
    if (have_creds)
        krb5_free_cred_contents(ctx, &creds);
    if (opt != NULL)
        krb5_get_init_creds_opt_free(ctx, opt);
    if (kt != NULL)
        krb5_kt_close(ctx, kt);
    krb5_free_principal(ctx, server);
    krb5_free_principal(ctx, client);
    if (ctx != NULL)
        krb5_free_context(ctx);
    return rc;
}
