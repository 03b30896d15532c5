#!/bin/bash
# Node health for an L4 balancer (GET /healthz on the metrics listener):
# (a) exshim -s drain: /healthz goes 200 -> 503 "draining" within 100 ms of the command; a
#     keep-alive connection opened before gets Connection: close on its next response, new
#     connections (one every 0.4 s) are still accepted and answered (with Connection: close)
#     while a MAPI NotificationWait held across the drain completes; the master exits 0 by
#     itself between 1.8 s and 3 s after the last connection, made once all others ended
#     (nothing left, nothing accepted for 2 s).
# (b) under a small descriptor limit, idle connections exhaust the worker: /healthz says
#     "cannot accept: descriptor limit" meanwhile and 200 again within 6 s of their close; the
#     worker backs off instead of spinning on accept() (its CPU time stays small). Then a
#     drain held by one connection: SIGHUP ignored, SIGTERM makes it a stop within grace.
# (c) health-checked backends: one route's only server down leaves /healthz 200; every
#     route's down: 503 "no healthy backend"; 200 again once they are back; then -s drain:
#     "draining" wins, exshim_draining is 1, a PROXY protocol connection is still answered.
. "$(dirname "$0")/lib.sh"
. "$E2E_DIR/ops.sh"
. "$E2E_DIR/health.sh"
need curl prlimit awk
[ -x "$EXSHIM" ] || skip "$EXSHIM not built"

# healthz: "CODE BODY" of GET /healthz (BODY without its newline)
healthz() {
    local body code
    body=$(curl -s --max-time 3 -o - -w '\n%{http_code}' "http://127.0.0.1:$MPORT/healthz") ||
        { echo "curl-failed"; return; }
    code=${body##*$'\n'}
    echo "$code ${body%$'\n'*}"
}
# wait_healthz WANT SECONDS: polls every 100 ms until /healthz is WANT ("CODE BODY"); prints
# the milliseconds it took, or fails.
wait_healthz() {
    local want=$1 n=$(($2 * 10)) t0 got
    t0=$(now_ms)
    while [ "$n" -gt 0 ]; do
        got=$(healthz)
        if [ "$got" = "$want" ]; then
            echo $(($(now_ms) - t0))
            return 0
        fi
        sleep 0.1
        n=$((n - 1))
    done
    fail "/healthz still '$got' after $2 s, want '$want'"
}
metrics_port() {
    MPORT=$(sed -n 's/.*metrics on 127\.0\.0\.1:\([0-9]*\) .*/\1/p' "$T/exshim.log" | tail -n 1)
    [ -n "$MPORT" ] || fail "no 'metrics on' line in the log"
}

# ---- (a) -s drain -------------------------------------------------------------------------
ops_lab_start --notify-hold 3000 --pending-period 500
ops_cert cert >/dev/null
ops_conf "$T/exshim.conf" '"NTLM"' 'workers = 2; drain_timeout = "30s";
metrics = { address = "127.0.0.1:0"; };'
ops_start "$T/exshim.conf"
metrics_port
[ "$(healthz)" = "200 ok" ] || fail "/healthz before the drain: $(healthz)"

# a NotificationWait held for 3 s, started before the drain
$PY -u "$E2E_DIR/clients/mapi.py" --port "$PLAIN_PORT" --auth none --executes 1 --wait \
    --min-pending 3 >"$T/mapi.out" 2>&1 &
MAPI_PID=$!
PIDS+=("$MAPI_PID")
wait_log "$T/mapi.out" '^pending 1 ' 5 || fail "the NotificationWait did not start: $(cat "$T/mapi.out")"

cat >"$T/drain.py" <<'EOF'
import socket, subprocess, sys, time
sys.path.insert(0, sys.argv[1])
import labclient as lc
exshim, pidfile, port, mport = sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])

def healthz():
    s = socket.create_connection(("127.0.0.1", mport), timeout=2)
    s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    data = b""
    while True:
        d = s.recv(4096)
        if not d:
            break
        data += d
    s.close()
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split(b" ")[1]), body.decode()

def closes(r):
    return "close" in (r.get("Connection") or "").lower()

ka = lc.Conn("127.0.0.1", port)
r = ka.request("GET", "/owa/?before")
assert r.status == 200 and not closes(r), "before the drain: %d %r" % (r.status, r.headers)
assert healthz() == (200, "ok\n")
t0 = time.monotonic()
subprocess.run([exshim, "-s", "drain", "-p", pidfile], check=True)
while True:
    st = healthz()
    ms = (time.monotonic() - t0) * 1000
    if st == (503, "draining\n"):
        break
    if ms > 2000:
        sys.exit("still %r %.0f ms after -s drain" % (st, ms))
