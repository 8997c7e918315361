"""Convex losses of the network output, on the scale of the convex program.

Every loss is written as a *sum* over samples, ``L(F) = sum_i l(F_i, Y_i)``,
because that is the scale of the convex program (C) of Ergen et al. (2022).
The estimators report ``L(F) / n_samples`` plus the penalty, which is exactly
the objective of :class:`sklearn.neural_network.MLPRegressor` /
:class:`~sklearn.neural_network.MLPClassifier` (mean loss, squared error
halved and averaged over outputs).

Each loss knows its value, its gradient with respect to the output ``F``, its
Fenchel dual ``-L^*(-Lambda)`` (used for the lower bound of the optimality
certificate) and its cvxpy and torch expressions. Targets ``Y`` are always a
2-D float array of shape ``(n_samples, n_outputs)`` coded by the estimator:
real values for the squared loss, ``+-1`` in one column for the binary
logistic loss, one-hot rows for the multinomial loss.

*Sample weights.* The program with sample weights ``w`` works on the rows
of the whitened data scaled by ``sqrt(w_i)`` (:func:`~skbnconvex._whitening.whiten`),
so its outputs are ``F_i = sqrt(w_i) f_i``. The log losses then take
``sample_weight`` and are ``L(F) = sum_i w_i l(F_i / sqrt(w_i))``: the
weighted loss of the network's outputs ``f``. Their curvature in ``F`` is
that of the unweighted loss (``w_i`` times ``1 / w_i``), so step sizes do not
change. The squared loss needs no weights: ``sum_i w_i (f_i - y_i)^2 =
||F - sqrt(w) y||^2``, so the targets are scaled instead
(:func:`program_targets`).
"""

# Authors: the skbnconvex developers
# License: BSD 3 clause

import numpy as np
from scipy.special import expit, log_softmax, logsumexp, softmax, xlogy


class SquaredLoss:
    r"""Half squared error averaged over outputs.

    .. math:: L(F) = \frac{1}{2C} \|F - Y\|_F^2

    with ``C`` the number of outputs (columns of ``Y``), as in
    :class:`~sklearn.neural_network.MLPRegressor`.
    """

    name = "squared_error"
    #: Whether the loss is a sum of independent per-output terms, so that the
    #: decoupled program splits into one program per output.
    separable = True
    #: Whether the Hessian in ``F`` is constant (the same at every point).
    quadratic = True

    def value(self, F, Y):
        return 0.5 * np.sum((F - Y) ** 2) / Y.shape[1]

    def gradient(self, F, Y):
        return (F - Y) / Y.shape[1]

    def dual(self, lam, Y):
        """Return ``-L^*(-lam)``, a lower bound when ``lam`` is dual feasible."""
        C = Y.shape[1]
        return float(np.sum(lam * Y) - 0.5 * C * np.sum(lam**2))

    def cvxpy_value(self, F, Y, n_outputs=None):
        # ``n_outputs`` lets a solver pass one column of a multi-output
        # problem and keep the 1/(2C) scaling of the whole.
        import cvxpy as cp

        C = Y.shape[1] if n_outputs is None else n_outputs
        return cp.sum_squares(F - Y) / (2.0 * C)

    def torch_value(self, F, Y):
        return 0.5 * ((F - Y) ** 2).sum() / Y.shape[1]

    def torch_gradient(self, F, Y):
        return (F - Y) / Y.shape[1]

    def torch_hessian(self, F, Y):
        """Hessian of each sample's term in its row of ``F``: ``I / C``.

        Returned as ``(h, p)`` with ``p = None`` (no coupling), see
        :func:`torch_parameter_hessian`.
        """
        import torch

        return torch.full_like(F, 1.0 / Y.shape[1]), None


class _WeightedLogLoss:
    """Sample weights of a log loss, in the program's output scale."""

    quadratic = False

    def __init__(self, sample_weight=None):
        self.sample_weight = sample_weight
        if sample_weight is None:
            self._w = self._sqrt_w = None
        else:
            w = np.asarray(sample_weight, dtype=np.float64)
            self._w, self._sqrt_w = w[:, None], np.sqrt(w)[:, None]
        self._torch_cache = {}

    def _unscale(self, F):
        """The network outputs ``f = F / sqrt(w)`` of program outputs ``F``."""
        return F if self._sqrt_w is None else F / self._sqrt_w

    def _weighted_sum(self, values):
        return float(np.sum(values if self._w is None else self._w * values))

    def _torch_weights(self, like):
        """``(w, sqrt(w))`` as tensors of the device and dtype of ``like``."""
        key = (like.device, like.dtype)
        if key not in self._torch_cache:
            import torch

            self._torch_cache[key] = tuple(
                torch.as_tensor(a, device=like.device, dtype=like.dtype)
                for a in (self._w, self._sqrt_w)
            )
        return self._torch_cache[key]


