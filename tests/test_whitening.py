import numpy as np
import pytest
import torch

from skbnconvex._whitening import whiten


@pytest.mark.parametrize("shape", [(10, 3), (6, 9), (20, 1)])
def test_whitened_columns_are_orthonormal(shape):
    X = np.random.default_rng(0).standard_normal(shape)
    W = whiten(X)
    assert W.rank == min(shape[0] - 1, shape[1])
    np.testing.assert_allclose(W.Ut.T @ W.Ut, np.eye(W.rank + 1), atol=1e-12)
    np.testing.assert_allclose(W.transform(X), W.Ut, atol=1e-10)


def test_batchnorm_output_is_whitened_data():
    # BN(Xw) computed by torch's BatchNorm1d (train mode, weight gamma/sqrt(n),
    # bias alpha/sqrt(n)) equals Ut z with z = [gamma s; alpha] (MATH.md 2).
    rng = np.random.default_rng(1)
    n, d = 15, 4
    X = rng.standard_normal((n, d)) * [1, 10, 0.1, 3] + 5
    W = whiten(X)
    w = rng.standard_normal(d)
    gamma, alpha = 1.7, -0.4
    # torch refuses eps=0 in train mode; 1e-300 vanishes next to var ~ 1.
    bn = torch.nn.BatchNorm1d(1, eps=1e-300, dtype=torch.float64).train()
    with torch.no_grad():
        bn.weight.fill_(gamma / np.sqrt(n))
        bn.bias.fill_(alpha / np.sqrt(n))
        out = bn(torch.as_tensor((X @ w)[:, None])).numpy().ravel()
    # s: coordinates of the centred pre-activation in the basis U.
    p = W.Ut[:, :-1].T @ ((X - X.mean(0)) @ w)
    z = np.append(gamma * p / np.linalg.norm(p), alpha)
    np.testing.assert_allclose(out, W.Ut @ z, atol=1e-10)


def test_rank_cut_drops_collinear_directions():
    rng = np.random.default_rng(2)
    A = rng.standard_normal((30, 2))
    X = np.column_stack([A, A @ [1.0, -2.0], np.full(30, 3.0)])
    assert whiten(X).rank == 2


def test_constant_data_has_rank_zero():
    W = whiten(np.ones((5, 3)))
    assert W.rank == 0
    np.testing.assert_allclose(W.Ut, np.full((5, 1), 1 / np.sqrt(5)))
