"""Reverse mode vs forward mode: why deep learning backpropagates (MISSION section 1).

The gradient of a scalar loss over n parameters takes reverse mode *one* backward sweep,
but forward mode *n* sweeps (one Jacobian-vector product per basis direction). Each
benchmark times the full gradient both ways; its ratio (reverse speed / forward speed)
grows about linearly in n. Before timing, the setup checks that both ways give the same
gradient, so the contrast compares two correct computations.
"""
import numpy as np

import shendu as sd
from shendu.bench import benchmark

SIZES = (10, 100, 1000)
HIDDEN = 64


def _problem(n: int):
    """loss(w) = sum(tanh(A @ w + b) ** 2) for w in R^n: a small two-layer graph."""
    rng = np.random.default_rng(n)
    a = sd.from_numpy(rng.standard_normal((HIDDEN, n), dtype=np.float32) / n ** 0.5)
    b = sd.from_numpy(rng.standard_normal(HIDDEN, dtype=np.float32))
    w = sd.from_numpy(rng.standard_normal(n, dtype=np.float32))

    def loss(w):
        h = (a @ w + b).tanh()
        return (h * h).sum()
    return loss, w


def _reverse(n: int):
    loss, w = _problem(n)
    w = w.detach().requires_grad_(True)

    def gradient():
        w.grad = None
        loss(w).backward()
        return w.grad.numpy()
    return gradient


def _forward(n: int):
    loss, w = _problem(n)
    basis = [sd.from_numpy(row) for row in np.eye(n, dtype=np.float32)]

    def gradient():
        # one forward-mode sweep per coordinate direction e_i gives d loss / d w_i
        return np.array([sd.autograd.jvp(loss, w, basis[i])[1].item() for i in range(n)],
                        dtype=np.float32)
    return gradient


def _register(n: int) -> None:
    def reverse_setup():
        rev, fwd = _reverse(n), _forward(n)
        if not np.allclose(rev(), fwd(), rtol=1e-4, atol=1e-5):
            raise AssertionError(f"reverse and forward gradients differ for n={n}")
        return rev

    reverse_setup.__doc__ = (f"Full gradient over n={n} parameters: reverse mode (1 sweep) "
                             f"vs jvp ({n} sweeps)")
    b = benchmark(f"autodiff_n{n}", "autodiff", items_per_iter=1, unit="grads/s")(reverse_setup)
    b.twin(lambda: _forward(n), label="jvp")


for _n in SIZES:
    _register(_n)
