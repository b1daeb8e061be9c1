"""ONNX graph -> ``nn.Module`` whose forward runs shendu ops.

Float initializers become ``Parameter``s (so an imported model fine-tunes), placed under
their dotted names (``fc1.weight`` is parameter ``weight`` of sub-module ``fc1``, so a
model exported from PyTorch keeps PyTorch's state_dict keys). BatchNormalization's
running statistics and integer initializers become buffers.
"""
from __future__ import annotations

import numpy as np

from ..nn.module import Module
from ..nn.parameter import Parameter
from ..tensor import Tensor
from . import _proto
from .ops import CONVERTERS, Node

__all__ = ["OnnxModule", "UnsupportedOpError", "import_model", "check_supported"]


class UnsupportedOpError(NotImplementedError):
    """The model uses ops shendu cannot run; ``.ops`` lists them."""

    def __init__(self, ops, opset):
        self.ops, self.opset = sorted(ops), opset
        super().__init__(f"ONNX import: {len(self.ops)} unsupported op(s) at opset {opset}: "
                         f"{', '.join(self.ops)} (supported: see "
                         f"shendu.onnx.supported_ops())")


def check_supported(graph, opset):
    missing = set()
    for n in graph.node:
        if n.domain not in ("", "ai.onnx"):
            missing.add(f"{n.domain}::{n.op_type}")
        elif n.op_type not in CONVERTERS:
            missing.add(n.op_type)
    if missing:
        raise UnsupportedOpError(missing, opset)


class _Holder(Module):
    """A plain container for the parameters under one dotted prefix."""

    def forward(self, *args):  # pragma: no cover - never called
        raise RuntimeError("a container of imported parameters is not callable")


class OnnxModule(Module):
    """An imported ONNX graph; call it with the graph's inputs in order (or by name).

    >>> import numpy as np, onnx
    >>> from onnx import helper, numpy_helper, TensorProto
    >>> w = numpy_helper.from_array(np.eye(2, dtype=np.float32), "fc.weight")
    >>> g = helper.make_graph([helper.make_node("MatMul", ["x", "fc.weight"], ["y"])], "g",
    ...     [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2])],
    ...     [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2])], [w])
    >>> m = import_model(helper.make_model(g))
    >>> import shendu as sd
    >>> m(sd.tensor([[1.0, 2.0]]))
    tensor([[1., 2.]], grad_fn=<MatMulBackward>)
    >>> [name for name, _ in m.named_parameters()]
    ['fc.weight']
    """

    def __init__(self, model, source: str | None = None):
        super().__init__()
        graph = model.graph
        self.opset = _proto.opset_of(model)
        check_supported(graph, self.opset)
        where = source or f"ONNX graph {graph.name!r}"
        init_names = {t.name for t in graph.initializer}
        stats = {n.input[i] for n in graph.node if n.op_type == "BatchNormalization"
                 for i in (3, 4) if len(n.input) > i}
        self._slots = {}  # initializer name -> (owner module, attribute)
        for t in graph.initializer:
            a = _proto.to_array(t, where)
            self._place(t.name, a, as_param=a.dtype.kind == "f" and t.name not in stats)
        self.input_names = [i.name for i in graph.input if i.name not in init_names]
        self.output_names = [o.name for o in graph.output]
        self._check_wiring(graph, where)
        self._nodes = []
        for n in graph.node:
            ctx = Node(n.op_type, n.name, _proto.attributes(n), self.opset, len(n.output))
            inputs = list(n.input)
            while inputs and not inputs[-1]:
                inputs.pop()
            self._nodes.append((CONVERTERS[n.op_type], ctx, inputs, list(n.output)))

    @staticmethod
    def _check_wiring(graph, where):
        """Every value used is produced before (a truncated file can still parse)."""
        known = {t.name for t in graph.initializer} | {i.name for i in graph.input}
        for n in graph.node:
            for i in n.input:
                if i and i not in known:
                    raise ValueError(f"{where}: node {n.name or n.op_type!r} reads {i!r}, "
                                     f"which no earlier node, initializer or input produces "
                                     f"(the file is truncated or corrupted, or the graph "
                                     f"is not topologically sorted)")
            known.update(o for o in n.output if o)
        lost = [o.name for o in graph.output if o.name not in known]
        if lost:
            raise ValueError(f"{where}: output(s) {lost} are produced by no node (the file "
                             f"is truncated or corrupted)")

    def _place(self, name, array, as_param):
        owner, attr = self, name
        parts = name.split(".")
        if len(parts) > 1 and all(parts):
            node = self
            for p in parts[:-1]:
                child = node._modules.get(p)
                if child is None:
                    if hasattr(node, p):  # taken by a parameter: keep the name flat
                        node = None
                        break
                    child = _Holder()
                    node.add_module(p, child)
                node = child
            if node is not None and not hasattr(node, parts[-1]):
                owner, attr = node, parts[-1]
        if owner is self:
            attr = name.replace(".", "_")
            while not attr or hasattr(self, attr):
                attr += "_"
        tensor = Tensor._wrap(np.array(array))
        if as_param:
            owner.register_parameter(attr, Parameter(tensor))
        else:  # running statistics are state; integer tables (shapes, axes) are not
            owner.register_buffer(attr, tensor, persistent=array.dtype.kind == "f")
        self._slots[name] = (owner, attr)

    def forward(self, *args, **kwargs):
        if len(args) > len(self.input_names):
            raise TypeError(f"ONNX model takes {len(self.input_names)} input(s) "
                            f"{self.input_names}, got {len(args)}")
        feeds = dict(zip(self.input_names, args))
        feeds.update(kwargs)
        missing = [n for n in self.input_names if n not in feeds]
        if missing:
            raise TypeError(f"ONNX model: missing input(s) {missing}")
        env = {name: getattr(owner, attr) for name, (owner, attr) in self._slots.items()}
        for name, v in feeds.items():
            env[name] = v if isinstance(v, Tensor) else Tensor._wrap(np.asarray(v))
        for fn, ctx, inputs, outputs in self._nodes:
            try:
                args_ = [env[i] if i else None for i in inputs]
            except KeyError as e:
                raise ValueError(f"ONNX {ctx.op_type} (node {ctx.name!r}): input {e} is "
                                 f"produced by no earlier node (is the graph sorted?)") from None
            out = fn(ctx, *args_)
            if not isinstance(out, tuple):
                out = (out,)
            for name, value in zip(outputs, out):
                if name:
                    env[name] = value
        outs = tuple(env[n] for n in self.output_names)
        return outs[0] if len(outs) == 1 else outs


def import_model(path_or_model) -> OnnxModule:
    """Load an ONNX model (a path, bytes or an ``onnx.ModelProto``) as a shendu module.

    Args:
        path_or_model: the ``.onnx`` file, its bytes, or a loaded ModelProto.

    Raises ``UnsupportedOpError`` listing every op shendu cannot run, and a ``ValueError``
    naming the file when it is truncated or corrupted.
    """
    import os

    source = None
    if isinstance(path_or_model, (str, os.PathLike)):
        source = os.fspath(path_or_model)
    return OnnxModule(_proto.load(path_or_model), source)


def supported_ops() -> list:
    """The ONNX op types the importer and backend can run."""
    return sorted(CONVERTERS)
