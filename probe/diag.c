/*
 * exshim-probe: observed facts -> findings (F-number, plain words, fix). See diag.h.
 *
 * The snippets are exshim route/listener/backend blocks as conf/exshim.conf spells them, with
 * the backend called "cas"; where exshim cannot fix a failure the fix names the server setting.
 */
#include "probe/diag.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static const struct pdiag_vdir_info vdirs[PDIAG_NVDIR] = {
    [PDIAG_RPC] = {"rpc", "/rpc/rpcproxy.dll", "/rpc", true, true},
    [PDIAG_MAPI_EMSMDB] = {"mapi", "/mapi/emsmdb/", "/mapi", true, true},
    [PDIAG_MAPI_NSPI] = {"nspi", "/mapi/nspi/", "/mapi", true, true},
    [PDIAG_EWS] = {"ews", "/ews/exchange.asmx", "/ews", true, false},
    [PDIAG_AUTODISCOVER] = {"autodiscover", "/autodiscover/autodiscover.xml", "/autodiscover", true,
                            false},
    [PDIAG_OAB] = {"oab", "/oab/", "/oab", true, false},
    [PDIAG_OWA] = {"owa", "/owa/", "/owa", true, false},
    [PDIAG_EAS] = {"activesync", "/Microsoft-Server-ActiveSync", "/Microsoft-Server-ActiveSync",
                   false, false},
};

static const unsigned rpc_ports[PDIAG_NPORTS] = {6001, 6002, 6004};

const struct pdiag_vdir_info *
pdiag_vdir_info(enum pdiag_vdir v)
{
    return v < PDIAG_NVDIR ? &vdirs[v] : NULL;
}

void
pdiag_facts_init(struct pdiag_facts *f)
{
    memset(f, 0, sizeof(*f));
    f->mapi_code = -1;
}

struct acc {
    struct pdiag_finding *out;
    size_t cap, n;
};

static void __attribute__((format(printf, 5, 0)))
vadd(struct acc *a, const char *id, enum pdiag_sev sev, const char *vdir, const char *fmt,
     va_list ap, const char *fix)
{
    if (a->n < a->cap) {
        struct pdiag_finding *x = &a->out[a->n];
        x->id = id;
        x->sev = sev;
        x->vdir = vdir;
        vsnprintf(x->what, sizeof(x->what), fmt, ap);
        snprintf(x->fix, sizeof(x->fix), "%s", fix);
    }
    a->n++;
}

static void __attribute__((format(printf, 6, 7)))
add(struct acc *a, const char *id, enum pdiag_sev sev, const char *vdir, const char *fix,
    const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vadd(a, id, sev, vdir, fmt, ap, fix);
    va_end(ap);
}

static bool
creds_accepted_somewhere(const struct pdiag_facts *f)
{
    for (int i = 0; i < PDIAG_NVDIR; i++)
        if (f->v[i].ntlm == PDIAG_HS_OK || f->v[i].ep_cb == PDIAG_HS_OK)
            return true;
    return false;
}

static void
tls_rules(const struct pdiag_facts *f, const char *host, struct acc *a)
{
    char fix[PDIAG_FIX_MAX];
    if (!f->tls || !f->tls_checked)
        return;
    snprintf(fix, sizeof(fix),
             "serve the full chain at exshim: listeners = ( { name = \"public\"; address = "
             "\"0.0.0.0:443\"; tls = { certs = ( { chain = \"%s-fullchain.pem\"; key = "
             "\"%s.key\"; } ); }; } ); (leaf first, then every intermediate)",
             host, host);
    if (f->chain_verified && !f->chain_trusted)
        add(a, "F9", PDIAG_FAIL, "-", fix,
            f->chain_incomplete
                ? "the certificate chain as served is incomplete: the issuer of the leaf is "
                  "neither sent nor trusted (intermediate missing); Outlook refuses it"
                : "the certificate chain is not trusted by this machine (use --ca FILE for a "
                  "private CA); Outlook refuses an untrusted certificate");
    if (f->cert_expired)
        add(a, "F9", PDIAG_FAIL, "-", fix, "the server certificate has expired");
    if (!f->name_ok) {
        snprintf(fix, sizeof(fix),
                 "a certificate whose subjectAltName lists %s, at exshim: tls = { certs = ( { "
                 "chain = \"%s.pem\"; key = \"%s.key\"; } ); }; (several certs are chosen by "
                 "SNI)",
                 host, host, host);
        add(a, "F9", PDIAG_FAIL, "-", fix,
            "the certificate does not name %s (neither a subjectAltName nor the CN matches)", host);
    }
    if (f->h2_checked && f->h2_selected)
        add(a, "F14", PDIAG_FAIL, "-",
            "HTTP/1.1 on every leg: an exshim listener offers ALPN http/1.1 only (no setting "
            "needed); on IIS, disable HTTP/2 for the site (EnableHttp2Tls = 0)",
            "the server chose HTTP/2 when a client offered it: NTLM and Negotiate over HTTP/2 "
            "fail (IIS answers HTTP_1_1_REQUIRED), so every Windows-auth client that speaks "
            "HTTP/2 prompts");
    if (f->msstd_checked && !f->msstd_ok)
        add(a, "F9", PDIAG_FAIL, "-",
            "Set-OutlookProvider EXPR -CertPrincipalName msstd:<the certificate's CN>, or a "
            "certificate whose subject CN is the msstd: name (served by exshim's listener)",
            "the Outlook Anywhere certificate principal name (msstd:) matches neither the "
            "certificate's CN nor a SAN: Outlook Anywhere refuses the connection");
}

