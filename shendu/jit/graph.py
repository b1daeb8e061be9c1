"""The graph that ``sd.jit.trace`` records: ``Value`` edges, ``Node`` ops, a ``Graph`` list.

The format (stable: later additions only add fields):

``Value`` — an edge, one tensor:
    ``name`` (unique in the graph: an input's argument name, a parameter's or buffer's
    ``state_dict`` name, ``const_3``, or the producing node's name such as ``conv2d_1``),
    ``shape`` (tuple), ``dtype`` (NumPy dtype), ``kind`` (``"input"``, ``"param"``,
    ``"buffer"``, ``"const"`` or ``"node"``), ``node``/``index`` (the producing node and
    which of its outputs; None/0 unless kind is ``"node"``), ``tensor`` (for params,
    buffers and constants: the tensor itself, so a run reads its current contents and
    gradients reach it).

``Node`` — one primitive call, in execution order:
    ``name`` (unique, ``<op>_<k>``), ``op`` (primitive name: the ``Function`` subclass name
    in snake case — ``conv2d``, ``add``, ``matmul``, ``linear``, ``relu``, ``max_pool2d``,
    ``reshape`` — or a leaf function's name such as ``dropout``, ``batch_norm``),
    ``function`` (the ``Function`` subclass, or the plain function for a leaf node),
    ``leaf`` (True when ``function`` is a plain function), ``inputs`` (list of ``Value``;
    positional tensors first), ``input_keys`` (same length: None for a positional input,
    the keyword name for one passed by keyword), ``array_keys`` (keywords passed as raw
    arrays rather than tensors), ``attrs`` (dict of the non-tensor parameters: stride,
    padding, axis, ...), ``outputs`` (list of ``Value``), ``multi`` (the call returns a
    tuple even when it has one output), ``module`` (dotted path of the innermost module
    whose call ran it, ``"features.0"``; ``""`` outside any module), ``module_type`` (that
    module's class name) and ``source`` (``"file.py:42"``, the line that called the op).

``Graph`` — a list of nodes in execution order, plus ``inputs`` (the traced function's
tensor arguments), ``outputs`` (the returned values), ``output_spec`` (how to rebuild
the returned structure: a ``Value``, or a tuple/list/dict of specs) and ``grad_inputs``
(None when autograd was not recording as it was traced, else one ``requires_grad`` flag per
input: what passes need to tell which values will have a backward).

>>> import shendu as sd
>>> gm = sd.jit.trace(lambda x: (x * 2).relu(), sd.ones(2, 3))
>>> [n.op for n in gm.graph]
['mul_scalar', 'relu']
>>> gm.graph[0].outputs[0].shape
(2, 3)
"""
from __future__ import annotations

import numpy as np


class Value:
    """One edge of the graph: a tensor with a name, shape and dtype."""

    __slots__ = ("name", "shape", "dtype", "kind", "node", "index", "tensor")

    def __init__(self, name, shape, dtype, kind, node=None, index=0, tensor=None):
        self.name, self.shape, self.dtype, self.kind = name, tuple(shape), np.dtype(dtype), kind
        self.node, self.index, self.tensor = node, index, tensor

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64)) * self.dtype.itemsize

    def __repr__(self):
        return f"%{self.name}: {_type_str(self)}"


class Node:
    """One primitive call: ``op`` applied to ``inputs`` with ``attrs``, giving ``outputs``."""

    __slots__ = ("name", "op", "function", "leaf", "inputs", "input_keys", "array_keys",
                 "attrs", "outputs", "multi", "module", "module_type", "source", "meta")

    def __init__(self, name, op, function, inputs, attrs, *, input_keys=None, array_keys=(),
                 leaf=False, multi=False, module="", module_type="", source=""):
        self.name, self.op, self.function, self.leaf = name, op, function, leaf
        self.inputs = list(inputs)
        self.input_keys = list(input_keys) if input_keys is not None else [None] * len(inputs)
        self.array_keys = frozenset(array_keys)
        self.attrs = dict(attrs)
        self.outputs: list[Value] = []
        self.multi = multi
        self.module, self.module_type, self.source = module, module_type, source
        self.meta: dict = {}  # free space for passes (fusion plans, placement, ...)

    def __repr__(self):
        outs = ", ".join(f"%{v.name}" for v in self.outputs)
        ins = ", ".join(f"%{v.name}" for v in self.inputs)
        attrs = "".join(f", {k}={_short(v)}" for k, v in self.attrs.items())
        return f"{outs} = {self.op}({ins}{attrs})"


