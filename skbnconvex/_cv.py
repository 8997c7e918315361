"""Cross-validated choice of ``alpha`` along the regularisation path."""

# Authors: the skbnconvex developers
# License: BSD 3 clause

import re
from numbers import Integral, Real

import numpy as np
from joblib import Parallel, delayed
from scipy.stats import rankdata
from sklearn.base import (
    BaseEstimator,
    ClassifierMixin,
    RegressorMixin,
    _fit_context,
    clone,
)
from sklearn.metrics import check_scoring
from sklearn.model_selection import check_cv
from sklearn.utils import _safe_indexing
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.metaestimators import available_if
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data

from ._estimators import (
    _ATTRIBUTES_DOC,
    _PARAMS_DOC,
    ConvexBNReLUClassifier,
    ConvexBNReLURegressor,
    _BaseConvexBNReLU,
)
from ._path import _check_alphas, _coded_targets, _iter_path

_CV_PARAMS_DOC = r"""    alphas : array-like of shape (n_alphas,), default=None
        Values of ``alpha`` to try, fitted in decreasing order. None for
        ``n_alphas`` values on a log grid from ``alpha_max``
        (:func:`~skbnconvex.bn_relu_alpha_max`, computed on the whole
        training set), where the optimum is the zero network, down to
        ``eps * alpha_max``.
    n_alphas : int, default=10
        Length of the default grid.
    eps : float, default=1e-3
        ``alpha_min / alpha_max`` of the default grid.
    cv : int, cross-validation generator or iterable, default=None
        Splitting strategy, as in :func:`~sklearn.model_selection.check_cv`:
        None for 5-fold, an int for that many folds (stratified for the
        classifier), a splitter, or an iterable of (train, test) indices.
    scoring : str, callable or None, default=None
        Score maximised over ``alphas`` (see
        :func:`~sklearn.metrics.check_scoring`); None for the estimator's
        ``score``.
    n_jobs : int, default=None
        Folds fitted in parallel by joblib (each fold's path is sequential,
        for its warm starts). None means 1 unless in a
        :func:`joblib.parallel_backend` context, e.g. ``"dask"`` to use a
        cluster.
"""

_CV_ATTRIBUTES_DOC = r"""    alpha_ : float
        The ``alpha`` with the best mean cross-validated score (the largest
        such ``alpha`` on ties).
    alphas_ : ndarray of shape (n_alphas,)
        The values tried, decreasing.
    score_path_ : ndarray of shape (n_alphas, n_folds)
        Test score of every ``alpha`` on every fold.
    n_neurons_path_ : ndarray of shape (n_alphas, n_folds)
        Neurons of every fold's fit.
    objective_path_ : ndarray of shape (n_alphas, n_folds)
        Training objective of every fold's fit.
    cv_results_ : dict of ndarray
        The scores in the layout of
        :attr:`~sklearn.model_selection.GridSearchCV.cv_results_`:
        ``param_alpha``, ``params``, ``split{k}_test_score``,
        ``mean_test_score``, ``std_test_score``, ``rank_test_score``.
    best_index_ : int
        Index of ``alpha_`` in ``alphas_``.
    best_score_ : float
        Mean cross-validated score of ``alpha_``.
    best_estimator_ : estimator
        The estimator refitted on the whole training set with ``alpha_``;
        ``predict`` and the other methods delegate to it, and its fitted
        attributes below are copied onto this estimator.
    n_splits_ : int
        Number of folds.
"""


def _params_doc_without(names):
    """The estimators' parameter docs, less the entries ``names``."""
    entries = re.split(r"(?m)^(?=    \w+ : )", _PARAMS_DOC)
    return "".join(e for e in entries if e.split(" : ")[0].strip() not in names)


# Every parameter of the estimators but alpha (chosen here) and warm_start
# (the path always warm-starts), documented as the estimators document them.
_SHARED_PARAMS_DOC = _params_doc_without({"warm_start"})


def _fold_path(estimator, X, y, train, test, alphas, scoring):
    """Fit one fold's training set along the path; score on its test set."""
    X_train, y_train = _safe_indexing(X, train), _safe_indexing(y, train)
    X_test, y_test = _safe_indexing(X, test), _safe_indexing(y, test)
    scorer = check_scoring(estimator, scoring=scoring)
    scores, n_neurons, objectives = [], [], []
    for est in _iter_path(estimator, X_train, y_train, alphas, warm_start=True):
        scores.append(scorer(est, X_test, y_test))
        n_neurons.append(est.n_neurons_)
        objectives.append(est.objective_)
    return np.array(scores), np.array(n_neurons), np.array(objectives)


