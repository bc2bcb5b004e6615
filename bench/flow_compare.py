#!/usr/bin/python3
"""flow_compare.py -- issue 11's evaluation of the gradient-flow integrators
(bench/flow-compare runs it): marginflow's `flow` (src/flow.c) against
SUNDIALS (bench/flowsun.c: ARKODE explicit tables, ARKODE DIRK, CVODE BDF,
all with the same local-error test ||e|| <= tol (1 + ||theta||) as
vector/weight tolerances) and, when OLD_MF names a marginflow binary from
before issue 11, the former hand-written Bogacki-Shampine flow.

Accuracy: |gamma - gamma_ref| / gamma_ref at the run's final loss, where
gamma_ref is a marginflow flow run at tol 1e-10 with every step logged,
interpolated linearly in log(-log10 Loss) between the two steps around that
loss. Cost: right-hand-side evaluations (forward + backward on the full
data; SUNDIALS' difference-quotient Jacobian columns included; marginflow's
forward-only passes and per-term batch-1 gradients listed beside) and wall
seconds (noisy on a shared machine). Writes a markdown table to stdout.
"""
import csv, json, math, os, subprocess, sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MF = os.environ.get("MF", os.path.join(ROOT, "build", "marginflow"))
SUN = os.environ.get("FLOWSUN", os.path.join(ROOT, "build", "bench-flow", "flowsun"))
OLD = os.environ.get("OLD_MF")
WORK = os.environ.get("WORK", os.path.join(ROOT, "build", "bench-flow", "work"))
ONLY = os.environ.get("ONLY")
NS = os.path.join(ROOT, "experiments", "data", "llwa21-nonsym.svm")
PROBLEMS = [
    ("sym4", "builtin:sym4", "relu2:width=20,alpha=0.5", 1e-3, 5, -1e5),
    ("nonsym", NS, "relu2:width=20,alpha=0.1", 1e-6, 1, -1e5),
    ("R1", "builtin:R1", "fc-linear:depth=3,width=3", 0.1, 1, -1e5),
    ("relu2-n40", "gauss:n=40,d=5,margin=0.1,seed=1", "relu2:width=8,alpha=0.2", 0.5, 1, -100),
    ("relu2-n200", "gauss:n=200,d=10", "relu2:width=10", 0.1, 1, -10),
]
TOLS = [float(t) for t in os.environ.get("TOLS", "1e-4,1e-6,1e-8").split(",")]
SUN_TIMEOUT = float(os.environ.get("SUN_TIMEOUT", "400"))  # seconds per SUNDIALS run
SUN_METHODS = [("ARKODE ERK Bogacki-Shampine 4-2-3", "erk:1"), ("ARKODE ERK Zonneveld 5-3-4", "erk:3"),
               ("ARKODE ERK Dormand-Prince 7-4-5", "erk:8"), ("ARKODE DIRK ARK324L2SA 4-2-3", "dirk:104"),
               ("CVODE BDF", "bdf")]


def train(mf, out, p, tol, target, every=False, timeout=900):
    subprocess.run(["rm", "-rf", out])
    cmd = [mf, "train", "-q", "--data", p[1], "--model", p[2], "--init-scale", repr(p[3]), "--seed",
           str(p[4]), "--optimizer", "flow", "--steps", "0", "--tol", repr(tol), "--until-log10-loss",
           repr(target), "--checkpoint-every", "0", "--out", out]
    if every:
        cmd += ["--log-points", "6000000", "--log-horizon", "1000000"]
    try:
        subprocess.run(cmd, capture_output=True, timeout=timeout)
        return json.load(open(os.path.join(out, "summary.json")))
    except (subprocess.TimeoutExpired, FileNotFoundError, json.JSONDecodeError):
        return None


class Ref:
    def __init__(self, rows):
        self.l = [float(r["log10_loss"]) for r in rows]
        self.g = [float(r["normalized_margin"]) for r in rows]

    def at(self, l):
        for i in range(1, len(self.l)):
            if self.l[i] <= l < self.l[i - 1] or (self.l[i] <= l and i == len(self.l) - 1):
                a, b = self.l[i - 1], self.l[i]
                if a >= 0 or b >= 0:
                    return self.g[i]
                u = (math.log(-l) - math.log(-a)) / (math.log(-b) - math.log(-a))
                return self.g[i - 1] + u * (self.g[i] - self.g[i - 1])
        return None


def main():
    os.makedirs(WORK, exist_ok=True)
    print("| problem | integrator | tol | steps | RHS evals | other work | wall s | final log10 Loss | margin error |")
    print("|---|---|---|---|---|---|---|---|---|")
    for p in PROBLEMS:
        if ONLY and p[0] not in ONLY.split(","):
            continue
        target = p[5]
        rd = os.path.join(WORK, p[0] + "-ref")
        s = train(MF, rd, p, 1e-10, target * 1.05, every=True, timeout=3600)
        ref = Ref(list(csv.DictReader(open(os.path.join(rd, "metrics.csv")))))

        def row(name, tol, steps, rhs, other, wall, l, g):
            gr = ref.at(l)
            err = "%.1e" % (abs(g - gr) / abs(gr)) if gr and g == g else "-"
            print("| %s | %s | %g | %s | %s | %s | %.3g | %.6g | %s |" % (p[0], name, tol, steps, rhs, other,
                                                                       wall, l, err), flush=True)

        for tol in TOLS:
            s = train(MF, os.path.join(WORK, p[0] + "-mf"), p, tol, target)
            if s:
                row("marginflow flow", tol, "%d (%d stiff)" % (s["steps"], s["stiff_steps"]),
                    s["gradient_evals"], "%d fwd, %d term grads" % (s["forward_evals"], s["term_gradients"]),
                    s["wall_seconds"], s["final"]["log10_loss"], s["final"]["normalized_margin"])
            if OLD:
                s = train(OLD, os.path.join(WORK, p[0] + "-old"), p, tol, target)
                if s:
                    row("former flow (Bogacki-Shampine)", tol, s["steps"], 3 * (s["steps"] + s["rejected"]) + 1,
                        "", s["wall_seconds"], s["final"]["log10_loss"], s["final"]["normalized_margin"])
        for name, m in SUN_METHODS:
            for tol in TOLS[len(TOLS) // 2:][:1] if m.startswith(("erk:3", "erk:8")) else TOLS:
                try:
                    out = subprocess.run([SUN, m, repr(tol), repr(target), p[1], p[2], repr(p[3]), str(p[4])],
                                         capture_output=True, text=True, timeout=SUN_TIMEOUT).stdout
                    r = json.loads(out)
                except (subprocess.TimeoutExpired, json.JSONDecodeError):
                    print("| %s | %s | %g | gave up | | | | | |" % (p[0], name, tol), flush=True)
                    continue
                if not r["ok"]:
                    print("| %s | %s | %g | %d (gave up after %.0f s) | %d | | | %.4g | |" % (
                        p[0], name, tol, r["steps"], r["wall"], r["rhs"], r["log10_loss"]), flush=True)
                    continue
                row(name, tol, r["steps"], r["rhs"], "", r["wall"], r["log10_loss"], r["gamma"])


if __name__ == "__main__":
    main()
