# Helpers for the operations tests (t6*: reload, pid file, systemd, logs). Source after lib.sh:
#   . "$(dirname "$0")/lib.sh"; . "$E2E_DIR/ops.sh"

LABPY=${LABPY:-$E2E_DIR/clients}
# labclient.py writes an OpenSSL config into $TMPDIR for every process that imports it and
# never removes it: keep those in the test's own directory, which cleanup removes.
export TMPDIR=$T

# ops_lab_start: exshim-lab with anonymous /rpc, /mapi/emsmdb and /owa (so that hundreds of
# channels need no NTLM handshake) and /ews under Windows authentication (a 401 offering
# "Negotiate" and "NTLM", for the offer checks). Extra args go to exshim-lab. Sets LAB_PORT
# and LAB_LOG.
ops_lab_start() {
    [ -x "$EXSHIM_LAB" ] || skip "exshim-lab not built ($EXSHIM_LAB)"
    cat >"$T/lab.conf" <<'EOC'
name = "ops";
description = "anonymous rpc, mapi and owa; ews with Windows authentication";
vdirs = (
  { path = "/rpc"; handler = "rpc"; auth = []; },
  { path = "/mapi/emsmdb"; handler = "mapi-emsmdb"; auth = []; },
  { path = "/owa"; handler = "owa"; auth = []; },
  { path = "/ews"; handler = "ews"; auth = ["Negotiate", "NTLM"]; }
);
EOC
    printf '%s\n' 'LAB:alice:Passw0rd!' >"$T/users"
    rm -f "$T/lab.ready"
    bg lab "$EXSHIM_LAB" --config "$T/lab.conf" --users "$T/users" --listen 127.0.0.1:0 \
        --ready-file "$T/lab.ready" "$@"
    LAB_PID=$LAST_PID
    wait_file "$T/lab.ready" 10 || fail "exshim-lab did not become ready"
    LAB_PORT=$(awk '$1 == "plain" { sub(/.*:/, "", $2); print $2; exit }' "$T/lab.ready")
    LAB_LOG=$T/lab.log
}

# ops_cert NAME: a quick EC certificate $T/NAME.pem + $T/NAME.key; prints its SHA-256 (DER).
ops_cert() {
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
        -keyout "$T/$1.key" -out "$T/$1.pem" -days 2 -subj "/CN=mail.contoso.test" \
        -addext "subjectAltName=DNS:mail.contoso.test,IP:127.0.0.1" >/dev/null 2>&1 ||
        fail "openssl could not make a certificate"
    openssl x509 -in "$T/$1.pem" -outform DER | sha256sum | cut -d' ' -f1
}

# ops_conf FILE OFFER [EXTRA]: exshim in front of the lab: listeners "tls" (cert.pem, which
# the caller provides) and "plain", both on port 0; routes /rpc, /mapi, /owa and /ews, the
# latter with offer = [ OFFER ] (e.g. '"NTLM"'). EXTRA goes in at the top level.
ops_conf() {
    local file=$1 offer=$2 extra=${3:-}
    cat >"$file" <<EOC
log_level = "info";
grace = "5s";
$extra
listeners = (
  { name = "tls"; address = "127.0.0.1:0";
    tls = { certs = ( { chain = "cert.pem"; key = "cert.key"; } ); }; },
  { name = "plain"; address = "127.0.0.1:0"; }
);
backends = ( { name = "lab"; servers = [ "127.0.0.1:$LAB_PORT" ]; } );
routes = (
  { path = "/rpc"; backend = "lab"; },
  { path = "/mapi"; backend = "lab"; },
  { path = "/owa"; backend = "lab"; },
  { path = "/ews"; backend = "lab"; offer = [ $offer ]; }
);
EOC
}

# ops_start CONF [ARGS...]: exshim -c CONF -r $T/exshim.ready -p $T/exshim.pid ARGS; waits for
# the ready file and the pid file. Sets EXSHIM_PID, TLS_PORT, PLAIN_PORT.
ops_start() {
    local conf=$1
    shift
    [ -x "$EXSHIM" ] || skip "$EXSHIM not built"
    rm -f "$T/exshim.ready" "$T/exshim.pid"
    bg exshim "$EXSHIM" -c "$conf" -r "$T/exshim.ready" -p "$T/exshim.pid" "$@"
    EXSHIM_PID=$LAST_PID
    wait_file "$T/exshim.ready" 10 || fail "exshim did not become ready"
    wait_file "$T/exshim.pid" 5 || fail "exshim wrote no pid file"
    TLS_PORT=$(listener_port tls)
    PLAIN_PORT=$(listener_port plain)
}

# ops_stop: SIGTERM to exshim; fails unless it exits 0 within 15 s.
ops_stop() {
    kill -TERM "$EXSHIM_PID" 2>/dev/null
    timeout 15 tail --pid="$EXSHIM_PID" -f /dev/null 2>/dev/null || fail "exshim still running 15 s after SIGTERM"
    wait "$EXSHIM_PID"
    local rc=$?
    [ "$rc" -eq 0 ] || fail "exshim exited $rc after SIGTERM, want 0"
}

# gen_workers_alive GEN: how many workers of generation GEN still run (pids from the master's
# "generation GEN: N workers, pids ..." line).
gen_workers_alive() {
    local n=0 p
    for p in $(sed -n "s/.* info: generation $1: [0-9]* workers, pids //p" "$T/exshim.log" | tail -n 1); do
        [ "$(ps -o ppid= -p "$p" 2>/dev/null | tr -d ' ')" = "$EXSHIM_PID" ] && n=$((n + 1))
    done
    echo "$n"
}

# gen_cpu_ticks GEN: CPU time (utime + stime, clock ticks) used so far by the workers of
# generation GEN that still run.
gen_cpu_ticks() {
    local total=0 p
    for p in $(sed -n "s/.* info: generation $1: [0-9]* workers, pids //p" "$T/exshim.log" | tail -n 1); do
        [ -r "/proc/$p/stat" ] || continue
        total=$((total + $(awk '{ print $14 + $15 }' "/proc/$p/stat")))
    done
    echo "$total"
}
