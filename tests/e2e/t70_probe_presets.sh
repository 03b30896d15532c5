#!/bin/bash
# exshim-probe against every exshim-lab preset: first DIRECT to the lab, where the probe must
# name the preset's failure (its F-number, as FAIL or WARN) and exit accordingly, then THROUGH
# EXSHIM configured with the fix the probe prints (the routes t49 uses), where the failure must
# be gone. Failures whose fix is not an exshim setting (Basic-only /rpc, forms-based auth, the
# RPC proxy's ValidPorts, a backend that itself cuts idle channels) must still be named
# through exshim. Both columns are compared with the tables below; any difference fails.
#
# A cell is the sorted list of SEVERITY:ID findings ("-" for none) and the exit status.
# Also checked: no output contains the password or anything token-sized, --json parses and
# agrees with the text, and a usage error exits 2.
. "$(dirname "$0")/lib.sh"
. "$E2E_DIR/realm.sh"
need curl openssl
PROBE=${PROBE:-$BUILD/exshim-probe}
[ -x "$PROBE" ] || skip "exshim-probe not built ($PROBE)"
realm_start LAB.TEST exlab01.lab.test
self_signed lab exlab01.lab.test
# the re-encrypting front end: another key, a certificate valid for the same name
self_signed other exlab01.lab.test
H=exlab01.lab.test
printf 'Passw0rd!\n' >"$T/pw"

# preset (or preset/variant)|direct over TLS (1/0)
ROWS=(
    "default|0"
    "negotiate-only-mapi|0"
    "ntlm-not-first|0"
    "ntlm-only-rpc|0"
    "basic-only-rpc|0"
    "ssl-required-rpc|0"
    "forms-auth-exchange|0"
    "short-idle|0"
    "epa-required|1"
    "epa-required/other-cert|1"
    "ntlmv2-required|0"
    "rpc-validports|0"
)

declare -A WANT_DIRECT=(
    [default]="- exit=0"
    [negotiate-only-mapi]="FAIL:F1 exit=1"
    [ntlm-not-first]="FAIL:F2 exit=1"
    [ntlm-only-rpc]="FAIL:F3 exit=1"
    [basic-only-rpc]="FAIL:F5 exit=1"
    [ssl-required-rpc]="FAIL:F4 exit=1"
    [forms-auth-exchange]="FAIL:FBA exit=1"
    [short-idle]="FAIL:F8 exit=1"
    [epa-required]="WARN:F11 exit=0"
    [epa-required/other-cert]="WARN:F11 exit=0"
    # an NTLMv2 client (the probe) meets no failure; NTLMv1 clients are not emulated
    [ntlmv2-required]="- exit=0"
    [rpc-validports]="FAIL:ValidPorts exit=1"
)
declare -A WANT_EXSHIM=(
    [default]="- exit=0"
    [negotiate-only-mapi]="- exit=0"
    [ntlm-not-first]="- exit=0"
    [ntlm-only-rpc]="- exit=0"
    [basic-only-rpc]="FAIL:F5 exit=1"
    [ssl-required-rpc]="- exit=0"
    [forms-auth-exchange]="FAIL:FBA exit=1"
    [short-idle]="FAIL:F8 exit=1"
    [epa-required]="WARN:F11 exit=0"
    [epa-required/other-cert]="FAIL:F11 exit=1"
    [ntlmv2-required]="- exit=0"
    [rpc-validports]="FAIL:ValidPorts exit=1"
)

# The fix for each preset, as the probe prints it (backend "lab" here instead of "cas").
exshim_routes() {
    case $1 in
    negotiate-only-mapi)
        echo '{ path = "/mapi"; backend = "lab"; offer = [ "NTLM", "Negotiate" ]; bridge = "ntlm-to-negotiate"; },' ;;
    ntlm-not-first)
        for p in /rpc /mapi /ews /autodiscover /oab /owa; do
            echo "{ path = \"$p\"; backend = \"lab\"; offer = [ \"NTLM\", \"Negotiate\" ]; },"
        done ;;
    ntlm-only-rpc)
        echo '{ path = "/rpc"; backend = "lab"; offer = [ "NTLM", "Negotiate" ]; bridge = "negotiate-to-ntlm"; },' ;;
    esac
    echo '{ path = "default"; backend = "lab"; }'
}

