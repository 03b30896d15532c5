#!/bin/bash
# Prometheus metrics (proxy/metrics.h): a known mix of requests through exshim in front of
# exshim-lab, then the scrape is checked by promtool and its numbers against what was done:
#   7 x 200 on /ews over TLS (7 TLS 1.3 handshakes), 3 x 404 (no route), 1 x 502 (a backend
#   server nothing listens on: 1 connect failure), 2 NTLM logons on /mapi bridged to a
#   Negotiate-only backend, 1 TLS 1.1 ClientHello refused; bytes cross-checked with the access
#   log; open connection gauges back at 0; /healthz.
#   An RPC over HTTP connection held across a reload: the draining generation's channels and
#   connections are in the sums. Reload: reloads_total{result="ok"} 1, counts of the first
#   generation still in the sums once it has ended (the master keeps its counters); a broken
#   file: failed 1. Workers SIGKILLed with channels open: their gauges are cleared.
. "$(dirname "$0")/lib.sh"
. "$E2E_DIR/ops.sh"
need curl openssl
command -v promtool >/dev/null || skip "promtool not installed (Debian package prometheus)"
[ -x "$EXSHIM_LAB" ] || skip "exshim-lab not built"

cat >"$T/lab.conf" <<'EOC'
name = "metrics";
description = "anonymous ews and rpc, Negotiate-only mapi";
vdirs = (
  { path = "/ews"; handler = "ews"; auth = []; },
  { path = "/rpc"; handler = "rpc"; auth = []; },
  { path = "/mapi/emsmdb"; handler = "mapi-emsmdb"; auth = ["Negotiate"]; }
);
EOC
printf '%s\n' 'LAB:alice:Passw0rd!' >"$T/users"
bg lab "$EXSHIM_LAB" --config "$T/lab.conf" --users "$T/users" --listen 127.0.0.1:0 \
    --ready-file "$T/lab.ready"
wait_file "$T/lab.ready" 10 || fail "exshim-lab did not become ready"
LAB_PORT=$(awk '$1 == "plain" { sub(/.*:/, "", $2); print $2; exit }' "$T/lab.ready")
DEAD_PORT=$(free_port)
ops_cert cert >/dev/null

write_conf() {
    cat >"$T/exshim.conf" <<EOC
workers = 2;
log_level = "info";
grace = "5s";
drain_timeout = "10s";
metrics = { address = "127.0.0.1:0"; };
listeners = (
  { name = "tls"; address = "127.0.0.1:0";
    tls = { certs = ( { chain = "cert.pem"; key = "cert.key"; } ); }; },
  { name = "plain"; address = "127.0.0.1:0"; }
);
backends = (
  { name = "lab"; servers = [ "127.0.0.1:$LAB_PORT" ]; },
  { name = "dead"; servers = [ "127.0.0.1:$DEAD_PORT" ]; connect_timeout = "2s"; }
);
routes = (
  { path = "/ews"; backend = "lab"; },
  { path = "/mapi"; backend = "lab"; offer = [ "NTLM" ]; bridge = "ntlm-to-negotiate"; },
  { path = "/down"; backend = "dead"; },
  { path = "/rpc"; backend = "lab"; }
);
$1
EOC
}
write_conf ""
ops_start "$T/exshim.conf"
MPORT=$(sed -n 's/.*metrics on 127\.0\.0\.1:\([0-9]*\) .*/\1/p' "$T/exshim.log" | head -n 1)
[ -n "$MPORT" ] || fail "no 'metrics on' line in the log"

