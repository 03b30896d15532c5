#!/usr/bin/env bash
# Half-close and broken responses (issue "Edge hardening", defects 8 and 10). Asserts:
#  - a POST with a 3000-byte Content-Length body followed by shutdown(SHUT_WR) gets its full
#    response (200, the origin saw all 3000 body bytes), then the connection closes: plain
#    listener, TLS listener (bare TCP FIN), TLS listener with close_notify before the FIN;
#    the same with a chunked body (plain, TLS); and with a response that ends 0.3 s after the
#    FIN (/chunked-delay), so exshim has certainly seen the FIN first (plain, TLS bare FIN,
#    TLS close_notify + FIN); and the same for a GET without a body (plain, plain slow, TLS
#    bare FIN, TLS close_notify + FIN, TLS slow);
#  - two GETs sent whole in one write (the first answered over 0.5 s by /chunked-delay), then
#    shutdown(SHUT_WR): both are answered, then the connection closes; on a fresh connection
#    and on one whose backend connection is already open (a request before);
#  - origin answers chunked with an invalid chunk size, with LF-only chunk lines, with "8\rX"
#    framing: the client gets a 502 status line (not an empty reply), none of the "LEAKED-"
#    bytes, and a close; exshim logs "bad chunked framing in response" for each;
#  - head-level faults get a 502 too: Content-Length with Transfer-Encoding, two
#    Content-Length, LF-only head lines, and a Content-Length trailer after a valid chunk;
#    a valid chunked response with "8;ext=1" and an X-Trailer is relayed byte for byte;
#  - a response whose first chunk is valid and whose second chunk (sent 0.5 s later) is bad:
#    the client receives the head and the first chunk, never the bad bytes, and the connection
#    closes; the log names the reason ("bad chunked framing in response (...); closing the
#    client connection"); plain and TLS.
# The half-close steps all run even when one fails (check_soft); the failures are named at the
# end.
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
routes = ( { path = "default"; backend = "origin"; } );
EOC
start_exshim_as exshim "$T/exshim.conf"
PLAIN=$(port_of plain)
TLS=$(port_of tls)

# half-close: every variant runs; failures are collected (check_soft) and reported at the end
hc() { # DESCRIPTION ARGS...: one half-close case
    local what=$1
    shift
    "$PY" "$EC" halfclose "$@" || check_soft "half-close: $what did not get its full response and a close"
}
hc "plain client" --port "$PLAIN"
hc "plain client, chunked body" --port "$PLAIN" --chunked
hc "plain client, slow response" --port "$PLAIN" --slow
hc "TLS client (bare FIN)" --port "$TLS" --tls
hc "TLS client (close_notify + FIN)" --port "$TLS" --tls --close-notify
hc "TLS client, chunked body" --port "$TLS" --tls --chunked
hc "TLS client, slow response (bare FIN)" --port "$TLS" --tls --slow
hc "TLS client, slow response (close_notify + FIN)" --port "$TLS" --tls --slow --close-notify
hc "plain client, GET" --port "$PLAIN" --get
hc "plain client, GET, slow response" --port "$PLAIN" --get --slow
hc "TLS client, GET (bare FIN)" --port "$TLS" --tls --get
hc "TLS client, GET (close_notify + FIN)" --port "$TLS" --tls --get --close-notify
hc "TLS client, GET, slow response" --port "$TLS" --tls --get --slow
"$PY" "$EC" halfclose-pipeline --port "$PLAIN" || check_soft "half-close after two pipelined requests (fresh connection): one was not answered"
"$PY" "$EC" halfclose-pipeline --port "$PLAIN" --warm || check_soft "half-close after two pipelined requests (backend already connected): one was not answered"

for k in size lf crx; do
    "$PY" "$EC" badresp --port "$PLAIN" --kind "$k" || fail "broken response ($k) not turned into a 502"
done
"$PY" "$EC" badresp --port "$TLS" --tls --kind size || fail "broken response (size, TLS) not turned into a 502"
n=$(exshim_count 'backend origin: bad chunked framing in response \(')
[ "$n" -ge 4 ] || fail "want >= 4 'bad chunked framing in response' lines, got $n"
for k in cl-te two-cl head-lf trailer-cl; do
    "$PY" "$EC" badresp --port "$PLAIN" --kind "$k" || fail "invalid response ($k) not turned into a 502"
done
[ "$(exshim_count 'backend origin: invalid response: ')" -eq 3 ] || fail "want 3 'invalid response' log lines (cl-te, two-cl, head-lf)"
"$PY" "$EC" badresp --port "$PLAIN" --kind good-ext || fail "a valid chunked response with an extension and a trailer was not relayed"
"$PY" "$EC" badresp --port "$PLAIN" --kind second --delay 0.5 --origin-log "$ORIGIN_LOG" || fail "bad second chunk relayed or connection kept"
"$PY" "$EC" badresp --port "$TLS" --tls --kind second --delay 0.5 --origin-log "$ORIGIN_LOG" || fail "bad second chunk relayed or connection kept (TLS)"
n=$(exshim_count 'backend origin: bad chunked framing in response \(.*\); closing the client connection')
[ "$n" -eq 2 ] || fail "want 2 mid-body 'bad chunked framing ... closing the client connection' lines, got $n"
finish_soft "half-closed clients get their full response; broken chunked responses: 502 or a cut after the good chunk, bad bytes never relayed"
