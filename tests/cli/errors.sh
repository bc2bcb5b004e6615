#!/bin/sh
# errors.sh -- every class of bad input to `marginflow train` and the error it
# gets (needs ${BUILD:-build}/marginflow). One list of cases drives both the
# test and the table docs/errors.md:
#   tests/cli/errors.sh           run every case, check its exit code and that
#                                 its message matches the case's pattern, and
#                                 check docs/errors.md is up to date;
#   tests/cli/errors.sh --write   the same, then (re)write docs/errors.md.
# Each case runs in a scratch folder with relative file names, so the
# messages in the table hold no machine-specific paths. Every case must also
# leave no run directory behind (nothing half-made). Prints "N passed,
# N failed"; exits 1 on any failure.

ROOT=$(pwd)
DOC="$ROOT/docs/errors.md"
WRITE=0
[ "$1" = "--write" ] && WRITE=1
. "$ROOT/tests/cli/lib.sh"
cli_test_init errors

cd "$T" || exit 1
ESC=$(printf '\033') # shown as \033 in the table
# ------------------------------------------------------------ input files
printf '' >empty.svm
printf '# only a comment\n\n' >comments.svm
printf '+1 1:0.5\nabc 1:1\n' >label-text.svm
printf '+1 1:0.5\n0.5 1:1\n' >label-frac.svm
printf '2 1:0.5\n-1 1:1\n' >label-mixed.svm
printf '+1 1:0.5 3\n' >no-colon.svm
printf '+1 0:0.5\n' >index-zero.svm
printf '+1 2:0.5 2:1\n' >index-dup.svm
printf '+1 3:0.5 2:1\n' >index-order.svm
printf '+1 1:abc\n' >value-text.svm
printf '+1 1:2.5x\n' >value-trailing.svm
printf '+1 1:nan\n' >value-nan.svm
printf '+1 1:1e999\n' >value-overflow.svm
printf '+1 2000000000:1\n' >index-huge.svm
printf '+1\n-1\n' >no-features.svm
printf '+1,1,2\n-1,3\n' >ragged.csv
printf '+1,1,2\n-1,3,x\n' >field-text.csv
printf '+1,1,2\n-1,,4\n' >field-empty.csv
printf '+1\n-1\n' >one-column.csv
printf '+1,1,inf\n' >field-inf.csv
printf '1,2\n3;4\n' >params-bad.txt
printf '0 1:1\n1 2:1\n2 1:1 2:1\n' >multi.svm
printf '1\n2\nnan\n' >params-nan.txt
printf '1\n2\n' >params-short.txt
printf '+1 1:1\n-1 1:1\n' >nonsep.svm
printf '+1 1:1\n-1 1:\0002\n' >nul.svm
printf '+1 1:1\033[31m\n' >esc.svm
truncate -s 17179869185 huge.svm # sparse: no disk space
mkfifo endless.svm               # fed by a writer started just before its case
printf '1\n2\033\n' >params-esc.txt
truncate -s 2M params-huge.txt
printf '# marginflow params v1 n=3 model=skip-linear\n1\n2\n3\n' >params-other.txt
printf '# marginflow params v2 n=2 model=linear\n1\n2\n' >params-v2.txt
printf '# marginflow params v1 n=2 model=diag:depth=1\n1\n2\n' >params-model.txt
printf '0 1:1\n999999 1:2\n' >stray.svm
mkdir mine && echo "my notes" >mine/notes.txt
printf '+1 1:1 2:0.5\n-1 1:-0.5 2:-1\n' >changed.svm
# a finished run, and damaged copies of it
"$MF" train --data builtin:B --model linear --steps 20 -q --out run >/dev/null 2>&1
"$MF" train --data builtin:C --model linear --steps 20 -q --out other >/dev/null 2>&1
"$MF" train --data changed.svm --model linear --steps 20 -q --out changed >/dev/null 2>&1
printf '+1 1:1 2:0.5\n-1 1:-0.5 2:-2\n' >changed.svm # same n and d, another value
for r in corrupt truncated foreign badjson badmetrics forged-lr forged-step zero zeroconfig zerometrics locked; do
    cp -r run "$r"