scrape() {
    curl -s --max-time 5 -o "$T/scrape.txt" -w '%{http_code}' "http://127.0.0.1:$MPORT/metrics" >"$T/scrape.code" ||
        fail "scrape failed"
    [ "$(cat "$T/scrape.code")" = 200 ] || fail "scrape: HTTP $(cat "$T/scrape.code")"
    promtool check metrics <"$T/scrape.txt" >"$T/promtool.out" 2>&1 ||
        fail "promtool check metrics: $(cat "$T/promtool.out")"
}
# value SERIES: the sample value of exactly SERIES (name{labels} as exposed), or "absent"
value() {
    awk -v s="$1" 'index($0, s " ") == 1 { print $2; f = 1 } END { if (!f) print "absent" }' "$T/scrape.txt"
}
expect() {
    local got
    got=$(value "$1")
    [ "$got" = "$2" ] || fail "$1: expected $2, got $got (scrape: $T/scrape.txt)"
}
# settle SERIES VALUE: the gauges follow closes asynchronously; scrape until SERIES is VALUE
settle() {
    local n=50
    while [ "$n" -gt 0 ]; do
        scrape
        [ "$(value "$1")" = "$2" ] && return 0
        sleep 0.1
        n=$((n - 1))
    done
    fail "$1: expected $2, still $(value "$1")"
}

code=$(curl -s --max-time 5 -o "$T/healthz.txt" -w '%{http_code}' "http://127.0.0.1:$MPORT/healthz")
[ "$code" = 200 ] && [ "$(cat "$T/healthz.txt")" = ok ] || fail "/healthz: $code $(cat "$T/healthz.txt")"

XR=(-k --resolve "mail.contoso.test:$TLS_PORT:127.0.0.1")
for i in 1 2 3 4 5 6 7; do
    c=$(curl -s -o /dev/null -w '%{http_code}' --max-time 10 "${XR[@]}" \
        "https://mail.contoso.test:$TLS_PORT/ews/exchange.asmx")
    [ "$c" = 200 ] || fail "/ews request $i: HTTP $c"
done
for i in 1 2 3; do
    c=$(curl -s -o /dev/null -w '%{http_code}' --max-time 10 "http://127.0.0.1:$PLAIN_PORT/nothere/$i")
    [ "$c" = 404 ] || fail "unrouted request $i: HTTP $c"
done
c=$(curl -s -o /dev/null -w '%{http_code}' --max-time 10 "http://127.0.0.1:$PLAIN_PORT/down/")
[ "$c" = 502 ] || fail "/down: HTTP $c, want 502"
MAPI=(-X POST -H 'X-RequestType: Connect' -H 'Content-Type: application/mapi-http' --data-binary x)
for i in 1 2; do
    c=$(curl -s -o /dev/null -w '%{http_code}' --max-time 10 --ntlm -u 'LAB\alice:Passw0rd!' \
        "${MAPI[@]}" "http://127.0.0.1:$PLAIN_PORT/mapi/emsmdb/")
    [ "$c" = 200 ] || fail "NTLM logon $i on /mapi: HTTP $c"
done
echo | openssl s_client -connect "127.0.0.1:$TLS_PORT" -tls1_1 -cipher 'DEFAULT@SECLEVEL=0' \
    >"$T/tls11.txt" 2>&1 && fail "a TLS 1.1 handshake succeeded"

