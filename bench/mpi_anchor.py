#!/usr/bin/python3
"""Python anchor of the mpi backend: mpi4py.futures.MPIPoolExecutor.

    mpirun -n 3 /usr/bin/python3 -m mpi4py.futures bench/mpi_anchor.py [REPS]

Rank 0 runs this script; the other ranks are the pool's workers (2 with
-n 3). Workloads, as bench/mpi_bench.c measures them on weft:
  submit_batch      N tasks submitted, then every result      (us/task)
  submit_roundtrip  submit one task, take its result, N times (us/task)
  map_empty         ex.map over N items, chunksize 1000       (us/item)
Prints "sample BENCH X" per timed repetition after one untimed warm-up;
the pool is started and warmed outside the timed blocks. Results are
checked (sums); a wrong one prints a FAIL line.
"""
import sys
import time

from mpi4py import MPI
from mpi4py.futures import MPIPoolExecutor


def task(i):
    return i


def run_batch(ex, n):
    t0 = time.perf_counter()
    fs = [ex.submit(task, i) for i in range(n)]
    s = sum(f.result() for f in fs)
    dt = time.perf_counter() - t0
    if s != n * (n - 1) // 2:
        print("FAIL submit_batch: wrong sum", flush=True)
    return dt / n * 1e6


def run_roundtrip(ex, n):
    t0 = time.perf_counter()
    s = 0
    for i in range(n):
        s += ex.submit(task, i).result()
    dt = time.perf_counter() - t0
    if s != n * (n - 1) // 2:
        print("FAIL submit_roundtrip: wrong sum", flush=True)
    return dt / n * 1e6


def run_map(ex, n):
    t0 = time.perf_counter()
    s = sum(ex.map(task, range(n), chunksize=1000))
    dt = time.perf_counter() - t0
    if s != n * (n - 1) // 2:
        print("FAIL map_empty: wrong sum", flush=True)
    return dt / n * 1e6


def main():
    reps = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    with MPIPoolExecutor() as ex:
        ex.submit(task, 0).result()  # start the pool outside the timed blocks
        print(f"# mpi4py.futures: {MPI.COMM_WORLD.Get_size() - 1} worker ranks", flush=True)
        for name, fn, n in (("submit_batch", run_batch, 20000),
                            ("submit_roundtrip", run_roundtrip, 5000),
                            ("map_empty", run_map, 1000000)):
            fn(ex, n // 10)  # warm-up
            for _ in range(reps):
                print(f"sample {name} {fn(ex, n):.6g}", flush=True)


if __name__ == "__main__":
    main()
