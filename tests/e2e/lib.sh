# Shared helpers for end-to-end tests. Source it from a test script:
#   . "$(dirname "$0")/lib.sh"
# Every test runs in its own temp dir ($T), starts real processes on 127.0.0.1 only, bounds
# every wait, and kills what it started on exit. Exit codes: 0 pass, 1 fail, 77 skip
# (a skip is a failure under CI=true).

set -u
E2E_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
TOP=$(cd "$E2E_DIR/../.." && pwd)
BUILD=${BUILD:-build}
case "$BUILD" in /*) ;; *) BUILD="$TOP/$BUILD" ;; esac
EXSHIM=${EXSHIM:-$BUILD/exshim}
EXSHIM_LAB=${EXSHIM_LAB:-$BUILD/exshim-lab}
PY=/usr/bin/python3   # Debian's python3: the one with python3-requests-ntlm and python3-gssapi

T=$(mktemp -d "${TMPDIR:-/tmp}/exshim-e2e.XXXXXX")
PIDS=()
TEST_NAME=$(basename "$0" .sh)

cleanup() {
    local rc=$?
    for p in "${PIDS[@]:-}"; do
        [ -n "$p" ] && kill "$p" 2>/dev/null
    done
    for p in "${PIDS[@]:-}"; do
        [ -n "$p" ] && { timeout 5 tail --pid="$p" -f /dev/null 2>/dev/null || kill -9 "$p" 2>/dev/null; }
    done
    # A sanitizer report in any process's log fails the test, even when the process that
    # printed it was replaced and the test's requests went through.
    if grep -lE 'ERROR: (Address|Leak)Sanitizer|runtime error:' "$T"/*.log >/dev/null 2>&1; then
        printf '[%s] FAIL: sanitizer report in %s\n' "$TEST_NAME" \
            "$(grep -lE 'ERROR: (Address|Leak)Sanitizer|runtime error:' "$T"/*.log | tr '\n' ' ')" >&2
        [ "$rc" -eq 0 ] && rc=1
    fi
    if [ "$rc" -ne 0 ] && [ "$rc" -ne 77 ]; then
        for f in "$T"/*.log; do
            [ -f "$f" ] || continue
            echo "----- $f (last 40 lines)"
            tail -n 40 "$f"
        done
    fi
    [ -n "${KEEP_TMP:-}" ] || rm -rf "$T"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

log() { printf '[%s] %s\n' "$TEST_NAME" "$*"; }
fail() {
    printf '[%s] FAIL: %s\n' "$TEST_NAME" "$*" >&2
    exit 1
}
pass() {
    printf '[%s] PASS%s\n' "$TEST_NAME" "${1:+: $1}"
    exit 0
}
skip() {
    if [ "${CI:-}" = "true" ]; then
        fail "prerequisite missing under CI: $*"
    fi
    printf '[%s] SKIP: %s\n' "$TEST_NAME" "$*"
    exit 77
}
need() {
    local c
    for c in "$@"; do command -v "$c" >/dev/null 2>&1 || skip "$c not installed"; done
}

# free_port: prints a TCP port that is free on 127.0.0.1 right now.
free_port() {
    "$PY" - <<'EOF'
import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])
s.close()
EOF
}

# wait_file FILE [SECONDS]: waits until FILE exists and is not empty.
wait_file() {
    local f=$1 n=$(( ${2:-10} * 20 ))
    while [ "$n" -gt 0 ]; do
        [ -s "$f" ] && return 0
        sleep 0.05
        n=$((n - 1))
    done
    return 1
}

# wait_port PORT [SECONDS]: waits until something accepts on 127.0.0.1:PORT.
wait_port() {
    local port=$1 n=$(( ${2:-10} * 20 ))
    while [ "$n" -gt 0 ]; do
        (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && return 0
        sleep 0.05
        n=$((n - 1))
    done
    return 1
}

# wait_log FILE PATTERN [SECONDS]: waits until FILE contains a line matching PATTERN (grep -E).
wait_log() {
    local f=$1 pat=$2 n=$(( ${3:-10} * 20 ))
    while [ "$n" -gt 0 ]; do
        grep -Eq -- "$pat" "$f" 2>/dev/null && return 0
        sleep 0.05
        n=$((n - 1))
    done
    return 1
}

# bg NAME CMD...: starts CMD in the background, output to $T/NAME.log, remembers its pid in
# $LAST_PID and in the cleanup list.
bg() {
    local name=$1
    shift
    "$@" >"$T/$name.log" 2>&1 &
    LAST_PID=$!
    PIDS+=("$LAST_PID")
}

# start_exshim CONF: starts exshim with CONF, waits for its ready file; the ready file holds
# one line per listener: "NAME HOST:PORT". Sets EXSHIM_PID. Log: $T/exshim.log.
start_exshim() {
    local conf=$1
    rm -f "$T/exshim.ready"
    bg exshim "$EXSHIM" -c "$conf" -r "$T/exshim.ready"
    EXSHIM_PID=$LAST_PID
    wait_file "$T/exshim.ready" 10 || fail "exshim did not become ready"
}

# listener_port NAME: port of exshim listener NAME from the ready file.
listener_port() {
    awk -v n="$1" '$1 == n { sub(/.*:/, "", $2); print $2 }' "$T/exshim.ready"
}

# self_signed NAME CN: writes $T/NAME.pem (certificate) and $T/NAME.key.
self_signed() {
    openssl req -x509 -newkey rsa:2048 -nodes -keyout "$T/$1.key" -out "$T/$1.pem" \
        -days 2 -subj "/CN=$2" -addext "subjectAltName=DNS:$2,IP:127.0.0.1" >/dev/null 2>&1 ||
        fail "openssl could not make a certificate"
}

# rss_kb PID: resident set size in KiB, summed over PID and its children (workers).
rss_kb() {
    local total=0 p
    for p in $1 $(pgrep -P "$1" 2>/dev/null); do
        total=$((total + $(awk '/^VmRSS:/ { print $2 }' "/proc/$p/status" 2>/dev/null || echo 0)))
    done
    echo "$total"
}

# ---- helpers for the proxy-core tests (t2*), added below; nothing above changed ----------

CLIENTS=$E2E_DIR/clients

# start_origin [NAME]: starts tests/e2e/origin.py on a kernel-chosen port; its log (the
# "accept/request/close peer=..." lines) is $T/NAME.log (default NAME: origin). Sets
# ORIGIN_PORT, ORIGIN_LOG and ORIGIN_PID.
start_origin() {
    local name=${1:-origin}
    rm -f "$T/$name.ready"
    bg "$name" "$PY" -u "$E2E_DIR/origin.py" --ready "$T/$name.ready"
    ORIGIN_PID=$LAST_PID
    wait_file "$T/$name.ready" 10 || fail "origin.py did not start"
    ORIGIN_PORT=$(cat "$T/$name.ready")
    ORIGIN_LOG=$T/$name.log
}

# core_conf FILE ORIGIN_PORT [EXTRA_SETTINGS]: writes the proxy-core test configuration:
# listeners "tls" (certificate $T/server.pem, made here if missing) and "plain"; backends
# "origin" (ORIGIN_PORT) and "deadend" (a port nothing listens on); routes /rpc (2 s head,
# 60 m idle/body), /slow (2 s body), /down (deadend), default (2 s head). EXTRA_SETTINGS
# is inserted verbatim at the top level: only settings this helper does not write (workers
# and max_header_bytes come from $CORE_WORKERS and $CORE_MAX_HEADER_BYTES instead).
core_conf() {
    local file=$1 oport=$2 extra=${3:-}
    [ -s "$T/server.pem" ] || self_signed server localhost
    DEAD_PORT=${DEAD_PORT:-$(free_port)}
    cat >"$file" <<EOC
workers = ${CORE_WORKERS:-1};
log_level = "info";
access_log = true;
max_header_bytes = ${CORE_MAX_HEADER_BYTES:-65536};
high_water = 65536;
grace = "5s";
$extra
listeners = (
  { name = "tls"; address = "127.0.0.1:0";
    tls = { certs = ( { chain = "server.pem"; key = "server.key"; } ); }; },
  { name = "plain"; address = "127.0.0.1:0"; }
);
backends = (
  { name = "origin"; servers = [ "127.0.0.1:$oport" ]; connect_timeout = "2s"; },
  { name = "deadend"; servers = [ "127.0.0.1:$DEAD_PORT" ]; connect_timeout = "2s"; }
);
routes = (
  { path = "/rpc"; backend = "origin"; header_timeout = "2s"; idle_timeout = "60m";
    body_timeout = "60m"; },
  { path = "/slow"; backend = "origin"; body_timeout = "2s"; },
  { path = "/down"; backend = "deadend"; },
  { path = "default"; backend = "origin"; header_timeout = "2s"; }
);
EOC
}

# start_core [EXTRA_SETTINGS]: origin + exshim with core_conf; sets TLS_PORT and PLAIN_PORT.
start_core() {
    need curl openssl
    [ -x "$EXSHIM" ] || skip "$EXSHIM not built"
    start_origin
    core_conf "$T/exshim.conf" "$ORIGIN_PORT" "${1:-}"
    start_exshim "$T/exshim.conf"
    TLS_PORT=$(listener_port tls)
    PLAIN_PORT=$(listener_port plain)
    [ -n "$TLS_PORT" ] && [ -n "$PLAIN_PORT" ] || fail "ready file lacks tls/plain: $(cat "$T/exshim.ready")"
}

# origin_count REGEX: number of origin log lines matching REGEX (grep -E).
origin_count() {
    grep -Ec -- "$1" "$ORIGIN_LOG" 2>/dev/null || true
}

# origin_bytes_in: total request bytes the origin received on connections that have closed.
origin_bytes_in() {
    awk '/^close peer=/ { for (i = 1; i <= NF; i++) if ($i ~ /^bytes_in=/) { sub(/bytes_in=/, "", $i); s += $i } }
         END { print s + 0 }' "$ORIGIN_LOG"
}

# exshim_pids: the master pid and its children (the workers).
exshim_pids() {
    echo "$EXSHIM_PID" $(pgrep -P "$EXSHIM_PID" 2>/dev/null)
}

# status_kb FIELD PID...: sum of /proc/PID/status FIELD (VmHWM, VmRSS) in KiB.
status_kb() {
    local field=$1 total=0 p v
    shift
    for p in "$@"; do
        v=$(awk -v f="$field:" '$1 == f { print $2 }' "/proc/$p/status" 2>/dev/null)
        total=$((total + ${v:-0}))
    done
    echo "$total"
}
