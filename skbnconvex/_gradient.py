"""Gradient training of the non-convex BN-ReLU network, the baseline.

The convex estimators claim the global optimum of a network that one could
also train by gradient descent. This module trains that very network,
``Linear -> BatchNorm1d (train mode, full batch) -> ReLU -> Linear``, with
the same objective as the estimators, from several random initialisations
at once (the initialisations are a batch dimension), so that benchmarks,
examples and tests can compare both on equal terms.
"""

# Authors: the skbnconvex developers
# License: BSD 3 clause

from dataclasses import dataclass

import numpy as np
import torch
from sklearn.utils import check_random_state

from ._losses import get_loss, program_targets


class _Workspace:
    """Buffers of the hidden layer's activations, reused at every step.

    Large fresh tensors are expensive on Linux: glibc maps every block above
    32 MB afresh and unmaps it when freed, so each new ``(n, m)`` tensor
    page-faults in again (letter's proposals, 16 000 rows x 3 562 neurons in
    float32, one thread, timed alone: a ReLU over fresh memory 108 ms, over
    reused memory 10 ms). The activations are stored transposed, ``(R, m,
    n)``: the product ``W^T Xc^T`` with its inner dimension ``d`` runs twice
    as fast in that layout (51 ms instead of 106 ms at that shape), and the
    neurons of one output are contiguous rows (they are ordered by the output
    they feed, ``groups[c]`` the rows of output ``c``).

    :meth:`forward` computes the hidden layer with its decoupled read-out,
    ``F[:, :, c] = relu(Xc W + b)[:, :, groups[c]] @ v[:, groups[c]]``, one
    product per output (``n m`` operations where a dense ``(m, n_outputs)``
    read-out matrix takes ``n m n_outputs``), and :meth:`backward` its
    gradients, by hand into the buffers (autograd would allocate every
    ``(n, m)`` intermediate afresh; letter's proposal shape above: 0.19 s a
    step instead of 1.0 s).
    """

    def __init__(self, Xc, R, m, groups, dtype):
        n = Xc.shape[0]
        self.Xc = Xc
        self.XcT = Xc.t().contiguous().expand(R, -1, -1)
        self.groups = groups
        self.A = torch.empty(R, m, n, dtype=dtype)  # relu(Xc W + b)^T
        self.dA = torch.empty(R, m, n, dtype=dtype)

    def forward(self, W, b, v):
        """Outputs ``F`` of shape ``(R, n, n_outputs)``; keeps the activations."""
        A = self.A
        torch.baddbmm(b[:, :, None], W.transpose(1, 2), self.XcT, out=A)
        A.relu_()
        R, _, n = A.shape
        F = A.new_zeros(R, len(self.groups), n)
        for c, (s, e) in enumerate(self.groups):
            if e > s:
                F[:, c] = torch.bmm(v[:, None, s:e], A[:, s:e])[:, 0]
        return F.transpose(1, 2)

    def backward(self, dF, v):
        """Gradients ``(dW, db, dv)`` of ``sum(dF * F)`` at the last
        :meth:`forward` (whose activations are still in the buffers)."""
        A, dA = self.A, self.dA
        G = dF.transpose(1, 2).contiguous()  # (R, n_outputs, n)
        dv = torch.zeros_like(v)
        for c, (s, e) in enumerate(self.groups):
            if e > s:
                dv[:, s:e] = torch.bmm(A[:, s:e], G[:, c, :, None])[:, :, 0]
                torch.mul(v[:, s:e, None], G[:, c : c + 1], out=dA[:, s:e])
        # ReLU's own backward, in place: zero where the activation is 0
        # (one pass; a boolean mask and masked_fill_ took 15 times longer,
        # timed alone at letter's shape).
        torch.ops.aten.threshold_backward.grad_input(dA, A, 0, grad_input=dA)
        # dW = Xc^T dA^T, formed as (d, m) directly: the product into the
        # transposed (m, d) layout took 2.3 times longer (float64, n = 500,
        # d = 20, m = 512, one thread: 0.63 ms instead of 0.27 ms).
        dW = torch.matmul(self.XcT, dA.transpose(1, 2))
        return dW, dA.sum(2), dv


