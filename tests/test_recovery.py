"""The recovered network is the convex model: same outputs, same objective."""

import numpy as np
import pytest
import torch

from skbnconvex import ConvexBNReLUClassifier, ConvexBNReLURegressor
from skbnconvex._losses import get_loss

from .conftest import make_regression_data


def _torch_train_mode_objective(est, X, Y, loss):
    """Objective (NC) of the exported module by a train-mode forward pass.

    Train-mode BatchNorm1d uses the batch statistics of X itself, which is
    the network of the paper's training problem; eps is folded in the
    export, so the batch statistics reproduce the eval-mode outputs.
    """
    module = est.to_torch().train()
    with torch.no_grad():
        F = module(torch.as_tensor(X)).numpy()
    n = X.shape[0]
    pen = (
        np.sum(est.bn_weight_**2) + np.sum(est.bn_bias_**2)
        + np.sum(est.output_weights_**2)
    )
    return (loss.value(F, Y) + 0.5 * est.alpha * pen) / n, F


@pytest.mark.parametrize("n_outputs", [1, 3])
def test_regressor_network_reproduces_convex_model(n_outputs):
    X, Y = make_regression_data(n=25, d=3, n_outputs=n_outputs, seed=1)
    est = ConvexBNReLURegressor(alpha=0.3, n_patterns=30, random_state=0).fit(X, Y)
    # (NC) of the recovered network == value of (C) at the pruned blocks.
    assert est.objective_ == pytest.approx(est._convex_objective, rel=1e-8)
    loss = get_loss("squared_error", n_outputs)
    objective, F = _torch_train_mode_objective(est, X, Y, loss)
    assert objective == pytest.approx(est.objective_, rel=1e-8)
    np.testing.assert_allclose(F.reshape(Y.shape), est.predict(X).reshape(Y.shape),
                               atol=1e-8)
    assert est.n_neurons_ == est.hidden_weights_.shape[1] > 0
    # decoupled outputs: one non-zero per row of the read-out
    assert np.all((est.output_weights_ != 0).sum(axis=1) == 1)


@pytest.mark.parametrize("n_classes", [2, 3])
def test_classifier_network_reproduces_convex_model(n_classes):
    rng = np.random.default_rng(2)
    X = rng.standard_normal((30, 3))
    y = np.digitize(X[:, 0] + X[:, 1] ** 2, np.quantile(X[:, 0] + X[:, 1] ** 2,
                    np.linspace(0, 1, n_classes + 1)[1:-1]))
    est = ConvexBNReLUClassifier(alpha=0.5, n_patterns=20, random_state=0).fit(X, y)
    assert est.objective_ == pytest.approx(est._convex_objective, rel=1e-8)
    Y = (2.0 * y - 1.0)[:, None] if n_classes == 2 else np.eye(n_classes)[y]
    objective, _ = _torch_train_mode_objective(est, X, Y, get_loss("log_loss", Y.shape[1]))
    assert objective == pytest.approx(est.objective_, rel=1e-8)


def test_objective_matches_solver_optimum():
    # The pruned network's objective is the solver's optimum (pruning removes
    # only numerically-zero blocks).
    from skbnconvex._patterns import sample_patterns
    from skbnconvex._program import ConvexProgram
    from skbnconvex._solvers import solve_cvxpy
    from skbnconvex._whitening import whiten

    X, Y = make_regression_data(n=25, d=3, seed=3)
    est = ConvexBNReLURegressor(alpha=0.3, n_patterns=30, random_state=0).fit(X, Y)
    W = whiten(X)
    program = ConvexProgram(W.Ut, sample_patterns(W.Ut, 30, 0), Y,
                            get_loss("squared_error", 1), 0.3 / np.sqrt(25))
    assert est.objective_ == pytest.approx(solve_cvxpy(program).objective / 25, rel=1e-6)


