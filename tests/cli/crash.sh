#!/bin/sh
# crash.sh -- crash safety of `marginflow train` (needs ${BUILD:-build}/marginflow).
#
# 1. Deterministic resume points: a run stopped after k = 1, 9, 50, 199 steps
#    and resumed to 200 gives metrics.csv and params.txt byte-identical (cmp)
#    to an uninterrupted 200-step run.
# 2. SIGKILL: a long run with --checkpoint-every 1 (a checkpoint written and
#    fsync'ed after every step, so many kills land inside a checkpoint write;
#    those leave a checkpoint.bin.tmp.PID behind and are counted) is killed
#    25 times at random moments 2..150 ms after each start or resume, and
#    resumed after every kill (started afresh when the kill came before
#    config.json existed). Then it is finished with --resume --steps S
#    (S = its checkpoint's step + 50) and compared with an uninterrupted
#    S-step run. Checks: every resume finds a valid checkpoint (never exit 2
#    "cannot resume"); the final metrics.csv, params.txt and checkpoint.bin
#    are byte-identical (cmp); at least 20 kills happened; --resume removed
#    every stale NAME.tmp.PID (none left after the final resume).
#    Two workloads: relu2 with the default lyu-li schedule, and mini-batch
#    SGD (whose batch order must survive the resume).
# About 15 s in all. KEEP=1 keeps the scratch folder. Prints "N passed,
# N failed"; exits 1 on any failure.

. "$(dirname "$0")/lib.sh"
cli_test_init crash

# rand_ms LO HI: a uniform random integer in [LO, HI]
rand_ms() {
    r=$(od -An -N2 -tu2 /dev/urandom | tr -d ' ')
    echo $(($1 + r % ($2 - $1 + 1)))
}
sleep_ms() { sleep "$(awk -v m="$1" 'BEGIN { printf "%.3f", m / 1000 }')"; }

# crash_run NAME ARGS...: start a long run (10^6 steps), kill it KILLS times
# at random moments (2..150 ms after each start or resume), each time
# resuming it; then finish it with --resume --steps S, S = the checkpoint's
# step + 50, and compare with an uninterrupted run of S steps (same fixed
# --log-horizon, so the same rows).
KILLS=25
crash_run() {
    name=$1
    shift
    set -- "$@" --log-horizon 100000 --checkpoint-every 1 -q
    R="$T/$name-crash"
    kills=0
    restarts=0
    resumes=0
    bad_resumes=0
    tmps=0
    while [ "$kills" -lt "$KILLS" ]; do
        if [ -f "$R/config.json" ]; then
            resumes=$((resumes + 1))
            mode=resume
            "$MF" train --resume "$R" -q >"$T/out" 2>"$T/err" &
        else
            [ "$kills" -gt 0 ] && restarts=$((restarts + 1))
            mode=fresh
            "$MF" train "$@" --steps 1000000 --out "$R" >"$T/out" 2>"$T/err" &
        fi
        pid=$!
        sleep_ms "$(rand_ms 2 150)"
        kill -KILL "$pid" 2>/dev/null
        { wait "$pid"; } 2>/dev/null
        rc=$?
        if [ "$rc" -eq 137 ]; then
            kills=$((kills + 1))
            # a kill inside a checkpoint write leaves checkpoint.bin.tmp.PID
            # (removed by the next --resume)
            [ -d "$R" ] && tmps=$((tmps + $(find "$R" -name 'checkpoint.bin.tmp.*' | wc -l)))
            continue
        fi
        [ "$mode" = resume ] && bad_resumes=$((bad_resumes + 1))
        bad "$name: $mode after $kills kills exited $rc: $(cat "$T/err")"
        break
    done
    step=$(od -An -t d8 -j 24 -N 8 "$R/checkpoint.bin" 2>/dev/null | tr -d ' ')
    [ -n "$step" ] || step=0
    final=$((step + 50))
    "$MF" train --resume "$R" --steps "$final" -q >"$T/out" 2>"$T/err"
    rc=$?
    [ "$rc" -eq 0 ] || bad_resumes=$((bad_resumes + 1))
    check "$name: final resume exits 0 (got $rc: $(cat "$T/err"))" test "$rc" -eq 0
    left=$(find "$R" -name '*.tmp.*' | wc -l)
    check "$name: no stale temporary files after the final resume ($left left)" test "$left" -eq 0
    "$MF" train "$@" --steps "$final" --out "$T/$name-ref" >/dev/null 2>&1
    check "$name: uninterrupted run exits 0" test $? -eq 0
    echo "$name: $kills SIGKILLs at random moments over $step steps; $resumes resumes," \
        "$restarts fresh restarts (killed before config.json), $tmps kills inside a checkpoint write"
    check "$name: at least 20 kills (got $kills)" test "$kills" -ge 20
    check "$name: every resume found a valid checkpoint ($bad_resumes refused)" test "$bad_resumes" -eq 0
    for f in metrics.csv params.txt checkpoint.bin; do
        check "$name: $f byte-identical to the uninterrupted run" cmp -s "$T/$name-ref/$f" "$R/$f"
    done
}

# Deterministic resume points first: stop after k steps, resume to 200, and
# compare with an uninterrupted 200-step run (catches a setting that
# config.json fails to restore, e.g. lyu-li's max_rel_step).
W="--data gauss:n=40,d=4,margin=0.1,seed=2 --model relu2:width=8 --log-horizon 200 -q"
# (no --optimizer: the default, flow)
# shellcheck disable=SC2086
"$MF" train $W --steps 200 --out "$T/det-ref" >/dev/null 2>&1
for k in 1 9 50 199; do
    # shellcheck disable=SC2086
    "$MF" train $W --steps $k --out "$T/det-$k" >/dev/null 2>&1
    "$MF" train --resume "$T/det-$k" --steps 200 -q >/dev/null 2>&1
    check "stop at step $k + resume: metrics.csv identical" cmp -s "$T/det-ref/metrics.csv" "$T/det-$k/metrics.csv"
    check "stop at step $k + resume: params.txt identical" cmp -s "$T/det-ref/params.txt" "$T/det-$k/params.txt"
done

crash_run lyuli --data gauss:n=40,d=4,margin=0.1,seed=2 --model relu2:width=8 --optimizer lyu-li
# the default optimizer (flow) on sym4: explicit steps first, then the stiff
# (Rosenbrock-W) method, whose mode the checkpoint carries
crash_run flow --data builtin:sym4 --model relu2:width=20,alpha=0.5 --init-scale 1e-3 --seed 5
crash_run sgd --data gauss:n=64,d=5,margin=0.1,seed=3 --model relu2:width=6 --optimizer sgd \
    --batch 10 --lr 0.05 --loss logistic

cli_test_done
