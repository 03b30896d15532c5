/*
 * GSS-API for edge authentication: exshim accepts the client's Kerberos (raw or inside SPNEGO)
 * itself and reaches the backend as that user. The only file that includes <gssapi/gssapi.h>
 * is auth/gss.c; every GSS handle lives behind one of these opaque structs and is released
 * only by its _free function.
 *
 *   authgss_acceptor  process-wide: the proxy's own credential from its keytab, GSS_C_BOTH, so
 *                     an accepted Kerberos ticket comes back as a proxy credential (S4U2Proxy
 *                     evidence) and the proxy can impersonate users (S4U2Self)
 *   authgss_accept    one client connection's acceptor context across the 401 legs
 *   authgss_cred      one user's initiator credential toward the backend
 *   authgss_init      one backend connection's initiator context
 *
 * Toward the backend only gss_mech_krb5 or the NTLMSSP mechanism is used, never SPNEGO: a
 * delegated or impersonated credential has only a krb5 element, and MIT's SPNEGO would then
 * silently use the process's default credentials, i.e. authenticate as someone else
 * (shared DELEGATION.md, "the trap").
 *
 * Every failure fills a struct authgss_error: a classification an edge policy can act on and
 * one line of text for the log (admin words first, then the GSS major and minor texts). No
 * token bytes or passwords ever reach that text.
 */
#ifndef AUTH_GSS_H
#define AUTH_GSS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct authgss_acceptor;
struct authgss_accept;
struct authgss_cred;
struct authgss_init;

enum authgss_status {
    AUTHGSS_CONTINUE = 0, /* send the output token and wait for the peer's next one */
    AUTHGSS_DONE,         /* established; an output token (mutual auth) may still be there */
    AUTHGSS_FAIL,         /* see the error; an output token may still be there (send it) */
};

enum authgss_mech {
    AUTHGSS_MECH_NONE = 0,
    AUTHGSS_MECH_KRB5,
    AUTHGSS_MECH_NTLM,
    AUTHGSS_MECH_OTHER,
};

/* What went wrong, in the terms an administrator acts on. */
enum authgss_why {
    AUTHGSS_WHY_NONE = 0,
    AUTHGSS_WHY_BAD_PASSWORD,       /* the KDC refused the password (pre-authentication) */
    AUTHGSS_WHY_UNKNOWN_USER,       /* client principal unknown to the KDC */
    AUTHGSS_WHY_UNKNOWN_SERVICE,    /* the target SPN is unknown to the KDC */
    AUTHGSS_WHY_CLOCK_SKEW,         /* clocks apart by more than the allowed skew */
    AUTHGSS_WHY_KDC_UNREACHABLE,    /* no KDC answered for the realm */
    AUTHGSS_WHY_DELEGATION_REFUSED, /* S4U2Proxy: proxy not allowed to delegate to that SPN */
    AUTHGSS_WHY_NOT_FORWARDABLE,    /* the evidence ticket is not forwardable */
    AUTHGSS_WHY_ACCOUNT_DISABLED,   /* client revoked: disabled, locked, expired */
    AUTHGSS_WHY_PASSWORD_EXPIRED,   /* the user must change the password first */
    AUTHGSS_WHY_KDC_NOT_VERIFIED,   /* the AS reply could not be verified with the keytab */
    AUTHGSS_WHY_KEYTAB,             /* keytab missing, or no key for the proxy principal */
    AUTHGSS_WHY_BAD_BINDINGS,       /* channel bindings differ (Extended Protection) */
    AUTHGSS_WHY_WRONG_USER,         /* a credential named someone other than the user */
    AUTHGSS_WHY_BAD_TOKEN,          /* the peer's token is malformed or of another mechanism */
    AUTHGSS_WHY_NO_DELEGATION,      /* the accepted context gave no usable proxy credential */
    AUTHGSS_WHY_REPLAY,             /* the authenticator was seen before */
    AUTHGSS_WHY_OTHER,
};

#define AUTHGSS_ERROR_TEXT 512

struct authgss_error {
    enum authgss_why why;
    char text[AUTHGSS_ERROR_TEXT]; /* "<admin words>: <major text>; <minor text>" */
};

/* Static admin words for why ("S4U2Proxy refused: ..."). Never NULL. */
const char *authgss_why_words(enum authgss_why why);

/* Short static name for logs: "krb5", "ntlm", "other", "none". */
const char *authgss_mech_name(enum authgss_mech m);

