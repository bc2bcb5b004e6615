#!/usr/bin/python3
"""optimizer_error.py -- the measured error of each optimizer at its
default settings (issue 11; the numbers of README "Choosing an optimizer").

For each problem: a reference gradient flow (`flow --tol 1e-10`, 1e-4 x the
default tolerance, every step logged), then every optimizer at its defaults
(only --optimizer, --data, --model, --init-scale, --seed, --until-log10-loss)
run to log10 Loss -1e3, -1e4 and -1e5. Error: |gamma - gamma_ref| / gamma_ref
of the final normalized margin against the reference at the same loss
(bench/flow_compare.py's Ref: linear in log(-log10 Loss) between the two
reference steps around it). A run that does not reach the loss within
WALL seconds (default 120) is reported as such, with where it got.
Usage: bench/optimizer_error.py [WORKDIR]; prints a markdown table.
"""
import csv, json, os, subprocess, sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from flow_compare import Ref  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MF = os.environ.get("MF", os.path.join(ROOT, "build", "marginflow"))
WORK = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "build", "bench-opt")
WALL = float(os.environ.get("WALL", "120"))
NS = os.path.join(ROOT, "experiments", "data", "llwa21-nonsym.svm")
PROBLEMS = [  # name, data, model, init scale, seed
    ("sym4", "builtin:sym4", "relu2:width=20,alpha=0.5", 1e-3, 5),
    ("nonsym", NS, "relu2:width=20,alpha=0.1", 1e-6, 1),
    ("R1", "builtin:R1", "fc-linear:depth=3,width=3", 0.1, 1),
]
TARGETS = [-1e3, -1e4, -1e5]
OPTIMIZERS = ["flow", "lyu-li", "scaled", "gd"]


def train(out, p, opt, target, extra=()):
    subprocess.run(["rm", "-rf", out])
    cmd = [MF, "train", "-q", "--data", p[1], "--model", p[2], "--init-scale", repr(p[3]), "--seed",
           str(p[4]), "--optimizer", opt, "--steps", "0", "--until-log10-loss", repr(target),
           "--wall-seconds", repr(WALL), "--checkpoint-every", "0", "--out", out] + list(extra)
    subprocess.run(cmd, capture_output=True)
    return json.load(open(os.path.join(out, "summary.json")))


def main():
    os.makedirs(WORK, exist_ok=True)
    print("| problem | optimizer | " + " | ".join("log10 Loss %g" % t for t in TARGETS) + " |")
    print("|---|---|" + "---|" * len(TARGETS))
    for p in PROBLEMS:
        rd = os.path.join(WORK, p[0] + "-ref")
        train(rd, p, "flow", TARGETS[-1] * 1.3,
              ["--tol", "1e-10", "--log-points", "6000000", "--log-horizon", "1000000"])
        ref = Ref(list(csv.DictReader(open(os.path.join(rd, "metrics.csv")))))
        for opt in OPTIMIZERS:
            cells = []
            for t in TARGETS:
                if cells and cells[-1].startswith(("wall-budget", "stalled", "non-finite", "not tried")):
                    cells.append("not tried")  # a shallower loss was not reached either
                    continue
                s = train(os.path.join(WORK, p[0] + "-" + opt), p, opt, t)
                f = s["final"]
                if s["outcome"] != "loss-target":
                    cells.append("%s at log10 Loss %.3g (%d steps)" % (s["outcome"], f["log10_loss"],
                                                                     s["steps"]))
                    continue
                g, gr = f["normalized_margin"], ref.at(f["log10_loss"])
                if gr is None:
                    cells.append("beyond the reference (log10 Loss %.4g)" % f["log10_loss"])
                    continue
                cells.append("%.1e (%d steps, %.2g s)" % (abs(g - gr) / gr, s["steps"], s["wall_seconds"]))
            print("| %s | %s | %s |" % (p[0], opt, " | ".join(cells)), flush=True)


if __name__ == "__main__":
    main()
