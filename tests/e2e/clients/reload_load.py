#!/usr/bin/python3
"""Load that must survive exshim reloads: keep-alive HTTP clients requesting back to back,
RPC over HTTP channel pairs held open and pinged, MAPI NotificationWait long polls, all through
exshim to exshim-lab (anonymous vdirs, so no authentication is needed to hold thousands of them).

  reload_load.py --port P [--tls-port P] --ready FILE --stop FILE [--http N] [--tls-http N]
                 [--pairs N] [--mapi N] [--ping-every S] [--seconds MAX]

Opens every channel pair first (RPC_OUT_DATA + CONN/A1 -> 200 + CONN/A3; RPC_IN_DATA +
CONN/B1 -> CONN/C2 on OUT), then starts the HTTP clients and the long polls, writes FILE
(--ready) and runs until the --stop file appears (or --seconds pass). Meanwhile every channel
pair gets an echo PDU on IN every --ping-every seconds that must come back on OUT; at the end
every pair is pinged once more. Each HTTP client sends GET /owa/ and reads the response,
keeping the connection unless the response said "Connection: close". Each MAPI client does
Connect once, then NotificationWait after NotificationWait (chunked PENDING ... DONE).

Every problem is counted in one class, none is retried silently:
  reset         ECONNRESET on any connection
  stale_close   a reused keep-alive connection closed before any byte of the next response
                (the proxy closed it after a response that did not say "Connection: close")
  failed        anything else: an error status, a response cut short, a fresh connection that
                fails, a timeout
  channel_cut   a channel pair whose echo did not come back (cut before its end)
A client that hits one opens a new connection and goes on. Prints one "result key=value ..."
line (the totals, then per client kind: http, tls, mapi, rpc) and exits 0 when every counter
is 0. --lenient-mapi-close leaves out the MAPI clients' stale_close and reset: a long poll
whose response head went out before a reload is answered in full, but session.c then closes
the connection although that head said keep-alive (see README, Operations).
"""

import argparse
import os
import socket
import struct
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import labclient as lc  # noqa: E402
import rpch  # noqa: E402

COUNTERS = ("requests", "announced_close", "reset", "stale_close", "failed", "mapi_waits",
            "channel_pings", "channel_cut")
stats = {k: 0 for k in COUNTERS}
lock = threading.Lock()
examples = []


by_kind = {}


def count(key, detail=None, kind=None):
    with lock:
        stats[key] += 1
        if kind is not None:
            by_kind["%s_%s" % (kind, key)] = by_kind.get("%s_%s" % (kind, key), 0) + 1
        if detail and sum(1 for e in examples if e.startswith(key + ": " + (kind or ""))) < 4:
            examples.append("%s: %s" % (key, detail))


def classify(e, reused, got_bytes):
    if isinstance(e, ConnectionResetError):
        return "reset"
    if reused and not got_bytes and (isinstance(e, (BrokenPipeError, lc.HttpError))):
        return "stale_close"
    return "failed"


class Stopper:
    def __init__(self, path, seconds):
        self.path = path
        self.deadline = time.monotonic() + seconds
        self.flag = False

    def stopped(self):
        if not self.flag and (os.path.exists(self.path) or time.monotonic() > self.deadline):
            self.flag = True
        return self.flag


def http_client(a, port, tls, stop):
    conn, served = None, 0
    while not stop.stopped():
        got = False
        try:
            if conn is None:
                conn = lc.Conn("127.0.0.1", port, tls, timeout=10)
                served = 0
            conn.send_head("GET", "/owa/", [("Connection", "keep-alive")])
            r = conn.read_head()
            got = True
            conn.read_body(r)
            with lock:
                stats["requests"] += 1
            served += 1
            if r.status != 200:
                count("failed", "http status %d" % r.status, "http")
            if (r.get("Connection") or "").lower() == "close":
                with lock:
                    stats["announced_close"] += 1
                conn.close()
                conn = None
        except (lc.HttpError, OSError) as e:
            got = got or (conn is not None and len(conn.buf) > 0)
            count(classify(e, served > 0, got), "http after %d on conn: %r" % (served, e),
                  "tls" if tls else "http")
            if conn is not None:
                conn.close()
            conn = None
            time.sleep(0.01)
    if conn is not None:
        conn.close()


def mapi_client(a, stop):
    body = os.urandom(64)
    cookies = {}
    conn, served, n = None, 0, 0
    path = "/mapi/emsmdb/?MailboxId=reload@lab.test"
    base = "{%08X-0000-0000-0000-000000000000}" % (os.getpid() & 0xffffffff)

    def headers(rtype):
        h = [("Content-Type", "application/mapi-http"), ("X-RequestType", rtype),
             ("X-RequestId", "%s:%d" % (base, n)), ("X-ClientInfo", "%s:%d" % (base, n)),
             ("X-ClientApplication", "Outlook/16.0.17928.20114"), ("User-Agent", "MapiHttpClient")]
        if cookies:
            h.append(("Cookie", "; ".join("%s=%s" % kv for kv in cookies.items())))
        return h

    while not stop.stopped():
        got = False
        try:
            if conn is None:
                conn = lc.Conn("127.0.0.1", a.port, False, timeout=15)
                served = 0
            n += 1
            rtype = "NotificationWait" if "MapiContext" in cookies else "Connect"
            payload = b"\0" * 8 if rtype == "NotificationWait" else body
            conn.send_head("POST", path, headers(rtype), len(payload))
            conn.send(payload)
            r = conn.read_head()
            got = True
            for v in r.get_all("Set-Cookie"):
                name, _, rest = v.partition("=")
                cookies[name.strip()] = rest.split(";")[0]
            conn.read_body(r, "POST")
            served += 1
            if r.status != 200 or r.get("X-ResponseCode") != "0":
                count("failed", "mapi %s status %d code %s" % (rtype, r.status,
                                                               r.get("X-ResponseCode")), "mapi")
            elif b"DONE" not in r.body:
                count("failed", "mapi %s without DONE" % rtype, "mapi")
            elif rtype == "NotificationWait":
                with lock:
                    stats["mapi_waits"] += 1
            if (r.get("Connection") or "").lower() == "close":
                with lock:
                    stats["announced_close"] += 1
                conn.close()
                conn = None
        except (lc.HttpError, OSError) as e:
            got = got or (conn is not None and len(conn.buf) > 0)
            count(classify(e, served > 0, got), "mapi after %d on conn: %r" % (served, e), "mapi")
            if conn is not None:
                conn.close()
            conn = None
            time.sleep(0.01)
    if conn is not None:
        conn.close()


