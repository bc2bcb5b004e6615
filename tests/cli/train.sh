#!/bin/sh
# train.sh -- end-to-end tests of `marginflow train` / `layout` (needs the
# whole build: ${BUILD:-build}/marginflow).
#
#  - docs/theory.md s.4 case B through the CLI: every run file is written, the final
#    normalized margin is 0.5 (within 1e-6), log10 Loss < -10000, no nan/inf;
#  - --help lists every option; bad input exits 2 with file:line:col or a
#    sentence naming the problem (bad data file, unknown model, wrong
#    --init-params count, bad --lr, unknown option / command);
#  - resume: a run stopped early and resumed gives metrics.csv and params.txt
#    byte-identical to an uninterrupted run; a corrupt or foreign checkpoint
#    makes --resume fail with exit 2; SIGINT exits 130 with a checkpoint and
#    the resume hint, and the run then resumes.
# Prints "N passed, N failed"; exits 1 on any failure.

. "$(dirname "$0")/lib.sh"
cli_test_init train

if [ ! -x "$MF" ]; then
    echo "train.sh: $MF not built"
    echo "tests/cli/train.sh: 0 passed, 1 failed"
    exit 1
fi

# ------------------------------------------------------------ case B
R="$T/caseB"
"$MF" train --data builtin:B --model diag:depth=2 --init-params 1,1,1,-1 --loss exp \
    --optimizer scaled --lr 0.1 --until-log10-loss -10000 --out "$R" >"$T/out" 2>"$T/err"
expect_rc 0 $? "case B run"
for f in config.json command.txt metrics.csv params.txt checkpoint.bin summary.json; do
    check "case B leaves $f" test -s "$R/$f"
done
nm=$(json "$R/summary.json" "repr(d['final']['normalized_margin'])")
ll=$(json "$R/summary.json" "repr(d['final']['log10_loss'])")
check "case B normalized margin $nm, want 0.5 +- 1e-6" \
    python3 -c "import sys; sys.exit(abs(float('$nm') - 0.5) > 1e-6)"
check "case B log10 loss $ll, want < -10000" python3 -c "import sys; sys.exit(not $ll < -10000)"
check "case B outcome" test "$(json "$R/summary.json" "d['outcome']")" = loss-target
# metrics.csv: header, rows, no nan/inf, and the last row agrees with summary.json
check "metrics.csv has no nan/inf" sh -c "! grep -Eiq 'nan|inf' '$R/metrics.csv'"
check "metrics.csv header" test "$(head -n 1 "$R/metrics.csv")" = \
    "step,time,log10_time,log10_loss,norm,q_min,normalized_margin,smoothed_margin,layer_margin,lr,train_error,balancedness,beta,smoothed_decrease,loss_increase,margin_change"
check "metrics.csv first row is step 0 with t = 0" sh -c "sed -n 2p '$R/metrics.csv' | grep -q '^0,0,,'"
last_nm=$(tail -n 1 "$R/metrics.csv" | cut -d, -f7)
check "last metrics row margin $last_nm = summary $nm" \
    python3 -c "import sys; sys.exit(float('$last_nm') != float('$nm'))"
# config.json: exact argv, resolved settings, round-trippable numbers
check "config.json argv" test "$(json "$R/config.json" "' '.join(d['argv'][1:])")" = \
    "train --data builtin:B --model diag:depth=2 --init-params 1,1,1,-1 --loss exp --optimizer scaled --lr 0.1 --until-log10-loss -10000 --out $R"
check "config.json settings" test \
    "$(json "$R/config.json" "(d['settings']['lr'], d['settings']['until_log10_loss'], d['settings']['max_steps'], d['settings']['until_time'], d['model']['spec'], d['data']['n'], d['data']['d'])")" = \
    "(0.1, -10000, 10000, None, 'diag:depth=2', 1, 2)"
check "command.txt is the command line" \
    grep -q -- "train --data builtin:B --model diag:depth=2 --init-params 1,1,1,-1" "$R/command.txt"
check "params.txt header" grep -q '^# marginflow params v1 n=4 model=diag:depth=2$' "$R/params.txt"
check "params.txt has 4 values" test "$(grep -vc '^#' "$R/params.txt")" -eq 4
# the limit direction is u = v = (1, 0): |u2| / |u1| tiny
check "params.txt direction (1,0;1,0)" python3 -c "
import sys
v = [float(l) for l in open('$R/params.txt') if not l.startswith('#')]
sys.exit(not (abs(v[1]) < 1e-6 * abs(v[0]) and abs(v[3]) < 1e-6 * abs(v[2]) and v[0] > 0 and v[2] > 0))"
"$MF" train --data builtin:B --out "$R" >/dev/null 2>"$T/err"
expect_rc 2 $? "refuses to overwrite a run"
expect_msg "$T/err" "already holds a run" "overwrite message"

