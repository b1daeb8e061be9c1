"""What the passes share: which nodes have side effects or draw random numbers."""
from __future__ import annotations

from ..graph import Node

# leaf ops that draw random numbers: never merged or folded
RANDOM = {"dropout", "dropout2d"}


def has_effect(n: Node) -> bool:
    """True for nodes that change state outside their outputs (batch norm in training
    updates its running statistics)."""
    return n.leaf and n.op in ("batch_norm", "instance_norm") and bool(
        n.attrs.get("training") or n.attrs.get("use_input_stats", False))


def pure(n: Node) -> bool:
    return not has_effect(n) and n.op not in RANDOM


def needs_grad(graph) -> set:
    """``id`` of every value that autograd will send a gradient to when the graph runs:
    inputs flagged in ``graph.grad_inputs``, parameters and constants that require grad,
    and whatever a node computes from them. Empty when the graph was traced without
    recording (``graph.grad_inputs`` is None)."""
    if graph.grad_inputs is None:
        return set()
    need = {id(v) for v, rg in zip(graph.inputs, graph.grad_inputs) if rg}
    for n in graph:
        if any(id(v) in need or (v.tensor is not None and v.tensor.requires_grad)
               for v in n.inputs):
            need.update(id(v) for v in n.outputs)
    return need
