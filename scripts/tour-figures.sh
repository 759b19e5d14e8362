#!/usr/bin/env bash
# tour-figures.sh : the figures of docs/tour.md -- every section's weft
# program beside the Python snippet of the same section, on this machine.
# The snippets are cut out of docs/tour.md (```python blocks whose first line
# is "# tour: NAME") and run with /usr/bin/python3 in the same work directory
# as the weft programs (so the Python side reads the files they wrote).
# Each side runs RUNS times (default 3); the table gives the median wall
# time of the whole program, start-up included, and OUT/NAME.{weft,py}.log
# keep the last run's output with the figures the programs print.
# Usage: scripts/tour-figures.sh [BUILD_DIR] [SECTION...]   (OUT: BUILD_DIR/tour)
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$root/build}
[ $# -gt 0 ] && shift
case $build in /*) ;; *) build=$PWD/$build ;; esac
X=$build/examples
[ -x "$X/tour_threads" ] || { echo "tour-figures: no examples in $X (make build)" >&2; exit 1; }
PY=/usr/bin/python3
RUNS=${RUNS:-3}
out=$build/tour
mkdir -p "$out/work" "$out/py"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_rmaps_base_oversubscribe=1 OMPI_MCA_mpi_yield_when_idle=1

# cut the snippets out of the page
awk -v dir="$out/py" '
    /^```python$/ { inblock = 1; name = ""; next }
    inblock && /^```$/ { inblock = 0; if (name != "") close(file); next }
    inblock && name == "" && /^# tour: / { name = $3; file = dir "/tour_" name ".py" }
    inblock && name != "" { print > file }
' "$root/docs/tour.md"

# median of the numbers on stdin
median() { sort -g | awk '{ v[NR] = $1 } END { if (NR) print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

# timed LOG CMD... : runs CMD RUNS times in the work directory; prints the median seconds
timed() {
    local log=$1
    shift
    local i t0 t1
    for ((i = 0; i < RUNS; i++)); do
        t0=$(date +%s.%N)
        (cd "$out/work" && "$@") >"$log" 2>&1 || echo "(exit $?)" >>"$log"
        t1=$(date +%s.%N)
        awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f\n", b - a }'
    done | median
}

# section NAME PYARGS -- WEFT-CMD... : one row of the table
section() {
    local name=$1 pyargs=$2
    shift 3
    if [ ${#wanted[@]} -gt 0 ] && [[ " ${wanted[*]} " != *" $name "* ]]; then return; fi
    local w="-" p="-"
    [ $# -gt 0 ] && w=$(timed "$out/$name.weft.log" "$@")
    # shellcheck disable=SC2086
    [ -f "$out/py/tour_$name.py" ] &&
        p=$(timed "$out/$name.py.log" "$PY" "$out/py/tour_$name.py" $pyargs)
    printf '| %-16s | %8s | %8s | %s\n' "$name" "$w" "$p" "$*"
}

wanted=("$@")
echo "tour-figures: $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg), $(date -u +%Y-%m-%dT%H:%M:%SZ), $RUNS runs each"
echo "| section          | weft (s) | Python (s) | weft command"
section threads "" -- "$X/tour_threads"
section processes "" -- "$X/tour_processes" --n 100000
section shared_memory "" -- "$X/ipc"
section sched "" -- "$X/sched"
section queue "" -- "$X/workers"
section subprocess "" -- "$X/run"
section futures "" -- "$X/futures"
section map "" -- "$X/map"
section joblib_parallel "" -- "$X/batch" 2
section joblib_memory "" -- "$X/levels_memo" --n 100000 --dir memo --clear
section joblib_dump "" -- "$X/array_npy" .
section dask_delayed "" -- "$X/correlate"
section dask_bag "" -- "$X/bag_wordcount" --generate 16
section dask_dataframe "" -- "$X/table_groupby" 1000000
section pandarallel "" --
if command -v mpirun >/dev/null; then
    section dask_distributed "" -- mpirun -n 3 "$X/levels" --n 100000 --workers 2 --outdir levels
else
    section dask_distributed "" -- "$X/levels" --n 100000 --workers 2 --outdir levels
fi
cp "$out/py/tour_montecarlo.py" "$out/py/tour_montecarlo_1.py" 2>/dev/null
section montecarlo "2" -- "$X/montecarlo_pi" --backend threads --workers 2
section montecarlo_1 "1" -- "$X/montecarlo_pi" --backend threads --workers 1
section top_vs_sort "" -- "$X/bag_topk" 10000000
section median "" -- "$X/bag_median" 10000000
echo "logs: $out/*.log"
