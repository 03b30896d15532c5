/* One side of a session: socket I/O for plain and TLS connections. See conn.h. */
#include "proxy/conn.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "proxy/log.h"
#include "proxy/splice.h"
#include "proxy/tls.h"

/* A TLS record carries at most 16 KiB of data: writes are cut there so records are full. */
#define TLS_RECORD 16384
/* One TLS read lands in a chain this large (a record plus OpenSSL's read-ahead). */
#define TLS_READ_CHUNK (TLS_RECORD + 1024)
/* At most this much space is set aside at once for the records of a stream (the event library
 * rounds the chain up to 128 KiB). */
#define TLS_BULK_CHAIN (7 * TLS_RECORD)
/* The shortest chain end sent as a record of its own rather than joined to what follows. */
#define TLS_SPLIT_MIN 2048
#define DEFAULT_READ_CAP 65536
/* Splice reads per readable event at most, so one bulk flow does not starve the others. */
#define SPLICE_TURNS 8
/* A readable event that splices less than this is a small one; after SPLICE_SMALL_RUN of them
 * in a row (with the pipe empty) the flow is sparse and the pipe goes back. */
#define SPLICE_SMALL 4096
#define SPLICE_SMALL_RUN 8

enum phase {
    PH_CONNECTING, /* outgoing TCP connect in progress */
    PH_HANDSHAKE,  /* TLS handshake in progress */
    PH_OPEN,       /* data flows */
    PH_EOF,        /* the peer closed its side: no more reading, writing goes on */
    PH_FAILED,     /* an error: nothing more moves */
};

struct conn {
    int fd;
    struct ssl_st *ssl;
    struct event *rev, *wev, *timer;
    struct evbuffer *in, *out;
    const struct conn_cbs *cbs;
    void *arg;
    enum phase phase;
    size_t read_cap, drain_mark;
    bool drain_armed;  /* on_drained is due once the output is at or below drain_mark */
    bool write_failed; /* a write from conn_sync failed: reported from the write event */
    bool established;  /* CONN_CONNECTED was reached */
    bool want_read;    /* the owner wants input */
    bool reading;      /* rev is added */
    bool writing;      /* wev is added */
    bool io_wants_rw;  /* TLS: the last read needs the socket writable, or a write readable */
    bool tls_bulk;     /* TLS: the last record read was a full one (a stream) */
    bool server;       /* accepted (TLS server side) */
    bool dead;         /* conn_free ran while a callback was on the stack */
    bool hs_queued;    /* waits in the handshake gate for its next handshake step */
    int64_t *gauge;    /* conn_count_in: decremented by conn_free */
    unsigned busy;     /* callbacks on the stack */
    char err[256];
    void (*on_close)(void *arg); /* conn_on_close: runs once, from conn_free */
    void *close_arg;
    struct conn *hs_prev, *hs_next; /* the handshake gate's queue */

    /* splice(2), plain sockets only. As the destination: body bytes queued in a pipe on
     * their way to this socket. They are older than anything in out (the source splices
     * only while out is empty), so they are written first. */
    int pipe_fd[2];           /* -1 when none */
    size_t pipe_queued;       /* bytes in the pipe */
    size_t pipe_cap;          /* its size */
    bool pipe_blocked;        /* the socket did not take the whole pipe at the last try */
    bool pipe_release;        /* close the pipe once it is empty */
    struct conn *splice_from; /* the source that fills the pipe, or NULL */
    /* As the source: reading splices into splice_to's pipe, at most splice_limit bytes
     * (the framer's count: never a byte past the body or of a chunk line). */
    struct conn *splice_to;
    uint64_t splice_limit;
    uint64_t spliced;   /* bytes moved since conn_splice_collect */
    unsigned small_run; /* readable events in a row that spliced little */
};

static void sync_events(struct conn *c);
static void step_handshake(struct conn *c);

/*
 * The handshake gate (conn_set_handshake_budget): the server side of a TLS handshake does not
 * take the ClientHello from its socket event; it queues here, and a zero-delay timer, which the
 * event loop runs after the socket events of its turn, steps at most `budget` of the queue per
 * loop turn in arrival order. One ClientHello costs about a millisecond of key exchange and
 * signature, so a burst of new clients costs an established channel at most budget of them per
 * turn, and no handshake starves. The later steps (the client's Finished: cheap) are not
 * queued: a client that has its answer sends its first request at once, and a handshake should
 * not then wait behind every new ClientHello. One event base per worker process, so one gate.
 */