# -------------------------------------------------------------- help
"$MF" train --help >"$T/help"
expect_rc 0 $? "train --help"
for o in --data --format --model --loss --optimizer --lr --tol --batch --steps \
    --until-log10-loss --until-margin-gap --until-time --wall-seconds --log-points \
    --checkpoint-every --init \
    --init-scale --seed --init-params --init-file --init-multiply --out -q --quiet --resume --help; do
    check "--help lists $o" grep -q -- "$o" "$T/help"
done
for d in "default linear" "default exp" "default flow" "default 0.1" "default 1e-6" \
    "default 32" "default 10000" "default 200" "default 1000" "default gauss" "default 1)" \
    "runs/train-YYYYmmdd-HHMMSS" "130 interrupted" "4 run ended non-finite"; do
    check "--help says '$d'" grep -q -- "$d" "$T/help"
done
"$MF" --help >"$T/help" && grep -q train "$T/help" && grep -q layout "$T/help"
expect_rc 0 $? "marginflow --help lists the commands"
"$MF" help >/dev/null
expect_rc 0 $? "marginflow help"
check "marginflow --version" sh -c "'$MF' --version | grep -q '^marginflow [0-9]'"

# --------------------------------------------------------- bad input
printf '+1 1:0.5 2:1\n-1 1:0.25 2:abc\n' >"$T/bad.svm"
"$MF" train --data "$T/bad.svm" --out "$T/x1" 2>"$T/err"
expect_rc 2 $? "bad data file"
expect_msg "$T/err" "^marginflow: .*bad\\.svm:2:[0-9]+:" "bad data file names file:line:col"
check "no run dir after bad data" test ! -e "$T/x1"
"$MF" train --data "$T/no-such-file.svm" --out "$T/x1" 2>"$T/err"
expect_rc 2 $? "missing data file"
expect_msg "$T/err" "no-such-file\\.svm" "missing data file named"
"$MF" train --data builtin:B --model nosuchmodel:width=3 --out "$T/x2" 2>"$T/err"
expect_rc 2 $? "unknown model"
expect_msg "$T/err" "^marginflow: .*nosuchmodel" "unknown model named"
"$MF" train --data builtin:B --model diag:depth=2 --init-params 1,1,1 --out "$T/x3" 2>"$T/err"
expect_rc 2 $? "wrong --init-params count"
expect_msg "$T/err" "expected 4 values for diag:depth=2, got 3; see marginflow layout" \
    "--init-params count message"
"$MF" train --data builtin:B --model diag:depth=2 --init-params 1,1,x,1 --out "$T/x3" 2>"$T/err"
expect_rc 2 $? "non-numeric --init-params"
expect_msg "$T/err" "'x'" "non-numeric --init-params names the token"
"$MF" train --data builtin:B --lr -1 --out "$T/x4" 2>"$T/err"
expect_rc 2 $? "negative --lr"
expect_msg "$T/err" "^marginflow: .*lr" "negative --lr message"
"$MF" train --data builtin:B --lr abc --out "$T/x4" 2>"$T/err"
expect_rc 2 $? "non-numeric --lr"
expect_msg "$T/err" "^marginflow: --lr: .*'abc'" "non-numeric --lr message"
"$MF" train --data builtin:B --frobnicate 3 2>"$T/err"
expect_rc 2 $? "unknown option"
expect_msg "$T/err" "unknown option '--frobnicate'" "unknown option message"
"$MF" train --data builtin:B --steps 2>"$T/err"
expect_rc 2 $? "missing option value"
"$MF" train --out "$T/x5" 2>"$T/err"
expect_rc 2 $? "missing --data"
"$MF" frobnicate 2>"$T/err"
expect_rc 2 $? "unknown command"
expect_msg "$T/err" "unknown command 'frobnicate'" "unknown command message"
"$MF" train --data builtin:B --init-file "$T/bad.svm" --out "$T/x6" 2>"$T/err"
expect_rc 2 $? "bad --init-file"
expect_msg "$T/err" "bad\\.svm:1:[0-9]+:" "bad --init-file names file:line:col"
check "no run dirs after bad input" sh -c "! ls -d '$T'/x* 2>/dev/null | grep -q ."

