"""scikit-learn estimators: two-layer BN-ReLU networks trained to global optimum."""

# Authors: the skbnconvex developers
# License: BSD 3 clause

import time
import warnings
from numbers import Integral, Real

import numpy as np
import torch
from sklearn.base import (
    BaseEstimator,
    ClassifierMixin,
    RegressorMixin,
    _fit_context,
)
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils import check_random_state, check_scalar
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.metaestimators import available_if
from sklearn.utils.multiclass import check_classification_targets, type_of_target
from sklearn.utils.validation import (
    _check_sample_weight,
    check_is_fitted,
    validate_data,
)

from ._certificate import optimality_certificate
from ._closed_form import closed_form_solution, is_square
from ._column_generation import column_generation
from ._gradient import train_bn_relu_network
from ._losses import get_loss, program_targets
from ._patterns import (
    enumerate_patterns,
    max_patterns,
    sample_patterns,
    unique_patterns,
)
from ._program import ConvexProgram
from ._recovery import (
    active_blocks,
    blocks_from_network,
    network_to_torch,
    recover_network,
)
from ._solvers import solve_cvxpy
from ._solvers._base import check_memory
from ._whitening import whiten

# The certificate enumerates every pattern (an exact oracle, which can
# certify) while their number is at most this; above, it searches.
_EXACT_CERTIFICATE_MAX = 20_000

# init="adam": full-batch Adam steps and learning rate of the warm-up run.
_ADAM_INIT_STEPS = 1000
_ADAM_INIT_LEARNING_RATE = 1e-2
# init="adam" with patterns="adaptive": Adam steps and learning rate of the
# run from each round's recovered network that proposes patterns. Adam does
# most of the descent between rounds (red wine, alpha=1: 5-20% per round
# against the solve's 0.5-3%), so it gets a real run: ten rounds reached
# 0.0851 with 500 steps, 0.0776 with 2 000 and 0.0773 with 3 000 (the last
# with the 100-iteration solves below, in 406 s instead of 476 s). At a
# learning rate of 1e-2 two of the runs ended above their start.
_ADAM_ROUND_STEPS = 3000
_ADAM_ROUND_LEARNING_RATE = 3e-3
# ... at most: the run stops after _ADAM_ROUND_PATIENCE records (every
# _ADAM_ROUND_RECORD steps) without a relative progress of _ADAM_ROUND_TOL.
# On synthetic data (n = 500, d = 20) Adam from a round's network gains less
# than 0.1% per 250 steps from the start, while on red wine it gains 0.1-5%
# per 250 steps, in bursts with records of no progress between them.
_ADAM_ROUND_RECORD = 250
_ADAM_ROUND_TOL = 1e-3
_ADAM_ROUND_PATIENCE = 3
# ... and the most solver iterations of its intermediate rounds (every
# round but a final re-solve, the first too): the next
# round's Adam run moves the network anyway, and a hundred iterations
# reweigh and prune the neurons (red wine, n = 1 599: rounds solved to 1%
# of the gap took thousands of iterations, 20-200 s each, for the same
# progress per round; breast cancer, ten rounds: 300 iterations a round
# 0.040989 in 61 s, 100 iterations 0.041053 in 43 s).
_ADAM_ROUND_MAX_ITER = 100
# Precision of the proposals' Adam runs. They only propose patterns and a
# starting point, whose objective the program evaluates in float64 (the
# better start wins), and in single precision a step costs a quarter (red
# wine, 400 neurons, one thread: 36-40 ms -> 9-10 ms; ten rounds 406 s ->
# 287 s, objective 0.0773 -> 0.0766).
_ADAM_ROUND_DTYPE = torch.float32
# ... and of the warm-up, for the same reason: it only proposes the first
# patterns and blocks, and its precision moves the fit's path within its
# spread over seeds. Fits of bench_vs_adam's data (alpha = 1, one thread,
# float64 and float32 warm-ups at once, random_state 0-3): ending after
# round 1, synthetic 5.3-6.5 s -> 5.1-5.7 s and lower in 3 of 4 (at most
# 0.13% apart), breast cancer lower in 2 of 4 (at most 0.23% apart), red
# wine lower in 2 of 2; red wine's ten rounds 311.9 -> 204.2 s, 0.067999
# -> 0.068792 (random_state=0) and 244.9 -> 219.6 s, 0.068320 -> 0.067386
# (1). (With the autograd trainer of session 26, two ten-round red wine
# fits ended 1.4% higher in float32.)
_ADAM_INIT_DTYPE = torch.float32

