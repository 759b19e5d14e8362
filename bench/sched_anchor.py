#!/usr/bin/python3
"""sched.scheduler: the Python anchor of weft's sched_enter_run benchmark.

Run by bench/sched_bench.c as
    /usr/bin/python3 bench/sched_anchor.py N REPS
It enters N events at delay 0 on a clock that always reads 0 (timefunc
returns 0, delayfunc does nothing: no sleeping), with priorities
(i * 7919) % 1000, then runs them all; one line "sample NS_PER_EVENT" per
timed repetition (enter + run), after one untimed warm-up. Every run checks
that all N events ran, in priority order; a failure prints a FAIL line.
"""
import sched
import sys
import time


def one(n):
    s = sched.scheduler(timefunc=lambda: 0, delayfunc=lambda d: None)
    state = [0, -1]  # runs, last priority

    def action(prio):
        if prio < state[1]:
            state[1] = 1 << 30  # out of order: poisons the check below
        else:
            state[1] = prio
        state[0] += 1

    t0 = time.perf_counter()
    for i in range(n):
        p = (i * 7919) % 1000
        s.enter(0, p, action, (p,))
    s.run()
    t1 = time.perf_counter()
    ok = state[0] == n and state[1] < (1 << 30)
    return t1 - t0, ok


def main():
    if len(sys.argv) != 3:
        print("usage: sched_anchor.py N REPS", file=sys.stderr)
        return 2
    n, reps = int(sys.argv[1]), int(sys.argv[2])
    one(min(n, 10000))  # warm-up
    for _ in range(reps):
        dt, ok = one(n)
        if not ok:
            print(f"FAIL sched_enter_run: not all {n} events ran in priority order", flush=True)
            return 1
        print(f"sample {dt / n * 1e9:.3f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
