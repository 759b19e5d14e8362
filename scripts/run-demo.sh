#!/usr/bin/env bash
# run-demo.sh : runs the levels demo (examples/levels) of BUILD (default
# build). When the build has the mpi backend and mpirun exists, the demo
# runs under `mpirun -n 3` (rank 0 runs the serial, threads, processes and
# mpi rows; ranks 1 and 2 are the mpi workers), oversubscribed if the
# machine has fewer cores, with Open MPI's settings for running as root.
# Usage: scripts/run-demo.sh [BUILD_DIR] [levels arguments...]
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$root/build}
[ $# -gt 0 ] && shift
levels=$build/examples/levels
[ -x "$levels" ] || { echo "run-demo: $levels is not built (make build)" >&2; exit 1; }
mkdir -p "$build/demo"
if command -v mpirun >/dev/null 2>&1 && ldd "$levels" 2>/dev/null | grep -q 'libmpi'; then
    export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
    export OMPI_MCA_rmaps_base_oversubscribe=1 OMPI_MCA_mpi_yield_when_idle=1
    echo "run-demo: mpirun -n 3 $levels --outdir $build/demo $*"
    exec mpirun -n 3 "$levels" --outdir "$build/demo" "$@"
fi
exec "$levels" --outdir "$build/demo" "$@"
