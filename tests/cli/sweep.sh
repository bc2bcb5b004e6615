#!/bin/sh
# sweep.sh -- `marginflow sweep` and `marginflow sweep-report` on the smoke
# grid experiments/sweeps/smoke.json (8 points of 0.15-0.5 s; needs
# ${BUILD:-build}/marginflow). Every sweep below is compared point by point
# with a reference run (--jobs 1, uninterrupted) by tests/cli/sweepcmp.py:
# same ids, one finished result each, identical numbers.
#
#  1. bad grids: each refused with exit 2 and its exact sentence (file and
#     field), before anything is written
#  2. reference run; ids stable (the same under --task shards, and a grid
#     with one more width keeps the 8 ids); --list
#  3. SIGKILL of the whole session (--jobs 2) at random moments (after 0..2 more
#     points finished, at most 7), 4 times, then a restart: identical to the reference, resumed points seen
#  4. --task K/3 shards, and Slurm array environments (MIN 10, COUNT 2)
#  5. two sweeps on one DIR at once: both exit 0, every point run once
#  6. SIGTERM to the parent: exit 130, running points checkpointed, resumed
#  7. --print-slurm: the script runs (fake scontrol) and requeues on USR1
#  8. sweep-report: results.csv (one row per point, known numbers), figures
# About 30 s. KEEP=1 keeps the scratch folder.

. "$(dirname "$0")/lib.sh"
cli_test_init sweep

ROOT=$(pwd)
G=$ROOT/experiments/sweeps/smoke.json
CMP="python3 $ROOT/tests/cli/sweepcmp.py"
export OPENBLAS_NUM_THREADS=1

# ---------------------------------------------------------------- 1. bad grids
# bad NAME JSON REGEX: the grid is refused with exit 2, the message matches,
# and no sweep directory was made
bad_grid() {
    printf '%s\n' "$2" >"$T/$1.json"
    "$MF" sweep "$T/$1.json" --out "$T/bad-$1" >"$T/out" 2>"$T/err"
    expect_rc 2 $? "bad grid $1"
    expect_msg "$T/err" "$3" "bad grid $1"
    if [ -e "$T/bad-$1" ]; then bad "bad grid $1: $T/bad-$1 was created"; else ok; fi
}
B='"data": "builtin:D", "until_log10_loss": -10'
bad_grid json '{"base": ' "json.json:1:10: not valid JSON"
bad_grid key "{\"base\": {$B, \"model\": \"relu2:width={w}\"}, \"axes\": [{\"name\": \"w\", \"values\": [2]}], \"axis\": 1}" \
    "json: axis: unknown key \(known here: name, title"
bad_grid template "{\"base\": {$B, \"model\": \"relu2:width={widht}\"}, \"axes\": [{\"name\": \"width\", \"values\": [2]}]}" \
    "template.json: base.model: '\{widht\}' names no axis \(axes: width\)"
bad_grid unused "{\"base\": {$B, \"model\": \"relu2:width=2\"}, \"axes\": [{\"name\": \"width\", \"values\": [2]}]}" \
    "unused.json: axes\[0\]: no \"\{width\}\" in base: the axis 'width' would change nothing"
bad_grid logrange "{\"base\": {$B, \"init\": {\"scale\": \"{s}\"}}, \"axes\": [{\"name\": \"s\", \"logrange\": {\"from\": 0, \"to\": 1, \"num\": 3}}]}" \
    "logrange.json: axes\[0\].logrange.from: must be > 0 for a logrange"
bad_grid model "{\"base\": {$B, \"model\": \"relu2:width={w}\"}, \"axes\": [{\"name\": \"w\", \"values\": [2, 0]}]}" \
    "model.json: base: point 1 \(w=0\): model spec \"relu2:width=0\""
bad_grid dup "{\"base\": {$B, \"model\": \"relu2:width={w}\"}, \"axes\": [{\"name\": \"w\", \"values\": [2, 2]}]}" \
    "dup.json: axes: points 0 \(w=2\) and 1 \(w=2\) have the same settings"
bad_grid lr "{\"base\": {$B, \"lr\": \"{lr}\"}, \"axes\": [{\"name\": \"lr\", \"values\": [0.1, -1]}]}" \
    "lr.json: base: run 'run': lr: must be a finite number > 0 \(point 1: lr=-1\)"
bad_grid column "{\"base\": {$B, \"model\": \"relu2:width={ratio}\"}, \"axes\": [{\"name\": \"ratio\", \"values\": [2]}]}" \
    "column.json: axes\[0\].name: 'ratio' is a column of results.csv"
