/*
 * exshim-lab: one client connection. See lab.h.
 *
 * A connection reads a head, routes it to a virtual directory, checks SSL and authentication
 * the way IIS does (SSL first, then the Windows/Basic providers in the vdir's order), then runs
 * the vdir's handler. Authentication is connection-bound for NTLM and Negotiate: once a
 * handshake succeeds, later requests on the same connection need no Authorization header;
 * Basic is checked on every request. A refused request is answered at once and its body, if
 * any, is dropped as it arrives (or the connection closes when the body is large).
 */
#include "bench/lab/lab.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "auth/b64.h"

enum auth_outcome {
    AUTH_PASS, /* go on with the handler */
    AUTH_DONE, /* a response was sent */
};

/* The body IIS 10 sends with its 401 (our own wording, same shape and size class). */
static const char body_401[] =
    "<!DOCTYPE html PUBLIC \"-//W3C//DTD XHTML 1.0 Strict//EN\" "
    "\"http://www.w3.org/TR/xhtml1/DTD/xhtml1-strict.dtd\">\r\n"
    "<html xmlns=\"http://www.w3.org/1999/xhtml\">\r\n"
    "<head>\r\n"
    "<meta http-equiv=\"Content-Type\" content=\"text/html; charset=iso-8859-1\"/>\r\n"
    "<title>401 - Unauthorized: Access is denied due to invalid credentials.</title>\r\n"
    "<style type=\"text/css\">\r\n"
    "<!--\r\n"
    "body{margin:0;font-size:.7em;font-family:Verdana, Arial, Helvetica, sans-serif;"
    "background:#EEEEEE;}\r\n"
    "fieldset{padding:0 15px 10px 15px;} \r\n"
    "h1{font-size:2.4em;margin:0;color:#FFF;}\r\n"
    "h2{font-size:1.7em;margin:0;color:#CC0000;} \r\n"
    "h3{font-size:1.2em;margin:10px 0 0 0;color:#000000;} \r\n"
    "#header{width:96%;margin:0 0 0 0;padding:6px 2% 6px 2%;font-family:\"trebuchet MS\", "
    "Verdana, sans-serif;color:#FFF;\r\n"
    "background-color:#555555;}\r\n"
    "#content{margin:0 0 0 2%;position:relative;}\r\n"
    ".content-container{background:#FFF;width:96%;margin-top:8px;padding:10px;"
    "position:relative;}\r\n"
    "-->\r\n"
    "</style>\r\n"
    "</head>\r\n"
    "<body>\r\n"
    "<div id=\"header\"><h1>Server Error</h1></div>\r\n"
    "<div id=\"content\">\r\n"
    " <div class=\"content-container\"><fieldset>\r\n"
    "  <h2>401 - Unauthorized: Access is denied due to invalid credentials.</h2>\r\n"
    "  <h3>You do not have permission to view this directory or page using the credentials "
    "that you supplied.</h3>\r\n"
    " </fieldset></div>\r\n"
    "</div>\r\n"
    "</body>\r\n"
    "</html>\r\n";

static const char body_403_4[] =
    "<!DOCTYPE HTML PUBLIC \"-//W3C//DTD HTML 4.01//EN\" "
    "\"http://www.w3.org/TR/html4/strict.dtd\">\r\n"
    "<HTML><HEAD><TITLE>The page must be viewed over a secure channel</TITLE>\r\n"
    "<META HTTP-EQUIV=\"Content-Type\" Content=\"text/html; charset=Windows-1252\">\r\n"
    "</HEAD><BODY><TABLE width=500 border=0 cellspacing=10><TR><TD>\r\n"
    "<h1>The page must be viewed over a secure channel</h1>\r\n"
    "The page you are trying to access is secured with Secure Sockets Layer (SSL).\r\n"
    "<hr>\r\n"
    "<p>Please try the following:</p>\r\n"
    "<ul>\r\n"
    "<li>Type <b>https://</b> at the beginning of the address you are attempting to reach "
    "and press ENTER.</li>\r\n"
    "</ul>\r\n"
    "<h2>HTTP Error 403.4 - Forbidden: SSL is required to view this resource.<br>"
    "Internet Information Services (IIS)</h2>\r\n"
    "</TD></TR></TABLE></BODY></HTML>\r\n";

static const char body_440[] =
    "<html><head><title>Login Timeout</title></head>\r\n"
    "<body><h2>440 Login Timeout</h2>\r\n"
    "<p>Your session has timed out or you have not signed in. Sign in to Outlook Web Access "
    "again.</p></body></html>\r\n";

static const char body_404[] =
    "<!DOCTYPE html PUBLIC \"-//W3C//DTD XHTML 1.0 Strict//EN\" "
    "\"http://www.w3.org/TR/xhtml1/DTD/xhtml1-strict.dtd\">\r\n"
    "<html xmlns=\"http://www.w3.org/1999/xhtml\"><head><title>404 - File or directory not "
    "found.</title></head>\r\n<body><div id=\"header\"><h1>Server Error</h1></div>\r\n"
    "<h2>404 - File or directory not found.</h2>\r\n<h3>The resource you are looking for might "
    "have been removed, had its name changed, or is temporarily unavailable.</h3>\r\n"
    "</body></html>\r\n";

static const char *
scheme_word(enum lab_scheme s)
{
    switch (s) {
    case LAB_SCHEME_NEGOTIATE:
        return "Negotiate";
    case LAB_SCHEME_NTLM:
        return "NTLM";
    case LAB_SCHEME_BASIC:
        return "Basic";
    default:
        return "-";
    }
}

static void read_cb(struct bufferevent *bev, void *arg);
static void write_cb(struct bufferevent *bev, void *arg);
static void event_cb(struct bufferevent *bev, short what, void *arg);
static void process_input(struct lab_conn *c);
static int run_handler(struct lab_conn *c);

/* ---- lifetime --------------------------------------------------------------------------- */

static void
req_reset(struct lab_req *r)
{
    free(r->authorization);
    if (r->body != NULL)
        evbuffer_free(r->body);
    memset(r, 0, sizeof(*r));
}

/* The only place a connection is freed. */
static void
conn_free(struct lab_conn *c)
{
    lab_rpc_detach(c);
    lab_gss_free(c->gss);
    free(c->ntlm);
    free(c->gss_final_token);
    req_reset(&c->req);
    if (c->idle_ev != NULL)
        event_free(c->idle_ev);
    if (c->tick_ev != NULL)
        event_free(c->tick_ev);
    if (c->bev != NULL)
        bufferevent_free(c->bev);
    g_lab.nconns--;
    free(c);
}

