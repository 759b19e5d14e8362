#!/usr/bin/env bash
# format-check.sh : checks that every C source and header of the project
# follows .clang-format (clang-format --dry-run -Werror). Fix a file with
#     clang-format -i FILE
# Usage: scripts/format-check.sh [DIR...]   (default: all source folders)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
command -v clang-format >/dev/null || { echo "format-check: clang-format is not installed (make deps)" >&2; exit 1; }
dirs=("$@")
[ ${#dirs[@]} -gt 0 ] || dirs=(src include tests examples bench programs fuzz)
existing=()
for d in "${dirs[@]}"; do [ -d "$d" ] && existing+=("$d"); done
mapfile -t files < <(find "${existing[@]}" -type f \( -name '*.c' -o -name '*.h' -o -name '*.cpp' \) \
                     -not -path '*/corpus/*' | sort)
[ ${#files[@]} -gt 0 ] || { echo "format-check: no files"; exit 0; }
# one clang-format for all files (one a file cost 20 s of start-ups); each
# difference it reports starts with "FILE:LINE:COL: error:"
bad=()
if ! out=$(clang-format --dry-run -Werror --style=file "${files[@]}" 2>&1); then
    mapfile -t bad < <(grep -oE '^[^:[:space:]]+:[0-9]+:[0-9]+: error' <<<"$out" | cut -d: -f1 | sort -u)
    [ ${#bad[@]} -gt 0 ] || { echo "$out" | head -20; exit 1; }
fi
if [ ${#bad[@]} -gt 0 ]; then
    echo "format-check: ${#bad[@]} of ${#files[@]} files differ from .clang-format:"
    printf '  %s\n' "${bad[@]}"
    echo "see the changes with: clang-format --dry-run FILE; apply with: clang-format -i FILE"
    exit 1
fi
echo "format-check: ${#files[@]} files ok"
