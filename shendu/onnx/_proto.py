"""Reading ONNX protobufs: files with clear errors, attributes, element types.

``onnx`` is imported here on first use, so ``import shendu`` never needs it.
"""
from __future__ import annotations

import os

import numpy as np


def onnx():
    try:
        import onnx as _onnx
    except ImportError as e:  # pragma: no cover - the onnx extra is installed in CI
        raise ImportError("shendu.onnx needs the 'onnx' package: pip install 'shendu[onnx]'"
                          ) from e
    return _onnx


def load(path_or_model):
    """A ``ModelProto`` from a path, bytes or a ModelProto; a damaged file raises a
    ``ValueError`` naming it (never a protobuf traceback)."""
    o = onnx()
    if isinstance(path_or_model, o.ModelProto):
        return path_or_model
    if isinstance(path_or_model, (bytes, bytearray)):
        return _parse(bytes(path_or_model), "<bytes>")
    path = os.fspath(path_or_model)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"ONNX model file not found: {path!r}")
    with open(path, "rb") as f:
        data = f.read()
    model = _parse(data, path)
    if any(t.data_location == o.TensorProto.EXTERNAL for t in model.graph.initializer):
        try:
            o.load_external_data_for_model(model, os.path.dirname(os.path.abspath(path)))
        except (OSError, ValueError) as e:
            raise ValueError(f"{path}: cannot read the external weights it refers to: {e}"
                             ) from None
    return model


def _parse(data: bytes, where: str):
    o = onnx()
    if not data:
        raise ValueError(f"{where}: not an ONNX model (the file is empty)")
    model = o.ModelProto()
    try:
        model.ParseFromString(data)
    except Exception as e:  # protobuf's DecodeError and friends
        raise ValueError(f"{where}: not a valid ONNX model, the file is truncated or "
                         f"corrupted ({type(e).__name__}: {e})") from None
    if not model.HasField("graph") or not model.opset_import:
        raise ValueError(f"{where}: not a valid ONNX model, it has no graph or no opset "
                         f"(the file is truncated or corrupted, or not ONNX)")
    return model


def opset_of(model) -> int:
    for imp in model.opset_import:
        if imp.domain in ("", "ai.onnx"):
            return int(imp.version)
    return 1


def attributes(node_proto) -> dict:
    o = onnx()
    out = {}
    for a in node_proto.attribute:
        v = o.helper.get_attribute_value(a)
        if a.type == o.AttributeProto.TENSOR:
            v = o.numpy_helper.to_array(v)
        elif a.type == o.AttributeProto.STRING:
            v = v.decode()
        elif a.type == o.AttributeProto.STRINGS:
            v = [s.decode() for s in v]
        out[a.name] = v
    return out


# ONNX element types shendu tensors can hold, to NumPy dtypes. bfloat16, the float8/4
# and int4/2 types and strings are not among them.
_DTYPES = {1: np.float32, 2: np.uint8, 3: np.int8, 4: np.uint16, 5: np.int16, 6: np.int32,
           7: np.int64, 9: np.bool_, 10: np.float16, 11: np.float64, 12: np.uint32,
           13: np.uint64}


def numpy_dtype(elem_type: int, node=None) -> np.dtype:
    if elem_type not in _DTYPES:
        name = onnx().TensorProto.DataType.Name(elem_type)
        where = f"ONNX {node.op_type} (node {node.name!r}): " if node is not None else ""
        raise TypeError(f"{where}element type {name} has no shendu dtype (shendu has "
                        f"float16/32/64, int8/16/32/64, uint8/16/32/64 and bool)")
    return np.dtype(_DTYPES[elem_type])


def onnx_elem_type(dtype) -> int:
    dtype = np.dtype(dtype)
    for k, v in _DTYPES.items():
        if np.dtype(v) == dtype:
            return k
    raise TypeError(f"ONNX has no element type for dtype {dtype}")


def to_array(tensor_proto, where="") -> np.ndarray:
    numpy_dtype(tensor_proto.data_type)  # a clear error for types shendu lacks
    try:
        return onnx().numpy_helper.to_array(tensor_proto)
    except Exception as e:
        raise ValueError(f"{where}: tensor {tensor_proto.name!r} cannot be read ({e}); the "
                         f"file is truncated or corrupted") from None
