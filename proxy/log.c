/*
 * Logging to stderr and an optional file, never blocking the caller.
 *
 * Each destination (a "sink") is written without blocking: stderr through a private
 * non-blocking descriptor (or send(MSG_DONTWAIT) when it is a socket, as under journald), the
 * file opened O_NONBLOCK | O_APPEND. What the destination does not take at once waits in a
 * bounded buffer of the sink and goes out, in order, at the next log call or log_flush().
 * A line that does not fit in that buffer is dropped and counted; once the buffer has drained
 * again, one "N log lines dropped" line says how many were lost. A worker whose stderr is a
 * pipe nobody reads therefore keeps serving, losing log lines instead of stalling.
 */
#include "proxy/log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

/* Bytes a sink holds back while its destination is full; lines beyond it are dropped. */
#define LOG_SINK_BUF (64 * 1024)
#define LOG_LINE_MAX 2048

struct sink {
    int fd;     /* -1: not in use */
    bool sock;  /* write with send(MSG_DONTWAIT) */
    bool own;   /* fd was opened here and is closed here */
    size_t len; /* bytes waiting in buf */
    size_t off; /* of which the first off were already written */
    uint64_t dropped;
    char buf[LOG_SINK_BUF];
};

static enum conf_log_level cur_level = CONF_LOG_INFO;
static char log_tag[32] = "exshim";
static char *file_path;
static struct sink err_sink = {.fd = STDERR_FILENO};
static struct sink file_sink = {.fd = -1};
static bool err_sink_ready;

/* Writes what fits now. Returns the bytes taken (0 on EAGAIN or error). */
static size_t
sink_put(struct sink *k, const char *p, size_t n)
{
    ssize_t r;

    if (k->fd < 0)
        return n; /* nowhere to go: count as written */
    do {
        if (k->sock)
            r = send(k->fd, p, n, MSG_DONTWAIT | MSG_NOSIGNAL);
        else
            r = write(k->fd, p, n);
    } while (r < 0 && errno == EINTR);
    if (r < 0) {
        /* EAGAIN: full; anything else (EPIPE: reader gone): the bytes are lost either way,
         * and retrying them forever would only fill the buffer. */
        return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : n;
    }
    return (size_t)r;
}

/* Sends buffered bytes; true when nothing waits any more. */
static bool
sink_drain(struct sink *k)
{
    while (k->off < k->len) {
        size_t w = sink_put(k, k->buf + k->off, k->len - k->off);
        if (w == 0)
            return false;
        k->off += w;
    }
    k->off = k->len = 0;
    return true;
}

static bool
sink_queue(struct sink *k, const char *p, size_t n)
{
    if (k->off > 0 && k->len + n > sizeof(k->buf)) {
        memmove(k->buf, k->buf + k->off, k->len - k->off);
        k->len -= k->off;
        k->off = 0;
    }
    if (k->len + n > sizeof(k->buf))
        return false;
    memcpy(k->buf + k->len, p, n);
    k->len += n;
    return true;
}

static size_t format_line(char *line, size_t cap, const char *lvl, const char *msg);

/* One whole line: written at once when nothing waits, else queued behind what waits. */
static void
sink_line(struct sink *k, const char *p, size_t n)
{
    if (k->fd < 0)
        return;
    if (!sink_drain(k)) {
        if (!sink_queue(k, p, n))
            k->dropped++;
        return;
    }
    if (k->dropped > 0) {
        char note[LOG_LINE_MAX], msg[64];
        snprintf(msg, sizeof(msg), "%llu log lines dropped (destination was full)",
                 (unsigned long long)k->dropped);
        size_t nn = format_line(note, sizeof(note), "warn", msg);
        size_t w = sink_put(k, note, nn);
        if (w < nn && !sink_queue(k, note + w, nn - w))
            return; /* keep the count; the note goes out next time */
        k->dropped = 0;
        if (w < nn) {
            if (!sink_queue(k, p, n))
                k->dropped++;
            return;
        }
    }
    size_t w = sink_put(k, p, n);
    if (w < n && !sink_queue(k, p + w, n - w))
        k->dropped++;
}

