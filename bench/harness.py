#!/usr/bin/python3
"""harness.py -- the driver behind bench/run: marginflow against PyTorch and
against the machine's own DGEMM rate (issue 5).

For every workload in WORKLOADS:
  1. bench/mfexport writes the data set, the parameter layout and the initial
     parameters (fan-in scaled Gaussian, fixed seed) to a folder; marginflow
     gets them through --data SPEC --init-file, PyTorch (bench/torch_train.py)
     through the files, so both train the same problem in float64.
  2. check: both run K_CHECK full-batch GD steps on the sum loss (marginflow
     --optimizer gd); the losses must agree to 1e-9 relative.
  3. calibrate the step counts so one timed run lasts about TARGET_S seconds,
     then REPS repetitions, alternating which side runs first. marginflow's
     rate is summary.json's steps_per_second (the step loop only; metrics at
     --log-points 20 rows, --checkpoint-every 0); PyTorch's is the timed loop
     after a warm-up. Peak RSS of each process comes from wait4().
DGEMM rate: bench/dgemm_peak (OpenBLAS, same thread count), run before and
after the workloads. Writes bench/results.md and bench/steps.png.

To add a workload: append a dict to WORKLOADS; torch_train.py must know how
to build the model from layout.txt.

The CNN epoch workload (issue 14; ONLY=cnn runs it alone, CNN_N / CNN_EPOCHS
resize it; report: bench/results-cnn.md): cnn:mnist on a class-balanced
subset of CNN_N (10000) Fashion-MNIST images, mini-batch SGD (batch 100,
batch-mean cross-entropy, lr 0.01, float64) by epochs. One epoch = an SGD pass
and the full-data loss evaluation, on both sides (marginflow's metrics.csv
epoch_seconds; PyTorch's timed loop, bench/torch_train.py --mode cnn-time).
Check: one epoch on a 300-image subset in the same order (mfexport's
perm.bin = mf_epoch_permutation), then the mean loss on both sides.
"""
import csv as csvmod
import json
import math
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = os.environ.get("BENCH_BUILD", os.path.join(ROOT, "build", "bench"))
MF = os.path.join(BUILD, "marginflow")
EXPORT = os.path.join(BUILD, "mfexport")
PEAK = os.path.join(BUILD, "dgemm_peak")
PY = "/usr/bin/python3"
TORCH = os.path.join(ROOT, "bench", "torch_train.py")
OUTMD = os.environ.get("BENCH_MD", os.path.join(ROOT, "bench", "results.md"))
OUTPNG = os.environ.get("BENCH_PNG", os.path.join(ROOT, "bench", "steps.png"))
THREADS = int(os.environ.get("THREADS", "1"))
REPS = int(os.environ.get("REPS", "5"))
TARGET_S = float(os.environ.get("TARGET_S", "1.0"))
K_CHECK = 10
WORK = os.path.join(BUILD, "work")

# name, data, model, loss, lr (GD on the sum loss), target ratio, and whether
# the DGEMM-fraction target applies.
WORKLOADS = [
    dict(name="tiny", data="builtin:sym4", model="relu2:width=20,alpha=0.5", loss="exp",
         lr=0.01, target=50.0),
    dict(name="small", data="gauss:n=100,d=20", model="relu2:width=100", loss="exp",
         lr=1e-3, target=10.0),
    dict(name="medium", data="gauss:n=1000,d=100", model="relu2:width=1000", loss="exp",
         lr=1e-6, target=1.5),
    dict(name="large", data="gauss:n=4096,d=256", model="mlp:widths=1024,1024", loss="exp",
         lr=1e-7, target=1.0, peak_target=0.60),
    dict(name="diag3", data="gauss:n=200,d=50", model="diag:depth=3", loss="exp",
         lr=1e-3, target=None),
    dict(name="fclin3", data="gauss:n=200,d=50", model="fc-linear:depth=3,width=50", loss="exp",
         lr=1e-4, target=None),
]
ENV = dict(os.environ, OPENBLAS_NUM_THREADS=str(THREADS), OMP_NUM_THREADS=str(THREADS),
           LC_ALL="C")


