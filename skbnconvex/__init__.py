"""skbnconvex: two-layer BN-ReLU networks trained to their global optimum.

scikit-learn estimators for the exact convex reformulation of
weight-decay-regularised ReLU networks with batch normalisation
(Ergen et al., ICLR 2022).
"""

# Authors: the skbnconvex developers
# License: BSD 3 clause

from ._cv import ConvexBNReLUClassifierCV, ConvexBNReLURegressorCV
from ._estimators import ConvexBNReLUClassifier, ConvexBNReLURegressor
from ._path import bn_relu_alpha_max, bn_relu_path
from ._solvers import SolverError

__version__ = "0.1.0.dev0"

__all__ = [
    "ConvexBNReLUClassifier",
    "ConvexBNReLUClassifierCV",
    "ConvexBNReLURegressor",
    "ConvexBNReLURegressorCV",
    "SolverError",
    "bn_relu_alpha_max",
    "bn_relu_path",
    "__version__",
]
