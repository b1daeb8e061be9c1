"""One compiled loop for a fused elementwise group (numba), used when nothing is recorded.

The group's members become scalar expressions inside one loop over the elements, so each
input is read once and each output written once, with one call instead of one NumPy call
per member. Used only when the kernels are on (``shendu.backend.jit.on_all``: numba
importable, NumPy float32/float64 arrays) and every input has the output's shape (or is a
single element); otherwise the group runs on its NumPy buffer plan.

Constants are typed as the arrays' dtype, so float32 arithmetic stays float32. The
transcendental functions are numba's (libm), which may differ from NumPy's in the last
bit: results equal the NumPy path within a few ulp, not bit for bit.
"""
from __future__ import annotations

import numpy as np

from ..backend import jit as _kjit

# op -> expression over the argument names a, b and the constant c
_EXPR = {
    "add": "{a} + {b}", "sub": "{a} - {b}", "mul": "{a} * {b}", "div": "{a} / {b}",
    "add_scalar": "{a} + {c}", "mul_scalar": "{a} * {c}", "rsub_scalar": "{c} - {a}",
    "rdiv_scalar": "{c} / {a}", "neg": "-{a}", "exp": "math.exp({a})", "log": "math.log({a})",
    "log1p": "math.log1p({a})", "sqrt": "math.sqrt({a})", "tanh": "math.tanh({a})",
    "sin": "math.sin({a})", "cos": "math.cos({a})", "abs": "abs({a})",
    "relu": "({a} if not {a} <= ZERO else ZERO)",
    "sigmoid": "_sigmoid({a})",
}
# op -> (d/da, d/db) as expressions of the incoming gradient G, the arguments a, b, the
# result t and the constant c (None: that argument has no gradient)
_DERIV = {
    "add": ("G", "G"), "sub": ("G", "-G"), "mul": ("G * {b}", "G * {a}"),
    "div": ("G / {b}", "-G * {a} / ({b} * {b})"), "add_scalar": ("G",),
    "mul_scalar": ("G * {c}",), "rsub_scalar": ("-G",), "rdiv_scalar": ("-G * {t} / {a}",),
    "neg": ("-G",), "exp": ("G * {t}",), "log": ("G / {a}",), "log1p": ("G / (ONE + {a})",),
    "sqrt": ("G / ({t} + {t})",), "tanh": ("G * (ONE - {t} * {t})",),
    "sin": ("G * math.cos({a})",), "cos": ("-G * math.sin({a})",),
    "abs": ("(G if {a} > ZERO else (-G if {a} < ZERO else ZERO))",),
    "relu": ("(G if {t} > ZERO else ZERO)",), "sigmoid": ("G * {t} * (ONE - {t})",),
}
_CACHE: dict = {}


def _source(members, outs, n_in):
    lines, consts = [], {}
    for j, (cls, refs, attrs) in enumerate(members):
        op = _op_of(cls)
        names = [f"x{i}" if k == "in" else f"t{i}" for k, i in refs]
        c = None
        if "c" in attrs:
            c = f"C{len(consts)}"
            consts[c] = attrs["c"]
        if op not in _EXPR or (op.endswith("_scalar") and c is None):
            return None, None
        expr = _EXPR[op].format(a=names[0], b=names[1] if len(names) > 1 else "", c=c)
        lines.append(f"        t{j} = {expr}")
    args = ", ".join([f"in{i}" for i in range(n_in)] + [f"out{k}" for k in range(len(outs))])
    body = [f"def kernel({args}):", "    for i in range(out0.shape[0]):"]
    body += [f"        x{i} = in{i}[i if in{i}.shape[0] > 1 else 0]" for i in range(n_in)]
    body += lines + [f"        out{k}[i] = t{j}" for k, j in enumerate(outs)]
    return "\n".join(body), consts


def _backward_source(members, outs, scalar):
    """A loop that recomputes the group per element, then runs its derivative rules in
    reverse: nothing but the inputs is kept between forward and backward."""
    n_in = len(scalar)
    fwd, consts = _source(members, outs, n_in)
    if fwd is None:
        return None, None
    body_fwd = [ln for ln in fwd.splitlines()[2:] if not ln.strip().startswith("out")]
    args = ([f"in{i}" for i in range(n_in)] + [f"g{k}" for k in range(len(outs))]
            + [f"gin{i}" for i in range(n_in)])
    lines = [f"def kernel({', '.join(args)}):", "    for i in range(g0.shape[0]):"]
    lines += body_fwd
    lines += [f"        gx{i} = ZERO" for i in range(n_in)]
    lines += [f"        gt{j} = ZERO" for j in range(len(members))]
    lines += [f"        gt{j} = gt{j} + g{k}[i]" for k, j in enumerate(outs)]
    for j in range(len(members) - 1, -1, -1):
        cls, refs, attrs = members[j]
        op = _op_of(cls)
        names = [f"x{i}" if k == "in" else f"t{i}" for k, i in refs]
        c = None
        if "c" in attrs:
            c = f"C{sum('c' in m[2] for m in members[:j])}"
        lines.append(f"        G = gt{j}")
        for (k, i), d in zip(refs, _DERIV[op]):
            target = f"gx{i}" if k == "in" else f"gt{i}"
            expr = d.format(a=names[0], b=names[1] if len(names) > 1 else "", t=f"t{j}", c=c)
            lines.append(f"        {target} = {target} + {expr}")
    for i in range(n_in):
        lines.append(f"        gin{i}[0] += gx{i}" if scalar[i] else f"        gin{i}[i] = gx{i}")
    return "\n".join(lines), consts


