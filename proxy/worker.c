/* Worker process: event loop, inherited listening sockets, drain on SIGTERM, SIGUSR2 or the node
 * drain signal. */
#include "proxy/worker.h"

#include <errno.h>
#include <malloc.h>
#include <netdb.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/listener.h>

#include "proxy/climit.h"
#include "proxy/conn.h"
#include "proxy/health.h"
#include "proxy/log.h"
#include "proxy/metrics.h"
#include "proxy/ppaccept.h"
#include "proxy/session.h"

struct listen_arg {
    struct worker *w;
    size_t index;           /* the listener in the configuration */
    size_t pos;             /* its socket in w->listeners */
    size_t turn;            /* accepted in this loop turn */
    bool capped;            /* paused for the rest of the turn: max_accept reached */
    struct event *turn_end; /* runs after the other events of the turn: resets the count */
};

/* A node drain ends this long after the last accept once no session is left. */
#define NODE_DRAIN_QUIET_MS 2000

/* Draining for a reload or a stop closes the listeners; a node drain keeps accepting until a
 * stop. */
static bool
accepting(const struct worker *w)
{
    return !w->draining || (w->node_drain && !w->stopping);
}

static long
ms_since(const struct timespec *t)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (now.tv_sec - t->tv_sec) * 1000 + (now.tv_nsec - t->tv_nsec) / 1000000;
}

/* Node drain: with no session left, the worker ends once nothing was accepted for the quiet
 * time (the balancer has moved on); checked again when that time is up. */
static void
node_drain_check(struct worker *w)
{
    if (!w->node_drain || w->stopping || w->reg.n > 0 || w->quiet_timer == NULL)
        return;
    long left = NODE_DRAIN_QUIET_MS - ms_since(&w->last_accept);
    if (left <= 0) {
        log_info("node drain: no session left and nothing accepted for %d ms; exiting",
                 NODE_DRAIN_QUIET_MS);
        event_base_loopexit(w->base, NULL);
        return;
    }
    struct timeval tv = {.tv_sec = left / 1000, .tv_usec = (left % 1000) * 1000};
    evtimer_add(w->quiet_timer, &tv);
}

static void
quiet_cb(evutil_socket_t fd, short what, void *arg)
{
    node_drain_check(arg);
}

/*
 * max_connections: at the cap the listeners stop accepting, so further clients wait in the
 * kernel's accept queue of this worker's sockets instead of being refused (SO_REUSEPORT does
 * not move them to another worker); below it again, accepting resumes. One line each way.
 */
static void
set_accepting(struct worker *w)
{
    bool full = w->reg.n >= w->conf->max_connections;
    if (full == w->accept_full || !accepting(w) || w->listeners == NULL)
        return;
    w->accept_full = full;
    for (size_t i = 0; i < w->nlisten; i++) {
        if (w->listeners[i] == NULL)
            continue;
        if (full)
            evconnlistener_disable(w->listeners[i]);
        else
            evconnlistener_enable(w->listeners[i]);
    }
    if (full)
        log_warnx("max_connections (%zu) reached: not accepting until a connection closes",
                  w->conf->max_connections);
    else
        log_info("below max_connections (%zu) again: accepting", w->conf->max_connections);
}

/*
 * max_accept: the event library accepts until the queue is empty, which for a burst of
 * thousands of clients would hold the loop for tens of milliseconds while established
 * channels wait. So at the budget the listener pauses; the turn_end event, activated with the
 * turn's first accept and so queued behind every event already ready in this turn, resumes it,
 * and the rest of the kernel's queue is taken from the next loop turn on.
 */
static void
accept_turn_end_cb(evutil_socket_t fd, short what, void *arg)
{
    struct listen_arg *la = arg;
    struct worker *w = la->w;
    la->turn = 0;
    if (!la->capped)
        return;
    la->capped = false;
    if (w->listeners == NULL || w->listeners[la->pos] == NULL || w->draining || w->accept_full ||
        evtimer_pending(w->accept_retry, NULL))
        return;
    evconnlistener_enable(w->listeners[la->pos]);
}

static void
accept_cb(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int salen, void *arg)
{
    struct listen_arg *la = arg;
    if (!accepting(la->w)) {
        close(fd);
        return;
    }
    if (la->w->node_drain)
        clock_gettime(CLOCK_MONOTONIC, &la->w->last_accept);
    if (la->turn++ == 0)
        event_active(la->turn_end, EV_TIMEOUT, 0);
    if (la->w->conf->listeners[la->index].proxy_protocol)
        ppaccept_start(la->w->pp, la->index, fd, sa, salen);
    else
        session_accept(&la->w->env, la->index, fd, sa, salen);
    set_accepting(la->w);
    if (la->turn >= la->w->conf->max_accept && !la->capped) {
        la->capped = true;
        evconnlistener_disable(l);
        log_debug("listener %s: max_accept (%zu) reached in this loop turn; the rest of the "
                  "queue waits for the next",
                  la->w->conf->listeners[la->index].name, la->w->conf->max_accept);
    }
}