int
lab_conn_finish(struct lab_conn *c)
{
    c->st = LAB_ST_CLOSING;
    evtimer_del(c->tick_ev);
    if (evbuffer_get_length(bufferevent_get_output(c->bev)) == 0) {
        conn_free(c);
        return -1;
    }
    return 0;
}

static void
idle_cb(evutil_socket_t fd, short what, void *arg)
{
    struct lab_conn *c = arg;
    (void)fd;
    (void)what;
    lab_log("idle conn=%llu peer=%s state=%d closed after silence", (unsigned long long)c->id,
            c->peer, (int)c->st);
    conn_free(c);
}

static void
tick_cb(evutil_socket_t fd, short what, void *arg)
{
    struct lab_conn *c = arg;
    (void)fd;
    (void)what;
    if (c->st == LAB_ST_RPC_OUT)
        lab_rpc_tick(c);
    else if (c->st == LAB_ST_MAPI_WAIT)
        lab_mapi_tick(c);
}

void
lab_conn_touch(struct lab_conn *c)
{
    unsigned ms = 0;
    if (g_lab.preset.idle_ms > 0)
        ms = g_lab.preset.idle_ms; /* short-idle: every state, like a load balancer */
    else if (c->st == LAB_ST_HEAD || c->st == LAB_ST_BODY || c->st == LAB_ST_DISCARD)
        ms = g_lab.preset.keepalive_ms; /* IIS connectionTimeout: idle or a stalled request */
    if (ms == 0) {
        evtimer_del(c->idle_ev);
        return;
    }
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    evtimer_add(c->idle_ev, &tv);
}

void
lab_conn_accept(int fd, const char *peer, bool tls)
{
    struct lab_conn *c = calloc(1, sizeof(*c));
    int opts = BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS;
    if (c == NULL) {
        evutil_closesocket(fd);
        return;
    }
    g_lab.nconns++;
    c->id = ++g_lab.next_conn_id;
    c->tls = tls;
    snprintf(c->peer, sizeof(c->peer), "%s", peer);
    if (tls) {
        SSL *ssl = SSL_new(g_lab.ssl_ctx);
        if (ssl == NULL) {
            evutil_closesocket(fd);
            g_lab.nconns--;
            free(c);
            return;
        }
        c->bev =
            bufferevent_openssl_socket_new(g_lab.base, fd, ssl, BUFFEREVENT_SSL_ACCEPTING, opts);
        if (c->bev != NULL)
            bufferevent_openssl_set_allow_dirty_shutdown(c->bev, 1);
    } else {
        c->bev = bufferevent_socket_new(g_lab.base, fd, opts);
    }
    c->idle_ev = evtimer_new(g_lab.base, idle_cb, c);
    c->tick_ev = evtimer_new(g_lab.base, tick_cb, c);
    if (c->bev == NULL || c->idle_ev == NULL || c->tick_ev == NULL) {
        if (c->bev == NULL && !tls)
            evutil_closesocket(fd);
        conn_free(c);
        return;
    }
    bufferevent_setcb(c->bev, read_cb, write_cb, event_cb, c);
    bufferevent_setwatermark(c->bev, EV_READ, 0, LAB_MAX_HEAD + 4096);
    bufferevent_enable(c->bev, EV_READ | EV_WRITE);
    c->st = LAB_ST_HEAD;
    lab_conn_touch(c);
}

static void
read_cb(struct bufferevent *bev, void *arg)
{
    struct lab_conn *c = arg;
    (void)bev;
    lab_conn_touch(c);
    process_input(c);
}

static void
write_cb(struct bufferevent *bev, void *arg)
{
    struct lab_conn *c = arg;
    (void)bev;
    lab_conn_touch(c);
    if (c->st == LAB_ST_CLOSING) {
        if (evbuffer_get_length(bufferevent_get_output(c->bev)) == 0)
            conn_free(c);
        else
            bufferevent_setwatermark(c->bev, EV_WRITE, 0, 0);
        return;
    }
    if (c->st == LAB_ST_RPC_OUT)
        lab_rpc_drained(c);
}

static void
event_cb(struct bufferevent *bev, short what, void *arg)
{
    struct lab_conn *c = arg;
    (void)bev;
    if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR | BEV_EVENT_TIMEOUT)) {
        char buf[160] = "";
        if (what & BEV_EVENT_ERROR) {
            unsigned long e = c->tls ? bufferevent_get_openssl_error(c->bev) : 0;
            if (e != 0)
                ERR_error_string_n(e, buf, sizeof(buf));
            else
                snprintf(buf, sizeof(buf), "%s",
                         evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
        }
        /* channels and long polls ending are worth a line; ordinary keep-alive closes are not */
        if (c->st != LAB_ST_HEAD || buf[0] != '\0')
            lab_log("close conn=%llu peer=%s state=%d by=%s%s%s", (unsigned long long)c->id,
                    c->peer, (int)c->st, (what & BEV_EVENT_EOF) ? "client" : "error",
                    buf[0] ? " error=" : "", buf);
        conn_free(c);
    }
}

/* ---- responses -------------------------------------------------------------------------- */

void
lab_log_access(struct lab_conn *c, int status)
{
    const char *q = c->req.vdir ? c->req.vdir->path : "-";
    bool who = c->authed || c->auth_scheme == LAB_SCHEME_BASIC;
    lab_log("access conn=%llu peer=%s method=%s path=%s vdir=%s status=%d user=%s mech=%s",
            (unsigned long long)c->id, c->peer, c->req.method, c->req.path, q, status,
            who ? c->user : "-", who && c->auth_mech ? c->auth_mech : "-");
}

void
lab_headers_auth_tail(struct lab_conn *c, struct evbuffer *out)
{
    if (c->gss_final_token != NULL) {
        evbuffer_add_printf(out, "WWW-Authenticate: Negotiate %s\r\n", c->gss_final_token);
        free(c->gss_final_token);
        c->gss_final_token = NULL;
    }
    if (c->authed && c->auth_scheme != LAB_SCHEME_BASIC)
        evbuffer_add_printf(out, "Persistent-Auth: true\r\n");
    evbuffer_add_printf(out,
                        "X-Powered-By: ASP.NET\r\n"
                        "X-FEServer: %s\r\n"
                        "Date: %s\r\n",
                        g_lab.preset.fe_server, lab_http_date());
}

