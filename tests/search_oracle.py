#!/usr/bin/python3
"""search_oracle.py : scikit-learn's answers for tests/test_search.c.

Usage: search_oracle.py spaces SPACES.json
       search_oracle.py svc SVC.json

spaces: SPACES.json holds, for each parameter space, its spec (sub-grids of
  [name, "list", values] / [name, "linspace", start, stop, num] /
  [name, "logspace", start, stop, num, base]), weft's candidate list and
  weft's samples (n_iter, seed, the candidate indices drawn); and folds
  (kind kfold or stratified, n, n_splits, shuffle, seed, labels, weft's test
  sets). The oracle builds the same spaces with numpy.linspace/logspace and
  checks that list(ParameterGrid(grid)) is weft's candidate list, that
  list(ParameterSampler(grid, n_iter, random_state=seed)) is weft's sample,
  and that KFold / StratifiedKFold(n_splits, shuffle, random_state=seed)
  .split give weft's test sets -- all exactly (floats compared with ==).

svc: SVC.json names the data set, the grid (C, gamma, tol), weft's folds
  and weft's cv_results_ (weft_search_result_write_json). The oracle runs
  GridSearchCV(Pipeline([StandardScaler(), SVC()]), grid, cv=weft's folds)
  -- what examples/svc_task.h does in C -- and checks that the best
  candidate is weft's and that every mean_test_score is within 0.01 of
  weft's, printing the largest difference.

Exit status: 0 when everything matches, 1 naming the first difference, 77
when scikit-learn is missing. Run by test_search with /usr/bin/python3."""
import json
import sys
import warnings

try:
    import numpy as np
    from sklearn.model_selection import (GridSearchCV, KFold, ParameterGrid, ParameterSampler,
                                         StratifiedKFold)
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC
except ImportError as e:
    print(f"search_oracle: {e}")
    sys.exit(77)

warnings.simplefilter("ignore")  # n_iter over the grid's size, tiny classes: expected here


def fail(msg):
    print(f"search_oracle: FAIL {msg}")
    sys.exit(1)


def values(dim):
    kind = dim[1]
    if kind == "list":
        return dim[2]
    if kind == "linspace":
        return np.linspace(dim[2], dim[3], dim[4])
    if kind == "logspace":
        return np.logspace(dim[2], dim[3], dim[4], base=dim[5])
    fail(f"unknown dimension kind {kind}")


def ulps(a, b):
    ia = np.array([a], dtype=np.float64).view(np.int64)[0]
    ib = np.array([b], dtype=np.float64).view(np.int64)[0]
    return abs(int(ia) - int(ib))


# numpy 1.24's float64 power on an AVX-512 CPU runs SVML's vectorized pow,
# which is not always correctly rounded (np.power(10.0, -1.0) is
# 0.09999999999999999); weft's logspace calls the C library's pow (0.1). So
# a value may be 1 ulp off numpy's -- counted here and printed, never more.
ulp_diffs = set()  # distinct (numpy, weft) pairs


def same_params(want, got, where):

    if set(want) != set(got):
        fail(f"{where}: keys {sorted(want)} (scikit-learn) vs {sorted(got)} (weft)")
    for k in want:
        w, g = want[k], got[k]
        if isinstance(w, str) or isinstance(g, str):
            ok = w == g
        else:
            ok = type(g) is (int if isinstance(w, (int, np.integer)) else float)
            if ok and float(w) != float(g):
                ok = isinstance(g, float) and ulps(float(w), g) <= 1
                if ok:
                    ulp_diffs.add((float(w), g))
        if not ok:
            extra = ""
            if isinstance(g, float) and not isinstance(w, str):
                extra = f" ({ulps(float(w), g)} ulp apart)"
            fail(f"{where}: {k} = {w!r} (scikit-learn) vs {g!r} (weft){extra}")


