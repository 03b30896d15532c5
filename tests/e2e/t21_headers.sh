#!/usr/bin/env bash
# Header fidelity (F12, F13): request and response header names, case, order and duplicates
# pass byte for byte; hop-by-hop headers (Connection, Keep-Alive, TE, Upgrade,
# Proxy-Connection, names listed in Connection) go; X-Forwarded-For/-Proto/-Host are set by
# exshim, replacing client copies; a 64000-character Negotiate token (a 48000-byte Windows
# MaxTokenSize ticket) is accepted by default, a 65536-character one with a 96 KiB limit.
. "$(dirname "$0")/lib.sh"
start_core
C=$CLIENTS/core_check.py
rc=0
"$PY" "$C" reqheaders --port "$TLS_PORT" --tls || rc=1
"$PY" "$C" reqheaders --port "$PLAIN_PORT" || rc=1
"$PY" "$C" respheaders --port "$TLS_PORT" --tls || rc=1
"$PY" "$C" bigauth --port "$TLS_PORT" --tls --size 64000 || rc=1
[ "$rc" -eq 0 ] || fail "header checks failed (see above)"

# PROTOCOLS.md D.2: with max_header_bytes raised to 96 KiB, one 64 KiB header line (a
# 65536-character token) passes, and a head over 96 KiB still gets 431.
kill "$EXSHIM_PID"
wait "$EXSHIM_PID" 2>/dev/null
CORE_MAX_HEADER_BYTES=98304 core_conf "$T/exshim96k.conf" "$ORIGIN_PORT"
start_exshim "$T/exshim96k.conf"
TLS_PORT=$(listener_port tls)
"$PY" "$C" bigauth --port "$TLS_PORT" --tls --size 65536 || fail "a 64 KiB Authorization line was refused with max_header_bytes = 98304"
"$PY" "$C" badreq --port "$TLS_PORT" --tls --max-header-bytes 98304 --case head-too-big ||
    fail "a head over max_header_bytes = 98304 was not refused with 431"
pass "headers byte for byte, hop-by-hop removed, X-Forwarded-* set, 64000-char token forwarded (65536 with a 96 KiB limit)"
