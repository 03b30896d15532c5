/*
 * One bench worker process: an event loop driving sessions.
 *
 * A session is what one Outlook profile keeps open:
 *   RPC     an OUT channel (RPC_OUT_DATA, CONN/A1) and an IN channel (RPC_IN_DATA, CONN/B1) of
 *           one virtual connection; established when CONN/C2 arrives on OUT. Then echo PDUs
 *           go up IN and come back on OUT (the lab copies non-RTS PDUs across), Pings go up IN.
 *   STREAM  the same pair, the IN channel pumping bulk PDUs that the lab echoes down OUT.
 *   MAPI    one emsmdb connection: Connect, then Execute at a rate; a second connection holds
 *           a NotificationWait open (re-issued when it completes).
 *   HANDSHAKE  a loop: connect, NTLM leg 1 (401), leg 2 with an RPC echo request (200), close.
 * Every connection authenticates for real (NTLM is connection-bound): leg 1 is a CL 0 request
 * carrying NEGOTIATE, leg 2 the real request carrying AUTHENTICATE.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
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

#include "bench/load/bench.h"
#include "bench/load/bench_rts.h"
#include "proxy/frame.h"
#include "proxy/http1.h"

#define BENCH_MAX_HEAD 65536
#define BENCH_MAX_HDRS 64
#define BENCH_PUMP_HIGH (256 * 1024)
#define BENCH_PUMP_LOW (64 * 1024)
#define BENCH_ECHO_MAX_OUTSTANDING 8
#define BENCH_RTS 0x14

enum load_kind { LK_IN, LK_OUT, LK_MAPI, LK_NOTIFY, LK_HS };
enum load_st {
    LS_CONNECTING,
    LS_LEG1, /* NEGOTIATE sent, waiting for the 401 */
    LS_LEG2, /* AUTHENTICATE + real request sent, waiting for its answer */
    LS_OPEN, /* IN: body streaming; OUT: reading PDUs; MAPI: idle between requests */
    LS_REQ,  /* MAPI: request in flight */
};

struct load_sess;

struct load_chan {
    struct load_sess *s;
    enum load_kind kind;
    enum load_st st;
    struct bufferevent *bev;
    struct bench_gss *gss;
    bool up;
    /* response being read */
    bool have_head;
    int status;
    bool keep_alive;
    char *challenge; /* token of the matching WWW-Authenticate, owned */
    size_t challenge_len;
    int mapi_code; /* X-ResponseCode, -1 when absent */
    struct frame body;
    uint64_t t0_us; /* request (or connection, in handshake mode) start */
    /* stream mode (IN) */
    uint64_t pumped;
    bool pumping;
};

struct load_sess {
    struct load_worker *w;
    unsigned id;
    struct load_chan *a, *b; /* RPC/STREAM: a=OUT, b=IN; MAPI: a=emsmdb, b=notify; HS: a */
    bool established, dead, pending;
    uint8_t vc[16];
    uint64_t t_start_us;
    struct event *tick;
    struct event *setup_to;
    uint32_t echo_seq, echo_got;
    uint64_t last_ping_us;
    unsigned reqid;
    char cookie[768]; /* MAPI cookie jar as a Cookie header value */
    uint64_t stream_got;
    char clientinfo[48];
    /* --users / --source-addrs / --reconnect */
    unsigned cred; /* GSS credential (user) of every channel */
    uint32_t src;  /* source address (network order), 0 = any */
    bool ever_up;  /* was established at least once */
    unsigned restarts, backoff_n;
    struct event *retry;
    struct load_sess *next;
};

struct load_worker {
    const struct bench_opts *o;
    struct bench_stats *st;
    unsigned index;
    struct event_base *base;
    SSL_CTX *ssl;
    struct sockaddr_in addr;
    struct event *ramp_ev, *stop_ev, *max_ev;
    unsigned launched;
    unsigned pending; /* sessions neither established nor failed */
    int phase;        /* 1 ramp, 2 hold, 3 stop */
    struct load_sess *all;
    char auth_word[16];
    char host_hdr[160];
    uint8_t *stream_pdu;
    unsigned hs_live;
};

static uint64_t
load_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

double
bench_now(void)
{
    return (double)load_now_us() / 1e6;
}

static void
load_wr16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

static void
load_wr32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint16_t
load_rd16(const uint8_t *p)
{
    return (uint16_t)(p[0] | (p[1] << 8));
}

/* A DCE/RPC request PDU header (24 bytes) for a body of len total bytes. */
static void
load_req_header(uint8_t *p, uint16_t len, uint32_t call_id)
{
    memset(p, 0, 24);
    p[0] = 5;
    p[2] = 0; /* request */
    p[3] = 3;
    p[4] = 0x10;
    load_wr16(p + 8, len);
    load_wr32(p + 12, call_id);
    load_wr32(p + 16, (uint32_t)len - 24u); /* alloc_hint */
}

static void
load_random(void *buf, size_t n)
{
    uint8_t *p = buf;
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)random();
}

/* ------------------------------------------------------------------ teardown */

static void
load_chan_free(struct load_chan *c)
{
    if (!c)
        return;
    struct bench_stats *st = c->s->w->st;
    if (c->up && st->chans_up)
        st->chans_up--;
    if (c->bev)
        bufferevent_free(c->bev);
    bench_gss_free(c->gss);
    free(c->challenge);
    free(c);
}

static void load_hs_next(struct load_sess *s, unsigned delay_ms);

