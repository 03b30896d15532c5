/*
 * Bridge state machine. One struct per client connection; every call is synchronous and
 * bounded. Outputs are freshly allocated strings so the proxy may drop its head buffers.
 */
#include "auth/bridge.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth/b64.h"
#include "auth/ntlm.h"
#include "auth/spnego.h"
#include "auth/token.h"

/* Where the connection is in a handshake. */
enum bridge_leg {
    LEG_IDLE = 0,   /* no handshake in progress (none started, or the last one ended) */
    LEG_SENT_FIRST, /* a first token (NEGOTIATE, SPNEGO init, Kerberos) went to the backend */
    LEG_CHALLENGED, /* the client got the backend's challenge; its next leg is due */
    LEG_SENT_LAST,  /* the AUTHENTICATE went to the backend; its verdict is due */
};

/* Which translation the current handshake uses; fixed by its first leg. */
enum bridge_mode {
    MODE_NONE = 0,          /* tokens pass untouched */
    MODE_NTLM_AS_NEGOTIATE, /* client NTLM, backend Negotiate: scheme word swapped */
    MODE_RAWNTLM_AS_NTLM,   /* client Negotiate carrying raw NTLMSSP, backend NTLM */
    MODE_SPNEGO_AS_NTLM,    /* client SPNEGO-wrapped NTLMSSP, backend NTLM */
};

#define TRACE_LIST 96
#define TRACE_TOKENS 160
#define TRACE_ROUTE 96

/* Verdict owner in the trace. */
enum trace_by {
    BY_NONE = 0, /* no verdict yet */
    BY_BACKEND,
    BY_EXSHIM,
    BY_STREAM, /* the last leg went out on a request that streams: no status until it ends */
};

struct bridge_trace {
    bool active;   /* a handshake record has begun */
    bool reported; /* authbridge_trace_format() has run since it ended */
    bool ended;
    char route[TRACE_ROUTE];
    char backend_offers[TRACE_LIST];
    char client_offers[TRACE_LIST];
    const char *scheme; /* static: "NTLM" / "Negotiate" */
    char tokens[TRACE_TOKENS];
    const char *bridge; /* static */
    bool have_auth;     /* an AUTHENTICATE was seen */
    char user[NTLMMSG_NAME_MAX];
    char domain[NTLMMSG_NAME_MAX];
    char workstation[NTLMMSG_NAME_MAX];
    bool ntlmv2;
    bool mic;
    enum ntlmmsg_cbt cbt;
    uint8_t cbt_hash[16];
    int verdict;
    enum trace_by by;
    const char *reason; /* static */
};

struct authbridge {
    enum bridge_leg leg;
    enum bridge_mode mode;
    bool restart; /* backend lost mid-handshake: challenge the next continuation leg */
    bool have_expected_cbt;
    uint8_t expected_cbt[16];
    /* What the last initial 401 offered, as the client saw it: replayed on restart. */
    struct authbridge_values offers;
    char backend_offers[TRACE_LIST];
    char client_offers[TRACE_LIST];
    struct bridge_trace trace;
};

/* ---- owned values ---------------------------------------------------------------------- */

static void
values_clear(struct authbridge_values *v)
{
    size_t i;
    for (i = 0; i < v->n; i++)
        free(v->v[i]);
    memset(v, 0, sizeof(*v));
}

/* Returns "prefix" followed by p[0..len) as a new string, or NULL. */
static char *
str_join(const char *prefix, const char *p, size_t len, size_t *len_out)
{
    size_t plen = strlen(prefix);
    char *s = malloc(plen + len + 1);

    if (s == NULL)
        return NULL;
    memcpy(s, prefix, plen);
    if (len > 0)
        memcpy(s + plen, p, len);
    s[plen + len] = '\0';
    *len_out = plen + len;
    return s;
}

