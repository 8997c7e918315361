"""Public docstrings document exactly the parameters and fitted attributes."""

import inspect

import numpy as np
import pytest
from numpydoc.docscrape import ClassDoc

from skbnconvex import ConvexBNReLUClassifier, ConvexBNReLURegressor


@pytest.mark.parametrize("Estimator", [ConvexBNReLURegressor, ConvexBNReLUClassifier])
def test_parameters_and_attributes_are_documented(Estimator):
    doc = ClassDoc(Estimator)
    documented = [p.name for p in doc["Parameters"]]
    signature = list(inspect.signature(Estimator).parameters)
    assert documented == signature

    rng = np.random.default_rng(0)
    X = rng.standard_normal((20, 3))
    y = X[:, 0] > 0 if Estimator is ConvexBNReLUClassifier else X[:, 0]
    est = Estimator(alpha=1.0, n_patterns=5, random_state=0).fit(X, y)
    fitted = {a for a in vars(est) if a.endswith("_") and not a.startswith("_")}
    attributes = {a.name for a in doc["Attributes"]}
    assert fitted <= attributes, f"undocumented: {fitted - attributes}"
    assert attributes - fitted <= {"feature_names_in_"}
