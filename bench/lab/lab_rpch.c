/*
 * exshim-lab: /rpc/rpcproxy.dll, the RPC over HTTP v2 proxy roles of IIS (MS-RPCH).
 *
 * Virtual connections are keyed by the VirtualConnectionCookie, bytes 32..47 of the first PDU
 * of each channel (CONN/A1 on RPC_OUT_DATA, CONN/B1 on RPC_IN_DATA). The lab plays both proxy
 * roles and the server:
 *   - RPC_OUT_DATA (CL 76, CONN/A1): "200 Success", Content-Length 1073741824, then CONN/A3
 *     at once and CONN/C2 as soon as the IN channel of the same virtual connection is there;
 *     an RTS Ping every keep-alive interval afterwards.
 *   - RPC_IN_DATA (CL >= 128 KiB, CONN/B1 first): never answered; every later PDU (framed by
 *     frag_length at offset 8) that is not RTS, and every RTS PDU with the ECHO flag (0x40),
 *     is copied to the OUT channel in order. Other RTS PDUs (Ping, FlowControlAck,
 *     Keep-Alive) are consumed.
 *   - CL <= 0x10 on either method: an echo request, answered with the 20-byte Echo PDU.
 *   - Recycling, simplified: a new RPC_IN_DATA starting with IN_R1/A1 or IN_R2/A1 takes over
 *     the IN side of its virtual connection (the old IN channel is closed); a new
 *     RPC_OUT_DATA (CL 120) starting with OUT_R1/A3 or OUT_R2/A3 gets its 200 at once, and
 *     takes over the OUT side when the last 24 bytes (OUT_R1/A11, OUT_R2/C1) arrive (the old
 *     OUT channel flushes and closes). With --rpc-recycle BYTES the lab asks for it: OUT_R1/A2
 *     on an OUT channel once that many bytes were sent. The RTS exchanges with the RPC server
 *     that the real proxies run meanwhile are not simulated.
 */
#include "bench/lab/lab.h"

#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#define RTS_PTYPE 0x14
#define RTS_FLAG_PING 0x0001
#define RTS_FLAG_ECHO 0x0040
#define OUT_CONTENT_LENGTH 1073741824ULL
#define VC_BUCKETS 4096
#define PDU_MAX 65535

struct lab_vc {
    uint8_t cookie[16];
    struct lab_conn *in, *out;
    struct lab_conn *out_next; /* successor OUT channel between OUT_Rx/A3 and A11/C1 */
    bool c2_sent;
    struct lab_vc *next;
};

static struct lab_vc *vc_table[VC_BUCKETS];

static uint16_t
rd16(const uint8_t *p)
{
    return (uint16_t)(p[0] | (p[1] << 8));
}

static void
wr32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static unsigned
vc_hash(const uint8_t *ck)
{
    uint32_t h = 2166136261u;
    for (int i = 0; i < 16; i++)
        h = (h ^ ck[i]) * 16777619u;
    return h % VC_BUCKETS;
}

static struct lab_vc *
vc_get(const uint8_t *ck, bool create)
{
    unsigned b = vc_hash(ck);
    for (struct lab_vc *v = vc_table[b]; v != NULL; v = v->next)
        if (memcmp(v->cookie, ck, 16) == 0)
            return v;
    if (!create)
        return NULL;
    struct lab_vc *v = calloc(1, sizeof(*v));
    if (v == NULL)
        return NULL;
    memcpy(v->cookie, ck, 16);
    v->next = vc_table[b];
    vc_table[b] = v;
    return v;
}

static void
vc_remove(struct lab_vc *v)
{
    struct lab_vc **pp = &vc_table[vc_hash(v->cookie)];
    while (*pp != NULL && *pp != v)
        pp = &(*pp)->next;
    if (*pp == v)
        *pp = v->next;
    free(v);
}

/* 20-byte RTS header with no commands. */
static void
rts_header(uint8_t *p, uint16_t len, uint16_t flags, uint16_t ncmds)
{
    memset(p, 0, 20);
    p[0] = 5;
    p[2] = RTS_PTYPE;
    p[3] = 0x03;
    p[4] = 0x10;
    p[8] = (uint8_t)len;
    p[9] = (uint8_t)(len >> 8);
    p[16] = (uint8_t)flags;
    p[17] = (uint8_t)(flags >> 8);
    p[18] = (uint8_t)ncmds;
}

static void
out_write(struct lab_conn *out, const void *p, size_t n)
{
    if (out->rpc_left < n)
        return; /* the declared Content-Length is used up: recycling is not simulated */
    out->rpc_left -= n;
    bufferevent_write(out->bev, p, n);
}

