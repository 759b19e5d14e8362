#!/usr/bin/env bash
# cli_bench.sh : the weft command beside GNU parallel, xargs -P2 and a bash
# loop, in the same run (installed as build/bench/cli_bench; run by
# scripts/run-bench.sh with WEFT_BIN set). Writes cli_bench.json in the
# current directory: one object per (bench, system) with the median of
# the runs (min and max too).
#   cli_true_2000   2000 x `true`, -j2 (REPS runs)              ms per job
#                   beside its floor: a C loop starting /bin/true 2000
#                   times over 2 threads (helpers/cli_spawn_floor:
#                   posix_spawn, vfork+exec, fork+exec), no pipes
#   cli_echo_100k   100k x `echo {}` with -k, to a file          ms per job
#                   every system runs all 100k jobs, ECHO_REPS times
#                   (default 1), each run under a limit of ECHO_LIMIT s
#                   (default 2400); a run the limit stops is reported from
#                   the jobs it finished by then ("limited": true; ms per
#                   job = limit / jobs done, a lower bound of its cost)
#   cli_pipe_1gib   --pipe --block 16M wc -l over 1 GiB (REPS)    GB/s
#   cli_stream_10m  seq 10M | weft -N 10000 echo: max RSS          MiB (bounded memory)
# How long: cli_echo_100k dominates, and in it GNU parallel: at its 5-20 ms
# a job on the 2-core VM of this project (weft ~1-2.5 ms, xargs -P2 and the
# loop 2-5 ms), its 100k jobs alone take 10-35 minutes, and the whole bench
# up to an hour on a quiet machine. Under load everything is slower (GNU
# parallel took 590 ms a job at load 30): the limit then stops it and its
# row is a lower bound. Give the whole bench at least 4 * ECHO_LIMIT + 900 s.
# Environment: WEFT_BIN (the weft program), REPS (default 3), ECHO_REPS,
# ECHO_LIMIT, TMPDIR; CLI_BENCH_SMALL=1 shrinks every size 100x (a smoke
# run of the script).
set -uo pipefail
W=${WEFT_BIN:-$(dirname "$0")/../programs/weft}
[ -x "$W" ] || { echo "cli_bench: weft not found (WEFT_BIN)" >&2; exit 1; }
FLOOR=$(cd "$(dirname "$0")" && pwd)/helpers/cli_spawn_floor
REPS=${REPS:-3}
ECHO_REPS=${ECHO_REPS:-1}
ECHO_LIMIT=${ECHO_LIMIT:-2400}
div=1
[ "${CLI_BENCH_SMALL:-0}" = 1 ] && div=100
n_true=$((2000 / div)) n_echo=$((100000 / div))
pipe_bytes=$((1073741824 / div)) n_stream=$((10000000 / div))
T=$(mktemp -d "${TMPDIR:-/tmp}/weft-cli-bench.XXXXXX")
trap 'rm -rf "$T"' EXIT
export HOME=$T/home PARALLEL_SHELL=/bin/sh
mkdir -p "$HOME/.parallel" && touch "$HOME/.parallel/will-cite"
have_parallel=0
command -v parallel >/dev/null && have_parallel=1
out=cli_bench.json
rows=()

now() { date +%s.%N; }
# median min max of the numbers on stdin
stats() { sort -g | awk '{a[NR]=$1} END {printf "%s %s %s\n", a[int((NR+1)/2)], a[1], a[NR]}'; }

# row BENCH SYSTEM UNIT REPS EXTRA-JSON VALUES... : prints and keeps a row
row() {
    local bench=$1 system=$2 unit=$3 reps=$4 extra=$5
    shift 5
    read -r med min max < <(printf '%s\n' "$@" | stats)
    # bc prints ".42" for 0.42: JSON needs the leading digit
    printf -v med '%.6g' "$med"
    printf -v min '%.6g' "$min"
    printf -v max '%.6g' "$max"
    printf '%-16s %-18s median %10.4f  min %10.4f  max %10.4f %s%s\n' "$bench" "$system" "$med" "$min" "$max" "$unit" "${extra:+ $extra}"
    rows+=("{\"bench\": \"$bench\", \"system\": \"$system\", \"value\": $med, \"min\": $min, \"max\": $max, \"unit\": \"$unit\", \"reps\": $reps$extra}")
}

