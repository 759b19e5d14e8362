#!/usr/bin/python3
"""joblib.Memory: the Python anchor of bench/memo_bench.c.

Run by the bench program as
    /usr/bin/python3 bench/memo_anchor.py WHAT REPS CLOCK
WHAT is
    store    first calls of a Memory.cache'd function of a 64-byte bytes
             input (it returns its input): joblib hashes, runs, writes
    hit      calls already computed: joblib hashes, finds, loads
    hit1mib  a computed call whose input is 1 MiB of bytes
CLOCK is wall (time.perf_counter) or cpu (time.thread_time: this thread's
CPU time, as the C side's CLOCK_THREAD_CPUTIME_ID). The cache directory is fresh, under the working directory, as weft's. It
prints one line "sample X" (microseconds per call, the mean of a block) per
repetition, after an untimed warm-up. Outputs are checked; a wrong one
prints FAIL.
"""
import os
import shutil
import sys
import time


def ident(x):
    return x


def main():
    what, reps = sys.argv[1], int(sys.argv[2])
    clock = time.thread_time if sys.argv[3:] == ["cpu"] else time.perf_counter
    import warnings
    import joblib
    warnings.simplefilter("ignore")  # joblib warns that hashing 1 MiB is slow
    loc = "memo-bench-joblib"
    shutil.rmtree(loc, ignore_errors=True)
    mem = joblib.Memory(location=loc, verbose=0)
    f = mem.cache(ident)

    def key(i):
        return i.to_bytes(8, "little") + b"\x5a" * 56

    block = 200
    f(key(10**9))  # warm-up: imports, directories
    if what == "store":
        nxt = 0
        for _ in range(reps):
            t0 = clock()
            for _ in range(block):
                f(key(nxt))
                nxt += 1
            print("sample %.6g" % ((clock() - t0) / block * 1e6))
    elif what == "hit":
        for i in range(block):
            f(key(i))
        for _ in range(reps):
            t0 = clock()
            for i in range(block):
                if f(key(i)) != key(i):
                    print("FAIL: wrong output")
                    return
            print("sample %.6g" % ((clock() - t0) / block * 1e6))
    else:
        big = bytes((i * 131 + 7) & 255 for i in range(1 << 20))
        g = mem.cache(len)
        g(big)
        for _ in range(reps):
            t0 = clock()
            for _ in range(20):
                if g(big) != 1 << 20:
                    print("FAIL: wrong output")
                    return
            print("sample %.6g" % ((clock() - t0) / 20 * 1e6))
    sys.stdout.flush()
    shutil.rmtree(loc, ignore_errors=True)


if __name__ == "__main__":
    main()
