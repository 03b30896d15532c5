/*
 * The session's one event timer: silence timers (idle, body), which every read or write pushes
 * back, and deadlines (head, handshake, flush-then-close), which nothing moves. What happens when
 * it expires is the state machine's business (timer_cb in session.c).
 */
#include <sys/time.h>

#include <event2/event.h>

#include "proxy/session_int.h"

/*
 * One event timer per session, set lazily: it is only moved when the new expiry comes sooner
 * than the one it is set for. A later expiry (each request pushes the idle and body timers
 * back) is noted in the session and timer_cb, firing early, sets the timer again for the rest.
 * That saves a timer-heap update per arm, two or three times per request.
 */
static void
timer_due(const struct session *s, struct timeval *due)
{
    if (s->hard_timer) {
        *due = s->hard_due;
        return;
    }
    struct timeval period = {.tv_sec = s->timeout_ms / 1000,
                             .tv_usec = (s->timeout_ms % 1000) * 1000};
    timeradd(&s->last_activity, &period, due);
}

static void
timer_set(struct session *s, const struct timeval *due, const struct timeval *nowtv)
{
    struct timeval left = {0, 1000};
    if (timercmp(due, nowtv, >))
        timersub(due, nowtv, &left);
    s->timer_at = *due;
    evtimer_add(s->timer, &left);
}

static void
timer_schedule(struct session *s)
{
    struct timeval due, tv;
    timer_due(s, &due);
    if (evtimer_pending(s->timer, NULL) && !timercmp(&due, &s->timer_at, <))
        return; /* it fires first; timer_cb looks again then */
    now(s, &tv);
    timer_set(s, &due, &tv);
}

/* A silence timer: every read or write on the session pushes it back (idle, body). */
void
arm_timer(struct session *s, unsigned ms)
{
    s->timeout_ms = ms;
    s->hard_timer = false;
    touch(s);
    timer_schedule(s);
}

/* A deadline ms after `from`: nothing that arrives meanwhile moves it (head, handshake). */
void
arm_deadline(struct session *s, const struct timeval *from, unsigned ms)
{
    struct timeval d = {.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000};
    s->timeout_ms = ms;
    s->hard_timer = true;
    timeradd(from, &d, &s->hard_due);
    timer_schedule(s);
}

unsigned
header_timeout(const struct session *s)
{
    if (s->route != NULL)
        return s->route->header_timeout_ms;
    /* Before the first request no route is known: the shortest header timeout applies. */
    const struct conf *c = conf_of(s);
    unsigned best = 30000;
    for (size_t i = 0; i < c->nroutes; i++)
        if (i == 0 || c->routes[i].header_timeout_ms < best)
            best = c->routes[i].header_timeout_ms;
    return best;
}

bool
timer_early(struct session *s)
{
    struct timeval tv, due, slack = {0, 2000};
    now(s, &tv);
    timer_due(s, &due);
    timersub(&due, &slack, &due);
    if (!timercmp(&tv, &due, <))
        return false;
    timeradd(&due, &slack, &due);
    timer_set(s, &due, &tv);
    return true;
}
