#!/usr/bin/env bash
# bench-compare.sh : runs benchmark programs of an older commit and of this
# tree side by side, alternately, in one session, and prints weft's figures
# of both with their ratio (the anchors' figures of the same runs too).
#
# Usage: scripts/bench-compare.sh OLD_COMMIT [ROUNDS] [NAME...]
#   OLD_COMMIT  the commit to compare with (built in a git worktree under
#               $OLD_DIR, default build-old/src, into build-old/build; this
#               tree is built into build-compare/build)
#   ROUNDS      how many times each program runs on each side (default 3),
#               old, new, old, new, ... so drift of a noisy machine hits both
#   NAME...     bench programs (default: the workloads of issues 2-7)
# Both sides are configured alike (Release, -O2 -g, benchmarks on, MPI when
# found). Results: build-compare/{old,new}-<round>.json (each a run-bench.sh
# results.json), and the table on stdout (medians over the rounds of each
# program's own median). Run it with nothing else busy, and say so.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
[ $# -ge 1 ] || { sed -n '2,16p' "$0" >&2; exit 2; }
old=$1
rounds=${2:-3}
shift $(($# >= 2 ? 2 : 1))
names=("$@")
if [ ${#names[@]} -eq 0 ]; then
    names=(submit_batch submit_roundtrip map_empty submit_8threads fib_nested cpu_speedup
        sync_bench queue_bench sched_bench processes_bench ipc_bench spawn_bench graph_bench
        mpi_bench)
fi
olddir=${OLD_DIR:-$root/build-old}
out=$root/build-compare
mkdir -p "$out" "$olddir"

flags=(-DCMAKE_BUILD_TYPE=Release "-DCMAKE_C_FLAGS_RELEASE=-O2 -g" -DWEFT_BUILD_BENCH=ON
    -DWEFT_BUILD_TESTS=OFF -DWEFT_BUILD_EXAMPLES=OFF -DWEFT_WITH_MPI=ON)

if [ ! -d "$olddir/src/.git" ] && [ ! -f "$olddir/src/.git" ]; then
    git -C "$root" worktree add --detach "$olddir/src" "$old" >/dev/null
else
    git -C "$olddir/src" checkout -q --detach "$old"
fi
echo "bench-compare: old $(git -C "$olddir/src" log --oneline -1)"
echo "bench-compare: new $(git -C "$root" log --oneline -1)$(git -C "$root" diff --quiet || echo ' (+ uncommitted changes)')"
cmake -S "$olddir/src" -B "$olddir/build" "${flags[@]}" >/dev/null
cmake --build "$olddir/build" -j "$(nproc)" >/dev/null
cmake -S "$root" -B "$out/build" "${flags[@]}" >/dev/null
cmake --build "$out/build" -j "$(nproc)" >/dev/null

have=()
for n in "${names[@]}"; do
    if [ -x "$olddir/build/bench/$n" ] && [ -x "$out/build/bench/$n" ]; then
        have+=("$n")
    else
        echo "bench-compare: skipping $n (not built on both sides)"
    fi
done
[ ${#have[@]} -gt 0 ] || { echo "bench-compare: nothing to run" >&2; exit 1; }

for r in $(seq "$rounds"); do
    for side in old new; do
        if [ $side = old ]; then b=$olddir/build; s=$olddir/src; else b=$out/build; s=$root; fi
        echo "=== round $r: $side"
        "$s/scripts/run-bench.sh" "$b" "${have[@]}" >"$out/$side-$r.log" 2>&1 ||
            echo "bench-compare: some program failed on $side (see $out/$side-$r.log)"
        cp "$b/bench/results.json" "$out/$side-$r.json"
    done
done

/usr/bin/python3 - "$out" "$rounds" <<'PY'
import json, statistics, sys
out, rounds = sys.argv[1], int(sys.argv[2])
def load(side):
    vals = {}
    for r in range(1, rounds + 1):
        try:
            rows = json.load(open(f"{out}/{side}-{r}.json"))
        except (OSError, ValueError):
            continue
        for row in rows:
            key = (row["bench"], row["system"], row.get("unit", ""))
            vals.setdefault(key, []).append(float(row["value"]))
    return vals
old, new = load("old"), load("new")
print(f"| workload | system | unit | old (median of {rounds}) | new | new/old |")
print("|---|---|---|---|---|---|")
for key in sorted(set(old) | set(new)):
    o = statistics.median(old[key]) if key in old else None
    n = statistics.median(new[key]) if key in new else None
    ratio = f"{n / o:.2f}" if o and n is not None else ""
    fmt = lambda v: "" if v is None else f"{v:.4g}"
    print(f"| {key[0]} | {key[1]} | {key[2]} | {fmt(o)} | {fmt(n)} | {ratio} |")
PY
