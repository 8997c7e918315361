"""
===============================================
Export to PyTorch and fine-tune on new data
===============================================

A convex fit is a real network: :meth:`~skbnconvex.ConvexBNReLURegressor.to_torch`
returns it as ``torch.nn.Sequential(Linear, BatchNorm1d, ReLU, Linear)``,
which computes exactly what the estimator predicts and trains like any torch
module. Here we fit the global optimum on one data set, then fine-tune the
exported module with a few gradient steps on data from a shifted target, as
one would adapt a pretrained network.
"""

# %%
# Fit and export
# --------------
import warnings

import matplotlib.pyplot as plt
import numpy as np
import torch
from sklearn.exceptions import ConvergenceWarning

from skbnconvex import ConvexBNReLURegressor

warnings.simplefilter("ignore", ConvergenceWarning)
torch.manual_seed(0)
rng = np.random.default_rng(0)
X = rng.uniform(-3, 3, (50, 1))
y = np.sin(X[:, 0]) + 0.1 * rng.standard_normal(50)

reg = ConvexBNReLURegressor(alpha=0.05, patterns="enumerate").fit(X, y)
module = reg.to_torch()
grid = np.linspace(-3.5, 3.5, 300)[:, None]
grid_t = torch.as_tensor(grid)
with torch.no_grad():
    before = module(grid_t).numpy().ravel()
print(module)
print("max |module - predict|:", np.abs(before - reg.predict(grid)).max())

# %%
# Fine-tune on new data
# ---------------------
# The new target is the old one shifted up on the right half. We keep BN in
# evaluation mode (its statistics are those of the convex fit) and train all
# weights with Adam on the mean squared error plus the estimator's weight
# decay on the BN parameters and the read-out.
X_new = rng.uniform(-3, 3, (50, 1))
y_new = np.sin(X_new[:, 0]) + 0.8 * (X_new[:, 0] > 0) + 0.1 * rng.standard_normal(50)
Xt, yt = torch.as_tensor(X_new), torch.as_tensor(y_new)[:, None]
bn, readout = module[1], module[3]
optimizer = torch.optim.Adam(module.parameters(), lr=1e-2)
n, losses = len(y_new), []
for step in range(300):
    optimizer.zero_grad()
    mse = 0.5 * ((module(Xt) - yt) ** 2).mean()
    penalty = (bn.weight**2).sum() + (bn.bias**2).sum() + (readout.weight**2).sum()
    loss = mse + 0.5 * reg.alpha * penalty / n
    loss.backward()
    optimizer.step()
    losses.append(mse.item())
with torch.no_grad():
    after = module(grid_t).numpy().ravel()
print(f"half MSE on the new data: before {losses[0]:.4f}, after {losses[-1]:.4f}")

# %%
# Before and after
# ----------------
# Left: the exported network (the convex global optimum on the old data) and
# the fine-tuned one, over both data sets. Right: the training curve of the
# fine-tuning.
fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(11, 4.2),
                               gridspec_kw={"width_ratios": [2, 1]})
ax0.scatter(X[:, 0], y, s=12, color="0.6", label="original data")
ax0.scatter(X_new[:, 0], y_new, s=14, color="C1", marker="^", label="new data")
ax0.plot(grid[:, 0], before, color="C0", lw=2, label="exported (convex fit)")
ax0.plot(grid[:, 0], after, color="C3", lw=2, label="fine-tuned in torch")
ax0.set(xlabel="x", ylabel="y", title=f"{reg.n_neurons_} neurons, before and after")
ax0.legend(fontsize=8)
ax1.semilogy(losses)
ax1.set(xlabel="Adam step", ylabel="half MSE on new data", title="Fine-tuning")
fig.tight_layout()
plt.show()
