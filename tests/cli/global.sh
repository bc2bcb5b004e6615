#!/bin/sh
# tests/cli/global.sh -- `marginflow global` end to end: the known answers
# (sym4 at alpha 0.5: (1 + alpha) gamma_svm / 4 = 0.41926274578121; D:
# 1/(2 sqrt 2)) certified with a gap <= 1e-9, the JSON output, the primal
# written by --out and read back by `marginflow train --init-file` (its
# step-0 normalized margin is gamma*), sampled patterns in d = 3 labelled
# evidence, and the exits: 2 on bad input (with the message), 3 on data no
# two-layer net separates. Needs the full build (make).
. "$(dirname "$0")/lib.sh"
cli_test_init global

# near GOT WANT TOL: |GOT - WANT| <= TOL
near() { awk -v g="$1" -v w="$2" -v t="$3" 'BEGIN { d = g - w; if (d < 0) d = -d; exit !(g != "" && d <= t) }'; }
field() { sed -n "s/.*\"$1\":[[:space:]]*\\([^,]*\\),*\$/\\1/p" | head -n 1; }

out=$("$MF" global --data builtin:sym4 --model relu2:alpha=0.5 --out "$T/p.txt" -q); rc=$?
expect_rc 0 $rc "sym4"
g=$(printf '%s\n' "$out" | sed -n 's/^CERTIFIED: gamma\* = \([^ ]*\) .*/\1/p')
near "$g" 0.41926274578121061 1e-9 && ok || bad "sym4: gamma* '$g', want 0.41926274578121 (1e-9)"
printf '%s\n' "$out" | grep -q '^patterns: 8 cells of the arrangement of 4 distinct lines (enumerated)$' \
    && ok || bad "sym4: patterns line: $out"
printf '%s\n' "$out" | grep -q 'exact sweep of every direction' && ok || bad "sym4: upper basis"
spec=$(printf '%s\n' "$out" | sed -n 's/^network: \(relu2:width=[0-9]*,alpha=0.5\),.*/\1/p')
[ -n "$spec" ] && ok || bad "sym4: no network line: $out"
head -n 1 "$T/p.txt" | grep -q "^# marginflow params v1 n=[0-9]* model=$spec\$" && ok || bad "params header"

# the primal as an init file: train reports gamma* at step 0
"$MF" train --data builtin:sym4 --model "$spec" --init-file "$T/p.txt" --steps 1 \
    --out "$T/run" -q; rc=$?
expect_rc 0 $rc "train --init-file"
col=$(head -n 1 "$T/run/metrics.csv" | tr ',' '\n' | grep -n '^normalized_margin$' | cut -d: -f1)
g0=$(sed -n 2p "$T/run/metrics.csv" | cut -d, -f"$col")
near "$g0" 0.41926274578121061 1e-9 && ok || bad "train from the primal: step-0 margin '$g0'"

out=$("$MF" global --data builtin:D --model relu2 --json); rc=$?
expect_rc 0 $rc "D json"
g=$(printf '%s\n' "$out" | field gamma_lower)
near "$g" 0.35355339059327373 1e-9 && ok || bad "D: gamma_lower '$g'"
g=$(printf '%s\n' "$out" | field gamma_upper)
near "$g" 0.35355339059327373 1e-9 && ok || bad "D: gamma_upper '$g'"
gap=$(printf '%s\n' "$out" | field gap)
near "$gap" 0 1e-9 && ok || bad "D: gap '$gap'"
printf '%s\n' "$out" | grep -q '"kind":[[:space:]]*"certified global optimum"' && ok || bad "D: kind"
printf '%s\n' "$out" | grep -q '"width":[[:space:]]*1,' && ok || bad "D: width 1"
printf '%s\n' "$out" | grep -q '"how":[[:space:]]*"enumerated"' && ok || bad "D: enumerated"

out=$("$MF" global --data gauss:n=8,d=3,margin=0.1,seed=2 --sample 200 -q); rc=$?
expect_rc 0 $rc "d = 3 sampled"
printf '%s\n' "$out" | grep -q '^LOWER BOUND CERTIFIED: gamma\* >= .* is evidence only' && ok \
    || bad "sampled: not labelled evidence: $out"
printf '%s\n' "$out" | grep -q 'of 200 random directions (sampled)' && ok || bad "sampled: patterns line"

help=$("$MF" global --help)
for opt in --data --model --format --out --max-patterns --sample --seed --tol --max-iter \
           --max-seconds --json --quiet --help; do
    printf '%s\n' "$help" | grep -q -- "$opt" && ok || bad "help lacks $opt"
done
printf '%s\n' "$help" | grep -q 'default 4096' && ok || bad "help: --max-patterns default"
"$MF" --help | grep -q '^  global ' && ok || bad "global not in marginflow --help"

# bad input: exit 2 and the message
bad_input() { # WANT_RC REGEX ARGS...
    want=$1 re=$2
    shift 2
    "$MF" global "$@" >/dev/null 2>"$T/err"; rc=$?
    expect_rc "$want" $rc "global $*"
    expect_msg "$T/err" "$re" "global $*"
}
bad_input 2 'required' --model relu2
bad_input 2 'hidden bias' --data builtin:sym4 --model relu2:width=3,bias
bad_input 2 'fixed outer weights' --data builtin:sym4 --model relu2:fix-outer
bad_input 2 'alpha = 1 must be in \[0, 1\)' --data builtin:sym4 --model relu2:alpha=1
bad_input 2 'relu2 models only' --data builtin:sym4 --model linear
bad_input 2 'more than max_patterns = 4' --data builtin:sym4 --max-patterns 4
bad_input 2 'max-patterns' --data builtin:sym4 --max-patterns 1
bad_input 2 'tol must be in' --data builtin:sym4 --tol 0.5
bad_input 2 'unknown option' --data builtin:sym4 --bogus
bad_input 2 'sample' --data builtin:sym4 --sample -3
bad_input 2 'nonexistent' --data /nonexistent/file.svm
printf '1 1:1 2:1\n-1 1:2 2:2\n' >"$T/ray.svm"
bad_input 3 'not separable by any bias-free two-layer net' --data "$T/ray.svm"
bad_input 1 'cannot|No such|open' --data builtin:D --out /nonexistent/dir/p.txt

cli_test_done
