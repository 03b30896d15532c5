#!/usr/bin/env bash
# TLS termination to a plain-HTTP backend: GET and POST through exshim with curl, keep-alive
# reuse (two URLs in one curl run = one backend connection carrying both requests),
# Expect: 100-continue, and an HTTP/1.0 request.
. "$(dirname "$0")/lib.sh"
start_core
U=https://127.0.0.1:$TLS_PORT

# GET + GET on one client connection: both answered, and the origin saw ONE connection with
# both requests on it (the pinned backend connection is reused for the next request).
out=$(curl -sk --max-time 10 -w 'STATUS=%{http_code} CONNECTS=%{num_connects}\n' "$U/echo/one" "$U/echo/two") ||
    fail "curl GET through TLS failed"
[ "$(grep -c 'STATUS=200' <<<"$out")" -eq 2 ] || fail "GET: want two 200s, got: $(grep STATUS <<<"$out")"
grep -q '^GET /echo/one HTTP/1.1' <<<"$out" || fail "origin did not echo GET /echo/one"
grep -q '^GET /echo/two HTTP/1.1' <<<"$out" || fail "origin did not echo GET /echo/two"
[ "$(grep -c 'CONNECTS=1' <<<"$out")" -eq 1 ] || fail "curl did not reuse its connection to exshim"
wait_log "$ORIGIN_LOG" '^close peer=' 5 || fail "backend connection not closed after the client left"
[ "$(origin_count '^accept peer=')" -eq 1 ] || fail "origin accepted $(origin_count '^accept peer=') connections for one keep-alive client, want 1"
peer=$(awk '/^accept peer=/ { print $2; exit }' "$ORIGIN_LOG")
[ "$(origin_count "^request $peer method=GET path=/echo/(one|two) ")" -eq 2 ] ||
    fail "the two GETs did not travel on the one backend connection ($peer)"
grep -Eq "^close $peer bytes_in=[0-9]+ requests=2 " "$ORIGIN_LOG" || fail "backend connection did not carry exactly 2 requests"
log "GET x2: one client connection, one backend connection, two requests"

# POST 100 KiB of binary data: the origin reports the body length and sha256.
head -c 102400 /dev/urandom >"$T/post.bin"
want=$(sha256sum "$T/post.bin" | cut -d' ' -f1)
out=$(curl -sk --max-time 10 -H 'Content-Type: application/octet-stream' --data-binary @"$T/post.bin" "$U/echo/post") ||
    fail "curl POST failed"
grep -q '^body-length: 102400$' <<<"$out" || fail "POST body length wrong: $(head -3 <<<"$out")"
grep -q "^body-sha256: $want\$" <<<"$out" || fail "POST body corrupted"
grep -q '^POST /echo/post HTTP/1.1' <<<"$out" || fail "POST request line not forwarded"
log "POST 100 KiB: body intact"

# Expect: 100-continue with a 4 KiB body: curl must see the interim 100 and must not sit out
# its 1 s expect timeout (which it does when the 100 is swallowed).
head -c 4096 /dev/urandom >"$T/post4k.bin"
want=$(sha256sum "$T/post4k.bin" | cut -d' ' -f1)
out=$(curl -sk -v --max-time 10 --expect100-timeout 3 -H 'Expect: 100-continue' \
    --data-binary @"$T/post4k.bin" -w 'TIME=%{time_total}\n' "$U/echo/expect" 2>&1) || fail "curl Expect POST failed"
grep -q '^< HTTP/1.1 100' <<<"$out" || fail "client never saw 100 Continue"
grep -q '^< HTTP/1.1 200' <<<"$out" || fail "Expect POST did not get 200"
grep -q "^body-sha256: $want\$" <<<"$out" || fail "Expect POST body corrupted"
t=$(sed -n 's/^TIME=//p' <<<"$out")
awk -v t="$t" 'BEGIN { exit !(t < 2.5) }' || fail "Expect POST took ${t}s (100 Continue held back?)"
log "Expect: 100-continue: 100 relayed, 200 in ${t}s"

# HTTP/1.0 request (no keep-alive): answered, and the head reaches the origin.
out=$(curl -sk --max-time 10 --http1.0 -i "$U/echo/ten") || fail "curl --http1.0 failed"
grep -Eq '^HTTP/1\.[01] 200' <<<"$out" || fail "HTTP/1.0 request: no 200: $(head -1 <<<"$out")"
grep -Eq '^GET /echo/ten HTTP/1\.[01]' <<<"$out" || fail "HTTP/1.0 request not forwarded"
log "HTTP/1.0 GET answered"

pass "TLS relay GET/POST/keep-alive/Expect/HTTP1.0"