print("healthz_ms=%.0f" % ms)
r = ka.request("GET", "/owa/?keepalive-after")
print("keepalive_after=%d close=%s" % (r.status, closes(r)))
n = lc.Conn("127.0.0.1", port)
r = n.request("GET", "/owa/?new-after")
print("new_after=%d close=%s" % (r.status, closes(r)))
n.close()
ka.close()
EOF
$PY "$T/drain.py" "$E2E_DIR/clients" "$EXSHIM" "$T/exshim.pid" "$PLAIN_PORT" "$MPORT" \
    >"$T/drain.out" 2>&1 || fail "drain client: $(cat "$T/drain.out")"
cat "$T/drain.out"
ms=$(sed -n 's/^healthz_ms=//p' "$T/drain.out")
[ "$ms" -le 100 ] || fail "/healthz said draining $ms ms after -s drain, want <= 100"
grep -q '^keepalive_after=200 close=True$' "$T/drain.out" ||
    fail "keep-alive connection after the drain: $(cat "$T/drain.out")"
grep -q '^new_after=200 close=True$' "$T/drain.out" ||
    fail "new connection after the drain: $(cat "$T/drain.out")"
wait_log "$T/exshim.log" 'info: drain: .* [0-9]+ sessions open' 2 || fail "no drain start line"
kill -0 "$EXSHIM_PID" 2>/dev/null || fail "exshim exited while the NotificationWait was held"

# the balancer still sends a connection now and then until its next check: each is served
# (with Connection: close) while the NotificationWait runs
during=0 ntlm_during=0 t_end=$(($(now_ms) + 10000))
while kill -0 "$MAPI_PID" 2>/dev/null && [ "$(now_ms)" -lt "$t_end" ]; do
    out=$(curl -s -i --max-time 5 "http://127.0.0.1:$PLAIN_PORT/owa/?during") || fail "request during the drain failed"
    grep -q '^HTTP/1.1 200' <<<"$out" && grep -qi '^connection: close' <<<"$out" ||
        fail "request during the drain: $out"
    during=$((during + 1))
    if [ "$during" -eq 1 ]; then
        # an NTLM handshake on a new connection: its challenge must not carry the close
        code=$(curl -s -o "$T/ntlm.body" -w '%{http_code}' --max-time 5 --ntlm -u 'LAB\alice:Passw0rd!' \
            -D "$T/ntlm.head" "http://127.0.0.1:$PLAIN_PORT/ews/?ntlm-during")
        [ "$code" = 200 ] || fail "NTLM handshake during the drain: $code $(cat "$T/ntlm.head")"
        ntlm_during=1
    fi
    sleep 0.4
done
wait "$MAPI_PID" || fail "the NotificationWait across the drain failed: $(cat "$T/mapi.out")"
grep -q '^mapi ok' "$T/mapi.out" || fail "mapi: $(cat "$T/mapi.out")"
[ "$during" -ge 2 ] || fail "only $during requests while the NotificationWait ran"
kill -0 "$EXSHIM_PID" 2>/dev/null || fail "exshim exited less than 2 s after a connection"

# the last connection, after every other one ended: the node ends 2 s after it
out=$(curl -s -i --max-time 5 "http://127.0.0.1:$PLAIN_PORT/owa/?last") || fail "last request failed"
last_ms=$(now_ms)
grep -qi '^connection: close' <<<"$out" || fail "last request: no Connection: close: $out"
n=200 # 10 s in steps of 50 ms (tail --pid would only look once a second)
while kill -0 "$EXSHIM_PID" 2>/dev/null && [ "$(ps -o stat= -p "$EXSHIM_PID" | cut -c1)" != Z ]; do
    n=$((n - 1))
    [ "$n" -gt 0 ] || fail "exshim still running 10 s after the last request"
    sleep 0.05
done
exit_ms=$(now_ms)
wait "$EXSHIM_PID"
rc=$?
[ "$rc" -eq 0 ] || fail "exshim exited $rc after the drain, want 0"
took=$((exit_ms - last_ms))
log "master exited $took ms after the last connection"
[ "$took" -ge 1800 ] && [ "$took" -le 3000 ] || fail "exit $took ms after the last connection, want 1800..3000"
grep -q 'info: drain ended after .*: no session left and nothing accepted for 2 s' "$T/exshim.log" ||
    fail "no drain end line"