def check_spaces(path):
    with open(path) as f:
        d = json.load(f)
    nsamp = 0
    for si, sp in enumerate(d["spaces"]):
        grid = [{dim[0]: values(dim) for dim in sub} for sub in sp["spec"]]
        want = list(ParameterGrid(grid))
        got = sp["candidates"]
        if len(want) != len(got):
            fail(f"space {si}: {len(want)} candidates (scikit-learn) vs {len(got)} (weft)")
        for i, (w, g) in enumerate(zip(want, got)):
            same_params(w, g, f"space {si} candidate {i}")
        for s in sp["samples"]:
            ws = list(ParameterSampler(grid, n_iter=s["n_iter"], random_state=s["seed"]))
            gs = [got[i] for i in s["indices"]]
            if len(ws) != len(gs):
                fail(f"space {si} sample n_iter={s['n_iter']} seed={s['seed']}: "
                     f"{len(ws)} vs {len(gs)} candidates")
            for i, (w, g) in enumerate(zip(ws, gs)):
                same_params(w, g, f"space {si} sample n_iter={s['n_iter']} seed={s['seed']} draw {i}")
            nsamp += 1
        print(f"search_oracle: space {si}: {len(want)} candidates and {len(sp['samples'])} samples "
              f"match ParameterGrid / ParameterSampler ({len(ulp_diffs)} distinct values 1 ulp off numpy's power "
              "so far)")
    for fo in d["folds"]:
        n, k, sh = fo["n"], fo["n_splits"], fo["shuffle"]
        rs = fo["seed"] if sh else None
        X = np.zeros((n, 1))
        if fo["kind"] == "kfold":
            splits = KFold(k, shuffle=sh, random_state=rs).split(X)
        else:
            splits = StratifiedKFold(k, shuffle=sh, random_state=rs).split(X, np.array(fo["y"]))
        for j, (train, test) in enumerate(splits):
            if list(test) != fo["test"][j]:
                fail(f"{fo['kind']} n={n} k={k} shuffle={sh} seed={fo['seed']}: split {j}'s "
                     f"test set {list(test)[:8]}... (scikit-learn) vs {fo['test'][j][:8]}... (weft)")
            if sorted(set(range(n)) - set(test)) != list(train):
                fail("train is not the complement of test")
    print(f"search_oracle: {len(d['folds'])} KFold / StratifiedKFold splits match scikit-learn")


def check_svc(path):
    with open(path) as f:
        d = json.load(f)
    with open(d["weft"]) as f:
        weft = json.load(f)
    data = np.loadtxt(d["data"], delimiter=",", skiprows=1)
    X, y = data[:, :-1], data[:, -1].astype(int)
    n = len(y)
    cv = []
    for test in d["folds"]["test"]:
        test = np.array(test, dtype=int)
        mask = np.zeros(n, dtype=bool)
        mask[test] = True
        cv.append((np.arange(n)[~mask], test))
    grid = {"svc__" + k: [float(x) for x in v] for k, v in d["grid"].items()}
    pipe = Pipeline([("scale", StandardScaler()), ("svc", SVC())])
    gs = GridSearchCV(pipe, grid, cv=cv, n_jobs=1).fit(X, y)
    res = gs.cv_results_
    wres = weft["cv_results"]
    if len(res["params"]) != len(wres["params"]):
        fail(f"{len(res['params'])} candidates (scikit-learn) vs {len(wres['params'])} (weft)")
    worst, worst_i, differ = 0.0, -1, 0
    for i, (p, wp) in enumerate(zip(res["params"], wres["params"])):
        same_params({k[len("svc__"):]: v for k, v in p.items()}, wp, f"candidate {i}")
        diff = abs(res["mean_test_score"][i] - wres["mean_test_score"][i])
        if diff > 0:
            differ += 1
        if diff > worst:
            worst, worst_i = diff, i
    print(f"search_oracle: {len(res['params'])} candidates x {len(cv)} folds; mean scores differ "
          f"on {differ} candidates, by at most {worst:.6f} (candidate {worst_i})")
    print(f"search_oracle: best: scikit-learn {gs.best_index_} {gs.best_params_} "
          f"{gs.best_score_:.6f}; weft {weft['best_index']} {weft['best_params']} "
          f"{weft['best_score']:.6f}")
    if worst > 0.01:
        fail(f"candidate {worst_i}: mean_test_score {res['mean_test_score'][worst_i]:.6f} "
             f"(scikit-learn) vs {wres['mean_test_score'][worst_i]:.6f} (weft)")
    if gs.best_index_ != weft["best_index"]:
        fail(f"best candidate {gs.best_index_} (scikit-learn) vs {weft['best_index']} (weft)")
    ranks = list(res["rank_test_score"])
    if ranks != wres["rank_test_score"]:
        print(f"search_oracle: note: ranks differ: {ranks} (scikit-learn) vs "
              f"{wres['rank_test_score']} (weft)")


if len(sys.argv) != 3 or sys.argv[1] not in ("spaces", "svc"):
    print(__doc__)
    sys.exit(2)
(check_spaces if sys.argv[1] == "spaces" else check_svc)(sys.argv[2])
