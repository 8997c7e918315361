r"""First-order solver of program (C) in PyTorch (CPU or CUDA).

Program (C), for outputs ``c`` and patterns ``i`` with blocks ``w`` ranging
over the ``a_{c,i}`` (sign ``+1``) and ``b_{c,i}`` (sign ``-1``), is

.. math::

    \min_w \; L(A w) + \beta \sum_{\text{blocks}} \|w_b\|_2
    \quad \text{s.t.} \quad K_i w_b \ge 0, \qquad K_i = (2 D_i - I)\, U',

with ``(A w)_{:, c} = \sum_i D_i U' (a_{c,i} - b_{c,i})``.

Method
------
1. **Accelerated proximal gradient with the cones in the prox.** For a
   closed convex cone ``C`` and ``t > 0`` the proximal map of
   ``t \|\cdot\| + \iota_C`` is radial:
   ``prox(p) = (1 - t / \|\Pi_C(p)\|)_+ \, \Pi_C(p)`` (the support function
   of the unit ball of ``C`` is ``\|\Pi_C(\cdot)\|``, Moreau). So FISTA with
   adaptive restart (O'Donoghue and Candes, 2015) handles the constraints
   exactly, every iterate is feasible, and no multiplier or penalty
   parameter has to converge (the augmented Lagrangian that this replaces
   needed a large penalty, hence tiny steps, because optimal blocks sit on
   faces of their cones). The step ``1 / L`` follows the local curvature
   by backtracking, capped by the loss curvature times ``\|A\|^2`` (power
   iteration on the working set).

2. **Warm-started exact cone projections.** ``\Pi_C(p) = p + K^T \mu`` with
   ``\mu = \arg\min_{\mu \ge 0} \|p + K^T \mu\|`` (``K`` has ``n`` rows and
   ``k`` orthonormal columns). This non-negative least-squares problem is
   solved by Lawson-Hanson, batched over the blocks (one small Cholesky
   solve and one product with the data per step), warm-started from the
   active rows of the block's previous projection: near convergence faces
   stop changing and a projection is one step. On the CPU the step's
   check of the ``n`` rows runs in float32 on rows of unit norm (large
   batches), and decides exactly: for the blocks whose float32 minimum is
   within its round-off of zero, the float64 values of the rows within that
   round-off decide (``_Faces._min_row``). The few blocks that need
   many steps finish one by one on the host in float64 (at large ``n k``,
   once out of steps, by NNLS on growing sets of rows). A block remembers
   the rows of smallest margin at its last float32 check: a later check
   near that point reads only them, since the other rows' margins cannot
   change sign within that distance. The norms of the
   Lawson-Hanson iterates decrease, so a block can stop as soon as its norm
   is below the prox threshold (it is then zero); before that, two
   remembered bounds discard most zero blocks without touching the ``n``
   rows: the block's bound at the last point ``q_0`` where the prox
   bounded it, since projections are non-expansive
   (``\|\Pi_C(q)\| \le \|\Pi_C(q_0)\| + \|q - q_0\|``, ``O(k)``), and its
   last multipliers (``O(k^2)``). On the CPU the
   batched steps of small batches, and the last blocks of large ones, run
   in NumPy (:mod:`._lawson_hanson`), where the fixed cost of a small
   operation is lower than torch's.

3. **Newton on the identified faces.** At every check where the support or
   the active rows of the non-zero blocks changed, the program restricted
   to them (a group lasso on subspaces, smooth away from zero blocks) is
   solved by a damped Newton method with a dense Hessian of the size of the
   faces; blocks it drives through zero leave (with the squared loss,
   whose Hessian does not depend on the point, the matrix is formed once
   per attempt and the columns left are its principal submatrix). Near
   the optimum the faces guessed from an iterate miss a row here and
   there: where Newton's point leaves the cones of a few blocks only, the
   first row crossed joins the face, rows with a negative multiplier leave
   it, and Newton runs again (a primal active-set step). Its best point,
   projected onto the cones, replaces the FISTA iterate when its objective
   is lower, and the certificate below decides; its faces become the
   remembered rows of the blocks, from which the certificate's projections
   start. Where the guesses keep failing (many outputs, far from the
   optimum) the attempts back off: after ``f`` refusals in a row, the next
   ``2^f - 1`` checks skip them.

4. **Working set over patterns** (as in the ``celer`` Lasso solver). The
   optimum uses few blocks and every iteration costs ``O(n k m)`` for ``m``
   patterns, so the solver runs on the patterns that carry a non-zero block
   plus the most violating ones (twice the patterns in use, and four times
   the last set while violators remain; the first set holds 10 patterns
   per output, up to 40); a full check over all patterns computes the
   duality gap and rebuilds the set when the gap is not small enough. The
   full check's bounds of large programs are mostly cheap ones, so there
   new patterns enter only once an exact projection of one of their
   blocks shows that it violates (``_confirm_entrants``: the projections
   the set's first prox would make, made before the set is chosen;
   letter's third set: 415 patterns instead of 497, of which 245 and 254
   carried a block at its end).

5. **Barrier method where FISTA stalls.** At small ``alpha`` on real data
   the optimum uses many overlapping patterns and the working set is badly
   conditioned: FISTA's progress per iteration becomes negligible (measured
   on red wine at ``alpha=0.01``: ten times above the optimum after 3000
   iterations). When, at the rate of its restricted gaps over the last
   ``_STALL_CHECKS`` checks, FISTA would need more iterations than the
   barrier method costs (``_BARRIER_NEWTON_STEPS`` Newton steps, counted
   in operations), the working set is solved by the primal-dual
   interior-point method of :mod:`._barrier` (log barrier, Mehrotra's
   predictor-corrector), whose Newton systems have the size of ``m k``
   (per output) and whose iteration count does not depend on
   conditioning; later working sets of the same solve go to it after one
   check. It applies while those systems fit ``_BARRIER_ENTRIES_MAX``
   entries, their loss Hessians cost at most ``_BARRIER_FLOPS_MAX``
   operations, and every pattern's cone has an interior.

Stopping rule (the certificate)
-------------------------------
With ``\lambda = -\nabla L(A w)`` and ``g_b = \pm U'^T D_i \lambda_c`` the
dual constraint of a block is ``\|\Pi_{C_i}(g_b)\| \le \beta``. An upper
bound ``M`` of ``\max_b \|\Pi_{C_i}(g_b)\|`` comes from
``\|\Pi_C(g)\| \le \|g + K^T \mu\|`` for every ``\mu \ge 0`` (remembered
multipliers, ``\mu = (-K g)_+`` refined by projected gradient) and from
exact projections, evaluated lazily from the largest bound down and only
while a certificate is within reach (on large problems the refinement
too: at the zero start of letter, 26 624 blocks of 16 000 rows, refining
every bound took 130 s and is not needed to choose the working set). The
refinement of a block starts from its multipliers of the previous check
where they fit in memory (``_MULTIPLIER_ENTRIES``): between checks the
gradients change little. Then ``\lambda \min(1, \beta / M)`` is dual
feasible and its dual value ``D`` is a lower bound of the optimum.
The solver stops when the relative duality gap ``(P - D) / P \le tol``;
the iterates are in their cones up to round-off (relative violation about
``1e-14`` in float64), so the violation condition of ``tol`` holds too.
Inside a working set the restricted gap is checked every
``_CHECK_EVERY`` iterations; the full check runs when the working-set
problem is solved to a fraction of the estimated full gap.

A final clean-up projects every non-zero block exactly onto its cone in
float64, so that the returned point is feasible to round-off; the objective
is that of the returned point. ``converged`` is False when ``max_iter``
(FISTA iterations plus Newton steps) runs out first.
"""

# Authors: the skbnconvex developers
# License: BSD 3 clause

from typing import NamedTuple

import numpy as np
import torch

from .._dual_bounds import refine_projection_bounds
from .._patterns import pattern_signs
from .._losses import (
    BinaryLogLoss,
    MultinomialLogLoss,
    SquaredLoss,
    output_groups,
    torch_parameter_hessian,
)
from ._barrier import barrier_solve, cone_interior
from ._base import SolverResult
from ._lawson_hanson import batched_lawson_hanson, lawson_hanson

# Patterns of the first working set per output, for up to
# _WS_START_OUTPUTS outputs. The optimum of a program of many outputs uses
# more patterns (letter: 226 of 512 for 26 outputs; CASP, one output, 109),
# and a first set of 10 adds a stage: the captured letter program at
# alpha = 100, two threads, 584 iterations and 104-112 s with 10, 454 and
# 78-91 s with 40 (three runs), 465 and 86 s with 80, 655 and 119 s with
# 20; CASP 609 iterations and 38-42 s with 10, 576 and 41-50 s with 40.
_WS_START = 10
_WS_START_OUTPUTS = 4
# Added to the scores of the patterns kept from the last working set (those
# that still violate), which rank them above every new pattern.
_KEPT_SCORE = 1e6
# Growth of the working set from one to the next while violators remain:
# a restricted solve costs some 50-120 iterations whatever its size, and
# the full gap falls only once the set holds most of the patterns the
# optimum needs, so fewer, larger steps pay at scale. Solves alone,
# alternating, two threads: letter at alpha = 100 50.3-55.2 s / 674
# iterations with 2, 48.5-50.7 s / 577 with 3, 41.6-48.7 s / 483 with 4;
# CASP 34.7-35.3 s / 756 with 2, 30.6-32.0 s / 609 with 4. It costs the
# mid-sized programs a little: (2000, 50, 500) 3.5 -> 3.8 s squared,
# 3.9 -> 4.3 s logistic (one thread; its optimum uses some 65 patterns
# and a set of 160 overshoots); (1000, 20, 100) the same or faster.
_WS_GROWTH = 4
# FISTA iterations between two checks of the restricted duality gap (and
# chances for a Newton attempt). A check costs several iterations: every 20
# instead of 10 took the twelve programs of doc/benchmarks.md section 3
# from 36.6 s to 27.3 s in the same number of iterations; 40 needs more.
_CHECK_EVERY = 20
# Blocks in the first batch of exact dual-bound evaluations (then doubling).
_BATCH = 8
# Projected-gradient steps refining the dual bounds before exact values.
_DUAL_REFINE = 24
# Largest dual bounds evaluated exactly at a full check to estimate the gap.
_EST_EXACT = 16
# Largest (blocks, n) temporaries of the dual-bound refinement (entries).
_CHUNK_ENTRIES = 2**24
# Full checks refine every candidate dual bound while candidates times n is
# at most this; above, only as far as a certificate is within reach.
_REFINE_ALL_ENTRIES = 2**23
# Largest (blocks, n) memory of dual multipliers (float32) kept between
# bound refinements.
_MULTIPLIER_ENTRIES = 2**25
# Blocks left to the host Lawson-Hanson when a batched projection is slow.
_HOST_TAIL = 8
# ... where n k is at most this: at larger n a host step's pass over the
# rows costs what a batched step costs a block, and the batched steps run
# all of the tail at once (CASP, n k = 457 300, alpha = 100, 400
# iterations: fit 44.8 s -> 35.5 s without the tail; letter, 272 000:
# the same within noise).
_HOST_TAIL_MAX_WORK = 2**18
# Batched projections on the CPU in NumPy (_lawson_hanson.py) rather than
# torch: the fixed cost of small tensor operations dominates them there
# ((1000, 20, 100), one thread: solve 1.86 s -> 1.44 s, same iterates).
_NUMPY_ON_CPU = True
# ... while the (blocks, n) arrays of a batch have at most this many entries:
# above, the passes over them dominate and torch runs them on all threads.
# CASP (n = 45 730), two threads, 300 iterations: solve 15.4 s with torch
# only, 19.7 s with NumPy for every batch, 14.0 s with this limit; letter
# (n = 16 000), 100 iterations: 81.4 s -> 74.0 s.
_NUMPY_MAX_ENTRIES = 2**21
# On the CPU, passes over (blocks, n) temporaries of the projections run in
# chunks of blocks of at most this many entries, which stay in cache
# (200 blocks of CASP's 45 730 rows, two threads: the projection's check
# 45 ms -> 9 ms per pass) and keep the memory of large batches bounded
# (letter at alpha = 100, 26 outputs: peak 9.0 GB before, 1.6 GB after).
_CACHE_ENTRIES = 2**18
# ... but the projections' check of all rows (_Faces._scan_rows), whose
# passes are a product and a few cheap ones, in slices of this many bytes:
# the fixed cost of its six operations a slice outweighed the cache misses
# of larger slices (timed alone, two threads, 2 048 blocks: letter's 16 000
# rows, float32, 0.73 -> 0.48 ns an entry; float64 1.21 -> 0.88; CASP's
# 45 730 rows, float32, 0.79 -> 0.43).
_SCAN_BYTES = 2**22
# Predictions from the non-zero pairs (output, pattern) on the CPU when
# pairs * (k + C + 2) is at most this fraction of m * (C k + 2), the dense
# product's share; timed alone (two threads), float64 / float32: letter's
# shape (16 000 rows, 26 outputs, 320 patterns) with 306 pairs 42 -> 10 ms /
# 24 -> 5.6 ms, with 1 500 pairs 44 vs 45 ms / 23 vs 29 ms; CASP's (45 730
# rows, one output, 320 patterns) with 109 pairs 13 -> 4.9 ms, with 300
# pairs 13.6 vs 15.9 ms. The fraction separates these.
_SPARSE_PREDICT = 0.4
# The projections' check of all rows runs in float32 (_Faces._min_row)
# when blocks times rows are at least this many: below, its fixed cost
# outweighs the pass it saves ((1000, 20, 100), one thread: 0.47 s
# instead of 0.41 s without a limit).
_CHECK32_MIN_ENTRIES = 2**18
# Band memory of the row checks on the CPU (float64 problems; see
# _Faces._band_check): every block remembers the rows of smallest margin at
# its last float32 check, about this many, and a later check near that
# point reads them instead of all n rows. Letter at n = 20 000, captured
# program, two threads, alternated: 30% of the checks answered so, the
# projections 44.2 / 41.0 s -> 34.5 / 33.7 s, the solve 111.8 / 111.0 s ->
# 104.5 / 100.7 s (584 iterations instead of 582: a band row that decides
# is the most violated of the band, not the float32 minimiser). Whole
# fits, three alternated pairs: letter 122.9-132.3 s -> 115.7-133.2 s,
# CASP (42% answered) 57.4-61.5 s -> 46.3-51.2 s. Bands of 256 and 1 024
# rows answered 39% and 44% of letter's checks but cost more to collect.
_BAND_ROWS = 64
# ... where all blocks times (_BAND_ROWS + k) fit this many entries,
_BAND_ENTRIES_MAX = 2**25
# ... and programs have at least this many rows: at fewer, a full check is
# cheap and the band's fixed costs a call (collecting, sorting, gathering)
# outweigh what it saves. (2000, 50, 500), logistic, one thread, four
# alternated pairs: 6.6-6.9 s without the band, 6.6-7.7 s with it (squared
# the same within the noise).
_BAND_MIN_ROWS = 2**13
# The band memory on or off (a test of the float32 scans turns it off).
_BAND = True
# Factor of the local Lipschitz estimate at every FISTA iteration.
_L_SHRINK = 0.9
# ... for programs of several outputs. The captured letter program (26
# outputs, two threads): 440 iterations and 100.4 s with 0.9; 312 and
# 67.5 / 76.5 s with 0.8; 398 and 82.4 s with 0.85; 326 and 84.2 s with
# 0.7 (more backtracking). Landsat (6 outputs, whole fit): 1 579
# iterations and 202.1 s -> 1 175 and 198.2 s. One output gains nothing:
# CASP 558 iterations and 33.9 / 37.3 s with 0.9, 543 and 41.6 / 38.2 s
# with 0.8.
_L_SHRINK_OUTPUTS = 0.8
# Restricted targets (relative gaps) at or above which a float64 solve runs
# FISTA's products with the data in float32: their relative error, ~1e-7,
# is far below such targets, and the full checks and Newton stay in
# float64. Letter's shape (16 000 rows, 26 outputs, 320 patterns): a
# prediction 46 -> 26 ms, a gradient 44 -> 25 ms.
_FAST_TARGET = 1e-3
# ... for programs with at least this many outputs, whose products are
# C k columns wide: there they are the larger part of an iteration
# (letter, 26 outputs: solve 107.5 -> 90.7 s). With one output they are not
# and the float32 paths took more iterations (CASP, four runs: 740-855
# iterations instead of 730, fit 60-72 s against 60-65 s).
_FAST_MIN_OUTPUTS = 2
# Slack of the sufficient-decrease test with float32 products, relative to
# the loss (1e-12 in float64). Letter at alpha = 100: 1e-9 and 1e-6 gave
# 706 and 723 iterations (671 in float64), the paths the same up to the
# sixth working set and then apart.
_FAST_SLACK = 1e-9
# Most Newton steps per attempt.
_NEWTON_MAX = 20
# Largest Newton system (sum of the face dimensions) solved densely.
_NEWTON_DIM_MAX = 4000
# Newton systems of T columns and n rows with T^2 n at least this form the
# coupling term of the multinomial Hessian (its one full product) in
# float32: a direction from a Hessian off by ~1e-7 relative is still a
# descent direction for the float64 gradient and line search, which decide
# the step. Letter at alpha = 100 (T ~ 300, 16 000 rows): the same Newton
# steps and points to 12 digits, Newton 14.5 -> 12.4 s.
_NEWTON_GRAM32_WORK = 2**28
# Where its point is not below the start, Newton runs again on corrected
# faces at most this many times, while the blocks whose faces change are
# at most two or this fraction of the support (see _newton).
_NEWTON_FACE_UPDATES = 2
_NEWTON_UPDATE_FRACTION = 0.1
# Fractions of a refused Newton step tried, projected, before giving up.
_NEWTON_BACKTRACK = (0.5, 0.25, 0.125)
# Restricted-gap checks (200 iterations) over which FISTA's rate is measured
# before the barrier method may take the working set (_fista_outlook).
_STALL_CHECKS = 10
# Largest number of entries of the barrier's Newton systems (all outputs).
_BARRIER_ENTRIES_MAX = 2.5e7
# Largest cost of the loss Hessian of one barrier Newton step (n times the
# entries; about a second here): beyond, the steps cost more than FISTA
# (letter, 26 classes: 3 s per Hessian, 260 s for one working set).
_BARRIER_FLOPS_MAX = 4e10
# Newton steps that a barrier solve of a working set is counted at, against
# FISTA's projected iterations, when deciding that FISTA has stalled (the
# primal-dual method took 13-62 on the stalled working sets of synthetic
# data, energy efficiency, breast cancer and diabetes; a step is one
# factorisation and two solves).
_BARRIER_NEWTON_STEPS = 50
# Relative decrease of the objective over _STALL_CHECKS checks below which
# a working set is at its round-off floor.
_FLOOR = 1e-13


