"""Optimality certificate, column generation and the closed form.

References are independent computations: cvxpy over every enumerated
pattern (the global optimum), cvxpy at the threshold ``beta_max`` where the
zero network becomes optimal, dense sampling of the sphere and per-pattern
second-order cone programs.
"""

import numpy as np
import pytest
import torch

import skbnconvex._certificate as cert_module
from skbnconvex._certificate import optimality_certificate
from skbnconvex._closed_form import closed_form_solution
from skbnconvex._column_generation import column_generation, cvxpy_solver
from skbnconvex._losses import BinaryLogLoss, MultinomialLogLoss, SquaredLoss
from skbnconvex._patterns import enumerate_patterns, sample_patterns
from skbnconvex._program import ConvexProgram
from skbnconvex._recovery import recover_network
from skbnconvex._solvers import solve_cvxpy
from skbnconvex._solvers._torch import solve_torch
from skbnconvex._whitening import whiten


def _problem(n, d, loss, seed, n_outputs=1):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    t = np.sin(2 * X[:, 0]) + X[:, -1] ** 2 + 0.3 * rng.standard_normal(n)
    t = (t - t.mean()) / t.std()
    if isinstance(loss, SquaredLoss):
        Y = np.column_stack([np.roll(t, c) for c in range(n_outputs)])
    elif isinstance(loss, BinaryLogLoss):
        Y = np.where(t > 0, 1.0, -1.0)[:, None]
    else:
        Y = np.eye(3)[np.digitize(t, np.quantile(t, [1 / 3, 2 / 3]))]
    return X, whiten(X).Ut, Y


def _solve(Ut, D, Y, loss, beta):
    import warnings

    # Clarabel stops about 1e-6 short on the joint softmax program (the
    # certificate sees it: M / beta = 1.0001); SCS reaches 1e-10 there.
    options = (
        {"solver": "SCS", "eps": 1e-10, "max_iters": 200_000}
        if isinstance(loss, MultinomialLogLoss)
        else None
    )
    program = ConvexProgram(Ut, D, Y, loss, beta)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = solve_cvxpy(program, tol=1e-10, solver_options=options)
    if not result.converged and isinstance(loss, BinaryLogLoss):
        # With cvxpy 1.9 Clarabel also stops short on some binary programs
        # (optimal_inaccurate, M / beta = 1.00002 at the optimum): the torch
        # solver, tested against Clarabel in test_torch_solver.py, finishes
        # from its point to a certified 1e-10.
        result = solve_torch(program, W0=(result.Wp, result.Wn), tol=1e-10,
                             max_iter=50_000)
    return result


def _certify(Ut, D, Y, loss, beta, result, **kwargs):
    F = ConvexProgram(Ut, D, Y, loss, beta).predict(result.Wp, result.Wn)
    return optimality_certificate(
        Ut, F, Y, loss, beta, primal=result.objective, **kwargs
    )


# ---------------------------------------------------------------------------
# The dual-constraint maximum M


# With and without the refined bounds of the candidates (which the search
# skips at large n and small rank, where exact projections are cheaper).
REFINE = pytest.mark.parametrize("refine", [True, False], ids=["refined", "unrefined"])


@REFINE
@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("d", [2, 3])
def test_exact_M_matches_dense_sampling_of_the_sphere(seed, d, refine, monkeypatch):
    monkeypatch.setattr(cert_module, "_refine_pays", lambda n, k: refine)
    rng = np.random.default_rng(seed)
    n = 15
    Ut = whiten(rng.standard_normal((n, d))).Ut
    lam = rng.standard_normal((n, 1))
    # F = -lam under the squared loss with Y = 0 gives -grad = lam.
    cert = optimality_certificate(
        Ut, -lam, np.zeros((n, 1)), SquaredLoss(), 1.0, primal=1.0, mode="exact"
    )
    Z = rng.standard_normal((d + 1, 400_000))
    Z /= np.linalg.norm(Z, axis=0)
    sampled = np.abs(lam[:, 0] @ np.maximum(Ut @ Z, 0.0)).max()
    # The sampled maximum is attained, so it never exceeds the exact one;
    # the sample spacing (about 4e-3 on S^2, 3e-2 on S^3) times the
    # Lipschitz constant ||lam|| bounds the shortfall.
    assert sampled <= cert.M[0] + 1e-12
    spacing = 4e-3 if d == 2 else 3e-2
    assert cert.M[0] - sampled <= spacing * np.linalg.norm(lam)
    assert cert.exact and cert.M_upper[0] == cert.M[0]