void
lab_headers_200(struct lab_conn *c, struct evbuffer *out, const char *content_type)
{
    const struct lab_preset *p = &g_lab.preset;
    char rid[37];
    lab_uuid(rid);
    evbuffer_add_printf(out, "Cache-Control: private\r\n");
    if (content_type != NULL)
        evbuffer_add_printf(out, "Content-Type: %s\r\n", content_type);
    evbuffer_add_printf(out,
                        "Server: %s\r\n"
                        "request-id: %s\r\n"
                        "X-CalculatedBETarget: %s\r\n"
                        "X-DiagInfo: %s\r\n"
                        "X-BEServer: %s\r\n"
                        "X-AspNet-Version: 4.0.30319\r\n",
                        p->server, rid, p->be_target, p->fe_server, p->fe_server);
    lab_headers_auth_tail(c, out);
}

void
lab_send_simple(struct lab_conn *c, int status, const char *reason, const char *ctype,
                const char *body, size_t blen)
{
    struct evbuffer *out = bufferevent_get_output(c->bev);
    evbuffer_add_printf(out, "HTTP/1.1 %d %s\r\n", status, reason);
    lab_headers_200(c, out, ctype);
    evbuffer_add_printf(out, "Content-Length: %zu\r\n\r\n", blen);
    if (strcmp(c->req.method, "HEAD") != 0)
        evbuffer_add(out, body, blen);
    lab_log_access(c, status);
}

/* After a response that answered a request before its body was read (401, 403, 440...). */
static int
after_early_response(struct lab_conn *c, bool keep_alive)
{
    if (!keep_alive)
        return lab_conn_finish(c);
    if (c->req.body_kind == H1_BODY_LENGTH && c->req.content_length > 0) {
        if (c->req.content_length > LAB_DISCARD_MAX)
            return lab_conn_finish(c);
        frame_init(&c->body, &(struct h1_head){.body = H1_BODY_LENGTH,
                                               .content_length = c->req.content_length});
        c->st = LAB_ST_DISCARD;
        return 0;
    }
    if (c->req.body_kind == H1_BODY_CHUNKED) {
        frame_init(&c->body, &(struct h1_head){.body = H1_BODY_CHUNKED});
        c->st = LAB_ST_DISCARD;
        return 0;
    }
    c->st = LAB_ST_HEAD;
    req_reset(&c->req);
    lab_conn_touch(c);
    return 0;
}

static void
send_iis_error(struct lab_conn *c, int status, const char *reason, const char *body,
               const char *extra_headers)
{
    struct evbuffer *out = bufferevent_get_output(c->bev);
    size_t blen = strlen(body);
    evbuffer_add_printf(out,
                        "HTTP/1.1 %d %s\r\n"
                        "Content-Type: text/html\r\n"
                        "Server: %s\r\n"
                        "%s"
                        "X-Powered-By: ASP.NET\r\n"
                        "Date: %s\r\n"
                        "Content-Length: %zu\r\n"
                        "\r\n",
                        status, reason, g_lab.preset.server, extra_headers ? extra_headers : "",
                        lab_http_date(), blen);
    if (strcmp(c->req.method, "HEAD") != 0)
        evbuffer_add(out, body, blen);
    lab_log_access(c, status);
}

/* 401 with the vdir's offers, one WWW-Authenticate line each, in its order. */
static void
send_401_offers(struct lab_conn *c)
{
    const struct lab_vdir *v = c->req.vdir;
    char hdr[512];
    size_t o = 0;
    hdr[0] = '\0';
    for (size_t i = 0; i < v->noffer && o < sizeof(hdr); i++) {
        if (v->offer[i] == LAB_SCHEME_BASIC)
            o += (size_t)snprintf(hdr + o, sizeof(hdr) - o,
                                  "WWW-Authenticate: Basic realm=\"%s\"\r\n", v->realm);
        else
            o += (size_t)snprintf(hdr + o, sizeof(hdr) - o, "WWW-Authenticate: %s\r\n",
                                  scheme_word(v->offer[i]));
    }
    c->authed = false;
    c->auth_scheme = LAB_SCHEME_NONE;
    send_iis_error(c, 401, "Unauthorized", body_401, hdr);
}

static void
send_401_token(struct lab_conn *c, const char *word, const char *b64)
{
    size_t n = strlen(word) + strlen(b64) + 32;
    char *hdr = malloc(n);
    if (hdr == NULL) {
        send_401_offers(c);
        return;
    }
    snprintf(hdr, n, "WWW-Authenticate: %s %s\r\n", word, b64);
    send_iis_error(c, 401, "Unauthorized", body_401, hdr);
    free(hdr);
}

/* ---- authentication --------------------------------------------------------------------- */

static void
log_auth(struct lab_conn *c, enum lab_scheme scheme, const char *mech, const char *user,
         const char *verdict, const char *cbt, const char *mic)
{
    lab_log("auth conn=%llu peer=%s vdir=%s scheme=%s mech=%s user=%s verdict=%s cbt=%s mic=%s",
            (unsigned long long)c->id, c->peer, c->req.vdir->path, scheme_word(scheme), mech,
            user && *user ? user : "-", verdict, cbt, mic);
}

static const char *
cbt_text(enum lab_ntlm_cbt s)
{
    return s == LAB_NTLM_CBT_MATCH ? "match" : s == LAB_NTLM_CBT_MISMATCH ? "mismatch" : "absent";
}

static const char *
mic_text(enum lab_ntlm_mic m)
{
    return m == LAB_NTLM_MIC_OK ? "ok" : m == LAB_NTLM_MIC_BAD ? "bad" : "absent";
}

static bool
vdir_offers(const struct lab_vdir *v, enum lab_scheme s)
{
    for (size_t i = 0; i < v->noffer; i++)
        if (v->offer[i] == s)
            return true;
    return false;
}

static void
reset_handshake(struct lab_conn *c)
{
    free(c->ntlm);
    c->ntlm = NULL;
    lab_gss_free(c->gss);
    c->gss = NULL;
}

static struct lab_ntlm_policy
policy_for(struct lab_conn *c)
{
    struct lab_ntlm_policy pol = {
        .allow_v1 = g_lab.preset.ntlm_v1,
        .epa = c->req.vdir->epa,
        .cert_hash = c->tls ? g_lab.cert_hash : NULL,
        .cert_hash_len = c->tls ? g_lab.cert_hash_len : 0,
    };
    return pol;
}

static char *
b64_of(const uint8_t *buf, size_t len)
{
    size_t cap = authb64_encoded_len(len) + 1, n = 0;
    char *s = malloc(cap);
    if (s != NULL && authb64_encode(buf, len, s, cap, &n) != 0) {
        free(s);
        s = NULL;
    }
    return s;
}