/* Ends a session. failed: count it (only when not established yet). */
static void
load_sess_end(struct load_sess *s, bool failed)
{
    struct load_worker *w = s->w;
    if (s->dead)
        return;
    s->dead = true;
    if (s->established) {
        if (w->st->up)
            w->st->up--;
    } else if (s->pending) {
        s->pending = false;
        if (w->pending)
            w->pending--;
        if (failed)
            w->st->failed++;
    }
    load_chan_free(s->a);
    load_chan_free(s->b);
    s->a = s->b = NULL;
    if (s->tick) {
        event_free(s->tick);
        s->tick = NULL;
    }
    if (s->setup_to) {
        event_free(s->setup_to);
        s->setup_to = NULL;
    }
    if (s->retry) {
        event_free(s->retry);
        s->retry = NULL;
    }
    /* the struct stays on w->all until the worker exits (callbacks may still name it) */
}

static void load_sess_restart(struct load_sess *s);

/* A channel of s lost: the session starts over with --reconnect, else it ends. */
static void
load_sess_lost(struct load_sess *s, bool failed)
{
    if (s->w->o->reconnect && s->w->phase < 3)
        load_sess_restart(s);
    else
        load_sess_end(s, failed);
}

static void
load_handshake_done(struct load_sess *s)
{
    s->w->st->handshakes++;
    if (s->restarts)
        s->w->st->reauths++;
}

static void
load_fail(struct load_chan *c, enum bench_err e, const char *what)
{
    struct load_sess *s = c->s;
    struct load_worker *w = s->w;
    if (w->phase >= 3)
        return; /* teardown: closes are expected */
    static const char *const kinds[] = {"IN", "OUT", "MAPI", "NOTIFY", "HS"};
    bench_err(w->st, e, "%s: %s", kinds[c->kind], what);
    if (w->o->mode == BENCH_MODE_HANDSHAKE) {
        load_chan_free(s->a);
        s->a = NULL;
        w->st->failed++;
        load_hs_next(s, 50);
        return;
    }
    load_sess_lost(s, true);
}

static void
load_established(struct load_sess *s)
{
    struct load_worker *w = s->w;
    if (s->established)
        return;
    s->established = true;
    s->backoff_n = 0;
    if (s->ever_up) {
        w->st->reconnected++;
    } else {
        s->ever_up = true;
        if (s->pending && w->pending)
            w->pending--;
        s->pending = false;
        w->st->established++;
        bench_hist_add(&w->st->setup, load_now_us() - s->t_start_us);
    }
    w->st->up++;
    if (w->st->up > w->st->up_peak)
        w->st->up_peak = w->st->up;
    if (s->setup_to) {
        event_free(s->setup_to);
        s->setup_to = NULL;
    }
}

/* ------------------------------------------------------------------ requests */

static void
load_out(struct load_chan *c, const void *p, size_t n)
{
    evbuffer_add(bufferevent_get_output(c->bev), p, n);
    c->s->w->st->bytes_out += n;
}