def test_exact_M_matches_per_pattern_cone_programs():
    import cvxpy as cp

    rng = np.random.default_rng(7)
    n, d = 9, 2
    Ut = whiten(rng.standard_normal((n, d))).Ut
    lam = rng.standard_normal((n, 1))
    cert = optimality_certificate(
        Ut, -lam, np.zeros((n, 1)), SquaredLoss(), 1.0, primal=1.0, mode="exact"
    )
    best = 0.0
    z = cp.Variable(d + 1)
    for col in enumerate_patterns(Ut).T:
        S = np.where(col, 1.0, -1.0)[:, None]
        g = Ut.T @ (col * lam[:, 0])
        for sign in (1.0, -1.0):
            prob = cp.Problem(
                cp.Maximize(sign * g @ z), [cp.norm(z) <= 1, (S * Ut) @ z >= 0]
            )
            prob.solve(solver="CLARABEL")
            best = max(best, prob.value)
    np.testing.assert_allclose(cert.M[0], best, rtol=1e-7)


@pytest.mark.parametrize("loss", [SquaredLoss(), BinaryLogLoss()])
@pytest.mark.parametrize("seed", [0, 1])
def test_M_at_zero_is_the_threshold_of_the_zero_network(loss, seed):
    # At F = 0 the certificate's M is beta_max: for beta above it the
    # global optimum (cvxpy over every pattern) is the zero network, below
    # it is not. This checks the exact M without using its code.
    n, d = 12, 2
    _, Ut, Y = _problem(n, d, loss, seed)
    D = enumerate_patterns(Ut)
    F0 = np.zeros_like(Y)
    cert = optimality_certificate(
        Ut, F0, Y, loss, 1.0, primal=loss.value(F0, Y), all_patterns=D
    )
    M = cert.M[0]
    above = _solve(Ut, D, Y, loss, 1.01 * M)
    below = _solve(Ut, D, Y, loss, 0.97 * M)
    zero_value = loss.value(F0, Y)
    # Above beta_max no point beats the zero network (the solver's point is
    # feasible, so its value is an upper bound of the optimum; Clarabel's
    # exponential-cone points can be a little worse than zero, never better).
    assert above.objective >= zero_value * (1 - 1e-7)
    assert below.objective < zero_value * (1 - 1e-6)


@REFINE
@pytest.mark.parametrize("n_outputs", [1, 3])
def test_search_mode_bounds_the_exact_maximum(n_outputs, refine, monkeypatch):
    monkeypatch.setattr(cert_module, "_refine_pays", lambda n, k: refine)
    rng = np.random.default_rng(3)
    n, d = 20, 3
    Ut = whiten(rng.standard_normal((n, d))).Ut
    for trial in range(3):
        lam = rng.standard_normal((n, n_outputs))
        args = (Ut, -lam, np.zeros((n, n_outputs)), SquaredLoss(), 1.0)
        exact = optimality_certificate(*args, primal=1.0, mode="exact")
        search = optimality_certificate(
            *args, primal=1.0, mode="search", random_state=trial
        )
        assert not search.exact and not search.certified
        # Search values are attained (lower bounds); M_upper is proven.
        assert np.all(search.M <= exact.M * (1 + 1e-12))
        assert np.all(search.M_upper >= exact.M)
        # On a problem this small the search finds every output's maximum
        # (each output's ascent scores its own candidates).
        np.testing.assert_allclose(search.M, exact.M, rtol=1e-9)


