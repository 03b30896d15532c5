#!/usr/bin/env bash
# Head and handshake deadlines (issue "Edge hardening", defect 3). header_timeout 2s on every
# route, idle_timeout 3s, handshake_timeout 1s. Asserts:
#  - 200 connections each trickling one byte of a never-ending head every 0.5 s are ALL closed
#    within header_timeout + 2 s of their connect (none before 1.5 s), and whatever could be
#    read is a 408 (at least one 408 read); exshim logs "request head not complete after
#    2000 ms" for them;
#  - a keep-alive connection idle after a response is governed by idle_timeout: still open at
#    2.5 s (past header_timeout), closed by 5 s, with no bytes sent;
#  - on a keep-alive connection, a second head that trickles in (one byte every 0.3 s, after
#    1 s idle) gets a 408 and a close 1.7..3 s after its first byte;
#  - TLS: a client that connects and never sends a ClientHello, and one that sends half a
#    ClientHello, and one that trickles its ClientHello a byte every 0.1 s, are closed after
#    handshake_timeout (0.7..1.9 s; log "TLS handshake not
#    complete after 1000 ms"); a client that completes the handshake and sends nothing is
#    closed by the head deadline instead (1.5..3.5 s), not the handshake one.
. "$(dirname "$0")/lib.sh"
. "$E2E_DIR/edge.sh"
[ -x "$EXSHIM" ] || skip "$EXSHIM not built"
need openssl
start_origin
cat >"$T/exshim.conf" <<EOC
workers = 1;
log_level = "info";
access_log = true;
handshake_timeout = "1s";
$(edge_listeners)
backends = ( { name = "origin"; servers = [ "127.0.0.1:$ORIGIN_PORT" ]; } );
routes = (
  { path = "/owa"; backend = "origin"; header_timeout = "2s"; idle_timeout = "3s"; },
  { path = "default"; backend = "origin"; header_timeout = "2s"; idle_timeout = "3s"; }
);
EOC
start_exshim_as exshim "$T/exshim.conf"
PLAIN=$(port_of plain)
TLS=$(port_of tls)

"$PY" "$EC" trickle --port "$PLAIN" --n 200 --interval 0.5 --min 1.5 --max 4.0 ||
    fail "trickling heads were not all closed by header_timeout + 2 s"
n=$(exshim_count 'request head not complete after 2000 ms, closing')
[ "$n" -ge 200 ] || fail "exshim logged $n head-deadline closes, want >= 200"
[ "$(origin_count '^accept peer=')" -eq 0 ] || fail "a trickled head reached the origin"

"$PY" "$EC" idle --port "$PLAIN" --open-at 2.5 --min 2.5 --max 5 || fail "idle keep-alive connection not governed by idle_timeout"
"$PY" "$EC" second-head --port "$PLAIN" --open-at 1.0 --interval 0.3 --min 1.7 --max 3.0 ||
    fail "a trickled second head on a keep-alive connection was not cut at header_timeout"

"$PY" "$EC" tls-stall --port "$TLS" --mode none --min 0.7 --max 1.9 || fail "TLS client without ClientHello not closed at handshake_timeout"
"$PY" "$EC" tls-stall --port "$TLS" --mode half --min 0.7 --max 1.9 || fail "TLS client with half a ClientHello not closed at handshake_timeout"
"$PY" "$EC" tls-stall --port "$TLS" --mode trickle --min 0.7 --max 1.9 || fail "TLS client trickling its ClientHello not closed at handshake_timeout"
n=$(exshim_count 'TLS handshake not complete after 1000 ms, closing')
[ "$n" -eq 3 ] || fail "exshim logged $n handshake-deadline closes, want 3"
"$PY" "$EC" tls-stall --port "$TLS" --mode "done" --min 1.5 --max 3.5 || fail "TLS client with a finished handshake and no request"
pass "200 trickling heads closed by the head deadline; idle_timeout between requests; TLS handshake deadline"
