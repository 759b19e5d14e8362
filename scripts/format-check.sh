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
bad=()
for f in "${files[@]}"; do
    clang-format --dry-run -Werror --style=file "$f" >/dev/null 2>&1 || bad+=("$f")
done
if [ ${#bad[@]} -gt 0 ]; then
    echo "format-check: ${#bad[@]} of ${#files[@]} files differ from .clang-format:"
    printf '  %s\n' "${bad[@]}"
    echo "see the changes with: clang-format --dry-run FILE; apply with: clang-format -i FILE"
    exit 1
fi
echo "format-check: ${#files[@]} files ok"
