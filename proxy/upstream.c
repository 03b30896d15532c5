/* Backend pools. See upstream.h. */
#include "proxy/upstream.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "proxy/conn.h"
#include "proxy/health.h"
#include "proxy/tls.h"

static uint64_t
fnv(uint64_t h, const char *p)
{
    for (; *p; p++)
        h = (h ^ (unsigned char)*p) * 1099511628211ULL;
    return h;
}

static uint64_t
weight(const struct conf_server *sv, const char *key)
{
    uint64_t h = fnv(1469598103934665603ULL, key);
    h = fnv(h, sv->host);
    h = fnv(h, sv->port);
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    return h;
}

size_t
upstream_rendezvous(const struct conf_backend *be, const bool *usable, const char *key)
{
    size_t best = SIZE_MAX;
    uint64_t best_w = 0;
    for (size_t i = 0; i < be->nservers; i++) {
        if (!usable[i])
            continue;
        uint64_t w = weight(&be->servers[i], key);
        if (best == SIZE_MAX || w > best_w) {
            best_w = w;
            best = i;
        }
    }
    return best;
}

/* Fewest open connections among the usable servers; equal counts go by the hash. */
static size_t
least_connected(const struct conf_backend *be, const struct backend_rt *rt, const bool *usable,
                const char *key)
{
    size_t best = SIZE_MAX, best_n = 0;
    uint64_t best_w = 0;
    for (size_t i = 0; i < be->nservers; i++) {
        if (!usable[i])
            continue;
        size_t n = health_conns(rt->health, i);
        uint64_t w = weight(&be->servers[i], key);
        if (best == SIZE_MAX || n < best_n || (n == best_n && w > best_w)) {
            best = i;
            best_n = n;
            best_w = w;
        }
    }
    return best;
}

int
upstream_choose(const struct conf_backend *be, const struct backend_rt *rt,
                const struct conf_route *r, const char *key, size_t *server_out)
{
    bool up[CONF_MAX_SERVERS], suspect[CONF_MAX_SERVERS];
    bool any_up = false, any_suspect = false;
    for (size_t i = 0; i < be->nservers; i++) {
        enum health_state st = health_state_of(rt->health, r, i);
        up[i] = st == HEALTH_UP;
        suspect[i] = st == HEALTH_SUSPECT;
        any_up |= up[i];
        any_suspect |= suspect[i];
    }
    if (!any_up && !any_suspect)
        return -1;
    const bool *usable = any_up ? up : suspect;
    size_t s = be->balance == CONF_BALANCE_LEASTCONN ? least_connected(be, rt, usable, key)
                                                     : upstream_rendezvous(be, usable, key);
    *server_out = s;
    return 0;
}

void
upstream_failed(const struct backend_rt *rt, size_t server, const char *why)
{
    health_connect_failed(rt->health, server, why);
}

size_t
upstream_next(const struct conf_backend *be, const struct backend_rt *rt,
              const struct conf_route *r, const char *key, size_t server)
{
    /* The next lower weight for this key: the order the rendezvous ranking gives, the same on
     * every node, so a failover sends a client to the same second choice wherever it lands. */
    uint64_t ceiling = weight(&be->servers[server], key);
    size_t best = server;
    uint64_t best_w = 0;
    for (size_t i = 0; i < be->nservers; i++) {
        if (i == server || health_state_of(rt->health, r, i) == HEALTH_DOWN)
            continue;
        uint64_t w = weight(&be->servers[i], key);
        if (w < ceiling && (best == server || w > best_w)) {
            best = i;
            best_w = w;
        }
    }
    return best;
}

void
upstream_count(const struct backend_rt *rt, size_t server, struct conn *c)
{
    health_conn_opened(rt->health, server, c);
}

struct conn *
upstream_open(struct event_base *base, const struct conf_backend *be, const struct backend_rt *rt,
              size_t server, const struct conn_cbs *cbs, void *arg, char *err, size_t errlen)
{
    const struct conf_server *sv = &be->servers[server];
    struct ssl_st *ssl = NULL;
    if (rt->tls != NULL) {
        ssl = tlsctx_ssl_client(rt->tls, be->sni ? be->sni : sv->host, be->verify);
        if (ssl == NULL) {
            snprintf(err, errlen, "cannot set up TLS");
            return NULL;
        }
    }
    /* Addresses were resolved at start-up: no blocking name lookup on the event loop. */
    struct conn *c = conn_connect(base, (const struct sockaddr *)&rt->addr[server],
                                  rt->addrlen[server], ssl, be->connect_timeout_ms, cbs, arg);
    if (c == NULL)
        snprintf(err, errlen, "%s", strerror(errno));
    return c;
}

void
upstream_tune(const struct conf_backend *be, int fd)
{
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (be->tcp_keepalive)
        setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one));
}
