#!/usr/bin/python3
"""RPC over HTTP v2 test client (MS-RPCH), the way Outlook Anywhere opens a virtual connection:

  1. OUT channel: RPC_OUT_DATA, Content-Length 76, body CONN/A1; expects "200 Success" with a
     large Content-Length, then CONN/A3.
  2. IN channel: RPC_IN_DATA, Content-Length 1073741824, body starting with CONN/B1.
  3. CONN/C2 on the OUT channel.
  4. N DCE/RPC request PDUs on IN, each expected back, in order and byte for byte, on OUT
     (exshim-lab echoes them), with the round trip of each measured.
Authentication per channel: NTLM (python3-ntlm-auth, handshake legs with Content-Length 0),
NTLM under the Negotiate word, Basic, or none. Works against the lab or any proxy in front of it.

  rpch.py --host H --port P [--tls] [--sni NAME] [--auth ntlm|negotiate-ntlm|basic|none]
          [--user 'LAB\\alice'] [--password PW] [--pdus N] [--size BYTES] [--hold SECONDS]
          [--in-ping SECONDS]
          [--echo] [--expect-fail]

OUT_R1/A2 from the server is followed: a successor RPC_OUT_DATA (CL 120) sends OUT_R1/A3, must
get its 200 before sending the last 24 bytes (OUT_R1/A11), and takes over once the old OUT
channel has ended. --recycle-in-after K replaces the IN channel (IN_R1/A1) after K PDUs.
--hold S waits S seconds between the handshake and the PDUs, counting RTS pings on OUT (a
channel cut by an idle timeout shows up here); --in-ping T sends the client's own RTS Ping on
the IN channel every T seconds meanwhile, as Outlook does. --echo first sends an echo request
(RPC_IN_DATA, CL 4, F8 E8 18 08) on its own connection. Exit 0 on success; with --expect-fail,
exit 0 when the virtual connection could not be completed or was cut.
"""

import argparse
import os
import struct
import sys
import time

import labclient as lc

RTS = 0x14


def rts_header(length, flags, ncmds):
    return struct.pack("<BBBBIHHIHH", 5, 0, RTS, 3, 0x10, length, 0, 0, flags, ncmds)


def conn_a1(vc, out_cookie):
    return (rts_header(76, 0, 4) + struct.pack("<II", 6, 1) + struct.pack("<I", 3) + vc +
            struct.pack("<I", 3) + out_cookie + struct.pack("<II", 0, 0x10000))


def conn_b1(vc, in_cookie, assoc):
    return (rts_header(104, 0, 6) + struct.pack("<II", 6, 1) + struct.pack("<I", 3) + vc +
            struct.pack("<I", 3) + in_cookie + struct.pack("<II", 4, 0x40000000) +
            struct.pack("<II", 5, 300000) + struct.pack("<I", 0xC) + assoc)


def request_pdu(seq, size):
    """A DCE/RPC request PDU (ptype 0) carrying seq and filler; frag_length multiple of 4."""
    stub = struct.pack("<I", seq) + os.urandom(max(0, size - 28))
    length = 24 + len(stub)
    length += (-length) % 4
    stub += b"\0" * (length - 24 - len(stub))
    hdr = struct.pack("<BBBBIHHI", 5, 0, 0, 3, 0x10, length, 0, seq)
    return hdr + struct.pack("<IHH", len(stub), 0, 0) + stub


def read_pdu(conn, stats):
    """Next PDU from the OUT channel; RTS pings are counted and skipped."""
    while True:
        hdr = conn.recv_exact(16)
        flen = struct.unpack_from("<H", hdr, 8)[0]
        if hdr[0] != 5 or flen < 16:
            raise lc.HttpError("bad PDU on OUT channel: %s" % hdr.hex())
        pdu = hdr + conn.recv_exact(flen - 16)
        if pdu[2] == RTS and flen == 20 and struct.unpack_from("<H", pdu, 16)[0] == 1:
            stats["pings"] += 1
            continue
        return pdu


def out_r1_a3(vc, pred, succ):
    return (rts_header(96, 4, 5) + struct.pack("<II", 6, 1) + struct.pack("<I", 3) + vc +
            struct.pack("<I", 3) + pred + struct.pack("<I", 3) + succ +
            struct.pack("<II", 0, 0x10000))


def out_r1_a11():
    return rts_header(24, 0, 1) + struct.pack("<I", 0xA)


