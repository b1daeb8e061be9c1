"""FLOPs and bytes per node, and the ``Graph.summary()`` table.

FLOPs count a multiply-add as two; elementwise ops count one per output element, a
reduction one per input element, movement ops (reshape, permute, indexing) none. Bytes
are what a node reads and writes: its inputs' and outputs' sizes (an upper bound on
traffic, the quantity fusion and the memory plan reduce).
"""
from __future__ import annotations

from collections import Counter

import numpy as np

from .graph import Graph, Node

MOVEMENT = {"reshape", "permute", "expand", "get_item", "cat", "stack", "pad", "flip", "roll",
            "copy", "to_device", "tile", "index_select", "gather", "diagonal", "tri",
            "fused_reshape"}
REDUCTIONS = {"sum", "mean", "amax", "max_along", "prod", "norm2", "log_sum_exp", "var"}
# rough flops per output element of fused normalisations and losses
PER_ELEMENT = {"softmax": 5, "log_softmax": 5, "layer_norm": 8, "batch_norm": 8,
               "instance_norm": 8, "gelu": 8, "cross_entropy": 6, "nll": 1, "dropout": 2}


def _numel(shape) -> int:
    return int(np.prod(shape, dtype=np.int64))


def node_flops(n: Node) -> int:
    """Floating-point operations of one node (multiply-add = 2)."""
    out = n.outputs[0].shape if n.outputs else ()
    ins = [v.shape for v in n.inputs]
    if n.op == "matmul":
        return 2 * _numel(out) * ins[0][-1]
    # GEMM-like: a multiply-add per tap, then one op per output for bias and activation
    extra = _numel(out) * ((len(ins) > 2) + ("relu" in n.op or bool(n.attrs.get("act"))))
    if n.op in ("linear", "linear_relu", "fused_linear"):
        return 2 * _numel(out) * ins[1][1] + extra
    if n.op == "linear_chain":  # per layer: the product, its bias and its ReLU
        rows = _numel(ins[0][:-1])
        total, i = 0, 1
        for has_bias, relu in n.attrs["plan"].layers:
            width, depth = ins[i]
            total += rows * width * (2 * depth + has_bias + relu)
            i += 1 + has_bias
        return total
    if n.op in ("conv2d", "conv2d_relu"):
        return 2 * _numel(out) * _numel(ins[1][1:]) + extra
    if n.op == "conv2d_pool":  # the product is 4 times the pooled output
        return 2 * 4 * _numel(out) * _numel(ins[1][1:]) + 4 * extra
    if n.op == "lstm_layer" and len(ins) >= 3:
        t_n = _numel(ins[0][:-1])
        gates = ins[1][0]
        return 2 * t_n * gates * (ins[0][-1] + ins[2][1]) + 12 * t_n * gates // 4
    if n.op in MOVEMENT:
        return 0
    if n.op in REDUCTIONS:
        return _numel(ins[0]) if ins else 0
    if n.op == "fused_elementwise":
        return _numel(out) * len(n.attrs.get("ops", ()))
    return PER_ELEMENT.get(n.op, 1) * sum(_numel(v.shape) for v in n.outputs)


def node_bytes(n: Node) -> int:
    return sum(v.nbytes for v in n.inputs) + sum(v.nbytes for v in n.outputs)


class Summary:
    """Per-node rows (name, op, module, output shape, FLOPs, bytes), op counts and totals;
    ``str()`` gives the table."""

    def __init__(self, graph: Graph):
        self.rows = [(n.name, n.op, n.module, tuple(n.outputs[0].shape) if n.outputs else (),
                      node_flops(n), node_bytes(n)) for n in graph]
        self.op_counts = Counter(n.op for n in graph)
        self.total_flops = sum(r[4] for r in self.rows)
        self.total_bytes = sum(r[5] for r in self.rows)
        params = {id(v): v for n in graph for v in n.inputs if v.kind == "param"}
        self.n_params = sum(_numel(v.shape) for v in params.values())

    def __str__(self):
        head = ("node", "op", "module", "output", "FLOPs", "bytes")
        rows = [head] + [(a, b, c, str(list(d)), f"{e:,}", f"{f:,}") for a, b, c, d, e, f
                         in self.rows]
        w = [max(len(r[i]) for r in rows) for i in range(6)]
        lines = ["  ".join(c.rjust(w[i]) if i >= 4 else c.ljust(w[i]) for i, c in
                           enumerate(r)).rstrip() for r in rows]
        lines.insert(1, "  ".join("-" * x for x in w))
        counts = ", ".join(f"{op} x{k}" for op, k in self.op_counts.most_common())
        lines += ["", f"ops: {counts}",
                  f"total: {len(self.rows)} nodes, {self.total_flops:,} FLOPs, "
                  f"{self.total_bytes:,} bytes moved, {self.n_params:,} parameters"]
        return "\n".join(lines)

    __repr__ = __str__


def summary(graph: Graph) -> Summary:
    """Op counts, FLOPs and bytes per node of ``graph``.

    >>> import shendu as sd
    >>> gm = sd.jit.trace(lambda a, b: (a @ b).relu(), (sd.ones(2, 3), sd.ones(3, 4)))
    >>> s = gm.graph.summary()
    >>> s.op_counts["matmul"], s.rows[0][4], s.total_flops
    (1, 48, 56)
    """
    return Summary(graph)
