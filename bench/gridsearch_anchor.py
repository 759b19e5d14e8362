#!/usr/bin/python3
"""scikit-learn's GridSearchCV(SVC()): the anchor of bench/gridsearch_bench.c.

Run by the bench program as
    /usr/bin/python3 bench/gridsearch_anchor.py N_JOBS REPS DATA WEFT_BEST
The search is the bench's: Pipeline([StandardScaler(), SVC()]) over
C = logspace(-2, 3, 10), gamma = logspace(-5, 0, 10), tol in {1e-2, 1e-3,
1e-4, 1e-5, 1e-6} (500 candidates), cv = StratifiedKFold(5, shuffle=True,
random_state=0) (2500 fits), on DATA (scikit-learn's breast_cancer.csv),
with GridSearchCV(n_jobs=N_JOBS, refit=False) -- refit is off because weft's
search does not refit either.
With n_jobs=2, joblib's loky worker pool is started by an untimed search of
2 candidates first (joblib keeps the pool between calls, as users meet it
from their second search on). Prints "sample X" (seconds per search) per
repetition, and FAIL when the best mean score is not within 0.01 of weft's
(WEFT_BEST; nan skips the check)."""
import math
import sys
import time

import numpy as np
from sklearn.model_selection import GridSearchCV, StratifiedKFold
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC

n_jobs, reps, path, weft_best = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], float(sys.argv[4])
data = np.loadtxt(path, delimiter=",", skiprows=1)
X, y = data[:, :-1], data[:, -1].astype(int)
grid = {
    "svc__C": np.logspace(-2, 3, 10),
    "svc__gamma": np.logspace(-5, 0, 10),
    "svc__tol": [1e-2, 1e-3, 1e-4, 1e-5, 1e-6],
}
cv = StratifiedKFold(5, shuffle=True, random_state=0)


def search(g):
    pipe = Pipeline([("scale", StandardScaler()), ("svc", SVC())])
    return GridSearchCV(pipe, g, cv=cv, n_jobs=n_jobs, refit=False).fit(X, y)


search({"svc__C": [1.0, 10.0]})  # starts the worker pool (n_jobs > 1), untimed
for _ in range(reps):
    t0 = time.perf_counter()
    gs = search(grid)
    print(f"sample {time.perf_counter() - t0:.6f}", flush=True)
print(f"scikit-learn n_jobs={n_jobs}: best {gs.best_params_} mean {gs.best_score_:.6f}")
if not math.isnan(weft_best) and abs(gs.best_score_ - weft_best) > 0.01:
    print(f"FAIL best mean score {gs.best_score_:.6f} (scikit-learn) vs {weft_best:.6f} (weft)")
