/* Answers exshim gives itself (errors, local 401s, 404, 403): the bytes of the response. */
#ifndef PROXY_REPLY_H
#define PROXY_REPLY_H

#include <stdbool.h>

struct evbuffer;

/* The reason phrase exshim uses for status ("Bad Request" ...; "Error" when unknown). Static. */
const char *reply_reason(int status);

/*
 * Appends a complete response to out: status line, extra (whole header lines, may be NULL;
 * drained), Server, a plain-text Content-Type and Content-Length for body, Connection: close
 * unless keep, then body. Borrows everything.
 */
void reply_format(struct evbuffer *out, int status, const char *reason, const char *body,
                  struct evbuffer *extra, bool keep);

#endif