done
ln -sf /dev/zero zeroconfig/config.json
ln -sf /dev/zero zerometrics/metrics.csv
python3 - <<'EOF'
b = bytearray(open('corrupt/checkpoint.bin', 'rb').read()); b[40] ^= 1
open('corrupt/checkpoint.bin', 'wb').write(b)
b = open('truncated/checkpoint.bin', 'rb').read()
open('truncated/checkpoint.bin', 'wb').write(b[:len(b) - 9])
open('badjson/config.json', 'w').write('{"format": "marginflow-config", ')
t = open('badmetrics/metrics.csv').read()
open('badmetrics/metrics.csv', 'w').write('step;time\n' + t.split('\n', 1)[1])
# a field out of range behind a valid CRC-32 (payload at 24: step, rejected,
# time_log, lr, ...)
import struct, zlib
for d, off, val in (('forged-lr', 24 + 24, struct.pack('<d', float('nan'))),
                    ('forged-step', 24, struct.pack('<q', 2**63 - 1))):
    b = bytearray(open(d + '/checkpoint.bin', 'rb').read())
    b[off:off + 8] = val
    b[-4:] = struct.pack('<I', zlib.crc32(bytes(b[:-4])))
    open(d + '/checkpoint.bin', 'wb').write(b)
EOF
# image files: an IDX pair (6 images of 2x2, 3 classes), damaged copies, a CIFAR-10 batch
python3 - <<'EOF'
import gzip, os, struct
im = struct.pack('>IIII', 0x803, 6, 2, 2) + bytes(range(24))
lb = struct.pack('>II', 0x801, 6) + bytes([0, 1, 2, 0, 1, 2])
open('images.idx', 'wb').write(im)
open('labels.idx', 'wb').write(lb)
open('trunc.idx', 'wb').write(im[:30])
open('labels5.idx', 'wb').write(struct.pack('>II', 0x801, 5) + bytes(5))
z = bytearray(gzip.compress(im)); z[-6] ^= 0x40
open('damaged.gz', 'wb').write(z)
os.mkdir('cifar')
open('cifar/test_batch.bin', 'wb').write(bytes(3073 + 100))
EOF
ln -sf /dev/zero zero/checkpoint.bin
cp other/checkpoint.bin foreign/checkpoint.bin

# ------------------------------------------------------------ the cases
ROWS="$T/rows.md"
: >"$ROWS"
n_case=0
# case_ CLASS CODE EXIT REGEX ARGS...: run `marginflow train [--out out] ARGS`
# (--out out unless ARGS resume a run), expect exit EXIT and a first stderr
# line matching REGEX, and no folder out/ afterwards; CODE is the library
# error (documentation: the CLI maps it to the exit code). The scratch
# folder's absolute path (data files are resolved with realpath) is cut
# from the message in the table.
case_() {
    class=$1 code=$2 want=$3 re=$4
    shift 4
    n_case=$((n_case + 1))
    rm -rf out
    if [ "$1" = "--resume" ]; then
        "$MF" train "$@" >out.txt 2>err.txt </dev/null
    else
        "$MF" train --out out "$@" >out.txt 2>err.txt </dev/null
    fi
    rc=$?
    msg=$(head -n 1 err.txt | sed "s|$T/||g; s|(pid [0-9]*)|(pid N)|")
    if [ "$rc" -eq "$want" ]; then ok; else bad "$class: exit $rc, want $want ($msg)"; fi
    if printf '%s\n' "$msg" | grep -Eq -- "$re"; then ok; else bad "$class: message '$msg' lacks /$re/"; fi
    if [ ! -e out ]; then ok; else bad "$class: left a run directory"; fi
    cmd=$(for a in "$@"; do case "$a" in '' | *\;*) printf "'%s' " "$a" ;; *) printf '%s ' "$a" ;; esac; done |
        sed "s/ \$//; s/$ESC/\\\\033/g")
    esc=$(printf '%s' "$msg" | sed 's/|/\\|/g')
    printf '| %s | `marginflow train %s` | %s | %s | %s |\n' "$class" "$cmd" "$code" "$rc" "$esc" >>"$ROWS"
}
# a section heading row
section() { printf '| **%s** | | | | |\n' "$1" >>"$ROWS"; }

