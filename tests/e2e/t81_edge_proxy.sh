#!/bin/bash
# Edge authentication in the proxy (routes with auth = "edge"): exshim answers the 401s itself
# and reaches exshim-lab backends as the user, against the LDAP-backed KDC (realm_ldap.sh):
#  (a) curl --negotiate (alice's ticket for HTTP/proxy) -> edge, constrained -> the lab's
#      Negotiate-only /mapi: the lab reports alice via Kerberos (S4U2Proxy); the auth trace
#      and the access log name her
#  (b) curl Basic over TLS -> edge, delegation = password: to the NTLM-only /rpc the lab
#      reports LAB\alice via NTLM (NEGOTIATE with Content-Length: 0, the swallowed 401, the
#      AUTHENTICATE with the body); password_mech = kerberos to the Negotiate-only /mapi/nspi:
#      alice via Kerberos; Basic with constrained delegation (S4U2Self+S4U2Proxy) too
#  (c) refusals answered by exshim with nothing at the backend: anonymous (the 401 offers
#      Negotiate and, on TLS only, Basic; never NTLM), a wrong password, a ticket for a
#      foreign SPN, NTLM credentials, Basic on plain HTTP
#  (d) the proxy principal without delegation rights (HTTP/proxy2): a clear 403/502 and a
#      trace line saying why
#  (e) alice and bob interleaved on many connections (Negotiate and Basic, each connection a
#      new handshake, plus user switches on one connection): every response names the user
#      of its own client connection
#  (f) a TLS backend in epa-required with a certificate other than exshim's listener: edge
#      mode passes (channel bindings of the backend certificate: cbt=match at the lab),
#      pass-through mode fails (the client binds to exshim's certificate: cbt=mismatch)
. "$(dirname "$0")/lib.sh"
. "$E2E_DIR/realm.sh"
. "$E2E_DIR/realm_ldap.sh"
need curl openssl kinit
HANDSHAKES=${EDGE_HANDSHAKES:-1000} # (e): connections, half alice's, half bob's

realm_ldap_start LAB.TEST lab.test
realm_users_file "$T/users"
BKT=$REALM_DIR/backend.keytab
lab_start lab_neg negotiate-only-mapi --keytab "$BKT"
NEG_PORT=$LAB_PORT
NEG_LOG=$LAB_LOG
lab_start lab_ntlm ntlm-only-rpc --keytab "$BKT"
NTLM_PORT=$LAB_PORT
NTLM_LOG=$LAB_LOG
self_signed labcert "$BACKEND_HOST"
lab_start lab_epa epa-required --keytab "$BKT" --tls-listen 127.0.0.1:0 \
    --cert "$T/labcert.pem" --key "$T/labcert.key"
EPA_TLS_PORT=$LAB_TLS_PORT
EPA_LOG=$LAB_LOG
[ -n "$EPA_TLS_PORT" ] || fail "the epa lab has no TLS listener"
self_signed edge "$PROXY_HOST"
ALICE_PW='Passw0rd!'
BOB_PW='Secret-2'

