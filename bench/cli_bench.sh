#!/usr/bin/env bash
# cli_bench.sh : the weft command beside GNU parallel, xargs -P2 and a bash
# loop, in the same run (installed as build/bench/cli_bench; run by
# scripts/run-bench.sh with WEFT_BIN set). Writes cli_bench.json in the
# current directory: one object per (bench, system) with the median of
# REPS runs (min and max too).
#   cli_true_2000   2000 x `true`, -j2                       ms per job
#   cli_echo_100k   100k x `echo {}` with -k, to a file      ms per job
#                   (GNU parallel, xargs and the loop run the first 10k:
#                   at their cost 100k take minutes; the unit is per job)
#   cli_pipe_1gib   --pipe --block 16M wc -l over 1 GiB     GB/s
#   cli_stream_10m  seq 10M | weft -N 10000 echo: max RSS   MiB (bounded memory)
# Environment: WEFT_BIN (the weft program), REPS (default 3), TMPDIR;
# CLI_BENCH_SMALL=1 shrinks every size 100x (a smoke run of the script).
set -uo pipefail
W=${WEFT_BIN:-$(dirname "$0")/../programs/weft}
[ -x "$W" ] || { echo "cli_bench: weft not found (WEFT_BIN)" >&2; exit 1; }
REPS=${REPS:-3}
div=1
[ "${CLI_BENCH_SMALL:-0}" = 1 ] && div=100
n_true=$((2000 / div)) n_echo=$((100000 / div)) n_anchor=$((10000 / div))
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
    read -r med min max < <(printf '%s\n' "${vals[@]}" | stats)
    printf '%-16s %-14s median %10.4f  min %10.4f  max %10.4f %s\n' "$bench" "$system" "$med" "$min" "$max" "$unit"
    rows+=("{\"bench\": \"$bench\", \"system\": \"$system\", \"value\": $med, \"min\": $min, \"max\": $max, \"unit\": \"$unit\", \"reps\": $REPS}")
}

seq $n_true >"$T/s2k"
seq $n_echo >"$T/s100k"
seq $n_anchor >"$T/s10k"
cd "$T"

# 2000 x true, -j2: ms per job
measure cli_true_2000 weft ms/job "1000/$n_true" "'$W' -j2 true <s2k"
[ $have_parallel = 1 ] && measure cli_true_2000 gnu_parallel ms/job "1000/$n_true" "parallel -j2 true <s2k"
measure cli_true_2000 xargs_P2 ms/job "1000/$n_true" "xargs -P2 -n1 true <s2k"
measure cli_true_2000 bash_loop ms/job "1000/$n_true" "while read -r x; do /bin/true \$x; done <s2k"

# 100k x echo {} with -k, to a file
measure cli_echo_100k weft ms/job "1000/$n_echo" "'$W' -k echo {} <s100k >out.weft && [ \$(wc -l <out.weft) = $n_echo ]"
[ $have_parallel = 1 ] && measure cli_echo_100k gnu_parallel_10k ms/job "1000/$n_anchor" "parallel -k echo {} <s10k >out.gnu"
measure cli_echo_100k xargs_P2_10k ms/job "1000/$n_anchor" "xargs -P2 -n1 echo <s10k >out.xargs"
measure cli_echo_100k bash_loop_10k ms/job "1000/$n_anchor" "while read -r x; do /bin/echo \$x; done <s10k >out.loop"

# --pipe over 1 GiB (needs 1 GiB in TMPDIR)
avail=$(df -Pk . | awk 'NR==2 {print $4}')
if [ "${avail:-0}" -gt $((pipe_bytes / 1024 + 100 * 1024)) ]; then
    yes 'the quick brown fox jumps over the lazy dog 0123456789' | head -c $pipe_bytes >big
    measure cli_pipe_1gib weft GB/s_inv "1073741824/$pipe_bytes" "'$W' --pipe --block 16M wc -l <big"
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
