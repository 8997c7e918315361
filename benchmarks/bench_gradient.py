"""Adam steps of the gradient trainer against the textbook BN forward pass.

:func:`skbnconvex._gradient.train_bn_relu_network` computes the batch
statistics from the data's moments (``mean = xbar^T h``,
``var = h^T Sigma h``); the anchor is the same network and objective
written as one writes it in torch (statistics of the ``(n, m)``
pre-activations, autograd through them), trained by the same Adam from the
same start. Prints milliseconds per step of each and their ratio, measured
in one run (best of ``--repeat``), and the largest relative difference of
their final objectives (the same iterates).

Run from the repository root, alone on the machine::

    OMP_NUM_THREADS=1 python benchmarks/bench_gradient.py --threads 1

``--cases letter`` runs the cases whose name contains "letter" only (e.g.
to compare allocator settings, which are environment variables).
"""

import argparse
import time

import numpy as np
import torch

from skbnconvex._gradient import train_bn_relu_network
from skbnconvex._losses import get_loss, program_targets

# (name, n, d, width, n_inits, loss, n_outputs, steps): the races' shapes,
# the warm-up of init="adam" on the race's synthetic data (512 neurons),
# energy's accuracy fits at small alpha, pendigits, and letter's proposals
# at the accuracy benchmark's alpha (3 574 neurons; a multiple of its 26
# classes here), whose steps are a tenth of --steps.
CASES = (
    ("breast cancer shape", 569, 30, 70, 4, "log_loss", 1, 1.0),
    ("synthetic shape", 500, 20, 100, 4, "squared_error", 1, 1.0),
    ("warm-up, synthetic", 500, 20, 512, 1, "squared_error", 1, 1.0),
    ("energy, wide", 410, 8, 2380, 2, "squared_error", 1, 1.0),
    ("pendigits shape", 7494, 16, 340, 2, "squared_error", 1, 1.0),
    ("pendigits, 10 classes", 7494, 16, 340, 2, "log_loss", 10, 1.0),
    ("letter proposal", 16000, 16, 3562, 1, "log_loss", 26, 0.1),
)


def textbook(X, Y, loss_name, start, n_steps, lr, alpha, dtype):
    """Adam on the plain forward pass; the final objectives."""
    n, C = Y.shape
    R, m = start["weight"].shape
    loss = get_loss(loss_name, C)
    Xt = torch.as_tensor(X, dtype=dtype)
    Yt = torch.as_tensor(program_targets(loss, Y), dtype=dtype)
    mask = torch.as_tensor(np.eye(C)[np.arange(m) % C], dtype=dtype)
    params = [torch.tensor(start[key], dtype=dtype, requires_grad=True)
              for key in ("hidden", "weight", "bias", "output")]

    def objective():
        hidden, weight, bias, output = params
        H = torch.matmul(Xt, hidden)  # (R, n, m)
        mean = H.mean(dim=1, keepdim=True)
        var = ((H - mean) ** 2).mean(dim=1, keepdim=True)
        A = torch.relu((H - mean) / torch.sqrt(var) * weight[:, None] + bias[:, None])
        F = torch.matmul(A, output * mask)
        values = torch.stack([loss.torch_value(F[r], Yt) for r in range(R)])
        pen = (weight**2).sum(1) + (bias**2).sum(1) + ((output * mask) ** 2).sum((1, 2))
        return (values + 0.5 * alpha * pen) / n

    opt = torch.optim.Adam(params, lr=lr)
    for _ in range(n_steps):
        opt.zero_grad()
        objective().sum().backward()
        opt.step()
    with torch.no_grad():
        return objective().numpy()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--cases", nargs="*", default=None,
                        help="only the cases whose name contains one of these")
    args = parser.parse_args()
    cases = [case for case in CASES
             if args.cases is None or any(key in case[0] for key in args.cases)]
    torch.set_num_threads(args.threads)
    print(f"torch threads {torch.get_num_threads()}, {args.steps} Adam steps "
          f"(letter: a tenth), best of {args.repeat}")
    print(f"{'case':22} {'dtype':8} {'n':>6} {'width':>6} {'inits':>5} "
          f"{'textbook ms':>12} {'trainer ms':>11} {'ratio':>6} {'max rel diff':>13}")
    for name, n, d, m, R, loss, C, share in cases:
        steps = max(1, round(share * args.steps))
        rng = np.random.default_rng(0)
        X = rng.standard_normal((n, d))
        if loss == "log_loss" and C > 1:
            Y = np.eye(C)[rng.integers(0, C, n)]
        elif loss == "log_loss":
            Y = (2.0 * (rng.random(n) < 0.5) - 1.0)[:, None]
        else:
            Y = rng.standard_normal((n, 1))
        # The trainer's own random start (random_state=0), drawn again here
        # for the anchor.
        rs = np.random.RandomState(0)
        start = dict(hidden=rs.standard_normal((R, d, m)) * (1 / np.sqrt(d)),
                     weight=np.ones((R, m)), bias=np.zeros((R, m)))
        start["output"] = rs.standard_normal((R, m, C)) * (1 / np.sqrt(m))
        for dtype in (torch.float32, torch.float64):
            times = {"textbook": np.inf, "trainer": np.inf}
            for _ in range(args.repeat):
                # Alternated, so that both see the same state of the machine.
                t = time.perf_counter()
                ref = textbook(X, Y, loss, start, steps, 1e-2, 0.1, dtype)
                times["textbook"] = min(times["textbook"], time.perf_counter() - t)
                t = time.perf_counter()
                fit = train_bn_relu_network(
                    X, Y, loss=loss, alpha=0.1, n_neurons=m, n_inits=R,
                    n_steps=steps, learning_rate=1e-2,
                    record_every=steps, random_state=0, dtype=dtype,
                )
                times["trainer"] = min(times["trainer"], time.perf_counter() - t)
            diff = float(np.max(np.abs(fit.objectives - ref) / np.abs(ref)))
            ms = {key: 1e3 * value / steps for key, value in times.items()}
            print(f"{name:22} {str(dtype)[6:]:8} {n:6d} {m:6d} {R:5d} "
                  f"{ms['textbook']:12.2f} {ms['trainer']:11.2f} "
                  f"{ms['textbook'] / ms['trainer']:6.2f} {diff:13.1e}", flush=True)


if __name__ == "__main__":
    main()
