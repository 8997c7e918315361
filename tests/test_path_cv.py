"""Regularisation path, alpha_max and the cross-validated estimators."""

import inspect
import warnings

import joblib
import numpy as np
import pytest
from numpydoc.docscrape import ClassDoc
from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import GridSearchCV, KFold, StratifiedKFold
from sklearn.utils.estimator_checks import parametrize_with_checks

from skbnconvex import (
    ConvexBNReLUClassifier,
    ConvexBNReLUClassifierCV,
    ConvexBNReLURegressor,
    ConvexBNReLURegressorCV,
    bn_relu_alpha_max,
    bn_relu_path,
)

from .conftest import make_regression_data

# Rank 2, 20 samples: every activation pattern is enumerable, so the fits
# are global optima and alpha_max is exact.
X, Y = make_regression_data(n=20, d=2, n_outputs=2, seed=0)
y = Y[:, 0]
y_binary = (X[:, 0] + 0.3 * X[:, 1] > 0).astype(int)
y_multi = np.digitize(X[:, 0], [-0.5, 0.5])


def _quiet(func, *args, **kwargs):
    # Interior-point solves near alpha_max may stop a hair above tol.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return func(*args, **kwargs)


# The first-order solver returns exact zeros; Clarabel's interior point
# leaves tiny blocks near alpha_max on the exponential cones of the log loss.
ALPHA_MAX_CASES = [
    (ConvexBNReLURegressor(patterns="enumerate", solver="torch"), y),
    (ConvexBNReLURegressor(patterns="enumerate", solver="torch"), Y),
    (ConvexBNReLUClassifier(patterns="enumerate", solver="torch"), y_binary),
    (ConvexBNReLUClassifier(patterns="enumerate", solver="torch"), y_multi),
    (
        ConvexBNReLUClassifier(
            patterns="enumerate", solver="torch", loss="squared_error"
        ),
        y_multi,
    ),
]


@pytest.mark.parametrize("estimator, target", ALPHA_MAX_CASES)
def test_alpha_max_is_where_the_zero_network_stops_being_optimal(estimator, target):
    alpha_max = bn_relu_alpha_max(X, target, estimator=estimator)
    at = _quiet(clone(estimator).set_params(alpha=alpha_max).fit, X, target)
    below = _quiet(clone(estimator).set_params(alpha=0.99 * alpha_max).fit, X, target)
    assert at.n_neurons_ == 0
    assert below.n_neurons_ > 0
    assert below.objective_ < at.objective_


def test_alpha_max_with_interior_point_solver():
    # Clarabel stops at a tolerance, so test a hair above alpha_max.
    reg = ConvexBNReLURegressor(patterns="enumerate", solver="cvxpy")
    alpha_max = bn_relu_alpha_max(X, y)
    assert reg.set_params(alpha=1.001 * alpha_max).fit(X, y).n_neurons_ == 0
    assert reg.set_params(alpha=0.99 * alpha_max).fit(X, y).n_neurons_ > 0


def test_path_default_grid_and_warm_starts_match_cold_fits():
    reg = ConvexBNReLURegressor(patterns="enumerate")
    alphas, objectives, n_neurons, gaps, fitted = _quiet(
        bn_relu_path, X, y, estimator=reg, n_alphas=5, eps=1e-2,
        return_estimators=True,
    )
    alpha_max = bn_relu_alpha_max(X, y)
    np.testing.assert_allclose(alphas, np.geomspace(alpha_max, 1e-2 * alpha_max, 5))
    # The zero network at alpha_max, a strictly richer one below.
    np.testing.assert_allclose(objectives[0], 0.5 * np.mean(y**2), rtol=1e-8)
    assert np.all(np.diff(objectives) < 0)
    assert n_neurons[-1] > 0 and np.all(gaps < 1e-4)
    assert [est.alpha for est in fitted] == list(alphas)
    assert not any(est.warm_start for est in fitted)
    assert reg.warm_start is False and reg.alpha == 1e-4  # template untouched
    # Every point is the global optimum, however it was started.
    _, cold, _, _ = _quiet(
        bn_relu_path, X, y, estimator=reg, alphas=alphas, warm_start=False, n_jobs=2
    )
    np.testing.assert_allclose(objectives, cold, rtol=1e-6)


def test_path_sorts_alphas_and_rejects_bad_ones():
    reg = ConvexBNReLURegressor(n_patterns=10, random_state=0)
    alphas, *_ = _quiet(bn_relu_path, X, y, estimator=reg, alphas=[0.1, 10.0, 1.0])
    assert list(alphas) == [10.0, 1.0, 0.1]
    with pytest.raises(ValueError, match="positive"):
        bn_relu_path(X, y, estimator=reg, alphas=[1.0, -1.0])


def _cv_regressor(**params):
    return ConvexBNReLURegressorCV(
        n_alphas=4, eps=1e-2, cv=KFold(3, shuffle=True, random_state=0),
        patterns="enumerate", **params,
    )


