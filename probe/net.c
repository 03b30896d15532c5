/*
 * exshim-probe: connections and HTTP exchanges with a deadline on every wait. See net.h.
 */
#include "probe/net.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

static void
ssl_err_text(const char *what, char *err, size_t errlen)
{
    unsigned long e = ERR_get_error();
    char buf[200] = "";
    if (e != 0)
        ERR_error_string_n(e, buf, sizeof(buf));
    ERR_clear_error();
    snprintf(err, errlen, "%s%s%s", what, buf[0] ? ": " : "", buf);
}

static uint64_t
mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* The wait allowed now: timeout_ms, cut to what is left of the connection's deadline. */
static unsigned
allowed(const struct pnet_conn *c, unsigned timeout_ms)
{
    uint64_t now = mono_ms();
    if (c->deadline != 0 && now >= c->deadline)
        return 0;
    if (c->deadline != 0 && c->deadline - now < timeout_ms)
        return (unsigned)(c->deadline - now);
    return timeout_ms;
}

void
pnet_extend(struct pnet_conn *c, uint64_t ms)
{
    c->deadline = mono_ms() + ms;
}

/* Waits for fd to become readable (POLLIN) or writable (POLLOUT). 1 ready, 0 timeout, -1. */
static int
wait_fd(int fd, short ev, unsigned timeout_ms)
{
    struct pollfd p = {.fd = fd, .events = ev};
    for (;;) {
        int r = poll(&p, 1, (int)timeout_ms);
        if (r < 0 && errno == EINTR)
            continue;
        return r < 0 ? -1 : r;
    }
}

static int
tcp_connect(const struct pnet_target *t, char *err, size_t errlen)
{
    struct addrinfo hints = {0}, *ai = NULL, *a;
    int fd = -1, gai;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = t->addr[0] ? AI_NUMERICHOST : 0;
    gai = getaddrinfo(t->addr[0] ? t->addr : t->host, t->port, &hints, &ai);
    if (gai != 0) {
        snprintf(err, errlen, "cannot resolve %s: %s", t->addr[0] ? t->addr : t->host,
                 gai_strerror(gai));
        return -1;
    }
    snprintf(err, errlen, "no address");
    for (a = ai; a != NULL; a = a->ai_next) {
        fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
        if (fd < 0)
            continue;
        fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
        if (connect(fd, a->ai_addr, a->ai_addrlen) == 0)
            break;
        if (errno == EINPROGRESS) {
            int r = wait_fd(fd, POLLOUT, t->timeout_ms), soerr = 0;
            socklen_t sl = sizeof(soerr);
            if (r == 1 && getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) == 0 && soerr == 0)
                break;
            snprintf(err, errlen, "connect: %s", r == 0 ? "timed out" : strerror(soerr));
        } else {
            snprintf(err, errlen, "connect: %s", strerror(errno));
        }
        close(fd);
        fd = -1;
    }
    freeaddrinfo(ai);
    if (fd >= 0) {
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    }
    return fd;
}

/* Drives a non-blocking SSL call to completion within the timeout. */
static int
ssl_wait(struct pnet_conn *c, int r)
{
    int e = SSL_get_error(c->ssl, r);
    if (e == SSL_ERROR_WANT_READ)
        return wait_fd(c->fd, POLLIN, allowed(c, c->timeout_ms)) == 1 ? 0 : -2;
    if (e == SSL_ERROR_WANT_WRITE)
        return wait_fd(c->fd, POLLOUT, allowed(c, c->timeout_ms)) == 1 ? 0 : -2;
    if (e == SSL_ERROR_ZERO_RETURN)
        return 1;
    return -1;
}

