#!/usr/bin/python3
"""A stand-in for systemd's notification socket: binds an AF_UNIX SOCK_DGRAM socket at PATH
and appends every datagram it receives to LOG as one line, its NAME=value fields joined by
" | ", with the sender's pid (SO_PASSCRED) in front. Runs until killed or --seconds pass.

  notify_sink.py PATH LOG [--seconds S]
"""

import argparse
import os
import socket
import struct
import time


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("path")
    ap.add_argument("log")
    ap.add_argument("--seconds", type=float, default=120)
    a = ap.parse_args()
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
    s.bind(a.path)
    s.settimeout(0.5)
    end = time.monotonic() + a.seconds
    with open(a.log, "a", buffering=1) as out:
        out.write("listening\n")
        while time.monotonic() < end:
            try:
                data, anc, _flags, _addr = s.recvmsg(4096, socket.CMSG_SPACE(12))
            except socket.timeout:
                continue
            pid = 0
            for level, kind, cdata in anc:
                if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
                    pid = struct.unpack("iII", cdata[:12])[0]
            fields = data.decode("utf-8", "replace").strip("\n").split("\n")
            out.write("pid=%d %s\n" % (pid, " | ".join(fields)))
    os.unlink(a.path)


if __name__ == "__main__":
    main()
