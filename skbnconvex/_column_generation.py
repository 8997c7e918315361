r"""Column generation over activation patterns, stopped by a certificate.

Program (C) restricted to a set of patterns is an upper bound of the global
optimum. Its dual point ``lam = -grad L(F)`` is feasible for the full program
iff no pattern violates ``||P_{K_D}(+-U'^T D lam_c)|| <= beta``
(:mod:`skbnconvex._certificate`). Column generation therefore alternates:

1. solve (C) on the current patterns (warm-started from the previous blocks,
   padded with zeros for the new patterns). While the last gap is large,
   only to ``_INEXACT`` times that gap (not to ``tol``): a new round
   changes the program anyway, and its violators only need a dual point
   good to a fraction of the gap (the gap and lower bound stay valid for
   any point). The last round allowed, and a round after one whose point
   showed no new violated pattern, are solved to ``tol`` (with proposals
   of networks, every round but a re-solve is inexact: see ``propose``);
2. compute the certificate: the most violated patterns, a dual lower bound
   and the relative gap;
3. stop when certified (exact mode, at a point solved to ``tol``) or when
   the gap is below ``tol``;
   otherwise add the most violated patterns (deduplicated) and drop the
   patterns whose blocks stayed zero for ``drop_after`` rounds, to keep the
   program small.

A violated pattern is exactly a column of negative reduced cost in the
sense of linear programming: adding it decreases the objective unless the
step is degenerate. At small rank the oracle is exact and the loop ends with
a proof of global optimality; at realistic rank the oracle is a search and
the gap is an estimate.
"""

# Authors: the skbnconvex developers
# License: BSD 3 clause

import time
import warnings
from dataclasses import dataclass, field

import numpy as np
from sklearn.utils import check_random_state

from ._certificate import EXACT_MAX_PATTERNS, optimality_certificate
from ._patterns import enumerate_patterns, sample_patterns, unique_patterns
from ._patterns import max_patterns as _pattern_count_bound
from ._program import ConvexProgram
from ._recovery import blocks_from_network

# Intermediate rounds are solved to this fraction of the last gap (relative
# duality gap of the restricted program; never below ``tol``).
_INEXACT = 0.01
# Search effort of the certificates of the rounds that a proposal follows
# (search mode only; each value at most the caller's): there the proposed
# network brings most of the next round's patterns (synthetic n = 500,
# d = 20: 40-190 a round against the certificate's 5 violators), and the
# default search took half of every round. With this one (estimators,
# init="adam", ten rounds, one thread, seeds 0 / 1): that problem 20.9 /
# 22.8 s instead of 33.8 / 31.3 s, objective 0.007081 / 0.007083 instead
# of 0.007079 / 0.007097; breast cancer 27.7 / 16.1 s instead of 39.5 /
# 29.1 s, 0.041156 / 0.041016 instead of 0.041036 / 0.041031; red wine
# (seed 0) 118 s instead of 142 s, 0.077249 instead of 0.077082: the same
# objectives to 0.3%, one way or the other. The round that ends the loop,
# and any round whose light search finds no new violated pattern or a gap
# within ``tol``, gets the full search before the loop decides on it.
_ROUND_SEARCH = dict(
    n_samples=200, n_starts=8, n_ascent=10, n_flip_rounds=1, max_checks=50
)


@dataclass
class ColumnGenerationResult:
    """Outcome of :func:`column_generation`.

    Attributes
    ----------
    patterns : ndarray of bool, shape (n_samples, n_patterns)
        Patterns of the final program.
    result : SolverResult
        Solution of the final program (blocks aligned with ``patterns``).
    certificate : Certificate
        Certificate of the final solution.
    history : list of dict
        One entry per round: ``n_patterns``, ``objective`` (of (C)),
        ``lower_bound``, ``gap``, ``M`` (max over outputs), ``added``,
        ``dropped``, ``time`` (seconds since the start when the round's
        solution and certificate were ready, before the next round's
        proposal).
    converged : bool
        Whether the loop stopped on the certificate or the gap (not on the
        budget or a stall).
    message : str
        Why the loop stopped.
    """

    patterns: np.ndarray
    result: object
    certificate: object
    history: list = field(default_factory=list)
    converged: bool = False
    message: str = ""

    @property
    def n_rounds(self):
        return len(self.history)


