/*
 * exshim-lab: command line, preset files, listeners, logging. See lab.h and bench/lab/README.md.
 */
#include "bench/lab/lab.h"

#include <errno.h>
#include <getopt.h>
#include <libgen.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <event2/util.h>
#include <libconfig.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/provider.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#define MAX_LISTEN 8

struct lab g_lab;

struct listen_spec {
    char host[128];
    char port[16];
    bool tls;
    struct evconnlistener *l;
    char bound[160];
};

static struct listen_spec listens[MAX_LISTEN];
static size_t nlistens;

/* ---- small utilities -------------------------------------------------------------------- */

uint64_t
lab_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

const char *
lab_http_date(void)
{
    static char buf[64];
    static time_t last;
    time_t now = time(NULL);
    if (now != last) {
        struct tm tm;
        gmtime_r(&now, &tm);
        strftime(buf, sizeof(buf), "%a, %d %b %Y %H:%M:%S GMT", &tm);
        last = now;
    }
    return buf;
}

void
lab_random(void *buf, size_t len)
{
    if (RAND_bytes(buf, (int)len) != 1) {
        /* RAND_bytes does not fail once seeded; keep going with a weaker source anyway */
        for (size_t i = 0; i < len; i++)
            ((uint8_t *)buf)[i] = (uint8_t)random();
    }
}

void
lab_uuid(char out[37])
{
    uint8_t r[16];
    lab_random(r, sizeof(r));
    r[6] = (uint8_t)((r[6] & 0x0f) | 0x40);
    r[8] = (uint8_t)((r[8] & 0x3f) | 0x80);
    snprintf(out, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", r[0],
             r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8], r[9], r[10], r[11], r[12], r[13],
             r[14], r[15]);
}

void
lab_log(const char *fmt, ...)
{
    struct timeval tv;
    struct tm tm;
    char ts[40];
    va_list ap;
    FILE *f = g_lab.log ? g_lab.log : stderr;
    gettimeofday(&tv, NULL);
    gmtime_r(&tv.tv_sec, &tm);
    strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
    fprintf(f, "%s.%03ldZ ", ts, (long)(tv.tv_usec / 1000));
    va_start(ap, fmt);
    vfprintf(f, fmt, ap);
    va_end(ap);
    fputc('\n', f);
    fflush(f);
}

static void __attribute__((noreturn, format(printf, 1, 2))) die(const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "exshim-lab: ");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    exit(1);
}

/* ---- preset files ------------------------------------------------------------------------ */

static void
preset_defaults(struct lab_preset *p)
{
    memset(p, 0, sizeof(*p));
    snprintf(p->server, sizeof(p->server), "Microsoft-IIS/10.0");
    snprintf(p->fe_server, sizeof(p->fe_server), "EXLAB01");
    snprintf(p->be_target, sizeof(p->be_target), "exlab01.lab.test");
    snprintf(p->server_app, sizeof(p->server_app), "Exchange/15.01.2507.006");
    snprintf(p->nb_domain, sizeof(p->nb_domain), "LAB");
    snprintf(p->nb_computer, sizeof(p->nb_computer), "EXLAB01");
    snprintf(p->dns_domain, sizeof(p->dns_domain), "lab.test");
    snprintf(p->dns_computer, sizeof(p->dns_computer), "exlab01.lab.test");
    p->ntlm_v1 = true;
    p->kerberos = true;
    p->keepalive_ms = 120000;
    p->rpc_conn_timeout_ms = 120000;
    p->pending_ms = 30000;
    p->notify_hold_ms = 300000;
    p->mapi_expiration_ms = 900000;
}

static bool
key_allowed(const char *k, const char *const *allowed)
{
    for (; *allowed; allowed++)
        if (strcmp(k, *allowed) == 0)
            return true;
    return false;
}