# solver="auto" uses cvxpy (interior point) while n_samples * n_patterns * k,
# the size of the cone constraints, is at most this, and torch above it.
_AUTO_CVXPY_MAX_SIZE = 50_000

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
    convex program. With ``sample_weight`` the mean and ``1/n`` are
    weighted (``n`` is the sum of the weights) and so are the BN batch
    statistics; with ``spectral_power > 0`` the term ``g_j^2`` is weighted
    by ``rho_j^2 >= 1`` (see ``spectral_power``).

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


_PARAMS_DOC = r"""    n_patterns : int, default=100
        Number of activation patterns: sampled with ``patterns="sample"``
        (fewer if fewer exist), the initial sample with
        ``patterns="adaptive"``.
    patterns : {"sample", "enumerate", "adaptive"}, default="sample"
        Which activation patterns enter the convex program.
        ``"sample"``: ``n_patterns`` from Gaussian directions seeded by
        ``random_state``; the fit is optimal for the network restricted to
        them (an upper bound of the global optimum). ``"enumerate"``: all of
        them, which makes the fit the global optimum; affordable only at
        small rank (refused with an explanation otherwise).
        ``"adaptive"``: column generation, which adds the patterns that the
        optimality certificate finds violated, round after round, until the
        certificate holds or ``max_patterns`` / ``max_rounds`` run out.
        When the centred data have rank ``n_samples - 1`` and the loss is
        the squared error, the optimum is known in closed form and is used
        whatever this parameter says.
    init : {"random", "adam"}, default="random"
        Where the first patterns come from (``patterns="sample"`` or
        ``"adaptive"``). ``"random"``: Gaussian directions. ``"adam"``: the
        activation patterns of the non-convex network of width
        ``n_patterns`` trained briefly (1000 full-batch Adam steps, in
        float32) by gradient descent; the convex program then contains that
        network, so the fit is at least as good, and at realistic rank these
        patterns are far better than random ones (and a wide warm-up
        better than a narrow one where the optimum is a wide network: see
        the user guide). That network, written as
        blocks of the program, is also the solver's starting point (torch
        solver; cvxpy has no warm start). With ``patterns="adaptive"``
        (and ``spectral_power=0``) every round also runs up to 3000 Adam
        steps (in float32, stopping when progress stalls) from the round's
        recovered network and adds the activation
        patterns it reaches (gradient descent moves hyperplanes across
        data points, which a program on fixed patterns cannot); the next
        round starts from that network when it is better, so each round
        is at least as good as the network Adam reached. Every round is
        then solved on a budget (100 solver iterations, the first and the
        last too; a point where the certificate finds nothing new is
        solved again to ``tol``), since the next proposal moves the
        network anyway; the certificate's gap stays the honest measure.
    spectral_power : float, default=0.0
        Encodes gradient descent's bias towards the directions of large
        singular value of the data (Ergen et al., 2022, section on implicit
        regularisation; the form is this package's, see the user guide).
        The whitened data become ``[U diag((S / S_1) ** spectral_power),
        1/sqrt(n)]``, with ``S`` the singular values of the centred data
        after each feature is scaled to unit norm; equivalently each
        neuron's BN weight ``g_j`` is penalised as ``rho_j^2 g_j^2`` with
        ``rho_j = ||diag((S_1 / S) ** spectral_power) u_j|| >= 1``, ``u_j``
        the neuron's unit direction in the principal-component coordinates
        (attribute ``bn_weight_penalty_scale_``). The program stays convex
        and exact for this network class and uses the same patterns.
        0 (the default) is the exact BN network; 1 roughly a network
        without BN whose weight decay also falls on the hidden weights.
        Tune it with ``alpha`` by cross-validation.
    max_patterns : int, default=None
        With ``patterns="adaptive"``, the largest program allowed; None for
        no limit.
    max_rounds : int, default=30
        With ``patterns="adaptive"``, the largest number of solves.
    solver : {"auto", "cvxpy", "torch"}, default="auto"
        ``"cvxpy"``: the program in cvxpy, solved by Clarabel (interior
        point, the exact reference) unless ``solver_options`` names another
        conic solver. ``"torch"``: a first-order solver in PyTorch, on CPU
        or CUDA (``device``), with warm starts. ``"auto"``: cvxpy while the
        size of the cone constraints ``n_samples * n_patterns * (rank + 1)``
        is at most 50 000, torch above (measured: cvxpy is faster below,
        torch 2.6x faster at 60 000 and 20x at 550 000).
    solver_options : dict, default=None
        For cvxpy: ``{"solver": NAME, **keyword_arguments}`` passed to
        :meth:`cvxpy.Problem.solve`, e.g. ``{"solver": "SCS", "eps": 1e-9}``.
        For torch: ``{"dtype": "float32"}`` (float64 by default).
    device : str or torch.device, default="cpu"
        Device of the torch solver, e.g. ``"cuda"``.
    max_iter : int, default=10000
        Iteration cap of the solver (interior-point iterations for Clarabel;
        first-order iterations plus Newton steps for torch).
    tol : float, default=1e-6
        Relative duality-gap tolerance of the solver and of the optimality
        certificate. For Clarabel it sets ``tol_gap_rel``, ``tol_gap_abs``
        and ``tol_feas``, capped at 1e-8.
    certificate_options : dict, default=None
        Effort of the optimality certificate's search for violated patterns
        where it cannot enumerate them all (``optimality_gap_`` is then an
        estimate), a dict with any of the integer keys ``n_samples``
        (default 1000) sampled patterns, ``n_starts`` (64) random starts of
        the ascent per output and sign, ``n_ascent`` (30) ascent steps,
        ``n_flip_rounds`` (5) rounds of local search across cells and
        ``max_checks`` (1000) exact cone projections per stage of
        candidates (see :ref:`the certificate <certificate>`). Used after
        the fit and by every round of ``patterns="adaptive"``. Its cost
        grows with ``n_samples * n_outputs`` times these counts: on letter
        (16 000 rows, 26 classes) the default search takes about as long as
        100 solver iterations. A smaller search gives a less reliable
        estimate (a smaller gap than the true one is possible), and with
        ``patterns="adaptive"`` fewer new patterns per round; a search never
        sets ``certified_``, so a proof is unaffected.
    warm_start : bool, default=False
        Refit from the previous solution (same patterns, previous blocks)
        when the training data have the same shape, e.g. along a sequence
        of ``alpha``; the torch solver and column generation use it.
    random_state : int, RandomState instance or None, default=None
        Seeds the pattern sampling and the certificate's search.
    verbose : int, default=0
        Print the solver's progress (a progress bar for torch) and one line
        per column-generation round.
"""

