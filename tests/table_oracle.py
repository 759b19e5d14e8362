#!/usr/bin/python3
"""table_oracle.py : pandas' answers for tests/test_table.c.

Usage: table_oracle.py DATA.csv SMALL.csv NPYDIR OUTDIR
Reads DATA.csv as test_table's generated data (pandas' default NA strings,
float_precision='round_trip' so every double is correctly rounded, as weft
reads it), runs the operations test_table runs through weft, and writes
each result as OUTDIR/<name>.csv (floats with 17 significant digits). It
also checks the .npy files weft wrote into NPYDIR against the columns, and
exits 1 naming the first difference. Run by test_table with /usr/bin/python3
(Debian's pandas); the test SKIPs when pandas is missing."""
import os
import sys

import numpy as np
import pandas as pd

data, small_path, npydir, out = sys.argv[1:5]
os.makedirs(out, exist_ok=True)
df = pd.read_csv(data, float_precision="round_trip")
small = pd.read_csv(small_path, float_precision="round_trip")


def save(name, frame):
    frame.to_csv(os.path.join(out, name + ".csv"), index=False, float_format="%.17g")


save("all", df)
g = df.groupby(["k1", "k2"])  # sort=True, dropna=True: as weft
gb = pd.DataFrame({
    "x_count": g["x"].count(),
    "y_sum": g["y"].sum(),
    "x_mean": g["x"].mean(),
    "z_min": g["z"].min(),
    "y_max": g["y"].max(),
    "x_var": g["x"].var(),
    "note_nunique": g["note"].nunique(),
    "x_median": g["x"].median(),
    "z_sum": g["z"].sum(),
}).reset_index()
save("groupby", gb)
desc = df.describe().reset_index().rename(columns={"index": "stat"})
save("describe", desc)
save("nlargest", df.nlargest(25, "z", keep="first"))
save("nsmallest", df.nsmallest(25, "k1", keep="first"))
save("sort", df.sort_values("z", kind="mergesort", na_position="last"))
save("sort_k1_desc", df.sort_values("k1", ascending=False, kind="mergesort", na_position="last"))
save("sort_k2", df.sort_values("k2", kind="mergesort", na_position="last"))
save("sort_x_desc", df.sort_values("x", ascending=False, kind="mergesort", na_position="last"))
save("filter", df[df["x"] > 0.5])
# the notebook's parallel_apply: three derived columns per partition
ap = df.copy()
ap["x2"] = ap["x"] * 2
ap["xz"] = ap["x"] + ap["z"]
ap["even"] = ap["y"] % 2 == 0
save("apply", ap)
save("head", df.head(17))
save("join", df.merge(small, on="k1", how="left"))

for col in ("k1", "y", "z", "flag"):
    got = np.load(os.path.join(npydir, col + ".npy"))
    want = df[col].to_numpy()
    if got.dtype != want.dtype or got.shape != want.shape:
        sys.exit("%s.npy: %s %s, pandas %s %s" % (col, got.dtype, got.shape, want.dtype, want.shape))
    if not np.array_equal(got, want, equal_nan=(got.dtype.kind == "f")):
        sys.exit("%s.npy: values differ from pandas' column" % col)
print("table_oracle: pandas %s, %d rows, %d groups" % (pd.__version__, len(df), len(gb)))