# exshim_conf FILE PRINCIPAL KEYTAB ROUTES: a config with a TLS and a plain listener, the
# three labs as backends and the given routes
exshim_conf() {
    cat >"$1" <<EOF
workers = ${WORKERS:-2};
edge = { keytab = "$3"; principal = "$2"; };
listeners = (
  { name = "tls"; address = "127.0.0.1:0";
    tls = { certs = ( { chain = "$T/edge.pem"; key = "$T/edge.key"; } ); }; },
  { name = "plain"; address = "127.0.0.1:0"; }
);
backends = (
  { name = "neg"; servers = [ "127.0.0.1:$NEG_PORT" ]; },
  { name = "ntlm"; servers = [ "127.0.0.1:$NTLM_PORT" ]; },
  { name = "epa"; servers = [ "127.0.0.1:$EPA_TLS_PORT" ];
    tls = { verify = false; sni = "$BACKEND_HOST"; }; }
);
routes = ( $4 );
EOF
}
SPN="backend_spn = \"HTTP@$BACKEND_HOST\"; realm = \"LAB.TEST\"; basic_realm = \"exshim-test\";"
exshim_conf "$T/edge.conf" "$PROXY_SPN" "$REALM_DIR/proxy.keytab" "
  { path = \"/mapi\"; backend = \"neg\"; auth = \"edge\"; edge = { $SPN }; },
  { path = \"/mapi/nspi\"; backend = \"neg\"; auth = \"edge\";
    edge = { $SPN delegation = \"password\"; password_mech = \"kerberos\"; }; },
  { path = \"/rpc\"; backend = \"ntlm\"; auth = \"edge\";
    edge = { $SPN delegation = \"password\"; password_mech = \"ntlm\"; ntlm_domain = \"LAB\"; }; },
  { path = \"/owa\"; backend = \"epa\"; auth = \"edge\"; edge = { $SPN }; }"
# the second instance: HTTP/proxy2 may not delegate; /owa is pass-through to the same epa lab
exshim_conf "$T/px2.conf" "$PROXY2_SPN" "$REALM_DIR/proxy2.keytab" "
  { path = \"/mapi\"; backend = \"neg\"; auth = \"edge\"; edge = { $SPN }; },
  { path = \"/owa\"; backend = \"epa\"; }"
"$EXSHIM" -t -c "$T/edge.conf" >"$T/policy.out" 2>&1 || fail "exshim -t: $(cat "$T/policy.out")"
grep -q '^  auth edge: delegation password (NTLM) to HTTP@backend.lab.test' "$T/policy.out" ||
    fail "exshim -t does not show the edge policy: $(cat "$T/policy.out")"

bg exshim "$EXSHIM" -c "$T/edge.conf" -r "$T/exshim.ready"
wait_file "$T/exshim.ready" 10 || fail "exshim did not become ready: $(tail -5 "$T/exshim.log")"
TLS_PORT=$(listener_port tls)
PLAIN_PORT=$(listener_port plain)
bg px2 "$EXSHIM" -c "$T/px2.conf" -r "$T/px2.ready"
wait_file "$T/px2.ready" 10 || fail "exshim (proxy2) did not become ready: $(tail -5 "$T/px2.log")"
PX2_TLS=$(awk '$1 == "tls" { sub(/.*:/, "", $2); print $2 }' "$T/px2.ready")
PX2_PLAIN=$(awk '$1 == "plain" { sub(/.*:/, "", $2); print $2 }' "$T/px2.ready")
XLOG=$T/exshim.log

R=(--resolve "$PROXY_HOST:$TLS_PORT:127.0.0.1" --resolve "$PROXY_HOST:$PLAIN_PORT:127.0.0.1")
HTTPS=https://$PROXY_HOST:$TLS_PORT
HTTP=http://$PROXY_HOST:$PLAIN_PORT
# req NAME URL CURL-ARGS...: the status in $T/NAME.code, headers in NAME.h, body in NAME.body
req() {
    local name=$1 url=$2
    shift 2
    curl -s -k --max-time 20 "${R[@]}" -D "$T/$name.h" -o "$T/$name.body" -w '%{http_code}' \
        "$@" "$url" >"$T/$name.code" 2>/dev/null
    cat "$T/$name.code"
}
count() { grep -c -- "$2" "$1" 2>/dev/null || true; }
lab_requests() { count "$1" ' access conn='; }
offers() { tr -d '\r' <"$T/$1.h" | awk -F': ' 'tolower($1) == "www-authenticate" { printf "%s,", $2 }'; }

# ---- (a) Negotiate at the edge, S4U2Proxy to a Negotiate-only /mapi -----------------------
echo "$ALICE_PW" | kinit alice >/dev/null 2>&1 || fail "kinit alice"
got=$(req a1 "$HTTP/mapi/emsmdb/" --negotiate -u :)
[ "$got" = 200 ] || fail "(a) curl --negotiate through the edge: $got $(cat "$T/a1.body")"
grep -q 'User: LAB.TEST\\alice<br>' "$T/a1.body" || fail "(a) the lab's page does not name alice: $(cat "$T/a1.body")"
grep -q 'access conn=.* path=/mapi/emsmdb/ vdir=/mapi/emsmdb status=200 user=LAB.TEST\\alice mech=kerberos$' \
    "$NEG_LOG" || fail "(a) the lab did not report alice via Kerberos"
grep -q 'auth sid=[0-9]* route="/mapi" edge scheme=Negotiate mech=spnego/krb5 user="alice@LAB.TEST" path=S4U2Proxy backend_as="alice@LAB.TEST" cached=no backend_status=200 mutual=ok verdict=ok$' \
    "$XLOG" || fail "(a) no auth trace line for alice"
grep -q 'access sid=.* path=/mapi/emsmdb/ status=200 .* auth=Negotiate user="alice@LAB.TEST"$' "$XLOG" ||
    fail "(a) the access log does not name alice"
grep -qi '^www-authenticate: negotiate ' "$T/a1.h" || fail "(a) no mutual-auth token from the edge"
log "ok: (a) curl --negotiate -> edge (constrained) -> Negotiate-only /mapi: the lab says LAB.TEST\\alice via kerberos"

# ---- (b) Basic over TLS, delegation = password ---------------------------------------------
before=$(count "$NTLM_LOG" 'status=200 user=LAB\\alice mech=ntlm$')
got=$(req b1 "$HTTPS/rpc/rpcproxy.dll" -u "alice:$ALICE_PW" -X POST --data-binary 'edge body')
[ "$got" = 200 ] || fail "(b) Basic -> password-NTLM -> NTLM-only /rpc: $got $(cat "$T/b1.body")"
[ "$(count "$NTLM_LOG" 'status=200 user=LAB\\alice mech=ntlm$')" -eq $((before + 1)) ] ||
    fail "(b) the NTLM-only lab did not report LAB\\alice via NTLM"
grep -q 'auth conn=.* vdir=/rpc scheme=NTLM mech=ntlm user=LAB\\alice verdict=ok' "$NTLM_LOG" ||
    fail "(b) no NTLM auth line at the lab"
grep -q 'route="/rpc" edge scheme=Basic mech=basic user="alice@LAB.TEST" path=password-NTLM backend_as="LAB\\alice" .*backend_status=200 mutual=n/a verdict=ok$' \
    "$XLOG" || fail "(b) no password-NTLM trace"
log "ok: (b) Basic over TLS -> password-NTLM -> NTLM-only /rpc (POST with a body): the lab says LAB\\alice via ntlm"

got=$(req b2 "$HTTPS/mapi/nspi/" -u "alice:$ALICE_PW")
[ "$got" = 200 ] || fail "(b) Basic -> password-Kerberos -> /mapi/nspi: $got"
grep -q 'access conn=.* path=/mapi/nspi/ vdir=/mapi/nspi status=200 user=LAB.TEST\\alice mech=kerberos$' \
    "$NEG_LOG" || fail "(b) the Kerberos-only vdir did not report alice via Kerberos"
grep -q 'route="/mapi/nspi" edge scheme=Basic .*path=password-Kerberos .*verdict=ok$' "$XLOG" ||
    fail "(b) no password-Kerberos trace"
got=$(req b3 "$HTTPS/mapi/emsmdb/" -u "alice:$ALICE_PW")
[ "$got" = 200 ] && grep -q 'User: LAB.TEST\\alice<br>' "$T/b3.body" ||
    fail "(b) Basic -> constrained (S4U2Self+S4U2Proxy): $got"
grep -q 'route="/mapi" edge scheme=Basic .*path=S4U2Self+S4U2Proxy .*verdict=ok$' "$XLOG" ||
    fail "(b) no S4U2Self+S4U2Proxy trace"
log "ok: (b) Basic -> password-Kerberos to a Negotiate-only vdir and S4U2Self+S4U2Proxy: alice via kerberos"

# ---- (c) refused at the edge; the backends see nothing ------------------------------------
n_neg=$(lab_requests "$NEG_LOG")
n_ntlm=$(lab_requests "$NTLM_LOG")
got=$(req c1 "$HTTPS/mapi/emsmdb/")
[ "$got" = 401 ] || fail "(c) anonymous over TLS: $got"
[ "$(offers c1)" = 'Negotiate,Basic realm="exshim-test",' ] || fail "(c) TLS offers: $(offers c1)"
got=$(req c2 "$HTTP/mapi/emsmdb/")
[ "$got" = 401 ] || fail "(c) anonymous over plain HTTP: $got"
[ "$(offers c2)" = 'Negotiate,' ] || fail "(c) plain offers (Basic only over TLS): $(offers c2)"
got=$(req c3 "$HTTPS/rpc/rpcproxy.dll" -u "alice:Passw0rd?")
[ "$got" = 401 ] || fail "(c) wrong password: $got"
grep -q 'verdict=refused error="wrong password (the KDC refused it)' "$XLOG" ||
    fail "(c) no trace of the wrong password"
got=$(req c4 "$HTTP/mapi/emsmdb/" -u "alice:$ALICE_PW")
[ "$got" = 403 ] || fail "(c) Basic on plain HTTP: $got"
got=$(req c5 "$HTTPS/mapi/emsmdb/" --ntlm -u "LAB\\alice:$ALICE_PW")
[ "$got" = 401 ] || fail "(c) NTLM at the edge: $got"
grep -qi '^www-authenticate: ntlm' "$T/c5.h" && fail "(c) the edge offered NTLM"
# a ticket for another service (the backend's SPN, as a client pointed past exshim would hold)
got=$(curl -s -o /dev/null -w '%{http_code}' --max-time 20 --negotiate -u : \
    --resolve "$BACKEND_HOST:$PLAIN_PORT:127.0.0.1" "http://$BACKEND_HOST:$PLAIN_PORT/mapi/emsmdb/")
[ "$got" = 401 ] || fail "(c) a ticket for HTTP/$BACKEND_HOST: $got"
klist 2>/dev/null | grep -q "HTTP/$BACKEND_HOST@" || fail "(c) curl did not get a foreign ticket"
grep -q 'edge scheme=Negotiate .*verdict=refused' "$XLOG" || fail "(c) no trace of the foreign ticket"
[ "$(lab_requests "$NEG_LOG")" -eq "$n_neg" ] ||
    fail "(c) the Negotiate lab saw $(($(lab_requests "$NEG_LOG") - n_neg)) refused requests"
[ "$(lab_requests "$NTLM_LOG")" -eq "$n_ntlm" ] || fail "(c) the NTLM lab saw a refused request"
log "ok: (c) anonymous, wrong password, foreign ticket, NTLM, Basic on plain: answered by exshim, 0 requests at the backends"

# ---- (d) a proxy principal without delegation rights ---------------------------------------
n_neg=$(lab_requests "$NEG_LOG")
got=$(curl -s -o "$T/d1.body" -w '%{http_code}' --max-time 20 --negotiate -u : \
    --resolve "$PROXY2_HOST:$PX2_PLAIN:127.0.0.1" "http://$PROXY2_HOST:$PX2_PLAIN/mapi/emsmdb/")
case "$got" in 403 | 502) ;; *) fail "(d) KCD refused: want 403 or 502, got $got" ;; esac
grep -q 'edge scheme=Negotiate .*user="alice@LAB.TEST" path=S4U2Proxy .*verdict=.* error="S4U2Proxy refused: the proxy principal is not allowed to delegate to the backend SPN' \
    "$T/px2.log" || fail "(d) no trace line saying why: $(grep 'auth sid' "$T/px2.log" | tail -2)"
[ "$(lab_requests "$NEG_LOG")" -eq "$n_neg" ] || fail "(d) a refused delegation reached the lab"
log "ok: (d) HTTP/proxy2 without delegation rights: $got ($(tr -d '\n' <"$T/d1.body")), trace says S4U2Proxy refused"

# ---- (e) two users interleaved on many connections -----------------------------------------
export KRB5CCNAME=FILE:$T/alice.cc
echo "$ALICE_PW" | kinit alice >/dev/null 2>&1 || fail "kinit alice (file ccache)"
per=$((HANDSHAKES / 2))
urls() { for i in $(seq 1 "$per"); do printf 'url = "%s/mapi/emsmdb/?n=%d"\n' "$1" "$i"; done; }
urls "$HTTP" >"$T/alice.urls"
urls "$HTTPS" >"$T/bob.urls"
hs0=$(count "$XLOG" 'route="/mapi" edge .*verdict=ok$')
t0=$(date +%s.%N)
# Connection: close makes every request a new client connection, so a new edge handshake
curl -s --max-time 120 --negotiate -u : "${R[@]}" -H 'Connection: close' -K "$T/alice.urls" \
    -w '%{http_code} %{num_connects}\n' >"$T/e_alice.out" 2>&1 &
CA=$!
curl -s -k --max-time 120 -u "bob:$BOB_PW" "${R[@]}" -H 'Connection: close' -K "$T/bob.urls" \
    -w '%{http_code} %{num_connects}\n' >"$T/e_bob.out" 2>&1 &
CB=$!
wait "$CA" "$CB"
t1=$(date +%s.%N)
ok_a=$(count "$T/e_alice.out" 'User: LAB.TEST\\alice<br>')
ok_b=$(count "$T/e_bob.out" 'User: LAB.TEST\\bob<br>')
bad=$(( $(count "$T/e_alice.out" 'User: LAB.TEST\\bob') + $(count "$T/e_bob.out" 'User: LAB.TEST\\alice') ))
[ "$bad" -eq 0 ] || fail "(e) $bad responses named the other connection's user"
[ "$ok_a" -eq "$per" ] && [ "$ok_b" -eq "$per" ] ||
    fail "(e) alice $ok_a/$per, bob $ok_b/$per responses named their own user"
hs=$(( $(count "$XLOG" 'route="/mapi" edge .*user="\(alice\|bob\)@LAB.TEST" .*verdict=ok$') - hs0 ))
[ "$hs" -ge "$HANDSHAKES" ] || fail "(e) only $hs successful edge handshakes in the trace"
# every request went on a client connection of its own
[ "$(count "$T/e_alice.out" '^200 1$')" -eq "$per" ] && [ "$(count "$T/e_bob.out" '^200 1$')" -eq "$per" ] ||
    fail "(e) not every request had a connection of its own"
# one client connection switching users: each response names the user of that request, and
# the switch gets a fresh backend connection (the lab authenticates a new connection)
W='[%{num_connects}]'
got=$(curl -s -k --max-time 20 "${R[@]}" -u "alice:$ALICE_PW" "$HTTPS/mapi/emsmdb/s1" -w "$W" \
    --next -k "${R[@]}" -u "bob:$BOB_PW" "$HTTPS/mapi/emsmdb/s2" -w "$W" \
    --next -k "${R[@]}" -u "alice:$ALICE_PW" "$HTTPS/mapi/emsmdb/s3" -w "$W" |
    grep -o 'User: LAB.TEST\\[a-z]*<br>\|\[[0-9]\]' | tr -d '\n')
[ "$got" = 'User: LAB.TEST\alice<br>[1]User: LAB.TEST\bob<br>[0]User: LAB.TEST\alice<br>[0]' ] ||
    fail "(e) user switches on one connection: $got"
lab_conn() { grep "access conn=.* path=/mapi/emsmdb/s$1 .*status=200" "$NEG_LOG" | sed 's/.*access conn=\([0-9]*\) .*/\1/'; }
c1=$(lab_conn 1) c2=$(lab_conn 2) c3=$(lab_conn 3)
[ -n "$c1" ] && [ -n "$c2" ] && [ -n "$c3" ] && [ "$c1" != "$c2" ] && [ "$c2" != "$c3" ] ||
    fail "(e) a user switch reused the backend connection of the other user (lab conns $c1 $c2 $c3)"
log "ok: (e) $HANDSHAKES connections (alice Negotiate / bob Basic, interleaved), $hs edge handshakes, 0 mismatches in $(echo "$t1 - $t0" | bc) s; user switches on one connection served right"

# ---- (f) Extended Protection at a TLS backend with its own certificate --------------------
unset KRB5CCNAME
echo "$ALICE_PW" | kinit alice >/dev/null 2>&1 || fail "kinit alice"
epa_match() { count "$EPA_LOG" 'vdir=/owa scheme=Negotiate mech=kerberos user=LAB.TEST\\alice verdict=ok cbt=match'; }
before=$(epa_match)
got=$(req f1 "$HTTPS/owa/" --negotiate -u :)
[ "$got" = 200 ] || fail "(f) edge mode to the epa lab: $got"
[ "$(epa_match)" -eq $((before + 1)) ] || fail "(f) the epa lab did not see matching bindings"
got=$(req f2 "$HTTPS/owa/" -u "alice:$ALICE_PW")
[ "$got" = 200 ] && [ "$(epa_match)" -eq $((before + 2)) ] || fail "(f) edge Basic to the epa lab: $got"
log "ok: (f) edge mode through a TLS backend in epa-required (another certificate): 200, cbt=match"
"$PY" "$LABPY/ntlm_http.py" --port "$PX2_TLS" --tls --sni "$PROXY_HOST" --path /owa/ --expect 401 \
    >"$T/f3.out" 2>&1 || fail "(f) pass-through to the epa lab did not fail: $(cat "$T/f3.out")"
grep -q 'vdir=/owa scheme=NTLM mech=ntlm user=LAB\\alice verdict=fail:epa-cbt-mismatch cbt=mismatch' \
    "$EPA_LOG" || fail "(f) the epa lab did not refuse the pass-through bindings as a mismatch"
log "ok: (f) pass-through mode through the same backend: 401, cbt=mismatch (the client bound to exshim's certificate)"

# ---- (g) the worker's acceptor: a failure answers 503 on edge routes until a retry works ---
cp "$REALM_DIR/proxy2.keytab" "$T/late.keytab" # no key for HTTP/proxy (yet)
WORKERS=1 exshim_conf "$T/late.conf" "$PROXY_SPN" "$T/late.keytab" "
  { path = \"/mapi\"; backend = \"neg\"; auth = \"edge\"; edge = { $SPN }; }"
bg late "$EXSHIM" -c "$T/late.conf" -r "$T/late.ready"
wait_file "$T/late.ready" 10 || fail "exshim (late) did not become ready"
LATE=$(awk '$1 == "plain" { sub(/.*:/, "", $2); print $2 }' "$T/late.ready")
LR=(--resolve "$PROXY_HOST:$LATE:127.0.0.1")
n_neg=$(lab_requests "$NEG_LOG")
got=$(curl -s -o /dev/null -w '%{http_code}' --max-time 20 --negotiate -u : "${LR[@]}" \
    "http://$PROXY_HOST:$LATE/mapi/emsmdb/")
[ "$got" = 503 ] || fail "(g) edge route without the proxy's credential: want 503, got $got"
grep -q "edge: cannot acquire the credential of $PROXY_SPN from $T/late.keytab: .*edge routes answer 503" \
    "$T/late.log" || fail "(g) no log line for the acceptor failure"
cp "$REALM_DIR/proxy.keytab" "$T/late.keytab"
# within the retry interval the worker does not ask the KDC again
got=$(curl -s -o /dev/null -w '%{http_code}' --max-time 20 --negotiate -u : "${LR[@]}" \
    "http://$PROXY_HOST:$LATE/mapi/emsmdb/")
[ "$got" = 503 ] || fail "(g) a request inside the retry interval: want 503, got $got"
[ "$(grep -c 'edge: cannot acquire' "$T/late.log")" -eq 1 ] || fail "(g) retried inside the interval"
for _ in $(seq 1 40); do
    got=$(curl -s -o /dev/null -w '%{http_code}' --max-time 20 --negotiate -u : "${LR[@]}" \
        "http://$PROXY_HOST:$LATE/mapi/emsmdb/")
    [ "$got" = 200 ] && break
    sleep 0.25
done
[ "$got" = 200 ] || fail "(g) the acceptor was not acquired again after the keytab was fixed: $got"
grep -q 'edge: acceptor HTTP/proxy.lab.test@LAB.TEST ready' "$T/late.log" || fail "(g) no ready line"
[ "$(lab_requests "$NEG_LOG")" -eq $((n_neg + 1)) ] || fail "(g) a 503 reached the backend"
log "ok: (g) no proxy credential: 503 and one log line; after the keytab is fixed the retry (5 s later) succeeds: 200"

grep -Eq 'Passw0rd|Secret-2' "$XLOG" "$T/px2.log" "$T/late.log" && fail "a password reached exshim's log"
grep -Eq 'Authorization: (Negotiate|Basic) ' "$NEG_LOG" "$NTLM_LOG" "$EPA_LOG" 2>/dev/null &&
    fail "a lab logged an Authorization value"
pass "Negotiate and Basic at the edge; S4U2Proxy, S4U2Self, password-Kerberos, password-NTLM to the lab; refusals local; $HANDSHAKES interleaved connections; EPA"