def test_cheap_bounds_in_chunks(monkeypatch):
    """The memory-capped chunks (and their cached slices) of the cheap
    bounds change nothing."""
    import skbnconvex._certificate as cert

    rng = np.random.default_rng(5)
    n, C = 30, 3
    Ut = whiten(rng.standard_normal((n, 4))).Ut
    D = sample_patterns(Ut, 25, random_state=0)
    lam = rng.standard_normal((n, C))
    ub, G = cert._upper_bounds(Ut, D, lam)
    monkeypatch.setattr(cert, "_CHUNK_ENTRIES", 4 * n * C)  # 4 patterns a chunk
    monkeypatch.setattr(cert, "_CACHE_ENTRIES", 2 * n)  # slices of 2 patterns
    ub_c, G_c = cert._upper_bounds(Ut, D, lam)
    np.testing.assert_allclose(ub_c, ub, rtol=1e-13)
    np.testing.assert_allclose(G_c, G, rtol=1e-13)
    # They are the half-space bounds, written out here one by one, and upper
    # bounds of the exact projection norms (NNLS).
    for c in range(C):
        for p in range(D.shape[1]):
            g = Ut.T @ (D[:, p] * lam[:, c])
            np.testing.assert_allclose(G[c, p], g, atol=1e-12)
            A = Ut * np.where(D[:, p], 1.0, -1.0)[:, None]
            for s, sign in enumerate((1.0, -1.0)):
                cut = np.max(np.minimum(A @ (sign * g), 0.0) ** 2 / np.sum(A * A, 1))
                assert ub[c, s, p] == pytest.approx(np.sqrt(max(g @ g - cut, 0.0)), abs=1e-12)
                value, _, _ = cert._cone_projection(Ut, D[:, p], sign * g)
                assert value <= ub[c, s, p] * (1 + 1e-10) + 1e-12
    # In float32 (the search's estimates): the same bounds and gradients to
    # single precision, relative to the largest.
    ub32, G32 = cert._upper_bounds(Ut, D, lam, dtype=np.float32)
    assert ub32.dtype == np.float64 and G32.dtype == np.float32
    np.testing.assert_allclose(ub32, ub, rtol=0, atol=1e-5 * ub.max())
    np.testing.assert_allclose(G32, G, rtol=0, atol=1e-5 * np.abs(G).max())
    # Half-spaces of a subset of the rows (every fourth, as at large n): the
    # same gradients, bounds no tighter and still above the projections.
    monkeypatch.setattr(cert, "_CUT_ROWS", 8)
    ub_s, G_s = cert._upper_bounds(Ut, D, lam)
    np.testing.assert_allclose(G_s, G, rtol=1e-13)
    assert np.all(ub_s >= ub * (1 - 1e-13))
    assert np.any(ub_s > ub * (1 + 1e-6))
    for c in range(C):
        for p in range(D.shape[1]):
            for s, sign in enumerate((1.0, -1.0)):
                value, _, _ = cert._cone_projection(Ut, D[:, p], sign * G[c, p])
                assert value <= ub_s[c, s, p] * (1 + 1e-10) + 1e-12


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_ascent_visits_the_cells_of_its_iterates(dtype):
    """The search's ascent against the iteration written out here, one
    start at a time: the same patterns, in the same order, for every start
    and step."""
    rng = np.random.default_rng(7)
    n, d, m, n_iter = 60, 4, 5, 6
    Ut = whiten(rng.standard_normal((n, d))).Ut
    lam = rng.standard_normal(n)
    starts = rng.standard_normal((d + 1, m))
    visited = cert_module._ascent(
        Ut.astype(dtype), lam.astype(dtype), starts.astype(dtype), n_iter
    )
    assert visited.shape == (n, m * n_iter) and visited.dtype == bool
    expected = np.empty((n, m * n_iter), dtype=bool)
    for j in range(m):
        z = starts[:, j] / np.linalg.norm(starts[:, j])
        for it in range(n_iter):
            D = Ut @ z >= 0
            expected[:, it * m + j] = D
            g = Ut.T @ (D * lam)
            z = 0.5 * z + 0.5 * g / np.linalg.norm(g)
            z /= np.linalg.norm(z)
    # float32 may flip a row whose margin is at round-off: none here.
    np.testing.assert_array_equal(visited, expected)
    # Its columns are contiguous (pack_patterns reads them so).
    assert visited.flags.f_contiguous


@pytest.mark.parametrize("spectral_power", [0.0, 0.5])
def test_refined_bounds_bound_the_projections(spectral_power):
    """Projected-gradient bounds lie between the exact norm and the cheap bound."""
    from scipy.optimize import nnls

    import skbnconvex._certificate as cert

    rng = np.random.default_rng(3)
    n = 60
    Ut = whiten(rng.standard_normal((n, 5)), spectral_power=spectral_power).Ut
    D = sample_patterns(Ut, 40, random_state=1)
    lam = rng.standard_normal((n, 1))
    ub, G = cert._upper_bounds(Ut, D, lam)
    S = 2.0 * D.T - 1.0
    exact = np.empty((2, D.shape[1]))
    refined = np.empty_like(exact)
    for s, sign in enumerate((1.0, -1.0)):
        refined[s] = cert._refined_bounds(Ut, S, sign * G[0])
        for p in range(D.shape[1]):
            # ||P_K(g)|| = min_{mu >= 0} ||g + K^T mu|| (scipy NNLS, all rows).
            K = S[p][:, None] * Ut
            exact[s, p] = nnls(K.T, -sign * G[0, p])[1]
    assert np.all(refined >= exact * (1 - 1e-9) - 1e-12)
    assert np.all(refined <= np.linalg.norm(G[0], axis=1) * (1 + 1e-12))
    # Tighter than the half-space bounds where those are loose.
    loose = ub[0] > 1.5 * exact + 1e-9
    assert loose.any()
    assert np.all(refined[loose] < ub[0][loose])


# ---------------------------------------------------------------------------
# Certified exactly at the global optimum; the lower bound is a lower bound

CASES = [
    (SquaredLoss(), 14, 3, 0.05),
    (SquaredLoss(), 16, 2, 0.2),
    (BinaryLogLoss(), 12, 2, 0.05),
    (BinaryLogLoss(), 12, 3, 0.1),
]


@pytest.mark.parametrize("loss, n, d, beta", CASES)
@pytest.mark.parametrize("seed", [0, 1])
def test_certified_iff_objective_is_the_enumerated_optimum(loss, n, d, beta, seed):
    _, Ut, Y = _problem(n, d, loss, seed)
    D_all = enumerate_patterns(Ut)
    reference = _solve(Ut, D_all, Y, loss, beta).objective
    programs = [D_all] + [
        sample_patterns(Ut, P, random_state=seed) for P in (2, 5, 15, 40)
    ]
    for D in programs:
        result = _solve(Ut, D, Y, loss, beta)
        # Clarabel's exponential-cone solutions are accurate to about 1e-6.
        cert = _certify(Ut, D, Y, loss, beta, result, all_patterns=D_all, tol=1e-5)
        rel = (result.objective - reference) / reference
        assert cert.lower_bound <= reference * (1 + 1e-9)
        assert cert.proven_lower_bound <= reference * (1 + 1e-9)
        assert cert.gap >= -1e-9
        if rel < 1e-7:
            assert cert.certified, (D.shape, rel, cert.M / beta)
        elif rel > 1e-4:
            assert not cert.certified, (D.shape, rel, cert.M / beta)
            assert cert.patterns.shape[1] >= 1
            assert np.all(cert.scores > beta)


