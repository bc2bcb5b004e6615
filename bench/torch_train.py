#!/usr/bin/python3
"""torch_train.py -- the PyTorch side of bench/run.

Trains, in float64 with full-batch gradient descent on the SUM loss, exactly
the problem marginflow trains with `--optimizer gd`: the data set, parameter
layout and initial parameters come from bench/mfexport (data.csv, layout.txt,
init.txt in --dir). The script is what a careful PyTorch user writes: one leaf
tensor per parameter group (nn.Linear without bias), autograd, and the update
p -= lr * p.grad under no_grad (identical to torch.optim.SGD without momentum,
minus its per-step Python overhead).

Models (the spec on line 1 of layout.txt):
  linear, fc-linear   Phi = W_K ... W_1 x
  mlp                 Phi = W_{K+1} sigma(W_K ... sigma(W_1 x))
  relu2               Phi = sum_k a_k sigma(<w_k, x>)  (no bias, no fix-outer)
  diag                Phi = <w_1 o ... o w_K, x>
sigma = leaky_relu(alpha); PyTorch's derivative at 0 is alpha, as marginflow's.
Losses on q_n = y_n Phi(x_n): exp sum_n e^{-q_n}, logistic sum_n softplus(-q_n).

  cnn                 the marginflow cnn family (spec "cnn:input=CxHxW,layers=..."):
                      Conv2d(padding='same', no bias), MaxPool2d, Linear (no bias), ReLU
                      after every weight layer but the last; NCHW flattening; the
                      epoch workloads below (x.bin / y.bin / perm.bin from mfexport LIMIT)

Modes:
  --mode check  --steps K  prints the loss after K steps (JSON)
  --mode cnn-check         one epoch of mini-batch SGD (--batch, batch MEAN cross-entropy,
                           --lr) in the order of perm.bin, then the full-data mean loss
  --mode cnn-time --epochs E  E timed epochs (random order; each an SGD pass and the
                           full-data loss evaluation, as a marginflow epoch), seconds each
  --mode time   --steps N  warms up, times N steps, prints steps/s (JSON)
  --mode margin --target G --wall S  GD until the normalized margin
                q_min / ||theta||^L is within 1e-3 of G, or S seconds
"""
import argparse
import json
import resource
import sys
import time

import torch


def load(d):
    rows = [list(map(float, l.split(","))) for l in open(d + "/data.csv")]
    y = torch.tensor([r[0] for r in rows], dtype=torch.float64)
    x = torch.tensor([r[1:] for r in rows], dtype=torch.float64)
    lines = open(d + "/layout.txt").read().split("\n")
    spec = lines[0]
    layers = []
    for l in lines[1:]:
        if l.strip():
            name, off, r, c = l.split()
            layers.append((name, int(off), int(r), int(c)))
    theta = [float(t) for t in open(d + "/init.txt").read().split("\n")[1:] if t.strip()]
    theta = torch.tensor(theta, dtype=torch.float64)
    return spec, layers, theta, x, y


def build(spec, layers, theta):
    kind = spec.split(":")[0]
    alpha = 0.0
    for tok in spec.split(":")[1:2][0].split(",") if ":" in spec else []:
        if tok.startswith("alpha="):
            alpha = float(tok[6:])
        if tok in ("bias", "fix-outer"):
            sys.exit("torch_train.py: relu2 bias/fix-outer not supported")
    params = [theta[o:o + r * c].reshape(r, c).clone().requires_grad_(True)
              for (_, o, r, c) in layers]
    if kind in ("linear", "fc-linear", "mlp", "relu2"):
        act = kind in ("mlp", "relu2")

        def fwd(x):
            h = x
            for i, W in enumerate(params):
                h = h @ W.t()
                if act and i + 1 < len(params):
                    h = torch.nn.functional.leaky_relu(h, alpha) if alpha else torch.relu(h)
            return h[:, 0]
    elif kind == "diag":
        def fwd(x):
            p = params[0][0]
            for w in params[1:]:
                p = p * w[0]
            return x @ p
    else:
        sys.exit("torch_train.py: model %s not supported" % kind)
    degree = {"linear": 1, "fc-linear": len(params), "mlp": len(params), "relu2": 2,
              "diag": len(params)}[kind]
    return params, fwd, degree


def cnn_build(spec, layers, theta):
    """The cnn of spec as a torch.nn.Sequential in float64 with theta's weights."""
    opts = dict(kv.split("=", 1) for kv in spec.split(":", 1)[1].split(",") if "=" in kv)
    toks = spec.split("layers=", 1)[1].split(",")
    if any(t in ("bias", "bias1") for t in toks):
        sys.exit("torch_train.py: cnn biases not supported")
    c, h, w = (int(v) for v in opts["input"].split("x"))
    mods, g, nweights = [], 0, sum(1 for t in toks if t[0] in "cf")
    flat = False
    for t in toks:
        if t[0] == "p":
            p = int(t[1:])
            mods.append(torch.nn.MaxPool2d(p))
            h, w = h // p, w // p
            continue
        _, off, r, cols = layers[g]
        W = theta[off:off + r * cols].reshape(r, cols)
        if t[0] == "c":
            co, k = (int(v) for v in t[1:].split("k"))
            conv = torch.nn.Conv2d(c, co, k, padding="same", bias=False)
            conv.weight.data = W.reshape(co, c, k, k).clone()
            mods.append(conv)
            c = co
        else:
            if not flat:
                mods.append(torch.nn.Flatten())
                flat = True
            lin = torch.nn.Linear(cols, r, bias=False)
            lin.weight.data = W.clone()
            mods.append(lin)
            c, h, w = r, 1, 1
        g += 1
        if g < nweights:
            mods.append(torch.nn.ReLU())
    return torch.nn.Sequential(*mods), opts


