"""From convex blocks back to a BN-ReLU network, its forward pass and export.

Each non-zero block ``a`` of output ``c`` (``b``: the same with a negative
read-out) becomes one neuron ``relu(BN(x^T w)) v`` (MATH.md section 3). With
PyTorch's BatchNorm1d convention (weight ``gamma/sqrt(n)``, bias
``alpha/sqrt(n)``) and the penalty ``alpha_reg/2 (weight^2 + bias^2 + v^2)``,
the scale split between ``z`` and ``v`` that minimises the penalty is
``z = a n^{1/4} / sqrt(||a||)``, ``v = +-sqrt(||a||) / n^{1/4}``, and the
neuron's penalty is then ``beta ||a||`` with ``beta = alpha_reg / sqrt(n)``.

With sample weights ``n`` is their sum (the size of the equivalent repeated
batch). With spectral weights ``lam = (S / S_1)^kappa`` the blocks live in
the coordinates of ``[U diag(lam), 1/sqrt(n)]``: the neuron's whitened
coefficients are ``[lam * z_U, z_0]`` and its penalty
``rho^2 weight^2 + bias^2 + v^2`` weighs the BN weight by
``rho = ||z_U|| / ||lam * z_U||``, large for directions of small singular
value; ``rho = 1`` for the exact program.
"""

# Authors: the skbnconvex developers
# License: BSD 3 clause

from dataclasses import dataclass

import numpy as np


@dataclass
class BNReLUNetwork:
    """Weights of ``Linear(d, m) -> BatchNorm1d(m) -> ReLU -> Linear(m, C)``.

    BN is in evaluation mode with the training statistics, ``eps = 0``.
    """

    hidden_weights: np.ndarray  # (n_features, m)
    bn_weight: np.ndarray  # (m,)
    bn_bias: np.ndarray  # (m,)
    bn_running_mean: np.ndarray  # (m,)
    bn_running_var: np.ndarray  # (m,)
    output_weights: np.ndarray  # (m, n_outputs)
    # Factor of each BN weight in the penalty (``rho``; ones unless the
    # program was spectrally weighted).
    weight_penalty_scale: np.ndarray = None

    def __post_init__(self):
        if self.weight_penalty_scale is None:
            self.weight_penalty_scale = np.ones_like(self.bn_weight)

    @property
    def n_neurons(self):
        return self.bn_weight.shape[0]

    def astype(self, dtype):
        """The same network with parameters of ``dtype``."""
        return BNReLUNetwork(*(np.asarray(a, dtype=dtype) for a in (
            self.hidden_weights, self.bn_weight, self.bn_bias,
            self.bn_running_mean, self.bn_running_var, self.output_weights,
            self.weight_penalty_scale,
        )))

    def forward(self, X):
        """Network output on ``X``, shape ``(n_samples, n_outputs)``."""
        H = X @ self.hidden_weights
        Z = (H - self.bn_running_mean) / np.sqrt(self.bn_running_var)
        A = np.maximum(Z * self.bn_weight + self.bn_bias, 0.0)
        return A @ self.output_weights

    def penalty(self):
        """``sum (rho weight)^2 + bias^2 + ||v||^2``, the weight-decay term."""
        return float(
            np.sum((self.weight_penalty_scale * self.bn_weight) ** 2)
            + np.sum(self.bn_bias**2)
            + np.sum(self.output_weights**2)
        )


def active_blocks(Wp, Wn, prune_tol, scale=0.0):
    """Mask blocks with norm above ``prune_tol * max(largest norm, scale)``.

    An interior-point solution has no exact zeros, so blocks that are
    numerically zero are pruned before recovery (MATH.md section 3). Since
    ``Ut`` has orthonormal columns a block's norm is the norm of its
    contribution to the output, so ``scale`` (the norm of the targets) sets
    the floor below which a block is zero even when all blocks are tiny.
    """
    norms_p, norms_n = np.linalg.norm(Wp, axis=2), np.linalg.norm(Wn, axis=2)
    top = max(norms_p.max(initial=0.0), norms_n.max(initial=0.0), scale)
    if top == 0:
        return np.zeros_like(norms_p, bool), np.zeros_like(norms_n, bool)
    return norms_p > prune_tol * top, norms_n > prune_tol * top