def run(cmd):
    """Run cmd; return (stdout, peak RSS in KiB, wall seconds)."""
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=ENV)
    out = p.stdout.read()
    err = p.stderr.read()
    _, status, ru = os.wait4(p.pid, 0)
    p.returncode = os.waitstatus_to_exitcode(status)
    el = time.perf_counter() - t0
    if p.returncode != 0:
        sys.exit("bench: %s failed (%d): %s" % (" ".join(cmd), p.returncode, err.decode()))
    return out.decode(), ru.ru_maxrss, el


def layout(d):
    lines = open(os.path.join(d, "layout.txt")).read().split("\n")
    return lines[0], [tuple(int(v) for v in l.split()[1:]) for l in lines[1:] if l.strip()]


def flops_per_step(spec, layers, n, d):
    """Forward + backward multiply-adds x 2 of one full-batch step."""
    kind = spec.split(":")[0]
    if kind == "diag":
        return 4.0 * n * d + 4.0 * len(layers) * d
    rc = [r * c for (_, r, c) in layers]
    return 2.0 * n * sum(rc) + 2.0 * n * sum(rc) + 2.0 * n * sum(rc[1:])


def mf_train(w, wd, loss, opt, lr, steps, log_points):
    """One `marginflow train` of workload w from wd/init.txt into a fresh wd/mfrun, without
    checkpoints; returns (run dir, peak RSS in KiB, wall seconds)."""
    rd = os.path.join(wd, "mfrun")
    shutil.rmtree(rd, ignore_errors=True)
    _, rss, el = run([MF, "train", "-q", "--data", w["data"], "--model", w["model"],
                      "--init-file", os.path.join(wd, "init.txt"), "--loss", loss, "--optimizer",
                      opt, "--lr", repr(lr), "--steps", str(steps), "--log-points",
                      str(log_points), "--checkpoint-every", "0", "--out", rd])
    return rd, rss, el


def mf_run(w, wd, steps):
    rd, rss, _ = mf_train(w, wd, w["loss"], "gd", w["lr"], steps, 20)
    s = json.load(open(os.path.join(rd, "summary.json")))
    if s["outcome"] != "step-budget":
        sys.exit("bench: marginflow %s ended %s" % (w["name"], s["outcome"]))
    return s, rss


def pt_run(w, wd, steps, mode):
    out, rss, _ = run([PY, TORCH, "--dir", wd, "--loss", w["loss"], "--lr", repr(w["lr"]),
                       "--steps", str(steps), "--threads", str(THREADS), "--mode", mode])
    return json.loads(out), rss


def peak():
    out, _, _ = run([PEAK, "2048", "5"])
    f = out.split()
    return float(f[3]), float(f[5])


def med(v):
    return statistics.median(v)


def bench_workload(w):
    wd = os.path.join(WORK, w["name"])
    os.makedirs(wd, exist_ok=True)
    run([EXPORT, w["data"], w["model"], "1", "1", wd])
    spec, layers = layout(wd)
    n = sum(1 for _ in open(os.path.join(wd, "data.csv")))
    d = len(open(os.path.join(wd, "data.csv")).readline().split(",")) - 1
    fl = flops_per_step(spec, layers, n, d)
    # check: same loss after K_CHECK steps
    s, _ = mf_run(w, wd, K_CHECK)
    mf_loss = 10.0 ** s["final"]["log10_loss"]
    p, _ = pt_run(w, wd, K_CHECK, "check")
    rel = abs(mf_loss - p["loss"]) / abs(p["loss"])
    # calibrate
    cal = 3 if fl > 1e9 else 20 if fl > 1e8 else 2000
    s, _ = mf_run(w, wd, cal)
    mf_steps = max(3, int(s["steps_per_second"] * TARGET_S))
    p, _ = pt_run(w, wd, 3 if fl > 1e9 else 20 if fl > 1e8 else 200, "time")
    pt_steps = max(3, int(p["steps_per_second"] * TARGET_S))
    mf_r, pt_r, mf_rss, pt_rss = [], [], [], []
    for rep in range(REPS):
        for side in (("mf", "pt") if rep % 2 == 0 else ("pt", "mf")):
            if side == "mf":
                s, rss = mf_run(w, wd, mf_steps)
                mf_r.append(s["steps_per_second"])
                mf_rss.append(rss)
            else:
                p, rss = pt_run(w, wd, pt_steps, "time")
                pt_r.append(p["steps_per_second"])
                pt_rss.append(rss)
    return dict(w, spec=spec, n=n, d=d, flops=fl, check_rel=rel, mf_loss=mf_loss,
                pt_loss=p.get("loss"), mf=mf_r, pt=pt_r, mf_steps=mf_steps, pt_steps=pt_steps,
                mf_rss=max(mf_rss), pt_rss=max(pt_rss), torch=p["torch"])


