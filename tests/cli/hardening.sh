#!/bin/sh
# hardening.sh -- issue 13, the CLI half: nothing a user owns is overwritten
# or mixed, no reader grows beyond its cap, no stopping rule is ignored, no
# NaN or raw control byte reaches a user, bad experiment files are refused
# whole (needs ${BUILD:-build}/marginflow). Each block names what it guards:
#
#  - the run lock: two trains on one --out at once (one wins, the other
#    exits 2); --resume of a run being trained exits 2 and the live run is
#    not harmed (its temp files are not deleted, it finishes, it resumes);
#  - run directories: a folder like / and a folder of the user's files (a
#    params.txt, a notes.txt) are refused and left as they were; a run killed
#    before its config.json (lock file, checkpoint) is started afresh;
#    --out '' says the name is empty; a 700-character --out is used whole
#    (train, resume, analyze), and so is a long reproduce --out;
#  - data_hash: recorded in config.json; resume and analyze refuse changed
#    data naming both hashes; runs from before data hashes get a warning;
#    analyze refuses a params file of another model with the same count;
#  - class labels 0..C-1 with every class present (a stray 999999);
#  - numbers: --init-params "1;2" is "not a number"; a run non-finite at its
#    start does not claim a saved "last good state"; svm prints an absent
#    alpha as "absent" (never "nan"), its JSON is valid with null;
#  - stopping rules: features near the overflow edge stall (an outcome with a
#    reason) instead of rejecting steps forever;
#  - readers: config.json / metrics.csv / an experiment file that are
#    /dev/zero or an endless FIFO are refused at their cap, under a memory
#    limit that the old unbounded readers exceed;
#  - experiment files: validated whole before anything trains (a model spec
#    wrong for its data, a NUL byte, a raw or escaped control character, an
#    escaped NUL, a file beyond the size limit, stated), exit 2, nothing run.
# Prints "N passed, N failed"; exits 1 on any failure.

. "$(dirname "$0")/lib.sh"
cli_test_init hardening
cd "$T" || exit 1
SLOW="--data builtin:B --optimizer gd --lr 1e-9 --steps 0"

# ------------------------------------------------------------- the lock
# two trains on one --out, started together: one trains, the other exits 2
("$MF" train $SLOW --wall-seconds 2 -q --out two >/dev/null 2>a.err; echo $? >a.rc) &
("$MF" train $SLOW --wall-seconds 2 -q --out two >/dev/null 2>b.err; echo $? >b.rc) &
wait
rcs=$(cat a.rc b.rc | sort | tr '\n' ' ')
check "two trains on one --out: one exits 0, the other 2 (got $rcs)" test "$rcs" = "0 2 "
check "the loser says why" grep -Eq "in use by another marginflow process|already holds a run" a.err b.err
check "metrics.csv rows of one run only (steps increase)" \
    awk -F, 'NR > 2 && $1 + 0 <= prev { exit 1 } NR > 1 { prev = $1 + 0 }' two/metrics.csv
check "one command.txt line" test "$(wc -l <two/command.txt)" -eq 1

# --resume of a run that is being trained
("$MF" train $SLOW --wall-seconds 3 --checkpoint-every 1000 -q --out live >/dev/null 2>live.err
    echo $? >live.rc) &
i=0
while [ ! -e live/config.json ] && [ $i -lt 100 ]; do sleep 0.05; i=$((i + 1)); done
sleep 0.3
timeout 20 "$MF" train --resume live --wall-seconds 1 -q >/dev/null 2>r.err
expect_rc 2 $? "resume while the run trains"
expect_msg r.err "live is in use by another marginflow process \\(pid [0-9]+\\)" "resume while training: message"
wait
check "the live run finished (exit 0): $(cat live.err)" test "$(cat live.rc)" = 0
check "the live run's outcome is its wall budget" grep -q '"outcome":	"wall-budget"' live/summary.json
"$MF" train --resume live --wall-seconds 0.2 -q 2>r2.err
expect_rc 0 $? "the live run resumes once it has ended ($(cat r2.err))"

