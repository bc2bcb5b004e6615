#!/bin/sh
# reproduce.sh -- end-to-end test of `marginflow reproduce` (needs the whole
# build: ${BUILD:-build}/marginflow; figures need gnuplot, and are checked
# only when it is installed).
#
#  - three fast claims (cases B, C and G of docs/theory.md s.4) in quick form with
#    --jobs 2: each prints PASS, the run ends with "3 passed, 0 failed" and
#    exit 0; each run directory holds metrics.csv, params.txt, summary.json;
#    report.md / report.html name every claim; the figures exist as .gp (and
#    .png/.svg/.pdf with gnuplot);
#  - --jobs 1 gives the same lines as --jobs 2 (deterministic);
#  - snapshots.csv (on_snapshot) has one NaN-free row per metrics row, and the
#    per-layer verdict check covers every layer;
#  - a claim whose expected value is wrong prints FAIL with the measured
#    number and exits 1; an unknown claim exits 2; --list lists the claims;
#  - bad claim files (huge seeds / vary counts, out-of-range or fractional
#    integers, non-numbers in number lists, empty specs, duplicate run names
#    or keys, unknown keys, text after the JSON) are refused before anything
#    trains, each with a line naming the file and the field, exit 2, without
#    leaks under ASan.
# KEEP=1 keeps the temporary folder.
# Prints "N passed, N failed"; exits 1 on any failure.

. "$(dirname "$0")/lib.sh"
cli_test_init reproduce

CLAIMS="vardi-B-not-local vardi-C-not-local vardi-G-decreasing"
"$MF" reproduce $CLAIMS --quick --jobs 2 --out "$T/a" >"$T/out2" 2>"$T/err2"
rc=$?
if [ $rc -eq 0 ]; then ok; else bad "reproduce --jobs 2 exit $rc: $(cat "$T/out2" "$T/err2")"; fi
for c in $CLAIMS; do
    check "$c passes" grep -q "^PASS $c: " "$T/out2"
    check "$c in report.md" grep -q "$c" "$T/a/report.md"
    check "$c in report.html" grep -q "id=\"$c\"" "$T/a/report.html"
    check "$c margin figure script" test -s "$T/a/$c/fig-margin.gp"
    if command -v gnuplot >/dev/null 2>&1; then
        check "$c margin PNG" test -s "$T/a/$c/fig-margin.png"
        check "$c margin SVG" test -s "$T/a/$c/fig-margin.svg"
        check "$c margin PDF" test -s "$T/a/$c/fig-margin.pdf"
        check "$c margin: no gnuplot log (it failed)" test ! -e "$T/a/$c/fig-margin.log"
    fi
    for f in config.json metrics.csv params.txt summary.json; do
        check "$c/main/$f" test -s "$T/a/$c/main/$f"
    done
done
check "summary line" grep -q "^3 passed, 0 failed$" "$T/out2"
# the measured margin of B is 0.5 in the PASS line
check "B measured 0.5" grep -Eq "^PASS vardi-B-not-local: normalized_margin 0\.(5|4999999)" "$T/out2"

"$MF" reproduce $CLAIMS --quick --jobs 1 --out "$T/b" >"$T/out1" 2>&1
check "--jobs 1 and --jobs 2 print the same lines" cmp -s "$T/out1" "$T/out2"

# snapshots through on_snapshot: one theta row per metrics row, no NaN; the
# per-layer verdict check (every layer of three linear nets: global)
"$MF" reproduce llwa21-sym4-align vardi-layer-global --quick --out "$T/s" >"$T/outs" 2>&1
check "snapshot claims pass" grep -q "^2 passed, 0 failed$" "$T/outs"
S="$T/s/llwa21-sym4-align/main"
check "one snapshot per logged row" test "$(grep -vc '^#' "$S/snapshots.csv")" -eq "$(wc -l <"$S/metrics.csv")"
check "snapshots hold no NaN" sh -c "! grep -qi nan '$S/snapshots.csv'"
check "layer verdicts cover every layer (3 + 2 + 3)" grep -q "(8 analyses)" "$T/s/vardi-layer-global/result.json"