@pytest.mark.parametrize("Estimator", [ConvexBNReLURegressor, ConvexBNReLUClassifier])
def test_torch_export_equals_predict_on_unseen_data(Estimator):
    rng = np.random.default_rng(4)
    X = rng.standard_normal((40, 4)) * [1, 5, 0.2, 1] + 3
    y = X[:, 0] - np.abs(X[:, 1]) + 0.1 * rng.standard_normal(40)
    if Estimator is ConvexBNReLUClassifier:
        y = np.where(y > np.median(y), "yes", "no")
    est = Estimator(alpha=0.2, n_patterns=25, random_state=0).fit(X, y)
    X_new = rng.standard_normal((50, 4)) * [2, 5, 0.2, 1] + 3
    module = est.to_torch()
    assert not module.training
    assert isinstance(module[1], torch.nn.BatchNorm1d) and module[1].eps == 1e-5
    with torch.no_grad():
        out = module(torch.as_tensor(X_new)).numpy().ravel()
    expected = (est.predict(X_new) if Estimator is ConvexBNReLURegressor
                else est.decision_function(X_new))
    np.testing.assert_allclose(out, expected, rtol=1e-6, atol=1e-6 * np.abs(expected).max())


def test_eval_mode_matches_bn_formula_with_training_statistics():
    # predict uses BN in eval mode: gamma (x - xbar)^T V S^-1 s + alpha/sqrt(n),
    # computed here from the definition with the training data's statistics.
    X, Y = make_regression_data(n=20, d=2, seed=5)
    est = ConvexBNReLURegressor(alpha=0.3, n_patterns=20, random_state=0).fit(X, Y)
    X_new = np.random.default_rng(0).standard_normal((7, 2))
    H, H_new = X @ est.hidden_weights_, X_new @ est.hidden_weights_
    mu, sd = H.mean(0), H.std(0)  # biased, as BN in training mode
    np.testing.assert_allclose(est.bn_running_mean_, mu, atol=1e-10)
    np.testing.assert_allclose(est.bn_running_var_, sd**2, rtol=1e-8)
    A = np.maximum((H_new - mu) / sd * est.bn_weight_ + est.bn_bias_, 0)
    np.testing.assert_allclose(est.predict(X_new).ravel(), (A @ est.output_weights_).ravel(),
                               atol=1e-9)


@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize(
    "loss_name, n_outputs", [("squared_error", 2), ("log_loss", 3)]
)
def test_blocks_from_network_reproduce_the_adam_network(
    weighted, loss_name, n_outputs
):
    """The Adam network written as blocks: same outputs, no larger objective."""
    from skbnconvex._gradient import train_bn_relu_network
    from skbnconvex._losses import program_targets
    from skbnconvex._patterns import unique_patterns
    from skbnconvex._program import ConvexProgram
    from skbnconvex._recovery import blocks_from_network
    from skbnconvex._whitening import whiten

    rng = np.random.default_rng(0)
    X, Y = make_regression_data(n=40, d=3, n_outputs=n_outputs, seed=1)
    if loss_name == "log_loss":
        Y = np.eye(n_outputs)[np.argmax(Y + 0.3 * rng.standard_normal(Y.shape), 1)]
    w = rng.uniform(0.5, 2.0, len(X)) if weighted else None
    alpha = 0.05
    fit = train_bn_relu_network(
        X, Y, loss=loss_name, alpha=alpha, n_neurons=12, n_inits=1, n_steps=300,
        random_state=0, sample_weight=w,
    )
    whitening = whiten(X, sample_weight=w)
    loss = get_loss(loss_name, n_outputs, w)
    sqrt_w = np.ones(len(X)) if w is None else np.sqrt(w)
    D = unique_patterns(fit.activation_patterns(X))
    Z = fit.bn_outputs(X) * sqrt_w[:, None]
    Wp, Wn = blocks_from_network(Z, fit.params["output"][0], whitening.Ut, D)
    program = ConvexProgram(
        whitening.Ut, D, program_targets(loss, Y, w), loss,
        alpha / np.sqrt(whitening.weight_sum),
    )
    # Outputs of a plain forward pass of the network, in program scaling.
    np.testing.assert_allclose(
        program.predict(Wp, Wn), sqrt_w[:, None] * fit.forward(X), atol=1e-9
    )
    assert program.cone_violation(Wp, Wn) < 1e-8
    # The convex penalty of a neuron is at most its weight decay (AM-GM),
    # so the program's objective is at most the network's (on the mean
    # scale of the estimators: divided by the total weight).
    convex = program.objective(Wp, Wn) / whitening.weight_sum
    assert convex <= fit.objectives[0] * (1 + 1e-9)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("patterns", ["sample", "adaptive"])
