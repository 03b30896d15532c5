#!/usr/bin/env bash
# Connection limits (issue "Edge hardening", defect 3). Asserts:
#  max_connections = 20, one worker (header_timeout 30 s, so idle connections stay):
#  - 25 idle TCP connections: exshim logs "max_connections (20) reached" once, not per queued
#    client (later transitions are logged one line each way);
#  - a request on the 25th connection is not answered for 1.5 s while 20 are open;
#  - after 10 of the first are closed, it is answered (200: the connection was queued, not
#    lost) and exshim logs "below max_connections (20) again";
#  max_connections_per_client = 5:
#  - the 6th connection from 127.0.0.1 is closed at once (< 1 s) with the log line
#    "refused: max_connections_per_client (5) reached"; connections within the limit are
#    served; after one of the five is closed, a new connection is served.
. "$(dirname "$0")/lib.sh"
. "$E2E_DIR/edge.sh"
[ -x "$EXSHIM" ] || skip "$EXSHIM not built"
need openssl
start_origin
edge_origin_conf "$T/maxconn.conf" "workers = 1; access_log = true; max_connections = 20;" 'header_timeout = "30s";'
start_exshim_as maxconn "$T/maxconn.conf"
"$PY" "$EC" maxconn --port "$(port_of plain)" --limit 20 --extra 5 --release 10 --wait 1.5 ||
    fail "max_connections: queued connection not held back, or lost"
sleep 0.2
# One line per transition, none per queued client: while the 5 extra waited, one "reached";
# after that the lines alternate (closes handled over two loop turns may refill the worker
# once more before the rest of them are seen, which logs another pair).
seq=$(grep -Eo 'max_connections \(20\) reached|below max_connections \(20\) again' "$EXSHIM_LOG" |
    sed 's/^max.*/R/; s/^below.*/B/' | tr -d '\n')
[[ $seq =~ ^(RB){1,6}$ ]] ||
    fail "max_connections transitions logged as '$seq' (R reached, B below), want one line each way: RB..."
[ "$(exshim_count 'access sid=.* path=/echo/last status=200')" -eq 1 ] || fail "the queued request is not in the access log once"
stop_exshim

edge_origin_conf "$T/perclient.conf" "workers = 1; access_log = true; max_connections_per_client = 5;" 'header_timeout = "30s";'
start_exshim_as perclient "$T/perclient.conf"
"$PY" "$EC" perclient --port "$(port_of plain)" --limit 5 || fail "max_connections_per_client"
n=$(exshim_count 'client 127\.0\.0\.1:[0-9]+ refused: max_connections_per_client \(5\) reached')
[ "$n" -eq 1 ] || fail "per-client refusal logged $n times, want 1"
pass "max_connections holds the 21st+ in the queue and serves them later; per-client limit closes the 6th at once"
