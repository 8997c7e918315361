r"""Interior-point solve of program (C) on a small working set.

The first-order method of :mod:`._torch` is fast where the working set is
well conditioned; at small ``alpha`` on real data the optimum uses many
overlapping patterns, the restricted program is badly conditioned and
FISTA stalls (doc/benchmarks.md section 3b). Interior-point methods do not
care about conditioning, and the structure of (C) makes their Newton
systems small. With the epigraph variables ``t_b >= ||v_b||`` of the group
norms eliminated in closed form (below), the barrier problem is

.. math::

    \min_v \; L(F(v)) + \sum_b \psi_\mu(v_b)
    - \mu \sum_b \sum_{j \in J_b} \log\big((K_{i(b)} v_b)_j\big),
    \qquad \psi_\mu(v) = s - \mu \log(\mu + s),\;
    s = \sqrt{\mu^2 + \beta^2 \|v\|^2},

with blocks ``b = (c, s, i)`` (output, sign, pattern),
``K_i = (2 D_i - I) U'`` and ``F_c = \sum_i D_i U' (v_{c,+,i} - v_{c,-,i})``.
``\psi_\mu`` is ``\min_t \beta t - \mu \log(t^2 - \|v\|^2)`` (attained at
``t = (\mu + s) / \beta``), a smoothed ``\beta \|v\|``; keeping ``t`` as a
variable makes the block Hessians ill-conditioned like ``1 / (t - \|v\|)``.

* **Rows.** Only the rows ``J_b`` that can bind carry barrier terms: with
  all ``n`` rows of every block the barrier parameter is ``~2 C m n`` and
  every tenfold decrease of ``\mu`` costs hundreds of damped Newton steps
  on data with thin cones (measured on energy efficiency: 1551 steps and
  262 s on one working set, against 176 steps and 13 s with the rows
  below). ``J_b`` starts with the ``2k`` rows nearest the boundary, and a
  row that a full Newton step would cross joins it before the step is
  taken; every iterate is strictly inside all its cones.
* **Newton systems.** The barrier Hessian is block diagonal (``k x k`` per
  block: its rows enter as ``U'^T \mathrm{diag}(\mu / r^2) U'``) and the
  loss enters only through ``y_{c,i} = v_{c,+,i} - v_{c,-,i}``, so with
  ``p = v_+ + v_-`` eliminated per pattern (Cholesky-based Schur
  complement) the system is ``(Q + G) \Delta y = r`` of size ``m k`` per
  output (``C m k`` for the multinomial loss), ``G = A^T H A`` the loss
  Hessian in ``y`` (constant for the squared loss).
* **Path.** Primal-dual on the rows: every row in the barrier has a
  multiplier ``z_j`` and the rows enter the Newton matrix as
  ``z_j / r_j`` (``r_j`` the row's margin) instead of the primal barrier's
  ``mu / r_j^2``; the two agree on the central path, and off it ``z``
  carries what the last steps learnt. Mehrotra's predictor-corrector sets
  the target ``sigma mu`` of every step (``mu`` the mean of ``r_j z_j``)
  and corrects the second-order term, two solves with one factorisation;
  the step goes ``_TO_BOUNDARY`` of the way to the nearest row (of the
  barrier or not) or multiplier. The cones' smoothing ``psi`` follows the
  current ``mu``. On the stalled working sets of a synthetic problem
  (``n = 500``, ``k = 21``, 40 and 160 patterns) the primal path (``mu``
  divided by 10 at every centre, damped Newton steps) took 112 and 157
  Newton steps, this one 23 and 38, to a lower objective. It stops once
  the complementarity (rows and cones) is below half the requested gap
  and two steps in a row were nearly full, or once it is a thousandth of
  that; the caller's exact certificate decides.

Every block needs a strictly interior starting point of its cone: one per
pattern from a small linear program (:func:`cone_interior`). Patterns whose
cone has an empty interior (degenerate cells) cannot be handled here; the
caller keeps the first-order method for them.
"""

