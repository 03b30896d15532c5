#!/usr/bin/python3
"""Origin and clients for t33_splice (plain bodies spliced through exshim).

  splice_check.py origin --ready FILE
      GET /dl?bytes=N          200, Content-Length N, the test pattern (origin.py's)
          &chunk=M             ... chunked instead, chunks of M bytes
          &bad=1               ... after the first chunk a bad chunk line "zz" and "LEAKED-" bytes
          &cut=K               ... Content-Length N, but only K bytes, then close
      POST/PUT                 the body (Content-Length or chunked) is read and answered
                               "len=N sha256=H"; logs "post_bad" (a bad chunk line reached
                               us, "leaked=1" when it carried LEAKED-) or "post_eof got=N"
  splice_check.py upload-chunked --port P --mib N --chunk-mib C
      POST chunked, C MiB chunks of the pattern, and in the same stream a pipelined
      GET /dl?bytes=1000: both responses must be right, in order
  splice_check.py upload-cl-pipelined --port P --mib N
      the same with a Content-Length body
  splice_check.py upload-bad --port P
      POST chunked: one 4 MiB chunk, then "zz" as the next size: expects 400 and a close
  splice_check.py download-bad --port P
      GET /dl?bytes=8388608&chunk=4194304&bad=1: at most the head, the first chunk and its
      CRLF may arrive, never a LEAKED- byte, then a close
  splice_check.py halfclose --port P [--cut-mib M]
      POST Content-Length 64 MiB (only M MiB of it with --cut-mib), then shutdown(SHUT_WR):
      the whole body gets its response and a close, a cut one a close without a response
  splice_check.py download-cut --port P
      GET /dl?bytes=67108864&cut=33554432: exactly the 32 MiB sent, byte-exact, then a close

Clients print one line and exit 0 when everything checked out.
"""

import argparse
import hashlib
import os
import socket
import sys
import threading
from urllib.parse import parse_qs, urlsplit

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from origin import MIB, pattern_chunks, pattern_sha256  # noqa: E402

TIMEOUT = 60


class Closed(Exception):
    pass


class Reader:
    def __init__(self, sock):
        self.sock = sock
        self.buf = b""

    def more(self):
        d = self.sock.recv(1 << 20)
        if not d:
            raise Closed()
        self.buf += d

    def line(self):
        while b"\r\n" not in self.buf:
            if len(self.buf) > 65536:
                raise ValueError("line too long")
            self.more()
        i = self.buf.index(b"\r\n")
        ln, self.buf = self.buf[:i], self.buf[i + 2:]
        return ln

    def exact(self, n, sink):
        while n > 0:
            if not self.buf:
                self.more()
            take = self.buf[:n]
            self.buf = self.buf[len(take):]
            sink(take)
            n -= len(take)

    def head(self):
        lines = []
        while True:
            ln = self.line()
            if not ln:
                return lines
            lines.append(ln)


def header(lines, name):
    for ln in lines[1:]:
        k, _, v = ln.partition(b":")
        if k.strip().lower() == name.lower().encode():
            return v.strip().decode()
    return None


# ---- origin ---------------------------------------------------------------------------------

