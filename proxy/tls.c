/* TLS contexts and helpers over OpenSSL 3. */
#include "proxy/tls.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

/* Certificates of one listener, kept for the SNI callback. */
struct sni_entry {
    SSL_CTX *ctx;
    X509 *leaf;
};
struct sni_table {
    struct sni_entry *e;
    size_t n;
};

static int sni_index = -1;

const char *
tlsctx_errors(char *buf, size_t len)
{
    unsigned long e;
    size_t n = 0;
    buf[0] = '\0';
    while ((e = ERR_get_error()) != 0) {
        char one[256];
        ERR_error_string_n(e, one, sizeof(one));
        int r = snprintf(buf + n, len - n, "%s%s", n ? "; " : "", one);
        if (r < 0 || (size_t)r >= len - n)
            break;
        n += (size_t)r;
    }
    if (n == 0)
        snprintf(buf, len, "no OpenSSL error recorded");
    return buf;
}

static int
proto_version(int v)
{
    switch (v) {
    case CONF_TLS10:
        return TLS1_VERSION;
    case CONF_TLS11:
        return TLS1_1_VERSION;
    case CONF_TLS12:
        return TLS1_2_VERSION;
    case CONF_TLS13:
        return TLS1_3_VERSION;
    }
    return 0;
}

/* ALPN: HTTP/1.1 only. Windows authentication does not work over HTTP/2 (IIS answers
 * HTTP_1_1_REQUIRED), so a client offering h2 alone is refused rather than half-served. */
static int
alpn_select(SSL *ssl, const unsigned char **out, unsigned char *outlen, const unsigned char *in,
            unsigned int inlen, void *arg)
{
    static const unsigned char h11[] = "http/1.1";
    for (unsigned int i = 0; i < inlen;) {
        unsigned int l = in[i];
        if (i + 1 + l > inlen)
            break;
        if (l == 8 && memcmp(in + i + 1, h11, 8) == 0) {
            *out = in + i + 1;
            *outlen = 8;
            return SSL_TLSEXT_ERR_OK;
        }
        i += 1 + l;
    }
    return SSL_TLSEXT_ERR_NOACK;
}

/* SNI: choose the first certificate whose names match; keep the default otherwise. */
static int
sni_select(SSL *ssl, int *ad, void *arg)
{
    struct sni_table *t = arg;
    const char *name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
    if (name == NULL || t == NULL)
        return SSL_TLSEXT_ERR_OK;
    for (size_t i = 1; i < t->n; i++) {
        if (X509_check_host(t->e[i].leaf, name, 0, 0, NULL) == 1) {
            SSL_set_SSL_CTX(ssl, t->e[i].ctx);
            return SSL_TLSEXT_ERR_OK;
        }
    }
    return SSL_TLSEXT_ERR_OK;
}

static void
sni_table_free(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl, void *argp)
{
    struct sni_table *t = ptr;
    if (t == NULL)
        return;
    for (size_t i = 1; i < t->n; i++)
        SSL_CTX_free(t->e[i].ctx);
    for (size_t i = 0; i < t->n; i++)
        X509_free(t->e[i].leaf);
    free(t->e);
    free(t);
}

/* OpenSSL's read-ahead buffer: two of the largest records a peer may send (16384 bytes of data,
 * up to 256 of expansion, the 5-byte header), rounded up. */
#define TLS_READ_BUF 33600

/*
 * How proxy/conn.c drives OpenSSL: read-ahead (one read() takes every record the socket has),
 * partial writes with a buffer that may move between retries (the output is an evbuffer), and
 * buffers released while a connection is idle, so a held channel costs no TLS buffers.
 */
static void
set_io_modes(SSL_CTX *ctx)
{
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                              SSL_MODE_RELEASE_BUFFERS);
    SSL_CTX_set_read_ahead(ctx, 1);
    /* With read-ahead, one read() fills this buffer. SSL_read returns one record, and before
     * the next one OpenSSL moves what is left in the buffer to its front: a buffer of N records
     * copies each byte about (N-1)/2 more times. At 128 KiB (8 records) a TLS upload spent 3.5
     * extra copies per byte (callgrind, 64 MiB: 234 M instructions of memmove) and 1 GiB cost
     * the worker 1063 ms (median of 9); at TLS_READ_BUF 935 ms, one read() per two records. */
    SSL_CTX_set_default_read_buffer_len(ctx, TLS_READ_BUF);
}

