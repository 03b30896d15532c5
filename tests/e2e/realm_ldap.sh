# An MIT Kerberos realm whose database lives in a private OpenLDAP (slapd) instance, for the
# tests of constrained delegation (S4U2Proxy) and protocol transition (S4U2Self): only the LDAP
# database module implements the KDC's "may this proxy delegate to that service" check
# (krbAllowedToDelegateTo); the stock DB2 module refuses every S4U2Proxy request
# (shared DELEGATION.md). Source it after lib.sh:
#   . "$E2E_DIR/realm_ldap.sh"
#   realm_ldap_start [REALM] [DOMAIN]
#   ...
#   realm_ldap_stop            (also done by lib.sh's cleanup: both daemons run under bg)
#
# Everything lives under $T/krb5ldap: slapd with its own cn=config (slapd.d), listening on a
# unix socket only (ldapi://), an mdb database, schemas core + kerberos (from krb5-kdc-ldap);
# the KDC binds with SASL EXTERNAL over that socket. Principals (passwords as in the lab's
# users file, realm_users_file):
#   alice (Passw0rd!), bob (Secret-2)
#   HTTP/proxy.DOMAIN    +ok_to_auth_as_delegate, krbAllowedToDelegateTo HTTP/backend.DOMAIN
#   HTTP/proxy2.DOMAIN   +ok_to_auth_as_delegate, no krbAllowedToDelegateTo (delegation refused)
#   HTTP/backend.DOMAIN
# Keytabs: $REALM_DIR/{proxy,proxy2,backend}.keytab. krb5kdc listens on its own loopback port.
# Exports KRB5_CONFIG, KRB5_KDC_PROFILE, KRB5CCNAME (an empty cache: kinit is up to the test),
# KRB5RCACHETYPE=none, and REALM, REALM_DIR, KDC_PORT, PROXY_HOST, PROXY2_HOST, BACKEND_HOST,
# PROXY_SPN, PROXY2_SPN, BACKEND_SPN (principal names with the realm).
# With rdns and hostname canonicalisation off, an SPN is the host name exactly as typed.

