"""ConvexBNReLURegressorCV against GridSearchCV over the same grid and folds.

Both choose ``alpha`` by K-fold cross-validation over the same values; the
CV estimator fits each fold's path in decreasing ``alpha`` with warm starts
(previous patterns and blocks), GridSearchCV fits every (fold, alpha) from
scratch. The script checks that both choose the same ``alpha`` (and prints
both mean scores), and prints the wall-clock ratio measured in this run.

Warm starts pay with the first-order solver (``--solver torch``, the
default here): it starts from the previous blocks. Clarabel (``--solver
cvxpy``, what ``"auto"`` picks on this small problem) is an interior-point
method that cannot be warm-started; the path then only saves the pattern
sampling and the ratio is about 1.

Run (one thread, as on a shared machine)::

    OMP_NUM_THREADS=1 python benchmarks/bench_cv.py
    OMP_NUM_THREADS=1 python benchmarks/bench_cv.py --solver cvxpy
    OMP_NUM_THREADS=1 python benchmarks/bench_cv.py --patterns adaptive --n-patterns 10
"""

# Authors: the skbnconvex developers
# License: BSD 3 clause

import argparse
import time
import warnings

import numpy as np
import torch
from sklearn.datasets import load_diabetes
from sklearn.decomposition import PCA
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import GridSearchCV, KFold
from sklearn.preprocessing import StandardScaler

from skbnconvex import ConvexBNReLURegressor, ConvexBNReLURegressorCV


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-samples", type=int, default=40)
    parser.add_argument("--rank", type=int, default=3)
    parser.add_argument("--n-alphas", type=int, default=8)
    parser.add_argument("--eps", type=float, default=1e-3)
    parser.add_argument("--folds", type=int, default=3)
    parser.add_argument("--patterns", default="sample",
                        choices=["sample", "enumerate", "adaptive"])
    parser.add_argument("--n-patterns", type=int, default=30)
    parser.add_argument("--solver", default="torch", choices=["auto", "cvxpy", "torch"])
    args = parser.parse_args()

    torch.set_num_threads(1)
    warnings.simplefilter("ignore", ConvergenceWarning)
    # Diabetes, standardised and projected on its first principal
    # directions: small rank keeps the certificate exact and the run short.
    X, y = load_diabetes(return_X_y=True)
    idx = np.random.default_rng(0).permutation(X.shape[0])[: args.n_samples]
    X = PCA(args.rank).fit_transform(StandardScaler().fit_transform(X[idx]))
    y = (y[idx] - y[idx].mean()) / y[idx].std()
    folds = KFold(args.folds, shuffle=True, random_state=0)
    params = dict(patterns=args.patterns, n_patterns=args.n_patterns,
                  solver=args.solver, random_state=0)

    start = time.perf_counter()
    cv_est = ConvexBNReLURegressorCV(
        n_alphas=args.n_alphas, eps=args.eps, cv=folds, **params
    ).fit(X, y)
    t_cv = time.perf_counter() - start

    # The same grid (alpha_max is computed inside the timed CV fit, and is
    # a small part of it) and the same folds, every point from scratch.
    start = time.perf_counter()
    search = GridSearchCV(
        ConvexBNReLURegressor(**params), {"alpha": list(cv_est.alphas_)}, cv=folds
    ).fit(X, y)
    t_grid = time.perf_counter() - start

    print(f"data: n={args.n_samples}, rank={args.rank}; {args.folds} folds x "
          f"{args.n_alphas} alphas; patterns={args.patterns!r}, "
          f"n_patterns={args.n_patterns}, solver={args.solver!r}")
    print("alphas:", np.array2string(cv_est.alphas_, precision=4))
    print("mean score, CV path  :",
          np.array2string(cv_est.cv_results_["mean_test_score"], precision=4))
    print("mean score, grid     :",
          np.array2string(search.cv_results_["mean_test_score"], precision=4))
    same = cv_est.alpha_ == search.best_params_["alpha"]
    print(f"alpha_: CV {cv_est.alpha_:.6g}, GridSearchCV "
          f"{search.best_params_['alpha']:.6g} -> {'same' if same else 'DIFFERENT'}")
    print(f"time: CV {t_cv:.2f} s, GridSearchCV {t_grid:.2f} s, "
          f"ratio GridSearchCV / CV = {t_grid / t_cv:.2f}")


if __name__ == "__main__":
    main()
