#!/usr/bin/env bash
# run-tests.sh : configures, builds and runs the CTest suite in one or more
# configurations, then prints a summary. Usage:
#     scripts/run-tests.sh [plain] [asan] [tsan]      (default: all three)
#   plain  build/       Release -O2 -g, -Werror, tests + examples, all labels
#                        (with the mpi backend when MPI is installed: label mpi)
#   asan   build-asan/  ASan + UBSan, -O1 -g, no `install` label, no MPI
#   tsan   build-tsan/  TSan, -O1 -g, no `install` label, no MPI
# Environment: JOBS (build parallelism, default nproc), CTEST_JOBS (default
# 2), WEFT_STRESS_SCALE (the plain run defaults to 10, the sanitizer runs to
# 2: the whole suite takes well under a minute at scale 1, so CI spends its
# time letting the stress tests hunt for races), CTEST_ARGS (extra ctest arguments, e.g. "-R queue"),
# WEFT_CLI_ORACLE_CACHE (where test_cli keeps GNU parallel's answers so that
# the later configurations do not run the oracle again; default build/cli-oracle).
# Exit status: 0 only if every configuration built and all its tests passed.
set -uo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root" || exit 1
jobs=${JOBS:-$(nproc)}
ctest_jobs=${CTEST_JOBS:-2}
phases=("$@")
[ ${#phases[@]} -gt 0 ] || phases=(plain asan tsan)

export WEFT_CLI_ORACLE_CACHE=${WEFT_CLI_ORACLE_CACHE:-$root/build/cli-oracle}
declare -A result passed failed skipped seconds
total_p=0 total_f=0 total_s=0 status=0

run_phase() {
    local phase=$1 dir extra=() ctest_extra=() wrap=() env=()
    case $phase in
    plain)
        dir=build
        extra=(-DCMAKE_BUILD_TYPE=Release "-DCMAKE_C_FLAGS_RELEASE=-O2 -g" -DWEFT_WERROR=ON
               -DWEFT_SANITIZE= -DWEFT_BUILD_EXAMPLES=ON -DWEFT_WITH_MPI=ON)
        env=(WEFT_STRESS_SCALE="${WEFT_STRESS_SCALE:-10}")
        ;;
    asan | tsan)
        dir=build-$phase
        local san=address
        [ "$phase" = tsan ] && san=thread
        # Sanitizer builds report warnings but do not fail on them: GCC
        # gives false positives under instrumentation (-Wmaybe-uninitialized,
        # -Wtsan); the plain build is the -Werror gate.
        # MPI is left out here: Open MPI's own allocations and threads make
        # ASan/TSan report its leaks and races, not ours. These builds test
        # the stub (the backend unavailable); the plain phase runs the mpi
        # label under mpirun.
        extra=(-DCMAKE_BUILD_TYPE=Debug "-DCMAKE_C_FLAGS_DEBUG=-O1 -g" -DWEFT_WERROR=OFF
               -DWEFT_SANITIZE=$san -DWEFT_BUILD_EXAMPLES=OFF -DWEFT_BUILD_BENCH=OFF
               -DWEFT_WITH_MPI=OFF)
        ctest_extra=(-LE install)
        env=(WEFT_STRESS_SCALE="${WEFT_STRESS_SCALE:-2}")
        # TSan needs a memory layout it knows; kernels with high mmap ASLR
        # entropy break it ("FATAL: ThreadSanitizer: unexpected memory
        # mapping"). Running without ASLR avoids that where setarch allows.
        if [ "$phase" = tsan ] && setarch "$(uname -m)" -R true 2>/dev/null; then
            wrap=(setarch "$(uname -m)" -R)
        fi
        ;;
    *)
        echo "run-tests: unknown configuration '$phase' (plain, asan, tsan)" >&2
        return 2
        ;;
    esac

    local log=$dir/ctest.log
    echo
    echo "################ $phase: configure + build in $dir/"
    cmake -S . -B "$dir" -DWEFT_BUILD_TESTS=ON "${extra[@]}" >/dev/null || {
        # show the configure output only when it failed
        cmake -S . -B "$dir" -DWEFT_BUILD_TESTS=ON "${extra[@]}"
        result[$phase]="CONFIGURE FAILED"; return 1; }
    cmake --build "$dir" -j "$jobs" || { result[$phase]="BUILD FAILED"; return 1; }

    echo
    echo "################ $phase: ctest ${env[*]} ${wrap[*]}"
    # shellcheck disable=SC2086
    (cd "$dir" && env "${env[@]}" "${wrap[@]}" ctest --output-on-failure --no-tests=error \
        -j "$ctest_jobs" "${ctest_extra[@]}" ${CTEST_ARGS:-}) 2>&1 | tee "$log"
    local rc=${PIPESTATUS[0]}
    local line total=0 nfail=0 nskip
    line=$(grep -E '[0-9]+% tests passed, [0-9]+ tests? failed out of [0-9]+' "$log" | tail -n 1)
    if [ -n "$line" ]; then
        nfail=$(sed -E 's/.* ([0-9]+) tests? failed.*/\1/' <<<"$line")
        total=$(sed -E 's/.*out of ([0-9]+).*/\1/' <<<"$line")
    fi
    nskip=$(grep -cE '\*\*\*Skipped' "$log")
    [ "$rc" -ne 0 ] && [ "$nfail" -eq 0 ] && nfail=1
    passed[$phase]=$((total - nfail - nskip < 0 ? 0 : total - nfail - nskip))
    failed[$phase]=$nfail
    skipped[$phase]=$nskip
    if [ "$rc" -eq 0 ]; then result[$phase]="ok"; else result[$phase]="TESTS FAILED"; fi
    return "$rc"
}

for phase in "${phases[@]}"; do
    start=$(date +%s)
    run_phase "$phase" || status=1
    seconds[$phase]=$(( $(date +%s) - start ))
done

echo
echo "################ summary"
for phase in "${phases[@]}"; do
    p=${passed[$phase]:-0} f=${failed[$phase]:-0} s=${skipped[$phase]:-0}
    case ${result[$phase]:-} in *FAILED) [ "$f" -eq 0 ] && f=1 ;; esac
    printf '  %-6s %-17s %4d passed, %3d failed, %3d skipped  (%d s)\n' \
        "$phase" "${result[$phase]:-not run}" "$p" "$f" "$s" "${seconds[$phase]:-0}"
    total_p=$((total_p + p)) total_f=$((total_f + f)) total_s=$((total_s + s))
done
for phase in "${phases[@]}"; do
    dir=build; [ "$phase" = plain ] || dir=build-$phase
    if [ -f "$dir/ctest.log" ] && grep -q 'The following tests FAILED' "$dir/ctest.log"; then
        echo "  failed in $phase:"
        sed -n '/The following tests FAILED/,$p' "$dir/ctest.log" | grep -E '^[[:space:]]+[0-9]+ - ' |
            sed 's/^/  /'
    fi
done
[ $status -eq 0 ] && echo "  ALL PASSED" || echo "  SOME CONFIGURATIONS FAILED"
echo "total: $total_p passed, $total_f failed, $total_s skipped"
exit $status
