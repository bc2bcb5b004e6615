#!/bin/sh
# rundir.sh -- the run directory's config.json: one schema (version 2) that a
# run writes and reads back, and the version-1 files of both old writers
# (tests/data/config-v1, written before version 2) still read (needs
# ${BUILD:-build}/marginflow).
#
#  - version 1 by train: --resume continues it bit for bit (metrics.csv,
#    params.txt equal to an uninterrupted run; the checkpoint, re-stamped with
#    the version-2 fingerprint, byte-identical to that run's), config.json is
#    rewritten as version 2 keeping argv and adding the resume; a checkpoint
#    re-stamped while config.json is still version 1 (a kill in between) is
#    accepted; an edited setting is still refused;
#  - version 1 by reproduce: a run with its settings continues from it (the
#    same fingerprint) to exactly the metrics.csv and params.txt reproduce
#    wrote; analyze reads it;
#  - version 2: train then resume with a random and a file init round-trips
#    (identical to an uninterrupted run); the fields say what the run is;
#    an unknown version is refused naming the field.
# Prints "N passed, N failed"; exits 1 on any failure.

. "$(dirname "$0")/lib.sh"
cli_test_init rundir
D=tests/data/config-v1
B_RUN="--data builtin:B --model diag:depth=2 --init-params 1,1,1,-1 --optimizer scaled --lr 0.1 --steps 0 --log-horizon 1000000 --checkpoint-every 0"

# ------------------------------------------------- version 1 by train
"$MF" train $B_RUN --until-log10-loss -10000 --out "$T/ref" -q
expect_rc 0 $? "uninterrupted reference run"
cp -r "$D/train" "$T/v1t"
"$MF" train --resume "$T/v1t" --until-log10-loss -10000 -q 2>"$T/err"
expect_rc 0 $? "resume of a version-1 train run ($(cat "$T/err"))"
for f in metrics.csv params.txt checkpoint.bin; do
    check "v1 train resume: $f identical to the uninterrupted run" cmp -s "$T/ref/$f" "$T/v1t/$f"
done
check "v1 train resume: config.json is version 2" test "$(json "$T/v1t/config.json" "d['version']")" = 2
check "v1 train resume: init as values" test \
    "$(json "$T/v1t/config.json" "(d['init']['kind'], d['init']['params'], d['init']['scale'], d['init']['file'])")" = \
    "('params', [1, 1, 1, -1], None, None)"
check "v1 train resume: argv kept, resume added" test \
    "$(json "$T/v1t/config.json" "(d['argv'][7], d['made_by'], len(d['resumes']), d['resumes'][0][1:3])")" = \
    "('1.0, 1,1,-1', 'marginflow train', 1, ['train', '--resume'])"
check "v1 train resume: command.txt records it" grep -q "^# resumed: .*--resume" "$T/v1t/command.txt"
"$MF" train --resume "$T/v1t" -q
expect_rc 0 $? "the upgraded run resumes again"
check "upgraded run: metrics.csv unchanged" cmp -s "$T/ref/metrics.csv" "$T/v1t/metrics.csv"
# killed between the re-stamped checkpoint and the new config.json
cp -r "$D/train" "$T/win"
"$MF" train --resume "$T/win" -q
cp "$D/train/config.json" "$T/win/config.json"
"$MF" train --resume "$T/win" --until-log10-loss -10000 -q 2>"$T/err"
expect_rc 0 $? "version-1 config with a re-stamped checkpoint ($(cat "$T/err"))"
check "re-stamped window: metrics.csv identical" cmp -s "$T/ref/metrics.csv" "$T/win/metrics.csv"
# an edited setting is still caught
cp -r "$D/train" "$T/edit"
sed 's/"lr":	0.10000000000000001/"lr":	0.2/' "$D/train/config.json" >"$T/edit/config.json"
check "edit applied" grep -q '"lr":	0.2' "$T/edit/config.json"
"$MF" train --resume "$T/edit" -q 2>"$T/err"
expect_rc 2 $? "version-1 config with an edited lr"
expect_msg "$T/err" "checkpoint belongs to another configuration" "edited lr message"

