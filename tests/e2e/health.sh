# Helpers for the health-check tests (t67, t68). Source after lib.sh:
#   . "$(dirname "$0")/lib.sh"; . "$E2E_DIR/health.sh"

HC="$PY $E2E_DIR/clients/health_client.py"

# hlab_start N [PORT]: exshim-lab number N (anonymous /owa and /mapi/emsmdb) on 127.0.0.1:PORT
# (default: a kernel-chosen port, then kept for restarts) with --health-dir $T/hd$N. Sets
# LAB<N>_PORT and LAB<N>_PID; the log is $T/labN.log (appended to across restarts).
hlab_start() {
    local n=$1 port=${2:-0}
    [ -x "$EXSHIM_LAB" ] || skip "exshim-lab not built ($EXSHIM_LAB)"
    mkdir -p "$T/hd$n"
    [ -f "$T/hlab.conf" ] || cat >"$T/hlab.conf" <<'EOC'
name = "health";
description = "anonymous owa and mapi for the health tests";
vdirs = (
  { path = "/owa"; handler = "owa"; auth = []; },
  { path = "/mapi/emsmdb"; handler = "mapi-emsmdb"; auth = []; }
);
EOC
    rm -f "$T/lab$n.ready"
    "$EXSHIM_LAB" --config "$T/hlab.conf" --listen "127.0.0.1:$port" --health-dir "$T/hd$n" \
        --ready-file "$T/lab$n.ready" >>"$T/lab$n.log" 2>&1 &
    local pid=$!
    disown "$pid" # killed -9 on purpose: no "Killed" job notice
    PIDS+=("$pid")
    wait_file "$T/lab$n.ready" 10 || fail "exshim-lab $n did not become ready"
    eval "LAB${n}_PID=$pid"
    eval "LAB${n}_PORT=$(awk '$1 == "plain" { sub(/.*:/, "", $2); print $2; exit }' "$T/lab$n.ready")"
}

# now_ms: wall-clock milliseconds (the clock of exshim's log lines).
now_ms() { date +%s%3N; }

# log_ms LINE: milliseconds of an exshim log line ("2026-12-01T18:37:33.712Z ...").
log_ms() {
    local ts=${1%% *}
    echo $(($(date -u -d "${ts%.*}" +%s) * 1000 + 10#$(sed 's/.*\.\([0-9]*\)Z$/\1/' <<<"$ts")))
}

# served_by PORT PATTERN: how many access-log lines matching PATTERN went to 127.0.0.1:PORT.
served_by() {
    grep ' access ' "$T/exshim.log" | grep -E -- "$2" | grep -c "/127.0.0.1:$1 "
}
