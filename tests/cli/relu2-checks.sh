#!/bin/sh
# relu2-checks.sh -- the two-layer ReLU claim quantities of `marginflow
# reproduce` (cli/checks_relu2.c) end to end, each both ways: a claim whose
# expectation holds passes with the measured numbers, the opposite
# expectation fails (so none of them can pass whatever happens), and bad
# uses are refused or reported with the exact sentence.
#
#  - global_relu2: the two-rays limit (margin 1/4) is "not-global" against the
#    certified gamma* = cos(50deg)/2; "global" fails; the witness network
#    written next to the claim trains (as --init-file) at that margin;
#  - layer0_relu2: the two-rays first layer is local-certified and not-global,
#    "not-local" fails; case D's first layer is not-local, "local-certified"
#    fails; a name that is not a fact is refused (exit 2);
#  - odd_even, sign_init, invariant on sym4: pass with their numbers, fail
#    with an impossible bound, and a run without snapshots is an ERROR;
#  - a claim run's max_rel_step (lyu-li's step bound) is validated like the
#    other train settings;
#  - analyze and maxmargin report the certified reference of bias-free relu2
#    (mf_global_relu2): "Not global" with its network, "REFERENCE (certified)".
# Prints "N passed, N failed"; exits 1 on any failure.

. "$(dirname "$0")/lib.sh"
cli_test_init relu2-checks

E="$T/exp"
mkdir -p "$E"
TWO='{"name": "two", "data": "experiments/data/vardi-two-rays.svm", "model": "relu2:width=2,alpha=0", "init": {"params": [0.5, -0.1, -0.3, 0.6, 0.4, 0.4]}, "optimizer": "flow", "until_log10_loss": -10000}'
D='{"name": "D", "data": "builtin:D", "model": "relu2:width=2,alpha=0", "init": {"params": [1, -1, -1, 1, 1, 1]}, "optimizer": "scaled", "lr": 0.1, "until_log10_loss": -1000000}'
SYM='{"name": "s", "data": "builtin:sym4", "model": "relu2:width=6,alpha=0.5", "init": {"kind": "gauss", "scale": 1e-6, "seed": 1}, "optimizer": "flow", "until_log10_loss": -300, "snapshots": true}'
GD='{"name": "gd", "data": "builtin:sym4", "model": "relu2:width=6,alpha=0.5", "init": {"kind": "gauss", "scale": 1e-3, "seed": 1}, "optimizer": "scaled", "lr": "{lr}", "vary": {"name": "lr", "values": [0.04, 0.02]}, "until_log10_loss": -30, "snapshots": true}'
claim() { # NAME RUNS CHECKS
    printf '{"name": "%s", "paper_result": "[X] a_k^2 - ||w_k||^2 stays", "runs": [%s], "checks": [%s]}\n' \
        "$1" "$2" "$3" >"$E/$1.json"
}
claim g-not "$TWO" '{"quantity": "global_relu2", "expect": "not-global", "tol": 1e-3}'
claim g-yes "$TWO" '{"quantity": "global_relu2", "expect": "global"}'
claim l0-two "$TWO" '{"quantity": "layer0_relu2", "expect": ["local-certified", "not-global"]}'
claim l0-two-nl "$TWO" '{"quantity": "layer0_relu2", "expect": "not-local"}'
claim l0-D "$D" '{"quantity": "layer0_relu2", "expect": "not-local", "gain_min": 0.1}'
claim l0-D-lc "$D" '{"quantity": "layer0_relu2", "expect": "local-certified"}'
claim oe "$SYM" '{"quantity": "odd_even", "cos_min": 0.999, "ratio_max": 0.5}, {"quantity": "sign_init"}'
claim oe-bad "$SYM" '{"quantity": "odd_even", "cos_min": 1.5}'
claim sign "$SYM" '{"quantity": "sign_init"}'
claim inv "$SYM, $GD" '{"quantity": "invariant", "run": "s", "tol": 1e-6}, {"quantity": "invariant", "run": "gd", "slope": 1, "slope_tol": 0.3}'
claim inv-bad "$GD" '{"quantity": "invariant", "slope": 2, "slope_tol": 0.3}'
claim g-diag '{"name": "m", "data": "builtin:B", "model": "diag:depth=2", "until_log10_loss": -3, "init": {"params": [1, 1, 1, -1]}}' '{"quantity": "global_relu2", "expect": "global"}'
claim sign-nosnap '{"name": "s", "data": "builtin:sym4", "model": "relu2:width=6,alpha=0.5", "until_log10_loss": -3}' '{"quantity": "sign_init"}'

