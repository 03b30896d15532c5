"""Small HTTP/1.1 client pieces for exshim's end-to-end tests (Debian's /usr/bin/python3).

One raw socket per Conn (plain or TLS), so a test controls exactly which requests share a
connection: NTLM and Negotiate authenticate the connection, not the request. NTLM messages come
from python3-ntlm-auth's NtlmContext (a Windows-like layout with MIC and, over TLS, channel
bindings); Basic is built here.

ntlm-auth needs MD4, which OpenSSL 3 keeps in its legacy provider: when hashlib cannot do MD4,
this module writes an OpenSSL config enabling the default and legacy providers and re-executes
the interpreter with OPENSSL_CONF pointing at it.
"""

import base64
import hashlib
import os
import socket
import ssl
import sys
import tempfile
import time


def _ensure_md4():
    try:
        hashlib.new("md4")
        return
    except ValueError:
        pass
    if os.environ.get("LABCLIENT_REEXEC"):
        sys.exit("labclient: MD4 unavailable even with the legacy provider")
    fd, path = tempfile.mkstemp(prefix="labclient-openssl-", suffix=".cnf")
    with os.fdopen(fd, "w") as f:
        f.write("openssl_conf = openssl_init\n[openssl_init]\nproviders = provider_sect\n"
                "[provider_sect]\ndefault = default_sect\nlegacy = legacy_sect\n"
                "[default_sect]\nactivate = 1\n[legacy_sect]\nactivate = 1\n")
    env = dict(os.environ, OPENSSL_CONF=path, LABCLIENT_REEXEC="1")
    os.execve(sys.executable, [sys.executable] + sys.argv, env)


_ensure_md4()

from ntlm_auth.gss_channel_bindings import GssChannelBindingsStruct  # noqa: E402
from ntlm_auth.ntlm import NtlmContext  # noqa: E402


class HttpError(Exception):
    def __init__(self, msg, status=None):
        Exception.__init__(self, msg)
        self.status = status  # the HTTP status that ended the exchange, when there was one


class Response:
    def __init__(self, status, reason, headers, body=b""):
        self.status = status
        self.reason = reason
        self.headers = headers  # list of (name, value) as received
        self.body = body

    def get(self, name):
        for k, v in self.headers:
            if k.lower() == name.lower():
                return v
        return None

    def get_all(self, name):
        return [v for k, v in self.headers if k.lower() == name.lower()]


class Conn:
    def __init__(self, host, port, tls=False, server_name=None, timeout=15.0):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.tls = tls
        if tls:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            ctx.set_alpn_protocols(["http/1.1"])
            self.sock = ctx.wrap_socket(self.sock, server_hostname=server_name or host)
        self.host_header = "%s:%d" % (server_name or host, port)
        self.buf = b""

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def settimeout(self, t):
        self.sock.settimeout(t)

    # -- TLS channel binding (RFC 5929 tls-server-end-point, SHA-256 certificates) --
    def cert_hash(self):
        der = self.sock.getpeercert(binary_form=True)
        return hashlib.sha256(der).digest()

    def channel_bindings(self):
        cb = GssChannelBindingsStruct()
        cb[cb.APPLICATION_DATA] = b"tls-server-end-point:" + self.cert_hash()
        return cb

    # -- writing --
    def send(self, data):
        self.sock.sendall(data)

    def send_head(self, method, path, headers, content_length=None):
        lines = ["%s %s HTTP/1.1" % (method, path), "Host: %s" % self.host_header]
        for k, v in headers:
            lines.append("%s: %s" % (k, v))
        if content_length is not None:
            lines.append("Content-Length: %d" % content_length)
        self.send(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))

    # -- reading --
    def _fill(self):
        data = self.sock.recv(65536)
        if not data:
            raise HttpError("connection closed by peer")
        self.buf += data

    def recv_exact(self, n):
        while len(self.buf) < n:
            self._fill()
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def recv_line(self):
        while b"\r\n" not in self.buf:
            if len(self.buf) > 1 << 20:
                raise HttpError("line too long")
            self._fill()
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def read_head(self):
        while b"\r\n\r\n" not in self.buf:
            if len(self.buf) > 1 << 20:
                raise HttpError("head too long")
            self._fill()
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/1."):
            raise HttpError("bad status line %r" % lines[0])
        headers = []
        for ln in lines[1:]:
            k, _, v = ln.partition(":")
            headers.append((k, v.strip()))
        return Response(int(parts[1]), parts[2] if len(parts) > 2 else "", headers)

    def read_body(self, resp, method="GET"):
        te = (resp.get("Transfer-Encoding") or "").lower()
        if method == "HEAD" or resp.status in (204, 304) or 100 <= resp.status < 200:
            return resp
        if "chunked" in te:
            body = b""
            for chunk in self.iter_chunks():
                body += chunk
            resp.body = body
        else:
            resp.body = self.recv_exact(int(resp.get("Content-Length") or 0))
        return resp

    def iter_chunks(self):
        """Yields each chunk's payload as it arrives (for MAPI meta-tag timing)."""
        while True:
            size = int(self.recv_line().split(b";")[0], 16)
            if size == 0:
                while self.recv_line() != b"":
                    pass
                return
            data = self.recv_exact(size)
            self.recv_exact(2)
            yield data

    def request(self, method, path, headers=(), body=b""):
        self.send_head(method, path, list(headers), len(body))
        if body:
            self.send(body)
        resp = self.read_head()
        while resp.status == 100:
            resp = self.read_head()
        return self.read_body(resp, method)


