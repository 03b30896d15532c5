#!/usr/bin/python3
"""Signals exshim's master and measures how soon new connections see the new configuration.

  reload_probe.py --pid PID [--signal HUP|NONE] (--offer-port P --want-offer "A,B" |
                  --tls-port P --want-cert SHA256HEX) [--limit S] [--hold S]

After the signal, opens a new connection every few milliseconds: with --want-offer, GET
/ews/exchange.asmx (a 401) and compare its WWW-Authenticate schemes, in order, with the list;
with --want-cert, a TLS handshake and compare the SHA-256 of the certificate. Prints
"seen after N ms (K probes)" and exits 0 once it matches within --limit seconds (default 1),
else 1. With --hold S the match must hold for S more seconds (the broken-reload check: the
old configuration must keep serving), every probe answered.
"""

import argparse
import hashlib
import os
import signal
import socket
import ssl
import sys
import time


def offers(port):
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    try:
        s.sendall(b"GET /ews/exchange.asmx HTTP/1.1\r\nHost: probe\r\nConnection: close\r\n\r\n")
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    finally:
        s.close()
    head = data.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")
    if not head[0].startswith("HTTP/1.1 401"):
        raise OSError("not a 401: %r" % head[0])
    return ",".join(v.split(":", 1)[1].strip().split(" ")[0] for v in head[1:]
                    if v.lower().startswith("www-authenticate:"))


def cert(port):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        with ctx.wrap_socket(raw, server_hostname="mail.contoso.test") as s:
            return hashlib.sha256(s.getpeercert(binary_form=True)).hexdigest()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--pid", type=int, required=True)
    ap.add_argument("--signal", default="HUP")
    ap.add_argument("--offer-port", type=int)
    ap.add_argument("--want-offer")
    ap.add_argument("--tls-port", type=int)
    ap.add_argument("--want-cert")
    ap.add_argument("--limit", type=float, default=1.0)
    ap.add_argument("--hold", type=float, default=0)
    a = ap.parse_args()
    if a.want_offer is not None:
        probe, want = (lambda: offers(a.offer_port)), a.want_offer
    else:
        probe, want = (lambda: cert(a.tls_port)), a.want_cert
    t0 = time.monotonic()
    if a.signal != "NONE":
        os.kill(a.pid, getattr(signal, "SIG" + a.signal))
    n, got = 0, None
    while time.monotonic() - t0 < a.limit + 2:
        n += 1
        try:
            got = probe()
        except (OSError, ssl.SSLError) as e:
            print("probe %d failed: %r" % (n, e))
            return 1
        if got == want:
            break
        time.sleep(0.005)
    ms = (time.monotonic() - t0) * 1000
    if got != want:
        print("not seen after %.0f ms (%d probes): got %s, want %s" % (ms, n, got, want))
        return 1
    print("seen after %.0f ms (%d probes)" % (ms, n))
    if ms > a.limit * 1000:
        print("too slow: limit %.0f ms" % (a.limit * 1000))
        return 1
    end = time.monotonic() + a.hold
    while time.monotonic() < end:
        try:
            got = probe()
        except (OSError, ssl.SSLError) as e:
            print("probe failed while holding: %r" % e)
            return 1
        if got != want:
            print("changed while holding: got %s, want %s" % (got, want))
            return 1
        time.sleep(0.05)
    return 0


if __name__ == "__main__":
    sys.exit(main())