# a wrong expectation must FAIL, with the measured number
mkdir -p "$T/exp"
sed 's/"expect": 0.5,/"expect": 0.6,/' experiments/vardi-B-not-local.json >"$T/exp/wrong-B.json"
"$MF" reproduce --experiments "$T/exp" --out "$T/c" >"$T/outw" 2>&1
rc=$?
check "wrong expectation exits 1" test $rc -eq 1
check "wrong expectation FAILs with the number" grep -q "^FAIL wrong-B: normalized_margin 0.5" "$T/outw"
check "wrong expectation summary" grep -q "^0 passed, 1 failed$" "$T/outw"

# bad claim files (cli/experiment.c): refused before anything is trained,
# one ERROR line per claim naming the file and the field. Under `make asan`
# LeakSanitizer also fails the run if a refused run leaks (init.params).
B="$T/bad"
mkdir -p "$B"
# claim NAME RUN [CHECK]: a claim file with one run object (keys inside {})
claim() {
    printf '{"name": "%s", "runs": [%s], "checks": [%s]}\n' "$1" "$2" \
        "${3:-{\"quantity\": \"final\", \"expect\": 0.5, \"tol\": 0.001\}}" >"$B/$1.json"
}
RUN='"name": "main", "data": "builtin:B", "model": "diag:depth=2", "optimizer": "scaled", "lr": 0.1, "until_log10_loss": -3'
P='"init": {"params": [1, 1, 1, -1]}'
BODY='"data": "builtin:B", "model": "diag:depth=2", "optimizer": "scaled", "lr": 0.1, "until_log10_loss": -3'
claim huge-seeds "{$RUN, \"seeds\": 1e18}"
claim huge-seed-list "{$RUN, \"seeds\": [1, 2, 1e300]}"
claim vary-times-seeds "{$RUN, \"vary\": {\"name\": \"s\", \"values\": [$(seq -s, 1 200)]}, \"seeds\": 100}"
claim long-vary "{$RUN, \"vary\": {\"name\": \"s\", \"values\": [$(seq -s, 1 10001)]}}"
claim neg-steps "{$RUN, $P, \"steps\": -1}"
claim huge-steps "{$RUN, $P, \"steps\": 1e300}"
claim frac-log-points "{$RUN, $P, \"log_points\": 2.5}"
claim nan-template "{$RUN, $P, \"steps\": \"nan\"}"
claim neg-init-seed "{$RUN, \"init\": {\"kind\": \"gauss\", \"scale\": 0.1, \"seed\": -5}}"
claim huge-starts "{$RUN, $P}" '{"quantity": "below_best", "starts": 1e30}'
claim leak-params "{$RUN, $P, \"tol\": 2}"
claim string-param "{$RUN, \"init\": {\"params\": [1, \"1\", 1, -1]}}"
claim string-vary "{$RUN, $P, \"vary\": {\"name\": \"s\", \"values\": [1, \"2\"]}}"
claim empty-data "{\"name\": \"main\", \"data\": \"\", \"until_log10_loss\": -3}"
claim second-bad "{$RUN, $P}, {$RUN, $P}"
claim typo-key "{$RUN, $P}" '{"quantity": "final", "expect": 0.5, "tolerance": 0.001}'
claim from-later "{$RUN, \"init\": {\"from_run\": \"later\"}}, {$BODY, $P, \"name\": \"later\"}"
claim from-params "{$RUN, $P}, {$BODY, \"name\": \"two\", \"init\": {\"from_run\": \"main\", \"params\": [1, 1, 1, -1]}}"
claim neg-multiply "{$RUN, \"init\": {\"params\": [1, 1, 1, -1], \"multiply\": -2}}"
printf '{"name": "x", "runs": [{%s, %s}], "checks": [{"quantity": "final", "expect": 0.5}]} trailing\n' \
    "$RUN" "$P" >"$B/trailing.json"