static void load_printf(struct load_chan *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void
load_printf(struct load_chan *c, const char *fmt, ...)
{
    char buf[8192];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (n > 0)
        load_out(c, buf, (size_t)n < sizeof buf ? (size_t)n : sizeof buf - 1);
}

/* Writes a request head. auth: token or NULL. cl: Content-Length. */
static void
load_head(struct load_chan *c, const char *tok, uint64_t cl, const char *xtype)
{
    struct load_sess *s = c->s;
    struct load_worker *w = s->w;
    char authz[6144] = "";
    if (tok)
        snprintf(authz, sizeof authz, "Authorization: %s %s\r\n", w->auth_word, tok);
    switch (c->kind) {
    case LK_IN:
    case LK_OUT:
    case LK_HS:
        load_printf(c,
                    "%s /rpc/rpcproxy.dll?bench-%u.lab.local:6001 HTTP/1.1\r\n"
                    "Host: %s\r\nAccept: application/rpc\r\nUser-Agent: MSRPC\r\n"
                    "Cache-Control: no-cache\r\nPragma: No-cache\r\nConnection: Keep-Alive\r\n"
                    "Protocol: 1.0\r\n%sContent-Length: %llu\r\n\r\n",
                    c->kind == LK_OUT ? "RPC_OUT_DATA" : "RPC_IN_DATA", s->id, w->host_hdr, authz,
                    (unsigned long long)cl);
        break;
    case LK_MAPI:
    case LK_NOTIFY:
        s->reqid++;
        load_printf(c,
                    "POST /mapi/emsmdb/?MailboxId=bench%u@lab.local HTTP/1.1\r\n"
                    "Host: %s\r\nContent-Type: application/mapi-http\r\n"
                    "User-Agent: Microsoft Office/16.0 (Windows NT 10.0; Microsoft Outlook "
                    "16.0.17928; Pro)\r\n"
                    "X-RequestType: %s\r\nX-RequestId: {%s}:%u\r\nX-ClientInfo: {%s}:%u\r\n"
                    "X-ClientApplication: Outlook/16.0.17928.20114\r\n%s%s%s%s"
                    "Content-Length: %llu\r\n\r\n",
                    s->id, w->host_hdr, xtype, s->clientinfo, s->reqid, s->clientinfo, s->reqid,
                    s->cookie[0] ? "Cookie: " : "", s->cookie, s->cookie[0] ? "\r\n" : "", authz,
                    (unsigned long long)cl);
        break;
    }
}

static void
load_mapi_send(struct load_chan *c, const char *xtype, const char *tok)
{
    static uint8_t zeros[65536];
    struct load_worker *w = c->s->w;
    size_t n = strcmp(xtype, "Execute") == 0 ? w->o->exec_bytes : 64;
    if (n > sizeof zeros)
        n = sizeof zeros;
    load_head(c, tok, n, xtype);
    load_out(c, zeros, n);
    c->t0_us = load_now_us();
    c->st = tok ? LS_LEG2 : LS_REQ;
}

/* Sends the real request of the channel (leg 2, or the only leg without auth). */
static void
load_final(struct load_chan *c, const char *tok)
{
    struct load_sess *s = c->s;
    struct load_worker *w = s->w;
    uint8_t pdu[104];
    switch (c->kind) {
    case LK_OUT: {
        uint8_t chan[16];
        load_head(c, tok, BENCH_RTS_CONN_A1_LEN, NULL);
        load_random(chan, sizeof chan);
        bench_rts_conn_a1(pdu, s->vc, chan);
        load_out(c, pdu, BENCH_RTS_CONN_A1_LEN);
        c->st = LS_LEG2;
        break;
    }
    case LK_IN: {
        uint8_t chan[16], assoc[16];
        load_head(c, tok, w->o->in_cl, NULL);
        load_random(chan, sizeof chan);
        load_random(assoc, sizeof assoc);
        bench_rts_conn_b1(pdu, s->vc, chan, assoc,
                          (uint32_t)(w->o->in_cl > 0x80000000ULL ? 0x80000000ULL : w->o->in_cl));
        load_out(c, pdu, 104);
        c->pumped = 104;
        c->st = LS_OPEN; /* an IN channel is never answered */
        if (tok)
            load_handshake_done(s);
        break;
    }
    case LK_HS: {
        static const uint8_t echo_body[4] = {0xf8, 0xe8, 0x18, 0x08};
        load_head(c, tok, 4, NULL);
        load_out(c, echo_body, 4);
        c->st = LS_LEG2;
        break;
    }
    case LK_MAPI:
        load_mapi_send(c, s->established ? "Execute" : "Connect", tok);
        break;
    case LK_NOTIFY:
        load_mapi_send(c, "NotificationWait", tok);
        break;
    }
}

static void
load_start_auth(struct load_chan *c)
{
    struct load_worker *w = c->s->w;
    if (w->o->auth == BENCH_AUTH_NONE) {
        load_final(c, NULL);
        return;
    }
    char why[256], *tok = NULL;
    if (!c->gss && !(c->gss = bench_gss_new(c->s->cred))) {
        load_fail(c, BENCH_E_LOCAL, "out of memory");
        return;
    }
    int rc = bench_gss_step(&c->gss, NULL, 0, &tok, why, sizeof why);
    if (rc < 0 || !tok) {
        free(tok);
        load_fail(c, BENCH_E_LOCAL, rc < 0 ? why : "no initial token");
        return;
    }
    if (c->kind == LK_MAPI || c->kind == LK_NOTIFY)
        load_head(c, tok, 0, c->kind == LK_MAPI ? "Connect" : "NotificationWait");
    else
        load_head(c, tok, 0, NULL);
    free(tok);
    c->st = LS_LEG1;
}

/* ------------------------------------------------------------------ RPC PDUs */

static void
load_send_echo(struct load_sess *s)
{
    struct load_chan *in = s->b;
    uint8_t pdu[40];
    uint64_t now = load_now_us();
    load_req_header(pdu, 40, s->echo_seq);
    memcpy(pdu + 24, "BNCH", 4);
    load_wr32(pdu + 28, s->echo_seq++);
    memcpy(pdu + 32, &now, 8);
    load_out(in, pdu, sizeof pdu);
    in->pumped += sizeof pdu;
}

static void
load_send_ping(struct load_sess *s)
{
    uint8_t pdu[BENCH_RTS_PING_LEN];
    bench_rts_ping(pdu);
    load_out(s->b, pdu, sizeof pdu);
    s->b->pumped += sizeof pdu;
}

static void
load_noop_cleanup(const void *data, size_t len, void *arg)
{
}

/* Stream mode: keeps the IN channel's output between the low and high marks. */
static void
load_pump(struct load_chan *in)
{
    struct load_sess *s = in->s;
    struct load_worker *w = s->w;
    struct evbuffer *out = bufferevent_get_output(in->bev);
    uint64_t target = w->o->stream_bytes;
    for (int i = 0;
         i < 4096 && in->pumped < target + 104 && evbuffer_get_length(out) < BENCH_PUMP_HIGH; i++) {
        uint64_t left = target + 104 - in->pumped;
        size_t n = w->o->pdu_bytes;
        if (left < n) {
            /* last PDU: shorter, still a multiple of 4 and at least a header */
            n = (size_t)(left & ~3ULL);
            if (n < 24)
                break;
            uint8_t *tail = malloc(n);
            if (!tail)
                break;
            memcpy(tail, w->stream_pdu, n);
            load_wr16(tail + 8, (uint16_t)n);
            evbuffer_add(out, tail, n);
            free(tail);
        } else {
            evbuffer_add_reference(out, w->stream_pdu, n, load_noop_cleanup, NULL);
        }
        in->pumped += n;
        w->st->bytes_out += n;
        w->st->payload_out += n;
    }
}

static void
load_stream_done(struct load_sess *s)
{
    struct load_worker *w = s->w;
    w->st->streams_done++;
    load_sess_end(s, false);
    if (w->st->streams_done + w->st->failed >= w->o->sessions && w->phase == 2)
        event_active(w->stop_ev, 0, 0);
}

/* OUT channel body: PDUs framed by frag_length. Returns -1 when the session ended. */
static int
load_out_pdus(struct load_chan *c, struct evbuffer *in)
{
    struct load_sess *s = c->s;
    struct load_worker *w = s->w;
    for (;;) {
        size_t avail = evbuffer_get_length(in);
        uint8_t h[40];
        if (avail < 20)
            return 0;
        evbuffer_copyout(in, h, 20);
        uint16_t flen = load_rd16(h + 8);
        if (h[0] != 5 || flen < 20) {
            load_fail(c, BENCH_E_PROTOCOL, "bad PDU on OUT channel");
            return -1;
        }
        if (avail < flen)
            return 0;
        if (h[2] == BENCH_RTS) {
            uint16_t flags = load_rd16(h + 16), ncmd = load_rd16(h + 18);
            if (!s->established) {
                if (flags == 0 && ncmd == 3) { /* CONN/C2 */
                    load_established(s);
                    load_handshake_done(s); /* OUT leg confirmed */
                    if (w->o->mode == BENCH_MODE_STREAM && s->b) {
                        s->b->pumping = true;
                        load_pump(s->b);
                    }
                } else if (!(flags == 0 && ncmd == 1) && !(flags & 1)) {
                    /* only CONN/A3 (and Pings, when the IN channel is slow) before CONN/C2 */
                    load_fail(c, BENCH_E_PROTOCOL, "unexpected RTS PDU before CONN/C2");
                    return -1;
                }
            } else if (flags & 1) {
                w->st->pings_in++;
            }
            evbuffer_drain(in, flen);
        } else if (w->o->mode == BENCH_MODE_STREAM) {
            evbuffer_drain(in, flen);
            s->stream_got += flen;
            w->st->payload_in += flen;
            if (s->stream_got >= w->o->stream_bytes) {
                w->st->bytes_in += flen;
                load_stream_done(s);
                return -1;
            }
        } else {
            if (flen >= 40) {
                evbuffer_copyout(in, h, 40);
                if (memcmp(h + 24, "BNCH", 4) == 0) {
                    uint64_t t;
                    memcpy(&t, h + 32, 8);
                    uint64_t now = load_now_us();
                    bench_hist_add(w->phase == 2 ? &w->st->lat : &w->st->lat_ramp,
                                   now > t ? now - t : 0);
                    w->st->requests++;
                    s->echo_got++;
                }
            }
            evbuffer_drain(in, flen);
        }
        w->st->bytes_in += flen;
    }
}

/* ------------------------------------------------------------------ responses */

static void
load_cookie_merge(struct load_sess *s, struct h1_slice v)
{
    /* Set-Cookie: NAME=VALUE; attrs. Keeps one entry per name in s->cookie. */
    size_t end = 0;
    while (end < v.len && v.p[end] != ';')
        end++;
    size_t eq = 0;
    while (eq < end && v.p[eq] != '=')
        eq++;
    if (eq == 0 || eq >= end)
        return;
    char name[64], val[512];
    if (eq >= sizeof name || end - eq - 1 >= sizeof val)
        return;
    memcpy(name, v.p, eq);
    name[eq] = 0;
    memcpy(val, v.p + eq + 1, end - eq - 1);
    val[end - eq - 1] = 0;
    /* rebuild the jar without NAME, then append NAME=VALUE */
    char jar[768] = "", *save = NULL, copy[768];
    snprintf(copy, sizeof copy, "%s", s->cookie);
    for (char *tok = strtok_r(copy, ";", &save); tok; tok = strtok_r(NULL, ";", &save)) {
        while (*tok == ' ')
            tok++;
        size_t nl = strlen(name);
        if (strncmp(tok, name, nl) == 0 && tok[nl] == '=')
            continue;
        if (*tok) {
            size_t jl = strlen(jar);
            snprintf(jar + jl, sizeof jar - jl, "%s%s", jl ? "; " : "", tok);
        }
    }
    if (val[0]) {
        size_t jl = strlen(jar);
        snprintf(jar + jl, sizeof jar - jl, "%s%s=%s", jl ? "; " : "", name, val);
    }
    snprintf(s->cookie, sizeof s->cookie, "%s", jar);
}

static void load_hs_connect(struct load_sess *s);
static void load_mapi_next(struct load_sess *s);

static enum bench_err
load_status_kind(int status)
{
    return status == 502 || status == 503 || status == 504 ? BENCH_E_GATEWAY : BENCH_E_STATUS;
}

/* A whole response has been read on c (head fields saved in c). Returns -1 when c is gone. */
static int
load_response_done(struct load_chan *c)
{
    struct load_sess *s = c->s;
    struct load_worker *w = s->w;
    char why[256];

    if (c->st == LS_LEG1) {
        if (c->status != 401 || !c->challenge) {
            snprintf(why, sizeof why, "leg 1 answered %d%s", c->status,
                     c->status == 401 ? " without a matching challenge" : "");
            load_fail(c, c->status == 401 ? BENCH_E_AUTH : load_status_kind(c->status), why);
            return -1;
        }
        if (!c->keep_alive) {
            load_fail(c, BENCH_E_AUTH_CLOSE, "401 closes the connection (NTLM needs it kept)");
            return -1;
        }
        char *tok = NULL;
        int rc = bench_gss_step(&c->gss, c->challenge, c->challenge_len, &tok, why, sizeof why);
        free(c->challenge);
        c->challenge = NULL;
        if (rc < 0 || !tok) {
            free(tok);
            load_fail(c, BENCH_E_AUTH, rc < 0 ? why : "no AUTHENTICATE token");
            return -1;
        }
        load_final(c, tok);
        free(tok);
        return 0;
    }
    if (c->status == 401) {
        load_fail(c, BENCH_E_AUTH, c->st == LS_LEG2 ? "401 after AUTHENTICATE" : "401");
        return -1;
    }
    if (c->status != 200) {
        snprintf(why, sizeof why, "status %d", c->status);
        load_fail(c, load_status_kind(c->status), why);
        return -1;
    }
    if (c->mapi_code > 0) {
        snprintf(why, sizeof why, "X-ResponseCode %d", c->mapi_code);
        load_fail(c, BENCH_E_MAPI_CODE, why);
        return -1;
    }
    uint64_t now = load_now_us();
    switch (c->kind) {
    case LK_HS:
        w->st->handshakes++;
        w->st->established++;
        w->st->requests++;
        bench_hist_add(w->phase == 2 ? &w->st->lat : &w->st->lat_ramp, now - c->t0_us);
        load_chan_free(c);
        s->a = NULL;
        load_hs_next(s, 0);
        return -1;
    case LK_MAPI:
        if (c->st == LS_LEG2)
            load_handshake_done(s);
        c->st = LS_OPEN;
        if (!s->established) {
            load_established(s);
            if (w->o->notify && !s->b)
                load_mapi_next(s); /* opens the notify channel below */
        } else {
            w->st->requests++;
            bench_hist_add(w->phase == 2 ? &w->st->lat : &w->st->lat_ramp, now - c->t0_us);
        }
        if (w->o->req_rate <= 0 && w->phase < 3)
            load_final(c, NULL);
        return 0;
    case LK_NOTIFY:
        if (c->st == LS_LEG2)
            load_handshake_done(s);
        w->st->requests++;
        if (w->phase < 3)
            load_final(c, NULL);
        return 0;
    case LK_IN:
        load_fail(c, BENCH_E_STATUS, "IN channel answered");
        return -1;
    case LK_OUT:
        load_fail(c, BENCH_E_CLOSED, "OUT channel body ended");
        return -1;
    }
    return 0;
}

static void
load_save_head(struct load_chan *c, const struct h1_head *h)
{
    struct load_worker *w = c->s->w;
    size_t wl = strlen(w->auth_word);
    c->status = h->status;
    c->keep_alive = h->keep_alive;
    c->mapi_code = -1;
    free(c->challenge);
    c->challenge = NULL;
    for (size_t i = 0; i < h->nheaders; i++) {
        const struct h1_header *x = &h->headers[i];
        if (h1_slice_eq(x->name, "WWW-Authenticate")) {
            if (x->value.len > wl + 1 && strncasecmp(x->value.p, w->auth_word, wl) == 0 &&
                x->value.p[wl] == ' ' && !c->challenge) {
                const char *t = x->value.p + wl + 1;
                size_t tl = x->value.len - wl - 1;
                while (tl && *t == ' ') {
                    t++;
                    tl--;
                }
                c->challenge = malloc(tl + 1);
                if (c->challenge) {
                    memcpy(c->challenge, t, tl);
                    c->challenge[tl] = 0;
                    c->challenge_len = tl;
                }
            }
        } else if (h1_slice_eq(x->name, "Set-Cookie")) {
            if (c->kind == LK_MAPI)
                load_cookie_merge(c->s, x->value);
        } else if (h1_slice_eq(x->name, "X-ResponseCode")) {
            c->mapi_code = (int)strtol(x->value.p, NULL, 10);
        }
    }
}

static void
load_read_cb(struct bufferevent *bev, void *arg)
{
    struct load_chan *c = arg;
    struct load_sess *s = c->s;
    struct load_worker *w = s->w;
    struct evbuffer *in = bufferevent_get_input(bev);

    for (int guard = 0; guard < 1024; guard++) {
        if (c->kind == LK_OUT && c->st == LS_OPEN) {
            load_out_pdus(c, in);
            return;
        }
        size_t len = evbuffer_get_length(in);
        if (!len)
            return;
        if (!c->have_head) {
            size_t look = len < BENCH_MAX_HEAD ? len : BENCH_MAX_HEAD;
            const char *p = (const char *)evbuffer_pullup(in, (ev_ssize_t)look);
            size_t hl = h1_head_end(p, look);
            if (!hl) {
                if (look >= BENCH_MAX_HEAD)
                    load_fail(c, BENCH_E_PROTOCOL, "response head too large");
                return;
            }
            struct h1_head h;
            struct h1_header hdrs[BENCH_MAX_HDRS];
            int status = 0;
            const char *why = NULL;
            if (h1_parse_response(p, hl, false, &h, hdrs, BENCH_MAX_HDRS, &status, &why) != H1_OK) {
                char m[160];
                snprintf(m, sizeof m, "bad response head: %s", why ? why : "?");
                load_fail(c, BENCH_E_PROTOCOL, m);
                return;
            }
            if (h.status >= 100 && h.status < 200) {
                evbuffer_drain(in, hl);
                w->st->bytes_in += hl;
                continue;
            }
            load_save_head(c, &h);
            frame_init(&c->body, &h);
            evbuffer_drain(in, hl);
            w->st->bytes_in += hl;
            c->have_head = true;
            if (c->kind == LK_OUT && c->st == LS_LEG2 && h.status == 200) {
                w->st->handshakes += 0; /* counted on CONN/C2 */
                c->st = LS_OPEN;
                c->have_head = false;
                continue;
            }
            if (h.body == H1_BODY_NONE)
                c->body.done = true;
        }
        /* body */
        while (!c->body.done && evbuffer_get_length(in)) {
            const char *why = NULL;
            ssize_t k = frame_take(&c->body, in, 0, evbuffer_get_length(in), &why);
            if (k < 0) {
                load_fail(c, BENCH_E_PROTOCOL, "bad response body framing");
                return;
            }
            if (k == 0)
                break;
            if (c->kind == LK_NOTIFY) {
                struct evbuffer_ptr hit = evbuffer_search_range(in, "PENDING", 7, NULL, NULL);
                if (hit.pos >= 0 && (size_t)hit.pos < (size_t)k)
                    w->st->pings_in++;
            }
            evbuffer_drain(in, (size_t)k);
            w->st->bytes_in += (size_t)k;
        }
        if (!c->body.done)
            return;
        c->have_head = false;
        if (load_response_done(c) < 0)
            return;
        if (c->kind == LK_OUT && c->st == LS_OPEN)
            continue;
    }
}

static void
load_write_cb(struct bufferevent *bev, void *arg)
{
    struct load_chan *c = arg;
    if (c->kind == LK_IN && c->pumping)
        load_pump(c);
}

static void
load_event_cb(struct bufferevent *bev, short what, void *arg)
{
    struct load_chan *c = arg;
    struct load_worker *w = c->s->w;
    if (what & BEV_EVENT_CONNECTED) {
        int fd = bufferevent_getfd(bev), one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        c->up = true;
        w->st->chans_up++;
        if (w->st->chans_up > w->st->chans_peak)
            w->st->chans_peak = w->st->chans_up;
        load_start_auth(c);
        return;
    }
    char why[200];
    unsigned long ssl_err = w->ssl ? bufferevent_get_openssl_error(bev) : 0;
    if (c->st == LS_CONNECTING) {
        if (ssl_err || (w->ssl && (what & BEV_EVENT_EOF)))
            snprintf(why, sizeof why, "TLS handshake: %s",
                     ssl_err ? ERR_reason_error_string(ssl_err) : "closed");
        else
            snprintf(why, sizeof why, "connect: %s", strerror(EVUTIL_SOCKET_ERROR()));
        load_fail(c,
                  ssl_err || w->ssl ? (ssl_err ? BENCH_E_TLS : BENCH_E_CONNECT) : BENCH_E_CONNECT,
                  why);
        return;
    }
    if (ssl_err) {
        snprintf(why, sizeof why, "TLS: %s", ERR_reason_error_string(ssl_err));
        load_fail(c, BENCH_E_TLS, why);
        return;
    }
    static const char *const states[] = {"connecting", "waiting for the 401",
                                         "waiting for the answer", "open", "request in flight"};
    int serr = EVUTIL_SOCKET_ERROR();
    snprintf(why, sizeof why, "%s%s%s while %s%s",
             (what & BEV_EVENT_EOF) ? "closed by peer" : "socket error",
             (what & BEV_EVENT_EOF) ? "" : ": ", (what & BEV_EVENT_EOF) ? "" : strerror(serr),
             states[c->st], c->have_head ? " (inside a response)" : "");
    load_fail(c, BENCH_E_CLOSED, why);
}

static struct load_chan *
load_chan_new(struct load_sess *s, enum load_kind kind)
{
    struct load_worker *w = s->w;
    struct load_chan *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->s = s;
    c->kind = kind;
    c->st = LS_CONNECTING;
    c->t0_us = load_now_us();
    int opts = BEV_OPT_CLOSE_ON_FREE;
    evutil_socket_t fd = -1;
    if (s->src) {
        /* the client address this session stands for; the port comes with connect() */
        struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = s->src};
        int one = 1;
        fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0) {
            bench_err(w->st, BENCH_E_LOCAL, "socket: %s", strerror(errno));
            free(c);
            return NULL;
        }
        setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
        if (bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
            char ip[INET_ADDRSTRLEN];
            inet_ntop(AF_INET, &sa.sin_addr, ip, sizeof ip);
            bench_err(w->st, BENCH_E_LOCAL, "bind %s: %s", ip, strerror(errno));
            close(fd);
            free(c);
            return NULL;
        }
    }
    if (w->ssl) {
        SSL *ssl = SSL_new(w->ssl);
        if (!ssl) {
            free(c);
            return NULL;
        }
        SSL_set_tlsext_host_name(ssl, w->o->hostname);
        c->bev = bufferevent_openssl_socket_new(w->base, fd, ssl, BUFFEREVENT_SSL_CONNECTING, opts);
        if (c->bev)
            bufferevent_openssl_set_allow_dirty_shutdown(c->bev, 1);
    } else {
        c->bev = bufferevent_socket_new(w->base, fd, opts);
    }
    if (!c->bev) {
        if (fd >= 0)
            close(fd);
        free(c);
        return NULL;
    }
    bufferevent_setcb(c->bev, load_read_cb, kind == LK_IN ? load_write_cb : NULL, load_event_cb, c);
    if (kind == LK_IN)
        bufferevent_setwatermark(c->bev, EV_WRITE, BENCH_PUMP_LOW, 0);
    bufferevent_enable(c->bev, EV_READ | EV_WRITE);
    if (bufferevent_socket_connect(c->bev, (struct sockaddr *)&w->addr, sizeof w->addr) < 0) {
        bench_err(w->st, errno == EMFILE || errno == ENFILE ? BENCH_E_LOCAL : BENCH_E_CONNECT,
                  "connect: %s", strerror(errno));
        bufferevent_free(c->bev);
        free(c);
        return NULL;
    }
    return c;
}