static void
auth_rules(const struct pdiag_facts *f, int i, struct acc *a)
{
    const struct pdiag_vdir_info *vi = &vdirs[i];
    const struct pdiag_vdir_facts *v = &f->v[i];
    char fix[PDIAG_FIX_MAX];
    if (!v->probed)
        return;
    if (v->health >= 500) /* 403.4 and 404 are not health verdicts */
        add(a, "Health", PDIAG_FAIL, vi->name,
            "the server's own health probe has taken the vdir down (Exchange managed "
            "availability, Get-ServerHealthState): find why on the server; a balancer that reads "
            "healthcheck.htm sends clients to another server meanwhile",
            "%.*s/healthcheck.htm answers %d: the server reports this protocol unhealthy",
            (int)(strchr(vi->path + 1, '/') ? strchr(vi->path + 1, '/') - vi->path
                                            : (long)strlen(vi->path)),
            vi->path, v->health);
    if (v->ssl_required) {
        add(a, "F4", PDIAG_FAIL, vi->name,
            "terminate TLS at exshim and re-encrypt to the server: backends = ( { name = "
            "\"cas\"; servers = [ \"CAS:443\" ]; tls = { sni = \"CAS-NAME\"; }; } ); (or turn "
            "off Require SSL on the vdir when exshim offloads TLS)",
            "%s answers 403.4 \"The page must be viewed over a secure channel\" over plain "
            "HTTP: the vdir requires SSL while something in front offloads TLS",
            vi->path);
        return;
    }
    if (v->forms) {
        add(a, "FBA", PDIAG_FAIL, vi->name,
            "turn off forms-based authentication on the back-end vdir (Set-OwaVirtualDirectory "
            "-FormsAuthentication $false; Windows authentication instead); exshim passes 440 "
            "through and cannot answer a forms login",
            "%s answers 440 Login Timeout: forms-based authentication, which Outlook "
            "Anywhere, ActiveSync and front-end servers cannot use",
            vi->path);
        return;
    }
    if (v->anon_status != 401 || !vi->windows)
        return;
    int neg = pwire_offers_find(&v->offers, AUTHTOK_SCHEME_NEGOTIATE);
    int ntlm = pwire_offers_find(&v->offers, AUTHTOK_SCHEME_NTLM);
    int basic = pwire_offers_find(&v->offers, AUTHTOK_SCHEME_BASIC);
    if (neg < 0 && ntlm < 0) {
        if (basic >= 0)
            add(a, "F5", PDIAG_FAIL, vi->name,
                "enable Windows authentication (NTLM) on the vdir (Set-OutlookAnywhere "
                "-IISAuthenticationMethods NTLM,Basic); exshim keeps the offers it is given: "
                "{ path = \"/rpc\"; backend = \"cas\"; offer = [ \"NTLM\", \"Basic\" ]; }",
                "Methods Found: Basic; Methods Required: NTLM (%s): NTLM clients and Outlook "
                "Anywhere set to NTLM cannot log on",
                vi->path);
        return;
    }
    if (neg >= 0 && ntlm < 0) {
        snprintf(fix, sizeof(fix),
                 "{ path = \"%s\"; backend = \"cas\"; offer = [ \"NTLM\", \"Negotiate\" ]; "
                 "bridge = \"ntlm-to-negotiate\"; }",
                 vi->route);
        add(a, "F1", PDIAG_FAIL, vi->name, fix,
            "Methods Found: Negotiate; Methods Required: NTLM (%s): NTLM clients and "
            "Exchange 2016 front ends fail%s",
            vi->path, i == PDIAG_MAPI_EMSMDB ? " (MapiHttp ServiceCode 1722, seeds/002)" : "");
        return;
    }
    if (ntlm >= 0 && neg < 0 && vi->negotiate_clients) {
        snprintf(fix, sizeof(fix),
                 "{ path = \"%s\"; backend = \"cas\"; offer = [ \"NTLM\", \"Negotiate\" ]; "
                 "bridge = \"negotiate-to-ntlm\"; } (NTLM first: clients follow the order; "
                 "those sending Negotiate anyway are unwrapped to NTLM)",
                 vi->route);
        add(a, "F3", PDIAG_FAIL, vi->name, fix,
            "Methods Found: NTLM; Methods Required: Negotiate (%s): clients that send "
            "Negotiate (SPNEGO) are refused",
            vi->path);
        return;
    }
    if (neg >= 0 && ntlm > neg && f->kerberos_asked && v->kerberos == PDIAG_HS_REFUSED &&
        (v->ntlm == PDIAG_HS_OK || v->ep_cb == PDIAG_HS_OK)) {
        snprintf(fix, sizeof(fix),
                 "{ path = \"%s\"; backend = \"cas\"; offer = [ \"NTLM\", \"Negotiate\" ]; }",
                 vi->route);
        add(a, "F2", PDIAG_FAIL, vi->name, fix,
            "Negotiate is offered before NTLM but Kerberos fails here while NTLM works: "
            "clients pick Negotiate, fail and prompt (%s)",
            vi->path);
    }
    if (v->kerberos == PDIAG_HS_OK && v->final_token_bad)
        add(a, "F2", PDIAG_WARN, vi->name,
            "make the path to the server pass the 200's WWW-Authenticate header through "
            "unchanged (exshim does by default)",
            "Kerberos reached 200 but the final Negotiate (mutual authentication) token was "
            "missing or invalid (%s)",
            vi->path);
}

