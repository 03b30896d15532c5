#!/usr/bin/env python3
"""bench/measure.py: runs one client command (curl, wrk or idle-hold) against a proxy and
writes a report in the shape of exshim-bench --json, for bench/compare.

    measure.py KIND --proxy-pid PID --json OUT [--label L] [--bytes N] -- COMMAND...

KIND: bulk-dl | bulk-ul (curl; COMMAND prints "-w '%{http_code} %{size_download}
%{size_upload} %{time_total}'"), small (wrk --latency), idle (idle-hold --json FILE, given as
--client-json FILE).

The proxy is the process tree rooted at PID (the pid, its children and theirs, found by a
/proc scan): utime+stime summed over the tree before and after COMMAND (CPU of workers is
counted while they live, and the proxy is not stopped before the last sample), VmRSS summed
over the tree before COMMAND (baseline) and every 100 ms while it runs (peak).
"""
import json
import os
import re
import subprocess
import sys
import threading
import time

TICK = os.sysconf("SC_CLK_TCK")


def tree(root):
    kids = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d) as f:
                s = f.read()
        except OSError:
            continue
        ppid = int(s[s.rindex(")") + 2:].split()[1])
        kids.setdefault(ppid, []).append(int(d))
    out, todo = [], [root]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(kids.get(p, []))
    return out


def sample(root):
    cpu, rss, n = 0.0, 0, 0
    for p in tree(root):
        try:
            with open("/proc/%d/stat" % p) as f:
                s = f.read()
            fields = s[s.rindex(")") + 2:].split()
            cpu += (int(fields[11]) + int(fields[12])) / TICK  # utime, stime
            with open("/proc/%d/status" % p) as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        rss += int(line.split()[1])
            n += 1
        except (OSError, ValueError, IndexError):
            pass
    return cpu, rss, n


def to_ms(v, unit):
    return float(v) * {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 6e4}[unit]


def main():
    a = sys.argv[1:]
    if "--" not in a:
        sys.exit("usage: measure.py KIND --proxy-pid PID --json OUT [...] -- COMMAND...")
    i = a.index("--")
    opts, cmd = a[:i], a[i + 1:]
    kind = opts[0]
    o = dict(zip(opts[1::2], opts[2::2]))
    pid = int(o["--proxy-pid"])
    label = o.get("--label", "")
    expect = int(o.get("--bytes", "0"))

    cpu0, rss0, n0 = sample(pid)
    peak = [rss0]
    stop = threading.Event()

    def watch():
        while not stop.wait(0.1):
            _, r, _ = sample(pid)
            if r > peak[0]:
                peak[0] = r

    th = threading.Thread(target=watch, daemon=True)
    th.start()
    t0 = time.monotonic()
    try:
        proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=float(o.get("--timeout", "600")))
        rc, text = proc.returncode, proc.stdout.decode(errors="replace")
    except subprocess.TimeoutExpired as e:
        rc, text = -1, (e.stdout or b"").decode(errors="replace") + "\n(timed out)"
    wall = time.monotonic() - t0
    stop.set()
    th.join()
    cpu1, rss1, n1 = sample(pid)
    alive = n1 > 0
    cpu = cpu1 - cpu0
    r = {"label": label, "command": " ".join(cmd), "rc": rc, "output": text[-3000:], "wall_s": round(wall, 3),
         "proxy": {"cpu_s": round(cpu, 3), "rss_base_kb": rss0, "rss_peak_kb": max(peak[0], rss1),
                   "nprocs": n0},
         "errors": 0, "errors_by_kind": {}}

    def err(k, n, ex):
        r["errors"] += n
        e = r["errors_by_kind"].setdefault(k, {"count": 0, "example": ex[:110]})
        e["count"] += n

    if kind in ("bulk-dl", "bulk-ul"):
        r["mode"] = "bulk"
        r["direction"] = "download" if kind == "bulk-dl" else "upload"
        m = re.search(r"(\d{3}) (\d+) (\d+) ([0-9.]+)\s*$", text.strip())
        if not m:
            err("client", 1, "curl rc %d: %s" % (rc, text.strip()[-100:]))
        else:
            code, dl, ul, t = int(m.group(1)), int(m.group(2)), int(m.group(3)), float(m.group(4))
            moved = dl if kind == "bulk-dl" else ul
            r.update({"http_status": code, "bytes": moved, "seconds": t})
            if code != 200:
                err("http_status", 1, "HTTP %d" % code)
            if rc != 0:
                err("client", 1, "curl exited %d" % rc)
            if expect and moved != expect:
                err("short", 1, "moved %d of %d bytes" % (moved, expect))
            if t > 0 and moved:
                r["mb_per_s"] = moved / 1e6 / t
                r["proxy"]["cpu_s_per_gib"] = cpu / (moved / 2**30)
    elif kind == "small":
        r["mode"] = "small"
        m = re.search(r"(\d+) requests in ([0-9.]+)(\w+),", text)
        rps = re.search(r"Requests/sec:\s+([0-9.]+)", text)
        lat = {p: to_ms(v, u) for p, v, u in re.findall(r"^\s+(50|75|90|99)%\s+([0-9.]+)(us|ms|s|m)\s*$", text, re.M)}
        if not m or not rps:
            err("client", 1, "wrk rc %d: %s" % (rc, text.strip()[-100:]))
        else:
            n = int(m.group(1))
            r["requests"] = n
            r["requests_per_s"] = float(rps.group(1))
            r["latency_ms"] = {"p50": lat.get("50"), "p75": lat.get("75"), "p90": lat.get("90"), "p99": lat.get("99")}
            if n:
                r["proxy"]["cpu_us_per_request"] = cpu * 1e6 / n
            se = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
            if se:
                for k, v in zip(("connect", "read", "write", "timeout"), se.groups()):
                    if int(v):
                        err(k if k != "read" else "closed", int(v), "wrk socket errors: %s %s" % (k, v))
            nx = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
            if nx:
                err("http_status", int(nx.group(1)), "non-2xx responses")
    elif kind == "idle":
        r["mode"] = "idle"
        cj = None
        try:
            with open(o["--client-json"]) as f:
                cj = json.load(f)
        except (OSError, ValueError, KeyError):
            err("client", 1, "idle-hold rc %d: %s" % (rc, text.strip()[-100:]))
        if cj:
            r.update({k: cj[k] for k in ("conns", "procs", "held", "held_at_end", "setup_s", "hold_s")})
            for k, v in cj.get("errors_by_kind", {}).items():
                err(k, v["count"], v["example"])
            if cj["held"]:
                r["proxy"]["rss_per_conn_kb"] = (r["proxy"]["rss_peak_kb"] - rss0) / cj["held"]
    else:
        sys.exit("measure.py: unknown kind " + kind)
    if not alive:
        err("proxy", 1, "the proxy was gone after the run")
    with open(o["--json"], "w") as f:
        json.dump(r, f, indent=1)
    summary = {k: r.get(k) for k in ("mb_per_s", "requests_per_s", "latency_ms", "held", "errors")}
    summary["proxy"] = r["proxy"]
    print("%s: %s" % (label, json.dumps(summary)))
    print(text.strip()[-600:])


if __name__ == "__main__":
    main()