def first_step(rd, gstar, rel):
    """First logged step of run dir rd whose normalized margin is within rel
    (relative) of gstar, or None; and the last logged margin."""
    rows = open(os.path.join(rd, "metrics.csv")).read().split("\n")
    hdr = rows[0].split(",")
    ig, ist = hdr.index("normalized_margin"), hdr.index("step")
    last = None
    for r in rows[1:]:
        f = r.split(",")
        if len(f) > ig and f[ig]:
            last = float(f[ig])
            if abs(last / gstar - 1) <= rel:
                return int(f[ist]), last
    return None, last


def time_to_margin():
    """Workload 6: wall time until the normalized margin of tiny (init sigma
    1e-6, [LLWA21] setting of docs/theory.md sec. 4) is within 1e-3 of
    gamma* = 0.41926, and (issue 11) within 1e-6 relative of
    gamma* = 0.41926274578 (flow, lyu-li)."""
    gstar = 0.41926274578121064
    w = dict(WORKLOADS[0])
    wd = os.path.join(WORK, "margin")
    os.makedirs(wd, exist_ok=True)
    run([EXPORT, w["data"], w["model"], "1", "1e-6", wd])
    res = []
    for opt, lr, rel in (("lyu-li", 0.1, 1e-3 / gstar), ("flow", 0.1, 1e-3 / gstar), ("gd", 0.02, 1e-3 / gstar),
                         ("flow", 0.1, 1e-6), ("lyu-li", 0.1, 1e-6)):
        steps, found = 1000, None
        while found is None and steps <= 10 ** 8:
            rd, _, el = mf_train(w, wd, "exp", opt, lr, steps, 2000)
            found, last = first_step(rd, gstar, rel)
            if found is None:
                if el > 5 or steps >= 10 ** 7:
                    break
                steps *= 10
        label = "marginflow %s%s" % (opt, " (1e-6 relative)" if rel == 1e-6 else "")
        if found is None:
            res.append((label, lr, None, el, last))
            continue
        rd, _, _ = mf_train(w, wd, "exp", opt, lr, found, 20)
        s = json.load(open(os.path.join(rd, "summary.json")))
        res.append((label, lr, found, s["wall_seconds"], s["final"]["normalized_margin"]))
    if os.environ.get("TTM_ONLY"):
        return res
    out, _, _ = run([PY, TORCH, "--dir", wd, "--loss", "exp", "--lr", "0.02", "--threads",
                     str(THREADS), "--mode", "margin", "--target", repr(0.41926), "--wall", "20"])
    p = json.loads(out)
    res.append(("PyTorch gd", 0.02, p["steps"] if p["reached"] else None, p["seconds"],
                p["normalized_margin"]))
    return res


def margin_200():
    """Issue 11: a 200-point set (gauss:n=200,d=10, relu2:width=10, the
    issue's case), exp loss, until log10 Loss -100: steps, wall time and the
    normalized margin's error against flow at --tol 1e-7 (10x the default
    accuracy; on this kink-heavy set flow's error is about proportional to
    tol, bench/notes.md) at the same loss."""
    w = dict(name="n200", data="gauss:n=200,d=10", model="relu2:width=10")
    wd = os.path.join(WORK, "n200")
    os.makedirs(wd, exist_ok=True)
    run([EXPORT, w["data"], w["model"], "1", "1", wd])

    def train(opt, lr, tol, log_points, target=-100):
        rd = os.path.join(wd, "mfrun")
        shutil.rmtree(rd, ignore_errors=True)
        run([MF, "train", "-q", "--data", w["data"], "--model", w["model"], "--init-file",
             os.path.join(wd, "init.txt"), "--optimizer", opt, "--lr", repr(lr), "--tol", repr(tol),
             "--steps", "0", "--until-log10-loss", repr(target), "--wall-seconds", "600",
             "--log-points", str(log_points), "--log-horizon", "1000000", "--checkpoint-every", "0",
             "--out", rd])
        return rd, json.load(open(os.path.join(rd, "summary.json")))

    rd, s = train("flow", 0.1, 1e-7, 6000000, -100 * 1.2)
    rows = list(csvmod.DictReader(open(os.path.join(rd, "metrics.csv"))))
    L = [float(r["log10_loss"]) for r in rows]
    G = [float(r["normalized_margin"]) for r in rows]

    def ref(l):
        for i in range(1, len(L)):
            if L[i] <= l < L[i - 1] and L[i - 1] < 0:
                u = (math.log(-l) - math.log(-L[i - 1])) / (math.log(-L[i]) - math.log(-L[i - 1]))
                return G[i - 1] + u * (G[i] - G[i - 1])
        return None
    res = []
    for opt, lr in (("flow", 0.1), ("lyu-li", 0.1), ("scaled", 0.1)):
        rd, s = train(opt, lr, 1e-6, 20)
        l, g = s["final"]["log10_loss"], s["final"]["normalized_margin"]
        gr = ref(l) if s["outcome"] == "loss-target" else None
        res.append(("marginflow " + opt, lr, s["steps"], s["wall_seconds"], g,
                    abs(g - gr) / gr if gr else None, s["outcome"]))
    return res