static int
check_keys(const config_setting_t *g, const char *const *allowed, const char *file, char *err,
           size_t errlen)
{
    int n = config_setting_length(g);
    for (int i = 0; i < n; i++) {
        config_setting_t *e = config_setting_get_elem(g, (unsigned)i);
        const char *name = config_setting_name(e);
        if (name != NULL && !key_allowed(name, allowed)) {
            snprintf(err, errlen, "%s:%d: %s: unknown key", file, config_setting_source_line(e),
                     name);
            return -1;
        }
    }
    return 0;
}

static void
get_str(const config_setting_t *g, const char *key, char *dst, size_t cap)
{
    const char *v;
    if (config_setting_lookup_string(g, key, &v) == CONFIG_TRUE)
        snprintf(dst, cap, "%s", v);
}

static void
get_uint(const config_setting_t *g, const char *key, unsigned *dst)
{
    int v;
    if (config_setting_lookup_int(g, key, &v) == CONFIG_TRUE && v >= 0)
        *dst = (unsigned)v;
}

static void
get_bool(const config_setting_t *g, const char *key, bool *dst)
{
    int v;
    if (config_setting_lookup_bool(g, key, &v) == CONFIG_TRUE)
        *dst = v != 0;
}

static int
parse_handler(const char *s, enum lab_handler *out)
{
    static const struct {
        const char *name;
        enum lab_handler h;
    } t[] = {{"rpc", LAB_H_RPC},
             {"mapi-emsmdb", LAB_H_MAPI_EMSMDB},
             {"mapi-nspi", LAB_H_MAPI_NSPI},
             {"autodiscover", LAB_H_AUTODISCOVER},
             {"ews", LAB_H_EWS},
             {"owa", LAB_H_OWA},
             {"activesync", LAB_H_EAS},
             {"static", LAB_H_STATIC}};
    for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++)
        if (strcasecmp(s, t[i].name) == 0) {
            *out = t[i].h;
            return 0;
        }
    return -1;
}