/* A connection passed its PROXY header and became a session. */
static void
pp_accepted(void *arg)
{
    set_accepting(arg);
}

static void
accept_retry_cb(evutil_socket_t fd, short what, void *arg)
{
    struct worker *w = arg;
    if (!accepting(w) || w->accept_full)
        return;
    for (size_t i = 0; i < w->nlisten; i++)
        if (w->listeners[i] != NULL)
            evconnlistener_enable(w->listeners[i]);
}

/* Out of file descriptors: stop accepting for a moment rather than spin on accept(). */
static void
accept_error_cb(struct evconnlistener *l, void *arg)
{
    struct listen_arg *la = arg;
    struct worker *w = la->w;
    int err = EVUTIL_SOCKET_ERROR();
    if (err == EMFILE || err == ENFILE)
        metrics_accept_starved();
    if (err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM) {
        /* One line per 10 s of exhaustion (with how often it recurred), not one per pause. */
        static time_t last_log;
        static unsigned quiet;
        time_t t = time(NULL);
        if (t - last_log >= 10) {
            log_warnx("accept: %s; pausing accepts for 100 ms (%zu sessions open; %u more "
                      "pauses since the last line)",
                      strerror(err), w->reg.n, quiet);
            last_log = t;
            quiet = 0;
        } else {
            quiet++;
        }
        for (size_t i = 0; i < w->nlisten; i++)
            if (w->listeners[i] != NULL)
                evconnlistener_disable(w->listeners[i]);
        struct timeval tv = {0, 100000};
        evtimer_add(w->accept_retry, &tv);
        return;
    }
    log_warnx("accept: %s", strerror(err));
}

static void
close_listeners_cb(evutil_socket_t fd, short what, void *arg)
{
    struct worker *w = arg;
    for (size_t i = 0; i < w->nlisten; i++) {
        if (w->listeners[i] != NULL) {
            evconnlistener_free(w->listeners[i]);
            w->listeners[i] = NULL;
        }
    }
}

/*
 * The listening sockets are shared with the master and with the next generation's workers,
 * so closing our copy leaves them, and their accept queues, intact. The close waits for the
 * next loop turn: with the epoll changelist, the EPOLL_CTL_DEL of a disabled listener is only
 * issued then, and an epoll registration is not dropped by close() while another process
 * still holds the socket; closed first, it would keep waking this worker for every
 * connection the new generation has yet to accept.
 */
static void
stop_listening(struct worker *w)
{
    for (size_t i = 0; i < w->nlisten; i++)
        if (w->listeners[i] != NULL)
            evconnlistener_disable(w->listeners[i]);
    struct timeval tv = {0, 1000};
    if (w->close_timer != NULL)
        evtimer_add(w->close_timer, &tv);
}

static void
grace_cb(evutil_socket_t fd, short what, void *arg)
{
    struct worker *w = arg;
    log_info("grace period over with %zu sessions still open; closing them", w->reg.n);
    event_base_loopexit(w->base, NULL);
}

static void
drain_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
    struct worker *w = arg;
    log_info("drain_timeout over with %zu sessions still open; closing them", w->reg.n);
    event_base_loopexit(w->base, NULL);
}

/* drain_timeout bounds a drain (superseded generation or node drain): then what is open closes. */
static void
arm_drain_timeout(struct worker *w)
{
    struct timeval tv = {.tv_sec = w->conf->drain_timeout_ms / 1000,
                         .tv_usec = (w->conf->drain_timeout_ms % 1000) * 1000};
    w->drain_timer = evtimer_new(w->base, drain_timeout_cb, w);
    if (w->drain_timer != NULL)
        evtimer_add(w->drain_timer, &tv);
}

/*
 * SIGUSR2: a newer generation accepts now. Stop accepting and let every session end on its
 * own: an exchange in flight finishes, a keep-alive connection gets "Connection: close" on
 * its next response (session.c reads w->draining), long-lived channels run until they end;
 * drain_timeout bounds the whole. Idle keep-alive connections are not closed here: a client
 * may have sent its next request already, and closing would lose it (see README, Operations).
 */
static void
handover_cb(evutil_socket_t sig, short what, void *arg)
{
    struct worker *w = arg;
    if (w->draining)
        return;
    w->draining = true;
    stop_listening(w);
    health_stop(w->health);
    log_info("superseded by a new generation: accepting no more; %zu sessions finish on their "
             "own (drain_timeout %u ms)",
             w->reg.n, w->conf->drain_timeout_ms);
    if (w->reg.n == 0 || w->conf->drain_timeout_ms == 0) {
        event_base_loopexit(w->base, NULL);
        return;
    }
    arm_drain_timeout(w);
}

