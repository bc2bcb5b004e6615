"""Case B of docs/theory.md (section 4) and the sym4 margin of Lyu, Li, Wang &
Arora (2021), from Python. Run from the source tree after `make shared`:
    PYTHONPATH=python python3 python/examples/margins.py
"""
import numpy as np
import marginflow as mf

# Case B: a depth-2 diagonal net <u o v, x> on x = (1, 2), from u = (1, 1), v = (1, -1)
B = mf.Data(np.array([[1.0, 2.0]]), np.array([1]))
run = mf.train(B, "diag:depth=2", init_params=[1, 1, 1, -1], optimizer="scaled", lr=0.1,
               steps=0, until_log10_loss=-10000)
a = mf.analyze(run)
print("case B: gamma = %.6f at log10 Loss %.0f (flow limit 0.5), verdict %s, gamma* = %g"
      % (a.gamma, run.final["log10_loss"], a.verdict, a["global"].gamma_star))

# sym4: a two-layer leaky ReLU net (alpha = 0.5, 20 units) from a tiny init
sym4 = mf.Data("builtin:sym4")
run = mf.train(sym4, "relu2:width=20,alpha=0.5", optimizer="flow", init_scale=1e-6, steps=0,
               until_log10_loss=-1000)
best = mf.global_relu2(sym4, alpha=0.5)
m = run.metrics
print("sym4: gamma = %.6f, certified gamma* in [%.6f, %.6f]"
      % (m.normalized_margin.iloc[-1], best.gamma_lower, best.gamma_upper))
print(m[["step", "log10_loss", "normalized_margin"]].iloc[[0, len(m) // 2, -1]].to_string(index=False))