static void
send_c2(struct lab_vc *v)
{
    uint8_t c2[44];
    rts_header(c2, 44, 0, 3);
    wr32(c2 + 20, 6); /* Version */
    wr32(c2 + 24, 1);
    wr32(c2 + 28, 0); /* ReceiveWindowSize */
    wr32(c2 + 32, 0x10000);
    wr32(c2 + 36, 2); /* ConnectionTimeout */
    wr32(c2 + 40, g_lab.preset.rpc_conn_timeout_ms);
    out_write(v->out, c2, sizeof(c2));
    v->c2_sent = true;
}

static unsigned
ping_ms(void)
{
    const struct lab_preset *p = &g_lab.preset;
    return p->rpc_ping_ms ? p->rpc_ping_ms : p->rpc_conn_timeout_ms / 2;
}

static void
arm_ping(struct lab_conn *c)
{
    unsigned ms = ping_ms();
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    if (ms > 0)
        evtimer_add(c->tick_ev, &tv);
}

static void
rpc_error(struct lab_conn *c, const char *code)
{
    struct evbuffer *out = bufferevent_get_output(c->bev);
    char body[64];
    int n = snprintf(body, sizeof(body), "RPC EEInfo:%s", code);
    evbuffer_add_printf(out,
                        "HTTP/1.1 503 RPC Error: %s\r\n"
                        "Content-Type: text/html\r\n"
                        "Server: %s\r\n"
                        "X-Powered-By: ASP.NET\r\n"
                        "Date: %s\r\n"
                        "Content-Length: %d\r\n\r\n",
                        code, g_lab.preset.server, lab_http_date(), n);
    evbuffer_add(out, body, (size_t)n);
    lab_log_access(c, 503);
}

/* The RPC proxy's ValidPorts check on "?server:port": an unlisted port is refused before any
 * RTS is read, with the 503 that Outlook and the Remote Connectivity Analyzer report as
 * RPC_S_SERVER_UNAVAILABLE (seeds/004). No list configured: every port is valid. */
static bool
port_valid(const struct lab_conn *c)
{
    const struct lab_preset *p = &g_lab.preset;
    const char *colon = strrchr(c->req.query, ':');
    char *end = NULL;
    unsigned long port;
    if (p->rpc_nvalid_ports == 0)
        return true;
    if (colon == NULL)
        return false;
    port = strtoul(colon + 1, &end, 10);
    if (end == colon + 1 || (*end != '\0' && *end != '&'))
        return false;
    for (size_t i = 0; i < p->rpc_nvalid_ports; i++)
        if (p->rpc_valid_ports[i] == port)
            return true;
    return false;
}

int
lab_rpc_begin(struct lab_conn *c)
{
    bool in = strcmp(c->req.method, "RPC_IN_DATA") == 0;
    if (!port_valid(c)) {
        lab_log("rpc conn=%llu peer=%s target ?%s is not in ValidPorts: 503",
                (unsigned long long)c->id, c->peer, c->req.query);
        rpc_error(c, "6ba");
        return lab_conn_finish(c);
    }
    if (c->req.body_kind != H1_BODY_LENGTH && c->req.body_kind != H1_BODY_NONE) {
        rpc_error(c, "6ba");
        return lab_conn_finish(c);
    }
    uint64_t cl = c->req.body_kind == H1_BODY_LENGTH ? c->req.content_length : 0;
    if (cl <= 0x10)
        return lab_conn_read_body(c); /* echo request */
    /* Both channels' request bodies are PDU streams, read PDU by PDU as they arrive: an OUT
     * channel's 120-byte replacement body is answered after its first 96 bytes (OUT_Rx/A3),
     * before the last 24 are sent. */
    c->st = LAB_ST_RPC_IN;
    c->rpc_req_left = cl;
    c->rpc_left = 0;
    lab_conn_continue(c);
    if (in)
        lab_log_access(c, 0); /* an IN channel is never answered */
    lab_conn_touch(c);
    return lab_rpc_input(c);
}

int
lab_rpc_body_done(struct lab_conn *c)
{
    struct evbuffer *out = bufferevent_get_output(c->bev);
    uint8_t echo[20];
    rts_header(echo, 20, RTS_FLAG_ECHO, 0);
    evbuffer_add_printf(out, "HTTP/1.1 200 Success\r\n");
    lab_headers_200(c, out, "application/rpc");
    evbuffer_add_printf(out, "Content-Length: 20\r\nConnection: Keep-Alive\r\n\r\n");
    evbuffer_add(out, echo, sizeof(echo));
    lab_log_access(c, 200);
    return 0;
}

