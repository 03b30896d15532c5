/*
 * Unit tests for conf/conf.c: parsed values and defaults, path resolution, one case per
 * error class with its exact "FILE:LINE: KEY: " prefix, durations and route lookup.
 *
 * Every config is written into a fresh temporary directory that also holds empty
 * certificate/key/CA files (the loader checks that they are readable, nothing more).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "conf/conf.h"

static char tmpdir[64];

static const char *const dummy_files[] = {"mail.pem",   "mail.key",    "legacy.pem",
                                          "legacy.key", "corp-ca.pem", NULL};

static void
write_file(const char *path, const char *text)
{
    FILE *fp = fopen(path, "w");

    assert_non_null(fp);
    assert_int_equal(fputs(text, fp) >= 0, 1);
    assert_int_equal(fclose(fp), 0);
}

static char *
in_tmp(const char *name)
{
    static char buf[256];

    snprintf(buf, sizeof(buf), "%s/%s", tmpdir, name);
    return buf;
}

static int
group_setup(void **state)
{
    (void)state;
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/test_conf.XXXXXX");
    if (mkdtemp(tmpdir) == NULL)
        return -1;
    for (size_t i = 0; dummy_files[i] != NULL; i++)
        write_file(in_tmp(dummy_files[i]), "not parsed by conf\n");
    if (mkdir(in_tmp("etc"), 0700) < 0 || mkdir(in_tmp("certs"), 0700) < 0)
        return -1;
    write_file(in_tmp("certs/site.pem"), "x\n");
    write_file(in_tmp("certs/site.key"), "x\n");
    return 0;
}

static int
group_teardown(void **state)
{
    (void)state;
    static const char *const extra[] = {"exshim.conf",    "etc/exshim.conf", "inc.conf",
                                        "certs/site.pem", "certs/site.key",  "conf/exshim.conf",
                                        "state/cert.pem", "state/key.pem",   NULL};

    for (size_t i = 0; dummy_files[i] != NULL; i++)
        unlink(in_tmp(dummy_files[i]));
    for (size_t i = 0; extra[i] != NULL; i++)
        unlink(in_tmp(extra[i]));
    rmdir(in_tmp("etc"));
    rmdir(in_tmp("certs"));
    rmdir(in_tmp("conf"));
    rmdir(in_tmp("state"));
    rmdir(tmpdir);
    return 0;
}

/* Writes TEXT as <tmpdir>/exshim.conf and loads it. */
static int
load_text(const char *text, struct conf **conf_out, char *err, size_t errlen)
{
    char path[512];

    snprintf(path, sizeof(path), "%s/exshim.conf", tmpdir);
    write_file(path, text);
    return conf_load(path, conf_out, err, errlen);
}

/* One-line building blocks, so that line numbers in the tables below are easy to count. */
#define L_ "listeners = ( { name = \"l\"; address = \"127.0.0.1:0\"; } );\n"
#define B_ "backends = ( { name = \"b\"; servers = [ \"127.0.0.1:8081\" ]; } );\n"
#define R_ "routes = ( { path = \"default\"; backend = \"b\"; } );\n"
#define E_ "edge = { keytab = \"mail.key\"; principal = \"HTTP/proxy.t@T\"; };\n"

