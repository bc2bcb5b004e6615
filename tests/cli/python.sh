#!/bin/sh
# tests/cli/python.sh -- the Python package (python/marginflow) with pytest
# against this build's shared library and CLI (python/tests): round trips
# with the CLI (train, analyze, svm), known answers, error paths, the
# example script.
#
# The interpreter: $PYTHON, else the first python3 on PATH or
# /usr/bin/python3 that imports numpy, pandas and pytest (Debian's
# python3-numpy, python3-pandas, python3-pytest; scripts/install-deps).
# Under an ASan build (make asan) the library needs the sanitizer runtimes
# loaded before the interpreter: they are preloaded (LD_PRELOAD), and leak
# checking is off (the interpreter itself keeps memory to the end).
. "$(dirname "$0")/lib.sh"
cli_test_init python
ROOT=$(pwd)
SO="$BUILD/libmarginflow.so.0"

py=$(find_python "numpy pandas pytest")
if [ -z "$py" ]; then
    bad "no python3 with numpy, pandas and pytest (run scripts/install-deps)"
    cli_test_done
    exit 1
fi
if [ ! -f "$SO" ]; then
    bad "$SO not built (make shared)"
    cli_test_done
    exit 1
fi

preload=$(sanitizer_preload "$SO")

out="$T/pytest.out"
env LD_PRELOAD="$preload" ASAN_OPTIONS="detect_leaks=0:${ASAN_OPTIONS:-}" \
    PYTHONDONTWRITEBYTECODE=1 PYTHONPATH="$ROOT/python" PYTHON="$py" \
    MARGINFLOW_LIB="$SO" MARGINFLOW_CLI="$MF" \
    "$py" -m pytest -q -p no:cacheprovider "$ROOT/python/tests" >"$out" 2>&1
rc=$?
summary=$(grep -E '[0-9]+ (passed|failed)' "$out" | tail -n 1)
p=$(printf '%s' "$summary" | grep -Eo '[0-9]+ passed' | cut -d' ' -f1)
f=$(printf '%s' "$summary" | grep -Eo '[0-9]+ failed' | cut -d' ' -f1)
e=$(printf '%s' "$summary" | grep -Eo '[0-9]+ errors?' | cut -d' ' -f1)
pass=${p:-0}
fail=$((${f:-0} + ${e:-0}))
if [ $rc -ne 0 ] || [ "$pass" -eq 0 ]; then
    [ "$fail" -eq 0 ] && fail=1
    tail -n 60 "$out" >&2
fi
cli_test_done
