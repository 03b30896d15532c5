#!/bin/bash
# exshim-probe's TLS step (F9) against the lab serving chosen certificates, with a private PKI
# (root -> intermediate -> leaf): a complete chain passes; a leaf served without its
# intermediate, an expired leaf, a name the certificate does not carry, a wrong msstd:
# principal and an untrusted self-signed certificate are each named; --insecure stops judging
# the chain; TLS 1.0/1.1 are reported refused by the lab and accepted by an exshim listener
# with min_protocol TLSv1.0.
. "$(dirname "$0")/lib.sh"
. "$E2E_DIR/realm.sh"
need openssl
PROBE=${PROBE:-$BUILD/exshim-probe}
[ -x "$PROBE" ] || skip "exshim-probe not built ($PROBE)"
mk() { openssl "$@" >/dev/null 2>&1 || fail "openssl $1 failed"; }
cd "$T" || fail "no temp dir"
mk req -x509 -newkey rsa:2048 -nodes -keyout root.key -out root.pem -days 2 -subj "/CN=Probe Root"
mk req -newkey rsa:2048 -nodes -keyout int.key -out int.csr -subj "/CN=Probe Intermediate"
printf 'basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\n' >ca.ext
mk x509 -req -in int.csr -CA root.pem -CAkey root.key -CAcreateserial -out int.pem -days 2 -extfile ca.ext
mk req -newkey rsa:2048 -nodes -keyout mail.key -out mail.csr -subj "/CN=mail.contoso.test"
printf 'subjectAltName=DNS:mail.contoso.test,DNS:autodiscover.contoso.test\nextendedKeyUsage=serverAuth\n' >mail.ext
mk x509 -req -in mail.csr -CA int.pem -CAkey int.key -CAcreateserial -out mail.crt -days 2 -extfile mail.ext
cat mail.crt int.pem >mail.chain
# the same key and names, valid only in 2020
"$PY" - <<'PYEOF' || fail "could not make the expired certificate"
import datetime
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
load = lambda f: open(f, "rb").read()
key = serialization.load_pem_private_key(load("mail.key"), None)
ikey = serialization.load_pem_private_key(load("int.key"), None)
icert = x509.load_pem_x509_certificate(load("int.pem"))
name = x509.Name([x509.NameAttribute(x509.oid.NameOID.COMMON_NAME, "mail.contoso.test")])
c = (x509.CertificateBuilder().subject_name(name).issuer_name(icert.subject)
     .public_key(key.public_key()).serial_number(x509.random_serial_number())
     .not_valid_before(datetime.datetime(2020, 1, 1)).not_valid_after(datetime.datetime(2020, 1, 2))
     .add_extension(x509.SubjectAlternativeName([x509.DNSName("mail.contoso.test")]), False)
     .sign(ikey, hashes.SHA256()))
open("expired.chain", "wb").write(c.public_bytes(serialization.Encoding.PEM) + load("int.pem"))
PYEOF
self_signed selfsigned mail.contoso.test

# probe_tls NAME PORT HOST [ARGS...]: --only tls; prints "FINDINGS exit=N"
probe_tls() {
    local name=$1 port=$2 host=$3 rc ids
    shift 3
    timeout 60 "$PROBE" "https://$host:$port" --resolve "$host:$port:127.0.0.1" --only tls \
        --timeout 5s "$@" >"$T/probe-$name.out" 2>&1
    rc=$?
    ids=$(awk '/^(FAIL|WARN) [A-Za-z0-9]+ \[/ { print $1 ":" $2 }' "$T/probe-$name.out" | sort -u | tr '\n' ' ')
    echo "${ids:-- }exit=$rc"
}
expect() { # expect NAME GOT WANT [GREP-PATTERN]
    [ "$2" = "$3" ] || { cat "$T/probe-$1.out"; fail "$1: got '$2' want '$3'"; }
    if [ -n "${4:-}" ]; then
        grep -q -- "$4" "$T/probe-$1.out" || { cat "$T/probe-$1.out"; fail "$1: no '$4' in the output"; }
    fi
    log "ok: $1: $2"
}

M=mail.contoso.test
lab_start lab_full default --tls-listen 127.0.0.1:0 --cert "$T/mail.chain" --key "$T/mail.key"
expect full "$(probe_tls full "$LAB_TLS_PORT" $M --ca root.pem --msstd msstd:$M)" "- exit=0" \
    '^pass  -  *chain .*2 certificates served.*trusted'
grep -q '^pass  -  *tls versions .*accepted: TLS 1.2, 1.3; refused: 1.0, 1.1' "$T/probe-full.out" ||
    fail "the lab's TLS versions were not reported"
grep -q '^pass  -  *msstd ' "$T/probe-full.out" || fail "msstd: not checked"
expect msstd "$(probe_tls msstd "$LAB_TLS_PORT" $M --ca root.pem --msstd msstd:owa.contoso.test)" \
    "FAIL:F9 exit=1" 'principal name (msstd:) matches neither'
expect name "$(probe_tls name "$LAB_TLS_PORT" owa.contoso.test --ca root.pem)" "FAIL:F9 exit=1" \
    'does not name owa.contoso.test'
expect alt "$(probe_tls alt "$LAB_TLS_PORT" autodiscover.contoso.test --ca root.pem)" "- exit=0"
expect untrusted "$(probe_tls untrusted "$LAB_TLS_PORT" $M)" "FAIL:F9 exit=1" 'not trusted'
expect insecure "$(probe_tls insecure "$LAB_TLS_PORT" $M --insecure)" "- exit=0" \
    '^warn  -  *chain .*not judged (--insecure)'
lab_stop

lab_start lab_leaf default --tls-listen 127.0.0.1:0 --cert "$T/mail.crt" --key "$T/mail.key"
expect leafonly "$(probe_tls leafonly "$LAB_TLS_PORT" $M --ca root.pem)" "FAIL:F9 exit=1" \
    'incomplete: the issuer of the leaf is neither sent nor trusted'
lab_stop

lab_start lab_expired default --tls-listen 127.0.0.1:0 --cert "$T/expired.chain" --key "$T/mail.key"
expect expired "$(probe_tls expired "$LAB_TLS_PORT" $M --ca root.pem)" "FAIL:F9 exit=1" \
    'the server certificate has expired'
lab_stop

lab_start lab_self default --tls-listen 127.0.0.1:0 --cert "$T/selfsigned.pem" --key "$T/selfsigned.key"
expect selfsigned "$(probe_tls selfsigned "$LAB_TLS_PORT" $M --ca "$T/selfsigned.pem")" "- exit=0"
lab_stop

# an exshim listener for legacy clients accepts TLS 1.0 and 1.1 (min_protocol TLSv1.0)
if [ -x "$EXSHIM" ]; then
    lab_start lab_be default
    cat >"$T/exshim.conf" <<EOC
workers = 1;
listeners = ( { name = "legacy"; address = "127.0.0.1:0";
    tls = { certs = ( { chain = "mail.chain"; key = "mail.key"; } ); min_protocol = "TLSv1.0"; }; } );
backends = ( { name = "lab"; servers = [ "127.0.0.1:$LAB_PORT" ]; } );
routes = ( { path = "default"; backend = "lab"; } );
EOC
    start_exshim "$T/exshim.conf"
    expect legacy "$(probe_tls legacy "$(listener_port legacy)" $M --ca root.pem)" "- exit=0" \
        'accepted: TLS 1.0, 1.1, 1.2, 1.3; refused: none'
fi
pass "complete chain passes; missing intermediate, expiry, name, msstd, trust named (F9)"
