/*
 * exshim-probe: the Remote Connectivity Analyzer as a local command. It runs, per virtual
 * directory, the checks an admin needs to find why Outlook, ActiveSync or a front end fails
 * against an Exchange server (or anything in front of it), prints one line per step and names
 * the failure of DESIGN.md's table with the exshim configuration that fixes it.
 *
 *   probe/main.c   options, the steps in order, text / JSON output, progress line
 *   probe/net.c    connections (TCP, TLS) and HTTP exchanges with a deadline on every wait
 *   probe/wire.c   parsers of server input (RTS PDUs, chunked MAPI bodies, 401 offers,
 *                  certificates) and the RTS PDUs the probe sends: pure, bounded, fuzzed
 *   probe/diag.c   the diagnosis table: observed facts -> F-number, words, fix (pure)
 *
 * NTLM and Kerberos go through bench/load/bench_gss.c (MIT GSS-API with gss-ntlmssp) and the
 * RTS PDUs sent are built by bench/load/bench_rts.c, both shared with exshim-bench.
 */
#ifndef PROBE_PROBE_H
#define PROBE_PROBE_H

#include <stdbool.h>

/* Step result words, as printed. */
enum probe_verdict {
    PROBE_PASS,
    PROBE_WARN,
    PROBE_FAIL,
    PROBE_SKIP,
};

/* Exit statuses. */
#define PROBE_EXIT_OK 0
#define PROBE_EXIT_FAIL 1
#define PROBE_EXIT_USAGE 2

#endif
