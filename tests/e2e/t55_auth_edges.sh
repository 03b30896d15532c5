#!/usr/bin/env bash
# Authorization edges (issue "Edge hardening", defects 7 and 9). Routes: /ews pass-through (no
# offer, no bridge), /mapi bridge (offer NTLM, ntlm-to-negotiate), default pass-through.
# Asserts:
#  - pass-through: "Authorization: NTLM !!!!" (unparseable) is forwarded unchanged and the
#    origin answers (200, not a 400 from exshim);
#  - two Authorization headers (different schemes, the same twice, different name case, on the
#    bridge route; also right after a good request on the same connection): 400 and a close,
#    log "several Authorization headers"; the origin received exactly the bytes of the good
#    requests sent after them and nothing of these;
#  - bridge: "Authorization: NTLM <base64 NTLM NEGOTIATE>" between X-Before and X-After reaches
#    the origin as "Authorization: Negotiate <same base64>" on the same line position;
#  - backend closes its keep-alive connection ~200 ms after a 200 (origin /close-after):
#    after a request with "Authorization: NTLM <token>" (pass-through) exshim closes the client
#    connection within 2 s of the backend's close and logs "closing the client connection so
#    it authenticates again" (plain and TLS; also Negotiate, and NTLM on the bridge route);
#    without Authorization, and with Basic (which authenticates the request, not the
#    connection), the client connection stays open and its next request is answered on a new
#    backend connection.
. "$(dirname "$0")/lib.sh"
. "$E2E_DIR/edge.sh"
[ -x "$EXSHIM" ] || skip "$EXSHIM not built"
need openssl
start_origin
cat >"$T/exshim.conf" <<EOC
workers = 1;
log_level = "info";
access_log = true;
$(edge_listeners)
backends = ( { name = "origin"; servers = [ "127.0.0.1:$ORIGIN_PORT" ]; } );
routes = (
  { path = "/ews"; backend = "origin"; },
  { path = "/mapi"; backend = "origin"; offer = [ "NTLM" ]; bridge = "ntlm-to-negotiate"; },
  { path = "default"; backend = "origin"; }
);
EOC
start_exshim_as exshim "$T/exshim.conf"
PLAIN=$(port_of plain)
TLS=$(port_of tls)

rc=0
"$PY" "$EC" table --set auth2 --port "$PLAIN" --good-path /ews/good >"$T/plain.out" 2>&1 || rc=1
cat "$T/plain.out"
"$PY" "$EC" table --set auth2 --port "$TLS" --tls --good-path /ews/good >"$T/tls.out" 2>&1 || rc=1
cat "$T/tls.out"
"$PY" "$EC" table --set auth2 --warm-table --port "$PLAIN" --good-path /ews/good >"$T/warm.out" 2>&1 || rc=1
cat "$T/warm.out"
[ "$rc" -eq 0 ] || fail "two Authorization headers were not refused with 400 and a close"
check_accounting "$T/plain.out" "$T/tls.out" "$T/warm.out"
n400=$(cat "$T/plain.out" "$T/tls.out" "$T/warm.out" | grep -c '^ok   refuse .* status=400 ')
[ "$(exshim_count 'rejected request: several Authorization headers')" -eq "$n400" ] || fail "want $n400 'several Authorization headers' log lines"

"$PY" "$EC" auth-pass --port "$PLAIN" || fail "pass-through route refused or changed an unparseable NTLM token"
"$PY" "$EC" auth-bridge --port "$PLAIN" || fail "bridge did not translate NTLM to Negotiate in place"

"$PY" "$EC" authclose --port "$PLAIN" --auth --origin-log "$ORIGIN_LOG" || fail "authenticated client not closed after the backend closed (plain)"
"$PY" "$EC" authclose --port "$TLS" --tls --auth --origin-log "$ORIGIN_LOG" || fail "authenticated client not closed after the backend closed (TLS)"
"$PY" "$EC" authclose --port "$PLAIN" --auth --scheme Negotiate --origin-log "$ORIGIN_LOG" || fail "Negotiate-authenticated client not closed after the backend closed"
"$PY" "$EC" authclose --port "$PLAIN" --auth --path /mapi --origin-log "$ORIGIN_LOG" || fail "bridged NTLM client not closed after the backend closed"
n=$(exshim_count 'closed an authenticated connection; closing the client connection so it authenticates again')
[ "$n" -eq 4 ] || fail "want 4 'closing the client connection so it authenticates again' lines, got $n"
"$PY" "$EC" authclose --port "$PLAIN" --origin-log "$ORIGIN_LOG" || fail "anonymous client connection did not survive the backend's close"
"$PY" "$EC" authclose --port "$PLAIN" --scheme Basic --origin-log "$ORIGIN_LOG" || fail "Basic-authenticated client connection did not survive the backend's close"
[ "$(exshim_count 'closing the client connection so it authenticates again')" -eq 4 ] || fail "an anonymous or Basic connection was closed as authenticated"
grep -Eq 'TlRMTVNT|!!!!' "$EXSHIM_LOG" && fail "a token reached exshim's log"
pass "unparseable token passes, duplicate Authorization refused, bridge in place, authenticated backend close mirrored"