_ATTRIBUTES_DOC = r"""    hidden_weights_ : ndarray of shape (`n_features_in_`, `n_neurons_`)
        First layer (unit-norm columns; BN makes their scale irrelevant).
    bn_weight_ : ndarray of shape (`n_neurons_`,)
        BatchNorm1d weight (``eps = 0``; see :meth:`to_torch`).
    bn_bias_ : ndarray of shape (`n_neurons_`,)
        BatchNorm1d bias.
    bn_running_mean_ : ndarray of shape (`n_neurons_`,)
        Mean of the training pre-activations, used at prediction.
    bn_running_var_ : ndarray of shape (`n_neurons_`,)
        Biased variance of the training pre-activations.
    output_weights_ : ndarray of shape (`n_neurons_`, n_outputs)
        Read-out; each row has one non-zero entry (decoupled outputs).
    bn_weight_penalty_scale_ : ndarray of shape (`n_neurons_`,)
        ``rho_j``: the penalty of neuron ``j`` is ``(rho_j g_j)^2 + b_j^2 +
        ||v_j||^2``. Ones unless ``spectral_power > 0``.
    n_neurons_ : int
        Number of neurons (non-zero blocks of the convex solution).
    objective_ : float
        Regularised training objective of the fitted network, evaluated by a
        forward pass on the training data.
    lower_bound_ : float
        Dual lower bound of the global optimum (over all patterns) from the
        optimality certificate. Proven when the certificate enumerated every
        pattern (small rank); otherwise the certificate searched for the
        worst pattern and the bound is an estimate.
    optimality_gap_ : float
        ``(objective_ - lower_bound_) / objective_``, like ``dual_gap_`` of
        :class:`~sklearn.linear_model.Lasso` but over the whole network
        class: 0 means the fitted network is the global optimum.
    certified_ : bool
        True only when every pattern was checked and ``optimality_gap_ <=
        tol``: the fitted network is then provably the global optimum.
    n_patterns_ : int
        Number of activation patterns in the final convex program.
    n_rounds_ : int
        Solves made by column generation (1 otherwise).
    history_ : list of dict
        One entry per round of column generation (``patterns="adaptive"``;
        a single entry otherwise), like ``loss_curve_`` of
        :class:`~sklearn.neural_network.MLPRegressor`: ``n_patterns`` (of
        the round's program), ``objective`` (of its solution, per sample as
        ``objective_``), ``lower_bound`` and ``gap`` (of the round's
        certificate), ``added`` and ``dropped`` (patterns, before the next
        round) and ``time`` (seconds since the start of the fit when the
        round's network and certificate were ready; the next round's Adam
        proposal comes after). Intermediate rounds are solved to a looser
        accuracy than ``tol``; their objectives are those of feasible
        networks all the same. With ``init="adam"``, where the certificate
        searches, the rounds before the last use a smaller search than
        ``certificate_options``: their gaps are rougher estimates, and a fit
        with ``max_rounds`` ending at a round takes that round's ``time``
        plus the difference of the two searches.
    rank_ : int
        Rank of the centred training data.
    solver_ : str
        Solver used: ``"cvxpy"``, ``"torch"`` or ``"closed_form"``.
    n_iter_ : int
        Solver iterations (of the last solve with ``patterns="adaptive"``).
    n_features_in_ : int
        Number of features seen during fit.
    feature_names_in_ : ndarray of shape (`n_features_in_`,)
        Names of features seen during fit, when ``X`` has string column
        names.
"""


