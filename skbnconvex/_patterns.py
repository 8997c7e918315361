"""Activation patterns: the hyperplane arrangement of the whitened data.

A pattern is the 0/1 vector ``1[Ut g >= 0]`` for some direction ``g``; the
convex program has one pair of blocks per distinct pattern. Patterns are
stored as the columns of a boolean matrix of shape ``(n_samples, n_patterns)``.
The empty pattern is dropped (its blocks can only produce zero).

The number of distinct patterns of ``n`` rows of rank ``k = r + 1`` is at
most ``2 * sum_{j < k} C(n - 1, j)``, with equality when the rows are in
general position. It is polynomial in ``n`` for fixed rank, and
:func:`enumerate_patterns` lists them all when that is affordable.
"""

# Authors: the skbnconvex developers
# License: BSD 3 clause

from itertools import combinations, product
from math import comb

import numpy as np
from sklearn.utils import check_random_state

# Entries of the (rows, directions) products of sample_patterns formed at
# once. The whole product is fresh memory, each page faulted in: 2 000
# directions on 45 730 rows (k = 10, one thread, a fresh process) took
# 1.94 s at once and 0.16 s in chunks of 2^20 (0.39 s at 2^16, 0.22 s at
# 2^22); on 20 000 rows (k = 17) 0.09 s and 0.06 s. CASP's captured
# post-fit certificate (one thread): 13.6-14.7 s -> 11.2-11.3 s.
_CHUNK_ENTRIES = 2**20


