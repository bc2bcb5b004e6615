#!/bin/sh
# tests/cli/demo.sh -- scripts/demo's verdict, with a stand-in marginflow
# (the real demo takes a minute; `make demo` runs it): a claim that fails is
# a non-zero exit naming the claim and where to look, whether reproduce
# itself exits 0 or 1, found from its FAIL/ERROR lines or from a result.json
# whose status is not PASS; all passing is exit 0; a failing demo run is a
# non-zero exit; the output always ends with the three things to try next.
. "$(dirname "$0")/lib.sh"
cli_test_init demo
ROOT=$(pwd)
mkdir -p "$T/fake"
cat >"$T/fake/marginflow" <<'SH'
#!/bin/sh
# reproduce: print $FAKE_LINES, write result.json files for $FAKE_RESULTS
# (claim=STATUS ...), exit $FAKE_RC; train: exit $FAKE_TRAIN_RC
case "$1" in
reproduce)
    printf '%b' "$FAKE_LINES"
    for cs in $FAKE_RESULTS; do
        mkdir -p "runs/reproduce/${cs%%=*}"
        printf '{\n\t"status":\t"%s"\n}\n' "${cs#*=}" >"runs/reproduce/${cs%%=*}/result.json"
    done
    exit "${FAKE_RC:-0}" ;;
train) exit "${FAKE_TRAIN_RC:-0}" ;;
esac
exit 0
SH
chmod +x "$T/fake/marginflow"

# run_demo WANT_RC WHAT: scripts/demo in a fresh folder with the stand-in
run_demo() {
    want=$1 what=$2
    rm -rf "$T/w" && mkdir -p "$T/w"
    (cd "$T/w" && BUILD="$T/fake" sh "$ROOT/scripts/demo") >"$T/out" 2>&1
    expect_rc "$want" $? "$what"
    tail -n 7 "$T/out" >"$T/tail"
    expect_msg "$T/tail" '^Three things to try next:$' "$what: ends with the three things to try"
    expect_msg "$T/tail" '^  3\. docs/tutorial\.md' "$what: the third thing"
}

FAKE_LINES='PASS a: x vs y\nFAIL b: x vs y\n1 passed, 1 failed\n' FAKE_RESULTS='a=PASS b=FAIL' FAKE_RC=0 \
    run_demo 1 "a FAIL line, reproduce exiting 0"
expect_msg "$T/out" '^demo: FAILED claims: b$' "names the failed claim"
expect_msg "$T/out" 'runs/reproduce/b/result.json' "says where to look"
FAKE_LINES='PASS a: x vs y\n' FAKE_RESULTS='a=PASS c=ERROR' FAKE_RC=1 run_demo 1 "a result.json not PASS"
expect_msg "$T/out" '^demo: FAILED claims: c$' "the claim found from its result.json"
FAKE_LINES='' FAKE_RESULTS='' FAKE_RC=1 run_demo 1 "reproduce failing with no claim"
expect_msg "$T/out" '^demo: marginflow reproduce exited 1; see runs/reproduce.log' "the exit status alone"
FAKE_LINES='PASS a: x\nPASS b: y\n2 passed, 0 failed\n' FAKE_RESULTS='a=PASS b=PASS' FAKE_RC=0 \
    run_demo 0 "every claim passing"
if grep -q FAILED "$T/out"; then bad "a failure reported when all passed"; else ok; fi
FAKE_LINES='PASS a: x\n' FAKE_RESULTS='a=PASS' FAKE_RC=0 FAKE_TRAIN_RC=2 run_demo 1 "a demo run failing"
expect_msg "$T/out" '^demo: a demo run failed' "says a demo run failed"
cli_test_done
