#!/bin/sh
# analyze.sh -- end-to-end tests of `marginflow analyze` (needs the whole
# build: ${BUILD:-build}/marginflow with train and analyze).
#
#  - docs/theory.md s.4 case B: a run directory from `marginflow train` is analysed;
#    analysis.json holds verdict not-local, gamma = 0.5, gamma* = 1 (l1 LP),
#    eps < 1e-6, Euler 2 = 2, the second-order eigenvalue -1 (d'Hd = -2 for
#    the unnormalized d = e_u2 + e_v2) and the measured margin gain > 0;
#    --layer 0 solves P_0 exactly (value 1/2 = optimum: global);
#  - the --model/--data/--params form: linear on sym4 at w_svm is global,
#    skip-linear (G) is non-homogeneous, --json prints parseable JSON;
#  - --help lists every option with its default; bad input exits 2.
# Prints "N passed, N failed"; exits 1 on any failure.

. "$(dirname "$0")/lib.sh"
cli_test_init analyze
# near FILE EXPR WANT TOL DESCRIPTION: |json expr - want| <= tol
near() {
    if python3 -c "
import json, sys
d = json.load(open(sys.argv[1])); v = eval(sys.argv[2])
ok = v is not None and abs(v - float(sys.argv[3])) <= float(sys.argv[4])
print(v) if not ok else None
sys.exit(0 if ok else 1)" "$1" "$2" "$3" "$4"; then ok; else bad "$5: want $3 +- $4"; fi
}

if [ ! -x "$MF" ] || ! "$MF" analyze --help >/dev/null 2>&1; then
    echo "analyze.sh: $MF not built or without the analyze command"
    echo "tests/cli/analyze.sh: 0 passed, 1 failed"
    exit 1
fi

# ------------------------------------------------------------ case B
R="$T/caseB"
"$MF" train --data builtin:B --model diag:depth=2 --init-params 1,1,1,-1 --loss exp \
    --optimizer scaled --lr 0.1 --steps 2000 --out "$R" -q >/dev/null 2>"$T/err"
expect_rc 0 $? "case B training run"
"$MF" analyze "$R" >"$T/out" 2>"$T/err"
expect_rc 0 $? "analyze case B run dir"
check "analysis.json written" test -s "$R/analysis.json"
A="$R/analysis.json"
check "format line" test "$(json "$A" "d['format'], d['version']")" = "marginflow-analysis 2"
check "verdict not-local" test "$(json "$A" "d['verdict']")" = not-local
near "$A" "d['gamma']" 0.5 1e-6 "case B gamma"
near "$A" "d['global']['gamma_star']" 1.0 1e-9 "case B gamma* from the l1 LP"
near "$A" "d['global']['ratio']" 0.5 1e-6 "case B ratio"
near "$A" "d['kkt']['eps']" 0 1e-6 "case B KKT eps"
near "$A" "d['kkt']['euler_lhs']" 2 1e-6 "case B Euler lhs"
near "$A" "d['kkt']['euler_rhs']" 2 1e-6 "case B Euler rhs"
near "$A" "d['kkt']['lambda'][0]" 1 1e-6 "case B multiplier"
near "$A" "d['second_order']['min_eig']" -1 1e-6 "case B min eigenvalue (d'Hd = -2 for |d|^2 = 2)"
near "$A" "abs(d['second_order']['dir'][1] * d['second_order']['dir'][3])" 0.5 1e-6 \
    "case B direction (e_u2 + e_v2)/sqrt 2"
check "case B curve gain positive at r = 1e-3" \
    python3 -c "import json,sys; d=json.load(open('$A')); sys.exit(not d['second_order']['gain'][2]['gain'] > 0)"
check "case B witness on the second-order curve" test "$(json "$A" "d['witness']['kind']")" = "second-order curve"
check "case B witness feasible and better" python3 -c "
import json,sys; d=json.load(open('$A')); w=d['witness']
sys.exit(not (w['found'] and w['q_min'] >= 1 and w['gain_vs_reference'] > w['noise_bound'] >= 1e-9
              and w['distance'] <= w['radius'] and len(w['theta']) == 4))"
check "no NaN and no null in analysis.json" python3 -c "
import json, math, sys
def walk(v):
    if v is None or (isinstance(v, float) and not math.isfinite(v)): sys.exit(1)
    if isinstance(v, dict): [walk(x) for x in v.values()]
    if isinstance(v, list): [walk(x) for x in v]
