"""scikit-learn estimators: two-layer BN-ReLU networks trained to global optimum."""

# Authors: the skbnconvex developers
# License: BSD 3 clause

import warnings
from numbers import Integral, Real

import numpy as np
from sklearn.base import (
    BaseEstimator,
    ClassifierMixin,
    RegressorMixin,
    _fit_context,
)
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.metaestimators import available_if
from sklearn.utils.multiclass import check_classification_targets, type_of_target
from sklearn.utils.validation import check_is_fitted, validate_data

from ._losses import get_loss
from ._patterns import enumerate_patterns, sample_patterns
from ._program import ConvexProgram
from ._recovery import active_blocks, network_to_torch, recover_network
from ._solvers import solve_cvxpy
from ._whitening import whiten

# solver="auto" uses cvxpy (interior point) while n_samples * n_patterns * k,
# the size of the cone constraints, is at most this, and torch above it.
_AUTO_CVXPY_MAX_SIZE = 20_000

_OBJECTIVE_DOC = r"""
    The network is ``Linear(n_features, m, bias=False) -> BatchNorm1d(m) ->
    ReLU -> Linear(m, n_outputs, bias=False)`` with full-batch BN (biased
    variance, ``eps = 0``), and the fit minimises over all its weights and
    all widths ``m``

    .. math::

        \frac{1}{n} \sum_{i=1}^n \ell(f(x_i), y_i)
        + \frac{\alpha}{2n} \sum_{j=1}^m \big(g_j^2 + b_j^2 + \|v_j\|_2^2\big)

    where ``g_j, b_j`` are the BN weight and bias of neuron ``j`` in
    PyTorch's convention and ``v_j`` its output weights: the loss and the
    ``alpha / (2 n)`` scaling of
    :class:`~sklearn.neural_network.MLPRegressor`, with the weight decay on
    the BN parameters and the read-out (BN makes the output invariant to
    the scale of the hidden weights, so they are not penalised). Every neuron
    feeds one output (decoupled outputs), which keeps the problem an exact
    convex program.

    Ergen et al. (2022) show that this equals, up to the factor ``1/n``,
    the convex program on the whitened data ``U' = [U, 1/sqrt(n)]``
    (``X - mean = U S V^T``)

    .. math::

        \min \; \sum_i \ell\Big(\sum_p D_p U' (a_p - b_p)\Big)_i
        + \beta \sum_p \big(\|a_p\|_2 + \|b_p\|_2\big),
        \quad (2D_p - I) U' a_p \ge 0,\; (2D_p - I) U' b_p \ge 0

    over activation patterns ``D_p``, with :math:`\beta = \alpha/\sqrt{n}`
    (the paper's weight decay ``beta`` on its BN, which divides by the
    l2 norm instead of the standard deviation). The network is read back
    from the solution. Over sampled patterns the program is an upper bound
    of the global optimum; over all patterns it is the global optimum.
"""


