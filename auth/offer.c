/*
 * Offer rewrite: one pass over the policy, one inner pass over the backend's challenges.
 */
#include "auth/offer.h"

/* The scheme a bridge can add when the backend offers only the other one. */
static const struct {
    enum conf_bridge bridge;
    enum authtok_scheme adds;  /* offered to the client */
    enum authtok_scheme needs; /* must be offered by the backend */
    const char *text;
} bridge_adds[] = {
    {CONF_BRIDGE_NTLM_TO_NEGOTIATE, AUTHTOK_SCHEME_NTLM, AUTHTOK_SCHEME_NEGOTIATE, "NTLM"},
    {CONF_BRIDGE_NEGOTIATE_TO_NTLM, AUTHTOK_SCHEME_NEGOTIATE, AUTHTOK_SCHEME_NTLM, "Negotiate"},
};

bool
offer_has_scheme(const struct authtok_challenge *ch, size_t nch, enum authtok_scheme s)
{
    size_t i;
    for (i = 0; i < nch; i++)
        if (ch[i].scheme == s)
            return true;
    return false;
}

static int
push(struct offer_value *out, size_t cap, size_t *n, const char *p, size_t len,
     enum authtok_scheme s, bool added)
{
    if (*n >= cap)
        return -1;
    out[*n].p = p;
    out[*n].len = len;
    out[*n].scheme = s;
    out[*n].added = added;
    (*n)++;
    return 0;
}

static size_t
cstr_len(const char *s)
{
    size_t n = 0;
    while (s[n])
        n++;
    return n;
}

int
offer_rewrite(const struct conf_route *route, const struct authtok_challenge *ch, size_t nch,
              struct offer_value *out, size_t cap, size_t *n_out, bool *rewritten_out)
{
    size_t n = 0;
    size_t i, j, k;
    size_t noffer;

    if (!route->offer_set) {
        for (i = 0; i < nch; i++)
            if (push(out, cap, &n, ch[i].text.p, ch[i].text.len, ch[i].scheme, false) != 0)
                return -1;
        *n_out = n;
        *rewritten_out = false;
        return 0;
    }

    noffer = route->noffer < CONF_MAX_OFFER ? route->noffer : CONF_MAX_OFFER;
    for (i = 0; i < noffer; i++) {
        enum authtok_scheme s = authtok_scheme_from_conf(route->offer[i]);
        bool seen = false;

        for (j = 0; j < i; j++)
            if (authtok_scheme_from_conf(route->offer[j]) == s)
                seen = true;
        if (seen || s == AUTHTOK_SCHEME_OTHER)
            continue;
        if (offer_has_scheme(ch, nch, s)) {
            for (j = 0; j < nch; j++)
                if (ch[j].scheme == s &&
                    push(out, cap, &n, ch[j].text.p, ch[j].text.len, s, false) != 0)
                    return -1;
            continue;
        }
        for (k = 0; k < sizeof(bridge_adds) / sizeof(bridge_adds[0]); k++) {
            if (bridge_adds[k].bridge == route->bridge && bridge_adds[k].adds == s &&
                offer_has_scheme(ch, nch, bridge_adds[k].needs) &&
                push(out, cap, &n, bridge_adds[k].text, cstr_len(bridge_adds[k].text), s, true) !=
                    0)
                return -1;
        }
    }
    *n_out = n;
    *rewritten_out = true;
    return 0;
}
