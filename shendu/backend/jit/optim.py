"""Optimizer updates over flat parameter, gradient and state arrays, in place.

Each is the NumPy reference of its optimizer (``backend/updates.py``) written as one loop,
with the same operations in the same order, so the results agree to rounding; scalars
arrive already converted to the parameters' dtype, as NumPy would use them.
"""
from __future__ import annotations

import math

from numba import njit, prange

from .elementwise import kernel


@njit(inline="always")
def _effective_grad(p, g, weight_decay, maximize):
    """``±g + weight_decay * p``, as ``updates.effective_grad`` forms it."""
    d = -g if maximize else g
    return p * weight_decay + d if weight_decay != 0 else d


@kernel
def sgd(p, g, lr, weight_decay, maximize):
    """``p -= lr * d`` with ``d = ±g + weight_decay * p``."""
    for i in prange(p.size):
        d = _effective_grad(p[i], g[i], weight_decay, maximize)
        p[i] = p[i] - d * lr


@kernel
def sgd_momentum(p, g, buf, lr, weight_decay, maximize, momentum, keep, nesterov, first):
    """Heavy-ball or Nesterov momentum; ``keep = 1 - dampening``; on the first step the
    velocity starts as the gradient itself."""
    for i in prange(p.size):
        d = _effective_grad(p[i], g[i], weight_decay, maximize)
        if first:
            b = d
        elif keep != 1:
            b = buf[i] * momentum + d * keep
        else:
            b = buf[i] * momentum + d
        buf[i] = b
        step = d + b * momentum if nesterov else b
        p[i] = p[i] - step * lr


@kernel
def adam(p, g, m, v, vmax, beta1_w, beta1, from_start, beta2, beta2_w, eps, weight_decay,
         decoupled, maximize, neg_lr_bias1, bias2_sqrt, shrink):
    """Adam/AdamW with optional AMSGrad (``vmax`` non-empty). ``beta1_w = 1 - beta1`` is
    the lerp weight and ``from_start`` whether it is below 0.5 (decided on the Python
    float, as the NumPy path does), ``beta2_w = 1 - beta2``, ``shrink = 1 - lr *
    weight_decay`` AdamW's decay factor."""
    amsgrad = vmax.size > 0
    for i in prange(p.size):
        if decoupled and weight_decay != 0:
            p[i] = p[i] * shrink
        d = -g[i] if maximize else g[i]
        if not decoupled and weight_decay != 0:  # (AdamW's decay shrank p above)
            d = p[i] * weight_decay + d
        diff = d - m[i]  # lerp as PyTorch rounds it (see optim/adam.py)
        mi = m[i] + diff * beta1_w if from_start else d - diff * beta1
        m[i] = mi
        vi = v[i] * beta2 + d * beta2_w * d
        v[i] = vi
        if amsgrad:
            vm = vmax[i]
            vi = vm if (vm > vi or vm != vm) else vi
            vmax[i] = vi
        denom = math.sqrt(vi) / bias2_sqrt + eps
        p[i] = p[i] + mi * neg_lr_bias1 / denom


@kernel
def rmsprop(p, g, sq, avg, buf, lr, alpha, alpha_w, alpha_keep, lerp_low, eps, weight_decay,
            maximize, momentum):
    """RMSprop, centered when ``avg`` is non-empty, with momentum when ``buf`` is.
    ``alpha_w = 1 - alpha`` is the lerp weight of the centered mean and ``alpha_keep`` its
    ``1 - alpha_w``; ``lerp_low`` is ``alpha_w < 0.5`` decided on the Python float, as the
    NumPy path decides it (the float32 weight may round onto 0.5)."""
    centered = avg.size > 0
    heavy = buf.size > 0
    for i in prange(p.size):
        d = _effective_grad(p[i], g[i], weight_decay, maximize)
        s = sq[i] * alpha + d * alpha_w * d
        sq[i] = s
        if centered:
            diff = d - avg[i]
            a = avg[i] + diff * alpha_w if lerp_low else d - diff * alpha_keep
            avg[i] = a
            s = s - a * a
        denom = math.sqrt(s) + eps
        if heavy:
            b = buf[i] * momentum + d / denom
            buf[i] = b
            p[i] = p[i] - b * lr
        else:
            p[i] = p[i] + d * -lr / denom


@kernel
def adagrad(p, g, acc, neg_clr, eps, weight_decay, maximize):
    """Adagrad; ``neg_clr`` is minus this step's decayed learning rate."""
    for i in prange(p.size):
        d = _effective_grad(p[i], g[i], weight_decay, maximize)
        s = acc[i] + d * d
        acc[i] = s
        p[i] = p[i] + d * neg_clr / (math.sqrt(s) + eps)


@kernel
def adadelta(p, g, sq, acc, lr, rho, rho_w, eps, weight_decay, maximize):
    """Adadelta; ``rho_w = 1 - rho`` weighs the new squared gradient and squared step."""
    for i in prange(p.size):
        d = _effective_grad(p[i], g[i], weight_decay, maximize)
        s = sq[i] * rho + d * rho_w * d
        sq[i] = s
        std = math.sqrt(s + eps)
        delta = math.sqrt(acc[i] + eps) / std * d
        acc[i] = acc[i] * rho + delta * rho_w * delta
        p[i] = p[i] - delta * lr
