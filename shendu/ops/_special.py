"""Special functions on backend arrays: erf, erfc, erfinv, lgamma, digamma, trigamma.

SciPy (``cupyx.scipy.special`` on a GPU) computes them when it is installed; without it the
NumPy versions below are used, accurate to float64 rounding for erf/erfc/lgamma (Python's
``math`` functions, element by element) and to about 1e-13 relative for the series.
"""
from __future__ import annotations

import math

import numpy as np


def _scipy(xp, name):
    """SciPy's (or CuPy's) ``special.name``, or None when it is not installed."""
    try:
        if xp is np:
            import scipy.special as sp
        else:  # pragma: no cover - needs a GPU
            import cupyx.scipy.special as sp
    except ImportError:  # pragma: no cover - scipy is an optional dependency
        return None
    return getattr(sp, name)


def _elementwise(fn, x):
    out = np.frompyfunc(fn, 1, 1)(x)
    return np.asarray(out, dtype=x.dtype)


def erf(xp, x):
    f = _scipy(xp, "erf")
    return f(x) if f is not None else np_erf(x)


def erfc(xp, x):
    f = _scipy(xp, "erfc")
    return f(x) if f is not None else np_erfc(x)


def erfinv(xp, x):
    f = _scipy(xp, "erfinv")
    return f(x) if f is not None else np_erfinv(x)


def lgamma(xp, x):
    f = _scipy(xp, "gammaln")
    return f(x) if f is not None else np_lgamma(x)


def digamma(xp, x):
    f = _scipy(xp, "digamma")
    return f(x) if f is not None else np_polygamma(0, x)


def trigamma(xp, x):
    f = _scipy(xp, "polygamma")
    return f(1, x).astype(x.dtype, copy=False) if f is not None else np_polygamma(1, x)


# ---------------------------------------------------------------------- NumPy versions
def np_erf(x):
    return _elementwise(math.erf, x)


def np_erfc(x):
    return _elementwise(math.erfc, x)


def np_lgamma(x):
    def lg(v):
        if v <= 0 and v == math.floor(v):
            return math.inf  # poles, as torch.lgamma
        return math.lgamma(v)
    return _elementwise(lg, x)


def np_erfinv(x):
    """Inverse of erf: Giles' single-precision approximation, then Newton steps on erf."""
    x = np.asarray(x)
    with np.errstate(divide="ignore", invalid="ignore"):
        return _erfinv(x)


def _erfinv(x):
    w = -np.log((1.0 - x) * (1.0 + x))
    small = w < 5.0
    ws = np.where(small, w - 2.5, np.sqrt(np.where(small, 5.0, w)) - 3.0)
    p_small = [2.81022636e-08, 3.43273939e-07, -3.5233877e-06, -4.39150654e-06,
               0.00021858087, -0.00125372503, -0.00417768164, 0.246640727, 1.50140941]
    p_big = [-0.000200214257, 0.000100950558, 0.00134934322, -0.00367342844,
             0.00573950773, -0.0076224613, 0.00943887047, 1.00167406, 2.83297682]
    ps = np.zeros_like(ws)
    pb = np.zeros_like(ws)
    for cs, cb in zip(p_small, p_big):
        ps = ps * ws + cs
        pb = pb * ws + cb
    a = np.abs(x)
    y = np.where(small, ps, pb) * a
    finite = a < 1
    # Newton steps. In the tail erf(y) is near 1 and loses its digits: there solve
    # log(erfc(y)) = log(1 - a) instead, which is also close to linear in y.
    tail = a >= 0.5
    for _ in range(4):
        yf = np.where(finite, y, 0.0)
        slope = 2 / math.sqrt(math.pi) * np.exp(-yf * yf)  # d/dy erf(y)
        c = np_erfc(yf)
        step = np.where(tail, (np.log(c) - np.log(np.where(finite, 1 - a, 1.0))) * c / slope,
                        (np_erf(yf) - a) / slope)
        y = np.where(finite, y - np.where(tail, -step, step), y)
    y = np.where(a == 1, np.inf, y) * np.sign(x)
    return np.where(a > 1, np.nan, y).astype(x.dtype, copy=False)


def np_polygamma(n, x):
    """digamma (n=0) or trigamma (n=1): recurrence up to x >= 8, then the asymptotic series;
    reflection for negative x."""
    dtype = np.asarray(x).dtype
    x = np.asarray(x, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        return _polygamma(n, x).astype(dtype, copy=False)


def _polygamma(n, x):
    neg = x < 0.5
    z = np.where(neg, 1.0 - x, x)  # reflection: psi(1-x) - psi(x) = pi cot(pi x)
    acc = np.zeros_like(z)
    while True:
        low = z < 8
        if not low.any():
            break
        acc = acc + np.where(low, 1 / z if n == 0 else 1 / (z * z), 0.0)
        z = np.where(low, z + 1, z)
    z2 = 1 / (z * z)
    if n == 0:
        series = np.log(z) - 0.5 / z - z2 * (1 / 12 - z2 * (1 / 120 - z2 * (1 / 252 - z2 * (
            1 / 240 - z2 / 132))))
        val = series - acc
    else:
        series = 1 / z + 0.5 * z2 + z2 / z * (1 / 6 - z2 * (1 / 30 - z2 * (1 / 42 - z2 / 30)))
        val = series + acc
    if n == 0:
        refl = val - np.pi / np.tan(np.pi * x)
    else:
        refl = -val + (np.pi / np.sin(np.pi * x)) ** 2
    out = np.where(neg, refl, val)
    pole = (x <= 0) & (x == np.floor(x))
    # at 0 digamma is -inf (the limit from the right, as torch); other poles are nan
    return np.where(pole, (np.where(x == 0, -np.inf, np.nan) if n == 0 else np.inf), out)
