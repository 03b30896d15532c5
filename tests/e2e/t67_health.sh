#!/usr/bin/env bash
# Health-checked pool of two exshim-lab servers (interval 500ms, rise 2, fall 2), one worker.
# 1. Under a loop of new connections (one every 20 ms), the server that 127.0.0.1 hashes to is
#    killed: the last new connection routed to it comes within fall x interval (+ 500 ms
#    slack) of the kill, the client sees at most 2 failed requests (those in flight at the
#    kill), and the state change is one log line.
# 2. Restarted on the same port, it gets new connections again after rise passed checks: not
#    before (rise - 1) x interval, and within rise x interval + 700 ms slack of its restart.
# 3. Both servers down: a request gets 503 "exshim: backend pool has no healthy server for
#    route /owa" in under 100 ms, without a connect attempt; its access line names the pool and
#    no server (backend=pool).
. "$(dirname "$0")/lib.sh"
. "$E2E_DIR/health.sh"
need date awk
[ -x "$EXSHIM" ] || skip "$EXSHIM not built"
INTERVAL=500 RISE=2 FALL=2

hlab_start 1
hlab_start 2
cat >"$T/exshim.conf" <<EOC
workers = 1;
log_level = "info";
grace = "2s";
listeners = ( { name = "plain"; address = "127.0.0.1:0"; } );
backends = ( { name = "pool"; servers = [ "127.0.0.1:$LAB1_PORT", "127.0.0.1:$LAB2_PORT" ];
               connect_timeout = "1s";
               health = { path = "/owa/healthcheck.htm"; interval = "${INTERVAL}ms";
                          timeout = "400ms"; rise = $RISE; fall = $FALL; expect = 200; }; } );
routes = ( { path = "/owa"; backend = "pool"; } );
EOC
start_exshim "$T/exshim.conf"
PORT=$(listener_port plain)

# which server does 127.0.0.1 go to?
out=$($HC --port "$PORT" get --path /owa/healthcheck.htm?first) || fail "first request failed"
[ "${out%% *}" = 200 ] || fail "first request: $out"
wait_log "$T/exshim.log" 'access .*path=/owa/healthcheck.htm\?first ' 5 || fail "no access line"
if grep 'path=/owa/healthcheck.htm?first ' "$T/exshim.log" | grep -q "/127.0.0.1:$LAB1_PORT "; then
    VICTIM=1 VPORT=$LAB1_PORT OPORT=$LAB2_PORT
else
    VICTIM=2 VPORT=$LAB2_PORT OPORT=$LAB1_PORT
fi
log "127.0.0.1 goes to lab $VICTIM (port $VPORT)"

# 1. kill it under load
bg load $HC --port "$PORT" load --path /owa/healthcheck.htm --every 0.02 --seconds 20 \
    --stop "$T/load.stop"
LOAD_PID=$LAST_PID
sleep 1
before=$(served_by "$VPORT" 'path=/owa/healthcheck.htm ')
[ "$before" -gt 10 ] || fail "the victim served only $before requests before the kill"
vpid_var=LAB${VICTIM}_PID
kill_ms=$(now_ms)
kill -9 "${!vpid_var}"
wait_log "$T/exshim.log" "backend pool server 127.0.0.1:$VPORT .*is down" 5 ||
    fail "no 'is down' line for the killed server"
sleep $((FALL * INTERVAL / 1000 + 2))
# the last connection attempt that went to the victim: an access line naming it, or a
# failed connect to it
last=$(grep -E "access .*backend=pool/127.0.0.1:$VPORT |backend pool \(127.0.0.1:$VPORT\)" \
    "$T/exshim.log" | tail -n 1)
