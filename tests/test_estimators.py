"""Estimator behaviour: API details, pipelines, and bad input."""

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.datasets import load_iris
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import GridSearchCV, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from skbnconvex import ConvexBNReLUClassifier, ConvexBNReLURegressor, SolverError

from .conftest import make_regression_data

ESTIMATORS = [ConvexBNReLURegressor, ConvexBNReLUClassifier]


def _xy(Estimator, n=20):
    X, Y = make_regression_data(n=n, d=3, seed=0)
    y = Y[:, 0]
    if Estimator is ConvexBNReLUClassifier:
        y = (y > np.median(y)).astype(int)
    return X, y


def test_grid_search_pipeline_over_alpha_and_patterns():
    X, y = load_iris(return_X_y=True)
    pipe = make_pipeline(StandardScaler(), ConvexBNReLUClassifier(random_state=0))
    grid = {
        "convexbnreluclassifier__alpha": [0.3, 3.0],
        "convexbnreluclassifier__n_patterns": [5, 15],
    }
    search = GridSearchCV(pipe, grid, cv=3).fit(X, y)
    assert search.best_score_ > 0.9
    assert set(search.cv_results_["param_convexbnreluclassifier__n_patterns"]) == {5, 15}


def test_cross_val_score_regressor():
    X, y = _xy(ConvexBNReLURegressor, n=40)
    scores = cross_val_score(ConvexBNReLURegressor(alpha=0.1, n_patterns=20,
                                                   random_state=0), X, y, cv=3)
    assert np.all(np.isfinite(scores))


def test_classifier_labels_and_probabilities():
    X, y = load_iris(return_X_y=True)
    names = np.array(["setosa", "versicolor", "virginica"])[y]
    clf = ConvexBNReLUClassifier(alpha=1.0, n_patterns=15, random_state=0).fit(X, names)
    np.testing.assert_array_equal(clf.classes_, np.unique(names))
    proba = clf.predict_proba(X)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    # predict is the argmax of the probabilities and of the scores
    np.testing.assert_array_equal(clf.predict(X), clf.classes_[proba.argmax(1)])
    assert clf.score(X, names) > 0.9
    assert clf.output_weights_.shape[1] == 3


def test_binary_classifier_scores_favour_the_second_class():
    X, y = _xy(ConvexBNReLUClassifier, n=30)
    labels = np.where(y == 1, "b", "a")
    clf = ConvexBNReLUClassifier(alpha=0.3, n_patterns=15, random_state=0).fit(X, labels)
    scores = clf.decision_function(X)
    assert scores.shape == (30,)
    np.testing.assert_array_equal(clf.predict(X), np.where(scores > 0, "b", "a"))
    np.testing.assert_allclose(clf.predict_proba(X)[:, 1], 1 / (1 + np.exp(-scores)))


def test_squared_loss_classifier_has_no_predict_proba():
    X, y = _xy(ConvexBNReLUClassifier)
    clf = ConvexBNReLUClassifier(loss="squared_error", alpha=0.3, n_patterns=10,
                                 random_state=0).fit(X, y)
    assert not hasattr(clf, "predict_proba")
    assert set(clf.predict(X)) <= {0, 1}


def test_multioutput_regression_shapes():
    X, Y = make_regression_data(n=20, d=2, n_outputs=2, seed=0)
    reg = ConvexBNReLURegressor(alpha=0.3, n_patterns=10, random_state=0).fit(X, Y)
    assert reg.predict(X).shape == (20, 2) and reg.n_outputs_ == 2
    reg1 = ConvexBNReLURegressor(alpha=0.3, n_patterns=10, random_state=0).fit(X, Y[:, 0])
    assert reg1.predict(X).shape == (20,)


def test_closed_form_when_data_are_rich():
    # n <= d: rank(Xc) = n - 1, and the optimum is the closed form of
    # MATH.md section 5, computed here from its formula.
    rng = np.random.default_rng(0)
    n, d, alpha = 6, 10, 0.5
    X, y = rng.standard_normal((n, d)), rng.standard_normal(n) * 2
    reg = ConvexBNReLURegressor(alpha=alpha, patterns="enumerate").fit(X, y)
    beta = alpha / np.sqrt(n)
    yp, ym = np.maximum(y, 0), np.maximum(-y, 0)
    yhat = (max(0, 1 - beta / np.linalg.norm(yp)) * yp
            - max(0, 1 - beta / np.linalg.norm(ym)) * ym)
    value = 0.0
    for part in (yp, ym):
        norm = np.linalg.norm(part)
        value += beta * norm - beta**2 / 2 if norm > beta else norm**2 / 2
    np.testing.assert_allclose(reg.predict(X), yhat, atol=1e-6)
    assert reg.objective_ == pytest.approx(value / n, rel=1e-7)


