#!/usr/bin/env bash
# Chunked request bodies that are broken or smuggle a second request, each sent whole in one
# write (issue "Edge hardening", defects 1 and 4). Asserts:
#  - each of these gets 400 and a close, over the plain and the TLS listener, and on a plain
#    connection right after a good request (its backend connection open and pinned):
#    "40;\n" (bare LF ending a chunk extension, hiding a second request with a forged
#    X-Forwarded-For), "5\rX", "5 garbage", a bare-LF trailer line, "0\r\n\n", trailers
#    carrying Content-Length / Transfer-Encoding / Host, a bad CRLF after chunk data, a bad
#    second chunk, a missing final CRLF (the next request follows "0\r\n"), a bare LF after
#    chunk data, a bare-LF chunk-size line, and more size / extension / trailer defects
#    (0x5, -5, 17 digits, overflow, tab, ";", "a=", bare CR and open quote in an extension,
#    data longer or shorter than the size, Authorization / X-Forwarded-For / obs-fold / NUL /
#    "X-A :" trailers, a bad CRLF after "Expect: 100-continue"): 30 cases;
#  - the origin received ZERO bytes of any of them: after each refusal a good request on a new
#    connection; the origin's byte count equals exactly the bytes of those good requests, and
#    the origin's request count = exshim's status=200 access-log lines = the good requests
#    (no desync: the hidden request never became a request);
#  - valid chunked bodies (extensions, BWS, leading zeros, 16 digits, trailers, last-chunk
#    extension) arrive intact; a chunked POST and a GET with a forged X-Forwarded-For in one
#    write are two requests for both exshim and the origin, the forged header replaced; a bad
#    chunk arriving 0.3 s after the head and a valid chunk went out gets 400, and the backend
#    connection is closed holding exactly that head and chunk;
#  - a bad second chunk, a bad CRLF after chunk data and a missing final CRLF behind a
#    30000-byte first chunk, sent whole: 400 and a close, and the origin again saw zero bytes
#    (plain, then TLS, where the request spans two TLS records);
#  - Debian's nginx as the backend: the "40;\n" smuggle sent straight to nginx makes it log TWO
#    requests (the hidden one with X-Forwarded-For 6.6.6.6): the attack is real there; through
#    exshim the same bytes get 400 and nginx logs ZERO (so does the whole table above sent
#    through exshim to nginx); a good request through exshim still reaches nginx (one line,
#    X-Forwarded-For 127.0.0.1).
. "$(dirname "$0")/lib.sh"
. "$E2E_DIR/edge.sh"
[ -x "$EXSHIM" ] || skip "$EXSHIM not built"
need openssl nginx
start_origin
start_nginx nginx
cat >"$T/origin.conf" <<EOC
workers = 1;
log_level = "info";
access_log = true;
$(edge_listeners)
backends = ( { name = "origin"; servers = [ "127.0.0.1:$ORIGIN_PORT" ]; } );
routes = ( { path = "/owa"; backend = "origin"; }, { path = "default"; backend = "origin"; } );
EOC
start_exshim_as exshim "$T/origin.conf"
PLAIN=$(port_of plain)
TLS=$(port_of tls)

rc=0
"$PY" "$EC" table --set chunked --port "$PLAIN" >"$T/plain.out" 2>&1 || rc=1
cat "$T/plain.out"
"$PY" "$EC" table --set chunked --port "$TLS" --tls >"$T/tls.out" 2>&1 || rc=1
cat "$T/tls.out"
"$PY" "$EC" table --set chunked --warm-table --port "$PLAIN" >"$T/warm.out" 2>&1 || rc=1
cat "$T/warm.out"
[ "$rc" -eq 0 ] || fail "a malformed chunked body was not refused with 400 and a close (see above)"
check_accounting "$T/plain.out" "$T/tls.out" "$T/warm.out"
ncases=$(grep -c '^ok   refuse ' "$T/plain.out")
n=$(exshim_count 'rejected request: bad chunked framing in request body')
[ "$n" -eq $((3 * ncases)) ] || fail "exshim logged $n chunked-framing refusals, want $((3 * ncases)) ($ncases cases x (plain, TLS, plain after a good request))"

# valid chunked bodies still pass; a pipelined pair is two requests on both sides; a bad
# chunk that arrives after the head went out closes the backend connection before it
"$PY" "$EC" chunked-good --port "$PLAIN" || fail "a valid chunked body was refused or changed"
"$PY" "$EC" chunked-good --port "$TLS" --tls || fail "a valid chunked body was refused or changed (TLS)"
before_o=$(origin_count '^request peer=')
before_x=$(exshim_count 'access sid=.* status=200 ')
"$PY" "$EC" pipeline --port "$PLAIN" || fail "pipelined chunked POST + GET"
sleep 0.2
[ $(( $(origin_count '^request peer=') - before_o )) -eq 2 ] && [ $(( $(exshim_count 'access sid=.* status=200 ') - before_x )) -eq 2 ] ||
    fail "pipelined pair: origin and exshim do not both count 2 requests"
