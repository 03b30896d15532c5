#!/bin/bash
# TLS policy at the listener and toward TLS backends, checked with openssl s_client and curl:
#  - the full chain (leaf + intermediate) is served; SNI picks the second certificate;
#  - TLS 1.1 is refused on a default listener (and the refusal is logged with its reason), and
#    accepted on a listener that asks for legacy clients (min_protocol TLSv1.0);
#  - ALPN: http/1.1 is selected, an h2-only client gets no ALPN;
#  - SSL bridging: a verified TLS backend works; one whose certificate the CA did not sign
#    gets a 502 naming the backend; at start-up exshim warns when a TLS backend presents a
#    different certificate from the listener's (Extended Protection, F11), and not when same.
. "$(dirname "$0")/lib.sh"
. "$E2E_DIR/realm.sh"
need openssl curl

# A small PKI: root CA -> intermediate -> leaf "mail.contoso.test"; and a second leaf for SNI.
mk() { openssl "$@" >/dev/null 2>&1 || fail "openssl $1 failed"; }
cd "$T" || fail "no temp dir"
mk req -x509 -newkey rsa:2048 -nodes -keyout root.key -out root.pem -days 2 -subj "/CN=Test Root"
mk req -newkey rsa:2048 -nodes -keyout int.key -out int.csr -subj "/CN=Test Intermediate"
printf 'basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\n' >ca.ext
mk x509 -req -in int.csr -CA root.pem -CAkey root.key -CAcreateserial -out int.pem -days 2 -extfile ca.ext
leaf() { # leaf NAME CN
    mk req -newkey rsa:2048 -nodes -keyout "$1.key" -out "$1.csr" -subj "/CN=$2"
    printf 'subjectAltName=DNS:%s\nextendedKeyUsage=serverAuth\n' "$2" >"$1.ext"
    mk x509 -req -in "$1.csr" -CA int.pem -CAkey int.key -CAcreateserial -out "$1.crt" -days 2 -extfile "$1.ext"
    cat "$1.crt" int.pem >"$1.chain"
}
leaf mail mail.contoso.test
leaf legacy autodiscover.contoso.test
leaf other other.contoso.test
cat root.pem >ca.pem

# TLS backends: the lab serving the listener's own certificate, and one with another cert.
lab_start lab_same default --tls-listen 127.0.0.1:0 --cert "$T/mail.chain" --key "$T/mail.key"
SAME_TLS=$LAB_TLS_PORT
lab_start lab_other default --tls-listen 127.0.0.1:0 --cert "$T/other.chain" --key "$T/other.key"
OTHER_TLS=$LAB_TLS_PORT
self_signed rogue rogue.contoso.test
lab_start lab_rogue default --tls-listen 127.0.0.1:0 --cert "$T/rogue.pem" --key "$T/rogue.key"
ROGUE_TLS=$LAB_TLS_PORT

cat >"$T/exshim.conf" <<EOF
workers = 1;
listeners = (
  { name = "modern"; address = "127.0.0.1:0";
    tls = { certs = ( { chain = "mail.chain"; key = "mail.key"; },
                      { chain = "legacy.chain"; key = "legacy.key"; } ); }; },
  { name = "legacy"; address = "127.0.0.1:0";
    tls = { certs = ( { chain = "mail.chain"; key = "mail.key"; } ); min_protocol = "TLSv1.0"; }; }
);
backends = (
  { name = "same"; servers = [ "127.0.0.1:$SAME_TLS" ];
    tls = { ca = "ca.pem"; sni = "mail.contoso.test"; }; },
  { name = "other"; servers = [ "127.0.0.1:$OTHER_TLS" ];
    tls = { ca = "ca.pem"; sni = "other.contoso.test"; }; },
  { name = "rogue"; servers = [ "127.0.0.1:$ROGUE_TLS" ];
    tls = { ca = "ca.pem"; sni = "rogue.contoso.test"; }; }
);
routes = (
  { path = "/rpc"; backend = "same"; },
  { path = "/mapi"; backend = "other"; },
  { path = "/owa"; backend = "rogue"; }
);
EOF
start_exshim "$T/exshim.conf"
MP=$(listener_port modern)
LP=$(listener_port legacy)

# Extended Protection check at start-up: a warning for /mapi (other certificate), none for /rpc.
grep -q 'route /mapi: backend other .* presents a different certificate than listener modern' "$T/exshim.log" ||
    fail "no start-up warning for a backend with another certificate"
grep -q 'route /rpc: backend same .* different certificate' "$T/exshim.log" &&
    fail "warned about a backend presenting the same certificate"
