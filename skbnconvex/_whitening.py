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
from sklearn.utils.extmath import svd_flip


@dataclass
class Whitening:
    """Centring and compact SVD of the training data.

    Attributes
    ----------
    mean : ndarray of shape (n_features,)
        Column means ``xbar`` of the training data (weighted by the sample
        weights, if any).
    components : ndarray of shape (n_features, rank)
        Maps centred data to ``U S``: ``(X - mean) @ components = U S``. It
        is ``diag(1/scale) V`` with ``V`` the right singular vectors of the
        column-scaled centred data (see :func:`whiten`).
    singular_values : ndarray of shape (rank,)
        Singular values ``S`` kept by the rank cut.
    Ut : ndarray of shape (n_samples, rank + 1)
        Whitened training data ``[U diag(spectral_weights), 1/sqrt(n)]``;
        with sample weights ``w``, row ``i`` is multiplied by
        ``sqrt(w_i)`` and ``n`` is ``sum(w)`` (see :func:`whiten`).
    weight_sum : float
        ``n_samples``, or the sum of the sample weights: the batch size of
        the equivalent unweighted data.
    spectral_weights : ndarray of shape (rank,)
        ``(S / S[0]) ** spectral_power``; ones for the exact BN program.
    """

    mean: np.ndarray
    components: np.ndarray
    singular_values: np.ndarray
    Ut: np.ndarray
    weight_sum: float
    spectral_weights: np.ndarray

    @property
    def rank(self):
        return self.singular_values.shape[0]

    @property
    def n_samples(self):
        return self.Ut.shape[0]

    def transform(self, X):
        """Whiten new data with the training statistics (BN in eval mode).

        Returns ``[(X - mean) @ components / S * spectral_weights,
        1/sqrt(weight_sum)]``: the rows of ``Ut`` for the training data,
        without their factor ``sqrt(w_i)``.
        """
        Z = (X - self.mean) @ (self.components * (self.spectral_weights / self.singular_values))
        const = np.full((X.shape[0], 1), 1.0 / np.sqrt(self.weight_sum))
        return np.hstack([Z, const])


def whiten(X, rank_tol=None, sample_weight=None, spectral_power=0.0):
    """Centre ``X`` and whiten it by a compact SVD with a relative rank cut.

    Full-batch BN of ``X w`` over ``n`` samples is ``Ut z`` for the
    orthonormal ``Ut = [U, 1/sqrt(n)]``, ``X - mean = U S V^T``. With
    sample weights ``w`` (positive; the fit is then that on data where
    sample ``i`` is repeated ``w_i`` times) the batch statistics are
    weighted, ``mean = sum_i w_i x_i / sum(w)``, and the SVD is that of
    ``diag(sqrt(w)) (X - mean)``: the repeated data's Gram matrix. The
    returned ``Ut = [U, sqrt(w / sum(w))]`` is then the whitened data with
    row ``i`` scaled by ``sqrt(w_i)``, still orthonormal; the convex program
    on it has outputs ``sqrt(w_i) f(x_i)``.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
    rank_tol : float, default=None
        Singular values ``<= rank_tol * S.max()`` are dropped. The default,
        ``max(n_samples, n_features) * eps`` as in :func:`numpy.linalg.matrix_rank`,
        keeps every direction that is not round-off.
    sample_weight : ndarray of shape (n_samples,), default=None
        Positive sample weights; None for ones.
    spectral_power : float, default=0.0
        Multiplies the column ``U_j`` by ``(S_j / S_1) ** spectral_power``
        (the spectrally weighted program of the implicit-regularisation
        model; 0 gives the exact BN program).

    Returns
    -------
    whitening : Whitening
    """
    X = np.asarray(X, dtype=np.float64)
    n, d = X.shape
    if sample_weight is None:
        sqrt_w, weight_sum = np.ones(n), float(n)
        mean = X.mean(axis=0)
    else:
        w = np.asarray(sample_weight, dtype=np.float64)
        sqrt_w, weight_sum = np.sqrt(w), float(w.sum())
        mean = (w @ X) / weight_sum
    Xc = (X - mean) * sqrt_w[:, None]
    # U depends only on the column span of Xc, which scaling the columns
    # does not change. Scaling them to unit norm first makes the rank cut
    # blind to feature units (features at 1e-8 next to 1e8 keep both
    # directions), as the BN network itself is.
    scale = np.linalg.norm(Xc, axis=0)
    scale[scale == 0] = 1.0
    U, S, Vt = np.linalg.svd(Xc / scale, full_matrices=False)
    # A sign convention that depends on V alone, which is a function of the
    # Gram matrix: weighted data and the same data with repeated samples
    # then get the same directions, hence the same sampled patterns.
    U, Vt = svd_flip(U, Vt, u_based_decision=False)
    if rank_tol is None:
        rank_tol = max(n, d) * np.finfo(np.float64).eps
    keep = S > rank_tol * S[0] if S.size and S[0] > 0 else np.zeros(S.shape, bool)
    U, S, V = U[:, keep], S[keep], Vt[keep].T / scale[:, None]
    spectral_weights = (S / S[0]) ** spectral_power if S.size else S
    Ut = np.hstack([U * spectral_weights, (sqrt_w / np.sqrt(weight_sum))[:, None]])
    return Whitening(
        mean=mean, components=V, singular_values=S, Ut=Ut,
        weight_sum=weight_sum, spectral_weights=spectral_weights,
    )
