"""Property tests over random small problems (hypothesis).

Run ``pytest tests/test_properties.py --hypothesis-show-statistics`` for the
example counts.
"""

import warnings

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sklearn.exceptions import ConvergenceWarning

from skbnconvex import ConvexBNReLUClassifier, ConvexBNReLURegressor
from skbnconvex._losses import get_loss
from skbnconvex._patterns import sample_patterns
from skbnconvex._program import ConvexProgram
from skbnconvex._solvers import solve_cvxpy
from skbnconvex._whitening import whiten

SETTINGS = settings(max_examples=60, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])


@st.composite
def problems(draw):
    n = draw(st.integers(4, 14))
    d = draw(st.integers(1, 3))
    seed = draw(st.integers(0, 2**31 - 1))
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d)) * rng.uniform(0.1, 10, d) + rng.normal(0, 3, d)
    classify = draw(st.booleans())
    if classify:
        y = np.arange(n) % 2  # both classes present
        rng.shuffle(y)
        Estimator = ConvexBNReLUClassifier
    else:
        y = rng.standard_normal(n)
        Estimator = ConvexBNReLURegressor
    alpha = draw(st.floats(0.05, 2.0))
    n_patterns = draw(st.integers(1, 12))
    return Estimator, X, y, alpha, n_patterns, seed


def _fit(Estimator, X, y, alpha, n_patterns, seed):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return Estimator(alpha=alpha, n_patterns=n_patterns,
                         random_state=seed).fit(X, y)


def _scores(est, X):
    if isinstance(est, ConvexBNReLURegressor):
        return est.predict(X).reshape(len(X), -1)
    return est.decision_function(X).reshape(len(X), -1)


@SETTINGS
@given(problems())
def test_recovered_network_is_the_convex_model(problem):
    Estimator, X, y, alpha, n_patterns, seed = problem
    est = _fit(Estimator, X, y, alpha, n_patterns, seed)
    n = len(X)
    # The exported module in train mode (batch statistics of X): the
    # network of the training problem, computed by torch.
    with torch.no_grad():
        F = est.to_torch().train()(torch.as_tensor(X)).numpy()
    loss = get_loss(est.loss, F.shape[1])
    Y = (y[:, None] if isinstance(est, ConvexBNReLURegressor)
         else (2.0 * y - 1.0)[:, None])
    pen = (np.sum(est.bn_weight_**2) + np.sum(est.bn_bias_**2)
           + np.sum(est.output_weights_**2))
    forward = (loss.value(F, Y) + 0.5 * alpha * pen) / n
    assert forward == pytest.approx(est.objective_, rel=1e-8, abs=1e-12)
    assert est.objective_ == pytest.approx(est._convex_objective, rel=1e-8, abs=1e-12)
    # Predictions on the training data are the convex model's.
    D, Wp, Wn, _ = est._solution
    W = whiten(X)
    if D.shape[1]:
        program = ConvexProgram(W.Ut, D, Y, loss, alpha / np.sqrt(n))
        np.testing.assert_allclose(_scores(est, X), program.predict(Wp, Wn),
                                   atol=1e-8 * max(1, np.abs(Y).max()))
    # Eval-mode export equals predict on new data.
    X_new = np.random.default_rng(seed).standard_normal((7, X.shape[1])) * 3
    with torch.no_grad():
        out = est.to_torch()(torch.as_tensor(X_new)).numpy()
    np.testing.assert_allclose(out, _scores(est, X_new), atol=1e-8)
    # The certificate never claims a gap below zero.
    assert est.optimality_gap_ >= 0
    assert est.lower_bound_ <= est.objective_ * (1 + 1e-9) + 1e-12


@SETTINGS
@given(problems())
def test_objective_decreases_along_nested_pattern_sets(problem):
    Estimator, X, y, alpha, _, seed = problem
    n = len(X)
    W = whiten(X)
    D = sample_patterns(W.Ut, 12, seed)
    Y = (y[:, None] if Estimator is ConvexBNReLURegressor
         else (2.0 * y - 1.0)[:, None])
    loss = get_loss("squared_error" if Estimator is ConvexBNReLURegressor
                    else "log_loss", 1)
    values = []
    for p in sorted({max(1, D.shape[1] // 3), max(1, 2 * D.shape[1] // 3),
                     D.shape[1]}):
        program = ConvexProgram(W.Ut, D[:, :p], Y, loss, alpha / np.sqrt(n))
        values.append(solve_cvxpy(program).objective)
    for small, large in zip(values, values[1:]):
        assert large <= small * (1 + 1e-6) + 1e-9


@pytest.mark.parametrize("share", ["few", "all"])
def test_program_prediction_is_the_sum_over_patterns(share, monkeypatch):
    """``ConvexProgram.predict`` from the non-zero pairs (output, pattern)
    and from the dense product (both sides of ``_SPARSE_PAIRS``) is the
    plain ``F[:, c] = sum_i D_i U' (a_ci - b_ci)``, in chunks of pairs too."""
    from skbnconvex import _program

    rng = np.random.default_rng(0)
    n, k, P, C = 50, 4, 24, 3
    Ut = rng.standard_normal((n, k))
    D = rng.random((n, P)) < 0.5
    program = ConvexProgram(Ut, D, rng.standard_normal((n, C)),
                            get_loss("squared_error", C), 0.1)
    nnz = C * P // _program._SPARSE_PAIRS if share == "few" else C * P
    Wp, Wn = np.zeros((C, P, k)), np.zeros((C, P, k))
    pairs = rng.choice(C * P, nnz, replace=False)
    Wp.reshape(-1, k)[pairs] = rng.standard_normal((nnz, k))
    Wn.reshape(-1, k)[pairs[::2]] = rng.standard_normal((len(pairs[::2]), k))
    plain = np.stack(
        [sum(D[:, i] * (Ut @ (Wp[c, i] - Wn[c, i])) for i in range(P))
         for c in range(C)],
        axis=1,
    )
    np.testing.assert_allclose(program.predict(Wp, Wn), plain, rtol=1e-12, atol=1e-12)
    # Chunks of three pairs each (the chunk size follows the row count).
    monkeypatch.setattr(_program, "_CHUNK_ENTRIES", 3 * n)
    np.testing.assert_allclose(program.predict(Wp, Wn), plain, rtol=1e-12, atol=1e-12)
