"""Projected-gradient bounds of cone-projection norms (skbnconvex._dual_bounds)."""

import numpy as np
import pytest
import torch
from scipy.optimize import nnls

from skbnconvex._dual_bounds import refine_projection_bounds
from skbnconvex._patterns import sample_patterns
from skbnconvex._whitening import whiten


def _blocks(spectral_power, n=80, d=6, B=50, seed=0):
    rng = np.random.default_rng(seed)
    Ut = whiten(rng.standard_normal((n, d)), spectral_power=spectral_power).Ut
    D = sample_patterns(Ut, B, random_state=seed)
    S = 2.0 * D.T - 1.0
    g = rng.standard_normal((B, Ut.shape[1]))
    # ||P_K(g)|| = min_{mu >= 0} ||g + K^T mu|| (scipy NNLS over all rows).
    exact = np.array([nnls((S[b][:, None] * Ut).T, -g[b])[1] for b in range(B)])
    return Ut, S, g, exact


@pytest.mark.parametrize("work_dtype", [None, torch.float32])
@pytest.mark.parametrize("spectral_power", [0.0, 0.5])
def test_bounds_lie_between_the_projection_and_the_norm(spectral_power, work_dtype):
    """Valid upper bounds (in float64) whatever the working precision."""
    Ut, S, g, exact = _blocks(spectral_power)
    step = 1.0 / np.linalg.norm(Ut, 2) ** 2
    t = torch.from_numpy
    nrm = np.linalg.norm(g, axis=1)

    def refine(n_steps):
        return refine_projection_bounds(
            t(Ut), t(S), t(g), t(nrm), 0.0, n_steps, step, work_dtype=work_dtype
        ).numpy()

    bound = refine(200)
    assert bound.dtype == np.float64
    assert np.all(bound >= exact * (1 - 1e-12) - 1e-14)
    assert np.all(bound <= nrm)
    # 200 accelerated steps come close to the exact values.
    assert np.max(bound - exact) < 0.05 * nrm.max()
    # More steps never loosen a bound (the minimum over the iterates).
    few = refine(5)
    assert np.all(bound <= few * (1 + 1e-12))


def test_single_precision_iterations_match_double_precision_ones():
    """Iterating in float32 changes the float64 bounds by round-off only."""
    Ut, S, g, exact = _blocks(0.0, seed=3)
    t = torch.from_numpy
    nrm = np.linalg.norm(g, axis=1)
    b64, b32 = (
        refine_projection_bounds(
            t(Ut), t(S), t(g), t(nrm), 0.0, 24, work_dtype=wd
        ).numpy()
        for wd in (None, torch.float32)
    )
    assert np.all(b32 >= exact * (1 - 1e-12) - 1e-14)
    np.testing.assert_allclose(b32, b64, rtol=0, atol=1e-5 * nrm.max())


def test_blocks_stop_once_below_the_threshold():
    """Stopped blocks are certified below it; the others are unchanged."""
    Ut, S, g, exact = _blocks(0.0, seed=1)
    t = torch.from_numpy
    nrm = t(np.linalg.norm(g, axis=1))
    # In float64 throughout, so that "at most below" is exact.
    full = refine_projection_bounds(
        t(Ut), t(S), t(g), nrm, 0.0, 24, work_dtype=None
    ).numpy()
    below = float(np.median(exact))
    early = refine_projection_bounds(
        t(Ut), t(S), t(g), nrm, below, 24, work_dtype=None
    ).numpy()
    above = early > below
    assert above.any() and (~above).any()
    np.testing.assert_allclose(early[above], full[above], rtol=1e-12)
    assert np.all(full[~above] <= below * (1 + 1e-12) + 1e-15)
    assert np.all(early >= exact * (1 - 1e-9) - 1e-12)


def test_float32_bounds_are_close_to_float64():
    Ut, S, g, exact = _blocks(0.0, seed=2)
    t = torch.from_numpy
    b64 = refine_projection_bounds(
        t(Ut), t(S), t(g), t(np.linalg.norm(g, axis=1)), 0.0, 24
    ).numpy()
    f = np.float32
    b32 = refine_projection_bounds(
        t(Ut.astype(f)), t(S.astype(f)), t(g.astype(f)),
        t(np.linalg.norm(g, axis=1).astype(f)), 0.0, 24,
    ).numpy()
    assert b32.dtype == np.float32
    np.testing.assert_allclose(b32, b64, rtol=1e-4, atol=1e-5)
