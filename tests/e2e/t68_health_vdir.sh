#!/usr/bin/env bash
# Health per protocol, passive marks and leastconn; one worker, two exshim-lab servers.
# 1. leastconn: 10 held /owa connections split 5/5 (+-1) over the two servers.
# 2. /mapi turned unhealthy on lab 1 (touch hd1/mapi): within fall x interval (+ 700 ms) the
#    log says "backend lc server ...:LAB1 for /mapi/healthcheck.htm is down (2 checks failed:
#    503)"; then 6 new held /mapi connections all go to lab 2, while 4 new /owa connections
#    still reach lab 1 (its /owa is healthy; leastconn prefers it now); rm brings /mapi back.
# 3. passive, no health group: a backend whose server for 127.0.0.1 refuses (nothing listens):
#    the first client fails over to the good server, the next 5 go straight there (one
#    "Connection refused" line, one "is suspect" line).
# 4. TLS backends: checks run over TLS with SNI and verification: a lab over HTTPS checked with
#    its CA and the right SNI stays up (its route is served); the same server with an SNI its
#    certificate does not name fails its checks (down, then 503 for its route).
. "$(dirname "$0")/lib.sh"
. "$E2E_DIR/health.sh"
need date awk
[ -x "$EXSHIM" ] || skip "$EXSHIM not built"
INTERVAL=500 FALL=2

hlab_start 1
hlab_start 2
self_signed labtls mail.lab.test
rm -f "$T/lab3.ready"
bg lab3 "$EXSHIM_LAB" --config "$T/hlab.conf" --tls-listen 127.0.0.1:0 --cert "$T/labtls.pem" \
    --key "$T/labtls.key" --ready-file "$T/lab3.ready"
wait_file "$T/lab3.ready" 10 || fail "the TLS lab did not become ready"
LAB3_PORT=$(awk '$1 == "tls" { sub(/.*:/, "", $2); print $2; exit }' "$T/lab3.ready")

# a dead port that 127.0.0.1 prefers over lab 2 (the same rendezvous hash as proxy/upstream.c)
DEAD=$("$PY" - "$LAB2_PORT" <<'EOF'
import socket, sys
M = (1 << 64) - 1
def fnv(h, s):
    for c in s.encode():
        h = ((h ^ c) * 1099511628211) & M
    return h
def weight(port):
    h = fnv(fnv(fnv(1469598103934665603, "127.0.0.1"), "127.0.0.1"), str(port))
    h ^= h >> 33
    h = (h * 0xff51afd7ed558ccd) & M
    return h ^ (h >> 33)
for _ in range(50):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    if weight(p) > weight(int(sys.argv[1])):
        print(p)
        break
EOF
)
[ -n "$DEAD" ] || fail "no dead port preferred by the hash in 50 tries"

cat >"$T/exshim.conf" <<EOC
workers = 1;
log_level = "info";
grace = "2s";
listeners = ( { name = "plain"; address = "127.0.0.1:0"; } );
backends = (
  { name = "lc"; servers = [ "127.0.0.1:$LAB1_PORT", "127.0.0.1:$LAB2_PORT" ]; balance = "leastconn";
    health = { path = "/owa/healthcheck.htm"; interval = "${INTERVAL}ms"; timeout = "400ms";
               rise = 2; fall = $FALL; }; },
  { name = "passive"; servers = [ "127.0.0.1:$DEAD", "127.0.0.1:$LAB2_PORT" ]; connect_timeout = "1s"; },
  { name = "tlsok"; servers = [ "127.0.0.1:$LAB3_PORT" ]; tls = { ca = "labtls.pem"; sni = "mail.lab.test"; };
    health = { interval = "${INTERVAL}ms"; fall = $FALL; }; },
  { name = "tlsbad"; servers = [ "127.0.0.1:$LAB3_PORT" ]; tls = { ca = "labtls.pem"; sni = "other.lab.test"; };
    health = { interval = "${INTERVAL}ms"; fall = $FALL; }; }
);
routes = (
  { path = "/owa"; backend = "lc"; },
  { path = "/mapi"; backend = "lc"; health_path = "/mapi/healthcheck.htm"; },
  { path = "/owa/tls"; backend = "tlsok"; },
  { path = "/owa/bad"; backend = "tlsbad"; },
  { path = "default"; backend = "passive"; }
);
EOC
start_exshim "$T/exshim.conf"
PORT=$(listener_port plain)

# hold NAME PATH COUNT: COUNT held connections (background, $T/NAME.ready when all answered)
hold() {
    rm -f "$T/$1.ready"
    bg "$1" $HC --port "$PORT" hold --path "$2" --count "$3" --ready "$T/$1.ready" \
        --stop "$T/hold.stop" --seconds 40
    wait_file "$T/$1.ready" 10 || fail "$1: held connections not answered"
    grep -q '^ok ' "$T/$1.ready" || fail "$1: $(cat "$T/$1.ready")"
}