@pytest.mark.parametrize("seed", [0, 1])
def test_search_lower_bound_never_exceeds_the_optimum(seed):
    loss = SquaredLoss()
    _, Ut, Y = _problem(14, 3, loss, seed)
    D_all = enumerate_patterns(Ut)
    reference = _solve(Ut, D_all, Y, loss, 0.05).objective
    D = sample_patterns(Ut, 10, random_state=seed)
    result = _solve(Ut, D, Y, loss, 0.05)
    cert = _certify(Ut, D, Y, loss, 0.05, result, mode="search", random_state=0)
    assert cert.proven_lower_bound <= reference
    # The search found the true maximum here, so its bound is valid too.
    assert cert.lower_bound <= reference * (1 + 1e-9)
    assert cert.gap > 0


def test_multinomial_lower_bound():
    loss = MultinomialLogLoss()
    _, Ut, Y = _problem(10, 2, loss, 0)
    D_all = enumerate_patterns(Ut)
    beta = 0.1
    reference = _solve(Ut, D_all, Y, loss, beta).objective
    for D in (D_all, sample_patterns(Ut, 4, random_state=0)):
        result = _solve(Ut, D, Y, loss, beta)
        cert = _certify(Ut, D, Y, loss, beta, result, all_patterns=D_all)
        assert cert.lower_bound <= reference * (1 + 1e-9)
        # One global scale keeps the rows of Y - lam on the simplex: a
        # finite entropy bound, not -inf.
        assert np.isfinite(cert.lower_bound)
    full = _certify(
        Ut, D_all, Y, loss, beta, _solve(Ut, D_all, Y, loss, beta),
        all_patterns=D_all,
    )
    assert full.certified and full.gap < 1e-6


# ---------------------------------------------------------------------------
# Column generation


@pytest.mark.parametrize(
    "loss, n, d, beta", [(SquaredLoss(), 20, 3, 0.05), (BinaryLogLoss(), 14, 3, 0.05)]
)
def test_column_generation_reaches_the_enumerated_optimum(loss, n, d, beta):
    _, Ut, Y = _problem(n, d, loss, 0)
    D_all = enumerate_patterns(Ut)
    reference = _solve(Ut, D_all, Y, loss, beta).objective
    # Clarabel's exponential-cone points stall at a gap of about 1e-6, which
    # the certificate (tol 1e-6) rightly refuses; SCS reaches 1e-10.
    solve = (
        cvxpy_solver(tol=1e-10, solver_options={"solver": "SCS", "eps": 1e-10,
                                                "max_iters": 200_000})
        if isinstance(loss, BinaryLogLoss)
        else None
    )
    cg = column_generation(
        Ut, Y, loss, beta, solve, n_initial=5, patterns_per_round=5, random_state=0
    )
    assert cg.converged and cg.certificate.certified
    assert cg.result.objective == pytest.approx(reference, rel=1e-7)
    assert cg.patterns.shape[1] <= D_all.shape[1] // 10
    objectives = [h["objective"] for h in cg.history]
    lower = [h["lower_bound"] for h in cg.history]
    assert max(lower) <= reference * (1 + 1e-9)
    assert objectives[-1] <= objectives[0]
    # cvxpy ignores the looser tol of intermediate rounds: no round is
    # spent solving the same program again to the final accuracy.
    assert all(h["added"] > 0 for h in cg.history[:-1])


@pytest.mark.parametrize("loss", [SquaredLoss(), BinaryLogLoss()])
def test_inexact_rounds_still_reach_the_enumerated_optimum(loss):
    """Intermediate rounds solved to a fraction of the gap, the last to tol."""
    from skbnconvex._column_generation import _INEXACT, torch_solver

    # n = 16: 1 151 patterns to enumerate for the reference (n = 20: 2 319,
    # and 70 s of Clarabel on the binary program).
    _, Ut, Y = _problem(16, 3, loss, 0)
    beta = 0.05
    reference = _solve(Ut, enumerate_patterns(Ut), Y, loss, beta).objective
    base = torch_solver(tol=1e-9, max_iter=50_000)
    tols = []

    def solve(program, W0, tol=None):
        tols.append(tol)
        return base(program, W0, tol)

    cg = column_generation(
        Ut, Y, loss, beta, solve, n_initial=5, tol=1e-7, random_state=0
    )
    assert cg.converged and cg.certificate.certified
    # Lower than Clarabel's value for the log loss: there Clarabel is the
    # less accurate one (exponential cones, doc/benchmarks.md section 3).
    assert cg.result.objective <= reference * (1 + 1e-7)
    assert cg.result.objective >= cg.certificate.lower_bound * (1 - 1e-12)
    assert tols[0] is None and any(t is not None for t in tols)
    for entry, t in zip(cg.history, tols[1:]):
        if t is not None:
            assert t == max(1e-7, _INEXACT * entry["gap"])