# measure BENCH SYSTEM UNIT SCALE CMD... : SCALE turns seconds into the unit
measure() {
    local bench=$1 system=$2 unit=$3 scale=$4
    shift 4
    local vals=() s e
    for _ in $(seq "$REPS"); do
        s=$(now)
        bash -c "$*" >/dev/null 2>"$T/err" || { echo "cli_bench: $bench/$system failed: $(head -3 "$T/err")" >&2; return; }
        e=$(now)
        vals+=("$(echo "($e - $s) * $scale" | bc -l)")
    done
    row "$bench" "$system" "$unit" "$REPS" "" "${vals[@]}"
}

# floor SYSTEM MODE : the C loop's own figure (ms per start), REPS times
floor() {
    local vals=() v
    [ -x "$FLOOR" ] || { echo "cli_bench: $FLOOR not built: no floor" >&2; return; }
    for _ in $(seq "$REPS"); do
        v=$("$FLOOR" "$2" "$n_true" 2 /bin/true) || { echo "cli_bench: floor $2 failed" >&2; return; }
        vals+=("$v")
    done
    row cli_true_2000 "$1" ms/job "$REPS" "" "${vals[@]}"
}

# limited BENCH SYSTEM N OUTFILE CMD... : ECHO_REPS runs of CMD (N jobs,
# one line each into OUTFILE) under timeout ECHO_LIMIT; a run stopped by
# the limit counts the lines it wrote by then
limited() {
    local bench=$1 system=$2 n=$3 of=$4
    shift 4
    local vals=() s e done lim=0 rc
    for _ in $(seq "$ECHO_REPS"); do
        rm -f "$of"
        s=$(now)
        timeout --kill-after=10 "$ECHO_LIMIT" bash -c "$*" >/dev/null 2>"$T/err"
        rc=$?
        e=$(now)
        done=$(wc -l <"$of" 2>/dev/null || echo 0)
        if [ $rc = 124 ] || [ $rc = 137 ]; then
            lim=1
            [ "$done" -gt 0 ] || { echo "cli_bench: $bench/$system: no job done in ${ECHO_LIMIT} s" >&2; return; }
            vals+=("$(echo "$ECHO_LIMIT * 1000 / $done" | bc -l)")
        elif [ $rc != 0 ] || [ "$done" != "$n" ]; then
            echo "cli_bench: $bench/$system failed (exit $rc, $done of $n lines): $(head -3 "$T/err")" >&2
            return
        else
            vals+=("$(echo "($e - $s) * 1000 / $n" | bc -l)")
        fi
    done
    local extra=""
    [ $lim = 1 ] && extra=", \"limited\": true, \"limit_s\": $ECHO_LIMIT, \"jobs_done\": $done"
    row "$bench" "$system" ms/job "$ECHO_REPS" "$extra" "${vals[@]}"
}

seq $n_true >"$T/s2k"
seq $n_echo >"$T/s100k"
cd "$T"

# 2000 x true, -j2: ms per job, and the floor under it
measure cli_true_2000 weft ms/job "1000/$n_true" "'$W' -j2 true <s2k"
[ $have_parallel = 1 ] && measure cli_true_2000 gnu_parallel ms/job "1000/$n_true" "parallel -j2 true <s2k"
measure cli_true_2000 xargs_P2 ms/job "1000/$n_true" "xargs -P2 -n1 true <s2k"
measure cli_true_2000 bash_loop ms/job "1000/$n_true" "while read -r x; do /bin/true \$x; done <s2k"
floor floor_posix_spawn posix_spawn
floor floor_vfork vfork
floor floor_fork fork

