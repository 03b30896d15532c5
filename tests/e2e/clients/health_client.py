#!/usr/bin/env python3
"""Clients for the health tests (t67, t68), plain HTTP to exshim on 127.0.0.1.

  health_client.py --port P load --path PATH --every S --seconds S [--stop FILE]
      one new connection per request, every S seconds, for at most --seconds (or until FILE
      exists); prints "EPOCH_MS STATUS MS" per request (STATUS "ERR:reason" on failure)
  health_client.py --port P hold --path PATH --count N --ready FILE --stop FILE --seconds S
      opens N keep-alive connections one after the other, each with one answered request
      (PATH?n=I, or PATH&n=I), writes "ok N" or the first error to FILE, then holds them until the stop
      file exists or --seconds pass
  health_client.py --port P get --path PATH
      one request; prints "STATUS MS" and then the body
Every socket operation has a timeout; every loop is bounded.
"""
import argparse
import os
import socket
import sys
import time


def request(sock, path):
    sock.sendall(("GET %s HTTP/1.1\r\nHost: mail.lab.test\r\n\r\n" % path).encode())
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise OSError("closed before the response head")
        data += chunk
        if len(data) > 65536:
            raise OSError("response head too large")
    head, body = data.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    length = 0
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            length = int(value.strip())
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return status, body[:length].decode("latin-1")


def connect(port, timeout):
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    s.settimeout(timeout)
    return s


def do_load(a):
    end = time.time() + a.seconds
    while time.time() < end and not (a.stop and os.path.exists(a.stop)):
        t0 = time.time()
        try:
            with connect(a.port, 3) as s:
                status, _ = request(s, a.path)
            what = str(status)
        except (OSError, ValueError, IndexError) as e:
            what = "ERR:" + (type(e).__name__)
        print("%d %s %d" % (int(t0 * 1000), what, int((time.time() - t0) * 1000)), flush=True)
        left = a.every - (time.time() - t0)
        if left > 0:
            time.sleep(left)
    return 0


def do_hold(a):
    socks = []
    result = "ok %d" % a.count
    for i in range(a.count):
        try:
            s = connect(a.port, 5)
            status, _ = request(s, "%s%sn=%d" % (a.path, "&" if "?" in a.path else "?", i))
            socks.append(s)
            if status != 200:
                result = "status %d on connection %d" % (status, i)
                break
        except (OSError, ValueError, IndexError) as e:
            result = "error on connection %d: %s" % (i, e)
            break
    with open(a.ready + ".tmp", "w") as f:
        f.write(result + "\n")
    os.rename(a.ready + ".tmp", a.ready)
    end = time.time() + a.seconds
    while time.time() < end and not os.path.exists(a.stop):
        time.sleep(0.05)
    for s in socks:
        s.close()
    return 0 if result.startswith("ok") else 1


def do_get(a):
    t0 = time.time()
    with connect(a.port, 5) as s:
        status, body = request(s, a.path)
    print("%d %d" % (status, int((time.time() - t0) * 1000)))
    sys.stdout.write(body)
    return 0


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    sub = p.add_subparsers(dest="mode", required=True)
    lo = sub.add_parser("load")
    lo.add_argument("--path", required=True)
    lo.add_argument("--every", type=float, default=0.02)
    lo.add_argument("--seconds", type=float, default=10)
    lo.add_argument("--stop")
    ho = sub.add_parser("hold")
    ho.add_argument("--path", required=True)
    ho.add_argument("--count", type=int, required=True)
    ho.add_argument("--ready", required=True)
    ho.add_argument("--stop", required=True)
    ho.add_argument("--seconds", type=float, default=30)
    ge = sub.add_parser("get")
    ge.add_argument("--path", required=True)
    a = p.parse_args()
    return {"load": do_load, "hold": do_hold, "get": do_get}[a.mode](a)


if __name__ == "__main__":
    sys.exit(main())