static int
apply_common(SSL_CTX *ctx, const struct conf_listener *l, char *err, size_t errlen)
{
    char e[512];
    SSL_CTX_set_min_proto_version(ctx, proto_version(l->min_protocol));
    SSL_CTX_set_max_proto_version(ctx, proto_version(l->max_protocol));
    if (l->min_protocol < CONF_TLS12) {
        /* OpenSSL 3 refuses TLS 1.0/1.1 at security level 1; a listener that asks for legacy
         * Outlook clients gets level 0. */
        SSL_CTX_set_security_level(ctx, 0);
    }
    if (l->ciphers != NULL && SSL_CTX_set_cipher_list(ctx, l->ciphers) != 1) {
        snprintf(err, errlen, "listener %s: ciphers: %s", l->name, tlsctx_errors(e, sizeof(e)));
        return -1;
    }
    if (l->ciphersuites != NULL && SSL_CTX_set_ciphersuites(ctx, l->ciphersuites) != 1) {
        snprintf(err, errlen, "listener %s: ciphersuites: %s", l->name,
                 tlsctx_errors(e, sizeof(e)));
        return -1;
    }
    if (!l->session_tickets)
        SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
    /* A client that closes without close_notify is ordinary (Outlook, curl, browsers do it);
     * every request exshim relays is framed by its head, so a cut is seen by the framing, and
     * such a close is an end of stream, not an error line. */
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE |
                                 SSL_OP_IGNORE_UNEXPECTED_EOF);
    set_io_modes(ctx);
    SSL_CTX_set_session_id_context(ctx, (const unsigned char *)"exshim", 6);
    SSL_CTX_set_alpn_select_cb(ctx, alpn_select, NULL);
    return 0;
}

static SSL_CTX *
server_ctx_one(const struct conf_listener *l, const struct conf_cert *c, X509 **leaf_out, char *err,
               size_t errlen)
{
    char e[512];
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (ctx == NULL) {
        snprintf(err, errlen, "SSL_CTX_new: %s", tlsctx_errors(e, sizeof(e)));
        return NULL;
    }
    if (apply_common(ctx, l, err, errlen) != 0)
        goto fail;
    if (SSL_CTX_use_certificate_chain_file(ctx, c->chain) != 1) {
        snprintf(err, errlen, "listener %s: certificate chain %s: %s", l->name, c->chain,
                 tlsctx_errors(e, sizeof(e)));
        goto fail;
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, c->key, SSL_FILETYPE_PEM) != 1) {
        snprintf(err, errlen, "listener %s: private key %s: %s", l->name, c->key,
                 tlsctx_errors(e, sizeof(e)));
        goto fail;
    }
    if (SSL_CTX_check_private_key(ctx) != 1) {
        snprintf(err, errlen, "listener %s: key %s does not match certificate %s", l->name, c->key,
                 c->chain);
        goto fail;
    }
    X509 *leaf = SSL_CTX_get0_certificate(ctx);
    if (leaf == NULL || X509_up_ref(leaf) != 1) {
        snprintf(err, errlen, "listener %s: no certificate in %s", l->name, c->chain);
        goto fail;
    }
    *leaf_out = leaf;
    return ctx;
fail:
    SSL_CTX_free(ctx);
    return NULL;
}