class _BaseConvexBNReLUCV(BaseEstimator):
    """Shared cross-validation along the path and delegation to the refit."""

    # The estimator fitted along the path and refitted; set by subclasses.
    _estimator_class = None

    _parameter_constraints = {
        **{
            name: constraint
            for name, constraint in _BaseConvexBNReLU._parameter_constraints.items()
            if name not in ("alpha", "warm_start")
        },
        "alphas": ["array-like", None],
        "n_alphas": [Interval(Integral, 1, None, closed="left")],
        "eps": [Interval(Real, 0, 1, closed="neither")],
        "cv": ["cv_object"],
        "scoring": [str, callable, None],
        "n_jobs": [Integral, None],
    }

    def _base_estimator(self):
        """The estimator of the path, with this estimator's shared params."""
        names = self._estimator_class._get_param_names()
        params = {name: getattr(self, name) for name in names if hasattr(self, name)}
        return self._estimator_class(**params)

    def _fit_cv(self, X, y, classifier):
        estimator = self._base_estimator()
        self.alphas_ = _check_alphas(
            X, y, estimator, self.alphas, self.n_alphas, self.eps
        )
        cv = check_cv(self.cv, y, classifier=classifier)
        folds = list(cv.split(X, y))
        self.n_splits_ = len(folds)
        results = Parallel(n_jobs=self.n_jobs, verbose=self.verbose)(
            delayed(_fold_path)(
                estimator, X, y, train, test, self.alphas_, self.scoring
            )
            for train, test in folds
        )
        self.score_path_ = np.column_stack([r[0] for r in results])
        self.n_neurons_path_ = np.column_stack([r[1] for r in results])
        self.objective_path_ = np.column_stack([r[2] for r in results])

        mean = self.score_path_.mean(axis=1)
        # argmax takes the first maximum: on ties the largest alpha, the
        # sparser network (and GridSearchCV's choice on the same grid).
        self.best_index_ = int(np.argmax(mean))
        self.best_score_ = float(mean[self.best_index_])
        self.alpha_ = float(self.alphas_[self.best_index_])
        # Equal means share the best rank, as in GridSearchCV.
        rank = rankdata(-mean, method="min").astype(np.int32)
        self.cv_results_ = {
            "param_alpha": self.alphas_.copy(),
            "params": [{"alpha": float(alpha)} for alpha in self.alphas_],
            **{
                f"split{k}_test_score": self.score_path_[:, k]
                for k in range(len(folds))
            },
            "mean_test_score": mean,
            "std_test_score": self.score_path_.std(axis=1),
            "rank_test_score": rank,
        }

        self.best_estimator_ = clone(estimator).set_params(alpha=self.alpha_).fit(X, y)
        # Expose the refitted network as LassoCV exposes coef_: every
        # public fitted attribute of the refit, except those of the input
        # that this estimator's own validation already set.
        for name, value in vars(self.best_estimator_).items():
            public = name.endswith("_") and not name.startswith("_")
            if public and name not in ("n_features_in_", "feature_names_in_"):
                setattr(self, name, value)
        return self

    def _validated(self, X):
        check_is_fitted(self)
        return validate_data(self, X, reset=False, dtype="numeric")

    def to_torch(self, eps=1e-5, dtype=None):
        """Export the refitted network as a :class:`torch.nn.Sequential`.

        See ``to_torch`` of the estimator of :attr:`best_estimator_`.

        Parameters
        ----------
        eps : float, default=1e-5
            ``eps`` of the BatchNorm1d layer, folded into its weight.
        dtype : torch.dtype, default=None
            Parameter dtype; ``torch.float64`` when None.

        Returns
        -------
        module : torch.nn.Sequential
            ``Linear -> BatchNorm1d -> ReLU -> Linear`` in eval mode.
        """
        check_is_fitted(self)
        return self.best_estimator_.to_torch(eps=eps, dtype=dtype)


