#!/usr/bin/python3
"""Raw-socket HTTP/1.1 checks for exshim's proxy-core tests (t2*).

  core_check.py SUBCOMMAND --port P [--tls] [options]

Subcommands (each prints one line per check and exits 1 if any check failed):
  reqheaders   request header names, case, order and duplicates reach the origin byte for
               byte; hop-by-hop headers are removed; X-Forwarded-* added, client copies replaced
  respheaders  origin's /headers response reaches the client byte for byte, in order, minus
               its hop-by-hop headers
  bigauth      a --size byte "Authorization: Negotiate YII..." header is forwarded intact
  badreq       the malformed/smuggling table: 400 (431 for the oversized head) and a close
  pair         two keep-alive clients interleave --n requests each; each keeps one backend
               connection (X-Origin-Peer) and the two differ
  chunked      /chunked-delay: the first chunk arrives before the origin sends the second
  stall        half a request head, then silence: exshim closes (or answers 408) in time
  rts          RPC over HTTP small-PDU cases (CONN/A1 in CL 76, OUT recycle CL 120, CONN/B1 +
               Ping): every PDU reaches the origin before the client sends the next
"""

import argparse
import base64
import os
import re
import socket
import ssl
import sys
import time

FAILS = []


def check(ok, what):
    print("%s %s" % ("ok  " if ok else "FAIL", what))
    sys.stdout.flush()
    if not ok:
        FAILS.append(what)
    return ok


def connect(a, timeout=10):
    s = socket.create_connection(("127.0.0.1", a.port), timeout=timeout)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if a.tls:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        s = ctx.wrap_socket(s, server_hostname="localhost")
    return s


class Reader:
    """Buffered reads of HTTP/1.1 responses from one socket."""

    def __init__(self, sock):
        self.s = sock
        self.buf = b""
        self.eof = False

    def more(self):
        d = self.s.recv(65536)
        if not d:
            self.eof = True
            raise EOFError()
        self.buf += d

    def head(self):
        while b"\r\n\r\n" not in self.buf:
            self.more()
        i = self.buf.index(b"\r\n\r\n") + 4
        h, self.buf = self.buf[:i], self.buf[i:]
        return h

    def exact(self, n):
        while len(self.buf) < n:
            self.more()
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def line(self):
        while b"\r\n" not in self.buf:
            self.more()
        i = self.buf.index(b"\r\n")
        out, self.buf = self.buf[:i], self.buf[i + 2:]
        return out

    def response(self, method="GET"):
        """Returns (status, raw head, body); skips 1xx; body by CL, chunked or close."""
        while True:
            h = self.head()
            status = int(h.split(b" ", 2)[1])
            if status >= 200 or status == 101:
                break
        hdrs = parse_headers(h)
        if method == "HEAD" or status in (204, 304):
            return status, h, b""
        te = hget(hdrs, "transfer-encoding")
        if te is not None and "chunked" in te.lower():
            body = b""
            while True:
                size = int(self.line().split(b";")[0], 16)
                if size == 0:
                    while self.line():
                        pass
                    return status, h, body
                body += self.exact(size)
                self.exact(2)
        cl = hget(hdrs, "content-length")
        if cl is not None:
            return status, h, self.exact(int(cl))
        try:
            while True:
                self.more()
        except EOFError:
            pass
        body, self.buf = self.buf, b""
        return status, h, body

    def closed_within(self, seconds):
        """True when the peer closes (EOF or reset) within `seconds`, with no more data
        than a TLS close_notify."""
        self.s.settimeout(seconds)
        try:
            while True:
                d = self.s.recv(65536)
                if not d:
                    return True
                self.buf += d
        except (ConnectionResetError, BrokenPipeError, ssl.SSLError):
            return True
        except socket.timeout:
            return False
        except OSError:
            return True


def parse_headers(head):
    out = []
    for line in head.split(b"\r\n")[1:]:
        if not line:
            continue
        name, _, value = line.partition(b":")
        out.append((name.decode("latin-1"), value.strip().decode("latin-1")))
    return out


def hget(hdrs, name):
    for k, v in hdrs:
        if k.lower() == name:
            return v
    return None


def hall(hdrs, name):
    return [v for k, v in hdrs if k.lower() == name]


def echo_parts(body):
    """Splits origin.py's /echo body into (info dict, raw request head)."""
    info_blob, _, raw = body.partition(b"\n\n")
    info = {}
    for line in info_blob.split(b"\n"):
        k, _, v = line.partition(b": ")
        info[k.decode()] = v.decode()
    return info, raw


