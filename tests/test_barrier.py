"""The log-barrier method of the torch solver, against independent references:
Newton directions against the autograd Hessian, optima against Clarabel."""

import numpy as np
import pytest
import torch
from sklearn.datasets import load_diabetes
from sklearn.preprocessing import StandardScaler

import skbnconvex._solvers._torch as torch_solver
from skbnconvex._losses import SquaredLoss
from skbnconvex._patterns import sample_patterns
from skbnconvex._program import ConvexProgram
from skbnconvex._solvers._barrier import _BarrierProblem, barrier_solve, cone_interior
from skbnconvex._solvers._cvxpy import solve_cvxpy
from skbnconvex._solvers._torch import solve_torch
from skbnconvex._whitening import whiten

from .test_torch_solver import CASES, _program, references  # noqa: F401 (fixture)

f64 = torch.float64


def _tensors(prog):
    Ut = torch.as_tensor(prog.Ut)
    Dt = torch.as_tensor(prog.D.T.astype(float))
    Y = torch.as_tensor(prog.Y)
    S = np.where(prog.D, 1.0, -1.0)
    Z = torch.as_tensor(
        np.array([cone_interior(prog.Ut, S[:, i])[0] for i in range(prog.n_patterns)])
    )
    return Ut, Dt, Y, Z


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c[0]}-C{c[1]}")
def test_newton_direction_is_the_dense_newton_direction(case):
    """The block elimination solves the full Newton systems exactly."""
    loss, C, bf, seed = case
    prog = _program(loss, C, beta_frac=bf, seed=seed)
    Ut, Dt, Y, Z = _tensors(prog)
    bp = _BarrierProblem(Ut, Dt, Y, prog.loss, prog.beta)
    rng = np.random.default_rng(seed)
    # A strictly feasible point: interior directions with random scales,
    # and a random half of the cone rows in the barrier.
    scales = rng.uniform(0.1, 2.0, (C, 2, prog.n_patterns, 1))
    V = Z[None, None] * torch.as_tensor(scales)
    bp.mask = torch.as_tensor(rng.random(bp.margins(V).shape) < 0.5, dtype=f64)
    mu = 1e-2

    def phi(z):
        v = z.view_as(V)
        R = bp.margins(v)
        s = torch.sqrt(mu**2 + prog.beta**2 * (v * v).sum(-1))
        # beta t - mu log(t^2 - ||v||^2) minimised over t, in closed form.
        t = (mu + s) / prog.beta
        cone = prog.beta * t - mu * torch.log(t * t - (v * v).sum(-1))
        f0 = prog.loss.torch_value(bp.predict(v), Y) + cone.sum()
        return f0 - mu * (torch.log(R) * bp.mask).sum()

    x0 = V.reshape(-1)
    H = torch.autograd.functional.hessian(phi, x0)
    g = torch.autograd.functional.jacobian(phi, x0)
    R = bp.margins(V)
    # The gradient without the rows' log terms, and the rows' K^T (mu / r).
    g_rows = g.view_as(V) + bp.row_term(mu * bp.mask / R)
    np.testing.assert_allclose(bp.gradient(V, bp.predict(V), mu), g_rows, rtol=1e-9,
                               atol=1e-12 * float(g.abs().max()))
    # The Newton direction of the barrier: rows weighted by mu / r^2.
    dense = torch.linalg.solve(H, -g)
    dV = bp.factor(V, bp.predict(V), mu, mu * bp.mask / R**2)(g.view_as(V))
    np.testing.assert_allclose(dV.reshape(-1), dense, rtol=1e-8,
                               atol=1e-10 * float(dense.abs().max()))
    # The primal-dual method's system: the rows weighted by any positive
    # w (its z / r) instead of mu / r^2, i.e. H + K^T diag(w - mu / r^2) K
    # per block.
    w = torch.as_tensor(rng.uniform(0.1, 10.0, R.shape)) * bp.mask
    K = (bp.St[:, :, None] * Ut).expand(*R.shape, -1)  # rows K_j of every block
    extra = torch.einsum("csmn,csmnk,csmnl->csmkl", w - mu * bp.mask / R**2, K, K)
    H_w = H + torch.block_diag(*extra.reshape(-1, *extra.shape[-2:]))
    dense_w = torch.linalg.solve(H_w, -g)
    dV_w = bp.factor(V, bp.predict(V), mu, w)(g.view_as(V))
    np.testing.assert_allclose(dV_w.reshape(-1), dense_w, rtol=1e-8,
                               atol=1e-10 * float(dense_w.abs().max()))


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c[0]}-C{c[1]}")
def test_barrier_optimum_matches_clarabel(case):
    loss, C, bf, seed = case
    prog = _program(loss, C, beta_frac=bf, seed=seed)
    ref = solve_cvxpy(prog, tol=1e-10).objective
    Ut, Dt, Y, Z = _tensors(prog)
    W0 = torch.zeros((C, 2, prog.n_patterns, prog.k), dtype=f64)
    W, steps = barrier_solve(
        Ut, Dt, Y, prog.loss, prog.beta, W0, Z, ref, 1e-10 * ref, 500
    )
    W = W.numpy()
    assert prog.cone_violation(W[:, 0], W[:, 1]) == 0.0  # strictly feasible
    assert prog.objective(W[:, 0], W[:, 1]) == pytest.approx(ref, rel=1e-7)
    # Mehrotra's predictor-corrector: 30-37 Newton steps on these cases
    # (the primal path, mu divided by 10 at every centre: 87-106).
    assert steps <= 60


