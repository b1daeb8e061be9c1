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

    def _build(self, n_in):
        src, consts = _source(self.members, self.outs, n_in)
        if src is None:
            return None
        key = (src, tuple(sorted(consts.items())), self.dtype.str)
        fn = _CACHE.get(key)
        if fn is None:
            import math

            import numba

            t = self.dtype.type
            scope = {"math": math, "ZERO": t(0), **{k: t(v) for k, v in consts.items()}}
            one = t(1)

            @numba.njit(inline="always")
            def _sigmoid(x):  # eager's formula: exp(-|x|) never overflows
                e = math.exp(-abs(x))
                return one / (one + e) if x >= 0 else e / (one + e)

            scope["_sigmoid"] = _sigmoid
            exec(src, scope)  # noqa: S102 - source built above from a fixed table
            fn = _CACHE[key] = numba.njit(scope["kernel"])
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
