"""
===========================================================
Classification in a pipeline: choosing alpha by grid search
===========================================================

:class:`~skbnconvex.ConvexBNReLUClassifier` is a scikit-learn classifier, so
it goes into a :class:`~sklearn.pipeline.Pipeline` and a
:class:`~sklearn.model_selection.GridSearchCV` like any other. Here we tune
the weight decay ``alpha`` on the two-moons data and look at what the
selected network does: its decision regions, and the cross-validated
accuracy and width across ``alpha``.
"""

# %%
# Data and search
# ---------------
# Two features, so the centred data have rank 2 and the optimality
# certificate can check every activation pattern. ``patterns="adaptive"``
# (column generation) adds the patterns the certificate finds violated until
# it proves that the fit is the global optimum of the BN-ReLU network.
# ``alpha`` has the meaning (and scale) of
# :class:`~sklearn.neural_network.MLPClassifier`'s.
import warnings

import matplotlib.pyplot as plt
import numpy as np
from sklearn.base import clone
from sklearn.datasets import make_moons
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import GridSearchCV, StratifiedKFold, train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from skbnconvex import ConvexBNReLUClassifier

# Interior-point solves may stop a hair above tol near alpha_max.
warnings.simplefilter("ignore", ConvergenceWarning)

X, y = make_moons(n_samples=80, noise=0.25, random_state=0)
X_train, X_test, y_train, y_test = train_test_split(
    X, y, test_size=24, stratify=y, random_state=0
)

# The squared loss on +-1 labels (the paper's setting) is a quadratic
# program, which the interior-point solver handles in a fraction of a second.
model = ConvexBNReLUClassifier(
    loss="squared_error", patterns="adaptive", n_patterns=10, random_state=0
)
pipe = make_pipeline(StandardScaler(), model)
alphas = np.geomspace(30, 0.03, 7)
search = GridSearchCV(
    pipe,
    {"convexbnreluclassifier__alpha": alphas},
    cv=StratifiedKFold(3, shuffle=True, random_state=0),
    return_train_score=True,
).fit(X_train, y_train)
clf = search.best_estimator_[-1]
print(f"best alpha: {search.best_params_['convexbnreluclassifier__alpha']:.3g}")
print(f"CV accuracy {search.best_score_:.3f}, test accuracy "
      f"{search.score(X_test, y_test):.3f}, neurons {clf.n_neurons_}, "
      f"certified global optimum: {clf.certified_}")

# %%
# What the search saw, and what it chose
# --------------------------------------
# Left: training and validation accuracy along ``alpha`` (large ``alpha``
# means few neurons; past ``alpha_max`` the network is zero and predicts one
# class). Right: the decision regions of the refitted pipeline, with the
# network's output (positive for the second class) as background.
res = search.cv_results_
widths = [
    clone(model).set_params(alpha=a)
    .fit(StandardScaler().fit_transform(X_train), y_train)
    .n_neurons_
    for a in alphas
]

fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(11, 4.3))
ax0.semilogx(alphas, res["mean_train_score"], "o-", label="training")
ax0.semilogx(alphas, res["mean_test_score"], "s-", label="validation (3 folds)")
ax0.fill_between(
    alphas,
    res["mean_test_score"] - res["std_test_score"],
    res["mean_test_score"] + res["std_test_score"],
    alpha=0.2, color="C1",
)
ax0.axvline(search.best_params_["convexbnreluclassifier__alpha"], color="0.5", ls="--")
for a, w, s in zip(alphas, widths, res["mean_train_score"]):
    ax0.annotate(f"{w}", (a, s), textcoords="offset points", xytext=(0, 6),
                 ha="center", fontsize=8, color="C0")
ax0.set(xlabel="alpha", ylabel="accuracy",
        title="Accuracy along alpha (labels: neurons)")
ax0.invert_xaxis()
ax0.legend(loc="lower right")

xx, yy = np.meshgrid(np.linspace(-2, 3, 200), np.linspace(-1.5, 2, 200))
grid = np.column_stack([xx.ravel(), yy.ravel()])
score = search.decision_function(grid).reshape(xx.shape)
ax1.contourf(xx, yy, np.clip(score, -1.5, 1.5), levels=20, cmap="RdBu_r", alpha=0.6)
ax1.contour(xx, yy, score, levels=[0.0], colors="k", linewidths=1.5)
ax1.scatter(*X_train.T, c=y_train, cmap="RdBu_r", edgecolor="k", s=25, label="train")
ax1.scatter(*X_test.T, c=y_test, cmap="RdBu_r", edgecolor="k", marker="^", s=40,
            label="test")
ax1.set(title=f"Decision regions, {clf.n_neurons_} neurons", xlabel="x1", ylabel="x2")
ax1.legend(loc="lower left")
fig.tight_layout()
plt.show()
