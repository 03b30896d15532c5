#!/usr/bin/env bash
# cpu_affinity (the relay-rebuild issue's benchmark setting). Asserts:
#  - cpu_affinity = true with 2 workers: each worker may run on exactly one CPU, the i-th of
#    the CPUs exshim may use (wrapping when there are fewer), the log says so, and requests
#    are served;
#  - without it, the workers keep every CPU the master has.
. "$(dirname "$0")/lib.sh"
. "$E2E_DIR/edge.sh"
[ -x "$EXSHIM" ] || skip "$EXSHIM not built"
need taskset
start_origin
# The CPUs this shell may use, in order (taskset prints e.g. "0-3,6").
mine=$(taskset -pc $$ | sed 's/.*: //')
cpus=()
IFS=, read -ra parts <<<"$mine"
for p in "${parts[@]}"; do
    if [[ $p == *-* ]]; then for c in $(seq "${p%-*}" "${p#*-}"); do cpus+=("$c"); done; else cpus+=("$p"); fi
done
[ ${#cpus[@]} -ge 1 ] || fail "cannot read this shell's CPUs ($mine)"

allowed_of() { taskset -pc "$1" | sed 's/.*: //'; }
workers_of() { pgrep -P "$EXSHIM_PID" | sort -n; }

edge_origin_conf "$T/pin.conf" "workers = 2; cpu_affinity = true;"
start_exshim_as pin "$T/pin.conf"
code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$(port_of plain)/echo/a")
[ "$code" = 200 ] || fail "pinned workers: GET answered $code"
n=0
for w in $(workers_of); do
    n=$((n + 1))
    got=$(allowed_of "$w")
    [[ $got =~ ^[0-9]+$ ]] || fail "worker $w may run on '$got', want a single CPU"
done
[ $n -eq 2 ] || fail "want 2 workers, found $n"
for i in 0 1; do
    want=${cpus[$((i % ${#cpus[@]}))]}
    [ "$(exshim_count "worker $i runs on CPU $want\$")" -eq 1 ] ||
        fail "no log line 'worker $i runs on CPU $want' ($(grep -o 'worker [0-9] runs on CPU [0-9]*' "$EXSHIM_LOG" | tr '\n' ';'))"
done
set -- $(for w in $(workers_of); do allowed_of "$w"; done | sort -u)
[ $# -eq $((${#cpus[@]} >= 2 ? 2 : 1)) ] || fail "workers share a CPU while the box has ${#cpus[@]}: $*"
stop_exshim

edge_origin_conf "$T/free.conf" "workers = 2;"
start_exshim_as free "$T/free.conf"
master=$(allowed_of "$EXSHIM_PID")
for w in $(workers_of); do
    [ "$(allowed_of "$w")" = "$master" ] || fail "unpinned worker $w may run on $(allowed_of "$w"), the master on $master"
done
[ "$(exshim_count 'runs on CPU')" -eq 0 ] || fail "a worker was pinned without cpu_affinity"
stop_exshim
pass "cpu_affinity pins worker i to the i-th allowed CPU ($mine here); off by default"
