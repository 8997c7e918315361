"""Reference solver: program (C) written in cvxpy, solved by a conic solver.

Interior-point solvers such as Clarabel (the default) solve (C) to high
accuracy, which makes this backend the exact reference of the package; its
cost grows quickly with ``n_samples * n_patterns * k`` (the number of
non-zeros of the cone constraints), so it suits small and medium problems.
"""

# Authors: the skbnconvex developers
# License: BSD 3 clause

import warnings

import numpy as np

from .._patterns import pattern_signs
from ._base import SolverError, SolverResult

# Clarabel's defaults fail on some exponential-cone (logistic) programs;
# a shorter step fixed most of them (MATH.md section 4).
_EXP_CONE_DEFAULTS = {"max_step_fraction": 0.8}


def _build(program, cols):
    """Build the cvxpy problem of (C) restricted to the outputs ``cols``."""
    import cvxpy as cp

    Ut, D = program.Ut, program.D
    k, P = program.k, program.n_patterns
    signs = pattern_signs(D)
    Dm = D.astype(np.float64)
    variables, outputs, constraints, penalty = [], [], [], 0
    for _ in cols:
        Ap, An = cp.Variable((k, P)), cp.Variable((k, P))
        Gp, Gn = Ut @ Ap, Ut @ An
        constraints += [cp.multiply(signs, Gp) >= 0, cp.multiply(signs, Gn) >= 0]
        outputs.append(cp.sum(cp.multiply(Dm, Gp - Gn), axis=1))
        penalty = penalty + cp.sum(cp.norm(Ap, 2, axis=0)) + cp.sum(
            cp.norm(An, 2, axis=0)
        )
        variables.append((Ap, An))
    F = cp.vstack(outputs).T if len(cols) > 1 else cp.reshape(outputs[0], (-1, 1), order="C")
    loss = program.loss.cvxpy_value(
        F, program.Y[:, cols], n_outputs=program.n_outputs
    ) if program.loss.separable else program.loss.cvxpy_value(F, program.Y)
    problem = cp.Problem(cp.Minimize(loss + program.beta * penalty), constraints)
    return problem, variables


def _solve_once(problem, solver, options, verbose):
    """Solve; return (status, n_iter) or raise cvxpy's SolverError."""
    with warnings.catch_warnings():
        # The status says it; the estimator warns with what to do.
        warnings.filterwarnings("ignore", "Solution may be inaccurate")
        problem.solve(solver=solver, verbose=verbose, **options)
    stats = problem.solver_stats
    n_iter = int(stats.num_iters) if stats and stats.num_iters is not None else 0
    return problem.status, n_iter


def solve_cvxpy(program, *, max_iter=None, tol=None, solver_options=None,
                verbose=False):
    """Solve program (C) with cvxpy.

    Separable losses (squared error, binary logistic) give one independent
    program per output; the multinomial loss gives one joint program.

    Parameters
    ----------
    program : ConvexProgram
    max_iter : int, default=None
        Iteration cap passed to Clarabel (ignored by other solvers unless
        given in ``solver_options`` under that solver's own name).
    tol : float, default=None
        Passed to Clarabel as ``tol_gap_abs``, ``tol_gap_rel`` and
        ``tol_feas``, capped at Clarabel's default 1e-8.
    solver_options : dict, default=None
        ``{"solver": NAME, **kwargs}``: any conic solver installed for cvxpy
        and its keyword arguments, e.g. ``{"solver": "SCS", "eps": 1e-9}``.
        Entries override the ones derived from ``max_iter`` and ``tol``.
    verbose : bool, default=False
        Print the solver's log.

    Returns
    -------
    result : SolverResult

    Raises
    ------
    SolverError
        When the solver fails; the message names it and what to try.
    """
    import cvxpy as cp

    options = dict(solver_options or {})
    named = "solver" in options
    solver = str(options.pop("solver", "CLARABEL")).upper()
    if solver == "CLARABEL":
        if program.loss.name == "log_loss":
            options = {**_EXP_CONE_DEFAULTS, **options}
        derived = {}
        if max_iter is not None:
            derived["max_iter"] = int(max_iter)
        if tol is not None:
            # An interior-point method gets from 1e-6 to 1e-8 in a few
            # iterations, and looser stops leave visible non-zero blocks.
            tol = min(tol, 1e-8)
            derived.update(tol_gap_abs=tol, tol_gap_rel=tol, tol_feas=tol)
        options = {**derived, **options}

    groups = (
        [[c] for c in range(program.n_outputs)]
        if program.loss.separable
        else [list(range(program.n_outputs))]
    )
    Wp, Wn = program.zeros()
    n_iter, converged, messages = 0, True, []
    for cols in groups:
        problem, variables = _build(program, cols)
        try:
            status, it = _solve_once(problem, solver, options, verbose)
        except cp.SolverError as exc:
            status, it = f"error ({exc})", 0
        # An iteration cap is not a failure: keep the iterate, report it.
        usable = (cp.OPTIMAL, cp.OPTIMAL_INACCURATE, cp.USER_LIMIT)
        if status == cp.USER_LIMIT and variables[0][0].value is None:
            usable = (cp.OPTIMAL, cp.OPTIMAL_INACCURATE)
        if status not in usable and not named:
            # The default solver failed: SCS (first-order conic) is installed
            # with cvxpy and succeeds on the programs where Clarabel stalls.
            warnings.warn(
                f"cvxpy solver {solver} failed (status: {status}); retrying "
                "with SCS.",
                RuntimeWarning,
                stacklevel=3,
            )
            scs_eps = 1e-9 if tol is None else min(tol, 1e-6)
            try:
                status, it = _solve_once(
                    problem, "SCS", {"eps": scs_eps, "max_iters": 100_000}, verbose
                )
            except cp.SolverError as exc:
                status = f"error ({exc})"
        if status not in usable:
            raise SolverError(
                f"cvxpy solver {solver} failed on the convex program "
                f"(status: {status}). Try another solver, e.g. "
                "solver_options={'solver': 'SCS'}, a larger alpha, "
                "standardising X, or solver='torch'."
            )
        converged &= status == cp.OPTIMAL
        messages.append(status)
        n_iter += it
        for c, (Ap, An) in zip(cols, variables):
            Wp[c], Wn[c] = Ap.value.T, An.value.T
    objective = program.objective(Wp, Wn)
    message = ", ".join(sorted(set(messages)))
    if not converged:
        # Clarabel reports "almost solved" on badly scaled data even when
        # its point is accurate; judge by the duality gap of (C) over the
        # program's own patterns instead of the status.
        gap = _restricted_gap(program, Wp, Wn, objective)
        converged = gap <= (1e-6 if tol is None else tol)
        message += f", duality gap over the patterns {gap:.1e}"
    return SolverResult(
        Wp=Wp,
        Wn=Wn,
        objective=objective,
        n_iter=n_iter,
        converged=bool(converged),
        message=message,
    )


def _restricted_gap(program, Wp, Wn, objective):
    """Relative duality gap of (C) over its own patterns (exact oracle)."""
    from .._certificate import optimality_certificate

    certificate = optimality_certificate(
        program.Ut, program.predict(Wp, Wn), program.Y, program.loss,
        program.beta, primal=objective, patterns=program.D,
        all_patterns=program.D, mode="exact",
    )
    return max(certificate.gap, 0.0)