# probe_cell NAME URL CA [ARGS...]: runs the probe, keeps its output in $T/probe-NAME.out,
# prints the cell
probe_cell() {
    local name=$1 url=$2 ca=$3 hp rc
    shift 3
    hp=${url#*://}
    timeout 60 "$PROBE" "$url" --resolve "$hp:127.0.0.1" -u 'LAB\alice' --password-file "$T/pw" \
        --kerberos --ca "$ca" --timeout 5s --mapi-wait 4s "$@" >"$T/probe-$name.out" 2>&1
    rc=$?
    local ids
    ids=$(awk '/^(FAIL|WARN) [A-Za-z0-9]+ \[/ { print $1 ":" $2 }' "$T/probe-$name.out" | sort -u | tr '\n' ' ')
    echo "${ids:-- }exit=$rc" | sed 's/  */ /g'
}

declare -A GOT_DIRECT GOT_EXSHIM
bad=0
for r in "${ROWS[@]}"; do
    IFS='|' read -r name tls <<<"$r"
    preset=${name%%/*}
    key=${name//\//_}
    labx=()
    probex=()
    if [ "$preset" = short-idle ]; then
        labx=(--idle 2)
        probex=(--hold 3s)
    fi
    lab_start "lab-$preset" "$preset" --tls-listen 127.0.0.1:0 --cert "$T/lab.pem" --key "$T/lab.key" \
        --pending-period 250 --notify-hold 1000 "${labx[@]}"
    if [ "$name" = "$preset" ]; then
        if [ "$tls" = 1 ]; then
            url="https://$H:$LAB_TLS_PORT"
        else
            url="http://$H:$LAB_PORT"
        fi
        GOT_DIRECT[$name]=$(probe_cell "direct-$key" "$url" "$T/lab.pem" "${probex[@]}")
    else
        GOT_DIRECT[$name]=${GOT_DIRECT[$preset]}
    fi
    [ "${GOT_DIRECT[$name]}" = "${WANT_DIRECT[$name]}" ] || {
        bad=1
        log "DIRECT MISMATCH $name: got '${GOT_DIRECT[$name]}' want '${WANT_DIRECT[$name]}'"
        cat "$T/probe-direct-$key.out" 2>/dev/null | tail -20
    }

    cert=lab
    [ "$name" = epa-required/other-cert ] && cert=other
    case $preset in
    ssl-required-rpc | epa-required)
        btls="tls = { verify = false; sni = \"$H\"; };"
        bport=$LAB_TLS_PORT ;;
    *)
        btls=""
        bport=$LAB_PORT ;;
    esac
    cat >"$T/exshim-$key.conf" <<EOC
workers = 1;
log_level = "info";
listeners = (
  { name = "s"; address = "127.0.0.1:0";
    tls = { certs = ( { chain = "$T/$cert.pem"; key = "$T/$cert.key"; } ); }; }
);
backends = ( { name = "lab"; servers = [ "127.0.0.1:$bport" ]; $btls } );
routes = (
$(exshim_routes "$preset")
);
EOC
    rm -f "$T/exshim.ready"
    bg exshim "$EXSHIM" -c "$T/exshim-$key.conf" -r "$T/exshim.ready"
    epid=$LAST_PID
    if wait_file "$T/exshim.ready" 10; then
        xport=$(listener_port s)
        GOT_EXSHIM[$name]=$(probe_cell "exshim-$key" "https://$H:$xport" "$T/$cert.pem" "${probex[@]}")
    else
        GOT_EXSHIM[$name]="exshim-did-not-start"
    fi
    kill "$epid" 2>/dev/null
    timeout 5 tail --pid="$epid" -f /dev/null 2>/dev/null || kill -9 "$epid" 2>/dev/null
    [ "${GOT_EXSHIM[$name]}" = "${WANT_EXSHIM[$name]}" ] || {
        bad=1
        log "EXSHIM MISMATCH $name: got '${GOT_EXSHIM[$name]}' want '${WANT_EXSHIM[$name]}'"
        cat "$T/probe-exshim-$key.out" 2>/dev/null | tail -20
    }
    lab_stop
done

printf '\n%-26s | %-28s | %-28s\n' preset "direct to the lab" "through exshim with the fix"
for r in "${ROWS[@]}"; do
    name=${r%%|*}
    printf '%-26s | %-28s | %-28s\n' "$name" "${GOT_DIRECT[$name]}" "${GOT_EXSHIM[$name]}"
done
echo

# Secrets: neither the password nor anything token-sized in any output.
if grep -l 'Passw0rd' "$T"/probe-*.out; then
    fail "a probe output contains the password"
fi
if grep -lE '[A-Za-z0-9+/]{48,}={0,2}' "$T"/probe-*.out; then
    fail "a probe output contains something token-sized"
fi

# --json: one document that agrees with the text run (default preset, direct).
lab_start lab-json default --pending-period 250 --notify-hold 1000
PROBE_PW='Passw0rd!' timeout 60 "$PROBE" "http://$H:$LAB_PORT" --resolve "$H:$LAB_PORT:127.0.0.1" \
    -u 'LAB\alice' --password-env PROBE_PW --only auth,handshake,rpc --json --timeout 5s >"$T/probe.json"
jrc=$?
"$PY" - "$T/probe.json" <<'EOF' || fail "--json output is not the expected document"
import json, sys
d = json.load(open(sys.argv[1]))
assert d["result"] == "pass", d["result"]
steps = {(s["vdir"], s["step"]): s for s in d["steps"]}
assert steps[("rpc", "ntlm")]["result"] == "pass"
assert steps[("rpc", "rpc 6004")]["result"] == "pass"
assert not any(s["step"] == "notificationwait" for s in d["steps"])  # --only honoured
assert d["failed"] == 0 and d["findings"] == []
EOF
[ "$jrc" = 0 ] || fail "--json run exited $jrc"
lab_stop
if grep -qE 'Passw0rd|[A-Za-z0-9+/]{48,}={0,2}' "$T/probe.json"; then
    fail "the --json output contains the password or something token-sized"
fi

# --health-dir: a vdir the lab reports unhealthy is named; the others stay healthy.
mkdir -p "$T/health"
touch "$T/health/mapi"
lab_start lab-health default --health-dir "$T/health"
cell=$(probe_cell health "http://$H:$LAB_PORT" "$T/lab.pem" --only auth)
[ "$cell" = "FAIL:Health exit=1" ] || fail "unhealthy /mapi: got '$cell'"
grep -q '^pass  ews  *health .*served by exlab01.lab.test' "$T/probe-health.out" ||
    fail "healthy /ews not reported"
rm "$T/health/mapi"
cell=$(probe_cell health2 "http://$H:$LAB_PORT" "$T/lab.pem" --only auth)
[ "$cell" = "- exit=0" ] || fail "/mapi healthy again: got '$cell'"
lab_stop

# Hostile servers, one behaviour per connection in turn: silence, garbage (bad heads, junk
# challenges, RTS-looking bodies, bad chunks), endless 100 Continue heads, a head trickled a
# byte at a time. The probe must end on its own (each wait has --timeout, each connection a
# deadline of a few waits), exit 1 and not crash.
hport=$(free_port)
"$PY" - "$hport" >"$T/hostile.log" 2>&1 <<'EOF2' &
import os, socket, sys, threading
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1])))
s.listen(64)
def serve(c, n):
    try:
        c.recv(65536)
        if n % 4 == 2:  # 100 Continue heads, for ever
            while True:
                c.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
                threading.Event().wait(0.01)
        if n % 4 == 3:  # a 401 head trickled one byte at a time, never ending
            while True:
                c.sendall(b"HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: NTLM\r\nX"[:1])
                threading.Event().wait(0.2)
        if n % 2:  # garbage: a bad head, a challenge with junk, an endless RTS-looking body
            c.sendall([b"HTTP/1.1 401 X\r\nWWW-Authenticate: NTLM ====, ,\x00\r\n\r\n",
                       b"HTTP/1.1 200 OK\r\nContent-Length: 1073741824\r\n\r\n\x05\x00\x14" + os.urandom(300),
                       b"\x16\x03\x01garbage\r\n\r\n",
                       b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"][n // 2 % 4])
        threading.Event().wait(30)  # then silence
    except OSError:
        pass
n = 0
while True:
    c, _ = s.accept()
    threading.Thread(target=serve, args=(c, n), daemon=True).start()
    n += 1
EOF2
PIDS+=("$!")
wait_port "$hport" 10 || fail "hostile server did not start"
start=$(date +%s)
timeout 90 "$PROBE" "http://$H:$hport" --resolve "$H:$hport:127.0.0.1" -u 'LAB\alice' \
    --password-file "$T/pw" --timeout 1s --mapi-wait 2s >"$T/probe-hostile.out" 2>&1
hrc=$?
took=$(($(date +%s) - start))
log "hostile server: exit $hrc after ${took}s"
[ "$hrc" = 1 ] || { tail -20 "$T/probe-hostile.out"; fail "hostile server: exit $hrc (want 1)"; }
[ "$took" -lt 60 ] || fail "hostile server: the probe took ${took}s"

"$PROBE" >/dev/null 2>&1
[ $? = 2 ] || fail "no URL: exit status is not 2"
"$PROBE" "ftp://x" >/dev/null 2>&1
[ $? = 2 ] || fail "bad URL: exit status is not 2"

[ "$bad" = 0 ] || fail "the probe's findings differ from the expected table"
pass "every preset named directly, fixed (or still named) through exshim"
