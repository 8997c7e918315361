"""
=================================================
Convex fit against Adam on the same network
=================================================

Training ``Linear -> BatchNorm1d -> ReLU -> Linear`` with weight decay is a
non-convex problem; Adam finds a local solution whose quality depends on
the initialisation, the width and the step size. The convex program of
Ergen et al. (2022) over *every* activation pattern has the same optimum
as the network over all widths, so
:class:`~skbnconvex.ConvexBNReLURegressor` with ``patterns="enumerate"``
returns the global optimum. Here we watch Adam's objective over time,
from several initialisations, against that value.
"""

# %%
# A small problem
# ---------------
# Twenty points in two dimensions: every activation pattern can be
# enumerated, and the certificate proves that the convex fit is the global
# optimum.
import time

import matplotlib.pyplot as plt
import numpy as np
import torch

from skbnconvex import ConvexBNReLURegressor
from skbnconvex._gradient import train_bn_relu_network

torch.set_flush_denormal(True)  # float64 Adam on CPU: denormals are slow
rng = np.random.default_rng(0)
X = rng.standard_normal((20, 2))
y = np.sin(2 * X[:, 0]) + np.abs(X[:, 1]) + 0.1 * rng.standard_normal(20)
alpha = 0.05

start = time.perf_counter()
reg = ConvexBNReLURegressor(alpha=alpha, patterns="enumerate").fit(X, y)
convex_time = time.perf_counter() - start
print(f"convex fit: objective {reg.objective_:.6f}, {reg.n_neurons_} neurons, "
      f"{reg.n_patterns_} patterns, certified {reg.certified_}, "
      f"{convex_time:.2f} s")

# %%
# Adam on the same objective
# --------------------------
# :func:`~skbnconvex._gradient.train_bn_relu_network` trains the same
# network with the same objective (full-batch BN, weight decay on the BN
# parameters and the read-out), eight initialisations at once, at two
# widths: twice and eight times the width of the convex solution.
runs = {}
for width in (max(2 * reg.n_neurons_, 8), 8 * reg.n_neurons_):
    runs[width] = train_bn_relu_network(
        X, y[:, None], alpha=alpha, n_neurons=width, n_inits=8,
        learning_rate=1e-2, n_steps=3000, record_every=20, random_state=0,
    )
    best = runs[width].objectives.min()
    print(f"Adam, width {width}: best objective {best:.6f} "
          f"(excess {best - reg.objective_:.2e}), "
          f"{runs[width].times[-1]:.1f} s for 8 runs")

# %%
# Objective over time
# -------------------
# The excess objective over the global optimum, on a log scale: every Adam
# run stays above the convex value (the dashed line is where the convex fit
# finished); the spread between runs is the price of non-convexity.
fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True)
floor = 1e-7
for ax, (width, fit) in zip(axes, runs.items()):
    excess = np.maximum(fit.history - reg.objective_, floor)
    ax.semilogy(fit.times, excess, lw=1, alpha=0.8)
    ax.axvline(convex_time, color="k", ls="--", lw=1)
    ax.annotate("convex fit done\n(global optimum)", (convex_time, floor * 3),
                xytext=(8, 0), textcoords="offset points", fontsize=8)
    ax.set(xlabel="seconds", title=f"Adam, {width} neurons, 8 initialisations")
axes[0].set_ylabel("objective - global optimum")
fig.tight_layout()
plt.show()
