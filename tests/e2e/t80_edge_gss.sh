#!/bin/bash
# Edge authentication at the GSS level, end to end (the session wiring comes later): the test
# tool edge_client plays exshim over auth/gss.h against an LDAP-backed KDC (realm_ldap.sh) and
# exshim-lab backends holding the key of HTTP/backend:
#  (a) curl --negotiate (SPNEGO, alice's forwardable ticket) accepted as HTTP/proxy, then
#      S4U2Proxy to HTTP/backend: the lab authenticates alice via Kerberos; a raw krb5 AP-REQ
#      too; a non-forwardable ticket (kinit -F) is refused as "evidence ticket not forwardable"
#  (b) Basic-style: alice's password verified at the KDC (then from the cache), S4U2Self +
#      S4U2Proxy: the lab says alice via Kerberos; a wrong password, an unknown user and a
#      rogue KDC (right password, no proxy key) are refused in words; nothing reaches the lab
#  (c) password-NTLM to an NTLM-only vdir: the lab says LAB\alice via NTLM, even with an
#      NTLM_USER_FILE whose first entry is bob (no fallback to someone else)
#  (d) HTTP/proxy2 (no krbAllowedToDelegateTo): S4U2Proxy refused with the admin's words
#  (e) channel bindings to a TLS lab in epa-required: the lab certificate's hash accepted,
#      a wrong one refused (none is accepted, as MIT does, and logged as cbt=absent)
#  (f) the same paths through auth/edge.h (edge_client serve, a small proxy following its
#      integration recipe) with curl as the client: Negotiate, Basic over TLS (constrained and
#      password-NTLM), an NTLM client offered Negotiate/Basic only, wrong password, Basic on
#      plain HTTP
. "$(dirname "$0")/lib.sh"
. "$E2E_DIR/realm.sh"
. "$E2E_DIR/realm_ldap.sh"
need curl openssl kinit
EC=${EDGE_CLIENT:-$BUILD/tests-tools/edge_client}
[ -x "$EC" ] || skip "edge_client not built ($EC: make tools)"

# A rogue KDC first: the same realm name and the same password for alice, but its own key for
# HTTP/proxy (it cannot know the real one). Then the real, LDAP-backed realm.
realm_start LAB.TEST proxy.lab.test
ROGUE_KRB5_CONFIG=$KRB5_CONFIG
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

# the edge's own channel bindings: a client bound to the certificate it saw is accepted and
# marked bound; one bound to another certificate (a relayed ticket) is refused
run cbr raw-krb5 "${PX[@]}" --backend "$DEF_PORT" --path /owa/ --user alice \
    --password-env ALICE_PW --client-cb right
[ "$RC" -eq 0 ] || fail "(a) client bindings right: rc=$RC $(tr '\n' '|' <"$T/cbr.out")"
has cbr client_bindings=bound
has raw client_bindings=none
run cbw raw-krb5 "${PX[@]}" --backend "$DEF_PORT" --path /owa/ --user alice \
    --password-env ALICE_PW --client-cb wrong
[ "$RC" -eq 2 ] || fail "(a) client bindings wrong: rc=$RC"
has cbw "why=channel bindings do not match the TLS certificate (Extended Protection)"
[ "$(lab_ok_krb "$DEF_LOG")" -eq $((before + 3)) ] || fail "(a) bindings: the lab count is off"
log "ok: (a) the edge's acceptor: client bindings matching -> bound; another certificate -> refused"

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
[ "$(lab_ok_krb "$DEF_LOG")" -eq $((before + 3)) ] || fail "(a) kinit -F: something reached the lab"
log "ok: (a) non-forwardable ticket: refused as 'evidence ticket not forwardable'"

# ---- (b) Basic: KDC-verified password, S4U2Self + S4U2Proxy ------------------------------
run basic basic "${PX[@]}" --backend "$DEF_PORT" --path /owa/ --user alice \
    --password-env ALICE_PW --verify-twice
[ "$RC" -eq 0 ] || fail "(b) basic: rc=$RC $(tr '\n' '|' <"$T/basic.out")"
for l in verified=kdc verified=cache path=S4U2Self+S4U2Proxy "cred=alice@LAB.TEST kind=2" \
    backend_status=200 backend_mutual=ok; do has basic "$l"; done
[ "$(lab_ok_krb "$DEF_LOG")" -eq $((before + 4)) ] || fail "(b) the lab did not see alice"
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
# a KDC that answers for the realm but does not hold the proxy's key cannot vouch for alice:
# its AS reply decrypts with her password, but the ticket it issues for HTTP/proxy does not
# decrypt with the proxy's keytab
run rogue basic "${PX[@]}" --backend "$DEF_PORT" --user alice --password-env ALICE_PW \
    --spoof-kdc-config "$ROGUE_KRB5_CONFIG"
[ "$RC" -eq 2 ] || fail "(b) rogue KDC: rc=$RC $(tr '\n' '|' <"$T/rogue.out")"
grep -q "^why=the KDC's answer could not be verified with the proxy keytab" "$T/rogue.out" ||
    fail "(b) rogue KDC: $(tr '\n' '|' <"$T/rogue.out")"
