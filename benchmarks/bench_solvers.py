"""The torch solver of program (C) against cvxpy + Clarabel, on the same programs.

Run from the repository root::

    python benchmarks/bench_solvers.py [--quick] [--threads 2]
        [--clarabel-max 1000x20x100] [--device cuda]
        [--sizes 2000x50x500,10000x50x1000] [--losses squared,logistic]

For every grid point ``(n, d, P)`` and loss (squared error, binary logistic)
the program is built from Gaussian data (whitened, ``P`` patterns of random
directions, ``beta = 0.05 beta_max``), then solved

* by cvxpy + Clarabel (``solve_cvxpy``, its default accuracy), timed from
  the cvxpy model to the solution (compilation included: it is part of the
  cost of that route), up to the size ``--clarabel-max``;
* by ``solve_torch`` at ``tol=1e-4`` and at ``tol=1e-6`` (float64, on
  ``--device``, CPU by default), each the median of ``--repeat`` runs; on
  CUDA after one untimed solve that initialises the device.

Columns: ``rel_obj`` = (torch - Clarabel) / |Clarabel| at ``tol=1e-6``
(negative: torch is lower); ``viol`` = the relative cone violation of the
torch solution (``ConvexProgram.cone_violation``); ``gap`` = the certified
relative duality gap that stopped it; ``x(1e-4)`` and ``x(1e-6)`` = Clarabel
time / torch time, measured in this same run. Beyond ``--clarabel-max``
only the torch times are given. All timings use ``--threads`` threads for
BLAS and torch; the machine should be otherwise idle.

``reach_s`` is another measure of the same ``tol=1e-4`` solves: the time at
which the solver's iterate first had an objective within ``1e-4`` relative
of the best known optimum (the lower of Clarabel's and the torch solver's at
``tol=1e-6``), read afterwards from a trace of the objectives it computes
at its checks (every ``_CHECK_EVERY`` iterations, its points are feasible);
``x(reach)`` = Clarabel time / ``reach_s``. The solver cannot stop there by
itself, since it does not know the optimum: ``torch_1e-4_s`` is the time to
*certify* a relative gap of ``1e-4``, which at this dual point takes an
objective accurate to about ``1e-8`` (the gap shrinks like the square root
of the error), and is what a user waits for.
"""

import argparse
import os
import time
import warnings


def _parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small grid only")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu", help="device of the torch solver")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--sizes", default=None,
                        help="grid to run instead, e.g. 2000x50x500,10000x50x1000")
    parser.add_argument("--losses", default="squared,logistic")
    parser.add_argument(
        "--clarabel-max", default="1000x20x100",
        help="largest n x d x P (by n*d*P) solved by Clarabel",
    )
    return parser.parse_args()


ARGS = _parse_args()
# Thread counts are read by the BLAS libraries at import time.
for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[var] = str(ARGS.threads)

import numpy as np  # noqa: E402
import torch  # noqa: E402

from skbnconvex._losses import BinaryLogLoss, SquaredLoss  # noqa: E402
from skbnconvex._program import ConvexProgram  # noqa: E402
from skbnconvex._solvers._cvxpy import solve_cvxpy  # noqa: E402
from skbnconvex._solvers._torch import solve_torch  # noqa: E402

GRID = [
    (200, 5, 50),
    (500, 10, 100),
    (500, 20, 100),
    (1000, 20, 100),
    (1000, 50, 200),
    (2000, 50, 500),
]
QUICK_GRID = [(200, 5, 50), (500, 10, 100)]


