/*
 * exshim-bench: command line, worker processes, live progress, final report.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench/load/bench.h"

struct bench_opts g_opt;

static void
bench_usage(FILE *f)
{
    fprintf(f,
            "usage: exshim-bench --url http[s]://127.0.0.1:PORT --mode MODE [options]\n"
            "  --mode rpc|mapi|stream|handshake\n"
            "  --auth ntlm|negotiate|none       (default ntlm)\n"
            "  --users FILE        DOMAIN:user:password lines: one user per session, round robin\n"
            "  --user DOMAIN\\\\user --password PW\n"
            "  --sessions N        sessions (stream: channels; handshake: concurrent loops)\n"
            "  --rate R            new sessions per second during the ramp (0 = all at once)\n"
            "  --hold S            seconds to hold after the ramp (stream: until done)\n"
            "  --max-time S        hard bound for the whole run (default 120)\n"
            "  --setup-timeout S   a session not established in S seconds fails (default 30)\n"
            "  --echo-ms MS        rpc: echo PDU period per session (default 2000; 0 = none)\n"
            "  --ping-ms MS        rpc: RTS Ping period on the IN channel (default 15000)\n"
            "  --req-rate R        mapi: Execute per second per session (0 = back to back)\n"
            "  --no-notify         mapi: no NotificationWait connection\n"
            "  --exec-bytes N      mapi: Execute request body size (default 256)\n"
            "  --stream-bytes N    stream: bytes per channel, K/M/G suffixes (default 1G; capped\n"
            "                      at 1 GiB - 1 MiB, the lab's OUT channel Content-Length)\n"
            "  --pdu-bytes N       stream: PDU size (default 16384, max 65532)\n"
            "  --procs N           worker processes (default: enough for the fd limit)\n"
            "  --proxy-pid PID     measure this process tree (repeatable)\n"
            "  --lab-pid PID       measure the lab too\n"
            "  --json FILE         write the report as JSON\n"
            "  --label TEXT        name of this run in the report\n"
            "  --quiet             no progress line\n"
            "  --source-addrs A.B.C.D-E|FILE  bind sessions round robin to these client\n"
            "                      addresses (a range of the last octet, or one per line)\n"
            "  --reconnect         a session whose channel fails starts over: new connections,\n"
            "                      new NTLM (backoff 250 ms doubling to 2 s); counted\n");
}

static uint64_t
bench_parse_size(const char *s)
{
    char *end;
    double v = strtod(s, &end);
    switch (*end) {
    case 'k':
    case 'K':
        v *= 1024;
        break;
    case 'm':
    case 'M':
        v *= 1024 * 1024;
        break;
    case 'g':
    case 'G':
        v *= 1024.0 * 1024 * 1024;
        break;
    default:
        break;
    }
    return v < 0 ? 0 : (uint64_t)v;
}

static int
atoi_safe_port(const char *s)
{
    char *end;
    long v = strtol(s, &end, 10);
    return v > 0 && v < 65536 ? (int)v : -1;
}

static int
bench_parse_url(const char *url, struct bench_opts *o)
{
    const char *p;
    if (strncmp(url, "https://", 8) == 0) {
        o->tls = true;
        p = url + 8;
    } else if (strncmp(url, "http://", 7) == 0) {
        p = url + 7;
    } else {
        return -1;
    }
    const char *colon = strchr(p, ':');
    if (!colon || (size_t)(colon - p) >= sizeof o->host)
        return -1;
    memcpy(o->host, p, (size_t)(colon - p));
    o->host[colon - p] = 0;
    o->port = atoi_safe_port(colon + 1);
    return o->port > 0 ? 0 : -1;
}

static struct bench_user bench_users[BENCH_MAX_USERS];
static uint32_t bench_srcs[BENCH_MAX_SRCS];

/* Every DOMAIN:user:password line (blank lines and # comments skipped). Returns the count, or
 * -1 with a message printed. */
