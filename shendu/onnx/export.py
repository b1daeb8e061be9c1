"""``sd.onnx.export``: trace a model with ``sd.jit.trace`` and write the graph as ONNX.

Each traced primitive becomes one or a few ONNX nodes (see ``export_ops``). Parameters,
buffers and constants become initializers under their ``state_dict`` names.
"""
from __future__ import annotations

import io
import os
import tempfile

import numpy as np

from ..autograd import no_grad
from . import _proto

__all__ = ["export"]


def host(t) -> np.ndarray:
    """A tensor's values as a NumPy array (copied from the GPU when there)."""
    a = t._data
    return a.get() if hasattr(a, "get") and not isinstance(a, np.ndarray) else np.asarray(a)


class Builder:
    """Collects ONNX nodes and initializers while the traced graph is walked."""

    def __init__(self, opset: int, dynamic: bool):
        self.opset, self.dynamic = opset, dynamic
        self.nodes, self.inits = [], []
        self.names: dict = {}  # id(Value) -> ONNX name
        self.taken: set = set()
        self.k = 0

    def fresh(self, hint: str) -> str:
        self.k += 1
        name = f"{hint}_{self.k}"
        while name in self.taken:
            self.k += 1
            name = f"{hint}_{self.k}"
        self.taken.add(name)
        return name

    def name(self, value) -> str:
        """The ONNX name of a traced value; a parameter, buffer or constant becomes an
        initializer the first time it is used."""
        n = self.names.get(id(value))
        if n is not None:
            return n
        if value.kind in ("param", "buffer"):
            n = value.name if value.name not in self.taken else self.fresh(value.name)
            self.taken.add(n)
            self.initializer(n, host(value.tensor))
        elif value.kind == "const":  # not state: a Constant node, not an initializer
            n = self.const(host(value.tensor), value.name)
        else:
            n = value.name
            self.taken.add(n)
        self.names[id(value)] = n
        return n

    def initializer(self, name, array):
        self.inits.append((name, np.asarray(array)))
        return name

    def const(self, array, hint="const") -> str:
        """A Constant node (shapes, axes, scalars, traced constants): graph data, where an
        initializer would be read back as a trainable weight."""
        onnx = _proto.onnx()
        array = np.ascontiguousarray(array)
        value = onnx.helper.make_tensor("value", _proto.onnx_elem_type(array.dtype),
                                        array.shape, array.tobytes(), raw=True)
        return self.add("Constant", [], outputs=[self.fresh(hint)], value=value)

    def ints(self, values, hint="shape") -> str:
        return self.const(np.asarray(list(values), dtype=np.int64), hint)

    def add(self, op_type, inputs, n_outputs=1, outputs=None, **attrs) -> str | list:
        helper = _proto.onnx().helper
        if outputs is None:
            outputs = [self.fresh(op_type.lower()) for _ in range(n_outputs)]
        attrs = {k: v for k, v in attrs.items() if v is not None}
        self.nodes.append(helper.make_node(op_type, list(inputs), list(outputs),
                                           name=self.fresh(f"n_{op_type}"), **attrs))
        return outputs[0] if len(outputs) == 1 else list(outputs)

    def bind(self, value, onnx_name):
        """Record that a traced node's output is ``onnx_name``."""
        self.names[id(value)] = onnx_name
        self.taken.add(onnx_name)


def _value_info(name, dtype, shape, dyn):
    helper = _proto.onnx().helper
    dims = [dyn.get(i, d) for i, d in enumerate(shape)]
    return helper.make_tensor_value_info(name, _proto.onnx_elem_type(dtype), dims)


def _dynamic_map(spec, name):
    """``dynamic_axes[name]`` as ``{axis: dim name}`` (PyTorch takes a list or a dict)."""
    if spec is None or name not in spec:
        return {}
    axes = spec[name]
    if isinstance(axes, dict):
        return {int(k): str(v) for k, v in axes.items()}
    return {int(a): f"{name}_dim{a}" for a in axes}


