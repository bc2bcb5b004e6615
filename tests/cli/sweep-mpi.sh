#!/bin/sh
# sweep-mpi.sh -- `mpirun -np 2 marginflow-mpi sweep` on the smoke grid
# (needs ${BUILD:-build}/marginflow and ${BUILD:-build}/marginflow-mpi, built
# by `make test` / `make mpi` with Debian's Open MPI; skipped, saying so, only
# when mpirun is not installed). As root mpirun needs OMPI_ALLOW_RUN_AS_ROOT=1
# and OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 (set here); --oversubscribe lets two
# ranks run on a machine with fewer free slots.
#
#  1. a full run on 2 ranks: identical to a --jobs 1 run (tests/cli/sweepcmp.py),
#     points run on both ranks (rank 0 hands them out and runs some itself)
#  2. the whole job (mpirun, both ranks, their points) killed with SIGKILL at
#     random moments (after 0..2 more points finished, at most 7), 3 times,
#     then restarted under mpirun: every point present exactly once,
#     identical to the --jobs 1 run
#  3. a lost rank: one rank's process SIGKILLed mid-run, mpirun aborts the
#     job; the next start re-runs that rank's unfinished point: identical
# About 20 s. KEEP=1 keeps the scratch folder.

. "$(dirname "$0")/lib.sh"
cli_test_init sweep-mpi

if ! command -v mpirun >/dev/null 2>&1; then
    echo "sweep-mpi.sh: SKIPPED: mpirun not found (scripts/install-deps installs openmpi-bin)"
    echo "tests/cli/sweep-mpi.sh: 0 passed, 0 failed"
    exit 0
fi
MPI=$BUILD/marginflow-mpi
if [ ! -x "$MPI" ]; then
    echo "sweep-mpi.sh: $MPI not built (make mpi; make test builds it when mpicc is installed)"
    echo "tests/cli/sweep-mpi.sh: 0 passed, 1 failed"
    exit 1
fi
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OPENBLAS_NUM_THREADS=1
# Open MPI: no network interfaces needed on one host; quiet about missing ones
export OMPI_MCA_btl=self,vader OMPI_MCA_btl_vader_single_copy_mechanism=none
# LeakSanitizer (make asan): Open MPI's own allocations at exit are not ours;
# its libraries have no frame pointers, so the suppressions match only with
# the slow (full) unwinder
export LSAN_OPTIONS="suppressions=$(pwd)/tests/cli/lsan-mpi.supp:print_suppressions=0"
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}fast_unwind_on_malloc=0"
ROOT=$(pwd)
G=$ROOT/experiments/sweeps/smoke.json
CMP="python3 $ROOT/tests/cli/sweepcmp.py"
RUN="mpirun -np 2 --oversubscribe"

REF=$T/ref
"$MF" sweep "$G" --out "$REF" -q >"$T/out" 2>&1
expect_rc 0 $? "reference sweep (--jobs 1)"

# ------------------------------------------------------------- 1. a full run
A=$T/full
$RUN "$MPI" sweep "$G" --out "$A" >"$T/out" 2>&1
expect_rc 0 $? "mpirun -np 2 sweep: $(tail -n 3 "$T/out")"
expect_msg "$T/out" "8 of 8 points of this task finished \(8 run here" "mpirun: 8 points run"
$CMP "$REF" "$A" --ranks >"$T/cmp" 2>&1
expect_rc 0 $? "mpirun -np 2 == --jobs 1: $(tail -n 3 "$T/cmp")"
expect_msg "$T/cmp" "^ranks \[0, 1\]$" "points ran on both ranks"

# ------------------------------------------------------------- 2. SIGKILL
K=$T/kill
kills=0
for i in 1 2 3; do
    setsid $RUN "$MPI" sweep "$G" --out "$K" -q >"$T/k.out" 2>&1 &
    sid=$!
    kill_midway "$K" "$sid"
    kills=$((kills + 1))
    n=0
    while [ -n "$(session_pids "$sid")" ] && [ $n -lt 50 ]; do sleep 0.1; n=$((n + 1)); done
done
before=$(ls "$K"/points/*/result.json 2>/dev/null | wc -l)
$RUN "$MPI" sweep "$G" --out "$K" >"$T/out" 2>&1
expect_rc 0 $? "mpirun restart after $kills SIGKILLs: $(tail -n 3 "$T/out")"
$CMP "$REF" "$K" >"$T/cmp" 2>&1
expect_rc 0 $? "SIGKILL x$kills + restart == --jobs 1: $(tail -n 3 "$T/cmp")"
echo "sweep-mpi.sh: $before of 8 points were finished after $kills kills" >&2

# ------------------------------------------------------------- 3. a lost rank
L=$T/lost
setsid $RUN "$MPI" sweep "$G" --out "$L" >"$T/l.out" 2>&1 &
sid=$!
wait_results "$L" 2
victim=""
for p in $(session_pids "$sid"); do # a rank: a marginflow-mpi whose parent is not one
    case "$(cat /proc/"$p"/cmdline 2>/dev/null | tr '\0' ' ')" in
    *marginflow-mpi\ sweep*)
        pp=$(awk '{print $4}' /proc/"$p"/stat 2>/dev/null)
        case "$(cat /proc/"$pp"/cmdline 2>/dev/null | tr '\0' ' ')" in
        *marginflow-mpi\ sweep*) ;;
        *) victim=$p ;;
        esac ;;
    esac
done
check "lost rank: found a rank process" [ -n "$victim" ]
[ -n "$victim" ] && kill -KILL "$victim"
wait "$sid"
rc=$?
check "lost rank: mpirun failed (exit $rc)" [ "$rc" -ne 0 ]
n=0
while [ -n "$(session_pids "$sid")" ] && [ $n -lt 50 ]; do sleep 0.1; n=$((n + 1)); done
$RUN "$MPI" sweep "$G" --out "$L" >"$T/out" 2>&1
expect_rc 0 $? "restart after a lost rank: $(tail -n 3 "$T/out")"
$CMP "$REF" "$L" >"$T/cmp" 2>&1
expect_rc 0 $? "lost rank + restart == --jobs 1: $(tail -n 3 "$T/cmp")"

cli_test_done
