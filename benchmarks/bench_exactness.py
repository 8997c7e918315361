"""Exactness of the convex fit, measured against independent computations.

Prints, in one run:

1. global optimum vs gradient training of the non-convex BN network (torch,
   width 64, 32 random initialisations, 10000 Adam steps then L-BFGS) on problems small enough to
   enumerate every activation pattern, squared and logistic loss;
2. the recovered network's forward-pass objective vs the value of (C);
3. the exported torch module vs ``predict`` on unseen data;
4. the closed form (used when rank(Xc) = n - 1) vs Clarabel over all patterns.

Run: ``OMP_NUM_THREADS=1 python benchmarks/bench_exactness.py``
"""

import warnings

import numpy as np
import torch

from skbnconvex import ConvexBNReLUClassifier, ConvexBNReLURegressor
from skbnconvex._gradient import train_bn_relu_network
from skbnconvex._losses import SquaredLoss
from skbnconvex._patterns import enumerate_patterns
from skbnconvex._program import ConvexProgram
from skbnconvex._solvers import solve_cvxpy
from skbnconvex._whitening import whiten

torch.set_num_threads(1)
warnings.simplefilter("ignore")


def data(seed, n=12, d=2):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    return X, np.sin(3 * X[:, 0]) + X[:, -1] ** 2


print("1. convex optimum (all patterns) vs gradient training of the BN network")
print(f"{'loss':>13} {'seed':>4} {'alpha':>5} {'P':>4} {'m':>3} {'convex':>12} "
      f"{'best GD':>12} {'rel diff':>10} {'GD below?':>9}")
for loss in ("squared_error", "log_loss"):
    for seed in (1, 2, 3):
        for alpha in (0.5, 0.1):
            X, y = data(seed)
            if loss == "log_loss":
                y = np.where(y > np.median(y), 1.0, -1.0)
                est = ConvexBNReLUClassifier(alpha=alpha, patterns="enumerate")
            else:
                est = ConvexBNReLURegressor(alpha=alpha, patterns="enumerate")
            est.fit(X, y)
            gd = train_bn_relu_network(
                X, y[:, None], loss=loss, alpha=alpha, n_neurons=64, n_inits=32,
                n_steps=10000, learning_rate=2e-3, lbfgs_steps=500, random_state=0,
            ).objectives
            rel = (gd.min() - est.objective_) / est.objective_
            below = gd.min() < est.objective_ * (1 - 1e-9)
            print(f"{loss:>13} {seed:>4} {alpha:>5} {est.n_patterns_:>4} "
                  f"{est.n_neurons_:>3} {est.objective_:>12.8f} {gd.min():>12.8f} "
                  f"{rel:>10.2e} {str(below):>9}")

print("\n2./3. recovered network vs convex program; torch export vs predict")
rng = np.random.default_rng(0)
worst_obj = worst_torch = 0.0
for seed in range(5):
    X = rng.standard_normal((40, 4)) * [1, 5, 0.2, 1] + 3
    y = X[:, 0] - np.abs(X[:, 1]) + 0.1 * rng.standard_normal(40)
    for est in (ConvexBNReLURegressor(alpha=0.2, n_patterns=30, random_state=seed),
                ConvexBNReLUClassifier(alpha=0.2, n_patterns=30, random_state=seed)):
        target = y if isinstance(est, ConvexBNReLURegressor) else y > np.median(y)
        est.fit(X, target)
        worst_obj = max(worst_obj, abs(est.objective_ - est._convex_objective)
                        / est._convex_objective)
        X_new = rng.standard_normal((100, 4)) * [2, 5, 0.2, 1] + 3
        with torch.no_grad():
            out = est.to_torch()(torch.as_tensor(X_new)).numpy().ravel()
        ref = (est.predict(X_new) if isinstance(est, ConvexBNReLURegressor)
               else est.decision_function(X_new))
        worst_torch = max(worst_torch, np.abs(out - ref).max() / np.abs(ref).max())
print(f"max relative |objective(network) - value(C)| over 10 fits: {worst_obj:.1e}")
print(f"max relative |to_torch() - predict| on unseen data:       {worst_torch:.1e}")

print("\n4. closed form (n <= d, used by the estimator) vs Clarabel over all patterns")
for seed in range(3):
    rng = np.random.default_rng(seed)
    n, d, alpha = 6, 10, 0.5
    X, y = rng.standard_normal((n, d)), 2 * rng.standard_normal(n)
    reg = ConvexBNReLURegressor(alpha=alpha).fit(X, y)
    W = whiten(X)
    program = ConvexProgram(W.Ut, enumerate_patterns(W.Ut), y[:, None],
                            SquaredLoss(), alpha / np.sqrt(n))
    ref = solve_cvxpy(program, tol=1e-10)
    F = program.predict(ref.Wp, ref.Wn).ravel()
    print(f"seed {seed}: solver_={reg.solver_}, P={program.n_patterns}, "
          f"max |predict - cvxpy| = {np.abs(reg.predict(X) - F).max():.1e}, "
          f"rel objective diff = {abs(reg.objective_ - ref.objective / n) / reg.objective_:.1e}")