"$PY" "$EC" late-bad --port "$PLAIN" --origin-log "$ORIGIN_LOG" || fail "a late bad chunk reached the origin or was not refused"

# ---- nginx: the attack is real against it ------------------------------------------------
"$PY" "$EC" smuggle --port "$NGINX_PORT" --path /owa/c --expect 2 || fail "nginx did not answer the smuggle twice"
sleep 0.3
[ "$(nginx_count '^REQ ')" -eq 2 ] || { cat "$NGINX_LOG"; fail "nginx logged $(nginx_count '^REQ ') requests for the direct smuggle, want 2"; }
[ "$(nginx_count '^REQ GET /owa/hidden HTTP/1.1 xff=6\.6\.6\.6 ')" -eq 1 ] ||
    { cat "$NGINX_LOG"; fail "nginx did not log the hidden request with the forged X-Forwarded-For"; }
log "direct to nginx: 2 requests logged, the hidden one with X-Forwarded-For 6.6.6.6"

cat >"$T/nginx.conf" <<EOC
workers = 1;
log_level = "info";
access_log = true;
$(edge_listeners)
backends = ( { name = "nginx"; servers = [ "127.0.0.1:$NGINX_PORT" ]; } );
routes = ( { path = "default"; backend = "nginx"; } );
EOC
start_exshim_as exshim_nginx "$T/nginx.conf"
before=$(nginx_count '^REQ ')
"$PY" "$EC" smuggle --port "$(port_of plain)" --path /owa/c --expect 1 --want-status 400 ||
    fail "the smuggle through exshim (plain) was not answered with one 400"
"$PY" "$EC" smuggle --port "$(port_of tls)" --tls --path /owa/c --expect 1 --want-status 400 ||
    fail "the smuggle through exshim (TLS) was not answered with one 400"
sleep 0.5
[ "$(nginx_count '^REQ ')" -eq "$before" ] ||
    { cat "$NGINX_LOG"; fail "through exshim nginx logged $(( $(nginx_count '^REQ ') - before )) requests, want 0"; }
# the whole table through exshim to nginx: nginx logs none of it
"$PY" "$EC" table --set chunked --no-good --port "$(port_of plain)" >"$T/nginxtable.out" 2>&1 ||
    { cat "$T/nginxtable.out"; fail "a broken chunked body was not refused in front of nginx"; }
sleep 0.3
[ "$(nginx_count '^REQ ')" -eq "$before" ] ||
    { cat "$NGINX_LOG"; fail "nginx logged a request from the refused table"; }
log "$(grep -c '^ok   refuse' "$T/nginxtable.out") broken chunked bodies through exshim: nginx logged none"
curl -s --max-time 5 -o /dev/null -w '%{http_code}' "http://127.0.0.1:$(port_of plain)/owa/good" | grep -qx 200 ||
    fail "a good request through exshim to nginx failed"
sleep 0.3
[ "$(nginx_count '^REQ GET /owa/good HTTP/1.1 xff=127\.0\.0\.1 status=200')" -eq 1 ] ||
    { cat "$NGINX_LOG"; fail "nginx did not log the good request"; }
# the same defects behind a 30000-byte first chunk (one write, < 64 KiB, but two TLS records)
EXSHIM_LOG=$T/exshim.log # back to the origin instance (PLAIN, TLS)
accounting_mark
stop_big=0
"$PY" "$EC" table --set chunked-big --port "$PLAIN" >"$T/bigplain.out" 2>&1 || stop_big=1
cat "$T/bigplain.out"
[ "$stop_big" -eq 0 ] || fail "a 30 KB broken chunked body was not refused (plain)"
check_accounting "$T/bigplain.out"
accounting_mark
log "30 KB broken chunked bodies over TLS (two records, one write):"
"$PY" "$EC" table --set chunked-big --port "$TLS" --tls >"$T/bigtls.out" 2>&1 || stop_big=1
cat "$T/bigtls.out"
[ "$stop_big" -eq 0 ] || fail "a 30 KB broken chunked body was not refused (TLS)"
check_accounting "$T/bigtls.out"
pass "$ncases broken chunked bodies x 2 listeners: 400 + close, origin saw 0 bytes of them; nginx: smuggle real directly (2 requests), 0 through exshim"