/* ------------------------------------------------------------------ sessions */

static void
load_tick_cb(evutil_socket_t fd, short what, void *arg)
{
    struct load_sess *s = arg;
    struct load_worker *w = s->w;
    const struct bench_opts *o = w->o;
    if (s->dead || w->phase >= 3)
        return;
    if (o->mode == BENCH_MODE_MAPI) {
        struct load_chan *c = s->a;
        if (c && s->established && c->st == LS_OPEN)
            load_final(c, NULL);
        return;
    }
    if (!s->established || !s->b)
        return;
    uint64_t now = load_now_us();
    if (o->echo_ms) {
        if (s->echo_seq - s->echo_got > BENCH_ECHO_MAX_OUTSTANDING) {
            bench_err(w->st, BENCH_E_TIMEOUT, "echo: %u PDUs unanswered",
                      s->echo_seq - s->echo_got);
            load_sess_lost(s, false);
            return;
        }
        load_send_echo(s);
    }
    if (o->ping_ms && now - s->last_ping_us >= (uint64_t)o->ping_ms * 1000u) {
        load_send_ping(s);
        s->last_ping_us = now;
    }
}

static void
load_setup_to_cb(evutil_socket_t fd, short what, void *arg)
{
    struct load_sess *s = arg;
    struct load_worker *w = s->w;
    if (s->dead || s->established)
        return;
    bench_err(w->st, BENCH_E_TIMEOUT, "session not established in %.0f s", w->o->setup_timeout_s);
    load_sess_lost(s, true);
}