class BinaryLogLoss(_WeightedLogLoss):
    r"""Logistic loss for labels :math:`y \in \{-1, +1\}` (one output).

    .. math:: L(f) = \sum_i w_i \log(1 + e^{-y_i f_i / \sqrt{w_i}})

    with ``w = 1`` unless ``sample_weight`` is given (see the module notes).
    """

    name = "log_loss"
    separable = True

    def value(self, F, Y):
        return self._weighted_sum(np.logaddexp(0.0, -Y * self._unscale(F)))

    def gradient(self, F, Y):
        G = -Y * expit(-Y * self._unscale(F))
        return G if self._sqrt_w is None else self._sqrt_w * G

    def dual(self, lam, Y):
        # -L^*(-lam) = sum_i w_i (-l^*(-lam_i / sqrt(w_i))) and, for one
        # sample, lam = y u with u in [0, 1] gives the binary entropy of u.
        u = np.clip(Y * self._unscale(lam), 0.0, 1.0)
        return -self._weighted_sum(xlogy(u, u) + xlogy(1.0 - u, 1.0 - u))

    def cvxpy_value(self, F, Y, n_outputs=None):
        import cvxpy as cp

        if self._w is None:
            return cp.sum(cp.logistic(-cp.multiply(Y, F)))
        return cp.sum(cp.multiply(self._w, cp.logistic(-cp.multiply(Y / self._sqrt_w, F))))

    def torch_value(self, F, Y):
        import torch

        if self._w is None:
            return torch.nn.functional.softplus(-Y * F).sum()
        w, sqrt_w = self._torch_weights(F)
        return (w * torch.nn.functional.softplus(-Y * F / sqrt_w)).sum()

    def torch_gradient(self, F, Y):
        import torch

        if self._w is None:
            return -Y * torch.sigmoid(-Y * F)
        _, sqrt_w = self._torch_weights(F)
        return -sqrt_w * Y * torch.sigmoid(-Y * F / sqrt_w)

    def torch_hessian(self, F, Y):
        """Hessian of each sample's term in ``F``: ``sigma (1 - sigma)``.

        Sample weights cancel (``w_i`` times ``1 / w_i``). Returned as
        ``(h, None)`` (no coupling).
        """
        import torch

        if self._w is not None:
            F = F / self._torch_weights(F)[1]
        s = torch.sigmoid(Y * F)
        return s * (1.0 - s), None

    @staticmethod
    def proba(F):
        return expit(F)


class MultinomialLogLoss(_WeightedLogLoss):
    r"""Softmax cross-entropy for one-hot targets.

    .. math:: L(F) = \sum_i w_i \Big(\log \sum_c e^{F_{ic} / \sqrt{w_i}}
              - F_{i y_i} / \sqrt{w_i}\Big)

    with ``w = 1`` unless ``sample_weight`` is given (see the module notes).
    The outputs are coupled by the softmax, so the decoupled program is one
    joint (still convex) program over all outputs.
    """

    name = "log_loss"
    separable = False

    def value(self, F, Y):
        F = self._unscale(F)
        return self._weighted_sum(logsumexp(F, axis=1, keepdims=True)) - self._weighted_sum(Y * F)

    def gradient(self, F, Y):
        G = softmax(self._unscale(F), axis=1) - Y
        return G if self._sqrt_w is None else self._sqrt_w * G

    def dual(self, lam, Y):
        # Y - lam / sqrt(w) must be a probability vector per row; the value
        # is the weighted sum of its entropies.
        p = np.clip(Y - self._unscale(lam), 0.0, 1.0)
        return -self._weighted_sum(xlogy(p, p))

    def cvxpy_value(self, F, Y):
        import cvxpy as cp

        if self._w is None:
            return cp.sum(cp.log_sum_exp(F, axis=1)) - cp.sum(cp.multiply(Y, F))
        C = Y.shape[1]
        inv = np.repeat(1.0 / self._sqrt_w, C, axis=1)
        G = cp.multiply(inv, F)
        return (cp.sum(cp.multiply(self._w.ravel(), cp.log_sum_exp(G, axis=1)))
                - cp.sum(cp.multiply(self._w * Y, G)))

    def torch_value(self, F, Y):
        if self._w is None:
            return -(Y * F.log_softmax(dim=1)).sum()
        w, sqrt_w = self._torch_weights(F)
        return -(w * Y * (F / sqrt_w).log_softmax(dim=1)).sum()

    def torch_gradient(self, F, Y):
        import torch

        if self._w is None:
            return torch.softmax(F, dim=1) - Y
        _, sqrt_w = self._torch_weights(F)
        return sqrt_w * (torch.softmax(F / sqrt_w, dim=1) - Y)

    def torch_hessian(self, F, Y):
        """Hessian of each sample's term in its row of ``F``: ``diag(p) - p p^T``.

        ``p`` is the softmax of the network's outputs (sample weights
        cancel); returned as ``(h, p) = (p, p)``.
        """
        import torch

        if self._w is not None:
            F = F / self._torch_weights(F)[1]
        p = torch.softmax(F, dim=1)
        return p, p

    @staticmethod
    def proba(F):
        return np.exp(log_softmax(F, axis=1))