def _cv_init_doc(estimator_name, score_name):
    return rf"""
    The path of :func:`~skbnconvex.bn_relu_path` is fitted on the training
    part of every fold, each ``alpha`` warm-started from the previous
    (larger) one, and scored on the held-out part; the ``alpha`` with the
    best mean score is refitted on all the data. This chooses the same
    ``alpha`` as :class:`~sklearn.model_selection.GridSearchCV` over
    ``alpha`` with the same folds, without fitting every point from
    scratch. The fits minimise, for each ``alpha``,

    .. math::

        \frac{{1}}{{n}} \sum_{{i=1}}^n \ell(f(x_i), y_i)
        + \frac{{\alpha}}{{2n}} \sum_j \big(g_j^2 + b_j^2 + \|v_j\|_2^2\big)

    as :class:`~skbnconvex.{estimator_name}` does (see there for the
    network, the loss and the convex program). The default score is
    {score_name}.

    Parameters
    ----------
"""


class ConvexBNReLURegressorCV(RegressorMixin, _BaseConvexBNReLUCV):
    __doc__ = (
        """Convex BN-ReLU regressor with ``alpha`` chosen by cross-validation.
"""
        + _cv_init_doc("ConvexBNReLURegressor", "the coefficient of determination R^2")
        + _CV_PARAMS_DOC
        + r"""    loss : {"squared_error"}, default="squared_error"
        The loss.
"""
        + _SHARED_PARAMS_DOC
        + r"""
    Attributes
    ----------
"""
        + _CV_ATTRIBUTES_DOC
        + _ATTRIBUTES_DOC
        + r"""    n_outputs_ : int
        Number of outputs.

    See Also
    --------
    ConvexBNReLURegressor : The estimator at a fixed ``alpha``.
    bn_relu_path : The regularisation path.
    sklearn.linear_model.LassoCV : The same idea for the lasso.

    Examples
    --------
    >>> from sklearn.datasets import make_regression
    >>> from skbnconvex import ConvexBNReLURegressorCV
    >>> X, y = make_regression(n_samples=40, n_features=2, noise=1.0,
    ...                        random_state=0)
    >>> reg = ConvexBNReLURegressorCV(n_alphas=4, cv=3, n_patterns=20,
    ...                               random_state=0).fit(X, y)
    >>> reg.alphas_.shape, reg.score_path_.shape
    ((4,), (4, 3))
    >>> bool(reg.alpha_ in reg.alphas_)
    True
    """
    )

    _estimator_class = ConvexBNReLURegressor

    _parameter_constraints = {
        **_BaseConvexBNReLUCV._parameter_constraints,
        "loss": [StrOptions({"squared_error"})],
    }

    def __init__(
        self,
        *,
        alphas=None,
        n_alphas=10,
        eps=1e-3,
        cv=None,
        scoring=None,
        n_jobs=None,
        loss="squared_error",
        n_patterns=100,
        patterns="sample",
        init="random",
        spectral_power=0.0,
        max_patterns=None,
        max_rounds=30,
        solver="auto",
        solver_options=None,
        device="cpu",
        max_iter=10000,
        tol=1e-6,
        certificate_options=None,
        random_state=None,
        verbose=0,
    ):
        self.alphas = alphas
        self.n_alphas = n_alphas
        self.eps = eps
        self.cv = cv
        self.scoring = scoring
        self.n_jobs = n_jobs
        self.loss = loss
        self.n_patterns = n_patterns
        self.patterns = patterns
        self.init = init
        self.spectral_power = spectral_power
        self.max_patterns = max_patterns
        self.max_rounds = max_rounds
        self.solver = solver
        self.solver_options = solver_options
        self.device = device
        self.max_iter = max_iter
        self.tol = tol
        self.certificate_options = certificate_options
        self.random_state = random_state
        self.verbose = verbose

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y):
        """Choose ``alpha`` by cross-validation, then refit on all data.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training data (dense).
        y : array-like of shape (n_samples,) or (n_samples, n_outputs)
            Targets.

        Returns
        -------
        self : object
            Fitted estimator.
        """
        X, y = validate_data(
            self, X, y, multi_output=True, y_numeric=True, dtype=np.float64,
            ensure_min_samples=2,
        )
        return self._fit_cv(X, y, classifier=False)

    def predict(self, X):
        """Predict with the refitted network.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Input data.

        Returns
        -------
        y : ndarray of shape (n_samples,) or (n_samples, n_outputs)
            Predictions.
        """
        X = self._validated(X)
        return self.best_estimator_.predict(X)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        tags.input_tags.sparse = False
        return tags


