#!/usr/bin/env bash
# PROXY protocol on a listener (v1 and v2). Asserts, with one worker behind two origins:
#  - v1 TCP4/TCP6 and v2 INET (ALPN, authority, NOOP, custom, SSL TLVs, CRC32C)/INET6 headers:
#    X-Forwarded-For at the origin is the header's address, and so is client= in the access
#    log; v2 LOCAL keeps the socket's address (127.0.0.1); a v2 or v1 header then TLS works;
#  - malformed headers (plain HTTP, a ClientHello, bad v1 fields, bad v2 version/family/CRC/
#    TLV) are closed at once with no response byte; no header, or half of one, is closed at
#    handshake_timeout (1 s); each is logged with its reason; the origins see zero bytes;
#  - a valid header from a peer outside proxy_from is closed, logged, origins see nothing;
#  - max_connections_per_client = 2 counts the header's address: a third connection carrying
#    A is closed (logged with A's address) while B from the same TCP peer is served;
#  - rendezvous hashing follows the header's address: 12 addresses x 3 connections each
#    (v1 and v2 mixed): every address's requests land on one origin, and both origins serve;
#  - a listener without proxy_protocol is unchanged (plain request, X-Forwarded-For 127.0.0.1);
#  - exshim -t prints each PROXY listener's proxy_from; proxy_protocol without proxy_from is a
#    configuration error naming file:line:key.
. "$(dirname "$0")/lib.sh"
. "$E2E_DIR/edge.sh"
[ -x "$EXSHIM" ] || skip "$EXSHIM not built"
need openssl
PP=$CLIENTS/pp_check.py
start_origin origin1
O1=$ORIGIN_PORT
start_origin origin2
O2=$ORIGIN_PORT
self_signed server localhost
cat >"$T/pp.conf" <<EOC
workers = 1;
log_level = "debug";
access_log = true;
handshake_timeout = "1s";
max_connections_per_client = 2;
listeners = (
  { name = "pp"; address = "127.0.0.1:0"; proxy_protocol = true; proxy_from = [ "127.0.0.1" ]; },
  { name = "pptls"; address = "127.0.0.1:0"; proxy_protocol = true;
    proxy_from = [ "10.0.0.0/24", "127.0.0.0/8" ];
    tls = { certs = ( { chain = "server.pem"; key = "server.key"; } ); }; },
  { name = "denied"; address = "127.0.0.1:0"; proxy_protocol = true;
    proxy_from = [ "127.0.0.2", "2001:db8::/32" ]; },
  { name = "plain"; address = "127.0.0.1:0"; }
);
backends = ( { name = "two"; servers = [ "127.0.0.1:$O1", "127.0.0.1:$O2" ]; } );
routes = ( { path = "default"; backend = "two"; } );
EOC
"$EXSHIM" -t -c "$T/pp.conf" >"$T/check.out" 2>&1 || fail "exshim -t refused the config: $(cat "$T/check.out")"
grep -Fxq 'listener pptls: proxy_protocol from 10.0.0.0/24, 127.0.0.0/8' "$T/check.out" ||
    fail "exshim -t does not show proxy_from: $(cat "$T/check.out")"
# proxy_protocol without proxy_from: refused, naming file, line and key
sed 's/proxy_protocol = true; proxy_from = \[ "127.0.0.1" \];/proxy_protocol = true;/' "$T/pp.conf" >"$T/nofrom.conf"
if "$EXSHIM" -t -c "$T/nofrom.conf" >"$T/nofrom.out" 2>&1; then fail "proxy_protocol without proxy_from accepted"; fi
grep -Eq 'nofrom\.conf:7: listeners\.\[0\]\.proxy_protocol: proxy_protocol needs proxy_from' "$T/nofrom.out" ||
    fail "proxy_protocol without proxy_from: $(cat "$T/nofrom.out")"
start_exshim_as exshim "$T/pp.conf"
PORT=$(port_of pp)
TPORT=$(port_of pptls)
origin_bytes() { cat "$T/origin1.log" "$T/origin2.log" | grep -c 'accept peer='; }

# 1. the header's address is the client's
"$PY" "$PP" xff --port "$PORT" --tls-port "$TPORT" || fail "X-Forwarded-For does not follow the header"
for c in '192\.0\.2\.10:56324' '2001:db8::5:40000' '192\.0\.2\.20:40020' '2001:db8::6:40006' \
    '192\.0\.2\.30:40030' '192\.0\.2\.31:40031'; do
    wait_log "$EXSHIM_LOG" "access sid=[0-9]+ client=$c .*status=200" 3 ||
        fail "no access-log line with client=$c"