def subsequence(needles, lines):
    """True when every line of `needles` appears in `lines` in the same order."""
    it = iter(lines)
    return all(any(n == l for l in it) for n in needles)


# --- reqheaders --------------------------------------------------------------------------
def cmd_reqheaders(a):
    kept = [
        b"Host: mail.contoso.test",
        b"X-MixedCase-Header: One",
        b"accept: */*",
        b"X-Dup: first",
        b"USER-AGENT: Microsoft Office/16.0 (Windows NT 10.0; MAPICPL 16.0.14334; Pro)",
        b"X-Dup: second",
        b"x-anchormailbox: alice@contoso.test",
        b"Cookie: X-BackEndCookie=abc; OutlookSession=\"{ABC}\"",
    ]
    hop = [
        b"Connection: keep-alive, X-Hop-Named",
        b"X-Hop-Named: must-not-pass",
        b"Keep-Alive: timeout=30",
        b"TE: trailers",
        b"Proxy-Connection: keep-alive",
        b"X-Forwarded-For: 203.0.113.66",
        b"X-Forwarded-Proto: gopher",
        b"X-Forwarded-Host: evil.example",
    ]
    lines = [b"GET /echo/reqheaders?q=1&Q=2 HTTP/1.1"]
    # interleave kept and hop-by-hop lines so order is checked across removed lines
    for i in range(max(len(kept), len(hop))):
        if i < len(kept):
            lines.append(kept[i])
        if i < len(hop):
            lines.append(hop[i])
    s = connect(a)
    s.sendall(b"\r\n".join(lines) + b"\r\n\r\n")
    r = Reader(s)
    status, h, body = r.response()
    check(status == 200, "reqheaders: status %d" % status)
    info, raw = echo_parts(body)
    got = raw.split(b"\r\n")
    check(got[0] == lines[0], "request line forwarded byte for byte: %r" % got[0])
    check(subsequence(kept, got),
          "end-to-end headers forwarded byte for byte and in order (got %r)" % got)
    for line in hop[:5]:
        name = line.split(b":")[0].lower()
        check(not any(g.split(b":")[0].lower() == name for g in got[1:]),
              "hop-by-hop %s removed" % name.decode())
    fwd = parse_headers(raw)
    xff = hall(fwd, "x-forwarded-for")
    check(xff == ["127.0.0.1"], "X-Forwarded-For replaced by the client address: %r" % xff)
    xfp = hall(fwd, "x-forwarded-proto")
    want = "https" if a.tls else "http"
    check(xfp == [want], "X-Forwarded-Proto is %s: %r" % (want, xfp))
    xfh = hall(fwd, "x-forwarded-host")
    check(xfh == ["mail.contoso.test"], "X-Forwarded-Host is the client's Host: %r" % xfh)
    # An Upgrade header that Connection does not list asks for nothing (RFC 9110 7.8): it is
    # a hop-by-hop header, so it is removed and the request itself is forwarded.
    s.sendall(b"GET /echo/upgrade HTTP/1.1\r\nHost: mail.contoso.test\r\nUpgrade: h2c\r\n"
              b"X-After: 1\r\n\r\n")
    status, h, body = r.response()
    _, raw = echo_parts(body)
    check(status == 200 and b"X-After: 1" in raw.split(b"\r\n")
          and not any(g.lower().startswith(b"upgrade:") for g in raw.split(b"\r\n")),
          "Upgrade (not listed in Connection) removed, request forwarded: status %d" % status)
    s.close()


# --- respheaders -------------------------------------------------------------------------
def cmd_respheaders(a):
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
    from origin import HEADERS_BODY, HEADERS_RESPONSE
    s = connect(a)
    s.sendall(b"GET /headers HTTP/1.1\r\nHost: mail.contoso.test\r\n\r\n")
    r = Reader(s)
    status, h, body = r.response()
    check(status == 200, "respheaders: status %d" % status)
    check(h.startswith(b"HTTP/1.1 200 OK\r\n"), "status line kept: %r" % h.split(b"\r\n")[0])
    got = h.split(b"\r\n")
    hop_names = (b"connection", b"x-hop-resp", b"keep-alive")
    kept = [x for x in HEADERS_RESPONSE if x.split(b":")[0].lower() not in hop_names]
    check(subsequence(kept, got), "response headers byte for byte, in order (got %r)" % got)
    check(not any(g.lower().startswith(b"x-hop-resp:") for g in got),
          "header named in the origin's Connection removed")
    check(b"Keep-Alive: timeout=5, max=100" not in got, "origin's Keep-Alive removed")
    check(body == HEADERS_BODY, "body intact")
    # the connection is still usable (keep-alive preserved)
    s.sendall(b"GET /echo/after-headers HTTP/1.1\r\nHost: mail.contoso.test\r\n\r\n")
    status, _, _ = r.response()
    check(status == 200, "keep-alive after /headers")
    s.close()


