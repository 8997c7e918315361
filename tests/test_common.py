"""scikit-learn's estimator checks on both estimators."""

from sklearn.utils.estimator_checks import parametrize_with_checks

from skbnconvex import ConvexBNReLUClassifier, ConvexBNReLURegressor

# Small pattern counts keep the many fits of the checks fast; the checks
# exercise the API, not the optimum.
ESTIMATORS = [
    ConvexBNReLURegressor(n_patterns=10, random_state=0),
    ConvexBNReLUClassifier(n_patterns=10, random_state=0),
]


@parametrize_with_checks(ESTIMATORS)
def test_sklearn_compatible_estimator(estimator, check):
    check(estimator)