static struct {
    struct event_base *base;
    struct event *tick;
    size_t budget; /* 0: no gate, handshakes step at once */
    size_t n;      /* queued */
    struct conn *head, *tail;
} gate;

static void
gate_unlink(struct conn *c)
{
    if (!c->hs_queued)
        return;
    if (c->hs_prev != NULL)
        c->hs_prev->hs_next = c->hs_next;
    else
        gate.head = c->hs_next;
    if (c->hs_next != NULL)
        c->hs_next->hs_prev = c->hs_prev;
    else
        gate.tail = c->hs_prev;
    c->hs_prev = c->hs_next = NULL;
    c->hs_queued = false;
    gate.n--;
}

static void
gate_arm(void)
{
    static const struct timeval now = {0, 0};
    if (gate.head != NULL && !evtimer_pending(gate.tick, NULL))
        evtimer_add(gate.tick, &now);
}

static void
gate_tick(evutil_socket_t fd, short what, void *arg)
{
    for (size_t n = 0; n < gate.budget && gate.head != NULL; n++) {
        struct conn *c = gate.head;
        gate_unlink(c);
        step_handshake(c); /* may free c, which has left the queue already */
    }
    if (gate.n > 0)
        log_debug("max_handshakes (%zu) reached in this loop turn; %zu TLS handshakes wait for "
                  "the next",
                  gate.budget, gate.n);
    gate_arm();
}

/* The socket of a handshaking conn is ready. Returns true when the step was queued. */
static bool
gate_defer(struct conn *c)
{
    if (!c->server || gate.budget == 0 || gate.tick == NULL ||
        gate.base != event_get_base(c->rev) || !tlsio_hello_due(c->ssl))
        return false;
    if (!c->hs_queued) {
        c->hs_queued = true;
        c->hs_prev = gate.tail;
        c->hs_next = NULL;
        if (gate.tail != NULL)
            gate.tail->hs_next = c;
        else
            gate.head = c;
        gate.tail = c;
        gate.n++;
    }
    sync_events(c); /* no socket events while queued */
    gate_arm();
    return true;
}

int
conn_set_handshake_budget(struct event_base *base, size_t per_turn)
{
    if (gate.tick == NULL || gate.base != base) {
        struct event *tick = evtimer_new(base, gate_tick, NULL);
        if (tick == NULL)
            return -1;
        if (gate.tick != NULL)
            event_free(gate.tick);
        gate.tick = tick;
        gate.base = base;
    }
    gate.budget = per_turn;
    return 0;
}

/* ---- callbacks into the owner, safe against conn_free from inside -------------------- */

static void
really_free(struct conn *c)
{
    evbuffer_free(c->in);
    evbuffer_free(c->out);
    free(c);
}

enum cb_kind { CB_READ, CB_DRAINED, CB_EVENT };

/* Calls the owner. Returns false when the owner freed c during the callback (c is gone then). */
static bool
call_owner(struct conn *c, enum cb_kind kind, enum conn_event ev)
{
    c->busy++;
    if (kind == CB_READ)
        c->cbs->on_read(c->arg);
    else if (kind == CB_DRAINED)
        c->cbs->on_drained(c->arg);
    else
        c->cbs->on_event(c->arg, ev);
    c->busy--;
    if (c->dead) {
        if (c->busy == 0)
            really_free(c);
        return false;
    }
    return true;
}

static bool
call_event(struct conn *c, enum conn_event ev)
{
    return call_owner(c, CB_EVENT, ev);
}

static void
set_error(struct conn *c, const char *what)
{
    snprintf(c->err, sizeof(c->err), "%s", what);
}

/* ---- reading ------------------------------------------------------------------------- */

enum fill { FILL_NONE, FILL_DATA, FILL_EOF, FILL_ERROR };

