#!/usr/bin/env bash
# test_cli.sh : the weft command side by side with GNU parallel.
# Every case runs the same arguments through `weft` ($WEFT_BIN) and Debian's
# `parallel`, both with PARALLEL_SHELL=/bin/sh, and compares stdout (sorted
# where GNU parallel promises no order, exactly with -k), the exit status,
# and with --joblog the joblog's columns other than the times. A known,
# deliberate difference is listed in docs/cli.md and not tested here.
# Usage: WEFT_BIN=build/programs/weft tests/test_cli.sh [CASE-NAME-PATTERN]
# Exit: 0 all passed, 1 a difference, 77 GNU parallel or weft missing.
set -u
W=${WEFT_BIN:-}
[ -n "$W" ] && W=$(realpath "$W")
[ -n "$W" ] && [ -x "$W" ] || { echo "SKIP: WEFT_BIN is not set to the weft program"; exit 77; }
command -v parallel >/dev/null || { echo "SKIP: GNU parallel is not installed"; exit 77; }
filter=${1:-}

# GNU parallel's answers depend only on the arguments, the input and this
# script (which writes every input file). With WEFT_CLI_ORACLE_CACHE set to a
# directory (scripts/run-tests.sh sets it), run_both keeps them there keyed
# by a hash of all three and of parallel's version, so the sanitizer builds
# reuse the plain build's answers instead of paying Perl's start-up again.
oracle_dir=${WEFT_CLI_ORACLE_CACHE:-}
oracle_salt=
if [ -n "$oracle_dir" ] && mkdir -p "$oracle_dir"; then
    oracle_salt=$({ parallel --version 2>/dev/null | head -n 1; cat "${BASH_SOURCE[0]}"; } |
        sha256sum | cut -c1-64)
else
    oracle_dir=
fi

T=$(mktemp -d "${TMPDIR:-/tmp}/weft-cli-test.XXXXXX")
trap 'rm -rf "$T"' EXIT
export HOME=$T/home
mkdir -p "$HOME/.parallel"
touch "$HOME/.parallel/will-cite"
export PARALLEL_SHELL=/bin/sh
export LC_ALL=C.UTF-8
cd "$T"

pass=0
fail=0
failed_names=()