/* The 200 that opens an OUT channel's response body. */
static void
out_open(struct lab_conn *c)
{
    struct evbuffer *out = bufferevent_get_output(c->bev);
    c->st = LAB_ST_RPC_OUT;
    c->rpc_left = OUT_CONTENT_LENGTH;
    evbuffer_add_printf(out, "HTTP/1.1 200 Success\r\n");
    lab_headers_200(c, out, "application/rpc");
    evbuffer_add_printf(out, "Content-Length: %llu\r\n\r\n",
                        (unsigned long long)OUT_CONTENT_LENGTH);
    lab_log_access(c, 200);
    /* resume the producer (IN channel) early enough to keep the pipe full */
    bufferevent_setwatermark(c->bev, EV_WRITE, LAB_OUT_HIGH / 2, 0);
    lab_conn_touch(c);
}

/* Server-initiated OUT recycling (--rpc-recycle): OUT_R1/A2 once enough has been sent. */
static void
maybe_recycle(struct lab_conn *out)
{
    unsigned limit = g_lab.preset.rpc_recycle_bytes;
    if (limit == 0 || out->recycle_sent || OUT_CONTENT_LENGTH - out->rpc_left < limit)
        return;
    uint8_t a2[28];
    rts_header(a2, 28, 0x0004, 1);
    wr32(a2 + 20, 0x0d); /* Destination */
    wr32(a2 + 24, 0);    /* FDClient */
    out->recycle_sent = true;
    out_write(out, a2, sizeof(a2));
    lab_log("rpc conn=%llu peer=%s OUT_R1/A2 sent: please recycle this OUT channel",
            (unsigned long long)out->id, out->peer);
}

/* The successor OUT channel takes over: the predecessor flushes and closes. */
static void
out_swap(struct lab_vc *v)
{
    struct lab_conn *old = v->out, *c = v->out_next;
    v->out = c;
    v->out_next = NULL;
    arm_ping(c);
    lab_log("rpc conn=%llu peer=%s OUT channel replaces conn=%llu", (unsigned long long)c->id,
            c->peer, old ? (unsigned long long)old->id : 0ULL);
    if (old != NULL) {
        old->vc = NULL;
        lab_conn_finish(old);
    }
}

/* First PDU of a channel body. Returns 0, or -1 when c was freed. */
static int
first_pdu(struct lab_conn *c, bool in_channel, const uint8_t *p, uint16_t flen)
{
    uint16_t flags = flen >= 20 ? rd16(p + 16) : 0xffff, ncmds = flen >= 20 ? rd16(p + 18) : 0;
    bool has_vc = flen >= 48 && p[2] == RTS_PTYPE && p[28] == 3;
    struct lab_vc *v;
    if (has_vc && in_channel && flags == 0 && ncmds == 6) { /* CONN/B1 */
        v = vc_get(p + 32, true);
        if (v == NULL || v->in != NULL)
            goto bad;
        v->in = c;
        c->vc = v;
        if (v->out != NULL && !v->c2_sent)
            send_c2(v);
        return 0;
    }
    if (has_vc && in_channel && flags == 0x0004 && ncmds == 4 && flen >= 88) { /* IN_Rx/A1 */
        v = vc_get(p + 32, false);
        if (v == NULL)
            goto bad;
        struct lab_conn *old = v->in;
        v->in = c;
        c->vc = v;
        lab_log("rpc conn=%llu peer=%s IN channel replaces conn=%llu", (unsigned long long)c->id,
                c->peer, old ? (unsigned long long)old->id : 0ULL);
        if (old != NULL) {
            old->vc = NULL;
            lab_conn_finish(old);
        }
        return 0;
    }
    if (has_vc && !in_channel && flags == 0 && ncmds == 4 && flen >= 76) { /* CONN/A1 */
        v = vc_get(p + 32, true);
        if (v == NULL || v->out != NULL)
            goto bad;
        v->out = c;
        c->vc = v;
        out_open(c);
        uint8_t a3[28];
        rts_header(a3, 28, 0, 1);
        wr32(a3 + 20, 2); /* ConnectionTimeout */
        wr32(a3 + 24, g_lab.preset.rpc_conn_timeout_ms);
        out_write(c, a3, sizeof(a3));
        if (v->in != NULL && !v->c2_sent)
            send_c2(v);
        arm_ping(c);
        return 0;
    }
    if (has_vc && !in_channel && flags == 0x0004 && ncmds == 5 && flen >= 96) { /* OUT_Rx/A3 */
        v = vc_get(p + 32, false);
        if (v == NULL || v->out_next != NULL)
            goto bad;
        v->out_next = c;
        c->vc = v;
        out_open(c); /* the swap waits for OUT_R1/A11 or OUT_R2/C1 */
        return 0;
    }
bad:
    lab_log("rpc conn=%llu peer=%s unexpected first PDU (flags 0x%x, %u commands, %u bytes)",
            (unsigned long long)c->id, c->peer, flags, ncmds, flen);
    rpc_error(c, "6ba");
    return lab_conn_finish(c);
}

