#!/usr/bin/env bash
# Three exshim nodes behind an L4 balancer (deploy/l4lab.sh: network namespaces, nftables
# DNAT round robin over the nodes that keepalived finds healthy through /healthz, three
# exshim-lab servers behind them). Through the virtual address, with real NTLM on every
# connection, from 100 client addresses and 100 users:
#   1,000 RPC/HTTP sessions, 100 MAPI/HTTP sessions, and 2 loops of short connections
#   (connect, NTLM, one request, close) so that new connections keep arriving.
# Then one node is drained (exshim -s drain) and another is killed (SIGKILL to its master
# and workers). Asserts:
#   - every node got sessions (printed per node);
#   - per client address, every /rpc and /mapi request, whichever node it passed and
#     reconnects included, went to one backend server (rendezvous hashing of the address);
#   - no lab connection carried two users or both channels of a session; per node and
#     server, exshim's client connections with that backend are not more than the lab's
#     connections from that node (a backend connection never serves two clients);
#   - the drained node's last new connection came within keepalived's check interval x
#     fall + curl's timeout + 2 s of the drain command (a check already in flight at the
#     drain may still see 200, and a loaded machine delays the notify script), and no request
#     failed that a client would not retry (auth, protocol, unexpected status);
#   - after the kill, the sessions it held reconnect through the other nodes with new NTLM
#     handshakes and every session is up again at the end.
. "$(dirname "$0")/lib.sh"
[ "$(id -u)" -eq 0 ] || skip "needs root (network namespaces)"
need ip nft keepalived curl flock
BENCH=${EXSHIM_BENCH:-$BUILD/exshim-bench}
for b in "$EXSHIM" "$EXSHIM_LAB" "$BENCH"; do [ -x "$b" ] || skip "$b not built"; done
probe=exl4t-probe$$
ip netns add "$probe" 2>/dev/null || skip "ip netns add does not work here"
ip netns exec "$probe" nft list tables >/dev/null 2>&1 || { ip netns del "$probe"; skip "nft does not work in a network namespace"; }
ip netns del "$probe"

L4="$TOP/deploy/l4lab.sh"
# a prefix of this run's own: two runs at once (two developers' test suites) do not meet
export L4_PREFIX=exl4t$$- L4_DIR="$T/l4" L4_NODES=3 L4_LABS=3 L4_CLIENTS=100 L4_USERS=100 BUILD \
    EXSHIM EXSHIM_LAB
D=$L4_DIR
now_ms() { date +%s%3N; }
trap 'rc=$?; "$L4" down >/dev/null 2>&1; (exit $rc); cleanup' EXIT
VIP=10.92.1.250
RPC_SESSIONS=1000 MAPI_SESSIONS=100
CHECK_INTERVAL_MS=1000 CHECK_FALL=1 CURL_MAX_MS=1000 # deploy/l4lab.sh's vrrp_script
ns() {
    local n=$1
    shift
    ip netns exec "$L4_PREFIX$n" "$@"
}
# sum of a metric over the nodes that answer
metric_sum() {
    local i total=0 v
    for i in 1 2 3; do
        v=$(ns lb curl -s --max-time 1 "http://10.92.2.1$i:9120/metrics" 2>/dev/null |
            awk -v m="$1" 'index($0, m) == 1 { s += $NF } END { print s + 0 }')
        total=$((total + ${v:-0}))
    done
    echo "$total"
}

log "setting up the namespaces"
"$L4" up >"$T/up.log" 2>&1 || { cat "$T/up.log"; fail "deploy/l4lab.sh up failed"; }

src=10.92.1.10-109
common=(--url "https://$VIP:443" --users "$D/users" --source-addrs "$src" --quiet --reconnect
    --setup-timeout 20)
HOLD=45
bg rpc ns cli "$BENCH" "${common[@]}" --mode rpc --sessions $RPC_SESSIONS --rate 100 --procs 2 \
    --hold $HOLD --echo-ms 2000 --ping-ms 10000 --max-time 90 --json "$T/rpc.json"
RPC_PID=$LAST_PID
bg mapi ns cli "$BENCH" "${common[@]}" --mode mapi --sessions $MAPI_SESSIONS --rate 20 \
    --req-rate 1 --hold $HOLD --max-time 90 --json "$T/mapi.json"
MAPI_PID=$LAST_PID
bg churn ns cli "$BENCH" "${common[@]}" --mode handshake --sessions 1 --hold $((HOLD + 2)) \
    --max-time 90 --json "$T/churn.json"
CHURN_PID=$LAST_PID

