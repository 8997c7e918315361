"""Over all patterns the convex fit is the global optimum of the BN network.

Reference: gradient training of the non-convex network itself (torch,
Linear-BatchNorm-ReLU-Linear, many random initialisations, Adam then L-BFGS),
which knows nothing of the convex program.
"""

import time

import numpy as np
import pytest

from skbnconvex import ConvexBNReLUClassifier, ConvexBNReLURegressor
from skbnconvex._gradient import train_bn_relu_network

from .conftest import make_regression_data


def _gradient_objectives(X, Y, loss, alpha):
    fit = train_bn_relu_network(
        X, Y, loss=loss, alpha=alpha, n_neurons=24, n_inits=32, n_steps=6000,
        learning_rate=3e-3, lbfgs_steps=500, random_state=0,
    )
    return fit.objectives


@pytest.mark.parametrize("alpha", [0.5, 0.1])
def test_squared_loss_convex_optimum_is_the_best_gradient_objective(alpha):
    X, Y = make_regression_data(n=12, d=2, seed=1)
    est = ConvexBNReLURegressor(alpha=alpha, patterns="enumerate").fit(X, Y)
    assert est.n_patterns_ == 2 * (1 + 11 + 55) - 1  # every pattern
    gd = _gradient_objectives(X, Y, "squared_error", alpha)
    # No gradient run goes below the convex optimum...
    assert gd.min() >= est.objective_ * (1 - 1e-7)
    # ...and the best one reaches it.
    assert gd.min() <= est.objective_ * (1 + 1e-4)


@pytest.mark.parametrize("alpha", [0.5, 0.1])
def test_logistic_loss_convex_optimum_is_the_best_gradient_objective(alpha):
    X, Y = make_regression_data(n=12, d=2, seed=1)
    y = np.where(Y[:, 0] > np.median(Y[:, 0]), 1.0, -1.0)
    est = ConvexBNReLUClassifier(alpha=alpha, patterns="enumerate").fit(X, y)
    gd = _gradient_objectives(X, y[:, None], "log_loss", alpha)
    assert gd.min() >= est.objective_ * (1 - 1e-7)
    assert gd.min() <= est.objective_ * (1 + 1e-4)


def test_sampled_patterns_give_an_upper_bound():
    # Fewer patterns can only raise the optimum: with nested pattern sets the
    # objective is non-increasing and never below the enumerated optimum.
    X, Y = make_regression_data(n=12, d=2, seed=1)
    full = ConvexBNReLURegressor(alpha=0.1, patterns="enumerate").fit(X, Y)
    values = [
        ConvexBNReLURegressor(alpha=0.1, n_patterns=p, random_state=0)
        .fit(X, Y).objective_
        for p in (3, 10, 40)
    ]
    assert all(v >= full.objective_ * (1 - 1e-7) for v in values)
    assert values[0] >= values[1] * (1 - 1e-7) >= values[2] * (1 - 1e-7)


@pytest.mark.parametrize("loss", ["squared_error", "log_loss"])
@pytest.mark.parametrize("seed", [0, 1])
def test_certificate_of_the_estimators(loss, seed):
    # Reference: the optimum over every enumerated pattern.
    X, Y = make_regression_data(n=15, d=2, seed=seed)
    y = Y[:, 0]
    if loss == "log_loss":
        y = np.where(y > np.median(y), 1, 0)
        Estimator = ConvexBNReLUClassifier
    else:
        Estimator = ConvexBNReLURegressor
    ref = Estimator(alpha=0.2, patterns="enumerate").fit(X, y)
    # A handful of sampled patterns: an upper bound, honestly not certified,
    # with a lower bound below the true optimum.
    few = Estimator(alpha=0.2, n_patterns=3, random_state=seed).fit(X, y)
    assert few.objective_ > ref.objective_ * (1 + 1e-4)
    assert not few.certified_
    assert few.lower_bound_ <= ref.objective_ * (1 + 1e-7)
    assert few.optimality_gap_ >= (few.objective_ - ref.objective_) / few.objective_ - 1e-7
    # Column generation reaches the optimum with fewer patterns and says so.
    adaptive = Estimator(alpha=0.2, patterns="adaptive", n_patterns=5,
                         random_state=seed).fit(X, y)
    assert adaptive.objective_ == pytest.approx(ref.objective_, rel=1e-5)
    assert adaptive.n_patterns_ < ref.n_patterns_
    assert adaptive.lower_bound_ <= ref.objective_ * (1 + 1e-7)
    if loss == "squared_error":
        # Clarabel is accurate enough on the quadratic program to prove it.
        assert ref.certified_ and adaptive.certified_


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("loss", ["squared_error", "log_loss"])
def test_history_records_every_round(loss):
    X, Y = make_regression_data(n=15, d=2, seed=0)
    y = Y[:, 0]
    Estimator = ConvexBNReLURegressor
    if loss == "log_loss":
        y, Estimator = np.where(y > np.median(y), 1, 0), ConvexBNReLUClassifier
    ref = Estimator(alpha=0.2, patterns="enumerate").fit(X, y)
    t0 = time.perf_counter()
    adaptive = Estimator(alpha=0.2, patterns="adaptive", n_patterns=3,
                         random_state=0).fit(X, y)
    elapsed = time.perf_counter() - t0
    h = adaptive.history_
    assert len(h) == adaptive.n_rounds_ > 1
    for e in h:
        # Every round's network is feasible, so never below the optimum
        # over all patterns, whose lower bounds stay below it.
        assert e["objective"] >= ref.objective_ * (1 - 1e-7)
        assert e["lower_bound"] <= ref.objective_ * (1 + 1e-7)
    for a, b in zip(h, h[1:]):
        assert b["n_patterns"] == a["n_patterns"] + a["added"] - a["dropped"]
        assert a["added"] > 0
    times = [e["time"] for e in h]
    assert 0 < times[0] and np.all(np.diff(times) > 0) and times[-1] <= elapsed
    # The last round is the returned fit (objective_: a forward pass).
    assert h[-1]["objective"] == pytest.approx(adaptive.objective_, rel=1e-6)
    assert h[-1]["lower_bound"] == pytest.approx(adaptive.lower_bound_, rel=1e-12)
    assert h[0]["objective"] > h[-1]["objective"] * (1 + 1e-4)
    # One solve, one entry.
    single = Estimator(alpha=0.2, n_patterns=3, random_state=0).fit(X, y)
    assert len(single.history_) == 1
    assert single.history_[0]["n_patterns"] == single.n_patterns_
    assert single.history_[0]["objective"] == pytest.approx(single.objective_, rel=1e-6)
    assert single.history_[0]["lower_bound"] == pytest.approx(single.lower_bound_,
                                                              rel=1e-12)


