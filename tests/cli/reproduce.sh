#!/bin/sh
# reproduce.sh -- end-to-end test of `marginflow reproduce` (needs the whole
# build: ${BUILD:-build}/marginflow; figures need gnuplot, and are checked
# only when it is installed).
#
#  - three fast claims (cases B, C and G of THEORY.md) in quick form with
#    --jobs 2: each prints PASS, the run ends with "3 passed, 0 failed" and
#    exit 0; each run directory holds metrics.csv, params.txt, summary.json;
#    report.md / report.html name every claim; the figures exist as .gp (and
#    .png/.svg with gnuplot);
#  - --jobs 1 gives the same lines as --jobs 2 (deterministic);
#  - snapshots.csv (on_snapshot) has one NaN-free row per metrics row, and the
#    per-layer verdict check covers every layer;
#  - a claim whose expected value is wrong prints FAIL with the measured
#    number and exits 1; an unknown claim exits 2; --list lists the claims.
# Prints "N passed, N failed"; exits 1 on any failure.

BUILD=${BUILD:-build}
case "$BUILD" in /*) ;; *) BUILD="$(pwd)/$BUILD" ;; esac
MF="$BUILD/marginflow"
pass=0
fail=0
T=$(mktemp -d "${TMPDIR:-/tmp}/mf-cli-repro.XXXXXX")
trap 'rm -rf "$T"' EXIT
ok() { pass=$((pass + 1)); }
bad() {
    fail=$((fail + 1))
    echo "FAIL: $*" >&2
}
check() {
    d=$1
    shift
    if "$@"; then ok; else bad "$d"; fi
}

if [ ! -x "$MF" ]; then
    echo "reproduce.sh: $MF not built"
    echo "tests/cli/reproduce.sh: 0 passed, 1 failed"
    exit 1
fi

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

"$MF" reproduce no-such-claim --out "$T/d" >/dev/null 2>"$T/erru"
rc=$?
check "unknown claim exits 2" test $rc -eq 2
check "unknown claim message" grep -q "unknown claim 'no-such-claim'" "$T/erru"
"$MF" reproduce --list >"$T/list" 2>&1
check "--list names the claims" grep -q "^vardi-B-not-local " "$T/list"

echo "tests/cli/reproduce.sh: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
