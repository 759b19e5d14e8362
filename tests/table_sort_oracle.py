#!/usr/bin/python3
"""table_sort_oracle.py : checks weft's external sort against pandas.

Usage: table_sort_oracle.py DATA.csv SORTED.csv COLUMN asc|desc
Reads the columns k1, y, z, flag of DATA.csv (test_table's generated data;
float_precision='round_trip', so every double is read correctly rounded, as
weft reads it), sorts them with pandas' sort_values(COLUMN,
kind='mergesort', na_position='last') (stable, as weft_frame_sort_each) and
compares every cell with those of SORTED.csv, the file weft wrote (y, a
random integer, tells the rows of equal keys apart, so the order of ties is
checked; the text columns are compared in full by the smaller sort cases
of test_table). Exits 1 naming the first difference."""
import sys

import pandas as pd

data, got_path, col, order = sys.argv[1:5]
cols = ["k1", "y", "z", "flag"]
df = pd.read_csv(data, float_precision="round_trip", usecols=cols)
want = df.sort_values(col, ascending=(order == "asc"), kind="mergesort",
                      na_position="last").reset_index(drop=True)
got = pd.read_csv(got_path, float_precision="round_trip", usecols=cols)
try:
    pd.testing.assert_frame_equal(got, want, check_exact=True)
except AssertionError as e:
    sys.exit("table_sort_oracle: %s differs from pandas: %s" % (got_path, e))
print("table_sort_oracle: pandas %s, %d rows sorted by %s %s: every cell equal"
      % (pd.__version__, len(want), col, order))
