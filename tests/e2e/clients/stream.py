#!/usr/bin/python3
"""Bulk RPC over HTTP channel client for exshim's streaming tests.

  stream.py --port P [--tls] --mode in  --mib N --origin-log FILE
      RPC_IN_DATA with Content-Length 1073741824, then N MiB of the test pattern (origin.py's
      pattern); done when origin.py logs "rpc_in ... bytes=N*MiB sha256=<ours>" (N must be a
      multiple of the origin's mark, 64 MiB by default). Fails on any response byte.
      --pause S: the origin waits S seconds before it reads (a slow server).
  stream.py --port P [--tls] --mode out --mib N
      RPC_OUT_DATA with Content-Length 76 and the CONN/A1 body, X-Stream-MiB: N; expects
      "200" with Content-Length 1073741824 (no chunking) and checks the sha256 of the first
      N MiB of the body against the pattern. --pause S: we wait S seconds before reading
      the body (a slow client).

Prints one line: "mode=M bytes=N seconds=S mbps=R sha256=H ok=0|1"; exit 0 when ok.
"""

import argparse
import hashlib
import os
import re
import socket
import ssl
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from origin import MIB, ONE_GIB, pattern_chunks, pattern_sha256  # noqa: E402

CONN_A1 = bytes.fromhex(
    "05001403100000004c0000000000000000000400060000000100000003000000"
    "000102030405060708090a0b0c0d0e0f03000000101112131415161718191a1b"
    "1c1d1e1f0000000000000100")


def connect(a):
    s = socket.create_connection((a.host, a.port), timeout=a.timeout)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if a.tls:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        ctx.set_alpn_protocols(["http/1.1"])
        s = ctx.wrap_socket(s, server_hostname=a.sni)
    return s


def head(method, extra, length):
    return ("%s /rpc/rpcproxy.dll?exch-be01.contoso.test:6001 HTTP/1.1\r\n"
            "Host: %s\r\nAccept: application/rpc\r\nCache-Control: no-cache\r\n"
            "Connection: Keep-Alive\r\nPragma: No-cache\r\nUser-Agent: MSRPC\r\n"
            "Protocol: 1.0\r\n%sContent-Length: %d\r\n\r\n"
            % (method, "mail.contoso.test", extra, length)).encode()


def log_size(path):
    try:
        return os.path.getsize(path)
    except OSError:
        return 0


def wait_origin_log(path, pattern, deadline, offset=0):
    """Waits for a line matching `pattern` written after byte `offset` of the log."""
    rx = re.compile(pattern)
    while time.time() < deadline:
        try:
            with open(path) as f:
                f.seek(offset)
                for line in f:
                    m = rx.search(line)
                    if m:
                        return m
        except FileNotFoundError:
            pass
        time.sleep(0.02)
    return None


def mode_in(a, s):
    nbytes = a.mib * MIB
    h = hashlib.sha256()
    offset = log_size(a.origin_log)
    t0 = time.time()
    extra = "X-Pause: %g\r\n" % a.pause if a.pause > 0 else ""
    s.sendall(head("RPC_IN_DATA", extra, ONE_GIB))
    for block in pattern_chunks(nbytes):
        s.sendall(block)
        h.update(block)
    sent_at = time.time()
    digest = h.hexdigest()
    m = wait_origin_log(a.origin_log, r"^rpc_in peer=\d+ bytes=%d sha256=(\w+)" % nbytes,
                        sent_at + a.timeout, offset)
    t1 = time.time()
    ok = m is not None and m.group(1) == digest
    if m is None:
        print("stream: origin never logged %d bytes received" % nbytes, file=sys.stderr)
    elif not ok:
        print("stream: origin sha256 %s != sent %s" % (m.group(1), digest), file=sys.stderr)
    # RPC_IN_DATA never gets a response: any byte from the proxy is a failure.
    s.setblocking(False)
    try:
        extra = s.recv(4096)
        print("stream: unexpected response on RPC_IN_DATA: %r" % extra[:200], file=sys.stderr)
        ok = False
    except (BlockingIOError, ssl.SSLWantReadError):
        pass
    except OSError as e:
        print("stream: connection error after upload: %s" % e, file=sys.stderr)
        ok = False
    return nbytes, t1 - t0, digest, ok


