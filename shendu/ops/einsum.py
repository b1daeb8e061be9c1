"""``einsum``: Einstein summation over tensors, differentiable, with PyTorch's rules
(implicit output in alphabetical order, ``...`` broadcasting, size-1 dimensions broadcast).

The equation is first brought to a plain form, with differentiable ops: ``...`` becomes
letters, a letter repeated inside one operand becomes a ``diagonal``, a size-1 dimension
that meets a larger one is squeezed out, and a letter found in one operand only and not in
the output is summed out. In that form every letter of an operand also appears in the output
or in another operand, so the gradient of operand i is one more einsum: the upstream
gradient contracted with the other operands into operand i's subscripts.

>>> import shendu as sd
>>> a = sd.tensor([[1.0, 2.0], [3.0, 4.0]])
>>> sd.einsum("ij,jk->ik", a, a)
tensor([[ 7., 10.],
        [15., 22.]])
>>> sd.einsum("ii", a)
tensor(5.)
"""
from __future__ import annotations

import string

from ..autograd.function import Function
from ..errors import ArgumentError, ShapeError
from ..tensor import Tensor, _asarray
from ._util import add_tangents, xp_of
from .reduce import sum as _sum

__all__ = ["einsum"]

_LETTERS = string.ascii_letters


class Einsum(Function):
    """``xp.einsum(spec, *operands)`` for a plain spec (see the module docstring)."""

    @staticmethod
    def forward(ctx, *arrays, ins, out):
        ctx.ins, ctx.out = ins, out
        ctx.save_for_backward(*arrays)
        return xp_of(arrays[0]).einsum(",".join(ins) + "->" + out, *arrays, optimize=True)

    @staticmethod
    def backward(ctx, g):
        arrays = ctx.saved_tensors
        xp = xp_of(g)
        grads = []
        for i, need in enumerate(ctx.needs_input_grad):
            if not need:
                grads.append(None)
                continue
            others = [a for k, a in enumerate(arrays) if k != i]
            subs = [s for k, s in enumerate(ctx.ins) if k != i]
            spec = ",".join([ctx.out] + subs) + "->" + ctx.ins[i]
            gi = xp.einsum(spec, g, *others, optimize=True)
            grads.append(gi.astype(arrays[i].dtype, copy=False))
        return tuple(grads)

    @staticmethod
    def jvp(ctx, *tangents):
        arrays = ctx.saved
        spec = ",".join(ctx.ins) + "->" + ctx.out
        total = None
        for i, t in enumerate(tangents):
            if t is not None:
                ops = list(arrays)
                ops[i] = t
                total = add_tangents(total, xp_of(t).einsum(spec, *ops, optimize=True))
        return total


def _parse(equation, shapes):
    """Subscripts (one string per operand) and the output string, with ``...`` replaced
    by letters not used elsewhere."""
    eq = equation.replace(" ", "")
    lhs, arrow, rhs = eq.partition("->")
    ins = lhs.split(",")
    if len(ins) != len(shapes):
        raise ArgumentError(f"einsum: the equation {equation!r} has {len(ins)} operands but "
                            f"{len(shapes)} tensors were given")
    used = set(eq) - set(".,->")
    bad = sorted(c for c in used if c not in _LETTERS)
    if bad:
        raise ArgumentError(f"einsum: subscripts must be letters, got {bad} in {equation!r}")
    free = [c for c in _LETTERS if c not in used]
    n_ell = 0
    for sub, shape in zip(ins, shapes):
        if "..." in sub:
            n_ell = max(n_ell, len(shape) - (len(sub) - 3))
    ell = "".join(free[:n_ell])
    out_ins = []
    for k, (sub, shape) in enumerate(zip(ins, shapes)):
        if "..." in sub:
            n = len(shape) - (len(sub) - 3)
            if n < 0:
                raise ShapeError(f"einsum: operand {k} has {len(shape)} dimensions, fewer than "
                                 f"the subscripts {sub!r} name")
            sub = sub.replace("...", ell[n_ell - n:])
        elif "." in sub:
            raise ArgumentError(f"einsum: '.' must appear as '...', got {sub!r}")
        if len(sub) != len(shape):
            raise ShapeError(f"einsum: operand {k} has shape {tuple(shape)} ({len(shape)} "
                             f"dimensions) but subscripts {sub!r} name {len(sub)}")
        out_ins.append(sub)
    if arrow:
        out = rhs.replace("...", ell)
        if "." in out:
            raise ArgumentError(f"einsum: '.' in the output must appear as '...', got {rhs!r}")
    else:
        counts = {}
        for sub in ins:
            for c in sub.replace("...", ""):
                counts[c] = counts.get(c, 0) + 1
        out = ell + "".join(sorted((c for c, n in counts.items() if n == 1),
                                   key=_LETTERS.index))
    if len(set(out)) != len(out):
        raise ArgumentError(f"einsum: output subscript repeated in {equation!r}")
    all_in = set("".join(out_ins))
    missing = [c for c in out if c not in all_in]
    if missing:
        raise ArgumentError(f"einsum: output subscripts {missing} do not appear in any operand "
                            f"of {equation!r}")
    return out_ins, out


