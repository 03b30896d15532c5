/*
 * Unit tests for proxy/tls.c's handshake output over a socket pair: a server SSL on exshim's
 * own BIO (tlsio_attach) against a plain OpenSSL client. write() is wrapped at link time
 * (Makefile: --wrap=write for this binary) to count the system calls tls.c makes.
 *
 * What is checked: each server handshake step leaves in at most one write() (OpenSSL flushes
 * after the flight and after every TLS 1.3 ticket; tls.c holds those flushes to the end of
 * the step), the client still gets both tickets, and a failed handshake still sends its alert
 * and reports OpenSSL's reason rather than the socket's; an error an earlier call left in the
 * thread's queue does not make a step that waits for the client look failed.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "proxy/tls.h"

static int counted_fd = -1;
static int writes;

ssize_t __real_write(int fd, const void *buf, size_t n);
ssize_t __wrap_write(int fd, const void *buf, size_t n);
ssize_t
__wrap_write(int fd, const void *buf, size_t n)
{
    if (fd == counted_fd)
        writes++;
    return __real_write(fd, buf, n);
}

/* A throwaway P-256 key and self-signed certificate, in memory. */
static SSL_CTX *
server_ctx(void)
{
    EVP_PKEY *key = EVP_EC_gen("P-256");
    X509 *x = X509_new();
    assert_non_null(key);
    assert_non_null(x);
    ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
    X509_gmtime_adj(X509_getm_notBefore(x), 0);
    X509_gmtime_adj(X509_getm_notAfter(x), 3600);
    X509_set_pubkey(x, key);
    X509_NAME *n = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC, (const unsigned char *)"t", -1, -1, 0);
    X509_set_issuer_name(x, n);
    assert_true(X509_sign(x, key, EVP_sha256()) > 0);
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    assert_non_null(ctx);
    assert_int_equal(SSL_CTX_use_certificate(ctx, x), 1);
    assert_int_equal(SSL_CTX_use_PrivateKey(ctx, key), 1);
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                              SSL_MODE_RELEASE_BUFFERS);
    X509_free(x);
    EVP_PKEY_free(key);
    return ctx;
}

struct pair {
    int fd[2]; /* [0] server (exshim's BIO), [1] client */
    SSL *srv, *cli;
    SSL_CTX *sctx, *cctx;
};

static void
pair_open(struct pair *p, SSL_CTX *sctx, SSL_CTX *cctx)
{
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, p->fd), 0);
    p->sctx = sctx;
    p->cctx = cctx;
    p->srv = SSL_new(sctx);
    p->cli = SSL_new(cctx);
    assert_non_null(p->srv);
    assert_non_null(p->cli);
    tlsio_attach(p->srv, p->fd[0], true);
    SSL_set_fd(p->cli, p->fd[1]);
    SSL_set_connect_state(p->cli);
    counted_fd = p->fd[0];
    writes = 0;
}

static void
pair_close(struct pair *p)
{
    SSL_free(p->srv);
    SSL_free(p->cli);
    SSL_CTX_free(p->sctx);
    SSL_CTX_free(p->cctx);
    close(p->fd[0]);
    close(p->fd[1]);
    counted_fd = -1;
}

/* Steps both sides until the server is done or fails; counts server steps that wrote. */
static enum tlsio_result
run(struct pair *p, int *steps_out, int *max_writes_per_step, char *err, size_t errlen)
{
    enum tlsio_result r = TLSIO_WANT_READ;
    int cli_done = 0;
    *steps_out = 0;
    *max_writes_per_step = 0;
    for (int i = 0; i < 50; i++) {
        if (cli_done != 1) {
            ERR_clear_error();
            cli_done = SSL_do_handshake(p->cli);
        }
        int before = writes;
        r = tlsio_handshake(p->srv, err, errlen);
        int w = writes - before;
        if (w > 0)
            (*steps_out)++;
        if (w > *max_writes_per_step)
            *max_writes_per_step = w;
        if (r != TLSIO_WANT_READ && r != TLSIO_WANT_WRITE)
            break;
    }
    return r;
}

