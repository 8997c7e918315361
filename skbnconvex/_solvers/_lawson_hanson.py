"""Lawson-Hanson cone projections in NumPy: one block, and batched (CPU).

The torch solver projects many blocks at once onto their cones
``{z : s * (U' z) >= 0}`` (:meth:`skbnconvex._solvers._torch._Faces.project`).
On the GPU that batched step is a few dozen tensor operations; on the CPU
the same operations on small tensors cost mostly their fixed overhead
(boolean-mask indexing in torch is a host synchronisation and an
allocation each), so the CPU runs this NumPy transcription of the same
method instead (same steps, same warm start, the same results to
round-off) for the batches whose ``(blocks, n)`` arrays are not so large
that passes over them dominate (``_NUMPY_MAX_ENTRIES`` in ``_torch.py``).
:func:`lawson_hanson` finishes single blocks on the host in float64.
"""

# Authors: the skbnconvex developers
# License: BSD 3 clause

import numpy as np
import torch
from scipy.linalg import get_lapack_funcs
from scipy.linalg.lapack import dposv as _dposv

from .._nnls import cone_projection_on_rows


# Rows checked by the screened steps of lawson_hanson (CASP, 200
# iterations: 27% of the host steps screened with 256 rows, 53% with
# 2048; the host projections 6.4 s -> 5.0 s).
_SCREEN_ROWS = 2048