CNN = dict(name="cnn-mnist", data="fashion-mnist", model="cnn:mnist",
           n=int(os.environ.get("CNN_N", "10000")), epochs=int(os.environ.get("CNN_EPOCHS", "3")),
           lr=0.01, batch=100, target=1.0)


def cnn_macs(spec):
    """Forward multiply-adds per image, by layer, of a marginflow cnn spec."""
    opts = dict(kv.split("=", 1) for kv in spec.split(":", 1)[1].split(",") if "=" in kv)
    c, h, w = (int(v) for v in opts["input"].split("x"))
    macs = []
    for t in spec.split("layers=", 1)[1].split(","):
        if t[0] == "p":
            h, w = h // int(t[1:]), w // int(t[1:])
        elif t[0] == "c":
            co, k = (int(v) for v in t[1:].split("k"))
            macs.append(co * c * k * k * h * w)
            c = co
        elif t[0] == "f":
            macs.append(int(t[1:]) * c * h * w)
            c, h, w = int(t[1:]), 1, 1
    return macs


def cnn_epoch_flops(spec, n):
    """FLOP of one epoch: per image a training step (forward, dW, dX but for the first
    layer) and the evaluation forward pass; 2 FLOP a multiply-add."""
    m = cnn_macs(spec)
    return 2.0 * n * (3 * sum(m) - m[0] + sum(m))


def mf_cnn(wd, n, epochs, seed=1):
    rd = os.path.join(wd, "mfrun")
    shutil.rmtree(rd, ignore_errors=True)
    _, rss, _ = run([MF, "train", "-q", "--data", CNN["data"], "--train-limit", str(n), "--model",
                     CNN["model"], "--init-file", os.path.join(wd, "init.txt"), "--loss", "ce",
                     "--optimizer", "sgd", "--lr", repr(CNN["lr"]), "--batch", str(CNN["batch"]),
                     "--epochs", str(epochs), "--seed", str(seed), "--checkpoint-every", "0",
                     "--archive-decades", "0", "--out", rd])
    rows = open(os.path.join(rd, "metrics.csv")).read().split("\n")
    hdr = rows[0].split(",")
    ie, ilm = hdr.index("epoch_seconds"), hdr.index("log10_mean_loss")
    body = [r.split(",") for r in rows[1:] if r]
    return [float(r[ie]) for r in body[1:]], 10.0 ** float(body[-1][ilm]), rss


def pt_cnn(wd, mode, epochs=1):
    out, rss, _ = run([PY, TORCH, "--dir", wd, "--mode", mode, "--lr", repr(CNN["lr"]), "--batch",
                       str(CNN["batch"]), "--epochs", str(epochs), "--threads", str(THREADS)])
    return json.loads(out), rss