/* readv() straight into space reserved at the end of the input: no copy. */
static enum fill
fill_plain(struct conn *c, size_t want)
{
    struct evbuffer_iovec v[2];
    int nv = evbuffer_reserve_space(c->in, (ev_ssize_t)want, v, 2);
    if (nv <= 0) {
        set_error(c, "out of memory");
        return FILL_ERROR;
    }
    struct iovec iov[2];
    size_t total = 0;
    for (int i = 0; i < nv; i++) {
        size_t l = v[i].iov_len < want - total ? v[i].iov_len : want - total;
        iov[i].iov_base = v[i].iov_base;
        iov[i].iov_len = l;
        total += l;
    }
    ssize_t r;
    do
        r = readv(c->fd, iov, nv);
    while (r < 0 && errno == EINTR);
    if (r <= 0) {
        int e = errno;
        evbuffer_commit_space(c->in, v, 0);
        if (r == 0)
            return FILL_EOF;
        if (e == EAGAIN || e == EWOULDBLOCK)
            return FILL_NONE;
        set_error(c, strerror(e));
        return FILL_ERROR;
    }
    size_t left = (size_t)r;
    int used = 0;
    for (int i = 0; i < nv && left > 0; i++, used++) {
        v[i].iov_len = iov[i].iov_len < left ? iov[i].iov_len : left;
        left -= v[i].iov_len;
    }
    evbuffer_commit_space(c->in, v, used);
    return FILL_DATA;
}

/* SSL_read record by record into input chains, until OpenSSL has nothing left or the cap. */
static enum fill
fill_tls(struct conn *c, size_t want)
{
    bool got = false;
    c->io_wants_rw = false;
    /* The last read ended on a full record: a stream. This turn's records share one chain (one
     * allocation, one iovec on the plain side) instead of a chain each. */
    if (c->tls_bulk && want >= 2 * TLS_READ_CHUNK)
        evbuffer_expand(c->in, want < TLS_BULK_CHAIN ? want : TLS_BULK_CHAIN);
    while (want > 0) {
        size_t chunk = want < TLS_READ_CHUNK ? want : TLS_READ_CHUNK;
        struct evbuffer_iovec v;
        if (evbuffer_reserve_space(c->in, (ev_ssize_t)chunk, &v, 1) != 1) {
            set_error(c, "out of memory");
            return FILL_ERROR;
        }
        size_t n = 0;
        size_t room = v.iov_len < chunk ? v.iov_len : chunk;
        enum tlsio_result r = tlsio_read(c->ssl, v.iov_base, room, &n, c->err, sizeof(c->err));
        v.iov_len = n;
        evbuffer_commit_space(c->in, &v, n > 0 ? 1 : 0);
        if (r == TLSIO_OK) {
            got = true;
            c->tls_bulk = n == TLS_RECORD;
            want -= n < want ? n : want;
            if (tlsio_drained(c->ssl))
                break;
            continue;
        }
        if (r == TLSIO_WANT_READ)
            break;
        if (r == TLSIO_WANT_WRITE) {
            c->io_wants_rw = true;
            break;
        }
        if (got)
            return FILL_DATA; /* deliver what came before the close; it is seen next time */
        return r == TLSIO_EOF ? FILL_EOF : FILL_ERROR;
    }
    return got ? FILL_DATA : FILL_NONE;
}

static int write_pipe(struct conn *c);
static void push_out(struct conn *d);

static void
unlink_splice(struct conn *src)
{
    if (src->splice_to != NULL)
        src->splice_to->splice_from = NULL;
    src->splice_to = NULL;
    src->splice_limit = 0;
    src->small_run = 0;
}

static void
close_pipe(struct conn *c)
{
    splice_pipe_close(c->pipe_fd);
    c->pipe_queued = 0;
    c->pipe_blocked = false;
    c->pipe_release = false;
}

/*
 * Socket -> d's pipe -> d's socket, at most splice_limit bytes. FILL_NONE with
 * *fallback set when the copy path must read instead (d's out still holds bytes: they go
 * first, and what is read now is newer than them).
 */