def test_huge_alpha_gives_the_zero_network():
    X, y = _xy(ConvexBNReLURegressor)
    reg = ConvexBNReLURegressor(alpha=1e6, n_patterns=10, random_state=0).fit(X, y)
    assert reg.n_neurons_ == 0
    np.testing.assert_array_equal(reg.predict(X), 0.0)
    import torch

    with torch.no_grad():
        out = reg.to_torch()(torch.as_tensor(X)).numpy()
    np.testing.assert_array_equal(out, 0.0)


def test_same_seed_same_fit_different_seed_different_patterns():
    X, y = _xy(ConvexBNReLURegressor, n=30)
    a = ConvexBNReLURegressor(alpha=0.1, n_patterns=10, random_state=3).fit(X, y)
    b = ConvexBNReLURegressor(alpha=0.1, n_patterns=10, random_state=3).fit(X, y)
    c = ConvexBNReLURegressor(alpha=0.1, n_patterns=10, random_state=4).fit(X, y)
    np.testing.assert_array_equal(a.predict(X), b.predict(X))
    assert a.objective_ != c.objective_


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize("Estimator", ESTIMATORS)
@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_input_is_refused(Estimator, bad):
    X, y = _xy(Estimator)
    X = X.copy()
    X[3, 1] = bad
    with pytest.raises(ValueError, match="Input X contains (NaN|infinity)"):
        Estimator().fit(X, y)


def test_non_finite_target_is_refused():
    X, y = _xy(ConvexBNReLURegressor)
    y = y.copy()
    y[0] = np.nan
    with pytest.raises(ValueError, match="Input y contains NaN"):
        ConvexBNReLURegressor().fit(X, y)


@pytest.mark.parametrize("Estimator", ESTIMATORS)
def test_too_few_samples(Estimator):
    X, y = _xy(Estimator)
    with pytest.raises(ValueError, match="minimum of 2 is required"):
        Estimator().fit(X[:1], y[:1])


def test_single_class_is_refused():
    X, _ = _xy(ConvexBNReLUClassifier)
    with pytest.raises(ValueError, match="only one class is present"):
        ConvexBNReLUClassifier().fit(X, np.ones(len(X)))


def test_multilabel_targets_are_refused():
    X, _ = _xy(ConvexBNReLUClassifier)
    Y = np.random.default_rng(0).integers(0, 2, (len(X), 3))
    with pytest.raises(ValueError, match="y should be a 1d array"):
        ConvexBNReLUClassifier().fit(X, Y)


@pytest.mark.parametrize("Estimator", ESTIMATORS)
def test_sparse_input_is_refused_with_a_fix(Estimator):
    X, y = _xy(Estimator)
    with pytest.raises(TypeError, match=r"dense data is required.*toarray"):
        Estimator().fit(sp.csr_matrix(X), y)


@pytest.mark.parametrize("Estimator", ESTIMATORS)
def test_wrong_number_of_features_at_predict(Estimator):
    X, y = _xy(Estimator)
    est = Estimator(alpha=1.0, n_patterns=5, random_state=0).fit(X, y)
    with pytest.raises(ValueError, match="has 2 features, but .* is expecting 3"):
        est.predict(X[:, :2])


@pytest.mark.parametrize(
    "params, match",
    [
        ({"n_patterns": 0}, "'n_patterns' parameter .* must be an int in the range"),
        ({"alpha": -1.0}, "'alpha' parameter .* must be a float in the range"),
        ({"alpha": 0.0}, "'alpha' parameter .* must be a float in the range"),
        ({"patterns": "all"}, "'patterns' parameter .* must be a str among"),
        ({"solver": "adam"}, "'solver' parameter .* must be a str among"),
        ({"certificate_options": {"n_sample": 10}},
         r"certificate_options accepts the keys \['n_samples', .*got \['n_sample'\]"),
        ({"certificate_options": {"n_ascent": -1}},
         r"certificate_options\['n_ascent'\] == -1, must be >= 0"),
        ({"certificate_options": 5}, "'certificate_options' parameter .* must be"),
    ],
)
@pytest.mark.parametrize("Estimator", ESTIMATORS)
def test_bad_parameters(Estimator, params, match):
    X, y = _xy(Estimator)
    with pytest.raises(ValueError, match=match):
        Estimator(**params).fit(X, y)


@pytest.mark.parametrize("Estimator", ESTIMATORS)
def test_non_integer_certificate_option_is_a_type_error(Estimator):
    X, y = _xy(Estimator)
    with pytest.raises(TypeError, match=r"certificate_options\['n_samples'\] must be"):
        Estimator(certificate_options={"n_samples": 1.5}).fit(X, y)


def test_unpredictable_before_fit():
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError, match="not fitted yet"):
        ConvexBNReLURegressor().predict(np.zeros((2, 3)))