# outputs that overflow at the initial parameters: exit 4, files still written
"$MF" train --data builtin:B --model diag:depth=2 --init-params 1e200,1e200,1e200,-1e200 \
    --out "$T/nonfinite" -q 2>"$T/err"
expect_rc 4 $? "non-finite run"
expect_msg "$T/err" "non-finite" "non-finite message"
check "non-finite summary" test "$(json "$T/nonfinite/summary.json" "d['outcome']")" = non-finite
check "non-finite run keeps its parameters" test "$(grep -c '^9.9999999999999997e+199$' "$T/nonfinite/params.txt")" -eq 3

# ------------------------------------------------------------ layout
"$MF" layout --model diag:depth=2 --data builtin:B >"$T/layout"
expect_rc 0 $? "layout"
check "layout lists 4 parameters" grep -q "n_params 4" "$T/layout"

# ------------------------------------------- accuracy and its indicators
# --until-log10-loss takes log10 of the loss: 1e-300 is refused with the fix
"$MF" train --data builtin:B --until-log10-loss 1e-300 --out "$T/u1" 2>"$T/err"
expect_rc 2 $? "--until-log10-loss 1e-300"
expect_msg "$T/err" "^marginflow: --until-log10-loss 1e-300: the value is log10 of the loss, so this asks for Loss <= 10\\^1e-300, about 1; for Loss <= 1e-300 give --until-log10-loss -300$" \
    "--until-log10-loss 1e-300 says what was meant"
check "no run dir after --until-log10-loss 1e-300" test ! -e "$T/u1"
"$MF" train --data builtin:B --until-margin-gap 2 --out "$T/u2" 2>"$T/err"
expect_rc 2 $? "--until-margin-gap 2"
expect_msg "$T/err" "until_margin_gap: must be a number in \\(0, 1\\)" "--until-margin-gap range message"
# the default optimizer is flow; lyu-li on sym4 shows its discretization
# error: one warning line, and the indicators in metrics.csv / summary.json
S4="--data builtin:sym4 --model relu2:width=20,alpha=0.5 --init-scale 1e-3 --seed 5 --steps 0 --until-log10-loss -100000"
# shellcheck disable=SC2086
"$MF" train $S4 --out "$T/s4flow" >"$T/out" 2>"$T/err"
expect_rc 0 $? "sym4 at the default optimizer"
check "default optimizer is flow" test "$(json "$T/s4flow/config.json" "d['settings']['optimizer']")" = flow
check "flow: no warning" test ! -s "$T/err"
check "flow: smoothed margin never decreased by more than 1e-12" \
    python3 -c "import json,sys; d=json.load(open('$T/s4flow/summary.json')); sys.exit(not d['indicators']['smoothed_decrease'] <= 1e-12)"
check "flow: within 1e-6 of gamma* = 0.41926274578 at log10 Loss -1e5" \
    python3 -c "import json,sys; d=json.load(open('$T/s4flow/summary.json')); sys.exit(not abs(d['final']['normalized_margin'] / 0.41926274578121064 - 1) < 1e-6)"
check "flow: beta > 0.9999999" \
    python3 -c "import json,sys; d=json.load(open('$T/s4flow/summary.json')); sys.exit(not d['final']['beta'] > 0.9999999)"
expect_msg "$T/out" "^accuracy: gradient flow, local error per step <= 1e-06" "flow reports its accuracy"
# shellcheck disable=SC2086
"$MF" train $S4 --optimizer lyu-li --out "$T/s4ll" >"$T/out" 2>"$T/err"
expect_rc 0 $? "sym4 with lyu-li"
check "lyu-li: exactly one warning line" test "$(wc -l <"$T/err")" -eq 1
expect_msg "$T/err" "^marginflow: warning: lyu-li: the smoothed margin decreased by [0-9.e-]+ \\(relative\\) in step [0-9]+ with Loss < ell\\(0\\)" \
    "lyu-li warning names the decrease and the step"
check "lyu-li: summary indicator above 1e-3 (measured 6.9e-3 in issue 11)" \
    python3 -c "import json,sys; d=json.load(open('$T/s4ll/summary.json'))['indicators']; sys.exit(not (d['smoothed_decrease'] > 1e-3 and d['smoothed_decrease_step'] > 0))"