settle 'exshim_client_connections{listener="plain"}' 0
settle 'exshim_client_connections{listener="tls"}' 0
settle 'exshim_backend_connections{backend="lab",server="127.0.0.1:'"$LAB_PORT"'"}' 0
cp "$T/scrape.txt" "$T/scrape1.txt"
expect 'exshim_requests_total{route="/ews",code_class="2xx"}' 7
expect 'exshim_requests_total{route="/ews",code_class="4xx"}' 0
expect 'exshim_requests_total{route="none",code_class="4xx"}' 3
expect 'exshim_requests_total{route="/down",code_class="5xx"}' 1
expect 'exshim_backend_connect_failures_total{backend="dead",server="127.0.0.1:'"$DEAD_PORT"'"}' 1
expect 'exshim_backend_connect_failures_total{backend="lab",server="127.0.0.1:'"$LAB_PORT"'"}' 0
expect 'exshim_backend_server_up{backend="lab",server="127.0.0.1:'"$LAB_PORT"'"}' 1
# curl --ntlm sends its NEGOTIATE at once: per logon one 401 (the CHALLENGE) and one 200
expect 'exshim_requests_total{route="/mapi",code_class="2xx"}' 2
expect 'exshim_requests_total{route="/mapi",code_class="4xx"}' 2
expect 'exshim_auth_challenges_sent_total{route="/mapi"}' 2
expect 'exshim_auth_challenges_sent_total{route="/ews"}' 0
expect 'exshim_auth_handshakes_total{route="/mapi",scheme="NTLM",outcome="bridged_ntlm_to_negotiate"}' 2
expect 'exshim_tls_handshakes_total{listener="tls",version="TLSv1.3"}' 7
expect 'exshim_tls_handshake_failures_total{listener="tls",reason="protocol_version"}' 1
expect 'exshim_workers' 2
expect 'exshim_generations' 1
expect 'exshim_reloads_total{result="ok"}' 0
expect 'exshim_reloads_total{result="failed"}' 0
expect 'exshim_channels{kind="rpc_in"}' 0
[ "$(value exshim_config_load_seconds)" != absent ] || fail "no exshim_config_load_seconds"
# bytes: the sums of in= and out= of the access log lines of /ews
sum_log() {
    awk -v k="$1" '/ access / && / path=\/ews/ { for (i = 1; i <= NF; i++) if (index($i, k "=") == 1) { sub(k "=", "", $i); s += $i } } END { print s + 0 }' "$T/exshim.log"
}
IN=$(sum_log in)
OUT=$(sum_log out)
[ "$IN" -gt 0 ] && [ "$OUT" -gt 0 ] || fail "no access log bytes for /ews"
expect 'exshim_request_bytes_total{route="/ews",direction="in"}' "$IN"
expect 'exshim_request_bytes_total{route="/ews",direction="out"}' "$OUT"
log "first scrape: 7 /ews 2xx, 3 unrouted 404, 1 502, 2 bridged NTLM logons, 7+1 TLS; bytes in=$IN out=$OUT"

# ---- an RPC over HTTP virtual connection held open across a reload ---------------------------
bg rpch "$PY" -u "$LABPY/rpch.py" --port "$PLAIN_PORT" --auth none --pdus 1 --hold 4
RPCH_PID=$LAST_PID
settle 'exshim_channels{kind="rpc_out"}' 1
expect 'exshim_channels{kind="rpc_in"}' 1
expect 'exshim_client_connections{listener="plain"}' 2

# ---- reload: a second generation; the first one's counts stay in the sums -----------------
kill -HUP "$EXSHIM_PID"
wait_log "$T/exshim.log" 'generation 2 serving' 15 || fail "reload did not finish"
# generation 1 drains: its channels and connections are still counted, beside generation 2
scrape
expect 'exshim_generations' 2
# generation 2's two workers and the one of generation 1 that holds the channels (its idle
# sibling may already have exited)
w=$(value exshim_workers)
[ "$w" = 3 ] || [ "$w" = 4 ] || fail "exshim_workers during the drain: $w, want 3 or 4"
expect 'exshim_channels{kind="rpc_in"}' 1
expect 'exshim_channels{kind="rpc_out"}' 1
expect 'exshim_client_connections{listener="plain"}' 2
timeout 20 tail --pid="$RPCH_PID" -f /dev/null 2>/dev/null
wait "$RPCH_PID" || fail "the RPC over HTTP client failed: $(tail -n 5 "$T/rpch.log")"
wait_log "$T/exshim.log" 'generation 1: all workers ended' 15 || fail "generation 1 did not end"
c=$(curl -s -o /dev/null -w '%{http_code}' --max-time 10 "${XR[@]}" \
    "https://mail.contoso.test:$TLS_PORT/ews/exchange.asmx")
