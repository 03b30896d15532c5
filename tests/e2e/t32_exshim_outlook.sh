#!/bin/bash
# Outlook's two transports through exshim (TLS at exshim, plain HTTP to exshim-lab), each
# channel authenticated with real NTLM:
#  - RPC over HTTP: both channels opened through exshim, RTS handshake completed, 1,000 echo
#    PDUs sent on IN and received on OUT, in order;
#  - MAPI/HTTP: Connect, 100 Execute, one NotificationWait whose PENDING keep-alives arrive
#    through exshim as they are sent (spaced by X-PendingPeriod, not bunched at the end).
. "$(dirname "$0")/lib.sh"
. "$E2E_DIR/realm.sh"
lab_start lab default --pending-period 500 --notify-hold 2500
self_signed cert mail.contoso.test
cat >"$T/exshim.conf" <<CONF
workers = 2;
listeners = ( { name = "tls"; address = "127.0.0.1:0";
                tls = { certs = ( { chain = "cert.pem"; key = "cert.key"; } ); }; } );
backends = ( { name = "lab"; servers = [ "127.0.0.1:$LAB_PORT" ]; } );
routes = ( { path = "/rpc"; backend = "lab"; offer = [ "NTLM", "Negotiate" ]; },
           { path = "/mapi"; backend = "lab"; offer = [ "NTLM", "Negotiate" ]; } );
CONF
start_exshim "$T/exshim.conf"
XP=$(listener_port tls)

"$PY" "$LABPY/rpch.py" --port "$XP" --tls --sni mail.contoso.test --echo --pdus 1000 --size 256 \
    --timeout 60 >"$T/rpch.out" 2>&1 || fail "rpch through exshim: $(tail -5 "$T/rpch.out")"
grep -q '^pdus=1000 ok' "$T/rpch.out" || fail "1,000 PDUs not echoed in order: $(tail -3 "$T/rpch.out")"
n=$(grep -c 'auth conn=.* vdir=/rpc scheme=NTLM mech=ntlm user=LAB\\alice verdict=ok' "$LAB_LOG")
[ "$n" -ge 2 ] || fail "expected both channels authenticated at the lab, saw $n"
grep -q 'method=RPC_OUT_DATA path=/rpc/rpcproxy.dll' "$T/exshim.log" || fail "no RPC_OUT_DATA in exshim's log"
# The IN channel's handshake is traced when its AUTHENTICATE goes out (verdict=streaming: the
# channel has no status until it ends), so its auth line comes before the channel's access line.
awk '/ auth sid=.* verdict=streaming/ { for (i = 1; i <= NF; i++) if ($i ~ /^sid=/) seen[$i] = NR }
     / access sid=.* method=RPC_IN_DATA .* status=0 / { for (i = 1; i <= NF; i++) if ($i ~ /^sid=/) {
         if (!($i in seen) || seen[$i] > NR) bad = 1; n++ } }
     END { exit (n > 0 && !bad) ? 0 : 1 }' "$T/exshim.log" ||
    fail "the RPC_IN_DATA handshake was not traced when it completed: $(grep -E ' auth sid=| method=RPC_IN_DATA' "$T/exshim.log" | head -4)"
log "ok: RPC/HTTP through exshim: RTS handshake, 1,000 PDUs IN -> OUT in order"

"$PY" "$LABPY/mapi.py" --port "$XP" --tls --sni mail.contoso.test --executes 100 --wait \
    --min-pending 2 --pending-ms 500 --timeout 60 >"$T/mapi.out" 2>&1 ||
    fail "mapi through exshim: $(tail -5 "$T/mapi.out")"
grep -q '^executes=100 ok' "$T/mapi.out" || fail "100 Execute: $(cat "$T/mapi.out")"
grep -q '^mapi ok' "$T/mapi.out" || fail "NotificationWait: $(cat "$T/mapi.out")"
cat "$T/mapi.out"
log "ok: MAPI/HTTP through exshim: Connect, 100 Execute, PENDING keep-alives as sent"
pass "RPC/HTTP 1,000 echoes and MAPI/HTTP long poll through exshim"
