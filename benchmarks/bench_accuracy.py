"""Test accuracy / R^2 of the convex fit against MLP and Adam (issue #4, d).

Three models of the same architecture class, each in a
``Pipeline(StandardScaler(), model)``, on public UCI data
(``../shared/data``, or ``$SKBNCONVEX_DATA``):

1. ``ConvexBNReLUClassifier`` / ``ConvexBNReLURegressor`` (``init="adam"``,
   ``patterns="sample"`` or, with ``--patterns adaptive``, column
   generation for ``--max-rounds`` rounds; ``solver="auto"``; the other
   settings are the command-line options, printed at the start of the
   run);
2. ``MLPClassifier`` / ``MLPRegressor`` (solver adam) with one hidden layer
   as wide as the convex model's fitted ``n_neurons_`` (of its final refit);
3. the non-convex BN network ``Linear -> BatchNorm1d -> ReLU -> Linear``
   (decoupled outputs, the estimators' objective) trained by full-batch Adam
   with :func:`skbnconvex._gradient.train_bn_relu_network`, wrapped below as
   an sklearn estimator, of the same width (rounded up to a multiple of the
   number of outputs).

``alpha`` of every model is chosen by ``GridSearchCV`` (3-fold, the same
grid, ``--alphas``, and folds for the three models; default the decades
0.01 to 100: on the earlier 0.01 to 1, wine, landsat and optdigits chose
the largest value for the convex model) on the training set, then
the model is refitted with it and scored on the test set: accuracy for
classification, R^2 for regression (uniform average over the outputs).
Classification: letter (first 16 000 rows train, last 4 000 test),
pendigits, optdigits, statlog landsat (their train/test files). Regression:
red wine quality, energy efficiency (both targets Y1, Y2 as one 2-output
regression; the R^2 of each target is printed too), by 5-fold
cross-validation (KFold, shuffled, seed 0); their score is the mean over the
5 test folds. Regression targets are standardised
(``TransformedTargetRegressor`` with a ``StandardScaler``, for all three
models alike).

What makes the run affordable (about an hour on one shared core), all of it
applied to the three models alike and printed in the output:

* ``--select-rows`` (default 600; classification only): the grid search
  runs on a stratified random subsample of at most that many training rows
  (seed 0).
* ``--convex-max-rows`` (default 1500; classification only): the final fit
  of every model uses a stratified subsample of at most that many training
  rows (seed 0), so that the
  three are compared on the same data. MLP and the Adam BN network are also
  refitted on the whole training set ("same, all rows" lines and a second
  mean). Reason: the torch solver needs thousands of iterations on the
  multinomial log loss and its iterations slow down superlinearly in n (on
  pendigits, n = 7494: 200 iterations took 230-290 s and left the fit at
  50% training accuracy; n = 1500: 1000 iterations took 52 s, 97.8% on
  held-out rows, 3000 iterations 166 s, 99.2%). That was the solver of
  session 6; in session 19 all rows cost 59-73 s a final fit on one thread
  (``--convex-max-rows 100000``, doc/benchmarks.md section 6).
* ``--cv-select first`` (default): on the CV datasets, alpha is chosen in
  the first outer training fold and reused in the other four (``each``
  chooses it in every fold, five times the search cost). The first training
  fold contains the other folds' test rows, a mild leak, the same for all
  models.
* Solver budget of the convex fits: ``--max-iter`` (default 3000,
  regression), ``--max-iter-clf`` (default 1000, classification), ``--tol``
  (default 1e-3). Fits stopped by the cap raise ConvergenceWarnings, which
  are counted per model.
* ``--certificate cheap`` (default): every convex fit ends with the
  optimality certificate, whose search (at realistic rank) took 70% of a
  fit's time at 10 classes (332 s of 467 s, n = 2500). The certificate only
  reports ``optimality_gap_``; with ``patterns="sample"`` it does not change
  the fitted network or its predictions. ``cheap`` replaces it, for this
  benchmark only, by the same function with a small search
  (``n_samples=100, n_starts=4, n_ascent=10, n_flip_rounds=1,
  max_checks=20``): the printed gaps are rough estimates and the fit times
  exclude most of the certificate's cost. ``full`` keeps the package's own.

(A first run with ``--select-rows 1200 --convex-max-rows 2000`` spent more
than 24 minutes in the convex grid search of optdigits alone, d = 64, and
was stopped. With the defaults, energy, wine, optdigits, landsat and
pendigits took 72 minutes on the shared 2-core machine, optdigits 31 of
them; letter, 26 classes, did not fit in that budget and was not run.)

Run from the repository root (one thread; a table after every dataset, the
full table at the end; ``--save`` keeps the results, ``--summary`` prints
the table of saved results)::

    OMP_NUM_THREADS=1 python benchmarks/bench_accuracy.py --threads 1 \\
        [--datasets energy,wine,optdigits,landsat,pendigits,letter] \\
        [--save results.jsonl]
"""