/*
 * Writes the GSS texts of major and minor into buf (capacity cap >= 1): every GSS_C_GSS_CODE
 * message of major, then every GSS_C_MECH_CODE message of minor (for mech, or the default mech
 * when mech is AUTHGSS_MECH_NONE), joined by "; " (the display_status loop). Always
 * NUL-terminated, cut short if it does not fit. Returns buf. Borrows buf.
 */
char *authgss_strerror(uint32_t major, uint32_t minor, enum authgss_mech mech, char *buf,
                       size_t cap);

/*
 * The proxy's credential: principal (e.g. "HTTP/proxy.lab.test@LAB.TEST") from keytab (a path or
 * "FILE:path"), acquired with GSS_C_BOTH: the keytab is both the acceptor key and the client keytab
 * the proxy's own TGT comes from (kept in a private MEMORY ccache). The acceptor accepts Kerberos
 * only (raw, or SPNEGO negotiating krb5): NTLM is never accepted at the edge. Returns owned
 * (authgss_acceptor_free), or NULL with *err filled. Borrows keytab and principal (copied).
 */
struct authgss_acceptor *authgss_acceptor_new(const char *keytab, const char *principal,
                                              struct authgss_error *err);
void authgss_acceptor_free(struct authgss_acceptor *acc);

/* The acceptor's principal name as text. Returns a view valid until authgss_acceptor_free. */
const char *authgss_acceptor_name(const struct authgss_acceptor *acc);

/*
 * Verifies a Basic user's password against the KDC (auth/krb5v.c): an AS exchange for user
 * (a principal; without '@' the default realm applies), then the reply is verified with a
 * service ticket for the acceptor's principal decrypted with its keytab, so a spoofed KDC
 * cannot vouch for a wrong password. Recent successes are kept in a small per-process cache
 * keyed by a salted SHA-256 of user and password (never the password itself); *cached_out
 * (may be NULL) says whether the answer came from it. Returns 0, or -1 with *err filled.
 * Borrows everything.
 */
int authgss_verify_password(struct authgss_acceptor *acc, const char *user, const char *pw,
                            size_t pwlen, bool *cached_out, struct authgss_error *err);

/*
 * One client connection's acceptor context. Borrows acc, which must outlive the context.
 * Returns owned (authgss_accept_free), or NULL when memory ran out.
 */
struct authgss_accept *authgss_accept_new(struct authgss_acceptor *acc);
void authgss_accept_free(struct authgss_accept *a);

/*
 * Feeds the client's decoded token in[0..len) to gss_accept_sec_context. cb_hash (may be NULL)
 * is the tls-server-end-point hash of the certificate the client saw: the application data of
 * the channel bindings becomes "tls-server-end-point:" || cb_hash, and a client that sent other
 * bindings is refused (AUTHGSS_WHY_BAD_BINDINGS). *out and *outlen receive an owned copy of the
 * output token (free()), or NULL/0; it is set even on AUTHGSS_FAIL and must be sent.
 * Borrows a, in and cb_hash.
 */
enum authgss_status authgss_accept_step(struct authgss_accept *a, const uint8_t *in, size_t len,
                                        const uint8_t *cb_hash, size_t cb_hash_len, uint8_t **out,
                                        size_t *outlen, struct authgss_error *err);

/* After AUTHGSS_DONE: the client principal ("alice@LAB.TEST"), a view valid until
 * authgss_accept_free; NULL before. */
const char *authgss_accept_client(const struct authgss_accept *a);
/* After AUTHGSS_DONE: the mechanism that authenticated the client (krb5 under SPNEGO too). */
enum authgss_mech authgss_accept_mech(const struct authgss_accept *a);
/* True when the client's first token was SPNEGO (the reply tokens are SPNEGO too). */
bool authgss_accept_spnego(const struct authgss_accept *a);
/* True when the client's authenticator carried matching channel bindings. */
bool authgss_accept_channel_bound(const struct authgss_accept *a);

/*
 * After AUTHGSS_DONE: hands over the credential gss_accept_sec_context returned: a proxy
 * credential (the client's ticket as S4U2Proxy evidence plus the proxy's TGT) or a TGT the
 * client forwarded. Returns owned (authgss_cred_free), or NULL with *err filled
 * (AUTHGSS_WHY_NOT_FORWARDABLE when the client's ticket cannot serve as evidence,
 * AUTHGSS_WHY_NO_DELEGATION otherwise). A second call returns NULL.
 */
