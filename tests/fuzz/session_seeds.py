#!/usr/bin/env python3
"""Writes the seed corpus of fuzz_session (tests/fuzz/corpus/session/) in its script format.

A script is a list of segments; each starts with a header byte: bit 7 = 0 client / 1 backend,
bits 0..6 = length (127 means 127 + 16 * next byte). Length 0 is an action on that side whose
byte follows: 0 = shutdown(SHUT_WR), n > 0 = stop reading for n loop turns.
Run from the top of the tree: python3 tests/fuzz/session_seeds.py
"""
import base64
import os
import struct

OUT = "tests/fuzz/corpus/session"


def script(*steps):
    out = b""
    for who, data in steps:
        bit = 0x80 if who == "b" else 0
        if isinstance(data, int):
            out += bytes([bit, data])
            continue
        while data:
            if len(data) >= 127:
                # long form: 127 + 16 * k bytes, the largest that fits (k <= 255)
                k = min((len(data) - 127) // 16, 255)
                n = 127 + 16 * k
                out += bytes([bit | 127, k]) + data[:n]
            else:
                n = len(data)
                out += bytes([bit | n]) + data
            data = data[n:]
    return out


def ntlm_type1():
    fields = struct.pack("<HHI", 0, 0, 40) * 2
    return b"NTLMSSP\0" + struct.pack("<II", 1, 0xA2088207) + fields + bytes([10, 0, 0x61, 0x4A, 0, 0, 0, 15])


def ntlm_type2():
    return (b"NTLMSSP\0" + struct.pack("<I", 2) + struct.pack("<HHI", 0, 0, 56)
            + struct.pack("<I", 0xA2898205) + bytes(range(1, 9)) + bytes(8)
            + struct.pack("<HHI", 0, 0, 56) + bytes([10, 0, 0x61, 0x4A, 0, 0, 0, 15]))


T1 = base64.b64encode(ntlm_type1())
T2 = base64.b64encode(ntlm_type2())
BIG = bytes((i * 7) & 0xFF for i in range(12000))

SEEDS = {
    "get_200": script(
        ("c", b"GET /owa/ HTTP/1.1\r\nHost: mail\r\n\r\n"),
        ("b", b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello")),
    "post_chunked": script(
        ("c", b"POST /ews/Exchange.asmx HTTP/1.1\r\nHost: mail\r\nTransfer-Encoding: chunked\r\n\r\n"
              b"5\r\nhello\r\n"),
        ("c", b"3;x=y\r\nabc\r\n0\r\nX-T: 1\r\n\r\n"),
        ("b", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n")),
    "ntlm_negotiate_401": script(
        ("c", b"POST /owa/auth HTTP/1.1\r\nHost: mail\r\nAuthorization: NTLM " + T1
              + b"\r\nContent-Length: 0\r\n\r\n"),
        ("b", b"HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: NTLM " + T2
              + b"\r\nContent-Length: 0\r\n\r\n")),
    "mapi_bridge_401": script(
        ("c", b"POST /mapi/emsmdb/ HTTP/1.1\r\nHost: mail\r\nAuthorization: NTLM " + T1
              + b"\r\nContent-Type: application/mapi-http\r\nContent-Length: 1\r\n\r\nx"),
        ("b", b"HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Negotiate\r\n"
              b"WWW-Authenticate: NTLM\r\nContent-Length: 0\r\n\r\n")),
    "challenge_rewrite": script(
        ("c", b"GET /owa/ HTTP/1.1\r\nHost: mail\r\n\r\n"),
        ("b", b"HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Negotiate\r\nWWW-Authenticate: NTLM\r\n"
              b"WWW-Authenticate: Basic realm=\"x\"\r\nContent-Length: 0\r\n\r\n")),
    "keepalive_two": script(
        ("c", b"GET /a HTTP/1.1\r\nHost: m\r\n\r\n"),
        ("b", b"HTTP/1.1 204 No Content\r\n\r\n"),
        ("c", b"HEAD /b HTTP/1.1\r\nHost: m\r\n\r\n"),
        ("b", b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n")),
    "rpc_in_data": script(
        ("c", b"RPC_IN_DATA /rpc/rpcproxy.dll?srv:6001 HTTP/1.1\r\nHost: mail\r\n"
              b"Content-Length: 1073741824\r\n\r\n" + b"\x05\x00\x14\x03" + bytes(60))),
    "expect_100": script(
        ("c", b"POST /ews/ HTTP/1.1\r\nHost: m\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n"),
        ("b", b"HTTP/1.1 100 Continue\r\n\r\n"),
        ("c", b"abc"),
        ("b", b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nbody until close"),
        ("b", 0)),
    "bad_request": script(
        ("c", b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n")),
    "half_close": script(
        ("c", b"GET /owa/ HTTP/1.1\r\nHost: mail\r\n\r\n"),
        ("c", 0),
        ("b", b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")),
    "slow_client": script(
        ("c", b"GET /owa/big HTTP/1.1\r\nHost: mail\r\n\r\n"),
        ("c", 40),
        ("b", b"HTTP/1.1 200 OK\r\nContent-Length: 12000\r\n\r\n" + BIG)),
    "slow_backend": script(
        ("c", b"POST /rpc/rpcproxy.dll HTTP/1.1\r\nHost: mail\r\nContent-Length: 12000\r\n\r\n"),
        ("b", 12),
        ("c", BIG),
        ("b", b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")),
}

if __name__ == "__main__":
    os.makedirs(OUT, exist_ok=True)
    for name, data in SEEDS.items():
        with open(os.path.join(OUT, name), "wb") as f:
            f.write(data)