def test_solver_failure_names_the_solver_and_what_to_try():
    X, y = _xy(ConvexBNReLURegressor)
    # OSQP handles quadratic programs only: the second-order cones of the
    # group penalty make cvxpy refuse it.
    with pytest.raises(SolverError, match=r"OSQP failed .* Try another solver"):
        ConvexBNReLURegressor(solver_options={"solver": "OSQP"}).fit(X, y)


def test_iteration_cap_raises_convergence_warning():
    X, y = _xy(ConvexBNReLURegressor)
    with pytest.warns(ConvergenceWarning, match="did not reach tol"):
        try:
            ConvexBNReLURegressor(max_iter=2, n_patterns=10).fit(X, y)
        except SolverError:
            pytest.fail("an iteration cap must warn, not fail")


@pytest.mark.parametrize("n, d, n_patterns", [(50, 3, 20), (150, 4, 60)])
@pytest.mark.parametrize("Estimator", [ConvexBNReLURegressor, ConvexBNReLUClassifier])
def test_torch_and_cvxpy_solvers_give_the_same_fit(Estimator, n, d, n_patterns):
    # The same program solved by Clarabel (interior point) and by the torch
    # solver, through the whole fit: pruning, projection, recovery.
    rng = np.random.default_rng(0)
    X = rng.standard_normal((n, d))
    y = np.sin(X[:, 0]) + X[:, 1]
    if Estimator is ConvexBNReLUClassifier:
        y = (y > 0).astype(int)
    fits = {
        solver: Estimator(alpha=0.3, n_patterns=n_patterns, solver=solver,
                          random_state=0).fit(X, y)
        for solver in ("cvxpy", "torch")
    }
    ref, fit = fits["cvxpy"].objective_, fits["torch"].objective_
    if Estimator is ConvexBNReLURegressor:
        assert fit == pytest.approx(ref, rel=1e-6)
    else:
        # Clarabel stops short on the exponential cones; torch's point is
        # certified, so it may only be lower.
        assert fit <= ref * (1 + 1e-6)
        assert fit >= ref * (1 - 1e-2)
    for est in fits.values():
        assert est.objective_ == pytest.approx(est._convex_objective, rel=1e-9)


def test_warm_start_after_the_zero_network():
    # A path starting at alpha_max: the screened zero network keeps no
    # patterns, and the next warm-started fit must start afresh.
    X, y = _xy(ConvexBNReLURegressor, n=30)
    reg = ConvexBNReLURegressor(alpha=1e6, warm_start=True, n_patterns=5,
                                random_state=0).fit(X, y)
    assert reg.n_neurons_ == 0
    reg.set_params(alpha=0.1).fit(X, y)
    cold = ConvexBNReLURegressor(alpha=0.1, n_patterns=5, random_state=0).fit(X, y)
    assert reg.n_neurons_ > 0
    assert reg.objective_ == pytest.approx(cold.objective_, rel=1e-6)


@pytest.mark.parametrize("Estimator", ESTIMATORS)
def test_float32_input_gives_a_float32_network(Estimator):
    X, y = _xy(Estimator, n=30)
    X32 = X.astype(np.float32)
    est32 = Estimator(alpha=0.5, n_patterns=15, random_state=0).fit(X32, y)
    est64 = Estimator(alpha=0.5, n_patterns=15, random_state=0).fit(
        X32.astype(np.float64), y)
    for name in ("hidden_weights_", "bn_weight_", "bn_bias_", "output_weights_"):
        assert getattr(est32, name).dtype == np.float32
        np.testing.assert_allclose(getattr(est32, name), getattr(est64, name),
                                   rtol=1e-5, atol=1e-6)
    out = est32.predict(X32) if Estimator is ConvexBNReLURegressor else (
        est32.decision_function(X32))
    assert out.dtype == np.float32
    # The solve is the float64 one: same optimum, objective and certificate.
    assert est32.objective_ == pytest.approx(est64.objective_, rel=1e-12)
    assert est32.lower_bound_ == est64.lower_bound_


@pytest.mark.parametrize("Estimator", ESTIMATORS)
def test_pickle_round_trip_and_refit_after_set_params(Estimator):
    import pickle

    X, y = _xy(Estimator, n=30)
    est = Estimator(alpha=0.5, n_patterns=15, random_state=0).fit(X, y)
    restored = pickle.loads(pickle.dumps(est))
    np.testing.assert_array_equal(restored.predict(X), est.predict(X))
    assert restored.score(X, y) == est.score(X, y)
    restored.set_params(alpha=5.0).fit(X, y)
    fresh = Estimator(alpha=5.0, n_patterns=15, random_state=0).fit(X, y)
    np.testing.assert_array_equal(restored.predict(X), fresh.predict(X))
    assert restored.objective_ == fresh.objective_
