#!/bin/sh
# cnn.sh -- end-to-end tests of image data, cnn models, epoch runs and
# `marginflow robust` (needs the whole build: ${BUILD:-build}/marginflow).
# Every data file is a tiny one written here (python3 writes IDX pairs, gzip
# and plain, and a CIFAR-10 batch):
#  - an epoch run (sgd-lyu-li) on idx:IMAGES,LABELS with a test set: the
#    epoch metrics.csv (one row an epoch, no nan/inf), the archives, config.json
#    recording the subset and the test set;
#  - resume: 2 epochs, then --resume --epochs 4, equals 4 epochs in one go
#    (every column but the wall times);
#  - --classes makes a binary problem, --train-limit a balanced subset;
#  - robust: robust.csv / robust.json for every archived state, and its errors;
#  - data hashes: a changed test image is refused by resume, robust, analyze;
#  - a reproduce claim on image data (init he, test set, robust check);
#  - cifar10:DIR with a generated batch (3 x 32 x 32 inferred);
#  - bad image files and options exit 2 with the file and the fault named.
# Prints "N passed, N failed"; exits 1 on any failure.

. "$(dirname "$0")/lib.sh"
cli_test_init cnn
export OPENBLAS_NUM_THREADS=1

python3 - "$T" <<'EOF'
import gzip, struct, sys, random
t = sys.argv[1]
rnd = random.Random(5)
def pair(prefix, n, gz):
    # 8x8 images in 3 classes: class c brightens the c-th third of the rows
    labels = [i % 3 for i in range(n)]
    px = bytearray()
    for i in range(n):
        c = labels[i]
        for r in range(8):
            for k in range(8):
                base = 200 if r // 3 == c else 30
                px.append(max(0, min(255, base + rnd.randint(-25, 25))))
    im = struct.pack('>IIII', 0x803, n, 8, 8) + bytes(px)
    lb = struct.pack('>II', 0x801, n) + bytes(labels)
    op = gzip.open if gz else open
    with op('%s/%s-images' % (t, prefix), 'wb') as f: f.write(im)
    with op('%s/%s-labels' % (t, prefix), 'wb') as f: f.write(lb)
    return im, lb
im, lb = pair('train', 60, True)
pair('test', 30, False)
open(t + '/trunc-images', 'wb').write(im[:100])
open(t + '/short-labels', 'wb').write(struct.pack('>II', 0x801, 59) + bytes(59))
import os
os.mkdir(t + '/cifar')
rec = b''.join(bytes([i % 10]) + bytes(rnd.randrange(256) for _ in range(3072)) for i in range(12))
open(t + '/cifar/test_batch.bin', 'wb').write(rec)
EOF
TR="idx:$T/train-images,$T/train-labels"
TE="idx:$T/test-images,$T/test-labels"
COMMON="--data $TR --test-data $TE --model cnn:layers=c2k3,p2,f3 --init he --init-scale 1 --loss ce --batch 20"

# ------------------------------------------------------------ an epoch run
R="$T/run"
"$MF" train $COMMON --optimizer sgd-lyu-li --epochs 4 --archive-epochs 1,3 --out "$R" >"$T/out" 2>"$T/err"
expect_rc 0 $? "epoch run: $(cat "$T/err")"
check "epoch metrics header" sh -c "head -1 '$R/metrics.csv' | grep -q '^step,epoch,log10_loss,log10_mean_loss,train_acc,test_acc,'"
check "one row an epoch (0..4)" test "$(wc -l <"$R/metrics.csv")" -eq 6
check "no nan/inf in metrics.csv" sh -c "! grep -Eiq 'nan|inf' '$R/metrics.csv'"
check "steps: 3 an epoch" test "$(tail -1 "$R/metrics.csv" | cut -d, -f1,2)" = "12,4"
for e in 00000001 00000003 00000004; do check "archive epoch $e" test -s "$R/archive/epoch-$e.bin"; done
check "config records the test set" test "$(json "$R/config.json" "d['data']['test']['spec'] == '$TE'")" = True
check "summary: final epoch" test "$(json "$R/summary.json" "d['final']['epoch']")" = 4
check "test accuracy column filled" sh -c "tail -1 '$R/metrics.csv' | cut -d, -f6 | grep -Eq '^[01](\.[0-9]+)?\$'"
check "report names epochs" grep -q "after 4 epochs (12 steps" "$T/out"

