/*
 * SPNEGO (RFC 4178, MS-SPNG) token classification and the two NegTokenResp writers the bridge
 * needs. The reader is a bounded DER walker over the caller's bytes: no allocation, every
 * length checked against what is left; indefinite lengths, lengths of more than 4 bytes,
 * high tag numbers and trailing bytes are rejected.
 *
 * Views returned point into the caller's buffer and are valid as long as it is.
 */
#ifndef AUTH_SPNEGO_H
#define AUTH_SPNEGO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum spnego_kind {
    SPNEGO_UNKNOWN = 0,  /* well-formed enough, but none of the below (forward untouched) */
    SPNEGO_RAW_NTLM,     /* NTLMSSP message without SPNEGO (Windows: NTLM most preferred) */
    SPNEGO_INIT,         /* InitialContextToken (60 ...) or bare [0] NegTokenInit (a0 ...) */
    SPNEGO_RESP,         /* [1] NegTokenResp (a1 ...) */
    SPNEGO_RAW_KERBEROS, /* 60 ... with a Kerberos OID, or a bare AP-REQ (6e ...) */
};

enum spnego_mech {
    SPNEGO_MECH_NONE = 0,
    SPNEGO_MECH_NTLM,     /* 1.3.6.1.4.1.311.2.2.10 */
    SPNEGO_MECH_KRB5,     /* 1.2.840.113554.1.2.2 */
    SPNEGO_MECH_MSKRB5,   /* 1.2.840.48018.1.2.2 */
    SPNEGO_MECH_NEGOEX,   /* 1.3.6.1.4.1.311.2.2.30 */
    SPNEGO_MECH_KRB5_U2U, /* 1.2.840.113554.1.2.2.3 */
    SPNEGO_MECH_OTHER,
};
#define SPNEGO_MECHBIT(m) (1u << (unsigned)(m))

/* What a mechToken / responseToken carries. */
enum spnego_inner {
    SPNEGO_INNER_NONE = 0, /* absent or empty */
    SPNEGO_INNER_NTLM,
    SPNEGO_INNER_KERBEROS,
    SPNEGO_INNER_OTHER,
};

/* negState values (RFC 4178 section 4.2.2); SPNEGO_NEGSTATE_ABSENT when not sent. */
#define SPNEGO_NEGSTATE_ABSENT (-1)
#define SPNEGO_ACCEPT_COMPLETED 0
#define SPNEGO_ACCEPT_INCOMPLETE 1
#define SPNEGO_REJECT 2
#define SPNEGO_REQUEST_MIC 3

/* Mechanisms remembered in the initiator's order (all are counted in nmechs/mechs). */
#define SPNEGO_MAX_ORDER 8

/* Largest NTLM message the writers wrap. */
#define SPNEGO_MAX_INNER 65536

struct spnego_view {
    const uint8_t *p;
    size_t len;
};

struct spnego_token {
    enum spnego_kind kind;
    int ntlm_type; /* SPNEGO_RAW_NTLM: 1, 2 or 3; 0 for another type number */
    /* SPNEGO_INIT */
    bool bare_init;                           /* a0 without the 60 GSS header */
    unsigned mechs;                           /* SPNEGO_MECHBIT() of every listed mechanism */
    size_t nmechs;                            /* entries in mechTypes */
    enum spnego_mech first_mech;              /* the initiator's preferred mechanism */
    enum spnego_mech order[SPNEGO_MAX_ORDER]; /* the first SPNEGO_MAX_ORDER, in order */
    struct spnego_view mech_types;            /* the MechTypeList SEQUENCE (30 ...) as sent */
    /* SPNEGO_RESP */
    int neg_state; /* SPNEGO_NEGSTATE_ABSENT or 0..255 as sent */
    enum spnego_mech supported_mech;
    /* SPNEGO_INIT: the optimistic mechToken; SPNEGO_RESP: the responseToken */
    struct spnego_view inner;
    enum spnego_inner inner_kind;
    int inner_ntlm_type; /* inner_kind NTLM: 1, 2, 3 or 0 */
    bool has_mic;        /* mechListMIC present */
    struct spnego_view mic;
};

/*
 * Classifies a decoded Negotiate/NTLM token buf[0..len). Returns 0 and fills *out (views into
 * buf), or -1 with a static reason in *why_out for an empty token, a truncated NTLMSSP header
 * or malformed DER in a SPNEGO/GSS token. Borrows buf.
 */
int spnego_peek(const uint8_t *buf, size_t len, struct spnego_token *out, const char **why_out);

/*
 * Writes NegTokenResp { negState accept-incomplete, supportedMech NTLMSSP,
 * responseToken ntlm[0..n) } into out (capacity cap). Returns 0 and the length, or -1 when n
 * is 0 or > SPNEGO_MAX_INNER or it does not fit. Borrows both.
 */
int spnego_wrap_ntlm(const uint8_t *ntlm, size_t n, uint8_t *out, size_t cap, size_t *len_out);

/* Exact size spnego_wrap_ntlm() writes for an n-byte message (n <= SPNEGO_MAX_INNER). */
size_t spnego_wrap_ntlm_size(size_t n);

/* Writes NegTokenResp { negState accept-completed } (no mechListMIC, 9 bytes). Returns 0 and
 * the length, or -1 when it does not fit. Borrows out. */
int spnego_accept_completed(uint8_t *out, size_t cap, size_t *len_out);

/* Short name of a mechanism ("ntlm", "krb5", "mskrb5", "negoex", "krb5-u2u", "other",
 * "none"). Returns a static string. */
const char *spnego_mech_name(enum spnego_mech m);

/*
 * Describes t for logs, without any token bytes: "ntlm1", "spnego-init[mskrb5,krb5,ntlm]+krb5",
 * "spnego-resp(1)+ntlm3", "kerberos", "unknown". Always NUL-terminates buf (cap >= 1); cut
 * short when it does not fit. Borrows both; returns buf.
 */
char *spnego_describe(const struct spnego_token *t, char *buf, size_t cap);

#endif