P=MF_ERR_PARSE I=MF_ERR_INVALID IO=MF_ERR_IO
section "data files: libsvm"
case_ "file does not exist" "$IO" 2 "nosuch\\.svm:1:1: cannot open" --data nosuch.svm
case_ "empty file" "$P" 2 "empty\\.svm:1:1: no samples .*empty" --data empty.svm
case_ "only comments / blank lines" "$P" 2 "comments\\.svm:3:1: no samples" --data comments.svm
case_ "label not a number" "$P" 2 "label-text\\.svm:2:1: expected a label" --data label-text.svm
case_ "label neither +-1 nor a class index" "$P" 2 "label-frac\\.svm:2:1: bad label '0\\.5'" --data label-frac.svm
case_ "labels mix -1 and class indices" "$P" 2 "label-mixed\\.svm:2:1: bad label '-1'" --data label-mixed.svm
case_ "entry without ':'" "$P" 2 "no-colon\\.svm:1:10: expected 'idx:val'" --data no-colon.svm
case_ "feature index < 1" "$P" 2 "index-zero\\.svm:1:4: expected a feature index" --data index-zero.svm
case_ "duplicate feature index" "$P" 2 "index-dup\\.svm:1:10: duplicate feature index 2" --data index-dup.svm
case_ "feature indices not increasing" "$P" 2 "index-order\\.svm:1:10: feature indices must be strictly increasing" --data index-order.svm
case_ "value not a number" "$P" 2 "value-text\\.svm:1:6: expected a number" --data value-text.svm
case_ "characters after a value" "$P" 2 "value-trailing\\.svm:1:6: .*trailing" --data value-trailing.svm
case_ "NaN value" "$P" 2 "value-nan\\.svm:1:6: expected a finite number" --data value-nan.svm
case_ "value overflows to Inf" "$P" 2 "value-overflow\\.svm:1:6: .*overflows to infinity" --data value-overflow.svm
case_ "index beyond the size limit (n*d > 2^28)" "$P" 2 "index-huge\\.svm:1:4: .*exceed the limit" --data index-huge.svm
case_ "no features at all" "$P" 2 "no-features\\.svm:1:1: no features" --data no-features.svm
case_ "NUL byte" "$P" 2 "nul\\.svm:2:6: NUL byte" --data nul.svm
case_ "control character" "$P" 2 "esc\\.svm:1:7: control character 0x1b" --data esc.svm
case_ "class labels with a class missing (a stray 999999)" "(CLI)" 2 "the data file:stray\\.svm \\(libsvm\\) have class labels up to 999999 \\(C = 1000000 classes\\) but no sample of class 1" --data stray.svm
case_ "an endless input (/dev/zero)" "$P" 2 "/dev/zero:1:1: NUL byte" --data /dev/zero --format libsvm
case_ "file beyond the size limit (16 GiB)" "$P" 2 "huge\\.svm:1:1: the file is 17179869185 bytes, beyond the limit" --data huge.svm
# a FIFO that sends one endless line: refused at the line limit (64 MiB)
python3 -c '
import signal
signal.signal(signal.SIGPIPE, signal.SIG_DFL)
f = open("endless.svm", "wb")
while True: f.write(b"1 " * 32768)' 2>/dev/null &
feeder=$!
case_ "line beyond the length limit (64 MiB; here a FIFO)" "$P" 2 "endless\\.svm:1:1: line 1 is longer than 67108864 bytes" --data endless.svm
kill "$feeder" 2>/dev/null
wait "$feeder" 2>/dev/null
section "data files: CSV"
case_ "ragged rows" "$P" 2 "ragged\\.csv:2:5: expected 3 fields" --data ragged.csv
case_ "field not a number" "$P" 2 "field-text\\.csv:2:6: expected a number in field 3" --data field-text.csv
case_ "empty field" "$P" 2 "field-empty\\.csv:2:4: .*empty field" --data field-empty.csv
case_ "label only, no features" "$P" 2 "one-column\\.csv:1:1: expected at least 2 fields" --data one-column.csv
case_ "Inf value" "$P" 2 "field-inf\\.csv:1:6: expected a finite number" --data field-inf.csv
case_ "unknown --format" "(CLI)" 2 "--format: expected libsvm or csv, got 'arff'" --data ragged.csv --format arff
section "data specs"
case_ "unknown builtin set" "$I" 2 "unknown builtin data set 'Z'" --data builtin:Z
case_ "unknown generator key" "$I" 2 "unknown key 'm'" --data gauss:n=10,m=3
case_ "generator value out of range" "$I" 2 "n must be an integer in 1\\.\\." --data gauss:n=0
case_ "generator key given twice" "$I" 2 "key 'd' given twice" --data gauss:d=2,d=3
case_ "negative margin" "$I" 2 "margin must be a finite number >= 0" --data gauss:margin=-1
case_ "generated set beyond the size limit" "$I" 2 "exceed the limit" --data gauss:n=100000,d=100000
section "model specs"
case_ "unknown model" "$P" 2 "unknown model 'resnet'" --data builtin:B --model resnet
case_ "unknown option" "$P" 2 "unknown option 'depth=2' for relu2" --data builtin:B --model relu2:depth=2
case_ "width not a positive integer" "$P" 2 "width must be an integer in \\[1," --data builtin:B --model relu2:width=0
case_ "alpha outside [0, 1]" "$P" 2 "alpha must be a finite number in \\[0, 1\\]" --data builtin:B --model relu2:alpha=2
case_ "option given twice" "$P" 2 "option 'width=3' given twice" --data builtin:B --model relu2:width=2,width=3
case_ "mlp without widths" "$P" 2 "mlp needs widths=" --data builtin:B --model mlp
case_ "empty width quotes the token as typed" "$P" 2 "bad width '' in 'widths=2//3'" --data builtin:B --model mlp:widths=2//3
case_ "a control character in a spec (named, never echoed)" "(CLI)" 2 "--model: control character 0x1b at character 13" --data builtin:B --model "relu2:width=${ESC}[2J"
case_ "multi-class data on a binary-only model" "MF_ERR_UNSUPPORTED" 2 "supports binary data only" --data multi.svm --model diag
section "initial parameters"
case_ "--init-params: wrong count" "(CLI)" 2 "expected 2 values for linear, got 3" --data builtin:B --init-params 1,2,3
case_ "--init-params: not a number" "$P" 2 "expected a number, found 'x'" --data builtin:B --init-params 1,x
case_ "--init-params: a separator that is not one (1;2)" "$P" 2 "expected a number, found '1;2'" --data builtin:B --init-params '1;2'
case_ "--init-params: NaN" "$P" 2 "value 'nan' is not finite" --data builtin:B --init-params 1,nan
case_ "--init-file: missing" "$IO" 2 "cannot open nosuch\\.txt" --data builtin:B --init-file nosuch.txt
case_ "--init-file: not a number" "$P" 2 "params-bad\\.txt:2:1: expected a number, found '3;4'" --data builtin:B --init-file params-bad.txt
case_ "--init-file: NaN" "$P" 2 "params-nan\\.txt:3:1: value 'nan' is not finite" --data builtin:B --init-file params-nan.txt
case_ "--init-file: wrong count" "MF_ERR_DIM" 2 "params-short\\.txt: expected 3 values, found 2" --data builtin:B --model skip-linear --init-file params-short.txt
case_ "--init-file: an endless input (/dev/zero)" "$P" 2 "/dev/zero:1:1: NUL byte" --data builtin:B --init-file /dev/zero
case_ "--init-file: control character" "$P" 2 "params-esc\\.txt:2:2: control character 0x1b" --data builtin:B --init-file params-esc.txt
case_ "--init-file: beyond the size limit" "$P" 2 "params-huge\\.txt: the file is 2097152 bytes, beyond the limit of 1048704 bytes" --data builtin:B --init-file params-huge.txt
case_ "--init-file: header of another model and count" "MF_ERR_FOREIGN" 2 "params-other\\.txt:1:[0-9]+: the file holds parameters of model 'skip-linear' \\(n=3\\), but model 'linear' has 2 parameters" --data builtin:B --init-file params-other.txt
case_ "--init-file: params file of another model, same n" "MF_ERR_FOREIGN" 2 "params-model\\.txt:1:[0-9]+: the file holds parameters of model 'diag:depth=1', not of 'linear'" --data builtin:B --init-file params-model.txt
case_ "--init-file: unknown header version" "$P" 2 "params-v2\\.txt:1:[0-9]+: unsupported params file version 'v2'" --data builtin:B --init-file params-v2.txt
case_ "--init: unknown kind" "(CLI)" 2 "--init: expected gauss, balanced or he" --data builtin:B --init uniform
case_ "--init-multiply: not positive" "(CLI)" 2 "--init-multiply: must be a finite number > 0" --data builtin:B --init-multiply 0
section "image data, cnn models, epoch runs"
case_ "IDX images truncated" "$P" 2 "trunc\\.idx: truncated: the header promises 24 image bytes, the file holds 14" --data idx:trunc.idx,labels.idx --model cnn:small
case_ "IDX file of the wrong kind" "$P" 2 "not an IDX label file: magic 0x00000803" --data idx:images.idx,images.idx --model cnn:small
case_ "IDX image and label counts differ" "MF_ERR_DIM" 2 "holds 6 images but .*labels5\\.idx holds 5 labels" --data idx:images.idx,labels5.idx --model cnn:small
case_ "damaged gzip stream" "MF_ERR_CORRUPT" 2 "damaged\\.gz: damaged gzip stream" --data idx:damaged.gz,labels.idx --model cnn:small
case_ "idx spec without two paths" "$I" 2 "expected idx:IMAGES,LABELS" --data idx:images.idx
case_ "CIFAR-10 batch not a whole number of records" "$P" 2 "test_batch\\.bin: 3173 bytes is not a whole number of CIFAR-10 records" --data cifar10:cifar:test --model cnn:small
case_ "--classes: the same class twice" "(CLI)" 2 "--classes: expected two different class indices" --data idx:images.idx,labels.idx --classes 1,1
case_ "--classes on binary data" "(CLI)" 2 "need multi-class data" --data builtin:B --classes 0,1
case_ "cnn: output layer of the wrong size" "$P" 2 "the last layer must be the output layer f3" --data idx:images.idx,labels.idx --model cnn:layers=c2k1,f2
case_ "cnn: input not a square image" "$P" 2 "d = 2 is not a square image of 1 or 3 channels" --data builtin:B --model cnn:small
case_ "cnn: a preset and layers" "$P" 2 "give either a preset or layers=, not both" --data idx:images.idx,labels.idx --model cnn:small,layers=f3
case_ "cnn: bad layer token" "$P" 2 "bad layer 'c2x3'" --data idx:images.idx,labels.idx --model cnn:layers=c2x3,f3
case_ "epoch run without a stopping criterion" "$I" 2 "an epoch run needs a stopping criterion" --data idx:images.idx,labels.idx --model cnn:layers=f3 --optimizer sgd-lyu-li
case_ "--loss-cap <= 1" "$I" 2 "loss_cap: must be a finite number > 1" --data idx:images.idx,labels.idx --model cnn:layers=f3 --optimizer sgd-lyu-li --epochs 1 --loss-cap 1
case_ "--archive-epochs not ascending" "(CLI)" 2 "--archive-epochs: values must be ascending" --data idx:images.idx,labels.idx --archive-epochs 5,2
case_ "test set of another shape" "(CLI)" 2 "the test set builtin:B has dimension 2 and 2 classes, the training set 4 and 3" --data idx:images.idx,labels.idx --test-data builtin:B --model cnn:layers=f3
section "settings"
case_ "--lr not a number" "(CLI)" 2 "--lr: expected a finite number, got 'abc'" --data builtin:B --lr abc
case_ "--lr not finite" "(CLI)" 2 "--lr: expected a finite number, got 'inf'" --data builtin:B --lr inf
case_ "--lr <= 0" "$I" 2 "lr: must be a finite number > 0" --data builtin:B --lr -1
case_ "--tol outside (0, 1)" "$I" 2 "tol: must be in \\(0, 1\\)" --data builtin:B --tol 2
case_ "--steps not an integer" "(CLI)" 2 "--steps: expected an integer, got '1e3'" --data builtin:B --steps 1e3
case_ "--steps 0 with no other criterion" "$I" 2 "needs another stopping criterion" --data builtin:B --steps 0
case_ "--until-log10-loss in (0, 1) (log10 of the loss)" "$I" 2 "--until-log10-loss 1e-300: the value is log10 of the loss.*give --until-log10-loss -300" --data builtin:B --until-log10-loss 1e-300
case_ "--until-margin-gap outside (0, 1)" "$I" 2 "until_margin_gap: must be a number in \\(0, 1\\)" --data builtin:B --until-margin-gap 1.5
case_ "unknown --optimizer" "(CLI)" 2 "optimizer" --data builtin:B --optimizer adam
case_ "unknown --loss" "(CLI)" 2 "loss" --data builtin:B --loss hinge
case_ "unknown option" "(CLI)" 2 "unknown option '--frobnicate'" --data builtin:B --frobnicate 1
case_ "option without its value" "(CLI)" 2 "--seed needs a value" --data builtin:B --seed
case_ "--data missing" "(CLI)" 2 "--data is required" --model linear
section "run directories"
case_ "--out names an existing run" "(CLI)" 2 "already holds a run" --data builtin:B --out run
case_ "--out names a folder of the user's files" "(CLI)" 2 "mine is not empty and is not a marginflow run directory \\(it holds 'notes\\.txt'\\)" --data builtin:B --out mine
case_ "--out ''" "(CLI)" 2 "--out: the run directory name is empty" --data builtin:B --out ''
section "resume"
case_ "no such run" "(CLI)" 2 "cannot resume: nosuch/config\\.json: cannot open: No such file" --resume nosuch
case_ "config.json not JSON" "(CLI)" 2 "cannot resume: badjson/config\\.json:1:[0-9]+: not valid JSON" --resume badjson
case_ "config.json is a symlink to /dev/zero" "(CLI)" 2 "cannot resume: zeroconfig/config\\.json:1:1: NUL byte" --resume zeroconfig
case_ "checkpoint bit flipped" "MF_ERR_CORRUPT" 2 "cannot resume: corrupt/checkpoint\\.bin: checkpoint checksum mismatch" --resume corrupt
case_ "checkpoint truncated" "MF_ERR_CORRUPT" 2 "cannot resume: truncated/checkpoint\\.bin: checkpoint length mismatch" --resume truncated
case_ "checkpoint of another run" "MF_ERR_FOREIGN" 2 "cannot resume: foreign/checkpoint\\.bin: checkpoint belongs to another configuration" --resume foreign
case_ "checkpoint field out of range, valid CRC (lr = NaN)" "MF_ERR_CORRUPT" 2 "cannot resume: forged-lr/checkpoint\\.bin: checkpoint field lr = nan is out of range" --resume forged-lr
case_ "checkpoint field out of range, valid CRC (step = 2^63 - 1)" "MF_ERR_CORRUPT" 2 "cannot resume: forged-step/checkpoint\\.bin: checkpoint field step = 9223372036854775807 is out of range" --resume forged-step
case_ "checkpoint is a symlink to /dev/zero" "MF_ERR_CORRUPT" 2 "cannot resume: zero/checkpoint\\.bin: not a marginflow checkpoint" --resume zero
case_ "metrics.csv header damaged" "(CLI)" 2 "cannot resume: badmetrics/metrics\\.csv:1:1: not a marginflow metrics file" --resume badmetrics
case_ "metrics.csv is a symlink to /dev/zero" "(CLI)" 2 "cannot resume: zerometrics/metrics\\.csv:1: NUL byte" --resume zerometrics
case_ "the data changed since the run (same n and d)" "(CLI)" 2 "cannot resume: the data .*changed\\.svm no longer match the run: their data_hash is [0-9a-f]{8}, but changed/config\\.json records [0-9a-f]{8}" --resume changed
# another process holds the run's lock (a Python fcntl lock, as marginflow takes it)
python3 -c '
import fcntl, sys, time
f = open("locked/run.lock", "a"); fcntl.lockf(f, fcntl.LOCK_EX); print("locked", flush=True); time.sleep(60)' >lock.txt &
holder=$!
i=0
while [ ! -s lock.txt ] && [ $i -lt 100 ]; do sleep 0.05; i=$((i + 1)); done
case_ "the run is being trained by another process (its lock is held)" "(CLI)" 2 "locked is in use by another marginflow process \\(pid N\\)" --resume locked
kill "$holder" 2>/dev/null
wait "$holder" 2>/dev/null
case_ "a setting other than a stopping criterion" "(CLI)" 2 "--lr cannot be combined with --resume" --resume run --lr 0.5
section "numerical faults during training (an outcome: the run directory is kept)"
# gd with lr 1 on non-separable data: w <- w - 2 sinh(w) overflows in step 5.
# Expect exit 4, a message naming the step and where the last good state is,
# and params.txt / checkpoint.bin equal to those of a run stopped at step 4.
n_case=$((n_case + 1))
rm -rf out nf4
"$MF" train --out out --data nonsep.svm --model linear --optimizer gd --lr 1 --init-params 1 \
    --steps 100 -q >out.txt 2>err.txt </dev/null
