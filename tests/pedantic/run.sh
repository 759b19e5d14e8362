#!/usr/bin/env bash
# run.sh : ctest header_pedantic. Builds consumer.c against the public
# headers as a user would, in strict ISO C11 with every warning an error:
#     CC -std=c11 -Wall -Wextra -Wpedantic -Werror -I<include>
# with the project's compiler and, when installed, with clang too (each
# warns about different things); then links it with the shared library and
# runs it. Usage: run.sh CC INCLUDE_DIR WORK_DIR [LIBWEFT_SO]
# Without LIBWEFT_SO (sanitizer builds, whose library an unsanitized program
# cannot link) only the compile is checked.
set -euo pipefail
cc=$1 inc=$2 work=$3 lib=${4:-}
src=$(cd "$(dirname "$0")" && pwd)/consumer.c
flags=(-std=c11 -Wall -Wextra -Wpedantic -Werror)
mkdir -p "$work"
compilers=("$cc")
if command -v clang >/dev/null && [ "$(basename "$cc")" != clang ]; then compilers+=(clang); fi
for c in "${compilers[@]}"; do
    echo "+ $c ${flags[*]} -I$inc -c consumer.c"
    "$c" "${flags[@]}" -I"$inc" -c "$src" -o "$work/consumer-$(basename "$c").o"
done
if [ -n "$lib" ]; then
    "$cc" "$work/consumer-$(basename "$cc").o" -o "$work/consumer" "$lib" \
        -Wl,-rpath,"$(dirname "$lib")" -lm
    "$work/consumer"
fi
echo "ok: the public headers build clean under ${flags[*]}"