[ "$c" = 200 ] || fail "/ews after the reload: HTTP $c"
settle 'exshim_client_connections{listener="tls"}' 0
expect 'exshim_reloads_total{result="ok"}' 1
expect 'exshim_generations' 1
expect 'exshim_workers' 2
expect 'exshim_channels{kind="rpc_in"}' 0
expect 'exshim_channels{kind="rpc_out"}' 0
# RPC_OUT_DATA got its 200; RPC_IN_DATA never gets a response (status=0 in the access log)
expect 'exshim_requests_total{route="/rpc",code_class="2xx"}' 1
expect 'exshim_requests_total{route="/rpc",code_class="none"}' 1
expect 'exshim_requests_total{route="/ews",code_class="2xx"}' 8
expect 'exshim_requests_total{route="none",code_class="4xx"}' 3
expect 'exshim_auth_handshakes_total{route="/mapi",scheme="NTLM",outcome="bridged_ntlm_to_negotiate"}' 2
expect 'exshim_tls_handshakes_total{listener="tls",version="TLSv1.3"}' 8
expect 'exshim_backend_connect_failures_total{backend="dead",server="127.0.0.1:'"$DEAD_PORT"'"}' 1

# ---- a reload that fails -------------------------------------------------------------------
write_conf 'max_headers = 0;'
kill -HUP "$EXSHIM_PID"
wait_log "$T/exshim.log" 'reload failed, generation 2 keeps running' 15 || fail "broken reload not refused"
scrape
expect 'exshim_reloads_total{result="failed"}' 1
expect 'exshim_reloads_total{result="ok"}' 1
expect 'exshim_requests_total{route="/ews",code_class="2xx"}' 8

# ---- workers killed with channels open: their gauges go with them ---------------------------
bg rpch2 "$PY" -u "$LABPY/rpch.py" --port "$PLAIN_PORT" --auth none --pdus 1 --hold 30 --expect-fail
RPCH2_PID=$LAST_PID
settle 'exshim_channels{kind="rpc_out"}' 1
expect 'exshim_client_connections{listener="plain"}' 2
for p in $(pgrep -P "$EXSHIM_PID"); do kill -KILL "$p"; done
wait_log "$T/exshim.log" 'ended unexpectedly \(signal 9\)' 10 || fail "the master saw no worker die"
settle 'exshim_channels{kind="rpc_out"}' 0
expect 'exshim_channels{kind="rpc_in"}' 0
settle 'exshim_client_connections{listener="plain"}' 0
settle 'exshim_workers' 2
timeout 20 tail --pid="$RPCH2_PID" -f /dev/null 2>/dev/null
expect 'exshim_requests_total{route="/ews",code_class="2xx"}' 8

# ---- a stopping node tells its balancer: /healthz 503 while a channel drains ----------------
bg rpch3 "$PY" -u "$LABPY/rpch.py" --port "$PLAIN_PORT" --auth none --pdus 1 --hold 30 --expect-fail
settle 'exshim_channels{kind="rpc_out"}' 1
code=$(curl -s --max-time 5 -o "$T/healthz.txt" -w '%{http_code}' "http://127.0.0.1:$MPORT/healthz")
[ "$code" = 200 ] || fail "/healthz before the stop: $code"
kill -TERM "$EXSHIM_PID"
code=
for _ in $(seq 50); do
    code=$(curl -s --max-time 2 -o "$T/healthz.txt" -w '%{http_code}' "http://127.0.0.1:$MPORT/healthz")
    [ "$code" = 503 ] && break
    sleep 0.1
done
[ "$code" = 503 ] && [ "$(cat "$T/healthz.txt")" = draining ] ||
    fail "/healthz while draining: $code $(cat "$T/healthz.txt")"

ops_stop
pass "promtool accepts the scrape; counts, bytes, gauges and reload totals match; /healthz 503 while draining"
