r"""Log-barrier interior-point solve of program (C) on a small working set.

The first-order method of :mod:`._torch` is fast where the working set is
well conditioned; at small ``alpha`` on real data the optimum uses many
overlapping patterns, the restricted program is badly conditioned and
FISTA stalls (MATH.md, doc/benchmarks.md section 3b). Interior-point
methods do not care about conditioning, and the structure of (C) makes
their Newton systems small:

.. math::

    \min_{v, t} \; L(F(v)) + \beta \sum_b t_b
    - \mu \sum_b \Big[\sum_{j=1}^n \log\big((K_{i(b)} v_b)_j\big)
    + \log\big(t_b^2 - \|v_b\|^2\big)\Big],

with blocks ``b = (c, s, i)`` (output, sign, pattern),
``K_i = (2 D_i - I) U'`` and ``F_c = \sum_i D_i U' (v_{c,+,i} - v_{c,-,i})``.
The barrier Hessian is block diagonal (one ``(k+1) x (k+1)`` block per
``b``: the ``n`` rows of a cone enter as ``U'^T \mathrm{diag}(1/r^2) U'``,
never as an ``n``-row system) and the loss enters only through the
differences ``y_{c,i} = v_{c,+,i} - v_{c,-,i}``, so the Newton system
``(B + E^T G E) \Delta = -g`` reduces by block elimination to

.. math::

    (S^{-1} + G)\, \Delta y = S^{-1} c, \qquad S = E B^{-1} E^T
    \text{ (block diagonal)},

of the size of ``y`` (``m k`` per output for separable losses, ``C m k``
for the multinomial loss), half that of the blocks. ``G = A^T H A`` is the
loss Hessian in ``y`` (constant for the squared loss). Along the central
path the gap of the barrier minimiser is at most ``\nu \mu`` with
``\nu = 2 C m (n + 2)`` (the barrier's parameter), so ``\mu`` is divided
by ``_MU_FACTOR`` after each centring until ``\nu \mu`` is below the
requested absolute gap; the caller's exact certificate decides.

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

from .._losses import BinaryLogLoss, SquaredLoss

# Factor of the barrier weight between two centrings.
_MU_FACTOR = 10.0
# Centring ends when the Newton decrement lambda^2 / (2 mu) is below this.
_CENTRED = 1e-1
# Armijo constant and backtracking factor of the line search.
_ARMIJO = 0.25
_BACKTRACK = 0.5
# Fraction of the distance to the cone boundary that a step may cover.
_TO_BOUNDARY = 0.99
# Steps of iterative refinement of every Newton direction.
_REFINE = 2


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
    and ``|z|_inf <= 1`` (HiGHS).

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
    res = linprog(
        cost,
        A_ub=np.hstack([-K, np.ones((n, 1))]),
        b_ub=np.zeros(n),
        bounds=[(-1.0, 1.0)] * k + [(None, 1.0)],
        method="highs",
    )
    if res.status != 0:
        return None, 0.0
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
        self.nu = 2 * self.C * m * (n + 2)
        self._G_const = None
        if isinstance(loss, SquaredLoss):
            self._G_const = (self.A.T @ self.A) / self.C

    def predict(self, V):
        Yd = (V[:, 0] - V[:, 1]).reshape(self.C, -1)  # (C, m k)
        return self.A @ Yd.T  # (n, C)

    def margins(self, V):
        """Rows ``K_i v_b`` of every block, shape (C, 2, m, n)."""
        return self.St * (V @ self.Ut.T)

    def value(self, V, T, mu):
        """Barrier objective, +inf outside the domain."""
        R = self.margins(V)
        q = T * T - (V * V).sum(-1)
        if bool((R <= 0).any()) or bool((q <= 0).any()) or bool((T <= 0).any()):
            return float("inf")
        F = self.predict(V)
        f0 = float(self.loss.torch_value(F, self.Y)) + self.beta * float(T.sum())
        return f0 - mu * float(torch.log(R).sum() + torch.log(q).sum())

    def loss_hessian(self, F):
        """``G``: the loss Hessian in ``y``; (C, mk, mk) or (C mk, C mk)."""
        if self._G_const is not None:
            return self._G_const.expand(self.C, -1, -1)
        A = self.A
        if isinstance(self.loss, BinaryLogLoss):
            h = self.loss.torch_curvature(F, self.Y)  # (n, C)
            return torch.stack([A.T @ (h[:, c, None] * A) for c in range(self.C)])
        # Multinomial: diag(p) - p p^T per sample couples the outputs.
        p = self.loss.torch_probabilities(F)  # (n, C)
        Ap = (p[:, :, None] * A[:, None, :]).reshape(self.n, -1)  # (n, C mk)
        G = -(Ap.T @ Ap)
        mk = A.shape[1]
        for c in range(self.C):
            sl = slice(c * mk, (c + 1) * mk)
            G[sl, sl] += A.T @ (p[:, c, None] * A)
        return G

    def newton_step(self, V, T, mu):
        """Newton direction ``(dV, dT)`` and the decrement ``lambda^2``."""
        C, m, k = self.C, self.m, self.k
        Ut = self.Ut
        R = self.margins(V)  # (C, 2, m, n)
        q = T * T - (V * V).sum(-1)  # (C, 2, m)
        F = self.predict(V)
        gL = self.loss.torch_gradient(F, self.Y)  # (n, C)
        gy = (self.A.T @ gL).T.reshape(C, m, k)
        gV = torch.stack((gy, -gy), dim=1)
        gV = gV - mu * ((self.St / R) @ Ut) + (2.0 * mu / q)[..., None] * V
        gT = self.beta - 2.0 * mu * T / q
        # Block Hessians of the barrier, (C, 2, m, k+1, k+1).
        w = (1.0 / (R * R)).reshape(-1, self.n)  # (blocks, n)
        Hvv = mu * ((Ut.T[None] * w[:, None, :]) @ Ut).view(V.shape + (k,))
        eye = torch.eye(k, dtype=V.dtype, device=V.device)
        q2 = (q * q)[..., None, None]
        Hvv = Hvv + mu * (2.0 / q[..., None, None] * eye
                          + 4.0 * V[..., :, None] * V[..., None, :] / q2)
        Hvt = -4.0 * mu * (T / (q * q))[..., None] * V
        Htt = 2.0 * mu * (T * T + (V * V).sum(-1)) / (q * q)
        H = V.new_zeros(V.shape[:-1] + (k + 1, k + 1))
        H[..., :k, :k] = Hvv
        H[..., :k, k] = Hvt
        H[..., k, :k] = Hvt
        H[..., k, k] = Htt
        g = torch.cat((gV, gT[..., None]), dim=-1)  # (C, 2, m, k+1)
        # Per pattern, the variables y = v_+ - v_- (the only ones the loss
        # sees), p = v_+ + v_-, t_+ and t_-; the local ones (p, t_+, t_-)
        # are eliminated by a Cholesky-based Schur complement, leaving
        # (Q + G) dy = rhs on y. Eliminating them through explicit inverses
        # of the block Hessians loses all digits near the boundary.
        Hp, Hm_ = H[:, 0], H[:, 1]  # (C, m, k+1, k+1)
        Kyy = 0.25 * (Hp[..., :k, :k] + Hm_[..., :k, :k])
        Kyp = 0.25 * (Hp[..., :k, :k] - Hm_[..., :k, :k])
        Kyr = torch.cat((Kyp, 0.5 * Hp[..., :k, k:], -0.5 * Hm_[..., :k, k:]), -1)
        Krr = V.new_zeros(Hp.shape[:-2] + (k + 2, k + 2))
        Krr[..., :k, :k] = Kyy
        Krr[..., :k, k:k + 1] = 0.5 * Hp[..., :k, k:]
        Krr[..., :k, k + 1:] = 0.5 * Hm_[..., :k, k:]
        Krr[..., k, :k] = 0.5 * Hp[..., k, :k]
        Krr[..., k + 1, :k] = 0.5 * Hm_[..., k, :k]
        Krr[..., k, k] = Hp[..., k, k]
        Krr[..., k + 1, k + 1] = Hm_[..., k, k]
        Lr = _cholesky(Krr)
        X = torch.cholesky_solve(Kyr.mT, Lr)  # Krr^-1 Kry, (C, m, k+2, k)
        Q = Kyy - Kyr @ X
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

        def apply_G(y):  # (C, m, k) -> (C, m, k)
            if G.dim() == 3:
                return (G @ y.reshape(C, m * k, 1)).reshape(C, m, k)
            return (G @ y.reshape(-1)).reshape(C, m, k)

        def solve(r):
            """``H^-1 r`` (H the full Hessian) by block elimination."""
            ry = 0.5 * (r[:, 0, :, :k] - r[:, 1, :, :k])
            rr = torch.cat((0.5 * (r[:, 0, :, :k] + r[:, 1, :, :k]),
                            r[:, 0, :, k:], r[:, 1, :, k:]), -1)
            u = torch.cholesky_solve(rr[..., None], Lr)  # Krr^-1 rr
            rhs = ry - (Kyr @ u)[..., 0]
            if G.dim() == 3:
                dy = torch.cholesky_solve(rhs.reshape(C, m * k, 1), LM)
            else:
                dy = torch.cholesky_solve(rhs.reshape(-1, 1), LM)
            dy = dy.reshape(C, m, k)
            dr = u[..., 0] - (X @ dy[..., None])[..., 0]
            dp = dr[..., :k]
            out = torch.empty_like(r)
            out[:, 0, :, :k] = 0.5 * (dp + dy)
            out[:, 1, :, :k] = 0.5 * (dp - dy)
            out[:, 0, :, k] = dr[..., k]
            out[:, 1, :, k] = dr[..., k + 1]
            return out

        def apply_H(x):
            y = x[:, 0, :, :k] - x[:, 1, :, :k]
            Gy = apply_G(y)
            out = (H @ x[..., None])[..., 0]
            out[:, 0, :, :k] += Gy
            out[:, 1, :, :k] -= Gy
            return out

        # The barrier Hessian is badly conditioned near the boundary and the
        # elimination loses digits: iterative refinement on the full system
        # (products with H are cheap) recovers them.
        dx = solve(-g)
        for _ in range(_REFINE):
            dx = dx + solve(-g - apply_H(dx))
        lam2 = -float((g * dx).sum())
        return dx[..., :k], dx[..., k], lam2, g

    def max_step(self, V, T, dV):
        """Largest step in ``(0, 1]`` keeping the cone rows positive."""
        R = self.margins(V)
        dR = self.margins(dV)
        neg = dR < 0
        if not bool(neg.any()):
            return 1.0
        ratio = float((-R[neg] / dR[neg]).min())
        return min(1.0, _TO_BOUNDARY * ratio)


def barrier_solve(Ut, Dt, Y, loss, beta, W0, Z, gap_abs, target_abs, max_iter):
    """Minimise (C) on patterns ``Dt`` by the log-barrier method.

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
        Absolute gap to reach (``nu * mu`` below it).
    max_iter : int
        Most Newton steps.

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
    T = torch.linalg.vector_norm(V, dim=-1) + delta
    mu = max(gap_abs, target_abs) / bp.nu
    mu_end = 0.5 * target_abs / bp.nu
    phi = bp.value(V, T, mu)
    steps = 0
    while steps < max_iter:
        try:
            dV, dT, lam2, g = bp.newton_step(V, T, mu)
        except torch.linalg.LinAlgError:
            break  # the current point is feasible; the caller judges it
        steps += 1
        if not np.isfinite(lam2) or lam2 < 0:
            break
        if lam2 / (2.0 * mu) <= _CENTRED:
            if mu <= mu_end:
                break
            mu = max(mu / _MU_FACTOR, mu_end)
            phi = bp.value(V, T, mu)
            continue
        s = bp.max_step(V, T, dV)
        while s > 1e-12:
            phi_new = bp.value(V + s * dV, T + s * dT, mu)
            if phi_new <= phi - _ARMIJO * s * lam2:
                break
            s *= _BACKTRACK
        else:
            break  # no progress possible at this precision
        V, T, phi = V + s * dV, T + s * dT, phi_new
    # Blocks that are zero at the optimum sit at the scale of mu.
    nrm = torch.linalg.vector_norm(V, dim=-1)
    V = torch.where((nrm <= 1e-9 * float(nrm.max()))[..., None], 0.0, V)
    return V, steps
