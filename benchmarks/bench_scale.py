"""Scale on real data: letter (n = 16 000 / 20 000) and CASP (n = 45 730).

Target of issue #4 (c): ``n_patterns=512`` sampled patterns,
``solver="torch"``, a fit in at most 60 s and 4 GB peak memory on the 2-core
development machine, for

* UCI letter recognition (16 features, 26 classes, ``loss="log_loss"``):
  the UCI split (first 16 000 rows train, last 4 000 test; test accuracy)
  and the full 20 000 rows (training accuracy only);
* UCI CASP protein structure (9 features, regression, target RMSD): all
  45 730 rows (training R^2), or with ``--casp-test FRAC`` a random
  hold-out (seed 0; test R^2).

Features are standardised (StandardScaler, fitted on the training rows; the
whitening makes the program invariant to it, up to round-off), and so is the
CASP target (mean and standard deviation of the training rows; R^2 does not
depend on it).

Run from the repository root (data from ``$SKBNCONVEX_DATA``, default
``../shared/data``)::

    OMP_NUM_THREADS=1 python benchmarks/bench_scale.py --threads 1 \
        [--datasets letter16k letter20k casp] [--alphas 1e-2 1] [--device cuda] \
        [--max-iter 10000] [--timeout 900] [--mem-limit-gb 12] \
        [--profile DIR]

Every fit runs in a fresh child process (``python bench_scale.py --child``)
with ``--threads`` BLAS / OpenMP / torch threads, so that its peak resident
memory (``ru_maxrss`` of the child, read in the child) is that of one fit;
it includes the Python interpreter, torch and the data (the column
``base_MB`` is the peak before the fit starts). Columns:

* ``beta_rel``: ``beta = alpha / sqrt(n)`` over ``max_c ||lam0_c||``, the
  zero-network threshold the estimator tests (1 or more: the zero network
  is optimal), to compare the regularisation across data sets;
* ``fit_s``: wall time of ``estimator.fit`` (whitening, pattern sampling,
  the torch solve, the post-fit optimality certificate, clean-up and
  recovery); ``solve_s`` and ``cert_s``: the solve and the certificate
  alone (timed by wrappers installed in the child around
  ``solve_torch`` and ``optimality_certificate``); ``full_s`` / ``newton_s``:
  time in the solver's full duality-gap checks and Newton attempts (also
  wrappers, inside ``solve_s``); ``cpu_s``: CPU time of the child during
  the fit (``fit_s / cpu_s`` above 1 means the cores were shared);
* ``peak_MB``: peak RSS of the child; ``cert_MB``: its peak RSS measured
  just after the certificate (when it is larger than after the solve, the
  certificate set the peak); ``gpu_MB``: with ``--device cuda``, the peak
  of the memory torch allocated on the GPU
  (``torch.cuda.max_memory_allocated``; 0 without CUDA);
* ``iter``: ``n_iter_`` (FISTA iterations plus Newton steps); ``conv``:
  whether the solver certified its duality gap (no ConvergenceWarning);
* ``neurons``, ``objective``, ``gap`` (``n_neurons_``, ``objective_``,
  ``optimality_gap_``, the latter from the certificate's *search* over
  patterns, an estimate), and the score (accuracy or R^2).

Each child runs under ``RLIMIT_DATA = --mem-limit-gb`` so that a fit that
needs more memory fails with an allocation error (reported, with the place)
instead of calling the kernel's OOM killer on a shared machine.
A fit that exceeds ``--timeout`` seconds is stopped (SIGTERM, then SIGKILL)
and reported as such;
with ``--max-iter`` small, the time per iteration can be measured and
extrapolated (say so when you do). ``--profile DIR`` runs each fit under
cProfile, writes ``DIR/<dataset>_<alpha>.prof`` and prints the top
functions by cumulative and by own time.
"""

import argparse
import json
import os
import pathlib
import subprocess
import sys
import time

DATA = pathlib.Path(os.environ.get(
    "SKBNCONVEX_DATA", pathlib.Path(__file__).resolve().parents[2] / "shared" / "data"))

DATASETS = ("letter16k", "letter20k", "casp")


