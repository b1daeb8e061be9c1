"""L-BFGS: a quasi-Newton method that builds a low-rank inverse-Hessian estimate from the last
``history_size`` steps (Nocedal & Wright, Numerical Optimization, alg. 7.4 and 3.5/3.6).

It needs the loss several times per step, so ``step`` takes a closure, as in PyTorch::

    def closure():
        opt.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        return loss
    opt.step(closure)

The iteration, its stopping rules and the strong-Wolfe line search follow PyTorch's
``LBFGS`` decision for decision, so both frameworks take the same path.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Iterable

import numpy as np

from ..autograd.grad_mode import enable_grad
from ..backend import get_array_module
from ..tensor import Tensor
from .optimizer import Optimizer, check_range

__all__ = ["LBFGS"]


def _cubic_min(x1, f1, g1, x2, f2, g2, bounds=None):
    """Minimiser of the cubic through (x1, f1) and (x2, f2) with slopes g1 and g2, clipped
    to ``bounds`` (default: the interval between x1 and x2); its midpoint when the cubic
    has no minimum."""
    lo, hi = bounds if bounds is not None else (min(x1, x2), max(x1, x2))
    d1 = g1 + g2 - 3 * (f1 - f2) / (x1 - x2)
    disc = d1 * d1 - g1 * g2
    if disc < 0:
        return (lo + hi) / 2.0
    d2 = math.sqrt(disc)
    if x1 <= x2:
        x = x2 - (x2 - x1) * ((g2 + d2 - d1) / (g2 - g1 + 2 * d2))
    else:
        x = x1 - (x1 - x2) * ((g1 + d2 - d1) / (g1 - g2 + 2 * d2))
    return min(max(x, lo), hi)


class _Point:
    """One trial of the line search: step length, loss, flat gradient, slope along d."""

    __slots__ = ("t", "f", "g", "gtd")

    def __init__(self, t, f, g, gtd):
        self.t, self.f, self.g, self.gtd = t, f, g, gtd


def _strong_wolfe(evaluate, d, start: _Point, t, c1=1e-4, c2=0.9, tolerance_change=1e-9,
                  max_ls=25):
    """Find a step ``t`` along ``d`` meeting the strong Wolfe conditions (sufficient
    decrease and curvature ``|g(t)·d| <= c2 |g(0)·d|``): first bracket an interval that
    contains one, growing the step by cubic extrapolation, then shrink it by cubic
    interpolation (zoom). ``evaluate(t)`` returns the loss and flat gradient at ``x + t d``.
    Returns the accepted point and how many evaluations were made."""
    d_max = float(abs(d).max())
    f0, slope0 = start.f, start.gtd
    f, g = evaluate(t)
    evals, ls_iter = 1, 0
    new = _Point(t, f, g, float(g.dot(d)))
    prev = _Point(0, start.f, start.g, start.gtd)
    bracket, done = None, False

    def too_high(p, ref_f):
        return p.f > f0 + c1 * p.t * slope0 or p.f >= ref_f

    # Bracketing phase.
    while ls_iter < max_ls:
        if new.f > f0 + c1 * new.t * slope0 or (ls_iter > 1 and new.f >= prev.f):
            bracket = [prev, new]
            break
        if abs(new.gtd) <= -c2 * slope0:
            bracket, done = [new], True
            break
        if new.gtd >= 0:
            bracket = [prev, new]
            break
        t = _cubic_min(prev.t, prev.f, prev.gtd, new.t, new.f, new.gtd,
                       bounds=(new.t + 0.01 * (new.t - prev.t), new.t * 10))
        prev = new
        f, g = evaluate(t)
        evals += 1
        new = _Point(t, f, g, float(g.dot(d)))
        ls_iter += 1
    if bracket is None:  # no bracket within max_ls trials: the better of start and last
        bracket = [_Point(0, f0, start.g, start.gtd), new]

    # Zoom phase: shrink the bracket until a point meets the conditions.
    insufficient = False
    low, high = (0, 1) if bracket[0].f <= bracket[-1].f else (1, 0)
    while not done and ls_iter < max_ls:
        a, b = bracket
        if abs(b.t - a.t) * d_max < tolerance_change:
            break
        t = _cubic_min(a.t, a.f, a.gtd, b.t, b.f, b.gtd)
        t_lo, t_hi = min(a.t, b.t), max(a.t, b.t)
        eps = 0.1 * (t_hi - t_lo)
        if min(t_hi - t, t - t_lo) < eps:  # too close to an end: move inwards
            if insufficient or t >= t_hi or t <= t_lo:
                t = t_hi - eps if abs(t - t_hi) < abs(t - t_lo) else t_lo + eps
                insufficient = False
            else:
                insufficient = True
        else:
            insufficient = False
        f, g = evaluate(t)
        evals += 1
        ls_iter += 1
        new = _Point(t, f, g, float(g.dot(d)))
        if too_high(new, bracket[low].f):  # the new point becomes the high end
            bracket[high] = new
            low, high = (0, 1) if bracket[0].f <= bracket[1].f else (1, 0)
        else:  # the new point is the lowest so far: it becomes the low end
            if abs(new.gtd) <= -c2 * slope0:
                done = True
            elif new.gtd * (bracket[high].t - bracket[low].t) >= 0:
                bracket[high] = bracket[low]
            bracket[low] = new
    return bracket[low if len(bracket) == 2 else 0], evals


class LBFGS(Optimizer):
    r"""L-BFGS with an optional strong-Wolfe line search (PyTorch's ``LBFGS``).

    One ``step(closure)`` runs up to ``max_iter`` iterations: the search direction is the
    two-loop-recursion product of the inverse-Hessian estimate (from the last
    ``history_size`` pairs of parameter and gradient changes) with the negative gradient;
    the step length is ``lr`` (the first ever is ``min(1, 1/|g|_1) * lr``), or what the line
    search finds with ``line_search_fn='strong_wolfe'``. It stops early when the largest
    gradient entry is at most ``tolerance_grad``, or a step or loss change is below
    ``tolerance_change``, or after ``max_eval`` loss evaluations.

    All parameters form one group (no per-parameter options), as in PyTorch.

    Args:
        params: the tensors to optimize.
        lr: step length (default 1).
        max_iter: iterations per ``step`` (default 20).
        max_eval: loss evaluations per ``step`` (default ``max_iter * 5 // 4``).
        tolerance_grad: stop when ``max |g| <= tolerance_grad`` (default 1e-7).
        tolerance_change: stop when the step or the loss change is below it (default 1e-9).
        history_size: how many update pairs the Hessian estimate keeps (default 100).
        line_search_fn: None (fixed step) or ``'strong_wolfe'``.

    >>> import shendu as sd
    >>> w = sd.nn.Parameter(sd.tensor([3.0, -1.0], dtype=sd.float64))
    >>> opt = sd.optim.LBFGS([w], line_search_fn="strong_wolfe")
    >>> def closure():
    ...     opt.zero_grad()
    ...     loss = ((w - sd.tensor([1.0, 2.0], dtype=sd.float64)) ** 2).sum()
    ...     loss.backward()
    ...     return loss
    >>> _ = opt.step(closure)
    >>> [round(v, 6) for v in w.tolist()]
    [1.0, 2.0]
    """

    def __init__(self, params: Iterable, lr: float = 1, max_iter: int = 20,
                 max_eval: int | None = None, tolerance_grad: float = 1e-7,
                 tolerance_change: float = 1e-9, history_size: int = 100,
                 line_search_fn: str | None = None):
        if max_eval is None and isinstance(max_iter, int):
            max_eval = max_iter * 5 // 4
        super().__init__(params, dict(lr=lr, max_iter=max_iter, max_eval=max_eval,
                                      tolerance_grad=tolerance_grad,
                                      tolerance_change=tolerance_change,
                                      history_size=history_size,
                                      line_search_fn=line_search_fn))
        if len(self.param_groups) != 1:
            raise ValueError("LBFGS: per-parameter options (several parameter groups) are "
                             "not supported; pass one list of parameters")
        self._params = self.param_groups[0]["params"]

    def _check_group(self, group: dict) -> None:
        for key in ("lr", "tolerance_grad", "tolerance_change"):
            check_range("LBFGS", key, group[key])
        for key in ("max_iter", "max_eval", "history_size"):
            v = group[key]
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
                raise ValueError(f"LBFGS: {key} must be a positive int, got {v!r}")
        if group["line_search_fn"] not in (None, "strong_wolfe"):
            raise ValueError(f"LBFGS: line_search_fn must be None or 'strong_wolfe', got "
                             f"{group['line_search_fn']!r}")
        if getattr(self, "param_groups", None):
            raise ValueError("LBFGS: per-parameter options (several parameter groups) are "
                             "not supported; pass one list of parameters")

    # ------------------------------------------------------------------ flat views
    def _xp(self):
        return get_array_module(self._params[0]._data)

    def _flat_grad(self):
        xp = self._xp()
        parts = [p.grad._data.reshape(-1) if p.grad is not None
                 else xp.zeros(p._data.size, p._data.dtype) for p in self._params]
        return xp.concatenate(parts)

    def _add_to_params(self, step: float, direction) -> None:
        offset = 0
        for p in self._params:
            n = p._data.size
            p._data += step * direction[offset:offset + n].reshape(p._data.shape)
            p._version[0] += 1
            offset += n

    def _set_params(self, arrays) -> None:
        for p, a in zip(self._params, arrays):
            p._data[...] = a
            p._version[0] += 1

    def _loss(self, closure) -> tuple[float, object]:
        """Run the closure (gradients on) and return ``(float loss, its original value)``."""
        with enable_grad():
            value = closure()
        return float(value), value

    def _as_array(self, v):
        """A state value as a backend array (state loaded from a state dict may hold
        shendu or torch tensors)."""
        if v is None or isinstance(v, (int, float)):
            return v
        if isinstance(v, Tensor):
            return v._data
        if callable(getattr(v, "detach", None)):
            v = np.asarray(v.detach().cpu())
        return self._xp().asarray(v)

    # ------------------------------------------------------------------ the iteration
    def step(self, closure: Callable[[], Tensor] | None = None):  # type: ignore[override]
        """Run up to ``max_iter`` L-BFGS iterations; returns the closure's first loss."""
        if closure is None:
            raise TypeError("LBFGS.step: a closure is required (a function that zeroes the "
                            "gradients, computes the loss, calls backward() and returns it)")
        group = self.param_groups[0]
        lr, max_iter, max_eval = group["lr"], group["max_iter"], group["max_eval"]
        tol_grad, tol_change = group["tolerance_grad"], group["tolerance_change"]
        history = group["history_size"]
        state = self.state[self._params[0]]
        state.setdefault("func_evals", 0)
        state.setdefault("n_iter", 0)

        loss, orig_loss = self._loss(closure)
        evals = 1
        state["func_evals"] += 1
        g = self._flat_grad()
        if float(abs(g).max()) <= tol_grad:  # already optimal
            return orig_loss

        arr = self._as_array
        d, t = arr(state.get("d")), state.get("t")
        t = None if t is None else float(t)
        old_dirs = [arr(a) for a in state.get("old_dirs", [])]  # y: gradient changes
        old_stps = [arr(a) for a in state.get("old_stps", [])]  # s: parameter changes
        ro = [float(r) for r in state.get("ro", [])]
        h_diag = float(state.get("H_diag", 1.0))
        prev_g, prev_loss = arr(state.get("prev_flat_grad")), state.get("prev_loss")
        prev_loss = None if prev_loss is None else float(prev_loss)

        n_iter = 0
        while n_iter < max_iter:
            n_iter += 1
            state["n_iter"] += 1
            if state["n_iter"] == 1:
                d = -g
                old_dirs, old_stps, ro, h_diag = [], [], [], 1.0
            else:
                y, s = g - prev_g, d * t
                ys = float(y.dot(s))
                if ys > 1e-10:  # keep the pair only where the curvature is positive
                    if len(old_dirs) == history:
                        old_dirs.pop(0)
                        old_stps.pop(0)
                        ro.pop(0)
                    old_dirs.append(y)
                    old_stps.append(s)
                    ro.append(1.0 / ys)
                    h_diag = ys / float(y.dot(y))
                d = self._two_loop(g, old_dirs, old_stps, ro, h_diag)
            prev_g = g.copy()
            prev_loss = loss
            t = (min(1.0, 1.0 / float(abs(g).sum())) * lr if state["n_iter"] == 1 else lr)
            gtd = float(g.dot(d))
            if gtd > -tol_change:  # not a descent direction any more
                break

            ls_evals = 0
            if group["line_search_fn"] == "strong_wolfe":
                x0 = [p._data.copy() for p in self._params]

                def evaluate(step, x0=x0, d=d):
                    self._add_to_params(step, d)
                    f_new, _ = self._loss(closure)
                    g_new = self._flat_grad()
                    self._set_params(x0)
                    return f_new, g_new

                point, ls_evals = _strong_wolfe(evaluate, d, _Point(0, loss, g, gtd), t,
                                                tolerance_change=1e-9,
                                                max_ls=max_eval - evals)
                loss, g, t = point.f, point.g, point.t
                self._add_to_params(t, d)
                optimal = float(abs(g).max()) <= tol_grad
            else:
                self._add_to_params(t, d)
                optimal = False
                if n_iter != max_iter:  # re-evaluate unless this was the last iteration
                    loss, _ = self._loss(closure)
                    g = self._flat_grad()
                    optimal = float(abs(g).max()) <= tol_grad
                    ls_evals = 1
            evals += ls_evals
            state["func_evals"] += ls_evals

            if n_iter == max_iter or evals >= max_eval or optimal:
                break
            if float(abs(d * t).max()) <= tol_change or abs(loss - prev_loss) < tol_change:
                break

        # Tensors, as PyTorch keeps: they save and load on their device (a raw CuPy array
        # could not be saved at all)
        wrap = Tensor._wrap
        state.update(d=None if d is None else wrap(d), t=t, old_dirs=[wrap(a) for a in old_dirs],
                     old_stps=[wrap(a) for a in old_stps], ro=ro, H_diag=h_diag,
                     prev_flat_grad=None if prev_g is None else wrap(prev_g),
                     prev_loss=prev_loss)
        return orig_loss

    @staticmethod
    def _two_loop(g, old_dirs, old_stps, ro, h_diag):
        """``-H g`` for the L-BFGS inverse-Hessian estimate H (Nocedal & Wright alg. 7.4)."""
        q = -g
        alpha = [0.0] * len(old_dirs)
        for i in range(len(old_dirs) - 1, -1, -1):
            alpha[i] = float(old_stps[i].dot(q)) * ro[i]
            q = q - alpha[i] * old_dirs[i]
        r = q * h_diag
        for i in range(len(old_dirs)):
            beta = float(old_dirs[i].dot(r)) * ro[i]
            r = r + (alpha[i] - beta) * old_stps[i]
        return r
