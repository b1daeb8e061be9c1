"""Rosenblatt's perceptron: a threshold unit trained by its own error-correction rule.

The unit outputs ``step(w·x + b)`` (1 when positive, else 0). Training visits the samples
one at a time and, on a mistake, moves the weights toward the misclassified point:
``w += lr * (y - ŷ) * x`` and ``b += lr * (y - ŷ)``. No gradients are involved (the step
function has none). The perceptron convergence theorem guarantees a finite number of
mistakes when the two classes are linearly separable; when they are not (XOR is the
classic case: no line puts (0,1) and (1,0) on one side and (0,0), (1,1) on the other)
the weights cycle forever, which is why a hidden layer is needed.
"""
from __future__ import annotations

import numpy as np

from ..creation import zeros
from ..nn.module import Module
from ..nn.parameter import Parameter
from ..tensor import Tensor

__all__ = ["Perceptron"]


def _numpy(x, dtype=np.float64) -> np.ndarray:
    return np.asarray(x.numpy() if isinstance(x, Tensor) else x, dtype=dtype)


class Perceptron(Module):
    """A single threshold unit with the perceptron learning rule.

    Args:
        in_features: inputs per sample.

    Labels are 0/1 (or -1/+1, mapped to 0/1). After ``fit``: ``errors_`` (mistakes per
    epoch), ``converged_`` (an epoch without mistakes happened) and ``n_epochs_``.

    >>> import numpy as np
    >>> X = np.array([[0, 0], [0, 1], [1, 0], [1, 1]]); y = np.array([0, 0, 0, 1])  # AND
    >>> p = Perceptron(2).fit(X, y)
    >>> p.converged_, p.predict(X).tolist()
    (True, [0, 0, 0, 1])
    """

    def __init__(self, in_features: int):
        super().__init__()
        self.weight = Parameter(zeros(in_features), requires_grad=False)
        self.bias = Parameter(zeros(()), requires_grad=False)
        self.errors_: list[int] = []
        self.converged_ = False
        self.n_epochs_ = 0

    def forward(self, x: Tensor) -> Tensor:
        """``step(x @ w + b)`` as 0/1 floats."""
        return ((x @ self.weight + self.bias) > 0).float()

    def decision_function(self, X) -> np.ndarray:
        """``X @ w + b`` (the signed distance to the boundary, times ``|w|``)."""
        return _numpy(X) @ self.weight.numpy().astype(np.float64) + float(self.bias.item())

    def predict(self, X) -> np.ndarray:
        """0/1 labels as an int64 array."""
        return (self.decision_function(X) > 0).astype(np.int64)

    def fit(self, X, y, epochs: int = 100, lr: float = 1.0, shuffle: bool = True,
            seed: int | None = 0) -> Perceptron:
        """Run the perceptron rule for up to ``epochs`` passes (stops after a clean pass).

        Args:
            X: ``(N, in_features)`` inputs.
            y: ``(N,)`` labels in {0, 1} or {-1, +1}.
            epochs: maximum passes over the data.
            lr: step size (for the perceptron only the scale of w changes with it).
            shuffle: visit samples in a new random order each pass.
            seed: seed of that order.
        """
        X, y = _numpy(X), _numpy(y).reshape(-1)
        if X.ndim != 2 or len(X) != len(y):
            raise ValueError(f"Perceptron.fit: expected X (N, D) and y (N,), got {X.shape} "
                             f"and {y.shape}")
        if X.shape[1] != self.weight.shape[0]:
            raise ValueError(f"Perceptron.fit: X has {X.shape[1]} features but the "
                             f"perceptron was built for {self.weight.shape[0]}")
        labels = set(np.unique(y).tolist())
        if labels <= {-1.0, 1.0} and -1.0 in labels:
            y = (y > 0).astype(np.float64)
        elif not labels <= {0.0, 1.0}:
            raise ValueError(f"Perceptron.fit: labels must be 0/1 or -1/+1, got {sorted(labels)}")
        w = self.weight.numpy().astype(np.float64)
        b = float(self.bias.item())
        rng = np.random.default_rng(seed)
        self.errors_, self.converged_ = [], False
        for _ in range(epochs):
            mistakes = 0
            for i in (rng.permutation(len(X)) if shuffle else range(len(X))):
                y_hat = 1.0 if X[i] @ w + b > 0 else 0.0
                if y_hat != y[i]:  # the rule only acts on mistakes
                    w += lr * (y[i] - y_hat) * X[i]
                    b += lr * (y[i] - y_hat)
                    mistakes += 1
            self.errors_.append(mistakes)
            if mistakes == 0:
                self.converged_ = True
                break
        self.n_epochs_ = len(self.errors_)
        self.weight.data = Tensor(w.astype(np.float32))
        self.bias.data = Tensor(np.float32(b))
        return self
