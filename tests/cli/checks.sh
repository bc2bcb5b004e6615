#!/bin/sh
# checks.sh -- the check table of `marginflow reproduce` (cli/checks.c) and
# the claim pool (cli/jobs.c) end to end (needs ${BUILD:-build}/marginflow).
#
#  - a key that the check's quantity does not read is refused (exit 2)
#    before anything trains, naming the file, the field, the quantity and
#    the keys it allows; an unknown key lists the keys known for that quantity; a
#    required key missing is named;
#  - every row of the table lists exactly the keys its evaluator reads
#    (a scan of cli/checks.c: a key read but not listed would be refused in
#    every file, one listed but not read would be accepted and ignored);
#  - a claim whose process dies (SIGKILL while it trains) under --jobs 2 is
#    reported as ERROR while the other claim passes, and the run exits 1.
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
expect_rc 2 $? "claims with bad check keys exit 2 (bad input; nothing runs)"
expect_err() { # claim, message (fixed string)
    check "$1: $2" grep -qF "marginflow: $B/$1.json: $2" "$T/err"
}
expect_err unused-tol "checks[1].tol: key 'tol' is not used by quantity 'verdict' (allowed: run, expect, layer, local_trials, comment)"
expect_err unused-run "checks[0].run: key 'run' is not used by quantity 'nonzero_global' (allowed: gamma_star, tol, nz_tol, comment)"
expect_err unknown-key "checks[0].eps_tolerance: unknown key (known here: quantity, run, eps_tol, delta_tol, comment)"
expect_err missing-target "checks[0].target: is required for trend"
check "refused claims train nothing" test ! -e "$T/o/unused-tol/main"
check "nor the valid claim beside them" test ! -e "$T/o/comment-ok/main"
check "4 files refused" grep -q "4 claim files refused; nothing was run" "$T/err"
rm -f "$B"/unused-tol.json "$B"/unused-run.json "$B"/unknown-key.json "$B"/missing-target.json
"$MF" reproduce --experiments "$B" --out "$T/o" >"$T/out" 2>"$T/err"
check "a comment is allowed in any check" grep -q "^PASS comment-ok: " "$T/out"
check "summary line" grep -q "^1 passed, 0 failed$" "$T/out"

# the table and the evaluators agree on the keys
python3 - cli/checks.c cli/checks_relu2.c >"$T/scan" 2>&1 <<'PY'
import re, sys
s = open(sys.argv[1]).read() + open(sys.argv[2]).read()
reads = {}
for m in re.finditer(r'(?:static )?void ((?:rp_)?ck_\w+)\(const cJSON \*ck, rp_claim \*c[^)]*\) \{(.*?)\n\}', s, re.S):
    reads[m.group(1)] = set(re.findall(r'cli_j(?:str_or|num_or|get)\(ck, "(\w+)"', m.group(2)))
lists = {m.group(1): set(re.findall(r'"(\w+)"', m.group(2)))
         for m in re.finditer(r'static const char \*const (k_\w+)\[\] = \{(.*?)\};', s)}
rows = re.findall(r'\{"(\w+)", (k_\w+), (r_\w+), ((?:rp_)?ck_\w+)\}', s)
bad = 0
for q, keys, req, fn in rows:
    r = reads.get(fn)
    m = re.search(r'static void ' + fn + r'\(.*?\{\s*(ck_\w+)\(', s, re.S)  # a thin wrapper
    if m and not r: r = reads.get(m.group(1))
    if r != lists[keys]:
        print(q, 'table', sorted(lists[keys]), 'evaluator reads', sorted(r or [])); bad = 1
print(len(rows), 'quantities scanned')
sys.exit(bad or len(rows) < 21)
PY
if [ $? -eq 0 ]; then ok; else bad "check table and evaluators disagree: $(cat "$T/scan")"; fi

# a claim whose process dies is reported, the other one is not affected
E="$T/exp"
mkdir -p "$E"
cp experiments/vardi-B-not-local.json "$E/"
printf '{"name": "slow", "runs": [{"name": "main", "data": "gauss:n=200,d=20", "model": "relu2:width=50", "optimizer": "gd", "lr": 0.001, "steps": 0, "wall_seconds": 60}], "checks": [{"quantity": "final", "column": "step", "op": "ge", "expect": 0}]}\n' >"$E/slow.json"
"$MF" reproduce --experiments "$E" --jobs 2 --quick --out "$T/p" >"$T/pout" 2>"$T/perr" &
pid=$!
n=0 # the slow claim's process: the child of reproduce whose claim has not finished
while [ ! -s "$T/p/slow/main/metrics.csv" ] && [ $n -lt 300 ]; do sleep 0.1; n=$((n + 1)); done
n=0
while [ ! -f "$T/p/vardi-B-not-local/result.json" ] && [ $n -lt 300 ]; do sleep 0.1; n=$((n + 1)); done
sleep 0.5
for c in $(pgrep -P "$pid"); do kill -KILL "$c"; done
wait "$pid"
expect_rc 1 $? "a claim killed mid-run: reproduce exits 1"
check "the killed claim is reported" grep -q "^ERROR slow: no result (the claim's process failed)$" "$T/pout"
check "the other claim passes" grep -q "^PASS vardi-B-not-local: " "$T/pout"
check "both counted" grep -q "^1 passed, 1 failed$" "$T/pout"
check "the report names the killed claim" grep -q "No result (the claim did not run)" "$T/p/report.md"

cli_test_done