"$MF" reproduce --experiments "$E" --out "$T/o" --jobs 2 >"$T/out" 2>"$T/err"
expect_rc 1 $? "some claims fail on purpose: exit 1"
line() { grep "^[A-Z]* $1: " "$T/out"; }
has() { # CLAIM STATUS FIXED-TEXT
    if line "$1" | grep -q "^$2 " && line "$1" | grep -qF -- "$3"; then ok; else
        bad "$1: want $2 with '$3', got: $(line "$1")"; fi
}
has g-not PASS "two: gamma 0.2499"
has g-not PASS "certified gamma* in [0.321393804843, 0.321393804843]"
has g-yes FAIL "gamma / gamma* 0.7778"
has l0-two PASS "in the same pattern (local-certified)"
has l0-two PASS "first layer from the global network (relu2:width=1,alpha=0): 0.605"
has l0-two-nl FAIL "kinks 0"
has l0-D PASS "kinks 2, best first-order descent rate 0.7"
has l0-D-lc FAIL "(not-local)"
has oe PASS "cos(v, w_svm)"
has oe-bad FAIL "final cos >= 1.5"
has sign PASS "6/6 neurons end with sign(a_k) = sign(a_k(0) + <w_k(0), mu^>), 6/6"
has inv PASS "slope of ln drift vs ln step 1.0"
has inv-bad FAIL "slope 2 +- 0.3"
has g-diag ERROR "run m: global_relu2 needs a bias-free relu2 model"
has sign-nosnap ERROR "run s: sign_init needs snapshots (from step 0) of a bias-free relu2 model"
check "the witness network is written next to the claim" test -s "$T/o/g-not/global-two.txt"
check "the report maps claims to paper results (column)" grep -q "| claim | verdict | paper result | paper |" "$T/o/report.md"
check "a '|' in a table cell is escaped in report.md" grep -qF '| PASS | [X] a_k^2 - \|\|w_k\|\|^2 stays |' "$T/o/report.md"
check "and in the checks' measured column" grep -qF '| odd_even | PASS | cos(v, w_svm)' "$T/o/report.md"
check "(escaped there too)" grep -qF 'max\|E\| / max\|L\|' "$T/o/report.md"

# the witness trains at its certified margin (it is a q_min = 1 KKT point)
spec=$(sed -n 's/^# marginflow params v1 n=[0-9]* model=//p' "$T/o/g-not/global-two.txt")
"$MF" train --data experiments/data/vardi-two-rays.svm --model "$spec" --init-file "$T/o/g-not/global-two.txt" \
    --optimizer flow --steps 0 --until-log10-loss -1000 --out "$T/w" -q
expect_rc 0 $? "training from the witness network"
m=$(json "$T/w/summary.json" 'd["final"]["normalized_margin"]')
check "witness margin $m = 0.3213938 (1e-6)" python3 -c "import sys; sys.exit(abs($m - 0.32139380484327) > 1e-6)"

# the analysis and maxmargin use the certified reference for bias-free relu2:
# the two-rays limit is local-certified and "Not global" with the reference
# network; maxmargin prints it as the reference, a diagonal net gets none
"$MF" analyze "$T/o/g-not/two" >"$T/an" 2>&1
expect_rc 0 $? "analyze the two-rays limit"
check "analyze: gamma* of the convex program" grep -q "gamma\*        0.32139380" "$T/an"
check "analyze: local-certified" grep -q "verdict       local-certified" "$T/an"
check "analyze: not global, with the network" grep -qF "Not global: gamma / gamma* = 0.7778" "$T/an"
check "analyze: the network is named" grep -qF "attained by the network relu2:width=1,alpha=0 in analysis.json global.theta" "$T/an"
"$MF" maxmargin --model relu2:width=2,alpha=0 --data experiments/data/vardi-two-rays.svm --starts 6 -q >"$T/mm" 2>&1
check "maxmargin: the certified reference" grep -qF "REFERENCE (certified): gamma* = 0.3213938048432" "$T/mm"
check "maxmargin: best against it" grep -q "^best found / gamma\* = " "$T/mm"
"$MF" maxmargin --model diag:depth=2 --data builtin:B --starts 2 -q >"$T/mm2" 2>&1
check "maxmargin: no reference line for other models" test "$(grep -c "REFERENCE\|^reference" "$T/mm2")" = 0
"$MF" maxmargin --model relu2:width=2,alpha=0 --data gauss:n=40,d=5,margin=0.1,seed=1 --starts 1 -q >"$T/mm3" 2>&1
check "maxmargin: a refused program says why" grep -q "^reference: none (global: .*more than max_patterns" "$T/mm3"

# an expectation that is not a fact of the quantity is refused before training
B="$T/bad"
mkdir -p "$B"
printf '{"name": "b", "runs": [%s], "checks": [{"quantity": "layer0_relu2", "expect": "global"}]}\n' "$TWO" >"$B/b.json"
printf '{"name": "c", "runs": [%s], "checks": [{"quantity": "global_relu2", "expect": ["global"]}]}\n' "$TWO" >"$B/c.json"
printf '{"name": "m", "runs": [{"name": "r", "data": "builtin:B", "model": "diag:depth=2", "optimizer": "lyu-li", "max_rel_step": -1}], "checks": [{"quantity": "final", "expect": 1}]}\n' >"$B/m.json"
"$MF" reproduce --experiments "$B" --out "$T/ob" >"$T/bout" 2>"$T/berr"
expect_rc 2 $? "bad expectations exit 2"
check "a run's max_rel_step is validated" grep -qF "m.json: runs[0]: run 'r': max_rel_step: must be a finite number >= 0 (0 = off)" "$T/berr"
check "layer0 names" grep -qF "b.json: checks[0].expect: 'global' is not one of local-certified, not-local, not-global, inconclusive" "$T/berr"
check "global_relu2 takes one name" grep -qF "c.json: checks[0].expect: must be \"global\" or \"not-global\"" "$T/berr"
check "nothing trained" test ! -e "$T/ob/b/two"

cli_test_done
