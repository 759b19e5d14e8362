#!/usr/bin/python3
"""Python anchors of the processes backend: ProcessPoolExecutor(2) and joblib.

    /usr/bin/python3 bench/processes_anchor.py SYSTEM MODE N REPS

SYSTEM: processpool (concurrent.futures.ProcessPoolExecutor(max_workers=2)),
loky (joblib.Parallel(n_jobs=2, backend="loky")), multiprocessing
(joblib.Parallel(n_jobs=2, backend="multiprocessing")).
MODE:
  batch      N tasks submitted, then every result (us/task); joblib: one
             Parallel call over N delayed calls, auto-batched
  roundtrip  submit one task, take its result, N times (us/task)
  map        ex.map over N items, chunksize 1000 (us/item)
  payload    one task that returns its N-MiB bytes input + 1 (GB/s of payload)
  cpu        N CPU-bound tasks: speed-up of the pool over the same calls in a loop
Prints one "sample X" line per timed repetition after one untimed warm-up;
pools are started outside the timed blocks. Results are checked.
"""
import sys
import time


def task(i):
    return i


def burn(n):
    x = 0
    for i in range(n):
        x = (x * 1103515245 + 12345 + i) & 0xFFFFFFFF
    return x


def echo(b):
    return bytes(b)


def main():
    if len(sys.argv) != 5:
        print(__doc__, file=sys.stderr)
        return 2
    system, mode, n, reps = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    if system == "processpool":
        from concurrent.futures import ProcessPoolExecutor
        ex = ProcessPoolExecutor(max_workers=2)
        ex.submit(task, 0).result()
        for f in [ex.submit(task, i) for i in range(100)]:
            f.result()

        def batch(n):
            fs = [ex.submit(task, i) for i in range(n)]
            return sum(f.result() for f in fs)

        def roundtrip(n):
            return sum(ex.submit(task, i).result() for i in range(n))

        def mapped(n):
            return sum(ex.map(task, range(n), chunksize=1000))

        def payload(b):
            return ex.submit(echo, b).result()

        def cpu(calls, work):
            return list(ex.map(burn, [work] * calls))
    else:
        from joblib import Parallel, delayed
        par = Parallel(n_jobs=2, backend=system)
        par(delayed(task)(i) for i in range(100))

        def batch(n):
            return sum(par(delayed(task)(i) for i in range(n)))

        roundtrip = mapped = payload = None

        def cpu(calls, work):
            return par(delayed(burn)(work) for _ in range(calls))

    expect = n * (n - 1) // 2
    if mode == "batch" or mode == "roundtrip" or mode == "map":
        fn = {"batch": batch, "roundtrip": roundtrip, "map": mapped}[mode]
        if fn is None:
            print(f"no {mode} mode for {system}", file=sys.stderr)
            return 2
        fn(min(n, 2000))
        for _ in range(reps):
            t0 = time.perf_counter()
            total = fn(n)
            dt = time.perf_counter() - t0
            if total != expect:
                print(f"FAIL {system} {mode}: sum {total} != {expect}", flush=True)
                return 1
            print(f"sample {dt / n * 1e6:.6f}", flush=True)
    elif mode == "payload":
        if payload is None:
            return 2
        b = bytes(range(256)) * (n * 4096)
        payload(b[:1024])
        for _ in range(reps):
            t0 = time.perf_counter()
            out = payload(b)
            dt = time.perf_counter() - t0
            if len(out) != len(b) or out[12345] != b[12345]:
                print("FAIL payload: wrong bytes back", flush=True)
                return 1
            print(f"sample {len(b) / dt / 1e9:.6f}", flush=True)
    elif mode == "cpu":
        work = 300000
        cpu(2, 1000)
        for _ in range(reps):
            t0 = time.perf_counter()
            serial = [burn(work) for _ in range(n)]
            t1 = time.perf_counter()
            par_out = cpu(n, work)
            t2 = time.perf_counter()
            if list(par_out) != serial:
                print("FAIL cpu: results differ", flush=True)
                return 1
            print(f"sample {(t1 - t0) / (t2 - t1):.6f}", flush=True)
    else:
        print(__doc__, file=sys.stderr)
        return 2
    if system == "processpool":
        ex.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