def split_user(user):
    if "\\" in user:
        d, u = user.split("\\", 1)
        return d, u
    return "", user


def basic_header(user, password):
    return "Basic " + base64.b64encode(("%s:%s" % (user, password)).encode()).decode()


class NtlmAuth:
    """Drives one NTLM handshake on one connection, under the NTLM or the Negotiate word."""

    def __init__(self, user, password, scheme="NTLM", compat=3, cbt=True, tamper=None,
                 cbt_cert=None):
        self.domain, self.user = split_user(user)
        self.password = password
        self.scheme = scheme
        self.compat = compat
        self.cbt = cbt
        self.tamper = tamper
        self.cbt_cert = cbt_cert  # PEM file: bind to this certificate instead of the peer's
        self.challenge_response = None

    def handshake(self, conn, method, path, headers, content_length):
        """Leg 1 (NEGOTIATE, CL 0) and its 401; then sends the head of the final request with
        the AUTHENTICATE and content_length. Returns without reading the final response."""
        cb = None
        if self.cbt_cert:
            # the client saw another certificate (a proxy's): TLS offload or re-encryption
            with open(self.cbt_cert) as f:
                der = ssl.PEM_cert_to_DER_cert(f.read())
            cb = GssChannelBindingsStruct()
            cb[cb.APPLICATION_DATA] = b"tls-server-end-point:" + hashlib.sha256(der).digest()
        elif conn.tls and self.cbt:
            cb = conn.channel_bindings()
        ctx = NtlmContext(self.user, self.password, self.domain or None, "WORKSTATION",
                          cbt_data=cb, ntlm_compatibility=self.compat)
        neg = ctx.step()
        sent_neg = neg
        if self.tamper == "negotiate":
            # what a meddling proxy would do: change a byte the server sees, not the client's MIC
            b = bytearray(neg)
            b[-1] ^= 0x01
            sent_neg = bytes(b)
        conn.send_head(method, path, list(headers) + [
            ("Authorization", "%s %s" % (self.scheme, base64.b64encode(sent_neg).decode()))], 0)
        r = conn.read_head()
        conn.read_body(r, method)
        self.challenge_response = r
        if r.status != 401:
            raise HttpError("leg 1: expected 401, got %d" % r.status, r.status)
        chal = None
        for v in r.get_all("WWW-Authenticate"):
            w, _, tok = v.partition(" ")
            if w.lower() == self.scheme.lower() and tok:
                chal = base64.b64decode(tok)
        if chal is None:
            raise HttpError("leg 1: no %s challenge in the 401 (offers: %s)" %
                            (self.scheme, r.get_all("WWW-Authenticate")), 401)
        auth = ctx.step(chal)
        if self.tamper == "mic":
            b = bytearray(auth)
            b[72] ^= 0xff
            auth = bytes(b)
        conn.send_head(method, path, list(headers) + [
            ("Authorization", "%s %s" % (self.scheme, base64.b64encode(auth).decode()))],
            content_length)


def authed_request(conn, method, path, headers, body, auth):
    """One request with authentication: auth is None, ("basic", user, pw) or an NtlmAuth."""
    headers = list(headers)
    if auth is None:
        return conn.request(method, path, headers, body)
    if isinstance(auth, tuple):
        headers.append(("Authorization", basic_header(auth[1], auth[2])))
        return conn.request(method, path, headers, body)
    auth.handshake(conn, method, path, headers, len(body))
    if body:
        conn.send(body)
    r = conn.read_head()
    return conn.read_body(r, method)


def now():
    return time.monotonic()
