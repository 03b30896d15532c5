#!/usr/bin/python3
"""MAPI over HTTP test client (MS-OXCMAPIHTTP) on one connection, as Outlook's emsmdb session:
Connect (MapiContext/MapiSequence cookies), N Execute (the lab echoes each body after DONE),
one NotificationWait whose PENDING meta-tags are timed as they arrive (a proxy that buffers the
chunked response shows them all at the end), then Disconnect.

  mapi.py --host H --port P [--tls] [--sni NAME] [--auth ntlm|negotiate-ntlm|basic|none]
          [--user 'LAB\\alice'] [--password PW] [--executes N] [--wait]
          [--min-pending K] [--pending-ms MS] [--expect-status S]

With --wait, prints "pending i at T ms" for each PENDING and "done at T ms"; checks that at
least --min-pending arrived and, with --pending-ms, that each arrived on its own (consecutive
PENDINGs at least half a period apart, the first well before DONE). --expect-status S: only check that the Connect
answered S (e.g. 401) and exit. Exit 0 on success.
"""

import argparse
import os
import sys
import time
import uuid

import labclient as lc

CLIENT_INFO = "{%s}" % str(uuid.uuid4()).upper()


class Session:
    def __init__(self, a):
        self.a = a
        self.conn = lc.Conn(a.host, a.port, a.tls, a.sni, timeout=a.timeout)
        self.cookies = {}
        self.n = 0
        self.req_base = "{%s}" % str(uuid.uuid4()).upper()
        self.path = "/mapi/emsmdb/?MailboxId=%s@lab.test" % uuid.uuid4()
        self.first = True

    def headers(self, rtype):
        self.n += 1
        h = [("Content-Type", "application/mapi-http"), ("X-RequestType", rtype),
             ("X-RequestId", "%s:%d" % (self.req_base, self.n)),
             ("X-ClientInfo", "%s:%d" % (CLIENT_INFO, self.n)),
             ("X-ClientApplication", "Outlook/16.0.17928.20114"), ("User-Agent", "MapiHttpClient")]
        if self.cookies:
            h.append(("Cookie", "; ".join("%s=%s" % kv for kv in self.cookies.items())))
        return h

    def take_cookies(self, r):
        for v in r.get_all("Set-Cookie"):
            name, _, rest = v.partition("=")
            val = rest.split(";")[0]
            if "expires=Thu, 01-Jan-1970" in v:
                self.cookies.pop(name.strip(), None)
            else:
                self.cookies[name.strip()] = val

    def send(self, rtype, body):
        h = self.headers(rtype)
        if self.first:
            self.first = False
            a = self.a
            auth = None
            if a.auth == "basic":
                auth = ("basic", a.user, a.password)
            elif a.auth != "none":
                auth = lc.NtlmAuth(a.user, a.password,
                                   "NTLM" if a.auth == "ntlm" else "Negotiate")
            if isinstance(auth, lc.NtlmAuth):
                auth.handshake(self.conn, "POST", self.path, h, len(body))
                self.conn.send(body)
                return h, self.conn.read_head()
            if auth is not None:
                h.append(("Authorization", lc.basic_header(auth[1], auth[2])))
        elif self.a.auth == "basic":
            h.append(("Authorization", lc.basic_header(self.a.user, self.a.password)))
        self.conn.send_head("POST", self.path, h, len(body))
        self.conn.send(body)
        return h, self.conn.read_head()

    def check_head(self, h, r, rtype):
        if r.status != 200:
            raise lc.HttpError("%s: status %d" % (rtype, r.status))
        want = dict(h)
        for k in ("X-RequestId", "X-ClientInfo"):
            if r.get(k) != want[k]:
                raise lc.HttpError("%s: %s not echoed (%r vs %r)" % (rtype, k, r.get(k), want[k]))
        if r.get("X-RequestType") != rtype:
            raise lc.HttpError("%s: X-RequestType %r" % (rtype, r.get("X-RequestType")))
        if r.get("X-ResponseCode") != "0":
            raise lc.HttpError("%s: X-ResponseCode %s" % (rtype, r.get("X-ResponseCode")))
        self.take_cookies(r)

    def call(self, rtype, body):
        h, r = self.send(rtype, body)
        if r.status != 200:
            self.conn.read_body(r, "POST")
            raise lc.HttpError("%s: status %d" % (rtype, r.status))
        self.check_head(h, r, rtype)
        data = self.conn.read_body(r, "POST").body
        meta, sep, rest = data.partition(b"DONE\r\n")
        if not sep or not meta.startswith(b"PROCESSING\r\n"):
            raise lc.HttpError("%s: bad meta-tags %r" % (rtype, data[:60]))
        _extra, sep, payload = rest.partition(b"\r\n\r\n")
        if not sep:
            raise lc.HttpError("%s: no end of additional headers" % rtype)
        return payload

    def wait(self):
        t0 = time.monotonic()
        h, r = self.send("NotificationWait", b"\0" * 8)
        self.check_head(h, r, "NotificationWait")
        if "chunked" not in (r.get("Transfer-Encoding") or "").lower():
            raise lc.HttpError("NotificationWait: not chunked")
        times = []
        done = None
        for chunk in self.conn.iter_chunks():
            t = (time.monotonic() - t0) * 1000
            for line in chunk.split(b"\r\n"):
                if line == b"PENDING":
                    times.append(t)
                    print("pending %d at %.0f ms" % (len(times), t))
                elif line == b"DONE" and done is None:
                    done = t
                    print("done at %.0f ms" % t)
        if done is None:
            raise lc.HttpError("NotificationWait: no DONE")
        return times, done


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--tls", action="store_true")
    ap.add_argument("--sni")
    ap.add_argument("--auth", default="ntlm", choices=["ntlm", "negotiate-ntlm", "basic", "none"])
    ap.add_argument("--user", default="LAB\\alice")
    ap.add_argument("--password", default="Passw0rd!")
    ap.add_argument("--executes", type=int, default=3)
    ap.add_argument("--wait", action="store_true")
    ap.add_argument("--min-pending", type=int, default=0)
    ap.add_argument("--pending-ms", type=float, default=0)
    ap.add_argument("--expect-status", type=int)
    ap.add_argument("--timeout", type=float, default=30)
    a = ap.parse_args()
    try:
        s = Session(a)
        if a.expect_status is not None:
            _h, r = s.send("Connect", b"\0" * 16)
            s.conn.read_body(r, "POST")
            print("connect status=%d" % r.status)
            return 0 if r.status == a.expect_status else 1
        s.call("Connect", os.urandom(64))
        if "MapiContext" not in s.cookies:
            raise lc.HttpError("Connect: no MapiContext cookie")
        print("connect ok context=%s..." % s.cookies["MapiContext"][:8])
        for i in range(a.executes):
            body = os.urandom(100 + i)
            back = s.call("Execute", body)
            if back != body:
                raise lc.HttpError("Execute %d: body not echoed" % (i + 1))
        print("executes=%d ok" % a.executes)
        if a.wait:
            times, done = s.wait()
            if len(times) < a.min_pending:
                raise lc.HttpError("only %d PENDING, wanted %d" % (len(times), a.min_pending))
            if a.pending_ms > 0:
                # each PENDING on its own, the first one long before DONE
                arrivals = [0.0] + times
                for x, y in zip(arrivals, arrivals[1:]):
                    if y - x < a.pending_ms / 2:
                        raise lc.HttpError("meta-tags arrived together (%.0f and %.0f ms): "
                                           "buffered" % (x, y))
                if times and done - times[0] < a.pending_ms / 2:
                    raise lc.HttpError("first PENDING only arrived with DONE: buffered")
        s.call("Disconnect", b"")
        print("disconnect ok")
    except (lc.HttpError, OSError) as e:
        print("mapi failed: %s" % e)
        return 1
    print("mapi ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