done
wait_log "$EXSHIM_LOG" "access sid=[0-9]+ client=127\.0\.0\.1:[0-9]+ .*path=/echo/xff status=200" 3 ||
    fail "v2 LOCAL: the access log does not show the socket's address"
grep -Eq 'PROXY v2 from 127\.0\.0\.1:[0-9]+: client 192\.0\.2\.20:40020 authority=mail\.example\.org' \
    "$EXSHIM_LOG" || fail "no debug line for the v2 header with its authority TLV"
[ "$(exshim_count 'refused')" -eq 0 ] || fail "valid headers were refused"

# 2. malformed and missing headers: closed, logged, nothing reaches an origin
before=$(origin_bytes)
"$PY" "$PP" refused --port "$PORT" --deadline 1 || fail "a malformed or missing header was not closed silently"
sleep 0.2
[ "$(origin_bytes)" -eq "$before" ] || fail "an origin saw a connection for a refused header"
grep -c '/echo/leak' "$T/origin1.log" "$T/origin2.log" | grep -qv ':0$' && fail "bytes after a bad header reached an origin"
grep -Eq 'listener pp: connection from 127\.0\.0\.1:[0-9]+ refused: malformed PROXY header: not a PROXY header \(1 refused so far' \
    "$EXSHIM_LOG" || fail "no warning line for the first malformed header"
for why in 'v1: bad source address' 'v1: bad source port' 'v1: unexpected character' \
    'v2: version is not 2' 'v2: UNIX addresses are not accepted' 'v2: CRC32C mismatch' \
    'v2: TLV runs past the header'; do
    grep -Fq "refused: malformed PROXY header: $why" "$EXSHIM_LOG" || fail "reason '$why' not logged"
done
grep -Eq 'refused: no PROXY header in time \(1 refused so far' "$EXSHIM_LOG" || fail "no warning for a missing header"
grep -Eq 'refused: no PROXY header in time: 19 bytes of a header' "$EXSHIM_LOG" || fail "half a v1 header: no debug line"

# 3. a peer outside proxy_from
before=$(origin_bytes)
"$PY" "$PP" denied --port "$(port_of denied)" || fail "a peer outside proxy_from was served"
sleep 0.2
[ "$(origin_bytes)" -eq "$before" ] || fail "an origin saw a connection from a refused peer"
grep -Eq 'listener denied: connection from 127\.0\.0\.1:[0-9]+ refused: peer not in proxy_from' \
    "$EXSHIM_LOG" || fail "refused peer not logged"

# 4. max_connections_per_client counts the header's address
"$PY" "$PP" climit --port "$PORT" --limit 2 || fail "max_connections_per_client does not follow the header"
grep -Eq 'client 192\.0\.2\.50:41999 refused: max_connections_per_client \(2\) reached' "$EXSHIM_LOG" ||
    fail "the per-client refusal does not name the header's address"

# 5. rendezvous hashing follows the header's address
"$PY" "$PP" rv --port "$PORT" --n 12 --k 3 || fail "rendezvous requests failed"
used1=0 used2=0
for i in $(seq 0 11); do
    if [ $((i % 2)) -eq 0 ]; then a="192.0.2.$((100 + i))"; else a=$(printf '2001:db8::%x' $((256 + i))); fi
    n1=$(grep -cF "path=/echo/rv/$a/" "$T/origin1.log")
    n2=$(grep -cF "path=/echo/rv/$a/" "$T/origin2.log")
    [ $((n1 + n2)) -eq 3 ] || fail "$a: $n1 + $n2 requests at the origins, want 3"
    [ "$n1" -eq 0 ] || [ "$n2" -eq 0 ] || fail "$a: split over both origins ($n1/$n2)"
    [ "$n1" -gt 0 ] && used1=1
    [ "$n2" -gt 0 ] && used2=1
done
[ "$used1" -eq 1 ] && [ "$used2" -eq 1 ] || fail "every header address landed on one origin: the choice ignores the header"

# 6. a listener without proxy_protocol still takes plain HTTP
out=$(curl -s --max-time 5 "http://127.0.0.1:$(port_of plain)/echo/plain") || fail "plain listener: no answer"
grep -q 'X-Forwarded-For: 127.0.0.1' <<<"$out" || fail "plain listener: X-Forwarded-For is not 127.0.0.1"
stop_exshim
pass "v1/v2 headers set the client address everywhere; bad, missing and unauthorised ones are closed and logged"
