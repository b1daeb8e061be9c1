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
from .trace import TraceError, record

__all__ = ["trace", "compile", "Graph", "Node", "Value", "GraphModule", "TraceError",
           "CompiledFunction", "CompiledModule", "passes"]


def trace(fn, example_inputs) -> GraphModule:
    """Record the primitive ops that ``fn(*example_inputs)`` runs.

    Args:
        fn: a function of tensors, or an ``nn.Module`` (its parameters and buffers become
            named graph inputs, as in its ``state_dict``).
        example_inputs: a tensor or a tuple of tensors.

    Returns:
        a ``GraphModule``: call it with tensors of the same shapes and dtypes; its
        ``graph`` is the list of ``Node``s in execution order.

    >>> import shendu as sd
    >>> gm = sd.jit.trace(lambda a, b: a @ b + 1.0, (sd.ones(2, 3), sd.ones(3, 4)))
    >>> [(n.op, [v.name for v in n.inputs], n.outputs[0].shape) for n in gm.graph]
    [('matmul', ['a', 'b'], (2, 4)), ('add_scalar', ['matmul_0'], (2, 4))]
    """
    return GraphModule(fn, record(fn, example_inputs))