# ------------------------------------------------------------ resume
R2="$T/run2"
"$MF" train $COMMON --optimizer sgd-lyu-li --epochs 2 --archive-epochs 1,3 --out "$R2" -q
expect_rc 0 $? "2 epochs"
"$MF" train --resume "$R2" --epochs 4 -q
expect_rc 0 $? "resume to 4 epochs"
cut -d, -f1-13,16,17 "$R/metrics.csv" >"$T/a"
cut -d, -f1-13,16,17 "$R2/metrics.csv" >"$T/b"
check "resumed metrics equal the uninterrupted run (but wall times)" cmp -s "$T/a" "$T/b"
check "resumed params equal" cmp -s "$R/params.txt" "$R2/params.txt"
"$MF" train --resume "$R2" --model linear >/dev/null 2>"$T/err"
expect_rc 2 $? "--model with --resume"

# ------------------------------------------------------------ subsets
R3="$T/bin"
"$MF" train --data "$TR" --test-data "$TE" --model cnn:layers=c2k3,p2,f1 --loss logistic --batch 20 \
    --optimizer sgd --lr 0.05 --epochs 2 --classes 2,0 --train-limit 30 --out "$R3" -q
expect_rc 0 $? "binary subset run"
check "binary: 30 samples, no classes" test "$(json "$R3/config.json" "(d['data']['n'], d['data']['num_classes'], d['data']['classes'])")" = "(30, 0, [2, 0])"
check "binary test set too: 20 of classes 2 and 0" test "$(json "$R3/summary.json" "d['final']['test_error'] <= 1")" = True
"$MF" train $COMMON --optimizer sgd --epochs 1 --classes 2,2 --out "$T/x" >/dev/null 2>"$T/err"
expect_rc 2 $? "--classes 2,2"
expect_msg "$T/err" "two different class indices" "--classes message"
"$MF" train $COMMON --optimizer sgd --epochs 1 --train-limit -1 --out "$T/x" >/dev/null 2>"$T/err"
expect_rc 2 $? "--train-limit -1"
"$MF" train --data builtin:B --model diag --classes 0,1 --out "$T/x" >/dev/null 2>"$T/err"
expect_rc 2 $? "--classes on binary data"
expect_msg "$T/err" "multi-class data" "--classes on binary data message"

# ------------------------------------------------------------ robust
"$MF" robust "$R" --eps 0.1,0.5,2 --n 12 --pgd-steps 5 --cw-steps 10 --cw-search 2 -q
expect_rc 0 $? "robust"
check "robust.csv: 3 states x 3 radii" test "$(tail -n +2 "$R/robust/robust.csv" | wc -l)" -eq 9
check "robust.json states" test "$(json "$R/robust/robust.json" "len(d['states'])")" = 3
check "robust-epoch.dat: a block of 3 epochs per eps" test "$(grep -c '^# eps' "$R/robust/robust-epoch.dat"),$(grep -c '^[0-9]*,' "$R/robust/robust-epoch.dat")" = "3,9"
check "robust accuracies in [0, 1], falling with eps" python3 - "$R/robust/robust.json" <<'EOF'
import json, sys
d = json.load(open(sys.argv[1]))
for s in d['states']:
    m = s['robust_min']
    assert all(0 <= v <= 1 for v in m) and m == sorted(m, reverse=True), m
    assert all(a <= min(p, c) for a, p, c in zip(m, s['robust_pgd'], s['robust_cw'])), s
EOF
"$MF" robust "$R" --checkpoints 1,4 --n 5 --pgd-steps 2 --cw-search 1 --cw-steps 2 --out "$T/rb" -q
expect_rc 0 $? "robust --checkpoints 1,4"
check "two states" test "$(json "$T/rb/robust.json" "[s['epoch'] for s in d['states']]")" = "[1, 4]"
"$MF" robust "$R" --checkpoints 2 >/dev/null 2>"$T/err"
expect_rc 2 $? "robust: an epoch without archive"
expect_msg "$T/err" "no archived state of epoch '2' \(archived: 1 3 4\)" "robust: archive message"
"$MF" robust "$R" --eps 1,0.5 >/dev/null 2>"$T/err"
expect_rc 2 $? "robust: descending eps"
"$MF" train --data "$TR" --model cnn:layers=f3 --optimizer sgd --epochs 1 --out "$T/notest" -q
"$MF" robust "$T/notest" >/dev/null 2>"$T/err"
expect_rc 2 $? "robust without a test set"
expect_msg "$T/err" "has no test set" "robust without a test set message"

