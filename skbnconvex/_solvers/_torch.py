r"""First-order solver of program (C) in PyTorch (CPU or CUDA).

Program (C), for outputs ``c`` and patterns ``i`` with blocks ``w`` ranging
over the ``a_{c,i}`` (sign ``+1``) and ``b_{c,i}`` (sign ``-1``), is

.. math::

    \min_w \; L(A w) + \beta \sum_{\text{blocks}} \|w_b\|_2
    \quad \text{s.t.} \quad K_i w_b \ge 0, \qquad K_i = (2 D_i - I)\, U',

with ``(A w)_{:, c} = \sum_i D_i U' (a_{c,i} - b_{c,i})``.

Method
------
Three ingredients, chosen for the structure of (C):

1. **Augmented Lagrangian on the cone constraints.** The constraint
   operators ``K_i`` have orthonormal columns (``K_i^T K_i = U'^T U' = I``),
   so every one has norm 1 and the quadratic penalty
   ``(1 / 2\rho) \|(\gamma_b - \rho K_i w_b)_+\|^2`` adds exactly ``\rho`` to
   the Lipschitz constant of the smooth part. The inner problems (smooth
   loss + penalty, plus the group norm) are solved by FISTA with the
   group soft-threshold as proximal step, a fixed step ``1 / L`` (``L`` from
   the loss curvature and a power iteration on ``A``) and adaptive restart
   (O'Donoghue and Candes, 2015). After each inner solve the multipliers are
   updated, ``\gamma_b \leftarrow (\gamma_b - \rho K_i w_b)_+``, and ``\rho``
   is doubled whenever the cone violation does not fall by a factor 4. This
   is the method of Mishkin et al. (ICML 2022, the ``scnn`` library), written
   here for the batch-normalised program with all outputs batched.

2. **Working set over patterns** (as in the ``celer`` Lasso solver). The
   optimum uses few blocks, and the Lipschitz constant of ``L(A w)`` grows
   with the number of patterns, so the augmented Lagrangian runs on the
   patterns that carry a non-zero block plus the most violating ones. Between
   restricted solves the optimality of the full program is checked with one
   pass over all patterns and the working set is doubled when needed.

3. **A duality-gap certificate** (the stopping rule). With
   ``\lambda = -\nabla L(A w)`` and ``g_b = \pm U'^T D_i \lambda_c`` the dual
   constraint of a block is ``\|P_{C_i}(g_b)\| \le \beta`` (projection onto
   the cone ``C_i = \{z : K_i z \ge 0\}``), and for every ``\mu \ge 0``,
   ``\|P_{C_i}(g_b)\| = \min_{\mu \ge 0} \|g_b + K_i^T \mu\| \le
   \|g_b + K_i^T \mu\|``. We take ``\mu`` from the augmented-Lagrangian
   multipliers (blocks of the working set) or ``\mu = (-K_i g_b)_+`` (others),
   refined by a few projected-gradient steps on this non-negative least
   squares problem; this gives an upper bound ``M`` of
   ``\max_b \|P_{C_i}(g_b)\|``. Then ``\lambda \min(1, \beta / M)`` is dual
   feasible and its dual value is a lower bound of the optimum.

Stopping rule: the solver stops when, at the current iterate,

* the relative duality gap ``(P - D) / max(P, 1e-300) <= tol``, with ``P``
  the objective of (C) and ``D`` the dual value above, and
* the relative cone violation
  ``max_b \|(-K_i w_b)_+\|_\infty / \max_b \|w_b\| <= tol``.

Then (and also when ``max_iter`` FISTA iterations are used up) a clean-up
step projects every non-zero block exactly onto its cone (a small
non-negative least-squares problem on the nearly active rows, in float64),
so that the returned point is feasible to round-off; the objective, the
duality gap and ``converged`` are then those of the returned point.
"""

# Authors: the skbnconvex developers
# License: BSD 3 clause

import numpy as np
import torch
from scipy.optimize import nnls

from .._losses import BinaryLogLoss, MultinomialLogLoss, SquaredLoss
from ._base import SolverResult