SSL_CTX *
tlsctx_server_new(const struct conf_listener *l, char *err, size_t errlen)
{
    struct sni_table *t = NULL;
    SSL_CTX *main_ctx = NULL;

    if (l->ncerts == 0) {
        snprintf(err, errlen, "listener %s: no certificate", l->name);
        return NULL;
    }
    if (sni_index < 0)
        sni_index = SSL_CTX_get_ex_new_index(0, NULL, NULL, NULL, sni_table_free);
    t = calloc(1, sizeof(*t));
    if (t == NULL || (t->e = calloc(l->ncerts, sizeof(*t->e))) == NULL) {
        snprintf(err, errlen, "out of memory");
        free(t);
        return NULL;
    }
    for (size_t i = 0; i < l->ncerts; i++) {
        t->e[i].ctx = server_ctx_one(l, &l->certs[i], &t->e[i].leaf, err, errlen);
        if (t->e[i].ctx == NULL) {
            for (size_t k = 0; k < i; k++) {
                SSL_CTX_free(t->e[k].ctx);
                X509_free(t->e[k].leaf);
            }
            free(t->e);
            free(t);
            return NULL;
        }
        t->n = i + 1;
    }
    main_ctx = t->e[0].ctx;
    SSL_CTX_set_ex_data(main_ctx, sni_index, t);
    if (t->n > 1) {
        SSL_CTX_set_tlsext_servername_callback(main_ctx, sni_select);
        SSL_CTX_set_tlsext_servername_arg(main_ctx, t);
    }
    return main_ctx;
}

SSL_CTX *
tlsctx_client_new(const struct conf_backend *b, char *err, size_t errlen)
{
    char e[512];
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (ctx == NULL) {
        snprintf(err, errlen, "SSL_CTX_new: %s", tlsctx_errors(e, sizeof(e)));
        return NULL;
    }
    SSL_CTX_set_min_proto_version(ctx, proto_version(b->min_protocol));
    SSL_CTX_set_max_proto_version(ctx, proto_version(b->max_protocol));
    if (b->min_protocol < CONF_TLS12)
        SSL_CTX_set_security_level(ctx, 0);
    set_io_modes(ctx);
    /* HTTP/1.1 toward IIS as well: Windows authentication needs it. */
    static const unsigned char alpn[] = "\x08http/1.1";
    SSL_CTX_set_alpn_protos(ctx, alpn, sizeof(alpn) - 1);
    if (b->verify) {
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
        int ok = b->ca_file != NULL ? SSL_CTX_load_verify_locations(ctx, b->ca_file, NULL)
                                    : SSL_CTX_set_default_verify_paths(ctx);
        if (ok != 1) {
            snprintf(err, errlen, "backend %s: CA %s: %s", b->name,
                     b->ca_file ? b->ca_file : "(system)", tlsctx_errors(e, sizeof(e)));
            SSL_CTX_free(ctx);
            return NULL;
        }
    } else {
        SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
    }
    return ctx;
}

void
tlsctx_free(SSL_CTX *ctx)
{
    SSL_CTX_free(ctx);
}

SSL *
tlsctx_ssl_server(SSL_CTX *ctx)
{
    return SSL_new(ctx);
}

