/*
 * The differential check of proxy/http1 against Debian's http-parser, shared by
 * tests/unit/test_http1.c and tests/fuzz/fuzz_http1.c. exshim's head parser is stricter than
 * http-parser (built non-strict); whatever it accepts, http-parser must accept too and split
 * into the same fields.
 */
#ifndef TESTS_UNIT_H1_ORACLE_H
#define TESTS_UNIT_H1_ORACLE_H

#include <stdbool.h>
#include <stddef.h>

#include "proxy/http1.h"

/*
 * h is what h1_parse_request (is_request) or h1_parse_response returned H1_OK for over
 * buf[0..len). Feeds http-parser the header block of buf (after the start line) behind a
 * stand-in start line of the same kind, version and status, as exshim did before it had its own
 * parser, and compares: http-parser accepts, reports as many headers, each name byte for byte
 * and each value byte for byte once OWS is trimmed. Returns NULL when all agree, else a static
 * description of the first difference. Borrows buf and h.
 */
const char *h1oracle_compare(const char *buf, size_t len, bool is_request, const struct h1_head *h);

#endif
