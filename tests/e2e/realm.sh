# A throwaway MIT Kerberos realm on 127.0.0.1 for end-to-end tests. Source it after lib.sh:
#   . "$E2E_DIR/realm.sh"
#   realm_start [REALM] [SERVICE_HOST]
# realm_start writes krb5.conf and kdc.conf under $T/krb5, creates the database, adds the
# user principals alice and bob (passwords as in the lab's users file) and HTTP/SERVICE_HOST,
# exports the service key to a keytab, starts `krb5kdc -n` on a free port and kinits alice.
# It exports KRB5_CONFIG, KRB5_KDC_PROFILE, KRB5CCNAME (alice's ticket cache), KRB5_KTNAME
# (the HTTP service keytab, for the lab's acceptor) and KRB5RCACHETYPE=none, plus
# REALM, REALM_HOST, KDC_PORT and REALM_DIR. The KDC runs under lib.sh's bg, so it is stopped
# with the test. With rdns and hostname canonicalisation off, the SPN is the URL's host name as
# typed, so `curl --resolve HOST:PORT:127.0.0.1` is all a client needs.

# The user file matching the realm's principals (NTLM/Basic for the lab, gss-ntlmssp).
realm_users_file() {
    local f=$1
    printf '%s\n' 'LAB:alice:Passw0rd!' 'LAB:bob:Secret-2' >"$f"
}

realm_start() {
    need krb5kdc kdb5_util kadmin.local kinit klist
    REALM=${1:-LAB.TEST}
    REALM_HOST=${2:-exlab01.lab.test}
    REALM_DIR=$T/krb5
    mkdir -p "$REALM_DIR"
    KDC_PORT=$(free_port)
    cat >"$REALM_DIR/krb5.conf" <<EOF
[libdefaults]
    default_realm = $REALM
    dns_lookup_kdc = false
    dns_lookup_realm = false
    rdns = false
    dns_canonicalize_hostname = false
    udp_preference_limit = 1
    ticket_lifetime = 1h
[realms]
    $REALM = {
        kdc = 127.0.0.1:$KDC_PORT
    }
[domain_realm]
    .lab.test = $REALM
    lab.test = $REALM
EOF
    cat >"$REALM_DIR/kdc.conf" <<EOF
[kdcdefaults]
    kdc_ports = $KDC_PORT
    kdc_tcp_ports = $KDC_PORT
[realms]
    $REALM = {
        database_name = $REALM_DIR/principal
        key_stash_file = $REALM_DIR/stash
        acl_file = $REALM_DIR/kadm5.acl
        supported_enctypes = aes256-cts-hmac-sha1-96:normal aes128-cts-hmac-sha1-96:normal
        max_life = 1h
    }
[logging]
    kdc = FILE:$REALM_DIR/kdc.log
EOF
    : >"$REALM_DIR/kadm5.acl"
    export KRB5_CONFIG=$REALM_DIR/krb5.conf
    export KRB5_KDC_PROFILE=$REALM_DIR/kdc.conf
    export KRB5CCNAME=FILE:$REALM_DIR/alice.ccache
    export KRB5_KTNAME=FILE:$REALM_DIR/http.keytab
    export KRB5RCACHETYPE=none
    kdb5_util create -s -r "$REALM" -P "kdc-master-$$" >"$REALM_DIR/setup.log" 2>&1 ||
        fail "kdb5_util create failed: $(cat "$REALM_DIR/setup.log")"
    local q
    for q in "addprinc -pw Passw0rd! alice" "addprinc -pw Secret-2 bob" \
        "addprinc -randkey HTTP/$REALM_HOST" \
        "ktadd -k $REALM_DIR/http.keytab -norandkey HTTP/$REALM_HOST" \
        "ktadd -k $REALM_DIR/alice.keytab -norandkey alice"; do
        kadmin.local -r "$REALM" -q "$q" >>"$REALM_DIR/setup.log" 2>&1 ||
            fail "kadmin.local '$q' failed"
    done
    bg krb5kdc krb5kdc -n
    wait_port "$KDC_PORT" 10 || fail "krb5kdc did not start (see $T/krb5kdc.log)"
    kinit -k -t "$REALM_DIR/alice.keytab" alice >>"$REALM_DIR/setup.log" 2>&1 ||
        fail "kinit alice failed: $(tail -3 "$REALM_DIR/setup.log")"
}

# realm_empty_ccache: prints a ccache name holding no ticket (for SPNEGO falling back to NTLM).
realm_empty_ccache() {
    echo "FILE:$T/no-ticket.ccache"
}

# ---- exshim-lab helpers (used by the t4*_lab_*.sh tests) ----------------------------------

# lab_start NAME PRESET [EXTRA ARGS...]: starts exshim-lab with conf/lab/PRESET.conf and the
# users file $T/users (written if missing), on a plain port (and a TLS one when the extra
# args contain --tls-listen). Sets LAB_PORT, LAB_TLS_PORT (empty without TLS) and LAB_LOG.
lab_start() {
    local name=$1 preset=$2
    shift 2
    [ -x "$EXSHIM_LAB" ] || skip "exshim-lab not built ($EXSHIM_LAB)"
    [ -s "$T/users" ] || realm_users_file "$T/users"
    rm -f "$T/$name.ready"
    bg "$name" "$EXSHIM_LAB" --preset "$preset" --conf-dir "$TOP/conf/lab" --users "$T/users" \
        --listen 127.0.0.1:0 --ready-file "$T/$name.ready" "$@"
    LAB_PID=$LAST_PID
    wait_file "$T/$name.ready" 10 || fail "exshim-lab ($preset) did not become ready"
    LAB_PORT=$(awk '$1 == "plain" { sub(/.*:/, "", $2); print $2; exit }' "$T/$name.ready")
    LAB_TLS_PORT=$(awk '$1 == "tls" { sub(/.*:/, "", $2); print $2; exit }' "$T/$name.ready")
    LAB_LOG=$T/$name.log
}

# lab_stop: stops the lab started last (its log stays in $T).
lab_stop() {
    kill "$LAB_PID" 2>/dev/null
    timeout 5 tail --pid="$LAB_PID" -f /dev/null 2>/dev/null || kill -9 "$LAB_PID" 2>/dev/null
}

# code URL CURL-ARGS...: prints the HTTP status curl got (000 on connection failure).
code() {
    local url=$1
    shift
    curl -s -o /dev/null -w '%{http_code}' --max-time 15 "$@" "$url" 2>/dev/null
}

# expect_code WHAT WANT URL CURL-ARGS...: fails the test unless curl gets WANT.
expect_code() {
    local what=$1 want=$2 got
    shift 2
    got=$(code "$@")
    [ "$got" = "$want" ] || fail "$what: expected $want, got $got"
    log "ok: $what -> $got"
}

# header_names FILE: the header names of a response dumped by curl -D, in order, one line.
header_names() {
    tr -d '\r' <"$1" | awk 'NR > 1 && /:/ { sub(/:.*/, ""); printf "%s ", $0 }' | sed 's/ $//'
}

export LABPY="$E2E_DIR/clients"
