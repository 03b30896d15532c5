# Helpers for the edge-hardening end-to-end tests (t50..t57). Source after lib.sh:
#   . "$(dirname "$0")/lib.sh"; . "$E2E_DIR/edge.sh"
# Nothing in lib.sh is changed; these add named exshim instances (several configurations in
# one script), a nginx backend, and the request accounting that proves "the backend saw zero
# bytes of anything exshim refused".

EC=$CLIENTS/edge_check.py

# lib.sh's cleanup prints the tails of every log after a failure, so the runner's last lines
# would be log noise: repeat the failure after them.
EDGE_FAIL_MSG=
fail() {
    printf '[%s] FAIL: %s\n' "$TEST_NAME" "$*" >&2
    EDGE_FAIL_MSG=$*
    exit 1
}
edge_exit() {
    local rc=$?
    ( (exit "$rc"); cleanup )
    [ -n "$EDGE_FAIL_MSG" ] && printf '[%s] FAIL (repeated after the logs): %s\n' "$TEST_NAME" "$EDGE_FAIL_MSG" >&2
    exit "$rc"
}
trap edge_exit EXIT
H=mail.contoso.test

# start_exshim_as NAME CONF: exshim with log $T/NAME.log and ready file $T/NAME.ready. Sets
# EXSHIM_PID and EXSHIM_LOG (and READY) for the helpers below.
start_exshim_as() {
    local name=$1 conf=$2
    READY=$T/$name.ready
    rm -f "$READY"
    bg "$name" "$EXSHIM" -c "$conf" -r "$READY"
    EXSHIM_PID=$LAST_PID
    EXSHIM_LOG=$T/$name.log
    wait_file "$READY" 10 || fail "exshim ($name) did not become ready: $(tail -5 "$EXSHIM_LOG")"
}

# stop_exshim: SIGTERM to the current instance, bounded wait.
stop_exshim() {
    kill "$EXSHIM_PID" 2>/dev/null
    timeout 8 tail --pid="$EXSHIM_PID" -f /dev/null 2>/dev/null || kill -9 "$EXSHIM_PID" 2>/dev/null
}

# port_of NAME: port of listener NAME of the current instance.
port_of() {
    awk -v n="$1" '$1 == n { sub(/.*:/, "", $2); print $2 }' "$READY"
}

# edge_listeners: the listeners block (tls with $T/server.pem, plain).
edge_listeners() {
    [ -s "$T/server.pem" ] || self_signed server localhost
    cat <<EOC
listeners = (
  { name = "tls"; address = "127.0.0.1:0";
    tls = { certs = ( { chain = "server.pem"; key = "server.key"; } ); }; },
  { name = "plain"; address = "127.0.0.1:0"; }
);
EOC
}

# edge_origin_conf FILE GLOBALS [ROUTE_OPTIONS]: a configuration with log_level info, GLOBALS,
# edge_listeners, one backend "origin" (start_origin's port) and the default route to it.
edge_origin_conf() {
    cat >"$1" <<EOC
log_level = "info";
$2
$(edge_listeners)
backends = ( { name = "origin"; servers = [ "127.0.0.1:$ORIGIN_PORT" ]; } );
routes = ( { path = "default"; backend = "origin"; ${3:-} } );
EOC
}

# exshim_count REGEX: lines of the current exshim log matching REGEX (grep -E).
exshim_count() {
    grep -Ec -- "$1" "$EXSHIM_LOG" 2>/dev/null || true
}

# wait_origin_closed [SECONDS]: waits until every backend connection the origin accepted has
# closed (so origin_bytes_in is complete).
wait_origin_closed() {
    local n=$(( ${1:-5} * 20 ))
    while [ "$n" -gt 0 ]; do
        [ "$(origin_count '^close peer=')" -ge "$(origin_count '^accept peer=')" ] && return 0
        sleep 0.05
        n=$((n - 1))
    done
    return 1
}

# check_accounting SUMMARY_FILE...: each edge_check.py table run ends with a line
#   SUMMARY refused=R good=G good_bytes=B
# after every refused request it sent one good request (own connection, Connection: close)
# whose echo says how many head bytes the origin received. The origin must have received
# exactly those bytes (nothing of any refused request, not a byte more), served exactly G
# requests, and exshim's access log must count the same G forwarded requests (status=200: the
# origin answers nothing else) and R refusals answered by exshim itself (400/403/404/408/431/
# 505).
# accounting_mark: later check_accounting calls count only what happens after this point
# (same exshim instance).
accounting_mark() {
    wait_origin_closed 5 || fail "backend connections left open"
    ACC_REQS=$(origin_count '^request peer=')
    ACC_BYTES=$(origin_bytes_in)
    ACC_FWD=$(exshim_count '^.*access sid=.* status=200 ')
    ACC_LOCAL=$(exshim_count '^.*access sid=.* status=(400|403|404|408|431|505) ')
}

