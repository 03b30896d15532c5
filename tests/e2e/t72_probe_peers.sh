#!/bin/bash
# exshim-probe through the proxies admins put in front of Exchange, with a healthy lab
# (preset default) behind them: the probe must name what each breaks.
#   HAProxy 2.6, mode http, http-reuse never (the published Exchange config): header names
#     lower-cased (F12) and a 48 KiB Negotiate header refused by its 16 KiB buffer (F13).
#   nginx 1.22 with a plain proxy_pass: NTLM broken by its upstream connection reuse (F6, told
#     from a wrong password by Basic), RPC_OUT_DATA's response and MAPI's PENDING keep-alives
#     buffered (F7, both seen: the MAPI step authenticates each request with Kerberos there),
#     8 KiB header buffers (F13); with http2 on its listener it chooses HTTP/2 for a client
#     offering it (F14).
# t70 shows the same lab through exshim passing.
. "$(dirname "$0")/lib.sh"
. "$E2E_DIR/realm.sh"
need curl openssl haproxy nginx
PROBE=${PROBE:-$BUILD/exshim-probe}
[ -x "$PROBE" ] || skip "exshim-probe not built ($PROBE)"
realm_start LAB.TEST exlab01.lab.test
self_signed lab exlab01.lab.test
H=exlab01.lab.test
printf 'Passw0rd!\n' >"$T/pw"
lab_start lab default --pending-period 250 --notify-hold 1000

cat "$T/lab.pem" "$T/lab.key" >"$T/haproxy.pem"
HP=$(free_port)
cat >"$T/haproxy.cfg" <<EOC
global
    log stderr format raw local0 err
defaults
    mode http
    option http-keep-alive
    http-reuse never
    timeout connect 5s
    timeout client 60m
    timeout server 60m
    timeout http-request 30s
    timeout tunnel 60m
frontend fe
    bind 127.0.0.1:$HP ssl crt $T/haproxy.pem alpn http/1.1
    default_backend be
backend be
    server lab 127.0.0.1:$LAB_PORT
EOC
bg haproxy haproxy -db -f "$T/haproxy.cfg"

NP=$(free_port)
mkdir -p "$T/ng"
cat >"$T/nginx.conf" <<EOC
worker_processes 1;
daemon off;
pid $T/ng/nginx.pid;
error_log $T/ng/error.log error;
events { worker_connections 256; }
http {
    access_log off;
    client_body_temp_path $T/ng/body;
    proxy_temp_path $T/ng/proxy;
    fastcgi_temp_path $T/ng/fastcgi;
    uwsgi_temp_path $T/ng/uwsgi;
    scgi_temp_path $T/ng/scgi;
    server {
        listen 127.0.0.1:$NP ssl http2;
        ssl_certificate $T/lab.pem;
        ssl_certificate_key $T/lab.key;
        location / {
            proxy_pass http://127.0.0.1:$LAB_PORT;
            proxy_http_version 1.1;
            proxy_set_header Host \$host;
        }
    }
}
EOC
bg nginx nginx -e "$T/ng/error.log" -p "$T/ng" -c "$T/nginx.conf"
wait_port "$HP" 10 || fail "haproxy did not start"
wait_port "$NP" 10 || fail "nginx did not start"

declare -A WANT=(
    [haproxy]="FAIL:F12 FAIL:F13 exit=1"
    [nginx]="FAIL:F13 FAIL:F14 FAIL:F6 FAIL:F7 exit=1"
)
bad=0
for x in "haproxy $HP" "nginx $NP"; do
    read -r name port <<<"$x"
    timeout 90 "$PROBE" "https://$H:$port" --resolve "$H:$port:127.0.0.1" -u 'LAB\alice' \
        --password-file "$T/pw" --kerberos --ca "$T/lab.pem" --timeout 3s --mapi-wait 4s \
        >"$T/probe-$name.out" 2>&1
    rc=$?
    ids=$(awk '/^(FAIL|WARN) [A-Za-z0-9]+ \[/ { print $1 ":" $2 }' "$T/probe-$name.out" | sort -u | tr '\n' ' ')
    got="${ids:-- }exit=$rc"
    log "$name: $got"
    if [ "$got" != "${WANT[$name]}" ]; then
        bad=1
        log "MISMATCH $name: want '${WANT[$name]}'"
        grep -v '^pass' "$T/probe-$name.out" | tail -30
    fi
done
# nginx's F7 is seen twice: RPC_OUT_DATA's head held back, and MAPI PENDING all at the end
grep -q '^FAIL F7 \[mapi\]: MAPI NotificationWait: PENDING' "$T/probe-nginx.out" ||
    { bad=1; log "nginx: the buffered NotificationWait was not named"; }
grep -q '^FAIL F7 \[rpc\]' "$T/probe-nginx.out" ||
    { bad=1; log "nginx: the buffered RPC_OUT_DATA was not named"; }
[ "$bad" = 0 ] || fail "the probe did not name what the peers break"
pass "HAProxy: F12, F13; nginx: F6, F7, F13, F14"