/* metrics = { address = ...; }: host and port kept apart, the host in canonical form. */
static void
test_metrics_block(void **state)
{
    static const struct {
        const char *address, *host, *port;
    } cases[] = {
        {"127.0.0.1:9120", "127.0.0.1", "9120"},
        {"[::1]:9120", "::1", "9120"},
        {"*:0", "0.0.0.0", "0"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char text[512], err[512];
        struct conf *c = NULL;
        snprintf(text, sizeof(text), "metrics = { address = \"%s\"; };\n" L_ B_ R_,
                 cases[i].address);
        assert_int_equal(load_text(text, &c, err, sizeof(err)), 0);
        assert_string_equal(c->metrics_host, cases[i].host);
        assert_string_equal(c->metrics_port, cases[i].port);
        conf_free(c);
    }
}

/* ---- a full, valid configuration --------------------------------------------------- */

static const char full_conf[] =
    "workers = 4;\n"                                                  /* 1 */
    "log_file = \"exshim.log\";\n"                                    /* 2 */
    "log_level = \"debug\";\n"                                        /* 3 */
    "access_log = false; cpu_affinity = true;\n"                      /* 4 */
    "max_header_bytes = 131072; accept_balance = \"hash\";\n"         /* 5 */
    "max_headers = 300;\n"                                            /* 6 */
    "high_water = 32768;\n"                                           /* 7 */
    "grace = \"2m\"; drain_timeout = \"10m\"; max_generations = 2;\n" /* 8 */
    "listeners = (\n"                                                 /* 9 */
    "  { name = \"public\"; address = \"*:443\";\n"                   /* 10 */
    "    tls = { certs = ( { chain = \"mail.pem\"; key = \"mail.key\"; },\n"
    "                      { chain = \"legacy.pem\"; key = \"legacy.key\"; } );\n"
    "            min_protocol = \"TLSv1\"; max_protocol = \"TLSv1.2\";\n"
    "            ciphers = \"HIGH:!aNULL\"; ciphersuites = \"TLS_AES_128_GCM_SHA256\";\n"
    "            session_tickets = false; }; },\n"        /* 15 */
    "  { name = \"plain\"; address = \"[::1]:8080\"; }\n" /* 16 */
    ");\n"
    "backends = (\n" /* 18 */
    "  { name = \"cas2016\"; servers = [ \"10.0.0.11:443\", \"mail.contoso.com:443\" ];\n"
    "    connect_timeout = \"1500ms\"; tcp_keepalive = false;\n" /* 20 */
    "    tls = { ca = \"corp-ca.pem\"; sni = \"mail.contoso.com\"; verify = false;\n"
    "            min_protocol = \"TLSv1.1\"; max_protocol = \"TLSv1.3\"; }; },\n"
    "  { name = \"ex2013\"; servers = [ \"[2001:db8::21]:80\" ]; }\n" /* 23 */
    ");\n"
    "routes = (\n" /* 25 */
    "  { path = \"/mapi\"; backend = \"ex2013\"; offer = [ \"ntlm\" ];\n"
    "    bridge = \"ntlm-to-negotiate\"; idle_timeout = \"60m\"; },\n"
    "  { path = \"/Rpc\"; backend = \"cas2016\"; offer = [ \"NTLM\", \"Negotiate\" ];\n"
    "    header_timeout = 10; body_timeout = \"2h\"; },\n"
    "  { path = \"/ews\"; backend = \"cas2016\"; offer = []; },\n" /* 30 */
    "  { path = \"/owa\"; backend = \"cas2016\"; offer = [ \"Negotiate\" ];\n"
    "    bridge = \"negotiate-to-ntlm\"; },\n"
    "  { path = \"default\"; backend = \"cas2016\"; }\n" /* 33 */
    ");\n";

static void
test_full_config(void **state)
{
    (void)state;
    struct conf *c = NULL;
    char err[512] = "";
    char want[512];
    const struct conf_listener *l;
    const struct conf_backend *b;
    const struct conf_route *r;

    assert_int_equal(load_text(full_conf, &c, err, sizeof(err)), 0);
    assert_string_equal(err, "");
    assert_non_null(c);

    assert_string_equal(c->file, in_tmp("exshim.conf"));
    assert_int_equal(c->workers, 4);
    assert_string_equal(c->log_file, in_tmp("exshim.log"));
    assert_int_equal(c->log_level, CONF_LOG_DEBUG);
    assert_false(c->access_log);
    assert_true(c->cpu_affinity);
    assert_int_equal(c->accept_balance, CONF_BALANCE_HASH);
    assert_int_equal(c->max_header_bytes, 131072);
    assert_int_equal(c->max_headers, 300);
    assert_int_equal(c->high_water, 32768);
    assert_int_equal(c->grace_ms, 120000);
    assert_int_equal(c->drain_timeout_ms, 600000);
    assert_int_equal(c->max_generations, 2);

    assert_int_equal(c->nlisteners, 2);
    l = &c->listeners[0];
    assert_string_equal(l->name, "public");
    assert_string_equal(l->host, "0.0.0.0");
    assert_string_equal(l->port, "443");
    assert_true(l->tls);
    assert_int_equal(l->ncerts, 2);
    assert_string_equal(l->certs[0].chain, in_tmp("mail.pem"));
    assert_string_equal(l->certs[0].key, in_tmp("mail.key"));
    assert_string_equal(l->certs[1].chain, in_tmp("legacy.pem"));
    assert_string_equal(l->certs[1].key, in_tmp("legacy.key"));
    assert_int_equal(l->min_protocol, CONF_TLS10);
    assert_int_equal(l->max_protocol, CONF_TLS12);
    assert_string_equal(l->ciphers, "HIGH:!aNULL");
    assert_string_equal(l->ciphersuites, "TLS_AES_128_GCM_SHA256");
    assert_false(l->session_tickets);
    assert_int_equal(l->line, 10);
    l = &c->listeners[1];
    assert_string_equal(l->name, "plain");
    assert_string_equal(l->host, "::1");
    assert_string_equal(l->port, "8080");
    assert_false(l->tls);
    assert_int_equal(l->ncerts, 0);
    assert_null(l->certs);
    assert_null(l->ciphers);
    assert_int_equal(l->line, 16);

    assert_int_equal(c->nbackends, 2);
    b = &c->backends[0];
    assert_string_equal(b->name, "cas2016");
    assert_int_equal(b->nservers, 2);
    assert_string_equal(b->servers[0].host, "10.0.0.11");
    assert_string_equal(b->servers[0].port, "443");
    assert_string_equal(b->servers[1].host, "mail.contoso.com");
    assert_string_equal(b->servers[1].port, "443");
    assert_true(b->tls);
    assert_string_equal(b->ca_file, in_tmp("corp-ca.pem"));
    assert_string_equal(b->sni, "mail.contoso.com");
    assert_false(b->verify);
    assert_int_equal(b->min_protocol, CONF_TLS11);
    assert_int_equal(b->max_protocol, CONF_TLS13);
    assert_int_equal(b->connect_timeout_ms, 1500);
    assert_false(b->tcp_keepalive);
    assert_int_equal(b->line, 19);
    b = &c->backends[1];
    assert_string_equal(b->name, "ex2013");
    assert_int_equal(b->nservers, 1);
    assert_string_equal(b->servers[0].host, "2001:db8::21");
    assert_string_equal(b->servers[0].port, "80");
    assert_false(b->tls);
    assert_null(b->ca_file);
    assert_null(b->sni);
    assert_true(b->verify);
    assert_int_equal(b->connect_timeout_ms, 5000);
    assert_true(b->tcp_keepalive);
    assert_int_equal(b->line, 23);

    assert_int_equal(c->nroutes, 5);
    r = &c->routes[0];
    assert_string_equal(r->path, "/mapi");
    assert_false(r->is_default);
    assert_string_equal(r->backend_name, "ex2013");
    assert_int_equal(r->backend, 1);
    assert_true(r->offer_set);
    assert_int_equal(r->noffer, 1);
    assert_int_equal(r->offer[0], CONF_SCHEME_NTLM);
    assert_int_equal(r->bridge, CONF_BRIDGE_NTLM_TO_NEGOTIATE);
    assert_int_equal(r->header_timeout_ms, 30000);
    assert_int_equal(r->idle_timeout_ms, 3600000);
    assert_int_equal(r->body_timeout_ms, 3600000); /* the long /mapi default */
    assert_int_equal(r->line, 26);
    r = &c->routes[1];
    assert_string_equal(r->path, "/Rpc");
    assert_int_equal(r->backend, 0);
    assert_int_equal(r->noffer, 2);
    assert_int_equal(r->offer[0], CONF_SCHEME_NTLM);
    assert_int_equal(r->offer[1], CONF_SCHEME_NEGOTIATE);
    assert_int_equal(r->bridge, CONF_BRIDGE_NONE);
    assert_int_equal(r->header_timeout_ms, 10000);
    assert_int_equal(r->idle_timeout_ms, 3600000); /* /Rpc: long default, any case */
    assert_int_equal(r->body_timeout_ms, 7200000);
    r = &c->routes[2];
    assert_string_equal(r->path, "/ews");
    assert_true(r->offer_set);
    assert_int_equal(r->noffer, 0);
    assert_int_equal(r->idle_timeout_ms, 120000);
    assert_int_equal(r->body_timeout_ms, 300000);
    r = &c->routes[3];
    assert_int_equal(r->bridge, CONF_BRIDGE_NEGOTIATE_TO_NTLM);
    assert_int_equal(r->offer[0], CONF_SCHEME_NEGOTIATE);
    r = &c->routes[4];
    assert_string_equal(r->path, "default");
    assert_true(r->is_default);
    assert_false(r->offer_set);
    assert_int_equal(r->noffer, 0);
    assert_int_equal(r->backend, 0);
    assert_int_equal(r->line, 33);

    snprintf(want, sizeof(want), "%s", in_tmp("exshim.conf"));
    assert_string_equal(c->file, want);
    conf_free(c);
}

static void
test_defaults(void **state)
{
    (void)state;
    struct conf *c = NULL;
    char err[512] = "";
    const struct conf_route *r;

    assert_int_equal(load_text(L_ B_
                               "routes = ( { path = \"/ews\"; backend = \"b\"; },\n"
                               "           { path = \"/rpcwithcert\"; backend = \"b\"; },\n"
                               "           { path = \"/MAPI/emsmdb\"; backend = \"b\"; } );\n",
                               &c, err, sizeof(err)),
                     0);
    assert_int_equal(c->workers, 0);
    assert_null(c->log_file);
    assert_int_equal(c->log_level, CONF_LOG_INFO);
    assert_true(c->access_log);
    assert_false(c->cpu_affinity);
    assert_int_equal(c->accept_balance, CONF_BALANCE_ROUNDROBIN);
    assert_int_equal(c->max_header_bytes, 65536);
    assert_int_equal(c->max_headers, 200);
    assert_int_equal(c->high_water, 65536);
    assert_int_equal(c->grace_ms, 30000);
    assert_int_equal(c->handshake_timeout_ms, 10000);
    struct rlimit rl;
    assert_int_equal(getrlimit(RLIMIT_NOFILE, &rl), 0);
    assert_int_equal(c->max_connections, conf_auto_max_connections(rl.rlim_max));
    assert_int_equal(c->max_connections_per_client, 0);
    assert_int_equal(c->max_accept, 64);
    assert_int_equal(c->max_handshakes, 2);
    assert_int_equal(c->target_policy, CONF_TARGET_STRICT);
    assert_true(c->routes[0].guard);
    assert_int_equal(c->drain_timeout_ms, 3600000);
    assert_int_equal(c->max_generations, 4);
    assert_null(c->metrics_host);
    assert_string_equal(c->listeners[0].host, "127.0.0.1");
    assert_string_equal(c->listeners[0].port, "0");
    assert_false(c->listeners[0].tls);
    assert_int_equal(c->listeners[0].min_protocol, CONF_TLS12);
    assert_int_equal(c->listeners[0].max_protocol, CONF_TLS13);
    assert_true(c->listeners[0].session_tickets);
    assert_false(c->backends[0].tls);
    assert_true(c->backends[0].verify);
    assert_true(c->backends[0].tcp_keepalive);
    assert_int_equal(c->backends[0].connect_timeout_ms, 5000);
    assert_int_equal(c->backends[0].min_protocol, CONF_TLS12);
    assert_int_equal(c->backends[0].max_protocol, CONF_TLS13);

    r = &c->routes[0];
    assert_false(r->offer_set);
    assert_int_equal(r->bridge, CONF_BRIDGE_NONE);
    assert_int_equal(r->header_timeout_ms, 30000);
    assert_int_equal(r->idle_timeout_ms, 120000);
    assert_int_equal(r->body_timeout_ms, 300000);
    for (size_t i = 1; i < 3; i++) {
        r = &c->routes[i];
        assert_int_equal(r->header_timeout_ms, 30000);
        assert_int_equal(r->idle_timeout_ms, 3600000);
        assert_int_equal(r->body_timeout_ms, 3600000);
    }
    conf_free(c);
}

/* Values that are accepted in more than one spelling. */
static void
test_accepted_forms(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        int workers;
        unsigned grace_ms;
        const char *host, *port;
    } cases[] = {
        {"workers = \"auto\"; grace = 0;\n", 0, 0, "127.0.0.1", "0"},
        {"workers = \"AUTO\"; grace = \"500ms\";\n", 0, 500, "127.0.0.1", "0"},
        {"workers = 1; grace = 45;\n", 1, 45000, "127.0.0.1", "0"},
        {"workers = 256L; grace = \"1h\";\n", 256, 3600000, "127.0.0.1", "0"},
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct conf *c = NULL;
        char err[512] = "", text[1024];

        snprintf(text, sizeof(text), "%s" L_ B_ R_, cases[i].text);
        if (load_text(text, &c, err, sizeof(err)) != 0)
            fail_msg("case %zu: %s", i, err);
        assert_int_equal(c->workers, cases[i].workers);
        assert_int_equal(c->grace_ms, cases[i].grace_ms);
        conf_free(c);
    }

    static const struct {
        const char *address;
        const char *host, *port;
    } addrs[] = {
        {"*:443", "0.0.0.0", "443"},
        {"0.0.0.0:443", "0.0.0.0", "443"},
        {"[::]:443", "::", "443"},
        {"[0:0:0:0:0:0:0:1]:00443", "::1", "443"},
        {"192.168.1.10:65535", "192.168.1.10", "65535"},
    };
    for (size_t i = 0; i < sizeof(addrs) / sizeof(addrs[0]); i++) {
        struct conf *c = NULL;
        char err[512] = "", text[1024];

        snprintf(text, sizeof(text), "listeners = ( { name = \"l\"; address = \"%s\"; } );\n" B_ R_,
                 addrs[i].address);
        if (load_text(text, &c, err, sizeof(err)) != 0)
            fail_msg("address %s: %s", addrs[i].address, err);
        assert_string_equal(c->listeners[0].host, addrs[i].host);
        assert_string_equal(c->listeners[0].port, addrs[i].port);
        conf_free(c);
    }
}

/* proxy_protocol with proxy_from: ranges of both families, bare addresses, /0. */
static void
test_proxy_protocol(void **state)
{
    (void)state;
    struct conf *c = NULL;
    char err[512] = "";
    const char *text = "listeners = ( { name = \"l\"; address = \"127.0.0.1:0\";\n"
                       "  proxy_protocol = true;\n"
                       "  proxy_from = [ \"10.0.0.0/24\", \"2001:db8::/32\", \"127.0.0.1\", "
                       "\"::/0\" ]; },\n"
                       "  { name = \"m\"; address = \"127.0.0.1:0\"; proxy_protocol = false; } );\n" B_ R_;
    if (load_text(text, &c, err, sizeof(err)) != 0)
        fail_msg("%s", err);
    const struct conf_listener *l = &c->listeners[0];
    assert_true(l->proxy_protocol);
    assert_int_equal(l->nproxy_from, 4);
    assert_false(l->proxy_from[0].v6);
    assert_int_equal(l->proxy_from[0].bits, 24);
    assert_memory_equal(l->proxy_from[0].addr, "\x0a\x00\x00\x00", 4);
    assert_true(l->proxy_from[1].v6);
    assert_int_equal(l->proxy_from[1].bits, 32);
    assert_memory_equal(l->proxy_from[1].addr, "\x20\x01\x0d\xb8", 4);
    assert_int_equal(l->proxy_from[2].bits, 32);
    assert_true(l->proxy_from[3].v6);
    assert_int_equal(l->proxy_from[3].bits, 0);
    assert_false(c->listeners[1].proxy_protocol);
    assert_int_equal(c->listeners[1].nproxy_from, 0);
    conf_free(c);
}

