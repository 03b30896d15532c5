#!/bin/bash
# exshim-lab offer presets, directly: each reproduces its field failure and keeps its working
# path working.
#   negotiate-only-mapi (F1, seed 002)  ntlm-not-first (F2, seeds 000/001)
#   ntlm-only-rpc (F3)                  basic-only-rpc (F5, seed 004)
. "$(dirname "$0")/lib.sh"
. "$E2E_DIR/realm.sh"
need curl
realm_start LAB.TEST exlab01.lab.test
H=exlab01.lab.test
EMPTY=$(realm_empty_ccache)

offers() { # offers PATH: the WWW-Authenticate lines of an anonymous request, "|"-joined
    curl -s -o /dev/null -D - --resolve "$H:$LAB_PORT:127.0.0.1" "http://$H:$LAB_PORT$1" |
        tr -d '\r' | sed -n 's/^WWW-Authenticate: //p' | paste -sd'|'
}
spnego_ntlm() { # spnego_ntlm URL: SPNEGO carrying NTLM (gss-ntlmssp), no Kerberos ticket
    KRB5CCNAME=$EMPTY NTLM_USER_FILE="$T/users" code "$1" --resolve "$H:$LAB_PORT:127.0.0.1" --negotiate -u :
}

# ---- negotiate-only-mapi: Exchange 2013 /mapi offers Negotiate only
lab_start nom negotiate-only-mapi
U="http://$H:$LAB_PORT"
[ "$(offers /mapi/emsmdb/)" = "Negotiate" ] || fail "negotiate-only-mapi offers: $(offers /mapi/emsmdb/)"
expect_code "nom: curl --ntlm on /mapi" 401 "$U/mapi/emsmdb/" --resolve "$H:$LAB_PORT:127.0.0.1" --ntlm -u 'LAB\alice:Passw0rd!'
"$PY" "$LABPY/ntlm_http.py" --port "$LAB_PORT" --path /mapi/emsmdb/ --auth ntlm --expect 401 >"$T/o" 2>&1 ||
    fail "nom: raw 'Authorization: NTLM' was accepted: $(cat "$T/o")"
grep -q 'vdir=/mapi/emsmdb scheme=NTLM .*verdict=fail:scheme-not-offered' "$LAB_LOG" || fail "nom: no scheme-not-offered line"
expect_code "nom: Kerberos on /mapi" 200 "$U/mapi/emsmdb/" --resolve "$H:$LAB_PORT:127.0.0.1" --negotiate -u :
"$PY" "$LABPY/mapi.py" --port "$LAB_PORT" --auth negotiate-ntlm --executes 2 >"$T/o" 2>&1 ||
    fail "nom: NTLM under the Negotiate word: $(cat "$T/o")"
log "ok: nom: raw NTLM under Negotiate (what IIS accepts) -> MAPI session works"
curl -s -o /dev/null -D "$T/h" "$U/mapi/emsmdb/" --resolve "$H:$LAB_PORT:127.0.0.1" --negotiate -u :
tr -d '\r' <"$T/h" | grep -qx 'Server: Microsoft-IIS/8.5' || fail "nom: Server header"
expect_code "nom: curl --ntlm on /ews still works" 200 "$U/ews/exchange.asmx" --resolve "$H:$LAB_PORT:127.0.0.1" --ntlm -u 'LAB\alice:Passw0rd!'
lab_stop

# ---- ntlm-not-first: Negotiate listed first, Kerberos fails for clients outside the realm
lab_start nnf ntlm-not-first
U="http://$H:$LAB_PORT"
[ "$(offers /rpc/rpcproxy.dll)" = "Negotiate|NTLM" ] || fail "ntlm-not-first offers: $(offers /rpc/rpcproxy.dll)"
expect_code "nnf: Kerberos client (picks Negotiate)" 401 "$U/rpc/rpcproxy.dll" --resolve "$H:$LAB_PORT:127.0.0.1" --negotiate -u :
grep -q 'vdir=/rpc scheme=Negotiate mech=kerberos .*verdict=fail:' "$LAB_LOG" || fail "nnf: no Kerberos failure line"
expect_code "nnf: curl --ntlm" 200 "$U/rpc/rpcproxy.dll" --resolve "$H:$LAB_PORT:127.0.0.1" --ntlm -u 'LAB\alice:Passw0rd!'
"$PY" "$LABPY/rpch.py" --port "$LAB_PORT" --pdus 3 >"$T/o" 2>&1 || fail "nnf: rpch over NTLM: $(cat "$T/o")"
lab_stop

# ---- ntlm-only-rpc: the backend /rpc offers NTLM only; SPNEGO clients fail
lab_start nor ntlm-only-rpc
U="http://$H:$LAB_PORT"
[ "$(offers /rpc/rpcproxy.dll)" = "NTLM" ] || fail "ntlm-only-rpc offers: $(offers /rpc/rpcproxy.dll)"
expect_code "nor: curl --negotiate (Kerberos)" 401 "$U/rpc/rpcproxy.dll" --resolve "$H:$LAB_PORT:127.0.0.1" --negotiate -u :
got=$(spnego_ntlm "$U/rpc/rpcproxy.dll")
[ "$got" = 401 ] || fail "nor: SPNEGO/NTLM: expected 401, got $got"
"$PY" "$LABPY/rpch.py" --port "$LAB_PORT" --auth negotiate-ntlm --expect-fail >"$T/o" 2>&1 ||
    fail "nor: Negotiate on /rpc was accepted"
expect_code "nor: curl --ntlm" 200 "$U/rpc/rpcproxy.dll" --resolve "$H:$LAB_PORT:127.0.0.1" --ntlm -u 'LAB\alice:Passw0rd!'
"$PY" "$LABPY/rpch.py" --port "$LAB_PORT" --pdus 3 >"$T/o" 2>&1 || fail "nor: rpch over NTLM: $(cat "$T/o")"
got=$(spnego_ntlm "$U/ews/exchange.asmx")
[ "$got" = 200 ] || fail "nor: SPNEGO/NTLM on /ews: expected 200, got $got"
lab_stop

# ---- basic-only-rpc: "Methods Found: Basic, Methods Required: NTLM"
lab_start bor basic-only-rpc
U="http://$H:$LAB_PORT"
[ "$(offers /rpc/rpcproxy.dll)" = 'Basic realm="mail.lab.test"' ] || fail "basic-only-rpc offers: $(offers /rpc/rpcproxy.dll)"
expect_code "bor: curl --ntlm" 401 "$U/rpc/rpcproxy.dll" --resolve "$H:$LAB_PORT:127.0.0.1" --ntlm -u 'LAB\alice:Passw0rd!'
expect_code "bor: curl --negotiate" 401 "$U/rpc/rpcproxy.dll" --resolve "$H:$LAB_PORT:127.0.0.1" --negotiate -u :
"$PY" "$LABPY/rpch.py" --port "$LAB_PORT" --auth ntlm --expect-fail >"$T/o" 2>&1 || fail "bor: NTLM RPC accepted"
expect_code "bor: curl --basic" 200 "$U/rpc/rpcproxy.dll" --resolve "$H:$LAB_PORT:127.0.0.1" --basic -u 'LAB\alice:Passw0rd!'
"$PY" "$LABPY/rpch.py" --port "$LAB_PORT" --auth basic --pdus 3 >"$T/o" 2>&1 || fail "bor: rpch Basic: $(cat "$T/o")"
lab_stop
pass "offer presets reproduce F1, F2, F3, F5 and keep their working paths"