SSL *
tlsctx_ssl_client(SSL_CTX *ctx, const char *sni, bool verify)
{
    SSL *ssl = SSL_new(ctx);
    if (ssl == NULL)
        return NULL;
    if (sni != NULL) {
        /* SNI carries names only; an address literal is still verified below. */
        bool is_ip = strspn(sni, "0123456789.:") == strlen(sni);
        if (!is_ip)
            SSL_set_tlsext_host_name(ssl, sni);
        if (verify) {
            X509_VERIFY_PARAM *vp = SSL_get0_param(ssl);
            X509_VERIFY_PARAM_set_hostflags(vp, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
            int ok = is_ip ? X509_VERIFY_PARAM_set1_ip_asc(vp, sni)
                           : X509_VERIFY_PARAM_set1_host(vp, sni, 0);
            if (ok != 1) {
                SSL_free(ssl);
                return NULL;
            }
        }
    }
    return ssl;
}

static int
cert_hash(X509 *x, unsigned char out[32])
{
    unsigned char *der = NULL;
    int n = i2d_X509(x, &der);
    if (n <= 0)
        return -1;
    unsigned int olen = 0;
    int ok = EVP_Digest(der, (size_t)n, out, &olen, EVP_sha256(), NULL);
    OPENSSL_free(der);
    return ok == 1 && olen == 32 ? 0 : -1;
}

int
tlsctx_chain_hash(const char *chain_file, unsigned char out[32])
{
    FILE *f = fopen(chain_file, "r");
    if (f == NULL)
        return -1;
    X509 *x = PEM_read_X509(f, NULL, NULL, NULL);
    fclose(f);
    if (x == NULL)
        return -1;
    int rc = cert_hash(x, out);
    X509_free(x);
    return rc;
}

int
tlsctx_peer_hash(SSL *ssl, unsigned char out[32])
{
    X509 *x = SSL_get1_peer_certificate(ssl);
    if (x == NULL)
        return -1;
    int rc = cert_hash(x, out);
    X509_free(x);
    return rc;
}

static int
connect_timeout(const char *host, const char *port, unsigned timeout_ms, char *err, size_t errlen)
{
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res = NULL;
    int gai = getaddrinfo(host, port, &hints, &res);
    if (gai != 0) {
        snprintf(err, errlen, "%s:%s: %s", host, port, gai_strerror(gai));
        return -1;
    }
    int fd = socket(res->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        snprintf(err, errlen, "socket: %s", strerror(errno));
        freeaddrinfo(res);
        return -1;
    }
    int rc = connect(fd, res->ai_addr, res->ai_addrlen);
    freeaddrinfo(res);
    if (rc != 0 && errno == EINPROGRESS) {
        struct pollfd p = {.fd = fd, .events = POLLOUT};
        int soerr = 0;
        socklen_t sl = sizeof(soerr);
        if (poll(&p, 1, (int)timeout_ms) == 1 &&
            getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) == 0 && soerr == 0)
            rc = 0;
        else
            errno = soerr ? soerr : ETIMEDOUT;
    }
    if (rc != 0) {
        snprintf(err, errlen, "%s:%s: %s", host, port, strerror(errno));
        close(fd);
        return -1;
    }
    int fl = fcntl(fd, F_GETFL);
    fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
    struct timeval tv = {.tv_sec = timeout_ms / 1000, .tv_usec = (timeout_ms % 1000) * 1000};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    return fd;
}

int
tlsctx_probe_hash(const struct conf_backend *b, const struct conf_server *s, unsigned timeout_ms,
                  unsigned char out[32], char *err, size_t errlen)
{
    char e[512];
    int rc = -1, fd = -1;
    SSL *ssl = NULL;
    /* Probe without verification: the point is to see which certificate is presented. */
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (ctx == NULL)
        goto cleanup;
    SSL_CTX_set_security_level(ctx, 0);
    fd = connect_timeout(s->host, s->port, timeout_ms, err, errlen);
    if (fd < 0)
        goto cleanup;
    ssl = SSL_new(ctx);
    if (ssl == NULL)
        goto cleanup;
    const char *sni = b->sni ? b->sni : s->host;
    if (strspn(sni, "0123456789.:") != strlen(sni))
        SSL_set_tlsext_host_name(ssl, sni);
    SSL_set_fd(ssl, fd);
    ERR_clear_error();
    if (SSL_connect(ssl) != 1) {
        snprintf(err, errlen, "%s:%s: TLS handshake: %s", s->host, s->port,
                 tlsctx_errors(e, sizeof(e)));
        goto cleanup;
    }
    if (tlsctx_peer_hash(ssl, out) != 0) {
        snprintf(err, errlen, "%s:%s: no certificate presented", s->host, s->port);
        goto cleanup;
    }
    rc = 0;
cleanup:
    if (ssl != NULL) {
        SSL_shutdown(ssl);
        SSL_free(ssl);
    }
    if (fd >= 0)
        close(fd);
    SSL_CTX_free(ctx);
    return rc;
}

const char *
tlsctx_library_version(void)
{
    return OpenSSL_version(OPENSSL_VERSION);
}

/*
 * The write side of a connection's SSL: a BIO that gathers the records OpenSSL makes into one
 * buffer and hands them to the socket in one write() once the next record would not fit, and
 * on a flush (OpenSSL flushes each handshake flight and alert; proxy/conn.c flushes after its
 * SSL_write calls). A 16 KiB record per write() was a system call per 16 KiB of a stream.
 * Holds at most GATHER_CAP unsent bytes; when the socket takes less, the BIO asks OpenSSL to
 * retry (SSL_ERROR_WANT_WRITE), which is the socket's own backpressure one buffer later. The
 * buffer exists only while it holds bytes: an idle connection holds none.
 */
