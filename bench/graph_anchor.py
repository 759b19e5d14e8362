#!/usr/bin/python3
"""dask.delayed and joblib: the Python anchors of bench/graph_bench.c.

Run by the bench program as
    /usr/bin/python3 bench/graph_anchor.py SHAPE SYSTEM N REPS
SHAPE is
    independent  N independent calls inc(i), all computed, results summed
    tree         N leaves leaf(i) reduced pairwise by add(a, b) to one root
                 (2N - 1 nodes)
SYSTEM is
    dask-threads, dask-processes, dask-sync   dask.delayed + dask.compute with
                 scheduler='threads' / 'processes' / 'sync', num_workers=2
    joblib-loky  joblib.Parallel(n_jobs=2) (loky backend) over delayed calls;
                 the tree is reduced level by level, one Parallel call per
                 level (joblib has no graphs)
Every repetition times what a user pays: building the delayed objects and
computing them (dask's process pool is started inside each compute, as
users meet it; joblib's loky pool is reused between calls, as joblib does).
It prints one line "sample X" (microseconds per node) per timed repetition,
after one untimed warm-up. Results are checked; a wrong sum prints FAIL.
"""
import sys
import time


def inc(x):
    return x + 1


def leaf(x):
    return x


def add(a, b):
    return a + b


def run_dask(shape, scheduler, n):
    import dask
    from dask import delayed
    t0 = time.perf_counter()
    if shape == "independent":
        vals = [delayed(inc)(i) for i in range(n)]
        out = dask.compute(*vals, scheduler=scheduler, num_workers=2)
        got, want, nodes = sum(out), n * (n - 1) // 2 + n, n
    else:
        level = [delayed(leaf)(i) for i in range(n)]
        while len(level) > 1:
            nxt = [delayed(add)(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
            if len(level) % 2:
                nxt.append(level[-1])
            level = nxt
        got = level[0].compute(scheduler=scheduler, num_workers=2)
        want, nodes = n * (n - 1) // 2, 2 * n - 1
    dt = time.perf_counter() - t0
    return dt / nodes * 1e6, got == want


def run_joblib(shape, n):
    from joblib import Parallel, delayed
    par = RUNNERS.setdefault("joblib", Parallel(n_jobs=2, backend="loky"))
    t0 = time.perf_counter()
    if shape == "independent":
        out = par(delayed(inc)(i) for i in range(n))
        got, want, nodes = sum(out), n * (n - 1) // 2 + n, n
    else:
        level = par(delayed(leaf)(i) for i in range(n))
        while len(level) > 1:
            nxt = par(delayed(add)(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2))
            if len(level) % 2:
                nxt.append(level[-1])
            level = nxt
        got, want, nodes = level[0], n * (n - 1) // 2, 2 * n - 1
    dt = time.perf_counter() - t0
    return dt / nodes * 1e6, got == want


RUNNERS = {}


def main():
    if len(sys.argv) != 5 or sys.argv[1] not in ("independent", "tree"):
        print("usage: graph_anchor.py independent|tree SYSTEM N REPS", file=sys.stderr)
        return 2
    shape, system, n, reps = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    if system.startswith("dask-"):
        sched = system[len("dask-"):]
        if sched not in ("threads", "processes", "sync"):
            print(f"unknown system {system}", file=sys.stderr)
            return 2
        fn = lambda: run_dask(shape, sched, n)  # noqa: E731
    elif system == "joblib-loky":
        fn = lambda: run_joblib(shape, n)  # noqa: E731
    else:
        print(f"unknown system {system}", file=sys.stderr)
        return 2
    fn()  # warm-up (imports, joblib's pool)
    for _ in range(reps):
        v, ok = fn()
        if not ok:
            print(f"FAIL {shape} {system}: wrong result")
            return 1
        print(f"sample {v:.3f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
