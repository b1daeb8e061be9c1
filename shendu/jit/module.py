"""``GraphModule``: a traced graph you can call, inspect and optimise.

Calling it runs each node through its ``Function.apply`` (or its leaf function), so the
result is recorded for autograd exactly as the eager call was: ``loss.backward()`` reaches
the traced module's parameters. Values are dropped after their last use.
"""
from __future__ import annotations

from ..nn.module import Module
from ..tensor import Tensor
from .graph import Graph
from .trace import TraceError, _spec_map


def _call_of(node):
    if node.leaf:
        return node.function
    return getattr(node.function, "graph_call", node.function.apply)


class Program:
    """A graph lowered to a list of steps over numbered slots (the interpreter's form)."""

    def __init__(self, graph: Graph):
        slot: dict = {}
        for v in graph.inputs:
            slot[id(v)] = len(slot)
        consts = []
        last_use: dict = {}
        for k, n in enumerate(graph):
            for v in n.inputs:
                if id(v) not in slot:
                    slot[id(v)] = len(slot)
                    consts.append((slot[id(v)], v.tensor))
                last_use[slot[id(v)]] = k
            for v in n.outputs:
                slot[id(v)] = len(slot)
        keep = {slot[id(v)] for v in graph.outputs if id(v) in slot}
        for v in graph.outputs:  # an output that no node produced: a constant or param
            if id(v) not in slot:
                slot[id(v)] = len(slot)
                consts.append((slot[id(v)], v.tensor))
        steps = []
        for k, n in enumerate(graph):
            pos = [slot[id(v)] for v, key in zip(n.inputs, n.input_keys) if key is None]
            kws = [(key, slot[id(v)]) for v, key in zip(n.inputs, n.input_keys)
                   if key is not None]
            free = sorted({slot[id(v)] for v in n.inputs
                           if last_use[slot[id(v)]] == k and slot[id(v)] not in keep
                           and v.kind in ("node", "input")})
            steps.append((_call_of(n), pos, kws, n.array_keys, n.attrs,
                          [slot[id(v)] for v in n.outputs], n.multi, free))
        self.graph, self.n_slots, self.consts, self.steps = graph, len(slot), consts, steps
        self.n_inputs = len(graph.inputs)
        self.out_spec = _spec_map(graph.output_spec, lambda v: slot[id(v)])

    def run(self, args):
        env = [None] * self.n_slots
        env[: self.n_inputs] = args
        for s, t in self.consts:
            env[s] = t
        for call, pos, kws, arrays, attrs, outs, multi, free in self.steps:
            if kws:
                kw = dict(attrs)
                for key, s in kws:
                    kw[key] = env[s]._data if key in arrays else env[s]
            else:
                kw = attrs
            r = call(*[env[s] for s in pos], **kw)
            if multi:
                for s, t in zip(outs, r):
                    env[s] = t
            else:
                env[outs[0]] = r
            for s in free:
                env[s] = None
        if self.out_spec.__class__ is int:
            return env[self.out_spec]
        return _spec_map(self.out_spec, env.__getitem__)


def check_inputs(graph: Graph, args, where="GraphModule"):
    if len(args) != len(graph.inputs):
        raise TraceError(f"{where}: traced with {len(graph.inputs)} inputs, called with "
                         f"{len(args)}")
    for a, v in zip(args, graph.inputs):
        if not isinstance(a, Tensor):
            raise TraceError(f"{where}: input {v.name!r} must be a Tensor, got "
                             f"{type(a).__name__}")
        if a._data.shape != v.shape or a._data.dtype != v.dtype:
            raise TraceError(
                f"{where}: input {v.name!r} has shape {a.shape} and dtype {a.dtype}, but the "
                f"graph was traced for shape {v.shape} and dtype {v.dtype.name} (a trace is "
                "specialised to its example inputs; trace again, or use sd.compile, which "
                "traces once per input signature)")


class GraphModule(Module):
    """A traced ``graph`` over the parameters of ``root`` (the traced module, or None).

    >>> import shendu as sd
    >>> net = sd.nn.Sequential(sd.nn.Linear(3, 2), sd.nn.ReLU())
    >>> gm = sd.jit.trace(net, sd.ones(4, 3))
    >>> [n.op for n in gm.graph]
    ['linear', 'relu']
    >>> bool((gm(sd.ones(4, 3)) == net(sd.ones(4, 3))).all())
    True
    """

    def __init__(self, root, graph: Graph):
        super().__init__()
        if isinstance(root, Module):
            self.root = root
        else:
            self.__dict__["fn"] = root
        self.__dict__["graph"] = graph
        self.__dict__["_program"] = None

    def recompile(self):
        """Rebuild the runnable form after ``graph`` was changed."""
        self.__dict__["_program"] = Program(self.graph)
        return self

    def forward(self, *args):
        check_inputs(self.graph, args)
        prog = self.__dict__["_program"]
        if prog is None or prog.graph is not self.graph:
            prog = self.recompile()._program
        return prog.run(args)

    def __repr__(self):
        return f"GraphModule({len(self.graph)} nodes)\n{self.graph}"
