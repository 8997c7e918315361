"""The torch solver against Clarabel on a real, ill-conditioned program.

Red wine quality (first 1279 rows, 11 standardised features, standardised
target), 128 sampled patterns (``random_state=0``), squared loss: the same
program for both solvers. Prints objective, iterations, wall time and the
estimated gap of each, measured in one run. At small ``alpha`` the program
is nearly unregularised least squares over strongly overlapping patterns,
which is where the first-order solver's convergence is slow.

Run from the repository root (datasets from ../shared/data)::

    OMP_NUM_THREADS=1 python benchmarks/bench_small_alpha.py --alpha 0.01
"""

import argparse
import os
import pathlib
import time
import warnings

import numpy as np
import torch
from sklearn.preprocessing import StandardScaler

import skbnconvex._solvers._torch as torch_solver
from skbnconvex import ConvexBNReLURegressor

STALL_CHECKS = torch_solver._STALL_CHECKS

DATA = pathlib.Path(os.environ.get(
    "SKBNCONVEX_DATA", pathlib.Path(__file__).resolve().parents[2] / "shared" / "data"))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--alpha", type=float, default=0.01)
    parser.add_argument("--max-iter", type=int, default=3000)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    raw = np.genfromtxt(DATA / "wine_quality" / "winequality-red.csv",
                        delimiter=";", skip_header=1)
    X = StandardScaler().fit_transform(raw[:, :-1])[:1279]
    y = raw[:, -1]
    y = ((y - y.mean()) / y.std())[:1279]
    print(f"wine red, n={len(y)}, alpha={args.alpha}, 128 sampled patterns")
    print(f"{'solver':8} {'tol':>7} {'time_s':>8} {'n_iter':>7} {'objective':>11} "
          f"{'neurons':>7}  warning")
    # "fista": the torch solver with its barrier method switched off (the
    # solver before the barrier existed), for comparison in the same run.
    for name, tol in (("torch", 1e-3), ("torch", 1e-6), ("fista", 1e-3),
                      ("cvxpy", 1e-6)):
        solver = "cvxpy" if name == "cvxpy" else "torch"
        torch_solver._STALL_CHECKS = 10**9 if name == "fista" else STALL_CHECKS
        start = time.perf_counter()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            reg = ConvexBNReLURegressor(
                alpha=args.alpha, n_patterns=128, solver=solver, tol=tol,
                max_iter=args.max_iter, random_state=0,
            ).fit(X, y)
        elapsed = time.perf_counter() - start
        note = str(caught[0].message)[:70] if caught else ""
        print(f"{name:8} {tol:7.0e} {elapsed:8.1f} {reg.n_iter_:7d} "
              f"{reg.objective_:11.7f} {reg.n_neurons_:7d}  {note}", flush=True)
    torch_solver._STALL_CHECKS = STALL_CHECKS


if __name__ == "__main__":
    main()
