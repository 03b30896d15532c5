#!/usr/bin/python3
"""Raw-socket checks for exshim's edge-hardening tests (t50..t57), 127.0.0.1 only.

  edge_check.py SUBCOMMAND --port P [--tls] [options]

Every request is sent whole, in one write. Each subcommand prints one line per check and exits 1
if any check failed; every wait is bounded.

  table       a table of refused requests (--set chunked|chunked-big|target|hostver|auth2|misc):
              each on its
              own connection gets its expected status (and a close where the table says so);
              after each one, a good request on a new connection (--good-path, Connection:
              close) whose echo tells how many head bytes the origin received (--no-good:
              none, for a backend without the echo; --warm-table: each refused request
              follows a good one on its connection, so a pinned backend connection is open).
              Ends with
              "SUMMARY refused=R good=G good_bytes=B" for edge.sh's check_accounting.
  chunked-good  valid chunked bodies (extensions, BWS, leading zeros, trailers) are forwarded
              and arrive intact
  pipeline    a chunked POST and a GET with a forged X-Forwarded-For in one write: two
              requests, the forged header replaced
  late-bad    a bad chunk after the head went out: 400, and the backend connection closed
              holding only the head and the valid chunk (--origin-log)
  smuggle     the "40;\\n" chunk-extension smuggle (a hidden second request with a forged
              X-Forwarded-For), sent as is; prints how many responses came back (--expect N)
  target      routing by the normalised path (--policy strict|normalize): statuses and the
              request line the origin received
  conn-tokens headers named as the 17th and 30th token of Connection are not forwarded;
              Content-Length, Transfer-Encoding and Host named there still are
  hostver-good valid Host forms (and HTTP/1.0 without Host) are forwarded
  bare-lf     a bare LF before the request line: 400 and a close in under --max seconds
  maxheaders  --n header lines in one head get --want (200 forwarded, or 431)
  auth-pass   pass-through route: "Authorization: NTLM !!!!" reaches the origin unchanged
  auth-bridge bridge route: NTLM <type 1> arrives as Negotiate <same>, in the same place
  authclose   backend closes its keep-alive connection ~200 ms after a 200 (GET --path +
              /close-after): with --auth (--scheme NTLM or Negotiate) the client connection is
              closed within 2 s of that; without, or with --scheme Basic, the next request is
              answered on a new backend connection
  halfclose   POST with a Content-Length (--chunked: chunked) body, then shutdown(SHUT_WR):
              full response, then the connection closes (plain, or TLS with --tls; --slow:
              the response ends 0.3 s after the FIN, /chunked-delay; --get: a GET, no body)
  halfclose-pipeline  two requests in one write (the first answered slowly), then
              shutdown(SHUT_WR): both answered, then a close (--warm: backend already open)
  badresp     origin /bad-resp?kind=K: a 502 (size/lf/crx), or the head and first chunk then a
              close (second); never the "LEAKED-" bytes
  guard       one attack per exploit-guard rule: 403 naming the rule (--attacks-only: just
              these; --policy normalize: the dot-segment attacks for that policy);
              legitimate Exchange requests pass; --open-path: a route with
              guard = false passes an attack
  trickle     --n connections send a head one byte every --interval s: all closed (408 when
              readable) within --max seconds of their connect
  second-head a keep-alive connection's second head trickles in after --open-at s idle: 408 and
              a close --min..--max s after its first byte
  idle        one request, then silence: open after --open-at s, closed by --max s
  tls-stall   --mode none|half|trickle|done: no ClientHello, half a ClientHello, a ClientHello
              one byte every 0.1 s, a finished handshake and no request; closed between
              --min and --max seconds
  maxconn     --limit L idle connections plus --extra more; the request on the last one is
              not answered while L are open, and is answered once --release are closed
  perclient   --limit L connections; the next one is closed at once; after closing one, a
              new connection is served
"""

import argparse
import base64
import os
import re
import select
import socket
import ssl
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import core_check as cc  # noqa: E402  (Reader, connect, check, echo_parts, ...)

check = cc.check
HOST = b"mail.contoso.test"
H = b"Host: " + HOST + b"\r\n"

# A real NTLM NEGOTIATE (type 1) message as Windows sends it (flags 0xa2088207, version 10.0).
NTLM_NEGOTIATE = base64.b64encode(
    b"NTLMSSP\x00\x01\x00\x00\x00\x07\x82\x08\xa2" + b"\x00" * 16 +
    b"\x0a\x00\x63\x45\x00\x00\x00\x0f").decode()


def conn(a, timeout=5):
    return cc.connect(a, timeout=timeout)


def response(s, timeout=5, method="GET"):
    s.settimeout(timeout)
    r = cc.Reader(s)
    st, h, body = r.response(method)
    return r, st, h, body


WARM = {"good": 0, "bytes": 0}


def request(a, data, timeout=5):
    """One request on a new connection: (status, head, body, closed_after). With a.warm (table
    runs), a good request goes first on the same connection, so the refused one meets an open,
    pinned backend connection; its echo's head bytes are counted in WARM."""
    s = conn(a, timeout)
    try:
        if getattr(a, "warm_table", False):
            s.sendall(b"GET " + a.good_path.encode() + b"/warm HTTP/1.1\r\n" + H + b"\r\n")
            r, st, h, body = response(s, timeout)
            info, _ = cc.echo_parts(body)
            if check(st == 200 and "head-length" in info, "warm-up request on the connection: %d"
                     % st):
                WARM["good"] += 1
                WARM["bytes"] += int(info["head-length"])
        # Over TLS, OpenSSL writes each record with its own write(); corked, the records of
        # one request leave in one segment, so exshim meets them in one read as the tables
        # intend (under load it could otherwise read between two records).
        if a.tls:
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_CORK, 1)
        s.sendall(data)
        if a.tls:
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_CORK, 0)
        r, st, h, body = response(s, timeout)
        keep = b"connection: close" not in h.lower()
        closed = r.closed_within(0.3 if keep else 3)
        return st, h, body, closed
    finally:
        s.close()


# --- table of refusals -------------------------------------------------------------------
CH = lambda path=b"/owa/c": (b"POST " + path + b" HTTP/1.1\r\n" + H +  # noqa: E731
                             b"Transfer-Encoding: chunked\r\n\r\n")
HIDDEN = (b"GET /owa/hidden HTTP/1.1\r\n" + H + b"X-Forwarded-For: 6.6.6.6\r\n"
          b"X-Smuggled: yes\r\nConnection: close\r\n\r\n")


def smuggle_payload(path=b"/owa/c"):
    """The chunk-extension smuggle: "40;" ends with a bare LF. A parser that takes the LF as
    the line end (nginx) reads 64 bytes of chunk data, the last chunk, and then HIDDEN as a
    second request on the same connection."""
    data = b"A" * 64
    return CH(path) + b"40;\n" + data + b"\r\n0\r\n\r\n" + HIDDEN


