"""Higher-order helpers built on ``grad(create_graph=True)``, as ``torch.autograd.functional``.

Each takes a function of tensors and the point where to evaluate; the point is detached,
so nothing accumulates in the caller's ``.grad``. Results have PyTorch's layout: the
Jacobian of an output of shape ``O`` with respect to an input of shape ``I`` has shape
``O + I``.
"""
from __future__ import annotations

__all__ = ["jacobian", "hessian", "vjp", "jvp", "hvp", "vhp"]


def _tensor():
    from ..tensor import Tensor

    return Tensor


def _prep(inputs):
    Tensor = _tensor()
    single = isinstance(inputs, Tensor)
    ins = [inputs] if single else list(inputs)
    return single, [t.detach().requires_grad_(True) for t in ins]


def _grads(out, ins, v, create_graph):
    """d<v, out>/d ins, zeros for inputs that ``out`` does not depend on."""
    from ..creation import zeros_like
    from . import grad

    if not out.requires_grad:
        return [zeros_like(t) for t in ins]
    gs = grad([out], ins, [v], retain_graph=True, create_graph=create_graph,
              allow_unused=True)
    return [zeros_like(t) if g is None else g for g, t in zip(gs, ins)]


def jacobian(func, inputs, create_graph=False, strict=False, vectorize=False,
             strategy="reverse-mode"):
    """The Jacobian of ``func`` at ``inputs`` (a tensor or a tuple of tensors).

    >>> import shendu as sd
    >>> sd.autograd.functional.jacobian(lambda x: x ** 2, sd.tensor([1.0, 3.0]))
    tensor([[2., 0.],
            [0., 6.]])
    """
    from ..autograd.grad_mode import enable_grad
    from ..creation import zeros_like
    from ..ops import stack

    Tensor = _tensor()
    single_in, ins = _prep(inputs)
    with enable_grad():
        out = func(*ins)
    single_out = isinstance(out, Tensor)
    outs = [out] if single_out else list(out)
    result = []
    for o in outs:
        rows = []
        for k in range(o.numel()):
            v = zeros_like(o).reshape(-1)
            v._data[k] = 1
            with enable_grad():
                rows.append(_grads(o, ins, v.reshape(o.shape), create_graph))
        per_in = []
        for j, t in enumerate(ins):
            if rows:
                per_in.append(stack([r[j] for r in rows]).reshape(o.shape + t.shape))
            else:
                per_in.append(zeros_like(t).reshape(o.shape + t.shape))
        if not create_graph:
            per_in = [p.detach() for p in per_in]
        result.append(per_in[0] if single_in else tuple(per_in))
    return result[0] if single_out else tuple(result)


def hessian(func, inputs, create_graph=False, strict=False, vectorize=False,
            outer_jacobian_strategy="reverse-mode"):
    """The Hessian of the scalar function ``func`` at ``inputs``.

    >>> import shendu as sd
    >>> sd.autograd.functional.hessian(lambda x: (x ** 3).sum(), sd.tensor([1.0, 2.0]))
    tensor([[ 6.,  0.],
            [ 0., 12.]])
    """
    from ..autograd.grad_mode import enable_grad

    Tensor = _tensor()
    single_in = isinstance(inputs, Tensor)

    def gradient(*xs):
        with enable_grad():
            out = func(*xs)
            if not isinstance(out, Tensor) or out.numel() != 1:
                raise RuntimeError("hessian: func must return a single-element tensor, got "
                                   f"{getattr(out, 'shape', type(out).__name__)}")
            gs = _grads(out.reshape(()), list(xs), out.new_ones(()) if hasattr(
                out, "new_ones") else Tensor._wrap(out._data.reshape(()) * 0 + 1), True)
        return gs[0] if single_in else tuple(gs)

    return jacobian(gradient, inputs, create_graph=create_graph)


def vjp(func, inputs, v=None, create_graph=False, strict=False):
    """``(func(inputs), v^T J)``."""
    from ..autograd.grad_mode import enable_grad

    Tensor = _tensor()
    single_in, ins = _prep(inputs)
    with enable_grad():
        out = func(*ins)
        if v is None:
            if out.numel() != 1:
                raise RuntimeError("vjp: v is needed for a function with a non-scalar output")
            v = Tensor._wrap(out._data * 0 + 1)
        gs = _grads(out, ins, v, create_graph)
    if not create_graph:
        out, gs = out.detach(), [g.detach() for g in gs]
    return out, gs[0] if single_in else tuple(gs)


def jvp(func, inputs, v=None, create_graph=False, strict=False):
    """``(func(inputs), J v)``, by the double-vjp trick (two reverse sweeps)."""
    from ..autograd.grad_mode import enable_grad
    from ..creation import zeros_like
    from . import grad

    single_in, ins = _prep(inputs)
    vs = [v] if single_in else list(v)
    with enable_grad():
        out = func(*ins)
        u = zeros_like(out).requires_grad_(True)
        gs = grad([out], ins, [u], create_graph=True, allow_unused=True)
        pairs = [(g, w) for g, w in zip(gs, vs) if g is not None]
        if pairs:
            (jv,) = grad([g for g, _ in pairs], [u], [w for _, w in pairs],
                         create_graph=create_graph, allow_unused=True)
        else:
            jv = None
    jv = zeros_like(out) if jv is None else jv
    if not create_graph:
        out, jv = out.detach(), jv.detach()
    return out, jv


def vhp(func, inputs, v=None, create_graph=False, strict=False):
    """``(func(inputs), v^T H)`` for a scalar ``func``."""
    from ..autograd.grad_mode import enable_grad
    from . import grad

    single_in, ins = _prep(inputs)
    vs = [v] if single_in else list(v)
    with enable_grad():
        out = func(*ins)
        if out.numel() != 1:
            raise RuntimeError(f"vhp: func must return a single-element tensor, got shape "
                               f"{out.shape}")
        gs = grad([out], ins, create_graph=True, allow_unused=True)
        pairs = [(g, w) for g, w in zip(gs, vs) if g is not None and g.requires_grad]
        res = [None] * len(ins)
        if pairs:
            hs = grad([g for g, _ in pairs], ins, [w for _, w in pairs],
                      create_graph=create_graph, allow_unused=True)
            res = list(hs)
    from ..creation import zeros_like

    res = [zeros_like(t) if h is None else h for h, t in zip(res, ins)]
    if not create_graph:
        out, res = out.detach(), [h.detach() for h in res]
    return out, res[0] if single_in else tuple(res)


def hvp(func, inputs, v=None, create_graph=False, strict=False):
    """``(func(inputs), H v)`` for a scalar ``func`` (H is symmetric, so this is ``vhp``).

    >>> import shendu as sd
    >>> x = sd.tensor([1.0, 2.0])
    >>> sd.autograd.functional.hvp(lambda x: (x ** 3).sum(), x, sd.tensor([1.0, 1.0]))[1]
    tensor([ 6., 12.])
    """
    return vhp(func, inputs, v, create_graph=create_graph, strict=strict)