static enum fill
fill_splice(struct conn *c, bool *fallback)
{
    struct conn *d = c->splice_to;
    struct splice_stats *st = splice_stats();
    if (evbuffer_get_length(d->out) > 0)
        push_out(d);
    if (evbuffer_get_length(d->out) > 0 || d->write_failed || d->pipe_fd[0] < 0) {
        *fallback = true;
        return FILL_NONE;
    }
    uint64_t moved = 0;
    enum fill res = FILL_NONE;
    for (int turn = 0; turn < SPLICE_TURNS && c->splice_limit > 0; turn++) {
        size_t room = d->pipe_cap - d->pipe_queued;
        if (room == 0 || d->pipe_blocked)
            break;
        size_t want = c->splice_limit < room ? (size_t)c->splice_limit : room;
        ssize_t r =
            splice(c->fd, NULL, d->pipe_fd[1], NULL, want, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
        if (r > 0) {
            d->pipe_queued += (size_t)r;
            c->splice_limit -= (uint64_t)r;
            c->spliced += (uint64_t)r;
            st->bytes_in += (uint64_t)r;
            moved += (uint64_t)r;
            push_out(d);
            if ((size_t)r < want)
                break; /* the socket is (nearly) empty: the next event says when not */
            continue;
        }
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            break;
        if (moved > 0)
            break; /* deliver the bytes first; the close or error is seen next time */
        if (r == 0)
            return FILL_EOF;
        set_error(c, strerror(errno));
        return FILL_ERROR;
    }
    if (moved > 0)
        res = FILL_DATA;
    c->small_run = moved < SPLICE_SMALL ? c->small_run + 1 : 0;
    if (c->small_run >= SPLICE_SMALL_RUN && d->pipe_queued == 0) {
        /* Small pieces now (an RPC channel between bursts): the copy path is as cheap, and
         * the descriptors go back. */
        st->sparse++;
        unlink_splice(c);
        close_pipe(d);
    }
    return res;
}

static void
do_read(struct conn *c)
{
    size_t have = evbuffer_get_length(c->in);
    if (have >= c->read_cap)
        return;
    enum fill f = FILL_NONE;
    bool fallback = true;
    if (c->splice_to != NULL && c->splice_limit > 0 && have == 0) {
        fallback = false;
        f = fill_splice(c, &fallback);
    }
    if (fallback) {
        /* What is read into the input now must pass the framer before any splice: the
         * relay arms the next one with a fresh limit. */
        c->splice_limit = 0;
        f = c->ssl != NULL ? fill_tls(c, c->read_cap - have) : fill_plain(c, c->read_cap - have);
    }
    switch (f) {
    case FILL_NONE:
        sync_events(c);
        return;
    case FILL_DATA:
        if (!call_owner(c, CB_READ, 0))
            return;
        sync_events(c);
        return;
    case FILL_EOF:
    case FILL_ERROR:
        c->phase = f == FILL_EOF ? PH_EOF : PH_FAILED;
        sync_events(c);
        call_event(c, f == FILL_EOF ? CONN_EOF : CONN_ERROR);
        return;
    }
}

/* ---- writing ------------------------------------------------------------------------- */

static int write_tls(struct conn *c);

/* Writes what the socket takes. Returns -1 on a write error (c->err set). */
static int
do_write(struct conn *c)
{
    if (c->ssl == NULL) {
        if (c->pipe_queued > 0 || c->pipe_release) {
            if (write_pipe(c) != 0)
                return -1;
            if (c->pipe_queued > 0)
                return 0;
        }
        while (evbuffer_get_length(c->out) > 0) {
            int r = evbuffer_write(c->out, c->fd);
            if (r > 0)
                continue;
            if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
                return 0;
            set_error(c, r == 0 ? "connection closed" : strerror(errno));
            return -1;
        }
        return 0;
    }
    return write_tls(c);
}

/*
 * SSL_write record by record; the records gather below OpenSSL (see tlsio_flush) and go to
 * the socket several per write(): when the gather buffer is full, and once at the end.
 */
static int
write_tls(struct conn *c)
{
    c->io_wants_rw = false;
    enum tlsio_result r = tlsio_flush(c->ssl, c->err, sizeof(c->err));
    if (r != TLSIO_OK)
        return r == TLSIO_ERROR ? -1 : 0;
    while (r == TLSIO_OK && evbuffer_get_length(c->out) > 0) {
        size_t len = evbuffer_get_length(c->out);
        size_t n = len < TLS_RECORD ? len : TLS_RECORD;
        /* A chain holding the whole record is used in place. A chain that ends short of it
         * but is not small (a stream's reads end anywhere) becomes a shorter record of its
         * own: joining it to the next would copy up to a record's worth. Small pieces (a
         * response head before its body) are joined into one record. */
        struct evbuffer_iovec first;
        const void *p;
        if (evbuffer_peek(c->out, -1, NULL, &first, 1) >= 1 && first.iov_len < n &&
            first.iov_len >= TLS_SPLIT_MIN) {
            n = first.iov_len;
            p = first.iov_base;
        } else {
            p = evbuffer_pullup(c->out, (ev_ssize_t)n);
        }
        if (p == NULL) {
            set_error(c, "out of memory");
            return -1;
        }
        size_t put = 0;
        tlsio_more(c->ssl, len > n);
        r = tlsio_write(c->ssl, p, n, &put, c->err, sizeof(c->err));
        if (r == TLSIO_OK)
            evbuffer_drain(c->out, put);
    }
    tlsio_more(c->ssl, false);
    if (r == TLSIO_WANT_READ)
        c->io_wants_rw = true;
    if (r == TLSIO_EOF)
        set_error(c, "connection closed");
    if (r == TLSIO_EOF || r == TLSIO_ERROR)
        return -1;
    if (r == TLSIO_WANT_WRITE)
        return 0; /* the gather buffer is full and the socket too */
    /* What the loop gathered; the rest, if the socket is full, waits for the write event. */
    return tlsio_flush(c->ssl, c->err, sizeof(c->err)) == TLSIO_ERROR ? -1 : 0;
}

/* Output not on the socket yet: the buffer, and for TLS the records gathered for one write. */
static size_t
out_len(const struct conn *c)
{
    size_t n = evbuffer_get_length(c->out);
    return c->ssl != NULL ? n + tlsio_unsent(c->ssl) : n;
}

/* The pipe's bytes to the socket (they precede out's). Returns -1 on a write error. */
static int
write_pipe(struct conn *c)
{
    c->pipe_blocked = false;
    while (c->pipe_queued > 0) {
        ssize_t r = splice(c->pipe_fd[0], NULL, c->fd, NULL, c->pipe_queued,
                           SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
        if (r > 0) {
            c->pipe_queued -= (size_t)r;
            splice_stats()->bytes_out += (uint64_t)r;
            if (c->pipe_queued > 0) {
                c->pipe_blocked = true; /* the socket took part: it is full */
                return 0;
            }
            continue;
        }
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            c->pipe_blocked = true;
            return 0;
        }
        set_error(c, r == 0 ? "connection closed" : strerror(errno));
        return -1;
    }
    if (c->pipe_release)
        close_pipe(c);
    return 0;
}

/* Bytes waiting to be written: in out, gathered TLS records, or in the pipe. */
static size_t
out_pending(const struct conn *c)
{
    return out_len(c) + c->pipe_queued;
}

/* The drain notice is due: out at or below the mark, and the pipe empty or, after a write
 * event, smaller than before it (piped: the socket took some). The owner is woken at the pace
 * of the socket as with out alone (its silence timers see the progress), never at a pipe the
 * socket has not touched, which it would only find full and ask about again. */
static bool
drain_due(const struct conn *c, bool piped)
{
    return c->drain_armed && out_len(c) <= c->drain_mark && (c->pipe_queued == 0 || piped);
}

/* Write failed in conn_sync or for a splicing source: dropped, reported from the write event. */
static void
write_failed(struct conn *c)
{
    c->write_failed = true;
    evbuffer_drain(c->out, evbuffer_get_length(c->out));
    if (c->pipe_fd[0] >= 0)
        close_pipe(c);
}

/* A splicing source's turn at its destination's socket. Never calls back. */
static void
push_out(struct conn *d)
{
    if (d->dead || d->write_failed || (d->phase != PH_OPEN && d->phase != PH_EOF))
        return;
    if (do_write(d) != 0) {
        write_failed(d);
        event_active(d->wev, EV_WRITE, 0);
    }
    sync_events(d);
}

/* ---- events -------------------------------------------------------------------------- */

/* Makes the registered events match what the conn needs now. */
static void
sync_events(struct conn *c)
{
    bool need_read = false, need_write = false;
    switch (c->phase) {
    case PH_CONNECTING:
        need_write = true;
        break;
    case PH_HANDSHAKE:
        /* the handshake says which one it waits for through io_wants_rw: see step_handshake;
         * while queued in the gate, for neither */
        need_read = !c->io_wants_rw && !c->hs_queued;
        need_write = c->io_wants_rw && !c->hs_queued;
        break;
    case PH_OPEN:
        need_read = c->want_read && evbuffer_get_length(c->in) < c->read_cap;
        need_write = out_pending(c) > 0 || c->write_failed;
        if (c->io_wants_rw) {
            /* TLS crossed: a read that needs a write, or a write that needs a read */
            need_read = true;
            need_write = true;
        }
        break;
    case PH_EOF:
        need_write = out_pending(c) > 0 || c->write_failed;
        break;
    case PH_FAILED:
        need_write = c->write_failed;
        break;
    }
    if (need_read != c->reading) {
        if (need_read)
            event_add(c->rev, NULL);
        else
            event_del(c->rev);
        c->reading = need_read;
        /* Whole records may wait inside OpenSSL after a read stopped at the cap: no socket
         * event would announce them, so look at once. */
        if (need_read && c->ssl != NULL && tlsio_pending(c->ssl))
            event_active(c->rev, EV_READ, 0);
    }
    if (need_write != c->writing) {
        if (need_write)
            event_add(c->wev, NULL);
        else
            event_del(c->wev);
        c->writing = need_write;
    }
}

static void
connected(struct conn *c)
{
    if (c->timer != NULL) {
        event_free(c->timer);
        c->timer = NULL;
    }
    c->phase = PH_OPEN;
    c->established = true;
    sync_events(c);
    call_event(c, CONN_CONNECTED);
}

/* Runs the TLS handshake as far as the socket allows. */
static void
step_handshake(struct conn *c)
{
    if (c->phase != PH_HANDSHAKE)
        return;
    enum tlsio_result r = tlsio_handshake(c->ssl, c->err, sizeof(c->err));
    switch (r) {
    case TLSIO_OK:
        c->io_wants_rw = false;
        connected(c);
        return;
    case TLSIO_WANT_READ:
        c->io_wants_rw = false;
        sync_events(c);
        return;
    case TLSIO_WANT_WRITE:
        c->io_wants_rw = true;
        sync_events(c);
        return;
    case TLSIO_EOF:
        set_error(c, "closed during the TLS handshake");
        break;
    case TLSIO_ERROR:
        break;
    }
    c->phase = PH_FAILED;
    sync_events(c);
    call_event(c, CONN_ERROR);
}

static void
on_readable(evutil_socket_t fd, short what, void *arg)
{
    struct conn *c = arg;
    if (c->phase == PH_HANDSHAKE) {
        if (!gate_defer(c))
            step_handshake(c);
        return;
    }
    if (c->phase != PH_OPEN)
        return;
    if (c->io_wants_rw && evbuffer_get_length(c->out) > 0) {
        /* a TLS write waited for this read */
        if (do_write(c) != 0) {
            c->phase = PH_FAILED;
            sync_events(c);
            call_event(c, CONN_ERROR);
            return;
        }
    }
    do_read(c);
}

static void
fail(struct conn *c)
{
    c->phase = PH_FAILED;
    c->write_failed = false;
    sync_events(c);
    call_event(c, CONN_ERROR);
}

static void
on_writable(evutil_socket_t fd, short what, void *arg)
{
    struct conn *c = arg;
    if (c->write_failed) {
        fail(c);
        return;
    }
    if (c->phase == PH_CONNECTING) {
        int soerr = 0;
        socklen_t sl = sizeof(soerr);
        if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) != 0)
            soerr = errno;
        if (soerr != 0) {
            set_error(c, strerror(soerr));
            fail(c);
            return;
        }
        if (c->ssl == NULL) {
            connected(c);
            return;
        }
        tlsio_attach(c->ssl, c->fd, false);
        c->phase = PH_HANDSHAKE;
        step_handshake(c);
        return;
    }
    if (c->phase == PH_HANDSHAKE) {
        if (!gate_defer(c))
            step_handshake(c);
        return;
    }
    if (c->phase == PH_FAILED)
        return;
    if (c->phase == PH_OPEN && c->io_wants_rw && c->ssl != NULL && out_len(c) == 0) {
        /* a TLS read waited for this write */
        do_read(c);
        return;
    }
    size_t piped = c->pipe_queued;
    if (do_write(c) != 0) {
        fail(c);
        return;
    }
    sync_events(c);
    if (drain_due(c, c->pipe_queued < piped)) {
        c->drain_armed = false;
        call_owner(c, CB_DRAINED, 0);
    }
}