def _history_entry(entry, n, offset):
    """A round of column generation as ``history_`` shows it.

    Objective and bound per sample (divided by ``n``, as ``objective_``),
    the time shifted by ``offset`` to count from the start of the fit.
    """
    keys = ("n_patterns", "gap", "added", "dropped")
    out = {key: entry[key] for key in keys}
    out["objective"] = entry["objective"] / n
    out["lower_bound"] = entry["lower_bound"] / n
    out["time"] = entry["time"] + offset
    return out


def _check_weights(sample_weight, X):
    """Validated non-negative weights (None stays None).

    At least two must be positive: BN needs a batch of two samples.
    """
    if sample_weight is None:
        return None
    sample_weight = _check_sample_weight(
        sample_weight, X, dtype=np.float64, ensure_non_negative=True
    )
    if np.count_nonzero(sample_weight) < 2:
        raise ValueError(
            "sample_weight must have at least two positive entries (BN needs "
            f"a batch of two samples), got {np.count_nonzero(sample_weight)}."
        )
    return sample_weight


def _drop_zero_weights(X, Y, sample_weight):
    """Remove the samples of weight 0; None for weights that are all one.

    Returns ``X, Y, sample_weight``. Weights that are all one (after the
    zeros left) give exactly the unweighted computation, so fitting with
    them, or without the zero-weight samples, is bit-identical.
    """
    if sample_weight is None:
        return X, Y, None
    keep = sample_weight > 0
    if not keep.all():
        X, Y, sample_weight = X[keep], Y[keep], sample_weight[keep]
    if np.all(sample_weight == 1.0):
        sample_weight = None
    return X, Y, sample_weight


# Keys of certificate_options: the search effort of optimality_certificate.
_CERTIFICATE_OPTIONS = (
    "n_samples", "n_starts", "n_ascent", "n_flip_rounds", "max_checks",
)


def _check_certificate_options(options):
    """Validate ``certificate_options``; return a new dict."""
    options = dict(options or {})
    unknown = sorted(set(options) - set(_CERTIFICATE_OPTIONS))
    if unknown:
        raise ValueError(
            f"certificate_options accepts the keys {list(_CERTIFICATE_OPTIONS)}, "
            f"got {unknown}."
        )
    for name, value in options.items():
        check_scalar(value, f"certificate_options[{name!r}]", Integral, min_val=0)
    return options