def cnn_main(a):
    torch.set_num_threads(a.threads)
    torch.set_default_dtype(torch.float64)
    lines = open(a.dir + "/layout.txt").read().split("\n")
    spec = lines[0]
    layers = [(l.split()[0],) + tuple(int(v) for v in l.split()[1:]) for l in lines[1:] if l.strip()]
    theta = torch.tensor([float(t) for t in open(a.dir + "/init.txt").read().split("\n")[1:]
                          if t.strip()], dtype=torch.float64)
    net, opts = cnn_build(spec, layers, theta)
    c, h, w = (int(v) for v in opts["input"].split("x"))
    x = torch.frombuffer(bytearray(open(a.dir + "/x.bin", "rb").read()), dtype=torch.float64)
    y = torch.frombuffer(bytearray(open(a.dir + "/y.bin", "rb").read()), dtype=torch.int32).long()
    perm = torch.frombuffer(bytearray(open(a.dir + "/perm.bin", "rb").read()), dtype=torch.int32).long()
    n = y.numel()
    x = x.reshape(n, c, h, w)
    params = list(net.parameters())
    lossf = torch.nn.functional.cross_entropy

    def epoch(order):
        for s in range(0, n, a.batch):
            idx = order[s:s + a.batch]
            loss = lossf(net(x[idx]), y[idx])
            loss.backward()
            with torch.no_grad():
                for p in params:
                    p.add_(p.grad, alpha=-a.lr)
                    p.grad = None
        with torch.no_grad():  # the full-data loss, in batches (as marginflow evaluates)
            tot = 0.0
            for s in range(0, n, a.batch):
                tot += lossf(net(x[s:s + a.batch]), y[s:s + a.batch], reduction="sum").item()
        return tot / n

    res = {"torch": torch.__version__, "threads": torch.get_num_threads(), "spec": spec, "n": n}
    if a.mode == "cnn-check":
        res["mean_loss"] = epoch(perm)
    else:
        secs = []
        g = torch.Generator().manual_seed(1)
        for _ in range(a.epochs):
            t0 = time.perf_counter()
            epoch(torch.randperm(n, generator=g))
            secs.append(time.perf_counter() - t0)
        res["epoch_seconds"] = secs
    res["maxrss_kb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps(res))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dir", required=True)
    ap.add_argument("--loss", default="exp", choices=["exp", "logistic"])
    ap.add_argument("--lr", type=float, required=True)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--mode", default="check",
                    choices=["check", "time", "margin", "cnn-check", "cnn-time"])
    ap.add_argument("--batch", type=int, default=100)
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--target", type=float, default=0.0)
    ap.add_argument("--wall", type=float, default=60.0)
    a = ap.parse_args()
    if a.mode.startswith("cnn"):
        return cnn_main(a)
    torch.set_num_threads(a.threads)
    spec, layers, theta, x, y = load(a.dir)
    params, fwd, degree = build(spec, layers, theta)
    lr = a.lr

    if a.loss == "exp":
        def lossf(q):
            return torch.exp(-q).sum()
    else:
        def lossf(q):
            return torch.nn.functional.softplus(-q).sum()

    def step():
        loss = lossf(y * fwd(x))
        loss.backward()
        with torch.no_grad():
            for p in params:
                p.add_(p.grad, alpha=-lr)
                p.grad = None

    res = {"torch": torch.__version__, "threads": torch.get_num_threads(), "spec": spec}
    if a.mode == "check":
        for _ in range(a.steps):
            step()
        with torch.no_grad():
            res["loss"] = lossf(y * fwd(x)).item()
        res["steps"] = a.steps
    elif a.mode == "time":
        for _ in range(max(1, min(50, a.steps // 10))):
            step()
        t0 = time.perf_counter()
        for _ in range(a.steps):
            step()
        el = time.perf_counter() - t0
        res["steps"] = a.steps
        res["seconds"] = el
        res["steps_per_second"] = a.steps / el
    else:
        t0 = time.perf_counter()
        k = 0
        gamma = 0.0
        every = 100
        while True:
            for _ in range(every):
                step()
            k += every
            with torch.no_grad():
                q = (y * fwd(x)).min().item()
                nrm = torch.sqrt(sum((p * p).sum() for p in params)).item()
                gamma = q / nrm ** degree
            el = time.perf_counter() - t0
            if abs(gamma - a.target) <= 1e-3 or el >= a.wall:
                break
        res.update({"steps": k, "seconds": el, "normalized_margin": gamma,
                    "reached": abs(gamma - a.target) <= 1e-3})
    res["maxrss_kb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps(res))


if __name__ == "__main__":
    main()
