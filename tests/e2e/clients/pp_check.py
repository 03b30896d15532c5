#!/usr/bin/python3
"""PROXY protocol clients for t90_proxy_protocol.sh (127.0.0.1 only; the addresses inside the
headers are documentation addresses and never contacted).

  pp_check.py SUBCOMMAND --port P [options]

Subcommands (one line per check; exit 1 if any failed):
  xff        v1 TCP4, v1 TCP6, v2 INET with TLVs (ALPN, authority, SSL, CRC32C), v2 INET6 and
             v2 LOCAL headers, then a request: X-Forwarded-For is the header's address (the
             socket's own, 127.0.0.1, for LOCAL); with --tls-port, a v2 header then TLS
  refused    malformed headers (plain HTTP, bad v1, bad v2, a bad CRC) are closed at once with
             no response byte; no header at all, or half of one, is closed at the deadline
             (--deadline seconds, with a margin) with no response byte
  denied     a valid header from a peer outside proxy_from: closed, no response byte
  climit     with max_connections_per_client = --limit: --limit connections carrying header
             address A are served and held, the next one with A is closed, one with B is
             served meanwhile
  rv         requests from --n header addresses, --k each, on fresh connections; the path
             names the address (/echo/rv/ADDR/I) so the origins' logs show who served which
"""

import argparse
import os
import socket
import ssl
import struct
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import core_check as cc  # noqa: E402  (check and its FAILS)

check = cc.check
SIG = b"\r\n\r\n\x00\r\nQUIT\n"


def crc32c(data):
    crc = 0xFFFFFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


def tlv(t, v):
    return bytes([t]) + struct.pack(">H", len(v)) + v


def v1(src, sport, dst=None, dport=443):
    fam = "TCP6" if ":" in src else "TCP4"
    dst = dst or ("2001:db8::1" if ":" in src else "198.51.100.1")
    return ("PROXY %s %s %s %d %d\r\n" % (fam, src, dst, sport, dport)).encode()


def v2(src, sport, dst=None, dport=443, tlvs=b"", crc=False, local=False, bad_crc=False):
    six = ":" in src
    fam = socket.AF_INET6 if six else socket.AF_INET
    dst = dst or ("2001:db8::1" if six else "198.51.100.1")
    addr = (socket.inet_pton(fam, src) + socket.inet_pton(fam, dst) +
            struct.pack(">HH", sport, dport))
    body = addr + tlvs
    if crc:
        body += b"\x03\x00\x04\x00\x00\x00\x00"
    cmd = 0x20 if local else 0x21
    h = SIG + bytes([cmd, 0x21 if six else 0x11]) + struct.pack(">H", len(body)) + body
    if crc:
        c = crc32c(h) ^ (1 if bad_crc else 0)
        h = h[:-4] + struct.pack(">I", c)
    return h


def rich_tlvs():
    ssl_tlv = tlv(0x20, b"\x01\x00\x00\x00\x00" + tlv(0x21, b"TLSv1.3") + tlv(0x23, b"TLS_AES_128_GCM_SHA256"))
    return (tlv(0x01, b"http/1.1") + tlv(0x02, b"mail.example.org") + tlv(0x04, b"\0" * 5) +
            tlv(0xEA, b"\x01vpce-0123") + ssl_tlv)


def connect(port, timeout=10):
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def tls_wrap(s):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx.wrap_socket(s, server_hostname="localhost")