static void
load_mapi_next(struct load_sess *s)
{
    if (!s->b) {
        s->b = load_chan_new(s, LK_NOTIFY);
        if (!s->b)
            bench_err(s->w->st, BENCH_E_LOCAL, "cannot open the NotificationWait connection");
    }
}

static void
load_hs_connect(struct load_sess *s)
{
    s->w->st->attempted++;
    s->a = load_chan_new(s, LK_HS);
    if (!s->a) {
        s->w->st->failed++;
        load_hs_next(s, 50);
    }
}

/* Handshake mode: the next iteration of a loop (deferred through the event loop). */
static void
load_hs_later(evutil_socket_t fd, short what, void *arg)
{
    struct load_sess *s = arg;
    if (s->w->phase < 3 && !s->a)
        load_hs_connect(s);
}

static void
load_hs_next(struct load_sess *s, unsigned delay_ms)
{
    if (s->w->phase >= 3)
        return;
    struct timeval tv = {0, (suseconds_t)delay_ms * 1000};
    event_base_once(s->w->base, -1, EV_TIMEOUT, load_hs_later, s, &tv);
}

/* Opens the channels of s (first start or restart), with fresh per-connection state. */
static void
load_sess_open(struct load_sess *s)
{
    struct load_worker *w = s->w;
    const struct bench_opts *o = w->o;
    load_random(s->vc, sizeof s->vc);
    s->echo_seq = s->echo_got = 0;
    s->cookie[0] = 0;
    s->stream_got = 0;
    s->last_ping_us = load_now_us();
    struct timeval tv = {(time_t)o->setup_timeout_s, 0};
    if (!s->setup_to)
        s->setup_to = evtimer_new(w->base, load_setup_to_cb, s);
    evtimer_add(s->setup_to, &tv);
    if (o->mode == BENCH_MODE_MAPI) {
        s->a = load_chan_new(s, LK_MAPI);
        if (!s->a)
            load_sess_lost(s, true);
        return;
    }
    s->a = load_chan_new(s, LK_OUT);
    s->b = s->a ? load_chan_new(s, LK_IN) : NULL;
    if (!s->a || !s->b)
        load_sess_lost(s, true);
}