int
lab_rpc_input(struct lab_conn *c)
{
    struct evbuffer *in = bufferevent_get_input(c->bev);
    bool in_channel = strcmp(c->req.method, "RPC_IN_DATA") == 0;
    while (c->st == LAB_ST_RPC_IN || c->st == LAB_ST_RPC_OUT) {
        if (c->rpc_req_left == 0) {
            if (c->st == LAB_ST_RPC_IN) {
                lab_conn_resume(c); /* the IN channel's declared length is used up */
                return 0;
            }
            evbuffer_drain(in, evbuffer_get_length(in)); /* nothing more on an OUT channel */
            return 0;
        }
        size_t avail = evbuffer_get_length(in);
        uint8_t h[96];
        if (avail < 16)
            return 0;
        evbuffer_copyout(in, h, avail < sizeof(h) ? avail : sizeof(h));
        uint16_t flen = rd16(h + 8);
        if (h[0] != 5 || flen < 16 || flen > c->rpc_req_left) {
            lab_log("rpc conn=%llu peer=%s bad PDU in the request body (ver %u len %u)",
                    (unsigned long long)c->id, c->peer, h[0], flen);
            return lab_conn_finish(c);
        }
        if (avail < flen)
            return 0;
        if (!c->rpc_started) {
            c->rpc_started = true;
            c->rpc_req_left -= flen;
            if (first_pdu(c, in_channel, h, flen) < 0)
                return -1;
            evbuffer_drain(in, flen);
            if (c->st == LAB_ST_CLOSING)
                return 0;
            continue;
        }
        struct lab_vc *v = c->vc;
        c->rpc_req_left -= flen;
        if (!in_channel) {
            /* OUT_R1/A11 or OUT_R2/C1 after OUT_Rx/A3: the successor takes over */
            evbuffer_drain(in, flen);
            if (v != NULL && v->out_next == c)
                out_swap(v);
            continue;
        }
        bool echo = h[2] != RTS_PTYPE || (flen >= 20 && (rd16(h + 16) & RTS_FLAG_ECHO));
        struct lab_conn *out = v ? v->out : NULL;
        if (echo && out != NULL && out->rpc_left >= flen) {
            out->rpc_left -= flen;
            evbuffer_remove_buffer(in, bufferevent_get_output(out->bev), flen);
            maybe_recycle(out);
        } else {
            evbuffer_drain(in, flen);
        }
        if (out != NULL && evbuffer_get_length(bufferevent_get_output(out->bev)) > LAB_OUT_HIGH) {
            bufferevent_disable(c->bev, EV_READ); /* the OUT side drains first */
            c->in_paused = true;
            return 0;
        }
    }
    return 0;
}

void
lab_rpc_drained(struct lab_conn *out)
{
    struct lab_vc *v = out->vc;
    if (v == NULL || v->in == NULL || !v->in->in_paused)
        return;
    struct lab_conn *in = v->in;
    in->in_paused = false;
    bufferevent_enable(in->bev, EV_READ);
    lab_rpc_input(in); /* may free in, and with it out: nothing is touched afterwards */
}

void
lab_rpc_tick(struct lab_conn *c)
{
    uint8_t ping[20];
    rts_header(ping, 20, RTS_FLAG_PING, 0);
    out_write(c, ping, sizeof(ping));
    arm_ping(c);
}

void
lab_rpc_detach(struct lab_conn *c)
{
    struct lab_vc *v = c->vc;
    struct lab_conn *other;
    if (v == NULL)
        return;
    c->vc = NULL;
    if (v->out_next == c) {
        v->out_next = NULL; /* a successor OUT channel gave up before taking over */
        return;
    }
    if (v->in == c) {
        v->in = NULL;
        other = v->out;
    } else {
        v->out = NULL;
        other = v->in;
    }
    if (v->out_next != NULL) {
        v->out_next->vc = NULL;
        lab_conn_finish(v->out_next);
        v->out_next = NULL;
    }
    if (other == NULL) {
        vc_remove(v);
        return;
    }
    /* one channel gone ends the virtual connection: the other channel is closed too */
    other->vc = NULL;
    if (v->in == other)
        v->in = NULL;
    else
        v->out = NULL;
    vc_remove(v);
    lab_log("rpc conn=%llu peer=%s channel closed because its peer channel conn=%llu closed",
            (unsigned long long)other->id, other->peer, (unsigned long long)c->id);
    lab_conn_finish(other);
}