#define GATHER_RECORDS 4
#define GATHER_CAP (GATHER_RECORDS * (16384 + 256)) /* whole records with their overhead */
/* A record this large, with nothing gathered before it, goes to the socket from OpenSSL's own
 * buffer: copying a 16 KiB record costs more than the send() it would save. MSG_MORE, while
 * proxy/conn.c says more records follow, keeps the kernel from sending a short segment per
 * record, so the socket still sees one push per batch. */
#define DIRECT_MIN 4096

struct gather {
    int fd;
    bool more;          /* the caller has more records to write right after this one */
    bool drained;       /* the last read() returned less than asked: the socket is empty */
    bool corked;        /* the last send() said MSG_MORE: the kernel may hold a short tail */
    bool hold;          /* inside a handshake step: its flushes wait for the step's end */
    unsigned char *buf; /* NULL while empty */
    size_t off, len;    /* unsent: buf[off, off + len) */
};

static BIO_METHOD *gather_method;
static int gather_type;

/* Writes what the socket takes. 0 (all out, or the rest waits for the socket), or -1 on a
 * socket error (errno set; the unsent bytes are dropped: nothing more can go). */
static int
gather_flush(struct gather *g)
{
    while (g->len > 0) {
        ssize_t r = write(g->fd, g->buf + g->off, g->len);
        if (r > 0) {
            g->corked = false; /* a write without MSG_MORE pushes what the kernel held */
            g->off += (size_t)r;
            g->len -= (size_t)r;
            continue;
        }
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return 0;
        if (r == 0)
            errno = EPIPE;
        int e = errno;
        g->len = 0;
        free(g->buf);
        g->buf = NULL;
        g->off = 0;
        errno = e;
        return -1;
    }
    free(g->buf);
    g->buf = NULL;
    g->off = 0;
    return 0;
}

static int
gather_write(BIO *b, const char *in, int inl)
{
    struct gather *g = BIO_get_data(b);
    BIO_clear_retry_flags(b);
    if (inl <= 0)
        return 0;
    size_t n = (size_t)inl, sent = 0;
    if (g->len == 0 && n >= DIRECT_MIN) {
        ssize_t r;
        do
            r = send(g->fd, in, n, MSG_NOSIGNAL | (g->more ? MSG_MORE : 0));
        while (r < 0 && errno == EINTR);
        if (r >= 0)
            g->corked = g->more;
        if (r == (ssize_t)n)
            return inl;
        if (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK)
            return -1;
        /* The socket took part or nothing: the rest is gathered and waits for it. */
        sent = r > 0 ? (size_t)r : 0;
        in += sent;
        n -= sent;
    }
    if (g->len + n > GATHER_CAP && gather_flush(g) != 0)
        return -1;
    size_t room = GATHER_CAP - g->len;
    if (room == 0) {
        BIO_set_retry_write(b);
        return -1;
    }
    if (g->buf == NULL && (g->buf = malloc(GATHER_CAP)) == NULL) {
        errno = ENOMEM;
        return -1;
    }
    if (n > room)
        n = room; /* the socket is full: take what fits, OpenSSL retries the rest */
    if (g->off + g->len + n > GATHER_CAP) {
        memmove(g->buf, g->buf + g->off, g->len);
        g->off = 0;
    }
    memcpy(g->buf + g->off + g->len, in, n);
    g->len += n;
    return (int)(sent + n);
}

/* Reads for OpenSSL, noting whether the socket had less than OpenSSL asked for: then it is
 * empty, and the caller need not ask again only to be told EAGAIN (one read per request). */
static int
sock_read(BIO *b, char *out, int outl)
{
    struct gather *g = BIO_get_data(b);
    BIO_clear_retry_flags(b);
    if (outl <= 0)
        return 0;
    ssize_t r;
    do
        r = read(g->fd, out, (size_t)outl);
    while (r < 0 && errno == EINTR);
    if (r > 0) {
        g->drained = r < outl;
        return (int)r;
    }
    g->drained = true;
    if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        BIO_set_retry_read(b);
        return -1;
    }
    return r == 0 ? 0 : -1;
}