/* Relative names are resolved against the config file's directory, made absolute. */
static void
test_relative_paths(void **state)
{
    (void)state;
    static const char text[] =
        "log_file = \"/var/log/exshim.log\";\n"
        "listeners = ( { name = \"l\"; address = \"127.0.0.1:0\";\n"
        "  tls = { certs = ( { chain = \"../certs/site.pem\"; key = \"%s\"; } ); }; } );\n"
        "backends = ( { name = \"b\"; servers = [ \"127.0.0.1:8081\" ];\n"
        "  tls = { ca = \"../corp-ca.pem\"; }; } );\n" R_;
    char conf_path[512], abs_key[512], body[4096], cwd[PATH_MAX];
    struct conf *c = NULL;
    char err[512] = "";

    snprintf(abs_key, sizeof(abs_key), "%s", in_tmp("certs/site.key"));
    snprintf(body, sizeof(body), text, abs_key);
    snprintf(conf_path, sizeof(conf_path), "%s", in_tmp("etc/exshim.conf"));
    write_file(conf_path, body);

    /* Absolute config path. */
    if (conf_load(conf_path, &c, err, sizeof(err)) != 0)
        fail_msg("%s", err);
    assert_string_equal(c->log_file, "/var/log/exshim.log");
    assert_string_equal(c->listeners[0].certs[0].chain, in_tmp("etc/../certs/site.pem"));
    assert_string_equal(c->listeners[0].certs[0].key, abs_key);
    assert_string_equal(c->backends[0].ca_file, in_tmp("etc/../corp-ca.pem"));
    assert_true(c->backends[0].tls);
    assert_true(c->backends[0].verify);
    conf_free(c);
    c = NULL;

    /* Relative config path: the stored names are still absolute. */
    assert_non_null(getcwd(cwd, sizeof(cwd)));
    assert_int_equal(chdir(tmpdir), 0);
    if (conf_load("etc/exshim.conf", &c, err, sizeof(err)) != 0)
        fail_msg("%s", err);
    assert_string_equal(c->file, "etc/exshim.conf");
    assert_string_equal(c->listeners[0].certs[0].chain, in_tmp("etc/../certs/site.pem"));
    conf_free(c);
    c = NULL;

    /* A bare file name in the working directory. */
    assert_int_equal(chdir(in_tmp("etc")), 0);
    if (conf_load("exshim.conf", &c, err, sizeof(err)) != 0)
        fail_msg("%s", err);
    assert_string_equal(c->backends[0].ca_file, in_tmp("etc/../corp-ca.pem"));
    conf_free(c);
    assert_int_equal(chdir(cwd), 0);
}

/* @include files: looked up next to the main file; errors name the included file. */
static void
test_include(void **state)
{
    (void)state;
    struct conf *c = NULL;
    char err[512] = "", want[1024], dir[512];

    write_file(in_tmp("inc.conf"), B_);
    if (load_text(L_ "@include \"inc.conf\"\n" R_, &c, err, sizeof(err)) != 0)
        fail_msg("%s", err);
    assert_string_equal(c->backends[0].name, "b");
    conf_free(c);
    c = NULL;

    /* libconfig would exit() on a directory and cannot open absolute names. */
    assert_int_equal(load_text(L_ "  @include \"etc\"\n" R_, &c, err, sizeof(err)), -1);
    snprintf(dir, sizeof(dir), "%s", in_tmp("etc")); /* in_tmp() reuses one buffer */
    snprintf(want, sizeof(want), "%s:2: (syntax): cannot include '%s': not a regular file",
             in_tmp("exshim.conf"), dir);
    assert_string_equal(err, want);
    snprintf(want, sizeof(want), L_ "@include \"%s\"\n" R_, in_tmp("inc.conf"));
    assert_int_equal(load_text(want, &c, err, sizeof(err)), -1);
    snprintf(want, sizeof(want),
             "%s:2: (syntax): @include names are relative to the directory of the config file; "
             "absolute names are not supported",
             in_tmp("exshim.conf"));
    assert_string_equal(err, want);

    write_file(in_tmp("inc.conf"), "\n" B_ "bogus = 1;\n");
    assert_int_equal(load_text(L_ "@include \"inc.conf\"\n" R_, &c, err, sizeof(err)), -1);
    assert_null(c);
    snprintf(want, sizeof(want), "%s:3: bogus: unknown key 'bogus'", in_tmp("inc.conf"));
    assert_string_equal(err, want);
}

/* ---- edge authentication -------------------------------------------------------------- */

static void
test_edge(void **state)
{
    (void)state;
    struct conf *c = NULL;
    char err[512] = "";

    if (load_text(E_ L_ B_
                  "routes = (\n"
                  "  { path = \"/mapi\"; backend = \"b\"; auth = \"edge\";\n"
                  "    edge = { backend_spn = \"HTTP@ex.t\"; }; },\n"
                  "  { path = \"/rpc\"; backend = \"b\"; auth = \"Edge\";\n"
                  "    edge = { backend_spn = \"HTTP/ex.t\"; offer = [ \"basic\" ];\n"
                  "             basic_realm = \"Mail\"; delegation = \"password\";\n"
                  "             password_mech = \"NTLM\"; realm = \"T\"; ntlm_domain = \"D\"; "
                  "}; },\n"
                  "  { path = \"default\"; backend = \"b\"; auth = \"pass-through\"; } );\n",
                  &c, err, sizeof(err)) != 0)
        fail_msg("%s", err);
    assert_string_equal(c->edge_keytab, in_tmp("mail.key"));
    assert_string_equal(c->edge_principal, "HTTP/proxy.t@T");
    const struct conf_route *r = &c->routes[0];
    assert_int_equal(r->auth, CONF_AUTH_EDGE);
    assert_true(r->edge.offer_negotiate && r->edge.offer_basic);
    assert_int_equal(r->edge.delegation, CONF_EDGE_CONSTRAINED);
    assert_int_equal(r->edge.password_mech, CONF_EDGE_PW_KERBEROS);
    assert_string_equal(r->edge.backend_spn, "HTTP@ex.t");
    assert_null(r->edge.basic_realm);
    assert_null(r->edge.realm);
    r = &c->routes[1];
    assert_int_equal(r->auth, CONF_AUTH_EDGE);
    assert_true(!r->edge.offer_negotiate && r->edge.offer_basic);
    assert_int_equal(r->edge.delegation, CONF_EDGE_PASSWORD);
    assert_int_equal(r->edge.password_mech, CONF_EDGE_PW_NTLM);
    assert_string_equal(r->edge.basic_realm, "Mail");
    assert_string_equal(r->edge.realm, "T");
    assert_string_equal(r->edge.ntlm_domain, "D");
    assert_int_equal(c->routes[2].auth, CONF_AUTH_PASS_THROUGH);
    conf_free(c);
    c = NULL;

    /* without auth the route is pass-through and there need be no global edge */
    if (load_text(L_ B_ R_, &c, err, sizeof(err)) != 0)
        fail_msg("%s", err);
    assert_int_equal(c->routes[0].auth, CONF_AUTH_PASS_THROUGH);
    assert_null(c->edge_keytab);
    conf_free(c);
}

/* ---- errors --------------------------------------------------------------------------- */

struct err_case {
    const char *name;
    const char *text;
    int line;
    const char *key;
    const char *msg; /* expected message, or its start when it ends in '*' */
};