struct authgss_cred *authgss_accept_take_cred(struct authgss_accept *a, struct authgss_error *err);

enum authgss_cred_kind {
    AUTHGSS_CRED_PROXY = 0,     /* S4U2Proxy evidence from an accepted ticket */
    AUTHGSS_CRED_FORWARDED,     /* the user's own TGT, forwarded by the client */
    AUTHGSS_CRED_IMPERSONATED,  /* S4U2Self result (protocol transition) */
    AUTHGSS_CRED_PASSWORD_KRB5, /* the user's TGT from their password */
    AUTHGSS_CRED_PASSWORD_NTLM, /* an NTLMSSP credential holding the user's password */
};

/*
 * S4U2Self: a credential for user (a principal name; without '@' the default realm) obtained
 * with the proxy's own TGT. The S4U2Self TGS exchange happens here; S4U2Proxy happens at the
 * first authgss_init_step. Returns owned, or NULL with *err filled. Borrows acc and user.
 */
struct authgss_cred *authgss_cred_impersonate(struct authgss_acceptor *acc, const char *user,
                                              struct authgss_error *err);

/*
 * A Kerberos TGT for principal from its password (gss_acquire_cred_with_password into a
 * MEMORY ccache of its own). Returns owned, or NULL with *err filled. Borrows both; the
 * password is not kept.
 */
struct authgss_cred *authgss_cred_password_krb5(const char *principal, const char *pw, size_t pwlen,
                                                struct authgss_error *err);

/*
 * An NTLMSSP initiator credential (gss-ntlmssp) for DOMAIN\user with this password, for this
 * call only: the name of the credential acquired is checked to be exactly that user, so
 * gss-ntlmssp can never fall back to an NTLM_USER_FILE entry of someone else
 * (AUTHGSS_WHY_WRONG_USER). Returns owned, or NULL with *err filled. Borrows all; the password
 * is kept only inside the GSS credential.
 */
struct authgss_cred *authgss_cred_password_ntlm(const char *domain, const char *user,
                                                const char *pw, size_t pwlen,
                                                struct authgss_error *err);

void authgss_cred_free(struct authgss_cred *c);
enum authgss_cred_kind authgss_cred_kind(const struct authgss_cred *c);
/* The credential's user as text ("alice@LAB.TEST", "LAB\alice"). View until authgss_cred_free. */
const char *authgss_cred_name(const struct authgss_cred *c);
/* The mechanism authgss_init_new will use with c: krb5, or ntlm for PASSWORD_NTLM. */
enum authgss_mech authgss_cred_mech(const struct authgss_cred *c);

/*
 * An initiator context toward target, a host-based service name "HTTP@backend.lab.test"
 * (service@host; an "HTTP/host" spelling is accepted too), with gss_mech_krb5 for Kerberos
 * credentials and the NTLMSSP mechanism for PASSWORD_NTLM, GSS_C_MUTUAL_FLAG for Kerberos.
 * cb_hash (may be NULL): the tls-server-end-point hash of the backend's certificate as seen on
 * exshim's own TLS connection to it; the bindings are then sent. Borrows cred, which must
 * outlive the context, and copies target and cb_hash. Returns owned (authgss_init_free), or
 * NULL with *err filled.
 */
struct authgss_init *authgss_init_new(struct authgss_cred *cred, const char *target,
                                      const uint8_t *cb_hash, size_t cb_hash_len,
                                      struct authgss_error *err);
void authgss_init_free(struct authgss_init *ini);

/*
 * One gss_init_sec_context step: in (NULL/0 on the first call) is the backend's token from its
 * WWW-Authenticate (Kerberos: the AP-REP of mutual auth; NTLM: the CHALLENGE). The first
 * Kerberos step performs S4U2Proxy for proxy and impersonated credentials: a KDC refusal comes
 * back as AUTHGSS_FAIL with AUTHGSS_WHY_DELEGATION_REFUSED. *out and *outlen: owned output token
 * (free()) or NULL/0. Kerberos: CONTINUE with the AP-REQ, then DONE once the AP-REP verified.
 * NTLM: CONTINUE with the NEGOTIATE, then DONE with the AUTHENTICATE. Borrows ini and in.
 */
enum authgss_status authgss_init_step(struct authgss_init *ini, const uint8_t *in, size_t len,
                                      uint8_t **out, size_t *outlen, struct authgss_error *err);

#endif
