#!/usr/bin/env bash
# Host, version and head-shape rules (issue "Edge hardening", defects 5 and 6). Every route has
# header_timeout 10s; max_headers = 2000. Asserts:
#  - HTTP/1.1 without Host, two Host headers (same and different; also in HTTP/1.0), Host with
#    a space, an empty Host, Host with userinfo, port 0, port 99999, an empty port, a comma
#    list, a bad IPv4 address, HTTP/1.0 with Transfer-Encoding, HTTP/1.1 with
#    Transfer-Encoding: identity, "http/1.1", no version: 400 and a close; HTTP/2.0: 505 and a
#    close; plain and TLS, and plain right after a good request on the same connection;
#  - valid forms pass: HTTP/1.0 without Host, Host with a port, [::1]:8443, 127.0.0.1, an
#    underscore, a lower/upper-case header name;
#  - a bare LF before the request line: 400 and a close in under 1 s (header_timeout is 10 s);
#    also where a keep-alive connection's second request begins;
#  - byte accounting: the origin received exactly the bytes of the good requests sent after
#    each refusal, nothing of the refused ones; origin requests = exshim forwarded lines;
#  - headers named as the 17th and the 30th token of Connection (and the 5th) are not
#    forwarded, an unnamed one is (origin echo of the raw head); Content-Length,
#    Transfer-Encoding and Host named in Connection are still forwarded, bodies intact;
#  - 1500 and 2000 header lines are forwarded (200, first and last line at the origin); 2001
#    get 431 and the origin sees nothing of them.
. "$(dirname "$0")/lib.sh"
. "$E2E_DIR/edge.sh"
[ -x "$EXSHIM" ] || skip "$EXSHIM not built"
need openssl
start_origin
cat >"$T/exshim.conf" <<EOC
workers = 1;
log_level = "info";
access_log = true;
max_headers = 2000;
$(edge_listeners)
backends = ( { name = "origin"; servers = [ "127.0.0.1:$ORIGIN_PORT" ]; } );
routes = (
  { path = "/owa"; backend = "origin"; header_timeout = "10s"; },
  { path = "default"; backend = "origin"; header_timeout = "10s"; }
);
EOC
start_exshim_as exshim "$T/exshim.conf"
PLAIN=$(port_of plain)
TLS=$(port_of tls)
rc=0
"$PY" "$EC" table --set hostver --set misc --port "$PLAIN" --max-seconds 1 >"$T/plain.out" 2>&1 || rc=1
cat "$T/plain.out"
"$PY" "$EC" table --set hostver --set misc --port "$TLS" --tls --max-seconds 1 >"$T/tls.out" 2>&1 || rc=1
cat "$T/tls.out"
"$PY" "$EC" table --set hostver --set misc --warm-table --port "$PLAIN" --max-seconds 1 >"$T/warm.out" 2>&1 || rc=1
cat "$T/warm.out"
[ "$rc" -eq 0 ] || fail "a bad Host/version head was not refused with 400 and a close (see above)"
check_accounting "$T/plain.out" "$T/tls.out" "$T/warm.out"
"$PY" "$EC" bare-lf --port "$PLAIN" --max 1.0 || fail "bare LF before the request line not refused at once"
"$PY" "$EC" bare-lf --port "$TLS" --tls --max 1.0 || fail "bare LF before the request line (TLS) not refused at once"
"$PY" "$EC" bare-lf --port "$PLAIN" --warm --max 1.0 || fail "bare LF before a keep-alive connection's second request line not refused at once"
for why in 'HTTP/1.1 request without Host' 'several Host headers' 'invalid Host' \
    'Transfer-Encoding in an HTTP/1.0 message' 'bare LF before the request line'; do
    [ "$(exshim_count "rejected request: $why")" -ge 3 ] || fail "no 'rejected request: $why' log line for each run"
done

"$PY" "$EC" hostver-good --port "$PLAIN" || fail "a valid Host form was refused"
"$PY" "$EC" conn-tokens --port "$PLAIN" || fail "headers named in Connection were forwarded (or framing headers dropped)"
"$PY" "$EC" maxheaders --port "$PLAIN" --n 1500 --want 200 || fail "1500 header lines not forwarded"
"$PY" "$EC" maxheaders --port "$PLAIN" --n 2000 --want 200 || fail "2000 header lines (= max_headers) not forwarded"
before=$(origin_count '^request peer=')
"$PY" "$EC" maxheaders --port "$PLAIN" --n 2001 --want 431 || fail "2001 header lines not refused with 431"
sleep 0.3
[ "$(origin_count '^request peer=')" -eq "$before" ] || fail "the 2001-line head reached the origin"
[ "$(exshim_count 'access sid=.* status=431 .*backend=- ')" -eq 1 ] && [ "$(exshim_count 'rejected request: too many header lines')" -eq 1 ] || fail "no access line with 431 and no 'too many header lines' log line"
pass "Host/version rules 400 + close (origin saw none), bare LF 400 at once, Connection tokens, max_headers 2000"
