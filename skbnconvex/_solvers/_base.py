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
    tol : float or None
        The relative duality gap the solver was asked to reach (torch);
        None where the accuracy is the solver's own (cvxpy).
    dual_bounds : ndarray of shape (n_outputs, 2, n_patterns) or None
        Upper bounds of the dual-constraint norms
        ``||P_K(+-U'^T D_i lam_c)||`` (sign ``+`` first) at the returned
        point, ``lam = -grad L(F)``, from the solver's last duality-gap
        check (torch in float64); None where the solver has none. The
        optimality certificate starts from them for the program's own
        patterns.
    """

    Wp: np.ndarray
    Wn: np.ndarray
    objective: float
    n_iter: int
    converged: bool
    message: str = ""
    tol: float = None
    dual_bounds: np.ndarray = None


class SolverError(RuntimeError):
    """A solver failed on program (C); the message says what to try."""


def available_memory():
    """Bytes of memory available to a new allocation (Linux), or None."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        import os

        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def memory_estimate(program, solver, itemsize=8):
    """Rough peak memory in bytes of solving ``program`` with ``solver``.

    cvxpy: the cone constraints have about ``3 n P k`` non-zeros per
    sub-program, and cvxpy with Clarabel took about 115 bytes per non-zero
    to compile and solve (3.5 GB at n=1000, P=200, k=51). torch: the
    pattern masks and a few ``n x P`` work arrays per output.
    """
    n, P, k, C = (program.n_samples, program.n_patterns, program.k,
                  program.n_outputs)
    if solver == "cvxpy":
        joint = 1 if program.loss.separable else C
        return 115 * 3 * n * P * k * joint
    return itemsize * n * P * (2 + 2 * C)


def check_memory(program, solver, itemsize=8):
    """Refuse a program that would not fit in memory, with the estimate."""
    need = memory_estimate(program, solver, itemsize)
    have = available_memory()
    if have is not None and need > have:
        raise MemoryError(
            f"Solving this program with solver={solver!r} needs about "
            f"{need / 2**30:.1f} GiB ({program.n_samples} samples x "
            f"{program.n_patterns} patterns x rank+1={program.k} x "
            f"{program.n_outputs} outputs) but about {have / 2**30:.1f} GiB "
            "is available. Use fewer patterns (n_patterns, max_patterns), "
            "solver='torch' (which needs less), or fewer samples."
        )
