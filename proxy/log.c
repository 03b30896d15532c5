/* Logging to stderr and an optional file. */
#include "proxy/log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static enum conf_log_level cur_level = CONF_LOG_INFO;
static FILE *log_file;
static char log_tag[32] = "exshim";

int
log_init(enum conf_log_level level, const char *file)
{
    cur_level = level;
    if (file != NULL) {
        FILE *f = fopen(file, "a");
        if (f == NULL)
            return -1;
        setvbuf(f, NULL, _IOLBF, 0);
        if (log_file != NULL)
            fclose(log_file);
        log_file = f;
    }
    return 0;
}

void
log_set_tag(const char *tag)
{
    snprintf(log_tag, sizeof(log_tag), "%s", tag);
}

void
log_close(void)
{
    if (log_file != NULL)
        fclose(log_file);
    log_file = NULL;
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

/* One line, written with a single write(2) so lines from workers do not interleave. */
static void
vlog(const char *lvl, const char *fmt, va_list ap, const char *suffix)
{
    char line[2048], msg[1800];
    struct timeval tv;
    struct tm tm;
    size_t n;

    gettimeofday(&tv, NULL);
    gmtime_r(&tv.tv_sec, &tm);
    n = strftime(line, sizeof(line), "%Y-%m-%dT%H:%M:%S", &tm);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    append(line, &n, sizeof(line), ".%03dZ %s[%d] %s: %s", (int)(tv.tv_usec / 1000), log_tag,
           (int)getpid(), lvl, msg);
    if (suffix != NULL)
        append(line, &n, sizeof(line), ": %s", suffix);
    line[n++] = '\n';
    ssize_t w = write(STDERR_FILENO, line, n);
    (void)w;
    if (log_file != NULL)
        fwrite(line, 1, n, log_file);
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

void
fatal(const char *fmt, ...)
{
    int saved = errno;
    va_list ap;
    va_start(ap, fmt);
    vlog("fatal", fmt, ap, strerror(saved));
    va_end(ap);
    exit(1);
}

void
fatalx(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vlog("fatal", fmt, ap, NULL);
    va_end(ap);
    exit(1);
}
