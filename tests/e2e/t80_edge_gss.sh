#!/bin/bash
# Edge authentication at the GSS level, end to end (the session wiring comes later): the test
# tool edge_client plays exshim over auth/gss.h against an LDAP-backed KDC (realm_ldap.sh) and
# exshim-lab backends holding the key of HTTP/backend:
#  (a) curl --negotiate (SPNEGO, alice's forwardable ticket) accepted as HTTP/proxy, then
#      S4U2Proxy to HTTP/backend: the lab authenticates alice via Kerberos; a raw krb5 AP-REQ
#      too; a non-forwardable ticket (kinit -F) is refused as "evidence ticket not forwardable"
#  (b) Basic-style: alice's password verified at the KDC (then from the cache), S4U2Self +
#      S4U2Proxy: the lab says alice via Kerberos; a wrong password and an unknown user are
#      refused in words, and nothing reaches the lab
#  (c) password-NTLM to an NTLM-only vdir: the lab says LAB\alice via NTLM, even with an
#      NTLM_USER_FILE whose first entry is bob (no fallback to someone else)
#  (d) HTTP/proxy2 (no krbAllowedToDelegateTo): S4U2Proxy refused with the admin's words
#  (e) channel bindings to a TLS lab in epa-required: the lab certificate's hash accepted,
#      a wrong one refused (none is accepted, as MIT does, and logged as cbt=absent)
. "$(dirname "$0")/lib.sh"
. "$E2E_DIR/realm.sh"
. "$E2E_DIR/realm_ldap.sh"
need curl openssl kinit
EC=$BUILD/tests-tools/edge_client
[ -x "$EC" ] || skip "edge_client not built ($EC: make tools)"

realm_ldap_start LAB.TEST lab.test
realm_users_file "$T/users"
BKT=$REALM_DIR/backend.keytab
lab_start lab_def default --keytab "$BKT"
DEF_PORT=$LAB_PORT
DEF_LOG=$LAB_LOG
lab_start lab_ntlm ntlm-only-rpc --keytab "$BKT"
NTLM_PORT=$LAB_PORT
NTLM_LOG=$LAB_LOG
self_signed labcert "$BACKEND_HOST"
lab_start lab_epa epa-required --keytab "$BKT" --tls-listen 127.0.0.1:0 \
    --cert "$T/labcert.pem" --key "$T/labcert.key"
EPA_TLS_PORT=$LAB_TLS_PORT
EPA_LOG=$LAB_LOG
[ -n "$EPA_TLS_PORT" ] || fail "the epa lab has no TLS listener"

export ALICE_PW='Passw0rd!' WRONG_PW='Passw0rd?'
PX=(--keytab "$REALM_DIR/proxy.keytab" --proxy "$PROXY_SPN" --target "HTTP@$BACKEND_HOST"
    --host "$BACKEND_HOST")
PX2=(--keytab "$REALM_DIR/proxy2.keytab" --proxy "$PROXY2_SPN" --target "HTTP@$BACKEND_HOST"
     --host "$BACKEND_HOST")

# run NAME ARGS...: runs edge_client, output in $T/NAME.out, exit status in RC
run() {
    local name=$1
    shift
    "$EC" "$@" >"$T/$name.out" 2>&1
    RC=$?
}
# has NAME LINE: the output of run NAME contains LINE exactly
has() { grep -qxF -- "$2" "$T/$1.out" || fail "$1: no line '$2' in: $(tr '\n' '|' <"$T/$1.out")"; }
count() { grep -c -- "$2" "$1" 2>/dev/null || true; }
lab_ok_krb() { count "$1" 'access conn=.* status=200 user=LAB.TEST\\alice mech=kerberos$'; }

# ---- (a) Negotiate at the edge, S4U2Proxy to the backend ---------------------------------
echo "$ALICE_PW" | kinit alice >/dev/null 2>&1 || fail "kinit alice"
before=$(lab_ok_krb "$DEF_LOG")
rm -f "$T/neg.ready"
"$EC" negotiate "${PX[@]}" --backend "$DEF_PORT" --path /owa/ --ready "$T/neg.ready" \
    >"$T/neg.out" 2>&1 &
ECP=$!
wait_file "$T/neg.ready" 10 || fail "edge_client negotiate did not listen"
P=$(cat "$T/neg.ready")
got=$(curl -s -o /dev/null -w '%{http_code}' --max-time 15 --negotiate -u : \
    --resolve "$PROXY_HOST:$P:127.0.0.1" "http://$PROXY_HOST:$P/owa/")
wait "$ECP"
[ "$got" = 200 ] || fail "(a) curl --negotiate through the edge: $got ($(tr '\n' '|' <"$T/neg.out"))"
for l in client=alice@LAB.TEST mech=spnego/krb5 path=S4U2Proxy backend_status=200 \
    backend_mutual=ok; do has neg "$l"; done
[ "$(lab_ok_krb "$DEF_LOG")" -eq $((before + 1)) ] ||
    fail "(a) the lab did not report alice via Kerberos"
