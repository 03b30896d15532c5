/* The relay proper. See relay.h. */
#include "proxy/relay.h"

#include <event2/buffer.h>

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
