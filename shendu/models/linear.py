"""Linear models: linear regression (closed form or gradient descent), logistic regression
(binary, sigmoid + cross-entropy) and softmax regression (one-hot labels, softmax
cross-entropy), each an ``nn.Module`` with scikit-learn-like ``fit``/``predict`` helpers.
"""
from __future__ import annotations

import numpy as np

from .. import optim
from ..autograd.grad_mode import no_grad
from ..creation import tensor as _tensor
from ..nn import functional as F
from ..nn.layers.linear import Linear
from ..nn.module import Module
from ..random import Generator
from ..tensor import Tensor

__all__ = ["LinearRegression", "LogisticRegression", "SoftmaxRegression",
           "softmax_cross_entropy"]

_OPTIMIZERS = {"sgd": optim.SGD, "adam": optim.Adam, "adamw": optim.AdamW,
               "rmsprop": optim.RMSprop, "adagrad": optim.Adagrad, "adadelta": optim.Adadelta}


def _as_tensor(x, dtype) -> Tensor:
    return x.to(dtype=dtype) if isinstance(x, Tensor) else _tensor(np.asarray(x), dtype=dtype)


def _outputs(model: Module, X) -> Tensor:
    """The model's outputs for ``X`` without recording a graph."""
    with no_grad():
        return model(_as_tensor(X, "float32"))


def _fit(model: Module, X, y, loss_fn, y_dtype: str, *, epochs: int, lr: float,
         batch_size: int | None, optimizer: str, weight_decay: float, seed: int | None,
         metrics=("accuracy",)):
    """Mini-batch (or full-batch) training through ``shendu.train.fit``; returns History."""
    from ..data import DataLoader, TensorDataset
    from ..train import fit

    if optimizer not in _OPTIMIZERS:
        raise ValueError(f"{type(model).__name__}.fit: unknown optimizer {optimizer!r}; "
                         f"choose from {sorted(_OPTIMIZERS)}")
    Xt, yt = _as_tensor(X, "float32"), _as_tensor(y, y_dtype)
    if Xt.ndim != 2 or len(Xt) != len(yt):
        raise ValueError(f"{type(model).__name__}.fit: expected X (N, D) and y (N,), got "
                         f"{tuple(Xt.shape)} and {tuple(yt.shape)}")
    gen = Generator().manual_seed(seed) if seed is not None else None
    loader = DataLoader(TensorDataset(Xt, yt), batch_size=batch_size or len(Xt),
                        shuffle=True, generator=gen)
    opt = _OPTIMIZERS[optimizer](model.parameters(), lr=lr, weight_decay=weight_decay)
    return fit(model, loss_fn, opt, loader, epochs, metrics=metrics, progress=False)


class LinearRegression(Module):
    """``y = X w + b`` fitted by least squares.

    Args:
        in_features: inputs per sample.
        out_features: targets per sample (outputs are ``(N,)`` when 1).

    ``fit(method='closed_form')`` solves the normal equations (via ``lstsq``); with
    ``'gd'`` it runs gradient descent on the mean squared error and reaches the same
    answer.

    >>> import numpy as np
    >>> X = np.random.default_rng(0).normal(size=(50, 2)); y = X @ [2.0, -1.0] + 0.5
    >>> m = LinearRegression(2).fit(X, y)
    >>> np.round(m.weight.detach().numpy(), 3).tolist(), round(float(m.bias.item()), 3)
    ([[2.0, -1.0]], 0.5)
    """

    def __init__(self, in_features: int, out_features: int = 1):
        super().__init__()
        self.linear = Linear(in_features, out_features)
        self.out_features = out_features

    @property
    def weight(self) -> Tensor:
        return self.linear.weight

    @property
    def bias(self) -> Tensor:
        return self.linear.bias

    def forward(self, x: Tensor) -> Tensor:
        out = self.linear(x)
        return out.reshape(-1) if self.out_features == 1 else out

    def predict(self, X) -> np.ndarray:
        return _outputs(self, X).numpy()

    def fit(self, X, y, method: str = "closed_form", *, lr: float = 0.1, epochs: int = 500,
            batch_size: int | None = None, l2: float = 0.0, seed: int | None = 0):
        """Fit by ``'closed_form'`` least squares (ridge when ``l2 > 0``; the bias is not
        penalised) or ``'gd'``: (mini-)batch gradient descent on ``mean((Xw + b - y)²)``
        with ``lr``, ``epochs``, ``batch_size`` (None: the full batch) and weight decay
        ``l2``. Returns ``self``; ``history_`` holds the GD training losses."""
        if method == "closed_form":
            A = np.asarray(X.numpy() if isinstance(X, Tensor) else X, dtype=np.float64)
            t = np.asarray(y.numpy() if isinstance(y, Tensor) else y, dtype=np.float64)
            A1 = np.hstack([A, np.ones((len(A), 1))])
            if l2 > 0:
                reg = l2 * len(A) * np.eye(A1.shape[1])
                reg[-1, -1] = 0.0
                coef = np.linalg.solve(A1.T @ A1 + reg, A1.T @ t)
            else:
                coef = np.linalg.lstsq(A1, t, rcond=None)[0]
            coef = coef.reshape(A1.shape[1], -1)
            self.linear.weight.data = _tensor(coef[:-1].T, dtype="float32")
            self.linear.bias.data = _tensor(coef[-1], dtype="float32")
            self.history_ = None
        elif method == "gd":
            self.history_ = _fit(self, X, y, F.mse_loss, "float32", epochs=epochs, lr=lr,
                                 batch_size=batch_size, optimizer="sgd", weight_decay=l2,
                                 seed=seed, metrics=())
        else:
            raise ValueError(f"LinearRegression.fit: method must be 'closed_form' or 'gd', "
                             f"got {method!r}")
        return self


