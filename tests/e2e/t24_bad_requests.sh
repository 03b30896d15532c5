#!/usr/bin/env bash
# Request smuggling and malformed heads: CL+TE, two Content-Lengths (differing or equal), bad
# Content-Length values, a bad chunk size, obs-fold, bare CR, bare LF line ends, NUL, a bad
# method character, whitespace before the colon, Transfer-Encoding other than a final
# "chunked", and a head over max_header_bytes (431). Each gets 400 (431; 501 allowed for an
# unsupported coding), the connection is closed, and the backend receives ZERO bytes.
# Sent over the plain listener, and a subset over TLS.
. "$(dirname "$0")/lib.sh"
start_core
C=$CLIENTS/core_check.py
rc=0
"$PY" "$C" badreq --port "$PLAIN_PORT" --max-header-bytes 65536 || rc=1
"$PY" "$C" badreq --port "$TLS_PORT" --tls --max-header-bytes 65536 \
    --case cl-and-te --case two-cl-differ --case chunk-size-zz --case bare-lf --case head-too-big || rc=1

# Nothing may have reached the origin: no request seen, no byte received. Connections exshim
# opened early (if any) must be closed with 0 bytes once the clients are gone.
sleep 0.5
n_acc=$(origin_count '^accept peer=')
wait_log_count() { # every accepted backend connection closed, bounded
    for _ in $(seq 60); do
        [ "$(origin_count '^close peer=')" -ge "$n_acc" ] && return 0
        sleep 0.05
    done
    return 1
}
wait_log_count || fail "backend connections left open after the clients were rejected"
[ "$(origin_count '^request peer=')" -eq 0 ] || { grep '^request' "$ORIGIN_LOG"; fail "a rejected request reached the origin"; }
bytes=$(origin_bytes_in)
[ "$bytes" -eq 0 ] || { grep '^close' "$ORIGIN_LOG"; fail "the origin received $bytes bytes from rejected requests"; }
[ "$rc" -eq 0 ] || fail "some malformed requests were not rejected and closed (see above)"

# exshim is still healthy afterwards
curl -sk --max-time 5 -o /dev/null -w '%{http_code}' "https://127.0.0.1:$TLS_PORT/echo/after" | grep -q 200 ||
    fail "exshim does not serve a good request after the bad ones"
pass "malformed requests rejected with 400/431 and a close; backend saw 0 connections with data ($n_acc opened)"
