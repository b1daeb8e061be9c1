"""Optimizer updates: one dispatch function per optimizer (``shendu/optim``), which runs
the compiled kernel (``jit/optim.py``) or the NumPy reference written here, in place, over
the parameter, its gradient and its state buffers.

The kernel takes C-contiguous NumPy float32/float64 arrays when the kernels are on; it
sees them flattened, its numbers converted to their float type. Everything else (CuPy
arrays, strided arrays, kernels off) runs the NumPy reference through ``pool.apply``,
which splits a large array between shendu's threads (or defers it to the enclosing
``pool.batch()``). Each call is reported to ``runtime.trace_paths()`` as
``(name, 'numba' | 'numpy')``, ``name`` the optimizer's kernel (``'sgd'``,
``'sgd_momentum'``, ``'adam'``, ``'rmsprop'``, ``'adagrad'``, ``'adadelta'``).

The NumPy references write through two or three scratch arrays (``tmp``) of the
parameter's shape, given by ``pool.apply``; the kernel needs none.

>>> import numpy as np
>>> from shendu.backend import runtime, updates
>>> p, g = np.ones(3), np.full(3, 2.0)
>>> with runtime.trace_paths() as log:
...     updates.sgd([p, g], 0.25, 0.0, False)
>>> p, log[0][0]
(array([0.5, 0.5, 0.5]), 'sgd')
"""
from __future__ import annotations

import math

import numpy as np

from . import jit, pool
from .cpu import _note

__all__ = ["sgd", "sgd_momentum", "adam", "rmsprop", "adagrad", "adadelta",
           "effective_grad", "lerp_"]


def _kernel_takes(arrays) -> bool:
    return jit.on_all(*arrays) and all(a.flags.c_contiguous for a in arrays)


def _run_kernel(name: str, arrays, *args) -> None:
    """``jit.<name>`` over ``arrays`` flattened; numbers become the arrays' float type,
    booleans (and arrays) stay."""
    _note(name, "numba")
    f = arrays[0].dtype.type
    args = [a if isinstance(a, (bool, np.bool_, np.ndarray)) else f(a) for a in args]
    getattr(jit, name)(*[a.reshape(-1) for a in arrays], *args)


# ---------------------------------------------------------------------- shared steps
def effective_grad(xp, p, g, out, weight_decay: float, maximize: bool):
    """The gradient an update follows: ``±g + weight_decay * p`` (PyTorch's coupled decay).

    Returns ``g`` itself when nothing changes it (it is never written), else ``out``.
    """
    if weight_decay:
        xp.multiply(p, weight_decay, out=out)
        (xp.subtract if maximize else xp.add)(out, g, out=out)
        return out
    if maximize:
        return xp.negative(g, out=out)
    return g


def lerp_(xp, start, end, weight, tmp):
    """``start += weight * (end - start)`` in place, rounded as PyTorch's ``lerp_``."""
    xp.subtract(end, start, out=tmp)
    if weight < 0.5:
        xp.multiply(tmp, weight, out=tmp)
        xp.add(start, tmp, out=start)
    else:  # near weight 1 measure from ``end`` so the result lands on it exactly
        xp.multiply(tmp, 1 - weight, out=tmp)
        xp.subtract(end, tmp, out=start)


# ---------------------------------------------------------------------- SGD
def sgd(arrays, lr, weight_decay, maximize) -> None:
    """Plain SGD on ``arrays = [p, g]``: ``p -= lr * d``, ``d = ±g + weight_decay * p``."""
    if _kernel_takes(arrays):
        _run_kernel("sgd", arrays, lr, weight_decay, maximize)
        return
    _note("sgd", "numpy")
    pool.apply(_sgd_numpy, arrays, 1, lr, weight_decay, maximize)


def _sgd_numpy(xp, arrays, tmp, lr, weight_decay, maximize):
    p, g = arrays
    t = tmp[0]
    if maximize and not weight_decay:  # climb p += lr * g without negating g first
        xp.multiply(g, lr, out=t)
        xp.add(p, t, out=p)
        return
    d = effective_grad(xp, p, g, t, weight_decay, maximize)
    xp.multiply(d, lr, out=t)
    xp.subtract(p, t, out=p)