/* Returns "prefix" followed by the base64 of bytes[0..n) as a new string, or NULL. */
static char *
str_join_b64(const char *prefix, const uint8_t *bytes, size_t n, size_t *len_out)
{
    size_t plen = strlen(prefix);
    size_t elen = authb64_encoded_len(n);
    size_t got = 0;
    char *s = malloc(plen + elen + 1);

    if (s == NULL)
        return NULL;
    memcpy(s, prefix, plen);
    if (authb64_encode(bytes, n, s + plen, elen + 1, &got) != 0) {
        free(s);
        return NULL;
    }
    *len_out = plen + got;
    return s;
}

/* Takes s (may be NULL: allocation failed) into v. */
static int
values_take(struct authbridge_values *v, char *s, size_t len)
{
    if (s == NULL)
        return -1;
    if (v->n >= AUTHBRIDGE_MAX_VALUES) {
        free(s);
        return -1;
    }
    v->v[v->n] = s;
    v->len[v->n] = len;
    v->n++;
    return 0;
}

/* Appends "prefix" followed by p[0..len) to v as a new string. */
static int
values_push(struct authbridge_values *v, const char *prefix, const char *p, size_t len)
{
    size_t slen = 0;
    char *s = str_join(prefix, p, len, &slen);

    return values_take(v, s, slen);
}

static int
values_copy(struct authbridge_values *dst, const struct authbridge_values *src)
{
    size_t i;
    for (i = 0; i < src->n; i++)
        if (values_push(dst, "", src->v[i], src->len[i]) != 0)
            return -1;
    return 0;
}

/* ---- trace ----------------------------------------------------------------------------- */

static void
copy_text(char *dst, size_t cap, const char *src, size_t len)
{
    size_t n = len < cap - 1 ? len : cap - 1;
    memcpy(dst, src, n);
    dst[n] = '\0';
}

static void
append_text(char *dst, size_t cap, const char *src)
{
    size_t o = strlen(dst);
    while (*src && o + 1 < cap)
        dst[o++] = *src++;
    dst[o] = '\0';
}

static const char *
bridge_name(enum conf_bridge b)
{
    switch (b) {
    case CONF_BRIDGE_NTLM_TO_NEGOTIATE:
        return "ntlm-to-negotiate";
    case CONF_BRIDGE_NEGOTIATE_TO_NTLM:
        return "negotiate-to-ntlm";
    case CONF_BRIDGE_NONE:
        break;
    }
    return "none";
}

/* Starts a new trace record for a handshake on route. */
static void
trace_begin(struct authbridge *st, const struct conf_route *route, enum authtok_scheme scheme)
{
    struct bridge_trace *t = &st->trace;

    memset(t, 0, sizeof(*t));
    t->active = true;
    if (route->path != NULL)
        copy_text(t->route, sizeof(t->route), route->path, strlen(route->path));
    memcpy(t->backend_offers, st->backend_offers, sizeof(t->backend_offers));
    memcpy(t->client_offers, st->client_offers, sizeof(t->client_offers));
    t->scheme = authtok_scheme_name(scheme);
    t->bridge = "none";
}

static void
trace_end(struct authbridge *st, int verdict, enum trace_by by, const char *reason, bool *done_out)
{
    struct bridge_trace *t = &st->trace;

    if (!t->active || t->ended)
        return;
    t->verdict = verdict;
    t->by = by;
    if (reason != NULL)
        t->reason = reason;
    t->ended = true;
    *done_out = true;
}

static void
trace_token(struct bridge_trace *t, const struct spnego_token *tok)
{
    char desc[96];

    spnego_describe(tok, desc, sizeof(desc));
    if (t->tokens[0] != '\0')
        append_text(t->tokens, sizeof(t->tokens), "/");
    append_text(t->tokens, sizeof(t->tokens), desc);
}

static void
trace_authenticate(struct bridge_trace *t, const struct ntlmmsg_info *info)
{
    t->have_auth = true;
    memcpy(t->user, info->user_text, sizeof(t->user));
    memcpy(t->domain, info->domain_text, sizeof(t->domain));
    memcpy(t->workstation, info->workstation_text, sizeof(t->workstation));
    t->ntlmv2 = info->ntlmv2;
    t->mic = info->mic_flagged;
    t->cbt = info->cbt;
    memcpy(t->cbt_hash, info->cbt_hash, sizeof(t->cbt_hash));
}