class _BaseConvexBNReLU(BaseEstimator):
    """Shared fit of the convex BN-ReLU estimators."""

    _parameter_constraints = {
        "alpha": [Interval(Real, 0, None, closed="neither")],
        "n_patterns": [Interval(Integral, 1, None, closed="left")],
        "patterns": [StrOptions({"sample", "enumerate", "adaptive"})],
        "init": [StrOptions({"random", "adam"})],
        "spectral_power": [Interval(Real, 0, None, closed="left")],
        "max_patterns": [Interval(Integral, 1, None, closed="left"), None],
        "max_rounds": [Interval(Integral, 1, None, closed="left")],
        "solver": [StrOptions({"auto", "cvxpy", "torch"})],
        "solver_options": [dict, None],
        "certificate_options": [dict, None],
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
        warm_start=False,
        random_state=None,
        verbose=0,
    ):
        self.alpha = alpha
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
        self.warm_start = warm_start
        self.random_state = random_state
        self.verbose = verbose

    def _initial_point(self, X, Y, Ut, rng, sample_weight=None):
        """``n_patterns`` patterns, and the blocks of an Adam-trained net.

        With ``init="adam"`` the non-convex network of width ``n_patterns``
        is trained briefly by Adam and its neurons' activation patterns come
        first: the convex program over them contains that network, so its
        optimum is at most the network's objective, and the network itself,
        written as blocks of the program (:func:`blocks_from_network`), is
        the solver's starting point. Sampled patterns fill up any remaining
        room. With ``init="random"`` the blocks are None (start at zero).
        """
        D = sample_patterns(Ut, self.n_patterns, rng)
        if self.init == "random":
            return D, None
        C = Y.shape[1]
        fit = train_bn_relu_network(
            X, Y, loss=self.loss, alpha=self.alpha,
            n_neurons=C * -(-self.n_patterns // C), n_inits=1,
            n_steps=_ADAM_INIT_STEPS, learning_rate=_ADAM_INIT_LEARNING_RATE,
            random_state=rng, sample_weight=sample_weight, dtype=_ADAM_INIT_DTYPE,
        )
        # One initialisation: its BN outputs give both its patterns and,
        # in the program's row scaling, its blocks.
        Z = fit.bn_outputs(X, 0)
        D_adam = unique_patterns(Z >= 0)
        D = unique_patterns(np.hstack([D_adam, D]))
        D = D[:, : max(self.n_patterns, D_adam.shape[1])]
        if sample_weight is not None:
            Z = Z * np.sqrt(sample_weight)[:, None]
        return D, blocks_from_network(Z, fit.params["output"][0], Ut, D)

    def _prune(self, program, Wp, Wn):
        """Blocks of numerically zero norm set to zero, the others projected.

        Exactly feasible blocks: the recovered network then reproduces the
        program.
        """
        keep_p, keep_n = active_blocks(
            Wp, Wn, self._prune_tol, scale=np.linalg.norm(program.Y)
        )
        return program.project_to_cones(
            np.where(keep_p[..., None], Wp, 0.0), np.where(keep_n[..., None], Wn, 0.0)
        )

    def _gradient_proposal(self, X, Y, whitening, sample_weight=None):
        """``propose`` of :func:`column_generation`: Adam from each round.

        The round's blocks, pruned and projected onto their cones, are
        recovered as a network (one neuron per non-zero block), which Adam
        trains for at most ``_ADAM_ROUND_STEPS`` full-batch steps, in
        float32, until its progress stalls. The hyperplanes
        move across data points, i.e. to new activation patterns, which a
        program on fixed patterns cannot do; the convex solve then reweighs
        and prunes the neurons of both and adds new ones, which gradient
        descent cannot do.
        """

        def propose(program, result):
            Wp, Wn = self._prune(program, result.Wp, result.Wn)
            network = recover_network(whitening, Wp, Wn)
            if network.n_neurons == 0:
                return None
            fit = train_bn_relu_network(
                X, Y, loss=self.loss, alpha=self.alpha, n_inits=1,
                n_steps=_ADAM_ROUND_STEPS, learning_rate=_ADAM_ROUND_LEARNING_RATE,
                record_every=_ADAM_ROUND_RECORD, tol=_ADAM_ROUND_TOL,
                n_iter_no_change=_ADAM_ROUND_PATIENCE, sample_weight=sample_weight,
                dtype=_ADAM_ROUND_DTYPE,
                initial_params=dict(
                    hidden=network.hidden_weights, weight=network.bn_weight,
                    bias=network.bn_bias, output=network.output_weights,
                ),
            )
            Z = fit.bn_outputs(X, 0)
            if sample_weight is not None:
                Z = Z * np.sqrt(sample_weight)[:, None]
            return Z, fit.params["output"][0]

        return propose

    def _resolve_solver(self, program):
        """The solver ``"auto"`` stands for, given the program's size."""
        if self.solver != "auto":
            return self.solver
        size = program.n_samples * program.n_patterns * program.k
        return "cvxpy" if size <= _AUTO_CVXPY_MAX_SIZE else "torch"

    def _solve(self, program, W0=None, tol=None, max_iter=None):
        # ``tol``: a looser accuracy for the intermediate rounds of column
        # generation (the cvxpy route ignores it: interior-point iterations
        # are cheap near the optimum), ``max_iter`` a smaller budget.
        max_iter = self.max_iter if max_iter is None else min(max_iter, self.max_iter)
        self.solver_ = self._resolve_solver(program)
        check_memory(program, self.solver_)
        if self.solver_ == "cvxpy":
            return solve_cvxpy(
                program,
                max_iter=max_iter,
                tol=self.tol,
                solver_options=self.solver_options,
                verbose=bool(self.verbose),
            )
        options = dict(self.solver_options or {})
        dtype = options.pop("dtype", None)
        if isinstance(dtype, str):
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
            max_iter=max_iter,
            tol=self.tol if tol is None else tol,
            device=self.device,
            dtype=dtype,
            verbose=bool(self.verbose),
        )

    def _warm_start_point(self, n_samples, k):
        """Patterns and blocks of the previous fit, if it can seed this one."""
        previous = getattr(self, "_solution", None)
        if not self.warm_start or previous is None:
            return None, None
        D, Wp, Wn, spectral_power = previous
        if D.shape[0] != n_samples or Wp.shape[0] != self._n_coded_outputs:
            return None, None
        if Wp.shape[2] != k or D.shape[1] == 0:
            # Another rank, or a screened zero network (no patterns kept):
            # nothing to start from.
            return None, None
        if spectral_power != self.spectral_power:
            # The blocks live in the coordinates of the old weighting (and
            # need not lie in the new cones); the patterns are still valid.
            return D, None
        return D, (Wp, Wn)

    def _fit_all_or_nothing(self, X, Y, sample_weight=None):
        """Fit, or leave the estimator unfitted if anything interrupts it.

        A fit stopped half-way (an error, or KeyboardInterrupt during a
        long solve) must not leave a mix of old and new fitted attributes.
        """
        try:
            return self._fit_coded(X, Y, sample_weight)
        except BaseException:
            for name in list(vars(self)):
                fitted = name.endswith("_") and not name.startswith("__")
                if fitted or name in ("_network", "_solution", "_convex_objective"):
                    delattr(self, name)
            raise

    def _fit_coded(self, X, Y, sample_weight=None):
        """Fit on validated ``X`` and targets ``Y`` coded for the loss.

        Whiten, choose patterns and solve (C) (closed form, column
        generation, or one solve), prune numerically zero blocks, recover
        the network, certify it, and evaluate its objective by a forward
        pass.

        With sample weights the fit is that on data where sample ``i`` is
        repeated ``w_i`` times: samples of weight 0 are dropped (they take
        no part in the BN statistics either) and the program runs on the
        rows scaled by ``sqrt(w_i)`` (:func:`~skbnconvex._whitening.whiten`).
        """
        certificate_options = _check_certificate_options(self.certificate_options)
        start = time.perf_counter()  # of history_'s times
        # Float32 data give a float32 network (and predictions); the solve
        # stays in float64, where the solvers reach tol (the torch solver
        # in float32 stalls above tol=1e-6; solver_options={"dtype":
        # "float32"} asks for it anyway).
        self._fit_dtype = X.dtype
        X = X.astype(np.float64, copy=False)
        X, Y, sample_weight = _drop_zero_weights(
            X, Y, _check_weights(sample_weight, X)
        )
        whitening = whiten(X, sample_weight=sample_weight,
                           spectral_power=self.spectral_power)
        n = whitening.weight_sum
        loss = get_loss(self.loss, Y.shape[1], sample_weight)
        Y_coded, Y = Y, program_targets(loss, Y, sample_weight)
        sqrt_w = np.ones((X.shape[0], 1)) if sample_weight is None else np.sqrt(sample_weight)[:, None]
        Ut = whitening.Ut
        beta = self.alpha / np.sqrt(n)
        self._n_coded_outputs = Y.shape[1]
        rng = check_random_state(self.random_state)
        exact = max_patterns(X.shape[0], whitening.rank) <= _EXACT_CERTIFICATE_MAX
        mode = "exact" if exact else "search"

        certificate, self.n_rounds_ = None, 1
        dual_bounds = None  # the solver's, for the certificate (torch)
        lam0 = -loss.gradient(np.zeros_like(Y), Y)
        if beta >= np.linalg.norm(lam0, axis=0).max():
            # |lam_c^T relu(Ut z)| <= ||lam_c|| for ||z|| <= 1: the zero
            # network is dual feasible, hence optimal; no solve needed.
            D = np.zeros((X.shape[0], 0), dtype=bool)
            Wp = Wn = np.zeros((Y.shape[1], 0, Ut.shape[1]))
            self.solver_, self.n_iter_, converged, message = "none", 0, True, ""
        elif loss.name == "squared_error" and is_square(Ut):
            # rank(Xc) = n - 1: the optimum is known in closed form.
            closed = closed_form_solution(Ut, Y, beta)
            D, Wp, Wn = closed.D, closed.Wp, closed.Wn
            self.solver_, self.n_iter_, converged, message = "closed_form", 0, True, ""
        elif self.patterns == "adaptive":
            D0, W0 = self._warm_start_point(X.shape[0], Ut.shape[1])
            if D0 is None:
                D0, W0 = self._initial_point(X, Y_coded, Ut, rng, sample_weight)
            cg_start = time.perf_counter()
            solve, propose = self._solve, None
            if self.init == "adam" and self.spectral_power == 0:
                propose = self._gradient_proposal(X, Y_coded, whitening, sample_weight)

                def solve(program, W0=None, tol=None):
                    # Intermediate rounds (a tol of their own) on a budget.
                    cap = None if tol is None else _ADAM_ROUND_MAX_ITER
                    return self._solve(program, W0, tol, max_iter=cap)

            cg = column_generation(
                Ut, Y, loss, beta, solve,
                n_initial=self.n_patterns,
                initial_patterns=D0,
                initial_blocks=W0,
                max_patterns=self.max_patterns,
                max_rounds=self.max_rounds,
                tol=self.tol,
                certificate_mode=mode,
                certificate_options=certificate_options,
                propose=propose,
                random_state=rng,
                verbose=self.verbose,
            )
            D, result, certificate = cg.patterns, cg.result, cg.certificate
            Wp, Wn = result.Wp, result.Wn
            self.n_rounds_ = cg.n_rounds
            self.history_ = [_history_entry(h, n, cg_start - start) for h in cg.history]
            self.n_iter_ = result.n_iter
            converged, message = cg.converged, cg.message
        else:
            D, W0 = self._warm_start_point(X.shape[0], Ut.shape[1])
            if D is None and self.patterns == "enumerate":
                D = enumerate_patterns(Ut)
            elif D is None:
                D, W0 = self._initial_point(X, Y_coded, Ut, rng, sample_weight)
            program = ConvexProgram(Ut, D, Y, loss, beta)
            result = self._solve(program, W0)
            Wp, Wn = result.Wp, result.Wn
            dual_bounds = result.dual_bounds
            self.n_iter_ = result.n_iter
            converged = result.converged
            message = f"status: {result.message}, {result.n_iter} iterations"
        if not converged:
            warnings.warn(
                f"The fit did not reach tol={self.tol} ({message}). Increase "
                "max_iter (and max_rounds / max_patterns with "
                "patterns='adaptive') or tol, or try another solver.",
                ConvergenceWarning,
            )

        program = ConvexProgram(Ut, D, Y, loss, beta)
        if certificate is None:
            F = program.predict(Wp, Wn)
            certificate = optimality_certificate(
                Ut, F, Y, loss, beta, primal=program.objective(Wp, Wn, F), patterns=D,
                pattern_bounds=dual_bounds, blocks=(Wp, Wn),
                mode=mode, tol=self.tol, random_state=rng, **certificate_options,
            )
            self.history_ = [_history_entry(
                {"n_patterns": D.shape[1], "objective": certificate.primal,
                 "lower_bound": certificate.lower_bound, "gap": certificate.gap,
                 "added": 0, "dropped": 0, "time": time.perf_counter()}, n, -start)]
        # The dual bound holds whatever point it comes from, so it is taken
        # at the solver's point, and the gap below is that of the pruned
        # network actually returned.
        Wp, Wn = self._prune(program, Wp, Wn)
        convex_value = program.objective(Wp, Wn)
        network = recover_network(whitening, Wp, Wn)
        # The objective of the recovered network by a plain forward pass on
        # the training data: what the user gets, not what the solver says.
        # (The loss objects take the outputs scaled by sqrt(w).)
        F = network.forward(X)
        objective = (loss.value(sqrt_w * F, Y) + 0.5 * self.alpha * network.penalty()) / n
        if self._fit_dtype == np.float32:
            network = network.astype(np.float32)

        self._network = network
        # Kept for warm starts: the patterns depend on the training data, so
        # they are reused only when refitting on data of the same shape (and
        # the blocks only with the same spectral weighting).
        self._solution = (D, Wp, Wn, self.spectral_power)
        self.hidden_weights_ = network.hidden_weights
        self.bn_weight_ = network.bn_weight
        self.bn_bias_ = network.bn_bias
        self.bn_running_mean_ = network.bn_running_mean
        self.bn_running_var_ = network.bn_running_var
        self.output_weights_ = network.output_weights
        self.bn_weight_penalty_scale_ = network.weight_penalty_scale
        self.n_neurons_ = network.n_neurons
        self.n_patterns_ = D.shape[1]
        self.rank_ = whitening.rank
        self.objective_ = objective
        self._convex_objective = convex_value / n
        self.lower_bound_ = certificate.lower_bound / n
        self.optimality_gap_ = max(
            (self.objective_ - self.lower_bound_) / max(abs(self.objective_), 1e-300), 0.0
        )
        self.certified_ = bool(certificate.exact and self.optimality_gap_ <= self.tol)
        return self

    def _forward(self, X):
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, dtype=(np.float64, np.float32))
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
"""
        + _PARAMS_DOC
        + r"""
    Attributes
    ----------
