#!/usr/bin/env bash
# The command line and shutdown: -h and -V exit 0; -t accepts a good file and rejects bad
# ones with "FILE:LINE: KEY: message"; SIGTERM stops accepting, lets an exchange in flight
# (a chunked response with a 2 s gap) finish, and exits 0 within the grace period.
. "$(dirname "$0")/lib.sh"
need curl
[ -x "$EXSHIM" ] || skip "$EXSHIM not built"

"$EXSHIM" -h >"$T/h.out" 2>&1 || fail "exshim -h exits non-zero"
grep -q -- '-c' "$T/h.out" || fail "exshim -h prints no usage"
"$EXSHIM" -V >"$T/v.out" 2>&1 || fail "exshim -V exits non-zero"
grep -qi 'exshim' "$T/v.out" || fail "exshim -V prints no version"

start_origin
core_conf "$T/good.conf" "$ORIGIN_PORT"
"$EXSHIM" -t -c "$T/good.conf" >"$T/t.out" 2>&1 || fail "exshim -t rejects a good file: $(cat "$T/t.out")"

# an unknown key on line 3
printf 'workers = 1;\nlog_level = "info";\nno_such_key = 5;\n' >"$T/bad1.conf"
sed -n '/^listeners/,$p' "$T/good.conf" >>"$T/bad1.conf"
"$EXSHIM" -t -c "$T/bad1.conf" >"$T/t1.out" 2>&1 && fail "exshim -t accepts an unknown key"
grep -Eq 'bad1\.conf:3: no_such_key: .+' "$T/t1.out" || fail "unknown key: want 'bad1.conf:3: no_such_key: ...', got: $(cat "$T/t1.out")"
# an out-of-range value on line 2
printf 'workers = 1;\nmax_header_bytes = 10;\n' >"$T/bad2.conf"
sed -n '/^listeners/,$p' "$T/good.conf" >>"$T/bad2.conf"
"$EXSHIM" -t -c "$T/bad2.conf" >"$T/t2.out" 2>&1 && fail "exshim -t accepts max_header_bytes = 10"
grep -Eq 'bad2\.conf:2: max_header_bytes: .+' "$T/t2.out" || fail "bad value: want 'bad2.conf:2: max_header_bytes: ...', got: $(cat "$T/t2.out")"
log "-h, -V, -t good/bad: ok ($(head -1 "$T/t1.out"))"

# SIGTERM with a chunked response in flight
start_exshim "$T/good.conf"
P=$(listener_port plain)
curl -s -N --max-time 15 "http://127.0.0.1:$P/chunked-delay?delay=2" >"$T/inflight.out" 2>&1 &
curl_pid=$!
wait_log "$ORIGIN_LOG" '^chunk peer=[0-9]+ n=1 ' 5 || fail "in-flight request never started"
kill -TERM "$EXSHIM_PID"
sleep 0.3
st=$(curl -s --max-time 1 -o /dev/null -w '%{http_code}' "http://127.0.0.1:$P/echo/late" 2>/dev/null)
[ "$st" != 200 ] || fail "a new request was served after SIGTERM"
wait "$curl_pid" || fail "the in-flight request failed during shutdown: $(cat "$T/inflight.out")"
grep -q 'second chunk' "$T/inflight.out" || fail "the in-flight response was cut: $(cat "$T/inflight.out")"
for _ in $(seq 100); do kill -0 "$EXSHIM_PID" 2>/dev/null || break; sleep 0.1; done
kill -0 "$EXSHIM_PID" 2>/dev/null && fail "exshim still running 10 s after SIGTERM"
wait "$EXSHIM_PID"
rc=$?
[ "$rc" -eq 0 ] || fail "exshim exited $rc after SIGTERM, want 0"
pass "command line ok; SIGTERM drained the in-flight exchange and exited 0"