log "ok: start-up certificate comparison (F11) warns for /mapi only"

# The full chain is served: two certificates, leaf then intermediate.
echo | openssl s_client -connect "127.0.0.1:$MP" -servername mail.contoso.test -showcerts \
    2>/dev/null >"$T/chain.txt"
[ "$(grep -c 'BEGIN CERTIFICATE' "$T/chain.txt")" -eq 2 ] || fail "chain not served: $(grep -c 'BEGIN CERTIFICATE' "$T/chain.txt") certs"
echo | openssl s_client -connect "127.0.0.1:$MP" -servername mail.contoso.test -CAfile ca.pem \
    -verify_return_error -verify_hostname mail.contoso.test 2>&1 | grep -q 'Verify return code: 0 (ok)' ||
    fail "chain does not verify against the root"
log "ok: leaf + intermediate served and verified"

# SNI picks the second certificate.
subj=$(echo | openssl s_client -connect "127.0.0.1:$MP" -servername autodiscover.contoso.test 2>/dev/null |
    openssl x509 -noout -subject 2>/dev/null)
case "$subj" in *autodiscover.contoso.test*) ;; *) fail "SNI did not select the second certificate: $subj" ;; esac
subj=$(echo | openssl s_client -connect "127.0.0.1:$MP" -servername unknown.test 2>/dev/null |
    openssl x509 -noout -subject 2>/dev/null)
case "$subj" in *mail.contoso.test*) ;; *) fail "unknown SNI did not get the default certificate: $subj" ;; esac
log "ok: SNI selects the certificate, the first is the default"

# Protocol range: TLS 1.1 refused on the modern listener (and logged), accepted on the legacy one.
echo | openssl s_client -connect "127.0.0.1:$MP" -tls1_1 -cipher 'DEFAULT@SECLEVEL=0' >"$T/t11.txt" 2>&1
grep -q '^New, (NONE)' "$T/t11.txt" || fail "modern listener accepted TLS 1.1"
wait_log "$T/exshim.log" 'TLS error: .*(unsupported protocol|version)' 5 ||
    fail "the refused handshake was not logged with its reason"
echo | openssl s_client -connect "127.0.0.1:$LP" -tls1_1 -cipher 'DEFAULT@SECLEVEL=0' >"$T/l11.txt" 2>&1
grep -q '^New, TLS' "$T/l11.txt" && grep -q 'Protocol  *: TLSv1.1$' "$T/l11.txt" || fail "legacy listener refused TLS 1.1: $(grep -i error "$T/l11.txt" | head -2)"
echo | openssl s_client -connect "127.0.0.1:$LP" -tls1 -cipher 'DEFAULT@SECLEVEL=0' >"$T/l10.txt" 2>&1
grep -q '^New, TLS' "$T/l10.txt" && grep -q 'Protocol  *: TLSv1$' "$T/l10.txt" || fail "legacy listener refused TLS 1.0"
log "ok: TLS 1.1 refused by default (logged), TLS 1.0/1.1 on the legacy listener"

# ALPN: http/1.1 only.
echo | openssl s_client -connect "127.0.0.1:$MP" -alpn h2,http/1.1 2>/dev/null | grep -q 'ALPN protocol: http/1.1' ||
    fail "http/1.1 not selected by ALPN"
echo | openssl s_client -connect "127.0.0.1:$MP" -alpn h2 2>/dev/null | grep -q 'No ALPN negotiated' ||
    fail "h2 was negotiated"
log "ok: ALPN selects http/1.1, never h2"

# SSL bridging through a verified backend, and a backend that fails verification.
R=(--cacert "$T/ca.pem" --resolve "mail.contoso.test:$MP:127.0.0.1")
expect_code "verified TLS backend" 200 "https://mail.contoso.test:$MP/rpc/rpcproxy.dll" "${R[@]}" \
    --ntlm -u 'LAB\alice:Passw0rd!'
curl -s -o "$T/rogue.body" -w '%{http_code}' "${R[@]}" "https://mail.contoso.test:$MP/owa/" >"$T/rogue.code"
[ "$(cat "$T/rogue.code")" = 502 ] || fail "unverifiable backend: expected 502, got $(cat "$T/rogue.code")"
grep -q 'rogue' "$T/rogue.body" || fail "502 body does not name the backend: $(cat "$T/rogue.body")"
grep -q 'backend rogue .*certificate verify failed' "$T/exshim.log" || fail "verification failure not logged"
log "ok: SSL bridging verified; an unverifiable backend gets 502 naming it"
pass "chain, SNI, protocol range, ALPN, bridging, certificate comparison"
