/*
 * edge_client: plays exshim's part in edge authentication over auth/gss.h, for
 * tests/e2e/t80_edge_gss.sh (the session wiring comes later). Blocking, one connection at a
 * time, loopback only.
 *
 *   edge_client negotiate   listen on 127.0.0.1:0 (port written to --ready), answer curl's
 *                           first request with 401 Negotiate, accept its token as the proxy,
 *                           then reach the backend as the client with S4U2Proxy and answer
 *                           curl with the backend's status
 *   edge_client raw-krb5    make a raw Kerberos AP-REQ for the proxy from --user's password,
 *                           accept it, S4U2Proxy to the backend
 *   edge_client basic       verify --user's password against the KDC, then
 *                           S4U2Self + S4U2Proxy to the backend
 *   edge_client serve       a small proxy over auth/edge.h (the session's integration
 *                           recipe): --connections client connections in turn, plain or TLS
 *                           (--listen-cert/--listen-key), Negotiate and Basic at the edge,
 *                           --delegation constrained|password-krb5|password-ntlm toward the
 *                           backend; prints "trace: ..." lines (edge_trace_format)
 *   edge_client password-krb5 | password-ntlm
 *                           verify the password, then reach the backend with a Kerberos or
 *                           NTLM credential made from it (NTLM: NEGOTIATE, the backend's
 *                           CHALLENGE, AUTHENTICATE on one connection)
 *
 * Options: --keytab K --proxy PRINCIPAL --target HTTP@host --backend PORT --host NAME
 *          --path /p [--tls] [--cb | --cb-wrong] [--user U --password-env VAR --domain D]
 *          [--ready FILE] [--verify-twice] [--spoof-kdc-config KRB5.CONF]
 *          [--client-cb right|wrong]  (raw-krb5: the client binds to a certificate hash)
 * Prints key=value lines: client=, mech=, path=, backend_status=, backend_mutual=,
 * and on failure why=<words> error=<text> (exit 2). Never prints tokens or passwords.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "auth/b64.h"
#include "auth/edge.h"
#include "auth/gss.h"

#define HEAD_MAX (128 * 1024)
#define BODY_MAX (256 * 1024)

struct opts {
    const char *mode, *keytab, *proxy, *target, *host, *path, *user, *pwenv, *domain, *ready;
    const char *delegation, *realm, *listen_cert, *listen_key, *spoof_kdc, *client_cb;
    int backend_port, connections;
    bool tls, cb, cb_wrong, verify_twice;
};

/* One HTTP connection to the backend, plain or TLS. */
struct conn {
    int fd;
    SSL_CTX *ctx;
    SSL *ssl;
    uint8_t cert_hash[EVP_MAX_MD_SIZE];
    unsigned cert_hash_len;
};

struct resp {
    int status;
    char head[HEAD_MAX];
    size_t body_len;
};

static void
die_gss(const char *step, const struct authgss_error *e)
{
    printf("why=%s\nerror=%s: %s\n", authgss_why_words(e->why), step, e->text);
    fflush(stdout);
    exit(2);
}

static void
die(const char *msg)
{
    printf("error=%s\n", msg);
    fflush(stdout);
    exit(1);
}

static int
conn_open(struct conn *c, const struct opts *o)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)o->backend_port)};
    memset(c, 0, sizeof(*c));
    c->fd = socket(AF_INET, SOCK_STREAM, 0);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (c->fd < 0 || connect(c->fd, (struct sockaddr *)&sa, sizeof(sa)) != 0)
        return -1;
    if (!o->tls)
        return 0;
    c->ctx = SSL_CTX_new(TLS_client_method());
    if (c->ctx == NULL)
        return -1;
    c->ssl = SSL_new(c->ctx);
    if (c->ssl == NULL || SSL_set_fd(c->ssl, c->fd) != 1)
        return -1;
    SSL_set_tlsext_host_name(c->ssl, o->host);
    if (SSL_connect(c->ssl) != 1)
        return -1;
    /* RFC 5929 tls-server-end-point: the certificate's hash, SHA-256 for SHA-1/MD5 and for
     * the sha256WithRSA certificates the tests make */
    X509 *x = SSL_get1_peer_certificate(c->ssl);
    if (x == NULL)
        return -1;
    int nid = 0;
    const EVP_MD *md = EVP_sha256();
    if (OBJ_find_sigid_algs(X509_get_signature_nid(x), &nid, NULL) && nid == NID_sha384)
        md = EVP_sha384();
    else if (nid == NID_sha512)
        md = EVP_sha512();
    int ok = X509_digest(x, md, c->cert_hash, &c->cert_hash_len);
    X509_free(x);
    return ok == 1 ? 0 : -1;
}