import argparse
import functools
import json
import os
import pathlib
import sys
import time
import warnings

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.compose import TransformedTargetRegressor
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import r2_score
from sklearn.model_selection import (
    GridSearchCV,
    KFold,
    StratifiedKFold,
    train_test_split,
)
from sklearn.neural_network import MLPClassifier, MLPRegressor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.validation import check_is_fitted, validate_data

import skbnconvex
from skbnconvex import ConvexBNReLUClassifier, ConvexBNReLURegressor
from skbnconvex._gradient import train_bn_relu_network

DATA = pathlib.Path(os.environ.get(
    "SKBNCONVEX_DATA", pathlib.Path(__file__).resolve().parents[2] / "shared" / "data"))

ALL_DATASETS = ("energy", "wine", "optdigits", "landsat", "pendigits", "letter")


# --------------------------------------------------------------------------
# The Adam-trained non-convex BN network as an sklearn estimator
# --------------------------------------------------------------------------

class _AdamBNReLUBase(BaseEstimator):
    """Full-batch Adam training of Linear -> BatchNorm1d -> ReLU -> Linear.

    The objective of the convex estimators (same ``alpha`` scaling, decoupled
    outputs, BN on the full batch); ``n_inits`` initialisations trained
    together, the one with the lowest training objective predicts (BN with
    the training statistics, :meth:`GradientFit.forward`).
    """

    def __init__(self, alpha=1e-4, *, n_neurons=32, loss="squared_error",
                 n_inits=2, n_steps=2000, learning_rate=1e-2,
                 random_state=0):
        self.alpha = alpha
        self.n_neurons = n_neurons
        self.loss = loss
        self.n_inits = n_inits
        self.n_steps = n_steps
        self.learning_rate = learning_rate
        self.random_state = random_state

    def _train(self, X, Y):
        C = Y.shape[1]
        width = C * max(1, -(-int(self.n_neurons) // C))
        self.fit_ = train_bn_relu_network(
            X, Y, loss=self.loss, alpha=self.alpha, n_neurons=width,
            n_inits=self.n_inits, n_steps=self.n_steps,
            learning_rate=self.learning_rate, record_every=self.n_steps,
            random_state=self.random_state,
        )
        self.n_neurons_ = width
        self.objective_ = float(self.fit_.objectives.min())
        if not np.isfinite(self.objective_):
            warnings.warn("Adam BN network: non-finite objective.",
                          ConvergenceWarning)
        return self

    def _forward(self, X):
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, dtype=np.float64)
        return self.fit_.forward(X)


class AdamBNReLURegressor(RegressorMixin, _AdamBNReLUBase):
    """Adam-trained BN-ReLU regressor (raw targets, one column per output)."""

    def fit(self, X, y):
        X, y = validate_data(self, X, y, multi_output=True, y_numeric=True,
                             dtype=np.float64, ensure_min_samples=2)
        self._y_1d = y.ndim == 1
        return self._train(X, y.reshape(-1, 1) if self._y_1d else y)

    def predict(self, X):
        F = self._forward(X)
        return F.ravel() if self._y_1d else F


class AdamBNReLUClassifier(ClassifierMixin, _AdamBNReLUBase):
    """Adam-trained BN-ReLU classifier, targets coded as the estimators do.

    ``+-1`` column for two classes, one-hot for more (with ``loss="log_loss"``:
    logistic / softmax cross-entropy).
    """

    def __init__(self, alpha=1e-4, *, n_neurons=32, loss="log_loss",
                 n_inits=2, n_steps=2000, learning_rate=1e-2,
                 random_state=0):
        super().__init__(alpha=alpha, n_neurons=n_neurons, loss=loss,
                         n_inits=n_inits, n_steps=n_steps,
                         learning_rate=learning_rate,
                         random_state=random_state)

    def fit(self, X, y):
        X, y = validate_data(self, X, y, dtype=np.float64, ensure_min_samples=2)
        self.classes_, idx = np.unique(y, return_inverse=True)
        if self.classes_.shape[0] == 2:
            Y = (2.0 * idx - 1.0).reshape(-1, 1)
        else:
            Y = np.eye(self.classes_.shape[0])[idx]
        return self._train(X, Y)

    def decision_function(self, X):
        F = self._forward(X)
        return F.ravel() if F.shape[1] == 1 else F

    def predict(self, X):
        scores = self.decision_function(X)
        if scores.ndim == 1:
            return self.classes_[(scores > 0).astype(int)]
        return self.classes_[np.argmax(scores, axis=1)]


# --------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------

def _load_digits_csv(name, stem):
    tra = np.loadtxt(DATA / name / f"{stem}.tra", delimiter=",")
    tes = np.loadtxt(DATA / name / f"{stem}.tes", delimiter=",")
    return tra[:, :-1], tra[:, -1].astype(int), tes[:, :-1], tes[:, -1].astype(int)


def load(name):
    """Return ``(kind, description, data)``.

    ``kind`` is ``"clf"`` (data ``(X_train, y_train, X_test, y_test)``) or
    ``"reg"`` (data ``(X, y)``, scored by 5-fold cross-validation).
    """
    if name == "letter":
        df = pd.read_csv(DATA / "letter_recognition" / "letter-recognition.data",
                         header=None)
        X, y = df.iloc[:, 1:].to_numpy(np.float64), df.iloc[:, 0].to_numpy()
        return "clf", "letter (16000/4000, d=16, 26 classes)", (
            X[:16000], y[:16000], X[16000:], y[16000:])
    if name == "pendigits":
        return "clf", "pendigits (7494/3498, d=16, 10 classes)", _load_digits_csv(
            "pendigits", "pendigits")
    if name == "optdigits":
        return "clf", "optdigits (3823/1797, d=64, 10 classes)", _load_digits_csv(
            "optdigits", "optdigits")
    if name == "landsat":
        tr = np.loadtxt(DATA / "statlog_landsat" / "sat.trn")
        te = np.loadtxt(DATA / "statlog_landsat" / "sat.tst")
        return "clf", "statlog landsat (4435/2000, d=36, 6 classes)", (
            tr[:, :-1], tr[:, -1].astype(int), te[:, :-1], te[:, -1].astype(int))
    if name == "wine":
        raw = np.genfromtxt(DATA / "wine_quality" / "winequality-red.csv",
                            delimiter=";", skip_header=1)
        return "reg", "wine quality red (n=1599, d=11; 5-fold CV)", (
            raw[:, :-1], raw[:, -1])
    if name == "energy":
        df = pd.read_csv(DATA / "energy_efficiency" / "ENB2012_data.csv")
        X = df[[f"X{i}" for i in range(1, 9)]].to_numpy(np.float64)
        Y = df[["Y1", "Y2"]].to_numpy(np.float64)
        return "reg", "energy efficiency Y1+Y2 (n=768, d=8; 5-fold CV)", (X, Y)
    raise ValueError(f"unknown dataset {name!r}; choose from {ALL_DATASETS}")


# --------------------------------------------------------------------------
# Models and protocol
# --------------------------------------------------------------------------

MODELS = ("convex", "mlp", "adam_bn")
LABELS = {"convex": "convex (skbnconvex)", "mlp": "MLP (sklearn)",
          "adam_bn": "Adam BN network"}


def make_model(which, kind, args, width=None):
    """Pipeline for ``which`` and the name of its alpha parameter."""
    if which == "convex":
        Est = ConvexBNReLUClassifier if kind == "clf" else ConvexBNReLURegressor
        est = Est(n_patterns=args.n_patterns, init="adam", patterns=args.patterns,
                  max_rounds=args.max_rounds, solver="auto", tol=args.tol,
                  random_state=0,
                  max_iter=args.max_iter_clf if kind == "clf" else args.max_iter)
    elif which == "mlp":
        Est = MLPClassifier if kind == "clf" else MLPRegressor
        est = Est(hidden_layer_sizes=(width,), max_iter=args.mlp_max_iter,
                  random_state=0)
    else:
        Est = AdamBNReLUClassifier if kind == "clf" else AdamBNReLURegressor
        est = Est(n_neurons=width, n_inits=args.adam_inits,
                  n_steps=args.adam_steps, learning_rate=args.adam_lr,
                  random_state=0)
    pipe = make_pipeline(StandardScaler(), est)
    step = pipe.steps[-1][0]
    if kind == "reg":
        model = TransformedTargetRegressor(regressor=pipe,
                                           transformer=StandardScaler())
        return model, f"regressor__{step}__alpha"
    return pipe, f"{step}__alpha"


def final_estimator(model):
    """The fitted network inside a (TransformedTarget) pipeline."""
    pipe = getattr(model, "regressor_", model)
    return pipe.steps[-1][1]


def score(model, kind, X, y):
    """Accuracy, or R^2 (uniform average) and the R^2 of every output."""
    if kind == "clf":
        return float(np.mean(model.predict(X) == y)), None
    pred = model.predict(X)
    per_output = (r2_score(y, pred, multioutput="raw_values") if y.ndim == 2
                  else None)
    return float(r2_score(y, pred)), per_output


def subsample(X, y, rows, kind):
    """At most ``rows`` rows (stratified for classification, seed 0)."""
    if X.shape[0] <= rows:
        return X, y
    Xs, _, ys, _ = train_test_split(X, y, train_size=rows, random_state=0,
                                    stratify=y if kind == "clf" else None)
    return Xs, ys


class _Warnings:
    """Collect ConvergenceWarnings (count and the first message)."""

    def __init__(self):
        self.count, self.first = 0, ""

    def __enter__(self):
        self._cm = warnings.catch_warnings(record=True)
        self._log = self._cm.__enter__()
        warnings.simplefilter("always", ConvergenceWarning)
        return self

    def __exit__(self, *exc):
        caught = [w for w in self._log if issubclass(w.category, ConvergenceWarning)]
        self._cm.__exit__(*exc)
        self.count += len(caught)
        if caught and not self.first:
            self.first = str(caught[0].message)[:170]
        return False


def search_alpha(which, kind, X, y, args, width, warn):
    """GridSearchCV (3-fold) over ``args.alphas`` on at most select_rows rows."""
    model, param = make_model(which, kind, args, width)
    cv = (StratifiedKFold(3, shuffle=True, random_state=0) if kind == "clf"
          else KFold(3, shuffle=True, random_state=0))
    Xs, ys = (subsample(X, y, args.select_rows, kind) if kind == "clf"
              else (X, y))
    with warn:
        t = time.perf_counter()
        search = GridSearchCV(model, {param: args.alphas}, cv=cv, refit=False,
                              n_jobs=1, error_score="raise").fit(Xs, ys)
        elapsed = time.perf_counter() - t
    return (search.best_params_[param], elapsed, Xs.shape[0],
            search.cv_results_["mean_test_score"])


def refit(which, kind, X, y, args, width, alpha, warn):
    model, param = make_model(which, kind, args, width)
    model.set_params(**{param: alpha})
    with warn:
        t = time.perf_counter()
        model.fit(X, y)
        elapsed = time.perf_counter() - t
    return model, elapsed


def run_split(kind, X_tr, y_tr, X_te, y_te, args, log, chosen):
    """All three models on one train/test split.

    ``chosen`` maps a model to its (alpha, search time, rows, cv scores,
    width) when the alpha was chosen already (``--cv-select first``); it is
    filled in otherwise.
    """
    out = {}
    width = None
    X_fit, y_fit = (subsample(X_tr, y_tr, args.convex_max_rows, kind)
                    if kind == "clf" else (X_tr, y_tr))
    capped = X_fit.shape[0] < X_tr.shape[0]
    for which in MODELS:
        warn = _Warnings()
        r = {}
        if which in chosen:
            (alpha, r["search_s"], r["select_rows"], r["cv_scores"],
             search_width) = chosen[which]
            r["search_s"] = 0.0
        else:
            alpha, r["search_s"], r["select_rows"], r["cv_scores"] = search_alpha(
                which, kind, X_tr, y_tr, args, width, warn)
            search_width = width
        r["alpha"] = alpha
        model, r["refit_s"] = refit(which, kind, X_fit, y_fit, args, width, alpha, warn)
        est = final_estimator(model)
        r["score"], r["per_output"] = score(model, kind, X_te, y_te)
        r["fit_rows"] = X_fit.shape[0]
        if which == "convex":
            width = max(int(est.n_neurons_), 1)
            r["width"] = width
            r["extra"] = (f"n_neurons_={est.n_neurons_} n_patterns_={est.n_patterns_} "
                          f"solver_={est.solver_} n_iter_={est.n_iter_} "
                          f"objective_={est.objective_:.5g} "
                          f"gap~{est.optimality_gap_:.2e}")
        elif which == "mlp":
            r["width"] = width
            r["extra"] = f"n_iter_={est.n_iter_} loss_={est.loss_:.5g}"
        else:
            r["width"] = est.n_neurons_
            r["extra"] = f"objective_={est.objective_:.5g}"
        r["full"] = None
        if capped and which != "convex":
            model, t_full = refit(which, kind, X_tr, y_tr, args, width, alpha, warn)
            r["full"] = dict(score=score(model, kind, X_te, y_te)[0], refit_s=t_full)
        r["n_warnings"], r["warning"] = warn.count, warn.first
        chosen.setdefault(which, (alpha, r["search_s"], r["select_rows"],
                                  r["cv_scores"], search_width))
        out[which] = r
        log(f"    {LABELS[which]:20} score={r['score']:.4f} alpha={alpha:g} "
            f"width={r['width']} fit rows={r['fit_rows']} refit={r['refit_s']:.1f}s "
            f"search={r['search_s']:.1f}s on {r['select_rows']} rows "
            f"(width {search_width}) cv={np.round(r['cv_scores'], 4).tolist()} "
            f"warnings={r['n_warnings']} {r['extra']}"
            + (f" per-output R2={np.round(r['per_output'], 4).tolist()}"
               if r["per_output"] is not None else "")
            + (f" | full training set ({X_tr.shape[0]} rows): "
               f"score={r['full']['score']:.4f} refit={r['full']['refit_s']:.1f}s"
               if r["full"] else ""))
        if r["warning"]:
            log(f"      first warning: {r['warning']}")
    return out


def run_dataset(name, args, log):
    kind, desc, data = load(name)
    log(f"== {desc}")
    t0 = time.perf_counter()
    if kind == "clf":
        splits = [data]
    else:
        X, y = data
        splits = [(X[tr], y[tr], X[te], y[te]) for tr, te in
                  KFold(args.cv_folds, shuffle=True, random_state=0).split(X)]
    results, chosen = [], {}
    for i, split in enumerate(splits):
        if len(splits) > 1:
            log(f"  fold {i + 1}/{len(splits)}")
        if args.cv_select == "each":
            chosen = {}
        results.append(run_split(kind, *split, args, log, chosen))
    row = {"dataset": name, "metric": "acc" if kind == "clf" else "R2",
           "time_s": time.perf_counter() - t0}
    for which in MODELS:
        rs = [r[which] for r in results]
        alphas = sorted({r["alpha"] for r in rs})
        row[which] = dict(
            score=float(np.mean([r["score"] for r in rs])),
            alpha="/".join(f"{a:g}" for a in alphas),
            width=(f"{min(r['width'] for r in rs)}-{max(r['width'] for r in rs)}"
                   if len(rs) > 1 else str(rs[0]["width"])),
            refit_s=float(np.mean([r["refit_s"] for r in rs])),
            search_s=float(np.sum([r["search_s"] for r in rs])),
            n_warnings=int(np.sum([r["n_warnings"] for r in rs])),
            select_rows=rs[0]["select_rows"],
            fit_rows=rs[0]["fit_rows"],
            per_output=(np.mean([r["per_output"] for r in rs], axis=0)
                        if rs[0]["per_output"] is not None else None),
            full=(dict(score=float(np.mean([r["full"]["score"] for r in rs])),
                       refit_s=float(np.mean([r["full"]["refit_s"] for r in rs])))
                  if rs[0]["full"] else None),
        )
    log(f"  {name} done in {row['time_s']:.0f} s")
    for which in MODELS:
        if row[which]["per_output"] is not None:
            row[which]["per_output"] = [float(v) for v in row[which]["per_output"]]
    return row


def print_table(rows, log):
    log("")
    log("Per dataset: test score (accuracy; R^2 = mean over the CV test folds), "
        "chosen alpha, hidden width (range over folds), fit rows, time of the "
        "final refit (mean over folds), grid-search time (total) and rows, "
        "ConvergenceWarnings (search + refits).")
    head = (f"{'dataset':10} {'metric':6} {'model':20} {'score':>7} {'alpha':>9} "
            f"{'width':>8} {'fit rows':>8} {'refit s':>8} {'search s':>9} "
            f"{'sel rows':>8} {'warn':>4}")
    log(head)
    log("-" * len(head))
    for row in rows:
        for which in MODELS:
            r = row[which]
            log(f"{row['dataset']:10} {row['metric']:6} {LABELS[which]:20} "
                f"{r['score']:7.4f} {r['alpha']:>9} {r['width']:>8} "
                f"{r['fit_rows']:8d} {r['refit_s']:8.1f} {r['search_s']:9.1f} "
                f"{r['select_rows']:8d} {r['n_warnings']:4d}")
            if r["per_output"] is not None:
                log(f"{'':10} {'':6} {'':20}   R2 per target (Y1, Y2): "
                    + ", ".join(f"{v:.4f}" for v in r["per_output"]))
            if r["full"] is not None:
                log(f"{'':10} {'':6} {'  same, all rows':20} {r['full']['score']:7.4f} "
                    f"{'':>9} {'':>8} {'all':>8} {r['full']['refit_s']:8.1f}")
        log(f"{'':10} dataset time {row['time_s']:.0f} s")
    if not rows:
        return
    log("")
    names = ", ".join(r["dataset"] for r in rows)
    log(f"Mean score over {len(rows)} datasets ({names}), "
        "every model fitted on the same rows:")
    means = {w: float(np.mean([row[w]["score"] for row in rows])) for w in MODELS}
    for which in MODELS:
        log(f"  {LABELS[which]:20} {means[which]:.4f}")
    log(f"  convex >= MLP: {means['convex'] >= means['mlp']}; "
        f"convex >= Adam BN network: {means['convex'] >= means['adam_bn']}")
    if any(row["mlp"]["full"] for row in rows):
        log("Mean score with MLP and the Adam BN network refitted on all training "
            "rows where the convex fit was capped (convex unchanged):")
        for which in MODELS:
            vals = [(row[which]["full"] or row[which])["score"] for row in rows]
            log(f"  {LABELS[which]:20} {np.mean(vals):.4f}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", default=",".join(ALL_DATASETS),
                        help="comma-separated subset of " + ",".join(ALL_DATASETS))
    parser.add_argument("--threads", type=int, default=2,
                        help="torch.set_num_threads (default 2)")
    parser.add_argument("--alphas", default="0.01,0.1,1,10,100",
                        help="alpha grid, the same for the three models")
    parser.add_argument("--n-patterns", type=int, default=128)
    parser.add_argument("--patterns", choices=("sample", "adaptive"),
                        default="sample",
                        help="patterns of the convex model: sampled, or "
                             "column generation from them (adaptive)")
    parser.add_argument("--max-rounds", type=int, default=10,
                        help="rounds of column generation (--patterns adaptive)")
    parser.add_argument("--max-iter", type=int, default=3000,
                        help="iteration cap of the convex solver (regression)")
    parser.add_argument("--max-iter-clf", type=int, default=1000,
                        help="iteration cap of the convex solver (classification)")
    parser.add_argument("--tol", type=float, default=1e-3,
                        help="tol of the convex estimators")
    parser.add_argument("--certificate", choices=("cheap", "full"), default="cheap")
    parser.add_argument("--select-rows", type=int, default=600,
                        help="classification: grid search on a stratified "
                             "subsample of at most this many training rows")
    parser.add_argument("--convex-max-rows", type=int, default=1500,
                        help="classification: final fits on a stratified "
                             "subsample of at most this many training rows; "
                             "MLP and the Adam BN network are refitted on all "
                             "rows as well")
    parser.add_argument("--cv-select", choices=("first", "each"), default="first",
                        help="CV datasets: choose alpha in every outer "
                             "training fold, or in the first and reuse it")
    parser.add_argument("--mlp-max-iter", type=int, default=1000)
    parser.add_argument("--adam-steps", type=int, default=2000)
    parser.add_argument("--adam-inits", type=int, default=2)
    parser.add_argument("--adam-lr", type=float, default=1e-2)
    parser.add_argument("--cv-folds", type=int, default=5)
    parser.add_argument("--save", default=None,
                        help="append every finished dataset's results to this "
                             "JSON-lines file")
    parser.add_argument("--summary", nargs="+", default=None,
                        help="only print the table of results saved by --save "
                             "(files read in order; a dataset's last entry wins)")
    args = parser.parse_args(argv)
    if args.summary:
        rows = {}
        for path in args.summary:
            with open(path) as f:
                for line in f:
                    if line.strip():
                        row = json.loads(line)
                        rows[row["dataset"]] = row
        print_table(list(rows.values()), lambda msg: print(msg, flush=True))
        return
    args.alphas = [float(a) for a in args.alphas.split(",")]
    names = [s.strip() for s in args.datasets.split(",") if s.strip()]

    import torch

    torch.set_num_threads(args.threads)
    if args.certificate == "cheap":
        import skbnconvex._estimators as _est
        from skbnconvex._certificate import optimality_certificate

        _est.optimality_certificate = functools.partial(
            optimality_certificate, n_samples=100, n_starts=4, n_ascent=10,
            n_flip_rounds=1, max_checks=20)

    def log(msg):
        print(msg, flush=True)

    log(f"skbnconvex from {pathlib.Path(skbnconvex.__file__).parent}; "
        f"torch threads {torch.get_num_threads()}; python {sys.version.split()[0]}")
    log("argv: " + " ".join(sys.argv[1:]))
    log(f"alpha grid {args.alphas}: GridSearchCV, 3 folds (the same for all models), "
        f"on at most {args.select_rows} training rows (classification; "
        "regression: the whole training fold)"
        + ("; CV datasets: chosen in the first outer training fold, reused"
           if args.cv_select == "first" else "; chosen in every outer training fold"))
    log(f"classification: final fits on at most {args.convex_max_rows} training "
        "rows (all models; MLP and Adam BN also on all rows)")
    log(f"convex: n_patterns={args.n_patterns}, init='adam', "
        f"patterns={args.patterns!r}"
        + (f", max_rounds={args.max_rounds}" if args.patterns == "adaptive" else "")
        + f", solver='auto', max_iter={args.max_iter} (regression) / "
        f"{args.max_iter_clf} (classification), tol={args.tol}, "
        f"certificate={args.certificate}")
    log(f"MLP: one hidden layer of the convex fit's width, solver adam, "
        f"max_iter={args.mlp_max_iter}; Adam BN network: same width (multiple "
        f"of n_outputs), {args.adam_inits} inits x {args.adam_steps} full-batch "
        f"steps, lr {args.adam_lr}")
    t0 = time.perf_counter()
    rows = []
    for name in names:
        rows.append(run_dataset(name, args, log))
        print_table(rows[-1:], log)
        if args.save:
            with open(args.save, "a") as f:
                f.write(json.dumps(rows[-1]) + "\n")
    if len(rows) > 1:
        print_table(rows, log)
    log(f"total time {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