# every session up: client connections on the nodes = 2 per RPC session + 2 per MAPI session
# (+ the churn loops' short ones)
want=$((2 * RPC_SESSIONS + 2 * MAPI_SESSIONS))
n=0
while [ "$(metric_sum 'exshim_client_connections{')" -lt "$want" ]; do
    n=$((n + 1))
    [ $n -lt 120 ] || fail "sessions not up after 60 s: $(metric_sum 'exshim_client_connections{') client connections, want $want"
    sleep 0.5
done
log "all $RPC_SESSIONS RPC and $MAPI_SESSIONS MAPI sessions up ($(metric_sum 'exshim_client_connections{') client connections)"
sleep 2

# ---- drain node 2 ----
DRAINED=2 KILLED=3
t_drain=$(now_ms)
"$EXSHIM" -s drain -p "$D/node$DRAINED.pid" >"$T/drain.log" 2>&1 || fail "exshim -s drain failed: $(cat "$T/drain.log")"
sleep 1.5
# exshim -s drain was SIGTERM (listeners closed at once) before the drain of issue 13 landed:
# tell the two apart by whether the drained node still accepts
# tell the two apart by whether the drained node still answers a new connection (its master
# keeps the listening sockets either way, so a bare connect succeeds in both)
code=$(ns lb curl -sk -o /dev/null -w '%{http_code}' --max-time 2 "https://10.92.2.1$DRAINED/rpc/healthcheck.htm")
if [ "$code" = 200 ]; then
    DRAIN_MODE=accepting
else
    DRAIN_MODE=closed
fi
hz=$(ns lb curl -s --max-time 1 "http://10.92.2.1$DRAINED:9120/healthz")
log "drained node$DRAINED: new connections $DRAIN_MODE ($code) 1.5 s later, /healthz '${hz:-no answer}'"
sleep 6.5

# ---- kill node 3: master and workers ----
master=$(cat "$D/node$KILLED.pid")
workers=$(pgrep -P "$master" | tr '\n' ' ')
t_kill=$(now_ms)
kill -9 "$master" $workers 2>/dev/null || fail "cannot kill node$KILLED ($master $workers)"
log "killed node$KILLED (master $master, workers $workers)"
# the surviving node holds every session again (the drained one may keep its old channels)
n=0
while :; do
    up=$(metric_sum 'exshim_client_connections{')
    [ "$up" -ge "$want" ] && break
    n=$((n + 1))
    [ $n -lt 120 ] || fail "sessions not back 60 s after the kill: $up client connections, want $want"
    sleep 0.5
done
t_back=$(now_ms)
log "sessions back $((t_back - t_kill)) ms after the kill"

for p in $RPC_PID $MAPI_PID $CHURN_PID; do
    timeout 120 tail --pid="$p" -f /dev/null || fail "bench $p did not finish"
done
t_end=$(now_ms)
for f in rpc mapi churn; do [ -s "$T/$f.json" ] || fail "no report from the $f bench: $(tail -5 "$T/$f.log")"; done
sleep 1.5 # the nodes log the channels that closed at the end of the run
# the drained node exits by itself once its last session is gone (the drain of issue 13)
drained_master=$(cat "$D/node$DRAINED.pid" 2>/dev/null)
drained_exit=gone
if [ -n "$drained_master" ] && kill -0 "$drained_master" 2>/dev/null; then
    timeout 10 tail --pid="$drained_master" -f /dev/null && drained_exit="exited" || drained_exit="still running"
fi

"$PY" - "$D" "$T" "$t_drain" "$t_kill" "$t_end" "$DRAINED" "$KILLED" "$DRAIN_MODE" \
    "$((CHECK_INTERVAL_MS * CHECK_FALL + CURL_MAX_MS + 2000))" "$RPC_SESSIONS" "$MAPI_SESSIONS" \
    "$drained_exit" <<'EOF' || fail "see above"
import collections, datetime, json, re, sys

D, T = sys.argv[1], sys.argv[2]
t_drain, t_kill, t_end = int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
drained, killed, mode = int(sys.argv[6]), int(sys.argv[7]), sys.argv[8]
limit, n_rpc, n_mapi, drained_exit = int(sys.argv[9]), int(sys.argv[10]), int(sys.argv[11]), sys.argv[12]
bad = []

def ms(ts):
    d = datetime.datetime.strptime(ts, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=datetime.timezone.utc)
    return int(d.timestamp() * 1000)

acc = re.compile(r'^(\S+) .* access sid=(\d+) client=([\d.]+):(\d+) method=(\S+) path=(\S+) '
                 r'status=(\d+) .* ms=(\d+) backend=(\S+)')
