/* Pipes for splice(2) and their counts. See splice.h. */
#include "proxy/splice.h"

#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

#include "proxy/log.h"

static struct splice_stats stats;

struct splice_stats *
splice_stats(void)
{
    return &stats;
}

int
splice_pipe_open(int fds[2], size_t *cap)
{
    fds[0] = fds[1] = -1;
    if (stats.open >= SPLICE_MAX_PIPES) {
        stats.capped++;
        return -1;
    }
    if (pipe2(fds, O_NONBLOCK | O_CLOEXEC) != 0) {
        int e = errno;
        fds[0] = fds[1] = -1;
        if (e == EMFILE || e == ENFILE) {
            /* The descriptors are better spent on connections: copy instead, and say so
             * now and then, not for every body. */
            if (stats.no_fd++ % 1000 == 0)
                log_warnx("splice: no descriptor for a pipe (%s), copying bodies instead "
                          "(%llu times so far)",
                          e == EMFILE ? "EMFILE" : "ENFILE", (unsigned long long)stats.no_fd);
        } else {
            stats.failed++;
        }
        return -1;
    }
    /* Larger pipes mean fewer splice calls per MiB; the kernel may refuse (pipe-max-size,
     * pipe-user-pages-soft), then the default size does. */
    (void)fcntl(fds[0], F_SETPIPE_SZ, SPLICE_PIPE_SIZE);
    int sz = fcntl(fds[0], F_GETPIPE_SZ);
    if (sz < SPLICE_MIN_PIPE) {
        splice_pipe_close(fds);
        stats.failed++;
        return -1;
    }
    *cap = (size_t)sz;
    stats.opened++;
    stats.open++;
    return 0;
}

void
splice_pipe_close(int fds[2])
{
    if (fds[0] < 0)
        return;
    close(fds[0]);
    close(fds[1]);
    fds[0] = fds[1] = -1;
    stats.open--;
}
