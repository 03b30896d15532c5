#!/usr/bin/env bash
# RPC over HTTP bulk streaming over TLS (F7, A.4): an RPC_IN_DATA with Content-Length 1 GiB
# streams 256 MiB into a backend that never answers, and an RPC_OUT_DATA whose 200 carries
# Content-Length 1 GiB streams 256 MiB back. Both byte streams are checked by sha256 at both
# ends, and the exshim processes' peak RSS (VmHWM) may grow by less than 16 MiB, also when
# the server or the client stops reading for 3 s (64 MiB more each way).
# STREAM_MIB (default 256, a multiple of 64) sets the size.
. "$(dirname "$0")/lib.sh"
MIB=${STREAM_MIB:-256}
LIMIT_KB=$((16 * 1024))
# Under AddressSanitizer (make SAN=1) freed memory sits in a quarantine of up to 256 MiB,
# which would read as growth; turn it off so VmHWM measures what exshim keeps (a no-op for
# a normal build).
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}quarantine_size_mb=0:thread_local_quarantine_size_kb=0"
start_core

# Warm up: one TLS request, so one-time allocations (TLS contexts, first session) are in the
# baseline.
curl -sk --max-time 10 -o /dev/null "https://127.0.0.1:$TLS_PORT/echo/warmup" || fail "warm-up request failed"
pids=$(exshim_pids)
hwm0=$(status_kb VmHWM $pids)
rss0=$(status_kb VmRSS $pids)
log "exshim pids: $pids; before: VmHWM ${hwm0} KiB, VmRSS ${rss0} KiB"

# Sample VmRSS while streaming (VmHWM keeps the peak anyway; this shows the shape).
(
    peak=0
    while :; do
        r=$(status_kb VmRSS $pids)
        [ "$r" -gt "$peak" ] && peak=$r && echo "$peak" >"$T/rss.peak"
        sleep 0.1
    done
) &
PIDS+=($!)

in_out=$("$PY" "$CLIENTS/stream.py" --port "$TLS_PORT" --tls --mode in --mib "$MIB" \
    --origin-log "$ORIGIN_LOG" --timeout 120) || fail "RPC_IN_DATA stream failed: $in_out"
echo "$in_out"
out_out=$("$PY" "$CLIENTS/stream.py" --port "$TLS_PORT" --tls --mode out --mib "$MIB" --timeout 120) ||
    fail "RPC_OUT_DATA stream failed: $out_out"
echo "$out_out"

# the origin saw the RPC_OUT_DATA with our CONN/A1 body and sent the same stream we hashed
sent_sha=$(sed -n "s/^rpc_out peer=[0-9]* sent=$((MIB * 1048576)) sha256=\([0-9a-f]*\).*/\1/p" "$ORIGIN_LOG")
got_sha=$(sed -n 's/.* sha256=\([0-9a-f]*\) .*/\1/p' <<<"$out_out")
[ -n "$sent_sha" ] && [ "$sent_sha" = "$got_sha" ] || fail "RPC_OUT_DATA: origin sent sha256 '$sent_sha', client got '$got_sha'"
[ "$(origin_count '^request peer=[0-9]+ method=RPC_IN_DATA ')" -eq 1 ] || fail "origin did not see exactly one RPC_IN_DATA"
[ "$(origin_count '^request peer=[0-9]+ method=RPC_OUT_DATA ')" -eq 1 ] || fail "origin did not see exactly one RPC_OUT_DATA"
# the IN channel reached the origin as one unbroken body (no re-framing, nothing extra)
grep -Eq "^rpc_in_end peer=[0-9]+ bytes=$((MIB * 1048576)) " "$ORIGIN_LOG" || wait_log "$ORIGIN_LOG" "^rpc_in_end peer=[0-9]+ bytes=$((MIB * 1048576)) " 5 ||
    fail "origin's RPC_IN_DATA body did not end at exactly $MIB MiB when the client left"

# Slow peers: a server that reads nothing for 3 s, a client that reads nothing for 3 s. exshim
# must stop reading the fast side (backpressure), not queue the stream in memory.
slow_in=$("$PY" "$CLIENTS/stream.py" --port "$TLS_PORT" --tls --mode in --mib 64 --pause 3 \
    --origin-log "$ORIGIN_LOG" --timeout 120) || fail "RPC_IN_DATA to a slow server failed: $slow_in"
echo "slow server: $slow_in"
slow_out=$("$PY" "$CLIENTS/stream.py" --port "$TLS_PORT" --tls --mode out --mib 64 --pause 3 --timeout 120) ||
    fail "RPC_OUT_DATA to a slow client failed: $slow_out"
echo "slow client: $slow_out"

hwm1=$(status_kb VmHWM $pids)
rss1=$(status_kb VmRSS $pids)
peak=$(cat "$T/rss.peak" 2>/dev/null || echo "$rss1")
growth=$((hwm1 - hwm0))
log "after: VmHWM ${hwm1} KiB, VmRSS ${rss1} KiB, sampled VmRSS peak ${peak} KiB"
in_rate=$(sed -n 's/.* mbps=\([0-9]*\) .*/\1/p' <<<"$in_out")
out_rate=$(sed -n 's/.* mbps=\([0-9]*\) .*/\1/p' <<<"$out_out")
summary="stream: rpc_in $MIB MiB at $in_rate MB/s, rpc_out $MIB MiB at $out_rate MB/s, peak RSS growth $growth KiB"
echo "$summary"
[ "$growth" -lt "$LIMIT_KB" ] || fail "exshim peak RSS grew by $growth KiB (limit $LIMIT_KB KiB): it buffers"
pass "$summary"
