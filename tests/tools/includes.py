#!/usr/bin/python3
"""Checks the include graph of exshim's C sources (make lint runs it).

  includes.py DIR...

Fails, naming the culprit, when the "#include \"...\"" edges between files form a cycle, when a
file includes one of libevent's internal headers (anything under event2/ but its public API),
or when a private header (NAME_int.h) is included by a file not named NAME.c or NAME_*.c.
Otherwise prints the number of files and include edges.
"""
import os
import re
import sys

INCLUDE = re.compile(r'^\s*#\s*include\s*([<"])([^">]+)[">]')
# libevent's public headers; the *_struct.h and *_compat.h ones expose internals
EVENT2_PUBLIC = {"buffer.h", "bufferevent.h", "bufferevent_ssl.h", "dns.h", "event.h",
                 "http.h", "listener.h", "rpc.h", "tag.h", "thread.h", "util.h", "visibility.h",
                 "watch.h", "ws.h"}


def private_ok(includer, header):
    """NAME_int.h may be included by NAME.c, NAME_*.c and NAME_*.h only."""
    base = os.path.basename(header)
    if not base.endswith("_int.h"):
        return True
    owner = base[:-len("_int.h")]
    me = os.path.splitext(os.path.basename(includer))[0]
    return me == owner or me.startswith(owner + "_")


def main(dirs):
    edges, bad = {}, []
    for d in dirs:
        for name in sorted(os.listdir(d)):
            if not name.endswith((".c", ".h")):
                continue
            path = os.path.join(d, name)
            me = os.path.normpath(path)
            edges.setdefault(me, set())
            with open(path, encoding="utf-8", errors="replace") as f:
                for n, line in enumerate(f, 1):
                    m = INCLUDE.match(line)
                    if not m:
                        continue
                    kind, inc = m.groups()
                    if kind == "<" and inc.startswith("event2/") and inc[7:] not in EVENT2_PUBLIC:
                        bad.append("%s:%d: libevent internal header <%s>" % (path, n, inc))
                    if kind == '"':
                        edges[me].add(os.path.normpath(inc))
                        if not private_ok(path, inc):
                            bad.append("%s:%d: private header \"%s\"" % (path, n, inc))
    # depth-first search; a grey node met again closes a cycle
    state, stack = {}, []

    def visit(m):
        state[m] = 1
        stack.append(m)
        for t in sorted(edges.get(m, ())):
            if state.get(t) == 1:
                bad.append("include cycle: " + " -> ".join(stack[stack.index(t):] + [t]))
            elif t not in state:
                visit(t)
        stack.pop()
        state[m] = 2

    for m in sorted(edges):
        if m not in state:
            visit(m)
    for b in bad:
        print(b, file=sys.stderr)
    if bad:
        return 1
    print("include graph: %d files, %d include edges, no cycle"
          % (len(edges), sum(len(e) for e in edges.values())))
    return 0


if __name__ == "__main__":
    if len(sys.argv) < 2:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    sys.exit(main(sys.argv[1:]))
