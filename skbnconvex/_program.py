r"""The exact convex program (C) of a BN-ReLU network on whitened data.

For outputs ``c = 1..C`` (decoupled: every neuron feeds one output) and
activation patterns ``D_1..D_P`` (columns of the boolean matrix ``D``), the
program over blocks ``a_{c,i}, b_{c,i}`` in ``R^k`` (``k = rank + 1``) is

.. math::

    \min \; L\Big(\Big[\sum_i D_i U' (a_{c,i} - b_{c,i})\Big]_{c}\Big)
         + \beta \sum_{c,i} \big(\|a_{c,i}\|_2 + \|b_{c,i}\|_2\big)
    \quad \text{s.t.} \quad (2 D_i - I) U' a_{c,i} \ge 0,\;
                            (2 D_i - I) U' b_{c,i} \ge 0.

Blocks are stored as arrays ``Wp`` (the ``a``) and ``Wn`` (the ``b``) of shape
``(n_outputs, n_patterns, k)``. This module evaluates the program; solvers
live in :mod:`skbnconvex._solvers`.
"""

# Authors: the skbnconvex developers
# License: BSD 3 clause

from dataclasses import dataclass

import numpy as np

from ._nnls import cone_projection_on_rows
from ._patterns import pattern_signs

# predict sums the non-zero pairs (output, pattern) alone while they are at
# most 1/_SPARSE_PAIRS of all pairs: at letter's shape (20 000 rows, 26
# outputs, 512 patterns, one thread) 350 pairs took 0.09 s instead of the
# dense product's 0.69 s, 1 664 pairs 0.30 s against 0.69 s, and the two
# break even near a quarter (3 328 pairs: 0.54 s against 0.52 s); the
# fitted networks use a few percent of the pairs.
_SPARSE_PAIRS = 8
# Most entries of predict's (rows, pairs) temporaries.
_CHUNK_ENTRIES = 2**22


@dataclass
class ConvexProgram:
    """Data of program (C): whitened data, patterns, coded targets, loss.

    Parameters
    ----------
    Ut : ndarray of shape (n_samples, k)
        Whitened data ``[U, 1/sqrt(n)]`` with orthonormal columns.
    D : ndarray of bool, shape (n_samples, n_patterns)
        Activation patterns, one per column.
    Y : ndarray of shape (n_samples, n_outputs)
        Targets coded for ``loss``.
    loss : loss object from :mod:`skbnconvex._losses`
    beta : float
        Weight of the group penalty (``alpha / sqrt(n_samples)``).
    """

    Ut: np.ndarray
    D: np.ndarray
    Y: np.ndarray
    loss: object
    beta: float

    @property
    def n_samples(self):
        return self.Ut.shape[0]

    @property
    def n_patterns(self):
        return self.D.shape[1]

    @property
    def n_outputs(self):
        return self.Y.shape[1]

    @property
    def k(self):
        return self.Ut.shape[1]

    def zeros(self):
        """Return the all-zero blocks ``(Wp, Wn)``."""
        shape = (self.n_outputs, self.n_patterns, self.k)
        return np.zeros(shape), np.zeros(shape)

    def predict(self, Wp, Wn):
        """Return ``F[:, c] = sum_i D_i Ut (a_{c,i} - b_{c,i})``."""
        W = Wp - Wn
        C, P, _ = W.shape
        c_nz, i_nz = np.nonzero(np.any(W != 0, axis=2))
        if len(c_nz) * _SPARSE_PAIRS > C * P:
            # F[:, c] = rowsum(Ut * (D @ W_c)): (n, P) @ (C, P, k) -> (C, n,
            # k), no (C, n, P) temporary (1.7 GB for letter's 26 outputs).
            DW = self.D.astype(np.float64) @ W
            return np.einsum("cnk,nk->nc", DW, self.Ut)
        # From the non-zero pairs (output, pattern) only, the columns
        # D_i * (Ut w_{c,i}) summed by output, in chunks of pairs.
        n = self.D.shape[0]
        F = np.zeros((n, C))
        step = max(1, _CHUNK_ENTRIES // n)
        for a in range(0, len(c_nz), step):
            c, i = c_nz[a: a + step], i_nz[a: a + step]
            V = self.Ut @ W[c, i].T
            V *= self.D[:, i]
            starts = np.flatnonzero(np.r_[True, c[1:] != c[:-1]])
            F[:, c[starts]] += np.add.reduceat(V, starts, axis=1)
        return F

    def penalty(self, Wp, Wn):
        """Return ``sum ||a|| + ||b||`` (without the factor beta)."""
        return float(
            np.linalg.norm(Wp, axis=2).sum() + np.linalg.norm(Wn, axis=2).sum()
        )

    def objective(self, Wp, Wn, F=None):
        """Return the value of (C) at ``(Wp, Wn)``; ``F``: its prediction, if known."""
        if F is None:
            F = self.predict(Wp, Wn)
        return self.loss.value(F, self.Y) + self.beta * self.penalty(Wp, Wn)

    def cone_violation(self, Wp, Wn):
        """Largest violation of ``(2 D_i - I) Ut w >= 0`` over all blocks.

        Returned relative to the largest block norm (0 for the zero blocks),
        so that it is comparable across problem scales.
        """
        S = pattern_signs(self.D)
        worst = 0.0
        for W in (Wp, Wn):
            for Wc in W:  # one output at a time: (n, P) temporaries
                G = self.Ut @ Wc.T
                worst = max(worst, float(np.max(-S * G, initial=0.0)))
        scale = max(
            np.linalg.norm(Wp, axis=2).max(initial=0.0),
            np.linalg.norm(Wn, axis=2).max(initial=0.0),
        )
        return worst / scale if scale > 0 else 0.0

    def project_to_cones(self, Wp, Wn):
        """Project every block exactly onto its cone (returns copies).

        Solvers stop with small cone violations (an interior point is
        feasible only to its tolerance); then ``relu(Ut w)`` and
        ``D_i Ut w`` differ and the network would not reproduce the program.
        The projection onto ``{z : K z >= 0}``, ``K = (2 D_i - I) Ut``, is
        ``w + K_J^T mu`` with ``mu >= 0`` minimising ``||w + K_J^T mu||``
        (non-negative least squares on the rows ``J``); ``J`` starts from
        the violated and nearly tight rows and grows until no row is
        violated, so only a few rows enter the small NNLS problem.
        """
        out = []
        for W in (Wp, Wn):
            W = np.array(W, dtype=np.float64, copy=True)
            norms = np.linalg.norm(W, axis=2)
            cs, idx = np.nonzero(norms)
            # Signs of the non-zero blocks' patterns only, one pattern per
            # contiguous row (the signs of all patterns, (n, P), and their
            # strided columns took most of a second on CASP's 45 730 rows).
            pats, which = np.unique(idx, return_inverse=True)
            S = pattern_signs(self.D[:, pats].T)
            for c, i, j in zip(cs, idx, which):
                w = W[c, i]
                u = S[j] * (self.Ut @ w)  # K w
                if u.min() >= 0:
                    continue
                W[c, i], _ = cone_projection_on_rows(
                    self.Ut, w, u < 1e-6 * norms[c, i], signs=S[j]
                )
            out.append(W)
        return tuple(out)
