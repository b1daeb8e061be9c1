"""Read and write ``.safetensors`` files without the ``safetensors`` package.

The format is small enough to hold in a few lines: an 8-byte little-endian header length,
a JSON header mapping each name to ``{"dtype", "shape", "data_offsets"}`` (plus an
optional ``"__metadata__"`` of strings), then the raw little-endian bytes. The functions
mirror ``safetensors.numpy``: :func:`save_file`, :func:`load_file`, :func:`save`,
:func:`load`, and return shendu tensors. Every header is checked against the bytes
(offsets in order, no gaps or overlaps, sizes matching shapes) before any tensor is made.

>>> import os, tempfile, shendu as sd
>>> from shendu.interop import safetensors
>>> path = os.path.join(tempfile.mkdtemp(), "model.safetensors")
>>> safetensors.save_file({"fc.weight": sd.ones(2, 3)}, path, metadata={"epoch": "3"})
>>> safetensors.load_file(path)["fc.weight"].shape
(2, 3)
"""
from __future__ import annotations

import json
import math
import os
from collections import OrderedDict
from collections.abc import Mapping

import numpy as np

from ..backend import to_device
from ..tensor import Tensor

HEADER_LIMIT = 100_000_000  # the reference implementation's limit on the JSON header
# safetensors dtype -> little-endian NumPy type; BF16 is read as words, widened to float32
_TO_NUMPY = {"F64": "<f8", "F32": "<f4", "F16": "<f2", "BF16": "<u2", "I64": "<i8",
             "I32": "<i4", "I16": "<i2", "I8": "i1", "U8": "u1", "BOOL": "b1"}
_FROM_NUMPY = {np.dtype(v): k for k, v in _TO_NUMPY.items() if k != "BF16"}
_UNSUPPORTED_SIZES = {"U16": 2, "U32": 4, "U64": 8, "F8_E4M3": 1, "F8_E5M2": 1,
                      "F8_E8M0": 1, "C64": 8, "F4": 1, "F6_E2M3": 1, "F6_E3M2": 1}


class SafetensorsError(ValueError):
    """A file or buffer that is not valid safetensors (the message names it)."""


def _arrays(tensors: Mapping, fn: str) -> dict[str, np.ndarray]:
    if not isinstance(tensors, Mapping):
        raise TypeError(f"{fn}: expected a flat dict of name -> Tensor, got "
                        f"{type(tensors).__name__}")
    out = {}
    for k, v in tensors.items():
        if not isinstance(k, str):
            raise TypeError(f"{fn}: keys must be str, got {k!r}")
        if not isinstance(v, (Tensor, np.ndarray)):
            raise TypeError(f"{fn}: value for {k!r} is {type(v).__name__}; safetensors holds "
                            "only tensors in a flat dict (use shendu.save for nested data)")
        arr = np.asarray(to_device(v._data if isinstance(v, Tensor) else v, "cpu"))
        if arr.dtype.newbyteorder("=") not in _FROM_NUMPY:
            raise TypeError(f"{fn}: {k!r} has dtype {arr.dtype}, which safetensors files "
                            "written by shendu do not hold")
        out[k] = np.asarray(arr, arr.dtype.newbyteorder("<"), order="C")  # keeps 0-d arrays 0-d
    return out


def save(tensors: Mapping[str, Tensor], metadata: Mapping[str, str] | None = None) -> bytes:
    """The bytes of a safetensors file holding ``tensors`` (a flat dict such as a
    state dict) and string ``metadata``."""
    arrays = _arrays(tensors, "safetensors.save")
    if metadata is not None and not all(isinstance(k, str) and isinstance(v, str)
                                        for k, v in metadata.items()):
        raise TypeError("safetensors.save: metadata must map str to str")
    # the reference writer's order: larger elements first (keeps data aligned), then name
    names = sorted(arrays, key=lambda k: (-arrays[k].dtype.itemsize, k))
    header: dict = {"__metadata__": dict(metadata)} if metadata else {}
    offset = 0
    for k in names:
        a = arrays[k]
        header[k] = {"dtype": _FROM_NUMPY[a.dtype.newbyteorder("=")], "shape": list(a.shape),
                     "data_offsets": [offset, offset + a.nbytes]}
        offset += a.nbytes
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)  # pad so the data starts 8-byte aligned
    return b"".join([len(text).to_bytes(8, "little"), text,
                     *(arrays[k].tobytes() for k in names)])


