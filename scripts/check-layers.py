#!/usr/bin/env python3
"""check-layers.py : fails when two source files of libweft call each other,
or, with --cycles, when any cycle of calls runs through the files of src/.

It reads the object files of the library (nm): a file "calls" another when it
has an undefined symbol that the other defines. Usage:
    scripts/check-layers.py OBJDIR|OBJECT.o... [--cycles] [--dot FILE]
(the ctest `layers_check` runs it with --cycles on the plain build)
OBJDIR is the CMake object directory of the library, e.g.
build/CMakeFiles/weft_objects.dir. Exit 0 when the layers point one way."""
import os, subprocess, sys

def objects(root):
    for d, _, fs in os.walk(root):
        for f in fs:
            if f.endswith('.o'):
                p = os.path.join(d, f)
                yield os.path.relpath(p, root)[:-2], p

def symbols_all(paths):
    """{path: (defined, undefined)} from two nm runs over every object."""
    res = {p: (set(), set()) for p in paths}
    for flag, k in (('--defined-only', 0), ('-u', 1)):
        args = ['nm', '-A', flag] + (['-g'] if k == 0 else []) + list(paths)
        out = subprocess.run(args, capture_output=True, text=True, check=True).stdout
        for line in out.splitlines():
            path, _, rest = line.partition(':')
            parts = rest.split()
            if path in res and parts and (k == 1 or len(parts) == 3):
                res[path][k].add(parts[-1])
    return res

def main():
    args = [a for a in sys.argv[1:] if not a.startswith('--')]
    if '--dot' in sys.argv:
        args.remove(sys.argv[sys.argv.index('--dot') + 1])
    if not args:
        print(__doc__, file=sys.stderr)
        return 2
    want_cycles = '--cycles' in sys.argv
    dot = None
    if '--dot' in sys.argv:
        dot = sys.argv[sys.argv.index('--dot') + 1]
    if len(args) == 1 and os.path.isdir(args[0]):
        objs = dict(objects(args[0]))
    else:  # the object files themselves (ctest passes the library's list)
        objs = {}
        for p in args:
            i = p.find('/src/')
            objs[p[i + 1:-2] if i >= 0 else p[:-2]] = p
    if not objs:
        print(f'check-layers: no object files under {args[0]}', file=sys.stderr)
        return 2
    owner, undef = {}, {}
    syms = symbols_all(objs.values())
    for name, p in objs.items():
        d, u = syms[p]
        for s in d:
            owner[s] = name
        undef[name] = u
    edges = {n: {} for n in objs}
    for n, us in undef.items():
        for s in us:
            o = owner.get(s)
            if o and o != n:
                edges[n].setdefault(o, []).append(s)
    bad = 0
    for a in sorted(edges):
        for b in sorted(edges[a]):
            if a < b and a in edges.get(b, {}):
                bad += 1
                print(f'check-layers: {a} and {b} call each other:')
                print(f'    {a} -> {b}: {", ".join(sorted(edges[a][b])[:6])}')
                print(f'    {b} -> {a}: {", ".join(sorted(edges[b][a])[:6])}')
    if want_cycles:
        # strongly connected components (Tarjan), iterative
        index, low, on, stack, comps, counter = {}, {}, set(), [], [], [0]
        def strong(v):
            work = [(v, iter(sorted(edges[v])))]
            index[v] = low[v] = counter[0]; counter[0] += 1
            stack.append(v); on.add(v)
            while work:
                node, it = work[-1]
                for w in it:
                    if w not in index:
                        index[w] = low[w] = counter[0]; counter[0] += 1
                        stack.append(w); on.add(w)
                        work.append((w, iter(sorted(edges[w]))))
                        break
                    if w in on:
                        low[node] = min(low[node], index[w])
                else:
                    work.pop()
                    if work:
                        low[work[-1][0]] = min(low[work[-1][0]], low[node])
                    if low[node] == index[node]:
                        comp = []
                        while True:
                            w = stack.pop(); on.discard(w); comp.append(w)
                            if w == node:
                                break
                        if len(comp) > 1:
                            comps.append(sorted(comp))
        for v in sorted(edges):
            if v not in index:
                strong(v)
        for c in comps:
            bad += 1
            print(f'check-layers: a cycle of calls runs through {len(c)} files: {" ".join(c)}')
    if dot:
        with open(dot, 'w') as f:
            f.write('digraph layers {\n  rankdir=TB; node [shape=box, fontsize=10];\n')
            for a in sorted(edges):
                for b in sorted(edges[a]):
                    f.write(f'  "{a}" -> "{b}";\n')
            f.write('}\n')
    if bad:
        print(f'check-layers: {bad} problem(s)')
        return 1
    print(f'check-layers: {len(objs)} files, calls point one way')
    return 0

sys.exit(main())