/* Scheme words of ch[0..n) joined by ',' (scheme words are tokens: safe to log). */
static void
scheme_list(char *dst, size_t cap, const struct authtok_challenge *ch, size_t n)
{
    size_t i;
    char word[32];

    dst[0] = '\0';
    for (i = 0; i < n; i++) {
        if (i > 0)
            append_text(dst, cap, ",");
        copy_text(word, sizeof(word), ch[i].name.p, ch[i].name.len);
        append_text(dst, cap, word);
    }
}

/* ---- lifecycle ------------------------------------------------------------------------- */

struct authbridge *
authbridge_new(void)
{
    return calloc(1, sizeof(struct authbridge));
}

void
authbridge_free(struct authbridge *st)
{
    if (st == NULL)
        return;
    values_clear(&st->offers);
    free(st);
}

void
authbridge_reset(struct authbridge *st)
{
    if (st->leg != LEG_IDLE) {
        st->restart = true;
        if (st->trace.active && !st->trace.ended)
            st->trace.reason = "backend-lost";
    }
    st->leg = LEG_IDLE;
    st->mode = MODE_NONE;
}

void
authbridge_set_expected_cbt(struct authbridge *st, const uint8_t md5[16])
{
    memcpy(st->expected_cbt, md5, 16);
    st->have_expected_cbt = true;
}

bool
authbridge_streaming(struct authbridge *st)
{
    bool done = false;
    if (st->trace.have_auth)
        trace_end(st, 0, BY_STREAM, "the request streams: no status until it ends", &done);
    return done;
}

bool
authbridge_trace_pending(const struct authbridge *st)
{
    return st->trace.active && !st->trace.reported;
}

bool
authbridge_idle(const struct authbridge *st)
{
    /* The offers of an initial 401 are kept for the next handshake's trace and its restart. */
    return st->leg == LEG_IDLE && st->mode == MODE_NONE && !st->restart &&
           !authbridge_trace_pending(st) && st->offers.n == 0 && st->backend_offers[0] == '\0' &&
           st->client_offers[0] == '\0';
}

void
authbridge_req_clear(struct authbridge_req *r)
{
    free(r->authorization);
    values_clear(&r->www);
    memset(r, 0, sizeof(*r));
}

void
authbridge_resp_clear(struct authbridge_resp *r)
{
    values_clear(&r->www);
    memset(r, 0, sizeof(*r));
}

/* ---- request side ---------------------------------------------------------------------- */

/* Fresh offers for a restarted handshake: the last initial 401 as the client saw it, else the
 * Negotiate/NTLM schemes of the policy, else the scheme the client used. */
static int
fresh_offers(const struct authbridge *st, const struct conf_route *route,
             enum authtok_scheme client_scheme, struct authbridge_values *out)
{
    size_t i;

    if (st->offers.n > 0)
        return values_copy(out, &st->offers);
    if (route->offer_set) {
        for (i = 0; i < route->noffer && i < CONF_MAX_OFFER; i++) {
            enum authtok_scheme s = authtok_scheme_from_conf(route->offer[i]);
            if (s == AUTHTOK_SCHEME_NTLM || s == AUTHTOK_SCHEME_NEGOTIATE)
                if (values_push(out, authtok_scheme_name(s), "", 0) != 0)
                    return -1;
        }
        if (out->n > 0)
            return 0;
    }
    return values_push(out, authtok_scheme_name(client_scheme), "", 0);
}

/* The scheme word an unparsable Authorization value starts with. */
static enum authtok_scheme
leading_scheme(const char *v, size_t len)
{
    size_t i = 0, j;
    while (i < len && (v[i] == ' ' || v[i] == '\t'))
        i++;
    j = i;
    while (j < len && v[j] != ' ' && v[j] != '\t' && v[j] != ',')
        j++;
    return authtok_scheme_classify(v + i, j - i);
}