NO_SEARCH = {"n_samples": 0, "n_starts": 0, "n_ascent": 0, "n_flip_rounds": 0}


@pytest.mark.parametrize("Estimator", [ConvexBNReLURegressor, ConvexBNReLUClassifier])
def test_certificate_options_set_the_search(Estimator):
    # Rank 6 at n = 120: too many patterns to enumerate, so the certificate
    # searches; 8 sampled patterns are far from enough.
    X, Y = make_regression_data(n=120, d=6, seed=0)
    y = Y[:, 0] if Estimator is ConvexBNReLURegressor else (Y[:, 0] > 0).astype(int)
    kw = dict(alpha=0.05, n_patterns=8, random_state=0, tol=1e-8, solver="torch")
    default = Estimator(**kw).fit(X, y)
    # Without a search only the program's own patterns are checked: the
    # estimate is then the duality gap of the sampled program, which the
    # solver closed, while the default search finds its violated patterns.
    restricted = Estimator(certificate_options=NO_SEARCH, **kw).fit(X, y)
    assert restricted.objective_ == pytest.approx(default.objective_, rel=1e-9)
    assert restricted.optimality_gap_ < 1e-6
    assert default.optimality_gap_ > 1e-2
    assert not default.certified_ and not restricted.certified_
    # Column generation without a search has no pattern to add: it stops
    # after its first round.
    adaptive = Estimator(patterns="adaptive", certificate_options=NO_SEARCH, **kw)
    assert adaptive.fit(X, y).n_rounds_ == 1
    assert adaptive.n_patterns_ <= 8


@pytest.mark.parametrize("patterns", ["sample", "adaptive"])
def test_adam_initial_patterns_contain_the_adam_network(monkeypatch, patterns):
    # The convex program over the warm-up network's activation patterns
    # contains that network, so the convex fit is at least as good as it
    # (objective of the warm-up network as computed by its torch training).
    from skbnconvex import _estimators

    trained = []

    def recording(*args, **kwargs):
        fit = train_bn_relu_network(*args, **kwargs)
        trained.append(fit)
        return fit

    monkeypatch.setattr(_estimators, "train_bn_relu_network", recording)
    rng = np.random.default_rng(0)
    X = rng.standard_normal((60, 6))
    y = np.sin(X @ rng.standard_normal(6)) + 0.1 * rng.standard_normal(60)
    est = ConvexBNReLURegressor(alpha=0.5, n_patterns=12, init="adam",
                                patterns=patterns, max_rounds=3,
                                random_state=0).fit(X, y)
    # The warm-up, then (adaptive) one run per round that did not end the
    # fit, from that round's network: its patterns join the next program,
    # which is therefore at least as good, and so is the final fit.
    assert len(trained) == (est.n_rounds_ if patterns == "adaptive" else 1)
    assert est.objective_ <= trained[0].objectives.min() * (1 + 1e-7)
    assert est.objective_ <= trained[-1].objectives.min() * (1 + 1e-7)
    for fit, entry in zip(trained[1:], est.history_):
        assert fit.history[0, 0] == pytest.approx(entry["objective"], rel=1e-5)
    random = ConvexBNReLURegressor(alpha=0.5, n_patterns=12, random_state=0).fit(X, y)
    assert est.objective_ < random.objective_


