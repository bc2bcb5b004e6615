#!/bin/sh
# tests/cli/tutorial.sh -- every command of docs/tutorial.md runs: the ```sh
# blocks (with this build's marginflow first on PATH) and the ```python
# blocks (with python/ on PYTHONPATH and this build's shared library), in
# the order of the file, in one scratch folder, each expected to succeed.
# The ```text blocks (the build and install commands, which make test and
# tests/cli/install.sh run themselves, and sample output) are not run. A
# few outputs the text quotes are checked too.
. "$(dirname "$0")/lib.sh"
cli_test_init tutorial
ROOT=$(pwd)
DOC="$ROOT/docs/tutorial.md"

py=$(find_python "numpy pandas")
preload=$(sanitizer_preload "$BUILD/libmarginflow.so.0")

# split the file into numbered blocks: T/blocks/NN.sh or NN.py
mkdir -p "$T/blocks" "$T/work"
awk -v dir="$T/blocks" '
    /^```sh$/     { n++; f = sprintf("%s/%02d.sh", dir, n); inb = 1; next }
    /^```python$/ { n++; f = sprintf("%s/%02d.py", dir, n); inb = 1; next }
    /^```/        { inb = 0; next }
    inb           { print > f }
' "$DOC"
nsh=$(ls "$T/blocks"/*.sh 2>/dev/null | wc -l)
npy=$(ls "$T/blocks"/*.py 2>/dev/null | wc -l)
if [ "$nsh" -ge 6 ] && [ "$npy" -ge 1 ]; then ok; else bad "only $nsh sh and $npy python blocks found in $DOC"; fi

# run them in order; the first block makes and enters first-hour/, so the
# others run there (the shell state is carried by running them in one shell)
cd "$T/work" || exit 1
: >"$T/all.sh"
for b in "$T/blocks"/*; do
    case "$b" in
    *.sh) printf 'echo "== %s"\n. "%s" || { echo "FAILED: block %s" >&2; exit 1; }\n' "$b" "$b" "$b" >>"$T/all.sh" ;;
    *.py) printf 'echo "== %s"\nenv LD_PRELOAD="%s" ASAN_OPTIONS=detect_leaks=0 PYTHONDONTWRITEBYTECODE=1 PYTHONPATH="%s/python" MARGINFLOW_LIB="%s/libmarginflow.so.0" "%s" "%s" || { echo "FAILED: block %s" >&2; exit 1; }\n' \
              "$b" "$preload" "$ROOT" "$BUILD" "$py" "$b" "$b" >>"$T/all.sh" ;;
    esac
done
PATH="$BUILD:$PATH" sh -e "$T/all.sh" >"$T/out" 2>&1; rc=$?
expect_rc 0 $rc "the tutorial's commands: $(tail -n 15 "$T/out")"
if [ -z "$py" ]; then bad "no python3 with numpy and pandas for the python blocks"; fi

# what the text says they print
W="$T/work/first-hour"
expect_msg "$T/out" '^gamma: 0\.64698886744255' "svm: gamma_svm of mydata.csv"
expect_msg "$T/out" '^final: log10 loss -300\.707438, normalized margin 0\.2425920123' "train: the final row quoted"
expect_msg "$T/out" 'gamma\*        0\.2426208253  \(leaky ReLU on symmetric data' "analyze: gamma*"
expect_msg "$T/out" '^CERTIFIED: gamma\* = 0\.242620825' "global: certified gamma*"
expect_msg "$T/out" '^  1 +0/4 \[0\.00, 0\.49\] +4/4 \[0\.51, 1\.00\]' "sweep-report: width 1 never global"
expect_msg "$T/out" '^refused: .*width=0' "python: the error path"
for f in runs/w20/analysis.json mine.pdf mine.png mine.gp widths-ratio.png runs/widths/results.csv \
         runs/widths/fig1-class-vs-width.pdf; do
    if [ -s "$W/$f" ]; then ok; else bad "the tutorial did not make $f"; fi
done
cli_test_done