def table_chunked():
    c = CH()
    return [
        ("ext-bare-lf-smuggle", smuggle_payload(), (400,), True),
        ("size-cr-x", c + b"5\rXhello\r\n0\r\n\r\n", (400,), True),
        ("size-space-garbage", c + b"5 garbage\r\nhello\r\n0\r\n\r\n", (400,), True),
        ("trailer-bare-lf", c + b"5\r\nhello\r\n0\r\nX-T: a\n\r\n", (400,), True),
        ("last-chunk-lf-end", c + b"5\r\nhello\r\n0\r\n\n", (400,), True),
        ("trailer-content-length", c + b"5\r\nhello\r\n0\r\nContent-Length: 5\r\n\r\n", (400,),
         True),
        ("trailer-transfer-encoding", c + b"5\r\nhello\r\n0\r\nTransfer-Encoding: chunked\r\n\r\n",
         (400,), True),
        ("trailer-host", c + b"5\r\nhello\r\n0\r\nHost: evil.example\r\n\r\n", (400,), True),
        # defect 4: bytes before a 400, each its own case
        ("bad-crlf-after-data", c + b"5\r\nhelloXY0\r\n\r\n", (400,), True),
        ("bad-second-chunk", c + b"5\r\nhello\r\nzz\r\nworld\r\n0\r\n\r\n", (400,), True),
        ("missing-final-crlf", c + b"5\r\nhello\r\n0\r\n" +
         b"GET /owa/next HTTP/1.1\r\n" + H + b"\r\n", (400,), True),
        ("lf-after-data", c + b"5\r\nhello\n0\r\n\r\n", (400,), True),
        ("size-line-bare-lf", c + b"5\nhello\r\n0\r\n\r\n", (400,), True),
        ("size-0x", c + b"0x5\r\nhello\r\n0\r\n\r\n", (400,), True),
        ("size-negative", c + b"-5\r\nhello\r\n0\r\n\r\n", (400,), True),
        ("size-17-digits", c + b"00000000000000005\r\nhello\r\n0\r\n\r\n", (400,), True),
        ("size-overflow", c + b"ffffffffffffffff\r\nhello\r\n0\r\n\r\n", (400,), True),
        ("size-tab", c + b"5\t\r\nhello\r\n0\r\n\r\n", (400,), True),
        ("ext-empty-name", c + b"5;\r\nhello\r\n0\r\n\r\n", (400,), True),
        ("ext-empty-value", c + b"5;a=\r\nhello\r\n0\r\n\r\n", (400,), True),
        ("ext-bare-cr", c + b"5;a\rb\r\nhello\r\n0\r\n\r\n", (400,), True),
        ("ext-open-quote", c + b'5;a="b\r\nhello\r\n0\r\n\r\n', (400,), True),
        ("data-longer-than-size", c + b"3\r\nhello\r\n0\r\n\r\n", (400,), True),
        ("data-shorter-than-size", c + b"7\r\nhello\r\n0\r\n\r\n", (400,), True),
        ("trailer-authorization", c + b"0\r\nAuthorization: NTLM TlRMTVNTUAAB\r\n\r\n", (400,),
         True),
        ("trailer-x-forwarded-for", c + b"0\r\nX-Forwarded-For: 6.6.6.6\r\n\r\n", (400,), True),
        ("trailer-obs-fold", c + b"0\r\nX-A: a\r\n b\r\n\r\n", (400,), True),
        ("trailer-nul", c + b"0\r\nX-A: a\x00b\r\n\r\n", (400,), True),
        ("trailer-space-before-colon", c + b"0\r\nX-A : b\r\n\r\n", (400,), True),
        ("expect-100-then-bad-chunk", b"POST /owa/c HTTP/1.1\r\n" + H + b"Expect: 100-continue\r\n"
         b"Transfer-Encoding: chunked\r\n\r\n5\r\nhelloXY0\r\n\r\n", (400,), True),
    ]


def table_target():
    g = lambda t, host=H: b"GET " + t + b" HTTP/1.1\r\n" + host + b"\r\n"  # noqa: E731
    return [
        ("no-route-ecp", g(b"/ecp/default.aspx"), (404,), False),
        ("dotdot-owa-ecp", g(b"/owa/../ecp/default.aspx"), (400,), True),
        ("enc-dotdot", g(b"/owa/%2e%2e/ecp/"), (400,), True),
        ("dotdot-enc-backslash", g(b"/owa/..%5cecp/"), (400,), True),
        ("double-slash", g(b"/owa//x"), (400,), True),
        ("enc-slash", g(b"/owa/%2F"), (400,), True),
        ("dotdot-mapi-rpc", g(b"/mapi/../rpc/"), (400,), True),
        ("absolute-query-mapi", g(b"http://h?/mapi/x", b"Host: h\r\n"), (404,), False),
        ("absolute-other-host", g(b"http://evil.example/mapi/x"), (400,), True),
        ("absolute-other-port", g(b"http://mail.contoso.test:8080/mapi/x"), (400,), True),
        ("absolute-ftp", g(b"ftp://mail.contoso.test/mapi/x"), (400,), True),
        ("absolute-userinfo", g(b"http://u@mail.contoso.test/mapi/x"), (400,), True),
        ("absolute-no-host-header", b"GET http://mail.contoso.test/mapi/x HTTP/1.1\r\n\r\n",
         (400,), True),
        ("enc-nul", g(b"/owa/%00"), (400,), True),
        ("overlong-utf8-dot", g(b"/owa/%C0%AE%C0%AE/ecp/"), (400,), True),
        ("double-encoded-dot", g(b"/owa/%252e%252e/ecp/"), (400,), True),
        ("fragment", g(b"/owa/x#frag"), (400,), True),
        ("literal-backslash", g(b"/owa/..\\ecp/"), (400,), True),
        ("dot-segment", g(b"/owa/./x"), (400,), True),
        # Windows drops trailing dots and spaces: IIS would serve /ecp./ as /ecp
        ("trailing-dot-segment", g(b"/owa/../ecp./default.aspx"), (400,), True),
        ("trailing-dot-vdir", g(b"/ecp./default.aspx"), (400,), True),
        ("trailing-enc-space", g(b"/owa%20/x"), (400,), True),
        ("root-climb", g(b"/.."), (400,), True),
        ("bad-escape", g(b"/owa/%zz"), (400,), True),
        ("truncated-escape", g(b"/owa/%2"), (400,), True),
        ("get-asterisk", g(b"*"), (400,), True),
        ("options-asterisk-no-route", b"OPTIONS * HTTP/1.1\r\n" + H + b"\r\n", (404,), False),
    ]