/* Raw NTLMSSP, under either scheme word. */
static int
auth_ntlm(struct lab_conn *c, enum lab_scheme word, const uint8_t *tok, size_t len)
{
    uint32_t type = len >= 12 ? (uint32_t)tok[8] | ((uint32_t)tok[9] << 8) : 0;
    if (type == 1) {
        uint8_t sc[8];
        const char *why = NULL;
        const struct lab_preset *p = &g_lab.preset;
        struct lab_ntlm_names names = {p->nb_domain, p->nb_computer, p->dns_domain,
                                       p->dns_computer};
        reset_handshake(c);
        c->ntlm = calloc(1, sizeof(*c->ntlm));
        if (c->ntlm == NULL) {
            send_401_offers(c);
            return AUTH_DONE;
        }
        lab_random(sc, sizeof(sc));
        /* FILETIME: 100 ns units since 1601, from the wall clock (clients check the skew) */
        uint64_t ft = ((uint64_t)time(NULL) + 11644473600ULL) * 10000000ULL;
        if (lab_ntlm_challenge(c->ntlm, tok, len, &names, sc, ft, &why) != 0) {
            log_auth(c, word, "ntlm", NULL, "fail:bad-negotiate", "absent", "absent");
            reset_handshake(c);
            send_401_offers(c);
            return AUTH_DONE;
        }
        char *b = b64_of(c->ntlm->chal, c->ntlm->chal_len);
        c->ntlm_word = word;
        if (b == NULL) {
            send_401_offers(c);
            return AUTH_DONE;
        }
        send_401_token(c, scheme_word(word), b);
        free(b);
        return AUTH_DONE;
    }
    if (type == 3) {
        struct lab_ntlm_result res;
        struct lab_ntlm_policy pol = policy_for(c);
        char who[2 * LAB_NTLM_NAME_MAX + 2], verdict[96];
        if (c->ntlm == NULL) {
            log_auth(c, word, "ntlm", NULL, "fail:no-challenge", "absent", "absent");
            send_401_offers(c);
            return AUTH_DONE;
        }
        lab_ntlm_verify(c->ntlm, tok, len, &g_lab.users, &pol, &res);
        snprintf(who, sizeof(who), "%s\\%s", res.info.domain, res.info.user);
        snprintf(verdict, sizeof(verdict), "%s%s", res.ok ? "" : "fail:", res.reason);
        log_auth(c, word, "ntlm", who, verdict, cbt_text(res.info.cbt_state), mic_text(res.mic));
        reset_handshake(c);
        if (!res.ok) {
            send_401_offers(c);
            return AUTH_DONE;
        }
        c->authed = true;
        c->auth_scheme = word;
        c->auth_mech = "ntlm";
        snprintf(c->user, sizeof(c->user), "%s", who);
        return AUTH_PASS;
    }
    log_auth(c, word, "ntlm", NULL, "fail:unexpected-message", "absent", "absent");
    reset_handshake(c);
    send_401_offers(c);
    return AUTH_DONE;
}

/* Finds an NTLM AUTHENTICATE inside a SPNEGO token (its responseToken), for policy checks. */
static const uint8_t *
find_inner_auth(const uint8_t *tok, size_t len, size_t *inner_len)
{
    for (size_t i = 0; i + 12 <= len; i++) {
        if (memcmp(tok + i, "NTLMSSP\0\3\0\0\0", 12) == 0) {
            *inner_len = len - i;
            return tok + i;
        }
    }
    return NULL;
}

static int
auth_gss(struct lab_conn *c, const uint8_t *tok, size_t len)
{
    char user[2 * LAB_NTLM_NAME_MAX + 8] = "", why[160] = "", verdict[200];
    const char *mech = "kerberos", *cbt = "absent", *mic = "absent";
    char *out = NULL;
    size_t ilen = 0;
    const uint8_t *inner = find_inner_auth(tok, len, &ilen);

    if (!g_lab.gss_ready) {
        log_auth(c, LAB_SCHEME_NEGOTIATE, "unknown", NULL, "fail:no-gss-acceptor", cbt, mic);
        reset_handshake(c);
        send_401_offers(c);
        return AUTH_DONE;
    }
    if (inner != NULL) {
        /* SPNEGO carrying NTLM: gss-ntlmssp checks the password and MIC; the lab's policy
         * (LmCompatibilityLevel, Extended Protection) is applied from its own reading. */
        struct lab_ntlm_peek pk;
        struct lab_ntlm_policy pol = policy_for(c);
        const char *w = NULL;
        mech = "ntlm";
        if (lab_ntlm_peek_auth(inner, ilen, &pol, &pk, &w) == 0) {
            cbt = cbt_text(pk.cbt_state);
            mic = pk.mic_flagged ? "ok" : "absent";
            snprintf(user, sizeof(user), "%s\\%s", pk.domain, pk.user);
            const char *deny = NULL;
            if (!pk.v2 && !pol.allow_v1)
                deny = "fail:ntlmv1-refused";
            else if (pol.epa == LAB_EPA_REQUIRE && pk.cbt_state != LAB_NTLM_CBT_MATCH)
                deny = pk.cbt_state == LAB_NTLM_CBT_ABSENT ? "fail:epa-cbt-absent"
                                                           : "fail:epa-cbt-mismatch";
            else if (pol.epa == LAB_EPA_ALLOW && pk.cbt_state == LAB_NTLM_CBT_MISMATCH)
                deny = "fail:epa-cbt-mismatch";
            if (deny != NULL) {
                log_auth(c, LAB_SCHEME_NEGOTIATE, mech, user, deny, cbt, "absent");
                reset_handshake(c);
                send_401_offers(c);
                return AUTH_DONE;
            }
        }
    }
    if (c->gss == NULL) {
        free(c->ntlm);
        c->ntlm = NULL;
        c->gss = lab_gss_new();
        if (c->gss == NULL) {
            send_401_offers(c);
            return AUTH_DONE;
        }
    }
    const uint8_t *ch = c->req.vdir->epa != LAB_EPA_NONE && c->tls ? g_lab.cert_hash : NULL;
    size_t chl = ch ? g_lab.cert_hash_len : 0;
    const char *m2 = NULL;
    char gssuser[192] = "";
    enum lab_gss_status st = lab_gss_step(c->gss, tok, len, ch, chl, &out, gssuser, sizeof(gssuser),
                                          &m2, why, sizeof(why));
    if (m2 != NULL)
        mech = m2;
    if (st == LAB_GSS_CONTINUE) {
        if (out == NULL) {
            log_auth(c, LAB_SCHEME_NEGOTIATE, mech, user, "fail:no-output-token", cbt, mic);
            reset_handshake(c);
            send_401_offers(c);
            return AUTH_DONE;
        }
        send_401_token(c, "Negotiate", out);
        free(out);
        return AUTH_DONE;
    }
    if (st == LAB_GSS_FAIL) {
        snprintf(verdict, sizeof(verdict), "fail:%s", why[0] ? why : "gss");
        if (strstr(why, "hannel_binding") != NULL)
            cbt = "mismatch"; /* GSS_S_BAD_BINDINGS: the Kerberos authenticator's binding */
        log_auth(c, LAB_SCHEME_NEGOTIATE, mech, user, verdict, cbt,
                 strcmp(mech, "ntlm") == 0 && inner != NULL && strcmp(mic, "ok") == 0 ? "bad"
                                                                                      : mic);
        free(out);
        reset_handshake(c);
        send_401_offers(c);
        return AUTH_DONE;
    }
    if (gssuser[0])
        snprintf(user, sizeof(user), "%s", gssuser);
    /* A mismatch already failed above (GSS_S_BAD_BINDINGS); MIT accepts an authenticator
     * without bindings, so the log tells the two successes apart. */
    if (ch != NULL && strcmp(mech, "kerberos") == 0)
        cbt = lab_gss_channel_bound(c->gss) ? "match" : "absent";
    log_auth(c, LAB_SCHEME_NEGOTIATE, mech, user, "ok", cbt, mic);
    reset_handshake(c);
    c->authed = true;
    c->auth_scheme = LAB_SCHEME_NEGOTIATE;
    c->auth_mech = mech;
    snprintf(c->user, sizeof(c->user), "%s", user);
    free(c->gss_final_token);
    c->gss_final_token = out;
    return AUTH_PASS;
}

