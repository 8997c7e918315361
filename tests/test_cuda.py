"""The torch solver and the estimators on CUDA, against CPU and Clarabel.

Every test here is marked ``gpu`` and skipped where
``torch.cuda.is_available()`` is false (``conftest.py``). The references
are independent of the CUDA path: Clarabel's optimum, the same fit on CPU,
and the recovered network's forward pass in numpy.
"""

import numpy as np
import pytest
import torch

import skbnconvex._solvers._torch as torch_solver
from skbnconvex import ConvexBNReLUClassifier, ConvexBNReLURegressor
from skbnconvex._solvers._cvxpy import solve_cvxpy
from skbnconvex._solvers._torch import solve_torch

from .conftest import make_regression_data
from .test_barrier import small_alpha_program
from .test_torch_solver import CASES, references  # noqa: F401 (fixture)

pytestmark = pytest.mark.gpu


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c[0]}-C{c[1]}-b{c[2]}")
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["f64", "f32"])
def test_cuda_solver_matches_clarabel(references, case, dtype):  # noqa: F811
    prog, ref = references[case]
    tol = 1e-8 if dtype == torch.float64 else 1e-5
    res = solve_torch(prog, tol=tol, max_iter=50000, device="cuda", dtype=dtype)
    # The returned point is float64 on the host and feasible whatever the
    # working precision (the final clean-up projects in float64).
    assert isinstance(res.Wp, np.ndarray) and res.Wp.dtype == np.float64
    assert prog.cone_violation(res.Wp, res.Wn) <= 1e-8
    assert res.objective == pytest.approx(prog.objective(res.Wp, res.Wn), rel=1e-12)
    rtol = 1e-6 if dtype == torch.float64 else 1e-4
    assert abs(res.objective - ref) <= rtol * abs(ref)


@pytest.mark.parametrize("case", CASES[:1] + CASES[3:4], ids=["squared", "binary"])
def test_cuda_barrier_matches_clarabel(references, case, monkeypatch):  # noqa: F811
    # The interior-point path on every working set, on the device.
    monkeypatch.setattr(torch_solver, "_STALL_CHECKS", 0)
    prog, ref = references[case]
    res = solve_torch(prog, tol=1e-8, max_iter=50000, device="cuda")
    assert res.converged, res.message
    assert res.objective == pytest.approx(ref, rel=1e-6)
    assert prog.cone_violation(res.Wp, res.Wn) <= 1e-8


def test_cuda_small_alpha_real_data():
    # Diabetes at small alpha: FISTA stalls and the barrier finishes the
    # solve (test_barrier.py checks that on CPU); the device must agree with
    # Clarabel just the same.
    prog = small_alpha_program()
    ref = solve_cvxpy(prog, tol=1e-10).objective
    res = solve_torch(prog, tol=1e-8, max_iter=20000, device="cuda")
    assert res.converged, res.message
    assert res.objective == pytest.approx(ref, rel=1e-7)
    assert prog.cone_violation(res.Wp, res.Wn) <= 1e-8


def _forward(est, X):
    """The recovered network's forward pass, written out in numpy."""
    H = X @ est.hidden_weights_
    H = (H - est.bn_running_mean_) / np.sqrt(est.bn_running_var_)
    return np.maximum(H * est.bn_weight_ + est.bn_bias_, 0) @ est.output_weights_


def _data(kind, n=150, d=5, seed=0):
    X, Y = make_regression_data(n=n, d=d, seed=seed)
    if kind == "regressor":
        return X, Y[:, 0]
    return X, np.digitize(Y[:, 0], np.quantile(Y[:, 0], [1 / 3, 2 / 3]))


@pytest.mark.parametrize("kind", ["regressor", "classifier"])
def test_cuda_fit_equals_the_cpu_fit(kind):
    X, y = _data(kind)
    Estimator = ConvexBNReLURegressor if kind == "regressor" else ConvexBNReLUClassifier
    kw = dict(alpha=0.05, n_patterns=40, solver="torch", tol=1e-8, random_state=0)
    cpu = Estimator(**kw).fit(X, y)
    gpu = Estimator(device="cuda", **kw).fit(X, y)
    assert gpu.objective_ == pytest.approx(cpu.objective_, rel=1e-6)
    out = gpu.predict(X) if kind == "regressor" else gpu.decision_function(X)
    ref = cpu.predict(X) if kind == "regressor" else cpu.decision_function(X)
    np.testing.assert_allclose(out, ref, atol=1e-4 * np.abs(ref).max())
    # The fitted attributes are host arrays and describe the network that
    # predicts: the numpy forward pass gives the same outputs.
    forward = _forward(gpu, X)
    np.testing.assert_allclose(forward.reshape(out.shape), out, rtol=1e-9, atol=1e-12)


def test_cuda_float32_fit_is_feasible_and_close():
    X, y = _data("regressor")
    kw = dict(alpha=0.05, n_patterns=40, solver="torch", tol=1e-5, random_state=0)
    ref = ConvexBNReLURegressor(**kw).fit(X, y)
    f32 = ConvexBNReLURegressor(
        device="cuda", solver_options={"dtype": "float32"}, **kw
    )
    f32.fit(X, y)
    # objective_ is the recovered network's forward pass: a float32 solve
    # that broke a constraint would not reproduce its convex objective.
    assert f32.objective_ == pytest.approx(ref.objective_, rel=1e-4)


def test_cuda_warm_start_reaches_the_cold_optimum():
    X, y = _data("regressor")
    kw = dict(n_patterns=40, solver="torch", tol=1e-7, random_state=0, device="cuda")
    warm = ConvexBNReLURegressor(warm_start=True, **kw)
    for alpha in (0.2, 0.05):
        warm.set_params(alpha=alpha).fit(X, y)
    cold = ConvexBNReLURegressor(alpha=0.05, **kw).fit(X, y)
    assert warm.objective_ == pytest.approx(cold.objective_, rel=1e-6)


def test_cuda_adaptive_patterns_certify_the_optimum():
    # Rank 2: the certificate enumerates every pattern, so certified_ is a
    # proof; the CPU fit is the reference.
    X, y = _data("regressor", n=30, d=2)
    kw = dict(alpha=0.2, patterns="adaptive", n_patterns=5, solver="torch",
              tol=1e-6, random_state=0)
    cpu = ConvexBNReLURegressor(**kw).fit(X, y)
    gpu = ConvexBNReLURegressor(device="cuda", **kw).fit(X, y)
    assert cpu.certified_ and gpu.certified_
    assert gpu.objective_ == pytest.approx(cpu.objective_, rel=1e-6)


def test_cuda_export_predicts_like_the_estimator():
    X, y = _data("classifier")
    clf = ConvexBNReLUClassifier(alpha=0.05, n_patterns=40, solver="torch",
                                 device="cuda", random_state=0).fit(X, y)
    module = clf.to_torch().to("cuda")
    with torch.no_grad():
        out = module(torch.as_tensor(X, device="cuda")).cpu().numpy()
    np.testing.assert_allclose(out, clf.decision_function(X), rtol=1e-8, atol=1e-10)