def open_pair(port):
    vc, oc, ic, ag = (os.urandom(16) for _ in range(4))
    hdr = [("Accept", "application/rpc"), ("User-Agent", "MSRPC"), ("Connection", "Keep-Alive")]
    path = "/rpc/rpcproxy.dll?exlab01.lab.test:6001"
    out = lc.Conn("127.0.0.1", port, False, timeout=10)
    out.send_head("RPC_OUT_DATA", path, hdr, 76)
    out.send(rpch.conn_a1(vc, oc))
    r = out.read_head()
    if r.status != 200:
        raise lc.HttpError("OUT channel: status %d" % r.status)
    st = {"pings": 0}
    a3 = rpch.read_pdu(out, st)
    if struct.unpack_from("<HH", a3, 16) != (0, 1):
        raise lc.HttpError("no CONN/A3")
    inc = lc.Conn("127.0.0.1", port, False, timeout=10)
    inc.send_head("RPC_IN_DATA", path, hdr, 1073741824)
    inc.send(rpch.conn_b1(vc, ic, ag))
    c2 = rpch.read_pdu(out, st)
    if struct.unpack_from("<HH", c2, 16) != (0, 3):
        raise lc.HttpError("no CONN/C2")
    return [out, inc, 0, True]


def ping_pair(p, seq):
    out, inc = p[0], p[1]
    pdu = rpch.request_pdu(seq, 64)
    inc.send(pdu)
    back = rpch.read_pdu(out, {"pings": 0})
    if back != pdu:
        raise lc.HttpError("echo differs")


def channels(a, pairs, stop, done):
    seq = 1
    while True:
        final = stop.stopped()
        for i, p in enumerate(pairs):
            if not p[3]:
                continue
            seq += 1
            try:
                ping_pair(p, seq)
                with lock:
                    stats["channel_pings"] += 1
            except (lc.HttpError, OSError) as e:
                p[3] = False
                count("channel_cut", "pair %d: %r" % (i, e), "rpc")
        if final:
            break
        end = time.monotonic() + a.ping_every
        while time.monotonic() < end and not stop.stopped():
            time.sleep(0.05)
    for p in pairs:
        p[0].close()
        p[1].close()
    done.set()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--tls-port", type=int, default=0)
    ap.add_argument("--ready", required=True)
    ap.add_argument("--stop", required=True)
    ap.add_argument("--http", type=int, default=100, help="keep-alive clients (plain)")
    ap.add_argument("--tls-http", type=int, default=0, help="of which over TLS")
    ap.add_argument("--pairs", type=int, default=200)
    ap.add_argument("--mapi", type=int, default=20)
    ap.add_argument("--ping-every", type=float, default=2.0)
    ap.add_argument("--seconds", type=float, default=120)
    ap.add_argument("--lenient-mapi-close", action="store_true")
    a = ap.parse_args()
    stop = Stopper(a.stop, a.seconds)

    pairs = []
    t0 = time.monotonic()
    for i in range(a.pairs):
        try:
            pairs.append(open_pair(a.port))
        except (lc.HttpError, OSError) as e:
            print("result error=open-pair-%d:%r" % (i, e))
            return 1
    print("opened %d channel pairs in %.1f s" % (len(pairs), time.monotonic() - t0), flush=True)
    threads = []
    for i in range(a.http):
        tls = i < a.tls_http
        threads.append(threading.Thread(target=http_client,
                                        args=(a, a.tls_port if tls else a.port, tls, stop)))
    for i in range(a.mapi):
        threads.append(threading.Thread(target=mapi_client, args=(a, stop)))
    done = threading.Event()
    ch = threading.Thread(target=channels, args=(a, pairs, stop, done))
    for t in threads + [ch]:
        t.daemon = True
        t.start()
    with open(a.ready + ".tmp", "w") as f:
        f.write("ready\n")
    os.rename(a.ready + ".tmp", a.ready)
    while not stop.stopped():
        time.sleep(0.1)
    for t in threads:
        t.join(30)
    done.wait(60)
    alive = sum(1 for p in pairs if p[3])
    print("result " + " ".join("%s=%d" % (k, stats[k]) for k in COUNTERS) +
          " pairs_alive=%d/%d" % (alive, len(pairs)) +
          "".join(" %s=%d" % kv for kv in sorted(by_kind.items())))
    for e in examples:
        print("example " + e)
    bad = stats["reset"] + stats["stale_close"] + stats["failed"] + stats["channel_cut"]
    if a.lenient_mapi_close:
        bad -= by_kind.get("mapi_reset", 0) + by_kind.get("mapi_stale_close", 0)
    return 0 if bad == 0 and stats["requests"] > 0 else 1


if __name__ == "__main__":
    sys.exit(main())
