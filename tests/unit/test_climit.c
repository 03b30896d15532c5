/* Unit tests for proxy/climit: per-address connection counting. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "proxy/climit.h"

static void
test_limit_per_address(void **state)
{
    struct climit *t = climit_new(8, 3);
    assert_non_null(t);
    for (int i = 0; i < 3; i++)
        assert_true(climit_acquire(t, "10.0.0.1"));
    assert_false(climit_acquire(t, "10.0.0.1"));
    assert_true(climit_acquire(t, "10.0.0.2"));
    assert_int_equal(climit_count(t, "10.0.0.1"), 3);
    climit_release(t, "10.0.0.1");
    assert_true(climit_acquire(t, "10.0.0.1"));
    assert_false(climit_acquire(t, "10.0.0.1"));
    climit_free(t);
}

static void
test_table_full(void **state)
{
    struct climit *t = climit_new(2, 5);
    assert_true(climit_acquire(t, "a"));
    assert_true(climit_acquire(t, "b"));
    assert_false(climit_acquire(t, "c")); /* no room for a third address */
    assert_true(climit_acquire(t, "a"));  /* a known one still counts */
    climit_release(t, "b");
    assert_true(climit_acquire(t, "c"));
    climit_free(t);
}

/* Many addresses in and out in an order that makes probe chains collide: every count must
 * stay exact after backward-shift deletions. */
static void
test_churn_keeps_counts(void **state)
{
    enum { N = 500 };
    struct climit *t = climit_new(N, 4);
    char k[32];
    for (int i = 0; i < N; i++) {
        snprintf(k, sizeof(k), "192.0.2.%d", i);
        assert_true(climit_acquire(t, k));
        if (i % 3 == 0)
            assert_true(climit_acquire(t, k));
    }
    for (int i = 0; i < N; i += 2) {
        snprintf(k, sizeof(k), "192.0.2.%d", i);
        climit_release(t, k);
    }
    for (int i = 0; i < N; i++) {
        snprintf(k, sizeof(k), "192.0.2.%d", i);
        size_t want = (size_t)(1 + (i % 3 == 0)) - (size_t)(i % 2 == 0);
        if (climit_count(t, k) != want)
            fail_msg("%s: count %zu, want %zu", k, climit_count(t, k), want);
    }
    climit_free(t);
}

static void
test_long_key_refused(void **state)
{
    struct climit *t = climit_new(4, 1);
    char k[100];
    memset(k, 'x', sizeof(k) - 1);
    k[sizeof(k) - 1] = '\0';
    assert_false(climit_acquire(t, k));
    climit_free(t);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_limit_per_address),
        cmocka_unit_test(test_table_full),
        cmocka_unit_test(test_churn_keeps_counts),
        cmocka_unit_test(test_long_key_refused),
    };
    return cmocka_run_group_tests_name("climit", tests, NULL, NULL);
}