# Number of patterns of the first working set.
_WS_START = 10
# Projected-gradient steps refining the multiplier of the dual check.
_DUAL_REFINE = 20
# Most blocks per check whose dual constraint is computed exactly.
_EXACT_MAX = 200
# Relative cone violation below which polishing on faces is tried.
_POLISH_FROM = 1e-4
# Rounds of the active-set polishing.
_POLISH_ROUNDS = 6
# Initial penalty of the augmented Lagrangian, relative to the loss curvature.
_RHO0 = 10.0
# Most FISTA iterations per inner solve of the augmented Lagrangian.
_INNER_CAP = 200


def _resolve_device(device):
    """Return a torch.device, refusing CUDA when it is not there."""
    device = torch.device(device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(
            "device='cuda' was requested but CUDA is not available in this "
            "PyTorch installation; use device='cpu'."
        )
    return device


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
    """Gradient of the loss in ``F`` (closed forms of the three losses)."""
    if isinstance(loss, SquaredLoss):
        return (F - Y) / Y.shape[1]
    if isinstance(loss, BinaryLogLoss):
        return -Y * torch.sigmoid(-Y * F)
    return torch.softmax(F, dim=1) - Y


class _Problem:
    """Tensors of (C) on the device, and the operators restricted to patterns.

    Blocks are held as one tensor ``W`` of shape ``(C, 2, m, k)``: axis 1 is
    the sign (``a`` then ``b``), axis 2 the patterns of the current set.
    """

    def __init__(self, program, device, dtype):
        self.program = program
        kw = dict(device=device, dtype=dtype)
        self.Ut = torch.as_tensor(program.Ut, **kw)
        # Patterns as rows (P, n): every block operation is then a batched
        # (m, k) x (k, n) product with contiguous rows.
        self.Dt = torch.as_tensor(program.D.T.copy(), **kw)
        self.Y = torch.as_tensor(program.Y, **kw)
        self.loss = program.loss
        self.beta = float(program.beta)
        self.sign = torch.tensor([1.0, -1.0], **kw).view(1, 2, 1, 1)
        self.Lf = _loss_curvature(program.loss, program.n_outputs)

    def predict(self, W, Dt):
        """Return ``F`` (n, C) and the block pre-activations ``G = W U'^T``."""
        G = W @ self.Ut.T  # (C, 2, m, n)
        F = (self.sign * G * Dt).sum(dim=(1, 2)).T
        return F, G

    def objective(self, W, F):
        return float(self.loss.torch_value(F, self.Y)) + self.beta * float(
            torch.linalg.vector_norm(W, dim=-1).sum()
        )

    def norm_A2(self, Dt, n_iter=30):
        """Estimate ``||A||^2`` on patterns ``Dt`` by power iteration.

        ``A`` maps the blocks of one output and one sign to ``sum_i D_i U' w_i``;
        the two signs double it.
        """
        n = Dt.shape[1]
        gen = torch.Generator(device="cpu").manual_seed(0)
        v = torch.randn(n, generator=gen, dtype=Dt.dtype).to(Dt.device)
        v /= torch.linalg.vector_norm(v)
        est = 0.0
        for _ in range(n_iter):
            Z = (Dt * v) @ self.Ut  # A^T v, (m, k)
            u = ((Z @ self.Ut.T) * Dt).sum(0)  # A A^T v
            est = float(torch.linalg.vector_norm(u))
            if est == 0.0:
                return 0.0
            v = u / est
        return 2.0 * est


def _dual_bound(prob, g, Dt, mu0):
    """Upper bound of ``||P_C(g_b)||`` for every block.

    ``g`` has shape (C, 2, m, k); ``mu0`` (C, 2, m, n) non-negative
    multipliers or None. Uses ``||g + K^T mu||`` for ``mu = mu0`` and
    ``mu = (-K g)_+``, then a few projected-gradient steps (step 1, since
    ``||K K^T|| = 1``) from the better of the two, on the blocks whose
    bound exceeds beta.
    """
    Ut = prob.Ut
    S = 2.0 * Dt - 1.0
    Kg = S * (g @ Ut.T)  # (C, 2, m, n)
    # mu = (-K g)_+ gives g + K^T mu = K^T (K g)_+.
    bound = torch.linalg.vector_norm((S * Kg.clamp(min=0)) @ Ut, dim=-1)
    mu = (-Kg).clamp(min=0)
    if mu0 is not None:
        b0 = torch.linalg.vector_norm(g + (S * mu0) @ Ut, dim=-1)
        better = b0 < bound
        mu = torch.where(better[..., None], mu0, mu)
        bound = torch.minimum(bound, b0)
    bad = bound > prob.beta
    if not bool(bad.any()):
        return bound
    idx = bad.nonzero(as_tuple=True)
    gb, mub, Sb = g[idx], mu[idx], S[idx[2]]
    best = bound[idx]
    # Accelerated projected gradient on min_{mu >= 0} ||g + K^T mu||^2 / 2
    # (step 1 since ||K K^T|| = 1), batched over the blocks above beta.
    prev, t = mub, 1.0
    z = mub
    for _ in range(_DUAL_REFINE):
        r = gb + ((Sb * z)[:, None, :] @ Ut)[:, 0, :]  # g + K^T z
        best = torch.minimum(best, torch.linalg.vector_norm(r, dim=-1))
        mub = (z - Sb * (r @ Ut.T)).clamp(min=0)
        t_new = 0.5 * (1.0 + (1.0 + 4.0 * t * t) ** 0.5)
        z = mub + ((t - 1.0) / t_new) * (mub - prev)
        prev, t = mub, t_new
    r = gb + ((Sb * mub)[:, None, :] @ Ut)[:, 0, :]
    best = torch.minimum(best, torch.linalg.vector_norm(r, dim=-1))
    # The blocks still above beta get the exact value, ||P_C(g)|| = the
    # residual of the non-negative least-squares problem (Lawson-Hanson,
    # whose active set has at most k rows), in float64 on the host.
    still = (best > prob.beta).nonzero(as_tuple=True)[0]
    if len(still):
        order = still[torch.argsort(best[still], descending=True)][:_EXACT_MAX]
        Ut_np = prob.program.Ut
        S_np = Sb[order].double().cpu().numpy()
        g_np = gb[order].double().cpu().numpy()
        exact = [
            nnls((S_np[j][:, None] * Ut_np).T, -g_np[j], maxiter=20 * Ut_np.shape[0])[1]
            for j in range(len(order))
        ]
        best[order] = torch.minimum(
            best[order], torch.as_tensor(exact, dtype=best.dtype, device=best.device)
        )
    bound = bound.clone()
    bound[idx] = best
    return bound


def _gap(prob, W, F, M):
    """Primal value, dual value (numpy, float64) from the bound ``M``."""
    primal = prob.objective(W, F)
    lam = -_loss_grad(prob.loss, F, prob.Y)
    if not np.isfinite(M):
        return primal, -np.inf  # no certificate
    scale = min(1.0, prob.beta / M) if M > 0 else 1.0
    lam = (scale * lam).double().cpu().numpy()
    dual = prob.loss.dual(lam, prob.program.Y)
    return primal, dual


def _violation(W, G, Dt):
    """Relative cone violation ``max (-K w)_+ / max ||w||``."""
    S = 2.0 * Dt - 1.0
    worst = float((-(S * G)).clamp(min=0).max()) if G.numel() else 0.0
    scale = float(torch.linalg.vector_norm(W, dim=-1).max()) if W.numel() else 0.0
    return worst / scale if scale > 0 else 0.0


class _RestrictedAL:
    """Augmented-Lagrangian state on a working set of patterns."""

    def __init__(self, prob, ws, W, gamma, rho_scale):
        self.prob = prob
        self.ws = ws
        self.Dt = prob.Dt[ws]
        self.S = 2.0 * self.Dt - 1.0
        self.W = W
        self.gamma = gamma
        self.A2 = prob.norm_A2(self.Dt)
        # The penalty is scaled with the loss curvature on the working set,
        # so that neither term dominates the step size.
        self.rho = rho_scale * max(prob.Lf * self.A2, 1e-12)
        self.L = 1.05 * prob.Lf * self.A2 + self.rho

    def grad(self, W, penalty=True):
        """Gradient of the smooth part at ``W`` and the prediction there."""
        prob = self.prob
        F, G = prob.predict(W, self.Dt)
        r = _loss_grad(prob.loss, F, prob.Y)  # (n, C)
        M = prob.sign * self.Dt * r.T[:, None, None, :]
        if penalty:
            H = (self.gamma - self.rho * self.S * G).clamp(min=0)
            M = M - self.S * H
        return M @ prob.Ut, F, G

    def prox(self, Z, step):
        nrm = torch.linalg.vector_norm(Z, dim=-1, keepdim=True)
        shrink = (1.0 - step * self.prob.beta / nrm.clamp(min=torch.finfo(Z.dtype).tiny)).clamp(min=0)
        return Z * shrink

    def fista(self, W, max_iter, eps, proj=None):
        """FISTA with adaptive restart from ``W``.

        Without ``proj``: the augmented-Lagrangian inner problem. With
        ``proj`` (orthogonal projections of shape (C, 2, m, k, k)): the
        penalty is dropped and every block is kept in the range of its
        projection (the polishing problem). Stops when the gradient mapping
        of every block is at most ``eps * beta`` in norm. Returns the last
        iterate and the iterations used.
        """
        L = 1.05 * self.prob.Lf * self.A2 if proj is not None else self.L
        step = 1.0 / L
        Yk, t = W, 1.0
        beta = self.prob.beta
        it = 0
        for it in range(1, max_iter + 1):
            gr, _, _ = self.grad(Yk, penalty=proj is None)
            Z = Yk - step * gr
            if proj is not None:
                Z = (proj @ Z[..., None])[..., 0]
            W_new = self.prox(Z, step)
            # Gradient mapping at Yk, block by block.
            diff = Yk - W_new
            res = float(torch.linalg.vector_norm(diff, dim=-1).max()) / step
            if float((diff * (W_new - W)).sum()) > 0:
                t = 1.0  # restart: momentum points uphill
                Yk = W_new
            else:
                t_new = 0.5 * (1.0 + (1.0 + 4.0 * t * t) ** 0.5)
                Yk = W_new + ((t - 1.0) / t_new) * (W_new - W)
                t = t_new
            W = W_new
            if res <= eps * beta:
                break
        return W, it

    def face_projections(self, W, J, idx):
        """Projections onto the faces that the multipliers call active.

        For a non-zero block the rows ``J`` with a positive multiplier are
        held at equality, ``K_J w = 0``: the projection onto the null space
        of ``K_J`` is ``I - V V^T`` with ``V`` the eigenvectors of
        ``K_J^T K_J = U'^T diag(1_J) U'`` of non-negligible eigenvalue. Zero
        blocks get the zero projection (they stay at zero).
        """
        prob = self.prob
        C, _, m, k = W.shape
        proj = torch.zeros((C, 2, m, k, k), dtype=W.dtype, device=W.device)
        gram = (prob.Ut.T * J[:, None, :]) @ prob.Ut  # (B, k, k)
        evals, evecs = torch.linalg.eigh(gram)
        keep = evals > 1e3 * torch.finfo(W.dtype).eps
        V = evecs * keep[:, None, :]
        eye = torch.eye(k, dtype=W.dtype, device=W.device)
        proj[idx] = eye - V @ V.transpose(1, 2)
        inv = torch.where(keep, 1.0 / evals.clamp(min=torch.finfo(W.dtype).tiny), torch.zeros_like(evals))
        return proj, idx, J, (evecs, inv)

    def face_multipliers(self, W, idx, J, eig):
        """Least-squares multipliers of the held rows, ``K_J^T mu_J = v``.

        ``v = grad_b + beta w_b / ||w_b||`` is what the constraint forces
        must balance at a stationary point of the polishing problem.
        """
        prob = self.prob
        gr, _, _ = self.grad(W, penalty=False)
        Wb = W[idx]
        v = gr[idx] + prob.beta * Wb / torch.linalg.vector_norm(
            Wb, dim=-1, keepdim=True
        ).clamp(min=torch.finfo(W.dtype).tiny)
        evecs, inv = eig
        x = evecs @ ((inv * (evecs.transpose(1, 2) @ v[..., None])[..., 0])[..., None])
        mu = (prob.Ut @ x)[..., 0] * self.S[idx[2]] * J  # K_J (K_J^T K_J)^+ v
        gamma = torch.zeros_like(self.gamma)
        gamma[idx] = mu.clamp(min=0)
        return gamma, mu

    def polish(self, max_iter, eps, n_rounds=_POLISH_ROUNDS):
        """Active-set polishing from the current iterate.

        Holds the rows of positive multiplier at equality and solves the
        resulting problem (group lasso on subspaces, no constraints left) by
        FISTA; rows that end up violated join the active set, rows whose
        least-squares multiplier is negative leave it, and the problem is
        solved again, at most ``n_rounds`` times. Returns the point, its
        multipliers, the prediction data and the iterations used.
        """
        W = self.W
        supp = torch.linalg.vector_norm(W, dim=-1) > 0
        idx = supp.nonzero(as_tuple=True)
        if len(idx[0]) == 0:
            F, G = self.prob.predict(W, self.Dt)
            return W, self.gamma, F, G, 0
        J = (self.gamma[idx] > 0).to(W.dtype)
        Sb = self.S[idx[2]]
        used_all = 0
        for _ in range(n_rounds):
            proj, idx2, J, eig = self.face_projections(W, J, idx)
            W = (proj @ W[..., None])[..., 0]
            W, used = self.fista(W, max_iter - used_all, eps, proj=proj)
            used_all += used
            gamma, mu = self.face_multipliers(W, idx, J, eig)
            F, G = self.prob.predict(W, self.Dt)
            KW = Sb * G[idx]
            scale = torch.linalg.vector_norm(W, dim=-1).max()
            bad_rows = KW < -1e-12 * scale
            neg_mu = mu < -1e-9 * self.prob.beta
            if not (bool(bad_rows.any()) or bool(neg_mu.any())) or used_all >= max_iter:
                break
            J = torch.where(bad_rows, torch.ones_like(J), J)
            J = torch.where(neg_mu, torch.zeros_like(J), J)
        return W, gamma, F, G, used_all

    def certificate(self, W, F, gamma):
        """Objective and relative duality gap of the restricted program."""
        prob = self.prob
        r = _loss_grad(prob.loss, F, prob.Y)
        g = -prob.sign * ((self.Dt * r.T[:, None, :]) @ prob.Ut)[:, None]
        M = float(_dual_bound(prob, g, self.Dt, gamma).max())
        primal, dual = _gap(prob, W, F, M)
        return primal, (primal - dual) / max(primal, 1e-300)

    def update_multipliers(self):
        """``gamma <- (gamma - rho K w)_+``; returns the new prediction data."""
        F, G = self.prob.predict(self.W, self.Dt)
        self.gamma = (self.gamma - self.rho * self.S * G).clamp(min=0)
        return F, G


def _cleanup(program, Wp, Wn):
    """Project every non-zero block exactly onto its cone, in float64.

    The projection onto ``{z : K z >= 0}`` is ``w + K_J^T mu`` with ``mu`` the
    non-negative least-squares solution of ``min ||w + K_J^T mu||`` over the
    rows ``J`` that matter; ``J`` starts with the violated and nearly active
    rows and grows until no row is violated.
    """
    Ut = program.Ut
    S = np.where(program.D, 1.0, -1.0)
    for W in (Wp, Wn):
        nrm = np.linalg.norm(W, axis=2)
        for c, i in zip(*np.nonzero(nrm)):
            w = W[c, i]
            K = S[:, i, None] * Ut
            u = K @ w
            tol = 1e-12 * nrm[c, i]
            if u.min() >= -tol:
                continue
            J = u < 1e-3 * nrm[c, i]
            for _ in range(20):
                mu, _ = nnls(K[J].T, -w, maxiter=50 * K.shape[1])
                z = w + K[J].T @ mu
                u = K @ z
                viol = u < -1e-14 * max(np.linalg.norm(z), 1e-300)
                if not viol.any():
                    break
                J |= viol
            W[c, i] = z
    return Wp, Wn


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
    r"""Solve program (C) by an augmented Lagrangian on a working set.

    Minimises

    .. math::

        L\Big(\Big[\sum_i D_i U' (a_{c,i} - b_{c,i})\Big]_c\Big)
        + \beta \sum_{c,i} (\|a_{c,i}\| + \|b_{c,i}\|)
        \quad \text{s.t.} \quad (2D_i - I) U' a_{c,i} \ge 0,\;
        (2D_i - I) U' b_{c,i} \ge 0,

    see the module docstring for the method.

    Parameters
    ----------
    program : ConvexProgram
        The program to solve.
    W0 : tuple of ndarray, default=None
        Warm start ``(Wp, Wn)``, each of shape ``(n_outputs, P0, k)`` with
        ``P0 <= n_patterns``: the first ``P0`` patterns of the program (as
        when column generation appends patterns); the others start at zero.
    max_iter : int, default=10000
        Maximum number of FISTA iterations, summed over all inner solves.
    tol : float, default=1e-6
        Tolerance of the stopping rule: the relative duality gap
        ``(P - D) / P`` and the relative cone violation
        ``max_b ||(-K_i w_b)_+||_inf / max_b ||w_b||`` must both be at most
        ``tol``. ``P`` is the objective and ``D`` the dual value of the
        scaled dual point ``-grad L * min(1, beta / M)``, where ``M`` is an
        upper bound of the largest dual-constraint norm (module docstring).
        The duality gap bounds the distance of the objective to the optimum.
    device : str or torch.device, default="cpu"
        Where to compute: ``"cpu"`` or ``"cuda"``.
    dtype : torch.dtype, default=None
        ``torch.float64`` (default) or ``torch.float32``.
    verbose : bool, default=False
        Show a progress bar over the FISTA iterations with the objective,
        the cone violation and the relative duality gap.

    Returns
    -------
    result : SolverResult
        Blocks as float64 arrays, feasible to round-off after the final
        projection step; ``objective`` is ``program.objective`` at them and
        ``converged`` says whether the relative duality gap at the returned
        point is at most ``tol``.
    """
    device = _resolve_device(device)
    dtype = torch.float64 if dtype is None else dtype
    if dtype not in (torch.float64, torch.float32):
        raise ValueError(f"dtype must be torch.float64 or torch.float32, got {dtype}.")
    prob = _Problem(program, device, dtype)
    C, P, k, n = program.n_outputs, program.n_patterns, program.k, program.n_samples
    beta = prob.beta

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
        W_full[:, 0, :P0] = torch.as_tensor(Wp0, device=device, dtype=dtype)
        W_full[:, 1, :P0] = torch.as_tensor(Wn0, device=device, dtype=dtype)

    # Single precision cannot certify gaps much below ~100 machine epsilons.
    eps_floor = 100 * float(torch.finfo(dtype).eps) if dtype == torch.float32 else 0.0
    tol_eff = max(tol, eps_floor)
    # The cone violation is held tighter than the gap in single precision:
    # the final float64 projection moves the objective by about the
    # violation times the size of the blocks and of the gradient.
    viol_tol = tol_eff if dtype == torch.float64 else 0.1 * tol_eff

    bar = None
    if verbose:
        from tqdm.auto import tqdm

        bar = tqdm(total=max_iter, desc="solve_torch", leave=False)

    n_iter = 0
    converged = False
    rel_gap = np.inf
    viol = np.inf
    gamma_full = None  # multipliers of the last working set, by pattern
    ws = None
    ws_size = min(P, _WS_START)
    message = ""
    while True:
        # ---- full check: scores of all patterns and the duality gap.
        all_idx = torch.arange(P, device=device)
        F, G = prob.predict(W_full, prob.Dt)
        lam = -_loss_grad(prob.loss, F, prob.Y)
        g = prob.sign * ((prob.Dt * lam.T[:, None, :]) @ prob.Ut)[:, None]  # (C,2,P,k)
        mu0 = None
        if gamma_full is not None:
            mu0 = torch.zeros((C, 2, P, n), device=device, dtype=dtype)
            mu0[:, :, ws] = gamma_full
        bound = _dual_bound(prob, g, prob.Dt, mu0)
        M = float(bound.max())
        primal, dual = _gap(prob, W_full, F, M)
        rel_gap = (primal - dual) / max(primal, 1e-300)
        viol = _violation(W_full, G, prob.Dt)
        if bar is not None:
            bar.set_postfix(obj=f"{primal:.6g}", viol=f"{viol:.1e}", gap=f"{rel_gap:.1e}")
        if rel_gap <= tol_eff and viol <= viol_tol:
            converged = True
            break
        if n_iter >= max_iter:
            message = f"Maximum number of iterations ({max_iter}) reached."
            break

        # ---- new working set: patterns with a non-zero block first, then
        # those whose dual constraint is the most violated.
        nz = (torch.linalg.vector_norm(W_full, dim=-1) > 0).any(dim=(0, 1))
        score = bound.amax(dim=(0, 1)) / beta
        if ws is not None:
            # Keep the patterns already in the set when they still matter.
            keep = torch.zeros(P, dtype=torch.bool, device=device)
            keep[ws] = True
            score = torch.where(keep & (score > 1), score + 1e6, score)
        score = torch.where(nz, torch.full_like(score, np.inf), score)
        n_nz = int(nz.sum())
        # The set doubles at every check (as in celer), and is never smaller
        # than twice the patterns in use.
        ws_size = min(P, max(_WS_START, 2 * n_nz, 2 * ws_size if ws is not None else 0))
        size = max(1, min(ws_size, int((score > 1).sum())))
        new_ws = torch.sort(torch.topk(score, size).indices).values

        # Multipliers carry over for patterns that stay in the set.
        gamma = torch.zeros((C, 2, len(new_ws), n), device=device, dtype=dtype)
        if gamma_full is not None:
            pos = torch.full((P,), -1, dtype=torch.long, device=device)
            pos[ws] = torch.arange(len(ws), device=device)
            old = pos[new_ws]
            has = old >= 0
            gamma[:, :, has] = gamma_full[:, :, old[has]]
        ws = new_ws
        al = _RestrictedAL(prob, ws, W_full[:, :, ws].clone(), gamma, _RHO0)

        # ---- restricted solve: augmented Lagrangian iterations, each
        # followed by an attempt to polish on the faces it identifies.
        eps_in = 1e-2
        prev_viol = np.inf
        target = max(0.3 * rel_gap, 0.5 * tol_eff)
        while n_iter < max_iter:
            al.W, used = al.fista(al.W, min(_INNER_CAP, max_iter - n_iter), eps_in)
            n_iter += used
            if bar is not None:
                bar.update(used)
            F, G = al.update_multipliers()
            v = _violation(al.W, G, al.Dt)
            p_w, gap_w = al.certificate(al.W, F, al.gamma)
            if gap_w <= target and v <= viol_tol:
                break
            if v <= _POLISH_FROM and n_iter < max_iter:
                Wq, gq, Fq, Gq, used = al.polish(max_iter - n_iter, 1e-3 * tol_eff)
                n_iter += used
                if bar is not None:
                    bar.update(used)
                vq = _violation(Wq, Gq, al.Dt)
                pq, gap_q = al.certificate(Wq, Fq, gq)
                if gap_q <= target and vq <= viol_tol:
                    al.W, al.gamma = Wq, gq
                    break
            if bar is not None:
                bar.set_postfix(obj=f"{p_w:.6g}", viol=f"{v:.1e}", gap=f"{gap_w:.1e}")
            if v > 0.25 * prev_viol and v > viol_tol:
                # Too slow a decrease of the violation: stiffen the penalty.
                al.rho *= 2.0
                al.L = 1.05 * prob.Lf * al.A2 + al.rho
            prev_viol = v
            eps_in = max(0.1 * eps_in, 1e-3 * tol_eff)
        W_full[:, :, ws] = al.W
        gamma_full = al.gamma

    if bar is not None:
        bar.close()

    W_np = W_full.double().cpu().numpy()
    Wp = np.ascontiguousarray(W_np[:, 0])
    Wn = np.ascontiguousarray(W_np[:, 1])
    Wp, Wn = _cleanup(program, Wp, Wn)
    objective = float(program.objective(Wp, Wn))
    if converged:
        message = f"Converged: relative duality gap {rel_gap:.2e} <= tol."
    return SolverResult(
        Wp=Wp,
        Wn=Wn,
        objective=objective,
        n_iter=n_iter,
        converged=converged,
        message=message or f"Relative duality gap {rel_gap:.2e} > tol = {tol}.",
    )
