"""Quick start: fit a BN-ReLU network to its global optimum and score it.

Run with ``python examples/quickstart.py``. It fits the regressor on
scikit-learn's diabetes data (standardised, in a Pipeline), then prints the
test R^2 and the training objective of the fitted network.
"""

from sklearn.datasets import load_diabetes
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from skbnconvex import ConvexBNReLURegressor

X, y = load_diabetes(return_X_y=True)
y = (y - y.mean()) / y.std()
X_train, X_test, y_train, y_test = train_test_split(X, y, random_state=0)

model = make_pipeline(
    StandardScaler(),
    ConvexBNReLURegressor(alpha=10.0, n_patterns=50, random_state=0),
)
model.fit(X_train, y_train)
net = model[-1]
print(f"test R^2            : {model.score(X_test, y_test):.4f}")
print(f"training objective  : {net.objective_:.6f}")
print(f"neurons / patterns  : {net.n_neurons_} / {net.n_patterns_}")
