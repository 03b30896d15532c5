/*
 * Logging: stderr always, plus a file when configured. relayd-style API; printf-checked.
 * Never pass credentials, tokens or cookies to these functions.
 *
 * Writing never blocks: lines a full destination (a pipe nobody reads, a stalled terminal)
 * does not take wait in a bounded buffer and are dropped, and counted, past it; see log.c.
 */
#ifndef PROXY_LOG_H
#define PROXY_LOG_H

#include <stdarg.h>

#include "conf/conf.h"

/* Sets the level and opens the optional log file (NULL: stderr only), replacing the file
 * opened before, if any, and takes stderr as it is now (call it again after daemon()).
 * Borrows file (copied, for log_reopen). Returns 0 or -1 with errno; on failure the previous
 * file stays in use. */
int log_init(enum conf_log_level level, const char *file);
/* Opens the log file again under the same name (logrotate moved the old one away; SIGUSR1).
 * Returns 0 (also when no file is configured) or -1 with errno, the old file still in use. */
int log_reopen(void);
/* Writes what waits in the buffers as far as the destinations take it now, and the
 * "N log lines dropped" note once one has drained. Call it now and then (an idle process
 * writes no lines that would carry the backlog out). */
void log_flush(void);
/* In a child right after fork(): lines the parent still had buffered stay the parent's. */
void log_forked(void);
/* Tag put in front of every line, e.g. "worker 2". Borrows tag (copied). */
void log_set_tag(const char *tag);
void log_close(void);
int log_level_enabled(enum conf_log_level level);

/* log_warn appends strerror(errno); the x variants do not. */
void log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_warnx(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Start-up and reload only: log and exit(1). */
void fatal(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
void fatalx(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

#endif