bad_grid figure "{\"base\": {$B, \"model\": \"relu2:width={w}\"}, \"axes\": [{\"name\": \"w\", \"values\": [2]}], \"figures\": [{\"kind\": \"metric\", \"y\": \"gama\", \"x\": \"w\"}]}" \
    "figure.json: figures\[0\].y: 'gama' is not a numeric column"
bad_grid data "{\"base\": {\"data\": \"$T/none.svm\", \"until_log10_loss\": -10, \"model\": \"relu2:width={w}\"}, \"axes\": [{\"name\": \"w\", \"values\": [2]}]}" \
    "data.json: base: point 0 \(w=2\): .*none.svm.*cannot open"
bad_grid seeds "{\"base\": {$B, \"seeds\": 3}, \"axes\": [{\"name\": \"seed\", \"seeds\": 2}]}" \
    "seeds.json: base.seeds: give seeds as an axis"
"$MF" sweep "$G" --out "$T/x" --task 3/3 >"$T/out" 2>"$T/err"
expect_rc 2 $? "--task 3/3"
expect_msg "$T/err" "--task: expected K/N with 0 <= K < N" "--task 3/3"
SLURM_ARRAY_TASK_ID=5 SLURM_ARRAY_TASK_COUNT=2 "$MF" sweep "$G" --out "$T/x" >"$T/out" 2>"$T/err"
expect_rc 2 $? "Slurm task out of range"
expect_msg "$T/err" "SLURM_ARRAY_TASK_ID=5 \(MIN 0, COUNT 2\) gives task 5, not in 0..1" "Slurm range"
PBS_ARRAYID=1 "$MF" sweep "$G" --out "$T/x" >"$T/out" 2>"$T/err"
expect_rc 2 $? "PBS without --tasks"
expect_msg "$T/err" "give --tasks N" "PBS without --tasks"
"$MF" sweep --help >"$T/out"
expect_rc 0 $? "sweep --help"
expect_msg "$T/out" "--jobs N +N worker processes \(default 1" "help: --jobs default"
expect_msg "$T/out" "SLURM_ARRAY_TASK_ID" "help: Slurm"

# ------------------------------------------------------------- 2. reference, ids
REF=$T/ref
"$MF" sweep "$G" --out "$REF" >"$T/ref.out" 2>&1
expect_rc 0 $? "reference sweep"
expect_msg "$T/ref.out" "8 of 8 points of this task finished \(8 run here" "reference: 8 run"
check "reference: 8 results" [ "$(ls "$REF"/points/*/result.json | wc -l)" -eq 8 ]
"$MF" sweep "$G" --out "$REF" >"$T/out" 2>&1
expect_rc 0 $? "restart of a finished sweep"
expect_msg "$T/out" "8 finished before, 0 to run" "restart skips finished points"
"$MF" sweep "$G" --out "$REF" --list | grep -v '^#' | awk '{print $2}' >"$T/ids"
for k in 0 1 2; do "$MF" sweep "$G" --out "$REF" --list --task $k/3; done | grep -v '^#' | sort -n |
    awk '{print $2}' >"$T/ids-shards"
check "ids: shards list the same ids" cmp -s "$T/ids" "$T/ids-shards"
check "ids: 8 distinct" [ "$(sort -u "$T/ids" | wc -l)" -eq 8 ]
sed 's/"values": \[2, 4\]/"values": [2, 3, 4]/' "$G" >"$T/wider.json"
"$MF" sweep "$T/wider.json" --out "$REF" --list | grep -v '^#' | awk '{print $2}' | sort >"$T/ids-wider"
check "ids: a grid with one more width keeps the 8 ids" \
    [ "$(sort "$T/ids" | comm -12 - "$T/ids-wider" | wc -l)" -eq 8 ]
check "ids: ... and has 12 points" [ "$(wc -l <"$T/ids-wider")" -eq 12 ]
"$MF" sweep "$G" --out "$REF" --list --task 1/3 >"$T/out"
expect_msg "$T/out" "^1 [0-9a-f]{16} finished width=2, seed=4$" "--list 1/3 line"
check "--list 1/3: points 1, 4, 7" [ "$(grep -vc '^#' "$T/out")" -eq 3 ]

# ------------------------------------------------------------- 3. SIGKILL
# sweep_kill DIR ARGS: start a sweep in its own session and SIGKILL every
# process of the session (parent and points) once 0..2 more points (at most
# 7 in all) have finished
sweep_kill() {
    d=$1
    shift
    setsid "$MF" sweep "$G" --out "$d" -q "$@" >/dev/null 2>&1 &
    kill_midway "$d" $!
}
K=$T/kill
for i in 1 2 3 4; do sweep_kill "$K" --jobs 2; done
n_before=$(ls "$K"/points/*/result.json 2>/dev/null | wc -l)
"$MF" sweep "$G" --out "$K" --jobs 2 >"$T/out" 2>&1
expect_rc 0 $? "restart after 4 SIGKILLs"
$CMP "$REF" "$K" >"$T/cmp" 2>&1
expect_rc 0 $? "SIGKILL x4 + restart == reference: $(tail -n 3 "$T/cmp")"
echo "sweep.sh: after 4 kills $n_before of 8 points were finished; $(grep -l '"resumed":[[:space:]]*true' "$K"/points/*/result.json | wc -l) resumed from a checkpoint" >&2