sids = {}           # (node, sid) -> dict
per_ip = collections.defaultdict(set)       # client ip -> backend servers
ip_nodes = collections.defaultdict(set)     # client ip -> nodes
five_in_drain = 0
for node in (1, 2, 3):
    for line in open(f"{D}/node{node}.log", errors="replace"):
        m = acc.match(line)
        if not m:
            continue
        ts, sid, ip, port, meth, path, status, dur, be = m.groups()
        start = ms(ts) - int(dur)
        k = (node, sid)
        s = sids.setdefault(k, {"start": start, "ip": ip, "meths": set(), "paths": set(), "be": set()})
        s["start"] = min(s["start"], start)
        s["meths"].add(meth)
        # a 502/503/504 line names a server even when none was reached (503: none healthy)
        if int(status) in (502, 503, 504):
            be = "-"
        s["be"].add(be)
        # the clients' namespace only (the test's own probe comes from the balancer)
        if path.lower().startswith(("/rpc", "/mapi")) and be != "-" and ip.startswith("10.92.1."):
            per_ip[ip].add(be)
            ip_nodes[ip].add(node)
        if int(status) >= 500 and t_drain <= ms(ts) < t_kill:
            five_in_drain += 1

# sessions per node: an RPC session has one OUT channel, a MAPI session one NotificationWait
# connection and one emsmdb connection (both POST)
per_node = {}
for node in (1, 2, 3):
    out = sum(1 for (n, _), s in sids.items() if n == node and "RPC_OUT_DATA" in s["meths"])
    mapi = sum(1 for (n, _), s in sids.items() if n == node and "POST" in s["meths"])
    first = sum(1 for (n, _), s in sids.items() if n == node and s["start"] < t_drain and
                ("RPC_OUT_DATA" in s["meths"] or "POST" in s["meths"]))
    per_node[node] = (out, mapi, first)
    if first == 0:
        bad.append(f"node{node} got no session before the drain")
print("channels per node over the run (RPC OUT / MAPI connections), and before the drain: " +
      ", ".join(f"node{n}={o}/{m}, {f}" for n, (o, m, f) in per_node.items()))

# one backend server per client address, whatever node a channel passed
split = {ip: b for ip, b in per_ip.items() if len(b) != 1}
if split:
    bad.append(f"{len(split)} client addresses reached several servers, e.g. {list(split.items())[:2]}")
multi = sum(1 for ip in per_ip if len(ip_nodes[ip]) > 1)
print(f"client addresses: {len(per_ip)}, {multi} of them through more than one node, each on one server")
if len(per_ip) < 100:
    bad.append(f"only {len(per_ip)} client addresses seen, want 100")
if multi < len(per_ip) // 2:
    bad.append(f"only {multi} addresses passed several nodes: the affinity check proves little")
for k, s in sids.items():
    real = {b for b in s["be"] if b != "-"}
    if len(real) > 1:
        bad.append(f"node{k[0]} sid {k[1]} moved between servers {real}")

# the labs: one user per connection, never both channels of a session
lab = re.compile(r'^\S+ (auth|access) conn=(\d+) peer=([\d.]+):\d+ (.*)')
conns = {}
for i in (1, 2, 3):
    for line in open(f"{D}/lab{i}.log", errors="replace"):
        m = lab.match(line)
        if not m:
            continue
        kind, cid, peer, rest = m.groups()
        c = conns.setdefault((i, cid), {"peer": peer, "users": set(), "meths": set(), "paths": set()})
        u = re.search(r' user=(\S+)', rest)
        if u and u.group(1) != "-":
            c["users"].add(u.group(1))
        mm = re.search(r'method=(\S+) path=(\S+)', rest)
        if mm:
            c["meths"].add(mm.group(1))
            c["paths"].add(mm.group(2))
two_users = [k for k, c in conns.items() if len(c["users"]) > 1]
if two_users:
    bad.append(f"{len(two_users)} lab connections carried two users, e.g. {conns[two_users[0]]}")
both = [k for k, c in conns.items() if {"RPC_IN_DATA", "RPC_OUT_DATA"} <= c["meths"]]
if both:
    bad.append(f"{len(both)} lab connections carried an IN and an OUT channel")
# per (node, server): client connections that used it vs lab connections from that node
lab_n = collections.Counter()
for (i, cid), c in conns.items():
    if c["paths"] and all(p.endswith("healthcheck.htm") for p in c["paths"]):
        continue  # exshim's own health checks
    if not c["paths"]:
        continue
    lab_n[(c["peer"], f"ex/10.92.3.2{i}:80")] += 1
ex_n = collections.Counter()
for (node, sid), s in sids.items():
    if not s["ip"].startswith("10.92.1."):
        continue  # the test's probe of the drained node (its lab connection is a health check)
    for b in s["be"]:
        if b != "-":
            ex_n[(f"10.92.3.1{node}", b)] += 1
for key, n in sorted(ex_n.items()):
    if lab_n[key] < n:
        bad.append(f"node {key[0]} -> {key[1]}: {n} client connections but {lab_n[key]} lab connections")
print(f"backend connections: {sum(lab_n.values())} at the labs for {sum(ex_n.values())} client connections; "
      f"{len(conns)} lab connections, none with two users")