def read_response(s):
    """One response (Content-Length framed); returns (status, headers dict, body) or None."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        d = s.recv(65536)
        if not d:
            return None
        buf += d
    head, rest = buf.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    hdrs = {}
    for ln in lines[1:]:
        k, v = ln.split(":", 1)
        hdrs[k.strip().lower()] = v.strip()
    n = int(hdrs.get("content-length", "0"))
    while len(rest) < n:
        d = s.recv(65536)
        if not d:
            break
        rest += d
    return status, hdrs, rest[:n]


def request(s, path, close=True):
    s.sendall(b"GET %s HTTP/1.1\r\nHost: mail.example.org\r\n%s\r\n"
              % (path.encode(), b"Connection: close\r\n" if close else b""))
    return read_response(s)


def xff_of(resp):
    """X-Forwarded-For as the origin received it (the echo body holds the raw head)."""
    if resp is None:
        return None
    for ln in resp[2].split(b"\r\n"):
        if ln.lower().startswith(b"x-forwarded-for:"):
            return ln.split(b":", 1)[1].strip().decode()
    return None


def one(port, header, path, tls=False, together=False):
    """header, then a request (TLS first with tls); together: header and request in one
    write, so exshim must take exactly the header's bytes out of one segment."""
    s = connect(port)
    try:
        if together:
            s.sendall(header + b"GET %s HTTP/1.1\r\nHost: mail.example.org\r\n"
                      b"Connection: close\r\n\r\n" % path.encode())
            return read_response(s)
        s.sendall(header)
        if tls:
            s = tls_wrap(s)
        return request(s, path)
    finally:
        s.close()


def cmd_xff(a):
    cases = [
        ("v1 TCP4", v1("192.0.2.10", 56324), "192.0.2.10"),
        ("v1 TCP6", v1("2001:db8::5", 40000, "2001:db8::1"), "2001:db8::5"),
        ("v2 INET + TLVs + CRC32C", v2("192.0.2.20", 40020, tlvs=rich_tlvs(), crc=True),
         "192.0.2.20"),
        ("v2 INET6", v2("2001:db8::6", 40006, tlvs=tlv(0x02, b"mail.example.org")), "2001:db8::6"),
        ("v2 LOCAL (the balancer's own check)", v2("192.0.2.99", 1, local=True), "127.0.0.1"),
    ]
    for name, hdr, want in cases:
        for together in (False, True):
            r = one(a.port, hdr, "/echo/xff", together=together)
            check(r is not None and r[0] == 200 and xff_of(r) == want,
                  "%s%s: X-Forwarded-For %s (got %s)"
                  % (name, ", request in the same write" if together else "", want, xff_of(r)))
    if a.tls_port:
        r = one(a.tls_port, v2("192.0.2.30", 40030, tlvs=tlv(0x01, b"http/1.1")), "/echo/tls",
                tls=True)
        check(r is not None and r[0] == 200 and xff_of(r) == "192.0.2.30",
              "v2 header then TLS: X-Forwarded-For 192.0.2.30 (got %s)" % xff_of(r))
        r = one(a.tls_port, v1("192.0.2.31", 40031), "/echo/tls", tls=True)
        check(r is not None and r[0] == 200 and xff_of(r) == "192.0.2.31",
              "v1 header then TLS: X-Forwarded-For 192.0.2.31 (got %s)" % xff_of(r))
    return 0


def closed_silently(port, data, within):
    """Sends data; True when the connection ends within `within` s with no byte received."""
    s = connect(port, timeout=within + 5)
    t0 = time.monotonic()
    got = b""
    try:
        if data:
            s.sendall(data)
        while True:
            d = s.recv(4096)
            if not d:
                break
            got += d
    except ConnectionResetError:
        pass
    except socket.timeout:
        return False, time.monotonic() - t0, got
    finally:
        s.close()
    dt = time.monotonic() - t0
    return got == b"" and dt <= within, dt, got