static int
reject(struct authbridge *st, const struct conf_route *route, enum authtok_scheme scheme,
       const char *why, struct authbridge_req *out)
{
    if (route->bridge == CONF_BRIDGE_NONE) {
        /* Pass-through: exshim translates nothing here, so it need not understand the token.
         * The backend judges it and answers as IIS would (401), exactly as without exshim. */
        out->action = AUTHBRIDGE_PASS;
        st->leg = LEG_IDLE;
        st->mode = MODE_NONE;
        return 0;
    }
    if (!st->trace.active || st->trace.ended)
        trace_begin(st, route, scheme);
    out->action = AUTHBRIDGE_REJECT;
    out->status = 400;
    out->why = why;
    trace_end(st, 400, BY_EXSHIM, why, &out->trace_done);
    st->leg = LEG_IDLE;
    st->mode = MODE_NONE;
    return 0;
}

/* Answer the client with a 401 of our own. only_ntlm: steer to raw NTLM; else fresh offers. */
static int
challenge(struct authbridge *st, const struct conf_route *route, enum authtok_scheme scheme,
          bool only_ntlm, const char *reason, struct authbridge_req *out)
{
    int rc;

    if (only_ntlm)
        rc = values_push(&out->www, "NTLM", "", 0);
    else
        rc = fresh_offers(st, route, scheme, &out->www);
    if (rc != 0)
        return -1;
    out->action = AUTHBRIDGE_CHALLENGE;
    out->status = 401;
    trace_end(st, 401, BY_EXSHIM, reason, &out->trace_done);
    st->leg = LEG_IDLE;
    st->mode = MODE_NONE;
    return 0;
}

/* Is this token the first leg of a handshake (as opposed to a continuation)? */
static bool
is_first_leg(const struct spnego_token *tok)
{
    switch (tok->kind) {
    case SPNEGO_RAW_NTLM:
        return tok->ntlm_type == NTLMMSG_NEGOTIATE;
    case SPNEGO_RESP:
        return false;
    default:
        return true;
    }
}

