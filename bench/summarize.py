#!/usr/bin/python3
"""Summarize a `make bench` run: weft against its anchors, as ratios.

    /usr/bin/python3 bench/summarize.py build/bench/results.json [--markdown]

Reads the merged results (a JSON list of {"bench","system","value","unit"}
objects, "value" the median; scripts/run-bench.sh writes it) and prints, per
workload, each system's median and how many times faster weft-threads is than
it ("weft x": anchor time / weft time; for speed-ups in "x", weft's speed-up /
the anchor's), then the targets the issue set for weft. With --markdown it
prints the same as Markdown tables, for docs/BENCHMARKS.md.
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


def main(argv):
    args = [a for a in argv[1:] if not a.startswith("--")]
    markdown = "--markdown" in argv
    if len(args) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    try:
        with open(args[0]) as fh:
            data = json.load(fh)
    except (OSError, ValueError) as e:
        print(f"summarize: {args[0]}: {e}", file=sys.stderr)
        return 2
    res = {}
    for r in data:
        if isinstance(r, dict) and {"bench", "system", "value", "unit"} <= r.keys():
            res[(r["bench"], r["system"])] = r
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
