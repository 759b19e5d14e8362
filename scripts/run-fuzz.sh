#!/usr/bin/env bash
# run-fuzz.sh : builds the libFuzzer targets of fuzz/ with clang (ASan +
# UBSan, the library instrumented for coverage) in build-fuzz/ and runs
# fuzz_svg for a while. Usage:
#     scripts/run-fuzz.sh [SECONDS]          (default 300)
# New inputs the fuzzer finds go to build-fuzz/corpus-svg/ (seeded from
# fuzz/corpus/svg/, which is left as it is); a crash writes
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
cc=${CC:-clang}
command -v "$cc" >/dev/null || { echo "run-fuzz: $cc not found (make deps installs clang)" >&2; exit 2; }
dir=build-fuzz
cmake -S . -B "$dir" -DCMAKE_C_COMPILER="$cc" -DCMAKE_BUILD_TYPE=Debug "-DCMAKE_C_FLAGS_DEBUG=-O1 -g" \
    -DWEFT_BUILD_FUZZ=ON -DWEFT_SANITIZE=address -DWEFT_BUILD_TESTS=OFF -DWEFT_BUILD_EXAMPLES=OFF \
    -DWEFT_BUILD_BENCH=OFF -DWEFT_BUILD_PROGRAMS=OFF -DWEFT_WITH_MPI=OFF -DWEFT_WERROR=OFF >/dev/null
cmake --build "$dir" -j "${JOBS:-$(nproc)}" --target fuzz_svg fuzz_cli_template
mkdir -p "$dir/corpus-svg"
cd "$dir"
# -max_len: real traces are large, but what breaks a reader shows in a few KiB.
ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
    ./fuzz/fuzz_svg -max_total_time="$seconds" -max_len=8192 -timeout=10 -rss_limit_mb=2048 \
    -dict="$root/fuzz/svg.dict" -print_final_stats=1 corpus-svg "$root/fuzz/corpus/svg"
# the weft command's template parser and input splitter, a fifth of the time
mkdir -p corpus-cli-template
ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
    ./fuzz/fuzz_cli_template -max_total_time="$(( (seconds + 4) / 5 ))" -max_len=4096 -timeout=10 \
    -print_final_stats=1 corpus-cli-template "$root/fuzz/corpus/cli_template"
