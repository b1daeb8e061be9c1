"""Greedy device placement of a traced graph: ``sd.jit.place(graph, devices, cost_model)``.

TensorFlow's placer as its paper describes it: simulate running the graph, and put each
node, in execution order, on the device where it would *finish* earliest, given

- when that device is free (devices run one node at a time),
- when each input is there: where it was produced (or lives, for parameters and inputs),
  plus the time to copy it over when that is another device,
- the node's compute cost on that device.

Greedy, so not optimal, but quick and usually decent. A value copied to a device once
serves every later reader there; copies do not wait for each other (each link is assumed
free). A node that reads a buffer (state updated in place, such as batch-norm running
statistics) runs where that buffer lives, as TensorFlow colocates ops with their variables.

The placed graph is a clone in which every node carries ``meta["device"]``,
``meta["start"]`` and ``meta["finish"]``, and a ``to_device`` copy node stands before the
first reader of each value on each other device (graph outputs are copied back to
``output_device``). Running it runs each node on its device: ops follow their inputs.
``graph.plan`` holds the schedule (``print(plan)`` shows it).
"""
from __future__ import annotations

import math

from ..backend import Device, as_device
from ..tensor import Tensor
from .cost import node_flops
from .graph import Graph, Node, Value

__all__ = ["place", "CostModel", "Plan", "to_device"]


class CostModel:
    """Seconds for a node on a device (FLOPs over the device's speed, plus a fixed cost
    per op) and for a copy between devices (latency plus bytes over the bandwidth).

    Args:
        flops_per_second: device type or name (``"cpu"``, ``"cuda"``, ``"cuda:1"``) ->
            speed; a device missing here cannot run anything.
        bandwidth: bytes per second of a copy between two devices.
        latency: seconds per copy.
        overhead: seconds per op and device (launch cost), same keys as the speeds.

    Subclass it, or pass any object with ``compute(node, device)`` and ``transfer(value,
    src, dst)`` methods, to model something else (``math.inf``: cannot run there).

    >>> cm = CostModel({"cpu": 1e9, "cuda": 1e11}, bandwidth=1e9)
    >>> cm.transfer(Value("x", (250,), "float32", "input"), Device("cpu"), Device("cuda"))
    1e-06
    """

    def __init__(self, flops_per_second=None, bandwidth: float = 1e10, latency: float = 0.0,
                 overhead=None):
        self.flops_per_second = dict(flops_per_second or {"cpu": 1e11, "cuda": 1e13})
        self.bandwidth, self.latency = bandwidth, latency
        self.overhead = dict(overhead or {})

    def _lookup(self, table, device: Device, default=None):
        return table.get(str(device), table.get(device.type, default))

    def compute(self, node: Node, device: Device) -> float:
        speed = self._lookup(self.flops_per_second, device)
        if not speed:
            return math.inf
        return self._lookup(self.overhead, device, 0.0) + node_flops(node) / speed

    def transfer(self, value: Value, src: Device, dst: Device) -> float:
        if src == dst:
            return 0.0
        return self.latency + value.nbytes / self.bandwidth


class Plan:
    """The schedule ``place`` chose: rows of (node name, op, device, start, finish), the
    copies it inserted (value name, from, to) and the makespan (when the last node ends)."""

    def __init__(self, rows, copies, devices):
        self.rows, self.copies, self.devices = rows, copies, devices
        self.makespan = max((r[4] for r in rows), default=0.0)

    def device_of(self, name: str) -> Device:
        for r in self.rows:
            if r[0] == name:
                return r[2]
        raise KeyError(name)

    def __str__(self):
        lines = [f"{'node':<14} {'op':<12} {'device':<8} {'start':>12} {'finish':>12}"]
        for name, op, dev, start, finish in self.rows:
            lines.append(f"{name:<14} {op:<12} {str(dev):<8} {start:12.6g} {finish:12.6g}")
        for v, src, dst in self.copies:
            lines.append(f"copy {v} {src} -> {dst}")
        busy = {str(d): sum(r[4] - r[3] for r in self.rows if r[2] == d) for d in self.devices}
        lines.append(f"makespan {self.makespan:.6g}; busy " +
                     ", ".join(f"{d} {t:.6g}" for d, t in busy.items()))
        return "\n".join(lines)

    def __repr__(self):
        return f"Plan({len(self.rows)} nodes, {len(self.copies)} copies, " \
               f"makespan={self.makespan:.6g})"


def to_device(input: Tensor, device: str) -> Tensor:
    """What a copy node runs: ``input.to(device)`` (differentiable)."""
    return input.to(device)