static int
load_preset(const char *file, struct lab_preset *p, char *err, size_t errlen)
{
    static const char *const top_keys[] = {"name", "description", "server",   "names",
                                           "ntlm", "kerberos",    "timeouts", "rpc",
                                           "mapi", "vdirs",       NULL};
    static const char *const vdir_keys[] = {"path",  "handler", "auth",  "require_ssl",
                                            "forms", "epa",     "realm", NULL};
    config_t cf;
    int rc = -1;
    config_init(&cf);
    preset_defaults(p);
    if (config_read_file(&cf, file) != CONFIG_TRUE) {
        snprintf(err, errlen, "%s:%d: %s", config_error_file(&cf) ? config_error_file(&cf) : file,
                 config_error_line(&cf), config_error_text(&cf));
        goto cleanup;
    }
    config_setting_t *root = config_root_setting(&cf), *g;
    if (check_keys(root, top_keys, file, err, errlen) != 0)
        goto cleanup;
    get_str(root, "name", p->name, sizeof(p->name));
    get_str(root, "description", p->description, sizeof(p->description));
    get_bool(root, "kerberos", &p->kerberos);
    if ((g = config_setting_get_member(root, "server")) != NULL) {
        static const char *const k[] = {"header", "fe_server", "be_target", "application", NULL};
        if (check_keys(g, k, file, err, errlen) != 0)
            goto cleanup;
        get_str(g, "header", p->server, sizeof(p->server));
        get_str(g, "fe_server", p->fe_server, sizeof(p->fe_server));
        get_str(g, "be_target", p->be_target, sizeof(p->be_target));
        get_str(g, "application", p->server_app, sizeof(p->server_app));
    }
    if ((g = config_setting_get_member(root, "names")) != NULL) {
        static const char *const k[] = {"netbios_domain", "netbios_computer", "dns_domain",
                                        "dns_computer", NULL};
        if (check_keys(g, k, file, err, errlen) != 0)
            goto cleanup;
        get_str(g, "netbios_domain", p->nb_domain, sizeof(p->nb_domain));
        get_str(g, "netbios_computer", p->nb_computer, sizeof(p->nb_computer));
        get_str(g, "dns_domain", p->dns_domain, sizeof(p->dns_domain));
        get_str(g, "dns_computer", p->dns_computer, sizeof(p->dns_computer));
    }
    if ((g = config_setting_get_member(root, "ntlm")) != NULL) {
        static const char *const k[] = {"lm_compatibility_level", NULL};
        unsigned lvl = 3;
        if (check_keys(g, k, file, err, errlen) != 0)
            goto cleanup;
        get_uint(g, "lm_compatibility_level", &lvl);
        p->ntlm_v1 = lvl < 5;
    }
    if ((g = config_setting_get_member(root, "timeouts")) != NULL) {
        static const char *const k[] = {"idle_ms", "keepalive_ms", NULL};
        if (check_keys(g, k, file, err, errlen) != 0)
            goto cleanup;
        get_uint(g, "idle_ms", &p->idle_ms);
        get_uint(g, "keepalive_ms", &p->keepalive_ms);
    }
    if ((g = config_setting_get_member(root, "rpc")) != NULL) {
        static const char *const k[] = {"connection_timeout_ms", "ping_ms", "recycle_bytes",
                                        "valid_ports", NULL};
        config_setting_t *vp;
        if (check_keys(g, k, file, err, errlen) != 0)
            goto cleanup;
        if ((vp = config_setting_get_member(g, "valid_ports")) != NULL) {
            int n = config_setting_length(vp);
            if (!config_setting_is_array(vp) ||
                n > (int)(sizeof(p->rpc_valid_ports) / sizeof(p->rpc_valid_ports[0]))) {
                snprintf(err, errlen, "%s:%d: valid_ports: expected [6001, 6002, ...] (at most 16)",
                         file, config_setting_source_line(vp));
                goto cleanup;
            }
            for (int j = 0; j < n; j++) {
                int port = config_setting_get_int_elem(vp, j);
                if (port <= 0 || port > 65535) {
                    snprintf(err, errlen, "%s:%d: valid_ports: bad port", file,
                             config_setting_source_line(vp));
                    goto cleanup;
                }
                p->rpc_valid_ports[p->rpc_nvalid_ports++] = (unsigned)port;
            }
        }
        get_uint(g, "connection_timeout_ms", &p->rpc_conn_timeout_ms);
        get_uint(g, "ping_ms", &p->rpc_ping_ms);
        get_uint(g, "recycle_bytes", &p->rpc_recycle_bytes);
    }
    if ((g = config_setting_get_member(root, "mapi")) != NULL) {
        static const char *const k[] = {"pending_period_ms", "notify_hold_ms", "expiration_ms",
                                        NULL};
        if (check_keys(g, k, file, err, errlen) != 0)
            goto cleanup;
        get_uint(g, "pending_period_ms", &p->pending_ms);
        get_uint(g, "notify_hold_ms", &p->notify_hold_ms);
        get_uint(g, "expiration_ms", &p->mapi_expiration_ms);
    }
    g = config_setting_get_member(root, "vdirs");
    if (g == NULL || !config_setting_is_list(g)) {
        snprintf(err, errlen, "%s:0: vdirs: missing (a list of groups)", file);
        goto cleanup;
    }
    for (int i = 0; i < config_setting_length(g); i++) {
        config_setting_t *e = config_setting_get_elem(g, (unsigned)i), *a;
        int line = config_setting_source_line(e);
        const char *s;
        if (p->nvdirs == LAB_MAX_VDIRS) {
            snprintf(err, errlen, "%s:%d: vdirs: too many", file, line);
            goto cleanup;
        }
        struct lab_vdir *v = &p->vdirs[p->nvdirs];
        memset(v, 0, sizeof(*v));
        snprintf(v->realm, sizeof(v->realm), "%s", p->dns_computer);
        if (check_keys(e, vdir_keys, file, err, errlen) != 0)
            goto cleanup;
        if (config_setting_lookup_string(e, "path", &s) != CONFIG_TRUE || s[0] != '/') {
            snprintf(err, errlen, "%s:%d: path: required, must start with '/'", file, line);
            goto cleanup;
        }
        snprintf(v->path, sizeof(v->path), "%s", s);
        v->handler = LAB_H_STATIC;
        if (config_setting_lookup_string(e, "handler", &s) == CONFIG_TRUE &&
            parse_handler(s, &v->handler) != 0) {
            snprintf(err, errlen, "%s:%d: handler: unknown \"%s\"", file, line, s);
            goto cleanup;
        }
        if ((a = config_setting_get_member(e, "auth")) != NULL) {
            if (!config_setting_is_array(a) && !config_setting_is_list(a)) {
                snprintf(err, errlen, "%s:%d: auth: expected [\"Negotiate\", \"NTLM\", ...]", file,
                         line);
                goto cleanup;
            }
            for (int j = 0; j < config_setting_length(a); j++) {
                const char *w = config_setting_get_string_elem(a, (unsigned)j);
                enum lab_scheme sc = LAB_SCHEME_NONE;
                if (w != NULL && strcasecmp(w, "Negotiate") == 0)
                    sc = LAB_SCHEME_NEGOTIATE;
                else if (w != NULL && strcasecmp(w, "NTLM") == 0)
                    sc = LAB_SCHEME_NTLM;
                else if (w != NULL && strcasecmp(w, "Basic") == 0)
                    sc = LAB_SCHEME_BASIC;
                if (sc == LAB_SCHEME_NONE || v->noffer == LAB_MAX_OFFERS) {
                    snprintf(err, errlen, "%s:%d: auth: bad or too many schemes", file, line);
                    goto cleanup;
                }
                v->offer[v->noffer++] = sc;
            }
        }
        get_bool(e, "require_ssl", &v->require_ssl);
        get_bool(e, "forms", &v->forms);
        get_str(e, "realm", v->realm, sizeof(v->realm));
        if (config_setting_lookup_string(e, "epa", &s) == CONFIG_TRUE) {
            if (strcasecmp(s, "none") == 0)
                v->epa = LAB_EPA_NONE;
            else if (strcasecmp(s, "allow") == 0)
                v->epa = LAB_EPA_ALLOW;
            else if (strcasecmp(s, "require") == 0)
                v->epa = LAB_EPA_REQUIRE;
            else {
                snprintf(err, errlen, "%s:%d: epa: none, allow or require", file, line);
                goto cleanup;
            }
        }
        p->nvdirs++;
    }
    if (p->name[0] == '\0') {
        char tmp[PATH_MAX];
        snprintf(tmp, sizeof(tmp), "%s", file);
        char *b = basename(tmp), *dot = strrchr(b, '.');
        if (dot)
            *dot = '\0';
        snprintf(p->name, sizeof(p->name), "%s", b);
    }
    rc = 0;
cleanup:
    config_destroy(&cf);
    return rc;
}

