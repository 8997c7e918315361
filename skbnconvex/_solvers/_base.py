"""What every solver of program (C) returns."""

# Authors: the skbnconvex developers
# License: BSD 3 clause

from dataclasses import dataclass

import numpy as np


@dataclass
class SolverResult:
    """Solution of program (C) as found by a solver.

    Attributes
    ----------
    Wp, Wn : ndarray of shape (n_outputs, n_patterns, k)
        The blocks ``a`` and ``b`` of the program.
    objective : float
        Value of (C) at ``(Wp, Wn)``, computed by
        :meth:`ConvexProgram.objective`.
    n_iter : int
        Iterations the solver took (summed over independent sub-programs).
    converged : bool
        Whether the solver met its tolerance.
    message : str
        Solver status in words, for warnings and errors.
    """

    Wp: np.ndarray
    Wn: np.ndarray
    objective: float
    n_iter: int
    converged: bool
    message: str = ""


class SolverError(RuntimeError):
    """A solver failed on program (C); the message says what to try."""
