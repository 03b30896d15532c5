#!/usr/bin/env bash
# Routing by the normalised request-target (issue "Edge hardening", defect 2). Routes /owa,
# /mapi, /rpc (each its own backend name, all on one origin) and NO default route. Asserts:
#  strict (default) target_policy; every refusal on the plain and TLS listeners, and on a plain
#  connection right after a good request (pinned backend connection open):
#  - /ecp/default.aspx: 404 (no route), origin saw nothing;
#  - /owa/../ecp/default.aspx, /owa/%2e%2e/ecp/, /owa/..%5cecp/, /owa//x, /owa/%2F,
#    /mapi/../rpc/: 400 and a close, origin saw nothing;
#  - absolute-form http://h?/mapi/x (Host: h) does not take the /mapi route: 404;
#    absolute-form naming another host (or port) than Host: 400; absolute-form ftp://, with
#    userinfo, or without a Host header: 400;
#  - more ambiguous targets, 400 and a close: %00, overlong UTF-8 %C0%AE, double-encoded
#    %252e, a fragment, a literal backslash, "/./", "/.." at the root, %zz, a truncated %2,
#    "GET *"; "OPTIONS *" has no route: 404;
#  - byte accounting: the origin received exactly the bytes of the good requests sent after
#    each refusal; its request count equals exshim's forwarded access lines; every refusal's
#    access line says backend=- (none), also on the warm connections;
#  - /mapi/x and /RPC/RpcProxy.dll?srv:6001 are forwarded byte for byte; absolute-form with the
#    same host (also https://host:443, upper-case host) reaches the origin in origin-form;
#    /owa/%7euser/%3a arrives canonical as /owa/~user/%3A; after a 404 the connection stays
#    and serves the next request;
#  target_policy = "normalize":
#  - /mapi/../rpc/x is routed to /rpc (access log backend=rpc_be, path=/rpc/x) and the origin
#    receives the request line "GET /rpc/x HTTP/1.1"; /owa/./a/%2e%2e/b?q=%2e arrives as
#    /owa/b?q=%2e (query untouched);
#  - /owa/../ecp/default.aspx: 404 (no /ecp route); /owa/%2F and /owa/../../x still 400.
. "$(dirname "$0")/lib.sh"
. "$E2E_DIR/edge.sh"
[ -x "$EXSHIM" ] || skip "$EXSHIM not built"
need openssl
start_origin
write_conf() { # FILE EXTRA
    cat >"$1" <<EOC
workers = 1;
log_level = "info";
access_log = true;
$2
$(edge_listeners)
backends = (
  { name = "owa_be"; servers = [ "127.0.0.1:$ORIGIN_PORT" ]; },
  { name = "mapi_be"; servers = [ "127.0.0.1:$ORIGIN_PORT" ]; },
  { name = "rpc_be"; servers = [ "127.0.0.1:$ORIGIN_PORT" ]; }
);
routes = (
  { path = "/owa"; backend = "owa_be"; },
  { path = "/mapi"; backend = "mapi_be"; },
  { path = "/rpc"; backend = "rpc_be"; }
);
EOC
}
write_conf "$T/strict.conf" ""
start_exshim_as strict "$T/strict.conf"
rc=0
"$PY" "$EC" table --set target --port "$(port_of plain)" >"$T/plain.out" 2>&1 || rc=1
cat "$T/plain.out"
"$PY" "$EC" table --set target --port "$(port_of tls)" --tls >"$T/tls.out" 2>&1 || rc=1
cat "$T/tls.out"
"$PY" "$EC" table --set target --warm-table --port "$(port_of plain)" >"$T/warm.out" 2>&1 || rc=1
cat "$T/warm.out"
[ "$rc" -eq 0 ] || fail "a request target was not refused as expected (see above)"
check_accounting "$T/plain.out" "$T/tls.out" "$T/warm.out"
n400=$(cat "$T/plain.out" "$T/tls.out" "$T/warm.out" | grep -c '^ok   refuse .* status=400 ')
n=$(exshim_count 'rejected request: ')
[ "$n" -eq "$n400" ] || fail "exshim logged $n 'rejected request' lines for $n400 refusals with 400"
n=$(exshim_count 'rejected request: request target refused: (dot-segment|encoded dot|encoded backslash|empty segment|encoded slash)')
[ "$n" -ge 21 ] || fail "exshim logged $n dot/slash target refusals, want >= 21 (7 x 3)"
n=$(exshim_count 'rejected request: absolute-form target names another host than Host')
[ "$n" -eq 6 ] || fail "exshim logged $n absolute-form host/port mismatches, want 6"
n=$(exshim_count 'access sid=.* path=/\?/mapi/x status=404 .*backend=- ')
[ "$n" -eq 3 ] || fail "absolute-form http://h?/mapi/x: $n access lines 'path=/?/mapi/x status=404 backend=-', want 3 (plain, TLS, warm)"
# A request refused before routing names no backend, also right after a good request whose
# pinned backend connection is still open (the warm table): not the one before it.
nloc=$(exshim_count 'access sid=.* status=(400|404) ')
nnone=$(exshim_count 'access sid=.* status=(400|404) .*backend=- ')
[ "$nloc" -ge 60 ] && [ "$nnone" -eq "$nloc" ] || {
    grep -E 'access sid=.* status=(400|404) ' "$EXSHIM_LOG" | grep -v 'backend=- ' | head -3
    fail "$nnone of $nloc access lines of refusals (400/404) say backend=-"
}
"$PY" "$EC" target --policy strict --port "$(port_of plain)" || fail "strict positive routing cases"
stop_exshim

write_conf "$T/normalize.conf" 'target_policy = "normalize";'
start_exshim_as normalize "$T/normalize.conf"
"$PY" "$EC" target --policy normalize --port "$(port_of plain)" || fail "normalize policy cases"
grep -Eq 'access sid=.* method=GET path=/rpc/x status=200 .*backend=rpc_be/' "$EXSHIM_LOG" ||
    { grep access "$EXSHIM_LOG"; fail "/mapi/../rpc/x was not routed to the /rpc route (backend rpc_be)"; }
grep -q 'request peer=[0-9]* method=GET path=/rpc/x version=HTTP/1.1' "$ORIGIN_LOG" ||
    fail "the origin did not receive GET /rpc/x"
grep -Eq 'access sid=.* path=/ecp/default.aspx status=404 .*backend=-' "$EXSHIM_LOG" ||
    fail "normalize: /owa/../ecp/default.aspx not answered 404 by exshim"
! grep -q 'path=/ecp' "$ORIGIN_LOG" || fail "normalize: /ecp reached the origin"
pass "strict: 20 ambiguous targets 400, no-route 404, absolute-form rules; normalize: routed on the repaired path"
