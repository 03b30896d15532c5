#!/usr/bin/env bash
# A reference deployment of exshim behind an L4 balancer, built from network namespaces on
# this machine (root needed; nothing leaves the machine, nothing touches the root namespace):
#
#   PFX-cli    clients: one veth with L4_CLIENTS addresses 10.92.1.10 and up
#   PFX-lb     the balancer: keepalived holds the virtual address 10.92.1.250 (VRRP) and
#              health-checks each node's /healthz; its notify script rewrites an nftables
#              DNAT rule (numgen round robin over the healthy nodes) in one transaction
#   PFX-sw     two bridges: the front network 10.92.2.0/24 (balancer, nodes) and the back
#              network 10.92.3.0/24 (nodes, Exchange servers)
#   PFX-nodeN  exshim, listener 10.92.2.1N:443 (TLS), metrics 10.92.2.1N:9120; default route
#              through the balancer, so replies go back through its conntrack (LVS-NAT: the
#              node sees the real client address, no PROXY protocol needed)
#   PFX-labN   exshim-lab on 10.92.3.2N:80, users from L4_DIR/users (NTLM)
#
# usage: deploy/l4lab.sh up | down | status | notify ...
# Environment: L4_PREFIX (namespace prefix, default exl4-), L4_DIR (state and logs, default
# ${TMPDIR:-/tmp}/exl4), L4_NODES (3), L4_LABS (3), L4_CLIENTS (100), L4_USERS (100),
# L4_WORKERS (exshim workers per node, 1), BUILD (build directory, default build), EXSHIM and
# EXSHIM_LAB (the binaries, default in BUILD).
set -u
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
TOP=$(cd "$HERE/.." && pwd)
SELF="$HERE/$(basename "${BASH_SOURCE[0]}")"
PFX=${L4_PREFIX:-exl4-}
DIR=${L4_DIR:-${TMPDIR:-/tmp}/exl4}
NODES=${L4_NODES:-3}
LABS=${L4_LABS:-3}
CLIENTS=${L4_CLIENTS:-100}
NUSERS=${L4_USERS:-100}
WORKERS=${L4_WORKERS:-1}
BUILD=${BUILD:-build}
case "$BUILD" in /*) ;; *) BUILD="$TOP/$BUILD" ;; esac
EXSHIM=${EXSHIM:-$BUILD/exshim}
EXSHIM_LAB=${EXSHIM_LAB:-$BUILD/exshim-lab}
VIP=10.92.1.250
PORT=443
MPORT=9120

node_ip() { echo "10.92.2.$((10 + $1))"; }
node_back_ip() { echo "10.92.3.$((10 + $1))"; }
lab_ip() { echo "10.92.3.$((20 + $1))"; }
client_ip() { echo "10.92.1.$((10 + $1))"; } # 0-based
say() { printf 'l4lab: %s\n' "$*" >&2; }
UPPING=0
die() {
    say "error: $*"
    # a failed "up" leaves nothing behind
    [ "$UPPING" -eq 1 ] && { say "removing what was set up"; do_down; }
    exit 1
}
nsx() { # NS CMD...: run CMD in namespace PFX-NS
    local ns=$1
    shift
    ip netns exec "$PFX$ns" "$@"
}
all_ns() {
    local i
    printf "%s\n" cli lb sw
    for i in $(seq "$NODES"); do echo "node$i"; done
    for i in $(seq "$LABS"); do echo "lab$i"; done
}

# ---- down: every process we started (pid files), then anything left in our namespaces ----
do_down() {
    local f p ns
    for f in "$DIR"/*.pid; do
        [ -f "$f" ] || continue
        p=$(head -n 1 "$f" 2>/dev/null)
        [ -n "$p" ] && kill "$p" 2>/dev/null
    done
    sleep 0.3
    for ns in $(all_ns); do
        ip netns list 2>/dev/null | grep -qx "$PFX$ns\( (id: [0-9]*)\)\?" || continue
        for p in $(ip netns pids "$PFX$ns" 2>/dev/null); do kill "$p" 2>/dev/null; done
    done
    # bounded wait, then SIGKILL what is still there
    local n=30 left
    while [ $n -gt 0 ]; do
        left=0
        for ns in $(all_ns); do
            [ -n "$(ip netns pids "$PFX$ns" 2>/dev/null)" ] && left=1
        done
        [ $left -eq 0 ] && break
        sleep 0.1
        n=$((n - 1))
    done
    for ns in $(all_ns); do
        for p in $(ip netns pids "$PFX$ns" 2>/dev/null); do kill -9 "$p" 2>/dev/null; done
    done
    for ns in $(all_ns); do
        ip netns del "$PFX$ns" 2>/dev/null
    done
    rm -f "$DIR"/*.pid
    return 0
}

# ---- the nftables rule from the node states (called by keepalived, under a lock) ----
write_rules() {
    local i n=0 map="" st
    for i in $(seq "$NODES"); do
        st=$(cat "$DIR/state/node$i" 2>/dev/null || echo DOWN)
        [ "$st" = MASTER ] || continue
        map="$map${map:+, }$n : $(node_ip "$i")"
        n=$((n + 1))
    done
    {
        echo "flush chain ip exl4 pre"
        # no healthy node: no rule, the balancer itself answers with a reset
        [ $n -gt 0 ] &&
            echo "add rule ip exl4 pre ip daddr $VIP tcp dport $PORT dnat to numgen inc mod $n map { $map }"
    } >"$DIR/rules.nft.new"
    # one nft transaction: new connections see either the old rule or the new one; connections
    # already tracked keep their translation (conntrack), so existing channels are untouched
    nft -f "$DIR/rules.nft.new" || return 1
    mv "$DIR/rules.nft.new" "$DIR/rules.nft"
    printf '%s pool %s\n' "$(date -u +%Y-%m-%dT%H:%M:%S.%3NZ)" "${map:-empty}" >>"$DIR/pool.log"
}

# keepalived: notify INSTANCE NAME STATE PRIORITY (run inside PFX-lb)
do_notify() {
    local name=$2 state=$3
    case "$name" in node[0-9]*) ;; *) return 0 ;; esac
    [ "$state" = STOP ] && return 0 # keepalived going away: leave the rule as it is
    mkdir -p "$DIR/state"
    (
        flock -w 5 9 || exit 1
        echo "$state" >"$DIR/state/$name"
        printf '%s %s %s\n' "$(date -u +%Y-%m-%dT%H:%M:%S.%3NZ)" "$name" "$state" >>"$DIR/notify.log"
        write_rules
    ) 9>"$DIR/notify.lock"
}

keepalived_conf() {
    local i
    cat <<EOF
global_defs {
    script_user root
    enable_script_security
    router_id exl4-lb
}
EOF
    for i in $(seq "$NODES"); do
        cat <<EOF
vrrp_script chk_node$i {
    script "/usr/bin/curl -sf --max-time 1 -o /dev/null http://$(node_ip "$i"):$MPORT/healthz"
    interval 1
    timeout 2
    fall 1
    rise 2
    init_fail
}
EOF
    done
    cat <<EOF
vrrp_instance vip {
    state MASTER
    interface cli0
    virtual_router_id 51
    priority 100
    advert_int 1
    virtual_ipaddress {
        $VIP/32 dev cli0
    }
}
EOF
    # one instance per node, alone on its router id: MASTER while its check passes, FAULT
    # when it fails; its notify script puts the node in or out of the DNAT map
    for i in $(seq "$NODES"); do
        cat <<EOF
vrrp_instance node$i {
    state MASTER
    interface hc0
    virtual_router_id $((60 + i))
    priority 100
    advert_int 1
    track_script {
        chk_node$i
    }
    notify "/usr/bin/env L4_DIR=$DIR L4_PREFIX=$PFX L4_NODES=$NODES $SELF notify"
}
EOF
    done
}

node_conf() { # N
    local i servers=""
    for i in $(seq "$LABS"); do servers="$servers${servers:+, }\"$(lab_ip "$i"):80\""; done
    cat <<EOF
# exshim node $1 of the L4 reference deployment (deploy/l4lab.sh)
workers = $WORKERS;
log_level = "info";
access_log = true;
grace = "5s";
drain_timeout = "1h";
listeners = (
  { name = "front"; address = "$(node_ip "$1"):$PORT";
    tls = { certs = ( { chain = "$DIR/cert.pem"; key = "$DIR/key.pem"; } ); }; }
);
metrics = { address = "$(node_ip "$1"):$MPORT"; };
backends = (
  { name = "ex"; servers = [ $servers ]; balance = "rendezvous";
    # generous on a shared 2-core box: a worker busy with a burst of TLS and NTLM handshakes
    # must not take every server down because its own checks waited
    health = { path = "/rpc/healthcheck.htm"; interval = "2s"; timeout = "1500ms";
               rise = 2; fall = 3; expect = 200; }; }
);
routes = (
  { path = "/rpc"; backend = "ex"; idle_timeout = "60m"; body_timeout = "60m"; },
  { path = "/mapi"; backend = "ex"; health_path = "/mapi/healthcheck.htm";
    idle_timeout = "60m"; body_timeout = "60m"; },
  { path = "default"; backend = "ex"; }
);
EOF
}

wait_for() { # SECONDS CMD...: polls CMD every 0.1 s
    local n=$(($1 * 10))
    shift
    while [ $n -gt 0 ]; do
        "$@" >/dev/null 2>&1 && return 0
        sleep 0.1
        n=$((n - 1))
    done
    return 1
}

# start_node N: exshim in PFX-nodeN (pid file DIR/nodeN.pid written by exshim itself)
start_node() {
    local n=$1
    rm -f "$DIR/node$n.pid" "$DIR/node$n.ready"
    nsx "node$n" "$EXSHIM" -c "$DIR/node$n.conf" -p "$DIR/node$n.pid" \
        -r "$DIR/node$n.ready" >>"$DIR/node$n.log" 2>&1 </dev/null &
    wait_for 15 test -s "$DIR/node$n.ready" || die "exshim on node$n did not start (see $DIR/node$n.log)"
}

start_lab() {
    local n=$1
    rm -f "$DIR/lab$n.ready"
    (cd "$TOP" && exec ip netns exec "${PFX}lab$n" "$EXSHIM_LAB" --preset default \
        --conf-dir "$TOP/conf/lab" --listen "$(lab_ip "$n"):80" --users "$DIR/users" \
        --ready-file "$DIR/lab$n.ready" --log "$DIR/lab$n.log" --notify-hold 5000 \
        --pending-period 1000 --rpc-ping 10000) >>"$DIR/lab$n.stderr" 2>&1 </dev/null &
    echo $! >"$DIR/lab$n.pid"
    wait_for 15 test -s "$DIR/lab$n.ready" || die "exshim-lab $n did not start (see $DIR/lab$n.stderr)"
}

pool_size() { nft list chain ip exl4 pre 2>/dev/null | grep -o 'mod [0-9]*' | awk '{ print $2 }'; }

do_up() {
    [ "$(id -u)" -eq 0 ] || die "needs root (network namespaces)"
    for b in "$EXSHIM" "$EXSHIM_LAB"; do [ -x "$b" ] || die "$b not built (make)"; done
    for c in ip nft keepalived curl flock openssl; do
        command -v "$c" >/dev/null || die "$c not installed (tests/install-deps.sh)"
    done
    [ "$CLIENTS" -ge 1 ] && [ "$CLIENTS" -le 200 ] || die "L4_CLIENTS must be 1..200"
    [ "$NODES" -ge 1 ] && [ "$NODES" -le 9 ] || die "L4_NODES must be 1..9"
    [ "$LABS" -ge 1 ] && [ "$LABS" -le 9 ] || die "L4_LABS must be 1..9"
    do_down
    UPPING=1
    trap 'die "interrupted"' INT TERM
    mkdir -p "$DIR/state"
    rm -f "$DIR"/state/* "$DIR"/*.log "$DIR"/*.stderr "$DIR"/*.ready
    local ns i
    for ns in $(all_ns); do
        ip netns add "$PFX$ns" || die "ip netns add $PFX$ns failed"
        nsx "$ns" ip link set lo up
    done
    # wires: veth pairs created straight into their namespaces
    ip link add eth0 netns "${PFX}cli" type veth peer name cli0 netns "${PFX}lb" || die "veth failed"
    ip link add front0 netns "${PFX}lb" type veth peer name lb netns "${PFX}sw"
    nsx sw ip link add brf type bridge
    nsx sw ip link add brb type bridge
    nsx sw ip link set lb master brf
    for i in $(seq "$NODES"); do
        ip link add eth0 netns "${PFX}node$i" type veth peer name "n${i}f" netns "${PFX}sw"
        ip link add eth1 netns "${PFX}node$i" type veth peer name "n${i}b" netns "${PFX}sw"
        nsx sw ip link set "n${i}f" master brf
        nsx sw ip link set "n${i}b" master brb
    done
    for i in $(seq "$LABS"); do
        ip link add eth0 netns "${PFX}lab$i" type veth peer name "l$i" netns "${PFX}sw"
        nsx sw ip link set "l$i" master brb
    done
    for dev in $(nsx sw ip -o link show | awk -F': ' '{ print $2 }' | cut -d@ -f1); do
        nsx sw ip link set "$dev" up
    done
    # clients: many addresses, so hashing by client address has something to spread
    nsx cli ip addr add 10.92.1.2/24 dev eth0
    for i in $(seq 0 $((CLIENTS - 1))); do
        nsx cli ip addr add "$(client_ip "$i")/24" dev eth0
    done
    nsx cli ip link set eth0 up
    # balancer
    nsx lb ip addr add 10.92.1.1/24 dev cli0
    nsx lb ip addr add 10.92.2.1/24 dev front0
    nsx lb ip link set cli0 up
    nsx lb ip link set front0 up
    # the per-node VRRP instances advertise on a veth pair of their own inside the balancer
    # (no dummy module here): their adverts never reach another namespace
    nsx lb ip link add hc0 type veth peer name hc1
    nsx lb ip link set hc0 up
    nsx lb ip link set hc1 up
    nsx lb ip addr add 10.92.9.1/30 dev hc0 # VRRP wants an address on its interface
    nsx lb sysctl -qw net.ipv4.ip_forward=1
    # nodes and labs
    for i in $(seq "$NODES"); do
        nsx "node$i" ip addr add "$(node_ip "$i")/24" dev eth0
        nsx "node$i" ip addr add "$(node_back_ip "$i")/24" dev eth1
        nsx "node$i" ip link set eth0 up
        nsx "node$i" ip link set eth1 up
        nsx "node$i" ip route add default via 10.92.2.1
    done
    for i in $(seq "$LABS"); do
        nsx "lab$i" ip addr add "$(lab_ip "$i")/24" dev eth0
        nsx "lab$i" ip link set eth0 up
    done
    # material
    if [ ! -s "$DIR/cert.pem" ]; then
        openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 \
            -subj /CN=mail.lab.local -addext subjectAltName=DNS:mail.lab.local \
            -keyout "$DIR/key.pem" -out "$DIR/cert.pem" 2>/dev/null || die "openssl req failed"
    fi
    : >"$DIR/users"
    for i in $(seq "$NUSERS"); do printf 'LAB:user%03d:Pass#%03d\n' "$i" "$i" >>"$DIR/users"; done
    for i in $(seq "$LABS"); do start_lab "$i"; done
    for i in $(seq "$NODES"); do
        node_conf "$i" >"$DIR/node$i.conf"
        start_node "$i"
    done
    # the balancer: an empty DNAT chain until keepalived's checks pass
    nsx lb nft -f - <<EOF || die "nft failed in ${PFX}lb"
table ip exl4 {
    chain pre {
        type nat hook prerouting priority dstnat; policy accept;
    }
}
EOF
    keepalived_conf >"$DIR/keepalived.conf"
    chmod 600 "$DIR/keepalived.conf"
    # L4_DIR is exported so that the notify script (this file) finds the state
    L4_DIR=$DIR L4_PREFIX=$PFX L4_NODES=$NODES nsx lb keepalived -n -l -P \
        -f "$DIR/keepalived.conf" -p "$DIR/keepalived.pid" -c "$DIR/keepalived-c.pid" \
        -r "$DIR/keepalived-r.pid" >>"$DIR/keepalived.log" 2>&1 </dev/null &
    echo $! >"$DIR/keepalived-main.pid"
    wait_for 20 sh -c "ip netns exec ${PFX}lb ip -o addr show dev cli0 | grep -q ' $VIP/'" ||
        die "keepalived did not take $VIP (see $DIR/keepalived.log)"
    wait_for 20 sh -c "[ \"\$(ip netns exec ${PFX}lb nft list chain ip exl4 pre | grep -o 'mod [0-9]*')\" = 'mod $NODES' ]" ||
        die "not every node came into the pool (see $DIR/notify.log)"
    UPPING=0
    trap - INT TERM
    do_status
}

do_status() {
    local ns i code
    for ns in $(all_ns); do
        ip netns list 2>/dev/null | grep -q "^$PFX$ns\b" || { echo "$PFX$ns: absent"; return 1; }
    done
    echo "namespaces: $(all_ns | sed "s/^/$PFX/" | tr '\n' ' ')"
    echo "vip: $VIP:$PORT ($(nsx lb ip -o addr show dev cli0 | grep -q " $VIP/" && echo held || echo NOT held))"
    echo "pool: $(nsx lb nft list chain ip exl4 pre 2>/dev/null | grep -o 'numgen.*' || echo empty)"
    for i in $(seq "$NODES"); do
        code=$(nsx lb curl -s -o /dev/null -w '%{http_code}' --max-time 1 "http://$(node_ip "$i"):$MPORT/healthz")
        echo "node$i: $(node_ip "$i"):$PORT healthz $code keepalived $(cat "$DIR/state/node$i" 2>/dev/null || echo -)" \
            "pid $(cat "$DIR/node$i.pid" 2>/dev/null || echo -)"
    done
    for i in $(seq "$LABS"); do
        echo "lab$i: $(lab_ip "$i"):80 pid $(cat "$DIR/lab$i.pid" 2>/dev/null || echo -)"
    done
    echo "clients: ${PFX}cli, $CLIENTS addresses $(client_ip 0)-$(client_ip $((CLIENTS - 1))); users $DIR/users"
    echo "try: ip netns exec ${PFX}cli $BUILD/exshim-bench --url https://$VIP:$PORT --mode rpc --users $DIR/users --source-addrs $(client_ip 0)-$((10 + CLIENTS - 1)) --sessions 100"
}

case "${1:-}" in
up) do_up ;;
down)
    do_down
    say "down"
    ;;
status) do_status ;;
notify)
    shift
    do_notify "$@"
    ;;
*)
    echo "usage: $0 up | down | status" >&2
    exit 2
    ;;
esac