def sgd_momentum(arrays, lr, weight_decay, maximize, momentum, dampening, nesterov,
                 first) -> None:
    """SGD with heavy-ball or Nesterov momentum on ``arrays = [p, g, buf]``; on the
    ``first`` step the velocity starts as the gradient itself."""
    if _kernel_takes(arrays):
        _run_kernel("sgd_momentum", arrays, lr, weight_decay, maximize, momentum,
                    1 - dampening, nesterov, first)
        return
    _note("sgd_momentum", "numpy")
    pool.apply(_sgd_momentum_numpy, arrays, 2, lr, weight_decay, maximize, momentum,
               dampening, nesterov, first)


def _sgd_momentum_numpy(xp, arrays, tmp, lr, weight_decay, maximize, momentum, dampening,
                        nesterov, first):
    p, g, buf = arrays
    t, t2 = tmp
    d = effective_grad(xp, p, g, t, weight_decay, maximize)
    if first:  # the buffer starts as the first gradient itself, not a decayed zero
        xp.copyto(buf, d)
    else:
        xp.multiply(buf, momentum, out=buf)
        if dampening:
            xp.multiply(d, 1 - dampening, out=t2)
            xp.add(buf, t2, out=buf)
        else:
            xp.add(buf, d, out=buf)
    if nesterov:  # look ahead along the velocity: d + momentum * buf
        xp.multiply(buf, momentum, out=t2)
        d = xp.add(d, t2, out=t2)
    else:
        d = buf
    xp.multiply(d, lr, out=t)
    xp.subtract(p, t, out=p)


# ---------------------------------------------------------------------- Adam
def adam(arrays, lr, beta1, beta2, eps, weight_decay, decoupled, maximize, step) -> None:
    """Adam's step number ``step`` on ``arrays = [p, g, m, v]`` (``+ [vmax]`` for AMSGrad);
    ``decoupled``: AdamW's weight decay."""
    w1 = 1 - beta1
    bias1, bias2_sqrt = 1 - beta1 ** step, math.sqrt(1 - beta2 ** step)
    # the kernel always takes a vmax: an empty one switches AMSGrad off
    vmax = arrays[4] if len(arrays) == 5 else arrays[0].reshape(-1)[:0]
    fast = arrays[:4] + [vmax]
    if _kernel_takes(fast):
        _run_kernel("adam", fast, w1, 1 - w1, w1 < 0.5, beta2, 1 - beta2, eps, weight_decay,
                    decoupled, maximize, -lr / bias1, bias2_sqrt, 1 - lr * weight_decay)
        return
    _note("adam", "numpy")
    pool.apply(_adam_numpy, arrays, 2, lr, beta1, beta2, eps, weight_decay, decoupled,
               maximize, bias1, bias2_sqrt)


def _adam_numpy(xp, arrays, tmp, lr, beta1, beta2, eps, weight_decay, decoupled, maximize,
                bias1, bias2_sqrt):
    p, g, m, v = arrays[:4]
    t, t2 = tmp
    if decoupled:  # AdamW shrinks the weights directly instead of through the gradient
        if weight_decay:
            xp.multiply(p, 1 - lr * weight_decay, out=p)
        d = effective_grad(xp, p, g, t, 0, maximize)
    else:
        d = effective_grad(xp, p, g, t, weight_decay, maximize)
    lerp_(xp, m, d, 1 - beta1, t2)               # first moment
    xp.multiply(d, 1 - beta2, out=t2)            # second moment: v = b2 v + (1 - b2) d²
    xp.multiply(t2, d, out=t2)
    xp.multiply(v, beta2, out=v)
    xp.add(v, t2, out=v)
    if len(arrays) == 5:  # AMSGrad normalises by the largest second moment seen so far
        v = xp.maximum(arrays[4], v, out=arrays[4])
    xp.sqrt(v, out=t2)                           # denominator sqrt(v̂) + eps
    xp.divide(t2, bias2_sqrt, out=t2)
    xp.add(t2, eps, out=t2)
    xp.multiply(m, -lr / bias1, out=t)           # d is dead now, so t is free
    xp.divide(t, t2, out=t)
    xp.add(p, t, out=p)


# ---------------------------------------------------------------------- RMSprop
def rmsprop(arrays, lr, alpha, eps, weight_decay, momentum, centered, maximize) -> None:
    """RMSprop on ``arrays = [p, g, sq]``, then ``avg`` if ``centered``, then the momentum
    buffer if ``momentum > 0``."""
    none = arrays[0].reshape(-1)[:0]  # an empty state array switches its part off
    avg = arrays[3] if centered else none
    buf = arrays[-1] if momentum > 0 else none
    fast = arrays[:3] + [avg, buf]
    if _kernel_takes(fast):
        w = 1 - alpha
        _run_kernel("rmsprop", fast, lr, alpha, w, 1 - w, w < 0.5, eps, weight_decay,
                    maximize, momentum)
        return
    _note("rmsprop", "numpy")
    pool.apply(_rmsprop_numpy, arrays, 2, lr, alpha, eps, weight_decay, momentum, centered,
               maximize)