# ------------------------------------------------------ run directories
# a folder like / (system folders in it); / itself is not used here, so that
# a regression cannot write into the machine's root
mkdir -p root/etc root/usr
"$MF" train --data builtin:B --steps 5 -q --out root 2>e.txt
expect_rc 2 $? "--out a folder like /"
expect_msg e.txt "^marginflow: root is not empty and is not a marginflow run directory \\(it holds '(etc|usr)'\\)" "--out like /: message"
check "nothing written into the folder like /" test "$(ls root | tr '\n' ' ')" = "etc usr "
mkdir mine && echo "my own notes" >mine/params.txt
"$MF" train --data builtin:B --steps 5 -q --out mine 2>e.txt
expect_rc 2 $? "--out a folder holding the user's params.txt"
expect_msg e.txt "mine is not empty and is not a marginflow run directory \\(it holds 'params.txt'\\)" "user's params.txt: message"
check "the user's params.txt is untouched" test "$(cat mine/params.txt)" = "my own notes"
check "no lock file left in the user's folder" test ! -e mine/run.lock
mkdir notes && echo x >notes/notes.txt
"$MF" train --data builtin:B --steps 5 -q --out notes 2>e.txt
expect_rc 2 $? "--out a folder holding notes.txt"
# a run killed before config.json: its lock file and checkpoint, nothing else
mkdir half && : >half/run.lock && : >half/checkpoint.bin && : >half/checkpoint.bin.tmp.123
"$MF" train --data builtin:B --steps 5 -q --out half 2>e.txt
expect_rc 0 $? "a half-made run is started afresh ($(cat e.txt))"
check "the half-made run now has config.json" test -s half/config.json
"$MF" train --data builtin:B --steps 5 -q --out '' 2>e.txt
expect_rc 2 $? "--out ''"
expect_msg e.txt "^marginflow: --out: the run directory name is empty" "--out '' message"
"$MF" train --resume '' 2>e.txt
expect_rc 2 $? "--resume ''"
expect_msg e.txt "the run directory name is empty" "--resume '' message"
"$MF" reproduce vardi-B-not-local --experiments "$OLDPWD/experiments" --out '' 2>e.txt
expect_rc 2 $? "reproduce --out ''"
expect_msg e.txt "--out: the folder name is empty" "reproduce --out '' message"
"$MF" analyze half --out '' 2>e.txt
expect_rc 2 $? "analyze --out ''"
# a long --out (7 x 100 characters) is used whole
LONG=$(python3 -c "print('/'.join(['d' * 100] * 7))")
"$MF" train --data builtin:B --steps 5 -q --out "$LONG" 2>e.txt
expect_rc 0 $? "a 700-character --out ($(cat e.txt))"
check "the run is where --out says" test -s "$LONG/config.json"
"$MF" train --resume "$LONG" --steps 10 -q
expect_rc 0 $? "resume of the 700-character run"
"$MF" analyze "$LONG" -q
expect_rc 0 $? "analyze of the 700-character run"
check "analysis.json where it belongs" test -s "$LONG/analysis.json"
# reproduce under a 1300-character folder: the claim's files land there
RLONG=$(python3 -c "print('/'.join(['r' * 200] * 6) + '/' + 'q' * 90)")
"$MF" reproduce vardi-B-not-local --quick --experiments "$OLDPWD/experiments" --out "$RLONG" >rp.out 2>rp.err
expect_rc 0 $? "reproduce under a 1300-character --out ($(cat rp.err))"
check "result.json under the long folder" test -s "$RLONG/vardi-B-not-local/result.json"
check "the run under the long folder" test -s "$RLONG/vardi-B-not-local/main/config.json"

# ------------------------------------------------------------ data hash
printf '+1 1:1 2:0.5\n-1 1:-0.5 2:-1\n' >d.svm
"$MF" train --data d.svm --steps 20 -q --out h
expect_rc 0 $? "a run on a data file"
H=$(json h/config.json "d['data']['data_hash']")
check "config.json records data_hash (8 hex digits: $H)" sh -c "echo '$H' | grep -Eq '^[0-9a-f]{8}$'"
printf '+1 1:1 2:0.5\n-1 1:-0.5 2:-2\n' >d.svm # same n and d, other values
"$MF" train --resume h --steps 40 -q 2>e.txt
expect_rc 2 $? "resume on changed data"
expect_msg e.txt "cannot resume: the data .*d\\.svm no longer match the run: their data_hash is [0-9a-f]{8}, but h/config\\.json records $H" "changed data: message names both hashes"
"$MF" analyze h -q 2>e.txt
expect_rc 2 $? "analyze on changed data"
expect_msg e.txt "no longer match the run" "analyze on changed data: message"
cp -r "$OLDPWD/tests/data/config-v1/train" old
"$MF" train --resume old --steps 10 >/dev/null 2>e.txt
expect_rc 0 $? "a run from before data hashes still resumes"
expect_msg e.txt "warning: old/config\\.json records no data_hash" "old run: a warning"
check "it records the hash from now on" test -n "$(json old/config.json "d['data'].get('data_hash', '')")"

