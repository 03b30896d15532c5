/*
 * bench/hs-floor.c: what a TLS server handshake costs in OpenSSL alone, with no sockets and no
 * proxy around it: the floor under the handshakes scenario's "proxy CPU per handshake" that
 * exshim and HAProxy, both on the same libssl, share.
 *
 * A client and a server SSL are joined by a BIO pair in memory; each handshake is a fresh pair
 * (no resumption, as the bench client makes none). The server's calls (SSL_do_handshake and
 * SSL_free) run inside srv_step / srv_free, so callgrind can count them alone:
 *
 *   cc -O2 -o /tmp/hs-floor bench/hs-floor.c -lssl -lcrypto
 *   /tmp/hs-floor --cert cert.pem --key key.pem --count 2000          (CPU time per handshake)
 *   valgrind --tool=callgrind --toggle-collect=srv_step --toggle-collect=srv_free \
 *       /tmp/hs-floor --cert cert.pem --key key.pem --count 40 --tickets 0   (instructions)
 *
 * Options: --tickets N (TLS 1.3 tickets per handshake, OpenSSL's default 2), --tls12.
 */
#include <getopt.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double
cpu_now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* Kept out of line so that callgrind's --toggle-collect can name them. */
static __attribute__((noinline)) int
srv_step(SSL *s)
{
    return SSL_do_handshake(s);
}

static __attribute__((noinline)) void
srv_free(SSL *s)
{
    SSL_free(s);
}

int
main(int argc, char **argv)
{
    const char *cert = NULL, *key = NULL;
    long count = 1000, tickets = -1;
    int tls12 = 0;
    static const struct option opts[] = {
        {"cert", required_argument, NULL, 'c'},  {"key", required_argument, NULL, 'k'},
        {"count", required_argument, NULL, 'n'}, {"tickets", required_argument, NULL, 't'},
        {"tls12", no_argument, NULL, '2'},       {NULL, 0, NULL, 0},
    };
    int o;
    while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (o) {
        case 'c': cert = optarg; break;
        case 'k': key = optarg; break;
        case 'n': count = atol(optarg); break;
        case 't': tickets = atol(optarg); break;
        case '2': tls12 = 1; break;
        default: return 2;
        }
    }
    if (cert == NULL || key == NULL || count < 1 || optind < argc) {
        fprintf(stderr, "usage: hs-floor --cert PEM --key PEM [--count N] [--tickets N] "
                        "[--tls12]\n");
        return 2;
    }
    SSL_CTX *sctx = SSL_CTX_new(TLS_server_method());
    SSL_CTX *cctx = SSL_CTX_new(TLS_client_method());
    if (sctx == NULL || cctx == NULL || SSL_CTX_use_certificate_chain_file(sctx, cert) != 1 ||
        SSL_CTX_use_PrivateKey_file(sctx, key, SSL_FILETYPE_PEM) != 1) {
        ERR_print_errors_fp(stderr);
        return 1;
    }
    /* as exshim's listeners run */
    SSL_CTX_set_mode(sctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                               SSL_MODE_RELEASE_BUFFERS);
    if (tickets >= 0)
        SSL_CTX_set_num_tickets(sctx, (size_t)tickets);
    if (tls12)
        SSL_CTX_set_max_proto_version(cctx, TLS1_2_VERSION);
    double server_s = 0;
    const char *version = "?";
    for (long i = 0; i < count; i++) {
        SSL *srv = SSL_new(sctx), *cli = SSL_new(cctx);
        BIO *a, *b;
        if (srv == NULL || cli == NULL || BIO_new_bio_pair(&a, 0, &b, 0) != 1) {
            ERR_print_errors_fp(stderr);
            return 1;
        }
        SSL_set_bio(srv, a, a);
        SSL_set_bio(cli, b, b);
        SSL_set_accept_state(srv);
        SSL_set_connect_state(cli);
        int sd = 0, cd = 0;
        for (int k = 0; k < 20 && !(sd == 1 && cd == 1); k++) {
            if (cd != 1)
                cd = SSL_do_handshake(cli);
            double t0 = cpu_now();
            if (sd != 1)
                sd = srv_step(srv);
            server_s += cpu_now() - t0;
        }
        if (sd != 1 || cd != 1) {
            fprintf(stderr, "hs-floor: handshake %ld did not complete\n", i);
            ERR_print_errors_fp(stderr);
            return 1;
        }
        char c;
        (void)SSL_read(cli, &c, 0); /* the client takes its tickets */
        version = SSL_get_version(srv);
        double t0 = cpu_now();
        srv_free(srv);
        server_s += cpu_now() - t0;
        SSL_free(cli);
    }
    printf("RESULT handshakes=%ld proto=%s tickets=%ld server_us_per_handshake=%.1f\n", count,
           version, tickets < 0 ? 2L : tickets, server_s / (double)count * 1e6);
    SSL_CTX_free(sctx);
    SSL_CTX_free(cctx);
    return 0;
}
