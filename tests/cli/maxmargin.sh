#!/bin/sh
# tests/cli/maxmargin.sh -- `marginflow maxmargin` end to end: the known
# answers of docs/theory.md section 4 (D with relu2:width=2 -> 1/(2 sqrt 2),
# B with diag:depth=2 -> 1, sym4 with linear -> sqrt(5)/2), the SEARCH label,
# the JSON output, and exit code 2 on bad input; issue 12: every start made
# feasible (no failures on separable data), the augmented Lagrangian, the
# memory limit refused up front, a 2-line file with class 999999 refused, progress
# lines on stderr, SIGTERM printing the best so far, --help defaults equal to
# the code's (through the JSON). Needs the full build (make).
. "$(dirname "$0")/lib.sh"
cli_test_init maxmargin

# near GOT WANT TOL: |GOT - WANT| <= TOL
near() { awk -v g="$1" -v w="$2" -v t="$3" 'BEGIN { d = g - w; if (d < 0) d = -d; exit !(g != "" && d <= t) }'; }


best() { sed -n 's/^SEARCH (not a certificate): best normalized margin \([^ ]*\) over.*/\1/p'; }

out=$("$MF" maxmargin --model relu2:width=2 --data builtin:D --starts 20 --seed 1); rc=$?
[ $rc -eq 0 ] && ok || bad "D: exit $rc"
g=$(printf '%s\n' "$out" | best)
near "$g" 0.35355339059327373 1e-6 && ok || bad "D: best '$g', want 0.353553390593 (1e-6)"
printf '%s\n' "$out" | grep -q '(seeds 1..20)' && ok || bad "D: seeds not reported"
printf '%s\n' "$out" | grep -q '^failures: [0-9]* of 20 starts' && ok || bad "D: no failures line"

out=$("$MF" maxmargin --model diag:depth=2 --data builtin:B --starts 10); rc=$?
g=$(printf '%s\n' "$out" | best)
[ $rc -eq 0 ] && near "$g" 1 1e-6 && ok || bad "B: exit $rc, best '$g', want 1"

out=$("$MF" maxmargin --model linear --data builtin:sym4 --starts 5 --seed 7); rc=$?
g=$(printf '%s\n' "$out" | best)
[ $rc -eq 0 ] && near "$g" 1.1180339887498949 1e-6 && ok || bad "sym4: exit $rc, best '$g', want sqrt(5)/2"
# convex problem: every start reaches the same value
printf '%s\n' "$out" | grep -Eq '^  1\.1180339887[0-9]* +x 5$' && ok || bad "sym4: not 5 starts on one value: $out"

out=$("$MF" maxmargin --model linear --data builtin:sym4 --starts 3 --json); rc=$?
[ $rc -eq 0 ] && ok || bad "json: exit $rc"
g=$(printf '%s\n' "$out" | sed -n 's/.*"best_normalized_margin":[[:space:]]*\([^,]*\),*/\1/p')
near "$g" 1.1180339887498949 1e-6 && ok || bad "json: best '$g'"
printf '%s\n' "$out" | grep -q '"kind":[[:space:]]*"search (not a certificate)"' && ok || bad "json: kind"
printf '%s\n' "$out" | grep -q '"seed_last":[[:space:]]*3' && ok || bad "json: seed_last"

"$MF" maxmargin --help | grep -q -- '--starts N' && ok || bad "help"

# ------------------------------------------------------------ issue 12
# every start is made feasible first: none fails on separable data (with
# SLSQP's phase 1, 19 of 20 failed on gauss:n=200,d=10)
out=$("$MF" maxmargin --model relu2:width=20,alpha=0.1 --data gauss:n=40,d=5 --starts 4 2>"$T/err"); rc=$?
[ $rc -eq 0 ] && ok || bad "feasible starts: exit $rc"
printf '%s\n' "$out" | grep -q '^failures: 0 of 4 starts' && ok || bad "feasible starts: $out"
printf '%s\n' "$out" | grep -q 'augmented Lagrangian' && ok || bad "120 parameters: not the augmented Lagrangian: $out"
# one progress line per start, each on its own line, on stderr
[ "$(grep -c '^maxmargin: start [1-4]/4: gamma ' "$T/err")" -eq 4 ] && ok || bad "progress lines: $(cat "$T/err")"
"$MF" maxmargin --model relu2:width=10,alpha=0.1 --data gauss:n=40,d=5 --starts 2 -q 2>"$T/err" >/dev/null
[ ! -s "$T/err" ] && ok || bad "-q still printed: $(cat "$T/err")"
# the memory limit: refused up front, with the estimate, exit 2
"$MF" maxmargin --model relu2:width=500,alpha=0.1 --data gauss:n=50,d=50 --max-memory 1 \
    >"$T/out" 2>"$T/err"; rc=$?