def cvxpy_solver(**options):
    """Wrap :func:`solve_cvxpy` as ``solve(program, W0, tol)`` (no warm start).

    The interior-point method's cost hardly depends on its tolerance: a
    ``tol`` per round is ignored, the ``options`` are used throughout (and
    the results report no ``tol``: every round counts as final).
    """
    from ._solvers import solve_cvxpy

    def solve(program, W0=None, tol=None):
        # Tight tolerances end in Clarabel's "almost solved" status, which
        # cvxpy reports with a warning; the certificate judges the result.
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Solution may be inaccurate")
            return solve_cvxpy(program, **options)

    return solve


def torch_solver(**options):
    """Wrap ``solve_torch`` as ``solve(program, W0, tol)`` with warm start.

    ``tol`` of a round, when given, replaces that of ``options``.
    """
    from ._solvers._torch import solve_torch

    def solve(program, W0=None, tol=None):
        kwargs = dict(options) if tol is None else {**options, "tol": tol}
        return solve_torch(program, W0=W0, **kwargs)

    return solve


def column_generation(
    Ut,
    Y,
    loss,
    beta,
    solve=None,
    *,
    n_initial=10,
    initial_patterns=None,
    initial_blocks=None,
    max_patterns=None,
    max_rounds=30,
    patterns_per_round=5,
    tol=1e-6,
    drop_after=3,
    prune_tol=1e-6,
    certificate_mode="auto",
    certificate_options=None,
    propose=None,
    random_state=None,
    verbose=0,
):
    r"""Solve program (C) by adding violated activation patterns.

    Parameters
    ----------
    Ut : ndarray of shape (n_samples, k)
        Whitened data.
    Y : ndarray of shape (n_samples, n_outputs)
        Targets coded for ``loss``.
    loss : loss object
    beta : float
        Weight of the group penalty (``alpha / sqrt(n_samples)``).
    solve : callable, default=None
        ``solve(program, W0, tol) -> SolverResult`` where ``W0`` is ``None``
        or blocks ``(Wp, Wn)`` for the first ``P0`` patterns of ``program``,
        and ``tol`` the relative gap to solve it to (None: the solver's
        own, final accuracy). Defaults to ``cvxpy_solver(tol=1e-10)`` (``W0``
        and ``tol`` ignored).
    n_initial : int, default=10
        Sampled patterns of the first program (ignored when
        ``initial_patterns`` is given).
    initial_patterns : ndarray of bool, default=None
        Patterns of the first program.
    initial_blocks : tuple of ndarray, default=None
        Starting blocks ``(Wp, Wn)`` of the first solve, for the first
        patterns of ``initial_patterns`` (a warm start or the blocks of an
        Adam-trained network); ignored when the initial patterns had
        duplicates or empty columns (their order would not match).
    max_patterns : int, default=None
        Budget on the number of patterns of a program; None for no limit.
    max_rounds : int, default=30
        Budget on the number of solves.
    patterns_per_round : int, default=5
        Most violated patterns added per round.
    tol : float, default=1e-6
        Stop when the relative gap (primal minus dual lower bound, over the
        primal) is at most ``tol``, or when the exact certificate holds:
        ``max_c M_c <= beta (1 + tol)``.
    drop_after : int, default=3
        Drop a pattern whose blocks were all zero (norm ``<= prune_tol``
        times the largest block) in that many consecutive rounds; 0 never
        drops. The certificate checks all patterns, so a dropped pattern
        comes back if it is needed.
    prune_tol : float, default=1e-6
        Relative norm under which a block counts as zero.
    certificate_mode : {"auto", "exact", "search"}, default="auto"
        Oracle of the certificate; ``"auto"`` enumerates all patterns once
        when at most ``EXACT_MAX_PATTERNS`` may exist.
    certificate_options : dict, default=None
        Extra keyword arguments of :func:`optimality_certificate`
        (``n_samples``, ``n_starts``, ...). With ``propose``, in search
        mode, the rounds that a proposal follows use a smaller search (at
        most ``_ROUND_SEARCH``): their gaps in ``history`` are rougher
        estimates; the last round's certificate, the one returned, uses
        these options.
    propose : callable, default=None
        A second source of patterns, beside the certificate's violators:
        ``propose(program, result) -> (Z, output)`` or None, called after
        every round that does not end the loop, returns a network near the
        round's solution (in the estimators, the recovered network after a
        few hundred Adam steps), as the BN outputs ``Z`` of its neurons on
        the training rows (scaled like ``Ut``) and its output weights
        (see :func:`~skbnconvex._recovery.blocks_from_network`). Its
        activation patterns join the next program, and when its blocks
        have a lower objective than the round's solution they are the next
        solve's starting point: a round is then at least as good as the
        proposed network. Every round is then solved inexactly (the first
        asked for ``tol``, the others for a fraction of the last gap; the
        estimators' ``solve`` gives such rounds a budget of iterations),
        the last one too, unless it is the only one; a point where the
        certificate finds nothing is still solved to ``tol`` before the
        loop stops on it.
    random_state : int, RandomState instance or None, default=None
    verbose : int, default=0
        Print one line per round.

    Returns
    -------
    result : ColumnGenerationResult
    """
    rng = check_random_state(random_state)
    n, k = Ut.shape
    # Tight tolerances: the certificate needs an accurate dual point, and
    # interior-point iterations are cheap near the optimum.
    solve = cvxpy_solver(tol=1e-10) if solve is None else solve
    options = dict(certificate_options or {})
    light_options = {
        **options,
        **{key: min(v, options.get(key, v)) for key, v in _ROUND_SEARCH.items()},
    }
    budget = np.inf if max_patterns is None else int(max_patterns)

    all_patterns = None
    exact = certificate_mode == "exact" or (
        certificate_mode == "auto" and max_patterns_bound(n, k) <= EXACT_MAX_PATTERNS
    )
    if exact:
        # Enumerated once: every round's exact oracle scans the same set.
        all_patterns = enumerate_patterns(
            Ut, max_count=max(EXACT_MAX_PATTERNS, max_patterns_bound(n, k))
        )

    if initial_patterns is None:
        D = sample_patterns(Ut, n_initial, rng)
    else:
        D = unique_patterns(initial_patterns)
    if np.isfinite(budget):
        D = D[:, : int(budget)]
    zero_rounds = np.zeros(D.shape[1], dtype=int)

    start = time.perf_counter()
    history = []
    W0 = None
    if initial_blocks is not None and initial_patterns is not None:
        # Blocks of the given patterns, in the order kept above (unique
        # patterns keep their first occurrences; a budget cuts the end).
        P0 = min(D.shape[1], initial_blocks[0].shape[1])
        if np.array_equal(D[:, :P0], np.asarray(initial_patterns, bool)[:, :P0]):
            W0 = tuple(np.asarray(w)[:, :P0] for w in initial_blocks)
    converged, message = False, ""
    # None: the solver's final accuracy. With proposals every round is
    # inexact, the first and the last too: the next proposal, or the
    # certificate's gap, dwarfs what an exact solve of the restricted
    # program would add (red wine, 2 000 patterns: 460 s; the first round
    # of breast cancer took 417 iterations to tol=1e-6: on the estimators'
    # 100, three seeds each of breast cancer and a synthetic problem
    # finished their second round 0-3 s sooner, lower in 5 of the 6 fits).
    round_tol = tol if propose is not None and max_rounds > 1 else None
    for round_ in range(max_rounds):
        program = ConvexProgram(Ut, D, Y, loss, beta)
        if round_ == max_rounds - 1 and propose is None:
            round_tol = None  # the result of the last round is returned
        result = solve(program, W0, tol=round_tol)
        # Solved to less than the final accuracy: to a looser tol, or not
        # to its tol within a budget (solvers that ignore a round's tol,
        # like cvxpy, report no tol and count as final).
        inexact = (
            round_tol is not None
            and result.tol is not None
            and (result.tol > tol or not result.converged)
        )
        point = dict(
            primal=result.objective,
            patterns=D,
            pattern_bounds=result.dual_bounds,
            blocks=(result.Wp, result.Wn),
            all_patterns=all_patterns,
            mode="exact" if exact else "search",
            n_violators=patterns_per_round,
            tol=tol,
            random_state=rng,
        )
        F = program.predict(result.Wp, result.Wn)
        light = propose is not None and not exact and round_ < max_rounds - 1
        cert = optimality_certificate(
            Ut, F, Y, loss, beta, **point, **(light_options if light else options)
        )
        # Most violated first, and only patterns not in the program.
        new = unique_patterns(cert.patterns, exclude=D)
        if light and (cert.gap <= tol or new.shape[1] == 0):
            # The loop may stop or re-solve on this certificate: the full one.
            cert = optimality_certificate(Ut, F, Y, loss, beta, **point, **options)
            new = unique_patterns(cert.patterns, exclude=D)
        entry = {
            "round": round_,
            "n_patterns": D.shape[1],
            "objective": result.objective,
            "lower_bound": cert.lower_bound,
            "gap": cert.gap,
            "M": float(cert.M.max(initial=0.0)),
            "added": 0,
            "dropped": 0,
            # When the round's network and certificate were ready (the
            # next round's proposal, an Adam run, is work for that round):
            # what a fit with max_rounds = round_ + 1 would have taken, but
            # for the difference of a light search and the full one.
            "time": time.perf_counter() - start,
        }
        history.append(entry)
        # Dual feasibility ("certified") proves optimality only at a point
        # solved to tol; the gap bounds the distance at any point.
        done = (cert.certified and not inexact) or cert.gap <= tol
        if done:
            converged = True
            message = "certified" if cert.certified else f"gap <= tol={tol}"
        else:
            resolve = inexact and (cert.certified or new.shape[1] == 0)
            proposal = None
            if propose is not None and not resolve and round_ < max_rounds - 1:
                proposal = propose(program, result)
            if proposal is not None:
                # The proposed network's patterns, after the violators.
                new = unique_patterns(np.hstack([new, proposal[0] >= 0]), exclude=D)
            if resolve:
                # Nothing (new) is violated at the inexact point: solve the
                # same program to the final accuracy and look again.
                round_tol = None
                W0 = (result.Wp, result.Wn)
            elif new.shape[1] == 0:
                message = (
                    "no new violated pattern found (the violated ones are in "
                    "the program: the solver is not accurate enough)"
                    if cert.patterns.shape[1]
                    else "the search found no violated pattern"
                )
                done = True
            else:
                round_tol = max(tol, _INEXACT * cert.gap)
                # Drop patterns whose blocks stayed zero for a while.
                norms = np.maximum(
                    np.linalg.norm(result.Wp, axis=2).max(axis=0),
                    np.linalg.norm(result.Wn, axis=2).max(axis=0),
                )
                zero = norms <= prune_tol * max(norms.max(initial=0.0), 1e-300)
                zero_rounds = np.where(zero, zero_rounds + 1, 0)
                keep = (
                    zero_rounds < drop_after
                    if drop_after > 0
                    else np.ones(D.shape[1], bool)
                )
                room = budget - keep.sum()
                if room < new.shape[1] and np.isfinite(budget):
                    # Over budget: drop every zero pattern, then take what fits.
                    keep &= ~zero
                    room = budget - keep.sum()
                    new = new[:, : max(int(room), 0)]
                if new.shape[1] == 0:
                    message = f"pattern budget max_patterns={max_patterns} exhausted"
                    done = True
                else:
                    entry["added"] = int(new.shape[1])
                    entry["dropped"] = int((~keep).sum())
                    W0 = (result.Wp[:, keep], result.Wn[:, keep])
                    D = np.hstack([D[:, keep], new])
                    zero_rounds = np.concatenate(
                        [zero_rounds[keep], np.zeros(new.shape[1], int)]
                    )
                    if proposal is not None:
                        W0 = _better_start(Ut, D, Y, loss, beta, W0, proposal)
        if verbose:
            print(
                f"round {round_:3d}  patterns {entry['n_patterns']:5d}  "
                f"objective {entry['objective']:.10g}  gap {entry['gap']:.2e}  "
                f"M/beta {entry['M'] / beta:.6f}  +{entry['added']} "
                f"-{entry['dropped']}  {entry['time']:.2f}s"
            )
        if done:
            break
    else:
        message = f"round budget max_rounds={max_rounds} exhausted"
    return ColumnGenerationResult(
        patterns=program.D,
        result=result,
        certificate=cert,
        history=history,
        converged=converged,
        message=message,
    )


def _better_start(Ut, D, Y, loss, beta, W0, proposal):
    """The starting blocks on ``D`` with the lower objective.

    ``W0`` are the previous round's blocks, for the first patterns of
    ``D``; ``proposal`` is a network ``(Z, output)``, written as blocks of
    every pattern of ``D`` that its neurons use. Both are projected onto
    their cones before they are compared.
    """
    program = ConvexProgram(Ut, D, Y, loss, beta)
    P0 = W0[0].shape[1]
    pad = ((0, 0), (0, D.shape[1] - P0), (0, 0))
    previous = program.project_to_cones(*(np.pad(w, pad) for w in W0))
    proposed = program.project_to_cones(*blocks_from_network(*proposal, Ut, D))
    if program.objective(*proposed) < program.objective(*previous):
        return proposed
    return previous


def max_patterns_bound(n_samples, k):
    """Bound on the number of patterns of ``n_samples`` rows of rank ``k``."""
    return _pattern_count_bound(n_samples, k - 1)
