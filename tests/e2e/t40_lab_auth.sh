#!/bin/bash
# exshim-lab, preset "default", hit directly with real clients: NTLM (curl --ntlm, python
# ntlm-auth with MIC, raw NTLMSSP under Negotiate), Kerberos (curl --negotiate with a ticket
# from a throwaway MIT realm, mutual-auth token on the 200), SPNEGO carrying NTLM
# (gss-ntlmssp, no ticket), Basic; connection-bound authentication; MIC tampering detected;
# IIS header order and case.
. "$(dirname "$0")/lib.sh"
. "$E2E_DIR/realm.sh"
need curl
realm_start LAB.TEST exlab01.lab.test
lab_start lab default
H=exlab01.lab.test
U="http://$H:$LAB_PORT"
R=(--resolve "$H:$LAB_PORT:127.0.0.1")

# NTLM with curl's own layout (32-byte NEGOTIATE, payload at 64, no MIC)
expect_code "curl --ntlm" 200 "$U/ews/exchange.asmx" "${R[@]}" --ntlm -u 'LAB\alice:Passw0rd!'
expect_code "curl --ntlm, wrong password" 401 "$U/ews/exchange.asmx" "${R[@]}" --ntlm -u 'LAB\alice:nope'
expect_code "curl --ntlm, unknown domain" 401 "$U/ews/exchange.asmx" "${R[@]}" --ntlm -u 'OTHER\alice:Passw0rd!'
expect_code "curl --ntlm, no domain" 200 "$U/ews/exchange.asmx" "${R[@]}" --ntlm -u 'bob:Secret-2'
grep -q 'auth conn=[0-9]* .*vdir=/ews scheme=NTLM mech=ntlm user=LAB\\alice verdict=ok cbt=absent mic=absent' "$LAB_LOG" ||
    fail "no ok handshake line for curl --ntlm"
grep -q 'verdict=fail:bad-credentials' "$LAB_LOG" || fail "no bad-credentials line"

# Kerberos: SPNEGO with a ticket for HTTP/exlab01.lab.test; the 200 carries the AP-REP
curl -s -o /dev/null -D "$T/krb.h" "${R[@]}" --negotiate -u : "$U/mapi/emsmdb/" || true
grep -q '^HTTP/1.1 200' "$T/krb.h" || fail "curl --negotiate (Kerberos): $(head -1 "$T/krb.h")"
grep -qi '^WWW-Authenticate: Negotiate [A-Za-z0-9+/]' "$T/krb.h" || fail "no mutual-auth token on the 200"
grep -q 'scheme=Negotiate mech=kerberos user=LAB.TEST\\alice verdict=ok' "$LAB_LOG" || fail "no kerberos ok line"
log "ok: curl --negotiate (Kerberos) -> 200 with mutual-auth token"

# SPNEGO carrying NTLM (MIT SPNEGO + gss-ntlmssp on both sides), no Kerberos ticket
KRB5CCNAME=$(realm_empty_ccache) NTLM_USER_FILE="$T/users" \
    curl -s -o /dev/null -w '%{http_code}' "${R[@]}" --negotiate -u : "$U/autodiscover/autodiscover.xml" >"$T/spnego.code"
[ "$(cat "$T/spnego.code")" = 200 ] || fail "SPNEGO/NTLM: $(cat "$T/spnego.code")"
grep -q 'vdir=/autodiscover scheme=Negotiate mech=ntlm user=LAB\\alice verdict=ok' "$LAB_LOG" || fail "no SPNEGO/NTLM ok line"
log "ok: SPNEGO carrying NTLM -> 200"

# Basic
expect_code "curl --basic" 200 "$U/autodiscover/autodiscover.xml" "${R[@]}" --basic -u 'LAB\alice:Passw0rd!'
expect_code "curl --basic, wrong password" 401 "$U/autodiscover/autodiscover.xml" "${R[@]}" --basic -u 'LAB\alice:x'
expect_code "Basic not offered on /ews" 401 "$U/ews/exchange.asmx" "${R[@]}" --basic -u 'LAB\alice:Passw0rd!'

# python ntlm-auth (Windows-like layout, MIC): connection-bound, a new connection starts over
"$PY" "$LABPY/ntlm_http.py" --port "$LAB_PORT" --then 2 --new-conn --expect 200,200,200,401 >"$T/py.out" ||
    fail "connection-bound NTLM: $(cat "$T/py.out")"
grep -q 'scheme=NTLM mech=ntlm user=LAB\\alice verdict=ok cbt=absent mic=ok' "$LAB_LOG" || fail "no mic=ok line"
log "ok: NTLM is connection-bound (200 x3 on one connection, 401 on a new one)"
# raw NTLMSSP under the Negotiate word, answered with "Negotiate <raw CHALLENGE>" as IIS does
"$PY" "$LABPY/ntlm_http.py" --port "$LAB_PORT" --auth negotiate-ntlm --show-headers --expect 200 >"$T/nego.out" ||
    fail "raw NTLM under Negotiate: $(cat "$T/nego.out")"
grep -q 'WWW-Authenticate: Negotiate TlRMTVNTUAAC' "$T/nego.out" || fail "challenge not raw NTLM under Negotiate"
log "ok: raw NTLMSSP under Negotiate -> 200"
# the MIC proves the three messages arrived unmodified
"$PY" "$LABPY/ntlm_http.py" --port "$LAB_PORT" --tamper negotiate --expect 401 >/dev/null ||
    fail "a modified NEGOTIATE was accepted"
grep -q 'verdict=fail:mic-mismatch cbt=absent mic=bad' "$LAB_LOG" || fail "no mic=bad line"
log "ok: modified NEGOTIATE -> MIC mismatch -> 401"

# IIS response shape
curl -s -o /dev/null -D "$T/401.h" "${R[@]}" "$U/rpc/rpcproxy.dll"
names=$(header_names "$T/401.h")
[ "$names" = "Content-Type Server WWW-Authenticate WWW-Authenticate X-Powered-By Date Content-Length" ] ||
    fail "401 header order: $names"
tr -d '\r' <"$T/401.h" | grep -qx 'WWW-Authenticate: Negotiate' || fail "401 lacks Negotiate"
[ "$(tr -d '\r' <"$T/401.h" | grep -n '^WWW-Authenticate' | head -1 | cut -d: -f3)" = " Negotiate" ] ||
    fail "Negotiate is not listed first"
curl -s -o /dev/null -D "$T/200.h" "${R[@]}" --ntlm -u 'LAB\alice:Passw0rd!' "$U/ews/exchange.asmx"
for h in 'request-id: ' 'X-FEServer: EXLAB01' 'Persistent-Auth: true' 'Server: Microsoft-IIS/10.0' 'X-Powered-By: ASP.NET'; do
    tr -d '\r' <"$T/200.h" | grep -q "^$h" || fail "200 lacks '$h'"
done
log "ok: IIS header order and case"

grep -q 'access conn=[0-9]* peer=127.0.0.1:[0-9]* method=GET path=/ews/exchange.asmx vdir=/ews status=200 user=LAB\\alice' "$LAB_LOG" ||
    fail "no access line"
pass "default preset: NTLM, Kerberos, SPNEGO/NTLM, Basic, connection binding, MIC, IIS shape"