@pytest.mark.parametrize("case", ["only round", "sampled start", "every pattern"])
def test_rounds_on_a_budget_are_solved_again_before_the_loop_stops(case):
    """With proposals every round is intermediate, the first too (unless it
    is the only one); a round that did not reach its tol within its budget
    counts as inexact even when that tol was the final one. It used to
    count as solved: started from every pattern (nothing left to add), the
    loop stopped after the first round, not converged, with "no new
    violated pattern found" at a point short of ``tol``."""
    from skbnconvex._column_generation import torch_solver

    loss = SquaredLoss()
    _, Ut, Y = _problem(16, 3, loss, 0)
    beta = 0.05
    D_all = enumerate_patterns(Ut)
    reference = _solve(Ut, D_all, Y, loss, beta).objective
    exact = torch_solver(tol=1e-8, max_iter=50_000)
    tols, converged = [], []

    def solve(program, W0, tol=None):
        # As the estimators do: a round with a tol of its own on a budget
        # (here too small to reach it).
        tols.append(tol)
        if tol is None:
            res = exact(program, W0)
        else:
            res = torch_solver(tol=tol, max_iter=5)(program, W0)
        converged.append(res.converged)
        return res

    cg = column_generation(
        Ut, Y, loss, beta, solve, n_initial=5, tol=1e-7,
        max_rounds=1 if case == "only round" else 30,
        initial_patterns=D_all if case == "every pattern" else None,
        certificate_mode="exact", propose=lambda program, result: None,
        random_state=0,
    )
    if case == "only round":
        # The only round is the result: solved to tol (the round budget
        # ends the loop before the optimum over all patterns).
        assert tols == [None] and converged == [True]
        return
    assert tols[0] == 1e-7 and not converged[0]
    if case == "every pattern":
        assert tols == [1e-7, None]
    # Ends on a solve to the final accuracy, certified.
    assert tols[-1] is None and converged[-1]
    assert cg.converged and cg.certificate.certified
    assert cg.result.objective == pytest.approx(reference, rel=1e-7)


def test_round_times_end_before_the_next_rounds_proposal():
    """``history`` times say when a round's solution and certificate were
    ready: a slow proposal (the estimators' Adam run) counts for the next
    round, as it would not run in a fit whose rounds ended there."""
    import time

    loss = SquaredLoss()
    _, Ut, Y = _problem(16, 3, loss, 0)
    called = []

    def propose(program, result):
        called.append(time.perf_counter())
        time.sleep(0.3)
        return None

    t0 = time.perf_counter()
    cg = column_generation(
        Ut, Y, loss, 0.05, n_initial=5, max_rounds=3, propose=propose,
        certificate_mode="exact", random_state=0,
    )
    assert len(called) == 2 and len(cg.history) == 3
    for entry, t_call in zip(cg.history, called):
        # start >= t0, so t0 + time <= start + time <= t_call.
        assert t0 + entry["time"] <= t_call
    assert cg.history[2]["time"] >= cg.history[1]["time"] + 0.3


@pytest.mark.parametrize("light_finds", ["violators", "nothing"])
def test_rounds_before_a_proposal_use_a_light_search(monkeypatch, light_finds):
    """In search mode with proposals, the certificates of the rounds that a
    proposal follows use ``_ROUND_SEARCH`` (capped by the caller's options);
    the loop's last certificate, the one returned, uses the caller's
    options, and so does any round whose light search found no new violated
    pattern (the loop may stop or re-solve on it)."""
    import skbnconvex._column_generation as cg_module
    from skbnconvex._column_generation import torch_solver
    from skbnconvex._patterns import unique_patterns

    if light_finds == "nothing":
        # A search of nothing but the program's own patterns.
        monkeypatch.setattr(cg_module, "_ROUND_SEARCH", dict(
            n_samples=0, n_starts=0, n_ascent=0, n_flip_rounds=0, max_checks=0))
    light = dict(cg_module._ROUND_SEARCH)
    calls = []
    certify = cg_module.optimality_certificate

    def spy(*args, **kwargs):
        cert = certify(*args, **kwargs)
        calls.append((kwargs, cert))
        return cert

    monkeypatch.setattr(cg_module, "optimality_certificate", spy)
    loss = SquaredLoss()
    _, Ut, Y = _problem(60, 8, loss, 0)
    options = {"n_samples": 300, "n_starts": 4}
    full = {**options}
    capped = {**light, "n_samples": min(300, light["n_samples"]),
              "n_starts": min(4, light["n_starts"])}
    cg = column_generation(
        Ut, Y, loss, 0.02, torch_solver(tol=1e-8, max_iter=5000), n_initial=5,
        max_rounds=4, certificate_mode="search", certificate_options=options,
        propose=lambda program, result: None, random_state=0,
    )
    assert len(cg.history) == 4

    def search(kwargs):
        return {key: kwargs[key] for key in cg_module._ROUND_SEARCH if key in kwargs}

    # The last call is the loop's last round, with the caller's options.
    assert search(calls[-1][0]) == full and cg.certificate is calls[-1][1]
    rounds = []  # the calls of each round (one primal point each)
    for kwargs, cert in calls:
        if rounds and rounds[-1][0][0]["primal"] == kwargs["primal"]:
            rounds[-1].append((kwargs, cert))
        else:
            rounds.append([(kwargs, cert)])
    assert len(rounds) == 4
    for calls_of_round in rounds[:-1]:
        kwargs, cert = calls_of_round[0]
        assert search(kwargs) == capped
        D = kwargs["patterns"]
        nothing_new = unique_patterns(cert.patterns, exclude=D).shape[1] == 0
        if nothing_new or cert.gap <= 1e-6:
            assert [search(k) for k, _ in calls_of_round[1:]] == [full]
        else:
            assert len(calls_of_round) == 1
    if light_finds == "nothing":
        assert all(len(calls_of_round) == 2 for calls_of_round in rounds[:-1])
    else:
        assert any(len(calls_of_round) == 1 for calls_of_round in rounds[:-1])


