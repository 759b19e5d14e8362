#!/usr/bin/python3
"""Summarize a `make bench` run: weft against its anchors, as ratios.

    /usr/bin/python3 bench/summarize.py build/bench/results.json [--markdown]
    /usr/bin/python3 bench/summarize.py run1.json run2.json ... [--markdown]

Reads the merged results (a JSON list of {"bench","system","value","unit"}
objects, "value" the median; scripts/run-bench.sh writes it) and prints, per
workload, each system's median and how many times faster its weft peer is
(weft-threads, weft, weft-processes or weft-mpi: see PEER) than it (anchor
time / weft time; for speed-ups in "x" and rates in "*/s", weft / anchor), then the targets the issue set for weft. With --markdown it
prints the same as Markdown tables, for docs/BENCHMARKS.md. Given several
results files (separate runs), it prints for each workload and anchor the
median over the runs of the in-run ratio, with its range, and how many runs
met each target.
Exit status 0 (the targets are reported, not enforced), 2 on bad input.
"""
import json
import sys

WEFT = "weft-threads"
ORDER = ["weft-threads", "weft-processes", "weft-mpi", "weft", "weft-serial", "tbb", "openmp",
         "pthread", "pipe", "naive-pool", "python-threadpool", "python"]
BENCHES = ["submit_batch", "submit_roundtrip", "map_empty", "submit_8threads", "fib_nested",
           "fib_nested_speedup", "cpu_speedup", "cpu_speedup_map",
           "lock_uncontended", "lock_uncontended_mt", "lock_handoff", "queue_spsc",
           "queue_mpmc8", "event_pingpong", "sched_enter_run", "channel_pingpong",
           "channel_throughput", "mpqueue_throughput"]
# The weft system each anchor is measured against when a workload has several
# weft systems (submit_batch on threads and on processes); any other anchor is
# compared with the first weft system of WEFT_PREF the workload has.
PEER = {"python-processpool": "weft-processes", "joblib-loky": "weft-processes",
        "joblib-multiprocessing": "weft-processes", "dask-processes": "weft-processes",
        "mpi4py-futures": "weft-mpi", "mpi-raw": "weft-mpi", "dask-threads": "weft-threads"}
WEFT_PREF = ["weft-threads", "weft", "weft-processes", "weft-mpi"]


def is_weft(system):
    return system == "weft" or system.startswith("weft-")


def weft_of(res, bench, system):
    """The weft system `system` of `bench` is compared with (None if none)."""
    peer = PEER.get(system)
    if peer and (bench, peer) in res:
        return peer
    for w in WEFT_PREF:
        if (bench, w) in res:
            return w
    return None


def higher_is_better(unit):
    return unit == "x" or unit.endswith("/s")


