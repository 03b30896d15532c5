#!/usr/bin/env bash
# accept_balance (the relay-rebuild issue: the kernel's reuseport hash gave one of 2 workers
# 37 or 43 of 64 keep-alive clients, and that worker set the tail latency). Asserts:
#  - by default ("roundrobin") 2 workers get exactly 20 each of 40 connections made one after
#    another, and the log says the listener spreads in turn;
#  - a reload to 4 workers that fails (a port taken) after a listener grew slots leaves
#    generation 1 serving 15 each of 30: nothing waits in the slots grown for it;
#  - after a reload to 3 workers, the new generation's workers get exactly 20 each of 60;
#  - after a reload back to 2, 15 each of 30 (the third slot, left from the larger
#    generation, gets none and no connection waits in it unserved);
#  - accept_balance = "hash" detaches the program (log line), and the connections are served;
#  - without the capability to load eBPF, exshim says so once per listener and serves by hash.
. "$(dirname "$0")/lib.sh"
. "$E2E_DIR/edge.sh"
[ -x "$EXSHIM" ] || skip "$EXSHIM not built"
need ss
need setpriv
start_origin

# hold N PORT: N keep-alive connections, one after another, each served one request, all kept
# open until $T/release exists (or 30 s); prints "ready" once all are answered.
cat >"$T/hold.py" <<'EOF'
import os, socket, sys, time
n, port, release = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
conns = []
for i in range(n):
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(b"GET /echo/%d HTTP/1.1\r\nHost: localhost\r\n\r\n" % i)
    buf = b""
    while b"\r\n\r\n" not in buf:
        d = s.recv(4096)
        if not d:
            sys.exit("connection %d closed before its answer" % i)
        buf += d
    if not buf.startswith(b"HTTP/1.1 200"):
        sys.exit("connection %d: %r" % (i, buf[:40]))
    conns.append(s)
print("ready", flush=True)
t_end = time.monotonic() + 30
while not os.path.exists(release) and time.monotonic() < t_end:
    time.sleep(0.05)
EOF

# split N: holds N connections to the plain listener and prints how many each process owns,
# sorted, e.g. "20 20".
split() {
    rm -f "$T/release" "$T/hold.out"
    python3 "$T/hold.py" "$1" "$(port_of plain)" "$T/release" >"$T/hold.out" 2>&1 &
    local hp=$!
    wait_log "$T/hold.out" '^ready' 20 || { touch "$T/release"; fail "holding $1 connections: $(cat "$T/hold.out")"; }
    ss -tnpH state established "( sport = :$(port_of plain) )" | grep -o 'pid=[0-9]*' | sort | uniq -c |
        awk '{print $1}' | sort -n | tr '\n' ' ' | sed 's/ $//'
    touch "$T/release"
    wait "$hp" 2>/dev/null
}

# reload GEN GLOBALS [PREV]: rewrites rr.conf with GLOBALS, reloads, waits until generation GEN
# serves and generation PREV (default GEN - 1) has ended.
reload() {
    local prev=${3:-$(($1 - 1))}
    edge_origin_conf "$T/rr.conf" "$2"
    kill -HUP "$EXSHIM_PID"
    wait_log "$EXSHIM_LOG" "info: generation $1 serving" 10 || fail "reload to '$2' did not finish"
    wait_log "$EXSHIM_LOG" "info: generation $prev: all workers ended" 10 ||
        fail "generation $prev still runs after the reload to '$2'"
}
# expect_split N WANT: N connections in turn must land as WANT ("20 20").
expect_split() {
    local got
    got=$(split "$1")
    [ "$got" = "$2" ] || fail "$1 connections in turn: got '$got', want '$2'"
}
in_turn_logged() { # WORKERS
    [ "$(exshim_count "listener plain: new connections go to its $1 workers in turn")" -eq 1 ] ||
        fail "no log line 'listener plain: new connections go to its $1 workers in turn'"
}

edge_origin_conf "$T/rr.conf" "workers = 2;"
start_exshim_as rr "$T/rr.conf"
in_turn_logged 2
expect_split 40 "20 20"

# A reload to 4 workers that fails after the plain listener grew to 4 slots (a third listener's
# port is taken): generation 1 keeps serving from its 2 slots, and no connection goes to the
# grown ones, which no worker watches.
python3 -c 'import socket, time; s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(); print(s.getsockname()[1], flush=True); time.sleep(60)' >"$T/taken.port" &
PIDS+=("$!")
wait_log "$T/taken.port" '^[0-9]+$' 5 || fail "could not hold a port"
edge_origin_conf "$T/rr.conf" "workers = 4;"
sed -i "s|^  { name = \"plain\"; address = \"127.0.0.1:0\"; }|&,\n  { name = \"taken\"; address = \"127.0.0.1:$(cat "$T/taken.port")\"; }|" "$T/rr.conf"
grep -q 'name = "taken"' "$T/rr.conf" || fail "the failing configuration was not written"
kill -HUP "$EXSHIM_PID"
wait_log "$EXSHIM_LOG" "reload failed, generation 1 keeps running: .*listeners.taken: cannot listen" 10 ||
    fail "the reload with a taken port did not fail as expected ($(grep -m1 'reload failed' "$EXSHIM_LOG"))"
expect_split 30 "15 15"

reload 3 "workers = 3;" 1
in_turn_logged 3
expect_split 60 "20 20 20"
reload 4 "workers = 2;" # four slots now, two workers: slots 2 and 3 get nothing new
expect_split 30 "15 15"
reload 5 'workers = 2; accept_balance = "hash";'
[ "$(exshim_count "listener plain: new connections go to the workers by the kernel's hash")" -eq 1 ] ||
    fail "after accept_balance = hash: no log line saying the kernel's hash is back"
got=$(split 30)
set -- $got
[ $(( ${1:-0} + ${2:-0} )) -eq 30 ] || fail "hash: 30 connections held, the workers own '$got'"
stop_exshim

# No CAP_BPF / CAP_SYS_ADMIN (unprivileged eBPF is off on Debian): a clear warning, no error.
[ "$(cat /proc/sys/kernel/unprivileged_bpf_disabled 2>/dev/null || echo 1)" != 0 ] ||
    { pass "accept_balance spreads in turn across reloads (unprivileged eBPF is on here: the fallback case not run)"; exit 0; }
EXSHIM_REAL=$EXSHIM
printf '#!/bin/sh\nexec setpriv --bounding-set=-bpf,-sys_admin -- "%s" "$@"\n' "$EXSHIM_REAL" >"$T/nocap-exshim"
chmod +x "$T/nocap-exshim"
EXSHIM=$T/nocap-exshim
edge_origin_conf "$T/nocap.conf" "workers = 2;"
start_exshim_as nocap "$T/nocap.conf"
EXSHIM=$EXSHIM_REAL
[ "$(exshim_count "warn: listener plain: accept_balance \"roundrobin\" is not available here \(bpf\(BPF_[A-Z_]+\): Operation not permitted\); the kernel's hash spreads")" -eq 1 ] ||
    fail "without CAP_BPF: no warning naming the failure ($(grep -m1 accept_balance "$EXSHIM_LOG"))"
got=$(split 20)
set -- $got
[ $(( ${1:-0} + ${2:-0} )) -eq 20 ] || fail "without CAP_BPF: 20 connections held, the workers own '$got'"
stop_exshim
pass "accept_balance spreads new connections in turn (20/20, 20/20/20 and 15/15 across reloads); hash on request; a clear warning without CAP_BPF"