/* conf/lab/NAME.conf, looked up from the working directory, then next to the binary. */
static int
preset_path(const char *name, const char *dir, char *out, size_t cap)
{
    char exe[PATH_MAX];
    ssize_t n;
    if (dir != NULL) {
        snprintf(out, cap, "%s/%s.conf", dir, name);
        return access(out, R_OK);
    }
    snprintf(out, cap, "conf/lab/%s.conf", name);
    if (access(out, R_OK) == 0)
        return 0;
    n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    if (n > 0) {
        exe[n] = '\0';
        char *d = dirname(exe);
        snprintf(out, cap, "%s/../conf/lab/%s.conf", d, name);
        if (access(out, R_OK) == 0)
            return 0;
    }
    return -1;
}

/* ---- TLS ---------------------------------------------------------------------------------- */

/* RFC 5929 tls-server-end-point: the certificate's signature hash, SHA-256 for MD5/SHA-1. */
static int
cert_end_point_hash(X509 *x, uint8_t *out, size_t *len)
{
    int md_nid = NID_undef, pk_nid;
    unsigned int n = 0;
    if (!OBJ_find_sigid_algs(X509_get_signature_nid(x), &md_nid, &pk_nid))
        md_nid = NID_undef;
    const EVP_MD *md = NULL;
    if (md_nid == NID_md5 || md_nid == NID_sha1 || md_nid == NID_undef)
        md = EVP_sha256();
    else
        md = EVP_get_digestbynid(md_nid);
    if (md == NULL)
        md = EVP_sha256();
    if (X509_digest(x, md, out, &n) != 1)
        return -1;
    *len = n;
    return 0;
}