# ------------------------------------------------------------ data hashes
# the run records the hash of its (subset) training and test data; a changed
# image file is refused by --resume, robust and analyze (exit 2, both named)
R4="$T/hashed"
cp "$T/test-images" "$T/test-images2"
TE2="idx:$T/test-images2,$T/test-labels"
"$MF" train --data "$TR" --test-data "$TE2" --model cnn:layers=c2k3,p2,f3 --init he --init-scale 1 \
    --loss ce --batch 20 --optimizer sgd-lyu-li --epochs 1 --out "$R4" -q
expect_rc 0 $? "hashed run"
check "config.json: data_hash and data.test.data_hash" test \
    "$(json "$R4/config.json" "len(d['data']['data_hash']) == len(d['data']['test']['data_hash']) == 8")" = True
python3 - "$T/test-images2" <<'EOF2'
import sys
p = sys.argv[1]
b = bytearray(open(p, 'rb').read())
b[-1] ^= 1  # one pixel of the last test image
open(p, 'wb').write(b)
EOF2
"$MF" train --resume "$R4" --epochs 2 -q >/dev/null 2>"$T/err"
expect_rc 2 $? "resume with a changed test image"
expect_msg "$T/err" "cannot resume: the test data .*test-images2.* no longer match the run: their data_hash is [0-9a-f]{8}, but .*records [0-9a-f]{8} \(data.test.data_hash\)" "changed test image message"
"$MF" robust "$R4" -q >/dev/null 2>"$T/err"
expect_rc 2 $? "robust with a changed test image"
expect_msg "$T/err" "the test data .* no longer match the run" "robust: changed test image message"
"$MF" analyze "$R4" >/dev/null 2>"$T/err"
expect_rc 2 $? "analyze with a changed test image"
expect_msg "$T/err" "analyze: the test data .* no longer match the run" "analyze: changed test image message"

# ------------------------------------------------------------ a claim on image data
# reproduce reads the image fields of a run (init he, test_data, subsets,
# epochs, archives) and its robust check attacks the archived states
mkdir -p "$T/exp"
cat >"$T/exp/img.json" <<EOF2
{"name": "img", "title": "image claim", "paper": "test", "statement": "test",
 "runs": [{"name": "a", "data": "$TR", "test_data": "$TE", "train_limit": 30, "test_limit": 12,
           "model": "cnn:layers=c2k3,p2,f3", "init": {"kind": "he", "scale": 1, "seed": 1},
           "loss": "ce", "optimizer": "sgd-lyu-li", "lr": 0.1, "batch": 10, "epochs": 3,
           "archive_epochs": [1]}],
 "checks": [{"quantity": "final", "run": "a", "column": "log10_loss", "op": "le", "expect": 100},
            {"quantity": "robust", "run": "a", "checkpoints": "first,last", "eps": [0.05, 0.1],
             "n": 6, "pgd_steps": 2, "restarts": 1, "cw_steps": 2, "cw_search": 1}],
 "figures": ["epochs", "robust"]}
EOF2
"$MF" reproduce img --experiments "$T/exp" --out "$T/rp" >"$T/out" 2>&1
expect_rc 0 $? "image claim: $(cat "$T/out")"
check "image claim: the final state archived" test -s "$T/rp/img/a/archive/epoch-00000003.bin"
check "image claim: robust figure" test -s "$T/rp/img/fig-robust-eps.png"
check "image claim: 30 training images" test "$(json "$T/rp/img/a/config.json" "d['data']['n']")" = 30
# a continuation (init.from_run, multiply) is drawn from its source's last
# epoch on; a robust check at a radius where the first state is already at 0
# could not fail, so it FAILs and says so
sed -e 's/"archive_epochs": \[1\]}\],/"archive_epochs": [1]}, {"name": "b", "data": "$TRS", "test_data": "$TES", "train_limit": 30, "test_limit": 12, "model": "cnn:layers=c2k3,p2,f3", "init": {"from_run": "a", "multiply": 2}, "loss": "ce", "optimizer": "sgd-lyu-li", "lr": 0.1, "batch": 10, "epochs": 2}],/' \
    -e 's/"eps": \[0.05, 0.1\]/"eps": [0.05, 50]/' -e 's/"name": "img"/"name": "img2"/' "$T/exp/img.json" |
    sed -e "s|\$TRS|$TR|" -e "s|\$TES|$TE|" >"$T/exp/img2.json"
