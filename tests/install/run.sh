#!/usr/bin/env bash
# run.sh : install smoke test (CTest label `install`).
# Installs the build tree into a temporary prefix, then builds and runs a
# small consumer program against it with pkg-config and with find_package.
# Usage: run.sh BUILD_DIR WORK_DIR LIBDIR CC CMAKE CONSUMER_SRC_DIR
set -euo pipefail
build=$1 work=$2 libdir=$3 cc=$4 cmake=$5 src=$6

step() { printf '== install test: %s\n' "$*"; }
fail() { printf 'install test FAILED: %s\n' "$*" >&2; exit 1; }

case $libdir in /*) echo "SKIP: CMAKE_INSTALL_LIBDIR is absolute ($libdir)"; exit 77 ;; esac

rm -rf "$work"
mkdir -p "$work"
prefix=$work/prefix

step "cmake --install into $prefix"
"$cmake" --install "$build" --prefix "$prefix" >"$work/install.log" || {
    cat "$work/install.log"; fail "cmake --install"; }

for f in include/weft.h "$libdir/libweft.so" "$libdir/libweft.a" "$libdir/pkgconfig/weft.pc" \
         "$libdir/cmake/weft/weftConfig.cmake" "$libdir/cmake/weft/weftConfigVersion.cmake" \
         "$libdir/cmake/weft/weftTargets.cmake"; do
    [ -e "$prefix/$f" ] || fail "missing $f"
done

step "shared library exports only weft_ symbols"
if command -v nm >/dev/null; then
    bad=$(nm -D --defined-only "$prefix/$libdir/libweft.so" | awk '{print $NF}' |
          grep -Ev '^(weft_|_init$|_fini$|_edata$|_end$|__bss_start$)' || true)
    [ -z "$bad" ] || fail "symbols exported without the weft_ prefix: $(echo $bad)"
    n=$(nm -D --defined-only "$prefix/$libdir/libweft.so" | grep -c ' T weft_' || true)
    echo "   $n weft_ functions exported"
fi

if command -v pkg-config >/dev/null; then
    step "pkg-config consumer (shared)"
    export PKG_CONFIG_PATH="$prefix/$libdir/pkgconfig"
    ver=$(pkg-config --modversion weft) || fail "pkg-config --modversion weft"
    echo "   weft.pc version $ver, cflags: $(pkg-config --cflags weft), libs: $(pkg-config --libs weft)"
    # shellcheck disable=SC2046
    "$cc" -std=c11 -Wall -Wextra -Werror -o "$work/pc_shared" "$src/consumer.c" \
        $(pkg-config --cflags --libs weft) -Wl,-rpath,"$prefix/$libdir" || fail "pkg-config build"
    "$work/pc_shared" || fail "pkg-config consumer (shared) run"

    step "pkg-config consumer (static)"
    # shellcheck disable=SC2046
    static_libs=$(pkg-config --static --libs weft | sed "s|-lweft|$prefix/$libdir/libweft.a|")
    # shellcheck disable=SC2046,SC2086
    "$cc" -std=c11 -Wall -Wextra -Werror -o "$work/pc_static" "$src/consumer.c" \
        $(pkg-config --cflags weft) $static_libs ||
        fail "pkg-config static build"
    "$work/pc_static" || fail "pkg-config consumer (static) run"
else
    echo "   (pkg-config not installed: pkg-config part skipped)"
fi

step "find_package(weft) consumer"
"$cmake" -S "$src" -B "$work/consumer-build" -DCMAKE_PREFIX_PATH="$prefix" \
    -DCMAKE_C_COMPILER="$cc" -DCMAKE_BUILD_TYPE=Release >"$work/consumer.log" 2>&1 || {
    cat "$work/consumer.log"; fail "consumer configure"; }
"$cmake" --build "$work/consumer-build" >>"$work/consumer.log" 2>&1 || {
    cat "$work/consumer.log"; fail "consumer build"; }
"$work/consumer-build/consumer_shared" || fail "find_package consumer (shared) run"
"$work/consumer-build/consumer_static" || fail "find_package consumer (static) run"

step "all passed"
rm -rf "$work"