static const struct err_case err_cases[] = {
    /* libconfig's own errors */
    {"syntax", "workers = ;\n" L_ B_ R_, 1, "(syntax)", "syntax error"},
    {"syntax later line", L_ B_ "\n\nroutes = ( { path = \"/x\"; backend = ; } );\n", 5, "(syntax)",
     "syntax error"},
    {"libconfig duplicate", "workers = 1;\nworkers = 2;\n" L_ B_ R_, 2, "(syntax)",
     "duplicate setting name"},
    {"include missing", L_ B_ R_ "@include \"nope.conf\"\n", 4, "(syntax)",
     "cannot open include file"},

    /* unknown keys, at every level */
    {"top unknown", "workres = 2;\n" L_ B_ R_, 1, "workres",
     "unknown key 'workres' (did you mean 'workers'?)"},
    {"top unknown no hint", L_ B_ R_ "frobnicate = 1;\n", 4, "frobnicate",
     "unknown key 'frobnicate'"},
    {"top misplaced", L_ B_ R_ "offer = [ \"NTLM\" ];\n", 4, "offer",
     "unknown key 'offer' here (it belongs inside a listener, backend or route)"},
    {"listener unknown", "listeners = (\n  { name = \"l\"; adress = \"127.0.0.1:0\"; } );\n" B_ R_,
     2, "listeners.[0].adress", "unknown key 'adress' (did you mean 'address'?)"},
    {"listener misplaced tls key",
     "listeners = ( { name = \"l\"; address = \"127.0.0.1:0\";\n  min_protocol = \"TLSv1.2\"; } "
     ");\n" B_ R_,
     2, "listeners.[0].min_protocol",
     "unknown key 'min_protocol' here (it belongs inside tls = { ... })"},
    {"listener tls unknown",
     "listeners = ( { name = \"l\"; address = \"127.0.0.1:0\"; tls = {\n"
     "  certs = ( { chain = \"mail.pem\"; key = \"mail.key\"; } );\n"
     "  session_ticket = false; }; } );\n" B_ R_,
     3, "listeners.[0].tls.session_ticket",
     "unknown key 'session_ticket' (did you mean 'session_tickets'?)"},
    {"listener tls misplaced chain",
     "listeners = ( { name = \"l\"; address = \"127.0.0.1:0\"; tls = {\n"
     "  chain = \"mail.pem\"; key = \"mail.key\"; }; } );\n" B_ R_,
     2, "listeners.[0].tls.chain",
     "unknown key 'chain' here (it belongs inside certs = ( { ... } ))"},
    {"cert unknown",
     "listeners = ( { name = \"l\"; address = \"127.0.0.1:0\"; tls = {\n"
     "  certs = ( { chain = \"mail.pem\"; key = \"mail.key\"; },\n"
     "            { chian = \"legacy.pem\"; key = \"legacy.key\"; } ); }; } );\n" B_ R_,
     3, "listeners.[0].tls.certs.[1].chian", "unknown key 'chian' (did you mean 'chain'?)"},
    {"backend unknown",
     L_ "backends = ( { name = \"b\";\n  server = [ \"127.0.0.1:8081\" ]; } );\n" R_, 3,
     "backends.[0].server", "unknown key 'server' (did you mean 'servers'?)"},
    {"backend tls unknown",
     L_ "backends = ( { name = \"b\"; servers = [ \"127.0.0.1:8081\" ];\n"
        "  tls = { verfy = false; }; } );\n" R_,
     3, "backends.[0].tls.verfy", "unknown key 'verfy' (did you mean 'verify'?)"},
    {"backend misplaced tls key",
     L_ "backends = ( { name = \"b\"; servers = [ \"127.0.0.1:8081\" ]; sni = \"x\"; } );\n" R_, 2,
     "backends.[0].sni", "unknown key 'sni' here (it belongs inside tls = { ... })"},
    {"route unknown",
     L_ B_ "routes = (\n  { path = \"/x\"; backend = \"b\"; },\n"
           "  { path = \"/y\"; backend = \"b\"; ofer = [ \"NTLM\" ]; } );\n",
     5, "routes.[1].ofer", "unknown key 'ofer' (did you mean 'offer'?)"},
    {"route affinity not supported",
     L_ B_ "routes = (\n  { path = \"/x\"; backend = \"b\";\n"
           "    affinity = \"rpc-cookie\"; } );\n",
     5, "routes.[0].affinity", "unknown key 'affinity'"},

    /* wrong types */
    {"workers bool", "workers = true;\n" L_ B_ R_, 1, "workers",
     "expected \"auto\" or a number from 1 to 256, found a boolean"},
    {"access_log string", "access_log = \"yes\";\n" L_ B_ R_, 1, "access_log",
     "expected true or false, found a string"},
    {"max_headers float", "max_headers = 2.5;\n" L_ B_ R_, 1, "max_headers",
     "expected an integer, found a floating-point number"},
    {"log_level int", "log_level = 3;\n" L_ B_ R_, 1, "log_level",
     "expected a string, found an integer"},
    {"listeners group", "listeners = { name = \"l\"; };\n" B_ R_, 1, "listeners",
     "expected a list of groups ( { ... }, ... ), found a group { ... }"},
    {"listener not group", "listeners = ( \"127.0.0.1:0\" );\n" B_ R_, 1, "listeners.[0]",
     "expected a group { name = ...; address = ...; }, found a string"},
    {"name int", "listeners = ( { name = 5; address = \"127.0.0.1:0\"; } );\n" B_ R_, 1,
     "listeners.[0].name", "expected a string, found an integer"},
    {"empty string", "listeners = ( { name = \"\"; address = \"127.0.0.1:0\"; } );\n" B_ R_, 1,
     "listeners.[0].name", "must not be empty"},
    {"tls not group",
     "listeners = ( { name = \"l\"; address = \"127.0.0.1:0\"; tls = true; } );\n" B_ R_, 1,
     "listeners.[0].tls", "expected a group { certs = ...; }, found a boolean"},
    {"servers string", L_ "backends = ( { name = \"b\"; servers = \"127.0.0.1:80\"; } );\n" R_, 2,
     "backends.[0].servers", "expected an array of \"HOST:PORT\" strings [ ... ], found a string"},
    {"server int", L_ "backends = ( { name = \"b\"; servers = [ 80 ]; } );\n" R_, 2,
     "backends.[0].servers.[0]", "expected a string, found an integer"},
    {"offer string", L_ B_ "routes = ( { path = \"/x\"; backend = \"b\"; offer = \"NTLM\"; } );\n",
     3, "routes.[0].offer", "expected an array of scheme names [ \"NTLM\", ... ], found a string"},
    {"timeout bool",
     L_ B_ "routes = ( { path = \"/x\"; backend = \"b\"; idle_timeout = true; } );\n", 3,
     "routes.[0].idle_timeout",
     "expected a duration (seconds, or a string like \"30s\"), found a boolean"},

    /* ranges */
    {"workers 0", "workers = 0;\n" L_ B_ R_, 1, "workers", "0 is out of range (1..256)"},
    {"workers 257", "workers = 257;\n" L_ B_ R_, 1, "workers", "257 is out of range (1..256)"},
    {"workers word", "workers = \"many\";\n" L_ B_ R_, 1, "workers",
     "expected \"auto\" or a number from 1 to 256"},
    {"max_header_bytes low", "max_header_bytes = 1023;\n" L_ B_ R_, 1, "max_header_bytes",
     "1023 is out of range (1024..1048576)"},
    {"max_header_bytes high", "max_header_bytes = 1048577;\n" L_ B_ R_, 1, "max_header_bytes",
     "1048577 is out of range (1024..1048576)"},
    {"high_water low", "high_water = 4095;\n" L_ B_ R_, 1, "high_water",
     "4095 is out of range (4096..16777216)"},
    {"high_water high", "high_water = 16777217;\n" L_ B_ R_, 1, "high_water",
     "16777217 is out of range (4096..16777216)"},
    {"max_headers 0", "max_headers = 0;\n" L_ B_ R_, 1, "max_headers",
     "0 is out of range (1..10000)"},
    {"max_accept 0", "max_accept = 0;\n" L_ B_ R_, 1, "max_accept",
     "0 is out of range (1..100000)"},
    {"max_handshakes 0", "max_handshakes = 0;\n" L_ B_ R_, 1, "max_handshakes",
     "0 is out of range (1..10000)"},
    {"target_policy", "target_policy = \"lenient\";\n" L_ B_ R_, 1, "target_policy",
     "unknown policy 'lenient' (expected strict or normalize)"},
    {"max_connections 0", "max_connections = 0;\n" L_ B_ R_, 1, "max_connections",
     "0 is out of range (1..1000000)"},
    {"handshake_timeout zero", "handshake_timeout = 0;\n" L_ B_ R_, 1, "handshake_timeout",
     "must be greater than zero"},
    {"guard not bool", L_ B_ "routes = ( { path = \"/x\"; backend = \"b\"; guard = \"off\"; } );\n",
     3, "routes.[0].guard", "expected true or false*"},
    {"accept_balance", "accept_balance = \"random\";\n" L_ B_ R_, 1, "accept_balance",
     "unknown method 'random' (expected roundrobin or hash)"},
    {"cpu_affinity not bool", "cpu_affinity = \"auto\";\n" L_ B_ R_, 1, "cpu_affinity",
     "expected true or false*"},
    {"log_level", "log_level = \"verbose\";\n" L_ B_ R_, 1, "log_level",
     "unknown level 'verbose' (expected error, warn, info or debug)"},
    {"newline in value stays one line", "log_level = \"a\\nb\";\n" L_ B_ R_, 1, "log_level",
     "unknown level 'a?b' (expected error, warn, info or debug)"},

    /* durations */
    {"grace bad unit", "grace = \"30x\";\n" L_ B_ R_, 1, "grace", "invalid duration '30x'*"},
    {"grace negative", "grace = -1;\n" L_ B_ R_, 1, "grace", "-1 seconds is out of range*"},
    {"drain_timeout bad unit", "drain_timeout = \"1d\";\n" L_ B_ R_, 1, "drain_timeout",
     "invalid duration '1d'*"},
    {"drain_timeout bool", "\ndrain_timeout = true;\n" L_ B_ R_, 2, "drain_timeout",
     "expected a duration (seconds, or a string like \"30s\"), found a boolean"},
    {"max_generations 0", "max_generations = 0;\n" L_ B_ R_, 1, "max_generations",
     "0 is out of range (1..64)"},
    {"max_generations 65", "max_generations = 65;\n" L_ B_ R_, 1, "max_generations",
     "65 is out of range (1..64)"},
    {"max_generations string", "max_generations = \"4\";\n" L_ B_ R_, 1, "max_generations",
     "expected an integer, found a string"},
    {"metrics not a group", "metrics = \"127.0.0.1:9120\";\n" L_ B_ R_, 1, "metrics",
     "expected a group { address = \"HOST:PORT\"; }, found a string"},
    {"metrics no address", "metrics = { };\n" L_ B_ R_, 1, "metrics.address", "*"},
    {"metrics unknown key", "metrics = { address = \"127.0.0.1:1\"; port = 2; };\n" L_ B_ R_, 1,
     "metrics.port", "unknown key 'port'"},
    {"metrics bad address", "metrics = { address = \"localhost:9120\"; };\n" L_ B_ R_, 1,
     "metrics.address", "'localhost:9120': *"},
    {"idle zero",
     L_ B_ "routes = ( { path = \"/x\"; backend = \"b\"; idle_timeout = \"0s\"; } );\n", 3,
     "routes.[0].idle_timeout", "must be greater than zero"},
    {"connect_timeout zero",
     L_ "backends = ( { name = \"b\"; servers = [ \"h:1\" ]; connect_timeout = 0; } );\n" R_, 2,
     "backends.[0].connect_timeout", "must be greater than zero"},
    {"body_timeout overflow",
     L_ B_ "routes = ( { path = \"/x\"; backend = \"b\"; body_timeout = \"5000000s\"; } );\n", 3,
     "routes.[0].body_timeout", "invalid duration '5000000s'*"},

    /* addresses */
    /* PROXY protocol listeners */
#define PL_ "listeners = ( { name = \"l\"; address = \"127.0.0.1:0\";\n"
    {"proxy without from", PL_ "  proxy_protocol = true; } );\n" B_ R_, 2,
     "listeners.[0].proxy_protocol", "proxy_protocol needs proxy_from*"},
    {"proxy from without proxy", PL_ "  proxy_from = [ \"10.0.0.0/24\" ]; } );\n" B_ R_, 2,
     "listeners.[0].proxy_from", "only meaningful with proxy_protocol = true"},
    {"proxy not bool", PL_ "  proxy_protocol = 1; proxy_from = [ \"10.0.0.0/8\" ]; } );\n" B_ R_,
     2, "listeners.[0].proxy_protocol", "expected true or false, found an integer"},
    {"proxy from empty", PL_ "  proxy_protocol = true; proxy_from = [ ]; } );\n" B_ R_, 2,
     "listeners.[0].proxy_from", "at least one address range is required"},
    {"proxy from string", PL_ "  proxy_protocol = true; proxy_from = \"10.0.0.0/8\"; } );\n" B_ R_,
     2, "listeners.[0].proxy_from", "expected an array*"},
    {"proxy from name", PL_ "  proxy_protocol = true;\n  proxy_from = [ \"10.0.0.0/8\", \"lb\" ]; } );\n"
     B_ R_, 3, "listeners.[0].proxy_from.[1]", "'lb': not a numeric IPv4 or IPv6 address"},
    {"proxy from host bits", PL_ "  proxy_protocol = true; proxy_from = [ \"10.0.0.1/24\" ]; } );\n"
     B_ R_, 2, "listeners.[0].proxy_from.[0]",
     "'10.0.0.1/24': address has bits set past the prefix length"},
    {"proxy from prefix 33", PL_ "  proxy_protocol = true; proxy_from = [ \"10.0.0.0/33\" ]; } );\n"
     B_ R_, 2, "listeners.[0].proxy_from.[0]", "'10.0.0.0/33': prefix longer than 32"},
    {"proxy from prefix 129",
     PL_ "  proxy_protocol = true; proxy_from = [ \"2001:db8::/129\" ]; } );\n" B_ R_, 2,
     "listeners.[0].proxy_from.[0]", "'2001:db8::/129': prefix longer than 128"},
    {"proxy from bad prefix", PL_ "  proxy_protocol = true; proxy_from = [ \"10.0.0.0/x\" ]; } );\n"
     B_ R_, 2, "listeners.[0].proxy_from.[0]", "'10.0.0.0/x': bad prefix length"},
    {"proxy misplaced", "proxy_protocol = true;\n" L_ B_ R_, 1, "proxy_protocol",
     "unknown key 'proxy_protocol' here (it belongs inside a listener, backend or route)"},
#undef PL_
    {"address no port", "listeners = ( { name = \"l\"; address = \"127.0.0.1\"; } );\n" B_ R_, 1,
     "listeners.[0].address",
     "'127.0.0.1': missing port: expected HOST:PORT, e.g. \"0.0.0.0:443\""},
    {"address v6 no brackets", "listeners = ( { name = \"l\"; address = \"::1:443\"; } );\n" B_ R_,
     1, "listeners.[0].address", "'::1:443': IPv6 addresses go in brackets, e.g. \"[::1]:443\""},
    {"address v6 unclosed", "listeners = ( { name = \"l\"; address = \"[::1:443\"; } );\n" B_ R_, 1,
     "listeners.[0].address", "'[::1:443': missing ']' after the IPv6 address"},
    {"address v6 bad", "listeners = ( { name = \"l\"; address = \"[fe80::zz]:1\"; } );\n" B_ R_, 1,
     "listeners.[0].address", "'[fe80::zz]:1': not a numeric IPv6 address"},
    {"listener name host",
     "listeners = ( { name = \"l\"; address = \"localhost:443\"; } );\n" B_ R_, 1,
     "listeners.[0].address",
     "'localhost:443': a listener needs a numeric address (\"0.0.0.0\", \"[::]\" or \"*\")"},
    {"port too big", "listeners = ( { name = \"l\"; address = \"1.2.3.4:65536\"; } );\n" B_ R_, 1,
     "listeners.[0].address", "'1.2.3.4:65536': the port must be a number from 0 to 65535"},
    {"port text", "listeners = ( { name = \"l\"; address = \"1.2.3.4:https\"; } );\n" B_ R_, 1,
     "listeners.[0].address", "'1.2.3.4:https': the port must be a number from 0 to 65535"},
    {"port empty", "listeners = ( { name = \"l\"; address = \"1.2.3.4:\"; } );\n" B_ R_, 1,
     "listeners.[0].address", "'1.2.3.4:': the port must be a number from 0 to 65535"},
    {"host empty", "listeners = ( { name = \"l\"; address = \":443\"; } );\n" B_ R_, 1,
     "listeners.[0].address", "':443': missing or overlong host: expected HOST:PORT"},
    {"backend bad host",
     L_ "backends = ( { name = \"b\";\n  servers = [ \"10.0.0.1:80\",\n   \"bad host:80\" ]; } "
        ");\n" R_,
     4, "backends.[0].servers.[1]", "'bad host:80': not a valid host name or address"},
    {"backend port 0", L_ "backends = ( { name = \"b\"; servers = [ \"10.0.0.1:0\" ]; } );\n" R_, 2,
     "backends.[0].servers.[0]", "'10.0.0.1:0': port 0 only makes sense for a listener"},
    {"backend dup server",
     L_ "backends = ( { name = \"b\"; servers = [ \"Mail:443\", \"mail:443\" ]; } );\n" R_, 2,
     "backends.[0].servers.[1]", "server 'mail:443' is listed twice"},
    {"backend no servers", L_ "backends = ( { name = \"b\"; servers = [ ]; } );\n" R_, 2,
     "backends.[0].servers", "at least one server is required"},
    {"health unknown key",
     L_
     "backends = ( { name = \"b\"; servers = [ \"h:1\" ];\n  health = { intreval = 5; }; } );\n" R_,
     3, "backends.[0].health.intreval", "unknown key 'intreval' (did you mean 'interval'?)"},
    {"health timeout over interval",
     L_ "backends = ( { name = \"b\"; servers = [ \"h:1\" ];\n"
        "  health = { interval = \"1s\"; timeout = \"2s\"; }; } );\n" R_,
     3, "backends.[0].health.timeout", "longer than the interval (1000 ms)"},
    {"health fall zero",
     L_ "backends = ( { name = \"b\"; servers = [ \"h:1\" ];\n  health = { fall = 0; }; } );\n" R_,
     3, "backends.[0].health.fall", "0 is out of range (1..100)"},
    {"balance unknown",
     L_
     "backends = ( { name = \"b\"; servers = [ \"h:1\" ];\n  balance = \"roundrobin\"; } );\n" R_,
     3, "backends.[0].balance", "unknown balance 'roundrobin' (expected rendezvous or leastconn)"},
    {"health_path without health",
     L_ B_ "routes = ( { path = \"/mapi\"; backend = \"b\";\n  health_path = "
           "\"/mapi/healthcheck.htm\"; } );\n",
     4, "routes.[0].health_path", "backend 'b' has no health group to check it with"},

    /* TLS */
    {"tls min above max",
     "listeners = ( { name = \"l\"; address = \"127.0.0.1:0\"; tls = {\n"
     "  certs = ( { chain = \"mail.pem\"; key = \"mail.key\"; } );\n"
     "  max_protocol = \"TLSv1.2\";\n  min_protocol = \"TLSv1.3\"; }; } );\n" B_ R_,
     4, "listeners.[0].tls.min_protocol", "min_protocol TLSv1.3 is above max_protocol TLSv1.2"},
    {"tls max below default min",
     L_ "backends = ( { name = \"b\"; servers = [ \"h:1\" ];\n"
        "  tls = { max_protocol = \"TLSv1.1\"; }; } );\n" R_,
     3, "backends.[0].tls.max_protocol", "min_protocol TLSv1.2 is above max_protocol TLSv1.1"},
    {"tls unknown version",
     L_ "backends = ( { name = \"b\"; servers = [ \"h:1\" ];\n"
        "  tls = { min_protocol = \"SSLv3\"; }; } );\n" R_,
     3, "backends.[0].tls.min_protocol",
     "unknown TLS version 'SSLv3' (expected TLSv1.0, TLSv1.1, TLSv1.2 or TLSv1.3)"},
    {"tls listener no certs",
     "listeners = ( { name = \"l\"; address = \"127.0.0.1:0\";\n  tls = { }; } );\n" B_ R_, 2,
     "listeners.[0].tls.certs", "a TLS listener needs at least one certificate: *"},
    {"tls listener empty certs",
     "listeners = ( { name = \"l\"; address = \"127.0.0.1:0\";\n  tls = {\n  certs = ( ); }; } "
     ");\n" B_ R_,
     3, "listeners.[0].tls.certs", "a TLS listener needs at least one certificate"},
    {"cert without key",
     "listeners = ( { name = \"l\"; address = \"127.0.0.1:0\"; tls = {\n"
     "  certs = ( { chain = \"mail.pem\"; } ); }; } );\n" B_ R_,
     2, "listeners.[0].tls.certs.[0].key", "required key is missing"},
    {"cert file missing",
     "listeners = ( { name = \"l\"; address = \"127.0.0.1:0\"; tls = {\n"
     "  certs = ( { chain = \"mail.pem\";\n   key = \"missing.key\"; } ); }; } );\n" B_ R_,
     3, "listeners.[0].tls.certs.[0].key", "cannot read '*"},
    {"cert is a directory",
     "listeners = ( { name = \"l\"; address = \"127.0.0.1:0\"; tls = {\n"
     "  certs = ( { chain = \"etc\"; key = \"mail.key\"; } ); }; } );\n" B_ R_,
     2, "listeners.[0].tls.certs.[0].chain", "'*"},
    {"ca missing",
     L_ "backends = ( { name = \"b\"; servers = [ \"h:1\" ];\n  tls = { ca = \"nope-ca.pem\"; }; } "
        ");\n" R_,
     3, "backends.[0].tls.ca", "cannot read '*"},

    /* offers and bridges */
    {"offer unknown scheme",
     L_ B_
     "routes = ( { path = \"/x\"; backend = \"b\";\n  offer = [ \"Negotiate\", \"NTML\" ]; } );\n",
     4, "routes.[0].offer.[1]", "unknown scheme 'NTML' (did you mean 'NTLM'?)"},
    {"offer unknown scheme no hint",
     L_ B_ "routes = ( { path = \"/x\"; backend = \"b\"; offer = [ \"Kerberos\" ]; } );\n", 3,
     "routes.[0].offer.[0]",
     "unknown scheme 'Kerberos' (expected NTLM, Negotiate, Basic, Digest or Bearer)"},
    {"offer duplicate",
     L_ B_ "routes = ( { path = \"/x\"; backend = \"b\"; offer = [ \"NTLM\", \"ntlm\" ]; } );\n", 3,
     "routes.[0].offer.[1]", "scheme 'ntlm' is listed twice"},
    {"offer too many",
     L_ B_ "routes = ( { path = \"/x\"; backend = \"b\"; offer = [ \"NTLM\", \"Negotiate\", "
           "\"Basic\", \"Digest\", \"Bearer\", \"NTLM\", \"NTLM\", \"NTLM\", \"NTLM\" ]; } );\n",
     3, "routes.[0].offer", "at most 8 schemes may be offered"},
    {"bridge unknown",
     L_ B_ "routes = ( { path = \"/x\"; backend = \"b\"; bridge = \"ntlm\"; } );\n", 3,
     "routes.[0].bridge",
     "unknown bridge 'ntlm' (expected none, ntlm-to-negotiate or negotiate-to-ntlm)"},
    {"bridge ntlm without NTLM offer",
     L_ B_ "routes = ( { path = \"/mapi\"; backend = \"b\"; offer = [ \"Negotiate\" ];\n"
           "  bridge = \"ntlm-to-negotiate\"; } );\n",
     4, "routes.[0].bridge", "ntlm-to-negotiate translates client NTLM, but offer does not*"},
    {"bridge ntlm with empty offer",
     L_ B_ "routes = ( { path = \"/mapi\"; backend = \"b\"; offer = [ ];\n"
           "  bridge = \"ntlm-to-negotiate\"; } );\n",
     4, "routes.[0].bridge", "ntlm-to-negotiate translates client NTLM, but offer does not*"},
    {"bridge negotiate without Negotiate offer",
     L_ B_ "routes = ( { path = \"/x\"; backend = \"b\"; offer = [ \"NTLM\", \"Basic\" ];\n"
           "  bridge = \"negotiate-to-ntlm\"; } );\n",
     4, "routes.[0].bridge", "negotiate-to-ntlm translates client Negotiate, but offer*"},

    /* required sections and keys */
    {"no routes", L_ B_, 0, "routes", "at least one route is required"},
    {"empty routes", L_ B_ "\nroutes = ( );\n", 4, "routes", "at least one route is required"},
    {"no listeners", B_ R_, 0, "listeners", "at least one listener is required"},
    {"no backends", L_ R_, 0, "backends", "at least one backend is required"},
    {"listener no address", "listeners = (\n  { name = \"l\"; } );\n" B_ R_, 2,
     "listeners.[0].address", "required key is missing"},
    {"backend no name", L_ "backends = ( { servers = [ \"h:1\" ]; } );\n" R_, 2,
     "backends.[0].name", "required key is missing"},
    {"route no backend", L_ B_ "routes = ( { path = \"/x\"; },\n  { path = \"/y\"; } );\n", 3,
     "routes.[0].backend", "required key is missing"},

    /* routes */
    {"route path no slash", L_ B_ "routes = ( { path = \"rpc\"; backend = \"b\"; } );\n", 3,
     "routes.[0].path", "'rpc': a route path starts with '/' or is \"default\""},
    {"route path query", L_ B_ "routes = ( { path = \"/a?b\"; backend = \"b\"; } );\n", 3,
     "routes.[0].path",
     "'/a?b': a route path may not contain '?', '#', spaces or control characters"},
    {"route backend unknown", L_ B_ "routes = ( { path = \"/x\";\n  backend = \"c\"; } );\n", 4,
     "routes.[0].backend", "no backend named 'c'"},
    {"route backend typo",
     L_ "backends = ( { name = \"cas2016\"; servers = [ \"h:1\" ]; } );\n"
        "routes = ( { path = \"/x\"; backend = \"cas2061\"; } );\n",
     3, "routes.[0].backend", "no backend named 'cas2061' (did you mean 'cas2016'?)"},

    /* duplicates */
    {"duplicate route",
     L_ B_ "routes = (\n  { path = \"/rpc\"; backend = \"b\"; },\n"
           "  { path = \"/RPC\"; backend = \"b\"; } );\n",
     5, "routes.[1].path",
     "duplicate route '/RPC' (first at line 4; paths are compared case-insensitively)"},
    {"duplicate default",
     L_ B_
     "routes = (\n  { path = \"default\"; backend = \"b\"; },\n"
     "  { path = \"/x\"; backend = \"b\"; },\n  { path = \"default\"; backend = \"b\"; } );\n",
     6, "routes.[2].path", "duplicate route 'default' (first at line 4*"},
    {"duplicate listener name",
     "listeners = (\n  { name = \"l\"; address = \"127.0.0.1:0\"; },\n"
     "  { name = \"l\"; address = \"127.0.0.1:1\"; } );\n" B_ R_,
     3, "listeners.[1].name", "duplicate listener name 'l' (first at line 2)"},
    {"duplicate listener address",
     "listeners = (\n  { name = \"a\"; address = \"[::1]:8443\"; },\n"
     "  { name = \"b\"; address = \"[0::1]:8443\"; } );\n" B_ R_,
     3, "listeners.[1].address", "listener 'b' uses the same address as 'a' (line 2)"},
    {"duplicate backend name",
     L_ "backends = (\n  { name = \"b\"; servers = [ \"h:1\" ]; },\n"
        "  { name = \"b\"; servers = [ \"h:2\" ]; } );\n" R_,
     4, "backends.[1].name", "duplicate backend name 'b' (first at line 3)"},

    /* edge authentication */
    {"edge route without global edge",
     L_ B_ "routes = ( { path = \"/x\"; backend = \"b\";\n  auth = \"edge\";\n"
           "  edge = { backend_spn = \"HTTP@b\"; }; } );\n",
     4, "routes.[0].auth",
     "auth = \"edge\" needs the global edge = { keytab = \"...\"; principal = "
     "\"HTTP/proxy.host@REALM\"; }"},
    {"edge auth mode unknown",
     L_ B_ "routes = ( { path = \"/x\"; backend = \"b\";\n  auth = \"kerberos\"; } );\n", 4,
     "routes.[0].auth", "unknown mode 'kerberos' (expected edge or pass-through)"},
    {"edge group without auth edge",
     L_ B_ "routes = ( { path = \"/x\"; backend = \"b\";\n  edge = { }; } );\n", 4,
     "routes.[0].edge", "an edge group needs auth = \"edge\" on the route"},
    {"edge route without edge group",
     E_ L_ B_ "routes = ( { path = \"/x\";\n backend = \"b\"; auth = \"edge\"; } );\n", 4,
     "routes.[0].edge", "auth = \"edge\" needs edge = { backend_spn = \"HTTP@backend.host\"; }"},
    {"edge offers NTLM",
     E_ L_ B_
     "routes = ( { path = \"/x\"; backend = \"b\"; auth = \"edge\";\n"
     "  edge = { backend_spn = \"HTTP@b\";\n    offer = [ \"Negotiate\", \"NTLM\" ]; }; } );\n",
     6, "routes.[0].edge.offer.[1]", "NTLM is not accepted at the edge*"},
    {"edge route with offer",
     E_ L_ B_ "routes = ( { path = \"/x\"; backend = \"b\"; auth = \"edge\";\n"
              "  offer = [ \"Negotiate\" ]; edge = { backend_spn = \"HTTP@b\"; }; } );\n",
     5, "routes.[0].offer",
     "with auth = \"edge\" the offer goes inside edge = { offer = [ ... ]; }"},
    {"edge delegation unknown",
     E_ L_ B_ "routes = ( { path = \"/x\"; backend = \"b\"; auth = \"edge\";\n"
              "  edge = { backend_spn = \"HTTP@b\";\n    delegation = \"unconstrained\"; }; } );\n",
     6, "routes.[0].edge.delegation",
     "unknown value 'unconstrained' (expected constrained or password)"},
    {"edge password_mech without password",
     E_ L_ B_ "routes = ( { path = \"/x\"; backend = \"b\"; auth = \"edge\";\n"
              "  edge = { backend_spn = \"HTTP@b\";\n    password_mech = \"ntlm\"; }; } );\n",
     6, "routes.[0].edge.password_mech", "password_mech applies to delegation = \"password\" only"},
    {"edge password without Basic",
     E_ L_ B_ "routes = ( { path = \"/x\"; backend = \"b\"; auth = \"edge\";\n"
              "  edge = { backend_spn = \"HTTP@b\"; offer = [ \"Negotiate\" ];\n"
              "    delegation = \"password\"; }; } );\n",
     6, "routes.[0].edge.delegation",
     "delegation = \"password\" needs the user's password: offer Basic"},
    {"edge backend_spn missing",
     E_ L_ B_ "routes = ( { path = \"/x\"; backend = \"b\"; auth = \"edge\";\n"
              "  edge = { realm = \"R\"; }; } );\n",
     5, "routes.[0].edge.backend_spn", "required key is missing"},
    {"edge backend_spn not a service",
     E_ L_ B_ "routes = ( { path = \"/x\"; backend = \"b\"; auth = \"edge\";\n"
              "  edge = { backend_spn = \"backend\"; }; } );\n",
     5, "routes.[0].edge.backend_spn",
     "'backend': expected a host-based service name, e.g. \"HTTP@backend.host\""},
    {"edge route key unknown",
     E_ L_ B_ "routes = ( { path = \"/x\"; backend = \"b\"; auth = \"edge\";\n"
              "  edge = { backend_spn = \"HTTP@b\";\n    delegaton = \"password\"; }; } );\n",
     6, "routes.[0].edge.delegaton", "unknown key 'delegaton' (did you mean 'delegation'?)"},
    {"global edge principal missing", "edge = { keytab = \"mail.key\"; };\n" L_ B_ R_, 1,
     "edge.principal", "required key is missing"},
    {"global edge keytab unreadable",
     "edge = { keytab = \"nope.keytab\"; principal = \"HTTP/p@R\"; };\n" L_ B_ R_, 1, "edge.keytab",
     "cannot read '*"},
    {"global edge with a route key",
     "edge = { keytab = \"mail.key\"; principal = \"HTTP/p@R\";\n  backend_spn = \"x\"; };\n" L_ B_
         R_,
     2, "edge.backend_spn",
     "unknown key 'backend_spn' here (it belongs inside a route's edge = { ... })"},
};