static void
tls_setup(const char *cert, const char *key)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (ctx == NULL)
        die("SSL_CTX_new failed");
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1)
        die("%s: cannot load certificate chain", cert);
    if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1)
        die("%s: cannot load private key", key);
    if (SSL_CTX_check_private_key(ctx) != 1)
        die("%s does not match %s", key, cert);
    X509 *x = SSL_CTX_get0_certificate(ctx);
    if (x == NULL || cert_end_point_hash(x, g_lab.cert_hash, &g_lab.cert_hash_len) != 0)
        die("cannot hash the certificate");
    g_lab.ssl_ctx = ctx;
}

/* ---- listeners ---------------------------------------------------------------------------- */

static void
accept_cb(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int salen, void *arg)
{
    struct listen_spec *ls = arg;
    char host[INET6_ADDRSTRLEN] = "?", peer[96];
    int port = 0, one = 1;
    (void)l;
    (void)salen;
    if (sa->sa_family == AF_INET) {
        struct sockaddr_in *s4 = (struct sockaddr_in *)sa;
        inet_ntop(AF_INET, &s4->sin_addr, host, sizeof(host));
        port = ntohs(s4->sin_port);
    } else if (sa->sa_family == AF_INET6) {
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)sa;
        inet_ntop(AF_INET6, &s6->sin6_addr, host, sizeof(host));
        port = ntohs(s6->sin6_port);
    }
    snprintf(peer, sizeof(peer), "%s:%d", host, port);
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    lab_conn_accept(fd, peer, ls->tls);
}

static struct event *resume_ev;

static void
resume_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
    for (size_t i = 0; i < nlistens; i++)
        evconnlistener_enable(listens[i].l);
}

/* EMFILE/ENFILE: stop accepting for a moment instead of spinning on the ready socket. */
static void
accept_error_cb(struct evconnlistener *l, void *arg)
{
    int e = EVUTIL_SOCKET_ERROR();
    struct timeval tv = {0, 200000};
    (void)arg;
    lab_log("accept error: %s (%zu connections); pausing 200 ms", strerror(e), g_lab.nconns);
    for (size_t i = 0; i < nlistens; i++)
        evconnlistener_disable(listens[i].l);
    (void)l;
    evtimer_add(resume_ev, &tv);
}

static void
split_hostport(const char *s, struct listen_spec *ls)
{
    const char *colon = strrchr(s, ':');
    if (colon == NULL)
        die("--listen wants HOST:PORT, got %s", s);
    size_t hl = (size_t)(colon - s);
    if (hl > 1 && s[0] == '[' && s[hl - 1] == ']') {
        s++;
        hl -= 2;
    }
    if (hl >= sizeof(ls->host) || strlen(colon + 1) >= sizeof(ls->port))
        die("bad address %s", s);
    memcpy(ls->host, s, hl);
    ls->host[hl] = '\0';
    snprintf(ls->port, sizeof(ls->port), "%s", colon + 1);
}

static void
open_listener(struct listen_spec *ls)
{
    struct evutil_addrinfo hints = {0}, *ai = NULL;
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = EVUTIL_AI_PASSIVE | EVUTIL_AI_NUMERICHOST | EVUTIL_AI_NUMERICSERV;
    if (evutil_getaddrinfo(ls->host, ls->port, &hints, &ai) != 0 || ai == NULL)
        die("bad listen address %s:%s (numeric host and port expected)", ls->host, ls->port);
    ls->l = evconnlistener_new_bind(g_lab.base, accept_cb, ls,
                                    LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE, 4096, ai->ai_addr,
                                    (int)ai->ai_addrlen);
    evutil_freeaddrinfo(ai);
    if (ls->l == NULL)
        die("cannot listen on %s:%s: %s", ls->host, ls->port, strerror(errno));
    evconnlistener_set_error_cb(ls->l, accept_error_cb);
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    char h[INET6_ADDRSTRLEN] = "?";
    int port = 0;
    getsockname(evconnlistener_get_fd(ls->l), (struct sockaddr *)&ss, &sl);
    if (ss.ss_family == AF_INET) {
        inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr, h, sizeof(h));
        port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
        snprintf(ls->bound, sizeof(ls->bound), "%s:%d", h, port);
    } else {
        inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&ss)->sin6_addr, h, sizeof(h));
        port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
        snprintf(ls->bound, sizeof(ls->bound), "[%s]:%d", h, port);
    }
}

