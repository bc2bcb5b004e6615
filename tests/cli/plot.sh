#!/bin/sh
# tests/cli/plot.sh -- `marginflow plot`: two train runs give a PDF and a
# PNG (checked as files: PDF header, PNG size = 4.5 x 3 in at 300 dpi, SVG
# size), the script reads the runs' metrics.csv by absolute path, --help
# names every option with its default, the x modes (log10-loss reversed,
# step on a log axis, log-log time), several panels, --group-by on a sweep
# (one key entry per value, in numeric order), --y ratio from analysis.json,
# a y range that follows the data, and every bad input exits 2 with its
# message. Needs gnuplot (scripts/install-deps installs it).
. "$(dirname "$0")/lib.sh"
cli_test_init plot
cd "$T" || exit 1

# expect_fail WHAT REGEX ARGS...: exit 2 and the message
expect_fail() {
    what=$1 re=$2
    shift 2
    "$MF" plot "$@" >out 2>err; rc=$?
    expect_rc 2 $rc "$what"
    expect_msg err "$re" "$what"
}

"$MF" train --data builtin:B --model diag:depth=2 --init-params 1,1,1,-1 --optimizer scaled \
    --lr 0.1 --until-log10-loss -300 --steps 0 --out B -q || bad "train B"
"$MF" train --data builtin:sym4 --model relu2:width=6,alpha=0.5 --init-scale 0.01 --optimizer flow \
    --until-log10-loss -100 --steps 0 --out sym4 -q || bad "train sym4"

# --- a PDF and a PNG of two runs
"$MF" plot B sym4 --out two.pdf --out two.png >out 2>err; rc=$?
expect_rc 0 $rc "plot two runs: $(cat err)"
expect_msg out '^two\.pdf$' "names the PDF"
expect_msg out '^two\.png$' "names the PNG"
if [ "$(head -c 5 two.pdf)" = "%PDF-" ]; then ok; else bad "two.pdf is not a PDF"; fi
if [ ! -e two.svg ]; then ok; else bad "an SVG nobody asked for"; fi
size=$(python3 -c 'import struct,sys; d=open(sys.argv[1],"rb").read(24); assert d[:8]==b"\x89PNG\r\n\x1a\n"; print("%dx%d" % struct.unpack(">II", d[16:24]))' two.png)
if [ "$size" = "1350x900" ]; then ok; else bad "PNG size $size, want 1350x900 (4.5 x 3 in at 300 dpi)"; fi
expect_msg two.gp "'$T/B/metrics.csv'" "the script reads B by absolute path"
expect_msg two.gp "title 'B' noenhanced" "a key entry per run"
expect_msg two.gp "set xlabel 'log_\{10\} log_\{10\} t" "auto x: log-log once t passes 1e100"
expect_msg two.gp "set terminal pdfcairo" "PDF terminal"
expect_msg two.gp "set terminal pngcairo .*size 1350,900" "PNG terminal at 300 dpi"
if [ ! -e two.log ]; then ok; else bad "gnuplot log left: $(cat two.log)"; fi
"$MF" plot B --out one.svg -q; rc=$?
expect_rc 0 $rc "plot to SVG"
expect_msg one.svg 'width="432" height="288"' "SVG 4.5 x 3 in at 96 px/in"
if grep -q "title '" one.gp; then bad "a key for one run"; else ok; fi
# the y range follows the data: B's margin runs from about 0.44 to 0.5
lo=$(sed -n 's/^set yrange \[\([^:]*\):.*/\1/p' one.gp | head -n 1)
if awk -v l="$lo" 'BEGIN { exit !(l > 0.3 && l < 0.45) }'; then ok; else bad "y range starts at '$lo'"; fi