realm_ldap_start() {
    need slapd slapadd ldapmodify ldapsearch kdb5_ldap_util krb5kdc kadmin.local kinit
    compgen -G "/usr/lib/*/krb5/plugins/kdb/kldap.so" >/dev/null || skip "krb5-kdc-ldap not installed"
    local schema_gz=/usr/share/doc/krb5-kdc-ldap/kerberos.openldap.ldif.gz
    [ -f "$schema_gz" ] || skip "kerberos.openldap.ldif (krb5-kdc-ldap) missing"
    REALM=${1:-LAB.TEST}
    local domain=${2:-lab.test}
    REALM_DIR=$T/krb5ldap
    PROXY_HOST=proxy.$domain
    PROXY2_HOST=proxy2.$domain
    BACKEND_HOST=backend.$domain
    PROXY_SPN=HTTP/$PROXY_HOST@$REALM
    PROXY2_SPN=HTTP/$PROXY2_HOST@$REALM
    BACKEND_SPN=HTTP/$BACKEND_HOST@$REALM
    local d=$REALM_DIR suffix="dc=${domain//./,dc=}"
    mkdir -p "$d/slapd.d" "$d/db"
    # ldapi:// takes the socket path percent-encoded
    local sock=$d/ldapi
    LDAP_URI="ldapi://${sock//\//%2F}"
    local peer='gidNumber=0+uidNumber=0,cn=peercred,cn=external,cn=auth'
    [ "$(id -u)" -eq 0 ] || peer="gidNumber=$(id -g)+uidNumber=$(id -u),cn=peercred,cn=external,cn=auth"
    zcat "$schema_gz" >"$d/kerberos.ldif"
    cat >"$d/config.ldif" <<EOF
dn: cn=config
objectClass: olcGlobal
cn: config
olcPidFile: $d/slapd.pid

dn: cn=module{0},cn=config
objectClass: olcModuleList
cn: module{0}
olcModulePath: /usr/lib/ldap
olcModuleLoad: back_mdb

dn: cn=schema,cn=config
objectClass: olcSchemaConfig
cn: schema

include: file:///etc/ldap/schema/core.ldif
include: file://$d/kerberos.ldif

dn: olcDatabase={0}config,cn=config
objectClass: olcDatabaseConfig
olcDatabase: {0}config
olcAccess: to * by dn.exact=$peer manage by * none

dn: olcDatabase={1}mdb,cn=config
objectClass: olcDatabaseConfig
objectClass: olcMdbConfig
olcDatabase: {1}mdb
olcSuffix: $suffix
olcRootDN: $peer
olcDbDirectory: $d/db
olcDbMaxSize: 67108864
olcDbIndex: objectClass eq
olcDbIndex: krbPrincipalName eq,pres,sub
olcAccess: to * by dn.exact=$peer manage by * none
EOF
    slapadd -n 0 -F "$d/slapd.d" -l "$d/config.ldif" >"$d/setup.log" 2>&1 ||
        fail "slapadd cn=config failed: $(tail -5 "$d/setup.log")"
    local dc=${domain%%.*}
    printf 'dn: %s\nobjectClass: dcObject\nobjectClass: organization\ndc: %s\no: %s\n' \
        "$suffix" "$dc" "$domain" >"$d/base.ldif"
    slapadd -n 1 -F "$d/slapd.d" -l "$d/base.ldif" >>"$d/setup.log" 2>&1 ||
        fail "slapadd base entry failed: $(tail -5 "$d/setup.log")"
    # -d 0: stay in the foreground (no fork), so lib.sh's bg owns the process
    bg slapd slapd -d 0 -F "$d/slapd.d" -h "$LDAP_URI"
    REALM_SLAPD_PID=$LAST_PID
    local n=200
    until ldapsearch -Q -LLL -Y EXTERNAL -H "$LDAP_URI" -b "$suffix" -s base dn >/dev/null 2>&1; do
        n=$((n - 1))
        [ "$n" -gt 0 ] || fail "slapd did not start (see $T/slapd.log)"
        kill -0 "$REALM_SLAPD_PID" 2>/dev/null || fail "slapd exited: $(tail -5 "$T/slapd.log")"
        sleep 0.05
    done

    KDC_PORT=$(free_port)
    cat >"$d/krb5.conf" <<EOF
[libdefaults]
    default_realm = $REALM
    dns_lookup_kdc = false
    dns_lookup_realm = false
    rdns = false
    dns_canonicalize_hostname = false
    udp_preference_limit = 1
    forwardable = true
    ticket_lifetime = 1h
[realms]
    $REALM = {
        kdc = 127.0.0.1:$KDC_PORT
        database_module = ldapdb
    }
[domain_realm]
    .$domain = $REALM
    $domain = $REALM
[dbmodules]
    ldapdb = {
        db_library = kldap
        ldap_servers = $LDAP_URI
        ldap_kerberos_container_dn = cn=krbContainer,$suffix
        ldap_kdc_sasl_mech = EXTERNAL
        ldap_kadmind_sasl_mech = EXTERNAL
        ldap_conns_per_server = 2
    }
EOF
    cat >"$d/kdc.conf" <<EOF
[kdcdefaults]
    kdc_ports = $KDC_PORT
    kdc_tcp_ports = $KDC_PORT
[realms]
    $REALM = {
        database_module = ldapdb
        key_stash_file = $d/stash
        acl_file = $d/kadm5.acl
        supported_enctypes = aes256-cts-hmac-sha1-96:normal aes128-cts-hmac-sha1-96:normal
        max_life = 1h
    }
[logging]
    kdc = FILE:$d/kdc.log
EOF
    : >"$d/kadm5.acl"
    export KRB5_CONFIG=$d/krb5.conf
    export KRB5_KDC_PROFILE=$d/kdc.conf
    export KRB5CCNAME=FILE:$d/default.ccache
    export KRB5RCACHETYPE=none
    unset KRB5_KTNAME KRB5_CLIENT_KTNAME
    kdb5_ldap_util -H "$LDAP_URI" create -subtrees "$suffix" -r "$REALM" -s \
        -P "kdc-master-$$" >>"$d/setup.log" 2>&1 ||
        fail "kdb5_ldap_util create failed: $(tail -5 "$d/setup.log")"
    local q
    for q in "addprinc -pw Passw0rd! alice" "addprinc -pw Secret-2 bob" \
        "addprinc -randkey +ok_to_auth_as_delegate HTTP/$PROXY_HOST" \
        "addprinc -randkey +ok_to_auth_as_delegate HTTP/$PROXY2_HOST" \
        "addprinc -randkey HTTP/$BACKEND_HOST" \
        "ktadd -k $d/proxy.keytab -norandkey HTTP/$PROXY_HOST" \
        "ktadd -k $d/proxy2.keytab -norandkey HTTP/$PROXY2_HOST" \
        "ktadd -k $d/backend.keytab -norandkey HTTP/$BACKEND_HOST"; do
        kadmin.local -r "$REALM" -q "$q" >>"$d/setup.log" 2>&1 ||
            fail "kadmin.local '$q' failed: $(tail -3 "$d/setup.log")"
    done
    realm_ldap_allow_delegation "HTTP/$PROXY_HOST" "$BACKEND_SPN"
    bg krb5kdc krb5kdc -n
    REALM_KDC_PID=$LAST_PID
    wait_port "$KDC_PORT" 10 || fail "krb5kdc did not start (see $T/krb5kdc.log, $d/kdc.log)"
}

# realm_ldap_allow_delegation PRINCIPAL TARGET...: sets krbAllowedToDelegateTo on PRINCIPAL's
# entry to the TARGET service principals (replacing any earlier list).
realm_ldap_allow_delegation() {
    local p=$1 dn t
    shift
    case "$p" in *@*) ;; *) p=$p@$REALM ;; esac
    dn=$(ldapsearch -Q -LLL -o ldif-wrap=no -Y EXTERNAL -H "$LDAP_URI" -b "" -s base \
        namingContexts 2>/dev/null | sed -n 's/^namingContexts: //p' | head -n 1)
    dn=$(ldapsearch -Q -LLL -o ldif-wrap=no -Y EXTERNAL -H "$LDAP_URI" -b "$dn" \
        "(krbPrincipalName=$p)" dn 2>/dev/null | sed -n 's/^dn: //p' | head -n 1)
    [ -n "$dn" ] || fail "no LDAP entry for $p"
    {
        printf 'dn: %s\nchangetype: modify\nreplace: krbAllowedToDelegateTo\n' "$dn"
        for t in "$@"; do printf 'krbAllowedToDelegateTo: %s\n' "$t"; done
    } | ldapmodify -Q -Y EXTERNAL -H "$LDAP_URI" >>"$REALM_DIR/setup.log" 2>&1 ||
        fail "ldapmodify krbAllowedToDelegateTo on $p failed: $(tail -3 "$REALM_DIR/setup.log")"
}

# realm_ldap_stop: stops krb5kdc and slapd (idempotent; lib.sh's cleanup would do it too).
realm_ldap_stop() {
    local p
    for p in ${REALM_KDC_PID:-} ${REALM_SLAPD_PID:-}; do
        kill "$p" 2>/dev/null
        timeout 5 tail --pid="$p" -f /dev/null 2>/dev/null || kill -9 "$p" 2>/dev/null
    done
    REALM_KDC_PID=
    REALM_SLAPD_PID=
}
