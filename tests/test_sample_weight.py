"""Sample weights: a weighted fit is the fit on repeated samples."""

import numpy as np
import pytest

from skbnconvex import ConvexBNReLUClassifier, ConvexBNReLURegressor


def _data(kind, n=30, d=2, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    if kind == "regression":
        y = np.abs(X[:, 0]) - X[:, 1] + 0.1 * rng.standard_normal(n)
    else:
        n_classes = 2 if kind == "binary" else 3
        y = (rng.integers(0, n_classes, n) + (X[:, 0] > 0)) % n_classes
    return X, y


def _estimator(kind, **params):
    if kind == "regression":
        return ConvexBNReLURegressor(**params)
    return ConvexBNReLUClassifier(**params)


def _outputs(est, X):
    return est.predict(X) if hasattr(est, "n_outputs_") else est.decision_function(X)


@pytest.mark.parametrize("solver", ["cvxpy", "torch"])
@pytest.mark.parametrize("kind", ["regression", "binary", "multiclass"])
def test_integer_weights_equal_repeated_samples(kind, solver):
    # All patterns enumerated: both fits are global optima, of the same
    # problem; the repeated data are a different program (other rows,
    # other whitening) solved independently.
    X, y = _data(kind)
    w = np.random.default_rng(1).integers(0, 4, X.shape[0])
    # (The first-order solver gets a tolerance it reaches on these many
    # degenerate patterns: 553 for 24 samples.)
    tol = 1e-8 if solver == "cvxpy" else 1e-6
    params = dict(alpha=1.0, patterns="enumerate", solver=solver, tol=tol)
    weighted = _estimator(kind, **params).fit(X, y, sample_weight=w)
    repeated = _estimator(kind, **params).fit(np.repeat(X, w, 0), np.repeat(y, w))
    # Equal up to the accuracy each fit certifies (Clarabel stops short of
    # tol on the exponential cones of the log losses).
    gaps = max(weighted.optimality_gap_, repeated.optimality_gap_)
    assert gaps <= 1e-4
    assert weighted.objective_ == pytest.approx(repeated.objective_, rel=max(10 * tol, 2 * gaps))
    assert weighted.lower_bound_ <= repeated.objective_ * (1 + 1e-9)
    assert repeated.lower_bound_ <= weighted.objective_ * (1 + 1e-9)
    scale = np.abs(_outputs(repeated, X)).max()
    np.testing.assert_allclose(_outputs(weighted, X), _outputs(repeated, X),
                               atol=1e-3 * scale)


@pytest.mark.parametrize("kind", ["regression", "multiclass"])
def test_sampled_patterns_are_those_of_the_repeated_samples(kind):
    # The whitening's sign convention depends on the Gram matrix only, so
    # the same seed samples the same patterns for both forms of the data.
    X, y = _data(kind, n=40, d=3, seed=2)
    w = np.random.default_rng(3).integers(1, 4, X.shape[0])
    params = dict(alpha=0.5, n_patterns=25, random_state=0, solver="cvxpy")
    weighted = _estimator(kind, **params).fit(X, y, sample_weight=w)
    repeated = _estimator(kind, **params).fit(np.repeat(X, w, 0), np.repeat(y, w))
    D_weighted, D_repeated = weighted._solution[0], repeated._solution[0]
    np.testing.assert_array_equal(np.repeat(D_weighted, w, 0), D_repeated)
    assert weighted.objective_ == pytest.approx(repeated.objective_, rel=1e-6)


@pytest.mark.parametrize("kind", ["regression", "binary"])
def test_zero_weights_remove_samples_and_unit_weights_change_nothing(kind):
    X, y = _data(kind, n=40, d=3, seed=4)
    w = np.ones(X.shape[0])
    w[::4] = 0.0
    params = dict(alpha=0.3, n_patterns=20, random_state=0)
    zero = _estimator(kind, **params).fit(X, y, sample_weight=w)
    removed = _estimator(kind, **params).fit(X[w > 0], y[w > 0])
    np.testing.assert_array_equal(_outputs(zero, X), _outputs(removed, X))
    ones = _estimator(kind, **params).fit(X, y, sample_weight=np.ones(len(y)))
    none = _estimator(kind, **params).fit(X, y)
    np.testing.assert_array_equal(_outputs(ones, X), _outputs(none, X))


@pytest.mark.parametrize("kind", ["regression", "binary"])
def test_scaling_the_weights_divides_alpha(kind):
    # objective(c w, alpha) = (1/(c S)) sum c w_i l_i + alpha/(2 c S) pen
    #                       = objective(w, alpha / c): fractional weights.
    X, y = _data(kind, n=25, seed=5)
    w = np.random.default_rng(6).uniform(0.2, 2.0, X.shape[0])
    c = 2.5
    params = dict(patterns="enumerate", solver="cvxpy", tol=1e-8)
    scaled = _estimator(kind, alpha=1.0, **params).fit(X, y, sample_weight=c * w)
    shrunk = _estimator(kind, alpha=1.0 / c, **params).fit(X, y, sample_weight=w)
    gaps = max(scaled.optimality_gap_, shrunk.optimality_gap_)
    assert gaps <= 1e-4
    assert scaled.objective_ == pytest.approx(shrunk.objective_, rel=max(1e-7, 2 * gaps))
    if kind == "regression":
        assert scaled.certified_ and shrunk.certified_


def test_weighted_network_uses_weighted_batch_statistics():
    # The recovered network's BN statistics and objective, recomputed here
    # from the data and the weights with a plain weighted forward pass.
    X, y = _data("regression", n=30, d=3, seed=7)
    w = np.random.default_rng(8).uniform(0.1, 3.0, X.shape[0])
    alpha = 0.2
    reg = ConvexBNReLURegressor(alpha=alpha, n_patterns=30, random_state=0).fit(
        X, y, sample_weight=w)
    H = X @ reg.hidden_weights_
    mean = np.average(H, axis=0, weights=w)
    var = np.average((H - mean) ** 2, axis=0, weights=w)
    np.testing.assert_allclose(reg.bn_running_mean_, mean, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(reg.bn_running_var_, var, rtol=1e-8)
    A = np.maximum((H - mean) / np.sqrt(var) * reg.bn_weight_ + reg.bn_bias_, 0)
    f = (A @ reg.output_weights_).ravel()
    penalty = (np.sum(reg.bn_weight_**2) + np.sum(reg.bn_bias_**2)
               + np.sum(reg.output_weights_**2))
    objective = (0.5 * np.sum(w * (f - y) ** 2) + 0.5 * alpha * penalty) / w.sum()
    assert reg.objective_ == pytest.approx(objective, rel=1e-10)
    assert 0.0 <= reg.optimality_gap_


@pytest.mark.parametrize(
    "sample_weight, message",
    [
        (-np.ones(20), "Negative values in data passed to `sample_weight`"),
        (np.ones(19), "sample_weight.shape"),
        (np.eye(20)[0], "at least two positive entries"),
    ],
)
def test_bad_sample_weight_is_refused(sample_weight, message):
    X, y = _data("regression", n=20)
    with pytest.raises(ValueError, match=message):
        ConvexBNReLURegressor(n_patterns=5).fit(X, y, sample_weight=sample_weight)


def test_adam_warm_up_takes_the_weights():
    X, y = _data("binary", n=40, d=3, seed=9)
    w = np.random.default_rng(10).integers(0, 3, X.shape[0])
    params = dict(alpha=0.5, n_patterns=10, init="adam", random_state=0)
    weighted = ConvexBNReLUClassifier(**params).fit(X, y, sample_weight=w)
    repeated = ConvexBNReLUClassifier(**params).fit(np.repeat(X, w, 0), np.repeat(y, w))
    # The warm-up network is trained on the weighted objective, so its
    # patterns (and the convex program) match those of the repeated data
    # up to the non-convex training's round-off.
    assert weighted.objective_ == pytest.approx(repeated.objective_, rel=1e-3)
