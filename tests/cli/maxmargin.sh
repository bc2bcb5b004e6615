#!/bin/sh
# tests/cli/maxmargin.sh -- `marginflow maxmargin` end to end: the known
# answers of docs/theory.md section 4 (D with relu2:width=2 -> 1/(2 sqrt 2),
# B with diag:depth=2 -> 1, sym4 with linear -> sqrt(5)/2), the SEARCH label,
# the JSON output, and exit code 2 on bad input. Needs the full build (make).
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
