r"""Regularisation path of the convex BN-ReLU estimators.

Like :func:`sklearn.linear_model.lasso_path`, :func:`bn_relu_path` fits one
estimator along a decreasing sequence of ``alpha``, each fit warm-started
from the previous one. The default sequence starts at ``alpha_max``, the
smallest ``alpha`` whose optimum is the zero network.

*Where alpha_max comes from.* The zero network is optimal for program (C)
iff the dual point at zero output, ``lam = -grad L(0)``, is dual feasible
(MATH.md section 4, :mod:`skbnconvex._certificate`):

.. math::

    M_c = \max_{\|z\|_2 \le 1} \big|\lambda_c^T \operatorname{relu}(U' z)\big|
    \le \beta = \alpha / \sqrt{n} \quad \text{for every output } c,

hence :math:`\alpha_{\max} = \sqrt{n} \max_c M_c`. ``lam`` is ``Y / C`` for
the squared loss, ``y / 2`` for the binary logistic loss on ``+-1`` labels
and ``Y - 1/C`` for the multinomial loss. ``M_c`` is computed by the
certificate's oracle: exactly (every activation pattern, by branch and
bound) at small rank, by search otherwise, in which case it is a lower
bound of the true maximum and ``alpha_max`` an estimate from below.
"""

# Authors: the skbnconvex developers
# License: BSD 3 clause

import copy
from numbers import Integral, Real

import numpy as np
from joblib import Parallel, delayed
from sklearn.base import clone, is_classifier
from sklearn.utils._param_validation import Interval, validate_params
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_array

from ._certificate import optimality_certificate
from ._estimators import _EXACT_CERTIFICATE_MAX, ConvexBNReLURegressor
from ._losses import get_loss
from ._patterns import max_patterns
from ._whitening import whiten


def _coded_targets(estimator, y):
    """Targets as the estimator codes them for its loss, shape (n, n_outputs).

    Mirrors the estimators' ``fit``: real columns for a regressor, a ``+-1``
    column (binary) or one-hot rows (multiclass) for a classifier.
    """
    if not is_classifier(estimator):
        y = np.asarray(y, dtype=np.float64)
        return y.reshape(-1, 1) if y.ndim == 1 else y
    check_classification_targets(y)
    classes, idx = np.unique(y, return_inverse=True)
    if classes.shape[0] < 2:
        raise ValueError(
            "Classifier can't train when only one class is present: y contains "
            f"only {classes[0]!r}. Provide samples of at least two classes."
        )
    if classes.shape[0] == 2:
        return (2.0 * idx - 1.0).reshape(-1, 1)
    return np.eye(classes.shape[0])[idx]


def _check_estimator(estimator):
    return ConvexBNReLURegressor() if estimator is None else estimator


@validate_params(
    {"X": ["array-like"], "y": ["array-like"], "estimator": [None, object]},
    prefer_skip_nested_validation=True,
)
def bn_relu_alpha_max(X, y, *, estimator=None):
    r"""Smallest ``alpha`` whose optimum is the zero network.

    With ``lam = -grad L(0)`` the loss gradient at zero output (on the sum
    scale of program (C)), the zero network is the global optimum iff
    :math:`M_c = \max_{\|z\| \le 1} |\lambda_c^T \operatorname{relu}(U' z)|
    \le \alpha / \sqrt{n}` for every output ``c`` (``U'`` the whitened
    data), so

    .. math:: \alpha_{\max} = \sqrt{n} \, \max_c M_c .

    At any ``alpha >= alpha_max`` the fit has no neurons; below it, a fit
    over all activation patterns has some.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
        Training data.
    y : array-like of shape (n_samples,) or (n_samples, n_outputs)
        Targets (class labels for a classifier).
    estimator : ConvexBNReLURegressor or ConvexBNReLUClassifier, default=None
        Gives the loss (and, for the search, ``random_state``); a default
        :class:`~skbnconvex.ConvexBNReLURegressor` when None.

    Returns
    -------
    alpha_max : float
        Exact when the activation patterns are few enough to enumerate (at
        most 20 000, as for the estimators' certificate: small rank of the
        centred data); otherwise the largest value found by the
        certificate's search, a lower bound of the exact value. 0 when the
        zero network is optimal for every ``alpha`` (e.g. ``y == 0`` for the
        squared loss).

    Examples
    --------
    >>> import numpy as np
    >>> from skbnconvex import ConvexBNReLURegressor, bn_relu_alpha_max
    >>> rng = np.random.default_rng(0)
    >>> X = rng.standard_normal((30, 2))
    >>> y = np.abs(X[:, 0])
    >>> alpha_max = bn_relu_alpha_max(X, y)
    >>> reg = ConvexBNReLURegressor(patterns="enumerate")
    >>> reg.set_params(alpha=1.001 * alpha_max).fit(X, y).n_neurons_
    0
    >>> reg.set_params(alpha=0.99 * alpha_max).fit(X, y).n_neurons_ > 0
    True
    """
    estimator = _check_estimator(estimator)
    X = check_array(X, dtype=np.float64, ensure_min_samples=2)
    y = check_array(y, ensure_2d=False, dtype=None)
    Y = _coded_targets(estimator, y)
    n = X.shape[0]
    loss = get_loss(estimator.loss, Y.shape[1])
    whitening = whiten(X, spectral_power=getattr(estimator, "spectral_power", 0.0))
    F = np.zeros_like(Y)
    # Enumerate exactly when the estimators' own certificate would.
    exact = max_patterns(n, whitening.rank) <= _EXACT_CERTIFICATE_MAX
    # beta = inf asks the oracle for the maximum itself (pure branch and
    # bound), not for the patterns that exceed a threshold.
    certificate = optimality_certificate(
        whitening.Ut, F, Y, loss, np.inf,
        primal=loss.value(F, Y),
        mode="exact" if exact else "search",
        n_violators=0,
        random_state=getattr(estimator, "random_state", None),
    )
    return float(np.sqrt(n) * np.max(certificate.M))


