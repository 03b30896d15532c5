/* The relay proper. See relay.h. */
#include "proxy/relay.h"

#include <event2/buffer.h>

#include "proxy/conn.h"

enum relay_result
relay_move(struct evbuffer *in, struct evbuffer *out, struct frame *f, size_t hw, size_t *prefix,
           uint64_t *count, const char **why_out)
{
    while ((!f->done || *prefix > 0) && evbuffer_get_length(in) > 0) {
        size_t outlen = evbuffer_get_length(out);
        if (outlen >= hw)
            return RELAY_FULL;
        size_t avail = evbuffer_get_length(in);
        if (avail > hw - outlen)
            avail = hw - outlen;
        size_t pre = *prefix < avail ? *prefix : avail;
        ssize_t take = f->done ? 0 : frame_take(f, in, pre, avail - pre, why_out);
        if (take < 0)
            return RELAY_BAD;
        if (pre + (size_t)take == 0)
            break;
        evbuffer_remove_buffer(in, out, pre + (size_t)take);
        *prefix -= pre;
        *count += (uint64_t)take;
    }
    if (f->done && *prefix == 0)
        return RELAY_DONE;
    return evbuffer_get_length(out) >= hw ? RELAY_FULL : RELAY_MORE;
}

enum relay_result
relay_body(struct conn *src, struct conn *dst, struct frame *f, size_t hw, size_t *prefix,
           uint64_t *count, const char **why_out)
{
    /* What the source spliced since the last turn happened before anything now in its input. */
    uint64_t n = conn_splice_collect(src);
    if (n > 0) {
        frame_skip(f, n);
        *count += n;
    }
    uint64_t before = *count;
    enum relay_result r =
        relay_move(conn_input(src), conn_output(dst), f, hw, prefix, count, why_out);
    bool bulk = *count - before >= SPLICE_BULK;

    if (r == RELAY_BAD || !conn_open(src)) {
        conn_splice_stop(src);
        if (conn_pipe_queued(dst) > 0 && conn_pipe_unload(dst) != 0 && r != RELAY_BAD) {
            *why_out = "spliced bytes lost";
            return RELAY_BAD;
        }
        return r;
    }
    if (r == RELAY_DONE) {
        conn_splice_stop(src);
        return conn_pipe_queued(dst) > 0 ? RELAY_FULL : RELAY_DONE;
    }
    uint64_t can = frame_spliceable(f);
    bool armed = conn_splice_armed(src);
    if (r == RELAY_MORE && *prefix == 0 && can > 0 && !f->no_splice &&
        evbuffer_get_length(conn_input(src)) == 0 && (armed || (bulk && can >= SPLICE_WORTH))) {
        if (!conn_splice_arm(src, dst, can)) {
            conn_splice_hold(src);
            f->no_splice = !armed; /* TLS on a side, or no pipe: the copy path for this body */
        }
    } else if (armed) {
        conn_splice_hold(src);
    }
    return conn_pipe_queued(dst) > 0 ? RELAY_FULL : r;
}