static void
ep_rules(const struct pdiag_facts *f, int i, struct acc *a)
{
    const struct pdiag_vdir_info *vi = &vdirs[i];
    const struct pdiag_vdir_facts *v = &f->v[i];
    static const char ep_fix[] =
        "re-encrypt to the server with the certificate clients see: the same chain and key on "
        "exshim's listener as on the server (exshim checks at start-up), backends = ( { name = "
        "\"cas\"; servers = [ \"CAS:443\" ]; tls = { sni = \"CAS-NAME\"; }; } ); never TLS "
        "offload on EP vdirs";
    if (!v->probed || v->ssl_required || v->forms)
        return;
    if (f->tls && v->ep_cb == PDIAG_HS_OK && v->ep_nocb == PDIAG_HS_REFUSED) {
        add(a, "F11", PDIAG_WARN, vi->name, ep_fix,
            "Extended Protection is required on %s and matches the certificate seen: clients "
            "without channel binding fail, and so would TLS offload or re-encryption with "
            "another certificate",
            vi->path);
    } else if (f->tls && v->ep_cb == PDIAG_HS_REFUSED && v->ep_nocb == PDIAG_HS_REFUSED &&
               creds_accepted_somewhere(f)) {
        add(a, "F11", PDIAG_FAIL, vi->name, ep_fix,
            "NTLM is refused on %s with and without a channel binding for the certificate "
            "seen, while the same credentials work elsewhere: Extended Protection is on and "
            "something in between re-encrypts with another certificate (NTLM 0xC000035B)",
            vi->path);
    } else if (!f->tls && v->ntlm == PDIAG_HS_REFUSED && creds_accepted_somewhere(f) &&
               pwire_offers_find(&v->offers, AUTHTOK_SCHEME_NTLM) >= 0) {
        add(a, "F11", PDIAG_FAIL, vi->name, ep_fix,
            "NTLM is refused on %s over plain HTTP while the same credentials work elsewhere: "
            "Extended Protection cannot hold behind TLS offload",
            vi->path);
    }
}

