"""
===========================================
The regularisation path: objective, width
===========================================

:func:`~skbnconvex.bn_relu_path` fits a network along a decreasing sequence
of ``alpha``, each fit warm-started from the previous one, like
:func:`~sklearn.linear_model.lasso_path`. The sequence starts at
``alpha_max`` (:func:`~skbnconvex.bn_relu_alpha_max`), the smallest
``alpha`` for which the optimum is the zero network. Below it the convex
program grows neurons: we look at the training objective, the width and the
test score along the path, and at the fitted curves.
"""

# %%
# Data and path
# -------------
# A noisy sine in one dimension, split into training and test points. With
# one feature the certificate checks every activation pattern, and
# ``patterns="adaptive"`` makes each point of the path a certified global
# optimum.
import warnings

import matplotlib.pyplot as plt
import numpy as np
from sklearn.exceptions import ConvergenceWarning

from skbnconvex import ConvexBNReLURegressor, bn_relu_alpha_max, bn_relu_path

warnings.simplefilter("ignore", ConvergenceWarning)
rng = np.random.default_rng(0)
X = rng.uniform(-3, 3, (80, 1))
y = np.sin(1.5 * X[:, 0]) + 0.3 * rng.standard_normal(80)
X_train, y_train, X_test, y_test = X[:40], y[:40], X[40:], y[40:]

reg = ConvexBNReLURegressor(patterns="adaptive", n_patterns=10, random_state=0)
alpha_max = bn_relu_alpha_max(X_train, y_train, estimator=reg)
# The default grid starts at alpha_max itself, where the interior-point
# solver stops with a negligible block (objective within its tolerance of
# the zero network's); starting 1% above shows the zero network exactly.
alphas = np.geomspace(1.01 * alpha_max, 1e-3 * alpha_max, 12)
alphas, objectives, n_neurons, gaps, fits = bn_relu_path(
    X_train, y_train, estimator=reg, alphas=alphas, return_estimators=True
)
test_r2 = np.array([est.score(X_test, y_test) for est in fits])
train_r2 = np.array([est.score(X_train, y_train) for est in fits])
print(f"alpha_max = {alpha_max:.4g}; neurons along the path: {n_neurons}")
print(f"largest optimality gap on the path: {gaps.max():.1e}")

# %%
# Along the path
# --------------
# The objective decreases as ``alpha`` does; the width grows from zero at
# ``alpha_max``; the test score rises steeply, then levels off while the
# training score keeps climbing: the extra neurons fit the noise (the wiggles
# of the narrowest ``alpha`` below). Bottom right: three networks of the
# path.
best = int(np.argmax(test_r2))
fig, axes = plt.subplots(2, 2, figsize=(10, 7), sharex=False)
ax = axes[0, 0]
ax.loglog(alphas, objectives, "o-")
ax.set(ylabel="training objective", title="Objective")
ax = axes[0, 1]
ax.semilogx(alphas, n_neurons, "o-", color="C2")
ax.set(ylabel="neurons", title="Width chosen by the convex program")
ax = axes[1, 0]
ax.semilogx(alphas, train_r2, "o-", label="training")
ax.semilogx(alphas, test_r2, "s-", label="test")
ax.set(ylabel="R^2", title="Scores", ylim=(-0.2, 1.05))
ax.legend()
for ax in (axes[0, 0], axes[0, 1], axes[1, 0]):
    ax.axvline(alpha_max, color="0.5", ls=":", lw=1)
    ax.axvline(alphas[best], color="C3", ls="--", lw=1)
    ax.set_xlabel("alpha (dotted: alpha_max, dashed: best test score)")
    ax.invert_xaxis()

ax = axes[1, 1]
grid = np.linspace(-3.2, 3.2, 300)[:, None]
ax.scatter(X_train[:, 0], y_train, s=12, color="0.3", label="training")
ax.scatter(X_test[:, 0], y_test, s=12, color="0.7", label="test")
for i, color in zip((2, best, len(alphas) - 1), ("C0", "C3", "C1")):
    ax.plot(grid[:, 0], fits[i].predict(grid), color=color, lw=2,
            label=f"alpha={alphas[i]:.2g}, {n_neurons[i]} neurons")
ax.set(xlabel="x", ylabel="y", title="Networks on the path")
ax.legend(fontsize=8)
fig.tight_layout()
plt.show()