"""
        + _ATTRIBUTES_DOC
        + r"""    n_outputs_ : int
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
        warm_start=False,
        random_state=None,
        verbose=0,
    ):
        super().__init__(
            alpha=alpha,
            loss=loss,
            n_patterns=n_patterns,
            patterns=patterns,
            init=init,
            spectral_power=spectral_power,
            max_patterns=max_patterns,
            max_rounds=max_rounds,
            solver=solver,
            solver_options=solver_options,
            device=device,
            max_iter=max_iter,
            tol=tol,
            certificate_options=certificate_options,
            warm_start=warm_start,
            random_state=random_state,
            verbose=verbose,
        )

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y, sample_weight=None):
        """Fit the network to its global optimum over the patterns.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training data (dense; at least two samples). Float32 data give
            a float32 network and float32 predictions (the solve itself is
            in float64 unless ``solver_options`` asks otherwise).
        y : array-like of shape (n_samples,) or (n_samples, n_outputs)
            Targets.
        sample_weight : array-like of shape (n_samples,), default=None
            Non-negative weights: the fit equals the fit on data where
            sample ``i`` is repeated ``sample_weight[i]`` times (the loss,
            the BN batch statistics and the ``1/n`` scaling are weighted),
            for non-integer weights too. Samples of weight 0 are ignored.

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
            dtype=(np.float64, np.float32),
            ensure_min_samples=2,
        )
        Y = y.reshape(-1, 1) if y.ndim == 1 else y
        self.n_outputs_ = Y.shape[1]
        self._y_1d = y.ndim == 1
        return self._fit_all_or_nothing(X, Y.astype(np.float64), sample_weight)

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
"""
        + _PARAMS_DOC
        + r"""
    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        Class labels.
"""
        + _ATTRIBUTES_DOC
        + r"""
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
        warm_start=False,
        random_state=None,
        verbose=0,
    ):
        super().__init__(
            alpha=alpha,
            loss=loss,
            n_patterns=n_patterns,
            patterns=patterns,
            init=init,
            spectral_power=spectral_power,
            max_patterns=max_patterns,
            max_rounds=max_rounds,
            solver=solver,
            solver_options=solver_options,
            device=device,
            max_iter=max_iter,
            tol=tol,
            certificate_options=certificate_options,
            warm_start=warm_start,
            random_state=random_state,
            verbose=verbose,
        )

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y, sample_weight=None):
        """Fit the network to its global optimum over the patterns.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training data (dense; at least two samples). Float32 data give
            a float32 network and float32 predictions (the solve itself is
            in float64 unless ``solver_options`` asks otherwise).
        y : array-like of shape (n_samples,)
            Class labels (at least two classes).
        sample_weight : array-like of shape (n_samples,), default=None
            Non-negative weights: the fit equals the fit on data where
            sample ``i`` is repeated ``sample_weight[i]`` times (the loss,
            the BN batch statistics and the ``1/n`` scaling are weighted),
            for non-integer weights too. Samples of weight 0 are ignored.

        Returns
        -------
        self : object
            Fitted estimator.
        """
        X, y = validate_data(
            self, X, y, dtype=(np.float64, np.float32), ensure_min_samples=2
        )
        if y.dtype == object:
            kinds = {isinstance(label, str) for label in y}
            if len(kinds) > 1:
                raise ValueError(
                    "Mix of label input types (string and number) in y: "
                    "convert the labels to one type, e.g. y.astype(str)."
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
        return self._fit_all_or_nothing(X, Y, sample_weight)

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