def recover_network(whitening, Wp, Wn):
    """Build the network from blocks; every non-zero block becomes a neuron.

    Parameters
    ----------
    whitening : Whitening
    Wp, Wn : ndarray of shape (n_outputs, n_patterns, k)
        Blocks, already pruned (zero blocks make no neuron).

    Returns
    -------
    network : BNReLUNetwork
    """
    n = whitening.weight_sum
    r = whitening.rank
    lam = whitening.spectral_weights
    V, S, mean = whitening.components, whitening.singular_values, whitening.mean
    d = mean.shape[0]
    C = Wp.shape[0]
    neurons = []  # (block, output, sign)
    for W, sign in ((Wp, 1.0), (Wn, -1.0)):
        for c, i in zip(*np.nonzero(np.linalg.norm(W, axis=2) > 0)):
            neurons.append((W[c, i], c, sign))
    m = len(neurons)
    hidden = np.zeros((d, m))
    weight, bias = np.zeros(m), np.zeros(m)
    running_mean, running_var = np.zeros(m), np.ones(m)
    rho = np.ones(m)
    out = np.zeros((m, C))
    for j, (a, c, sign) in enumerate(neurons):
        norm_a = np.linalg.norm(a)
        t = n**0.25 / np.sqrt(norm_a)
        # The scale split minimises the penalty in the program's
        # coordinates; the network's whitened coefficients are lam * z.
        z = a * t
        gamma_program = np.linalg.norm(z[:r])
        z[:r] = z[:r] * lam
        gamma = np.linalg.norm(z[:r])
        if gamma > 0:
            rho[j] = gamma_program / gamma
            w = V @ (z[:r] / gamma / S)
        elif r > 0:
            # A constant neuron (BN scale 0): any direction will do.
            w = V[:, 0].copy()
        else:
            w = np.eye(d)[0]
        scale = np.linalg.norm(w)
        w = w / scale
        hidden[:, j] = w
        # ||Xc w||^2 / n, in closed form: Xc V S^-1 s = U s has unit norm.
        if gamma > 0:
            running_var[j] = 1.0 / (n * scale**2)
        elif r > 0:
            running_var[j] = S[0] ** 2 / n
        running_mean[j] = mean @ w
        weight[j] = gamma / np.sqrt(n)
        bias[j] = z[r] / np.sqrt(n)
        out[j, c] = sign / t
    return BNReLUNetwork(hidden, weight, bias, running_mean, running_var, out, rho)


def network_to_torch(network, eps=1e-5, dtype=None):
    """Export to ``nn.Sequential(Linear, BatchNorm1d, ReLU, Linear)``.

    BatchNorm1d needs ``eps > 0``; it is folded into the BN weight,
    ``weight * sqrt(var + eps) / sqrt(var)``, so that the module computes
    exactly the network's eval-mode output (MATH.md section 3). A network
    without neurons is exported with one neuron of zero weights.
    """
    import torch
    from torch import nn

    dtype = torch.float64 if dtype is None else dtype
    d, m = network.hidden_weights.shape
    C = network.output_weights.shape[1]
    if m == 0:
        network = BNReLUNetwork(
            np.zeros((d, 1)), np.zeros(1), np.zeros(1), np.zeros(1), np.ones(1),
            np.zeros((1, C)),
        )
        m = 1
    var = network.bn_running_var
    model = nn.Sequential(
        nn.Linear(d, m, bias=False),
        nn.BatchNorm1d(m, eps=eps),
        nn.ReLU(),
        nn.Linear(m, C, bias=False),
    ).to(dtype)

    def as_tensor(a):
        return torch.as_tensor(np.ascontiguousarray(a), dtype=dtype)

    with torch.no_grad():
        model[0].weight.copy_(as_tensor(network.hidden_weights.T))
        model[1].weight.copy_(as_tensor(network.bn_weight * np.sqrt((var + eps) / var)))
        model[1].bias.copy_(as_tensor(network.bn_bias))
        model[1].running_mean.copy_(as_tensor(network.bn_running_mean))
        model[1].running_var.copy_(as_tensor(var))
        model[3].weight.copy_(as_tensor(network.output_weights.T))
    return model.eval()


def blocks_from_network(Z, output, Ut, D):
    """Blocks of program (C) on patterns ``D`` that reproduce a BN-ReLU net.

    The inverse direction of :func:`recover_network`, used to start the
    solver from a network trained by gradient descent. Neuron ``j`` of the
    network has BN outputs ``Z[:, j]`` on the training data; they lie in the
    span of the centred data and the constant, i.e. ``Z[:, j] = Ut z_j``,
    and ``relu(Z[:, j]) = D_i Ut z_j`` for its pattern ``D_i = 1[Z[:, j] >=
    0]``, with ``z_j`` in the cone of ``D_i``. Its contribution to output
    ``c`` is ``output[j, c] relu(Z[:, j])``: the block ``a_{c,i}`` (or
    ``b_{c,i}`` when the weight is negative) receives ``|output[j, c]| z_j``.
    Sums of such vectors stay in the cone, so neurons sharing a pattern
    share its block.

    Parameters
    ----------
    Z : ndarray of shape (n_samples, n_neurons)
        BN outputs of the neurons on the training data, rows scaled like
        ``Ut`` (by ``sqrt(w_i)`` with sample weights).
    output : ndarray of shape (n_neurons, n_outputs)
        Output weights.
    Ut : ndarray of shape (n_samples, k)
        Whitened data of the program.
    D : ndarray of bool, shape (n_samples, n_patterns)
        Patterns of the program.

    Returns
    -------
    Wp, Wn : ndarray of shape (n_outputs, n_patterns, k)
        Blocks; those of neurons whose pattern is not a column of ``D`` are
        left out. They lie in their cones up to the round-off of ``z_j``
        (solvers project starting points onto the cones).
    """
    z = np.linalg.lstsq(Ut, Z, rcond=None)[0].T  # (n_neurons, k)
    column = {np.packbits(D[:, i]).tobytes(): i for i in range(D.shape[1])}
    C = output.shape[1]
    Wp = np.zeros((C, D.shape[1], Ut.shape[1]))
    Wn = np.zeros_like(Wp)
    for j in range(Z.shape[1]):
        i = column.get(np.packbits(Z[:, j] >= 0).tobytes())
        if i is None:
            continue
        for c in range(C):
            weight = output[j, c]
            if weight > 0:
                Wp[c, i] += weight * z[j]
            elif weight < 0:
                Wn[c, i] -= weight * z[j]
    return Wp, Wn
