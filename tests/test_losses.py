import numpy as np
import pytest
from scipy.optimize import approx_fprime

from skbnconvex._losses import BinaryLogLoss, MultinomialLogLoss, SquaredLoss


def _problem(loss, rng):
    n = 7
    if isinstance(loss, SquaredLoss):
        return rng.standard_normal((n, 3)), rng.standard_normal((n, 3))
    if isinstance(loss, BinaryLogLoss):
        return rng.standard_normal((n, 1)), rng.choice([-1.0, 1.0], (n, 1))
    return rng.standard_normal((n, 4)), np.eye(4)[rng.integers(0, 4, n)]


LOSSES = [SquaredLoss(), BinaryLogLoss(), MultinomialLogLoss()]


@pytest.mark.parametrize("loss", LOSSES, ids=lambda l: type(l).__name__)
def test_gradient_matches_finite_differences(loss):
    rng = np.random.default_rng(0)
    F, Y = _problem(loss, rng)
    numeric = approx_fprime(F.ravel(), lambda f: loss.value(f.reshape(F.shape), Y),
                            1e-7)
    np.testing.assert_allclose(loss.gradient(F, Y).ravel(), numeric, atol=1e-5)


@pytest.mark.parametrize("loss", LOSSES, ids=lambda l: type(l).__name__)
def test_dual_is_the_fenchel_conjugate(loss):
    # Fenchel-Young: dual(lam) <= L(F) + <lam, F> for all F, with equality
    # at lam = -grad L(F). Checked at random points.
    rng = np.random.default_rng(1)
    F, Y = _problem(loss, rng)
    lam = -loss.gradient(F, Y)
    assert np.isclose(loss.dual(lam, Y), loss.value(F, Y) + np.sum(lam * F))
    for _ in range(20):
        G = F + rng.standard_normal(F.shape)
        assert loss.dual(lam, Y) <= loss.value(G, Y) + np.sum(lam * G) + 1e-12


@pytest.mark.parametrize("loss", LOSSES, ids=lambda l: type(l).__name__)
def test_torch_and_cvxpy_values_agree(loss):
    import cvxpy as cp
    import torch

    rng = np.random.default_rng(2)
    F, Y = _problem(loss, rng)
    expected = loss.value(F, Y)
    assert np.isclose(float(loss.torch_value(torch.tensor(F), torch.tensor(Y))),
                      expected)
    assert np.isclose(loss.cvxpy_value(cp.Constant(F), Y).value, expected)