static void
sink_close(struct sink *k)
{
    if (k->fd >= 0 && k->own)
        close(k->fd);
    k->fd = -1;
    k->own = false;
    k->len = k->off = 0;
}

/*
 * stderr may be shared with a shell or a terminal: setting O_NONBLOCK on it would change it
 * for them too. A pipe or a terminal is opened again through /proc (a description of our
 * own), a socket is written with MSG_DONTWAIT, a regular file never reports "full".
 */
static void
err_sink_setup(void)
{
    struct stat st;

    if (err_sink_ready)
        return;
    err_sink_ready = true;
    if (fstat(STDERR_FILENO, &st) != 0) {
        err_sink.fd = -1;
        return;
    }
    if (S_ISSOCK(st.st_mode)) {
        err_sink.sock = true;
        return;
    }
    if (S_ISFIFO(st.st_mode) || S_ISCHR(st.st_mode)) {
        int fd = open("/proc/self/fd/2", O_WRONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
        if (fd >= 0) {
            err_sink.fd = fd;
            err_sink.own = true;
            return;
        }
        /* no /proc: fall back to the shared descriptor, non-blocking all the same */
        int fl = fcntl(STDERR_FILENO, F_GETFL);
        if (fl >= 0)
            fcntl(STDERR_FILENO, F_SETFL, fl | O_NONBLOCK);
    }
}

static int
open_log_file(const char *path)
{
    return open(path, O_WRONLY | O_APPEND | O_CREAT | O_NONBLOCK | O_CLOEXEC | O_NOCTTY, 0640);
}

int
log_init(enum conf_log_level level, const char *file)
{
    /* stderr may have changed since the last call (daemon() points it at /dev/null) */
    sink_drain(&err_sink);
    sink_close(&err_sink);
    err_sink.fd = STDERR_FILENO;
    err_sink.sock = false;
    err_sink_ready = false;
    err_sink_setup();
    cur_level = level;
    if (file == NULL) {
        sink_drain(&file_sink);
        sink_close(&file_sink);
        free(file_path);
        file_path = NULL;
        return 0;
    }
    int fd = open_log_file(file);
    if (fd < 0)
        return -1;
    char *copy = strdup(file);
    if (copy == NULL) {
        close(fd);
        errno = ENOMEM;
        return -1;
    }
    sink_drain(&file_sink);
    sink_close(&file_sink);
    file_sink.fd = fd;
    file_sink.own = true;
    free(file_path);
    file_path = copy;
    return 0;
}

int
log_reopen(void)
{
    if (file_path == NULL)
        return 0;
    int fd = open_log_file(file_path);
    if (fd < 0)
        return -1;
    /* Lines still waiting belong to the old file (logrotate's copy), if it takes them now;
     * otherwise they go to the new one. */
    sink_drain(&file_sink);
    if (file_sink.fd >= 0 && file_sink.own)
        close(file_sink.fd);
    file_sink.fd = fd;
    file_sink.own = true;
    return 0;
}

void
log_flush(void)
{
    /* An empty line of no sink is never written; draining is all that is wanted, plus the
     * dropped-lines note when the destination has room again. */
    struct sink *sinks[] = {&err_sink, &file_sink};
    for (size_t i = 0; i < 2; i++) {
        struct sink *k = sinks[i];
        if (k->fd < 0 || (k->len == 0 && k->dropped == 0))
            continue;
        if (sink_drain(k) && k->dropped > 0)
            sink_line(k, "", 0);
    }
}

void
log_forked(void)
{
    err_sink.len = err_sink.off = 0;
    err_sink.dropped = 0;
    file_sink.len = file_sink.off = 0;
    file_sink.dropped = 0;
}

void
log_set_tag(const char *tag)
{
    snprintf(log_tag, sizeof(log_tag), "%s", tag);
}

void
log_close(void)
{
    sink_drain(&file_sink);
    sink_close(&file_sink);
    free(file_path);
    file_path = NULL;
}

int
log_level_enabled(enum conf_log_level level)
{
    return level <= cur_level;
}

/* Appends to line at *n, never past cap - 1 (one byte stays for the newline). */
static void
append(char *line, size_t *n, size_t cap, const char *fmt, ...)
{
    va_list ap;
    if (*n >= cap - 1)
        return;
    va_start(ap, fmt);
    int r = vsnprintf(line + *n, cap - 1 - *n, fmt, ap);
    va_end(ap);
    if (r > 0)
        *n += (size_t)r < cap - 1 - *n ? (size_t)r : cap - 2 - *n;
}

/* "TIME TAG[PID] LEVEL: MSG\n" into line; returns its length. */
static size_t
format_line(char *line, size_t cap, const char *lvl, const char *msg)
{
    struct timeval tv;
    struct tm tm;
    size_t n;

    gettimeofday(&tv, NULL);
    gmtime_r(&tv.tv_sec, &tm);
    n = strftime(line, cap, "%Y-%m-%dT%H:%M:%S", &tm);
    append(line, &n, cap, ".%03dZ %s[%d] %s: %s", (int)(tv.tv_usec / 1000), log_tag, (int)getpid(),
           lvl, msg);
    line[n++] = '\n';
    return n;
}

/* One line per write, so that lines from several workers do not interleave. */
static void
vlog(const char *lvl, const char *fmt, va_list ap, const char *suffix)
{
    char line[LOG_LINE_MAX], msg[1800];
    int saved = errno;

    err_sink_setup();
    int m = vsnprintf(msg, sizeof(msg), fmt, ap);
    if (suffix != NULL && m >= 0 && (size_t)m < sizeof(msg))
        snprintf(msg + m, sizeof(msg) - (size_t)m, ": %s", suffix);
    size_t n = format_line(line, sizeof(line), lvl, msg);
    sink_line(&err_sink, line, n);
    sink_line(&file_sink, line, n);
    errno = saved;
}

#define LOG_BODY(level, name, suffix)                                                              \
    do {                                                                                           \
        if (!log_level_enabled(level))                                                             \
            return;                                                                                \
        va_list ap;                                                                                \
        va_start(ap, fmt);                                                                         \
        vlog(name, fmt, ap, suffix);                                                               \
        va_end(ap);                                                                                \
    } while (0)

void
log_warn(const char *fmt, ...)
{
    int saved = errno;
    LOG_BODY(CONF_LOG_WARN, "warn", strerror(saved));
    errno = saved;
}

void
log_warnx(const char *fmt, ...)
{
    LOG_BODY(CONF_LOG_WARN, "warn", NULL);
}

void
log_error(const char *fmt, ...)
{
    LOG_BODY(CONF_LOG_ERROR, "error", NULL);
}

void
log_info(const char *fmt, ...)
{
    LOG_BODY(CONF_LOG_INFO, "info", NULL);
}

void
log_debug(const char *fmt, ...)
{
    LOG_BODY(CONF_LOG_DEBUG, "debug", NULL);
}

/* Before exiting, what is still buffered gets a short, bounded chance to go out. */
static void
flush_before_exit(void)
{
    for (int i = 0; i < 20 && (err_sink.len > 0 || file_sink.len > 0); i++) {
        log_flush();
        if (err_sink.len > 0 || file_sink.len > 0)
            usleep(5000);
    }
}

void
fatal(const char *fmt, ...)
{
    int saved = errno;
    va_list ap;
    va_start(ap, fmt);
    vlog("fatal", fmt, ap, strerror(saved));
    va_end(ap);
    flush_before_exit();
    exit(1);
}

void
fatalx(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vlog("fatal", fmt, ap, NULL);
    va_end(ap);
    flush_before_exit();
    exit(1);
}
