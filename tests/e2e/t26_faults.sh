#!/usr/bin/env bash
# Faults get a clear status in bounded time:
#  - backend down (nothing listens): 502 with a short text/plain body naming the backend
#  - backend accepts and never answers (route body_timeout 2s): 504 in 1.5..6 s
#  - backend closes mid-response: the client connection ends at once, body incomplete
#  - a client sends half a head and stalls (header_timeout 2s): closed (or 408) in 1.5..5 s
. "$(dirname "$0")/lib.sh"
start_core
U=https://127.0.0.1:$TLS_PORT

# backend down: route /down -> backend "deadend" on a port nothing listens on
out=$(curl -sk --max-time 15 -D "$T/down.h" -w '\nSTATUS=%{http_code} TIME=%{time_total}\n' "$U/down/x") ||
    fail "curl to a down backend failed outright"
st=$(sed -n 's/^STATUS=\([0-9]*\).*/\1/p' <<<"$out")
[ "$st" = 502 ] || fail "backend down: status $st, want 502"
body=$(sed '/^STATUS=/d' <<<"$out")
grep -qi '^content-type: text/plain' "$T/down.h" || fail "502 body is not text/plain: $(cat "$T/down.h")"
grep -q 'deadend' <<<"$body" || fail "502 body does not name the backend: $body"
[ "${#body}" -le 512 ] || fail "502 body is not short (${#body} bytes)"
t=$(sed -n 's/.*TIME=//p' <<<"$out")
awk -v t="$t" 'BEGIN { exit !(t < 5) }' || fail "502 took ${t}s"
log "backend down: 502 in ${t}s: $(tr '\n' ' ' <<<"$body")"

# slow backend: the origin reads /slow and never answers; route body_timeout is 2s
out=$(curl -sk --max-time 15 -o /dev/null -w 'STATUS=%{http_code} TIME=%{time_total}\n' "$U/slow/x") ||
    fail "curl to a slow backend failed outright (no 504)"
st=$(sed -n 's/^STATUS=\([0-9]*\).*/\1/p' <<<"$out")
t=$(sed -n 's/.*TIME=//p' <<<"$out")
[ "$st" = 504 ] || fail "slow backend: status $st after ${t}s, want 504"
awk -v t="$t" 'BEGIN { exit !(t >= 1.5 && t < 6) }' || fail "slow backend: 504 after ${t}s, want 1.5..6 s"
grep -q '^slow peer=' "$ORIGIN_LOG" || fail "the slow request never reached the origin"
wait_log "$ORIGIN_LOG" '^close peer=.*requests=1 ' 5 || fail "backend connection of the timed-out request not closed"
log "slow backend: 504 after ${t}s"

# backend dies mid-response (Content-Length 100000, 1000 bytes sent, then close): the client
# must see the response cut (not a complete body, not a hang) within bounded time
t0=$(date +%s%N)
curl -sk --max-time 10 -o "$T/trunc.out" "$U/truncate/x"
crc=$?
dt=$((($(date +%s%N) - t0) / 1000000))
[ "$crc" -ne 0 ] || fail "a truncated response was delivered as complete"
[ "$crc" -ne 28 ] || fail "client hung until its timeout after the backend died mid-response"
[ "$dt" -lt 5000 ] || fail "truncated response took ${dt} ms to end"
[ "$(stat -c %s "$T/trunc.out")" -le 1000 ] || fail "client got more bytes than the backend sent"
log "backend died mid-response: client connection ended after ${dt} ms (curl exit $crc)"

# half a head, then silence: dropped at header_timeout (2s) on the plain and TLS listeners
"$PY" "$CLIENTS/core_check.py" stall --port "$PLAIN_PORT" --min 1.5 --max 5 || fail "stalled plain client not dropped in time"
"$PY" "$CLIENTS/core_check.py" stall --port "$TLS_PORT" --tls --min 1.5 --max 5 || fail "stalled TLS client not dropped in time"
pass "502 for a down backend, 504 for a silent one, cut response ends, stalled heads dropped"
