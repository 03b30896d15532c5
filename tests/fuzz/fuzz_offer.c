/*
 * libFuzzer target for auth/offer.c and the bridge state machine (auth/bridge.c).
 *
 * Input: byte 0 = policy (bit 0 offer_set, bits 1-2 bridge), byte 1 = noffer, bytes 2..9 =
 * offer entries, byte 10 = status selector, then newline-separated lines: WWW-Authenticate
 * values, the last line doubling as an Authorization value.
 *
 * Properties: every offer value is a challenge's exact text (inside the input) or a
 * bridge-added "NTLM"/"Negotiate"; the policy's schemes appear in policy order; the bridge's
 * owned outputs have the length they claim; the trace line fits its buffer.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "auth/bridge.h"
#include "auth/offer.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAXLINES 6

static void
check(int cond)
{
    if (!cond)
        abort();
}

static void
values_ok(const struct authbridge_values *v)
{
    size_t i;
    check(v->n <= AUTHBRIDGE_MAX_VALUES);
    for (i = 0; i < v->n; i++)
        check(v->v[i] != NULL && strlen(v->v[i]) == v->len[i]);
}

static int
policy_pos(const struct conf_route *r, enum authtok_scheme s)
{
    size_t i;
    for (i = 0; i < r->noffer; i++)
        if (authtok_scheme_from_conf(r->offer[i]) == s)
            return (int)i;
    return -1;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const int statuses[] = {401, 200, 100, 302, 401, 500, 401, 204};
    struct conf_route route;
    struct authbridge_slice lines[MAXLINES];
    struct authtok_challenge ch[AUTHTOK_MAX_CHALLENGES];
    struct offer_value out[OFFER_MAX];
    size_t nlines = 0, nch = 0, n = 0, i, start;
    const char *text, *why;
    bool rewritten;
    bool parsed = true;
    int last = -1;
    struct authbridge *st;
    struct authbridge_req rq;
    struct authbridge_resp rs;
    char line[768];

    if (size < 11)
        return 0;
    memset(&route, 0, sizeof(route));
    route.path = (char *)"/fuzz";
    route.offer_set = data[0] & 1;
    route.bridge = (enum conf_bridge)((data[0] >> 1) % 3);
    route.noffer = data[1] % (CONF_MAX_OFFER + 1);
    for (i = 0; i < CONF_MAX_OFFER; i++)
        route.offer[i] = (enum conf_scheme)(data[2 + i] % 5 + 1);
    text = (const char *)data + 11;
    size -= 11;
    for (start = 0, i = 0; i <= size && nlines < MAXLINES; i++) {
        if (i == size || text[i] == '\n') {
            lines[nlines].p = text + start;
            lines[nlines].len = i - start;
            nlines++;
            start = i + 1;
        }
    }

    for (i = 0; i < nlines && parsed; i++)
        if (authtok_parse_challenges(lines[i].p, lines[i].len, ch, AUTHTOK_MAX_CHALLENGES, &nch,
                                     &why) != AUTHTOK_OK)
            parsed = false;
    if (parsed && offer_rewrite(&route, ch, nch, out, OFFER_MAX, &n, &rewritten) == 0) {
        check(n <= OFFER_MAX);
        check(rewritten == route.offer_set);
        for (i = 0; i < n; i++) {
            if (out[i].added) {
                check(route.offer_set && route.bridge != CONF_BRIDGE_NONE);
                check((out[i].len == 4 && memcmp(out[i].p, "NTLM", 4) == 0) ||
                      (out[i].len == 9 && memcmp(out[i].p, "Negotiate", 9) == 0));
                check(!offer_has_scheme(ch, nch, out[i].scheme));
            } else {
                check(out[i].p >= text && out[i].p + out[i].len <= text + size);
            }
            if (route.offer_set) {
                int pos = policy_pos(&route, out[i].scheme);
                check(pos >= 0 && pos >= last);
                last = pos;
            }
        }
        if (!route.offer_set)
            check(n == nch);
    }

    st = authbridge_new();
    if (st == NULL)
        return 0;
    for (i = 0; i < 3; i++) {
        const struct authbridge_slice *authz = nlines > 0 ? &lines[nlines - 1] : NULL;
        if (authbridge_on_request(st, &route, authz ? authz->p : NULL, authz ? authz->len : 0,
                                  &rq) == 0) {
            if (rq.action == AUTHBRIDGE_REPLACE)
                check(rq.authorization != NULL && strlen(rq.authorization) == rq.authorization_len);
            if (rq.action == AUTHBRIDGE_CHALLENGE)
                check(rq.www.n >= 1 && rq.status == 401);
            if (rq.action == AUTHBRIDGE_REJECT)
                check(rq.why != NULL && rq.status == 400);
            values_ok(&rq.www);
            authbridge_req_clear(&rq);
        }
        if (authbridge_on_response(st, &route, statuses[(data[10] + i) % 8], lines,
                                   nlines > 1 ? nlines - 1 : nlines, &rs) == 0) {
            values_ok(&rs.www);
            authbridge_resp_clear(&rs);
        }
        if (i == 1 && (data[10] & 0x80))
            authbridge_reset(st);
    }
    check(authbridge_trace_format(st, line, sizeof(line)) < sizeof(line));
    authbridge_free(st);
    return 0;
}
