import numpy as np
import pytest


def pytest_configure(config):
    # Two cores: tests run one torch thread so parallel work does not thrash.
    import torch

    torch.set_num_threads(1)


def pytest_collection_modifyitems(config, items):
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs CUDA (torch.cuda.is_available() is false)")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


def make_regression_data(n=12, d=2, n_outputs=1, seed=0):
    """Small smooth non-linear regression data."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    Y = np.column_stack(
        [np.sin(3 * X[:, 0] + c) + X[:, -1] ** 2 for c in range(n_outputs)]
    )
    return X, Y