struct pnet_conn *
pnet_connect(const struct pnet_target *t, int tls_version, char *err, size_t errlen)
{
    struct pnet_conn *c = calloc(1, sizeof(*c));
    SSL_CTX *ctx = NULL;
    if (c == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    c->timeout_ms = t->timeout_ms;
    c->deadline = mono_ms() + (uint64_t)t->timeout_ms * PNET_LIFE_WAITS;
    c->fd = tcp_connect(t, err, errlen);
    if (c->fd < 0)
        goto fail;
    if (!t->tls)
        return c;
    ctx = SSL_CTX_new(TLS_client_method());
    if (ctx == NULL) {
        ssl_err_text("SSL_CTX_new", err, errlen);
        goto fail;
    }
    if (tls_version != 0) {
        static const int v[] = {TLS1_VERSION, TLS1_1_VERSION, TLS1_2_VERSION, TLS1_3_VERSION};
        int pv = v[(tls_version - 10) & 3];
        SSL_CTX_set_min_proto_version(ctx, pv);
        SSL_CTX_set_max_proto_version(ctx, pv);
        if (tls_version < 12) {
            /* TLS 1.0/1.1 need SHA-1 signatures: only at security level 0 */
            SSL_CTX_set_security_level(ctx, 0);
            SSL_CTX_set_cipher_list(ctx, "DEFAULT:@SECLEVEL=0");
        }
    }
    if (t->ca != NULL) {
        if (SSL_CTX_load_verify_locations(ctx, t->ca, NULL) != 1) {
            ssl_err_text(t->ca, err, errlen);
            goto fail;
        }
    } else {
        SSL_CTX_set_default_verify_paths(ctx);
    }
    /* verification is judged by the TLS step from the result, not enforced here */
    SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
    if (t->offer_h2)
        SSL_CTX_set_alpn_protos(ctx, (const unsigned char *)"\x02h2\x08http/1.1", 12);
    else
        SSL_CTX_set_alpn_protos(ctx, (const unsigned char *)"\x08http/1.1", 9);
    c->ssl = SSL_new(ctx);
    SSL_CTX_free(ctx);
    ctx = NULL;
    if (c->ssl == NULL) {
        ssl_err_text("SSL_new", err, errlen);
        goto fail;
    }
    SSL_set_fd(c->ssl, c->fd);
    SSL_set_tlsext_host_name(c->ssl, t->host);
    for (;;) {
        ERR_clear_error();
        int r = SSL_connect(c->ssl);
        if (r == 1)
            break;
        int w = ssl_wait(c, r);
        if (w == -2) {
            snprintf(err, errlen, "TLS handshake timed out");
            goto fail;
        }
        if (w != 0) {
            ssl_err_text("TLS handshake failed", err, errlen);
            goto fail;
        }
    }
    return c;
fail:
    SSL_CTX_free(ctx);
    pnet_close(c);
    return NULL;
}

void
pnet_close(struct pnet_conn *c)
{
    if (c == NULL)
        return;
    if (c->ssl != NULL)
        SSL_free(c->ssl);
    if (c->fd >= 0)
        close(c->fd);
    free(c);
}

/* RFC 5929: the certificate's signature hash, SHA-256 for MD5 and SHA-1. */
static int
end_point_hash(X509 *x, uint8_t *out, size_t *len)
{
    int md_nid = NID_undef, pk_nid;
    unsigned int n = 0;
    const EVP_MD *md = NULL;
    if (!OBJ_find_sigid_algs(X509_get_signature_nid(x), &md_nid, &pk_nid))
        md_nid = NID_undef;
    if (md_nid != NID_md5 && md_nid != NID_sha1 && md_nid != NID_undef)
        md = EVP_get_digestbynid(md_nid);
    if (md == NULL)
        md = EVP_sha256();
    if (X509_digest(x, md, out, &n) != 1)
        return -1;
    *len = n;
    return 0;
}

int
pnet_tls_info(struct pnet_conn *c, struct pnet_tls_info *info)
{
    memset(info, 0, sizeof(*info));
    if (c->ssl == NULL)
        return -1;
    snprintf(info->version, sizeof(info->version), "%s", SSL_get_version(c->ssl));
    snprintf(info->cipher, sizeof(info->cipher), "%s", SSL_get_cipher_name(c->ssl));
    info->verify_result = SSL_get_verify_result(c->ssl);
    const unsigned char *ap = NULL;
    unsigned int apl = 0;
    SSL_get0_alpn_selected(c->ssl, &ap, &apl);
    if (ap != NULL && apl < sizeof(info->alpn)) {
        memcpy(info->alpn, ap, apl);
        info->alpn[apl] = '\0';
    }
    STACK_OF(X509) *chain = SSL_get_peer_cert_chain(c->ssl);
    info->chain_len = chain ? sk_X509_num(chain) : 0;
    X509 *leaf = SSL_get1_peer_certificate(c->ssl);
    if (leaf == NULL)
        return 0;
    end_point_hash(leaf, info->cb_hash, &info->cb_hash_len);
    int n = i2d_X509(leaf, NULL);
    if (n > 0 && (size_t)n <= sizeof(info->leaf_der)) {
        unsigned char *p = info->leaf_der;
        i2d_X509(leaf, &p);
        info->leaf_der_len = (size_t)n;
    }
    X509_free(leaf);
    return 0;
}

int
pnet_write(struct pnet_conn *c, const void *p, size_t n)
{
    const uint8_t *b = p;
    while (n > 0) {
        ssize_t w;
        if (c->ssl != NULL) {
            ERR_clear_error();
            int r = SSL_write(c->ssl, b, n > 65536 ? 65536 : (int)n);
            if (r <= 0) {
                if (ssl_wait(c, r) != 0)
                    return -1;
                continue;
            }
            w = r;
        } else {
            w = send(c->fd, b, n, MSG_NOSIGNAL);
            if (w < 0) {
                if (errno == EINTR)
                    continue;
                if (errno == EAGAIN && wait_fd(c->fd, POLLOUT, allowed(c, c->timeout_ms)) == 1)
                    continue;
                return -1;
            }
        }
        b += w;
        n -= (size_t)w;
    }
    return 0;
}

int
pnet_fill(struct pnet_conn *c, unsigned timeout_ms)
{
    if (c->rlen == sizeof(c->rbuf))
        return -3;
    if (c->eof)
        return 0;
    for (;;) {
        if (c->ssl != NULL) {
            ERR_clear_error();
            int r = SSL_read(c->ssl, c->rbuf + c->rlen, (int)(sizeof(c->rbuf) - c->rlen));
            if (r > 0) {
                c->rlen += (size_t)r;
                return r;
            }
            int e = SSL_get_error(c->ssl, r);
            if (e == SSL_ERROR_ZERO_RETURN || (e == SSL_ERROR_SYSCALL && ERR_peek_error() == 0)) {
                c->eof = true;
                return 0;
            }
            if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
                int w = wait_fd(c->fd, e == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT,
                                allowed(c, timeout_ms));
                if (w == 0)
                    return -2;
                if (w < 0)
                    return -1;
                continue;
            }
            /* an unexpected EOF without close_notify is how IIS often ends */
            c->eof = true;
            ERR_clear_error();
            return 0;
        }
        ssize_t r = recv(c->fd, c->rbuf + c->rlen, sizeof(c->rbuf) - c->rlen, 0);
        if (r > 0) {
            c->rlen += (size_t)r;
            return (int)r;
        }
        if (r == 0) {
            c->eof = true;
            return 0;
        }
        if (errno == EINTR)
            continue;
        if (errno == ECONNRESET) {
            c->eof = true;
            return 0;
        }
        if (errno != EAGAIN)
            return -1;
        int w = wait_fd(c->fd, POLLIN, allowed(c, timeout_ms));
        if (w == 0)
            return -2;
        if (w < 0)
            return -1;
    }
}

