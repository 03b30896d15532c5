#!/bin/bash
# bench/callgrind.sh: where exshim spends its time on one bench scenario.
#
#   bash bench/callgrind.sh [SCENARIO] [perf|callgrind]
#     SCENARIO: stream-tls (default) | stream-plain | mapi-rps | handshakes | sessions
#     perf      (default) perf record -g on the exshim workers during the run, then perf report
#     callgrind valgrind --tool=callgrind on exshim (one worker; instruction counts, repeatable
#               for before/after comparisons; ~50x slower, so volumes are small)
#
# Output: bench/results/profile-SCENARIO-TOOL.txt (top of the report) and the raw data in the
# run directory (kept, path printed). Environment: BUILD (default build), LAB_BIN.
set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-build}
case $BUILD in /*) BIN=$BUILD ;; *) BIN=$ROOT/$BUILD ;; esac
LAB_BIN=${LAB_BIN:-$BIN/exshim-lab}
SC=${1:-stream-tls}
TOOL=${2:-perf}
RUN=$(mktemp -d /tmp/exshim-profile.XXXXXX)
OUT=$ROOT/bench/results/profile-$SC-$TOOL.txt
LAB_ADDR=127.0.0.1:24281
TLS_ADDR=127.0.0.1:24543
PLAIN_ADDR=127.0.0.1:24280
LAB_PID= PX_PID=
stop_pid() { # pid: TERM, bounded wait for it and its children (workers), KILL leftovers
    [ -n "$1" ] || return 0
    local kids p alive
    kids=$(pgrep -P "$1" 2>/dev/null)
    kill -TERM "$1" 2>/dev/null || return 0
    for _ in $(seq 100); do
        alive=0
        for p in $1 $kids; do kill -0 "$p" 2>/dev/null && alive=1; done
        [ $alive = 0 ] && return 0
        sleep 0.1
    done
    for p in $1 $kids; do kill -KILL "$p" 2>/dev/null; done
}
trap 'stop_pid "$PX_PID"; stop_pid "$LAB_PID"' EXIT

openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj /CN=mail.lab.local \
    -keyout "$RUN/key.pem" -out "$RUN/cert.pem" 2>/dev/null
echo 'LAB:bench:Bench#Pass1' >"$RUN/users"
sed -e "s|@TLS_ADDR@|$TLS_ADDR|g" -e "s|@PLAIN_ADDR@|$PLAIN_ADDR|g" -e "s|@LAB_ADDR@|$LAB_ADDR|g" \
    -e "s|@CERT@|$RUN/cert.pem|g" -e "s|@KEY@|$RUN/key.pem|g" "$ROOT/bench/exshim.conf" >"$RUN/exshim.conf"

"$LAB_BIN" --preset default --conf-dir "$ROOT/conf/lab" --listen $LAB_ADDR --users "$RUN/users" \
    --ready-file "$RUN/lab.ready" --log "$RUN/lab.log" &
LAB_PID=$!
for _ in $(seq 50); do [ -s "$RUN/lab.ready" ] && break; sleep 0.1; done

case $SC in
stream-tls) URL=https://$TLS_ADDR; ARGS="--mode stream --sessions 1 --stream-bytes 1G --max-time 30" ;;
stream-plain) URL=http://$PLAIN_ADDR; ARGS="--mode stream --sessions 1 --stream-bytes 1G --max-time 30" ;;
mapi-rps) URL=https://$TLS_ADDR; ARGS="--mode mapi --sessions 64 --rate 0 --no-notify --hold 10 --procs 2" ;;
handshakes) URL=https://$TLS_ADDR; ARGS="--mode handshake --sessions 16 --rate 0 --hold 10 --procs 2" ;;
sessions) URL=https://$TLS_ADDR; ARGS="--mode rpc --sessions 2000 --rate 500 --hold 10 --echo-ms 1000 --procs 2" ;;
*) echo "unknown scenario $SC" >&2; exit 2 ;;
esac

if [ "$TOOL" = callgrind ]; then
    # smaller volumes: valgrind runs the proxy ~50x slower
    ARGS=${ARGS/--stream-bytes 1G/--stream-bytes 64M}
    ARGS=${ARGS/--hold 10/--hold 5}
    ARGS=${ARGS/--sessions 2000/--sessions 200}
    valgrind --tool=callgrind --trace-children=yes --callgrind-out-file="$RUN/callgrind.%p" \
        "$BIN/exshim" -c "$RUN/exshim.conf" -r "$RUN/exshim.ready" -w 1 2>"$RUN/exshim.log" &
    PX_PID=$!
    for _ in $(seq 300); do [ -s "$RUN/exshim.ready" ] && break; sleep 0.1; done
    "$BIN/exshim-bench" --url "$URL" --users "$RUN/users" --quiet --proxy-pid $PX_PID $ARGS \
        --setup-timeout 60 | tee "$RUN/bench.txt"
    stop_pid "$PX_PID"; PX_PID=
    sleep 1
    # the worker's profile is the largest one
    f=$(ls -S "$RUN"/callgrind.* | head -1)
    { cat "$RUN/bench.txt"; echo; callgrind_annotate --inclusive=no "$f" 2>/dev/null | head -60
      echo; echo "== inclusive"; callgrind_annotate --inclusive=yes "$f" 2>/dev/null | sed -n '1,70p'; } >"$OUT"
else
    "$BIN/exshim" -c "$RUN/exshim.conf" -r "$RUN/exshim.ready" 2>"$RUN/exshim.log" &
    PX_PID=$!
    for _ in $(seq 100); do [ -s "$RUN/exshim.ready" ] && break; sleep 0.1; done
    WORKERS=$(pgrep -P $PX_PID | paste -sd, -)
    perf record -F 999 -g -o "$RUN/perf.data" -p "$WORKERS" 2>"$RUN/perf.log" &
    PERF=$!
    sleep 0.5
    "$BIN/exshim-bench" --url "$URL" --users "$RUN/users" --quiet --proxy-pid $PX_PID $ARGS \
        | tee "$RUN/bench.txt"
    kill -INT $PERF 2>/dev/null; wait $PERF 2>/dev/null
    # a second, smaller run under strace -c: system call counts tell the read/write sizes
    SARGS=${ARGS/--stream-bytes 1G/--stream-bytes 64M}
    SARGS=${SARGS/--hold 10/--hold 3}
    timeout 120 strace -c -f -o "$RUN/strace.txt" $(pgrep -P $PX_PID | sed 's/^/-p /') 2>/dev/null &
    STRACE=$!
    sleep 1
    "$BIN/exshim-bench" --url "$URL" --users "$RUN/users" --quiet $SARGS >"$RUN/bench-strace.txt"
    kill -INT $STRACE 2>/dev/null; wait $STRACE 2>/dev/null
    { cat "$RUN/bench.txt"; echo
      echo "== system calls of the workers, second run under strace -c ($SARGS)"
      grep -E "stream |requests|handshakes" "$RUN/bench-strace.txt"
      head -14 "$RUN/strace.txt"; echo
      echo "== perf, self time by symbol (exshim workers only)"
      perf report -i "$RUN/perf.data" --no-children --sort dso,symbol --stdio -g none 2>/dev/null \
          | grep -v '^#' | grep -v '^$' | grep '%' | head -45
      echo; echo "== perf, by DSO"
      perf report -i "$RUN/perf.data" --no-children --sort dso --stdio -g none 2>/dev/null \
          | grep -v '^#' | grep '%' | head -12
      echo; echo "== inclusive (children), top"
      perf report -i "$RUN/perf.data" --children --sort symbol --stdio -g none 2>/dev/null \
          | grep -v '^#' | grep '%' | head -40; } >"$OUT"
fi
echo "profile: $OUT (raw data in $RUN)"