static int
authenticate(struct lab_conn *c)
{
    const struct lab_vdir *v = c->req.vdir;
    const char *a = c->req.authorization;
    bool windows = vdir_offers(v, LAB_SCHEME_NTLM) || vdir_offers(v, LAB_SCHEME_NEGOTIATE);

    if (v->noffer == 0)
        return AUTH_PASS;
    if (a == NULL) {
        if (c->authed && c->auth_scheme != LAB_SCHEME_BASIC && windows &&
            vdir_offers(v,
                        c->auth_scheme == LAB_SCHEME_NTLM ? LAB_SCHEME_NTLM : LAB_SCHEME_NEGOTIATE))
            return AUTH_PASS;
        /* an unfinished handshake is abandoned by a request without credentials */
        reset_handshake(c);
        send_401_offers(c);
        return AUTH_DONE;
    }
    size_t wl = strcspn(a, " \t");
    const char *t = a + wl;
    while (*t == ' ' || *t == '\t')
        t++;
    size_t tl = strlen(t);
    while (tl > 0 && (t[tl - 1] == ' ' || t[tl - 1] == '\t'))
        tl--;
    enum lab_scheme s = LAB_SCHEME_NONE;
    if (wl == 9 && strncasecmp(a, "Negotiate", 9) == 0)
        s = LAB_SCHEME_NEGOTIATE;
    else if (wl == 4 && strncasecmp(a, "NTLM", 4) == 0)
        s = LAB_SCHEME_NTLM;
    else if (wl == 5 && strncasecmp(a, "Basic", 5) == 0)
        s = LAB_SCHEME_BASIC;

    /* new credentials on an authenticated connection start over, as IIS does */
    c->authed = false;
    if (s == LAB_SCHEME_NONE || !vdir_offers(v, s)) {
        char sw[24];
        snprintf(sw, sizeof(sw), "%.*s", (int)(wl < 20 ? wl : 20), a);
        lab_log("auth conn=%llu peer=%s vdir=%s scheme=%s mech=- user=- "
                "verdict=fail:scheme-not-offered cbt=absent mic=absent",
                (unsigned long long)c->id, c->peer, v->path, sw);
        reset_handshake(c);
        send_401_offers(c);
        return AUTH_DONE;
    }
    size_t cap = authb64_decoded_cap(tl);
    uint8_t *tok = cap > 0 ? malloc(cap) : NULL;
    size_t len = 0;
    if (tok == NULL || authb64_decode(t, tl, tok, cap, &len) != 0) {
        free(tok);
        log_auth(c, s, s == LAB_SCHEME_BASIC ? "basic" : "unknown", NULL, "fail:bad-base64",
                 "absent", "absent");
        reset_handshake(c);
        send_401_offers(c);
        return AUTH_DONE;
    }
    int r;
    if (s == LAB_SCHEME_BASIC) {
        char who[2 * LAB_NTLM_NAME_MAX + 8] = "";
        reset_handshake(c);
        if (lab_users_check_basic(&g_lab.users, (const char *)tok, len, who, sizeof(who))) {
            log_auth(c, s, "basic", who, "ok", "absent", "absent");
            c->auth_scheme = LAB_SCHEME_BASIC;
            c->auth_mech = "basic";
            snprintf(c->user, sizeof(c->user), "%s", who);
            r = AUTH_PASS;
        } else {
            const char *colon = memchr(tok, ':', len);
            snprintf(who, sizeof(who), "%.*s", colon ? (int)(colon - (const char *)tok) : 0,
                     (const char *)tok);
            log_auth(c, s, "basic", who, "fail:bad-credentials", "absent", "absent");
            send_401_offers(c);
            r = AUTH_DONE;
        }
        memset(tok, 0, len);
    } else if (len >= 8 && memcmp(tok, "NTLMSSP", 8) == 0) {
        r = auth_ntlm(c, s, tok, len);
    } else if (s == LAB_SCHEME_NTLM) {
        log_auth(c, s, "ntlm", NULL, "fail:not-ntlmssp", "absent", "absent");
        reset_handshake(c);
        send_401_offers(c);
        r = AUTH_DONE;
    } else {
        r = auth_gss(c, tok, len);
    }
    free(tok);
    return r;
}

/* ---- handlers ---------------------------------------------------------------------------- */