def in_r1_a1(vc, pred, succ):
    return (rts_header(88, 4, 4) + struct.pack("<II", 6, 1) + struct.pack("<I", 3) + vc +
            struct.pack("<I", 3) + pred + struct.pack("<I", 3) + succ)


def recycle_in(a, vc, state):
    """A successor IN channel (IN_R1/A1) takes over; later PDUs go on it."""
    succ = os.urandom(16)
    new = open_channel(a, "RPC_IN_DATA", 1073741824, in_r1_a1(vc, state["ic"], succ))
    # the predecessor stays open until the server has switched (it closes it then): closing it
    # first would end the virtual connection
    state.setdefault("retired", []).append(state["inc"])
    state["inc"], state["ic"] = new, succ
    state["recycled_in"] += 1


def recycle_out(a, vc, state, stats):
    """Answer OUT_R1/A2: a successor OUT channel with Content-Length 120. Its 200 must come
    after the first 96 bytes (OUT_R1/A3), before the last 24 (OUT_R1/A11) are sent: a proxy
    that waits for the whole body deadlocks here. The old OUT channel is read to its end."""
    succ = os.urandom(16)
    new = open_channel(a, "RPC_OUT_DATA", 120, out_r1_a3(vc, state["oc"], succ))
    new.settimeout(5)
    r = new.read_head()
    if r.status != 200:
        raise lc.HttpError("successor OUT channel: status %d" % r.status)
    new.settimeout(a.timeout)
    new.send(out_r1_a11())
    old = state["out"]
    leftovers = []
    try:
        while True:
            leftovers.append(read_pdu(old, stats))
    except (lc.HttpError, OSError):
        pass  # the old channel ends
    old.close()
    state["out"], state["oc"] = new, succ
    state["recycled_out"] += 1
    return leftovers


def next_echo(a, vc, state, stats):
    """The next echoed PDU, following OUT recycling requests on the way."""
    q = state.setdefault("queue", [])
    while not q:
        pdu = read_pdu(state["out"], stats)
        if pdu[2] == RTS and struct.unpack_from("<HH", pdu, 16) == (4, 1):
            q.extend(recycle_out(a, vc, state, stats))
            continue
        q.append(pdu)
    return q.pop(0)


def make_auth(a):
    if a.auth == "basic":
        return ("basic", a.user, a.password)
    if a.auth in ("ntlm", "negotiate-ntlm"):
        return lc.NtlmAuth(a.user, a.password, "NTLM" if a.auth == "ntlm" else "Negotiate")
    return None


def open_channel(a, method, content_length, body):
    c = lc.Conn(a.host, a.port, a.tls, a.sni, timeout=a.timeout)
    headers = [("Accept", "application/rpc"), ("User-Agent", "MSRPC"), ("Cache-Control", "no-cache"),
               ("Connection", "Keep-Alive"), ("Pragma", "No-cache"), ("Protocol", "1.0")]
    auth = make_auth(a)
    if isinstance(auth, lc.NtlmAuth):
        auth.handshake(c, method, a.path, headers, content_length)
    else:
        if auth is not None:
            headers.append(("Authorization", lc.basic_header(auth[1], auth[2])))
        c.send_head(method, a.path, headers, content_length)
    c.send(body)
    return c


