/*
 * The effective policy of a loaded configuration, as `exshim -t` prints it: one block per
 * route with what every default resolved to.
 */
#ifndef CONF_POLICY_H
#define CONF_POLICY_H

#include <stdio.h>

#include "conf/conf.h"

/*
 * Writes, first per listener with proxy_protocol on,
 *
 *   listener NAME: proxy_protocol from ADDR/PREFIX, ...
 *
 * then per route in file order:
 *
 *   route PATH (FILE:LINE)
 *     backend NAME: plain|tls [verify|no-verify] servers HOST:PORT, ... [sni NAME]
 *     offer SCHEME, ... | pass-through | none   (edge routes: the edge's offer, then
 *     auth edge: delegation ... to SPN ...      the edge's delegation line)
 *     bridge none|ntlm-to-negotiate|negotiate-to-ntlm
 *     timeouts header D, idle D, body D, connect D
 *     health PATH every D, timeout D, rise N, fall N, expect N | health passive (...);
 *       balance rendezvous|leastconn      (PATH: the route's health_path, else the backend's)
 *     note ...            (only for known traps, e.g. Negotiate hidden by offer = [ "NTLM" ])
 *
 * Borrows both. Returns 0, or -1 when writing failed.
 */
int conf_policy_print(const struct conf *c, FILE *out);

/* A duration in milliseconds as the shortest exact text conf_parse_duration accepts
 * ("1h", "90s", "1500ms"); writes at most len bytes into buf and returns buf. */
const char *conf_duration_text(unsigned ms, char *buf, size_t len);

#endif
