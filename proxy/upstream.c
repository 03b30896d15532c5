/* Backend pools. See upstream.h. */
#include "proxy/upstream.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "proxy/conn.h"
#include "proxy/tls.h"

static uint64_t
fnv(uint64_t h, const char *p)
{
    for (; *p; p++)
        h = (h ^ (unsigned char)*p) * 1099511628211ULL;
    return h;
}

size_t
upstream_choose(const struct conf_backend *be, const char *key)
{
    size_t best = 0;
    uint64_t best_w = 0;
    for (size_t i = 0; i < be->nservers; i++) {
        uint64_t h = fnv(1469598103934665603ULL, key);
        h = fnv(h, be->servers[i].host);
        h = fnv(h, be->servers[i].port);
        h ^= h >> 33;
        h *= 0xff51afd7ed558ccdULL;
        h ^= h >> 33;
        if (i == 0 || h > best_w) {
            best_w = h;
            best = i;
        }
    }
    return best;
}

size_t
upstream_next(const struct conf_backend *be, size_t server)
{
    return (server + 1) % be->nservers;
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
