import numpy as np
import pytest
from scipy.optimize import lsq_linear

from skbnconvex._nnls import nnls


def _projection_problem(seed, n=40, k=5):
    """A block on a face of its cone: the case where scipy's nnls failed."""
    rng = np.random.default_rng(seed)
    K, _ = np.linalg.qr(rng.standard_normal((n, k)))
    K *= np.where(rng.random(n) < 0.5, 1.0, -1.0)[:, None]
    # w tight on k - 1 rows and feasible elsewhere: solve K_T w = 0.
    w = np.linalg.svd(K[: k - 1])[2][-1]
    w = w if (K @ w).sum() > 0 else -w
    rows = K @ w < 1e-6
    return K[rows].T, -w


@pytest.mark.parametrize("seed", range(20))
def test_nnls_is_optimal_on_degenerate_projections(seed):
    A, b = _projection_problem(seed)
    x, residual = nnls(A, b)
    ref = lsq_linear(A, b, bounds=(0, np.inf), method="bvls", tol=1e-14)
    assert np.all(x >= 0)
    assert residual == pytest.approx(np.linalg.norm(A @ x - b))
    assert residual <= np.linalg.norm(ref.fun) + 1e-10


def test_nnls_on_random_problems_matches_bvls():
    rng = np.random.default_rng(0)
    for _ in range(50):
        A, b = rng.standard_normal((6, 9)), rng.standard_normal(6)
        x, residual = nnls(A, b)
        ref = lsq_linear(A, b, bounds=(0, np.inf), method="bvls", tol=1e-14)
        assert residual == pytest.approx(np.linalg.norm(ref.fun), abs=1e-9)


def test_regression_scipy_nnls_wrong_answer():
    # A cone projection from a torch-solver block (n=150, rank 4) on which
    # scipy 1.17's nnls returned x with ||A x - b|| = 2.598 while reporting
    # 1.902. For this b (= -w with w feasible), no x >= 0 can do better
    # than x = 0, whose residual is ||b|| = 2.209.
    A = np.array([
        [0.11879294130150522, 0.012636246730249913, 0.0878280752827676,
         -0.07811747460351066],
        [-0.05642656398447901, 0.05300016042223919, 0.08550809388744876,
         -0.0398804312807085],
        [-0.07825438105656775, -0.005677055120097271, 0.00992865357163072,
         -0.04071846185033128],
        [0.004028748319297099, 0.08413611796192125, 0.07157860082663724,
         0.058895640030193486],
        [-0.08164965809277261, 0.08164965809277261, -0.08164965809277261,
         -0.08164965809277261],
    ])
    b = np.array([0.4180619292099379, -1.2663212008142908, 1.5614368739184545,
                  0.8140336959372878, 0.027032828896111655])
    x, residual = nnls(A, b)
    assert residual == pytest.approx(np.linalg.norm(A @ x - b))
    assert residual <= np.linalg.norm(b) + 1e-12


@pytest.mark.parametrize("keep_rows", [1, 8])
@pytest.mark.parametrize("max_add", [None, 2])
def test_cone_projection_on_rows_with_signs_is_the_projection(
    max_add, keep_rows, monkeypatch
):
    """Rows given as ``signs[:, None] * A`` (not formed) or formed: both give
    the projection onto ``{z : s_j A_j z >= 0}``, which is feasible and
    optimal (Moreau: ``z = g + K^T mu``, ``mu >= 0``, ``mu_j K_j z = 0``,
    so ``z - g`` is in the normal cone at ``z``); also where inactive rows
    leave the row set at almost every step (``keep_rows=1``)."""
    from skbnconvex import _nnls
    from skbnconvex._nnls import cone_projection_on_rows

    monkeypatch.setattr(_nnls, "_KEEP_ROWS", keep_rows)

    rng = np.random.default_rng(4)
    n, k = 200, 6
    U, _ = np.linalg.qr(rng.standard_normal((n, k)))
    # The signs of an arrangement pattern: the cone has an interior (random
    # signs would leave only {0}).
    h = rng.standard_normal(k)
    s = np.where(U @ h >= 0, 1.0, -1.0)
    K = s[:, None] * U
    nontrivial = 0
    for _ in range(10):
        g = h + rng.standard_normal(k)  # near the cone, most not in it
        start = K @ g < 0
        start[np.flatnonzero(start)[3:]] = False  # a few violated rows only
        z, mu = cone_projection_on_rows(U, g, start, max_add=max_add, signs=s)
        z_formed, _ = cone_projection_on_rows(K, g, start, max_add=max_add)
        np.testing.assert_allclose(z, z_formed, atol=1e-12)
        nontrivial += np.linalg.norm(z) > 1e-3
        assert (K @ z).min() >= -1e-12
        assert mu.min() >= 0
        np.testing.assert_allclose(z, g + K.T @ mu, atol=1e-12)
        assert np.abs(mu * (K @ z)).max() <= 1e-12
    assert nontrivial >= 5  # not only projections onto {0}
