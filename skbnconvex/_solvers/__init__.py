"""Solvers of the convex program (C)."""

from ._base import SolverError, SolverResult
from ._cvxpy import solve_cvxpy

__all__ = ["SolverError", "SolverResult", "solve_cvxpy"]