static long
gather_ctrl(BIO *b, int cmd, long num, void *ptr)
{
    struct gather *g = BIO_get_data(b);
    switch (cmd) {
    case BIO_C_GET_FD:
        if (ptr != NULL)
            *(int *)ptr = g->fd;
        return g->fd;
    case BIO_CTRL_FLUSH:
        BIO_clear_retry_flags(b);
        if (g->hold)
            return 1;
        if (gather_flush(g) != 0)
            return -1;
        if (g->len > 0) {
            BIO_set_retry_write(b);
            return -1;
        }
        return 1;
    case BIO_CTRL_WPENDING:
        return (long)g->len;
    case BIO_CTRL_PENDING:
        return 0;
    default:
        return 0;
    }
}

static int
gather_destroy(BIO *b)
{
    struct gather *g = BIO_get_data(b);
    if (g != NULL) {
        free(g->buf);
        free(g);
    }
    BIO_set_data(b, NULL);
    return 1;
}

/* One BIO of ours reads (sock_read) and writes (gather); OpenSSL's socket BIO does both when
 * memory runs out. */
void
tlsio_attach(SSL *ssl, int fd, bool server)
{
    if (gather_method == NULL) {
        gather_type = BIO_get_new_index() | BIO_TYPE_SOURCE_SINK;
        gather_method = BIO_meth_new(gather_type, "exshim gather");
    }
    if (gather_method != NULL && BIO_meth_get_write(gather_method) == NULL) {
        BIO_meth_set_read(gather_method, sock_read);
        BIO_meth_set_write(gather_method, gather_write);
        BIO_meth_set_ctrl(gather_method, gather_ctrl);
        BIO_meth_set_destroy(gather_method, gather_destroy);
    }
    BIO *bio = gather_method != NULL ? BIO_new(gather_method) : NULL;
    struct gather *g = calloc(1, sizeof(*g));
    if (bio != NULL && g != NULL) {
        g->fd = fd;
        BIO_set_data(bio, g);
        BIO_set_init(bio, 1);
        SSL_set_bio(ssl, bio, bio); /* one reference serves both directions */
    } else {
        free(g);
        BIO_free(bio);
        SSL_set_fd(ssl, fd);
    }
    if (server)
        SSL_set_accept_state(ssl);
    else
        SSL_set_connect_state(ssl);
}

static struct gather *
gather_of(SSL *ssl)
{
    BIO *w = SSL_get_wbio(ssl);
    /* OpenSSL stacks its own buffering BIO on top during a handshake: look below it. */
    while (w != NULL && BIO_method_type(w) != gather_type)
        w = BIO_next(w);
    return w != NULL ? BIO_get_data(w) : NULL;
}

/* Maps the outcome of an SSL call that returned r. */
static enum tlsio_result
io_result(SSL *ssl, int r, char *err, size_t errlen)
{
    int e = SSL_get_error(ssl, r);
    switch (e) {
    case SSL_ERROR_WANT_READ:
        return TLSIO_WANT_READ;
    case SSL_ERROR_WANT_WRITE:
        return TLSIO_WANT_WRITE;
    case SSL_ERROR_ZERO_RETURN:
        return TLSIO_EOF;
    case SSL_ERROR_SYSCALL:
        if (ERR_peek_error() == 0) {
            if (errno == 0 || errno == ECONNRESET || errno == EPIPE) {
                if (errno != 0)
                    snprintf(err, errlen, "%s", strerror(errno));
                return errno == 0 ? TLSIO_EOF : TLSIO_ERROR;
            }
            snprintf(err, errlen, "%s", strerror(errno));
            return TLSIO_ERROR;
        }
        break;
    default:
        break;
    }
    tlsctx_errors(err, errlen);
    return TLSIO_ERROR;
}

/* SSL_get_error reads the thread's error queue: a stale entry would turn a WANT_READ into a
 * failure, so the queue must be empty before each call. It nearly always is (failures drain
 * it, tlsctx_errors), and emptying an empty queue still walks all its slots: look first. */
static inline void
errq_clear(void)
{
    if (ERR_peek_error() != 0)
        ERR_clear_error();
}

