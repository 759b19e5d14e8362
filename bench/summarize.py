#!/usr/bin/python3
"""Summarize a `make bench` run: weft against its anchors, as ratios.

    /usr/bin/python3 bench/summarize.py build/bench/results.json [--markdown]
    /usr/bin/python3 bench/summarize.py run1.json run2.json ... [--markdown]

Reads the merged results (a JSON list of {"bench","system","value","unit"}
objects, "value" the median; scripts/run-bench.sh writes it) and prints, per
workload, each system's median and how many times faster weft-threads is than
it ("weft x": anchor time / weft time; for speed-ups in "x", weft's speed-up /
the anchor's), then the targets the issue set for weft. With --markdown it
prints the same as Markdown tables, for docs/BENCHMARKS.md. Given several
results files (separate runs), it prints for each workload and anchor the
median over the runs of the in-run ratio, with its range, and how many runs
met each target.
Exit status 0 (the targets are reported, not enforced), 2 on bad input.
"""
import json
import sys

WEFT = "weft-threads"
ORDER = ["weft-threads", "weft-serial", "tbb", "openmp", "naive-pool", "python-threadpool"]
BENCHES = ["submit_batch", "submit_roundtrip", "map_empty", "submit_8threads", "fib_nested",
           "fib_nested_speedup", "cpu_speedup", "cpu_speedup_map"]


def weft_advantage(unit, weft, other):
    """How many times faster weft is than `other` (> 1: weft is faster)."""
    if weft is None or other is None or weft <= 0 or other <= 0:
        return None
    return weft / other if unit == "x" else other / weft


def fmt(v):
    if v is None:
        return "n/a"
    if v >= 100:
        return f"{v:.0f}"
    if v >= 10:
        return f"{v:.1f}"
    return f"{v:.3g}"


def targets(res):
    """(description, met or None when not measured, figure) for each target."""
    def med(bench, system):
        r = res.get((bench, system))
        return r["value"] if r else None

    out = []
    w = med("submit_batch", WEFT)
    for anchor, label in (("tbb", "tbb task_group"), ("openmp", "openmp tasks")):
        a = med("submit_batch", anchor)
        adv = weft_advantage("us/task", w, a)
        out.append((f"submit_batch: weft-threads cheaper per task than {label}",
                    None if adv is None else adv > 1,
                    f"{fmt(w)} vs {fmt(a)} us/task ({fmt(adv)}x)"))
    a = med("submit_batch", "python-threadpool")
    adv = weft_advantage("us/task", w, a)
    out.append(("submit_batch: weft-threads >= 100x cheaper than ThreadPoolExecutor",
                None if adv is None else adv >= 100, f"{fmt(adv)}x"))
    v = med("submit_roundtrip", WEFT)
    out.append(("submit_roundtrip: weft-threads <= 2 us", None if v is None else v <= 2.0,
                f"{fmt(v)} us/task"))
    v = med("map_empty", WEFT)
    out.append(("map_empty: weft-threads <= 25 ns/item", None if v is None else v <= 25.0,
                f"{fmt(v)} ns/item"))
    v = med("cpu_speedup", WEFT)
    out.append(("cpu_speedup: weft-threads >= 1.9x over serial",
                None if v is None else v >= 1.9, f"{fmt(v)}x"))
    return out


def load(path):
    with open(path) as fh:
        data = json.load(fh)
    res = {}
    for r in data:
        if isinstance(r, dict) and {"bench", "system", "value", "unit"} <= r.keys():
            res[(r["bench"], r["system"])] = r
    return res