static void
static_page(struct lab_conn *c)
{
    const struct lab_vdir *v = c->req.vdir;
    const char *m = c->req.method;
    char body[2048];
    int n;
    switch (v ? v->handler : LAB_H_STATIC) {
    case LAB_H_AUTODISCOVER:
        if (strcmp(m, "POST") == 0)
            n = snprintf(body, sizeof(body),
                         "<?xml version=\"1.0\" encoding=\"utf-8\"?>\r\n"
                         "<Autodiscover xmlns=\"http://schemas.microsoft.com/exchange/"
                         "autodiscover/responseschema/2006\">\r\n"
                         "<Response xmlns=\"http://schemas.microsoft.com/exchange/autodiscover/"
                         "outlook/responseschema/2006a\">\r\n"
                         "<User><DisplayName>%s</DisplayName></User>\r\n"
                         "<Account><AccountType>email</AccountType><Action>settings</Action>\r\n"
                         "<Protocol><Type>mapiHttp</Type><Server>%s</Server></Protocol>\r\n"
                         "</Account></Response></Autodiscover>\r\n",
                         c->user, g_lab.preset.dns_computer);
        else
            n = snprintf(body, sizeof(body),
                         "<?xml version=\"1.0\" encoding=\"utf-8\"?>\r\n"
                         "<Autodiscover xmlns=\"http://schemas.microsoft.com/exchange/"
                         "autodiscover/responseschema/2006\">\r\n"
                         "<Response><Error Time=\"00:00:00.0000000\" Id=\"1\">"
                         "<ErrorCode>600</ErrorCode><Message>Invalid Request</Message>"
                         "<DebugData /></Error></Response></Autodiscover>\r\n");
        lab_send_simple(c, 200, "OK", "text/xml; charset=utf-8", body, (size_t)n);
        return;
    case LAB_H_EWS:
        n = snprintf(body, sizeof(body),
                     "<?xml version=\"1.0\" encoding=\"utf-8\"?>\r\n"
                     "<s:Envelope xmlns:s=\"http://schemas.xmlsoap.org/soap/envelope/\">"
                     "<s:Header><h:ServerVersionInfo MajorVersion=\"15\" MinorVersion=\"1\" "
                     "MajorBuildNumber=\"2507\" MinorBuildNumber=\"6\" xmlns:h=\"http://"
                     "schemas.microsoft.com/exchange/services/2006/types\"/></s:Header>"
                     "<s:Body/></s:Envelope>\r\n");
        lab_send_simple(c, 200, "OK", "text/xml; charset=utf-8", body, (size_t)n);
        return;
    case LAB_H_EAS:
        if (strcmp(m, "OPTIONS") == 0) {
            struct evbuffer *out = bufferevent_get_output(c->bev);
            evbuffer_add_printf(out, "HTTP/1.1 200 OK\r\n");
            lab_headers_200(c, out, "application/vnd.ms-sync.wbxml");
            evbuffer_add_printf(out, "MS-Server-ActiveSync: 15.1\r\n"
                                     "MS-ASProtocolVersions: 2.0,2.1,2.5,12.0,12.1,14.0,14.1,16.0,"
                                     "16.1\r\n"
                                     "MS-ASProtocolCommands: Sync,SendMail,SmartForward,SmartReply,"
                                     "GetAttachment,FolderSync,Ping,Provision,Settings\r\n"
                                     "Content-Length: 0\r\n\r\n");
            lab_log_access(c, 200);
            return;
        }
        n = snprintf(body, sizeof(body), "<html><body>ActiveSync endpoint</body></html>\r\n");
        lab_send_simple(c, 200, "OK", "text/html", body, (size_t)n);
        return;
    case LAB_H_MAPI_EMSMDB:
    case LAB_H_MAPI_NSPI:
        n = snprintf(body, sizeof(body),
                     "<html><head><title>Exchange MAPI/HTTP Connectivity Endpoint</title>"
                     "</head><body><p>Exchange MAPI/HTTP Connectivity Endpoint<br><br>"
                     "Version: 15.1.2507.6<br>Vdir Path: %s<br>User: %s<br></p></body></html>"
                     "\r\n",
                     v->path, c->user);
        lab_send_simple(c, 200, "OK", "text/html", body, (size_t)n);
        return;
    case LAB_H_RPC:
        lab_send_simple(c, 200, "OK", "text/html", "", 0);
        return;
    default:
        n = snprintf(body, sizeof(body),
                     "<html><head><title>%s</title></head><body>%s %s as %s</body></html>\r\n",
                     g_lab.preset.name, c->req.method, c->req.path,
                     c->user[0] ? c->user : "anonymous");
        lab_send_simple(c, 200, "OK", "text/html; charset=utf-8", body, (size_t)n);
        return;
    }
}

/* The body is complete (or there was none): run the vdir's handler. */
static int
run_handler(struct lab_conn *c)
{
    const struct lab_vdir *v = c->req.vdir;
    bool ka = c->req.keep_alive;
    int r = 0;
    c->st = LAB_ST_HEAD;
    if (v->handler == LAB_H_RPC &&
        (strcmp(c->req.method, "RPC_IN_DATA") == 0 || strcmp(c->req.method, "RPC_OUT_DATA") == 0)) {
        r = lab_rpc_body_done(c);
        if (r < 0)
            return -1;
        if (c->st == LAB_ST_RPC_OUT || c->st == LAB_ST_CLOSING)
            return 0;
    } else if ((v->handler == LAB_H_MAPI_EMSMDB || v->handler == LAB_H_MAPI_NSPI) &&
               strcmp(c->req.method, "POST") == 0) {
        if (lab_mapi_request(c) < 0)
            return -1;
        if (c->st == LAB_ST_MAPI_WAIT || c->st == LAB_ST_CLOSING)
            return 0;
    } else {
        static_page(c);
    }
    req_reset(&c->req);
    if (!ka)
        return lab_conn_finish(c);
    c->st = LAB_ST_HEAD;
    lab_conn_touch(c);
    return 0;
}

static const struct lab_vdir *
find_vdir(const char *path)
{
    const struct lab_vdir *best = NULL;
    size_t bl = 0;
    for (size_t i = 0; i < g_lab.preset.nvdirs; i++) {
        const struct lab_vdir *v = &g_lab.preset.vdirs[i];
        size_t l = strlen(v->path);
        if (strncasecmp(path, v->path, l) != 0)
            continue;
        if (path[l] != '\0' && path[l] != '/' && path[l] != '?' &&
            (l == 0 || v->path[l - 1] != '/'))
            continue;
        if (l >= bl) {
            best = v;
            bl = l;
        }
    }
    return best;
}

static bool
has_cookie(const char *cookies, const char *name)
{
    size_t n = strlen(name);
    for (const char *p = cookies; (p = strstr(p, name)) != NULL; p += n)
        if ((p == cookies || p[-1] == ' ' || p[-1] == ';') && p[n] == '=')
            return true;
    return false;
}

/* Exchange's per-vdir health page: GET /<vdir>/healthcheck.htm, anonymous, "200 OK<br/>FQDN".
 * The vdir is the first path segment ("/mapi/healthcheck.htm" is the MAPI vdirs' page); it
 * must start some configured vdir. With --health-dir, a file named after that segment (lower
 * case) turns the page into HTTP.sys's 503, as when the vdir's application pool is stopped.
 * Returns false when the request is not a health check. */