def serve(sock, log):
    r = Reader(sock)
    peer = sock.getpeername()[1]
    try:
        while True:
            lines = r.head()
            method, target, _ = lines[0].decode().split(" ", 2)
            u = urlsplit(target)
            q = {k: int(v[0]) for k, v in parse_qs(u.query).items()}
            log("request peer=%d method=%s target=%s" % (peer, method, target))
            if method == "GET" and u.path == "/dl":
                n = q.get("bytes", 0)
                if "chunk" in q:
                    sock.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
                    data = b"".join(pattern_chunks(n))
                    for i in range(0, n, q["chunk"]):
                        part = data[i:i + q["chunk"]]
                        sock.sendall(b"%x\r\n" % len(part) + part + b"\r\n")
                        if q.get("bad"):
                            sock.sendall(b"zz\r\nLEAKED-after-a-big-chunk\r\n0\r\n\r\n")
                            sock.recv(1)  # until the proxy closes
                            return
                    sock.sendall(b"0\r\n\r\n")
                    continue
                sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % n)
                left = q.get("cut", n)
                for b in pattern_chunks(left):
                    sock.sendall(b)
                if "cut" in q:
                    return
                continue
            if method in ("POST", "PUT"):
                h = hashlib.sha256()
                got = [0]

                def sink(b):
                    h.update(b)
                    got[0] += len(b)
                try:
                    if (header(lines, "Transfer-Encoding") or "").lower() == "chunked":
                        while True:
                            ln = r.line()
                            try:
                                size = int(ln.split(b";")[0], 16)
                            except ValueError:
                                log("post_bad peer=%d leaked=%d" % (peer, b"LEAKED" in r.buf + ln))
                                return
                            if size == 0:
                                while r.line():
                                    pass
                                break
                            r.exact(size, sink)
                            if r.line() != b"":
                                log("post_bad peer=%d leaked=0" % peer)
                                return
                    else:
                        r.exact(int(header(lines, "Content-Length") or 0), sink)
                except Closed:
                    log("post_eof peer=%d got=%d" % (peer, got[0]))
                    return
                body = b"len=%d sha256=%s\n" % (got[0], h.hexdigest().encode())
                log("post peer=%d len=%d" % (peer, got[0]))
                sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
                continue
            sock.sendall(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
    except (Closed, OSError, ValueError):
        pass
    finally:
        sock.close()


def origin(a):
    lock = threading.Lock()
    logf = open(a.log, "a", buffering=1) if a.log else sys.stdout

    def log(msg):
        with lock:
            logf.write(msg + "\n")

    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("127.0.0.1", 0))
    ls.listen(64)
    with open(a.ready + ".tmp", "w") as f:
        f.write("%d\n" % ls.getsockname()[1])
    os.rename(a.ready + ".tmp", a.ready)
    pattern_chunks(1)
    while True:
        s, _ = ls.accept()
        threading.Thread(target=serve, args=(s, log), daemon=True).start()


# ---- clients --------------------------------------------------------------------------------

def connect(port):
    s = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
    return s, Reader(s)


def response(r):
    """Reads one Content-Length response: (status, body)."""
    lines = r.head()
    status = int(lines[0].split()[1])
    out = []
    r.exact(int(header(lines, "Content-Length") or 0), out.append)
    return status, b"".join(out), lines


def closed(s, r):
    """True when the peer closes (after whatever is still in flight) within the timeout."""
    try:
        while True:
            r.buf = b""
            r.more()
    except Closed:
        return True
    except OSError:
        return False


def check_pipelined(port, head, body_iter, nbytes, kind):
    s, r = connect(port)
    s.sendall(head)
    for b in body_iter:
        s.sendall(b)
    # the second request follows the body at once, before any response
    s.sendall(b"GET /dl?bytes=1000 HTTP/1.1\r\nHost: x\r\n\r\n")
    st1, b1, _ = response(r)
    want = b"len=%d sha256=%s\n" % (nbytes, pattern_sha256(nbytes).encode())
    st2, b2, _ = response(r)
    ok = st1 == 200 and b1 == want and st2 == 200 and b2 == b"".join(pattern_chunks(1000))
    print("%s: upload %d bytes: %d %r; pipelined GET: %d %d bytes%s"
          % (kind, nbytes, st1, b1.strip(), st2, len(b2), "" if ok else " MISMATCH"))
    return ok


def upload_chunked(a):
    n, c = a.mib * MIB, a.chunk_mib * MIB

    def chunks():
        data = b"".join(pattern_chunks(n))
        for i in range(0, n, c):
            part = data[i:i + c]
            yield b"%x\r\n" % len(part) + part + b"\r\n"
        yield b"0\r\nX-Check: 1\r\n\r\n"
    head = b"POST /up HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
    return check_pipelined(a.port, head, chunks(), n, "chunked")


def upload_cl_pipelined(a):
    n = a.mib * MIB
    head = b"POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % n
    return check_pipelined(a.port, head, pattern_chunks(n), n, "content-length")