static void
on_timeout(evutil_socket_t fd, short what, void *arg)
{
    struct conn *c = arg;
    if (c->phase == PH_CONNECTING && c->ssl == NULL) {
        /* A worker late by a long turn (or whose write event did not make this turn's epoll
         * batch) may find the deadline passed on a connect that completed in time: the
         * socket's state decides, not the timer. (TLS backends: the same timer bounds the
         * handshake that would follow, so there the deadline stands.) */
        struct pollfd p = {.fd = c->fd, .events = POLLOUT};
        if (poll(&p, 1, 0) == 1 && (p.revents & (POLLOUT | POLLERR | POLLHUP)) != 0) {
            on_writable(c->fd, EV_WRITE, c);
            return;
        }
    }
    set_error(c, "timed out");
    c->phase = PH_FAILED;
    sync_events(c);
    call_event(c, CONN_TIMEOUT);
}

/* ---- construction -------------------------------------------------------------------- */

static struct conn *
conn_alloc(struct event_base *base, int fd, struct ssl_st *ssl, const struct conn_cbs *cbs,
           void *arg)
{
    struct conn *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return NULL;
    c->fd = fd;
    c->ssl = ssl;
    c->cbs = cbs;
    c->arg = arg;
    c->read_cap = DEFAULT_READ_CAP;
    c->pipe_fd[0] = c->pipe_fd[1] = -1;
    c->in = evbuffer_new();
    c->out = evbuffer_new();
    c->rev = event_new(base, fd, EV_READ | EV_PERSIST, on_readable, c);
    c->wev = event_new(base, fd, EV_WRITE | EV_PERSIST, on_writable, c);
    if (c->in == NULL || c->out == NULL || c->rev == NULL || c->wev == NULL) {
        if (c->rev != NULL)
            event_free(c->rev);
        if (c->wev != NULL)
            event_free(c->wev);
        if (c->in != NULL)
            evbuffer_free(c->in);
        if (c->out != NULL)
            evbuffer_free(c->out);
        free(c);
        return NULL;
    }
    return c;
}