# --- bigauth -----------------------------------------------------------------------------
def der(tag, content):
    n = len(content)
    if n < 0x80:
        return bytes([tag, n]) + content
    if n < 0x100:
        return bytes([tag, 0x81, n]) + content
    return bytes([tag, 0x82, n >> 8, n & 0xff]) + content


def big_negotiate_token(nbytes):
    """A well-formed SPNEGO NegTokenInit offering Kerberos (MS and standard OIDs) whose
    mechToken is a GSS krb5 AP-REQ wrapper padded with random bytes, exactly `nbytes` long;
    the shape of a large-PAC Windows Kerberos token (base64 starts "YII")."""
    spnego = bytes.fromhex("06062b0601050502")
    mechs = der(0xa0, der(0x30, bytes.fromhex("06092a864882f712010202")
                          + bytes.fromhex("06092a864886f712010202")))

    def build(pad):
        ap_req = der(0x6e, der(0x30, os.urandom(pad)))
        krb = der(0x60, bytes.fromhex("06092a864886f712010202") + b"\x01\x00" + ap_req)
        init = der(0xa0, der(0x30, mechs + der(0xa2, der(0x04, krb))))
        return der(0x60, spnego + init)
    tok = build(nbytes - 64)
    return build(nbytes - 64 + (nbytes - len(tok)))


