/*
 * proxy/log.c: a full stderr never blocks the caller; what does not fit is dropped, counted
 * and reported once the destination drains, with every line whole and in order; log_reopen
 * moves to a new file under the old name; the access log's method and target fields keep what
 * fits, NUL-terminated.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "proxy/accesslog.h"
#include "proxy/log.h"

#define NLINES 2000

static int saved_stderr = -1;

/* Points fd 2 at a pipe of one page; returns the read end (non-blocking). */
static int
stderr_to_small_pipe(void)
{
    int p[2];
    assert_int_equal(pipe(p), 0);
    fcntl(p[1], F_SETPIPE_SZ, 4096);
    fcntl(p[0], F_SETFL, O_NONBLOCK);
    saved_stderr = dup(STDERR_FILENO);
    assert_true(saved_stderr >= 0);
    assert_int_equal(dup2(p[1], STDERR_FILENO), STDERR_FILENO);
    close(p[1]);
    return p[0];
}

static void
stderr_restore(void)
{
    dup2(saved_stderr, STDERR_FILENO);
    close(saved_stderr);
    saved_stderr = -1;
    log_init(CONF_LOG_INFO, NULL);
}

/* Reads what the pipe holds now into buf at *len (cap bytes at most). */
static void
slurp(int fd, char *buf, size_t cap, size_t *len)
{
    for (;;) {
        ssize_t r = read(fd, buf + *len, cap - 1 - *len);
        if (r <= 0)
            break;
        *len += (size_t)r;
    }
    buf[*len] = '\0';
}

static void
test_full_stderr_drops_and_reports(void **state)
{
    (void)state;
    static char got[4 << 20];
    size_t len = 0;
    int rd = stderr_to_small_pipe();

    alarm(20); /* a blocking write would hang here: fail instead */
    assert_int_equal(log_init(CONF_LOG_INFO, NULL), 0);
    for (int i = 0; i < NLINES; i++)
        log_info("line %05d %s", i, "padding padding padding padding padding padding padding");
    alarm(0);
    /* the destination takes data again */
    for (int round = 0; round < 200; round++) {
        slurp(rd, got, sizeof(got), &len);
        log_flush();
    }
    log_info("after");
    for (int round = 0; round < 50; round++) {
        slurp(rd, got, sizeof(got), &len);
        log_flush();
    }
    stderr_restore();
    close(rd);

    /* every line whole, in order, then the note, then the line after it */
    int last = -1, seen = 0;
    unsigned long dropped = 0;
    bool note = false, after = false;
    char *save = NULL;
    for (char *ln = strtok_r(got, "\n", &save); ln != NULL; ln = strtok_r(NULL, "\n", &save)) {
        const char *p = strstr(ln, " info: line ");
        if (p != NULL) {
            int n = (int)strtol(p + 12, NULL, 10);
            assert_true(n > last);
            assert_false(note);
            assert_non_null(strstr(ln, "padding padding padding padding padding padding padding"));
            last = n;
            seen++;
        } else if ((p = strstr(ln, " warn: ")) != NULL && strstr(ln, "log lines dropped") != NULL) {
            assert_false(note);
            note = true;
            dropped = strtoul(p + 7, NULL, 10);
        } else if (strstr(ln, " info: after") != NULL) {
            assert_true(note);
            after = true;
        } else {
            fail_msg("unexpected line '%s'", ln);
        }
    }
    assert_true(note);
    assert_true(after);
    assert_true(dropped > 0);
    assert_true(seen > 0);
    assert_int_equal((unsigned long)seen + dropped, NLINES);
}

static void
test_reopen(void **state)
{
    (void)state;
    char dir[] = "/tmp/test_log.XXXXXX", path[256], old[300], buf[4096];
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/x.log", dir);
    snprintf(old, sizeof(old), "%s.1", path);

    int rd = stderr_to_small_pipe(); /* keep the test's own output clean */
    assert_int_equal(log_init(CONF_LOG_INFO, path), 0);
    log_info("before rotation");
    assert_int_equal(rename(path, old), 0);
    log_info("still the old file");
    assert_int_equal(log_reopen(), 0);
    log_info("in the new file");
    log_close();
    stderr_restore();
    close(rd);

    FILE *f = fopen(old, "r");
    assert_non_null(f);
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    buf[n] = '\0';
    fclose(f);
    assert_non_null(strstr(buf, "before rotation"));
    assert_non_null(strstr(buf, "still the old file"));
    assert_null(strstr(buf, "in the new file"));
    f = fopen(path, "r");
    assert_non_null(f);
    n = fread(buf, 1, sizeof(buf) - 1, f);
    buf[n] = '\0';
    fclose(f);
    assert_non_null(strstr(buf, "in the new file"));
    assert_null(strstr(buf, "before rotation"));
    unlink(old);
    unlink(path);
    rmdir(dir);
}

static void
test_reopen_without_file(void **state)
{
    (void)state;
    assert_int_equal(log_init(CONF_LOG_INFO, NULL), 0);
    assert_int_equal(log_reopen(), 0);
    assert_int_equal(log_init(CONF_LOG_INFO, "/nonexistent-dir/x.log"), -1);
    assert_int_equal(errno, ENOENT);
}

static struct h1_slice
sl(const char *p, size_t n)
{
    return (struct h1_slice){p, n};
}

static void
test_xlog_target_fits_and_truncates(void **state)
{
    (void)state;
    struct xlog x;
    memset(&x, 'Z', sizeof(x));
    xlog_target(&x, sl("POSTxx", 4), sl("/mapi/emsmdb/zz", 13), sl(NULL, 0));
    assert_string_equal(x.method, "POST");
    assert_string_equal(x.path, "/mapi/emsmdb/");
    xlog_target(&x, sl("GET", 3), sl("/owa/", 5), sl("a=1&b=2", 7));
    assert_string_equal(x.path, "/owa/?a=1&b=2");
    /* an empty query still shows its "?" as it was received */
    xlog_target(&x, sl("GET", 3), sl("/", 1), sl("", 0));
    assert_string_equal(x.path, "/?");

    char longp[1000], longm[100];
    memset(longp, 'p', sizeof(longp));
    memset(longm, 'M', sizeof(longm));
    xlog_target(&x, sl(longm, sizeof(longm)), sl(longp, 100), sl(longp, 500));
    assert_int_equal(strlen(x.method), sizeof(x.method) - 1);
    assert_int_equal(strlen(x.path), sizeof(x.path) - 1);
    assert_int_equal(x.path[100], '?');
    assert_int_equal(x.path[101], 'p');
    xlog_target(&x, sl("GET", 3), sl(longp, sizeof(longp)), sl("q", 1));
    assert_int_equal(strlen(x.path), sizeof(x.path) - 1);
    assert_null(strchr(x.path, '?'));
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_full_stderr_drops_and_reports),
        cmocka_unit_test(test_reopen),
        cmocka_unit_test(test_reopen_without_file),
        cmocka_unit_test(test_xlog_target_fits_and_truncates),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