static void
check_err_case(const struct err_case *tc)
{
    struct conf *c = (struct conf *)&c; /* must be left alone on failure */
    struct conf *const sentinel = c;
    char err[1024] = "", want[1024];
    size_t msglen;
    const char *msg;

    if (load_text(tc->text, &c, err, sizeof(err)) != -1)
        fail_msg("case '%s': loaded, expected an error", tc->name);
    if (c != sentinel)
        fail_msg("case '%s': conf_out was written on failure", tc->name);
    snprintf(want, sizeof(want), "%s:%d: %s: ", in_tmp("exshim.conf"), tc->line, tc->key);
    if (strncmp(err, want, strlen(want)) != 0)
        fail_msg("case '%s':\n  got    '%s'\n  wanted '%s%s'", tc->name, err, want, tc->msg);
    msg = err + strlen(want);
    msglen = strlen(tc->msg);
    if (msglen > 0 && tc->msg[msglen - 1] == '*') {
        if (strncmp(msg, tc->msg, msglen - 1) != 0)
            fail_msg("case '%s': message '%s' does not start with '%.*s'", tc->name, msg,
                     (int)msglen - 1, tc->msg);
    } else if (strcmp(msg, tc->msg) != 0) {
        fail_msg("case '%s': message\n  got    '%s'\n  wanted '%s'", tc->name, msg, tc->msg);
    }
    if (strchr(err, '\n') != NULL)
        fail_msg("case '%s': error is not one line", tc->name);
}