def batched_lawson_hanson(
    Ut, S, pat, Z, R, V, X, max_steps, feas_tol, stop_below, tail, min_row=None,
    x=None, warm=None,
):
    """Project the rows of ``Z`` onto their cones, warm-started (NumPy).

    Lawson-Hanson on the dual ``min_{mu >= 0} ||p + K^T mu||`` of every
    block, ``K = S_b[:, None] * Ut``, batched over the blocks: one
    least-squares solve on the passive rows per step. Started from the
    remembered passive rows (rows with a non-positive multiplier drop out
    until all are positive); then, while ``K z`` has an entry below
    ``-feas_tol * ||Z_b||``, the most violated row enters, and the
    interpolation step keeps the multipliers non-negative.

    Parameters
    ----------
    Ut : ndarray of shape (n, k)
        The whitened data ``U'``.
    S : ndarray of shape (P, n)
        Signs ``2 D_i - 1`` of the patterns.
    pat : ndarray of int, shape (B,)
        The pattern of every block (rows of ``S``; not gathered into a
        ``(B, n)`` copy, of which a step needs a few entries).
    Z : ndarray of shape (B, k)
        Points to project.
    R, V : ndarray of shape (B, k), int and bool
        Remembered passive rows by slot and their validity. Modified in
        place: on return, the rows where every block stopped.
    X : ndarray of shape (B, k)
        Last non-negative multipliers by slot. Modified in place.
    max_steps : int
        Most batched steps.
    feas_tol : float
        Relative tolerance of the KKT check.
    stop_below : float or None
        A block whose iterate has norm at most this stops (the norms of
        the iterates decrease): its projection is that small at least.
    tail : int
        Stop as soon as at most this many blocks are still running (the
        caller finishes them one by one).
    min_row : callable, default=None
        ``min_row(idx, z, R, V) -> (kzmin, jrow)``: the smallest entry of
        ``K z`` for blocks ``idx`` at points ``z`` over the rows not passive
        (``R`` where ``V``) and its row, or a violated row with its value
        when there is one (the caller's exact float32 scan). Default: a
        float64 scan over all rows.
    x, warm : ndarray of shape (B, k) and (B,), default=None
        The state of projections already under way (the batched steps of
        :meth:`~skbnconvex._solvers._torch._Faces.project` hand their last
        blocks on): the multipliers of the passive rows by slot, and whether
        a block is still in its warm phase (no row added yet). Default: a
        fresh start, every block warm.

    Returns
    -------
    out : ndarray of shape (B, k)
        Projections; NaN rows for blocks that did not finish (step budget,
        a degenerate passive set, ``stop_below`` or ``tail``).
    ub : ndarray of shape (B,)
        Upper bounds of the norms of the projections (exact where
        finished).
    nrm : ndarray of shape (B,)
        Norms of the rows of ``Z``.
    """
    B, k = Z.shape
    # Multipliers of the passive rows, by slot, and the warm phase's flags.
    x = np.zeros_like(Z) if x is None else np.array(x, dtype=Z.dtype)
    warm = np.ones(B, dtype=bool) if warm is None else np.array(warm, dtype=bool)
    nrm = np.linalg.norm(Z, axis=1)
    out = np.full_like(Z, np.nan)
    ub = nrm.copy()
    act = np.arange(B)
    if min_row is None:
        min_row = _scan_rows(Ut, S, pat)
    (posv,) = get_lapack_funcs(("posv",), (Z,))  # sposv or dposv
    # Rows K_j of every block's passive set by slot and their Gram matrix;
    # padding slots are zero rows with a unit diagonal. Both are kept and
    # updated where a passive set changed (a row or a few per step): formed
    # afresh at every step they were a quarter of the projections' time at
    # k = 51.
    A = (S[pat[:, None], R] * V)[..., None] * Ut[R]  # (B, k, k)
    G = A @ A.transpose(0, 2, 1)
    G.reshape(B, k * k)[:, :: k + 1] += ~V  # the diagonals, in place
    for _ in range(max_steps):
        b = len(act)
        Ra, Va, Za = R[act], V[act], Z[act]
        xa, wa = x[act], warm[act]
        Aa = A[act]
        # LAPACK's Cholesky solve matrix by matrix: cheaper here than the
        # batched factorisations of NumPy or torch, and it reports the
        # matrices that are not positive definite (a degenerate passive
        # set, left to the caller's exact fallback).
        rhs = -(Aa @ Za[..., None])[..., 0]
        sol = np.empty_like(rhs)
        failed = np.zeros(b, dtype=bool)
        for j in range(b):
            _, sol[j], info = posv(G[act[j]], rhs[j])
            failed[j] = info != 0
        sol *= Va
        sol[failed] = 0.0
        positive = ((sol > 0) | ~Va).all(1) & ~failed
        X[act[positive]] = sol[positive]
        # Warm phase: rows with a non-positive multiplier leave.
        w_neg = wa & ~positive & ~failed
        V[act[w_neg]] = Va[w_neg] & (sol[w_neg] > 0)
        _drop_rows(A, G, act[w_neg], Va[w_neg] & (sol[w_neg] <= 0))
        # Lawson-Hanson interpolation towards the solution, which stays
        # non-negative; the blocking row leaves.
        c_neg = ~wa & ~positive & ~failed
        if c_neg.any():
            xc, sc, Vc = xa[c_neg], sol[c_neg], Va[c_neg]
            blocking = Vc & (sc <= 0)
            with np.errstate(divide="ignore", invalid="ignore"):
                step = xc / np.where(blocking, xc - sc, 1.0)
                ratio = np.where(blocking, step, np.inf)
            jmin = ratio.argmin(1)
            alpha = ratio[np.arange(len(jmin)), jmin]
            xc = xc + alpha[:, None] * (sc - xc)
            leave = Vc & (xc <= 0)
            leave[np.arange(len(jmin)), jmin] = True
            V[act[c_neg]] = Vc & ~leave
            x[act[c_neg]] = xc * (Vc & ~leave)
            _drop_rows(A, G, act[c_neg], leave)
        # Positive multipliers: a KKT check, then the most violated row.
        z = Za + np.einsum("bjk,bj->bk", Aa, sol)
        ub_a = np.where(positive, np.linalg.norm(z, axis=1), np.inf)
        ub[act] = np.minimum(ub[act], ub_a)
        # Only blocks with positive multipliers that did not stop below the
        # threshold need the check (the others ignore it).
        check = positive if stop_below is None else positive & (ub_a > stop_below)
        kzmin = np.full(b, -np.inf)
        jrow = np.zeros(b, dtype=R.dtype)
        ic = np.flatnonzero(check)
        if len(ic):
            kzmin[ic], jrow[ic] = min_row(act[ic], z[ic], Ra[ic], Va[ic])
        done = positive & (kzmin >= -feas_tol * nrm[act])
        out[act[done]] = z[done]
        if stop_below is not None:
            done |= ub_a <= stop_below
        add = positive & ~done & ~Va.all(1)
        slot = (~Va).argmax(1)
        ia, sa, ja = act[add], slot[add], jrow[add]
        x[ia] = sol[add]
        R[ia, sa] = ja
        V[ia, sa] = True
        warm[ia] = False
        # The new row and its products with the others (zero with padding).
        A[ia, sa] = S[pat[ia], ja][:, None] * Ut[ja]
        row = np.einsum("bjk,bk->bj", A[ia], A[ia, sa])
        G[ia, sa, :] = row
        G[ia, :, sa] = row
        # Blocks whose solve failed or whose passive set is full (both
        # degenerate) are left to the caller's exact fallback.
        act = act[~done & ~failed & (add | ~positive)]
        if len(act) <= tail:
            break
    return out, ub, nrm


def _scan_rows(Ut, S, pat):
    """The default ``min_row`` of :func:`batched_lawson_hanson` (float64)."""
    UtT = torch.from_numpy(Ut).T

    def min_row(idx, z, R, V):
        # The one large product of a step in torch, on its own threads:
        # OpenBLAS's threads (NumPy's) spinning beside torch's cost more
        # than the product itself on two cores.
        Kz = S[pat[idx]] * (torch.from_numpy(z) @ UtT).numpy()
        bi, si = np.nonzero(V)
        Kz[bi, R[bi, si]] = np.inf  # passive rows are not candidates
        jrow = Kz.argmin(1)
        return Kz[np.arange(len(z)), jrow], jrow

    return min_row


def _drop_rows(A, G, idx, leave):
    """Clear the slots ``leave`` (bool, by slot) of blocks ``idx``.

    Their rows of ``A`` and rows and columns of ``G`` become the padding's
    (zero, with a unit diagonal).
    """
    bi, si = np.nonzero(leave)
    if len(bi):
        bi = idx[bi]
        A[bi, si] = 0.0
        G[bi, si, :] = 0.0
        G[bi, :, si] = 0.0
        G[bi, si, si] = 1.0


