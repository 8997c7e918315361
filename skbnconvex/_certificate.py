r"""Global optimality certificate of program (C): dual feasibility.

For a prediction ``F`` of the decoupled network and the residual
``lam = -grad L(F)`` (``Y - F`` up to the loss scaling for the squared loss),
program (C) over *all* activation patterns is at its optimum iff every
output ``c`` satisfies the dual constraint (MATH.md section 4)

.. math::

    M_c = \max_{\|z\|_2 \le 1} \big| \lambda_c^T \operatorname{relu}(U' z) \big|
    \le \beta .

On the cone of pattern ``D``, :math:`K_D = \{z : (2D - I) U' z \ge 0\}`,
``relu(U' z) = D U' z``, so the maximum of ``lam^T relu(U' z)`` over
``K_D`` and the unit ball is the maximum of ``g^T z`` with
``g = U'^T D lam``, which is the norm of the projection of ``g`` onto the
polyhedral cone ``K_D``. By Moreau's decomposition,
``g = P_K(g) + P_{K°}(g)`` with the polar cone
``K° = {-A^T mu : mu >= 0}`` (``A = (2D - I) U'``), hence

.. math::

    \|P_{K_D}(g)\|_2 = \min_{\mu \ge 0} \|g + A^T \mu\|_2 ,

a non-negative least-squares problem with ``k = rank + 1`` rows, solved
exactly by non-negative least squares (:mod:`skbnconvex._nnls`; at small
``n``, many candidates at once by the torch solver's batched Lawson-Hanson
method) (and again with ``-lam`` for the absolute value). The maximiser
is ``(g + A^T mu) / ||g + A^T mu||`` and the rows with ``mu_j > 0`` are the
hyperplanes it lies on.

Two cheap upper bounds prune the NNLS calls: ``||P_K(g)|| <= ||g||`` and the
projection onto the half-space of a single row,
``||P_K(g)||^2 <= ||g||^2 - max_j (a_j^T g)_-^2 / ||a_j||^2``. Candidates are
solved in decreasing order of the bound until the bound falls below what is
still needed (branch and bound), so the maximum over a set of patterns is
exact and costs few NNLS solves.

*Exact mode*: the candidates are all patterns (:func:`enumerate_patterns`),
affordable at small rank; ``M`` is exact and a certificate is a proof.
*Search mode*: the candidates are the patterns of the program, the cells
visited by an ascent of ``|lam^T relu(U' z)|`` on the sphere from many
starts, fresh samples, and the neighbours of the best cells across the
hyperplanes their maximiser lies on (scored in that order). Its cheap
bounds, which only choose the candidates to solve, are computed in float32
(every value it reports is still an exact float64 projection). ``M`` is
then the largest value found, a lower bound of the true maximum; a
provable (loose) upper bound is
``max(||lam_+||, ||lam_-||)`` because ``||relu(U' z)|| <= ||U' z|| = ||z||``.

Lower bound: ``lam * min(1, beta / M)`` is dual feasible and
``-L^*(-lam')`` (``loss.dual``) is a lower bound of the optimum of (C) over
all patterns. Separable losses are scaled per output; the multinomial loss
needs the rows of ``Y - lam'`` on the simplex, which one global scale keeps.
"""

# Authors: the skbnconvex developers
# License: BSD 3 clause

import hashlib
import heapq
from dataclasses import dataclass, field

import numpy as np
import torch
from sklearn.utils import check_random_state

from ._dual_bounds import refine_projection_bounds
from ._nnls import cone_projection_on_rows, smallest
from ._patterns import (
    enumerate_patterns,
    max_patterns,
    pack_patterns,
    pattern_signs,
    sample_patterns,
)
from ._solvers._lawson_hanson import batched_lawson_hanson

# Largest pattern count for which the automatic mode enumerates (the default
# cap of enumerate_patterns).
EXACT_MAX_PATTERNS = 100_000

