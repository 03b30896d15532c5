#!/usr/bin/env bash
# Logs. (1) logrotate: log_file renamed away, SIGUSR1 to the master; the master and the
# workers of every generation (a superseded one still holding a channel included) write to
# a new file under the old name, nothing more goes to the renamed one; again with
# `exshim -s reopen -p PIDFILE`. (2) stderr is a pipe
# nobody reads: 2000 requests still get answered quickly; the lines that did not fit are
# dropped and counted, and once the pipe is read again a "N log lines dropped" line says so.
. "$(dirname "$0")/lib.sh"
. "$E2E_DIR/ops.sh"
need openssl curl
ops_lab_start
ops_cert cert >/dev/null

# -- (1) reopen on SIGUSR1
ops_conf "$T/exshim.conf" '"NTLM"' 'log_file = "rot.log";'
ops_start "$T/exshim.conf" -w 2
bg hold "$PY" -u "$LABPY/reload_load.py" --port "$PLAIN_PORT" --ready "$T/hold.ready" \
    --stop "$T/hold.stop" --http 0 --mapi 0 --pairs 1 --ping-every 0.3 --seconds 60
HOLD_PID=$LAST_PID
wait_file "$T/hold.ready" 10 || fail "channel pair did not open"
kill -HUP "$EXSHIM_PID"
wait_log "$T/rot.log" 'info: generation 2 serving' 10 || fail "reload not logged in log_file"
curl -s -o /dev/null --max-time 5 "http://127.0.0.1:$PLAIN_PORT/owa/?before-rotation" || fail "request failed"
wait_log "$T/rot.log" 'path=/owa/\?before-rotation' 5 || fail "access line not in log_file"
mv "$T/rot.log" "$T/rot.log.1"
kill -USR1 "$EXSHIM_PID"
wait_file "$T/rot.log" 5 || fail "no new log file after SIGUSR1"
for i in 1 2 3 4 5 6; do
    curl -s -o /dev/null --max-time 5 "http://127.0.0.1:$PLAIN_PORT/owa/?after-rotation-$i" || fail "request failed"
done
# the superseded generation's worker logs its channel's access line when the channel ends
touch "$T/hold.stop"
timeout 20 tail --pid="$HOLD_PID" -f /dev/null
wait_log "$T/rot.log" 'worker [0-9]+ gen 1\[[0-9]+\] info: access .*method=RPC_(OUT|IN)_DATA' 5 ||
    fail "generation 1 still writes elsewhere: $(grep -c 'gen 1' "$T/rot.log.1") gen-1 lines in the old file"
wait_log "$T/rot.log" 'info: generation 1: all workers ended' 5 || fail "the master does not write to the new file"
n=$(grep -c 'path=/owa/?after-rotation' "$T/rot.log")
[ "$n" -eq 6 ] || fail "$n of 6 access lines in the new file"
! grep -q 'after-rotation' "$T/rot.log.1" || fail "lines after the rotation went to the renamed file"
grep -q 'gen 2\[[0-9]*\] info: access' "$T/rot.log" || fail "no access line of generation 2 in the new file"
# a second rotation through exshim -s reopen (what a logrotate postrotate script runs)
mv "$T/rot.log" "$T/rot.log.2"
"$EXSHIM" -s reopen -p "$T/exshim.pid" >"$T/s.out" 2>&1 || fail "-s reopen: $(cat "$T/s.out")"
wait_log "$T/rot.log" 'info: SIGUSR1: log file reopened' 5 || fail "-s reopen did not reopen the log"
curl -s -o /dev/null --max-time 5 "http://127.0.0.1:$PLAIN_PORT/owa/?after-reopen" || fail "request failed"
wait_log "$T/rot.log" 'gen 2\[[0-9]+\] info: access .*path=/owa/\?after-reopen' 5 || fail "workers did not reopen on -s reopen"
ops_stop
log "SIGUSR1 and -s reopen: master, current and superseded workers reopened log_file"

# -- (2) stderr is a pipe that nobody reads
ops_conf "$T/quiet.conf" '"NTLM"'
rm -f "$T/exshim.ready"
bg stuck "$PY" -u "$LABPY/stuck_stderr.py" --pid-file "$T/stuck.pid" --trigger "$T/stuck.read" \
    --out "$T/stderr.out" -- "$EXSHIM" -c "$T/quiet.conf" -r "$T/exshim.ready" -w 2
STUCK_PID=$LAST_PID
wait_file "$T/exshim.ready" 10 || fail "exshim did not start: $(cat "$T/stuck.log")"
wait_file "$T/stuck.pid" 5 || fail "no pid"
EXSHIM_PID=$(cat "$T/stuck.pid")
PLAIN_PORT=$(listener_port plain)
"$PY" - "$PLAIN_PORT" >"$T/burst.out" 2>&1 <<'PYEOF' || fail "requests with a full stderr: $(cat "$T/burst.out")"
import http.client, sys, threading, time
port = int(sys.argv[1])
ok, bad = [0], []
def run(n):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    for i in range(n):
        try:
            c.request("GET", "/owa/?burst=%d" % i)
            r = c.getresponse(); r.read()
            if r.status == 200: ok[0] += 1
            else: bad.append(r.status)
        except Exception as e:
            bad.append(repr(e)); c.close(); c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
t0 = time.monotonic()
ts = [threading.Thread(target=run, args=(200,)) for _ in range(10)]
for t in ts: t.start()
for t in ts: t.join(60)
dt = time.monotonic() - t0
print("ok=%d bad=%d seconds=%.2f" % (ok[0], len(bad), dt))
sys.exit(0 if ok[0] == 2000 and not bad and dt < 20 else 1)
PYEOF
burst=$(cat "$T/burst.out")
[ ! -s "$T/stderr.out" ] || fail "stderr was read before the trigger"
# now read the pipe; the next lines (and the once-a-second flush) report the loss
touch "$T/stuck.read"
for i in 1 2 3; do curl -s -o /dev/null --max-time 5 "http://127.0.0.1:$PLAIN_PORT/owa/?after"; sleep 0.3; done
wait_log "$T/stderr.out" 'warn: [0-9]+ log lines dropped' 5 || fail "no 'N log lines dropped' line once the pipe drained"
dropped=$(grep -o '[0-9]* log lines dropped' "$T/stderr.out" | awk '{ s += $1 } END { print s }')
[ "$dropped" -gt 0 ] || fail "no line counted as dropped"
wait_log "$T/stderr.out" 'path=/owa/\?after' 5 || fail "logging did not resume after the drain"
kill -TERM "$EXSHIM_PID"
timeout 15 tail --pid="$STUCK_PID" -f /dev/null || fail "exshim did not stop"
wait "$STUCK_PID" || fail "exshim exited non-zero"
pass "SIGUSR1 reopened log_file in every process; with a stuck stderr 2000 requests: $burst, $dropped lines dropped and reported"