/* ---- main --------------------------------------------------------------------------------- */

static void
usage(FILE *f)
{
    fprintf(
        f,
        "usage: exshim-lab --preset NAME [options]\n"
        "       exshim-lab --config FILE [options]\n"
        "\n"
        "An IIS/Exchange simulator with real authentication (NTLM, Kerberos, SPNEGO, Basic)\n"
        "and failure presets reproducing field problems. At least one listener is needed.\n"
        "\n"
        "  --preset NAME         load conf/lab/NAME.conf (from the working directory, or\n"
        "                        ../conf/lab next to the binary, or --conf-dir)\n"
        "  --config FILE         load this preset file instead\n"
        "  --conf-dir DIR        where --preset looks for NAME.conf\n"
        "  --listen HOST:PORT    plain HTTP listener (repeatable; port 0 = any free port)\n"
        "  --tls-listen HOST:PORT  HTTPS listener (repeatable; needs --cert and --key)\n"
        "  --cert FILE           PEM certificate chain for TLS listeners (leaf first)\n"
        "  --key FILE            PEM private key for TLS listeners\n"
        "  --users FILE          users, one DOMAIN:user:password a line (NTLM, Basic, and\n"
        "                        gss-ntlmssp through NTLM_USER_FILE)\n"
        "  --keytab FILE         Kerberos acceptor keytab (default: $KRB5_KTNAME)\n"
        "  --log FILE            log file (default: stderr)\n"
        "  --ready-file FILE     written once listening: \"plain HOST:PORT\" / \"tls HOST:PORT\"\n"
        "  --idle SECONDS        drop any connection idle this long, channels included\n"
        "                        (the short-idle preset's load-balancer timeout)\n"
        "  --notify-hold MS      how long a MAPI NotificationWait is held\n"
        "  --pending-period MS   X-PendingPeriod: PENDING keep-alive interval\n"
        "  --rpc-ping MS         RTS Ping interval on RPC OUT channels\n"
        "  --rpc-recycle BYTES   ask for OUT channel recycling (OUT_R1/A2) once that many\n"
        "                        bytes went out on a channel (default 0: never)\n"
        "  --health-dir DIR      GET /VDIR/healthcheck.htm answers 503 while a file DIR/VDIR\n"
        "                        exists (VDIR lower case: owa, mapi, rpc, ews, ...), else 200\n"
        "  -h, --help            this text\n"
        "\n"
        "Presets shipped: default, negotiate-only-mapi, ntlm-not-first, ntlm-only-rpc,\n"
        "basic-only-rpc, ssl-required-rpc, forms-auth-exchange, short-idle, epa-required,\n"
        "ntlmv2-required, rpc-validports.\n"
        "\n"
        "Log lines:\n"
        "  auth conn=ID peer=IP:PORT vdir=PATH scheme=S mech=M user=DOMAIN\\user\n"
        "       verdict=ok|fail:REASON cbt=absent|match|mismatch mic=absent|ok|bad\n"
        "  access conn=ID peer=IP:PORT method=M path=P vdir=V status=N user=U\n");
}

static void
stop_cb(evutil_socket_t sig, short what, void *arg)
{
    (void)what;
    (void)arg;
    lab_log("signal %d: stopping", (int)sig);
    event_base_loopexit(g_lab.base, NULL);
}

