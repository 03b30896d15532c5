/*
 * Unit tests for proxy/health and the choice in proxy/upstream: the rise/fall counter (table
 * of result sequences), rendezvous over a healthy subset (clients whose server stayed up keep
 * it), and the passive marks as upstream_choose sees them (suspect servers avoided but still
 * tried when nothing else is left; a checked backend with every server down gives none).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include <event2/event.h>

#include "proxy/health.h"
#include "proxy/upstream.h"

/* ---- rise / fall -------------------------------------------------------------------- */

static const struct {
    const char *name;
    unsigned rise, fall;
    const char *results; /* '+' pass, '-' failure, in order */
    const char *states;  /* the state after each result: 'u' up, 'd' down */
    const char *flips;   /* '!' where the state changed */
} marks[] = {
    {"one failure is not enough", 2, 3, "-", "u", "."},
    {"fall failures take it down", 2, 3, "---", "uud", "..!"},
    {"a pass in between restarts the count", 2, 3, "--+---", "uuuuud", ".....!"},
    {"rise passes bring it back", 2, 3, "---++", "uuddu", "..!.!"},
    {"a failure while rising restarts it", 2, 3, "---+-++", "uuddddu", "..!...!"},
    {"failures while down change nothing", 2, 2, "------", "uddddd", ".!...."},
    {"rise 1 fall 1 follows every result", 1, 1, "-+-+", "dudu", "!!!!"},
    {"passes while up change nothing", 2, 3, "++++", "uuuu", "...."},
};

static void
test_rise_fall(void **state)
{
    for (size_t t = 0; t < sizeof(marks) / sizeof(marks[0]); t++) {
        struct health_mark m = {.up = true, .run = 0};
        size_t n = strlen(marks[t].results);
        assert_int_equal(strlen(marks[t].states), n);
        for (size_t i = 0; i < n; i++) {
            bool flipped =
                health_mark_result(&m, marks[t].results[i] == '+', marks[t].rise, marks[t].fall);
            if (m.up != (marks[t].states[i] == 'u') || flipped != (marks[t].flips[i] == '!'))
                fail_msg("%s: after result %zu: up=%d flipped=%d", marks[t].name, i, m.up, flipped);
        }
    }
}

/* ---- rendezvous over the healthy subset ------------------------------------------------ */

#define NSERVERS 5
#define NKEYS 2000

/* conf strings are char *: writable copies of the literals */
static char hosts[NSERVERS][16] = {"10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4", "10.0.0.5"};
static char ports[NSERVERS][8] = {"443", "443", "443", "443", "8443"};
static char s_pool[] = "pool", s_plain[] = "plain", s_checked[] = "checked", s_owa[] = "/owa",
            s_mapi[] = "/mapi", s_owa_hc[] = "/owa/healthcheck.htm",
            s_mapi_hc[] = "/mapi/healthcheck.htm";
static struct conf_server servers[NSERVERS];

static int
setup(void **state)
{
    for (int i = 0; i < NSERVERS; i++)
        servers[i] = (struct conf_server){.host = hosts[i], .port = ports[i]};
    return 0;
}

static void
key_of(int i, char *buf, size_t len)
{
    snprintf(buf, len, "192.168.%d.%d", i / 250, i % 250 + 1);
}

static void
test_rendezvous_subset(void **state)
{
    struct conf_backend be = {.name = s_pool, .servers = servers, .nservers = NSERVERS};
    bool all[NSERVERS] = {true, true, true, true, true};
    size_t before[NKEYS], count[NSERVERS] = {0};
    char key[32];

    for (int i = 0; i < NKEYS; i++) {
        key_of(i, key, sizeof(key));
        before[i] = upstream_rendezvous(&be, all, key);
        assert_true(before[i] < NSERVERS);
        assert_int_equal(upstream_rendezvous(&be, all, key), before[i]); /* deterministic */
        count[before[i]]++;
    }
    for (int s = 0; s < NSERVERS; s++) /* spread: each gets at least half its share */
        assert_true(count[s] > NKEYS / NSERVERS / 2);

    for (size_t down = 0; down < NSERVERS; down++) {
        bool usable[NSERVERS];
        size_t moved = 0;
        for (size_t s = 0; s < NSERVERS; s++)
            usable[s] = s != down;
        for (int i = 0; i < NKEYS; i++) {
            key_of(i, key, sizeof(key));
            size_t now = upstream_rendezvous(&be, usable, key);
            assert_true(now != down);
            if (before[i] != down)
                assert_int_equal(now, before[i]); /* its server stayed up: no move */
            else
                moved++;
        }
        assert_int_equal(moved, count[down]);
    }
    bool none[NSERVERS] = {false};
    assert_int_equal(upstream_rendezvous(&be, none, "192.168.0.1"), SIZE_MAX);
}

