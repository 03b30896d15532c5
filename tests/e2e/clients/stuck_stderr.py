#!/usr/bin/python3
"""Runs a command whose stderr is a pipe this process does not read until told to.

  stuck_stderr.py --pid-file F --trigger F --out F -- CMD ARGS...

Starts CMD with stdout on /dev/null and stderr on a pipe, writes CMD's pid to --pid-file,
then waits (without reading: the pipe fills and stays full) until the --trigger file exists;
from then on copies everything from the pipe to --out until CMD closes it. Exits with CMD's
status (bounded: 300 s).
"""

import argparse
import os
import subprocess
import sys
import time


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--pid-file", required=True)
    ap.add_argument("--trigger", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("cmd", nargs=argparse.REMAINDER)
    a = ap.parse_args()
    cmd = a.cmd[1:] if a.cmd and a.cmd[0] == "--" else a.cmd
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    with open(a.pid_file + ".tmp", "w") as f:
        f.write("%d\n" % p.pid)
    os.rename(a.pid_file + ".tmp", a.pid_file)
    end = time.monotonic() + 300
    while not os.path.exists(a.trigger) and time.monotonic() < end and p.poll() is None:
        time.sleep(0.05)
    with open(a.out, "wb") as out:
        while time.monotonic() < end:
            data = os.read(p.stderr.fileno(), 65536)
            if not data:
                break
            out.write(data)
            out.flush()
    return p.wait(timeout=max(1, end - time.monotonic()))


if __name__ == "__main__":
    sys.exit(main())
