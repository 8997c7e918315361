"""
=====================================
Regression quick start: fit and check
=====================================

Fit :class:`~skbnconvex.ConvexBNReLURegressor` on a noisy one-dimensional
curve and look at what the convex fit produces: the prediction, the
neurons it chose, and the fitted network's training objective checked
against the exported PyTorch module.
"""

# %%
# Data: a noisy sine. The network sees a single feature, so the rank of the
# centred data is 1 and every activation pattern can be enumerated: the fit
# below is the global optimum of the BN-ReLU network.
import matplotlib.pyplot as plt
import numpy as np
import torch

from skbnconvex import ConvexBNReLURegressor

rng = np.random.default_rng(0)
X = np.sort(rng.uniform(-3, 3, 60))[:, None]
y = np.sin(X[:, 0]) + 0.1 * rng.standard_normal(60)

reg = ConvexBNReLURegressor(alpha=0.05, patterns="enumerate").fit(X, y)
print(f"patterns: {reg.n_patterns_}, neurons: {reg.n_neurons_}")
print(f"training objective: {reg.objective_:.6f}, R^2: {reg.score(X, y):.4f}")

# %%
# The exported module computes the same function (BatchNorm1d in eval mode
# with the training statistics).
module = reg.to_torch()
grid = np.linspace(-4, 4, 400)[:, None]
with torch.no_grad():
    torch_out = module(torch.as_tensor(grid)).numpy().ravel()
print("max |torch - predict| on new data:",
      np.abs(torch_out - reg.predict(grid)).max())

# %%
# Each neuron is a ReLU hinge ``relu(BN(x w))`` scaled by its output weight:
# the fit is their sum.
H = grid @ reg.hidden_weights_
Z = (H - reg.bn_running_mean_) / np.sqrt(reg.bn_running_var_)
hinges = np.maximum(Z * reg.bn_weight_ + reg.bn_bias_, 0) * reg.output_weights_[:, 0]

fig, ax = plt.subplots(figsize=(7, 4))
ax.scatter(X[:, 0], y, s=12, color="0.4", label="training data")
for j in range(reg.n_neurons_):
    ax.plot(grid[:, 0], hinges[:, j], lw=0.8, alpha=0.6)
ax.plot(grid[:, 0], reg.predict(grid), color="C3", lw=2.5, label="network")
ax.set(xlabel="x", ylabel="y",
       title=f"Global optimum: {reg.n_neurons_} neurons (thin lines)")
ax.legend()
plt.show()