def test_adam_init_starts_the_solver_from_the_adam_network(patterns, monkeypatch):
    """init="adam": the first solve starts from the trained network's blocks."""
    X, y = make_regression_data(n=60, d=3, seed=2)
    seen = []
    real = ConvexBNReLURegressor._solve

    def spy(self, program, W0=None, tol=None, max_iter=None):
        seen.append((program, W0))
        return real(self, program, W0, tol, max_iter)

    monkeypatch.setattr(ConvexBNReLURegressor, "_solve", spy)
    ConvexBNReLURegressor(
        alpha=0.05, n_patterns=16, init="adam", patterns=patterns,
        solver="torch", max_rounds=2, random_state=0,
    ).fit(X, y)
    program, W0 = seen[0]
    assert W0 is not None
    Wp, Wn = W0
    assert np.linalg.norm(Wp) + np.linalg.norm(Wn) > 0
    # A feasible point whose objective is below that of the zero network.
    Wp, Wn = program.project_to_cones(*(w[:, : program.n_patterns] for w in W0))
    zero = program.objective(*program.zeros())
    assert program.objective(Wp, Wn) < zero


@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize(
    "Estimator, n_outputs", [(ConvexBNReLURegressor, 2), (ConvexBNReLUClassifier, 3)]
)
def test_gradient_training_starts_from_the_recovered_network(
    weighted, Estimator, n_outputs
):
    """Adam from a fitted network: at step 0 its torch objective (batch
    statistics recomputed from the data) is the estimator's ``objective_``
    (a numpy forward pass with the recovered statistics), and it only
    moves from there."""
    from skbnconvex._gradient import train_bn_relu_network

    rng = np.random.default_rng(0)
    X, Y = make_regression_data(n=40, d=3, n_outputs=n_outputs, seed=2)
    w = rng.uniform(0.5, 2.0, len(X)) if weighted else None
    if Estimator is ConvexBNReLUClassifier:
        y = np.argmax(Y + 0.3 * rng.standard_normal(Y.shape), 1)
        Y_coded = np.eye(n_outputs)[y]
        loss = "log_loss"
    else:
        y = Y_coded = Y
        loss = "squared_error"
    est = Estimator(alpha=0.05, n_patterns=20, random_state=0)
    est.fit(X, y, sample_weight=w)
    assert len(np.unique(np.argmax(np.abs(est.output_weights_), 1))) == n_outputs
    start = dict(hidden=est.hidden_weights_, weight=est.bn_weight_,
                 bias=est.bn_bias_, output=est.output_weights_)
    fit = train_bn_relu_network(X, Y_coded, loss=loss, alpha=0.05, n_inits=1,
                                n_steps=50, record_every=50, sample_weight=w,
                                initial_params=start)
    assert fit.history[0, 0] == pytest.approx(est.objective_, rel=1e-9)
    # Each neuron keeps feeding its output (decoupled read-out).
    np.testing.assert_array_equal(fit.params["output"][0] != 0,
                                  est.output_weights_ != 0)
    assert fit.objectives[0] < est.objective_


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_gradient_training_with_a_constant_neuron(dtype):
    """A neuron whose pre-activations are constant (zero hidden weights) has
    zero batch variance: its BN output is 0, in single precision too (where
    a guard of 1e-300 would round to 0 and give 0 / 0), and the objective
    at step 0 is that of the network in float64."""
    from skbnconvex._gradient import train_bn_relu_network

    X, Y = make_regression_data(n=30, d=3, n_outputs=1, seed=4)
    rng = np.random.default_rng(1)
    hidden = rng.standard_normal((3, 4))
    hidden[:, 2] = 0.0
    start = dict(hidden=hidden, weight=np.ones(4), bias=np.full(4, 0.1),
                 output=rng.standard_normal((4, 1)))
    kwargs = dict(loss="squared_error", alpha=0.1, n_inits=1, n_steps=5,
                  record_every=5, initial_params=start)
    ref = train_bn_relu_network(X, Y, dtype=torch.float64, **kwargs)
    fit = train_bn_relu_network(X, Y, dtype=dtype, **kwargs)
    assert np.all(np.isfinite(fit.history)) and np.all(np.isfinite(fit.objectives))
    assert fit.history[0, 0] == pytest.approx(ref.history[0, 0], rel=1e-6)
    # The NumPy forward pass (which gives the proposals' patterns and
    # blocks) guards the constant neuron too, and reproduces the training
    # objective, (sum of squared errors / 2 + alpha / 2 * penalty) / n, at
    # the start (no steps: the neuron is still constant).
    start_fit = train_bn_relu_network(X, Y, dtype=dtype, **{**kwargs, "n_steps": 0})
    p = {key: value[0] for key, value in start_fit.params.items()}
    assert p["var"][2] == 0.0
    assert np.all(start_fit.bn_outputs(X, 0)[:, 2] == p["bias"][2])
    pen = (p["weight"] ** 2).sum() + (p["bias"] ** 2).sum() + (p["output"] ** 2).sum()
    value = (((start_fit.forward(X, 0) - Y) ** 2).sum() / 2 + 0.1 / 2 * pen) / len(X)
    assert value == pytest.approx(ref.history[0, 0], rel=1e-6)


