#!/bin/bash
# exshim-lab preset epa-required (F11, Extended Protection): an NTLMv2 AUTHENTICATE must carry a
# channel binding (MsvAvChannelBindings) that matches the lab's own certificate.
#   works:  TLS to the lab, binding to its certificate (python ntlm-auth, like Windows)
#   fails:  no binding (curl --ntlm, gss-ntlmssp via curl --negotiate), a binding to another
#           certificate (a proxy re-encrypting with its own), TLS offload (plain to the lab)
. "$(dirname "$0")/lib.sh"
. "$E2E_DIR/realm.sh"
need curl openssl
self_signed lab exlab01.lab.test
self_signed proxy mail.lab.test
lab_start epa epa-required --tls-listen 127.0.0.1:0 --cert "$T/lab.pem" --key "$T/lab.key"
N="$PY $LABPY/ntlm_http.py --port $LAB_TLS_PORT --tls --path /rpc/rpcproxy.dll"

$N --expect 200 >"$T/o" 2>&1 || fail "binding to the lab's certificate: $(cat "$T/o")"
grep -q 'vdir=/rpc scheme=NTLM mech=ntlm user=LAB\\alice verdict=ok cbt=match mic=ok' "$LAB_LOG" || fail "no cbt=match line"
log "ok: TLS to the lab, matching channel binding -> 200"
$N --no-cbt --expect 401 >"$T/o" 2>&1 || fail "no binding accepted: $(cat "$T/o")"
grep -q 'verdict=fail:epa-cbt-absent cbt=absent' "$LAB_LOG" || fail "no epa-cbt-absent line"
log "ok: no channel binding -> 401"
$N --cbt-cert "$T/proxy.pem" --expect 401 >"$T/o" 2>&1 || fail "foreign binding accepted: $(cat "$T/o")"
grep -q 'verdict=fail:epa-cbt-mismatch cbt=mismatch' "$LAB_LOG" || fail "no epa-cbt-mismatch line"
log "ok: re-encryption with another certificate (binding to the proxy's) -> 401"
"$PY" "$LABPY/ntlm_http.py" --port "$LAB_PORT" --path /rpc/rpcproxy.dll --cbt-cert "$T/lab.pem" --expect 401 >"$T/o" 2>&1 ||
    fail "TLS offload accepted: $(cat "$T/o")"
log "ok: TLS offload (plain HTTP to the lab, client bound to the certificate it saw) -> 401"
$N --compat 1 --expect 401 >"$T/o" 2>&1 || fail "NTLMv1 accepted under EPA"
grep -q 'verdict=fail:epa-ntlmv1' "$LAB_LOG" || fail "no epa-ntlmv1 line"
expect_code "curl --ntlm (no binding) over TLS" 401 "https://127.0.0.1:$LAB_TLS_PORT/rpc/rpcproxy.dll" -k --ntlm -u 'LAB\alice:Passw0rd!'
got=$(KRB5CCNAME=FILE:$T/none.cc NTLM_USER_FILE="$T/users" code "https://127.0.0.1:$LAB_TLS_PORT/mapi/emsmdb/" -k --negotiate -u :)
[ "$got" = 401 ] || fail "SPNEGO/NTLM without binding: expected 401, got $got"
# Allow on /ews: a missing binding passes, a wrong one fails; Autodiscover has EP off
"$PY" "$LABPY/ntlm_http.py" --port "$LAB_TLS_PORT" --tls --no-cbt --expect 200 >"$T/o" 2>&1 || fail "/ews allow, no binding: $(cat "$T/o")"
"$PY" "$LABPY/ntlm_http.py" --port "$LAB_TLS_PORT" --tls --cbt-cert "$T/proxy.pem" --expect 401 >"$T/o" 2>&1 || fail "/ews allow, wrong binding accepted"
expect_code "autodiscover (EP off), curl --ntlm" 200 "https://127.0.0.1:$LAB_TLS_PORT/autodiscover/autodiscover.xml" -k --ntlm -u 'LAB\alice:Passw0rd!'
# whole Outlook flows over TLS with bindings
"$PY" "$LABPY/rpch.py" --port "$LAB_TLS_PORT" --tls --pdus 5 >"$T/o" 2>&1 || fail "rpch over TLS with EPA: $(cat "$T/o")"
"$PY" "$LABPY/mapi.py" --port "$LAB_TLS_PORT" --tls --executes 2 >"$T/o" 2>&1 || fail "mapi over TLS with EPA: $(cat "$T/o")"
pass "Extended Protection: match works; absent, foreign, offloaded bindings and NTLMv1 fail"