def test_exact_rounds_before_a_proposal_stay_exact(monkeypatch):
    import skbnconvex._column_generation as cg_module

    modes = []
    certify = cg_module.optimality_certificate

    def spy(*args, **kwargs):
        modes.append((kwargs["mode"], "max_checks" in kwargs))
        return certify(*args, **kwargs)

    monkeypatch.setattr(cg_module, "optimality_certificate", spy)
    loss = SquaredLoss()
    _, Ut, Y = _problem(16, 3, loss, 0)
    column_generation(
        Ut, Y, loss, 0.05, n_initial=5, max_rounds=3, certificate_mode="exact",
        propose=lambda program, result: None, random_state=0,
    )
    assert len(modes) >= 2 and set(modes) == {("exact", False)}


def test_column_generation_respects_the_budget():
    loss = SquaredLoss()
    _, Ut, Y = _problem(20, 3, loss, 1)
    cg = column_generation(
        Ut, Y, loss, 0.02, n_initial=3, max_patterns=8, max_rounds=4,
        patterns_per_round=3, random_state=0,
    )
    assert all(h["n_patterns"] <= 8 for h in cg.history)
    assert len(cg.history) <= 4
    assert not cg.converged and cg.message


def test_column_generation_accepts_any_solver():
    calls = []

    def solve(program, W0, tol=None):
        # W0 holds blocks for the first P0 patterns of the new program.
        if W0 is not None:
            assert W0[0].shape[1] <= program.n_patterns
            assert W0[0].shape[::2] == (program.n_outputs, program.k)
        calls.append(program.n_patterns)
        return cvxpy_solver(tol=1e-10)(program, W0)

    loss = SquaredLoss()
    _, Ut, Y = _problem(14, 2, loss, 0)
    cg = column_generation(Ut, Y, loss, 0.05, solve, n_initial=4, random_state=0)
    assert cg.certificate.certified and len(calls) == cg.n_rounds


# ---------------------------------------------------------------------------
# Closed form


@pytest.mark.parametrize(
    "n, d, C, beta", [(6, 5, 1, 0.3), (7, 6, 2, 0.2), (6, 9, 1, 0.05), (6, 5, 2, 2.0)]
)
def test_closed_form_equals_cvxpy_over_all_patterns(n, d, C, beta):
    rng = np.random.default_rng(n + d + C)
    X = rng.standard_normal((n, d))
    whitening = whiten(X)
    Ut = whitening.Ut
    assert Ut.shape == (n, n)
    Y = rng.standard_normal((n, C))
    solution = closed_form_solution(Ut, Y, beta)
    D_all = enumerate_patterns(Ut)
    program = ConvexProgram(Ut, D_all, Y, SquaredLoss(), beta)
    reference = _solve(Ut, D_all, Y, SquaredLoss(), beta)
    assert abs(solution.objective - reference.objective) <= 1e-7
    np.testing.assert_allclose(
        solution.F, program.predict(reference.Wp, reference.Wn), atol=1e-7
    )
    # The blocks are a feasible point of their own program with that value,
    # and the recovered network predicts F.
    own = ConvexProgram(Ut, solution.D, Y, SquaredLoss(), beta)
    assert own.cone_violation(solution.Wp, solution.Wn) <= 1e-12
    assert own.objective(solution.Wp, solution.Wn) == pytest.approx(
        solution.objective, rel=1e-12
    )
    network = recover_network(whitening, solution.Wp, solution.Wn)
    np.testing.assert_allclose(network.forward(X), solution.F, atol=1e-9)


def test_closed_form_rejects_low_rank():
    Ut = whiten(np.random.default_rng(0).standard_normal((10, 3))).Ut
    with pytest.raises(ValueError, match="square"):
        closed_form_solution(Ut, np.ones((10, 1)), 0.1)