check_accounting() {
    local r=0 g=0 b=0 f x y z
    for f in "$@"; do
        read -r x y z < <(sed -n 's/^SUMMARY refused=\([0-9]*\) good=\([0-9]*\) good_bytes=\([0-9]*\).*/\1 \2 \3/p' "$f")
        [ -n "${z:-}" ] || fail "no SUMMARY line from edge_check.py in $f"
        r=$((r + x)) g=$((g + y)) b=$((b + z))
    done
    wait_origin_closed 5 || fail "backend connections left open"
    local reqs bytes fwd local_n
    reqs=$(( $(origin_count '^request peer=') - ${ACC_REQS:-0} ))
    bytes=$(( $(origin_bytes_in) - ${ACC_BYTES:-0} ))
    fwd=$(( $(exshim_count '^.*access sid=.* status=200 ') - ${ACC_FWD:-0} ))
    local_n=$(( $(exshim_count '^.*access sid=.* status=(400|403|404|408|431|505) ') - ${ACC_LOCAL:-0} ))
    [ "$reqs" -eq "$g" ] || { grep '^request' "$ORIGIN_LOG"; fail "origin served $reqs requests, the client sent $g good ones (a refused request reached it)"; }
    [ "$bytes" -eq "$b" ] || { grep '^close' "$ORIGIN_LOG"; fail "origin received $bytes bytes, the $g good requests account for $b: $((bytes - b)) bytes of refused requests reached it"; }
    [ "$fwd" -eq "$reqs" ] || fail "exshim's access log counts $fwd forwarded requests, the origin $reqs"
    [ "$local_n" -eq "$r" ] || fail "exshim's access log counts $local_n local refusals, the client saw $r"
    log "accounting: $r refused (origin saw 0 bytes of them), $g good = $reqs origin requests = $fwd exshim access lines, $bytes bytes"
}

# start_nginx NAME: Debian's nginx on a free loopback port, prefix $T/NAME, one line per
# request in $T/NAME/access.log ("REQ <request line> xff=<X-Forwarded-For> status=<status>"),
# answering "return 200" everywhere. Sets NGINX_PORT, NGINX_LOG.
start_nginx() {
    local name=$1 dir=$T/$1
    need nginx
    mkdir -p "$dir/tmp" "$dir/logs"
    NGINX_PORT=$(free_port)
    NGINX_LOG=$dir/access.log
    cat >"$dir/nginx.conf" <<EOC
worker_processes 1;
pid $dir/nginx.pid;
error_log $dir/error.log info;
events { worker_connections 64; }
http {
    log_format edge 'REQ \$request xff=\$http_x_forwarded_for status=\$status';
    access_log $NGINX_LOG edge;
    client_body_temp_path $dir/tmp/body;
    proxy_temp_path $dir/tmp/proxy;
    fastcgi_temp_path $dir/tmp/fastcgi;
    uwsgi_temp_path $dir/tmp/uwsgi;
    scgi_temp_path $dir/tmp/scgi;
    server {
        listen 127.0.0.1:$NGINX_PORT;
        location / { return 200 "nginx ok\n"; }
    }
}
EOC
    : >"$NGINX_LOG"
    bg "$name" nginx -p "$dir" -c "$dir/nginx.conf" -e "$dir/error.log" -g 'daemon off;'
    wait_port "$NGINX_PORT" 10 || fail "nginx did not start: $(cat "$T/$name.log" "$dir/error.log" 2>/dev/null | tail -5)"
}

# nginx_count REGEX: lines of nginx's access log matching REGEX.
nginx_count() {
    grep -Ec -- "$1" "$NGINX_LOG" 2>/dev/null || true
}

# check_soft: a failed step that does not stop the script, so the steps after it still run
# (used where a step exposes a known defect). finish_soft MSG: pass, or fail naming them all.
SOFT_FAILS=()
check_soft() {
    printf '[%s] FAIL (continuing): %s\n' "$TEST_NAME" "$*" >&2
    SOFT_FAILS+=("$*")
}
finish_soft() {
    [ ${#SOFT_FAILS[@]} -eq 0 ] || fail "${#SOFT_FAILS[@]} step(s) failed: $(printf '%s; ' "${SOFT_FAILS[@]}")"
    pass "$1"
}
