#!/bin/sh
# checks.sh -- the check table of `marginflow reproduce` (cli/checks.c) end
# to end (needs ${BUILD:-build}/marginflow).
#
#  - a key that the check's quantity does not read is refused before
#    anything trains, naming the file, the field, the quantity and the keys
#    it allows; an unknown key lists the keys known for that quantity; a
#    required key missing is named;
#  - every row of the table lists exactly the keys its evaluator reads
#    (a scan of cli/checks.c: a key read but not listed would be refused in
#    every file, one listed but not read would be accepted and ignored).
# Prints "N passed, N failed"; exits 1 on any failure.

. "$(dirname "$0")/lib.sh"
cli_test_init checks

B="$T/bad"
mkdir -p "$B"
RUN='{"name": "main", "data": "builtin:B", "model": "diag:depth=2", "optimizer": "scaled", "lr": 0.1, "until_log10_loss": -3, "init": {"params": [1, 1, 1, -1]}}'
claim() { # NAME CHECKS
    printf '{"name": "%s", "runs": [%s], "checks": [%s]}\n' "$1" "$RUN" "$2" >"$B/$1.json"
}
claim unused-tol '{"quantity": "final", "expect": 0.5, "tol": 0.01}, {"quantity": "verdict", "expect": "not-local", "tol": 0.1}'
claim unused-run '{"quantity": "nonzero_global", "gamma_star": 1, "run": "main"}'
claim unknown-key '{"quantity": "kkt", "eps_tolerance": 0.01}'
claim missing-target '{"quantity": "trend", "tol": 0.01}'
claim comment-ok '{"quantity": "final", "expect": 0.5, "tol": 0.01, "comment": "allowed everywhere"}'
"$MF" reproduce --experiments "$B" --out "$T/o" >"$T/out" 2>"$T/err"
expect_rc 1 $? "claims with bad check keys exit 1"
expect_err() { # claim, message (fixed string)
    check "$1: $2" grep -qF "ERROR $1: $B/$1.json: $2" "$T/out"
}
expect_err unused-tol "checks[1].tol: key 'tol' is not used by quantity 'verdict' (allowed: run, expect, layer, local_trials, comment)"
expect_err unused-run "checks[0].run: key 'run' is not used by quantity 'nonzero_global' (allowed: gamma_star, tol, nz_tol, comment)"
expect_err unknown-key "checks[0].eps_tolerance: unknown key (known here: quantity, run, eps_tol, delta_tol, comment)"
expect_err missing-target "checks[0].target: is required for trend"
check "refused claims train nothing" test ! -e "$T/o/unused-tol/main"
check "a comment is allowed in any check" grep -q "^PASS comment-ok: " "$T/out"
check "summary line" grep -q "^1 passed, 4 failed$" "$T/out"

# the table and the evaluators agree on the keys
python3 - cli/checks.c >"$T/scan" 2>&1 <<'PY'
import re, sys
s = open(sys.argv[1]).read()
reads = {}
for m in re.finditer(r'static void (ck_\w+)\(const cJSON \*ck, rp_claim \*c[^)]*\) \{(.*?)\n\}', s, re.S):
    reads[m.group(1)] = set(re.findall(r'cli_j(?:str_or|num_or|get)\(ck, "(\w+)"', m.group(2)))
lists = {m.group(1): set(re.findall(r'"(\w+)"', m.group(2)))
         for m in re.finditer(r'static const char \*const (k_\w+)\[\] = \{(.*?)\};', s)}
rows = re.findall(r'\{"(\w+)", (k_\w+), (r_\w+), (ck_\w+)\}', s)
bad = 0
for q, keys, req, fn in rows:
    r = reads.get(fn)
    m = re.search(r'static void ' + fn + r'\(.*?\{\s*(ck_\w+)\(', s, re.S)  # a thin wrapper
    if m and not r: r = reads.get(m.group(1))
    if r != lists[keys]:
        print(q, 'table', sorted(lists[keys]), 'evaluator reads', sorted(r or [])); bad = 1
print(len(rows), 'quantities scanned')
sys.exit(bad or len(rows) < 16)
PY
if [ $? -eq 0 ]; then ok; else bad "check table and evaluators disagree: $(cat "$T/scan")"; fi

cli_test_done
