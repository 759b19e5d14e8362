#!/usr/bin/python3
"""subprocess.run: the Python anchor of bench/spawn_bench.c.

Run by the bench program as
    /usr/bin/python3 bench/spawn_anchor.py MODE N REPS
MODE is
    spawn_true           N subprocess.run(["/bin/true"]) one after another, each
                         timed alone (us/spawn: the median of the N)
    spawn_true_8threads  N runs spread over 8 threads of a ThreadPoolExecutor,
                         each thread running its share one at a time (us/spawn)
It prints one line "sample X" per timed repetition, after an untimed warm-up.
Every exit status is checked; a non-zero one prints a FAIL line.
"""
import concurrent.futures
import statistics
import subprocess
import sys
import time

ARGV = ["/bin/true"]


def spawn_true(n):
    """The median of n timed runs (as the C systems of spawn_bench report)."""
    bad, times = 0, []
    for _ in range(n):
        t0 = time.perf_counter()
        bad += subprocess.run(ARGV).returncode != 0
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1e6, bad == 0


def spawn_true_8threads(n, pool):
    each = n // 8

    def work():
        return sum(subprocess.run(ARGV).returncode != 0 for _ in range(each))

    t0 = time.perf_counter()
    bad = sum(f.result() for f in [pool.submit(work) for _ in range(8)])
    return (time.perf_counter() - t0) / (each * 8) * 1e6, bad == 0


def main():
    if len(sys.argv) != 4 or sys.argv[1] not in ("spawn_true", "spawn_true_8threads"):
        print("usage: spawn_anchor.py spawn_true|spawn_true_8threads N REPS", file=sys.stderr)
        return 2
    mode, n, reps = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    pool = concurrent.futures.ThreadPoolExecutor(8)  # started outside the timed block
    if mode == "spawn_true":
        fn = spawn_true
    else:
        def fn(k):
            return spawn_true_8threads(k, pool)
    fn(max(8, n // 10))  # warm-up
    for _ in range(reps):
        v, ok = fn(n)
        if not ok:
            print(f"FAIL {mode}: a child exited non-zero", flush=True)
            return 1
        print(f"sample {v:.3f}", flush=True)
    pool.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