@dataclass
class GradientFit:
    """Result of :func:`train_bn_relu_network`.

    Attributes
    ----------
    objectives : ndarray of shape (n_inits,)
        Final objective of every initialisation.
    history : ndarray of shape (n_records, n_inits)
        Objective every ``record_every`` steps (first row: initialisation).
    times : ndarray of shape (n_records,)
        Wall-clock seconds at each record.
    params : dict of ndarray
        ``hidden`` (n_inits, n_features, m), ``weight``, ``bias``
        (n_inits, m), ``output`` (n_inits, m, n_outputs).
    """

    objectives: np.ndarray
    history: np.ndarray
    times: np.ndarray
    params: dict

    def activation_patterns(self, X):
        """Activation patterns of every neuron of every initialisation.

        Returns the boolean matrix ``relu'(BN(X w_j)) > 0`` of shape
        ``(n_samples, n_inits * n_neurons)``, BN with the training batch's
        statistics: the patterns that the trained networks use, hence a set
        of patterns on which the convex program contains these networks.
        """
        n_inits = len(self.objectives)
        return np.concatenate(
            [self.bn_outputs(X, r) >= 0 for r in range(n_inits)], axis=1
        )

    def bn_outputs(self, X, init=None):
        """BN outputs of the hidden neurons of initialisation ``init`` (the
        best if None) on ``X``, with the training batch's statistics."""
        r = int(np.argmin(self.objectives)) if init is None else init
        p = {key: value[r] for key, value in self.params.items()}
        # The guard of the training forward pass (a constant neuron has zero
        # variance: its output is then 0, not 0 / 0).
        tiny = np.finfo(p["var"].dtype).tiny
        Z = (X @ p["hidden"] - p["mean"]) / np.sqrt(p["var"] + tiny)
        return Z * p["weight"] + p["bias"]

    def forward(self, X, init=None):
        """Eval-mode output of initialisation ``init`` (the best if None).

        BN uses the statistics of the training batch, as stored during
        training in ``params["mean"]`` and ``params["var"]``.
        """
        r = int(np.argmin(self.objectives)) if init is None else init
        return np.maximum(self.bn_outputs(X, r), 0.0) @ self.params["output"][r]