static void
test_errors(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(err_cases) / sizeof(err_cases[0]); i++)
        check_err_case(&err_cases[i]);
}

/* The base blocks used by the error table load cleanly on their own. */
static void
test_error_base_is_valid(void **state)
{
    (void)state;
    struct conf *c = NULL;
    char err[512] = "";

    if (load_text(L_ B_ R_, &c, err, sizeof(err)) != 0)
        fail_msg("%s", err);
    conf_free(c);
}

static void
test_missing_file(void **state)
{
    (void)state;
    struct conf *c = NULL;
    char err[512] = "", want[1024];

    assert_int_equal(conf_load(in_tmp("does-not-exist.conf"), &c, err, sizeof(err)), -1);
    assert_null(c);
    snprintf(want, sizeof(want), "%s:0: (file): cannot open: %s", in_tmp("does-not-exist.conf"),
             strerror(ENOENT));
    assert_string_equal(err, want);
}

/* Things that are not config files fail cleanly (libconfig's reader would exit()). */
static void
test_bad_files(void **state)
{
    static const char nul_text[] = "workers = 1;\0bogus";
    struct conf *c = NULL;
    char err[512] = "", want[1024];
    FILE *fp;

    (void)state;
    assert_int_equal(conf_load(in_tmp("etc"), &c, err, sizeof(err)), -1);
    snprintf(want, sizeof(want), "%s:0: (file): is a directory", in_tmp("etc"));
    assert_string_equal(err, want);

    fp = fopen(in_tmp("exshim.conf"), "w");
    assert_non_null(fp);
    assert_int_equal(fwrite(nul_text, 1, sizeof(nul_text) - 1, fp), sizeof(nul_text) - 1);
    assert_int_equal(fclose(fp), 0);
    assert_int_equal(conf_load(in_tmp("exshim.conf"), &c, err, sizeof(err)), -1);
    snprintf(want, sizeof(want), "%s:0: (file): contains a NUL byte (not a text file?)",
             in_tmp("exshim.conf"));
    assert_string_equal(err, want);

    /* An oversized file (here: 5 MiB of comments) is refused, not read without bound. */
    fp = fopen(in_tmp("exshim.conf"), "w");
    assert_non_null(fp);
    for (int i = 0; i < 5 * 1024; i++)
        fprintf(fp, "#%01022d\n", 0);
    assert_int_equal(fclose(fp), 0);
    assert_int_equal(conf_load(in_tmp("exshim.conf"), &c, err, sizeof(err)), -1);
    snprintf(want, sizeof(want), "%s:0: (file): larger than 4194304 bytes", in_tmp("exshim.conf"));
    assert_string_equal(err, want);

    assert_int_equal(conf_load("/dev/null", &c, err, sizeof(err)), -1);
    assert_string_equal(err, "/dev/null:0: listeners: at least one listener is required");
    assert_null(c);
}

