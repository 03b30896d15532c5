/*
 * Latency histogram (log-linear, ~3% buckets), error accounting, and sampling of the proxy's
 * process tree through /proc (CPU seconds and resident memory).
 */
#include <ctype.h>
#include <dirent.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench/load/bench.h"

static size_t
bench_hist_index(uint64_t us)
{
    if (us < BENCH_HIST_SUB)
        return (size_t)us;
    int p = 63 - __builtin_clzll(us); /* >= 5 */
    size_t sub = (size_t)(us >> (p - 5)) - BENCH_HIST_SUB;
    size_t idx = (size_t)(p - 4) * BENCH_HIST_SUB + sub;
    return idx < BENCH_HIST_N ? idx : BENCH_HIST_N - 1;
}

static double
bench_hist_value(size_t idx)
{
    if (idx < BENCH_HIST_SUB)
        return (double)idx;
    size_t p = idx / BENCH_HIST_SUB + 4, sub = idx % BENCH_HIST_SUB;
    double lo = (double)((uint64_t)(BENCH_HIST_SUB + sub) << (p - 5));
    double width = (double)(1ULL << (p - 5));
    return lo + width / 2;
}

void
bench_hist_add(struct bench_hist *h, uint64_t us)
{
    h->b[bench_hist_index(us)]++;
    h->n++;
    if (us > h->max_us)
        h->max_us = us;
}

void
bench_hist_merge(struct bench_hist *dst, const struct bench_hist *src)
{
    for (size_t i = 0; i < BENCH_HIST_N; i++)
        dst->b[i] += src->b[i];
    dst->n += src->n;
    if (src->max_us > dst->max_us)
        dst->max_us = src->max_us;
}

double
bench_hist_pct(const struct bench_hist *h, double p)
{
    if (!h->n)
        return 0;
    uint64_t want = (uint64_t)((double)h->n * p / 100.0 + 0.5);
    if (want < 1)
        want = 1;
    uint64_t seen = 0;
    for (size_t i = 0; i < BENCH_HIST_N; i++) {
        seen += h->b[i];
        if (seen >= want) {
            double v = bench_hist_value(i);
            return v > (double)h->max_us ? (double)h->max_us : v;
        }
    }
    return (double)h->max_us;
}

static const char *const bench_err_names[BENCH_E_MAX] = {
    "connect",   "tls",      "auth",   "http_status", "gateway", "auth_closed",
    "mapi_code", "protocol", "closed", "timeout",     "local",
};

const char *
bench_err_name(enum bench_err e)
{
    return e < BENCH_E_MAX ? bench_err_names[e] : "?";
}

bool
bench_err_retryable(enum bench_err e)
{
    return e == BENCH_E_CONNECT || e == BENCH_E_TLS || e == BENCH_E_CLOSED ||
           e == BENCH_E_TIMEOUT || e == BENCH_E_GATEWAY || e == BENCH_E_MAPI_CODE;
}

void
bench_err(struct bench_stats *st, enum bench_err e, const char *fmt, ...)
{
    st->err[e]++;
    if (!st->err_example[e][0]) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(st->err_example[e], sizeof st->err_example[e], fmt, ap);
        va_end(ap);
    }
}

/* ---- /proc sampling ---- */

static int
bench_read_file(const char *path, char *buf, size_t cap)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    size_t n = fread(buf, 1, cap - 1, f);
    fclose(f);
    buf[n] = 0;
    return (int)n;
}

/* utime+stime (ticks), ppid, rss pages of one pid; -1 when gone. */
static int
bench_stat_one(pid_t pid, unsigned long long *ticks, pid_t *ppid, long *rss_pages)
{
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    if (bench_read_file(path, buf, sizeof buf) <= 0)
        return -1;
    char *p = strrchr(buf, ')');
    if (!p)
        return -1;
    /* after ") ": state(3) ppid(4) ... utime(14) stime(15) ... rss(24) */
    char *save = NULL, *tok = strtok_r(p + 2, " ", &save);
    int field = 3;
    unsigned long long ut = 0, stt = 0;
    long rss = 0, pp = 0;
    while (tok) {
        if (field == 4)
            pp = strtol(tok, NULL, 10);
        else if (field == 14)
            ut = strtoull(tok, NULL, 10);
        else if (field == 15)
            stt = strtoull(tok, NULL, 10);
        else if (field == 24) {
            rss = strtol(tok, NULL, 10);
            break;
        }
        tok = strtok_r(NULL, " ", &save);
        field++;
    }
    *ticks = ut + stt;
    *ppid = (pid_t)pp;
    *rss_pages = rss;
    return 0;
}

int
bench_proc_sample(const pid_t *pids, size_t n, struct bench_proc_sample *out)
{
    static long hz, pagekb;
    if (!hz) {
        hz = sysconf(_SC_CLK_TCK);
        pagekb = sysconf(_SC_PAGESIZE) / 1024;
    }
    memset(out, 0, sizeof *out);
    if (!n)
        return -1;
    /* Collect every process with its parent, then walk the trees rooted at pids. */
    enum { CAP = 8192 };
    static pid_t all[CAP], par[CAP];
    static unsigned long long tk[CAP];
    static long rs[CAP];
    static unsigned char in_tree[CAP];
    size_t cnt = 0;
    DIR *d = opendir("/proc");
    if (!d)
        return -1;
    struct dirent *e;
    while ((e = readdir(d)) && cnt < CAP) {
        if (!isdigit((unsigned char)e->d_name[0]))
            continue;
        pid_t pid = (pid_t)strtol(e->d_name, NULL, 10);
        if (bench_stat_one(pid, &tk[cnt], &par[cnt], &rs[cnt]) == 0) {
            all[cnt] = pid;
            in_tree[cnt] = 0;
            for (size_t i = 0; i < n; i++)
                if (pids[i] == pid)
                    in_tree[cnt] = 1;
            cnt++;
        }
    }
    closedir(d);
    for (int pass = 0; pass < 6; pass++) { /* depth bound */
        int changed = 0;
        for (size_t i = 0; i < cnt; i++) {
            if (in_tree[i])
                continue;
            for (size_t j = 0; j < cnt; j++)
                if (in_tree[j] && all[j] == par[i]) {
                    in_tree[i] = 1;
                    changed = 1;
                    break;
                }
        }
        if (!changed)
            break;
    }
    unsigned long long ticks = 0;
    for (size_t i = 0; i < cnt; i++)
        if (in_tree[i]) {
            ticks += tk[i];
            out->rss_kb += (uint64_t)rs[i] * (uint64_t)pagekb;
            out->nprocs++;
        }
    out->cpu_s = (double)ticks / (double)hz;
    return out->nprocs ? 0 : -1;
}