class _BaseConvexBNReLU(BaseEstimator):
    """Shared fit of the convex BN-ReLU estimators."""

    _parameter_constraints = {
        "alpha": [Interval(Real, 0, None, closed="neither")],
        "n_patterns": [Interval(Integral, 1, None, closed="left")],
        "patterns": [StrOptions({"sample", "enumerate"})],
        "solver": [StrOptions({"auto", "cvxpy", "torch"})],
        "solver_options": [dict, None],
        "device": "no_validation",  # str or torch.device; checked by torch
        "warm_start": ["boolean"],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
        "tol": [Interval(Real, 0, None, closed="neither")],
        "random_state": ["random_state"],
        "verbose": ["verbose"],
    }

    #: Blocks with a norm below this fraction of the largest are zero.
    _prune_tol = 1e-6

    def __init__(
        self,
        alpha=1e-4,
        *,
        loss,
        n_patterns=100,
        patterns="sample",
        solver="auto",
        solver_options=None,
        device="cpu",
        max_iter=10000,
        tol=1e-6,
        warm_start=False,
        random_state=None,
        verbose=0,
    ):
        self.alpha = alpha
        self.loss = loss
        self.n_patterns = n_patterns
        self.patterns = patterns
        self.solver = solver
        self.solver_options = solver_options
        self.device = device
        self.max_iter = max_iter
        self.tol = tol
        self.warm_start = warm_start
        self.random_state = random_state
        self.verbose = verbose

    def _make_patterns(self, Ut):
        if self.patterns == "enumerate":
            return enumerate_patterns(Ut)
        return sample_patterns(Ut, self.n_patterns, self.random_state)

    def _resolve_solver(self, program):
        """The solver ``"auto"`` stands for, given the program's size."""
        if self.solver != "auto":
            return self.solver
        size = program.n_samples * program.n_patterns * program.k
        return "cvxpy" if size <= _AUTO_CVXPY_MAX_SIZE else "torch"

    def _solve(self, program, W0=None):
        self.solver_ = self._resolve_solver(program)
        if self.solver_ == "cvxpy":
            return solve_cvxpy(
                program,
                max_iter=self.max_iter,
                tol=self.tol,
                solver_options=self.solver_options,
                verbose=bool(self.verbose),
            )
        options = dict(self.solver_options or {})
        dtype = options.pop("dtype", None)
        if isinstance(dtype, str):
            import torch

            dtype = {"float32": torch.float32, "float64": torch.float64}[dtype]
        if options:
            raise ValueError(
                "solver='torch' accepts only 'dtype' in solver_options, got "
                f"{sorted(options)}."
            )
        # torch is imported on first use: `import skbnconvex` stays light.
        from ._solvers._torch import solve_torch

        return solve_torch(
            program,
            W0=W0,
            max_iter=self.max_iter,
            tol=self.tol,
            device=self.device,
            dtype=dtype,
            verbose=bool(self.verbose),
        )

    def _warm_start_point(self, n_samples):
        """Patterns and blocks of the previous fit, if it can seed this one."""
        previous = getattr(self, "_solution", None)
        if not self.warm_start or previous is None:
            return None, None
        D, Wp, Wn = previous
        if D.shape[0] != n_samples or Wp.shape[0] != self._n_coded_outputs:
            return None, None
        return D, (Wp, Wn)

    def _fit_coded(self, X, Y):
        """Fit on validated ``X`` and targets ``Y`` coded for the loss."""
        n = X.shape[0]
        loss = get_loss(self.loss, Y.shape[1])
        whitening = whiten(X)
        self._n_coded_outputs = Y.shape[1]
        D, W0 = self._warm_start_point(n)
        if D is None or D.shape[0] != whitening.Ut.shape[0]:
            D, W0 = self._make_patterns(whitening.Ut), None
        if W0 is not None and W0[0].shape[2] != whitening.Ut.shape[1]:
            D, W0 = self._make_patterns(whitening.Ut), None
        program = ConvexProgram(whitening.Ut, D, Y, loss, self.alpha / np.sqrt(n))
        result = self._solve(program, W0)
        if not result.converged:
            warnings.warn(
                f"The solver did not reach tol={self.tol} (status: "
                f"{result.message}, {result.n_iter} iterations). Increase "
                "max_iter or tol, or try another solver.",
                ConvergenceWarning,
            )
        keep_p, keep_n = active_blocks(
            result.Wp, result.Wn, self._prune_tol, scale=np.linalg.norm(Y)
        )
        Wp = np.where(keep_p[..., None], result.Wp, 0.0)
        Wn = np.where(keep_n[..., None], result.Wn, 0.0)
        network = recover_network(whitening, Wp, Wn)

        self._network = network
        # Kept for warm starts: the patterns depend on the training data, so
        # they are reused only when refitting on data of the same shape.
        self._solution = (D, Wp, Wn)
        self.hidden_weights_ = network.hidden_weights
        self.bn_weight_ = network.bn_weight
        self.bn_bias_ = network.bn_bias
        self.bn_running_mean_ = network.bn_running_mean
        self.bn_running_var_ = network.bn_running_var
        self.output_weights_ = network.output_weights
        self.n_neurons_ = network.n_neurons
        self.n_patterns_ = D.shape[1]
        self.rank_ = whitening.rank
        self.n_iter_ = result.n_iter
        # The objective of the recovered network by a plain forward pass on
        # the training data: what the user gets, not what the solver says.
        F = network.forward(X)
        self.objective_ = (
            loss.value(F, Y) + 0.5 * self.alpha * network.penalty()
        ) / n
        # The convex value at the pruned blocks, for checks against (NC).
        self._convex_objective = program.objective(Wp, Wn) / n
        return self

    def _forward(self, X):
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, dtype=np.float64)
        return self._network.forward(X)

    def to_torch(self, eps=1e-5, dtype=None):
        """Export the fitted network as a :class:`torch.nn.Sequential`.

        Returns ``Sequential(Linear(n_features, m, bias=False),
        BatchNorm1d(m, eps), ReLU(), Linear(m, n_outputs, bias=False))`` in
        eval mode. Its output equals :meth:`predict` (regression) or
        :meth:`decision_function` (classification), as a column.

        Parameters
        ----------
        eps : float, default=1e-5
            ``eps`` of the BatchNorm1d layer (PyTorch refuses 0 in training
            mode). It is folded into the BN weight,
            ``weight * sqrt(var + eps) / sqrt(var)``, so the module computes
            the fitted network exactly; in training mode on the training
            batch it does too. ``bn_weight_`` is the unfolded weight.
        dtype : torch.dtype, default=None
            Parameter dtype; ``torch.float64`` when None.

        Returns
        -------
        module : torch.nn.Sequential
            In eval mode. A network with no neurons is exported with one
            neuron of zero weights.
        """
        check_is_fitted(self)
        return network_to_torch(self._network, eps=eps, dtype=dtype)