void
pnet_consume(struct pnet_conn *c, size_t n)
{
    if (n >= c->rlen) {
        c->rlen = 0;
        return;
    }
    memmove(c->rbuf, c->rbuf + n, c->rlen - n);
    c->rlen -= n;
}

int
phttp_send(struct pnet_conn *c, const char *host, const char *method, const char *path,
           const char *extra, bool has_body, uint64_t cl, const void *body, size_t blen)
{
    size_t need = strlen(method) + strlen(path) + strlen(host) + (extra ? strlen(extra) : 0) + 160;
    char *h = malloc(need);
    int n, rc = -1;
    if (h == NULL)
        return -1;
    n = snprintf(h, need, "%s %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: exshim-probe/1.0\r\n%s",
                 method, path, host, extra ? extra : "");
    if (has_body)
        n += snprintf(h + n, need - (size_t)n, "Content-Length: %llu\r\n", (unsigned long long)cl);
    n += snprintf(h + n, need - (size_t)n, "\r\n");
    if (pnet_write(c, h, (size_t)n) == 0 && (blen == 0 || pnet_write(c, body, blen) == 0))
        rc = 0;
    free(h);
    return rc;
}

int
phttp_read_head(struct pnet_conn *c, struct presp *r, bool head_request)
{
    unsigned interim = 0;
    for (;;) {
        size_t end = h1_head_end((const char *)c->rbuf, c->rlen);
        if (end > 0) {
            int status = 0;
            const char *why = NULL;
            memcpy(r->head, c->rbuf, end);
            r->head_len = end;
            pnet_consume(c, end);
            if (h1_parse_response(r->head, end, head_request, &r->h, r->hdrs, PNET_MAX_HDRS,
                                  &status, &why) != H1_OK)
                return PNET_BAD;
            r->status = r->h.status;
            if (r->status / 100 == 1) { /* 100 Continue: the real head follows */
                if (++interim > PHTTP_MAX_INTERIM)
                    return PNET_BAD;
                continue;
            }
            return PNET_OK;
        }
        int f = pnet_fill(c, c->timeout_ms);
        if (f == 0)
            return PNET_CLOSED;
        if (f == -2)
            return PNET_TIMEOUT;
        if (f < 0)
            return f == -3 ? PNET_BAD : PNET_IO;
    }
}

