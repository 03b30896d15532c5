#!/usr/bin/python3
"""Scriptable HTTP/1.1 origin for exshim's end-to-end tests (plain TCP, 127.0.0.1).

Usage: origin.py [--port N] [--ready FILE] [--log FILE]

One thread per accepted connection. Behaviour is chosen per request:

  method RPC_IN_DATA   read the body as it arrives and never answer; log each read within the
                       first 4 KiB of body with (up to 512 of) its bytes in hex ("body ..."), the byte
                       count and sha256 of the prefix at every mark (64 MiB, or the request's
                       X-Mark-MiB) and at the end ("rpc_in ...", "rpc_in_end ..."); with
                       X-Pause: S it sleeps S seconds before reading the body
  method RPC_OUT_DATA  read the (small) body logging every read in hex, then answer
                       "200 Success" with Content-Length 1073741824 and either the CONN/A3 +
                       CONN/C2 PDUs (72 bytes), or N MiB of the test pattern when the request
                       has X-Stream-MiB: N or ?mib=N; hold the connection until the peer
                       closes. A body shorter than 76 bytes is an echo request: 20-byte answer.
  /chunked-delay       chunked 200: one chunk, sleep (?delay=S, default 2), a second chunk
  /slow                read the request, never answer
  /truncate            200 with Content-Length 100000 but only 1000 body bytes, then close
  /headers             fixed response headers with odd case and a fixed order
  .../close-after      (anywhere in the path) 200 with Content-Length and keep-alive (no Connection: close), then
                       sleep ?ms=N (default 200) milliseconds and close the socket; logs
                       "close_after peer=P closing" just before the close
  .../bad-resp         (anywhere in the path) a 200 whose framing is broken, chosen by ?kind=:
                         size    "zz" as the first chunk size
                         lf      LF-only chunk lines ("8\\nLEAKED-2\\n0\\n\\n")
                         crx     "8\\rX" after the size
                         second  a valid first chunk "GOODDATA", then after ?delay=S (default
                                 0.5) a second chunk with a bad size
                         cl-te   Content-Length and Transfer-Encoding: chunked together
                         two-cl  two Content-Length headers
                         head-lf a head with LF-only line ends
                         trailer-cl  a valid chunk, then a Content-Length trailer
                         good-ext    valid: "8;ext=1" chunk and an X-Trailer (must relay)
                       head and first (bad or good) chunk go in one send; every bad chunk
                       carries the marker "LEAKED-" that must never reach a client; logs
                       "bad_resp peer=P kind=K"; then waits for the peer to close
  anything else        echo: 200, body = "head-length/body-length/body-sha256" lines, a blank
                       line, then the raw request head exactly as received; X-Origin-Peer
                       names the peer address the origin saw

Log lines (one per event, flushed at once): "accept peer=PORT", "request peer=PORT method=M
path=P version=V", "close peer=PORT bytes_in=N requests=N", plus the ones above. Every line
ends with t=UNIX_TIME.
"""

import argparse
import hashlib
import os
import socket
import struct
import sys
import threading
import time
from urllib.parse import parse_qs, urlsplit

MIB = 1 << 20
RECV_SIZE = 1 << 20
MAX_HEAD = 1 << 20
HEX_MAX = 512  # body bytes shown per "body" log line
ONE_GIB = 1073741824
CONN_A3_C2 = bytes.fromhex(
    "05001403100000001c000000000000000000010002000000a0bb0d00"
    "05001403100000002c00000000000000000003000600000001000000000000000000010002000000a0bb0d00")
ECHO_PDU = bytes.fromhex("0500140310000000140000000000000040000000")