def table_hostver():
    return [
        ("http11-no-host", b"GET /owa/x HTTP/1.1\r\nX-A: 1\r\n\r\n", (400,), True),
        ("two-host", b"GET /owa/x HTTP/1.1\r\n" + H + H + b"\r\n", (400,), True),
        ("two-host-differ", b"GET /owa/x HTTP/1.1\r\n" + H + b"Host: evil.example\r\n\r\n",
         (400,), True),
        ("host-with-space", b"GET /owa/x HTTP/1.1\r\nHost: mail contoso.test\r\n\r\n", (400,),
         True),
        ("host-empty", b"GET /owa/x HTTP/1.1\r\nHost: \r\n\r\n", (400,), True),
        ("http10-te", b"POST /owa/x HTTP/1.0\r\n" + H +
         b"Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", (400,), True),
        ("http10-two-host", b"GET /owa/x HTTP/1.0\r\n" + H + H + b"\r\n", (400,), True),
        ("host-userinfo", b"GET /owa/x HTTP/1.1\r\nHost: u@mail.contoso.test\r\n\r\n", (400,),
         True),
        ("host-port-0", b"GET /owa/x HTTP/1.1\r\nHost: mail.contoso.test:0\r\n\r\n", (400,),
         True),
        ("host-port-99999", b"GET /owa/x HTTP/1.1\r\nHost: mail.contoso.test:99999\r\n\r\n",
         (400,), True),
        ("host-empty-port", b"GET /owa/x HTTP/1.1\r\nHost: mail.contoso.test:\r\n\r\n", (400,),
         True),
        ("host-comma-list", b"GET /owa/x HTTP/1.1\r\nHost: a.test,b.test\r\n\r\n", (400,), True),
        ("host-bad-ipv4", b"GET /owa/x HTTP/1.1\r\nHost: 999.1.1.1\r\n\r\n", (400,), True),
        ("http11-te-identity", b"POST /owa/x HTTP/1.1\r\n" + H +
         b"Transfer-Encoding: identity\r\n\r\n", (400,), True),
        ("version-lowercase", b"GET /owa/x http/1.1\r\n" + H + b"\r\n", (400,), True),
        ("http09-no-version", b"GET /owa/x\r\n\r\n", (400,), True),
        ("http2-version", b"GET /owa/x HTTP/2.0\r\n" + H + b"\r\n", (505,), True),
        ("te-chunked-twice", b"POST /owa/x HTTP/1.1\r\n" + H +
         b"Transfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n", (400,), True),
        ("two-te-headers", b"POST /owa/x HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n"
         b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n", (400,), True),
    ]


HOSTVER_GOOD = [
    ("http10-no-host", b"GET /owa/x HTTP/1.0\r\n\r\n"),
    ("host-with-port", b"GET /owa/x HTTP/1.1\r\nHost: mail.contoso.test:443\r\n\r\n"),
    ("host-ipv6-literal", b"GET /owa/x HTTP/1.1\r\nHost: [::1]:8443\r\n\r\n"),
    ("host-ipv4", b"GET /owa/x HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"),
    ("host-underscore", b"GET /owa/x HTTP/1.1\r\nHost: exch_01.contoso.test\r\n\r\n"),
    ("host-upper-case-name", b"GET /owa/x HTTP/1.1\r\nhOsT: mail.contoso.test\r\n\r\n"),
]


def cmd_hostver_good(a):
    for name, data in HOSTVER_GOOD:
        st, h, body, _ = request(a, data)
        _, raw = cc.echo_parts(body)
        host_in = data.split(b"\r\n")[1]
        check(st == 200 and (not host_in or host_in in raw.split(b"\r\n")),
              "valid %-22s forwarded: status %d" % (name, st))


def table_auth2():
    return [
        ("two-authorization", b"GET /ews/x HTTP/1.1\r\n" + H +
         b"Authorization: NTLM " + NTLM_NEGOTIATE.encode() + b"\r\nX-Between: 1\r\n"
         b"Authorization: Negotiate " + NTLM_NEGOTIATE.encode() + b"\r\n\r\n", (400,), True),
        ("two-authorization-same", b"GET /ews/x HTTP/1.1\r\n" + H +
         b"Authorization: NTLM !!!!\r\nAuthorization: NTLM !!!!\r\n\r\n", (400,), True),
        ("two-authorization-case", b"GET /ews/x HTTP/1.1\r\n" + H +
         b"Authorization: NTLM a\r\nauthorization: NTLM b\r\n\r\n", (400,), True),
        ("two-authorization-bridge-route", b"POST /mapi/emsmdb/ HTTP/1.1\r\n" + H +
         b"Authorization: NTLM " + NTLM_NEGOTIATE.encode() + b"\r\n"
         b"Authorization: NTLM " + NTLM_NEGOTIATE.encode() + b"\r\nContent-Length: 0\r\n\r\n",
         (400,), True),
    ]


def table_misc():
    return [
        ("bare-lf-before-request-line", b"\nGET /owa/x HTTP/1.1\r\n" + H + b"\r\n", (400,),
         True),
    ]


def table_chunked_big():
    """The same defects behind a 30000-byte first chunk: still sent whole in one write, still
    under max_header_bytes and high_water (64 KiB), but more than one TLS record."""
    c = CH()
    big = b"7530\r\n" + b"a" * 30000
    return [
        ("big-then-bad-second-chunk", c + big + b"\r\nzz\r\nworld\r\n0\r\n\r\n", (400,), True),
        ("big-then-bad-crlf", c + big + b"XY0\r\n\r\n", (400,), True),
        ("big-then-missing-final-crlf", c + big + b"\r\n0\r\n" + b"GET /owa/next HTTP/1.1\r\n" +
         H + b"\r\n", (400,), True),
    ]


TABLES = {"chunked-big": table_chunked_big, "chunked": table_chunked, "target": table_target, "hostver": table_hostver,
          "auth2": table_auth2, "misc": table_misc}


def good_request(a, path, tag):
    """A good request on its own connection; returns the number of head bytes the origin
    received (its echo's head-length), or None."""
    data = (b"GET " + path.encode() + b"/" + tag.encode() + b" HTTP/1.1\r\n" + H +
            b"Connection: close\r\n\r\n")
    try:
        st, h, body, closed = request(a, data)
    except (EOFError, OSError, ValueError, IndexError) as e:
        check(False, "good request after %s: %s" % (tag, e))
        return None
    info, raw = cc.echo_parts(body)
    ok = st == 200 and "head-length" in info and info.get("body-length") == "0"
    check(ok, "good request after %-28s status=%d (origin got %s head bytes)"
          % (tag, st, info.get("head-length")))
    return int(info["head-length"]) if ok else None


def cmd_table(a):
    cases = []
    for name in a.set:
        cases += TABLES[name]()
    if a.case:
        cases = [c for c in cases if c[0] in a.case]
        check(len(cases) == len(a.case), "known case names %s" % a.case)
    refused = good = good_bytes = 0
    for name, data, allowed, want_close in cases:
        t0 = time.time()
        try:
            st, h, body, closed = request(a, data)
            dt = time.time() - t0
            ok = st in allowed and (closed or not want_close)
            check(ok, "refuse %-28s status=%d closed=%s (want %s%s) %.2fs"
                  % (name, st, closed, "/".join(map(str, allowed)),
                     " and close" if want_close else "", dt))
            if a.max_seconds and dt > a.max_seconds:
                check(False, "refuse %s took %.2fs (> %.1fs)" % (name, dt, a.max_seconds))
            if st in allowed:
                refused += 1
        except (EOFError, OSError, ssl.SSLError, ValueError, IndexError) as e:
            check(False, "refuse %-28s no response before close: %s"
                  % (name, str(e) or type(e).__name__))
        if a.no_good:
            continue
        n = good_request(a, a.good_path, "after-" + name)
        if n is not None:
            good += 1
            good_bytes += n
    print("SUMMARY refused=%d good=%d good_bytes=%d" % (refused, good + WARM["good"],
                                                         good_bytes + WARM["bytes"]))


# --- valid chunked bodies, pipelining, a late bad chunk -----------------------------------
CHUNKED_GOOD = [
    # name, wire body, decoded payload
    ("ext-token", b"5;name=value\r\nhello\r\n0\r\n\r\n", b"hello"),
    ("ext-quoted", b'5;a="b c";d\r\nhello\r\n0\r\n\r\n', b"hello"),
    ("ext-bws", b"5 ;a=b\r\nhello\r\n0\r\n\r\n", b"hello"),
    ("leading-zeros", b"0005\r\nhello\r\n0000\r\n\r\n", b"hello"),
    ("16-digits", b"0000000000000005\r\nhello\r\n0\r\n\r\n", b"hello"),
    ("upper-hex", b"A\r\n0123456789\r\n0\r\n\r\n", b"0123456789"),
    ("two-chunks", b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n", b"hello world"),
    ("trailer-allowed", b"5\r\nhello\r\n0\r\nX-Trailer: ok\r\n\r\n", b"hello"),
    ("last-chunk-ext", b"5\r\nhello\r\n0;x=y\r\n\r\n", b"hello"),
]


def cmd_chunked_good(a):
    import hashlib
    for name, wire, payload in CHUNKED_GOOD:
        st, h, body, _ = request(a, CH(b"/owa/good-chunked") + wire)
        info, _ = cc.echo_parts(body)
        check(st == 200 and info.get("body-length") == str(len(payload)) and
              info.get("body-sha256") == hashlib.sha256(payload).hexdigest(),
              "valid chunked %-16s forwarded: status %d, origin body %s bytes"
              % (name, st, info.get("body-length")))


def cmd_pipeline(a):
    """A valid chunked POST and, in the same write, a GET carrying a forged X-Forwarded-For:
    two requests for exshim and for the origin, the second with exshim's X-Forwarded-For."""
    s = conn(a)
    s.sendall(CH(b"/owa/first") + b"5\r\nhello\r\n0\r\n\r\n" + b"GET /owa/second HTTP/1.1\r\n" +
              H + b"X-Forwarded-For: 6.6.6.6\r\n\r\n")
    s.settimeout(5)
    r = cc.Reader(s)
    st1, h1, b1 = r.response()
    st2, h2, b2 = r.response()
    s.close()
    _, raw1 = cc.echo_parts(b1)
    _, raw2 = cc.echo_parts(b2)
    check(st1 == 200 and raw1.startswith(b"POST /owa/first "), "pipeline: first answered %d" % st1)
    xff = cc.hall(cc.parse_headers(raw2), "x-forwarded-for")
    check(st2 == 200 and raw2.startswith(b"GET /owa/second ") and xff == ["127.0.0.1"],
          "pipeline: second answered %d with X-Forwarded-For %s (forged one replaced)" % (st2, xff))


def cmd_late_bad(a):
    """Head and a valid first chunk, then (0.3 s later, after exshim forwarded them) a bad
    chunk: 400, and the backend connection is closed holding exactly head + first chunk."""
    head = CH(b"/owa/late")
    st, h, body, _ = request(a, head + b"0\r\n\r\n")
    info, _ = cc.echo_parts(body)
    fwd_head = int(info.get("head-length", "0"))
    check(st == 200 and fwd_head > 0, "late-bad: a good request of the same shape: %d, head %d "
          "bytes at the origin" % (st, fwd_head))
    first = b"5\r\nhello\r\n"
    since = cc.log_len(a.origin_log)
    s = conn(a)
    s.sendall(head + first)
    time.sleep(0.3)
    s.sendall(b"zz\r\nLEAKED\r\n0\r\n\r\n")
    try:
        r, st, h, body = response(s)
        closed = r.closed_within(3)
    except (EOFError, OSError) as e:
        st, closed = 0, True
        print("late-bad: %s" % e)
    s.close()
    check(st == 400 and closed, "late-bad: status %d, closed %s (want 400 and close)" % (st, closed))
    m = wait_log(a.origin_log, r"request peer=(\d+) method=POST path=/owa/late ", since, 3)
    m = m and wait_log(a.origin_log, r"close peer=%s bytes_in=(\d+) requests=1 " % m.group(1),
                       since, 3)
    got = int(m.group(1)) if m else -1
    check(got == fwd_head + len(first),
          "late-bad: backend connection closed with %d bytes = head %d + first chunk %d (the bad "
          "chunk never sent)" % (got, fwd_head, len(first)))


# --- smuggle straight to a backend ---------------------------------------------------------
def cmd_smuggle(a):
    s = conn(a)
    s.sendall(smuggle_payload(a.path.encode()))
    r = cc.Reader(s)
    s.settimeout(3)
    statuses = []
    try:
        for _ in range(3):
            st, h, body = r.response("POST" if not statuses else "GET")
            statuses.append(st)
    except (EOFError, OSError, ValueError):
        pass
    s.close()
    print("smuggle: %d responses: %s" % (len(statuses), statuses))
    check(len(statuses) == a.expect, "smuggle: %d responses, want %d" % (len(statuses), a.expect))
    if a.want_status:
        check(statuses[:1] == [a.want_status], "smuggle: first status %s, want %d"
              % (statuses[:1], a.want_status))


# --- target routing ------------------------------------------------------------------------
def first_line(body):
    _, raw = cc.echo_parts(body)
    return raw.split(b"\r\n")[0]


def cmd_target(a):
    def get(t, host=H):
        return request(a, b"GET " + t + b" HTTP/1.1\r\n" + host + b"\r\n")
    if a.policy == "strict":
        st, h, body, _ = get(b"/mapi/x")
        check(st == 200 and first_line(body) == b"GET /mapi/x HTTP/1.1",
              "strict /mapi/x: status %d, origin line %r" % (st, first_line(body)))
        st, h, body, _ = get(b"http://mail.contoso.test/mapi/y")
        check(st == 200 and first_line(body) == b"GET /mapi/y HTTP/1.1",
              "strict absolute-form same host: status %d, origin got origin-form %r"
              % (st, first_line(body)))
        for t, want in ((b"https://mail.contoso.test:443/mapi/z", b"GET /mapi/z HTTP/1.1"),
                        (b"http://MAIL.CONTOSO.TEST/mapi/w?q=1", b"GET /mapi/w?q=1 HTTP/1.1"),
                        (b"/owa/%7euser/%3a", b"GET /owa/~user/%3A HTTP/1.1")):
            st, h, body, _ = get(t)
            check(st == 200 and first_line(body) == want,
                  "strict %s: status %d, origin got %r (want %r)"
                  % (t.decode(), st, first_line(body), want))
        # a 404 keeps the connection: the next request on it is served
        s = conn(a)
        s.sendall(b"GET /ecp/default.aspx HTTP/1.1\r\n" + H + b"\r\n")
        r, st1, h, body = response(s)
        s.sendall(b"GET /owa/after-404 HTTP/1.1\r\n" + H + b"\r\n")
        st2, h, body = r.response()
        s.close()
        check(st1 == 404 and st2 == 200 and first_line(body) == b"GET /owa/after-404 HTTP/1.1",
              "strict: 404 for /ecp then 200 for /owa on the same connection (%d, %d)" % (st1, st2))
        st, h, body, _ = get(b"/RPC/RpcProxy.dll?srv:6001")
        check(st == 200 and first_line(body) == b"GET /RPC/RpcProxy.dll?srv:6001 HTTP/1.1",
              "strict /RPC (case-insensitive route), line byte for byte: %d %r"
              % (st, first_line(body)))
        return
    st, h, body, _ = get(b"/mapi/../rpc/x")
    check(st == 200 and first_line(body) == b"GET /rpc/x HTTP/1.1",
          "normalize /mapi/../rpc/x: status %d, origin line %r" % (st, first_line(body)))
    st, h, body, _ = get(b"/owa/./a/%2e%2e/b?q=%2e")
    check(st == 200 and first_line(body) == b"GET /owa/b?q=%2e HTTP/1.1",
          "normalize /owa/./a/%%2e%%2e/b?q=%%2e: status %d, origin line %r (query unchanged)"
          % (st, first_line(body)))
    for t, want in ((b"/owa/../ecp/default.aspx", 404), (b"/owa/%2F", 400),
                    (b"/owa/../../x", 400)):
        st, h, body, closed = get(t)
        check(st == want, "normalize %s: status %d, want %d" % (t.decode(), st, want))


# --- Connection tokens ---------------------------------------------------------------------
def cmd_conn_tokens(a):
    toks = ["x-tok-%02d" % i for i in range(1, 31)]
    toks[16] = "X-Hidden-17"
    toks[29] = "X-Hidden-30"
    data = (b"GET /owa/conn HTTP/1.1\r\n" + H + b"Connection: " + ", ".join(toks).encode() +
            b"\r\nX-Hidden-17: secret17\r\nX-Kept: kept\r\nX-Hidden-30: secret30\r\n"
            b"X-Tok-05: named-5th\r\n\r\n")
    st, h, body, _ = request(a, data)
    _, raw = cc.echo_parts(body)
    lines = raw.split(b"\r\n")
    check(st == 200, "conn-tokens: status %d" % st)
    check(b"X-Kept: kept" in lines, "conn-tokens: unnamed header forwarded")
    for n in (b"x-hidden-17", b"x-hidden-30", b"x-tok-05", b"connection"):
        check(not any(l.lower().startswith(n + b":") for l in lines),
              "conn-tokens: %s not forwarded" % n.decode())
    # framing headers and Host are never dropped, whatever Connection names
    st, h, body, _ = request(a, b"POST /owa/conn-cl HTTP/1.1\r\n" + H +
                             b"Connection: Content-Length, Host\r\nContent-Length: 5\r\n\r\nhello")
    info, raw = cc.echo_parts(body)
    lines = raw.split(b"\r\n")
    check(st == 200 and b"Content-Length: 5" in lines and H.rstrip(b"\r\n") in lines and
          info.get("body-length") == "5",
          "Connection: Content-Length, Host: both still forwarded, body intact (%d, %s bytes)"
          % (st, info.get("body-length")))
    st, h, body, _ = request(a, b"POST /owa/conn-te HTTP/1.1\r\n" + H +
                             b"Connection: Transfer-Encoding\r\nTransfer-Encoding: chunked\r\n\r\n"
                             b"5\r\nhello\r\n0\r\n\r\n")
    info, raw = cc.echo_parts(body)
    check(st == 200 and b"Transfer-Encoding: chunked" in raw.split(b"\r\n") and
          info.get("body-length") == "5",
          "Connection: Transfer-Encoding: still forwarded, body intact (%d)" % st)


# --- bare LF before the request line -------------------------------------------------------
def cmd_bare_lf(a):
    s = conn(a)
    if a.warm:
        # a bare LF where the second request on a keep-alive connection should start
        s.sendall(b"GET /owa/first HTTP/1.1\r\n" + H + b"\r\n")
        r, st, h, body = response(s)
        check(st == 200, "bare LF (second request): first request %d" % st)
    t0 = time.time()
    s.sendall(b"\nGET /owa/x HTTP/1.1\r\n" + H + b"\r\n")
    try:
        r, st, h, _ = response(s, a.max + 2)
        dt = time.time() - t0
        closed = r.closed_within(2)
        check(st == 400 and closed and dt < a.max,
              "bare LF before request line: status %d closed=%s after %.3fs (want 400, close, "
              "< %.1fs)" % (st, closed, dt, a.max))
    except (EOFError, OSError) as e:
        check(False, "bare LF: no response: %s" % e)
    s.close()


# --- many header lines ---------------------------------------------------------------------
def cmd_maxheaders(a):
    lines = [H.rstrip(b"\r\n")] + [b"X-H-%04d: v" % i for i in range(1, a.n)]
    data = b"GET /owa/many HTTP/1.1\r\n" + b"\r\n".join(lines) + b"\r\n\r\n"
    st, h, body, closed = request(a, data, timeout=10)
    ok = st == a.want
    if ok and st == 200:
        _, raw = cc.echo_parts(body)
        got = raw.split(b"\r\n")
        ok = b"X-H-%04d: v" % (a.n - 1) in got and b"X-H-0001: v" in got
    check(ok, "%d header lines: status %d, want %d%s" % (a.n, st, a.want,
                                                           " (all forwarded)" if a.want == 200
                                                           else ""))


# --- authorization -------------------------------------------------------------------------
def cmd_auth_pass(a):
    data = (b"GET /ews/pass HTTP/1.1\r\n" + H + b"X-Before: 1\r\nAuthorization: NTLM !!!!\r\n"
            b"X-After: 2\r\n\r\n")
    st, h, body, _ = request(a, data)
    _, raw = cc.echo_parts(body)
    lines = raw.split(b"\r\n")
    check(st == 200 and b"Authorization: NTLM !!!!" in lines,
          "pass-through: unparseable NTLM token forwarded, origin answered: status %d" % st)


def cmd_auth_bridge(a):
    tok = NTLM_NEGOTIATE.encode()
    data = (b"POST /mapi/emsmdb/ HTTP/1.1\r\n" + H + b"X-Before: 1\r\n"
            b"Authorization: NTLM " + tok + b"\r\nX-After: 2\r\nContent-Length: 0\r\n\r\n")
    st, h, body, _ = request(a, data)
    _, raw = cc.echo_parts(body)
    lines = raw.split(b"\r\n")
    want = [b"X-Before: 1", b"Authorization: Negotiate " + tok, b"X-After: 2"]
    i = lines.index(want[0]) if want[0] in lines else -1
    check(st in (200, 401) and i > 0 and lines[i:i + 3] == want,
          "bridge: status %d; lines around X-Before at the origin: %r" % (st, lines[i:i + 3]))
    check(not any(l.startswith(b"Authorization: NTLM") for l in lines),
          "bridge: no NTLM Authorization line left")


def wait_log(path, pattern, since, limit):
    t0 = time.time()
    while time.time() - t0 < limit:
        with open(path) as f:
            lines = f.readlines()[since:]
        for line in lines:
            m = re.search(pattern, line)
            if m:
                return m
        time.sleep(0.02)
    return None


def cmd_authclose(a):
    since = cc.log_len(a.origin_log)
    s = conn(a)
    auth = (b"Authorization: " + a.scheme.encode() + b" " +
            (b"dXNlcjpwYXNz" if a.scheme == "Basic" else NTLM_NEGOTIATE.encode()) + b"\r\n"
            if a.auth or a.scheme == "Basic" else b"")
    s.sendall(b"GET " + a.path.encode() + b"/close-after?ms=200 HTTP/1.1\r\n" + H + auth +
              b"\r\n")
    r, st, h, body = response(s)
    peer1 = cc.hget(cc.parse_headers(h), "x-origin-peer")
    check(st == 200, "authclose: first response %d" % st)
    m = wait_log(a.origin_log, r"close_after peer=\d+ closing t=([\d.]+)", since, 3)
    check(m is not None, "origin logged its close")
    if a.auth:
        closed = r.closed_within(2.5)
        t_close = time.time()
        lag = t_close - float(m.group(1)) if m else 99
        check(closed and -0.02 < lag < 2.0,
              "authenticated: client connection closed %.3fs after the backend's close "
              "(want 0..2 s: not before it, not much later)" % lag)
    else:
        time.sleep(0.6)  # well after the backend's close
        s.settimeout(5)
        try:
            s.sendall(b"GET /echo/again HTTP/1.1\r\n" + H + b"\r\n")
            st, h2, body2 = r.response()
            peer2 = cc.hget(cc.parse_headers(h2), "x-origin-peer")
            check(st == 200 and peer2 is not None and peer2 != peer1,
                  "not connection-authenticated (%s): next request answered %d on a new backend connection (%s -> %s)"
                  % (a.scheme if a.scheme == "Basic" else "no Authorization", st, peer1, peer2))
        except (EOFError, OSError) as e:
            check(False, "anonymous: connection closed after the backend's close: %s" % e)
    s.close()


# --- half-close ----------------------------------------------------------------------------
def tls_memory_connect(port, timeout=5):
    """A TLS client over a raw socket (MemoryBIO), so the TCP write side can be shut down
    while decrypted data is still read."""
    raw = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(inc, out, server_hostname="localhost")
    deadline = time.time() + timeout
    while True:
        try:
            obj.do_handshake()
            break
        except ssl.SSLWantReadError:
            pass
        if out.pending:
            raw.sendall(out.read())
        if time.time() > deadline:
            raise OSError("TLS handshake timed out")
        d = raw.recv(65536)
        if not d:
            raise EOFError("closed during handshake")
        inc.write(d)
    if out.pending:
        raw.sendall(out.read())
    return raw, obj, inc, out


def cmd_halfclose(a):
    body = b"x" * 3000
    req = (b"POST /echo/half HTTP/1.1\r\n" + H + b"Content-Length: %d\r\n\r\n" % len(body) +
           body)
    if a.chunked:
        req = (b"POST /echo/half HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n" +
               b"%x\r\n" % len(body) + body + b"\r\n0\r\n\r\n")
    if a.get:
        req = b"GET /echo/half HTTP/1.1\r\n" + H + b"\r\n"
        body = b""
    if a.slow:
        # the origin reads the body, answers one chunk, and the rest 0.3 s later: the FIN has
        # certainly been seen by exshim before the response ends
        req = req.replace(b" /echo/half ", b" /chunked-delay?delay=0.3 ", 1)
    t0 = time.time()
    data = b""
    eof = False
    if not a.tls:
        s = socket.create_connection(("127.0.0.1", a.port), timeout=5)
        s.sendall(req)
        s.shutdown(socket.SHUT_WR)
        s.settimeout(5)
        try:
            while time.time() - t0 < 5:
                d = s.recv(65536)
                if not d:
                    eof = True
                    break
                data += d
        except OSError:
            pass
        s.close()
    else:
        raw, obj, inc, out = tls_memory_connect(a.port)
        obj.write(req)
        raw.sendall(out.read())
        if a.close_notify:
            try:
                obj.unwrap()
            except ssl.SSLWantReadError:
                pass
            if out.pending:
                raw.sendall(out.read())
        raw.shutdown(socket.SHUT_WR)
        raw.settimeout(5)
        try:
            while time.time() - t0 < 5:
                d = raw.recv(65536)
                if not d:
                    eof = True
                    break
                inc.write(d)
                while True:
                    try:
                        piece = obj.read(65536)
                    except (ssl.SSLWantReadError, ssl.SSLZeroReturnError):
                        break
                    if not piece:  # close_notify from exshim: the TLS stream ended
                        break
                    data += piece
        except (OSError, ssl.SSLError):
            pass
        raw.close()
    dt = time.time() - t0
    m = re.match(rb"HTTP/1\.1 (\d+) ", data)
    st = int(m.group(1)) if m else 0
    head, _, rest = data.partition(b"\r\n\r\n")
    cl = re.search(rb"(?im)^content-length: *(\d+)", head)
    complete = cl is not None and len(rest) == int(cl.group(1))
    info, _ = cc.echo_parts(rest) if complete else ({}, b"")
    if a.slow:
        complete = rest.endswith(b"\r\n0\r\n\r\n") and b"second chunk\n" in rest
        info = {"body-length": str(len(body)) if complete else "?"}
    check(st == 200 and complete and info.get("body-length") == str(len(body)),
          "half-close%s%s%s%s%s: status %d, full response %s (origin got %s of %d body bytes)"
          % (" GET" if a.get else "", " TLS" if a.tls else "", " +close_notify" if a.close_notify else "",
             " chunked" if a.chunked else "", " slow response" if a.slow else "", st, complete,
             info.get("body-length"), len(body)))
    check(eof and dt < 4, "half-close: connection closed after the response (%.2fs)" % dt)


def cmd_halfclose_pipeline(a):
    """Two requests sent whole in one write, the first answered slowly (/chunked-delay), then
    shutdown(SHUT_WR): both are answered, then the connection closes. --warm: one request
    first, so the backend connection is already open when the pair arrives."""
    g = lambda p: b"GET " + p + b" HTTP/1.1\r\n" + H + b"\r\n"  # noqa: E731
    s = socket.create_connection(("127.0.0.1", a.port), timeout=5)
    r = cc.Reader(s)
    if a.warm:
        s.sendall(g(b"/echo/warm"))
        st, h, body = r.response()
        check(st == 200, "half-close pipeline: warm-up request %d" % st)
    s.sendall(g(b"/chunked-delay?delay=0.5") + g(b"/echo/second"))
    s.shutdown(socket.SHUT_WR)
    got = []
    try:
        for _ in range(2):
            st, h, body = r.response()
            got.append((st, body[:40]))
    except (EOFError, OSError, ValueError) as e:
        print("half-close pipeline: reading stopped: %s" % (str(e) or type(e).__name__))
    closed = r.closed_within(3)
    s.close()
    check(len(got) == 2 and all(g_[0] == 200 for g_ in got),
          "half-close pipeline%s: both requests sent before the FIN answered: %d response(s) %s"
          % (" (warm backend)" if a.warm else "", len(got), [g_[0] for g_ in got]))
    check(closed, "half-close pipeline: connection closed after the responses")


# --- broken responses ----------------------------------------------------------------------
def cmd_badresp(a):
    s = conn(a)
    s.sendall(b"GET /bad-resp?kind=%s&delay=%g HTTP/1.1\r\n" % (a.kind.encode(), a.delay) + H +
              b"\r\n")
    limit = 1.0 if a.kind == "good-ext" else a.delay + 5  # good-ext: the origin keeps it open
    s.settimeout(limit)
    data = b""
    t0 = time.time()
    eof = False
    try:
        while time.time() - t0 < limit:
            d = s.recv(65536)
            if not d:
                eof = True
                break
            data += d
    except OSError as e:
        print("badresp: recv ended: %s" % e)
        eof = True
    t_eof = time.time()
    s.close()
    check(b"LEAKED" not in data, "badresp %s: no bad bytes relayed (got %r)" % (a.kind, data[-80:]))
    if a.kind == "good-ext":
        head, _, rest = data.partition(b"\r\n\r\n")
        check(head.startswith(b"HTTP/1.1 200 ") and
              rest == b"8;ext=1\r\nGOODDATA\r\n0\r\nX-Trailer: ok\r\n\r\n",
              "badresp good-ext: valid extension and trailer relayed byte for byte: %r" % rest)
        return
    if a.kind == "second":
        head, _, rest = data.partition(b"\r\n\r\n")
        check(head.startswith(b"HTTP/1.1 200 ") and rest == b"8\r\nGOODDATA\r\n",
              "badresp second: head and first chunk delivered, nothing after: %r" % rest)
        check(eof, "badresp second: connection closed")
        if a.origin_log:
            m = wait_log(a.origin_log, r"bad_resp peer=\d+ kind=second sending the bad chunk "
                         r"t=([\d.]+)", 0, 1)
            sent = float(m.group(1)) if m else 0
            # the last such line is this run's (runs are sequential)
            with open(a.origin_log) as f:
                for line in f:
                    mm = re.search(r"kind=second sending the bad chunk t=([\d.]+)", line)
                    if mm:
                        sent = float(mm.group(1))
            check(m is not None and t_eof >= sent - 0.02,
                  "badresp second: closed %.3fs after the origin sent the bad chunk (not before)"
                  % (t_eof - sent))
    else:
        check(data.startswith(b"HTTP/1.1 502 "), "badresp %s: 502 status line, got %r"
              % (a.kind, data[:60]))
        check(eof, "badresp %s: connection closed" % a.kind)


# --- exploit guard -------------------------------------------------------------------------
GUARD_ATTACKS = [
    ("EXG-000", b"GET /owa/?x=%25252541 HTTP/1.1\r\n" + H + b"\r\n"),
    ("EXG-001", b"GET /autodiscover/autodiscover.json?@evil.com/Powershell/&Email=autodiscover/"
                b"autodiscover.json%3f@evil.com HTTP/1.1\r\n" + H + b"\r\n"),
    ("EXG-001", b"GET /autodiscover/autodiscover.json?@evil.com/%50owershell HTTP/1.1\r\n" + H +
     b"\r\n"),
    ("EXG-002", b"GET /autodiscover/autodiscover.json?@evil.com/mapi/nspi/?&Email=autodiscover/"
                b"autodiscover.json%3f@evil.com HTTP/1.1\r\n" + H + b"\r\n"),
    ("EXG-003", b"POST /owa/mastermailbox%40outlook.com/powershell HTTP/1.1\r\n" + H +
     b"Content-Length: 0\r\n\r\n"),
    ("EXG-004", b"POST /powershell?serializationLevel=Full;clientApplication=ManagementShell "
                b"HTTP/1.1\r\n" + H + b"Content-Length: 0\r\n\r\n"),
    ("EXG-005", b"GET /ews/exchange.asmx?X-Rps-CAT=VgEAVAdXaW5kb3dzQwBB HTTP/1.1\r\n" + H +
     b"\r\n"),
    ("EXG-006", b"GET /owa/ HTTP/1.1\r\n" + H + b"X-CommonAccessToken: VgEAVAdXaW5kb3dz\r\n\r\n"),
    ("EXG-006", b"POST /ecp/proxyLogon.ecp HTTP/1.1\r\n" + H +
     b"msExchLogonMailbox: S-1-5-20\r\nContent-Length: 0\r\n\r\n"),
    ("EXG-007", b"GET /owa/auth/x.js HTTP/1.1\r\n" + H +
     b"Cookie: X-AnonResource=true; X-AnonResource-Backend=localhost/ecp/default.flt?~3\r\n\r\n"),
    ("EXG-007", b"POST /ecp/x.js HTTP/1.1\r\n" + H +
     b"Cookie: X-BEResource=a]@exch01:444/ecp/proxyLogon.ecp#~1941997017\r\n"
     b"Content-Length: 0\r\n\r\n"),
    # evasions: case, %u, '+', trailing dot, encoded letters, long targets, cookie/header case
    ("EXG-000", b"GET /owa/" + b"a" * 9000 + b" HTTP/1.1\r\n" + H + b"\r\n"),
    ("EXG-000", b"GET /owa/?q=" + b"a" * 9000 + b" HTTP/1.1\r\n" + H + b"\r\n"),
    ("EXG-001", b"GET /Autodiscover/AutoDiscover.JSON?@x.com/PowerShell HTTP/1.1\r\n" + H +
     b"\r\n"),
    ("EXG-001", b"GET /autodiscover/autodiscover.json?@x.com/%u0050owershell HTTP/1.1\r\n" + H +
     b"\r\n"),
    ("EXG-001", b"GET /autodiscover/autodiscover.xml?x=/powershell HTTP/1.1\r\n" + H + b"\r\n"),
    ("EXG-002", b"GET /autodiscover/autodiscover.json?%2540x.com/mapi/nspi HTTP/1.1\r\n" + H +
     b"\r\n"),
    ("EXG-003", b"GET /owa/m%40x.com/PoWeRsHeLl/ HTTP/1.1\r\n" + H + b"\r\n"),
    ("EXG-003", b"GET /owa/x/%70owershell HTTP/1.1\r\n" + H + b"\r\n"),
    ("EXG-004", b"GET /PowerShell/ HTTP/1.1\r\n" + H + b"\r\n"),
    ("EXG-005", b"GET /ews/x?%58-Rps-CAT=1 HTTP/1.1\r\n" + H + b"\r\n"),
    ("EXG-006", b"GET /owa/ HTTP/1.1\r\n" + H + b"x-isfromcafe: 1\r\n\r\n"),
    ("EXG-007", b"GET /ecp/y.js HTTP/1.1\r\n" + H +
     b"Cookie: a=b, x-beresource=h/ecp/y~1\r\n\r\n"),
]

# Under target_policy = "normalize" the guard sees the repaired path.
GUARD_NORMALIZE_ATTACKS = [
    ("EXG-004", b"GET /owa/../powershell HTTP/1.1\r\n" + H + b"\r\n"),
    ("EXG-004", b"GET /owa/..%5cPowerShell/ HTTP/1.1\r\n" + H + b"\r\n"),
    ("EXG-001", b"GET /owa/%2e%2e/autodiscover/autodiscover.json?@x.com/powershell HTTP/1.1\r\n" +
     H + b"\r\n"),
    ("EXG-003", b"GET /ecp/./m%40x.com//powershell HTTP/1.1\r\n" + H + b"\r\n"),
]

GUARD_LEGIT = [
    ("autodiscover.json ActiveSync",
     b"GET /autodiscover/autodiscover.json?Email=alice@contoso.com&Protocol=ActiveSync&"
     b"RedirectCount=1 HTTP/1.1\r\n" + H + b"\r\n", 200),
    ("mapi emsmdb MailboxId", b"POST /mapi/emsmdb/?MailboxId=x@y HTTP/1.1\r\n" + H +
     b"X-RequestType: Connect\r\nContent-Type: application/mapi-http\r\n"
     b"Content-Length: 0\r\n\r\n", 200),
    ("owa with fqdn~version X-BEResource cookie", b"GET /owa/auth/logon.aspx HTTP/1.1\r\n" + H +
     b"Cookie: X-BEResource=exch01.contoso.test~1942062522; X-BackEndCookie=S-1-5-21=abc\r\n"
     b"\r\n", 200),
    ("ews with X-Forwarded-For and client-request-id", b"POST /ews/exchange.asmx HTTP/1.1\r\n" +
     H + b"client-request-id: 1234\r\nX-Forwarded-For: 10.0.0.1\r\nContent-Length: 0\r\n\r\n",
     200),
]


def cmd_guard(a):
    for rule, data in (GUARD_NORMALIZE_ATTACKS if a.policy == "normalize" else GUARD_ATTACKS):
        try:
            st, h, body, closed = request(a, data)
        except (EOFError, OSError) as e:
            check(False, "guard %s: no response: %s" % (rule, e))
            continue
        check(st == 403 and rule.encode() in body,
              "guard %s: %s -> %d %r" % (rule, data.split(b"\r\n")[0].decode()[:70], st,
                                         body.strip()[:60]))
    if a.attacks_only:
        return
    # a few legitimate Exchange requests pass
    for name, data, want in GUARD_LEGIT:
        st, h, body, _ = request(a, data)
        check(st == want, "legit %s: %d" % (name, st))
    # RPC_IN_DATA with Content-Length 0: the origin gets it (and, as RPC_IN_DATA, never
    # answers); exshim must not refuse it
    since = cc.log_len(a.origin_log)
    s = conn(a)
    s.sendall(b"RPC_IN_DATA /rpc/rpcproxy.dll?srv:6001 HTTP/1.1\r\n" + H +
              b"User-Agent: MSRPC\r\nContent-Length: 0\r\n\r\n")
    m = wait_log(a.origin_log, r"request peer=\d+ method=RPC_IN_DATA path=/rpc/rpcproxy.dll\?srv:6001 ",
                 since, 3)
    s.settimeout(0.5)
    try:
        d = s.recv(100)
    except socket.timeout:
        d = b""
    s.close()
    check(m is not None and not d.startswith(b"HTTP/1.1 403"),
          "legit RPC_IN_DATA /rpc/rpcproxy.dll?srv:6001 CL 0 reached the origin (%r)" % d[:30])
    if a.open_path:
        data = (b"GET " + a.open_path.encode() + b"/autodiscover.json?@evil.com/powershell "
                b"HTTP/1.1\r\n" + H + b"X-CommonAccessToken: abc\r\n\r\n")
        st, h, body, _ = request(a, data)
        _, raw = cc.echo_parts(body)
        check(st == 200 and b"X-CommonAccessToken: abc" in raw.split(b"\r\n"),
              "guard = false route: attack passed to the origin: %d" % st)


# --- deadlines -----------------------------------------------------------------------------
def cmd_trickle(a):
    head = b"GET /owa/trickle HTTP/1.1\r\n" + H + b"X-Slow: " + b"s" * 200
    socks = {}
    for i in range(a.n):
        s = socket.create_connection(("127.0.0.1", a.port), timeout=5)
        s.setblocking(False)
        socks[s.fileno()] = {"s": s, "t0": time.time(), "pos": 0, "data": b"", "closed": None}
    start = time.time()
    next_send = start
    while time.time() - start < a.max + 3:
        open_ = [c for c in socks.values() if c["closed"] is None]
        if not open_:
            break
        now = time.time()
        if now >= next_send:
            for c in open_:
                try:
                    c["s"].send(head[c["pos"] % len(head):c["pos"] % len(head) + 1])
                    c["pos"] += 1
                except OSError:
                    pass  # reset: the recv below sees it
            next_send += a.interval
        r, _, _ = select.select([c["s"] for c in open_], [], [],
                                max(0.0, min(0.05, next_send - time.time())))
        for s in r:
            c = socks[s.fileno()]
            try:
                d = s.recv(4096)
            except OSError:
                d = b""
            if d:
                c["data"] += d
            else:
                c["closed"] = time.time()
    lat = [c["closed"] - c["t0"] for c in socks.values() if c["closed"] is not None]
    n_closed = len(lat)
    n408 = sum(1 for c in socks.values() if c["data"].startswith(b"HTTP/1.1 408 "))
    n_other = sum(1 for c in socks.values()
                  if c["data"] and not c["data"].startswith(b"HTTP/1.1 408 "))
    sent = max(c["pos"] for c in socks.values())
    for c in socks.values():
        c["s"].close()
    print("trickle: %d/%d closed, %d with a 408, latency %.2f..%.2fs, up to %d bytes sent"
          % (n_closed, a.n, n408, min(lat or [0]), max(lat or [0]), sent))
    check(n_closed == a.n, "trickle: all %d connections closed (%d)" % (a.n, n_closed))
    check(lat and max(lat) <= a.max, "trickle: closed within %.1fs of connect (max %.2fs)"
          % (a.max, max(lat or [99])))
    check(lat and min(lat) >= a.min, "trickle: none closed before %.1fs (min %.2fs)"
          % (a.min, min(lat or [0])))
    check(n_other == 0, "trickle: everything readable is a 408 (%d other)" % n_other)
    check(n408 > 0, "trickle: 408 status lines read (%d)" % n408)


def cmd_second_head(a):
    """A keep-alive connection's second head trickles in: header_timeout counts from its first
    byte, so it is closed with a 408 header_timeout after that byte."""
    s = conn(a)
    s.sendall(b"GET /owa/first HTTP/1.1\r\n" + H + b"\r\n")
    r, st, h, body = response(s)
    check(st == 200, "second-head: first request %d" % st)
    time.sleep(a.open_at)  # idle between requests: not counted in the head deadline
    head = b"GET /owa/second HTTP/1.1\r\n" + H + b"X-Slow: " + b"s" * 100
    t0 = time.time()
    s.setblocking(False)
    i = 0
    data = b""
    eof = False
    while time.time() - t0 < a.max + 1 and not eof:
        try:
            s.send(head[i:i + 1])
            i += 1
        except OSError:
            pass
        end = time.time() + a.interval
        while time.time() < end:
            rr, _, _ = select.select([s], [], [], max(0.0, end - time.time()))
            if not rr:
                continue
            try:
                d = s.recv(4096)
            except OSError:
                d = b""
            if not d:
                eof = True
                break
            data += d
    dt = time.time() - t0
    s.close()
    check(eof and a.min <= dt <= a.max and data.startswith(b"HTTP/1.1 408 "),
          "second-head: 408 %s and close %.2fs after its first byte (want %.1f..%.1f), %d bytes "
          "sent" % (data.startswith(b"HTTP/1.1 408 "), dt, a.min, a.max, i))


def cmd_idle(a):
    s = conn(a)
    s.sendall(b"GET /owa/idle HTTP/1.1\r\n" + H + b"\r\n")
    r, st, h, body = response(s)
    check(st == 200, "idle: first request %d" % st)
    t0 = time.time()
    closed_early = r.closed_within(a.open_at)
    check(not closed_early, "idle keep-alive connection still open after %.1fs (header_timeout "
          "does not apply between requests)" % (time.time() - t0))
    closed = r.closed_within(a.max - a.open_at)
    dt = time.time() - t0
    check(closed and dt >= a.min, "idle: closed by idle_timeout after %.2fs (want %.1f..%.1f)"
          % (dt, a.min, a.max))
    check(r.buf == b"", "idle: no 408 or other bytes on an idle close: %r" % r.buf[:40])
    s.close()


def client_hello():
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(inc, out, server_hostname="localhost")
    try:
        obj.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return out.read()


def cmd_tls_stall(a):
    t0 = time.time()
    if a.mode == "done":
        raw, obj, inc, out = tls_memory_connect(a.port)
        s = raw
    else:
        s = socket.create_connection(("127.0.0.1", a.port), timeout=5)
        if a.mode == "half":
            hello = client_hello()
            s.sendall(hello[:len(hello) // 2])
    if a.mode == "trickle":
        # a ClientHello one byte every 0.1 s: activity must not move the handshake deadline
        hello = client_hello()
        closed = False
        r = cc.Reader(s)
        for i in range(len(hello)):
            try:
                s.sendall(hello[i:i + 1])
            except OSError:
                closed = True
                break
            if r.closed_within(0.1):
                closed = True
                break
            if time.time() - t0 > a.max + 1:
                break
        dt = time.time() - t0
        s.close()
        check(closed and a.min <= dt <= a.max,
              "TLS trickle: closed after %.2fs, %d of %d ClientHello bytes sent (want %.1f..%.1f)"
              % (dt, i, len(hello), a.min, a.max))
        return
    r = cc.Reader(s)
    closed = r.closed_within(a.max + 1)
    dt = time.time() - t0
    s.close()
    check(closed and a.min <= dt <= a.max,
          "TLS %s: closed after %.2fs (want %.1f..%.1f)" % (a.mode, dt, a.min, a.max))


def cmd_maxconn(a):
    socks = []
    for i in range(a.limit + a.extra):
        socks.append(socket.create_connection(("127.0.0.1", a.port), timeout=5))
        time.sleep(0.01)
    last = socks[-1]
    last.sendall(b"GET /echo/last HTTP/1.1\r\n" + H + b"\r\n")
    last.settimeout(a.wait)
    try:
        d = last.recv(100)
        check(False, "maxconn: request on connection %d answered while %d are open: %r"
              % (len(socks), a.limit, d[:40]))
    except socket.timeout:
        check(True, "maxconn: request on connection %d not answered for %.1fs while %d are open"
              % (len(socks), a.wait, a.limit))
    for s in socks[:a.release]:
        s.close()
    t0 = time.time()
    try:
        last.settimeout(5)
        st, h, body = cc.Reader(last).response()
        check(st == 200, "maxconn: answered %d, %.2fs after %d connections closed (not lost)"
              % (st, time.time() - t0, a.release))
    except (EOFError, OSError) as e:
        check(False, "maxconn: request lost after the release: %s" % e)
    for s in socks[a.release:]:
        s.close()


def cmd_perclient(a):
    socks = [socket.create_connection(("127.0.0.1", a.port), timeout=5) for _ in range(a.limit)]
    time.sleep(0.2)
    extra = socket.create_connection(("127.0.0.1", a.port), timeout=5)
    t0 = time.time()
    closed = cc.Reader(extra).closed_within(2)
    dt = time.time() - t0
    check(closed and dt < 1.0, "perclient: connection %d closed at once (%.3fs)"
          % (a.limit + 1, dt))
    extra.close()
    # the ones within the limit are served
    socks[1].sendall(b"GET /echo/within HTTP/1.1\r\n" + H + b"\r\n")
    socks[1].settimeout(5)
    st, h, body = cc.Reader(socks[1]).response()
    check(st == 200, "perclient: connection 2 of %d served: %d" % (a.limit, st))
    socks[0].close()
    time.sleep(0.3)
    s = socket.create_connection(("127.0.0.1", a.port), timeout=5)
    s.sendall(b"GET /echo/after-close HTTP/1.1\r\n" + H + b"\r\n")
    s.settimeout(5)
    try:
        st, h, body = cc.Reader(s).response()
        check(st == 200, "perclient: after closing one, a new connection is served: %d" % st)
    except (EOFError, OSError) as e:
        check(False, "perclient: new connection after closing one refused: %s" % e)
    s.close()
    for x in socks[1:]:
        x.close()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("cmd")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--tls", action="store_true")
    ap.add_argument("--set", action="append", choices=sorted(TABLES))
    ap.add_argument("--case", action="append")
    ap.add_argument("--good-path", default="/owa/good")
    ap.add_argument("--no-good", action="store_true")
    ap.add_argument("--warm-table", action="store_true")
    ap.add_argument("--max-seconds", type=float, default=0)
    ap.add_argument("--path", default="/owa/c")
    ap.add_argument("--expect", type=int, default=2)
    ap.add_argument("--want-status", type=int, default=0)
    ap.add_argument("--policy", default="strict")
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--want", type=int, default=200)
    ap.add_argument("--origin-log")
    ap.add_argument("--auth", action="store_true")
    ap.add_argument("--scheme", default="NTLM")
    ap.add_argument("--close-notify", action="store_true")
    ap.add_argument("--chunked", action="store_true")
    ap.add_argument("--slow", action="store_true")
    ap.add_argument("--get", action="store_true")
    ap.add_argument("--warm", action="store_true")
    ap.add_argument("--kind", default="size")
    ap.add_argument("--delay", type=float, default=0.5)
    ap.add_argument("--open-path")
    ap.add_argument("--attacks-only", action="store_true")
    ap.add_argument("--interval", type=float, default=0.5)
    ap.add_argument("--min", type=float, default=0)
    ap.add_argument("--max", type=float, default=5)
    ap.add_argument("--open-at", type=float, default=2.5)
    ap.add_argument("--mode", default="none")
    ap.add_argument("--limit", type=int, default=20)
    ap.add_argument("--extra", type=int, default=5)
    ap.add_argument("--release", type=int, default=10)
    ap.add_argument("--wait", type=float, default=1.5)
    a = ap.parse_args()
    fn = globals().get("cmd_" + a.cmd.replace("-", "_"))
    if fn is None:
        print("unknown subcommand %s" % a.cmd)
        return 2
    if a.cmd == "table" and not a.set:
        ap.error("table needs --set")
    try:
        fn(a)
    except (EOFError, OSError, ssl.SSLError) as e:
        check(False, "%s: connection failed: %s" % (a.cmd, str(e) or type(e).__name__))
    if cc.FAILS:
        print("%s: %d check(s) failed" % (a.cmd, len(cc.FAILS)))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
