/*
 * Logging: stderr always, plus a file when configured. relayd-style API; printf-checked.
 * Never pass credentials, tokens or cookies to these functions.
 */
#ifndef PROXY_LOG_H
#define PROXY_LOG_H

#include <stdarg.h>

#include "conf/conf.h"

/* Sets the level and opens the optional log file (NULL: stderr only). Returns 0 or -1. */
int log_init(enum conf_log_level level, const char *file);
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
/* Start-up only: log and exit(1). */
void fatal(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
void fatalx(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

#endif
