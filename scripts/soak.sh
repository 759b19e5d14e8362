#!/usr/bin/env bash
# soak.sh : the fault soak (docs/soak.md). Builds the soak program if needed,
# starts a CPU hog of 2 x nproc busy processes (2x oversubscription, always
# stopped on exit), runs build/tests/soak for the given time, prints its
# report and exits non-zero if anything was lost, wrong, hung or leaked, or
# if the soak program itself died.
# Usage:
#     scripts/soak.sh [--duration S] [--hog N] [--no-hog] [--build DIR] [SOAK OPTIONS...]
#   --duration S   seconds (default $WEFT_SOAK_SECONDS, else 600)
#   --hog N        busy processes (default 2 x nproc); --no-hog: none
#   --build DIR    build directory (default $BUILD, else build)
#   other options go to the soak program (build/tests/soak --help), e.g.
#   --skip near,hang  or  --backends processes  or  --seed 7
# The whole output is also kept in DIR/soak/soak-<date>.log.
set -uo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root" || exit 2
duration=${WEFT_SOAK_SECONDS:-600}
build=${BUILD:-build}
hog=$((2 * $(nproc 2>/dev/null || echo 2)))
args=()
while [ $# -gt 0 ]; do
    case $1 in
    --duration) duration=${2:?--duration needs seconds}; shift 2 ;;
    --duration=*) duration=${1#*=}; shift ;;
    --hog) hog=${2:?--hog needs a count}; shift 2 ;;
    --no-hog) hog=0; shift ;;
    --build) build=${2:?--build needs a directory}; shift 2 ;;
    -h | --help) sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) args+=("$1"); shift ;;
    esac
done
case $duration in
'' | *[!0-9.]*) echo "soak.sh: --duration wants seconds, not '$duration'" >&2; exit 2 ;;
esac

# Build (only what changed) the soak program.
if [ -f "$build/CMakeCache.txt" ]; then
    cmake --build "$build" --target soak -j "$(nproc)" >/dev/null || {
        echo "soak.sh: building the soak program failed (cmake --build $build --target soak)" >&2
        exit 2
    }
else
    make -C "$root" build BUILD="$build" || { echo "soak.sh: make build failed" >&2; exit 2; }
fi
prog=$build/tests/soak
[ -x "$prog" ] || { echo "soak.sh: $prog is missing" >&2; exit 2; }

# The CPU hog: each process spins, and stops by itself within ~1 s once this
# script is gone (even after a kill -9 of it); the trap stops them at once.
hog_pids=()
stop_hog() {
    [ ${#hog_pids[@]} -gt 0 ] || return 0
    kill "${hog_pids[@]}" 2>/dev/null
    wait "${hog_pids[@]}" 2>/dev/null
    hog_pids=()
}
trap stop_hog EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
for ((i = 0; i < hog; i++)); do
    bash -c 'while kill -0 "$1" 2>/dev/null; do for ((k = 0; k < 300000; k++)); do :; done; done' \
        soak-hog "$$" &
    hog_pids+=($!)
done

mkdir -p "$build/soak"
log=$build/soak/soak-$(date -u +%Y%m%dT%H%M%SZ).log
echo "soak.sh: $duration s with $hog busy processes on $(nproc) CPUs; log: $log"
"$prog" --duration "$duration" "${args[@]}" 2>&1 | tee "$log"
rc=${PIPESTATUS[0]}
stop_hog

result=$(grep '^SOAK_RESULT' "$log" | tail -n 1)
if [ $rc -gt 128 ]; then
    echo "soak.sh: FAIL: the soak program died of signal $((rc - 128)) (a defect in the calling" \
         "process; the counts so far are above)"
    exit 1
fi
if [ -z "$result" ]; then
    echo "soak.sh: FAIL: no SOAK_RESULT line (exit status $rc)"
    exit 1
fi
if [ $rc -ne 0 ] || [[ $result != *"status=PASS"* ]]; then
    echo "soak.sh: FAIL (exit status $rc)"
    exit 1
fi
echo "soak.sh: PASS"
