#!/usr/bin/python3
"""concurrent.futures.ThreadPoolExecutor(2): the Python anchor of weft's benchmarks.

Run by the C++ bench programs as
    /usr/bin/python3 bench/threadpool_anchor.py MODE N REPS
MODE is
    batch      submit N tasks, then .result() on each (submit_batch)
    roundtrip  submit one task and take its .result(), N times (submit_roundtrip)
It prints one line "sample US_PER_TASK" per timed repetition, after one
untimed warm-up; the pool is started outside the timed block. Every result is
checked (the sum of the returned values); a wrong sum prints a FAIL line.
"""
import sys
import time
from concurrent.futures import ThreadPoolExecutor


def task(i):
    return i


def run_batch(ex, n):
    t0 = time.perf_counter()
    fs = [ex.submit(task, i) for i in range(n)]
    total = sum(f.result() for f in fs)
    t1 = time.perf_counter()
    return t1 - t0, total


def run_roundtrip(ex, n):
    total = 0
    t0 = time.perf_counter()
    for i in range(n):
        total += ex.submit(task, i).result()
    t1 = time.perf_counter()
    return t1 - t0, total


def main():
    if len(sys.argv) != 4 or sys.argv[1] not in ("batch", "roundtrip"):
        print("usage: threadpool_anchor.py batch|roundtrip N REPS", file=sys.stderr)
        return 2
    mode, n, reps = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    fn = run_batch if mode == "batch" else run_roundtrip
    expect = n * (n - 1) // 2
    with ThreadPoolExecutor(max_workers=2) as ex:
        fn(ex, min(n, 5000))  # warm-up: start both threads
        for _ in range(reps):
            dt, total = fn(ex, n)
            if total != expect:
                print(f"FAIL {mode}: sum {total} != {expect}", flush=True)
                return 1
            print(f"sample {dt / n * 1e6:.6f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
