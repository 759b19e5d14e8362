#!/usr/bin/python3
"""numpy and joblib: the Python anchors of bench/array_bench.c.

Run by the bench program as
    /usr/bin/python3 bench/array_anchor.py MODE PATH N REPS
with an array of N float64 (np.arange(N), made once, untimed). MODE is
    serve        np.save(PATH, a) each time a line "save" comes on stdin,
                 printing "sample MS" (its own clock) after each; "quit"
                 or the end of stdin ends it; REPS is unused. The bench
                 drives it so that numpy's saves interleave with weft's
                 and the plain write's (array_bench.c explains why)  (ms)
    load         np.load(PATH), after one untimed np.save           (ms)
    mmap         np.load(PATH, mmap_mode='r'), opened and dropped    (us)
    joblib_mmap  joblib.load(PATH.joblib, mmap_mode='r'), after one
                 untimed joblib.dump                                 (us)
    dump_load    joblib.dump(a, PATH.joblib) then joblib.load        (ms)
    save_load    np.save then np.load                                (ms)
Files go where PATH is (the bench's cwd, not a tmpfs); caches are warm, as
in the C side. Prints one line "sample X" per repetition; a wrong value
read back prints FAIL."""
import os
import sys
import time

import numpy as np


def main():
    mode, path, n, reps = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    a = np.arange(n, dtype=np.float64)
    last = float(n - 1)
    jpath = os.path.splitext(path)[0] + '.joblib'
    if mode in ('load', 'mmap'):
        np.save(path, a)
    if mode == 'joblib_mmap':
        import joblib
        joblib.dump(a, jpath)
    if mode == 'serve':
        print('ready', flush=True)
        for line in sys.stdin:
            cmd = line.strip()
            if cmd == 'quit':
                break
            if cmd != 'save':
                print('FAIL unknown command', cmd, flush=True)
                return 2
            t0 = time.perf_counter()
            np.save(path, a)
            print('sample', (time.perf_counter() - t0) * 1e3, flush=True)
        return 0
    for _ in range(reps):
        if mode == 'load':
            t0 = time.perf_counter()
            b = np.load(path)
            ok = b[-1] == last
            del b
            print('sample', (time.perf_counter() - t0) * 1e3)
            if not ok:
                print('FAIL np.load: wrong value')
        elif mode in ('mmap', 'joblib_mmap'):
            loader = np.load
            p = path
            if mode == 'joblib_mmap':
                import joblib
                loader, p = joblib.load, jpath
            opens = 200
            t0 = time.perf_counter()
            for _ in range(opens):
                b = loader(p, mmap_mode='r')
                del b
            print('sample', (time.perf_counter() - t0) / opens * 1e6)
            b = loader(p, mmap_mode='r')
            if b[-1] != last:
                print('FAIL mmap: wrong value')
            del b
        elif mode == 'dump_load':
            import joblib
            t0 = time.perf_counter()
            joblib.dump(a, jpath)
            b = joblib.load(jpath)
            ok = b[-1] == last
            del b
            print('sample', (time.perf_counter() - t0) * 1e3)
            if not ok:
                print('FAIL joblib.load: wrong value')
        elif mode == 'save_load':
            t0 = time.perf_counter()
            np.save(path, a)
            b = np.load(path)
            ok = b[-1] == last
            del b
            print('sample', (time.perf_counter() - t0) * 1e3)
            if not ok:
                print('FAIL np.load: wrong value')
        else:
            print('FAIL unknown mode', mode)
            return 2
        sys.stdout.flush()
    if os.path.exists(jpath):
        os.unlink(jpath)
    return 0


if __name__ == '__main__':
    sys.exit(main())