def bench_cnn():
    """The CNN epoch workload (module docstring)."""
    w = dict(CNN)
    wd, wc = os.path.join(WORK, "cnn"), os.path.join(WORK, "cnn-check")
    for d, n in ((wd, w["n"]), (wc, 300)):
        os.makedirs(d, exist_ok=True)
        run([EXPORT, w["data"], w["model"], "1", repr(math.sqrt(2.0)), d, str(n)])  # He init
    spec = open(os.path.join(wd, "layout.txt")).readline().strip()
    _, mf_loss, _ = mf_cnn(wc, 300, 1)
    p, _ = pt_cnn(wc, "cnn-check")
    pt_loss = p["mean_loss"]
    rel = abs(mf_loss - pt_loss) / abs(pt_loss)
    mf_s, pt_s, mf_rss, pt_rss = [], [], [], []
    for rep in range(REPS):
        for side in (("mf", "pt") if rep % 2 == 0 else ("pt", "mf")):
            if side == "mf":
                secs, _, rss = mf_cnn(wd, w["n"], w["epochs"])
                mf_s += secs
                mf_rss.append(rss)
            else:
                p, rss = pt_cnn(wd, "cnn-time", w["epochs"])
                pt_s += p["epoch_seconds"][1:] if len(p["epoch_seconds"]) > 1 else p["epoch_seconds"]
                pt_rss.append(rss)
    return dict(w, spec=spec, flops=cnn_epoch_flops(spec, w["n"]), check_rel=rel, mf_loss=mf_loss,
                pt_loss=pt_loss, mf=mf_s, pt=pt_s, mf_rss=max(mf_rss), pt_rss=max(pt_rss),
                torch=p["torch"])


def cnn_report(r, pk, load0, load1, cpu):
    m, t = med(r["mf"]), med(r["pt"])
    g = r["flops"] / m * 1e-9
    L = ["# marginflow vs PyTorch: the CNN epoch workload (issue 14)\n",
         "Generated by `ONLY=cnn bench/run` (bench/harness.py); %s, %d thread(s); load average "
         "%.2f at start, %.2f at end (a shared machine makes single numbers noisy: medians of "
         "%d runs x %d epochs a side, alternating).\n" % (cpu, THREADS, load0[0], load1[0], REPS,
                                                          r["epochs"]),
         "| quantity | marginflow | PyTorch %s |" % r["torch"], "|---|---|---|",
         "| model | `%s` (%d weight layers) | the same net (torch.nn, float64) |" % (
             r["spec"], len(cnn_macs(r["spec"]))),
         "| seconds per epoch (median; %d images, batch %d, SGD + full-data loss) | %.3f | %.3f |" % (
             r["n"], r["batch"], m, t),
         "| ratio (PyTorch s / marginflow s; target >= %.1f) | %.3f (%s) | |" % (
             r["target"], t / m, "met" if t / m >= r["target"] else "NOT met"),
         "| GFLOP/s (%.4g GFLOP an epoch) | %.2f (%.0f%% of DGEMM %.1f GFLOP/s) | %.2f |" % (
             r["flops"] * 1e-9, g, 100 * g / pk, pk, r["flops"] / t * 1e-9),
         "| peak RSS (MiB) | %.0f | %.0f |" % (r["mf_rss"] / 1024, r["pt_rss"] / 1024),
         "| loss check: mean loss after 1 epoch on 300 images, same order | %.17g | %.17g (rel. diff %.2e) |" % (
             r["mf_loss"], r["pt_loss"] if r["pt_loss"] is not None else float("nan"), r["check_rel"]),
         "\nEpoch seconds, marginflow: %s; PyTorch: %s.\n" % (
             " ".join("%.3f" % v for v in r["mf"]), " ".join("%.3f" % v for v in r["pt"]))]
    open(os.path.join(ROOT, "bench", "results-cnn.md"), "w").write("\n".join(L) + "\n")
    print("\n".join(L))


def fmt(v):
    return "%.3g" % v if v < 1000 else "%.0f" % v