"$MF" reproduce --experiments "$B" --out "$T/bo" >"$T/outb" 2>"$T/errb"
rc=$?
check "bad claim files exit 2 (bad input)" test $rc -eq 2
check "bad claim files: all 20 refused, nothing run" grep -q "20 claim files refused; nothing was run" "$T/errb"
check "no leak or sanitizer report on refused files" sh -c "! grep -Eq 'Sanitizer|runtime error' '$T/errb'"
expect_err() { # claim, message (fixed string)
    check "$1: $2" grep -qF "marginflow: $B/$1.json: $2" "$T/errb"
}
expect_err huge-seeds "runs[0].seeds: 1e+18 seeds is more than the limit of 10000 runs per claim"
expect_err huge-seed-list "runs[0].seeds[2]: 1.0000000000000001e+300 is not an integer in [0, 9007199254740992]"
expect_err vary-times-seeds "runs[0]: 200 vary values x 100 seeds makes 20000 runs in the claim, more than the limit of 10000"
expect_err long-vary "runs[0].vary.values: 10001 values is more than the limit of 10000 runs per claim"
expect_err neg-steps "runs[0].steps: -1 is not an integer in [0, 9007199254740992]"
expect_err huge-steps "runs[0].steps: 1.0000000000000001e+300 is not an integer"
expect_err frac-log-points "runs[0].log_points: 2.5 is not an integer in [0, 1000000]"
expect_err nan-template "runs[0].steps: 'nan' is not a finite number"
expect_err neg-init-seed "runs[0].init.seed: -5 is not an integer in [0, 9007199254740992]"
expect_err huge-starts "checks[0].starts: 1e+30 is not an integer in [1, 100000]"
expect_err leak-params "runs[0]: run 'main': tol: must be in (0, 1)"
expect_err string-param "runs[0].init.params[1]: must be a finite number"
expect_err string-vary "runs[0].vary.values[1]: must be a finite number"
expect_err empty-data "runs[0].data: must not be empty"
expect_err second-bad "runs: two runs expand to the same name 'main'"
expect_err typo-key "checks[0].tolerance: unknown key"
expect_err from-later "runs[0].init.from_run: 'later' is not an earlier run of the claim"
expect_err from-params "runs[1].init: \"from_run\" excludes \"params\", \"kind\" and \"scale\""
expect_err neg-multiply "runs[0].init.multiply: must be > 0, got -2"
check "trailing text after the JSON" grep -qF "marginflow: $B/trailing.json:1:" "$T/errb"
check "trailing text message" grep -qF "text after the JSON value" "$T/errb"
check "refused claims train nothing" test ! -e "$T/bo/second-bad/main"

# init.from_run: a run starts from an earlier run's final parameters, times
# init.multiply (diag:depth=2 is 2-homogeneous: q_min exactly x 4 for 2)
F="$T/from"
mkdir -p "$F"
printf '{"name": "from-ok", "runs": [{%s, %s}, {"name": "twice", %s, "steps": 5, "init": {"from_run": "main", "multiply": 2}}], "checks": [{"quantity": "final", "run": "twice", "column": "normalized_margin", "op": "ge", "expect": 0}]}\n' \
    "$RUN" "$P" "$BODY" >"$F/from-ok.json"
"$MF" reproduce --experiments "$F" --out "$T/fo" >"$T/outf" 2>&1
expect_rc 0 $? "from_run claim"
check "from_run: config.json names main's params.txt" \
    test "$(json "$T/fo/from-ok/twice/config.json" "d['init']['file'].endswith('from-ok/main/params.txt')")" = True
check "from_run: config.json records multiply 2" test "$(json "$T/fo/from-ok/twice/config.json" "d['init']['multiply']")" = 2
check "from_run x 2: the first q_min is 4 x main's last" awk -F, '
    FNR == 2 && FILENAME == ARGV[2] { b = $6 } FILENAME == ARGV[1] && FNR > 1 { a = $6 }
    END { exit !(b == 4 * a && a > 0) }' "$T/fo/from-ok/main/metrics.csv" "$T/fo/from-ok/twice/metrics.csv"

"$MF" reproduce no-such-claim --out "$T/d" >/dev/null 2>"$T/erru"
rc=$?
check "unknown claim exits 2" test $rc -eq 2
check "unknown claim message" grep -q "unknown claim 'no-such-claim'" "$T/erru"
"$MF" reproduce --list >"$T/list" 2>&1
check "--list names the claims" grep -q "^vardi-B-not-local " "$T/list"

cli_test_done