static void
load_retry_cb(evutil_socket_t fd, short what, void *arg)
{
    struct load_sess *s = arg;
    if (!s->dead && s->w->phase < 3 && !s->a && !s->b)
        load_sess_open(s);
}

/* --reconnect: drops what is left of s and opens it again after a backoff (250 ms doubling
 * to 2 s, plus up to 250 ms of jitter so that the clients of a dead node do not come back in
 * one burst). Every new channel authenticates again. */
static void
load_sess_restart(struct load_sess *s)
{
    struct load_worker *w = s->w;
    if (s->dead)
        return;
    load_chan_free(s->a);
    load_chan_free(s->b);
    s->a = s->b = NULL;
    if (s->established) {
        s->established = false;
        if (w->st->up)
            w->st->up--;
        w->st->reconnects++;
    } else {
        w->st->setup_retries++;
    }
    s->restarts++;
    if (s->setup_to)
        evtimer_del(s->setup_to);
    unsigned ms = 250u << (s->backoff_n < 3 ? s->backoff_n : 3);
    s->backoff_n++;
    ms += (unsigned)(random() % 250);
    if (!s->retry)
        s->retry = evtimer_new(w->base, load_retry_cb, s);
    if (!s->retry) {
        load_sess_end(s, !s->ever_up);
        return;
    }
    struct timeval tv = {ms / 1000, (suseconds_t)(ms % 1000) * 1000};
    evtimer_add(s->retry, &tv);
}