walk(json.load(open('$A')))"
check "theta_tilde has 4 entries" test "$(json "$A" "len(d['theta_tilde'])")" -eq 4
expect_msg "$T/out" "verdict +not-local" "summary verdict line"
expect_msg "$T/out" "witness +second-order curve" "summary says which witness"
expect_msg "$T/out" "Euler" "summary Euler line"
# per-layer problem P_0: v frozen at (1, 0), optimum 1/2 = value at theta~
"$MF" analyze "$R" --layer 0 --out "$T/layer.json" >"$T/out" 2>"$T/err"
expect_rc 0 $? "analyze --layer 0"
near "$T/layer.json" "d['layer']['opt']" 0.5 1e-9 "P_0 optimum"
near "$T/layer.json" "d['layer']['value']" 0.5 1e-6 "P_0 value at theta~"
check "P_0 verdict global" test "$(json "$T/layer.json" "d['verdict']")" = global

# ---------------------------------------- explicit model / data / params
printf '0.8 0.4\n' >"$T/wsvm.txt"
"$MF" analyze --model linear --data builtin:sym4 --params "$T/wsvm.txt" --json >"$T/lin.json" 2>"$T/err"
expect_rc 0 $? "analyze linear on sym4 --json"
check "linear at w_svm is global" test "$(json "$T/lin.json" "d['verdict']")" = global
near "$T/lin.json" "d['global']['ratio']" 1 1e-10 "linear ratio"
printf '2\n1\n' >"$T/g.txt"
"$MF" analyze --model skip-linear --data builtin:G --params "$T/g.txt" --out "$T/g.json" >/dev/null 2>"$T/err"
expect_rc 0 $? "analyze skip-linear"
check "G is non-homogeneous" test "$(json "$T/g.json" "d['verdict']")" = non-homogeneous
near "$T/g.json" "d['gamma']" 0.8 1e-12 "G gamma"

# -------------------------------------------------------------- help
"$MF" analyze --help >"$T/help"
expect_rc 0 $? "analyze --help"
for o in --model --data --format --params --loss --layer --kkt-tol --act-tol --zero-tol \
    --global-tol --trials --seed --out --json --quiet --help; do
    check "--help lists $o" grep -q -- "$o" "$T/help"
done
# every default --help prints is the one the code uses (analysis.json
# records the settings an analysis without options ran with)
"$MF" analyze --model linear --data builtin:sym4 --params "$T/wsvm.txt" --out "$T/defaults.json" \
    -q 2>"$T/err"
check "--help defaults are the code's defaults" python3 -c "
import json, re, sys
h = open('$T/help').read(); s = json.load(open('$T/defaults.json'))['settings']
opts = {'--kkt-tol': 'kkt_tol', '--act-tol': 'act_tol', '--zero-tol': 'zero_tol',
        '--global-tol': 'global_tol', '--hess-h': 'hess_h', '--trials': 'local_trials',
        '--max-patterns': 'max_patterns', '--seed': 'seed', '--layer': 'layer'}
bad = []
for o, k in opts.items():
    m = re.search(re.escape(o) + r' [^\n]*?\(default ([-0-9.e+]+)', h)
    if not m or float(m.group(1)) != float(s[k]): bad.append((o, m and m.group(1), s[k]))
print(bad) if bad else None
sys.exit(1 if bad else 0)"

# --------------------------------------------------------- bad input
"$MF" analyze "$T/no-such-run" >/dev/null 2>"$T/err"
expect_rc 2 $? "missing run dir"
expect_msg "$T/err" "no-such-run" "missing run dir named"
"$MF" analyze "$R" --bogus >/dev/null 2>"$T/err"
expect_rc 2 $? "unknown option"
"$MF" analyze "$R" --kkt-tol 0 >/dev/null 2>"$T/err"
expect_rc 2 $? "bad --kkt-tol"
expect_msg "$T/err" "kkt_tol" "bad --kkt-tol named"
"$MF" analyze --model linear --data builtin:sym4 >/dev/null 2>"$T/err"
expect_rc 2 $? "missing --params"
printf '1 2 3\n' >"$T/three.txt"
"$MF" analyze --model linear --data builtin:sym4 --params "$T/three.txt" >/dev/null 2>"$T/err"
expect_rc 2 $? "wrong parameter count"
printf '1 0 0 1 1 1\n' >"$T/d.txt"
"$MF" analyze --model relu2:width=2,alpha=0 --data builtin:D --params "$T/d.txt" --layer 0 \
    >/dev/null 2>"$T/err"
expect_rc 2 $? "--layer on a hidden ReLU layer"
expect_msg "$T/err" "per-layer problem" "unsupported layer explained"

cli_test_done