int
authbridge_on_request(struct authbridge *st, const struct conf_route *route, const char *authz,
                      size_t authz_len, struct authbridge_req *out)
{
    struct authtok_challenge cred;
    struct spnego_token tok;
    struct ntlmmsg_info info;
    const char *why = NULL;
    uint8_t *raw = NULL;
    size_t rawlen = 0;
    const uint8_t *ntlm = NULL; /* the NTLMSSP message inside the token, if any */
    size_t ntlmlen = 0;
    bool first;
    bool translated = false; /* this leg's Authorization is rewritten */
    char *value = NULL;
    size_t value_len = 0;
    int rc = -1;

    memset(out, 0, sizeof(*out));
    out->action = AUTHBRIDGE_PASS;

    if (authz == NULL) {
        /* A request without credentials: any handshake in progress was abandoned. */
        st->leg = LEG_IDLE;
        st->mode = MODE_NONE;
        st->restart = false;
        return 0;
    }
    if (authtok_parse_credentials(authz, authz_len, &cred, &why) != AUTHTOK_OK) {
        enum authtok_scheme s = leading_scheme(authz, authz_len);
        if (s == AUTHTOK_SCHEME_NTLM || s == AUTHTOK_SCHEME_NEGOTIATE)
            return reject(st, route, s, why, out);
        return 0;
    }
    if (cred.scheme != AUTHTOK_SCHEME_NTLM && cred.scheme != AUTHTOK_SCHEME_NEGOTIATE)
        return 0; /* Basic, Bearer, ...: not ours */
    if (cred.token68.len == 0)
        return reject(st, route, cred.scheme, "NTLM/Negotiate credentials without a token", out);
    if (cred.token68.len > AUTHB64_MAX_ENCODED)
        return reject(st, route, cred.scheme, "NTLM/Negotiate token too long", out);

    raw = malloc(authb64_decoded_cap(cred.token68.len));
    if (raw == NULL)
        goto cleanup;
    if (authtok_decode(&cred, raw, authb64_decoded_cap(cred.token68.len), &rawlen) != 0) {
        rc = reject(st, route, cred.scheme, "token is not valid base64", out);
        goto cleanup;
    }
    if (spnego_peek(raw, rawlen, &tok, &why) != 0) {
        rc = reject(st, route, cred.scheme, why, out);
        goto cleanup;
    }
    if (tok.kind == SPNEGO_RAW_NTLM) {
        ntlm = raw;
        ntlmlen = rawlen;
    } else if ((tok.kind == SPNEGO_INIT || tok.kind == SPNEGO_RESP) &&
               tok.inner_kind == SPNEGO_INNER_NTLM) {
        ntlm = tok.inner.p;
        ntlmlen = tok.inner.len;
    }
    if (ntlm != NULL) {
        if (ntlmmsg_inspect(ntlm, ntlmlen, &info, &why) != 0) {
            rc = reject(st, route, cred.scheme, why, out);
            goto cleanup;
        }
        if (info.type == NTLMMSG_CHALLENGE) {
            rc = reject(st, route, cred.scheme, "NTLM CHALLENGE sent by a client", out);
            goto cleanup;
        }
    }

    first = is_first_leg(&tok);
    if (st->restart && !first) {
        /* The backend connection that held the handshake is gone: start over. */
        st->restart = false;
        if (!st->trace.active || st->trace.ended)
            trace_begin(st, route, cred.scheme);
        trace_token(&st->trace, &tok);
        rc = challenge(st, route, cred.scheme, false, "backend-lost", out);
        goto cleanup;
    }
    st->restart = false;
    if (first || !st->trace.active || st->trace.ended)
        trace_begin(st, route, cred.scheme);
    trace_token(&st->trace, &tok);
    if (ntlm != NULL && info.type == NTLMMSG_AUTHENTICATE)
        trace_authenticate(&st->trace, &info);
    if (first)
        st->mode = MODE_NONE;

    if (cred.scheme == AUTHTOK_SCHEME_NTLM && tok.kind != SPNEGO_RAW_NTLM) {
        rc = reject(st, route, cred.scheme, "NTLM token is not an NTLMSSP message", out);
        goto cleanup;
    }
    if (cred.scheme == AUTHTOK_SCHEME_NTLM && route->bridge == CONF_BRIDGE_NTLM_TO_NEGOTIATE) {
        translated = true;
        value = str_join("Negotiate ", cred.token68.p, cred.token68.len, &value_len);
        st->mode = MODE_NTLM_AS_NEGOTIATE;
    } else if (cred.scheme == AUTHTOK_SCHEME_NEGOTIATE &&
               route->bridge == CONF_BRIDGE_NEGOTIATE_TO_NTLM) {
        translated = true;
        if (tok.kind == SPNEGO_RAW_NTLM) {
            value = str_join("NTLM ", cred.token68.p, cred.token68.len, &value_len);
            st->mode = MODE_RAWNTLM_AS_NTLM;
        } else if ((tok.kind == SPNEGO_INIT && tok.inner_kind == SPNEGO_INNER_NTLM &&
                    tok.inner_ntlm_type == NTLMMSG_NEGOTIATE) ||
                   (tok.kind == SPNEGO_RESP && tok.inner_kind == SPNEGO_INNER_NTLM &&
                    tok.inner_ntlm_type == NTLMMSG_AUTHENTICATE)) {
            value = str_join_b64("NTLM ", tok.inner.p, tok.inner.len, &value_len);
            st->mode = MODE_SPNEGO_AS_NTLM;
        } else {
            /* Kerberos, or SPNEGO whose optimistic token is not NTLM: the NTLM-only backend
             * cannot use it, and steering inside SPNEGO would need a mechListMIC. */
            st->trace.bridge = bridge_name(route->bridge);
            rc = challenge(st, route, cred.scheme, true, "steered-to-ntlm", out);
            goto cleanup;
        }
    }
    if (!translated) {
        st->mode = MODE_NONE; /* this leg goes through untouched */
    } else {
        if (value == NULL)
            goto cleanup; /* allocation failed */
        out->action = AUTHBRIDGE_REPLACE;
        out->authorization = value;
        out->authorization_len = value_len;
        value = NULL;
        st->trace.bridge = bridge_name(route->bridge);
    }
    st->leg = first ? LEG_SENT_FIRST : LEG_SENT_LAST;
    rc = 0;

cleanup:
    free(value);
    free(raw);
    if (rc != 0)
        authbridge_req_clear(out);
    return rc;
}

