/*
 * Request admission: everything exshim decides about a request head before any byte of the
 * request goes anywhere. Parse (strict), normalise the target, route by the normalised path,
 * run the exploit guard, and check the body bytes that arrived with the head. No I/O, no
 * logging: the caller answers and logs from the verdict.
 */
#ifndef PROXY_ADMIT_H
#define PROXY_ADMIT_H

#include <stdbool.h>
#include <stddef.h>

#include "conf/conf.h"
#include "proxy/frame.h"
#include "proxy/guard.h"
#include "proxy/http1.h"
#include "proxy/target.h"

struct evbuffer;

struct admit {
    int status;                     /* 0: admitted; else the status to answer (400, 403, ...) */
    char why[192];                  /* when refused: for the log line and the reply body */
    const struct guard_rule *rule;  /* 403: the guard rule that matched */
    struct h1_head h;               /* the parsed head: views into the input's first bytes */
    struct target t;                /* the normalised target */
    const struct conf_route *route; /* NULL when no route matches (404) */
    struct frame body;              /* framing of the request body, ready to relay */
};

/*
 * Decides about the head_len-byte request head at the front of in (contiguous: the caller has
 * pulled it up). Fills *a; on a 404 (no route) status is 404 and h is valid. The views in *a
 * stay valid until in is drained or moved, and until the next admit_request call (the header
 * array and the normalised target live in per-process scratch space). Borrows everything.
 * Returns -1 only when scratch space cannot be had (out of memory).
 */
int admit_request(const struct conf *c, struct evbuffer *in, size_t head_len, struct admit *a);

/* Header array for a response head of this process, sized by max_headers. NULL: no memory. */
struct h1_header *admit_response_headers(const struct conf *c, size_t *cap_out);

#endif