served=$(grep -c ' access .*path=/owa/?\(before\|keepalive-after\|new-after\|during\|last\) ' "$T/exshim.log")
[ "$served" -eq $((4 + during)) ] || fail "$served of $((4 + during)) /owa requests in the access log"
[ "$ntlm_during" -eq 1 ] || fail "no NTLM handshake was tried during the drain"
cp "$T/exshim.log" "$T/a-exshim.log.txt"

# ---- (b) descriptor limit -----------------------------------------------------------------
NOFILE=48 HOLD=80
# max_connections above what 48 descriptors hold (the default would follow the limit and
# stop accepting first): the accept() that fails for want of a descriptor is the case here.
cat >"$T/b.conf" <<EOC
workers = 1;
log_level = "info";
grace = "2s";
max_connections = 1000;
metrics = { address = "127.0.0.1:0"; };
listeners = ( { name = "plain"; address = "127.0.0.1:0"; } );
backends = ( { name = "lab"; servers = [ "127.0.0.1:$LAB_PORT" ]; } );
routes = ( { path = "/owa"; backend = "lab"; header_timeout = "60s"; } );
EOC
rm -f "$T/exshim.ready" "$T/exshim.pid"
bg exshim prlimit --nofile="$NOFILE" "$EXSHIM" -c "$T/b.conf" -r "$T/exshim.ready" -p "$T/exshim.pid"
EXSHIM_PID=$LAST_PID
wait_file "$T/exshim.ready" 10 || fail "exshim (nofile $NOFILE) did not become ready"
wait_file "$T/exshim.pid" 5 || fail "exshim wrote no pid file"
PLAIN_PORT=$(listener_port plain)
metrics_port
[ "$(healthz)" = "200 ok" ] || fail "/healthz before exhausting descriptors: $(healthz)"
WPID=$(sed -n 's/.* info: generation 1: 1 workers, pids //p' "$T/exshim.log" | tail -n 1)
[ -r "/proc/$WPID/stat" ] || fail "no worker pid"
ticks() { awk '{ print $14 + $15 }' "/proc/$WPID/stat"; }

cat >"$T/hold.py" <<'EOF'
import os, socket, sys, time
port, n, stop = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
socks = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(n)]
print("holding %d" % len(socks), flush=True)
deadline = time.monotonic() + 60
while not os.path.exists(stop) and time.monotonic() < deadline:
    time.sleep(0.05)
for s in socks:
    s.close()
print("closed", flush=True)
EOF
bg hold $PY "$T/hold.py" "$PLAIN_PORT" "$HOLD" "$T/hold.stop"
HOLD_PID=$LAST_PID
wait_log "$T/hold.log" '^holding' 10 || fail "could not open $HOLD connections: $(cat "$T/hold.log")"
ms=$(wait_healthz "503 cannot accept: descriptor limit" 5)
log "descriptors exhausted: /healthz said so after $ms ms"
t1=$(ticks)
sleep 3
[ "$(healthz)" = "503 cannot accept: descriptor limit" ] || fail "/healthz while exhausted: $(healthz)"
t2=$(ticks)
spent=$((t2 - t1))
log "worker CPU while exhausted: $spent ticks in 3 s"
[ "$spent" -le 30 ] || fail "worker used $spent CPU ticks in 3 s out of descriptors: spinning"
grep -q 'accept: Too many open files; pausing accepts' "$T/exshim.log" || fail "no EMFILE line"
touch "$T/hold.stop"
wait_log "$T/hold.log" '^closed' 5 || fail "holder did not close"
ms=$(wait_healthz "200 ok" 8)
log "connections closed: /healthz 200 again after $ms ms"
[ "$ms" -le 6500 ] || fail "/healthz 200 only $ms ms after the connections closed, want <= 6500"
c=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 "http://127.0.0.1:$PLAIN_PORT/owa/?after-emfile")
[ "$c" = 200 ] || fail "request after the exhaustion: HTTP $c"
# a drain held open by a connection: SIGHUP is ignored, SIGTERM turns it into a stop (grace 2 s)
rm -f "$T/hold.stop"
bg hold2 $PY "$T/hold.py" "$PLAIN_PORT" 1 "$T/hold.stop"
wait_log "$T/hold2.log" '^holding' 5 || fail "could not open a connection"
"$EXSHIM" -s drain -p "$T/exshim.pid" || fail "-s drain"
wait_log "$T/exshim.log" 'info: drain: .* 1 sessions open' 2 || fail "no drain line with 1 session"
"$EXSHIM" -s reload -p "$T/exshim.pid" || fail "-s reload"
wait_log "$T/exshim.log" 'SIGHUP while draining: ignored' 2 || fail "SIGHUP during the drain not ignored"
sleep 2.5
kill -0 "$EXSHIM_PID" 2>/dev/null || fail "exshim ended its drain with a connection open"
stop_ms=$(now_ms)
kill -TERM "$EXSHIM_PID"
timeout 10 tail --pid="$EXSHIM_PID" -f /dev/null || fail "exshim still running 10 s after SIGTERM"
wait "$EXSHIM_PID" || fail "exshim exited $? after a drain turned stop"
stopped=$(($(now_ms) - stop_ms))
[ "$stopped" -le 4500 ] || fail "the stop during the drain took $stopped ms (grace 2 s)"
grep -q 'signal 15: stopping workers (the drain becomes a stop)' "$T/exshim.log" ||
    fail "no 'drain becomes a stop' line"