/* A short or absent error buffer is never overrun. */
static void
test_small_err_buffer(void **state)
{
    (void)state;
    struct conf *c = NULL;
    char err[8];

    memset(err, 'x', sizeof(err));
    assert_int_equal(load_text("workres = 1;\n" L_ B_ R_, &c, err, 4), -1);
    assert_int_equal(err[3], '\0');
    assert_int_equal(err[4], 'x');
    assert_int_equal(load_text("workres = 1;\n" L_ B_ R_, &c, NULL, 0), -1);
    assert_int_equal(load_text("workers = ;\n", &c, NULL, 0), -1);
    assert_null(c);
    conf_free(NULL);
}

/* ---- durations ------------------------------------------------------------------------ */

static void
test_durations(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        int rc;
        unsigned ms;
    } cases[] = {
        {"0", 0, 0},
        {"30", 0, 30000},
        {"500ms", 0, 500},
        {"30s", 0, 30000},
        {"20m", 0, 1200000},
        {"2h", 0, 7200000},
        {"0ms", 0, 0},
        {"007s", 0, 7000},
        {"4294967295ms", 0, 4294967295u},
        {"4294967s", 0, 4294967000u},
        {"1193h", 0, 4294800000u},
        {"4294968s", -1, 0},
        {"4294967296ms", -1, 0},
        {"1194h", -1, 0},
        {"99999999999999999999999", -1, 0},
        {"18446744073709551616ms", -1, 0}, /* 2^64: wraps to 0 if overflow is not caught */
        {"18446744073709551617ms", -1, 0},
        {"", -1, 0},
        {"s", -1, 0},
        {"ms", -1, 0},
        {"-1s", -1, 0},
        {"+1s", -1, 0},
        {" 1s", -1, 0},
        {"1s ", -1, 0},
        {"1 s", -1, 0},
        {"1.5s", -1, 0},
        {"1S", -1, 0},
        {"1d", -1, 0},
        {"1sec", -1, 0},
        {"1hm", -1, 0},
        {"0x10", -1, 0},
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        unsigned ms = 12345;
        int rc = conf_parse_duration(cases[i].text, &ms);

        if (rc != cases[i].rc)
            fail_msg("'%s': rc %d, wanted %d", cases[i].text, rc, cases[i].rc);
        if (rc == 0 && ms != cases[i].ms)
            fail_msg("'%s': %u ms, wanted %u", cases[i].text, ms, cases[i].ms);
        if (rc != 0 && ms != 12345)
            fail_msg("'%s': output written on failure", cases[i].text);
    }
    assert_int_equal(conf_parse_duration(NULL, &(unsigned){0}), -1);
}

/* ---- schemes -------------------------------------------------------------------------- */

static void
test_schemes(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        int rc;
        enum conf_scheme s;
        const char *name;
    } cases[] = {
        {"NTLM", 0, CONF_SCHEME_NTLM, "NTLM"},
        {"ntlm", 0, CONF_SCHEME_NTLM, "NTLM"},
        {"Negotiate", 0, CONF_SCHEME_NEGOTIATE, "Negotiate"},
        {"NEGOTIATE", 0, CONF_SCHEME_NEGOTIATE, "Negotiate"},
        {"basic", 0, CONF_SCHEME_BASIC, "Basic"},
        {"Digest", 0, CONF_SCHEME_DIGEST, "Digest"},
        {"bearer", 0, CONF_SCHEME_BEARER, "Bearer"},
        {"Kerberos", -1, 0, NULL},
        {"NTLM ", -1, 0, NULL},
        {"", -1, 0, NULL},
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        enum conf_scheme s = 0;
        int rc = conf_scheme_parse(cases[i].text, &s);

        if (rc != cases[i].rc)
            fail_msg("'%s': rc %d", cases[i].text, rc);
        if (rc == 0) {
            assert_int_equal(s, cases[i].s);
            assert_string_equal(conf_scheme_name(s), cases[i].name);
        }
    }
    assert_int_equal(conf_scheme_parse(NULL, &(enum conf_scheme){0}), -1);
    assert_string_equal(conf_scheme_name((enum conf_scheme)99), "unknown");
}

/* ---- route lookup --------------------------------------------------------------------- */

static const char route_conf[] =
    L_ B_ "routes = (\n"
          "  { path = \"/rpc\"; backend = \"b\"; },\n"
          "  { path = \"/mapi\"; backend = \"b\"; },\n"
          "  { path = \"/ews/exchange.asmx\"; backend = \"b\"; },\n" /* longer first: order must not
                                                                        matter */
          "  { path = \"/ews\"; backend = \"b\"; },\n"
          "  { path = \"/owa/\"; backend = \"b\"; },\n"
          "  { path = \"/Microsoft-Server-ActiveSync\"; backend = \"b\"; },\n"
          "  { path = \"default\"; backend = \"b\"; }\n"
          ");\n";

static void
check_routes(const struct conf *c, bool with_default)
{
    static const struct {
        const char *path;
        const char *want; /* NULL: the default route (or NULL without one) */
    } cases[] = {
        {"/rpc", "/rpc"},
        {"/rpc/", "/rpc"},
        {"/Rpc/RpcProxy.dll", "/rpc"},
        {"/RPC/rpcproxy.dll?mail.contoso.com:6001", "/rpc"},
        {"/rpc?x", "/rpc"},
        {"/rpcfoo", NULL},
        {"/rpcwithcert/rpcproxy.dll", NULL},
        {"/rp", NULL},
        {"/mapi/emsmdb/?MailboxId=x", "/mapi"},
        {"/mapi/nspi", "/mapi"},
        {"/mapi?/rpc", "/mapi"},
        {"/ews", "/ews"},
        {"/EWS/Exchange.asmx", "/ews/exchange.asmx"},
        {"/ews/exchange.asmx/wssecurity", "/ews/exchange.asmx"},
        {"/ews/exchange.asmxx", "/ews"},
        {"/ews/Services.wsdl", "/ews"},
        {"/owa/", "/owa/"},
        {"/owa/auth/logon.aspx", "/owa/"},
        {"/owa", NULL},
        {"/owaX", NULL},
        {"/microsoft-server-activesync?Cmd=Sync", "/Microsoft-Server-ActiveSync"},
        {"/", NULL},
        {"", NULL},
        {"?/rpc", NULL},
        {"/autodiscover/autodiscover.xml", NULL},
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const struct conf_route *r = conf_route_find(c, cases[i].path, strlen(cases[i].path));

        if (cases[i].want != NULL) {
            if (r == NULL || strcmp(r->path, cases[i].want) != 0)
                fail_msg("'%s': got %s, wanted %s", cases[i].path, r ? r->path : "NULL",
                         cases[i].want);
        } else if (with_default) {
            if (r == NULL || !r->is_default)
                fail_msg("'%s': got %s, wanted default", cases[i].path, r ? r->path : "NULL");
        } else if (r != NULL) {
            fail_msg("'%s': got %s, wanted NULL", cases[i].path, r->path);
        }
    }
}

static void
test_route_find(void **state)
{
    (void)state;
    struct conf *c = NULL;
    char err[512] = "";
    const struct conf_route *r;
    static const char buf[] = "/rpc/rpcproxy.dll";

    if (load_text(route_conf, &c, err, sizeof(err)) != 0)
        fail_msg("%s", err);
    check_routes(c, true);

    /* The length bounds the path: it need not be NUL-terminated. */
    r = conf_route_find(c, buf, 4);
    assert_non_null(r);
    assert_string_equal(r->path, "/rpc");
    r = conf_route_find(c, buf, 3);
    assert_true(r->is_default);
    r = conf_route_find(c, NULL, 0);
    assert_true(r->is_default);
    assert_null(conf_route_find(NULL, "/rpc", 4));

    /* Without a default route, unmatched paths give NULL. */
    c->routes[c->nroutes - 1].is_default = false;
    c->nroutes--;
    check_routes(c, false);
    c->nroutes++;
    conf_free(c);
}