# The response of /headers: odd case and a fixed order that exshim must keep byte for byte.
# X-Hop-Resp is named in Connection (hop-by-hop), so it must not reach the client; neither may
# Keep-Alive.
HEADERS_RESPONSE = [
    b"X-FEServer: EXCH-FE01",
    b"request-id: 6f1c2d3e-4b5a-4978-8a6b-5c4d3e2f1a0b",
    b"X-CalculatedBETarget: exch-be02.contoso.test",
    b"Set-Cookie: X-BackEndCookie=S-1-5-21=abc; path=/mapi",
    b"Set-Cookie: exchangecookie=0123456789; path=/",
    b"Persistent-Auth: true",
    b"x-lowercase-only: v1",
    b"X-UPPER-ONLY: V2",
    b"X-MiXeD-cAsE: v3",
    b"Connection: X-Hop-Resp",
    b"X-Hop-Resp: must-not-pass",
    b"Keep-Alive: timeout=5, max=100",
    b"Cache-Control: private",
    b"Content-Type: text/plain",
]
HEADERS_BODY = b"headers\n"

_pattern_base = None


def pattern_block(index):
    """1 MiB block number `index` of the deterministic test stream: a fixed pseudo-random MiB
    whose first 8 bytes are the block index (so dropped, repeated or swapped blocks change the
    hash)."""
    global _pattern_base
    if _pattern_base is None:
        _pattern_base = b"".join(
            hashlib.sha256(b"exshim-pattern-%d" % k).digest() for k in range(MIB // 32))
    return struct.pack("<Q", index) + _pattern_base[8:]


def pattern_chunks(nbytes):
    """Yields the first nbytes of the test stream, in blocks of at most 1 MiB."""
    i = 0
    while nbytes > 0:
        b = pattern_block(i)
        if nbytes < len(b):
            b = b[:nbytes]
        yield b
        nbytes -= len(b)
        i += 1


def pattern_sha256(nbytes):
    h = hashlib.sha256()
    for b in pattern_chunks(nbytes):
        h.update(b)
    return h.hexdigest()


class Log:
    def __init__(self, path):
        self.f = open(path, "a", buffering=1) if path else sys.stdout
        self.lock = threading.Lock()

    def __call__(self, msg):
        with self.lock:
            self.f.write("%s t=%.6f\n" % (msg, time.time()))
            self.f.flush()


class Closed(Exception):
    pass


class Request:
    def __init__(self, head):
        self.head = head  # raw bytes, including the final CRLF CRLF
        lines = head[:-4].split(b"\r\n")
        parts = lines[0].split(b" ")
        if len(parts) != 3:
            raise ValueError("bad request line")
        self.method = parts[0].decode("latin-1")
        self.target = parts[1].decode("latin-1")
        self.version = parts[2].decode("latin-1")
        self.headers = []
        for line in lines[1:]:
            name, sep, value = line.partition(b":")
            if not sep:
                raise ValueError("bad header line")
            self.headers.append((name.decode("latin-1"), value.strip().decode("latin-1")))
        u = urlsplit(self.target)
        self.path = u.path
        self.query = parse_qs(u.query) if "=" in u.query else {}

    def get(self, name, default=None):
        name = name.lower()
        for k, v in self.headers:
            if k.lower() == name:
                return v
        return default

    def tokens(self, name):
        out = []
        name = name.lower()
        for k, v in self.headers:
            if k.lower() == name:
                out += [t.strip().lower() for t in v.split(",") if t.strip()]
        return out

    def param(self, qname, hname, default):
        if qname in self.query:
            return self.query[qname][0]
        return self.get(hname, default)


class Conn:
    def __init__(self, sock, addr, log):
        self.sock = sock
        self.peer = addr[1]
        self.peer_text = "%s:%d" % addr
        self.log = log
        self.buf = bytearray()
        self.bytes_in = 0
        self.requests = 0
        self.rbuf = bytearray(RECV_SIZE)
        self.rview = memoryview(self.rbuf)

    # --- input -------------------------------------------------------------------------
    def fill(self):
        """Receives once into self.buf; raises Closed at end of stream."""
        n = self.sock.recv_into(self.rview)
        if n == 0:
            raise Closed()
        self.bytes_in += n
        self.buf += self.rview[:n]

    def read_head(self):
        while True:
            i = self.buf.find(b"\r\n\r\n")
            if i >= 0:
                head = bytes(self.buf[:i + 4])
                del self.buf[:i + 4]
                return head
            if len(self.buf) > MAX_HEAD:
                raise Closed()
            self.fill()

    def read_some(self, limit):
        """Returns up to `limit` body bytes (buffered first, then one recv) as a memoryview
        or bytes; raises Closed at end of stream."""
        if self.buf:
            n = min(limit, len(self.buf))
            out = bytes(self.buf[:n])
            del self.buf[:n]
            return out
        n = self.sock.recv_into(self.rview, min(limit, RECV_SIZE))
        if n == 0:
            raise Closed()
        self.bytes_in += n
        return self.rview[:n]

    def read_exact(self, n):
        out = bytearray()
        while len(out) < n:
            out += self.read_some(n - len(out))
        return bytes(out)

    def read_line(self):
        while True:
            i = self.buf.find(b"\r\n")
            if i >= 0:
                line = bytes(self.buf[:i])
                del self.buf[:i + 2]
                return line
            if len(self.buf) > 65536:
                raise Closed()
            self.fill()

    def read_body(self, req, on_data=None):
        """Reads the request body by its framing; returns (length, sha256 hex)."""
        h = hashlib.sha256()
        total = 0
        if "chunked" in req.tokens("Transfer-Encoding"):
            while True:
                size = int(self.read_line().split(b";")[0].strip(), 16)
                if size == 0:
                    while self.read_line():
                        pass
                    break
                data = self.read_exact(size)
                h.update(data)
                total += size
                if on_data:
                    on_data(data, total)
                self.read_exact(2)
        else:
            left = int(req.get("Content-Length", "0"))
            while left > 0:
                data = self.read_some(left)
                h.update(data)
                left -= len(data)
                total += len(data)
                if on_data:
                    on_data(data, total)
        return total, h.hexdigest()

    def wait_eof(self):
        while True:
            self.buf.clear()
            self.read_some(RECV_SIZE)

    # --- output ------------------------------------------------------------------------
    def send(self, data):
        self.sock.sendall(data)

    def respond(self, status, headers, body, close=False):
        lines = [b"HTTP/1.1 " + status]
        lines += headers
        lines.append(b"Content-Length: %d" % len(body))
        if close:
            lines.append(b"Connection: close")
        self.send(b"\r\n".join(lines) + b"\r\n\r\n" + body)

    # --- per-request behaviour ---------------------------------------------------------
    def wants_close(self, req):
        conn = req.tokens("Connection")
        if "close" in conn:
            return True
        return req.version == "HTTP/1.0" and "keep-alive" not in conn

    def maybe_continue(self, req):
        if (req.get("Expect", "").lower() == "100-continue"
                and req.version == "HTTP/1.1"
                and (int(req.get("Content-Length", "0") or 0) > 0
                     or "chunked" in req.tokens("Transfer-Encoding"))):
            self.log("continue peer=%d" % self.peer)
            self.send(b"HTTP/1.1 100 Continue\r\n\r\n")

    def log_first_bytes(self, tag):
        def on_data(data, total):
            if total - len(data) < 4096:
                self.log("%s peer=%d n=%d total=%d hex=%s"
                         % (tag, self.peer, len(data), total, bytes(data[:HEX_MAX]).hex()))
        return on_data

    def do_echo(self, req):
        self.maybe_continue(req)
        n, digest = self.read_body(req)
        body = (b"head-length: %d\nbody-length: %d\nbody-sha256: %s\n\n"
                % (len(req.head), n, digest.encode()) + req.head)
        close = self.wants_close(req)
        self.respond(b"200 OK", [
            b"X-Origin-Peer: " + self.peer_text.encode(),
            b"X-Origin-Request: %d" % self.requests,
            b"Content-Type: text/plain",
        ], body, close)
        return not close

    def do_headers(self, req):
        self.read_body(req)
        close = self.wants_close(req)
        self.respond(b"200 OK", HEADERS_RESPONSE, HEADERS_BODY, close)
        return not close

    def do_chunked_delay(self, req):
        self.read_body(req)
        delay = float(req.param("delay", "X-Delay", "2"))
        self.send(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                  b"Transfer-Encoding: chunked\r\n\r\n")
        first = b"first chunk\n"
        self.send(b"%x\r\n%s\r\n" % (len(first), first))
        self.log("chunk peer=%d n=1" % self.peer)
        time.sleep(delay)
        second = b"second chunk\n"
        self.log("chunk peer=%d n=2 sending" % self.peer)
        self.send(b"%x\r\n%s\r\n0\r\n\r\n" % (len(second), second))
        return True

    def do_truncate(self, req):
        self.read_body(req)
        self.send(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                  b"Content-Length: 100000\r\n\r\n" + b"t" * 1000)
        self.log("truncate peer=%d closing after 1000 of 100000 bytes" % self.peer)

    def do_close_after(self, req):
        self.read_body(req)
        ms = float(req.param("ms", "X-Close-Ms", "200"))
        self.respond(b"200 OK", [b"X-Origin-Peer: " + self.peer_text.encode(),
                                 b"Content-Type: text/plain"], b"closing soon\n")
        time.sleep(ms / 1000.0)
        self.log("close_after peer=%d closing" % self.peer)

    CHUNKED_HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n"
    BAD_RESP = {  # kind: (head, [first send after the head, later sends...])
        "size": (CHUNKED_HEAD, [b"zz\r\nLEAKED-1\r\n0\r\n\r\n"]),
        "lf": (CHUNKED_HEAD, [b"8\nLEAKED-2\n0\n\n"]),
        "crx": (CHUNKED_HEAD, [b"8\rXLEAKED-3\r\n0\r\n\r\n"]),
        "second": (CHUNKED_HEAD, [b"8\r\nGOODDATA\r\n", b"zz\r\nLEAKED-4\r\n0\r\n\r\n"]),
        "cl-te": (b"HTTP/1.1 200 OK\r\nContent-Length: 20\r\nTransfer-Encoding: chunked\r\n\r\n",
                  [b"8\r\nLEAKED-5\r\n0\r\n\r\n"]),
        "two-cl": (b"HTTP/1.1 200 OK\r\nContent-Length: 8\r\nContent-Length: 8\r\n\r\n",
                   [b"LEAKED-6"]),
        "head-lf": (b"HTTP/1.1 200 OK\nContent-Length: 8\n\n", [b"LEAKED-7"]),
        "trailer-cl": (CHUNKED_HEAD, [b"8\r\nGOODDATA\r\n0\r\nContent-Length: 8\r\n\r\nLEAKED-8"]),
        "good-ext": (CHUNKED_HEAD, [b"8;ext=1\r\nGOODDATA\r\n0\r\nX-Trailer: ok\r\n\r\n"]),
    }

    def do_bad_resp(self, req):
        self.read_body(req)
        kind = req.param("kind", "X-Kind", "size")
        head, parts = self.BAD_RESP[kind]
        self.log("bad_resp peer=%d kind=%s" % (self.peer, kind))
        self.send(head + parts[0])
        for part in parts[1:]:
            time.sleep(float(req.param("delay", "X-Delay", "0.5")))
            self.log("bad_resp peer=%d kind=%s sending the bad chunk" % (self.peer, kind))
            self.send(part)
        self.wait_eof()

    def do_slow(self, req):
        self.read_body(req)
        self.log("slow peer=%d holding" % self.peer)
        self.wait_eof()

    def do_rpc_in(self, req):
        length = int(req.get("Content-Length", "0"))
        mark = int(req.get("X-Mark-MiB", "64")) * MIB
        pause = float(req.get("X-Pause", "0"))
        if pause > 0:  # a slow server: the proxy must hold the client back, not buffer
            self.log("pause peer=%d seconds=%g" % (self.peer, pause))
            time.sleep(pause)
        h = hashlib.sha256()
        total = 0
        try:
            while total < length:
                data = self.read_some(min(length - total, RECV_SIZE))
                if total < 4096:
                    self.log("body peer=%d n=%d total=%d hex=%s"
                             % (self.peer, len(data), total + len(data),
                                bytes(data[:HEX_MAX]).hex()))
                # split at a mark so the logged hash is exactly that of the prefix
                while data:
                    room = mark - (total % mark)
                    part = data[:room]
                    h.update(part)
                    total += len(part)
                    data = data[len(part):]
                    if total % mark == 0:
                        self.log("rpc_in peer=%d bytes=%d sha256=%s"
                                 % (self.peer, total, h.hexdigest()))
        finally:
            self.log("rpc_in_end peer=%d bytes=%d sha256=%s complete=%d"
                     % (self.peer, total, h.hexdigest(), int(total >= length)))
        self.wait_eof()

    def do_rpc_out(self, req):
        n, _ = self.read_body(req, self.log_first_bytes("body"))
        if n < 76:
            self.respond(b"200 Success", [b"Content-Type: application/rpc",
                                          b"Connection: Keep-Alive"], ECHO_PDU)
            return True
        mib = int(req.param("mib", "X-Stream-MiB", "0"))
        self.send(b"HTTP/1.1 200 Success\r\nContent-Type: application/rpc\r\n"
                  b"Content-Length: %d\r\n\r\n" % ONE_GIB)
        if mib == 0:
            self.send(CONN_A3_C2)
            self.log("rpc_out peer=%d sent=%d" % (self.peer, len(CONN_A3_C2)))
        else:
            h = hashlib.sha256()
            sent = 0
            t0 = time.time()
            for block in pattern_chunks(mib * MIB):
                self.send(block)
                h.update(block)
                sent += len(block)
            self.log("rpc_out peer=%d sent=%d sha256=%s seconds=%.3f"
                     % (self.peer, sent, h.hexdigest(), time.time() - t0))
        self.wait_eof()

    def serve(self):
        self.log("accept peer=%d" % self.peer)
        try:
            while True:
                head = self.read_head()
                try:
                    req = Request(head)
                except ValueError as e:
                    self.log("bad peer=%d error=%s" % (self.peer, e))
                    self.respond(b"400 Bad Request", [], b"bad request\n", True)
                    return
                self.requests += 1
                self.log("request peer=%d method=%s path=%s version=%s"
                         % (self.peer, req.method, req.target, req.version))
                if req.method == "RPC_IN_DATA":
                    self.do_rpc_in(req)
                    return
                if req.method == "RPC_OUT_DATA":
                    if not self.do_rpc_out(req):
                        return
                    continue
                p = req.path
                if p.startswith("/chunked-delay"):
                    keep = self.do_chunked_delay(req)
                elif "/close-after" in p:
                    self.do_close_after(req)
                    return
                elif "/bad-resp" in p:
                    self.do_bad_resp(req)
                    return
                elif p.startswith("/slow"):
                    self.do_slow(req)
                    return
                elif p.startswith("/truncate"):
                    self.do_truncate(req)
                    return
                elif p.startswith("/headers"):
                    keep = self.do_headers(req)
                else:
                    keep = self.do_echo(req)
                if not keep:
                    return
        except (Closed, ConnectionError, OSError, ValueError):
            pass
        finally:
            try:
                self.sock.close()
            except OSError:
                pass
            self.log("close peer=%d bytes_in=%d requests=%d"
                     % (self.peer, self.bytes_in, self.requests))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--ready", help="write the listening port to this file once listening")
    ap.add_argument("--log", help="log file (default: stdout)")
    a = ap.parse_args()
    log = Log(a.log)
    pattern_block(0)  # build the pattern before the first client waits on it
    ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("127.0.0.1", a.port))
    ls.listen(256)
    port = ls.getsockname()[1]
    log("listening port=%d" % port)
    if a.ready:
        tmp = a.ready + ".tmp"
        with open(tmp, "w") as f:
            f.write("%d\n" % port)
        os.rename(tmp, a.ready)
    while True:
        s, addr = ls.accept()
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        threading.Thread(target=Conn(s, addr, log).serve, daemon=True).start()


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        pass
