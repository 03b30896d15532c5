/*
 * Request-target normalisation and Host validation, over plain memory (no libevent, no logger,
 * no allocation; every function is O(n) in its input).
 *
 * Policy. exshim routes on the path a backend will actually serve, never on the raw bytes a
 * client sent. Before routing, the request-target is parsed (origin-form "/p?q", absolute-form
 * "http[s]://authority/p?q", or "*") and its path is put in one canonical form: escapes of
 * unreserved characters are decoded and the remaining escapes are written with upper-case hex.
 * The default policy, target_policy = "strict", answers 400 to any path whose meaning a
 * normaliser (ours or the backend's) could change: "." and ".." segments, "//", a literal "\",
 * the escapes %2E, %2F and %5C, encoded NUL and control bytes, malformed escapes, a fragment,
 * double encodings such as %252e, and escaped bytes that are not well-formed UTF-8 (the
 * overlong %C0%AE kind). target_policy = "normalize" is the one relaxation: it repairs the path
 * the way IIS would (decodes %2E, turns "\" and %5C into "/", collapses "//", then removes dot
 * segments per RFC 3986 5.2.4) and routes on the result, but still refuses %2F, encoded
 * controls, malformed escapes, fragments, double encodings, bad UTF-8 escapes and any path
 * that climbs above the root. Under both policies "/.." at the root is an error, never
 * clamped. The query is passed on unchanged. In absolute-form the scheme must be http or
 * https, the authority may not carry userinfo, an empty path becomes "/", and the Host header
 * must name the same host and port.
 */
#ifndef PROXY_TARGET_H
#define PROXY_TARGET_H

#include <stdbool.h>
#include <stddef.h>

enum target_policy {
    TARGET_STRICT,    /* default: refuse anything whose meaning a normaliser would change */
    TARGET_NORMALIZE, /* the one relaxation (conf key target_policy = "normalize"): repair, then
                         route */
};

struct target {
    const char *path; /* normalised path, starts with '/' ("*" for asterisk-form); view into out */
    size_t path_len;
    const char *query; /* bytes after the first '?', raw (view into raw); NULL if no '?' */
    size_t query_len;
    const char *host; /* absolute-form: authority host, brackets kept for an IP-literal (view
                         into raw); NULL otherwise */
    size_t host_len;
    const char *port; /* absolute-form explicit port digits (view into raw), else NULL */
    size_t port_len;
    bool absolute; /* http:// or https:// absolute-form */
    bool https;    /* scheme was https */
    bool asterisk; /* "*" (only valid with OPTIONS; the caller checks the method) */
    bool changed;  /* path differs from the raw path bytes (so the caller forwards the
                      normalised form); an absolute-form empty path made "/" counts as changed */
};

/*
 * Normalises request-target raw[0..len) under pol into out (capacity outcap). The request-line
 * parser has already limited the bytes to 0x21..0x7e; any other byte is refused here as well.
 * The normalised path is never longer than the raw one, so outcap >= len suffices (a smaller
 * outcap is refused unless it still holds the raw path). Kept escapes are written with
 * upper-case hex ("%3a" becomes "%3A", which sets changed).
 * Returns 0 and fills *t, or -1 with *why_out set to a static text (the caller answers 400);
 * *t is left untouched on failure. Borrows raw and out; *t holds views into both, valid while
 * they are.
 */
int target_normalize(const char *raw, size_t len, enum target_policy pol, char *out, size_t outcap,
                     struct target *t, const char **why_out);

/*
 * Host header value syntax (RFC 9110 7.2 / RFC 3986 3.2.2): uri-host [ ":" port ], where
 * uri-host is an IP-literal "[IPv6]", a dotted-quad IPv4 address, or a reg-name made of
 * unreserved characters only (a deliberate subset: no sub-delims, no escapes; a name of only
 * digits and dots must be a valid IPv4 address). The port is 1 to 5 digits with a value of
 * 1..65535 (port 0 is refused). No spaces, no userinfo, not empty, no empty port after ':'.
 * Borrows v.
 */
bool target_host_valid(const char *v, size_t len);

/*
 * For absolute-form: does the Host header value host_hdr[0..len) agree with t's authority?
 * Hosts compare case-insensitively, ports by value, and a missing port on either side means
 * the scheme's default (80 for http, 443 for https). Returns false when host_hdr is not a
 * valid Host value or t is not absolute-form. Borrows t and host_hdr.
 */
bool target_host_agrees(const struct target *t, const char *host_hdr, size_t len);

#endif