def _resolve_device(device):
    """Return a torch.device, refusing CUDA when it is not there."""
    device = torch.device(device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(
            "device='cuda' was requested but CUDA is not available in this "
            "PyTorch installation; use device='cpu'."
        )
    return device


def _block_chunks(B, n, device, entries=None):
    """Slices of ``B`` rows whose ``(rows, n)`` passes stay in cache.

    Rows are blocks (the projections' passes over the data) or samples
    (predictions and gradients, ``n = C k``), at most ``entries`` entries a
    slice (default ``_CACHE_ENTRIES``). One slice off the CPU, where each
    pass is a kernel launch.
    """
    if entries is None:
        entries = _CACHE_ENTRIES
    rows = B if device.type != "cpu" else max(1, entries // n)
    return [slice(a, a + rows) for a in range(0, B, rows)]


def _loss_curvature(loss, n_outputs):
    """Return the Lipschitz constant of the gradient of the loss in ``F``."""
    if isinstance(loss, SquaredLoss):
        return 1.0 / n_outputs
    if isinstance(loss, BinaryLogLoss):
        return 0.25
    if isinstance(loss, MultinomialLogLoss):
        # The Hessian of log-sum-exp, diag(p) - p p^T, has norm <= 1/2.
        return 0.5
    raise ValueError(f"solve_torch does not know the loss {loss!r}.")


def _loss_grad(loss, F, Y):
    """Gradient of the loss in ``F`` (closed forms, sample weights included)."""
    return loss.torch_gradient(F, Y)


class _Problem:
    """Tensors of (C) on the device."""

    def __init__(self, program, device, dtype):
        self.program = program
        kw = dict(device=device, dtype=dtype)
        self.device, self.dtype = device, dtype
        self.Ut = torch.as_tensor(program.Ut, **kw)
        # Patterns as rows (P, n), and their signs 2 D - 1.
        self.Dt = torch.as_tensor(program.D.T.copy(), **kw)
        self.St = 2.0 * self.Dt - 1.0
        self.Y = torch.as_tensor(program.Y, **kw)
        self.loss = program.loss
        self.beta = float(program.beta)
        self.Lf = _loss_curvature(program.loss, program.n_outputs)
        self.Ut_np = np.ascontiguousarray(program.Ut, dtype=np.float64)
        # Signs by pattern (P, n): a pattern's signs contiguous (a column of
        # (n, P) is strided: a check of CASP's 45 730 rows took 0.63 ms
        # instead of 0.10 ms, timed alone).
        self.S_np = pattern_signs(program.D.T)
        self.row_norms_np = np.maximum(np.linalg.norm(self.Ut_np, axis=1), 1e-300)
        eps = float(torch.finfo(dtype).eps)
        k = program.k
        # Tolerances of the projection checks, relative to ||p||: round-off
        # of a k-term inner product.
        self.feas_tol = 10.0 * np.sqrt(k) * eps
        self.mu_tol = 1e3 * np.sqrt(k) * eps
        self._power_vec = None
        self._Ut32 = None
        self._S8 = None
        self._Un32 = None
        self._interior = {}
        # Set by the working sets: whether FISTA stalled on one, and the
        # tolerance of the solve.
        self.fista_stalled = False
        self.tol = 0.0

    def interior(self, ws):
        """Unit interior points of the cones of patterns ``ws``, (m, k).

        None when one of the cones has an empty interior (a degenerate
        cell, where the barrier method does not apply). Cached by pattern.
        """
        ws = ws.cpu().numpy().tolist()
        for i in ws:
            if i not in self._interior:
                self._interior[i] = cone_interior(self.Ut_np, self.S_np[i])[0]
        Z = [self._interior[i] for i in ws]
        if any(z is None for z in Z):
            return None
        return torch.as_tensor(np.array(Z), device=self.device, dtype=torch.float64)

    def predict(self, W, Dt, Ut=None):
        """Return ``F`` (n, C) for blocks ``W`` (C, 2, m, k) on patterns ``Dt``.

        ``F[:, c] = sum_i D_i U' w_i = rowsum(U' * (D^T W_c))``: one
        ``(n, m) x (m, C k)`` product for all outputs (C products with
        ``k`` columns each read ``D`` again: letter's 26 outputs, 300
        patterns, 2.2 times the time), no ``(m, n)`` temporary. On the CPU
        it runs in chunks of rows, so that the ``(rows, C k)`` products stay
        in cache for the row sums (letter's shape, 160 patterns: 69 ms ->
        25 ms). Where few pairs (output, pattern) are non-zero, as in most
        iterates, the CPU computes it from those pairs only (see
        ``_SPARSE_PREDICT`` and :meth:`_predict_sparse`). ``Ut`` (default:
        the program's) and ``Dt`` in another precision compute it in theirs
        (see :meth:`fast_products`).
        """
        Ut = self.Ut if Ut is None else Ut
        if Ut.dtype != W.dtype:
            return self.predict(W.to(Ut.dtype), Dt, Ut).to(W.dtype)
        C, _, m, k = W.shape
        Wd = W[:, 0] - W[:, 1]
        if W.device.type == "cpu":
            used = (Wd != 0).any(-1)  # (C, m)
            nnz = int(used.sum())
            if nnz * (k + C + 2) <= _SPARSE_PREDICT * m * (C * k + 2):
                return self._predict_sparse(Wd, used, Dt, Ut)
        Wd = Wd.transpose(0, 1).reshape(m, C * k)
        F = torch.empty((Dt.shape[1], C), dtype=W.dtype, device=W.device)
        for sl in _block_chunks(Dt.shape[1], C * k, W.device):
            G = (Dt[:, sl].T @ Wd).view(-1, C, k)  # (rows, C, k)
            torch.sum(G.mul_(Ut[sl, None, :]), dim=-1, out=F[sl])
        return F

    def _predict_sparse(self, Wd, used, Dt, Ut):
        """:meth:`predict` from the non-zero pairs (output, pattern) only.

        ``Wd`` (C, m, k) is ``a - b``, ``used`` where it is non-zero. With
        the pairs' blocks as columns, ``F = (D_pairs * (U' W_pairs^T)) E``
        (``E`` the pairs' outputs, one-hot), in chunks of rows that stay in
        cache; the cost follows the pairs, not ``m C``.
        """
        C, m, k = Wd.shape
        n = Dt.shape[1]
        c_nz, i_nz = used.nonzero(as_tuple=True)
        F = torch.zeros((n, C), dtype=Wd.dtype, device=Wd.device)
        if len(c_nz) == 0:
            return F
        Wn = Wd[c_nz, i_nz]  # (pairs, k)
        E = torch.zeros((len(c_nz), C), dtype=Wd.dtype, device=Wd.device)
        E[torch.arange(len(c_nz), device=Wd.device), c_nz] = 1.0
        for sl in _block_chunks(n, len(c_nz), Wd.device):
            V = (Ut[sl] @ Wn.T).mul_(Dt[:, sl][i_nz].T)  # (rows, pairs)
            torch.mm(V, E, out=F[sl])
        return F

    def grad_blocks(self, r, Dt, Ut=None):
        """Gradient ``+-U'^T D_i r_c`` of the loss in the blocks, (C, 2, m, k).

        One ``(m, n) x (n, C k)`` product for all outputs (see predict),
        accumulated over chunks of rows on the CPU.
        """
        Ut = self.Ut if Ut is None else Ut
        if Ut.dtype != r.dtype:
            return self.grad_blocks(r.to(Ut.dtype), Dt, Ut).to(r.dtype)
        n, C = r.shape
        k = Ut.shape[1]
        gp = torch.zeros((Dt.shape[0], C * k), dtype=r.dtype, device=r.device)
        for sl in _block_chunks(n, C * k, r.device):
            X = (r[sl, :, None] * Ut[sl, None, :]).reshape(-1, C * k)
            gp.addmm_(Dt[:, sl], X)
        gp = gp.view(-1, C, k).transpose(0, 1)  # (C, m, k)
        return torch.stack((gp, -gp), dim=1)

    def fast_products(self, Dt):
        """``(Dt, Ut)`` in float32 for FISTA's products, or None.

        Only for a float64 solve of several outputs (see ``_FAST_TARGET``
        and ``_FAST_MIN_OUTPUTS``); ``Ut`` is cached.
        """
        if self.dtype != torch.float64 or self.Y.shape[1] < _FAST_MIN_OUTPUTS:
            return None
        if self._Ut32 is None:
            self._Ut32 = self.Ut.float()
        return Dt.float(), self._Ut32

    def signs8(self):
        """``St`` as int8 (cached), for the projections' row checks.

        A check multiplies ``U' z`` by the rows of its patterns' signs, and
        a bound refinement gathers them: bytes instead of floats are a
        quarter (float32) or an eighth (float64) of those reads and copies
        (letter's float32 slices, timed alone on one thread: 0.92 -> 0.74
        ms; in a two-thread solve within the noise, peak memory 40-60 MB
        lower).
        """
        if self._S8 is None:
            self._S8 = self.St.to(torch.int8)
        return self._S8

    def check_tensors(self):
        """Rows of ``Ut`` scaled to unit norm in float32, and the int8 signs.

        For the projections' float32 row checks (``_Faces._min_row``);
        cached.
        """
        if self._Un32 is None:
            self._Un32 = (self.Ut / self.Ut.norm(dim=1, keepdim=True)).float()
        return self._Un32, self.signs8()

    def loss_value(self, F):
        return float(self.loss.torch_value(F, self.Y))

    def objective(self, W, F):
        return self.loss_value(F) + self.beta * float(
            torch.linalg.vector_norm(W, dim=-1).sum()
        )

    def norm_A2(self, Dt, n_iter=30):
        """Estimate ``||A||^2`` on patterns ``Dt`` by power iteration.

        ``A`` maps the blocks of one output and one sign to ``sum_i D_i U' w_i``;
        the two signs double it. The iteration starts from the top singular
        vector of the previous call (working sets grow by adding patterns,
        so it is nearly converged) and then needs few products.
        """
        v = self._power_vec
        if v is None:
            gen = torch.Generator(device="cpu").manual_seed(0)
            v = torch.randn(Dt.shape[1], generator=gen, dtype=Dt.dtype).to(Dt.device)
            v /= torch.linalg.vector_norm(v)
        else:
            n_iter = max(10, n_iter // 3)
        est = 0.0
        for _ in range(n_iter):
            Z = Dt @ (v[:, None] * self.Ut)  # A^T v, (m, k)
            u = ((Dt.T @ Z) * self.Ut).sum(-1)  # A A^T v
            est = float(torch.linalg.vector_norm(u))
            if est == 0.0:
                return 0.0
            v = u / est
        self._power_vec = v
        return 2.0 * est

    def dual_value(self, F, M):
        """Dual value at ``-grad L(F) * min(1, beta / M)`` (float64)."""
        if not np.isfinite(M):
            return -np.inf
        lam = -_loss_grad(self.loss, F, self.Y)
        scale = min(1.0, self.beta / M) if M > 0 else 1.0
        lam = (scale * lam).double().cpu().numpy()
        return self.loss.dual(lam, self.program.Y)


class _RowScan(NamedTuple):
    """What :meth:`_Faces._scan_rows` found (None: not asked for).

    ``kzmin, jrow``: the smallest ``K_j z`` of every block and its row.
    ``near``: pairs ``(blocks, rows)`` of the rows below the band of the
    blocks whose minimum is within it. ``kept``: triples ``(blocks, rows,
    values)`` of the rows below ``keep`` of the blocks not clearly violated.
    """

    kzmin: torch.Tensor
    jrow: torch.Tensor
    near: tuple = None
    kept: tuple = None


class _Faces:
    """Exact cone projections with remembered active rows, for all blocks.

    Blocks are numbered globally, ``g = (2 c + s) P + i`` (output ``c``,
    sign ``s``, pattern ``i``). Every block keeps the active rows of its last
    projection, at most ``k`` of them, as a padded index tensor ``R`` with a
    validity mask ``V`` (sorted, so that equal faces compare equal).
    """

    def __init__(self, prob, C):
        self.prob = prob
        self.P = prob.Dt.shape[0]
        n, k = prob.Ut.shape
        self.n = n
        nb = 2 * C * self.P
        self.R = torch.zeros((nb, k), dtype=torch.long, device=prob.device)
        self.V = torch.zeros((nb, k), dtype=torch.bool, device=prob.device)
        # The last non-negative multipliers of every block (by slot) and
        # the norm of the point they were computed for: they give cheap
        # upper bounds of later projections (see face_bound).
        self.X = torch.zeros((nb, k), dtype=prob.dtype, device=prob.device)
        self.Pn = torch.ones(nb, dtype=prob.dtype, device=prob.device)
        # The last point ``q0 = L p`` at which the prox bounded a block's
        # projection, and that bound ``b0 >= ||P_C(q0)||``: projections are
        # non-expansive, so ``||P_C(q)|| <= b0 + ||q - q0||`` for every q
        # (see prox).
        self.Q0 = torch.zeros((nb, k), dtype=prob.dtype, device=prob.device)
        self.B0 = torch.full((nb,), np.inf, dtype=prob.dtype, device=prob.device)
        self.n_host = 0
        self.n_unsure = 0
        self.n_band = 0
        # Steps of the batched active-set method before the exact fallback:
        # a cold start takes a few times k (rows enter and leave), a warm
        # start a few steps.
        self.steps = 5 * k + 20
        # Blocks left to the host when a batched projection is slow.
        self.host_tail = _HOST_TAIL if n * k <= _HOST_TAIL_MAX_WORK else 0
        self.use_numpy = _NUMPY_ON_CPU and prob.device.type == "cpu"
        # The dual multipliers of the last bound refinement of every block
        # (see refine), where they fit.
        self.nu = None
        # The band memory of the row checks (see _min_row): the unit point
        # of the last float32 check, its radius of validity, and the rows
        # within the band (their validity; the passive rows of that check
        # in the last k slots). CPU float64 problems only (their checks run
        # in float32 and collect the band while in cache), of many rows.
        self.band = None
        wb = _BAND_ROWS + k
        if (
            _BAND and prob.device.type == "cpu" and prob.dtype == torch.float64
            and nb * wb <= _BAND_ENTRIES_MAX and n >= _BAND_MIN_ROWS
        ):
            self.band = torch.zeros((nb, wb), dtype=torch.long)
            self.band_ok = torch.zeros((nb, wb), dtype=torch.bool)
            self.band_ref = torch.zeros((nb, k), dtype=torch.float64)
            self.band_tau = torch.full((nb,), -np.inf, dtype=torch.float64)
            # Collect rows of normalised margin below theta ||z||: about
            # half of _BAND_ROWS of them for rows of isotropic directions,
            # whose margins have density sqrt(k / 2 pi) at zero.
            self.band_theta = 0.5 * _BAND_ROWS / (n * np.sqrt(k / (2 * np.pi)))
        if nb * n <= _MULTIPLIER_ENTRIES:
            self.nu = torch.zeros((nb, n), dtype=torch.float32, device=prob.device)
            self.row_norms = torch.linalg.vector_norm(prob.Ut, dim=1).float()

    def rows(self, g):
        """Active rows of block ``g`` (a list)."""
        return self.R[g][self.V[g]].cpu().numpy().tolist()

    def project(self, gidx, Z, max_steps, stop_below=None):
        """Project the rows of ``Z`` (blocks ``gidx``) onto their cones.

        Lawson-Hanson on the dual ``min_{mu >= 0} ||p + K^T mu||``, batched
        over the blocks (one least-squares solve on the passive rows per
        step) and warm-started from the remembered rows: their multipliers
        are solved for, and rows with a non-positive one are dropped until
        all are positive. Then, while ``K z`` has a negative entry, the most
        violated row enters, and the interpolation step of Lawson-Hanson
        keeps the multipliers non-negative. Warm-started near convergence,
        it stops after one solve. The norms of the iterates decrease, so a
        block whose norm falls to ``stop_below`` or less can stop there
        (enough to decide a prox to zero or a dual constraint).

        Returns
        -------
        out : tensor (B, k)
            Projections; NaN rows where ``max_steps`` did not suffice or
            the block stopped below ``stop_below``.
        ub : tensor (B,)
            Upper bounds of ``||P_C(Z_b)||`` (exact where finished): the
            norm of ``Z + K^T mu`` for non-negative ``mu``.
        """
        if self.nu is not None:
            self._guess_faces(gidx)
        if self.use_numpy and len(gidx) * self.n <= _NUMPY_MAX_ENTRIES:
            return self._project_numpy(gidx, Z, max_steps, stop_below)
        return self._project_torch(gidx, Z, max_steps, stop_below)

    def _guess_faces(self, gidx):
        """Start rows for the blocks of ``gidx`` that remember none.

        Lawson-Hanson from no rows adds one per step and, on faces of
        ~50 rows of 51 (optimal blocks at (2000, 50, 500)), takes some
        130 steps a block. The largest dual multipliers of the block's last
        bound refinement (``nu``, about the same point: a block entering
        the working set is projected at ``-grad / L``, parallel to the
        gradient that the full check bounded) mark the likely rows; half
        of ``k`` of them start it (the warm start drops those with a
        non-positive multiplier). On the 428 new blocks of one such solve,
        started from the multipliers of 24 projected-gradient steps: 42 300
        block steps instead of 55 600.
        """
        cold = ~self.V[gidx].any(1)
        if not bool(cold.any()):
            return
        g = gidx[cold]
        nu = self.nu[g].abs() * self.row_norms
        top = torch.topk(nu, self.R.shape[1] // 2, dim=1)
        ok = top.values > 0
        self.R[g] = 0
        self.R[g, : ok.shape[1]] = torch.where(ok, top.indices, 0)
        self.V[g] = False
        self.V[g, : ok.shape[1]] = ok
        self.X[g] = 0.0

    def _project_numpy(self, gidx, Z, max_steps, stop_below):
        """:meth:`project` by :func:`batched_lawson_hanson` (CPU tensors).

        The faces are updated through NumPy views of the CPU tensors.
        """
        prob = self.prob
        g = gidx.numpy()
        R, V = self.R.numpy()[g], self.V.numpy()[g]
        X = self.X.numpy()[g] * V
        pat = gidx % self.P
        out, ub, nrm = batched_lawson_hanson(
            prob.Ut.numpy(), prob.St.numpy(), pat.numpy(), Z.numpy(), R, V, X,
            max_steps, prob.feas_tol, stop_below, self.host_tail,
            self._numpy_min_row(gidx),
        )
        # Canonical (sorted) faces, remembered for the next projection.
        perm = np.argsort(np.where(V, R, self.n), axis=1, kind="stable")
        R = np.take_along_axis(R, perm, 1)
        V = np.take_along_axis(V, perm, 1)
        self.R.numpy()[g] = np.where(V, R, 0)
        self.V.numpy()[g] = V
        self.X.numpy()[g] = np.take_along_axis(X, perm, 1) * V
        self.Pn.numpy()[g] = nrm
        return torch.from_numpy(out), torch.from_numpy(ub)

    def _numpy_min_row(self, gidx):
        """The ``min_row`` of :func:`batched_lawson_hanson`: :meth:`_min_row`.

        ``gidx``: the blocks that the NumPy method numbers ``0, 1, ...``.
        """

        def min_row(idx, z, R, V):
            kzmin, jrow = self._min_row(
                torch.from_numpy(z), gidx[torch.from_numpy(idx)], torch.from_numpy(R),
                torch.from_numpy(V),
            )
            return kzmin.numpy(), jrow.numpy()

        return min_row

    def _project_torch(self, gidx, Z, max_steps, stop_below):
        """:meth:`project` in batched tensor operations (any device).

        On the CPU, the blocks still running once their ``(blocks, n)``
        arrays fit ``_NUMPY_MAX_ENTRIES`` finish in NumPy
        (:func:`batched_lawson_hanson`, from the state reached here: the
        same steps at a lower fixed cost a step; letter's projections
        spent most of their steps on a few slow blocks).
        """
        prob = self.prob
        Ut = prob.Ut
        B, k = Z.shape
        dt = Z.dtype
        pat = gidx % self.P
        R, V = self.R[gidx].clone(), self.V[gidx].clone()
        x = torch.zeros_like(Z)  # multipliers of the passive rows, by slot
        xs = self.X[gidx] * V  # the last non-negative ones, for face_bound
        warm = torch.ones(B, dtype=torch.bool, device=Z.device)
        nrm = torch.linalg.vector_norm(Z, dim=-1)
        out = torch.full_like(Z, float("nan"))
        ub = nrm.clone()
        act = torch.arange(B, device=Z.device)
        eye = torch.eye(k, dtype=dt, device=Z.device)
        inf = torch.tensor(float("inf"), dtype=dt, device=Z.device)
        for step in range(max_steps):
            Ra, Va, pa, Za = R[act], V[act], pat[act], Z[act]
            xa, wa = x[act], warm[act]
            # Rows K_j of the passive sets, (b, k, k).
            A = (prob.St[pa[:, None], Ra] * Va)[..., None] * Ut[Ra]
            G = A @ A.mT + eye * (~Va)[:, None, :]
            Lc, info = torch.linalg.cholesky_ex(G)
            sol = torch.cholesky_solve(-(A @ Za[..., None]), Lc)[..., 0] * Va
            failed = info != 0
            positive = ((sol > 0) | ~Va).all(1) & ~failed
            xs[act[positive]] = sol[positive]
            # Warm phase: rows with a non-positive multiplier leave.
            w_neg = wa & ~positive & ~failed
            V[act[w_neg]] = Va[w_neg] & (sol[w_neg] > 0)
            # Lawson-Hanson interpolation towards the solution, which stays
            # non-negative; the blocking row leaves.
            c_neg = ~wa & ~positive & ~failed
            if bool(c_neg.any()):
                xc, sc, Vc = xa[c_neg], sol[c_neg], Va[c_neg]
                ratio = torch.where(Vc & (sc <= 0), xc / (xc - sc), inf)
                alpha, jmin = ratio.min(1)
                xc = xc + alpha[:, None] * (sc - xc)
                leave = Vc & (xc <= 0)
                leave[torch.arange(len(jmin), device=Z.device), jmin] = True
                Vc = Vc & ~leave
                V[act[c_neg]] = Vc
                x[act[c_neg]] = xc * Vc
            # Positive multipliers: a KKT check, then the most violated row.
            z = Za + (A.mT @ sol[..., None])[..., 0]
            ub_a = torch.where(
                positive, torch.linalg.vector_norm(z, dim=-1), inf
            )
            ub[act] = torch.minimum(ub[act], ub_a)
            # Only blocks with positive multipliers that did not stop below
            # the threshold need the check (the others ignore it).
            check = positive if stop_below is None else positive & (ub_a > stop_below)
            kzmin = torch.full((len(act),), -inf, dtype=dt, device=Z.device)
            jrow = torch.zeros(len(act), dtype=torch.long, device=Z.device)
            ic = check.nonzero()[:, 0]
            if len(ic):
                kzmin[ic], jrow[ic] = self._min_row(
                    z[ic], gidx[act[ic]], Ra[ic], Va[ic]
                )
            done = positive & (kzmin >= -prob.feas_tol * nrm[act])
            out[act[done]] = z[done]
            if stop_below is not None:
                done |= ub_a <= stop_below
            add = positive & ~done & ~Va.all(1)
            slot = (~Va).to(torch.int8).argmax(1)
            ia = act[add]
            x[ia] = sol[add]
            R[ia, slot[add]] = jrow[add]
            V[ia, slot[add]] = True
            warm[ia] = False
            # Blocks whose solve failed or whose passive set is full (both
            # degenerate) are left to the exact fallback.
            keep = ~done & ~failed & (add | ~positive)
            act = act[keep]
            if len(act) <= self.host_tail:
                # A few slow blocks are cheaper one by one on the host (see
                # project_exact) than with the fixed cost of a batched step.
                break
            if self.use_numpy and len(act) * self.n <= _NUMPY_MAX_ENTRIES:
                # The blocks left are few: their steps cost mostly the fixed
                # cost of the tensor operations, which NumPy's lacks.
                # (NumPy copies of the state of the blocks handed over,
                # updated there in place and written back.)
                a = act.numpy()
                R_h, V_h, X_h = R.numpy()[a], V.numpy()[a], xs.numpy()[a]
                out_h, ub_h, _ = batched_lawson_hanson(
                    prob.Ut.numpy(), prob.St.numpy(), pat[act].numpy(), Z[act].numpy(),
                    R_h, V_h, X_h, max_steps - step - 1, prob.feas_tol, stop_below,
                    self.host_tail, self._numpy_min_row(gidx[act]),
                    x=x[act].numpy(), warm=warm[act].numpy(),
                )
                R[act], V[act], xs[act] = (torch.from_numpy(v) for v in (R_h, V_h, X_h))
                out[act] = torch.from_numpy(out_h)
                ub[act] = torch.minimum(ub[act], torch.from_numpy(ub_h))
                break
        # Canonical (sorted) faces, remembered for the next projection.
        key, perm = torch.where(V, R, self.n).sort(dim=1)
        V = key < self.n
        self.R[gidx], self.V[gidx] = torch.where(V, key, 0), V
        self.X[gidx] = xs.gather(1, perm) * V
        self.Pn[gidx] = nrm
        return out, ub

    def _min_row(self, z, gidx, R, V):
        """Smallest ``K_j z`` over the rows not in the passive sets, and its row.

        ``z`` (b, k) for blocks ``gidx``, passive rows ``R`` where ``V``.
        For a float64 problem on the CPU (and at least
        ``_CHECK32_MIN_ENTRIES`` blocks times rows) the pass over the ``n``
        rows runs in float32 (half the memory traffic, twice the vector
        width) on the rows scaled to unit norm, and still decides exactly:
        an entry ``K_j z / ||K_j||`` is off by at most
        ``(k + 2) eps_32 ||z||``, so a block whose float32 minimum is above
        twice that bound has no violated row, and one whose float32
        minimiser is violated in float64 gets that row (the largest
        violation relative to the row's norm, not necessarily the largest:
        Lawson-Hanson needs only a violated row). For the blocks left in
        between, whose float32 minimum is within round-off of zero, the pass
        keeps the rows below that bound (few: rows on or next to the face)
        and their float64 values decide. CASP (45 730 rows, alpha = 100):
        15% of the checks were such blocks, and the fit went from 60-62 s
        to about 47 s with this check (traces; doc/benchmarks.md, section
        7, session 17). Blocks near the point of their last float32 check
        are decided on the rows it remembered (:meth:`_band_check`), and
        the float32 checks remember them (:meth:`_band_remember`).
        """
        b = len(z)
        kzmin = torch.empty(b, dtype=z.dtype, device=z.device)
        jrow = torch.empty(b, dtype=torch.long, device=z.device)
        if self.band is not None and z.dtype == torch.float64:
            hit = self._band_check(z, gidx, R, V, kzmin, jrow)
            if hit is not None:
                miss = (~hit).nonzero()[:, 0]
                if len(miss):
                    kzmin[miss], jrow[miss] = self._min_row_all(
                        z[miss], gidx[miss], R[miss], V[miss]
                    )
                return kzmin, jrow
        return self._min_row_all(z, gidx, R, V, kzmin, jrow)

    def _min_row_all(self, z, gidx, R, V, kzmin=None, jrow=None):
        """:meth:`_min_row` by a check of all rows (into ``kzmin, jrow``)."""
        prob = self.prob
        b = len(z)
        pat = gidx % self.P
        if kzmin is None:
            kzmin = torch.empty(b, dtype=z.dtype, device=z.device)
            jrow = torch.empty(b, dtype=torch.long, device=z.device)
        if (
            prob.device.type != "cpu"
            or z.dtype != torch.float64
            or b * self.n < _CHECK32_MIN_ENTRIES
        ):
            scan = self._scan_rows(z, pat, R, V, prob.Ut, prob.signs8(), kzmin, jrow)
            return scan.kzmin, scan.jrow
        Ut32, S8 = prob.check_tensors()
        eps32 = float(torch.finfo(torch.float32).eps)
        zn = torch.linalg.vector_norm(z, dim=-1)
        band = 2.0 * (z.shape[1] + 2) * eps32 * zn
        m32 = torch.empty(b, dtype=torch.float32)
        keep = None if self.band is None else (self.band_theta * zn).float()
        scan = self._scan_rows(
            z.float(), pat, R, V, Ut32, S8, m32, jrow, band=band.float(), keep=keep
        )
        cb, cj = scan.near
        if keep is not None:
            # The blocks whose rows were collected: the scan's float32 test.
            eligible = (m32 >= -band.float()) & (zn > 0)
            self._band_remember(z, gidx, R, V, zn, eligible, *scan.kept)
        # The float32 minimiser's entry in float64.
        exact = prob.St[pat, jrow] * (prob.Ut[jrow] * z).sum(-1)
        clear = m32.double() >= band
        kzmin[clear] = m32[clear].double()
        violated = ~clear & (exact < -prob.feas_tol * zn)
        kzmin[violated] = exact[violated]
        unsure = ~clear & ~violated
        if not bool(unsure.any()):
            return kzmin, jrow
        # Unsure blocks: every row that float32 does not clear is a
        # candidate (the float32 minimiser among them), and the smallest
        # float64 value over the candidates decides.
        self.n_unsure += int(unsure.sum())
        keep = unsure[cb]
        cb, cj = cb[keep], cj[keep]
        vals = prob.St[pat[cb], cj] * (prob.Ut[cj] * z[cb]).sum(-1)
        low = torch.full((b,), float("inf"), dtype=z.dtype, device=z.device)
        low.scatter_reduce_(0, cb, vals, reduce="amin")
        hit = vals == low[cb]
        jrow[cb[hit]] = cj[hit]
        kzmin[unsure] = low[unsure]
        return kzmin, jrow

    def _scan_rows(self, z, pat, R, V, Ut, St, kzmin, jrow, band=None, keep=None):
        """``min_j K_j z`` over all rows (passive rows masked), a :class:`_RowScan`.

        The minima and their rows are written into ``kzmin, jrow``.
        ``St``: the patterns' signs, of any dtype (int8 from
        :meth:`_Problem.signs8`). With ``band`` (per block), also the pairs
        ``(block, row)`` of the rows with ``K_j z < band`` of the blocks
        whose minimum is in ``[-band, band)``, collected while a chunk is
        in cache. With ``keep`` (per block, with ``band``), also the
        triples ``(block, row, K_j z)`` of the rows with ``K_j z < keep``
        of the blocks whose minimum is at least ``-band`` (for the band
        memory, see :meth:`_band_remember`).
        """
        inf = torch.tensor(float("inf"), dtype=z.dtype, device=z.device)
        # The passive rows get +inf, written in place (amax keeps the
        # entries of the padding slots).
        mask = torch.where(V, inf, -inf)
        cb, cj = [], []
        kb, kj, kv = [], [], []
        cpu = z.device.type == "cpu"
        entries = _SCAN_BYTES // z.element_size()
        for sl in _block_chunks(len(z), self.n, z.device, entries):
            # index_select: 2.7 times the speed of St[pat[sl]] here.
            Kz = (z[sl] @ Ut.T).mul_(St.index_select(0, pat[sl]))
            Kz.scatter_reduce_(1, R[sl], mask[sl], reduce="amax")
            if cpu:
                # NumPy's argmin: torch's minimum with its index took eight
                # times as long (0.34 vs 0.04 ns an entry, letter's shape),
                # 40% of the check.
                K = Kz.numpy()
                j = K.argmin(1)
                jrow[sl] = torch.from_numpy(j)
                kzmin[sl] = torch.from_numpy(K[np.arange(len(j)), j])
            else:
                kzmin[sl], jrow[sl] = Kz.min(1)
            if band is None:
                continue
            bs = band[sl]
            near = ((kzmin[sl] < bs) & (kzmin[sl] >= -bs)).nonzero()[:, 0]
            if len(near):
                bi, rj = (Kz[near] < bs[near, None]).nonzero(as_tuple=True)
                cb.append(near[bi] + sl.start)
                cj.append(rj)
            if keep is not None:
                ok = (kzmin[sl] >= -bs).nonzero()[:, 0]
                if len(ok):
                    Ko = Kz[ok]
                    bi, rj = (Ko < keep[sl][ok, None]).nonzero(as_tuple=True)
                    kb.append(ok[bi] + sl.start)
                    kj.append(rj)
                    kv.append(Ko[bi, rj])
        if band is None:
            return _RowScan(kzmin, jrow)
        empty = torch.zeros(0, dtype=torch.long, device=z.device)
        if not cb:
            cb = cj = [empty]
        near = (torch.cat(cb), torch.cat(cj))
        if keep is None:
            return _RowScan(kzmin, jrow, near)
        if not kb:
            kb, kj, kv = [empty], [empty], [torch.zeros(0, dtype=z.dtype)]
        kept = (torch.cat(kb), torch.cat(kj), torch.cat(kv))
        return _RowScan(kzmin, jrow, near, kept)

    def _band_check(self, z, gidx, R, V, kzmin, jrow):
        """The row check of blocks near their remembered point, on their band.

        A float32 check at the unit point ``r`` of a block remembered the
        rows of normalised margin ``K_j r / ||K_j||`` below a threshold
        (with the passive rows of that check), and ``tau``, a margin that
        every other row exceeds (after the float32 round-off). At a point
        ``z`` with ``||z / ||z|| - r|| < tau`` those other rows are
        positive (``K_j z / (||K_j|| ||z||) >= tau - ||z / ||z|| - r||``),
        so the exact minimum over the band's rows that are not passive now
        decides the check (the band's ``|band| k`` operations instead of
        ``n k``). Fills ``kzmin, jrow`` where it applies and returns that
        mask; None where no block applies.
        """
        zn = torch.linalg.vector_norm(z, dim=-1)
        u = z / zn.clamp(min=1e-300)[:, None]
        tau = self.band_tau[gidx]
        dist = torch.linalg.vector_norm(u - self.band_ref[gidx], dim=-1)
        hit = (zn > 0) & (dist < tau)
        h = hit.nonzero()[:, 0]
        self.n_band += len(h)
        if len(h) == 0:
            return None
        prob = self.prob
        g = gidx[h]
        rows, ok = self.band[g], self.band_ok[g]
        Rh, Vh = R[h], V[h]
        passive = ((rows[:, :, None] == Rh[:, None, :]) & Vh[:, None, :]).any(-1)
        vals = torch.einsum("brk,bk->br", prob.Ut[rows], z[h])
        vals *= prob.St[(g % self.P)[:, None], rows]
        vals.masked_fill_(~ok | passive, np.inf)
        kzmin[h], j = vals.min(1)
        jrow[h] = rows.gather(1, j[:, None])[:, 0]
        return hit

    def _band_remember(self, z, gidx, R, V, zn, eligible, kb, kj, kv):
        """Remember the band of the blocks of a float32 check (see _band_check).

        ``(kb, kj, kv)``: the rows of float32 normalised margin ``kv`` below
        ``theta ||z||`` of the blocks not clearly violated (``eligible``;
        the others keep their band, which holds at its own point: a violated
        block's next point is elsewhere). Where more than ``_BAND_ROWS``
        rows are below it, the smallest are kept and ``tau`` is the next
        one's margin. The float32 margins are off by at most
        ``2 (k + 2) eps_32 ||z||``, which ``tau`` gives away.
        """
        b, k = z.shape
        Bb = _BAND_ROWS
        eps32 = float(torch.finfo(torch.float32).eps)
        tau = torch.full((b,), self.band_theta, dtype=z.dtype)
        rows = torch.zeros((b, Bb + k), dtype=torch.long)
        ok = torch.zeros((b, Bb + k), dtype=torch.bool)
        if len(kb):
            # Per block, in increasing margin; the position of every row.
            o = torch.argsort(kv)
            o = o[torch.argsort(kb[o], stable=True)]
            kb, kj, kv = kb[o], kj[o], kv[o]
            counts = torch.bincount(kb, minlength=b)
            first = torch.cumsum(counts, 0) - counts
            pos = torch.arange(len(kb)) - first[kb]
            over = pos == Bb
            tau[kb[over]] = kv[over].double() / zn[kb[over]]
            sel = pos < Bb
            rows[kb[sel], pos[sel]] = kj[sel]
            ok[kb[sel], pos[sel]] = True
        rows[:, Bb:] = R
        ok[:, Bb:] = V
        e = eligible.nonzero()[:, 0]
        g = gidx[e]
        self.band[g] = rows[e]
        self.band_ok[g] = ok[e]
        self.band_ref[g] = z[e] / zn[e, None]
        self.band_tau[g] = tau[e] - 2.0 * (k + 2) * eps32

    def moved_bound(self, gidx, Q):
        """Upper bounds of ``||P_C(Q_b)||`` from a bound at an earlier point.

        ``Q`` in the scale of the gradients (the prox's ``(beta / t) p``,
        the dual vectors of the certificates). Projections are
        non-expansive: ``||P_C(q)|| <= ||P_C(q_0)|| + ||q - q_0|| <= b_0 +
        ||q - q_0||`` for the last point ``q_0`` where the block was
        bounded and its bound ``b_0`` (infinite before). ``O(k)`` a block.
        """
        return self.B0[gidx] + torch.linalg.vector_norm(Q - self.Q0[gidx], dim=-1)

    def remember(self, gidx, Q, bound):
        """Keep ``bound >= ||P_C(Q_b)||`` at ``Q`` for :meth:`moved_bound`."""
        self.Q0[gidx] = Q
        self.B0[gidx] = bound

    def face_bound(self, gidx, Z):
        """Cheap upper bounds of ``||P_C(Z_b)||`` from remembered multipliers.

        ``||P_C(p)|| <= ||p + K_R^T mu||`` for every ``mu >= 0``; the last
        multipliers of the block, scaled to the norm of ``p``, cost
        ``O(k^2)`` per block instead of the ``O(n k)`` of a check on all
        rows. Zero blocks of a converging iterate mostly stop here.
        """
        prob = self.prob
        g = gidx
        R, V = self.R[g], self.V[g]
        nrm = torch.linalg.vector_norm(Z, dim=-1)
        pn = self.Pn[g]
        scale = torch.where(pn > 0, nrm / torch.where(pn > 0, pn, 1.0), 0.0)
        mu = self.X[g] * scale[:, None]
        sgn = prob.St[(g % self.P)[:, None], R] * V
        r = Z + ((sgn * mu)[:, None, :] @ prob.Ut[R])[:, 0, :]
        bound = torch.linalg.vector_norm(r, dim=-1)
        return torch.where(bound < nrm, bound, nrm)  # also drops NaN

    def project_exact(self, gidx, Z, max_steps, stop_below=None):
        """:meth:`project`, finished on the host where it did not finish.

        With a host tail (small ``n k``) the blocks left are the few slow
        ones, and the host's Lawson-Hanson finishes them one row a step.
        Without one, every block left has run out of steps (or its passive
        set degenerated): such blocks trade rows one for one near rays of
        narrow cones, and the same method on the host would repeat that at
        a full pass over the rows a step, so they are finished by NNLS on
        growing sets of rows from their passive rows (``max_steps=0`` of
        :func:`lawson_hanson`; letter at ``n = 20 000``, 958 such blocks a
        solve: the solve 133.4 / 116.2 s -> 110.0 / 113.6 s, alternated, the
        same path).
        """
        out, ub = self.project(gidx, Z, max_steps, stop_below)
        bad = torch.isnan(out[:, 0])
        if stop_below is not None:
            bad &= ub > stop_below
        bad = bad.nonzero()[:, 0]
        if len(bad):
            prob = self.prob
            g_np = gidx[bad].cpu().numpy()
            Z_np = Z[bad].double().cpu().numpy()
            res = np.full_like(Z_np, np.nan)
            res_ub = np.empty(len(g_np))
            host_steps = None if self.host_tail else 0
            for j, g in enumerate(g_np):
                z, rows = lawson_hanson(
                    prob.Ut_np, prob.S_np[g % self.P], Z_np[j], self.rows(g),
                    1e-12 * np.linalg.norm(Z_np[j]), stop_below, prob.row_norms_np,
                    max_steps=host_steps,
                )
                self.n_host += 1
                if z is None:
                    res_ub[j] = stop_below
                else:
                    res[j] = z
                    res_ub[j] = np.linalg.norm(z)
                rows = sorted(rows)[: prob.Ut.shape[1]]
                self.R[g].zero_()
                self.V[g].zero_()
                self.R[g, : len(rows)] = torch.as_tensor(rows, device=prob.device)
                self.V[g, : len(rows)] = True
            out[bad] = torch.as_tensor(res, dtype=out.dtype, device=out.device)
            ub[bad] = torch.minimum(
                ub[bad], torch.as_tensor(res_ub, dtype=ub.dtype, device=ub.device)
            )
        return out, ub

    def prox(self, gidx, Z, t):
        """``prox`` of ``t ||.|| + indicator of the cone`` on blocks ``gidx``.

        The block is zero where ``||P_C(p)|| <= t``, decided by the cheapest
        upper bound that shows it: ``||p||``; the bound remembered from an
        earlier point, ``||P_C(q)|| <= b0 + ||q - q0||`` in the scale
        ``q = (beta / t) p`` of the gradients, which does not change with the
        step (zero blocks of a converging iterate: ``q = -grad``, which moves
        little from one iteration to the next); the remembered multipliers
        (``O(k^2)``); the exact projection, which stops once an iterate's
        norm is at most ``t``.

        (The bound of ``mu = (-K p)_+``, ``O(n k)``, is not used: at letter's
        and CASP's working sets of 320 patterns it decided 21% and under 0.1%
        of the blocks that reached it, while costing a third of a projection
        per block; without it letter at ``alpha = 100`` converged in 121 s
        instead of 132 s, CASP in 69 s instead of 76 s.)
        """
        flat = Z.reshape(-1, Z.shape[-1])
        nrm = torch.linalg.vector_norm(flat, dim=-1)
        out = torch.zeros_like(flat)
        scale = self.prob.beta / t
        # ||P_C(p)|| <= ||p + K^T mu|| for every mu >= 0 (Moreau), e.g.
        # mu = 0 or the remembered multipliers: blocks where one of them is
        # at most t are zero, and so are those whose projection stops
        # below t. (Bounds such as ||(K p)_+|| hold only when K^T K = I,
        # which spectral weighting breaks.)
        idx = (nrm > t).nonzero()[:, 0]
        q = flat[idx] * scale
        if len(idx):
            keep = self.moved_bound(gidx[idx], q) > self.prob.beta
            idx, q = idx[keep], q[keep]
        # The bounds found here are remembered for the next calls; ``pos``
        # locates the blocks still undecided among those seen.
        seen, best = idx, nrm[idx]
        pos = torch.arange(len(seen), device=Z.device)
        if len(pos):
            fb = self.face_bound(gidx[seen], flat[seen])
            best = torch.minimum(best, fb)
            pos = pos[fb > t]
        if len(pos):
            idx = seen[pos]
            Pi, ub = self.project_exact(gidx[idx], flat[idx], self.steps, stop_below=t)
            best[pos] = torch.minimum(best[pos], ub)
            Pi = torch.nan_to_num(Pi, nan=0.0)
            pn = torch.linalg.vector_norm(Pi, dim=-1, keepdim=True)
            shrink = (1.0 - t / pn.clamp(min=torch.finfo(Z.dtype).tiny)).clamp(min=0)
            out[idx] = Pi * shrink
        self.remember(gidx[seen], q, best * scale)
        return out.view_as(Z)

    def refine(self, gidx, g, bound, below=None):
        """Upper bounds of ``||P_C(g_b)||`` by projected gradient on the dual.

        ``g`` (B, k) for blocks ``gidx``; see
        :func:`~skbnconvex._dual_bounds.refine_projection_bounds` (step 1:
        the columns of ``U'`` are orthogonal with norms at most 1). A block
        stops once its bound is at most ``below`` (default: beta), all the
        callers need to know of it. Runs in chunks of blocks so that the
        ``(blocks, n)`` temporaries stay within ``_CHUNK_ENTRIES``. Where
        the multipliers of all blocks fit ``_MULTIPLIER_ENTRIES``, every
        block starts from its multipliers of the last refinement (between
        checks the gradients change little).
        """
        prob = self.prob
        below = prob.beta if below is None else max(below, prob.beta)
        best = bound.clone()
        rows = max(1, int(_CHUNK_ENTRIES // self.n))
        for a in range(0, len(gidx), rows):
            sl = slice(a, a + rows)
            gi = gidx[sl]
            nu0 = None if self.nu is None else self.nu[gi]
            out = refine_projection_bounds(
                prob.Ut, prob.signs8()[gi % self.P], g[sl], bound[sl], below,
                _DUAL_REFINE, nu0=nu0, return_multipliers=self.nu is not None,
            )
            if self.nu is None:
                best[sl] = out
            else:
                best[sl], self.nu[gi] = out
        return best

    def refines_all(self, n_candidates):
        """Whether a full check refines the bounds of this many candidates.

        Every candidate's bound is refined where that is cheap
        (``_REFINE_ALL_ENTRIES``); above, only as far as a certificate is
        within reach (see :meth:`dual_norms`).
        """
        return n_candidates * self.n <= _REFINE_ALL_ENTRIES

    def dual_norms(
        self, gidx, g, exclude=None, fixed=None, gap_of=None, tol=0.0, min_exact=0,
        scores=False,
    ):
        """Upper bounds of ``||P_C(g_b)||`` for blocks ``gidx``, rows of ``g``.

        Starts from ``||g_b||``, the remembered multipliers
        (:meth:`face_bound`) and the bound remembered at an earlier point
        (:meth:`moved_bound`, which the final bounds update); then, in
        decreasing order of the bounds and in batches, tightens them by
        :meth:`refine` (with ``scores``, the bounds that choose the next
        working set, all at once when they are few,
        ``_REFINE_ALL_ENTRIES``) and replaces those still
        above both beta and the largest value known by the exact value
        (only the maximum enters the gap). Blocks flagged in
        ``exclude`` keep the bounds ``fixed``. With ``gap_of`` (a function
        of the maximum), the work stops as soon as the gap at the largest
        known value exceeds ``tol`` (after the ``min_exact`` largest bounds
        at least): no certificate is possible then, the bounds stay valid,
        and far from the optimum (at the zero start of a large problem,
        say) most blocks keep their cheap bounds.
        """
        prob = self.prob
        beta = prob.beta
        bound = torch.linalg.vector_norm(g, dim=-1)
        known = beta
        if exclude is not None:
            bound = torch.where(exclude, fixed, bound)
            if bool(exclude.any()):
                known = max(known, float(fixed[exclude].max()))
        cand = bound > beta
        if exclude is not None:
            cand &= ~exclude
        idx = cand.nonzero()[:, 0]
        if len(idx) == 0:
            return bound, known
        seen, gs, gi = idx, g[idx], gidx[idx]
        cheap = torch.minimum(self.face_bound(gi, gs), self.moved_bound(gi, gs))
        bound[idx] = torch.minimum(bound[idx], cheap)
        idx = idx[bound[idx] > known]
        refine_all = scores and self.refines_all(len(idx))
        if refine_all:
            # Cheap enough: every candidate refined, so that the scores that
            # choose the next working set are tight too. (Not for the checks
            # inside a working set, where only the largest bound counts:
            # refining every candidate there took 9.8 s of CASP's 72 s solve
            # at alpha = 100, with 801 iterations instead of 730.)
            bound[idx] = self.refine(gidx[idx], g[idx], bound[idx])
            idx = idx[bound[idx] > known]
        idx = idx[torch.argsort(bound[idx], descending=True)]
        start = 0
        while start < len(idx):
            if float(bound[idx[start]]) <= known:
                break
            if start >= min_exact and gap_of is not None and gap_of(known) > tol:
                break
            # Small batches first: the largest values often settle the gap.
            size = max(min_exact - start, _BATCH, start)
            batch = idx[start: start + size]
            if not refine_all:
                bound[batch] = self.refine(gidx[batch], g[batch], bound[batch], known)
            batch = batch[bound[batch] > known]
            if len(batch):
                _, ub = self.project_exact(
                    gidx[batch], g[batch], self.steps, stop_below=known
                )
                bound[batch] = torch.minimum(bound[batch], ub)
                known = max(known, float(bound[batch].max()))
            start += size
            if start < len(idx):
                # Later batches in the order of the improved bounds.
                rest = idx[start:]
                idx = torch.cat((idx[:start], rest[torch.argsort(bound[rest], descending=True)]))
        # For the prox and the next checks.
        self.remember(gi, gs, bound[seen])
        return bound, known


class _WorkingSet:
    """Program (C) restricted to a working set of patterns."""

    def __init__(self, prob, faces, ws, W, C):
        self.prob = prob
        self.faces = faces
        self.ws = ws
        self.m = len(ws)
        self.Dt = prob.Dt[ws]
        P = faces.P
        # Global numbers of the blocks, in the (C, 2, m) order of W.
        cs = torch.arange(2 * C, device=prob.device)
        self.gidx = (cs[:, None] * P + ws[None, :]).reshape(-1)
        self.W = W
        self.A2 = prob.norm_A2(self.Dt)
        self.L = 1.05 * prob.Lf * max(self.A2, 1e-300)
        self.last_bound = None
        self.barrier_tried = False
        # Set when neither FISTA nor the barrier method lowers the
        # objective any more (see fista).
        self.at_floor = False

    def certificate(self, W, F, target=0.0):
        """Objective, relative gap of the restricted program and the bounds.

        The exact evaluation of the dual bounds stops once the gap cannot
        reach ``target`` (the returned gap is then valid but loose).
        """
        prob = self.prob
        gr = prob.grad_blocks(_loss_grad(prob.loss, F, prob.Y), self.Dt)
        primal = prob.objective(W, F)

        def gap_of(M):
            return (primal - prob.dual_value(F, M)) / max(primal, 1e-300)

        bound, _ = self.faces.dual_norms(
            self.gidx, -gr.reshape(-1, gr.shape[-1]), gap_of=gap_of, tol=target
        )
        M = float(bound.max()) if bound.numel() else 0.0
        return primal, gap_of(M), bound

    def barrier(self, W, gap_abs, target_abs, max_iter):
        """Solve the restricted program by the barrier method from ``W``.

        Returns the blocks and the Newton steps used, or None where the
        method does not apply (Newton systems too large for the memory
        budget, or a pattern whose cone has no interior).
        """
        prob = self.prob
        C, _, m, k = W.shape
        dim = m * k
        if isinstance(prob.loss, MultinomialLogLoss):
            entries = (C * dim) ** 2
        else:
            entries = C * dim**2
        # Every Newton step forms the loss Hessian, n * entries operations.
        flops = self.Dt.shape[1] * entries
        if entries > _BARRIER_ENTRIES_MAX or flops > _BARRIER_FLOPS_MAX:
            return None
        Z = prob.interior(self.ws)
        if Z is None:
            return None
        f64 = torch.float64
        W_b, steps = barrier_solve(
            prob.Ut.to(f64), self.Dt.to(f64), prob.Y.to(f64), prob.loss,
            prob.beta, W.to(f64), Z, gap_abs, target_abs, max_iter,
        )
        W_b = W_b.to(prob.dtype)
        # Strictly feasible in float64; the exact projection removes what
        # a conversion to float32 may have moved.
        flat = W_b.reshape(-1, k)
        supp = (torch.linalg.vector_norm(flat, dim=-1) > 0).nonzero()[:, 0]
        if len(supp):
            flat[supp], _ = self.faces.project_exact(
                self.gidx[supp], flat[supp], self.faces.steps
            )
        return flat.view_as(W), steps

    def barrier_cost(self):
        """Cost of the barrier method in FISTA iterations (an estimate).

        ``_BARRIER_NEWTON_STEPS`` Newton steps (loss Hessian and Cholesky
        factorisation of the ``m k`` systems, coupled over the outputs for
        the multinomial loss, constant for the squared loss) against
        an iteration's two products with the data and its projections,
        about ``8 n m k C`` operations.
        """
        prob = self.prob
        n, k = prob.Ut.shape
        C, m = prob.Y.shape[1], self.m
        dim = m * k
        if isinstance(prob.loss, MultinomialLogLoss):
            step = 2.0 * n * (C * dim) ** 2 + (C * dim) ** 3 / 3
        elif isinstance(prob.loss, SquaredLoss):
            step = C * dim**3 / 3
        else:
            step = C * (n * dim**2 + dim**3 / 3)
        return _BARRIER_NEWTON_STEPS * step / (8.0 * n * dim * C)

    def structure(self, W):
        """Support of ``W`` and the active rows of its non-zero blocks."""
        flat = W.reshape(-1, W.shape[-1])
        supp = (torch.linalg.vector_norm(flat, dim=-1) > 0).nonzero()[:, 0]
        g = self.gidx[supp]
        return supp, self.faces.R[g].clone(), self.faces.V[g].clone()

    def fista(self, max_iter, target, bar=None):
        """FISTA with backtracking, adaptive restart and Newton attempts.

        Runs until the restricted gap is at most ``target`` (checked every
        ``_CHECK_EVERY`` iterations) or ``max_iter`` iterations (Newton
        steps count). Returns the iterations used and the restricted gap.

        The step ``1 / L`` starts from the global bound and then follows the
        local curvature: ``L`` shrinks by ``_L_SHRINK`` (``_L_SHRINK_OUTPUTS``
        for several outputs) at every iteration
        and doubles when the sufficient-decrease test fails. The prediction
        is linear in the blocks, so it is carried along the extrapolation
        and every iteration costs two products with the data.
        """
        prob = self.prob
        beta = prob.beta
        L_max = self.L
        L = getattr(self, "L_local", L_max)
        shrink = _L_SHRINK if prob.Y.shape[1] == 1 else _L_SHRINK_OUTPUTS
        W = self.W
        F_W = prob.predict(W, self.Dt)
        Yk, F_Y, t = W, F_W, 1.0
        used = 0
        tried = None
        newton_fails = newton_wait = 0
        history = []
        primals = []
        # Loose targets: the products of the iterations in float32 (the
        # working set's certificates see their ~1e-7 relative error; the
        # full checks, which decide convergence, and Newton run in float64).
        fast = prob.fast_products(self.Dt) if target >= _FAST_TARGET else None
        slack = _FAST_SLACK if fast is not None else 1e-12
        Dt_it, Ut_it = fast if fast is not None else (self.Dt, None)
        while True:
            primal, gap, bound = self.certificate(W, F_W, target)
            if bar is not None:
                bar.set_postfix(obj=f"{primal:.6g}", gap=f"{gap:.1e}", refresh=False)
            if gap <= target or used >= max_iter:
                break
            history.append(gap)
            primals.append(primal)
            if (
                self.barrier_tried
                and len(primals) > _STALL_CHECKS
                and primals[-1 - _STALL_CHECKS] - primal <= _FLOOR * abs(primal)
            ):
                # The objective has stopped moving after the barrier method
                # had its turn: the gap is at the round-off floor of the
                # certificate (a tol of 1e-11 ran to max_iter here).
                self.at_floor = True
                break
            # FISTA has stalled when, at its rate over the last checks, it
            # would need more iterations than the barrier method's Newton
            # steps cost (breast cancer, 64 sampled patterns: a fixed rule
            # "less than tenfold in 100 iterations" sent a converging
            # FISTA to the barrier, 5.4 s -> 14-45 s).
            slow = _fista_outlook(history, target) > self.barrier_cost()
            # Once FISTA has stalled on a working set, the later (larger)
            # ones go to the barrier method as soon as that holds.
            stalled = slow and (
                len(history) > _STALL_CHECKS
                or (self.prob.fista_stalled and len(history) > 1)
            )
            if stalled and not self.barrier_tried:
                # FISTA has stalled (badly conditioned working set): the
                # barrier method, once per working set.
                self.barrier_tried = True
                self.prob.fista_stalled = True
                # Its cost grows with log(1 / accuracy) and a restart is not
                # cheap (it leaves the central path): it solves the working
                # set to a tenth of the final tolerance.
                out = self.barrier(
                    W, gap * primal, 0.1 * min(target, self.prob.tol) * primal,
                    max_iter - used,
                )
                if out is not None:
                    W_b, n_steps = out
                    used += n_steps
                    if bar is not None:
                        bar.update(n_steps)
                    F_b = prob.predict(W_b, self.Dt)
                    if prob.objective(W_b, F_b) < primal:
                        p_b, gap_b, bound_b = self.certificate(W_b, F_b, target)
                        W, F_W, Yk, F_Y, t = W_b, F_b, W_b, F_b, 1.0
                        primal, gap, bound = p_b, gap_b, bound_b
                        if gap <= target or used >= max_iter:
                            break
            struct = self.structure(W)
            fresh = len(struct[0]) > 0 and not _same(struct, tried)
            if fresh and newton_wait > 0:
                newton_wait -= 1
            elif fresh:
                # Newton on the faces of the current iterate. A wrong guess
                # is not cheap at many outputs (landsat, 6 classes: 1-5 s
                # per attempt, every one refused, 70% of the solve), so
                # after f refusals in a row the next 2^f - 1 checks skip it.
                tried = struct
                # After two refusals in a row a refused step is backtracked
                # (see _newton): landsat's refusals come one after another,
                # while backtracking letter's two isolated ones cost it 41
                # iterations (464 -> 505), and CASP's second of two 50.
                W_n, n_steps = _newton(
                    self, W, struct, primal, backtrack=newton_fails >= 2
                )
                used += n_steps
                F_n = None if W_n is None else prob.predict(W_n, self.Dt)
                # A wrong guess of the faces is refused on its objective
                # alone, before the cost of a certificate.
                if F_n is not None and prob.objective(W_n, F_n) < primal:
                    newton_fails = 0
                    p_n, gap_n, bound_n = self.certificate(W_n, F_n, target)
                    W, F_W, Yk, F_Y, t = W_n, F_n, W_n, F_n, 1.0
                    primal, gap, bound = p_n, gap_n, bound_n
                    if gap <= target:
                        break
                else:
                    newton_fails += 1
                    newton_wait = 2**newton_fails - 1
            n_in = min(_CHECK_EVERY, max_iter - used)
            for _ in range(n_in):
                r = _loss_grad(prob.loss, F_Y, prob.Y)
                gr = prob.grad_blocks(r, Dt_it, Ut_it)
                f_Y = prob.loss_value(F_Y)
                L = max(L * shrink, 1e-3 * L_max)
                while True:
                    W_new = self.faces.prox(self.gidx, Yk - gr / L, beta / L)
                    F_new = prob.predict(W_new, Dt_it, Ut_it)
                    Dlt = W_new - Yk
                    quad = float((gr * Dlt).sum()) + 0.5 * L * float((Dlt * Dlt).sum())
                    f_new = prob.loss_value(F_new)
                    if f_new <= f_Y + quad + slack * abs(f_Y) or L >= L_max:
                        break
                    L = min(2.0 * L, L_max)
                # Gradient restart: momentum that points uphill is dropped.
                if float((Dlt * (W_new - W)).sum()) < 0:
                    t, Yk, F_Y = 1.0, W_new, F_new
                else:
                    t_new = 0.5 * (1.0 + (1.0 + 4.0 * t * t) ** 0.5)
                    c = (t - 1.0) / t_new
                    Yk = W_new + c * (W_new - W)
                    F_Y = F_new + c * (F_new - F_W)
                    t = t_new
                W, F_W = W_new, F_new
            used += n_in
            if bar is not None:
                bar.update(n_in)
        self.W = W
        self.L_local = L
        self.last_bound = bound
        return used, gap


def _fista_outlook(history, target):
    """FISTA iterations to the restricted ``target`` at the recent rate.

    The rate is that of the gaps (one per check) over the last
    ``_STALL_CHECKS`` checks, as if linear; infinite when they did not
    decrease.
    """
    S = min(_STALL_CHECKS, len(history) - 1)
    if S <= 0:
        return np.inf
    if history[-1] <= target:
        return 0.0
    rho = (history[-1] / history[-1 - S]) ** (1.0 / S)
    if not rho < 1.0:
        return np.inf
    return _CHECK_EVERY * np.log(target / history[-1]) / np.log(rho)


def _same(s1, s2):
    """Whether two structures (support, rows, masks) are equal."""
    if s1 is None or s2 is None:
        return False
    return all(a.shape == b.shape and bool(torch.equal(a, b)) for a, b in zip(s1, s2))


def _newton(wset, W, struct, f_start=None, backtrack=True):
    """Damped Newton on the faces ``struct`` (support and active rows).

    Every non-zero block ``b`` is written ``w_b = N_b x_b`` with ``N_b`` an
    orthonormal basis of the null space of its active rows; the objective is
    then smooth in ``x`` away from ``x_b = 0``; blocks that Newton drives to
    zero are removed. Where its point is not below the start and the
    faces of a few blocks only are wrong (two, or
    ``_NEWTON_UPDATE_FRACTION`` of the support: rows the point violates,
    face rows with a negative multiplier), they are corrected and Newton
    runs again from the start, up to ``_NEWTON_FACE_UPDATES`` times.
    Where the best is still not below the start, ``backtrack`` tries the
    fractions ``_NEWTON_BACKTRACK`` of its step, projected, and returns the
    first below the start. Returns the best of the new points (lowest
    objective), projected exactly onto the cones (None when nothing is left
    or the system is too large), and the steps used. ``f_start`` is the
    objective at ``W`` (computed when not given).
    """
    prob = wset.prob
    supp, Rs, Vs = struct
    k = prob.Ut.shape[1]
    m = wset.m
    supp_np = supp.cpu().numpy()
    Rs_np, Vs_np = Rs.cpu().numpy(), Vs.cpu().numpy()
    rows = [Rs_np[j][Vs_np[j]].tolist() for j in range(len(supp_np))]
    pats = [int(wset.ws[b % m]) for b in supp_np]
    Wflat = W.reshape(-1, k).double()
    W0 = Wflat[supp]
    if f_start is None:
        f_start = prob.objective(W, prob.predict(W, wset.Dt))
    best, best_f, best_rows, best_raw, steps = None, np.inf, None, None, 0

    def projected(W_flat, Z):
        # ``W_flat`` with the support's blocks replaced by ``Z`` projected
        # onto their cones, shaped as ``W``, and its objective.
        W_p = W_flat.clone()
        W_p[supp], _ = wset.faces.project_exact(wset.gidx[supp], Z, wset.faces.steps)
        W_p = W_p.view_as(W)
        return W_p, prob.objective(W_p, prob.predict(W_p, wset.Dt))

    for update in range(_NEWTON_FACE_UPDATES + 1):
        # Every attempt starts from the feasible point (a block that one
        # attempt drove out may belong to the support on the new faces).
        Ws, it, indep = _newton_on_faces(wset, W.shape[0], supp, pats, rows, W0)
        steps += it
        if Ws is None:
            break
        W_raw = torch.zeros_like(Wflat)
        W_raw[supp] = Ws
        W_raw = W_raw.to(prob.dtype)
        # The faces may be wrong: every block goes to its cone (cheap for
        # the nearly feasible blocks of a right guess).
        W_new, f_new = projected(W_raw, W_raw[supp])
        if f_new < best_f:
            best, best_f, best_raw = W_new, f_new, W_raw
            best_rows = [list(r) for r in rows], indep
        if update == _NEWTON_FACE_UPDATES or best_f < f_start:
            # A point below the start is taken as it is (the caller accepts
            # it; the next check tries the faces of the new iterate).
            break
        # Near the optimum the guessed faces of a few blocks miss a row or
        # two (a face of 3 146 rows of 64 blocks at (2000, 50, 500), one
        # missing until the objective was within 2e-10): the first row that
        # Newton's point crosses joins a face, rows with a negative
        # multiplier leave, and Newton lands on the optimum. Far from it
        # many blocks change and such updates go astray (measured: worse
        # points), so they are not made then.
        rows, n_changed = _face_update(wset, supp, pats, rows, W_raw.view_as(W), W0)
        if n_changed == 0 or n_changed > max(2.0, _NEWTON_UPDATE_FRACTION * len(rows)):
            break
    # A point within round-off of the start is not worse: Newton's polish
    # of a point flat to round-off (see _newton_on_faces) shows in the
    # certificate, not in the objective, and a fraction of it, whose value
    # the round-off happened to put below, is only that fraction of the
    # polish (the gap of a test's point halved instead of falling 1e5-fold,
    # on one processor and not on another).
    if best is not None and best_f > f_start + 1e-14 * abs(f_start) and backtrack:
        # Faces wrong for many blocks (at realistic rank a block lies on
        # dozens of hyperplanes, and Newton's point crosses others): the
        # projection of the full step costs more than the step gains, but
        # part of it, projected, can still descend.
        step = best_raw.view(-1, k)[supp].double() - W0
        for t in _NEWTON_BACKTRACK:
            W_t, f_t = projected(W.reshape(-1, k), (W0 + t * step).to(prob.dtype))
            if f_t < f_start:
                best, best_f = W_t, f_t
                break
    if best is not None:
        _remember_faces(wset, supp, *best_rows)
    return best, steps


def _face_update(wset, supp, pats, rows, W_raw, W0):
    """Faces corrected by the primal and dual signs of Newton's point.

    For the support blocks of ``W_raw`` (Newton's point on the faces
    ``rows``, not projected) that violate rows ``K_j w_b < 0``, the first of
    those rows crossed on the segment from the feasible start ``W0`` joins
    the face (while it has fewer than ``k`` rows: a primal active-set step),
    and face rows whose multiplier ``mu_j`` in the stationarity condition
    ``grad_b f + beta w_b / ||w_b|| = K_F^T mu`` is negative leave it.
    Returns the new faces and the number of blocks whose face changed.
    """
    prob = wset.prob
    k = prob.Ut.shape[1]
    Ut, S = prob.Ut_np, prob.S_np
    F = prob.predict(W_raw, wset.Dt)
    grads = prob.grad_blocks(_loss_grad(prob.loss, F, prob.Y), wset.Dt)
    grads = grads.reshape(-1, k)[supp].double().cpu().numpy()
    Ws = W_raw.reshape(-1, k)[supp].double().cpu().numpy()
    W0 = W0.cpu().numpy()
    nrm = np.linalg.norm(Ws, axis=1)
    new_rows, n_changed = [], 0
    for j, (R, pat) in enumerate(zip(rows, pats)):
        if nrm[j] == 0:
            new_rows.append(R)
            continue
        keep = list(R)
        if R:
            K = S[pat, R, None] * Ut[R]
            v = grads[j] + prob.beta * Ws[j] / nrm[j]
            mu = np.linalg.lstsq(K.T, v, rcond=None)[0]
            keep = [i for i, u in zip(R, mu) if u >= -1e-8 * np.abs(mu).max()]
        Kw = S[pat] * (Ut @ Ws[j])
        viol = np.nonzero(Kw < -prob.feas_tol * nrm[j])[0]
        add = []
        if len(viol) and len(keep) < k:
            # The first row crossed on the way from the feasible start.
            K0 = S[pat, viol] * (Ut[viol] @ W0[j])
            t = np.clip(K0, 0.0, None) / (np.clip(K0, 0.0, None) - Kw[viol])
            add = [int(viol[np.argmin(t)])]
        if add or len(keep) < len(R):
            n_changed += 1
        new_rows.append(sorted(keep + add))
    return new_rows, n_changed


def _remember_faces(wset, supp, rows, independent):
    """Make the faces of Newton's point the remembered rows of its blocks.

    The exact projection of a point that Newton put on (or near) its faces
    keeps only the rows with a positive multiplier, often none, and the
    certificate's projections of the gradients that follow, whose faces
    are Newton's at the optimum, then start almost cold (measured at
    (2000, 50, 500): 80 Lawson-Hanson steps a block, 0.7 s for the
    certificates of the last working set). Faces of linearly dependent
    rows (``independent`` False) are not kept: a warm start needs
    independent rows.
    """
    faces, prob = wset.faces, wset.prob
    k = prob.Ut.shape[1]
    g = wset.gidx[supp].cpu().numpy()
    for j, (R, ok) in enumerate(zip(rows, independent)):
        if not R or len(R) >= k or not ok:
            continue
        faces.R[g[j]].zero_()
        faces.V[g[j]].zero_()
        faces.X[g[j]].zero_()
        faces.R[g[j], : len(R)] = torch.as_tensor(R, device=prob.device)
        faces.V[g[j], : len(R)] = True


def _newton_on_faces(wset, C, supp, pats, rows, Ws):
    """Newton of :func:`_newton` on the faces ``rows`` from blocks ``Ws``.

    Returns the blocks of the support (float64, not projected; None when
    nothing is left or the system is too large), the steps used and, per
    block, whether its face rows are linearly independent.
    """
    prob = wset.prob
    k = prob.Ut.shape[1]
    m = wset.m
    dev = prob.device
    f64 = dict(device=dev, dtype=torch.float64)
    bases, cols_blk, independent = [], [], []
    for j, (R, pat) in enumerate(zip(rows, pats)):
        if len(R):
            A = (prob.S_np[pat, R, None] * prob.Ut_np[R]).T
            U_, sv, _ = np.linalg.svd(A, full_matrices=True)
            rank = int((sv > 1e-10 * sv[0]).sum())
            N = U_[:, rank:]
        else:
            rank, N = 0, np.eye(k)
        independent.append(rank == len(R))
        # A block whose face is {0} (k independent active rows) is zero on
        # it: it gets no columns and leaves.
        bases.append(N)
        cols_blk += [j] * N.shape[1]
    T = len(cols_blk)
    if T == 0 or T > _NEWTON_DIM_MAX:
        return None, 0, independent
    Ncat = torch.as_tensor(np.hstack(bases), **f64)  # (k, T)
    blk = torch.as_tensor(cols_blk, device=dev)
    cs, i_ws = supp // m, supp % m
    out_b, sign_b = cs // 2, 1.0 - 2.0 * (cs % 2).to(torch.float64)
    # The columns grouped by output (see torch_parameter_hessian).
    order = torch.argsort(out_b[blk], stable=True)
    Ncat, blk = Ncat[:, order], blk[order]
    out_col = out_b[blk]
    Ut = prob.Ut.double()
    Y = prob.Y.double()
    # JT[j]: the change of F[:, out_j] per unit of x_j, as rows (T, n).
    JT = (Ncat.T @ Ut.T).mul_(sign_b[blk, None] * wset.Dt[i_ws[blk]].double())
    x = (Ncat * Ws[blk].T).sum(0)  # N_b^T w_b
    nb = len(rows)
    beta = prob.beta
    loss = prob.loss

    # The rows of each output (JT's are grouped by output): F and the
    # gradient are products with row slices, which read JT once and write
    # no (T, n) temporary.
    groups = output_groups(out_col)

    def F_of(x):
        F = torch.zeros((C, JT.shape[1]), **f64)
        for c, sl in groups:
            torch.mv(JT[sl].T, x[sl], out=F[c])
        return F.T

    def bnorm(x):
        return torch.zeros(nb, **f64).index_add_(0, blk, x * x).sqrt()

    def obj(x):
        return float(loss.torch_value(F_of(x), Y)) + beta * float(bnorm(x).sum())

    f = obj(x)
    scale0 = float(bnorm(x).max())
    alive = torch.ones(T, dtype=torch.bool, device=dev)
    JaT, groups_a = JT, groups
    # A quadratic loss has one Hessian in F, the same at every point, so
    # the Hessian in x of the columns left is a principal submatrix of the
    # first one formed (columns only leave). A log loss's curvature moves
    # with F, so there it is formed at every step: after blocks had crossed
    # zero it had moved by 50% to 800% in norm (letter, breast cancer), and
    # the old matrix sent Newton astray (breast cancer: every block crossed
    # zero, in every attempt).
    H_loss, ia_loss = None, None
    it = 0
    for it in range(1, _NEWTON_MAX + 1):
        nr = bnorm(x)
        # Blocks that Newton drives to zero leave the model (the penalty is
        # not smooth there); the certificate judges the result.
        dead = (nr <= 1e-7 * scale0)[blk] & alive
        if bool(dead.any()):
            alive &= ~dead
            x = x * alive
            f = obj(x)
        ia = alive.nonzero()[:, 0]
        if len(ia) == 0:
            return None, it, independent
        F = F_of(x)
        rT = _loss_grad(loss, F, Y).T.contiguous()  # (C, n)
        oa, ba = out_col[ia], blk[ia]
        if len(ia) != len(JaT):
            # The rows of the columns left, copied when columns leave (they
            # never come back, so the count tells).
            JaT, groups_a = JT[ia], output_groups(oa)
        u = x[ia] / nr[ba]
        grad = torch.empty(len(ia), **f64)
        for c, sl in groups_a:
            torch.mv(JaT[sl], rT[c], out=grad[sl])
        grad += beta * u
        if H_loss is None or not loss.quadratic:
            gram = None
            if len(ia) ** 2 * JaT.shape[1] >= _NEWTON_GRAM32_WORK:
                gram = torch.float32
            H = torch_parameter_hessian(loss, F, Y, JaT.T, oa, gram)
            if loss.quadratic:
                H_loss, ia_loss = H.clone(), ia
        else:
            keep = torch.searchsorted(ia_loss, ia)
            H = H_loss[keep[:, None], keep]
        # Hessian of beta ||x_b||: beta (I - u u^T) / ||x_b|| on each block,
        # i.e. beta / ||x_b|| on the diagonal minus beta Q Q^T, where
        # Q[j, b_j] = u_j / sqrt(||x_b||) (one product, no (T, T) masks).
        Q = torch.zeros((len(ia), nb), **f64)
        Q[torch.arange(len(ia), device=dev), ba] = u / nr[ba].sqrt()
        H.diagonal().add_(beta / nr[ba])
        H.addmm_(Q, Q.T, alpha=-beta)
        H.diagonal().add_(1e-13 * float(H.diagonal().abs().max()))
        Lc, info = torch.linalg.cholesky_ex(H)
        if int(info) == 0:
            da = -torch.cholesky_solve(grad[:, None], Lc)[:, 0]
        else:
            da = -torch.linalg.lstsq(H, grad[:, None]).solution[:, 0]
        dec = -float(grad @ da)
        if not dec > 0:
            break
        d = torch.zeros_like(x)
        d[ia] = da
        # A block that the full step would send through zero is where the
        # smooth model is wrong: it leaves (zero is its likely optimum).
        # (Blocks that have left are zero and stay out of the test.)
        cross = (torch.zeros(nb, **f64).index_add_(0, blk, x * (x + d)) <= 0) & (nr > 0)
        if bool(cross.any()):
            alive &= ~cross[blk]
            x = x * alive
            f = obj(x)
            continue
        if dec <= 1e-15 * max(abs(f), 1e-300):
            # The objective is flat to round-off here, but not the dual
            # point that certifies it, which moves with x to first order:
            # a last full step (the quadratic model is exact at this scale)
            # polishes x without a line search, which round-off would
            # decide. (A program of 60 patterns at tol = 1e-10 stopped at a
            # certified gap of 1.4e-9 without it.)
            x = x + d
            break
        step = 1.0
        while step > 1e-10:
            f_new = obj(x + step * d)
            if f_new <= f - 1e-4 * step * dec:
                break
            step *= 0.5
        else:
            break
        x = x + step * d
        f = f_new
    if not bool(alive.any()):
        return None, it, independent
    Ws = torch.zeros((nb, k), **f64).index_add_(0, blk, (Ncat * x).T)
    return Ws, it, independent


def _full_check(prob, faces, W_full, wset, tol):
    """Duality gap of the whole program and the bound of every block.

    The working-set blocks keep the exact bounds of the last restricted
    check (same point); the others are bounded by :meth:`_Faces.dual_norms`,
    which evaluates exact values only while a certificate is within reach.
    Returns the objective, the certified relative gap, an estimate of the
    gap (at the largest exact value, for inner targets), the bounds, of
    shape (C, 2, P), and the dual vectors of the blocks, (2 C P, k).
    """
    C, _, P, k = W_full.shape
    F = prob.predict(W_full, prob.Dt)
    g = prob.grad_blocks(_loss_grad(prob.loss, F, prob.Y), prob.Dt).neg_()
    primal = prob.objective(W_full, F)

    def gap_of(M):
        return (primal - prob.dual_value(F, M)) / max(primal, 1e-300)

    gidx = torch.arange(2 * C * P, device=prob.device)
    exclude = fixed = None
    if wset is not None and wset.last_bound is not None:
        exclude = torch.zeros(2 * C * P, dtype=torch.bool, device=prob.device)
        exclude[wset.gidx] = True
        fixed = torch.zeros(2 * C * P, dtype=W_full.dtype, device=prob.device)
        fixed[wset.gidx] = wset.last_bound
    bound, known = faces.dual_norms(
        gidx, g.reshape(-1, k), exclude=exclude, fixed=fixed, gap_of=gap_of,
        tol=tol, min_exact=_EST_EXACT, scores=True,
    )
    M = float(bound.max()) if bound.numel() else 0.0
    # The gap at the largest exact value is what the point would certify if
    # every other bound were tight: the estimate that sets inner targets.
    return primal, gap_of(M), gap_of(known), bound.view(C, 2, P), g.view(-1, k)


def _confirm_entrants(faces, g, bound, score, need):
    """Exact scores of the patterns that may enter the next working set.

    The full check leaves most blocks with cheap bounds of their dual
    norms (``||g_b||``, remembered multipliers), and a pattern whose cheap
    bound exceeds beta may not violate at all. The candidates (scores in
    ``(1, _KEPT_SCORE)``: not in use, not kept) are taken in decreasing order of
    their scores, and their blocks above beta are projected exactly,
    stopped just below beta (the projections the first prox of the set
    would make at the same point), until ``need`` patterns are shown to
    violate or none is left; ``bound`` (C, 2, P) is tightened in place,
    and the faces remember the new bounds for that prox. ``g``: the dual
    vectors of the blocks, numbered as the faces number them.
    """
    C, _, P = bound.shape
    beta = faces.prob.beta
    cand = ((score > 1) & (score < _KEPT_SCORE)).nonzero()[:, 0]
    cand = cand[torch.argsort(score[cand], descending=True)]
    flat = bound.view(2 * C, P)
    rows = torch.arange(2 * C, device=bound.device)[:, None]
    # Projections stop a little below beta, so that the bounds they leave
    # still decide the first prox, whose point differs from ``g`` by the
    # round-off of its (float32) products.
    stop = (1 - 1e-3) * beta
    found = start = 0
    while start < len(cand) and found < need:
        # Patterns a round: those still needed (most candidates violate
        # early on, when few are needed), at least _BATCH.
        pats = cand[start: start + max(need - found, _BATCH)]
        start += len(pats)
        tight = flat[:, pats]
        over = tight > beta
        gidx = (rows * P + pats[None, :])[over]
        gb = g[gidx]
        _, ub = faces.project_exact(gidx, gb, faces.steps, stop_below=stop)
        tight[over] = torch.minimum(tight[over], ub)
        faces.remember(gidx, gb, tight[over])
        flat[:, pats] = tight
        found += int((tight > beta).any(0).sum())


def solve_torch(
    program,
    *,
    W0=None,
    max_iter=10000,
    tol=1e-6,
    device="cpu",
    dtype=None,
    verbose=False,
):
    r"""Solve program (C) on working sets of patterns (FISTA, barrier method).

    Minimises

    .. math::

        L\Big(\Big[\sum_i D_i U' (a_{c,i} - b_{c,i})\Big]_c\Big)
        + \beta \sum_{c,i} (\|a_{c,i}\| + \|b_{c,i}\|)
        \quad \text{s.t.} \quad (2D_i - I) U' a_{c,i} \ge 0,\;
        (2D_i - I) U' b_{c,i} \ge 0,

    by accelerated proximal gradient on working sets of patterns, with a
    primal-dual interior-point method on the working sets where it stalls;
    see the module docstring for the method.

    Parameters
    ----------
    program : ConvexProgram
        The program to solve.
    W0 : tuple of ndarray, default=None
        Warm start ``(Wp, Wn)``, each of shape ``(n_outputs, P0, k)`` with
        ``P0 <= n_patterns``: the first ``P0`` patterns of the program (as
        when column generation appends patterns); the others start at zero.
        Blocks outside their cones are projected onto them.
    max_iter : int, default=10000
        Maximum number of FISTA iterations plus Newton steps (of the face
        and barrier methods).
    tol : float, default=1e-6
        Tolerance of the stopping rule: the relative duality gap
        ``(P - D) / P`` and the relative cone violation
        ``max_b ||(-K_i w_b)_+||_inf / max_b ||w_b||`` must both be at most
        ``tol``. ``P`` is the objective and ``D`` the dual value of the
        scaled dual point ``-grad L * min(1, beta / M)``, where ``M`` is an
        upper bound of the largest dual-constraint norm (module docstring).
        The duality gap bounds the distance of the objective to the optimum.
        Below the round-off floor of the certificate (3e-11 to 4e-13 in
        float64 on a test program) the solve stops when the
        objective no longer moves, not converged, at its point with the
        smallest certified gap.
    device : str or torch.device, default="cpu"
        Where to compute: ``"cpu"`` or ``"cuda"``.
    dtype : torch.dtype, default=None
        ``torch.float64`` (default) or ``torch.float32``. A float64 solve
        of several outputs runs FISTA's products with the data in float32
        while a working set's target is loose (relative gap ``>= 1e-3``);
        its full checks, which decide convergence, stay in float64.
    verbose : bool, default=False
        Show a progress bar over the iterations with the objective and the
        relative duality gap.

    Returns
    -------
    result : SolverResult
        Blocks as float64 arrays, feasible to round-off after the final
        projection step; ``objective`` is ``program.objective`` at them and
        ``converged`` says whether the relative duality gap was certified
        at most ``tol``.
    """
    device = _resolve_device(device)
    dtype = torch.float64 if dtype is None else dtype
    if dtype not in (torch.float64, torch.float32):
        raise ValueError(f"dtype must be torch.float64 or torch.float32, got {dtype}.")
    prob = _Problem(program, device, dtype)
    C, P, k = program.n_outputs, program.n_patterns, program.k

    W_full = torch.zeros((C, 2, P, k), device=device, dtype=dtype)
    if W0 is not None:
        Wp0, Wn0 = (np.asarray(w, dtype=float) for w in W0)
        if Wp0.shape != Wn0.shape or Wp0.shape[0] != C or Wp0.shape[2] != k:
            raise ValueError(
                f"W0 blocks must have shape ({C}, P0, {k}), got {Wp0.shape} "
                f"and {Wn0.shape}."
            )
        if Wp0.shape[1] > P:
            raise ValueError(
                f"W0 has {Wp0.shape[1]} patterns, more than the program's {P}."
            )
        P0 = Wp0.shape[1]
        Wp0, Wn0 = program.__class__(
            program.Ut, program.D[:, :P0], program.Y, program.loss, program.beta
        ).project_to_cones(Wp0, Wn0)
        W_full[:, 0, :P0] = torch.as_tensor(Wp0, device=device, dtype=dtype)
        W_full[:, 1, :P0] = torch.as_tensor(Wn0, device=device, dtype=dtype)

    # Single precision cannot certify gaps much below ~100 machine epsilons.
    eps_floor = 100 * float(torch.finfo(dtype).eps) if dtype == torch.float32 else 0.0
    tol_eff = max(tol, eps_floor)
    prob.tol = tol_eff

    bar = None
    if verbose:
        from tqdm.auto import tqdm

        bar = tqdm(total=max_iter, desc="solve_torch", leave=False)

    n_iter = 0
    converged = False
    rel_gap = np.inf
    # One memory of faces for the primal blocks (prox) and the dual
    # constraints (certificates), deliberately: Newton takes the faces of
    # the support right after a certificate, i.e. those of P_C(g_b), which
    # is parallel to the optimal w_b (KKT) and finds the optimal face
    # sooner than the prox iterates do (separate memories, measured at
    # (1000, 20, 100): 371 iterations instead of 311).
    faces = _Faces(prob, C)
    wset = None
    ws_start = _WS_START * min(C, _WS_START_OUTPUTS)
    ws_size = min(P, ws_start)
    # Where the full checks cannot refine every bound, their scores are
    # mostly the cheap bounds: new patterns are confirmed (see
    # _confirm_entrants). Smaller programs' checks refine every candidate,
    # and those scores choose as they are (the race's programs, n = 500:
    # the confirmation changed the path of its adaptive fit, not its cost,
    # and a fit on 512 random patterns took 95 s instead of 74 s).
    confirm = not faces.refines_all(2 * C * P)
    message = ""
    floor_primal = None
    best = (np.inf, None)  # the smallest certified gap and its point
    while True:
        # ---- full check: scores of all patterns and the duality gap.
        primal, rel_gap, est_gap, bound, g = _full_check(
            prob, faces, W_full, wset, tol_eff
        )
        if rel_gap < best[0]:
            best = (rel_gap, W_full.clone())
        if bar is not None:
            bar.set_postfix(obj=f"{primal:.6g}", gap=f"{rel_gap:.1e}")
        if rel_gap <= tol_eff:
            converged = True
            break
        if n_iter >= max_iter:
            message = f"Maximum number of iterations ({max_iter}) reached."
            break
        if floor_primal is not None and primal >= floor_primal * (1 - _FLOOR):
            # A working set stopped at its floor and the new violators did
            # not lower the objective either. At the floor the iterates
            # wander (the objective is flat to round-off, the dual point
            # is not): the point with the smallest gap is returned, with
            # its tightest gap (the gaps above stop being exact once a
            # certificate is out of reach).
            W_full = best[1]
            primal, rel_gap, _, bound, _ = _full_check(
                prob, faces, W_full, None, np.inf
            )
            if rel_gap <= tol_eff:
                converged = True
                break
            message = (
                f"Relative duality gap {rel_gap:.2e} > tol = {tol}: it stopped "
                f"decreasing (the round-off floor of the certificate in "
                f"{dtype}); use a larger tol."
            )
            break

        # ---- new working set: patterns with a non-zero block first, then
        # those whose dual constraint is the most violated.
        nz = (torch.linalg.vector_norm(W_full, dim=-1) > 0).any(dim=(0, 1))
        keep = torch.zeros(P, dtype=torch.bool, device=device)
        if wset is not None:
            keep[wset.ws] = True

        def scores():
            # Patterns in use first, then those of the set that still
            # violate (kept), then the others by their largest bound.
            score = bound.amax(dim=(0, 1)) / prob.beta
            score = torch.where(keep & (score > 1), score + _KEPT_SCORE, score)
            return torch.where(nz, torch.full_like(score, np.inf), score)

        score = scores()
        n_nz = int(nz.sum())
        # Twice the patterns in use, and _WS_GROWTH times the last set (the
        # per-iteration cost grows with the set, and the full checks add the
        # violators round after round).
        grown = _WS_GROWTH * ws_size if wset is not None else 0
        ws_size = min(P, max(ws_start, 2 * n_nz, grown))
        need = ws_size - int((score >= _KEPT_SCORE).sum())
        if need > 0 and confirm:
            _confirm_entrants(faces, g, bound, score, need)
            score = scores()
        size = max(1, min(ws_size, int((score > 1).sum())))
        ws = torch.sort(torch.topk(score, size).indices).values
        wset = _WorkingSet(prob, faces, ws, W_full[:, :, ws].clone(), C)

        # ---- restricted solve, to a fraction of the current gap.
        target = max(0.3 * est_gap, 0.5 * tol_eff)
        used, _ = wset.fista(max_iter - n_iter, target, bar)
        n_iter += used
        floor_primal = primal if wset.at_floor else None
        W_full.zero_()
        W_full[:, :, ws] = wset.W

    if bar is not None:
        bar.close()

    W_np = W_full.double().cpu().numpy()
    Wp = np.ascontiguousarray(W_np[:, 0])
    Wn = np.ascontiguousarray(W_np[:, 1])
    Wp, Wn = program.project_to_cones(Wp, Wn)
    objective = float(program.objective(Wp, Wn))
    if converged:
        message = f"Converged: relative duality gap {rel_gap:.2e} <= tol."
    # The last check's bounds are of this point (before the clean-up
    # projection, which moves it by round-off); float32 ones are not handed
    # on (their round-off is not negligible against the certificate's).
    dual_bounds = None
    if dtype == torch.float64:
        dual_bounds = bound.double().cpu().numpy()
    return SolverResult(
        Wp=Wp,
        Wn=Wn,
        objective=objective,
        n_iter=n_iter,
        converged=converged,
        message=message or f"Relative duality gap {rel_gap:.2e} > tol = {tol}.",
        tol=tol,
        dual_bounds=dual_bounds,
    )
