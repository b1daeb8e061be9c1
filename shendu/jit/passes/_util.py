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