def _op_of(cls):
    from .trace import op_name

    return op_name(cls)


class GroupKernel:
    """Compiles on first use; ``__call__(arrays)`` returns the group's results, or None
    when the kernel cannot take these arrays (the caller then runs the NumPy plan)."""

    def __init__(self, members, outs, shape, dtype):
        self.members, self.outs = members, outs
        self.shape, self.dtype = tuple(shape), np.dtype(dtype)
        self.size = int(np.prod(self.shape, dtype=np.int64))
        self.fn = None
        self.failed = False

    def _build(self, n_in, scalar=None):
        if scalar is None:
            src, consts = _source(self.members, self.outs, n_in)
        elif all(_op_of(m[0]) in _DERIV for m in self.members):
            src, consts = _backward_source(self.members, self.outs, scalar)
        else:
            src = None
        if src is None:
            return None
        key = (src, tuple(sorted(consts.items())), self.dtype.str)
        fn = _CACHE.get(key)
        if fn is None:
            import math

            import numba

            t = self.dtype.type
            scope = {"math": math, "ZERO": t(0), "ONE": t(1),
                     **{k: t(v) for k, v in consts.items()}}
            one = t(1)

            @numba.njit(inline="always", error_model="numpy")
            def _sigmoid(x):  # eager's formula: exp(-|x|) never overflows
                e = math.exp(-abs(x))
                return one / (one + e) if x >= 0 else e / (one + e)

            scope["_sigmoid"] = _sigmoid
            exec(src, scope)  # noqa: S102 - source built above from a fixed table
            fn = _CACHE[key] = numba.njit(error_model="numpy")(scope["kernel"])
        return fn

    def __call__(self, arrays):
        if self.failed or not _kjit.on_all(*arrays):
            return None
        flat = []
        for a in arrays:
            if a.shape != self.shape and a.size != 1:
                return None
            flat.append(np.ascontiguousarray(a).reshape(-1))
        if self.fn is None:
            try:
                self.fn = self._build(len(arrays))
            except Exception:  # noqa: BLE001 - any compile failure: use the NumPy plan
                self.fn = None
            if self.fn is None:
                self.failed = True
                return None
        outs = [np.empty(self.shape, self.dtype) for _ in self.outs]
        if self.size:
            self.fn(*flat, *[o.reshape(-1) for o in outs])
        return outs[0] if len(outs) == 1 else tuple(outs)

    def ready_backward(self, arrays) -> bool:
        """Whether ``backward`` can run for inputs like ``arrays`` (compiles it now)."""
        if self.failed or not _kjit.on_all(*arrays) or any(
                a.shape != self.shape and a.size != 1 for a in arrays):
            return False
        return self._backward_fn(arrays) is not None

    def _backward_fn(self, arrays):
        scalar = tuple(a.shape != self.shape for a in arrays)
        bwd = self.__dict__.setdefault("bwd", {})
        if scalar not in bwd:
            try:
                bwd[scalar] = self._build(len(arrays), scalar)
            except Exception:  # noqa: BLE001 - any compile failure: the op-by-op backward
                bwd[scalar] = None
        return bwd[scalar]

    def backward(self, arrays, grads):
        """Input gradients of the group from the output gradients ``grads`` (one per
        output), recomputing the group from ``arrays``; None if it cannot."""
        scalar = tuple(a.shape != self.shape for a in arrays)
        fn = self._backward_fn(arrays)
        flat = [np.ascontiguousarray(a).reshape(-1) for a in arrays]
        gs = [np.ascontiguousarray(g, dtype=self.dtype).reshape(-1) for g in grads]
        gin = [np.zeros(1, self.dtype) if sc else np.empty(self.size, self.dtype)
               for sc in scalar]
        if self.size:
            fn(*flat, *gs, *gin)
        return [g.reshape(a.shape) for g, a in zip(gin, arrays)]