def _alpha_grid(X, y, estimator, n_alphas, eps):
    """``n_alphas`` values from ``alpha_max`` down to ``eps * alpha_max``."""
    alpha_max = bn_relu_alpha_max(X, y, estimator=estimator)
    if not alpha_max > 0:
        # The zero network is optimal for every alpha: any grid gives the
        # same fits; keep the scale of the default alpha.
        alpha_max = 1.0
    return np.geomspace(alpha_max, eps * alpha_max, num=n_alphas)


def _check_alphas(X, y, estimator, alphas, n_alphas, eps):
    if alphas is None:
        return _alpha_grid(X, y, estimator, n_alphas, eps)
    alphas = np.asarray(alphas, dtype=np.float64).ravel()
    if alphas.size == 0 or not np.all(alphas > 0):
        raise ValueError(
            f"alphas must be a non-empty list of positive floats, got {alphas}."
        )
    # Decreasing, so that each fit is warm-started from a sparser network.
    return np.sort(alphas)[::-1]


def _iter_path(estimator, X, y, alphas, warm_start=True):
    """Yield the estimator fitted at each alpha, in order.

    With ``warm_start`` one clone is refitted along the path with
    ``warm_start=True``: it keeps its activation patterns and starts the
    solver (or column generation) from the previous solution. The same
    object is yielded each time; copy it to keep it.
    """
    if warm_start:
        est = clone(estimator).set_params(warm_start=True)
        for alpha in alphas:
            yield est.set_params(alpha=alpha).fit(X, y)
    else:
        for alpha in alphas:
            yield clone(estimator).set_params(alpha=alpha).fit(X, y)


def _fit_point(estimator, X, y, alpha):
    return clone(estimator).set_params(alpha=alpha).fit(X, y)