# --------------------------------------------- version 1 by reproduce
"$MF" train $B_RUN --until-log10-loss -5000 --out "$T/v1r" -q
expect_rc 0 $? "first half of the reproduce run"
cp "$D/reproduce/config.json" "$T/v1r/config.json"
"$MF" train --resume "$T/v1r" -q 2>"$T/err"
expect_rc 0 $? "resume from a version-1 reproduce config ($(cat "$T/err"))"
check "v1 reproduce: metrics.csv as reproduce wrote it" cmp -s "$D/reproduce/metrics.csv" "$T/v1r/metrics.csv"
check "v1 reproduce: params.txt as reproduce wrote it" cmp -s "$D/reproduce/params.txt" "$T/v1r/params.txt"
check "v1 reproduce: config.json version 2, provenance kept" test \
    "$(json "$T/v1r/config.json" "(d['version'], d['made_by'], d['claim'], d['argv'], len(d['resumes']), d['init']['kind'])")" = \
    "(2, 'marginflow reproduce', 'vardi-B-not-local', None, 1, 'params')"
cp -r "$D/reproduce" "$T/ar"
"$MF" analyze "$T/ar" -q
expect_rc 0 $? "analyze a version-1 reproduce run"
check "analyze v1 reproduce: verdict not-local" test "$(json "$T/ar/analysis.json" "d['verdict']")" = not-local
cp -r "$D/train" "$T/at"
"$MF" analyze "$T/at" -q
expect_rc 0 $? "analyze a version-1 train run"
check "analyze v1 train: the model" test "$(json "$T/at/analysis.json" "d['model']")" = diag:depth=2

# ---------------------------------------------------------- version 2
S="--data builtin:sym4 --model relu2:width=4,alpha=0.5 --optimizer scaled --lr 0.05 --log-horizon 600 --checkpoint-every 100"
"$MF" train $S --init balanced --init-scale 0.3 --seed 7 --steps 600 --out "$T/v2full" -q
"$MF" train $S --init balanced --init-scale 0.3 --seed 7 --steps 250 --out "$T/v2" -q
expect_rc 0 $? "version-2 run, first part"
check "v2 config fields" test \
    "$(json "$T/v2/config.json" "(d['format'], d['version'], d['made_by'], d['init'], d['settings']['seed'], d['settings']['max_steps'])")" = \
    "('marginflow-config', 2, 'marginflow train', {'kind': 'balanced', 'scale': 0.3, 'params': None, 'file': None}, 7, 250)"
"$MF" train --resume "$T/v2" --steps 600 -q
expect_rc 0 $? "version-2 resume"
for f in metrics.csv params.txt checkpoint.bin; do
    check "v2 resume: $f identical" cmp -s "$T/v2full/$f" "$T/v2/$f"
done
"$MF" train $S --init-file "$T/v2full/params.txt" --steps 600 --out "$T/ffull" -q
"$MF" train $S --init-file "$T/v2full/params.txt" --steps 300 --out "$T/f" -q
check "v2 file init recorded" test "$(json "$T/f/config.json" "(d['init']['kind'], d['init']['file'], d['init']['scale'])")" = \
    "('file', '$T/v2full/params.txt', None)"
"$MF" train --resume "$T/f" --steps 600 -q
expect_rc 0 $? "version-2 resume of a file init"
check "v2 file init resume: metrics.csv identical" cmp -s "$T/ffull/metrics.csv" "$T/f/metrics.csv"
# unknown version
sed 's/"version":	2/"version":	3/' "$T/v2/config.json" >"$T/v3.json" && cp "$T/v3.json" "$T/v2/config.json"
"$MF" train --resume "$T/v2" -q 2>"$T/err"
expect_rc 2 $? "config.json version 3"
expect_msg "$T/err" "cannot resume: .*/config\\.json: version: 3 is not an integer in \\[1, 2\\]" "version 3 message"

cli_test_done
