#!/usr/bin/env bash
# A chunked response is relayed chunk by chunk (F7, MAPI long polls): the origin sends one
# chunk, waits 2 s, sends another; the client must hold the first chunk before the origin
# sends the second.
. "$(dirname "$0")/lib.sh"
start_core
out=$("$PY" "$CLIENTS/core_check.py" chunked --port "$TLS_PORT" --tls --delay 2 --origin-log "$ORIGIN_LOG") ||
    fail "chunked relay: $out"
echo "$out"
pass "$(grep '^chunked:' <<<"$out")"