/*
 * The node drain signal (exshim -s drain): the balancer takes this node out when /healthz says
 * "draining", but connections it sends until its next check must still be served, so the
 * listeners stay open. Every response from now on says Connection: close (session.c reads
 * w->draining), long-lived channels run until they end; the worker ends once it has no
 * session and accepted nothing for NODE_DRAIN_QUIET_MS, or at drain_timeout.
 */
static void
node_drain_cb(evutil_socket_t sig, short what, void *arg)
{
    struct worker *w = arg;
    if (w->draining)
        return; /* already superseded or stopping */
    w->draining = true;
    w->node_drain = true;
    clock_gettime(CLOCK_MONOTONIC, &w->last_accept);
    log_debug("node drain: %zu sessions open; still accepting (drain_timeout %u ms)", w->reg.n,
              w->conf->drain_timeout_ms);
    if (w->conf->drain_timeout_ms == 0) {
        event_base_loopexit(w->base, NULL); /* as for a reload: no drain at all */
        return;
    }
    arm_drain_timeout(w);
    w->quiet_timer = evtimer_new(w->base, quiet_cb, w);
    node_drain_check(w);
}

static void
reopen_cb(evutil_socket_t sig, short what, void *arg)
{
    if (log_reopen() != 0)
        log_warn("SIGUSR1: cannot reopen the log file");
}

static void
log_timer_cb(evutil_socket_t fd, short what, void *arg)
{
    log_flush();
}

static void
term_cb(evutil_socket_t sig, short what, void *arg)
{
    struct worker *w = arg;
    if (w->stopping)
        return;
    w->stopping = true;
    log_info("signal %d: draining %zu sessions (grace %u ms)", (int)sig, w->reg.n,
             w->conf->grace_ms);
    if (!w->draining || w->node_drain)
        stop_listening(w);
    w->draining = true;
    health_stop(w->health);
    session_drain_all(&w->reg);
    if (w->reg.n == 0) {
        event_base_loopexit(w->base, NULL);
        return;
    }
    struct timeval tv = {.tv_sec = w->conf->grace_ms / 1000,
                         .tv_usec = (w->conf->grace_ms % 1000) * 1000};
    w->grace_timer = evtimer_new(w->base, grace_cb, w);
    if (w->grace_timer != NULL)
        evtimer_add(w->grace_timer, &tv);
}

/* A session ended: a draining worker may be done, a full one may accept again. */
static void
session_gone(void *arg)
{
    struct worker *w = arg;
    if (w->node_drain && !w->stopping)
        node_drain_check(w);
    else if (w->draining && w->reg.n == 0)
        event_base_loopexit(w->base, NULL);
    if (w->accept_full)
        set_accepting(w);
}

/*
 * cpu_affinity: worker i stays on the i-th CPU it may run on (wrapping around), so the
 * scheduler does not move a busy worker between cores and its cache stays warm; what else runs
 * on the box is moved instead. Off by default: on a shared or small virtual machine a pinned
 * worker cannot step aside to an idle core.
 */
static void
pin_worker(const struct worker *w)
{
    cpu_set_t allowed, one;
    if (sched_getaffinity(0, sizeof(allowed), &allowed) != 0) {
        log_warn("cpu_affinity: cannot read the allowed CPUs");
        return;
    }
    int n = CPU_COUNT(&allowed), want = w->index % (n > 0 ? n : 1), seen = 0;
    for (int cpu = 0; cpu < CPU_SETSIZE; cpu++) {
        if (!CPU_ISSET(cpu, &allowed) || seen++ != want)
            continue;
        CPU_ZERO(&one);
        CPU_SET(cpu, &one);
        if (sched_setaffinity(0, sizeof(one), &one) != 0)
            log_warn("cpu_affinity: cannot pin worker %d to CPU %d", w->index, cpu);
        else
            log_info("worker %d runs on CPU %d", w->index, cpu);
        return;
    }
}