def main():
    os.makedirs(WORK, exist_ok=True)
    cpu = "?"
    for l in open("/proc/cpuinfo"):
        if l.startswith("model name"):
            cpu = l.split(":", 1)[1].strip()
            break
    flags = open("/proc/cpuinfo").read()
    isa = "AVX-512" if " avx512f" in flags else ("AVX2" if " avx2" in flags else "SSE")
    mfver = run([MF, "--version"])[0].strip()
    blas = os.path.realpath("/usr/lib/x86_64-linux-gnu/libopenblas.so.0")
    gcc = subprocess.run(["gcc", "--version"], capture_output=True, text=True).stdout.split("\n")[0]
    raw = os.path.join(WORK, "raw.json")
    if os.environ.get("TTM_ONLY"):  # only the time-to-margin rows (issue 11), printed
        for name, lr, st, sec, g in time_to_margin():
            print("| %s | %g | %s | %.3g | %.9f |" % (name, lr, st if st else "not reached", sec, g))
        for name, lr, st, sec, g, err, outc in margin_200():
            print("| %s | %g | %d (%s) | %.3g | %.6f | %s |" % (name, lr, st, outc, sec, g,
                                                             "%.1e" % err if err is not None else "-"))
        return
    only = os.environ.get("ONLY", "").split(",")
    if "cnn" in only or not os.environ.get("ONLY"):
        l0 = os.getloadavg()
        pkc = peak()
        print("bench: cnn-mnist (%d images, %d epochs x %d runs a side) ..." % (
            CNN["n"], CNN["epochs"], REPS), file=sys.stderr, flush=True)
        rc = bench_cnn()
        cnn_report(rc, max(pkc[0], peak()[0]), l0, os.getloadavg(), cpu)
        if os.environ.get("ONLY"):
            return
    if os.environ.get("REPORT_ONLY"):  # re-format the last run's numbers
        r = json.load(open(raw))
        results, ttm, pk0, pk1, load0, load1 = (r["results"], r["ttm"], r["pk0"], r["pk1"],
                                                r["load0"], r["load1"])
        m200 = r.get("m200", [])
    else:
        load0 = os.getloadavg()
        pk0 = peak()
        results = []
        for w in WORKLOADS:
            sel = os.environ.get("ONLY")
            if sel and w["name"] not in sel.split(","):
                continue
            print("bench: %s ..." % w["name"], file=sys.stderr, flush=True)
            results.append(bench_workload(w))
        pk1 = peak()
        ttm = time_to_margin() if not os.environ.get("ONLY") else []
        m200 = margin_200() if not os.environ.get("ONLY") else []
        load1 = os.getloadavg()

        json.dump(dict(results=results, ttm=ttm, m200=m200, pk0=pk0, pk1=pk1, load0=load0,
                       load1=load1), open(raw, "w"))
    pk = max(pk0[0], pk1[0])  # the machine's rate: the better of the two measurements

    L = []
    L.append("# marginflow vs PyTorch: benchmark results (issue 5)\n")
    L.append("Generated by `bench/run` on %s.\n" % time.strftime("%Y-%m-%d %H:%M %Z"))
    L.append("| | |\n|---|---|")
    L.append("| CPU | %s (%d cores visible, %s) |" % (cpu, os.cpu_count(), isa))
    L.append("| threads | %d (OPENBLAS_NUM_THREADS, torch.set_num_threads) |" % THREADS)
    L.append("| marginflow | %s, built -O3 -march=native (no -ffast-math) |" % mfver)
    L.append("| PyTorch | %s (Debian python3-torch), %s |" % (
        results[0]["torch"] if results else "?", platform.python_version()))
    L.append("| BLAS | OpenBLAS (%s), used by both sides |" % os.path.basename(blas))
    L.append("| compiler | %s |" % gcc)
    L.append("| DGEMM rate | %.1f GFLOP/s (2048^3, %d thread(s); median of 5 trials %.1f before, "
             "%.1f after the workloads, the better one is the reference; best trial %.1f) |" % (pk, THREADS, pk0[0], pk1[0], max(pk0[1], pk1[1])))
    L.append("| load average | %.2f at start, %.2f at end (shared machine) |" % (load0[0],
                                                                                 load1[0]))
    L.append("| repetitions | %d per side, alternating which side runs first; medians |\n" % REPS)
    L.append("| workload | model on data | FLOP/step | marginflow steps/s | PyTorch steps/s "
             "| ratio | target | met | mf GFLOP/s | %% of DGEMM | RSS mf / torch (MiB) | "
             "loss check (rel. diff after %d steps) |" % K_CHECK)
    L.append("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in results:
        m, p = med(r["mf"]), med(r["pt"])
        ratio = m / p
        g = r["flops"] * m * 1e-9
        met = "-"
        if r["target"]:
            ok = ratio >= r["target"]
            if r.get("peak_target"):
                ok = ok and g / pk >= r["peak_target"]
            met = "yes" if ok else "**no**"
        tgt = ("%gx" % r["target"]) if r["target"] else "-"
        if r.get("peak_target"):
            tgt += ", %d%% DGEMM" % (100 * r["peak_target"])
        L.append("| %s | `%s` on `%s` (n=%d, d=%d) | %.3g | %s (%s-%s) | %s (%s-%s) | %.2fx | %s | "
                 "%s | %.2f | %.1f%% | %.0f / %.0f | %.1e %s |" % (
                     r["name"], r["spec"], r["data"], r["n"], r["d"], r["flops"], fmt(m),
                     fmt(min(r["mf"])), fmt(max(r["mf"])), fmt(p), fmt(min(r["pt"])),
                     fmt(max(r["pt"])), ratio, tgt, met, g, 100 * g / pk, r["mf_rss"] / 1024,
                     r["pt_rss"] / 1024, r["check_rel"], "ok" if r["check_rel"] <= 1e-9 else
                     "**FAIL**"))
    L.append("")
    L.append("Ratios: marginflow steps/s / PyTorch steps/s, medians of the same run. FLOP/step "
             "counts forward + backward (2 per multiply-add; no input gradient) of the dense "
             "products; marginflow's relu2 backward from 64 units on uses subset-sum tables "
             "(src/models.c relu2_table_dw), which need fewer operations, so its GFLOP/s is an "
             "effective rate and may exceed the DGEMM reference. Both sides: "
             "float64, full-batch GD on the sum loss (%s), same data, same initial parameters "
             "(bench/mfexport), same threads. Timed runs: marginflow %s steps, PyTorch %s steps "
             "per repetition (about %.1f s each). PyTorch's RSS includes the Python interpreter "
             "and libtorch." % (", ".join(sorted({r["loss"] for r in results})),
                                "/".join(str(r["mf_steps"]) for r in results),
                                "/".join(str(r["pt_steps"]) for r in results), TARGET_S))
    if ttm:
        L.append("\n## Time to margin (workload 6)\n")
        L.append("tiny (`relu2:width=20,alpha=0.5` on sym4, exp loss), initial parameters "
                 "N(0, 1e-12/fan-in); limit gamma* = 0.41926 (docs/theory.md sec. 4); reached when "
                 "|gamma - gamma*| <= 1e-3. marginflow: first logged step (2000 log-spaced rows) "
                 "meeting it, then the wall time of a run of exactly that many steps.\n")
        L.append("| run | step size | steps | wall s | normalized margin |")
        L.append("|---|---|---|---|---|")
        for name, lr, st, sec, g in ttm:
            L.append("| %s | %g | %s | %.3g | %.5f |" % (name, lr, st if st else "not reached",
                                                      sec, g))
    if m200:
        L.append("\n## 200-point set to log10 Loss -100 (issue 11)\n")
        L.append("`relu2:width=10` on `gauss:n=200,d=10`, exp loss, fan-in scaled init; margin error "
                 "against flow at --tol 1e-7 at the same loss.\n")
        L.append("| run | step size | steps | wall s | normalized margin | margin error |")
        L.append("|---|---|---|---|---|---|")
        for name, lr, st, sec, g, err, outc in m200:
            L.append("| %s | %g | %d (%s) | %.3g | %.6f | %s |" % (
                name, lr, st, outc, sec, g, "%.1e" % err if err is not None else "-"))
    L.append("\n![steps/s vs FLOP per step](steps.png)\n")
    notes = os.path.join(ROOT, "bench", "notes.md")
    if os.path.exists(notes):
        L.append(open(notes).read())
    open(OUTMD, "w").write("\n".join(L) + "\n")

    dat = os.path.join(WORK, "plot.dat")
    with open(dat, "w") as f:
        for r in sorted(results, key=lambda r: r["flops"]):
            f.write("%g %g %g %s\n" % (r["flops"], med(r["mf"]), med(r["pt"]), r["name"]))
    gp = """set terminal pngcairo size 900,600
set output '%s'
set logscale xy
set xlabel 'FLOP per step (forward + backward)'
set ylabel 'steps per second (median)'
set title 'full-batch GD, float64, %d thread(s): marginflow vs PyTorch'
set grid
set key top right
plot '%s' using 1:2 with linespoints pt 7 title 'marginflow', \\
     '%s' using 1:3 with linespoints pt 5 title 'PyTorch', \\
     '%s' using 1:2:4 with labels offset 0,1 notitle
""" % (OUTPNG, THREADS, dat, dat, dat)
    if shutil.which("gnuplot"):
        subprocess.run(["gnuplot"], input=gp, text=True, check=False)
    print("\n".join(L))


if __name__ == "__main__":
    main()