def cmd_refused(a):
    bad = [
        ("plain HTTP request", b"GET /echo/leak HTTP/1.1\r\nHost: x\r\n\r\n"),
        ("TLS ClientHello", bytes.fromhex("160301002a010000260303") + bytes(32)),
        ("v1 bad address", b"PROXY TCP4 192.0.2.300 198.51.100.1 1 443\r\nGET /echo/leak HTTP/1.1\r\n\r\n"),
        ("v1 bad port", b"PROXY TCP4 192.0.2.1 198.51.100.1 65536 443\r\nGET /echo/leak HTTP/1.1\r\n\r\n"),
        ("v1 LF only", b"PROXY TCP4 192.0.2.1 198.51.100.1 1 443\nGET /echo/leak HTTP/1.1\r\n\r\n"),
        ("v2 version 3", SIG + b"\x31\x11\x00\x0c" + bytes(12) + b"GET /echo/leak HTTP/1.1\r\n\r\n"),
        ("v2 UNIX family", SIG + b"\x21\x31\x00\xd8" + bytes(216)),
        ("v2 bad CRC32C", v2("192.0.2.40", 1, crc=True, bad_crc=True) + b"GET /echo/leak HTTP/1.1\r\n\r\n"),
        ("v2 TLV past the end", SIG + b"\x21\x11\x00\x0f" + bytes(12) + b"\x01\x00\x09"),
    ]
    for name, data in bad:
        ok, dt, got = closed_silently(a.port, data, 1.0)
        check(ok, "%s: closed in %.2fs, %d response bytes" % (name, dt, len(got)))
    # no header, and half of one: closed at the deadline, not before, not much after
    for name, data in [("no header", b""), ("half a v1 header", b"PROXY TCP4 192.0.2."),
                       ("half a v2 header", SIG + b"\x21\x11")]:
        ok, dt, got = closed_silently(a.port, data, a.deadline + 1.5)
        check(ok and dt >= a.deadline - 0.2,
              "%s: closed after %.2fs (deadline %.1fs), %d response bytes"
              % (name, dt, a.deadline, len(got)))
    return 0


def cmd_denied(a):
    for name, hdr in [("v1", v1("192.0.2.60", 1)), ("v2", v2("192.0.2.61", 1))]:
        ok, dt, got = closed_silently(a.port, hdr + b"GET /echo/denied HTTP/1.1\r\nHost: x\r\n\r\n",
                                      1.0)
        check(ok, "peer outside proxy_from, %s header: closed in %.2fs, %d bytes" % (name, dt, len(got)))
    return 0


def cmd_climit(a):
    held = []
    for i in range(a.limit):
        s = connect(a.port)
        s.sendall(v2("192.0.2.50", 41000 + i))
        r = request(s, "/echo/climit/A/%d" % i, close=False)
        check(r is not None and r[0] == 200 and xff_of(r) == "192.0.2.50",
              "A connection %d served (X-Forwarded-For %s)" % (i + 1, xff_of(r)))
        held.append(s)
    ok, dt, got = closed_silently(a.port, v1("192.0.2.50", 41999) +
                                  b"GET /echo/climit/A/over HTTP/1.1\r\nHost: x\r\n\r\n", 1.0)
    check(ok, "A connection %d (same header address): closed in %.2fs" % (a.limit + 1, dt))
    r = one(a.port, v1("192.0.2.51", 42000), "/echo/climit/B")
    check(r is not None and r[0] == 200 and xff_of(r) == "192.0.2.51",
          "B (another header address, same TCP peer) served while A holds %d" % a.limit)
    for s in held:
        s.close()
    return 0


def cmd_rv(a):
    for i in range(a.n):
        addr = "192.0.2.%d" % (100 + i) if i % 2 == 0 else "2001:db8::%x" % (0x100 + i)
        for k in range(a.k):
            hdr = v1(addr, 50000 + k) if k % 2 == 0 else v2(addr, 50000 + k)
            r = one(a.port, hdr, "/echo/rv/%s/%d" % (addr, k))
            check(r is not None and r[0] == 200 and xff_of(r) == addr,
                  "rv %s #%d answered" % (addr, k))
    return 0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("cmd", choices=["xff", "refused", "denied", "climit", "rv"])
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--tls-port", type=int, default=0)
    ap.add_argument("--deadline", type=float, default=1.0)
    ap.add_argument("--limit", type=int, default=2)
    ap.add_argument("--n", type=int, default=12)
    ap.add_argument("--k", type=int, default=3)
    a = ap.parse_args()
    {"xff": cmd_xff, "refused": cmd_refused, "denied": cmd_denied, "climit": cmd_climit,
     "rv": cmd_rv}[a.cmd](a)
    if cc.FAILS:
        print("%d check(s) failed" % len(cc.FAILS))
        sys.exit(1)


if __name__ == "__main__":
    main()