# Largest temporaries of the cheap bounds (entries). Larger ones are fresh
# memory at every chunk (the patterns as float64: 134 MB at 2^24, each
# page faulted in): letter's post-fit certificate, bounds 4.0 -> 3.2-3.4 s
# at 2^20 (2^19 to 2^24 timed).
_CHUNK_ENTRIES = 2**20
# ... and their slices that stay in cache (entries; 2^16 to 2^22 timed).
_CACHE_ENTRIES = 2**20
# Projected-gradient steps that tighten the candidates' upper bounds.
_REFINE_STEPS = 24
# Most rows whose half-spaces give the cheap bounds (_upper_bounds).
_CUT_ROWS = 4096
# Candidates whose bounds are refined together. A refinement is
# _REFINE_STEPS steps of a dozen tensor operations each, whose fixed
# cost larger chunks pay less often: the final certificates of the race's
# fits (captured, one thread, best of 2; 64 / 256 / 512) took 1.06 / 0.91
# / 0.88 s (synthetic), 1.59 / 1.35 / 1.39 s (breast cancer) and 3.58 /
# 3.11 / 3.17 s (red wine), with the same exact projections and result.
_REFINE_CHUNK = 256
# Cost of an exact projection beyond its products with U' (the small NNLS
# solves and their set-up), in the units of _refine_pays: measured, about
# 2.4 ms per projection at n = 569, k = 31 (breast cancer), where the products
# are negligible, and 2 ms at n = 45 730, k = 10 (CASP).
_EXACT_OVERHEAD = 3e6
# Candidates projected together by the batched Lawson-Hanson method
# (_cone_projections), at most, and the rows up to which it is used (above,
# one NNLS on growing sets of rows per candidate, _cone_projection). Its
# steps add one row each and scan all rows, which pays where the fixed cost
# of one NNLS problem after another dominates. Final certificates of the
# race's fits (captured, one thread; one at a time / fixed batches of 8,
# 16, 32, 64, 128): synthetic (n = 500) 1.16 / 1.41, 1.05, 0.88, 0.79,
# 0.79 s, breast cancer (569) 1.44 / 1.86, 1.38, 1.13, 1.04, 1.01 s; red
# wine (1 599) 3.44 / 3.43 s in 64s; larger n slower (letter's post-fit
# certificate 22.7 -> 30.8 s, CASP's 12.5 -> 24.0 s). Fixed batches solve
# candidates that one at a time would skip (synthetic 857 -> 904 at 64);
# batches doubling from one up to 64 (the scorer's, across its stages):
# 1.12 -> 0.83 s and 857 projections, breast cancer 1.46 -> 1.12 s, 960
# -> 966.
_PROJECT_BATCH = 64
_PROJECT_BATCH_MAX_ROWS = 1024


@dataclass
class Certificate:
    """Optimality certificate of a prediction of program (C).

    Attributes
    ----------
    M : ndarray of shape (n_outputs,)
        ``max_{||z|| <= 1} |lam_c^T relu(U' z)|`` per output: exact in exact
        mode, the largest value found (a lower bound of it) in search mode.
    M_upper : ndarray of shape (n_outputs,)
        A proven upper bound of the same maximum (equal to ``M`` in exact
        mode).
    beta : float
        Weight of the group penalty.
    exact : bool
        Whether every activation pattern was checked.
    certified : bool
        True only in exact mode, when ``max M <= beta * (1 + tol)`` (the dual
        point is feasible to ``tol``) or the proven relative gap is at most
        ``tol``: the objective is then the global optimum over all patterns
        to that accuracy.
    patterns : ndarray of bool, shape (n_samples, q)
        Patterns whose dual constraint is violated (score above ``beta``),
        most violated first.
    scores : ndarray of shape (q,)
        Their ``max_c ||P_K(+-U'^T D lam_c)||``.
    primal : float
        Objective of (C) given by the caller.
    lower_bound : float
        Dual value at ``lam * min(1, beta / M)``: a lower bound of the
        optimum of (C) over all patterns in exact mode, an estimate in
        search mode.
    gap : float
        ``(primal - lower_bound) / max(|primal|, tiny)``.
    proven_lower_bound : float
        Dual value at ``lam * min(1, beta / M_upper)``: always a lower bound.
    proven_gap : float
        Relative gap to ``proven_lower_bound``.
    n_checked : int
        Number of (pattern, output, sign) cone projections solved by NNLS.
    """

    M: np.ndarray
    M_upper: np.ndarray
    beta: float
    exact: bool
    certified: bool
    patterns: np.ndarray
    scores: np.ndarray
    primal: float
    lower_bound: float
    gap: float
    proven_lower_bound: float
    proven_gap: float
    n_checked: int = 0
    maximisers: np.ndarray = field(default=None, repr=False)


def _relative_gap(primal, lower):
    return (primal - lower) / max(abs(primal), np.finfo(np.float64).tiny)


def dual_lower_bound(loss, lam, Y, M, beta):
    """Dual value of ``lam`` scaled into the dual feasible set.

    Parameters
    ----------
    loss : loss object
    lam : ndarray of shape (n_samples, n_outputs)
        ``-grad L(F)``.
    Y : ndarray of shape (n_samples, n_outputs)
    M : ndarray of shape (n_outputs,)
        Upper bounds (or estimates) of the dual-constraint maxima.
    beta : float

    Returns
    -------
    lower_bound : float
        ``loss.dual(lam * s, Y)`` with ``s = min(1, beta / M)`` per output
        for separable losses, one global ``s`` for the multinomial loss
        (``Y - s lam`` is then a convex combination of ``Y`` and the softmax
        and stays on the simplex).
    """
    M = np.asarray(M, dtype=float)
    with np.errstate(divide="ignore"):
        scale = np.minimum(1.0, np.where(M > 0, beta / M, np.inf))
    if not getattr(loss, "separable", True):
        scale = np.full_like(scale, scale.min())
    return float(loss.dual(lam * scale, Y))