# ------------------------------------------------------------- 4. shards, Slurm
S=$T/shards
for k in 0 1 2; do
    "$MF" sweep "$G" --out "$S" --task $k/3 >"$T/out.$k" 2>&1
    expect_rc 0 $? "--task $k/3"
done
expect_msg "$T/out.1" "3 of 3 points of this task finished \(3 run here" "--task 1/3 ran its 3 points"
expect_msg "$T/out.2" "2 of 2 points of this task finished \(2 run here" "--task 2/3 ran its 2 points"
$CMP "$REF" "$S" >"$T/cmp" 2>&1
expect_rc 0 $? "--task shards == reference: $(tail -n 3 "$T/cmp")"
L=$T/slurm
for id in 10 11; do
    SLURM_ARRAY_TASK_ID=$id SLURM_ARRAY_TASK_MIN=10 SLURM_ARRAY_TASK_COUNT=2 \
        "$MF" sweep "$G" --out "$L" >"$T/out.$id" 2>&1
    expect_rc 0 $? "SLURM_ARRAY_TASK_ID=$id"
done
expect_msg "$T/out.11" "task 1/2 \(SLURM_ARRAY_TASK_ID=11 \(MIN 10, COUNT 2\)\): 4 points" "Slurm task 11 -> 1/2"
$CMP "$REF" "$L" >"$T/cmp" 2>&1
expect_rc 0 $? "Slurm array == reference: $(tail -n 3 "$T/cmp")"

# ------------------------------------------------------------- 5. concurrent
C=$T/conc
"$MF" sweep "$G" --out "$C" --jobs 2 >"$T/c1" 2>&1 &
p1=$!
"$MF" sweep "$G" --out "$C" >"$T/c2" 2>&1 &
p2=$!
wait $p1
expect_rc 0 $? "concurrent sweep 1"
wait $p2
expect_rc 0 $? "concurrent sweep 2"
ran=$(cat "$T/c1" "$T/c2" | sed -nE 's/.*finished \(([0-9]+) run here.*/\1/p' | awk '{s += $1} END {print s}')
check "concurrent: the two sweeps ran 8 points in all, none twice (ran $ran)" [ "$ran" -eq 8 ]
$CMP "$REF" "$C" >"$T/cmp" 2>&1
expect_rc 0 $? "concurrent sweeps == reference: $(tail -n 3 "$T/cmp")"

# ------------------------------------------------------------- 6. SIGTERM
R=$T/term
"$MF" sweep "$G" --out "$R" --jobs 2 >"$T/out" 2>&1 &
p=$!
wait_results "$R" 1 # then the other worker is inside a point (a fixed sleep was too long on fast machines)
kill -TERM $p
wait $p
expect_rc 130 $? "SIGTERM: exit 130"
expect_msg "$T/out" "interrupted \(checkpointed; the same command resumes it\)" "SIGTERM: points checkpointed"
check "SIGTERM: an interrupted run summary" grep -lq '"outcome":[[:space:]]*"interrupted"' "$R"/points/*/run/summary.json
"$MF" sweep "$G" --out "$R" >"$T/out" 2>&1
expect_rc 0 $? "restart after SIGTERM"
check "SIGTERM: a point resumed" grep -lq '"resumed":[[:space:]]*true' "$R"/points/*/result.json
$CMP "$REF" "$R" >"$T/cmp" 2>&1
expect_rc 0 $? "SIGTERM + restart == reference: $(tail -n 3 "$T/cmp")"

# ------------------------------------------------------------- 7. --print-slurm
P=$T/slurmscript
"$MF" sweep "$G" --out "$P" --print-slurm --tasks 1 --time 00:10:00 >"$T/job.sh"
expect_rc 0 $? "--print-slurm"
expect_msg "$T/job.sh" "^#SBATCH --array=0-0$" "--print-slurm: array"
expect_msg "$T/job.sh" "^#SBATCH --signal=B:USR1@120$" "--print-slurm: USR1 warning"
expect_msg "$T/job.sh" "^#SBATCH --time=00:10:00$" "--print-slurm: time"
"$MF" sweep "$G" --out "$P" --print-slurm >"$T/job8.sh"
expect_msg "$T/job8.sh" "^#SBATCH --array=0-7$" "--print-slurm: default array = points"
mkdir -p "$T/bin"
printf '#!/bin/sh\necho "$@" >>"%s/scontrol.log"\n' "$T" >"$T/bin/scontrol"
chmod +x "$T/bin/scontrol"
PATH="$T/bin:$PATH" SLURM_ARRAY_JOB_ID=77 SLURM_ARRAY_TASK_ID=0 SLURM_ARRAY_TASK_MIN=0 \
    SLURM_ARRAY_TASK_COUNT=1 bash "$T/job.sh" >"$T/job.out" 2>&1 &
