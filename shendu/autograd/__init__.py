"""Automatic differentiation: the reverse sweep, ``grad``, forward mode and gradient checks."""
from .engine import run_backward
from .function import Function
from .grad_mode import enable_grad, is_grad_enabled, no_grad, set_grad_enabled
from .variable import Variable

__all__ = ["Function", "backward", "grad", "jvp", "vjp", "gradcheck", "gradcheck_random",
           "gradgradcheck", "functional",
           "no_grad", "enable_grad", "set_grad_enabled", "is_grad_enabled", "Variable"]


def _root_grad(g, create_graph):
    """A root gradient as the sweep wants it: a Tensor (kept as given, so it may itself
    require grad) when the backward is recorded, else a raw array."""
    from ..tensor import Tensor, _asarray

    if create_graph:
        return g if isinstance(g, Tensor) else Tensor._wrap(_asarray(g))
    return _asarray(g)


def _run(roots, retain_graph, create_graph, capture=None):
    if create_graph:
        from .graph_backward import run_backward_graph

        run_backward_graph(roots, retain_graph=True if retain_graph is None else
                           bool(retain_graph), capture=capture)
    else:
        run_backward(roots, retain_graph=bool(retain_graph), capture=capture)


def backward(tensors, grad_tensors=None, retain_graph=None, create_graph=False):
    """Backpropagate from several outputs at once (their gradients are summed)."""
    from ..tensor import Tensor

    tensors = [tensors] if isinstance(tensors, Tensor) else list(tensors)
    if grad_tensors is None:
        grad_tensors = [None] * len(tensors)
    elif isinstance(grad_tensors, Tensor):
        grad_tensors = [grad_tensors]
    roots = []
    for i, (t, g) in enumerate(zip(tensors, grad_tensors)):
        if not t.requires_grad:
            raise RuntimeError(f"backward: output {i} (shape {t.shape}, dtype {t.dtype}) does "
                               "not require grad; expected outputs computed from tensors with "
                               "requires_grad=True outside no_grad()")
        if g is None:
            if t.numel() != 1:
                raise RuntimeError(f"backward: grad_tensors is needed for the output of shape "
                                   f"{t.shape}")
            from ..backend import get_array_module

            g = get_array_module(t._data).ones(t.shape, t.dtype)
        edge = (t.grad_fn, t._out_idx) if t.grad_fn is not None else t
        roots.append((edge, _root_grad(g, create_graph)))
    _run(roots, retain_graph, create_graph)


def grad(outputs, inputs, grad_outputs=None, retain_graph=None, create_graph=False,
         allow_unused=False):
    """Gradients of ``outputs`` with respect to ``inputs``, returned (not accumulated).

    With ``create_graph=True`` the backward pass is recorded, so the returned gradients can
    be differentiated again (``retain_graph`` then defaults to True, as in PyTorch).

    >>> import shendu as sd
    >>> x = sd.tensor(3.0, requires_grad=True)
    >>> sd.autograd.grad(x ** 2, x)
    (tensor(6.),)
    >>> (g,) = sd.autograd.grad(x ** 3, x, create_graph=True)
    >>> sd.autograd.grad(g, x)
    (tensor(18.),)
    """
    from ..tensor import Tensor
    single = isinstance(outputs, Tensor)
    outputs = [outputs] if single else list(outputs)
    inputs_was_tensor = isinstance(inputs, Tensor)
    inputs = [inputs] if inputs_was_tensor else list(inputs)
    if grad_outputs is None:
        grad_outputs = [None] * len(outputs)
    elif isinstance(grad_outputs, Tensor):
        grad_outputs = [grad_outputs]
    roots = []
    for i, (o, g) in enumerate(zip(outputs, grad_outputs)):
        if not o.requires_grad:
            raise RuntimeError(f"grad: output {i} (shape {o.shape}, dtype {o.dtype}) does not "
                               "require grad (was it computed under no_grad(), or from inputs "
                               "without requires_grad=True?)")
        if g is None:
            if o.numel() != 1:
                raise RuntimeError(f"grad: grad_outputs is needed for the non-scalar output of "
                                   f"shape {o.shape}")
            from ..backend import get_array_module

            g = get_array_module(o._data).ones(o.shape, o.dtype)
        roots.append(((o.grad_fn, o._out_idx) if o.grad_fn is not None else o,
                      _root_grad(g, create_graph)))
    keys = []
    for i, t in enumerate(inputs):
        if not t.requires_grad:
            raise RuntimeError(f"grad: input {i} (shape {t.shape}, dtype {t.dtype}) does not "
                               "require grad; expected a tensor with requires_grad=True")
        keys.append((t.grad_fn, t._out_idx) if t.grad_fn is not None else id(t))
    capture = {k: None for k in keys}
    _run(roots, retain_graph, create_graph, capture)
    result = []
    for k in keys:
        g = capture[k]
        if g is None and not allow_unused:
            raise RuntimeError("grad: one of the inputs was not used to compute the outputs; "
                               "pass allow_unused=True to get None for it")
        result.append(None if g is None else g if isinstance(g, Tensor) else Tensor._wrap(g))
    return tuple(result)


from . import functional  # noqa: E402
from .forward_ad import jvp, vjp  # noqa: E402
from .gradcheck import gradcheck, gradcheck_random, gradgradcheck  # noqa: E402