# Authors: the skbnconvex developers
# License: BSD 3 clause

import numpy as np
import torch
from scipy.optimize import linprog

from .._losses import MultinomialLogLoss, SquaredLoss, torch_parameter_hessian

# Fraction of the distance to the nearest row or multiplier that a step may
# cover.
_TO_BOUNDARY = 0.99
# A step is "nearly full" at this length or more; the method stops on a
# small complementarity after two of them in a row (see barrier_solve).
_FULL_STEP = 0.9
# Largest (pattern pairs, n) weights kept for the packed loss Hessians.
_PACKED_ENTRIES_MAX = 2**23


def _cholesky(H):
    """Cholesky factor of a batch of SPD matrices.

    Round-off can make a positive semi-definite system (a singular loss
    Hessian on repeated samples) numerically indefinite: growing diagonal
    shifts are tried, and ``torch.linalg.LinAlgError`` is raised if even
    a shift of 1e-6 of the diagonal does not make it definite.
    """
    L, info = torch.linalg.cholesky_ex(H)
    if not bool((info != 0).any()):
        return L
    scale = H.diagonal(dim1=-2, dim2=-1).abs().amax(-1, keepdim=True)
    eye = torch.eye(H.shape[-1], dtype=H.dtype, device=H.device)
    for shift in (1e-14, 1e-12, 1e-10, 1e-8, 1e-6):
        L, info = torch.linalg.cholesky_ex(H + shift * scale[..., None] * eye)
        if not bool((info != 0).any()):
            return L
    raise torch.linalg.LinAlgError("barrier Newton system is not positive definite")


def cone_interior(Ut, signs):
    """Unit vector ``z`` deepest inside ``{z : diag(signs) Ut z >= 0}``.

    Solves the linear program ``max s`` subject to ``diag(signs) Ut z >= s``
    and ``|z|_inf <= 1`` (HiGHS) by cutting planes: on a set of rows that
    grows by the most violated ones until its solution satisfies all rows
    (a relaxation whose solution is feasible is optimal). Few rows bind,
    so the programs stay small (CASP, 45 730 rows: 0.5 s per cone with all
    rows in one program).

    Parameters
    ----------
    Ut : ndarray of shape (n_samples, k)
    signs : ndarray of shape (n_samples,)
        ``+1`` where the pattern is active, ``-1`` elsewhere.

    Returns
    -------
    z : ndarray of shape (k,) or None
        The point, scaled to unit norm; None when the cone has no interior
        (the optimal margin is not positive).
    margin : float
        ``min_j (diag(signs) Ut z)_j`` of the returned unit vector.
    """
    n, k = Ut.shape
    K = signs[:, None] * Ut
    cost = np.zeros(k + 1)
    cost[-1] = -1.0
    batch = min(n, 4 * k)
    # First rows: those least satisfied by the mean of the rows.
    rows = np.zeros(n, dtype=bool)
    rows[np.argpartition(K @ K.sum(0), batch - 1)[:batch]] = True
    tol = 1e-12 * max(np.abs(K).max(), 1e-300)
    while True:
        idx = np.flatnonzero(rows)
        res = linprog(
            cost,
            A_ub=np.hstack([-K[idx], np.ones((len(idx), 1))]),
            b_ub=np.zeros(len(idx)),
            bounds=[(-1.0, 1.0)] * k + [(None, 1.0)],
            method="highs",
        )
        if res.status != 0:
            return None, 0.0
        slack = K @ res.x[:k] - res.x[k]
        new = np.flatnonzero((slack < -tol) & ~rows)
        if not len(new):
            break
        rows[new[np.argsort(slack[new])[:batch]]] = True
    z = res.x[:k]
    nrm = np.linalg.norm(z)
    if nrm == 0.0:
        return None, 0.0
    z = z / nrm
    margin = float((K @ z).min())
    # Margins at round-off level are degenerate cells, not interiors.
    if margin <= 1e-9 * np.abs(K).max():
        return None, 0.0
    return z, margin


