/* Answers exshim gives itself. See reply.h. */
#include "proxy/reply.h"

#include <string.h>

#include <event2/buffer.h>

const char *
reply_reason(int status)
{
    switch (status) {
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 408:
        return "Request Timeout";
    case 431:
        return "Request Header Fields Too Large";
    case 501:
        return "Not Implemented";
    case 502:
        return "Bad Gateway";
    case 503:
        return "Service Unavailable";
    case 504:
        return "Gateway Timeout";
    case 505:
        return "HTTP Version Not Supported";
    }
    return "Error";
}

void
reply_format(struct evbuffer *out, int status, const char *reason, const char *body,
             struct evbuffer *extra, bool keep)
{
    evbuffer_add_printf(out, "HTTP/1.1 %d %s\r\n", status, reason);
    if (extra != NULL)
        evbuffer_add_buffer(out, extra);
    evbuffer_add_printf(out,
                        "Server: exshim\r\nContent-Type: text/plain; charset=utf-8\r\n"
                        "Content-Length: %zu\r\n%s\r\n%s",
                        strlen(body), keep ? "" : "Connection: close\r\n", body);
}
