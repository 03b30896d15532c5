#!/bin/bash
# exshim-lab preset short-idle (F8): the lab drops any connection idle for --idle seconds,
# long-lived channels included, like a load balancer with a short idle timeout. Keep-alives
# slower than the timeout (the field) lose the channel; faster ones keep it.
. "$(dirname "$0")/lib.sh"
. "$E2E_DIR/realm.sh"
lab_start si short-idle --idle 2
"$PY" "$LABPY/rpch.py" --port "$LAB_PORT" --hold 3.5 --pdus 2 --expect-fail >"$T/o" 2>&1 ||
    fail "RPC channel survived a 3.5 s silence: $(cat "$T/o")"
grep -q 'cut\|closed' "$T/o" || fail "rpch: $(cat "$T/o")"
wait_log "$LAB_LOG" 'idle conn=[0-9]+ .*closed after silence' 5 || fail "no idle log line"
log "ok: idle RPC channel cut after 2 s"
"$PY" "$LABPY/mapi.py" --port "$LAB_PORT" --executes 1 --wait >"$T/o" 2>&1 &&
    fail "NotificationWait survived: $(cat "$T/o")"
log "ok: NotificationWait (PENDING every 30 s) cut after 2 s"
lab_stop
# keep-alives faster than the idle timeout keep both alive
lab_start si2 short-idle --idle 2 --rpc-ping 500 --pending-period 500 --notify-hold 3500
"$PY" "$LABPY/rpch.py" --port "$LAB_PORT" --hold 3.5 --in-ping 0.5 --pdus 2 >"$T/o" 2>&1 || fail "pinged RPC channel was cut: $(cat "$T/o")"
"$PY" "$LABPY/mapi.py" --port "$LAB_PORT" --executes 1 --wait --min-pending 5 >"$T/o" 2>&1 ||
    fail "NotificationWait with 500 ms PENDING was cut: $(cat "$T/o")"
pass "short-idle: channels silent longer than the idle timeout are dropped"
