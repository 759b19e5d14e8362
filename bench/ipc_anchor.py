#!/usr/bin/python3
"""multiprocessing.Pipe / multiprocessing.Queue: the Python anchor of bench/ipc_bench.c.

Run by the bench program as
    /usr/bin/python3 bench/ipc_anchor.py MODE N REPS
MODE is
    channel_pingpong    N round trips of an 8-byte message over a duplex
                        Pipe between this process and a child (us/roundtrip)
    channel_throughput  N 64-byte messages one way over a Pipe, timed until
                        the child acknowledges the last (msg/s)
    mpqueue_throughput  N 64-byte messages through a multiprocessing.Queue
                        to a consumer process, timed until it acknowledges
                        the last (msg/s)
The child is started (fork) before the timed block of each sample. Messages
carry their sequence number; the child returns the sum, which is checked
(a wrong sum prints a FAIL line). One untimed warm-up, then one line
"sample X" per timed repetition.
"""
import multiprocessing as mp
import struct
import sys
import time


def echo(conn, n):
    for _ in range(n + 1):
        conn.send_bytes(conn.recv_bytes())


def pingpong(n):
    a, b = mp.Pipe()
    p = mp.Process(target=echo, args=(b, n))
    p.start()
    a.send_bytes(struct.pack("<Q", 0))
    a.recv_bytes()  # the child is up
    total = 0
    t0 = time.perf_counter()
    for i in range(1, n + 1):
        a.send_bytes(struct.pack("<Q", i))
        total += struct.unpack("<Q", a.recv_bytes())[0]
    dt = time.perf_counter() - t0
    p.join()
    return dt / n * 1e6, total == n * (n + 1) // 2


def sink(conn, n):
    s = 0
    for _ in range(n):
        s += struct.unpack_from("<Q", conn.recv_bytes())[0]
    conn.send_bytes(struct.pack("<Q", s))


def throughput(n):
    a, b = mp.Pipe()
    p = mp.Process(target=sink, args=(b, n))
    p.start()
    pad = bytes(56)
    t0 = time.perf_counter()
    for i in range(n):
        a.send_bytes(struct.pack("<Q", i) + pad)
    s = struct.unpack("<Q", a.recv_bytes())[0]
    dt = time.perf_counter() - t0
    p.join()
    return n / dt, s == n * (n - 1) // 2


def qsink(q, ack, n):
    s = 0
    for _ in range(n):
        s += struct.unpack_from("<Q", q.get())[0]
    ack.put(s)


def queue_throughput(n):
    q, ack = mp.Queue(), mp.Queue()
    p = mp.Process(target=qsink, args=(q, ack, n))
    p.start()
    pad = bytes(56)
    t0 = time.perf_counter()
    for i in range(n):
        q.put(struct.pack("<Q", i) + pad)
    s = ack.get()
    dt = time.perf_counter() - t0
    p.join()
    return n / dt, s == n * (n - 1) // 2


def main():
    modes = {"channel_pingpong": pingpong, "channel_throughput": throughput,
             "mpqueue_throughput": queue_throughput}
    if len(sys.argv) != 4 or sys.argv[1] not in modes:
        print("usage: ipc_anchor.py channel_pingpong|channel_throughput|mpqueue_throughput N REPS",
              file=sys.stderr)
        return 2
    mp.set_start_method("fork")
    fn, n, reps = modes[sys.argv[1]], int(sys.argv[2]), int(sys.argv[3])
    fn(max(1, n // 10))  # warm-up
    for _ in range(reps):
        v, ok = fn(n)
        if not ok:
            print(f"FAIL {sys.argv[1]}: wrong sum", flush=True)
            return 1
        print(f"sample {v:.6f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