printf '# marginflow params v1 n=2 model=diag:depth=1\n1\n2\n' >other-model.txt
"$MF" analyze --model linear --data builtin:B --params other-model.txt -q 2>e.txt
expect_rc 2 $? "analyze: a params file of another model with the same count"
expect_msg e.txt "other-model\\.txt:1:[0-9]+: the file holds parameters of model 'diag:depth=1', not of 'linear'" "analyze: params of another model: message"

# -------------------------------------------------------- class labels
printf '0 1:1\n999999 1:2\n' >stray.svm
for cmd in "train --out stray" "maxmargin --model linear" "svm" "layout"; do
    timeout 20 "$MF" $cmd --data stray.svm >/dev/null 2>e.txt
    expect_rc 2 $? "$cmd on labels 0 and 999999"
    expect_msg e.txt "class labels up to 999999 \\(C = 1000000 classes\\) but no sample of class 1" "$cmd: stray label message"
done

# -------------------------------------------------------------- numbers
"$MF" train --data builtin:B --init-params "1;2" -q --out semi 2>e.txt
expect_rc 2 $? "--init-params 1;2"
expect_msg e.txt "expected a number, found '1;2'" "--init-params 1;2: message"
printf '+1 1:1e300\n-1 1:-1e300\n' >e300.svm
"$MF" train --data e300.svm --init-params 1e10 --steps 10 -q --out nf0 2>e.txt
expect_rc 4 $? "non-finite at the initial parameters"
expect_msg e.txt "non-finite \\(NaN or Inf\\) at the initial parameters \\(step 0\\): nothing was trained" "non-finite start: message"
check "non-finite start: no claim of a saved last good state" sh -c "! grep -q 'last good state' e.txt"
check "non-finite start: summary has no 0 loss" test "$(json nf0/summary.json "d['final']['log10_loss']")" = None
printf '+1 1:1e-200 2:2e-201\n-1 1:-3e-201 2:-1e-200\n' >tiny.svm
"$MF" svm --data tiny.svm >svm.txt 2>&1
expect_rc 0 $? "svm on data at 1e-200"
check "svm: no nan in the text" sh -c "! grep -qi nan svm.txt"
check "svm: absent alpha says so" grep -q "absent" svm.txt
"$MF" svm --data tiny.svm --json >svm.json
check "svm --json: valid JSON, alpha null" test "$(json svm.json "d['support'][0]['alpha']")" = None

# ------------------------------------------------------- stopping rules
printf '+1 1:1e290 2:3e289\n-1 1:-2e289 2:-1e290\n' >edge.svm
timeout 30 "$MF" train --data edge.svm --steps 1000 --wall-seconds 5 -q --out edge 2>e.txt
expect_rc 0 $? "features near the overflow edge end ($(cat e.txt))"
check "... as a stall with its reason" test \
    "$(json edge/summary.json "(d['outcome'], d['reason'])")" = \
    "('stalled', 'the step size no longer shrinks (it underflowed)')"