class ConvexBNReLURegressor(RegressorMixin, _BaseConvexBNReLU):
    __doc__ = (
        """Two-layer BN-ReLU regressor trained by exact convex optimisation.
"""
        + _OBJECTIVE_DOC
        + r"""
    Here :math:`\ell` is the squared error halved and averaged over the
    outputs, as in :class:`~sklearn.neural_network.MLPRegressor`.

    Parameters
    ----------
    alpha : float, default=1e-4
        Weight decay on the BN weights and biases and the output weights,
        scaled as ``alpha`` of MLPRegressor. Not the BN shift (which the
        paper also calls alpha). Must be positive.
    loss : {"squared_error"}, default="squared_error"
        The loss.
    n_patterns : int, default=100
        Number of distinct activation patterns sampled (with
        ``patterns="sample"``); fewer are used if fewer exist.
    patterns : {"sample", "enumerate"}, default="sample"
        ``"sample"``: Gaussian directions seeded by ``random_state``.
        ``"enumerate"``: every pattern, which makes the fit the global
        optimum; only affordable at small rank.
    solver : {"auto", "cvxpy"}, default="auto"
        ``"cvxpy"``: the program in cvxpy, solved by Clarabel unless
        ``solver_options`` names another conic solver. ``"auto"`` picks it.
    solver_options : dict, default=None
        For cvxpy: ``{"solver": NAME, **keyword_arguments}`` passed to
        :meth:`cvxpy.Problem.solve`, e.g. ``{"solver": "SCS", "eps": 1e-9}``.
    max_iter : int, default=10000
        Iteration cap of the solver.
    tol : float, default=1e-6
        Relative duality-gap tolerance of the solver. For Clarabel it sets
        ``tol_gap_rel``, ``tol_gap_abs`` and ``tol_feas``, capped at 1e-8
        (an interior-point method reaches that in a few more iterations).
    random_state : int, RandomState instance or None, default=None
        Seeds the pattern sampling.
    verbose : int, default=0
        Print the solver's progress.

    Attributes
    ----------
    hidden_weights_ : ndarray of shape (`n_features_in_`, `n_neurons_`)
        First layer (unit-norm columns; BN makes their scale irrelevant).
    bn_weight_ : ndarray of shape (`n_neurons_`,)
        BatchNorm1d weight (``eps = 0``; see :meth:`to_torch`).
    bn_bias_ : ndarray of shape (`n_neurons_`,)
        BatchNorm1d bias.
    bn_running_mean_ : ndarray of shape (`n_neurons_`,)
        Mean of the training pre-activations, used at prediction.
    bn_running_var_ : ndarray of shape (`n_neurons_`,)
        Biased variance of the training pre-activations.
    output_weights_ : ndarray of shape (`n_neurons_`, `n_outputs_`)
        Read-out; each row has one non-zero entry (decoupled outputs).
    n_neurons_ : int
        Number of neurons (non-zero blocks of the convex solution).
    objective_ : float
        Regularised training objective of the fitted network, evaluated by a
        forward pass on the training data.
    n_patterns_ : int
        Number of activation patterns in the convex program.
    rank_ : int
        Rank of the centred training data.
    n_iter_ : int
        Solver iterations.
    n_outputs_ : int
        Number of outputs.
    n_features_in_ : int
        Number of features seen during fit.
    feature_names_in_ : ndarray of shape (`n_features_in_`,)
        Names of features seen during fit, when ``X`` has string column
        names.

    See Also
    --------
    ConvexBNReLUClassifier : The classifier.
    sklearn.neural_network.MLPRegressor : Gradient-trained networks.

    References
    ----------
    T. Ergen, A. Sahiner, B. Ozturkler, J. Pauly, M. Mardani, M. Pilanci,
    "Demystifying Batch Normalization in ReLU Networks: Equivalent Convex
    Optimization Models and Implicit Regularization", ICLR 2022,
    arXiv:2103.01499.

    Examples
    --------
    >>> from sklearn.datasets import make_regression
    >>> from skbnconvex import ConvexBNReLURegressor
    >>> X, y = make_regression(n_samples=40, n_features=3, noise=1.0,
    ...                        random_state=0)
    >>> reg = ConvexBNReLURegressor(alpha=1.0, n_patterns=20,
    ...                             random_state=0).fit(X, y)
    >>> reg.predict(X[:2]).shape
    (2,)
    """
    )

    _parameter_constraints = {
        **_BaseConvexBNReLU._parameter_constraints,
        "loss": [StrOptions({"squared_error"})],
    }

    def __init__(
        self,
        alpha=1e-4,
        *,
        loss="squared_error",
        n_patterns=100,
        patterns="sample",
        solver="auto",
        solver_options=None,
        device="cpu",
        max_iter=10000,
        tol=1e-6,
        warm_start=False,
        random_state=None,
        verbose=0,
    ):
        super().__init__(
            alpha=alpha,
            loss=loss,
            n_patterns=n_patterns,
            patterns=patterns,
            solver=solver,
            solver_options=solver_options,
            device=device,
            max_iter=max_iter,
            tol=tol,
            warm_start=warm_start,
            random_state=random_state,
            verbose=verbose,
        )

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y):
        """Fit the network to its global optimum over the patterns.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training data (dense; at least two samples).
        y : array-like of shape (n_samples,) or (n_samples, n_outputs)
            Targets.

        Returns
        -------
        self : object
            Fitted estimator.
        """
        X, y = validate_data(
            self,
            X,
            y,
            multi_output=True,
            y_numeric=True,
            dtype=np.float64,
            ensure_min_samples=2,
        )
        Y = y.reshape(-1, 1) if y.ndim == 1 else y
        self.n_outputs_ = Y.shape[1]
        self._y_1d = y.ndim == 1
        return self._fit_coded(X, Y)

    def predict(self, X):
        """Predict with the fitted network (BN with training statistics).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        y : ndarray of shape (n_samples,) or (n_samples, n_outputs)
        """
        F = self._forward(X)
        return F.ravel() if self._y_1d else F

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        tags.input_tags.sparse = False
        return tags