int
phttp_read_body(struct pnet_conn *c, const struct presp *r, uint8_t *out, size_t cap,
                size_t *len_out, uint64_t max_bytes)
{
    size_t got = 0;
    uint64_t total = 0;
    struct pwire_chunked ch = {0};
    if (len_out)
        *len_out = 0;
    if (r->h.body == H1_BODY_NONE)
        return PNET_OK;
    if (r->h.body == H1_BODY_EOF)
        return PNET_BAD;
    if (r->h.body == H1_BODY_LENGTH && r->h.content_length > max_bytes)
        return PNET_BAD;
    uint64_t left = r->h.content_length;
    for (;;) {
        if (r->h.body == H1_BODY_LENGTH) {
            size_t n = c->rlen < left ? c->rlen : (size_t)left;
            size_t k = n < cap - got ? n : cap - got;
            if (k > 0) /* out may be NULL when cap is 0 (the body is dropped) */
                memcpy(out + got, c->rbuf, k);
            got += k;
            pnet_consume(c, n);
            left -= n;
            if (left == 0)
                break;
        } else {
            uint8_t tmp[8192];
            size_t o = 0;
            long used = pwire_chunked_feed(&ch, c->rbuf, c->rlen, tmp, sizeof(tmp), &o);
            if (used < 0)
                return PNET_BAD;
            pnet_consume(c, (size_t)used);
            total += o;
            if (total > max_bytes)
                return PNET_BAD;
            size_t k = o < cap - got ? o : cap - got;
            if (k > 0)
                memcpy(out + got, tmp, k);
            got += k;
            if (ch.st == PWIRE_CH_DONE)
                break;
            if (used > 0 || o > 0)
                continue;
        }
        int f = pnet_fill(c, c->timeout_ms);
        if (f == 0)
            return PNET_CLOSED;
        if (f == -2)
            return PNET_TIMEOUT;
        if (f < 0)
            return PNET_IO;
    }
    if (len_out)
        *len_out = got;
    return PNET_OK;
}

const struct h1_header *
phttp_next(const struct presp *r, const char *name, size_t *i)
{
    for (; *i < r->h.nheaders; (*i)++)
        if (h1_slice_eq(r->h.headers[*i].name, name))
            return &r->h.headers[(*i)++];
    return NULL;
}