static bool
healthcheck(struct lab_conn *c)
{
    const char *p = c->req.path, *slash = strchr(p + 1, '/');
    char seg[64], file[1024];
    size_t n;
    if (slash == NULL || strcasecmp(slash, "/healthcheck.htm") != 0 ||
        (strcmp(c->req.method, "GET") != 0 && strcmp(c->req.method, "HEAD") != 0))
        return false;
    n = (size_t)(slash - p);
    if (n >= sizeof(seg))
        return false;
    for (size_t i = 0; i < n; i++)
        seg[i] = (char)(p[i] >= 'A' && p[i] <= 'Z' ? p[i] - 'A' + 'a' : p[i]);
    seg[n] = '\0';
    const struct lab_vdir *v = NULL;
    for (size_t i = 0; i < g_lab.preset.nvdirs && v == NULL; i++) {
        const struct lab_vdir *x = &g_lab.preset.vdirs[i];
        if (strncasecmp(x->path, seg, n) == 0 && (x->path[n] == '\0' || x->path[n] == '/'))
            v = x;
    }
    if (v == NULL)
        return false;
    c->req.vdir = v;
    if (v->require_ssl && !c->tls) {
        send_iis_error(c, 403, "Forbidden", body_403_4, NULL);
        return true;
    }
    snprintf(file, sizeof(file), "%s/%s", g_lab.health_dir ? g_lab.health_dir : "", seg + 1);
    if (g_lab.health_dir != NULL && access(file, F_OK) == 0) {
        static const char b503[] =
            "<!DOCTYPE HTML PUBLIC \"-//W3C//DTD HTML 4.01//EN\"\"http://www.w3.org/TR/"
            "html4/strict.dtd\">\r\n<HTML><HEAD><TITLE>Service Unavailable</TITLE>\r\n"
            "<META HTTP-EQUIV=\"Content-Type\" Content=\"text/html; charset=us-ascii\"></HEAD>"
            "\r\n<BODY><h2>Service Unavailable</h2>\r\n<hr><p>HTTP Error 503. The service is "
            "unavailable.</p>\r\n</BODY></HTML>\r\n";
        struct evbuffer *out = bufferevent_get_output(c->bev);
        evbuffer_add_printf(out,
                            "HTTP/1.1 503 Service Unavailable\r\n"
                            "Content-Type: text/html; charset=us-ascii\r\n"
                            "Server: Microsoft-HTTPAPI/2.0\r\n"
                            "Date: %s\r\n"
                            "Content-Length: %zu\r\n\r\n",
                            lab_http_date(), sizeof(b503) - 1);
        if (strcmp(c->req.method, "HEAD") != 0)
            evbuffer_add(out, b503, sizeof(b503) - 1);
        lab_log_access(c, 503);
        return true;
    }
    char body[192];
    int bl = snprintf(body, sizeof(body), "200 OK<br/>%s", g_lab.preset.dns_computer);
    struct evbuffer *out = bufferevent_get_output(c->bev);
    evbuffer_add_printf(out,
                        "HTTP/1.1 200 OK\r\n"
                        "Cache-Control: private\r\n"
                        "Content-Type: text/html\r\n"
                        "Server: %s\r\n"
                        "X-Powered-By: ASP.NET\r\n"
                        "X-FEServer: %s\r\n"
                        "Date: %s\r\n"
                        "Content-Length: %d\r\n\r\n",
                        g_lab.preset.server, g_lab.preset.fe_server, lab_http_date(), bl);
    if (strcmp(c->req.method, "HEAD") != 0)
        evbuffer_add(out, body, (size_t)bl);
    lab_log_access(c, 200);
    return true;
}

/* The head has been read and copied into c->req. */
static int
dispatch(struct lab_conn *c)
{
    bool ka = c->req.keep_alive;
    if (healthcheck(c))
        return after_early_response(c, ka);
    const struct lab_vdir *v = find_vdir(c->req.path);
    c->req.vdir = v;
    if (v == NULL) {
        send_iis_error(c, 404, "Not Found", body_404, NULL);
        return after_early_response(c, ka);
    }
    if (v->require_ssl && !c->tls) {
        send_iis_error(c, 403, "Forbidden", body_403_4, NULL);
        return after_early_response(c, ka);
    }
    if (authenticate(c) == AUTH_DONE)
        return after_early_response(c, ka);
    if (v->forms && !has_cookie(c->req.cookie, "cadata")) {
        send_iis_error(c, 440, "Login Timeout", body_440, NULL);
        return after_early_response(c, ka);
    }
    if (v->handler == LAB_H_RPC &&
        (strcmp(c->req.method, "RPC_IN_DATA") == 0 || strcmp(c->req.method, "RPC_OUT_DATA") == 0))
        return lab_rpc_begin(c); /* decides itself how the body is read */
    return lab_conn_read_body(c);
}

void
lab_conn_continue(struct lab_conn *c)
{
    if (c->req.expect_continue && c->req.body_kind != H1_BODY_NONE) {
        evbuffer_add_printf(bufferevent_get_output(c->bev), "HTTP/1.1 100 Continue\r\n\r\n");
        c->req.expect_continue = false;
    }
}

int
lab_conn_read_body(struct lab_conn *c)
{
    if (c->req.body_kind == H1_BODY_NONE ||
        (c->req.body_kind == H1_BODY_LENGTH && c->req.content_length == 0))
        return run_handler(c);
    if (c->req.body_kind == H1_BODY_LENGTH && c->req.content_length > LAB_MAX_BODY) {
        send_iis_error(c, 413, "Request Entity Too Large", body_404, NULL);
        return lab_conn_finish(c);
    }
    struct h1_head hh = {.body = c->req.body_kind, .content_length = c->req.content_length};
    frame_init(&c->body, &hh);
    c->req.body = evbuffer_new();
    if (c->req.body == NULL)
        return lab_conn_finish(c);
    c->st = LAB_ST_BODY;
    lab_conn_continue(c);
    return 0;
}

/* HTTP.sys answers malformed requests itself, before IIS sees them. */
static void
send_httpsys_400(struct lab_conn *c, const char *title)
{
    struct evbuffer *out = bufferevent_get_output(c->bev);
    char body[512];
    int n = snprintf(body, sizeof(body),
                     "<!DOCTYPE HTML PUBLIC \"-//W3C//DTD HTML 4.01//EN\"\"http://www.w3.org/TR/"
                     "html4/strict.dtd\">\r\n<HTML><HEAD><TITLE>%s</TITLE>\r\n"
                     "<META HTTP-EQUIV=\"Content-Type\" Content=\"text/html; charset=us-ascii\">"
                     "</HEAD>\r\n<BODY><h2>%s</h2>\r\n<hr><p>HTTP Error 400. The request is "
                     "badly formed.</p>\r\n</BODY></HTML>\r\n",
                     title, title);
    evbuffer_add_printf(out,
                        "HTTP/1.1 400 Bad Request\r\n"
                        "Content-Type: text/html; charset=us-ascii\r\n"
                        "Server: Microsoft-HTTPAPI/2.0\r\n"
                        "Date: %s\r\n"
                        "Connection: close\r\n"
                        "Content-Length: %d\r\n\r\n",
                        lab_http_date(), n);
    evbuffer_add(out, body, (size_t)n);
    lab_log("access conn=%llu peer=%s method=- path=- vdir=- status=400 user=-",
            (unsigned long long)c->id, c->peer);
}