def make_program(n, d, P, loss, beta_frac=0.05, seed=1):
    """Whitened Gaussian data, random-direction patterns, a ReLU-like target."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    U, s, _ = np.linalg.svd(X - X.mean(0), full_matrices=False)
    r = int(np.sum(s > 1e-10 * s[0]))
    Ut = np.hstack([U[:, :r], np.full((n, 1), 1 / np.sqrt(n))])
    D = Ut @ rng.standard_normal((r + 1, P)) >= 0
    w = rng.standard_normal(d)
    f = np.maximum(X @ w, 0) - 0.5 * np.maximum(1 - X @ w, 0)
    f += 0.3 * rng.standard_normal(n)
    if loss == "squared":
        Y, L = f[:, None], SquaredLoss()
    else:
        Y, L = np.where(f > np.median(f), 1.0, -1.0)[:, None], BinaryLogLoss()
    # beta_max: the smallest beta whose optimum is zero (MATH.md section 4).
    lam = -L.gradient(np.zeros_like(Y), Y)
    g = np.einsum("np,nc,nk->cpk", D.astype(float), lam, Ut)
    beta = beta_frac * np.linalg.norm(g, axis=2).max()
    return ConvexProgram(Ut, D, Y, L, beta)


def _solve(prog, tol):
    """The torch solver on ``--device``."""
    return solve_torch(prog, tol=tol, device=ARGS.device)


class ObjectiveTrace:
    """Times and objectives of the points the torch solver checks.

    Wraps the two functions of ``skbnconvex._solvers._torch`` that evaluate
    the objective at the solver's (feasible) iterates, the working sets'
    gap checks and the full checks, without changing the solve.
    """

    def __init__(self):
        self.points = []

    def __enter__(self):
        from skbnconvex._solvers import _torch

        self._mod = _torch
        self._cert = _torch._WorkingSet.certificate
        self._full = _torch._full_check
        cert, full, points = self._cert, self._full, self.points

        def certificate(wset, *args, **kwargs):
            out = cert(wset, *args, **kwargs)
            points.append((time.perf_counter(), out[0]))
            return out

        def full_check(*args, **kwargs):
            out = full(*args, **kwargs)
            points.append((time.perf_counter(), out[0]))
            return out

        _torch._WorkingSet.certificate = certificate
        _torch._full_check = full_check
        return self

    def __exit__(self, *exc):
        self._mod._WorkingSet.certificate = self._cert
        self._mod._full_check = self._full

    def time_to(self, start, optimum, rtol):
        """Seconds from ``start`` to the first point within ``rtol`` of ``optimum``."""
        for t, value in self.points:
            if value - optimum <= rtol * abs(optimum):
                return t - start
        return np.nan


def timed(fn, repeat):
    """Median wall time of ``repeat`` calls and the last result."""
    times, res = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        res = fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times)), res


def main():
    torch.set_num_threads(ARGS.threads)
    cmax = np.prod([int(v) for v in ARGS.clarabel_max.split("x")])
    grid = QUICK_GRID if ARGS.quick else GRID
    if ARGS.sizes:
        grid = [tuple(int(v) for v in s.split("x")) for s in ARGS.sizes.split(",")]
    header = (
        f"{'loss':8s} {'n':>5s} {'d':>3s} {'P':>4s} {'k':>3s} {'blocks':>6s} "
        f"{'clarabel_s':>10s} {'torch_1e-4_s':>12s} {'torch_1e-6_s':>12s} "
        f"{'x(1e-4)':>8s} {'x(1e-6)':>8s} {'rel_obj':>9s} {'viol':>8s} {'gap':>8s} "
        f"{'reach_s':>8s} {'x(reach)':>8s}"
    )
    print(f"threads={ARGS.threads}, repeat={ARGS.repeat}, torch {torch.__version__}, "
          f"device={ARGS.device}")
    if ARGS.device != "cpu":
        # CUDA's context and kernels load on first use: not part of a solve.
        _solve(make_program(*QUICK_GRID[0], "squared"), 1e-4)
    print(header)
    for loss in ARGS.losses.split(","):
        for n, d, P in grid:
            prog = make_program(n, d, P, loss)
            starts, traces = [], []

            def traced_solve():
                with ObjectiveTrace() as trace:
                    starts.append(time.perf_counter())
                    res = _solve(prog, 1e-4)
                traces.append(trace)
                return res

            t4, r4 = timed(traced_solve, ARGS.repeat)
            t6, r6 = timed(lambda: _solve(prog, 1e-6), ARGS.repeat)
            nrm = np.concatenate(
                [np.linalg.norm(r6.Wp, axis=2).ravel(), np.linalg.norm(r6.Wn, axis=2).ravel()]
            )
            gap = float(r6.message.split("gap ")[1].split(" ")[0]) if "gap " in r6.message else np.nan
            viol = prog.cone_violation(r6.Wp, r6.Wn)
            row = (
                f"{loss:8s} {n:5d} {d:3d} {P:4d} {prog.k:3d} {int((nrm > 0).sum()):6d} "
            )
            optimum = r6.objective
            if n * d * P <= cmax:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    tc, rc = timed(lambda: solve_cvxpy(prog), 1)
                rel = (r6.objective - rc.objective) / abs(rc.objective)
                optimum = min(optimum, rc.objective)
            reach = float(np.median([
                tr.time_to(t0, optimum, 1e-4) for t0, tr in zip(starts, traces)
            ]))
            if n * d * P <= cmax:
                row += (
                    f"{tc:10.2f} {t4:12.3f} {t6:12.3f} {tc / t4:8.1f} {tc / t6:8.1f} "
                    f"{rel:9.1e} {viol:8.1e} {gap:8.1e} {reach:8.3f} {tc / reach:8.1f}"
                )
            else:
                row += (
                    f"{'-':>10s} {t4:12.3f} {t6:12.3f} {'-':>8s} {'-':>8s} "
                    f"{'-':>9s} {viol:8.1e} {gap:8.1e} {reach:8.3f} {'-':>8s}"
                )
            if not r6.converged:
                row += "  (not converged)"
            print(row, flush=True)


if __name__ == "__main__":
    main()
