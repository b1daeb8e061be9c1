"""Numerical stability at inputs of +-1000: log_softmax, logsumexp, softplus, sigmoid and
the with-logits losses give finite values and gradients, and the right ones (float32 and
float64; NumPy's floating-point warnings are turned into errors, so no overflow is hidden)."""
import numpy as np
import pytest

import shendu as sd
import shendu.nn.functional as F

X = [[1000.0, -1000.0, 0.0], [-1000.0, -1000.0, -1000.0], [1000.0, 1000.0, 999.0]]


def _lse(x):  # exact logsumexp along the last axis, in float64
    x = np.asarray(x, np.float64)
    m = x.max(-1, keepdims=True)
    return (m + np.log(np.exp(x - m).sum(-1, keepdims=True)))[..., 0]


def _run(fn, dtype):
    x = sd.tensor(X, dtype=dtype, requires_grad=True)
    with np.errstate(over="raise", invalid="raise", divide="raise", under="ignore"):
        y = fn(x)
        y.backward(sd.ones(*y.shape, dtype=dtype))
    out, grad = y.detach().numpy(), x.grad.numpy()
    assert np.isfinite(out).all() and np.isfinite(grad).all()
    return out.astype(np.float64), grad.astype(np.float64)


x64 = np.asarray(X)
sig = 0.5 * (1 + np.tanh(x64 / 2))  # exact logistic without overflow
t = np.array([[1.0, 0.0, 1.0], [0.0, 1.0, 0.0], [1.0, 1.0, 0.0]])
y_pm = 2 * t - 1

CASES = [
    # name, fn, expected value, expected gradient (for an upstream gradient of ones)
    ("log_softmax", lambda x: F.log_softmax(x, 1), x64 - _lse(x64)[:, None],
     1 - 3 * np.exp(x64 - _lse(x64)[:, None])),
    ("logsumexp", lambda x: sd.logsumexp(x, 1), _lse(x64), np.exp(x64 - _lse(x64)[:, None])),
    ("softmax", lambda x: F.softmax(x, 1), np.exp(x64 - _lse(x64)[:, None]), np.zeros((3, 3))),
    ("softplus", F.softplus, np.logaddexp(0, x64), sig),
    ("sigmoid", sd.sigmoid, sig, sig * (1 - sig)),
    ("logsigmoid", F.logsigmoid, -np.logaddexp(0, -x64), 1 - sig),
    ("bce_with_logits", lambda x: F.binary_cross_entropy_with_logits(
        x, sd.tensor(t, dtype=x.dtype), reduction="none"),
     np.logaddexp(0, x64) - t * x64, sig - t),
    ("bce_with_logits_pos_weight", lambda x: F.binary_cross_entropy_with_logits(
        x, sd.tensor(t, dtype=x.dtype), pos_weight=sd.tensor([2.0, 1.0, 0.5], dtype=x.dtype),
        reduction="none"),
     np.array([2.0, 1.0, 0.5]) * t * np.logaddexp(0, -x64) + (1 - t) * np.logaddexp(0, x64),
     -np.array([2.0, 1.0, 0.5]) * t * (1 - sig) + (1 - t) * sig),
    ("cross_entropy", lambda x: F.cross_entropy(x, sd.tensor([1, 0, 2]), reduction="none"),
     _lse(x64) - x64[[0, 1, 2], [1, 0, 2]],
     np.exp(x64 - _lse(x64)[:, None]) - np.eye(3)[[1, 0, 2]]),
    ("cross_entropy_probs", lambda x: F.cross_entropy(x, sd.tensor(t / t.sum(1, keepdims=True),
                                                                   dtype=x.dtype),
                                                      reduction="none"),
     -((t / t.sum(1, keepdims=True)) * (x64 - _lse(x64)[:, None])).sum(1),
     np.exp(x64 - _lse(x64)[:, None]) - t / t.sum(1, keepdims=True)),
    ("soft_margin_loss", lambda x: F.soft_margin_loss(x, sd.tensor(y_pm, dtype=x.dtype),
                                                      reduction="none"),
     np.logaddexp(0, -y_pm * x64), -y_pm * (0.5 * (1 + np.tanh(-y_pm * x64 / 2)))),
]


@pytest.mark.parametrize("dtype", [sd.float32, sd.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("name,fn,value,grad", CASES, ids=[c[0] for c in CASES])
def test_finite_and_correct_at_plus_minus_1000(name, fn, value, grad, dtype):
    out, g = _run(fn, dtype)
    tol = dict(rtol=1e-5, atol=1e-5) if dtype == sd.float32 else dict(rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(out, value, **tol)
    np.testing.assert_allclose(g, grad, **tol)