class Graph(list):
    """Nodes in execution order, with the graph's ``inputs``, ``outputs`` and
    ``output_spec``. ``print(graph)`` shows a table; see ``summary``, ``to_dot``, ``draw``."""

    def __init__(self, nodes=(), inputs=(), outputs=(), output_spec=None, grad_inputs=None):
        super().__init__(nodes)
        self.inputs: list[Value] = list(inputs)
        self.outputs: list[Value] = list(outputs)
        self.output_spec = output_spec
        self.grad_inputs = grad_inputs

    def copy(self) -> Graph:
        """A shallow copy: a new node list; nodes and values are shared."""
        return Graph(self, self.inputs, self.outputs, self.output_spec, self.grad_inputs)

    def clone(self) -> Graph:
        """A deep copy of the structure: new ``Node`` and ``Value`` objects (parameters and
        constants still hold the same tensors). Passes change clones, never their input."""
        vmap: dict = {}

        def cp(v):
            c = vmap.get(id(v))
            if c is None:
                c = vmap[id(v)] = Value(v.name, v.shape, v.dtype, v.kind, None, v.index,
                                        v.tensor)
            return c

        nodes = []
        for n in self:
            m = Node(n.name, n.op, n.function, [cp(v) for v in n.inputs], n.attrs,
                     input_keys=n.input_keys, array_keys=n.array_keys, leaf=n.leaf,
                     multi=n.multi, module=n.module, module_type=n.module_type, source=n.source)
            m.meta = dict(n.meta)
            m.outputs = [cp(v) for v in n.outputs]
            for v in m.outputs:
                v.node = m
            nodes.append(m)
        from .trace import _spec_map

        return Graph(nodes, [cp(v) for v in self.inputs], [cp(v) for v in self.outputs],
                     _spec_map(self.output_spec, cp), self.grad_inputs)

    def replace_uses(self, rename: dict) -> Graph:
        """Read ``rename[id(v)]`` wherever value ``v`` is read (in place; for passes
        working on a clone)."""
        def sub(v):
            while id(v) in rename:
                v = rename[id(v)]
            return v

        for n in self:
            n.inputs = [sub(v) for v in n.inputs]
        from .trace import _spec_map

        self.outputs = [sub(v) for v in self.outputs]
        self.output_spec = _spec_map(self.output_spec, sub)
        return self

    def values(self):
        """Every value: inputs, then the parameters/constants as first used, then outputs of
        each node in order."""
        seen, out = set(), []
        for v in self.inputs:
            seen.add(id(v))
            out.append(v)
        for n in self:
            for v in n.inputs + n.outputs:
                if id(v) not in seen:
                    seen.add(id(v))
                    out.append(v)
        for v in self.outputs:
            if id(v) not in seen:
                seen.add(id(v))
                out.append(v)
        return out

    def users(self) -> dict:
        """``id(value) -> [nodes that read it]``."""
        found: dict = {}
        for n in self:
            for v in n.inputs:
                found.setdefault(id(v), []).append(n)
        return found

    def tabular(self) -> str:
        """The graph as a table: one row per input, node and output (like ``torch.fx``'s
        ``print_tabular``)."""
        rows = [("kind", "name", "op", "inputs", "shape / dtype", "module", "attrs")]
        for v in self.inputs:
            rows.append(("input", v.name, "", "", _type_str(v), "", ""))
        for n in self:
            rows.append(("node", n.name, n.op, ", ".join(v.name for v in n.inputs),
                         "; ".join(_type_str(v) for v in n.outputs), n.module,
                         ", ".join(f"{k}={_short(a)}" for k, a in n.attrs.items())))
        rows.append(("output", "", "", ", ".join(v.name for v in self.outputs), "", "", ""))
        widths = [min(40, max(len(r[i]) for r in rows)) for i in range(len(rows[0]))]
        lines = []
        for k, r in enumerate(rows):
            lines.append("  ".join(_clip(c, w).ljust(w) for c, w in zip(r, widths)).rstrip())
            if k == 0:
                lines.append("  ".join("-" * w for w in widths))
        return "\n".join(lines)

    def __str__(self):
        return self.tabular()

    def __repr__(self):
        return f"Graph({len(self)} nodes, inputs={[v.name for v in self.inputs]})"

    def summary(self):
        """Op counts, FLOPs and bytes per node (see ``shendu.jit.cost``)."""
        from .cost import summary

        return summary(self)

    def to_dot(self, **kwargs) -> str:
        """Graphviz source for the graph (see ``shendu.jit.draw.to_dot``)."""
        from .draw import to_dot

        return to_dot(self, **kwargs)

    def draw(self, path, **kwargs):
        """Render to ``path`` (``.svg``, ``.png``, ``.pdf``) with Graphviz."""
        from .draw import draw

        return draw(self, path, **kwargs)


def _type_str(v: Value) -> str:
    return f"{v.dtype.name}{list(v.shape)}"


def _short(a) -> str:
    if isinstance(a, Value):
        return f"%{a.name}"
    if isinstance(a, np.ndarray):
        return f"array{list(a.shape)}"
    if callable(a):
        return getattr(a, "__name__", type(a).__name__)
    s = repr(a)
    return s if len(s) <= 30 else s[:27] + "..."


def _clip(s: str, w: int) -> str:
    return s if len(s) <= w else s[: w - 3] + "..."
