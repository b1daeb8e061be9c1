"""Graph mode: trace a function or module into a dataflow graph, inspect, draw, run it.

``sd.jit.trace(fn, example_inputs)`` runs ``fn`` once and returns a ``GraphModule`` whose
``graph`` lists the primitives that ran (see ``shendu.jit.graph`` for the node format).
Python control flow is specialised at trace time, as in ``torch.jit.trace`` and
``jax.jit``: branches on tensor *data* raise ``TraceError``.

>>> import shendu as sd
>>> net = sd.nn.Sequential(sd.nn.Linear(4, 3), sd.nn.ReLU())
>>> gm = sd.jit.trace(net, sd.ones(2, 4))
>>> [(n.op, n.module) for n in gm.graph]
[('linear', '0'), ('relu', '1')]
"""
from __future__ import annotations

from . import passes
from .compile import CompiledFunction, CompiledModule, compile
from .graph import Graph, Node, Value
from .module import GraphModule
from .place import CostModel, Plan, place  # noqa: F401 - greedy device placement (h14)
from .trace import TraceError, record

__all__ = ["trace", "compile", "Graph", "Node", "Value", "GraphModule", "TraceError",
           "CompiledFunction", "CompiledModule", "passes"]


def trace(fn, example_inputs, *, check_inputs=(), rtol: float = 1e-5,
          atol: float = 1e-6) -> GraphModule:
    """Record the primitive ops that ``fn(*example_inputs)`` runs.

    Args:
        fn: a function of tensors, or an ``nn.Module`` (its parameters and buffers become
            named graph inputs, as in its ``state_dict``).
        example_inputs: a tensor or a tuple of tensors.
        check_inputs: other inputs (each a tensor or a tuple) on which the graph must give
            what ``fn`` gives (within ``rtol``/``atol``), else ``TraceError``: this catches
            a value the trace froze (computed from the data outside the recorded ops).
            Functions that draw random numbers cannot be checked this way.

    Returns:
        a ``GraphModule``: call it with tensors of the same shapes and dtypes; its
        ``graph`` is the list of ``Node``s in execution order.

    >>> import shendu as sd
    >>> gm = sd.jit.trace(lambda a, b: a @ b + 1.0, (sd.ones(2, 3), sd.ones(3, 4)))
    >>> [(n.op, [v.name for v in n.inputs], n.outputs[0].shape) for n in gm.graph]
    [('matmul', ['a', 'b'], (2, 4)), ('add_scalar', ['matmul_0'], (2, 4))]
    """
    gm = GraphModule(fn, record(fn, example_inputs))
    for ins in check_inputs:
        _check(gm, fn, ins if isinstance(ins, tuple) else (ins,), rtol, atol)
    return gm


def _check(gm, fn, ins, rtol, atol):
    import numpy as np

    from ..autograd.grad_mode import no_grad
    from .trace import _spec_map

    with no_grad():
        want, got = [], []
        _spec_map(fn(*ins), want.append)
        _spec_map(gm(*ins), got.append)
    for k, (w, g) in enumerate(zip(want, got)):
        w, g = np.asarray(w._data), np.asarray(g._data)
        if not np.allclose(g, w, rtol=rtol, atol=atol, equal_nan=True):
            raise TraceError(
                f"trace: on a check input, output {k} of the graph differs from the function's "
                f"(largest difference {np.abs(g - w).max():.3g}); "
                "the trace froze something computed from the data outside the recorded ops "
                "(raw arrays, a Python number) or the function is random")

