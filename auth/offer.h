/*
 * Rewrites a backend's 401 challenge set into what a route offers its clients (F1, F2, F5).
 *
 *   - policy not set (!route->offer_set): the backend's challenges, unchanged, in order;
 *   - policy set: route->offer[] in order. A scheme the backend offered keeps the backend's
 *     exact challenge text (Basic realm and other auth-params preserved; every challenge of
 *     that scheme, in the backend's order). A scheme the backend did not offer is added only
 *     when the route's bridge can serve it: NTLM under ntlm-to-negotiate when the backend
 *     offers Negotiate, Negotiate under negotiate-to-ntlm when the backend offers NTLM.
 *     Schemes not in the policy are dropped.
 *
 * Each output value is meant to be sent as its own WWW-Authenticate header line.
 * Challenges carrying a token (leg 2 of a handshake) belong to auth/bridge.c; callers pass
 * initial offers only. Pure code, no allocation.
 */
#ifndef AUTH_OFFER_H
#define AUTH_OFFER_H

#include <stdbool.h>
#include <stddef.h>

#include "auth/token.h"
#include "conf/conf.h"

/* Most values offer_rewrite produces. */
#define OFFER_MAX (AUTHTOK_MAX_CHALLENGES + CONF_MAX_OFFER)

/* One WWW-Authenticate value: a view into a challenge's text, or a static string. */
struct offer_value {
    const char *p;
    size_t len;
    enum authtok_scheme scheme;
    bool added; /* synthesized for a bridge (not in the backend's 401) */
};

/*
 * Computes the values to send for the backend challenges ch[0..nch) under route's policy.
 * Writes up to cap values to out and their number to *n_out; *rewritten_out is false when the
 * policy leaves the backend's headers untouched (the caller may then forward them as
 * received). Returns 0, or -1 when cap is too small. Borrows everything; the values are views
 * into the challenges' buffer or static strings.
 */
int offer_rewrite(const struct conf_route *route, const struct authtok_challenge *ch, size_t nch,
                  struct offer_value *out, size_t cap, size_t *n_out, bool *rewritten_out);

/* True when some challenge in ch[0..nch) has scheme s. Borrows ch. */
bool offer_has_scheme(const struct authtok_challenge *ch, size_t nch, enum authtok_scheme s);

#endif