struct conn *
conn_accept(struct event_base *base, int fd, struct ssl_st *ssl, const struct conn_cbs *cbs,
            void *arg)
{
    struct conn *c = conn_alloc(base, fd, ssl, cbs, arg);
    if (c == NULL) {
        tlsio_close(ssl);
        close(fd);
        return NULL;
    }
    c->server = true;
    if (ssl != NULL) {
        tlsio_attach(ssl, fd, true);
        c->phase = PH_HANDSHAKE;
    } else {
        c->phase = PH_OPEN;
        c->established = true;
    }
    sync_events(c);
    return c;
}

struct conn *
conn_connect(struct event_base *base, const struct sockaddr *sa, socklen_t salen,
             struct ssl_st *ssl, unsigned timeout_ms, const struct conn_cbs *cbs, void *arg)
{
    int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        tlsio_close(ssl);
        return NULL;
    }
    if (connect(fd, sa, salen) != 0 && errno != EINPROGRESS) {
        int e = errno;
        close(fd);
        tlsio_close(ssl);
        errno = e;
        return NULL;
    }
    struct conn *c = conn_alloc(base, fd, ssl, cbs, arg);
    if (c == NULL) {
        close(fd);
        tlsio_close(ssl);
        errno = ENOMEM;
        return NULL;
    }
    c->phase = PH_CONNECTING;
    c->timer = evtimer_new(base, on_timeout, c);
    if (c->timer != NULL) {
        struct timeval tv = {.tv_sec = timeout_ms / 1000, .tv_usec = (timeout_ms % 1000) * 1000};
        evtimer_add(c->timer, &tv);
    }
    sync_events(c);
    return c;
}