rc=$?
msg=$(tail -n 1 err.txt | sed "s|$T/||g")
if [ "$rc" -eq 4 ]; then ok; else bad "non-finite run: exit $rc, want 4 ($msg)"; fi
re='non-finite \(NaN or Inf\) in step 5; the last good state \(step 4\) is saved in out/params\.txt and out/checkpoint\.bin'
if printf '%s\n' "$msg" | grep -Eq -- "$re"; then ok; else bad "non-finite run: message '$msg' lacks /$re/"; fi
"$MF" train --out nf4 --data nonsep.svm --model linear --optimizer gd --lr 1 --init-params 1 \
    --steps 4 -q >/dev/null 2>&1
if cmp -s out/params.txt nf4/params.txt; then ok; else bad "non-finite run: params.txt differs from the 4-step run"; fi
if [ "$(od -An -t d8 -j 24 -N 8 out/checkpoint.bin | tr -d ' ')" = 4 ]; then ok; else bad "non-finite run: checkpoint.bin is not at step 4"; fi
printf '| %s | `marginflow train %s` | %s | %s | %s |\n' "non-finite loss or gradient mid-run (last stderr line)" \
    "--data nonsep.svm --model linear --optimizer gd --lr 1 --init-params 1 --steps 100" \
    "(outcome non-finite)" "$rc" "$msg" >>"$ROWS"
