"""Every bad or unusual input gets a correct fit or a clear error (issue 8).

Each case is a row of the table in doc/reliability.rst.
"""

import warnings

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.exceptions import ConvergenceWarning, NotFittedError
from sklearn.utils.validation import check_is_fitted

from skbnconvex import ConvexBNReLUClassifier, ConvexBNReLURegressor, SolverError

ESTIMATORS = [ConvexBNReLURegressor, ConvexBNReLUClassifier]


def _data(Estimator, n=20, d=3, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    y = np.sin(2 * X[:, 0]) + X[:, -1]
    if Estimator is ConvexBNReLUClassifier:
        y = (y > np.median(y)).astype(int)
    return X, y


def _fit(Estimator, X, y, **params):
    params = {"alpha": 0.3, "n_patterns": 10, "random_state": 0, **params}
    return Estimator(**params).fit(X, y)


def _assert_sane(est, X):
    out = est.predict(X)
    assert out.shape[0] == X.shape[0]
    if isinstance(est, ConvexBNReLURegressor):
        assert np.all(np.isfinite(out))
    assert np.isfinite(est.objective_) and est.optimality_gap_ >= 0


# ------------------------------------------------------------ input matrix

@pytest.mark.parametrize("Estimator", ESTIMATORS)
@pytest.mark.parametrize("where", ["X", "y"])
@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_values(Estimator, where, bad):
    X, y = _data(Estimator)
    X, y = X.copy(), y.astype(float)
    (X if where == "X" else y)[2] = bad
    with pytest.raises(ValueError, match="NaN|infinity|Unknown label type"):
        _fit(Estimator, X, y)


@pytest.mark.parametrize("Estimator", ESTIMATORS)
@pytest.mark.parametrize("n, match", [(0, "0 sample"), (1, "minimum of 2")])
def test_empty_and_single_sample(Estimator, n, match):
    X, y = _data(Estimator)
    with pytest.raises(ValueError, match=match):
        _fit(Estimator, X[:n], y[:n])


@pytest.mark.parametrize("solver", ["auto", "torch"])
@pytest.mark.parametrize("Estimator", ESTIMATORS)
def test_two_samples(Estimator, solver):
    X = np.array([[0.0, 1.0], [1.0, 3.0]])
    y = np.array([0, 1])
    est = _fit(Estimator, X, y, alpha=0.01, solver=solver)
    _assert_sane(est, X)
    np.testing.assert_array_equal(est.predict(X) > 0.5, [False, True])


@pytest.mark.parametrize("solver", ["auto", "torch"])
@pytest.mark.parametrize("Estimator", ESTIMATORS)
def test_constant_features_rank_zero(Estimator, solver):
    X, y = _data(Estimator)
    X = np.ones_like(X) * [1.0, -2.0, 3.0]
    est = _fit(Estimator, X, y, solver=solver)
    assert est.rank_ == 0
    _assert_sane(est, X)
    # Nothing to learn from X: one constant prediction.
    assert np.unique(est.predict(X)).size == 1


@pytest.mark.parametrize("Estimator", ESTIMATORS)
def test_duplicate_collinear_and_rescaled_features_change_nothing(Estimator):
    # BN whitens: the optimum depends only on the span of the centred data.
    # With every pattern enumerated, the optimum must be the same for X,
    # X with duplicated / collinear columns, and X with features at 1e-8
    # and 1e8.
    X, y = _data(Estimator, n=12, d=2)
    ref = _fit(Estimator, X, y, patterns="enumerate")
    variants = [
        np.column_stack([X, X[:, 0], X @ [2.0, -1.0]]),
        X * [1e-8, 1e8],
    ]
    for Xv in variants:
        est = _fit(Estimator, Xv, y, patterns="enumerate")
        assert est.rank_ == 2
        assert est.objective_ == pytest.approx(ref.objective_, rel=1e-6)
        _assert_sane(est, Xv)


@pytest.mark.parametrize("solver", ["auto", "torch"])
@pytest.mark.parametrize("Estimator", ESTIMATORS)
@pytest.mark.parametrize("n, d", [(20, 1), (5, 50), (1000, 2)])
def test_shapes(Estimator, n, d, solver):
    X, y = _data(Estimator, n=n, d=d)
    est = _fit(Estimator, X, y, solver=solver)
    _assert_sane(est, X)
    assert est.rank_ == min(n - 1, d)


@pytest.mark.parametrize("solver", ["auto", "torch"])
@pytest.mark.parametrize("Estimator", ESTIMATORS)
@pytest.mark.parametrize("dtype", [np.int64, np.bool_, np.float32, object])
def test_dtypes(Estimator, dtype, solver):
    X, y = _data(Estimator)
    Xd = (X > 0) if dtype is np.bool_ else np.round(3 * X) if dtype is np.int64 else X
    Xd = Xd.astype(dtype)
    est = _fit(Estimator, Xd, y, solver=solver)
    _assert_sane(est, Xd)
    # Same numbers in float64 give the same fit.
    ref = _fit(Estimator, np.asarray(Xd, dtype=np.float64), y, solver=solver)
    np.testing.assert_allclose(est.objective_, ref.objective_, rtol=1e-6)


@pytest.mark.parametrize("Estimator", ESTIMATORS)
def test_string_features_are_refused(Estimator):
    X, y = _data(Estimator)
    Xs = X.astype(str).astype(object)
    Xs[0, 0] = "a"
    with pytest.raises(ValueError, match="could not convert string to float"):
        _fit(Estimator, Xs, y)


@pytest.mark.parametrize("Estimator", ESTIMATORS)
@pytest.mark.parametrize("fmt", ["csr", "csc", "coo"])
def test_sparse_is_refused_with_the_fix(Estimator, fmt):
    X, y = _data(Estimator)
    with pytest.raises(TypeError, match="dense data is required.*toarray"):
        _fit(Estimator, sp.random(20, 3, density=0.5, format=fmt, random_state=0), y)


@pytest.mark.parametrize("Estimator", ESTIMATORS)
def test_memory_layouts_give_identical_fits(Estimator):
    X, y = _data(Estimator, d=6)
    ref = _fit(Estimator, X[:, ::2].copy(), y)
    for Xv in (X[:, ::2], np.asfortranarray(X[:, ::2])):
        est = _fit(Estimator, Xv, y)
        # BLAS may round differently for other layouts: equal to round-off.
        np.testing.assert_allclose(est.predict(Xv), ref.predict(Xv), atol=1e-7)


@pytest.mark.parametrize("Estimator", ESTIMATORS)
def test_pandas_with_and_without_names(Estimator):
    pd = pytest.importorskip("pandas")
    X, y = _data(Estimator)
    named = pd.DataFrame(X, columns=["a", "b", "c"])
    est = _fit(Estimator, named, pd.Series(y))
    np.testing.assert_array_equal(est.feature_names_in_, ["a", "b", "c"])
    _assert_sane(est, named)
    unnamed = _fit(Estimator, pd.DataFrame(X), y)
    assert not hasattr(unnamed, "feature_names_in_")
    np.testing.assert_array_equal(unnamed.predict(X), est.predict(named))
    with pytest.raises(ValueError, match="feature names"):
        est.predict(named.rename(columns={"a": "z"}))


@pytest.mark.parametrize("Estimator", ESTIMATORS)
def test_wrong_number_of_features_at_predict(Estimator):
    X, y = _data(Estimator)
    est = _fit(Estimator, X, y)
    with pytest.raises(ValueError, match="expecting 3 features"):
        est.predict(np.ones((2, 4)))


def test_single_class():
    X, _ = _data(ConvexBNReLUClassifier)
    with pytest.raises(ValueError, match="only one class"):
        _fit(ConvexBNReLUClassifier, X, np.full(20, "a"))


@pytest.mark.parametrize(
    "labels",
    [np.array(["no", "yes"]), np.array([3, 7]), np.array([False, True]),
     np.array([-1.0, 2.0])],
)
def test_label_types(labels):
    X, y = _data(ConvexBNReLUClassifier)
    est = _fit(ConvexBNReLUClassifier, X, labels[y])
    np.testing.assert_array_equal(est.classes_, labels)
    assert set(est.predict(X)) <= set(labels)
    assert est.score(X, labels[y]) > 0.5


def test_mixed_labels_are_refused():
    X, y = _data(ConvexBNReLUClassifier)
    mixed = np.array(["yes" if v else 0 for v in y], dtype=object)
    with pytest.raises(ValueError, match="Mix of label input types"):
        _fit(ConvexBNReLUClassifier, X, mixed)


def test_continuous_labels_are_refused():
    X, y = _data(ConvexBNReLUClassifier)
    with pytest.raises(ValueError, match="Unknown label type: continuous"):
        _fit(ConvexBNReLUClassifier, X, y + 0.5)


@pytest.mark.parametrize("bad_y, match", [
    (np.zeros((19, 2)), "inconsistent numbers of samples"),
    (np.zeros((20, 2, 2)), "Found array with dim 3"),
])
def test_wrong_target_shapes(bad_y, match):
    X, _ = _data(ConvexBNReLURegressor)
    with pytest.raises(ValueError, match=match):
        _fit(ConvexBNReLURegressor, X, bad_y)


@pytest.mark.parametrize("Estimator", ESTIMATORS)
def test_huge_alpha_gives_zero_network_that_predicts(Estimator):
    X, y = _data(Estimator)
    est = _fit(Estimator, X, y, alpha=1e8)
    assert est.n_neurons_ == 0
    _assert_sane(est, X)


@pytest.mark.parametrize("solver", ["auto", "torch"])
@pytest.mark.parametrize("Estimator", ESTIMATORS)
def test_tiny_alpha(Estimator, solver):
    X, y = _data(Estimator)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est = _fit(Estimator, X, y, alpha=1e-8, solver=solver)
    _assert_sane(est, X)
    # Almost no regularisation: the training fit is good.
    assert est.score(X, y) > 0.8


@pytest.mark.parametrize("Estimator", ESTIMATORS)
def test_more_patterns_asked_than_exist(Estimator):
    X, y = _data(Estimator, n=6, d=1)
    est = _fit(Estimator, X, y, n_patterns=500)
    assert est.n_patterns_ == 2 * (1 + 5) - 1  # all patterns of rank 1
    _assert_sane(est, X)


# ------------------------------------------------------------ failures

def test_default_solver_failure_falls_back_with_a_warning(monkeypatch):
    import cvxpy as cp

    from skbnconvex._solvers import _cvxpy

    real = _cvxpy._solve_once

    def failing_clarabel(problem, solver, options, verbose):
        if solver == "CLARABEL":
            raise cp.SolverError("simulated failure")
        return real(problem, solver, options, verbose)

    monkeypatch.setattr(_cvxpy, "_solve_once", failing_clarabel)
    X, y = _data(ConvexBNReLURegressor)
    with pytest.warns(RuntimeWarning, match="CLARABEL failed .* retrying with SCS"):
        est = _fit(ConvexBNReLURegressor, X, y)
    ref = _fit(ConvexBNReLURegressor, X, y, solver_options={"solver": "SCS", "eps": 1e-9})
    assert est.objective_ == pytest.approx(ref.objective_, rel=1e-5)


def test_named_solver_failure_raises_what_to_try():
    X, y = _data(ConvexBNReLURegressor)
    with pytest.raises(SolverError, match="OSQP failed .* Try another solver"):
        _fit(ConvexBNReLURegressor, X, y, solver_options={"solver": "OSQP"})


@pytest.mark.parametrize("Estimator", ESTIMATORS)
def test_torch_out_of_iterations_warns_with_the_gap(Estimator):
    X, y = _data(Estimator)
    with pytest.warns(ConvergenceWarning, match="did not reach tol"):
        est = _fit(Estimator, X, y, solver="torch", max_iter=3)
    _assert_sane(est, X)


def test_cuda_without_cuda_is_a_clear_error():
    import torch

    if torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    X, y = _data(ConvexBNReLURegressor)
    with pytest.raises(ValueError, match="CUDA is not available"):
        _fit(ConvexBNReLURegressor, X, y, solver="torch", device="cuda")


@pytest.mark.parametrize("solver", ["cvxpy", "torch"])
def test_out_of_memory_is_refused_with_an_estimate(monkeypatch, solver):
    from skbnconvex._solvers import _base

    monkeypatch.setattr(_base, "available_memory", lambda: 1000)
    X, y = _data(ConvexBNReLURegressor)
    with pytest.raises(MemoryError, match=r"needs about .* GiB .* available"):
        _fit(ConvexBNReLURegressor, X, y, solver=solver)


def test_keyboard_interrupt_leaves_the_estimator_unfitted(monkeypatch):
    from skbnconvex import _estimators

    X, y = _data(ConvexBNReLURegressor)
    est = _fit(ConvexBNReLURegressor, X, y)

    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(_estimators, "solve_cvxpy", interrupt)
    with pytest.raises(KeyboardInterrupt):
        est.set_params(alpha=0.1).fit(X, y)
    with pytest.raises(NotFittedError):
        check_is_fitted(est)
    assert not [a for a in vars(est) if a.endswith("_")]


# ------------------------------------------------------------ determinism

@pytest.mark.parametrize("solver", ["cvxpy", "torch"])
@pytest.mark.parametrize("Estimator", ESTIMATORS)
def test_same_seed_is_bitwise_identical(Estimator, solver):
    X, y = _data(Estimator)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        a = _fit(Estimator, X, y, solver=solver, random_state=7)
        b = _fit(Estimator, X, y, solver=solver, random_state=7)
    for name in ("hidden_weights_", "bn_weight_", "bn_bias_", "output_weights_"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    assert a.objective_ == b.objective_


def test_different_seeds_sample_different_patterns():
    X, y = _data(ConvexBNReLURegressor)
    a = _fit(ConvexBNReLURegressor, X, y, random_state=1)
    b = _fit(ConvexBNReLURegressor, X, y, random_state=2)
    assert not np.array_equal(a._solution[0], b._solution[0])