/* ---- response side --------------------------------------------------------------------- */

/* Translates the backend's leg-2 challenge c for the client. Returns 1 and stores the new value
 * in *value_out, 0 when it cannot be bridged, -1 when memory ran out. */
static int
translate_challenge(const struct authbridge *st, const struct authtok_challenge *c,
                    char **value_out, size_t *len_out)
{
    struct spnego_token tok;
    struct ntlmmsg_info info;
    const char *why;
    uint8_t *raw = NULL;
    uint8_t *wrapped = NULL;
    size_t rawlen = 0, wlen = 0;
    const uint8_t *ntlm = NULL;
    size_t ntlmlen = 0;
    int rc = 0;

    if (c->token68.len > AUTHB64_MAX_ENCODED)
        return 0;
    raw = malloc(authb64_decoded_cap(c->token68.len));
    if (raw == NULL)
        return -1;
    if (authtok_decode(c, raw, authb64_decoded_cap(c->token68.len), &rawlen) != 0 ||
        spnego_peek(raw, rawlen, &tok, &why) != 0)
        goto cleanup;
    if (tok.kind == SPNEGO_RAW_NTLM) {
        ntlm = raw;
        ntlmlen = rawlen;
    } else if (tok.kind == SPNEGO_RESP && tok.inner_kind == SPNEGO_INNER_NTLM &&
               st->mode == MODE_NTLM_AS_NEGOTIATE) {
        ntlm = tok.inner.p;
        ntlmlen = tok.inner.len;
    }
    if (ntlm == NULL || ntlmmsg_inspect(ntlm, ntlmlen, &info, &why) != 0 ||
        info.type != NTLMMSG_CHALLENGE)
        goto cleanup;

    rc = -1;
    switch (st->mode) {
    case MODE_NTLM_AS_NEGOTIATE:
        if (ntlm == raw)
            *value_out = str_join("NTLM ", c->token68.p, c->token68.len, len_out);
        else
            *value_out = str_join_b64("NTLM ", ntlm, ntlmlen, len_out);
        break;
    case MODE_RAWNTLM_AS_NTLM:
        *value_out = str_join("Negotiate ", c->token68.p, c->token68.len, len_out);
        break;
    case MODE_SPNEGO_AS_NTLM:
        wlen = spnego_wrap_ntlm_size(ntlmlen);
        wrapped = malloc(wlen);
        if (wrapped == NULL || spnego_wrap_ntlm(ntlm, ntlmlen, wrapped, wlen, &wlen) != 0)
            goto cleanup;
        *value_out = str_join_b64("Negotiate ", wrapped, wlen, len_out);
        break;
    case MODE_NONE:
        break;
    }
    if (*value_out != NULL)
        rc = 1;

cleanup:
    free(wrapped);
    free(raw);
    return rc;
}

/* The 401 carries initial offers (or a rejection): rewrite them per policy and remember them. */
static int
initial_offers(struct authbridge *st, const struct conf_route *route,
               const struct authtok_challenge *ch, size_t nch, struct authbridge_resp *out)
{
    struct offer_value vals[OFFER_MAX];
    struct authtok_challenge after[OFFER_MAX];
    size_t n = 0, i;
    bool rewritten = false;

    if (offer_rewrite(route, ch, nch, vals, OFFER_MAX, &n, &rewritten) != 0)
        return -1;
    scheme_list(st->backend_offers, sizeof(st->backend_offers), ch, nch);
    for (i = 0; i < n; i++) {
        memset(&after[i], 0, sizeof(after[i]));
        after[i].name.p = authtok_scheme_name(vals[i].scheme);
        after[i].name.len = strlen(after[i].name.p);
        if (vals[i].scheme == AUTHTOK_SCHEME_OTHER) {
            /* keep the backend's word for schemes exshim does not know */
            size_t w = 0;
            while (w < vals[i].len && vals[i].p[w] != ' ' && vals[i].p[w] != '\t' &&
                   vals[i].p[w] != ',')
                w++;
            after[i].name.p = vals[i].p;
            after[i].name.len = w;
        }
    }
    scheme_list(st->client_offers, sizeof(st->client_offers), after, n);

    values_clear(&st->offers);
    for (i = 0; i < n; i++)
        if (values_push(&st->offers, "", vals[i].p, vals[i].len) != 0)
            return -1;
    if (rewritten) {
        out->www_action = AUTHBRIDGE_WWW_SET;
        if (values_copy(&out->www, &st->offers) != 0)
            return -1;
    }
    return 0;
}