def upload_bad(a):
    s, r = connect(a.port)
    data = b"".join(pattern_chunks(4 * MIB))
    s.sendall(b"POST /up HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
              b"%x\r\n" % len(data) + data + b"\r\nzz\r\nLEAKED-request\r\n0\r\n\r\n")
    st, body, _ = response(r)
    ok = st == 400 and closed(s, r)
    print("upload-bad: status %d %r, closed%s" % (st, body.strip()[:80], "" if ok else " WRONG"))
    return ok


def download_bad(a):
    s, r = connect(a.port)
    s.sendall(b"GET /dl?bytes=8388608&chunk=4194304&bad=1 HTTP/1.1\r\nHost: x\r\n\r\n")
    lines = r.head()
    got = r.buf
    try:
        while True:
            r.buf = b""
            r.more()
            got += r.buf
    except Closed:
        pass
    first = b"400000\r\n" + b"".join(pattern_chunks(4 * MIB)) + b"\r\n"
    ok = (lines[0].startswith(b"HTTP/1.1 200") and b"LEAKED" not in got and
          first.startswith(got) and len(got) > 4 * MIB)
    print("download-bad: %s, %d body bytes (first chunk %d), no LEAKED: %s%s"
          % (lines[0].decode(), len(got), len(first), b"LEAKED" not in got,
             "" if ok else " WRONG"))
    return ok


def download_cut(a):
    s, r = connect(a.port)
    s.sendall(b"GET /dl?bytes=67108864&cut=33554432 HTTP/1.1\r\nHost: x\r\n\r\n")
    lines = r.head()
    h = hashlib.sha256(r.buf)
    n = len(r.buf)
    try:
        while True:
            r.buf = b""
            r.more()
            h.update(r.buf)
            n += len(r.buf)
    except Closed:
        pass
    ok = n == 32 * MIB and h.hexdigest() == pattern_sha256(32 * MIB)
    print("download-cut: %s, %d bytes then close, sha256 %s%s"
          % (lines[0].decode(), n, "ok" if ok else "MISMATCH", "" if ok else " WRONG"))
    return ok


def halfclose(a):
    """POST with a Content-Length of 64 MiB; --cut-mib M sends only M MiB. Then SHUT_WR. Whole:
    the response and a close are due; cut: a close and no response (as exshim does today)."""
    n = 64 * MIB
    sent = a.cut_mib * MIB if a.cut_mib else n
    s, r = connect(a.port)
    s.sendall(b"POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % n)
    for b in pattern_chunks(sent):
        s.sendall(b)
    s.shutdown(socket.SHUT_WR)
    got = b""
    try:
        while True:
            r.more()
    except Closed:
        got = r.buf
    want = b"len=%d sha256=%s\n" % (n, pattern_sha256(n).encode())
    if a.cut_mib:
        ok = got == b""
    else:
        ok = got.startswith(b"HTTP/1.1 200") and got.endswith(b"\r\n\r\n" + want)
    print("halfclose after %d of %d body bytes: %d response bytes %r, closed%s"
          % (sent, n, len(got), got[:15], "" if ok else " WRONG"))
    return ok


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("cmd")
    ap.add_argument("--port", type=int)
    ap.add_argument("--ready")
    ap.add_argument("--log")
    ap.add_argument("--mib", type=int, default=64)
    ap.add_argument("--chunk-mib", type=int, default=4)
    ap.add_argument("--cut-mib", type=int, default=0)
    a = ap.parse_args()
    if a.cmd == "origin":
        origin(a)
        return 0
    fn = {"upload-chunked": upload_chunked, "upload-cl-pipelined": upload_cl_pipelined,
          "upload-bad": upload_bad, "download-bad": download_bad,
          "download-cut": download_cut, "halfclose": halfclose}[a.cmd]
    try:
        return 0 if fn(a) else 1
    except (OSError, Closed, ValueError) as e:
        print("%s: %s" % (a.cmd, e or type(e).__name__))
        return 1


if __name__ == "__main__":
    sys.exit(main())
