#!/usr/bin/python3
"""numpy's Monte Carlo pi in a process pool: the anchor of montecarlo_bench.

Run by bench/montecarlo_bench.c as
    /usr/bin/python3 bench/montecarlo_anchor.py POINTS TASKS PAIRS
TASKS batches of POINTS/TASKS points, each batch a numpy vectorised draw
from its own generator (SeedSequence(42).spawn(TASKS): per-task seeds, so
the estimate does not depend on the pool size), mapped over a
concurrent.futures ProcessPoolExecutor with 1 and then 2 processes, the
pools started and warmed outside the timed block. Batches draw at most
2^20 points at a time, so memory stays small. Prints PAIRS pairs of lines
"sample T1" (1 process) and "sample T2" (2 processes), seconds; checks that
both pools give the same estimate, within 5 standard errors of pi.
"""
import math
import sys
import time
from concurrent.futures import ProcessPoolExecutor

import numpy as np


def batch(seed, m):
    rng = np.random.default_rng(seed)
    hits = 0
    left = m
    while left:
        k = min(left, 1 << 20)
        x = rng.random(k)
        y = rng.random(k)
        hits += int(np.count_nonzero(x * x + y * y < 1.0))
        left -= k
    return 4.0 * hits / m


def estimate(pool, seeds, m):
    est = np.fromiter(pool.map(batch, seeds, [m] * len(seeds), chunksize=8), float)
    return est.mean(), est.std(ddof=1) / math.sqrt(len(est))


def main():
    if len(sys.argv) != 4:
        print("usage: montecarlo_anchor.py POINTS TASKS PAIRS", file=sys.stderr)
        return 2
    points, tasks, pairs = (int(a) for a in sys.argv[1:])
    m = points // tasks
    seeds = np.random.SeedSequence(42).spawn(tasks)
    pools = [ProcessPoolExecutor(1), ProcessPoolExecutor(2)]
    for p in pools:  # start and warm the workers outside the timed block
        list(p.map(batch, seeds[:4], [1000] * 4))
    ref = None
    for _ in range(pairs):
        for p in pools:
            t0 = time.perf_counter()
            pi, se = estimate(p, seeds, m)
            dt = time.perf_counter() - t0
            if ref is None:
                ref = pi
            if pi != ref or abs(pi - math.pi) > 5 * se:
                print(f"FAIL montecarlo_pi numpy: {pi!r} (first run {ref!r}, se {se})", flush=True)
                return 1
            print(f"sample {dt:.6f}", flush=True)
    for p in pools:
        p.shutdown()
    print(f"numpy estimate {ref:.10f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