def lawson_hanson(Ut, s, p, rows, tol, stop_below=None, row_norms=None,
                  screen=_SCREEN_ROWS, max_steps=None):
    """Exact projection of ``p`` onto ``{z : s * (Ut z) >= 0}``, in float64.

    Lawson-Hanson on the dual ``min_{mu >= 0} ||p + K^T mu||`` with
    ``K = s[:, None] * Ut``, started from the passive set ``rows`` (the
    active rows of an earlier projection). A row enters while ``K z`` has an
    entry below ``-tol``; rows whose multiplier would turn negative leave.
    The norm of ``z`` decreases along the way: with ``stop_below`` the
    method stops (returning None for ``z``) once it is at most that.

    After ``max_steps`` rows have entered (default ``5 k + 20``) without
    the check passing, the projection is finished by
    :func:`~skbnconvex._nnls.cone_projection_on_rows` from the passive rows
    (non-negative least squares on growing sets of rows, its answers
    verified), so that the point returned is always in the cone: where
    many rows are nearly parallel (CASP: 45 730 rows, ``k = 10``) the
    method can trade rows one for one for many steps near a ray of a
    narrow cone.

    With ``row_norms`` (the norms of the rows of ``Ut``) and more than
    ``4 * screen`` rows, the check of ``K z`` is screened: after a check
    on all rows at a point ``r``, only the ``screen`` rows of smallest
    margin ``(K r)_j / ||u_j||`` are checked while ``||z - r||`` is below
    the smallest margin ``tau`` of the others, which stay positive there
    (``(K z)_j >= (K r)_j - ||u_j|| ||z - r|| > 0``). The steps are the
    same as without it.

    Returns
    -------
    z : ndarray of shape (k,) or None
        The projection.
    rows : list of int
        Its active rows (positive multipliers), linearly independent; after
        the NNLS finish, the (at most ``k``) rows of largest multiplier.
    """
    def solve(R):
        # Normal equations of the small least-squares problem: the active
        # rows are linearly independent (a dependent row is never violated).
        A = s[R, None] * Ut[R]  # (|R|, k), rows K_j
        # LAPACK's Cholesky solve directly: a third of np.linalg.solve's
        # cost on these small systems, solved thousands of times a fit.
        _, sol, info = _dposv(A @ A.T, -(A @ p))
        if info != 0:
            sol = np.linalg.lstsq(A.T, -p, rcond=None)[0]
        return sol, A

    R = [int(j) for j in rows]
    k = p.shape[0]
    mu, A = np.zeros(0), np.zeros((0, k))
    # Warm start: from mu = 0, interpolation drops every row whose
    # least-squares multiplier is not positive.
    while R:
        sol, A = solve(R)
        if (sol > 0).all():
            mu = sol
            break
        R = [j for j, v in zip(R, sol) if v > 0]
    if not R:
        A = np.zeros((0, k))
    z = p + mu @ A
    screening = row_norms is not None and Ut.shape[0] > 4 * screen
    ref, tau, cand, K_cand = None, 0.0, None, None
    for _ in range(5 * k + 20 if max_steps is None else max_steps):
        if stop_below is not None and np.linalg.norm(z) <= stop_below:
            return None, R
        if ref is not None and np.linalg.norm(z - ref) < tau:
            v = K_cand @ z  # K z on the candidate rows
            v[np.isin(cand, R)] = np.inf
            i = int(np.argmin(v))
            j, v_j = int(cand[i]), v[i]
        else:
            v = s * (Ut @ z)  # K z; -v is the gradient of the dual
            if screening:
                margin = v / row_norms
                part = np.argpartition(margin, screen)
                cand, tau, ref = part[:screen], margin[part[screen]], z
                K_cand = s[cand, None] * Ut[cand]
            if R:
                v[R] = np.inf
            j = int(np.argmin(v))
            v_j = v[j]
        if v_j >= -tol:
            break
        R.append(j)
        x = np.append(mu, 0.0)
        while True:
            sol, A = solve(R)
            if (sol > 0).all():
                mu = sol
                break
            neg = sol <= 0
            alpha = np.min(x[neg] / (x[neg] - sol[neg]))
            x = x + alpha * (sol - x)
            keep = x > 1e-300
            keep[np.argmin(np.where(neg, x, np.inf))] = False
            R = [j for j, kp in zip(R, keep) if kp]
            x = x[keep]
            if not R:
                mu, A = np.zeros(0), np.zeros((0, k))
                break
        z = p + mu @ A
    else:
        # The budget ran out before the check passed: z may be outside the
        # cone. NNLS on growing sets of rows, from the passive ones.
        start = np.zeros(Ut.shape[0], dtype=bool)
        start[R] = True
        z, mu = cone_projection_on_rows(
            Ut, p, start, tol=tol, max_add=4 * k, signs=s
        )
        # Its active rows, as many as independent rows can be (a basic
        # solution of the NNLS problem has at most k positive multipliers).
        active = np.flatnonzero(mu > 0)
        R = active[np.argsort(-mu[active], kind="stable")][:k].tolist()
    return z, R