def weft_advantage(unit, weft, other):
    """How many times faster weft is than `other` (> 1: weft is faster)."""
    if weft is None or other is None or weft <= 0 or other <= 0:
        return None
    return weft / other if higher_is_better(unit) else other / weft


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

    def ratio(bench, system, weft):
        r = res.get((bench, system))
        return r and weft_advantage(r["unit"], med(bench, weft), r["value"])

    out = []
    w = med("submit_batch", WEFT)
    for anchor, label in (("tbb", "tbb task_group"), ("openmp", "openmp tasks")):
        a = med("submit_batch", anchor)
        adv = weft_advantage("us/task", w, a)
        out.append((f"submit_batch: weft-threads cheaper per task than {label}",
                    None if adv is None else adv > 1,
                    f"{fmt(w)} vs {fmt(a)} us/task ({fmt(adv)}x)"))
    adv = ratio("submit_batch", "python-threadpool", WEFT)
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
    # issue 3
    w, p = med("lock_uncontended", "weft"), med("lock_uncontended", "pthread")
    out.append(("lock_uncontended: weft within 1.2x of a pthread mutex",
                None if w is None or p is None else w <= 1.2 * p,
                f"{fmt(w)} vs {fmt(p)} ns/op"))
    v = med("queue_spsc", "weft")
    out.append(("queue_spsc: weft >= 10M items/s", None if v is None else v >= 10e6,
                f"{fmt(v and v / 1e6)}M items/s"))
    adv = ratio("queue_spsc", "python", "weft")
    out.append(("queue_spsc: weft >= 50x queue.Queue", None if adv is None else adv >= 50,
                f"{fmt(adv)}x"))
    # issue 4
    for bench, limit, unit in (("submit_batch", 3.0, "us/task"),
                               ("submit_roundtrip", 20.0, "us/task"),
                               ("map_empty", 0.2, "us/item")):
        r = res.get((bench, "weft-processes"))
        v = r and r["value"]
        if r and r["unit"] != unit and r["unit"].startswith("ns"):
            v = v / 1000.0
        out.append((f"{bench}: weft-processes <= {limit} {unit}",
                    None if v is None else v <= limit, f"{fmt(v)} {unit}"))
    v = med("payload_64mib", "weft-processes")
    out.append(("payload_64mib: weft-processes >= 1 GB/s", None if v is None else v >= 1.0,
                f"{fmt(v)} GB/s"))
    v = med("cpu_speedup", "weft-processes")
    out.append(("cpu_speedup: weft-processes >= 1.85x over serial",
                None if v is None else v >= 1.85, f"{fmt(v)}x"))
    # issue 5
    for bench in ("spawn_true", "spawn_true_8threads"):
        adv = ratio(bench, "python-subprocess", "weft")
        out.append((f"{bench}: weft >= 3x cheaper per spawn than subprocess.run",
                    None if adv is None else adv >= 3, f"{fmt(adv)}x"))
        w = med(bench, "weft")
        best = [v for v in (med(bench, "fork-exec"), med(bench, "posix-spawn")) if v]
        out.append((f"{bench}: weft no slower than the faster of fork+exec and posix_spawn "
                    "(3% tolerance)", None if w is None or not best else w <= 1.03 * min(best),
                    f"{fmt(w)} vs {fmt(min(best) if best else None)} us/spawn"))
    # issue 6
    for bench in ("graph_independent_10k", "graph_tree_20k"):
        v = med(bench, WEFT)
        out.append((f"{bench}: weft-threads <= 1.5 us/node", None if v is None else v <= 1.5,
                    f"{fmt(v)} us/node"))
        adv = ratio(bench, "dask-threads", WEFT)
        out.append((f"{bench}: weft-threads >= 100x cheaper than dask threads",
                    None if adv is None else adv >= 100, f"{fmt(adv)}x"))
    # issue 7
    for bench, limit, unit in (("submit_batch", 5.0, "us/task"),
                               ("submit_roundtrip", 10.0, "us/task"),
                               ("map_empty", 0.2, "us/item")):
        v = med(bench, "weft-mpi")
        out.append((f"{bench}: weft-mpi <= {limit} {unit}", None if v is None else v <= limit,
                    f"{fmt(v)} {unit}"))
    v = med("mpi_dispatch_rate", "weft-mpi")
    out.append(("mpi_dispatch_rate: weft-mpi >= 1M tasks/s to 8 worker ranks",
                None if v is None else v >= 1e6, f"{fmt(v and v / 1e6)}M tasks/s"))
    # issue 18, mpi: hybrid ranks that use their threads, round trips at MPI's speed
    v = med("mpi_hybrid_speedup", "weft-mpi")
    out.append(("mpi_hybrid_speedup: weft-mpi >= 1.8x over serial (1 worker rank x 2 threads)",
                None if v is None else v >= 1.8, f"{fmt(v)}x"))
    w, raw = med("submit_roundtrip", "weft-mpi"), med("submit_roundtrip", "mpi-raw")
    out.append(("submit_roundtrip: weft-mpi <= 1.5x a raw MPI send/recv round trip",
                None if w is None or raw is None else w <= 1.5 * raw,
                f"{fmt(w)} vs {fmt(raw)} us"))
    return [t for t in out if t[1] is not None]


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

    def cell(xs, unit=""):
        if not xs:
            return "n/a"
        if len(xs) == 1:
            return f"{fmt(xs[0])}{unit}"
        return f"{fmt(median(xs))}{unit} ({fmt(min(xs))}–{fmt(max(xs))})"

    n = len(runs)
    if markdown:
        print(f"Medians over {n} runs; 'weft is ... x faster' is the median over the runs of "
              "the ratio within each run (range in brackets; < 1: weft is slower):\n")
        print("| workload | system | median of run medians | compared with | weft is ... x faster |")
        print("|---|---|---:|---|---:|")
    else:
        print(f"summary over {n} runs: each system's median of run medians, and how many times "
              "faster its weft peer is (median of in-run ratios, range)")
    for b in benches:
        systems = [s for s in ORDER if any((b, s) in r for r in runs)]
        systems += sorted({k[1] for k in keys if k[0] == b} - set(systems))
        if not markdown:
            print(f"  {b}")
        for s in systems:
            vals, advs, unit, peer = [], [], "", None
            for res in runs:
                r = res.get((b, s))
                if not r:
                    continue
                vals.append(r["value"])
                unit = r["unit"]
                if not is_weft(s):
                    peer = weft_of(res, b, s) or peer
                    w = res.get((b, peer)) if peer else None
                    adv = weft_advantage(unit, w and w["value"], r["value"])
                    if adv:
                        advs.append(adv)
            vcell = f"{fmt(median(vals))} {unit}"
            if markdown:
                print(f"| {b} | {s} | {vcell} | {peer or '—'} | "
                      f"{'—' if is_weft(s) else cell(advs, 'x')} |")
            else:
                tail = "" if is_weft(s) else f"   {peer} {cell(advs, 'x')}"
                print(f"    {s:<22} {vcell:>18}{tail}")
    print()
    per_run = [{d: (m, f) for d, m, f in targets(res)} for res in runs]
    descs = []
    for t in per_run:
        descs += [d for d in t if d not in descs]
    for desc in descs:
        states = [t[desc][0] for t in per_run if desc in t]
        figs = ", ".join(t[desc][1] for t in per_run if desc in t)
        met = sum(1 for x in states if x)
        verdict = "MET" if met == len(states) else "MISSED" if met == 0 else "MIXED"
        line = f"{desc}: {verdict}, met in {met} of {len(states)} runs ({figs})"
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
        print("Same run, medians; 'weft is ... x faster' compares each system with its weft peer "
              "(< 1: weft is slower):\n")
        print("| workload | unit | system | median | min | max | compared with | weft is ... x faster |")
        print("|---|---|---|---:|---:|---:|---|---:|")
    else:
        print("summary: each system against its weft peer, same run "
              "(advantage > 1: weft is faster)")
    for b in benches:
        systems = [s for s in ORDER if (b, s) in res]
        systems += sorted({k[1] for k in res if k[0] == b} - set(systems))
        if not markdown:
            print(f"  {b} ({res[(b, systems[0])]['unit']})")
        for s in systems:
            r = res[(b, s)]
            peer = None if is_weft(s) else weft_of(res, b, s)
            w = res.get((b, peer)) if peer else None
            adv = weft_advantage(r["unit"], w and w["value"], r["value"]) if peer else None
            lo, hi = r.get("min"), r.get("max")
            if markdown:
                print(f"| {b} | {r['unit']} | {s} | {fmt(r['value'])} | {fmt(lo)} | {fmt(hi)} | "
                      f"{peer or '—'} | {'—' if not peer else fmt(adv)} |")
            else:
                tail = f"   {peer} {fmt(adv)}x" if peer else ""
                print(f"    {s:<22} {fmt(r['value']):>9}{tail}")
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