def torch_parameter_hessian(loss, F, Y, J, out, gram_dtype=None):
    """Hessian of ``L(F)`` in parameters ``x`` that move one output each.

    Column ``j`` of ``J`` (shape ``(n, T)``) is the change of
    ``F[:, out[j]]`` per unit of ``x_j``. Every loss has, in the row
    ``F_i``, the Hessian ``diag(h_i) - p_i p_i^T`` (``loss.torch_hessian``;
    ``p`` is None for the separable losses), so the Hessian in ``x`` is
    ``J^T diag(h[:, out]) J`` restricted to equal outputs, minus
    ``(p[:, out] J)^T (p[:, out] J)``. Shape ``(T, T)``.

    Computed on the rows of ``J^T`` grouped by output (sorted here unless
    ``out`` is; no copy when ``J`` is the transpose of a contiguous
    ``(T, n)`` tensor, as the Newton steps on the faces pass it): the rows
    are scaled output by output, without gathering ``h`` or ``p``, and each
    output's block is a product of row slices. Letter's Newton systems
    (16 000 rows, 26 outputs, ``T = 316``): 111 ms -> 48 ms, timed alone.

    ``gram_dtype`` (default: ``J``'s) is the precision of the product of
    the ``p`` term, the one full ``(T, n) x (n, T)`` product.
    """
    import torch

    h, p = loss.torch_hessian(F, Y)
    T = J.shape[1]
    JT = J.T
    order = None
    if T > 1 and bool((out[1:] < out[:-1]).any()):
        order = torch.argsort(out, stable=True)
        JT, out = JT[order], out[order]
    JT = JT.contiguous()
    groups = output_groups(out)

    def scaled(w):
        # The rows of J^T times w[:, out] (w as (C, n)), output by output.
        B = torch.empty_like(JT)
        for c, sl in groups:
            torch.mul(JT[sl], w[c], out=B[sl])
        return B

    Jh = scaled(h.T.contiguous())
    if p is None:
        H = torch.zeros((T, T), dtype=J.dtype, device=J.device)
    else:
        Jp = Jh if p is h else scaled(p.T.contiguous())
        if gram_dtype is not None:
            Jp = Jp.to(gram_dtype)
        H = (Jp @ Jp.T).to(J.dtype).neg_()
    # The first term only between columns of one output: one product per
    # output, not a full (T, T) product masked afterwards.
    for _, sl in groups:
        H[sl, sl] += JT[sl] @ Jh[sl].T
    if order is not None:
        inv = torch.empty_like(order)
        inv[order] = torch.arange(T, device=order.device)
        H = H[inv][:, inv]
    return H


def output_groups(out):
    """``[(c, slice)]``: the runs of equal values of a sorted tensor ``out``."""
    import torch

    values, counts = torch.unique_consecutive(out, return_counts=True)
    ends = np.cumsum(counts.tolist())
    return [
        (c, slice(e - m, e)) for c, m, e in zip(values.tolist(), counts.tolist(), ends)
    ]


def program_targets(loss, Y, sample_weight=None):
    """Targets of the program for ``loss`` with sample weights.

    The squared loss of the program's outputs ``F = sqrt(w) f`` is
    ``||F - sqrt(w) Y||^2 / (2C) = sum_i w_i ||f_i - Y_i||^2 / (2C)``: its
    targets are scaled. The log losses carry the weights themselves.
    """
    if sample_weight is None or loss.name != "squared_error":
        return Y
    return np.sqrt(sample_weight)[:, None] * Y


def get_loss(name, n_outputs, sample_weight=None):
    """Return the loss object for an estimator's ``loss`` and output count.

    ``sample_weight`` goes to the log losses; for the squared loss scale the
    targets with :func:`program_targets`.
    """
    if name == "squared_error":
        return SquaredLoss()
    if name == "log_loss":
        if n_outputs == 1:
            return BinaryLogLoss(sample_weight)
        return MultinomialLogLoss(sample_weight)
    raise ValueError(
        f"Unknown loss {name!r}; use 'squared_error' or 'log_loss'."
    )