size_t
pdiag_run(const struct pdiag_facts *f, const char *host, struct pdiag_finding *out, size_t cap)
{
    struct acc a = {out, cap, 0};
    tls_rules(f, host, &a);
    for (int i = 0; i < PDIAG_NVDIR; i++) {
        auth_rules(f, i, &a);
        ep_rules(f, i, &a);
    }
    /* NTLM refused after AUTHENTICATE everywhere while the password (Basic) or Kerberos
     * works: the path does not keep the connection the handshake started on */
    bool ntlm_ok = false, last_leg = false, other_ok = f->basic_ok;
    for (int i = 0; i < PDIAG_NVDIR; i++) {
        ntlm_ok |= f->v[i].ntlm == PDIAG_HS_OK;
        last_leg |= f->v[i].ntlm_last_leg;
        other_ok |= f->v[i].kerberos == PDIAG_HS_OK;
    }
    if (!ntlm_ok && last_leg && other_ok)
        add(&a, "F6", PDIAG_FAIL, "-",
            "one backend connection per client connection, kept for its life: put exshim in "
            "the path (it pins by design; no setting needed); nginx OSS cannot pin, HAProxy "
            "needs http-reuse never",
            "NTLM is refused after AUTHENTICATE on every vdir while the same credentials work "
            "with %s: the NTLM legs reach different backend connections (a pooling proxy)",
            f->basic_ok ? "Basic" : "Kerberos");
    for (int p = 0; p < PDIAG_NPORTS; p++) {
        if (f->rpc[p] == PDIAG_RPC_INVALID_PORT)
            add(&a, "ValidPorts", PDIAG_FAIL, "rpc",
                "add the port to the RPC proxy's ValidPorts on every CAS (HKLM\\Software\\"
                "Microsoft\\Rpc\\RpcProxy ValidPorts, e.g. SERVER:6001-6002;SERVER:6004); not "
                "an exshim setting",
                "RPC over HTTP to port %u gets 503 RPC_S_SERVER_UNAVAILABLE (0x6ba): the port "
                "is not in the RPC proxy's ValidPorts (seeds/004)",
                rpc_ports[p]);
        else if (f->rpc[p] == PDIAG_RPC_OUT_STALLED)
            add(&a, "F7", PDIAG_FAIL, "rpc",
                "stream RPC_OUT_DATA's 1 GiB response as it comes (exshim does on every "
                "route): { path = \"/rpc\"; backend = \"cas\"; }",
                "RPC over HTTP to port %u: RPC_OUT_DATA got no response head in time: "
                "something in the path buffers the 1 GiB response",
                rpc_ports[p]);
        else if (f->rpc[p] == PDIAG_RPC_NO_C2)
            add(&a, "F7", PDIAG_FAIL, "rpc",
                "stream RPC_IN_DATA/RPC_OUT_DATA (exshim does on every route) and pin both "
                "channels to one server: { path = \"/rpc\"; backend = \"cas\"; }",
                "RPC over HTTP to port %u: the OUT channel opened (CONN/A3) but CONN/C2 never "
                "came: the IN channel is held back by a buffering proxy (F7) or went to "
                "another server (F10)",
                rpc_ports[p]);
    }
    if (f->mapi_wait_run && f->mapi_buffered)
        add(&a, "F7", PDIAG_FAIL, "mapi",
            "stream chunked responses (exshim does on every route): { path = \"/mapi\"; "
            "backend = \"cas\"; }",
            "MAPI NotificationWait: PENDING keep-alives did not arrive as sent (they came "
            "together at the end): something in the path buffers the response");
    if (f->mapi_wait_run && f->mapi_wait_cut)
        add(&a, "F8", PDIAG_FAIL, "mapi",
            "{ path = \"/mapi\"; backend = \"cas\"; idle_timeout = \"60m\"; body_timeout = "
            "\"60m\"; } and raise the idle timeout of every device in between",
            "MAPI NotificationWait was closed before DONE: an idle timeout in the path is "
            "shorter than the long poll");
    if (f->headers_checked && f->headers_lowercased)
        add(&a, "F12", PDIAG_FAIL, "-",
            "put exshim in place of the proxy that rewrites header names (exshim forwards "
            "them byte for byte)",
            "response header names arrive lower-cased (IIS sends X-FEServer, "
            "Persistent-Auth, ...): an old Outlook build fails on them");
    if (f->big_token_checked && f->big_token_refused)
        add(&a, "F13", PDIAG_FAIL, "-",
            "max_header_bytes = 65536; (exshim's default) on every proxy in the path",
            "a 48 KiB Negotiate header was refused (%s): users in many groups (large "
            "Kerberos PACs) will fail",
            f->big_token_status == 0     ? "connection closed"
            : f->big_token_status == 431 ? "431"
                                         : "400");
    if (f->hold_run && f->hold_cut) {
        char what[PDIAG_TEXT_MAX];
        snprintf(what, sizeof(what),
                 "an RPC channel pair silent for %u s was cut: an idle timeout in the path is "
                 "shorter than Outlook's keep-alive",
                 f->hold_s);
        add(&a, "F8", PDIAG_FAIL, "rpc",
            "{ path = \"/rpc\"; backend = \"cas\"; idle_timeout = \"60m\"; body_timeout = "
            "\"60m\"; } and the same on every load balancer in between",
            "%s", what);
    }
    return a.n;
}