@pytest.mark.parametrize("patience", [1, 3])
def test_gradient_training_stops_once_progress_is_below_tol(patience):
    """With ``tol`` the run is the same as without, up to the first record
    that ends ``patience`` records in a row whose best objective is not a
    fraction ``tol`` below all earlier records'."""
    from skbnconvex._gradient import train_bn_relu_network

    X, Y = make_regression_data(n=60, d=3, n_outputs=1, seed=5)
    kwargs = dict(loss="squared_error", alpha=0.1, n_neurons=6, n_inits=2,
                  n_steps=4000, record_every=50, random_state=0)
    full = train_bn_relu_network(X, Y, **kwargs)
    tol = 1e-3
    early = train_bn_relu_network(X, Y, tol=tol, n_iter_no_change=patience, **kwargs)
    best = full.history.min(axis=1)
    stalled, stop = 0, None
    for j in range(1, len(best)):
        stalled = stalled + 1 if best[j] >= (1 - tol) * best[:j].min() else 0
        if stalled == patience:
            stop = j
            break
    assert stop is not None and stop > patience  # some progress, then none
    assert early.history.shape == (stop + 1, 2)
    np.testing.assert_allclose(early.history, full.history[: stop + 1], rtol=1e-12)


@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize(
    "loss_name, n_outputs", [("squared_error", 2), ("log_loss", 3)]
)
def test_gradient_training_follows_the_textbook_batch_norm(
    optimizer, weighted, loss_name, n_outputs
):
    """The trainer computes BN's statistics from the data's moments and its
    gradients by hand; Adam, and gradient descent with momentum (which,
    unlike Adam, would not forgive gradients off by a factor), on the
    textbook forward pass (statistics of the (n, m) pre-activations,
    autograd through them) take the same steps from the same start."""
    from skbnconvex._gradient import train_bn_relu_network
    from skbnconvex._losses import program_targets

    rng = np.random.default_rng(3)
    X, Y = make_regression_data(n=50, d=4, n_outputs=n_outputs, seed=6)
    X[:, 3] = 2.0 * X[:, 2] + 1.0  # a singular covariance
    if loss_name == "log_loss":
        Y = np.eye(n_outputs)[rng.integers(0, n_outputs, len(X))]
    w = rng.uniform(0.5, 2.0, len(X)) if weighted else np.ones(len(X))
    m, alpha, lr, n_steps = 6, 0.3, 0.05, 25
    mask = np.eye(n_outputs)[np.arange(m) % n_outputs]
    start = dict(hidden=rng.standard_normal((4, m)), weight=rng.uniform(0.5, 1.5, m),
                 bias=0.3 * rng.standard_normal(m),
                 output=mask * rng.standard_normal((m, 1)))
    fit = train_bn_relu_network(
        X, Y, loss=loss_name, alpha=alpha, n_inits=1, n_steps=n_steps,
        learning_rate=lr, record_every=1, initial_params=start,
        sample_weight=w if weighted else None, optimizer=optimizer, momentum=0.5,
    )

    loss = get_loss(loss_name, n_outputs, w if weighted else None)
    Yt = torch.as_tensor(program_targets(loss, Y, w if weighted else None))
    Xt, wt = torch.as_tensor(X), torch.as_tensor(w / w.sum())[:, None]
    params = [torch.tensor(start[key], dtype=torch.float64, requires_grad=True)
              for key in ("hidden", "weight", "bias", "output")]
    mask_t = torch.as_tensor(mask)

    def objective():
        hidden, weight, bias, output = params
        H = Xt @ hidden
        mean = (wt * H).sum(0)
        var = (wt * (H - mean) ** 2).sum(0)
        A = torch.relu((H - mean) / torch.sqrt(var) * weight + bias)
        F = A @ (output * mask_t)
        pen = (weight**2).sum() + (bias**2).sum() + ((output * mask_t) ** 2).sum()
        value = loss.torch_value(torch.as_tensor(np.sqrt(w))[:, None] * F, Yt)
        return (value + 0.5 * alpha * pen) / w.sum()

    if optimizer == "adam":
        opt = torch.optim.Adam(params, lr=lr)
    else:
        opt = torch.optim.SGD(params, lr=lr, momentum=0.5)
    history = []
    for _ in range(n_steps):
        opt.zero_grad()
        value = objective()
        history.append(float(value.detach()))
        value.backward()
        opt.step()
    history.append(float(objective().detach()))
    np.testing.assert_allclose(fit.history[:, 0], history, rtol=1e-10)
    for key, p in zip(("hidden", "weight", "bias"), params):
        np.testing.assert_allclose(fit.params[key][0], p.detach().numpy(),
                                   rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(fit.params["output"][0],
                               (params[3] * mask_t).detach().numpy(),
                               rtol=1e-8, atol=1e-10)
    # The recorded statistics are those of the last pre-activations.
    H = X @ fit.params["hidden"][0]
    mean = (w / w.sum()) @ H
    np.testing.assert_allclose(fit.params["mean"][0], mean, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(fit.params["var"][0], (w / w.sum()) @ (H - mean) ** 2,
                               rtol=1e-9)


def test_hidden_readout_gradients_match_finite_differences():
    """The hand-written backward pass of the trainer's hidden layer and
    decoupled read-out against finite differences (float64), with two
    initialisations, outputs fed by 3, 0 and 2 neurons, and ReLUs on both
    sides of their kink."""
    from skbnconvex._gradient import _Workspace

    rng = np.random.default_rng(0)
    n, d, R, groups = 9, 3, 2, [(0, 3), (3, 3), (3, 5)]
    m = groups[-1][1]
    Xc = torch.as_tensor(rng.standard_normal((n, d)))
    work = _Workspace(Xc, R, m, groups, torch.float64)
    W, b, v = (torch.as_tensor(rng.standard_normal(shape))
               for shape in ((R, d, m), (R, m), (R, m)))
    weights = torch.as_tensor(rng.standard_normal((R, n, len(groups))))

    def value(W, b, v):
        return float((work.forward(W, b, v) * weights).sum())

    pre = torch.baddbmm(b[:, None, :], Xc.expand(R, -1, -1), W)
    assert 0.2 < (pre > 0).double().mean() < 0.8
    F = work.forward(W, b, v)
    grads = work.backward(weights, v)
    # The forward pass is the plain formula with a dense read-out matrix.
    dense = torch.zeros(R, m, len(groups), dtype=torch.float64)
    for c, (s, e) in enumerate(groups):
        dense[:, s:e, c] = v[:, s:e]
    np.testing.assert_allclose(F.numpy(), (torch.relu(pre) @ dense).numpy(),
                               rtol=1e-13, atol=1e-14)
    # Central differences along random directions (the kinks are at least
    # 1e-3 away from the points probed).
    assert pre.abs().min() > 1e-3
    for _ in range(5):
        dirs = [torch.as_tensor(rng.standard_normal(t.shape)) for t in (W, b, v)]
        h = 1e-6
        up = value(*(t + h * u for t, u in zip((W, b, v), dirs)))
        down = value(*(t - h * u for t, u in zip((W, b, v), dirs)))
        slope = sum(float((g * u).sum()) for g, u in zip(grads, dirs))
        assert slope == pytest.approx((up - down) / (2 * h), rel=1e-6)