# the drain: the drained node's last new connection, and the pool change
starts = [s["start"] for (n, _), s in sids.items() if n == drained]
last_new = max(starts) if starts else 0
drain_to_zero = last_new - t_drain
pool_out = None
for line in open(f"{D}/pool.log"):
    ts, _, members = line.rstrip("\n").split(" ", 2)
    if ms(ts) >= t_drain and f"10.92.2.1{drained}" not in members and pool_out is None:
        pool_out = ms(ts) - t_drain
after = sum(1 for st in starts if st > t_drain)
# a connection's start is its first request head (after TLS), a little after its accept
print(f"drain ({mode}): node{drained} out of the pool {pool_out} ms after the drain command; "
      f"its last new connection started {drain_to_zero} ms after it ({after} new connections after it; limit {limit} ms)")
if pool_out is None or pool_out > limit:
    bad.append(f"node{drained} left the pool after {pool_out} ms (limit {limit})")
if drain_to_zero > limit:
    bad.append(f"node{drained} still took new connections {drain_to_zero} ms after the drain (limit {limit})")
if mode == "accepting":
    if five_in_drain:
        bad.append(f"{five_in_drain} requests answered 5xx between the drain and the kill")
    if drained_exit == "still running":
        bad.append(f"the drained node did not exit after its last session")
print(f"5xx answers between drain and kill: {five_in_drain}; drained node after the run: {drained_exit}")
if mode != "accepting":
    print("note: exshim -s drain stopped the node's listeners at once (SIGTERM, before the drain of "
          "issue 13): the checks that need a draining node to keep serving (no 5xx between drain "
          "and kill, exit after its last session) were not made")

# the bench reports
tot = {"reconnects": 0, "reconnected": 0, "reauths": 0, "errors_retryable": 0, "errors_fatal": 0}
for name, want in (("rpc", n_rpc), ("mapi", n_mapi), ("churn", None)):
    j = json.load(open(f"{T}/{name}.json"))
    for k in tot:
        tot[k] += j.get(k, 0)
    kinds = ", ".join(f"{k} {v['count']} ({v['example']})" for k, v in j["errors_by_kind"].items())
    print(f"{name}: established {j['sessions_established']}, up at the end {j['up_at_hold_end']}, "
          f"reconnects {j['reconnects']} ({j['reconnected']} back, {j['reauths']} NTLM re-authentications), "
          f"handshakes {j['handshakes']}, errors {j['errors']}: {kinds or 'none'}")
    fatal = j["errors_fatal"]
    closed401 = j["errors_by_kind"].get("auth_closed", {}).get("count", 0)
    if mode != "accepting" and closed401:
        # a stopping node (SIGTERM) closes even its NTLM challenges; the drain must not
        print(f"note: {name}: {closed401} NTLM challenges closed by the stopping node (SIGTERM)")
        fatal -= closed401
        tot["errors_fatal"] -= closed401
        tot["sigterm_401"] = tot.get("sigterm_401", 0) + closed401
    if fatal:
        bad.append(f"{name}: {fatal} failures a client would not retry: {kinds}")
    if want is not None:
        if j["sessions_established"] != want:
            bad.append(f"{name}: {j['sessions_established']} sessions established, want {want}")
        if j["up_at_hold_end"] != want:
            bad.append(f"{name}: {j['up_at_hold_end']} sessions up at the end, want {want}")
        if j["reconnects"] == 0:
            bad.append(f"{name}: no reconnect after node{killed} was killed")
        if j["reauths"] < j["reconnected"]:
            bad.append(f"{name}: {j['reconnected']} reconnects but only {j['reauths']} re-authentications")
rpc = json.load(open(f"{T}/rpc.json"))
if rpc["reauths"] < 2 * rpc["reconnected"]:
    bad.append(f"rpc: {rpc['reconnected']} reconnects need two NTLM handshakes each, saw {rpc['reauths']}")
o = lambda n: per_node[n][2]
print(f"SUMMARY t92: session channels per node before the drain node1={o(1)} node2={o(2)} node3={o(3)}; "
      f"reconnects {tot['reconnects']} ({tot['reconnected']} back, {tot['reauths']} re-authentications); "
      f"failures {tot['errors_retryable']} retried, {tot['errors_fatal']} not"
      f"{' (+%d challenges closed by SIGTERM)' % tot['sigterm_401'] if tot.get('sigterm_401') else ''}; "
      f"drain-to-zero {drain_to_zero} ms (drain {mode}, pool change {pool_out} ms)")
for b in bad:
    print("  FAIL: " + b)
sys.exit(1 if bad else 0)
EOF
pass "3 nodes, $RPC_SESSIONS RPC + $MAPI_SESSIONS MAPI sessions through $VIP, drain and kill"
