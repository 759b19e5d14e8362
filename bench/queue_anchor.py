#!/usr/bin/python3
"""queue.Queue: the Python anchor of bench/queue_bench.c.

Run by the bench program as
    /usr/bin/python3 bench/queue_anchor.py MODE N REPS
MODE is
    spsc0      1 producer thread puts N ints into an unbounded queue.Queue,
               1 consumer thread gets them
    spsc1024   the same with maxsize=1024
    mpmc8      8 producer threads and 8 consumer threads move N ints
It prints one line "sample X" (items/s) per timed repetition, after one
untimed warm-up. Threads are started inside the timed block, as in the C
program. The consumers' sum and count are checked; a mismatch prints FAIL.
"""
import queue
import sys
import threading
import time


def run(n, threads, maxsize):
    q = queue.Queue(maxsize)
    per = n // threads
    n = per * threads
    sums = [0] * threads
    counts = [0] * threads

    def producer(k):
        put = q.put
        first = k * per + 1
        for i in range(first, first + per):
            put(i)

    def consumer(k):
        get = q.get
        s = 0
        for _ in range(per):
            s += get()
        sums[k] = s
        counts[k] = per

    ts = [threading.Thread(target=consumer, args=(k,)) for k in range(threads)]
    ts += [threading.Thread(target=producer, args=(k,)) for k in range(threads)]
    t0 = time.perf_counter()
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    dt = time.perf_counter() - t0
    ok = sum(counts) == n and sum(sums) == n * (n + 1) // 2
    return n / dt, ok


def main():
    modes = {"spsc0": (1, 0), "spsc1024": (1, 1024), "mpmc8": (8, 0)}
    if len(sys.argv) != 4 or sys.argv[1] not in modes:
        print("usage: queue_anchor.py spsc0|spsc1024|mpmc8 N REPS", file=sys.stderr)
        return 2
    threads, maxsize = modes[sys.argv[1]]
    n, reps = int(sys.argv[2]), int(sys.argv[3])
    run(max(threads, n // 10), threads, maxsize)  # warm-up
    for _ in range(reps):
        v, ok = run(n, threads, maxsize)
        if not ok:
            print(f"FAIL {sys.argv[1]}: wrong sum or count", flush=True)
            return 1
        print(f"sample {v:.1f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