static void
load_sess_start(struct load_worker *w)
{
    const struct bench_opts *o = w->o;
    struct load_sess *s = calloc(1, sizeof *s);
    if (!s) {
        bench_err(w->st, BENCH_E_LOCAL, "out of memory");
        return;
    }
    s->w = w;
    s->id = w->index * 1000000u + w->launched;
    /* global session number: users and source addresses go round robin over all workers */
    unsigned k = w->launched * (o->procs_total ? o->procs_total : 1) + w->index;
    s->cred = o->nusers ? k % o->nusers : 0;
    s->src = o->nsrcs ? o->srcs[k % o->nsrcs] : 0;
    s->next = w->all;
    w->all = s;
    s->t_start_us = load_now_us();
    snprintf(s->clientinfo, sizeof s->clientinfo, "%08X-%04X-4%03X-A%03X-%012llX",
             (unsigned)random(), (unsigned)random() & 0xffff, (unsigned)random() & 0xfff,
             (unsigned)random() & 0xfff, (unsigned long long)random());
    if (o->mode != BENCH_MODE_HANDSHAKE)
        w->st->attempted++;
    if (o->mode == BENCH_MODE_HANDSHAKE) {
        load_random(s->vc, sizeof s->vc);
        load_hs_connect(s); /* loops are not sessions */
        return;
    }
    w->pending++;
    s->pending = true;
    if (o->mode == BENCH_MODE_MAPI && o->req_rate > 0) {
        s->tick = event_new(w->base, -1, EV_PERSIST, load_tick_cb, s);
        double per = 1.0 / o->req_rate;
        struct timeval pt = {(time_t)per, (suseconds_t)((per - (double)(time_t)per) * 1e6)};
        event_add(s->tick, &pt);
    }
    unsigned per_ms = o->echo_ms ? o->echo_ms : o->ping_ms;
    if (o->mode == BENCH_MODE_RPC && per_ms) {
        s->tick = event_new(w->base, -1, EV_PERSIST, load_tick_cb, s);
        struct timeval pt = {per_ms / 1000, (suseconds_t)(per_ms % 1000) * 1000};
        event_add(s->tick, &pt);
    }
    load_sess_open(s);
}

/* ------------------------------------------------------------------ phases */

