#!/usr/bin/env bash
# exshim -t prints the effective policy of every route after "configuration OK": backend
# (servers, plain/tls), offers or pass-through, bridge, the timeouts with their defaults
# resolved, and a note on F1's trap (offer = [ "NTLM" ] with ntlm-to-negotiate hides
# Negotiate from Kerberos clients), the health checks (a route's own health_path, passive-only
# backends) and the balance. The whole output is compared line by line.
. "$(dirname "$0")/lib.sh"
[ -x "$EXSHIM" ] || skip "$EXSHIM not built"
cat >"$T/p.conf" <<'EOF2'
listeners = ( { name = "plain"; address = "127.0.0.1:0"; } );
backends = ( { name = "ex2013"; servers = [ "127.0.0.1:81" ]; },
             { name = "cas"; servers = [ "127.0.0.1:443", "[::1]:443" ]; connect_timeout = "1500ms";
               tls = { verify = false; sni = "mail.contoso.test"; }; health = { interval = "500ms"; fall = 2; }; balance = "leastconn"; } );
routes = ( { path = "/mapi"; backend = "ex2013"; offer = [ "NTLM" ]; bridge = "ntlm-to-negotiate"; },
           { path = "/rpc"; backend = "cas"; offer = [ "NTLM", "Negotiate" ]; },
           { path = "/ews"; backend = "cas"; offer = [ "Negotiate", "NTLM" ]; bridge = "ntlm-to-negotiate";
             idle_timeout = "90s"; header_timeout = "2500ms"; health_path = "/ews/healthcheck.htm"; },
           { path = "/oab"; backend = "ex2013"; offer = [ ]; },
           { path = "default"; backend = "ex2013"; } );
EOF2
"$EXSHIM" -t -c "$T/p.conf" >"$T/t.out" 2>&1 || fail "exshim -t: $(cat "$T/t.out")"
cat >"$T/want.out" <<EOF2
$T/p.conf: configuration OK
route /mapi ($T/p.conf:5)
  backend ex2013: plain servers 127.0.0.1:81
  offer NTLM
  bridge ntlm-to-negotiate
  timeouts header 30s, idle 1h, body 1h, connect 5s
  health passive (a server whose connect fails is avoided for 10s); balance rendezvous
  note Negotiate is not offered: Kerberos clients fall back to NTLM; offer = [ "Negotiate", "NTLM" ] with the same bridge serves both
route /rpc ($T/p.conf:6)
  backend cas: tls no-verify servers 127.0.0.1:443, [::1]:443 sni mail.contoso.test
  offer NTLM, Negotiate
  bridge none
  timeouts header 30s, idle 1h, body 1h, connect 1500ms
  health /owa/healthcheck.htm every 500ms, timeout 500ms, rise 2, fall 2, expect 200; balance leastconn
route /ews ($T/p.conf:7)
  backend cas: tls no-verify servers 127.0.0.1:443, [::1]:443 sni mail.contoso.test
  offer Negotiate, NTLM
  bridge ntlm-to-negotiate
  timeouts header 2500ms, idle 90s, body 5m, connect 1500ms
  health /ews/healthcheck.htm every 500ms, timeout 500ms, rise 2, fall 2, expect 200; balance leastconn
route /oab ($T/p.conf:9)
  backend ex2013: plain servers 127.0.0.1:81
  offer none
  bridge none
  timeouts header 30s, idle 2m, body 5m, connect 5s
  health passive (a server whose connect fails is avoided for 10s); balance rendezvous
route default ($T/p.conf:10)
  backend ex2013: plain servers 127.0.0.1:81
  offer pass-through
  bridge none
  timeouts header 30s, idle 2m, body 5m, connect 5s
  health passive (a server whose connect fails is avoided for 10s); balance rendezvous
EOF2
diff -u "$T/want.out" "$T/t.out" >"$T/diff.out" || fail "policy dump differs: $(cat "$T/diff.out")"
# a broken file: the error alone, no policy
sed 's/"1500ms"/"1500xs"/' "$T/p.conf" >"$T/bad.conf"
"$EXSHIM" -t -c "$T/bad.conf" >"$T/bad.out" 2>&1 && fail "exshim -t accepts a bad duration"
grep -Eq "bad.conf:3: backends.\[1\].connect_timeout: invalid duration '1500xs'" "$T/bad.out" || fail "error: $(cat "$T/bad.out")"
! grep -q '^route ' "$T/bad.out" || fail "a policy was printed for a broken file"
pass "-t prints every route's policy (5 routes, F1 note on /mapi only); a broken file prints only its error"
