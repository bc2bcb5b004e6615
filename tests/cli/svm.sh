#!/bin/sh
# tests/cli/svm.sh -- `marginflow svm`: exit codes and output for a solved
# set (docs/theory.md s.4's sym4 and case B), --json that parses and carries the
# numbers, a non-separable set (exit 3 with its certificate), and bad input
# (exit 2, the message naming file:line:col).
# Uses $MARGINFLOW, or $BUILD/marginflow (BUILD defaults to build).
. "$(dirname "$0")/lib.sh"
cli_test_init svm

# expect_grep PATTERN FILE WHAT
expect_grep() {
    if grep -q -- "$1" "$2"; then ok; else bad "$3: no '$1' in:"; sed 's/^/  | /' "$2" >&2; fi
}

# --- solved: sym4, gamma_svm = sqrt(5)/2 = 1.1180339887498949, w = (0.8, 0.4)
"$MF" svm --data builtin:sym4 >"$T/out" 2>"$T/err"; rc=$?
expect_rc 0 $rc "svm sym4"
expect_grep '^status: solved' "$T/out" "svm sym4"
expect_grep '^gamma: 1.11803398874989' "$T/out" "svm sym4 gamma"
expect_grep '^w: 0.7999999999999999[0-9]* 0.39999999999999[0-9]*\|^w: 0.80000000000000[0-9]* 0.4000000000000000[0-9]*' "$T/out" "svm sym4 w"
expect_grep '^support vectors: 1 (active constraints: 2)' "$T/out" "svm sym4 support"
expect_grep '^residuals (relative): primal' "$T/out" "svm sym4 residuals"

# --- l1 on case B: beta = (0, 1/2), gamma_l1 = 2, diagonal-net optimum 1
"$MF" svm --data builtin:B --norm l1 >"$T/out" 2>"$T/err"; rc=$?
expect_rc 0 $rc "svm B l1"
expect_grep '^gamma: 2 ' "$T/out" "svm B l1 gamma"
expect_grep '^gamma_diag2: 1 ' "$T/out" "svm B l1 gamma_diag2"
expect_grep '^beta: 0 0.5$' "$T/out" "svm B l1 beta"

# --- --json parses and carries the numbers (python3 checks them)
"$MF" svm --data builtin:sym4 --json >"$T/json" 2>"$T/err"; rc=$?
expect_rc 0 $rc "svm --json"
if python3 - "$T/json" <<'PY'
import json, math, sys
r = json.load(open(sys.argv[1]))
assert r["status"] == "solved" and r["norm"] == "l2", r
assert abs(r["gamma"] - math.sqrt(5) / 2) < 1e-14, r["gamma"]
assert abs(r["w"][0] - 0.8) < 1e-14 and abs(r["w"][1] - 0.4) < 1e-14, r["w"]
assert r["support"][0]["sample"] in (1, 5), r["support"]
assert r["residuals"]["kkt"] < 1e-10, r["residuals"]
assert r["gamma_lower"] <= r["gamma"] * (1 + 1e-15) <= r["gamma_upper"] * (1 + 3e-15), r
PY
then ok; else bad "svm --json content"; fi

# --- non-separable: {x, -x} with the same label; exit 3 with the certificate
printf '+1 1:0.3 2:-1.7\n+1 1:-0.3 2:1.7\n' >"$T/ns.svm"
"$MF" svm --data "$T/ns.svm" >"$T/out" 2>"$T/err"; rc=$?
expect_rc 3 $rc "svm non-separable"
expect_grep '^status: nonseparable' "$T/out" "svm non-separable"
expect_grep '^||sum_n c_n y_n x_n|| = \(0\|[0-9.]*e-1[0-9]\),' "$T/out" "svm non-separable certificate norm"
expect_grep '^ *2  0.5' "$T/out" "svm non-separable weights"
"$MF" svm --data "$T/ns.svm" --norm l1 --json >"$T/json" 2>"$T/err"; rc=$?
expect_rc 3 $rc "svm non-separable l1 --json"
if python3 -c '
import json, sys
r = json.load(open(sys.argv[1]))
c = r["certificate"]
assert r["status"] == "nonseparable" and c["norm"] < 1e-10, r
assert abs(sum(w["c"] for w in c["weights"]) - 1) < 1e-15, c
' "$T/json"; then ok; else bad "svm non-separable --json content"; fi

# --- bad input: exit 2, message names file:line:col
printf '+1 1:1 2:1\n-1 1:0.5 2:zz\n' >"$T/bad.svm"
"$MF" svm --data "$T/bad.svm" >"$T/out" 2>"$T/err"; rc=$?
expect_rc 2 $rc "svm bad file"
expect_grep "bad.svm:2:[0-9][0-9]*:" "$T/err" "svm bad file message"
"$MF" svm --data "$T/missing.svm" >"$T/out" 2>"$T/err"; rc=$?
expect_rc 2 $rc "svm missing file"
"$MF" svm --data builtin:B --norm l3 >"$T/out" 2>"$T/err"; rc=$?
expect_rc 2 $rc "svm --norm l3"
expect_grep "l2 or l1" "$T/err" "svm --norm l3 message"
"$MF" svm >"$T/out" 2>"$T/err"; rc=$?
expect_rc 2 $rc "svm without --data"
"$MF" svm --help >"$T/out" 2>"$T/err"; rc=$?
expect_rc 0 $rc "svm --help"
expect_grep "3 not linearly separable" "$T/out" "svm --help exit codes"

# multi-class data: the Crammer-Singer SVM through the origin (issue 12)
"$MF" svm --data tests/data/multi3.svm >"$T/out" 2>"$T/err"
expect_rc 0 $? "svm multi-class"
expect_grep '^classes: 3 (hard-margin multi-class SVM through the origin, Crammer-Singer' "$T/out" "multi-class form named"
expect_grep '^gamma: 1.38873014965882' "$T/out" "multi-class gamma = sqrt(27/14)"
expect_grep '^W\[2\]: -0.2222222222222222[0-9]* -0.33333333333333' "$T/out" "multi-class W row 2"
"$MF" svm --data tests/data/multi3.svm --json >"$T/mc.json" 2>"$T/err"
expect_rc 0 $? "svm multi-class --json"
check "multi-class JSON: classes, W rows, per-class multipliers" python3 -c "
import json, sys; d = json.load(open('$T/mc.json'))
sys.exit(not (d['classes'] == 3 and len(d['w']) == 3 and len(d['w'][0]) == 2
              and all(len(s['alpha_per_class']) == 3 for s in d['support'])))"

cli_test_done
