#!/usr/bin/env bash
# Fairness under an arrival burst (issue "relay rebuild", item 5). One worker with
# max_accept = 4 and max_handshakes = 1; an established TLS keep-alive connection does
# request/response round trips through the origin, back to back, while a burst of 2,000
# plain and 200 TLS clients connects at once (each asks for an unrouted path and must get
# exshim's own 404). Asserts:
#  - every burst client is served (2,200 404s) within 60 s;
#  - the worker capped its accept loop: "max_accept (4) reached" logged in several turns;
#  - the handshake gate held handshakes back: "max_handshakes (1) reached" logged;
#  - the established connection kept going during the burst: it completed round trips while
#    the burst ran, none failed, and none took 1 s or more;
#  - for contrast, the same burst with max_accept = 100000 and max_handshakes = 10000 logs
#    neither line (what the first run counted comes from the caps, not from the load).
. "$(dirname "$0")/lib.sh"
need openssl
[ -x "$EXSHIM" ] || skip "$EXSHIM not built"
start_origin
self_signed server localhost

cat >"$T/fair.py" <<'EOF'
import asyncio, socket, ssl, sys, time

def tls_ctx():
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx

def echo(port, ready, stop, limit):
    """Keep-alive round trips on one TLS connection until the stop file appears: their latency."""
    import os
    s = tls_ctx().wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=10))
    n, worst, fails, lat = 0, 0.0, 0, []
    buf = b""
    t_end = time.monotonic() + limit
    while time.monotonic() < t_end:
        t0 = time.monotonic()
        s.sendall(b"GET /echo/%d HTTP/1.1\r\nHost: localhost\r\n\r\n" % n)
        while b"\r\n\r\n" not in buf:
            d = s.recv(65536)
            if not d:
                print("result closed after %d round trips" % n)
                sys.exit(1)
            buf += d
        head, buf = buf.split(b"\r\n\r\n", 1)
        cl = 0
        for line in head.split(b"\r\n")[1:]:
            k, _, v = line.partition(b":")
            if k.strip().lower() == b"content-length":
                cl = int(v)
        while len(buf) < cl:
            d = s.recv(65536)
            if not d:
                sys.exit(1)
            buf += d
        buf = buf[cl:]
        if not head.startswith(b"HTTP/1.1 200"):
            fails += 1
        t1 = time.monotonic()
        worst = max(worst, t1 - t0)
        lat.append(t1 - t0)
        n += 1
        if n == 1:
            with open(ready, "w") as f:
                f.write("up\n")
        if os.path.exists(stop):
            break
        time.sleep(0.005)  # ~150 round trips a second: a channel, not a load of its own
    lat.sort()
    print("result trips=%d fails=%d max_ms=%.1f p99_ms=%.1f" % (n, fails, worst * 1000, lat[int(len(lat) * 0.99)] * 1000))

async def one(port, tls):
    try:
        r, w = await asyncio.wait_for(
            asyncio.open_connection("127.0.0.1", port, ssl=tls_ctx() if tls else None), 40)
        w.write(b"GET /nowhere HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        data = await asyncio.wait_for(r.read(), 40)
        w.close()
        return data.startswith(b"HTTP/1.1 404")
    except Exception:
        return False

async def burst(plain, tls, nplain, ntls):
    t0 = time.monotonic()
    tasks = [one(plain, False) for _ in range(nplain)] + [one(tls, True) for _ in range(ntls)]
    res = await asyncio.gather(*tasks)
    print("result served=%d of %d in %.1f s" % (sum(res), len(res), time.monotonic() - t0))
    sys.exit(0 if all(res) else 1)

if sys.argv[1] == "echo":
    echo(int(sys.argv[2]), sys.argv[3], sys.argv[4], float(sys.argv[5]))
else:
    asyncio.run(burst(int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])))
EOF

# run NAME MAX_ACCEPT MAX_HANDSHAKES: one exshim, the echo connection, the burst; sets GAP.
run() {
    local name=$1
    cat >"$T/$name.conf" <<EOC
workers = 1;
log_level = "debug";
access_log = false;
max_accept = $2;
max_handshakes = $3;
listeners = (
  { name = "tls"; address = "127.0.0.1:0";
    tls = { certs = ( { chain = "server.pem"; key = "server.key"; } ); }; },
  { name = "plain"; address = "127.0.0.1:0"; }
);
backends = ( { name = "origin"; servers = [ "127.0.0.1:$ORIGIN_PORT" ]; connect_timeout = "2s"; } );
routes = ( { path = "/echo"; backend = "origin"; idle_timeout = "5m"; } );
EOC
    start_exshim "$T/$name.conf"
    local tls plain
    tls=$(listener_port tls)
    plain=$(listener_port plain)
    rm -f "$T/$name.ready" "$T/$name.stop"
    bg "$name-echo" "$PY" -u "$T/fair.py" echo "$tls" "$T/$name.ready" "$T/$name.stop" 90
    local epid=$LAST_PID
    wait_file "$T/$name.ready" 10 || fail "$name: the established connection did not start: $(cat "$T/$name-echo.log")"
    sleep 0.5
    timeout 70 "$PY" -u "$T/fair.py" burst "$plain" "$tls" 2000 200 >"$T/$name-burst.log" 2>&1 ||
        fail "$name: burst clients not all served: $(tail -3 "$T/$name-burst.log")"
    touch "$T/$name.stop"
    timeout 20 tail --pid="$epid" -f /dev/null
    wait "$epid" || fail "$name: the established connection failed: $(tail -3 "$T/$name-echo.log")"
    local r
    r=$(grep '^result' "$T/$name-echo.log")
    log "$name: $(cat "$T/$name-burst.log"); established: $r"
    GAP=$(sed -n 's/.*max_ms=\([0-9.]*\).*/\1/p' <<<"$r")
    TRIPS=$(sed -n 's/.*trips=\([0-9]*\).*/\1/p' <<<"$r")
    grep -q ' fails=0 ' <<<"$r" || fail "$name: established round trips failed: $r"
    kill "$EXSHIM_PID"
    timeout 10 tail --pid="$EXSHIM_PID" -f /dev/null
    cp "$T/exshim.log" "$T/$name.exshim.log"
}

run capped 4 1
capped_accept=$(grep -c 'max_accept (4) reached in this loop turn' "$T/capped.exshim.log")
capped_hs=$(grep -c 'max_handshakes (1) reached in this loop turn' "$T/capped.exshim.log")
[ "$capped_accept" -ge 2 ] || fail "accepts were not capped at max_accept = 4 ($capped_accept capped turns)"
[ "$capped_hs" -ge 1 ] || fail "handshakes were not held back at max_handshakes = 1"
[ "$TRIPS" -ge 20 ] || fail "the established connection made only $TRIPS round trips"
awk -v g="$GAP" 'BEGIN { exit !(g < 1000) }' || fail "established connection had a ${GAP} ms round trip during the burst"
capped_gap=$GAP

run open 100000 10000
! grep -q 'max_accept (.*) reached' "$T/open.exshim.log" || fail "max_accept line without the cap"
! grep -q 'max_handshakes (.*) reached' "$T/open.exshim.log" || fail "max_handshakes line without the cap"
pass "2,200 burst clients served; $capped_accept accept turns capped at 4, $capped_hs handshake turns at 1; established keep-alive slowest round trip ${capped_gap} ms (uncapped: ${GAP} ms)"
