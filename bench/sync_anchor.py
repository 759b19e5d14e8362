#!/usr/bin/python3
"""threading.Lock / threading.Event: the Python anchor of bench/sync_bench.c.

Run by the bench program as
    /usr/bin/python3 bench/sync_anchor.py MODE N REPS
MODE is
    lock_uncontended  N lock.acquire(); lock.release() pairs on one thread (ns/op)
    lock_handoff      2 threads, each taking the lock N times to add 1 (ns/acquisition)
    event_pingpong    N round trips between 2 threads over 2 Events (us/roundtrip)
It prints one line "sample X" per timed repetition, after one untimed warm-up.
Counts are checked; a wrong count prints a FAIL line.
"""
import sys
import threading
import time


def lock_uncontended(n):
    lock = threading.Lock()
    acq, rel = lock.acquire, lock.release
    t0 = time.perf_counter()
    for _ in range(n):
        acq()
        rel()
    return (time.perf_counter() - t0) / n * 1e9, True


def lock_handoff(n):
    lock = threading.Lock()
    box = [0]

    def work():
        for _ in range(n):
            with lock:
                box[0] += 1

    ts = [threading.Thread(target=work) for _ in range(2)]
    t0 = time.perf_counter()
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    dt = time.perf_counter() - t0
    return dt / (2 * n) * 1e9, box[0] == 2 * n


def event_pingpong(n):
    ping, pong = threading.Event(), threading.Event()
    seen = [0]

    def ponger():
        for _ in range(n):
            ping.wait()
            ping.clear()
            seen[0] += 1
            pong.set()

    t = threading.Thread(target=ponger)
    t.start()
    t0 = time.perf_counter()
    for _ in range(n):
        ping.set()
        pong.wait()
        pong.clear()
    dt = time.perf_counter() - t0
    t.join()
    return dt / n * 1e6, seen[0] == n


def main():
    modes = {"lock_uncontended": lock_uncontended, "lock_handoff": lock_handoff,
             "event_pingpong": event_pingpong}
    if len(sys.argv) != 4 or sys.argv[1] not in modes:
        print("usage: sync_anchor.py lock_uncontended|lock_handoff|event_pingpong N REPS",
              file=sys.stderr)
        return 2
    fn, n, reps = modes[sys.argv[1]], int(sys.argv[2]), int(sys.argv[3])
    fn(max(1, n // 10))  # warm-up
    for _ in range(reps):
        v, ok = fn(n)
        if not ok:
            print(f"FAIL {sys.argv[1]}: wrong count", flush=True)
            return 1
        print(f"sample {v:.6f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