check "lyu-li: metrics.csv carries the running maximum" python3 -c "
import csv, json, sys
rows = list(csv.DictReader(open('$T/s4ll/metrics.csv')))
d = json.load(open('$T/s4ll/summary.json'))
sd = [float(r['smoothed_decrease']) for r in rows]
sys.exit(not (sd == sorted(sd) and sd[-1] == d['indicators']['smoothed_decrease'] and rows[-1]['beta'] != ''))"
expect_msg "$T/out" "^accuracy: lyu-li is a discrete method: beta" "lyu-li reports its indicators"
# --until-margin-gap stops once the margin moved less than X over a decade of log t
# shellcheck disable=SC2086
"$MF" train --data builtin:sym4 --model relu2:width=20,alpha=0.5 --init-scale 1e-3 --seed 5 \
    --steps 0 --until-margin-gap 1e-5 --out "$T/gap" -q
expect_rc 0 $? "--until-margin-gap 1e-5"
check "margin-gap outcome" test "$(json "$T/gap/summary.json" "d['outcome']")" = margin-gap
check "margin-gap: the reported change is <= 1e-5" \
    python3 -c "import json,sys; d=json.load(open('$T/gap/summary.json')); sys.exit(not 0 < d['final']['margin_change'] <= 1e-5)"
check "margin-gap: log10 t >= 10 / ln 10 when it stops" \
    python3 -c "import json,sys; d=json.load(open('$T/gap/summary.json')); sys.exit(not d['final']['log_time'] >= 10)"

# -------------------------------------------------------------- resume
G="--data gauss:n=50,d=5 --model relu2:width=10 --optimizer scaled --steps 300 --checkpoint-every 100 -q"
"$MF" train $G --out "$T/full"
expect_rc 0 $? "uninterrupted run"
# stop early through a stopping criterion that does not move the log-step
# schedule (--steps does), then resume with the criterion switched off
"$MF" train $G --until-log10-loss -9 --out "$T/part"
expect_rc 0 $? "run stopped at log10 loss -9"
stop=$(json "$T/part/summary.json" "d['steps']")
check "stopped at step $stop, between 100 and 300" test "$stop" -gt 100 -a "$stop" -lt 300
check "partial run has fewer rows" test "$(wc -l <"$T/part/metrics.csv")" -lt "$(wc -l <"$T/full/metrics.csv")"
"$MF" train --resume "$T/part" --until-log10-loss off -q
expect_rc 0 $? "resume"
check "resumed metrics.csv is byte-identical" cmp "$T/full/metrics.csv" "$T/part/metrics.csv"
check "resumed params.txt is byte-identical" cmp "$T/full/params.txt" "$T/part/params.txt"
check "resumed summary steps" test "$(json "$T/part/summary.json" "d['steps']")" -eq 300
check "command.txt records the resume" grep -q "^# resumed: .*--resume" "$T/part/command.txt"
# --steps 150 then --steps 300: with the log schedule fixed by --log-horizon,
# the resumed run is byte-identical to the uninterrupted one
"$MF" train $G --steps 150 --log-horizon 300 --out "$T/part2"
expect_rc 0 $? "run with --steps 150"
"$MF" train --resume "$T/part2" --steps 300 -q
expect_rc 0 $? "resume with --steps 300"
check "resumed (--steps) params.txt is byte-identical" cmp "$T/full/params.txt" "$T/part2/params.txt"
check "resumed (--steps) metrics.csv is byte-identical" cmp "$T/full/metrics.csv" "$T/part2/metrics.csv"
# resuming a resumed, finished run changes nothing
cp "$T/part/metrics.csv" "$T/m.csv"
"$MF" train --resume "$T/part" -q
expect_rc 0 $? "resume of a finished run"
check "finished run resumes to the same metrics.csv" cmp "$T/m.csv" "$T/part/metrics.csv"

"$MF" train --resume "$T/part" --lr 0.5 2>"$T/err"
expect_rc 2 $? "--resume with --lr"
expect_msg "$T/err" "--lr cannot be combined with --resume" "--resume with --lr message"
"$MF" train --resume "$T/nonexistent" 2>"$T/err"
expect_rc 2 $? "--resume of a missing dir"

