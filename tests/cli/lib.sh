# lib.sh -- the helpers every tests/cli/*.sh sources (not a test itself:
# tests/run-tests runs *.sh files, and this one only defines functions).
#
#   . "$(dirname "$0")/lib.sh"; cli_test_init NAME
#   check "what" cmd args...   expect_rc WANT GOT "what"   expect_msg FILE REGEX "what"
#   json FILE EXPR             cli_test_done
#   rand_ms sleep_ms session_pids kill_session wait_results kill_midway (kill tests)
#   find_python MODULES   sanitizer_preload SO (the Python tests)
#
# Sets MF (the marginflow binary, absolute; the test fails at once when it is
# not built), T (a temp folder removed on exit unless KEEP=1), and counts
# checks in pass/fail.

cli_test_init() {
    CLI_TEST_NAME=$1
    BUILD=${BUILD:-build}
    case "$BUILD" in /*) ;; *) BUILD="$(pwd)/$BUILD" ;; esac
    MF=${MARGINFLOW:-$BUILD/marginflow}
    pass=0
    fail=0
    T=$(mktemp -d "${TMPDIR:-/tmp}/mf-cli-$CLI_TEST_NAME.XXXXXX") || exit 1
    # KEEP=1 keeps the scratch folder for a look afterwards
    if [ -n "$KEEP" ]; then echo "scratch folder: $T" >&2; else trap 'rm -rf "$T"' EXIT; fi
    if [ ! -x "$MF" ]; then
        echo "$CLI_TEST_NAME.sh: $MF not built"
        echo "tests/cli/$CLI_TEST_NAME.sh: 0 passed, 1 failed"
        exit 1
    fi
}

ok() { pass=$((pass + 1)); }
bad() {
    fail=$((fail + 1))
    echo "FAIL: $*" >&2
}
# check DESCRIPTION COMMAND...: passes when COMMAND succeeds
check() {
    d=$1
    shift
    if "$@"; then ok; else bad "$d"; fi
}
# expect_rc WANT GOT DESCRIPTION
expect_rc() {
    if [ "$2" -eq "$1" ]; then ok; else bad "$3: exit $2, want $1"; fi
}
# expect_msg FILE REGEX DESCRIPTION
expect_msg() {
    if grep -Eq -- "$2" "$1"; then ok; else bad "$3: message '$(cat "$1")' lacks /$2/"; fi
}
# json FILE EXPR: print a python expression of the parsed JSON d
json() { python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print($2)" "$1"; }

# rand_ms LO HI: a uniform random integer in [LO, HI]; sleep_ms MS
rand_ms() {
    r=$(od -An -N2 -tu2 /dev/urandom | tr -d ' ')
    echo $(($1 + r % ($2 - $1 + 1)))
}
sleep_ms() { sleep "$(awk -v m="$1" 'BEGIN { printf "%.3f", m / 1000 }')"; }
# session_pids SID: the processes of the session SID (a command started with
# setsid, its children and theirs); kill_session SID: SIGKILL them all
session_pids() { ps -eo pid=,sid= | awk -v s="$1" '$2 == s { print $1 }'; }
kill_session() {
    for p in $(session_pids "$1"); do kill -KILL "$p" 2>/dev/null; done
}
# wait_results DIR N: wait until the sweep DIR has N finished points (at
# most 20 s); N = 0: a random 0.1..0.6 s instead
wait_results() {
    if [ "$2" -eq 0 ]; then sleep_ms "$(rand_ms 100 600)"; return; fi
    n=0
    while [ "$(ls "$1"/points/*/result.json 2>/dev/null | wc -l)" -lt "$2" ] && [ $n -lt 400 ]; do
        sleep 0.05
        n=$((n + 1))
    done
}

# kill_midway DIR SID: SIGKILL the session SID (a sweep into DIR) once 0..2
# more of its points have finished (at most 7 in all, so a restart has work)
kill_midway() {
    have=$(ls "$1"/points/*/result.json 2>/dev/null | wc -l)
    want=$((have + $(rand_ms 0 2)))
    [ "$want" -gt 7 ] && want=7
    [ "$want" -eq "$have" ] && want=0
    wait_results "$1" "$want"
    kill_session "$2"
    wait "$2" 2>/dev/null
}

# find_python MODULES: print the first of $PYTHON, python3 on PATH and
# /usr/bin/python3 that imports every module of MODULES ("numpy pandas");
# nothing when none does
find_python() {
    for p in "${PYTHON:-}" python3 /usr/bin/python3; do
        [ -n "$p" ] || continue
        if "$p" -c "import $(echo "$1" | tr ' ' ',')" 2>/dev/null; then echo "$p"; return; fi
    done
}
# sanitizer_preload SO: the LD_PRELOAD a program that is not itself built
# with ASan (python3) needs to load the shared library SO of an ASan build
# (the ASan and UBSan runtimes); nothing for a plain build
sanitizer_preload() {
    nm -D "$1" 2>/dev/null | grep -q ' U __asan_init' || return 0
    pre=""
    for rt in libasan.so libubsan.so; do
        f=$(${CC:-cc} -print-file-name=$rt)
        [ -f "$f" ] && pre="$pre${pre:+:}$f"
    done
    echo "$pre"
}

# Print the closing line and return the status.
cli_test_done() {
    echo "tests/cli/$CLI_TEST_NAME.sh: $pass passed, $fail failed"
    [ "$fail" -eq 0 ]
}
