r"""Closed-form optimum of program (C) when the whitened data are square.

When the centred data have rank ``n - 1`` (possible iff ``n <= d + 1``),
``U' = [U, 1/sqrt(n)]`` is an orthogonal ``n x n`` matrix: every vector is
``U' z`` for one ``z``, and every target is reachable. For one output of the
squared loss (MATH.md section 5), with ``y_+ = max(y, 0)``,
``y_- = max(-y, 0)``, the optimum of

.. math:: \tfrac12 \|f - y\|^2 + \tau \sum (\|a_i\| + \|b_i\|)

is two neurons that soft-threshold the two parts of ``y``:

.. math::

    \hat y = (1 - \tau / \|y_+\|)_+ \, y_+ - (1 - \tau / \|y_-\|)_+ \, y_- .

Indeed every feasible point predicts ``f = p - q`` with
``p = sum_i D_i U' a_i >= 0`` (the cone constraints) and
``||p|| <= sum_i ||D_i U' a_i|| <= sum_i ||a_i||`` (likewise ``q``), so (C)
is bounded below by ``min 1/2 ||p - q - y||^2 + tau (||p|| + ||q||)`` over
``p, q >= 0``, whose solution is the group soft-threshold of ``y_+`` and
``y_-``; and ``a = U'^T p`` (pattern ``1[y > 0]``), ``b = U'^T q`` (pattern
``1[y < 0]``) attain it with ``||a|| = ||p||``.

The package's squared loss is ``1/(2C) ||F - Y||_F^2``, so output ``c``
solves ``1/C (1/2 ||f_c - y_c||^2 + C beta (...))``: the threshold is
``tau = C beta``. The value and the prediction are unique; the two blocks
are one optimal solution among many.
"""

# Authors: the skbnconvex developers
# License: BSD 3 clause

from dataclasses import dataclass

import numpy as np

from ._losses import SquaredLoss


@dataclass
class ClosedFormSolution:
    """Solution of (C) in closed form, laid out as a program's blocks.

    Attributes
    ----------
    D : ndarray of bool, shape (n_samples, n_patterns)
        The patterns ``1[y_c > 0]`` and ``1[y_c < 0]`` of every output,
        deduplicated, without the empty pattern.
    Wp, Wn : ndarray of shape (n_outputs, n_patterns, k)
        Blocks of ``ConvexProgram(Ut, D, Y, SquaredLoss(), beta)``; pass them
        to :func:`skbnconvex._recovery.recover_network`.
    F : ndarray of shape (n_samples, n_outputs)
        Optimal prediction.
    objective : float
        Optimal value of (C): ``1/(2C) ||F - Y||^2 + beta * sum of norms``.
    """

    D: np.ndarray
    Wp: np.ndarray
    Wn: np.ndarray
    F: np.ndarray
    objective: float


def is_square(Ut, rtol=1e-10):
    """Whether ``Ut`` is square (rank of the centred data ``n - 1``)."""
    n, k = Ut.shape
    return n == k and np.allclose(Ut.T @ Ut, np.eye(k), atol=rtol * n)


def closed_form_solution(Ut, Y, beta):
    """Optimum of (C) for the squared loss when ``Ut`` is square.

    Parameters
    ----------
    Ut : ndarray of shape (n_samples, n_samples)
        Whitened data, orthogonal (rank of the centred data ``n - 1``).
    Y : ndarray of shape (n_samples, n_outputs)
        Real targets.
    beta : float
        Weight of the group penalty of (C).

    Returns
    -------
    solution : ClosedFormSolution

    Raises
    ------
    ValueError
        If ``Ut`` is not square.
    """
    Ut = np.asarray(Ut, dtype=np.float64)
    Y = np.asarray(Y, dtype=np.float64)
    n, k = Ut.shape
    if n != k:
        raise ValueError(
            f"The closed form needs rank(X - mean) = n_samples - 1, i.e. a "
            f"square Ut; got Ut of shape {Ut.shape}."
        )
    C = Y.shape[1]
    tau = C * beta
    pos, neg = np.maximum(Y, 0.0), np.maximum(-Y, 0.0)

    def shrink(part):
        norm = np.linalg.norm(part, axis=0)
        with np.errstate(divide="ignore", invalid="ignore"):
            factor = np.where(norm > 0, np.maximum(1.0 - tau / norm, 0.0), 0.0)
        return part * factor

    P, Q = shrink(pos), shrink(neg)  # (n, C): the two neurons' outputs
    F = P - Q

    # Patterns: keep the two sign patterns of each output, first occurrences.
    cols, keys, where = [], {}, []
    for c in range(C):
        slots = []
        for part in (Y[:, c] > 0, Y[:, c] < 0):
            key = part.tobytes()
            if not part.any():
                slots.append(None)
                continue
            if key not in keys:
                keys[key] = len(cols)
                cols.append(part)
            slots.append(keys[key])
        where.append(slots)
    D = np.array(cols, dtype=bool).T.reshape(n, len(cols))
    Wp = np.zeros((C, len(cols), k))
    Wn = np.zeros((C, len(cols), k))
    for c, (ip, in_) in enumerate(where):
        # Ut orthogonal: a = Ut^T p gives Ut a = p, which is >= 0 on the
        # pattern and 0 off it, so a lies in the pattern's cone.
        if ip is not None:
            Wp[c, ip] = Ut.T @ P[:, c]
        if in_ is not None:
            Wn[c, in_] = Ut.T @ Q[:, c]
    penalty = np.linalg.norm(Wp, axis=2).sum() + np.linalg.norm(Wn, axis=2).sum()
    objective = SquaredLoss().value(F, Y) + beta * penalty
    return ClosedFormSolution(D=D, Wp=Wp, Wn=Wn, F=F, objective=float(objective))