def _parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=DATASETS)
    parser.add_argument("--alphas", nargs="+", type=float, default=[1e-2, 1.0])
    parser.add_argument("--n-patterns", type=int, default=512)
    parser.add_argument("--max-iter", type=int, default=10000)
    parser.add_argument("--tol", type=float, default=1e-6)
    parser.add_argument("--dtype", default="float64", choices=("float64", "float32"))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu",
                        help="device of the torch solver (cpu, cuda)")
    parser.add_argument("--timeout", type=float, default=900.0,
                        help="seconds before a fit's child process is killed")
    parser.add_argument("--casp-test", type=float, default=0.0,
                        help="hold-out fraction for CASP (0: fit on all rows)")
    parser.add_argument("--random-state", type=int, default=0)
    parser.add_argument("--mem-limit-gb", type=float, default=12.0,
                        help="RLIMIT_DATA of each child (0: none): a fit that "
                             "needs more fails with an allocation error "
                             "instead of invoking the OOM killer")
    parser.add_argument("--profile", default=None,
                        help="directory: run each fit under cProfile")
    parser.add_argument("--profile-top", type=int, default=35)
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


# --------------------------------------------------------------------------
# Child: one fit.

def _load(name, casp_test, seed):
    import numpy as np

    if name.startswith("letter"):
        raw = np.genfromtxt(DATA / "letter_recognition" / "letter-recognition.data",
                            delimiter=",", dtype=str)
        y, X = raw[:, 0], raw[:, 1:].astype(np.float64)
        if name == "letter16k":
            return X[:16000], y[:16000], X[16000:], y[16000:], "clf"
        return X, y, None, None, "clf"
    raw = np.loadtxt(DATA / "casp_protein" / "CASP.csv.gz", delimiter=",", skiprows=1)
    y, X = raw[:, 0], raw[:, 1:]
    if casp_test > 0:
        rng = np.random.default_rng(seed)
        perm = rng.permutation(len(y))
        n_test = int(round(casp_test * len(y)))
        te, tr = perm[:n_test], perm[n_test:]
        return X[tr], y[tr], X[te], y[te], "reg"
    return X, y, None, None, "reg"


