#!/usr/bin/env bash
# No connection waiting in an accept queue is lost at a reload.
#  A: generation 1's workers are stopped (SIGSTOP); 60 connections (40 plain with their
#     request sent, 20 TLS) wait in the kernel's accept queues; SIGHUP: generation 2 accepts
#     and answers all of them from the same listening sockets.
#  B: now generation 2 is stopped too and 60 more connections queue; generation 1 is resumed,
#     handles its hand-over, closes its copies of the sockets and exits while they wait; then
#     generation 2 is resumed and must answer every one: closing a superseded worker's copy
#     drops no queue.
#  C: a superseded worker holding a channel sits idle while connections wait on the sockets
#     it shared, and its channel lives on.
. "$(dirname "$0")/lib.sh"
. "$E2E_DIR/ops.sh"
need openssl
ops_lab_start
ops_cert cert >/dev/null
ops_conf "$T/exshim.conf" '"NTLM"'
ops_start "$T/exshim.conf" -w 2
gen1=$(sed -n 's/.* info: generation 1: 2 workers, pids //p' "$T/exshim.log")
[ -n "$gen1" ] || fail "no pids for generation 1"
queue() { # queue NAME: queued.py in the background, waits until its requests are sent
    bg "$1" "$PY" -u "$LABPY/queued.py" --plain "$PLAIN_PORT" --tls "$TLS_PORT" --sent "$T/$1.sent"
    QPID=$LAST_PID
    wait_file "$T/$1.sent" 10 || fail "$1: could not connect: $(cat "$T/$1.log")"
    sleep 0.3
}

kill -STOP $gen1
queue qa
kill -HUP "$EXSHIM_PID"
timeout 30 tail --pid="$QPID" -f /dev/null
wait "$QPID" || { kill -CONT $gen1; fail "A: queued connections lost at the reload: $(tail -5 "$T/qa.log")"; }
log "A: $(tail -1 "$T/qa.log") (queued behind stopped generation 1, answered by generation 2)"

gen2=$(sed -n 's/.* info: generation 2: 2 workers, pids //p' "$T/exshim.log")
[ -n "$gen2" ] || fail "no pids for generation 2"
kill -STOP $gen2
queue qb
kill -CONT $gen1
wait_log "$T/exshim.log" 'info: generation 1: all workers ended' 10 || { kill -CONT $gen2; fail "generation 1 did not end once resumed"; }
sleep 0.3
kill -CONT $gen2
timeout 30 tail --pid="$QPID" -f /dev/null
wait "$QPID" || fail "B: connections queued while generation 1 closed its sockets were lost: $(tail -5 "$T/qb.log")"
log "B: $(tail -1 "$T/qb.log") (queued while generation 1 closed its copies and exited)"

! grep -q 'gen 1\[[0-9]*\] info: access' "$T/exshim.log" || fail "a stopped generation-1 worker served a request"
n=$(grep -c 'gen 2\[[0-9]*\] info: access .*path=/owa/' "$T/exshim.log")
[ "$n" -eq 120 ] || fail "generation 2 logged $n of 120 requests"

# C: a superseded worker that still holds a session must not wake for the connections queued
# on the sockets it shared: generation 2 holds a channel pair and is superseded while
# generation 3 is stopped with connections waiting; generation 2's CPU must stay near zero.
bg hold "$PY" -u "$LABPY/reload_load.py" --port "$PLAIN_PORT" --ready "$T/hold.ready" \
    --stop "$T/hold.stop" --http 0 --mapi 0 --pairs 1 --ping-every 0.5 --seconds 60
HOLD_PID=$LAST_PID
wait_file "$T/hold.ready" 10 || fail "channel pair did not open"
kill -STOP $gen2
kill -HUP "$EXSHIM_PID"
wait_log "$T/exshim.log" 'info: generation 3: 2 workers, pids ' 10 || { kill -CONT $gen2; fail "reload to generation 3 failed"; }
gen3=$(sed -n 's/.* info: generation 3: 2 workers, pids //p' "$T/exshim.log")
kill -STOP $gen3
queue qc
kill -CONT $gen2
wait_log "$T/exshim.log" 'gen 2\[[0-9]+\] info: superseded' 5 || { kill -CONT $gen3; fail "generation 2 did not hand over"; }
c0=$(gen_cpu_ticks 2)
sleep 1
c1=$(gen_cpu_ticks 2)
kill -CONT $gen3
timeout 30 tail --pid="$QPID" -f /dev/null
wait "$QPID" || fail "C: queued connections lost: $(tail -5 "$T/qc.log")"
[ $((c1 - c0)) -lt 20 ] || fail "superseded generation 2 used $((c1 - c0)) CPU ticks in 1 s with connections queued for generation 3"
touch "$T/hold.stop"
timeout 20 tail --pid="$HOLD_PID" -f /dev/null
grep -q 'channel_cut=0 .*pairs_alive=1/1' "$T/hold.log" || fail "generation 2's channel: $(grep result "$T/hold.log")"
wait_log "$T/exshim.log" 'info: generation 2: all workers ended' 10 || fail "generation 2 did not end after its channel"
log "C: superseded generation 2 used $((c1 - c0)) CPU ticks in 1 s while 60 connections waited for generation 3; all answered"
ops_stop
pass "180 queued connections (120 plain, 60 TLS) across 2 reloads and an old generation's exit: all answered; a superseded worker holding a channel idle ($((c1 - c0)) ticks/s)"