def test_cv_picks_the_alpha_of_grid_search():
    cv_reg = _quiet(_cv_regressor().fit, X, y)
    search = GridSearchCV(
        ConvexBNReLURegressor(patterns="enumerate"),
        {"alpha": list(cv_reg.alphas_)},
        cv=KFold(3, shuffle=True, random_state=0),
    )
    _quiet(search.fit, X, y)
    assert cv_reg.alpha_ == search.best_params_["alpha"]
    assert cv_reg.best_index_ == search.best_index_
    np.testing.assert_allclose(
        cv_reg.cv_results_["mean_test_score"],
        search.cv_results_["mean_test_score"],
        rtol=1e-5, atol=1e-7,
    )
    np.testing.assert_array_equal(
        cv_reg.cv_results_["rank_test_score"], search.cv_results_["rank_test_score"]
    )
    # The refit is the estimator at alpha_, exposed with its attributes.
    best = search.best_estimator_
    np.testing.assert_allclose(cv_reg.objective_, best.objective_, rtol=1e-6)
    assert cv_reg.n_neurons_ == cv_reg.best_estimator_.n_neurons_
    np.testing.assert_allclose(cv_reg.predict(X), best.predict(X), rtol=1e-5, atol=1e-7)
    assert cv_reg.score_path_.shape == (4, 3)
    assert cv_reg.n_neurons_path_.shape == cv_reg.objective_path_.shape == (4, 3)


def test_classifier_cv_scoring_and_delegation():
    clf = ConvexBNReLUClassifierCV(
        n_alphas=3, eps=1e-2, cv=StratifiedKFold(3), patterns="enumerate",
        scoring="neg_log_loss",
    )
    _quiet(clf.fit, X, y_multi)
    assert clf.alpha_ in clf.alphas_
    np.testing.assert_array_equal(clf.classes_, [0, 1, 2])
    assert np.all(clf.score_path_ <= 0)  # negated log-loss
    proba = clf.predict_proba(X)
    np.testing.assert_allclose(proba, clf.best_estimator_.predict_proba(X))
    assert clf.to_torch()[1].num_features == max(clf.n_neurons_, 1)
    squared = clone(clf).set_params(loss="squared_error")
    assert not hasattr(squared, "predict_proba")


@pytest.mark.parametrize(
    "CV, Base",
    [
        (ConvexBNReLURegressorCV, ConvexBNReLURegressor),
        (ConvexBNReLUClassifierCV, ConvexBNReLUClassifier),
    ],
)
def test_cv_parameters_follow_the_estimators(CV, Base):
    # Every parameter of the estimator but alpha and warm_start, with the
    # same defaults, so that the path fits what the user configured.
    shared = {
        name: p.default
        for name, p in inspect.signature(Base).parameters.items()
        if name not in ("alpha", "warm_start")
    }
    cv_params = inspect.signature(CV).parameters
    assert {name: cv_params[name].default for name in shared} == shared
    own = [name for name in cv_params if name not in shared]
    assert own == ["alphas", "n_alphas", "eps", "cv", "scoring", "n_jobs"]
    doc = ClassDoc(CV)
    assert [p.name for p in doc["Parameters"]] == list(cv_params)

    target = y if CV is ConvexBNReLURegressorCV else y_binary
    est = _quiet(CV(n_alphas=2, cv=2, n_patterns=5, random_state=0).fit, X, target)
    fitted = {a for a in vars(est) if a.endswith("_") and not a.startswith("_")}
    attributes = {a.name for a in doc["Attributes"]}
    assert fitted <= attributes, f"undocumented: {fitted - attributes}"
    assert attributes - fitted <= {"feature_names_in_"}


# Small grids and pattern counts keep the many fits of the checks fast; the
# checks exercise the API, not the optimum.
CV_ESTIMATORS = [
    ConvexBNReLURegressorCV(n_alphas=2, cv=2, n_patterns=5, random_state=0),
    ConvexBNReLUClassifierCV(n_alphas=2, cv=2, n_patterns=10, random_state=0),
]


@parametrize_with_checks(CV_ESTIMATORS)
def test_sklearn_compatible_cv_estimator(estimator, check):
    check(estimator)


def test_cv_under_dask_matches_serial():
    pytest.importorskip("dask")
    distributed = pytest.importorskip("distributed")

    def make():
        return ConvexBNReLURegressorCV(
            n_alphas=3, eps=1e-2, cv=KFold(3), n_patterns=10, random_state=0,
            solver="cvxpy", n_jobs=2,
        )

    serial = _quiet(make().set_params(n_jobs=None).fit, X, y)
    # In-process workers start in about a second and see the same torch
    # thread setting; a real cluster is reached the same way, by address.
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None
    ) as cluster, distributed.Client(cluster):
        with joblib.parallel_backend("dask"):
            parallel = _quiet(make().fit, X, y)
    assert parallel.alpha_ == serial.alpha_
    np.testing.assert_array_equal(parallel.score_path_, serial.score_path_)
    np.testing.assert_array_equal(parallel.n_neurons_path_, serial.n_neurons_path_)
    np.testing.assert_array_equal(parallel.predict(X), serial.predict(X))