class LogisticRegression(Module):
    """Binary classifier ``P(y=1|x) = sigmoid(x·w + b)``, trained on cross-entropy.

    ``forward`` returns logits ``(N,)``; ``predict_proba`` the probabilities.

    >>> from shendu.data.datasets import two_blobs
    >>> X, y = two_blobs(200, distance=4.0)
    >>> clf = LogisticRegression(2)
    >>> hist = clf.fit(X, y, epochs=50, lr=0.5)
    >>> float((clf.predict(X) == y).mean()) > 0.95
    True
    """

    def __init__(self, in_features: int):
        super().__init__()
        self.linear = Linear(in_features, 1)

    def forward(self, x: Tensor) -> Tensor:
        return self.linear(x).reshape(-1)

    def predict_proba(self, X) -> np.ndarray:
        return F.sigmoid(_outputs(self, X)).numpy()

    def predict(self, X) -> np.ndarray:
        return (self.predict_proba(X) > 0.5).astype(np.int64)

    def fit(self, X, y, epochs: int = 100, lr: float = 0.1, batch_size: int | None = None,
            optimizer: str = "sgd", weight_decay: float = 0.0, seed: int | None = 0):
        """Train with ``optimizer`` (a ``shendu.optim`` name) on binary cross-entropy.

        Returns the training ``History`` (loss and accuracy per epoch)."""
        return _fit(self, X, y, F.binary_cross_entropy_with_logits, "float32", epochs=epochs,
                    lr=lr, batch_size=batch_size, optimizer=optimizer,
                    weight_decay=weight_decay, seed=seed)


def softmax_cross_entropy(logits: Tensor, labels: Tensor) -> Tensor:
    """Mean of ``-sum_k onehot(y)_k * log softmax(z)_k``, spelled out with one-hot labels
    (``F.cross_entropy`` computes the same from class indices, fused).

    >>> import shendu as sd
    >>> z = sd.tensor([[2.0, 0.0, -1.0]]); y = sd.tensor([0])
    >>> round(softmax_cross_entropy(z, y).item(), 5) == round(F.cross_entropy(z, y).item(), 5)
    True
    """
    onehot = F.one_hot(labels.long(), logits.shape[-1]).to(dtype=logits.dtype)
    return -(onehot * F.log_softmax(logits, dim=-1)).sum(dim=-1).mean()


class SoftmaxRegression(Module):
    """Multi-class linear classifier: ``softmax(x W^T + b)`` with softmax cross-entropy.

    >>> from shendu.data.datasets import make_blobs
    >>> X, y = make_blobs(300, centers=3, seed=0)
    >>> clf = SoftmaxRegression(2, 3)
    >>> hist = clf.fit(X, y, epochs=100, lr=0.1, batch_size=32)
    >>> hist["train_acc"][-1] > 0.95
    True
    """

    def __init__(self, in_features: int, num_classes: int):
        super().__init__()
        self.linear = Linear(in_features, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.linear(x)

    def predict_proba(self, X) -> np.ndarray:
        return F.softmax(_outputs(self, X), dim=-1).numpy()

    def predict(self, X) -> np.ndarray:
        return self.predict_proba(X).argmax(axis=-1)

    def fit(self, X, y, epochs: int = 100, lr: float = 0.1, batch_size: int | None = None,
            optimizer: str = "sgd", weight_decay: float = 0.0, seed: int | None = 0):
        """Train on the one-hot softmax cross-entropy; returns the training ``History``."""
        return _fit(self, X, y, softmax_cross_entropy, "int64", epochs=epochs, lr=lr,
                    batch_size=batch_size, optimizer=optimizer, weight_decay=weight_decay,
                    seed=seed)