def median(xs):
    xs = sorted(xs)
    n = len(xs)
    return xs[n // 2] if n % 2 else 0.5 * (xs[n // 2 - 1] + xs[n // 2])


def summarize_runs(runs, markdown):
    """Several runs: median over runs of each in-run ratio, and its range."""
    keys = set().union(*runs)
    benches = [b for b in BENCHES if any(k[0] == b for k in keys)]
    benches += sorted({k[0] for k in keys} - set(benches))
    anchors = [a for a in ORDER[1:] if any(k[1] == a for k in keys)]
    anchors += sorted({k[1] for k in keys} - set(ORDER))

    def cell(xs, unit=""):
        if not xs:
            return ""
        if len(xs) == 1:
            return f"{fmt(xs[0])}{unit}"
        return f"{fmt(median(xs))}{unit} ({fmt(min(xs))}–{fmt(max(xs))})"

    rows = []
    for b in benches:
        wv, unit = [], ""
        for res in runs:
            w = res.get((b, WEFT))
            if w:
                wv.append(w["value"])
                unit = w["unit"]
        cells = []
        for a in anchors:
            advs = []
            for res in runs:
                w, r = res.get((b, WEFT)), res.get((b, a))
                adv = r and weft_advantage(r["unit"], w and w["value"], r["value"])
                if adv:
                    advs.append(adv)
            cells.append(cell(advs, "x"))
        rows.append((b, cell(wv, " " + unit), cells))
    n = len(runs)
    if markdown:
        print(f"How many times faster weft-threads is than each system: median over {n} runs "
              "of the ratio within each run (range in brackets; < 1: slower):\n")
        print("| workload | weft-threads (median of run medians) | " + " | ".join(anchors) + " |")
        print("|---|---:|" + "---:|" * len(anchors))
        for b, wcell, cells in rows:
            print(f"| {b} | {wcell} | " + " | ".join(cells) + " |")
    else:
        print(f"summary over {n} runs: weft-threads against each system, median of the in-run "
              "ratios (range; > 1: weft-threads is faster)")
        for b, wcell, cells in rows:
            print(f"  {b}: weft-threads {wcell}")
            for a, c in zip(anchors, cells):
                if c:
                    print(f"    vs {a:<18} {c}")
    print()
    per_run = [targets(res) for res in runs]
    for i, (desc, _, _) in enumerate(per_run[0]):
        states = [t[i][1] for t in per_run]
        figs = ", ".join(t[i][2] for t in per_run)
        known = [x for x in states if x is not None]
        met = sum(1 for x in known if x)
        verdict = ("UNKNOWN" if not known else "MET" if met == len(known)
                   else "MISSED" if met == 0 else "MIXED")
        line = f"{desc}: {verdict}, met in {met} of {len(known)} runs ({figs})"
        print(f"- {line}" if markdown else f"target {line}")
    return 0


def main(argv):
    args = [a for a in argv[1:] if not a.startswith("--")]
    markdown = "--markdown" in argv
    if not args:
        print(__doc__, file=sys.stderr)
        return 2
    try:
        runs = [load(a) for a in args]
    except (OSError, ValueError) as e:
        print(f"summarize: {e}", file=sys.stderr)
        return 2
    if len(runs) > 1:
        return summarize_runs(runs, markdown)
    res = runs[0]
    benches = [b for b in BENCHES if any(k[0] == b for k in res)]
    benches += sorted({k[0] for k in res} - set(benches))

    if markdown:
        anchors = [a for a in ORDER[1:] if any(k[1] == a for k in res)]
        print("How many times faster weft-threads is than each system, same run "
              "(medians; < 1: slower):\n")
        print("| workload | weft-threads | " + " | ".join(anchors) + " |")
        print("|---|---:|" + "---:|" * len(anchors))
        for b in benches:
            w = res.get((b, WEFT))
            cells = []
            for a in anchors:
                r = res.get((b, a))
                adv = r and weft_advantage(r["unit"], w and w["value"], r["value"])
                cells.append(f"{fmt(adv)}x" if r else "")
            wv = f"{fmt(w['value'])} {w['unit']}" if w else "n/a"
            print(f"| {b} | {wv} | " + " | ".join(cells) + " |")
        print()
        print("| workload | unit | system | median | min | max | weft-threads is ... x faster |")
        print("|---|---|---|---:|---:|---:|---:|")
    else:
        print("summary: weft-threads against each system, same run "
              "(advantage > 1: weft-threads is faster)")
    for b in benches:
        systems = [s for s in ORDER if (b, s) in res]
        systems += sorted({k[1] for k in res if k[0] == b} - set(systems))
        w = res.get((b, WEFT))
        if not markdown:
            print(f"  {b} ({res[(b, systems[0])]['unit']})")
        for s in systems:
            r = res[(b, s)]
            adv = None if s == WEFT else weft_advantage(r["unit"], w and w["value"], r["value"])
            lo, hi = r.get("min"), r.get("max")
            if markdown:
                print(f"| {b} | {r['unit']} | {s} | {fmt(r['value'])} | {fmt(lo)} | {fmt(hi)} | "
                      f"{'—' if s == WEFT else fmt(adv)} |")
            else:
                tail = "" if s == WEFT else f"   weft-threads {fmt(adv)}x"
                print(f"    {s:<18} {fmt(r['value']):>9}{tail}")
    print()
    for desc, met, fig in targets(res):
        state = "UNKNOWN (not measured)" if met is None else ("MET" if met else "MISSED")
        if markdown:
            print(f"- {desc}: **{state}** ({fig})")
        else:
            print(f"target {desc}: {state} ({fig})")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
