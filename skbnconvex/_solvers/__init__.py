"""Solvers of the convex program (C).

``solve_cvxpy`` (interior point, the exact reference) is exported here;
``solve_torch`` lives in :mod:`skbnconvex._solvers._torch`, imported on
first use so that importing the package does not import torch.
"""

from ._base import SolverError, SolverResult
from ._cvxpy import solve_cvxpy

__all__ = ["SolverError", "SolverResult", "solve_cvxpy"]
