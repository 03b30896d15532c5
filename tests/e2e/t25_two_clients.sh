#!/usr/bin/env bash
# Connection pinning (F6, D.1): two keep-alive clients interleave 20 requests each; each
# client's requests always travel on its own backend connection (the origin names the peer
# it saw in X-Origin-Peer), and the two clients never share one. Two workers (SO_REUSEPORT).
. "$(dirname "$0")/lib.sh"
CORE_WORKERS=2 start_core
"$PY" "$CLIENTS/core_check.py" pair --port "$TLS_PORT" --tls --n 20 || fail "TLS clients were mixed"
"$PY" "$CLIENTS/core_check.py" pair --port "$PLAIN_PORT" --n 20 || fail "plain clients were mixed"
for _ in $(seq 100); do # the backend connections close shortly after the clients leave
    [ "$(origin_count '^close peer=')" -ge 4 ] && break
    sleep 0.05
done
n=$(origin_count '^accept peer=')
[ "$n" -eq 4 ] || fail "origin accepted $n connections for 4 client connections, want 4"
[ "$(origin_count 'requests=20 ')" -eq 4 ] || fail "each backend connection should carry exactly 20 requests: $(grep '^close' "$ORIGIN_LOG")"
pass "2 x 20 interleaved requests, one backend connection per client, never shared"