@pytest.mark.parametrize("loss_name", ["squared_error", "log_loss"])
def test_a_proposed_network_starts_the_next_round(loss_name):
    # column_generation's propose: the round after a proposal is at least as
    # good as the proposed network. Proposing the global optimum (over all
    # enumerated patterns) makes the second round optimal, which one
    # violated pattern per round does not.
    from skbnconvex._column_generation import column_generation, torch_solver
    from skbnconvex._losses import get_loss, program_targets
    from skbnconvex._patterns import enumerate_patterns
    from skbnconvex._program import ConvexProgram
    from skbnconvex._whitening import whiten

    X, Y = make_regression_data(n=15, d=2, seed=3)
    if loss_name == "log_loss":
        Y = np.where(Y > np.median(Y), 1.0, -1.0)
    wh = whiten(X)
    loss = get_loss(loss_name, 1)
    Yc = program_targets(loss, Y)
    beta = 0.2 / np.sqrt(len(X))
    D_all = enumerate_patterns(wh.Ut)
    full = ConvexProgram(wh.Ut, D_all, Yc, loss, beta)
    opt = torch_solver(tol=1e-10)(full)
    # The optimum as a network: one neuron per non-zero block, BN outputs
    # Ut a and read-out +-1. Every non-zero block: the certificate's dual
    # point is scaled by beta / M, first-order sensitive to a dropped small
    # block (one below 1e-9 of the largest left a gap of 2.7e-8 > tol).
    Z, out = [], []
    for W, sign in ((opt.Wp[0], 1.0), (opt.Wn[0], -1.0)):
        for a in W[np.linalg.norm(W, axis=1) > 0]:
            Z.append(wh.Ut @ a)
            out.append(sign)
    Z, out = np.column_stack(Z), np.array(out)[:, None]
    calls = []

    def propose(program, result):
        calls.append(result.objective)
        return Z, out

    kw = dict(n_initial=2, max_rounds=2, patterns_per_round=1, tol=1e-8,
              certificate_mode="exact", random_state=0)
    solve = torch_solver(tol=1e-8)
    with_proposal = column_generation(wh.Ut, Yc, loss, beta, solve, propose=propose, **kw)
    without = column_generation(wh.Ut, Yc, loss, beta, solve, **kw)
    assert len(calls) == 1
    h = with_proposal.history
    assert calls[0] == pytest.approx(h[0]["objective"], rel=1e-12)
    assert h[1]["objective"] == pytest.approx(opt.objective, rel=1e-6)
    assert with_proposal.certificate.certified
    assert without.history[1]["objective"] > opt.objective * (1 + 1e-3)
    # The starting point of that round: the proposal's blocks when they are
    # better than the previous round's, else the previous ones.
    from skbnconvex._column_generation import _better_start

    zeros = (np.zeros((1, 2, full.k)),) * 2
    start = _better_start(wh.Ut, D_all, Yc, loss, beta, zeros, (Z, out))
    assert full.objective(*start) == pytest.approx(opt.objective, rel=1e-9)
    start = _better_start(wh.Ut, D_all, Yc, loss, beta, (opt.Wp, opt.Wn),
                          (Z, 0.5 * out))
    np.testing.assert_allclose(start[0], opt.Wp, atol=1e-12)
    np.testing.assert_allclose(start[1], opt.Wn, atol=1e-12)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_gradient_proposals_with_several_classes(monkeypatch):
    # Three classes (multinomial loss, one read-out per class): the Adam
    # runs start from each round's network (their step-0 objective is the
    # round's), and the final fit is at least as good as the last of them.
    from skbnconvex import _estimators

    trained = []

    def recording(*args, **kwargs):
        fit = train_bn_relu_network(*args, **kwargs)
        trained.append(fit)
        return fit

    monkeypatch.setattr(_estimators, "train_bn_relu_network", recording)
    rng = np.random.default_rng(1)
    X = rng.standard_normal((90, 5))
    y = np.digitize(np.sin(X @ rng.standard_normal(5)), [-0.3, 0.3])
    est = ConvexBNReLUClassifier(alpha=0.3, n_patterns=12, init="adam",
                                 patterns="adaptive", max_rounds=3,
                                 random_state=0).fit(X, y)
    assert est.n_rounds_ == 3 and len(trained) == 3
    for fit, entry in zip(trained[1:], est.history_):
        assert fit.history[0, 0] == pytest.approx(entry["objective"], rel=1e-5)
    assert est.objective_ <= trained[-1].objectives.min() * (1 + 1e-7)
    assert est.history_[-1]["objective"] < est.history_[0]["objective"]