def _rmsprop_numpy(xp, arrays, tmp, lr, alpha, eps, weight_decay, momentum, centered,
                   maximize):
    p, g, sq = arrays[:3]
    t, t2 = tmp
    d = effective_grad(xp, p, g, t, weight_decay, maximize)
    xp.multiply(d, 1 - alpha, out=t2)            # sq = alpha sq + (1 - alpha) d²
    xp.multiply(t2, d, out=t2)
    xp.multiply(sq, alpha, out=sq)
    xp.add(sq, t2, out=sq)
    if centered:  # subtract the squared mean gradient: a variance, not a raw second moment
        avg = arrays[3]
        lerp_(xp, avg, d, 1 - alpha, t2)
        xp.multiply(avg, avg, out=t2)
        xp.subtract(sq, t2, out=t2)
        xp.sqrt(t2, out=t2)
    else:
        xp.sqrt(sq, out=t2)
    xp.add(t2, eps, out=t2)
    if momentum > 0:
        buf = arrays[-1]
        xp.multiply(buf, momentum, out=buf)
        xp.divide(d, t2, out=t)
        xp.add(buf, t, out=buf)
        xp.multiply(buf, lr, out=t)
        xp.subtract(p, t, out=p)
    else:
        xp.multiply(d, -lr, out=t)
        xp.divide(t, t2, out=t)
        xp.add(p, t, out=p)


# ---------------------------------------------------------------------- Adagrad
def adagrad(arrays, clr, eps, weight_decay, maximize) -> None:
    """Adagrad on ``arrays = [p, g, sum]`` with the step's learning rate ``clr``."""
    if _kernel_takes(arrays):
        _run_kernel("adagrad", arrays, -clr, eps, weight_decay, maximize)
        return
    _note("adagrad", "numpy")
    pool.apply(_adagrad_numpy, arrays, 2, clr, eps, weight_decay, maximize)


def _adagrad_numpy(xp, arrays, tmp, clr, eps, weight_decay, maximize):
    p, g, acc = arrays
    t, t2 = tmp
    d = effective_grad(xp, p, g, t, weight_decay, maximize)
    xp.multiply(d, d, out=t2)
    xp.add(acc, t2, out=acc)
    xp.sqrt(acc, out=t2)
    xp.add(t2, eps, out=t2)
    xp.multiply(d, -clr, out=t)
    xp.divide(t, t2, out=t)
    xp.add(p, t, out=p)


# ---------------------------------------------------------------------- Adadelta
def adadelta(arrays, lr, rho, eps, weight_decay, maximize) -> None:
    """Adadelta on ``arrays = [p, g, square_avg, acc_delta]``."""
    if _kernel_takes(arrays):
        _run_kernel("adadelta", arrays, lr, rho, 1 - rho, eps, weight_decay, maximize)
        return
    _note("adadelta", "numpy")
    pool.apply(_adadelta_numpy, arrays, 3, lr, rho, eps, weight_decay, maximize)


def _adadelta_numpy(xp, arrays, tmp, lr, rho, eps, weight_decay, maximize):
    p, g, sq, acc = arrays
    t, t2, delta = tmp
    d = effective_grad(xp, p, g, t, weight_decay, maximize)
    xp.multiply(d, 1 - rho, out=t2)              # sq = rho sq + (1 - rho) d²
    xp.multiply(t2, d, out=t2)
    xp.multiply(sq, rho, out=sq)
    xp.add(sq, t2, out=sq)
    xp.add(sq, eps, out=t2)                      # std = sqrt(sq + eps)
    xp.sqrt(t2, out=t2)
    xp.add(acc, eps, out=delta)                  # delta = sqrt(acc + eps) / std * d
    xp.sqrt(delta, out=delta)
    xp.divide(delta, t2, out=delta)
    xp.multiply(delta, d, out=delta)
    xp.multiply(delta, 1 - rho, out=t2)          # acc = rho acc + (1 - rho) delta²
    xp.multiply(t2, delta, out=t2)
    xp.multiply(acc, rho, out=acc)
    xp.add(acc, t2, out=acc)
    xp.multiply(delta, lr, out=t2)
    xp.subtract(p, t2, out=p)
