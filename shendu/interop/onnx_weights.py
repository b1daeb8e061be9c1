"""The weights of ONNX files (their initializers), for ``shendu convert`` / ``inspect``.

Running and exporting ONNX models is :mod:`shendu.onnx`'s job; this module only reads an
ONNX file's initializers as tensors, lists its graph's ops, and writes a weights-only
model (a graph of initializers and no nodes, which ``onnx.checker`` accepts). It needs the
optional ``onnx`` package.
"""
from __future__ import annotations

import os
from collections import Counter, OrderedDict
from collections.abc import Mapping

import numpy as np

from ..tensor import Tensor


def _onnx(what: str):
    try:
        import onnx
    except ImportError:
        raise ImportError(f"{what} needs the optional onnx package: pip install onnx") from None
    return onnx


def read_model(path: str | os.PathLike):
    """Parse and check an ONNX file; a damaged one raises ``ValueError`` naming it."""
    onnx = _onnx("reading an ONNX file")
    name = repr(os.fspath(path))
    with open(path, "rb") as fh:
        data = fh.read()
    try:
        model = onnx.load_from_string(data)
        onnx.checker.check_model(model)
    except Exception as exc:  # noqa: BLE001 - protobuf's DecodeError, the checker's errors
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise ValueError(f"load: {name} is not a valid ONNX model: truncated, corrupt or "
                         f"rejected by onnx.checker ({type(exc).__name__}: {msg[:200]})") \
            from None
    return model


def load_initializers(path: str | os.PathLike) -> OrderedDict[str, Tensor]:
    """The initializers (weights) of an ONNX file as an ``OrderedDict`` of tensors."""
    from onnx import numpy_helper

    model = read_model(path)
    out = OrderedDict()
    for init in model.graph.initializer:
        try:
            arr = numpy_helper.to_array(init)
        except Exception as exc:  # noqa: BLE001 - a tensor whose bytes do not fit its shape
            raise ValueError(f"load: {os.fspath(path)!r}: initializer {init.name!r} is "
                             f"unreadable ({exc})") from None
        out[init.name] = Tensor._wrap(np.array(arr))
    return out


def graph_ops(path: str | os.PathLike) -> tuple[object, Counter]:
    """The checked model and how often each op type occurs in its graph."""
    model = read_model(path)
    return model, Counter(n.op_type for n in model.graph.node)


def save_initializers(tensors: Mapping[str, Tensor], path: str | os.PathLike,
                      opset_version: int = 17) -> None:
    """Write ``tensors`` as the initializers of a node-less ONNX model."""
    onnx = _onnx("writing an ONNX file")
    from onnx import helper, numpy_helper

    from ..serialization import _atomic_write

    inits = [numpy_helper.from_array(np.ascontiguousarray(np.asarray(v)), k)
             for k, v in tensors.items()]
    graph = helper.make_graph([], "weights", [], [], initializer=inits)
    model = helper.make_model(graph, producer_name="shendu",
                              opset_imports=[helper.make_opsetid("", opset_version)])
    onnx.checker.check_model(model)
    blob = model.SerializeToString()
    _atomic_write(path, lambda fh: fh.write(blob))


__all__ = ["graph_ops", "load_initializers", "read_model", "save_initializers"]