static void
test_step_one_write(void **state)
{
    (void)state;
    struct pair p;
    SSL_CTX *sctx = server_ctx();
    SSL_CTX_set_num_tickets(sctx, 2);
    SSL_CTX *cctx = SSL_CTX_new(TLS_client_method());
    SSL_CTX_set_min_proto_version(cctx, TLS1_3_VERSION);
    pair_open(&p, sctx, cctx);
    char err[256] = "";
    int steps, maxw;
    enum tlsio_result r = run(&p, &steps, &maxw, err, sizeof(err));
    assert_int_equal(r, TLSIO_OK);
    /* the flight (ServerHello .. Finished), then the two tickets after the client's Finished */
    assert_int_equal(steps, 2);
    assert_int_equal(maxw, 1);
    assert_int_equal(writes, 2);
    assert_int_equal(tlsio_unsent(p.srv), 0);
    /* both tickets reached the client: reading processes them */
    char b;
    ERR_clear_error();
    assert_true(SSL_read(p.cli, &b, 1) <= 0);
    SSL_SESSION *s = SSL_get1_session(p.cli);
    assert_non_null(s);
    assert_int_equal(SSL_SESSION_has_ticket(s), 1);
    SSL_SESSION_free(s);
    pair_close(&p);
}

static void
test_tls12_one_write_per_step(void **state)
{
    (void)state;
    struct pair p;
    SSL_CTX *sctx = server_ctx();
    SSL_CTX *cctx = SSL_CTX_new(TLS_client_method());
    SSL_CTX_set_max_proto_version(cctx, TLS1_2_VERSION);
    pair_open(&p, sctx, cctx);
    char err[256] = "";
    int steps, maxw;
    assert_int_equal(run(&p, &steps, &maxw, err, sizeof(err)), TLSIO_OK);
    /* TLS 1.2: the first flight, then ticket + ChangeCipherSpec + Finished */
    assert_int_equal(steps, 2);
    assert_int_equal(maxw, 1);
    pair_close(&p);
}

static void
test_failure_sends_alert(void **state)
{
    (void)state;
    struct pair p;
    SSL_CTX *sctx = server_ctx();
    assert_int_equal(SSL_CTX_set_ciphersuites(sctx, "TLS_AES_128_GCM_SHA256"), 1);
    SSL_CTX *cctx = SSL_CTX_new(TLS_client_method());
    SSL_CTX_set_min_proto_version(cctx, TLS1_3_VERSION);
    assert_int_equal(SSL_CTX_set_ciphersuites(cctx, "TLS_AES_256_GCM_SHA384"), 1);
    pair_open(&p, sctx, cctx);
    char err[256] = "";
    int steps, maxw;
    assert_int_equal(run(&p, &steps, &maxw, err, sizeof(err)), TLSIO_ERROR);
    assert_non_null(strstr(err, "no shared cipher"));
    assert_int_equal(maxw, 1);
    /* the client sees the server's alert, not a bare close */
    ERR_clear_error();
    assert_true(SSL_do_handshake(p.cli) <= 0);
    char why[256];
    ERR_error_string_n(ERR_peek_last_error(), why, sizeof(why));
    assert_non_null(strstr(why, "alert"));
    pair_close(&p);
}

/* An error some earlier OpenSSL call left in the queue must not turn "wait for the client"
 * into a failure. */
static void
test_stale_error_ignored(void **state)
{
    (void)state;
    struct pair p;
    pair_open(&p, server_ctx(), SSL_CTX_new(TLS_client_method()));
    char err[256] = "";
    int steps, maxw;
    assert_int_equal(run(&p, &steps, &maxw, err, sizeof(err)), TLSIO_OK);
    /* OpenSSL empties the queue itself in each handshake step, not in SSL_read or SSL_write */
    char buf[64];
    size_t n = 99;
    ERR_raise(ERR_LIB_SSL, SSL_R_NO_SHARED_CIPHER);
    assert_int_equal(tlsio_read(p.srv, buf, sizeof(buf), &n, err, sizeof(err)), TLSIO_WANT_READ);
    assert_int_equal(n, 0);
    ERR_raise(ERR_LIB_SSL, SSL_R_NO_SHARED_CIPHER);
    assert_int_equal(tlsio_write(p.srv, "x", 1, &n, err, sizeof(err)), TLSIO_OK);
    assert_int_equal(n, 1);
    pair_close(&p);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_step_one_write),
        cmocka_unit_test(test_tls12_one_write_per_step),
        cmocka_unit_test(test_failure_sends_alert),
        cmocka_unit_test(test_stale_error_ignored),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
