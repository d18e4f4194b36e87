#!/usr/bin/env python3
"""No two source files call each other, directly or through others.

  cycles.py BUILD_DIR SUBDIR...

Reads every object file the build made for the given source folders and
their subfolders (BUILD_DIR/SUBDIR/**/*.p/*.o), asks nm which symbols each
defines and which it uses, and draws an edge from file A to file B when A
uses a symbol B defines. Any cycle in that graph (a strongly connected set
of two or more files) is printed and fails the test. Function pointers do
not show in nm, which is the point: a lower layer reports up through them.
"""
import os
import subprocess
import sys


def objects(build, subdir):
    """(object file, source node) for every object the build made from the
    sources of subdir and its subfolders: BUILD_DIR/SUB/.../TARGET.p/*.o
    is SUB/.../NAME for NAME.c."""
    root = os.path.join(build, subdir)
    for d, dirs, files in sorted(os.walk(root)):
        dirs.sort()
        if not d.endswith(".p"):
            continue
        folder = os.path.relpath(os.path.dirname(d), build)
        for f in sorted(files):
            if f.endswith(".c.o"):
                yield (os.path.join(d, f),
                       folder + "/" + f[:-len(".c.o")])


def symbols(path):
    out = subprocess.run(["nm", "--defined-only", "-g", path],
                         capture_output=True, text=True, check=True).stdout
    defined = {l.split()[-1] for l in out.splitlines() if l.strip()}
    out = subprocess.run(["nm", "-u", path], capture_output=True, text=True,
                         check=True).stdout
    used = {l.split()[-1] for l in out.splitlines() if l.strip()}
    return defined, used


def sccs(nodes, edges):
    """Tarjan's strongly connected components."""
    index, low, on, stack, out = {}, {}, set(), [], []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            out.append(comp)

    sys.setrecursionlimit(10000)
    for v in sorted(nodes):
        if v not in index:
            visit(v)
    return out


def main(argv):
    build, subdirs = argv[1], argv[2:]
    owner, uses = {}, {}
    for sub in subdirs:
        # One node per source file, whatever target compiled it.
        for o, src in objects(build, sub):
            defined, used = symbols(o)
            for s in defined:
                owner.setdefault(s, src)
            uses.setdefault(src, set()).update(used)
    if not uses:
        print("no object files found under %s for %s" % (build, subdirs))
        return 1
    edges = {}
    for src, used in uses.items():
        for s in used:
            dst = owner.get(s)
            if dst is not None and dst != src:
                edges.setdefault(src, set()).add(dst)
    bad = [sorted(c) for c in sccs(uses.keys(), edges) if len(c) > 1]
    for c in bad:
        calls = []
        for a in c:
            for b in sorted(edges.get(a, ())):
                if b in c:
                    calls.append("%s -> %s" % (a, b))
        print("call cycle among %s: %s" % (", ".join(c), "; ".join(calls)))
    if bad:
        return 1
    print("%d source files in %s, %d calls between them, no cycle"
          % (len(uses), " ".join(subdirs),
             sum(len(v) for v in edges.values())))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
