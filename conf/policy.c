/* exshim -t's policy dump; see policy.h. */
#include "conf/policy.h"

#include <arpa/inet.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

const char *
conf_duration_text(unsigned ms, char *buf, size_t len)
{
    if (ms != 0 && ms % 3600000u == 0)
        snprintf(buf, len, "%uh", ms / 3600000u);
    else if (ms != 0 && ms % 60000u == 0)
        snprintf(buf, len, "%um", ms / 60000u);
    else if (ms % 1000u == 0)
        snprintf(buf, len, "%us", ms / 1000u);
    else
        snprintf(buf, len, "%ums", ms);
    return buf;
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

static bool
offers(const struct conf_route *r, enum conf_scheme s)
{
    for (size_t i = 0; i < r->noffer; i++)
        if (r->offer[i] == s)
            return true;
    return false;
}

static void
print_route(const struct conf *c, const struct conf_route *r, FILE *out)
{
    const struct conf_backend *b = &c->backends[r->backend];
    char d1[32], d2[32], d3[32], d4[32];

    fprintf(out, "route %s (%s:%d)\n", r->path, c->file, r->line);
    fprintf(out, "  backend %s: %s", b->name, b->tls ? "tls" : "plain");
    if (b->tls)
        fprintf(out, " %s", b->verify ? "verify" : "no-verify");
    fprintf(out, " servers ");
    for (size_t i = 0; i < b->nservers; i++) {
        bool v6 = b->servers[i].host[0] != '[' && b->servers[i].host[0] != '\0' &&
                  strchr(b->servers[i].host, ':') != NULL;
        fprintf(out, "%s%s%s%s:%s", i > 0 ? ", " : "", v6 ? "[" : "", b->servers[i].host,
                v6 ? "]" : "", b->servers[i].port);
    }
    if (b->tls && b->sni != NULL)
        fprintf(out, " sni %s", b->sni);
    fprintf(out, "\n  offer ");
    if (r->auth == CONF_AUTH_EDGE) {
        const struct conf_route_edge *e = &r->edge;
        fprintf(out, "%s%s%s (at the edge)\n", e->offer_negotiate ? "Negotiate" : "",
                e->offer_negotiate && e->offer_basic ? ", " : "",
                e->offer_basic ? "Basic (TLS only)" : "");
        fprintf(out, "  auth edge: delegation %s to %s",
                e->delegation == CONF_EDGE_CONSTRAINED  ? "constrained"
                : e->password_mech == CONF_EDGE_PW_NTLM ? "password (NTLM)"
                                                        : "password (Kerberos)",
                e->backend_spn);
        if (e->realm != NULL)
            fprintf(out, ", realm %s", e->realm);
        if (e->ntlm_domain != NULL)
            fprintf(out, ", ntlm domain %s", e->ntlm_domain);
        fprintf(out, ", as %s", c->edge_principal);
    } else if (!r->offer_set) {
        fprintf(out, "pass-through");
    } else if (r->noffer == 0) {
        fprintf(out, "none");
    } else {
        for (size_t i = 0; i < r->noffer; i++)
            fprintf(out, "%s%s", i > 0 ? ", " : "", conf_scheme_name(r->offer[i]));
    }
    fprintf(out, "\n  bridge %s\n", bridge_name(r->bridge));
    fprintf(out, "  timeouts header %s, idle %s, body %s, connect %s\n",
            conf_duration_text(r->header_timeout_ms, d1, sizeof(d1)),
            conf_duration_text(r->idle_timeout_ms, d2, sizeof(d2)),
            conf_duration_text(r->body_timeout_ms, d3, sizeof(d3)),
            conf_duration_text(b->connect_timeout_ms, d4, sizeof(d4)));
    if (b->checked) {
        const struct conf_health *h = &b->health;
        fprintf(out, "  health %s every %s, timeout %s, rise %u, fall %u, expect %d",
                r->health_path ? r->health_path : h->path,
                conf_duration_text(h->interval_ms, d1, sizeof(d1)),
                conf_duration_text(h->timeout_ms, d2, sizeof(d2)), h->rise, h->fall, h->expect);
    } else {
        fprintf(out, "  health passive (a server whose connect fails is avoided for 10s)");
    }
    fprintf(out, "; balance %s\n",
            b->balance == CONF_BALANCE_LEASTCONN ? "leastconn" : "rendezvous");
    /* F1's trap: the bridge serves NTLM clients, but without Negotiate in the offer a
     * Kerberos client that waits for the 401 never sees its scheme and falls back to NTLM. */
    if (r->bridge == CONF_BRIDGE_NTLM_TO_NEGOTIATE && r->offer_set && offers(r, CONF_SCHEME_NTLM) &&
        !offers(r, CONF_SCHEME_NEGOTIATE))
        fprintf(out, "  note Negotiate is not offered: Kerberos clients fall back to NTLM; "
                     "offer = [ \"Negotiate\", \"NTLM\" ] with the same bridge serves both\n");
}

/* Listeners behind a balancer: which peers may send a PROXY header. */
static void
print_proxy_listener(const struct conf_listener *l, FILE *out)
{
    char text[INET6_ADDRSTRLEN];

    fprintf(out, "listener %s: proxy_protocol from ", l->name);
    for (size_t i = 0; i < l->nproxy_from; i++) {
        const struct conf_cidr *r = &l->proxy_from[i];
        if (inet_ntop(r->v6 ? AF_INET6 : AF_INET, r->addr, text, sizeof(text)) == NULL)
            snprintf(text, sizeof(text), "?");
        fprintf(out, "%s%s/%u", i > 0 ? ", " : "", text, r->bits);
    }
    fprintf(out, "\n");
}

int
conf_policy_print(const struct conf *c, FILE *out)
{
    if (c->metrics_host != NULL)
        fprintf(out, "metrics on %s:%s (GET /metrics, /healthz)\n", c->metrics_host,
                c->metrics_port);
    for (size_t i = 0; i < c->nlisteners; i++)
        if (c->listeners[i].proxy_protocol)
            print_proxy_listener(&c->listeners[i], out);
    for (size_t i = 0; i < c->nroutes; i++)
        print_route(c, &c->routes[i], out);
    return ferror(out) ? -1 : 0;
}