# non-finite at the initial parameters: no step was taken, so nothing "good"
# is claimed to be saved
n_case=$((n_case + 1))
rm -rf out
printf '+1 1:1e300\n-1 1:-1e300\n' >e300.svm
"$MF" train --out out --data e300.svm --init-params 1e10 --steps 10 -q >out.txt 2>err.txt </dev/null
rc=$?
msg=$(tail -n 1 err.txt | sed "s|$T/||g")
if [ "$rc" -eq 4 ]; then ok; else bad "non-finite start: exit $rc, want 4 ($msg)"; fi
re='non-finite \(NaN or Inf\) at the initial parameters \(step 0\): nothing was trained, and there is no good state to save'
if printf '%s\n' "$msg" | grep -Eq -- "$re"; then ok; else bad "non-finite start: message '$msg' lacks /$re/"; fi
if ! grep -q "last good state" err.txt; then ok; else bad "non-finite start: claims a last good state"; fi
printf '| %s | `marginflow train %s` | %s | %s | %s |\n' "non-finite loss or gradient at the initial parameters (last stderr line)" \
    "--data e300.svm --init-params 1e10 --steps 10" "(outcome non-finite)" "$rc" "$msg" >>"$ROWS"

rm -rf out

{
    echo "# Bad input and the error it gets"
    echo
    echo "Generated by \`tests/cli/errors.sh --write\` from the cases it tests (\`make test\`"
    echo "fails when this file is out of date). Each command runs in a scratch folder, with"
    echo "\`--out out\` added unless it resumes a run. *library error* is the \`mf_error\` code"
    echo "behind the message (\`(CLI)\` for checks made by the command itself), *exit* the exit"
    echo "status (2 = bad usage or bad input), *message* the first line on stderr. No case leaves"
    echo "a run directory behind. Numerical faults during training are outcomes, not errors: a"
    echo "run that meets a non-finite loss or gradient stops with outcome \`non-finite\` (exit 4)."
    echo
    echo "| input class | command | library error | exit | message |"
    echo "| --- | --- | --- | --- | --- |"
    cat "$ROWS"
} >"$T/errors.md"

if [ "$WRITE" -eq 1 ]; then
    mkdir -p "$ROOT/docs" && cp "$T/errors.md" "$DOC" && echo "wrote $DOC ($n_case cases)"
fi
if cmp -s "$T/errors.md" "$DOC"; then
    ok
else
    bad "docs/errors.md is out of date: run tests/cli/errors.sh --write (BUILD=$BUILD)"
    diff "$DOC" "$T/errors.md" 2>&1 | head -n 10 >&2
fi
cli_test_done
