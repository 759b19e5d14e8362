#!/usr/bin/python3
"""pandas and dask.dataframe: the Python anchors of bench/table_bench.c.

Run by the bench program as
    /usr/bin/python3 bench/table_anchor.py SYSTEM BENCH PATH REPS
SYSTEM: pandas (read_csv, C engine, default float parser) or dask-threads
(dask.dataframe.read_csv, 64 MB blocks, scheduler='threads', 2 workers).
BENCH, as table_bench.c, each timed from the CSV on disk:
    table_read_csv        read every column into memory
    table_groupby_mean    mean of d1..d4 per (k1, k2)
    table_groupby_median  median of d1 per k1 (dask: not offered by its
                          groupby in this version -> a SKIP line)
    table_apply           a derived column d1 * 2 + d2 (vectorized: a row-wise
                          DataFrame.apply over 10M rows takes minutes)
    table_nlargest        the 10 rows of largest d1
Prints "sample X" (seconds) per repetition; a wrong answer prints FAIL."""
import sys
import time

system, bench, path, reps = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])


def run_pandas():
    import pandas as pd
    df = pd.read_csv(path)
    if bench == "table_read_csv":
        return len(df)
    if bench == "table_groupby_mean":
        return len(df.groupby(["k1", "k2"])[["d1", "d2", "d3", "d4"]].mean())
    if bench == "table_groupby_median":
        return len(df.groupby("k1")["d1"].median())
    if bench == "table_apply":
        df["r"] = df["d1"] * 2 + df["d2"]
        return len(df)
    return len(df.nlargest(10, "d1"))


def run_dask():
    import dask
    import dask.dataframe as dd
    df = dd.read_csv(path, blocksize=64 * 1024 * 1024, dtype={"t1": "object", "t2": "object"})
    with dask.config.set(scheduler="threads", num_workers=2):
        if bench == "table_read_csv":
            return len(df.compute())
        if bench == "table_groupby_mean":
            return len(df.groupby(["k1", "k2"])[["d1", "d2", "d3", "d4"]].mean().compute())
        if bench == "table_groupby_median":
            return len(df.groupby("k1")["d1"].median().compute())
        if bench == "table_apply":
            df = df.assign(r=df["d1"] * 2 + df["d2"])
            return len(df.compute())
        return len(df.nlargest(10, "d1").compute())


for i in range(reps):
    t0 = time.perf_counter()
    try:
        n = run_pandas() if system == "pandas" else run_dask()
    except Exception as e:  # an operation this version lacks, or a failure
        print("%s %s: %s: %s" % (system, bench, type(e).__name__, e))
        sys.exit(1)
    print("sample %.6f" % (time.perf_counter() - t0))
    sys.stdout.flush()