static int
bench_read_users(const char *path, struct bench_opts *o)
{
    FILE *f = fopen(path, "r");
    char line[512];
    unsigned n = 0, lineno = 0;
    if (!f) {
        fprintf(stderr, "--users %s: %s\n", path, strerror(errno));
        return -1;
    }
    while (fgets(line, sizeof line, f)) {
        lineno++;
        line[strcspn(line, "\r\n")] = 0;
        if (!line[0] || line[0] == '#')
            continue;
        char *a = strchr(line, ':'), *b = a ? strchr(a + 1, ':') : NULL;
        if (!b) {
            fprintf(stderr, "--users %s:%u: not DOMAIN:user:password\n", path, lineno);
            fclose(f);
            return -1;
        }
        if (n == BENCH_MAX_USERS) {
            fprintf(stderr, "--users %s: more than %d users\n", path, BENCH_MAX_USERS);
            fclose(f);
            return -1;
        }
        *a = 0;
        *b = 0;
        struct bench_user *u = &bench_users[n++];
        snprintf(u->domain, sizeof u->domain, "%.63s", line);
        snprintf(u->user, sizeof u->user, "%.63s", a + 1);
        snprintf(u->password, sizeof u->password, "%.127s", b + 1);
    }
    fclose(f);
    if (!n) {
        fprintf(stderr, "--users %s: no DOMAIN:user:password line\n", path);
        return -1;
    }
    memcpy(o->domain, bench_users[0].domain, sizeof o->domain);
    memcpy(o->user, bench_users[0].user, sizeof o->user);
    memcpy(o->password, bench_users[0].password, sizeof o->password);
    o->users = bench_users;
    o->nusers = n;
    return (int)n;
}

static int
bench_add_src(const char *s, unsigned *n)
{
    struct in_addr a;
    if (inet_pton(AF_INET, s, &a) != 1)
        return -1;
    if (*n == BENCH_MAX_SRCS)
        return -2;
    bench_srcs[(*n)++] = a.s_addr;
    return 0;
}

/* A.B.C.D-E (last octet D to E) or a file with one IPv4 address a line. */
static int
bench_read_srcs(const char *arg, struct bench_opts *o)
{
    unsigned n = 0;
    unsigned a, b, c, d, e;
    char tail;
    if (sscanf(arg, "%u.%u.%u.%u-%u%c", &a, &b, &c, &d, &e, &tail) == 5) {
        if (a > 255 || b > 255 || c > 255 || d > 255 || e > 255 || e < d) {
            fprintf(stderr, "--source-addrs %s: not A.B.C.D-E with D <= E <= 255\n", arg);
            return -1;
        }
        for (unsigned x = d; x <= e; x++) {
            char ip[32];
            snprintf(ip, sizeof ip, "%u.%u.%u.%u", a, b, c, x);
            bench_add_src(ip, &n);
        }
    } else {
        FILE *f = fopen(arg, "r");
        char line[128];
        unsigned lineno = 0;
        if (!f) {
            fprintf(stderr, "--source-addrs %s: not a range A.B.C.D-E, and %s\n", arg,
                    strerror(errno));
            return -1;
        }
        while (fgets(line, sizeof line, f)) {
            lineno++;
            line[strcspn(line, "\r\n \t")] = 0;
            if (!line[0] || line[0] == '#')
                continue;
            int rc = bench_add_src(line, &n);
            if (rc != 0) {
                fprintf(stderr, "--source-addrs %s:%u: %s\n", arg, lineno,
                        rc == -1 ? "not an IPv4 address" : "too many addresses");
                fclose(f);
                return -1;
            }
        }
        fclose(f);
    }
    if (!n) {
        fprintf(stderr, "--source-addrs %s: no address\n", arg);
        return -1;
    }
    o->srcs = bench_srcs;
    o->nsrcs = n;
    return 0;
}

static void
bench_sum(struct bench_stats *tot, const struct bench_stats *st, unsigned n)
{
    memset(tot, 0, sizeof *tot);
    for (unsigned i = 0; i < n; i++) {
        const struct bench_stats *s = &st[i];
        tot->attempted += s->attempted;
        tot->established += s->established;
        tot->failed += s->failed;
        tot->up += s->up;
        tot->up_peak += s->up_peak;
        tot->chans_up += s->chans_up;
        tot->chans_peak += s->chans_peak;
        tot->handshakes += s->handshakes;
        tot->requests += s->requests;
        tot->pings_in += s->pings_in;
        tot->bytes_out += s->bytes_out;
        tot->bytes_in += s->bytes_in;
        tot->payload_out += s->payload_out;
        tot->payload_in += s->payload_in;
        tot->streams_done += s->streams_done;
        tot->up_at_hold_end += s->up_at_hold_end;
        tot->reconnects += s->reconnects;
        tot->reconnected += s->reconnected;
        tot->setup_retries += s->setup_retries;
        tot->reauths += s->reauths;
        for (int e = 0; e < BENCH_E_MAX; e++) {
            tot->err[e] += s->err[e];
            if (!tot->err_example[e][0] && s->err_example[e][0])
                memcpy(tot->err_example[e], s->err_example[e], sizeof tot->err_example[e]);
        }
    }
}

