#!/usr/bin/env python3
"""check-api.py : checks that the API docs and the error strings match the
public headers. Usage: scripts/check-api.py [SOURCE_ROOT]
Fails (exit 1, naming each problem) when
  1. docs/api.md names a weft_ function or type that include/ does not
     declare (a `weft_x_*` pattern must match at least one public function,
     and `weft_a_create/destroy` is read as weft_a_create, weft_a_destroy);
  2. a public function of include/ (WEFT_API, or static inline, not weft__)
     is missing from the function index of docs/api.md (the section
     "## Every public function"), or the index lists one that is not public;
  3. an error code WEFT_E* of the enum in include/weft.h has no `case` in
     weft_strerror (src/core/error.c), or no row in api.md's table of codes.
Run by ctest as api_docs_check."""
import pathlib
import re
import sys

root = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else pathlib.Path(__file__).resolve().parent.parent)
headers = sorted([root / "include" / "weft.h"] + list((root / "include" / "weft").glob("*.h")))
api_md = (root / "docs" / "api.md").read_text()
error_c = (root / "src" / "core" / "error.c").read_text()
INDEX = "## Every public function"
problems = []


def strip_comments(text):
    text = re.sub(r"/\*.*?\*/", " ", text, flags=re.S)
    return re.sub(r"//[^\n]*", " ", text)


# ---- what include/ declares
functions = {}  # name -> header
declared = set()  # every weft_ identifier declared (functions, types, struct tags, fields' types)
for h in headers:
    code = strip_comments(h.read_text())
    rel = h.relative_to(root).as_posix()
    # public functions: WEFT_API or static inline, up to the name before '('
    for m in re.finditer(r"\b(?:WEFT_API|static\s+inline)\b([^;{}()]*?)\b(weft_[A-Za-z0-9_]+)\s*\(", code):
        name = m.group(2)
        if not name.startswith("weft__"):
            functions[name] = rel
    # types: typedef ... name; typedef struct/enum tags; function pointer typedefs
    for m in re.finditer(r"\btypedef\b[^;]*?\b(weft_[A-Za-z0-9_]+)\s*(?:\)\s*\(|;|\[)", code):
        declared.add(m.group(1))
    for m in re.finditer(r"\b(?:struct|enum|union)\s+(weft_[A-Za-z0-9_]+)", code):
        declared.add(m.group(1))
declared |= set(functions)
if not functions:
    problems.append("no public function found in include/ (is WEFT_API still the marker?)")

# ---- 1. every weft_ name in api.md exists
names_md = set()
for m in re.finditer(r"(?<![A-Za-z0-9_])(weft_[a-z0-9_]+(?:\*)?(?:/[a-z0-9_]+)*)", api_md):
    tok = m.group(1)
    parts = tok.split("/")
    first = parts[0]
    if first.endswith("*"):
        prefix = first[:-1]
        if not any(f.startswith(prefix) for f in functions):
            problems.append(f"docs/api.md: `{first}` matches no public function")
        continue
    names_md.add(first)
    # `weft_queue_put_many/get_many`: each part replaces the last words of
    # the first name; the first reading that names a declared function wins.
    words = first.split("_")
    for p in parts[1:]:
        cands = ["_".join(words[:k]) + "_" + p for k in range(len(words) - 1, 0, -1)]
        names_md.add(next((c for c in cands if c in declared), cands[0]))
for n in sorted(names_md):
    if n == "weft_" or n.endswith("_"):
        continue
    if n not in declared:
        problems.append(f"docs/api.md names `{n}`, which include/ does not declare")

# ---- 2. the function index lists exactly the public functions
at = api_md.find("\n" + INDEX)
if at < 0:
    problems.append(f'docs/api.md has no section "{INDEX}"')
else:
    section = api_md[at + 1:]
    nxt = re.search(r"\n## ", section[len(INDEX):])
    if nxt:
        section = section[: len(INDEX) + nxt.start()]
    listed = set(re.findall(r"`(weft_[a-z0-9_]+)\s*(?:\(\))?`", section))
    for n in sorted(set(functions) - listed):
        problems.append(f"docs/api.md: the index misses `{n}` ({functions[n]})")
    for n in sorted(listed - set(functions)):
        problems.append(f"docs/api.md: the index lists `{n}`, which is not a public function")

# ---- 3. error codes: a string in weft_strerror and a row in api.md
weft_h = strip_comments((root / "include" / "weft.h").read_text())
codes = re.findall(r"\b(WEFT_E[A-Z0-9_]+)\s*=\s*-", weft_h)
if not codes:
    problems.append("no WEFT_E* error code found in include/weft.h")
m = re.search(r"weft_strerror\s*\(int code\)\s*\{(.*?)\n\}", error_c, flags=re.S)
cases = set(re.findall(r"case\s+(WEFT_[A-Z0-9_]+)\s*:", m.group(1))) if m else set()
if not m:
    problems.append("src/core/error.c: weft_strerror not found")
rows = set(re.findall(r"^\|\s*`(WEFT_[A-Z0-9_]+)`\s*\|", api_md, flags=re.M))
for c in codes:
    if c not in cases:
        problems.append(f"src/core/error.c: weft_strerror has no string for {c}")
    if c not in rows:
        problems.append(f"docs/api.md: the table of error codes has no row for {c}")
for c in sorted(rows):
    if c.startswith("WEFT_E") and c not in codes:
        problems.append(f"docs/api.md: the table of error codes lists {c}, which weft.h does not define")

problems = list(dict.fromkeys(problems))
if problems:
    print("check-api: %d problem(s):" % len(problems))
    for p in problems:
        print("  " + p)
    sys.exit(1)
print(f"check-api: {len(functions)} public functions, {len(codes)} error codes: docs and strings agree")