int
authbridge_on_response(struct authbridge *st, const struct conf_route *route, int status,
                       const struct authbridge_slice *www, size_t nwww, struct authbridge_resp *out)
{
    struct authtok_challenge ch[AUTHTOK_MAX_CHALLENGES];
    size_t nch = 0, i, len;
    const char *why;
    bool parsed = true;
    int rc = -1;

    memset(out, 0, sizeof(*out));
    out->www_action = AUTHBRIDGE_WWW_KEEP;
    if (status < 200)
        return 0;
    for (i = 0; i < nwww && parsed; i++)
        if (authtok_parse_challenges(www[i].p, www[i].len, ch, AUTHTOK_MAX_CHALLENGES, &nch,
                                     &why) != AUTHTOK_OK)
            parsed = false;

    if (status != 401) {
        if (st->leg == LEG_IDLE)
            return 0;
        trace_end(st, status, BY_BACKEND, NULL, &out->trace_done);
        if (st->mode != MODE_NONE && nwww > 0) {
            /* The client's mechanism is not the backend's: drop Negotiate tokens it cannot
             * verify (and exshim cannot re-sign). Keep everything else verbatim. */
            out->www_action = AUTHBRIDGE_WWW_SET;
            for (i = 0; parsed && i < nch; i++)
                if (ch[i].scheme != AUTHTOK_SCHEME_NEGOTIATE &&
                    values_push(&out->www, "", ch[i].text.p, ch[i].text.len) != 0)
                    goto cleanup;
        }
        st->leg = LEG_IDLE;
        st->mode = MODE_NONE;
        rc = 0;
        goto cleanup;
    }

    if (!parsed) {
        /* Nothing to rewrite safely: forward as received. */
        if (st->leg != LEG_IDLE)
            trace_end(st, 401, BY_BACKEND, "malformed-challenge", &out->trace_done);
        st->leg = LEG_IDLE;
        st->mode = MODE_NONE;
        return 0;
    }

    if (st->leg != LEG_IDLE) {
        enum authtok_scheme want =
            st->mode == MODE_NTLM_AS_NEGOTIATE ? AUTHTOK_SCHEME_NEGOTIATE : AUTHTOK_SCHEME_NTLM;
        for (i = 0; i < nch; i++) {
            bool leg2 = ch[i].token68.len > 0 && (ch[i].scheme == AUTHTOK_SCHEME_NTLM ||
                                                  ch[i].scheme == AUTHTOK_SCHEME_NEGOTIATE);
            char *value = NULL;
            int t;

            if (!leg2)
                continue;
            if (st->mode == MODE_NONE) {
                /* A handshake exshim does not translate (including multi-leg Kerberos or
                 * NEGOEX): its challenges go to the client untouched. */
                st->leg = LEG_CHALLENGED;
                return 0;
            }
            if (st->leg != LEG_SENT_FIRST || ch[i].scheme != want)
                continue;
            t = translate_challenge(st, &ch[i], &value, &len);
            if (t < 0)
                goto cleanup;
            if (t == 0)
                break;
            out->www_action = AUTHBRIDGE_WWW_SET;
            if (values_take(&out->www, value, len) != 0)
                goto cleanup;
            st->leg = LEG_CHALLENGED;
            return 0;
        }
    }

    /* Initial offers: also the backend's rejection of a handshake in progress. */
    if (st->leg != LEG_IDLE)
        trace_end(st, 401, BY_BACKEND, NULL, &out->trace_done);
    st->leg = LEG_IDLE;
    st->mode = MODE_NONE;
    if (initial_offers(st, route, ch, nch, out) != 0)
        goto cleanup;
    rc = 0;

cleanup:
    if (rc != 0)
        authbridge_resp_clear(out);
    return rc;
}