def pack_patterns(D):
    """Every column of ``D`` packed into bytes: ``np.packbits(D, axis=0).T``.

    Parameters
    ----------
    D : ndarray of bool, shape (n_samples, n_patterns)

    Returns
    -------
    keys : ndarray of uint8, shape (n_patterns, ceil(n_samples / 8))
        C-contiguous: row ``j`` is pattern ``j`` as a byte string.

    Notes
    -----
    ``np.packbits`` along the rows of a C-ordered matrix (or along the
    columns of its transpose) makes strided passes over it: 0.53 s for
    45 730 x 2 000 here. Eight shifted ORs of contiguous row slices do the
    same in 0.12 s, which matters to the certificate's search, which
    packs every candidate it meets. A Fortran-ordered ``D`` (the search's
    ascent writes one) holds each pattern contiguously and is packed along
    the rows of its transpose directly (20 000 x 2 100: 2.4 ms, against
    60-90 ms through a C-ordered copy).
    """
    D = np.asarray(D, dtype=bool)
    if D.flags.f_contiguous and not D.flags.c_contiguous:
        return np.packbits(D.T, axis=1)
    D = np.ascontiguousarray(D)
    n, m = D.shape
    full = n // 8
    # Row 8 r + b of D holds bit 7 - b of byte r (packbits' big-endian order).
    V = D[: 8 * full].view(np.uint8).reshape(full, 8, m)
    keys = np.zeros((-(-n // 8), m), dtype=np.uint8)
    for b in range(8):
        keys[:full] |= V[:, b] << np.uint8(7 - b)
    if n > 8 * full:
        keys[full] = np.packbits(D[8 * full:], axis=0)[0]
    return np.ascontiguousarray(keys.T)


def pattern_signs(D, dtype=np.float64):
    """Signs ``2 D - 1`` of patterns ``D`` (bool), as a C-ordered array.

    The rows of the cones ``(2 D_i - I) U'``. Formed by arithmetic in place:
    ``np.where(D, 1.0, -1.0)`` took eight times as long (108 us against 13 us
    for CASP's 45 730 rows).
    """
    S = np.asarray(D, dtype=bool).astype(dtype, order="C")
    S *= 2.0
    S -= 1.0
    return S


def unique_patterns(D, exclude=None):
    """Drop duplicate and empty columns of ``D``, keeping first occurrences.

    Parameters
    ----------
    D : ndarray of bool, shape (n_samples, n_candidates)
    exclude : ndarray of bool, shape (n_samples, n_known), default=None
        Patterns already known; they are dropped from the result.

    Returns
    -------
    D : ndarray of bool, shape (n_samples, n_unique)
    """
    D = np.asarray(D, dtype=bool)
    n_known = 0 if exclude is None else exclude.shape[1]
    if n_known:
        D = np.hstack([exclude, D])
    # Rows of packed bits make every pattern a short byte string.
    keys = pack_patterns(D)
    _, first = np.unique(keys, axis=0, return_index=True)
    first = np.sort(first)
    first = first[first >= n_known]
    D = D[:, first]
    return D[:, D.any(axis=0)]


def max_patterns(n_samples, rank):
    """Upper bound ``2 * sum_{j <= rank} C(n_samples - 1, j)`` on the count.

    ``rank`` is the rank of the centred data; ``Ut`` has rank ``rank + 1``.
    The bound counts the empty pattern, which the program drops.
    """
    return 2 * sum(comb(n_samples - 1, j) for j in range(rank + 1))


def sample_patterns(Ut, n_patterns, random_state=None, max_draws=None):
    """Sample distinct patterns ``1[Ut g >= 0]`` with Gaussian directions ``g``.

    Directions are drawn in rounds until ``n_patterns`` distinct non-empty
    patterns are found or ``max_draws`` directions were tried (there may be
    fewer distinct patterns than asked for), so the result can have fewer
    than ``n_patterns`` columns.

    Parameters
    ----------
    Ut : ndarray of shape (n_samples, k)
    n_patterns : int
    random_state : int, RandomState instance or None
    max_draws : int, default=None
        Defaults to ``10 * n_patterns + 100``.

    Returns
    -------
    D : ndarray of bool, shape (n_samples, n_found)
    """
    rng = check_random_state(random_state)
    if max_draws is None:
        max_draws = 10 * n_patterns + 100
    n, k = Ut.shape
    D = np.zeros((n, 0), dtype=bool)
    drawn = 0
    while D.shape[1] < n_patterns and drawn < max_draws:
        batch = min(max(n_patterns - D.shape[1], 1) * 2, max_draws - drawn)
        G = rng.standard_normal((k, batch))
        drawn += batch
        signs = np.empty((n, batch), dtype=bool)
        cols = max(1, _CHUNK_ENTRIES // n)
        for a in range(0, batch, cols):
            np.greater_equal(Ut @ G[:, a: a + cols], 0, out=signs[:, a: a + cols])
        D = np.hstack([D, unique_patterns(signs, exclude=D)])
    return D[:, :n_patterns]


def _cells(A, tol=1e-9):
    """Sign patterns ``A g > 0`` of every full-dimensional cell, both signs.

    ``A`` (m, k) has rank ``k`` and non-zero rows. Every cell of the central
    arrangement of its rows is a pointed cone with an extreme ray ``t g0``,
    ``g0`` orthogonal to ``k - 1`` independent rows. Near the ray, the rows
    off it keep the sign of ``A g0`` (or of ``-A g0``), and the rows on it
    (``|a_j^T g0|`` below ``tol ||a_j||``: at least the chosen ``k - 1``,
    more when the data are degenerate, e.g. repeated samples) take the sign
    patterns of the cells of their own arrangement in the ``k - 1``
    dimensions orthogonal to ``g0``, found by recursion. In general position
    the on-ray rows are exactly ``k - 1`` independent rows and all their
    ``2^(k-1)`` sign patterns occur.
    """
    m, k = A.shape
    if k == 1:
        return np.column_stack([A[:, 0] > 0, A[:, 0] < 0])
    norms = np.linalg.norm(A, axis=1)
    all_signs = np.array(list(product([False, True], repeat=k - 1))).T
    blocks, seen = [], set()
    for rows in combinations(range(m), k - 1):
        rows = list(rows)
        # Null direction of the chosen rows: last right singular vector.
        _, s, vt = np.linalg.svd(A[rows], full_matrices=True)
        if s.size and s[-1] <= 1e-12 * s[0]:
            continue  # dependent rows: not a vertex ray of the arrangement
        g0 = vt[-1]
        v = A @ g0
        on = np.abs(v) <= tol * norms
        key = np.packbits(on).tobytes()
        if key in seen:
            continue  # the same ray, reached from other rows on it
        seen.add(key)
        if on.sum() == k - 1:
            sub = all_signs
        else:
            # Coordinates of the on-ray rows orthogonal to g0 (vt[:-1]
            # spans that complement).
            sub = _cells(A[on] @ vt[:-1].T, tol)
        base = v > 0
        for side in (base, ~base):
            block = np.repeat(side[:, None], sub.shape[1], axis=1)
            block[on] = sub
            blocks.append(block)
    return np.hstack(blocks)


def enumerate_patterns(Ut, max_count=100_000):
    """List every non-empty activation pattern of the rows of ``Ut``.

    The patterns are those of the cells of the central arrangement
    ``{g : sign(Ut g)}`` in ``R^k``, found from the extreme rays of the
    cells (see ``_cells``). Degenerate data (repeated samples, several
    samples on one hyperplane) are handled exactly: the rows through a
    common ray are resolved by recursion on their own arrangement. Patterns
    of a cell boundary (a row with ``Ut g = 0`` is active) are those of an
    adjacent cell, so cells are all there is to list.

    Parameters
    ----------
    Ut : ndarray of shape (n_samples, k)
        Of rank ``k`` with non-zero rows, as the whitened data are.
    max_count : int, default=100_000
        Refuse (ValueError) when the bound on the count exceeds this.

    Returns
    -------
    D : ndarray of bool, shape (n_samples, n_patterns)
    """
    n, k = Ut.shape
    bound = max_patterns(n, k - 1)
    if bound > max_count:
        raise ValueError(
            f"Enumerating the activation patterns of {n} samples of rank "
            f"{k - 1} may give up to {bound} patterns, more than "
            f"max_count={max_count}. Sample patterns instead "
            "(patterns='sample' or 'adaptive'), or reduce the rank of X "
            "(e.g. with PCA)."
        )
    if k == 1:
        return np.ones((n, 1), dtype=bool)
    return unique_patterns(_cells(Ut))
