/*
 * The master's pid file (-p) and `exshim -s SIGNAL -p FILE`, which reads it back.
 */
#ifndef PROXY_PIDFILE_H
#define PROXY_PIDFILE_H

#include <stddef.h>
#include <sys/types.h>

/* Writes "PID\n" to path (through path.tmp and rename, so a reader never sees half a file).
 * Borrows path. Returns 0, or -1 with errno. */
int pidfile_write(const char *path, pid_t pid);

/* Removes path if it still names pid (a newer exshim may have taken it over). Borrows path. */
void pidfile_remove(const char *path, pid_t pid);

/*
 * Reads the pid in path and checks that it names a running exshim. Returns 0 and stores the
 * pid, or -1 with one line in err: no pid file, no pid in it, a pid that no longer runs or
 * runs something else (a stale pid file). Borrows path; err holds errlen bytes.
 */
int pidfile_check(const char *path, pid_t *pid_out, char *err, size_t errlen);

#endif
