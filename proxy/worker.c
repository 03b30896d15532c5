/* Worker process: event loop, SO_REUSEPORT listeners, drain on SIGTERM. */
#include "proxy/worker.h"

#include <errno.h>
#include <netdb.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/listener.h>

#include "proxy/climit.h"
#include "proxy/log.h"
#include "proxy/session.h"

struct listen_arg {
    struct worker *w;
    size_t index;
};

/*
 * max_connections: at the cap the listeners stop accepting, so further clients wait in the
 * kernel's accept queue (or go to another worker) instead of being refused; below it again,
 * accepting resumes. One line each way.
 */
static void
set_accepting(struct worker *w)
{
    bool full = w->reg.n >= w->conf->max_connections;
    if (full == w->accept_full || w->draining || w->listeners == NULL)
        return;
    w->accept_full = full;
    for (size_t i = 0; i < w->conf->nlisteners; i++) {
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

static void
accept_cb(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int salen, void *arg)
{
    struct listen_arg *la = arg;
    if (la->w->draining) {
        close(fd);
        return;
    }
    session_accept(&la->w->env, la->index, fd, sa, salen);
    set_accepting(la->w);
}

static void
accept_retry_cb(evutil_socket_t fd, short what, void *arg)
{
    struct worker *w = arg;
    if (w->draining || w->accept_full)
        return;
    for (size_t i = 0; i < w->conf->nlisteners; i++)
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
    if (err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM) {
        log_warnx("accept: %s; pausing accepts for 100 ms (%zu sessions open)", strerror(err),
                  w->reg.n);
        for (size_t i = 0; i < w->conf->nlisteners; i++)
            if (w->listeners[i] != NULL)
                evconnlistener_disable(w->listeners[i]);
        struct timeval tv = {0, 100000};
        evtimer_add(w->accept_retry, &tv);
        return;
    }
    log_warnx("accept: %s", strerror(err));
}

static void
stop_listening(struct worker *w)
{
    for (size_t i = 0; i < w->conf->nlisteners; i++) {
        if (w->listeners[i] != NULL) {
            evconnlistener_free(w->listeners[i]);
            w->listeners[i] = NULL;
        }
    }
}

static void
grace_cb(evutil_socket_t fd, short what, void *arg)
{
    struct worker *w = arg;
    log_info("grace period over with %zu sessions still open; closing them", w->reg.n);
    event_base_loopexit(w->base, NULL);
}

static void
term_cb(evutil_socket_t sig, short what, void *arg)
{
    struct worker *w = arg;
    if (w->draining)
        return;
    w->draining = true;
    log_info("signal %d: draining %zu sessions (grace %u ms)", (int)sig, w->reg.n,
             w->conf->grace_ms);
    stop_listening(w);
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
    if (w->draining && w->reg.n == 0)
        event_base_loopexit(w->base, NULL);
    if (w->accept_full)
        set_accepting(w);
}

int
worker_run(struct worker *w, int ready_fd)
{
    const struct conf *c = w->conf;
    struct listen_arg *args = calloc(c->nlisteners, sizeof(*args));
    w->listeners = calloc(c->nlisteners, sizeof(*w->listeners));
    /* The epoll changelist folds a read stopped and restarted within one loop turn (relay
     * backpressure does this constantly) into no epoll_ctl call at all. Our fds are never
     * dup()ed, which is the changelist's one caveat. */
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

    signal(SIGPIPE, SIG_IGN);
    w->sig_term = evsignal_new(w->base, SIGTERM, term_cb, w);
    w->sig_int = evsignal_new(w->base, SIGINT, term_cb, w);
    w->accept_retry = evtimer_new(w->base, accept_retry_cb, w);
    evsignal_add(w->sig_term, NULL);
    evsignal_add(w->sig_int, NULL);

    for (size_t i = 0; i < c->nlisteners; i++) {
        args[i].w = w;
        args[i].index = i;
        w->listeners[i] =
            evconnlistener_new(w->base, accept_cb, &args[i],
                               LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, -1, w->listen_fds[i]);
        if (w->listeners[i] == NULL)
            fatal("worker %d: listener %s", w->index, c->listeners[i].name);
        evconnlistener_set_error_cb(w->listeners[i], accept_error_cb);
    }
    char one = 1;
    if (write(ready_fd, &one, 1) != 1)
        log_warn("worker %d: ready pipe", w->index);
    close(ready_fd);

    event_base_dispatch(w->base);
    log_info("worker exiting with %zu sessions open", w->reg.n);
    /* Process exit closes the remaining connections; nothing else needs tearing down. */
    return 0;
}