log "ok: (a) curl's SPNEGO token accepted, S4U2Proxy: the lab says LAB.TEST\\alice, kerberos"

run raw raw-krb5 "${PX[@]}" --backend "$DEF_PORT" --path /owa/ --user alice --password-env ALICE_PW
[ "$RC" -eq 0 ] || fail "(a) raw krb5: rc=$RC $(tr '\n' '|' <"$T/raw.out")"
for l in client=alice@LAB.TEST mech=krb5 path=S4U2Proxy backend_status=200; do has raw "$l"; done
[ "$(lab_ok_krb "$DEF_LOG")" -eq $((before + 2)) ] || fail "(a) raw krb5: the lab did not see alice"
log "ok: (a) raw Kerberos AP-REQ accepted, S4U2Proxy: the lab says alice"

echo "$ALICE_PW" | kinit -F alice >/dev/null 2>&1 || fail "kinit -F alice"
rm -f "$T/negf.ready"
"$EC" negotiate "${PX[@]}" --backend "$DEF_PORT" --path /owa/ --ready "$T/negf.ready" \
    >"$T/negf.out" 2>&1 &
ECP=$!
wait_file "$T/negf.ready" 10 || fail "edge_client negotiate did not listen"
P=$(cat "$T/negf.ready")
curl -s -o /dev/null --max-time 15 --negotiate -u : --resolve "$PROXY_HOST:$P:127.0.0.1" \
    "http://$PROXY_HOST:$P/owa/" >/dev/null 2>&1
wait "$ECP"
grep -q '^why=evidence ticket not forwardable' "$T/negf.out" ||
    fail "(a) kinit -F: want 'evidence ticket not forwardable', got $(tr '\n' '|' <"$T/negf.out")"
[ "$(lab_ok_krb "$DEF_LOG")" -eq $((before + 2)) ] || fail "(a) kinit -F: something reached the lab"
log "ok: (a) non-forwardable ticket: refused as 'evidence ticket not forwardable'"

# ---- (b) Basic: KDC-verified password, S4U2Self + S4U2Proxy ------------------------------
run basic basic "${PX[@]}" --backend "$DEF_PORT" --path /owa/ --user alice \
    --password-env ALICE_PW --verify-twice
[ "$RC" -eq 0 ] || fail "(b) basic: rc=$RC $(tr '\n' '|' <"$T/basic.out")"
for l in verified=kdc verified=cache path=S4U2Self+S4U2Proxy "cred=alice@LAB.TEST kind=2" \
    backend_status=200 backend_mutual=ok; do has basic "$l"; done
[ "$(lab_ok_krb "$DEF_LOG")" -eq $((before + 3)) ] || fail "(b) the lab did not see alice"
log "ok: (b) password verified at the KDC (second time from the cache), S4U2Self+S4U2Proxy: alice"

run wrong basic "${PX[@]}" --backend "$DEF_PORT" --user alice --password-env WRONG_PW
[ "$RC" -eq 2 ] || fail "(b) wrong password: rc=$RC"
has wrong "why=wrong password (the KDC refused it)"
run wrong2 basic "${PX[@]}" --backend "$DEF_PORT" --user alice --password-env WRONG_PW \
    --verify-twice
has wrong2 "why=wrong password (the KDC refused it)"
grep -q '^verified=cache' "$T/wrong2.out" && fail "(b) a wrong password came from the cache"
run nouser basic "${PX[@]}" --backend "$DEF_PORT" --user mallory --password-env ALICE_PW
[ "$RC" -eq 2 ] || fail "(b) unknown user: rc=$RC"
has nouser "why=user unknown to the KDC"
[ "$(lab_ok_krb "$DEF_LOG")" -eq $((before + 3)) ] || fail "(b) a refused user reached the lab"
log "ok: (b) wrong password and unknown user refused in words; nothing reached the lab"

# ---- (c) password-NTLM to an NTLM-only vdir ----------------------------------------------
printf '%s\n' 'LAB:bob:Secret-2' 'LAB:alice:Passw0rd!' >"$T/bob-first.users"
NTLM_USER_FILE=$T/bob-first.users run ntlm password-ntlm "${PX[@]}" --backend "$NTLM_PORT" \
    --path /rpc/rpcproxy.dll --user alice --domain LAB --password-env ALICE_PW
[ "$RC" -eq 0 ] || fail "(c) password-NTLM: rc=$RC $(tr '\n' '|' <"$T/ntlm.out")"
for l in path=password-NTLM 'cred=LAB\alice kind=4' backend_status=200; do has ntlm "$l"; done
grep -q 'auth conn=.* vdir=/rpc scheme=NTLM mech=ntlm user=LAB\\alice verdict=ok' "$NTLM_LOG" ||
    fail "(c) the NTLM-only lab did not authenticate LAB\\alice"