# --- x modes, panels
"$MF" plot B sym4 --x log10-loss --out loss.png -q; rc=$?
expect_rc 0 $rc "--x log10-loss"
xr=$(sed -n 's/^set xrange \[\(.*\):\(.*\)\]$/\1 \2/p' loss.gp)
if echo "$xr" | awk '{ exit !($1 > $2) }'; then ok; else bad "log10-loss: xrange not reversed: '$xr'"; fi
"$MF" plot B --x step --out step.png -q && grep -q '^set logscale x' step.gp; rc=$?
expect_rc 0 $rc "--x step on a log axis"
"$MF" plot B --x log10-time --out lt.png -q && grep -q "set xlabel 'log_{10} t " lt.gp; rc=$?
expect_rc 0 $rc "--x log10-time"
"$MF" plot B sym4 --y normalized_margin,log10_loss,norm --out panels.pdf -q; rc=$?
expect_rc 0 $rc "three panels"
expect_msg panels.gp '^set multiplot layout 3,1' "multiplot of 3"
n=$(grep -c '^plot ' panels.gp)
if [ "$n" -eq 3 ]; then ok; else bad "$n plot commands in panels.gp (one terminal: want 3)"; fi
"$MF" plot B --title 'Case B: u_1 v_1' --out titled.png -q && grep -q 'Case B: u\\\\_1 v\\\\_1' titled.gp; rc=$?
expect_rc 0 $rc "--title written literally: $(grep 'set title' titled.gp)"

# --- ratio needs gamma*: from analysis.json
expect_fail "ratio without analysis.json" "needs gamma\* of .*B: it has no analysis.json \(run marginflow analyze" B --y ratio
"$MF" analyze B -q || bad "analyze B"
"$MF" plot B --y ratio --out ratio.png -q; rc=$?
expect_rc 0 $rc "--y ratio after analyze"
expect_msg ratio.gp '\$7 / 1\)' "ratio = normalized_margin / gamma* = 1 for case B"

# --- a sweep, grouped by an axis (one key entry per value, numeric order)
cat >g.json <<'G'
{"name": "plot-test",
 "base": {"data": "builtin:sym4", "model": "relu2:width={width},alpha=0.5",
          "init": {"kind": "gauss", "scale": 0.01}, "optimizer": "flow",
          "steps": 3000, "until_log10_loss": -30},
 "axes": [{"name": "width", "values": [10, 2]}, {"name": "seed", "seeds": 2}],
 "analyze": false}
G
"$MF" sweep g.json --out sw -q >/dev/null 2>&1 || bad "sweep"
"$MF" plot sw --group-by width --out sw.png -q; rc=$?
expect_rc 0 $rc "plot a sweep by width"
n=$(grep -o "title 'width = [0-9]*'" sw.gp | tr '\n' ' ')
if [ "$n" = "title 'width = 2' title 'width = 10' " ]; then ok; else bad "sweep key entries: $n"; fi
n=$(grep -c "metrics.csv' skip 1" sw.gp)
if [ "$n" -eq 4 ]; then ok; else bad "$n run clauses in sw.gp (4 runs, one terminal: want 4)"; fi
p=$(ls -d sw/points/* | head -n 1)
"$MF" plot "$p" --group-by seed --out point.png -q; rc=$?
expect_rc 0 $rc "plot one sweep point"

# --- bad input: exit 2 and a clear message
expect_fail "no run" "give one or more run directories" --out x.pdf
expect_fail "missing directory" "plot: nope: No such file or directory" nope
mkdir empty
expect_fail "not a run" "empty is not a run directory \(no metrics.csv\)" empty
expect_fail "bad --x" "--x: expected log10-time, step, log10-loss, log-log-time or auto, got 'time'" B --x time
expect_fail "bad --y" "--y gama: .*has no such column; its columns: step time" B --y gama
expect_fail "bad --group-by" "--group-by widht: .*has no such field \(fields: run, model" B --group-by widht
expect_fail "bad --out" "--out x.jpg: the file name must end in .pdf, .svg or .png" B --out x.jpg
expect_fail "two names" "several outputs must share one name" B --out a.pdf --out b.png
expect_fail "bad --size" "--size: expected WxH in inches" B --size 4x
expect_fail "unknown option" "unknown option '--colour'" B --colour red
printf 'step,time\n' >empty/metrics.csv
expect_fail "no x column" "has no log10_time column \(--x log10-time\)" empty
printf 'step,time,log10_time,normalized_margin\n' >empty/metrics.csv
expect_fail "no rows" "has no rows yet" empty

# --- --help: every option and its default
"$MF" plot --help >help 2>&1; rc=$?
expect_rc 0 $rc "--help"
for o in --x --y --group-by --out --title --size --quiet --help; do
    expect_msg help "^  (-[a-z], )?$o" "--help lists $o"
done
expect_msg help "default auto" "--help: the --x default"
expect_msg help "default normalized_margin" "--help: the --y default"
expect_msg help "default run" "--help: the --group-by default"
expect_msg help "default plot.pdf" "--help: the --out default"
expect_msg help "default 4.5x3" "--help: the --size default"

cli_test_done
