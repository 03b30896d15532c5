#!/usr/bin/env bash
# max_generations (default 4): each generation holds one RPC/HTTP channel pair, opened while
# it was current, so none of them can end early; after 5 reloads 5 generations are
# superseded, one too many: the oldest is stopped (its channel is cut, the log says why), the
# four others keep theirs, and the current one serves.
. "$(dirname "$0")/lib.sh"
. "$E2E_DIR/ops.sh"
need openssl
ops_lab_start
ops_cert cert >/dev/null
ops_conf "$T/exshim.conf" '"NTLM"' 'drain_timeout = "10m";'
ops_start "$T/exshim.conf" -w 1

hold() { # hold N: one channel pair through the current generation, pinged every 0.5 s
    rm -f "$T/hold$1.ready"
    bg "hold$1" "$PY" -u "$LABPY/reload_load.py" --port "$PLAIN_PORT" --ready "$T/hold$1.ready" \
        --stop "$T/hold.stop" --http 0 --mapi 0 --pairs 1 --ping-every 0.5 --seconds 60
    wait_file "$T/hold$1.ready" 10 || fail "channel pair $1 did not open: $(cat "$T/hold$1.log")"
}
hold 1
for r in 1 2 3 4 5; do
    kill -HUP "$EXSHIM_PID"
    wait_log "$T/exshim.log" "info: generation $((r + 1)) serving" 10 || fail "reload $r did not finish"
    hold $((r + 1))
done
wait_log "$T/exshim.log" 'warn: generation 1: more than max_generations \(4\) old generations; stopping it now' 5 ||
    fail "the log does not say that generation 1 was stopped for max_generations"
wait_log "$T/exshim.log" 'info: generation 1: all workers ended' 10 || fail "generation 1 still runs"
[ "$(gen_workers_alive 1)" = 0 ] || fail "a worker of generation 1 is still alive"
for g in 2 3 4 5 6; do
    [ "$(gen_workers_alive $g)" = 1 ] || fail "generation $g has $(gen_workers_alive $g) workers, want 1"
done
grep -q 'info: generation 2: all workers ended' "$T/exshim.log" && fail "generation 2 was stopped too"
sleep 1.2 # a few pings on every channel after the stop
touch "$T/hold.stop"
for n in 1 2 3 4 5 6; do
    timeout 20 tail --pid="${PIDS[$((n + 1))]}" -f /dev/null 2>/dev/null
done
grep -q 'channel_cut=1 ' "$T/hold1.log" || fail "generation 1's channel was not cut: $(grep result "$T/hold1.log")"
for n in 2 3 4 5 6; do
    grep -q 'channel_cut=0 .*pairs_alive=1/1' "$T/hold$n.log" ||
        fail "channel of generation $n: $(grep result "$T/hold$n.log")"
done
# the drained generations end once their channel closed
for g in 2 3 4 5; do
    wait_log "$T/exshim.log" "info: generation $g: all workers ended" 10 || fail "generation $g did not end after its channel closed"
done
st=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 "http://127.0.0.1:$PLAIN_PORT/owa/")
[ "$st" = 200 ] || fail "the current generation answers $st"
ops_stop
pass "5 reloads, 6 generations with a channel each: generation 1 stopped for max_generations (logged), generations 2-5 kept their channels until they closed"