def export(model, args, f, input_names=None, output_names=None, dynamic_axes=None,
           opset_version: int = 17, export_params: bool = True, verbose: bool = False,
           do_constant_folding: bool = True):
    """Export ``model`` (an ``nn.Module`` or a function of tensors) to ONNX.

    Args:
        model: what to export; a module is put in eval mode while it is traced.
        args: the example input (a tensor or a tuple of tensors).
        f: a path or a writable binary file; a path is written atomically.
        input_names, output_names: names for the graph's inputs and outputs.
        dynamic_axes: ``{name: [axis, ...]}`` or ``{name: {axis: "dim"}}``: axes left
            symbolic (a variable batch size, typically).
        opset_version: the ONNX opset (13 to 21).
        export_params, verbose, do_constant_folding: accepted for PyTorch's signature
            (parameters are always stored; the graph is already folded by tracing).

    Returns the ``onnx.ModelProto`` written. ``onnx.checker.check_model`` accepts it.

    >>> import io, shendu as sd
    >>> net = sd.nn.Sequential(sd.nn.Linear(4, 2), sd.nn.ReLU())
    >>> proto = sd.onnx.export(net, sd.ones(1, 4), io.BytesIO(), input_names=["x"])
    >>> [n.op_type for n in proto.graph.node]
    ['Gemm', 'Relu', 'Identity']
    """
    from ..jit import trace
    from ..nn.module import Module
    from .export_ops import EXPORTERS

    onnx = _proto.onnx()
    if not 13 <= opset_version <= 21:
        raise ValueError(f"onnx.export: opset_version must be between 13 and 21, got "
                         f"{opset_version}")
    args = args if isinstance(args, tuple) else (args,)
    was_training = isinstance(model, Module) and model.training
    if isinstance(model, Module):
        model.eval()
    try:
        with no_grad():
            graph = trace(model, args).graph
    finally:
        if was_training:
            model.train()
    missing = sorted({f"{n.op} (at {n.module or '<top>'}, {n.source})" for n in graph
                      if n.op not in EXPORTERS})
    if missing:
        raise NotImplementedError(f"onnx.export: {len(missing)} traced op(s) have no ONNX "
                                  f"conversion: " + "; ".join(missing))
    b = Builder(opset_version, bool(dynamic_axes))
    inputs = []
    for i, v in enumerate(graph.inputs):
        name = input_names[i] if input_names and i < len(input_names) else v.name
        b.bind(v, name)
        inputs.append(_value_info(name, v.dtype, v.shape, _dynamic_map(dynamic_axes, name)))
    for node in graph:
        EXPORTERS[node.op](b, node)
    outputs = []
    for i, v in enumerate(graph.outputs):
        name = output_names[i] if output_names and i < len(output_names) else f"output_{i}"
        b.add("Identity", [b.name(v)], outputs=[name])
        outputs.append(_value_info(name, v.dtype, v.shape, _dynamic_map(dynamic_axes, name)))
    g = onnx.helper.make_graph(b.nodes, type(model).__name__, inputs, outputs)
    for name, array in b.inits:  # filled in place: large weights are copied once
        t = g.initializer.add()
        t.name, t.data_type = name, _proto.onnx_elem_type(array.dtype)
        t.dims.extend(array.shape)
        t.raw_data = np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<")).tobytes()
    proto = onnx.helper.make_model(g, producer_name="shendu",
                                   opset_imports=[onnx.helper.make_opsetid("", opset_version)])
    proto.ir_version = min(proto.ir_version, 9)  # readable by onnxruntime releases of 2024+
    data = proto.SerializeToString()
    if len(data) < 2**31 - 1:  # (a larger model would need external data files)
        onnx.checker.check_model(data)
    _write(data, f)
    return proto


def _write(data: bytes, f):
    if isinstance(f, (str, os.PathLike)):
        path = os.fspath(f)
        fd, tmp = tempfile.mkstemp(dir=os.path.dirname(os.path.abspath(path)), suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(data)
            os.replace(tmp, path)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise
    elif isinstance(f, io.IOBase) or hasattr(f, "write"):
        f.write(data)
    else:
        raise TypeError(f"onnx.export: f must be a path or a binary file, got "
                        f"{type(f).__name__}")