def _child(spec):
    import cProfile
    import io
    import pstats
    import resource
    import warnings

    import numpy as np
    import torch
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.preprocessing import StandardScaler

    torch.set_num_threads(spec["threads"])

    import skbnconvex._estimators as est_mod
    import skbnconvex._solvers._torch as torch_mod
    from skbnconvex import ConvexBNReLUClassifier, ConvexBNReLURegressor
    from skbnconvex._losses import get_loss

    def rss_mb():
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0

    def cpu_s():
        ru = resource.getrusage(resource.RUSAGE_SELF)
        return ru.ru_utime + ru.ru_stime

    timers = {}

    def timed(module, name):
        fn = getattr(module, name)

        def wrapper(*args, **kwargs):
            t0 = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                rec = timers.setdefault(name, [0.0, 0, 0.0])
                rec[0] += time.perf_counter() - t0
                rec[1] += 1
                rec[2] = rss_mb()

        setattr(module, name, wrapper)

    # The estimator imports these names into its module; the solver looks
    # its helpers up in its own module at call time.
    for name in ("optimality_certificate", "whiten", "sample_patterns", "recover_network"):
        timed(est_mod, name)
    for name in ("solve_torch", "_full_check", "_newton"):
        timed(torch_mod, name)

    X, y, Xt, yt, kind = _load(spec["dataset"], spec["casp_test"], spec["random_state"])
    scaler = StandardScaler().fit(X)
    X = scaler.transform(X)
    Xt = None if Xt is None else scaler.transform(Xt)
    kw = dict(alpha=spec["alpha"], n_patterns=spec["n_patterns"], patterns="sample",
              solver="torch", max_iter=spec["max_iter"], tol=spec["tol"],
              random_state=spec["random_state"], device=spec["device"])
    if spec["dtype"] != "float64":
        kw["solver_options"] = {"dtype": spec["dtype"]}
    if kind == "clf":
        est = ConvexBNReLUClassifier(loss="log_loss", **kw)
    else:
        y_mean, y_std = y.mean(), y.std()
        y = (y - y_mean) / y_std
        yt = None if yt is None else (yt - y_mean) / y_std
        est = ConvexBNReLURegressor(**kw)
    # beta relative to max_c ||lam0_c||, the zero-network threshold the
    # estimator tests (an upper bound of the smallest beta with a zero fit).
    Yc = (np.eye(len(np.unique(y)))[np.unique(y, return_inverse=True)[1]]
          if kind == "clf" else y.reshape(-1, 1))
    lam0 = -get_loss("log_loss" if kind == "clf" else "squared_error",
                     Yc.shape[1]).gradient(np.zeros_like(Yc), Yc)
    beta_rel = spec["alpha"] / np.sqrt(len(X)) / np.linalg.norm(lam0, axis=0).max()
    base = rss_mb()

    prof = cProfile.Profile() if spec["profile"] else None

    def dump_profile(tag=""):
        path = pathlib.Path(spec["profile"])
        path.mkdir(parents=True, exist_ok=True)
        fname = path / f"{spec['dataset']}_{spec['alpha']:g}{tag}.prof"
        prof.dump_stats(fname)
        for key in ("cumulative", "tottime"):
            buf = io.StringIO()
            pstats.Stats(prof, stream=buf).strip_dirs().sort_stats(key).print_stats(
                spec["profile_top"])
            sys.stderr.write(f"\n==== cProfile {fname.name}, sorted by {key} ====\n")
            sys.stderr.write(buf.getvalue())
        sys.stderr.write("\n==== wrapper timers (s, calls, RSS MB) ====\n"
                         + json.dumps(timers) + "\n")
        return fname

    import signal

    def on_term(signum, frame):
        # Stopped by the parent's timeout: report what was measured so far.
        if prof is not None:
            prof.disable()
            dump_profile("_interrupted")
        partial = {k: [round(v[0], 2), v[1], round(v[2])] for k, v in timers.items()}
        print("PARTIAL " + json.dumps(dict(
            elapsed_s=round(time.perf_counter() - t0, 1), peak_MB=round(rss_mb()),
            timers=partial)), flush=True)
        sys.stderr.flush()
        os._exit(3)

    t0 = time.perf_counter()
    signal.signal(signal.SIGTERM, on_term)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        t0, c0 = time.perf_counter(), cpu_s()
        if prof is not None:
            prof.enable()
        est.fit(X, y)
        if prof is not None:
            prof.disable()
        fit_s, fit_cpu = time.perf_counter() - t0, cpu_s() - c0
    conv_warn = any(issubclass(w.category, ConvergenceWarning) for w in caught)
    peak = rss_mb()
    if Xt is not None:
        score, on = float(est.score(Xt, yt)), "test"
    else:
        score, on = float(est.score(X, y)), "train"

    def t(name, i=0):
        return timers.get(name, [float("nan"), 0, float("nan")])[i]

    out = dict(
        dataset=spec["dataset"], n=int(X.shape[0]), d=int(X.shape[1]),
        outputs=int(getattr(est, "n_outputs_", 0) or len(getattr(est, "classes_", []))),
        rank=int(est.rank_), alpha=spec["alpha"], beta_rel=float(beta_rel),
        fit_s=fit_s, cpu_s=fit_cpu,
        solve_s=t("solve_torch"), cert_s=t("optimality_certificate"),
        full_s=t("_full_check"), n_full=t("_full_check", 1),
        newton_s=t("_newton"), n_newton=t("_newton", 1),
        whiten_s=t("whiten"), sample_s=t("sample_patterns"),
        recover_s=t("recover_network"),
        base_MB=base, solve_MB=t("solve_torch", 2), cert_MB=t("optimality_certificate", 2),
        peak_MB=peak, n_iter=int(est.n_iter_), converged=not conv_warn,
        n_patterns=int(est.n_patterns_), neurons=int(est.n_neurons_),
        objective=float(est.objective_), gap=float(est.optimality_gap_),
        score=score, score_on=on, threads=torch.get_num_threads(),
        device=spec["device"],
        gpu_MB=(torch.cuda.max_memory_allocated() / 2**20
                if torch.cuda.is_available() else 0.0),
    )
    if prof is not None:
        out["profile"] = str(dump_profile())
    print("RESULT " + json.dumps(out), flush=True)


# --------------------------------------------------------------------------
# Parent: one child per fit, then the table.

