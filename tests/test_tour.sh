#!/usr/bin/env bash
# test_tour.sh : runs every program of the tour (docs/tour.md), section by
# section, on small inputs, and checks its exit status and a line of its
# output. With MPIRUN, the cluster sections run under `MPIRUN -n 3`, so the
# mpi level is in them; montecarlo_pi then also checks that the mpi run gives
# the serial run's bits.
# Usage: test_tour.sh EXAMPLES_DIR [MPIRUN] [SECTION-PATTERN]
# Exit: 0 all passed, 1 a program failed or printed something else, 77 no
# examples were built.
set -u
X=${1:?usage: test_tour.sh EXAMPLES_DIR [MPIRUN] [PATTERN]}
MPIRUN=${2:-}
filter=${3:-}
X=$(realpath "$X")
[ -x "$X/tour_threads" ] || { echo "SKIP: no examples in $X (WEFT_BUILD_EXAMPLES=OFF?)"; exit 77; }
T=$(mktemp -d "${TMPDIR:-/tmp}/weft-tour.XXXXXX")
trap 'rm -rf "$T"' EXIT
cd "$T"
pass=0
fail=0
start=$(date +%s)

# tour SECTION REGEX PROGRAM ARGS... : runs $X/PROGRAM ARGS (a hang guard of
# 300 s), which must exit 0 and print a line matching the extended REGEX.
tour() {
    local section=$1 regex=$2 prog=$3
    shift 3
    [ -n "$filter" ] && [[ $section != *$filter* ]] && return
    local t0 out rc
    t0=$(date +%s.%N)
    out=$(timeout 300 "$X/$prog" "$@" 2>&1)
    rc=$?
    check "$section" "$regex" "$prog $*" "$rc" "$out" "$t0"
}

# tour_mpi: as tour, under MPIRUN -n 3 when there is one.
tour_mpi() {
    local section=$1 regex=$2 prog=$3
    shift 3
    [ -n "$filter" ] && [[ $section != *$filter* ]] && return
    [ -n "$MPIRUN" ] || {
        tour "$section" "$regex" "$prog" "$@"
        return
    }
    local t0 out rc
    t0=$(date +%s.%N)
    out=$(timeout 300 "$MPIRUN" -n 3 "$X/$prog" "$@" 2>&1)
    rc=$?
    check "$section" "$regex" "mpirun -n 3 $prog $*" "$rc" "$out" "$t0"
}

check() {
    local section=$1 regex=$2 what=$3 rc=$4 out=$5 t0=$6
    local dt
    dt=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.2f", b - a }')
    if [ "$rc" -eq 0 ] && echo "$out" | grep -Eq -- "$regex"; then
        printf 'ok   %-18s %-58s %6s s\n' "$section" "$what" "$dt"
        pass=$((pass + 1))
    else
        echo "FAIL $section: $what: exit $rc, want a line matching /$regex/; output:"
        echo "$out" | tail -n 25 | sed 's/^/    | /'
        fail=$((fail + 1))
    fi
}

# Threads and their primitives; processes; shared memory; sched; queue; subprocess
tour threads '^ok: every primitive behaved' tour_threads
tour threads 'two processes counted to 200000' sync
tour processes '^ok$' tour_processes --n 300000
tour shared-memory 'mpqueue: sum of squares 1..100 = 338350' ipc
tour sched 'cube\(7\) through the executor = 343' sched
tour queue '1000 jobs done by 4 workers .* 0 wrong results' workers
tour subprocess '^missing +-> ' run
# Futures: submit, wait, as_completed, cancel, callbacks; map
tour futures '^5\. callbacks run: 2' futures
tour futures '^3\. stream: WEFT_OK' map
# joblib: Parallel/delayed, Memory, dump
tour joblib-parallel '^n_jobs=2 \([0-9]+ workers\): 0 1 2 3 4 5 6 7 8 9' batch 2
tour joblib-memory '^run 2: .*\(10 hits, 0 computed\)' levels_memo --quick --dir "$T/memo" --clear
tour joblib-dump '^numpy should print' array_npy "$T"
# dask: delayed + compute, bag, dataframe (and pandarallel), distributed
tour dask-delayed '^check: the plain loop agrees' correlate --series 40 --length 500
tour dask-bag 'frequencies \+ top 10' bag_wordcount --generate 1
tour dask-dataframe '^parallel_apply on processes' table_groupby 20000
dist_row='^processes +2 .* match'
[ -n "$MPIRUN" ] && dist_row='^mpi +2 .* match' # the mpi level: 2 worker ranks
tour_mpi dask-distributed "$dist_row" levels --quick --workers 2 --outdir "$T/levels"
# Spark's top vs a sort; the median
tour top-vs-sort '^topk \(bounded heaps' bag_topk 200000
tour median 'quickselect median' bag_median 200000
# Monte Carlo: the same bits on every level and worker count
tour_mpi montecarlo '^ok: [0-9]+ runs, the same bits' montecarlo_pi --quick --levels
if [ -n "$MPIRUN" ] && { [ -z "$filter" ] || [[ montecarlo == *$filter* ]]; }; then
    ser=$("$X/montecarlo_pi" --quick --backend serial 2>&1 | grep -Eo 'bits 0x[0-9a-f]+ 0x[0-9a-f]+')
    mpi=$(timeout 300 "$MPIRUN" -n 3 "$X/montecarlo_pi" --quick --backend mpi 2>&1 |
        grep -Eo 'bits 0x[0-9a-f]+ 0x[0-9a-f]+')
    if [ -n "$ser" ] && [ "$ser" = "$mpi" ]; then
        echo "ok   montecarlo             mpi (2 worker ranks) and serial: $ser"
        pass=$((pass + 1))
    else
        echo "FAIL montecarlo: serial '$ser', mpi '$mpi'"
        fail=$((fail + 1))
    fi
fi

echo "tour: $(($(date +%s) - start)) s"
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