[ $rc -eq 2 ] && ok || bad "memory limit: exit $rc"
grep -q '^marginflow: maxmargin: .* needs about [0-9]* MiB .* more than the limit of 1 MiB' "$T/err" && ok ||
    bad "memory limit message: $(cat "$T/err")"
# SLSQP forced on a net it cannot hold: refused, not a SIGSEGV
"$MF" maxmargin --model relu2:width=500,alpha=0.1 --data gauss:n=50,d=50 --method slsqp \
    >"$T/out" 2>"$T/err"; rc=$?
[ $rc -eq 2 ] && grep -q 'needs about .* for SLSQP' "$T/err" && ok || bad "slsqp width 500: exit $rc $(cat "$T/err")"
# a 2-line file with class label 999999 (it crashed inside SLSQP with 10^6
# classes): the reader now refuses it (every class 0..C-1 must be present)
printf '999999 1:1\n0 1:-1\n' >"$T/big.svm"
"$MF" maxmargin --model linear --data "$T/big.svm" --starts 1 -q >"$T/out" 2>"$T/err"; rc=$?
[ $rc -eq 2 ] && grep -q 'but no sample of class 1' "$T/err" && ok ||
    bad "class 999999: exit $rc $(cat "$T/err")"
# 2.2e6 parameters: the augmented Lagrangian's memory is estimated and a
# limit below it refuses the search up front, before anything is allocated
"$MF" maxmargin --model relu2:width=200000,alpha=0.1 --data gauss:n=20,d=10 --starts 1 \
    --max-memory 100 -q >"$T/out" 2>"$T/err"; rc=$?
[ $rc -eq 2 ] && grep -q '2200000 parameters) needs about [0-9]* MiB for augmented Lagrangian' "$T/err" && ok ||
    bad "width 200000 over --max-memory 100: exit $rc $(cat "$T/err")"
# SIGTERM: the best point so far is printed, exit 130, the error line on its own line
"$MF" maxmargin --model relu2:width=50,alpha=0.1 --data gauss:n=200,d=10 --starts 1000 \
    >"$T/out" 2>"$T/err" &
pid=$!
i=0
while [ $i -lt 600 ] && ! grep -q '^maxmargin: start 1/' "$T/err"; do sleep 0.1; i=$((i + 1)); done
kill -TERM $pid
wait $pid; rc=$?
[ $rc -eq 130 ] && ok || bad "SIGTERM: exit $rc"
grep -q '^SEARCH (not a certificate): best normalized margin 0\.[0-9]* over [0-9]* (interrupted) starts' "$T/out" && ok ||
    bad "SIGTERM: no best so far: $(cat "$T/out")"
grep -q '^marginflow: maxmargin: interrupted after [0-9]* of 1000 starts' "$T/err" && ok ||
    bad "SIGTERM: message $(cat "$T/err")"
# --help defaults are the code's: the JSON of a default search reports them
"$MF" maxmargin --help >"$T/help"
"$MF" maxmargin --model relu2:width=2 --data builtin:D --json -q >"$T/def.json"
python3 -c "
import json, re, sys
h = open('$T/help').read(); d = json.load(open('$T/def.json'))
want = {'--starts': d['starts'], '--seed': d['seed_first'], '--rel-tol': d['rel_tol']}
bad = [(o, v) for o, v in want.items()
       if not re.search(re.escape(o) + r' [^\n]*\(default ' + re.escape(repr(v) if isinstance(v, float) else str(v)) + r'\)', h)
       and not re.search(re.escape(o) + r' [^\n]*\(default %g\)' % v, h)]
print(bad) if bad else None
sys.exit(1 if bad else 0)" && ok || bad "--help defaults differ from the code's"

for args in "--model linear" "--model linear --data builtin:sym4 --starts 0" \
            "--model linear --data builtin:sym4 --rel-tol -1" \
            "--model linear --data builtin:sym4 --bogus" \
            "--model skip-linear --data builtin:G" \
            "--model nosuch --data builtin:sym4" \
            "--model linear --data /nonexistent/file.svm"; do
    # shellcheck disable=SC2086
    "$MF" maxmargin $args >/dev/null 2>&1; rc=$?
    [ $rc -eq 2 ] && ok || bad "'$args': exit $rc, want 2"
done

cli_test_done