@pytest.mark.parametrize("n_outputs", [1, 3])
def test_solver_dual_bounds_bound_every_block_and_spare_projections(
    n_outputs, monkeypatch
):
    """The torch solver's dual bounds, handed to the certificate.

    Every bound is at least the block's exact value (an NNLS projection,
    not the solver's Lawson-Hanson); with them the exact certificate finds
    the same maximum, certification and violators with fewer exact
    projections (the cheap bounds unrefined, as at large n). float32
    solves and cvxpy hand none on.
    """
    monkeypatch.setattr(cert_module, "_refine_pays", lambda n, k: False)
    loss = SquaredLoss() if n_outputs == 1 else MultinomialLogLoss()
    X, Ut, Y = _problem(40, 2, loss, seed=3, n_outputs=n_outputs)
    D = sample_patterns(Ut, 30, np.random.RandomState(0))
    lam0 = -loss.gradient(np.zeros_like(Y), Y)
    beta = 0.1 * np.linalg.norm(lam0, axis=0).max()
    program = ConvexProgram(Ut, D, Y, loss, beta)
    result = solve_torch(program, tol=1e-9, max_iter=20_000)
    assert result.converged
    bounds = result.dual_bounds
    assert bounds.shape == (n_outputs, 2, D.shape[1])
    lam = -loss.gradient(program.predict(result.Wp, result.Wn), Y)
    for c in range(n_outputs):
        for i in range(D.shape[1]):
            g = Ut.T @ (D[:, i] * lam[:, c])
            for s, sign in enumerate((1.0, -1.0)):
                value = cert_module._cone_projection(Ut, D[:, i], sign * g)[0]
                assert bounds[c, s, i] >= value * (1 - 1e-9) - 1e-12
    plain = _certify(Ut, D, Y, loss, beta, result, patterns=D, mode="exact")
    handed = _certify(Ut, D, Y, loss, beta, result, patterns=D,
                      pattern_bounds=bounds, mode="exact")
    np.testing.assert_allclose(handed.M, plain.M, rtol=1e-12)
    assert handed.certified == plain.certified
    np.testing.assert_array_equal(handed.patterns, plain.patterns)
    assert handed.n_checked < plain.n_checked
    # The signs' order: bounds of zero for sign - leave only sign + to
    # project (the program's patterns only, no search).
    one_sided = np.stack((np.full_like(bounds[:, 0], np.inf), 0 * bounds[:, 1]), axis=1)
    only_plus = _certify(Ut, D, Y, loss, beta, result, patterns=D,
                         pattern_bounds=one_sided, mode="search", n_samples=0,
                         n_starts=0, n_ascent=0, n_flip_rounds=0)
    assert np.all(only_plus.maximisers[:, 1] == 0)
    assert np.any(only_plus.maximisers[:, 0] != 0)
    assert solve_torch(program, tol=1e-4, dtype=torch.float32).dual_bounds is None
    assert solve_cvxpy(ConvexProgram(Ut, D[:, :5], Y[:, :1], SquaredLoss(), beta)
                       ).dual_bounds is None


def test_search_skips_candidates_seen_before():
    """The scorer keeps digests, not columns: repeats and empty patterns are
    dropped, first occurrences kept in order (as unique_patterns does)."""
    from skbnconvex._certificate import _Scorer
    from skbnconvex._patterns import unique_patterns

    rng = np.random.default_rng(6)
    n = 19
    Ut = whiten(rng.standard_normal((n, 3))).Ut
    scorer = _Scorer(Ut, rng.standard_normal((n, 2)), 0.1, n_keep=5)
    # Arrangement patterns (with non-empty cones), a repeat and an empty one.
    D = sample_patterns(Ut, 16, random_state=0)
    D1 = D[:, :12].copy()
    D1[:, 3] = D1[:, 7]
    D1[:, 5] = False
    assert scorer.add(D1) == unique_patterns(D1).shape[1] == 10
    D2 = np.column_stack([D1[:, :4], D[:, 12:], D[:, 5], D1[:, 4:6]])
    expected = unique_patterns(D2, exclude=D1)
    assert scorer.add(D2) == expected.shape[1] == 5
    assert scorer.n_seen == 15
    # Violators are columns of the candidates, as scored.
    D_viol, scores = scorer.violators(0.0)
    known = np.column_stack([D1, D2])
    assert D_viol.shape[1] == 5
    for j in range(D_viol.shape[1]):
        assert (known == D_viol[:, [j]]).all(axis=0).any()
    assert np.all(np.diff(scores) <= 0)