# run_both MODE NAME STDIN-FILE ARGS... : MODE compares stdout exactly,
# sorted (lines as a multiset), words (words as a multiset), sum (numbers)
# or jobsum (the number of lines and their sum). With via_pipe=1 weft reads
# STDIN-FILE through a pipe.
via_pipe=0
run_both() {
    local mode=$1 name=$2 in=$3
    shift 3
    if [ -n "$filter" ] && [[ $name != *$filter* ]]; then return; fi
    local a=() b=()
    for x in "$@"; do
        a+=("${x//@JL@/$T/jl.weft}")
        b+=("${x//@JL@/$T/jl.gnu}")
    done
    rm -f "$T/jl.weft" "$T/jl.gnu"
    local wo go wr gr
    if [ "$via_pipe" = 1 ]; then
        # weft reads a pipe (not a file it may splice from); GNU parallel
        # reads the file, its answer is the same either way
        wo=$(cat "$in" | "$W" "${a[@]}" 2>"$T/err.weft"; echo "rc=$?")
    else
        wo=$("$W" "${a[@]}" <"$in" 2>"$T/err.weft"; echo "rc=$?")
    fi
    local key=
    if [ -n "$oracle_dir" ]; then
        key=$({ printf '%s\0' "$oracle_salt" "$@"; printf '\1'; cat "$in"; } | sha256sum | cut -c1-64)
        key=$oracle_dir/$key
    fi
    if [ -n "$key" ] && [ -f "$key.out" ]; then
        go=$(cat "$key.out")
        if [ -f "$key.jl" ]; then cp "$key.jl" "$T/jl.gnu"; fi
    else
        go=$(parallel "${b[@]}" <"$in" 2>"$T/err.gnu"; echo "rc=$?")
        if [ -n "$key" ]; then
            # the joblog first: an answer on disk is a whole answer
            if [ -f "$T/jl.gnu" ]; then cp "$T/jl.gnu" "$key.jl.$$" && mv "$key.jl.$$" "$key.jl"; fi
            printf '%s' "$go" >"$key.out.$$" && mv "$key.out.$$" "$key.out"
        fi
    fi
    wr=${wo##*rc=}
    gr=${go##*rc=}
    wo=${wo%rc=*}
    go=${go%rc=*}
    if [ "$mode" = sorted ]; then
        wo=$(printf '%s' "$wo" | sort)
        go=$(printf '%s' "$go" | sort)
    elif [ "$mode" = sum ]; then
        # --pipe chunks may be cut at other records (docs/cli.md): the
        # counts per chunk differ, their sum does not
        wo=$(printf '%s' "$wo" | awk '{s += $1} END {print s + 0}')
        go=$(printf '%s' "$go" | awk '{s += $1} END {print s + 0}')
    elif [ "$mode" = jobsum ]; then
        # --roundrobin: which job gets which chunk is not promised; the
        # number of jobs (one output line each) and the sum are
        wo=$(printf "%s" "$wo" | awk '{s += $1} END {print NR " jobs, sum " s + 0}')
        go=$(printf "%s" "$go" | awk '{s += $1} END {print NR " jobs, sum " s + 0}')
    elif [ "$mode" = words ]; then
        wo=$(printf '%s' "$wo" | tr ' ' '\n' | sort)
        go=$(printf '%s' "$go" | tr ' ' '\n' | sort)
    fi
    local ok=1 why=""
    if [ "$wo" != "$go" ]; then
        ok=0
        why="stdout differs"
    fi
    if [ "$wr" != "$gr" ]; then
        ok=0
        why="$why exit $wr (weft) vs $gr (parallel)"
    fi
    if [ -f "$T/jl.gnu" ]; then
        local jw jg
        jw=$(cut -f1,2,5- "$T/jl.weft" 2>/dev/null | sort)
        jg=$(cut -f1,2,5- "$T/jl.gnu" | sort)
        if [ "$jw" != "$jg" ]; then
            ok=0
            why="$why joblog differs"
            diff <(echo "$jw") <(echo "$jg") | head -10
        fi
    fi
    if [ $ok = 1 ]; then
        pass=$((pass + 1))
    else
        fail=$((fail + 1))
        failed_names+=("$name")
        echo "FAIL $name: $why"
        echo "  args: $*"
        diff <(printf "%s\n" "$wo") <(printf "%s\n" "$go") | head -10 | cut -c1-200
        head -c 400 "$T/err.weft"
    fi
}

N=/dev/null
# --- inputs ------------------------------------------------------------
printf 'a\nb b\nc\n' >lines.txt
printf '1\n2\n' >nums.txt
printf 'x 1\0y\n2\0z\0' >nul.txt
printf 'a,b,,c' >comma.txt
printf 'n\tv\nfoo\t1\nbar baz\t2\n' >tsv.txt
printf 'one\n\ntwo\n\n' >empty.txt
printf 'é\nñ ü\n日本\n' >utf.txt
printf "it's\na\"b\n\$HOME\nx;y\na|b\n\`id\`\n*\n~\n-n\n\\\\t\n(x)\n" >tricky.txt
head -c 20000 /dev/zero | tr '\0' 'x' >long.txt
echo >>long.txt
seq 100000 >seq100k.txt
seq 120 >seq120.txt
seq 3000 >seq3k.txt
{ printf 'a\nb\n'; head -c 5000 /dev/zero | tr '\0' y; printf '\nc\nd\n'; } >longrec.txt

run_both sorted basic $N echo ::: a b c
run_both exact keep $N -k echo ::: a b c d e f
run_both exact product $N -k echo ::: a b ::: 1 2 3
run_both exact product3 $N -k echo {3}{2}{1} ::: a b ::: 1 2 ::: x y
run_both exact linked $N -k echo ::: a b c :::+ 1 2 3
run_both exact linked_wrap $N -k echo ::: a b c d :::+ 1 2
run_both exact linked_prod $N -k echo ::: a b :::+ 1 2 ::: x y
run_both exact file $N -k echo :::: lines.txt
run_both exact files2 $N -k echo :::: lines.txt nums.txt
run_both exact file_linked $N -k echo :::: lines.txt ::::+ nums.txt
run_both exact mixed $N -k echo ::: p q :::: nums.txt
run_both exact stdin lines.txt -k echo
run_both exact stdin_braces lines.txt -k echo '<{}>'
run_both exact argfile $N -k -a lines.txt echo
run_both exact argfile2 $N -k -a lines.txt -a nums.txt echo
run_both exact null nul.txt -k -0 echo '[{}]'
run_both exact null_long nul.txt -k --null echo '[{}]'
run_both exact delim comma.txt -k -d , echo '[{}]'
run_both exact colsep tsv.txt -k --colsep '\t' echo '{2}-{1}'
run_both exact colsep_all tsv.txt -k -C '\t' echo
run_both exact header_colsep tsv.txt -k --header : --colsep '\t' echo '{v}:{n}'
run_both exact header_src $N -k --header : echo '{a}-{b}' ::: a 1 2 ::: b x y
run_both exact n2 seq120.txt -k -N2 echo
run_both exact n3_pos seq120.txt -k -N3 echo '{3} {1}'
run_both exact n_small seq120.txt -k -n 4 echo
run_both exact N_last lines.txt -k -N2 echo '{1}|{2}'
run_both words X seq120.txt -j2 -X echo pre{}post
run_both words X3 nums.txt -j3 -X echo
run_both words m seq120.txt -m echo
run_both words m_100k seq100k.txt -k -m echo
run_both exact repl $N -k echo {} {.} {/} {//} {/.} {#} ::: /a/b.c/d.e.f a. .a a/.b /a/ a/b/ / ./x.y x.y/z noext
run_both exact repl_empty $N -k echo '[{}]' '[{.}]' '[{/}]' '[{//}]' '[{/.}]' ::: ''
run_both exact repl_pos $N -k echo {1.} {2/} {2//} {2/.} {-1} ::: a.b ::: /x/y.z
run_both exact slot $N -j1 -k echo {%} {#} ::: a b c
run_both exact I $N -k -I XX echo XX XX.x ::: a b
run_both exact I_brace $N -k -I '{x}' echo '{x}{x}' ::: a b
run_both exact extrepl $N -k --extensionreplace ,, echo ,, ::: a.b c.d
run_both exact basenamerepl $N -k --basenamereplace BB --dirnamereplace DD echo BB DD ::: /p/q.r
run_both exact bnextrepl $N -k --basenameextensionreplace BE --seqreplace SQ --slotreplace SL -j1 echo BE SQ SL ::: /p/q.r
run_both exact append $N -k echo x ::: a 'b c'
run_both exact tricky tricky.txt -k echo
run_both exact tricky_shell tricky.txt -k 'echo "<"{}">"; echo {}'
run_both exact tricky_printf tricky.txt -k printf '%s|\n'
run_both exact tricky_args $N -k echo ::: "it's" 'a"b' '$HOME' 'x;y' 'a|b' '`id`' '*' '~' ' lead' 'trail ' 'a  b'
run_both exact quote_q $N -k -q printf '%s;%s\n' {} 'x y' ::: 'a b' c
run_both exact quote_q_sh $N -k -q sh -c 'echo $0 "$1"' {} arg ::: 'a b'
run_both exact shell_syntax $N -k 'echo {} | tr a-z A-Z; echo done' ::: ab cd
run_both exact redirect $N -k 'echo {} > out.{}; cat out.{}' ::: r1 r2
run_both exact empty_lines empty.txt -k echo '[{}]'
run_both exact no_empty empty.txt -k -r echo '[{}]'
run_both exact unicode utf.txt -k echo '{}' '{.}'
run_both exact long_line long.txt -k wc -c
run_both exact long_arg long.txt -k -q sh -c 'printf %s "$1" | wc -c' sh
run_both exact no_command $N -k ::: 'echo a' 'echo b; echo c'
run_both exact stdin_cmds lines.txt -k -I ZZ echo 'ZZ'
run_both sorted many seq120.txt -j4 echo
run_both exact many_k seq120.txt -k -j4 echo
run_both exact echo_e $N -k echo -e ::: 'a\tb'
run_both exact notfound $N nonexistent-command-weft ::: 1 2
# --- running ------------------------------------------------------------
run_both exact j1 $N -j1 echo ::: 3 2 1
run_both sorted jplus $N -j +1 echo ::: a b c
run_both sorted jminus $N -j -1 echo ::: a b c
run_both sorted jpct $N -j 50% echo ::: a b c
run_both sorted j0 $N -j 0 echo ::: a b c d e
run_both exact k_sleep $N -k -j4 'sleep 0.{}; echo {}' ::: 3 1 2 0
run_both exact tag $N -k --tag echo ::: a 'b c' ::: 1
run_both exact tagstring $N -k --tagstring '{1}-x' 'echo {}; echo two' ::: a b ::: 1
run_both sorted linebuf $N --line-buffer 'echo {}; echo {}{}' ::: a b c
run_both sorted ungroup $N -u 'echo {}' ::: a b c
run_both exact ungroup_k1 $N -u -j1 'echo {}' ::: a b c
run_both exact verbose $N -v -k echo ::: a b
run_both exact joblog $N -k --joblog @JL@ 'echo {}; exit {}' ::: 0 1 2 0
run_both exact joblog_sig $N -k --joblog @JL@ 'kill -9 $$' ::: 1
run_both exact exit_count $N 'exit {}' ::: 0 1 2 3 0
run_both exact exit_many seq120.txt -j8 'exit 1'
run_both exact retries $N -k --retries 3 --joblog @JL@ 'echo x{}; exit 1' ::: a b
run_both exact timeout $N -k --joblog @JL@ --timeout 1 'sleep {}; echo {}' ::: 0 3
run_both exact halt_soon $N -j1 --halt soon,fail=1 'echo {}; exit {}' ::: 0 2 3 0
run_both exact halt_now $N -j1 --halt now,fail=1 'echo {}; exit {}' ::: 0 2 3 0
run_both exact halt_success $N -j1 --halt now,success=1 'echo {}; exit {}' ::: 1 0 3 0
run_both exact halt_legacy $N -j1 --halt 1 'echo {}; exit {}' ::: 0 2 3 0
run_both exact delay $N -k --delay 0.1 echo ::: a b c
run_both exact dryrun $N --dry-run echo {} ::: 'a b' 'c;d'
run_both exact dryrun_X seq120.txt --dry-run -j2 -X echo
run_both sorted shuf seq120.txt --shuf echo
run_both exact pipe_cat seq3k.txt -k --pipe cat
run_both exact pipe_block seq3k.txt -k --pipe --block 10k cat
run_both sum pipe_wc seq100k.txt --pipe --block 100k 'wc -l'
run_both exact pipe_L seq120.txt -k --pipe -L 7 --block 100 'wc -l'
run_both exact pipe_recend comma.txt -k --pipe --recend , --block 1 cat
run_both exact pipe_recstart tsv.txt -k --pipe --recstart foo --block 1 'cat; echo ---'
run_both exact pipe_header tsv.txt -k --pipe --header : --block 1k 'cat; echo ---'
run_both exact pipe_seq seq120.txt -k --pipe --block 1k 'echo {#}; wc -l'
run_both exact pipe_seq_64k seq100k.txt -k --pipe --block 64k 'echo {#}; wc -l'
run_both sum pipe_longrec longrec.txt -k --pipe --block 1k 'wc -c'
run_both exact pipe_longrec_cat longrec.txt -k --pipe --block 1k cat
run_both exact pipe_joblog seq100k.txt -k --pipe --block 100k --joblog @JL@ 'wc -l'
# stdin a pipe: read into memory (above: a file, spliced by byte range)
via_pipe=1
run_both exact pipe_cat_stream seq3k.txt -k --pipe cat
run_both exact pipe_block_stream seq3k.txt -k --pipe --block 10k cat
run_both exact pipe_seq_stream seq100k.txt -k --pipe --block 64k 'echo {#}; wc -l'
run_both exact pipe_header_stream tsv.txt -k --pipe --header : --block 1k 'cat; echo ---'
run_both sum pipe_longrec_stream longrec.txt -k --pipe --block 1k 'wc -c'
run_both exact pipe_longrec_cat_stream longrec.txt -k --pipe --block 1k cat
run_both exact pipe_L_stream seq120.txt -k --pipe -L 7 --block 100 'wc -l'
via_pipe=0
# --roundrobin: -j jobs at most, each fed chunks while it runs
run_both jobsum rr_wc seq100k.txt --pipe --roundrobin -j3 --block 10k 'wc -l'
run_both jobsum rr_pipe seq100k.txt --pipe --round-robin -j2 --block 10k 'wc -l'
run_both sorted rr_cat seq100k.txt --pipe --roundrobin -j3 --block 10k cat
run_both jobsum rr_one_chunk seq120.txt --pipe --roundrobin -j4 --block 100k 'wc -l'
run_both exact rr_keep seq100k.txt -k --pipe --roundrobin -j3 --block 10k 'wc -l'
run_both sorted rr_header tsv.txt --pipe --roundrobin --header : -j2 --block 1 cat
via_pipe=1
run_both sorted rr_cat_stream seq100k.txt --pipe --roundrobin -j3 --block 10k cat
run_both exact rr_keep_stream seq100k.txt -k --pipe --roundrobin -j3 --block 10k 'wc -l'
via_pipe=0
# --pipe from a file not read from its start: the chunks begin where stdin
# was, and stdin is left at the end (the cat after prints nothing)
if [ -z "$filter" ] || [[ pipe_offset == *$filter* ]]; then
    ow=$( { read -r _; "$W" -k --pipe --block 1k cat; cat; } <seq3k.txt | md5sum)
    og=$( { read -r _; parallel -k --pipe --block 1k cat; cat; } <seq3k.txt | md5sum)
    want=$(tail -n +2 seq3k.txt | md5sum)
    if [ "$ow" = "$og" ] && [ "$ow" = "$want" ]; then pass=$((pass + 1)); else
        fail=$((fail + 1)); failed_names+=(pipe_offset); echo "FAIL pipe_offset: weft $ow, parallel $og, want $want"
    fi
fi

# --- results, resume -----------------------------------------------------
if [ -z "$filter" ] || [[ results == *$filter* ]]; then
    rm -rf rw rg
    "$W" --results rw echo ::: a 'b/c' ::: 1 >/dev/null 2>&1
    parallel --results rg echo ::: a 'b/c' ::: 1 >/dev/null 2>&1
    lw=$(cd rw && find . -type f | sort | while read -r f; do echo "$f $(cat "$f")"; done)
    lg=$(cd rg && find . -type f | sort | while read -r f; do echo "$f $(cat "$f")"; done)
    if [ "$lw" = "$lg" ]; then pass=$((pass + 1)); else
        fail=$((fail + 1)); failed_names+=(results); echo "FAIL results"
        diff <(echo "$lw") <(echo "$lg")
    fi
fi
if [ -z "$filter" ] || [[ resume == *$filter* ]]; then
    for tool in weft gnu; do
        if [ $tool = weft ]; then P=("$W"); else P=(parallel); fi
        rm -f jl.$tool
        "${P[@]}" -k --joblog jl.$tool 'echo {}; exit {}' ::: 0 1 0 2 >out1.$tool 2>/dev/null
        echo "rc=$?" >>out1.$tool
        # many skipped seqs (holes in -k's ring) with failed jobs behind
        # them: a finished job behind a hole was once never written
        "${P[@]}" -k --resume --joblog jl.$tool 'echo {}; exit {}' ::: 0 1 0 2 5 0 0 3 0 4 0 6 0 0 7 >out2.$tool 2>/dev/null
        echo "rc=$?" >>out2.$tool
        "${P[@]}" -k --resume-failed --joblog jl.$tool 'echo {}; exit {}' ::: 0 1 0 2 5 0 0 3 0 4 0 6 0 0 7 >out3.$tool 2>/dev/null
        echo "rc=$?" >>out3.$tool
        cut -f1,2,5- jl.$tool >jlc.$tool
    done
    ok=1
    for f in out1 out2 out3 jlc; do cmp -s $f.weft $f.gnu || { ok=0; echo "FAIL resume: $f"; diff $f.weft $f.gnu; }; done
    if [ $ok = 1 ]; then pass=$((pass + 1)); else fail=$((fail + 1)); failed_names+=(resume); fi
fi
# the output spilled to $TMPDIR past the memory bound comes back whole
if [ -z "$filter" ] || [[ spill == *$filter* ]]; then
    mkdir -p spill
    got=$(TMPDIR=$T/spill "$W" -k --output-memory 1k 'seq {}' ::: 100000 3 | md5sum)
    want=$( (seq 100000; seq 3) | md5sum)
    left=$(ls spill | wc -l)
    if [ "$got" = "$want" ] && [ "$left" = 0 ]; then pass=$((pass + 1)); else
        fail=$((fail + 1)); failed_names+=(spill); echo "FAIL spill: $got vs $want, $left files left"
    fi
    # a full disk is an error, never a short output (a 64 KiB tmpfs is
    # not available to every user: a directory that cannot be written to
    # stands in for it)
    mkdir -p ro && chmod 500 ro
    if [ "$(id -u)" != 0 ]; then
        TMPDIR=$T/ro "$W" --output-memory 1k 'seq 10000' ::: 1 >/dev/null 2>err.spill
        rc=$?
        if [ $rc = 255 ] && grep -q "cannot keep the output" err.spill; then pass=$((pass + 1)); else
            fail=$((fail + 1)); failed_names+=(spill_error); echo "FAIL spill_error rc=$rc"; cat err.spill
        fi
    fi
fi

# signals (weft's own behaviour, docs/cli.md): the first SIGINT lets the
# running jobs finish and starts no more; the second SIGTERM kills them
if [ -z "$filter" ] || [[ signals == *$filter* ]]; then
    # each job says it started (a file); SIGINT goes once jobs 1 and 2 run
    # and long before either ends (4 s), whatever the load: polling the
    # process table for their sleeps (as before) could miss a 1 s window
    # on a busy machine and signal a weft that had finished every job
    rm -f started.*
    "$W" -j2 'touch started.{}; sleep 4; echo {}' ::: 1 2 3 4 >sig1.out 2>/dev/null &
    p=$!
    for _ in $(seq 600); do [ -e started.1 ] && [ -e started.2 ] && break; sleep 0.05; done
    kill -INT $p
    wait $p
    rc1=$?
    got1=$(sort sig1.out | tr '\n' ' ')
    "$W" -j2 'sleep 30; echo {}' ::: 1 2 3 >sig2.out 2>/dev/null &
    p=$!
    sleep 0.5
    s=$(date +%s)
    kill -TERM $p
    sleep 0.2
    kill -TERM $p
    wait $p
    rc2=$?
    took=$(($(date +%s) - s))
    if [ $rc1 = 130 ] && [ "$got1" = "1 2 " ] && [ $rc2 = 143 ] && [ $took -lt 10 ] && [ ! -s sig2.out ]; then
        pass=$((pass + 1))
    else
        fail=$((fail + 1)); failed_names+=(signals)
        echo "FAIL signals: first: rc $rc1 output '$got1' (want 130, '1 2 '); second: rc $rc2 after ${took}s (want 143, < 10 s)"
    fi
fi

echo "test_cli: $pass passed, $fail failed ${failed_names[*]:-}"
[ $fail = 0 ]