/* ---- the owner's calls --------------------------------------------------------------- */

struct evbuffer *
conn_input(struct conn *c)
{
    return c->in;
}

struct evbuffer *
conn_output(struct conn *c)
{
    return c->out;
}

void
conn_read(struct conn *c, bool on)
{
    c->want_read = on;
    sync_events(c);
}

void
conn_set_read_cap(struct conn *c, size_t cap)
{
    c->read_cap = cap > 0 ? cap : DEFAULT_READ_CAP;
}

void
conn_notify_drained(struct conn *c, size_t mark)
{
    c->drain_mark = mark;
    c->drain_armed = true;
}

void
conn_sync(struct conn *c)
{
    if (c->dead)
        return;
    if ((c->phase == PH_OPEN || c->phase == PH_EOF) && out_pending(c) > 0 && !c->io_wants_rw &&
        !c->write_failed) {
        if (do_write(c) != 0)
            write_failed(c); /* reported from the write event: conn_sync never calls back */
    }
    sync_events(c);
    /* Everything went out at once: the drain notice is due without a write event. */
    if (drain_due(c, false))
        event_active(c->wev, EV_WRITE, 0);
    else if (c->write_failed)
        event_active(c->wev, EV_WRITE, 0);
}

const char *
conn_error(const struct conn *c)
{
    return c->err[0] != '\0' ? c->err : "connection closed";
}