def _run_fit(args, dataset, alpha):
    spec = dict(dataset=dataset, alpha=alpha, n_patterns=args.n_patterns,
                max_iter=args.max_iter, tol=args.tol, dtype=args.dtype,
                threads=args.threads, device=args.device, casp_test=args.casp_test,
                random_state=args.random_state, profile=args.profile,
                profile_top=args.profile_top)
    env = dict(os.environ)
    # Thread counts are read by the BLAS libraries at import time.
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        env[var] = str(args.threads)
    cmd = [sys.executable, os.path.abspath(__file__), "--child", json.dumps(spec)]

    def limit():
        if args.mem_limit_gb > 0:
            import resource

            lim = int(args.mem_limit_gb * 2**30)
            resource.setrlimit(resource.RLIMIT_DATA, (lim, lim))

    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, preexec_fn=limit)
    try:
        stdout, stderr = proc.communicate(timeout=args.timeout)
    except subprocess.TimeoutExpired:
        # SIGTERM first: a profiled child writes its profile so far.
        proc.terminate()
        try:
            stdout, stderr = proc.communicate(timeout=120)
        except subprocess.TimeoutExpired:
            proc.kill()
            stdout, stderr = proc.communicate()
        if args.profile and stderr:
            sys.stdout.write(stderr)
        res = dict(dataset=dataset, alpha=alpha,
                   error=f"stopped after {time.perf_counter() - t0:.0f} s (timeout)")
        for line in (stdout or "").splitlines():
            if line.startswith("PARTIAL "):
                res["partial"] = json.loads(line[8:])
                res["error"] += "; so far (s, calls, RSS MB): " + json.dumps(res["partial"])
        return res
    proc = subprocess.CompletedProcess(cmd, proc.returncode, stdout, stderr)
    if args.profile and proc.stderr:
        sys.stdout.write(proc.stderr)
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[7:])
    tail = (proc.stderr or "").strip().splitlines()[-8:]
    where = [ln.strip() for ln in tail if ln.strip().startswith("File ")][-1:]
    return dict(dataset=dataset, alpha=alpha,
                error=f"exit {proc.returncode}: " + " | ".join(where + tail[-1:])[:400],
                traceback=tail)


COLUMNS = [
    ("dataset", "{:9s}", 9), ("n", "{:6d}", 6), ("alpha", "{:6g}", 6),
    ("beta_rel", "{:8.1e}", 8),
    ("fit_s", "{:8.1f}", 8), ("cpu_s", "{:8.1f}", 8), ("solve_s", "{:8.1f}", 8),
    ("full_s", "{:7.1f}", 7),
    ("newton_s", "{:8.1f}", 8), ("cert_s", "{:7.1f}", 7), ("base_MB", "{:7.0f}", 7),
    ("solve_MB", "{:8.0f}", 8), ("cert_MB", "{:7.0f}", 7), ("peak_MB", "{:7.0f}", 7),
    ("gpu_MB", "{:6.0f}", 6),
    ("n_iter", "{:6d}", 6), ("converged", "{!s:>5}", 5), ("neurons", "{:7d}", 7),
    ("objective", "{:10.6f}", 10), ("gap", "{:8.1e}", 8), ("score", "{:6.4f}", 6),
    ("score_on", "{:>5s}", 5),
]


def _header():
    names = {"converged": "conv", "score_on": "on"}
    return " ".join(f"{names.get(c, c):>{w}s}" if c != "dataset" else f"{c:{w}s}"
                    for c, _, w in COLUMNS)


def main():
    args = _parse_args()
    if args.child is not None:
        _child(json.loads(args.child))
        return
    print(f"n_patterns={args.n_patterns} (sample), solver=torch, device={args.device}, "
          f"dtype={args.dtype}, "
          f"tol={args.tol:g}, max_iter={args.max_iter}, threads={args.threads}, "
          f"random_state={args.random_state}, mem limit={args.mem_limit_gb:g} GB, "
          f"data={DATA}")
    # glibc's allocator settings change large fits' times (user guide,
    # "Large problems on Linux"): the children inherit them.
    malloc = {k: v for k, v in os.environ.items() if k.startswith("MALLOC_")}
    print(f"glibc malloc environment: {malloc or 'default'}")
    print(_header(), flush=True)
    results = []
    for dataset in args.datasets:
        for alpha in args.alphas:
            res = _run_fit(args, dataset, alpha)
            results.append(res)
            if "error" in res:
                print(f"{dataset:9s} {'':6s} {alpha:6g}  {res['error']}", flush=True)
                continue
            print(" ".join(fmt.format(res[c]) for c, fmt, _ in COLUMNS), flush=True)
    print("\nper fit (JSON):")
    for res in results:
        print(json.dumps(res))


if __name__ == "__main__":
    main()