def _parse(data, name: str) -> tuple[list, dict, int]:
    def bad(what: str) -> SafetensorsError:
        return SafetensorsError(f"load: {name} is not a valid safetensors file: {what}")

    if len(data) < 8:
        raise bad(f"only {len(data)} bytes, too short for the header length")
    n = int.from_bytes(data[:8], "little")
    if n > HEADER_LIMIT or 8 + n > len(data):
        raise bad(f"the header length {n} exceeds the file ({len(data)} bytes) or the limit")
    try:
        header = json.loads(bytes(data[8:8 + n]).decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise bad(f"the header is not JSON ({str(exc)[:160]})") from None
    if not isinstance(header, dict):
        raise bad("the header is not a JSON object")
    meta = header.pop("__metadata__", None) or {}
    if not (isinstance(meta, dict) and all(isinstance(v, str) for v in meta.values())):
        raise bad("__metadata__ must map strings to strings")
    entries, start = [], 8 + n
    for key, info in header.items():
        if not (isinstance(info, dict) and isinstance(info.get("shape"), list)
                and isinstance(info.get("data_offsets"), list)
                and len(info["data_offsets"]) == 2
                and all(type(x) is int and x >= 0 for x in info["shape"] + info["data_offsets"])):
            raise bad(f"malformed entry for {key!r}")
        dt = info.get("dtype")
        if dt not in _TO_NUMPY and dt not in _UNSUPPORTED_SIZES:
            raise bad(f"unknown dtype {dt!r} for {key!r}")
        entries.append((info["data_offsets"], key, dt, tuple(info["shape"])))
    entries.sort(key=lambda e: e[0])
    end = 0
    for (lo, hi), key, dt, shape in entries:
        size = int(np.prod(shape, dtype=np.int64)) * \
            (np.dtype(_TO_NUMPY[dt]).itemsize if dt in _TO_NUMPY else _UNSUPPORTED_SIZES[dt])
        if lo != end or hi - lo != size:
            raise bad(f"{key!r} occupies bytes {lo}..{hi} but should start at {end} and "
                      f"hold {size} bytes ({dt} of shape {shape})")
        end = hi
    if start + end != len(data):
        raise bad(f"the tensors hold {end} bytes but {len(data) - start} follow the header "
                  "(truncated or trailing data)")
    return entries, meta, start


def load(data, name: str = "<bytes>", device=None) -> OrderedDict[str, Tensor]:
    """Tensors from safetensors bytes (a ``bytearray`` is used in place, zero-copy)."""
    entries, _, start = _parse(data, name)
    buf = data if isinstance(data, bytearray) else bytearray(data)
    out = OrderedDict()
    for (lo, _), key, dt, shape in entries:
        if dt not in _TO_NUMPY:
            raise SafetensorsError(f"load: {name}: {key!r} has dtype {dt}, which shendu "
                                   "does not have")
        arr = np.frombuffer(buf, _TO_NUMPY[dt], math.prod(shape), start + lo).reshape(shape)
        if dt == "BF16":
            arr = (arr.astype(np.uint32) << 16).view(np.float32)
        elif not arr.dtype.isnative:
            arr = arr.astype(arr.dtype.newbyteorder("="))
        out[key] = Tensor._wrap(arr if device in (None, "cpu") else to_device(arr, device))
    return out


def metadata(data, name: str = "<bytes>") -> dict[str, str]:
    """The ``__metadata__`` strings of safetensors bytes."""
    return dict(_parse(data, name)[1])


def save_file(tensors: Mapping[str, Tensor], filename: str | os.PathLike,
              metadata: Mapping[str, str] | None = None) -> None:
    """Write ``tensors`` to ``filename`` (atomically: a temp file renamed over it)."""
    from ..serialization import _atomic_write

    blob = save(tensors, metadata)
    _atomic_write(filename, lambda fh: fh.write(blob))


def load_file(filename: str | os.PathLike, device=None) -> OrderedDict[str, Tensor]:
    """Read a ``.safetensors`` file into an ``OrderedDict`` of tensors (on ``device``)."""
    with open(filename, "rb") as fh:
        data = bytearray(fh.read())
    return load(data, repr(os.fspath(filename)), device)


__all__ = ["SafetensorsError", "load", "load_file", "metadata", "save", "save_file"]
