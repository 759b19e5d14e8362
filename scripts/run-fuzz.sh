#!/usr/bin/env bash
# run-fuzz.sh : builds the libFuzzer targets of fuzz/ with clang (ASan +
# UBSan, the library instrumented for coverage) in build-fuzz/ and runs
# each target for a while. Usage:
#     scripts/run-fuzz.sh [SECONDS] [TARGET...]    (default 300 s each; default
#                                   targets: every fuzz/fuzz_<t>.c)
# `make test` runs every target for FUZZ_TEST_SECONDS (5), `make fuzz` for
# FUZZ_SECONDS (300). New inputs the fuzzer finds go to
# build-fuzz/corpus-<target>/ (seeded from fuzz/corpus/<target>/, which is
# left as it is); a crash writes
# build-fuzz/crash-* and ends the run with a non-zero status. Copy a crash
# input into fuzz/corpus/svg/ once it is fixed: the ctest fuzz_svg_replay
# then replays it in every `make test`. To add the small inputs that found
# new coverage to the corpus:
#     build-fuzz/fuzz/fuzz_svg -merge=1 -max_len=400 fuzz/corpus/svg build-fuzz/corpus-svg
# Environment: CC (default clang), JOBS (build parallelism).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
seconds=${1:-300}
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    for f in fuzz/fuzz_*.c; do t=${f#fuzz/fuzz_}; targets+=("${t%.c}"); done
fi
cc=${CC:-clang}
command -v "$cc" >/dev/null || { echo "run-fuzz: $cc not found (make deps installs clang)" >&2; exit 2; }
dir=build-fuzz
cmake -S . -B "$dir" -DCMAKE_C_COMPILER="$cc" -DCMAKE_BUILD_TYPE=Debug "-DCMAKE_C_FLAGS_DEBUG=-O1 -g" \
    -DWEFT_BUILD_FUZZ=ON -DWEFT_SANITIZE=address -DWEFT_BUILD_TESTS=OFF -DWEFT_BUILD_EXAMPLES=OFF \
    -DWEFT_BUILD_BENCH=OFF -DWEFT_BUILD_PROGRAMS=OFF -DWEFT_WITH_MPI=OFF -DWEFT_WERROR=OFF >/dev/null
cmake --build "$dir" -j "${JOBS:-$(nproc)}" --target "${targets[@]/#/fuzz_}"
cd "$dir"
for t in "${targets[@]}"; do
    mkdir -p "corpus-$t"
    # -max_len: real inputs are large, but what breaks a reader shows in a few KiB.
    dict=()
    if [ -f "$root/fuzz/$t.dict" ]; then dict=(-dict="$root/fuzz/$t.dict")
    elif [[ $t == npy_header || $t == npz ]]; then dict=(-dict="$root/fuzz/npy.dict"); fi
    echo "run-fuzz: fuzz_$t for $seconds s"
    ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
        "./fuzz/fuzz_$t" -max_total_time="$seconds" -max_len=8192 -timeout=10 -rss_limit_mb=2048 \
        "${dict[@]}" -print_final_stats=1 "corpus-$t" "$root/fuzz/corpus/$t"
done
