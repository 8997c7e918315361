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


WEIGHTS = np.array([0.5, 2.0, 1.0, 3.0, 0.25, 1.5, 4.0])
LOSSES = [
    SquaredLoss(), BinaryLogLoss(), MultinomialLogLoss(),
    BinaryLogLoss(WEIGHTS), MultinomialLogLoss(WEIGHTS),
]


def _ids(loss):
    weighted = getattr(loss, "sample_weight", None) is not None
    return type(loss).__name__ + ("-weighted" if weighted else "")


@pytest.mark.parametrize("loss", LOSSES, ids=_ids)
def test_gradient_matches_finite_differences(loss):
    rng = np.random.default_rng(0)
    F, Y = _problem(loss, rng)
    numeric = approx_fprime(F.ravel(), lambda f: loss.value(f.reshape(F.shape), Y),
                            1e-7)
    np.testing.assert_allclose(loss.gradient(F, Y).ravel(), numeric, atol=1e-5)


@pytest.mark.parametrize("loss", LOSSES, ids=_ids)
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


@pytest.mark.parametrize("loss", LOSSES, ids=_ids)
def test_torch_and_cvxpy_values_agree(loss):
    import cvxpy as cp
    import torch

    rng = np.random.default_rng(2)
    F, Y = _problem(loss, rng)
    expected = loss.value(F, Y)
    assert np.isclose(float(loss.torch_value(torch.tensor(F), torch.tensor(Y))),
                      expected)
    assert np.isclose(loss.cvxpy_value(cp.Constant(F), Y).value, expected)


@pytest.mark.parametrize("loss", LOSSES, ids=_ids)
def test_torch_gradient_matches_autograd(loss):
    import torch

    rng = np.random.default_rng(3)
    F, Y = _problem(loss, rng)
    Ft = torch.tensor(F, requires_grad=True)
    loss.torch_value(Ft, torch.tensor(Y)).backward()
    got = loss.torch_gradient(torch.tensor(F), torch.tensor(Y)).numpy()
    np.testing.assert_allclose(got, Ft.grad.numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(loss.gradient(F, Y), got, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("layout", ["unsorted", "sorted-rows"])
@pytest.mark.parametrize("loss", LOSSES, ids=_ids)
def test_parameter_hessian_matches_autograd(loss, layout):
    """The Hessian the Newton methods use, against autograd's.

    Columns in any order of outputs (sorted inside), or grouped by output
    and given as the transpose of a (T, n) tensor (the Newton steps on the
    faces).
    """
    import torch

    from skbnconvex._losses import torch_parameter_hessian

    rng = np.random.default_rng(4)
    F0, Y = _problem(loss, rng)
    n, C = F0.shape
    T = 9
    out = rng.integers(0, C, T)
    J = torch.tensor(rng.standard_normal((n, T)))
    if layout == "sorted-rows":
        out = np.sort(out)
        J = J.T.contiguous().T
    out = torch.tensor(out)
    F0, Y = torch.tensor(F0), torch.tensor(Y)

    def objective(x):
        F = F0.index_add(1, out, J * x)  # F[:, out[j]] += J[:, j] x_j
        return loss.torch_value(F, Y)

    x = torch.tensor(rng.standard_normal(T))
    expected = torch.autograd.functional.hessian(objective, x)
    F = F0.index_add(1, out, J * x)
    got = torch_parameter_hessian(loss, F, Y, J, out)
    np.testing.assert_allclose(got.numpy(), expected.numpy(), rtol=1e-9, atol=1e-12)
    # The coupling term's product in float32: float64 out, float32 rounding.
    got32 = torch_parameter_hessian(loss, F, Y, J, out, gram_dtype=torch.float32)
    assert got32.dtype == torch.float64
    scale = float(expected.abs().max())
    np.testing.assert_allclose(
        got32.numpy(), expected.numpy(), rtol=0, atol=1e-5 * scale
    )


@pytest.mark.parametrize("kind", ["binary", "multinomial"])
def test_weighted_log_loss_is_the_loss_of_repeated_samples(kind):
    # With integer weights w and program outputs F = sqrt(w) f, the loss is
    # the unweighted loss of the network outputs f on repeated samples.
    rng = np.random.default_rng(4)
    counts = np.array([1, 3, 2, 1, 4, 2, 1])
    unweighted = BinaryLogLoss() if kind == "binary" else MultinomialLogLoss()
    weighted = type(unweighted)(counts.astype(float))
    f, Y = _problem(unweighted, rng)
    expected = unweighted.value(np.repeat(f, counts, 0), np.repeat(Y, counts, 0))
    assert np.isclose(weighted.value(np.sqrt(counts)[:, None] * f, Y), expected)