def place(graph, devices, cost_model=None, *, input_device=None, output_device=None):
    """Assign every node of ``graph`` to one of ``devices`` (greedy earliest finish time)
    and insert the copies that moves data between them.

    Args:
        graph: a ``Graph`` (``gm.graph``) or a ``GraphModule``.
        devices: the devices to use, such as ``["cpu", "cuda"]`` (ties go to the first).
        cost_model: a ``CostModel`` (the default one when None) or any object with its
            ``compute`` and ``transfer`` methods.
        input_device: where the graph's inputs arrive (default: the first device).
        output_device: where its outputs must end up (default: the input device).

    Returns:
        the placed graph (a ``GraphModule`` when given one), with ``.plan`` (a ``Plan``).

    >>> import shendu as sd
    >>> gm = sd.jit.trace(lambda x: (x @ x).relu(), sd.ones(4, 4))
    >>> placed = sd.jit.place(gm.graph, ["cpu"])
    >>> [(n.op, str(n.meta["device"])) for n in placed]
    [('matmul', 'cpu'), ('relu', 'cpu')]
    """
    from .module import GraphModule

    module = graph if isinstance(graph, GraphModule) else None
    g = (module.graph if module is not None else graph).clone()
    devices = [as_device(d) for d in devices]
    if not devices:
        raise ValueError("place: expected at least one device")
    cm = cost_model if cost_model is not None else CostModel()
    home_in = as_device(input_device) if input_device is not None else devices[0]
    home_out = as_device(output_device) if output_device is not None else home_in

    where: dict = {}  # id(value) -> (device, time it is ready there)
    for v in g.inputs:
        where[id(v)] = (home_in, 0.0)
    copies: dict = {}  # (id(value), device) -> (copy Value, time it arrives)
    free = {d: 0.0 for d in devices}
    rows, order = [], []

    def home(v):
        if id(v) not in where:  # a parameter, buffer or constant: where its tensor is
            where[id(v)] = (v.tensor.device if v.tensor is not None else home_in, 0.0)
        return where[id(v)]

    def arrival(v, d):
        src, ready = home(v)
        if src == d:
            return ready
        made = copies.get((id(v), d))
        return made[1] if made is not None else ready + cm.transfer(v, src, d)

    for node in g:
        pinned = {home(v)[0] for v in node.inputs if v.kind == "buffer"}
        candidates = [d for d in devices if not pinned or d in pinned] or list(pinned)
        best = None
        for d in candidates:
            cost = cm.compute(node, d)
            if cost == math.inf:
                continue
            start = max([free.get(d, 0.0)] + [arrival(v, d) for v in node.inputs])
            if best is None or start + cost < best[2]:
                best = (d, start, start + cost)
        if best is None:
            raise ValueError(f"place: no device among {[str(d) for d in candidates]} can run "
                             f"node {node.name} ({node.op}) under the cost model")
        d, start, finish = best
        inputs = []
        for v in node.inputs:
            inputs.append(_copy_to(v, d, home(v), arrival(v, d), copies, order))
        node.inputs = inputs
        node.meta.update(device=d, start=start, finish=finish)
        free[d] = finish
        for v in node.outputs:
            where[id(v)] = (d, finish)
        order.append(node)
        rows.append((node.name, node.op, d, start, finish))

    outputs = {}
    for v in g.outputs:
        outputs[id(v)] = _copy_to(v, home_out, home(v), arrival(v, home_out), copies, order)
    placed = Graph(order, g.inputs, [outputs[id(v)] for v in g.outputs], g.output_spec,
                   g.grad_inputs)
    from .trace import _spec_map

    placed.output_spec = _spec_map(g.output_spec, lambda v: outputs.get(id(v), v))
    placed.plan = Plan(rows, [(v.name, str(s), str(t)) for v, s, t in
                              (n.meta["copy"] for n in order if "copy" in n.meta)], devices)
    if module is None:
        return placed
    out = GraphModule(getattr(module, "root", None) or module.__dict__.get("fn"), placed)
    out.__dict__["plan"] = placed.plan
    return out


def _copy_to(v, d, src_ready, arrive, copies, order):
    """``v`` on device ``d``: itself, or a copy node (made once per value and device)."""
    src, _ = src_ready
    if src == d:
        return v
    made = copies.get((id(v), d))
    if made is not None:
        return made[0]
    k = sum(1 for n in order if n.op == "to_device")
    copy = Node(f"to_device_{k}", "to_device", to_device, [v], {"device": str(d)}, leaf=True)
    out = Value(f"{v.name}@{d}", v.shape, v.dtype, "node", copy, 0)
    copy.outputs = [out]
    copy.meta.update(device=d, copy=(v, src, d), finish=arrive)
    order.append(copy)
    copies[(id(v), d)] = (out, arrive)
    return out