@validate_params(
    {
        "X": ["array-like"],
        "y": ["array-like"],
        "estimator": [None, object],
        "alphas": ["array-like", None],
        "n_alphas": [Interval(Integral, 1, None, closed="left")],
        "eps": [Interval(Real, 0, 1, closed="neither")],
        "warm_start": ["boolean"],
        "return_estimators": ["boolean"],
        "n_jobs": [Integral, None],
        "verbose": ["verbose"],
    },
    prefer_skip_nested_validation=True,
)
def bn_relu_path(
    X,
    y,
    *,
    estimator=None,
    alphas=None,
    n_alphas=10,
    eps=1e-3,
    warm_start=True,
    return_estimators=False,
    n_jobs=None,
    verbose=0,
):
    r"""Fit a convex BN-ReLU network along a decreasing sequence of ``alpha``.

    At every ``alpha`` the estimator minimises

    .. math::

        \frac{1}{n} \sum_{i=1}^n \ell(f(x_i), y_i)
        + \frac{\alpha}{2n} \sum_{j} \big(g_j^2 + b_j^2 + \|v_j\|_2^2\big)

    (see :class:`~skbnconvex.ConvexBNReLURegressor`), i.e. program (C) with
    weight decay :math:`\beta = \alpha / \sqrt{n}`. As in
    :func:`~sklearn.linear_model.lasso_path`, the default sequence is
    ``n_alphas`` values on a log grid from :func:`bn_relu_alpha_max`, where
    the optimum is the zero network, down to ``eps * alpha_max``, and each
    fit is warm-started from the previous one (same activation patterns,
    previous blocks as the solver's and column generation's starting point).

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
        Training data.
    y : array-like of shape (n_samples,) or (n_samples, n_outputs)
        Targets (class labels for a classifier).
    estimator : ConvexBNReLURegressor or ConvexBNReLUClassifier, default=None
        Template of every fit (loss, patterns, solver, tolerances,
        ``random_state``); its ``alpha`` and ``warm_start`` are ignored. A
        default :class:`~skbnconvex.ConvexBNReLURegressor` when None. It is
        not modified.
    alphas : array-like of shape (n_alphas,), default=None
        Values of ``alpha``, fitted in decreasing order. None for the
        default grid.
    n_alphas : int, default=10
        Length of the default grid.
    eps : float, default=1e-3
        ``alpha_min / alpha_max`` of the default grid.
    warm_start : bool, default=True
        Warm-start each fit from the previous one. With False the fits are
        independent (each from scratch) and run in parallel over
        ``n_jobs``.
    return_estimators : bool, default=False
        Also return the fitted estimator of every ``alpha``.
    n_jobs : int, default=None
        Parallel jobs (joblib) when ``warm_start=False``; a warm-started
        path is sequential by nature. None means 1 unless in a
        :func:`joblib.parallel_backend` context.
    verbose : int, default=0
        joblib verbosity.

    Returns
    -------
    alphas : ndarray of shape (n_alphas,)
        The values of ``alpha``, decreasing.
    objectives : ndarray of shape (n_alphas,)
        Training objective ``objective_`` of each fit.
    n_neurons : ndarray of shape (n_alphas,)
        Number of neurons ``n_neurons_`` of each fit.
    gaps : ndarray of shape (n_alphas,)
        Relative optimality gap ``optimality_gap_`` of each fit.
    estimators : list of estimators
        The fitted estimators, returned when ``return_estimators=True``
        (with the template's ``warm_start``).

    See Also
    --------
    ConvexBNReLURegressorCV : Chooses ``alpha`` by cross-validation along
        the path.
    ConvexBNReLUClassifierCV : The same for classification.
    bn_relu_alpha_max : The start of the default grid.

    Examples
    --------
    >>> import numpy as np
    >>> from skbnconvex import ConvexBNReLURegressor, bn_relu_path
    >>> rng = np.random.default_rng(0)
    >>> X = rng.standard_normal((30, 2))
    >>> y = np.abs(X[:, 0])
    >>> reg = ConvexBNReLURegressor(patterns="enumerate")
    >>> alphas, objectives, n_neurons, gaps = bn_relu_path(
    ...     X, y, estimator=reg, n_alphas=4, eps=0.1)
    >>> # alpha_max: the objective of the zero network, 0.5 * mean(y**2)
    >>> bool(np.isclose(objectives[0], 0.5 * np.mean(y**2)))
    True
    >>> bool(np.all(np.diff(objectives) <= 0)), bool(n_neurons[-1] > 0)
    (True, True)
    """
    estimator = _check_estimator(estimator)
    alphas = _check_alphas(X, y, estimator, alphas, n_alphas, eps)
    if warm_start:
        fitted = []
        for est in _iter_path(estimator, X, y, alphas, warm_start=True):
            if return_estimators:
                # The path refits one object; keep a snapshot of this point.
                est = copy.deepcopy(est).set_params(warm_start=estimator.warm_start)
            fitted.append(
                (est.objective_, est.n_neurons_, est.optimality_gap_,
                 est if return_estimators else None)
            )
    else:
        estimators = Parallel(n_jobs=n_jobs, verbose=verbose)(
            delayed(_fit_point)(estimator, X, y, alpha) for alpha in alphas
        )
        fitted = [
            (est.objective_, est.n_neurons_, est.optimality_gap_, est)
            for est in estimators
        ]
    objectives = np.array([f[0] for f in fitted], dtype=np.float64)
    n_neurons = np.array([f[1] for f in fitted], dtype=np.intp)
    gaps = np.array([f[2] for f in fitted], dtype=np.float64)
    if return_estimators:
        return alphas, objectives, n_neurons, gaps, [f[3] for f in fitted]
    return alphas, objectives, n_neurons, gaps
