#!/bin/bash
# exshim-lab /mapi/emsmdb directly: Connect (MapiContext/MapiSequence cookies), Execute echoes,
# NotificationWait with chunked PENDING every X-PendingPeriod (timed on arrival), Disconnect;
# X-RequestId / X-ClientInfo echoed; X-ResponseCode for missing headers and cookies.
. "$(dirname "$0")/lib.sh"
. "$E2E_DIR/realm.sh"
need curl
lab_start lab default --pending-period 400 --notify-hold 2100

"$PY" "$LABPY/mapi.py" --port "$LAB_PORT" --executes 5 --wait --min-pending 4 --pending-ms 400 >"$T/mapi.out" 2>&1 ||
    fail "mapi: $(cat "$T/mapi.out")"
cat "$T/mapi.out"
grep -q '^mapi ok' "$T/mapi.out" || fail "mapi client"
grep -q 'NotificationWait done after' "$LAB_LOG" || fail "no NotificationWait log line"

# Basic on /mapi is not offered in the default preset; NTLM under Negotiate works
"$PY" "$LABPY/mapi.py" --port "$LAB_PORT" --auth negotiate-ntlm --executes 1 >"$T/m2.out" 2>&1 ||
    fail "mapi negotiate-ntlm: $(cat "$T/m2.out")"

U="http://127.0.0.1:$LAB_PORT/mapi/emsmdb/?MailboxId=x@lab.test"
# missing X-RequestType -> 200 with X-ResponseCode 7
curl -s -D "$T/h7" -o /dev/null --ntlm -u 'LAB\alice:Passw0rd!' -X POST -d x -H 'X-RequestId: {1}:1' "$U"
tr -d '\r' <"$T/h7" | grep -qx 'X-ResponseCode: 7' || fail "missing X-RequestType: $(cat "$T/h7")"
# Execute without a context cookie -> 13
curl -s -D "$T/h13" -o /dev/null --ntlm -u 'LAB\alice:Passw0rd!' -X POST -d x \
    -H 'X-RequestType: Execute' -H 'X-RequestId: {1}:2' -H 'X-ClientInfo: {2}:1' "$U"
tr -d '\r' <"$T/h13" | grep -qx 'X-ResponseCode: 13' || fail "missing cookie: $(cat "$T/h13")"
tr -d '\r' <"$T/h13" | grep -qx 'X-ClientInfo: {2}:1' || fail "X-ClientInfo not echoed"
# Connect sets both cookies, scoped to /mapi/emsmdb, chunked with PROCESSING/DONE
curl -s -D "$T/hc" -o "$T/bc" --ntlm -u 'LAB\alice:Passw0rd!' -X POST -d x \
    -H 'X-RequestType: Connect' -H 'X-RequestId: {1}:3' -H 'X-ClientInfo: {2}:2' "$U"
tr -d '\r' <"$T/hc" | grep -q '^Set-Cookie: MapiContext=MAPI.*; path=/mapi/emsmdb' || fail "no MapiContext cookie"
tr -d '\r' <"$T/hc" | grep -q '^Set-Cookie: MapiSequence=' || fail "no MapiSequence cookie"
tr -d '\r' <"$T/hc" | grep -qx 'Transfer-Encoding: chunked' || fail "Connect not chunked"
head -c 12 "$T/bc" | grep -q PROCESSING || fail "no PROCESSING"
grep -q 'X-ElapsedTime' "$T/bc" || fail "no additional headers after DONE"
pass "MAPI/HTTP: Connect, Execute, NotificationWait PENDING timing, Disconnect, response codes"