def _has_proba(estimator):
    if estimator.loss != "log_loss":
        raise AttributeError("predict_proba is available only with loss='log_loss'.")
    return True


class ConvexBNReLUClassifierCV(ClassifierMixin, _BaseConvexBNReLUCV):
    __doc__ = (
        """Convex BN-ReLU classifier with ``alpha`` chosen by cross-validation.
"""
        + _cv_init_doc("ConvexBNReLUClassifier", "the accuracy")
        + _CV_PARAMS_DOC
        + r"""    loss : {"log_loss", "squared_error"}, default="log_loss"
        The loss.
"""
        + _SHARED_PARAMS_DOC
        + r"""
    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        Class labels.
"""
        + _CV_ATTRIBUTES_DOC
        + _ATTRIBUTES_DOC
        + r"""
    See Also
    --------
    ConvexBNReLUClassifier : The estimator at a fixed ``alpha``.
    bn_relu_path : The regularisation path.
    sklearn.linear_model.LogisticRegressionCV : The same idea for logistic
        regression.

    Examples
    --------
    >>> from sklearn.datasets import load_iris
    >>> from skbnconvex import ConvexBNReLUClassifierCV
    >>> X, y = load_iris(return_X_y=True)
    >>> clf = ConvexBNReLUClassifierCV(n_alphas=3, cv=3, n_patterns=10,
    ...                                random_state=0).fit(X[:, :2], y)
    >>> clf.predict_proba(X[:1, :2]).shape
    (1, 3)
    """
    )

    _estimator_class = ConvexBNReLUClassifier

    _parameter_constraints = {
        **_BaseConvexBNReLUCV._parameter_constraints,
        "loss": [StrOptions({"log_loss", "squared_error"})],
    }

    def __init__(
        self,
        *,
        alphas=None,
        n_alphas=10,
        eps=1e-3,
        cv=None,
        scoring=None,
        n_jobs=None,
        loss="log_loss",
        n_patterns=100,
        patterns="sample",
        init="random",
        spectral_power=0.0,
        max_patterns=None,
        max_rounds=30,
        solver="auto",
        solver_options=None,
        device="cpu",
        max_iter=10000,
        tol=1e-6,
        certificate_options=None,
        random_state=None,
        verbose=0,
    ):
        self.alphas = alphas
        self.n_alphas = n_alphas
        self.eps = eps
        self.cv = cv
        self.scoring = scoring
        self.n_jobs = n_jobs
        self.loss = loss
        self.n_patterns = n_patterns
        self.patterns = patterns
        self.init = init
        self.spectral_power = spectral_power
        self.max_patterns = max_patterns
        self.max_rounds = max_rounds
        self.solver = solver
        self.solver_options = solver_options
        self.device = device
        self.max_iter = max_iter
        self.tol = tol
        self.certificate_options = certificate_options
        self.random_state = random_state
        self.verbose = verbose

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y):
        """Choose ``alpha`` by cross-validation, then refit on all data.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training data (dense).
        y : array-like of shape (n_samples,)
            Class labels (at least two classes).

        Returns
        -------
        self : object
            Fitted estimator.
        """
        X, y = validate_data(self, X, y, dtype=np.float64, ensure_min_samples=2)
        check_classification_targets(y)
        # Refuse one class here, with the estimator's message, before the
        # folds split it.
        _coded_targets(self, y)
        return self._fit_cv(X, y, classifier=True)

    def decision_function(self, X):
        """Output of the refitted network: one score or one per class.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Input data.

        Returns
        -------
        scores : ndarray of shape (n_samples,) or (n_samples, n_classes)
            Positive scores favour ``classes_[1]`` in the binary case.
        """
        X = self._validated(X)
        return self.best_estimator_.decision_function(X)

    def predict(self, X):
        """Predict class labels with the refitted network.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Input data.

        Returns
        -------
        y : ndarray of shape (n_samples,)
            Predicted labels.
        """
        X = self._validated(X)
        return self.best_estimator_.predict(X)

    @available_if(_has_proba)
    def predict_proba(self, X):
        """Class probabilities (``loss="log_loss"`` only).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Input data.

        Returns
        -------
        proba : ndarray of shape (n_samples, n_classes)
            Probabilities of ``classes_``.
        """
        X = self._validated(X)
        return self.best_estimator_.predict_proba(X)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = False
        tags.classifier_tags.multi_label = False
        return tags
