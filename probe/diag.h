/*
 * exshim-probe: the diagnosis table. Observed facts in, findings out: each finding names the
 * failure of DESIGN.md's table (F1..F14, or a label for field failures outside it), says in
 * plain words what was seen, and gives the fix as an exshim config snippet (or says that the
 * fix belongs on the server). Pure code: no I/O, no allocation; unit-tested in
 * tests/unit/test_probe_diag.c.
 */
#ifndef PROBE_DIAG_H
#define PROBE_DIAG_H

#include <stdbool.h>
#include <stddef.h>

#include "probe/wire.h"

/* The virtual directories the probe visits, in this order. */
enum pdiag_vdir {
    PDIAG_RPC,          /* /rpc/rpcproxy.dll: Outlook Anywhere */
    PDIAG_MAPI_EMSMDB,  /* /mapi/emsmdb/ */
    PDIAG_MAPI_NSPI,    /* /mapi/nspi/ */
    PDIAG_EWS,          /* /ews/exchange.asmx */
    PDIAG_AUTODISCOVER, /* /autodiscover/autodiscover.xml */
    PDIAG_OAB,          /* /oab/ */
    PDIAG_OWA,          /* /owa/ (forms-based authentication shows here) */
    PDIAG_EAS,          /* /Microsoft-Server-ActiveSync */
    PDIAG_NVDIR
};

struct pdiag_vdir_info {
    const char *name;       /* short name used with --only and in output: "rpc", "mapi", ... */
    const char *path;       /* request path */
    const char *route;      /* exshim route prefix for fix snippets */
    bool windows;           /* clients authenticate with NTLM/Negotiate here */
    bool negotiate_clients; /* clients here send Negotiate (F3 applies) */
};

/* Returns the static description of v. */
const struct pdiag_vdir_info *pdiag_vdir_info(enum pdiag_vdir v);

/* Outcome of one authentication attempt. */
enum pdiag_hs {
    PDIAG_HS_NOTRUN = 0, /* not tried (no credentials, scheme not offered, no TLS) */
    PDIAG_HS_OK,         /* 2xx on the same connection after the last leg */
    PDIAG_HS_REFUSED,    /* 401 again after the last leg, or no challenge at all */
    PDIAG_HS_STEERED,    /* Kerberos answered with a SPNEGO token choosing another mechanism */
    PDIAG_HS_ERROR,      /* connection closed, timeout, bad token, other status */
};

struct pdiag_vdir_facts {
    bool probed;
    int anon_status;   /* status of the anonymous request; 0 = no answer */
    bool ssl_required; /* 403 whose page is IIS's 403.4 */
    bool forms;        /* 440 Login Timeout */
    int health;        /* GET /<vdir>/healthcheck.htm status; 0 = not asked */
    struct pwire_offers offers;
    enum pdiag_hs ntlm;     /* NTLM (channel binding when over TLS, as Windows sends) */
    bool ntlm_last_leg;     /* NTLM got its challenge and was refused after AUTHENTICATE */
    enum pdiag_hs kerberos; /* Negotiate/Kerberos (--kerberos) */
    bool final_token_bad;   /* Kerberos: the mutual-auth token in the 200 was missing/invalid */
    enum pdiag_hs ep_cb;    /* NTLMv2 with the channel binding of the certificate seen */
    enum pdiag_hs ep_nocb;  /* NTLMv2 without a channel binding */
};

#define PDIAG_NPORTS 3 /* 6001, 6002, 6004 */

enum pdiag_rpc {
    PDIAG_RPC_NOTRUN = 0,
    PDIAG_RPC_OK,           /* OUT channel: 200, CONN/A3, CONN/C2 */
    PDIAG_RPC_INVALID_PORT, /* 503 (RPC_S_SERVER_UNAVAILABLE): not in ValidPorts */
    PDIAG_RPC_AUTH,         /* 401 on a channel */
    PDIAG_RPC_NO_C2,        /* 200 and A3, but no C2 in time: IN channel not joined (F10/F7) */
    PDIAG_RPC_OUT_STALLED,  /* authenticated RPC_OUT_DATA got no response head in time (F7) */
    PDIAG_RPC_ERROR,        /* other status, closed, malformed PDUs */
};

struct pdiag_facts {
    bool tls;
    /* step 1 */
    bool tls_checked;
    bool tls_version[4]; /* accepted: 1.0, 1.1, 1.2, 1.3 */
    bool chain_verified; /* verification was attempted (system store or --ca) */
    bool chain_trusted;
    bool chain_incomplete; /* the leaf's issuer is not served and not in the store */
    bool cert_expired;
    bool name_ok;
    bool msstd_checked, msstd_ok;
    bool h2_checked, h2_selected; /* ALPN offering h2 first: the server chose HTTP/2 */
    /* steps 2-4 */
    struct pdiag_vdir_facts v[PDIAG_NVDIR];
    bool have_creds;
    bool kerberos_asked;
    bool basic_checked, basic_ok; /* the same credentials under Basic (password check) */
    /* step 5 */
    enum pdiag_rpc rpc[PDIAG_NPORTS];
    /* step 6 */
    bool mapi_run;
    int mapi_status; /* HTTP status of Connect */
    int mapi_code;   /* X-ResponseCode; -1 unknown */
    bool mapi_wait_run;
    bool mapi_wait_ok;  /* DONE arrived */
    bool mapi_buffered; /* PENDING did not arrive within the period (all at once at the end) */
    bool mapi_wait_cut; /* the long poll was closed before DONE */
    /* step 7 */
    bool headers_checked;
    bool headers_lowercased;
    bool big_token_checked;
    bool big_token_refused; /* 400/431/closed on a 48 KiB Authorization header */
    int big_token_status;
    /* step 8 */
    bool hold_run;
    bool hold_cut;
    unsigned hold_s;
};

enum pdiag_sev {
    PDIAG_WARN,
    PDIAG_FAIL,
};

#define PDIAG_TEXT_MAX 320
#define PDIAG_FIX_MAX 400

struct pdiag_finding {
    const char *id; /* "F1".."F14", "ValidPorts", "FBA" */
    enum pdiag_sev sev;
    const char *vdir; /* vdir name or "-" */
    char what[PDIAG_TEXT_MAX];
    char fix[PDIAG_FIX_MAX];
};

#define PDIAG_MAX_FINDINGS 32

/*
 * Runs the table over *f. host is the server name for snippets. Writes at most cap findings
 * (the first ones, in table order) and returns how many there are in all. Borrows f and host;
 * the findings are self-contained copies.
 */
size_t pdiag_run(const struct pdiag_facts *f, const char *host, struct pdiag_finding *out,
                 size_t cap);

/* Starts *f with nothing observed. */
void pdiag_facts_init(struct pdiag_facts *f);

#endif