static void
copy_slice(char *dst, size_t cap, struct h1_slice s)
{
    size_t n = s.len < cap - 1 ? s.len : cap - 1;
    memcpy(dst, s.p, n);
    dst[n] = '\0';
}

/* Returns 1 when a request was taken (loop on), 0 to wait for bytes, -1 when c is gone. */
static int
on_head(struct lab_conn *c)
{
    struct evbuffer *in = bufferevent_get_input(c->bev);
    size_t avail = evbuffer_get_length(in);
    /* stray CRLFs between requests are ignored (RFC 9112 section 2.2) */
    while (avail > 0) {
        unsigned char ch;
        evbuffer_copyout(in, &ch, 1);
        if (ch != '\r' && ch != '\n')
            break;
        evbuffer_drain(in, 1);
        avail--;
    }
    if (avail == 0)
        return 0;
    size_t look = avail < LAB_MAX_HEAD ? avail : LAB_MAX_HEAD;
    const char *buf = (const char *)evbuffer_pullup(in, (ev_ssize_t)look);
    size_t end = h1_head_end(buf, look);
    if (end == 0) {
        if (avail >= LAB_MAX_HEAD) {
            send_httpsys_400(c, "Bad Request - Header Field Too Long");
            return lab_conn_finish(c) < 0 ? -1 : 0;
        }
        return 0;
    }
    struct h1_head h;
    struct h1_header hdrs[LAB_MAX_HEADERS];
    int status = 0;
    const char *why = NULL;
    if (h1_parse_request(buf, end, &h, hdrs, LAB_MAX_HEADERS, &status, &why) != H1_OK) {
        send_httpsys_400(c, "Bad Request");
        lab_log("badreq conn=%llu peer=%s status=%d why=%s", (unsigned long long)c->id, c->peer,
                status, why ? why : "-");
        evbuffer_drain(in, end);
        return lab_conn_finish(c) < 0 ? -1 : 0;
    }
    struct lab_req *r = &c->req;
    req_reset(r);
    copy_slice(r->method, sizeof(r->method), h.method);
    struct h1_slice tgt = h.target;
    const char *q = memchr(tgt.p, '?', tgt.len);
    struct h1_slice path = {tgt.p, q ? (size_t)(q - tgt.p) : tgt.len};
    copy_slice(r->path, sizeof(r->path), path);
    if (q != NULL)
        copy_slice(r->query, sizeof(r->query),
                   (struct h1_slice){q + 1, tgt.len - (size_t)(q + 1 - tgt.p)});
    r->version_minor = h.version_minor;
    r->keep_alive = h.keep_alive;
    r->body_kind = h.body;
    r->content_length = h.content_length;
    for (size_t i = 0; i < h.nheaders; i++) {
        const struct h1_header *x = &h.headers[i];
        if (h1_slice_eq(x->name, "Authorization")) {
            free(r->authorization);
            r->authorization = strndup(x->value.p, x->value.len);
        } else if (h1_slice_eq(x->name, "X-RequestType")) {
            copy_slice(r->request_type, sizeof(r->request_type), x->value);
        } else if (h1_slice_eq(x->name, "X-RequestId")) {
            copy_slice(r->request_id, sizeof(r->request_id), x->value);
        } else if (h1_slice_eq(x->name, "X-ClientInfo")) {
            copy_slice(r->client_info, sizeof(r->client_info), x->value);
        } else if (h1_slice_eq(x->name, "Cookie")) {
            copy_slice(r->cookie, sizeof(r->cookie), x->value);
        }
    }
    r->expect_continue = h.expect_continue;
    evbuffer_drain(in, end);
    if (dispatch(c) < 0)
        return -1;
    return 1;
}

/* LAB_ST_BODY and LAB_ST_DISCARD. Returns 1 to loop on, 0 to wait, -1 when c is gone. */
static int
feed_body(struct lab_conn *c, bool keep)
{
    struct evbuffer *in = bufferevent_get_input(c->bev);
    while (evbuffer_get_length(in) > 0 && !c->body.done) {
        const char *why = NULL;
        ssize_t n = frame_take(&c->body, in, 0, evbuffer_get_length(in), &why);
        if (n == 0)
            break; /* a chunk line still on its way */
        if (n < 0) {
            send_httpsys_400(c, "Bad Request");
            return lab_conn_finish(c) < 0 ? -1 : 0;
        }
        if (keep && c->req.body_kind == H1_BODY_LENGTH)
            evbuffer_remove_buffer(in, c->req.body, (size_t)n);
        else
            evbuffer_drain(in, (size_t)n);
    }
    if (!c->body.done)
        return 0;
    if (keep)
        return run_handler(c) < 0 ? -1 : 1;
    bool ka = c->req.keep_alive;
    req_reset(&c->req);
    if (!ka)
        return lab_conn_finish(c) < 0 ? -1 : 0;
    c->st = LAB_ST_HEAD;
    lab_conn_touch(c);
    return 1;
}

static void
process_input(struct lab_conn *c)
{
    struct evbuffer *in = bufferevent_get_input(c->bev);
    for (;;) {
        int r;
        switch (c->st) {
        case LAB_ST_HEAD:
            r = on_head(c);
            break;
        case LAB_ST_BODY:
            r = feed_body(c, true);
            break;
        case LAB_ST_DISCARD:
            r = feed_body(c, false);
            break;
        case LAB_ST_RPC_IN:
        case LAB_ST_RPC_OUT:
            lab_rpc_input(c);
            return;
        case LAB_ST_MAPI_WAIT:
            return; /* a pipelined request waits until the long poll ends */
        case LAB_ST_CLOSING:
        default:
            evbuffer_drain(in, evbuffer_get_length(in));
            return;
        }
        if (r <= 0)
            return;
    }
}

void
lab_conn_resume(struct lab_conn *c)
{
    c->st = LAB_ST_HEAD;
    req_reset(&c->req);
    lab_conn_touch(c);
    if (evbuffer_get_length(bufferevent_get_input(c->bev)) > 0)
        process_input(c);
}