class _BarrierProblem:
    """Tensors of the restricted program and the barrier's derivatives."""

    def __init__(self, Ut, Dt, Y, loss, beta):
        self.Ut = Ut  # (n, k)
        self.St = 2.0 * Dt - 1.0  # (m, n)
        m, n = Dt.shape
        k = Ut.shape[1]
        self.m, self.n, self.k = m, n, k
        self.Y = Y
        self.C = Y.shape[1]
        self.loss = loss
        self.beta = beta
        # A: y (m k) -> sum_i D_i U' y_i, as a dense (n, m k) matrix.
        self.A = (Dt.T[:, :, None] * Ut[:, None, :]).reshape(n, m * k)
        # Rows of the cones that carry a barrier term (see barrier_solve).
        self.mask = None
        self._G_const = None
        # Packed Hessians of the separable losses (see _packed_hessian)
        # where their (pairs, n) weights are small enough to keep.
        self._pairs = None
        n_pairs = m * (m + 1) // 2
        if (
            not isinstance(loss, MultinomialLogLoss)
            and n_pairs * n <= _PACKED_ENTRIES_MAX
        ):
            self._pairs = torch.triu_indices(m, m, device=Ut.device)
            self._coords = torch.triu_indices(k, k, device=Ut.device)
            self._DD = Dt[self._pairs[0]] * Dt[self._pairs[1]]  # (pairs, n)
            a, b = self._coords
            self._Q = Ut[:, a] * Ut[:, b]  # (n, k (k + 1) / 2)
        if isinstance(loss, SquaredLoss):
            # Constant curvature: the Hessian in y is computed once.
            self._G_const = self.loss_hessian(None)

    def predict(self, V):
        Yd = (V[:, 0] - V[:, 1]).reshape(self.C, -1)  # (C, m k)
        return self.A @ Yd.T  # (n, C)

    def margins(self, V):
        """Rows ``K_i v_b`` of every block, shape (C, 2, m, n)."""
        return self.St * (V @ self.Ut.T)

    def norm_root(self, V, mu):
        """``s`` of ``psi``, the penalty and cone barrier with ``t`` eliminated.

        For a block, ``min_t beta t - mu log(t^2 - ||v||^2)`` is attained at
        ``t = (mu + s) / beta``, ``s = sqrt(mu^2 + beta^2 ||v||^2)``, and
        equals ``s - mu log(mu + s)`` up to a constant: a smoothed
        ``beta ||v||``. Eliminating ``t`` this way keeps the Newton
        systems well conditioned (with ``t`` as a variable the block
        Hessians have condition numbers ~ 1 / (t - ||v||)). The
        derivatives of ``psi`` need only ``s``, per block.
        """
        return torch.sqrt(mu * mu + self.beta**2 * (V * V).sum(-1))

    @property
    def nu(self):
        """Parameter of the barrier: its rows plus two per cone (SOC)."""
        return float(self.mask.sum()) + 2.0 * self.mask[..., 0].numel()

    def loss_hessian(self, F):
        """``G``: the loss Hessian in ``y``; (C, mk, mk) or (C mk, C mk)."""
        if self._G_const is not None:
            return self._G_const
        A, C, mk = self.A, self.C, self.A.shape[1]
        if F is None:  # squared loss: the curvature does not depend on F
            F = torch.zeros((self.n, C), dtype=A.dtype, device=A.device)
        if isinstance(self.loss, MultinomialLogLoss):
            # diag(p) - p p^T per sample couples the outputs: one system
            # over all outputs, the columns of A repeated per output.
            out = torch.arange(C, device=A.device).repeat_interleave(mk)
            return torch_parameter_hessian(self.loss, F, self.Y, A.repeat(1, C), out)
        if self._pairs is not None:
            h, _ = self.loss.torch_hessian(F, self.Y)  # (n, C), no coupling
            return torch.stack([self._packed_hessian(h[:, c]) for c in range(C)])
        return torch.stack([
            torch_parameter_hessian(
                self.loss, F, self.Y, A, torch.full((mk,), c, device=A.device)
            )
            for c in range(C)
        ])

    def _packed_hessian(self, h):
        """``A^T diag(h) A`` from its distinct entries.

        Block ``(i, j)`` is ``U'^T diag(h D_i D_j) U'``: symmetric in the
        patterns and in the coordinates, so only the pairs ``i <= j`` and
        ``a <= b`` are computed, as one product of the ``(pairs, n)``
        weights with the ``(n, k (k + 1) / 2)`` row products: a quarter of
        the ``2 n (m k)^2`` operations of the dense product (breast cancer,
        ``n = 569``, ``m k`` = 200-800: the dense products were half the
        time of its barrier; these are 1.5-2.3x faster).
        """
        m, k = self.m, self.k
        (i, j), (a, b) = self._pairs, self._coords
        Gp = (self._DD * h) @ self._Q  # (pairs, k (k + 1) / 2)
        Gk = torch.zeros((len(i), k, k), dtype=h.dtype, device=h.device)
        Gk[:, a, b] = Gp
        Gk[:, b, a] = Gp
        G4 = torch.zeros((m, m, k, k), dtype=h.dtype, device=h.device)
        G4[i, j] = Gk
        G4[j, i] = Gk  # Gk is symmetric in (a, b)
        return G4.transpose(1, 2).reshape(m * k, m * k)

    def gradient(self, V, F, mu):
        """Gradient of the loss and the cones' ``psi`` (no row terms).

        ``F = predict(V)``, computed once per step by the caller.
        """
        C, m, k = self.C, self.m, self.k
        gL = self.loss.torch_gradient(F, self.Y)  # (n, C)
        gy = (self.A.T @ gL).T.reshape(C, m, k)
        sq = self.norm_root(V, mu)
        # grad psi = beta^2 v / (mu + s).
        return torch.stack((gy, -gy), dim=1) + (self.beta**2 / (mu + sq))[..., None] * V

    def row_term(self, h):
        """``K^T h`` per block for row weights ``h`` (C, 2, m, n)."""
        return (self.St * h) @ self.Ut

    def factor(self, V, F, mu, weight):
        """Factorise the Newton matrix at ``V``; returns ``solve(g) -> -H^-1 g``.

        ``H`` is the Hessian of the loss and of the cones' ``psi`` (weight
        ``mu``) plus ``K^T diag(weight) K`` per block, ``weight``
        (C, 2, m, n) non-zero on the rows of the barrier only: ``mu / r^2``
        for the primal barrier, ``z / r`` for the primal-dual method;
        ``F = predict(V)``.
        """
        C, m, k = self.C, self.m, self.k
        Ut = self.Ut
        sq = self.norm_root(V, mu)
        b2 = self.beta**2
        # Block Hessians (C, 2, m, k, k): the cone rows, and
        # beta^2 / (mu + s) (I - beta^2 v v^T / (s (mu + s))) from psi.
        # Only the few rows in the barrier contribute: a sum of outer
        # products over them (a dense (blocks, k, n) product cost ~0.1 s
        # per step on CASP, 45 730 rows, for some 500 rows in the barrier).
        blk, row = self.mask.reshape(-1, self.n).nonzero(as_tuple=True)
        u = Ut[row]  # (rows, k)
        wgt = weight.reshape(-1, self.n)[blk, row]
        n_blocks = self.mask[..., 0].numel()
        H = torch.zeros((n_blocks, k, k), dtype=V.dtype, device=V.device)
        H.index_add_(0, blk, wgt[:, None, None] * u[:, :, None] * u[:, None, :])
        H = H.view(V.shape + (k,))
        eye = torch.eye(k, dtype=V.dtype, device=V.device)
        c1 = (b2 / (mu + sq))[..., None, None]
        c2 = (b2 / (sq * (mu + sq)))[..., None, None]
        H = H + c1 * (eye - c2 * V[..., :, None] * V[..., None, :])
        # Per pattern, y = v_+ - v_- (the only variables the loss sees) and
        # p = v_+ + v_-; p is eliminated by a Cholesky-based Schur
        # complement, leaving (Q + G) dy = rhs on y.
        Hp, Hm = H[:, 0], H[:, 1]  # (C, m, k, k)
        Kyy = 0.25 * (Hp + Hm)  # = Kpp
        Kyp = 0.25 * (Hp - Hm)
        Lp = _cholesky(Kyy)
        X = torch.cholesky_solve(Kyp.mT, Lp)  # Kpp^-1 Kpy
        Q = Kyy - Kyp @ X
        Q = 0.5 * (Q + Q.mT)

        G = self.loss_hessian(F)
        M = G.clone()
        idx = torch.arange(m, device=V.device)
        if G.dim() == 3:
            M.view(C, m, k, m, k)[:, idx, :, idx, :] += Q.transpose(0, 1)
        else:
            Mv = M.view(C, m, k, C, m, k)
            for c in range(C):
                Mv[c, idx, :, c, idx, :] += Q[c]
        LM = _cholesky(M)

        def solve(g):
            ry = -0.5 * (g[:, 0] - g[:, 1])
            rp = -0.5 * (g[:, 0] + g[:, 1])
            u = torch.cholesky_solve(rp[..., None], Lp)  # Kpp^-1 rp
            rhs = ry - (Kyp @ u)[..., 0]
            if G.dim() == 3:
                dy = torch.cholesky_solve(rhs.reshape(C, m * k, 1), LM)
            else:
                dy = torch.cholesky_solve(rhs.reshape(-1, 1), LM)
            dy = dy.reshape(C, m, k)
            dp = u[..., 0] - (X @ dy[..., None])[..., 0]
            return torch.stack((0.5 * (dp + dy), 0.5 * (dp - dy)), dim=1)

        return solve