# 1. leastconn
hold owa1 '/owa/healthcheck.htm?a=1' 10
a=$(served_by "$LAB1_PORT" 'path=/owa/healthcheck.htm\?a=1&n=')
b=$(served_by "$LAB2_PORT" 'path=/owa/healthcheck.htm\?a=1&n=')
[ $((a + b)) -eq 10 ] || fail "leastconn: $a + $b access lines for 10 held connections"
[ "$a" -ge 4 ] && [ "$a" -le 6 ] || fail "leastconn: 10 held connections split $a/$b, want 5/5 +-1"
log "leastconn: 10 held /owa connections split $a/$b"

# 2. /mapi unhealthy on lab 1 only
t0=$(now_ms)
touch "$T/hd1/mapi"
pat="backend lc server 127.0.0.1:$LAB1_PORT for /mapi/healthcheck.htm is down \($FALL checks failed: 503\)"
wait_log "$T/exshim.log" "$pat" 5 || fail "no '... for /mapi/healthcheck.htm is down ($FALL checks failed: 503)' line"
down_ms=$(log_ms "$(grep -E "$pat" "$T/exshim.log" | head -1)")
dgap=$((down_ms - t0))
[ "$dgap" -le $((FALL * INTERVAL + 700)) ] || fail "/mapi went down $dgap ms after the touch"
grep -qE "backend lc server 127.0.0.1:$LAB1_PORT for /owa/healthcheck.htm is down" "$T/exshim.log" &&
    fail "/owa of lab 1 went down too"
hold mapi '/mapi/healthcheck.htm?b=1' 6
m1=$(served_by "$LAB1_PORT" 'path=/mapi/healthcheck.htm\?b=1&n=')
m2=$(served_by "$LAB2_PORT" 'path=/mapi/healthcheck.htm\?b=1&n=')
[ "$m1" -eq 0 ] && [ "$m2" -eq 6 ] || fail "/mapi with lab 1's /mapi down: $m1 on lab 1, $m2 on lab 2"
hold owa2 '/owa/healthcheck.htm?c=1' 4
o1=$(served_by "$LAB1_PORT" 'path=/owa/healthcheck.htm\?c=1&n=')
o2=$(served_by "$LAB2_PORT" 'path=/owa/healthcheck.htm\?c=1&n=')
[ "$o1" -ge 1 ] || fail "/owa no longer reaches lab 1 ($o1/$o2)"
rm "$T/hd1/mapi"
wait_log "$T/exshim.log" "backend lc server 127.0.0.1:$LAB1_PORT for /mapi/healthcheck.htm is up" 5 ||
    fail "/mapi of lab 1 did not come back"
touch "$T/hold.stop"
log "/mapi down on lab 1 after $dgap ms: 6 new /mapi connections $m1/$m2, 4 new /owa $o1/$o2; back up after rm"

# 3. passive only
for i in 1 2 3 4 5 6; do
    out=$($HC --port "$PORT" get --path "/ews/p$i") || fail "passive request $i failed"
    [ "${out%% *}" = 401 ] || [ "${out%% *}" = 404 ] || [ "${out%% *}" = 200 ] ||
        fail "passive request $i: $out"
done
wait_log "$T/exshim.log" "access .*path=/ews/p6 " 5 || fail "no access line for the last passive request"
refused=$(grep -c "backend passive (127.0.0.1:$DEAD): Connection refused" "$T/exshim.log")
suspect=$(grep -c "backend passive server 127.0.0.1:$DEAD is suspect" "$T/exshim.log")
good=$(grep ' access ' "$T/exshim.log" | grep -E 'path=/ews/p[1-6] ' | grep -c "backend=passive/127.0.0.1:$LAB2_PORT ")
[ "$refused" -eq 1 ] || fail "passive: $refused refused connects to the dead server, want 1"
[ "$suspect" -eq 1 ] || fail "passive: $suspect 'is suspect' lines, want 1"
[ "$good" -eq 6 ] || fail "passive: $good of 6 requests served by the good server"
# 4. TLS checks
wait_log "$T/exshim.log" "backend tlsbad server 127.0.0.1:$LAB3_PORT for /owa/healthcheck.htm is down \($FALL checks failed: " 5 ||
    fail "no 'is down' line for the TLS backend with the wrong SNI"
grep -q "backend tlsok server .* is down" "$T/exshim.log" && fail "the TLS backend with the right SNI went down"
out=$($HC --port "$PORT" get --path /owa/tls/x) || fail "request to the verified TLS backend failed"
okstatus=${out%% *}
[ "$okstatus" != 503 ] && [ "$okstatus" != 502 ] || fail "verified TLS backend: $out"
out=$($HC --port "$PORT" get --path /owa/bad/x) || fail "request to the TLS backend with the wrong SNI failed"
[ "${out%% *}" = 503 ] && grep -q "backend tlsbad has no healthy server for route /owa/bad" <<<"$out" ||
    fail "wrong SNI: $out"
tlswhy=$(grep -o "backend tlsbad server .* is down .*" "$T/exshim.log" | head -1 | sed 's/.*checks failed: //; s/)$//')
log "TLS: right SNI and CA: up and served (status $okstatus from the lab); wrong SNI: down ($tlswhy), 503"

pass "leastconn split $a/$b; /mapi down on lab 1 in $dgap ms: /mapi $m1/$m2, /owa still $o1/$o2; passive: 1 refused connect, 1 suspect line, 6/6 served by the good server; TLS checks: verified backend up, wrong SNI down ($tlswhy)"