# corrupt checkpoint: flip one byte in theta
cp -r "$T/full" "$T/corrupt"
python3 - "$T/corrupt/checkpoint.bin" <<'EOF'
import sys
p = sys.argv[1]
b = bytearray(open(p, 'rb').read())
b[len(b) - 20] ^= 0x01
open(p, 'wb').write(bytes(b))
EOF
"$MF" train --resume "$T/corrupt" --steps 400 2>"$T/err"
expect_rc 2 $? "corrupt checkpoint"
expect_msg "$T/err" "checkpoint\\.bin: checkpoint checksum mismatch" "corrupt checkpoint message"
# foreign checkpoint: the configuration changed under it (lr edited)
cp -r "$T/full" "$T/foreign"
python3 - "$T/foreign/config.json" <<'EOF'
import json, sys
p = sys.argv[1]
d = json.load(open(p))
d['settings']['lr'] = 0.2
json.dump(d, open(p, 'w'))
EOF
"$MF" train --resume "$T/foreign" --steps 400 2>"$T/err"
expect_rc 2 $? "foreign checkpoint"
expect_msg "$T/err" "another configuration" "foreign checkpoint message"
# another run's checkpoint copied in
cp "$T/caseB/checkpoint.bin" "$T/foreign/checkpoint.bin"
cp "$T/full/config.json" "$T/foreign/config.json"
"$MF" train --resume "$T/foreign" --steps 400 2>"$T/err"
expect_rc 2 $? "checkpoint of another run"

# --------------------------------------------------------------- SIGINT
S="$T/sig"
"$MF" train --data gauss:n=200,d=10 --model linear --steps 0 --wall-seconds 120 \
    --checkpoint-every 0 --out "$S" -q 2>"$T/err" &
pid=$!
sleep 1
kill -INT "$pid"
wait "$pid"
expect_rc 130 $? "SIGINT"
check "checkpoint after SIGINT" test -s "$S/checkpoint.bin"
check "params after SIGINT" test -s "$S/params.txt"
expect_msg "$T/err" "interrupted at step [0-9]+; resume with: marginflow train --resume " \
    "resume hint"
check "summary outcome interrupted" test "$(json "$S/summary.json" "d['outcome']")" = interrupted
k=$(json "$S/summary.json" "d['steps']")
"$MF" train --resume "$S" --wall-seconds 0.3 -q
expect_rc 0 $? "resume after SIGINT"
k2=$(json "$S/summary.json" "d['steps']")
check "resumed past step $k (now $k2)" test "$k2" -gt "$k"
check "metrics steps strictly increase after resume" awk -F, '
    NR > 2 && $1 + 0 <= prev { bad = 1 } NR > 1 { prev = $1 + 0 } END { exit bad }' "$S/metrics.csv"

# --init-multiply C: a 2-homogeneous relu2's step-0 q_min is C^2 times the
# unmultiplied start's, its norm C times, its normalized margin unchanged;
# config.json records the factor; C <= 0 and a resume with it are refused
"$MF" train --data builtin:sym4 --model relu2:width=4,alpha=0 --init gauss --init-scale 0.5 \
    --steps 1 --out "$T/im0" -q
for c in 1 3; do
    "$MF" train --data builtin:sym4 --model relu2:width=4,alpha=0 --init-file "$T/im0/params.txt" \
        --init-multiply $c --steps 1 --out "$T/im$c" -q
    expect_rc 0 $? "--init-multiply $c"
done
check "--init-multiply 3: q_min x 9, norm x 3, same normalized margin" awk -F, '
    FNR == 2 { q[FILENAME] = $6; n[FILENAME] = $5; g[FILENAME] = $7 }
    END { a = ARGV[1]; b = ARGV[2]; r = q[b] / q[a]; s = n[b] / n[a]; d = g[b] - g[a]
          exit !(r > 9 - 1e-12 && r < 9 + 1e-12 && s > 3 - 1e-13 && s < 3 + 1e-13 &&
                 d < 1e-15 && d > -1e-15) }' "$T/im1/metrics.csv" "$T/im3/metrics.csv"
check "config.json records multiply 3" test "$(json "$T/im3/config.json" "d['init']['multiply']")" = 3
check "config.json of factor 1 has no multiply" test "$(json "$T/im1/config.json" "'multiply' in d['init']")" = False
"$MF" train --data builtin:sym4 --init-multiply -1 --out "$T/im4" -q 2>"$T/err"
expect_rc 2 $? "--init-multiply -1"
expect_msg "$T/err" "--init-multiply: must be a finite number > 0" "--init-multiply -1 says why"
"$MF" train --resume "$T/im3" --init-multiply 2 2>"$T/err"
expect_rc 2 $? "--init-multiply with --resume"

cli_test_done
