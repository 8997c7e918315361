"""Whitening: what batch normalisation does to the data.

For any direction ``w`` the full-batch BN of ``X w`` is ``Ut z`` with
``Ut = [U, 1/sqrt(n)]``, where ``X - 1 xbar^T = U S V^T`` is the compact SVD
of the centred data (MATH.md section 2). The whitened matrix has orthonormal
columns and is all the convex program sees of ``X``; ``xbar``, ``V`` and
``S`` are kept to whiten new data and to map convex blocks back to weights.
"""

# Authors: the skbnconvex developers
# License: BSD 3 clause

from dataclasses import dataclass

import numpy as np


@dataclass
class Whitening:
    """Centring and compact SVD of the training data.

    Attributes
    ----------
    mean : ndarray of shape (n_features,)
        Column means ``xbar`` of the training data.
    components : ndarray of shape (n_features, rank)
        Maps centred data to ``U S``: ``(X - mean) @ components = U S``. It
        is ``diag(1/scale) V`` with ``V`` the right singular vectors of the
        column-scaled centred data (see :func:`whiten`).
    singular_values : ndarray of shape (rank,)
        Singular values ``S`` kept by the rank cut.
    Ut : ndarray of shape (n_samples, rank + 1)
        Whitened training data ``[U, 1/sqrt(n)]``.
    """

    mean: np.ndarray
    components: np.ndarray
    singular_values: np.ndarray
    Ut: np.ndarray

    @property
    def rank(self):
        return self.singular_values.shape[0]

    @property
    def n_samples(self):
        return self.Ut.shape[0]

    def transform(self, X):
        """Whiten new data with the training statistics (BN in eval mode)."""
        Z = (X - self.mean) @ (self.components / self.singular_values)
        const = np.full((X.shape[0], 1), 1.0 / np.sqrt(self.n_samples))
        return np.hstack([Z, const])


def whiten(X, rank_tol=None):
    """Centre ``X`` and whiten it by a compact SVD with a relative rank cut.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
    rank_tol : float, default=None
        Singular values ``<= rank_tol * S.max()`` are dropped. The default,
        ``max(n_samples, n_features) * eps`` as in :func:`numpy.linalg.matrix_rank`,
        keeps every direction that is not round-off.

    Returns
    -------
    whitening : Whitening
    """
    X = np.asarray(X, dtype=np.float64)
    n, d = X.shape
    mean = X.mean(axis=0)
    Xc = X - mean
    # U depends only on the column span of Xc, which scaling the columns
    # does not change. Scaling them to unit norm first makes the rank cut
    # blind to feature units (features at 1e-8 next to 1e8 keep both
    # directions), as the BN network itself is.
    scale = np.linalg.norm(Xc, axis=0)
    scale[scale == 0] = 1.0
    U, S, Vt = np.linalg.svd(Xc / scale, full_matrices=False)
    if rank_tol is None:
        rank_tol = max(n, d) * np.finfo(np.float64).eps
    keep = S > rank_tol * S[0] if S.size and S[0] > 0 else np.zeros(S.shape, bool)
    U, S, V = U[:, keep], S[keep], Vt[keep].T / scale[:, None]
    Ut = np.hstack([U, np.full((n, 1), 1.0 / np.sqrt(n))])
    return Whitening(mean=mean, components=V, singular_values=S, Ut=Ut)