"$MF" reproduce img2 --experiments "$T/exp" --out "$T/rp" >"$T/out" 2>&1
expect_rc 1 $? "uninformative robust check fails"
expect_msg "$T/out" "the first state is at 0 at eps 50: uninformative" "uninformative robust check says why"
check "continuation: starts from a's params x 2" test "$(json "$T/rp/img2/b/config.json" "d['init']['multiply']")" = 2
check "continuation drawn from epoch 3 on" grep -q 'using (\$2 + 3):4 .*(continued)' "$T/rp/img2/fig-epochs.gp"

# ------------------------------------------------------------ cifar10
"$MF" train --data "cifar10:$T/cifar:test" --model cnn:layers=c2k3,p4,f10 --init he --init-scale 1 \
    --loss ce --optimizer sgd --lr 0.01 --epochs 1 --batch 6 --out "$T/cifar-run" -q
expect_rc 0 $? "cifar10 run"
check "cifar10: input 3x32x32" grep -q 'cnn:input=3x32x32,layers=c2k3,p4,f10' "$T/cifar-run/config.json"

# ------------------------------------------------------------ bad files
"$MF" train --data "idx:$T/trunc-images,$T/train-labels" --model cnn:small --out "$T/x" >/dev/null 2>"$T/err"
expect_rc 2 $? "truncated IDX"
expect_msg "$T/err" "trunc-images: truncated: the header promises 3840 image bytes, the file holds 84" "truncated message"
"$MF" train --data "idx:$T/train-images,$T/short-labels" --model cnn:small --out "$T/x" >/dev/null 2>"$T/err"
expect_rc 2 $? "mismatched IDX pair"
expect_msg "$T/err" "holds 60 images but .*short-labels holds 59 labels" "mismatch message"
"$MF" train --data "idx:$T/none,$T/train-labels" --model cnn:small --out "$T/x" >/dev/null 2>"$T/err"
expect_rc 2 $? "missing IDX file"
expect_msg "$T/err" "none: cannot open: No such file" "missing file message"
"$MF" train --data "$TR" --model cnn:layers=c2k3,f5 --out "$T/x" >/dev/null 2>"$T/err"
expect_rc 2 $? "wrong output layer"
expect_msg "$T/err" "output layer f3" "output layer message"
"$MF" train --data "$TR" --test-data builtin:B --model cnn:small --optimizer sgd --epochs 1 --out "$T/x" >/dev/null 2>"$T/err"
expect_rc 2 $? "test set of another shape"
expect_msg "$T/err" "test set builtin:B has dimension 2" "test set message"
"$MF" train --data "$TR" --model cnn:small --optimizer sgd-lyu-li --steps 0 --out "$T/x" >/dev/null 2>"$T/err"
expect_rc 2 $? "epoch run without a stopping criterion"
expect_msg "$T/err" "stopping criterion" "stopping criterion message"
check "train --help lists the image options" sh -c "'$MF' train --help | grep -q -- '--archive-epochs LIST'"
check "robust --help" sh -c "'$MF' robust --help | grep -q -- '--checkpoints W'"

# fashion-mnist (Debian's dataset-fashion-mnist, installed by scripts/install-deps)
if [ -f /usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz ]; then
    "$MF" layout --data fashion-mnist:test --model cnn:mnist 2>&1 | head -1 >"$T/lay"
    check "fashion-mnist:test loads; cnn:mnist has 3240736 parameters" \
        grep -q "# model cnn:input=1x28x28,layers=c32k5,p2,c64k3,p2,f1024,f10, n_params 3240736, degree 4" "$T/lay"
else
    bad "Debian's dataset-fashion-mnist is not installed (scripts/install-deps)"
fi

cli_test_done
