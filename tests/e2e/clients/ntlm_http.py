#!/usr/bin/python3
"""One or more requests on ONE connection, authenticated with NTLM (python3-ntlm-auth) under the
NTLM or Negotiate word, or Basic, or nothing. For exshim's end-to-end tests.

  ntlm_http.py --host H --port P [--tls] [--sni NAME] --path /ews/exchange.asmx
               [--auth ntlm|negotiate-ntlm|basic|none] [--user 'LAB\\alice' --password PW]
               [--compat 0..5] [--no-cbt] [--cbt-cert PEM] [--tamper mic|negotiate]
               [--then N] [--new-conn] [--expect STATUS[,STATUS...]] [--show-headers]

--then N sends N more requests without Authorization on the same connection (connection-bound
auth); --new-conn then sends one more on a fresh connection. Prints one line per request:
"request N conn=C status=S" and, with --show-headers, the response headers. Exit status 0 when
the statuses equal --expect (comma-separated, one per request printed), 1 otherwise.
"""

import argparse
import sys

import labclient as lc


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--tls", action="store_true")
    ap.add_argument("--sni")
    ap.add_argument("--path", default="/ews/exchange.asmx")
    ap.add_argument("--method", default="GET")
    ap.add_argument("--auth", default="ntlm", choices=["ntlm", "negotiate-ntlm", "basic", "none"])
    ap.add_argument("--user", default="LAB\\alice")
    ap.add_argument("--password", default="Passw0rd!")
    ap.add_argument("--compat", type=int, default=3)
    ap.add_argument("--no-cbt", action="store_true")
    ap.add_argument("--tamper", choices=["mic", "negotiate"])
    ap.add_argument("--cbt-cert", help="compute the channel binding from this PEM certificate")
    ap.add_argument("--then", type=int, default=0)
    ap.add_argument("--new-conn", action="store_true")
    ap.add_argument("--expect")
    ap.add_argument("--show-headers", action="store_true")
    a = ap.parse_args()

    statuses = []

    def show(n, cid, r):
        statuses.append(r.status)
        print("request %d conn=%d status=%d" % (n, cid, r.status))
        if a.show_headers:
            for k, v in r.headers:
                print("  %s: %s" % (k, v))

    try:
        c = lc.Conn(a.host, a.port, a.tls, a.sni)
        if a.auth in ("ntlm", "negotiate-ntlm"):
            auth = lc.NtlmAuth(a.user, a.password,
                               "Negotiate" if a.auth == "negotiate-ntlm" else "NTLM",
                               a.compat, not a.no_cbt, a.tamper, a.cbt_cert)
        elif a.auth == "basic":
            auth = ("basic", a.user, a.password)
        else:
            auth = None
        r = lc.authed_request(c, a.method, a.path, [], b"", auth)
        if a.show_headers and isinstance(auth, lc.NtlmAuth) and auth.challenge_response:
            print("challenge status=%d" % auth.challenge_response.status)
            for k, v in auth.challenge_response.headers:
                print("  %s: %s" % (k, v if k.lower() != "www-authenticate" else v[:24]))
        show(1, 1, r)
        for i in range(a.then):
            show(2 + i, 1, c.request(a.method, a.path))
        c.close()
        if a.new_conn:
            c2 = lc.Conn(a.host, a.port, a.tls, a.sni)
            show(2 + a.then, 2, c2.request(a.method, a.path))
            c2.close()
    except (lc.HttpError, OSError) as e:
        print("error: %s" % e)
        st = getattr(e, "status", None)
        if st is None:
            return 1
        # the handshake ended early (scheme not offered, 403, 440...): that status is the answer
        print("request %d conn=1 status=%d" % (len(statuses) + 1, st))
        statuses.append(st)
    if a.expect is not None:
        want = [int(x) for x in a.expect.split(",")]
        if want != statuses:
            print("expected %s, got %s" % (want, statuses))
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