j=$!
wait_results "$P" 1
kill -USR1 $j
wait $j
expect_rc 0 $? "job script: exit 0 after USR1"
check "job script: requeued itself" grep -qx "requeue 77_0" "$T/scontrol.log"
expect_msg "$T/job.out" "interrupted: the same command resumes the rest" "job script: sweep stopped"
PATH="$T/bin:$PATH" SLURM_ARRAY_JOB_ID=77 SLURM_ARRAY_TASK_ID=0 SLURM_ARRAY_TASK_MIN=0 \
    SLURM_ARRAY_TASK_COUNT=1 bash "$T/job.sh" >"$T/job.out" 2>&1
expect_rc 0 $? "job script: the requeued task finishes"
$CMP "$REF" "$P" >"$T/cmp" 2>&1
expect_rc 0 $? "job script == reference: $(tail -n 3 "$T/cmp")"

# ------------------------------------------------------------- 8. sweep-report
"$MF" sweep-report "$REF" >"$T/rep" 2>&1
expect_rc 0 $? "sweep-report"
expect_msg "$T/rep" "results.csv: 8 rows, 8 finished" "sweep-report: rows"
python3 - "$REF/results.csv" >"$T/csv" 2>&1 <<'EOF'
import csv, math, sys
rows = list(csv.DictReader(open(sys.argv[1])))
assert len(rows) == 8, len(rows)
assert len({r["id"] for r in rows}) == 8
assert [int(r["index"]) for r in rows] == list(range(8))
by = {(r["width"], r["seed"]): r for r in rows}
assert all(r["status"] == "finished" for r in rows)
r = by[("2", "11")]   # the non-optimal KKT point of case D: gamma 0.25, certified not local
assert r["class"] == "suboptimal-kkt" and r["verdict"] == "not-local", r
assert abs(float(r["normalized_margin"]) - 0.25) < 1e-5, r["normalized_margin"]
r = by[("2", "1")]    # a unit dead on one sample: the data never separates
assert r["class"] == "not-separated" and float(r["train_error"]) == 0.5, r
r = by[("2", "4")]    # the global optimum 1/(2 sqrt 2)
assert r["class"] == "global" and abs(float(r["ratio"]) - 1) < 1e-6, r["ratio"]
assert abs(float(r["gamma_star"]) - 0.35355339059327373) < 1e-15
for r in rows:
    for k in ("normalized_margin", "log10_loss", "wall_seconds", "steps"):
        assert math.isfinite(float(r[k])), (k, r[k])
try:
    import pandas
    df = pandas.read_csv(sys.argv[1])
    assert df.shape[0] == 8 and df["ratio"].dtype.kind == "f"
    print("pandas ok")
except ImportError:
    print("pandas not installed: csv module only")
print("csv ok")
EOF
expect_rc 0 $? "results.csv content: $(tail -n 3 "$T/csv")"
if command -v gnuplot >/dev/null 2>&1; then
    for f in fig1-class-vs-width fig2-ratio-vs-width-by-seed; do
        check "figure $f.png" [ -s "$REF/$f.png" ]
        check "figure $f.svg" [ -s "$REF/$f.svg" ]
        check "figure $f.pdf" [ -s "$REF/$f.pdf" ]
    done
else
    echo "sweep.sh: gnuplot missing: figures not checked" >&2
fi
expect_msg "$T/rep" "2 +2/4 \[0.15, 0.85\] +1/4 \[0.05, 0.70\] +1/4 \[0.05, 0.70\]" "fractions table, width 2"
rm "$REF"/points/"$(sed -n 1p "$T/ids")"/result.json
"$MF" sweep-report "$REF" -q
expect_rc 0 $? "sweep-report of a partial sweep"
check "partial: a row with status missing" grep -q ",missing,,,," "$REF/results.csv"
"$MF" sweep-report "$T" >"$T/out" 2>"$T/err"
expect_rc 2 $? "sweep-report of a folder that is not a sweep"
expect_msg "$T/err" "sweep.json: cannot open: No such file" "sweep-report: not a sweep"

cli_test_done