grep -q 'access conn=.* path=/rpc/rpcproxy.dll .*status=200 user=LAB\\alice mech=ntlm$' \
    "$NTLM_LOG" || fail "(c) the lab's access line does not say LAB\\alice via ntlm"
grep -q 'user=LAB\\bob' "$NTLM_LOG" && fail "(c) the NTLM credential fell back to bob"
log "ok: (c) password-NTLM: the NTLM-only lab says LAB\\alice via ntlm (bob first in NTLM_USER_FILE)"

run pk password-krb5 "${PX[@]}" --backend "$DEF_PORT" --path /owa/ --user alice \
    --password-env ALICE_PW
[ "$RC" -eq 0 ] || fail "password-Kerberos: rc=$RC $(tr '\n' '|' <"$T/pk.out")"
has pk path=password-Kerberos
[ "$(lab_ok_krb "$DEF_LOG")" -eq $((before + 4)) ] || fail "password-Kerberos: the lab did not see alice"
log "ok: password-Kerberos: the lab says alice via Kerberos"

# ---- (d) a proxy principal that may not delegate -----------------------------------------
deleg_words="why=S4U2Proxy refused: the proxy principal is not allowed to delegate to the backend SPN (add the SPN to its msDS-AllowedToDelegateTo / krbAllowedToDelegateTo)"
run d1 basic "${PX2[@]}" --backend "$DEF_PORT" --user alice --password-env ALICE_PW
[ "$RC" -eq 2 ] || fail "(d) proxy2 S4U2Self+S4U2Proxy: rc=$RC"
has d1 "$deleg_words"
run d2 raw-krb5 "${PX2[@]}" --backend "$DEF_PORT" --user alice --password-env ALICE_PW
[ "$RC" -eq 2 ] || fail "(d) proxy2 S4U2Proxy: rc=$RC"
has d2 client=alice@LAB.TEST
has d2 "$deleg_words"
grep -q "UNSUPPORTED_S4U2PROXY_REQUEST.*HTTP/$PROXY2_HOST@LAB.TEST for HTTP/$BACKEND_HOST" \
    "$REALM_DIR/kdc.log" || fail "(d) the KDC log shows no refused S4U2Proxy for proxy2"
[ "$(lab_ok_krb "$DEF_LOG")" -eq $((before + 4)) ] || fail "(d) a refused delegation reached the lab"
log "ok: (d) HTTP/proxy2 without krbAllowedToDelegateTo: S4U2Proxy refused in the admin's words"

# ---- (e) channel bindings toward a TLS backend with Extended Protection Required ---------
epa_ok() { count "$EPA_LOG" 'auth conn=.* vdir=/owa scheme=Negotiate mech=kerberos user=LAB.TEST\\alice verdict=ok cbt=match'; }
run e1 raw-krb5 "${PX[@]}" --backend "$EPA_TLS_PORT" --tls --cb --path /owa/ --user alice \
    --password-env ALICE_PW
[ "$RC" -eq 0 ] || fail "(e) matching bindings: rc=$RC $(tr '\n' '|' <"$T/e1.out")"
has e1 backend_status=200
[ "$(epa_ok)" -eq 1 ] || fail "(e) the epa lab did not accept alice with matching bindings"
run e2 raw-krb5 "${PX[@]}" --backend "$EPA_TLS_PORT" --tls --cb-wrong --path /owa/ --user alice \
    --password-env ALICE_PW
[ "$RC" -eq 3 ] || fail "(e) wrong bindings: rc=$RC $(tr '\n' '|' <"$T/e2.out")"
has e2 backend_status=401
grep -q 'auth conn=.* vdir=/owa scheme=Negotiate mech=kerberos user=- verdict=fail:.* cbt=mismatch' \
    "$EPA_LOG" || fail "(e) the epa lab did not refuse the wrong bindings as a mismatch"
run e3 raw-krb5 "${PX[@]}" --backend "$EPA_TLS_PORT" --tls --path /owa/ --user alice \
    --password-env ALICE_PW
# MIT (and so the lab, like IIS with EPA for clients that predate it) accepts Kerberos without
# bindings; the lab's line tells that apart from a bound success
[ "$RC" -eq 0 ] || fail "(e) no bindings: rc=$RC $(tr '\n' '|' <"$T/e3.out")"
grep -q 'auth conn=.* vdir=/owa scheme=Negotiate mech=kerberos user=LAB.TEST\\alice verdict=ok cbt=absent' \
    "$EPA_LOG" || fail "(e) the lab did not report an unbound Kerberos success as cbt=absent"
[ "$(epa_ok)" -eq 1 ] || fail "(e) an unbound handshake was reported as cbt=match"
log "ok: (e) epa-required: the lab certificate's hash accepted (cbt=match), a wrong one refused"

cat "$T"/*.out | grep -Eq 'Passw0rd|Secret-2' && fail "a password reached edge_client's output"
pass "S4U2Proxy, S4U2Self+S4U2Proxy, password-Kerberos, password-NTLM, refusals in words, channel bindings"
