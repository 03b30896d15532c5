#!/bin/bash
# exshim-lab IIS-side presets, directly:
#   ssl-required-rpc (F4, seeds 000/003): plain HTTP to /rpc -> 403.4, HTTPS works
#   forms-auth-exchange (seed 003): 440 Login Timeout without a forms session
#   ntlmv2-required (seed 000 Fig. 9, LmCompatibilityLevel 5): NTLMv1/LM refused, NTLMv2 works
. "$(dirname "$0")/lib.sh"
. "$E2E_DIR/realm.sh"
need curl openssl
self_signed lab exlab01.lab.test

# ---- ssl-required-rpc
lab_start srr ssl-required-rpc --tls-listen 127.0.0.1:0 --cert "$T/lab.pem" --key "$T/lab.key"
curl -s -D "$T/h" -o "$T/b" "http://127.0.0.1:$LAB_PORT/rpc/rpcproxy.dll"
head -1 "$T/h" | grep -q '^HTTP/1.1 403 Forbidden' || fail "srr: plain /rpc: $(head -1 "$T/h")"
grep -q '<TITLE>The page must be viewed over a secure channel</TITLE>' "$T/b" || fail "srr: 403.4 body"
grep -q '403.4' "$T/b" || fail "srr: no 403.4 in the body"
[ "$(header_names "$T/h")" = "Content-Type Server X-Powered-By Date Content-Length" ] ||
    fail "srr: 403 header order: $(header_names "$T/h")"
expect_code "srr: plain /rpc with NTLM credentials" 403 "http://127.0.0.1:$LAB_PORT/rpc/rpcproxy.dll" --ntlm -u 'LAB\alice:Passw0rd!'
"$PY" "$LABPY/rpch.py" --port "$LAB_PORT" --expect-fail >"$T/o" 2>&1 || fail "srr: plain RPC accepted"
grep -q '403' "$T/o" || fail "srr: rpch: $(cat "$T/o")"
expect_code "srr: HTTPS /rpc with NTLM" 200 "https://127.0.0.1:$LAB_TLS_PORT/rpc/rpcproxy.dll" -k --ntlm -u 'LAB\alice:Passw0rd!'
"$PY" "$LABPY/rpch.py" --port "$LAB_TLS_PORT" --tls --pdus 5 >"$T/o" 2>&1 || fail "srr: rpch over TLS: $(cat "$T/o")"
expect_code "srr: plain /ews still fine" 200 "http://127.0.0.1:$LAB_PORT/ews/exchange.asmx" --ntlm -u 'LAB\alice:Passw0rd!'
lab_stop

# ---- forms-auth-exchange
lab_start fae forms-auth-exchange
curl -s -D "$T/h" -o "$T/b" "http://127.0.0.1:$LAB_PORT/exchange/alice/"
head -1 "$T/h" | tr -d '\r' | grep -qx 'HTTP/1.1 440 Login Timeout' || fail "fae: $(head -1 "$T/h")"
tr -d '\r' <"$T/h" | grep -qx 'Server: Microsoft-IIS/6.0' || fail "fae: Server header"
expect_code "fae: /owa without a session" 440 "http://127.0.0.1:$LAB_PORT/owa/"
expect_code "fae: /exchange with a forms session cookie" 200 "http://127.0.0.1:$LAB_PORT/exchange/alice/" -H 'Cookie: sessionid=1; cadata=abc'
expect_code "fae: ActiveSync with Basic" 200 "http://127.0.0.1:$LAB_PORT/Microsoft-Server-ActiveSync" --basic -u 'LAB\alice:Passw0rd!'
lab_stop

# ---- ntlmv2-required
lab_start n2r ntlmv2-required
for lvl in 0 1 2; do
    "$PY" "$LABPY/ntlm_http.py" --port "$LAB_PORT" --compat $lvl --expect 401 >"$T/o" 2>&1 ||
        fail "n2r: NTLMv1 client (compat $lvl) was not refused: $(cat "$T/o")"
done
n=$(grep -c 'verdict=fail:ntlmv1-refused' "$LAB_LOG")
[ "$n" -eq 3 ] || fail "n2r: expected 3 ntlmv1-refused lines, got $n"
"$PY" "$LABPY/ntlm_http.py" --port "$LAB_PORT" --compat 3 --expect 200 >"$T/o" 2>&1 || fail "n2r: NTLMv2: $(cat "$T/o")"
expect_code "n2r: curl --ntlm (NTLMv2)" 200 "http://127.0.0.1:$LAB_PORT/ews/exchange.asmx" --ntlm -u 'LAB\alice:Passw0rd!'
lab_stop
# the same NTLMv1 client is accepted at the default level, as IIS does
lab_start dflt default
"$PY" "$LABPY/ntlm_http.py" --port "$LAB_PORT" --compat 1 --expect 200 >"$T/o" 2>&1 ||
    fail "default: NTLMv1 refused: $(cat "$T/o")"
lab_stop
pass "ssl-required-rpc 403.4, forms-auth 440, ntlmv2-required refuses NTLMv1"
