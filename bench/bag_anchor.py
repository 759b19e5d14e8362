#!/usr/bin/python3
"""dask.bag and numpy: the Python anchors of bench/bag_bench.c.

Run by the bench program as
    /usr/bin/python3 bench/bag_anchor.py WHAT SYSTEM ARG REPS
WHAT / SYSTEM / ARG:
    map_filter dask-threads N     db.from_sequence(range(N), npartitions=16)
                                  .map(x*3).filter(even).count() (us per item)
    wordcount  dask-threads FILE  db.read_text(FILE, blocksize=64 MiB)
                                  .str.split().flatten().frequencies() (s)
    topk       numpy-partition FILE   np.partition(a, n-10)[-10:] (s)
    topk       numpy-sort FILE        np.sort(a)[-10:] (s)
    median     numpy-median FILE      np.median(a) (s)
    quantiles  numpy-quantile FILE    np.quantile(a, [.01,.25,.5,.75,.99]) (s)
FILE for the numpy rows holds raw float64 values (numpy's tofile); it is
loaded before the clock starts. dask's scheduler is 'threads' with 2
workers. One untimed warm-up, then one "sample X" line per repetition.
"""
import sys
import time


def main():
    what, system, arg, reps = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    if what in ('map_filter', 'wordcount'):
        import dask
        import dask.bag as db
        dask.config.set(scheduler='threads', num_workers=2)
        if what == 'map_filter':
            n = int(arg)

            def run():
                return db.from_sequence(range(n), npartitions=16).map(lambda x: x * 3) \
                    .filter(lambda x: x % 2 == 0).count().compute()
            want = (n + 1) // 2
            scale = 1e6 / n
        else:
            def run():
                f = db.read_text(arg, blocksize=64 << 20).str.split().flatten().frequencies()
                return sum(c for _, c in f.compute())
            want = None
            scale = 1
        if reps > 1 or what == 'map_filter':
            got = run()  # warm-up
            if want is not None and got != want:
                print('FAIL %s: %s != %s' % (what, got, want))
                return 1
        for _ in range(reps):
            t = time.perf_counter()
            got = run()
            dt = time.perf_counter() - t
            print('total %s' % got)
            print('sample %.6f' % (dt * scale))
        return 0
    import numpy as np
    a = np.fromfile(arg, dtype=np.float64)
    for r in range(reps + 1):
        b = a.copy()  # partition and sort work in place on a copy, as np.median does
        t = time.perf_counter()
        if what == 'topk' and system == 'numpy-partition':
            res = np.sort(np.partition(b, len(b) - 10)[-10:])[::-1]
        elif what == 'topk':
            res = np.sort(b)[-10:][::-1]
        elif what == 'median':
            res = np.median(a)
        else:
            res = np.quantile(a, [0.01, 0.25, 0.5, 0.75, 0.99])
        dt = time.perf_counter() - t
        if r:
            print('result %s' % (' '.join(float.hex(float(x)) for x in np.ravel(res))))
            print('sample %.6f' % dt)
    return 0


if __name__ == '__main__':
    sys.exit(main())