/* ---- trace formatting ------------------------------------------------------------------ */

struct outbuf {
    char *p;
    size_t cap;
    size_t o;
};

static void
out_str(struct outbuf *b, const char *s)
{
    while (*s && b->o + 1 < b->cap)
        b->p[b->o++] = *s++;
    b->p[b->o] = '\0';
}

/* key="value" with '"' and '\' escaped and control bytes as \xHH. */
static void
out_quoted(struct outbuf *b, const char *key, const char *v)
{
    static const char hex[] = "0123456789abcdef";
    char esc[5];

    if (b->o > 0)
        out_str(b, " ");
    out_str(b, key);
    out_str(b, "=\"");
    for (; *v; v++) {
        unsigned char c = (unsigned char)*v;
        if (c == '"' || c == '\\') {
            esc[0] = '\\';
            esc[1] = (char)c;
            esc[2] = '\0';
        } else if (c < 0x20 || c == 0x7f) {
            esc[0] = '\\';
            esc[1] = 'x';
            esc[2] = hex[c >> 4];
            esc[3] = hex[c & 0xf];
            esc[4] = '\0';
        } else {
            esc[0] = (char)c;
            esc[1] = '\0';
        }
        out_str(b, esc);
    }
    out_str(b, "\"");
}

static void
out_kv(struct outbuf *b, const char *key, const char *v)
{
    if (b->o > 0)
        out_str(b, " ");
    out_str(b, key);
    out_str(b, "=");
    out_str(b, v[0] ? v : "-");
}

size_t
authbridge_trace_format(struct authbridge *st, char *buf, size_t cap)
{
    const struct bridge_trace *t = &st->trace;
    struct outbuf b = {buf, cap, 0};
    char num[16];
    const char *cbt = "absent";

    buf[0] = '\0';
    if (cap < 2)
        return 0;
    out_quoted(&b, "route", t->route);
    out_kv(&b, "backend_offers", t->backend_offers);
    out_kv(&b, "client_offers", t->client_offers);
    out_kv(&b, "scheme", t->scheme ? t->scheme : "");
    out_kv(&b, "tokens", t->tokens);
    out_kv(&b, "bridge", t->bridge ? t->bridge : "none");
    if (t->have_auth) {
        out_quoted(&b, "user", t->user);
        out_quoted(&b, "domain", t->domain);
        out_quoted(&b, "workstation", t->workstation);
        out_kv(&b, "ntlm", t->ntlmv2 ? "v2" : "v1");
        out_kv(&b, "mic", t->mic ? "yes" : "no");
        if (t->cbt == NTLMMSG_CBT_ZERO)
            cbt = "zero";
        else if (t->cbt == NTLMMSG_CBT_PRESENT && !st->have_expected_cbt)
            cbt = "present";
        else if (t->cbt == NTLMMSG_CBT_PRESENT)
            cbt = memcmp(t->cbt_hash, st->expected_cbt, 16) == 0 ? "match" : "mismatch";
        out_kv(&b, "cbt", cbt);
    }
    if (t->by == BY_STREAM) {
        out_kv(&b, "verdict", "streaming");
    } else if (t->by != BY_NONE) {
        snprintf(num, sizeof(num), "%d", t->verdict);
        out_kv(&b, "verdict", num);
        out_kv(&b, "by", t->by == BY_BACKEND ? "backend" : "exshim");
    } else {
        out_kv(&b, "verdict", "");
    }
    if (t->reason != NULL)
        out_quoted(&b, "reason", t->reason);
    st->trace.reported = true;
    return b.o;
}