[ -n "$last" ] || fail "no line for the victim at all"
last_ms=$(log_ms "$last")
gap=$((last_ms - kill_ms))
limit=$((FALL * INTERVAL + 500))
[ "$gap" -le "$limit" ] || fail "new connections reached the killed server $gap ms after the kill (limit $limit): $last"
after=$(served_by "$OPORT" 'path=/owa/healthcheck.htm ')
downs=$(grep -cE "backend pool server 127.0.0.1:$VPORT .*is down" "$T/exshim.log")
[ "$downs" -eq 1 ] || fail "$downs 'is down' lines for one failure, want 1"
errs=$(awk '$2 != "200"' "$T/load.log" | wc -l)
[ "$errs" -le 2 ] || fail "$errs requests failed around the kill: $(awk '$2 != "200"' "$T/load.log" | head -5)"
log "killed lab $VICTIM: last new connection routed to it $gap ms after the kill (limit $limit); $errs client failures; $after requests on the other server; $(grep -oE "is down.*" <<<"$(grep -E "server 127.0.0.1:$VPORT .*is down" "$T/exshim.log")")"

# 2. restart it on the same port: traffic comes back after rise checks
hlab_start "$VICTIM" "$VPORT"
up_ms=$(now_ms)
wait_log "$T/exshim.log" "backend pool server 127.0.0.1:$VPORT for /owa/healthcheck.htm is up" 5 ||
    fail "no 'is up' line after the restart"
sleep 1
back=$(grep -E "access .*path=/owa/healthcheck.htm .*backend=pool/127.0.0.1:$VPORT " "$T/exshim.log" |
    while read -r line; do
        ms=$(log_ms "$line")
        [ "$ms" -ge "$up_ms" ] && { echo "$ms"; break; }
    done)
[ -n "$back" ] || fail "the restarted server got no new connection"
rgap=$((back - up_ms))
rmax=$((RISE * INTERVAL + 700)) rmin=$(((RISE - 1) * INTERVAL - 100))
[ "$rgap" -le "$rmax" ] || fail "traffic came back $rgap ms after the restart (limit $rmax)"
[ "$rgap" -ge "$rmin" ] || fail "traffic came back $rgap ms after the restart, before rise checks could pass ($rmin)"
touch "$T/load.stop"
timeout 10 tail --pid="$LOAD_PID" -f /dev/null 2>/dev/null
log "restarted lab $VICTIM: new connections again after $rgap ms (window $rmin..$rmax)"

# 3. all down: 503 at once, naming backend and route
kill -9 "$LAB1_PID" "$LAB2_PID" 2>/dev/null
wait_log "$T/exshim.log" "backend pool server 127.0.0.1:$OPORT for /owa/healthcheck.htm is down \($FALL checks failed: " 5 ||
    fail "no active 'is down ($FALL checks failed: ...)' line for the other server"
n=0
while [ "$(grep -cE "backend pool server 127.0.0.1:$VPORT .*is down" "$T/exshim.log")" -lt 2 ]; do
    [ "$n" -lt 50 ] || fail "no second 'is down' line for the restarted server"
    sleep 0.1
    n=$((n + 1))
done
refused_before=$(grep -c "backend pool (127.0.0.1:" "$T/exshim.log")
out=$($HC --port "$PORT" get --path /owa/x) || fail "request with every server down failed: $out"
read -r status ms <<<"$(head -1 <<<"$out")"
body=$(sed -n 2p <<<"$out")
[ "$status" = 503 ] || fail "all down: status $status, want 503 ($out)"
[ "$body" = "exshim: backend pool has no healthy server for route /owa" ] || fail "all down: body '$body'"
[ "$ms" -lt 100 ] || fail "all down: the 503 took $ms ms"
refused_after=$(grep -c "backend pool (127.0.0.1:" "$T/exshim.log")
[ "$refused_after" -eq "$refused_before" ] || fail "a connect was attempted with every server down"
# its access line names the pool and no server: none was chosen
wait_log "$T/exshim.log" 'access .*path=/owa/x status=503 ' 5 || fail "all down: no access line for the 503"
line=$(grep -E 'access .*path=/owa/x status=503 ' "$T/exshim.log" | tail -n 1)
grep -q ' backend=pool auth=' <<<"$line" || fail "all down: the 503's access line names a server: $line"
pass "kill under load: last new connection to the dead server +$gap ms (limit $limit), $errs client errors, one down line; restart: traffic back after $rgap ms ($rmin..$rmax); all down: 503 in $ms ms naming backend and route"
