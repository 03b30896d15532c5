#!/bin/bash
# exshim-lab /rpc/rpcproxy.dll directly: an RPC over HTTP v2 virtual connection (OUT channel
# 200 Success + CONN/A3 + CONN/C2, IN channel with CONN/B1), PDUs echoed IN -> OUT in order,
# RTS pings on the idle OUT channel, the 20-byte echo response, both channels under NTLM,
# IN and OUT channel recycling.
. "$(dirname "$0")/lib.sh"
. "$E2E_DIR/realm.sh"
need curl
lab_start lab default --rpc-ping 300

"$PY" "$LABPY/rpch.py" --port "$LAB_PORT" --echo --pdus 50 --size 1024 --hold 1.1 >"$T/rpch.out" 2>&1 ||
    fail "rpch: $(cat "$T/rpch.out")"
cat "$T/rpch.out"
grep -q '^echo ok' "$T/rpch.out" || fail "no echo"
grep -q 'connection_timeout_ms=120000' "$T/rpch.out" || fail "CONN/A3 timeout"
pings=$(sed -n 's/^held .* pings=\([0-9]*\)/\1/p' "$T/rpch.out")
[ "${pings:-0}" -ge 2 ] || fail "expected >= 2 RTS pings in 1.1 s at 300 ms, got ${pings:-0}"
grep -q '^pdus=50 ok' "$T/rpch.out" || fail "PDUs not echoed"
# both channels were authenticated, each on its own connection
n=$(grep -c 'auth conn=.* vdir=/rpc scheme=NTLM mech=ntlm user=LAB\\alice verdict=ok' "$LAB_LOG")
[ "$n" -ge 3 ] || fail "expected 3 NTLM handshakes (echo, OUT, IN), got $n"
grep -q 'method=RPC_OUT_DATA path=/rpc/rpcproxy.dll vdir=/rpc status=200' "$LAB_LOG" || fail "no OUT 200"
grep -q 'method=RPC_IN_DATA path=/rpc/rpcproxy.dll vdir=/rpc status=0' "$LAB_LOG" || fail "IN channel was answered"

# NTLM under the Negotiate word on both channels
"$PY" "$LABPY/rpch.py" --port "$LAB_PORT" --auth negotiate-ntlm --pdus 5 >"$T/rpch2.out" 2>&1 ||
    fail "rpch negotiate-ntlm: $(cat "$T/rpch2.out")"

# an unauthenticated OUT channel gets IIS's 401
"$PY" "$LABPY/rpch.py" --port "$LAB_PORT" --auth none --expect-fail >"$T/rpch3.out" 2>&1 ||
    fail "anonymous RPC was accepted: $(cat "$T/rpch3.out")"
grep -q 'status 401' "$T/rpch3.out" || fail "anonymous: $(cat "$T/rpch3.out")"

# the OUT channel's response head as rpcproxy sends it (Content-Length 1 GiB, no chunking)
"$PY" - "$LAB_PORT" >"$T/head.out" <<'PYEOF' || fail "OUT head: $(cat "$T/head.out")"
import sys, os
sys.path.insert(0, os.environ["LABPY"])
import labclient as lc, rpch
c = lc.Conn("127.0.0.1", int(sys.argv[1]))
auth = lc.NtlmAuth("LAB\\alice", "Passw0rd!")
auth.handshake(c, "RPC_OUT_DATA", "/rpc/rpcproxy.dll?x:6001", [], 76)
c.send(rpch.conn_a1(os.urandom(16), os.urandom(16)))
r = c.read_head()
print(r.status, r.reason)
for k, v in r.headers:
    print("%s: %s" % (k, v))
assert r.status == 200 and r.reason == "Success", r.reason
assert r.get("Content-Length") == "1073741824"
assert r.get("Content-Type") == "application/rpc"
assert r.get("Transfer-Encoding") is None
PYEOF
lab_stop

# channel recycling: the lab asks for a new OUT channel every ~3000 bytes (OUT_R1/A2); the
# successor's 200 comes after OUT_R1/A3 alone (96 of its 120 bytes); the IN channel is
# replaced by the client (IN_R1/A1) on the way; PDUs keep coming back in order
lab_start rec default --rpc-recycle 3000
"$PY" "$LABPY/rpch.py" --port "$LAB_PORT" --pdus 40 --size 200 --recycle-in-after 15 --expect-recycle >"$T/rec.out" 2>&1 ||
    fail "recycling: $(cat "$T/rec.out")"
cat "$T/rec.out"
grep -q 'OUT channel replaces conn=' "$LAB_LOG" || fail "no OUT swap"
grep -q 'IN channel replaces conn=' "$LAB_LOG" || fail "no IN swap"
pass "RPC over HTTP: handshake, echo, pings, PDUs echoed in order, channel recycling"
