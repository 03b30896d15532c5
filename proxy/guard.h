/*
 * Exchange exploit guard: a fixed rule set that recognises the request shapes of the public
 * Exchange front-end attacks and names the rule that refused them. Pure code over plain memory:
 * no libevent, no logger, no allocation. The caller answers 403 and logs one line with the id.
 *
 * Every rule looks at the target after percent-decoding (repeated, at most GUARD_DECODE_ROUNDS
 * rounds, %uXXXX included), ASCII case folding, '\' read as '/', and dot segments resolved, so
 * %40, %2540, mixed case and %2e%2e all reach the same comparison.
 *
 *   id       CVE                                       refuses
 *   EXG-000  -                                         path or query too long to inspect, or
 *                                                      still percent-encoded after 3 decodings
 *   EXG-001  CVE-2022-41040 CVE-2022-41082             "autodiscover" followed anywhere later
 *            CVE-2021-34473 CVE-2021-34523             by "powershell" (ProxyNotShell; the
 *                                                      ProxyShell RCE stage)
 *   EXG-002  CVE-2021-34473 CVE-2022-41040             autodiscover path confusion: query that
 *                                                      starts with '@', an Email= value naming
 *                                                      autodiscover, or an Email= value that
 *                                                      straddles the path/query boundary
 *   EXG-003  CVE-2022-41080 CVE-2022-41082             a "powershell" segment below another
 *                                                      vdir (OWASSRF /owa/<mailbox>/powershell)
 *   EXG-004  CVE-2022-41082 CVE-2021-34523             /powershell itself, unless a route
 *                                                      publishes it by name
 *   EXG-005  CVE-2021-34523                            X-Rps-CAT in the query (PowerShell
 *                                                      impersonation token)
 *   EXG-006  CVE-2021-26855 CVE-2021-34523             a client-sent header the front end only
 *                                                      ever sets itself (X-CommonAccessToken,
 *                                                      X-IsFromCafe, X-SourceCafeServer,
 *                                                      msExchProxyUri, msExchLogonAccount,
 *                                                      msExchLogonMailbox, msExchTargetMailbox)
 *   EXG-007  CVE-2021-26855                            an X-BEResource or X-AnonResource-Backend
 *                                                      cookie that is not a plain "host~version"
 *
 * Not refused on purpose: X-BEResource and X-AnonResource-Backend cookies of the form
 * "fqdn~version" (Exchange's front end sets both on browsers and they come back), X-BackEndCookie
 * (MAPI/EWS affinity), X-Forwarded-For, client-request-id, return-client-request-id, and Email=
 * addresses such as alice@contoso.com. Sources for every rule are in guard.c.
 */
#ifndef PROXY_GUARD_H
#define PROXY_GUARD_H

#include <stdbool.h>
#include <stddef.h>

#include "proxy/http1.h"

/* Longest path, and longest query, that is inspected; longer ones are refused as EXG-000. */
#define GUARD_MAX_PART 8192

/* Percent-decoding is repeated until the text stops changing, at most this many times. */
#define GUARD_DECODE_ROUNDS 3

struct guard_rule {
    const char *id;      /* stable, "EXG-001" */
    const char *cve;     /* "CVE-2021-34473" or "CVE-2021-34473,CVE-2021-34523"; "-" for none */
    const char *summary; /* one line, for the log and the README table */
};

struct guard_input {
    const char *path; /* the normalised path (dot-segment-free as received), still encoded */
    size_t path_len;
    const char *query; /* raw query after '?', or NULL with query_len 0 */
    size_t query_len;
    const struct h1_header *headers; /* the request's header lines; NULL when nheaders is 0 */
    size_t nheaders;
    bool powershell_published; /* a route publishes /powershell by name */
};

/*
 * Returns the first rule (in table order) the request matches, or NULL to let it through.
 * Borrows in and everything it points to; keeps nothing. The result is a view into the static
 * rule table, valid for the life of the process. Reentrant: all scratch space is on the stack
 * (about 2 * GUARD_MAX_PART bytes).
 */
const struct guard_rule *guard_check(const struct guard_input *in);

/*
 * Returns the rule table (the order guard_check tries the rules) and stores its length in
 * *n_out. The result is a view into static storage, valid for the life of the process.
 */
const struct guard_rule *guard_rules(size_t *n_out);

/*
 * Returns the rule whose id equals ID (case-insensitive), or NULL (also for a NULL id). Borrows
 * id; the result is a view into the static rule table.
 */
const struct guard_rule *guard_rule_find(const char *id);

#endif