def _cone_projection(Ut, d, g):
    """``||P_K(g)||`` and the maximiser on ``K = {z : (2d - 1) Ut z >= 0}``.

    Returns ``(value, z, active)`` with ``active`` the rows whose multiplier
    is positive (the hyperplanes the maximiser lies on).
    """
    s = pattern_signs(d)
    n, k = Ut.shape
    # NNLS on growing sets of rows from the 4k most violated (letter: one
    # NNLS with 16 000 variables took 46 ms, this 5 ms).
    Ag = s * (Ut @ g)
    rows = np.zeros(n, dtype=bool)
    first = min(4 * k, n)
    rows[smallest(Ag, first)] = True
    # Round-off of the zero entries (rows of A have norms <= 1).
    z, mu = cone_projection_on_rows(
        Ut, g, rows & (Ag < 0), tol=1e-13 * np.linalg.norm(g), max_add=4 * k,
        signs=s,
    )
    value = float(np.linalg.norm(z))
    if value <= 0:
        return 0.0, np.zeros_like(g), mu > 0
    return value, z / value, mu > 0


def _cone_projections(Ut, D, G):
    """:func:`_cone_projection` of the candidates ``D`` (n, b) at ``G`` (b, k).

    Up to ``_PROJECT_BATCH_MAX_ROWS`` rows, all at once by the torch
    solver's batched Lawson-Hanson method (``batched_lawson_hanson`` of
    :mod:`skbnconvex._solvers._lawson_hanson`, in float64, from no active
    row, to the relative tolerance of :func:`_cone_projection`): one small
    Cholesky solve per candidate and one product with ``U'`` per step, not
    the fixed cost of one NNLS problem after another. Above that many rows,
    and for the candidates it leaves unfinished (a degenerate passive set),
    :func:`_cone_projection`. (Starting from the ``k / 2`` most violated
    rows, dropped at the first step where their multipliers are not
    positive, did not take fewer steps.)

    Returns
    -------
    values : ndarray of shape (b,)
    Z : ndarray of shape (b, k)
        Unit maximisers (zero where the value is zero).
    active : list of ndarray of bool, shape (n,)
        The rows of positive multiplier of each maximiser.
    """
    n, k = Ut.shape
    b = G.shape[0]
    values, Z, active = np.zeros(b), np.zeros((b, k)), [None] * b
    todo = range(b)
    if n <= _PROJECT_BATCH_MAX_ROWS and b > 1:
        R = np.zeros((b, k), dtype=np.int64)
        V = np.zeros((b, k), dtype=bool)
        out, _, _ = batched_lawson_hanson(
            Ut, pattern_signs(D.T), np.arange(b), np.asarray(G, dtype=np.float64),
            R, V, np.zeros((b, k)), 5 * k + 20, 1e-13, None, 0,
        )
        values = np.linalg.norm(out, axis=1)
        done = ~np.isnan(values)
        todo = np.flatnonzero(~done)
        pos = done & (values > 0)
        Z[pos] = out[pos] / values[pos, None]
        for j in np.flatnonzero(done):
            active[j] = np.zeros(n, dtype=bool)
            active[j][R[j, V[j]]] = True  # the final passive rows
    for j in todo:
        values[j], Z[j], active[j] = _cone_projection(Ut, D[:, j], G[j])
    return values, Z, active


def _pg_step(Ut):
    """Step ``1 / ||U'||^2`` of the projected gradient in :func:`_refined_bounds`."""
    return 1.0 / max(np.linalg.norm(Ut, 2) ** 2, 1e-300)


def _refined_bounds(Ut, S, g, step=None, below=0.0, n_steps=_REFINE_STEPS):
    """Upper bounds of ``||P_K(g_b)||`` for rows ``g`` (B, k) and signs ``S`` (B, n).

    Accelerated projected gradient on the dual, with the step
    ``1 / ||U'||^2`` (:func:`~skbnconvex._dual_bounds.refine_projection_bounds`),
    far tighter than the single half-space bound: at realistic rank most
    sampled patterns score below ``beta``, which that bound does not show
    (breast cancer: all 1 000 sampled candidates of every certificate went
    to an exact projection, 2.4 ms each; with these bounds none). A bound
    stops improving once it is at most ``below``.
    """
    if step is None:
        step = _pg_step(Ut)
    g = torch.from_numpy(np.ascontiguousarray(g, dtype=np.float64))
    bound = refine_projection_bounds(
        torch.from_numpy(np.ascontiguousarray(Ut, dtype=np.float64)),
        torch.from_numpy(np.ascontiguousarray(S, dtype=np.float64)),
        g, torch.linalg.vector_norm(g, dim=1), below, n_steps, step,
    )
    return bound.numpy()