touch "$T/hold.stop"

# ---- (c) every backend down ---------------------------------------------------------------
hlab_start 1
hlab_start 2
cat >"$T/c.conf" <<EOC
workers = 2;
log_level = "info";
grace = "2s";
metrics = { address = "127.0.0.1:0"; };
listeners = ( { name = "plain"; address = "127.0.0.1:0"; },
              { name = "pp"; address = "127.0.0.1:0"; proxy_protocol = true;
                proxy_from = [ "127.0.0.1" ]; } );
backends = (
  { name = "owa"; servers = [ "127.0.0.1:$LAB1_PORT" ]; connect_timeout = "1s";
    health = { path = "/owa/healthcheck.htm"; interval = "300ms"; timeout = "200ms";
               rise = 1; fall = 1; expect = 200; }; },
  { name = "mapi"; servers = [ "127.0.0.1:$LAB2_PORT" ]; connect_timeout = "1s";
    health = { path = "/owa/healthcheck.htm"; interval = "300ms"; timeout = "200ms";
               rise = 1; fall = 1; expect = 200; }; }
);
routes = ( { path = "/owa"; backend = "owa"; }, { path = "/mapi"; backend = "mapi"; } );
EOC
ops_start "$T/c.conf"
metrics_port
wait_healthz "200 ok" 3 >/dev/null
kill -9 "$LAB1_PID"
wait_log "$T/exshim.log" "backend owa server 127.0.0.1:$LAB1_PORT .*is down" 5 || fail "owa not down"
sleep 0.5
[ "$(healthz)" = "200 ok" ] || fail "/healthz with one route still served: $(healthz)"
kill -9 "$LAB2_PID"
ms=$(wait_healthz "503 no healthy backend" 5)
log "every backend down: /healthz 503 after $ms ms"
c=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 "http://127.0.0.1:$PLAIN_PORT/owa/")
[ "$c" = 503 ] || fail "request with every backend down: HTTP $c"
hlab_start 1 "$LAB1_PORT"
ms=$(wait_healthz "200 ok" 5)
log "one backend back: /healthz 200 after $ms ms"
kill -9 "$LAB1_PID"
wait_healthz "503 no healthy backend" 5 >/dev/null
# draining wins over the backend state in the body
"$EXSHIM" -s drain -p "$T/exshim.pid" || fail "-s drain"
wait_healthz "503 draining" 1 >/dev/null
# a PROXY protocol connection accepted during the drain is answered too (here the 503 of a
# pool with no healthy server), not closed
PP_PORT=$(listener_port pp)
out=$(curl -s -i --max-time 5 --haproxy-protocol "http://127.0.0.1:$PP_PORT/owa/?pp-during") ||
    fail "PROXY connection during the drain: curl failed"
grep -q '^HTTP/1.1 503' <<<"$out" && grep -qi '^connection: close' <<<"$out" ||
    fail "PROXY connection during the drain: $out"
curl -s --max-time 3 "http://127.0.0.1:$MPORT/metrics" | grep -q '^exshim_draining 1$' ||
    fail "exshim_draining is not 1 while draining"
timeout 10 tail --pid="$EXSHIM_PID" -f /dev/null || fail "exshim did not end its drain (no session)"
wait "$EXSHIM_PID" || fail "exshim exited $? after an idle drain"
pass "drain: /healthz 503 within 100 ms, new and keep-alive connections served with close, NotificationWait completed, exit ${took} ms after the last connection; descriptor limit reported, ${spent} CPU ticks in 3 s; no healthy backend reported and cleared"