enum tlsio_result
tlsio_handshake(SSL *ssl, char *err, size_t errlen)
{
    /* OpenSSL flushes after each flight and after each TLS 1.3 ticket: the server's last step
     * made three write()s (Finished answered by two tickets). Its flushes are held until the
     * step returns, so a step's output leaves in one. */
    struct gather *g = gather_of(ssl);
    if (g != NULL)
        g->hold = true;
    errq_clear();
    errno = 0;
    int r = SSL_do_handshake(ssl);
    int e = errno, flush_err = 0;
    bool unsent = false;
    if (g != NULL) {
        g->hold = false;
        if (g->len > 0 && gather_flush(g) != 0)
            flush_err = errno;
        unsent = g->len > 0;
    }
    errno = e;
    enum tlsio_result res = r == 1 ? TLSIO_OK : io_result(ssl, r, err, errlen);
    if (res == TLSIO_EOF || res == TLSIO_ERROR)
        return res; /* OpenSSL's reason says more than the socket's about the alert it sent */
    if (flush_err != 0) {
        snprintf(err, errlen, "%s", strerror(flush_err));
        return TLSIO_ERROR;
    }
    /* Done: what is unsent goes with the first write. Else the peer answers only what it has:
     * wait for the socket first. */
    return res != TLSIO_OK && unsent ? TLSIO_WANT_WRITE : res;
}

enum tlsio_result
tlsio_read(SSL *ssl, void *buf, size_t len, size_t *n, char *err, size_t errlen)
{
    errq_clear();
    errno = 0;
    *n = 0;
    int r = SSL_read_ex(ssl, buf, len, n);
    if (r == 1)
        return TLSIO_OK;
    return io_result(ssl, 0, err, errlen);
}

enum tlsio_result
tlsio_write(SSL *ssl, const void *buf, size_t len, size_t *n, char *err, size_t errlen)
{
    errq_clear();
    errno = 0;
    *n = 0;
    int r = SSL_write_ex(ssl, buf, len, n);
    if (r == 1)
        return TLSIO_OK;
    return io_result(ssl, 0, err, errlen);
}

bool
tlsio_hello_due(SSL *ssl)
{
    return SSL_in_before(ssl) == 1;
}

size_t
tlsio_unsent(SSL *ssl)
{
    struct gather *g = ssl != NULL ? gather_of(ssl) : NULL;
    return g != NULL ? g->len : 0;
}

void
tlsio_more(SSL *ssl, bool more)
{
    struct gather *g = gather_of(ssl);
    if (g == NULL)
        return;
    g->more = more;
    if (!more && g->corked && g->len == 0) {
        /* The batch ended early (the socket or OpenSSL wants to wait) right after a MSG_MORE
         * send: push the tail now rather than at the next ACK or probe. Setting TCP_NODELAY,
         * which exshim's sockets have anyway, makes the kernel send what it holds. */
        int one = 1;
        setsockopt(g->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        g->corked = false;
    }
}

enum tlsio_result
tlsio_flush(SSL *ssl, char *err, size_t errlen)
{
    struct gather *g = gather_of(ssl);
    if (g == NULL || g->len == 0)
        return TLSIO_OK;
    if (gather_flush(g) != 0) {
        snprintf(err, errlen, "%s", strerror(errno));
        return TLSIO_ERROR;
    }
    return g->len == 0 ? TLSIO_OK : TLSIO_WANT_WRITE;
}

bool
tlsio_pending(SSL *ssl)
{
    return SSL_has_pending(ssl) == 1;
}

bool
tlsio_drained(SSL *ssl)
{
    BIO *r = SSL_get_rbio(ssl);
    if (r == NULL || BIO_method_type(r) != gather_type)
        return false;
    const struct gather *g = BIO_get_data(r);
    return g->drained && SSL_has_pending(ssl) != 1;
}

const char *
tlsio_version(const SSL *ssl)
{
    return SSL_get_version(ssl);
}

void
tlsio_close(SSL *ssl)
{
    if (ssl == NULL)
        return;
    /* One close_notify, no wait for the peer's: the socket closes next. */
    if (SSL_is_init_finished(ssl)) {
        ERR_clear_error();
        SSL_shutdown(ssl);
        ERR_clear_error();
    }
    SSL_free(ssl);
}