static void
load_hold_begin(struct load_worker *w)
{
    w->phase = 2;
    w->st->phase = 2;
    w->st->t_hold_start = bench_now();
    w->st->req_at_hold_start = w->st->requests;
    w->st->bytes_at_hold_start = w->st->bytes_in + w->st->bytes_out;
    double hold = w->o->mode == BENCH_MODE_STREAM ? w->o->max_s : w->o->hold_s;
    struct timeval tv = {(time_t)hold, (suseconds_t)((hold - (double)(time_t)hold) * 1e6)};
    evtimer_add(w->stop_ev, &tv);
    if (w->o->mode == BENCH_MODE_STREAM && w->st->streams_done + w->st->failed >= w->o->sessions)
        event_active(w->stop_ev, 0, 0);
}

static void
load_ramp_cb(evutil_socket_t fd, short what, void *arg)
{
    struct load_worker *w = arg;
    const struct bench_opts *o = w->o;
    if (w->phase != 1)
        return;
    double el = bench_now() - w->st->t_start;
    double want = o->rate > 0 ? el * o->rate + 1 : (double)o->sessions;
    for (unsigned i = 0; i < 2000 && w->launched < o->sessions && w->launched < want; i++) {
        load_sess_start(w);
        w->launched++;
    }
    if (w->launched >= o->sessions && w->pending == 0)
        load_hold_begin(w);
}

static void
load_stop_cb(evutil_socket_t fd, short what, void *arg)
{
    struct load_worker *w = arg;
    if (w->phase >= 3)
        return;
    if (w->phase == 1) { /* max time hit during the ramp */
        w->st->t_hold_start = bench_now();
        w->st->req_at_hold_start = w->st->requests;
        w->st->bytes_at_hold_start = w->st->bytes_in + w->st->bytes_out;
    }
    w->st->t_hold_end = bench_now();
    w->st->req_at_hold_end = w->st->requests;
    w->st->bytes_at_hold_end = w->st->bytes_in + w->st->bytes_out;
    w->st->up_at_hold_end = w->st->up;
    w->phase = 3;
    w->st->phase = 3;
    for (struct load_sess *s = w->all; s; s = s->next)
        load_sess_end(s, false);
    event_base_loopexit(w->base, NULL);
}

int
bench_worker_run(const struct bench_opts *o, struct bench_stats *st, unsigned index)
{
    struct load_worker w;
    memset(&w, 0, sizeof w);
    w.o = o;
    w.st = st;
    w.index = index;
    srandom((unsigned)(getpid() ^ (unsigned)load_now_us()));
    w.base = event_base_new();
    if (!w.base) {
        bench_err(st, BENCH_E_LOCAL, "event_base_new failed");
        return 1;
    }
    if (o->tls) {
        w.ssl = SSL_CTX_new(TLS_client_method());
        SSL_CTX_set_verify(w.ssl, SSL_VERIFY_NONE, NULL);
        SSL_CTX_set_min_proto_version(w.ssl, TLS1_2_VERSION);
        SSL_CTX_set_session_cache_mode(w.ssl, SSL_SESS_CACHE_OFF);
        static const unsigned char alpn[] = "\x08http/1.1";
        SSL_CTX_set_alpn_protos(w.ssl, alpn, sizeof alpn - 1);
    }
    w.addr.sin_family = AF_INET;
    w.addr.sin_port = htons((uint16_t)o->port);
    inet_pton(AF_INET, o->host, &w.addr.sin_addr);
    snprintf(w.auth_word, sizeof w.auth_word, "%s",
             o->auth == BENCH_AUTH_NEGOTIATE ? "Negotiate" : "NTLM");
    snprintf(w.host_hdr, sizeof w.host_hdr, "%s", o->hostname);
    if (o->mode == BENCH_MODE_STREAM) {
        w.stream_pdu = calloc(1, o->pdu_bytes);
        load_req_header(w.stream_pdu, (uint16_t)o->pdu_bytes, 1);
        memcpy(w.stream_pdu + 24, "BSTR", 4);
    }
    if (o->auth != BENCH_AUTH_NONE) {
        char why[300];
        if (bench_gss_init(o->auth, o->domain, o->user, o->password, o->hostname, why,
                           sizeof why) != 0) {
            bench_err(st, BENCH_E_LOCAL, "%s", why);
            st->phase = 4;
            return 1;
        }
        /* users[0] is the credential bench_gss_init took; users[i] becomes credential i */
        for (unsigned i = 1; i < o->nusers; i++) {
            if (bench_gss_add_cred(o->users[i].domain, o->users[i].user, o->users[i].password, why,
                                   sizeof why) != (int)i) {
                bench_err(st, BENCH_E_LOCAL, "user %s: %s", o->users[i].user, why);
                st->phase = 4;
                return 1;
            }
        }
    }
    st->t_start = bench_now();
    st->phase = 1;
    w.phase = 1;
    w.ramp_ev = event_new(w.base, -1, EV_PERSIST, load_ramp_cb, &w);
    struct timeval rt = {0, 5000};
    event_add(w.ramp_ev, &rt);
    w.stop_ev = evtimer_new(w.base, load_stop_cb, &w);
    w.max_ev = evtimer_new(w.base, load_stop_cb, &w);
    struct timeval mt = {(time_t)o->max_s, 0};
    evtimer_add(w.max_ev, &mt);
    /* the ramp also ends (hold begins) when the setup timeout has passed for everyone */
    event_base_dispatch(w.base);
    st->t_end = bench_now();
    st->phase = 4;
    /* free everything (bounded: sessions were all ended in load_stop_cb) */
    while (w.all) {
        struct load_sess *n = w.all->next;
        free(w.all);
        w.all = n;
    }
    event_free(w.ramp_ev);
    event_free(w.stop_ev);
    event_free(w.max_ev);
    if (w.ssl)
        SSL_CTX_free(w.ssl);
    free(w.stream_pdu);
    event_base_free(w.base);
    return 0;
}