[ "$(lab_ok_krb "$DEF_LOG")" -eq $((before + 4)) ] || fail "(b) a refused user reached the lab"
log "ok: (b) wrong password, unknown user and a rogue KDC refused in words; nothing reached the lab"

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
[ "$(lab_ok_krb "$DEF_LOG")" -eq $((before + 5)) ] || fail "password-Kerberos: the lab did not see alice"
log "ok: password-Kerberos: the lab says alice via Kerberos"

# ---- (d) a proxy principal that may not delegate -----------------------------------------
deleg_words="why=S4U2Proxy refused: the proxy principal is not allowed to delegate to the backend SPN (add the SPN to its msDS-AllowedToDelegateTo / krbAllowedToDelegateTo)"
run d1 basic "${PX2[@]}" --backend "$DEF_PORT" --user alice --password-env ALICE_PW
[ "$RC" -eq 2 ] || fail "(d) proxy2 S4U2Self+S4U2Proxy: rc=$RC"
has d1 "$deleg_words"
# authgss_strerror: the GSS major text and the krb5 minor text, both
grep -q "^error=.*Unspecified GSS failure.*; KDC can't fulfill requested option$" "$T/d1.out" ||
    fail "(d) the error lacks the GSS major/minor texts: $(tr '\n' '|' <"$T/d1.out")"
run d2 raw-krb5 "${PX2[@]}" --backend "$DEF_PORT" --user alice --password-env ALICE_PW
[ "$RC" -eq 2 ] || fail "(d) proxy2 S4U2Proxy: rc=$RC"
has d2 client=alice@LAB.TEST
has d2 "$deleg_words"
grep -q "UNSUPPORTED_S4U2PROXY_REQUEST.*HTTP/$PROXY2_HOST@LAB.TEST for HTTP/$BACKEND_HOST" \
    "$REALM_DIR/kdc.log" || fail "(d) the KDC log shows no refused S4U2Proxy for proxy2"
[ "$(lab_ok_krb "$DEF_LOG")" -eq $((before + 5)) ] || fail "(d) a refused delegation reached the lab"
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

# ---- (f) the same through auth/edge.h: edge_client serve is a small proxy that follows
# edge.h's integration recipe (edge_request, edge_backend_request, edge_response) -------------
self_signed edge "$PROXY_HOST"
EDGE_TLS=(--listen-cert "$T/edge.pem" --listen-key "$T/edge.key")
# serve NAME ARGS...: starts edge_client serve (one client connection); sets SP and SPORT
serve() {
    local name=$1
    shift
    rm -f "$T/$name.ready"
    "$EC" serve "${PX[@]}" --realm LAB.TEST --domain LAB --ready "$T/$name.ready" "$@" \
        >"$T/$name.out" 2>&1 &
    SP=$!
    wait_file "$T/$name.ready" 10 || fail "edge_client serve ($name) did not listen"
    SPORT=$(cat "$T/$name.ready")
}
# through NAME URL-PATH CURL-ARGS...: curl (two requests on one connection) via the serve proxy
through() {
    local name=$1 path=$2 scheme=http
    shift 2
    case " $* " in *" -k "*) scheme=https ;; esac
    curl -s -o /dev/null -w '%{http_code} ' --max-time 15 --resolve "$PROXY_HOST:$SPORT:127.0.0.1" \
        "$@" "$scheme://$PROXY_HOST:$SPORT$path" "$scheme://$PROXY_HOST:$SPORT$path?again"
    timeout 10 tail --pid="$SP" -f /dev/null 2>/dev/null || kill "$SP" 2>/dev/null
}
# served NAME: the serve process ended cleanly (under a sanitizer build: no report)
served() {
    wait "$SP"
    local rc=$?
    [ "$rc" -eq 0 ] || fail "edge_client serve ($1) exited $rc: $(tail -5 "$T/$1.out" | tr '\n' '|')"
}
conn_auths() { # FILE: lab connections with one auth line and two 200s for alice
    awk '/ auth conn=/ && /verdict=ok/ { split($3, c, "="); a[c[2]]++ }
         / access conn=/ && /status=200 user=(LAB.TEST)?.*alice/ { split($3, c, "="); n[c[2]]++ }
         END { for (k in n) if (a[k] == 1 && n[k] == 2) m++; print m + 0 }' "$1"
}

echo "$ALICE_PW" | kinit alice >/dev/null 2>&1 || fail "kinit alice"
before=$(conn_auths "$DEF_LOG")
serve f1 --backend "$DEF_PORT"
got=$(through f1 /owa/ --negotiate -u :)
served f1
[ "$got" = "200 200 " ] || fail "(f) Negotiate through edge.h: $got ($(tr '\n' '|' <"$T/f1.out"))"
grep -q '^trace: scheme=Negotiate mech=spnego/krb5 user="alice@LAB.TEST" path=S4U2Proxy backend_as="alice@LAB.TEST" cached=no backend_status=200 mutual=ok verdict=ok$' \
    "$T/f1.out" || fail "(f) Negotiate trace: $(tr '\n' '|' <"$T/f1.out")"