def _has_proba(estimator):
    if estimator.loss != "log_loss":
        raise AttributeError(
            "predict_proba is available only with loss='log_loss'."
        )
    return True


class ConvexBNReLUClassifier(ClassifierMixin, _BaseConvexBNReLU):
    __doc__ = (
        """Two-layer BN-ReLU classifier trained by exact convex optimisation.
"""
        + _OBJECTIVE_DOC
        + r"""
    Here :math:`\ell` is the logistic loss (one output, binary) or the softmax
    cross-entropy (one output per class) with ``loss="log_loss"``, as in
    :class:`~sklearn.neural_network.MLPClassifier`; with
    ``loss="squared_error"`` it is the squared error on ``+-1`` targets
    (binary) or one-hot targets (multiclass), as in the paper.

    Parameters
    ----------
    alpha : float, default=1e-4
        Weight decay on the BN weights and biases and the output weights,
        scaled as ``alpha`` of MLPClassifier. Not the BN shift. Must be
        positive.
    loss : {"log_loss", "squared_error"}, default="log_loss"
        The loss.
    n_patterns : int, default=100
        Number of distinct activation patterns sampled.
    patterns : {"sample", "enumerate"}, default="sample"
        How patterns are chosen; see :class:`ConvexBNReLURegressor`.
    solver : {"auto", "cvxpy"}, default="auto"
        See :class:`ConvexBNReLURegressor`.
    solver_options : dict, default=None
        See :class:`ConvexBNReLURegressor`.
    max_iter : int, default=10000
        Iteration cap of the solver.
    tol : float, default=1e-6
        Relative duality-gap tolerance of the solver.
    random_state : int, RandomState instance or None, default=None
        Seeds the pattern sampling.
    verbose : int, default=0
        Print the solver's progress.

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        Class labels.
    hidden_weights_ : ndarray of shape (`n_features_in_`, `n_neurons_`)
        First layer.
    bn_weight_ : ndarray of shape (`n_neurons_`,)
        BatchNorm1d weight (``eps = 0``).
    bn_bias_ : ndarray of shape (`n_neurons_`,)
        BatchNorm1d bias.
    bn_running_mean_ : ndarray of shape (`n_neurons_`,)
        Mean of the training pre-activations.
    bn_running_var_ : ndarray of shape (`n_neurons_`,)
        Biased variance of the training pre-activations.
    output_weights_ : ndarray of shape (`n_neurons_`, n_outputs)
        Read-out: one column for binary problems, one per class otherwise.
    n_neurons_ : int
        Number of neurons.
    objective_ : float
        Regularised training objective of the fitted network (forward pass).
    n_patterns_ : int
        Number of activation patterns in the convex program.
    rank_ : int
        Rank of the centred training data.
    n_iter_ : int
        Solver iterations.
    n_features_in_ : int
        Number of features seen during fit.
    feature_names_in_ : ndarray of shape (`n_features_in_`,)
        Names of features seen during fit, when ``X`` has string column
        names.

    See Also
    --------
    ConvexBNReLURegressor : The regressor.
    sklearn.neural_network.MLPClassifier : Gradient-trained networks.

    References
    ----------
    T. Ergen, A. Sahiner, B. Ozturkler, J. Pauly, M. Mardani, M. Pilanci,
    "Demystifying Batch Normalization in ReLU Networks: Equivalent Convex
    Optimization Models and Implicit Regularization", ICLR 2022,
    arXiv:2103.01499.

    Examples
    --------
    >>> from sklearn.datasets import load_iris
    >>> from skbnconvex import ConvexBNReLUClassifier
    >>> X, y = load_iris(return_X_y=True)
    >>> clf = ConvexBNReLUClassifier(alpha=1.0, n_patterns=20,
    ...                              random_state=0).fit(X, y)
    >>> clf.predict_proba(X[:1]).shape
    (1, 3)
    """
    )

    _parameter_constraints = {
        **_BaseConvexBNReLU._parameter_constraints,
        "loss": [StrOptions({"log_loss", "squared_error"})],
    }

    def __init__(
        self,
        alpha=1e-4,
        *,
        loss="log_loss",
        n_patterns=100,
        patterns="sample",
        solver="auto",
        solver_options=None,
        device="cpu",
        max_iter=10000,
        tol=1e-6,
        warm_start=False,
        random_state=None,
        verbose=0,
    ):
        super().__init__(
            alpha=alpha,
            loss=loss,
            n_patterns=n_patterns,
            patterns=patterns,
            solver=solver,
            solver_options=solver_options,
            device=device,
            max_iter=max_iter,
            tol=tol,
            warm_start=warm_start,
            random_state=random_state,
            verbose=verbose,
        )

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y):
        """Fit the network to its global optimum over the patterns.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training data (dense; at least two samples).
        y : array-like of shape (n_samples,)
            Class labels (at least two classes).

        Returns
        -------
        self : object
            Fitted estimator.
        """
        X, y = validate_data(
            self, X, y, dtype=np.float64, ensure_min_samples=2
        )
        check_classification_targets(y)
        kind = type_of_target(y)
        if kind not in ("binary", "multiclass"):
            raise ValueError(
                f"ConvexBNReLUClassifier supports binary and multiclass "
                f"targets, got {kind!r} targets."
            )
        self.classes_, idx = np.unique(y, return_inverse=True)
        n_classes = self.classes_.shape[0]
        if n_classes < 2:
            raise ValueError(
                "Classifier can't train when only one class is present: "
                f"y contains only {self.classes_[0]!r}. Provide samples of "
                "at least two classes."
            )
        if n_classes == 2:
            Y = (2.0 * idx - 1.0).reshape(-1, 1)
        else:
            Y = np.eye(n_classes)[idx]
        return self._fit_coded(X, Y)

    def decision_function(self, X):
        """Network output: one score (binary) or one per class.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        scores : ndarray of shape (n_samples,) or (n_samples, n_classes)
            Positive scores favour ``classes_[1]`` in the binary case.
        """
        F = self._forward(X)
        return F.ravel() if F.shape[1] == 1 else F

    def predict(self, X):
        """Predict class labels.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        y : ndarray of shape (n_samples,)
        """
        scores = self.decision_function(X)
        if scores.ndim == 1:
            return self.classes_[(scores > 0).astype(int)]
        return self.classes_[np.argmax(scores, axis=1)]

    @available_if(_has_proba)
    def predict_proba(self, X):
        """Class probabilities (``loss="log_loss"`` only).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        proba : ndarray of shape (n_samples, n_classes)
        """
        F = self._forward(X)
        proba = get_loss("log_loss", F.shape[1]).proba(F)
        return np.hstack([1.0 - proba, proba]) if F.shape[1] == 1 else proba

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = False
        tags.classifier_tags.multi_label = False
        return tags