def _take_diagonals(t, sub):
    """Turn letters repeated in one operand into one dimension (their diagonal)."""
    from .indexing import diagonal

    while len(set(sub)) != len(sub):
        c = next(c for c in sub if sub.count(c) > 1)
        i = sub.index(c)
        j = sub.index(c, i + 1)
        if t.shape[i] != t.shape[j]:
            raise ShapeError(f"einsum: subscript {c!r} is repeated in one operand with "
                             f"different sizes {t.shape[i]} and {t.shape[j]}")
        t = diagonal(t, 0, i, j)
        sub = sub[:i] + sub[i + 1:j] + sub[j + 1:] + c
    return t, sub


def einsum(equation, *operands):
    """Sum of products over the indices named in ``equation`` (``'ij,jk->ik'`` is a matrix
    product); ``einsum(eq, [a, b])`` works too.

    Args:
        equation: comma-separated subscripts per operand, optionally ``->`` and the output
            subscripts (when left out: the letters used once, in alphabetical order).
        operands: the tensors.
    """
    if len(operands) == 1 and isinstance(operands[0], (list, tuple)):
        operands = tuple(operands[0])
    if not isinstance(equation, str):
        raise TypeError("einsum: the first argument must be the equation string "
                        "(the sublist form is not supported)")
    if not operands:
        raise ValueError("einsum: expected at least one operand")
    ops = [o if isinstance(o, Tensor) else Tensor._wrap(_asarray(o)) for o in operands]
    ins, out = _parse(equation, [o.shape for o in ops])
    # 1. repeated letters in one operand -> diagonals
    for k in range(len(ops)):
        ops[k], ins[k] = _take_diagonals(ops[k], ins[k])
    # 2. sizes per letter; size-1 dimensions broadcast against larger ones
    size = {}
    for t, sub in zip(ops, ins):
        for c, n in zip(sub, t.shape):
            if n != 1:
                if size.get(c, n) != n:
                    raise ShapeError(f"einsum: subscript {c!r} has size {size[c]} in one "
                                     f"operand and {n} in another ({equation!r}, shapes "
                                     f"{[tuple(o.shape) for o in operands]})")
                size[c] = n
    for k, (t, sub) in enumerate(zip(ops, ins)):
        drop = [i for i, c in enumerate(sub) if t.shape[i] == 1 and size.get(c, 1) != 1]
        if drop:
            keep = [n for i, n in enumerate(t.shape) if i not in drop]
            ops[k] = t.reshape(tuple(keep))
            ins[k] = "".join(c for i, c in enumerate(sub) if i not in drop)
    # 3. a letter only in this operand and not in the output is summed here
    for k in range(len(ops)):
        elsewhere = set(out).union(*(set(s) for j, s in enumerate(ins) if j != k))
        lone = [i for i, c in enumerate(ins[k]) if c not in elsewhere]
        if lone:
            ops[k] = _sum(ops[k], dim=tuple(lone))
            ins[k] = "".join(c for i, c in enumerate(ins[k]) if i not in lone)
    return Einsum.apply(*ops, ins=tuple(ins), out=out)
