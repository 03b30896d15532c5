#!/usr/bin/env bash
# -p PIDFILE and -s reload|stop|drain: the pid file appears once the workers listen and goes
# at exit; -s reload makes the running exshim load its file again (here: a listener added,
# then removed, and one moved to another port, each effective at once); -s stop and -s drain
# stop it. A worker killed after the reloads is replaced and serves its slots; the number of
# workers changes with a reload and every socket slot still has a worker. Clear errors
# for a missing -p, a missing pid file, a stale pid, a pid that is not exshim, an unknown
# action.
. "$(dirname "$0")/lib.sh"
. "$E2E_DIR/ops.sh"
need openssl curl
ops_lab_start
ops_cert cert >/dev/null
ops_conf "$T/exshim.conf" '"NTLM"'
cp "$T/exshim.conf" "$T/base.conf"

# -- errors, before anything runs
expect_err() { # expect_err PATTERN ARGS...: exshim ARGS must exit 1 and print PATTERN
    local pat=$1
    shift
    "$EXSHIM" "$@" >"$T/err.out" 2>&1 && fail "exshim $* succeeded"
    grep -Eq -- "$pat" "$T/err.out" || fail "exshim $*: want /$pat/, got: $(cat "$T/err.out")"
}
expect_err '-s reload needs -p PIDFILE' -s reload
expect_err "pid file $T/none.pid: No such file or directory \(is exshim running with -p" -s reload -p "$T/none.pid"
sleep 0 & dead=$!
wait "$dead"
echo "$dead" >"$T/stale.pid"
expect_err "pid file $T/stale.pid: process $dead is not running \(stale pid file\)" -s stop -p "$T/stale.pid"
echo "$LAB_PID" >"$T/other.pid"
expect_err "pid file $T/other.pid: process $LAB_PID is not exshim" -s reload -p "$T/other.pid"
kill -0 "$LAB_PID" || fail "the lab got a signal meant for exshim"
echo "garbage" >"$T/garbage.pid"
expect_err "pid file $T/garbage.pid: no process id in it" -s reload -p "$T/garbage.pid"
expect_err "-s: expected reload, stop, drain or reopen, not 'restart'" -s restart -p "$T/none.pid"
log "error messages ok"

ops_start "$T/exshim.conf" -w 2
[ "$(cat "$T/exshim.pid")" = "$EXSHIM_PID" ] || fail "pid file holds $(cat "$T/exshim.pid"), want $EXSHIM_PID"
# start-up notices name each listener once, not once per worker
for l in tls plain; do
    n=$(grep -c "info: listener $l on " "$T/exshim.log")
    [ "$n" -eq 1 ] || fail "listener $l announced $n times at start-up with 2 workers"
done
code() { curl -s -o /dev/null -w '%{http_code}' --max-time 3 "http://127.0.0.1:$1/owa/" 2>/dev/null; }
reload_to() { # reload_to CONF GEN: -s reload with CONF; waits for generation GEN
    cp "$1" "$T/exshim.conf"
    "$EXSHIM" -s reload -p "$T/exshim.pid" >"$T/s.out" 2>&1 || fail "-s reload: $(cat "$T/s.out")"
    wait_log "$T/exshim.log" "info: generation $2 serving" 10 || fail "-s reload did not reload (generation $2)"
}

# a listener added
sed 's|^  { name = "plain"; address = "127.0.0.1:0"; }|  { name = "plain"; address = "127.0.0.1:0"; },\n  { name = "extra"; address = "127.0.0.1:0"; }|' \
    "$T/base.conf" >"$T/extra.conf"
grep -q '"extra"' "$T/extra.conf" || fail "test bug: extra listener not written"
reload_to "$T/extra.conf" 2
EXTRA_PORT=$(listener_port extra)
[ -n "$EXTRA_PORT" ] || fail "ready file lacks the new listener: $(cat "$T/exshim.ready")"
[ "$(listener_port plain)" = "$PLAIN_PORT" ] || fail "plain listener changed port across a reload"
[ "$(code "$EXTRA_PORT")" = 200 ] || fail "the added listener does not serve"
[ "$(code "$PLAIN_PORT")" = 200 ] || fail "plain listener lost"
# the listener removed again
reload_to "$T/base.conf" 3
[ -z "$(listener_port extra)" ] || fail "ready file still names the removed listener"
wait_log "$T/exshim.log" "info: listener extra on 127.0.0.1:$EXTRA_PORT closed \(no longer configured\)" 5 ||
    fail "removal of listener extra not logged"