def cmd_bigauth(a):
    raw = big_negotiate_token(a.size * 3 // 4)
    check(len(raw) == a.size * 3 // 4, "token is %d bytes" % len(raw))
    tok = base64.b64encode(raw)
    line = b"Authorization: Negotiate " + tok
    s = connect(a)
    s.sendall(b"GET /echo/bigauth HTTP/1.1\r\nHost: mail.contoso.test\r\n" + line +
              b"\r\nUser-Agent: core_check\r\n\r\n")
    status, h, body = Reader(s).response()
    check(status == 200, "%d-byte Authorization header accepted: status %d" % (len(line), status))
    if status == 200:
        _, rawhead = echo_parts(body)
        check(line in rawhead.split(b"\r\n"), "Authorization header forwarded intact")
    s.close()


# --- badreq ------------------------------------------------------------------------------
def bad_cases(max_header_bytes):
    H = b"Host: mail.contoso.test\r\n"
    big_fill = max_header_bytes + 400  # just over the limit, so exshim can read it all
    big = b"GET /echo/big HTTP/1.1\r\n" + H + b"X-Fill: "
    big += b"a" * (big_fill - len(big) - 4) + b"\r\n\r\n"
    return [
        # name, bytes, allowed statuses
        ("cl-and-te", b"POST /echo HTTP/1.1\r\n" + H +
         b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", (400,)),
        ("te-and-cl", b"POST /echo HTTP/1.1\r\n" + H +
         b"Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n", (400,)),
        ("two-cl-differ", b"POST /echo HTTP/1.1\r\n" + H +
         b"Content-Length: 5\r\nContent-Length: 6\r\n\r\nhello!", (400,)),
        ("two-cl-same", b"POST /echo HTTP/1.1\r\n" + H +
         b"Content-Length: 5\r\nContent-Length: 5\r\n\r\nhello", (400,)),
        ("cl-list", b"POST /echo HTTP/1.1\r\n" + H + b"Content-Length: 5, 5\r\n\r\nhello", (400,)),
        ("cl-12a", b"POST /echo HTTP/1.1\r\n" + H + b"Content-Length: 12a\r\n\r\nhello", (400,)),
        ("cl-minus", b"POST /echo HTTP/1.1\r\n" + H + b"Content-Length: -1\r\n\r\nhello", (400,)),
        ("cl-plus", b"POST /echo HTTP/1.1\r\n" + H + b"Content-Length: +5\r\n\r\nhello", (400,)),
        ("chunk-size-zz", b"POST /echo HTTP/1.1\r\n" + H +
         b"Transfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n", (400,)),
        ("te-chunked-gzip", b"POST /echo HTTP/1.1\r\n" + H +
         b"Transfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n", (400, 501)),
        ("te-gzip", b"POST /echo HTTP/1.1\r\n" + H +
         b"Transfer-Encoding: gzip\r\n\r\nhello", (400, 501)),
        ("obs-fold-space", b"GET /echo HTTP/1.1\r\n" + H +
         b"X-Folded: one\r\n two\r\n\r\n", (400,)),
        ("obs-fold-tab", b"GET /echo HTTP/1.1\r\n" + H +
         b"X-Folded: one\r\n\ttwo\r\n\r\n", (400,)),
        ("bare-cr", b"GET /echo HTTP/1.1\r\n" + H + b"X-Cr: a\rb\r\n\r\n", (400,)),
        ("bare-lf", b"GET /echo HTTP/1.1\n" + H.replace(b"\r\n", b"\n") + b"\n", (400,)),
        ("nul-in-header", b"GET /echo HTTP/1.1\r\n" + H + b"X-Nul: a\x00b\r\n\r\n", (400,)),
        ("bad-method-char", b"G(T /echo HTTP/1.1\r\n" + H + b"\r\n", (400,)),
        ("space-before-colon", b"GET /echo HTTP/1.1\r\n" + H +
         b"Content-Length : 5\r\n\r\nhello", (400,)),
        ("head-too-big", big, (431,)),
    ]


def cmd_badreq(a):
    cases = bad_cases(a.max_header_bytes)
    if a.case:
        cases = [c for c in cases if c[0] in a.case]
        check(len(cases) == len(a.case), "known case names %s" % a.case)
    for name, data, allowed in cases:
        try:
            s = connect(a, timeout=5)
            s.sendall(data)
            r = Reader(s)
            t0 = time.time()
            status, h, _ = r.response()
            closed = r.closed_within(3)
            check(status in allowed and closed,
                  "badreq %-18s status=%d closed=%s (want %s and close, %.2fs)"
                  % (name, status, closed, "/".join(map(str, allowed)), time.time() - t0))
            s.close()
        except (EOFError, OSError, ssl.SSLError, ValueError, IndexError) as e:
            check(False, "badreq %-18s no response before close: %s" % (name, str(e) or type(e).__name__))


# --- pair --------------------------------------------------------------------------------
def cmd_pair(a):
    socks = [connect(a), connect(a)]
    readers = [Reader(s) for s in socks]
    peers = [set(), set()]
    ok = True
    for i in range(a.n):
        for c in (0, 1):
            socks[c].sendall(b"GET /echo/client%d/req%d HTTP/1.1\r\nHost: mail.contoso.test\r\n"
                             b"X-Client: %d\r\n\r\n" % (c, i, c))
        for c in (1, 0):
            status, h, body = readers[c].response()
            hdrs = parse_headers(h)
            peers[c].add(hget(hdrs, "x-origin-peer"))
            _, raw = echo_parts(body)
            if status != 200 or not raw.startswith(b"GET /echo/client%d/req%d " % (c, i)):
                ok = False
                check(False, "client %d request %d: status %d, answer for %r"
                      % (c, i, status, raw.split(b"\r\n")[0]))
    check(ok, "every response answers its own client's request (%d each)" % a.n)
    check(len(peers[0]) == 1 and None not in peers[0],
          "client 0 always on one backend connection: %s" % sorted(map(str, peers[0])))
    check(len(peers[1]) == 1 and None not in peers[1],
          "client 1 always on one backend connection: %s" % sorted(map(str, peers[1])))
    check(not (peers[0] & peers[1]), "the two clients' backend connections differ")
    for s in socks:
        s.close()


# --- chunked -----------------------------------------------------------------------------
def cmd_chunked(a):
    s = connect(a)
    t0 = time.time()
    s.sendall(b"GET /chunked-delay?delay=%g HTTP/1.1\r\nHost: mail.contoso.test\r\n\r\n"
              % a.delay)
    r = Reader(s)
    h = r.head()
    hdrs = parse_headers(h)
    check(h.startswith(b"HTTP/1.1 200"), "status 200")
    te = hget(hdrs, "transfer-encoding") or ""
    check("chunked" in te.lower(), "response stays chunked: %r" % te)
    size = int(r.line(), 16)
    first = r.exact(size)
    t_first = time.time()
    r.exact(2)
    size = int(r.line(), 16)
    second = r.exact(size)
    t_second = time.time()
    r.exact(2)
    check(first == b"first chunk\n" and second == b"second chunk\n", "chunk contents")
    check(r.line() == b"0", "last chunk")
    # the origin logs the wall-clock time just before it sends the second chunk
    sent2 = None
    for line in open(a.origin_log):
        m = re.match(r"chunk peer=\d+ n=2 sending t=([\d.]+)", line)
        if m:
            sent2 = float(m.group(1))
    check(sent2 is not None, "origin logged its second chunk")
    if sent2 is not None:
        check(t_first < sent2, "first chunk received %.3fs before the origin sent the second"
              % (sent2 - t_first))
    check(t_first - t0 < a.delay / 2, "first chunk after %.3fs" % (t_first - t0))
    check(t_second - t0 >= a.delay * 0.9, "second chunk after %.3fs" % (t_second - t0))
    print("chunked: first chunk at %.3fs, second at %.3fs" % (t_first - t0, t_second - t0))
    s.close()


# --- stall -------------------------------------------------------------------------------
def cmd_stall(a):
    s = connect(a)
    s.sendall(b"GET /echo/stall HTTP/1.1\r\nHost: mail.contoso.test\r\nX-Half: ")
    t0 = time.time()
    r = Reader(s)
    closed = r.closed_within(a.max)
    dt = time.time() - t0
    check(closed, "half head dropped (closed) within %.1fs: after %.2fs" % (a.max, dt))
    check(dt >= a.min, "not dropped before the header timeout (%.2fs >= %.1fs)" % (dt, a.min))
    if r.buf:
        check(re.match(rb"HTTP/1\.[01] 408 ", r.buf) is not None,
              "anything sent is a 408: %r" % r.buf[:40])
    print("stall: closed after %.2fs" % dt)


# --- rts ---------------------------------------------------------------------------------
CONN_A1 = bytes.fromhex(
    "05001403100000004c0000000000000000000400060000000100000003000000"
    "000102030405060708090a0b0c0d0e0f03000000101112131415161718191a1b"
    "1c1d1e1f0000000000000100")
CONN_A3_C2 = bytes.fromhex(
    "05001403100000001c000000000000000000010002000000a0bb0d00"
    "05001403100000002c00000000000000000003000600000001000000000000000000010002000000a0bb0d00")
CONN_B1 = bytes.fromhex(
    "0500140310000000680000000000000000000600060000000100000003000000"
    "000102030405060708090a0b0c0d0e0f03000000202122232425262728292a2b"
    "2c2d2e2f040000000000004005000000e09304000c000000303132333435363738393a3b3c3d3e3f")
PING = bytes.fromhex("0500140310000000140000000000000001000000")
OUT_R1_A3 = bytes.fromhex(
    "0500140310000000600000000000000004000500060000000100000003000000"
    "000102030405060708090a0b0c0d0e0f03000000101112131415161718191a1b"
    "1c1d1e1f03000000404142434445464748494a4b4c4d4e4f0000000000000100")
OUT_R1_A11 = bytes.fromhex("05001403100000001800000000000000000001000a000000")


def rpc_head(method, length):
    return ("%s /rpc/rpcproxy.dll?exch-be01.contoso.test:6001 HTTP/1.1\r\n"
            "Host: mail.contoso.test\r\nAccept: application/rpc\r\nCache-Control: no-cache\r\n"
            "Connection: Keep-Alive\r\nPragma: No-cache\r\nUser-Agent: MSRPC\r\n"
            "Protocol: 1.0\r\nContent-Length: %d\r\n\r\n" % (method, length)).encode()


def origin_body_hex(path, since_lines):
    """Concatenated hex of origin 'body' lines after the first `since_lines` lines, per
    origin peer. Returns {peer: bytes}."""
    out = {}
    with open(path) as f:
        lines = f.readlines()[since_lines:]
    for line in lines:
        m = re.match(r"body peer=(\d+) n=\d+ total=\d+ hex=([0-9a-f]*)", line)
        if m:
            out[m.group(1)] = out.get(m.group(1), b"") + bytes.fromhex(m.group(2))
    return out


def log_len(path):
    with open(path) as f:
        return sum(1 for _ in f)


def wait_body(path, since, want, limit):
    t0 = time.time()
    while time.time() - t0 < limit:
        for peer, data in origin_body_hex(path, since).items():
            if data == want:
                return time.time() - t0
        time.sleep(0.01)
    return None


def cmd_rts(a):
    # 1. RPC_OUT_DATA, CL 76, CONN/A1: the origin has all 76 bytes at once (exshim does not
    #    wait for more), and its 200 + CONN/A3||CONN/C2 reaches us byte-exact while the
    #    1 GiB response stays open.
    since = log_len(a.origin_log)
    s = connect(a)
    s.sendall(rpc_head("RPC_OUT_DATA", 76) + CONN_A1)
    dt = wait_body(a.origin_log, since, CONN_A1, 3)
    check(dt is not None and dt < a.max_delay,
          "CONN/A1 (76 bytes) at the origin after %s s" % (dt if dt is None else "%.3f" % dt))
    r = Reader(s)
    s.settimeout(5)
    try:
        h = r.head()
        hdrs = parse_headers(h)
        check(h.startswith(b"HTTP/1.1 200 Success\r\n"), "OUT channel: 200 Success status line")
        check(hall(hdrs, "content-length") == ["1073741824"],
              "OUT channel: Content-Length 1073741824 kept")
        check(hget(hdrs, "transfer-encoding") is None, "OUT channel: not re-chunked")
        body = r.exact(len(CONN_A3_C2))
        check(body == CONN_A3_C2, "CONN/A3 + CONN/C2 (72 bytes) byte-exact, unbuffered")
    except (EOFError, OSError) as e:
        check(False, "OUT channel response: %s" % e)
    s.close()

    # 2. OUT channel recycling, CL 120: OUT_R1/A3 (96 bytes) must reach the origin before
    #    the client sends OUT_R1/A11 (24 bytes); a proxy waiting for the whole body
    #    deadlocks here.
    since = log_len(a.origin_log)
    s = connect(a)
    s.sendall(rpc_head("RPC_OUT_DATA", 120) + OUT_R1_A3)
    dt = wait_body(a.origin_log, since, OUT_R1_A3, 3)
    check(dt is not None and dt < a.max_delay, "OUT_R1/A3 (96 of 120 bytes) forwarded alone "
          "after %s s" % (dt if dt is None else "%.3f" % dt))
    s.sendall(OUT_R1_A11)
    dt = wait_body(a.origin_log, since, OUT_R1_A3 + OUT_R1_A11, 3)
    check(dt is not None, "OUT_R1/A11 completes the 120-byte body")
    try:
        s.settimeout(5)
        h = Reader(s).head()
        check(h.startswith(b"HTTP/1.1 200 "), "recycled OUT channel answered 200")
    except (EOFError, OSError) as e:
        check(False, "recycled OUT channel response: %s" % e)
    s.close()

    # 3. RPC_IN_DATA, CL 1 GiB: CONN/B1, then a Ping, each at the origin before the next is
    #    sent, and no response to the IN channel.
    since = log_len(a.origin_log)
    s = connect(a)
    s.sendall(rpc_head("RPC_IN_DATA", 1073741824) + CONN_B1)
    dt = wait_body(a.origin_log, since, CONN_B1, 3)
    check(dt is not None and dt < a.max_delay, "CONN/B1 (104 bytes) at the origin after %s s"
          % (dt if dt is None else "%.3f" % dt))
    time.sleep(0.3)
    s.sendall(PING)
    dt = wait_body(a.origin_log, since, CONN_B1 + PING, 3)
    check(dt is not None and dt < a.max_delay, "Ping (20 bytes) at the origin after %s s"
          % (dt if dt is None else "%.3f" % dt))
    s.settimeout(0.5)
    try:
        d = s.recv(100)
        check(False, "IN channel got unexpected bytes: %r" % d[:60])
    except socket.timeout:
        check(True, "IN channel: no response synthesised")
    except OSError as e:
        check(False, "IN channel broke: %s" % e)
    s.close()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("cmd", choices=["reqheaders", "respheaders", "bigauth", "badreq", "pair",
                                    "chunked", "stall", "rts"])
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--tls", action="store_true")
    ap.add_argument("--size", type=int, default=64000)
    ap.add_argument("--max-header-bytes", type=int, default=65536)
    ap.add_argument("--case", action="append")
    ap.add_argument("--n", type=int, default=20)
    ap.add_argument("--delay", type=float, default=2.0)
    ap.add_argument("--origin-log")
    ap.add_argument("--min", type=float, default=1.5)
    ap.add_argument("--max", type=float, default=5.0)
    ap.add_argument("--max-delay", type=float, default=0.5)
    a = ap.parse_args()
    try:
        globals()["cmd_" + a.cmd](a)
    except (EOFError, OSError, ssl.SSLError) as e:
        check(False, "%s: connection failed: %s" % (a.cmd, str(e) or type(e).__name__))
    if FAILS:
        print("%s: %d check(s) failed" % (a.cmd, len(FAILS)))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
