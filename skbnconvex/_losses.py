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


class BinaryLogLoss:
    r"""Logistic loss for labels :math:`y \in \{-1, +1\}` (one output).

    .. math:: L(f) = \sum_i \log(1 + e^{-y_i f_i})
    """

    name = "log_loss"
    separable = True

    def value(self, F, Y):
        return float(np.sum(np.logaddexp(0.0, -Y * F)))

    def gradient(self, F, Y):
        return -Y * expit(-Y * F)

    def dual(self, lam, Y):
        # lam = y * u with u in [0, 1]; -L^*(-lam) = sum of binary entropies.
        u = np.clip(Y * lam, 0.0, 1.0)
        return float(-np.sum(xlogy(u, u) + xlogy(1.0 - u, 1.0 - u)))

    def cvxpy_value(self, F, Y, n_outputs=None):
        import cvxpy as cp

        return cp.sum(cp.logistic(-cp.multiply(Y, F)))

    def torch_value(self, F, Y):
        import torch

        return torch.nn.functional.softplus(-Y * F).sum()

    @staticmethod
    def proba(F):
        return expit(F)


class MultinomialLogLoss:
    r"""Softmax cross-entropy for one-hot targets.

    .. math:: L(F) = \sum_i \Big(\log \sum_c e^{F_{ic}} - F_{i y_i}\Big)

    The outputs are coupled by the softmax, so the decoupled program is one
    joint (still convex) program over all outputs.
    """

    name = "log_loss"
    separable = False

    def value(self, F, Y):
        return float(np.sum(logsumexp(F, axis=1)) - np.sum(Y * F))

    def gradient(self, F, Y):
        return softmax(F, axis=1) - Y

    def dual(self, lam, Y):
        # Y - lam must be a probability vector per row; the value is the
        # sum of its entropies.
        p = np.clip(Y - lam, 0.0, 1.0)
        return float(-np.sum(xlogy(p, p)))

    def cvxpy_value(self, F, Y):
        import cvxpy as cp

        return cp.sum(cp.log_sum_exp(F, axis=1)) - cp.sum(cp.multiply(Y, F))

    def torch_value(self, F, Y):
        return -(Y * F.log_softmax(dim=1)).sum()

    @staticmethod
    def proba(F):
        return np.exp(log_softmax(F, axis=1))


def get_loss(name, n_outputs):
    """Return the loss object for an estimator's ``loss`` and output count."""
    if name == "squared_error":
        return SquaredLoss()
    if name == "log_loss":
        return BinaryLogLoss() if n_outputs == 1 else MultinomialLogLoss()
    raise ValueError(
        f"Unknown loss {name!r}; use 'squared_error' or 'log_loss'."
    )