static unsigned
parse_ms(const char *s, const char *opt)
{
    char *end;
    unsigned long v = strtoul(s, &end, 10);
    if (*s == '\0' || *end != '\0' || v > 86400000UL)
        die("%s: bad number %s", opt, s);
    return (unsigned)v;
}

int
main(int argc, char **argv)
{
    const char *preset = NULL, *config = NULL, *conf_dir = NULL, *cert = NULL, *key = NULL;
    const char *users = NULL, *keytab = NULL, *logfile = NULL, *ready = NULL;
    long idle = -1, hold = -1, pending = -1, ping = -1, recycle = -1;
    enum {
        O_PRESET = 256,
        O_CONFIG,
        O_CONFDIR,
        O_LISTEN,
        O_TLS_LISTEN,
        O_CERT,
        O_KEY,
        O_USERS,
        O_KEYTAB,
        O_LOG,
        O_READY,
        O_IDLE,
        O_HOLD,
        O_PENDING,
        O_PING,
        O_RECYCLE,
        O_HEALTH,
    };
    static const struct option opts[] = {
        {"preset", required_argument, NULL, O_PRESET},
        {"config", required_argument, NULL, O_CONFIG},
        {"conf-dir", required_argument, NULL, O_CONFDIR},
        {"listen", required_argument, NULL, O_LISTEN},
        {"tls-listen", required_argument, NULL, O_TLS_LISTEN},
        {"cert", required_argument, NULL, O_CERT},
        {"key", required_argument, NULL, O_KEY},
        {"users", required_argument, NULL, O_USERS},
        {"keytab", required_argument, NULL, O_KEYTAB},
        {"log", required_argument, NULL, O_LOG},
        {"ready-file", required_argument, NULL, O_READY},
        {"idle", required_argument, NULL, O_IDLE},
        {"notify-hold", required_argument, NULL, O_HOLD},
        {"pending-period", required_argument, NULL, O_PENDING},
        {"rpc-ping", required_argument, NULL, O_PING},
        {"rpc-recycle", required_argument, NULL, O_RECYCLE},
        {"health-dir", required_argument, NULL, O_HEALTH},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int ch;
    while ((ch = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (ch) {
        case O_PRESET:
            preset = optarg;
            break;
        case O_CONFIG:
            config = optarg;
            break;
        case O_CONFDIR:
            conf_dir = optarg;
            break;
        case O_LISTEN:
        case O_TLS_LISTEN:
            if (nlistens == MAX_LISTEN)
                die("too many listeners");
            split_hostport(optarg, &listens[nlistens]);
            listens[nlistens++].tls = ch == O_TLS_LISTEN;
            break;
        case O_CERT:
            cert = optarg;
            break;
        case O_KEY:
            key = optarg;
            break;
        case O_USERS:
            users = optarg;
            break;
        case O_KEYTAB:
            keytab = optarg;
            break;
        case O_LOG:
            logfile = optarg;
            break;
        case O_READY:
            ready = optarg;
            break;
        case O_IDLE:
            idle = parse_ms(optarg, "--idle");
            break;
        case O_HOLD:
            hold = parse_ms(optarg, "--notify-hold");
            break;
        case O_PENDING:
            pending = parse_ms(optarg, "--pending-period");
            break;
        case O_PING:
            ping = parse_ms(optarg, "--rpc-ping");
            break;
        case O_RECYCLE:
            recycle = parse_ms(optarg, "--rpc-recycle");
            break;
        case O_HEALTH:
            g_lab.health_dir = optarg;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (optind != argc || (preset == NULL) == (config == NULL) || nlistens == 0) {
        usage(stderr);
        return 2;
    }

    char path[PATH_MAX], err[PATH_MAX + 512];
    if (config == NULL) {
        if (strchr(preset, '/') != NULL || preset_path(preset, conf_dir, path, sizeof(path)))
            die("preset %s: no conf/lab/%s.conf found", preset, preset);
        config = path;
    }
    if (load_preset(config, &g_lab.preset, err, sizeof(err)) != 0)
        die("%s", err);
    if (idle >= 0)
        g_lab.preset.idle_ms = (unsigned)idle * 1000;
    if (hold >= 0)
        g_lab.preset.notify_hold_ms = (unsigned)hold;
    if (pending >= 0)
        g_lab.preset.pending_ms = (unsigned)pending;
    if (ping >= 0)
        g_lab.preset.rpc_ping_ms = (unsigned)ping;
    if (recycle >= 0)
        g_lab.preset.rpc_recycle_bytes = (unsigned)recycle;

    if (logfile != NULL) {
        g_lab.log = fopen(logfile, "a");
        if (g_lab.log == NULL)
            die("%s: %s", logfile, strerror(errno));
    }
    /* MD4, DES and RC4 (NTLM) live in OpenSSL 3's legacy provider */
    OSSL_PROVIDER *prov_legacy = OSSL_PROVIDER_load(NULL, "legacy");
    OSSL_PROVIDER *prov_default = OSSL_PROVIDER_load(NULL, "default");
    if (prov_legacy == NULL || prov_default == NULL)
        die("cannot load the OpenSSL legacy and default providers (MD4/RC4 for NTLM)");
    if (users != NULL) {
        if (lab_users_load(users, &g_lab.users, err, sizeof(err)) != 0)
            die("%s", err);
        g_lab.have_users = true;
    }
    bool any_tls = false;
    for (size_t i = 0; i < nlistens; i++)
        any_tls |= listens[i].tls;
    if (any_tls) {
        if (cert == NULL || key == NULL)
            die("--tls-listen needs --cert and --key");
        tls_setup(cert, key);
    }
    char users_abs[PATH_MAX];
    if (users != NULL && realpath(users, users_abs) != NULL)
        users = users_abs;
    if (lab_gss_setup(keytab, g_lab.preset.kerberos, users, g_lab.gss_why, sizeof(g_lab.gss_why)) !=
        0)
        lab_log("gss: %s", g_lab.gss_why);
    g_lab.gss_ready = true; /* SPNEGO/NTLM through gss-ntlmssp works without a keytab */

    signal(SIGPIPE, SIG_IGN);
    g_lab.base = event_base_new();
    if (g_lab.base == NULL)
        die("event_base_new failed");
    resume_ev = evtimer_new(g_lab.base, resume_cb, NULL);
    for (size_t i = 0; i < nlistens; i++)
        open_listener(&listens[i]);
    struct event *sigint = evsignal_new(g_lab.base, SIGINT, stop_cb, NULL);
    struct event *sigterm = evsignal_new(g_lab.base, SIGTERM, stop_cb, NULL);
    event_add(sigint, NULL);
    event_add(sigterm, NULL);

    for (size_t i = 0; i < nlistens; i++)
        lab_log("listening %s %s preset=%s", listens[i].tls ? "tls" : "plain", listens[i].bound,
                g_lab.preset.name);
    if (ready != NULL) {
        char tmp[PATH_MAX];
        snprintf(tmp, sizeof(tmp), "%s.tmp", ready);
        FILE *f = fopen(tmp, "w");
        if (f == NULL)
            die("%s: %s", tmp, strerror(errno));
        for (size_t i = 0; i < nlistens; i++)
            fprintf(f, "%s %s\n", listens[i].tls ? "tls" : "plain", listens[i].bound);
        if (fclose(f) != 0 || rename(tmp, ready) != 0)
            die("%s: %s", ready, strerror(errno));
    }
    event_base_dispatch(g_lab.base);

    for (size_t i = 0; i < nlistens; i++)
        evconnlistener_free(listens[i].l);
    event_free(sigint);
    event_free(sigterm);
    event_free(resume_ev);
    lab_users_free(&g_lab.users);
    if (g_lab.ssl_ctx != NULL)
        SSL_CTX_free(g_lab.ssl_ctx);
    if (g_lab.log != NULL)
        fclose(g_lab.log);
    event_base_free(g_lab.base);
    OSSL_PROVIDER_unload(prov_legacy);
    OSSL_PROVIDER_unload(prov_default);
    return 0;
}
