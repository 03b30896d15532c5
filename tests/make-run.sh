#!/usr/bin/env bash
# `make run`: a self-signed certificate and an NTLM user file under state/, the lab simulator
# reproducing Exchange 2013's Negotiate-only /mapi (field failure F1) on 127.0.0.1:8081, and
# exshim in front of it on https://127.0.0.1:8443 with conf/exshim.conf. Ctrl-C stops both.
set -u
TOP=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-build}
STATE=$TOP/state
LAB_PORT=${LAB_PORT:-8081}
mkdir -p "$STATE"
cd "$TOP"

if [ ! -s "$STATE/cert.pem" ] || [ ! -s "$STATE/key.pem" ]; then
    openssl req -x509 -newkey rsa:2048 -nodes -keyout "$STATE/key.pem" -out "$STATE/cert.pem" \
        -days 365 -subj "/CN=mail.contoso.test" \
        -addext "subjectAltName=DNS:mail.contoso.test,DNS:localhost,IP:127.0.0.1" \
        >/dev/null 2>&1 || { echo "make run: openssl could not create a certificate" >&2; exit 1; }
    echo "make run: generated a self-signed certificate in state/cert.pem"
fi
if [ ! -s "$STATE/users" ]; then
    printf 'CONTOSO:alice:Passw0rd!\nCONTOSO:bob:Secret-42\n' > "$STATE/users"
    chmod 600 "$STATE/users"
    echo "make run: wrote NTLM users to state/users (CONTOSO\\alice / Passw0rd!)"
fi

pids=()
stop() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
    wait 2>/dev/null
    echo
    echo "make run: stopped"
    exit 0
}
trap stop INT TERM

rm -f "$STATE/lab.ready" "$STATE/exshim.ready"
"$BUILD/exshim-lab" --preset negotiate-only-mapi --listen "127.0.0.1:$LAB_PORT" \
    --users "$STATE/users" --ready-file "$STATE/lab.ready" --log "$STATE/lab.log" &
pids+=($!)
for _ in $(seq 100); do [ -s "$STATE/lab.ready" ] && break; sleep 0.1; done
[ -s "$STATE/lab.ready" ] || { echo "make run: exshim-lab did not start; see state/lab.log" >&2; stop; }

"$BUILD/exshim" -c conf/exshim.conf -r "$STATE/exshim.ready" &
pids+=($!)
for _ in $(seq 100); do [ -s "$STATE/exshim.ready" ] && break; sleep 0.1; done
[ -s "$STATE/exshim.ready" ] || { echo "make run: exshim did not start" >&2; stop; }

cat <<EOT

exshim is running on https://127.0.0.1:8443 in front of exshim-lab (preset negotiate-only-mapi:
Exchange 2013's default /mapi offers Negotiate only) on http://127.0.0.1:$LAB_PORT.

1. Direct to the lab, NTLM fails with 401 (field failure F1, MapiHttp ServiceCode 1722):
   curl -s -o /dev/null -w '%{http_code}\n' --ntlm -u 'CONTOSO\\alice:Passw0rd!' \\
        -X POST -H 'X-RequestType: Connect' -H 'Content-Type: application/mapi-http' \\
        --data-binary x http://127.0.0.1:$LAB_PORT/mapi/emsmdb/

2. The same client through exshim succeeds (NTLM bridged to Negotiate):
   curl -sk -o /dev/null -w '%{http_code}\n' --ntlm -u 'CONTOSO\\alice:Passw0rd!' \\
        -X POST -H 'X-RequestType: Connect' -H 'Content-Type: application/mapi-http' \\
        --data-binary x https://127.0.0.1:8443/mapi/emsmdb/

3. What the client is offered, before and after exshim:
   curl -s -D - -o /dev/null http://127.0.0.1:$LAB_PORT/mapi/emsmdb/ | grep -i www-auth
   curl -sk -D - -o /dev/null https://127.0.0.1:8443/mapi/emsmdb/ | grep -i www-auth

Logs: exshim on this terminal, the lab in state/lab.log. Ctrl-C stops both.
EOT
wait