def _refine_pays(n, k):
    """Whether refining a candidate's bound costs less than projecting it.

    A refinement is ``_REFINE_STEPS`` steps of two products with ``U'``
    (``2 n k``) and four passes over the candidate's ``n`` rows; an exact
    projection (:func:`_cone_projection`) is a few products with ``U'``
    (about ``8 n k``) and small NNLS solves (``_EXACT_OVERHEAD``). The
    refinement pays where it is the cheaper, at small ``n`` or large rank:
    it also spares the exact projections of the candidates it bounds below
    the need. At large ``n`` and small rank it does not (CASP, ``n =
    45 730``, ``k = 10``: 11 ms to refine a candidate, 2 ms to project it).
    """
    return _REFINE_STEPS * (2 * k + 4) * n <= _EXACT_OVERHEAD + 8 * n * k


def _upper_bounds(Ut, D, lam, dtype=np.float64):
    """Cheap bounds of ``||P_K(+-U'^T D lam_c)||`` for all candidates.

    Returns an array of shape ``(n_outputs, 2, n_patterns)`` (sign ``+`` for
    ``lam``, ``-`` for ``-lam``): the norm of the projection onto the most
    violated single half-space, which contains the cone,
    ``||P_K(g)||^2 <= ||g||^2 - max_j (a_j^T g)_-^2 / ||a_j||^2``; and the
    gradients ``G`` (n_outputs, n_patterns, k). One output at a time, in
    chunks of patterns so that the ``(n, patterns)`` temporaries stay
    within ``_CHUNK_ENTRIES``.

    The half-spaces are those of every ``ceil(n / _CUT_ROWS)``-th row: any
    of them contains the cone, so the bound holds, a little looser, and
    costs a fraction at large ``n`` (letter: 16 000 rows, 26 outputs).

    With ``dtype=np.float32`` the products run in single precision (half
    the time at letter's shape) and the bounds and ``G`` carry its
    round-off: they are then estimates that order and select candidates,
    not proofs, and ``G`` is not accurate enough for an exact projection.
    """
    n, C = lam.shape
    P, k = D.shape[1], Ut.shape[1]
    stride = -(-n // _CUT_ROWS)
    Uc = Ut[::stride]
    row_norm = np.sqrt(np.einsum("nk,nk->n", Uc, Uc))
    # Rows scaled to unit norm (zero rows cut nothing).
    Ut_unit = (Uc / np.where(row_norm > 0, row_norm, np.inf)[:, None]).astype(dtype)
    ub = np.empty((C, 2, P))
    G = np.empty((C, P, k), dtype=dtype)
    # Columns lam_c * U' of all outputs side by side: one product reads a
    # chunk of D once for all outputs. With the slices below: letter's
    # shape (16 000 rows, 26 outputs, 2 000 candidates) 1.2 s -> 0.7 s.
    UL = (lam[:, :, None] * Ut[:, None, :]).reshape(n, C * k).astype(dtype)
    cols = max(1, _CHUNK_ENTRIES // n)
    for a in range(0, P, cols):
        sl = slice(a, a + cols)
        Df = D[:, sl].astype(dtype)
        S = pattern_signs(D[::stride, sl], dtype)  # row j of A: (2 D_j - 1) u_j
        GC = (UL.T @ Df).reshape(C, k, -1)  # Ut^T D_p lam_c
        G[:, sl] = GC.transpose(0, 2, 1)
        sq = np.einsum("ckp,ckp->cp", GC, GC, dtype=np.float64)
        cut = np.empty((C, 2, GC.shape[2]))
        # The (cut rows, columns) products in slices that stay in cache.
        sub = max(1, _CACHE_ENTRIES // S.shape[0])
        for b in range(0, GC.shape[2], sub):
            ss = slice(b, b + sub)
            for c in range(C):
                AG = S[:, ss] * (Ut_unit @ GC[c, :, ss])  # a_j^T g / ||a_j||
                # For +g the violated rows have AG < 0; for -g, AG > 0.
                cut[c, 0, ss] = np.minimum(AG.min(axis=0), 0.0)
                cut[c, 1, ss] = np.maximum(AG.max(axis=0), 0.0)
        ub[:, :, sl] = np.sqrt(np.maximum(sq[:, None, :] - cut**2, 0.0))
    return ub, G


class _Scorer:
    """Exact maxima over sets of candidate patterns, by branch and bound.

    Keeps, across calls, the best value per output, the best score of every
    pattern seen (over outputs and signs) and the NNLS maximisers, so that a
    search can add candidates in stages.
    """

    def __init__(self, Ut, lam, beta, n_keep, max_checks=None, bounds_dtype=np.float64):
        self.Ut, self.lam, self.beta = Ut, lam, beta
        # float32 cheap bounds only select candidates (a search); an exact
        # certificate skips candidates by them, which needs float64.
        self._bounds_dtype = bounds_dtype
        self._step = _pg_step(Ut)  # one SVD per search, not per chunk
        self._refine = _refine_pays(*Ut.shape)
        # A search needs good candidates, not all of them: a cap on the
        # exact projections per stage of candidates (taken in order of their
        # upper bounds) bounds its cost when the bounds are loose, far from
        # the optimum, and leaves every stage (samples, ascent, flips) its
        # share.
        self.max_checks = np.inf if max_checks is None else max_checks
        self.C = lam.shape[1]
        self.n_keep = n_keep
        self.best = np.zeros(self.C)
        self.best_z = np.zeros((self.C, 2, Ut.shape[1]))
        self.best_sign_value = np.zeros((self.C, 2))
        # Candidates are numbered in the order seen. Only their digests are
        # kept (to skip repeats), and the columns of those solved exactly
        # (the only ones that can be violators or seed flips): a search sees
        # some 10^5 candidates of n entries each (letter: 1.6 GB as an
        # array, re-stacked at every stage before).
        self._seen = set()
        self._columns = {}
        self.n_seen = 0
        self.pattern_score = np.zeros(0)
        self.solved = []  # (value, c, sign, candidate number, active)
        self.n_checked = 0
        self._batch = 1  # exact projections at once, doubling (see add)
        # The n_keep best pattern scores, by column: the bar a candidate must
        # clear to enter the list of violators.
        self.top = {}

    def _kth_score(self):
        if self.n_keep == 0 or len(self.top) < self.n_keep:
            return 0.0
        return min(self.top.values())

    def _record(self, q, value):
        if value <= self.pattern_score[q]:
            return
        self.pattern_score[q] = value
        if q in self.top or len(self.top) < self.n_keep:
            self.top[q] = value
        elif self.n_keep:
            worst = min(self.top, key=self.top.get)
            if value > self.top[worst]:
                del self.top[worst]
                self.top[q] = value

    def register(self, D):
        """Mark the candidates ``D`` as seen; return the new ones.

        To be scored later by ``add(..., registered=True)``: later stages
        then skip them as repeats, as if they had been scored now.
        """
        return self._new(D)[0]

    def add(self, D, output=None, max_checks=None, bounds=None, registered=False):
        """Score the new (deduplicated) candidates ``D``; return their count.

        With ``output``, only for that output (candidates found by its own
        search; scoring them for every output costs ``n_outputs`` times
        more), with at most ``max_checks`` exact projections (default: the
        scorer's cap). ``bounds`` (n_outputs, 2, candidates), upper bounds
        of the candidates' values known beforehand, replace the cheap ones
        where tighter. ``registered``: ``D`` is the output of
        :meth:`register` (new, not empty), scored as it is.
        """
        if registered:
            kept = np.arange(D.shape[1])
        else:
            D, kept = self._new(D)
        if D.shape[1] == 0:
            return 0
        offset = self.n_seen
        self.n_seen += D.shape[1]
        self.pattern_score = np.concatenate([self.pattern_score, np.zeros(D.shape[1])])
        outputs = range(self.C) if output is None else [output]
        ub, G = _upper_bounds(
            self.Ut, D, self.lam[:, list(outputs)], dtype=self._bounds_dtype
        )
        if bounds is not None:
            ub = np.minimum(ub, bounds[list(outputs)][:, :, kept])
        if max_checks is None:
            max_checks = self.max_checks
        checks_before = self.n_checked
        P = D.shape[1]
        for j, c in enumerate(outputs):
            cheap = ub[j].ravel()
            order = np.argsort(-cheap, kind="stable")
            # Candidates in decreasing order of their refined bounds
            # (_refined_bounds), refined lazily, a chunk at a time in the
            # order of the cheap ones: a candidate is taken from the pool
            # only when no unrefined one can beat it (refined <= cheap).
            pool, ptr = [], 0
            while True:
                # Needed for the exact maximum of output c, or for the list
                # of the n_keep most violated patterns.
                need = min(self.best[c], max(self.beta, self._kth_score()))
                while (
                    ptr < len(order)
                    and cheap[order[ptr]] > need
                    and (not pool or -pool[0][0] < cheap[order[ptr]])
                ):
                    chunk = order[ptr: ptr + _REFINE_CHUNK]
                    ptr += len(chunk)
                    refined = cheap[chunk]
                    if self._refine:
                        sg, pc = np.divmod(chunk, P)
                        g = np.where(sg[:, None] == 0, 1.0, -1.0) * G[j, pc]
                        S = pattern_signs(D[:, pc].T)
                        refined = np.minimum(
                            refined,
                            _refined_bounds(self.Ut, S, g, self._step, below=need),
                        )
                    for flat, value in zip(chunk, refined):
                        if value > need:
                            heapq.heappush(pool, (-value, int(flat)))
                # The next candidates, projected together: each one only
                # while no unrefined candidate can beat it and its bound is
                # above what is needed. The need can only grow with the
                # batch's values: a batch may solve candidates that one at
                # a time would have skipped (all exactly), fewer than were
                # solved before it, as the batches double from one.
                room = min(self._batch, max_checks - (self.n_checked - checks_before))
                self._batch = min(2 * self._batch, _PROJECT_BATCH)
                batch = []
                while pool and len(batch) < room:
                    bound = -pool[0][0]
                    unrefined = cheap[order[ptr]] if ptr < len(order) else -np.inf
                    if bound <= need or unrefined > bound:
                        break
                    batch.append(heapq.heappop(pool)[1])
                if not batch:
                    break
                s, p = np.divmod(np.array(batch), P)
                if G.dtype == np.float64:
                    g = G[j, p]
                else:  # the gradient again, in float64, for the exact value
                    g = (D[:, p] * self.lam[:, c:c + 1]).T @ self.Ut
                g = np.where(s[:, None] == 0, 1.0, -1.0) * g
                values, Z, active = _cone_projections(self.Ut, D[:, p], g)
                self.n_checked += len(batch)
                for i in range(len(batch)):
                    value, si, q = values[i], int(s[i]), offset + int(p[i])
                    self._columns[q] = D[:, p[i]]
                    self.solved.append((value, c, si, q, active[i]))
                    self._record(q, value)
                    if value > self.best[c]:
                        self.best[c] = value
                    if value > self.best_sign_value[c, si]:
                        self.best_sign_value[c, si] = value
                        self.best_z[c, si] = Z[i]
        return D.shape[1]

    def top_solved(self, count):
        """The ``count`` best solved projections (value, c, sign, column, active)."""
        return sorted(self.solved, key=lambda t: -t[0])[:count]

    def violators(self, margin):
        """Patterns scoring above ``beta * (1 + margin)``, best first."""
        s = self.pattern_score
        idx = np.flatnonzero(s > self.beta * (1.0 + margin))
        idx = idx[np.argsort(-s[idx], kind="stable")][: self.n_keep]
        if len(idx) == 0:
            return np.zeros((self.Ut.shape[0], 0), bool), s[idx]
        return np.column_stack([self._columns[q] for q in idx]), s[idx]

    def column(self, q):
        """Candidate ``q`` (one that was solved exactly)."""
        return self._columns[q]

    def _new(self, D):
        """Columns of ``D`` not seen before and not empty, in order.

        Returns them and their indices in ``D``.
        """
        D = np.asarray(D, dtype=bool)
        keys = pack_patterns(D)  # one contiguous row per pattern
        keep = []
        for j, key in enumerate(keys):
            # A 128-bit digest: a collision (which would skip a pattern) is
            # about as likely as 2^-90 for 10^5 candidates.
            h = hashlib.blake2b(key.tobytes(), digest_size=16).digest()
            if h not in self._seen:
                self._seen.add(h)
                keep.append(j)
        # Empty patterns are those whose key has no bit set: one selection
        # of columns of D and no other pass over it.
        keep = np.asarray(keep, dtype=np.intp)
        keep = keep[keys[keep].any(axis=1)]
        if len(keep) == D.shape[1]:
            return D, keep
        # The kept columns from their keys (a Fortran-ordered array): a
        # selection of columns reads all of D with a stride (the ascent's
        # candidates, mostly repeats: letter's search 1.4 s -> 0.2 s).
        return np.unpackbits(keys[keep], axis=1, count=D.shape[0]).view(bool).T, keep


def _ascent(Ut, lam, starts, n_iter):
    """Fixed-point ascent of ``lam^T relu(U' z)`` on the sphere.

    From ``z``, the pattern ``D = 1[U' z >= 0]`` makes the function linear
    with gradient ``g = U'^T D lam``; stepping to ``g / ||g||`` is the best
    point of that linear piece's extension, which moves across cells
    towards the large values (a power-iteration-like step). All starts are
    iterated together. Returns the visited patterns (n, n_starts * n_iter),
    a Fortran-ordered array (each pattern contiguous).
    """
    # The smallest normal number of the data's precision (the ascent runs
    # in float32, where 1e-300 is zero).
    tiny = np.finfo(np.result_type(Ut, starts)).tiny
    # The starts as rows: every pass below then reads and writes contiguous
    # (starts, n) arrays. With (n, starts) ones the product of the strided
    # pattern slices with lam dominated (letter's post-fit search, 20 000
    # rows, ~70 starts: 187 -> 85 ms an output and sign).
    Z = (starts / np.maximum(np.linalg.norm(starts, axis=0), tiny)).T
    m = Z.shape[0]
    UtT = np.ascontiguousarray(Ut.T)
    # The patterns are written in place, not stacked at the end (a copy of
    # them all), one row per visited pattern: the result is the transpose
    # of a C-ordered array, whose columns pack_patterns reads contiguously.
    visited = np.empty((n_iter * m, Ut.shape[0]), dtype=bool)
    for it in range(n_iter):
        Dz = np.greater_equal(Z @ UtT, 0, out=visited[it * m: (it + 1) * m])
        G = (Dz * lam) @ Ut
        norms = np.linalg.norm(G, axis=1)
        if not np.any(norms > 0):
            return visited[: (it + 1) * m].T
        # Half step: keeps part of the current direction, which avoids the
        # two-cycles of the plain fixed point.
        Z = 0.5 * Z + 0.5 * G / np.maximum(norms, tiny)[:, None]
        Z /= np.maximum(np.linalg.norm(Z, axis=1), tiny)[:, None]
    return visited.T


def _flip_neighbours(D_col, active, max_flips=32):
    """Patterns across the hyperplanes through a cell's maximiser.

    The maximiser of a cell lies on the hyperplanes of the rows with a
    positive NNLS multiplier; the adjacent cells flip one of them (or all
    together, the cell on the other side of their intersection).
    """
    rows = np.flatnonzero(active)[:max_flips]
    if rows.size == 0:
        return np.zeros((D_col.shape[0], 0), bool)
    out = np.repeat(D_col[:, None], rows.size + 1, axis=1)
    out[rows, np.arange(rows.size)] ^= True
    out[rows, -1] ^= True
    return out


def optimality_certificate(
    Ut,
    F,
    Y,
    loss,
    beta,
    *,
    primal,
    patterns=None,
    pattern_bounds=None,
    blocks=None,
    all_patterns=None,
    mode="auto",
    n_violators=10,
    n_samples=1000,
    n_starts=64,
    n_ascent=30,
    n_flip_rounds=5,
    max_checks=1000,
    tol=1e-6,
    random_state=None,
):
    r"""Check the global optimality of a prediction of program (C).

    With ``lam = -loss.gradient(F, Y)`` computes, for every output ``c``,

    .. math:: M_c = \max_{\|z\| \le 1} |\lambda_c^T \operatorname{relu}(U' z)|

    (see the module docstring), the patterns whose dual constraint
    ``M_c <= beta`` is violated, a dual lower bound of the optimum of (C)
    over all patterns and the relative optimality gap.

    Parameters
    ----------
    Ut : ndarray of shape (n_samples, k)
        Whitened data ``[U, 1/sqrt(n)]``.
    F : ndarray of shape (n_samples, n_outputs)
        Prediction of the program at the point to certify.
    Y : ndarray of shape (n_samples, n_outputs)
        Targets coded for ``loss``.
    loss : loss object
        Any loss of :mod:`skbnconvex._losses` (uses ``gradient`` and ``dual``).
    beta : float
        Weight of the group penalty.
    primal : float
        Objective of (C) at the point (``program.objective``).
    patterns : ndarray of bool, shape (n_samples, P), default=None
        Patterns of the current program; always checked.
    pattern_bounds : ndarray of shape (n_outputs, 2, P), default=None
        Upper bounds of the scores ``||P_K(+-U'^T D_i lam_c)||`` of
        ``patterns`` at this point (sign ``+`` first), such as the torch
        solver's (``SolverResult.dual_bounds``): where tighter than the
        certificate's own cheap bounds they spare exact projections (at an
        optimum most of the program's blocks are bounded below ``beta``).
    blocks : tuple (Wp, Wn) of ndarray (n_outputs, P, k), default=None
        Current blocks; their directions seed the ascent in search mode.
    all_patterns : ndarray of bool, default=None
        Every pattern, if the caller has enumerated them already (exact
        mode then reuses them).
    mode : {"auto", "exact", "search"}, default="auto"
        ``"auto"`` is exact when ``all_patterns`` is given or the bound
        :func:`max_patterns` is at most ``EXACT_MAX_PATTERNS``.
    n_violators : int, default=10
        How many of the most violated patterns to return.
    n_samples : int, default=1000
        Fresh sampled patterns (search mode).
    n_starts : int, default=64
        Random starts of the ascent, per output and sign (search mode);
        the current blocks' directions are added to them.
    n_ascent : int, default=30
        Ascent iterations per start.
    n_flip_rounds : int, default=5
        Rounds of moving the best cells across their active hyperplanes.
    max_checks : int, default=1000
        Search mode: most exact cone projections per stage of candidates
        (current patterns, ascent over all outputs and signs, samples,
        flips), spent on the candidates with the largest upper bounds
        (exact mode has no cap). The ascent of an output scores its
        candidates for that output only.
    tol : float, default=1e-6
        ``certified`` needs exact mode and ``max M <= beta * (1 + tol)`` or
        ``gap <= tol``; violators need a score above ``beta * (1 + tol)``.
    random_state : int, RandomState instance or None, default=None

    Returns
    -------
    certificate : Certificate
    """
    Ut = np.asarray(Ut, dtype=np.float64)
    F = np.asarray(F, dtype=np.float64)
    Y = np.asarray(Y, dtype=np.float64)
    n, k = Ut.shape
    C = Y.shape[1]
    lam = -loss.gradient(F, Y)
    if mode not in ("auto", "exact", "search"):
        raise ValueError(f"mode must be 'auto', 'exact' or 'search', got {mode!r}.")
    if mode == "auto":
        exact = all_patterns is not None or max_patterns(n, k - 1) <= EXACT_MAX_PATTERNS
    else:
        exact = mode == "exact"
    if exact and all_patterns is None:
        max_count = EXACT_MAX_PATTERNS
        if mode == "exact":
            max_count = max(EXACT_MAX_PATTERNS, max_patterns(n, k - 1))
        all_patterns = enumerate_patterns(Ut, max_count=max_count)

    scorer = _Scorer(Ut, lam, beta, n_violators,
                     max_checks=None if exact else max_checks,
                     bounds_dtype=np.float64 if exact else np.float32)
    if patterns is not None and patterns.shape[1]:
        if pattern_bounds is not None:
            # A margin for the round-off between the bounds' point and this
            # one (the solver's last clean-up projection).
            pattern_bounds = np.asarray(pattern_bounds, dtype=float) * (1 + 1e-9)
        scorer.add(patterns, bounds=pattern_bounds)
    if exact:
        scorer.add(all_patterns)
    else:
        rng = check_random_state(random_state)
        # The fresh samples are drawn and registered first (the random
        # stream and the candidates of every stage as before: an ascent
        # cell that repeats a sample is left to the samples, which are
        # scored for every output) and scored after the ascent: the cells
        # it reaches score higher than random ones, so more samples fall
        # below the values still needed and are never projected exactly
        # (CASP's post-fit certificate: 2 601 -> 1 737 exact projections,
        # 11.3-13.8 s -> 8.7-11.3 s on one thread; letter's 3 357 -> 2 383;
        # the same maxima and gaps).
        samples = scorer.register(sample_patterns(Ut, n_samples, rng))
        # The ascent only proposes candidates, which are then scored
        # exactly: it runs in float32.
        Ut32 = Ut.astype(np.float32)
        for c in range(C):
            for s, sign in enumerate((1.0, -1.0)):
                starts = [rng.standard_normal((k, n_starts))]
                if blocks is not None:
                    W = blocks[s][c]
                    W = W[np.linalg.norm(W, axis=1) > 0]
                    starts.append(W.T)
                z = scorer.best_z[c, s]
                if np.any(z):
                    starts.append(z[:, None])
                # The ascent stage shares max_checks over the outputs and
                # signs (at least a few each).
                scorer.add(
                    _ascent(
                        Ut32, (sign * lam[:, c]).astype(np.float32),
                        np.hstack(starts).astype(np.float32), n_ascent,
                    ),
                    output=c, max_checks=max(8, max_checks // (2 * C)),
                )
        scorer.add(samples, registered=True)
        # Local search across cells: flip the hyperplanes the best maximisers
        # lie on, while that finds new, better cells.
        for _ in range(n_flip_rounds):
            before = scorer.best.copy()
            neighbours = [
                _flip_neighbours(scorer.column(q), active)
                for _, _, _, q, active in scorer.top_solved(max(n_violators, 10))
            ]
            added = scorer.add(np.hstack(neighbours)) if neighbours else 0
            if added == 0 or np.all(scorer.best <= before * (1 + 1e-12)):
                break

    M = scorer.best.copy()
    if exact:
        M_upper = M.copy()
    else:
        # ||relu(U'z)|| <= ||U'z|| = ||z||: lam^T relu(U'z) <= ||lam_+||.
        M_upper = np.maximum(
            np.linalg.norm(np.maximum(lam, 0), axis=0),
            np.linalg.norm(np.maximum(-lam, 0), axis=0),
        )
        M_upper = np.maximum(M_upper, M)
    D_viol, scores = scorer.violators(tol)
    lower = dual_lower_bound(loss, lam, Y, M, beta)
    proven = dual_lower_bound(loss, lam, Y, M_upper, beta)
    gap = _relative_gap(primal, lower)
    return Certificate(
        M=M,
        M_upper=M_upper,
        beta=float(beta),
        exact=bool(exact),
        certified=bool(exact and (M.max(initial=0.0) <= beta * (1.0 + tol) or gap <= tol)),
        patterns=D_viol,
        scores=scores,
        primal=float(primal),
        lower_bound=lower,
        gap=gap,
        proven_lower_bound=proven,
        proven_gap=_relative_gap(primal, proven),
        n_checked=scorer.n_checked,
        maximisers=scorer.best_z,
    )
