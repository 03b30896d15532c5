/*
 * Authorization and WWW-Authenticate values (RFC 9110 section 11).
 *
 *   challenge   = auth-scheme [ 1*SP ( token68 / #auth-param ) ]
 *   credentials = auth-scheme [ 1*SP ( token68 / #auth-param ) ]
 *   auth-param  = token BWS "=" BWS ( token / quoted-string )
 *   token68     = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="
 *
 * A WWW-Authenticate value is a comma-separated list of challenges, and a comma also
 * separates the auth-params of one challenge: `Basic realm="a, b", NTLM` is two challenges.
 * After a comma, "token BWS =" continues the parameters, anything else starts a challenge.
 *
 * Pure code: the parsers only produce views (pointer + length) into the caller's buffer.
 */
#ifndef AUTH_TOKEN_H
#define AUTH_TOKEN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "conf/conf.h"

enum authtok_result {
    AUTHTOK_OK = 0,
    AUTHTOK_ERROR = -1, /* malformed: see *why_out */
};

/* Scheme words exshim knows; everything else is AUTHTOK_SCHEME_OTHER. */
enum authtok_scheme {
    AUTHTOK_SCHEME_OTHER = 0,
    AUTHTOK_SCHEME_NTLM,
    AUTHTOK_SCHEME_NEGOTIATE,
    AUTHTOK_SCHEME_BASIC,
    AUTHTOK_SCHEME_DIGEST,
    AUTHTOK_SCHEME_BEARER,
    AUTHTOK_SCHEME_NEGO2, /* MS-N2HT NEGOEX scheme: forwarded or dropped, never bridged */
};

/* A view into the parsed value; valid as long as that buffer is. */
struct authtok_slice {
    const char *p;
    size_t len;
};

/* One challenge (or the credentials of an Authorization value). */
struct authtok_challenge {
    enum authtok_scheme scheme;
    struct authtok_slice name;    /* scheme word as received */
    struct authtok_slice text;    /* scheme through the end of its last parameter */
    struct authtok_slice token68; /* len 0: none */
    struct authtok_slice params;  /* the auth-param list as received; len 0: none */
    size_t nparams;
};

/* Most challenges kept from one response (all its WWW-Authenticate headers together). */
#define AUTHTOK_MAX_CHALLENGES 16

/*
 * Parses one WWW-Authenticate value v[0..len) and appends its challenges to
 * list[*n_inout .. cap). Empty list elements (", ,") are skipped; a value with no challenge at
 * all is an error. Returns AUTHTOK_OK, or AUTHTOK_ERROR with a static reason in *why_out (the
 * list may then hold part of the value's challenges: *n_inout is only advanced on success).
 * Borrows v; the challenges are views into v.
 */
int authtok_parse_challenges(const char *v, size_t len, struct authtok_challenge *list, size_t cap,
                             size_t *n_inout, const char **why_out);

/*
 * Parses an Authorization value v[0..len): one scheme, then nothing, a token68, or an
 * auth-param list (Digest). Surrounding whitespace is ignored. Returns AUTHTOK_OK or
 * AUTHTOK_ERROR with a static reason in *why_out. Borrows v; *out holds views into v.
 */
int authtok_parse_credentials(const char *v, size_t len, struct authtok_challenge *out,
                              const char **why_out);

/* Classifies a scheme word (case-insensitive). Borrows name. */
enum authtok_scheme authtok_scheme_classify(const char *name, size_t len);

/* Canonical spelling of a scheme ("NTLM", "Negotiate", ...; "other"). Returns a static string. */
const char *authtok_scheme_name(enum authtok_scheme s);

/* The scheme a route's offer entry names. */
enum authtok_scheme authtok_scheme_from_conf(enum conf_scheme s);

/*
 * Decodes the token68 of c (strict base64, see auth/b64.h) into out (capacity cap).
 * Returns 0 and the length, or -1 when c has no token68 or it is not valid base64 or too big.
 * Borrows c and out.
 */
int authtok_decode(const struct authtok_challenge *c, uint8_t *out, size_t cap, size_t *len_out);

#endif
