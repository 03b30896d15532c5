#!/usr/bin/python3
"""Opens connections that will wait in exshim's accept queues and checks every one is answered.

  queued.py --plain P --tls P --n-plain N --n-tls N --sent FILE [--timeout S]

Connects N plain and N TLS clients (TCP only: a TLS handshake cannot finish while nobody
accepts), sends GET /owa/ on the plain ones, writes FILE, then does the TLS handshakes and
requests and reads every response to its end. Prints "ok=K bad=B" and exits 0 when all are
"200".
"""

import argparse
import os
import socket
import ssl
import sys

REQ = b"GET /owa/ HTTP/1.1\r\nHost: q\r\nConnection: close\r\n\r\n"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--plain", type=int, required=True)
    ap.add_argument("--tls", type=int, required=True)
    ap.add_argument("--n-plain", type=int, default=40)
    ap.add_argument("--n-tls", type=int, default=20)
    ap.add_argument("--sent", required=True)
    ap.add_argument("--timeout", type=float, default=20)
    a = ap.parse_args()
    conns = []
    for _ in range(a.n_plain):
        s = socket.create_connection(("127.0.0.1", a.plain), timeout=a.timeout)
        s.sendall(REQ)
        conns.append(("plain", s))
    raw = [socket.create_connection(("127.0.0.1", a.tls), timeout=a.timeout)
           for _ in range(a.n_tls)]
    with open(a.sent + ".tmp", "w") as f:
        f.write("sent\n")
    os.rename(a.sent + ".tmp", a.sent)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    for r in raw:
        try:
            s = ctx.wrap_socket(r, server_hostname="mail.contoso.test")
            s.sendall(REQ)
            conns.append(("tls", s))
        except OSError as e:
            print("tls handshake: %r" % e)
            conns.append(("tls", None))
    ok = bad = 0
    for kind, s in conns:
        data = b""
        if s is not None:
            try:
                while True:
                    d = s.recv(65536)
                    if not d:
                        break
                    data += d
            except OSError as e:
                print("%s: %r" % (kind, e))
            s.close()
        if data.startswith(b"HTTP/1.1 200 "):
            ok += 1
        else:
            bad += 1
            print("%s: got %r" % (kind, data[:60]))
    print("ok=%d bad=%d" % (ok, bad))
    return 0 if bad == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