@pytest.mark.parametrize("max_checks", [1, 7, 40])
def test_search_stages_keep_their_cap_on_exact_projections(max_checks):
    """The scorer's batches (doubling from one) never take a stage past its
    max_checks, and the best value is the largest of those it solved."""
    from skbnconvex._certificate import _Scorer

    rng = np.random.default_rng(4)
    n = 60
    Ut = whiten(rng.standard_normal((n, 4))).Ut
    # A tiny beta: every candidate is needed (a violator), so only the cap
    # stops the stage.
    scorer = _Scorer(Ut, rng.standard_normal((n, 1)), 1e-9, n_keep=1000)
    D = sample_patterns(Ut, 30, random_state=1)
    scorer.add(D, max_checks=max_checks)
    assert scorer.n_checked == min(max_checks, 2 * D.shape[1])
    solved = [value for value, *_ in scorer.solved]
    assert scorer.best[0] == max(solved)
    scorer.add(sample_patterns(Ut, 60, random_state=2), max_checks=max_checks)
    assert scorer.n_checked <= 2 * max_checks


def test_registered_candidates_are_scored_later_for_every_output():
    """Candidates registered before a stage (the search's samples, before
    its ascent) hide their repeats from that stage and are scored later for
    every output: each output's best value is the largest projection of
    every candidate and sign, by SciPy's NNLS over all rows."""
    from scipy.optimize import nnls as scipy_nnls

    from skbnconvex._certificate import _Scorer

    rng = np.random.default_rng(5)
    n, C = 40, 3
    Ut = whiten(rng.standard_normal((n, 3))).Ut
    lam = rng.standard_normal((n, C))
    D = sample_patterns(Ut, 40, random_state=0)
    # beta above every value: only the maxima are needed.
    scorer = _Scorer(Ut, lam, 1e3, n_keep=0)
    new = scorer.register(D)
    assert new.shape[1] == D.shape[1]  # distinct and not empty
    # An output's own stage sees the registered columns as repeats.
    assert scorer.add(D[:, :7], output=0) == 0
    assert scorer.n_checked == 0
    assert scorer.add(new, registered=True) == D.shape[1]
    # ||P_K(g)|| = min_{mu >= 0} ||g + A^T mu||, A = (2 D - 1) U'.
    expected = [
        max(
            scipy_nnls(Ut.T * np.where(D[:, p], 1.0, -1.0),
                       -s * Ut.T @ (D[:, p] * lam[:, c]), maxiter=100 * n)[1]
            for p in range(D.shape[1]) for s in (1.0, -1.0)
        )
        for c in range(C)
    ]
    np.testing.assert_allclose(scorer.best, expected, rtol=1e-10)


@pytest.mark.parametrize("n, d", [(12, 3), (300, 8)])
def test_batched_cone_projections_equal_single_nnls(n, d):
    """The batched projections (Lawson-Hanson over the candidates at once)
    equal a single NNLS over all n rows (scipy) per candidate: value,
    maximiser, and active rows that are tight; ``-g`` of the same patterns
    too (the other sign of the certificate)."""
    from scipy.optimize import nnls as scipy_nnls

    from skbnconvex._certificate import _cone_projections

    rng = np.random.default_rng(3)
    Ut = whiten(rng.standard_normal((n, d))).Ut
    D = sample_patterns(Ut, 20, random_state=0)
    G = rng.standard_normal((D.shape[1], d + 1))
    D, G = np.hstack([D, D]), np.vstack([G, -G])
    values, Z, active = _cone_projections(Ut, D, G)
    for p in range(D.shape[1]):
        A = Ut * np.where(D[:, p], 1.0, -1.0)[:, None]
        mu, dist = scipy_nnls(A.T, -G[p], maxiter=100 * n)
        assert values[p] == pytest.approx(dist, rel=1e-9, abs=1e-12)
        if dist > 1e-9:
            np.testing.assert_allclose(values[p] * Z[p], G[p] + A.T @ mu, atol=1e-9)
            assert np.all(A @ Z[p] >= -1e-10)
            assert active[p].any()
            np.testing.assert_allclose(A[active[p]] @ Z[p], 0.0, atol=1e-10)
    assert (values < 1e-9).any() and (values > 1e-9).sum() > 10  # both cases seen


@pytest.mark.parametrize("n, d", [(12, 3), (2000, 6)])
def test_cone_projection_on_row_working_sets(n, d):
    """The projection from working sets of rows equals a single NNLS over
    all n rows (scipy), value and maximiser; its active rows are tight."""
    from scipy.optimize import nnls as scipy_nnls

    from skbnconvex._certificate import _cone_projection

    rng = np.random.default_rng(7)
    Ut = whiten(rng.standard_normal((n, d))).Ut
    D = sample_patterns(Ut, 15, random_state=0)
    for p in range(D.shape[1]):
        g = rng.standard_normal(d + 1)
        A = Ut * np.where(D[:, p], 1.0, -1.0)[:, None]
        mu, dist = scipy_nnls(A.T, -g, maxiter=100 * n)
        value, z, active = _cone_projection(Ut, D[:, p], g)
        assert value == pytest.approx(dist, rel=1e-9, abs=1e-12)
        if dist > 1e-9:
            np.testing.assert_allclose(value * z, g + A.T @ mu, atol=1e-9)
            assert np.all(A @ z >= -1e-10)
            np.testing.assert_allclose(A[active] @ z, 0.0, atol=1e-10)