static void
bench_json_str(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"' || *s == '\\')
            fprintf(f, "\\%c", *s);
        else if ((unsigned char)*s < 0x20)
            fprintf(f, "\\u%04x", (unsigned char)*s);
        else
            fputc(*s, f);
    }
    fputc('"', f);
}

static const char *
bench_mode_name(enum bench_mode m)
{
    switch (m) {
    case BENCH_MODE_RPC:
        return "rpc";
    case BENCH_MODE_MAPI:
        return "mapi";
    case BENCH_MODE_STREAM:
        return "stream";
    case BENCH_MODE_HANDSHAKE:
        return "handshake";
    }
    return "?";
}

static volatile sig_atomic_t bench_interrupted;
static void
bench_on_signal(int sig)
{
    bench_interrupted = sig;
}

int
main(int argc, char **argv)
{
    struct bench_opts *o = &g_opt;
    memset(o, 0, sizeof *o);
    o->mode = BENCH_MODE_RPC;
    o->auth = BENCH_AUTH_NTLM;
    o->sessions = 1;
    o->rate = 100;
    o->hold_s = 10;
    o->max_s = 120;
    o->setup_timeout_s = 30;
    o->echo_ms = 2000;
    o->ping_ms = 15000;
    o->notify = true;
    o->exec_bytes = 256;
    o->stream_bytes = 1ULL << 30;
    o->pdu_bytes = 16384;
    o->in_cl = 1ULL << 30;
    o->progress = isatty(2);
    snprintf(o->hostname, sizeof o->hostname, "mail.lab.local");
    const char *url = NULL;

    enum {
        O_URL = 256,
        O_MODE,
        O_AUTH,
        O_USERS,
        O_USER,
        O_PASS,
        O_SESS,
        O_RATE,
        O_HOLD,
        O_MAX,
        O_SETUP,
        O_ECHO,
        O_PING,
        O_REQRATE,
        O_NONOTIFY,
        O_EXEC,
        O_SBYTES,
        O_PDU,
        O_PROCS,
        O_PPID,
        O_LPID,
        O_JSON,
        O_LABEL,
        O_QUIET,
        O_HOSTNAME,
        O_SRCS,
        O_RECONNECT,
    };
    static const struct option lo[] = {
        {"url", 1, 0, O_URL},
        {"mode", 1, 0, O_MODE},
        {"auth", 1, 0, O_AUTH},
        {"users", 1, 0, O_USERS},
        {"user", 1, 0, O_USER},
        {"password", 1, 0, O_PASS},
        {"sessions", 1, 0, O_SESS},
        {"rate", 1, 0, O_RATE},
        {"hold", 1, 0, O_HOLD},
        {"max-time", 1, 0, O_MAX},
        {"setup-timeout", 1, 0, O_SETUP},
        {"echo-ms", 1, 0, O_ECHO},
        {"ping-ms", 1, 0, O_PING},
        {"req-rate", 1, 0, O_REQRATE},
        {"no-notify", 0, 0, O_NONOTIFY},
        {"exec-bytes", 1, 0, O_EXEC},
        {"stream-bytes", 1, 0, O_SBYTES},
        {"pdu-bytes", 1, 0, O_PDU},
        {"procs", 1, 0, O_PROCS},
        {"proxy-pid", 1, 0, O_PPID},
        {"lab-pid", 1, 0, O_LPID},
        {"json", 1, 0, O_JSON},
        {"label", 1, 0, O_LABEL},
        {"quiet", 0, 0, O_QUIET},
        {"hostname", 1, 0, O_HOSTNAME},
        {"source-addrs", 1, 0, O_SRCS},
        {"reconnect", 0, 0, O_RECONNECT},
        {"help", 0, 0, 'h'},
        {0, 0, 0, 0},
    };
    int ch;
    while ((ch = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
        switch (ch) {
        case O_URL:
            url = optarg;
            break;
        case O_MODE:
            if (!strcmp(optarg, "rpc"))
                o->mode = BENCH_MODE_RPC;
            else if (!strcmp(optarg, "mapi"))
                o->mode = BENCH_MODE_MAPI;
            else if (!strcmp(optarg, "stream"))
                o->mode = BENCH_MODE_STREAM;
            else if (!strcmp(optarg, "handshake") || !strcmp(optarg, "hs"))
                o->mode = BENCH_MODE_HANDSHAKE;
            else {
                fprintf(stderr, "unknown mode %s\n", optarg);
                return 2;
            }
            break;
        case O_AUTH:
            if (!strcasecmp(optarg, "ntlm"))
                o->auth = BENCH_AUTH_NTLM;
            else if (!strcasecmp(optarg, "negotiate"))
                o->auth = BENCH_AUTH_NEGOTIATE;
            else if (!strcasecmp(optarg, "none"))
                o->auth = BENCH_AUTH_NONE;
            else {
                fprintf(stderr, "unknown auth %s\n", optarg);
                return 2;
            }
            break;
        case O_USERS:
            if (bench_read_users(optarg, o) < 0)
                return 2;
            break;
        case O_SRCS:
            if (bench_read_srcs(optarg, o) != 0)
                return 2;
            break;
        case O_RECONNECT:
            o->reconnect = true;
            break;
        case O_USER: {
            const char *bs = strchr(optarg, '\\');
            if (bs) {
                snprintf(o->domain, sizeof o->domain, "%.*s", (int)(bs - optarg), optarg);
                snprintf(o->user, sizeof o->user, "%s", bs + 1);
            } else {
                snprintf(o->user, sizeof o->user, "%s", optarg);
            }
            o->users = NULL; /* one user from now on */
            o->nusers = 0;
            break;
        }
        case O_PASS:
            snprintf(o->password, sizeof o->password, "%s", optarg);
            break;
        case O_SESS:
            o->sessions = (unsigned)strtoul(optarg, NULL, 10);
            break;
        case O_RATE:
            o->rate = strtod(optarg, NULL);
            break;
        case O_HOLD:
            o->hold_s = strtod(optarg, NULL);
            break;
        case O_MAX:
            o->max_s = strtod(optarg, NULL);
            break;
        case O_SETUP:
            o->setup_timeout_s = strtod(optarg, NULL);
            break;
        case O_ECHO:
            o->echo_ms = (unsigned)strtoul(optarg, NULL, 10);
            break;
        case O_PING:
            o->ping_ms = (unsigned)strtoul(optarg, NULL, 10);
            break;
        case O_REQRATE:
            o->req_rate = strtod(optarg, NULL);
            break;
        case O_NONOTIFY:
            o->notify = false;
            break;
        case O_EXEC:
            o->exec_bytes = (unsigned)strtoul(optarg, NULL, 10);
            break;
        case O_SBYTES:
            o->stream_bytes = bench_parse_size(optarg);
            break;
        case O_PDU:
            o->pdu_bytes = (unsigned)strtoul(optarg, NULL, 10);
            break;
        case O_PROCS:
            o->procs = (unsigned)strtoul(optarg, NULL, 10);
            break;
        case O_PPID:
            if (o->nproxy_pids < 8)
                o->proxy_pids[o->nproxy_pids++] = (pid_t)strtol(optarg, NULL, 10);
            break;
        case O_LPID:
            o->lab_pid = (pid_t)strtol(optarg, NULL, 10);
            break;
        case O_JSON:
            snprintf(o->json_path, sizeof o->json_path, "%s", optarg);
            break;
        case O_LABEL:
            snprintf(o->label, sizeof o->label, "%s", optarg);
            break;
        case O_QUIET:
            o->quiet = true;
            o->progress = false;
            break;
        case O_HOSTNAME:
            snprintf(o->hostname, sizeof o->hostname, "%s", optarg);
            break;
        case 'h':
            bench_usage(stdout);
            return 0;
        default:
            bench_usage(stderr);
            return 2;
        }
    }
    if (!url || bench_parse_url(url, o) != 0) {
        fprintf(stderr, "--url http[s]://HOST:PORT is required (numeric host)\n");
        bench_usage(stderr);
        return 2;
    }
    if (o->auth != BENCH_AUTH_NONE && !o->user[0]) {
        fprintf(stderr, "--users FILE or --user/--password needed for NTLM\n");
        return 2;
    }
    if (o->sessions == 0 || o->sessions > 200000) {
        fprintf(stderr, "--sessions must be 1..200000\n");
        return 2;
    }
    if (o->pdu_bytes < 64 || o->pdu_bytes > 65532)
        o->pdu_bytes = 16384;
    o->pdu_bytes &= ~3u;
    const uint64_t cap = (1ULL << 30) - (1ULL << 20);
    if (o->stream_bytes > cap)
        o->stream_bytes = cap;
    o->stream_bytes &= ~3ULL;
    if (o->mode == BENCH_MODE_STREAM) {
        o->in_cl = o->stream_bytes + (1ULL << 20);
        o->echo_ms = 0;
    }

    /* file descriptors: raise the soft limit to the hard one, then split the load */
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
    unsigned per_session = o->mode == BENCH_MODE_HANDSHAKE ? 1 : 2;
    uint64_t fds = (uint64_t)o->sessions * per_session;
    uint64_t usable = rl.rlim_cur > 1100 ? rl.rlim_cur - 1000 : 100;
    unsigned need = (unsigned)((fds + usable - 1) / usable);
    if (!o->procs)
        o->procs = need ? need : 1;
    if (o->procs < need) {
        fprintf(stderr, "warning: %u processes cannot hold %llu sockets under a %llu fd limit\n",
                o->procs, (unsigned long long)fds, (unsigned long long)rl.rlim_cur);
    }
    if (o->procs > o->sessions)
        o->procs = o->sessions;
    if (o->procs > 64)
        o->procs = 64;
    o->procs_total = o->procs;

    struct bench_stats *st = mmap(NULL, sizeof *st * o->procs, PROT_READ | PROT_WRITE,
                                  MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (st == MAP_FAILED) {
        perror("mmap");
        return 1;
    }
    memset(st, 0, sizeof *st * o->procs);

    struct bench_proc_sample p0 = {0}, p1 = {0}, ps, l0 = {0}, l1 = {0};
    bool have_proxy = bench_proc_sample(o->proxy_pids, o->nproxy_pids, &p0) == 0;
    bool have_lab = o->lab_pid && bench_proc_sample(&o->lab_pid, 1, &l0) == 0;
    uint64_t rss_peak = p0.rss_kb, rss_hold_peak = 0;

    signal(SIGINT, bench_on_signal);
    signal(SIGTERM, bench_on_signal);
    signal(SIGPIPE, SIG_IGN);
    pid_t kids[64];
    double t0 = bench_now();
    for (unsigned i = 0; i < o->procs; i++) {
        pid_t pid = fork();
        if (pid < 0) {
            perror("fork");
            return 1;
        }
        if (pid == 0) {
            signal(SIGINT, SIG_IGN);
            struct bench_opts mine = *o;
            mine.sessions = o->sessions / o->procs + (i < o->sessions % o->procs ? 1 : 0);
            mine.rate = o->rate / o->procs;
            _exit(bench_worker_run(&mine, &st[i], i));
        }
        kids[i] = pid;
    }

    unsigned alive = o->procs;
    double deadline = t0 + o->max_s + o->setup_timeout_s + 15;
    double last_line = 0;
    uint64_t last_req = 0, last_bytes = 0;
    double last_t = t0;
    struct bench_stats tot;
    bool killed = false;
    while (alive) {
        struct timespec ts = {0, 200 * 1000 * 1000};
        nanosleep(&ts, NULL);
        int status;
        pid_t p;
        while ((p = waitpid(-1, &status, WNOHANG)) > 0)
            alive--;
        if (have_proxy && bench_proc_sample(o->proxy_pids, o->nproxy_pids, &ps) == 0) {
            if (ps.rss_kb > rss_peak)
                rss_peak = ps.rss_kb;
            bool holding = false;
            for (unsigned i = 0; i < o->procs; i++)
                holding |= st[i].phase == 2;
            if (holding && ps.rss_kb > rss_hold_peak)
                rss_hold_peak = ps.rss_kb;
            p1 = ps;
        }
        if (have_lab)
            bench_proc_sample(&o->lab_pid, 1, &l1);
        double now = bench_now();
        if ((bench_interrupted || now > deadline) && !killed) {
            for (unsigned i = 0; i < o->procs; i++)
                kill(kids[i], now > deadline + 5 ? SIGKILL : SIGTERM);
            if (now > deadline + 5)
                killed = true;
        }
        if (o->progress && now - last_line >= 1.0) {
            bench_sum(&tot, st, o->procs);
            uint64_t errs = 0;
            for (int e = 0; e < BENCH_E_MAX; e++)
                errs += tot.err[e];
            double rps = (double)(tot.requests - last_req) / (now - last_t);
            fprintf(stderr,
                    "\r[%5.1fs] sessions up %llu/%u  failed %llu  channels %llu  req/s %.0f  "
                    "MB/s %.1f  errors %llu   ",
                    now - t0, (unsigned long long)tot.up, o->sessions,
                    (unsigned long long)tot.failed, (unsigned long long)tot.chans_up, rps,
                    (double)(tot.bytes_in + tot.bytes_out - last_bytes) / 1e6 / (now - last_t),
                    (unsigned long long)errs);
            last_req = tot.requests;
            last_bytes = tot.bytes_in + tot.bytes_out;
            last_t = now;
            last_line = now;
        }
    }
    if (o->progress)
        fputc('\n', stderr);
    double t_end = bench_now();
    struct rusage ru;
    getrusage(RUSAGE_CHILDREN, &ru);
    double bench_cpu = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
                       (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;

    bench_sum(&tot, st, o->procs);
    struct bench_hist lat, setup, lat_ramp;
    memset(&lat, 0, sizeof lat);
    memset(&lat_ramp, 0, sizeof lat_ramp);
    memset(&setup, 0, sizeof setup);
    double hold_dur = 0, hold_req_rate = 0, hold_bytes_rate = 0;
    for (unsigned i = 0; i < o->procs; i++) {
        bench_hist_merge(&lat, &st[i].lat);
        bench_hist_merge(&lat_ramp, &st[i].lat_ramp);
        bench_hist_merge(&setup, &st[i].setup);
        double d = st[i].t_hold_end - st[i].t_hold_start;
        if (d > 0.001) {
            hold_req_rate += (double)(st[i].req_at_hold_end - st[i].req_at_hold_start) / d;
            hold_bytes_rate += (double)(st[i].bytes_at_hold_end - st[i].bytes_at_hold_start) / d;
            if (d > hold_dur)
                hold_dur = d;
        }
    }
    double elapsed = t_end - t0;
    double ramp = 0;
    for (unsigned i = 0; i < o->procs; i++)
        if (st[i].t_hold_start - st[i].t_start > ramp)
            ramp = st[i].t_hold_start - st[i].t_start;
    uint64_t errs = 0;
    for (int e = 0; e < BENCH_E_MAX; e++)
        errs += tot.err[e];
    double proxy_cpu = have_proxy ? p1.cpu_s - p0.cpu_s : -1;
    double lab_cpu = have_lab ? l1.cpu_s - l0.cpu_s : -1;
    double stream_mbps = 0;
    if (o->mode == BENCH_MODE_STREAM && hold_dur > 0)
        stream_mbps = (double)tot.payload_in / 1e6 / hold_dur;
    double gib_crossing = (double)(tot.payload_in + tot.payload_out) / (1024.0 * 1024 * 1024);
    uint64_t chans_held = tot.chans_peak;
    double rss_per_chan = -1;
    if (have_proxy && rss_hold_peak && chans_held)
        rss_per_chan = ((double)rss_hold_peak - (double)p0.rss_kb) / (double)chans_held;
    double hs_rate = o->mode == BENCH_MODE_HANDSHAKE
                         ? (double)tot.handshakes / (hold_dur > 0 ? hold_dur : elapsed)
                         : (double)tot.handshakes / (ramp > 0.01 ? ramp : elapsed);

    /* ---- human report ---- */
    FILE *f = stdout;
    fprintf(f, "== exshim-bench %s %s %s://%s:%d  sessions=%u procs=%u\n", o->label,
            bench_mode_name(o->mode), o->tls ? "https" : "http", o->host, o->port, o->sessions,
            o->procs);
    fprintf(f, "  %-28s %llu / %llu / %llu\n", "sessions attempted/est/failed",
            (unsigned long long)tot.attempted, (unsigned long long)tot.established,
            (unsigned long long)tot.failed);
    fprintf(f, "  %-28s %llu (peak %llu, channels peak %llu)\n", "sessions up at hold end",
            (unsigned long long)tot.up_at_hold_end, (unsigned long long)tot.up_peak,
            (unsigned long long)tot.chans_peak);
    fprintf(f, "  %-28s %.1f s ramp, %.1f s hold, %.1f s total\n", "time", ramp, hold_dur, elapsed);
    fprintf(f, "  %-28s %llu (%.0f/s)\n", "handshakes", (unsigned long long)tot.handshakes,
            hs_rate);
    fprintf(f, "  %-28s %llu (%.0f/s in hold)\n", "requests", (unsigned long long)tot.requests,
            hold_req_rate);
    fprintf(f, "  %-28s %.1f MB/s in hold (out %.1f MB, in %.1f MB)\n", "bytes",
            hold_bytes_rate / 1e6, (double)tot.bytes_out / 1e6, (double)tot.bytes_in / 1e6);
    if (o->mode == BENCH_MODE_STREAM)
        fprintf(f, "  %-28s %.1f MB/s each way (%llu/%u streams done, %.3f GiB echoed)\n", "stream",
                stream_mbps, (unsigned long long)tot.streams_done, o->sessions,
                (double)tot.payload_in / (1024.0 * 1024 * 1024));
    fprintf(f, "  %-28s p50 %.3f  p90 %.3f  p99 %.3f  p99.9 %.3f  max %.3f  (n=%llu)\n",
            "latency ms", bench_hist_pct(&lat, 50) / 1e3, bench_hist_pct(&lat, 90) / 1e3,
            bench_hist_pct(&lat, 99) / 1e3, bench_hist_pct(&lat, 99.9) / 1e3,
            (double)lat.max_us / 1e3, (unsigned long long)lat.n);
    if (lat_ramp.n)
        fprintf(f, "  %-28s p50 %.3f  p99 %.3f  max %.3f  (n=%llu)\n", "latency ms during ramp",
                bench_hist_pct(&lat_ramp, 50) / 1e3, bench_hist_pct(&lat_ramp, 99) / 1e3,
                (double)lat_ramp.max_us / 1e3, (unsigned long long)lat_ramp.n);
    fprintf(f, "  %-28s p50 %.3f  p99 %.3f\n", "session setup ms", bench_hist_pct(&setup, 50) / 1e3,
            bench_hist_pct(&setup, 99) / 1e3);
    uint64_t errs_retry = 0;
    for (int e = 0; e < BENCH_E_MAX; e++)
        if (bench_err_retryable(e))
            errs_retry += tot.err[e];
    if (o->reconnect)
        fprintf(f, "  %-28s %llu, %llu came back (%llu re-authentications); %llu setup retries\n",
                "reconnects", (unsigned long long)tot.reconnects,
                (unsigned long long)tot.reconnected, (unsigned long long)tot.reauths,
                (unsigned long long)tot.setup_retries);
    fprintf(f, "  %-28s %llu (%llu a client retries, %llu not)\n", "errors",
            (unsigned long long)errs, (unsigned long long)errs_retry,
            (unsigned long long)(errs - errs_retry));
    for (int e = 0; e < BENCH_E_MAX; e++)
        if (tot.err[e])
            fprintf(f, "    %-12s %llu  e.g. %s\n", bench_err_name(e),
                    (unsigned long long)tot.err[e], tot.err_example[e]);
    if (have_proxy) {
        fprintf(
            f, "  %-28s %.2f s CPU, RSS %llu KiB -> peak %llu KiB (hold peak %llu KiB), %u procs\n",
            "proxy", proxy_cpu, (unsigned long long)p0.rss_kb, (unsigned long long)rss_peak,
            (unsigned long long)rss_hold_peak, p1.nprocs);
        if (tot.requests)
            fprintf(f, "  %-28s %.1f us\n", "proxy CPU per request",
                    proxy_cpu * 1e6 / (double)tot.requests);
        if (gib_crossing > 0.01)
            fprintf(f, "  %-28s %.2f s/GiB (GiB crossing the proxy, both directions)\n",
                    "proxy CPU per GiB", proxy_cpu / gib_crossing);
        if (rss_per_chan >= 0)
            fprintf(f, "  %-28s %.1f KiB\n", "proxy RSS per held channel", rss_per_chan);
    }
    if (have_lab)
        fprintf(f, "  %-28s %.2f s CPU\n", "lab", lab_cpu);
    fprintf(f, "  %-28s %.2f s CPU\n", "bench", bench_cpu);

    if (o->json_path[0]) {
        FILE *j = fopen(o->json_path, "w");
        if (!j) {
            perror(o->json_path);
            return 1;
        }
        fprintf(j, "{\"label\": ");
        bench_json_str(j, o->label);
        fprintf(
            j,
            ", \"mode\": \"%s\", \"tls\": %s, \"url\": \"%s://%s:%d\", \"procs\": %u,\n"
            " \"sessions\": %u, \"attempted\": %llu, \"established\": %llu, \"failed\": %llu,\n"
            " \"up_peak\": %llu, \"up_at_hold_end\": %llu, \"channels_peak\": %llu,\n"
            " \"ramp_s\": %.3f, \"hold_s\": %.3f, \"elapsed_s\": %.3f,\n"
            " \"handshakes\": %llu, \"handshakes_per_s\": %.1f, \"requests\": %llu,"
            " \"requests_per_s\": %.1f,\n"
            " \"bytes_out\": %llu, \"bytes_in\": %llu, \"bytes_per_s\": %.0f,\n"
            " \"payload_out\": %llu, \"payload_in\": %llu, \"stream_mb_per_s\": %.1f,"
            " \"streams_done\": %llu,\n"
            " \"latency_ms\": {\"n\": %llu, \"p50\": %.3f, \"p90\": %.3f, \"p99\": %.3f,"
            " \"p999\": %.3f, \"max\": %.3f},\n"
            " \"latency_ramp_ms\": {\"n\": %llu, \"p50\": %.3f, \"p99\": %.3f, \"max\": %.3f},\n"
            " \"setup_ms\": {\"p50\": %.3f, \"p99\": %.3f},\n"
            " \"errors\": %llu, \"errors_by_kind\": {",
            bench_mode_name(o->mode), o->tls ? "true" : "false", o->tls ? "https" : "http", o->host,
            o->port, o->procs, o->sessions, (unsigned long long)tot.attempted,
            (unsigned long long)tot.established, (unsigned long long)tot.failed,
            (unsigned long long)tot.up_peak, (unsigned long long)tot.up_at_hold_end,
            (unsigned long long)tot.chans_peak, ramp, hold_dur, elapsed,
            (unsigned long long)tot.handshakes, hs_rate, (unsigned long long)tot.requests,
            hold_req_rate, (unsigned long long)tot.bytes_out, (unsigned long long)tot.bytes_in,
            hold_bytes_rate, (unsigned long long)tot.payload_out,
            (unsigned long long)tot.payload_in, stream_mbps, (unsigned long long)tot.streams_done,
            (unsigned long long)lat.n, bench_hist_pct(&lat, 50) / 1e3,
            bench_hist_pct(&lat, 90) / 1e3, bench_hist_pct(&lat, 99) / 1e3,
            bench_hist_pct(&lat, 99.9) / 1e3, (double)lat.max_us / 1e3,
            (unsigned long long)lat_ramp.n, bench_hist_pct(&lat_ramp, 50) / 1e3,
            bench_hist_pct(&lat_ramp, 99) / 1e3, (double)lat_ramp.max_us / 1e3,
            bench_hist_pct(&setup, 50) / 1e3, bench_hist_pct(&setup, 99) / 1e3,
            (unsigned long long)errs);
        bool first = true;
        for (int e = 0; e < BENCH_E_MAX; e++) {
            if (!tot.err[e])
                continue;
            fprintf(j, "%s\"%s\": {\"count\": %llu, \"example\": ", first ? "" : ", ",
                    bench_err_name(e), (unsigned long long)tot.err[e]);
            bench_json_str(j, tot.err_example[e]);
            fputc('}', j);
            first = false;
        }
        fprintf(j, "},\n \"proxy\": ");
        if (have_proxy)
            fprintf(j,
                    "{\"cpu_s\": %.3f, \"rss_start_kb\": %llu, \"rss_peak_kb\": %llu,"
                    " \"rss_hold_peak_kb\": %llu, \"procs\": %u, \"cpu_us_per_request\": %.2f,"
                    " \"cpu_s_per_gib\": %.3f, \"rss_per_channel_kb\": %.2f}",
                    proxy_cpu, (unsigned long long)p0.rss_kb, (unsigned long long)rss_peak,
                    (unsigned long long)rss_hold_peak, p1.nprocs,
                    tot.requests ? proxy_cpu * 1e6 / (double)tot.requests : -1.0,
                    gib_crossing > 0.01 ? proxy_cpu / gib_crossing : -1.0, rss_per_chan);
        else
            fprintf(j, "null");
        fprintf(j,
                ",\n \"sessions_established\": %llu, \"reconnect\": %s, \"reconnects\": %llu,"
                " \"reconnected\": %llu, \"reauths\": %llu, \"setup_retries\": %llu,\n"
                " \"errors_retryable\": %llu, \"errors_fatal\": %llu, \"users\": %u,"
                " \"source_addrs\": %u",
                (unsigned long long)tot.established, o->reconnect ? "true" : "false",
                (unsigned long long)tot.reconnects, (unsigned long long)tot.reconnected,
                (unsigned long long)tot.reauths, (unsigned long long)tot.setup_retries,
                (unsigned long long)errs_retry, (unsigned long long)(errs - errs_retry),
                o->nusers ? o->nusers : 1, o->nsrcs);
        fprintf(j, ",\n \"lab_cpu_s\": %.3f, \"bench_cpu_s\": %.3f}\n", lab_cpu, bench_cpu);
        fclose(j);
    }
    /* with --reconnect, errors a client retries are part of the run; the others are not */
    if (o->reconnect)
        return errs - errs_retry ? 3 : 0;
    return errs ? 3 : 0;
}