def _to_boundary(x, dx, where=None):
    """Largest ``a`` with ``x + a dx >= 0`` (entries ``where`` only)."""
    ratio = torch.where(dx < 0, -x / dx, torch.inf)
    if where is not None:
        ratio = torch.where(where, ratio, torch.inf)
    return float(ratio.min())


def barrier_solve(Ut, Dt, Y, loss, beta, W0, Z, gap_abs, target_abs, max_iter):
    """Minimise (C) on patterns ``Dt`` by a primal-dual interior-point method.

    Parameters
    ----------
    Ut : tensor (n, k), float64
    Dt : tensor (m, n), float64 0/1 patterns of the working set.
    Y : tensor (n, C)
    loss, beta : loss object and penalty weight of the program.
    W0 : tensor (C, 2, m, k)
        Feasible starting blocks (on the cone boundaries is fine).
    Z : tensor (m, k)
        Unit interior points of the patterns' cones (:func:`cone_interior`).
    gap_abs : float
        Duality gap of ``W0`` (absolute); sets the first barrier weight.
    target_abs : float
        Absolute gap to reach (the complementarity below half of it).
    max_iter : int
        Most Newton steps (factorisations).

    Returns
    -------
    W : tensor (C, 2, m, k)
        Strictly feasible blocks; blocks that the barrier keeps at the
        scale of ``mu`` are returned as zeros.
    n_steps : int
        Newton steps used.
    """
    bp = _BarrierProblem(Ut, Dt, Y, loss, beta)
    # Interior start: the current blocks pushed into their cones.
    nrm = torch.linalg.vector_norm(W0, dim=-1)
    scale = float(nrm.max()) if float(nrm.max()) > 0 else float(
        torch.linalg.vector_norm(Y) / np.sqrt(W0.shape[0] * W0.shape[2] * 2)
    )
    delta = 1e-3 * max(scale, 1e-12)
    V = W0 + delta * Z
    # Only the rows that can bind carry barrier terms: with all n rows of
    # every block the barrier's parameter nu is about 2 C m n, and the
    # method's steps grow with it (measured on energy efficiency with the
    # primal path: 1551 Newton steps against 176 with these rows). The rows
    # nearest the boundary start in it; rows that a step would cross join
    # it (see below), so every iterate is strictly inside all its cones.
    R = bp.margins(V)
    near = torch.topk(-R, min(bp.n, 2 * bp.k), dim=-1).indices
    bp.mask = torch.zeros_like(R).scatter_(-1, near, 1.0)
    inside = bp.mask > 0
    n_cones = bp.mask[..., 0].numel()
    # Start on the central path of mu: each row's multiplier mu / r.
    mu = max(gap_abs, target_abs) / bp.nu
    z = torch.where(inside, mu / R, 0.0)
    steps = 0
    full = 0  # nearly full steps in a row
    while steps < max_iter:
        n_rows = float(bp.mask.sum())
        comp = float((R * z).sum())
        mu = comp / n_rows
        # The gap of the point is about the complementarity of its rows and
        # cones (it is exactly that on the central path).
        small = comp + 2.0 * n_cones * mu
        if small <= 0.5 * target_abs and (full >= 2 or small <= 1e-3 * target_abs):
            break
        F = bp.predict(V)
        g = bp.gradient(V, F, mu)
        try:
            solve = bp.factor(V, F, mu, z / R)
        except torch.linalg.LinAlgError:
            break  # the current point is feasible; the caller judges it
        steps += 1
        # Predictor: the affine direction (target 0), and how far it goes.
        dV = solve(g)
        dR = bp.margins(dV)
        dz = torch.where(inside, -z - z / R * dR, 0.0)
        a = min(1.0, _to_boundary(R, dR, inside), _to_boundary(z, dz, inside))
        mu_aff = float(((R + a * dR) * (z + a * dz)).sum()) / n_rows
        sigma = min(1.0, (mu_aff / mu) ** 3)
        # Corrector: the centring target sigma mu and the second-order term
        # of the complementarity, with the same factorisation.
        h = torch.where(inside, (sigma * mu - dR * dz) / R, 0.0)
        dV = solve(g - bp.row_term(h))
        if not bool(torch.isfinite(dV).all()):
            break
        dR = bp.margins(dV)
        dz = torch.where(inside, h - z - z / R * dR, 0.0)
        # The step stops short of every row, in the barrier or not; rows
        # outside it that the full step would cross join it for the next
        # steps, at most 2k per block (the first ones crossed): joining
        # every such row made the whole data join (CASP: 423 -> 914 596
        # rows with the primal path).
        outside = torch.where(inside | (dR >= 0), torch.inf, -R / dR)
        first, rows = torch.topk(outside, min(bp.n, 2 * bp.k), dim=-1, largest=False)
        a = min(1.0, _TO_BOUNDARY * min(_to_boundary(R, dR), _to_boundary(z, dz, inside)))
        full = full + 1 if a >= _FULL_STEP else 0
        V = V + a * dV
        z = z + a * dz
        R = bp.margins(V)
        crossed = first <= 1.0
        if bool(crossed.any()):
            joined = torch.where(crossed, 1.0, bp.mask.gather(-1, rows))
            bp.mask.scatter_(-1, rows, joined)
            # New rows start on the central path of the current mu.
            z = torch.where((bp.mask > 0) & ~inside, mu / R, z)
            inside = bp.mask > 0
    # Blocks that are zero at the optimum sit at the scale of mu.
    nrm = torch.linalg.vector_norm(V, dim=-1)
    V = torch.where((nrm <= 1e-9 * float(nrm.max()))[..., None], 0.0, V)
    return V, steps
