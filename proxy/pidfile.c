/* Pid file handling; see pidfile.h. */
#include "proxy/pidfile.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int
pidfile_write(const char *path, pid_t pid)
{
    char tmp[4096];
    if (snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= (int)sizeof(tmp)) {
        errno = ENAMETOOLONG;
        return -1;
    }
    FILE *f = fopen(tmp, "w");
    if (f == NULL)
        return -1;
    fprintf(f, "%d\n", (int)pid);
    if (fclose(f) != 0) {
        int saved = errno;
        unlink(tmp);
        errno = saved;
        return -1;
    }
    return rename(tmp, path);
}

/* The pid in path, 0 when the file holds none, -1 with errno when it cannot be read. */
static long
read_pid(const char *path)
{
    char buf[64];
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0)
        return 0;
    buf[n] = '\0';
    char *end;
    long pid = strtol(buf, &end, 10);
    if (end == buf || (*end != '\0' && *end != '\n') || pid <= 1)
        return 0;
    return pid;
}

void
pidfile_remove(const char *path, pid_t pid)
{
    if (read_pid(path) == (long)pid)
        unlink(path);
}

/* Is pid an exshim? /proc/PID/comm holds the executable's name (15 bytes at most). */
static int
is_exshim(long pid)
{
    char p[64], comm[32] = "";
    snprintf(p, sizeof(p), "/proc/%ld/comm", pid);
    FILE *f = fopen(p, "r");
    if (f == NULL)
        return 1; /* no /proc: trust the pid file */
    if (fgets(comm, sizeof(comm), f) == NULL)
        comm[0] = '\0';
    fclose(f);
    comm[strcspn(comm, "\n")] = '\0';
    return strcmp(comm, "exshim") == 0; /* exactly: exshim-lab is not exshim */
}

int
pidfile_check(const char *path, pid_t *pid_out, char *err, size_t errlen)
{
    long pid = read_pid(path);
    if (pid < 0) {
        snprintf(err, errlen, "pid file %s: %s (is exshim running with -p %s?)", path,
                 strerror(errno), path);
        return -1;
    }
    if (pid == 0) {
        snprintf(err, errlen, "pid file %s: no process id in it", path);
        return -1;
    }
    if (kill((pid_t)pid, 0) != 0 && errno == ESRCH) {
        snprintf(err, errlen, "pid file %s: process %ld is not running (stale pid file)", path,
                 pid);
        return -1;
    }
    if (!is_exshim(pid)) {
        snprintf(err, errlen, "pid file %s: process %ld is not exshim (stale pid file)", path, pid);
        return -1;
    }
    *pid_out = (pid_t)pid;
    return 0;
}
