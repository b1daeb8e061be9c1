"""ONNX's backend interface over shendu, so ONNX's conformance suite runs against it.

>>> import numpy as np
>>> from onnx import helper
>>> import shendu.onnx.backend as backend
>>> node = helper.make_node("Relu", ["x"], ["y"])
>>> backend.run_node(node, [np.array([-1.0, 2.0], np.float32)])[0]
array([0., 2.], dtype=float32)
>>> backend.supports_device("CPU"), backend.supports_device("CUDA")
(True, False)
"""
from __future__ import annotations

import numpy as np
from onnx.backend.base import Backend, BackendRep, Device, DeviceType, namedtupledict

from ..autograd import no_grad
from ..tensor import Tensor
from . import _proto
from .importer import OnnxModule
from .ops import CONVERTERS, Node


def _outputs(values):
    return [np.asarray(v._data) if isinstance(v, Tensor) else np.asarray(v) for v in values]


def _as_tensor(a):
    return a if isinstance(a, Tensor) else Tensor._wrap(np.asarray(a))


class ShenduRep(BackendRep):
    """A prepared model: ``run(inputs)`` gives its outputs as NumPy arrays."""

    def __init__(self, module: OnnxModule):
        self.module = module

    def run(self, inputs, **kwargs):
        m = self.module
        if isinstance(inputs, dict):
            args, kw = (), {k: _as_tensor(v) for k, v in inputs.items()}
        else:
            if isinstance(inputs, np.ndarray) or not isinstance(inputs, (list, tuple)):
                inputs = [inputs]
            args, kw = tuple(_as_tensor(a) for a in inputs), {}
        with no_grad():
            out = m(*args, **kw)
        out = out if isinstance(out, tuple) else (out,)
        return namedtupledict("Outputs", m.output_names)(*_outputs(out))


class ShenduBackend(Backend):
    """shendu as an ONNX backend (CPU; shendu's CuPy path is not offered here)."""

    @classmethod
    def prepare(cls, model, device="CPU", **kwargs):
        super().prepare(model, device, **kwargs)
        return ShenduRep(OnnxModule(model))

    @classmethod
    def run_model(cls, model, inputs, device="CPU", **kwargs):
        return cls.prepare(model, device, **kwargs).run(inputs)

    @classmethod
    def run_node(cls, node, inputs, device="CPU", outputs_info=None, **kwargs):
        super().run_node(node, inputs, device=device, outputs_info=outputs_info)
        if node.op_type not in CONVERTERS:
            raise NotImplementedError(f"ONNX op {node.op_type} is not supported by shendu")
        opset = kwargs.get("opset_version")
        if opset is None:
            import onnx

            opset = onnx.defs.onnx_opset_version()
        ctx = Node(node.op_type, node.name, _proto.attributes(node), opset, len(node.output))
        if isinstance(inputs, dict):
            args = [_as_tensor(inputs[n]) if n else None for n in node.input]
        else:
            args = [_as_tensor(a) if a is not None else None for a in inputs]
        with no_grad():
            out = CONVERTERS[node.op_type](ctx, *args)
        out = out if isinstance(out, tuple) else (out,)
        return namedtupledict("Outputs", [n for n in node.output][:len(out)])(*_outputs(out))

    @classmethod
    def supports_device(cls, device: str) -> bool:
        return Device(device).type == DeviceType.CPU


prepare = ShenduBackend.prepare
run_model = ShenduBackend.run_model
run_node = ShenduBackend.run_node
supports_device = ShenduBackend.supports_device
