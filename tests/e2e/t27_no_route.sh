#!/usr/bin/env bash
# Without a default route, a path no route matches gets 404 from exshim and nothing reaches
# the backend; a matching path still works. Also: `exshim -t` accepts this file.
. "$(dirname "$0")/lib.sh"
need curl
[ -x "$EXSHIM" ] || skip "$EXSHIM not built"
start_origin
cat >"$T/exshim.conf" <<EOC
workers = 1;
listeners = ( { name = "plain"; address = "127.0.0.1:0"; } );
backends = ( { name = "origin"; servers = [ "127.0.0.1:$ORIGIN_PORT" ]; connect_timeout = "2s"; } );
routes = ( { path = "/rpc"; backend = "origin"; } );
EOC
"$EXSHIM" -t -c "$T/exshim.conf" >"$T/check.log" 2>&1 || fail "exshim -t rejects a valid config: $(cat "$T/check.log")"
start_exshim "$T/exshim.conf"
P=$(listener_port plain)
st=$(curl -s --max-time 5 -o "$T/body" -w '%{http_code}' "http://127.0.0.1:$P/owa/") || fail "curl failed"
[ "$st" = 404 ] || fail "unrouted path: status $st, want 404"
st=$(curl -s --max-time 5 -o "$T/body" -w '%{http_code}' "http://127.0.0.1:$P/rpcx") || fail "curl failed"
[ "$st" = 404 ] || fail "/rpcx matched route /rpc (prefix must end at a / boundary): status $st"
[ "$(origin_count '^request peer=')" -eq 0 ] || fail "an unrouted request reached the origin"
st=$(curl -s --max-time 5 -o "$T/body" -w '%{http_code}' "http://127.0.0.1:$P/rpc/rpcproxy.dll") || fail "curl failed"
[ "$st" = 200 ] || fail "routed path /rpc/rpcproxy.dll: status $st, want 200"
st=$(curl -s --max-time 5 -o "$T/body" -w '%{http_code}' "http://127.0.0.1:$P/RPC/rpcproxy.dll") || fail "curl failed"
[ "$st" = 200 ] || fail "route match is not case-insensitive (/RPC): status $st"
pass "404 without a default route; /rpc routed"
