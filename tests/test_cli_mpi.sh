#!/usr/bin/env bash
# test_cli_mpi.sh : `weft --mpi` under mpirun gives the same output, joblog
# (all columns but the times) and exit status as the same run on one
# machine. Usage: test_cli_mpi.sh MPIRUN RANKS (WEFT_BIN in the environment).
set -u
MPIRUN=$1
RANKS=${2:-3}
W=${WEFT_BIN:-}
[ -n "$W" ] && [ -x "$W" ] || { echo "SKIP: WEFT_BIN is not set"; exit 77; }
W=$(realpath "$W")
T=$(mktemp -d "${TMPDIR:-/tmp}/weft-cli-mpi.XXXXXX")
trap 'rm -rf "$T"' EXIT
cd "$T"
fail=0

# compare NAME ARGS... : local run vs mpirun -n RANKS with --mpi (stdin: $IN)
compare() {
    local name=$1
    shift
    local lo mo lr mr
    lo=$("$W" --joblog jl.local "$@" <"${IN:-/dev/null}" 2>err.local)
    lr=$?
    mo=$("$MPIRUN" -n "$RANKS" "$W" --mpi --joblog jl.mpi "$@" <"${IN:-/dev/null}" 2>err.mpi)
    mr=$?
    if [ "$lo" != "$mo" ] || [ "$lr" != "$mr" ]; then
        echo "FAIL $name: exit $mr (mpi) vs $lr (local)"
        diff <(echo "$mo") <(echo "$lo") | head -10
        head -5 err.mpi
        fail=1
        return
    fi
    if [ "$(cut -f1,2,5- jl.local | sort)" != "$(cut -f1,2,5- jl.mpi | sort)" ]; then
        echo "FAIL $name: joblogs differ"
        diff <(cut -f1,2,5- jl.mpi | sort) <(cut -f1,2,5- jl.local | sort) | head -10
        fail=1
        return
    fi
    echo "ok $name ($(echo "$mo" | wc -l) lines, exit $mr)"
}

seq 200 >in.txt
compare echo -k -j2 echo ::: a b 'c d' ::: 1 2 3
compare exit_status -k -j2 'echo {}; exit $(({} % 3))' ::: 1 2 3 4 5 6 7
compare args_file -k -j3 'echo {#} {}; echo err {} >&2' :::: in.txt
compare tag -k --tag -j2 'printf "%s\n" {} {}{}' ::: x y z
IN=in.txt compare pipe -k --pipe --block 100 -j2 'wc -l'
IN=in.txt compare stdin -k -N7 -j2 echo
# (a halt's cut depends on timing when several jobs run at once, locally
# too: here the failing job is the last, so both runs see all output)
compare halt -k -j1 --halt soon,fail=1 'echo {}; exit {}' ::: 0 0 3
# which ranks ran jobs: every worker rank, as the jobs' parent pids (the ranks) show
pids=$("$MPIRUN" -n "$RANKS" "$W" --mpi -j1 'sleep 0.2; echo $PPID' ::: $(seq 12) 2>/dev/null | cut -d' ' -f1 | sort -u | wc -l)
if [ "$pids" != $((RANKS - 1)) ]; then
    echo "FAIL spread: jobs ran under $pids parent(s), expected the $((RANKS - 1)) worker ranks"
    fail=1
else
    echo "ok spread: jobs ran under the $pids worker ranks"
fi
[ $fail = 0 ] && echo "test_cli_mpi: all passed"
exit $fail