st=$(code "$EXTRA_PORT")
[ "$st" = 000 ] || fail "the removed listener still answers ($st)"
# a listener moved to another port
NEWPORT=$(free_port)
sed "s|{ name = \"plain\"; address = \"127.0.0.1:0\"; }|{ name = \"plain\"; address = \"127.0.0.1:$NEWPORT\"; }|" "$T/base.conf" >"$T/moved.conf"
reload_to "$T/moved.conf" 4
[ "$(listener_port plain)" = "$NEWPORT" ] || fail "plain listener not moved: $(cat "$T/exshim.ready")"
[ "$(code "$NEWPORT")" = 200 ] || fail "the moved listener does not serve on $NEWPORT"
[ "$(code "$PLAIN_PORT")" = 000 ] || fail "the old address of the moved listener still answers"
log "-s reload: listener added, removed, moved; each effective at once"

# a worker of the current generation that dies is replaced, on its own slots of the sockets
victim=$(sed -n 's/.* info: generation 4: 2 workers, pids \([0-9]*\) .*/\1/p' "$T/exshim.log")
[ -n "$victim" ] || fail "no pids logged for generation 4"
kill -9 "$victim"
wait_log "$T/exshim.log" "warn: worker 0 \(pid $victim\) ended unexpectedly \(signal 9\); starting a new one" 5 ||
    fail "the killed worker was not replaced"
sleep 0.5
ok=0
for _ in $(seq 30); do [ "$(code "$NEWPORT")" = 200 ] && ok=$((ok + 1)); done
[ "$ok" -eq 30 ] || fail "after the replacement only $ok of 30 new connections were served"
log "a killed worker of the current generation was replaced; 30 of 30 new connections served"

"$EXSHIM" -s stop -p "$T/exshim.pid" >"$T/s.out" 2>&1 || fail "-s stop: $(cat "$T/s.out")"
timeout 15 tail --pid="$EXSHIM_PID" -f /dev/null || fail "-s stop did not stop exshim"
wait "$EXSHIM_PID" || fail "exshim exited non-zero after -s stop"
[ ! -e "$T/exshim.pid" ] || fail "pid file left behind after exit"

# workers changed by a reload: 2 -> 3 -> 1 -> 2; every slot of the sockets keeps an acceptor
# (a slot nobody accepts on would leave the connections the kernel puts there hanging)
sed 's/^log_level = "info";/workers = 2;/' "$T/base.conf" >"$T/w2.conf"
sed 's/^log_level = "info";/workers = 3;/' "$T/base.conf" >"$T/w3.conf"
sed 's/^log_level = "info";/workers = 1;/' "$T/base.conf" >"$T/w1.conf"
cp "$T/w2.conf" "$T/exshim.conf"
ops_start "$T/exshim.conf"
gen=1
for w in 3 1 2; do
    gen=$((gen + 1))
    reload_to "$T/w$w.conf" $gen
    grep -q "info: generation $gen serving with $w workers" "$T/exshim.log" || fail "generation $gen does not have $w workers"
    ok=0
    for _ in $(seq 40); do [ "$(code "$PLAIN_PORT")" = 200 ] && ok=$((ok + 1)); done
    [ "$ok" -eq 40 ] || fail "with $w workers after a reload only $ok of 40 new connections were served"
done
log "workers 2 -> 3 -> 1 -> 2 by reload: 40 of 40 new connections served each time"
ops_stop

cp "$T/base.conf" "$T/exshim.conf"
ops_start "$T/exshim.conf" -w 1
"$EXSHIM" -s drain -p "$T/exshim.pid" >"$T/s.out" 2>&1 || fail "-s drain: $(cat "$T/s.out")"
timeout 15 tail --pid="$EXSHIM_PID" -f /dev/null || fail "-s drain did not stop exshim"
wait "$EXSHIM_PID" || fail "exshim exited non-zero after -s drain"
[ ! -e "$T/exshim.pid" ] || fail "pid file left behind after -s drain"
pass "-p/-s: errors named; reload (listener added/removed/moved), stop and drain"