# -------------------------------------------------------------- readers
# endless inputs under a memory limit of 400 MB: each reader stops at its
# cap (an unbounded one runs out of memory). A sanitizer build cannot run
# under ulimit -v (its shadow memory): there the caps are checked without it.
MEMLIM=400000
if ! (ulimit -v $MEMLIM && "$MF" --version) >/dev/null 2>&1; then MEMLIM=unlimited; fi
"$MF" train --data builtin:B --steps 5 -q --out zc
ln -sf /dev/zero zc/config.json
(ulimit -v $MEMLIM; timeout 60 "$MF" train --resume zc -q) 2>e.txt
expect_rc 2 $? "config.json is /dev/zero"
expect_msg e.txt "zc/config\\.json:1:1: NUL byte" "config.json /dev/zero: message"
"$MF" train --data builtin:B --steps 5 -q --out zm
ln -sf /dev/zero zm/metrics.csv
(ulimit -v $MEMLIM; timeout 60 "$MF" train --resume zm -q) 2>e.txt
expect_rc 2 $? "metrics.csv is /dev/zero"
expect_msg e.txt "zm/metrics\\.csv:1: NUL byte" "metrics.csv /dev/zero: message"
# a FIFO that sends spaces forever (no NUL): refused at the 64 MiB cap
# (exec: $! is the writer itself, so killing it ends it even while it still
# waits for a reader)
spaces() { exec python3 -c '
import signal, sys
signal.signal(signal.SIGPIPE, signal.SIG_DFL)
f = open(sys.argv[1], "wb")
while True: f.write(b" " * 65536)' "$1" 2>/dev/null; }
"$MF" train --data builtin:B --steps 5 -q --out zf
rm zf/config.json && mkfifo zf/config.json
spaces zf/config.json &
feeder=$!
(ulimit -v $MEMLIM; timeout 60 "$MF" train --resume zf -q) 2>e.txt
expect_rc 2 $? "config.json is an endless FIFO"
expect_msg e.txt "zf/config\\.json: holds more than 67108864 bytes \\(the limit\\)" "endless config.json: message"
kill "$feeder" 2>/dev/null
wait "$feeder" 2>/dev/null
mkdir ez
ln -sf /dev/zero ez/zero.json
(ulimit -v $MEMLIM; timeout 60 "$MF" reproduce --experiments ez --out ezo) >/dev/null 2>e.txt
expect_rc 2 $? "an experiment file that is /dev/zero"
expect_msg e.txt "ez/zero\\.json:1:1: NUL byte" "experiment /dev/zero: message"
mkdir ef && mkfifo ef/endless.json
spaces ef/endless.json &
feeder=$!
(ulimit -v $MEMLIM; timeout 60 "$MF" reproduce --experiments ef --out efo) >/dev/null 2>e.txt
expect_rc 2 $? "an endless experiment FIFO"
expect_msg e.txt "ef/endless\\.json: holds more than 16777216 bytes \\(the limit\\)" "endless experiment: message"
kill "$feeder" 2>/dev/null
wait "$feeder" 2>/dev/null

# ------------------------------------------------------ experiment files
E=xp
mkdir $E
RUN='"name": "main", "data": "builtin:B", "optimizer": "scaled", "lr": 0.1, "until_log10_loss": -3'
CHK='"checks": [{"quantity": "final", "expect": 0.5, "tol": 0.001}]'
printf '{"name": "good", "runs": [{%s, "model": "linear"}], %s}\n' "$RUN" "$CHK" >$E/good.json
printf '{"name": "m", "runs": [{%s, "model": "mlp:widths=2//3"}], %s}\n' "$RUN" "$CHK" >$E/badmodel.json
printf '{"name": "n", "runs": [{%s, "model": "linear", "init": {"params": [1, 2, 3]}}], %s}\n' "$RUN" "$CHK" >$E/badcount.json
printf '{"name": "x", "comment": "a\000b", "runs": [{%s}], %s}\n' "$RUN" "$CHK" >$E/nul.json
printf '{"name": "x", "comment": "a\033[31mb", "runs": [{%s}], %s}\n' "$RUN" "$CHK" >$E/ctl.json
printf '{"name": "x", "runs": [{%s, "model": "linear\\u001b[2J"}], %s}\n' "$RUN" "$CHK" >$E/esc.json
printf '{"name": "x", "runs": [{%s, "model": "li\\u0000near"}], %s}\n' "$RUN" "$CHK" >$E/escnul.json
python3 -c '
import json
run = {"name": "main", "data": "builtin:B", "until_log10_loss": -3}
d = {"name": "big", "runs": [run] * 1, "checks": [{"quantity": "final", "expect": 0.5}],
     "figures": [], "w_ref": [1, 1]}
text = json.dumps(d)
pad = " " * (100 * 2**20 - len(text))
open("'$E'/big.json", "w").write(text[:-1] + pad + "}")'
"$MF" reproduce --experiments $E --out xo >xo.out 2>xo.err
expect_rc 2 $? "bad experiment files exit 2"
check "nothing was trained, not even the good claim" test ! -e xo/good/main
check "a summary line says nothing ran" grep -q "7 claim files refused; nothing was run" xo.err
expect_msg xo.err "xp/badmodel\\.json: runs\\[0\\]\\.model: .*2//3" "a model spec wrong for its data, in the file and field"
expect_msg xo.err "xp/badcount\\.json: runs\\[0\\]\\.init\\.params: 3 values, but linear on builtin:B has 2 parameters" "init.params count against the model"
expect_msg xo.err "xp/nul\\.json:1:28: NUL byte" "a NUL byte named with its line and column"
expect_msg xo.err "xp/ctl\\.json:1:28: control character 0x1b" "a raw control character named"
expect_msg xo.err "xp/esc\\.json: runs\\[0\\]\\.model: control character 0x1b at character 7" "an escaped control character named"
expect_msg xo.err "xp/escnul\\.json:1:[0-9]+: escaped NUL" "an escaped NUL named"
expect_msg xo.err "xp/big\\.json: the file is 104857600 bytes, beyond the limit of 16777216 bytes" "a 100 MB JSON: the limit stated, not 'invalid'"
check "no raw control byte in any message" sh -c "! LC_ALL=C grep -q \"\$(printf '\\033')\" xo.err"
rm -f $E/big.json

cli_test_done
