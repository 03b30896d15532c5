#!/usr/bin/env bash
# systemd integration. With NOTIFY_SOCKET pointing at a datagram socket of the test's own:
# READY=1 (with STATUS=) once the workers listen, RELOADING=1 + MONOTONIC_USEC= then READY=1
# around a reload (a failed one too), STOPPING=1 on SIGTERM, all from the master's pid. And
# `systemd-analyze verify` accepts conf/exshim.service (a copy naming the built binary) without
# a single message, while it does complain about a copy with a misspelt directive.
. "$(dirname "$0")/lib.sh"
. "$E2E_DIR/ops.sh"
need openssl systemd-analyze

# -- the unit file
sed "s|/usr/local/sbin/exshim|$EXSHIM|g" "$TOP/conf/exshim.service" >"$T/exshim.service"
systemd-analyze verify "$T/exshim.service" >"$T/verify.out" 2>&1 || fail "systemd-analyze verify failed: $(cat "$T/verify.out")"
[ ! -s "$T/verify.out" ] || fail "systemd-analyze verify has remarks: $(cat "$T/verify.out")"
grep -q '^Type=notify$' "$T/exshim.service" || fail "the unit is not Type=notify"
grep -q '^ExecReload=/bin/kill -HUP \$MAINPID$' "$T/exshim.service" || fail "no ExecReload with SIGHUP"
sed 's/^ProtectHome=yes/ProtectHomes=yes/' "$T/exshim.service" >"$T/broken.service"
systemd-analyze verify "$T/broken.service" >"$T/verify-broken.out" 2>&1
grep -q 'ProtectHomes' "$T/verify-broken.out" || fail "verify does not notice a misspelt directive: $(cat "$T/verify-broken.out")"
log "systemd-analyze verify: clean"

# -- sd_notify
bg notify "$PY" -u "$LABPY/notify_sink.py" "$T/notify.sock" "$T/notify.msgs" --seconds 60
wait_log "$T/notify.msgs" '^listening' 5 || fail "notify sink did not start"
ops_lab_start
ops_cert cert >/dev/null
ops_conf "$T/exshim.conf" '"NTLM"'
NOTIFY_SOCKET=$T/notify.sock ops_start "$T/exshim.conf" -w 2
wait_log "$T/notify.msgs" "^pid=$EXSHIM_PID READY=1 \| STATUS=generation 1: 2 workers" 5 ||
    fail "no READY=1 from the master: $(cat "$T/notify.msgs")"
curl -s -o /dev/null --max-time 5 "http://127.0.0.1:$PLAIN_PORT/owa/" || fail "not serving after READY=1"

kill -HUP "$EXSHIM_PID"
wait_log "$T/notify.msgs" "READY=1 \| STATUS=generation 2: " 10 || fail "no READY=1 after the reload: $(cat "$T/notify.msgs")"
# a reload that fails: RELOADING=1, then READY=1 with the old generation
printf 'bogus = 1;\n' >>"$T/exshim.conf"
kill -HUP "$EXSHIM_PID"
wait_log "$T/exshim.log" 'reload failed, generation 2 keeps running: .*exshim.conf:[0-9]+: bogus: ' 10 || fail "no reload error"
wait_log "$T/notify.msgs" "READY=1 \| STATUS=generation 2: .*" 5 || fail "no READY=1 after the failed reload"
ops_stop
wait_log "$T/notify.msgs" "^pid=$EXSHIM_PID STOPPING=1 \| STATUS=stopping" 5 || fail "no STOPPING=1: $(cat "$T/notify.msgs")"

# the sequence, in order, every message from the master
"$PY" - "$T/notify.msgs" "$EXSHIM_PID" <<'PYEOF' || fail "notify sequence: $(cat "$T/notify.msgs")"
import re, sys
lines = [l.strip() for l in open(sys.argv[1]) if l.startswith("pid=")]
pid = sys.argv[2]
states = []
for l in lines:
    assert l.startswith("pid=%s " % pid), "not from the master: " + l
    f = l.split(" ", 1)[1].split(" | ")
    st = [x for x in f if not x.startswith("STATUS=") and not x.startswith("MONOTONIC_USEC=")]
    assert any(x.startswith("STATUS=") for x in f), "no STATUS: " + l
    if "RELOADING=1" in st:
        m = [x for x in f if x.startswith("MONOTONIC_USEC=")]
        assert m and int(m[0].split("=")[1]) > 0, "RELOADING=1 without MONOTONIC_USEC: " + l
    states.append(",".join(st))
want = ["READY=1", "RELOADING=1", "READY=1", "RELOADING=1", "READY=1", "STOPPING=1"]
assert states == want, "got %s, want %s" % (states, want)
print("sequence ok: " + " ".join(states))
PYEOF
pass "systemd-analyze verify clean; READY=1, RELOADING=1/READY=1 (twice, one failed), STOPPING=1 from the master"