def train_bn_relu_network(
    X,
    Y,
    *,
    loss="squared_error",
    alpha=1e-4,
    n_neurons=32,
    n_inits=8,
    optimizer="adam",
    learning_rate=1e-2,
    momentum=0.9,
    n_steps=2000,
    lbfgs_steps=0,
    record_every=50,
    tol=None,
    n_iter_no_change=1,
    random_state=None,
    dtype=None,
    sample_weight=None,
    initial_params=None,
):
    """Train the non-convex BN-ReLU network by full-batch gradient methods.

    Minimises, for every initialisation independently,

    .. math::

        \\frac{1}{n} \\sum_i \\ell(f(x_i), y_i)
        + \\frac{\\alpha}{2n} \\sum_j (g_j^2 + b_j^2 + \\|v_j\\|^2)

    with BN in training mode on the full batch (biased variance, no eps),
    which is the objective of the convex estimators. With several outputs
    the neurons are split evenly between outputs (decoupled read-out), as in
    the convex model.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
    Y : ndarray of shape (n_samples, n_outputs)
        Targets coded for the loss (``+-1`` column for binary log loss,
        one-hot for multinomial).
    loss : {"squared_error", "log_loss"}, default="squared_error"
    alpha : float, default=1e-4
    n_neurons : int, default=32
        Width; a multiple of ``n_outputs``.
    n_inits : int, default=8
        Independent random initialisations trained together.
    optimizer : {"adam", "sgd"}, default="adam"
        ``"sgd"`` is gradient descent with (heavy-ball) ``momentum``.
    learning_rate : float, default=1e-2
    momentum : float, default=0.9
    n_steps : int, default=2000
        Steps of ``optimizer``.
    lbfgs_steps : int, default=0
        L-BFGS steps after the first-order steps, to converge tightly.
    record_every : int, default=50
        Steps between two records of the objectives (``history``).
    tol : float, default=None
        Early stopping, as in MLPRegressor but over records: a record makes
        no progress when the best objective over the initialisations is
        not below ``(1 - tol)`` times the best of all earlier records, and
        training stops after ``n_iter_no_change`` such records in a row.
        None: all ``n_steps``.
    n_iter_no_change : int, default=1
        Records without progress before stopping (with ``tol``); Adam's
        objective is not monotone, so a few ride out its bumps.
    random_state : int, RandomState instance or None, default=None
    dtype : torch.dtype, default=None
        ``torch.float64`` when None.
    sample_weight : ndarray of shape (n_samples,), default=None
        Positive sample weights: the loss, the ``1/n`` scaling (``n`` the
        sum of the weights) and the BN batch statistics are weighted, as on
        data where sample ``i`` is repeated ``w_i`` times.
    initial_params : dict, default=None
        Start from this network instead of random weights: ``hidden``
        (n_features, m), ``weight``, ``bias`` (m,) and ``output``
        (m, n_outputs) with one non-zero per row (the output the neuron
        feeds; a zero row feeds ``j % n_outputs``), e.g. the fields of a
        :class:`~skbnconvex._recovery.BNReLUNetwork`. ``n_neurons`` and
        ``random_state`` are then ignored, and every initialisation starts
        there (use ``n_inits=1``).

    Returns
    -------
    fit : GradientFit
    """
    import time

    dtype = torch.float64 if dtype is None else dtype
    rng = check_random_state(random_state)
    X = np.asarray(X, dtype=np.float64)
    Y = np.asarray(Y, dtype=np.float64)
    n, d = X.shape
    C = Y.shape[1]
    if initial_params is None and n_neurons % C:
        raise ValueError(
            f"n_neurons={n_neurons} must be a multiple of n_outputs={C}."
        )
    loss_obj = get_loss(loss, C, sample_weight)
    Yt = torch.as_tensor(program_targets(loss_obj, Y, sample_weight), dtype=dtype)
    w = np.ones(n) if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
    n = float(w.sum())
    # Weights of the batch statistics, and sqrt(w) that maps the network's
    # outputs to the loss objects' scale (see skbnconvex._losses).
    batch_w = w / n
    sqrt_w = torch.as_tensor(np.sqrt(w), dtype=dtype)[:, None]
    # BN follows a linear layer on the full batch, so its statistics are
    # those of the data: mean_j = xbar^T h_j and var_j = h_j^T Sigma h_j
    # (Sigma the weighted covariance of X, in float64 once). The forward
    # pass is then Xc (h_j g_j / sd_j) + b_j, one product and a ReLU over
    # the (n, m) activations instead of some ten elementwise passes for the
    # statistics and the normalisation, and their backward passes (energy's
    # shape at width 2 380, float64: 90 -> 21 ms a step; see
    # benchmarks/bench_gradient.py).
    xbar = batch_w @ X
    Xc_np = X - xbar
    Xc = torch.as_tensor(Xc_np, dtype=dtype)
    Sigma = torch.as_tensor((Xc_np * batch_w[:, None]).T @ Xc_np)
    R = n_inits
    # Guards the BN of a constant neuron (1e-300 would be 0 in float32).
    tiny = torch.finfo(dtype).tiny

    def init(*shape, scale):
        return torch.as_tensor(rng.standard_normal(shape) * scale, dtype=dtype)

    if initial_params is None:
        m = n_neurons
        # PyTorch's default-like scales: hidden ~ 1/sqrt(d), BN weight 1,
        # bias 0, read-out ~ 1/sqrt(m).
        hidden = init(R, d, m, scale=1 / np.sqrt(d))
        weight = torch.ones(R, m, dtype=dtype)
        bias = torch.zeros(R, m, dtype=dtype)
        output = init(R, m, C, scale=1 / np.sqrt(m))
        feeds = np.arange(m) % C
    else:
        start = [np.asarray(initial_params[key], dtype=np.float64)
                 for key in ("hidden", "weight", "bias", "output")]
        m = start[0].shape[1]
        hidden, weight, bias, output = (
            torch.as_tensor(np.broadcast_to(a, (R,) + a.shape).copy(), dtype=dtype)
            for a in start
        )
        out0 = start[3]
        feeds = np.where(np.abs(out0).max(1) > 0, np.abs(out0).argmax(1), np.arange(m) % C)
    # Neurons in the order of the outputs they feed (stable: within an
    # output, the given order), so that each output reads contiguous
    # columns; the fitted parameters are returned in the given order.
    order = np.argsort(feeds, kind="stable")
    hidden, weight, bias, output = (
        hidden[:, :, order], weight[:, order], bias[:, order], output[:, order]
    )
    feeds = feeds[order]
    ends = np.searchsorted(feeds, np.arange(C), side="right")
    groups = [(int(s), int(e)) for s, e in zip(np.r_[0, ends[:-1]], ends)]
    # Decoupled read-out: neuron j's one weight, to output feeds[j].
    readout = output[:, torch.arange(m), torch.as_tensor(feeds)]  # (R, m)
    params = [hidden, weight, bias, readout]
    work = _Workspace(Xc, R, m, groups, dtype)

    def network():
        """Outputs ``F`` (R, n, C) and what the gradients reuse."""
        # BN's variance h^T Sigma h in float64 (O(d^2 m)): in float32 its
        # relative error would grow with the square of the neuron's
        # conditioning ||Sigma||^(1/2) ||h|| / sd, where that of the textbook
        # forward pass grows with its first power. Clipped at 0 against
        # round-off (Sigma is PSD).
        h = hidden.double()
        Sh = torch.matmul(Sigma, h)
        raw = (Sh * h).sum(dim=1)
        sd = torch.sqrt(raw.clamp_min(0.0) + tiny)
        scale = weight / sd.to(dtype)  # (R, m)
        # (X h - mean) / sd * g + b = Xc (h g / sd) + b.
        F = work.forward(hidden * scale[:, None, :], bias, readout)
        return F, (Sh, raw, sd, scale)

    def objectives(F):
        values = torch.stack([loss_obj.torch_value(sqrt_w * F[r], Yt) for r in range(R)])
        pen = (weight**2).sum(1) + (bias**2).sum(1) + (readout**2).sum(1)
        return (values + 0.5 * alpha * pen) / n

    def set_gradients(F, cache):
        """The objectives' gradients into the parameters' ``.grad``.

        By hand, not by autograd, whose graph of the twenty small
        operations around the hidden layer cost 15-35% of a step at the
        estimators' sizes (one thread, 1 000 steps on n = 500, d = 20: 512
        neurons in float64, the shape of ``init="adam"``'s warm-up, 2.01 s
        with autograd and 1.71 s by hand; a proposal of 288 neurons in
        float32, 1.13 s and 0.75 s).
        Checked against autograd of the textbook BN network, under Adam and
        under gradient descent (``tests/test_recovery.py``).
        """
        Sh, raw, sd, scale = cache
        dF = torch.stack(
            [sqrt_w * loss_obj.torch_gradient(sqrt_w * F[r], Yt) for r in range(R)]
        ) / n
        dW, db, dv = work.backward(dF, readout)
        # W = h * scale with scale = g / sd and sd = sqrt(h^T Sigma h + tiny).
        dscale = (dW * hidden).sum(dim=1)
        sd_t = sd.to(dtype)
        # d var = -dscale g / sd^2 / (2 sd), zero where the variance was
        # clipped (as clamp_min's own derivative); in float64, as var.
        dvar = (-dscale * scale / sd_t).double() / (2.0 * sd) * (raw >= 0)
        hidden.grad = dW * scale[:, None, :] + (2.0 * Sh * dvar[:, None, :]).to(dtype)
        weight.grad = dscale / sd_t + (alpha / n) * weight
        bias.grad = db + (alpha / n) * bias
        readout.grad = dv + (alpha / n) * readout

    if optimizer == "adam":
        opt = torch.optim.Adam(params, lr=learning_rate)
    elif optimizer == "sgd":
        opt = torch.optim.SGD(params, lr=learning_rate, momentum=momentum)
    else:
        raise ValueError(f"optimizer must be 'adam' or 'sgd', got {optimizer!r}.")

    start = time.perf_counter()
    history, times = [], []

    def record():
        history.append(objectives(network()[0]).numpy().copy())
        times.append(time.perf_counter() - start)

    record()
    stalled = 0  # records in a row without progress (tol)
    for step in range(1, n_steps + 1):
        set_gradients(*network())
        opt.step()
        if step % record_every == 0:
            record()
            if tol is not None:
                best = np.min(history, axis=1)
                progress = best[-1] < (1.0 - tol) * best[:-1].min()
                stalled = 0 if progress else stalled + 1
                if stalled >= n_iter_no_change:
                    break
    if lbfgs_steps:
        lbfgs = torch.optim.LBFGS(
            params, lr=1.0, max_iter=lbfgs_steps, tolerance_grad=1e-14,
            tolerance_change=1e-16, history_size=50, line_search_fn="strong_wolfe",
        )

        def closure():
            F, cache = network()
            set_gradients(F, cache)
            return objectives(F).sum()

        lbfgs.step(closure)
        record()
    mean = torch.matmul(torch.as_tensor(xbar, dtype=dtype), hidden)
    F, (_, raw, _, _) = network()
    var = raw.clamp_min(0.0).to(dtype)
    final = objectives(F).numpy()
    given = np.argsort(order)  # back to the given order of the neurons
    mask = torch.zeros(m, C, dtype=dtype)
    mask[torch.arange(m), torch.as_tensor(feeds)] = 1.0
    fitted = {
        "hidden": hidden.numpy()[:, :, given],
        "weight": weight.numpy()[:, given],
        "bias": bias.numpy()[:, given],
        "output": (readout[:, :, None] * mask).numpy()[:, given],
        "mean": mean.numpy()[:, given],
        "var": var.numpy()[:, given],
    }
    return GradientFit(final, np.array(history), np.array(times), fitted)