int
worker_run(struct worker *w, int ready_fd)
{
    const struct conf *c = w->conf;
    if (c->cpu_affinity)
        pin_worker(w);
    /* OpenSSL releases a connection's record buffers whenever they empty (so an idle channel
     * holds none) and allocates them again at the next record: a stream does that thousands of
     * times a second. Keeping freed memory in the heap instead of handing it back with brk()
     * saves a system call and the page faults of touching it again each time. */
    mallopt(M_TRIM_THRESHOLD, 8 * 1024 * 1024);
    mallopt(M_MMAP_THRESHOLD, 1024 * 1024);
    struct listen_arg *args = calloc(w->nlisten, sizeof(*args));
    w->listeners = calloc(w->nlisten, sizeof(*w->listeners));
    /* The epoll changelist folds a read stopped and restarted within one loop turn (relay
     * backpressure does this constantly) into no epoll_ctl call at all. Session fds are never
     * dup()ed, the changelist's one caveat; the listening sockets are shared with other
     * processes, which stop_listening() allows for. */
    struct event_config *cfg = event_config_new();
    if (cfg != NULL) {
        event_config_set_flag(cfg, EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST);
        w->base = event_base_new_with_config(cfg);
        event_config_free(cfg);
    }
    if (args == NULL || w->listeners == NULL || w->base == NULL)
        fatalx("worker %d: out of memory", w->index);
    if (c->max_connections_per_client > 0) {
        w->climit = climit_new(c->max_connections, c->max_connections_per_client);
        if (w->climit == NULL)
            fatalx("worker %d: out of memory", w->index);
    }
    w->env = (struct session_env){
        .conf = c,
        .base = w->base,
        .listener_tls = w->listener_tls,
        .backends = w->backends,
        .climit = w->climit,
        .draining = &w->draining,
        .reg = &w->reg,
        .gone = session_gone,
        .gone_arg = w,
        .worker_index = w->index,
    };
    w->pp = ppaccept_new(&w->env, pp_accepted, w);
    if (w->pp == NULL)
        fatalx("worker %d: out of memory", w->index);

    /* Two priorities: the stop and hand-over signals (0) run before anything else that is
     * ready in the same loop turn, so a worker told to stop accepting does not first accept
     * connections queued for the new generation. Every other event has the default, 1. */
    if (event_base_priority_init(w->base, 2) != 0)
        fatalx("worker %d: event priorities", w->index);
    signal(SIGPIPE, SIG_IGN);
    w->sig_term = evsignal_new(w->base, SIGTERM, term_cb, w);
    w->sig_int = evsignal_new(w->base, SIGINT, term_cb, w);
    w->accept_retry = evtimer_new(w->base, accept_retry_cb, w);
    w->sig_reload = evsignal_new(w->base, SIGUSR2, handover_cb, w);
    w->sig_reopen = evsignal_new(w->base, SIGUSR1, reopen_cb, w);
    w->sig_node_drain = evsignal_new(w->base, WORKER_SIG_NODE_DRAIN, node_drain_cb, w);
    w->close_timer = evtimer_new(w->base, close_listeners_cb, w);
    w->log_timer = event_new(w->base, -1, EV_PERSIST, log_timer_cb, w);
    event_priority_set(w->sig_term, 0);
    event_priority_set(w->sig_int, 0);
    event_priority_set(w->sig_reload, 0);
    event_priority_set(w->sig_node_drain, 0);
    evsignal_add(w->sig_term, NULL);
    evsignal_add(w->sig_int, NULL);
    evsignal_add(w->sig_reload, NULL);
    evsignal_add(w->sig_reopen, NULL);
    evsignal_add(w->sig_node_drain, NULL);
    struct timeval second = {1, 0};
    evtimer_add(w->log_timer, &second);
    /* The master forks with these signals blocked; a signal sent before here is delivered
     * now, to the handlers above, instead of killing a worker that is starting. */
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);

    /* Each worker checks the backends on its own (sets w->backends[i].health); after the
     * priorities, which cannot be set up once an event is active. */
    if ((w->health = health_start(w->base, c, w->backends)) == NULL)
        fatalx("worker %d: out of memory", w->index);
    /* After the priorities: the gate's timer gets the default one, like the sockets it follows. */
    if (conn_set_handshake_budget(w->base, c->max_handshakes) != 0)
        fatalx("worker %d: out of memory", w->index);
    for (size_t i = 0; i < w->nlisten; i++) {
        size_t li = w->listen_li[i];
        args[i].w = w;
        args[i].index = li;
        args[i].pos = i;
        args[i].turn_end = event_new(w->base, -1, 0, accept_turn_end_cb, &args[i]);
        if (args[i].turn_end == NULL)
            fatalx("worker %d: out of memory", w->index);
        w->listeners[i] =
            evconnlistener_new(w->base, accept_cb, &args[i],
                               LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, -1, w->listen_fds[i]);
        if (w->listeners[i] == NULL)
            fatal("worker %d: listener %s", w->index, c->listeners[li].name);
        evconnlistener_set_error_cb(w->listeners[i], accept_error_cb);
    }
    char one = 1;
    if (write(ready_fd, &one, 1) != 1)
        log_warn("worker %d: ready pipe", w->index);
    close(ready_fd);

    event_base_dispatch(w->base);
    log_info("worker exiting with %zu sessions open", w->reg.n);
    log_flush();
    /* Process exit closes the remaining connections; nothing else needs tearing down. */
    return 0;
}