def test_cone_interior():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((50, 3))
    Ut = whiten(X).Ut
    D = sample_patterns(Ut, 10, np.random.RandomState(0))
    for i in range(D.shape[1]):
        s = np.where(D[:, i], 1.0, -1.0)
        z, margin = cone_interior(Ut, s)
        assert np.linalg.norm(z) == pytest.approx(1.0)
        assert margin > 0
        np.testing.assert_array_less(0.0, s * (Ut @ z))
        assert (s * (Ut @ z)).min() == pytest.approx(margin)
    # A repeated sample with opposite signs: the cone is a hyperplane piece.
    Ut2 = np.vstack([Ut, Ut[:1]])
    s = np.where(D[:, 0], 1.0, -1.0)
    s2 = np.concatenate([s, -s[:1]])
    assert cone_interior(Ut2, s2)[0] is None


def test_cone_interior_cutting_planes_match_the_full_program():
    """Cutting planes reach the optimum of the LP over all rows."""
    from scipy.optimize import linprog

    rng = np.random.default_rng(1)
    Ut = whiten(rng.standard_normal((3000, 6))).Ut
    n, k = Ut.shape
    D = sample_patterns(Ut, 4, np.random.RandomState(1))
    for i in range(D.shape[1]):
        s = np.where(D[:, i], 1.0, -1.0)
        K = s[:, None] * Ut
        cost = np.zeros(k + 1)
        cost[-1] = -1.0
        full = linprog(cost, A_ub=np.hstack([-K, np.ones((n, 1))]), b_ub=np.zeros(n),
                       bounds=[(-1.0, 1.0)] * k + [(None, 1.0)], method="highs")
        z, margin = cone_interior(Ut, s)
        # The LP's value is max_z min_j K_j z / |z|_inf.
        assert margin / np.abs(z).max() == pytest.approx(-full.fun, rel=1e-7)
        assert (K @ z).min() == pytest.approx(margin)


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c[0]}-C{c[1]}")
def test_solver_with_barrier_at_once_matches_clarabel(
    references, case, monkeypatch  # noqa: F811 (fixture)
):
    """The working-set loop with the barrier method on every working set."""
    monkeypatch.setattr(torch_solver, "_STALL_CHECKS", 0)
    prog, ref = references[case]
    res = solve_torch(prog, tol=1e-8, max_iter=50000)
    assert res.converged, res.message
    assert res.objective == pytest.approx(ref, rel=1e-6)
    assert prog.cone_violation(res.Wp, res.Wn) <= 1e-8


def small_alpha_program():
    """Diabetes (200 rows) at alpha = 0.01, 20 sampled patterns."""
    X, y = load_diabetes(return_X_y=True)
    X = StandardScaler().fit_transform(X[:200])
    y = (y[:200] - y[:200].mean()) / y[:200].std()
    Ut = whiten(X).Ut
    D = sample_patterns(Ut, 20, np.random.RandomState(0))
    return ConvexProgram(Ut, D, y[:, None], SquaredLoss(), 0.01 / np.sqrt(200))