bool
conn_is_tls(const struct conn *c)
{
    return c->ssl != NULL;
}

bool
conn_connected(const struct conn *c)
{
    return c->established;
}

int
conn_fd(const struct conn *c)
{
    return c->fd;
}

int
conn_peer_cert_hash(const struct conn *c, unsigned char out[32])
{
    return c->ssl != NULL ? tlsctx_peer_hash(c->ssl, out) : -1;
}

const char *
conn_tls_version(const struct conn *c)
{
    return c->ssl != NULL && c->established ? tlsio_version(c->ssl) : NULL;
}

void
conn_count_in(struct conn *c, int64_t *gauge)
{
    if (gauge == NULL || c->gauge != NULL)
        return;
    c->gauge = gauge;
    __atomic_fetch_add(gauge, 1, __ATOMIC_RELAXED);
}

void
conn_on_close(struct conn *c, void (*fn)(void *arg), void *arg)
{
    c->on_close = fn;
    c->close_arg = arg;
}

void
conn_free(struct conn *c)
{
    if (c == NULL || c->dead)
        return;
    c->dead = true;
    gate_unlink(c);
    if (c->on_close != NULL)
        c->on_close(c->close_arg);
    if (c->gauge != NULL)
        __atomic_fetch_sub(c->gauge, 1, __ATOMIC_RELAXED);
    unlink_splice(c);
    if (c->splice_from != NULL)
        unlink_splice(c->splice_from);
    close_pipe(c);
    event_free(c->rev);
    event_free(c->wev);
    if (c->timer != NULL)
        event_free(c->timer);
    tlsio_close(c->ssl);
    c->ssl = NULL;
    close(c->fd);
    if (c->busy == 0)
        really_free(c);
}

/* ---- splice(2) between plain conns ------------------------------------------------------ */

bool
conn_splice_arm(struct conn *src, struct conn *dst, uint64_t limit)
{
    if (src->ssl != NULL || dst->ssl != NULL || src == dst || src->dead || dst->dead ||
        src->phase != PH_OPEN || (dst->phase != PH_OPEN && dst->phase != PH_EOF) ||
        dst->write_failed || evbuffer_get_length(src->in) > 0)
        return false;
    if (src->splice_to != dst) {
        unlink_splice(src);
        if (dst->splice_from != NULL)
            unlink_splice(dst->splice_from);
    }
    if (dst->pipe_fd[0] < 0 && splice_pipe_open(dst->pipe_fd, &dst->pipe_cap) != 0)
        return false;
    dst->pipe_release = false;
    src->splice_to = dst;
    dst->splice_from = src;
    src->splice_limit = limit;
    return true;
}

void
conn_splice_hold(struct conn *src)
{
    src->splice_limit = 0;
}

bool
conn_splice_armed(const struct conn *src)
{
    return src->splice_to != NULL;
}

void
conn_splice_stop(struct conn *src)
{
    struct conn *dst = src->splice_to;
    unlink_splice(src);
    if (dst == NULL)
        return;
    if (dst->pipe_queued == 0)
        close_pipe(dst);
    else
        dst->pipe_release = true; /* closed by write_pipe once empty */
}

uint64_t
conn_splice_collect(struct conn *src)
{
    uint64_t n = src->spliced;
    src->spliced = 0;
    return n;
}

size_t
conn_pipe_queued(const struct conn *c)
{
    return c->pipe_queued;
}

int
conn_pipe_unload(struct conn *c)
{
    int rc = 0;
    if (c->pipe_queued > 0) {
        struct evbuffer *tmp = evbuffer_new();
        while (tmp != NULL && c->pipe_queued > 0) {
            int r = evbuffer_read(tmp, c->pipe_fd[0],
                                  (int)(c->pipe_queued < 65536 ? c->pipe_queued : 65536));
            if (r <= 0 && errno == EINTR)
                continue;
            if (r <= 0)
                break;
            c->pipe_queued -= (size_t)r;
        }
        if (tmp == NULL || c->pipe_queued > 0 || evbuffer_prepend_buffer(c->out, tmp) != 0)
            rc = -1;
        if (tmp != NULL)
            evbuffer_free(tmp);
    }
    if (c->splice_from != NULL)
        unlink_splice(c->splice_from);
    close_pipe(c);
    return rc;
}

bool
conn_open(const struct conn *c)
{
    return c->phase == PH_OPEN;
}
