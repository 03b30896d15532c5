/*
 * The krb5 side of edge authentication: Basic password verification against the KDC (with a
 * small per-process cache of recent successes) and the translation of krb5 error codes into
 * the words of auth/gss.h. The only file that includes <krb5.h> is auth/krb5v.c; auth/gss.c
 * calls it for the minor codes of the krb5 mechanism.
 */
#ifndef AUTH_KRB5V_H
#define AUTH_KRB5V_H

#include <stdbool.h>
#include <stddef.h>

#include "auth/gss.h"

/* Where a krb5 error code came from: the same code means different things in each. */
enum authkrb5_phase {
    AUTHKRB5_PHASE_AS = 0,    /* AS exchange with a password */
    AUTHKRB5_PHASE_VERIFY,    /* verification of an AS reply with the proxy's keytab */
    AUTHKRB5_PHASE_ACCEPT,    /* accepting a client's AP-REQ */
    AUTHKRB5_PHASE_S4U2SELF,  /* protocol transition: ticket to self for a user */
    AUTHKRB5_PHASE_S4U2PROXY, /* constrained delegation: ticket to the backend for a user */
    AUTHKRB5_PHASE_INIT,      /* an ordinary TGS exchange for the backend */
};

/* Classifies a krb5 error code (a krb5 mechanism minor status) met in phase. */
enum authgss_why authkrb5_classify(long code, enum authkrb5_phase phase);

/* Text of a krb5 error code (com_err). Returns a static string. */
const char *authkrb5_code_text(long code);

/* Successes kept, and how long one is trusted (a changed or revoked password keeps working
 * from the cache for at most this long). */
#define AUTHKRB5_CACHE_ENTRIES 256
#define AUTHKRB5_CACHE_SECONDS 120

/*
 * Checks pw[0..pwlen) for user (a principal; the default realm when it has no '@'):
 * krb5_get_init_creds_password, then krb5_verify_init_creds with service's key from keytab
 * (a service ticket for service is requested with the new TGT and decrypted with the keytab,
 * so only the real KDC, which knows that key, can make it succeed). Successes are remembered
 * under SHA-256(per-process random salt || user || NUL || password) for
 * AUTHKRB5_CACHE_SECONDS; failures are never cached. *cached_out (may be NULL) tells whether
 * the cache answered. Returns 0, or -1 with *err filled (why from authkrb5_classify).
 * Borrows everything; the copy of the password made for krb5 is zeroed before returning.
 */
int authkrb5_verify_password(const char *keytab, const char *service, const char *user,
                             const char *pw, size_t pwlen, bool *cached_out,
                             struct authgss_error *err);

/* Empties the success cache (tests; a reload that changes realms). */
void authkrb5_cache_clear(void);

#endif