/* Failover order: after a failed connect, upstream_next gives the client's next server in its
 * rendezvous ranking (what upstream_rendezvous picks with the tried servers removed), visits
 * every server once, and then says there is none; the same key gives the same order always. */
static void
test_failover_order(void **state)
{
    struct conf_backend be = {.name = s_pool, .servers = servers, .nservers = NSERVERS};
    struct backend_rt rt = {0}; /* no health view: every server up */
    struct conf_route route = {.path = s_owa};
    char key[32];
    (void)state;
    size_t second_count[NSERVERS] = {0};
    for (int i = 0; i < NKEYS; i++) {
        key_of(i, key, sizeof(key));
        bool usable[NSERVERS] = {true, true, true, true, true};
        size_t cur = upstream_rendezvous(&be, usable, key);
        for (size_t step = 1; step < NSERVERS; step++) {
            usable[cur] = false;
            size_t want = upstream_rendezvous(&be, usable, key);
            size_t next = upstream_next(&be, &rt, &route, key, cur);
            assert_int_equal(next, want);
            if (step == 1)
                second_count[next]++;
            cur = next;
        }
        assert_int_equal(upstream_next(&be, &rt, &route, key, cur), cur); /* all tried */
    }
    for (int s = 0; s < NSERVERS; s++) /* second choices spread too, not "the next index" */
        assert_true(second_count[s] > NKEYS / NSERVERS / 2);
}

/* ---- passive marks through upstream_choose -------------------------------------------- */

static void
test_passive_marks(void **state)
{
    struct event_base *base = event_base_new();
    assert_non_null(base);
    struct conf_backend bes[2] = {
        {.name = s_plain, .servers = servers, .nservers = 2},
        {.name = s_checked,
         .servers = servers,
         .nservers = 2,
         .checked = true,
         .health = {.path = s_owa_hc,
                    .interval_ms = 5000,
                    .timeout_ms = 2000,
                    .rise = 2,
                    .fall = 3,
                    .expect = 200}},
    };
    struct conf_route routes[2] = {
        {.path = s_owa, .backend = 0},
        {.path = s_mapi, .backend = 1, .health_path = s_mapi_hc},
    };
    struct conf c = {.backends = bes, .nbackends = 2, .routes = routes, .nroutes = 2};
    struct backend_rt rts[2] = {{0}};
    struct health *h = health_start(base, &c, rts);
    assert_non_null(h);
    size_t first, s;
    const char *key = "192.168.7.7";

    /* unchecked: the client's server becomes suspect, the other takes it; both suspect: tried */
    assert_int_equal(upstream_choose(&bes[0], &rts[0], &routes[0], key, &first), 0);
    health_connect_failed(rts[0].health, first, "Connection refused");
    assert_int_equal(health_state_of(rts[0].health, &routes[0], first), HEALTH_SUSPECT);
    assert_int_equal(upstream_choose(&bes[0], &rts[0], &routes[0], key, &s), 0);
    assert_int_equal(s, 1 - first);
    health_connect_failed(rts[0].health, 1 - first, "Connection refused");
    assert_int_equal(upstream_choose(&bes[0], &rts[0], &routes[0], key, &s), 0);
    assert_int_equal(s, first);

    /* checked: a failed connect is down for every path; all down: no server */
    assert_int_equal(upstream_choose(&bes[1], &rts[1], &routes[1], key, &first), 0);
    health_connect_failed(rts[1].health, first, "Connection refused");
    assert_int_equal(health_state_of(rts[1].health, &routes[1], first), HEALTH_DOWN);
    assert_int_equal(health_state_of(rts[1].health, NULL, first), HEALTH_DOWN);
    assert_int_equal(upstream_choose(&bes[1], &rts[1], &routes[1], key, &s), 0);
    assert_int_equal(s, 1 - first);
    assert_int_equal(upstream_next(&bes[1], &rts[1], &routes[1], key, 1 - first), 1 - first);
    health_connect_failed(rts[1].health, 1 - first, "Connection refused");
    assert_int_equal(upstream_choose(&bes[1], &rts[1], &routes[1], key, &s), -1);

    health_free(h);
    assert_null(rts[0].health);
    assert_null(rts[1].health);
    event_base_free(base);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rise_fall),
        cmocka_unit_test(test_rendezvous_subset),
        cmocka_unit_test(test_failover_order),
        cmocka_unit_test(test_passive_marks),
    };
    return cmocka_run_group_tests_name("health", tests, setup, NULL);
}