static void
conn_close(struct conn *c)
{
    if (c->ssl != NULL) {
        SSL_shutdown(c->ssl);
        SSL_free(c->ssl);
    }
    SSL_CTX_free(c->ctx);
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    c->ssl = NULL;
    c->ctx = NULL;
}

static int
conn_write(struct conn *c, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = c->ssl ? SSL_write(c->ssl, p, (int)n) : write(c->fd, p, n);
        if (w <= 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

static ssize_t
conn_read(struct conn *c, char *p, size_t n)
{
    return c->ssl ? SSL_read(c->ssl, p, (int)n) : read(c->fd, p, n);
}

/* Reads one response: head into r->head (NUL-terminated), body (Content-Length) dropped. */
static int
read_resp(struct conn *c, struct resp *r)
{
    static char buf[HEAD_MAX + BODY_MAX];
    size_t have = 0;
    char *end = NULL;
    while (end == NULL) {
        if (have >= HEAD_MAX)
            return -1;
        ssize_t n = conn_read(c, buf + have, HEAD_MAX - have);
        if (n <= 0)
            return -1;
        have += (size_t)n;
        buf[have] = '\0';
        end = strstr(buf, "\r\n\r\n");
    }
    size_t hl = (size_t)(end - buf) + 4;
    memcpy(r->head, buf, hl);
    r->head[hl] = '\0';
    if (sscanf(r->head, "HTTP/1.%*d %d", &r->status) != 1)
        return -1;
    size_t clen = 0;
    const char *cl = strcasestr(r->head, "\r\nContent-Length:");
    if (cl != NULL)
        clen = strtoul(cl + 17, NULL, 10);
    if (clen > BODY_MAX)
        return -1;
    while (have - hl < clen) {
        ssize_t n = conn_read(c, buf + have, hl + clen - have);
        if (n <= 0)
            return -1;
        have += (size_t)n;
    }
    r->body_len = clen;
    return 0;
}

/* The token of the first "WWW-Authenticate: <scheme> <token>" in head, decoded; -1: none. */
static int
www_token(const char *head, const char *scheme, uint8_t **out, size_t *outlen)
{
    const char *p = head;
    size_t sl = strlen(scheme);
    while ((p = strcasestr(p, "\r\nWWW-Authenticate:")) != NULL) {
        p += 19;
        while (*p == ' ')
            p++;
        if (strncasecmp(p, scheme, sl) != 0 || p[sl] != ' ')
            continue;
        const char *t = p + sl + 1;
        size_t tl = strcspn(t, "\r");
        size_t cap = authb64_decoded_cap(tl);
        *out = malloc(cap ? cap : 1);
        if (*out == NULL || authb64_decode(t, tl, *out, cap, outlen) != 0) {
            free(*out);
            *out = NULL;
            return -1;
        }
        return 0;
    }
    return -1;
}

static int
send_req(struct conn *c, const struct opts *o, const char *scheme, const uint8_t *tok, size_t n)
{
    size_t cap = authb64_encoded_len(n) + 1, bl = 0;
    char *b64 = malloc(cap);
    char head[1024];
    int rc = -1;
    if (b64 == NULL || authb64_encode(tok, n, b64, cap, &bl) != 0)
        goto cleanup;
    int hl = snprintf(head, sizeof(head),
                      "GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: exshim-edge-client\r\n"
                      "Authorization: %s ",
                      o->path, o->host, scheme);
    if (hl < 0 || (size_t)hl >= sizeof(head))
        goto cleanup;
    if (conn_write(c, head, (size_t)hl) != 0 || conn_write(c, b64, bl) != 0 ||
        conn_write(c, "\r\n\r\n", 4) != 0)
        goto cleanup;
    rc = 0;
cleanup:
    free(b64);
    return rc;
}

/*
 * Reaches the backend as cred's user: Kerberos (one leg, mutual auth checked on the 200) or
 * NTLM (NEGOTIATE, CHALLENGE, AUTHENTICATE). Prints backend_status= and backend_mutual=.
 */
static int
backend(const struct opts *o, struct authgss_cred *cred)
{
    struct conn c;
    struct authgss_error e;
    struct authgss_init *ini = NULL;
    static struct resp r;
    uint8_t *tok = NULL, *in = NULL;
    size_t tl = 0, il = 0;
    const uint8_t *cb = NULL;
    uint8_t wrong[32];
    bool ntlm = authgss_cred_mech(cred) == AUTHGSS_MECH_NTLM;
    const char *scheme = ntlm ? "NTLM" : "Negotiate";

    if (conn_open(&c, o) != 0)
        die("cannot connect to the backend");
    if (o->cb) {
        cb = c.cert_hash;
    } else if (o->cb_wrong) {
        memset(wrong, 0x5a, sizeof(wrong));
        cb = wrong;
    }
    ini = authgss_init_new(cred, o->target, cb, cb ? (o->cb ? c.cert_hash_len : 32) : 0, &e);
    if (ini == NULL)
        die_gss("init", &e);
    enum authgss_status st = authgss_init_step(ini, NULL, 0, &tok, &tl, &e);
    if (st == AUTHGSS_FAIL)
        die_gss("init_step", &e);
    if (send_req(&c, o, scheme, tok, tl) != 0 || read_resp(&c, &r) != 0)
        die("backend exchange failed");
    free(tok);
    tok = NULL;
    if (ntlm) {
        if (r.status != 401 || www_token(r.head, "NTLM", &in, &il) != 0)
            die("the backend sent no NTLM challenge");
        st = authgss_init_step(ini, in, il, &tok, &tl, &e);
        free(in);
        in = NULL;
        if (st != AUTHGSS_DONE)
            die_gss("init_step(challenge)", &e);
        if (send_req(&c, o, scheme, tok, tl) != 0 || read_resp(&c, &r) != 0)
            die("backend exchange failed");
        free(tok);
        tok = NULL;
        printf("backend_mutual=n/a\n");
    } else if (r.status != 401 && www_token(r.head, "Negotiate", &in, &il) == 0) {
        st = authgss_init_step(ini, in, il, &tok, &tl, &e);
        free(in);
        free(tok);
        tok = NULL;
        if (st != AUTHGSS_DONE)
            die_gss("mutual authentication", &e);
        printf("backend_mutual=ok\n");
    } else {
        printf("backend_mutual=none\n");
    }
    printf("backend_status=%d\n", r.status);
    authgss_init_free(ini);
    conn_close(&c);
    return r.status == 200 ? 0 : 3;
}

static char *
password(const struct opts *o)
{
    const char *p = o->pwenv ? getenv(o->pwenv) : NULL;
    if (p == NULL)
        die("no password (--password-env)");
    return strdup(p);
}

static struct authgss_acceptor *
acceptor(const struct opts *o)
{
    struct authgss_error e;
    struct authgss_acceptor *acc = authgss_acceptor_new(o->keytab, o->proxy, &e);
    if (acc == NULL)
        die_gss("acceptor", &e);
    return acc;
}

/* Accepts one client token; prints client= and mech=; returns the proxy credential. */
static struct authgss_cred *
accept_token(struct authgss_accept *a, const uint8_t *t, size_t n, const uint8_t *cb, uint8_t **out,
             size_t *outlen)
{
    struct authgss_error e;
    enum authgss_status st = authgss_accept_step(a, t, n, cb, cb ? 32 : 0, out, outlen, &e);
    if (st != AUTHGSS_DONE)
        die_gss("accept", &e);
    printf("client=%s\nmech=%s%s\n", authgss_accept_client(a),
           authgss_accept_spnego(a) ? "spnego/" : "", authgss_mech_name(authgss_accept_mech(a)));
    printf("client_bindings=%s\n", authgss_accept_channel_bound(a) ? "bound" : "none");
    struct authgss_cred *c = authgss_accept_take_cred(a, &e);
    if (c == NULL)
        die_gss("delegated credential", &e);
    printf("cred=%s kind=%d\n", authgss_cred_name(c), (int)authgss_cred_kind(c));
    return c;
}

static int
mode_raw_krb5(const struct opts *o)
{
    struct authgss_error e;
    struct authgss_acceptor *acc = acceptor(o);
    char *pw = password(o);
    /* the client side, made with the user's password: a raw krb5 AP-REQ for the proxy */
    struct authgss_cred *uc = authgss_cred_password_krb5(o->user, pw, strlen(pw), &e);
    explicit_bzero(pw, strlen(pw));
    free(pw);
    if (uc == NULL)
        die_gss("client credential", &e);
    char spn[256];
    snprintf(spn, sizeof(spn), "%s", authgss_acceptor_name(acc));
    /* --client-cb: the client binds to the certificate hash A; the proxy checks against A
     * ("right") or against B ("wrong") */
    uint8_t cb_a[32], cb_b[32];
    memset(cb_a, 0xa1, sizeof(cb_a));
    memset(cb_b, 0xb2, sizeof(cb_b));
    bool ccb = o->client_cb != NULL;
    struct authgss_init *ci = authgss_init_new(uc, spn, ccb ? cb_a : NULL, ccb ? 32 : 0, &e);
    uint8_t *tok = NULL, *out = NULL;
    size_t tl = 0, ol = 0;
    if (ci == NULL || authgss_init_step(ci, NULL, 0, &tok, &tl, &e) == AUTHGSS_FAIL)
        die_gss("client token", &e);
    struct authgss_accept *a = authgss_accept_new(acc);
    const uint8_t *pcb = !ccb ? NULL : strcmp(o->client_cb, "right") == 0 ? cb_a : cb_b;
    struct authgss_cred *pc = accept_token(a, tok, tl, pcb, &out, &ol);
    /* the proxy's mutual-auth token completes the client's context */
    uint8_t *t2 = NULL;
    size_t t2l = 0;
    if (authgss_init_step(ci, out, ol, &t2, &t2l, &e) != AUTHGSS_DONE)
        die_gss("client mutual auth", &e);
    printf("path=S4U2Proxy\n");
    int rc = backend(o, pc);
    free(tok);
    free(out);
    free(t2);
    authgss_cred_free(pc);
    authgss_accept_free(a);
    authgss_init_free(ci);
    authgss_cred_free(uc);
    authgss_acceptor_free(acc);
    return rc;
}

static int
verify(const struct opts *o, struct authgss_acceptor *acc, const char *pw)
{
    struct authgss_error e;
    bool cached = false;
    int n = o->verify_twice ? 2 : 1;
    for (int i = 0; i < n; i++) {
        if (authgss_verify_password(acc, o->user, pw, strlen(pw), &cached, &e) != 0)
            die_gss("password", &e);
        printf("verified=%s\n", cached ? "cache" : "kdc");
    }
    return 0;
}

static int
mode_password(const struct opts *o)
{
    struct authgss_error e;
    struct authgss_acceptor *acc = acceptor(o);
    struct authgss_cred *c = NULL;
    char *pw = password(o);
    /* as if another KDC answered on the KDC's address from now on (the proxy's own TGT came
     * from the real one) */
    if (o->spoof_kdc != NULL)
        setenv("KRB5_CONFIG", o->spoof_kdc, 1);
    verify(o, acc, pw);
    if (strcmp(o->mode, "basic") == 0) {
        c = authgss_cred_impersonate(acc, o->user, &e);
        printf("path=S4U2Self+S4U2Proxy\n");
    } else if (strcmp(o->mode, "password-krb5") == 0) {
        c = authgss_cred_password_krb5(o->user, pw, strlen(pw), &e);
        printf("path=password-Kerberos\n");
    } else {
        char u[128];
        snprintf(u, sizeof(u), "%.*s", (int)strcspn(o->user, "@"), o->user);
        c = authgss_cred_password_ntlm(o->domain ? o->domain : "", u, pw, strlen(pw), &e);
        printf("path=password-NTLM\n");
    }
    explicit_bzero(pw, strlen(pw));
    free(pw);
    if (c == NULL)
        die_gss("credential", &e);
    printf("cred=%s kind=%d\n", authgss_cred_name(c), (int)authgss_cred_kind(c));
    int rc = backend(o, c);
    authgss_cred_free(c);
    authgss_acceptor_free(acc);
    return rc;
}

/* Reads one request head from fd into buf (NUL-terminated). */
static int
read_head(int fd, char *buf, size_t cap)
{
    size_t have = 0;
    while (have + 1 < cap) {
        ssize_t n = read(fd, buf + have, 1);
        if (n <= 0)
            return -1;
        have++;
        buf[have] = '\0';
        if (have >= 4 && memcmp(buf + have - 4, "\r\n\r\n", 4) == 0)
            return 0;
    }
    return -1;
}

static int
mode_negotiate(const struct opts *o)
{
    struct sockaddr_in sa = {.sin_family = AF_INET};
    socklen_t sl = sizeof(sa);
    static char head[HEAD_MAX];
    struct authgss_acceptor *acc = acceptor(o);
    int ls = socket(AF_INET, SOCK_STREAM, 0);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (ls < 0 || bind(ls, (struct sockaddr *)&sa, sizeof(sa)) != 0 || listen(ls, 4) != 0 ||
        getsockname(ls, (struct sockaddr *)&sa, &sl) != 0)
        die("listen failed");
    FILE *rf = fopen(o->ready, "w");
    if (rf == NULL)
        die("ready file");
    fprintf(rf, "%d\n", ntohs(sa.sin_port));
    fclose(rf);
    int fd = accept(ls, NULL, NULL);
    if (fd < 0)
        die("accept failed");
    const char *e401 = "HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Negotiate\r\n"
                       "Content-Length: 0\r\n\r\n";
    for (int leg = 0; leg < 4; leg++) {
        if (read_head(fd, head, sizeof(head)) != 0)
            die("client went away");
        const char *a = strcasestr(head, "\r\nAuthorization: Negotiate ");
        if (a == NULL) {
            if (write(fd, e401, strlen(e401)) < 0)
                die("write");
            continue;
        }
        a += 27;
        size_t tl = strcspn(a, "\r"), cap = authb64_decoded_cap(tl), n = 0;
        uint8_t *tok = malloc(cap ? cap : 1), *out = NULL;
        size_t ol = 0;
        if (tok == NULL || authb64_decode(a, tl, tok, cap, &n) != 0)
            die("bad base64 from the client");
        struct authgss_accept *ac = authgss_accept_new(acc);
        struct authgss_cred *pc = accept_token(ac, tok, n, NULL, &out, &ol);
        printf("path=S4U2Proxy\n");
        fflush(stdout);
        int rc = backend(o, pc);
        char b64[8192] = "";
        size_t bl = 0;
        if (out != NULL)
            authb64_encode(out, ol, b64, sizeof(b64), &bl);
        char resp[9000];
        int rl = snprintf(resp, sizeof(resp),
                          "HTTP/1.1 %d %s\r\n%s%s%sContent-Length: 0\r\nConnection: close\r\n\r\n",
                          rc == 0 ? 200 : 502, rc == 0 ? "OK" : "Bad Gateway",
                          bl ? "WWW-Authenticate: Negotiate " : "", b64, bl ? "\r\n" : "");
        if (rl > 0 && write(fd, resp, (size_t)rl) < 0)
            die("write");
        free(tok);
        free(out);
        authgss_cred_free(pc);
        authgss_accept_free(ac);
        close(fd);
        close(ls);
        authgss_acceptor_free(acc);
        return rc;
    }
    die("no Negotiate token after 4 requests");
    return 1;
}

/* ---- serve: a one-connection-at-a-time proxy driving auth/edge.h -------------------------- */

#define MAX_WWW_SLICES 8

/* The WWW-Authenticate values of a response head, as views into it. */
static size_t
www_slices(const char *head, struct edge_slice *out, size_t cap)
{
    const char *p = head;
    size_t n = 0;
    while (n < cap && (p = strcasestr(p, "\r\nWWW-Authenticate:")) != NULL) {
        p += 19;
        while (*p == ' ')
            p++;
        out[n].p = p;
        out[n].len = strcspn(p, "\r");
        n++;
    }
    return n;
}

/* Reads one request head from c into buf (NUL-terminated); -1 at EOF or on an error. */
static int
read_head_conn(struct conn *c, char *buf, size_t cap)
{
    size_t have = 0;
    while (have + 1 < cap) {
        ssize_t n = conn_read(c, buf + have, 1);
        if (n <= 0)
            return -1;
        have++;
        buf[have] = '\0';
        if (have >= 4 && memcmp(buf + have - 4, "\r\n\r\n", 4) == 0)
            return 0;
    }
    return -1;
}

static void
send_status(struct conn *c, int status, char *const *www, size_t nwww, const char *reason)
{
    char buf[8192];
    size_t o = (size_t)snprintf(buf, sizeof(buf), "HTTP/1.1 %d %s\r\n", status,
                                status == 200 ? "OK" : "Edge");
    for (size_t i = 0; i < nwww && o < sizeof(buf); i++)
        o += (size_t)snprintf(buf + o, sizeof(buf) - o, "WWW-Authenticate: %s\r\n", www[i]);
    if (o < sizeof(buf))
        o += (size_t)snprintf(buf + o, sizeof(buf) - o,
                              "X-Edge-Reason: %s\r\nContent-Length: 0\r\n\r\n",
                              reason ? reason : "-");
    if (o < sizeof(buf))
        conn_write(c, buf, o);
}

static void
print_trace(struct edge *e)
{
    char line[2048];
    edge_trace_format(e, line, sizeof(line));
    printf("trace: %s\n", line);
    fflush(stdout);
}

/* Sends method target to the backend with authz (or none) and reads the answer. */
static int
backend_send(struct conn *bk, const struct opts *o, const char *method, const char *target,
             const char *authz, struct resp *r)
{
    char head[16384];
    int n = snprintf(head, sizeof(head),
                     "%s %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: exshim-edge-client\r\n%s%s%s"
                     "Content-Length: 0\r\n\r\n",
                     method, target, o->host, authz ? "Authorization: " : "", authz ? authz : "",
                     authz ? "\r\n" : "");
    if (n < 0 || (size_t)n >= sizeof(head) || conn_write(bk, head, (size_t)n) != 0)
        return -1;
    return read_resp(bk, r);
}

/*
 * One client connection, following the integration recipe of auth/edge.h: edge_request for
 * every request head; on EDGE_PROCEED the backend connection (a fresh one when asked), then
 * edge_backend_request; every backend answer through edge_response.
 */
static void
serve_client(const struct opts *o, const struct edge_env *env, const struct edge_policy *pol,
             struct conn *cl, bool tls, const uint8_t *cert_hash, size_t cert_hash_len)
{
    static char head[HEAD_MAX];
    static struct resp r;
    struct conn bk = {.fd = -1};
    struct edge *e = edge_new(env);
    if (e == NULL)
        die("edge_new");
    if (tls)
        edge_set_client_cert(e, cert_hash, cert_hash_len);
    while (read_head_conn(cl, head, sizeof(head)) == 0) {
        char method[16] = "", target[1024] = "";
        struct edge_req_out q;
        struct edge_resp_out a;
        const char *authz = strcasestr(head, "\r\nAuthorization:");
        size_t alen = 0;
        if (sscanf(head, "%15s %1023s", method, target) != 2)
            break;
        if (authz != NULL) {
            authz += 16;
            while (*authz == ' ')
                authz++;
            alen = strcspn(authz, "\r");
        }
        if (edge_request(e, pol, authz, alen, tls, &q) != 0)
            die("edge_request: out of memory");
        if (q.trace_done)
            print_trace(e);
        if (q.action != EDGE_PROCEED) {
            send_status(cl, q.status, q.www, q.nwww, q.reason);
            edge_req_clear(&q);
            continue;
        }
        if (q.fresh_backend && bk.fd >= 0) {
            conn_close(&bk);
            edge_backend_lost(e);
            printf("backend: fresh connection\n");
        }
        edge_req_clear(&q);
        if (bk.fd < 0 && conn_open(&bk, o) != 0) {
            conn_close(&bk);
            send_status(cl, 502, NULL, 0, "backend unreachable");
            continue;
        }
        if (edge_backend_request(e, pol, o->tls ? bk.cert_hash : NULL,
                                 o->tls ? bk.cert_hash_len : 0, &q) != 0)
            die("edge_backend_request: out of memory");
        if (q.trace_done)
            print_trace(e);
        if (q.action != EDGE_FORWARD && q.action != EDGE_FORWARD_NTLM_NEGOTIATE) {
            send_status(cl, q.status, NULL, 0, q.reason);
            edge_req_clear(&q);
            continue;
        }
        char *authz_out = q.authorization;
        q.authorization = NULL;
        edge_req_clear(&q);
        for (int legs = 0; legs < 3; legs++) {
            struct edge_slice www[MAX_WWW_SLICES];
            if (backend_send(&bk, o, method, target, authz_out, &r) != 0) {
                conn_close(&bk);
                edge_backend_lost(e);
                send_status(cl, 502, NULL, 0, "backend connection lost");
                break;
            }
            free(authz_out);
            authz_out = NULL;
            size_t nw = www_slices(r.head, www, MAX_WWW_SLICES);
            if (edge_response(e, r.status, www, nw, &a) != 0)
                die("edge_response: out of memory");
            if (a.trace_done)
                print_trace(e);
            if (a.action == EDGE_RESP_RESEND) {
                authz_out = a.authorization;
                a.authorization = NULL;
                edge_resp_clear(&a);
                continue;
            }
            if (a.action == EDGE_RESP_LOCAL) {
                conn_close(&bk);
                edge_backend_lost(e);
                send_status(cl, a.status, NULL, 0, a.reason);
            } else {
                send_status(cl, r.status, a.client_www ? &a.client_www : NULL, a.client_www ? 1 : 0,
                            NULL);
            }
            edge_resp_clear(&a);
            break;
        }
        free(authz_out);
    }
    edge_free(e);
    conn_close(&bk);
}

static int
mode_serve(const struct opts *o)
{
    struct sockaddr_in sa = {.sin_family = AF_INET};
    socklen_t sl = sizeof(sa);
    struct edge_env env = {.acceptor = acceptor(o)};
    struct edge_policy pol = {
        .offer_negotiate = true,
        .offer_basic = true,
        .basic_realm = "edge-test",
        .delegation = EDGE_DELEG_CONSTRAINED,
        .backend_spn = o->target,
        .kerberos_realm = o->realm,
        .ntlm_domain = o->domain,
    };
    SSL_CTX *ctx = NULL;
    if (o->delegation != NULL && strcmp(o->delegation, "password-krb5") == 0) {
        pol.delegation = EDGE_DELEG_PASSWORD;
        pol.password_mech = EDGE_PASSWORD_KERBEROS;
    } else if (o->delegation != NULL && strcmp(o->delegation, "password-ntlm") == 0) {
        pol.delegation = EDGE_DELEG_PASSWORD;
        pol.password_mech = EDGE_PASSWORD_NTLM;
    }
    uint8_t lhash[EVP_MAX_MD_SIZE];
    unsigned lhash_len = 0;
    if (o->listen_cert != NULL) {
        ctx = SSL_CTX_new(TLS_server_method());
        if (ctx == NULL || SSL_CTX_use_certificate_chain_file(ctx, o->listen_cert) != 1 ||
            SSL_CTX_use_PrivateKey_file(ctx, o->listen_key, SSL_FILETYPE_PEM) != 1 ||
            X509_digest(SSL_CTX_get0_certificate(ctx), EVP_sha256(), lhash, &lhash_len) != 1)
            die("listener certificate");
    }
    int ls = socket(AF_INET, SOCK_STREAM, 0);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (ls < 0 || bind(ls, (struct sockaddr *)&sa, sizeof(sa)) != 0 || listen(ls, 8) != 0 ||
        getsockname(ls, (struct sockaddr *)&sa, &sl) != 0)
        die("listen failed");
    FILE *rf = fopen(o->ready, "w");
    if (rf == NULL)
        die("ready file");
    fprintf(rf, "%d\n", ntohs(sa.sin_port));
    fclose(rf);
    for (int i = 0; i < (o->connections > 0 ? o->connections : 1); i++) {
        struct conn cl = {.fd = accept(ls, NULL, NULL)};
        if (cl.fd < 0)
            die("accept failed");
        if (ctx != NULL) {
            cl.ssl = SSL_new(ctx);
            if (cl.ssl == NULL || SSL_set_fd(cl.ssl, cl.fd) != 1 || SSL_accept(cl.ssl) != 1) {
                conn_close(&cl);
                continue;
            }
        }
        serve_client(o, &env, &pol, &cl, ctx != NULL, lhash, lhash_len);
        conn_close(&cl);
    }
    close(ls);
    SSL_CTX_free(ctx);
    authgss_acceptor_free(env.acceptor);
    return 0;
}

int
main(int argc, char **argv)
{
    struct opts o = {.path = "/owa/", .host = "backend"};
    if (argc < 2)
        die("usage: edge_client MODE [options]");
    o.mode = argv[1];
    for (int i = 2; i < argc; i++) {
        const char *k = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(k, "--tls") == 0) {
            o.tls = true;
            continue;
        }
        if (strcmp(k, "--cb") == 0) {
            o.cb = true;
            continue;
        }
        if (strcmp(k, "--cb-wrong") == 0) {
            o.cb_wrong = true;
            continue;
        }
        if (strcmp(k, "--verify-twice") == 0) {
            o.verify_twice = true;
            continue;
        }
        if (v == NULL)
            die("option without a value");
        i++;
        if (strcmp(k, "--keytab") == 0)
            o.keytab = v;
        else if (strcmp(k, "--proxy") == 0)
            o.proxy = v;
        else if (strcmp(k, "--target") == 0)
            o.target = v;
        else if (strcmp(k, "--backend") == 0)
            o.backend_port = (int)strtol(v, NULL, 10);
        else if (strcmp(k, "--host") == 0)
            o.host = v;
        else if (strcmp(k, "--path") == 0)
            o.path = v;
        else if (strcmp(k, "--user") == 0)
            o.user = v;
        else if (strcmp(k, "--password-env") == 0)
            o.pwenv = v;
        else if (strcmp(k, "--domain") == 0)
            o.domain = v;
        else if (strcmp(k, "--ready") == 0)
            o.ready = v;
        else if (strcmp(k, "--client-cb") == 0)
            o.client_cb = v;
        else if (strcmp(k, "--spoof-kdc-config") == 0)
            o.spoof_kdc = v;
        else if (strcmp(k, "--delegation") == 0)
            o.delegation = v;
        else if (strcmp(k, "--realm") == 0)
            o.realm = v;
        else if (strcmp(k, "--listen-cert") == 0)
            o.listen_cert = v;
        else if (strcmp(k, "--listen-key") == 0)
            o.listen_key = v;
        else if (strcmp(k, "--connections") == 0)
            o.connections = (int)strtol(v, NULL, 10);
        else
            die("unknown option");
    }
    if (o.keytab == NULL || o.proxy == NULL || o.target == NULL || o.backend_port <= 0)
        die("--keytab, --proxy, --target and --backend are required");
    if (strcmp(o.mode, "negotiate") == 0 && o.ready != NULL)
        return mode_negotiate(&o);
    if (strcmp(o.mode, "serve") == 0 && o.ready != NULL)
        return mode_serve(&o);
    if (o.user == NULL)
        die("--user is required");
    if (strcmp(o.mode, "raw-krb5") == 0)
        return mode_raw_krb5(&o);
    if (strcmp(o.mode, "basic") == 0 || strcmp(o.mode, "password-krb5") == 0 ||
        strcmp(o.mode, "password-ntlm") == 0)
        return mode_password(&o);
    die("unknown mode");
    return 1;
}
