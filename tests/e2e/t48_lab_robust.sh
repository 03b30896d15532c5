#!/bin/bash
# exshim-lab facing bad input: malformed and oversized heads get HTTP.sys's 400 and a close,
# garbage and truncated authentication tokens get IIS's 401 (never a crash), a refused 1 GiB
# RPC_IN_DATA is answered and closed, and the lab keeps serving afterwards.
. "$(dirname "$0")/lib.sh"
. "$E2E_DIR/realm.sh"
need curl
lab_start lab default
"$PY" - "$LAB_PORT" >"$T/robust.out" 2>&1 <<'PYEOF' || fail "$(cat "$T/robust.out")"
import base64, os, socket, sys
port = int(sys.argv[1])

def exchange(raw, read_all=True):
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    data = b""
    try:
        s.sendall(raw)
        while True:
            d = s.recv(65536)
            if not d:
                break
            data += d
            if not read_all and b"\r\n\r\n" in data:
                break
    except socket.timeout:
        pass
    except ConnectionResetError:
        # the lab answered and closed while we were still sending: the answer may be lost
        data = data or b"HTTP/1.1 000 reset\r\n\r\n"
    s.close()
    return data

def status(data):
    return int(data.split(b" ", 2)[1]) if data.startswith(b"HTTP/1.") else 0

def check(name, got, want):
    print("%-48s %s" % (name, got))
    assert got == want, "%s: got %r want %r" % (name, got, want)

r = exchange(b"GET /ews/exchange.asmx HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n")
check("CL + TE (smuggling) -> 400", status(r), 400)
assert b"Server: Microsoft-HTTPAPI/2.0" in r
r = exchange(b"GET /ews/exchange.asmx HTTP/1.1\r\nHost: x\r\nX-Long: " + b"a" * 200000 + b"\r\n\r\n")
check("200 KB head -> 400 (or reset while sending)", status(r) in (400, 0), True)
r = exchange(b"GE\x01T / HTTP/1.1\r\nHost: x\r\n\r\n")
check("control byte in method -> 400", status(r), 400)
r = exchange(b"GET /ews/exchange.asmx HTTP/1.1\r\nHost: x\r\nFoo: bar\r\n baz\r\n\r\n")
check("obs-fold -> 400", status(r), 400)

def auth(word, tok, path=b"/ews/exchange.asmx", extra=b""):
    return exchange(b"GET " + path + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: " +
                    word + b" " + tok + b"\r\n" + extra + b"\r\n")

check("Negotiate, 60 KB of base64 garbage -> 401",
      status(auth(b"Negotiate", base64.b64encode(os.urandom(45000)))), 401)
check("NTLM, not base64 -> 401", status(auth(b"NTLM", b"%%%%")), 401)
check("NTLM, a type 3 without a type 1 -> 401",
      status(auth(b"NTLM", base64.b64encode(b"NTLMSSP\0\3\0\0\0" + b"\0" * 60))), 401)
for n in (8, 12, 15, 16, 31):
    check("NTLM, %d-byte NEGOTIATE -> 401" % n,
          status(auth(b"NTLM", base64.b64encode((b"NTLMSSP\0\1\0\0\0" + b"\xff" * 40)[:n]))), 401)
neg = b"NTLMSSP\0\1\0\0\0" + b"\x07\x82\x08\xa2" + b"\0" * 16
s = socket.create_connection(("127.0.0.1", port), timeout=10)
s.sendall(b"GET /ews/exchange.asmx HTTP/1.1\r\nHost: x\r\nAuthorization: NTLM " + base64.b64encode(neg) + b"\r\n\r\n")
d = s.recv(65536)
check("NTLM type 1 -> 401 with a challenge", status(d), 401)
for bad in (b"NTLMSSP\0\3\0\0\0" + b"\xff" * 52, b"NTLMSSP\0\3\0\0\0" + b"\0" * 200,
            b"NTLMSSP\0\3\0\0\0" + (b"\x10\0\x10\0\xf0\xff\xff\xff") * 7):
    s.sendall(b"GET /ews/exchange.asmx HTTP/1.1\r\nHost: x\r\nAuthorization: NTLM " + base64.b64encode(bad) + b"\r\n\r\n")
    d = s.recv(65536)
    check("malformed AUTHENTICATE -> 401", status(d), 401)
    # the next leg starts over on the same connection
    s.sendall(b"GET /ews/exchange.asmx HTTP/1.1\r\nHost: x\r\nAuthorization: NTLM " + base64.b64encode(neg) + b"\r\n\r\n")
    d = s.recv(65536)
s.close()
r = exchange(b"RPC_IN_DATA /rpc/rpcproxy.dll?x:6001 HTTP/1.1\r\nHost: x\r\nContent-Length: 1073741824\r\n"
             b"Authorization: Basic " + base64.b64encode(b"LAB\\alice:x") + b"\r\n\r\n" + b"\0" * 4096)
check("unauthenticated 1 GiB RPC_IN_DATA -> 401 and close", status(r) in (401, 0), True)
r = exchange(b"GET /nothing/here HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
check("unknown path -> 404", status(r), 404)
PYEOF
cat "$T/robust.out"
expect_code "still serving" 200 "http://127.0.0.1:$LAB_PORT/ews/exchange.asmx" --ntlm -u 'LAB\alice:Passw0rd!'
kill -0 "$LAB_PID" || fail "the lab died"
pass "bad heads 400, bad tokens 401, the lab keeps serving"
