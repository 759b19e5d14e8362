#!/usr/bin/env bash
# install-deps.sh : installs the Debian 12 packages weft needs that are not
# installed yet. Nothing is touched (not even `apt-get update`) when all are
# there. Usage: scripts/install-deps.sh [--bench]
#   (no argument)  what `make build` and `make test` need
#   --bench        also the anchors `make bench` compares against
# Needs root to install; without it, it names what is missing and goes on
# (the build then fails later only if a required tool is really absent).
set -euo pipefail

# Required: the build cannot go on without these.
required=(build-essential cmake pkg-config python3 libxxhash-dev libzstd-dev libzip-dev zlib1g-dev)
# Wanted: used by parts of the tests, docs, format check and fuzzing
# (clang: scripts/run-fuzz.sh); a failure to install them is a warning,
# not an error.
# Test oracles: numpy and pandas (arrays, tables), GNU parallel (the command),
# scikit-learn and libsvm (parameter search).
wanted=(clang-format clang graphviz libxml2-utils libopenmpi-dev openmpi-bin
        python3-numpy python3-pandas parallel libsvm-dev python3-sklearn)
# Bench anchors: oneTBB, Python (concurrent.futures, joblib, dask, mpi4py), GNU parallel.
bench=(libtbb-dev python3 python3-joblib python3-dask parallel python3-mpi4py)
# docs/tour.md: the dask.distributed figure (LocalCluster beside the mpi level)
bench+=(python3-distributed)
# Node.js and npm: DuckDB and Polars (bench/table_anchor_node.mjs) come from the
# npm registry, installed by node_anchors below into bench/node/ (never global).
bench+=(nodejs npm)

mode=${1:-}

# node_anchors: with --bench, `npm ci` of bench/node/package-lock.json into
# bench/node/node_modules (@duckdb/node-api, nodejs-polars and its
# linux-x64-gnu binary), unless it is already installed from that lock. Not
# root's business: it writes only inside the source tree. A failure is a
# warning: the table bench then prints SKIP lines for DuckDB and Polars.
node_anchors() {
    [ "$mode" = "--bench" ] || return 0
    local dir
    dir="$(cd "$(dirname "$0")/.." && pwd)/bench/node"
    if ! command -v npm >/dev/null 2>&1; then
        echo "deps: WARNING: npm is missing; the DuckDB and Polars anchors will be skipped"
        return 0
    fi
    if [ "$dir/node_modules/.package-lock.json" -nt "$dir/package-lock.json" ]; then
        echo "deps: bench/node: DuckDB and Polars already installed"
        return 0
    fi
    echo "deps: bench/node: npm ci (DuckDB, Polars)"
    (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error </dev/null) ||
        echo "deps: WARNING: npm ci in $dir failed; the DuckDB and Polars anchors will be skipped"
}
pkgs=("${required[@]}" "${wanted[@]}")
if [ "$mode" = "--bench" ]; then
    pkgs+=("${bench[@]}")
elif [ -n "$mode" ]; then
    echo "usage: $0 [--bench]" >&2
    exit 2
fi

mapfile -t pkgs < <(printf '%s\n' "${pkgs[@]}" | awk '!seen[$0]++')

is_installed() {
    [ "$(dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null || true)" = "installed" ]
}

if ! command -v dpkg-query >/dev/null 2>&1; then
    echo "deps: not a Debian system (no dpkg-query); install by hand: ${pkgs[*]}"
    node_anchors
    exit 0
fi

missing=()
for p in "${pkgs[@]}"; do
    is_installed "$p" || missing+=("$p")
done

if [ ${#missing[@]} -eq 0 ]; then
    echo "deps: all ${#pkgs[@]} packages already installed"
    node_anchors
    exit 0
fi

echo "deps: missing: ${missing[*]}"
if [ "$(id -u)" -ne 0 ]; then
    echo "deps: not root, not installing. As root run: apt-get install ${missing[*]}"
    node_anchors
    exit 0
fi

export DEBIAN_FRONTEND=noninteractive
apt_opts=(-y -q -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold
          --no-install-recommends)
ok=1
apt-get update -q </dev/null || ok=0
if [ $ok -eq 1 ]; then
    apt-get install "${apt_opts[@]}" "${missing[@]}" </dev/null || ok=0
fi
if [ $ok -eq 0 ]; then
    # Try one by one so one unavailable package does not block the rest.
    for p in "${missing[@]}"; do
        is_installed "$p" || apt-get install "${apt_opts[@]}" "$p" </dev/null ||
            echo "deps: WARNING: could not install $p"
    done
fi

still=()
for p in "${required[@]}"; do
    is_installed "$p" || still+=("$p")
done
if [ ${#still[@]} -gt 0 ]; then
    echo "deps: ERROR: required packages still missing: ${still[*]}" >&2
    exit 1
fi
for p in "${missing[@]}"; do
    is_installed "$p" || echo "deps: WARNING: $p is not installed; the parts that use it will be skipped"
done
node_anchors
echo "deps: done"