/* A route "/" catches everything the others do not, and loses to longer prefixes. */
static void
test_route_slash(void **state)
{
    (void)state;
    struct conf *c = NULL;
    char err[512] = "";

    if (load_text(L_ B_ "routes = ( { path = \"/\"; backend = \"b\"; },\n"
                        "           { path = \"/ecp\"; backend = \"b\"; } );\n",
                  &c, err, sizeof(err)) != 0)
        fail_msg("%s", err);
    assert_string_equal(conf_route_find(c, "/anything", 9)->path, "/");
    assert_string_equal(conf_route_find(c, "/", 1)->path, "/");
    assert_string_equal(conf_route_find(c, "/ECP/x", 6)->path, "/ecp");
    assert_null(conf_route_find(c, "x", 1));
    conf_free(c);
}

/*
 * conf/exshim.conf, the shipped file, loads once the certificate files `make run` creates
 * exist next to it (../state/). Looked up under $EXSHIM_SRCDIR, else the working directory;
 * skipped when not found (failed under CI=true).
 */
static void
test_shipped_config(void **state)
{
    static const char *const vdirs[] = {"/rpc",    "/mapi", "/ews", "/autodiscover",
                                        "/oab",    "/owa",  "/ecp", "/Microsoft-Server-ActiveSync",
                                        "default", NULL};
    char path[PATH_MAX + 32], err[512] = "";
    struct conf *c = NULL;
    FILE *in, *out;
    int ch;

    (void)state;
    snprintf(path, sizeof(path), "%s/conf/exshim.conf",
             getenv("EXSHIM_SRCDIR") != NULL ? getenv("EXSHIM_SRCDIR") : ".");
    in = fopen(path, "r");
    if (in == NULL) {
        /* Under CI every prerequisite is present, so a missing file is a failure there. */
        if (getenv("CI") != NULL && strcmp(getenv("CI"), "true") == 0)
            fail_msg("cannot open %s (run from the source tree or set EXSHIM_SRCDIR)", path);
        skip();
    }
    assert_int_equal(mkdir(in_tmp("conf"), 0700), 0);
    assert_int_equal(mkdir(in_tmp("state"), 0700), 0);
    write_file(in_tmp("state/cert.pem"), "x\n");
    write_file(in_tmp("state/key.pem"), "x\n");
    snprintf(path, sizeof(path), "%s", in_tmp("conf/exshim.conf"));
    out = fopen(path, "w");
    assert_non_null(out);
    while ((ch = fgetc(in)) != EOF)
        fputc(ch, out);
    fclose(in);
    assert_int_equal(fclose(out), 0);

    if (conf_load(path, &c, err, sizeof(err)) != 0)
        fail_msg("%s", err);
    assert_int_equal(c->nlisteners, 1);
    assert_string_equal(c->listeners[0].host, "127.0.0.1");
    assert_string_equal(c->listeners[0].port, "8443");
    assert_true(c->listeners[0].tls);
    assert_string_equal(c->listeners[0].certs[0].chain, in_tmp("conf/../state/cert.pem"));
    assert_string_equal(c->listeners[0].certs[0].key, in_tmp("conf/../state/key.pem"));
    assert_int_equal(c->nbackends, 1);
    assert_string_equal(c->backends[0].servers[0].host, "127.0.0.1");
    assert_string_equal(c->backends[0].servers[0].port, "8081");
    assert_false(c->backends[0].tls);
    for (size_t i = 0; vdirs[i] != NULL; i++) {
        size_t k;
        for (k = 0; k < c->nroutes; k++)
            if (strcmp(c->routes[k].path, vdirs[i]) == 0)
                break;
        if (k == c->nroutes)
            fail_msg("no route for %s", vdirs[i]);
        assert_int_equal(c->routes[k].backend, 0);
        if (strcmp(vdirs[i], "/mapi") == 0) {
            /* the make-run lab reproduces F1 on /mapi: NTLM offered and bridged */
            assert_true(c->routes[k].offer_set);
            assert_int_equal(c->routes[k].noffer, 1);
            assert_int_equal(c->routes[k].offer[0], CONF_SCHEME_NTLM);
            assert_int_equal(c->routes[k].bridge, CONF_BRIDGE_NTLM_TO_NEGOTIATE);
        } else {
            assert_false(c->routes[k].offer_set); /* offers pass through */
        }
        if (i < 2) {
            assert_int_equal(c->routes[k].idle_timeout_ms, 3600000);
            assert_int_equal(c->routes[k].body_timeout_ms, 3600000);
        }
    }
    conf_free(c);
}

/* Every .conf file in conf/examples loads when placed next to the test's certificate files. */
static void
test_examples(void **state)
{
    char dir[PATH_MAX], src[PATH_MAX + 300], dst[512], err[512] = "";
    const char *srcdir = getenv("EXSHIM_SRCDIR") != NULL ? getenv("EXSHIM_SRCDIR") : ".";
    struct dirent *de;
    size_t loaded = 0;
    DIR *d;

    (void)state;
    snprintf(dir, sizeof(dir), "%s/conf/examples", srcdir);
    d = opendir(dir);
    if (d == NULL) {
        if (getenv("CI") != NULL && strcmp(getenv("CI"), "true") == 0)
            fail_msg("cannot open %s (run from the source tree or set EXSHIM_SRCDIR)", dir);
        skip();
    }
    snprintf(dst, sizeof(dst), "%s", in_tmp("exshim.conf"));
    while ((de = readdir(d)) != NULL) {
        size_t n = strlen(de->d_name);
        struct conf *c = NULL;
        FILE *in, *out;
        int ch;

        if (n < 6 || strcmp(de->d_name + n - 5, ".conf") != 0)
            continue;
        snprintf(src, sizeof(src), "%s/%s", dir, de->d_name);
        in = fopen(src, "r");
        assert_non_null(in);
        out = fopen(dst, "w");
        assert_non_null(out);
        while ((ch = fgetc(in)) != EOF)
            fputc(ch, out);
        fclose(in);
        assert_int_equal(fclose(out), 0);
        if (conf_load(dst, &c, err, sizeof(err)) != 0)
            fail_msg("%s: %s", de->d_name, err);
        conf_free(c);
        loaded++;
    }
    closedir(d);
    assert_true(loaded > 0);
}

/* The hardening keys, set. */
static void
test_hardening_keys(void **state)
{
    (void)state;
    struct conf *c = NULL;
    char err[512] = "";
    assert_int_equal(
        load_text("handshake_timeout = \"2s\"; max_connections = 20;\n"
                  "max_connections_per_client = 5; target_policy = \"Normalize\";\n"
                  "max_accept = 4; max_handshakes = 1;\n" L_ B_
                  "routes = ( { path = \"/owa\"; backend = \"b\"; guard = false; } );\n",
                  &c, err, sizeof(err)),
        0);
    assert_int_equal(c->handshake_timeout_ms, 2000);
    assert_int_equal(c->max_connections, 20);
    assert_int_equal(c->max_connections_per_client, 5);
    assert_int_equal(c->max_accept, 4);
    assert_int_equal(c->max_handshakes, 1);
    assert_int_equal(c->target_policy, CONF_TARGET_NORMALIZE);
    assert_false(c->routes[0].guard);
    conf_free(c);
}

static void
test_health_keys(void **state)
{
    (void)state;
    struct conf *c = NULL;
    char err[512] = "";
    assert_int_equal(
        load_text(L_ "backends = ( { name = \"b\"; servers = [ \"h:1\", \"h:2\" ];\n"
                     "  balance = \"leastconn\"; health = { interval = \"500ms\"; fall = 2; }; },\n"
                     "  { name = \"p\"; servers = [ \"h:3\" ]; } );\n"
                     "routes = ( { path = \"/mapi\"; backend = \"b\";\n"
                     "  health_path = \"/mapi/healthcheck.htm\"; },\n"
                     "  { path = \"default\"; backend = \"p\"; } );\n",
                  &c, err, sizeof(err)),
        0);
    const struct conf_backend *b = &c->backends[0], *p = &c->backends[1];
    assert_true(b->checked);
    assert_int_equal(b->balance, CONF_BALANCE_LEASTCONN);
    assert_string_equal(b->health.path, "/owa/healthcheck.htm");
    assert_int_equal(b->health.interval_ms, 500);
    assert_int_equal(b->health.timeout_ms, 500); /* the 2 s default shrinks to the interval */
    assert_int_equal(b->health.rise, 2);
    assert_int_equal(b->health.fall, 2);
    assert_int_equal(b->health.expect, 200);
    assert_false(p->checked);
    assert_int_equal(p->balance, CONF_BALANCE_RENDEZVOUS);
    assert_string_equal(c->routes[0].health_path, "/mapi/healthcheck.htm");
    assert_null(c->routes[1].health_path);
    conf_free(c);
}

/* The default cap follows the descriptor limit: two per connection after the reserve. */
static void
test_auto_max_connections(void **state)
{
    (void)state;
    assert_int_equal(conf_auto_max_connections(20000), 9712);
    assert_int_equal(conf_auto_max_connections(1024), 224);
    assert_int_equal(conf_auto_max_connections(600), 12);
    assert_int_equal(conf_auto_max_connections(100), 1);
    assert_int_equal(conf_auto_max_connections(0), 1);
    assert_int_equal(conf_auto_max_connections(1ULL << 40), 1000000);
    assert_int_equal(conf_auto_max_connections((unsigned long long)RLIM_INFINITY), 1000000);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_health_keys),
        cmocka_unit_test(test_hardening_keys),
        cmocka_unit_test(test_full_config),
        cmocka_unit_test(test_auto_max_connections),
        cmocka_unit_test(test_metrics_block),
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_accepted_forms),
        cmocka_unit_test(test_proxy_protocol),
        cmocka_unit_test(test_relative_paths),
        cmocka_unit_test(test_include),
        cmocka_unit_test(test_error_base_is_valid),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_edge),
        cmocka_unit_test(test_missing_file),
        cmocka_unit_test(test_bad_files),
        cmocka_unit_test(test_small_err_buffer),
        cmocka_unit_test(test_durations),
        cmocka_unit_test(test_schemes),
        cmocka_unit_test(test_route_find),
        cmocka_unit_test(test_route_slash),
        cmocka_unit_test(test_shipped_config),
        cmocka_unit_test(test_examples),
    };

    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