[ "$(conn_auths "$DEF_LOG")" -eq $((before + 1)) ] ||
    fail "(f) the lab did not see one authenticated backend connection serving both requests"
log "ok: (f) curl --negotiate through edge.h: S4U2Proxy, 2 requests on one authenticated backend connection"

serve f2 --backend "$DEF_PORT" "${EDGE_TLS[@]}"
got=$(through f2 /owa/ -k -u "alice:$ALICE_PW")
served f2
[ "$got" = "200 200 " ] || fail "(f) Basic through edge.h: $got ($(tr '\n' '|' <"$T/f2.out"))"
grep -q '^trace: scheme=Basic mech=basic user="alice@LAB.TEST" path=S4U2Self+S4U2Proxy .*backend_status=200 mutual=ok verdict=ok$' \
    "$T/f2.out" || fail "(f) Basic trace: $(tr '\n' '|' <"$T/f2.out")"
[ "$(conn_auths "$DEF_LOG")" -eq $((before + 2)) ] || fail "(f) Basic: the lab did not see alice"
log "ok: (f) curl Basic over TLS through edge.h: S4U2Self+S4U2Proxy"

serve f3 --backend "$NTLM_PORT" "${EDGE_TLS[@]}" --delegation password-ntlm
got=$(through f3 /rpc/rpcproxy.dll -k -u "LAB\\alice:$ALICE_PW")
served f3
[ "$got" = "200 200 " ] || fail "(f) Basic to NTLM through edge.h: $got ($(tr '\n' '|' <"$T/f3.out"))"
grep -q '^trace: scheme=Basic .*path=password-NTLM backend_as="LAB\\alice" .*backend_status=200 mutual=n/a verdict=ok$' \
    "$T/f3.out" || fail "(f) password-NTLM trace: $(tr '\n' '|' <"$T/f3.out")"
[ "$(conn_auths "$NTLM_LOG")" -ge 1 ] || fail "(f) the NTLM-only lab did not see LAB\\alice on one connection"
log "ok: (f) curl Basic through edge.h to an NTLM-only backend: password-NTLM legs, LAB\\alice"

serve f4 --backend "$DEF_PORT" "${EDGE_TLS[@]}"
curl -sk -o /dev/null -D "$T/f4.h" --max-time 15 --resolve "$PROXY_HOST:$SPORT:127.0.0.1" \
    --ntlm -u "LAB\\alice:$ALICE_PW" "https://$PROXY_HOST:$SPORT/owa/"
served f4
offers=$(tr -d '\r' <"$T/f4.h" | awk -F': ' 'tolower($1) == "www-authenticate" { printf "%s,", $2 }')
[ "$offers" = 'Negotiate,Basic realm="edge-test",' ] || fail "(f) an NTLM client was offered '$offers'"
grep -q '^trace: scheme=NTLM .*verdict=refused error="NTLM is not accepted at the edge' "$T/f4.out" ||
    fail "(f) no trace of the refused NTLM client"
log "ok: (f) curl --ntlm at the edge: 401 offering Negotiate and Basic only"

# NTLM inside SPNEGO is refused too, even with an NTLM_USER_FILE that would let gss-ntlmssp
# accept it in exshim's own environment
NTLM_USER_FILE=$T/users serve f7 --backend "$DEF_PORT"
got=$(KRB5CCNAME=FILE:$T/no-ticket.ccache NTLM_USER_FILE=$T/users through f7 /owa/ --negotiate -u :)
served f7
case "$got" in 200*|*" 200 "*) fail "(f) SPNEGO carrying NTLM was accepted at the edge: $got" ;; esac
grep -q '^trace: scheme=Negotiate .*verdict=refused' "$T/f7.out" ||
    fail "(f) no refusal trace for SPNEGO/NTLM: $(tr '\n' '|' <"$T/f7.out")"
log "ok: (f) SPNEGO carrying NTLM refused at the edge ($got)"

serve f5 --backend "$DEF_PORT" "${EDGE_TLS[@]}"
got=$(through f5 /owa/ -k -u "alice:$WRONG_PW")
served f5
[ "$got" = "401 401 " ] || fail "(f) wrong Basic password: $got"
grep -q 'verdict=refused error="wrong password (the KDC refused it)' "$T/f5.out" ||
    fail "(f) wrong password trace: $(tr '\n' '|' <"$T/f5.out")"
serve f6 --backend "$DEF_PORT"
got=$(through f6 /owa/ -u "alice:$ALICE_PW")
served f6
[ "$got" = "403 403 " ] || fail "(f) Basic on plain HTTP: $got"
[ "$(conn_auths "$DEF_LOG")" -eq $((before + 2)) ] || fail "(f) a refused client reached the lab"
log "ok: (f) wrong Basic password -> 401 with the KDC's words; Basic on plain HTTP -> 403"

cat "$T"/*.out | grep -Eq 'Passw0rd|Secret-2' && fail "a password reached edge_client's output"
pass "S4U2Proxy, S4U2Self+S4U2Proxy, password-Kerberos, password-NTLM, refusals in words, channel bindings, edge.h end to end"
