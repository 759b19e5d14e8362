#!/usr/bin/env bash
# run-bench.sh : runs every benchmark program built in BUILD/bench (default
# build/bench), one after another, with cwd BUILD/bench, then merges the JSON
# each one wrote (BUILD/bench/<name>.json: a list of
# {"bench","system","value","unit",...} objects) into BUILD/bench/results.json,
# one JSON list of all of them (and the machine into BUILD/bench/machine.json).
# Usage: scripts/run-bench.sh [BUILD_DIR] [NAME...]   (names: only these)
# Programs named mpi_* run under mpirun (see below) when it exists.
# Environment given to the programs: WEFT_BENCH_SRCDIR (bench/ sources, where
# the Python anchors are), WEFT_PYTHON (/usr/bin/python3), WEFT_BIN (the weft
# command, when built). Exits non-zero if a program failed or wrote no JSON.
set -uo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$root/build}
[ $# -gt 0 ] && shift
case $build in /*) ;; *) build=$PWD/$build ;; esac
dir=$build/bench
[ -d "$dir" ] || { echo "run-bench: $dir does not exist (configure with -DWEFT_BUILD_BENCH=ON)" >&2; exit 1; }

export WEFT_BENCH_SRCDIR="$root/bench"
if [ -x /usr/bin/python3 ]; then export WEFT_PYTHON=/usr/bin/python3; else export WEFT_PYTHON=${WEFT_PYTHON:-python3}; fi
[ -x "$build/programs/weft" ] && export WEFT_BIN="$build/programs/weft"

progs=()
if [ $# -gt 0 ]; then
    for n in "$@"; do progs+=("$dir/$n"); done
else
    for f in "$dir"/*; do
        [ -f "$f" ] && [ -x "$f" ] && progs+=("$f")
    done
fi
[ ${#progs[@]} -gt 0 ] || { echo "run-bench: no benchmark programs in $dir" >&2; exit 1; }

echo "run-bench: $(nproc) CPUs, $(uname -srm), $(date -u +%Y-%m-%dT%H:%M:%SZ)"
failed=()
fragments=()
for p in "${progs[@]}"; do
    name=$(basename "$p")
    rm -f "$dir/$name.json"
    echo "=== $name"
    start=$(date +%s)
    if [[ $name == mpi_* ]] && command -v mpirun >/dev/null 2>&1; then
        # MPI programs run under mpirun: 3 ranks (rank 0 + 2 workers), then
        # 9 ranks (8 oversubscribed workers) for the dispatch rate; the
        # mpi4py.futures anchor runs first under the same mpirun (an MPI job
        # cannot start mpirun itself) and the program reads its samples.
        export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
        export OMPI_MCA_rmaps_base_oversubscribe=1 OMPI_MCA_mpi_yield_when_idle=1
        anchor=$dir/${name%_bench}_anchor.txt
        rm -f "$anchor" "$dir/${name}_dispatch.json"
        if [ -f "$root/bench/${name%_bench}_anchor.py" ] &&
            "$WEFT_PYTHON" -c 'import mpi4py.futures' 2>/dev/null; then
            echo "--- mpirun -n 3 $WEFT_PYTHON -m mpi4py.futures bench/${name%_bench}_anchor.py"
            (cd "$dir" && timeout 900 mpirun -n 3 "$WEFT_PYTHON" -m mpi4py.futures \
                "$root/bench/${name%_bench}_anchor.py" >"$anchor") || echo "run-bench: the mpi4py anchor failed"
        fi
        echo "--- mpirun -n 3 $name"
        (cd "$dir" && WEFT_MPI_ANCHOR=$anchor timeout 900 mpirun -n 3 "$p")
        rc=$?
        echo "--- mpirun -n 9 $name --dispatch"
        (cd "$dir" && timeout 900 mpirun -n 9 "$p" --dispatch) || rc=1
        [ -s "$dir/${name}_dispatch.json" ] && fragments+=("$dir/${name}_dispatch.json")
    else
        (cd "$dir" && "$p")
        rc=$?
    fi
    echo "=== $name: exit $rc, $(( $(date +%s) - start )) s"
    if [ $rc -ne 0 ]; then
        failed+=("$name (exit $rc)")
    elif [ ! -s "$dir/$name.json" ]; then
        failed+=("$name (wrote no $name.json)")
    else
        fragments+=("$dir/$name.json")
    fi
done

"$WEFT_PYTHON" - "$dir/results.json" "${fragments[@]}" <<'PY'
import json, os, platform, sys, time
out, frags = sys.argv[1], sys.argv[2:]
results, bad = [], []
for f in frags:
    try:
        with open(f) as fh:
            data = json.load(fh)
        if isinstance(data, dict):
            data = [data]
        if not isinstance(data, list):
            raise ValueError("not a JSON list")
        results.extend(data)
    except Exception as e:  # a broken fragment is reported, the rest kept
        bad.append(f)
        print(f"run-bench: {f}: {e}", file=sys.stderr)
with open(out, "w") as fh:
    json.dump(results, fh, indent=1)
    fh.write("\n")
machine = {"cpus": os.cpu_count(), "system": platform.platform(),
           "python": platform.python_version(),
           "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
with open(os.path.join(os.path.dirname(out), "machine.json"), "w") as fh:
    json.dump(machine, fh, indent=1)
    fh.write("\n")
print(f"run-bench: {len(results)} results from {len(frags) - len(bad)} programs -> {out}")
sys.exit(1 if bad else 0)
PY
merge=$?

if [ ${#failed[@]} -gt 0 ] || [ $merge -ne 0 ]; then
    echo "run-bench: FAILED: ${failed[*]}" >&2
    exit 1
fi
echo "run-bench: all ${#progs[@]} benchmarks ran"
# The ratio table (weft against every anchor, measured in this run) and the
# issue's targets.
if [ -x /usr/bin/python3 ] && [ -f "$root/bench/summarize.py" ]; then
    echo
    /usr/bin/python3 "$root/bench/summarize.py" "$dir/results.json" || true
fi