def mode_out(a, s):
    nbytes = a.mib * MIB
    t0 = time.time()
    s.sendall(head("RPC_OUT_DATA", "X-Stream-MiB: %d\r\n" % a.mib, len(CONN_A1)) + CONN_A1)
    buf = bytearray()
    while b"\r\n\r\n" not in buf:
        d = s.recv(65536)
        if not d:
            print("stream: connection closed before the response head", file=sys.stderr)
            return 0, 0, "", False
        buf += d
        if len(buf) > 1 << 20:
            print("stream: response head too long", file=sys.stderr)
            return 0, 0, "", False
    i = buf.find(b"\r\n\r\n") + 4
    rhead = bytes(buf[:i]).decode("latin-1")
    rest = bytes(buf[i:])
    ok = True
    status = rhead.split("\r\n")[0]
    if not re.match(r"HTTP/1\.[01] 200 ", status):
        print("stream: bad status: %s" % status, file=sys.stderr)
        ok = False
    cls = re.findall(r"(?im)^content-length:[ \t]*(\S+)", rhead)
    if cls != [str(ONE_GIB)]:
        print("stream: response Content-Length %r, want [%d]" % (cls, ONE_GIB), file=sys.stderr)
        ok = False
    if re.search(r"(?im)^transfer-encoding:", rhead):
        print("stream: response was re-framed with Transfer-Encoding", file=sys.stderr)
        ok = False
    if a.pause > 0:  # a slow client: the proxy must hold the origin back, not buffer
        time.sleep(a.pause)
    h = hashlib.sha256()
    got = 0
    if rest:
        rest = rest[:nbytes]
        h.update(rest)
        got = len(rest)
    rb = bytearray(1 << 20)
    rv = memoryview(rb)
    while got < nbytes:
        n = s.recv_into(rv, min(len(rb), nbytes - got))
        if n == 0:
            print("stream: connection closed after %d of %d bytes" % (got, nbytes),
                  file=sys.stderr)
            ok = False
            break
        h.update(rv[:n])
        got += n
    t1 = time.time()
    digest = h.hexdigest()
    want = pattern_sha256(nbytes)
    if got == nbytes and digest != want:
        print("stream: sha256 %s != pattern %s" % (digest, want), file=sys.stderr)
        ok = False
    return got, t1 - t0, digest, ok and got == nbytes


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--tls", action="store_true")
    ap.add_argument("--sni", default="localhost")
    ap.add_argument("--mode", choices=["in", "out"], required=True)
    ap.add_argument("--mib", type=int, default=256)
    ap.add_argument("--origin-log")
    ap.add_argument("--timeout", type=float, default=60)
    ap.add_argument("--pause", type=float, default=0,
                    help="in: the origin sleeps this long before reading; out: we do")
    a = ap.parse_args()
    if a.mode == "in" and not a.origin_log:
        ap.error("--mode in needs --origin-log")
    s = connect(a)
    try:
        if a.mode == "in":
            n, secs, digest, ok = mode_in(a, s)
        else:
            n, secs, digest, ok = mode_out(a, s)
    except (OSError, ssl.SSLError) as e:
        print("stream: %s" % e, file=sys.stderr)
        n, secs, digest, ok = 0, 0, "", False
    finally:
        s.close()
    mbps = n / secs / 1e6 if secs > 0 else 0
    print("mode=%s bytes=%d seconds=%.3f mbps=%.0f sha256=%s ok=%d"
          % (a.mode, n, secs, mbps, digest, int(ok)))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