def test_small_alpha_where_fista_stalls(monkeypatch):
    """Real data at small alpha: FISTA alone stalls, the barrier solves it.

    Measured when written: FISTA alone was still 2e-4 above the optimum
    after 20 000 iterations (36 s); with the barrier it converged in about
    400 iterations (1 s).
    """
    prog = small_alpha_program()
    ref = solve_cvxpy(prog, tol=1e-10).objective

    calls = []
    real = torch_solver.barrier_solve
    monkeypatch.setattr(
        torch_solver, "barrier_solve", lambda *a: calls.append(1) or real(*a)
    )
    res = solve_torch(prog, tol=1e-8, max_iter=20000)
    assert res.converged, res.message
    assert calls, "the barrier method was not used"
    assert res.objective == pytest.approx(ref, rel=1e-7)

    # Without the barrier method, the same budget does not get there.
    monkeypatch.setattr(torch_solver, "_STALL_CHECKS", 10**9)
    res_fista = solve_torch(prog, tol=1e-8, max_iter=2000)
    assert not res_fista.converged
    assert res_fista.objective > ref * (1 + 1e-5)


def test_eliminated_t_is_the_minimiser():
    """t = (mu + s) / beta minimises beta t - mu log(t^2 - ||v||^2)."""
    from scipy.optimize import minimize_scalar

    rng = np.random.default_rng(0)
    for beta, mu in [(0.3, 1e-2), (2.0, 1e-4), (1e-3, 1e-6)]:
        v = rng.standard_normal(4)
        r = np.linalg.norm(v)
        s = np.sqrt(mu**2 + beta**2 * r**2)
        res = minimize_scalar(
            lambda t: beta * t - mu * np.log(t * t - r * r),
            bounds=(r * (1 + 1e-12), r + 10 * mu / beta + 1.0), method="bounded",
            options={"xatol": 1e-14},
        )
        assert (mu + s) / beta == pytest.approx(res.x, rel=1e-6)


@pytest.mark.parametrize(
    "case", [c for c in CASES if c[0] != "multinomial"], ids=lambda c: f"{c[0]}-C{c[1]}"
)
def test_packed_loss_hessian_is_the_dense_product(case):
    """``A^T diag(h) A`` from its distinct entries equals the dense product.

    (The multinomial loss couples the outputs and keeps the dense product.)
    """
    from skbnconvex._losses import torch_parameter_hessian

    loss, C, bf, seed = case
    prog = _program(loss, C, beta_frac=bf, seed=seed)
    Ut, Dt, Y, _ = _tensors(prog)
    bp = _BarrierProblem(Ut, Dt, Y, prog.loss, prog.beta)
    F = torch.as_tensor(np.random.default_rng(seed).standard_normal(prog.Y.shape))
    assert bp._pairs is not None
    G = bp.loss_hessian(F)
    mk = bp.A.shape[1]
    dense = torch.stack([
        torch_parameter_hessian(prog.loss, F, Y, bp.A, torch.full((mk,), c))
        for c in range(C)
    ])
    torch.testing.assert_close(G, dense, rtol=1e-12, atol=1e-14)


def test_fista_outlook_extrapolates_the_rate_of_the_gaps():
    """Projected iterations at the recent rate decide when FISTA has stalled."""
    from skbnconvex._solvers._torch import _CHECK_EVERY, _STALL_CHECKS, _fista_outlook

    # Halving at every check: log2(gap / target) more checks.
    history = [0.5**i for i in range(_STALL_CHECKS + 3)]
    target = history[-1] / 2**7
    assert _fista_outlook(history, target) == pytest.approx(7 * _CHECK_EVERY)
    # Only the last _STALL_CHECKS checks count: an early fast phase does not.
    slow = [1.0, 1e-3] + [1e-3 * 0.9**i for i in range(1, _STALL_CHECKS + 1)]
    expected = _CHECK_EVERY * np.log(1e-6 / slow[-1]) / np.log(0.9)
    assert _fista_outlook(slow, 1e-6) == pytest.approx(expected)
    # No decrease, or a single check: no end in sight.
    assert _fista_outlook([1e-2] * (_STALL_CHECKS + 1), 1e-6) == np.inf
    assert _fista_outlook([1e-2], 1e-6) == np.inf
