#!/usr/bin/env bash
# RPC over HTTP small-PDU timing (PROTOCOLS.md A.6/A.7, F.1/F.2/F.4), over TLS:
#  - RPC_OUT_DATA with Content-Length 76 and the CONN/A1 vector: the origin holds all 76 bytes
#    at once; its "200 Success", Content-Length 1073741824 and CONN/A3+CONN/C2 come back
#    byte-exact while the response stays open
#  - RPC_OUT_DATA with Content-Length 120 (recycling): OUT_R1/A3 (96 bytes) reaches the origin
#    before the client sends OUT_R1/A11
#  - RPC_IN_DATA (1 GiB): CONN/B1, then a Ping, each at the origin before the next is sent;
#    nothing comes back
. "$(dirname "$0")/lib.sh"
start_core
"$PY" "$CLIENTS/core_check.py" rts --port "$TLS_PORT" --tls --origin-log "$ORIGIN_LOG" --max-delay 0.5 ||
    fail "RTS PDUs were held back or altered"
pass "CONN/A1, OUT_R1/A3, CONN/B1 and Ping forwarded at once; OUT channel head and PDUs byte-exact"