# 100k x echo {} with -k, to a file: every system on all 100k jobs
limited cli_echo_100k weft "$n_echo" out.weft "'$W' -k echo {} <s100k >out.weft"
[ $have_parallel = 1 ] && limited cli_echo_100k gnu_parallel "$n_echo" out.gnu "parallel -k echo {} <s100k >out.gnu"
limited cli_echo_100k xargs_P2 "$n_echo" out.xargs "xargs -P2 -n1 echo <s100k >out.xargs"
limited cli_echo_100k bash_loop "$n_echo" out.loop "while read -r x; do /bin/echo \$x; done <s100k >out.loop"

# --pipe over 1 GiB (needs 1 GiB in TMPDIR)
avail=$(df -Pk . | awk 'NR==2 {print $4}')
if [ "${avail:-0}" -gt $((pipe_bytes / 1024 + 100 * 1024)) ]; then
    yes 'the quick brown fox jumps over the lazy dog 0123456789' | head -c $pipe_bytes >big
    measure cli_pipe_1gib weft GB/s_inv "1073741824/$pipe_bytes" "'$W' --pipe --block 16M wc -l <big"
    measure cli_pipe_1gib weft_stdin_pipe GB/s_inv "1073741824/$pipe_bytes" "cat big | '$W' --pipe --block 16M wc -l"
    [ $have_parallel = 1 ] && measure cli_pipe_1gib gnu_parallel GB/s_inv "1073741824/$pipe_bytes" "parallel --pipe --block 16M wc -l <big"
    measure cli_pipe_1gib cat_wc GB/s_inv "1073741824/$pipe_bytes" "wc -l <big"
    rm -f big
    # seconds per GiB -> GB/s for the rows just added
    for i in "${!rows[@]}"; do
        if [[ ${rows[$i]} == *'"GB/s_inv"'* ]]; then
            rows[$i]=$(python3 - "${rows[$i]}" <<'EOF'
import json, sys
r = json.loads(sys.argv[1])
for k in ("value", "min", "max"):
    r[k] = round(1.073741824 / r[k], 3)
r["min"], r["max"] = r["max"], r["min"]
r["unit"] = "GB/s"
print(json.dumps(r))
EOF
)
            echo "  ${rows[$i]}"
        fi
    done
else
    echo "cli_bench: less than 1.1 GiB free in $T: cli_pipe_1gib skipped" >&2
fi

# memory while streaming 10M lines: max RSS of weft
rss=$( { seq $n_stream | /usr/bin/time -f '%M' "$W" -k -N 10000 echo >/dev/null; } 2>&1 | tail -1)
echo "cli_stream_10m   weft           max RSS ${rss} KiB"
rows+=("{\"bench\": \"cli_stream_10m\", \"system\": \"weft\", \"value\": $(echo "$rss / 1024" | bc -l | xargs printf '%.1f'), \"unit\": \"MiB max RSS\", \"reps\": 1}")
rss=$( { seq $n_stream | /usr/bin/time -f '%M' "$W" --pipe --block 1M wc -l >/dev/null; } 2>&1 | tail -1)
echo "cli_stream_10m   weft --pipe    max RSS ${rss} KiB"
rows+=("{\"bench\": \"cli_stream_10m_pipe\", \"system\": \"weft\", \"value\": $(echo "$rss / 1024" | bc -l | xargs printf '%.1f'), \"unit\": \"MiB max RSS\", \"reps\": 1}")

cd - >/dev/null
{
    echo "["
    for i in "${!rows[@]}"; do
        sep=","
        [ "$i" = $((${#rows[@]} - 1)) ] && sep=""
        echo "  ${rows[$i]}$sep"
    done
    echo "]"
} >"$out"
echo "cli_bench: wrote $out"
