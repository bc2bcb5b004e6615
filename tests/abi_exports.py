#!/usr/bin/env python3
"""abi_exports.py HEADER LIBRARY.so [CC] -- does the shared library export
exactly the functions the public header declares?

The header is run through the C preprocessor (so macros, #if blocks and
comments are handled as a compiler sees them) and only the text that comes
from HEADER itself is kept (the line markers say which file a line is
from). A declaration is a top-level statement (brace depth 0, ended by ';')
that is not a typedef and has a parameter list: its name is the identifier
before the first '(' once __attribute__((...)) is removed. The exports are
`nm -D --defined-only` of the library: its code and data symbols (types T,
W, i, D, B, R, V).

Prints what is missing from the library (declared, not exported: a
function without MF_API, or declared but never defined) and what is exported
but not declared (a helper that escaped -fvisibility=hidden), then
"abi_exports: N declared, N exported" and exits 1 on any difference. Also
prints the public struct names (one "struct NAME" line each) for the
caller's mf_sizeof check.
"""
import re
import subprocess
import sys


def header_text(header, cc):
    pre = subprocess.run([cc, "-E", "-x", "c", header], check=True, capture_output=True,
                         text=True).stdout
    keep, mine = [], False
    for line in pre.splitlines():
        m = re.match(r'#\s*\d+\s+"([^"]*)"', line)
        if m:
            mine = m.group(1).endswith(header.split("/")[-1])
            continue
        if mine:
            keep.append(line)
    return "\n".join(keep)


def strip_attributes(s):
    out, i = [], 0
    while True:
        j = s.find("__attribute__", i)
        if j < 0:
            out.append(s[i:])
            return "".join(out)
        out.append(s[i:j])
        k = s.index("(", j)
        depth = 0
        while True:
            depth += {"(": 1, ")": -1}.get(s[k], 0)
            k += 1
            if depth == 0:
                break
        i = k


def declarations(text):
    text = strip_attributes(text)
    funcs, structs = [], []
    depth, cur = 0, []
    for ch in text:
        if ch == "{":
            if depth == 0:
                cur.append("{")
            depth += 1
            continue
        if ch == "}":
            depth -= 1
            continue
        if depth == 0 and ch == ";":
            stmt = " ".join("".join(cur).split())
            cur = []
            if stmt.startswith("typedef"):
                m = re.match(r"typedef struct (\w+) \{", stmt)
                if m:
                    structs.append(m.group(1))
                continue
            m = re.match(r"[^(]*?(\w+)\s*\(", stmt)
            if m and "(" in stmt:
                funcs.append(m.group(1))
        elif depth == 0:
            cur.append(ch)
    return funcs, structs


def exports(lib):
    out = subprocess.run(["nm", "-D", "--defined-only", lib], check=True, capture_output=True,
                         text=True).stdout
    names = set()
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[1] in "TWiDBRV":
            names.add(parts[2])
    return names


def main():
    header, lib = sys.argv[1], sys.argv[2]
    cc = sys.argv[3] if len(sys.argv) > 3 else "cc"
    funcs, structs = declarations(header_text(header, cc))
    have = exports(lib)
    bad = 0
    for f in sorted(set(funcs) - have):
        print(f"not exported: {f} (declared in {header}: mark it MF_API, and define it)")
        bad += 1
    for f in sorted(have - set(funcs)):
        print(f"exported but not in {header}: {f} (make it static, or an mf__ helper of a "
              f"src/*internal*.h, so that -fvisibility=hidden hides it)")
        bad += 1
    for s in structs:
        print(f"struct {s}")
    print(f"abi_exports: {len(set(funcs))} declared, {len(have)} exported, {bad} differences")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
