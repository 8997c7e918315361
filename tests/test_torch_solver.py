"""The torch solver of program (C) against the cvxpy (Clarabel) optimum."""

import numpy as np
import pytest
import scipy.linalg
import torch

from skbnconvex._losses import BinaryLogLoss, MultinomialLogLoss, SquaredLoss
from skbnconvex._program import ConvexProgram
from skbnconvex._solvers._cvxpy import solve_cvxpy
from skbnconvex._solvers._torch import solve_torch


def _program(loss, n_outputs=1, n=40, d=3, P=20, beta_frac=0.15, seed=0):
    """Whitened Gaussian data, patterns of random directions, beta below max."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    U, s, _ = np.linalg.svd(X - X.mean(0), full_matrices=False)
    Ut = np.hstack([U, np.full((n, 1), 1 / np.sqrt(n))])
    D = Ut @ rng.standard_normal((d + 1, P)) >= 0
    f = np.maximum(X @ rng.standard_normal((d, n_outputs)), 0)
    f += 0.3 * rng.standard_normal(f.shape)
    if loss == "squared":
        Y, L = f, SquaredLoss()
    elif loss == "binary":
        Y, L = np.where(f > np.median(f), 1.0, -1.0), BinaryLogLoss()
    else:
        Y, L = np.eye(n_outputs)[np.argmax(f, axis=1)], MultinomialLogLoss()
    # beta_max: the smallest beta whose optimum is zero (MATH.md section 4).
    lam = -L.gradient(np.zeros_like(Y), Y)
    g = np.einsum("np,nc,nk->cpk", D.astype(float), lam, Ut)
    beta = beta_frac * np.linalg.norm(g, axis=2).max()
    return ConvexProgram(Ut, D, Y, L, beta)


CASES = [
    ("squared", 1, 0.1, 0),
    ("squared", 1, 0.3, 1),
    ("squared", 2, 0.15, 2),
    ("binary", 1, 0.1, 3),
    ("binary", 1, 0.3, 4),
    ("multinomial", 3, 0.2, 5),
]


@pytest.fixture(scope="module")
def references():
    """Clarabel optima of the test programs, solved once."""
    out = {}
    for case in CASES:
        loss, C, bf, seed = case
        prog = _program(loss, C, beta_frac=bf, seed=seed)
        out[case] = (prog, solve_cvxpy(prog).objective)
    return out


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c[0]}-C{c[1]}-b{c[2]}")
def test_matches_clarabel_float64(references, case):
    prog, ref = references[case]
    res = solve_torch(prog, tol=1e-8, max_iter=50000)
    assert res.converged, res.message
    assert prog.cone_violation(res.Wp, res.Wn) <= 1e-8
    assert res.objective == pytest.approx(prog.objective(res.Wp, res.Wn), rel=1e-12)
    # Clarabel's own accuracy is about 1e-8 relative.
    assert abs(res.objective - ref) <= 1e-6 * abs(ref)
    assert res.Wp.dtype == np.float64 and res.Wp.shape == (prog.n_outputs, prog.n_patterns, prog.k)


@pytest.mark.parametrize("case", CASES[1::2], ids=lambda c: f"{c[0]}-C{c[1]}-b{c[2]}")
def test_lazy_dual_bounds_match_clarabel(references, case, monkeypatch):
    """The full checks of large problems (cheap bounds refined only while a
    certificate is within reach, in chunks of 2 blocks; new patterns
    confirmed by exact projections) reach the same optimum with an honest
    certificate."""
    import skbnconvex._solvers._torch as torch_solver

    prog, ref = references[case]
    monkeypatch.setattr(torch_solver, "_REFINE_ALL_ENTRIES", 0)
    monkeypatch.setattr(torch_solver, "_CHUNK_ENTRIES", 2 * prog.n_samples)
    confirmed = []
    confirm = torch_solver._confirm_entrants

    def spy(faces, g, bound, score, need):
        confirmed.append(need)
        return confirm(faces, g, bound, score, need)

    monkeypatch.setattr(torch_solver, "_confirm_entrants", spy)
    res = solve_torch(prog, tol=1e-8, max_iter=50000)
    assert confirmed
    assert res.converged, res.message
    assert res.objective == pytest.approx(ref, rel=1e-6)
    # The certified gap bounds the distance to the optimum.
    gap = float(res.message.split("gap ")[1].split(" ")[0])
    assert res.objective - ref <= gap * res.objective + 1e-9 * abs(ref)


@pytest.mark.parametrize("case", CASES[::5], ids=lambda c: f"{c[0]}-C{c[1]}-b{c[2]}")
def test_band_memory_of_the_row_checks_keeps_the_optimum(references, case, monkeypatch):
    """Solves whose row checks run in float32 and remember bands of 8 rows
    (as at large n), many checks answered from the band, reach Clarabel's
    optimum with a feasible point."""
    import skbnconvex._solvers._torch as T

    monkeypatch.setattr(T, "_CHECK32_MIN_ENTRIES", 0)
    monkeypatch.setattr(T, "_BAND_ROWS", 8)
    monkeypatch.setattr(T, "_BAND_MIN_ROWS", 0)
    answered = []
    check = T._Faces._band_check

    def spy(self, *args):
        hit = check(self, *args)
        answered.append(0 if hit is None else int(hit.sum()))
        return hit

    monkeypatch.setattr(T._Faces, "_band_check", spy)
    prog, ref = references[case]
    res = solve_torch(prog, tol=1e-8, max_iter=50000)
    assert res.converged, res.message
    assert prog.cone_violation(res.Wp, res.Wn) <= 1e-8
    assert abs(res.objective - ref) <= 1e-6 * abs(ref)
    assert sum(answered) > 0


def test_float32_products_match_float64():
    """Predictions and block gradients from float32 copies of the data
    (``fast_products``) are the float64 ones to float32 round-off, returned
    in float64."""
    from skbnconvex._solvers import _torch as T

    prog = _program("multinomial", n_outputs=3, n=80, d=4, P=15, seed=7)
    prob = T._Problem(prog, torch.device("cpu"), torch.float64)
    rng = np.random.default_rng(0)
    W = torch.as_tensor(rng.standard_normal((3, 2, prog.n_patterns, prog.k)))
    r = torch.as_tensor(rng.standard_normal((prog.n_samples, 3)))
    Dt32, Ut32 = prob.fast_products(prob.Dt)
    assert Dt32.dtype == Ut32.dtype == torch.float32
    for fast, exact in (
        (prob.predict(W, Dt32, Ut32), prob.predict(W, prob.Dt)),
        (prob.grad_blocks(r, Dt32, Ut32), prob.grad_blocks(r, prob.Dt)),
    ):
        assert fast.dtype == torch.float64
        scale = float(exact.abs().max())
        np.testing.assert_allclose(fast.numpy(), exact.numpy(), atol=1e-5 * scale)
        assert not np.allclose(fast.numpy(), exact.numpy(), atol=1e-12 * scale)


@pytest.mark.parametrize("path", ["pairs", "dense"])
@pytest.mark.parametrize("n_outputs", [1, 3])
def test_predictions_of_sparse_and_dense_blocks(n_outputs, path, monkeypatch):
    """``_Problem.predict`` from the non-zero pairs (output, pattern) and
    from the dense product, against the program's NumPy prediction: no
    pair, a few pairs (a pair with both signs, a pair whose difference is
    zero), all pairs; float64 and float32 data."""
    from skbnconvex._solvers import _torch as T

    monkeypatch.setattr(T, "_SPARSE_PREDICT", np.inf if path == "pairs" else -1.0)
    # Chunks of 7 rows (the last one shorter).
    monkeypatch.setattr(T, "_CACHE_ENTRIES", 7 * 8)
    prog = _program("squared", n_outputs=n_outputs, n=60, d=4, P=12, seed=5)
    prob = T._Problem(prog, torch.device("cpu"), torch.float64)
    calls = []
    sparse = T._Problem._predict_sparse
    monkeypatch.setattr(
        T._Problem, "_predict_sparse", lambda *a: calls.append(1) or sparse(*a)
    )
    rng = np.random.default_rng(1)
    C, P, k = n_outputs, prog.n_patterns, prog.k
    few = np.zeros((C, 2, P, k))
    few[0, 0, 3] = rng.standard_normal(k)
    few[0, 1, 3] = rng.standard_normal(k)  # both signs of one pair
    few[C - 1, 1, 7] = rng.standard_normal(k)
    few[C - 1, :, 9] = rng.standard_normal(k)  # a - b = 0
    few[0, 1, 10] = np.abs(rng.standard_normal(k))  # a - b < 0 everywhere
    for W in (np.zeros((C, 2, P, k)), few, rng.standard_normal((C, 2, P, k))):
        ref = prog.predict(W[:, 0], W[:, 1])
        Wt = torch.as_tensor(W)
        got = prob.predict(Wt, prob.Dt).numpy()
        np.testing.assert_allclose(got, ref, rtol=1e-12, atol=1e-12)
        Dt32, Ut32 = prob.Dt.float(), prob.Ut.float()
        got32 = prob.predict(Wt, Dt32, Ut32).numpy()
        np.testing.assert_allclose(got32, ref, atol=1e-5 * max(np.abs(ref).max(), 1))
    assert len(calls) == (6 if path == "pairs" else 0)


@pytest.mark.parametrize("fast_target", [0.0, np.inf], ids=["f32-products", "f64"])
@pytest.mark.parametrize(
    "case", [CASES[0], CASES[2], CASES[5]], ids=lambda c: f"{c[0]}-C{c[1]}-b{c[2]}"
)
def test_float32_products_of_fista_keep_the_float64_optimum(
    references, case, fast_target, monkeypatch
):
    """A float64 solve of several outputs whose FISTA iterations all run
    their products in float32 (``_FAST_TARGET = 0``; by default only at
    loose restricted targets) reaches Clarabel's optimum to the float64
    tolerance, with an honest gap: the full checks, which decide
    convergence, are float64. One output: float64 products throughout."""
    import skbnconvex._solvers._torch as torch_solver

    prog, ref = references[case]
    monkeypatch.setattr(torch_solver, "_FAST_TARGET", fast_target)
    dtypes = []
    predict = torch_solver._Problem.predict

    def spy(self, W, Dt, Ut=None):
        dtypes.append(Dt.dtype)
        return predict(self, W, Dt, Ut)

    monkeypatch.setattr(torch_solver._Problem, "predict", spy)
    res = solve_torch(prog, tol=1e-8, max_iter=50000)
    assert res.converged, res.message
    assert (torch.float32 in dtypes) == (fast_target == 0.0 and prog.n_outputs > 1)
    assert prog.cone_violation(res.Wp, res.Wn) <= 1e-8
    assert abs(res.objective - ref) <= 1e-6 * abs(ref)
    gap = float(res.message.split("gap ")[1].split(" ")[0])
    assert res.objective - ref <= gap * res.objective + 1e-9 * abs(ref)


@pytest.mark.parametrize("case", CASES[::2], ids=lambda c: f"{c[0]}-C{c[1]}-b{c[2]}")
def test_matches_clarabel_float32(references, case):
    prog, ref = references[case]
    res = solve_torch(prog, tol=1e-5, max_iter=50000, dtype=torch.float32)
    assert prog.cone_violation(res.Wp, res.Wn) <= 1e-8
    assert abs(res.objective - ref) <= 1e-4 * abs(ref)


def test_warm_start_other_beta(references):
    prog, ref = references[CASES[0]]
    other = ConvexProgram(prog.Ut, prog.D, prog.Y, prog.loss, 2.0 * prog.beta)
    warm = solve_torch(other, tol=1e-8, max_iter=50000)
    res = solve_torch(prog, W0=(warm.Wp, warm.Wn), tol=1e-8, max_iter=50000)
    assert res.converged, res.message
    assert abs(res.objective - ref) <= 1e-6 * abs(ref)


def test_warm_start_fewer_patterns(references):
    prog, ref = references[CASES[2]]
    P0 = prog.n_patterns // 2
    head = ConvexProgram(prog.Ut, prog.D[:, :P0], prog.Y, prog.loss, prog.beta)
    warm = solve_torch(head, tol=1e-8, max_iter=50000)
    res = solve_torch(prog, W0=(warm.Wp, warm.Wn), tol=1e-8, max_iter=50000)
    assert res.converged, res.message
    assert prog.cone_violation(res.Wp, res.Wn) <= 1e-8
    assert abs(res.objective - ref) <= 1e-6 * abs(ref)
    # The sub-program's optimum cannot beat the full one.
    assert warm.objective >= ref * (1 - 1e-6)


def test_bad_warm_start_shape(references):
    prog, _ = references[CASES[0]]
    Wp, Wn = prog.zeros()
    with pytest.raises(ValueError, match="patterns"):
        solve_torch(prog, W0=(np.zeros((1, prog.n_patterns + 1, prog.k)),) * 2)
    with pytest.raises(ValueError, match="shape"):
        solve_torch(prog, W0=(Wp[:, :, 1:], Wn[:, :, 1:]))


def test_not_converged_is_reported(references):
    prog, _ = references[CASES[0]]
    res = solve_torch(prog, tol=1e-12, max_iter=5)
    assert not res.converged
    assert "iterations" in res.message
    assert prog.cone_violation(res.Wp, res.Wn) <= 1e-8
    assert res.objective == pytest.approx(prog.objective(res.Wp, res.Wn), rel=1e-12)


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is available")
def test_cuda_unavailable_error(references):
    prog, _ = references[CASES[0]]
    with pytest.raises(ValueError, match="CUDA is not available.*device='cpu'"):
        solve_torch(prog, device="cuda")


@pytest.mark.parametrize("loss", ["squared", "binary"])
def test_medium_matches_clarabel(loss):
    # Large enough for the working set, the warm-started projections and the
    # Newton steps on faces to all take part (several rounds, k = 9).
    prog = _program(loss, n=300, d=8, P=60, beta_frac=0.05, seed=7)
    ref = solve_cvxpy(prog)
    res = solve_torch(prog, tol=1e-8, max_iter=50000)
    assert res.converged, res.message
    assert prog.cone_violation(res.Wp, res.Wn) <= 1e-8
    # Never worse than Clarabel. On this exponential-cone program Clarabel
    # stops inaccurate, 6e-5 above the feasible, certified torch point.
    assert res.objective <= ref.objective + 1e-6 * abs(ref.objective)
    if ref.converged:
        assert abs(res.objective - ref.objective) <= 1e-6 * abs(ref.objective)


def _at_optimum(loss="squared", n_outputs=1):
    """A program solved to 1e-10, as a working set of all its patterns.

    Returns the program, the solver's result, the solver's working set at
    the optimum, the dual vectors ``g`` of all blocks (rows) and the
    support (block numbers). The faces of the support are set to those of
    the projected dual vectors, which are parallel to the optimal blocks.
    """
    from skbnconvex._solvers import _torch as T

    prog = _program(loss, n_outputs, n=300, d=8, P=60, beta_frac=0.05, seed=7)
    res = solve_torch(prog, tol=1e-10, max_iter=50000)
    assert res.converged, res.message
    prob = T._Problem(prog, torch.device("cpu"), torch.float64)
    faces = T._Faces(prob, n_outputs)
    W = torch.as_tensor(np.stack([res.Wp, res.Wn], axis=1))  # (C, 2, P, k)
    wset = T._WorkingSet(prob, faces, torch.arange(prog.n_patterns), W, n_outputs)
    F = prob.predict(W, wset.Dt)
    g = -prob.grad_blocks(T._loss_grad(prob.loss, F, prob.Y), wset.Dt)
    g = g.reshape(-1, prog.k)
    flat = W.reshape(-1, prog.k)
    supp = (torch.linalg.vector_norm(flat, dim=-1) > 0).nonzero()[:, 0]
    return prog, res, wset, g, supp


@pytest.mark.parametrize("extra_face", ["whole cone", "zero"])
def test_newton_drops_a_block_and_converges(extra_face):
    """The face Newton step drops a block whose optimum is zero and goes on.

    From a point on the optimal faces of a program plus one extra non-zero
    block (feasible, small, outside the optimal support), Newton must
    drive that block out and return to the optimum in a few steps. The
    extra block's guessed face is its whole cone (no active rows: Newton
    drives it through zero) or ``{0}`` (k independent active rows: it has
    no free direction). It used to spend its whole step budget re-dropping
    a block it had removed, and to give up on a ``{0}`` face.
    """
    from skbnconvex._solvers import _torch as T

    prog, res, wset, g, supp = _at_optimum()
    prob, faces, W = wset.prob, wset.faces, wset.W
    P, k = prog.n_patterns, prog.k
    flat = W.reshape(-1, k)
    # The optimal faces: those of the projected dual vectors of the support
    # (P_C(g_b) is parallel to the optimal w_b).
    faces.project_exact(wset.gidx[supp], g[supp], faces.steps)
    # An extra block whose dual constraint is slack (its optimum is zero),
    # set to a small point of its cone.
    slack = torch.ones(len(flat), dtype=torch.bool)
    slack[supp] = False
    cand = slack.nonzero()[:, 0]
    proj, _ = faces.project_exact(wset.gidx[cand], g[cand], faces.steps)
    nrm = torch.linalg.vector_norm(proj, dim=-1)
    j = int(torch.argmax(torch.where(nrm < 0.9 * prob.beta, nrm, -1.0)))
    assert 0 < float(nrm[j]) < 0.9 * prob.beta
    scale = 1e-3 * float(torch.linalg.vector_norm(flat[supp], dim=-1).mean())
    # The support is moved off the optimum along its faces (cones are
    # closed under scaling), so that Newton has work left after the drop.
    W1 = flat.clone()
    W1[supp] *= 1.0 + 0.2 * torch.linspace(-1, 1, len(supp), dtype=W1.dtype)[:, None]
    W1[cand[j]] = proj[j] / nrm[j] * scale
    gj = wset.gidx[cand[j]]
    faces.R[gj] = 0
    faces.V[gj] = False
    if extra_face == "zero":
        # k linearly independent rows of the block's cone (pivoted QR).
        pat = int(cand[j]) % P
        K = prob.S_np[pat, :, None] * prob.Ut_np
        rows = np.sort(scipy.linalg.qr(K.T, pivoting=True)[2][:k])
        faces.R[gj] = torch.as_tensor(rows)
        faces.V[gj] = True
    W1 = W1.view_as(W)
    assert prob.objective(W1, prob.predict(W1, wset.Dt)) > res.objective
    W_n, steps = T._newton(wset, W1, wset.structure(W1))
    assert W_n is not None
    assert float(torch.linalg.vector_norm(W_n.reshape(-1, k)[cand[j]])) == 0.0
    obj = prob.objective(W_n, prob.predict(W_n, wset.Dt))
    assert obj == pytest.approx(res.objective, rel=1e-9)
    assert steps < T._NEWTON_MAX // 2


def test_newton_reuses_the_hessian_of_a_quadratic_loss_exactly(monkeypatch):
    """The squared loss's Hessian, formed once per Newton attempt, is exact.

    Its Hessian in ``F`` is constant, so after blocks leave, the Hessian of
    the columns left is a principal submatrix of the first one. An attempt
    from the optimal support moved along its faces, plus a small extra
    block that Newton drives through zero, must give the same steps and
    point as with the Hessian formed anew at every step, forming it once.
    """
    from skbnconvex._solvers import _torch as T

    prog, res, wset, g, supp = _at_optimum()
    prob, faces, W = wset.prob, wset.faces, wset.W
    k = prog.k
    faces.project_exact(wset.gidx[supp], g[supp], faces.steps)
    W1 = W.reshape(-1, k).clone()
    W1[supp] *= 1.0 + 0.2 * torch.linspace(-1, 1, len(supp), dtype=W1.dtype)[:, None]
    # A small extra block along its dual vector: Newton sends it through
    # zero, and the next step has one column fewer.
    extra = int(torch.nonzero(torch.linalg.vector_norm(W1, dim=-1) == 0)[0, 0])
    W1[extra] = 1e-6 * g[extra]
    W1 = W1.view_as(W)
    formed = []
    hessian = T.torch_parameter_hessian

    def counted(*args, **kwargs):
        H = hessian(*args, **kwargs)
        formed.append(H.shape[0])
        return H

    monkeypatch.setattr(T, "torch_parameter_hessian", counted)
    cols = torch.as_tensor(sorted(supp.tolist() + [extra]))
    rows = [faces.R[wset.gidx[b]][faces.V[wset.gidx[b]]].tolist() for b in cols]
    pats = [int(b) % prog.n_patterns for b in cols]
    W0 = W1.reshape(-1, k)[cols].double()
    out = {}
    for quadratic in (True, False):
        monkeypatch.setattr(type(prob.loss), "quadratic", quadratic)
        formed.clear()
        Ws, steps, _ = T._newton_on_faces(wset, W.shape[0], cols, pats, rows, W0)
        out[quadratic] = Ws, steps, list(formed)
    (W_re, s_re, f_re), (W_new, s_new, f_new) = out[True], out[False]
    assert s_re == s_new > 1
    assert len(f_re) == 1 and len(f_new) == s_new
    assert f_new[-1] < f_new[0]  # a block left on the way
    np.testing.assert_allclose(W_re.numpy(), W_new.numpy(), rtol=0, atol=1e-10)


@pytest.mark.parametrize("gram", ["float64", "float32"])
def test_newton_on_the_faces_of_several_coupled_outputs(gram, monkeypatch):
    """The face Newton step with the outputs coupled (three classes).

    The blocks of all outputs form one system (the multinomial Hessian
    couples them; the columns are grouped by output): from the optimal
    support moved along its faces, Newton returns to the optimum, also
    with the Hessian's coupling term in float32 (as for large systems).
    """
    from skbnconvex._solvers import _torch as T

    monkeypatch.setattr(T, "_NEWTON_GRAM32_WORK", 0 if gram == "float32" else np.inf)

    prog, res, wset, g, supp = _at_optimum("multinomial", 3)
    prob, faces, W = wset.prob, wset.faces, wset.W
    k = prog.k
    assert len(torch.unique(supp // (2 * prog.n_patterns))) == 3
    faces.project_exact(wset.gidx[supp], g[supp], faces.steps)
    W1 = W.reshape(-1, k).clone()
    W1[supp] *= 1.0 + 0.2 * torch.linspace(-1, 1, len(supp), dtype=W1.dtype)[:, None]
    W1 = W1.view_as(W)
    assert prob.objective(W1, prob.predict(W1, wset.Dt)) > res.objective * (1 + 1e-3)
    W_n, steps = T._newton(wset, W1, wset.structure(W1))
    obj = prob.objective(W_n, prob.predict(W_n, wset.Dt))
    assert obj == pytest.approx(res.objective, rel=1e-12)
    assert steps < T._NEWTON_MAX // 2


def test_newton_polishes_a_point_at_round_off_of_the_objective():
    """Newton moves a point whose objective is flat to round-off.

    Off the optimum by 1e-9 (relative) along the optimal faces, the
    objective is optimal to round-off but the certified gap is not (the dual
    point moves with the blocks to first order); Newton's last full step
    brings the gap down by orders of magnitude.
    """
    from skbnconvex._solvers import _torch as T

    prog, res, wset, g, supp = _at_optimum()
    prob, faces, W = wset.prob, wset.faces, wset.W
    k = prog.k
    faces.project_exact(wset.gidx[supp], g[supp], faces.steps)
    W1 = W.reshape(-1, k).clone()
    W1[supp] *= 1.0 + 1e-9 * torch.linspace(-1, 1, len(supp), dtype=W1.dtype)[:, None]
    W1 = W1.view_as(W)
    F1 = prob.predict(W1, wset.Dt)
    f1, gap1, _ = wset.certificate(W1, F1, 1.0)  # exact bounds
    assert f1 == pytest.approx(res.objective, rel=1e-14) and gap1 > 1e-11
    W_n, _ = T._newton(wset, W1, wset.structure(W1), f1)
    f_n, gap_n, _ = wset.certificate(W_n, prob.predict(W_n, wset.Dt), 1.0)
    assert f_n <= f1 * (1 + 1e-14)
    assert gap_n < 1e-3 * gap1


def test_newton_backtracks_a_step_its_projection_spoils(monkeypatch):
    """A Newton point worse than the start, once projected, is not the end.

    At realistic rank most of the guessed faces miss rows (landsat, 6
    classes: 78 of 110 blocks crossed some), and the projection of the full
    step costs more than the step gains. A fraction of the step, projected,
    that descends is returned instead. Here Newton's point is made to
    overshoot the optimum threefold along a feasible line.
    """
    from skbnconvex._solvers import _torch as T

    _, _, wset, _, _ = _at_optimum()
    prob, W = wset.prob, wset.W

    def f(V):
        return prob.objective(V, prob.predict(V, wset.Dt))

    W0 = 0.5 * W  # feasible (the cones are cones), below the optimal scale
    f0 = f(W0)

    def overshoot(wset, C, supp, pats, rows, Ws):
        return 4.0 * Ws, 1, [True] * len(rows)  # 2 W

    monkeypatch.setattr(T, "_newton_on_faces", overshoot)
    monkeypatch.setattr(T, "_NEWTON_FACE_UPDATES", 0)
    assert f(2.0 * W) > f0
    W_n, _ = T._newton(wset, W0, wset.structure(W0), f0)
    # Half the step, 1.25 W, is the first fraction tried and descends.
    assert f(W_n) < f0
    np.testing.assert_allclose(W_n.numpy(), 1.25 * W.numpy(), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("updates", [0, 2])
def test_newton_completes_a_face_missing_a_row(updates, monkeypatch):
    """Newton corrects a face that misses a binding row, and lands.

    From the optimum, with one binding row missing from a block's guessed
    face, Newton on the guessed faces leaves that block's cone and returns
    a worse point; with the face update it returns Clarabel's optimum, and
    the completed faces become the remembered rows of the support (those
    that the certificate's projections start from). Without updates
    (``updates=0``) the point is worse: the missing row matters.
    """
    from skbnconvex._solvers import _torch as T

    monkeypatch.setattr(T, "_NEWTON_FACE_UPDATES", updates)
    prog, _, wset, g, supp = _at_optimum()
    ref = solve_cvxpy(prog).objective
    prob, faces, W = wset.prob, wset.faces, wset.W
    P = prog.n_patterns
    # The optimal faces: those of the projected dual vectors of the support;
    # their rows are binding (positive multipliers of the projections).
    gs = wset.gidx[supp]
    proj, _ = faces.project_exact(gs, g[supp], faces.steps)
    optimal = faces.V[gs].clone(), faces.R[gs].clone()
    # The block with the largest face loses the row of its smallest
    # multiplier (the hardest to identify from an iterate): P_C(g) = g + K^T mu.
    j = int(optimal[0].sum(1).argmax())
    pat = int(supp[j]) % P
    slots = optimal[0][j].nonzero()[:, 0].numpy()
    face = optimal[1][j, slots].numpy()
    K = prob.S_np[pat, face, None] * prob.Ut_np[face]
    mu = np.linalg.lstsq(K.T, (proj[j] - g[supp][j]).numpy(), rcond=None)[0]
    assert mu.min() > 0
    faces.V[gs[j], slots[np.argmin(mu)]] = False
    W_n, _ = T._newton(wset, W, wset.structure(W))
    obj = prob.objective(W_n, prob.predict(W_n, wset.Dt))
    if updates == 0:
        assert obj > ref * (1 + 1e-7)
        return
    # Clarabel's interior point stops a few 1e-9 above the optimum.
    assert obj == pytest.approx(ref, rel=1e-8)
    for b in range(len(supp)):
        assert set(faces.R[gs[b]][faces.V[gs[b]]].tolist()) == set(
            optimal[1][b][optimal[0][b]].tolist()
        )


def test_tol_below_round_off_stops_early_and_says_so():
    """A tol the float64 certificate cannot reach ends the solve early.

    The objective stops moving long before; the solver used to spend its
    whole budget (max_iter) there. It now stops, returns its point with
    the smallest certified gap and says why it did not converge.
    """
    prog = _program("squared", n=300, d=8, P=60, beta_frac=0.05, seed=7)
    ref = solve_torch(prog, tol=1e-9)
    assert ref.converged, ref.message
    # 1e-17 is below the float64 round-off of the gap itself (1e-13 used
    # to be out of reach here too, until the Newton back-off changed the
    # path: the floor is reached at 1e-15 .. 1e-13 depending on the path).
    res = solve_torch(prog, tol=1e-17, max_iter=50000)
    assert not res.converged
    assert res.n_iter < 5000
    assert "stopped decreasing" in res.message
    gap = float(res.message.split("gap ")[1].split(" ")[0])
    assert 1e-17 < gap <= 1e-9
    assert prog.cone_violation(res.Wp, res.Wn) <= 1e-8
    # At least as good as the solve to 1e-9 (to within its gap).
    assert res.objective <= ref.objective * (1 + 1e-9)


def _qp_projection(K, p):
    """Projection of ``p`` onto ``{z : K z >= 0}`` by Clarabel (cvxpy)."""
    import cvxpy as cp

    z = cp.Variable(len(p))
    cp.Problem(cp.Minimize(cp.sum_squares(z - p)), [K @ z >= 0]).solve(
        solver=cp.CLARABEL, tol_gap_abs=1e-12, tol_gap_rel=1e-12, tol_feas=1e-12
    )
    return z.value


def test_final_projection_onto_the_cones_matches_a_qp_solver():
    """``ConvexProgram.project_to_cones`` (the solvers' final clean-up) is
    Clarabel's projection for every block: two outputs, both signs sharing
    patterns, zero blocks left zero, blocks already in their cone unchanged."""
    prog = _program("squared", n_outputs=2, n=50, d=4, P=10, seed=5)
    rng = np.random.default_rng(3)
    S = np.where(prog.D, 1.0, -1.0)
    W = rng.standard_normal((2, 2, prog.n_patterns, prog.k))
    W[0, 1, ::3] = 0.0  # zero blocks
    W[1, 0, 1] = _qp_projection(S[:, 1, None] * prog.Ut, W[1, 0, 1])  # in its cone
    Wp, Wn = prog.project_to_cones(W[:, 0], W[:, 1])
    for s, out in enumerate((Wp, Wn)):
        for c in range(2):
            for i in range(prog.n_patterns):
                K, w = S[:, i, None] * prog.Ut, W[c, s, i]
                ref = _qp_projection(K, w)
                # Clarabel stays ~1e-7 inside the cone: the projection is
                # feasible and no farther from w than Clarabel's point.
                assert (K @ out[c, i]).min() >= -1e-13
                assert np.linalg.norm(out[c, i] - w) <= np.linalg.norm(ref - w) + 1e-10
                np.testing.assert_allclose(out[c, i], ref, atol=1e-6)
    assert not Wn[0, ::3].any()
    np.testing.assert_array_equal(Wp[1, 1], W[1, 0, 1])
    assert prog.cone_violation(Wp, Wn) <= 1e-12


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("path", ["numpy", "torch", "handover"])
def test_batched_projection_matches_a_qp_solver(path, dtype, monkeypatch):
    """Both implementations of the batched projection are exact.

    The NumPy transcription (the CPU path) and the torch one (the GPU path,
    run here on the CPU) of the batched Lawson-Hanson method, and the two
    in one projection (the torch steps hand the blocks still running to
    NumPy once they are few, as on the CPU at large n), cold, then
    warm-started from the faces of the first call on nearby points, then
    with ``stop_below``, against the projections computed by Clarabel.
    """
    from skbnconvex._solvers import _torch as T

    monkeypatch.setattr(T, "_NUMPY_ON_CPU", path != "torch")
    handovers = []
    if path == "handover":
        # Batches of more than 10 blocks of the 60 rows start in torch.
        monkeypatch.setattr(T, "_NUMPY_MAX_ENTRIES", 10 * 60)
        batched = T.batched_lawson_hanson

        def spy(*args, **kwargs):
            if kwargs.get("x") is not None:
                handovers.append(len(args[3]))
            return batched(*args, **kwargs)

        monkeypatch.setattr(T, "batched_lawson_hanson", spy)
    # The batched steps finish every block (no host fallback), the row
    # checks in float32 for float64 blocks (as at large n).
    monkeypatch.setattr(T, "_HOST_TAIL", 0)
    monkeypatch.setattr(T, "_CHECK32_MIN_ENTRIES", 0)
    # The torch path's passes over (blocks, n) in chunks of 5 blocks (the
    # last one shorter), as on the CPU at large n.
    monkeypatch.setattr(T, "_CACHE_ENTRIES", 5 * 60)
    # ... and its row checks in chunks of 5 float32 blocks (2 of float64).
    monkeypatch.setattr(T, "_SCAN_BYTES", 5 * 60 * 4)
    prog = _program("squared", n=60, d=5, P=12, seed=11)
    prob = T._Problem(prog, torch.device("cpu"), dtype)
    faces = T._Faces(prob, 1)
    assert faces.use_numpy == (path != "torch")
    P, k = prog.n_patterns, prog.k
    gidx = torch.arange(2 * P)
    S = np.where(prog.D, 1.0, -1.0)
    rng = np.random.default_rng(0)
    Z0 = rng.standard_normal((2 * P, k))
    rtol = 1e-9 if dtype == torch.float64 else 1e-4
    for Z in (Z0, Z0 + 0.05 * rng.standard_normal(Z0.shape)):
        ref = np.array(
            [_qp_projection(S[:, g % P, None] * prog.Ut, Z[g]) for g in range(2 * P)]
        )
        out, ub = faces.project(gidx, torch.as_tensor(Z, dtype=dtype), faces.steps)
        out, ub = out.double().numpy(), ub.double().numpy()
        assert not np.isnan(out).any()
        scale = np.linalg.norm(Z, axis=1)
        err = np.abs(out - ref).max(axis=1)
        assert (err <= (1e-7 + rtol) * scale).all(), err.max()
        assert np.allclose(ub, np.linalg.norm(out, axis=1), rtol=10 * rtol)
        # Some blocks are zero, some interior, most on a face.
        n_ref = np.linalg.norm(ref, axis=1)
        assert (n_ref < 1e-8 * scale).any() and (n_ref > 1e-3 * scale).sum() > P
    # With stop_below, a block either finishes exactly or stops with an
    # upper bound at most stop_below; every bound stays an upper bound.
    # (Cold: warm-started on the same points, every block finishes at once.)
    faces = T._Faces(prob, 1)
    below = float(np.median(n_ref))
    out, ub = faces.project(gidx, torch.as_tensor(Z, dtype=dtype), faces.steps, below)
    out, ub = out.double().numpy(), ub.double().numpy()
    stopped = np.isnan(out[:, 0])
    assert stopped.any() and (ub[stopped] <= below).all()
    err = np.abs(out[~stopped] - ref[~stopped]).max(axis=1)
    assert (err <= (1e-7 + rtol) * scale[~stopped]).all()
    assert (n_ref <= ub * (1 + 10 * rtol) + 1e-9).all()
    # The cold projections handed their last blocks over.
    assert (len(handovers) > 0) == (path == "handover")
    assert all(0 < b <= 10 for b in handovers)


def test_float32_row_check_decides_like_float64(monkeypatch):
    """The projections' pass over the rows in float32 decides exactly.

    ``_Faces._min_row`` (a float64 problem on the CPU) against the float64
    scan: a violated row that float32 finds is returned with its float64
    value; where float32 rounding (made adversarial here, within the error
    bound the check assumes) shows a row that is not violated as the
    smallest and hides a violated one, the float64 scan finds it; passive
    rows are skipped.
    """
    from skbnconvex._solvers import _torch as T

    monkeypatch.setattr(T, "_CHECK32_MIN_ENTRIES", 0)
    # Every check scanned (the band memory would answer the repeated ones).
    monkeypatch.setattr(T, "_BAND", False)
    prog = _program("squared", n=60, d=5, P=4, seed=3)
    prob = T._Problem(prog, torch.device("cpu"), torch.float64)
    faces = T._Faces(prob, 1)
    n, k = prob.Ut.shape
    rng = np.random.default_rng(0)
    # Rows well inside the half-space of z = e_1, except rows b and c.
    U = rng.standard_normal((n, k))
    U[:, 0] = np.abs(U[:, 0]) + 0.1
    b, c = 7, 23
    U[b], U[c] = 0.0, 0.0
    U[b, 0], U[b, 1] = -1e-9, 1.0  # violated by 1e-9
    U[c, 0], U[c, 2] = 1e-12, 1.0  # not violated
    prob.Ut = torch.as_tensor(U)
    prob.St = torch.ones((prog.n_patterns, n), dtype=torch.float64)
    z = torch.zeros((1, k), dtype=torch.float64)
    z[0, 0] = 1.0
    pat = torch.zeros(1, dtype=torch.long)
    R = torch.zeros((1, k), dtype=torch.long)
    V = torch.zeros((1, k), dtype=torch.bool)

    def scan64(R, V):
        out = (torch.empty(1, dtype=torch.float64), torch.empty(1, dtype=torch.long))
        return faces._scan_rows(z, pat, R, V, prob.Ut, prob.St, *out)[:2]

    def violated(kz):
        return kz.item() < -prob.feas_tol * 1.0

    ref_kz, ref_j = scan64(R, V)
    assert ref_j.item() == b and violated(ref_kz)
    kz, j = faces._min_row(z, pat, R, V)
    assert j.item() == b and kz.item() == ref_kz.item()
    # Row c first and row b fine in float32, each off by a quarter of the
    # tolerated band 2 (k + 2) eps_32 ||z||.
    Un32, S8 = prob.check_tensors()
    Un32 = Un32.clone()
    off = 0.5 * (k + 2) * float(torch.finfo(torch.float32).eps)
    Un32[b, 0], Un32[c, 0] = off, -off
    monkeypatch.setattr(prob, "check_tensors", lambda: (Un32, S8))
    kz, j = faces._min_row(z, pat, R, V)
    assert j.item() == b and kz.item() == ref_kz.item()
    # Three blocks, scanned in slices of one: each slice's rows near the
    # face are its own block's.
    monkeypatch.setattr(T, "_SCAN_BYTES", 4 * n)
    kz3, j3 = faces._min_row(
        z.repeat(3, 1), pat.repeat(3), R.repeat(3, 1), V.repeat(3, 1)
    )
    assert (j3 == b).all() and (kz3 == ref_kz.item()).all()
    # Row b passive: nothing is violated (c is on the right side).
    R[0, 0], V[0, 0] = b, True
    ref_kz, _ = scan64(R, V)
    kz, _ = faces._min_row(z, pat, R, V)
    assert not violated(ref_kz) and not violated(kz)
    assert faces.n_unsure == 5


def test_row_checks_near_a_remembered_point_decide_like_a_full_check(monkeypatch):
    """The band memory of the row checks is exact.

    A float32 check remembers, per block, its unit point, the rows of
    smallest margin there (with its passive rows) and a radius; a later
    check within that radius reads those rows only. At points at growing
    distances from projections (inside and outside the radius), with and
    without the passive rows of the remembered check, its verdict is that
    of a float64 check of all rows, and a row it reports violated is.
    """
    from skbnconvex._solvers import _torch as T

    monkeypatch.setattr(T, "_CHECK32_MIN_ENTRIES", 0)
    # A band of 8 of the 60 rows (a band as wide as n reads every row).
    monkeypatch.setattr(T, "_BAND_ROWS", 8)
    # Every block finishes in the batched steps, whose checks remember.
    monkeypatch.setattr(T, "_HOST_TAIL", 0)
    prog = _program("squared", n=60, d=5, P=12, seed=11)
    prob = T._Problem(prog, torch.device("cpu"), torch.float64)
    # Programs of few rows have no band memory (see _BAND_MIN_ROWS) ...
    assert T._Faces(prob, 1).band is None
    # ... this one gets it, to test it.
    monkeypatch.setattr(T, "_BAND_MIN_ROWS", 0)
    faces = T._Faces(prob, 1)
    P, k = prog.n_patterns, prog.k
    gidx = torch.arange(2 * P)
    pat = gidx % P
    rng = np.random.default_rng(0)
    Z = torch.as_tensor(rng.standard_normal((2 * P, k)))
    out, _ = faces.project_exact(gidx, Z, faces.steps)
    assert not torch.isnan(out).any()
    # Blocks with a non-zero projection, each of which remembers a band.
    zn = torch.linalg.vector_norm(Z, dim=1)
    live = torch.linalg.vector_norm(out, dim=1) > 1e-8 * zn
    g, z0 = gidx[live], out[live]
    R, V = faces.R[g].clone(), faces.V[g].clone()
    assert V.any() and bool((faces.band_tau[g] > 0).all())
    tol = prob.feas_tol * torch.linalg.vector_norm(z0, dim=1)

    def full(z, R, V):
        kz = torch.empty(len(z), dtype=z.dtype)
        j = torch.empty(len(z), dtype=torch.long)
        return faces._scan_rows(z, g % P, R, V, prob.Ut, prob.St, kz, j)[:2]

    hits = []
    check = faces._band_check

    def spy(*args):
        hit = check(*args)
        hits.append(0 if hit is None else int(hit.sum()))
        return hit

    monkeypatch.setattr(faces, "_band_check", spy)
    n_hit = n_miss = n_violated = n_checked = 0
    for scale in (1e-6, 1e-4, 1e-3, 1e-2, 1e-1):
        noise = torch.as_tensor(rng.standard_normal(z0.shape))
        z = z0 + scale * noise * torch.linalg.vector_norm(z0, dim=1, keepdim=True)
        # With the remembered faces, and with no passive rows: a row of
        # the remembered face is then an ordinary row, violated or not.
        for Rc, Vc in ((R, V), (R, torch.zeros_like(V))):
            hits.clear()
            kz, j = faces._min_row(z, g, Rc, Vc)
            ref_kz, _ = full(z, Rc, Vc)
            bad, ref_bad = kz < -tol, ref_kz < -tol
            assert torch.equal(bad, ref_bad)
            # A reported row is violated in float64 (the value reported, to
            # round-off) and not passive.
            val = prob.St[pat[g], j] * (prob.Ut[j] * z).sum(1)
            assert (val[bad] < -tol[bad]).all()
            assert ((val - kz)[bad].abs() <= 1e-13 * tol[bad] / prob.feas_tol).all()
            assert not ((Rc[bad] == j[bad, None]) & Vc[bad]).any()
            n_hit += sum(hits)
            n_miss += len(z) - sum(hits)
            n_violated += int(ref_bad.sum())
            n_checked += len(z)
    # Both paths ran, and verdicts of both kinds were compared.
    assert n_hit > 0 and n_miss > 0
    assert 0 < n_violated < n_checked


def test_numpy_and_torch_projections_give_the_same_solve(monkeypatch):
    """The CPU solve through either projection path reaches the same point.

    Also with both in one solve (NumPy for the small batches only), where
    they share the remembered faces.
    """
    from skbnconvex._solvers import _torch as T

    prog = _program("binary", n=300, d=8, P=60, beta_frac=0.05, seed=3)
    res_np = solve_torch(prog, tol=1e-8)
    monkeypatch.setattr(T, "_NUMPY_MAX_ENTRIES", 300 * 10)
    res_mixed = solve_torch(prog, tol=1e-8)
    monkeypatch.setattr(T, "_NUMPY_ON_CPU", False)
    # Passes over (blocks, n) in chunks of 7 blocks, as on the CPU at large n.
    monkeypatch.setattr(T, "_CACHE_ENTRIES", 7 * 300)
    monkeypatch.setattr(T, "_SCAN_BYTES", 7 * 300 * 8)
    res_t = solve_torch(prog, tol=1e-8)
    for res in (res_np, res_mixed):
        assert res.converged and res_t.converged
        assert res.objective == pytest.approx(res_t.objective, rel=1e-8)
        np.testing.assert_allclose(res.Wp, res_t.Wp, atol=1e-6 * np.abs(res_t.Wp).max())


@pytest.mark.parametrize("screen", [None, 6])
def test_host_lawson_hanson_matches_a_qp_solver(screen):
    """The one-block Lawson-Hanson that finishes slow blocks on the host.

    Cold (no rows), warm-started from rows of another point's face, and
    with ``stop_below``, against Clarabel's projections; with the screened
    check (6 candidate rows of 60) also the same steps as without.
    """
    from functools import partial

    from skbnconvex._solvers import _lawson_hanson as LH

    prog = _program("squared", n=60, d=5, P=12, seed=12)
    S = np.where(prog.D, 1.0, -1.0)
    if screen is None:
        lawson_hanson = LH.lawson_hanson
    else:
        norms = np.linalg.norm(prog.Ut, axis=1)
        lawson_hanson = partial(LH.lawson_hanson, row_norms=norms, screen=screen)
    rng = np.random.default_rng(1)
    for i in range(prog.n_patterns):
        p = rng.standard_normal(prog.k)
        ref = _qp_projection(S[:, i, None] * prog.Ut, p)
        z, rows = lawson_hanson(prog.Ut, S[:, i], p, [], 1e-12 * np.linalg.norm(p))
        np.testing.assert_allclose(z, ref, atol=1e-7 * np.linalg.norm(p))
        if screen is not None:
            z0, rows0 = LH.lawson_hanson(
                prog.Ut, S[:, i], p, [], 1e-12 * np.linalg.norm(p)
            )
            assert rows == rows0 and np.array_equal(z, z0)
        # Its active rows: tight at z, linearly independent.
        K = S[rows, i, None] * prog.Ut[rows]
        assert np.abs(K @ z).max(initial=0.0) <= 1e-9 * np.linalg.norm(p)
        assert np.linalg.matrix_rank(K) == len(rows)
        # Warm-started from this face on a nearby point.
        q = p + 0.1 * rng.standard_normal(prog.k)
        ref_q = _qp_projection(S[:, i, None] * prog.Ut, q)
        zq, _ = lawson_hanson(prog.Ut, S[:, i], q, rows, 1e-12 * np.linalg.norm(q))
        np.testing.assert_allclose(zq, ref_q, atol=1e-7 * np.linalg.norm(q))
        # stop_below: the norms of the iterates decrease to that of the
        # projection, so the method stops (None) exactly when it is below.
        nq = np.linalg.norm(ref_q)
        assert lawson_hanson(prog.Ut, S[:, i], q, [], 0.0, 1.01 * nq)[0] is None
        if nq < 1e-9:
            continue  # a zero projection: every threshold stops it
        zs, _ = lawson_hanson(prog.Ut, S[:, i], q, [], 1e-12, 0.99 * nq)
        np.testing.assert_allclose(zs, ref_q, atol=1e-7 * np.linalg.norm(q))


@pytest.mark.parametrize("max_steps", [0, 1, 2])
def test_host_lawson_hanson_out_of_steps_still_projects(max_steps):
    """Where its row budget runs out before the check passes, the host
    Lawson-Hanson still returns the projection (finished by NNLS on growing
    sets of rows), never a point outside the cone: against Clarabel."""
    from skbnconvex._solvers import _lawson_hanson as LH

    prog = _program("squared", n=60, d=5, P=12, seed=12)
    S = np.where(prog.D, 1.0, -1.0)
    rng = np.random.default_rng(2)
    exhausted = 0
    for i in range(prog.n_patterns):
        p = rng.standard_normal(prog.k)
        ref = _qp_projection(S[:, i, None] * prog.Ut, p)
        tol = 1e-12 * np.linalg.norm(p)
        _, rows_full = LH.lawson_hanson(prog.Ut, S[:, i], p, [], tol)
        exhausted += len(rows_full) > max_steps
        z, rows = LH.lawson_hanson(prog.Ut, S[:, i], p, [], tol, max_steps=max_steps)
        np.testing.assert_allclose(z, ref, atol=1e-7 * np.linalg.norm(p))
        assert (S[:, i] * (prog.Ut @ z)).min() >= -1e-9 * np.linalg.norm(p)
        # The rows it reports are tight at z and at most k.
        K = S[rows, i, None] * prog.Ut[rows]
        assert len(rows) <= prog.k
        assert np.abs(K @ z).max(initial=0.0) <= 1e-9 * np.linalg.norm(p)
    # Most of these projections need more rows than the budget.
    assert exhausted >= prog.n_patterns // 2


@pytest.mark.parametrize("host_tail", [0, 4])
def test_blocks_left_by_the_batched_steps_are_finished_exactly(host_tail, monkeypatch):
    """``project_exact`` finishes the blocks that its batched steps left.

    With a host tail the host's Lawson-Hanson steps finish them; without
    one (large ``n k``), where every block left has run out of steps, NNLS
    on growing sets of rows from their passive rows does (no host steps).
    Two batched steps leave most blocks unfinished here; every projection
    is Clarabel's, also after a warm start and with ``stop_below``.
    """
    from skbnconvex._solvers import _torch as T

    monkeypatch.setattr(T, "_HOST_TAIL", host_tail)
    budgets = []
    host = T.lawson_hanson

    def spy(*args, **kwargs):
        budgets.append(kwargs.get("max_steps"))
        return host(*args, **kwargs)

    monkeypatch.setattr(T, "lawson_hanson", spy)
    prog = _program("squared", n=60, d=5, P=12, seed=13)
    prob = T._Problem(prog, torch.device("cpu"), torch.float64)
    faces = T._Faces(prob, 1)
    assert faces.host_tail == host_tail
    P = prog.n_patterns
    gidx = torch.arange(2 * P)
    S = np.where(prog.D, 1.0, -1.0)
    rng = np.random.default_rng(4)
    Z0 = rng.standard_normal((2 * P, prog.k))
    for Z in (Z0, Z0 + 0.1 * rng.standard_normal(Z0.shape)):
        ref = np.array(
            [_qp_projection(S[:, g % P, None] * prog.Ut, Z[g]) for g in range(2 * P)]
        )
        out, ub = faces.project_exact(gidx, torch.as_tensor(Z), 2)
        out = out.numpy()
        scale = np.linalg.norm(Z, axis=1)
        assert (np.abs(out - ref).max(axis=1) <= 1e-7 * scale).all()
        np.testing.assert_allclose(ub.numpy(), np.linalg.norm(out, axis=1), rtol=1e-9)
    below = float(np.median(np.linalg.norm(ref, axis=1)))
    out, ub = faces.project_exact(gidx, torch.as_tensor(Z), 2, stop_below=below)
    out, ub = out.numpy(), ub.numpy()
    stopped = np.isnan(out[:, 0])
    assert (ub[stopped] <= below).all()
    err = np.abs(out[~stopped] - ref[~stopped]).max(axis=1)
    assert (err <= 1e-7 * scale[~stopped]).all()
    # Every bound is an upper bound (Clarabel's points: to 1e-7).
    assert (np.linalg.norm(ref, axis=1) <= ub + 1e-7 * scale).all()
    # The host finished blocks, by its steps or by NNLS alone.
    assert len(budgets) >= P
    assert set(budgets) == ({0} if host_tail == 0 else {None})


@pytest.mark.parametrize("chunked", [False, True])
def test_predictions_and_gradients_of_several_outputs_match_the_program(
    chunked, monkeypatch
):
    """The solver's one-product predictions and gradients, several outputs.

    Against the NumPy prediction of :class:`ConvexProgram` and a
    per-output, per-pattern evaluation of ``U'^T D_i r_c``; also in chunks
    of 7 rows (the last one shorter), as on the CPU at large ``n``.
    """
    from skbnconvex._solvers import _torch as T

    prog = _program("squared", n_outputs=4, n=50, d=4, P=30, seed=5)
    if chunked:
        monkeypatch.setattr(T, "_CACHE_ENTRIES", 7 * 4 * prog.k)
    rng = np.random.default_rng(0)
    Wp, Wn = (rng.standard_normal((4, 30, prog.k)) for _ in range(2))
    prob = T._Problem(prog, torch.device("cpu"), torch.float64)
    W = torch.as_tensor(np.stack((Wp, Wn), axis=1))
    F = prob.predict(W, prob.Dt).numpy()
    np.testing.assert_allclose(F, prog.predict(Wp, Wn), rtol=1e-12, atol=1e-12)
    r = rng.standard_normal((50, 4))
    G = prob.grad_blocks(torch.as_tensor(r), prob.Dt).numpy()
    ref = np.array([[prog.Ut.T @ (prog.D[:, i] * r[:, c]) for i in range(30)]
                    for c in range(4)])
    np.testing.assert_allclose(G[:, 0], ref, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(G[:, 1], -ref, rtol=1e-12, atol=1e-12)


def _faces_and_projections(seed, point_seed):
    """Faces of a 24-block program, random points and Clarabel's projections."""
    from skbnconvex._solvers import _torch as T

    prog = _program("squared", n=60, d=5, P=12, seed=seed)
    prob = T._Problem(prog, torch.device("cpu"), torch.float64)
    P = prog.n_patterns
    S = np.where(prog.D, 1.0, -1.0)
    Z = np.random.default_rng(point_seed).standard_normal((2 * P, prog.k))
    proj = np.array(
        [_qp_projection(S[:, g % P, None] * prog.Ut, Z[g]) for g in range(2 * P)]
    )
    return prob, T._Faces(prob, 1), torch.arange(2 * P), Z, proj


def test_prox_bounds_remembered_from_earlier_points_are_safe(monkeypatch):
    """The prox of ``t ||.|| + cone`` against Clarabel's projections.

    At a first point, then at points where the bound remembered from the
    first one decides blocks: the same point with the step halved (the
    same point ``(beta / t) p`` of the gradients: every block zero at the
    first call is decided without another bound), and the first point
    stretched by 1.5 (blocks just below the threshold become non-zero;
    a bound that ignored how far the point moved would keep them zero).
    """
    prob, faces, gidx, Z0, proj = _faces_and_projections(seed=13, point_seed=2)
    pn = np.linalg.norm(proj, axis=1)
    t = float(np.median(pn[pn > 1e-6]))
    reached = []
    face_bound = faces.face_bound
    monkeypatch.setattr(
        faces, "face_bound", lambda g, Z: reached.append(g.clone()) or face_bound(g, Z)
    )
    for c, tc in ((1.0, t), (0.5, 0.5 * t), (1.5, t)):
        reached.clear()
        out = faces.prox(gidx, torch.as_tensor(c * Z0), tc).numpy()
        shrink = np.clip(1.0 - tc / np.maximum(c * pn, 1e-300), 0.0, None)
        np.testing.assert_allclose(out, shrink[:, None] * c * proj, atol=1e-8)
        seen = torch.cat(reached).numpy() if reached else np.array([], int)
        if c == 0.5:
            assert set(seen) <= set(np.flatnonzero(pn > t))
        if c == 1.5:
            newly = (pn > t / 1.5) & (pn <= t)
            assert newly.any() and set(np.flatnonzero(newly)) <= set(seen)


def test_dual_bounds_remembered_from_earlier_points_are_upper_bounds():
    """The certificates' bounds of ``||P_C(g_b)||`` with remembered bounds.

    Against Clarabel's projections: upper bounds at a first point (the
    values around beta, where the bounds decide), at the same point again
    (the remembered bounds, as tight as before) and at the point stretched
    by 1.5 (a bound that ignored how far the point moved would be below
    the projection there).
    """
    prob, faces, gidx, G0, proj = _faces_and_projections(seed=14, point_seed=3)
    pn = np.linalg.norm(proj, axis=1)
    # Projection norms between 0.5 and 1.2 beta (projections are positively
    # homogeneous); rows with a zero projection stay as drawn.
    u = np.random.default_rng(4).uniform(0.5, 1.2, len(pn))
    scale = np.where(pn > 1e-6, prob.beta * u / np.maximum(pn, 1e-300), 1.0)
    G0, pn = G0 * scale[:, None], pn * scale
    previous = None
    for c in (1.0, 1.0, 1.5):
        bound, _ = faces.dual_norms(gidx, torch.as_tensor(c * G0))
        bound = bound.numpy()
        assert (bound >= c * pn * (1 - 1e-7) - 1e-12).all()  # Clarabel: ~1e-8
        if c == 1.0 and previous is not None:
            assert (bound <= previous * (1 + 1e-12)).all()
        previous = bound
    assert ((pn < prob.beta) & (1.5 * pn > prob.beta)).sum() >= 3


@pytest.mark.parametrize("need", [2, 12])
def test_entrants_of_a_working_set_are_confirmed_by_exact_projections(
    need, monkeypatch
):
    """The scores that choose a working set's new patterns, made exact.

    Against Clarabel's projections, from the cheap bounds ``||g_b||`` (all
    above beta): every bound stays an upper bound; the blocks of the
    patterns taken are exact where they violate and at most beta where
    they do not; patterns are taken in the order of their cheap scores,
    only until ``need`` of them are shown to violate; and the prox at the
    same point does not project again the blocks shown below beta.
    """
    from skbnconvex._solvers import _torch as T

    monkeypatch.setattr(T, "_BATCH", 1)
    prob, faces, gidx, G0, proj = _faces_and_projections(seed=15, point_seed=5)
    P = faces.P
    pn = np.linalg.norm(proj, axis=1)
    # Projection norms between 0.5 and 1.5 beta: about half the blocks
    # violate; points with a zero projection get norm 2 beta (their cheap
    # bound, ||g_b||, is above beta too).
    u = np.random.default_rng(6).uniform(0.5, 1.5, len(pn))
    scale = np.where(
        pn > 1e-6, prob.beta * u / np.maximum(pn, 1e-300),
        2 * prob.beta / np.linalg.norm(G0, axis=1),
    )
    G0, pn = G0 * scale[:, None], pn * scale
    g = torch.as_tensor(G0)
    bound = torch.linalg.vector_norm(g, dim=1).view(1, 2, P)
    score = bound.amax(dim=(0, 1)) / prob.beta
    # The candidates: patterns with a cheap bound above beta (the others
    # cannot violate).
    cand = np.flatnonzero(score.numpy() > 1)
    assert len(cand) >= P - 2
    order = cand[np.argsort(-score.numpy()[cand], kind="stable")]
    before = bound.clone()
    T._confirm_entrants(faces, g, bound, score, need)
    b, pn2 = bound.view(2, P).numpy(), pn.reshape(2, P)
    changed = (b != before.view(2, P).numpy()).any(0)
    # Patterns taken in the order of their scores, until `need` violate.
    taken = order[: changed.sum()]
    assert set(np.flatnonzero(changed)) == set(taken)
    violating = (pn2[:, taken] > prob.beta).any(0)
    assert violating.sum() == min(need, int((pn2 > prob.beta).any(0).sum()))
    if need < len(cand):
        assert changed.sum() < len(cand) and violating[-1]
    # Upper bounds everywhere; exact where violating, at most beta otherwise.
    assert (b >= pn2 * (1 - 1e-7) - 1e-12).all()  # Clarabel: ~1e-8
    t, bt = pn2[:, taken], b[:, taken]
    hi = t > prob.beta * (1 + 1e-6)
    np.testing.assert_allclose(bt[hi], t[hi], rtol=1e-7)
    assert (bt[t < prob.beta * (1 - 1e-6)] <= prob.beta).all()
    # The prox at that point (q = (beta / t) p = g) reuses those bounds.
    projected = []
    project_exact = faces.project_exact

    def spy(gi, *args, **kwargs):
        projected.append(gi.clone())
        return project_exact(gi, *args, **kwargs)

    monkeypatch.setattr(faces, "project_exact", spy)
    tp = 0.5
    out = faces.prox(gidx, torch.as_tensor(G0 * tp / prob.beta), tp).numpy()
    zero = np.linalg.norm(out, axis=1) == 0
    np.testing.assert_array_equal(zero, pn <= prob.beta)
    shown = (b <= prob.beta).reshape(-1) & np.repeat(changed[None], 2, 0).reshape(-1)
    assert shown.any()
    again = torch.cat(projected).numpy() if projected else np.array([], int)
    assert not set(again) & set(np.flatnonzero(shown))