def run(a):
    stats = {"pings": 0}
    if a.echo:
        c = lc.Conn(a.host, a.port, a.tls, a.sni, timeout=a.timeout)
        r = lc.authed_request(c, "RPC_IN_DATA", a.path, [("Accept", "application/rpc")],
                              bytes.fromhex("f8e81808"), make_auth(a))
        if r.status != 200 or len(r.body) != 20 or r.body[2] != RTS or \
                struct.unpack_from("<H", r.body, 16)[0] != 0x40:
            raise lc.HttpError("echo: status %d body %s" % (r.status, r.body.hex()))
        print("echo ok")
        c.close()

    vc, oc, ic, ag = (os.urandom(16) for _ in range(4))
    out = open_channel(a, "RPC_OUT_DATA", 76, conn_a1(vc, oc))
    r = out.read_head()
    if r.status != 200:
        out.read_body(r)
        raise lc.HttpError("OUT channel: status %d %s" % (r.status, r.reason))
    cl = int(r.get("Content-Length") or 0)
    if cl < 128 * 1024 or r.get("Transfer-Encoding"):
        raise lc.HttpError("OUT channel: unexpected framing CL=%s TE=%s" %
                           (r.get("Content-Length"), r.get("Transfer-Encoding")))
    a3 = read_pdu(out, stats)
    if len(a3) != 28 or struct.unpack_from("<HH", a3, 16) != (0, 1):
        raise lc.HttpError("expected CONN/A3, got %s" % a3.hex())
    timeout_ms = struct.unpack_from("<I", a3, 24)[0]

    inc = open_channel(a, "RPC_IN_DATA", 1073741824, conn_b1(vc, ic, ag))
    c2 = read_pdu(out, stats)
    if len(c2) != 44 or struct.unpack_from("<HH", c2, 16) != (0, 3):
        raise lc.HttpError("expected CONN/C2, got %s" % c2.hex())
    print("handshake ok connection_timeout_ms=%d" % timeout_ms)

    if a.hold > 0:
        end = time.monotonic() + a.hold
        out.settimeout(0.2)
        next_ping = time.monotonic() + a.in_ping if a.in_ping > 0 else None
        while time.monotonic() < end:
            if next_ping is not None and time.monotonic() >= next_ping:
                inc.send(rts_header(20, 1, 0))  # client keep-alive: RTS Ping on IN
                next_ping += a.in_ping
            try:
                out._fill()
                while len(out.buf) >= 20:
                    pdu = read_pdu(out, stats)
                    raise lc.HttpError("unexpected PDU while holding: %s" % pdu.hex())
            except (TimeoutError, OSError) as e:
                if isinstance(e, lc.HttpError):
                    raise
                if not isinstance(e, TimeoutError) and "timed out" not in str(e):
                    raise lc.HttpError("OUT channel cut while idle: %s" % e)
        out.settimeout(a.timeout)
        print("held %.1fs pings=%d" % (a.hold, stats["pings"]))

    rtts = []
    state = {"out": out, "oc": oc, "inc": inc, "ic": ic, "recycled_out": 0, "recycled_in": 0}
    for seq in range(1, a.pdus + 1):
        if a.recycle_in_after and seq == a.recycle_in_after + 1:
            recycle_in(a, vc, state)
        pdu = request_pdu(seq, a.size)
        t0 = time.monotonic()
        state["inc"].send(pdu)
        back = next_echo(a, vc, state, stats)
        rtts.append((time.monotonic() - t0) * 1000)
        if back != pdu:
            raise lc.HttpError("PDU %d came back different (%d bytes vs %d)" %
                               (seq, len(back), len(pdu)))
    if rtts:
        print("pdus=%d ok rtt_ms min=%.2f avg=%.2f max=%.2f pings=%d" %
              (len(rtts), min(rtts), sum(rtts) / len(rtts), max(rtts), stats["pings"]))
    if state["recycled_out"] or state["recycled_in"]:
        print("recycled out=%d in=%d" % (state["recycled_out"], state["recycled_in"]))
    if a.expect_recycle and not state["recycled_out"]:
        raise lc.HttpError("the server never asked for OUT recycling")
    inc, out = state["inc"], state["out"]
    for c in state.get("retired", []):
        c.close()
    inc.close()
    out.close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--tls", action="store_true")
    ap.add_argument("--sni")
    ap.add_argument("--path", default="/rpc/rpcproxy.dll?exlab01.lab.test:6001")
    ap.add_argument("--auth", default="ntlm", choices=["ntlm", "negotiate-ntlm", "basic", "none"])
    ap.add_argument("--user", default="LAB\\alice")
    ap.add_argument("--password", default="Passw0rd!")
    ap.add_argument("--pdus", type=int, default=10)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--hold", type=float, default=0)
    ap.add_argument("--in-ping", type=float, default=0,
                    help="while holding, send an RTS Ping on IN every so many seconds")
    ap.add_argument("--echo", action="store_true")
    ap.add_argument("--recycle-in-after", type=int, default=0,
                    help="after this many PDUs, replace the IN channel (IN_R1/A1)")
    ap.add_argument("--expect-recycle", action="store_true",
                    help="fail unless the server asked for OUT recycling (OUT_R1/A2)")
    ap.add_argument("--timeout", type=float, default=15)
    ap.add_argument("--expect-fail", action="store_true")
    a = ap.parse_args()
    try:
        run(a)
    except (lc.HttpError, OSError) as e:
        print("rpch failed: %s" % e)
        return 0 if a.expect_fail else 1
    print("rpch ok")
    return 1 if a.expect_fail else 0


if __name__ == "__main__":
    sys.exit(main())
